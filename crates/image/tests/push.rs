//! Pushing through the library API, with faults injected by the proxy in
//! front of the real plain registry: retried where a retry is safe, a clear
//! bounded error where not, and what lands always pulls back bit for bit.

mod common;

use std::sync::{Arc, Mutex};

use berth_image::{Progress, ProgressMode, PushOptions, Store, pull, push};
use common::*;

/// A repository name no other run has used (the registry keeps its state).
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("push-tests/{what}-{}-{nanos}", std::process::id())
}

fn push_opts(dir: &std::path::Path) -> PushOptions {
    PushOptions {
        registry: opts(dir).registry,
        ..PushOptions::default()
    }
}

/// A store holding the fixture's busybox, tagged `target`; its manifest digest.
fn busybox_as(target: &str) -> (tempfile::TempDir, Store, String) {
    fixture();
    let (d, s) = new_store();
    let p = pull(&s, &format!("{PLAIN}/busybox"), &opts(d.path()), &quiet()).unwrap();
    s.tag(&format!("{PLAIN}/busybox"), target).unwrap();
    (d, s, p.image.manifest_digest.to_string())
}

/// Progress lines captured.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn faults_on_head_upload_and_manifest_are_retried() {
    let proxy = Proxy::start();
    let repo = unique("faults");
    let target = format!("{}/{repo}:v1", proxy.addr);
    let (d, s, digest) = busybox_as(&target);
    proxy.fault("/blobs/sha256:", Fault::Reset, 1);
    proxy.fault("&digest=", Fault::Status(500), 1);
    proxy.fault("/manifests/v1", Fault::Status(503), 1);
    let lines = Lines::default();
    let progress = Progress::with_writer(ProgressMode::Lines, Box::new(lines.clone()));
    let pushed = push(&s, &target, &push_opts(d.path()), &progress).unwrap();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].digest.to_string(), digest);
    // Layer and config uploaded, one of them twice (the 500).
    assert_eq!(proxy.seen("&digest="), 3);
    assert_eq!(proxy.seen("PUT /v2/"), 3 + 2);
    let out = lines.text();
    assert!(out.contains(": Pushed\n"), "{out}");
    assert!(
        out.ends_with(&format!("v1: digest: {digest} size: 527\n")),
        "{out}"
    );
    // The upload sessions went through the proxy: their Location was followed.
    assert!(proxy.seen("/blobs/uploads/") >= 4);

    let (d2, s2) = new_store();
    let back = pull(
        &s2,
        &format!("{PLAIN}/{repo}:v1"),
        &opts(d2.path()),
        &quiet(),
    )
    .unwrap();
    assert_eq!(back.image.manifest_digest.to_string(), digest);
    assert_eq!(back.image.id, s.resolve(&target).unwrap().id);
}

#[test]
fn a_registry_failing_every_upload_is_a_bounded_clear_error() {
    let proxy = Proxy::start();
    let repo = unique("failing");
    let target = format!("{}/{repo}:latest", proxy.addr);
    let (d, s, _) = busybox_as(&target);
    proxy.fault("&digest=", Fault::Status(500), 100);
    let e = err_text(push(&s, &target, &push_opts(d.path()), &quiet()));
    assert!(e.starts_with(&format!("push {target}: blob ")), "{e}");
    assert!(e.contains("server error (500)"), "{e}");
    // At most `attempts` (3) per blob, layer and config.
    assert!(proxy.seen("&digest=") <= 6, "{}", proxy.seen("&digest="));
    assert_eq!(
        proxy.seen("/manifests/"),
        0,
        "no manifest without its blobs"
    );
}

#[test]
fn a_denied_upload_is_not_retried() {
    let proxy = Proxy::start();
    let repo = unique("denied");
    let target = format!("{}/{repo}:latest", proxy.addr);
    let (d, s, _) = busybox_as(&target);
    proxy.fault("/blobs/uploads/", Fault::Status(403), 100);
    let e = err_text(push(&s, &target, &push_opts(d.path()), &quiet()));
    assert!(
        e.starts_with(&format!("push {target}: ")) && e.ends_with("(403)"),
        "{e}"
    );
    assert!(!e.contains("blob "), "a denial names the repository: {e}");
    assert!(proxy.seen("POST /v2/") <= 2, "{}", proxy.seen("POST /v2/"));
}

#[test]
fn a_body_limit_in_front_of_the_registry_means_chunks() {
    let proxy = Proxy::start();
    let repo = unique("chunks");
    let target = format!("{}/{repo}:latest", proxy.addr);
    let (d, s, digest) = busybox_as(&target);
    // The layer's one-PUT upload, then its first two PATCHes (8 and 4 MiB)
    // are too large for the "proxy"; 2 MiB chunks go through.
    proxy.fault("&digest=", Fault::Status(413), 1);
    proxy.fault("?_state=", Fault::Status(413), 2);
    let one = PushOptions {
        parallel_layers: 1,
        ..push_opts(d.path())
    };
    let pushed = push(&s, &target, &one, &quiet()).unwrap();
    assert_eq!(pushed[0].digest.to_string(), digest);
    assert_eq!(proxy.seen("PATCH /v2/"), 3);
    let (d2, s2) = new_store();
    let back = pull(&s2, &format!("{PLAIN}/{repo}"), &opts(d2.path()), &quiet()).unwrap();
    assert_eq!(back.image.manifest_digest.to_string(), digest);
}

/// A blob larger than a chunk goes in several PATCHes, each to the
/// Location the previous one answered with, and arrives whole.
#[test]
fn chunks_follow_each_location() {
    fixture();
    let (d, s) = new_store();
    let src = format!("{PLAIN}/large:latest");
    let p = pull(&s, &src, &opts(d.path()), &quiet()).unwrap();
    let proxy = Proxy::start();
    let repo = unique("chunks-large");
    let target = format!("{}/{repo}:latest", proxy.addr);
    s.tag(&src, &target).unwrap();
    // One at a time, top layer first: that layer's one-PUT upload is refused.
    proxy.fault("&digest=", Fault::Status(413), 1);
    let one = PushOptions {
        parallel_layers: 1,
        ..push_opts(d.path())
    };
    let pushed = push(&s, &target, &one, &quiet()).unwrap();
    let top = p.image.layers.last().unwrap().size;
    assert!(top > 8 << 20, "{top}");
    assert_eq!(proxy.seen("PATCH /v2/") as u64, top.div_ceil(8 << 20));
    let (d2, s2) = new_store();
    let back = pull(&s2, &format!("{PLAIN}/{repo}"), &opts(d2.path()), &quiet()).unwrap();
    assert_eq!(back.image.manifest_digest, pushed[0].digest);
    assert_eq!(back.image.manifest_digest, p.image.manifest_digest);
}
