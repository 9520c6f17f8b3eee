use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;

use super::*;
use crate::records::LogConfig;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// Output a container might write: text lines, empty lines, CR, NUL,
/// quotes and backslashes, multi-byte characters, bytes that are not
/// UTF-8, lines far past 16 KiB, and no newline at the end.
fn mixed_output(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size + 64 * 1024);
    while v.len() < size {
        match rng.below(12) {
            0 => v.push(b'\n'),
            1 => v.extend_from_slice(b"progress 50%\r progress 100%\r\n"),
            2 => v.extend_from_slice(b"nul\0 \"quoted\" back\\slash \t tab \x1b[0m\n"),
            3 => v.extend_from_slice("héllo wörld ✓ 🚢\n".as_bytes()),
            4 => v.extend_from_slice(b"bad \xff\xfe utf8 \xe2\x82 cut\n"),
            5 => {
                let n = 16 * 1024 - 2 + rng.below(70_000);
                v.extend((0..n).map(|i| b"abcdefghij\xc3\xa9"[i % 12]));
                v.push(b'\n');
            }
            6 => {
                let n = rng.below(300);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
            _ => {
                let n = rng.below(200);
                v.extend((0..n).map(|i| b'a' + (i % 26) as u8));
                v.push(b'\n');
            }
        }
    }
    v.extend_from_slice(b"no newline at the end");
    v
}

/// Feeds `out` and `err` to a writer in random chunks, interleaved.
fn write_mixed(path: &Path, cfg: &LogConfig, out: &[u8], err: &[u8], rng: &mut Rng) {
    let mut w = LogWriter::open(path, cfg).unwrap();
    let (mut o, mut e) = (0, 0);
    while o < out.len() || e < err.len() {
        let n = 1 + rng.below(70_000);
        if rng.below(2) == 0 && o < out.len() {
            let end = (o + n).min(out.len());
            w.write(Stream::Stdout, &out[o..end]).unwrap();
            o = end;
        } else if e < err.len() {
            let end = (e + n).min(err.len());
            w.write(Stream::Stderr, &err[e..end]).unwrap();
            e = end;
        }
        if rng.below(4) == 0 {
            w.flush().unwrap();
        }
    }
    w.finish().unwrap();
}

fn read_all(path: &Path, opts: &ReadOptions) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    read(path, opts, &mut out, &mut err, &|| true).unwrap();
    (out, err)
}

fn json_file(max_size: Option<u64>, max_file: u32) -> LogConfig {
    LogConfig {
        driver: LogDriver::JsonFile,
        max_size,
        max_file,
    }
}

#[test]
fn mixed_output_comes_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut rng = Rng(7);
    let out = mixed_output(&mut rng, 3 << 20);
    let err = mixed_output(&mut rng, 1 << 20);
    write_mixed(&path, &json_file(None, 1), &out, &err, &mut rng);
    let (o, e) = read_all(&path, &ReadOptions::default());
    assert!(o == out, "stdout differs");
    assert!(e == err, "stderr differs");
    // Every line is an entry Docker's tools can read: JSON with log,
    // stream and time; no `log` over 16 KiB.
    let text = std::fs::read(&path).unwrap();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let bytes = match v["raw"].as_str() {
            Some(r) => base64::engine::general_purpose::STANDARD.decode(r).unwrap(),
            None => v["log"].as_str().unwrap().as_bytes().to_vec(),
        };
        assert!(bytes.len() <= MAX_LINE + 1, "{}", bytes.len());
        assert!(matches!(v["stream"].as_str(), Some("stdout" | "stderr")));
        assert_eq!(v["time"].as_str().unwrap().len(), 30);
    }
}

