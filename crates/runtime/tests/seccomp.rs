//! seccomp in the runtime: compiled once and cached, installed in real
//! containers (run as root through the helper binary).

mod common;

use berth_runtime::seccomp;
use common::*;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;
use std::time::Instant;

/// Docker's default profile as berth evaluates it for Docker's default
/// capabilities: the real-sized program every container gets.
fn docker_default() -> LinuxSeccomp {
    use berth_spec::seccomp::{Choice, linux_seccomp};
    let caps = berth_spec::capabilities::DEFAULT_CAPABILITIES
        .into_iter()
        .collect();
    linux_seccomp(&Choice::Default, &caps, false)
        .unwrap()
        .unwrap()
}

fn only_file(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn second_prepare_is_a_cache_hit_with_the_same_program() {
    let cache = tempfile::tempdir().unwrap();
    let spec = docker_default();

    let t = Instant::now();
    let first = seccomp::prepare(&spec, Some(cache.path())).unwrap();
    let compile = t.elapsed();
    assert!(!first.cached);
    assert_eq!(first.bpf.len() % 8, 0);
    assert!(first.bpf.len() > 8 * 100, "{} bytes", first.bpf.len());

    let t = Instant::now();
    let second = seccomp::prepare(&spec, Some(cache.path())).unwrap();
    let hit = t.elapsed();
    assert!(second.cached);
    assert_eq!(second.bpf, first.bpf);
    eprintln!(
        "docker default profile: {} instructions, compile {:.2} ms, cache hit {:.3} ms",
        first.bpf.len() / 8,
        compile.as_secs_f64() * 1e3,
        hit.as_secs_f64() * 1e3
    );

    // The cache file is named by the key; a different spec is a different entry.
    let file = only_file(cache.path());
    assert_eq!(
        file.file_name().unwrap().to_string_lossy(),
        format!("{}.bpf", seccomp::cache_key(&spec).unwrap())
    );
    let mut other = spec.clone();
    other.set_default_errno_ret(Some(libc::EACCES as u32));
    assert_ne!(
        seccomp::cache_key(&other).unwrap(),
        seccomp::cache_key(&spec).unwrap()
    );
    // Without a cache it still works, just compiles each time.
    let uncached = seccomp::prepare(&spec, None).unwrap();
    assert!(!uncached.cached);
    assert_eq!(uncached.bpf, first.bpf);
}

#[test]
fn the_cache_keeps_its_most_recently_used_entries() {
    let cache = tempfile::tempdir().unwrap();
    let max = seccomp::CACHE_MAX_ENTRIES;
    // Older entries than any real one, the first used longest ago.
    let epoch = std::time::SystemTime::UNIX_EPOCH;
    for i in 0..max {
        let p = cache.path().join(format!("old{i:03}.bpf"));
        std::fs::write(&p, "x").unwrap();
        let t = epoch + std::time::Duration::from_secs(1000 + i as u64);
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
    }
    // Not ours: never touched.
    std::fs::write(cache.path().join("README"), "x").unwrap();
    let spec = docker_default();
    let p = seccomp::prepare(&spec, Some(cache.path())).unwrap();
    assert!(!p.cached);
    let names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let bpf = names.iter().filter(|n| n.ends_with(".bpf")).count();
    assert_eq!(bpf, max, "{names:?}");
    let key = format!("{}.bpf", seccomp::cache_key(&spec).unwrap());
    assert!(names.contains(&key), "the new entry went: {names:?}");
    assert!(
        !names.contains(&"old000.bpf".to_string()),
        "the oldest stayed"
    );
    assert!(names.contains(&format!("old{:03}.bpf", max - 1)));
    assert!(names.contains(&"README".to_string()));
    // And the entry it kept is a hit.
    assert!(seccomp::prepare(&spec, Some(cache.path())).unwrap().cached);
}

#[test]
fn corrupt_cache_entries_are_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let spec = docker_default();
    let good = seccomp::prepare(&spec, Some(cache.path())).unwrap();
    let file = only_file(cache.path());
    let sound = std::fs::read(&file).unwrap();

    let mut flipped = sound.clone();
    flipped[16] ^= 0x01; // still a multiple of 8, still a plausible program
    let corruptions: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        (
            "truncated mid-instruction",
            sound[..sound.len() - 35].to_vec(),
        ),
        ("truncated checksum", sound[..sound.len() - 8].to_vec()),
        ("one bit flipped", flipped),
        ("another program's bytes", vec![0u8; 64 + 32]),
    ];
    for (what, bytes) in corruptions {
        std::fs::write(&file, &bytes).unwrap();
        let p = seccomp::prepare(&spec, Some(cache.path())).unwrap();
        assert!(!p.cached, "{what}: trusted");
        assert_eq!(p.bpf, good.bpf, "{what}");
        // And the entry is repaired.
        assert_eq!(std::fs::read(&file).unwrap(), sound, "{what}");
    }
}

