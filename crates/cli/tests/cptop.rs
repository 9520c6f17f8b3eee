//! `cp`, `top` and `stats` against real containers: `cp` with hostile
//! symlinks in the container first (it must never read or write the
//! host's files through them), then Docker's rules for where copies land,
//! stopped and running containers, tar streams; `top` and `stats` of a
//! running container.

mod common;

use std::path::Path;
use std::process::{Child, Command};

use common::{BUSYBOX, Root, code, stderr, stdout, test_user};

/// A host directory for copies, owned by whoever runs berth (the test
/// user when rootless).
fn host_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    if let Some((uid, gid, _)) = test_user() {
        std::os::unix::fs::chown(d.path(), Some(uid), Some(gid)).unwrap();
    }
    d
}

/// Symlinks a hostile image or process would plant, all pointing "out".
const HOSTILE: &str = "ln -s / /hostroot; ln -s ../../../../../ /up; \
     ln -s /hostroot /chain1; ln -s chain1/etc /chain2; \
     mkdir -p /data; echo inside > /data/marker";

/// A stopped container `name` made by `script` (its record and upper dir
/// kept: no --rm).
fn stopped(root: &Root, name: &str, script: &str) {
    let o = root.run(&["-q", "--name", name, BUSYBOX, "sh", "-c", script]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn berth(root: &Root, args: &[&str]) -> std::process::Output {
    root.berth().args(args).output().unwrap()
}

/// A running container (`sh -c script; echo ready; sleep`), stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn running(root: &Root, name: &str, script: &str, flags: &[&str]) -> Running {
    let mut args: Vec<&str> = flags.to_vec();
    let cmd = format!("{script}\necho ready\nexec sleep 60");
    args.extend([BUSYBOX, "sh", "-c", &cmd]);
    let (child, line, _) = root.started(name, &args);
    assert_eq!(line.trim(), "ready");
    Running(child)
}

#[test]
fn cp_out_through_hostile_symlinks_reads_the_containers_files() {
    let root = Root::new();
    // A host file the container must not reach through its links.
    let host = host_dir();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let script = format!("{HOSTILE}; ln -s {} /data/to-host", secret.display());
    stopped(&root, "evil1", &script);
    let out = host_dir();
    let ctr_passwd = stdout(&root.run(&["--rm", "-q", BUSYBOX, "cat", "/etc/passwd"]));
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert_ne!(ctr_passwd, host_passwd);
    for (i, src) in [
        "/hostroot/etc/passwd",
        "/up/etc/passwd",
        "/chain2/passwd",
        "/up/../../etc/passwd",
    ]
    .iter()
    .enumerate()
    {
        let dst = out.path().join(format!("p{i}"));
        let o = berth(
            &root,
            &["cp", &format!("evil1:{src}"), dst.to_str().unwrap()],
        );
        assert_eq!(code(&o), 0, "{src}: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), ctr_passwd, "{src}");
    }
    // The host's own file, named through the links: not in the container.
    let via = format!("evil1:/hostroot{}", secret.display());
    let o = berth(&root, &["cp", &via, out.path().join("s").to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Error response from daemon: Could not find the file"),
        "{}",
        stderr(&o)
    );
    assert!(!out.path().join("s").exists());
    // A symlink to the host's file is copied as a symlink, never its content.
    let dst = out.path().join("link");
    let o = berth(&root, &["cp", "evil1:/data/to-host", dst.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(dst.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&dst).unwrap(), secret);
    // So is one inside a directory copied out.
    let o = berth(
        &root,
        &["cp", "evil1:/data", out.path().join("d").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let l = out.path().join("d/to-host");
    assert!(l.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        std::fs::read_to_string(out.path().join("d/marker")).unwrap(),
        "inside\n"
    );
}

#[test]
fn cp_in_through_hostile_symlinks_writes_inside_the_container() {
    let root = Root::new();
    stopped(&root, "evil1", HOSTILE);
    let host = host_dir();
    let name = format!("berth-cp-{}", std::process::id());
    let src = host.path().join("f");
    std::fs::write(&src, "copied in").unwrap();
    for dst in [
        format!("/hostroot/tmp/{name}"),
        format!("/up/tmp/{name}-up"),
        format!("/chain1/tmp/{name}-chain"),
    ] {
        let o = berth(
            &root,
            &["cp", src.to_str().unwrap(), &format!("evil1:{dst}")],
        );
        assert_eq!(code(&o), 0, "{dst}: {}", stderr(&o));
    }
    for n in [name.clone(), format!("{name}-up"), format!("{name}-chain")] {
        assert!(
            !Path::new("/tmp").join(&n).exists(),
            "wrote the host's /tmp/{n}"
        );
    }
    // Read back out of the container: it is in its /tmp.
    let back = host.path().join("back");
    let o = berth(
        &root,
        &[
            "cp",
            &format!("evil1:/tmp/{name}-chain"),
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in");
}

/// A tar stream with the given (name, content) files, names as they are.
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn cp_in_tar_stream_refuses_names_climbing_out() {
    let root = Root::new();
    stopped(&root, "evil1", HOSTILE);
    let marker = format!("berth-cp-dotdot-{}", std::process::id());
    let bad = tar_of(&[(&format!("../../../../tmp/{marker}"), b"out")]);
    let o = root.with_stdin(&["cp", "-", "evil1:/data"], &bad);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(".."), "{}", stderr(&o));
    assert!(!Path::new("/tmp").join(&marker).exists());
    // A good stream lands in the destination directory.
    let good = tar_of(&[("a/b.txt", b"fine")]);
    let o = root.with_stdin(&["cp", "-", "evil1:/hostroot/data"], &good);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = berth(&root, &["cp", "evil1:/data/a/b.txt", "-"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.path().unwrap().to_str().unwrap(), "b.txt");
    let mut s = String::new();
    std::io::Read::read_to_string(&mut e, &mut s).unwrap();
    assert_eq!(s, "fine");
}

#[test]
fn cp_follows_dockers_rules_for_files_and_dirs() {
    let root = Root::new();
    stopped(
        &root,
        "cc",
        "mkdir -p /d/sub; echo one > /d/one; echo two > /d/sub/two; ln -s /d/one /lnk; chown 1000:1000 /d/one",
    );
    let h = host_dir();
    let p = |s: &str| h.path().join(s).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let o = berth(&root, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    };
    // Host files as berth's user would have them.
    let me = test_user().map(|(uid, gid, _)| (uid, gid));
    let own = |s: &str| {
        if let Some((uid, gid)) = me {
            std::os::unix::fs::lchown(p(s), Some(uid), Some(gid)).unwrap();
        }
    };
    let mkdir = |s: &str| {
        std::fs::create_dir(p(s)).unwrap();
        own(s);
    };
    let write = |s: &str, data: &str| {
        std::fs::write(p(s), data).unwrap();
        own(s);
    };
    // A dir to a missing path: created with the contents.
    ok(&["cp", "cc:/d", &p("new")]);
    assert_eq!(std::fs::read_to_string(p("new/sub/two")).unwrap(), "two\n");
    // A dir into an existing dir: by its name.
    mkdir("exist");
    ok(&["cp", "cc:/d", &p("exist")]);
    assert!(Path::new(&p("exist/d/one")).exists());
    // `/.`: the contents.
    mkdir("contents");
    ok(&["cp", "cc:/d/.", &p("contents")]);
    assert!(Path::new(&p("contents/one")).exists() && !Path::new(&p("contents/d")).exists());
    // A file over an existing file.
    write("f", "old");
    ok(&["cp", "cc:/d/one", &p("f")]);
    assert_eq!(std::fs::read_to_string(p("f")).unwrap(), "one\n");
    // -L follows the source link; without it the link is copied.
    ok(&["cp", "-L", "cc:/lnk", &p("followed")]);
    assert_eq!(std::fs::read_to_string(p("followed")).unwrap(), "one\n");
    // Owners: the invoking user's unless -a (rootless: the container's
    // 1000 is the 1000th of the user's subordinate ids).
    use std::os::unix::fs::MetadataExt;
    let uid = |s: &str| std::fs::metadata(p(s)).unwrap().uid();
    assert_eq!(uid("f"), me.map_or(0, |m| m.0));
    ok(&["cp", "-a", "cc:/d/one", &p("kept")]);
    match me {
        None => assert_eq!(uid("kept"), 1000),
        Some((u, _)) => assert!(uid("kept") != u && uid("kept") >= 1000, "{}", uid("kept")),
    }
    // Errors, as Docker says them.
    let o = berth(&root, &["cp", "cc:/nope", &p("x")]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Could not find the file /nope in container cc"),
        "{}",
        stderr(&o)
    );
    let o = berth(&root, &["cp", "cc:/d", &p("f")]);
    assert_eq!(code(&o), 1, "a dir over a file");
    let o = berth(&root, &["cp", "nosuch:/d", &p("y")]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    let o = berth(&root, &["cp", &p("f"), &p("g")]);
    assert_eq!(code(&o), 1, "no container named");
    // Into the stopped container, then seen by a copy out.
    mkdir("tree");
    mkdir("tree/in");
    write("tree/in/x", "x");
    ok(&["cp", &p("tree"), "cc:/d/sub"]);
    ok(&["cp", "cc:/d/sub/tree/in/x", &p("x-back")]);
    assert_eq!(std::fs::read_to_string(p("x-back")).unwrap(), "x");
    // -L on the host side: an absolute link's target is the host's.
    std::os::unix::fs::symlink(p("x-back"), p("hostlink")).unwrap();
    own("hostlink");
    ok(&["cp", "-L", &p("hostlink"), "cc:/d/followed"]);
    ok(&["cp", &p("hostlink"), "cc:/d/unfollowed"]);
    let o = berth(&root, &["cp", "cc:/d", "-"]);
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let kinds: Vec<(String, tar::EntryType)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("d/followed".into(), tar::EntryType::Regular)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("d/unfollowed".into(), tar::EntryType::Symlink)),
        "{kinds:?}"
    );
    let o = berth(&root, &["cp", &p("nope"), "cc:/d"]);
    assert_eq!(code(&o), 1);
    // Nothing stays mounted after copies of a stopped container.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(root.path().to_str().unwrap()), "{mounts}");
}

#[test]
fn cp_with_a_running_container_is_seen_at_once() {
    let root = Root::new();
    let _c = running(&root, "live", "echo hi > /tmp/greeting", &[]);
    let h = host_dir();
    let src = h.path().join("in.txt");
    std::fs::write(&src, "from the host").unwrap();
    let o = berth(&root, &["cp", src.to_str().unwrap(), "live:/tmp/"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --root {} cp live:/tmp - | tar -tf -",
            env!("CARGO_BIN_EXE_berth"),
            root.path().display()
        ))
        .output()
        .unwrap();
    let names = stdout(&o);
    assert!(
        names.contains("tmp/in.txt") && names.contains("tmp/greeting"),
        "{names}"
    );
    // The container's own mounts are seen: /etc/hostname is its own.
    let hn = h.path().join("hostname");
    let o = berth(&root, &["cp", "live:/etc/hostname", hn.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = &root.container_ids()[0];
    assert_eq!(std::fs::read_to_string(&hn).unwrap().trim(), &id[..12]);
}

#[test]
fn top_lists_the_containers_processes() {
    let root = Root::new();
    let _c = running(&root, "topc", "sleep 1000 &", &[]);
    let o = berth(&root, &["top", "topc"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("UID") && lines[0].contains("PID"),
        "{out}"
    );
    assert!(
        out.contains("sleep 1000") && out.contains("sleep 60"),
        "{out}"
    );
    assert_eq!(
        lines.len(),
        1 + 2,
        "sleep 60 (sh exec'd it) and sleep 1000: {out}"
    );
    let o = berth(&root, &["top", "topc", "-o", "pid,comm"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).lines().next().unwrap().contains("COMMAND"));
    stopped(&root, "gone", "true");
    let o = berth(&root, &["top", "gone"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Error response from daemon: container")
            && stderr(&o).contains("is not running"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn stats_shows_cpu_memory_and_pids() {
    let root = Root::new();
    // Busy for a while, then asleep: CPU was used, memory is in use.
    // (Rootless on cgroup v1 there is no limit to set.)
    let rootless = test_user().is_some();
    let limit: &[&str] = if rootless { &[] } else { &["--memory", "64m"] };
    let _c = running(
        &root,
        "busy",
        // Endless: dd of a fixed size ends within a second on a fast host.
        "(while :; do :; done &)",
        limit,
    );
    let o = berth(&root, &["stats", "--no-stream", "busy"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].contains("MEM USAGE / LIMIT"),
        "{out}"
    );
    let o = berth(
        &root,
        &["stats", "--no-stream", "--format", "{{json .}}", "busy"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cpu: f64 = v["CPUPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 0.0, "{v}");
    let mem = v["MemUsage"].as_str().unwrap();
    assert!(
        (rootless || mem.ends_with("/ 64MiB")) && !mem.starts_with("0B"),
        "{v}"
    );
    let pids: u64 = v["PIDs"].as_str().unwrap().parse().unwrap();
    assert!(pids >= 1, "{v}");
    assert_eq!(v["NetIO"], "0B / 0B", "{v}");
    assert_eq!(v["Name"], "busy");
    if common::cgroup_v2() {
        // All of it from the one cgroup on v2.
        assert!(v["BlockIO"].as_str().unwrap().contains(" / "), "{v}");
    }
}

/// `diff`: what a container added, changed and deleted, Docker's lines in
/// path order, without what berth prepares in every container (/etc/hosts
/// and the like); a replaced directory is changed, its new files added.
#[test]
fn diff_lists_what_the_container_changed() {
    let root = Root::new();
    stopped(
        &root,
        "changer",
        "mkdir /newdir; touch /newdir/f /tmp/t; rm /bin/ls; echo x >> /etc/passwd",
    );
    let o = berth(&root, &["diff", "changer"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /newdir\nA /newdir/f\nC /tmp\nA /tmp/t\n"
    );
    stopped(&root, "replacer", "rm -rf /tmp; mkdir /tmp; touch /tmp/new");
    let o = berth(&root, &["container", "diff", "replacer"]);
    assert_eq!(stdout(&o), "C /tmp\nA /tmp/new\n", "{}", stderr(&o));
    // A container that changed nothing has nothing to show.
    stopped(&root, "idle", "true");
    assert_eq!(stdout(&berth(&root, &["diff", "idle"])), "");
    let o = berth(&root, &["diff", "nope"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: No such container: nope"
    );
}

/// `export`: the container's whole filesystem as a tar, to stdout or
/// whole into `-o FILE`; a missing container leaves no file.
#[test]
fn export_writes_the_whole_filesystem() {
    let root = Root::new();
    stopped(&root, "exp", "echo hi > /hello; rm /bin/ls");
    let o = berth(&root, &["export", "exp"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let names = |tar_bytes: &[u8]| -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_string()
            })
            .collect()
    };
    let listed = names(&o.stdout);
    assert!(listed.iter().any(|n| n == "hello"), "{listed:?}");
    assert!(listed.iter().any(|n| n == "bin/busybox"), "{listed:?}");
    assert!(
        !listed.iter().any(|n| n == "bin/ls"),
        "a deleted file exported: {listed:?}"
    );
    let mut a = tar::Archive::new(&o.stdout[..]);
    let mut hello = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().ends_with("hello"))
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut hello, &mut text).unwrap();
    assert_eq!(text, "hi\n");

    let dir = host_dir();
    let file = dir.path().join("exp.tar");
    let o = berth(
        &root,
        &["container", "export", "-o", file.to_str().unwrap(), "exp"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(names(&std::fs::read(&file).unwrap()), listed);
    let missing = dir.path().join("missing.tar");
    let o = berth(&root, &["export", "-o", missing.to_str().unwrap(), "nope"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: No such container: nope"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a partial file was left"
    );
}
