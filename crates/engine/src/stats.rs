//! `stats`: a container's CPU, memory, network, block I/O and task
//! figures, from its cgroup (berth-runtime's [`Stats`]) and, for what its
//! cgroup cannot say (no cgroup of its own, or on cgroup v1 not in that
//! controller's hierarchy: containers join only those their limits use),
//! from its processes in /proc. CPU % is Docker's: the container's CPU
//! time over the host's between two readings, times the online CPUs.

use std::time::Instant;

use berth_runtime::cgroups::Stats;

use crate::records::ContainerRecord;

/// One reading of a container, to be compared with the next.
#[derive(Debug, Clone)]
pub struct Reading {
    pub stats: Stats,
    /// Network bytes received and sent (interfaces other than `lo`).
    pub net: Option<(u64, u64)>,
    /// The host's CPU time (all CPUs) at the reading, in nanoseconds.
    pub system_ns: Option<u64>,
    pub at: Instant,
}

/// What `stats` shows of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub id: String,
    pub name: String,
    /// None: not known (yet, or at all).
    pub cpu_percent: Option<f64>,
    pub mem_usage: Option<u64>,
    /// The limit, or the host's memory when it has none (or a larger one).
    pub mem_limit: Option<u64>,
    pub mem_percent: Option<f64>,
    pub net: Option<(u64, u64)>,
    pub block_io: Option<(u64, u64)>,
    pub pids: Option<u64>,
}

/// Clock ticks per second (USER_HZ): /proc's CPU times are in them. The
/// kernel's ABI fixes it at 100 on every architecture berth runs on.
fn ticks_per_sec() -> u64 {
    100
}

/// Reads container `c` now (it should be running).
pub fn read(c: &ContainerRecord) -> Reading {
    let mut stats = crate::top::cgroup_of(c)
        .map(|cg| cg.stats())
        .unwrap_or_default();
    let missing = stats.cpu_usage_ns.is_none()
        || stats.memory_usage.is_none()
        || stats.pids.is_none()
        || stats.io_read_bytes.is_none();
    if missing {
        fill_from_procs(&mut stats, &crate::top::pids(c));
    }
    Reading {
        stats,
        net: c.pid.and_then(net_dev),
        system_ns: system_cpu_ns(),
        at: Instant::now(),
    }
}

/// What the cgroup did not say, summed over the processes.
fn fill_from_procs(s: &mut Stats, pids: &[i32]) {
    if pids.is_empty() {
        return;
    }
    let tick_ns = 1_000_000_000 / ticks_per_sec().max(1);
    let (mut cpu, mut mem, mut tasks) = (0u64, 0u64, 0u64);
    let (mut rd, mut wr, mut io_ok) = (0u64, 0u64, true);
    for &pid in pids {
        if let Some((ticks, threads)) = proc_stat(pid) {
            cpu = cpu.saturating_add(ticks.saturating_mul(tick_ns));
            tasks += threads;
        }
        if let Some(kib) = small(&format!("/proc/{pid}/status")).and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        }) {
            mem = mem.saturating_add(kib * 1024);
        }
        match small(&format!("/proc/{pid}/io")) {
            Some(t) => {
                let field = |k: &str| {
                    t.lines()
                        .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                rd = rd.saturating_add(field("read_bytes:"));
                wr = wr.saturating_add(field("write_bytes:"));
            }
            None => io_ok = false,
        }
    }
    s.cpu_usage_ns.get_or_insert(cpu);
    s.memory_usage.get_or_insert(mem);
    s.pids.get_or_insert(tasks);
    if io_ok && s.io_read_bytes.is_none() {
        s.io_read_bytes = Some(rd);
        s.io_write_bytes = Some(wr);
    }
}

/// A small /proc file, capped.
fn small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 16)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// utime+stime (ticks) and threads of `pid`, from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(u64, u64)> {
    parse_proc_stat(&small(&format!("/proc/{pid}/stat"))?)
}

fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    // Fields counted from after the command name's last ')': field 3 first.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some((num(14)? + num(15)?, num(20)?))
}

/// The host's CPU time, all CPUs, from /proc/stat's `cpu` line.
fn system_cpu_ns() -> Option<u64> {
    let text = small("/proc/stat")?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest is in user).
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Some(ticks.saturating_mul(1_000_000_000 / ticks_per_sec().max(1)))
}

/// Bytes received and sent in `pid`'s network namespace, `lo` left out.
fn net_dev(pid: i32) -> Option<(u64, u64)> {
    parse_net_dev(&small(&format!("/proc/{pid}/net/dev"))?)
}

fn parse_net_dev(text: &str) -> Option<(u64, u64)> {
    let (mut rx, mut tx) = (0u64, 0u64);
    // Two header lines, then `name: rx_bytes … (8 rx fields) tx_bytes …`.
    for l in text.lines().skip(2) {
        let (name, rest) = l.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        rx = rx.saturating_add(*f.first()?);
        tx = tx.saturating_add(*f.get(8)?);
    }
    Some((rx, tx))
}

/// Online CPUs, as Docker multiplies by.
fn online_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// The host's memory (MemTotal), in bytes.
pub fn host_memory() -> Option<u64> {
    let text = small("/proc/meminfo")?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The sample between two readings of `c` (`prev` None: no CPU % yet).
pub fn sample(c: &ContainerRecord, prev: Option<&Reading>, now: &Reading) -> Sample {
    let s = &now.stats;
    let cpu_percent = prev.and_then(|p| {
        let cpu = s.cpu_usage_ns?.checked_sub(p.stats.cpu_usage_ns?)?;
        let sys = now.system_ns?.checked_sub(p.system_ns?)?;
        Some(if sys == 0 {
            0.0
        } else {
            cpu as f64 / sys as f64 * online_cpus() as f64 * 100.0
        })
    });
    let host = host_memory();
    let mem_limit = match (s.memory_limit, host) {
        (Some(l), Some(h)) => Some(l.min(h)),
        (l, h) => l.or(h),
    };
    let mem_percent = match (s.memory_usage, mem_limit) {
        (Some(u), Some(l)) if l > 0 => Some(u as f64 / l as f64 * 100.0),
        _ => None,
    };
    Sample {
        id: c.id.clone(),
        name: c.name.clone(),
        cpu_percent,
        mem_usage: s.memory_usage,
        mem_limit,
        mem_percent,
        net: now.net,
        block_io: s.io_read_bytes.zip(s.io_write_bytes),
        pids: s.pids,
    }
}

/// What `stats -a` shows of a container that is not running: zeros.
pub fn stopped(c: &ContainerRecord) -> Sample {
    Sample {
        id: c.id.clone(),
        name: c.name.clone(),
        cpu_percent: Some(0.0),
        mem_usage: Some(0),
        mem_limit: Some(0),
        mem_percent: Some(0.0),
        net: Some((0, 0)),
        block_io: Some((0, 0)),
        pids: Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 1234 0 0";
        assert_eq!(parse_proc_stat(stat), Some((10, 2)));
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:  500 5 0 0 0 0 0 0  500 5 0 0 0 0 0 0\n  \
                   eth0: 4096 3 0 0 0 0 0 0 1000 2 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev), Some((4096, 1000)));
        assert!(system_cpu_ns().unwrap() > 0);
        assert!(host_memory().unwrap() > 0);
    }
}
