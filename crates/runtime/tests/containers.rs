//! Real containers, run as root through the helper binary.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

#[test]
fn echo_prints_to_stdout() {
    let o = Bundle::new(&["echo", "hey"]).run();
    assert_eq!(stdout(&o), "hey\n", "stderr: {}", stderr(&o));
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn stderr_is_kept_apart_from_stdout() {
    let o = Bundle::sh("echo out; echo err >&2").run();
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
}

#[test]
fn exit_code_is_the_commands() {
    assert_eq!(Bundle::sh("exit 3").run().status.code(), Some(3));
}

#[test]
fn killed_by_signal_is_128_plus_n() {
    // PID 1 cannot be SIGKILLed from inside its namespace: kill it from
    // the host, through the pid reported at start.
    let b = Bundle::sh("echo ready; while :; do sleep 0.05; done");
    let pidfile = b.path().join("pid");
    let mut cmd = b.command(false);
    cmd.env("BERTH_TEST_PIDFILE", &pidfile);
    let (mut child, _out) = spawn_ready_with(cmd);
    let pid = wait_for_pidfile(&pidfile);
    // SAFETY: plain kill of the container's PID 1.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn proc_self_exe_as_the_command_never_runs_the_runtime() {
    // The set-up process is a clone of the runtime: exec'ing /proc/self/exe
    // straight from it would make its binary the container's PID 1. The
    // trampoline in between is what it finds there, and it gives up.
    for args in [
        vec!["/proc/self/exe", "init", "--", "sh", "-c", "echo RAN"],
        vec!["/proc/self/exe", "/bin/sh", "sh", "-c", "echo RAN"],
    ] {
        let o = Bundle::new(&args).run();
        assert_eq!(o.status.code(), Some(127), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains("RAN"), "{args:?}: {}", stdout(&o));
    }
    // A script whose interpreter is /proc/self/exe: the same.
    let b = Bundle::new(&["/bin/evil"]);
    std::fs::write(b.rootfs().join("bin/evil"), "#!/proc/self/exe\necho RAN\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        b.rootfs().join("bin/evil"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let o = b.run();
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(!stdout(&o).contains("RAN"));
}

/// Whether nothing can write the file process `pid` runs: a read-only
/// mount or a sealed memfd, seen through the link a container would use.
fn exe_is_protected(pid: i32) -> bool {
    let link = format!("/proc/{pid}/exe");
    let ro = rustix::fs::statvfs(link.as_str())
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    let sealed = std::fs::File::open(&link).is_ok_and(|f| {
        rustix::fs::fcntl_get_seals(&f).is_ok_and(|s| s.contains(rustix::fs::SealFlags::WRITE))
    });
    ro || sealed
}

#[test]
fn without_a_pid_namespace_only_a_sealed_runtime_runs_a_container() {
    // The container sees its runtime then, and /proc/PID/exe is its binary.
    let no_pid_ns = |script: &str| {
        let mut b = Bundle::sh(script);
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
        b
    };
    let o = no_pid_ns("echo RAN").run();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("CVE-2019-5736"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("RAN"));
    for seal in ["copy", "memfd"] {
        let b = no_pid_ns("echo ready; while :; do sleep 0.05; done");
        let mut cmd = b.command(false);
        cmd.env("BERTH_TEST_SEAL", seal);
        let (mut child, _out) = spawn_ready_with(cmd);
        let runtime = child.id() as i32;
        let protected = exe_is_protected(runtime);
        signal(&child, libc::SIGTERM);
        let _ = child.wait();
        assert!(protected, "{seal}: the runtime's binary is writable");
    }
}

/// A PID namespace given by path is joined: the container's processes
/// are born in it and see its processes (runc's `--pid container:`).
#[test]
fn an_existing_pid_namespace_is_joined() {
    // A namespace of the test's own, held by a sleep that is its PID 1.
    let mut holder = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sleep", "60"])
        .spawn()
        .unwrap();
    let ns_path = || -> Option<String> {
        let kids = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            holder.id(),
            holder.id()
        ))
        .ok()?;
        let pid = kids.split_whitespace().next()?.to_string();
        Some(format!("/proc/{pid}/ns/pid"))
    };
    let mut path = None;
    for _ in 0..200 {
        path = ns_path();
        if path.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let path = path.expect("the holder's namespace");
    let mut b = Bundle::sh("cat /proc/1/comm; echo $$");
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "pid" {
            n["path"] = serde_json::json!(path);
        }
    }
    // Without a PID namespace of its own it could see the runtime: sealed.
    let mut cmd = b.command(false);
    cmd.env("BERTH_TEST_SEAL", "memfd");
    let o = cmd.output().unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("sleep"), "{out}");
    let own: i32 = lines.next().unwrap().parse().unwrap();
    assert!(
        own > 1,
        "born in the joined namespace, not as its PID 1: {out}"
    );
}

