//! The in-root resolver on its own, through both resolvers: lexical
//! cleaning of entry names, and symlinks, `..` and loops that must never
//! lead out of the root.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_snapshot::resolve::{Resolver, Root, clean};
use rustix::fs::{FileType, OFlags};

#[test]
fn clean_rules() {
    assert_eq!(clean(b"/etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
    assert_eq!(clean(b"./a/./b/").unwrap(), PathBuf::from("a/b"));
    assert_eq!(clean(b"a/../b").unwrap(), PathBuf::from("b"));
    assert!(clean(b"../x").is_err());
    assert!(clean(b"a/../../x").is_err());
    assert_eq!(clean(b"./").unwrap(), PathBuf::from(""));
}

fn both(f: impl Fn(Resolver)) {
    f(Resolver::Auto);
    f(Resolver::Fallback);
}

fn target_of(fd: &OwnedFd) -> PathBuf {
    std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(fd)
    ))
    .unwrap()
}

#[test]
fn symlinks_stay_in_root() {
    both(|r| {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("etc/passwd"), "in").unwrap();
        std::fs::write(t.path().join("passwd"), "out").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        std::os::unix::fs::symlink("/nowhere/x", root.join("dangling")).unwrap();
        let rt = Root::open_with(&root, r).unwrap();
        let canon = root.canonicalize().unwrap();
        for (p, want) in [
            ("abs/passwd", "etc/passwd"),
            ("a/b/up/etc/passwd", "etc/passwd"),
            ("../../etc/passwd", "etc/passwd"),
            ("a/b/up/../../passwd", "passwd"),
            ("/etc/../../../etc/passwd", "etc/passwd"),
        ] {
            match rt.open_path(Path::new(p), OFlags::RDONLY) {
                Ok(fd) => assert_eq!(target_of(&fd), canon.join(want), "{r:?} {p}"),
                Err(e) => {
                    // `passwd` at the root does not exist: outside copy must not be found.
                    assert_eq!(want, "passwd", "{r:?} {p}: {e}");
                    assert_eq!(e.kind(), io::ErrorKind::NotFound);
                }
            }
        }
        let e = rt
            .open_path(Path::new("loop1/x"), OFlags::RDONLY)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{r:?}");
        // mkdir_all through an absolute symlink creates inside the root.
        rt.mkdir_all(Path::new("abs/new/dir")).unwrap();
        assert!(root.join("etc/new/dir").is_dir());
        assert!(!Path::new("/etc/new").exists());
        let e = rt.mkdir_all(Path::new("dangling/y")).unwrap_err();
        assert!(e.to_string().contains("dangling"), "{r:?} {e}");
        assert!(!Path::new("/nowhere").exists());
        // The runtime's mkdir follows a dangling link, inside the root.
        std::os::unix::fs::symlink("../made/by/link", root.join("a/rel")).unwrap();
        rt.mkdir_all_following(Path::new("/dangling/y")).unwrap();
        assert!(root.join("nowhere/x/y").is_dir(), "{r:?}");
        rt.mkdir_all_following(Path::new("a/rel/z")).unwrap();
        assert!(root.join("made/by/link/z").is_dir(), "{r:?}");
        std::os::unix::fs::symlink("/../../../../escaped-by-berth-test", root.join("up")).unwrap();
        rt.mkdir_all_following(Path::new("up/q")).unwrap();
        assert!(root.join("escaped-by-berth-test/q").is_dir(), "{r:?}");
        assert!(!Path::new("/escaped-by-berth-test").exists());
        let e = rt.mkdir_all_following(Path::new("loop1/x")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{r:?}");
        // NOFOLLOW on the final name opens the symlink itself.
        let fd = rt
            .open_path(Path::new("abs"), OFlags::PATH | OFlags::NOFOLLOW)
            .unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::Symlink);
        // A file used as a directory.
        let e = rt
            .open_path(Path::new("etc/passwd/x"), OFlags::RDONLY)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{r:?}");
    });
}
