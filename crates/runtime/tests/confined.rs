//! A runtime confined the way `docker run --cap-add SYS_ADMIN` confines
//! one: pivot_root refused (asked for, or by a seccomp filter), cgroups
//! disabled, or a read-only cgroup filesystem. Run as root on the host,
//! each confinement simulated.

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Mount points, in order, from a mountinfo.
fn points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .map(|l| l.split(' ').nth(4).unwrap().to_string())
        .collect()
}

fn no_pivot(b: &mut Bundle) {
    b.config["annotations"] = json!({ berth_runtime::NO_PIVOT: "true" });
}

const PROBE: &str = env!("CARGO_BIN_EXE_berth-syscall-probe");

/// What the container sees of its root, of its mounts, of `..` above its
/// root, and from the classic climb: chroot into a subdirectory while the
/// cwd stays outside it, then `..` as far as it goes.
const LOOK: &str = "ls /; echo ---; cat /proc/self/mountinfo; echo ---; \
                    cd /../../..; ls; echo ---; /probe chroot_climb";

fn look(o: &Output) -> Vec<String> {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let out = stdout(o);
    let parts: Vec<String> = out.split("---\n").map(str::to_string).collect();
    assert_eq!(parts.len(), 4, "{out}");
    parts
}

/// `b` run by the runtime under a seccomp filter that refuses pivot_root
/// with `errno` (EPERM as Docker's default profile does; ENOSYS, which the
/// runtime takes for no reason to fall back); the container inherits it.
fn run_refusing_pivot_root(b: &Bundle, errno: &str) -> Output {
    b.command(false)
        .env("BERTH_TEST_DENY_PIVOT_ROOT", errno)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn without_pivot_root_the_root_is_the_rootfs_and_dotdot_stays_inside() {
    let bundle = |nopivot: bool| {
        let mut b = Bundle::sh(LOOK);
        if nopivot {
            no_pivot(&mut b);
        }
        std::fs::write(b.rootfs().join("marker"), "").unwrap();
        std::fs::copy(PROBE, b.rootfs().join("probe")).unwrap();
        b
    };
    let p = look(&bundle(false).run());
    // Asked for, the switch never calls pivot_root: refused with ENOSYS,
    // which is no reason to fall back, it would fail the container.
    let m = look(&run_refusing_pivot_root(&bundle(true), "ENOSYS"));
    let o = run_refusing_pivot_root(&bundle(false), "ENOSYS");
    assert_eq!(
        o.status.code(),
        Some(125),
        "the filter bites: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("pivot_root"), "{}", stderr(&o));
    for parts in [&p, &m] {
        // The rootfs, from / and from as far up as `..` goes.
        for i in [0, 2] {
            let entries: Vec<&str> = parts[i].lines().collect();
            assert!(entries.contains(&"marker"), "part {i}: {parts:?}");
            assert!(
                !entries.contains(&"work") && !entries.contains(&"usr"),
                "part {i}: {parts:?}"
            );
        }
        assert_eq!(parts[3], "chroot_climb=OK\n", "{parts:?}");
    }
    // The same mounts as a pivoted container: none of the old root's, one /.
    assert_eq!(points(&m[1]), points(&p[1]));
    assert_eq!(points(&m[1]).iter().filter(|p| *p == "/").count(), 1);
}

#[test]
fn without_pivot_root_the_old_root_keeps_no_mount() {
    // With CAP_SYS_ADMIN a container can unmount its root and setns into
    // its own mount namespace, which then lands on the old root (the
    // documented limit of the no-pivot switch, as of runc's). What it
    // finds there is the bare host filesystem: none of the host's mounts
    // (/proc, /sys ...) stayed on it.
    let mut b = Bundle::new(&["/probe", "old_root_bare"]);
    std::fs::copy(PROBE, b.rootfs().join("probe")).unwrap();
    no_pivot(&mut b);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
    }
    let o = b.run();
    assert_eq!(stdout(&o), "old_root_bare=OK\n", "{}", stderr(&o));
}

#[test]
fn pivot_root_refused_by_seccomp_falls_back_to_moving_the_root() {
    let b = Bundle::sh("ls /; cat /proc/self/mountinfo");
    std::fs::write(b.rootfs().join("marker"), "").unwrap();
    let o = run_refusing_pivot_root(&b, "EPERM");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l == "marker"), "{out}");
    assert!(!out.lines().any(|l| l == "work" || l == "usr"), "{out}");
    assert_eq!(stderr(&o), "");
}

/// The leaf cgroup directories of bundle `b` in every hierarchy.
fn leaf_dirs(b: &Bundle) -> Vec<PathBuf> {
    let rel = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        out.push(h.path().join(&rel));
    }
    out.push(Path::new("/sys/fs/cgroup").join(&rel));
    out.into_iter().filter(|d| d.exists()).collect()
}

fn memory_limit(b: &mut Bundle) {
    b.config["linux"]["resources"] = json!({ "memory": { "limit": 64u64 << 20 } });
}

fn disabled(b: &mut Bundle) {
    b.config["annotations"] = json!({ berth_runtime::cgroups::MODE: "disabled" });
}

