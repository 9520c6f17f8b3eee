//! Snapshot store: chain-id keys, unpack-once, atomic publish, locking, cleanup.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_snapshot::{LayerDesc, Snapshots, chain_ids, diff_id_of};
use common::test_image;

fn descs(layers: &[Vec<u8>]) -> Vec<LayerDesc> {
    layers
        .iter()
        .map(|l| LayerDesc {
            diff_id: diff_id_of(&l[..]).unwrap(),
        })
        .collect()
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

#[test]
fn unpacks_each_chain_once_and_reuses_it() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let opened = AtomicUsize::new(0);
    let open = |i: usize| -> anyhow::Result<Box<dyn std::io::Read>> {
        opened.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
    };
    let two = s.prepare(&d[..2], open).unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    let three = s.prepare(&d, open).unwrap();
    assert_eq!(
        opened.load(Ordering::SeqCst),
        3,
        "only the missing top layer is unpacked"
    );
    assert_eq!(&three[..2], &two[..]);
    let ids: Vec<&str> = d.iter().map(|l| l.diff_id.as_str()).collect();
    let chains = chain_ids(&ids);
    for (dir, chain) in three.iter().zip(&chains) {
        assert_eq!(dir, &s.path(chain).unwrap());
    }
    assert_eq!(s.list().unwrap().len(), 3);
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn same_layer_under_different_parents_is_a_different_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let a = s
        .prepare(&[d[0].clone(), d[2].clone()], |i| {
            Ok(Box::new(std::io::Cursor::new(layers[[0, 2][i]].clone())))
        })
        .unwrap();
    let b = s
        .prepare(&d, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    assert_ne!(a[1], b[2]);
}

#[test]
fn tampered_layer_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let mut evil = layers[1].clone();
    let pos = evil.windows(10).position(|w| w == b"now a file").unwrap();
    evil[pos] = b'N';
    let e = s
        .prepare(&d[..2], |i| {
            Ok(Box::new(std::io::Cursor::new(if i == 1 {
                evil.clone()
            } else {
                layers[i].clone()
            })))
        })
        .unwrap_err();
    assert!(format!("{e:#}").contains("digest mismatch"), "{e:#}");
    assert_eq!(
        s.list().unwrap().len(),
        1,
        "only the good bottom layer is published"
    );
    assert!(leftovers(t.path()).is_empty());
    let e = s
        .prepare(&d[..2], |_| anyhow::bail!("registry gone"))
        .unwrap_err();
    assert!(format!("{e:#}").contains("registry gone"));
}

#[test]
fn stale_temps_from_a_crash_are_cleaned() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let hex = d[0].diff_id.trim_start_matches("sha256:");
    let stale = t.path().join(format!(".tmp-{hex}-99999"));
    std::fs::create_dir_all(stale.join("half")).unwrap();
    s.prepare(&d[..1], |i| {
        Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
    })
    .unwrap();
    assert!(!stale.exists());
    assert!(s.path(&d[0].diff_id).unwrap().join("etc/passwd").exists());
}

/// A self-contained snapshot's mark left by a crash (its snapshot was
/// being removed) must not hide the lowers of the snapshot unpacked
/// again under that chain on a store that holds whiteouts; and a prune
/// takes the mark with its snapshot.
#[test]
fn a_stale_self_contained_mark_is_put_right() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let ids: Vec<&str> = d.iter().map(|l| l.diff_id.as_str()).collect();
    let chains = chain_ids(&ids);
    let mark = t
        .path()
        .join(".base")
        .join(chains[2].trim_start_matches("sha256:"));
    std::fs::create_dir_all(mark.parent().unwrap()).unwrap();
    std::fs::write(&mark, "").unwrap();
    let lowers = s
        .prepare(&d, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    assert!(!mark.exists());
    assert_eq!(berth_snapshot::lowers::visible_lowers(&lowers), &lowers[..]);

    let ovl = common::OverlayFs::new();
    let s = Snapshots::new(ovl.merged.join("snaps")).unwrap();
    s.prepare(&d, |i| {
        Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
    })
    .unwrap();
    let marks = || {
        std::fs::read_dir(ovl.merged.join("snaps/.base"))
            .unwrap()
            .count()
    };
    assert_eq!(marks(), 2, "layers 1 and 2 have whiteouts");
    s.remove_except(&HashSet::new()).unwrap();
    assert_eq!(marks(), 0);
}

