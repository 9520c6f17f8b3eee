//! What the root holds and what can go (`system df`, `system prune`), and
//! image removal (`rmi`, `image prune`) with its events: the image store
//! removes, the engine knows which containers use an image.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, bail};
use berth_image::{ImageRecord, RemoveEvent};

use crate::Engine;
use crate::records::ContainerRecord;

/// Removes (or untags) the image `name` names, as `rmi` does: one that a
/// container uses only with `force`, and then only untagged, as Docker
/// does. Emits Docker's `untag` and `delete` events.
pub fn remove_image(engine: &Engine, name: &str, force: bool) -> Result<Vec<RemoveEvent>> {
    let img = engine.store.resolve(name)?;
    let users: Vec<String> = engine
        .records()?
        .list()?
        .into_iter()
        .filter(|c| c.image_id == img.id.as_str())
        .map(|c| c.name)
        .collect();
    if !users.is_empty() && !force {
        bail!(
            "conflict: unable to remove {name}: image is in use by container {} (use -f to force)",
            users.join(", ")
        );
    }
    let done = engine.store.remove(name, force, !users.is_empty())?;
    removal_events(engine, &img, &done);
    Ok(done)
}

/// Docker's events of an image removal: `untag` for each name dropped,
/// then `delete`, each about the image id.
fn removal_events(engine: &Engine, img: &ImageRecord, done: &[RemoveEvent]) {
    let id = img.id.as_str();
    for ev in done {
        match ev {
            RemoveEvent::Untagged(_) => crate::events::image(engine, "untag", id, id),
            RemoveEvent::Deleted(_) => crate::events::image(engine, "delete", id, id),
        }
    }
}

/// What an image prune did.
#[derive(Debug, Default)]
pub struct PrunedImages {
    pub events: Vec<RemoveEvent>,
    /// The sizes of the images deleted.
    pub reclaimed: u64,
}

/// Removes the images no container (of any state) uses: dangling
/// (untagged) ones, or with `all` every one. `selected` may keep some
/// (prune's filters). Blobs and snapshots no image needs any more are the
/// caller's to prune after (`Store::prune_blobs`, `rootfs_prep::prune`).
pub fn prune_images(
    engine: &Engine,
    all: bool,
    selected: impl Fn(&ImageRecord) -> bool,
) -> Result<PrunedImages> {
    let used: HashSet<String> = engine
        .records()?
        .list()?
        .into_iter()
        .map(|c| c.image_id)
        .collect();
    let mut out = PrunedImages::default();
    for img in engine.store.images()? {
        let removable = img.repo_tags.is_empty() || all;
        if !removable || used.contains(img.id.as_str()) || !selected(&img) {
            continue;
        }
        let done = engine.store.remove(img.id.as_str(), true, false)?;
        removal_events(engine, &img, &done);
        if done.iter().any(|e| matches!(e, RemoveEvent::Deleted(_))) {
            out.reclaimed += img.size;
        }
        out.events.extend(done);
    }
    Ok(out)
}

/// An image and how many containers (of any state) use it.
pub struct ImageUsage {
    pub image: ImageRecord,
    pub containers: usize,
}

/// A container and the bytes it has written.
pub struct ContainerUsage {
    pub record: ContainerRecord,
    pub size: u64,
}

/// What `system df` reports.
pub struct DiskUsage {
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
}

/// The images and containers under the root, with their sizes.
pub fn disk_usage(engine: &Engine) -> Result<DiskUsage> {
    let records = engine.records()?.list()?;
    let mut users: HashMap<&str, usize> = HashMap::new();
    for c in &records {
        *users.entry(c.image_id.as_str()).or_default() += 1;
    }
    let images = engine
        .store
        .images()?
        .into_iter()
        .map(|image| {
            let containers = users.get(image.id.as_str()).copied().unwrap_or(0);
            ImageUsage { image, containers }
        })
        .collect();
    let containers = records
        .iter()
        .map(|c| ContainerUsage {
            size: crate::prune::container_size(engine, &c.id),
            record: c.clone(),
        })
        .collect();
    Ok(DiskUsage { images, containers })
}
