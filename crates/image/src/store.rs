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

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher};
use crate::manifest::{Compression, layer_compression};
use crate::reference::Reference;

/// One layer of an image, as the rootfs side needs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Layer media type (tells the compression).
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (verified at pull time).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub unpacked_size: u64,
    /// Where the blob is (filled in when read from the store).
    #[serde(skip)]
    pub path: PathBuf,
}

impl LayerInfo {
    /// How the blob is compressed.
    pub fn compression(&self) -> Result<Compression> {
        layer_compression(&self.media_type)
    }
}

/// An image in the store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Image id: the digest of its config blob.
    pub id: Digest,
    /// Digest of the platform-specific image manifest.
    pub manifest_digest: Digest,
    /// `name:tag` in Docker's familiar form (`busybox:latest`, `127.0.0.1:5500/app:v1`).
    pub repo_tags: Vec<String>,
    /// `name@digest`, the digest being what the registry served for the name
    /// (an index digest for multi-platform images).
    pub repo_digests: Vec<String>,
    /// `created` from the image config (RFC 3339), if set.
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Sum of the unpacked layer sizes (what `docker images` shows as SIZE).
    pub size: u64,
    pub layers: Vec<LayerInfo>,
    /// When this record last changed, seconds since the epoch.
    #[serde(default)]
    pub updated: u64,
}

impl ImageRecord {
    /// Short id as `docker images` shows it (12 hex characters).
    pub fn short_id(&self) -> &str {
        self.id.short()
    }

    /// OCI chain ids, bottom first: the identity of "this layer on top of those
    /// below", the natural key for cached unpacked snapshots.
    /// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let diff_ids: Vec<Digest> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        chain_ids(&diff_ids)
    }
}

/// OCI chain ids of a stack of layers, bottom first:
/// chainid(L0) = diffid(L0); chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    images: Vec<ImageRecord>,
}

/// Per-layer facts cached next to the blob.
#[derive(Serialize, Deserialize)]
pub(crate) struct LayerFacts {
    pub diff_id: Digest,
    pub unpacked_size: u64,
}

/// A row of `docker images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// Familiar repository name, `<none>` when untagged.
    pub repository: String,
    /// Tag, `<none>` when untagged.
    pub tag: String,
    pub id: Digest,
    pub created: Option<String>,
    pub size: u64,
}

/// What `remove` did, in Docker's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveEvent {
    Untagged(String),
    Deleted(Digest),
}

