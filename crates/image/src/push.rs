//! Pushing: an image of the store → its blobs (HEAD to skip what the
//! registry has, a cross-repository mount when the image is known in another
//! repository of the same registry, else an upload) → its manifest, PUT with
//! the very bytes pulled or built, so its digest does not change.
//!
//! berth keeps only the pulled platform's manifest of a multi-platform image
//! (never the index), so what is pushed is that platform manifest: the
//! registry then holds a single-platform image under the tag.
//!
//! A push killed midway leaves the registry consistent: a blob is visible
//! only once its upload completed and was verified by the registry, and the
//! manifest (which names them all) goes last. The next push skips, by HEAD,
//! every blob that got there.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::digest::Digest;
use crate::manifest::{Descriptor, MAX_MANIFEST_BYTES, Manifest, media};
use crate::progress::Progress;
use crate::reference::{DOCKER_HUB, Reference};
use crate::registry::{RegistryOptions, Session, Started, StatusError, is_transient};
use crate::store::{ImageRecord, Store};

/// Most repositories a push asks to mount blobs from (each is a token scope).
const MAX_MOUNT_SOURCES: usize = 4;

/// First chunk size when a body limit (413) forces chunked uploads; halved
/// while it is still too large.
const CHUNK: u64 = 8 << 20;

/// Options of one push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    pub registry: RegistryOptions,
    /// `--all-tags`: push every local tag of the repository.
    pub all_tags: bool,
    /// Blobs uploaded at once.
    pub parallel_layers: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            registry: RegistryOptions::default(),
            all_tags: false,
            // Docker's max-concurrent-uploads.
            parallel_layers: 5,
        }
    }
}

/// One tag pushed.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `registry/repository:tag`.
    pub reference: Reference,
    /// Digest of the manifest, as the registry stored it.
    pub digest: Digest,
    /// Manifest size in bytes.
    pub size: u64,
}

