//! Network faults injected by a TCP proxy in front of the real plain registry.
//! Each ends in a clear error (or a successful retry) and an intact store.

mod common;

use berth_image::pull;
use common::*;

fn layer_digest(image: &str) -> String {
    // Ask the real registry (via a clean pull into a scratch store) for the layer digest.
    let (d, s) = new_store();
    let p = pull(&s, &format!("{PLAIN}/{image}"), &opts(d.path()), &quiet()).unwrap();
    p.image.layers.last().unwrap().digest.to_string()
}

/// Pull busybox through the fault proxy into `store`.
fn pull_busybox(
    proxy: &Proxy,
    d: &tempfile::TempDir,
    store: &berth_image::Store,
) -> anyhow::Result<berth_image::Pulled> {
    pull(
        store,
        &format!("{}/busybox", proxy.addr),
        &opts(d.path()),
        &quiet(),
    )
}

fn setup() -> (
    Proxy,
    tempfile::TempDir,
    berth_image::Store,
    Vec<berth_image::ImageRecord>,
) {
    fixture();
    let proxy = Proxy::start();
    let (d, store) = new_store();
    // Something already in the store, which every failure must leave alone.
    pull(
        &store,
        &format!("{}/zstd", proxy.addr),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    let before = store.images().unwrap();
    (proxy, d, store, before)
}

#[test]
fn flipped_byte_in_blob_is_a_digest_mismatch() {
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::FlipByte, 100);
    let r = format!("{}/busybox", proxy.addr);
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert!(
        e.starts_with(&format!("pull {}/busybox:latest: ", proxy.addr)),
        "{e}"
    );
    assert!(e.contains("digest mismatch"), "{e}");
    assert!(!store.has_blob(&layer.parse().unwrap()));
    assert_eq!(proxy.seen(&layer), 1, "a digest mismatch is not retried");
    assert_intact(&store, &before);
}

#[test]
fn truncated_body_is_retried_then_refused() {
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Truncate, 100);
    let e = err_text(pull_busybox(&proxy, &d, &store));
    assert!(e.contains("giving up after 3 attempts"), "{e}");
    assert_eq!(proxy.seen(&layer), 3);
    assert_intact(&store, &before);
}

#[test]
fn truncated_body_once_then_success() {
    let (proxy, d, store, _) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Truncate, 1);
    let p = pull_busybox(&proxy, &d, &store).unwrap();
    assert_eq!(proxy.seen(&layer), 2);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    assert!(store.has_blob(&layer.parse().unwrap()));
    assert_eq!(
        store
            .resolve(&format!("{}/busybox", proxy.addr))
            .unwrap()
            .id,
        p.image.id
    );
}

#[test]
fn wrong_content_length_is_refused() {
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::ShortLength, 100);
    let e = err_text(pull_busybox(&proxy, &d, &store));
    assert!(e.contains("announced") && e.contains("bytes"), "{e}");
    assert_intact(&store, &before);
}

#[test]
fn server_error_then_success() {
    let (proxy, d, store, _) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Status(500), 1);
    proxy.fault("/manifests/latest", Fault::Status(503), 1);
    pull_busybox(&proxy, &d, &store).unwrap();
    assert_eq!(proxy.seen(&layer), 2);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
}

#[test]
fn persistent_server_error_is_bounded() {
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Status(500), 100);
    let e = err_text(pull_busybox(&proxy, &d, &store));
    assert!(e.contains("server error (500)"), "{e}");
    // 3 tries per request, and the blob-level retry does not multiply them: 500s are retried once.
    assert!(proxy.seen(&layer) <= 9, "{}", proxy.seen(&layer));
    assert_intact(&store, &before);
}

#[test]
fn connection_reset_then_success() {
    let (proxy, d, store, _) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Reset, 2);
    pull_busybox(&proxy, &d, &store).unwrap();
    assert_eq!(proxy.seen(&layer), 3);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
}

#[test]
fn persistent_connection_reset_is_a_clear_error() {
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Reset, 100);
    let e = err_text(pull_busybox(&proxy, &d, &store));
    assert!(
        e.contains("reset") || e.contains("disconnected") || e.contains("closed"),
        "{e}"
    );
    assert_intact(&store, &before);
}

