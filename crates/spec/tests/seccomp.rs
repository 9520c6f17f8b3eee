//! Docker's seccomp profiles evaluated for one container: the default
//! profile with Docker's default capabilities and with more, architectures,
//! kernel versions, profiles that must be refused, and `--security-opt`.

use std::collections::HashSet;

use anyhow::Result;
use berth_spec::capabilities::DEFAULT_CAPABILITIES;
use berth_spec::seccomp::{Choice, Host, Profile, SecurityOpts, convert, linux_seccomp};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

const AMD64: Host = Host {
    go_arch: "amd64",
    native: Some(Arch::ScmpArchX86_64),
    kernel: (6, 1),
};

fn docker_default_caps() -> HashSet<Capability> {
    DEFAULT_CAPABILITIES.into_iter().collect()
}

fn names_of(s: &LinuxSeccomp) -> Vec<String> {
    s.syscalls()
        .iter()
        .flatten()
        .flat_map(|c| c.names().clone())
        .collect()
}

/// Rules that name `sys`, as (action, errno, args).
fn rules_for(s: &LinuxSeccomp, sys: &str) -> Vec<LinuxSyscall> {
    s.syscalls()
        .iter()
        .flatten()
        .filter(|c| c.names().iter().any(|n| n == sys))
        .cloned()
        .collect()
}

fn parse(json: &str) -> Result<Profile> {
    Profile::parse("test.json", json)
}

#[test]
fn default_profile_with_docker_default_caps() {
    let s = convert(&Profile::default_profile(), &AMD64, &docker_default_caps()).unwrap();
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(s.default_errno_ret(), Some(libc::EPERM as u32));
    assert_eq!(
        s.architectures().clone().unwrap(),
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    );
    let names = names_of(&s);
    for allowed in [
        "read",
        "execve",
        "arch_prctl",
        "modify_ldt",
        "chroot",
        "ptrace",
    ] {
        assert!(names.iter().any(|n| n == allowed), "{allowed} missing");
    }
    // CAP_SYS_ADMIN, _BOOT, _MODULE, _TIME … are not in Docker's default set.
    for denied in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "reboot",
        "init_module",
        "settimeofday",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "kcmp",
        "iopl",
        "acct",
        "syslog",
        "s390_runtime_instr",
        "cacheflush",
        "open_by_handle_at",
        "vhangup",
        "mbind",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
    ] {
        assert!(!names.iter().any(|n| n == denied), "{denied} allowed");
    }
    // clone only without namespace flags; clone3 → ENOSYS.
    let clone = rules_for(&s, "clone");
    assert_eq!(clone.len(), 1);
    let a = clone[0].args().clone().unwrap();
    assert_eq!(a[0].index(), 0);
    assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(a[0].value(), 0x7E02_0000);
    let clone3 = rules_for(&s, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(clone3[0].errno_ret(), Some(libc::ENOSYS as u32));
    // personality: exactly the five personas.
    let mut personas: Vec<u64> = rules_for(&s, "personality")
        .iter()
        .map(|r| r.args().clone().unwrap()[0].value())
        .collect();
    personas.sort();
    assert_eq!(personas, vec![0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    // socket: anything but AF_VSOCK.
    let socket = rules_for(&s, "socket");
    assert_eq!(
        socket[0].args().clone().unwrap()[0].op(),
        LinuxSeccompOperator::ScmpCmpNe
    );
}

#[test]
fn sys_admin_unlocks_mount_and_unconditional_clone() {
    let mut caps = docker_default_caps();
    caps.insert(Capability::SysAdmin);
    let s = convert(&Profile::default_profile(), &AMD64, &caps).unwrap();
    for n in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "clone3",
        "sethostname",
    ] {
        let r = rules_for(&s, n);
        assert!(
            r.iter()
                .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none()),
            "{n}: {r:?}"
        );
    }
    // The flag-checking clone rule and clone3's ENOSYS are excluded.
    assert!(rules_for(&s, "clone").iter().all(|r| r.args().is_none()));
    assert!(
        rules_for(&s, "clone3")
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow)
    );
}