#[test]
fn one_entry_per_line_in_docker_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(None, 1)).unwrap();
    w.write(Stream::Stdout, b"hel").unwrap();
    w.write(Stream::Stderr, b"oops\n").unwrap();
    w.write(Stream::Stdout, b"lo \"x\"\n\nlast").unwrap();
    w.finish().unwrap();
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with(r#"{"log":"oops\n","stream":"stderr","time":"20"#));
    assert!(lines[1].starts_with(r#"{"log":"hello \"x\"\n","stream":"stdout","time":""#));
    assert!(lines[2].starts_with(r#"{"log":"\n","stream":"stdout""#));
    assert!(lines[3].starts_with(r#"{"log":"last","stream":"stdout""#));
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let t = v["time"].as_str().unwrap();
    assert!(
        t.ends_with('Z') && t.as_bytes()[19] == b'.' && t.len() == 30,
        "{t}"
    );
    let age = time::now_nanos() - time::parse_rfc3339_nanos(t).unwrap();
    assert!((0..60 * time::NANOS).contains(&age), "{t}");
}

#[test]
fn long_lines_are_cut_at_16k_as_docker_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(None, 1)).unwrap();
    let mut line = vec![b'x'; 40_000];
    line.push(b'\n');
    // Fed in small pieces: the cut does not depend on the reads.
    for piece in line.chunks(1000) {
        w.write(Stream::Stdout, piece).unwrap();
    }
    w.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let logs: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["log"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let lens: Vec<usize> = logs.iter().map(String::len).collect();
    assert_eq!(lens, [16384, 16384, 40_000 - 32768 + 1]);
    assert!(!logs[0].ends_with('\n') && logs[2].ends_with('\n'));
}

#[test]
fn bytes_that_are_not_utf8_keep_docker_log_and_exact_raw() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(None, 1)).unwrap();
    w.write(Stream::Stdout, b"a\xffb\n").unwrap();
    w.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(v["log"], "a\u{fffd}b\n");
    assert_eq!(v["raw"], "Yf9iCg==");
    assert_eq!(read_all(&path, &ReadOptions::default()).0, b"a\xffb\n");
}

#[test]
fn rotation_keeps_max_file_files_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(Some(1000), 3)).unwrap();
    for i in 0..200 {
        w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
        if i % 7 == 0 {
            w.flush().unwrap();
        }
    }
    w.finish().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["c-json.log", "c-json.log.1", "c-json.log.2"]);
    for n in &names {
        let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
        assert!(len <= 1000, "{n}: {len}");
    }
    let (out, _) = read_all(&path, &ReadOptions::default());
    let out = String::from_utf8(out).unwrap();
    let nums: Vec<usize> = out
        .lines()
        .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    assert!(nums.len() > 10 && *nums.last().unwrap() == 199, "{out}");
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{out}");
}

#[test]
fn max_file_one_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(Some(500), 1)).unwrap();
    for i in 0..50 {
        w.write(Stream::Stderr, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    w.finish().unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let (_, err) = read_all(&path, &ReadOptions::default());
    assert!(String::from_utf8(err).unwrap().ends_with("line 49\n"));
}

#[test]
fn tail_reads_from_the_end_across_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(Some(600), 50)).unwrap();
    for i in 0..100 {
        let s = if i % 3 == 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        w.write(s, format!("{i}\n").as_bytes()).unwrap();
    }
    w.finish().unwrap();
    assert!(path.with_extension("log.5").exists(), "several files");
    let lines = |n: Option<usize>| {
        let opts = ReadOptions {
            tail: n,
            ..Default::default()
        };
        let (o, e) = read_all(&path, &opts);
        let mut all: Vec<usize> = String::from_utf8([o, e].concat())
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        all.sort();
        all
    };
    assert_eq!(lines(Some(7)), (93..100).collect::<Vec<_>>());
    assert_eq!(lines(Some(0)), Vec::<usize>::new());
    assert_eq!(lines(Some(40)), (60..100).collect::<Vec<_>>());
    assert_eq!(lines(Some(1000)), (0..100).collect::<Vec<_>>());
    assert_eq!(lines(None), (0..100).collect::<Vec<_>>());
}

/// A log as Docker writes it: its time drops trailing zeros, `<` is
/// escaped, `attrs` comes before `time`.
const DOCKER_LOG: &str = concat!(
    r#"{"log":"one \u003cb\u003e\n","stream":"stdout","time":"2024-01-02T03:04:05.5Z"}"#,
    "\n",
    r#"{"log":"two\n","stream":"stderr","attrs":{"tag":"web 1"},"time":"2024-01-02T03:04:06Z"}"#,
    "\n",
    r#"{"log":"three\n","stream":"stdout","time":"2024-01-02T03:04:07.000000001Z"}"#,
    "\n",
);

#[test]
fn docker_written_lines_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    std::fs::write(&path, DOCKER_LOG).unwrap();
    let (o, e) = read_all(&path, &ReadOptions::default());
    assert_eq!(String::from_utf8(o).unwrap(), "one <b>\nthree\n");
    assert_eq!(String::from_utf8(e).unwrap(), "two\n");
    let opts = ReadOptions {
        timestamps: true,
        details: true,
        ..Default::default()
    };
    let (o, e) = read_all(&path, &opts);
    assert_eq!(
        String::from_utf8(o).unwrap(),
        "2024-01-02T03:04:05.500000000Z  one <b>\n2024-01-02T03:04:07.000000001Z  three\n"
    );
    assert_eq!(
        String::from_utf8(e).unwrap(),
        "2024-01-02T03:04:06.000000000Z tag=web+1 two\n"
    );
}

