//! From an image in the store to a container's root filesystem: each layer
//! is unpacked once into a snapshot keyed by its chain id, and a container's
//! rootfs is an overlay of those snapshots with its own upper and work dirs.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_image::ImageRecord;

use crate::engine::Engine;
use crate::spec;

/// Where `--init` puts berth's own binary inside the container.
pub const INIT_PATH: &str = "/sbin/berth-init";

pub struct Lowers {
    /// Snapshot dirs, bottom layer first.
    pub dirs: Vec<PathBuf>,
    /// Their chain ids (hex), bottom first.
    pub chain_ids: Vec<String>,
}

fn snapshots_dir(engine: &Engine) -> PathBuf {
    engine.root.join("snapshots")
}

/// Unpacks one layer into the snapshot `chain_hex` unless it exists:
/// under an flock per snapshot (concurrent berth processes), into a temp
/// dir that only a rename makes visible (crashes leave nothing usable).
fn unpack_snapshot(
    base: &Path,
    chain_hex: &str,
    diff_id: &str,
    lowers: &[PathBuf],
    tar: &mut dyn Read,
) -> Result<()> {
    let dir = base.join(chain_hex);
    if dir.join("fs").is_dir() {
        return Ok(());
    }
    let lock = File::create(base.join(format!("{chain_hex}.lock")))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).context("lock snapshot")?;
    if dir.join("fs").is_dir() {
        return Ok(());
    }
    // Whatever a dead unpack left under this name is discarded.
    let tmp = base.join(format!("{chain_hex}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(tmp.join("fs"))?;
    let opts = berth_rootfs::ApplyOptions {
        mode: berth_rootfs::ApplyMode::Overlay {
            lowers: lowers.to_vec(),
        },
        ..Default::default()
    };
    let res = berth_rootfs::apply_layer(tar, &tmp.join("fs"), diff_id, &opts).and_then(|_| {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&tmp, &dir).context("commit snapshot")
    });
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res.map(|_| ())
}

/// Unpacks every layer of `img` that has no snapshot yet and returns the
/// snapshot dirs. Missing layers are unpacked in parallel first, each on
/// its own; any that needs its lowers (a hardlink into one) is redone
/// bottom-up after.
pub fn prepare(engine: &Engine, img: &ImageRecord) -> Result<Lowers> {
    let base = snapshots_dir(engine);
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    let layers = engine.store.layers(img);
    let ids: Vec<String> = img
        .chain_ids()
        .iter()
        .map(|c| c.hex().to_string())
        .collect();
    let missing: Vec<usize> = (0..layers.len())
        .filter(|&i| !base.join(&ids[i]).join("fs").is_dir())
        .collect();
    if missing.len() > 1 {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(missing.len());
        // Scoped threads: all joined before the runtime may fork.
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(&i) = missing.get(k) else { break };
                        let res = engine.store.open_layer(&layers[i]).and_then(|mut tar| {
                            unpack_snapshot(
                                &base,
                                &ids[i],
                                layers[i].diff_id.as_str(),
                                &[],
                                &mut tar,
                            )
                        });
                        if let Err(e) = res {
                            tracing::debug!(
                                "layer {} left for the ordered pass: {e:#}",
                                layers[i].digest
                            );
                        }
                    }
                });
            }
        });
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (layer, hex) in layers.iter().zip(&ids) {
        if !base.join(hex).join("fs").is_dir() {
            let mut tar = engine.store.open_layer(layer)?;
            unpack_snapshot(&base, hex, layer.diff_id.as_str(), &dirs, &mut tar)
                .with_context(|| format!("unpack layer {}", layer.digest))?;
        }
        dirs.push(base.join(hex).join("fs"));
    }
    Ok(Lowers {
        dirs,
        chain_ids: ids,
    })
}

/// Pulls `reference` and unpacks its layers while they download, each
/// layer decompressed once and unpacked on the pull's own threads. A layer
/// that cannot be unpacked on its own (a hardlink into a lower layer that
/// is still being unpacked) is left for [`prepare`], which runs after.
pub fn pull(
    engine: &Engine,
    reference: &str,
    opts: &berth_image::PullOptions,
    progress: &berth_image::Progress,
) -> Result<ImageRecord> {
    let base = snapshots_dir(engine);
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    let sink = |_i: usize,
                layer: &berth_image::LayerInfo,
                chain: &berth_image::Digest,
                tar: &mut dyn Read|
     -> Result<()> {
        if let Err(e) = unpack_snapshot(&base, chain.hex(), layer.diff_id.as_str(), &[], tar) {
            tracing::debug!("layer {} left for a second pass: {e:#}", layer.digest);
        }
        Ok(())
    };
    let pulled =
        berth_image::pull_with_unpack(&engine.store, reference, opts, progress, Some(&sink))?;
    prepare(engine, &pulled.image)?;
    Ok(pulled.image)
}

/// Mounts the overlay at `<cdir>/rootfs` and returns that path.
pub fn mount_rootfs(lowers: &Lowers, cdir: &Path) -> Result<PathBuf> {
    let rootfs = cdir.join("rootfs");
    let upper = cdir.join("upper");
    let work = cdir.join("work");
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    overlay_mount(&lowers.dirs, &upper, &work, &rootfs)?;
    Ok(rootfs)
}

/// Unmounts `<cdir>/rootfs` if mounted (idempotent: cleanup after a crash).
pub fn unmount_rootfs(cdir: &Path) -> Result<()> {
    let rootfs = cdir.join("rootfs");
    match rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("unmount {}", rootfs.display())),
    }
}

fn overlay_mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    // overlayfs lists the top layer first.
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let opts = std::ffi::CString::new(opts).context("overlay options")?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(opts.as_c_str()),
    )
    .with_context(|| format!("mount overlay rootfs at {}", target.display()))
}

/// Removes snapshots that no image in the store and no container uses.
pub fn prune(engine: &Engine) -> Result<usize> {
    let base = snapshots_dir(engine);
    let mut keep: HashSet<String> = HashSet::new();
    for img in engine.store.images()? {
        keep.extend(img.chain_ids().iter().map(|c| c.hex().to_string()));
    }
    for c in crate::state::Containers::open(&engine.root)?.list()? {
        keep.extend(c.snapshots);
    }
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(&base) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let id = name.trim_end_matches(".lock").trim_end_matches(".tmp");
        if keep.contains(id) || name.ends_with(".lock") {
            continue;
        }
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[allow(clippy::too_many_arguments)]
pub fn build_spec(
    image: &oci_spec::image::ImageConfiguration,
    rootfs: &Path,
    args: &crate::cli::RunArgs,
    env: Vec<String>,
    hostname: String,
    host_network: bool,
    mounts: Vec<oci_spec::runtime::Mount>,
    init: Option<String>,
) -> Result<spec::Built> {
    spec::build(
        image,
        rootfs,
        &spec::Request {
            entrypoint: args.entrypoint.clone(),
            cmd: args.command.clone(),
            env,
            workdir: args.workdir.clone(),
            user: args.user.clone(),
            hostname,
            tty: args.tty,
            read_only: args.read_only,
            host_network,
            mounts,
            init,
        },
    )
}
