//! berth run inside a container that has only CAP_SYS_ADMIN added (issue 11):
//! the set-up of the "Build your own Docker" challenge, `docker run
//! --cap-add SYS_ADMIN`, where Docker's default seccomp profile refuses
//! pivot_root, CAP_NET_ADMIN is absent, the cgroup filesystem is read-only
//! and the root is overlayfs.
//!
//! Three long-lived boxes per test binary, each running the outer image of
//! `fixture/dockerd.sh` (busybox-static) with a copy of the berth under test
//! bound read-only at /opt/berth; berth keeps its store in the box's own
//! /var/lib/berth, on the box's overlay root:
//! - `docker`: Debian's dockerd, `--cap-add SYS_ADMIN --network host`;
//! - `podman`: the same with podman (runc, cgroupfs, the ulimits this
//!   machine needs);
//! - `control`: the docker box with `--security-opt seccomp=unconfined`, so
//!   pivot_root is allowed and only the rest of the box's limits remain.
//!
//! Host networking is only there so berth inside reaches the fixture
//! registry on 127.0.0.1:5500; no test sends packets anywhere else.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::peers::*;
use common::*;

/// The box's PID 1 carries this as its $0, so a container that could see
/// the box's processes would find it in some /proc/N/cmdline.
const BOX_TAG: &str = "berth-outer-box";
/// Content of /outer-marker in the outer image (fixture/dockerd.sh).
const MARKER: &str = "outer-box";
/// PID 1 of a box: sleeps, reaps orphans, ends on SIGTERM.
const BOX_INIT: &str = "trap 'exit 0' TERM; while :; do sleep 86400 & wait; done";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Docker,
    Podman,
    Control,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The directory bound read-only at /opt/berth in every box: a copy of the
/// berth under test (cargo replaces the file on the next build), per test
/// binary; copies of test binaries that have ended are removed first.
fn berth_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::fs::create_dir_all("/var/tmp/berth-tests").unwrap();
        for e in std::fs::read_dir("/var/tmp/berth-tests").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("ic-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = PathBuf::from(format!("/var/tmp/berth-tests/ic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), dir.join("berth")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    })
}

fn box_name(kind: Kind, pid: u32) -> String {
    format!("berth-ic-{}-{pid}", format!("{kind:?}").to_lowercase())
}

/// Once per test binary: boxes of test binaries that have ended are removed,
/// and a watcher (its own session, no stdio) removes this binary's boxes
/// and berth copy a second after it exits, since tests have no teardown.
fn housekeeping() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let f = fixture_env();
        for engine in [f.docker(), f.podman()] {
            let mut argv = engine.clone();
            argv.extend(strings(&[
                "ps",
                "-a",
                "--filter",
                "name=berth-ic-",
                "--format",
                "{{.Names}}",
            ]));
            let o = output_within(&argv, 60);
            for name in stdout(&o).lines() {
                let pid = name.rsplit('-').next().unwrap_or("");
                if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                    let mut rm = engine.clone();
                    rm.extend(strings(&["rm", "-f", name]));
                    let _ = output_within(&rm, 60);
                }
            }
        }
        let pid = std::process::id();
        let q = |v: Vec<String>| v.join(" ");
        let names = |k: &[Kind]| {
            k.iter()
                .map(|k| box_name(*k, pid))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {} rm -f {} >/dev/null 2>&1; {} rm -f {} >/dev/null 2>&1; rm -rf {}",
            q(f.docker()),
            names(&[Kind::Docker, Kind::Control]),
            q(f.podman()),
            names(&[Kind::Podman]),
            berth_dir().display(),
        );
        // setsid -f forks: the watcher is not this process's child.
        let st = Command::new("setsid")
            .args(["-f", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    });
}

/// A running box and what `berth pull` of the fixture's busybox gave in it.
struct OuterBox {
    kind: Kind,
    engine: Vec<String>,
    name: String,
    pull: Output,
}

