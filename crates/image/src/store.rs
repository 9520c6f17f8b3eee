//! The content-addressed image store under one root directory:
//!
//! ```text
//! <root>/blobs/sha256/<hex>      verified blobs (manifests, configs, layers), never partial
//! <root>/layers/<hex>.json       per-layer facts learnt while verifying (diff_id, unpacked size)
//! <root>/tmp/                    downloads in flight; each is flock'ed by its writer
//! <root>/images.json             the image index (tags and digests → image), replaced atomically
//! <root>/index.lock              serialises read-modify-write of images.json
//! <root>/gc.lock                 pulls hold it shared, blob pruning holds it exclusive
//! ```
//!
//! A blob only ever appears by `rename` from `tmp/` after its digest and size
//! were checked and the data fsync'ed, so a crash at any point leaves either no
//! file or a correct one. Several processes may pull into one root at once.
//!
//! Submodules: `blobs` (blobs and temp files), `layers` (layer facts and
//! tar streams), `images` (the image index and its records).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{FlockOperation, flock};

use blobs::TMP_GRACE;
pub use images::{ImageRecord, ImageSummary, RemoveEvent, chain_ids};
pub(crate) use layers::LayerFacts;
pub use layers::LayerInfo;
pub(crate) use write::ConfigFacts;
pub use write::{Blob, BlobWriter, MAX_CONFIG_BYTES, WriteGuard, familiar_tag};

mod blobs;
mod images;
mod layers;
mod write;

/// The store. Cheap to open; holds no lock between calls.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A held flock; released when dropped.
pub(crate) struct LockGuard(#[allow(dead_code)] File);

impl Store {
    /// Open (creating if needed) the store at `root`, reaping temp files left by dead writers.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        for d in ["blobs/sha256", "tmp", "layers"] {
            let p = root.join(d);
            fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        }
        let s = Store { root };
        s.reap_temp(TMP_GRACE)?;
        Ok(s)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take flock `op` on `<root>/<name>`, creating the file if need be.
    fn lock(&self, name: &str, op: FlockOperation) -> Result<LockGuard> {
        let p = self.root.join(name);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .with_context(|| format!("open {}", p.display()))?;
        flock(&f, op).with_context(|| format!("lock {}", p.display()))?;
        Ok(LockGuard(f))
    }

    /// Held (shared) by a pull from its first blob until its index entry is written,
    /// so a concurrent prune cannot remove blobs of an image not yet indexed.
    pub(crate) fn pull_guard(&self) -> Result<LockGuard> {
        self.lock("gc.lock", FlockOperation::LockShared)
    }
}
