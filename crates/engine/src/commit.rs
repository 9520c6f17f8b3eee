//! `commit`: a new image from a container's changes. Its overlay upper dir
//! becomes one more layer (OCI whiteouts, deterministic tar, gzip or
//! zstd) over the image it was made from; the config is the container's
//! (its environment, command and labels), with `-c` changes, the new
//! diff_id and a history entry. Everything goes through the store's write
//! API, so an interrupted commit leaves no image and no visible blob that
//! does not hash to its name.

use std::io::{self, Write};

use anyhow::{Context, Result, anyhow, bail};
use berth_image::digest::{Digest, Hasher};
use berth_image::manifest::{ImageManifest, Manifest, media};
use berth_image::{Compression, ImageRecord};
use serde_json::{Map, Value, json};

use crate::Engine;
use crate::records::ContainerRecord;

/// What `commit` is asked.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub container: String,
    /// `REPO[:TAG]`; none leaves the image untagged.
    pub reference: Option<String>,
    pub message: Option<String>,
    pub author: Option<String>,
    /// Dockerfile instructions (`-c`), see [`crate::instructions`].
    pub changes: Vec<String>,
    /// Freeze a running container while its changes are read (Docker's default).
    pub pause: bool,
    /// `Gzip` or `Zstd`.
    pub compression: Compression,
}

/// Make the image; returns its record.
pub fn commit(engine: &Engine, req: &CommitRequest) -> Result<ImageRecord> {
    let records = engine.records()?;
    let c = records.find(&req.container)?;
    let rootless = crate::rootless::active();
    if rootless && !crate::rootless::in_own_userns() {
        crate::cp::rootless_enter(&c)?;
    }
    if let Some(r) = &req.reference {
        berth_image::store::familiar_tag(r)?;
    }
    let base = engine
        .store
        .resolve(&c.image_id)
        .with_context(|| format!("the image of container {} is gone", c.name))?;
    // The config first: a bad -c fails before anything is written.
    let mut config = engine.store.config_json(&base)?;
    container_config(engine, &c, &base, &mut config, &req.changes)?;

    let upper = upper_dir(engine, &c)?;
    let _fs = records.fs_lock(&c.id)?;
    let thaw = freeze(engine, &c, req.pause, rootless)?;
    let guard = engine.store.write_guard()?;
    let layer = write_layer(engine, &upper, req.compression, None);
    drop(thaw);
    let (blob, diff_id, _) = layer?;
    add_history(&mut config, &c, req, &diff_id);
    let rec = store_image(
        engine,
        Some(&base),
        &config,
        Some(&blob),
        req.compression,
        req.reference.as_deref(),
    )?;
    drop(guard);
    crate::events::container(engine, &c, "commit");
    Ok(rec)
}

/// Stores `config` and a manifest of `base`'s layers (none for
/// `scratch`) and `layer`, in Docker's media types unless the base is
/// OCI-typed, as an image tagged `tag`. Inside the caller's write guard.
pub(crate) fn store_image(
    engine: &Engine,
    base: Option<&ImageRecord>,
    config: &Value,
    layer: Option<&berth_image::Blob>,
    compression: Compression,
    tag: Option<&str>,
) -> Result<ImageRecord> {
    let docker = match base {
        Some(b) => docker_types(engine, b)?.unwrap_or(true),
        None => true,
    };
    let cfg = engine.store.put_blob_bytes(&serde_json::to_vec(config)?)?;
    let manifest = manifest(engine, base, &cfg, layer, compression, docker)?;
    let m = engine
        .store
        .put_blob_bytes(&serde_json::to_vec(&manifest)?)?;
    engine.store.add_image(&m.digest, tag)
}

pub(crate) fn upper_dir(engine: &Engine, c: &ContainerRecord) -> Result<std::path::PathBuf> {
    let records = engine.records()?;
    [
        records.dir(&c.id).join("upper"),
        engine.scratch_dir(&c.id).join("upper"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .ok_or_else(|| {
        anyhow!(
            "{}: its root filesystem is a copy, not an overlay: commit needs an overlay's upper layer",
            c.name
        )
    })
}

/// Thaws the container again when dropped.
struct Thaw<'a>(Option<(&'a Engine, String)>);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        if let Some((engine, id)) = self.0.take() {
            let _ = crate::lifecycle::pause(engine, &id, false);
        }
    }
}

fn freeze<'a>(
    engine: &'a Engine,
    c: &ContainerRecord,
    pause: bool,
    rootless: bool,
) -> Result<Thaw<'a>> {
    if !pause || !c.is_running() || c.paused {
        return Ok(Thaw(None));
    }
    match crate::lifecycle::pause(engine, &c.id, true) {
        Ok(()) => Ok(Thaw(Some((engine, c.id.clone())))),
        // Rootless on cgroup v1 there is no freezer of the user's: the
        // changes are read as they are, as with --pause=false.
        Err(_) if rootless => Ok(Thaw(None)),
        Err(e) => Err(e),
    }
}

