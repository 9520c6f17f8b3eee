//! `load`: images into the store from a Docker archive (old or new format)
//! or an OCI layout in a tar. See the module doc for formats and guarantees.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::json;

use super::MAX_META_BYTES;
use super::inflate::{Inflated, Inflating, sniff};
use crate::digest::Digest;
use crate::manifest::{
    Compression, ImageManifest, Manifest, Platform, layer_compression, media, select_platform,
};
use crate::store::{Blob, MAX_CONFIG_BYTES, Store, familiar_tag};

/// An image now in the store and the names it was loaded under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub id: Digest,
    pub tags: Vec<String>,
}

/// What the archive held: its blobs (in the store now) by archive path,
/// and its small metadata files.
#[derive(Default)]
struct Staged {
    blobs: HashMap<String, Blob>,
    meta: HashMap<String, Vec<u8>>,
    /// What each compressed blob inflated to, learnt while the archive streamed in.
    inflated: HashMap<Digest, Inflated>,
}

/// An image to record: its manifest blob and names.
struct Plan {
    manifest: Digest,
    tags: Vec<String>,
}

const META: [&str; 4] = ["manifest.json", "index.json", "repositories", "oci-layout"];

/// Read the archive from `input` and record the images in it. Nothing is
/// recorded unless every image in it checked out.
pub fn load(store: &Store, input: &mut dyn Read) -> Result<Vec<Loaded>> {
    let guard = store.write_guard()?;
    let mut written = Vec::new();
    let loaded = load_staged(store, input, &mut written);
    if loaded.is_err() {
        drop(guard);
        // A refused archive leaves none of the blobs it brought that no
        // image names.
        if let Err(e) = store.remove_unnamed(&written) {
            tracing::warn!("load: removing what a refused archive wrote: {e:#}");
        }
    }
    loaded
}

fn load_staged(
    store: &Store,
    input: &mut dyn Read,
    written: &mut Vec<Digest>,
) -> Result<Vec<Loaded>> {
    let staged = stage(store, input, written)?;
    let plans = plan(store, &staged)?;
    written.extend(plans.iter().map(|p| p.manifest.clone()));
    for p in &plans {
        check_layers(store, &staged, &p.manifest)?;
    }
    let mut out = Vec::new();
    for p in plans {
        let rec = store.add_image(&p.manifest, p.tags.first().map(String::as_str))?;
        for t in p.tags.iter().skip(1) {
            store.tag(rec.id.as_str(), t)?;
        }
        out.push(Loaded {
            id: rec.id,
            tags: p.tags,
        });
    }
    Ok(out)
}

/// Stream every entry: blobs into the store (checked against their names),
/// metadata into memory (capped); anything else refused or skipped.
fn stage(store: &Store, input: &mut dyn Read, written: &mut Vec<Digest>) -> Result<Staged> {
    let mut staged = Staged::default();
    let mut inflating = Inflating::new();
    let mut input = EofReader {
        inner: input,
        eof: false,
    };
    let mut ar = tar::Archive::new(&mut input);
    // Raw entries: the tar crate would read a long name or pax header of
    // any size into memory; here they are capped.
    let mut names = Names::default();
    let mut links = Vec::new();
    for entry in ar.entries().context("read archive")?.raw(true) {
        let mut e = entry.context("read archive")?;
        let kind = e.header().entry_type();
        let size = e.header().size()?;
        if let Some(n) = extension(&mut e, kind, size)? {
            names.path = n.path.or(names.path);
            names.link = n.link.or(names.link);
            continue;
        }
        let n = std::mem::take(&mut names);
        let raw = match n.path {
            Some(p) => p,
            None => e.path().context("archive entry path")?.into_owned(),
        };
        let path = clean_path(&raw)?;
        if kind.is_dir() {
            continue;
        }
        if kind == tar::EntryType::Symlink && is_layer_tar(&path) {
            let target = match n.link {
                Some(l) => l,
                None => e.link_name()?.unwrap_or_default().into_owned(),
            };
            links.push((layer_link(&path, &target)?, path));
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            bail!("archive entry {path:?}: {kind:?} entries are not allowed");
        }
        if META.contains(&path.as_str()) {
            let b = read_entry(&mut e, size, MAX_META_BYTES, &path)?;
            if staged.meta.insert(path.clone(), b).is_some() {
                bail!("archive has {path} twice");
            }
            continue;
        }
        let expect = match blob_name(&path)? {
            Some(d) => Some(d),
            None if is_layer_tar(&path) || is_config_file(&path) => None,
            None => continue, // v1 `<id>/json`, `<id>/VERSION`: not needed
        };
        let (blob, compression) = put_blob(store, &mut e, size, expect.as_ref(), &path)?;
        written.push(blob.digest.clone());
        if compression != Compression::None && store.layer_facts(&blob.digest).is_none() {
            let p = store.blob_path(&blob.digest);
            inflating.start(blob.digest.clone(), blob.size, p, compression);
        }
        staged.blobs.insert(path, blob);
    }
    // The tar crate takes an end of input between entries for the end of
    // the archive; a whole archive ends with zero blocks, read before it.
    if input.eof {
        bail!("archive is truncated (no end-of-archive marker)");
    }
    for (to, from) in links {
        let blob = staged.blobs.get(&to).cloned().ok_or_else(|| {
            anyhow!("archive entry {from:?}: links to {to:?}, which is not in the archive")
        })?;
        staged.blobs.insert(from, blob);
    }
    staged.inflated = inflating.finish();
    Ok(staged)
}

