//! `berth logs` end to end, over logs the engine's writer makes in a
//! container's directory (the monitor that will write them for detached
//! containers is not here yet), and `run`'s log flags.

mod common;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_engine::logs::{LogWriter, Stream, log_path};
use berth_engine::records::LogConfig;
use common::*;

/// Writes a container record under `r` (no container behind it) and
/// returns its directory and id. `extra` is merged into the record.
fn record(r: &Root, name: &str, extra: serde_json::Value) -> (PathBuf, String) {
    let id = format!(
        "{:0>64}",
        format!(
            "{:x}",
            name.len() * 0x1234_5678 + name.as_bytes()[0] as usize
        )
    );
    let dir = r.path().join("containers").join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut v = serde_json::json!({
        "id": id, "name": name, "image": "busybox", "image_id": "sha256:00",
        "command": ["sh"], "created": "2026-01-01T00:00:00.000000000Z",
        "status": "exited", "exit_code": 0,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    std::fs::write(dir.join("container.json"), v.to_string()).unwrap();
    (dir, id)
}

fn writer(dir: &std::path::Path, id: &str) -> LogWriter {
    LogWriter::open(&log_path(dir, id), &LogConfig::default()).unwrap()
}

#[test]
fn logs_keeps_stdout_and_stderr_apart() {
    let r = Root::new();
    let (dir, id) = record(&r, "web", serde_json::json!({}));
    let mut w = writer(&dir, &id);
    for i in 0..5 {
        w.write(Stream::Stdout, format!("out {i}\n").as_bytes())
            .unwrap();
        w.write(Stream::Stderr, format!("err {i}\n").as_bytes())
            .unwrap();
    }
    w.finish().unwrap();
    let o = r.berth().args(["logs", "web"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out 0\nout 1\nout 2\nout 3\nout 4\n");
    assert_eq!(stderr(&o), "err 0\nerr 1\nerr 2\nerr 3\nerr 4\n");

    let o = r
        .berth()
        .args(["container", "logs", "--tail", "2", &id[..12]])
        .output()
        .unwrap();
    assert_eq!(
        (stdout(&o), stderr(&o)),
        ("out 4\n".into(), "err 4\n".into())
    );

    let o = r
        .berth()
        .args(["logs", "-n", "1", "-t", "web"])
        .output()
        .unwrap();
    let line = stderr(&o);
    let (t, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "err 4\n");
    assert!(
        t.len() == 30 && t.ends_with('Z') && t.starts_with("20"),
        "{line}"
    );
    assert_eq!(stdout(&o), "");

    let o = r
        .berth()
        .args(["logs", "--since", "1h", "--until", "1970-01-02", "web"])
        .output()
        .unwrap();
    assert_eq!(
        (code(&o), stdout(&o), stderr(&o)),
        (0, String::new(), String::new())
    );
    let o = r
        .berth()
        .args(["logs", "--since", "10m", "web"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o).lines().count(), 5);
}

#[test]
fn logs_errors_as_docker_says_them() {
    let r = Root::new();
    let o = r.berth().args(["logs", "nope"]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: nope\n"
    );

    record(&r, "quiet", serde_json::json!({"log": {"driver": "none"}}));
    let o = r.berth().args(["logs", "quiet"]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "Error response from daemon: configured logging driver does not support reading\n"
    );

    record(&r, "web", serde_json::json!({}));
    let o = r
        .berth()
        .args(["logs", "--since", "yesterday", "web"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("invalid value for \"since\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn run_refuses_bad_log_opts_before_anything_is_made() {
    let r = Root::new();
    for (args, want) in [
        (vec!["--log-opt", "max-size=abc"], "max-size=abc"),
        (
            vec!["--log-opt", "colour=red"],
            "unknown log opt 'colour' for json-file log driver",
        ),
        (
            vec!["--log-opt", "max-file=0"],
            "max-file cannot be less than 1",
        ),
        (vec!["--log-driver", "syslog"], "not supported"),
        (
            vec!["--log-driver", "none", "--log-opt", "max-size=1m"],
            "invalid logging opts for driver none",
        ),
    ] {
        let mut all = vec!["--rm"];
        all.extend(&args);
        all.extend([BUSYBOX, "true"]);
        let o = r.run(&all);
        assert_eq!(code(&o), 125, "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(want) && e.lines().count() == 1, "{args:?}: {e}");
    }
    assert!(r.container_ids().is_empty());
}

/// Output a container might write: lines of text, long lines, CR, NUL,
/// multi-byte characters, bytes that are not UTF-8, binary.
fn mixed(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut v = Vec::with_capacity(size + 100_000);
    while v.len() < size {
        match next() % 10 {
            0 => v.extend_from_slice(b"\r\n\0\t\"\\ \xc3\xa9\xe2\x9c\x93 \xff\xfe\n"),
            1 => v.extend((0..20_000 + next() % 50_000).map(|i| b'a' + (i % 26) as u8)),
            2 => v.extend((0..next() % 2000).map(|_| next() as u8)),
            _ => {
                v.extend((0..next() % 150).map(|i| b' ' + (i % 90) as u8));
                v.push(b'\n');
            }
        }
    }
    v
}

#[test]
fn a_hundred_megabytes_come_back_byte_for_byte() {
    let r = Root::new();
    let (dir, id) = record(&r, "big", serde_json::json!({}));
    let out = mixed(1, 70 << 20);
    let err = mixed(2, 30 << 20);
    let mut w = writer(&dir, &id);
    let (mut o, mut e) = (0, 0);
    let mut n = 0usize;
    while o < out.len() || e < err.len() {
        // Pipe-sized pieces, the streams interleaved unevenly.
        n = n.wrapping_mul(31).wrapping_add(7);
        let len = 1 + n % 65536;
        if !n.is_multiple_of(3) && o < out.len() || e == err.len() {
            let end = (o + len).min(out.len());
            w.write(Stream::Stdout, &out[o..end]).unwrap();
            o = end;
        } else {
            let end = (e + len).min(err.len());
            w.write(Stream::Stderr, &err[e..end]).unwrap();
            e = end;
        }
    }
    w.finish().unwrap();
    let got = r.berth().args(["logs", "big"]).output().unwrap();
    assert_eq!(code(&got), 0);
    assert!(
        got.stdout == out,
        "stdout differs ({} bytes, {} written)",
        got.stdout.len(),
        out.len()
    );
    assert!(
        got.stderr == err,
        "stderr differs ({} bytes, {} written)",
        got.stderr.len(),
        err.len()
    );
}

#[test]
fn follow_ends_when_the_container_stops() {
    let r = Root::new();
    // A live process stands for the container's monitor.
    let mut monitor = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = monitor.id() as i32;
    let start = berth_linux::stat::start_time(pid).unwrap();
    let running = serde_json::json!({"status": "running", "supervisor": [pid, start]});
    let (dir, id) = record(&r, "live", running);
    let mut w = writer(&dir, &id);
    w.write(Stream::Stdout, b"before\n").unwrap();
    w.flush().unwrap();
    let mut child = r
        .berth()
        .args(["logs", "-f", "live"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // What is written while it follows shows up.
    for want in ["before\n", "during\n"] {
        while !got.ends_with(want.as_bytes()) {
            let n = stdout.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "logs -f ended early: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        w.write(Stream::Stdout, b"during\n").unwrap();
        w.flush().unwrap();
    }
    assert_eq!(got, b"before\nduring\n");
    // The container stops: the last words are read and logs -f ends.
    w.write(Stream::Stdout, b"last words").unwrap();
    w.finish().unwrap();
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    let stopped = Instant::now();
    stdout.read_to_end(&mut got).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "before\nduring\nduring\nlast words"
    );
}

#[test]
fn logs_into_a_closed_pipe_is_not_an_error() {
    let r = Root::new();
    let (dir, id) = record(&r, "chatty", serde_json::json!({}));
    let mut w = writer(&dir, &id);
    for i in 0..200_000 {
        w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    w.finish().unwrap();
    let mut child = r
        .berth()
        .args(["logs", "chatty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(&first, b"line 0\nlin");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}
