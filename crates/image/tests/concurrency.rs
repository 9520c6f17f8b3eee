//! Several processes and threads pulling into one root, and a pull killed with
//! SIGKILL mid-way: no corrupt entry, and the next pull completes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_image::{Store, pull};
use common::*;

const CHILD_ROOT: &str = "BERTH_IMAGE_TEST_CHILD_ROOT";
const CHILD_REF: &str = "BERTH_IMAGE_TEST_CHILD_REF";

/// Not a test on its own: the body of the child processes below (the test
/// binary re-executes itself with this test selected and the env set).
#[test]
fn child_pull() {
    let (Ok(root), Ok(r)) = (std::env::var(CHILD_ROOT), std::env::var(CHILD_REF)) else {
        return;
    };
    let store = Store::open(&root).unwrap();
    let d = tempfile::tempdir().unwrap();
    pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
}

fn spawn_child(root: &std::path::Path, r: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_pull", "--test-threads=1", "--nocapture"])
        .env(CHILD_ROOT, root)
        .env(CHILD_REF, r)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_pulls_from_processes_and_threads() {
    fixture();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let r = format!("{PLAIN}/layers");
    let children: Vec<Child> = (0..3).map(|_| spawn_child(&root, &r)).collect();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let store = Store::open(&root).unwrap();
                let td = tempfile::tempdir().unwrap();
                pull(&store, &r, &opts(td.path()), &quiet()).unwrap();
            });
        }
    });
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child pull failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = Store::open(&root).unwrap();
    let images = store.images().unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].repo_tags, vec![format!("{r}:latest")]);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    assert_eq!(store.temp_names().unwrap(), Vec::<String>::new());
    // Blobs: layers + config + manifest, each once.
    assert_eq!(
        store.blob_names().unwrap().len(),
        images[0].layers.len() + 2
    );
}

#[test]
fn sigkill_mid_pull_leaves_a_sound_store() {
    fixture();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    // Something pulled before the crash must survive it.
    let store = Store::open(&root).unwrap();
    pull(
        &store,
        &format!("{PLAIN}/busybox"),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    let before = store.images().unwrap();

    let r = format!("{PLAIN}/large");
    let mut child = spawn_child(&root, &r);
    let start = Instant::now();
    // Wait until the child is writing a layer (a temp file with data), then kill it.
    loop {
        let busy = std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 1 << 20));
        if busy {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the child never started writing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // No entry for the half-pulled image, every visible blob is sound.
    assert_eq!(store.images().unwrap(), before);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    assert!(
        !store.temp_names().unwrap().is_empty(),
        "the killed writer left its temp file"
    );
    // The dead writer's files are reaped (the default grace is 10 s; skip the wait).
    assert!(store.reap_temp(Duration::ZERO).unwrap() >= 1);
    assert_eq!(store.temp_names().unwrap(), Vec::<String>::new());

    // The next pull completes.
    let p = pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
    assert!(p.image.layers.len() >= 5);
    assert!(p.image.size >= 300_000_000);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    assert_eq!(store.images().unwrap().len(), 2);
}

#[test]
fn prune_and_remove_racing_pulls_never_break_an_image() {
    fixture();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let store = Store::open(&root).unwrap();
    let refs = [format!("{PLAIN}/busybox"), format!("{PLAIN}/layers")];
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Pruner and remover hammer the store while pulls run.
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                store.prune_blobs().unwrap();
            }
        });
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = store.remove(&refs[0], false, false);
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        for _ in 0..6 {
            for r in &refs {
                let td = tempfile::tempdir().unwrap();
                pull(&store, r, &opts(td.path()), &quiet()).unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // Every indexed image has every blob it names, and they are sound.
    for img in store.images().unwrap() {
        assert!(
            store.has_blob(&img.id),
            "config of {:?} pruned",
            img.repo_tags
        );
        assert!(store.has_blob(&img.manifest_digest));
        for l in &img.layers {
            assert!(
                store.has_blob(&l.digest),
                "layer of {:?} pruned",
                img.repo_tags
            );
        }
    }
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    assert!(store.resolve(&refs[1]).is_ok());
}
