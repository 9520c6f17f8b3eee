//! Which snapshots of a chain show through. Unpacking a layer over its
//! lowers and mounting a rootfs over an image's snapshots both see only
//! the snapshots above the last one that hides what is below it.

use std::path::{Path, PathBuf};

use crate::whiteout::OPAQUE_XATTRS;

/// The dir of self-contained snapshots' marks, beside the snapshots:
/// `<dir>/.base/<chainid-hex>` (see [`crate::snapshot`]).
pub(crate) const BASE: &str = ".base";

/// Whether the snapshot dir `snapshot` is marked self-contained (the
/// merged view of its chain): see [`crate::snapshot`].
pub(crate) fn is_base(snapshot: &Path) -> bool {
    match (snapshot.parent(), snapshot.file_name()) {
        (Some(dir), Some(name)) => std::fs::symlink_metadata(dir.join(BASE).join(name)).is_ok(),
        _ => false,
    }
}

/// The snapshots (bottom → top) a rootfs is made of: a layer whose root is
/// opaque (a `.wh..wh..opq` at its root) hides every layer below it, as in
/// umoci and containerd's tar applier, and so does a self-contained
/// snapshot (see [`crate::layer::ApplyReport::self_contained`]), the
/// merged view of its whole chain, which [`crate::Snapshots`] marks so.
/// overlayfs ignores the opaque xattr on a layer's root, so those lowers
/// are left out here instead.
pub fn visible_lowers(lowers: &[PathBuf]) -> &[PathBuf] {
    let hides = |d: &PathBuf| {
        let mut v = [0u8; 1];
        OPAQUE_XATTRS
            .iter()
            .any(|x| matches!(rustix::fs::lgetxattr(d, *x, &mut v), Ok(1) if v == *b"y"))
            || is_base(d)
    };
    match lowers.iter().rposition(hides) {
        Some(i) => &lowers[i..],
        None => lowers,
    }
}
