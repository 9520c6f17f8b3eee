//! The image index (`images.json`): image records and their names, and the
//! questions `docker images`, `tag`, `rmi` and `inspect` ask of it. Every
//! change is a read-modify-write under `index.lock`, replaced atomically.

use std::io::{self, Write};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use super::{LayerInfo, Store};
use crate::digest::Digest;
use crate::reference::Reference;

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

/// What `images.json` holds.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Index {
    pub(super) images: Vec<ImageRecord>,
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

impl Store {
    /// The index as it is on disk; none yet is an empty one.
    pub(super) fn read_index(&self) -> Result<Index> {
        let p = self.root.join("images.json");
        match berth_io::read_capped(&p, 64 * berth_io::MIB, "image index") {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parse {}", p.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replace the index atomically.
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

    /// Note that the image `id` is at `repo_digest` (`name@digest`, one per
    /// name, as Docker keeps them) after a push; an image gone meanwhile is left alone.
    pub(crate) fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<()> {
        let name = repo_digest.split('@').next().unwrap_or("");
        self.update_index(|idx| {
            if let Some(rec) = idx.images.iter_mut().find(|x| x.id == *id) {
                rec.repo_digests
                    .retain(|x| x.split('@').next() != Some(name));
                rec.repo_digests.push(repo_digest.to_string());
            }
            Ok(())
        })
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
        let tag = super::write::familiar_tag(target)?;
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
}

/// The one image whose id starts with `hex_prefix`: `None` when there is
/// none, an error when several do.
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

/// Whether `name` names `img` by its id (full or a prefix) rather than by a tag.
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

/// Now, in seconds since the epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

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