#[test]
fn too_many_requests() {
    let (proxy, d, store, before) = setup();
    proxy.fault("/manifests/", Fault::Status(429), 100);
    let r = format!("{}/busybox", proxy.addr);
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert_eq!(
        e,
        format!(
            "pull {}/busybox:latest: toomanyrequests: injected 429 (429)",
            proxy.addr
        )
    );
    assert_intact(&store, &before);
}

#[test]
fn digest_reference_with_altered_manifest() {
    let (proxy, d, store, before) = setup();
    let (d2, s2) = new_store();
    let good = pull(&s2, &format!("{PLAIN}/busybox"), &opts(d2.path()), &quiet()).unwrap();
    proxy.fault("/manifests/", Fault::AlterWhitespace, 100);
    let r = format!("{}/busybox@{}", proxy.addr, good.digest);
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert!(e.contains("manifest digest mismatch"), "{e}");
    assert_intact(&store, &before);
}

#[test]
fn altered_child_manifest_of_an_index() {
    let (proxy, d, store, before) = setup();
    // The index is served intact; the platform manifest it points to is altered.
    proxy.fault("/manifests/sha256:", Fault::AlterWhitespace, 100);
    let e = err_text(pull(
        &store,
        &format!("{}/multiarch", proxy.addr),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("content hashes to"), "{e}");
    assert_intact(&store, &before);
}

#[test]
fn one_token_for_the_whole_pull() {
    fixture();
    let proxy = Proxy::start_to(TOKEN);
    let (d, store) = new_store();
    let p = pull(
        &store,
        &format!("{}/layers", proxy.addr),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    assert!(p.image.layers.len() > 1);
    assert_eq!(
        proxy.seen("GET /token"),
        1,
        "{:?}",
        proxy.requests.lock().unwrap()
    );
    // Every registry request after the first /v2/ probe carried the token.
    let reqs = proxy.requests.lock().unwrap().clone();
    let unauthed: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("/v2/layers/") && !r.ends_with("+auth"))
        .collect();
    assert!(unauthed.is_empty(), "{unauthed:?}");
}

#[test]
fn expired_token_is_fetched_again_once() {
    fixture();
    let proxy = Proxy::start_to(TOKEN);
    let (d, store) = new_store();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::Unauthorized, 1);
    pull_busybox(&proxy, &d, &store).unwrap();
    assert_eq!(proxy.seen("GET /token"), 2);
    assert_eq!(proxy.seen(&layer), 2);
    // A registry that keeps refusing is not asked forever.
    let (d, store) = new_store();
    proxy.fault(&layer, Fault::Unauthorized, 100);
    let e = err_text(pull_busybox(&proxy, &d, &store));
    assert!(e.contains("token expired (401)"), "{e}");
}

#[test]
fn redirect_to_blob_storage_drops_authorization() {
    fixture();
    let registry = Proxy::start_to(BASIC);
    let storage = Proxy::start_to(PLAIN);
    let (d, store) = new_store();
    berth_image::auth::store(
        &d.path().join("auth.json"),
        &registry.addr,
        &berth_image::Credentials {
            username: "berth".into(),
            password: "berthpass".into(),
        },
    )
    .unwrap();
    registry.fault("/blobs/", Fault::RedirectTo(storage.addr.clone()), 100);
    let p = pull(
        &store,
        &format!("{}/busybox", registry.addr),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    assert_eq!(
        storage.seen("/blobs/"),
        p.image.layers.len() + 1,
        "blobs came from storage"
    );
    assert_eq!(
        storage.seen("+auth"),
        0,
        "the registry's Authorization leaked to another host"
    );
    let reqs = registry.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|r| r.contains("/manifests/latest") && r.ends_with("+auth")),
        "{reqs:?}"
    );
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
}

#[test]
fn a_sink_sees_a_failed_verification_as_an_error() {
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    proxy.fault(&layer, Fault::FlipByte, 100);
    let outcomes = std::sync::Mutex::new(Vec::new());
    let sink =
        |_at: &berth_image::SinkLayer<'_>, r: &mut dyn std::io::Read| -> anyhow::Result<()> {
            let res = std::io::copy(r, &mut std::io::sink());
            outcomes.lock().unwrap().push(res.is_ok());
            res?;
            Ok(())
        };
    let e = err_text(berth_image::pull_with_unpack(
        &store,
        &format!("{}/busybox", proxy.addr),
        &opts(d.path()),
        &quiet(),
        Some(&sink),
    ));
    assert!(e.contains("digest mismatch"), "{e}");
    assert_eq!(
        *outcomes.lock().unwrap(),
        vec![false],
        "the sink must not see a clean end"
    );
    assert_intact(&store, &before);
}

