//! seccomp for a container: Docker's profile format (`--security-opt
//! seccomp=PROFILE.json`, and berth's built-in default) evaluated for one
//! container into the OCI runtime spec's `linux.seccomp`, which is all the
//! runtime sees.
//!
//! - [`profile`]: the format, its checks, and the built-in default.
//! - [`evaluation`]: a profile evaluated for one container's capabilities on
//!   one host (`includes` and `excludes` by capability, architecture and
//!   kernel).
//! - here: which profile a container gets (`--security-opt`, unconfined,
//!   `--privileged`), set into its spec.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::{Capability, LinuxSeccomp, Spec};

pub mod evaluation;
pub mod profile;

pub use evaluation::{Host, convert};
pub use profile::{ArchMap, Arg, DEFAULT_PROFILE, Filter, Profile, Syscall};

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
