//! Escape attempts against a real container with berth's defaults, as root.
//! Each must fail; where a flag legitimately allows the thing, a twin run
//! with that flag shows it then works, so the test proves the control and
//! not a container too broken to try.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

use common::*;

/// The root switches a container can get: pivot_root (the default) and
/// the move onto / of `--no-pivot` (also what berth falls back to where a
/// seccomp filter refuses pivot_root). The checks of what a container can
/// reach of the host's files run under both.
const ROOT_SWITCHES: [&[&str]; 2] = [&[], &["--no-pivot"]];

/// `mode`'s flags, then `extra`.
fn flags<'a>(mode: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [mode, extra].concat()
}

/// Runs `script` in busybox with `extra` flags; (exit code, stdout, stderr).
fn sh(r: &Root, extra: &[&str], script: &str) -> (i32, String, String) {
    let mut args = vec!["--rm", "-q"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX, "sh", "-c", script]);
    let o = r.run(&args);
    (code(&o), stdout(&o), stderr(&o))
}

#[test]
fn masked_proc_files_read_nothing() {
    let r = Root::new();
    // /proc/kcore (absent on some kernels, masked where present) and
    // /proc/timer_list, which every kernel has and is never empty.
    let script = "cat /proc/kcore 2>/dev/null | head -c 4096 | wc -c; cat /proc/timer_list | wc -c";
    for mode in ROOT_SWITCHES {
        let (_, out, err) = sh(&r, mode, script);
        assert_eq!(out, "0\n0\n", "{mode:?}: {err}");
        let (_, out, err) = sh(&r, &flags(mode, &["--privileged"]), script);
        let timer_list: usize = out.lines().nth(1).unwrap().trim().parse().unwrap();
        assert!(timer_list > 0, "{mode:?} privileged twin: {out}{err}");
    }
}

#[test]
fn proc_sys_and_sysrq_trigger_are_read_only() {
    let r = Root::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for mode in ROOT_SWITCHES {
        let (_, out, err) = sh(
            &r,
            mode,
            "echo evil > /proc/sys/kernel/hostname; echo rc=$?; echo h > /proc/sysrq-trigger; echo rc=$?",
        );
        assert_eq!(out, "rc=1\nrc=1\n", "{mode:?}: {err}");
        assert!(err.contains("Read-only file system"), "{mode:?}: {err}");
        // Twin: privileged, /proc/sys is writable (the UTS namespace keeps
        // the host's name safe even then).
        let (_, out, err) = sh(
            &r,
            &flags(mode, &["--privileged"]),
            "echo twin > /proc/sys/kernel/hostname && hostname",
        );
        assert_eq!(out, "twin\n", "{mode:?}: {err}");
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
            host
        );
        // Never write the host's sysrq-trigger, even in the twin: only
        // check its mount is no longer read-only.
        let (_, out, _) = sh(
            &r,
            &flags(mode, &["--privileged"]),
            "grep -c ' /proc/sysrq-trigger ' /proc/self/mountinfo",
        );
        assert_eq!(out.trim(), "0", "{mode:?}");
    }
}

#[test]
fn mounting_needs_privilege() {
    let r = Root::new();
    let (_, out, err) = sh(&r, &[], "mount -t tmpfs none /tmp; echo rc=$?");
    assert_eq!(out, "rc=1\n");
    let e = err.to_lowercase();
    assert!(
        e.contains("not permitted") || e.contains("permission denied"),
        "{err}"
    );
    let (_, out, err) = sh(
        &r,
        &["--privileged"],
        "mount -t tmpfs none /tmp && echo mounted",
    );
    assert_eq!(out, "mounted\n", "{err}");
}