/// Where a symlinked `<id>/layer.tar` points: another layer.tar of the
/// archive, relative to it (Docker 20.10 writes one for a layer it saved
/// already under another id). Resolved by name, never on a filesystem.
fn layer_link(path: &str, target: &Path) -> Result<String> {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for c in target.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or("\u{fffd}")),
            Component::CurDir => {}
            Component::ParentDir if parts.pop().is_some() => {}
            _ => bail!("archive entry {path:?}: symlink to {target:?} leaves the archive"),
        }
    }
    let to = parts.join("/");
    if !is_layer_tar(&to) {
        bail!("archive entry {path:?}: symlink to {target:?} is not a layer");
    }
    Ok(to)
}

/// Most bytes of a GNU long name or a pax header.
const MAX_EXT_BYTES: u64 = 64 * 1024;

/// The path and link target extension entries give the next entry.
#[derive(Default)]
struct Names {
    path: Option<PathBuf>,
    link: Option<PathBuf>,
}

/// For an extension entry (GNU long name or link, pax header): consumed,
/// with the names it gives the next entry. `None` for other entries.
fn extension(e: &mut dyn Read, kind: tar::EntryType, size: u64) -> Result<Option<Names>> {
    use tar::EntryType::*;
    let long = |e: &mut dyn Read| -> Result<PathBuf> {
        let mut b = read_entry(e, size, MAX_EXT_BYTES, "a long name")?;
        while b.last() == Some(&0) {
            b.pop();
        }
        Ok(PathBuf::from(OsString::from_vec(b)))
    };
    let mut n = Names::default();
    match kind {
        GNULongName => n.path = Some(long(e)?),
        GNULongLink => n.link = Some(long(e)?),
        XHeader => {
            let b = read_entry(e, size, MAX_EXT_BYTES, "a pax header")?;
            for ext in tar::PaxExtensions::new(&b) {
                let ext = ext.context("pax header")?;
                let value = || PathBuf::from(OsStr::from_bytes(ext.value_bytes()));
                match ext.key() {
                    Ok("path") => n.path = Some(value()),
                    Ok("linkpath") => n.link = Some(value()),
                    Ok("size") => bail!("entries of more than 8 GiB (pax size) are not supported"),
                    _ => {}
                }
            }
        }
        XGlobalHeader => {
            read_entry(e, size, MAX_EXT_BYTES, "a pax header")?;
        }
        _ => return Ok(None),
    }
    Ok(Some(n))
}

/// An entry of `size` bytes read whole: refused past `max`, or cut short.
fn read_entry(e: &mut dyn Read, size: u64, max: u64, what: &str) -> Result<Vec<u8>> {
    if size > max {
        bail!("{what} is larger than {}", human(max));
    }
    let mut b = Vec::with_capacity(size as usize);
    e.take(size).read_to_end(&mut b)?;
    if b.len() as u64 != size {
        bail!("archive is truncated (in {what})");
    }
    Ok(b)
}

fn human(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{} KiB", n >> 10)
    }
}

/// Stream an entry of `size` bytes into a blob (checked against `expect`);
/// with the compression its first bytes tell.
fn put_blob(
    store: &Store,
    e: &mut dyn Read,
    size: u64,
    expect: Option<&Digest>,
    path: &str,
) -> Result<(Blob, Compression)> {
    let mut w = store.blob_writer()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut compression = Compression::None;
    let mut n = 0u64;
    loop {
        let got = match e.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).with_context(|| format!("read {path}")),
        };
        if n == 0 {
            compression = sniff(&buf[..got]);
        }
        n += got as u64;
        w.write_all(&buf[..got])?;
    }
    if n != size {
        bail!("archive is truncated (in {path})");
    }
    Ok((w.commit(store, expect)?, compression))
}

