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

/// `tag` names an image again (rmi of one name keeps it), `history` shows
/// the config's history with layer sizes, newest first, as Docker does,
/// and `images --digests` the digest the registry served.
#[test]
fn tag_history_and_digests() {
    let r = Root::new();
    let long = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef01234567 in / ";
    let img = push_image(
        "history",
        &[Entry::File("hello", b"hi\n")],
        serde_json::json!({"history": [
            {"created": "2020-01-01T00:00:00Z", "created_by": long},
            {"created": "2021-01-01T00:00:00Z", "created_by": "/bin/sh -c echo hi > /hello", "comment": "by hand"},
            {"created": "2021-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
        ]}),
    );
    let ok = |args: &[&str]| {
        let o = r.berth().args(args).output().unwrap();
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    ok(&["pull", "-q", &img]);
    let id = ok(&["images", "-q", "--no-trunc"]).trim().to_string();

    let table = ok(&["history", &img]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for col in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(
        lines[1].starts_with(&id["sha256:".len()..][..12]),
        "{table}"
    );
    assert!(
        lines[1].contains("CMD [\"sh\"]") && lines[1].contains(" 0B "),
        "{table}"
    );
    assert!(
        lines[2].starts_with("<missing>") && lines[2].ends_with("by hand"),
        "{table}"
    );
    // Docker's truncation: 44 characters and an ellipsis.
    let cut: String = long.chars().take(44).collect::<String>() + "…";
    assert!(lines[3].contains(&cut), "{table}");
    let full = ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}",
        &img,
    ]);
    assert_eq!(
        full.lines().next().unwrap(),
        format!("{id}|/bin/sh -c #(nop)  CMD [\"sh\"]")
    );
    assert_eq!(full.lines().last().unwrap(), format!("<missing>|{long}"));
    let sizes = ok(&[
        "history",
        "-H=false",
        "--format",
        "{{.Size}} {{.CreatedAt}}",
        &img,
    ]);
    let sizes: Vec<&str> = sizes.lines().collect();
    assert_eq!(sizes[0], "0 2021-01-01T00:00:01Z", "{sizes:?}");
    let own: u64 = sizes[1].split(' ').next().unwrap().parse().unwrap();
    let base: u64 = sizes[2].split(' ').next().unwrap().parse().unwrap();
    assert!(own > 0 && own < 10_000 && base > 500_000, "{sizes:?}");
    assert_eq!(
        ok(&["history", "-q", &img])
            .lines()
            .filter(|l| *l == "<missing>")
            .count(),
        2
    );

    // tag: another name for the same image; rmi of it keeps the image.
    assert_eq!(ok(&["tag", &img, "local/app:v1"]), "");
    ok(&["image", "tag", &img, "local/app"]);
    let rows = ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let short = &id["sha256:".len()..][..12];
    for name in ["local/app:v1", "local/app:latest", img.as_str()] {
        assert!(rows.contains(&format!("{name} {short}")), "{name}: {rows}");
    }
    assert_eq!(
        ok(&["rmi", "local/app:v1"]).trim(),
        "Untagged: local/app:v1"
    );
    assert_eq!(ok(&["images", "-q", "--no-trunc"]).trim(), id);
    // --digests: the pulled name has the registry's digest, a local tag none.
    let digests = ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Digest}}",
    ]);
    let pulled_repo = img.rsplit_once(':').unwrap().0;
    assert!(
        digests
            .lines()
            .any(|l| l.starts_with(pulled_repo) && l.contains(" sha256:")),
        "{digests}"
    );
    assert!(digests.contains("local/app <none>"), "{digests}");
    assert!(
        ok(&["images", "--digests"])
            .lines()
            .next()
            .unwrap()
            .contains("DIGEST")
    );

    // Bad input: one line, exit 1, nothing changed.
    for args in [
        &["tag", "nope:1", "local/x"][..],
        &[
            "tag",
            &img,
            "local/x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ],
        &["tag", &img, "Bad/Name"],
        &["history", "nope:1"],
    ] {
        let o = r.berth().args(args).output().unwrap();
        assert_eq!(code(&o), 1, "{args:?}");
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
    assert!(!ok(&["images"]).contains("local/x"));
}
