//! Pull every fixture image through every registry flavour, and the fixture's
//! failure images; each failure must end in a clear error and an intact store.

mod common;

use std::collections::HashMap;
use std::io;

use berth_image::auth::{self, Credentials};
use berth_image::digest::Hasher;
use berth_image::{Platform, RemoveEvent, Store, pull};
use common::*;

/// Every layer decompresses to its diff_id, the config is the id, blobs are sound.
fn check_image(store: &Store, img: &berth_image::ImageRecord) {
    assert!(store.has_blob(&img.id));
    assert!(store.has_blob(&img.manifest_digest));
    assert!(!img.layers.is_empty());
    for l in store.layers(img) {
        assert!(l.path.is_file(), "{}", l.path.display());
        let mut h = Hasher::new();
        io::copy(&mut store.open_layer(&l).unwrap(), &mut h).unwrap();
        assert_eq!(h.len(), l.unpacked_size);
        assert_eq!(
            h.finish(),
            l.diff_id,
            "layer {} does not unpack to its diff_id",
            l.digest
        );
    }
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
    let cfg = store.config(img).unwrap();
    assert_eq!(cfg.rootfs().diff_ids().len(), img.layers.len());
}

fn flavour_opts(dir: &std::path::Path, flavour: &str) -> berth_image::PullOptions {
    let mut o = opts(dir);
    let fx = fixture();
    match flavour {
        "basic" => auth::store(
            &dir.join("auth.json"),
            BASIC,
            &Credentials {
                username: "berth".into(),
                password: "berthpass".into(),
            },
        )
        .unwrap(),
        "tls" => {
            o.registry.ca_files = HashMap::from([(TLS.to_string(), fx.join("tls/ca.pem"))]);
        }
        _ => {}
    }
    o
}

#[test]
fn every_image_through_every_flavour() {
    fixture();
    for (flavour, host) in [
        ("plain", PLAIN),
        ("basic", BASIC),
        ("token", TOKEN),
        ("tls", TLS),
    ] {
        let (d, store) = new_store();
        let o = flavour_opts(d.path(), flavour);
        for image in [
            "busybox",
            "busybox-oci",
            "layers",
            "multiarch",
            "zstd",
            "uncompressed",
        ] {
            let r = format!("{host}/{image}:latest");
            let p = pull(&store, &r, &o, &quiet()).unwrap_or_else(|e| panic!("{flavour}: {e:#}"));
            assert!(
                p.downloaded
                    || image == "busybox-oci"
                    || image == "zstd"
                    || image == "uncompressed"
            );
            assert_eq!(p.image.repo_tags, vec![format!("{host}/{image}:latest")]);
            assert_eq!(
                p.image.repo_digests,
                vec![format!("{host}/{image}@{}", p.digest)]
            );
            assert_eq!(
                (p.image.os.as_str(), p.image.architecture.as_str()),
                ("linux", "amd64")
            );
            check_image(&store, &p.image);
            let layers = store.layers(&p.image);
            let top = layers.last().unwrap();
            match image {
                "multiarch" => {
                    let (_, c) = tar_paths(&store, top, "platform");
                    assert_eq!(c.as_deref(), Some(&b"linux/amd64\n"[..]), "{flavour}");
                }
                "layers" => assert!(layers.len() > 1),
                _ => {
                    let (paths, c) = tar_paths(&store, top, "etc/berth-fixture");
                    assert_eq!(c.as_deref(), Some(&b"busybox\n"[..]), "{flavour} {image}");
                    assert!(paths.iter().any(|p| p == "bin/busybox"));
                }
            }
            assert_eq!(store.resolve(&r).unwrap().id, p.image.id);
        }
        // The same content under different media types shares nothing but the config id.
        assert_eq!(store.images().unwrap().len(), 6, "{flavour}");
    }
}