/// A reader that notes whether its input ran out.
struct EofReader<'a> {
    inner: &'a mut dyn Read,
    eof: bool,
}

impl Read for EofReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// A relative path inside the archive, `./` dropped; `..`, absolute and
/// non-UTF-8 paths refused.
fn clean_path(p: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| anyhow!("archive entry {p:?}: name is not UTF-8"))?,
            ),
            Component::CurDir => {}
            _ => bail!("archive entry {p:?}: path leaves the archive"),
        }
    }
    Ok(parts.join("/"))
}

/// The digest a `blobs/sha256/<hex>` path names; other paths none.
fn blob_name(path: &str) -> Result<Option<Digest>> {
    let Some(rest) = path.strip_prefix("blobs/") else {
        return Ok(None);
    };
    let (algo, hex) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("archive entry {path:?}: not a blob path"))?;
    Ok(Some(
        Digest::parse(&format!("{algo}:{hex}"))
            .map_err(|e| anyhow!("archive entry {path:?}: {e}"))?,
    ))
}

fn is_layer_tar(path: &str) -> bool {
    path.ends_with("/layer.tar") && path.matches('/').count() == 1
}

fn is_config_file(path: &str) -> bool {
    path.ends_with(".json") && !path.contains('/')
}

/// Docker's manifest.json entries.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The images the archive holds, each with its manifest in the store.
fn plan(store: &Store, st: &Staged) -> Result<Vec<Plan>> {
    let index = match st.meta.get("index.json") {
        Some(b) => Some(oci_images(store, st, b)?),
        None => None,
    };
    let Some(b) = st.meta.get("manifest.json") else {
        return index.ok_or_else(|| anyhow!("archive has neither manifest.json nor index.json"));
    };
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(b).context("manifest.json is not valid")?;
    let mut plans = Vec::new();
    for e in entries {
        let config = archive_blob(st, &e.config, "manifest.json")?;
        if let Some(stem) = e.config.strip_suffix(".json")
            && !e.config.contains('/')
            && stem != config.digest.hex()
        {
            bail!(
                "config {} hashes to {}, manifest.json names it {stem}",
                e.config,
                config.digest
            );
        }
        let layers = e
            .layers
            .iter()
            .map(|l| archive_blob(st, l, "manifest.json"))
            .collect::<Result<Vec<_>>>()?;
        let mut tags = Vec::new();
        for t in e.repo_tags.into_iter().flatten() {
            tags.push(familiar_tag(&t).with_context(|| format!("manifest.json tag {t:?}"))?);
        }
        let known = index.iter().flatten().find(|p| {
            manifest_of(store, &p.manifest).is_ok_and(|m| {
                m.config.digest == config.digest
                    && m.layers
                        .iter()
                        .map(|l| &l.digest)
                        .eq(layers.iter().map(|b| &b.digest))
            })
        });
        let manifest = match known {
            Some(p) => p.manifest.clone(),
            None => synthesise(store, config, &layers)?,
        };
        plans.push(Plan { manifest, tags });
    }
    Ok(plans)
}

/// The blob at archive path `path`, named by `by`.
fn archive_blob<'a>(st: &'a Staged, path: &str, by: &str) -> Result<&'a Blob> {
    let p = clean_path(Path::new(path))?;
    st.blobs
        .get(&p)
        .ok_or_else(|| anyhow!("{path} (named by {by}) is not in the archive"))
}

fn manifest_of(store: &Store, d: &Digest) -> Result<ImageManifest> {
    let b = store.read_blob_capped(d, MAX_META_BYTES, "manifest")?;
    match Manifest::parse(None, &b)? {
        Manifest::Image(m) => Ok(m),
        Manifest::Index(_) => bail!("{d} is an index, not an image manifest"),
    }
}

