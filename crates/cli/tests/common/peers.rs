//! The peers the tests drive as real programs: Debian's dockerd and podman
//! (`fixture/dockerd.sh`) and containerd (`fixture/containerd.sh`), each
//! started once per test binary by its script, and a runner with a timeout.

use super::*;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The fixture's env file: dockerd's socket, podman's store, image names.
pub struct Fixture {
    vars: Vec<(String, String)>,
}

impl Fixture {
    pub fn get(&self, k: &str) -> &str {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("fixture/dockerd.sh env has no {k}"))
    }

    pub fn docker(&self) -> Vec<String> {
        vec![
            self.get("BERTH_DOCKER").into(),
            "-H".into(),
            self.get("BERTH_DOCKER_HOST").into(),
        ]
    }

    pub fn podman(&self) -> Vec<String> {
        let mut v = vec![self.get("BERTH_PODMAN").to_string()];
        v.extend(self.get("BERTH_PODMAN_ARGS").split(' ').map(String::from));
        v
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.get("BERTH_DOCKER_LOG")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

/// `fixture/dockerd.sh up` once per test binary (the registry too); a
/// daemon that cannot start fails the test with its log's tail.
pub fn fixture_env() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| up("dockerd.sh"))
}

/// `fixture/containerd.sh up` once per test binary: containerd on a
/// private socket, with the fixture registry's busybox.
pub fn containerd_env() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| up("containerd.sh"))
}

/// `fixture/NAME up`, then its env file.
fn up(name: &str) -> Fixture {
    {
        fixture();
        let script = workspace().join("fixture").join(name);
        let o = Command::new("bash")
            .arg(&script)
            .arg("up")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run fixture/{name}: {e}"));
        assert!(
            o.status.success(),
            "fixture/{name} up failed:\n{}",
            stderr(&o)
        );
        let o = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .unwrap();
        let vars = stdout(&o)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Fixture { vars }
    }
}

/// Runs `argv`, killed after `secs`: a hung engine or berth fails the
/// test instead of hanging the suite.
pub fn output_within(argv: &[String], secs: u64) -> Output {
    within(argv, secs, false)
}

/// As [`output_within`], with a stdin that stays open and silent until the
/// child exits, as a user's terminal does. With stdin at EOF, `script`
/// sends the terminal's EOF character, podman forwards it, and conmon may
/// close the attach socket with it unread, which resets the connection
/// and loses output podman had not yet read (runc loses it too).
pub fn interactive_within(argv: &[String], secs: u64) -> Output {
    within(argv, secs, true)
}

fn within(argv: &[String], secs: u64, open_stdin: bool) -> Output {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(if open_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
    // Drain both pipes while waiting, so a chatty child cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).unwrap();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).unwrap();
        v
    });
    let _stdin = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{argv:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}
