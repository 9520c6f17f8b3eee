//! What runc does through the container's cgroup: pause and resume,
//! update of its limits, and `events` (stats and OOM kills as JSON lines).

use super::Global;
use super::lifecycle::load;
use anyhow::{Context, Result, anyhow, bail};
use berth_io::outln;
use berth_runtime::Status;
use berth_runtime::cgroups::Cgroup;
use clap::Args;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::path::PathBuf;

fn cgroup_of<'a>(c: &'a berth_runtime::Container, id: &str) -> Result<&'a Cgroup> {
    c.cgroup()
        .ok_or_else(|| anyhow!("container {id} has no cgroup of its own"))
}

pub fn pause(g: &Global, id: &str, frozen: bool) -> Result<()> {
    let mut c = load(g, id)?;
    let st = c.state().map_err(|e| anyhow!("{e}"))?;
    if st.status != Status::Running {
        bail!("container not running");
    }
    let cg = cgroup_of(&c, id)?;
    if frozen {
        // On v1 the freezer may not be a hierarchy the cgroup was made in.
        cg.ensure_freezer().context("freezer cgroup")?;
    }
    cg.freeze(frozen)
        .context(if frozen { "pause" } else { "resume" })
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The new resources as OCI JSON (`-` for stdin); the flags win over it.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long)]
    blkio_weight: Option<u16>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_share: Option<u64>,
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    #[arg(long)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long)]
    memory_reservation: Option<String>,
    #[arg(long)]
    memory_swap: Option<String>,
    #[arg(long)]
    kernel_memory: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
    id: String,
}

fn bytes(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    v.as_deref()
        .map(|v| {
            if v == "-1" {
                Ok(-1)
            } else {
                crate::runopts::parse_bytes(flag, v)
            }
        })
        .transpose()
}

/// `-r` and the flags as one set of resources. Devices are left out: an
/// update changes limits, never what the container may open.
fn wanted(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match &a.resources {
        Some(p) => super::read_json(p, "resources")?,
        None => LinuxResources::default(),
    };
    r.set_devices(None);
    let mut mem = r.memory().unwrap_or_default();
    let mut any_mem = r.memory().is_some();
    for (flag, v, set) in [
        (
            "--memory",
            &a.memory,
            LinuxMemory::set_limit as fn(&mut LinuxMemory, Option<i64>) -> &mut LinuxMemory,
        ),
        (
            "--memory-reservation",
            &a.memory_reservation,
            LinuxMemory::set_reservation,
        ),
        ("--memory-swap", &a.memory_swap, LinuxMemory::set_swap),
        ("--kernel-memory", &a.kernel_memory, LinuxMemory::set_kernel),
    ] {
        if let Some(n) = bytes(flag, v)? {
            set(&mut mem, Some(n));
            any_mem = true;
        }
    }
    if any_mem {
        r.set_memory(Some(mem));
    }
    let mut cpu: LinuxCpu = r.cpu().clone().unwrap_or_default();
    let any_cpu = r.cpu().is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
    }
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
    }
    if any_cpu {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

pub fn update(g: &Global, a: &UpdateArgs) -> Result<()> {
    let res = wanted(a)?;
    let mut c = load(g, &a.id)?;
    if c.state().map_err(|e| anyhow!("{e}"))?.status == Status::Stopped {
        bail!("container not running");
    }
    let cg = cgroup_of(&c, &a.id)?;
    // Making an existing cgroup rewrites the limits given, nothing else.
    cg.create(Some(&res)).context("update resources")
}

/// runc's stats event: the figures berth reads from the cgroup.
fn stats_event(id: &str, cg: &Cgroup) -> serde_json::Value {
    let s = cg.stats();
    serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": { "usage": { "total": s.cpu_usage_ns.unwrap_or(0) } },
            "memory": { "usage": {
                "usage": s.memory_usage.unwrap_or(0),
                "limit": s.memory_limit.unwrap_or(0),
            } },
            "pids": { "current": s.pids.unwrap_or(0) },
            "blkio": {
                "ioServiceBytesRecursive": [
                    { "op": "Read", "value": s.io_read_bytes.unwrap_or(0) },
                    { "op": "Write", "value": s.io_write_bytes.unwrap_or(0) },
                ]
            },
        }
    })
}

/// `events`: with --stats one stats line; else a stats line every
/// interval and an `oom` line when the OOM killer strikes, until the
/// container stops.
pub fn events(g: &Global, id: &str, once: bool, interval: &str) -> Result<()> {
    let nanos = berth_engine::health::parse_go_duration(interval)?;
    if nanos <= 0 {
        bail!("--interval must be greater than 0");
    }
    let mut c = load(g, id)?;
    if c.state().map_err(|e| anyhow!("{e}"))?.status == Status::Stopped {
        bail!("container with id {id} is not running");
    }
    let period = std::time::Duration::from_nanos(nanos as u64);
    // Polled at most every 100 ms so an OOM kill is told promptly.
    let tick = period.min(std::time::Duration::from_millis(100));
    let mut oom_told = false;
    let mut next = std::time::Instant::now();
    loop {
        let cg = cgroup_of(&c, id)?;
        if !oom_told && cg.oom_killed() {
            oom_told = true;
            outln!("{}", serde_json::json!({ "type": "oom", "id": id }));
        }
        if std::time::Instant::now() >= next {
            outln!("{}", stats_event(id, cg));
            if once {
                return Ok(());
            }
            next += period;
        }
        if c.state().map_err(|e| anyhow!("{e}"))?.status == Status::Stopped {
            return Ok(());
        }
        std::thread::sleep(tick);
    }
}
