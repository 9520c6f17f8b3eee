//! The store's public write API, for what makes images rather than pulls
//! them (commit, import, load, build): new blobs streamed in, hashed as
//! they are written and visible only by rename once complete and checked;
//! layer facts; a new image record from a manifest already in the store.
//!
//! Writers hold a [`WriteGuard`] from the first blob to the image record,
//! so a concurrent `image prune` cannot take blobs nothing names yet.

use std::io::{self, Read, Write};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use super::blobs::TempFile;
use super::{ImageRecord, LayerFacts, LayerInfo, LockGuard, Store};
use crate::digest::{Digest, Hasher};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest, layer_compression};
use crate::reference::Reference;

/// Most bytes an image config may have (pull's limit too).
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Held while writing blobs that no image names yet; see the module doc.
pub struct WriteGuard(#[allow(dead_code)] LockGuard);

/// A blob being written: `Write` into it, then [`commit`](Self::commit).
/// Dropped uncommitted, it leaves nothing behind.
pub struct BlobWriter {
    temp: TempFile,
    hasher: Hasher,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.temp.file().write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.temp.file().flush()
    }
}

/// A blob now in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Make the blob visible under its digest, which must be `expect` when
    /// one is given (content that lies about itself is dropped).
    pub fn commit(self, store: &Store, expect: Option<&Digest>) -> Result<Blob> {
        let size = self.hasher.len();
        let digest = self.hasher.finish();
        if let Some(want) = expect
            && *want != digest
        {
            bail!("content of {want} hashes to {digest}");
        }
        if !store.has_blob(&digest) {
            self.temp.commit(&store.blob_path(&digest))?;
        }
        Ok(Blob { digest, size })
    }
}

/// What an image record is made of in an image config (pull reads the
/// same).
#[derive(Deserialize)]
pub(crate) struct ConfigFacts {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
    #[serde(default)]
    pub(crate) created: Option<String>,
    pub(crate) rootfs: RootFs,
}

#[derive(Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) diff_ids: Vec<Digest>,
}

impl ImageRecord {
    /// A record, not yet named, of the image whose config is `id` (saying
    /// `cfg`) and whose platform manifest is `manifest`.
    pub(crate) fn of(
        id: Digest,
        manifest: Digest,
        cfg: ConfigFacts,
        layers: Vec<LayerInfo>,
    ) -> ImageRecord {
        ImageRecord {
            id,
            manifest_digest: manifest,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            created: cfg.created,
            os: cfg.os,
            architecture: cfg.architecture,
            variant: cfg.variant,
            size: layers.iter().map(|l| l.unpacked_size).sum(),
            layers,
            updated: 0,
        }
    }
}

impl Store {
    /// Keep `image prune` from taking blobs before they are named.
    pub fn write_guard(&self) -> Result<WriteGuard> {
        self.pull_guard().map(WriteGuard)
    }

