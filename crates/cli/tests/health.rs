//! Health checks end to end: `--health-*` and the image's HEALTHCHECK, run
//! by a detached container's monitor as execs; `ps` STATUS and
//! `--filter health=`, `inspect`'s State.Health and Config.Healthcheck.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn b(r: &Root, args: &[&str]) -> std::process::Output {
    r.berth().args(args).output().unwrap()
}

fn run_d(r: &Root, args: &[&str]) -> String {
    let o = b(r, &[&["run", "-d"][..], args].concat());
    assert_eq!(code(&o), 0, "run -d {args:?}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

fn inspect(r: &Root, name: &str) -> Value {
    let o = b(r, &["inspect", name]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v[0].clone()
}

fn health(r: &Root, name: &str) -> Value {
    inspect(r, name)["State"]["Health"].clone()
}

/// ps's STATUS of container `name`.
fn ps_status(r: &Root, name: &str) -> String {
    let o = b(
        r,
        &[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.Status}}",
        ],
    );
    stdout(&o).trim().to_string()
}

/// Names `ps --filter health=WHAT` lists.
fn ps_health(r: &Root, what: &str) -> Vec<String> {
    let o = b(
        r,
        &[
            "ps",
            "--filter",
            &format!("health={what}"),
            "--format",
            "{{.Names}}",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    stdout(&o).lines().map(str::to_string).collect()
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_status(r: &Root, name: &str, status: &str) -> Value {
    let mut last = Value::Null;
    wait_until(&format!("{name} {status}"), 30, || {
        last = health(r, name);
        last["Status"] == status
    });
    last
}

/// The monitor's pid (the record's supervisor).
fn monitor_pid(r: &Root, id: &str) -> i64 {
    let p = r.path().join("containers").join(id).join("container.json");
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["supervisor"][0].as_i64().unwrap()
}

/// The children of `pid` (`/proc/*/stat`): (pid, state).
fn children(pid: i64) -> Vec<(i64, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let mut f = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<i64>().ok()) == Some(pid) {
            out.push((e.file_name().to_string_lossy().parse().unwrap_or(0), state));
        }
    }
    out
}

#[test]
fn starting_healthy_unhealthy_with_start_period() {
    let r = Root::new();
    run_d(
        &r,
        &[
            "--name",
            "web",
            "--health-cmd",
            "echo out; echo err >&2; test -f /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "--health-start-period",
            "1m",
            "--health-start-interval",
            "200ms",
            BUSYBOX,
            "sleep",
            "1000",
        ],
    );
    let hc = &inspect(&r, "web")["Config"]["Healthcheck"];
    assert_eq!(
        *hc,
        json!({"Test": ["CMD-SHELL", "echo out; echo err >&2; test -f /tmp/ok"],
               "Interval": 200_000_000u64, "Retries": 2,
               "StartPeriod": 60_000_000_000u64, "StartInterval": 200_000_000u64})
    );
    assert!(
        ps_status(&r, "web").ends_with(" (health: starting)"),
        "{}",
        ps_status(&r, "web")
    );
    // Failures inside the start period do not count.
    let mut h = Value::Null;
    wait_until("3 failed checks", 30, || {
        h = health(&r, "web");
        h["Log"].as_array().is_some_and(|l| l.len() >= 3)
    });
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let last = &h["Log"][h["Log"].as_array().unwrap().len() - 1];
    assert_eq!(last["ExitCode"], 1, "{h}");
    assert_eq!(last["Output"], "out\nerr\n", "{h}");
    assert!(last["Start"].as_str().unwrap() <= last["End"].as_str().unwrap());
    assert_eq!(ps_health(&r, "starting"), ["web"]);

    assert_eq!(code(&b(&r, &["exec", "web", "touch", "/tmp/ok"])), 0);
    let h = wait_status(&r, "web", "healthy");
    assert_eq!(h["FailingStreak"], 0);
    assert!(ps_status(&r, "web").ends_with(" (healthy)"));
    assert_eq!(ps_health(&r, "healthy"), ["web"]);
    assert!(ps_health(&r, "starting").is_empty());

    // Once healthy, the start period excuses nothing: 2 failures.
    assert_eq!(code(&b(&r, &["exec", "web", "rm", "/tmp/ok"])), 0);
    let h = wait_status(&r, "web", "unhealthy");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    assert!(h["Log"].as_array().unwrap().len() <= 5, "{h}");
    assert!(ps_status(&r, "web").ends_with(" (unhealthy)"));
    assert_eq!(ps_health(&r, "unhealthy"), ["web"]);
    let _ = b(&r, &["rm", "-f", "web"]);
}

#[test]
fn a_check_past_its_timeout_is_killed_and_reaped() {
    let r = Root::new();
    let id = run_d(
        &r,
        &[
            "--name",
            "slow",
            "--health-cmd",
            "sleep 10",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "300ms",
            "--health-retries",
            "2",
            BUSYBOX,
            "sleep",
            "1000",
        ],
    );
    let h = wait_status(&r, "slow", "unhealthy");
    let log = h["Log"].as_array().unwrap();
    let last = &log[log.len() - 1];
    assert_eq!(last["ExitCode"], -1, "{h}");
    assert_eq!(last["Output"], "Health check exceeded timeout (300ms)");
    // Let a few more checks time out: each was killed and reaped, so the
    // monitor has PID 1 and at most the check now running as children,
    // and the container at most that one `sleep 10`, no zombie.
    std::thread::sleep(Duration::from_millis(1500));
    let kids = children(monitor_pid(&r, &id));
    assert!(kids.len() <= 2, "{kids:?}");
    assert!(kids.iter().all(|(_, s)| *s != 'Z'), "{kids:?}");
    let o = b(&r, &["exec", "slow", "ps", "-o", "stat,args"]);
    let ps = stdout(&o);
    assert!(ps.matches("sleep 10").count() <= 1, "{ps}");
    assert!(!ps.lines().any(|l| l.trim_start().starts_with('Z')), "{ps}");
    let _ = b(&r, &["rm", "-f", "slow"]);
}

#[test]
fn checks_stop_with_the_container_and_health_is_kept() {
    let r = Root::new();
    let id = run_d(
        &r,
        &[
            "--name",
            "ok",
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            BUSYBOX,
            "sleep",
            "1000",
        ],
    );
    wait_status(&r, "ok", "healthy");
    let monitor = monitor_pid(&r, &id);
    assert_eq!(code(&b(&r, &["stop", "-t", "1", "ok"])), 0);
    wait_until("the monitor to end", 30, || {
        !std::path::Path::new(&format!("/proc/{monitor}")).exists() || children(monitor).is_empty()
    });
    let before = health(&r, "ok");
    std::thread::sleep(Duration::from_millis(800));
    let after = health(&r, "ok");
    assert_eq!(before, after, "no check ran after the stop");
    assert_eq!(after["Status"], "healthy");
    assert!(ps_status(&r, "ok").starts_with("Exited"));
    assert!(ps_health(&r, "healthy").is_empty(), "ps lists running only");
    // A start checks anew, from `starting`.
    assert_eq!(code(&b(&r, &["start", "ok"])), 0);
    let h = health(&r, "ok");
    assert!(h["Status"] == "starting" || h["Status"] == "healthy", "{h}");
    wait_status(&r, "ok", "healthy");
    let _ = b(&r, &["rm", "-f", "ok"]);
}

#[test]
fn no_healthcheck_conflicts_with_health_flags() {
    let r = Root::new();
    for flags in [
        &["--health-cmd", "true"][..],
        &["--health-retries", "2"],
        &["--health-interval", "1s"],
    ] {
        let o = b(
            &r,
            &[
                &["run", "-d", "--no-healthcheck"][..],
                flags,
                &[BUSYBOX, "true"],
            ]
            .concat(),
        );
        assert_eq!(code(&o), 125, "{flags:?}");
        assert!(
            stderr(&o).contains("--no-healthcheck conflicts with --health-* options"),
            "{}",
            stderr(&o)
        );
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    let o = b(
        &r,
        &["run", "-d", "--health-interval", "5x", BUSYBOX, "true"],
    );
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("unknown unit \"x\" in duration"),
        "{}",
        stderr(&o)
    );
    let o = b(
        &r,
        &["run", "-d", "--health-timeout", "-1s", BUSYBOX, "true"],
    );
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("--health-timeout cannot be negative"));
    let o = b(&r, &["ps", "--filter", "health=sick"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("Unrecognised filter value for health: sick"));
    assert!(r.container_ids().is_empty());
}

#[test]
fn the_images_healthcheck_merged_with_the_flags() {
    let image = push_image(
        "healthcheck",
        &[],
        json!({"Healthcheck": {"Test": ["CMD-SHELL", "test -f /etc/passwd"],
                               "Interval": 200_000_000u64, "Retries": 4}}),
    );
    let r = Root::new();
    run_d(&r, &["--name", "img", "-q", &image, "sleep", "1000"]);
    wait_status(&r, "img", "healthy");
    let hc = &inspect(&r, "img")["Config"]["Healthcheck"];
    assert_eq!(hc["Test"], json!(["CMD-SHELL", "test -f /etc/passwd"]));
    assert_eq!(hc["Retries"], 4);

    // A flag overrides its field only.
    run_d(
        &r,
        &[
            "--name",
            "over",
            "--health-cmd",
            "exit 1",
            "--health-retries",
            "1",
            &image,
            "sleep",
            "1000",
        ],
    );
    let h = wait_status(&r, "over", "unhealthy");
    assert_eq!(h["FailingStreak"], 1);
    let hc = &inspect(&r, "over")["Config"]["Healthcheck"];
    assert_eq!(hc["Interval"], 200_000_000u64);
    assert_eq!(hc["Retries"], 1);

    // --no-healthcheck: not checked at all.
    run_d(
        &r,
        &[
            "--name",
            "none",
            "--no-healthcheck",
            &image,
            "sleep",
            "1000",
        ],
    );
    let d = inspect(&r, "none");
    assert_eq!(d["Config"]["Healthcheck"]["Test"], json!(["NONE"]));
    assert!(d["State"].get("Health").is_none(), "{d}");
    assert!(ps_status(&r, "none").starts_with("Up "));
    assert!(!ps_status(&r, "none").contains('('));
    assert_eq!(ps_health(&r, "none"), ["none"]);
    for n in ["img", "over", "none"] {
        let _ = b(&r, &["rm", "-f", n]);
    }
}