/// Run `b` (a script that prints a line, then sleeps) and look at it from
/// the host while it runs: its /proc/PID/cgroup and the leaf cgroup
/// directories made for it; then the container's output.
fn while_running(b: &Bundle) -> (String, Vec<PathBuf>, Output) {
    let pidfile = b.path().join("pid");
    let mut cmd = b.command(false);
    cmd.env("BERTH_TEST_PIDFILE", &pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let pid = wait_for_pidfile(&pidfile);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let dirs = leaf_dirs(b);
    // SAFETY: plain kill of the container's PID 1.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut o = child.wait_with_output().unwrap();
    o.stdout = [line.into_bytes(), o.stdout].concat();
    (cgroup, dirs, o)
}

#[test]
fn cgroups_disabled_keep_the_container_in_its_creators_cgroups() {
    let mut b = Bundle::sh("ls /sys/fs/cgroup | tr '\\n' ' '; echo; exec sleep 600");
    disabled(&mut b);
    let (theirs, dirs, o) = while_running(&b);
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(theirs, mine, "{}", stderr(&o));
    assert_eq!(dirs, Vec::<PathBuf>::new());
    // Its own view of cgroups still works: the hierarchies (v1) or the
    // unified tree (v2), rooted at the creator's cgroup.
    let out = stdout(&o);
    let want = if Path::new("/sys/fs/cgroup/memory").is_dir() {
        " memory "
    } else {
        " cgroup.procs "
    };
    assert!(format!(" {out}").contains(want), "{out}{}", stderr(&o));
}

#[test]
fn cgroups_disabled_with_the_used_annotation_mount_the_used_hierarchies() {
    if !Path::new("/sys/fs/cgroup/devices").is_dir() {
        eprintln!("no cgroup v1 devices hierarchy: skipped");
        return;
    }
    // The v1 `used` annotation with no cgroup of its own: /sys/fs/cgroup
    // still shows the hierarchies of the controllers its resources name
    // (here the device rules' alone), rooted at its creator's cgroups.
    let mut b = Bundle::sh("ls /sys/fs/cgroup | tr '\\n' ' '; echo; exec sleep 600");
    b.config["annotations"] = json!({
        berth_runtime::cgroups::MODE: "disabled",
        berth_runtime::cgroups::V1_HIERARCHIES: "used",
    });
    b.config["linux"]["resources"] =
        json!({ "devices": [{"allow": true, "type": "a", "access": "rwm"}] });
    let (theirs, dirs, o) = while_running(&b);
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(theirs, mine, "{}", stderr(&o));
    assert_eq!(dirs, Vec::<PathBuf>::new());
    assert_eq!(stdout(&o), "devices \n", "{}", stderr(&o));
}

#[test]
fn cgroups_disabled_refuse_resource_limits() {
    let mut b = Bundle::new(&["true"]);
    disabled(&mut b);
    memory_limit(&mut b);
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(
        err.contains("cgroup: resource limits need a cgroup, and cgroups are disabled"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(leaf_dirs(&b), Vec::<PathBuf>::new());
    assert!(!b.state_dir().join("c1").exists());
}

/// The cgroup hierarchies berth makes cgroups in (mount points, in
/// mountinfo order): v1's where there are any (a hybrid host's cgroup2
/// mount holds no limits), else v2's.
fn hierarchies() -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let of = |fstype: &str| -> Vec<String> {
        mountinfo
            .lines()
            .filter(|l| l.contains(&format!(" - {fstype} ")))
            .map(|l| l.split(' ').nth(4).unwrap().to_string())
            .collect()
    };
    let v1 = of("cgroup");
    if v1.is_empty() { of("cgroup2") } else { v1 }
}

/// Run bundle `b` in a mount namespace of its own where the cgroup
/// hierarchies `ro` are mounted read-only (as Docker mounts them).
fn run_with_read_only(b: &Bundle, ro: &[String]) -> Output {
    b.write_config();
    let mut script = String::from("set -e; ");
    for h in ro {
        script.push_str(&format!("mount -o remount,bind,ro {h}; "));
    }
    script.push_str(&format!(
        "exec {HELPER} run {} c1 {}",
        b.state_dir().display(),
        b.path().display()
    ));
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn read_only_cgroups_run_a_container_without_limits() {
    let all = hierarchies();
    // Every hierarchy read-only, and only the last one made (so the
    // container's directories exist in the others when it fails).
    for ro in [all.clone(), all[all.len() - 1..].to_vec()] {
        let b = Bundle::sh("cat /proc/self/cgroup >/dev/null; echo ran");
        let o = run_with_read_only(&b, &ro);
        assert_eq!(stdout(&o), "ran\n", "{ro:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "");
        assert_eq!(leaf_dirs(&b), Vec::<PathBuf>::new(), "{ro:?}");
    }
}

#[test]
fn read_only_cgroups_refuse_limits_naming_the_hierarchy() {
    let all = hierarchies();
    for ro in [all.clone(), all[all.len() - 1..].to_vec()] {
        let mut b = Bundle::new(&["true"]);
        memory_limit(&mut b);
        let o = run_with_read_only(&b, &ro);
        assert_eq!(o.status.code(), Some(125), "{ro:?}: {}", stderr(&o));
        let err = stderr(&o);
        let named = ro.iter().any(|h| {
            err.contains(&format!(
                "cgroup: resource limits need a writable cgroup hierarchy, and {h} is read-only"
            ))
        });
        assert!(named, "{ro:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(leaf_dirs(&b), Vec::<PathBuf>::new(), "{ro:?}");
    }
}