#[test]
fn each_capability_unlocks_its_syscalls() {
    for (cap, sys) in [
        (Capability::SysPtrace, "kcmp"),
        (Capability::SysModule, "finit_module"),
        (Capability::SysBoot, "reboot"),
        (Capability::SysTime, "clock_settime"),
        (Capability::SysNice, "set_mempolicy"),
        (Capability::SysRawio, "iopl"),
        (Capability::SysPacct, "acct"),
        (Capability::Syslog, "syslog"),
        (Capability::Bpf, "bpf"),
        (Capability::Perfmon, "perf_event_open"),
        (Capability::DacReadSearch, "open_by_handle_at"),
        (Capability::SysTtyConfig, "vhangup"),
    ] {
        let without = convert(&Profile::default_profile(), &AMD64, &docker_default_caps()).unwrap();
        assert!(
            !names_of(&without).iter().any(|n| n == sys),
            "{sys} without {cap:?}"
        );
        let mut caps = docker_default_caps();
        caps.insert(cap);
        let with = convert(&Profile::default_profile(), &AMD64, &caps).unwrap();
        assert!(
            names_of(&with).iter().any(|n| n == sys),
            "{sys} with {cap:?}"
        );
    }
    // And dropping CAP_SYS_CHROOT takes chroot away.
    let mut caps = docker_default_caps();
    caps.remove(&Capability::SysChroot);
    let s = convert(&Profile::default_profile(), &AMD64, &caps).unwrap();
    assert!(!names_of(&s).iter().any(|n| n == "chroot"));
}

#[test]
fn arches_pick_the_native_map_entry_and_arch_rules() {
    let s390 = Host {
        go_arch: "s390x",
        native: Some(Arch::ScmpArchS390x),
        kernel: (6, 1),
    };
    let s = convert(&Profile::default_profile(), &s390, &docker_default_caps()).unwrap();
    assert_eq!(
        s.architectures().clone().unwrap(),
        vec![Arch::ScmpArchS390x, Arch::ScmpArchS390]
    );
    let names = names_of(&s);
    assert!(names.iter().any(|n| n == "s390_runtime_instr"));
    assert!(!names.iter().any(|n| n == "arch_prctl"));
    // s390's clone takes its flags as argument 1.
    let clone = rules_for(&s, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].args().clone().unwrap()[0].index(), 1);

    let arm64 = Host {
        go_arch: "arm64",
        native: Some(Arch::ScmpArchAarch64),
        kernel: (6, 1),
    };
    let s = convert(&Profile::default_profile(), &arm64, &docker_default_caps()).unwrap();
    assert_eq!(
        s.architectures().clone().unwrap(),
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    );
    assert!(names_of(&s).iter().any(|n| n == "cacheflush"));
    assert!(!names_of(&s).iter().any(|n| n == "modify_ldt"));
}

#[test]
fn min_kernel_includes_and_excludes() {
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["new_one"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
            {"names": ["old_one"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}}
        ]}"#,
    )
    .unwrap();
    let at = |k| Host { kernel: k, ..AMD64 };
    let caps = HashSet::new();
    assert_eq!(
        names_of(&convert(&p, &at((5, 9)), &caps).unwrap()),
        vec!["old_one"]
    );
    assert_eq!(
        names_of(&convert(&p, &at((5, 10)), &caps).unwrap()),
        vec!["new_one"]
    );
    assert_eq!(
        names_of(&convert(&p, &at((6, 0)), &caps).unwrap()),
        vec!["new_one"]
    );
    // Docker's default: ptrace from 4.8 on, even without CAP_SYS_PTRACE.
    let old = convert(
        &Profile::default_profile(),
        &at((4, 4)),
        &docker_default_caps(),
    )
    .unwrap();
    assert!(!names_of(&old).iter().any(|n| n == "ptrace"));
}

#[test]
fn includes_need_every_cap_and_excludes_any() {
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["both"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
            {"names": ["neither"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}}
        ]}"#,
    )
    .unwrap();
    let run = |caps: &[Capability]| {
        names_of(&convert(&p, &AMD64, &caps.iter().copied().collect()).unwrap())
    };
    assert_eq!(run(&[]), vec!["neither"]);
    assert_eq!(run(&[Capability::SysAdmin]), Vec::<String>::new());
    assert_eq!(
        run(&[Capability::SysAdmin, Capability::NetAdmin]),
        vec!["both"]
    );
}

