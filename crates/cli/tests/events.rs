//! `berth events`, `version`, `system df` and `system prune` end to end,
//! with real containers: the events each action records, filters,
//! following, concurrent writers and rotation.

mod common;

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn b(r: &Root, args: &[&str]) -> std::process::Output {
    r.berth().args(args).output().unwrap()
}

fn ok(r: &Root, args: &[&str]) -> String {
    let o = b(r, args);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The recorded events (JSON), filtered by `filters`.
fn events(r: &Root, filters: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "events", "--since", "0", "--until", "now", "--format", "json",
    ];
    for f in filters {
        args.extend(["--filter", f]);
    }
    ok(r, &args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn actions(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn container_life_is_recorded_in_order() {
    fixture();
    let r = Root::new();
    let id = ok(
        &r,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--label",
            "tier=front",
            BUSYBOX,
            "sleep",
            "60",
        ],
    )
    .trim()
    .to_string();
    ok(&r, &["kill", "-s", "USR1", "web"]);
    ok(&r, &["exec", "web", "true"]);
    ok(&r, &["stop", "-t", "0", "web"]);
    ok(&r, &["rename", "web", "db"]);
    ok(&r, &["rm", "db"]);
    let evs = events(&r, &["type=container"]);
    assert_eq!(
        actions(&evs),
        [
            "create",
            "start",
            "kill",
            "exec_create: true",
            "exec_start: true",
            "exec_die",
            "kill",
            "kill",
            "die",
            "stop",
            "rename",
            "destroy"
        ]
    );
    for e in &evs {
        assert_eq!(e["Type"], "container");
        assert_eq!(e["Actor"]["ID"], id.as_str());
        assert_eq!(e["id"], id.as_str());
        assert_eq!(e["from"], BUSYBOX);
        assert_eq!(e["scope"], "local");
        assert_eq!(e["Actor"]["Attributes"]["image"], BUSYBOX);
        // Every event, create's too, carries the container's labels.
        assert_eq!(e["Actor"]["Attributes"]["tier"], "front", "{e}");
        let t = e["timeNano"].as_i64().unwrap();
        assert_eq!(e["time"].as_i64().unwrap(), t / 1_000_000_000);
    }
    assert_eq!(evs[2]["Actor"]["Attributes"]["signal"], "10");
    assert_eq!(evs[5]["Actor"]["Attributes"]["exitCode"], "0");
    assert_eq!(evs[8]["Actor"]["Attributes"]["exitCode"], "137");
    assert_eq!(evs[10]["Actor"]["Attributes"]["oldName"], "web");
    assert_eq!(evs[10]["Actor"]["Attributes"]["name"], "db");
    assert_eq!(evs[11]["Actor"]["Attributes"]["name"], "db");
    // Filters: event, container by name (at the time) and id prefix, type.
    assert_eq!(actions(&events(&r, &["event=die"])), ["die"]);
    assert_eq!(
        actions(&events(&r, &["event=exec_start", "event=rename"])),
        ["exec_start: true", "rename"]
    );
    assert_eq!(events(&r, &["container=web"]).len(), 10);
    assert_eq!(events(&r, &[&format!("container={}", &id[..8])]).len(), 12);
    assert_eq!(actions(&events(&r, &["type=image"])), ["pull"]);
    assert!(events(&r, &["image=nothing-like-it"]).is_empty());
    // The default line.
    let text = ok(
        &r,
        &[
            "events",
            "--since",
            "0",
            "--until",
            "now",
            "--filter",
            "event=rename",
        ],
    );
    assert!(
        text.ends_with(&format!(
            "Z container rename {id} (image={BUSYBOX}, name=db, oldName=web, org.berth.fixture=busybox, tier=front)\n"
        )),
        "{text}"
    );
    let tpl = ok(
        &r,
        &[
            "events",
            "--since",
            "0",
            "--until",
            "now",
            "--filter",
            "event=die",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.exitCode}}",
        ],
    );
    assert_eq!(tpl, "container die 137\n");
    // Bad input: one line, exit 1.
    for bad in [
        &["--filter", "colour=red"][..],
        &["--since", "yesterday"],
        &["--format", "{{nope}}"],
    ] {
        let o = b(&r, &[&["events", "--until", "now"][..], bad].concat());
        assert_eq!(code(&o), 1, "{bad:?}");
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
}

#[test]
fn follow_prints_new_events_as_they_happen() {
    fixture();
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    let mut f = r
        .berth()
        .args(["events", "--format", "json", "--filter", "event=start"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Past events are not followed without --since.
    std::thread::sleep(Duration::from_millis(300));
    let id = ok(&r, &["run", "-d", BUSYBOX, "true"]).trim().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = f.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = f.kill();
    let _ = f.wait();
    let e: Value = serde_json::from_str(&line.expect("a start line within 20 s")).unwrap();
    assert_eq!(e["Action"], "start");
    assert_eq!(e["Actor"]["ID"], id.as_str());
}

#[test]
fn concurrent_berths_write_whole_lines() {
    fixture();
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    let kids: Vec<_> = (0..20)
        .map(|_| {
            r.berth()
                .args(["run", "--rm", "-q", BUSYBOX, "true"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    // Every line parses (none interleaved), four events a container.
    let evs = events(&r, &["type=container"]);
    let raw = std::fs::read_to_string(r.path().join("events.jsonl")).unwrap();
    assert_eq!(raw.lines().count(), 81, "{raw}");
    assert_eq!(evs.len(), 80);
    for a in ["create", "start", "die", "destroy"] {
        assert_eq!(actions(&evs).iter().filter(|x| *x == a).count(), 20, "{a}");
    }
}

#[test]
fn events_file_stays_bounded() {
    fixture();
    let r = Root::new();
    ok(&r, &["pull", "-q", BUSYBOX]);
    // A full file of older events: the next event rotates it.
    let line = ok(
        &r,
        &[
            "events", "--since", "0", "--until", "now", "--format", "json",
        ],
    );
    let big = line.repeat((1 << 20) / line.len() + 1);
    std::fs::write(r.path().join("events.jsonl"), &big).unwrap();
    ok(&r, &["run", "--rm", BUSYBOX, "true"]);
    let cur = std::fs::metadata(r.path().join("events.jsonl"))
        .unwrap()
        .len();
    let old = std::fs::metadata(r.path().join("events.jsonl.1"))
        .unwrap()
        .len();
    assert!(cur < 4096, "{cur}");
    assert_eq!(old, big.len() as u64);
    assert!(!r.path().join("events.jsonl.2").exists());
    assert_eq!(events(&r, &["type=container"]).len(), 4);
}

#[test]
fn version_df_and_prune() {
    fixture();
    let r = Root::new();
    assert_eq!(
        ok(&r, &["version", "--format", "{{.Client.Version}}"]),
        format!("{}\n", env!("CARGO_PKG_VERSION"))
    );
    let v: Value = serde_json::from_str(&ok(&r, &["version", "--format", "json"])).unwrap();
    assert_eq!(v["Server"]["Os"], "linux");
    let df = |r: &Root| -> Vec<Value> {
        ok(r, &["system", "df", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before = df(&r);
    assert_eq!(before[0]["Type"], "Images");
    assert_eq!(before[0]["TotalCount"], "0");
    assert_eq!(before[1]["TotalCount"], "0");
    ok(
        &r,
        &[
            "run",
            "--name",
            "writer",
            BUSYBOX,
            "sh",
            "-c",
            "head -c 100000 /dev/zero > /big",
        ],
    );
    ok(&r, &["run", "-d", "--name", "up", BUSYBOX, "sleep", "60"]);
    let after = df(&r);
    assert_eq!(after[0]["TotalCount"], "1");
    assert_eq!(after[0]["Active"], "1");
    assert_eq!(after[1]["TotalCount"], "2");
    assert_eq!(after[1]["Active"], "1");
    assert!(
        after[1]["Size"].as_str().unwrap().starts_with("100"),
        "{after:?}"
    );
    let table = ok(&r, &["system", "df"]);
    assert!(
        table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{table}"
    );
    let p = ok(&r, &["system", "prune", "-f"]);
    let writer_gone = !ok(&r, &["ps", "-a", "--format", "{{.Names}}"]).contains("writer");
    assert!(writer_gone, "{p}");
    assert!(p.starts_with("Deleted Containers:\n"), "{p}");
    assert!(p.contains("Total reclaimed space: 100"), "{p}");
    // The image is used by the running container: kept.
    assert!(ok(&r, &["images", "-q"]).trim().len() == 12);
    ok(&r, &["rm", "-f", "up"]);
    // Tagged, unused: only -a removes it.
    ok(&r, &["system", "prune", "-f"]);
    assert!(!ok(&r, &["images", "-q"]).is_empty());
    let p = ok(&r, &["system", "prune", "-af"]);
    assert!(p.contains("Deleted Images:\nuntagged: "), "{p}");
    assert!(ok(&r, &["images", "-q"]).is_empty());
    // Prompted: anything but y keeps everything.
    let o = r.berth().args(["system", "prune"]).output().unwrap();
    assert!(
        stdout(&o).starts_with(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n"
        ),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("Are you sure you want to continue? [y/N] "));
}