/// Intel RDT asked for is refused, never run without.
#[test]
fn intel_rdt_is_refused() {
    let mut b = Bundle::new(&["echo", "ran"]);
    b.config["linux"]["intelRdt"] = serde_json::json!({"closID": "c1", "l3CacheSchema": "L3:0=ff"});
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("intelRdt is not supported"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("ran"));
}

#[test]
fn missing_command_is_127() {
    let b = Bundle::new(&["nosuchcmd"]);
    let o = b.run();
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains(r#"exec: "nosuchcmd": executable file not found in $PATH"#),
        "{}",
        stderr(&o)
    );
    assert!(!b.state_dir().join("c1").exists(), "state dir left behind");
}

#[test]
fn missing_absolute_command_is_127() {
    let o = Bundle::new(&["/nope/cmd"]).run();
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("no such file or directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn non_executable_command_is_126() {
    let b = Bundle::new(&["/etc/passwd"]);
    let o = b.run();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
}

#[test]
fn setup_failure_is_125_and_names_the_step() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["cwd"] = "/does/not/exist".into();
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("chdir to cwd"), "{}", stderr(&o));
}

#[test]
fn command_is_pid_1() {
    // The trailing `true` keeps sh from exec'ing cat in its place.
    let o = Bundle::sh("echo $$; cat /proc/1/cmdline; true").run();
    assert_eq!(
        stdout(&o),
        "1\nsh\0-c\0echo $$; cat /proc/1/cmdline; true\0"
    );
}

#[test]
fn root_is_the_bundle_rootfs() {
    let b = Bundle::new(&["ls", "/"]);
    std::fs::write(b.rootfs().join("marker"), "").unwrap();
    let o = b.run();
    let entries: Vec<&str> = o
        .stdout
        .split(|&c| c == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    assert!(entries.contains(&"marker"), "{entries:?}");
    assert!(
        !entries.contains(&"work") && !entries.contains(&"usr"),
        "{entries:?}"
    );
}

#[test]
fn ps_sees_only_the_container() {
    let o = Bundle::sh("sleep 100 & ps -o pid,comm").run();
    let out = stdout(&o);
    let pids: Vec<u32> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(pids.contains(&1), "{out}");
    assert!(pids.len() <= 3 && pids.iter().all(|&p| p < 10), "{out}");
}

#[test]
fn hostname_comes_from_the_spec() {
    assert_eq!(stdout(&Bundle::new(&["hostname"]).run()), "berth-test\n");
}

#[test]
fn mounts_inside_are_the_containers_and_nothing_leaks_out() {
    let b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    let o = b.run();
    let inside = stdout(&o);
    let points: Vec<&str> = inside
        .lines()
        .map(|l| l.split(' ').nth(4).unwrap())
        .collect();
    assert_eq!(points.first(), Some(&"/"), "{inside}");
    for p in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(points.contains(&p), "{p} missing: {inside}");
    }
    for p in &points {
        let allowed = ["/proc", "/dev", "/sys"];
        assert!(
            *p == "/" || allowed.iter().any(|a| p.starts_with(a)),
            "host mount {p} visible: {inside}"
        );
    }
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let bundle = b.path().to_string_lossy().into_owned();
    assert!(
        !host.contains(&bundle),
        "container mount left on host: {host}"
    );
}

/// Every rootfsPropagation runs (pivot_root refuses a shared parent), and
/// none of the container's mounts is left on the host, shared or not.
#[test]
fn every_rootfs_propagation_runs_and_leaks_nothing() {
    for prop in [
        "shared", "rshared", "slave", "rslave", "private", "rprivate",
    ] {
        let mut b = Bundle::new(&["echo", "ran"]);
        b.config["linux"]["rootfsPropagation"] = serde_json::json!(prop);
        let o = b.run();
        assert_eq!(o.status.code(), Some(0), "{prop}: {}", stderr(&o));
        assert_eq!(stdout(&o), "ran\n", "{prop}");
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let bundle = b.path().to_string_lossy().into_owned();
        assert!(
            !host.contains(&bundle),
            "{prop}: container mount left on host: {host}"
        );
    }
}