/// The images of an OCI index.json: image manifests (an index resolved to
/// the host's platform), each with every blob present in the archive.
fn oci_images(store: &Store, st: &Staged, bytes: &[u8]) -> Result<Vec<Plan>> {
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<Desc>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Desc {
        #[serde(default)]
        media_type: String,
        digest: Digest,
        size: u64,
        #[serde(default)]
        annotations: HashMap<String, String>,
    }
    let idx: Index = serde_json::from_slice(bytes).context("index.json is not valid")?;
    let mut plans: Vec<Plan> = Vec::new();
    for d in idx.manifests {
        let mut digest = in_archive(st, &d.digest, d.size, "index.json")?;
        if d.media_type == media::OCI_INDEX || d.media_type == media::DOCKER_LIST {
            let b = store.read_blob_capped(&digest, MAX_META_BYTES, "index")?;
            let Manifest::Index(i) = Manifest::parse(None, &b)? else {
                bail!("{digest} is not an index");
            };
            let pick = select_platform(&i, &Platform::host())?;
            digest = in_archive(st, &pick.digest, pick.size, "an index")?;
        }
        let m = manifest_of(store, &digest)?;
        in_archive(st, &m.config.digest, m.config.size, "a manifest")?;
        for l in &m.layers {
            in_archive(st, &l.digest, l.size, "a manifest")?;
        }
        let name = d
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| {
                d.annotations
                    .get("org.opencontainers.image.ref.name")
                    .filter(|n| n.contains(':') || n.contains('/'))
            })
            .map(|n| familiar_tag(n).with_context(|| format!("index.json name {n:?}")))
            .transpose()?;
        match plans.iter_mut().find(|p| p.manifest == digest) {
            Some(p) => p.tags.extend(name),
            None => plans.push(Plan {
                manifest: digest,
                tags: name.into_iter().collect(),
            }),
        }
    }
    Ok(plans)
}

/// `d` checked to be a blob of the archive of `size` bytes.
fn in_archive(st: &Staged, d: &Digest, size: u64, by: &str) -> Result<Digest> {
    let b = st
        .blobs
        .get(&format!("blobs/sha256/{}", d.hex()))
        .ok_or_else(|| anyhow!("blob {d} (named by {by}) is not in the archive"))?;
    if b.size != size {
        bail!("blob {d} has {} bytes, {by} says {size}", b.size);
    }
    Ok(d.clone())
}

/// An OCI manifest for a config and layers (from Docker's manifest.json),
/// each layer's compression told by its first bytes.
fn synthesise(store: &Store, config: &Blob, layers: &[&Blob]) -> Result<Digest> {
    let mut descs = Vec::new();
    for l in layers {
        let mut magic = [0u8; 4];
        let n = File::open(store.blob_path(&l.digest))?.read(&mut magic)?;
        let mt = match sniff(&magic[..n]) {
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
            Compression::None => media::OCI_LAYER,
        };
        descs.push(json!({"mediaType": mt, "digest": l.digest, "size": l.size}));
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": descs,
    });
    Ok(store.put_blob_bytes(&serde_json::to_vec(&m)?)?.digest)
}

/// Every layer of manifest `d` unpacks to the diff_id its config says,
/// before anything is recorded. What a layer unpacks to is known already
/// (from the store), or was learnt while the archive streamed in (an uncompressed
/// one's digest is its diff_id), or else it is inflated again from the store.
fn check_layers(store: &Store, st: &Staged, d: &Digest) -> Result<()> {
    #[derive(Deserialize)]
    struct Cfg {
        rootfs: RootFs,
    }
    #[derive(Deserialize)]
    struct RootFs {
        diff_ids: Vec<Digest>,
    }
    let m = manifest_of(store, d)?;
    let b = store.read_blob_capped(&m.config.digest, MAX_CONFIG_BYTES, "config")?;
    let cfg: Cfg = serde_json::from_slice(&b)
        .with_context(|| format!("image config {} is not valid", m.config.digest))?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        bail!(
            "image {} has {} layers, its config {} diff_ids",
            m.config.digest,
            m.layers.len(),
            cfg.rootfs.diff_ids.len()
        );
    }
    for (l, want) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
        let c = layer_compression(&l.media_type)?;
        let got = match (store.layer_facts(&l.digest), st.inflated.get(&l.digest)) {
            (Some(f), _) => f.diff_id,
            (None, _) if c == Compression::None => {
                store.record_layer(&l.digest, &l.digest, l.size)?;
                l.digest.clone()
            }
            (None, Some(i)) if i.compression == c => {
                let (diff_id, size) = i
                    .result
                    .as_ref()
                    .map_err(|e| anyhow!("layer {}: {e}", l.digest))?;
                store.record_layer(&l.digest, diff_id, *size)?;
                diff_id.clone()
            }
            (None, _) => store.verify_layer(&l.digest, &l.media_type)?,
        };
        if got != *want {
            bail!(
                "layer {} unpacks to {got}, its config says {want}",
                l.digest
            );
        }
    }
    Ok(())
}
