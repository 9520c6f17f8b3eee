//! Detached containers end to end: `run -d` and its monitor, `create`,
//! `start`, `stop`, `kill`, `restart`, `wait`, `pause`, `attach`, restart
//! policies, and what is left behind (nothing) when a monitor or berth
//! itself is killed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `berth ARGS…`, output captured.
fn b(r: &Root, args: &[&str]) -> std::process::Output {
    r.berth().args(args).output().unwrap()
}

/// The container's record, as berth keeps it.
fn record(r: &Root, name: &str) -> serde_json::Value {
    let o = b(r, &["ps", "-aq", "--no-trunc"]);
    for id in stdout(&o).lines() {
        let p = r.path().join("containers").join(id).join("container.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        if v["name"] == name {
            return v;
        }
    }
    panic!("no container {name}");
}

/// `run -d ARGS…`: the id it printed (asserted to be a full one).
fn run_d(r: &Root, args: &[&str]) -> String {
    let o = b(r, &[&["run", "-d"][..], args].concat());
    assert_eq!(code(&o), 0, "run -d {args:?}: {}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "{id:?}");
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id:?}");
    id
}

/// What the container wrote to `stream`, from its json-file log.
fn logged(r: &Root, id: &str, stream: &str) -> String {
    let p = r
        .path()
        .join("containers")
        .join(id)
        .join(format!("{id}-json.log"));
    let text = std::fs::read_to_string(p).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["stream"] == stream)
        .map(|v| v["log"].as_str().unwrap().to_string())
        .collect()
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// No monitor of this root's is left (a monitor names the root in its
/// argv), and no process whose root is a container's of it.
fn assert_no_process_of(r: &Root) {
    let root = r.path().to_str().unwrap();
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let in_root = std::fs::read_link(e.path().join("root")).is_ok_and(|p| p.starts_with(root));
        if in_root || (cmd.contains(root) && cmd.contains(" monitor ")) {
            left.push(format!("{name}: {cmd}"));
        }
    }
    assert!(left.is_empty(), "processes left: {left:#?}");
}

/// Nothing of this root's containers is mounted.
fn assert_no_mounts(r: &Root) {
    // Under this root only: podman's and buildah's stores have a
    // `/containers/` in their paths too.
    let mine = r.path().display().to_string();
    let left: Vec<String> = host_mounts(r.path())
        .into_iter()
        .filter(|m| m.starts_with(&mine) && m.contains("/containers/"))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:#?}");
}

/// No hierarchy has a cgroup of container `id` left.
fn assert_no_cgroup(id: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = h.path().join("berth").join(id);
        assert!(!d.exists(), "{} left", d.display());
    }
}

