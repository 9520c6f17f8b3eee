//! `-v`, `--mount` and `--tmpfs` checked up front, as Docker and runc do:
//! each refusal is one line naming the flag, exit 125, before anything is
//! pulled, created or mounted.

mod common;

use common::*;

/// `berth run --rm FLAGS… busybox true`: (exit code, stderr).
fn refused(r: &Root, flags: &[&str]) -> (i32, String) {
    let o = r
        .berth()
        .args(["run", "--rm", "--pull", "never"])
        .args(flags)
        .args([BUSYBOX, "true"])
        .output()
        .unwrap();
    (code(&o), stderr(&o))
}

#[test]
fn bad_volume_destinations_and_modes_are_refused_up_front() {
    let r = Root::new();
    let src = r.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let s = src.display().to_string();
    let fresh = r.path().join("never-created");
    let f = fresh.display().to_string();
    for (flags, problem) in [
        (vec!["-v", &format!("{s}:/b:rw,ro")], "invalid mode: rw,ro"),
        (vec!["-v", &format!("{s}:/b:ro,ro")], "invalid mode: ro,ro"),
        (
            vec!["-v", &format!("{s}:/b:shared,rslave")],
            "invalid mode: shared,rslave",
        ),
        (
            vec!["-v", &format!("{s}:/b:bogus")],
            "unknown option: bogus",
        ),
        (vec!["-v", &format!("{s}:/proc")], "cannot mount over /proc"),
        (
            vec!["-v", &format!("{s}:/proc/sys/kernel")],
            "cannot mount inside /proc (only /proc/cpuinfo, /proc/diskstats, /proc/meminfo, \
             /proc/stat, /proc/swaps, /proc/uptime, /proc/loadavg, /proc/slabinfo, \
             /proc/net/dev, /proc/sys/kernel/ns_last_pid, /proc/sys/crypto/fips_enabled)",
        ),
        (vec!["-v", &format!("{s}:/sys")], "cannot mount over /sys"),
        (vec!["-v", &format!("{s}:/dev/")], "cannot mount over /dev"),
        (
            vec!["-v", &format!("{s}:/dev/pts")],
            "cannot mount over /dev/pts",
        ),
        (vec!["-v", &format!("{s}://")], "cannot mount over /"),
        (
            vec!["-v", &format!("{s}:data")],
            "container path must be absolute",
        ),
        (
            vec!["-v", &format!("{s}:/data/../../etc")],
            "container path must not contain ..",
        ),
        // The first refusal of a later flag leaves no host dir behind.
        (
            vec!["-v", &format!("{f}:/data"), "-v", &format!("{s}:/data/")],
            "duplicate mount point: /data",
        ),
        (
            vec!["-v", &format!("{f}:/data"), "--tmpfs", "/data"],
            "duplicate mount point: /data",
        ),
        (
            vec![
                "--mount",
                &format!("type=bind,src={s},dst=/x"),
                "--mount",
                "type=tmpfs,dst=/x/./",
            ],
            "duplicate mount point: /x",
        ),
        (
            vec!["--mount", &format!("type=bind,src={s},dst=/dev")],
            "cannot mount over /dev",
        ),
        (
            vec!["--mount", "type=tmpfs,dst=/proc"],
            "cannot mount over /proc",
        ),
        (
            vec![
                "--mount",
                &format!("type=bind,src={s},dst=/x,bind-propagation=odd"),
            ],
            "unknown bind-propagation: odd",
        ),
        (
            vec![
                "--mount",
                &format!("type=bind,src={s},dst=/x,tmpfs-size=1m"),
            ],
            "tmpfs-size is for type=tmpfs",
        ),
        (vec!["--tmpfs", "/dev/pts"], "cannot mount over /dev/pts"),
        (vec!["--tmpfs", "/t:size=1m,bogus"], "unknown option: bogus"),
    ] {
        let last = flags.len() - 1;
        let (flag, value) = (flags[last - 1], flags[last]);
        let want = format!("berth: {flag} {value}: {problem}\n");
        assert_eq!(refused(&r, &flags), (125, want), "{flags:?}");
    }
    assert!(
        !fresh.exists(),
        "a refused run created its volume's host dir"
    );
    assert!(r.container_ids().is_empty());
}

#[test]
fn what_docker_and_runc_allow_still_runs() {
    let r = Root::new();
    let up = r.path().join("uptime");
    std::fs::write(&up, "12.5 3.0\n").unwrap();
    let data = r.path().join("data");
    let o = r.run(&[
        "--rm",
        "-q",
        "-v",
        &format!("{}:/proc/uptime:ro", up.display()),
        "-v",
        &format!("{}:/data/:rw,rprivate,z", data.display()),
        "--tmpfs",
        "/dev/shm:size=1m,mode=1777",
        "--mount",
        "type=tmpfs,dst=/scratch,tmpfs-size=1m",
        BUSYBOX,
        "sh",
        "-c",
        "cat /proc/uptime; echo hi > /data/f; df /dev/shm | tail -1 | grep -c tmpfs",
    ]);
    assert_eq!(stdout(&o), "12.5 3.0\n1\n", "stderr: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "hi\n");
}