#[test]
fn no_process_outlives_the_container() {
    // A unique duration identifies the background sleep in the host's /proc.
    let marker = 900_000 + std::process::id() % 99_999;
    let o = Bundle::sh(&format!("sleep {marker} & echo started")).run();
    assert_eq!(stdout(&o), "started\n");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains(&marker.to_string()),
            "left behind: {cmdline}"
        );
    }
}

#[test]
fn binary_output_is_byte_exact() {
    let b = Bundle::sh("head -c 1000000 /dev/urandom > /tmp/data; cat /tmp/data");
    let o = b.run();
    let data = std::fs::read(b.rootfs().join("tmp/data")).unwrap();
    assert_eq!(data.len(), 1_000_000);
    assert!(o.stdout == data, "stdout differs from the data written");
}

#[test]
fn large_output_is_not_truncated_at_exit() {
    let o = Bundle::new(&["head", "-c", "20000000", "/dev/zero"]).run();
    assert_eq!(o.stdout.len(), 20_000_000);
}

#[test]
fn stdin_is_null_without_interactive() {
    let o = Bundle::new(&["cat"]).run();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
}

#[test]
fn interactive_stdin_reaches_eof() {
    let b = Bundle::new(&["cat"]);
    let mut child = b
        .command(true)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\nline two\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "line one\nline two\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
}

/// Start a container that prints "ready" once its traps are set, and
/// return it with a reader on its stdout.
fn spawn_ready(b: &Bundle) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    spawn_ready_with(b.command(false))
}

fn spawn_ready_with(
    mut cmd: std::process::Command,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, out)
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: plain kill of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn signals_are_forwarded_to_pid_1() {
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGUSR1, "USR1")] {
        let b = Bundle::sh(&format!(
            "trap 'echo got {name}; exit 7' {name}; echo ready; while :; do sleep 0.05; done"
        ));
        let (mut child, mut out) = spawn_ready(&b);
        signal(&child, sig);
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }
}

#[test]
fn pid_1_ignores_untrapped_signals() {
    // From inside, as Docker: SIGTERM/SIGHUP to a PID 1 without handlers
    // do nothing (busybox sh handles SIGINT itself, so not that one).
    let o = Bundle::sh("kill -TERM 1; kill -HUP 1; kill -USR2 1; echo survived").run();
    assert_eq!(stdout(&o), "survived\n");
    assert_eq!(o.status.code(), Some(0));
    // From outside, forwarded SIGTERM is ignored too; USR1 then ends it.
    let b = Bundle::sh("trap 'echo usr1; exit 4' USR1; echo ready; while :; do sleep 0.05; done");
    let (mut child, mut out) = spawn_ready(&b);
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGUSR1);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "usr1\n");
    assert_eq!(child.wait().unwrap().code(), Some(4));
}

#[test]
fn readonly_rootfs() {
    let mut b = Bundle::sh("touch /newfile; echo rc=$?; touch /tmp/x");
    b.config["root"]["readonly"] = true.into();
    let o = b.run();
    assert_eq!(stdout(&o).lines().next(), Some("rc=1"));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!b.rootfs().join("newfile").exists());
}

#[test]
fn masked_paths_hide_files_and_dirs() {
    let mut b = Bundle::sh("cat /etc/secret; ls /secretdir; cat /proc/kcore | wc -c; echo end");
    std::fs::write(b.rootfs().join("etc/secret"), "top secret").unwrap();
    std::fs::create_dir(b.rootfs().join("secretdir")).unwrap();
    std::fs::write(b.rootfs().join("secretdir/file"), "x").unwrap();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .extend(["/etc/secret".into(), "/secretdir".into()]);
    let o = b.run();
    assert_eq!(stdout(&o), "0\nend\n", "stderr: {}", stderr(&o));
}

