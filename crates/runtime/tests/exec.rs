//! `exec` through the runtime alone: a process joined to a container made
//! by `create` + `start`, here one with a user namespace of its own (the
//! CLI's tests cover the rest of what `berth exec` does).

mod common;

use common::*;
use std::process::{Command, Stdio};

/// A started container in a user namespace mapping root to 200000, its
/// PID 1 a shell that waits.
fn started_in_userns() -> Bundle {
    let mut b = Bundle::sh("while :; do sleep 1; done");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
    b.write_config();
    let st = b.state_dir();
    for args in [
        vec![
            "create",
            st.to_str().unwrap(),
            "c1",
            b.path().to_str().unwrap(),
        ],
        vec!["start", st.to_str().unwrap(), "c1"],
    ] {
        let ok = Command::new(HELPER)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{args:?}");
    }
    b
}

fn exec(b: &Bundle, flags: &[&str], cmd: &[&str]) -> std::process::Output {
    Command::new(HELPER)
        .arg("exec")
        .arg(b.state_dir())
        .arg("c1")
        .arg(b.path())
        .args(flags)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn delete(b: &Bundle) {
    let helper = |args: &[&str]| {
        Command::new(HELPER)
            .arg(args[0])
            .arg(b.state_dir())
            .arg("c1")
            .args(&args[1..])
            .output()
            .unwrap()
            .status
            .success()
    };
    helper(&["kill", "9"]);
    wait_until("deleted", || helper(&["delete"]));
}

#[test]
fn exec_joins_the_containers_user_namespace_and_the_rest() {
    let mut b = started_in_userns();
    // For the exec'd processes only (the helper reads the bundle again).
    b.config["process"]["oomScoreAdj"] = serde_json::json!(123);
    b.write_config();
    let view = |p: &str| {
        format!(
            "for n in user pid mnt uts ipc net cgroup; do readlink /proc/{p}/ns/$n; done; \
             cat /proc/{p}/uid_map; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/{p}/status"
        )
    };
    let pid1 = exec(&b, &[], &["sh", "-c", &view("1")]);
    let own = exec(&b, &[], &["sh", "-c", &view("self")]);
    assert_eq!(own.status.code(), Some(0), "{}", stderr(&own));
    assert_eq!(stdout(&own), stdout(&pid1));
    assert!(stdout(&own).contains("200000"), "{}", stdout(&own));
    // Root of the namespace, which is 200000 outside.
    let o = exec(&b, &[], &["id", "-u"]);
    assert_eq!(stdout(&o), "0\n");
    // The process's OOM score, though it is made non-dumpable.
    let o = exec(&b, &[], &["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(stdout(&o), "123\n", "{}", stderr(&o));
    let o = exec(&b, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = exec(&b, &[], &["missing"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    delete(&b);
}

#[test]
fn a_detached_exec_is_the_pid_it_reports_inside_the_pid_namespace() {
    let b = started_in_userns();
    let o = Command::new(HELPER)
        .arg("exec")
        .arg(b.state_dir())
        .arg("c1")
        .arg(b.path())
        .args(["-d", "--", "sh", "-c", "exec sleep 30 >/dev/null 2>&1"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    // Returned at once: its stdout (this pipe) went with the exec.
    assert_eq!(o.status.code(), Some(0));
    let pid: i32 = stdout(&o).trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    // The host's pid, then its own in the container's PID namespace.
    assert_eq!(nspid.split_whitespace().count(), 3, "{nspid}");
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains("200000"), "{uid}");
    delete(&b);
}

#[test]
fn exec_into_a_container_that_is_gone_fails_clearly() {
    let b = started_in_userns();
    delete(&b);
    let o = exec(&b, &[], &["true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("\"c1\""), "{}", stderr(&o));
}