#[test]
fn errno_args_and_legacy_fields_carry_over() {
    let p = parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 13,
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 122, "comment": "EDQUOT"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 255, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}"#,
    )
    .unwrap();
    let s = convert(&p, &AMD64, &HashSet::new()).unwrap();
    assert_eq!(s.default_errno_ret(), Some(13));
    assert_eq!(
        s.architectures().clone().unwrap(),
        vec![Arch::ScmpArchX86_64]
    );
    assert_eq!(
        s.flags().clone().unwrap(),
        vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog]
    );
    let mkdir = rules_for(&s, "mkdir");
    assert_eq!(mkdir[0].errno_ret(), Some(122));
    let kill = rules_for(&s, "kill");
    let args = kill[0].args().clone().unwrap();
    assert_eq!(args.len(), 2);
    assert_eq!(
        (args[1].index(), args[1].value(), args[1].value_two()),
        (0, 255, Some(1))
    );
    // It round-trips through config.json as the runtime will read it.
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"valueTwo\":1"), "{json}");
    assert_eq!(serde_json::from_str::<LinuxSeccomp>(&json).unwrap(), s);
}

#[test]
fn bad_profiles_are_rejected_with_the_reason() {
    let err = |json: &str| format!("{:#}", parse(json).unwrap_err());
    let e = err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultActoin": 1}"#);
    assert!(
        e.starts_with("seccomp profile test.json: unknown field `defaultActoin`"),
        "{e}"
    );
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}"#,
    );
    assert!(e.contains("unknown variant `SCMP_CMP_ALMOST`"), "{e}");
    let e = err(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#);
    assert!(e.contains("unknown variant `SCMP_ACT_MAYBE`"), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}}]}"#,
    );
    assert!(e.contains("unknown capability \"CAP_FLY\""), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "five"}}]}"#,
    );
    assert!(e.contains("invalid minKernel \"five\""), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(e.contains("use either \"name\" or \"names\""), "{e}");
    let e =
        err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#);
    assert!(e.contains("syscalls entry 0: no \"names\""), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(e.contains("argument index 6 out of range"), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
    );
    assert!(e.contains("both \"architectures\" and \"archMap\""), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(e.contains("not supported"), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mk dir"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(e.contains("invalid syscall name \"mk dir\""), "{e}");
    let e = err("{ not json");
    assert!(e.starts_with("seccomp profile test.json: "), "{e}");
}

#[test]
fn security_opts_parse_like_docker() {
    let p = |v: &[&str]| SecurityOpts::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(p(&[]).unwrap(), SecurityOpts::default());
    assert_eq!(
        p(&["seccomp=unconfined"]).unwrap().seccomp,
        Choice::Unconfined
    );
    assert_eq!(
        p(&["seccomp:unconfined"]).unwrap().seccomp,
        Choice::Unconfined
    );
    assert_eq!(p(&["seccomp=builtin"]).unwrap().seccomp, Choice::Default);
    assert!(p(&["no-new-privileges"]).unwrap().no_new_privileges);
    assert!(p(&["no-new-privileges:true"]).unwrap().no_new_privileges);
    assert!(p(&["no-new-privileges=true"]).unwrap().no_new_privileges);
    assert!(
        !p(&["no-new-privileges", "no-new-privileges=false"])
            .unwrap()
            .no_new_privileges
    );
    assert!(p(&["no-new-privileges=maybe"]).is_err());
    assert!(p(&["apparmor=unconfined", "label=disable"]).is_ok());
    let e = format!("{:#}", p(&["systempaths=unconfined"]).unwrap_err());
    assert!(
        e.contains("invalid --security-opt \"systempaths=unconfined\""),
        "{e}"
    );
    let e = format!("{:#}", p(&["seccomp=/no/such/profile.json"]).unwrap_err());
    assert!(
        e.starts_with("seccomp profile /no/such/profile.json: "),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.json");
    std::fs::write(&f, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let o = p(&[&format!("seccomp={}", f.display())]).unwrap();
    assert!(matches!(o.seccomp, Choice::Custom { .. }));
}

#[test]
fn unknown_syscall_names_are_reported_by_name() {
    let profile = parse(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"name": "mkdri", "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let c = Choice::Custom {
        name: "p.json".into(),
        profile: Box::new(profile),
    };
    let e = c.check_syscall_names(|n| n == "mkdir").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"seccomp profile p.json: unknown syscall "mkdri""#
    );
    assert!(c.check_syscall_names(|_| true).is_ok());
}

#[test]
fn privileged_and_unconfined_have_no_filter() {
    let caps = docker_default_caps();
    assert!(
        linux_seccomp(&Choice::Default, &caps, true)
            .unwrap()
            .is_none()
    );
    assert!(
        linux_seccomp(&Choice::Unconfined, &caps, false)
            .unwrap()
            .is_none()
    );
    assert!(
        linux_seccomp(&Choice::Default, &caps, false)
            .unwrap()
            .is_some()
    );
}
