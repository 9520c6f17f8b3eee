//! What this host lets berth do. Inside a container given only
//! CAP_SYS_ADMIN (Docker's default seccomp profile, a read-only cgroup
//! filesystem, an overlayfs root, no CAP_NET_ADMIN), in a CI runner or a
//! pod, berth has less to work with; it finds out once per invocation and
//! cheaply (one read of /proc/self/status, a few statfs calls), adapts, and
//! says what it did without at info level and in `berth info`.
//!
//! `run` asks only what it needs on the fast path ([`Host::cgroups`], and
//! [`check_ulimit`] for a `--ulimit`); the slower probes (a pivot_root
//! attempt, user namespaces) are for `info`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Result;

use crate::request::Ulimit;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The capabilities and confinement berth runs under.
#[derive(Debug, Clone)]
pub struct Host {
    /// Effective and bounding capability sets.
    pub cap_eff: u64,
    pub cap_bnd: u64,
    /// A seccomp filter confines berth itself (`Seccomp: 2`).
    pub seccomp_filtered: bool,
}

/// The cgroup filesystem as berth finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    /// 1 (v1 or hybrid) or 2; None when no cgroup filesystem is mounted.
    pub version: Option<u8>,
    /// Why berth cannot make cgroups here, if it cannot.
    pub unwritable: Option<String>,
}

impl Host {
    /// The probe, made once per process.
    pub fn get() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(|| {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            Host::from_status(&status)
        })
    }

    fn from_status(status: &str) -> Host {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let caps = |name: &str| {
            field(name)
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .unwrap_or(0)
        };
        Host {
            cap_eff: caps("CapEff"),
            cap_bnd: caps("CapBnd"),
            seccomp_filtered: field("Seccomp") == Some("2"),
        }
    }

    /// Whether berth holds `CAP_NAME` in its effective set.
    pub fn has_cap(&self, name: &str) -> bool {
        berth_linux::caps::number_of(name).is_some_and(|n| self.cap_eff & (1 << n) != 0)
    }

    /// Capabilities the kernel knows that berth's bounding set lacks.
    pub fn missing_caps(&self) -> Vec<&'static str> {
        let last = berth_runtime::capabilities::last_cap().min(63);
        let all = if last == 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        };
        berth_linux::caps::names(all & !self.cap_bnd)
    }

    /// The cgroup filesystem: its version, and whether berth could make
    /// a cgroup in it. Two or three statfs calls.
    pub fn cgroups(&self) -> Cgroups {
        let base = Path::new("/sys/fs/cgroup");
        let Ok(st) = rustix::fs::statfs(base) else {
            return Cgroups {
                version: None,
                unwritable: Some("no cgroup filesystem is mounted at /sys/fs/cgroup".into()),
            };
        };
        let (version, probe) = if st.f_type == CGROUP2_SUPER_MAGIC {
            (2, base.to_path_buf())
        } else {
            // v1 (or hybrid): the hierarchies are mounted together, so one
            // that every host has stands for all.
            let Some(dir) = ["memory", "pids", "cpu", "devices"]
                .iter()
                .map(|n| base.join(n))
                .find(|p| p.exists())
            else {
                return Cgroups {
                    version: Some(1),
                    unwritable: Some(
                        "no cgroup v1 hierarchy is mounted under /sys/fs/cgroup".into(),
                    ),
                };
            };
            (1, dir)
        };
        let unwritable = match rustix::fs::statvfs(&probe) {
            Ok(v) if v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) => {
                Some(format!("{} is mounted read-only", probe.display()))
            }
            Ok(_) => None,
            Err(e) => Some(format!("{}: {e}", probe.display())),
        };
        Cgroups {
            version: Some(version),
            unwritable,
        }
    }

    /// Whether pivot_root is refused to berth (a seccomp filter such as
    /// Docker's default profile): an empty path makes the kernel answer
    /// ENOENT once it gets that far, while a filter answers EPERM first.
    /// Meaningful only with CAP_SYS_ADMIN, which the kernel checks first.
    pub fn pivot_root_refused(&self) -> bool {
        // SAFETY: pivot_root with empty paths changes nothing: it fails
        // in the path lookup at the latest.
        let r = unsafe { libc::syscall(libc::SYS_pivot_root, c"".as_ptr(), c"".as_ptr()) };
        r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// Whether `dir` sits on overlayfs (a container's root, say), where
/// overlay refuses upper directories and whiteout nodes.
pub fn on_overlayfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == OVERLAYFS_SUPER_MAGIC)
}

/// The filesystem type of `dir`, by name where berth knows it.
pub fn fs_name(dir: &Path) -> String {
    let Ok(st) = rustix::fs::statfs(dir) else {
        return "unknown".into();
    };
    match st.f_type {
        OVERLAYFS_SUPER_MAGIC => "overlayfs".into(),
        0xEF53 => "extfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0x6573_5546 => "fuse".into(),
        0x0102_1997 => "v9fs".into(),
        m => format!("0x{m:x}"),
    }
}

