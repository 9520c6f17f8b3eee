//! Linux capabilities from the spec's sets: bounding drop (prctl), then
//! effective/permitted/inheritable (capset), then ambient.

use crate::error::{Context, Result};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use rustix::thread::{CapabilitySet, CapabilitySets};

// The capability names by kernel number are berth-linux's one table.
use berth_linux::caps::{NAMES, number_of};

fn number(cap: &Capability) -> Option<u32> {
    number_of(serde_json::to_value(cap).ok()?.as_str()?)
}

/// Bitmask of a set, ignoring capabilities this kernel does not know.
fn mask(set: Option<&Capabilities>, last_cap: u32) -> u64 {
    set.into_iter()
        .flatten()
        .filter_map(number)
        .filter(|&n| n <= last_cap)
        .fold(0, |m, n| m | 1u64 << n)
}

pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Capability number `n` as the one-capability set rustix takes.
fn one(n: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1 << n)
}

/// Drop from the bounding set everything the spec does not list. Needs
/// CAP_SETPCAP, so it runs before the user switch.
pub(crate) fn drop_bounding(caps: &LinuxCapabilities, last_cap: u32) -> Result<()> {
    let keep = mask(caps.bounding().as_ref(), last_cap);
    for n in 0..=last_cap {
        if keep & (1 << n) == 0 {
            rustix::thread::remove_capability_from_bounding_set(one(n))
                .step(|| format!("drop capability {} from bounding set", NAMES[n as usize]))?;
        }
    }
    Ok(())
}

/// Set effective/permitted/inheritable, then the ambient set (which only
/// accepts capabilities already permitted and inheritable: others are left
/// out, as runc and crun leave them; `runc spec` itself asks for ambient
/// capabilities that are not inheritable).
pub(crate) fn apply(caps: &LinuxCapabilities, last_cap: u32) -> Result<()> {
    let set = |s| CapabilitySet::from_bits_retain(mask(s, last_cap));
    let sets = CapabilitySets {
        effective: set(caps.effective().as_ref()),
        permitted: set(caps.permitted().as_ref()),
        inheritable: set(caps.inheritable().as_ref()),
    };
    rustix::thread::set_capabilities(None, sets).step(|| "capset".into())?;
    rustix::thread::clear_ambient_capability_set().step(|| "clear ambient capabilities".into())?;
    let wanted = mask(caps.ambient().as_ref(), last_cap);
    let a = wanted & sets.permitted.bits() & sets.inheritable.bits();
    if a != wanted {
        tracing::debug!(
            "ambient capabilities not permitted and inheritable left out: {:#x}",
            wanted & !a
        );
    }
    for n in 0..=last_cap {
        if a & (1 << n) != 0 {
            rustix::thread::configure_capability_in_ambient_set(one(n), true)
                .step(|| format!("raise ambient capability {}", NAMES[n as usize]))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_numbers_match_the_kernel() {
        assert_eq!(number(&Capability::Chown), Some(0));
        assert_eq!(number(&Capability::NetBindService), Some(10));
        assert_eq!(number(&Capability::SysAdmin), Some(21));
        assert_eq!(number(&Capability::Bpf), Some(39));
    }
}