fn start_box(kind: Kind) -> OuterBox {
    let f = fixture_env();
    housekeeping();
    let name = box_name(kind, std::process::id());
    let bind = format!("{}:/opt/berth:ro", berth_dir().display());
    let (engine, image, extra): (Vec<String>, &str, &[&str]) = match kind {
        Kind::Docker => (f.docker(), f.get("BERTH_OUTER_IMAGE"), &[]),
        Kind::Control => (
            f.docker(),
            f.get("BERTH_OUTER_IMAGE"),
            &["--security-opt", "seccomp=unconfined"],
        ),
        // podman's default rlimits cannot be set here: root lacks
        // CAP_SYS_RESOURCE (see the peers' notes).
        Kind::Podman => (
            f.podman(),
            f.get("BERTH_PODMAN_OUTER_IMAGE"),
            &[
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=32768:32768",
            ],
        ),
    };
    let mut argv = engine.clone();
    argv.extend(strings(&[
        "run",
        "-d",
        "--name",
        &name,
        "--cap-add",
        "SYS_ADMIN",
        "--network",
        "host",
        "-v",
        &bind,
    ]));
    argv.extend(strings(extra));
    argv.extend(strings(&[image, "sh", "-c", BOX_INIT, BOX_TAG]));
    let o = output_within(&argv, 120);
    if !o.status.success() {
        // A box created but not started would make the next test's attempt
        // fail on its name instead of on the real cause.
        let mut rm = engine.clone();
        rm.extend(strings(&["rm", "-f", &name]));
        let _ = output_within(&rm, 60);
        let log = match kind {
            Kind::Podman => String::new(),
            _ => format!("\n--- dockerd's log, last lines:\n{}", f.log_tail()),
        };
        panic!(
            "starting the {kind:?} box failed: {argv:?}\n{}{}{log}",
            stdout(&o),
            stderr(&o)
        );
    }
    let mut b = OuterBox {
        kind,
        engine,
        name,
        pull: o,
    };
    b.pull = b.berth(&["pull", "-q", BUSYBOX]);
    b
}

impl OuterBox {
    /// `ENGINE exec BOX argv…`
    fn exec(&self, argv: &[&str]) -> Output {
        let mut v = self.engine.clone();
        v.extend(strings(&["exec", &self.name]));
        v.extend(strings(argv));
        output_within(&v, 120)
    }

    fn berth(&self, args: &[&str]) -> Output {
        let mut v = vec!["/opt/berth/berth"];
        v.extend_from_slice(args);
        self.exec(&v)
    }

    fn sh(&self, script: &str) -> String {
        let o = self.exec(&["sh", "-c", script]);
        assert!(o.status.success(), "in the box: {script}: {}", stderr(&o));
        stdout(&o)
    }

    /// The box with the image pulled: tests other than `pull` need that.
    fn ready(&self) -> &OuterBox {
        assert!(
            self.pull.status.success(),
            "berth pull failed in the {:?} box, so this test cannot run (see its pull test): {}",
            self.kind,
            stderr(&self.pull)
        );
        self
    }

    /// `berth run --rm BUSYBOX args…` inside the box.
    fn run(&self, flags: &[&str], args: &[&str]) -> Output {
        let mut v = vec!["run", "--rm"];
        v.extend_from_slice(flags);
        v.push(BUSYBOX);
        v.extend_from_slice(args);
        self.ready().berth(&v)
    }
}

fn outer(kind: Kind) -> &'static OuterBox {
    static DOCKER: OnceLock<OuterBox> = OnceLock::new();
    static PODMAN: OnceLock<OuterBox> = OnceLock::new();
    static CONTROL: OnceLock<OuterBox> = OnceLock::new();
    let cell = match kind {
        Kind::Docker => &DOCKER,
        Kind::Podman => &PODMAN,
        Kind::Control => &CONTROL,
    };
    cell.get_or_init(|| start_box(kind))
}

fn show(o: &Output) -> String {
    format!(
        "exit {}\n--- stdout:\n{}--- stderr:\n{}",
        code(o),
        stdout(o),
        stderr(o)
    )
}

/// `ls /` of the same image run by the same berth on the host.
fn host_ls_root() -> &'static str {
    static LS: OnceLock<String> = OnceLock::new();
    LS.get_or_init(|| {
        let r = Root::new();
        let o = r.run(&["--rm", "-q", BUSYBOX, "ls", "/"]);
        assert_eq!(code(&o), 0, "berth on the host: {}", show(&o));
        stdout(&o)
    })
}