/// Whether new user namespaces may be made here.
pub fn userns_available() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// Refuse, before anything starts, a hard limit above the current one when
/// berth cannot raise it (no CAP_SYS_RESOURCE, as for root on some hosts).
pub fn check_ulimit(ulimit: &Ulimit) -> Result<()> {
    let (spec, rl) = (ulimit.spec.as_str(), &ulimit.rlimit);
    let name = spec.split('=').next().unwrap_or(spec);
    // parse_ulimit has checked the name already.
    let Some(limit) = berth_linux::rlimit::by_docker_name(name) else {
        return Ok(());
    };
    let cur = rustix::process::getrlimit(limit.resource);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let host = HostLimit {
        hard: cur.maximum.unwrap_or(libc::RLIM_INFINITY),
        nr_open: nr_open.filter(|_| name == "nofile"),
        can_raise: Host::get().has_cap("CAP_SYS_RESOURCE"),
    };
    match ulimit_refusal(spec, rl.hard(), &host) {
        Some(why) => anyhow::bail!("{why}"),
        None => Ok(()),
    }
}

/// What bounds a hard rlimit on this host, for [`ulimit_refusal`].
pub struct HostLimit {
    /// berth's own hard limit, which a container inherits.
    pub hard: u64,
    /// `fs.nr_open`, for `nofile` only: the kernel's ceiling even with
    /// CAP_SYS_RESOURCE.
    pub nr_open: Option<u64>,
    /// Whether berth holds CAP_SYS_RESOURCE, which lets it raise `hard`.
    pub can_raise: bool,
}

/// Why `--ulimit spec` (hard limit `hard`) cannot be set on `host`, if it cannot.
pub fn ulimit_refusal(spec: &str, hard: u64, host: &HostLimit) -> Option<String> {
    let name = spec.split('=').next().unwrap_or(spec);
    let show = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(ceiling) = host.nr_open
        && hard > ceiling
    {
        let most = if host.can_raise {
            ceiling
        } else {
            ceiling.min(host.hard)
        };
        return Some(format!(
            "ulimit {spec}: hard limit {} is above this host's fs.nr_open ({ceiling}), which no capability lifts; ask for at most {name}={most}",
            show(hard)
        ));
    }
    if hard > host.hard && !host.can_raise {
        return Some(format!(
            "ulimit {spec}: hard limit {} is above this host's {} and berth lacks CAP_SYS_RESOURCE to raise it; ask for at most {name}={}",
            show(hard),
            show(host.hard),
            show(host.hard)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Host;

    #[test]
    fn capabilities_and_seccomp_come_from_proc_status() {
        // Docker's default set plus SYS_ADMIN, under its seccomp filter.
        let h = Host::from_status(
            "Name:\tberth\nCapEff:\t00000000a82425fb\nCapBnd:\t00000000a82425fb\nSeccomp:\t2\n",
        );
        assert!(h.has_cap("CAP_SYS_ADMIN"));
        assert!(h.has_cap("CAP_MKNOD"));
        assert!(!h.has_cap("CAP_NET_ADMIN"));
        assert!(h.seccomp_filtered);
        assert!(h.missing_caps().contains(&"CAP_NET_ADMIN"));
        assert!(!h.missing_caps().contains(&"CAP_SYS_ADMIN"));
        let full = Host::from_status("CapEff:\t000001ffffffffff\nSeccomp:\t0\n");
        assert!(full.has_cap("CAP_NET_ADMIN"));
        assert!(!full.seccomp_filtered);
    }

    #[test]
    fn lowering_a_ulimit_is_always_possible() {
        let rlimit = oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
            .soft(64u64)
            .hard(64u64)
            .build()
            .unwrap();
        let u = crate::request::Ulimit {
            spec: "nofile=64".into(),
            rlimit,
        };
        super::check_ulimit(&u).unwrap();
    }

    #[test]
    fn ulimit_refusal_accounts_for_nr_open_and_cap_sys_resource() {
        use super::{HostLimit, ulimit_refusal as refusal};
        let host = |hard, nr_open, can_raise| HostLimit {
            hard,
            nr_open,
            can_raise,
        };
        let inf = libc::RLIM_INFINITY;
        // With CAP_SYS_RESOURCE: anything up to fs.nr_open, nothing above.
        let h = host(1024, Some(1 << 20), true);
        assert_eq!(refusal("nofile=4096", 4096, &h), None);
        assert_eq!(refusal("nofile=1048576", 1 << 20, &h), None);
        let e = refusal("nofile=2000000000", 2_000_000_000, &h).unwrap();
        assert!(
            e.contains("fs.nr_open (1048576)") && e.ends_with("nofile=1048576"),
            "{e}"
        );
        let e = refusal("nofile=unlimited", inf, &h).unwrap();
        assert!(e.contains("hard limit unlimited"), "{e}");
        // Without it: nothing above berth's own hard limit either.
        let h = host(20000, Some(1 << 20), false);
        let e = refusal("nofile=4096:30000", 30000, &h).unwrap();
        assert!(
            e.contains("lacks CAP_SYS_RESOURCE") && e.ends_with("nofile=20000"),
            "{e}"
        );
        let e = refusal("nofile=2000000000", 2_000_000_000, &h).unwrap();
        assert!(
            e.contains("fs.nr_open") && e.ends_with("nofile=20000"),
            "{e}"
        );
        // Other limits have no nr_open: only the capability matters.
        assert_eq!(refusal("nproc=99999", 99999, &host(50, None, true)), None);
        assert!(refusal("nproc=99999", 99999, &host(50, None, false)).is_some());
        assert_eq!(
            refusal("core=unlimited", inf, &host(inf, None, false)),
            None
        );
    }
}