/// The store. Cheap to open; holds no lock between calls.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A held flock; released when dropped.
pub(crate) struct LockGuard(#[allow(dead_code)] File);

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Temp files younger than this are never reaped: their writer may not have locked them yet.
const TMP_GRACE: Duration = Duration::from_secs(10);

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

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether a verified blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Read a whole (small) blob.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        // Small blobs are manifests and configs; registries cap those at 4 MiB.
        Ok(berth_io::read_capped(&p, 64 * berth_io::MIB, "blob")?)
    }

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

    /// Delete temp files older than `grace` whose writer is gone (its flock is free).
    /// `Store::open` does this with a 10 s grace; returns how many were removed.
    pub fn reap_temp(&self, grace: Duration) -> Result<usize> {
        let mut n = 0;
        let dir = self.root.join("tmp");
        let now = SystemTime::now();
        for e in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let Ok(e) = e else { continue };
            let p = e.path();
            let Ok(meta) = e.metadata() else { continue };
            // A timestamp "in the future" (fine-grained file times vs. the clock) counts as age zero.
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            let young = age < grace;
            if young {
                continue;
            }
            let Ok(f) = File::open(&p) else { continue };
            // A live writer holds an exclusive lock on its temp file; if we get it, the writer is gone.
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok()
                && fs::remove_file(&p).is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// A new locked temp file in `<root>/tmp`.
    pub(crate) fn temp(&self, hint: &str) -> Result<TempFile> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{hint}.{}.{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        flock(&file, FlockOperation::LockExclusive)
            .with_context(|| format!("lock {}", path.display()))?;
        Ok(TempFile {
            file: Some(file),
            path,
        })
    }

    /// Store bytes already verified to hash to `d`.
    pub(crate) fn put_verified_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        if Digest::of(bytes) != *d {
            bail!("refusing to store content that does not hash to {d}");
        }
        if self.has_blob(d) {
            return Ok(());
        }
        let mut t = self.temp(d.hex())?;
        t.file().write_all(bytes)?;
        t.commit(&self.blob_path(d))
    }

    pub(crate) fn layer_facts(&self, d: &Digest) -> Option<LayerFacts> {
        let p = self.root.join("layers").join(format!("{}.json", d.hex()));
        let b = berth_io::read_capped(&p, berth_io::MIB, "layer facts").ok()?;
        serde_json::from_slice(&b).ok()
    }

    pub(crate) fn put_layer_facts(&self, d: &Digest, facts: &LayerFacts) -> Result<()> {
        let mut t = self.temp(&format!("{}.facts", d.hex()))?;
        t.file().write_all(&serde_json::to_vec(facts)?)?;
        t.commit(&self.root.join("layers").join(format!("{}.json", d.hex())))
    }

    fn read_index(&self) -> Result<Index> {
        let p = self.root.join("images.json");
        match berth_io::read_capped(&p, 64 * berth_io::MIB, "image index") {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn write_index(&self, idx: &Index) -> Result<()> {
        let mut t = self.temp("images.json")?;
        t.file().write_all(&serde_json::to_vec_pretty(idx)?)?;
        t.commit(&self.root.join("images.json"))
    }

    /// Read-modify-write of the index under its lock.
    fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _g = self.lock("index.lock", FlockOperation::LockExclusive)?;
        let mut idx = self.read_index()?;
        let out = f(&mut idx)?;
        self.write_index(&idx)?;
        Ok(out)
    }

    fn fill_paths(&self, mut r: ImageRecord) -> ImageRecord {
        for l in &mut r.layers {
            l.path = self.blob_path(&l.digest);
        }
        r
    }

    /// Record a pulled image: add/move `repo_tag` and add `repo_digest` (both optional).
    pub(crate) fn record_image(
        &self,
        mut rec: ImageRecord,
        repo_tag: Option<String>,
        repo_digest: Option<String>,
    ) -> Result<ImageRecord> {
        let now = now_secs();
        self.update_index(|idx| {
            // A tag names one image: take it away from any other.
            if let Some(t) = &repo_tag {
                for other in &mut idx.images {
                    if other.id != rec.id {
                        other.repo_tags.retain(|x| x != t);
                    }
                }
            }
            if let Some(i) = idx.images.iter().position(|x| x.id == rec.id) {
                let old = idx.images.remove(i);
                for t in old.repo_tags {
                    if !rec.repo_tags.contains(&t) {
                        rec.repo_tags.push(t);
                    }
                }
                for d in old.repo_digests {
                    if !rec.repo_digests.contains(&d) {
                        rec.repo_digests.push(d);
                    }
                }
            }
            if let Some(t) = repo_tag
                && !rec.repo_tags.contains(&t)
            {
                rec.repo_tags.push(t);
            }
            if let Some(d) = repo_digest {
                // One digest per repository name, as Docker keeps it.
                let name = d.split('@').next().unwrap_or("").to_string();
                rec.repo_digests
                    .retain(|x| x.split('@').next() != Some(name.as_str()));
                rec.repo_digests.push(d);
            }
            rec.updated = now;
            idx.images.push(rec.clone());
            Ok(())
        })?;
        Ok(self.fill_paths(rec))
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut v: Vec<ImageRecord> = self
            .read_index()?
            .images
            .into_iter()
            .map(|r| self.fill_paths(r))
            .collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Rows for `docker images`: one per tag, or one `<none>` row for an untagged image.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for r in self.images()? {
            if r.repo_tags.is_empty() {
                let repository = r
                    .repo_digests
                    .first()
                    .and_then(|d| d.split('@').next())
                    .unwrap_or("<none>")
                    .to_string();
                out.push(ImageSummary {
                    repository,
                    tag: "<none>".into(),
                    id: r.id.clone(),
                    created: r.created.clone(),
                    size: r.size,
                });
            }
            for t in &r.repo_tags {
                let (repo, tag) = split_tag(t);
                out.push(ImageSummary {
                    repository: repo.to_string(),
                    tag: tag.to_string(),
                    id: r.id.clone(),
                    created: r.created.clone(),
                    size: r.size,
                });
            }
        }
        Ok(out)
    }

    /// Find a local image by `name[:tag]`, `name@digest`, full id (`sha256:…` or hex), or unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let images = self.images()?;
        let no_such = || anyhow!("No such image: {name}");
        let hexish = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if let Some(h) = name.strip_prefix("sha256:") {
            if !hexish(h) {
                return Err(no_such());
            }
            return by_prefix(images, h).ok_or_else(no_such)?;
        }
        if let Ok(r) = Reference::parse(name) {
            if let Some(d) = &r.digest {
                let want = format!("{}@{}", r.familiar_name(), d);
                if let Some(img) = images
                    .iter()
                    .find(|i| i.repo_digests.contains(&want) || i.manifest_digest == *d)
                {
                    return Ok(img.clone());
                }
            } else {
                let want = format!(
                    "{}:{}",
                    r.familiar_name(),
                    r.tag.as_deref().unwrap_or("latest")
                );
                if let Some(img) = images.iter().find(|i| i.repo_tags.contains(&want)) {
                    return Ok(img.clone());
                }
            }
        }
        if hexish(name) {
            return by_prefix(images, name).ok_or_else(no_such)?;
        }
        Err(no_such())
    }

    /// `docker tag SOURCE TARGET`: name the image `source` resolves to as `target`
    /// (`name[:tag]`, tag defaults to `latest`), taking the tag away from any other image.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord> {
        let img = self.resolve(source)?;
        let t = Reference::parse(target)?.with_default_tag();
        if t.digest.is_some() {
            bail!("refusing to create a tag with a digest reference: {target}");
        }
        let tag = format!(
            "{}:{}",
            t.familiar_name(),
            t.tag.as_deref().unwrap_or("latest")
        );
        self.update_index(|idx| {
            for other in &mut idx.images {
                if other.id != img.id {
                    other.repo_tags.retain(|x| *x != tag);
                }
            }
            let rec = idx
                .images
                .iter_mut()
                .find(|x| x.id == img.id)
                .ok_or_else(|| anyhow!("No such image: {source}"))?;
            if !rec.repo_tags.contains(&tag) {
                rec.repo_tags.push(tag.clone());
            }
            rec.updated = now_secs();
            Ok(())
        })?;
        self.resolve(target)
    }

    /// The image config, typed (Env, Cmd, Entrypoint, WorkingDir, User, ...).
    pub fn config(&self, img: &ImageRecord) -> Result<oci_spec::image::ImageConfiguration> {
        let b = self.read_blob(&img.id)?;
        serde_json::from_slice(&b).with_context(|| format!("parse image config {}", img.id))
    }

    /// The image config as raw JSON (keeps every field Docker may have set).
    pub fn config_json(&self, img: &ImageRecord) -> Result<serde_json::Value> {
        let b = self.read_blob(&img.id)?;
        serde_json::from_slice(&b).with_context(|| format!("parse image config {}", img.id))
    }

    /// `docker image inspect` JSON for one image.
    pub fn inspect(&self, img: &ImageRecord) -> Result<serde_json::Value> {
        let cfg = self.config_json(img)?;
        let get = |k: &str| cfg.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let str_or_empty = |k: &str| {
            cfg.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let mut v = serde_json::json!({
            "Id": img.id.as_str(),
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": "",
            "Comment": str_or_empty("comment"),
            "Created": img.created.clone().unwrap_or_default(),
            "DockerVersion": str_or_empty("docker_version"),
            "Author": str_or_empty("author"),
            "Config": get("config"),
            "Architecture": img.architecture,
            "Os": img.os,
            "Size": img.size,
            "RootFS": {
                "Type": "layers",
                "Layers": img.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": "" },
        });
        if let Some(var) = &img.variant {
            v["Variant"] = serde_json::Value::String(var.clone());
        }
        Ok(v)
    }

    /// The layers of an image, bottom first, with blob paths.
    pub fn layers(&self, img: &ImageRecord) -> Vec<LayerInfo> {
        self.fill_paths(img.clone()).layers
    }

    /// The decompressed tar stream of a layer.
    ///
    /// A compressed layer is inflated on a thread of its own, so that inflating
    /// overlaps with whatever the reader does with the tar (unpacking it): two
    /// cores instead of one. The thread ends with the stream or when the
    /// reader is dropped, and the drop joins it, so none outlives the reader
    /// (the runtime must fork from a single-threaded process).
    pub fn open_layer(&self, layer: &LayerInfo) -> Result<Box<dyn Read + Send>> {
        let p = self.blob_path(&layer.digest);
        let f = File::open(&p).with_context(|| format!("open layer {}", layer.digest))?;
        let r = BufReader::with_capacity(256 * 1024, f);
        Ok(match layer.compression()? {
            Compression::Gzip => Box::new(Pipelined::new(Box::new(
                flate2::read::MultiGzDecoder::new(r),
            ))),
            Compression::Zstd => Box::new(Pipelined::new(Box::new(
                zstd::stream::read::Decoder::with_buffer(r).context("zstd")?,
            ))),
            Compression::None => Box::new(r),
        })
    }

    /// Remove or untag. `in_use` is whether a container uses the image (the caller knows).
    /// A tag/digest name with other names left only untags; otherwise the record is deleted
    /// and unreferenced blobs are pruned.
    pub fn remove(&self, name: &str, force: bool, in_use: bool) -> Result<Vec<RemoveEvent>> {
        let img = self.resolve(name)?;
        let by_id = is_id_form(name, &img);
        let events = self.update_index(|idx| {
            let Some(pos) = idx.images.iter().position(|x| x.id == img.id) else {
                bail!("No such image: {name}");
            };
            let rec = &mut idx.images[pos];
            let mut events = Vec::new();
            if !by_id {
                // Untag the name given (tag or digest form).
                let tag_form = Reference::parse(name)
                    .ok()
                    .filter(|r| r.digest.is_none())
                    .map(|r| format!("{}:{}", r.familiar_name(), r.tag.as_deref().unwrap_or("latest")));
                let digest_form = Reference::parse(name)
                    .ok()
                    .and_then(|r| r.digest.as_ref().map(|d| format!("{}@{}", r.familiar_name(), d)));
                if let Some(t) = tag_form.filter(|t| rec.repo_tags.contains(t)) {
                    rec.repo_tags.retain(|x| *x != t);
                    events.push(RemoveEvent::Untagged(t));
                } else if let Some(d) = digest_form.filter(|d| rec.repo_digests.contains(d)) {
                    rec.repo_digests.retain(|x| *x != d);
                    events.push(RemoveEvent::Untagged(d));
                }
                if !rec.repo_tags.is_empty() {
                    return Ok(events);
                }
            } else if rec.repo_tags.len() > 1 && !force {
                bail!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    img.short_id()
                );
            }
            if in_use && !force {
                bail!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by a container",
                    img.short_id()
                );
            }
            if in_use {
                // Forced while a container uses it: drop the names, keep the image (Docker does too).
                for t in rec.repo_tags.drain(..) {
                    events.push(RemoveEvent::Untagged(t));
                }
                return Ok(events);
            }
            let rec = idx.images.remove(pos);
            for t in rec.repo_tags.into_iter().chain(rec.repo_digests) {
                if !events.contains(&RemoveEvent::Untagged(t.clone())) {
                    events.push(RemoveEvent::Untagged(t));
                }
            }
            events.push(RemoveEvent::Deleted(rec.id));
            Ok(events)
        })?;
        if events.iter().any(|e| matches!(e, RemoveEvent::Deleted(_))) {
            self.prune_blobs()?;
        }
        Ok(events)
    }

    /// Delete blobs no image references. Returns (count, bytes) freed.
    pub fn prune_blobs(&self) -> Result<(usize, u64)> {
        // Exclusive: no pull is between writing blobs and indexing them.
        let _gc = self.lock("gc.lock", FlockOperation::LockExclusive)?;
        let idx = self.read_index()?;
        let mut keep = BTreeSet::new();
        for i in &idx.images {
            keep.insert(i.id.hex().to_string());
            keep.insert(i.manifest_digest.hex().to_string());
            for d in &i.repo_digests {
                if let Some(Ok(dg)) = d.split_once('@').map(|(_, d)| Digest::parse(d)) {
                    keep.insert(dg.hex().to_string());
                }
            }
            for l in &i.layers {
                keep.insert(l.digest.hex().to_string());
            }
        }
        let dir = self.root.join("blobs/sha256");
        let (mut n, mut bytes) = (0, 0);
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path())?;
            let _ = fs::remove_file(self.root.join("layers").join(format!("{name}.json")));
            n += 1;
        }
        Ok((n, bytes))
    }

    /// Hex names of all blobs present (for tests and diagnostics).
    pub fn blob_names(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("blobs/sha256"))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Names of leftover temp files.
    pub fn temp_names(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("tmp"))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Check every blob hashes to its name. Returns the names of bad ones.
    pub fn verify_blobs(&self) -> Result<Vec<String>> {
        let mut bad = Vec::new();
        for name in self.blob_names()? {
            let mut h = Hasher::new();
            io::copy(
                &mut File::open(self.root.join("blobs/sha256").join(&name))?,
                &mut h,
            )?;
            if h.finish().hex() != name {
                bad.push(name);
            }
        }
        Ok(bad)
    }
}

