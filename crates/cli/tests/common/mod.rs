//! Shared test support: the fixture registry and a berth command bound to a
//! throw-away root. Tests run real containers, so they need root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const PLAIN: &str = "127.0.0.1:5500";
pub const BUSYBOX: &str = "127.0.0.1:5500/busybox:latest";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts the fixture registries once per test binary (idempotent script).
pub fn fixture() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let st = Command::new("bash")
            .arg(workspace().join("fixture/registry.sh"))
            .arg("up")
            .stdout(Stdio::null())
            .status()
            .expect("run fixture/registry.sh");
        assert!(st.success(), "fixture/registry.sh up failed");
    });
}

/// A berth root that is removed (containers, mounts and all) when dropped.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        fixture();
        std::fs::create_dir_all("/var/tmp/berth-tests").unwrap();
        Root {
            dir: tempfile::Builder::new()
                .prefix("root-")
                .tempdir_in("/var/tmp/berth-tests")
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn berth(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("--root").arg(self.path());
        // No user config or credentials leak into tests.
        c.env(
            "BERTH_CONFIG",
            workspace().join("crates/cli/tests/config.json"),
        );
        c.env("DOCKER_CONFIG", self.path().join("docker-config"));
        c.stdin(Stdio::null());
        c
    }

    /// `berth run --rm IMAGE args…`, output captured.
    pub fn run(&self, args: &[&str]) -> Output {
        self.berth().arg("run").args(args).output().unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Remove every container the test left so its mounts go too.
        if let Ok(out) = self.berth().args(["ps", "-aq", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.berth().args(["rm", "-f", id]).output();
            }
        }
    }
}

/// Exit code, -1 when killed by a signal.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The host's mount points, leaving out those of other tests' roots
/// (tests run in parallel) but keeping everything under `mine`.
pub fn host_mounts(mine: &Path) -> Vec<String> {
    let mine = mine.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').skip(4).take(1).collect::<String>())
        .filter(|m| !m.starts_with("/var/tmp/berth-tests/") || m.starts_with(&mine))
        .collect()
}
