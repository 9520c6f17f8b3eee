//! OCI hooks run by the runtime (prestart, createRuntime, createContainer,
//! startContainer, poststart, poststop): what each is given, when and
//! where it runs, and what its failure or its timeout does. Hooks here are /bin/sh scripts that write into a
//! directory of the test's.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hook running `script` with /bin/sh, `OUT` set to `out`.
fn hook(out: &Path, script: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script],
        "env": [format!("OUT={}", out.display())]
    })
}

/// A bundle running `script`, with a directory for its hooks' output.
fn bundle(script: &str) -> (Bundle, PathBuf) {
    let b = Bundle::sh(script);
    let out = b.path().join("out");
    std::fs::create_dir(&out).unwrap();
    (b, out)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')').next().unwrap_or("").trim().starts_with('Z')
    })
}

#[test]
fn hooks_run_in_order_with_the_state_their_args_and_their_env() {
    let (mut b, out) = bundle("echo ran > /tmp/ran");
    let create = r#"
        cat > "$OUT/create.json"
        pid=$(sed 's/.*"pid":\([0-9]*\).*/\1/' "$OUT/create.json")
        readlink /proc/$pid/ns/net > "$OUT/netns"
        tr '\0' ' ' < /proc/$$/cmdline > "$OUT/argv"
        env > "$OUT/env"
        pwd > "$OUT/cwd"
        [ -e rootfs/tmp/ran ] && echo early >> "$OUT/log"
        echo createRuntime >> "$OUT/log""#;
    let mut create_hook = hook(&out, create);
    create_hook["args"] = json!(["hook-argv0", "-c", create, "name0"]);
    create_hook["env"] = json!([format!("OUT={}", out.display()), "FOO=bar"]);
    b.config["annotations"] = json!({"org.example.test": "yes"});
    b.config["hooks"] = json!({
        // No redirection before the listing: dash keeps a copy of a
        // redirected fd while the command runs.
        "prestart": [hook(&out, "exec > \"$OUT/fds\"; for f in /proc/$$/fd/*; do echo ${f##*/}; done; echo prestart >> \"$OUT/log\"")],
        "createRuntime": [create_hook],
        "poststart": [hook(&out, "cat > \"$OUT/poststart.json\"; echo poststart >> \"$OUT/log\"")],
        "poststop": [hook(&out, "cat > \"$OUT/poststop.json\"; echo poststop >> \"$OUT/log\"")]
    });
    // The runtime is given an fd without close-on-exec (7), as a careless
    // caller may leave it one, and a variable of its environment.
    let run = b.command(false);
    let o = Command::new("sh")
        .arg("-c")
        .arg("exec 7</dev/null; exec \"$0\" \"$@\"")
        .arg(run.get_program())
        .args(run.get_args())
        .env("BERTH_HOOK_LEAK", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        read(&out.join("log")),
        "prestart\ncreateRuntime\npoststart\npoststop\n"
    );
    assert!(b.rootfs().join("tmp/ran").exists());

    let bundle = std::fs::canonicalize(b.path()).unwrap();
    let created = json_of(&out.join("create.json"));
    assert_eq!(created["ociVersion"], "1.0.2");
    assert_eq!(created["id"], "c1");
    assert_eq!(created["status"], "creating");
    assert_eq!(created["bundle"], bundle.to_str().unwrap());
    assert_eq!(created["annotations"], json!({"org.example.test": "yes"}));
    let pid = created["pid"].as_i64().unwrap();
    assert!(pid > 0, "{created}");
    // Run in the runtime's namespaces, while the container has its own.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(read(&out.join("netns")).trim(), own.to_str().unwrap());

    assert_eq!(
        read(&out.join("argv")),
        format!("hook-argv0 -c {create} name0 ")
    );
    let env = read(&out.join("env"));
    assert!(env.contains("FOO=bar\n"), "{env}");
    assert!(
        !env.contains("BERTH_HOOK_LEAK"),
        "the runtime's env leaked: {env}"
    );
    assert_eq!(read(&out.join("cwd")).trim(), bundle.to_str().unwrap());
    let fds: Vec<String> = read(&out.join("fds")).lines().map(String::from).collect();
    // 3: the directory being listed.
    assert!(
        fds.iter()
            .all(|f| ["0", "1", "2", "3"].contains(&f.as_str())),
        "{fds:?}"
    );

    let started = json_of(&out.join("poststart.json"));
    assert_eq!(started["status"], "running");
    assert_eq!(started["pid"].as_i64(), Some(pid));
    let stopped = json_of(&out.join("poststop.json"));
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["id"], "c1");
    assert!(stopped.get("pid").is_none(), "{stopped}");
}

