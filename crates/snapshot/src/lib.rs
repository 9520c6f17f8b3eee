//! berth-snapshot: from layer tars to a container's root filesystem.
//!
//! It owns every byte berth writes from an image's layers: unpacking them
//! safely, keeping each as a snapshot keyed by its chain id, and making a
//! container's rootfs as an overlay of snapshots (or a copy). It knows
//! nothing of OCI runtime specs (that is berth-spec), of registries or blobs
//! (berth-image: layers arrive here as decompressed tar streams), nor of the
//! runtime that later mounts and pivots into the rootfs: none of those
//! crates, nor oci-spec, may be imported here. berth-spec uses its
//! resolver ([`Root`]) to read files inside a rootfs; the arrow runs one way.
//!
//! - [`resolve`]: path resolution that never leaves a root directory
//!   (openat2 `RESOLVE_IN_ROOT`, or a userspace walk when openat2 is missing).
//! - [`layer`]: applying one decompressed OCI layer tar, Flatten or Overlay
//!   snapshot mode, digest-checked and size-capped.
//! - [`snapshot`]: snapshots keyed by chain id, unpacked once, published atomically.
//! - [`overlay`]: a container rootfs as an overlay of snapshots (copy fallback).
//! - [`copy`]: copying between snapshot trees (copy-up, flattening).
//! - [`archive`]: a tar stream of a tree in a root, never following a
//!   symlink out of it (`cp` out of a container; [`extract_archive`] is
//!   the way in).
//! - [`lowers`]: which snapshots of a chain show through.
//! - `whiteout` and `tree`: what unpacking and copying share: whiteouts and
//!   opaque markers in their layer and overlayfs forms; listing and removing
//!   a directory tree by fds.
//!
//! Typical use by the engine:
//!
//! ```no_run
//! # fn f(diff_ids: Vec<String>, open: impl Fn(usize) -> anyhow::Result<Box<dyn std::io::Read>> + Sync)
//! #     -> anyhow::Result<()> {
//! use berth_snapshot::{LayerDesc, Snapshots, mount_rootfs};
//! let snaps = Snapshots::new("/var/lib/berth/snapshots")?;
//! let layers: Vec<LayerDesc> = diff_ids.into_iter().map(|diff_id| LayerDesc { diff_id }).collect();
//! let lowers = snaps.prepare(&layers, open)?; // open(i): layer i's tar; layers unpack in parallel
//! let ctr = std::path::Path::new("/var/lib/berth/containers/abc");
//! let rootfs = mount_rootfs(ctr, &lowers)?; // overlay, or a copy; rootfs.path goes in the bundle
//! # Ok(()) }
//! ```
//!
//! Decisions worth knowing:
//! - Absolute entry names are taken relative to the target (`/etc/x` is
//!   `etc/x`), like Docker; a `..` climbing above the target is refused.
//! - Symlinks on the way to an entry are followed inside the target
//!   (containerd's semantics); a dangling one as a parent is an error, as in
//!   Docker; an entry's own name is replaced, never followed.
//! - The working directory (and, in the runtime, every mount point) is
//!   another matter: a dangling symlink on its way is followed inside the
//!   root and its target created, as runc and Docker do
//!   ([`Root::mkdir_all_following`]).
//! - Files read from an image (/etc/passwd, /etc/group) are read only when
//!   regular, never opened before fstat says so, and capped ([`Root::read_file`]).
//! - Our own resolver rather than pathrs: the fallback must be forceable in
//!   tests and the mkdir/dangling-symlink rules are layer-specific; every test
//!   runs through both resolvers, and one runs Auto under a seccomp filter
//!   that makes openat2 return ENOSYS.
//! - Overlay snapshots resolve paths within the layer's own snapshot: a layer
//!   writing through a symlink that only a lower layer has creates a real
//!   directory instead (as containerd does); real image layers never do this.
//! - A store whose filesystem refuses overlay whiteouts (overlayfs, when
//!   berth runs in a container) gets a self-contained snapshot for each
//!   layer that needs one: its chain merged, whiteouts applied for real,
//!   marked so the snapshots below it are left out (tests/overlay.rs). A
//!   layer without whiteouts is unpacked as anywhere else.

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod archive;
pub mod copy;
pub mod layer;
pub mod lowers;
pub mod overlay;
pub mod resolve;
pub mod snapshot;
mod tree;
mod whiteout;

pub use copy::flatten_snapshots;
pub use layer::{
    ApplyMode, ApplyOptions, ApplyReport, DEFAULT_MAX_BYTES, UpperOptions, UpperReport,
    apply_layer, apply_layer_gated, diff_id_of, extract_archive, write_upper, write_upper_with,
};
pub use overlay::{
    ContainerRootfs, RootfsKind, RootfsOptions, mount_rootfs, mount_rootfs_with, release_rootfs,
    remount_rootfs, remove_rootfs,
};
pub use resolve::{Resolver, Root};
pub use snapshot::{LayerDesc, Snapshots, chain_ids};

/// Delete `path` and everything under it, never following a symlink (a
/// container's files are the container's to choose). Mount points are not
/// checked: see [`release_rootfs`].
pub fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    tree::remove_tree(path)
}

/// Whether this process is in the initial user namespace (where root may
/// set `trusted.*` xattrs and overlayfs reads `trusted.overlay.*`); in any
/// other, even as its root, only `user.*` ones work.
pub fn in_initial_userns() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(berth_linux::in_initial_userns)
}
