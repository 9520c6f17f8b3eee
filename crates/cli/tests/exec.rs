//! `berth exec`: a process joined to a running container sees what its
//! PID 1 sees and has no more than it has; Docker's flags, messages and
//! exit codes.

mod common;

use common::{BUSYBOX, Root, berth_shell, code, stderr, stdout};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running container `name` (`sh` waiting), and its berth process.
fn running(r: &Root, name: &str) -> Child {
    running_with(r, name, "echo up; exec sleep 300")
}

fn running_with(r: &Root, name: &str, script: &str) -> Child {
    let (child, line, _) = r.started(name, &[BUSYBOX, "sh", "-c", script]);
    assert_eq!(line, "up\n");
    child
}

fn stop(r: &Root, mut child: Child) {
    let _ = r.berth().args(["rm", "-f"]).arg(container_id(r)).output();
    let _ = child.kill();
    let _ = child.wait();
}

fn container_id(r: &Root) -> String {
    r.container_ids().first().cloned().unwrap_or_default()
}

/// `berth exec ARGS` with its output.
fn exec(r: &Root, args: &[&str]) -> std::process::Output {
    r.berth().arg("exec").args(args).output().unwrap()
}

/// What PID 1 and the exec'd process each see of themselves: namespaces,
/// mounts, hostname, cgroups, capabilities, seccomp and no_new_privs.
const SELF_VIEW: &str = "for n in pid mnt uts ipc net cgroup user; do readlink /proc/$P/ns/$n; done; \
     cat /proc/$P/mountinfo; hostname; cat /proc/$P/cgroup; \
     grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/$P/status";

#[test]
fn exec_sees_what_pid_1_sees_and_holds_no_more() {
    let r = Root::new();
    let c = running(&r, "same");
    let pid1 = exec(&r, &["same", "sh", "-c", &SELF_VIEW.replace("$P", "1")]);
    let own = exec(&r, &["same", "sh", "-c", &SELF_VIEW.replace("$P", "self")]);
    assert_eq!(code(&own), 0, "{}", stderr(&own));
    assert_eq!(stdout(&own), stdout(&pid1));
    let out = stdout(&own);
    for field in ["pid:[", "mnt:[", "Seccomp:\t2", "CapBnd:", "NoNewPrivs:"] {
        assert!(out.contains(field), "{field}: {out}");
    }
    // The exec'd process is in PID 1's PID namespace, not PID 1.
    let o = exec(&r, &["same", "sh", "-c", "echo $$"]);
    assert_ne!(stdout(&o).trim(), "1");
    assert!(stdout(&o).trim().parse::<u32>().unwrap() > 1);
    stop(&r, c);
}

#[test]
fn privileged_gets_the_full_bounding_set_but_never_more_than_the_hosts() {
    let r = Root::new();
    let c = running(&r, "priv");
    let caps = |args: &[&str]| {
        let o = exec(&r, args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| u64::from_str_radix(l.trim(), 16).unwrap())
            .collect::<Vec<_>>()
    };
    let script = "grep -E '^(CapBnd|CapEff):' /proc/self/status | cut -f2";
    let plain = caps(&["priv", "sh", "-c", script]);
    let privileged = caps(&["--privileged", "priv", "sh", "-c", script]);
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = host
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(privileged, vec![host_bnd, host_bnd], "{privileged:x?}");
    assert_ne!(plain[0], host_bnd, "the default set is smaller");
    // Seccomp stays the container's.
    let o = exec(
        &r,
        &[
            "--privileged",
            "priv",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ],
    );
    assert!(stdout(&o).contains('2'), "{}", stdout(&o));
    stop(&r, c);
}

