//! The build cache: step key → the intermediate image it made, one small
//! file per key under `ROOT/build-cache`, written to a temporary name and
//! renamed, so a crash leaves an entry whole or absent. An entry whose
//! image is gone (removed, pruned) is a miss.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_image::ImageRecord;
use berth_image::digest::Hasher;

use crate::Engine;

pub struct Cache<'a> {
    engine: &'a Engine,
    dir: PathBuf,
}

/// The key of a step: its parent's key and what it is.
pub fn key(parent: &str, parts: &[&str]) -> String {
    let mut h = Hasher::new();
    h.update(parent.as_bytes());
    for p in parts {
        h.update(b"\n");
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finish().to_string()
}

impl<'a> Cache<'a> {
    pub fn new(engine: &'a Engine) -> Cache<'a> {
        Cache {
            engine,
            dir: engine.root.join("build-cache"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.trim_start_matches("sha256:"))
    }

    /// The image cached under `key`, if it is still there.
    pub fn get(&self, key: &str) -> Option<ImageRecord> {
        let id = std::fs::read_to_string(self.path(key)).ok()?;
        let img = self.engine.store.resolve(id.trim()).ok()?;
        (img.id.to_string() == id.trim()).then_some(img)
    }

    /// The ids of the images the cache holds: a build's intermediate
    /// images, which `images` hides as Docker hides them (unless `-a`).
    pub fn image_ids(&self) -> std::collections::HashSet<String> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Default::default();
        };
        dir.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|id| id.trim().to_string())
            .collect()
    }

    /// Records `img` under `key`.
    pub fn put(&self, key: &str, img: &ImageRecord) -> Result<()> {
        std::fs::create_dir_all(&self.dir).context("create the build cache")?;
        let dest = self.path(key);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            key.trim_start_matches("sha256:")
        ));
        let mut f = std::fs::File::create(&tmp).context("write a build cache entry")?;
        f.write_all(img.id.to_string().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &dest).context("write a build cache entry")?;
        Ok(())
    }
}

/// `builder prune`: drops every entry and the cache mounts, then the
/// images the entries named that no tag and no container keeps (the
/// blobs are the caller's to prune).
pub fn prune(engine: &Engine) -> Result<crate::system::PrunedImages> {
    let cache = Cache::new(engine);
    let ids = cache.image_ids();
    if let Ok(dir) = std::fs::read_dir(&cache.dir) {
        for e in dir.flatten() {
            std::fs::remove_file(e.path())
                .with_context(|| format!("remove {}", e.path().display()))?;
        }
    }
    // The RUN --mount=type=cache directories go with the cache.
    let mounts = engine.root.join(super::steps::CACHE_MOUNTS);
    if mounts.exists() {
        std::fs::remove_dir_all(&mounts).with_context(|| format!("remove {}", mounts.display()))?;
    }
    crate::system::prune_images(engine, false, |img| ids.contains(&img.id.to_string()))
}