/// Push `name` (`NAME[:TAG]`, tag `latest` by default; with `all_tags`, a
/// bare `NAME`) from `store` to its registry. Errors read
/// `push <reference>: <why>`, except Docker's own for an image not in the store.
pub fn push(
    store: &Store,
    name: &str,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<Vec<Pushed>> {
    let r = Reference::parse(name)?;
    if r.digest.is_some() {
        bail!("push {name}: cannot push a digest reference, give a tag");
    }
    if r.registry == DOCKER_HUB && !names_registry(name) {
        bail!(
            "push {name}: the name has no registry, so it would go to Docker Hub ({}); \
             tag the image for your registry (berth tag {name} HOST[:PORT]/{}) or name \
             docker.io explicitly",
            r.name(),
            r.familiar_name()
        );
    }
    // Docker says this first, even of an image it then does not find.
    progress.status(&format!("The push refers to repository [{}]", r.name()));
    // Keeps `image prune` from taking blobs while they upload.
    let _guard = store.write_guard()?;
    let targets = local_targets(store, &r, opts.all_tags)?;
    let what = if opts.all_tags {
        r.familiar_name()
    } else {
        r.clone().with_default_tag().familiar()
    };
    let records: Vec<&ImageRecord> = targets.iter().map(|(_, i)| i).collect();
    let from = mount_sources(&r, &records);
    let session = Session::connect_push(&opts.registry, r.api_host(), &r.repository, &from)
        .with_context(|| format!("push {what}"))?;
    let mut out = Vec::new();
    for (tr, img) in &targets {
        let p = push_one(store, &session, tr, img, from.first(), opts, progress)
            .with_context(|| format!("push {}", tr.familiar()))?;
        out.push(p);
    }
    Ok(out)
}

/// Whether `input` names its registry (`host.tld/…`, `host:port/…`,
/// `localhost/…`) rather than falling to Docker Hub by default.
fn names_registry(input: &str) -> bool {
    input.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

/// The images to push with the reference each goes to, tag order.
fn local_targets(
    store: &Store,
    r: &Reference,
    all_tags: bool,
) -> Result<Vec<(Reference, ImageRecord)>> {
    let images = store.images()?;
    let fam = r.familiar_name();
    let missing = || anyhow!("An image does not exist locally with the tag: {fam}");
    if !all_tags {
        let tr = r.clone().with_default_tag();
        let want = tr.familiar();
        let img = images
            .into_iter()
            .find(|i| i.repo_tags.contains(&want))
            .ok_or_else(missing)?;
        return Ok(vec![(tr, img)]);
    }
    if r.tag.is_some() {
        bail!(
            "push {}: tag can't be used with --all-tags/-a",
            r.familiar()
        );
    }
    let mut out = Vec::new();
    for img in &images {
        for t in &img.repo_tags {
            if let Ok(tr) = Reference::parse(t)
                && tr.familiar_name() == fam
            {
                out.push((tr, img.clone()));
            }
        }
    }
    if out.is_empty() {
        return Err(missing());
    }
    out.sort_by(|a, b| a.0.tag.cmp(&b.0.tag));
    Ok(out)
}

/// Other repositories of the target's registry the images are known in:
/// where they were pulled from (repo digests) first, then their tags.
fn mount_sources(target: &Reference, images: &[&ImageRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let names = images.iter().flat_map(|i| {
        i.repo_digests
            .iter()
            .map(|d| d.split('@').next().unwrap_or(""))
            .chain(i.repo_tags.iter().map(String::as_str))
            .collect::<Vec<_>>()
    });
    for n in names {
        if let Ok(r) = Reference::parse(n)
            && r.registry == target.registry
            && r.repository != target.repository
            && !out.contains(&r.repository)
        {
            out.push(r.repository);
        }
    }
    out.truncate(MAX_MOUNT_SOURCES);
    out
}

/// Push one image as `tr`: blobs, then the manifest.
fn push_one(
    store: &Store,
    session: &Session,
    tr: &Reference,
    img: &ImageRecord,
    mount_from: Option<&String>,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<Pushed> {
    let bytes = store.read_blob_capped(&img.manifest_digest, MAX_MANIFEST_BYTES, "manifest")?;
    if Digest::of(&bytes) != img.manifest_digest {
        bail!(
            "stored manifest {} does not match its digest",
            img.manifest_digest
        );
    }
    let m = match Manifest::parse(None, &bytes)? {
        Manifest::Image(m) => m,
        Manifest::Index(_) => bail!("manifest {} is an index", img.manifest_digest),
    };
    let media_type = m
        .media_type
        .clone()
        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
    // Docker lists layers top first; the config goes along without a line.
    let mut blobs: Vec<(&Descriptor, bool)> = m.layers.iter().rev().map(|l| (l, true)).collect();
    blobs.push((&m.config, false));
    for (d, _) in blobs.iter().filter(|(_, shown)| *shown) {
        progress.layer_event(&d.digest, "Preparing");
    }
    let ctx = BlobCtx {
        store,
        session,
        mount_from: mount_from.map(String::as_str),
        attempts: opts.registry.attempts.max(1),
        progress,
    };
    run_parallel(&blobs, opts.parallel_layers, |&(d, shown)| {
        ctx.push_blob(d, shown)
    })?;
    let tag = tr.tag.as_deref().unwrap_or("latest");
    let digest = session.put_manifest(tag, &media_type, &bytes)?;
    progress.status(&format!("{tag}: digest: {digest} size: {}", bytes.len()));
    store.add_repo_digest(&img.id, &format!("{}@{digest}", tr.familiar_name()))?;
    Ok(Pushed {
        reference: tr.clone(),
        digest,
        size: bytes.len() as u64,
    })
}

/// Run `f` on every item with at most `parallel` at once; the first error
/// stops the items not yet started and is the one returned.
fn run_parallel<T: Sync>(
    items: &[T],
    parallel: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = f(item) {
                        failed.store(true, Ordering::SeqCst);
                        first
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    match first.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What pushing one blob needs.
struct BlobCtx<'a> {
    store: &'a Store,
    session: &'a Session,
    mount_from: Option<&'a str>,
    attempts: u32,
    progress: &'a Progress,
}

impl BlobCtx<'_> {
    /// Push blob `d` (a layer when `shown`), starting over on a transient
    /// failure up to `attempts` times.
    fn push_blob(&self, d: &Descriptor, shown: bool) -> Result<()> {
        let path = self.store.blob_path(&d.digest);
        let size = std::fs::metadata(&path)
            .map_err(|_| anyhow!("blob {} is missing from the store", d.digest))?
            .len();
        if size != d.size {
            bail!(
                "stored blob {} has {size} bytes, its manifest says {}",
                d.digest,
                d.size
            );
        }
        let mut attempt = 0;
        loop {
            match self.try_blob(d, &path, shown) {
                Ok(what) => {
                    if shown {
                        self.progress.layer_done(&d.digest, &what);
                    }
                    return Ok(());
                }
                Err(e) if is_transient(&e) && attempt + 1 < self.attempts => {
                    if shown {
                        self.progress.layer_retry(&d.digest, &format!("{e:#}"));
                    }
                    std::thread::sleep(Duration::from_millis(200 << attempt.min(5)));
                    attempt += 1;
                }
                // A denial is about the repository, not this blob.
                Err(e) if is_denied(&e) => return Err(e),
                Err(e) => {
                    return Err(e).with_context(|| format!("blob {}", d.digest.short()));
                }
            }
        }
    }

    /// One go at blob `d`: what the progress line then says.
    fn try_blob(&self, d: &Descriptor, path: &Path, shown: bool) -> Result<String> {
        let s = self.session;
        if s.has_blob(&d.digest)? {
            return Ok("Layer already exists".to_string());
        }
        let location = match s.start_upload(self.mount_from.map(|f| (&d.digest, f)))? {
            Started::Mounted => {
                let from = self.mount_from.unwrap_or_default();
                return Ok(format!("Mounted from {from}"));
            }
            Started::Upload(l) => l,
        };
        // A bar on a terminal; piped, Docker prints no line for this.
        if shown {
            self.progress.layer_bar(&d.digest, d.size, "Pushing");
        }
        let on_bytes = |n: u64| self.progress.layer_bytes(&d.digest, n);
        match s.upload_blob(&location, &d.digest, path, d.size, &on_bytes) {
            Err(e) if status_of(&e) == Some(413) => {
                // A proxy in front of the registry limits bodies: in chunks,
                // on a new upload session (the refused one may be spent).
                if shown {
                    self.progress.layer_retry(&d.digest, "in chunks");
                }
                let Started::Upload(location) = s.start_upload(None)? else {
                    bail!("registry mounted a blob it was not asked to");
                };
                s.upload_blob_chunked(&location, &d.digest, path, d.size, CHUNK, &on_bytes)?;
            }
            r => r?,
        }
        Ok("Pushed".to_string())
    }
}

/// Whether `e` is the registry refusing us (401/403).
fn is_denied(e: &anyhow::Error) -> bool {
    status_of(e).is_some_and(|s| matches!(s, 401 | 403))
}

/// The HTTP status `e` reports, if it is a registry's answer.
fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| c.downcast_ref::<StatusError>().map(|s| s.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tags: &[&str], digests: &[&str]) -> ImageRecord {
        let d = Digest::of(b"x");
        ImageRecord {
            id: d.clone(),
            manifest_digest: d,
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            created: None,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            size: 0,
            layers: Vec::new(),
            updated: 0,
        }
    }

    #[test]
    fn registry_named_or_not() {
        assert!(!names_registry("busybox"));
        assert!(!names_registry("user/app:1"));
        assert!(names_registry("docker.io/library/busybox"));
        assert!(names_registry("127.0.0.1:5500/x"));
        assert!(names_registry("localhost/x"));
    }

    #[test]
    fn mount_sources_same_registry_pulled_first() {
        let d = format!("127.0.0.1:5500/busybox@{}", Digest::of(b"m"));
        let img = record(
            &[
                "127.0.0.1:5500/a/b:latest",
                "127.0.0.1:5501/busybox:latest",
                "127.0.0.1:5500/mine:1",
                "busybox:latest",
            ],
            &[&d],
        );
        let target = Reference::parse("127.0.0.1:5500/mine:2").unwrap();
        assert_eq!(mount_sources(&target, &[&img]), ["busybox", "a/b"]);
        let hub = Reference::parse("docker.io/me/x").unwrap();
        assert_eq!(mount_sources(&hub, &[&img]), ["library/busybox"]);
    }

    #[test]
    fn parallel_runs_all_and_reports_the_first_error() {
        let seen = AtomicUsize::new(0);
        let items: Vec<usize> = (0..20).collect();
        run_parallel(&items, 3, |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 20);
        let e = run_parallel(
            &items,
            1,
            |&i| {
                if i == 2 { bail!("item {i}") } else { Ok(()) }
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "item 2");
        run_parallel::<usize>(&[], 4, |_| unreachable!()).unwrap();
    }
}
