//! berth's own input and output: paths given relative to the current
//! directory, files it reads (every read bounded), and pipes it writes to
//! that were closed (never a panic, never an abort).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// berth as root, with the tests' config and credentials, and no `--root`.
fn bare_berth(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.current_dir(cwd)
        .env(
            "BERTH_CONFIG",
            workspace().join("crates/cli/tests/config.json"),
        )
        .env("DOCKER_CONFIG", cwd.join("docker-config"))
        .env_remove("BERTH_ROOT")
        .env_remove("BERTH_EXEC_ROOT")
        .stdin(std::process::Stdio::null());
    c
}

#[test]
fn relative_root_and_exec_root_are_taken_from_the_current_directory() {
    if rootless() {
        return; // the test user cannot enter root's temporary directories
    }
    let r = Root::new();
    let cwd = r.path();
    // Flags, then the same through the environment.
    let o = bare_berth(cwd)
        .args(["--root", "rel/root", "--exec-root", "rel/run"])
        .args(["run", "--rm", "-q", BUSYBOX, "true"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "stderr: {}", stderr(&o));
    assert!(cwd.join("rel/root/images.json").exists());
    assert!(cwd.join("rel/run/bundles").is_dir());
    let o = bare_berth(cwd)
        .env("BERTH_ROOT", "env/root")
        .env("BERTH_EXEC_ROOT", "env/run")
        .args(["run", "--rm", "-q", BUSYBOX, "echo", "hey"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "hey\n", "stderr: {}", stderr(&o));
    assert!(cwd.join("env/root/images.json").exists());
    // A relative --config is read from the current directory too.
    std::fs::write(cwd.join("conf.json"), "{\"bogus-key\": 1}").unwrap();
    let o = bare_berth(cwd)
        .args(["--root", "rel/root", "--config", "conf.json", "images"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 125, "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{}", cwd.join("conf.json").display())));
}