#[test]
fn kernel_modules_cannot_be_loaded() {
    let r = Root::new();
    let try_load = "echo junk > /tmp/m.ko; insmod /tmp/m.ko; echo rc=$?";
    let (_, out, err) = sh(&r, &[], try_load);
    assert!(out.contains("rc=1"), "{out}{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    // Twin: privileged gets past the permission check to the kernel's own
    // verdict on the junk (this kernel may not load modules at all).
    let (_, out, err) = sh(&r, &["--privileged"], try_load);
    assert!(out.starts_with("rc=") && out != "rc=0\n", "{out}");
    assert!(!err.contains("Operation not permitted"), "{err}");
}

#[test]
fn no_user_namespace_with_root_mapped() {
    let r = Root::new();
    let (_, out, err) = sh(&r, &[], "unshare -U -r id -u; echo rc=$?");
    assert_eq!(out, "rc=1\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    // Twin: without the seccomp filter the kernel allows it.
    let (_, out, err) = sh(
        &r,
        &["--security-opt", "seccomp=unconfined"],
        "unshare -U -r id -u; echo rc=$?",
    );
    assert_eq!(out, "0\nrc=0\n", "{err}");
}

/// The host's first whole disk from /proc/partitions: (major, minor).
fn host_disk() -> (u32, u32) {
    let parts = std::fs::read_to_string("/proc/partitions").unwrap();
    parts
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
        })
        .find(|&(ma, _): &(u32, u32)| ma != 7 && ma != 1) // not loop or ram
        .expect("no disk in /proc/partitions")
}