#[test]
fn env_user_workdir_and_exit_codes() {
    let r = Root::new();
    let c = running(&r, "opts");
    let file = r.path().join("env.list");
    std::fs::write(&file, "# a comment\nFROM_FILE=yes\nBOTH=file\n").unwrap();
    let o = exec(
        &r,
        &[
            "-e",
            "ADDED=1",
            "-e",
            "BOTH=flag",
            "--env-file",
            file.to_str().unwrap(),
            "opts",
            "env",
        ],
    );
    let env = stdout(&o);
    for want in [
        "ADDED=1",
        "FROM_FILE=yes",
        "BOTH=flag",
        "PATH=",
        "HOSTNAME=",
    ] {
        assert!(env.lines().any(|l| l.starts_with(want)), "{want}: {env}");
    }
    assert!(!env.contains("TERM="), "no terminal, no TERM: {env}");

    let o = exec(&r, &["-u", "1000:1000", "opts", "id", "-u"]);
    assert_eq!(stdout(&o), "1000\n", "{}", stderr(&o));
    let o = exec(&r, &["-u", "1000:1000", "opts", "id", "-g"]);
    assert_eq!(stdout(&o), "1000\n");
    let o = exec(
        &r,
        &["-u", "nobody", "opts", "sh", "-c", "id -un; echo $HOME"],
    );
    assert_eq!(stdout(&o).lines().next(), Some("nobody"), "{}", stderr(&o));
    let o = exec(&r, &["-u", "nosuchuser", "opts", "true"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("nosuchuser"), "{}", stderr(&o));

    let o = exec(&r, &["-w", "/tmp", "opts", "pwd"]);
    assert_eq!(stdout(&o), "/tmp\n");

    let o = exec(&r, &["opts", "sh", "-c", "exit 3"]);
    assert_eq!(code(&o), 3);
    let o = exec(&r, &["opts", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code(&o), 143);
    let o = exec(&r, &["opts", "no-such-command"]);
    assert_eq!(code(&o), 127);
    assert!(
        stderr(&o).contains("executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    let o = exec(&r, &["opts", "/etc/passwd"]);
    assert_eq!(code(&o), 126);
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    stop(&r, c);
}

#[test]
fn stdin_is_relayed_with_dash_i_only() {
    let r = Root::new();
    let c = running(&r, "in");
    let mut child = r
        .berth()
        .args(["exec", "-i", "in", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "hi\n");
    // Without -i, stdin is /dev/null: cat ends at once.
    let o = r
        .berth()
        .args(["exec", "in", "cat"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""));
    stop(&r, c);
}

#[test]
fn dash_t_gives_a_pty_of_the_containers_own() {
    let r = Root::new();
    let c = running(&r, "tty");
    let cmd = format!(
        "{} --root {} exec -t tty sh -c 'tty; echo TERM=$TERM; ls /dev/pts'",
        berth_shell(),
        r.path().display(),
    );
    // script(1) gives berth a real pty as its terminal.
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env(
            "BERTH_CONFIG",
            common::workspace().join("crates/cli/tests/config.json"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o).replace('\r', "");
    assert!(out.contains("/dev/pts/0\n"), "{out}{}", stderr(&o));
    assert!(out.contains("TERM=xterm\n"), "{out}");
    stop(&r, c);
}

#[test]
fn detached_exec_returns_at_once_and_runs_inside() {
    let r = Root::new();
    let c = running(&r, "bg");
    let t0 = Instant::now();
    let o = exec(
        &r,
        &["-d", "bg", "sh", "-c", "sleep 1; echo done > /tmp/mark"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(t0.elapsed() < Duration::from_millis(900));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = exec(&r, &["bg", "cat", "/tmp/mark"]);
        if stdout(&o) == "done\n" {
            break;
        }
        assert!(Instant::now() < deadline, "the detached exec never wrote");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&r, c);
}

#[test]
fn exec_dies_with_the_containers_pid_1() {
    let r = Root::new();
    let c = running(&r, "dies");
    let mut e = r
        .berth()
        .args(["exec", "dies", "sleep", "300"])
        .spawn()
        .unwrap();
    // Until the exec'd sleep runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stdout(&exec(&r, &["dies", "ps"])).contains("sleep 300") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = r.berth().args(["inspect", "dies"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pid = v[0]["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = e.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "exec outlived PID 1");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(137));
    stop(&r, c);
}

#[test]
fn unknown_stopped_and_exited_containers_get_dockers_errors() {
    let r = Root::new();
    let o = exec(&r, &["nosuch", "true"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: nosuch\n"
    );
    let o = r.run(&["-q", "--name", "gone", BUSYBOX, "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = container_id(&r);
    let o = exec(&r, &["gone", "true"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        format!("Error response from daemon: container {id} is not running\n")
    );
}

#[test]
fn a_paused_container_and_a_terminal_without_one_are_refused() {
    let r = Root::new();
    let c = running(&r, "frozen");
    let id = container_id(&r);
    // -it needs a terminal to read from (stdin is /dev/null here).
    let o = exec(&r, &["-it", "frozen", "true"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "the input device is not a TTY\n");
    // As `pause` records it (the freezing is its business, not exec's).
    let record = r.path().join("containers").join(&id).join("container.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    v["paused"] = serde_json::Value::Bool(true);
    std::fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    let o = exec(&r, &["frozen", "true"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        format!(
            "Error response from daemon: container {id} is paused, unpause the container before exec\n"
        )
    );
    stop(&r, c);
}

/// A container whose /etc/passwd is a symlink to a host path: `-u` reads
/// the container's files only, never the host's the link names.
#[test]
fn user_lookup_never_follows_a_link_out_of_the_container() {
    let r = Root::new();
    let host_file = r.path().join("host-passwd");
    std::fs::write(&host_file, "hostonly:x:4242:4242::/hostonly:/bin/sh\n").unwrap();
    let script = format!(
        "ln -sf {} /etc/passwd && echo up; exec sleep 300",
        host_file.display()
    );
    let c = running_with(&r, "hostile", &script);
    let o = exec(&r, &["-u", "hostonly", "hostile", "id", "-u"]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stderr(&o).contains("unable to find user hostonly"),
        "{}",
        stderr(&o)
    );
    stop(&r, c);
}
