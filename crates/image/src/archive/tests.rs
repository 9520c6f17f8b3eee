//! Archives by value: round trips, Docker's old format, and hostile tars.

use std::io::Write;

use super::*;
use crate::digest::Digest;
use crate::manifest::media;
use crate::store::Store;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// A layer tar with one file.
fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    t.append_data(&mut h, name, data).unwrap();
    t.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A two-layer gzip image in `s`, tagged `tag`.
fn image(s: &Store, tag: &str, seed: &str) -> crate::ImageRecord {
    let tars = [layer("a", b"base"), layer("b", seed.as_bytes())];
    let blobs: Vec<_> = tars
        .iter()
        .map(|t| s.put_blob_bytes(&gzip(t)).unwrap())
        .collect();
    let cfg = s
        .put_blob_bytes(&config(
            &tars.iter().map(|t| Digest::of(t)).collect::<Vec<_>>(),
        ))
        .unwrap();
    let layers: Vec<_> = blobs
        .iter()
        .map(|b| serde_json::json!({"mediaType": media::DOCKER_LAYER_GZIP, "digest": b.digest, "size": b.size}))
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "digest": cfg.digest, "size": cfg.size},
        "layers": layers,
    });
    let m = s.put_blob_bytes(&serde_json::to_vec(&m).unwrap()).unwrap();
    s.add_image(&m.digest, Some(tag)).unwrap()
}

fn saved(s: &Store, names: &[&str]) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut out = Vec::new();
    save(s, &names, &mut out).unwrap();
    out
}

/// A tar of (path, kind, bytes) entries, as a hostile archive is built.
fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
            h.set_size(0);
            let target = match data {
                [] => "/etc/passwd",
                d => std::str::from_utf8(d).unwrap(),
            };
            h.set_link_name(target).unwrap();
            t.append_data(&mut h, p, &[][..]).unwrap();
            continue;
        }
        // Written by hand: append_data refuses `..`.
        let name = h.as_old_mut();
        name.name[..p.len()].copy_from_slice(p.as_bytes());
        h.set_cksum();
        t.append(&h, *data).unwrap();
    }
    t.into_inner().unwrap()
}

/// `load` of `bytes` fails with a message containing `want`, and leaves no
/// image and no temp file.
fn refused(bytes: &[u8], want: &str) {
    let (_d, s) = store();
    let e = format!("{:#}", load(&s, &mut &bytes[..]).unwrap_err());
    assert!(e.contains(want), "{e}");
    assert!(s.images().unwrap().is_empty(), "no image after: {e}");
    assert!(
        s.temp_names().unwrap().is_empty(),
        "no temp file after: {e}"
    );
}

#[test]
fn save_is_deterministic_and_round_trips() {
    let (_d, s) = store();
    let a = image(&s, "app:v1", "one");
    s.tag("app:v1", "app:v2").unwrap();
    let b = image(&s, "127.0.0.1:5500/other", "two");
    let bytes = saved(&s, &["app:v1", "app:v2", "127.0.0.1:5500/other:latest"]);
    assert_eq!(
        bytes,
        saved(&s, &["app:v1", "app:v2", "127.0.0.1:5500/other:latest"])
    );

    let (_d2, s2) = store();
    let loaded = load(&s2, &mut &bytes[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].id, a.id);
    assert_eq!(loaded[0].tags, ["app:v1", "app:v2"]);
    assert_eq!(loaded[1].tags, ["127.0.0.1:5500/other:latest"]);
    let a2 = s2.resolve("app:v2").unwrap();
    assert_eq!((a2.id, a2.manifest_digest), (a.id, a.manifest_digest));
    assert_eq!(s2.resolve("127.0.0.1:5500/other").unwrap().id, b.id);
    // The shared base layer is in the archive once.
    let base = &a.layers[0].digest;
    let n = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().unwrap().ends_with(base.hex()))
        .count();
    assert_eq!(n, 1);
}