#[test]
fn unwritable_cache_dir_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let p = seccomp::prepare(&docker_default(), Some(&not_a_dir)).unwrap();
    assert!(!p.cached);
}

#[test]
fn unknown_syscall_is_a_clear_error() {
    let spec: LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    let e = seccomp::prepare(&spec, None).unwrap_err();
    assert_eq!(e.message, r#"seccomp: unknown syscall "no_such_syscall""#);
    assert_eq!(e.exit_code(), 125);
    assert!(seccomp::known_syscall("mkdir") && !seccomp::known_syscall("no_such_syscall"));
    // A real syscall newer than libseccomp is no error: it is left to the
    // ENOSYS prelude.
    let newer: LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "mseal"], "action": "SCMP_ACT_ALLOW"}]
    }))
    .unwrap();
    assert!(seccomp::known_syscall("mseal"));
    assert!(seccomp::prepare(&newer, None).is_ok());
}

/// A bundle whose spec denies mkdir with EDQUOT (which nothing else
/// returns here), with or without no_new_privs.
fn deny_mkdir(script: &str, nnp: bool) -> Bundle {
    let mut b = Bundle::sh(script);
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDQUOT}]
    });
    b
}

#[test]
fn filter_is_installed_with_and_without_no_new_privs() {
    for nnp in [true, false] {
        let b = deny_mkdir(
            "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /x; echo rc=$?",
            nnp,
        );
        let o = b.run();
        let out = stdout(&o);
        assert!(out.contains("Seccomp:\t2\n"), "nnp={nnp}: {out}");
        assert!(
            out.contains(&format!("NoNewPrivs:\t{}\n", nnp as u8)),
            "nnp={nnp}: {out}"
        );
        assert!(out.contains("rc=1"), "nnp={nnp}: {out}");
        assert!(
            stderr(&o).contains("Disk quota exceeded"),
            "nnp={nnp}: {}",
            stderr(&o)
        );
        assert!(!b.rootfs().join("x").exists());
        // The program went to the cache beside the state dir.
        let cache = b.path().join("seccomp-cache");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    }
}

/// A profile that refuses the access checks (older ones lack faccessat2,
/// and runtime-tools' default refuses it) still runs a command found in
/// PATH and an absolute one: the lookup works with what is left, as
/// runc's does. The filter is on before the lookup without no_new_privs.
#[test]
fn a_profile_refusing_access_checks_still_finds_the_command() {
    for (args, nnp) in [
        (json!(["sh", "-c", "echo found"]), false),
        (json!(["/bin/sh", "-c", "echo found"]), false),
        (json!(["sh", "-c", "echo found"]), true),
    ] {
        let mut b = Bundle::sh("true");
        b.config["process"]["args"] = args.clone();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["faccessat2", "faccessat", "access"], "action": "SCMP_ACT_ERRNO"}]
        });
        let o = b.run();
        assert_eq!(o.status.code(), Some(0), "{args} nnp={nnp}: {}", stderr(&o));
        assert_eq!(stdout(&o), "found\n", "{args} nnp={nnp}");
    }
    // A file without an execute bit is still refused (126).
    let mut b = Bundle::sh("true");
    std::fs::write(b.rootfs().join("noexec"), "#!/bin/sh\n").unwrap();
    b.config["process"]["args"] = json!(["/noexec"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["faccessat2", "faccessat", "access"], "action": "SCMP_ACT_ERRNO"}]
    });
    let o = b.run();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
}

#[test]
fn without_seccomp_in_the_spec_there_is_no_filter() {
    let b = Bundle::sh("grep '^Seccomp:' /proc/self/status; mkdir /x && echo made");
    let o = b.run();
    assert_eq!(stdout(&o), "Seccomp:\t0\nmade\n", "{}", stderr(&o));
}

#[test]
fn docker_default_runs_a_container_without_nnp_as_a_user() {
    // Identity is changed after the filter is on (no NNP): setgroups,
    // setgid, setuid and capset must all pass the default profile.
    let mut b = Bundle::sh("id -u; id -G; grep '^Seccomp:' /proc/self/status");
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
    b.config["linux"]["seccomp"] = serde_json::to_value(docker_default()).unwrap();
    let o = b.run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1000\n1000 10\nSeccomp:\t2\n", "{}", stderr(&o));
}

const PROBE: &str = env!("CARGO_BIN_EXE_berth-syscall-probe");
const PROBES: &[&str] = &[
    "keyctl",
    "add_key",
    "clone3",
    "clone_newuser",
    "fork",
    "personality_query",
    "personality_norandom",
    "socket_vsock",
    "socket_inet",
    "mount",
    "reboot",
    "finit_module",
    "fchmodat2",
    "statmount",
    "io_uring_setup",
    "i386_getpid",
    "i386_statmount",
];

