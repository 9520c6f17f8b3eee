//! Image archives: `docker save` / `docker load` tars and OCI layouts in a tar.
//!
//! # What `save` writes (what Docker 25+ writes)
//!
//! ```text
//! blobs/sha256/<hex>   every manifest, config and layer blob, once, as the store
//!                      has it (layers compressed as pulled)
//! index.json           OCI index: one descriptor per tag (io.containerd.image.name
//!                      and org.opencontainers.image.ref.name), one per untagged image
//! manifest.json        Docker's: [{Config, RepoTags, Layers}] with blobs/sha256/<hex> paths
//! oci-layout           {"imageLayoutVersion":"1.0.0"}
//! repositories         Docker's {"repo":{"tag":"<top layer hex>"}}
//! ```
//!
//! Entries are sorted, owned by 0:0, mode 0644 (dirs 0755), mtime 0: saving
//! the same images twice gives the same bytes. Docker 20.10's `docker load`
//! reads manifest.json and decompresses each layer itself, so compressed
//! layers are fine for it.
//!
//! # What `load` reads
//!
//! - Docker's new format (the above), preferring manifest.json for names and
//!   the archive's own image manifest when index.json has one that matches;
//! - Docker's old format (20.10's `docker save`): manifest.json, `<hex>.json`
//!   configs, `<id>/layer.tar` uncompressed layers; a manifest is made for
//!   each image (OCI, deterministic), its layers stored uncompressed as given.
//!   A `layer.tar` may be a symlink to another `layer.tar` of the archive (20.10
//!   writes one for a layer an image holds twice): resolved by name, never on
//!   a filesystem; every other link is refused;
//! - a plain OCI image layout in a tar (skopeo's `oci-archive`), named by the
//!   index's `io.containerd.image.name` or a `name:tag` in
//!   `org.opencontainers.image.ref.name`; an index in it is resolved to the
//!   host's platform.
//!
//! # Guarantees of `load`
//! - The tar is streamed: layers go straight into store blobs, hashed as they
//!   are written; each compressed one is then inflated and hashed (its
//!   diff_id) on a thread of its own while the archive streams on (as many
//!   at once as there are cores, at most 4); only the small JSON files are
//!   held in memory, each capped ([`MAX_META_BYTES`]). About 10 MB resident.
//! - Every blob is checked: `blobs/sha256/<hex>` must hash to `<hex>`, a
//!   `<hex>.json` config too; descriptor sizes must match; every layer's
//!   diff_id is checked against its config before any image is recorded.
//! - A layer inflating past 100 times its size (and past 1 GiB) is refused
//!   as a decompression bomb, as pull refuses it.
//! - Refused: absolute paths, `..`, links (but the above), devices, fifos, a truncated entry
//!   or archive (no end marker). Names from GNU long-name and pax entries are
//!   read by berth, capped at 64 KiB (the tar crate would read any size).
//!   A refused archive records no image; the blobs it already wrote are ones
//!   whose name is their content (pruned by `image prune` as unreferenced).
//!   A write guard is held throughout, so a concurrent prune takes none.
//!
//! # Not done
//! - Foreign layers (`LayerSources`), progress bars.

mod inflate;
mod load;
mod save;

pub use load::{Loaded, load};
pub use save::save;

/// Largest manifest.json, index.json, repositories or oci-layout read.
pub const MAX_META_BYTES: u64 = 4 * 1024 * 1024;

#[cfg(test)]
mod tests;
