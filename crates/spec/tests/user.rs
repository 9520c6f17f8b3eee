//! `--user` against the image's passwd and group, read inside the rootfs:
//! Docker's and runc's rules, and files an image could use to hurt.

mod common;

use berth_snapshot::Root;
use berth_spec::user::{ExecUser, MAX_FILE_BYTES, resolve_user};
use common::image_root;

fn user(uid: u32, gid: u32, additional_gids: &[u32], home: &str) -> ExecUser {
    ExecUser {
        uid,
        gid,
        additional_gids: additional_gids.to_vec(),
        home: home.into(),
    }
}

#[test]
fn user_rules_match_docker_and_runc() {
    let t = image_root();
    let r = Root::open(t.path()).unwrap();
    let u = |spec: &str| resolve_user(&r, spec);
    assert_eq!(u("").unwrap(), user(0, 0, &[0], "/root"));
    assert_eq!(
        u("app").unwrap(),
        user(1000, 1000, &[1000, 50, 10], "/home/app")
    );
    assert_eq!(
        u("1000").unwrap(),
        user(1000, 1000, &[1000, 50, 10], "/home/app")
    );
    // Explicit group: no supplementary lookup, home still from passwd.
    assert_eq!(u("app:staff").unwrap(), user(1000, 50, &[50], "/home/app"));
    assert_eq!(u("1000:10").unwrap(), user(1000, 10, &[10], "/home/app"));
    assert_eq!(u("daemon:4242").unwrap(), user(1, 4242, &[4242], "/"));
    // Numeric uid not in passwd: allowed, gid 0, home /.
    assert_eq!(u("4321").unwrap(), user(4321, 0, &[0], "/"));
    let e = u("nobody-here").unwrap_err().to_string();
    assert!(e.contains("unable to find user nobody-here"), "{e}");
    let e = u("app:nogroup").unwrap_err().to_string();
    assert!(e.contains("unable to find group nogroup"), "{e}");
}

#[test]
fn root_without_passwd_gets_home_slash() {
    let t = tempfile::tempdir().unwrap();
    let r = Root::open(t.path()).unwrap();
    assert_eq!(resolve_user(&r, "").unwrap(), user(0, 0, &[0], "/"));
}

#[test]
fn passwd_is_read_inside_the_rootfs_never_the_host() {
    let t = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(
        host.path().join("passwd"),
        "hostonly:x:777:777::/:/bin/sh\n",
    )
    .unwrap();
    // /etc is a symlink to a host directory: resolution stays in the rootfs.
    std::os::unix::fs::symlink(host.path(), t.path().join("etc")).unwrap();
    let r = Root::open(t.path()).unwrap();
    let e = resolve_user(&r, "hostonly").unwrap_err().to_string();
    assert!(e.contains("unable to find user hostonly"), "{e}");
    assert_eq!(resolve_user(&r, "777").unwrap(), user(777, 0, &[0], "/"));
}

#[test]
fn special_and_huge_files_are_refused_without_reading() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("etc")).unwrap();
    let passwd = t.path().join("etc/passwd");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &passwd,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let r = Root::open(t.path()).unwrap();
    let e = resolve_user(&r, "someone").unwrap_err().to_string();
    assert_eq!(e, "image file /etc/passwd is not a regular file");
    std::fs::remove_file(&passwd).unwrap();
    if rustix::process::geteuid().is_root() {
        // /dev/zero's numbers: reading it would never end.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &passwd,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o644),
            rustix::fs::makedev(1, 5),
        )
        .unwrap();
        let e = resolve_user(&r, "someone").unwrap_err().to_string();
        assert_eq!(e, "image file /etc/passwd is not a regular file");
        std::fs::remove_file(&passwd).unwrap();
    }
    std::fs::create_dir(&passwd).unwrap();
    let e = resolve_user(&r, "someone").unwrap_err().to_string();
    assert_eq!(e, "image file /etc/passwd is not a regular file");
    std::fs::remove_dir(&passwd).unwrap();
    let f = std::fs::File::create(&passwd).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = resolve_user(&r, "someone").unwrap_err().to_string();
    assert_eq!(e, "image file /etc/passwd is larger than 16 MiB");
}

#[test]
fn a_user_in_many_groups_costs_one_pass() {
    // 200,000 groups listing the user: linear work, then a clear refusal.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("etc")).unwrap();
    std::fs::write(t.path().join("etc/passwd"), "u:x:5:5::/home/u:/bin/sh\n").unwrap();
    let group: String = (0..200_000)
        .map(|i| format!("g{i}:x:{}:a,u\n", i + 10))
        .collect();
    std::fs::write(t.path().join("etc/group"), group).unwrap();
    let r = Root::open(t.path()).unwrap();
    let e = resolve_user(&r, "u").unwrap_err().to_string();
    assert!(e.contains("more than the 65536 Linux allows"), "{e}");
}