#[test]
fn a_failing_sink_fails_the_pull() {
    let (proxy, d, store, before) = setup();
    let sink =
        |_at: &berth_image::SinkLayer<'_>, r: &mut dyn std::io::Read| -> anyhow::Result<()> {
            // Read a little, then give up (e.g. a hostile path in the tar).
            let mut b = [0u8; 512];
            r.read_exact(&mut b)?;
            anyhow::bail!("refusing entry ../etc/passwd")
        };
    let e = err_text(berth_image::pull_with_unpack(
        &store,
        &format!("{}/busybox", proxy.addr),
        &opts(d.path()),
        &quiet(),
        Some(&sink),
    ));
    assert!(e.contains("unpacking: refusing entry ../etc/passwd"), "{e}");
    assert_eq!(
        store.images().unwrap(),
        before,
        "no index entry for an image that failed to unpack"
    );
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    assert_eq!(store.temp_names().unwrap(), Vec::<String>::new());
}

/// Every layer digest of `image`, bottom first, from a clean pull.
fn layer_digests(image: &str) -> Vec<String> {
    let (d, s) = new_store();
    let p = pull(&s, &format!("{PLAIN}/{image}"), &opts(d.path()), &quiet()).unwrap();
    p.image
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect()
}

/// A real failure in one layer is what the pull reports, never the
/// cancellation it causes in a sibling still downloading, with or without a sink.
#[test]
fn the_first_real_failure_is_reported_not_a_siblings_cancellation() {
    let (proxy, d, store, before) = setup();
    let layers = layer_digests("layers");
    // The bottom layer trickles, so it is still downloading when the top one fails.
    let slow = Fault::Trickle {
        chunk: 16 * 1024,
        every: std::time::Duration::from_millis(100),
    };
    proxy.fault(&layers[0], slow, 100);
    proxy.fault(&layers[3], Fault::FlipByte, 100);
    let sink =
        |_at: &berth_image::SinkLayer<'_>, r: &mut dyn std::io::Read| -> anyhow::Result<()> {
            std::io::copy(r, &mut std::io::sink())?;
            Ok(())
        };
    let sinks: [Option<berth_image::LayerSink<'_>>; 2] = [None, Some(&sink)];
    for sink in sinks {
        let e = err_text(berth_image::pull_with_unpack(
            &store,
            &format!("{}/layers", proxy.addr),
            &opts(d.path()),
            &quiet(),
            sink,
        ));
        assert!(
            e.contains(&format!("layer {}: digest mismatch", layers[3])),
            "{e}"
        );
        assert!(!e.contains("cancelled"), "{e}");
        assert_intact(&store, &before);
    }
}