#[test]
fn long_names_are_read() {
    let (_d, s) = store();
    let a = image(&s, "app:v1", "one");
    let bytes = saved(&s, &["app:v1"]);
    // Every name given by a GNU long-name entry, past 100 bytes.
    let mut t = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let long = format!("{}{}\0", "./".repeat(60), e.path().unwrap().display());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(long.len() as u64);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        t.append(&h, long.as_bytes()).unwrap();
        let mut h = e.header().clone();
        h.as_old_mut().name = [0; 100];
        h.as_old_mut().name[0] = b'x';
        h.set_cksum();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        t.append(&h, &data[..]).unwrap();
    }
    let bytes = t.into_inner().unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    let longs = ar.entries().unwrap().raw(true);
    let longs = longs.filter(|e| e.as_ref().unwrap().header().entry_type().is_gnu_longname());
    assert!(longs.count() > 5);
    let (_d2, s2) = store();
    let loaded = load(&s2, &mut &bytes[..]).unwrap();
    assert_eq!(loaded[0].id, a.id);
}

#[test]
fn a_repository_name_saves_all_its_tags() {
    let (_d, s) = store();
    let a = image(&s, "app:v1", "one");
    s.tag("app:v1", "app:v2").unwrap();
    let b = image(&s, "app:v3", "three");
    image(&s, "other:v1", "other");
    let (_d2, s2) = store();
    let loaded = load(&s2, &mut &saved(&s, &["app"])[..]).unwrap();
    let want = [
        Loaded {
            id: a.id,
            tags: vec!["app:v1".into(), "app:v2".into()],
        },
        Loaded {
            id: b.id,
            tags: vec!["app:v3".into()],
        },
    ];
    assert_eq!(loaded, want);
    assert!(s2.resolve("other:v1").is_err());
}

#[test]
fn an_image_saved_by_id_loads_untagged() {
    let (_d, s) = store();
    let a = image(&s, "app:v1", "one");
    let bytes = saved(&s, &[a.short_id()]);
    let (_d2, s2) = store();
    let loaded = load(&s2, &mut &bytes[..]).unwrap();
    assert_eq!((loaded[0].id.clone(), loaded[0].tags.len()), (a.id, 0));
}

#[test]
fn docker_old_format_loads_with_a_made_manifest() {
    // The base layer again on top: Docker links it to the one saved.
    let tars = [layer("a", b"base"), layer("b", b"top")];
    let cfg = config(&[
        Digest::of(&tars[0]),
        Digest::of(&tars[1]),
        Digest::of(&tars[0]),
    ]);
    let id = Digest::of(&cfg);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{}.json", id.hex()),
        "RepoTags": ["busybox:latest"],
        "Layers": ["l0/layer.tar", "l1/layer.tar", "l2/layer.tar"],
    }]))
    .unwrap();
    let f = tar::EntryType::Regular;
    let cfg_name = format!("{}.json", id.hex());
    let bytes = tar_of(&[
        ("l2/layer.tar", tar::EntryType::Symlink, b"../l0/layer.tar"),
        ("l0/layer.tar", f, &tars[0]),
        ("l0/json", f, b"{}"),
        ("l1/layer.tar", f, &tars[1]),
        (&cfg_name, f, &cfg),
        ("manifest.json", f, &manifest),
    ]);
    let (_d, s) = store();
    let loaded = load(&s, &mut &bytes[..]).unwrap();
    assert_eq!(
        loaded,
        [Loaded {
            id: id.clone(),
            tags: vec!["busybox:latest".into()]
        }]
    );
    let rec = s.resolve("busybox").unwrap();
    assert_eq!(rec.layers[1].media_type, media::OCI_LAYER);
    assert_eq!(rec.layers[1].diff_id, Digest::of(&tars[1]));
    // Loading it again makes the very same manifest.
    let (_d2, s2) = store();
    let again = load(&s2, &mut &bytes[..]).unwrap();
    assert_eq!(again[0].id, id);
    assert_eq!(
        s2.resolve("busybox").unwrap().manifest_digest,
        rec.manifest_digest
    );

    // A config named for another id is refused.
    let lie = format!("{}.json", Digest::of(b"x").hex());
    let manifest = String::from_utf8(manifest)
        .unwrap()
        .replace(&cfg_name, &lie);
    refused(
        &tar_of(&[
            ("l0/layer.tar", f, &tars[0]),
            ("l1/layer.tar", f, &tars[1]),
            (&lie, f, &cfg),
            ("manifest.json", f, manifest.as_bytes()),
        ]),
        "manifest.json names it",
    );
}

