//! berth where it gets less than a whole host: cgroups disabled or a
//! read-only cgroup filesystem (as inside a `docker run --cap-add
//! SYS_ADMIN` container), and `berth info` saying what it adapted. The
//! full in-container runs are in incontainer.rs; these need only the host.

mod common;

use std::process::{Command, Output};

use common::*;

/// `cmd` run in a private mount namespace whose cgroup filesystems are
/// all remounted read-only: what berth finds inside a Docker container.
fn with_readonly_cgroupfs(cmd: Command) -> Output {
    let script = "for m in $(awk '$3 ~ /^cgroup/ || $2 == \"/sys/fs/cgroup\" {print $2}' /proc/mounts); do \
                  mount -o remount,bind,ro \"$m\" || exit 99; done; exec \"$@\"";
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"]);
    c.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(std::process::Stdio::null());
    c.output().unwrap()
}

/// The cgroup paths of the calling process, as /proc/self/cgroup lists them.
fn own_cgroups() -> String {
    std::fs::read_to_string("/proc/self/cgroup").unwrap()
}

/// Every cgroup directory named `berth/<id>` in any hierarchy.
fn cgroup_dirs_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in ["/sys/fs/cgroup"] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.push(root.into());
        for d in dirs {
            let p = d.join("berth").join(id);
            if p.exists() {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn cgroups_disabled_keeps_the_container_in_berths_cgroup() {
    if rootless() {
        return;
    }
    let r = Root::new();
    let out = r.run(&[
        "-q",
        "--cgroups",
        "disabled",
        "--name",
        "nocg",
        BUSYBOX,
        "cat",
        "/proc/self/cgroup",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    // Seen from inside, through a cgroup namespace rooted where it is.
    for line in stdout(&out).lines() {
        assert!(line.ends_with(":/"), "{line}");
    }
    let inspect = r.berth().args(["inspect", "nocg"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let id = v[0]["Id"].as_str().unwrap();
    assert!(
        cgroup_dirs_of(id).is_empty(),
        "a cgroup was made: {:?}",
        cgroup_dirs_of(id)
    );
}

#[test]
fn cgroups_disabled_runs_in_the_callers_cgroup_seen_from_the_host() {
    if rootless() {
        return;
    }
    let r = Root::new();
    let (mut child, _line, v) = r.started(
        "nocg-live",
        &[
            "--cgroups",
            "disabled",
            BUSYBOX,
            "sh",
            "-c",
            "echo up; exec sleep 600",
        ],
    );
    let pid = v["State"]["Pid"].as_i64().unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(theirs, own_cgroups(), "the container left berth's cgroups");
    assert_eq!(
        code(&r.berth().args(["rm", "-f", "nocg-live"]).output().unwrap()),
        0
    );
    let _ = child.wait();
}

#[test]
fn cgroups_disabled_refuses_limits_before_anything_is_made() {
    if rootless() {
        return;
    }
    let r = Root::new();
    for flags in [
        &["--cgroups", "disabled", "--memory", "64m"][..],
        &["--cgroups", "disabled", "--pids-limit", "10"][..],
        &["--cgroups", "disabled", "--cgroup-parent", "/x"][..],
    ] {
        let mut args = flags.to_vec();
        args.extend_from_slice(&[BUSYBOX, "true"]);
        let out = r.run(&args);
        assert_eq!(code(&out), 125, "{flags:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(flags[2]) && err.contains("disabled"), "{err}");
    }
    assert!(r.container_ids().is_empty());
}

#[test]
fn the_config_file_can_disable_cgroups() {
    if rootless() {
        return;
    }
    let r = Root::new();
    let config = r.path().join("nocg.json");
    std::fs::write(
        &config,
        r#"{"cgroups": "disabled", "default-network": "none"}"#,
    )
    .unwrap();
    let out = r
        .berth()
        .env("BERTH_CONFIG", &config)
        .args(["run", "--memory", "64m", BUSYBOX, "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("disabled"), "{}", stderr(&out));
    // The flag wins over the file.
    let out = r
        .berth()
        .env("BERTH_CONFIG", &config)
        .args([
            "run",
            "--cgroups",
            "enabled",
            "--memory",
            "64m",
            BUSYBOX,
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn without_a_device_cgroup_a_container_may_not_make_device_nodes_unless_asked() {
    if rootless() {
        return;
    }
    let r = Root::new();
    let mknod = [BUSYBOX, "sh", "-c", "mknod /tmp/mem c 1 1 && echo made"];
    // With its own device cgroup, Docker's default capability set has MKNOD.
    let out = r.run(&[&["--rm"][..], &mknod].concat());
    assert_eq!(stdout(&out), "made\n", "{}", stderr(&out));
    let out = r.run(&[&["--rm", "--cgroups", "disabled"][..], &mknod].concat());
    assert_ne!(code(&out), 0);
    assert_eq!(stdout(&out), "");
    let out = r.run(
        &[
            &["--rm", "--cgroups", "disabled", "--cap-add", "MKNOD"][..],
            &mknod,
        ]
        .concat(),
    );
    assert_eq!(stdout(&out), "made\n", "{}", stderr(&out));
}

#[test]
fn without_a_device_cgroup_device_nodes_on_the_root_do_not_open() {
    if rootless() {
        return;
    }
    let r = Root::new();
    // /dev/null's numbers, made on the root filesystem (an image could ship
    // any node there; /dev itself is a mount of its own).
    let script = [
        BUSYBOX,
        "sh",
        "-c",
        "mknod /n c 1 3 && echo x > /n && echo opened; echo x > /dev/null && echo dev",
    ];
    let out = r.run(&[&["--rm", "-q"][..], &script].concat());
    assert_eq!(stdout(&out), "opened\ndev\n", "{}", stderr(&out));
    let out = r.run(
        &[
            &["--rm", "-q", "--cgroups", "disabled", "--cap-add", "MKNOD"][..],
            &script,
        ]
        .concat(),
    );
    assert_eq!(stdout(&out), "dev\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_says_what_berth_runs_on_and_what_it_adapted() {
    if rootless() {
        return;
    }
    let r = Root::new();
    let out = r.berth().arg("info").output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for key in [
        "Storage Driver: ",
        "Cgroup Version: ",
        "Cgroups: enabled",
        "Kernel Version: ",
    ] {
        assert!(text.contains(key), "no {key:?} in:\n{text}");
    }
    let out = r
        .berth()
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Driver"], "overlay");
    assert_eq!(v["Rootless"], false);

    // With a read-only cgroup filesystem, it says so and what follows.
    let mut cmd = r.berth();
    cmd.args(["info", "--format", "json"]);
    let out = with_readonly_cgroupfs(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["CgroupDriver"], "none");
    let adapted = v["Adapted"].to_string();
    assert!(adapted.contains("read-only"), "{adapted}");
}