fn by_prefix(images: Vec<ImageRecord>, hex_prefix: &str) -> Option<Result<ImageRecord>> {
    let m: Vec<ImageRecord> = images
        .into_iter()
        .filter(|i| i.id.hex().starts_with(hex_prefix))
        .collect();
    match m.len() {
        0 => None,
        1 => Some(Ok(m.into_iter().next().expect("one"))),
        _ => Some(Err(anyhow!(
            "image id prefix {hex_prefix} is ambiguous ({} images)",
            m.len()
        ))),
    }
}

fn is_id_form(name: &str, img: &ImageRecord) -> bool {
    let h = name.strip_prefix("sha256:").unwrap_or(name);
    !h.is_empty()
        && img.id.hex().starts_with(h)
        && !img.repo_tags.iter().any(|t| split_tag(t).0 == name)
}

/// `repo:tag` → (`repo`, `tag`), minding `host:port/repo:tag`.
fn split_tag(t: &str) -> (&str, &str) {
    let slash = t.rfind('/').map_or(0, |i| i + 1);
    match t[slash..].rfind(':') {
        Some(i) => (&t[..slash + i], &t[slash + i + 1..]),
        None => (t, "latest"),
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A temp file in the store, deleted on drop unless committed.
pub(crate) struct TempFile {
    file: Option<File>,
    path: PathBuf,
}

impl TempFile {
    pub(crate) fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("temp file open until commit")
    }

    /// fsync, rename into place, fsync the directory.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<()> {
        let f = self.file.take().expect("temp file open until commit");
        f.sync_all()
            .with_context(|| format!("fsync {}", self.path.display()))?;
        fs::rename(&self.path, dest).with_context(|| format!("rename into {}", dest.display()))?;
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("fsync {}", dir.display()))?;
        }
        // Keep the lock until after the rename so the reaper never sees an unlocked live file.
        drop(f);
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A reader fed by a thread that reads `src` ahead, through a bounded channel.
struct Pipelined {
    rx: Option<std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    buf: Vec<u8>,
    pos: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pipelined {
    fn new(mut src: Box<dyn Read + Send>) -> Pipelined {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let thread = std::thread::spawn(move || {
            loop {
                let mut chunk = vec![0u8; 256 * 1024];
                let msg = match src.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let stop = msg.is_err();
                if tx.send(msg).is_err() || stop {
                    break;
                }
            }
        });
        Pipelined {
            rx: Some(rx),
            buf: Vec::new(),
            pos: 0,
            thread: Some(thread),
        }
    }
}

impl Read for Pipelined {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.as_ref().and_then(|rx| rx.recv().ok()) {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next send.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaper_spares_live_writers_and_takes_dead_ones() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let mut live = s.temp("live").unwrap();
        live.file().write_all(b"x").unwrap();
        // A dead writer's leftover: nobody holds its lock.
        fs::write(d.path().join("tmp/dead.1.1"), b"y").unwrap();
        assert_eq!(s.reap_temp(Duration::ZERO).unwrap(), 1);
        assert_eq!(s.temp_names().unwrap().len(), 1, "the live temp file stays");
        // Young files are spared by the default grace.
        fs::write(d.path().join("tmp/dead.1.2"), b"y").unwrap();
        Store::open(d.path()).unwrap();
        assert_eq!(s.temp_names().unwrap().len(), 2);
        drop(live);
        assert_eq!(
            s.temp_names().unwrap().len(),
            1,
            "dropping an uncommitted temp file removes it"
        );
    }

