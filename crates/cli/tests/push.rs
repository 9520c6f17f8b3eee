//! `berth push` end to end against the real fixture registries: uploads,
//! skips, mounts, the four auth flavours, errors, a killed push, and
//! round trips checked by digest (and by skopeo).
//!
//! The registries keep their state between runs, so every test pushes to
//! repositories of its own (`push-tests/<what>-<pid>-<nanos>`).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;

const BASIC: &str = "127.0.0.1:5501";
const TOKEN: &str = "127.0.0.1:5502";
const TLS: &str = "127.0.0.1:5504";

fn fixture_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("BERTH_FIXTURE_DIR").unwrap_or_else(|_| "/var/tmp/berth-fixture".into()),
    )
}

/// A repository name no other run has used.
fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("push-tests/{what}-{}-{nanos}", std::process::id())
}

/// `berth ARGS…`, which must succeed; its stdout.
fn ok(r: &Root, args: &[&str]) -> String {
    let o = r.berth().args(args).output().unwrap();
    assert_eq!(code(&o), 0, "berth {args:?}: {}", stderr(&o));
    stdout(&o)
}

fn inspect(r: &Root, image: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(r, &["image", "inspect", image])).unwrap();
    v[0].clone()
}

/// The manifest digest `image` was pulled as from `repo` (`host/name`).
fn repo_digest(r: &Root, image: &str, repo: &str) -> String {
    let v = inspect(r, image);
    let ds = v["RepoDigests"].as_array().unwrap();
    ds.iter()
        .filter_map(|d| d.as_str())
        .find_map(|d| d.strip_prefix(&format!("{repo}@")))
        .unwrap_or_else(|| panic!("no digest for {repo} in {ds:?}"))
        .to_string()
}

