//! cgroup v2: one directory, controllers enabled down the tree through
//! `cgroup.subtree_control`, limits in the unified files.

use super::write;
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use rustix::fs::OFlags;
use std::io;
use std::path::{Path, PathBuf};

/// Controllers berth enables for its containers when the host offers them.
const CONTROLLERS: &[&str] = &["cpu", "cpuset", "hugetlb", "io", "memory", "pids"];

/// Docker's cpu-shares (2..262144, default 1024) on v2's weight scale
/// (1..10000, default 100), the conversion runc and crun use.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// Make the cgroup `rel` under the hierarchy at `mount`, with the
/// controllers `res` needs enabled on the way, and apply `res`.
pub(super) fn create(mount: &Path, rel: &Path, res: &LinuxResources) -> io::Result<()> {
    let needed = needed_controllers(res);
    let available = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let available: Vec<&str> = available.split_whitespace().collect();
    for c in &needed {
        if !available.contains(c) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {c} controller is not available in the cgroup v2 hierarchy at {}",
                    mount.display()
                ),
            ));
        }
    }
    let dir = make_dirs(mount, rel, &available, &needed)?;
    set_limits(&dir, res)
}

/// The controllers `res` cannot do without.
fn needed_controllers(res: &LinuxResources) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if let Some(m) = res.memory()
        && (m.limit().is_some() || m.swap().is_some() || m.reservation().is_some())
    {
        needed.push("memory");
    }
    if let Some(c) = res.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            needed.push("cpu");
        }
        if c.cpus().is_some() || c.mems().is_some() {
            needed.push("cpuset");
        }
    }
    if res.pids().is_some() {
        needed.push("pids");
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        needed.push("hugetlb");
    }
    if res.block_io().as_ref().is_some_and(super::blockio::wanted) {
        needed.push("io");
    }
    needed
}

/// Enable the controllers in every ancestor, then make the leaf; its path.
/// An enabling that fails matters only for a controller `needed`.
fn make_dirs(mount: &Path, rel: &Path, available: &[&str], needed: &[&str]) -> io::Result<PathBuf> {
    let mut dir = mount.to_path_buf();
    for part in rel.components() {
        for c in CONTROLLERS {
            if !available.contains(c) {
                continue;
            }
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if enabled.split_whitespace().any(|e| e == *c) {
                continue;
            }
            if let Err(e) = write(&dir, "cgroup.subtree_control", &format!("+{c}"))
                && needed.contains(c)
            {
                return Err(e);
            }
        }
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(super::create_failed(e, &dir));
            }
        }
    }
    Ok(dir)
}

/// Write `res` into the unified files of cgroup `dir`.
fn set_limits(dir: &Path, res: &LinuxResources) -> io::Result<()> {
    if let Some(m) = res.memory() {
        set_memory(dir, m)?;
    }
    // An OOM kill takes the whole container, not one process of it (which
    // would leave its PID 1 carrying on without a worker), as crun and
    // Kubernetes set it. Only where the memory controller is on.
    if dir.join("memory.oom.group").exists() {
        write(dir, "memory.oom.group", "1")?;
    }
    if let Some(c) = res.cpu() {
        set_cpu(dir, c)?;
    }
    if let Some(p) = res.pids() {
        write(dir, "pids.max", &max_or(p.limit()))?;
    }
    if let Some(b) = res.block_io() {
        super::blockio::apply_v2(dir, b)?;
    }
    if let Some(rules) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        let fd = crate::sys::open(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        super::devices::attach(std::os::fd::AsFd::as_fd(&fd), rules)?;
    }
    for p in res.hugepage_limits().iter().flatten() {
        write(
            dir,
            &format!("hugetlb.{}.max", p.page_size()),
            &p.limit().to_string(),
        )?;
    }
    // Never dropped silently: v2 has no net_cls or net_prio.
    if res.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "linux.resources.network needs cgroup v1's net_cls and net_prio; cgroup v2 has neither",
        ));
    }
    // `unified`: the cgroup's own files by name, last, so they win over
    // what the fields above wrote (runc's order).
    for (key, value) in res.unified().iter().flatten() {
        let plain = !key.contains('/') && !key.starts_with('.') && key.contains('.');
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("linux.resources.unified: {key:?} is not a cgroup file name"),
            ));
        }
        write(dir, key, value)?;
    }
    Ok(())
}

fn set_memory(dir: &Path, m: &LinuxMemory) -> io::Result<()> {
    if let Some(r) = m.reservation() {
        write(dir, "memory.low", &r.to_string())?;
    }
    if let Some(l) = m.limit() {
        write(dir, "memory.max", &max_or(l))?;
    }
    // OCI (and Docker) give memory+swap; v2 limits swap alone.
    if let Some(s) = m.swap() {
        let swap = match (s, m.limit()) {
            (s, _) if s < 0 => "max".to_string(),
            (s, Some(l)) if l > 0 => {
                if s < l {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("memory+swap limit {s} is below the memory limit {l}"),
                    ));
                }
                (s - l).to_string()
            }
            (s, _) => s.to_string(),
        };
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", &swap)?;
        } else {
            tracing::warn!("this kernel has no swap accounting: memory limited without swap limit");
        }
    }
    Ok(())
}

fn set_cpu(dir: &Path, c: &LinuxCpu) -> io::Result<()> {
    if let Some(s) = c.shares() {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if c.quota().is_some() || c.period().is_some() {
        let quota = c.quota().filter(|q| *q > 0).map(|q| q.to_string());
        let period = c.period().unwrap_or(100_000);
        write(
            dir,
            "cpu.max",
            &format!("{} {period}", quota.as_deref().unwrap_or("max")),
        )?;
    }
    if let Some(cpus) = c.cpus() {
        write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems() {
        write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

fn max_or(v: i64) -> String {
    if v > 0 {
        v.to_string()
    } else {
        "max".to_string()
    }
}

/// The usage figures of the v2 cgroup `dir` (see [`super::Stats`]).
pub(super) fn stats(dir: &Path) -> super::Stats {
    use super::stats::{keyed, number, read, without_cache};
    let (mut io_read, mut io_write) = (None, None);
    if let Some(text) = read(dir, "io.stat") {
        // `MAJ:MIN rbytes=N wbytes=N …`, a line per device.
        let (mut r, mut w) = (0u64, 0u64);
        for field in text.split_whitespace() {
            if let Some((k, v)) = field.split_once('=') {
                let v: u64 = v.parse().unwrap_or(0);
                match k {
                    "rbytes" => r = r.saturating_add(v),
                    "wbytes" => w = w.saturating_add(v),
                    _ => {}
                }
            }
        }
        (io_read, io_write) = (Some(r), Some(w));
    }
    let inactive = read(dir, "memory.stat").and_then(|t| keyed(&t, "inactive_file"));
    super::Stats {
        cpu_usage_ns: read(dir, "cpu.stat")
            .and_then(|t| keyed(&t, "usage_usec"))
            .map(|us| us.saturating_mul(1000)),
        memory_usage: number(dir, "memory.current").map(|u| without_cache(u, inactive)),
        // "max": no limit.
        memory_limit: number(dir, "memory.max"),
        io_read_bytes: io_read,
        io_write_bytes: io_write,
        pids: number(dir, "pids.current"),
    }
}
