//! Image commands end to end against the real fixture registries.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

#[test]
fn pull_images_inspect_rmi_prune() {
    let r = Root::new();
    let o = r.berth().args(["pull", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains("Status: Downloaded newer image for 127.0.0.1:5500/busybox:latest"),
        "{out}"
    );
    // Piped: no progress-bar escape sequences.
    assert!(!out.contains('\x1b'), "{out:?}");

    let o = r.berth().args(["pull", "-q", BUSYBOX]).output().unwrap();
    assert_eq!(
        stdout(&o).trim(),
        BUSYBOX,
        "quiet pull prints the reference"
    );

    let table = stdout(&r.berth().arg("images").output().unwrap());
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("127.0.0.1:5500/busybox") && row.contains("latest"),
        "{row}"
    );

    let json = stdout(
        &r.berth()
            .args(["images", "--format", "json"])
            .output()
            .unwrap(),
    );
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["Repository"], "127.0.0.1:5500/busybox");

    let o = r
        .berth()
        .args(["image", "inspect", BUSYBOX])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["Id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(v[0]["Os"], "linux");
    assert_eq!(v[0]["RepoTags"][0], BUSYBOX);

    let o = r.berth().args(["rmi", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&r.berth().args(["images", "-q"]).output().unwrap()),
        ""
    );
    let o = r.berth().args(["image", "prune"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let blobs = std::fs::read_dir(r.path().join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "prune left blobs no image references");

    // Commands that run no container fail with 1, as Docker's do.
    let o = r.berth().args(["rmi", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 1);
}

#[test]
fn bad_references_and_missing_tags_are_clear_one_line_errors() {
    let r = Root::new();
    let o = r.berth().args(["pull", "UPPER/case"]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("berth: "), "{}", stderr(&o));
    let o = r
        .berth()
        .args(["pull", "127.0.0.1:5500/busybox:nope"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.contains("127.0.0.1:5500/busybox:nope") && e.contains("manifest unknown"),
        "{e}"
    );
}

#[test]
fn platform_is_chosen_from_an_index() {
    let r = Root::new();
    let o = r
        .berth()
        .args([
            "pull",
            "-q",
            "--platform",
            "linux/arm/v7",
            "127.0.0.1:5500/multiarch:latest",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(
        &r.berth()
            .args(["image", "inspect", "127.0.0.1:5500/multiarch:latest"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v[0]["Architecture"], "arm");
    assert_eq!(v[0]["Variant"], "v7");
}

#[test]
fn login_logout_with_basic_auth_registry() {
    let r = Root::new();
    let reg = "127.0.0.1:5501";
    let img = format!("{reg}/busybox:latest");
    let o = r.berth().args(["pull", "-q", &img]).output().unwrap();
    assert_eq!(code(&o), 1, "pull without credentials must fail");
    let e = stderr(&o);
    assert!(e.contains("401") || e.contains("unauthorized"), "{e}");

    let o = r
        .berth()
        .args(["login", "-u", "berth", "-p", "wrong", reg])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        !r.path().join("docker-config/config.json").exists()
            || !std::fs::read_to_string(r.path().join("docker-config/config.json"))
                .unwrap()
                .contains(reg)
    );

    let mut c = r
        .berth()
        .args(["login", "-u", "berth", "--password-stdin", reg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"berthpass\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("Login Succeeded"));
    let cfg = std::fs::read_to_string(r.path().join("docker-config/config.json")).unwrap();
    assert!(cfg.contains(reg), "{cfg}");

    let o = r.berth().args(["pull", "-q", &img]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let o = r.berth().args(["logout", reg]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cfg = std::fs::read_to_string(r.path().join("docker-config/config.json")).unwrap();
    assert!(!cfg.contains(reg), "{cfg}");
}

#[test]
fn docker_hub_names_go_through_the_configured_mirror() {
    let r = Root::new();
    let cfg = r.path().join("mirror.json");
    std::fs::write(
        &cfg,
        // No bridge on the machine's network: none, as in the tests' config.
        format!(r#"{{"registry-mirrors": ["http://{PLAIN}"], "default-network": "none"}}"#),
    )
    .unwrap();
    let o = r
        .berth()
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--rm", "-q", "busybox", "cat", "/etc/berth-fixture"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "busybox\n", "{}", stderr(&o));
    let imgs = stdout(&r.berth().arg("images").output().unwrap());
    assert!(
        imgs.lines().nth(1).unwrap().starts_with("busybox "),
        "{imgs}"
    );
}

/// An uppercase first component without `.`, `:` or `localhost` is no host
/// to go and look up: the repository name must be lowercase.
#[test]
fn uppercase_repository_is_an_invalid_reference() {
    let r = Root::new();
    for args in [
        &["pull", "UPPER/case"][..],
        &["run", "--rm", "UPPER/case", "true"],
    ] {
        let o = r.berth().args(args).output().unwrap();
        // pull fails with 1, run with 125 (Docker's codes).
        let want = if args[0] == "run" { 125 } else { 1 };
        assert_eq!(code(&o), want, "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("invalid reference format: repository name (UPPER/case) must be lowercase"),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
    }
}
