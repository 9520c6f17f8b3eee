//! The Auto resolver on a kernel without openat2: a child process installs a
//! seccomp filter that makes openat2 fail with ENOSYS, then resolves and
//! applies a hostile layer; results must be the same as with openat2.

use std::path::Path;
use std::process::Command;

use berth_snapshot::{ApplyOptions, Resolver, Root, apply_layer, diff_id_of};

const CHILD_ENV: &str = "BERTH_ROOTFS_ENOSYS_CHILD";

/// Make openat2 (x86_64 syscall 437) return ENOSYS for this thread.
fn deny_openat2() {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    let filter = [
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_openat2 as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: 0x0005_0000 | libc::ENOSYS as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: plain prctl calls; `prog` points at `filter`, both live across the call.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const _
            ),
            0
        );
    }
}

#[test]
fn child_without_openat2() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // Only meaningful when spawned by `auto_resolver_falls_back_on_enosys`.
    }
    deny_openat2();
    let t = tempfile::tempdir().unwrap();
    let e = rustix::fs::openat2(
        rustix::fs::CWD,
        t.path(),
        rustix::fs::OFlags::PATH,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::empty(),
    )
    .unwrap_err();
    assert_eq!(e, rustix::io::Errno::NOSYS, "the filter is in place");

    let root = t.path().join("root");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("etc/passwd"), "in").unwrap();
    std::fs::write(outside.join("passwd"), "out").unwrap();
    std::os::unix::fs::symlink("../../../../../../..", root.join("up")).unwrap();
    let r = Root::open_with(&root, Resolver::Auto).unwrap();
    let p = format!("up{}/passwd", outside.display());
    let e = r
        .open_path(Path::new(&p), rustix::fs::OFlags::RDONLY)
        .unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::NotFound,
        "resolved inside the root, not to {p}"
    );
    let fd = r
        .open_path(Path::new("up/etc/passwd"), rustix::fs::OFlags::RDONLY)
        .unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
    assert_eq!(s, "in");

    // A hostile layer through the Auto resolver, now on the fallback.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_link(&mut h, "link", &outside).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "link/passwd", &b"evil"[..]).unwrap();
    let l = b.into_inner().unwrap();
    let res = apply_layer(
        &l[..],
        &root,
        &diff_id_of(&l[..]).unwrap(),
        &ApplyOptions::default(),
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("passwd")).unwrap(),
        "out"
    );
    let e = format!("{:#}", res.unwrap_err());
    assert!(e.contains("dangling symlink"), "{e}");
    println!("ENOSYS-CHILD-OK");
}

#[test]
fn auto_resolver_falls_back_on_enosys() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_without_openat2",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && so.contains("ENOSYS-CHILD-OK"),
        "child failed:\n{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
