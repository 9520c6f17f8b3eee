//! Whiteouts and opaque directories in their two forms: the OCI layer's
//! names (`.wh.NAME`, `.wh..wh..opq`), which unpacking reads, and
//! overlayfs's (a 0:0 character device, an `overlay.opaque` xattr), which
//! overlay snapshots hold and copying and flattening read back.

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;

use rustix::fs::{FileType, Mode, OFlags, Stat};

/// A layer entry named `.wh.NAME` deletes NAME of the layers below.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// A layer entry with this name makes its directory opaque.
pub(crate) const OPAQUE: &[u8] = b".wh..wh..opq";
/// overlayfs's opaque marker: `trusted.` needs root; unprivileged overlay
/// (in a user namespace, `userxattr`) reads the `user.` one instead.
pub(crate) const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
pub(crate) const USER_OVERLAY_OPAQUE_XATTR: &str = "user.overlay.opaque";
/// Either marks a snapshot dir opaque: snapshots made as root carry the
/// trusted. one, unprivileged ones the user. one (see
/// [`crate::lowers::visible_lowers`]).
pub(crate) const OPAQUE_XATTRS: [&str; 2] = [OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR];

/// Whether `st` is an overlay whiteout (a character device 0:0).
pub(crate) fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Whether the directory `dir/name` carries an overlay opaque marker.
pub(crate) fn is_opaque(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut buf = [0u8; 4];
    OPAQUE_XATTRS
        .iter()
        .any(|x| matches!(rustix::fs::fgetxattr(&fd, *x, &mut buf), Ok(1) if buf[0] == b'y'))
}