#[test]
fn host_devices_cannot_be_opened() {
    let r = Root::new();
    // CAP_MKNOD is a default capability: the node can be made, but the
    // device cgroup refuses to open it.
    let (ma, mi) = host_disk();
    let (_, out, err) = sh(
        &r,
        &[],
        &format!("mknod /tmp/disk b {ma} {mi}; head -c 512 /tmp/disk | wc -c"),
    );
    assert_eq!(out.trim(), "0", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    // The twin can't read the disk here (this VM refuses raw disk reads to
    // the host's root too), so it proves the device cgroup with /dev/kmsg,
    // which is outside Docker's allow-list and harmless to open.
    let script = "mknod /tmp/kmsg c 1 11; : < /tmp/kmsg && echo opened";
    let (_, out, err) = sh(&r, &[], script);
    assert_eq!(out, "", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    let (_, out, err) = sh(&r, &["--privileged"], script);
    assert_eq!(out, "opened\n", "privileged twin: {err}");
}

#[test]
fn host_processes_are_out_of_reach() {
    let r = Root::new();
    let me = std::process::id();
    for mode in ROOT_SWITCHES {
        let (_, out, err) = sh(
            &r,
            mode,
            &format!(
                "kill -0 {me}; echo rc=$?; kill -0 $$ && echo self-ok; ls /proc | grep -c '^[0-9]'"
            ),
        );
        let lines: Vec<&str> = out.lines().collect();
        // PID {me} may exist in the container's namespace only by chance,
        // and then it is a container process: check it is not the host's
        // by count.
        assert_eq!(lines[1], "self-ok", "{mode:?}: {out}{err}");
        let procs: usize = lines[2].parse().unwrap();
        assert!(
            procs <= 4,
            "{mode:?}: container sees {procs} processes: {out}"
        );
        if me > 10 {
            assert_eq!(lines[0], "rc=1", "{mode:?}: {err}");
        }
    }
}

#[test]
fn hostname_of_the_host_cannot_change() {
    let r = Root::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (_, out, err) = sh(&r, &[], "hostname evil; echo rc=$?");
    assert_eq!(out, "rc=1\n", "{err}");
    let (_, out, _) = sh(&r, &["--privileged"], "hostname twin && hostname");
    assert_eq!(out, "twin\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}

#[test]
fn chroot_tricks_do_not_leave_the_root() {
    let r = Root::new();
    let host_marker = workspace().join("Cargo.toml");
    for mode in ROOT_SWITCHES {
        // The classic: chroot into a subdir while keeping a cwd outside it,
        // then climb. After pivot_root with the old root detached there is
        // nothing above the container's /, and no host mount to find;
        // moved onto / without pivot_root, `..` above it comes back onto
        // it.
        let (_, out, err) = sh(
            &r,
            mode,
            "mkdir -p /jail/bin && cp /bin/busybox /jail/bin/ && cd / && \
             chroot /jail /bin/busybox sh -c 'cd ../../../..; /bin/busybox ls /' ; \
             cd /../../..; stat -c %i /; stat -c %i .; ls -d /jail; ls -d .//jail; \
             grep -c ' / / ' /proc/self/mountinfo",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"bin"),
            "{mode:?}: chroot climbed out: {out}{err}"
        );
        assert_eq!(lines[1], lines[2], "{mode:?}: .. above / is / itself");
        assert_eq!(lines[3..5], ["/jail", ".//jail"], "{mode:?}: {out}{err}");
        assert_eq!(lines[5], "1", "{mode:?}: exactly one root mount: {out}");
        let (_, out, _) = sh(
            &r,
            mode,
            &format!(
                "ls {} 2>&1; ls /proc/1/root{} 2>&1",
                host_marker.display(),
                host_marker.display()
            ),
        );
        assert!(
            !out.contains("Cargo.toml\n") || out.contains("No such file"),
            "{mode:?}: {out}"
        );
    }
}

#[test]
fn runtime_binary_cannot_be_overwritten_from_inside() {
    let r = Root::new();
    let berth = std::fs::metadata(env!("CARGO_BIN_EXE_berth")).unwrap();
    let sum = |p: &str| {
        let b = std::fs::read(p).unwrap();
        (b.len(), b.iter().map(|&x| x as u64).sum::<u64>())
    };
    let before = sum(env!("CARGO_BIN_EXE_berth"));
    for mode in ROOT_SWITCHES {
        // With --init berth itself is PID 1 in the container: privileged
        // even, writing through /proc/1/exe after a rw remount reaches a
        // private copy.
        let (_, out, err) = sh(
            &r,
            &flags(mode, &["--init", "--privileged"]),
            "stat -L -c %d:%i /proc/1/exe; mount -o remount,rw,bind /sbin/berth-init; \
             echo x >> /proc/1/exe; echo x >> /sbin/berth-init; echo rc=$?",
        );
        let first = out.lines().next().unwrap_or_default();
        assert_ne!(
            first,
            format!("{}:{}", berth.dev(), berth.ino()),
            "{mode:?}: PID 1 runs the host's binary itself: {err}"
        );
        assert!(out.contains("rc="), "{mode:?}: {out}{err}");
        assert_eq!(
            sum(env!("CARGO_BIN_EXE_berth")),
            before,
            "{mode:?}: host berth binary changed"
        );
        // Without --init no berth process is left inside at all.
        let (_, out, _) = sh(&r, mode, "readlink /proc/1/exe");
        assert_eq!(out, "/bin/busybox\n", "{mode:?}");
    }
}

#[test]
fn no_host_descriptor_or_directory_leaks_in() {
    let r = Root::new();
    // A descriptor berth's caller forgot to mark close-on-exec, and a cwd
    // that is a host directory (CVE-2024-21626 came through such a leak).
    let leaked = std::fs::File::open(workspace().join("Cargo.toml")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    // SAFETY: clearing FD_CLOEXEC on our own open fd.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    for mode in ROOT_SWITCHES {
        let o = r
            .berth()
            .current_dir(workspace())
            .args(["run", "--rm", "-q"])
            .args(mode)
            .args([BUSYBOX, "sh", "-c"])
            .arg(
                "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/self/cwd; \
                  for f in /proc/self/fd/*; do readlink $f; done",
            )
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = stdout(&o);
        let mut lines = out.lines();
        // 0-2, plus the one ls itself has open on /proc/self/fd.
        assert_eq!(
            lines.next(),
            Some("0 1 2 3 "),
            "{mode:?}: {out}{}",
            stderr(&o)
        );
        assert_eq!(lines.next(), Some("/"), "{mode:?}: {out}");
        assert!(
            !out.contains(&workspace().display().to_string()),
            "{mode:?}: host path inside: {out}"
        );
    }
    drop(leaked);
}

#[test]
fn reboot_is_refused() {
    let r = Root::new();
    let (code, out, err) = sh(&r, &[], "reboot -f; echo rc=$?");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rc=1"), "{out}{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn proc_self_exe_as_entrypoint_never_reaches_the_host_binary() {
    let r = Root::new();
    // The kernel resolves the command's path in the context of the process
    // that execs it: were that berth's set-up process, an image whose
    // entrypoint is /proc/self/exe (or a script whose interpreter it is)
    // would get the host's berth binary as its PID 1.
    let o = r.run(&[
        "--rm",
        "-q",
        "--entrypoint",
        "/proc/self/exe",
        BUSYBOX,
        "--version",
    ]);
    assert!(!stdout(&o).contains("berth"), "{}", stdout(&o));
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let script = dir.path().join("evil");
    std::fs::write(&script, "#!/proc/self/exe\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let v = format!("{}:/x:ro", dir.path().display());
    let o = r.run(&[
        "--rm",
        "-q",
        "-v",
        &v,
        "--entrypoint",
        "/x/evil",
        BUSYBOX,
        "--version",
    ]);
    assert!(!stdout(&o).contains("berth"), "{}", stdout(&o));
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    // What the container does run is only ever its own: the command itself.
    let (_, out, err) = sh(&r, &[], "readlink /proc/1/exe; grep -c berth /proc/1/maps");
    assert_eq!(out, "/bin/busybox\n0\n", "{err}");
}

#[test]
fn a_file_named_berth_init_in_an_image_chooses_no_berth_code() {
    let r = Root::new();
    // berth once ran its init when called by that name: an image could
    // pick the code path by naming a link to /proc/self/exe.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::os::unix::fs::symlink("/proc/self/exe", dir.path().join("berth-init")).unwrap();
    let v = format!("{}:/x:ro", dir.path().display());
    let o = r.run(&[
        "--rm",
        "-q",
        "-v",
        &v,
        "--entrypoint",
        "/x/berth-init",
        BUSYBOX,
        "--",
        "sh",
        "-c",
        "echo INIT-RAN",
    ]);
    assert!(!stdout(&o).contains("INIT-RAN"), "{}", stdout(&o));
    assert_ne!(code(&o), 0);
}

#[test]
fn a_cgroup_mount_never_shows_a_hierarchy_root() {
    if cgroup_v2() || rootless() {
        // v2 has no release_agent to find (fixture/v2vm.sh runs this suite there).
        eprintln!("needs a cgroup v1 host and root: skipped");
        return;
    }
    let r = Root::new();
    // With CAP_SYS_ADMIN a container may mount cgroup v1 hierarchies; the
    // root of one has release_agent, which the host runs as root.
    // Every v1 hierarchy mounted on the host (berth can only make cgroups
    // in those, as runc), named as /proc/self/cgroup names it.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let supers: Vec<Vec<&str>> = mountinfo
        .lines()
        .filter_map(|l| l.split_once(" - cgroup "))
        .filter_map(|(_, post)| post.split(' ').nth(1))
        .map(|o| o.split(',').collect())
        .collect();
    let hierarchies: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .filter(|c| !c.is_empty())
        .filter(|c| supers.iter().any(|o| c.split(',').all(|x| o.contains(&x))))
        .map(str::to_string)
        .collect();
    let script = format!(
        r#"
        for c in {}; do
            d=/tmp/m/$(echo "$c" | tr ',=' '__'); mkdir -p "$d"
            o=$c; case $c in name=*) o=none,$c;; esac
            if mount -t cgroup -o "$o" cgroup "$d" 2>/dev/null; then
                echo "mounted $c"
                [ -e "$d/release_agent" ] && echo "ROOT $c"
            fi
        done; true"#,
        hierarchies.join(" ")
    );
    let (_, out, err) = sh(&r, &["--cap-add", "SYS_ADMIN"], &script);
    let mounted = out.lines().filter(|l| l.starts_with("mounted")).count();
    assert!(
        mounted >= 3,
        "mounting works at all (the control): {out}{err}"
    );
    assert!(!out.contains("ROOT"), "{out}");
}

#[test]
fn the_callers_files_never_cross_into_the_container() {
    let r = Root::new();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let out_path = dir.path().join("out.log");
    std::fs::write(&out_path, "SECRET\n").unwrap();
    std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = std::fs::OpenOptions::new()
        .append(true)
        .open(&out_path)
        .unwrap();
    // Given the caller's file as fd 1, a container could reopen it through
    // /proc/self/fd (read it, or truncate it as `>` does) or change its mode.
    let st = r
        .berth()
        .args(["run", "--rm", "-q", BUSYBOX, "sh", "-c"])
        .arg(
            "readlink /proc/self/fd/1; readlink /proc/self/fd/2 >&2; \
             chmod 777 /proc/self/fd/1; echo reopened > /proc/self/fd/1; echo done",
        )
        .stdout(out)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&out_path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("SECRET"), "{text}");
    assert!(
        lines.next().unwrap_or_default().starts_with("pipe:["),
        "{text}"
    );
    assert!(text.ends_with("reopened\ndone\n"), "{text}");
    assert!(!text[7..].contains("SECRET"), "{text}");
    let mode = std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn the_callers_terminal_never_crosses_into_the_container() {
    let r = Root::new();
    // script(1) gives berth a terminal as stdin, stdout and stderr; without
    // -t the container must see none of it.
    let cmd = format!(
        "{} --root {} run --rm -q {BUSYBOX} sh -c \
         'for f in 0 1 2; do [ -t $f ] && echo tty$f || echo notty$f; done'",
        berth_shell(),
        r.path().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env(
            "BERTH_CONFIG",
            workspace().join("crates/cli/tests/config.json"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o).replace('\r', "");
    assert!(out.contains("notty1\nnotty2"), "{out}{}", stderr(&o));
    assert!(!out.contains("\ntty"), "{out}");
}

#[test]
fn stdio_relay_is_byte_exact_in_and_out() {
    let r = Root::new();
    let out = r.run(&[
        "--rm",
        "-q",
        BUSYBOX,
        "sh",
        "-c",
        "seq 1 200000; seq 7 90000 >&2",
    ]);
    let want = |a: u32, b: u32| (a..=b).map(|i| format!("{i}\n")).collect::<String>();
    assert_eq!(stdout(&out), want(1, 200000));
    assert_eq!(stderr(&out), want(7, 90000));
    // -i: stdin is a pipe too; 3 MB of binary data come back unchanged.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut child = r
        .berth()
        .args(["run", "--rm", "-q", "-i", BUSYBOX, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = data.clone();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &feed));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success());
    assert!(o.stdout == data, "{} bytes back", o.stdout.len());
}

/// Processes anywhere on the host in a cgroup of container `id`.
fn processes_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(id)) {
            found.push(name);
        }
    }
    found
}

/// cgroup directories of container `id` left in any hierarchy.
fn cgroups_left(id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = h.path().join("berth").join(id);
        if d.exists() {
            left.push(d.display().to_string());
        }
    }
    if std::path::Path::new("/sys/fs/cgroup/berth")
        .join(id)
        .exists()
    {
        left.push(format!("/sys/fs/cgroup/berth/{id}"));
    }
    left
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    done()
}

#[test]
fn a_killed_berth_run_takes_its_container_with_it() {
    let r = Root::new();
    let (mut child, _, v) = r.started("orphan", &[BUSYBOX, "sh", "-c", "echo up; exec sleep 600"]);
    let pid = v["State"]["Pid"].as_i64().unwrap();
    let id = v["Id"].as_str().unwrap().to_string();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let gone = wait_until(|| !std::path::Path::new(&format!("/proc/{pid}")).exists());
    if !gone {
        // SAFETY: kill(2) of the survivor, so the test leaves nothing behind.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(gone, "the container outlived its killed berth run");
    let ps = stdout(&r.berth().args(["ps", "-a"]).output().unwrap());
    assert!(!ps.contains("Up "), "{ps}");
    // The next run cleans up after it: no record, mount or cgroup left.
    assert_eq!(code(&r.run(&["--rm", "-q", BUSYBOX, "true"])), 0);
    assert!(r.container_ids().is_empty());
    if !rootless() {
        assert_eq!(cgroups_left(&id), Vec::<String>::new());
    }
}

#[test]
fn a_berth_run_killed_while_starting_leaves_no_process_or_cgroup() {
    let r = Root::new();
    // Killed at points spread over the start (pull is done first), each
    // run's set-up must die too and its cgroup go at the next run.
    assert_eq!(code(&r.run(&["--rm", "-q", BUSYBOX, "true"])), 0);
    for i in 0..16u64 {
        let mut child = r
            .berth()
            .args(["run", "--rm", "-q", BUSYBOX, "sleep", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(2500 * i));
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
    }
    let ids = r.container_ids();
    for id in &ids {
        assert!(
            wait_until(|| processes_of(id).is_empty()),
            "container {id} still has processes {:?}",
            processes_of(id)
        );
    }
    assert_eq!(code(&r.run(&["--rm", "-q", BUSYBOX, "true"])), 0);
    assert!(r.container_ids().is_empty(), "records left");
    if !rootless() {
        for id in &ids {
            assert_eq!(cgroups_left(id), Vec::<String>::new());
        }
    }
}