#[test]
fn a_failing_create_runtime_hook_fails_create_naming_its_path_and_status() {
    let (mut b, out) = bundle("echo ran > /tmp/ran");
    b.config["hooks"] = json!({
        "createRuntime": [hook(&out, "echo 'no network for you' >&2; exit 3")],
        "poststart": [hook(&out, "echo poststart >> \"$OUT/log\"")]
    });
    let o = b.run();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("createRuntime hook /bin/sh failed: exit status 3: no network for you"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!b.rootfs().join("tmp/ran").exists(), "the command ran");
    assert!(!out.join("log").exists(), "poststart ran");
    assert!(!b.state_dir().join("c1").exists(), "state left behind");

    let mut missing = hook(&out, "true");
    missing["path"] = json!("/nonexistent/hook");
    b.config["hooks"] = json!({ "createRuntime": [missing] });
    let o = b.run();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "createRuntime hook /nonexistent/hook could not be run: no such file or directory"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let (mut b, out) = bundle("echo ran > /tmp/ran");
    let mut slow = hook(&out, "sleep 60 & echo $! > \"$OUT/child\"; wait");
    slow["timeout"] = json!(1);
    b.config["hooks"] = json!({ "createRuntime": [slow] });
    let t = Instant::now();
    let o = b.run();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let err = stderr(&o);
    assert!(
        err.contains("createRuntime hook /bin/sh timed out after 1 s and was killed"),
        "{err}"
    );
    let child = read(&out.join("child"));
    wait_until("the hook's child killed", || gone(child.trim()));
    assert!(!b.rootfs().join("tmp/ran").exists(), "the command ran");
}

#[test]
fn poststart_and_poststop_failures_are_only_warnings() {
    let (mut b, out) = bundle("echo ran > /tmp/ran");
    b.config["hooks"] = json!({
        "poststart": [hook(&out, "exit 1")],
        "poststop": [hook(&out, "exit 4"), hook(&out, "echo poststop >> \"$OUT/log\"")]
    });
    let o = b.run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(b.rootfs().join("tmp/ran").exists());
    assert_eq!(
        read(&out.join("log")),
        "poststop\n",
        "the hook after a failed one ran"
    );
}

