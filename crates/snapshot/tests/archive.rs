//! `cp`'s tar streams: [`write_archive`] never follows a symlink out of
//! its root nor below its path, and [`extract_archive`] keeps every
//! layer rule while taking `.wh.` names literally, landing under a
//! destination, owning entries as told and leaving device nodes out.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_snapshot::archive::{Kind, stat_path, write_archive};
use berth_snapshot::{ApplyMode, ApplyOptions, Root, extract_archive};

fn plain(under: &str) -> ApplyOptions {
    ApplyOptions {
        mode: ApplyMode::Plain,
        under: under.into(),
        privileged: Some(true),
        ..Default::default()
    }
}

fn entry(tar: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    if kind == tar::EntryType::Char {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    tar.append_data(&mut h, name, data).unwrap();
}

#[test]
fn plain_extraction_lands_under_the_destination_literally() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("dst")).unwrap();
    std::fs::write(t.path().join("dst/x"), "kept").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "./", tar::EntryType::Directory, b"");
    entry(&mut b, ".wh.x", tar::EntryType::Regular, b"a file");
    entry(&mut b, "sub/f", tar::EntryType::Regular, b"f");
    entry(&mut b, "null", tar::EntryType::Char, b"");
    let data = b.into_inner().unwrap();
    let opts = ApplyOptions {
        owner: Some((1234, 4321)),
        skip_devices: true,
        ..plain("dst")
    };
    let report = extract_archive(&data[..], t.path(), &opts).unwrap();
    let d = t.path().join("dst");
    assert_eq!(std::fs::read_to_string(d.join("x")).unwrap(), "kept");
    assert_eq!(std::fs::read_to_string(d.join(".wh.x")).unwrap(), "a file");
    let m = std::fs::metadata(d.join("sub/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 4321));
    assert!(!d.join("null").exists(), "device nodes are left out");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("device node skipped"))
    );
}

#[test]
fn plain_extraction_refuses_climbing_out_of_the_destination() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("dst")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(3);
    h.set_mode(0o644);
    // The tar crate refuses to write `..`; the bytes go in as they are.
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_cksum();
    b.append(&h, &b"bad"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let e = extract_archive(&data[..], t.path(), &plain("dst")).unwrap_err();
    assert!(format!("{e:#}").contains(".."), "{e:#}");
    assert!(!t.path().join("escape").exists());
}

#[test]
fn archives_resolve_in_the_root_and_keep_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "host").unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/passwd"), "root::0:0").unwrap();
    std::os::unix::fs::symlink("/", r.join("hostroot")).unwrap();
    std::os::unix::fs::symlink(host.path().join("secret"), r.join("etc/to-host")).unwrap();
    let root = Root::open(r).unwrap();
    // Through `/` and `..`: the root's own file.
    for p in ["hostroot/etc/passwd", "../../etc/passwd"] {
        let mut out = Vec::new();
        write_archive(&root, Path::new(p), false, Path::new("p"), &mut out).unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut e, &mut s).unwrap();
        assert_eq!(s, "root::0:0", "{p}");
    }
    // The host's file named through the root: not there.
    let outside = Path::new("hostroot").join(host.path().strip_prefix("/").unwrap());
    assert_eq!(
        stat_path(&root, &outside.join("secret"), true).unwrap(),
        None
    );
    // A tree's symlinks stay symlinks, followed or not at the top.
    let mut out = Vec::new();
    write_archive(&root, Path::new("etc"), true, Path::new("etc"), &mut out).unwrap();
    let names: Vec<(String, tar::EntryType)> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert!(
        names.contains(&("etc/to-host".into(), tar::EntryType::Symlink)),
        "{names:?}"
    );
    assert_eq!(
        stat_path(&root, Path::new("etc/to-host"), false).unwrap(),
        Some(Kind::Symlink)
    );
}