#[test]
fn since_and_until_filter_inclusively() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    std::fs::write(&path, DOCKER_LOG).unwrap();
    let at = |s: &str| parse_bound("since", s, 0).unwrap();
    let both = |since: Option<i64>, until: Option<i64>| {
        let opts = ReadOptions {
            since,
            until,
            ..Default::default()
        };
        let (o, e) = read_all(&path, &opts);
        String::from_utf8([o, e].concat()).unwrap()
    };
    assert_eq!(both(Some(at("2024-01-02T03:04:06Z")), None), "three\ntwo\n");
    assert_eq!(both(Some(at("2024-01-02T03:04:06.1Z")), None), "three\n");
    assert_eq!(both(None, Some(at("1704164646"))), "one <b>\ntwo\n");
    assert_eq!(
        both(
            Some(at("2024-01-02T04:04:05.5+01:00")),
            Some(at("1704164645.5"))
        ),
        "one <b>\n"
    );
    // The same from a file berth wrote (the fast path's own time check).
    let p2 = log_path(dir.path(), "d");
    let mut w = LogWriter::open(&p2, &json_file(None, 1)).unwrap();
    w.write(Stream::Stdout, b"now\n").unwrap();
    w.finish().unwrap();
    let now = time::now_nanos();
    let only = |since: i64| {
        let opts = ReadOptions {
            since: Some(since),
            ..Default::default()
        };
        read_all(&p2, &opts).0
    };
    assert_eq!(only(now - 60 * time::NANOS), b"now\n");
    assert!(only(now + 1).is_empty());
}

#[test]
fn timestamps_prefix_lines_not_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    let mut w = LogWriter::open(&path, &json_file(None, 1)).unwrap();
    let long = [vec![b'y'; 20_000], b"\nshort\n".to_vec()].concat();
    w.write(Stream::Stdout, &long).unwrap();
    w.finish().unwrap();
    let opts = ReadOptions {
        timestamps: true,
        ..Default::default()
    };
    let out = String::from_utf8(read_all(&path, &opts).0).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let (t, rest) = l.split_once(' ').unwrap();
        assert_eq!(t.len(), 30, "{t}");
        assert!(time::parse_rfc3339_nanos(t).is_some(), "{t}");
        assert!(!rest.contains('Z'));
    }
    assert_eq!(lines[0].len(), 31 + 20_000);
}

#[test]
fn a_missing_log_or_a_bad_line_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    assert_eq!(read_all(&path, &ReadOptions::default()), (vec![], vec![]));
    std::fs::write(
        &path,
        "garbage\n{\"log\":\"ok\\n\",\"stream\":\"stdout\",\"time\":\"x\"}\n{\"log\":",
    )
    .unwrap();
    assert_eq!(read_all(&path, &ReadOptions::default()).0, b"ok\n");
}

#[test]
fn follow_reads_across_rotation_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    std::fs::write(&path, "").unwrap();
    let stopped = Arc::new(AtomicBool::new(false));
    let (p, s) = (path.clone(), stopped.clone());
    let writer = std::thread::spawn(move || {
        let mut w = LogWriter::open(&p, &json_file(Some(4096), 1000)).unwrap();
        let mut want = Vec::new();
        for i in 0..3000 {
            let line = format!("line {i}\n");
            w.write(Stream::Stdout, line.as_bytes()).unwrap();
            want.extend_from_slice(line.as_bytes());
            if i % 50 == 0 {
                w.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        w.write(Stream::Stdout, b"unfinished").unwrap();
        want.extend_from_slice(b"unfinished");
        w.finish().unwrap();
        s.store(true, Ordering::SeqCst);
        want
    });
    let opts = ReadOptions {
        follow: true,
        ..Default::default()
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let t0 = std::time::Instant::now();
    read(&path, &opts, &mut out, &mut err, &|| {
        stopped.load(Ordering::SeqCst)
    })
    .unwrap();
    let want = writer.join().unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    assert!(path.with_extension("log.3").exists(), "the writer rotated");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(want).unwrap()
    );
}

#[test]
fn follow_ends_soon_after_stopped_without_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), "c");
    std::fs::write(&path, "").unwrap();
    let opts = ReadOptions {
        follow: true,
        ..Default::default()
    };
    let since = std::time::Instant::now();
    let stop_at = since + std::time::Duration::from_millis(300);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    read(&path, &opts, &mut out, &mut err, &|| {
        std::time::Instant::now() > stop_at
    })
    .unwrap();
    // Woken by the 1 s timeout at the latest.
    assert!(since.elapsed() < std::time::Duration::from_millis(2500));
}

