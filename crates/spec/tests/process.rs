//! Docker's rules for the command and the environment.

use berth_spec::RunOptions;
use berth_spec::process::{DEFAULT_PATH, command, environment};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn opts() -> RunOptions {
    RunOptions {
        hostname: "abc123".into(),
        ..Default::default()
    }
}

#[test]
fn command_rules_match_docker() {
    let ep = s(&["/ep", "-x"]);
    let cmd = s(&["a", "b"]);
    let run = |o: RunOptions| command(Some(&ep), Some(&cmd), &o);
    // Image entrypoint + image cmd.
    assert_eq!(run(opts()).unwrap(), s(&["/ep", "-x", "a", "b"]));
    // Arguments replace Cmd, keep the entrypoint.
    assert_eq!(
        run(RunOptions {
            cmd: s(&["c"]),
            ..opts()
        })
        .unwrap(),
        s(&["/ep", "-x", "c"])
    );
    // --entrypoint replaces the entrypoint and drops the image's Cmd.
    assert_eq!(
        run(RunOptions {
            entrypoint: Some("/new".into()),
            ..opts()
        })
        .unwrap(),
        s(&["/new"])
    );
    assert_eq!(
        run(RunOptions {
            entrypoint: Some("/new".into()),
            cmd: s(&["c"]),
            ..opts()
        })
        .unwrap(),
        s(&["/new", "c"])
    );
    // --entrypoint "" clears it; with arguments they are the command.
    assert_eq!(
        run(RunOptions {
            entrypoint: Some(String::new()),
            cmd: s(&["sh"]),
            ..opts()
        })
        .unwrap(),
        s(&["sh"])
    );
    // ... and without arguments there is nothing to run (Docker: "No command specified").
    let e = run(RunOptions {
        entrypoint: Some(String::new()),
        ..opts()
    })
    .unwrap_err();
    assert!(e.to_string().contains("no command specified"));
    // Image with only Cmd.
    assert_eq!(command(None, Some(&cmd), &opts()).unwrap(), cmd);
    assert!(command(None, None, &opts()).is_err());
}

#[test]
fn env_rules_match_docker() {
    let img = s(&["PATH=/img/bin", "A=1", "B=2"]);
    let e = environment(
        &img,
        &RunOptions {
            env: s(&["B=3", "C=4", "A"]),
            ..opts()
        },
    );
    assert_eq!(e, s(&["PATH=/img/bin", "HOSTNAME=abc123", "B=3", "C=4"]));
    let e = environment(
        &[],
        &RunOptions {
            tty: true,
            ..opts()
        },
    );
    assert_eq!(e, s(&[DEFAULT_PATH, "HOSTNAME=abc123", "TERM=xterm"]));
    let e = environment(
        &[],
        &RunOptions {
            env: s(&["HOSTNAME=mine", "X=a=b"]),
            ..opts()
        },
    );
    assert_eq!(e, s(&[DEFAULT_PATH, "HOSTNAME=mine", "X=a=b"]));
}

#[test]
fn env_merge_of_200k_entries_is_one_pass() {
    // Quadratic merging took minutes for this; by key index it is instant.
    let n = 200_000;
    let img: Vec<String> = (0..n).map(|i| format!("K{i}=image")).collect();
    let mut over: Vec<String> = (0..n).step_by(2).map(|i| format!("K{i}=flag")).collect();
    over.extend((1..n).step_by(2).map(|i| format!("K{i}")));
    over.push("NEW=1".into());
    let e = environment(&img, &opts());
    assert_eq!(e.len(), n + 2);
    let e = environment(
        &img,
        &RunOptions {
            env: over,
            ..opts()
        },
    );
    assert_eq!(e.len(), 2 + n / 2 + 1);
    assert_eq!(e[2], "K0=flag");
    assert_eq!(e[3], "K2=flag");
    assert_eq!(e.last().unwrap(), "NEW=1");
}
