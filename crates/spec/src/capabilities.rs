//! The container's capabilities: Docker's default set changed by
//! `--cap-add` and `--cap-drop`, or everything for `--privileged`, and never
//! more than berth itself holds.

use std::collections::HashSet;

use anyhow::{Result, anyhow, bail};
use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// A capability name as Docker accepts it (`net_admin`, `CAP_NET_ADMIN`).
pub fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full.clone()))
        .map_err(|_| anyhow!("unknown capability: {full:?}"))
}

/// Berth's own bounding set: every capability it may hand on.
fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Every capability in `bounding` (for ALL and --privileged), so a host
/// whose root lacks some (CAP_SYS_RESOURCE on some VMs) still runs
/// privileged containers.
fn all_capabilities(bounding: u64) -> Vec<Capability> {
    berth_linux::caps::NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .filter_map(|(_, n)| parse_capability(n).ok())
        .collect()
}

/// The container's capability set from Docker's defaults and the flags:
/// `--privileged` is everything; otherwise drops (ALL: every default) go
/// first, then adds (ALL: everything), as Docker orders them.
pub fn capability_set(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<HashSet<Capability>> {
    capability_set_within(privileged, add, drop, own_bounding_set())
}

/// [`capability_set`] for a berth whose bounding set is `held`: what it
/// does not hold it cannot give. Inside a container (podman's default set
/// lacks MKNOD, NET_RAW and AUDIT_WRITE) the defaults shrink to what is
/// held, as --privileged does; a --cap-add of one not held is an error.
fn capability_set_within(
    privileged: bool,
    add: &[String],
    drop: &[String],
    held: u64,
) -> Result<HashSet<Capability>> {
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let is_held = |c: &Capability| {
        berth_linux::caps::NAMES
            .iter()
            .position(|n| parse_capability(n).ok().as_ref() == Some(c))
            .is_some_and(|i| held & (1u64 << i) != 0)
    };
    let add_caps: Vec<Capability> = add
        .iter()
        .filter(|n| !is_all(n))
        .map(|n| parse_capability(n))
        .collect::<Result<_>>()?;
    let drop_caps: Vec<Capability> = drop
        .iter()
        .filter(|n| !is_all(n))
        .map(|n| parse_capability(n))
        .collect::<Result<_>>()?;
    if privileged || add.iter().any(is_all) {
        let mut all: HashSet<Capability> = all_capabilities(held).into_iter().collect();
        if !privileged {
            for c in &drop_caps {
                all.remove(c);
            }
        }
        return Ok(all);
    }
    if let Some(c) = add_caps.iter().find(|c| !is_held(c)) {
        bail!("--cap-add {c}: berth does not hold CAP_{c} here, so it cannot give it");
    }
    let mut set: HashSet<Capability> = if drop.iter().any(is_all) {
        Default::default()
    } else {
        DEFAULT_CAPABILITIES.into_iter().filter(is_held).collect()
    };
    for c in &drop_caps {
        set.remove(c);
    }
    set.extend(add_caps);
    Ok(set)
}

/// The process's capabilities for the set `caps`: bounding, effective and
/// permitted only: no inheritable, as Docker since 20.10.14
/// (CVE-2022-24769: inheritable caps let a non-root exec of a file with
/// inheritable file caps gain them).
pub(crate) fn linux_capabilities(caps: HashSet<Capability>) -> Result<LinuxCapabilities> {
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_flags_follow_docker() {
        use std::collections::HashSet;
        let default: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(capability_set(false, &[], &[]).unwrap(), default);
        let s = capability_set(false, &["net_admin".into()], &["CAP_CHOWN".into()]).unwrap();
        assert!(s.contains(&Capability::NetAdmin) && !s.contains(&Capability::Chown));
        assert_eq!(s.len(), default.len());
        let s = capability_set(false, &["SYS_PTRACE".into()], &["ALL".into()]).unwrap();
        assert_eq!(s, HashSet::from([Capability::SysPtrace]));
        let all = capability_set(true, &[], &["ALL".into()]).unwrap();
        assert!(all.contains(&Capability::SysAdmin) && all.len() > 30);
        let e = capability_set(false, &["FOO".into()], &[]).unwrap_err();
        assert_eq!(format!("{e}"), "unknown capability: \"CAP_FOO\"");
    }

    #[test]
    fn what_berth_does_not_hold_it_cannot_give() {
        // podman's default set: no MKNOD (27), NET_RAW (13), AUDIT_WRITE (29).
        let held = 0x8000_05fb_u64 | 1 << 18;
        let s = capability_set_within(false, &[], &[], held).unwrap();
        assert!(s.contains(&Capability::Chown) && s.contains(&Capability::SysChroot));
        for c in [
            Capability::Mknod,
            Capability::NetRaw,
            Capability::AuditWrite,
        ] {
            assert!(!s.contains(&c), "{c}");
        }
        let e = capability_set_within(false, &["MKNOD".into()], &[], held).unwrap_err();
        assert!(e.to_string().contains("CAP_MKNOD"), "{e}");
        let all = capability_set_within(true, &[], &[], held).unwrap();
        assert!(!all.contains(&Capability::Mknod) && all.contains(&Capability::Kill));
    }
}
