//! `linux.resources`: Docker's resource flags (`--memory`, `--cpus`,
//! `--pids-limit`, block IO …) with Docker's rules and messages, and the
//! device cgroup rules.

use anyhow::{Result, bail};
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources,
};

/// Docker's resource flags, as given (bytes, CPUs, counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// `--memory-reservation` (soft limit) in bytes.
    pub memory_reservation: Option<i64>,
    /// `--cpus`: CPU time as a number of CPUs (0.5 is half of one).
    pub cpus: Option<f64>,
    /// `--cpu-shares`: relative weight (default 1024).
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`: `0-2,4`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`: 0 or -1 for unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` and `--device-{read,write}-{bps,iops}`.
    pub io: IoLimits,
}

/// Docker's block IO flags, devices as numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IoLimits {
    /// `--blkio-weight`: 10 to 1000, 0 for none.
    pub weight: Option<u16>,
    /// `--device-read-bps`: (major, minor, bytes per second).
    pub read_bps: Vec<(i64, i64, u64)>,
    /// `--device-write-bps`.
    pub write_bps: Vec<(i64, i64, u64)>,
    /// `--device-read-iops`: (major, minor, operations per second).
    pub read_iops: Vec<(i64, i64, u64)>,
    /// `--device-write-iops`.
    pub write_iops: Vec<(i64, i64, u64)>,
}

/// CFS period berth uses for `--cpus`, as Docker does.
pub const CPU_PERIOD: u64 = 100_000;

/// Docker's smallest `--memory`.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The OCI resources for `limits` with Docker's rules and messages; the
/// device rules are set by the caller.
pub fn resources(limits: &Limits) -> Result<LinuxResources> {
    let mut res = LinuxResources::default();
    let l = limits;
    if let Some(m) = l.memory
        && m < MIN_MEMORY
    {
        bail!("minimum memory limit allowed is 6MB");
    }
    if l.memory_swap.is_some_and(|s| s != -1 && s != 0) && l.memory.is_none() {
        bail!("you should always set the memory limit when using a memory-swap limit");
    }
    if let (Some(m), Some(s)) = (l.memory, l.memory_swap)
        && s > 0
        && s < m
    {
        bail!("minimum memory-swap limit should be larger than the memory limit");
    }
    if let (Some(m), Some(r)) = (l.memory, l.memory_reservation)
        && r > m
    {
        bail!("minimum memory limit can not be less than the memory reservation limit");
    }
    if l.memory.is_some() || l.memory_reservation.is_some() {
        let mut mem = oci_spec::runtime::LinuxMemory::default();
        mem.set_limit(l.memory);
        mem.set_reservation(l.memory_reservation);
        // Docker: no --memory-swap (or 0) means as much swap as memory.
        mem.set_swap(match (l.memory, l.memory_swap) {
            (Some(m), None | Some(0)) => Some(m * 2),
            (_, s) => s,
        });
        res.set_memory(Some(mem));
    }
    if l.cpus.is_some() || l.cpu_shares.is_some() || l.cpuset_cpus.is_some() {
        let mut cpu = oci_spec::runtime::LinuxCpu::default();
        if let Some(c) = l.cpus {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if !(c > 0.0 && c <= n as f64) || (c * CPU_PERIOD as f64) < 1000.0 {
                bail!("range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available");
            }
            cpu.set_period(Some(CPU_PERIOD));
            cpu.set_quota(Some((c * CPU_PERIOD as f64).round() as i64));
        }
        if let Some(sh) = l.cpu_shares {
            cpu.set_shares(Some(sh.clamp(2, 262_144)));
        }
        if let Some(set) = &l.cpuset_cpus {
            let ok = !set.is_empty()
                && set.split(',').all(|r| {
                    let mut ends = r.splitn(2, '-');
                    ends.all(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
                });
            if !ok {
                bail!("invalid value {set:?} for cpuset cpus");
            }
            cpu.set_cpus(Some(set.clone()));
        }
        res.set_cpu(Some(cpu));
    }
    if let Some(p) = l.pids_limit {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(if p > 0 { p } else { -1 });
        res.set_pids(Some(pids));
    }
    if l.io != IoLimits::default() {
        res.set_block_io(Some(block_io(&l.io)?));
    }
    Ok(res)
}

/// `linux.resources.blockIO` for Docker's block IO flags.
fn block_io(io: &IoLimits) -> Result<oci_spec::runtime::LinuxBlockIo> {
    let mut b = oci_spec::runtime::LinuxBlockIo::default();
    match io.weight {
        None | Some(0) => {}
        Some(w @ 10..=1000) => {
            b.set_weight(Some(w));
        }
        Some(_) => bail!("range of blkio weight is from 10 to 1000"),
    }
    let devices = |v: &[(i64, i64, u64)]| -> Result<Option<Vec<_>>> {
        if v.is_empty() {
            return Ok(None);
        }
        let list = v
            .iter()
            .map(|&(major, minor, rate)| {
                oci_spec::runtime::LinuxThrottleDeviceBuilder::default()
                    .major(major)
                    .minor(minor)
                    .rate(rate)
                    .build()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(list))
    };
    b.set_throttle_read_bps_device(devices(&io.read_bps)?);
    b.set_throttle_write_bps_device(devices(&io.write_bps)?);
    b.set_throttle_read_iops_device(devices(&io.read_iops)?);
    b.set_throttle_write_iops_device(devices(&io.write_iops)?);
    Ok(b)
}

/// Docker's device cgroup rules: deny everything, then allow mknod of any
/// device and use of the standard ones (null, zero, full, random, urandom,
/// tty, console, ptmx, pts, tun).
pub fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>> {
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build()
    };
    use LinuxDeviceType::{A, B, C};
    Ok(vec![
        rule(false, A, None, None, "rwm")?,
        rule(true, C, None, None, "m")?,
        rule(true, B, None, None, "m")?,
        rule(true, C, Some(1), Some(3), "rwm")?,
        rule(true, C, Some(1), Some(5), "rwm")?,
        rule(true, C, Some(1), Some(7), "rwm")?,
        rule(true, C, Some(1), Some(8), "rwm")?,
        rule(true, C, Some(1), Some(9), "rwm")?,
        rule(true, C, Some(5), Some(0), "rwm")?,
        rule(true, C, Some(5), Some(1), "rwm")?,
        rule(true, C, Some(5), Some(2), "rwm")?,
        rule(true, C, Some(136), None, "rwm")?,
        rule(true, C, Some(10), Some(200), "rwm")?,
    ])
}

/// The device cgroup rules: every device for `--privileged`, else
/// Docker's default allow-list and then `extra` (the `--device`s' rules).
pub(crate) fn device_rules(
    privileged: bool,
    extra: &[LinuxDeviceCgroup],
) -> Result<Vec<LinuxDeviceCgroup>> {
    Ok(if privileged {
        vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .access("rwm")
                .build()?,
        ]
    } else {
        let mut rules = default_device_rules()?;
        rules.extend(extra.iter().cloned());
        rules
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_memory_rules() {
        let l = |memory, memory_swap, memory_reservation| Limits {
            memory,
            memory_swap,
            memory_reservation,
            ..Default::default()
        };
        let mib = 1 << 20;
        let r = resources(&l(Some(32 * mib), None, None)).unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(32 * mib));
        assert_eq!(
            m.swap(),
            Some(64 * mib),
            "swap defaults to twice the memory"
        );
        let r = resources(&l(Some(32 * mib), Some(-1), None)).unwrap();
        assert_eq!(r.memory().unwrap().swap(), Some(-1));
        let e = |x: Limits| format!("{:#}", resources(&x).unwrap_err());
        assert!(e(l(Some(1024), None, None)).contains("minimum memory limit allowed is 6MB"));
        assert!(e(l(None, Some(64 * mib), None)).contains("always set the memory limit"));
        assert!(e(l(Some(64 * mib), Some(32 * mib), None)).contains("larger than the memory"));
        assert!(e(l(Some(32 * mib), None, Some(64 * mib))).contains("reservation"));
        assert!(resources(&Limits::default()).unwrap().memory().is_none());
    }

    #[test]
    fn docker_cpu_and_pids_rules() {
        let r = resources(&Limits {
            cpus: Some(0.5),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(50),
            ..Default::default()
        })
        .unwrap();
        let c = r.cpu().clone().unwrap();
        assert_eq!((c.quota(), c.period()), (Some(50_000), Some(100_000)));
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().unwrap().limit(), 50);
        let unlimited = resources(&Limits {
            pids_limit: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(unlimited.pids().unwrap().limit(), -1);
        for bad in [0.0, -1.0, 100_000.0, 0.001] {
            let e = resources(&Limits {
                cpus: Some(bad),
                ..Default::default()
            })
            .unwrap_err();
            assert!(format!("{e}").contains("range of CPUs"), "{bad}: {e}");
        }
        assert!(
            resources(&Limits {
                cpuset_cpus: Some("0-,x".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
