//! A fresh /dev: the standard devices and links every container gets, like
//! runc, and the spec's own devices.

use super::{mkdir_all, mount_target, relative};
use crate::error::{Context, Result};
use crate::sys::{self, cstr, fd_path};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Character devices every container gets, as runc and Docker provide them.
const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

pub(super) fn populate(root: BorrowedFd<'_>) -> Result<()> {
    for &(name, major, minor) in DEFAULT_DEVICES {
        make(
            root,
            &Path::new("/dev").join(name),
            libc::S_IFCHR | 0o666,
            major,
            minor,
            None,
        )?;
    }
    let dev = mkdir_all(root, Path::new("dev")).step(|| "open /dev".into())?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        let n = cstr(name).step(|| name.into())?;
        let t = cstr(target).step(|| target.into())?;
        // SAFETY: valid strings; dev is a directory fd.
        let r = unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).step(|| format!("symlink /dev/{name} -> {target}"));
            }
        }
    }
    Ok(())
}

/// mknod a device inside the rootfs; where mknod is not allowed (user
/// namespaces) bind-mount the host's node instead.
pub(super) fn make(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: libc::mode_t,
    major: u32,
    minor: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let what = || format!("create device {}", path.display());
    let rel = relative(path);
    let parent = mkdir_all(root, rel.parent().unwrap_or(Path::new("."))).step(what)?;
    let name = cstr(rel.file_name().unwrap_or_default()).step(what)?;
    // SAFETY: parent is a directory fd, name a valid string.
    let r = unsafe {
        libc::mknodat(
            parent.as_raw_fd(),
            name.as_ptr(),
            mode,
            libc::makedev(major, minor),
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EEXIST) => return Ok(()),
            Some(libc::EPERM) => {
                // The host's node at the same path stands in, and only if it
                // is the very device asked for: never bind something else.
                let host = std::fs::metadata(path).step(what)?;
                let want = if mode & libc::S_IFMT == libc::S_IFBLK {
                    libc::S_IFBLK
                } else {
                    libc::S_IFCHR
                };
                if host.mode() & libc::S_IFMT != want || host.rdev() != libc::makedev(major, minor)
                {
                    return Err(io::Error::other(format!(
                        "no node can be made in a user namespace, and the host's {} is another device",
                        path.display()
                    )))
                    .step(what);
                }
                let target = mount_target(root, path, false).step(what)?;
                sys::mount(
                    Some(path.as_os_str()),
                    OsStr::new(&fd_path(target.as_fd())),
                    None,
                    libc::MS_BIND,
                    None,
                )
                .step(what)?;
                return Ok(());
            }
            _ => return Err(e).step(what),
        }
    }
    if let Some((uid, gid)) = owner {
        // SAFETY: valid dir fd and name; AT_SYMLINK_NOFOLLOW on a fresh node.
        sys::cvt(unsafe {
            libc::fchownat(
                parent.as_raw_fd(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .step(what)?;
    }
    Ok(())
}