#[test]
fn hostile_archives_are_refused_leaving_nothing() {
    let (_d, s) = store();
    image(&s, "app:v1", "one");
    let good = saved(&s, &["app:v1"]);
    let f = tar::EntryType::Regular;
    refused(&tar_of(&[("../evil", f, b"x")]), "path leaves the archive");
    refused(
        &tar_of(&[("/etc/evil", f, b"x")]),
        "path leaves the archive",
    );
    refused(
        &tar_of(&[("blobs/x", tar::EntryType::Symlink, b"")]),
        "Symlink entries are not allowed",
    );
    refused(
        &tar_of(&[("blobs/x", tar::EntryType::Link, b"")]),
        "Link entries are not allowed",
    );
    refused(
        &tar_of(&[("dev", tar::EntryType::Char, b"")]),
        "Char entries are not allowed",
    );
    // Names from GNU long-name and pax entries are checked alike, and capped.
    let long = tar::EntryType::GNULongName;
    let pax = tar::EntryType::XHeader;
    let evil = [("././@LongLink", long, &b"../evil\0"[..]), ("x", f, b"x")];
    refused(&tar_of(&evil), "path leaves the archive");
    let evil = [("pax", pax, &b"16 path=../evil\n"[..]), ("x", f, b"x")];
    refused(&tar_of(&evil), "path leaves the archive");
    let huge = vec![b'a'; 70_000];
    let evil = [("././@LongLink", long, &huge[..]), ("x", f, b"x")];
    refused(&tar_of(&evil), "a long name is larger than 64 KiB");
    let big = vec![b' '; (MAX_META_BYTES + 1) as usize];
    refused(
        &tar_of(&[("manifest.json", f, &big)]),
        "manifest.json is larger than 4 MiB",
    );
    let liar = format!("blobs/sha256/{}", Digest::of(b"other").hex());
    refused(&tar_of(&[(&liar, f, b"hello")]), "hashes to");
    refused(
        &tar_of(&[("oci-layout", f, b"{}")]),
        "neither manifest.json nor index.json",
    );
    // Truncated anywhere: in a blob, or with the metadata cut off.
    for cut in [good.len() / 3, good.len() / 2, good.len() - 2048] {
        let (_d2, s2) = store();
        assert!(load(&s2, &mut &good[..cut]).is_err(), "cut at {cut}");
        assert!(s2.images().unwrap().is_empty());
        assert!(s2.temp_names().unwrap().is_empty());
    }
}

#[test]
fn a_layer_that_is_not_what_its_config_says_records_nothing() {
    let (_d, s) = store();
    let a = image(&s, "app:v1", "one");
    // Another layer in place of the top one, under its own (true) name.
    let other = gzip(&layer("b", b"changed"));
    let bytes = saved(&s, &["app:v1"]);
    let top = a.layers[1].digest.hex().to_string();
    let mut t = tar::Builder::new(Vec::new());
    let od = Digest::of(&other);
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if p == "index.json" {
            continue; // manifest.json alone names the image
        }
        let (p, data) = if p.ends_with(&top) {
            (format!("blobs/sha256/{}", od.hex()), other.clone())
        } else if p == "manifest.json" {
            (
                p,
                String::from_utf8(data)
                    .unwrap()
                    .replace(&top, od.hex())
                    .into_bytes(),
            )
        } else {
            (p, data)
        };
        h.set_size(data.len() as u64);
        t.append_data(&mut h, p, &data[..]).unwrap();
    }
    refused(&t.into_inner().unwrap(), "its config says");
}

