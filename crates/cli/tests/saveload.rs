//! `save` and `load` against the real programs: Debian's dockerd (20.10,
//! the fixture's, on a private socket) loads what berth saves and berth
//! loads what it saves; skopeo reads berth's archives and writes
//! oci-archives berth loads; hostile archives are refused leaving nothing.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::peers::*;
use common::*;

/// An image of busybox plus `/saved.txt` saying `text`, pulled into `r`.
fn image(r: &Root, repo: &str, text: &str) -> String {
    let reference = push_image(
        repo,
        &[Entry::File("saved.txt", text.as_bytes())],
        serde_json::json!({}),
    );
    let o = r.berth().args(["pull", "-q", &reference]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    reference
}

fn ok(o: Output) -> String {
    assert_eq!(
        code(&o),
        0,
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn docker(args: &[&str]) -> Output {
    let mut argv = fixture_env().docker();
    argv.extend(args.iter().map(|s| s.to_string()));
    output_within(&argv, 120)
}

fn image_id(r: &Root, name: &str) -> String {
    let o = r.berth().args(["image", "inspect", name]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["Id"].as_str().unwrap_or_default().to_string()
}

/// Nothing in flight in the store's tmp dir.
fn temp_files(r: &Root) -> Vec<String> {
    std::fs::read_dir(r.path().join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A file docker wrote (root's, 0600) readable by a rootless berth.
fn readable(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn load_file(r: &Root, file: &Path) -> Output {
    r.berth().args(["load", "-i"]).arg(file).output().unwrap()
}

#[test]
fn docker_loads_what_berth_saves_and_berth_loads_what_docker_saves() {
    let r = Root::new();
    let reference = image(&r, "saveload-docker", "saved by berth\n");
    let id = image_id(&r, &reference);
    // Two images sharing busybox's layer, in one archive: the layer once.
    ok(r.berth().args(["pull", "-q", BUSYBOX]).output().unwrap());
    ok(r.berth()
        .args(["tag", BUSYBOX, "saveload-bb:v1"])
        .output()
        .unwrap());
    let file = r.path().join("berth.tar");
    ok(r.berth()
        .args(["save", "-o"])
        .arg(&file)
        .args([&reference, "saveload-bb:v1"])
        .output()
        .unwrap());
    let bytes = std::fs::read(&file).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "each entry once");
    let out = ok(docker(&["load", "-i", file.to_str().unwrap()]));
    assert_eq!(
        out,
        format!("Loaded image: {reference}\nLoaded image: saveload-bb:v1\n")
    );
    let out = ok(docker(&[
        "run",
        "--rm",
        "--net",
        "none",
        "saveload-bb:v1",
        "echo",
        "bb",
    ]));
    assert_eq!(out, "bb\n");
    let _ = docker(&["rmi", "saveload-bb:v1"]);
    let out = ok(docker(&[
        "run",
        "--rm",
        "--net",
        "none",
        &reference,
        "cat",
        "/saved.txt",
    ]));
    assert_eq!(out, "saved by berth\n");
    let docker_id = ok(docker(&["image", "inspect", "-f", "{{.Id}}", &reference]));
    assert_eq!(docker_id.trim(), id, "docker computes the same image id");

    // Back: docker's own archive (its old format, uncompressed layers).
    ok(docker(&["tag", &reference, "saveload-from-docker:v1"]));
    let dfile = r.path().join("docker.tar");
    ok(docker(&[
        "save",
        "-o",
        dfile.to_str().unwrap(),
        "saveload-from-docker:v1",
    ]));
    readable(&dfile);
    let _ = docker(&["rmi", "saveload-from-docker:v1", &reference]);
    let r2 = Root::new();
    let out = ok(load_file(&r2, &dfile));
    assert_eq!(out, "Loaded image: saveload-from-docker:v1\n");
    assert_eq!(image_id(&r2, "saveload-from-docker:v1"), id);
    let o = r2.run(&["--rm", "saveload-from-docker:v1", "cat", "/saved.txt"]);
    assert_eq!(ok(o), "saved by berth\n");
}

#[test]
fn skopeo_reads_berth_archives_and_berth_loads_oci_archives() {
    let r = Root::new();
    let reference = image(&r, "saveload-skopeo", "via skopeo\n");
    let file = r.path().join("berth.tar");
    ok(r.berth()
        .args(["save", "-o"])
        .arg(&file)
        .arg(&reference)
        .output()
        .unwrap());
    let archive = format!("docker-archive:{}", file.display());
    let o = Command::new("skopeo")
        .args(["inspect", &archive])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(ok(o).as_bytes()).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["Architecture"], "amd64");

    let oci = r.path().join("oci.tar");
    let dest = format!("oci-archive:{}:skopeo-made:v2", oci.display());
    ok(Command::new("skopeo")
        .args(["copy", "-q", &archive, &dest])
        .output()
        .unwrap());
    let r2 = Root::new();
    assert_eq!(ok(load_file(&r2, &oci)), "Loaded image: skopeo-made:v2\n");
    let o = r2.run(&["--rm", "skopeo-made:v2", "cat", "/saved.txt"]);
    assert_eq!(ok(o), "via skopeo\n");

    // Unnamed in the layout: loaded by id.
    let oci2 = r.path().join("oci2.tar");
    let dest = format!("oci-archive:{}", oci2.display());
    ok(Command::new("skopeo")
        .args(["copy", "-q", &archive, &dest])
        .output()
        .unwrap());
    let out = ok(load_file(&r2, &oci2));
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
}

#[test]
fn save_refuses_a_terminal_and_a_failed_save_leaves_no_file() {
    let r = Root::new();
    let reference = image(&r, "saveload-tty", "tty\n");
    let cmd = format!(
        "{} --root {} save {reference}",
        berth_shell(),
        r.path().display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{out}"
    );
    assert_eq!(code(&o), 1, "{out}");
    assert!(!out.contains("oci-layout"), "no tar on the terminal");

    let file = r.path().join("out.tar");
    let o = r
        .berth()
        .args(["save", "-o"])
        .arg(&file)
        .args([&reference, "nope:missing"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "berth: save: No such image: nope:missing\n");
    let left: Vec<_> = std::fs::read_dir(r.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !left.iter().any(|n| n.to_string_lossy().contains("out.tar")),
        "{left:?}"
    );
}

#[test]
fn save_rmi_load_keeps_id_and_tags_and_saves_the_same_bytes() {
    let r = Root::new();
    let reference = image(&r, "saveload-trip", "round trip\n");
    ok(r.berth()
        .args(["tag", &reference, "trip:one"])
        .output()
        .unwrap());
    let id = image_id(&r, &reference);
    let a = r
        .berth()
        .args(["save", &reference, "trip:one"])
        .output()
        .unwrap();
    let b = r
        .berth()
        .args(["image", "save", &reference, "trip:one"])
        .output()
        .unwrap();
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    assert!(a.stdout == b.stdout, "saving twice gives the same bytes");
    ok(r.berth()
        .args(["rmi", &reference, "trip:one"])
        .output()
        .unwrap());
    assert_eq!(ok(r.berth().args(["images", "-q"]).output().unwrap()), "");

    let mut c = r
        .berth()
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&a.stdout).unwrap();
    let out = ok(c.wait_with_output().unwrap());
    assert_eq!(
        out,
        format!("Loaded image: {reference}\nLoaded image: trip:one\n")
    );
    assert_eq!(image_id(&r, "trip:one"), id);
    assert_eq!(image_id(&r, &reference), id);
    let o = r.run(&["--rm", "trip:one", "cat", "/saved.txt"]);
    assert_eq!(ok(o), "round trip\n");
}

/// A tar of regular files, written header by header (the tar crate's
/// builder refuses the names hostile archives use).
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
        h.set_cksum();
        t.append(&h, *data).unwrap();
    }
    t.into_inner().unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn hostile_archives_are_refused_leaving_nothing() {
    let r = Root::new();
    let reference = image(&r, "saveload-hostile", "hostile\n");
    let good = r
        .berth()
        .args(["save", &reference])
        .output()
        .unwrap()
        .stdout;
    let mut symlink = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    symlink
        .append_link(&mut h, "manifest.json", "/etc/shadow")
        .unwrap();
    let symlink = symlink.into_inner().unwrap();
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let liar = format!("blobs/sha256/{}", sha256_hex(b"the truth"));
    // Docker's old format with a config named for another image id.
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let other = format!("{}.json", sha256_hex(b"another config"));
    let manifest = format!(r#"[{{"Config":"{other}","RepoTags":["liar:v1"],"Layers":[]}}]"#);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            tar_of(&[("../../escape", b"x")]),
            "path leaves the archive",
        ),
        (
            "absolute",
            tar_of(&[("/tmp/escape", b"x")]),
            "path leaves the archive",
        ),
        ("symlink", symlink, "Symlink entries are not allowed"),
        (
            "oversized",
            tar_of(&[("manifest.json", &big)]),
            "manifest.json is larger than 4 MiB",
        ),
        ("lying blob", tar_of(&[(&liar, b"a lie")]), "hashes to"),
        (
            "lying config",
            tar_of(&[(&other, cfg), ("manifest.json", manifest.as_bytes())]),
            "manifest.json names it",
        ),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        (
            "no end marker",
            good[..good.len() - 2048].to_vec(),
            "truncated",
        ),
    ];
    let r2 = Root::new();
    for (what, bytes, want) in cases {
        let file = r2.path().join("hostile.tar");
        std::fs::write(&file, &bytes).unwrap();
        let o = load_file(&r2, &file);
        assert_eq!(code(&o), 1, "{what}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("berth: load: ") && err.contains(want),
            "{what}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert_eq!(
            ok(r2.berth().args(["images", "-q"]).output().unwrap()),
            "",
            "{what}"
        );
        assert_eq!(temp_files(&r2), Vec::<String>::new(), "{what}");
        // Not even the blobs it brought that checked out (the truncated
        // archives hold whole ones): no image names them.
        for dir in ["blobs/sha256", "layers"] {
            let left: Vec<_> = std::fs::read_dir(r2.path().join(dir))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{what}: {dir}: {left:?}");
        }
    }
    assert!(!r2.path().join("../escape").exists());
    // The good archive still loads into that store.
    let file = r2.path().join("good.tar");
    std::fs::write(&file, &good).unwrap();
    ok(load_file(&r2, &file));
}

#[test]
fn a_load_killed_midway_leaves_a_consistent_store() {
    let r = Root::new();
    // 24 MiB that gzip cannot shrink: the load is mid-blob when killed.
    let mut noise = Vec::with_capacity(24 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while noise.len() < 24 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let reference = push_image(
        "saveload-kill",
        &[Entry::File("noise", &noise)],
        serde_json::json!({}),
    );
    ok(r.berth().args(["pull", "-q", &reference]).output().unwrap());
    let archive = r
        .berth()
        .args(["save", &reference])
        .output()
        .unwrap()
        .stdout;
    assert!(archive.len() > 24 << 20);

    let r2 = Root::new();
    let mut c = r2
        .berth()
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(&archive[..archive.len() / 2]).unwrap();
    // Wait until the blob being written shows in tmp, then kill.
    let t0 = std::time::Instant::now();
    while temp_files(&r2).is_empty() && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!temp_files(&r2).is_empty(), "a blob is in flight");
    c.kill().unwrap();
    c.wait().unwrap();
    drop(stdin);
    assert_eq!(ok(r2.berth().args(["images", "-q"]).output().unwrap()), "");
    // Past the reaper's grace, the next open takes the dead writer's file.
    for f in temp_files(&r2) {
        let o = Command::new("touch")
            .args(["-d", "1 minute ago"])
            .arg(r2.path().join("tmp").join(f))
            .output()
            .unwrap();
        ok(o);
    }
    let file = r2.path().join("whole.tar");
    std::fs::write(&file, &archive).unwrap();
    assert_eq!(
        ok(load_file(&r2, &file)),
        format!("Loaded image: {reference}\n")
    );
    assert_eq!(temp_files(&r2), Vec::<String>::new());
    let o = r2.run(&["--rm", &reference, "sh", "-c", "wc -c < /noise"]);
    assert_eq!(ok(o).trim(), (24 << 20).to_string());
}

#[test]
fn a_layer_repeated_in_an_image_goes_both_ways() {
    // The same layer twice on busybox: docker 20.10's save links the
    // second layer.tar to the first.
    let r = Root::new();
    let reference = push_image_stacked(
        "saveload-repeated",
        &[Entry::File("twice.txt", b"twice\n")],
        serde_json::json!({}),
        2,
    );
    ok(r.berth().args(["pull", "-q", &reference]).output().unwrap());
    let id = image_id(&r, &reference);
    let file = r.path().join("berth.tar");
    ok(r.berth()
        .args(["save", "-o"])
        .arg(&file)
        .arg(&reference)
        .output()
        .unwrap());
    ok(docker(&["load", "-i", file.to_str().unwrap()]));
    let dfile = r.path().join("docker.tar");
    ok(docker(&["save", "-o", dfile.to_str().unwrap(), &reference]));
    readable(&dfile);
    let _ = docker(&["rmi", &reference]);
    let bytes = std::fs::read(&dfile).unwrap();
    let links = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .filter(|e| e.as_ref().unwrap().header().entry_type() == tar::EntryType::Symlink)
        .count();
    assert_eq!(links, 1, "docker links the repeated layer");
    let r2 = Root::new();
    assert_eq!(
        ok(load_file(&r2, &dfile)),
        format!("Loaded image: {reference}\n")
    );
    assert_eq!(image_id(&r2, &reference), id);
    let o = r2.run(&["--rm", &reference, "cat", "/twice.txt"]);
    assert_eq!(ok(o), "twice\n");
}
