//! The `--init` process, run as PID 1 inside real containers (the helper
//! binary is bind-mounted at /sbin/berth-init and runs it as `init -- CMD`).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

fn with_init(script: &str) -> Bundle {
    let mut b = Bundle::new(&["/sbin/berth-init", "init", "--", "sh", "-c", script]);
    b.config["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": "/sbin/berth-init", "type": "bind", "source": HELPER, "options": ["bind", "ro"]
    }));
    b
}

#[test]
fn init_is_pid_1_and_reaps_orphans() {
    // The inner sh exits at once, orphaning its background sleep to PID 1;
    // only a reaping init makes that process vanish from /proc.
    let o = with_init(
        "sh -c 'sleep 0.1 & echo $! > /tmp/orphan'; p=$(cat /tmp/orphan); i=0; \
         while [ -e /proc/$p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
         [ -e /proc/$p ] && echo zombie || echo reaped; echo $$; tr '\\0' ' ' < /proc/1/cmdline",
    )
    .run();
    assert_eq!(
        stdout(&o),
        "reaped\n2\n/sbin/berth-init init -- sh -c sh -c 'sleep 0.1 & echo $! > /tmp/orphan'; p=$(cat /tmp/orphan); i=0; while [ -e /proc/$p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; [ -e /proc/$p ] && echo zombie || echo reaped; echo $$; tr '\\0' ' ' < /proc/1/cmdline ",
        "{}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn init_passes_exit_code_through() {
    assert_eq!(with_init("exit 9").run().status.code(), Some(9));
}

fn run_until_ready_then_signal(b: &Bundle, sig: i32) -> (String, Option<i32>) {
    let mut child = b
        .command(false)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: plain kill of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    (rest, child.wait().unwrap().code())
}

#[test]
fn init_forwards_signals_to_the_command() {
    let b =
        with_init("trap 'echo got TERM; exit 5' TERM; echo ready; while :; do sleep 0.05; done");
    assert_eq!(
        run_until_ready_then_signal(&b, libc::SIGTERM),
        ("got TERM\n".into(), Some(5))
    );
}

#[test]
fn under_init_the_command_has_default_signal_actions() {
    // Not PID 1 any more: an untrapped SIGTERM kills the shell (128+15).
    let b = with_init("echo ready; while :; do sleep 0.05; done");
    assert_eq!(
        run_until_ready_then_signal(&b, libc::SIGTERM),
        (String::new(), Some(143))
    );
}
