//! seccomp for a container: Docker's profile format (`--security-opt
//! seccomp=PROFILE.json`, and berth's built-in default) evaluated for one
//! container into the OCI runtime spec's `linux.seccomp`, which is all the
//! runtime sees.
//!
//! Evaluation follows Docker's rules: the architectures come from the
//! `archMap` entry of the host's native architecture (or `architectures`);
//! a syscall entry counts only if its `includes` hold (every listed
//! capability is in the container's set, the host's architecture is
//! listed, the kernel is at least `minKernel`) and its `excludes` do not
//! (any listed capability is in the set, the architecture is listed, the
//! kernel is at least `minKernel`). Unlike Docker, unknown fields are
//! errors: a misspelt key would otherwise silently drop a rule.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall, Spec,
};
use serde::Deserialize;

/// berth's default profile: Docker's default semantics, in Docker's format.
pub const DEFAULT_PROFILE: &str = include_str!("seccomp-default.json");

/// A seccomp profile in Docker's JSON format.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<Arch>>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    pub syscalls: Option<Vec<Syscall>>,
    #[serde(default)]
    pub flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default)]
    pub sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Syscall {
    /// Docker's older single-name form.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    pub action: LinuxSeccompAction,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    /// Capability names, `CAP_SYS_ADMIN` style.
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    /// Go architecture names (`amd64`, `arm64`, `s390x` …), as Docker uses.
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    /// `MAJOR.MINOR`.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: Option<u64>,
    pub op: LinuxSeccompOperator,
}

impl Profile {
    /// Parse a profile; `name` (a path, or "default") prefixes every error.
    pub fn parse(name: &str, json: &str) -> Result<Profile> {
        let p: Profile =
            serde_json::from_str(json).map_err(|e| anyhow!("seccomp profile {name}: {e}"))?;
        p.check()
            .map_err(|e| anyhow!("seccomp profile {name}: {e}"))?;
        Ok(p)
    }

    /// berth's built-in default profile.
    pub fn default_profile() -> Profile {
        Profile::parse("default", DEFAULT_PROFILE).expect("the built-in seccomp profile parses")
    }

    /// What does not depend on the container: contradictions and values
    /// out of range, caught when the flag is read.
    fn check(&self) -> Result<()> {
        if self.architectures.as_ref().is_some_and(|a| !a.is_empty())
            && self.arch_map.as_ref().is_some_and(|a| !a.is_empty())
        {
            bail!("both \"architectures\" and \"archMap\" are given: use one");
        }
        if self.listener_path.is_some() || self.default_action == LinuxSeccompAction::ScmpActNotify
        {
            bail!("seccomp notify (listenerPath, SCMP_ACT_NOTIFY) is not supported");
        }
        for (i, call) in self.syscalls.iter().flatten().enumerate() {
            let which = || match (&call.name, &call.names) {
                (Some(n), _) => format!("syscall {n:?}"),
                (None, Some(ns)) if !ns.is_empty() => format!("syscalls {ns:?}"),
                _ => format!("syscalls entry {i}"),
            };
            match (&call.name, &call.names) {
                (Some(_), Some(ns)) if !ns.is_empty() => {
                    bail!("{}: use either \"name\" or \"names\"", which())
                }
                (None, None) => bail!("{}: no \"names\"", which()),
                (None, Some(ns)) if ns.is_empty() => bail!("{}: no \"names\"", which()),
                _ => {}
            }
            if let Some(n) = call
                .names
                .iter()
                .flatten()
                .chain(call.name.iter())
                .find(|n| {
                    n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
            {
                bail!("{}: invalid syscall name {n:?}", which());
            }
            if call.action == LinuxSeccompAction::ScmpActNotify {
                bail!(
                    "{}: SCMP_ACT_NOTIFY (seccomp notify) is not supported",
                    which()
                );
            }
            for a in call.args.iter().flatten() {
                if a.index > 5 {
                    bail!(
                        "{}: argument index {} out of range (syscalls have arguments 0 to 5)",
                        which(),
                        a.index
                    );
                }
            }
            for f in [&call.includes, &call.excludes].into_iter().flatten() {
                for c in f.caps.iter().flatten() {
                    capability(c).map_err(|e| anyhow!("{}: {e}", which()))?;
                }
                if let Some(k) = &f.min_kernel {
                    kernel_version(k).ok_or_else(|| {
                        anyhow!("{}: invalid minKernel {k:?}: expected MAJOR.MINOR", which())
                    })?;
                }
            }
        }
        Ok(())
    }
}

fn capability(name: &str) -> Result<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| anyhow!("unknown capability {name:?}"))
}

