//! The container's /sys/fs/cgroup: what it mounts (a cgroup2 mount, or a
//! tmpfs of v1 hierarchies, fresh or bound from its own cgroup).

use super::{CGROUP2_SUPER_MAGIC, V1View, fs_magic};
use crate::sys;
use rustix::mount::{MountFlags, mount, mount_remount};
use std::ffi::OsStr;
use std::io;
use std::path::Path;

/// Mount the cgroup filesystem(s) at `target` (a path, usually a
/// /proc/self/fd link). On a cgroup v2 host that is one cgroup2 mount; on a
/// v1 or hybrid host a tmpfs with one mount per host hierarchy, each showing
/// the container's cgroup namespace root, like runc.
/// `reopen` opens the mount point again, after the tmpfs went on top.
/// `view`: on v1, the hierarchies to mount (the container's own), in
/// place of every one the host has, and how (see [`V1View`]).
pub(crate) fn mount_cgroupfs(
    target: &str,
    reopen: impl Fn() -> io::Result<std::os::fd::OwnedFd>,
    flags: MountFlags,
    view: Option<&V1View>,
) -> io::Result<()> {
    let flags = flags - (MountFlags::BIND | MountFlags::REC);
    if fs_magic(Path::new("/sys/fs/cgroup"))? == CGROUP2_SUPER_MAGIC {
        return Ok(mount("cgroup2", target, "cgroup2", flags, None)?);
    }
    mount(
        "tmpfs",
        target,
        "tmpfs",
        flags - MountFlags::RDONLY,
        Some(c"mode=755"),
    )?;
    // The fd behind `target` still names the mounted-over directory; a
    // fresh lookup lands on the tmpfs.
    let base = reopen()?;
    let base_path = sys::fd_path(std::os::fd::AsFd::as_fd(&base));
    let mount_one = |name: &str, fstype: &str, data: &str| -> io::Result<()> {
        let dir = Path::new(&base_path).join(name);
        std::fs::create_dir(&dir)?;
        let cdata = (!data.is_empty()).then(|| sys::cstr(data)).transpose()?;
        mount(fstype, &dir, fstype, flags, cdata.as_deref()).map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(
                e.kind(),
                format!("mount {fstype} ({data}) on /sys/fs/cgroup/{name}: {e}"),
            )
        })
    };
    if let Some(view) = view {
        for h in &view.hierarchies {
            let Some(name) = h.mount.file_name().and_then(OsStr::to_str) else {
                continue;
            };
            match &view.bind {
                Some(rel) => {
                    bind_own(&h.mount.join(rel), &Path::new(&base_path).join(name), flags)?
                }
                None => mount_one(name, "cgroup", &h.controllers.join(","))?,
            }
        }
        return remount_ro(&base_path, flags);
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let (fstype, _source, superopts) = (post.next(), post.next(), post.next().unwrap_or(""));
        let Some(mountpoint) = pre.split(' ').nth(4) else {
            continue;
        };
        let Some(name) = mountpoint.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        let (fstype, data) = match fstype {
            Some("cgroup") => (
                "cgroup",
                superopts
                    .split(',')
                    .filter(|o| *o != "rw" && *o != "ro")
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some("cgroup2") => ("cgroup2", String::new()),
            _ => continue,
        };
        mount_one(name, fstype, &data)?;
    }
    remount_ro(&base_path, flags)
}

/// The container's own cgroup `src` (a host path: the root is not
/// switched yet) bound on `dir`, with the mount's flags (read-only too).
fn bind_own(src: &Path, dir: &Path, flags: MountFlags) -> io::Result<()> {
    std::fs::create_dir(dir)?;
    let failed = |e: rustix::io::Errno| {
        let e = io::Error::from(e);
        io::Error::new(
            e.kind(),
            format!("bind {} on {}: {e}", src.display(), dir.display()),
        )
    };
    rustix::mount::mount_bind(src, dir).map_err(failed)?;
    let keep = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount_remount(dir, MountFlags::BIND | (flags & keep), "").map_err(failed)
}

/// The tmpfs holding the hierarchies goes read-only when the mount asks.
fn remount_ro(base_path: &str, flags: MountFlags) -> io::Result<()> {
    if flags.contains(MountFlags::RDONLY) {
        mount_remount(base_path, flags | MountFlags::RDONLY, "mode=755")?;
    }
    Ok(())
}