/// Run the syscall probe in a container whose bounding set is Docker's
/// default plus `extra_caps`, under Docker's default profile evaluated for
/// that set (or no filter), and return each probe's outcome.
fn probe(extra_caps: &[oci_spec::runtime::Capability], filter: bool) -> Vec<(String, String)> {
    use berth_spec::seccomp::{Choice, linux_seccomp};
    let mut caps: std::collections::HashSet<_> = berth_spec::capabilities::DEFAULT_CAPABILITIES
        .into_iter()
        .collect();
    caps.extend(extra_caps.iter().copied());
    let mut args = vec!["/bin/probe"];
    args.extend(PROBES);
    let mut b = Bundle::new(&args);
    std::fs::copy(PROBE, b.rootfs().join("bin/probe")).unwrap();
    let names = serde_json::to_value(&caps).unwrap();
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = names.clone();
    }
    if filter {
        let s = linux_seccomp(&Choice::Default, &caps, false)
            .unwrap()
            .unwrap();
        b.config["linux"]["seccomp"] = serde_json::to_value(s).unwrap();
    }
    let o = b.run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn outcome<'a>(results: &'a [(String, String)], name: &str) -> &'a str {
    &results.iter().find(|(k, _)| k == name).unwrap().1
}

#[test]
fn docker_default_profile_refuses_what_docker_refuses() {
    let confined = probe(&[], true);
    let open = probe(&[], false);
    // (probe, under the default profile, without any filter)
    for (name, with, without) in [
        ("keyctl", "EPERM", None),
        ("add_key", "EPERM", Some("ENODEV")),
        ("clone3", "ENOSYS", Some("EINVAL")),
        ("clone_newuser", "EPERM", Some("OK")),
        ("fork", "OK", Some("OK")),
        ("personality_query", "OK", Some("OK")),
        ("personality_norandom", "EPERM", Some("OK")),
        ("socket_vsock", "EPERM", None),
        ("socket_inet", "OK", Some("OK")),
        // Without the filter the kernel looks the target up first.
        ("mount", "EPERM", Some("ENOENT")),
        // Without CAP_SYS_BOOT the kernel refuses too.
        ("reboot", "EPERM", Some("EPERM")),
        // Newer than the kernel 6.6 libseccomp knows: fchmodat2 it has a
        // rule for; statmount (6.8) gets "not implemented", so libcs fall back.
        ("fchmodat2", "ENOENT", Some("ENOENT")),
        ("statmount", "ENOSYS", Some("EFAULT")),
        ("i386_getpid", "OK", Some("OK")),
        ("i386_statmount", "ENOSYS", Some("EFAULT")),
        ("io_uring_setup", "EPERM", Some("EFAULT")),
    ] {
        assert_eq!(
            outcome(&confined, name),
            with,
            "{name} under the default profile"
        );
        match without {
            Some(w) => assert_eq!(outcome(&open, name), w, "{name} without seccomp"),
            None => assert_ne!(outcome(&open, name), "EPERM", "{name} without seccomp"),
        }
    }
    // Refused by the filter (without it: EPERM for lack of CAP_SYS_MODULE,
    // or ENOSYS on a kernel built without modules).
    assert_eq!(outcome(&confined, "finit_module"), "EPERM");
}

#[test]
fn capabilities_unlock_their_syscalls_in_the_default_profile() {
    use oci_spec::runtime::Capability;
    let r = probe(
        &[
            Capability::SysAdmin,
            Capability::SysBoot,
            Capability::SysModule,
        ],
        true,
    );
    // Past seccomp, the kernel's own checks answer.
    assert_eq!(outcome(&r, "mount"), "ENOENT");
    assert_eq!(outcome(&r, "reboot"), "EINVAL");
    // (ENOSYS: a kernel built without module support, like this one.)
    assert!(["EBADF", "ENOSYS"].contains(&outcome(&r, "finit_module")));
    assert_eq!(outcome(&r, "clone3"), "EINVAL");
    assert_eq!(outcome(&r, "clone_newuser"), "OK");
    // Not tied to those capabilities: still refused.
    assert_eq!(outcome(&r, "keyctl"), "EPERM");
    assert_eq!(outcome(&r, "personality_norandom"), "EPERM");
}

#[test]
fn mount_works_with_cap_sys_admin_under_the_default_profile() {
    use berth_spec::seccomp::{Choice, linux_seccomp};
    use oci_spec::runtime::Capability;
    for (admin, expect) in [(false, "rc=1"), (true, "rc=0")] {
        let mut caps: std::collections::HashSet<_> = berth_spec::capabilities::DEFAULT_CAPABILITIES
            .into_iter()
            .collect();
        if admin {
            caps.insert(Capability::SysAdmin);
        }
        let mut b = Bundle::sh("mount -t tmpfs none /tmp; echo rc=$?");
        let names = serde_json::to_value(&caps).unwrap();
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set] = names.clone();
        }
        let s = linux_seccomp(&Choice::Default, &caps, false)
            .unwrap()
            .unwrap();
        b.config["linux"]["seccomp"] = serde_json::to_value(s).unwrap();
        let o = b.run();
        assert_eq!(stdout(&o).trim(), expect, "admin={admin}: {}", stderr(&o));
    }
}