/// `MAJOR.MINOR[.anything]` → (major, minor).
fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The facts about the host a profile is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Go's name of the architecture (`amd64`), which `includes.arches` use.
    pub go_arch: &'static str,
    /// libseccomp's name of the native architecture.
    pub native: Option<Arch>,
    pub kernel: (u32, u32),
}

impl Host {
    pub fn current() -> Host {
        let (go_arch, native) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", Some(Arch::ScmpArchX86_64)),
            "x86" => ("386", Some(Arch::ScmpArchX86)),
            "aarch64" => ("arm64", Some(Arch::ScmpArchAarch64)),
            "arm" => ("arm", Some(Arch::ScmpArchArm)),
            "powerpc64" if cfg!(target_endian = "little") => {
                ("ppc64le", Some(Arch::ScmpArchPpc64le))
            }
            "powerpc64" => ("ppc64", Some(Arch::ScmpArchPpc64)),
            "s390x" => ("s390x", Some(Arch::ScmpArchS390x)),
            "riscv64" => ("riscv64", Some(Arch::ScmpArchRiscv64)),
            "loongarch64" => ("loong64", Some(Arch::ScmpArchLoongarch64)),
            "mips64" if cfg!(target_endian = "little") => {
                ("mips64le", Some(Arch::ScmpArchMipsel64))
            }
            "mips64" => ("mips64", Some(Arch::ScmpArchMips64)),
            other => (other, None),
        };
        let kernel = rustix::system::uname()
            .release()
            .to_str()
            .ok()
            .and_then(kernel_version)
            .unwrap_or((0, 0));
        Host {
            go_arch,
            native,
            kernel,
        }
    }
}

