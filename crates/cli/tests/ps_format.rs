//! `ps` and `inspect` as Docker scripts read them: filters, `--format`
//! templates, `-n`/`-l`/`-s`; `rename`, `container prune`; Docker's exit
//! codes and "No such container" messages.

mod common;

use common::*;
use serde_json::json;

fn ok(o: &std::process::Output) -> String {
    assert_eq!(code(o), 0, "{}", stderr(o));
    stdout(o)
}

#[test]
fn ps_filters_formats_and_limits() {
    let r = Root::new();
    let labelled = push_image(
        "ps-labels",
        &[],
        json!({"Labels": {"app": "web", "tier": "front"}}),
    );
    assert_eq!(
        code(&r.run(&["--name", "three", BUSYBOX, "sh", "-c", "exit 3"])),
        3
    );
    let write = "head -c 5000 /dev/zero > /five-k";
    assert_eq!(
        code(&r.run(&["--name", "zero", BUSYBOX, "sh", "-c", write])),
        0
    );
    assert_eq!(code(&r.run(&["--name", "web-1", &labelled, "true"])), 0);
    let ps = |args: &[&str]| ok(&r.berth().arg("ps").args(args).output().unwrap());
    let names = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--format", "{{.Names}}"]);
        ps(&a)
    };
    assert_eq!(
        names(&["-a", "--filter", "status=exited"]),
        "web-1\nzero\nthree\n"
    );
    // status= lists stopped containers without -a, as Docker does.
    assert_eq!(
        names(&["--filter", "status=exited"]),
        "web-1\nzero\nthree\n"
    );
    assert_eq!(names(&["--filter", "status=running"]), "");
    assert_eq!(names(&[]), "");
    assert_eq!(names(&["-a", "--filter", "name=^t"]), "three\n");
    assert_eq!(
        names(&["-a", "-f", "name=e", "-f", "exited=0"]),
        "web-1\nzero\n"
    );
    assert_eq!(names(&["-a", "--filter", "exited=3"]), "three\n");
    assert_eq!(names(&["-a", "--filter", "label=app=web"]), "web-1\n");
    assert_eq!(names(&["-a", "-f", "label=app", "-f", "label=nope"]), "");
    assert_eq!(
        names(&["-a", "--filter", &format!("ancestor={BUSYBOX}")]),
        "zero\nthree\n"
    );
    assert_eq!(
        names(&["-a", "--filter", "ancestor=127.0.0.1:5500/busybox"]),
        "zero\nthree\n"
    );
    assert_eq!(names(&["-n", "2"]), "web-1\nzero\n");
    assert_eq!(names(&["-l"]), "web-1\n");
    assert_eq!(ps(&["-aq", "--filter", "name=zero"]).trim().len(), 12);
    assert_eq!(
        ps(&[
            "-a",
            "--filter",
            "label=tier",
            "--format",
            r#"{{.Names}} {{.Label "tier"}} {{.State}}"#
        ]),
        "web-1 front exited\n"
    );
    let s = ps(&[
        "-a",
        "--filter",
        "exited=3",
        "--format",
        "{{.Status}}|{{.Command}}",
    ]);
    assert!(
        s.starts_with("Exited (3) ") && s.ends_with(" ago|\"sh -c 'exit 3'\"\n"),
        "{s}"
    );

    // Docker's table: its columns, aligned; a `table` template gets a header.
    let t = ps(&["-a"]);
    let header: Vec<&str> = t.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "CONTAINER",
            "ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    assert!(t.starts_with("CONTAINER ID   IMAGE  "), "{t}");
    assert_eq!(t.lines().count(), 4, "{t}");
    let t = ps(&[
        "-a",
        "--filter",
        "name=three",
        "--format",
        "table {{.Names}}\\t{{.State}}",
    ]);
    assert_eq!(t, "NAMES     STATE\nthree     exited\n");

    // json: one object a line, Docker's keys.
    let j = ps(&["-a", "--format", "json"]);
    let rows: Vec<serde_json::Value> = j
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{j}");
    assert_eq!(rows[2]["Names"], "three");
    assert_eq!(rows[2]["State"], "exited");
    assert_eq!(rows[2]["Command"], "\"sh -c 'exit 3'\"");
    assert_eq!(rows[2]["Image"], BUSYBOX);

    // -s: what each wrote, and with its image (a private copy, rootless, is all of it).
    let t = ps(&["-a", "-s"]);
    assert!(t.lines().next().unwrap().ends_with("   SIZE"), "{t}");
    if !rootless() {
        let s = ps(&["-a", "--filter", "name=zero", "--format", "{{.Size}}"]);
        assert!(
            s.starts_with("5kB (virtual ") && s.ends_with("MB)\n"),
            "{s}"
        );
    }

    // Refusals: one line, exit 1.
    for (args, want) in [
        (&["--filter", "colour=red"][..], "invalid filter 'colour'"),
        (
            &["--filter", "status=sleepy"],
            "invalid filter 'status=sleepy'",
        ),
        (&["--filter", "exited=x"], "invalid filter 'exited=x'"),
        (
            &["--format", "{{nope}}"],
            "template parsing error: template: :1: function \"nope\" not defined",
        ),
        (
            &["-a", "--format", "{{.Nope}}"],
            "can't evaluate field Nope in type *formatter.ContainerContext",
        ),
        (
            &["-a", "--filter", "before=nosuch"],
            "No such container: nosuch",
        ),
    ] {
        let o = r.berth().arg("ps").args(args).output().unwrap();
        assert_eq!(code(&o), 1, "{args:?}");
        let e = stderr(&o);
        assert!(e.contains(want) && e.lines().count() == 1, "{args:?}: {e}");
    }
}