#[test]
fn readonly_paths_are_readonly() {
    let o = Bundle::sh("echo 1 > /proc/sys/kernel/domainname && echo wrote").run();
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bind_mount_read_only() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("data"), "from host\n").unwrap();
    let mut b = Bundle::sh("cat /mnt/in/data; touch /mnt/in/new; echo rc=$?");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/mnt/in", "type": "bind",
            "source": host.path(), "options": ["rbind", "ro"]
        }));
    let o = b.run();
    assert_eq!(stdout(&o), "from host\nrc=1\n", "{}", stderr(&o));
    assert!(!host.path().join("new").exists());
    assert!(
        b.rootfs().join("mnt/in").is_dir(),
        "mount point was created inside the rootfs"
    );
}

#[test]
fn bind_mount_target_symlink_stays_inside_rootfs() {
    // A hostile rootfs: /mnt/evil -> /tmp/host-target-... absolute symlink.
    // It must resolve inside the rootfs, never onto the host path.
    let host_target = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload"), "payload").unwrap();
    let mut b = Bundle::sh("ls /mnt/evil");
    std::fs::create_dir_all(b.rootfs().join("mnt")).unwrap();
    std::os::unix::fs::symlink(host_target.path(), b.rootfs().join("mnt/evil")).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/mnt/evil", "type": "bind",
            "source": src.path(), "options": ["rbind"]
        }));
    let o = b.run();
    assert_eq!(stdout(&o), "payload\n", "{}", stderr(&o));
    // The directory was created inside the rootfs at the symlink's target.
    let inside = b
        .rootfs()
        .join(host_target.path().strip_prefix("/").unwrap());
    assert!(inside.is_dir(), "mount point not created inside rootfs");
    assert_eq!(std::fs::read_dir(host_target.path()).unwrap().count(), 0);
}

/// Ambient capabilities the kernel cannot raise (not inheritable, as
/// `runc spec` asks for them) are left out; inheritable ones are raised.
#[test]
fn ambient_capabilities_only_where_inheritable() {
    for (inheritable, amb) in [
        (serde_json::json!([]), "0000000000000000"),
        (serde_json::json!(["CAP_KILL"]), "0000000000000020"),
    ] {
        let mut b = Bundle::sh("grep CapAmb /proc/self/status");
        let all = serde_json::json!(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]);
        b.config["process"]["capabilities"] = serde_json::json!({
            "bounding": all, "effective": all, "permitted": all,
            "inheritable": inheritable, "ambient": all
        });
        let o = b.run();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("CapAmb:\t{amb}\n"));
    }
}

#[test]
fn devices_and_dev_links() {
    let o = Bundle::sh(
        "for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo $d; done; \
         for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; head -c 3 /dev/zero | wc -c",
    )
    .run();
    assert_eq!(
        stdout(&o),
        "null\nzero\nfull\nrandom\nurandom\ntty\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx\n3\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn rlimits_and_capabilities_apply() {
    let o = Bundle::sh("ulimit -n; grep -E '^Cap(Bnd|Eff)|NoNewPrivs' /proc/self/status").run();
    let out = stdout(&o);
    assert!(out.starts_with("1024\n"), "{out}");
    // Docker's default set is 0x00000000a80425fb.
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn user_and_groups_are_switched() {
    let mut b = Bundle::sh("id -u; id -g; id -G");
    b.config["process"]["user"] =
        serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [50]});
    let o = b.run();
    assert_eq!(stdout(&o), "1000\n1000\n1000 50\n", "{}", stderr(&o));
}

#[test]
fn state_dir_is_removed_after_run() {
    let b = Bundle::new(&["true"]);
    let o = b.run();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_dir(b.state_dir()).unwrap().count(), 0);
}

#[test]
fn duplicate_id_is_refused() {
    let b = Bundle::new(&["true"]);
    std::fs::create_dir_all(b.state_dir().join("c1")).unwrap();
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    let o = Bundle::sh("cat /sys/class/net/lo/flags; ls /sys/class/net").run();
    assert_eq!(stdout(&o), "0x9\nlo\n", "{}", stderr(&o));
}

#[test]
fn loopback_stays_down_without_cap_net_admin() {
    // A runtime without CAP_NET_ADMIN (one in a container with Docker's
    // default capabilities) cannot bring `lo` up; the container still gets
    // its private network namespace, with `lo` down (IFF_LOOPBACK alone).
    let b = Bundle::sh("cat /sys/class/net/lo/flags; ls /sys/class/net");
    b.write_config();
    let o = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-net_admin", HELPER, "run"])
        .arg(b.state_dir())
        .arg("c1")
        .arg(b.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "0x8\nlo\n", "{}", stderr(&o));
}