#[test]
fn concurrent_prepares_unpack_once() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let opened = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                let s = Snapshots::new(t.path()).unwrap();
                s.prepare(&d, |i| {
                    opened.fetch_add(1, Ordering::SeqCst);
                    Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
                })
                .unwrap();
            });
        }
    });
    assert_eq!(opened.load(Ordering::SeqCst), 3);
}

#[test]
fn remove_except_keeps_the_keep_set() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    s.prepare(&d, |i| {
        Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
    })
    .unwrap();
    let ids: Vec<&str> = d.iter().map(|l| l.diff_id.as_str()).collect();
    let chains = chain_ids(&ids);
    let stale = t.path().join(format!(".tmp-{}-4242", "c".repeat(64)));
    std::fs::create_dir_all(stale.join("x")).unwrap();
    let keep: HashSet<String> = chains[..1].iter().cloned().collect();
    let mut removed = s.remove_except(&keep).unwrap();
    removed.sort();
    let mut want = chains[1..].to_vec();
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(s.list().unwrap(), chains[..1].to_vec());
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn sink_gives_up_only_when_it_needs_missing_lowers_and_prepare_finishes() {
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let stop = || true;
    // Arrival order 2, 0, 1: layer 2 has no entry for `home`, so it needs
    // its lowers, which are missing, and the caller says not to wait.
    let r2 = s.unpack_layer(&d, 2, &mut &layers[2][..], &stop).unwrap();
    assert!(r2.is_none());
    assert!(s.list().unwrap().is_empty() && leftovers(t.path()).is_empty());
    let r0 = s
        .unpack_layer(&d, 0, &mut &layers[0][..], &stop)
        .unwrap()
        .unwrap();
    let r1 = s
        .unpack_layer(&d, 1, &mut &layers[1][..], &stop)
        .unwrap()
        .unwrap();
    let opened = AtomicUsize::new(0);
    let dirs = s
        .prepare(&d, |i| {
            opened.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "only layer 2 is left for prepare"
    );
    assert_eq!((&dirs[0], &dirs[1]), (&r0, &r1));
    // A tampered stream through the sink publishes nothing.
    let t2 = tempfile::tempdir().unwrap();
    let s2 = Snapshots::new(t2.path()).unwrap();
    let mut bad = layers[0].clone();
    let n = bad.len();
    bad.truncate(n - 1024);
    assert!(s2.unpack_layer(&d, 0, &mut &bad[..], &stop).is_err());
    assert!(s2.list().unwrap().is_empty() && leftovers(t2.path()).is_empty());
}

#[test]
fn a_layer_carrying_its_parents_unpacks_before_its_lowers() {
    let t = tempfile::tempdir().unwrap();
    let mut layers = test_image();
    layers[1] = common::Layer::default()
        .dir("own", common::DIR)
        .file("own/file", common::ROOT, "needs nothing below")
        .build();
    let d = descs(&layers);
    let s = Snapshots::new(t.path()).unwrap();
    let never_wait = || true;
    let r1 = s
        .unpack_layer(&d, 1, &mut &layers[1][..], &never_wait)
        .unwrap()
        .expect("layer 1 needs nothing from layer 0");
    assert!(!s.path(&d[0].diff_id).unwrap().exists());
    assert_eq!(
        std::fs::read_to_string(r1.join("own/file")).unwrap(),
        "needs nothing below"
    );
}

#[test]
fn a_layer_that_needs_its_lowers_waits_for_them() {
    // Unpacked early on another thread, layer 2 (no `home` entry of its own)
    // blocks until layers 0 and 1 are published, then comes out exactly as
    // a bottom-up unpack makes it.
    let layers = test_image();
    let d = descs(&layers);
    let t = tempfile::tempdir().unwrap();
    let s = Snapshots::new(t.path()).unwrap();
    let r2 = std::thread::scope(|sc| {
        let h = sc.spawn(|| s.unpack_layer(&d, 2, &mut &layers[2][..], &|| false));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!h.is_finished(), "layer 2 did not wait for its lowers");
        for (i, layer) in layers.iter().enumerate().take(2) {
            s.unpack_layer(&d, i, &mut &layer[..], &|| true)
                .unwrap()
                .unwrap();
        }
        h.join().unwrap()
    });
    let r2 = r2.unwrap().expect("layer 2 waited and was unpacked");
    let t2 = tempfile::tempdir().unwrap();
    let s2 = Snapshots::new(t2.path()).unwrap();
    let seq = s2
        .prepare(&d, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    assert_eq!(common::tree(&r2), common::tree(&seq[2]));
}