/// Requests in a flavour's registry access log to repository `repo` with
/// `method`, a path starting with `path_part` (e.g. "/blobs/uploads/") and
/// a success status (2xx): what the registry really took.
fn log_count(flavour: &str, repo: &str, method: &str, path_part: &str) -> usize {
    let log = std::fs::read_to_string(fixture_dir().join(flavour).join("registry.log")).unwrap();
    let want = format!("\"{method} /v2/{repo}{path_part}");
    log.lines()
        .filter(|l| l.contains(&want))
        .filter(|l| {
            l.split("HTTP/1.1\" ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('2'))
        })
        .count()
}

fn login(r: &Root, reg: &str, user: &str, pass: &str) {
    let mut c = r
        .berth()
        .args(["login", "-u", user, "--password-stdin", reg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{pass}\n").as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "login {reg}: {}", stderr(&o));
}

fn skopeo_digest(image: &str) -> String {
    let o = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

/// A push that must fail with one line on stderr naming what and why.
fn denied(r: &Root, target: &str) -> String {
    let o: Output = r.berth().args(["push", "-q", target]).output().unwrap();
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let e = stderr(&o);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        e.starts_with(&format!("berth: push {target}: unauthorized")) && e.contains("(401)"),
        "{e}"
    );
    e
}

#[test]
fn push_uploads_skips_the_second_time_and_round_trips() {
    let r = Root::new();
    // From the tls registry, so the plain one knows nothing to mount from.
    let src = format!("{TLS}/layers:latest");
    ok(&r, &["pull", "-q", &src]);
    let orig = repo_digest(&r, &src, &format!("{TLS}/layers"));
    let id = inspect(&r, &src)["Id"].as_str().unwrap().to_string();
    let repo = unique("rt");
    let target = format!("{PLAIN}/{repo}:v1");
    ok(&r, &["tag", &src, &target]);

    let out = ok(&r, &["push", &target]);
    assert!(
        out.starts_with(&format!("The push refers to repository [{PLAIN}/{repo}]\n")),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed\n").count(), 4, "{out}");
    assert!(!out.contains("Using default tag"), "{out}");
    assert!(!out.contains('\x1b'), "piped: no bars {out:?}");
    assert!(!out.contains("Pushing"), "piped: Docker's lines only {out}");
    assert_eq!(out.matches(": Preparing\n").count(), 4, "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("v1: digest: {orig} size: ")),
        "same manifest bytes, same digest: {last} vs {orig}"
    );
    // Four layers and the config, one PUT each; the manifest once.
    assert_eq!(log_count("plain", &repo, "PUT", "/blobs/uploads/"), 5);
    assert_eq!(log_count("plain", &repo, "PUT", "/manifests/v1"), 1);

    let again = ok(&r, &["push", &target]);
    assert_eq!(
        again.matches(": Layer already exists\n").count(),
        4,
        "{again}"
    );
    assert!(!again.contains("Pushed"), "{again}");
    assert_eq!(log_count("plain", &repo, "POST", "/blobs/uploads/"), 5);
    assert_eq!(log_count("plain", &repo, "PUT", "/blobs/uploads/"), 5);

    assert_eq!(skopeo_digest(&target), orig, "skopeo sees what was pushed");

    // Gone from the store, then pulled back: the same image, bit for bit.
    ok(&r, &["rmi", &target, &src]);
    assert!(!ok(&r, &["images", "-q"]).contains(&id[7..19]));
    ok(&r, &["pull", "-q", &target]);
    assert_eq!(inspect(&r, &target)["Id"], id.as_str());
    assert_eq!(repo_digest(&r, &target, &format!("{PLAIN}/{repo}")), orig);
}

#[test]
fn push_mounts_blobs_from_another_repository_of_the_registry() {
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    let orig = repo_digest(&r, BUSYBOX, &format!("{PLAIN}/busybox"));
    let repo = unique("mount");
    let target = format!("{PLAIN}/{repo}");
    ok(&r, &["tag", BUSYBOX, &target]);
    let out = ok(&r, &["push", &target]);
    assert!(out.starts_with("Using default tag: latest\n"), "{out}");
    assert!(out.contains(": Mounted from busybox\n"), "{out}");
    assert!(
        out.contains(&format!("latest: digest: {orig} size: ")),
        "{out}"
    );
    assert!(
        log_count("plain", &repo, "POST", "/blobs/uploads/?mount=sha256") >= 2,
        "layer and config mounted"
    );
    assert_eq!(log_count("plain", &repo, "PUT", "/blobs/uploads/"), 0);
    // The store now knows the image under its new name too.
    assert_eq!(repo_digest(&r, &target, &format!("{PLAIN}/{repo}")), orig);
}

#[test]
fn push_with_basic_auth_after_login() {
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    let orig = repo_digest(&r, BUSYBOX, &format!("{PLAIN}/busybox"));
    let repo = unique("basic");
    let target = format!("{BASIC}/{repo}:latest");
    ok(&r, &["tag", BUSYBOX, &target]);
    denied(&r, &target);
    login(&r, BASIC, "berth", "berthpass");
    let out = ok(&r, &["push", &target]);
    assert!(out.contains(": Pushed\n"), "{out}");
    assert!(out.contains(&format!("latest: digest: {orig} ")), "{out}");
    ok(&r, &["rmi", &target, BUSYBOX]);
    ok(&r, &["pull", "-q", &target]);
    assert_eq!(repo_digest(&r, &target, &format!("{BASIC}/{repo}")), orig);
}

#[test]
fn push_with_token_auth_needs_push_scope_and_mounts() {
    let r = Root::new();
    // Anonymous pulls are allowed on the token registry: busybox is known there.
    let src = format!("{TOKEN}/busybox:latest");
    ok(&r, &["pull", "-q", &src]);
    let orig = repo_digest(&r, &src, &format!("{TOKEN}/busybox"));
    let repo = unique("token");
    let target = format!("{TOKEN}/{repo}:latest");
    ok(&r, &["tag", &src, &target]);
    denied(&r, &target);
    // alice may pull everything but push nothing.
    login(&r, TOKEN, "alice", "alicepass");
    denied(&r, &target);
    login(&r, TOKEN, "pusher", "pusherpass");
    let out = ok(&r, &["push", &target]);
    assert!(out.contains(": Mounted from busybox\n"), "{out}");
    assert!(out.contains(&format!("latest: digest: {orig} ")), "{out}");
    let issued = std::fs::read_to_string(fixture_dir().join("token/issuer.log")).unwrap();
    assert!(
        issued.lines().any(|l| l.contains("user=pusher")
            && l.contains(&repo)
            && l.contains("\"push\"")
            && l.contains("busybox")),
        "one token for pull,push here and pull on the mount source"
    );
    assert_eq!(skopeo_digest(&target), orig);
}

#[test]
fn push_over_tls_with_the_fixture_ca() {
    let r = Root::new();
    let certs = r.path().join("certs.d").join(TLS);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(fixture_dir().join("tls/ca.pem"), certs.join("ca.crt")).unwrap();
    let config = r.path().join("config.json");
    let cfg = serde_json::json!({
        "default-network": "none",
        "certs-dir": r.path().join("certs.d"),
    });
    std::fs::write(&config, cfg.to_string()).unwrap();
    let berth = |args: &[&str]| {
        let o = r
            .berth()
            .env("BERTH_CONFIG", &config)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "berth {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    berth(&["pull", "-q", BUSYBOX]);
    let orig = repo_digest(&r, BUSYBOX, &format!("{PLAIN}/busybox"));
    let repo = unique("tls");
    let target = format!("{TLS}/{repo}:v2");
    berth(&["tag", BUSYBOX, &target]);
    let out = berth(&["push", &target]);
    assert!(out.contains(": Pushed\n"), "{out}");
    assert!(out.contains(&format!("v2: digest: {orig} ")), "{out}");
    assert_eq!(log_count("tls", &repo, "PUT", "/manifests/v2"), 1);
    assert_eq!(skopeo_digest(&target), orig);
}

#[test]
fn push_all_tags_and_quiet() {
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    let layers = format!("{PLAIN}/layers:latest");
    ok(&r, &["pull", "-q", &layers]);
    let repo = unique("all");
    let name = format!("{PLAIN}/{repo}");
    for (src, tag) in [(BUSYBOX, "a"), (BUSYBOX, "b"), (layers.as_str(), "c")] {
        ok(&r, &["tag", src, &format!("{name}:{tag}")]);
    }
    let o = r
        .berth()
        .args(["push", "--all-tags", &format!("{name}:a")])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("tag can't be used with --all-tags/-a"));

    let out = ok(&r, &["push", "-a", &name]);
    let digests: Vec<&str> = out.lines().filter(|l| l.contains(": digest: ")).collect();
    assert_eq!(digests.len(), 3, "{out}");
    for (line, tag) in digests.iter().zip(["a", "b", "c"]) {
        assert!(
            line.starts_with(&format!("{tag}: digest: sha256:")),
            "{line}"
        );
    }
    for tag in ["a", "b", "c"] {
        assert_eq!(
            log_count("plain", &repo, "PUT", &format!("/manifests/{tag}")),
            1
        );
    }
    let o = r
        .berth()
        .args(["push", "-q", "-a", &name])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "quiet prints nothing");
    assert_eq!(stderr(&o), "");
}

#[test]
fn push_errors() {
    let r = Root::new();
    let o = r
        .berth()
        .args(["push", &format!("{PLAIN}/nope-here")])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        format!("berth: An image does not exist locally with the tag: {PLAIN}/nope-here\n")
    );
    assert_eq!(
        stdout(&o),
        format!("Using default tag: latest\nThe push refers to repository [{PLAIN}/nope-here]\n"),
        "Docker's lines before its error"
    );
    ok(&r, &["pull", "-q", BUSYBOX]);
    ok(&r, &["tag", BUSYBOX, "busybox"]);
    // No registry in the name would mean Docker Hub: refused, nothing sent.
    let o = r.berth().args(["push", "busybox"]).output().unwrap();
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.starts_with("berth: push busybox: the name has no registry"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let o = r
        .berth()
        .args([
            "image",
            "push",
            &format!("{BUSYBOX}@sha256:{}", "0".repeat(64)),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
}

#[test]
fn push_killed_midway_then_completes() {
    let r = Root::new();
    let src = format!("{PLAIN}/large:latest");
    ok(&r, &["pull", "-q", &src]);
    let orig = repo_digest(&r, &src, &format!("{PLAIN}/large"));
    let id = inspect(&r, &src)["Id"].as_str().unwrap().to_string();
    // To the tls registry: nothing to mount there, everything uploads.
    let repo = unique("killed");
    let target = format!("{TLS}/{repo}:latest");
    ok(&r, &["tag", &src, &target]);
    let mut child = r
        .berth()
        .args(["push", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the first blob made it, others still on their way.
    let t = Instant::now();
    while log_count("tls", &repo, "PUT", "/blobs/uploads/") == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "no upload finished");
        assert!(child.try_wait().unwrap().is_none(), "push ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // An upload whose body was all sent before the kill may still land:
    // wait until the registry's count stays put.
    let mut done = log_count("tls", &repo, "PUT", "/blobs/uploads/");
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = log_count("tls", &repo, "PUT", "/blobs/uploads/");
        if now == done {
            break;
        }
        done = now;
    }
    assert!(done < 7, "killed before every blob was in: {done}");
    assert_eq!(log_count("tls", &repo, "PUT", "/manifests/"), 0);
    assert_ne!(
        Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                &format!("docker://{target}")
            ])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0),
        "no manifest, no image"
    );

    let out = ok(&r, &["push", &target]);
    assert!(out.contains(": Layer already exists\n"), "{out}");
    assert!(out.contains(": Pushed\n"), "{out}");
    // Nothing uploaded twice: six layers and a config in all.
    assert_eq!(log_count("tls", &repo, "PUT", "/blobs/uploads/"), 7);
    assert!(out.contains(&format!("latest: digest: {orig} ")), "{out}");

    ok(&r, &["rmi", &target, &src]);
    ok(&r, &["pull", "-q", &target]);
    assert_eq!(inspect(&r, &target)["Id"], id.as_str());
    assert_eq!(repo_digest(&r, &target, &format!("{TLS}/{repo}")), orig);
}

#[test]
fn push_of_a_multi_platform_image_sends_the_pulled_platform_manifest() {
    let r = Root::new();
    let src = format!("{PLAIN}/multiarch:latest");
    ok(&r, &["pull", "-q", &src]);
    let o = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{src}"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo: {}", stderr(&o));
    let index: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let amd64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let repo = unique("multi");
    let target = format!("{PLAIN}/{repo}:latest");
    ok(&r, &["tag", &src, &target]);
    let out = ok(&r, &["image", "push", &target]);
    // Known under the index's repository, so mounted from there.
    assert_eq!(
        out.matches(": Mounted from multiarch\n").count(),
        2,
        "{out}"
    );
    assert!(out.contains(&format!("latest: digest: {amd64} ")), "{out}");
    assert_eq!(skopeo_digest(&target), amd64, "one platform, not the index");
}

#[test]
fn push_on_a_terminal_draws_bars() {
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    let repo = unique("tty");
    let target = format!("{TLS}/{repo}:latest");
    ok(&r, &["tag", BUSYBOX, &target]);
    let cmd = format!(
        "env DOCKER_CONFIG={}/docker-config {} --root {} push {target}",
        r.path().display(),
        berth_shell(),
        r.path().display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains('\x1b'), "bars redraw in place: {out:?}");
    assert!(out.contains("Pushed") && out.contains("B/"), "{out:?}");
    assert!(out.contains("latest: digest: sha256:"), "{out:?}");
}