#[test]
fn rlimit_failure_names_the_limit() {
    let mut b = Bundle::new(&["true"]);
    // Above fs.nr_open, so even root cannot set it.
    b.config["process"]["rlimits"] = serde_json::json!([
        {"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1024}
    ]);
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    // Named as the user named it (Docker's `nofile`), with the value and
    // the host's ceiling, whatever capabilities the runtime holds.
    let err = stderr(&o);
    assert!(
        err.contains("nofile")
            && err.contains("1099511627776")
            && err.contains("fs.nr_open")
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn mount_failure_names_the_mount() {
    let mut b = Bundle::new(&["true"]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/x", "type": "nosuchfs", "source": "none"
        }));
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("mount none (nosuchfs) on /x: no such device"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn only_stdio_is_inherited() {
    let o = Bundle::sh("ls /proc/self/fd").run();
    assert_eq!(stdout(&o), "0\n1\n2\n3\n", "{}", stderr(&o));
}

#[test]
fn mount_destination_cannot_climb_out_of_rootfs() {
    // `..` past the root and a symlinked parent pointing at an absolute host
    // path both have to resolve inside the rootfs.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "in").unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    let mut b = Bundle::sh("cat /escape/f; cat /viahost/sub/f");
    std::os::unix::fs::symlink(host_dir.path(), b.rootfs().join("viahost")).unwrap();
    for dest in ["/../../../escape", "/viahost/sub"] {
        b.config["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": dest, "type": "bind", "source": src.path(), "options": ["rbind", "ro"]
        }));
    }
    let o = b.run();
    assert_eq!(stdout(&o), "inin", "{}", stderr(&o));
    assert!(b.rootfs().join("escape").is_dir());
    assert!(!std::path::Path::new("/escape").exists());
    assert_eq!(
        std::fs::read_dir(host_dir.path()).unwrap().count(),
        0,
        "created on the host"
    );
    let inside = b
        .rootfs()
        .join(host_dir.path().strip_prefix("/").unwrap())
        .join("sub");
    assert!(inside.is_dir());
}

#[test]
fn spec_devices_are_created() {
    let mut b =
        Bundle::sh("ls -l /dev/net/tun /dev/berth-null | tr -s ' ' | cut -d ' ' -f 1,3,4,5,6");
    b.config["linux"]["devices"] = serde_json::json!([
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 438, "uid": 0, "gid": 0},
        {"path": "/dev/berth-null", "type": "c", "major": 1, "minor": 3, "fileMode": 432, "uid": 1000, "gid": 1000}
    ]);
    let o = b.run();
    assert_eq!(
        stdout(&o),
        "crw-rw---- 1000 1000 1, 3\ncrw-rw-rw- root 0 10, 200\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn user_namespace_maps_root_to_a_subordinate_range() {
    let mut b = Bundle::sh(
        "id -u; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '; ls -ln /bin/busybox | tr -s ' ' | cut -d ' ' -f 3,4",
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    b.config["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let o = b.run();
    // Root inside is 200000 outside; the host's root-owned files are nobody's.
    assert_eq!(
        stdout(&o),
        "0\n 0 200000 65536\n 0 200000 65536\n65534 65534\n",
        "{}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn user_namespace_without_maps_is_refused_clearly() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let o = b.run();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("a user namespace needs uidMappings and gidMappings"),
        "{}",
        stderr(&o)
    );
    assert!(!b.state_dir().join("c1").exists());
}

/// A bundle in a user namespace (root mapped to itself), where no device
/// node can be made, asking for char `major:minor` at `path`.
fn userns_device(major: u32, minor: u32, path: &str) -> std::process::Output {
    let mut b = Bundle::sh(&format!("stat -c %t,%T {path}; head -c 4 {path} | wc -c"));
    let linux = &mut b.config["linux"];
    linux["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    linux["uidMappings"] = map.clone();
    linux["gidMappings"] = map;
    linux["devices"] = serde_json::json!([
        {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
    ]);
    b.run()
}

#[test]
fn in_a_user_namespace_a_device_is_the_hosts_node_only_if_it_is_that_device() {
    // /dev/zero is char 1:5 on the host too: bound, and it reads zeros.
    let o = userns_device(1, 5, "/dev/zero");
    assert_eq!(stdout(&o), "1,5\n4\n", "{}", stderr(&o));
    // The bind happens at the container path: /dev/x is not on the host.
    let o = userns_device(1, 5, "/dev/x");
    assert_ne!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("/dev/x"), "{}", stderr(&o));
    // The host's /dev/kmsg is 1:11, not the 1:5 asked for: refused, never
    // bound in its place.
    let o = userns_device(1, 5, "/dev/kmsg");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("the host's /dev/kmsg is another device"),
        "{}",
        stderr(&o)
    );
}

/// A file bind-mounted at `dest`, after `setup` shaped the rootfs.
fn bind_file_at(
    dest: &str,
    script: &str,
    setup: impl FnOnce(&std::path::Path),
) -> (Bundle, std::process::Output) {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "nameserver 192.0.2.53\n").unwrap();
    let mut b = Bundle::sh(script);
    setup(&b.rootfs());
    b.config["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": dest, "type": "bind", "source": src.path().join("f"), "options": ["rbind"]
    }));
    let o = b.run();
    (b, o)
}

