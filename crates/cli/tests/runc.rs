//! berth-runc, berth's runc-compatible command line (issue 15), driven
//! directly and by real engines: containerd's runc shim through `ctr`,
//! dockerd (`--runtime berth`) and podman (`--runtime <berth-runc>`). Where
//! an engine runs a container with berth, the same command with runc is
//! the reference: output and exit codes must match.
//!
//! The engines come from Debian and are started once per test binary by
//! the fixture scripts (private sockets and state). Containers get a
//! network namespace with loopback only, or none; no packet leaves.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::peers::*;
use common::*;

/// A copy of the berth under test named berth-runc (cargo may replace
/// the built file while engines still run it), once per test binary; the
/// fixture dockerd's runtime link points at it. Copies of test binaries
/// that have ended are removed first.
fn runtime() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let base = Path::new("/var/tmp/berth-tests");
        std::fs::create_dir_all(base).unwrap();
        for e in std::fs::read_dir(base).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("runc-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(format!("runc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("berth-runc");
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), &exe).unwrap();
        exe
    })
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// berth-runc with a root of this test's own.
struct Runc {
    root: tempfile::TempDir,
    log: PathBuf,
}

impl Runc {
    fn new() -> Runc {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log.json");
        Runc { root, log }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(self.root.path())
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// A command whose container (or detached exec) inherits its stdio,
    /// as runc's does: files, not pipes, whose readers would wait for the
    /// container to close them. Its stdout, stderr and status.
    fn detached(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd(args)
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap();
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    fn detached_ok(&self, args: &[&str]) {
        let o = self.detached(args);
        assert!(o.status.success(), "berth-runc {args:?}: {}", stderr(&o));
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "berth-runc {args:?}: {}", stderr(&o));
        stdout(&o)
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// The last line of --log, as containerd reads it on a failure.
    fn last_log(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.log).unwrap();
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    }
}

/// A bundle: busybox and its applets, config.json from `berth-runc spec`
/// with `args` and `terminal` set.
fn bundle(args: &[&str], terminal: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "sleep", "ls", "true", "readlink", "id", "grep",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let o = Command::new(runtime())
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "spec: {}", stderr(&o));
    let path = dir.path().join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["terminal"] = serde_json::json!(terminal);
    std::fs::write(&path, spec.to_string()).unwrap();
    dir
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// The whole lifecycle as a shim drives it, with runc's words where shims
/// match them and the error as the last JSON line of --log.
#[test]
fn lifecycle_in_runcs_words() {
    let r = Runc::new();
    let b = bundle(&["sleep", "60"], false);
    let bp = b.path().to_str().unwrap();
    let pid_file = b.path().join("init.pid");
    r.detached_ok(&[
        "create",
        "--bundle",
        bp,
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    // The pid file is there when create returns, and names the parked process.
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let st = r.state("c1");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["id"], "c1");
    assert_eq!(st["bundle"], bp);
    assert_eq!(st["rootfs"], format!("{bp}/rootfs"));
    assert!(st["created"].as_str().unwrap().ends_with('Z'), "{st}");
    // A second create of the id is refused.
    let o = r.detached(&["create", "--bundle", bp, "c1"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));

    r.ok(&["start", "c1"]);
    assert_eq!(r.state("c1")["status"], "running");
    let listed: serde_json::Value =
        serde_json::from_str(&r.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(listed[0]["id"], "c1");

    // exec, attached (exit code through) and detached (pid file).
    let o = r.run(&["exec", "c1", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (4, "in-exec\n"));
    // runc's exec flags change the container's own process.
    let o = r.run(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/bin",
        "--user",
        "1000:1001",
        "c1",
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]);
    assert_eq!(stdout(&o), "bar\n/bin\n1000\n1001\n", "{}", stderr(&o));
    let caps = |extra: &[&str]| {
        let mut a = vec!["exec"];
        a.extend(extra);
        a.extend(["c1", "grep", "CapEff", "/proc/self/status"]);
        u64::from_str_radix(r.ok(&a).trim().rsplit('\t').next().unwrap(), 16).unwrap()
    };
    const CAP_NET_ADMIN: u64 = 1 << 12;
    assert_eq!(caps(&[]) & CAP_NET_ADMIN, 0);
    assert_ne!(caps(&["--cap", "CAP_NET_ADMIN"]) & CAP_NET_ADMIN, 0);
    let o = r.run(&[
        "exec",
        "--no-new-privs",
        "c1",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(stdout(&o).contains("NoNewPrivs:\t1"), "{}", stdout(&o));

    let epid = b.path().join("exec.pid");
    r.detached_ok(&[
        "exec",
        "--detach",
        "--pid-file",
        epid.to_str().unwrap(),
        "c1",
        "sleep",
        "60",
    ]);
    let epid: i32 = std::fs::read_to_string(&epid).unwrap().parse().unwrap();
    let pids: Vec<i32> = serde_json::from_str(&r.ok(&["ps", "--format", "json", "c1"])).unwrap();
    assert!(pids.contains(&pid) && pids.contains(&epid), "{pids:?}");

    // update, as the stats event reads the cgroup back.
    r.ok(&["update", "--memory", "64m", "--pids-limit", "50", "c1"]);
    let ev: serde_json::Value = serde_json::from_str(&r.ok(&["events", "--stats", "c1"])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], "c1");
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 64 << 20, "{ev}");
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 2, "{ev}");

    r.ok(&["pause", "c1"]);
    assert_eq!(r.state("c1")["status"], "paused");
    let o = r.run(&["exec", "c1", "true"]);
    assert!(stderr(&o).contains("paused"), "{}", stderr(&o));
    r.ok(&["resume", "c1"]);
    assert_eq!(r.state("c1")["status"], "running");

    // kill --all reaches the exec'd process too; then the container stops.
    r.ok(&["kill", "--all", "c1", "KILL"]);
    wait_until("c1 to stop", || r.state("c1")["status"] == "stopped");
    assert_eq!(r.state("c1")["pid"], 0);
    // runc's answer to a kill after exit, which containerd's shim matches.
    let o = r.run(&["kill", "c1", "9"]);
    assert_eq!(code(&o), 1);
    assert_eq!(r.last_log()["msg"], "container not running");
    assert_eq!(r.last_log()["level"], "error");
    r.ok(&["delete", "c1"]);
    let o = r.run(&["delete", "c1"]);
    assert_eq!(code(&o), 1);
    assert!(
        r.last_log()["msg"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    r.ok(&["delete", "--force", "c1"]);
    assert_eq!(r.ok(&["list", "--format", "json"]).trim(), "null");
}

/// `run` in the foreground gives the container's exit code and output;
/// `--preserve-fds` hands fd 3 in; a tty without a console socket is refused.
#[test]
fn run_exit_codes_and_kept_fds() {
    let r = Runc::new();
    let b = bundle(&["sh", "-c", "echo out; echo err >&2; exit 3"], false);
    let bp = b.path().to_str().unwrap();
    let o = r.run(&["run", "--bundle", bp, "r1"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert!(!r.root.path().join("containers/r1").exists());

    // fd 3 of the caller is the container's fd 3; fd 4 is not kept.
    // The shell's own fds ($$, and `; true` so that the shell does not
    // become ls, whose directory fd would be listed too).
    let b = bundle(&["sh", "-c", "echo kept >&3; ls /proc/$$/fd; true"], false);
    let bp = b.path().to_str().unwrap();
    let kept = b.path().join("kept");
    let f = std::fs::File::create(&kept).unwrap();
    let extra = std::fs::File::open("/dev/null").unwrap();
    let mut c = r.cmd(&["run", "--preserve-fds", "1", "--bundle", bp, "r2"]);
    let (fd3, fd4) = (
        std::os::fd::AsRawFd::as_raw_fd(&f),
        std::os::fd::AsRawFd::as_raw_fd(&extra),
    );
    // SAFETY: fcntl and dup2 in the child before exec, async-signal-safe.
    // Both go high first: either may already be 3 or 4, and a dup2 onto
    // itself would keep its close-on-exec flag.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            let a = libc::fcntl(fd3, libc::F_DUPFD, 100);
            let b = libc::fcntl(fd4, libc::F_DUPFD, 100);
            if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "kept\n");
    let fds: Vec<String> = stdout(&o).split_whitespace().map(String::from).collect();
    assert!(fds.contains(&"3".to_string()), "{fds:?}");
    assert!(
        !fds.contains(&"4".to_string()),
        "fd 4 leaked into the container: {fds:?}"
    );
    // Socket activation: LISTEN_FDS fds are kept and the container told.
    let b2 = bundle(
        &["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; echo on3 >&3"],
        false,
    );
    let kept2 = b2.path().join("kept");
    let f2 = std::fs::File::create(&kept2).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f2);
    let mut c = r.cmd(&["run", "--bundle", b2.path().to_str().unwrap(), "r4"]);
    c.env("LISTEN_FDS", "1");
    // SAFETY: fcntl and dup2 before exec, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            let a = libc::fcntl(fd, libc::F_DUPFD, 100);
            if a < 0 || libc::dup2(a, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(stdout(&o), "1 1\n", "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&kept2).unwrap(), "on3\n");
    // A gap in the kept fds is refused rather than filled by berth's own.
    let o = r.run(&["run", "--preserve-fds", "2", "--bundle", bp, "r3"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not open"), "{}", stderr(&o));

    let b = bundle(&["true"], true);
    let o = r.detached(&["create", "--bundle", b.path().to_str().unwrap(), "t1"]);
    assert_eq!(code(&o), 1);
    assert!(
        r.last_log()["msg"]
            .as_str()
            .unwrap()
            .contains("console socket")
    );
    assert!(!r.root.path().join("containers/t1").exists());
}

/// With process.terminal the pty master arrives on --console-socket, as
/// containerd's shim and conmon take it, and the command's tty is its slave.
#[test]
fn console_socket_gets_the_pty() {
    use std::os::fd::{AsFd, OwnedFd};
    let r = Runc::new();
    let b = bundle(&["sh", "-c", "readlink /proc/self/fd/0; echo on-tty"], true);
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let bp = b.path().to_str().unwrap().to_string();
    let sp = sock.to_str().unwrap().to_string();
    r.ok(&["create", "--bundle", &bp, "--console-socket", &sp, "p1"]);
    let (conn, _) = listener.accept().unwrap();
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let msg = rustix::net::recvmsg(
        &conn,
        &mut iov,
        &mut control,
        rustix::net::RecvFlags::empty(),
    )
    .unwrap();
    assert_eq!(&name[..msg.bytes], b"/dev/ptmx");
    let mut master: Option<OwnedFd> = None;
    for m in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = m {
            master = fds.next();
        }
    }
    let master = master.expect("a pty master over the socket");
    r.ok(&["start", "p1"]);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    // Read until the slave closes (EIO) or the text is there.
    while !String::from_utf8_lossy(&out).contains("on-tty") {
        match rustix::io::read(master.as_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0\r\non-tty"), "{text:?}");
    wait_until("p1 to stop", || r.state("p1")["status"] == "stopped");
    r.ok(&["delete", "p1"]);
}

/// A container id unique to this test binary and call.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Output without the engines' own log lines (`time=… level=…`), which
/// carry timestamps.
fn without_log_lines(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains(" level="))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn ctr(args: &[&str]) -> Vec<String> {
    let f = containerd_env();
    let mut v = strings(&[
        "ctr",
        "-a",
        f.get("BERTH_CONTAINERD_SOCK"),
        "-n",
        f.get("BERTH_CONTAINERD_NS"),
    ]);
    v.extend(strings(args));
    v
}

fn ctr_run(id: &str, berth: bool, extra: &[&str], cmd: &[&str]) -> Output {
    let image = containerd_env().get("BERTH_CONTAINERD_IMAGE").to_string();
    let mut args = vec!["run", "--rm"];
    let rt = runtime().to_str().unwrap().to_string();
    if berth {
        args.extend(["--runc-binary", &rt]);
    }
    args.extend(extra);
    args.extend([image.as_str(), id]);
    args.extend(cmd);
    output_within(&ctr(&args), 60)
}

/// `ctr run --rm` with berth and with runc: the same output, the same
/// exit codes, the same view from inside (capabilities, no_new_privs,
/// seccomp, cgroup, mounts of /dev).
#[test]
fn containerd_runs_tasks_as_runc_does() {
    let cases: [&[&str]; 4] = [
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        &["true"],
        &[
            "sh",
            "-c",
            "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
             grep -E 'memory|pids' /proc/self/cgroup; ls /dev; id",
        ],
        &["sh", "-c", "kill -TERM $$; sleep 1; echo survived"],
    ];
    for cmd in cases {
        let id = unique("ctr");
        let b = ctr_run(&id, true, &[], cmd);
        let r = ctr_run(&id, false, &[], cmd);
        assert_eq!(
            code(&b),
            code(&r),
            "{cmd:?}: berth {} / runc {}",
            stderr(&b),
            stderr(&r)
        );
        assert_eq!(stdout(&b), stdout(&r), "{cmd:?}");
        assert_eq!(
            without_log_lines(&stderr(&b)),
            without_log_lines(&stderr(&r)),
            "{cmd:?}"
        );
    }
    // A command that is not there fails the same way.
    let id = unique("ctr");
    let (b, r) = (
        ctr_run(&id, true, &[], &["/nonexistent"]),
        ctr_run(&id, false, &[], &["/nonexistent"]),
    );
    assert_ne!(code(&b), 0);
    assert_eq!(code(&b), code(&r), "berth: {}", stderr(&b));
}

/// A detached task: exec into it, its processes, pause and resume, kill
/// and delete, leaving nothing under the shim's runtime root.
#[test]
fn containerd_detached_task_exec_kill_delete() {
    let id = unique("ctrd");
    let image = containerd_env().get("BERTH_CONTAINERD_IMAGE").to_string();
    let rt = runtime().to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let o = output_within(&ctr(args), 60);
        assert!(o.status.success(), "ctr {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    ok(&[
        "run",
        "-d",
        "--runc-binary",
        &rt,
        &image,
        &id,
        "sleep",
        "600",
    ]);
    let status = |id: &str| {
        ok(&["task", "ls"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(String::from))
    };
    assert_eq!(status(&id).as_deref(), Some("RUNNING"));
    let o = output_within(
        &ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo exec-out; exit 5",
        ]),
        60,
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (5, "exec-out\n"),
        "{}",
        stderr(&o)
    );
    assert!(ok(&["task", "ps", &id]).lines().count() >= 2);
    ok(&["task", "pause", &id]);
    assert_eq!(status(&id).as_deref(), Some("PAUSED"));
    ok(&["task", "resume", &id]);
    assert_eq!(status(&id).as_deref(), Some("RUNNING"));
    ok(&["task", "kill", "-s", "KILL", &id]);
    wait_until("the task to stop", || {
        status(&id).as_deref() == Some("STOPPED")
    });
    ok(&["task", "delete", &id]);
    ok(&["container", "rm", &id]);
    let shim_root = Path::new("/run/containerd/runc")
        .join(containerd_env().get("BERTH_CONTAINERD_NS"))
        .join("containers")
        .join(&id);
    assert!(!shim_root.exists(), "{} left behind", shim_root.display());
}

/// `--tty` through a real pty (script(1)): berth's pty, the exit code.
#[test]
fn containerd_tty() {
    let image = containerd_env().get("BERTH_CONTAINERD_IMAGE").to_string();
    for berth in [true, false] {
        let id = unique("ctrt");
        let mut argv = ctr(&["run", "--rm", "-t"]);
        if berth {
            argv.extend(strings(&["--runc-binary", runtime().to_str().unwrap()]));
        }
        argv.extend(strings(&[
            &image,
            &id,
            "sh",
            "-c",
            "tty; echo tty-ok; exit 7",
        ]));
        let o = in_script(&argv);
        assert_eq!(code(&o), 7, "berth {berth}: {}", stdout(&o));
        // Two ptys (script's and the container's) each add their \r.
        let text = stdout(&o).replace('\r', "");
        assert!(
            text.contains("/dev/pts/0\ntty-ok\n"),
            "berth {berth}: {text:?}"
        );
    }
}

/// An engine driven with berth as its runtime or with its own.
struct Engine {
    name: &'static str,
    /// The engine's command line up to the subcommand.
    base: Vec<String>,
    /// `run` flags choosing berth, and choosing the engine's own runtime.
    berth: Vec<String>,
    own: Vec<String>,
    image: String,
    /// Flags every `run` needs on this machine (podman's rlimits).
    run_flags: Vec<String>,
}

impl Engine {
    fn docker() -> Engine {
        let f = fixture_env();
        // dockerd runs the runtime `berth` from this link: the berth under test.
        let link = Path::new(f.get("BERTH_DOCKER_RUNTIME_LINK"));
        let tmp = link.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(runtime(), &tmp).unwrap();
        std::fs::rename(&tmp, link).unwrap();
        Engine {
            name: "docker",
            base: f.docker(),
            berth: strings(&["--runtime", "berth"]),
            own: strings(&["--runtime", "runc"]),
            image: f.get("BERTH_OUTER_IMAGE").into(),
            run_flags: strings(&["--network", "none"]),
        }
    }

    fn podman() -> Engine {
        let f = fixture_env();
        // The fixture's args choose runc; berth's tests choose per run.
        let mut base = f.podman();
        if let Some(i) = base.iter().position(|a| a == "--runtime") {
            base.drain(i..i + 2);
        }
        Engine {
            name: "podman",
            berth: strings(&["--runtime", runtime().to_str().unwrap()]),
            own: strings(&["--runtime", "runc"]),
            base,
            image: f.get("BERTH_PODMAN_OUTER_IMAGE").into(),
            run_flags: strings(&[
                "--network",
                "none",
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=32768:32768",
            ]),
        }
    }

    /// `ENGINE [--runtime …] SUBCOMMAND ARGS` (podman takes --runtime as a
    /// global flag, docker on `run`).
    fn argv(&self, berth: Option<bool>, sub: &str, args: &[&str]) -> Vec<String> {
        let rt = match berth {
            Some(true) => self.berth.clone(),
            Some(false) => self.own.clone(),
            None => Vec::new(),
        };
        let mut v = self.base.clone();
        if self.name == "podman" {
            v.extend(rt.clone());
        }
        v.push(sub.into());
        if self.name == "docker" {
            v.extend(rt);
        }
        if sub == "run" {
            v.extend(self.run_flags.clone());
        }
        v.extend(strings(args));
        v
    }

    fn run(&self, berth: bool, args: &[&str], cmd: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        a.push(&self.image);
        a.extend(cmd);
        output_within(&self.argv(Some(berth), "run", &a), 120)
    }

    fn ok(&self, berth: Option<bool>, sub: &str, args: &[&str]) -> String {
        let o = output_within(&self.argv(berth, sub, args), 120);
        assert!(
            o.status.success(),
            "{} {sub} {args:?}: {}",
            self.name,
            stderr(&o)
        );
        stdout(&o)
    }
}

/// `argv` run by script(1), on a real pty of its own.
fn in_script(argv: &[String]) -> Output {
    let line = argv
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    interactive_within(&strings(&["script", "-qec", &line, "/dev/null"]), 120)
}

/// What both engines are checked for with berth as their runtime.
fn engine_runs_containers_with_berth(e: &Engine) {
    // I/O and exit codes, as with the engine's own runtime.
    let cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"];
    let (b, r) = (e.run(true, &["--rm"], &cmd), e.run(false, &["--rm"], &cmd));
    assert_eq!(code(&b), 3, "{}: {}", e.name, stderr(&b));
    assert_eq!(
        (stdout(&b), stderr(&b)),
        (stdout(&r), stderr(&r)),
        "{}",
        e.name
    );

    // Limits seen inside, as the engine's own runtime shows them.
    let limits = ["--rm", "--memory", "64m", "--pids-limit", "33"];
    let cmd = [
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
    ];
    let cmd_v2 = [
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
    ];
    let cmd = if cgroup_v2() { &cmd_v2[..] } else { &cmd[..] };
    let (b, r) = (e.run(true, &limits, cmd), e.run(false, &limits, cmd));
    assert_eq!(code(&b), 0, "{}: {}", e.name, stderr(&b));
    assert_eq!(stdout(&b), stdout(&r), "{}", e.name);
    assert!(
        stdout(&b).contains("67108864\n33\n"),
        "{}: {}",
        e.name,
        stdout(&b)
    );

    // Detached: exec, logs, stop (SIGTERM reaches the trap).
    let script = "echo started; trap 'echo got-term; exit 0' TERM; while :; do sleep 0.1; done";
    let o = e.run(true, &["-d"], &["sh", "-c", script]);
    assert!(o.status.success(), "{} run -d: {}", e.name, stderr(&o));
    let id = stdout(&o).trim().to_string();
    // The engine chose berth for it.
    let field = if e.name == "docker" {
        "{{.HostConfig.Runtime}}"
    } else {
        "{{.OCIRuntime}}"
    };
    let rt = e.ok(None, "inspect", &["-f", field, &id]);
    assert!(
        rt.trim() == "berth" || rt.trim() == runtime().to_str().unwrap(),
        "{}: {rt}",
        e.name
    );
    let o = output_within(
        &e.argv(None, "exec", &[&id, "sh", "-c", "echo in-exec; exit 6"]),
        60,
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (6, "in-exec\n"),
        "{}: {}",
        e.name,
        stderr(&o)
    );
    // exec -it: a pty of the container's, through a real one.
    let argv = e.argv(None, "exec", &["-it", &id, "sh", "-c", "tty; exit 5"]);
    let o = in_script(&argv);
    assert_eq!(code(&o), 5, "{} exec -it: {}", e.name, stdout(&o));
    assert!(
        stdout(&o).contains("/dev/pts/"),
        "{} exec -it: {:?}",
        e.name,
        stdout(&o)
    );
    wait_until("the container's first line", || {
        e.ok(None, "logs", &[&id]).contains("started")
    });
    e.ok(None, "stop", &[&id]);
    assert_eq!(
        e.ok(None, "logs", &[&id]),
        "started\ngot-term\n",
        "{}",
        e.name
    );
    assert_eq!(
        e.ok(None, "inspect", &["-f", "{{.State.ExitCode}}", &id])
            .trim(),
        "0"
    );
    e.ok(None, "rm", &[&id]);

    // -it through a real pty.
    let argv = e.argv(
        Some(true),
        "run",
        &["--rm", "-it", &e.image, "sh", "-c", "tty; exit 4"],
    );
    let o = in_script(&argv);
    assert_eq!(code(&o), 4, "{} -it: {}", e.name, stdout(&o));
    assert!(
        stdout(&o).contains("/dev/pts/0"),
        "{} -it: {:?}",
        e.name,
        stdout(&o)
    );
}

#[test]
fn docker_runs_containers_with_berth() {
    engine_runs_containers_with_berth(&Engine::docker());
}

#[test]
fn podman_runs_containers_with_berth() {
    engine_runs_containers_with_berth(&Engine::podman());
}

/// What the runtime says of itself, and what it refuses clearly.
#[test]
fn features_version_and_refusals() {
    let r = Runc::new();
    let f: serde_json::Value = serde_json::from_str(&r.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    let hooks: Vec<&str> = f["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{h}: {f}");
    }
    let caps = f["linux"]["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{f}");
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
    assert!(r.ok(&["--version"]).starts_with("berth-runc version "));
    if !Path::new("/run/systemd/system").exists() {
        let o = r.run(&["--systemd-cgroup", "list"]);
        assert_eq!(code(&o), 1);
        assert!(stderr(&o).contains("systemd"), "{}", stderr(&o));
    }
    let o = r.run(&["checkpoint", "x"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not supported"), "{}", stderr(&o));
    // Bad input: one line, exit 1, nothing made.
    for args in [
        &["state", "../x"][..],
        &["kill", "nope", "KILL"],
        &["create", "--bundle", "/nonexistent", "b1"],
        &["kill", "nope", "NOTASIGNAL"],
    ] {
        let o = r.run(args);
        assert_eq!(code(&o), 1, "{args:?}");
        if args[1] == "../x" {
            assert!(
                stderr(&o).contains("invalid container id"),
                "{}",
                stderr(&o)
            );
        }
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
    let spec_dir = tempfile::tempdir().unwrap();
    let sd = spec_dir.path().to_str().unwrap();
    r.ok(&["spec", "--bundle", sd]);
    let o = r.run(&["spec", "--bundle", sd]);
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(r.ok(&["list", "-q"]), "");
}

/// `events` reports the OOM killer, then ends with the container.
#[test]
fn events_report_an_oom_kill() {
    let r = Runc::new();
    let b = bundle(&["sh", "-c", "sleep 0.3; tail /dev/zero; sleep 0.3"], false);
    let path = b.path().join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": 16 << 20, "swap": 16 << 20});
    std::fs::write(&path, spec.to_string()).unwrap();
    std::os::unix::fs::symlink("busybox", b.path().join("rootfs/bin/tail")).unwrap();
    let bp = b.path().to_str().unwrap();
    r.detached_ok(&["create", "--bundle", bp, "o1"]);
    let events = r
        .cmd(&["events", "--interval", "100ms", "o1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    r.ok(&["start", "o1"]);
    let o = events.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|e| e["type"] == "oom" && e["id"] == "o1"),
        "{}",
        stdout(&o)
    );
    assert!(lines.iter().any(|e| e["type"] == "stats"), "{}", stdout(&o));
    r.ok(&["delete", "o1"]);
}