#[test]
fn a_layer_whose_media_type_lies_about_its_compression_is_refused() {
    // An OCI layout whose manifest calls a gzip layer uncompressed: its
    // digest is then its diff_id, which is not what the config says.
    let tar = layer("a", b"base");
    let gz = gzip(&tar);
    let cfg = config(&[Digest::of(&tar)]);
    let (cd, ld) = (Digest::of(&cfg), Digest::of(&gz));
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": cd, "size": cfg.len()},
        "layers": [{"mediaType": media::OCI_LAYER, "digest": ld, "size": gz.len()}],
    }))
    .unwrap();
    let index = |m: &[u8]| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": Digest::of(m), "size": m.len()}],
        }))
        .unwrap()
    };
    let (md, idx) = (Digest::of(&m), index(&m));
    let f = tar::EntryType::Regular;
    let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let (pc, pl, pm) = (path(&cd), path(&ld), path(&md));
    let mut entries = vec![(pc.as_str(), f, &cfg[..]), (pl.as_str(), f, &gz[..])];
    entries.extend([(pm.as_str(), f, &m[..]), ("index.json", f, &idx[..])]);
    refused(&tar_of(&entries), "its config says");
    // Called zstd, it is inflated again from the store, and fails.
    let m2 = String::from_utf8(m.clone())
        .unwrap()
        .replace(media::OCI_LAYER, media::OCI_LAYER_ZSTD);
    let md2 = Digest::of(m2.as_bytes());
    let idx2 = index(m2.as_bytes());
    let pm2 = path(&md2);
    let mut entries = vec![(pc.as_str(), f, &cfg[..]), (pl.as_str(), f, &gz[..])];
    entries.extend([
        (pm2.as_str(), f, m2.as_bytes()),
        ("index.json", f, &idx2[..]),
    ]);
    refused(&tar_of(&entries), "decompress layer");
}

#[test]
fn a_decompression_bomb_is_refused() {
    // 1 GiB + 1 MiB of zeros in one gzip layer (about 1 MB): past both
    // 100 times its size and the 1 GiB floor.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1025 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    let cfg = config(&[Digest::of(b"whatever")]);
    let (cd, ld) = (Digest::of(&cfg), Digest::of(&bomb));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", cd.hex()),
        "RepoTags": ["bomb:v1"],
        "Layers": [format!("blobs/sha256/{}", ld.hex())],
    }]))
    .unwrap();
    let f = tar::EntryType::Regular;
    let (pc, pl) = (
        format!("blobs/sha256/{}", cd.hex()),
        format!("blobs/sha256/{}", ld.hex()),
    );
    let bytes = tar_of(&[
        (&pc, f, &cfg),
        (&pl, f, &bomb),
        ("manifest.json", f, &manifest),
    ]);
    refused(&bytes, "refused as a decompression bomb");
}

#[test]
fn an_oci_index_in_the_layout_loads_the_host_platform() {
    let (_d, s) = store();
    let a = image(&s, "app:v1", "one");
    let bytes = saved(&s, &["app:v1"]);
    let m = s.read_blob(&a.manifest_digest).unwrap();
    // Another platform's manifest, absent from the archive, is never read.
    let host = crate::Platform::host();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::DOCKER_MANIFEST, "digest": Digest::of(b"elsewhere"), "size": 9,
             "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": media::DOCKER_MANIFEST, "digest": a.manifest_digest, "size": m.len(),
             "platform": {"os": host.os, "architecture": host.architecture}},
        ],
    }))
    .unwrap();
    let id = Digest::of(&index);
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": media::OCI_INDEX, "digest": id, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi:v2"}}],
    }))
    .unwrap();
    // The saved archive's blobs, the index, and that index.json alone.
    let mut t = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        if !p.starts_with("blobs/") {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        t.append_data(&mut h, p, &data[..]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(index.len() as u64);
    t.append_data(&mut h, format!("blobs/sha256/{}", id.hex()), &index[..])
        .unwrap();
    h.set_size(top.len() as u64);
    t.append_data(&mut h, "index.json", &top[..]).unwrap();
    let (_d2, s2) = store();
    let loaded = load(&s2, &mut &t.into_inner().unwrap()[..]).unwrap();
    assert_eq!(
        loaded,
        [Loaded {
            id: a.id,
            tags: vec!["multi:v2".into()]
        }]
    );
}
