//! berth-rootfs: from layer tars to a container's root filesystem and OCI bundle.
//!
//! - [`resolve`]: path resolution that never leaves a root directory.
//! - [`layer`]: applying one OCI layer tar (flatten or overlay snapshot).
//! - [`snapshot`]: snapshots keyed by chain id, unpacked once, atomically.
//! - [`overlay`]: mounting a container rootfs over snapshots (copy fallback).
//! - [`bundle`]: image config + run options → OCI runtime spec.

pub mod copy;
pub mod layer;
pub mod resolve;

pub use copy::flatten_snapshots;
pub use layer::{ApplyMode, ApplyOptions, ApplyReport, DEFAULT_MAX_BYTES, apply_layer, diff_id_of};
pub use resolve::{Resolver, Root};
pub mod bundle;
pub mod overlay;
pub mod snapshot;

pub use bundle::{BundleSpec, ExecUser, RunOptions, build_spec};
pub use overlay::{ContainerRootfs, RootfsKind, mount_rootfs, mount_rootfs_with, remove_rootfs};
pub use snapshot::{LayerDesc, Snapshots, chain_ids};
