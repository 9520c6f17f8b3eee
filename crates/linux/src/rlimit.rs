//! The resource limits, by every name berth meets them under: Docker's
//! `--ulimit` name (`nofile`), the OCI spec's (`RLIMIT_NOFILE`) and the
//! kernel's resource.

pub use rustix::process::Resource;

/// One resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Docker's name for `--ulimit`; None for the one Docker does not take
    /// (`RLIMIT_AS`).
    pub docker: Option<&'static str>,
    /// The OCI runtime spec's name (`process.rlimits[].type`).
    pub oci: &'static str,
    /// The kernel's resource.
    pub resource: Resource,
}

const fn rl(docker: Option<&'static str>, oci: &'static str, resource: Resource) -> Rlimit {
    Rlimit {
        docker,
        oci,
        resource,
    }
}

/// Every resource limit, in the order of linux/resource.h.
pub const RLIMITS: [Rlimit; 16] = [
    rl(Some("cpu"), "RLIMIT_CPU", Resource::Cpu),
    rl(Some("fsize"), "RLIMIT_FSIZE", Resource::Fsize),
    rl(Some("data"), "RLIMIT_DATA", Resource::Data),
    rl(Some("stack"), "RLIMIT_STACK", Resource::Stack),
    rl(Some("core"), "RLIMIT_CORE", Resource::Core),
    rl(Some("rss"), "RLIMIT_RSS", Resource::Rss),
    rl(Some("nproc"), "RLIMIT_NPROC", Resource::Nproc),
    rl(Some("nofile"), "RLIMIT_NOFILE", Resource::Nofile),
    rl(Some("memlock"), "RLIMIT_MEMLOCK", Resource::Memlock),
    rl(None, "RLIMIT_AS", Resource::As),
    rl(Some("locks"), "RLIMIT_LOCKS", Resource::Locks),
    rl(
        Some("sigpending"),
        "RLIMIT_SIGPENDING",
        Resource::Sigpending,
    ),
    rl(Some("msgqueue"), "RLIMIT_MSGQUEUE", Resource::Msgqueue),
    rl(Some("nice"), "RLIMIT_NICE", Resource::Nice),
    rl(Some("rtprio"), "RLIMIT_RTPRIO", Resource::Rtprio),
    rl(Some("rttime"), "RLIMIT_RTTIME", Resource::Rttime),
];

/// The limit Docker's `--ulimit` calls `name` (`nofile`).
pub fn by_docker_name(name: &str) -> Option<&'static Rlimit> {
    RLIMITS.iter().find(|r| r.docker == Some(name))
}

/// The limit the OCI spec calls `name` (`RLIMIT_NOFILE`).
pub fn by_oci_name(name: &str) -> Option<&'static Rlimit> {
    RLIMITS.iter().find(|r| r.oci == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_agree() {
        for r in &RLIMITS {
            assert_eq!(by_oci_name(r.oci), Some(r));
            if let Some(d) = r.docker {
                assert_eq!(format!("RLIMIT_{}", d.to_ascii_uppercase()), r.oci);
                assert_eq!(by_docker_name(d), Some(r));
            }
        }
        assert_eq!(by_docker_name("nofile").unwrap().resource, Resource::Nofile);
        assert_eq!(by_docker_name("as"), None);
        assert_eq!(by_oci_name("RLIMIT_AS").unwrap().resource, Resource::As);
        // linux/resource.h numbers, as the table's order says.
        for (i, r) in RLIMITS.iter().enumerate() {
            assert_eq!(r.resource as usize, i, "{}", r.oci);
        }
    }
}
