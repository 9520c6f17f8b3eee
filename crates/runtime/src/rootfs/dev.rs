//! A fresh /dev: the standard devices and links every container gets, like
//! runc, and the spec's own devices.

use super::{mkdir_all, mount_target, relative};
use crate::error::{Context, Result};
use crate::sys::fd_path;
use rustix::fs::{AtFlags, FileType, Mode};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
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
            FileType::CharacterDevice,
            0o666,
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
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).step(|| format!("symlink /dev/{name} -> {target}")),
        }
    }
    Ok(())
}

/// mknod a device inside the rootfs (`mode` its permission bits); where
/// mknod is not allowed (user namespaces) bind-mount the host's node
/// instead.
pub(super) fn make(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: FileType,
    mode: u32,
    major: u32,
    minor: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let what = || format!("create device {}", path.display());
    let rel = relative(path);
    let parent = mkdir_all(root, rel.parent().unwrap_or(Path::new("."))).step(what)?;
    let name = rel.file_name().unwrap_or_default();
    let dev = rustix::fs::makedev(major, minor);
    // Mode bits as given, as mknod(2) takes them.
    match rustix::fs::mknodat(&parent, name, kind, Mode::from_bits_retain(mode), dev) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => return Ok(()),
        Err(rustix::io::Errno::PERM) => return bind_host_node(root, path, kind, dev).step(what),
        Err(e) => return Err(e).step(what),
    }
    if let Some((uid, gid)) = owner {
        use rustix::process::{Gid, Uid};
        rustix::fs::chownat(
            &parent,
            name,
            Some(Uid::from_raw_unchecked(uid)),
            Some(Gid::from_raw_unchecked(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .step(what)?;
    }
    Ok(())
}

/// Where no node can be made: the host's node at the same path stands in,
/// and only if it is the very device asked for: never bind something else.
fn bind_host_node(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: FileType,
    dev: rustix::fs::Dev,
) -> io::Result<()> {
    let host = std::fs::metadata(path)?;
    let want = if kind == FileType::BlockDevice {
        FileType::BlockDevice
    } else {
        FileType::CharacterDevice
    };
    if FileType::from_raw_mode(host.mode()) != want || host.rdev() != dev {
        return Err(io::Error::other(format!(
            "no node can be made in a user namespace, and the host's {} is another device",
            path.display()
        )));
    }
    let target = mount_target(root, path, false)?;
    Ok(rustix::mount::mount_bind(path, fd_path(target.as_fd()))?)
}
