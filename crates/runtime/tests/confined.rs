//! A runtime confined the way `docker run --cap-add SYS_ADMIN` confines
//! one: pivot_root refused (asked for, or by a seccomp filter). Run as root
//! on the host, each confinement simulated.

mod common;

use common::*;
use serde_json::json;
use std::process::{Output, Stdio};

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