/// Which profile a container asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// berth's default (also `seccomp=builtin`).
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=PATH`: the file's name (for messages) and its profile.
    Custom { name: String, profile: Box<Profile> },
}

impl Choice {
    /// Fail on the first syscall name of a custom profile that `known`
    /// (libseccomp, on the runtime side) does not know: a misspelt name
    /// would otherwise end as a rule for nothing or a late runtime error.
    pub fn check_syscall_names(&self, known: impl Fn(&str) -> bool) -> Result<()> {
        if let Choice::Custom { name, profile } = self {
            for call in profile.syscalls.iter().flatten() {
                let names = call.names.iter().flatten().chain(call.name.iter());
                if let Some(bad) = names.into_iter().find(|n| !known(n)) {
                    bail!("seccomp profile {name}: unknown syscall {bad:?}");
                }
            }
        }
        Ok(())
    }
}

/// `--security-opt` values berth understands.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOpts {
    pub seccomp: Choice,
    pub no_new_privileges: bool,
}

impl Default for SecurityOpts {
    fn default() -> Self {
        SecurityOpts {
            seccomp: Choice::Default,
            no_new_privileges: false,
        }
    }
}

impl SecurityOpts {
    /// Parse Docker's `--security-opt` values: `seccomp=unconfined|builtin|PATH`,
    /// `no-new-privileges[=|:true|false]`. A profile file is read and
    /// checked here, before anything is pulled or created.
    pub fn parse(opts: &[String]) -> Result<SecurityOpts> {
        let mut out = SecurityOpts::default();
        for opt in opts {
            // Docker accepts `key=value` and the older `key:value`.
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => match opt.split_once(':') {
                    Some((k, v)) => (k, Some(v)),
                    None => (opt.as_str(), None),
                },
            };
            match (key, value) {
                ("no-new-privileges", None) => out.no_new_privileges = true,
                ("no-new-privileges", Some(v)) => {
                    out.no_new_privileges = match v {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!(
                            "invalid --security-opt {opt:?}: no-new-privileges takes true or false"
                        ),
                    }
                }
                ("seccomp", Some("unconfined")) => out.seccomp = Choice::Unconfined,
                ("seccomp", Some("builtin")) => out.seccomp = Choice::Default,
                ("seccomp", Some(path)) if !path.is_empty() => {
                    // Docker's own profile is 12 KiB; 1 MiB is room for any real one.
                    let text = berth_io::read_capped_string(
                        Path::new(path),
                        berth_io::MIB,
                        "seccomp profile",
                    )?;
                    out.seccomp = Choice::Custom {
                        name: path.to_string(),
                        profile: Box::new(Profile::parse(path, &text)?),
                    };
                }
                // berth has neither AppArmor nor SELinux: turning them off is
                // already so; anything else could not be honoured.
                ("apparmor", Some("unconfined")) | ("label", Some("disable")) => {}
                _ => bail!(
                    "invalid --security-opt {opt:?}: berth supports seccomp=unconfined|builtin|PROFILE.json and no-new-privileges[=true|false]"
                ),
            }
        }
        Ok(out)
    }
}

/// The container's `linux.seccomp` for `choice`, given its final capability
/// set (the bounding set) and whether it is `--privileged`, which, as in
/// Docker, runs without seccomp whatever profile was asked for.
pub fn linux_seccomp(
    choice: &Choice,
    caps: &HashSet<Capability>,
    privileged: bool,
) -> Result<Option<LinuxSeccomp>> {
    if privileged {
        return Ok(None);
    }
    let host = Host::current();
    match choice {
        Choice::Unconfined => Ok(None),
        Choice::Default => convert(&Profile::default_profile(), &host, caps)
            .map(Some)
            .map_err(|e| anyhow!("seccomp profile default: {e}")),
        Choice::Custom { name, profile } => convert(profile, &host, caps)
            .map(Some)
            .map_err(|e| anyhow!("seccomp profile {name}: {e}")),
    }
}

/// Set `linux.seccomp` and `process.noNewPrivileges` of a built spec from
/// the security options, reading the capability set from the spec itself.
pub fn apply(spec: &mut Spec, opts: &SecurityOpts, privileged: bool) -> Result<()> {
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    let seccomp = linux_seccomp(&opts.seccomp, &caps, privileged)?;
    if let Some(p) = spec.process_mut() {
        p.set_no_new_privileges(Some(opts.no_new_privileges));
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(seccomp);
    spec.set_linux(Some(linux));
    Ok(())
}

/// Evaluate `profile` for a container with capability set `caps` on `host`.
pub fn convert(profile: &Profile, host: &Host, caps: &HashSet<Capability>) -> Result<LinuxSeccomp> {
    profile.check()?;
    let mut out = LinuxSeccomp::default();
    out.set_default_action(profile.default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_flags(profile.flags.clone().filter(|f| !f.is_empty()));
    out.set_listener_metadata(profile.listener_metadata.clone());

    let mut arches: Vec<Arch> = profile.architectures.clone().unwrap_or_default();
    if let (Some(map), Some(native)) = (&profile.arch_map, host.native) {
        for m in map.iter().filter(|m| m.architecture == native) {
            arches.push(m.architecture);
            arches.extend(m.sub_architectures.iter().flatten().copied());
        }
    }
    if !arches.is_empty() {
        out.set_architectures(Some(arches));
    }

    let has_cap = |name: &String| capability(name).is_ok_and(|c| caps.contains(&c));
    let kernel_at_least = |k: &String| kernel_version(k).is_some_and(|v| host.kernel >= v);
    // An empty list constrains nothing, as in Docker.
    let arch_listed = |arches: &Option<Vec<String>>| {
        arches
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().any(|a| a == host.go_arch))
    };
    let excluded = |f: &Filter| {
        arch_listed(&f.arches) == Some(true)
            || f.caps.iter().flatten().any(has_cap)
            || f.min_kernel.as_ref().is_some_and(kernel_at_least)
    };
    let included = |f: &Filter| {
        arch_listed(&f.arches) != Some(false)
            && f.caps.iter().flatten().all(has_cap)
            && f.min_kernel.as_ref().is_none_or(kernel_at_least)
    };
    let mut syscalls = Vec::new();
    for call in profile.syscalls.iter().flatten() {
        if call.excludes.as_ref().is_some_and(excluded)
            || !call.includes.as_ref().is_none_or(included)
        {
            continue;
        }
        let names: Vec<String> = match (&call.name, &call.names) {
            (Some(n), _) => vec![n.clone()],
            (None, Some(ns)) => ns.clone(),
            (None, None) => continue,
        };
        let mut s = LinuxSyscall::default();
        s.set_names(names);
        s.set_action(call.action);
        s.set_errno_ret(call.errno_ret);
        if let Some(args) = &call.args {
            let args = args
                .iter()
                .map(|a| {
                    let b = LinuxSeccompArgBuilder::default()
                        .index(a.index as usize)
                        .value(a.value)
                        .op(a.op);
                    match a.value_two {
                        Some(v) => b.value_two(v),
                        None => b,
                    }
                    .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if !args.is_empty() {
                s.set_args(Some(args));
            }
        }
        syscalls.push(s);
    }
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD64: Host = Host {
        go_arch: "amd64",
        native: Some(Arch::ScmpArchX86_64),
        kernel: (6, 1),
    };

    fn docker_default_caps() -> HashSet<Capability> {
        crate::capabilities::DEFAULT_CAPABILITIES
            .into_iter()
            .collect()
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
            let without =
                convert(&Profile::default_profile(), &AMD64, &docker_default_caps()).unwrap();
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
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
        );
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
        let p =
            |v: &[&str]| SecurityOpts::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
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
}