#[test]
fn run_d_returns_at_once_and_the_monitor_logs_what_it_writes() {
    let r = Root::new();
    let t = Instant::now();
    let id = run_d(
        &r,
        &[
            "--name",
            "web",
            BUSYBOX,
            "sh",
            "-c",
            "echo out; echo err >&2; exec sleep 100",
        ],
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    let rec = record(&r, "web");
    assert_eq!(rec["status"], "running");
    let pid = rec["pid"].as_i64().unwrap();
    assert!(alive(pid));
    let ps = b(&r, &["ps"]);
    assert!(stdout(&ps).contains("Up "), "{}", stdout(&ps));
    wait_until("the log", 10, || logged(&r, &id, "stderr") == "err\n");
    assert_eq!(logged(&r, &id, "stdout"), "out\n");
    // The monitor is not the caller's child, and sleeps in a session of its own.
    let (mon, _) = (rec["supervisor"][0].as_i64().unwrap(), ());
    let stat = std::fs::read_to_string(format!("/proc/{mon}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        mon.to_string(),
        "monitor is its session's leader"
    );
    let o = b(&r, &["rm", "-f", "web"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    wait_until("the container and monitor to go", 10, || {
        !alive(pid) && !alive(mon)
    });
    assert!(host_mounts(r.path()).iter().all(|m| !m.contains(&id)));
}

#[test]
fn run_d_errors_come_back_with_docker_codes() {
    let r = Root::new();
    let o = b(&r, &["run", "-d", "--name", "nf", BUSYBOX, "/no/such/cmd"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/cmd"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "no id printed: {}", stdout(&o));
    let o = b(&r, &["run", "-d", BUSYBOX, "/etc/passwd"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    let o = b(&r, &["run", "-d", "127.0.0.1:5500/no-such-image:1"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let o = b(
        &r,
        &["run", "-d", "--restart", "sometimes", BUSYBOX, "true"],
    );
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("restart policy"), "{}", stderr(&o));
    // The failed one is recorded as Docker leaves it, and nothing runs.
    let rec = record(&r, "nf");
    assert_eq!(rec["exit_code"], 127);
    assert_eq!(rec["rootfs_mounted"], false);
    assert_no_mounts(&r);
}

#[test]
fn stop_sends_the_stop_signal_then_kills_after_the_timeout() {
    let r = Root::new();
    // Traps SIGTERM: ends at once with its own code.
    run_d(
        &r,
        &[
            "--name",
            "trap",
            BUSYBOX,
            "sh",
            "-c",
            "trap 'exit 7' TERM; while true; do sleep 0.1; done",
        ],
    );
    // PID 1 without a handler ignores SIGTERM: killed after -t.
    run_d(&r, &["--name", "deaf", BUSYBOX, "sleep", "100"]);
    // --stop-signal is honoured.
    run_d(
        &r,
        &[
            "--name",
            "usr1",
            "--stop-signal",
            "USR1",
            BUSYBOX,
            "sh",
            "-c",
            "trap 'exit 9' USR1; while true; do sleep 0.1; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let o = b(&r, &["stop", "trap"]);
    assert_eq!(stdout(&o), "trap\n", "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(record(&r, "trap")["exit_code"], 7);
    let t = Instant::now();
    let o = b(&r, &["stop", "-t", "1", "deaf"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(record(&r, "deaf")["exit_code"], 137);
    b(&r, &["stop", "usr1"]);
    assert_eq!(record(&r, "usr1")["exit_code"], 9);
    // Stopped containers stay stopped and unmounted.
    for n in ["trap", "deaf", "usr1"] {
        let rec = record(&r, n);
        assert_eq!(rec["status"], "exited");
        assert_eq!(rec["rootfs_mounted"], false);
    }
    assert_no_mounts(&r);
}

#[test]
fn start_runs_a_stopped_container_again_on_its_own_filesystem() {
    let r = Root::new();
    let o = b(
        &r,
        &[
            "create",
            "--name",
            "cc",
            BUSYBOX,
            "sh",
            "-c",
            "echo x >> /f; wc -l < /f",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert_eq!(record(&r, "cc")["status"], "created");
    assert!(host_mounts(r.path()).iter().all(|m| !m.contains(&id)));
    let o = b(&r, &["start", "cc"]);
    assert_eq!(stdout(&o), "cc\n", "{}", stderr(&o));
    assert_eq!(stdout(&b(&r, &["wait", "cc"])), "0\n");
    // start -a: attached before it runs, its code is berth's.
    let o = b(&r, &["start", "-a", "cc"]);
    assert_eq!(stdout(&o), "2\n", "{}", stderr(&o));
    assert_eq!(code(&o), 0);
    assert_eq!(logged(&r, &id, "stdout"), "1\n2\n");
    let o = b(
        &r,
        &[
            "create",
            "--name",
            "ee",
            BUSYBOX,
            "sh",
            "-c",
            "echo o; echo e >&2; exit 4",
        ],
    );
    assert_eq!(code(&o), 0);
    let o = b(&r, &["start", "-a", "ee"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str(), code(&o)),
        ("o\n", "e\n", 4)
    );
}

#[test]
fn restart_policies_count_back_off_and_end_with_stop() {
    let r = Root::new();
    let t = Instant::now();
    let id = run_d(
        &r,
        &[
            "--name",
            "flaky",
            "--restart",
            "on-failure:3",
            BUSYBOX,
            "sh",
            "-c",
            "echo run; exit 2",
        ],
    );
    let o = b(&r, &["wait", "flaky"]);
    assert_eq!(stdout(&o), "2\n", "{}", stderr(&o));
    // Three restarts after 100, 200 and 400 ms of back-off.
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    let rec = record(&r, "flaky");
    assert_eq!(rec["restart_count"], 3);
    assert_eq!(logged(&r, &id, "stdout"), "run\n".repeat(4));
    // on-failure does not restart a success.
    run_d(
        &r,
        &["--name", "fine", "--restart", "on-failure", BUSYBOX, "true"],
    );
    assert_eq!(stdout(&b(&r, &["wait", "fine"])), "0\n");
    assert_eq!(record(&r, "fine")["restart_count"], 0);
    // always: restarts until stopped, then stays stopped.
    run_d(
        &r,
        &[
            "--name",
            "always",
            "--restart",
            "always",
            BUSYBOX,
            "sh",
            "-c",
            "sleep 0.2",
        ],
    );
    wait_until("two restarts", 20, || {
        record(&r, "always")["restart_count"].as_u64().unwrap() >= 2
    });
    let o = b(&r, &["stop", "-t", "1", "always"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = record(&r, "always");
    assert_eq!(rec["status"], "exited", "{rec}");
    std::thread::sleep(Duration::from_millis(500));
    let rec = record(&r, "always");
    assert_eq!(rec["status"], "exited", "{rec}");
    assert_eq!(rec["rootfs_mounted"], false);
    let mon = rec["supervisor"][0].as_i64().unwrap();
    assert!(!alive(mon), "monitor ended");
    let o = b(
        &r,
        &["run", "-d", "--rm", "--restart", "always", BUSYBOX, "true"],
    );
    assert_eq!(code(&o), 125, "--rm and --restart conflict");
}

#[test]
fn a_killed_monitor_takes_its_container_and_the_next_command_records_it() {
    let r = Root::new();
    let id = run_d(&r, &["--name", "kk", BUSYBOX, "sleep", "100"]);
    let rec = record(&r, "kk");
    let (pid, mon) = (
        rec["pid"].as_i64().unwrap(),
        rec["supervisor"][0].as_i64().unwrap(),
    );
    assert!(alive(pid) && alive(mon));
    Command::new("kill")
        .args(["-9", &mon.to_string()])
        .status()
        .unwrap();
    wait_until("the container to die with its monitor", 10, || !alive(pid));
    let ps = b(&r, &["ps", "-a"]);
    assert!(stdout(&ps).contains("Exited (137)"), "{}", stdout(&ps));
    let rec = record(&r, "kk");
    assert_eq!(rec["status"], "exited");
    assert_eq!(rec["rootfs_mounted"], false);
    assert!(host_mounts(r.path()).iter().all(|m| !m.contains(&id)));
    // And it starts again.
    let o = b(&r, &["start", "kk"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(record(&r, "kk")["status"], "running");
}

#[test]
fn a_berth_killed_mid_run_d_leaves_nothing_unseen() {
    let r = Root::new();
    // Pulled first, so the kills land in the container's start.
    assert_eq!(code(&r.run(&["--rm", BUSYBOX, "true"])), 0);
    for delay_ms in [0u64, 5, 10, 20, 40, 80] {
        let mut child = r
            .berth()
            .args(["run", "-d", BUSYBOX, "sleep", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Whatever got far enough runs on, seen by ps; the rest is cleaned up
    // by the next command.
    std::thread::sleep(Duration::from_millis(300));
    let ids = r.container_ids();
    for id in &ids {
        let o = b(&r, &["rm", "-f", id]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    assert!(r.container_ids().is_empty());
    assert_no_mounts(&r);
    assert_no_process_of(&r);
}

#[test]
fn twenty_detached_containers_start_and_go_concurrently_leaving_nothing() {
    let r = Root::new();
    assert_eq!(code(&r.run(&["--rm", BUSYBOX, "true"])), 0);
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|_| s.spawn(|| run_d(&r, &[BUSYBOX, "sleep", "100"])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pids: Vec<i64> = ids
        .iter()
        .map(|id| {
            let p = r.path().join("containers").join(id).join("container.json");
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            v["pid"].as_i64().unwrap()
        })
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    std::thread::scope(|s| {
        for id in &ids {
            let r = &r;
            s.spawn(move || {
                let o = b(r, &["rm", "-f", id]);
                assert_eq!(code(&o), 0, "{}", stderr(&o));
            });
        }
    });
    assert!(r.container_ids().is_empty());
    assert!(pids.iter().all(|&p| !alive(p)));
    assert_no_mounts(&r);
    for id in &ids {
        assert_no_cgroup(id);
    }
    assert_no_process_of(&r);
}

#[test]
fn pause_freezes_every_process_until_unpause() {
    let r = Root::new();
    run_d(
        &r,
        &[
            "--name",
            "pp",
            BUSYBOX,
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
        ],
    );
    let count = |r: &Root| -> String {
        let rec = record(r, "pp");
        let pid = rec["pid"].as_i64().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/root/tmp/n")).unwrap_or_default()
    };
    std::thread::sleep(Duration::from_millis(300));
    if rootless() && !cgroup_v2() {
        let o = b(&r, &["pause", "pp"]);
        assert_eq!(code(&o), 1);
        assert!(
            stderr(&o).contains("pause needs cgroup v2"),
            "{}",
            stderr(&o)
        );
        return;
    }
    let o = b(&r, &["pause", "pp"]);
    assert_eq!(stdout(&o), "pp\n", "{}", stderr(&o));
    assert_eq!(record(&r, "pp")["paused"], true);
    std::thread::sleep(Duration::from_millis(100));
    let frozen = count(&r);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(&r), frozen, "nothing ran while paused");
    let o = b(&r, &["pause", "pp"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already paused"), "{}", stderr(&o));
    let o = b(&r, &["unpause", "pp"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    wait_until("it to run again", 5, || count(&r) != frozen);
    // A paused container still stops (thawed to take its SIGKILL).
    b(&r, &["pause", "pp"]);
    let o = b(&r, &["stop", "-t", "1", "pp"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(record(&r, "pp")["status"], "exited");
    // The freezer pause added goes with the rest of its cgroup.
    let id = stdout(&b(&r, &["ps", "-aq", "--no-trunc"]))
        .trim()
        .to_string();
    assert_no_cgroup(&id);
}

#[test]
fn attach_relays_output_and_input_and_gets_the_exit_code() {
    let r = Root::new();
    run_d(
        &r,
        &[
            "-i",
            "--name",
            "aa",
            BUSYBOX,
            "sh",
            "-c",
            "read line; echo got $line; echo bye >&2; exit 5",
        ],
    );
    let mut child = r
        .berth()
        .args(["attach", "aa"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "got hello\n");
    assert_eq!(stderr(&o), "bye\n");
    assert_eq!(code(&o), 5);
    let o = b(&r, &["attach", "aa"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("You cannot attach to a stopped container"),
        "{}",
        stderr(&o)
    );
}

/// Runs `cmd` with a terminal (script(1)), typing `keys` into it, each
/// after its pause.
fn typed(cmd: &str, keys: &[(u64, &[u8])]) -> std::process::Output {
    let mut child = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    for (ms, k) in keys {
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = std::io::Write::write_all(&mut input, k);
    }
    let out = child.wait_with_output().unwrap();
    drop(input);
    out
}

#[test]
fn run_it_detaches_with_ctrl_p_ctrl_q_and_attach_comes_back() {
    let r = Root::new();
    let cmd = format!(
        "{} --root {} run -it --name tt {} sh",
        berth_shell(),
        r.path().display(),
        BUSYBOX
    );
    let o = typed(&cmd, &[(1500, b"echo o''ne\r"), (500, b"\x10\x11")]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("one"), "{}", stdout(&o));
    assert_eq!(
        record(&r, "tt")["status"],
        "running",
        "detached, still running"
    );
    let cmd = format!("{} --root {} attach tt", berth_shell(), r.path().display());
    let o = typed(&cmd, &[(800, b"exit 6\r")]);
    assert_eq!(code(&o), 6, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(record(&r, "tt")["exit_code"], 6);
}

#[test]
fn boot_starts_what_the_restart_policies_ask_for_after_a_reboot() {
    let r = Root::new();
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("stopped-unless", "unless-stopped"),
        ("failure", "on-failure"),
        ("never", "no"),
    ] {
        run_d(
            &r,
            &["--name", name, "--restart", policy, BUSYBOX, "sleep", "100"],
        );
    }
    assert_eq!(code(&b(&r, &["stop", "-t", "0", "stopped-unless"])), 0);
    // A reboot: every monitor and container dies without a word.
    for name in ["always", "unless", "failure", "never"] {
        let mon = record(&r, name)["supervisor"][0].as_i64().unwrap();
        Command::new("kill")
            .args(["-9", &mon.to_string()])
            .status()
            .unwrap();
        wait_until("the monitor to die", 10, || !alive(mon));
    }
    let o = b(&r, &["boot"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let mut started: Vec<&str> = out.lines().collect();
    started.sort();
    assert_eq!(started, ["always", "failure", "unless"]);
    for (name, running) in [
        ("always", true),
        ("unless", true),
        ("failure", true),
        ("stopped-unless", false),
        ("never", false),
    ] {
        assert_eq!(record(&r, name)["status"] == "running", running, "{name}");
    }
}

#[test]
fn logs_give_back_what_the_container_wrote_byte_for_byte() {
    let r = Root::new();
    // ~100 MB: numbered lines on stdout, a different stream on stderr,
    // interleaved, with a last line that has no newline.
    let script = "i=0; while [ $i -lt 4 ]; do \
        seq 1 2500000 | sed \"s/^/out $i /\"; seq 1 100000 | sed \"s/^/err $i /\" >&2; i=$((i+1)); done; \
        printf 'tail-without-newline'";
    let id = run_d(&r, &["--name", "big", BUSYBOX, "sh", "-c", script]);
    assert_eq!(stdout(&b(&r, &["wait", "big"])), "0\n");
    let o = b(&r, &["logs", "big"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut want_out = String::new();
    let mut want_err = String::new();
    for i in 0..4 {
        for n in 1..=2_500_000 {
            want_out.push_str(&format!("out {i} {n}\n"));
        }
        for n in 1..=100_000 {
            want_err.push_str(&format!("err {i} {n}\n"));
        }
    }
    want_out.push_str("tail-without-newline");
    assert!(o.stdout.len() > 90_000_000, "{}", o.stdout.len());
    assert!(
        o.stdout == want_out.as_bytes(),
        "stdout differs ({} vs {} bytes)",
        o.stdout.len(),
        want_out.len()
    );
    assert!(
        o.stderr == want_err.as_bytes(),
        "stderr differs ({} vs {} bytes)",
        o.stderr.len(),
        want_err.len()
    );
    // The last two entries: stderr's last line, then stdout's unfinished one.
    let o = b(&r, &["logs", "--tail", "2", "big"]);
    assert_eq!(stdout(&o), "tail-without-newline");
    assert_eq!(stderr(&o), "err 3 100000\n");
    let _ = id;
}

#[test]
fn a_container_that_dies_ends_logs_follow_and_attach() {
    let r = Root::new();
    run_d(
        &r,
        &[
            "--name",
            "dies",
            BUSYBOX,
            "sh",
            "-c",
            "echo first; sleep 1; echo last; exit 3",
        ],
    );
    let follow = r
        .berth()
        .args(["logs", "-f", "dies"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let attach = r
        .berth()
        .args(["attach", "dies"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let f = follow.wait_with_output().unwrap();
    let a = attach.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(stdout(&f), "first\nlast\n");
    assert!(stdout(&a).ends_with("last\n"), "{}", stdout(&a));
    assert_eq!(code(&a), 3);
}

#[test]
fn run_dt_logs_the_pty_and_exec_reaches_the_container() {
    let r = Root::new();
    run_d(
        &r,
        &[
            "-t",
            "--name",
            "tty",
            BUSYBOX,
            "sh",
            "-c",
            "tty; echo on-a-pty; exec sleep 100",
        ],
    );
    wait_until("the pty's output in the log", 10, || {
        stdout(&b(&r, &["logs", "tty"])).contains("on-a-pty")
    });
    let logs = stdout(&b(&r, &["logs", "tty"]));
    assert!(logs.contains("/dev/pts/0"), "{logs}");
    let o = b(&r, &["exec", "tty", "cat", "/proc/1/cmdline"]);
    assert_eq!(stdout(&o), "sleep\u{0}100\u{0}");
    let o = b(&r, &["rm", "-f", "tty"]);
    assert_eq!(code(&o), 0);
}

#[test]
fn a_detached_rm_container_is_gone_once_it_exits() {
    let r = Root::new();
    let id = run_d(&r, &["--rm", BUSYBOX, "sh", "-c", "sleep 0.3; exit 3"]);
    wait_until("its removal", 20, || r.container_ids().is_empty());
    assert_no_mounts(&r);
    assert_no_cgroup(&id);
    // The monitor ends right after it removed the container.
    let mon = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&id))
        })
        .count();
    assert!(mon <= 1);
    wait_until("the monitor to end", 10, || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&id))
        })
    });
}

#[test]
fn wait_gives_the_exit_code_of_a_detached_rm_container_whose_record_goes() {
    let r = Root::new();
    let id = run_d(
        &r,
        &["--rm", BUSYBOX, "sh", "-c", "seq 1 50000; sleep 1; exit 3"],
    );
    let o = b(&r, &["wait", &id]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "3\n");
    wait_until("its removal", 20, || r.container_ids().is_empty());
}

#[test]
fn a_foreground_container_is_logged_and_starts_again_under_a_monitor() {
    let r = Root::new();
    let script = "echo out; echo err >&2; echo run >> /runs; exit 4";
    let o = b(
        &r,
        &["run", "-q", "--name", "fg", BUSYBOX, "sh", "-c", script],
    );
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!((stdout(&o), stderr(&o)), ("out\n".into(), "err\n".into()));
    let o = b(&r, &["logs", "fg"]);
    assert_eq!((stdout(&o), stderr(&o)), ("out\n".into(), "err\n".into()));
    // Docker's `start -a` of it: the same command on the same filesystem,
    // its output appended to the log.
    let o = b(&r, &["start", "-a", "fg"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    let o = b(&r, &["logs", "fg"]);
    assert_eq!(stdout(&o), "out\nout\n");
    assert_eq!(stderr(&o), "err\nerr\n");
    let o = b(&r, &["start", "-a", "fg"]);
    assert_eq!(code(&o), 4);
    let o = b(&r, &["run", "--rm", "-q", BUSYBOX, "true"]);
    assert_eq!(code(&o), 0);
    assert_eq!(record(&r, "fg")["exit_code"], 4);
    let o = b(&r, &["cp", "fg:/runs", "-"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        o.stdout.windows(12).any(|w| w == b"run\nrun\nrun\n"),
        "three runs on one filesystem"
    );
    // With --log-driver none nothing is kept.
    let o = b(
        &r,
        &[
            "run",
            "--name",
            "quiet",
            "--log-driver",
            "none",
            BUSYBOX,
            "echo",
            "x",
        ],
    );
    assert_eq!(stdout(&o), "x\n");
    let o = b(&r, &["logs", "quiet"]);
    assert_eq!(stdout(&o), "");
    assert_eq!(code(&b(&r, &["rm", "fg", "quiet"])), 0);
    assert!(r.container_ids().is_empty());
    assert_no_mounts(&r);
}