#[test]
fn log_opts_parse_as_docker_does() {
    let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let c = LogConfig::parse(None, &opts(&["max-size=10m", "max-file=3"])).unwrap();
    assert_eq!(
        (c.driver, c.max_size, c.max_file),
        (LogDriver::JsonFile, Some(10 << 20), 3)
    );
    let c = LogConfig::parse(Some("json-file"), &opts(&["max-size=1.5k"])).unwrap();
    assert_eq!(c.max_size, Some(1536));
    assert_eq!(
        LogConfig::parse(Some("none"), &[]).unwrap().driver,
        LogDriver::None
    );
    let err = |d: Option<&str>, o: &[&str]| LogConfig::parse(d, &opts(o)).unwrap_err().to_string();
    assert_eq!(
        err(None, &["x=1"]),
        "unknown log opt 'x' for json-file log driver"
    );
    assert!(err(None, &["max-size=abc"]).contains("max-size=abc"));
    assert!(err(None, &["max-size=0"]).contains("positive"));
    assert_eq!(err(None, &["max-file=0"]), "max-file cannot be less than 1");
    assert!(err(None, &["max-file=x"]).contains("max-file=x"));
    assert!(err(Some("journald"), &[]).contains("not supported"));
    assert!(err(Some("bogus"), &[]).contains("no log driver named 'bogus'"));
    assert!(err(Some("none"), &["max-size=1m"]).contains("invalid logging opts"));
}

#[test]
fn bounds_parse_in_docker_forms() {
    let now = 1_700_000_000 * time::NANOS;
    let p = |s: &str| parse_bound("since", s, now).unwrap();
    assert_eq!(p("1700000000"), now);
    assert_eq!(p("1700000000.25"), now + time::NANOS / 4);
    assert_eq!(p("10m"), now - 600 * time::NANOS);
    assert_eq!(p("1h30m"), now - 5400 * time::NANOS);
    assert_eq!(p("1.5h"), now - 5400 * time::NANOS);
    assert_eq!(p("300ms"), now - 300_000_000);
    assert_eq!(p("2023-11-14T22:13:20Z"), now);
    assert_eq!(p("2023-11-14T22:13:20.5Z"), now + time::NANOS / 2);
    assert_eq!(p("2023-11-14T23:13:20+01:00"), now);
    assert_eq!(p("2023-11-14T22:13:20"), now);
    assert_eq!(
        p("2023-11-14"),
        now - (22 * 3600 + 13 * 60 + 20) * time::NANOS
    );
    for bad in [
        "",
        "yesterday",
        "10x",
        "1.",
        "2023-11-14T22:1",
        "✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓✓",
    ] {
        let e = parse_bound("since", bad, now).unwrap_err().to_string();
        assert!(e.starts_with("invalid value for \"since\""), "{bad}: {e}");
    }
}

#[test]
fn escaping_agrees_with_serde_json() {
    let mut rng = Rng(99);
    for _ in 0..2000 {
        let n = rng.below(64);
        let s: String = (0..n)
            .map(|_| match rng.below(4) {
                0 => char::from_u32(rng.below(0x80) as u32).unwrap(),
                1 => ['"', '\\', '\n', '\u{7f}', '\u{1}'][rng.below(5)],
                2 => char::from_u32(0x80 + rng.below(0x2000) as u32).unwrap_or('x'),
                _ => '🚢',
            })
            .collect();
        let mut out = Vec::new();
        assert!(json::escape_into(&mut out, s.as_bytes()));
        let quoted = [b"\"".as_slice(), &out, b"\""].concat();
        let back: String = serde_json::from_slice(&quoted).unwrap();
        assert_eq!(back, s);
        let mut un = Vec::new();
        let end = json::unescape_into(&mut un, &quoted[1..]).unwrap();
        assert_eq!((end, un.as_slice()), (quoted.len() - 2, s.as_bytes()));
        // serde_json's own escaping (\u escapes, surrogate pairs) too.
        let theirs = serde_json::to_string(&s)
            .unwrap()
            .replace('🚢', "\\ud83d\\udea2");
        un.clear();
        json::unescape_into(&mut un, &theirs.as_bytes()[1..]).unwrap();
        assert_eq!(un, s.as_bytes());
    }
}

