//! A profile evaluated for one container on one host, by Docker's rules:
//! the architectures come from the `archMap` entry of the host's native
//! architecture (or `architectures`); a syscall entry counts only if its
//! `includes` hold (every listed capability is in the container's set, the
//! host's architecture is listed, the kernel is at least `minKernel`) and
//! its `excludes` do not (any listed capability is in the set, the
//! architecture is listed, the kernel is at least `minKernel`).

use std::collections::HashSet;

use anyhow::Result;
use oci_spec::runtime::{Arch, Capability, LinuxSeccomp, LinuxSeccompArgBuilder, LinuxSyscall};

use super::profile::{Filter, Profile, capability, kernel_version};

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
