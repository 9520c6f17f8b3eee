//! User namespaces: writing the child's uid/gid maps from the runtime while
//! the child waits for `G`. Root writes the maps itself; an unprivileged
//! runtime (rootless) writes a map of its own ids alone, and goes through
//! the setuid helpers newuidmap/newgidmap (Debian's uidmap), which check
//! /etc/subuid and /etc/subgid, for anything more.

use crate::error::{Error, Result};
use berth_linux::idmap::{self, HelperError, Ids, Range};
use oci_spec::runtime::LinuxIdMapping;

fn ranges(maps: &[LinuxIdMapping]) -> Vec<Range> {
    maps.iter()
        .map(|m| Range {
            inside: m.container_id(),
            outside: m.host_id(),
            size: m.size(),
        })
        .collect()
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    idmap::map_text(&ranges(maps))
}

/// Only the caller's own id, mapped once: the kernel lets anyone write that.
fn only_own(maps: &[LinuxIdMapping], own: u32) -> bool {
    maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1
}

/// Write `pid`'s uid and gid maps.
pub(crate) fn write_maps(
    pid: i32,
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
) -> Result<()> {
    if uid_maps.is_empty() || gid_maps.is_empty() {
        return Err(Error::setup(
            "a user namespace needs uidMappings and gidMappings in config.json",
        ));
    }
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let proc_write = |file: &str, text: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| {
            Error::setup(format!(
                "write {file} ({}): {}",
                text.trim().replace('\n', ", "),
                crate::error::strip_os_error(&e)
            ))
        })
    };
    if euid == 0 {
        proc_write("uid_map", &map_text(uid_maps))?;
        return proc_write("gid_map", &map_text(gid_maps));
    }
    if only_own(uid_maps, euid) {
        proc_write("uid_map", &map_text(uid_maps))?;
    } else {
        helper(Ids::Uid, pid, uid_maps)?;
    }
    if only_own(gid_maps, egid) {
        // Unprivileged gid maps need setgroups disabled (CVE-2014-8989).
        proc_write("setgroups", "deny")?;
        proc_write("gid_map", &map_text(gid_maps))?;
    } else {
        helper(Ids::Gid, pid, gid_maps)?;
    }
    Ok(())
}

fn helper(ids: Ids, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let name = ids.helper();
    idmap::run_helper(ids, pid, &ranges(maps)).map_err(|e| {
        Error::setup(match e {
            HelperError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("{name} not found: install the uidmap package to map more than your own id")
            }
            HelperError::Spawn(e) => format!("{name}: {e}"),
            HelperError::Failed(why) => format!(
                "{name} {}: {} (check {})",
                map_text(maps).trim().replace('\n', ", "),
                why.lines().last().unwrap_or("failed"),
                ids.subid_file()
            ),
        })
    })
}

/// A new user namespace with these maps, held by an fd (for id-mapped
/// mounts made before the container exists). A child is cloned into it,
/// mapped, its namespace opened, and the child killed.
pub fn new_userns(
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
) -> Result<std::os::fd::OwnedFd> {
    use crate::error::Context;
    use crate::sys;
    use std::os::fd::AsFd;
    match sys::clone_process(libc::CLONE_NEWUSER as u64, None)
        .step(|| "clone into a user namespace".into())?
    {
        sys::Cloned::Child => {
            // This child only waits to be killed.
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            loop {
                rustix::event::pause();
            }
        }
        sys::Cloned::Parent { pid, pidfd } => {
            let res = write_maps(pid, uid_maps, gid_maps).and_then(|()| {
                sys::open(
                    std::path::Path::new(&format!("/proc/{pid}/ns/user")),
                    rustix::fs::OFlags::RDONLY,
                )
                .step(|| "open the new user namespace".into())
            });
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::pidfd_wait(pidfd.as_fd(), false);
            res
        }
    }
}