    #[test]
    fn put_refuses_wrong_content_and_commits_atomically() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let good = Digest::of(b"hello");
        assert!(s.put_verified_bytes(&good, b"hellO").is_err());
        assert!(!s.has_blob(&good));
        s.put_verified_bytes(&good, b"hello").unwrap();
        assert_eq!(s.read_blob(&good).unwrap(), b"hello");
        assert!(s.temp_names().unwrap().is_empty());
        assert_eq!(s.verify_blobs().unwrap(), Vec::<String>::new());
        // A damaged blob on disk is reported.
        fs::write(s.blob_path(&good), b"evil").unwrap();
        assert_eq!(s.verify_blobs().unwrap(), vec![good.hex().to_string()]);
    }

    #[test]
    fn chain_ids_follow_the_oci_formula() {
        let d = |n: u8| Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).unwrap();
        let layer = |n| LayerInfo {
            digest: d(n),
            media_type: String::new(),
            size: 0,
            diff_id: d(n + 100),
            unpacked_size: 0,
            path: PathBuf::new(),
        };
        let rec = ImageRecord {
            id: d(1),
            manifest_digest: d(2),
            repo_tags: vec![],
            repo_digests: vec![],
            created: None,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            size: 0,
            layers: vec![layer(1), layer(2), layer(3)],
            updated: 0,
        };
        let c = rec.chain_ids();
        assert_eq!(c[0], d(101));
        let c1 = Digest::of(format!("{} {}", d(101), d(102)).as_bytes());
        assert_eq!(c[1], c1);
        assert_eq!(c[2], Digest::of(format!("{c1} {}", d(103)).as_bytes()));
    }

    #[test]
    fn split_tags() {
        assert_eq!(split_tag("a:b"), ("a", "b"));
        assert_eq!(split_tag("h:5000/a:b"), ("h:5000/a", "b"));
        assert_eq!(split_tag("h:5000/a"), ("h:5000/a", "latest"));
    }
}