/// A writer that hashes what goes through it: the diff_id of the tar
/// that the compressor gets.
struct Tee<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The upper dir as a compressed layer blob, with its diff_id; mtimes
/// later than `mtime_max` written as it (`SOURCE_DATE_EPOCH`).
pub(crate) fn write_layer(
    engine: &Engine,
    upper: &std::path::Path,
    compression: Compression,
    mtime_max: Option<u64>,
) -> Result<(berth_image::Blob, Digest, berth_snapshot::UpperReport)> {
    let store = &engine.store;
    let w = io::BufWriter::with_capacity(256 * 1024, store.blob_writer()?);
    let skip = crate::diff::PREPARED;
    let enc = berth_image::compress::Compressor::new(w, compression)?;
    // Walking and hashing here, compressing and writing on a second core.
    let bg = berth_image::compress::Background::new(enc, |e| e.finish());
    let opts = berth_snapshot::UpperOptions { skip, mtime_max };
    let (tee, report) = berth_snapshot::write_upper_with(upper, &opts, tee(bg))?;
    let size = tee.hasher.len();
    let diff_id = tee.hasher.finish();
    let w = tee.inner.finish()?;
    let w = w.into_inner().map_err(|e| e.into_error())?;
    let blob = w.commit(store, None)?;
    store.record_layer(&blob.digest, &diff_id, size)?;
    Ok((blob, diff_id, report))
}

fn tee<W: Write>(inner: W) -> Tee<W> {
    Tee {
        inner,
        hasher: Hasher::new(),
    }
}

/// Whether the base image's manifest is Docker's (else OCI); none when
/// the manifest cannot say.
fn docker_types(engine: &Engine, base: &ImageRecord) -> Result<Option<bool>> {
    let m = base_manifest(engine, base)?;
    Ok(m.media_type.map(|t| t == media::DOCKER_MANIFEST))
}

fn base_manifest(engine: &Engine, base: &ImageRecord) -> Result<ImageManifest> {
    let b = engine.store.read_blob_capped(
        &base.manifest_digest,
        berth_image::manifest::MAX_MANIFEST_BYTES,
        "manifest",
    )?;
    match Manifest::parse(None, &b)? {
        Manifest::Image(m) => Ok(m),
        Manifest::Index(_) => bail!("manifest {} is an index", base.manifest_digest),
    }
}

/// The new manifest: the base's layers, then the new one.
fn manifest(
    engine: &Engine,
    base: Option<&ImageRecord>,
    cfg: &berth_image::Blob,
    layer: Option<&berth_image::Blob>,
    compression: Compression,
    docker: bool,
) -> Result<Value> {
    let (mt, cfg_mt, layer_mt) = match (docker, compression) {
        (true, Compression::Zstd) => (
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_ZSTD,
        ),
        (true, _) => (
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP,
        ),
        (false, Compression::Zstd) => (
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            media::OCI_LAYER_ZSTD,
        ),
        (false, _) => (
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            media::OCI_LAYER_GZIP,
        ),
    };
    let mut layers: Vec<Value> = match base {
        Some(b) => base_manifest(engine, b)?
            .layers
            .iter()
            .map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
            .collect(),
        None => Vec::new(),
    };
    if let Some(layer) = layer {
        layers.push(json!({"mediaType": layer_mt, "digest": layer.digest, "size": layer.size}));
    }
    Ok(json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": cfg_mt, "digest": cfg.digest, "size": cfg.size},
        "layers": layers,
    }))
}

/// The container's config over the image's: its environment, working
/// dir, command and labels, as Docker's commit keeps them, then `changes`.
fn container_config(
    engine: &Engine,
    c: &ContainerRecord,
    base: &ImageRecord,
    config: &mut Value,
    changes: &[String],
) -> Result<()> {
    let obj = config
        .as_object_mut()
        .ok_or_else(|| anyhow!("image config {} is not an object", base.id))?;
    let inner = obj.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    let inner = inner.as_object_mut().expect("an object");
    if let Ok(spec) = berth_runtime::load_spec(&engine.bundle_of(c))
        && let Some(p) = spec.process()
    {
        if let Some(env) = p.env() {
            // HOSTNAME (and a terminal's TERM) are the run's, not the image's.
            let env: Vec<&String> = env.iter().filter(|e| !e.starts_with("HOSTNAME=")).collect();
            inner.insert("Env".into(), json!(env));
        }
        let cwd = p.cwd().display().to_string();
        if cwd != "/" || inner.contains_key("WorkingDir") {
            inner.insert("WorkingDir".into(), json!(cwd));
        }
    }
    let entrypoint: Vec<String> = strings(inner.get("Entrypoint"));
    if !c.command.is_empty() {
        let cmd = c
            .command
            .strip_prefix(entrypoint.as_slice())
            .unwrap_or(&c.command);
        inner.insert("Cmd".into(), json!(cmd));
    }
    if !c.labels.is_empty() {
        inner.insert("Labels".into(), json!(c.labels));
    }
    crate::instructions::apply(inner, changes)
}

/// The strings of a JSON array (none when it is not one).
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The new diff_id, creation time, author and a history entry.
fn add_history(config: &mut Value, c: &ContainerRecord, req: &CommitRequest, diff_id: &Digest) {
    let now = crate::timefmt::now_rfc3339();
    let Some(obj) = config.as_object_mut() else {
        return;
    };
    push_diff_id(obj, diff_id.as_str());
    let mut entry = Map::new();
    entry.insert("created".into(), json!(now));
    entry.insert("created_by".into(), json!(c.command.join(" ")));
    if let Some(a) = &req.author {
        entry.insert("author".into(), json!(a));
        obj.insert("author".into(), json!(a));
    }
    if let Some(m) = &req.message {
        entry.insert("comment".into(), json!(m));
    }
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        h.push(Value::Object(entry));
    }
    obj.insert("created".into(), json!(now));
    obj.remove("container_config");
    obj.insert("container".into(), json!(c.id));
}

/// One more layer in an image config's `rootfs.diff_ids`.
pub(crate) fn push_diff_id(config: &mut Map<String, Value>, diff_id: &str) {
    let rootfs = config
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        ids.push(json!(diff_id));
    }
}
