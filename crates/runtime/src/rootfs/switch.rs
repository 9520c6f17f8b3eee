//! The root switch: pivot_root where it can be had, a move onto / and
//! chroot where it cannot (or is not wanted).

use crate::error::{Context, Result};
use rustix::io::Errno;
use rustix::mount::{MountPropagationFlags, UnmountFlags, mount_change, unmount};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// Swap the root: pivot_root(".", ".") stacks the old root on top of the new
/// one, and a lazy unmount of "." then drops it — no chroot, no leftover
/// directory for the old root. Without pivot_root — asked for (`no_pivot`,
/// the [`crate::NO_PIVOT`] annotation) or refused with EPERM (a seccomp
/// filter: Docker's default profile refuses it inside a container) — the
/// rootfs is moved onto / instead ([`move_root`]).
pub(crate) fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    std::env::set_current_dir(rootfs).step(|| format!("chdir to rootfs {}", rootfs.display()))?;
    if !no_pivot {
        match rustix::process::pivot_root(".", ".") {
            Ok(()) => return drop_old_root(),
            Err(e @ rustix::io::Errno::PERM) => {
                // fd 2 is the container's stderr by now, which the caller
                // reads: fine for a debug line, never for more.
                tracing::debug!("pivot_root refused ({e}): moving the rootfs onto / instead");
            }
            Err(e) => return Err(e).step(|| format!("pivot_root to {}", rootfs.display())),
        }
    }
    move_root()
}

/// After pivot_root(".", "."): the old root is on top of the new one.
fn drop_old_root() -> Result<()> {
    // Slave first, so unmounting the old root cannot propagate anywhere.
    mount_change(
        ".",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .step(|| "make old root rslave".into())?;
    unmount(".", UnmountFlags::DETACH).step(|| "unmount old root".into())?;
    std::env::set_current_dir("/").step(|| "chdir to new root".into())
}

/// The root switch without pivot_root, as runc's `--no-pivot`: the rootfs
/// mount (the cwd) is moved onto / and chrooted into.
///
/// What the container can reach stays what pivot_root gives it: `..` from
/// its root walks to the old root's / and straight back onto the mount on
/// top of it (so chroot climbing ends at the rootfs), and
/// /proc/self/mountinfo lists only the mounts under its root (the old
/// root's are unreachable, so left out, as after pivot_root; the rootfs
/// line names host paths in both cases).
///
/// The limit, which runc documents too: the old root stays underneath, the
/// root of the mount namespace. A container with CAP_SYS_ADMIN can
/// `umount -l /` and setns(2) into its own mount namespace, and lands there:
/// on the host's root filesystem. Nothing cheap prevents it (only mounts
/// locked by a user namespace cannot be unmounted, and the rootfs mount is
/// made after the namespace); only pivot_root does, or withholding
/// CAP_SYS_ADMIN.
fn move_root() -> Result<()> {
    // Nothing here propagates to the host: / is rprivate or rslave (see
    // prepare), and under a shared parent the move is refused (EINVAL).
    rustix::mount::mount_move(".", "/").step(|| "move rootfs onto / (no pivot_root)".into())?;
    detach_old_mounts().step(|| "detach the old root's mounts".into())?;
    rustix::process::chroot(".").step(|| "chroot into rootfs".into())?;
    std::env::set_current_dir("/").step(|| "chdir to new root".into())
}

/// After the move, before the chroot: detach every mount on the old root
/// but the rootfs, so that the old root, uncovered, holds none of the
/// host's (no /proc or /sys beside which a fresh one could be mounted, as
/// runc's reason goes; no bind of anything). Newest first, so that a mount
/// hiding an older one's mount point goes first. Mounts the kernel keeps
/// (locked to their parent in a user namespace) stay.
fn detach_old_mounts() -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let me = statx(CWD, ".", AtFlags::empty(), StatxFlags::MNT_ID)?.stx_mnt_id;
    // Read through the old root's /proc, and its mount points are paths
    // from the old root: this process's root is still there.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounts: Vec<(u64, u64, &str)> = mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let id = f.next()?.parse().ok()?;
            let parent = f.next()?.parse().ok()?;
            Some((id, parent, f.nth(2)?))
        })
        .collect();
    let Some(&(_, old, _)) = mounts.iter().find(|m| m.0 == me) else {
        return Ok(());
    };
    for &(id, parent, point) in mounts.iter().rev() {
        if parent != old || id == me {
            continue;
        }
        let point = unescape(point);
        match unmount(&point, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
            // Locked, hidden under a newer mount, or gone with one.
            Err(Errno::INVAL | Errno::NOENT | Errno::NOTDIR | Errno::ACCESS) => {}
            r => r.map_err(|e| {
                let e = io::Error::from(e);
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: {}",
                        Path::new(&point).display(),
                        crate::error::strip_os_error(&e)
                    ),
                )
            })?,
        }
    }
    Ok(())
}

/// A mountinfo field with its octal escapes (`\040` for a space …) undone.
pub(super) fn unescape(field: &str) -> std::ffi::OsString {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b\011c\134d\012"), "/a b\tc\\d\n");
        assert_eq!(unescape(r"/plain\0"), r"/plain\0");
    }
}
