//! Docker's seccomp profile format, parsed and checked for what does not
//! depend on the container (contradictions, values out of range), and
//! berth's built-in default profile (default.json, Docker's default
//! semantics in Docker's format). Unlike Docker, unknown fields are
//! errors: a misspelt key would otherwise silently drop a rule.

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde::Deserialize;

/// berth's default profile: Docker's default semantics, in Docker's format.
pub const DEFAULT_PROFILE: &str = include_str!("default.json");

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
    pub(super) fn check(&self) -> Result<()> {
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

pub(super) fn capability(name: &str) -> Result<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| anyhow!("unknown capability {name:?}"))
}

/// `MAJOR.MINOR[.anything]` → (major, minor).
pub(super) fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}