#[test]
fn inspect_formats_and_types() {
    let r = Root::new();
    assert_eq!(
        code(&r.run(&["--name", "four", BUSYBOX, "sh", "-c", "exit 4"])),
        4
    );
    let inspect = |args: &[&str]| r.berth().arg("inspect").args(args).output().unwrap();
    assert_eq!(ok(&inspect(&["-f", "{{.State.ExitCode}}", "four"])), "4\n");
    assert_eq!(
        ok(&inspect(&[
            "--format",
            "{{.State.Status}} {{.State.Running}} {{.Name}} {{.RestartCount}}",
            "four"
        ])),
        "exited false /four 0\n"
    );
    assert_eq!(
        ok(&inspect(&["-f", "{{json .Config.Cmd}}", "four"])),
        "[\"sh\",\"-c\",\"exit 4\"]\n"
    );
    let config: serde_json::Value =
        serde_json::from_str(&ok(&inspect(&["-f", "{{json .Config}}", "four"]))).unwrap();
    assert_eq!(config["Image"], BUSYBOX);
    assert_eq!(config["Tty"], false);
    let all: serde_json::Value = serde_json::from_str(&ok(&inspect(&["four"]))).unwrap();
    let c = &all[0];
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(c["HostConfig"]["LogConfig"]["Type"], "json-file");
    assert_ne!(c["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(c["State"]["Pid"], 0);
    // An image by the same command, with --type, and refused as a container.
    let img: serde_json::Value = serde_json::from_str(&ok(&inspect(&[BUSYBOX]))).unwrap();
    assert_eq!(img[0]["RepoTags"][0], BUSYBOX);
    assert_eq!(
        ok(&inspect(&["--type", "image", "-f", "{{.Os}}", BUSYBOX])),
        "linux\n"
    );
    let o = inspect(&["--type", "container", BUSYBOX]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        format!("Error response from daemon: No such container: {BUSYBOX}\n")
    );
    // Found ones are printed, then one line per name not found, exit 1.
    let o = inspect(&["four", "nosuch"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(stderr(&o), "Error: No such object: nosuch\n");
    let o = r
        .berth()
        .args(["container", "inspect", "nosuch"])
        .output()
        .unwrap();
    assert_eq!((code(&o), stdout(&o)), (1, "[]\n".to_string()));
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: nosuch\n"
    );
    let o = inspect(&["-f", "{{.State", "four"]);
    assert_eq!(code(&o), 64);
    assert_eq!(
        stderr(&o),
        "template parsing error: template: :1: unclosed action\n"
    );
}

#[test]
fn rename_and_container_prune() {
    let r = Root::new();
    assert_eq!(code(&r.run(&["--name", "aa", BUSYBOX, "true"])), 0);
    assert_eq!(code(&r.run(&["--name", "cc", BUSYBOX, "true"])), 0);
    let id = |n: &str| {
        ok(&r
            .berth()
            .args(["inspect", "-f", "{{.Id}}", n])
            .output()
            .unwrap())
        .trim()
        .to_string()
    };
    let (a, c) = (id("aa"), id("cc"));
    assert_eq!(
        ok(&r.berth().args(["rename", "aa", "bb"]).output().unwrap()),
        ""
    );
    assert_eq!(id("bb"), a);
    let o = r.berth().args(["rename", "bb", "cc"]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        format!(
            "Error response from daemon: Conflict. The container name \"/cc\" is already in use by container \"{c}\". You have to remove (or rename) that container to be able to reuse that name.\n"
        )
    );
    let o = r.berth().args(["rename", "nosuch", "x"]).output().unwrap();
    assert_eq!(
        (code(&o), stderr(&o)),
        (
            1,
            "Error response from daemon: No such container: nosuch\n".into()
        )
    );
    let o = r
        .berth()
        .args(["rename", "bb", "bad name"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o).lines().count(), 1);
    ok(&r
        .berth()
        .args(["container", "rename", "bb", "dd"])
        .output()
        .unwrap());
    assert_eq!(
        ok(&r
            .berth()
            .args(["container", "ls", "-a", "--format", "{{.Names}}"])
            .output()
            .unwrap()),
        "cc\ndd\n"
    );

    // A running container is never pruned.
    let (mut live, line, _) = r.started("live", &[BUSYBOX, "sh", "-c", "echo up; exec sleep 60"]);
    assert_eq!(line, "up\n");
    // Not confirmed: nothing removed.
    let o = r.berth().args(["container", "prune"]).output().unwrap();
    assert_eq!(
        ok(&o),
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(r.container_ids().len(), 3);
    let out = ok(&r
        .berth()
        .args(["container", "prune", "-f"])
        .output()
        .unwrap());
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(
        out.contains(&format!("\n{a}\n")) && out.contains(&format!("\n{c}\n")),
        "{out}"
    );
    assert!(out.contains("\n\nTotal reclaimed space: "), "{out}");
    assert_eq!(
        ok(&r
            .berth()
            .args(["ps", "-a", "--format", "{{.Names}} {{.State}}"])
            .output()
            .unwrap()),
        "live running\n"
    );
    let _ = r.berth().args(["rm", "-f", "live"]).output();
    let _ = live.wait();
}

#[test]
fn docker_exit_codes_and_messages() {
    let r = Root::new();
    for args in [&["rm", "nosuch"][..], &["container", "rm", "nosuch"]] {
        let o = r.berth().args(args).output().unwrap();
        assert_eq!(code(&o), 1, "{args:?}");
        assert_eq!(
            stderr(&o),
            "Error response from daemon: No such container: nosuch\n"
        );
    }
    // pull names the default tag first and the full reference last.
    let o = r
        .berth()
        .args(["pull", "127.0.0.1:5500/busybox"])
        .output()
        .unwrap();
    let out = ok(&o);
    assert_eq!(
        out.lines().next(),
        Some("Using default tag: latest"),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("127.0.0.1:5500/busybox:latest"),
        "{out}"
    );
    // images takes the same templates.
    let o = r
        .berth()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    assert_eq!(ok(&o), "127.0.0.1:5500/busybox:latest\n");
    let o = r
        .berth()
        .args(["images", "--format", "table {{.Tag}}\\t{{.Repository}}"])
        .output()
        .unwrap();
    assert_eq!(
        ok(&o),
        "TAG       REPOSITORY\nlatest    127.0.0.1:5500/busybox\n"
    );
    let o = r.berth().args(["pull", "-q", BUSYBOX]).output().unwrap();
    assert_eq!(ok(&o), format!("{BUSYBOX}\n"));
    // run says which tag it did not find; its errors keep 125.
    let fresh = Root::new();
    let o = fresh.run(&["--name", "xx", "127.0.0.1:5500/busybox", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("Unable to find image '127.0.0.1:5500/busybox:latest' locally\n"),
        "{}",
        stderr(&o)
    );
    let o = fresh.run(&["--name", "xx", BUSYBOX, "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains(
            "Error response from daemon: Conflict. The container name \"/xx\" is already in use"
        ),
        "{}",
        stderr(&o)
    );
}