#[test]
fn multiarch_picks_the_requested_platform() {
    fixture();
    let (d, store) = new_store();
    for (plat, want) in [
        ("linux/arm64", "linux/arm64\n"),
        ("linux/arm/v7", "linux/arm/v7\n"),
        ("linux/arm", "linux/arm/v7\n"),
    ] {
        let mut o = opts(d.path());
        o.platform = Some(Platform::parse(plat).unwrap());
        let p = pull(&store, &format!("{PLAIN}/multiarch"), &o, &quiet()).unwrap();
        let (_, c) = tar_paths(&store, store.layers(&p.image).last().unwrap(), "platform");
        assert_eq!(String::from_utf8(c.unwrap()).unwrap(), want);
        check_image(&store, &p.image);
    }
    let mut o = opts(d.path());
    o.platform = Some(Platform::parse("linux/s390x").unwrap());
    let before = store.images().unwrap();
    let e = err_text(pull(&store, &format!("{PLAIN}/multiarch"), &o, &quiet()));
    assert!(e.contains("no matching manifest for linux/s390x"), "{e}");
    assert_intact(&store, &before);
    // A single-platform image refuses a different explicit platform.
    o.platform = Some(Platform::parse("linux/arm64").unwrap());
    let e = err_text(pull(&store, &format!("{PLAIN}/busybox"), &o, &quiet()));
    assert!(e.contains("does not match the specified platform"), "{e}");
}

