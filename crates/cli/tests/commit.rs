//! `commit` and `import` against real containers: the committed image
//! holds exactly the container's filesystem (files added, changed,
//! deleted, a directory replaced, hardlinks), its config the container's
//! with `-c` changes; `import` of an exported filesystem runs; hostile or
//! broken archives are refused with nothing stored.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Output;

use common::{BUSYBOX, Root, code, stderr, stdout};

fn berth(root: &Root, args: &[&str]) -> Output {
    root.berth().args(args).output().unwrap()
}

fn ok(root: &Root, args: &[&str]) -> String {
    let o = berth(root, args);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// path → (kind, mode, owner, size, content hash, link) of an exported
/// filesystem, without what every container gets from berth.
fn tree(tar_bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let path = path.trim_end_matches('/').to_string();
        if ["etc/hosts", "etc/hostname", "etc/resolv.conf"].contains(&path.as_str())
            || path.starts_with("proc")
            || path.starts_with("sys")
            || path.starts_with("dev")
        {
            continue;
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        out.insert(
            path,
            format!(
                "{:?} {:o} {}:{} {} {:x} {link}",
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                data.len(),
                data.iter()
                    .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(*b as u64))
            ),
        );
    }
    out
}

fn exported(root: &Root, container: &str) -> BTreeMap<String, String> {
    let o = berth(root, &["export", container]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    tree(&o.stdout)
}

fn inspect(root: &Root, image: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    v[0].clone()
}

const CHANGES: &str = "mkdir -p /newdir/sub; echo hi > /newdir/sub/f; ln /newdir/sub/f /newdir/hl; \
     rm /bin/ls; echo x >> /etc/passwd; chmod 600 /etc/group; \
     rm -rf /tmp; mkdir /tmp; echo t > /tmp/new; ln -s /newdir/sub/f /lnk; chown 12:34 /tmp/new";

#[test]
fn a_committed_image_holds_exactly_the_containers_filesystem() {
    let root = Root::new();
    let o = root.run(&[
        "-q", "--name", "c1", "-e", "FOO=bar", BUSYBOX, "sh", "-c", CHANGES,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = ok(
        &root,
        &[
            "commit",
            "-m",
            "my message",
            "-a",
            "Jane <j@x>",
            "-c",
            "CMD [\"cat\", \"/newdir/sub/f\"]",
            "-c",
            "ENV A=1",
            "-c",
            "EXPOSE 8080",
            "c1",
            "made:v1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // The new image runs its new command over the new files.
    let o = root.run(&["--rm", "made:v1"]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hi\n"),
        "{}",
        stderr(&o)
    );
    let o = root.run(&["--rm", "made:v1", "sh", "-c", "echo $FOO $A; ls /bin/ls"]);
    assert_eq!(stdout(&o), "bar 1\n", "{}", stderr(&o));

    // Its filesystem is the container's, entry for entry.
    let o = root.run(&["-q", "--name", "c2", "made:v1", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (before, after) = (exported(&root, "c1"), exported(&root, "c2"));
    assert!(before.contains_key("newdir/hl") && !before.contains_key("bin/ls"));
    assert_eq!(before, after);

    let img = inspect(&root, "made:v1");
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["cat", "/newdir/sub/f"])
    );
    assert_eq!(img["Author"], "Jane <j@x>");
    assert!(
        img["Config"]["ExposedPorts"]["8080/tcp"].is_object(),
        "{img}"
    );
    let env = img["Config"]["Env"].to_string();
    assert!(
        env.contains("FOO=bar") && env.contains("A=1") && !env.contains("HOSTNAME"),
        "{env}"
    );
    let hist = ok(
        &root,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.Comment}}",
            "made:v1",
        ],
    );
    assert_eq!(hist.lines().next(), Some("my message"));

    // The same container committed again gives the same layer.
    ok(&root, &["commit", "c1", "made:v2"]);
    let layers = |i: &str| inspect(&root, i)["RootFS"]["Layers"].clone();
    assert_eq!(layers("made:v1"), layers("made:v2"));
    let base = layers(BUSYBOX).as_array().unwrap().len();
    assert_eq!(layers("made:v1").as_array().unwrap().len(), base + 1);
}

#[test]
fn commit_of_a_running_container_with_zstd_and_bad_changes() {
    let root = Root::new();
    let o = root.run(&[
        "-d",
        "--name",
        "live",
        BUSYBOX,
        "sh",
        "-c",
        "echo z > /zz; sleep 300",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for _ in 0..100 {
        if ok(&root, &["diff", "live"]).contains("/zz") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A bad change: refused before anything is made.
    let images = ok(&root, &["images", "-q"]);
    let o = berth(&root, &["commit", "-c", "RUN make", "live", "bad:v1"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("RUN is not a valid change command"),
        "{}",
        stderr(&o)
    );
    assert_eq!(ok(&root, &["images", "-q"]), images);

    ok(&root, &["commit", "--compress", "zstd", "live", "zst:v1"]);
    // Paused for the commit, running again after it.
    let state = ok(&root, &["inspect", "-f", "{{.State.Status}}", "live"]);
    assert_eq!(state.trim(), "running");
    let o = root.run(&["--rm", "zst:v1", "cat", "/zz"]);
    assert_eq!(stdout(&o), "z\n", "{}", stderr(&o));
    ok(&root, &["rm", "-f", "live"]);

    let o = berth(&root, &["commit", "nope", "x:y"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}

#[test]
fn import_makes_an_image_of_an_exported_filesystem() {
    let root = Root::new();
    let o = root.run(&[
        "-q",
        "--name",
        "src",
        BUSYBOX,
        "sh",
        "-c",
        "echo imported > /marker",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let tarball = berth(&root, &["export", "src"]).stdout;
    let o = root.with_stdin(
        &[
            "import",
            "-c",
            "CMD [\"cat\", \"/marker\"]",
            "-m",
            "from export",
            "-",
            "imp:v1",
        ],
        &tarball,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = root.run(&["--rm", "imp:v1"]);
    assert_eq!(stdout(&o), "imported\n", "{}", stderr(&o));
    let hist = ok(&root, &["history", "--format", "{{.Comment}}", "imp:v1"]);
    assert_eq!(hist.trim(), "from export");

    // gzip-compressed, from a file.
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("fs.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tarball).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    ok(&root, &["image", "import", gz.to_str().unwrap(), "imp:gz"]);
    let o = root.run(&["--rm", "imp:gz", "cat", "/marker"]);
    assert_eq!(stdout(&o), "imported\n", "{}", stderr(&o));
    let layers = |i: &str| inspect(&root, i)["RootFS"]["Layers"].clone();
    assert_eq!(
        layers("imp:v1"),
        layers("imp:gz"),
        "same content, same diff_id"
    );
}

/// An imported filesystem whose symlinks point at the host's root: the
/// image is a filesystem like any other (a rootfs has absolute symlinks),
/// and writing through them at unpack lands inside the container's root,
/// never on the host.
#[test]
fn an_imported_symlink_to_the_root_stays_in_the_container() {
    let root = Root::new();
    let marker = format!("berth-import-escape-{}", std::process::id());
    let mut tarball = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tarball);
        let mut busybox = std::fs::File::open("/bin/busybox").unwrap();
        b.append_file("bin/busybox", &mut busybox).unwrap();
        for (name, target) in [("bin/sh", "busybox"), ("bin/cat", "busybox"), ("up", "/")] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("up/tmp/{marker}"), &b"in\n"[..])
            .unwrap();
        b.finish().unwrap();
    }
    let o = root.with_stdin(&["import", "-", "links:v1"], &tarball);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = root.run(&["--rm", "links:v1", "/bin/cat", &format!("/tmp/{marker}")]);
    assert_eq!(stdout(&o), "in\n", "{}", stderr(&o));
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "written on the host"
    );
}

/// A tar whose entry climbs out, one cut short, one that is not a tar
/// compression berth reads: each refused, and nothing is left.
#[test]
fn hostile_or_broken_archives_are_refused_with_nothing_stored() {
    let root = Root::new();
    let mut climbing = Vec::new();
    {
        let mut b = tar::Builder::new(&mut climbing);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses "..": write the name by hand.
        h.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../../escape");
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        b.finish().unwrap();
    }
    let mut good = Vec::new();
    {
        let mut b = tar::Builder::new(&mut good);
        let mut h = tar::Header::new_gnu();
        h.set_size(100_000);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "big", &vec![7u8; 100_000][..])
            .unwrap();
        b.finish().unwrap();
    }
    let truncated = &good[..50_000];
    // A header whose owner is not a number (the applier would refuse it
    // only when the image first runs).
    let mut bad_uid = good.clone();
    bad_uid[108..116].copy_from_slice(b"zzzzzzz\0");
    let sum: u32 = bad_uid[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    bad_uid[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let xz = b"\xfd7zXZ\x00rest of it";
    for (what, input, why) in [
        ("climbing", climbing.as_slice(), "climbs out"),
        ("truncated", truncated, "read"),
        ("bad-uid", bad_uid.as_slice(), "uid"),
        ("xz", &xz[..], "not supported"),
    ] {
        let o = root.with_stdin(&["import", "-", &format!("bad:{what}")], input);
        assert_eq!(code(&o), 1, "{what}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{what}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{what}: {}", stderr(&o));
    }
    assert_eq!(ok(&root, &["images", "-q"]), "");
    let store = root.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&store)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp files left: {left:?}");
    let o = berth(&root, &["import", "http://127.0.0.1:1/x.tar"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("URL is not supported"),
        "{}",
        stderr(&o)
    );
}

/// A committed image pushed to the registry is what other tools see:
/// skopeo copies it into an OCI layout, umoci unpacks that to exactly the
/// container's tree, and a fresh pull of it runs.
#[test]
fn a_pushed_commit_unpacks_in_umoci_as_the_container_was() {
    let root = Root::new();
    let o = root.run(&["-q", "--name", "src", BUSYBOX, "sh", "-c", CHANGES]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let repo = format!("{}/committed-{}", common::PLAIN, std::process::id());
    let target = format!("{repo}:v1");
    ok(&root, &["commit", "src", &target]);
    ok(&root, &["push", "-q", &target]);

    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let st = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}:v1", layout.display()))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy");
    let bundle = dir.path().join("bundle");
    let o = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci: {}", stderr(&o));
    // umoci's tree as a tar, to compare entry for entry with the export.
    let t = std::process::Command::new("tar")
        .args(["-C"])
        .arg(bundle.join("rootfs"))
        .args(["--numeric-owner", "-cf", "-", "."])
        .output()
        .unwrap();
    assert!(t.status.success());
    let strip = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter()
            .map(|(k, v)| (k.trim_start_matches("./").to_string(), v))
            .filter(|(k, _)| !k.is_empty() && k != ".")
            .collect()
    };
    let umoci = strip(tree(&t.stdout));
    let container = strip(exported(&root, "src"));
    // Directory modes and kinds, file bytes, links: the same tree.
    let keys = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&umoci), keys(&container));
    for (k, v) in &container {
        // Which name of a hardlinked file holds the bytes is tar(1)'s choice.
        let u = &umoci[k];
        if !v.starts_with("Link") && !u.starts_with("Link") {
            assert_eq!(v, u, "{k}");
        }
    }

    ok(&root, &["rmi", &target]);
    let o = root.run(&["--rm", &target, "cat", "/newdir/sub/f"]);
    assert_eq!(stdout(&o), "hi\n", "{}", stderr(&o));
}

/// A gzip that inflates a thousandfold (a tar of one 2 GiB file of
/// zeros) is refused once it passes 1 GiB, with nothing stored.
#[test]
fn an_import_bomb_is_refused() {
    let root = Root::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut b = tar::Builder::new(&mut gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(2 << 30);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(2 << 30))
            .unwrap();
        b.finish().unwrap();
    }
    let bomb = gz.finish().unwrap();
    let o = root.with_stdin(&["import", "-", "bomb:v1"], &bomb);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("inflates past"), "{}", stderr(&o));
    assert_eq!(ok(&root, &["images", "-q"]), "");
    let left: Vec<_> = std::fs::read_dir(root.path().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp files left: {left:?}");
}
