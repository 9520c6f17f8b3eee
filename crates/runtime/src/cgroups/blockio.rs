//! Block IO limits (Docker's `--blkio-weight` and
//! `--device-{read,write}-{bps,iops}`): v1's blkio files, v2's `io.weight`
//! and `io.max`, as runc writes them.

use super::write;
use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Whether `b` asks for anything.
pub(crate) fn wanted(b: &LinuxBlockIo) -> bool {
    b.weight().is_some() || throttles(b).iter().any(|(_, _, d)| !d.is_empty())
}

fn devices_of(v: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
    v.as_deref().unwrap_or_default()
}

/// Each throttle: v1's file, v2's `io.max` key, the devices.
fn throttles(b: &LinuxBlockIo) -> [(&'static str, &'static str, &[LinuxThrottleDevice]); 4] {
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            devices_of(b.throttle_read_bps_device()),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            devices_of(b.throttle_write_bps_device()),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            devices_of(b.throttle_read_iops_device()),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            devices_of(b.throttle_write_iops_device()),
        ),
    ]
}

/// v2's `io.max` lines, one per device with every key (`max` where the
/// flags set none), so one write says all of a device's limits.
pub(crate) fn io_max_lines(b: &LinuxBlockIo) -> Vec<String> {
    let mut per_dev: BTreeMap<(i64, i64), [Option<u64>; 4]> = BTreeMap::new();
    for (i, (_, _, devs)) in throttles(b).iter().enumerate() {
        for d in *devs {
            per_dev.entry((d.major(), d.minor())).or_default()[i] = Some(d.rate());
        }
    }
    let keys = throttles(b).map(|(_, k, _)| k);
    per_dev
        .into_iter()
        .map(|((major, minor), rates)| {
            let mut line = format!("{major}:{minor}");
            for (k, r) in keys.iter().zip(rates) {
                let v = r.map_or("max".to_string(), |r| r.to_string());
                line.push_str(&format!(" {k}={v}"));
            }
            line
        })
        .collect()
}

/// Docker's blkio weight (10..1000) on `io.weight`'s scale (1..10000),
/// the conversion runc uses.
pub(crate) fn to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

fn no_weight() {
    // Docker's answer too: the weight is a hint the kernel may not take.
    tracing::warn!(
        "this kernel's IO scheduler takes no block IO weight (no BFQ or io cost): weight discarded"
    );
}

pub(super) fn apply_v1(dir: &Path, b: &LinuxBlockIo) -> io::Result<()> {
    if let Some(w) = b.weight() {
        // blkio.weight went with CFQ; BFQ has its own file.
        match ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| dir.join(f).exists())
        {
            Some(f) => write(dir, f, &w.to_string())?,
            None => no_weight(),
        }
    }
    for (file, _, devs) in throttles(b) {
        for d in devs {
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

pub(super) fn apply_v2(dir: &Path, b: &LinuxBlockIo) -> io::Result<()> {
    if let Some(w) = b.weight() {
        if dir.join("io.bfq.weight").exists() {
            write(dir, "io.bfq.weight", &w.to_string())?;
        } else if dir.join("io.weight").exists() {
            write(dir, "io.weight", &format!("default {}", to_io_weight(w)))?;
        } else {
            no_weight();
        }
    }
    for line in io_max_lines(b) {
        write(dir, "io.max", &line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder};

    fn dev(major: i64, minor: i64, rate: u64) -> LinuxThrottleDevice {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
            .unwrap()
    }

    #[test]
    fn io_max_has_one_line_per_device_with_every_key() {
        let b = LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![dev(8, 0, 1 << 20), dev(254, 0, 4096)])
            .throttle_write_iops_device(vec![dev(8, 0, 100)])
            .build()
            .unwrap();
        assert!(wanted(&b));
        assert_eq!(
            io_max_lines(&b),
            [
                "8:0 rbps=1048576 wbps=max riops=max wiops=100",
                "254:0 rbps=4096 wbps=max riops=max wiops=max"
            ]
        );
        assert!(!wanted(&LinuxBlockIo::default()));
    }

    #[test]
    fn weights_convert_like_runc() {
        assert_eq!(to_io_weight(10), 1);
        assert_eq!(to_io_weight(500), 4950);
        assert_eq!(to_io_weight(1000), 10000);
    }
}
