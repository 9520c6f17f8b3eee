//! What berth knows of Linux itself, said once so that every crate reads
//! it the same way: a process's `/proc/PID/stat` ([`stat`]), the
//! capability names in kernel order ([`caps`]), the rlimits by Docker's,
//! the OCI spec's and the kernel's names ([`rlimit`]), the setuid id-map
//! helpers ([`idmap`]) and whether this is the initial user namespace
//! ([`in_initial_userns`]).
//!
//! A leaf: it depends on nothing of berth's, so the runtime, image,
//! snapshot and spec crates may all use it without importing each other.

pub mod caps;
pub mod idmap;
pub mod rlimit;
pub mod stat;

/// Whether this process is in the initial user namespace (its uid map is
/// the identity over all ids). True when the map cannot be read (a kernel
/// without user namespaces has only the initial one).
pub fn in_initial_userns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| is_identity_map(&m))
        .unwrap_or(true)
}

/// Whether `uid_map` (the text of /proc/PID/uid_map) maps every id to itself.
fn is_identity_map(uid_map: &str) -> bool {
    uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_full_identity_map_is_the_initial_namespace() {
        assert!(super::is_identity_map("         0          0 4294967295\n"));
        assert!(!super::is_identity_map(
            "         0       1000          1\n"
        ));
        assert!(!super::is_identity_map("0 1000 1\n1 100000 65536\n"));
    }
}