/// `create`, `start` and `delete` as separate processes: the poststart and
/// poststop hooks come from the state, not the caller's memory.
#[test]
fn separate_create_start_and_delete_run_their_hooks() {
    let (mut b, out) = bundle("while :; do sleep 0.05; done");
    b.config["hooks"] = json!({
        "createRuntime": [hook(&out, "echo createRuntime >> \"$OUT/log\"")],
        "poststart": [hook(&out, "echo poststart >> \"$OUT/log\"")],
        "poststop": [hook(&out, "echo poststop >> \"$OUT/log\"")]
    });
    b.write_config();
    let helper = |args: &[&str]| {
        Command::new(HELPER)
            .arg(args[0])
            .arg(b.state_dir())
            .arg("c1")
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(helper(&["create", b.path().to_str().unwrap()]), Some(0));
    assert_eq!(read(&out.join("log")), "createRuntime\n");
    assert_eq!(helper(&["start"]), Some(0));
    assert_eq!(read(&out.join("log")), "createRuntime\npoststart\n");
    assert_eq!(helper(&["kill", "9"]), Some(0));
    wait_until("the container stopped", || helper(&["delete"]) == Some(0));
    assert_eq!(
        read(&out.join("log")),
        "createRuntime\npoststart\npoststop\n"
    );
}

#[test]
fn hooks_the_runtime_cannot_run_are_refused_before_anything_is_made() {
    let (mut b, out) = bundle("echo ran > /tmp/ran");
    let mut zero = hook(&out, "true");
    zero["timeout"] = json!(0);
    let mut relative = hook(&out, "true");
    relative["path"] = json!("bin/sh");
    for (hooks, why) in [
        (
            json!({"startContainer": [{"path": "sh", "args": ["sh"]}]}),
            "startContainer hook sh: the path must be absolute",
        ),
        (
            json!({"createRuntime": [zero]}),
            "timeout 0 must be greater than zero",
        ),
        (
            json!({"poststop": [relative]}),
            "poststop hook bin/sh: the path must be absolute",
        ),
    ] {
        b.config["hooks"] = hooks;
        let o = b.run();
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
        assert!(!b.rootfs().join("tmp/ran").exists());
        assert!(!b.state_dir().join("c1").exists());
    }
}

/// createContainer runs in the container's namespaces before the root
/// switch (a host path still resolves); startContainer in the container,
/// after start, right before the command, with the container's root and PID.
#[test]
fn hooks_inside_the_container_run_there_and_in_order() {
    let (mut b, out) = bundle("cat /start.json > /tmp/seen; echo ran > /tmp/ran");
    let create = r#"
        cat > "$OUT/create-container.json"
        readlink /proc/self/ns/net > "$OUT/netns"
        readlink /proc/self/ns/mnt > "$OUT/mntns"
        [ -e "$ROOTFS/tmp/ran" ] && echo early >> "$OUT/log"
        echo createContainer >> "$OUT/log""#;
    let mut create_hook = hook(&out, create);
    create_hook["env"] = json!([
        format!("OUT={}", out.display()),
        format!("ROOTFS={}", b.rootfs().display())
    ]);
    // Inside the container: its own /bin/sh, its own root.
    let start_hook = json!({"path": "/bin/sh", "args": ["sh", "-c", "cat > /start.json"]});
    b.config["hooks"] = json!({
        "createRuntime": [hook(&out, "echo createRuntime >> \"$OUT/log\"")],
        "createContainer": [create_hook],
        "startContainer": [start_hook],
        "poststart": [hook(&out, "echo poststart >> \"$OUT/log\"")],
    });
    let o = b.run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        read(&out.join("log")),
        "createRuntime\ncreateContainer\npoststart\n"
    );
    let created = json_of(&out.join("create-container.json"));
    assert_eq!(created["status"], "creating");
    assert_eq!(created["id"], "c1");
    assert!(created["pid"].as_i64().unwrap() > 1, "{created}");
    // The container's namespaces, not the runtime's.
    for ns in ["net", "mnt"] {
        let own = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            read(&out.join(format!("{ns}ns"))).trim(),
            own.to_str().unwrap(),
            "{ns}"
        );
    }
    // startContainer wrote into the container's root before the command ran.
    let seen: Value = serde_json::from_str(&read(&b.rootfs().join("tmp/seen"))).unwrap();
    assert_eq!(seen["status"], "created");
    assert_eq!(seen["pid"], 1);
    assert_eq!(seen["id"], "c1");
}

/// A failing startContainer hook keeps the command from running.
#[test]
fn a_failing_start_container_hook_fails_the_start() {
    let (mut b, _out) = bundle("echo ran > /tmp/ran");
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no >&2; exit 3"]}]
    });
    let o = b.run();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("startContainer hook /bin/sh failed: exit status 3: no"),
        "{}",
        stderr(&o)
    );
    assert!(!b.rootfs().join("tmp/ran").exists());
}