/// The first pull goes through the fixture registry on loopback and stores
/// the image in the box's /var/lib/berth, on its overlay root.
fn pull(k: Kind) {
    let b = outer(k);
    assert_eq!(code(&b.pull), 0, "berth pull: {}", show(&b.pull));
    let o = b.berth(&["images"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        stdout(&o).contains("127.0.0.1:5500/busybox"),
        "{}",
        show(&o)
    );
    let store = b.sh("ls /var/lib/berth");
    assert!(!store.is_empty(), "nothing in the box's /var/lib/berth");
}

/// The challenge's own command, as typed (no --rm): only `hey` on stdout,
/// and nothing at all on stderr once the image is present.
fn echo_hey(k: Kind) {
    let o = outer(k).ready().berth(&["run", BUSYBOX, "echo", "hey"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(stdout(&o), "hey\n", "{}", show(&o));
    assert_eq!(stderr(&o), "", "{}", show(&o));
}

fn stderr_alone(k: Kind) {
    let o = outer(k).run(&[], &["sh", "-c", "echo err >&2"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(stdout(&o), "", "{}", show(&o));
    assert_eq!(stderr(&o), "err\n", "{}", show(&o));
}

fn exit_code(k: Kind) {
    let o = outer(k).run(&[], &["sh", "-c", "exit 3"]);
    assert_eq!(code(&o), 3, "{}", show(&o));
    assert_eq!(stderr(&o), "", "{}", show(&o));
}

/// Docker's way: a command that is not in the image is 127.
fn missing_command(k: Kind) {
    let o = outer(k).run(&[], &["no-such-command-in-busybox"]);
    assert_eq!(code(&o), 127, "{}", show(&o));
    assert_eq!(stdout(&o), "", "{}", show(&o));
}

/// The container's / is the image and what berth adds, exactly as on the
/// host: none of the box's own entries (/opt, /outer-marker…).
fn ls_root(k: Kind) {
    let o = outer(k).run(&[], &["ls", "/"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(stdout(&o), host_ls_root(), "{}", show(&o));
    assert!(!stdout(&o).contains("outer-marker"), "{}", show(&o));
}

fn pid_1(k: Kind) {
    let o = outer(k).run(&[], &["sh", "-c", "echo $$"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(stdout(&o), "1\n", "{}", show(&o));
}

/// The box's cgroup filesystem is read-only: a limit berth cannot apply is
/// refused up front (Docker's 125) with one line that says why, not
/// silently ignored.
fn memory_limit_refused(k: Kind) {
    let o = outer(k).run(&["--memory", "64m"], &["true"]);
    assert_eq!(code(&o), 125, "{}", show(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{}", show(&o));
    assert!(err.to_lowercase().contains("cgroup"), "{}", show(&o));
}

/// --network host shares the box's network namespace, which (the box being
/// host-networked) is this test's own.
fn network_host(k: Kind) {
    let b = outer(k);
    let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
    let boxed = b.sh("readlink /proc/self/ns/net");
    assert_eq!(
        boxed.trim(),
        mine.to_str().unwrap(),
        "the box is not host-networked"
    );
    let o = b.run(&["--network", "host"], &["readlink", "/proc/self/ns/net"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(stdout(&o), boxed, "{}", show(&o));
}

/// --network none: a namespace of its own with nothing but lo.
fn network_none(k: Kind) {
    let b = outer(k);
    let boxed = b.sh("readlink /proc/self/ns/net");
    let o = b.run(
        &["--network", "none"],
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1",
        ],
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let ns = lines.next().unwrap_or("");
    assert!(ns.starts_with("net:["), "{}", show(&o));
    assert_ne!(ns, boxed.trim(), "{}", show(&o));
    let ifaces: Vec<&str> = lines.map(str::trim).collect();
    assert_eq!(ifaces, ["lo"], "{}", show(&o));
}

/// A run does not copy the image: its / is an overlay of its own (a new
/// superblock, mounted at its root) on the image's layers. A copy of the
/// image on the box's overlayfs root would also show "overlay" for /, but
/// as a subdirectory of the box's own mount, with the box's device number.
fn overlay_root(k: Kind) {
    let b = outer(k);
    let root_of = |mountinfo: &str| -> Option<(String, String, String)> {
        // id parent major:minor root mountpoint opts… - fstype source superopts
        let l = mountinfo
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some("/"))?;
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l.split(" - ").nth(1)?.split(' ').next()?;
        Some((f[2].to_string(), f[3].to_string(), fstype.to_string()))
    };
    let (box_dev, _, box_fs) = root_of(&b.sh("cat /proc/self/mountinfo")).unwrap();
    assert_eq!(box_fs, "overlay", "the box's root is not overlayfs");
    let o = b.run(&[], &["cat", "/proc/self/mountinfo"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let (dev, root, fstype) =
        root_of(&stdout(&o)).unwrap_or_else(|| panic!("no / in mountinfo: {}", show(&o)));
    assert_eq!(fstype, "overlay", "{}", show(&o));
    assert_eq!(root, "/", "/ is a subdirectory of a mount: {}", show(&o));
    assert_ne!(dev, box_dev, "/ is the box's own overlay: {}", show(&o));
}

/// Climbs out of a chroot whose cwd is left outside it (busybox's nsenter
/// -r keeps the cwd), then lists and reads where it landed.
/// (Applets by their full name: a busybox alone in a chroot finds only some.)
const CLIMB: &str = "/bin/busybox mkdir -p /x/bin && /bin/busybox cp /bin/busybox /x/bin/ && \
     /bin/busybox nsenter -r/x /bin/busybox sh -c \
     'for i in $(/bin/busybox seq 40); do cd ..; done; /bin/busybox ls -a; \
      [ ! -f outer-marker ] || /bin/busybox cat outer-marker'";

/// The probe is able: in the box, from inside a plain chroot, it reaches
/// the box's root and its marker. A berth container that used a bare chroot
/// would be escaped by it.
fn climb_escapes_a_plain_chroot(k: Kind) {
    let b = outer(k);
    let script = "d=$(mktemp -d /tmp/climb.XXXXXX) && mkdir -p $d/bin && cp /bin/busybox $d/bin/ && \
         chroot $d /bin/busybox sh -c \"$0\"; rm -rf $d";
    let o = b.exec(&["sh", "-c", script, CLIMB]);
    assert!(stdout(&o).contains("outer-marker"), "{}", show(&o));
    assert!(stdout(&o).contains(MARKER), "{}", show(&o));
}

/// Nothing of the box is reachable from a berth container: not through
/// /proc/1/root or /proc/self/root, not by `..` from /, not by climbing out
/// of a chroot, and none of the box's or host's processes are in its /proc.
fn no_escape(k: Kind) {
    let b = outer(k);
    let script = format!(
        "echo '# proc-1-root'; ls -a /proc/1/root/; \
         echo '# proc-self-root'; ls -a /proc/self/root/; \
         echo '# dotdot'; cd /../../..; ls -a; cat outer-marker 2>/dev/null; cd /; \
         echo '# climb'; {CLIMB}; \
         echo '# procs'; for p in /proc/[0-9]*; do [ $p = /proc/1 ] || \
           {{ tr '\\0' ' ' <$p/cmdline; echo; }}; done; echo '# end'"
    );
    let o = b.run(&[], &["sh", "-c", &script]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let out = stdout(&o);
    let section = |name: &str| -> Vec<&str> {
        let head = format!("# {name}\n");
        let rest = out
            .split(&head)
            .nth(1)
            .unwrap_or_else(|| panic!("no section {name}: {}", show(&o)));
        rest.lines()
            .take_while(|l| !l.starts_with("# "))
            .filter(|l| *l != "." && *l != "..")
            .collect()
    };
    // Every way to / lists exactly the container's root, the same as the
    // host's run of the image.
    let expected: Vec<&str> = host_ls_root().lines().collect();
    for name in ["proc-1-root", "proc-self-root", "dotdot"] {
        assert_eq!(section(name), expected, "{name}: {}", show(&o));
    }
    // The climb ran (it listed a root) and landed in the container's own,
    // which now has the probe's /x.
    let climb = section("climb");
    assert!(
        climb.contains(&"bin") && climb.contains(&"x"),
        "{}",
        show(&o)
    );
    assert!(
        !climb.contains(&"outer-marker"),
        "climbed out: {}",
        show(&o)
    );
    assert!(
        !out.contains(MARKER),
        "the box's marker was read: {}",
        show(&o)
    );
    let procs = section("procs");
    for bad in [BOX_TAG, "sleep 86400", "dockerd", "containerd", "conmon"] {
        assert!(
            !procs.iter().any(|l| l.contains(bad)),
            "{bad:?} visible in /proc: {}",
            show(&o)
        );
    }
    assert!(out.ends_with("# end\n"), "{}", show(&o));
}

/// `berth info` says what it could set up in here.
fn info(k: Kind) {
    let o = outer(k).berth(&["info"]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("Cgroup"), "{}", show(&o));
    assert!(out.contains("Storage Driver"), "{}", show(&o));
}

macro_rules! in_box {
    ($m:ident, $k:expr) => {
        mod $m {
            use super::*;
            #[test]
            fn pull() {
                super::pull($k)
            }
            #[test]
            fn echo_hey() {
                super::echo_hey($k)
            }
            #[test]
            fn stderr_alone() {
                super::stderr_alone($k)
            }
            #[test]
            fn exit_code() {
                super::exit_code($k)
            }
            #[test]
            fn missing_command() {
                super::missing_command($k)
            }
            #[test]
            fn ls_root() {
                super::ls_root($k)
            }
            #[test]
            fn pid_1() {
                super::pid_1($k)
            }
            #[test]
            fn memory_limit_refused() {
                super::memory_limit_refused($k)
            }
            #[test]
            fn network_host() {
                super::network_host($k)
            }
            #[test]
            fn network_none() {
                super::network_none($k)
            }
            #[test]
            fn overlay_root() {
                super::overlay_root($k)
            }
            #[test]
            fn climb_escapes_a_plain_chroot() {
                super::climb_escapes_a_plain_chroot($k)
            }
            #[test]
            fn no_escape() {
                super::no_escape($k)
            }
            #[test]
            fn info() {
                super::info($k)
            }
        }
    };
}

in_box!(docker, Kind::Docker);
in_box!(podman, Kind::Podman);
in_box!(control, Kind::Control);
