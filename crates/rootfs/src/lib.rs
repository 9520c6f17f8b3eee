//! berth-rootfs: from layer tars to a container's root filesystem and OCI bundle.
//!
//! - [`resolve`]: path resolution that never leaves a root directory
//!   (openat2 `RESOLVE_IN_ROOT`, or a userspace walk when openat2 is missing).
//! - [`layer`]: applying one decompressed OCI layer tar, Flatten or Overlay
//!   snapshot mode, digest-checked and size-capped.
//! - [`snapshot`]: snapshots keyed by chain id, unpacked once, published atomically.
//! - [`overlay`]: a container rootfs as an overlay of snapshots (copy fallback).
//! - [`bundle`]: image config + run options → OCI runtime spec, Docker's rules.
//! - [`user`]: `--user` against the image's passwd and group files.
//! - [`seccomp`]: Docker's seccomp profiles (berth's default, `--security-opt`)
//!   evaluated for one container into the spec's `linux.seccomp`.
//!
//! Typical use by the engine:
//!
//! ```no_run
//! # fn f(diff_ids: Vec<String>, open: impl Fn(usize) -> anyhow::Result<Box<dyn std::io::Read>> + Sync,
//! #      image: oci_spec::image::ImageConfiguration) -> anyhow::Result<()> {
//! use berth_rootfs::{LayerDesc, RunOptions, Snapshots, build_spec, mount_rootfs};
//! let snaps = Snapshots::new("/var/lib/berth/snapshots")?;
//! let layers: Vec<LayerDesc> = diff_ids.into_iter().map(|diff_id| LayerDesc { diff_id }).collect();
//! let lowers = snaps.prepare(&layers, open)?; // open(i): layer i's tar; layers unpack in parallel
//! let ctr = std::path::Path::new("/var/lib/berth/containers/abc");
//! let rootfs = mount_rootfs(ctr, &lowers)?; // overlay, or a copy
//! let bundle = build_spec(&image, &RunOptions { rootfs: rootfs.path.clone(), hostname: "abc".into(), ..Default::default() })?;
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
//! - No inheritable capabilities (Docker ≥ 20.10.14, CVE-2022-24769).

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod copy;
pub mod layer;
pub mod resolve;

pub use copy::flatten_snapshots;
pub use layer::{
    ApplyMode, ApplyOptions, ApplyReport, DEFAULT_MAX_BYTES, apply_layer, apply_layer_gated,
    diff_id_of,
};
pub use resolve::{Resolver, Root};
pub mod bundle;
pub mod overlay;
pub mod seccomp;
pub mod snapshot;
pub mod user;

pub use bundle::{BundleSpec, ExecUser, RunOptions, build_spec};
pub use overlay::{
    ContainerRootfs, RootfsKind, RootfsOptions, mount_rootfs, mount_rootfs_with, release_rootfs,
    remove_rootfs,
};

/// Delete `path` and everything under it, never following a symlink (a
/// container's files are the container's to choose). Mount points are not
/// checked: see [`release_rootfs`].
pub fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    snapshot::remove_tree(path)
}
pub use snapshot::{LayerDesc, Snapshots, chain_ids};

/// Whether this process is in the initial user namespace (where root may
/// set `trusted.*` xattrs and overlayfs reads `trusted.overlay.*`); in any
/// other, even as its root, only `user.*` ones work.
pub fn in_initial_userns() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
            .unwrap_or(true)
    })
}
