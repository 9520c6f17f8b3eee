//! `berth run` end to end: real registry, real containers, looked at from
//! inside (busybox applets) and from outside (host mounts, processes, files).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn echo_hey_prints_hey() {
    let r = Root::new();
    let o = r.run(&["--rm", BUSYBOX, "echo", "hey"]);
    assert_eq!(stdout(&o), "hey\n", "stderr: {}", stderr(&o));
    assert_eq!(code(&o), 0);
}

#[test]
fn stderr_goes_to_stderr_only() {
    let r = Root::new();
    let o = r.run(&["--rm", "-q", BUSYBOX, "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
}

#[test]
fn exit_code_passes_through() {
    let r = Root::new();
    assert_eq!(code(&r.run(&["--rm", BUSYBOX, "sh", "-c", "exit 3"])), 3);
    // Killed by a signal: 128+N. (Not PID 1 itself: the kernel ignores a
    // SIGKILL that PID 1 sends itself, as in Docker; under --init it isn't PID 1.)
    assert_eq!(
        code(&r.run(&["--rm", "--init", BUSYBOX, "sh", "-c", "kill -9 $$"])),
        137
    );
}

#[test]
fn missing_and_unexecutable_commands_get_127_and_126() {
    let r = Root::new();
    let o = r.run(&["--rm", BUSYBOX, "no-such-command"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-command"), "{}", stderr(&o));
    let o = r.run(&["--rm", BUSYBOX, "/etc/passwd"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
}

#[test]
fn command_is_pid_1_and_sees_no_host_process() {
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        BUSYBOX,
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid= | wc -l",
    ]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert_eq!(
        lines[1].trim(),
        "sh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid= | wc -l"
    );
    // sh, ps, wc (and maybe tr exited): never the host's hundreds.
    let n: usize = lines[2].trim().parse().unwrap();
    assert!(n <= 4, "container sees {n} processes");
}

#[test]
fn root_is_the_images_not_the_hosts() {
    let r = Root::new();
    let o = r.run(&["--rm", BUSYBOX, "ls", "/"]);
    let inside: Vec<String> = stdout(&o).split_whitespace().map(String::from).collect();
    assert!(inside.contains(&"bin".to_string()), "{inside:?}");
    // The host has /work (this checkout) and /usr; the busybox image has neither.
    assert!(
        !inside.contains(&"work".to_string()) && !inside.contains(&"usr".to_string()),
        "{inside:?}"
    );
    let o = r.run(&["--rm", BUSYBOX, "cat", "/etc/berth-fixture"]);
    assert_eq!(stdout(&o), "busybox\n");
}

#[test]
fn image_not_in_store_is_pulled_first() {
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        "127.0.0.1:5500/multiarch:latest",
        "cat",
        "/platform",
    ]);
    assert_eq!(stdout(&o), "linux/amd64\n", "stderr: {}", stderr(&o));
    let o = r.berth().args(["images", "-q"]).output().unwrap();
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
}

#[test]
fn pull_never_with_missing_image_is_an_engine_error() {
    let r = Root::new();
    let o = r.run(&["--rm", "--pull", "never", BUSYBOX, "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("busybox"), "{}", stderr(&o));
}

#[test]
fn nothing_leaks_to_the_host() {
    let r = Root::new();
    let before = host_mounts(r.path());
    let o = r.run(&[
        "--rm",
        BUSYBOX,
        "sh",
        "-c",
        "touch /created-inside; mount | wc -l",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!std::path::Path::new("/created-inside").exists());
    assert_eq!(host_mounts(r.path()), before, "host mount table changed");
    // --rm removed the container and its directory.
    let o = r.berth().args(["ps", "-aq"]).output().unwrap();
    assert_eq!(stdout(&o), "");
    let left: Vec<_> = std::fs::read_dir(r.path().join("containers"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_dir())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn inside_mounts_are_the_containers() {
    let r = Root::new();
    let o = r.run(&["--rm", BUSYBOX, "cat", "/proc/self/mountinfo"]);
    let mi = stdout(&o);
    let targets: Vec<&str> = mi.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    for want in [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(targets.contains(&want), "{want} missing in {targets:?}");
    }
    assert!(
        !targets
            .iter()
            .any(|t| t.starts_with("/work") || t.starts_with("/var/tmp")),
        "{targets:?}"
    );
    let o = r.run(&[
        "--rm",
        BUSYBOX,
        "sh",
        "-c",
        "ls /dev; echo > /sys/x 2>/dev/null && echo sys-writable",
    ]);
    let dev = stdout(&o);
    for want in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr",
    ] {
        assert!(
            dev.split_whitespace().any(|d| d == want),
            "/dev/{want} missing: {dev}"
        );
    }
    assert!(!dev.contains("sys-writable"));
}

#[test]
fn hostname_hosts_and_resolv_conf_are_per_container() {
    let r = Root::new();
    let o = r.run(&["--rm", "--hostname", "boaty", BUSYBOX, "sh", "-c", "hostname; cat /etc/hostname; grep -c localhost /etc/hosts; test -f /etc/resolv.conf && echo resolv"]);
    assert_eq!(stdout(&o), "boaty\nboaty\n2\nresolv\n", "{}", stderr(&o));
    // Default hostname: the first 12 characters of the container id.
    let o = r.run(&["--name", "hn", BUSYBOX, "hostname"]);
    let id = r.container_ids().concat();
    assert_eq!(stdout(&o).trim(), &id[..12]);
}

#[test]
fn env_workdir_user_entrypoint() {
    let r = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let envf = dir.path().join("env");
    std::fs::write(&envf, "# comment\nFROM_FILE=yes\n").unwrap();
    let o = r
        .berth()
        .env("BERTH_PASSED", "through")
        .args([
            "run",
            "--rm",
            "-e",
            "A=1",
            "-e",
            "BERTH_PASSED",
            "--env-file",
        ])
        .arg(&envf)
        .args([
            BUSYBOX,
            "sh",
            "-c",
            "echo $A $BERTH_PASSED $FROM_FILE $PATH",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o),
        "1 through yes /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    let o = r.run(&["--rm", "-w", "/made/by/berth", BUSYBOX, "pwd"]);
    assert_eq!(stdout(&o), "/made/by/berth\n");
    let o = r.run(&["--rm", "-u", "app", BUSYBOX, "id"]);
    assert_eq!(
        stdout(&o),
        "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n",
        "{}",
        stderr(&o)
    );
    let o = r.run(&["--rm", "-u", "1234:50", BUSYBOX, "id"]);
    // An explicit group: no supplementary groups from /etc/group (runc's
    // rule), the primary one as a supplementary one (Docker's).
    assert_eq!(stdout(&o), "uid=1234 gid=50(staff) groups=50(staff)\n");
    let o = r.run(&["--rm", "-u", "nosuchuser", BUSYBOX, "id"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("nosuchuser"), "{}", stderr(&o));
    let o = r.run(&["--rm", "--entrypoint", "echo", BUSYBOX, "via", "entrypoint"]);
    assert_eq!(stdout(&o), "via entrypoint\n");
}

#[test]
fn volumes_tmpfs_and_read_only_rootfs() {
    let r = Root::new();
    let host = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    if let Some((uid, gid, _)) = test_user() {
        std::os::unix::fs::chown(host.path(), Some(uid), Some(gid)).unwrap();
    }
    let v = format!("{}:/data", host.path().display());
    let o = r.run(&[
        "--rm",
        "-v",
        &v,
        BUSYBOX,
        "sh",
        "-c",
        "cat /data/in; echo from container > /data/out",
    ]);
    assert_eq!(stdout(&o), "from host\n", "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "from container\n"
    );
    let vro = format!("{}:/data:ro", host.path().display());
    let o = r.run(&[
        "--rm",
        "-v",
        &vro,
        BUSYBOX,
        "sh",
        "-c",
        "echo x > /data/out2",
    ]);
    assert_ne!(code(&o), 0);
    assert!(!host.path().join("out2").exists());
    let o = r.run(&[
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        BUSYBOX,
        "sh",
        "-c",
        "touch /scratch/ok && echo ok; touch /nope || echo refused",
    ]);
    assert_eq!(stdout(&o), "ok\nrefused\n", "{}", stderr(&o));
    let m = format!(
        "type=bind,source={},target=/m,readonly",
        host.path().display()
    );
    let o = r.run(&["--rm", "--mount", &m, BUSYBOX, "cat", "/m/in"]);
    assert_eq!(stdout(&o), "from host\n");
}

#[test]
fn containers_do_not_see_each_others_writes() {
    let r = Root::new();
    let o = r.run(&[
        "--name",
        "first",
        BUSYBOX,
        "sh",
        "-c",
        "echo mine > /etc/berth-fixture; rm /bin/ls",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = r.run(&[
        "--rm",
        BUSYBOX,
        "sh",
        "-c",
        "cat /etc/berth-fixture; ls / >/dev/null && echo ls-ok",
    ]);
    assert_eq!(stdout(&o), "busybox\nls-ok\n");
}

#[test]
fn ps_and_rm_track_finished_containers() {
    let r = Root::new();
    let o = r.run(&["--name", "done", BUSYBOX, "sh", "-c", "exit 5"]);
    assert_eq!(code(&o), 5);
    let ps = stdout(&r.berth().args(["ps", "-a"]).output().unwrap());
    assert!(ps.contains("done") && ps.contains("Exited (5)"), "{ps}");
    assert_eq!(
        stdout(&r.berth().args(["ps"]).output().unwrap())
            .lines()
            .count(),
        1,
        "only the header"
    );
    // The name is taken until the container is removed.
    let o = r.run(&["--name", "done", BUSYBOX, "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("done"), "{}", stderr(&o));
    let o = r.berth().args(["rm", "done"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&r.berth().args(["ps", "-aq"]).output().unwrap()), "");
    let o = r.berth().args(["rm", "done"]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: done\n"
    );
}

#[test]
fn rmi_refuses_an_image_in_use_unless_forced() {
    let r = Root::new();
    assert_eq!(code(&r.run(&["--name", "user", BUSYBOX, "true"])), 0);
    let o = r.berth().args(["rmi", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("user") || stderr(&o).contains("container"),
        "{}",
        stderr(&o)
    );
    r.berth().args(["rm", "user"]).output().unwrap();
    let o = r.berth().args(["rmi", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&r.berth().args(["images", "-q"]).output().unwrap()),
        ""
    );
}

#[test]
fn stdin_is_forwarded_with_i_and_eof_propagates() {
    let r = Root::new();
    let mut child = r
        .berth()
        .args([
            "run",
            "--rm",
            "-i",
            BUSYBOX,
            "sh",
            "-c",
            "cat; echo after-eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "line one\nafter-eof\n");
    // Without -i the container's stdin is empty.
    let o = r.run(&["--rm", BUSYBOX, "sh", "-c", "cat; echo done"]);
    assert_eq!(stdout(&o), "done\n");
}

#[test]
fn binary_output_is_byte_exact_and_complete() {
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        "-q",
        BUSYBOX,
        "sh",
        "-c",
        "head -c 3000000 /dev/urandom | tee /tmp/x; sha256sum /tmp/x >&2",
    ]);
    assert_eq!(o.stdout.len(), 3_000_000);
    let want = stderr(&o).split_whitespace().next().unwrap().to_string();
    let mut h = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    h.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let got = stdout(&h.wait_with_output().unwrap());
    assert_eq!(got.split_whitespace().next().unwrap(), want);
}

#[test]
fn signals_are_forwarded_to_pid_1() {
    let r = Root::new();
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGHUP, "HUP"),
    ] {
        let script = format!(
            "trap 'echo got {name}; exit 7' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let mut child = r
            .berth()
            .args(["run", "--rm", "-q", BUSYBOX, "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let st = child.wait().unwrap();
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(st.code(), Some(7));
    }
}

#[test]
fn init_is_pid_1_and_reaps_zombies() {
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        "--init",
        BUSYBOX,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let out = stdout(&o);
    let mut l = out.lines();
    assert!(l.next().unwrap().contains("init"), "{out}");
    assert_ne!(l.next().unwrap(), "1");
    // An orphaned child re-parents to init, which must reap it.
    let o = r.run(&[
        "--rm",
        "--init",
        BUSYBOX,
        "sh",
        "-c",
        // Waits up to 10 s for the orphan to go: a zombie keeps its /proc entry.
        "p=$(sh -c 'sleep 0.1 & echo $!'); i=0; \
         while [ -e /proc/$p ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         [ -e /proc/$p ] && echo zombie $(cat /proc/$p/stat) || echo reaped",
    ]);
    assert_eq!(stdout(&o).trim(), "reaped", "{}", stderr(&o));
    // Signals reach the command through init; exit status comes back.
    assert_eq!(
        code(&r.run(&["--rm", "--init", BUSYBOX, "sh", "-c", "exit 4"])),
        4
    );
}

#[test]
fn network_none_has_only_loopback() {
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        BUSYBOX,
        "sh",
        "-c",
        "ls /sys/class/net; ip link show lo | grep -c UP",
    ]);
    assert_eq!(stdout(&o), "lo\n1\n", "{}", stderr(&o));
}

#[test]
fn tty_through_a_real_pseudo_terminal() {
    let r = Root::new();
    let cmd = format!(
        "{} --root {} run --rm -t {} sh -c 'tty; stty size'",
        berth_shell(),
        r.path().display(),
        BUSYBOX
    );
    // script(1) gives berth a real pty as its terminal.
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o).replace('\r', "");
    assert!(out.contains("/dev/pts/0"), "{out}");
}

/// The multi-layer fixture, checked from inside a container: whiteouts,
/// opaque dirs, hardlinks (also into an earlier layer), modes and owners.
fn check_layers_tree(r: &Root) {
    let o = r.run(&[
        "--rm",
        "-q",
        "127.0.0.1:5500/layers:latest",
        "sh",
        "-c",
        "cd /data; stat -c '%n %h %u:%g %a %F' orig.txt link-to-orig hardlink-a setuid owned dir-to-file file-to-dir; \
         ls opaque; ls -d gone 2>&1; cat link-to-orig",
    ]);
    let out = stdout(&o);
    let want = "orig.txt 2 0:0 644 regular file\n\
                link-to-orig 2 0:0 644 regular file\n\
                hardlink-a 2 0:0 644 regular file\n\
                setuid 1 0:0 4755 regular file\n\
                owned 1 1234:5678 640 regular file\n\
                dir-to-file 1 0:0 644 regular file\n\
                file-to-dir 2 0:0 755 directory\n\
                new.txt\n";
    assert!(out.starts_with(want), "got:\n{out}\nstderr: {}", stderr(&o));
    assert!(out.contains("gone: No such file or directory"), "{out}");
    assert!(out.contains("original\n"), "{out}");
}

#[test]
fn layers_unpack_exactly_when_pulled_and_when_prepared_from_the_store() {
    let r = Root::new();
    // Cold: the layers are unpacked while they download.
    check_layers_tree(&r);
    let snaps = r.path().join("snapshots");
    let mut names: Vec<String> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    names.sort();
    // Snapshots are keyed by chain id: recompute them from the diff_ids.
    let v: serde_json::Value = serde_json::from_slice(
        &r.berth()
            .args(["image", "inspect", "127.0.0.1:5500/layers:latest"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut chain: Vec<String> = Vec::new();
    for d in v[0]["RootFS"]["Layers"].as_array().unwrap() {
        let d = d.as_str().unwrap().to_string();
        let next = match chain.last() {
            None => d,
            Some(prev) => {
                let mut h = Command::new("sha256sum")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                h.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{prev} {d}").as_bytes())
                    .unwrap();
                format!(
                    "sha256:{}",
                    stdout(&h.wait_with_output().unwrap())
                        .split_whitespace()
                        .next()
                        .unwrap()
                )
            }
        };
        chain.push(next);
    }
    let mut want: Vec<String> = chain
        .iter()
        .map(|c| c.trim_start_matches("sha256:").to_string())
        .collect();
    want.sort();
    assert_eq!(names, want);
    // Warm store, no snapshots: prepared from the stored blobs.
    std::fs::remove_dir_all(&snaps).unwrap();
    check_layers_tree(&r);
}

#[test]
fn a_tampered_layer_is_refused_and_leaves_nothing() {
    let r = Root::new();
    let o = r.run(&["--rm", "127.0.0.1:5500/tampered:latest", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("digest mismatch"), "{}", stderr(&o));
    assert_eq!(
        stdout(&r.berth().args(["images", "-q"]).output().unwrap()),
        ""
    );
    let snaps: Vec<String> = std::fs::read_dir(r.path().join("snapshots"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".locks")
                .collect()
        })
        .unwrap_or_default();
    assert!(snaps.is_empty(), "{snaps:?}");
    assert_eq!(stdout(&r.berth().args(["ps", "-aq"]).output().unwrap()), "");
}

#[test]
fn a_killed_berth_leaves_nothing_running_or_mounted_after_the_next_run() {
    killed_berth(false);
}

#[test]
fn a_killed_berth_run_rm_is_removed_by_the_next_run() {
    killed_berth(true);
}

fn killed_berth(rm: bool) {
    let r = Root::new();
    let mut args = vec!["run", "--name", "orphan", "-q"];
    if rm {
        args.push("--rm");
    }
    // A sleep of its own length: the twin test runs alongside.
    let sleep = if rm { "sleep 611" } else { "sleep 612" };
    let script = format!("echo ready; exec {sleep}");
    args.extend([BUSYBOX, "sh", "-c", &script]);
    let mut child = r
        .berth()
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
    // SIGKILL: berth gets no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    // Rootless berth is two processes (the inner one in its user namespace
    // dies with the outer one, a moment later): wait until no berth of
    // this root is left.
    for _ in 0..500 {
        let left = Command::new("pgrep")
            .args(["-f", &format!("berth --root {} run", r.path().display())])
            .output()
            .unwrap();
        if stdout(&left).trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Not `ps`: it too records and cleans up a dead run, which is what
    // this test looks for after the next run.
    let id: String = std::fs::read_dir(r.path().join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let rootfs = r.path().join("containers").join(&id).join("rootfs");
    // A --rm run's bundle is in the exec root; a kept one's in its own dir,
    // for `start`.
    let bundle = match rm {
        true => exec_root(&r).join("bundles").join(&id),
        false => r.path().join("containers").join(&id).join("bundle"),
    };
    assert!(
        bundle.join("config.json").exists(),
        "no bundle for the dead run"
    );
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&rootfs.display().to_string())
    };
    // Rootless berth copies the rootfs: nothing is mounted to leave behind.
    assert!(
        mounted() || rootless(),
        "the dead run's rootfs is still mounted before cleanup"
    );
    // The next run cleans up what the dead one left.
    assert_eq!(code(&r.run(&["--rm", "-q", BUSYBOX, "true"])), 0);
    assert!(!mounted(), "rootfs still mounted");
    let ps = stdout(&r.berth().args(["ps", "-a"]).output().unwrap());
    assert_eq!(bundle.exists(), !rm, "the dead run's bundle");
    if rm {
        // Removed whole, as its own berth would have done at exit.
        assert!(!ps.contains("orphan"), "{ps}");
        assert!(!r.path().join("containers").join(&id).exists());
    } else {
        assert!(ps.contains("orphan") && ps.contains("Exited"), "{ps}");
    }
    let sleepers = Command::new("pgrep").args(["-f", sleep]).output().unwrap();
    assert!(
        stdout(&sleepers).trim().is_empty(),
        "container process survived: {}",
        stdout(&sleepers)
    );
    if !rm {
        assert_eq!(code(&r.berth().args(["rm", "orphan"]).output().unwrap()), 0);
    }
}

/// The exec root berth uses by default in these tests: /run/berth as root;
/// rootless (no XDG_RUNTIME_DIR of the test user's), `ROOT/run`.
fn exec_root(r: &Root) -> std::path::PathBuf {
    if rootless() {
        r.path().join("run")
    } else {
        std::path::PathBuf::from("/run/berth")
    }
}

#[test]
fn a_running_containers_bundle_and_state_are_in_the_exec_root_and_go_with_it() {
    let r = Root::new();
    let mut child = r
        .berth()
        .args([
            "run",
            "--rm",
            "-q",
            BUSYBOX,
            "sh",
            "-c",
            "echo ready; exec sleep 613",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
    let id = r.container_ids().concat();
    let exec = exec_root(&r);
    let bundle = exec.join("bundles").join(&id);
    for f in ["config.json", "hostname", "hosts", "resolv.conf"] {
        assert!(bundle.join(f).is_file(), "{f} not in {}", bundle.display());
    }
    assert!(exec.join("runtime").join(&id).join("state.json").is_file());
    // The spec in the bundle is the one running: its hostname is the id's.
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["hostname"], id[..12]);
    // The container's own data stays in the root.
    let cdir = r.path().join("containers").join(&id);
    assert!(cdir.join("container.json").is_file() && cdir.join("upper").is_dir());
    if !rootless() {
        // Memory-backed, whatever /run is on this host.
        let st = rustix::fs::statfs(&exec).unwrap();
        assert_eq!(
            st.f_type as i64,
            0x0102_1994,
            "{} is not a tmpfs",
            exec.display()
        );
        let mode = std::fs::metadata(&bundle).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "bundle readable by other users");
    }
    assert_eq!(
        code(&r.berth().args(["rm", "-f", &id]).output().unwrap()),
        0
    );
    child.wait().unwrap();
    assert!(!bundle.exists(), "bundle left after rm");
    assert!(
        !exec.join("runtime").join(&id).exists(),
        "runtime state left after rm"
    );
}

#[test]
fn an_exited_containers_bundle_stays_with_it_and_exec_root_is_honoured() {
    let r = Root::new();
    let exec = r.path().join("exec");
    let out = r
        .berth()
        .arg("--exec-root")
        .arg(&exec)
        .args(["run", "-q", BUSYBOX, "cat", "/etc/hostname"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = r.container_ids().concat();
    assert_eq!(stdout(&out).trim(), &id[..12]);
    // Kept (no --rm): its bundle with it, for `start`; nothing in the exec root.
    let cdir = r.path().join("containers").join(&id);
    assert!(cdir.join("bundle").join("config.json").is_file());
    assert!(exec.join("runtime").is_dir() && !exec.join("bundles").join(&id).exists());
    assert!(!exec.join("runtime").join(&id).exists());
    // A directory given by the user is used as it is: nothing mounted on
    // it (whatever file system it is on; in fixture/v2vm.sh's VM, a tmpfs).
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&exec).unwrap().dev(),
        std::fs::metadata(r.path()).unwrap().dev(),
        "berth mounted something on --exec-root"
    );
}

/// Waits (up to 60 s) for `p` to disappear; whether it did.
fn gone_soon(p: &std::path::Path) -> bool {
    for _ in 0..6000 {
        if std::fs::symlink_metadata(p).is_err() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Hands `p` (recursively) to the test user, when berth runs as one.
fn give_to_test_user(p: &std::path::Path) {
    if let Some((uid, gid, _)) = test_user() {
        let st = Command::new("chown")
            .args(["-R", "-h", &format!("{uid}:{gid}")])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[test]
fn a_removed_containers_directory_goes_at_once_and_its_files_soon_after() {
    let r = Root::new();
    let o = r.run(&["--name", "gone", "-q", BUSYBOX, "sh", "-c", "echo x > /big"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = r.container_ids().concat();
    let cdir = r.path().join("containers").join(&id);
    assert!(cdir.join("upper/big").exists());
    assert_eq!(code(&r.berth().args(["rm", "gone"]).output().unwrap()), 0);
    // Gone from the containers the moment rm returns: name and id are free.
    assert!(!cdir.exists());
    assert_eq!(stdout(&r.berth().args(["ps", "-aq"]).output().unwrap()), "");
    assert!(
        gone_soon(&r.path().join("trash").join(&id)),
        "trash never emptied"
    );
}

#[test]
fn trash_a_killed_remover_left_is_removed_by_the_next_run_without_following_links() {
    let r = Root::new();
    // A tree as a container leaves it: nested, read-only dirs, and
    // symlinks out to files that must survive.
    let outside = r.path().join("outside");
    std::fs::write(&outside, "keep").unwrap();
    let entry = r.path().join("trash/abandoned");
    let deep = entry.join("upper/a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, deep.join("link")).unwrap();
    std::os::unix::fs::symlink(r.path(), entry.join("upper/root-link")).unwrap();
    std::fs::set_permissions(
        entry.join("upper/a/b"),
        std::fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    give_to_test_user(&r.path().join("trash"));
    give_to_test_user(&outside);
    assert_eq!(code(&r.run(&["--rm", "-q", BUSYBOX, "true"])), 0);
    assert!(gone_soon(&entry), "abandoned trash was not swept");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    assert!(r.path().join("containers").exists());
}

#[test]
fn removing_in_the_background_never_holds_berths_output_open() {
    // A big abandoned entry: its removal outlasts berth by far. berth's
    // caller must see end-of-file on berth's output when berth exits,
    // not when the background removal does.
    let r = Root::new();
    // Pulled first: the run below should take milliseconds, not a pull's time.
    assert_eq!(
        code(&r.berth().args(["pull", "-q", BUSYBOX]).output().unwrap()),
        0
    );
    let entry = r.path().join("trash/big");
    for d in 0..40 {
        let dir = entry.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..500 {
            std::fs::File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
    give_to_test_user(&r.path().join("trash"));
    let o = r.run(&["--rm", "-q", BUSYBOX, "echo", "done"]);
    assert_eq!(stdout(&o), "done\n", "{}", stderr(&o));
    assert!(
        entry.exists(),
        "berth's output ended only after 20000 files were deleted"
    );
    assert!(gone_soon(&entry), "the background removal did not finish");
}

#[test]
fn limits_need_a_cgroup_rootless_berth_may_create() {
    let r = Root::new();
    let o = r.run(&["--rm", "-q", "--pids-limit", "50", BUSYBOX, "true"]);
    if rootless() {
        // No delegated cgroup here: a clear one-line refusal, nothing left.
        assert_eq!(code(&o), 125);
        let err = stderr(&o);
        assert!(
            err.contains("delegated") && !err.contains("os error") && err.lines().count() == 1,
            "{err}"
        );
        assert_eq!(stdout(&r.berth().args(["ps", "-aq"]).output().unwrap()), "");
    } else {
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
}

#[test]
fn a_device_at_its_own_container_path_is_the_host_node_given() {
    // Rootless, no node can be made: the host's /dev/zero is bound at
    // /dev/z. As root it is made. Either way it is /dev/zero (1:5).
    let r = Root::new();
    let o = r.run_with_zero_as_dev_z(&[]);
    assert_eq!(stdout(&o), "1,5\n4\n", "{}", stderr(&o));
}

#[test]
fn inspect_shows_the_pid_of_a_container_as_soon_as_it_prints() {
    // berth records the container running before its command is released,
    // so whatever the command prints comes after the record.
    let r = Root::new();
    let (mut child, line, v) =
        r.started("early", &[BUSYBOX, "sh", "-c", "echo $$; exec sleep 614"]);
    let state = &v["State"];
    let pid = state["Pid"].as_i64().unwrap();
    assert_eq!(state["Running"], true, "{state}");
    // The container's PID 1 (as it sees itself) is the host process named.
    assert_eq!(line.trim(), "1");
    let ns_pid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:").map(str::to_string))
        .unwrap();
    assert_eq!(
        ns_pid.split_whitespace().last(),
        Some("1"),
        "host pid {pid}: {ns_pid}"
    );
    assert_eq!(
        code(&r.berth().args(["rm", "-f", "early"]).output().unwrap()),
        0
    );
    let _ = child.wait();
}

/// `berth run -u someuser` on an image whose `/etc/passwd` is `passwd`:
/// the output, or None when berth had not finished after 60 s.
fn run_with_passwd(name: &str, passwd: Entry<'_>) -> Option<std::process::Output> {
    let image = push_image(name, &[Entry::Dir("etc"), passwd], serde_json::json!({}));
    let r = Root::new();
    r.run_within(60, &["--rm", "-q", "-u", "someuser", &image, "id"])
}

/// berth failed with exit 125 and one line of stderr that ends in `what`.
fn assert_one_line(o: &std::process::Output, what: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 125, "{err}");
    assert!(
        err.starts_with("berth: ")
            && err.ends_with(&format!("{what}\n"))
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn special_files_as_passwd_are_refused_at_once() {
    // Written while berth's pipe would block forever on it: a FIFO.
    let o = run_with_passwd("passwd-fifo", Entry::Fifo("etc/passwd")).expect("berth hung");
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert_one_line(&o, "image file /etc/passwd is not a regular file");
    // A device node (/dev/zero: endless) is not read either. (Rootless
    // berth cannot make one: unpacking skips it, and there is no passwd.)
    let o =
        run_with_passwd("passwd-zero", Entry::CharDevice("etc/passwd", 1, 5)).expect("berth hung");
    if rootless() {
        let err = stderr(&o);
        assert_eq!(code(&o), 125, "{err}");
        assert!(err.contains("device node skipped"), "{err}");
        assert!(
            err.ends_with("unable to find user someuser: no matching entries in passwd file\n"),
            "{err}"
        );
    } else {
        assert_one_line(&o, "image file /etc/passwd is not a regular file");
    }
    // A regular file, but larger than any passwd berth will read.
    let o =
        run_with_passwd("passwd-huge", Entry::Zeros("etc/passwd", 17 << 20)).expect("berth hung");
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert_one_line(&o, "image file /etc/passwd is larger than 16 MiB");
}

#[test]
fn passwd_symlinked_to_a_host_path_is_read_inside_the_rootfs() {
    // The host's file names someuser; the image's rootfs has no such file.
    // (A fixed path, so that the image is the same at every run.)
    let host = "/var/tmp/berth-tests/host-passwd";
    std::fs::create_dir_all("/var/tmp/berth-tests").unwrap();
    std::fs::write(host, "someuser:x:4242:4242::/:/bin/sh\n").unwrap();
    let o =
        run_with_passwd("passwd-escape", Entry::Symlink("etc/passwd", host)).expect("berth hung");
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unable to find user someuser"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn home_and_groups_are_dockers() {
    let r = Root::new();
    let show = |flags: &[&str]| {
        let mut args = vec!["--rm", "-q"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BUSYBOX, "sh", "-c", "echo $HOME; id"]);
        let o = r.run(&args);
        assert_eq!(code(&o), 0, "{flags:?}: {}", stderr(&o));
        stdout(&o)
    };
    // HOME from the user's passwd entry in the image (busybox fixture);
    // the kernel keeps supplementary groups sorted.
    assert_eq!(show(&[]), "/root\nuid=0(root) gid=0(root) groups=0(root)\n");
    assert_eq!(
        show(&["-u", "nobody"]),
        "/nonexistent\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    );
    assert_eq!(
        show(&["-u", "app"]),
        "/home/app\nuid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n"
    );
    // uid:gid: the entry found by uid still gives HOME; the groups are the
    // primary one only (runc looks no further when a group is given).
    assert_eq!(
        show(&["-u", "1000:50"]),
        "/home/app\nuid=1000(app) gid=50(staff) groups=50(staff)\n"
    );
    // No passwd entry: runc's default home, /.
    assert_eq!(
        show(&["-u", "4321"]),
        "/\nuid=4321 gid=0(root) groups=0(root)\n"
    );
    // HOME given by -e wins.
    assert_eq!(
        show(&["-u", "app", "-e", "HOME=/elsewhere"]),
        "/elsewhere\nuid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n"
    );
}

#[test]
fn an_image_with_140k_env_entries_fails_fast_and_clearly() {
    // ~15 MiB of config, as in the review: merging used to take minutes of
    // CPU before execve's E2BIG; now a clear error well within the bound.
    let env: Vec<String> = (0..140_000)
        .map(|i| format!("VAR_{i:06}={}", "x".repeat(90)))
        .collect();
    let image = push_image("env-140k", &[], serde_json::json!({ "Env": env }));
    let r = Root::new();
    let o = r
        .run_within(120, &["--rm", "-q", &image, "true"])
        .expect("berth still busy after 120 s");
    assert_one_line(&o, "execve accepts");
    assert!(
        stderr(&o).contains("140003 environment variables"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        r.container_ids(),
        Vec::<String>::new(),
        "nothing left behind"
    );
}

#[test]
fn resolv_conf_as_a_dangling_symlink_is_created_inside_the_rootfs() {
    // As systemd images ship it: relative, into a /run the image lacks.
    let host_side = std::path::Path::new("/run/systemd/resolve/stub-resolv.conf");
    let host_had = host_side.exists();
    let image = push_image(
        "resolv-dangling",
        &[
            Entry::Dir("etc"),
            Entry::Symlink("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf"),
        ],
        serde_json::json!({}),
    );
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        "-q",
        &image,
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo --; readlink /etc/resolv.conf; test -f /run/systemd/resolve/stub-resolv.conf && echo inside",
    ]);
    // berth's resolv.conf, as any container gets it (the host's, by
    // Docker's rules).
    let want = stdout(&r.run(&["--rm", "-q", BUSYBOX, "cat", "/etc/resolv.conf"]));
    assert_eq!(
        stdout(&o),
        format!("{want}--\n../run/systemd/resolve/stub-resolv.conf\ninside\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(host_side.exists(), host_had, "nothing made on the host");
}

#[test]
fn workdir_through_a_symlink_to_a_missing_dir_is_made_inside() {
    let image = push_image(
        "workdir-symlink",
        &[Entry::Symlink("app", "/opt/app")],
        serde_json::json!({ "WorkingDir": "/app" }),
    );
    let r = Root::new();
    let o = r.run(&["--rm", "-q", &image, "sh", "-c", "pwd -P; ls -d /opt/app"]);
    assert_eq!(stdout(&o), "/opt/app\n/opt/app\n", "{}", stderr(&o));
    assert!(!std::path::Path::new("/opt/app").exists());
}

#[test]
fn bind_targets_through_escaping_symlinks_stay_in_the_rootfs() {
    // Relative and absolute ways out of the rootfs: both land inside it.
    let host = "/var/tmp/berth-tests/escape-target";
    let _ = std::fs::remove_dir_all(host);
    let image = push_image(
        "etc-escape",
        &[
            Entry::Dir("etc"),
            Entry::Symlink(
                "etc/hostname",
                "../../../../../../var/tmp/berth-tests/escape-target/hostname",
            ),
            Entry::Symlink(
                "etc/hosts",
                "/../../var/tmp/berth-tests/escape-target/d/hosts",
            ),
        ],
        serde_json::json!({}),
    );
    let r = Root::new();
    let o = r.run(&[
        "--rm",
        "-q",
        "--hostname",
        "inside",
        &image,
        "sh",
        "-c",
        "cat /var/tmp/berth-tests/escape-target/hostname; grep -c inside /var/tmp/berth-tests/escape-target/d/hosts",
    ]);
    assert_eq!(stdout(&o), "inside\n1\n", "{}", stderr(&o));
    assert!(!std::path::Path::new(host).exists(), "made on the host");
    // Through /proc's magic links nothing is followed: refused, nothing made.
    let image = push_image(
        "etc-proc-escape",
        &[
            Entry::Dir("etc"),
            Entry::Symlink(
                "etc/hosts",
                "/proc/self/root/var/tmp/berth-tests/escape-target/hosts",
            ),
        ],
        serde_json::json!({}),
    );
    let o = r.run(&["--rm", "-q", &image, "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!std::path::Path::new(host).exists(), "made on the host");
}

#[test]
fn an_image_deeper_than_dockers_limit_is_refused_before_unpacking() {
    // Docker refuses more than 125 layers ("max depth exceeded"); each one
    // costs berth a snapshot and chain-id work over those below it.
    let image = push_image_stacked("deep-126", &[Entry::Dir("d")], serde_json::json!({}), 125);
    let r = Root::new();
    let o = r
        .run_within(120, &["--rm", "-q", &image, "true"])
        .expect("berth still busy after 120 s");
    assert_one_line(&o, "has 126 layers, more than the 125 Docker allows");
    let snaps = std::fs::read_dir(r.path().join("snapshots"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name() != ".locks")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(snaps, 0, "nothing unpacked");
    // Docker's limit itself is fine.
    let image = push_image_stacked("deep-125", &[Entry::Dir("d")], serde_json::json!({}), 124);
    let o = r.run(&["--rm", "-q", &image, "echo", "deep"]);
    assert_eq!(stdout(&o), "deep\n", "{}", stderr(&o));
}

/// With only linux/amd64 local, `--platform linux/arm64` is an image that is
/// missing: `--pull never` says which platforms differ, and the default
/// `--pull missing` pulls the one asked for, as Docker does.
#[test]
fn a_local_image_of_another_platform_is_not_the_one_asked_for() {
    let r = Root::new();
    let img = "127.0.0.1:5500/multiarch:latest";
    let o = r.berth().args(["pull", "-q", img]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let arch = || {
        let o = r.berth().args(["image", "inspect", img]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["Architecture"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(arch(), "amd64");

    let never = ["--rm", "--pull", "never", "--platform", "linux/arm64"];
    let o = r.run(&[&never[..], &[img, "true"]].concat());
    assert_eq!(code(&o), 125);
    let e = stderr(&o);
    assert!(
        e.contains("linux/amd64") && e.contains("linux/arm64") && e.contains("--pull never"),
        "{e}"
    );
    assert_eq!(arch(), "amd64", "--pull never pulls nothing");

    // The arm64 image holds only /platform, so its command is not found
    // (127): what matters is that it was pulled and run.
    let o = r.run(&["--rm", "--platform", "linux/arm64", img, "true"]);
    let e = stderr(&o);
    assert!(!e.contains("--pull never"), "{e}");
    assert_eq!(arch(), "arm64", "{e}");
    assert_eq!(code(&o), 127, "{e}");
}

/// The container's `/` in its own mountinfo: its filesystem type, source
/// and options, after asserting it is the root of that filesystem (a
/// copied rootfs is a bind mount of a directory).
fn root_mount(r: &Root, args: &[&str]) -> (String, std::process::Output) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-q", BUSYBOX, "awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
    let o = r.run(&all);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let line = stdout(&o);
    assert_eq!(line.split(' ').nth(3), Some("/"), "not an overlay: {line}");
    let after = line.split(" - ").nth(1).unwrap_or_default().to_string();
    (after, o)
}

/// The `upperdir=` of an overlay's mount options.
fn upperdir(opts: &str) -> std::path::PathBuf {
    let o = opts.split_whitespace().nth(2).unwrap_or_default();
    o.split(',')
        .find_map(|o| o.strip_prefix("upperdir="))
        .unwrap_or_else(|| panic!("no upperdir in {opts}"))
        .into()
}

/// berth in a container (`docker run --cap-add SYS_ADMIN …`): its root is
/// on overlayfs, which refuses overlay whiteouts and upper dirs made
/// through it. Images with whiteouts still unpack exactly (while pulled,
/// and from the stored blobs), a container's root is still an overlay,
/// its upper dir in the exec root's scratch dir and gone with the
/// container, and none of it is worth a word on stderr.
#[test]
fn a_root_on_overlayfs_unpacks_whiteouts_and_mounts_overlay_roots() {
    let r = Root::on_overlayfs();
    check_layers_tree(&r);
    std::fs::remove_dir_all(r.path().join("snapshots")).unwrap();
    check_layers_tree(&r);
    let o = r.run(&[
        "--rm",
        "-q",
        "127.0.0.1:5500/layers:latest",
        "ls",
        "-a",
        "/data/opaque",
    ]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        (".\n..\nnew.txt\n", "")
    );
    if rootless() {
        // Rootless berth copies the image: it may not mount overlayfs.
        return;
    }
    let (fs, o) = root_mount(&r, &["--rm"]);
    assert!(fs.starts_with("overlay "), "{fs}");
    assert_eq!(stderr(&o), "");
    let scratch = upperdir(&fs).parent().unwrap().to_path_buf();
    assert!(
        scratch.starts_with("/run/berth/scratch/"),
        "{}",
        scratch.display()
    );
    assert!(!scratch.exists(), "{} outlived run --rm", scratch.display());

    let (fs, o) = root_mount(&r, &["--name", "kept"]);
    assert!(fs.starts_with("overlay "), "{fs}");
    assert_eq!(stderr(&o), "");
    let scratch = upperdir(&fs).parent().unwrap().to_path_buf();
    let id = r.container_ids().pop().unwrap();
    assert!(scratch.ends_with(&id), "{}", scratch.display());
    // The container dir holds no copy of the image, nor an upper dir.
    let cdir = r.path().join("containers").join(&id);
    assert_eq!(std::fs::read_dir(cdir.join("rootfs")).unwrap().count(), 0);
    assert!(!cdir.join("upper").exists());
    // What the container changed stays until it is removed.
    assert!(scratch.join("upper").is_dir());
    let o = r.berth().args(["rm", "kept"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!scratch.exists(), "{} outlived rm", scratch.display());
}