/// CPU time of this thread, in seconds (the machine is shared: wall time
/// says little).
fn cpu() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Writer and reader throughput: `BERTH_LOG_BENCH_MB` (default 1024) MB
/// of 100-byte lines, of 1 MiB lines, and of binary, fed in 64 KiB
/// chunks as pipe reads give them; then read back. Run with
/// `cargo test -p berth-engine --lib logs::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
#[allow(clippy::print_stderr)]
fn throughput() {
    let mb: usize = std::env::var("BERTH_LOG_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut rng = Rng(1);
    let text_line = |rng: &mut Rng| {
        let mut l: Vec<u8> = (0..99)
            .map(|_| b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789:=.,-"[rng.below(52)])
            .collect();
        l.push(b'\n');
        l
    };
    let short: Vec<u8> = (0..8000).flat_map(|_| text_line(&mut rng)).collect();
    let long: Vec<u8> = (0..1 << 20)
        .map(|i| {
            if i % (1 << 20) == (1 << 20) - 1 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    let json_line = |rng: &mut Rng| {
        format!(
            "{{\"level\":\"info\",\"ts\":\"2026-01-02T03:04:05.{:06}Z\",\"msg\":\"request done\",\"path\":\"/api/v1/items/{}\",\"status\":200}}\n",
            rng.below(1_000_000),
            rng.below(100_000)
        )
        .into_bytes()
    };
    let app: Vec<u8> = (0..8000).flat_map(|_| json_line(&mut rng)).collect();
    let binary: Vec<u8> = (0..1 << 20).map(|_| rng.next() as u8).collect();
    let only = std::env::var("BERTH_LOG_BENCH_ONLY").unwrap_or_default();
    for (name, data) in [
        ("100-byte lines", &short),
        ("json app lines", &app),
        ("1 MiB lines", &long),
        ("binary", &binary),
    ] {
        if !name.starts_with(&only) {
            continue;
        }
        let path = log_path(dir.path(), name.split(' ').next().unwrap());
        let total = mb << 20;
        let t = std::time::Instant::now();
        let c = cpu();
        let mut w = LogWriter::open(&path, &json_file(None, 1)).unwrap();
        let mut done = 0;
        let mut at = 0;
        while done < total {
            let end = (at + 65536).min(data.len());
            w.write(Stream::Stdout, &data[at..end]).unwrap();
            done += end - at;
            at = if end == data.len() { 0 } else { end };
        }
        w.finish().unwrap();
        let (wt, wc) = (t.elapsed().as_secs_f64(), cpu() - c);
        let size = std::fs::metadata(&path).unwrap().len();
        let t = std::time::Instant::now();
        let c = cpu();
        let (mut out, mut err) = (std::io::sink(), std::io::sink());
        read(&path, &ReadOptions::default(), &mut out, &mut err, &|| true).unwrap();
        let (rt, rc) = (t.elapsed().as_secs_f64(), cpu() - c);
        eprintln!(
            "{name}: {mb} MB written in {wt:.2} s, {wc:.2} s of CPU ({:.0} MB/s a CPU second; file {} MB); \
             read back in {rt:.2} s, {rc:.2} s of CPU ({:.0} MB/s)",
            mb as f64 / wc,
            size >> 20,
            mb as f64 / rc
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn utf8_checked_as_std_does() {
    let mut rng = Rng(5);
    for _ in 0..200_000 {
        let n = 1 + rng.below(6);
        let s: Vec<u8> = (0..n)
            .map(|_| match rng.below(3) {
                0 => 0x80 + rng.below(0x40) as u8,
                1 => 0xC0 + rng.below(0x40) as u8,
                _ => rng.next() as u8,
            })
            .collect();
        let mut out = Vec::new();
        let exact = json::escape_into(&mut out, &s);
        assert_eq!(exact, std::str::from_utf8(&s).is_ok(), "{s:x?}");
        let back: String = serde_json::from_slice(&[b"\"", &out[..], b"\""].concat()).unwrap();
        if exact {
            assert_eq!(back.as_bytes(), s);
        }
    }
}