/// Pull `image` through `proxy` on another thread, failing the test instead
/// of hanging when it takes longer than `limit`.
fn pull_within(
    proxy: &Proxy,
    image: &str,
    o: berth_image::PullOptions,
    store: &berth_image::Store,
    limit: std::time::Duration,
) -> anyhow::Result<berth_image::Pulled> {
    let (tx, rx) = std::sync::mpsc::channel();
    let r = format!("{}/{image}", proxy.addr);
    let store = store.clone();
    std::thread::spawn(move || {
        let _ = tx.send(pull(&store, &r, &o, &quiet()));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("pull of {image} still running after {limit:?}"))
}

/// A layer served a byte now and then is given up on once the low-speed
/// window passes, retried like any transient error, and the error names
/// the blob and the registry.
#[test]
fn a_trickling_blob_stalls_out_and_is_retried() {
    use std::time::Duration;
    let (proxy, d, store, before) = setup();
    let layer = layer_digest("busybox");
    let trickle = Fault::Trickle {
        chunk: 1,
        every: Duration::from_millis(500),
    };
    proxy.fault(&layer, trickle, 100);
    let mut o = opts(d.path());
    o.registry.low_speed_time = Duration::from_secs(2);
    o.registry.low_speed_bytes = 1024;
    o.registry.attempts = 2;
    let started = std::time::Instant::now();
    let e = err_text(pull_within(
        &proxy,
        "busybox",
        o,
        &store,
        Duration::from_secs(30),
    ));
    assert!(e.contains("stalled"), "{e}");
    assert!(
        e.contains(&format!("reading blob: {layer} from {}", proxy.addr)),
        "{e}"
    );
    assert!(e.contains("giving up after 2 attempts"), "{e}");
    assert_eq!(proxy.seen(&layer), 2, "a stall is retried");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_intact(&store, &before);
}

/// A slow but steady layer is not a stall: the limit is on speed, not on
/// the length of a transfer.
#[test]
fn a_slow_steady_blob_is_not_a_stall() {
    use std::time::Duration;
    let (proxy, d, store, _) = setup();
    let layer = layer_digest("busybox");
    let slow = Fault::Trickle {
        chunk: 128 * 1024,
        every: Duration::from_millis(300),
    };
    proxy.fault(&layer, slow, 100);
    let mut o = opts(d.path());
    o.registry.low_speed_time = Duration::from_secs(2);
    o.registry.low_speed_bytes = 64 * 1024;
    let p = pull_within(&proxy, "busybox", o, &store, Duration::from_secs(60)).unwrap();
    assert_eq!(p.image.layers[0].digest.to_string(), layer);
    assert_eq!(proxy.seen(&layer), 1);
}

/// A layer that inflates past the ratio limit is refused while it streams,
/// with an error naming it, and nothing of it is stored.
#[test]
fn a_decompression_bomb_is_refused_past_the_inflate_ratio() {
    let (bomb, diff_id) = zero_layer("bomb", 64 << 20);
    let reg = StaticRegistry::start("bomb", &config_for(&[diff_id]), std::slice::from_ref(&bomb));
    let (d, store) = new_store();
    let mut o = opts(d.path());
    o.max_inflate_ratio = 100;
    o.inflate_floor = 1 << 20;
    let e = err_text(pull(&store, &format!("{}/bomb", reg.addr), &o, &quiet()));
    let layer = berth_image::Digest::of(&bomb);
    assert!(e.contains(&format!("layer {layer}: ")), "{e}");
    assert!(e.contains("decompression bomb"), "{e}");
    assert!(
        e.contains(&format!("100 times its {} bytes", bomb.len())),
        "{e}"
    );
    assert_intact(&store, &[]);
}

/// A sink that fails (say, the disk is full) stops the inflation of its
/// layer at once: the pull reports the sink's error, not what inflating on
/// would have met (here the ratio limit, set between the two).
#[test]
fn a_failed_sink_stops_the_inflation() {
    let (bomb, diff_id) = zero_layer("bomb", 64 << 20);
    let reg = StaticRegistry::start("bomb", &config_for(&[diff_id]), &[bomb]);
    let (d, store) = new_store();
    let mut o = opts(d.path());
    o.max_inflate_ratio = 1;
    o.inflate_floor = 16 << 20;
    let sink =
        |_at: &berth_image::SinkLayer<'_>, r: &mut dyn std::io::Read| -> anyhow::Result<()> {
            let mut b = [0u8; 4096];
            r.read_exact(&mut b)?;
            anyhow::bail!("write bomb: No space left on device (os error 28)")
        };
    let e = err_text(berth_image::pull_with_unpack(
        &store,
        &format!("{}/bomb", reg.addr),
        &o,
        &quiet(),
        Some(&sink),
    ));
    assert!(
        e.contains("unpacking: write bomb: No space left on device"),
        "{e}"
    );
    assert!(!e.contains("decompression bomb"), "{e}");
    assert_intact(&store, &[]);
}

/// A token service that trickles its answer stalls out like a blob: small
/// bodies (tokens, error bodies) are read under the low-speed limit too.
#[test]
fn a_trickling_token_service_stalls_out() {
    use std::time::Duration;
    fixture();
    let proxy = Proxy::start_to(TOKEN);
    let trickle = Fault::Trickle {
        chunk: 1,
        every: Duration::from_millis(500),
    };
    proxy.fault("/token", trickle, 100);
    let (d, store) = new_store();
    let mut o = opts(d.path());
    o.registry.low_speed_time = Duration::from_secs(2);
    o.registry.low_speed_bytes = 1024;
    let e = err_text(pull_within(
        &proxy,
        "busybox",
        o,
        &store,
        Duration::from_secs(30),
    ));
    assert!(e.contains("stalled") && e.contains("token service"), "{e}");
    assert_intact(&store, &[]);
}
