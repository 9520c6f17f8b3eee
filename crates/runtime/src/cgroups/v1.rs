//! cgroup v1: one directory per hierarchy, limits in each controller's files.

use super::{Hierarchy, write};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use std::io;
use std::path::{Path, PathBuf};

/// Controllers berth places containers in (every one the host mounts).
pub(super) const CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

pub(super) fn create(hs: &[Hierarchy], rel: &Path, res: &LinuxResources) -> io::Result<()> {
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "linux.resources.unified needs cgroup v2, and this host has v1",
        ));
    }
    for h in hs {
        let cpuset = h.controllers.iter().any(|c| c == "cpuset");
        let mut dir = h.mount.clone();
        for part in rel.components() {
            let parent = dir.clone();
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    // A new cpuset cgroup starts with no CPUs and no memory
                    // nodes, and nothing can join it until it has some.
                    if cpuset {
                        for f in ["cpuset.cpus", "cpuset.mems"] {
                            let v = std::fs::read_to_string(parent.join(f))?;
                            write(&dir, f, v.trim())?;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(super::create_failed(e, &dir));
                }
            }
        }
    }
    let dir_of = |controller: &str, what: &str| {
        hs.iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount.join(rel))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{what} needs the {controller} cgroup controller, which is not mounted"
                    ),
                )
            })
    };
    if let Some(m) = res.memory().as_ref().filter(|m| super::memory_wanted(m)) {
        set_memory(&dir_of("memory", "a memory limit")?, m)?;
    }
    if let Some(c) = res.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            let dir = dir_of("cpu", "a CPU limit")?;
            if let Some(s) = c.shares() {
                write(&dir, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(&dir, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(&dir, "cpu.cfs_quota_us", &q.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let dir = dir_of("cpuset", "a cpuset")?;
            if let Some(cpus) = c.cpus() {
                write(&dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(&dir, "cpuset.mems", mems)?;
            }
        }
    }
    if let Some(p) = res.pids() {
        let dir = dir_of("pids", "a PIDs limit")?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".to_string()
        };
        write(&dir, "pids.max", &v)?;
    }
    if let Some(b) = res
        .block_io()
        .as_ref()
        .filter(|b| super::blockio::wanted(b))
    {
        super::blockio::apply_v1(&dir_of("blkio", "a block IO limit")?, b)?;
    }
    if let Some(rules) = res.devices().as_ref().filter(|r| !r.is_empty()) {
        let dir = dir_of("devices", "a device allow-list")?;
        for rule in rules {
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(&dir, file, &device_rule(rule))?;
        }
    }
    set_hugetlb_and_network(res, &dir_of)
}

/// Hugepage limits and network classes, each in its controller's
/// hierarchy (`dir_of` names a missing one).
fn set_hugetlb_and_network(
    res: &LinuxResources,
    dir_of: &dyn Fn(&str, &str) -> io::Result<PathBuf>,
) -> io::Result<()> {
    if let Some(pages) = res.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        let dir = dir_of("hugetlb", "a hugepage limit")?;
        for p in pages {
            let file = format!("hugetlb.{}.limit_in_bytes", p.page_size());
            write(&dir, &file, &p.limit().to_string())?;
        }
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            write(
                &dir_of("net_cls", "a network class id")?,
                "net_cls.classid",
                &id.to_string(),
            )?;
        }
        for p in n.priorities().iter().flatten() {
            let line = format!("{} {}", p.name(), p.priority());
            write(
                &dir_of("net_prio", "a network priority")?,
                "net_prio.ifpriomap",
                &line,
            )?;
        }
    }
    Ok(())
}

/// The memory controller's files of cgroup `dir`.
fn set_memory(dir: &Path, m: &oci_spec::runtime::LinuxMemory) -> io::Result<()> {
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("memory swappiness {s} is above 100"),
            ));
        }
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    if let Some(r) = m.reservation() {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    // memory before memory+swap: memsw may never be below memory.
    if let Some(l) = m.limit() {
        write(dir, "memory.limit_in_bytes", &l.to_string())?;
    }
    if let Some(s) = m.swap() {
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
        } else {
            tracing::warn!("this kernel has no swap accounting: memory limited without swap limit");
        }
    }
    Ok(())
}

/// A device rule in the devices controller's syntax: `c 1:3 rwm`, `a *:* rwm`.
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let typ = rule
        .typ()
        .map(|t| t.as_str().to_string())
        .unwrap_or_else(|| "a".to_string());
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let access = rule.access().clone().unwrap_or_else(|| "rwm".to_string());
    format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
}

/// The usage figures of a v1 cgroup, `dir_of(controller)` being its
/// directory in that controller's hierarchy when it is in it (see
/// [`super::Stats`]).
pub(super) fn stats(dir_of: &dyn Fn(&str) -> Option<PathBuf>) -> super::Stats {
    use super::stats::{keyed, number, read, without_cache};
    // What v1 writes for "no limit": the largest page-aligned i64.
    const UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;
    let mem = dir_of("memory");
    let mem = mem.as_deref();
    let inactive = mem
        .and_then(|d| read(d, "memory.stat"))
        .and_then(|t| keyed(&t, "total_inactive_file"));
    let (mut io_read, mut io_write) = (None, None);
    let blkio = dir_of("blkio");
    let text = blkio.as_deref().and_then(|d| {
        read(d, "blkio.throttle.io_service_bytes_recursive")
            .filter(|t| !t.trim().is_empty())
            .or_else(|| read(d, "blkio.throttle.io_service_bytes"))
    });
    if let Some(text) = text {
        // `MAJ:MIN Read N` lines per device and op, then a `Total N`.
        let (mut r, mut w) = (0u64, 0u64);
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [_, op, n] = f[..] {
                let n: u64 = n.parse().unwrap_or(0);
                match op {
                    "Read" => r = r.saturating_add(n),
                    "Write" => w = w.saturating_add(n),
                    _ => {}
                }
            }
        }
        (io_read, io_write) = (Some(r), Some(w));
    }
    super::Stats {
        cpu_usage_ns: dir_of("cpuacct").and_then(|d| number(&d, "cpuacct.usage")),
        memory_usage: mem
            .and_then(|d| number(d, "memory.usage_in_bytes"))
            .map(|u| without_cache(u, inactive)),
        memory_limit: mem
            .and_then(|d| number(d, "memory.limit_in_bytes"))
            .filter(|l| *l < UNLIMITED),
        io_read_bytes: io_read,
        io_write_bytes: io_write,
        pids: dir_of("pids").and_then(|d| number(&d, "pids.current")),
    }
}
