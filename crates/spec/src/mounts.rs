//! The container's filesystem view beyond its rootfs: Docker's default
//! mounts (/proc, /dev and its pts, mqueue and shm, /sys, cgroupfs), and
//! the paths of /proc and /sys that are masked or read-only.

use anyhow::Result;
use oci_spec::runtime::{Mount, MountBuilder};

/// Docker's masked paths (bind-mounted over with /dev/null or an empty tmpfs).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default mounts.
pub fn default_mounts() -> Result<Vec<Mount>> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        )?,
    ])
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// `--privileged` mounts /sys and cgroupfs read-write, as Docker does.
fn read_write(mut m: Mount) -> Mount {
    if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup")) {
        let opts: Vec<String> = m
            .options()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o != "ro")
            .collect();
        m.set_options(Some(opts));
    }
    m
}

/// Docker's default mounts, read-write ones for `--privileged`, except
/// where `extra` has a mount of the same destination; then `extra`.
pub(crate) fn container_mounts(privileged: bool, extra: &[Mount]) -> Result<Vec<Mount>> {
    let mut mounts: Vec<Mount> = default_mounts()?
        .into_iter()
        .map(|m| if privileged { read_write(m) } else { m })
        .filter(|d| !extra.iter().any(|m| m.destination() == d.destination()))
        .collect();
    mounts.extend(extra.iter().cloned());
    Ok(mounts)
}