#[test]
fn pull_by_digest() {
    fixture();
    let (d, store) = new_store();
    let p = pull(
        &store,
        &format!("{PLAIN}/busybox-oci"),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    let by_digest = format!("{PLAIN}/busybox-oci@{}", p.digest);
    let p2 = pull(&store, &by_digest, &opts(d.path()), &quiet()).unwrap();
    assert_eq!(p2.image.id, p.image.id);
    assert!(!p2.downloaded);
    assert_eq!(store.resolve(&by_digest).unwrap().id, p.image.id);
    // A well-formed digest the registry does not have.
    let bogus = format!("{PLAIN}/busybox-oci@sha256:{}", "0".repeat(64));
    let e = err_text(pull(&store, &bogus, &opts(d.path()), &quiet()));
    assert!(e.contains("(404)"), "{e}");
}

#[test]
fn private_repository_needs_alice() {
    fixture();
    let (d, store) = new_store();
    let r = format!("{TOKEN}/private/busybox:latest");
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert!(e.starts_with(&format!("pull {r}: ")), "{e}");
    assert!(e.contains("(401)") || e.contains("(403)"), "{e}");
    assert!(e.contains(&format!("pull access denied for {TOKEN}/private/busybox, repository does not exist or may require 'berth login'")), "{e}");
    assert_intact(&store, &[]);
    let creds = Credentials {
        username: "alice".into(),
        password: "alicepass".into(),
    };
    auth::store(&d.path().join("auth.json"), TOKEN, &creds).unwrap();
    let p = pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
    check_image(&store, &p.image);
}

#[test]
fn wrong_credentials_basic() {
    fixture();
    let (d, store) = new_store();
    let r = format!("{BASIC}/busybox:latest");
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert!(
        e.contains("unauthorized") && e.contains("401"),
        "no credentials: {e}"
    );
    let bad = Credentials {
        username: "berth".into(),
        password: "wrong".into(),
    };
    auth::store(&d.path().join("auth.json"), BASIC, &bad).unwrap();
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert_eq!(
        e,
        format!("pull {r}: unauthorized: authentication required (401)")
    );
    assert_intact(&store, &[]);
}

#[test]
fn wrong_credentials_token() {
    fixture();
    let (d, store) = new_store();
    let bad = Credentials {
        username: "alice".into(),
        password: "wrong".into(),
    };
    auth::store(&d.path().join("auth.json"), TOKEN, &bad).unwrap();
    let e = err_text(pull(
        &store,
        &format!("{TOKEN}/private/busybox"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("unauthorized") && e.contains("401"), "{e}");
    assert_intact(&store, &[]);
}

#[test]
fn tls_needs_the_right_ca() {
    let fx = fixture();
    let (d, store) = new_store();
    let r = format!("{TLS}/busybox");
    // certs.d layout, as Docker reads it.
    let certs = d.path().join("certs.d").join(TLS);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(fx.join("tls/ca.pem"), certs.join("ca.crt")).unwrap();
    let mut o = opts(d.path());
    o.registry.certs_d = Some(d.path().join("certs.d"));
    check_image(&store, &pull(&store, &r, &o, &quiet()).unwrap().image);
    // A CA that did not sign the registry's certificate is refused: use the
    // server certificate's issuer... of something else, e.g. a fresh self-signed one.
    let other = d.path().join("other-ca.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=not-the-fixture-ca", "-keyout"])
        .arg(d.path().join("k.pem"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let (_d2, store2) = new_store();
    let mut o = opts(d.path());
    o.registry.ca_files = HashMap::from([(TLS.to_string(), other)]);
    let e = err_text(pull(&store2, &r, &o, &quiet()));
    assert!(
        e.contains("cannot reach registry") || e.contains("certificate") || e.contains("400"),
        "{e}"
    );
    assert_intact(&store2, &[]);
}

#[test]
fn missing_tag_is_manifest_unknown() {
    fixture();
    let (d, store) = new_store();
    let r = format!("{PLAIN}/busybox:nope");
    let e = err_text(pull(&store, &r, &opts(d.path()), &quiet()));
    assert_eq!(e, format!("pull {r}: manifest unknown (404)"));
    let e = err_text(pull(
        &store,
        &format!("{PLAIN}/no-such-repo"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("(404)"), "{e}");
    let e = err_text(pull(
        &store,
        "127.0.0.1:5500/Busybox",
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("must be lowercase"), "{e}");
    assert_intact(&store, &[]);
}

/// Pull a good image first so "intact" also means "the earlier image survived".
fn store_with_busybox() -> (tempfile::TempDir, Store, Vec<berth_image::ImageRecord>) {
    let (d, store) = new_store();
    pull(
        &store,
        &format!("{PLAIN}/busybox"),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    let before = store.images().unwrap();
    (d, store, before)
}

#[test]
fn tampered_blob_is_refused() {
    fixture();
    let (d, store, before) = store_with_busybox();
    let blobs = store.blob_names().unwrap();
    let e = err_text(pull(
        &store,
        &format!("{PLAIN}/tampered"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("digest mismatch"), "{e}");
    assert_intact(&store, &before);
    // The config was verified and may stay; no layer blob was added.
    let added: Vec<String> = store
        .blob_names()
        .unwrap()
        .into_iter()
        .filter(|b| !blobs.contains(b))
        .collect();
    assert!(added.len() <= 1, "{added:?}");
}

#[test]
fn truncated_blob_is_refused() {
    fixture();
    let (d, store, before) = store_with_busybox();
    let e = err_text(pull(
        &store,
        &format!("{PLAIN}/truncated"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("bytes"), "{e}");
    assert_intact(&store, &before);
}

#[test]
fn wrong_diff_id_is_refused() {
    fixture();
    let (d, store) = new_store();
    let e = err_text(pull(
        &store,
        &format!("{PLAIN}/bad-diffid"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("diff_id mismatch"), "{e}");
    assert_eq!(store.images().unwrap(), vec![]);
    assert_eq!(store.verify_blobs().unwrap(), Vec::<String>::new());
}

#[test]
fn unknown_layer_media_type_is_refused() {
    fixture();
    let (d, store, before) = store_with_busybox();
    let e = err_text(pull(
        &store,
        &format!("{PLAIN}/unknown-media"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("unsupported layer media type"), "{e}");
    assert_intact(&store, &before);
}

#[test]
fn manifest_of_exactly_4_mib_pulls() {
    fixture();
    let (d, store) = new_store();
    let p = pull(&store, &format!("{PLAIN}/huge"), &opts(d.path()), &quiet()).unwrap();
    assert_eq!(store.read_blob(&p.digest).unwrap().len(), 4 * 1024 * 1024);
    check_image(&store, &p.image);
}

#[test]
fn manifest_over_4_mib_is_refused() {
    fixture();
    let (d, store, before) = store_with_busybox();
    // distribution 2.8 itself refuses to serve it (500); through the proxy below we
    // check that berth stops reading at 4 MiB on its own.
    let e = err_text(pull(
        &store,
        &format!("{PLAIN}/huge-over"),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(
        e.starts_with(&format!("pull {PLAIN}/huge-over:latest: ")),
        "{e}"
    );
    assert_intact(&store, &before);
    let proxy = Proxy::start();
    proxy.fault("/manifests/", Fault::EndlessChunked, 100);
    let e = err_text(pull(
        &store,
        &format!("{}/busybox", proxy.addr),
        &opts(d.path()),
        &quiet(),
    ));
    assert!(e.contains("manifest is larger than 4 MiB"), "{e}");
    assert_intact(&store, &before);
}

#[test]
fn second_pull_fetches_no_blob() {
    fixture();
    let proxy = Proxy::start();
    let (d, store) = new_store();
    let r = format!("{}/layers", proxy.addr);
    let p = pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
    let blobs = proxy.seen("/blobs/");
    assert_eq!(
        blobs,
        p.image.layers.len() + 1,
        "each layer and the config once"
    );
    let again = pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
    assert!(!again.downloaded);
    assert_eq!(
        proxy.seen("/blobs/"),
        blobs,
        "a second pull must not fetch blobs"
    );
    assert_eq!(proxy.seen("/manifests/"), 2);
}

#[test]
fn docker_hub_goes_through_mirrors() {
    fixture();
    let proxy = Proxy::start();
    let (d, store) = new_store();
    let mut o = opts(d.path());
    // A dead mirror first: it is skipped, the next one serves.
    o.registry.mirrors = vec![
        "http://127.0.0.1:9".into(),
        format!("http://{}", proxy.addr),
    ];
    let p = pull(&store, "busybox", &o, &quiet()).unwrap();
    assert_eq!(p.image.repo_tags, vec!["busybox:latest".to_string()]);
    assert!(proxy.seen("/v2/busybox/manifests/latest") >= 1);
    check_image(&store, &p.image);
    assert_eq!(store.resolve("busybox").unwrap().id, p.image.id);
    assert_eq!(
        store
            .resolve("docker.io/library/busybox:latest")
            .unwrap()
            .id,
        p.image.id
    );
    // Mirrors are for Docker Hub only.
    let seen = proxy.requests.lock().unwrap().len();
    pull(&store, &format!("{PLAIN}/busybox"), &o, &quiet()).unwrap();
    assert_eq!(proxy.requests.lock().unwrap().len(), seen);
}

#[test]
fn local_images_resolve_inspect_remove_prune() {
    fixture();
    let (d, store) = new_store();
    let a = pull(
        &store,
        &format!("{PLAIN}/busybox"),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap()
    .image;
    let b = pull(&store, &format!("{PLAIN}/zstd"), &opts(d.path()), &quiet())
        .unwrap()
        .image;
    assert_ne!(a.id, b.id);
    assert_eq!(store.resolve(a.id.as_str()).unwrap().id, a.id);
    assert_eq!(store.resolve(a.id.hex()).unwrap().id, a.id);
    assert_eq!(store.resolve(a.short_id()).unwrap().id, a.id);
    assert!(err_text(store.resolve("nope")).contains("No such image: nope"));
    let rows = store.list().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r.repository == format!("{PLAIN}/busybox")
                && r.tag == "latest"
                && r.size == a.size)
    );

    let j = store.inspect(&a).unwrap();
    assert_eq!(j["Id"], a.id.as_str());
    assert_eq!(j["RepoTags"][0], format!("{PLAIN}/busybox:latest"));
    assert_eq!(j["Config"]["Cmd"][0], "sh");
    assert_eq!(j["Os"], "linux");
    assert_eq!(j["Architecture"], "amd64");
    assert_eq!(j["RootFS"]["Layers"][0], a.layers[0].diff_id.as_str());
    assert_eq!(j["Size"], a.size);

    // In use: refused without force.
    let e = err_text(store.remove(&format!("{PLAIN}/busybox"), false, true));
    assert!(e.contains("being used by a container"), "{e}");
    let ev = store
        .remove(&format!("{PLAIN}/busybox"), false, false)
        .unwrap();
    assert!(ev.contains(&RemoveEvent::Deleted(a.id.clone())), "{ev:?}");
    assert!(store.resolve(&format!("{PLAIN}/busybox")).is_err());
    assert!(
        !store.has_blob(&a.id),
        "blobs of a removed image are pruned"
    );
    for l in &a.layers {
        assert!(!store.has_blob(&l.digest));
    }
    assert!(store.has_blob(&b.id));
    check_image(&store, &b);
    assert_eq!(store.prune_blobs().unwrap().0, 0);
}

#[test]
fn login_and_logout() {
    fixture();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("cfg/config.json");
    let o = opts(d.path()).registry;
    berth_image::login(&o, BASIC, "berth", "berthpass", Some(&f)).unwrap();
    assert_eq!(auth::lookup(&f, BASIC).unwrap().unwrap().username, "berth");
    let e = err_text(berth_image::login(&o, BASIC, "berth", "nope", Some(&f)));
    assert!(e.contains("401"), "{e}");
    berth_image::login(&o, TOKEN, "alice", "alicepass", Some(&f)).unwrap();
    let e = err_text(berth_image::login(&o, TOKEN, "alice", "nope", Some(&f)));
    assert!(e.contains("401"), "{e}");
    // The stored credentials are what pulls use.
    let (_d2, store) = new_store();
    let mut po = opts(d.path());
    po.registry.auth_file = Some(f.clone());
    pull(&store, &format!("{TOKEN}/private/busybox"), &po, &quiet()).unwrap();
    assert!(berth_image::logout(&o, BASIC, Some(&f)).unwrap());
    assert!(auth::lookup(&f, BASIC).unwrap().is_none());
    assert!(!berth_image::logout(&o, BASIC, Some(&f)).unwrap());
}

#[test]
fn progress_lines_and_tagging() {
    fixture();
    let (d, store) = new_store();
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let prog =
        berth_image::Progress::with_writer(berth_image::ProgressMode::Lines, Box::new(buf.clone()));
    let p = pull(&store, &format!("{PLAIN}/busybox"), &opts(d.path()), &prog).unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let short = p.image.layers[0].digest.short().to_string();
    assert!(out.starts_with("latest: Pulling from busybox\n"), "{out}");
    assert!(out.contains(&format!("{short}: Pull complete")), "{out}");
    assert!(out.contains(&format!("Digest: {}\n", p.digest)), "{out}");
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {PLAIN}/busybox:latest\n"
        )),
        "{out}"
    );

    let t = store.tag(&format!("{PLAIN}/busybox"), "mine:v1").unwrap();
    assert_eq!(t.id, p.image.id);
    assert!(t.repo_tags.contains(&"mine:v1".to_string()));
    assert_eq!(
        store.resolve("docker.io/library/mine:v1").unwrap().id,
        p.image.id
    );
    // Removing one of two tags only untags.
    let ev = store.remove("mine:v1", false, false).unwrap();
    assert_eq!(ev, vec![RemoveEvent::Untagged("mine:v1".into())]);
    assert!(store.has_blob(&p.image.id));
    // Quiet mode prints nothing.
    let buf = Buf::default();
    let prog =
        berth_image::Progress::with_writer(berth_image::ProgressMode::Quiet, Box::new(buf.clone()));
    pull(&store, &format!("{PLAIN}/busybox"), &opts(d.path()), &prog).unwrap();
    assert!(buf.0.lock().unwrap().is_empty());
}

#[test]
fn lost_layer_facts_are_rederived_from_the_local_blob() {
    fixture();
    let proxy = Proxy::start();
    let (d, store) = new_store();
    let r = format!("{}/busybox", proxy.addr);
    let p = pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
    let facts = store
        .root()
        .join("layers")
        .join(format!("{}.json", p.image.layers[0].digest.hex()));
    std::fs::remove_file(&facts).unwrap();
    let blobs = proxy.seen("/blobs/");
    let again = pull(&store, &r, &opts(d.path()), &quiet()).unwrap();
    assert_eq!(
        proxy.seen("/blobs/"),
        blobs,
        "the local blob is used, not fetched again"
    );
    assert_eq!(again.image.size, p.image.size);
    assert!(facts.is_file());
}

/// A sink that hashes each decompressed layer stream and records (index, digest).
fn hashing_sink(
    seen: &std::sync::Mutex<Vec<(usize, String)>>,
) -> impl Fn(&berth_image::SinkLayer<'_>, &mut dyn io::Read) -> anyhow::Result<()> + Sync + '_ {
    move |at, r| {
        let i = at.index;
        // The sink is told every layer's diff_id; this one's is at its index.
        anyhow::ensure!(at.diff_ids[i] == at.layer.diff_id, "diff_ids out of order");
        anyhow::ensure!(!at.cancelled.load(std::sync::atomic::Ordering::SeqCst));
        let mut h = Hasher::new();
        io::copy(r, &mut h)?;
        seen.lock().unwrap().push((i, h.finish().to_string()));
        Ok(())
    }
}

#[test]
fn layers_stream_to_a_sink_while_pulling() {
    fixture();
    let (d, store) = new_store();
    let seen = std::sync::Mutex::new(Vec::new());
    let sink = hashing_sink(&seen);
    let r = format!("{PLAIN}/layers");
    let p =
        berth_image::pull_with_unpack(&store, &r, &opts(d.path()), &quiet(), Some(&sink)).unwrap();
    let want: Vec<(usize, String)> = p
        .image
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.diff_id.to_string()))
        .collect();
    let mut got = std::mem::take(&mut *seen.lock().unwrap());
    got.sort();
    assert_eq!(got, want, "each layer streamed once, decompressed, in full");
    // Present layers are streamed from the store.
    berth_image::pull_with_unpack(&store, &r, &opts(d.path()), &quiet(), Some(&sink)).unwrap();
    let mut got = std::mem::take(&mut *seen.lock().unwrap());
    got.sort();
    assert_eq!(got, want);
    // A zstd and an uncompressed layer too.
    for image in ["zstd", "uncompressed"] {
        let p = berth_image::pull_with_unpack(
            &store,
            &format!("{PLAIN}/{image}"),
            &opts(d.path()),
            &quiet(),
            Some(&sink),
        )
        .unwrap();
        let got = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(
            got,
            vec![(0, p.image.layers[0].diff_id.to_string())],
            "{image}"
        );
    }
}

#[test]
fn config_fields_reach_the_caller() {
    fixture();
    let (d, store) = new_store();
    let p = pull(
        &store,
        &format!("{PLAIN}/config"),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    let cfg = store.config(&p.image).unwrap();
    let c = cfg.config().as_ref().expect("config section");
    assert_eq!(c.user().as_deref(), Some("app"));
    assert_eq!(c.working_dir().as_deref(), Some("/home/app/work"));
    assert_eq!(
        c.entrypoint().as_ref().unwrap(),
        &vec!["/bin/sh".to_string(), "-c".to_string()]
    );
    assert!(
        c.env()
            .as_ref()
            .unwrap()
            .contains(&"GREETING=hello from config".to_string())
    );
    assert!(c.env().as_ref().unwrap().contains(&"EMPTY=".to_string()));
    assert_eq!(c.stop_signal().as_deref(), Some("SIGQUIT"));
    let j = store.inspect(&p.image).unwrap();
    assert_eq!(j["Config"]["User"], "app");
    assert!(j["Config"]["ExposedPorts"].get("8080/tcp").is_some());
    // The hostile layers of `escape` are just blobs here: they pull and verify.
    let p = pull(
        &store,
        &format!("{PLAIN}/escape"),
        &opts(d.path()),
        &quiet(),
    )
    .unwrap();
    check_image(&store, &p.image);
}
