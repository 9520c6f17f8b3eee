//! `save`: images out of the store as Docker 25+'s archive (see the module doc).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::digest::Digest;
use crate::manifest::{Manifest, media};
use crate::reference::Reference;
use crate::store::{ImageRecord, MAX_CONFIG_BYTES, Store, familiar_tag};

/// One image to save and the tags to save it under.
struct Saved {
    rec: ImageRecord,
    manifest_media_type: String,
    manifest_size: u64,
    tags: Vec<String>,
}

/// Write the images `names` (names, ids or short ids, in that order) as one
/// tar to `out`. An image named by a tag is saved under that tag, a
/// repository name without a tag saves all its tags, an image named by id
/// is saved under none: as Docker does.
pub fn save(store: &Store, names: &[String], out: &mut dyn Write) -> Result<()> {
    let images = resolve(store, names)?;
    let mut blobs = BTreeSet::new();
    for s in &images {
        blobs.insert(s.rec.manifest_digest.clone());
        blobs.insert(s.rec.id.clone());
        blobs.extend(s.rec.layers.iter().map(|l| l.digest.clone()));
    }
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    dir(&mut tar, "blobs/")?;
    dir(&mut tar, "blobs/sha256/")?;
    for d in &blobs {
        let p = store.blob_path(d);
        let f = File::open(&p).with_context(|| format!("open blob {d}"))?;
        let size = f.metadata()?.len();
        file(&mut tar, &format!("blobs/sha256/{}", d.hex()), size, f)
            .with_context(|| format!("write blob {d}"))?;
    }
    let json_file = |tar: &mut tar::Builder<&mut dyn Write>, name: &str, v: &Value| {
        let b = serde_json::to_vec(v)?;
        file(tar, name, b.len() as u64, &b[..])
    };
    json_file(&mut tar, "index.json", &index_json(&images)?)?;
    json_file(&mut tar, "manifest.json", &manifest_json(&images))?;
    json_file(
        &mut tar,
        "oci-layout",
        &json!({"imageLayoutVersion": "1.0.0"}),
    )?;
    json_file(&mut tar, "repositories", &repositories_json(&images)?)?;
    tar.finish()?;
    tar.into_inner()?.flush()?;
    Ok(())
}

/// The images named, each once (in the order first named), with their tags.
fn resolve(store: &Store, names: &[String]) -> Result<Vec<Saved>> {
    let mut out: Vec<Saved> = Vec::new();
    for name in names {
        for (rec, tag) in expand(store, name)? {
            let i = match out.iter().position(|s| s.rec.id == rec.id) {
                Some(i) => i,
                None => {
                    out.push(saved(store, rec)?);
                    out.len() - 1
                }
            };
            if let Some(t) = tag
                && !out[i].tags.contains(&t)
            {
                out[i].tags.push(t);
            }
        }
    }
    Ok(out)
}

/// What a name saves, as Docker reads it: a repository without a tag
/// every tag of it; else the image it names, under that tag if it is one.
fn expand(store: &Store, name: &str) -> Result<Vec<(ImageRecord, Option<String>)>> {
    if let Ok(r) = Reference::parse(name)
        && r.tag.is_none()
        && r.digest.is_none()
    {
        let repo = r.familiar_name();
        let mut all = Vec::new();
        for rec in store.images()? {
            for t in &rec.repo_tags {
                if t.rsplit_once(':').map(|(n, _)| n) == Some(repo.as_str()) {
                    all.push((rec.clone(), Some(t.clone())));
                }
            }
        }
        if !all.is_empty() {
            all.sort_by(|a, b| a.1.cmp(&b.1));
            return Ok(all);
        }
    }
    let rec = store.resolve(name)?;
    let tag = familiar_tag(name)
        .ok()
        .filter(|t| rec.repo_tags.contains(t));
    Ok(vec![(rec, tag)])
}

/// An image to save, its manifest's media type and size read.
fn saved(store: &Store, rec: ImageRecord) -> Result<Saved> {
    let bytes = store.read_blob_capped(&rec.manifest_digest, MAX_CONFIG_BYTES, "manifest")?;
    let manifest_media_type = match Manifest::parse(None, &bytes)? {
        Manifest::Image(m) => m.media_type.unwrap_or_else(|| media::OCI_MANIFEST.into()),
        Manifest::Index(_) => media::OCI_INDEX.into(),
    };
    Ok(Saved {
        rec,
        manifest_media_type,
        manifest_size: bytes.len() as u64,
        tags: Vec::new(),
    })
}

/// The OCI index: a descriptor per tag, as Docker 25 writes it.
fn index_json(images: &[Saved]) -> Result<Value> {
    let mut manifests = Vec::new();
    for s in images {
        let desc = json!({
            "mediaType": s.manifest_media_type,
            "digest": s.rec.manifest_digest,
            "size": s.manifest_size,
        });
        if s.tags.is_empty() {
            manifests.push(desc.clone());
        }
        for t in &s.tags {
            let r = Reference::parse(t)?;
            let mut d = desc.clone();
            d["annotations"] = json!({
                "io.containerd.image.name": r.to_string(),
                "org.opencontainers.image.ref.name": r.tag.as_deref().unwrap_or("latest"),
            });
            manifests.push(d);
        }
    }
    Ok(json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    }))
}

/// Docker's manifest.json.
fn manifest_json(images: &[Saved]) -> Value {
    let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let entries: Vec<Value> = images
        .iter()
        .map(|s| {
            json!({
                "Config": path(&s.rec.id),
                "RepoTags": if s.tags.is_empty() { Value::Null } else { json!(s.tags) },
                "Layers": s.rec.layers.iter().map(|l| path(&l.digest)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(entries)
}

/// Docker's `repositories`: repo → tag → top layer.
fn repositories_json(images: &[Saved]) -> Result<Value> {
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in images {
        let Some(top) = s.rec.layers.last() else {
            continue;
        };
        for t in &s.tags {
            let r = Reference::parse(t)?;
            repos.entry(r.familiar_name()).or_default().insert(
                r.tag.unwrap_or_else(|| "latest".into()),
                top.digest.hex().to_string(),
            );
        }
    }
    Ok(serde_json::to_value(repos)?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn dir(tar: &mut tar::Builder<&mut dyn Write>, name: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, name, std::io::empty())?;
    Ok(())
}

fn file(
    tar: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    tar.append_data(&mut h, name, data.take(size))?;
    Ok(())
}
