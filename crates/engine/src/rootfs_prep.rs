//! Preparing an image's snapshots and mounting a container's root
//! filesystem, through berth-rootfs's snapshot store: each layer is
//! unpacked once into a snapshot keyed by its chain id (while it downloads,
//! when it can), and a container's rootfs is an overlay of those snapshots
//! with its own upper and work dirs (a private copy where overlay can't be
//! used). The store itself, and what a snapshot is, are berth-rootfs's.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_image::{Digest, ImageRecord, LayerInfo, SinkLayer};
use berth_snapshot::snapshot::{LayerDesc, Snapshots};

use crate::Engine;

pub struct Lowers {
    /// Snapshot dirs, bottom layer first.
    pub dirs: Vec<PathBuf>,
}

fn snapshots(engine: &Engine) -> Result<Snapshots> {
    Snapshots::new(engine.root.join("snapshots"))
}

/// The snapshot dirs a container's rootfs stands on, bottom first (from
/// its record's chain ids).
pub fn lowers_of(engine: &Engine, c: &crate::records::ContainerRecord) -> Result<Vec<PathBuf>> {
    let snaps = snapshots(engine)?;
    c.snapshots.iter().map(|chain| snaps.path(chain)).collect()
}

fn descs(diff_ids: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<LayerDesc> {
    diff_ids
        .into_iter()
        .map(|d| LayerDesc {
            diff_id: d.as_ref().to_string(),
        })
        .collect()
}

/// Unpacks every layer of `img` that has no snapshot yet, bottom up, and
/// returns the snapshot dirs.
pub fn prepare(engine: &Engine, img: &ImageRecord) -> Result<Lowers> {
    let layers: Vec<LayerInfo> = engine.store.layers(img);
    let descs = descs(layers.iter().map(|l| l.diff_id.as_str()));
    let dirs = snapshots(engine)?.prepare(&descs, |i| {
        Ok(Box::new(engine.store.open_layer(&layers[i])?) as Box<dyn Read>)
    })?;
    Ok(Lowers { dirs })
}

/// Takes a container's unmounted upper dir, just written as the layer
/// that makes `chain`, as that chain's snapshot (see
/// [`Snapshots::adopt`]); false when it could not be taken.
pub(crate) fn adopt(engine: &Engine, chain: &str, upper: &Path) -> Result<bool> {
    snapshots(engine)?.adopt(chain, upper, crate::diff::PREPARED)
}

/// Pulls `reference`, unpacking each layer while it downloads when the
/// layers below it are already unpacked (decompressed once, on the pull's
/// threads); [`prepare`] then finishes the rest from the stored blobs.
pub fn pull(
    engine: &Engine,
    reference: &str,
    opts: &berth_image::PullOptions,
    progress: &berth_image::Progress,
) -> Result<ImageRecord> {
    let snaps = snapshots(engine)?;
    // Every layer starts unpacking as it arrives; one that needs its lowers
    // waits for them, and gives up when the pull does or another sink gave
    // up (that lower will not appear before prepare() below finishes it).
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let sink = |at: &SinkLayer<'_>, tar: &mut dyn Read| -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let layers = descs(at.diff_ids.iter().map(Digest::as_str));
        let give_up = || at.cancelled.load(SeqCst) || stopped.load(SeqCst);
        match snaps.unpack_layer(&layers, at.index, tar, &give_up) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                stopped.store(true, SeqCst);
                Ok(())
            }
            Err(e) => {
                stopped.store(true, SeqCst);
                Err(e)
            }
        }
    };
    let pulled =
        berth_image::pull_with_unpack(&engine.store, reference, opts, progress, Some(&sink))?;
    prepare(engine, &pulled.image)?;
    pulled_event(engine, reference);
    Ok(pulled.image)
}

/// Docker's `pull` event: the reference as pulled (with its tag), named
/// by its repository.
fn pulled_event(engine: &Engine, reference: &str) {
    let (name, id) = match berth_image::Reference::parse(reference) {
        Ok(r) => (r.familiar_name(), r.with_default_tag().familiar()),
        Err(_) => (reference.to_string(), reference.to_string()),
    };
    crate::events::image(engine, "pull", &id, &name);
}

/// Mounts the container's rootfs at `<cdir>/rootfs` and returns that path;
/// the upper dir goes in `scratch` when `cdir` cannot hold it (on
/// overlayfs); `volatile` for a container removed when it ends. Rootless
/// berth outside a user namespace of its own copies: it cannot mount
/// overlayfs there.
pub fn mount_rootfs(
    lowers: &Lowers,
    cdir: &Path,
    scratch: &Path,
    volatile: bool,
) -> Result<PathBuf> {
    let opts = berth_snapshot::RootfsOptions {
        force_copy: crate::rootless::active() && !crate::rootless::in_own_userns(),
        volatile,
        scratch: Some(scratch),
    };
    let rootfs = berth_snapshot::overlay::mount_rootfs_with(cdir, &lowers.dirs, opts)?;
    tracing::debug!(
        "rootfs: {:?}, upper dir {:?}",
        rootfs.kind,
        rootfs.upper.as_deref().unwrap_or(Path::new("-"))
    );
    Ok(rootfs.path)
}

/// Unmounts `<cdir>/rootfs` if mounted; idempotent, so it also cleans up
/// after a berth that died.
pub fn unmount_rootfs(cdir: &Path) -> Result<()> {
    let rootfs = cdir.join("rootfs");
    match rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        // Rootless berth never mounts a rootfs (it copies), and may not unmount.
        Err(rustix::io::Errno::PERM) if crate::rootless::active() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("unmount {}", rootfs.display())),
    }
}

/// Unmounts everything of the container's rootfs, making sure no mount is
/// left under `cdir` before it is deleted.
pub fn release_rootfs(cdir: &Path) -> Result<()> {
    berth_snapshot::overlay::release_rootfs(cdir)
}

/// Removes snapshots that no image in the store and no container uses.
pub fn prune(engine: &Engine) -> Result<usize> {
    let mut keep: HashSet<String> = HashSet::new();
    for img in engine.store.images()? {
        keep.extend(img.chain_ids().iter().map(|c| c.to_string()));
    }
    for c in crate::records::Records::open(&engine.root)?.list()? {
        keep.extend(c.snapshots);
    }
    Ok(snapshots(engine)?.remove_except(&keep)?.len())
}
