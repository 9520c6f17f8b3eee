//! Escape attempts against a real container with berth's defaults, as root.
//! Each must fail; where a flag legitimately allows the thing, a twin run
//! with that flag shows it then works, so the test proves the control and
//! not a container too broken to try.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

use common::*;

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
    let (_, out, err) = sh(&r, &[], script);
    assert_eq!(out, "0\n0\n", "{err}");
    let (_, out, err) = sh(&r, &["--privileged"], script);
    let timer_list: usize = out.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(timer_list > 0, "privileged twin: {out}{err}");
}

#[test]
fn proc_sys_and_sysrq_trigger_are_read_only() {
    let r = Root::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (_, out, err) = sh(
        &r,
        &[],
        "echo evil > /proc/sys/kernel/hostname; echo rc=$?; echo h > /proc/sysrq-trigger; echo rc=$?",
    );
    assert_eq!(out, "rc=1\nrc=1\n", "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    // Twin: privileged, /proc/sys is writable (the UTS namespace keeps the
    // host's name safe even then).
    let (_, out, err) = sh(
        &r,
        &["--privileged"],
        "echo twin > /proc/sys/kernel/hostname && hostname",
    );
    assert_eq!(out, "twin\n", "{err}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
    // Never write the host's sysrq-trigger, even in the twin: only check
    // its mount is no longer read-only.
    let (_, out, _) = sh(
        &r,
        &["--privileged"],
        "grep -c ' /proc/sysrq-trigger ' /proc/self/mountinfo",
    );
    assert_eq!(out.trim(), "0");
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
    let (_, out, err) = sh(
        &r,
        &[],
        &format!(
            "kill -0 {me}; echo rc=$?; kill -0 $$ && echo self-ok; ls /proc | grep -c '^[0-9]'"
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    // PID {me} may exist in the container's namespace only by chance, and
    // then it is a container process: check it is not the host's by count.
    assert_eq!(lines[1], "self-ok", "{out}{err}");
    let procs: usize = lines[2].parse().unwrap();
    assert!(procs <= 4, "container sees {procs} processes: {out}");
    if me > 10 {
        assert_eq!(lines[0], "rc=1", "{err}");
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
    // The classic: chroot into a subdir while keeping a cwd outside it, then
    // climb. After pivot_root with the old root detached there is nothing
    // above the container's /, and no host mount to find.
    let (_, out, err) = sh(
        &r,
        &[],
        "mkdir -p /jail/bin && cp /bin/busybox /jail/bin/ && cd / && \
         chroot /jail /bin/busybox sh -c 'cd ../../../..; /bin/busybox ls /' ; \
         cd /../../..; stat -c %i /; stat -c %i .; \
         grep -c ' / / ' /proc/self/mountinfo",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"bin"),
        "chroot climbed out: {out}{err}"
    );
    assert_eq!(lines[1], lines[2], ".. above / is / itself");
    assert_eq!(lines[3], "1", "exactly one root mount: {out}");
    let host_marker = workspace().join("Cargo.toml");
    let (_, out, _) = sh(
        &r,
        &[],
        &format!(
            "ls {} 2>&1; ls /proc/1/root{} 2>&1",
            host_marker.display(),
            host_marker.display()
        ),
    );
    assert!(
        !out.contains("Cargo.toml\n") || out.contains("No such file"),
        "{out}"
    );
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
    // With --init berth itself is PID 1 in the container: privileged even,
    // writing through /proc/1/exe after a rw remount reaches a private copy.
    let (_, out, err) = sh(
        &r,
        &["--init", "--privileged"],
        "stat -L -c %d:%i /proc/1/exe; mount -o remount,rw,bind /sbin/berth-init; \
         echo x >> /proc/1/exe; echo x >> /sbin/berth-init; echo rc=$?",
    );
    let first = out.lines().next().unwrap_or_default();
    assert_ne!(
        first,
        format!("{}:{}", berth.dev(), berth.ino()),
        "PID 1 runs the host's binary itself: {err}"
    );
    assert!(out.contains("rc="), "{out}{err}");
    assert_eq!(
        sum(env!("CARGO_BIN_EXE_berth")),
        before,
        "host berth binary changed"
    );
    // Without --init no berth process is left inside at all.
    let (_, out, _) = sh(&r, &[], "readlink /proc/1/exe");
    assert_eq!(out, "/bin/busybox\n");
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
    let o = r
        .berth()
        .current_dir(workspace())
        .args(["run", "--rm", "-q", BUSYBOX, "sh", "-c"])
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
    assert_eq!(lines.next(), Some("0 1 2 3 "), "{out}{}", stderr(&o));
    assert_eq!(lines.next(), Some("/"), "{out}");
    assert!(
        !out.contains(&workspace().display().to_string()),
        "host path inside: {out}"
    );
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
