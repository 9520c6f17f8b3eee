//! Pulling: reference → manifest (→ platform) → config → layers, every byte
//! verified before it becomes visible in the store.
//!
//! This module runs the steps; fetching one layer is `layer`'s, verifying a
//! layer while it streams is `verify`'s.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, bail};

use crate::auth;
use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageManifest, Manifest, Platform, select_platform};
use crate::progress::Progress;
use crate::reference::{DOCKER_HUB, Reference};
use crate::registry::{FetchedManifest, RegistryOptions, Session, Transient, is_transient};
use crate::store::{ConfigFacts, ImageRecord, LayerInfo, MAX_CONFIG_BYTES, Store};
use layer::LayerFetcher;
use verify::is_cancelled;

mod layer;
mod verify;

/// Most layers an image may have (Docker's own limit).
const MAX_LAYERS: usize = 125;

/// Options of one pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    pub registry: RegistryOptions,
    /// `--platform`; `None` means the host's, and a single-platform image is then taken as is.
    pub platform: Option<Platform>,
    /// Layers fetched at once.
    pub parallel_layers: usize,
    /// A layer may inflate to this many times its compressed size (0: no
    /// limit), and always to `inflate_floor` bytes. Beyond, it is refused as
    /// a decompression bomb while it streams.
    pub max_inflate_ratio: u64,
    /// See `max_inflate_ratio`.
    pub inflate_floor: u64,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            registry: RegistryOptions::default(),
            platform: None,
            parallel_layers: 3,
            // Real layers inflate 2-5:1, text-heavy ones ~10:1; 100:1 is the
            // zip-bomb threshold Apache POI uses by default. gzip tops out
            // near 1032:1, so a 48 MB bomb stops at 4.8 GB, not 50 GB. The
            // 1 GiB floor keeps small layers holding big runs of zeros (the
            // sparse /var/log/lastlog that useradd makes) working.
            max_inflate_ratio: 100,
            inflate_floor: 1 << 30,
        }
    }
}

/// What a pull produced.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub image: ImageRecord,
    /// The normalised reference pulled (tag defaulted to `latest`).
    pub reference: Reference,
    /// Digest of what the registry served for the reference (index digest for multi-platform images).
    pub digest: Digest,
    /// Whether anything had to be downloaded.
    pub downloaded: bool,
}

/// Pull `reference` into `store`. Errors read `pull <reference>: <why>`.
pub fn pull(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<Pulled> {
    pull_with_unpack(store, reference, opts, progress, None)
}

/// What a [`LayerSink`] is told about the layer whose stream it receives.
pub struct SinkLayer<'a> {
    /// Position in the image, bottom first.
    pub index: usize,
    pub layer: &'a LayerInfo,
    /// Every layer's diff_id, bottom first: the ones below `index` name what
    /// this layer must be unpacked on (its chain id).
    pub diff_ids: &'a [Digest],
    /// Set once the pull is giving up (some layer failed): a sink that waits
    /// for other layers must stop waiting.
    pub cancelled: &'a AtomicBool,
}

