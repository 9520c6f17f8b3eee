//! cgroup support. For now only the container's view of /sys/fs/cgroup;
//! placing the container in a cgroup and applying limits comes later (the
//! `G` step of the sync protocol is where placement will go).

use crate::sys;
use std::ffi::OsStr;
use std::io;
use std::path::Path;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Mount the cgroup filesystem(s) at `target` (a path, usually a
/// /proc/self/fd link). On a cgroup v2 host that is one cgroup2 mount; on a
/// v1 or hybrid host a tmpfs with one mount per host hierarchy, each showing
/// the container's cgroup namespace root, like runc.
/// `reopen` opens the mount point again, after the tmpfs went on top.
pub(crate) fn mount_cgroupfs(
    target: &str,
    reopen: impl Fn() -> io::Result<std::os::fd::OwnedFd>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let flags = flags & !(libc::MS_BIND | libc::MS_REC);
    if fs_magic(Path::new("/sys/fs/cgroup"))? == CGROUP2_SUPER_MAGIC {
        return sys::mount(
            Some(OsStr::new("cgroup2")),
            OsStr::new(target),
            Some("cgroup2"),
            flags,
            None,
        );
    }
    sys::mount(
        Some(OsStr::new("tmpfs")),
        OsStr::new(target),
        Some("tmpfs"),
        flags & !libc::MS_RDONLY,
        Some("mode=755"),
    )?;
    // The fd behind `target` still names the mounted-over directory; a
    // fresh lookup lands on the tmpfs.
    let base = reopen()?;
    let base_path = sys::fd_path(std::os::fd::AsFd::as_fd(&base));
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
        let dir = Path::new(&base_path).join(name);
        std::fs::create_dir(&dir)?;
        sys::mount(
            Some(OsStr::new(fstype)),
            dir.as_os_str(),
            Some(fstype),
            flags,
            Some(&data),
        )
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mount {fstype} ({data}) on /sys/fs/cgroup/{name}: {e}"),
            )
        })?;
    }
    if flags & libc::MS_RDONLY != 0 {
        sys::mount(
            None,
            OsStr::new(&base_path),
            None,
            libc::MS_REMOUNT | flags | libc::MS_RDONLY,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

fn fs_magic(p: &Path) -> io::Result<i64> {
    let c = sys::cstr(p)?;
    // SAFETY: statfs is plain data; c is a valid string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::statfs(c.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}