#[test]
fn file_bind_target_through_a_dangling_relative_symlink_is_created_inside() {
    // How systemd images ship /etc/resolv.conf: into a /run they lack.
    let (b, o) = bind_file_at(
        "/etc/resolv.conf",
        "cat /etc/resolv.conf; readlink /etc/resolv.conf",
        |root| {
            std::os::unix::fs::symlink(
                "../run/systemd/resolve/stub-resolv.conf",
                root.join("etc/resolv.conf"),
            )
            .unwrap()
        },
    );
    assert_eq!(
        stdout(&o),
        "nameserver 192.0.2.53\n../run/systemd/resolve/stub-resolv.conf\n",
        "{}",
        stderr(&o)
    );
    assert!(
        b.rootfs()
            .join("run/systemd/resolve/stub-resolv.conf")
            .is_file()
    );
}

#[test]
fn targets_through_escaping_symlinks_are_made_inside_the_rootfs() {
    let name = format!("berth-rt-escape-{}", std::process::id());
    let host = std::path::Path::new("/var/tmp").join(&name);
    // Absolute with `..` past the root, and relative climbing out of it.
    let abs = format!("/../../var/tmp/{name}/abs/x");
    let rel = format!("../../../../../../../var/tmp/{name}/rel/y");
    let (b, o) = bind_file_at("/mnt/abs", "cat /mnt/abs", |root| {
        std::fs::create_dir_all(root.join("mnt")).unwrap();
        std::os::unix::fs::symlink(&abs, root.join("mnt/abs")).unwrap();
        std::os::unix::fs::symlink(&rel, root.join("mnt/rel")).unwrap();
    });
    assert_eq!(stdout(&o), "nameserver 192.0.2.53\n", "{}", stderr(&o));
    assert!(!host.exists(), "{} made on the host", host.display());
    let inside = b.rootfs().join("var/tmp").join(&name);
    assert!(inside.join("abs/x").is_file());

    let mut b = Bundle::sh("ls -d /mnt/rel");
    std::fs::create_dir_all(b.rootfs().join("mnt")).unwrap();
    std::os::unix::fs::symlink(&rel, b.rootfs().join("mnt/rel")).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/mnt/rel", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
        }));
    let o = b.run();
    assert_eq!(stdout(&o), "/mnt/rel\n", "{}", stderr(&o));
    assert!(!host.exists(), "{} made on the host", host.display());
    assert!(
        b.rootfs()
            .join("var/tmp")
            .join(&name)
            .join("rel/y")
            .is_dir()
    );
}

#[test]
fn targets_through_proc_magic_links_are_refused_and_make_nothing() {
    let name = format!("berth-rt-magic-{}", std::process::id());
    let host = std::path::Path::new("/var/tmp").join(&name);
    let (_b, o) = bind_file_at("/etc/hosts", "true", |root| {
        std::os::unix::fs::symlink(
            format!("/proc/self/root/var/tmp/{name}/hosts"),
            root.join("etc/hosts"),
        )
        .unwrap()
    });
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(!host.exists(), "{} made on the host", host.display());
    let (_b, o) = bind_file_at("/etc/cwd-link/x", "true", |root| {
        std::os::unix::fs::symlink("/proc/self/cwd/var/tmp", root.join("etc/cwd-link")).unwrap()
    });
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(!host.exists(), "{} made on the host", host.display());
}