/// Receives each layer's DECOMPRESSED tar stream during a pull. See [`pull_with_unpack`].
pub type LayerSink<'a> = &'a (dyn Fn(&SinkLayer<'_>, &mut dyn Read) -> Result<()> + Sync);

/// [`pull`], handing every layer's decompressed tar to `sink` while it downloads,
/// so a caller can unpack with a single decompression (the store keeps the blob).
///
/// Contract for `sink`:
/// - it is called for every layer of the image, possibly concurrently for
///   different layers, on the pull's threads (all joined before this returns);
///   layers already in the store are streamed from there;
/// - a downloading layer is streamed BEFORE its digest is known to be right: if
///   verification fails the stream ends in an error, and the sink must return an
///   error and leave nothing behind. A retried download calls the sink again for
///   the same layer. Trust what the sink produced only when this returns `Ok`;
/// - a sink may stop reading early (say, the snapshot already exists): the
///   pull still verifies the whole blob;
/// - an error from the sink fails the pull.
pub fn pull_with_unpack(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
    progress: &Progress,
    sink: Option<LayerSink<'_>>,
) -> Result<Pulled> {
    let r = match Reference::parse(reference) {
        Ok(r) => r.with_default_tag(),
        Err(e) => bail!("pull {reference}: {e}"),
    };
    pull_ref(store, &r, opts, progress, sink).map_err(|e| anyhow!("pull {r}: {e:#}"))
}

/// A pull, step by step: each step is a function of its own below.
fn pull_ref(
    store: &Store,
    r: &Reference,
    opts: &PullOptions,
    progress: &Progress,
    sink: Option<LayerSink<'_>>,
) -> Result<Pulled> {
    let (session, top) = resolve_manifest(opts, r)?;
    progress.status(&format!(
        "{}: Pulling from {}",
        r.tag
            .as_deref()
            .unwrap_or(r.digest.as_ref().map_or("latest", |d| d.as_str())),
        r.repository
    ));
    // From the first blob written until the index names them, keep prune away.
    let _guard = store.pull_guard()?;
    let chosen = choose_platform(store, &session, &top, opts)?;

    // Docker's limit (moby's maxLayerDepth, "max depth exceeded"). Every
    // layer is a snapshot to unpack, a chain id over those below it and an
    // overlay lower dir (the kernel stacks at most 500): refused before any
    // of that, and before the config is fetched.
    if chosen.manifest.layers.len() > MAX_LAYERS {
        bail!(
            "the image has {} layers, more than the {MAX_LAYERS} Docker allows",
            chosen.manifest.layers.len()
        );
    }

    let (cfg, config_fetched) = fetch_config(store, &session, &chosen.manifest, opts)?;
    let (layers, layers_fetched) = fetch_layers(
        store,
        &session,
        &chosen.manifest.layers,
        &cfg.rootfs.diff_ids,
        opts,
        progress,
        sink,
    )?;
    let manifest_fetched = !store.has_blob(&chosen.digest);
    let downloaded = config_fetched | layers_fetched | manifest_fetched;
    let image = record_pulled(store, r, &top, chosen, cfg, layers)?;
    progress.status(&format!("Digest: {}", top.digest));
    progress.status(&if downloaded {
        format!("Status: Downloaded newer image for {}", r.familiar())
    } else {
        format!("Status: Image is up to date for {}", r.familiar())
    });
    Ok(Pulled {
        image,
        reference: r.clone(),
        digest: top.digest,
        downloaded,
    })
}

/// Fetch the manifest `r` names (through Docker Hub's mirrors first) and
/// check a digest reference against the bytes served. An anonymous pull
/// that is denied gets Docker's hint: log in, or no such repository.
fn resolve_manifest(opts: &PullOptions, r: &Reference) -> Result<(Session, FetchedManifest)> {
    let (session, top) = open_with_mirrors(opts, r).map_err(|e| {
        // Docker's hint: without credentials a 401/403 usually means "log in" or "no such repo".
        let text = format!("{e:#}");
        let anonymous = auth::lookup(&opts.registry.auth_file(), &r.registry)
            .ok()
            .flatten()
            .is_none();
        let denied = e.chain().any(|c| {
            c.downcast_ref::<crate::registry::StatusError>()
                .is_some_and(|s| s.is_denied())
        });
        if anonymous && denied {
            anyhow!(
                "pull access denied for {}, repository does not exist or may require 'berth login': {text}",
                r.familiar_name()
            )
        } else {
            e
        }
    })?;
    if let Some(want) = &r.digest
        && top.digest != *want
    {
        bail!(
            "manifest digest mismatch: asked for {want}, the registry's content hashes to {}",
            top.digest
        );
    }
    Ok((session, top))
}

/// The image manifest a pull installs, with its digest and bytes as served.
struct PlatformManifest {
    manifest: ImageManifest,
    digest: Digest,
    bytes: Vec<u8>,
}

/// The image manifest to pull: `top` itself when it is one, else the entry
/// of the index `top` for the platform asked for (the host's by default),
/// fetched and checked against the digest and size the index gives it.
fn choose_platform(
    store: &Store,
    session: &Session,
    top: &FetchedManifest,
    opts: &PullOptions,
) -> Result<PlatformManifest> {
    let top_manifest = Manifest::parse(top.content_type.as_deref(), &top.bytes)?;
    let want = opts.platform.clone().unwrap_or_else(Platform::host);
    let (manifest, digest, bytes) = match top_manifest {
        Manifest::Image(m) => (m, top.digest.clone(), top.bytes.clone()),
        Manifest::Index(idx) => {
            let d = select_platform(&idx, &want)?;
            let child = session.manifest(d.digest.as_str())?;
            if child.digest != d.digest || child.bytes.len() as u64 != d.size {
                bail!(
                    "manifest {} for {want}: content hashes to {} ({} bytes), index says {} bytes",
                    d.digest,
                    child.digest,
                    child.bytes.len(),
                    d.size
                );
            }
            match Manifest::parse(child.content_type.as_deref(), &child.bytes)? {
                Manifest::Image(m) => {
                    store.put_verified_bytes(&top.digest, &top.bytes)?;
                    (m, child.digest, child.bytes)
                }
                Manifest::Index(_) => bail!(
                    "manifest {} is a nested index, which is not supported",
                    d.digest
                ),
            }
        }
    };
    Ok(PlatformManifest {
        manifest,
        digest,
        bytes,
    })
}

/// The image config of `manifest`: from the store, else fetched whole and
/// verified (it is small). Checked against the manifest's layers and the
/// platform asked for. Returns it and whether it had to be downloaded.
fn fetch_config(
    store: &Store,
    session: &Session,
    manifest: &ImageManifest,
    opts: &PullOptions,
) -> Result<(ConfigFacts, bool)> {
    let cfg_desc = &manifest.config;
    if cfg_desc.size > MAX_CONFIG_BYTES {
        bail!(
            "image config {} is {} bytes, more than berth accepts",
            cfg_desc.digest,
            cfg_desc.size
        );
    }
    let mut downloaded = false;
    let cfg_bytes = if store.has_blob(&cfg_desc.digest) {
        store.read_blob(&cfg_desc.digest)?
    } else {
        downloaded = true;
        let b = fetch_small(session, cfg_desc, opts.registry.attempts)?;
        store.put_verified_bytes(&cfg_desc.digest, &b)?;
        b
    };
    let cfg: ConfigFacts = serde_json::from_slice(&cfg_bytes)
        .with_context(|| format!("image config {} is not valid", cfg_desc.digest))?;
    if cfg.rootfs.kind != "layers" {
        bail!(
            "image config {}: unsupported rootfs type {:?}",
            cfg_desc.digest,
            cfg.rootfs.kind
        );
    }
    if cfg.rootfs.diff_ids.len() != manifest.layers.len() {
        bail!(
            "image config {} lists {} layers but the manifest has {}",
            cfg_desc.digest,
            cfg.rootfs.diff_ids.len(),
            manifest.layers.len()
        );
    }
    if let Some(p) = &opts.platform {
        let actual = Platform::new(&cfg.os, &cfg.architecture, cfg.variant.as_deref());
        if !p.matches(&actual) {
            bail!(
                "image was found but does not match the specified platform: wanted {p}, actual {actual}"
            );
        }
    }
    Ok((cfg, downloaded))
}

/// Fetch, verify and unpack the layers on up to `parallel_layers` threads
/// (at most 8), all joined before this returns. The first layer to fail
/// for real stops the others and is the error reported. Returns the
/// layers, bottom first, and whether any had to be downloaded.
fn fetch_layers(
    store: &Store,
    session: &Session,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    opts: &PullOptions,
    progress: &Progress,
    sink: Option<LayerSink<'_>>,
) -> Result<(Vec<LayerInfo>, bool)> {
    let fetcher = LayerFetcher {
        store,
        session,
        diff_ids,
        opts,
        progress,
        cancel: AtomicBool::new(false),
        any_fetched: AtomicBool::new(false),
        sink,
    };
    let next = AtomicUsize::new(0);
    // The first real failure, in time: what the pull reports. Layers that
    // were only cancelled because of it come later and are not the cause.
    let first_failure: Mutex<Option<usize>> = Mutex::new(None);
    let results: Mutex<Vec<Option<Result<LayerInfo>>>> =
        Mutex::new((0..layers.len()).map(|_| None).collect());
    let workers = opts.parallel_layers.clamp(1, 8).min(layers.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= layers.len() || fetcher.cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let res = fetcher
                        .fetch(i, &layers[i])
                        .with_context(|| format!("layer {}", layers[i].digest));
                    if let Err(e) = &res
                        && !is_cancelled(e)
                    {
                        first_failure
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(i);
                        fetcher.cancel.store(true, Ordering::SeqCst);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(res);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = first_failure
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        && let Some(Err(e)) = results[i].take()
    {
        return Err(e);
    }
    let mut infos = Vec::new();
    for (i, res) in results.into_iter().enumerate() {
        match res {
            Some(Ok(l)) => infos.push(l),
            Some(Err(e)) => return Err(e),
            None => bail!(
                "layer {} was not fetched (an earlier layer failed)",
                layers[i].digest
            ),
        }
    }
    Ok((infos, fetcher.any_fetched.load(Ordering::SeqCst)))
}

/// Store the image manifest and the one the reference resolved to (an
/// index for a multi-platform image), then record the image in the index,
/// named `repo:tag` (unless pulled by digest) and `repo@digest`.
fn record_pulled(
    store: &Store,
    r: &Reference,
    top: &FetchedManifest,
    chosen: PlatformManifest,
    cfg: ConfigFacts,
    layers: Vec<LayerInfo>,
) -> Result<ImageRecord> {
    store.put_verified_bytes(&chosen.digest, &chosen.bytes)?;
    store.put_verified_bytes(&top.digest, &top.bytes)?;
    let rec = ImageRecord::of(chosen.manifest.config.digest, chosen.digest, cfg, layers);
    let repo_tag = r
        .tag
        .as_ref()
        .filter(|_| r.digest.is_none())
        .map(|t| format!("{}:{t}", r.familiar_name()));
    let repo_digest = Some(format!("{}@{}", r.familiar_name(), top.digest));
    store.record_image(rec, repo_tag, repo_digest)
}

/// Docker Hub goes through the configured mirrors first, then itself.
fn open_with_mirrors(opts: &PullOptions, r: &Reference) -> Result<(Session, FetchedManifest)> {
    let reg = &opts.registry;
    if r.registry == DOCKER_HUB {
        for m in &reg.mirrors {
            let host = m
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            let attempt = (|| {
                let creds = auth::lookup(&reg.auth_file(), &host)?;
                let s = Session::connect_with(reg, &host, Some(m), &r.repository, creds)?;
                let f = s.manifest(&r.manifest_ref())?;
                Ok::<_, anyhow::Error>((s, f))
            })();
            match attempt {
                Ok(x) => return Ok(x),
                Err(e) => tracing::info!("mirror {m} failed for {r}: {e:#}; trying the next"),
            }
        }
    }
    let s = Session::connect(reg, r.api_host(), &r.repository)?;
    let f = s.manifest(&r.manifest_ref())?;
    Ok((s, f))
}

/// A small blob (the config), read whole but no further than its
/// descriptor's size, and checked against its digest; retried when that
/// failed transiently.
fn fetch_small(session: &Session, desc: &Descriptor, attempts: u32) -> Result<Vec<u8>> {
    retry(attempts, |_| {
        let (mut body, _) = session.blob(&desc.digest)?;
        let mut b = Vec::new();
        body.by_ref()
            .take(desc.size + 1)
            .read_to_end(&mut b)
            .map_err(|e| Transient(format!("reading blob: {e}")))?;
        if (b.len() as u64) < desc.size {
            return Err(Transient(format!(
                "short read: got {} of {} bytes",
                b.len(),
                desc.size
            ))
            .into());
        }
        if b.len() as u64 > desc.size {
            bail!(
                "blob {} is larger than the {} bytes its descriptor says",
                desc.digest,
                desc.size
            );
        }
        let got = Digest::of(&b);
        if got != desc.digest {
            bail!(
                "digest mismatch: blob hashes to {got}, expected {}",
                desc.digest
            );
        }
        Ok(b)
    })
}

/// Run `f` (given the attempt number, from 0) until it succeeds, fails for
/// good, or failed transiently `attempts` times, backing off exponentially.
fn retry<T>(attempts: u32, mut f: impl FnMut(u32) -> Result<T>) -> Result<T> {
    let attempts = attempts.max(1);
    let mut n = 0;
    loop {
        match f(n) {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) && n + 1 < attempts => {
                n += 1;
                tracing::info!("retrying after transient error: {e:#}");
                std::thread::sleep(std::time::Duration::from_millis(200 << n.min(5)));
            }
            Err(e) if is_transient(&e) => {
                return Err(e.context(format!("giving up after {attempts} attempts")));
            }
            Err(e) => return Err(e),
        }
    }
}
