//! create / start / state / kill / delete as separate processes, the way a
//! runc-compatible front end will drive them.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn helper(b: &Bundle, args: &[&str]) -> (i32, String) {
    let o = Command::new(HELPER)
        .arg(args[0])
        .arg(b.state_dir())
        .arg("c1")
        .args(&args[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn status(b: &Bundle) -> String {
    let (code, out) = helper(b, &["state"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], "c1");
    v["status"].as_str().unwrap().to_string()
}

#[test]
fn create_start_kill_delete() {
    let b = Bundle::sh("echo started > /tmp/out; while :; do sleep 0.05; done");
    b.write_config();
    let bundle = b.path().to_str().unwrap().to_string();
    // The container inherits create's stdout: keep it off the captured pipe.
    let code = Command::new(HELPER)
        .args(["create", b.state_dir().to_str().unwrap(), "c1", &bundle])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code();
    assert_eq!(code, Some(0));
    assert_eq!(status(&b), "created");
    assert!(
        !b.rootfs().join("tmp/out").exists(),
        "command ran before start"
    );

    assert_eq!(helper(&b, &["start"]).0, 0);
    wait_until("command output", || b.rootfs().join("tmp/out").exists());
    assert_eq!(status(&b), "running");
    assert_eq!(helper(&b, &["start"]).0, 125, "second start must fail");
    assert_eq!(
        helper(&b, &["delete"]).0,
        125,
        "running container deleted without force"
    );

    assert_eq!(helper(&b, &["kill", "9"]).0, 0);
    wait_until("stopped", || status(&b) == "stopped");
    assert_eq!(helper(&b, &["delete"]).0, 0);
    assert!(!b.state_dir().join("c1").exists());
}

#[test]
fn create_fails_for_missing_command_and_leaves_nothing() {
    let b = Bundle::new(&["nosuchcmd"]);
    b.write_config();
    let (code, _) = helper(&b, &["create", b.path().to_str().unwrap()]);
    assert_eq!(code, 127);
    assert!(!b.state_dir().join("c1").exists());
}