    /// A new blob to write into.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        Ok(BlobWriter {
            temp: self.temp("new")?,
            hasher: Hasher::new(),
        })
    }

    /// Stream at most `max` bytes of `src` into a blob, checked against
    /// `expect` when given. More than `max` bytes is an error, not a cut.
    pub fn put_blob(&self, src: &mut dyn Read, expect: Option<&Digest>, max: u64) -> Result<Blob> {
        let mut w = self.blob_writer()?;
        let n = io::copy(&mut src.take(max.saturating_add(1)), &mut w)?;
        if n > max {
            bail!("content is larger than {max} bytes");
        }
        w.commit(self, expect)
    }

    /// A blob from bytes in memory.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Blob> {
        let d = Digest::of(bytes);
        self.put_verified_bytes(&d, bytes)?;
        Ok(Blob {
            digest: d,
            size: bytes.len() as u64,
        })
    }

    /// Record what a layer blob unpacks to, as checked by its writer.
    pub fn record_layer(&self, blob: &Digest, diff_id: &Digest, unpacked_size: u64) -> Result<()> {
        let facts = LayerFacts {
            diff_id: diff_id.clone(),
            unpacked_size,
        };
        self.put_layer_facts(blob, &facts)
    }

    /// Decompress layer blob `blob` (of `media_type`), hash it, and record
    /// its facts: the diff_id it really has.
    pub fn verify_layer(&self, blob: &Digest, media_type: &str) -> Result<Digest> {
        let info = LayerInfo {
            digest: blob.clone(),
            media_type: media_type.to_string(),
            size: 0,
            diff_id: blob.clone(),
            unpacked_size: 0,
            path: self.blob_path(blob),
        };
        let mut r = self.open_layer(&info)?;
        let mut h = Hasher::new();
        io::copy(&mut r, &mut h).with_context(|| format!("decompress layer {blob}"))?;
        let size = h.len();
        let diff_id = h.finish();
        self.record_layer(blob, &diff_id, size)?;
        Ok(diff_id)
    }

    /// A new image record for the image manifest `manifest` (its blob, its
    /// config's and its layers' all in the store), named `tag` if given.
    /// Every layer's diff_id is checked against the config (decompressing
    /// it when its facts are not yet known); a mismatch records nothing.
    pub fn add_image(&self, manifest: &Digest, tag: Option<&str>) -> Result<ImageRecord> {
        let bytes = self.read_blob_capped(manifest, MAX_MANIFEST_BYTES, "manifest")?;
        let m = match Manifest::parse(None, &bytes)? {
            Manifest::Image(m) => m,
            Manifest::Index(_) => bail!("{manifest} is an index, not an image manifest"),
        };
        let cfg_bytes = self.read_blob_capped(&m.config.digest, MAX_CONFIG_BYTES, "config")?;
        let cfg: ConfigFacts = serde_json::from_slice(&cfg_bytes)
            .with_context(|| format!("image config {} is not valid", m.config.digest))?;
        if cfg.rootfs.kind != "layers" {
            bail!(
                "image config {}: rootfs type is not layers",
                m.config.digest
            );
        }
        if cfg.rootfs.diff_ids.len() != m.layers.len() {
            bail!(
                "manifest {manifest} has {} layers, its config {} diff_ids",
                m.layers.len(),
                cfg.rootfs.diff_ids.len()
            );
        }
        let mut layers = Vec::with_capacity(m.layers.len());
        for (l, want) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
            layer_compression(&l.media_type)?;
            if !self.has_blob(&l.digest) {
                bail!("layer {} is not in the store", l.digest);
            }
            let facts = match self.layer_facts(&l.digest) {
                Some(f) => f,
                None => {
                    self.verify_layer(&l.digest, &l.media_type)?;
                    self.layer_facts(&l.digest)
                        .ok_or_else(|| anyhow!("layer {} facts not recorded", l.digest))?
                }
            };
            if facts.diff_id != *want {
                bail!(
                    "layer {} unpacks to {}, its config says {want}",
                    l.digest,
                    facts.diff_id
                );
            }
            layers.push(LayerInfo {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: facts.diff_id,
                unpacked_size: facts.unpacked_size,
                path: Default::default(),
            });
        }
        let rec = ImageRecord::of(m.config.digest.clone(), manifest.clone(), cfg, layers);
        let tag = tag.map(familiar_tag).transpose()?;
        self.record_image(rec, tag, None)
    }

    /// A blob read whole, refused past `max` bytes.
    pub fn read_blob_capped(&self, d: &Digest, max: u64, what: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        berth_io::read_capped(&p, max, what).with_context(|| format!("read {what} {d}"))
    }
}

/// `name[:tag]` as the index keeps it: familiar, tag `latest` by default.
pub fn familiar_tag(name: &str) -> Result<String> {
    let r = Reference::parse(name)?.with_default_tag();
    if r.digest.is_some() {
        bail!("refusing to create a tag with a digest reference: {name}");
    }
    Ok(format!(
        "{}:{}",
        r.familiar_name(),
        r.tag.as_deref().unwrap_or("latest")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::media;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A one-layer image whose config claims `diff_id`; its manifest digest.
    fn image(s: &Store, layer_tar: &[u8], diff_id: &Digest) -> Digest {
        let blob = s.put_blob_bytes(&gzip(layer_tar)).unwrap();
        let cfg = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let cfg = s
            .put_blob_bytes(&serde_json::to_vec(&cfg).unwrap())
            .unwrap();
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": cfg.digest, "size": cfg.size},
            "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": blob.digest, "size": blob.size}],
        });
        s.put_blob_bytes(&serde_json::to_vec(&m).unwrap())
            .unwrap()
            .digest
    }

    #[test]
    fn a_blob_that_lies_or_overflows_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let liar = Digest::of(b"other");
        assert!(s.put_blob(&mut &b"hello"[..], Some(&liar), 100).is_err());
        assert!(s.put_blob(&mut &b"hello"[..], None, 4).is_err());
        assert!(s.blob_names().unwrap().is_empty());
        assert!(s.temp_names().unwrap().is_empty());
        let b = s.put_blob(&mut &b"hello"[..], None, 5).unwrap();
        assert_eq!((b.digest, b.size), (Digest::of(b"hello"), 5));
    }

    #[test]
    fn add_image_checks_diff_ids_against_the_layers() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let tar = b"not really a tar, but bytes all the same";
        let lie = image(&s, tar, &Digest::of(b"something else"));
        let e = s.add_image(&lie, Some("x")).unwrap_err().to_string();
        assert!(e.contains("its config says"), "{e}");
        assert!(s.images().unwrap().is_empty(), "nothing recorded");

        let m = image(&s, tar, &Digest::of(tar));
        let rec = s.add_image(&m, Some("made:v1")).unwrap();
        assert_eq!(rec.repo_tags, ["made:v1"]);
        assert_eq!(rec.layers[0].unpacked_size, tar.len() as u64);
        assert_eq!(s.resolve("made:v1").unwrap().id, rec.id);
    }
}
