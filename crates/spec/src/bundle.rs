//! Image config + `run` options → the OCI runtime spec (config.json), with
//! Docker's rules for command, environment, user and working directory, and
//! Docker's default namespaces, mounts, masked paths and capabilities.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResources, Mount, MountBuilder, PosixRlimit, ProcessBuilder, RootBuilder, Spec,
    UserBuilder,
};

pub use crate::user::ExecUser;
use crate::user::resolve_user;
use berth_snapshot::Root;

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

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

/// What `run` asks for on top of the image config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Host path of the container's rootfs: /etc/passwd, /etc/group and the
    /// working directory are looked up and created inside it.
    pub rootfs: PathBuf,
    /// `root.path` written into the spec (default `rootfs`, relative to the bundle).
    pub spec_root: Option<PathBuf>,
    /// `--entrypoint`: `Some("")` clears the image's entrypoint; any value also drops the image's Cmd.
    pub entrypoint: Option<String>,
    /// Arguments after the image name: replace the image's Cmd.
    pub cmd: Vec<String>,
    /// `-e` values, already resolved to `KEY=VALUE`; a bare `KEY` removes KEY.
    pub env: Vec<String>,
    /// `--user`: `name`, `uid`, `uid:gid`, `name:group`, `uid:group`...
    pub user: Option<String>,
    /// `--workdir`: absolute path.
    pub workdir: Option<String>,
    /// Container hostname (also `HOSTNAME` in the environment).
    pub hostname: String,
    /// `-t`: allocate a terminal (also `TERM=xterm`).
    pub tty: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--network host`: no network namespace.
    pub host_network: bool,
    /// Extra mounts (volumes, tmpfs, /etc/hosts, ...); one with the same
    /// destination as a default mount replaces it.
    pub mounts: Vec<Mount>,
    /// `--privileged`: every capability, no masked or read-only paths, every
    /// device allowed by the device cgroup, /sys and cgroupfs read-write.
    pub privileged: bool,
    /// `--cap-add`: names with or without `CAP_`, any case, or `ALL`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`: as `cap_add`; `ALL` drops every default first.
    pub cap_drop: Vec<String>,
    /// `linux.cgroupsPath` (`/berth/<id>`, or under `--cgroup-parent`).
    pub cgroups_path: Option<String>,
    /// `--memory`, `--cpus`, `--pids-limit` and friends.
    pub limits: Limits,
    /// `--ulimit`s.
    pub rlimits: Vec<PosixRlimit>,
    /// `--device`s: the nodes to make (`linux.devices`)...
    pub devices: Vec<oci_spec::runtime::LinuxDevice>,
    /// ...and the device-cgroup rules that allow them, after Docker's
    /// default allow-list. Apart, because in a user namespace the node is a
    /// bind mount of the host's while the rule still applies.
    pub device_rules: Vec<oci_spec::runtime::LinuxDeviceCgroup>,
}

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

/// A capability name as Docker accepts it (`net_admin`, `CAP_NET_ADMIN`).
pub fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full.clone()))
        .map_err(|_| anyhow!("unknown capability: {full:?}"))
}

/// Berth's own bounding set: every capability it may hand on.
fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Every capability in `bounding` (for ALL and --privileged), so a host
/// whose root lacks some (CAP_SYS_RESOURCE on some VMs) still runs
/// privileged containers.
fn all_capabilities(bounding: u64) -> Vec<Capability> {
    ALL_CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .filter_map(|(_, n)| parse_capability(n).ok())
        .collect()
}

/// Capability names in kernel number order (CAP_CHOWN = 0 ...).
const ALL_CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The container's capability set from Docker's defaults and the flags:
/// `--privileged` is everything; otherwise drops (ALL: every default) go
/// first, then adds (ALL: everything), as Docker orders them.
pub fn capability_set(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<std::collections::HashSet<Capability>> {
    capability_set_within(privileged, add, drop, own_bounding_set())
}

/// [`capability_set`] for a berth whose bounding set is `held`: what it
/// does not hold it cannot give. Inside a container (podman's default set
/// lacks MKNOD, NET_RAW and AUDIT_WRITE) the defaults shrink to what is
/// held, as --privileged does; a --cap-add of one not held is an error.
fn capability_set_within(
    privileged: bool,
    add: &[String],
    drop: &[String],
    held: u64,
) -> Result<std::collections::HashSet<Capability>> {
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let is_held = |c: &Capability| {
        ALL_CAPABILITY_NAMES
            .iter()
            .position(|n| parse_capability(n).ok().as_ref() == Some(c))
            .is_some_and(|i| held & (1u64 << i) != 0)
    };
    let add_caps: Vec<Capability> = add
        .iter()
        .filter(|n| !is_all(n))
        .map(|n| parse_capability(n))
        .collect::<Result<_>>()?;
    let drop_caps: Vec<Capability> = drop
        .iter()
        .filter(|n| !is_all(n))
        .map(|n| parse_capability(n))
        .collect::<Result<_>>()?;
    if privileged || add.iter().any(is_all) {
        let mut all: std::collections::HashSet<Capability> =
            all_capabilities(held).into_iter().collect();
        if !privileged {
            for c in &drop_caps {
                all.remove(c);
            }
        }
        return Ok(all);
    }
    if let Some(c) = add_caps.iter().find(|c| !is_held(c)) {
        bail!("--cap-add {c}: berth does not hold CAP_{c} here, so it cannot give it");
    }
    let mut set: std::collections::HashSet<Capability> = if drop.iter().any(is_all) {
        Default::default()
    } else {
        DEFAULT_CAPABILITIES.into_iter().filter(is_held).collect()
    };
    for c in &drop_caps {
        set.remove(c);
    }
    set.extend(add_caps);
    Ok(set)
}

/// The runtime spec plus the image facts the CLI needs elsewhere.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// config.json content.
    pub spec: Spec,
    /// Image StopSignal (for `stop`), if any.
    pub stop_signal: Option<String>,
    /// Image labels.
    pub labels: HashMap<String, String>,
    /// Image ExposedPorts, sorted (`80/tcp`, ...).
    pub exposed_ports: Vec<String>,
    /// Image Volumes, sorted.
    pub volumes: Vec<String>,
}

/// Build the runtime spec for `image` run with `opts`.
pub fn build_spec(image: &ImageConfiguration, opts: &RunOptions) -> Result<BundleSpec> {
    let cfg = image.config().clone().unwrap_or_default();
    let args = command(cfg.entrypoint().as_deref(), cfg.cmd().as_deref(), opts)?;
    let env = environment(cfg.env().as_deref().unwrap_or(&[]), opts);

    let root = Root::open(&opts.rootfs)
        .with_context(|| format!("opening rootfs {}", opts.rootfs.display()))?;
    let user_spec = opts
        .user
        .clone()
        .or_else(|| cfg.user().clone())
        .unwrap_or_default();
    let user = resolve_user(&root, &user_spec)?;
    // runc's rule, which Docker relies on: HOME from the user's passwd
    // entry unless the image or `-e` set it.
    let mut env = env;
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    check_exec_size(&args, &env, stack_limit(&opts.rlimits))?;

    let cwd = opts
        .workdir
        .clone()
        .or_else(|| cfg.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("the working directory {cwd:?} is invalid, it needs to be an absolute path");
    }
    // Lexically cleaned like Go's filepath.Clean: `..` stops at `/`.
    let mut parts: Vec<&str> = Vec::new();
    for c in cwd.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let cwd = format!("/{}", parts.join("/"));
    root.mkdir_all_following(Path::new(&cwd))
        .with_context(|| format!("creating working directory {cwd} in the rootfs"))?;

    let caps = capability_set(opts.privileged, &opts.cap_add, &opts.cap_drop)?;
    // Bounding, effective and permitted only: no inheritable, as Docker since
    // 20.10.14 (CVE-2022-24769: inheritable caps let a non-root exec of a
    // file with inheritable file caps gain them).
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()?;
    let mut process = ProcessBuilder::default()
        .terminal(opts.tty)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()?,
        )
        .args(args)
        .env(env)
        .cwd(PathBuf::from(&cwd))
        .capabilities(capabilities)
        .no_new_privileges(false)
        .build()?;
    // No rlimits unless asked, like Docker (the builder's default has RLIMIT_NOFILE).
    process.set_rlimits(if opts.rlimits.is_empty() {
        None
    } else {
        Some(opts.rlimits.clone())
    });

    let mut namespaces = Vec::new();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ] {
        if t == LinuxNamespaceType::Network && opts.host_network {
            continue;
        }
        namespaces.push(LinuxNamespaceBuilder::default().typ(t).build()?);
    }
    let mut resources = resources(&opts.limits)?;
    resources.set_devices(Some(if opts.privileged {
        vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .access("rwm")
                .build()?,
        ]
    } else {
        let mut rules = default_device_rules()?;
        rules.extend(opts.device_rules.iter().cloned());
        rules
    }));
    let (masked, readonly): (&[&str], &[&str]) = if opts.privileged {
        (&[], &[])
    } else {
        (&MASKED_PATHS, &READONLY_PATHS)
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .resources(resources)
        .build()?;
    linux.set_cgroups_path(opts.cgroups_path.as_ref().map(PathBuf::from));
    if !opts.devices.is_empty() {
        linux.set_devices(Some(opts.devices.clone()));
    }

    let mut mounts: Vec<Mount> = default_mounts()?
        .into_iter()
        .map(|m| if opts.privileged { read_write(m) } else { m })
        .filter(|d| {
            !opts
                .mounts
                .iter()
                .any(|m| m.destination() == d.destination())
        })
        .collect();
    mounts.extend(opts.mounts.iter().cloned());

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(
                opts.spec_root
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("rootfs")),
            )
            .readonly(opts.readonly_rootfs)
            .build()?,
    ));
    // No hostname: the runtime keeps the UTS namespace's inherited one.
    spec.set_hostname((!opts.hostname.is_empty()).then(|| opts.hostname.clone()));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));

    let mut exposed_ports = cfg.exposed_ports().clone().unwrap_or_default();
    exposed_ports.sort();
    let mut volumes = cfg.volumes().clone().unwrap_or_default();
    volumes.sort();
    Ok(BundleSpec {
        spec,
        stop_signal: cfg.stop_signal().clone(),
        labels: cfg.labels().clone().unwrap_or_default(),
        exposed_ports,
        volumes,
    })
}

/// Docker's rules: `--entrypoint X` replaces the entrypoint and drops the
/// image Cmd; `--entrypoint ""` clears it; arguments replace Cmd.
pub fn command(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    opts: &RunOptions,
) -> Result<Vec<String>> {
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => image_entrypoint.map(<[String]>::to_vec).unwrap_or_default(),
    };
    let cmd: Vec<String> = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        vec![]
    } else {
        image_cmd.map(<[String]>::to_vec).unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd and none was given");
    }
    Ok(args)
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Replace entries with the same key in place, append new ones; a bare
/// `KEY` (no `=`) removes KEY (Docker's ReplaceOrAppendEnvValues). One pass:
/// keys are indexed, so an image with 100,000s of entries costs as many
/// hash lookups, not their square.
fn merge_env(base: Vec<String>, layers: &[&[String]]) -> Vec<String> {
    let mut slots: Vec<Option<String>> = Vec::with_capacity(base.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    let overrides = layers.iter().flat_map(|l| l.iter());
    for e in base.iter().chain(overrides) {
        match e.split_once('=') {
            None => {
                if let Some(i) = index.remove(e.as_str()) {
                    slots[i] = None;
                }
            }
            Some((key, _)) => match index.get(key) {
                Some(&i) => slots[i] = Some(e.clone()),
                None => {
                    index.insert(key.to_string(), slots.len());
                    slots.push(Some(e.clone()));
                }
            },
        }
    }
    slots.into_iter().flatten().collect()
}

/// Docker's order: default PATH, HOSTNAME, TERM (with -t), then the image
/// env, then `-e`, later ones replacing earlier ones by key.
pub fn environment(image_env: &[String], opts: &RunOptions) -> Vec<String> {
    let mut env = vec![
        DEFAULT_PATH.to_string(),
        format!("HOSTNAME={}", opts.hostname),
    ];
    if opts.tty {
        env.push("TERM=xterm".into());
    }
    merge_env(env, &[image_env, &opts.env])
}

/// Linux's ARG_MAX: the least execve(2) accepts for strings, whatever the stack.
const ARG_MAX: u64 = 32 * 4096;
/// MAX_ARG_STRLEN: the longest single argument or environment string.
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Refuse, before anything is made, a command execve(2) would refuse with
/// E2BIG: by the kernel's own sum (fs/exec.c), strings with their NULs
/// plus one pointer each must fit in a quarter of the stack limit, capped
/// at 6 MiB and never below ARG_MAX. `stack` is RLIMIT_STACK's soft value.
fn check_exec_size(args: &[String], env: &[String], stack: Option<u64>) -> Result<()> {
    let limit = stack.map_or(6 << 20, |s| (s / 4).min(6 << 20)).max(ARG_MAX);
    let mut total = 8 * (args.len() + env.len()) as u64;
    for (what, s) in args
        .iter()
        .map(|a| ("argument", a))
        .chain(env.iter().map(|e| ("environment variable", e)))
    {
        if s.len() >= MAX_ARG_STRLEN {
            let shown: String = env_key(s).chars().take(40).collect();
            bail!(
                "{what} {shown:?}… is {} bytes, more than the {MAX_ARG_STRLEN} execve accepts",
                s.len()
            );
        }
        total += s.len() as u64 + 1;
    }
    if total > limit {
        bail!(
            "the command's {} arguments and {} environment variables take {total} bytes, more than the {limit} execve accepts",
            args.len(),
            env.len()
        );
    }
    Ok(())
}

/// The soft RLIMIT_STACK the container's process will have: `--ulimit
/// stack`, else berth's own, which it inherits; None when unlimited.
fn stack_limit(rlimits: &[PosixRlimit]) -> Option<u64> {
    let given = rlimits
        .iter()
        .find(|r| r.typ() == oci_spec::runtime::PosixRlimitType::RlimitStack)
        .map(|r| r.soft());
    let soft =
        given.or_else(|| rustix::process::getrlimit(rustix::process::Resource::Stack).current)?;
    (soft != u64::MAX).then_some(soft)
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

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

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

#[cfg(test)]
mod tests {

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

    #[test]
    fn capability_flags_follow_docker() {
        use std::collections::HashSet;
        let default: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(capability_set(false, &[], &[]).unwrap(), default);
        let s = capability_set(false, &["net_admin".into()], &["CAP_CHOWN".into()]).unwrap();
        assert!(s.contains(&Capability::NetAdmin) && !s.contains(&Capability::Chown));
        assert_eq!(s.len(), default.len());
        let s = capability_set(false, &["SYS_PTRACE".into()], &["ALL".into()]).unwrap();
        assert_eq!(s, HashSet::from([Capability::SysPtrace]));
        let all = capability_set(true, &[], &["ALL".into()]).unwrap();
        assert!(all.contains(&Capability::SysAdmin) && all.len() > 30);
        let e = capability_set(false, &["FOO".into()], &[]).unwrap_err();
        assert_eq!(format!("{e}"), "unknown capability: \"CAP_FOO\"");
    }

    #[test]
    fn what_berth_does_not_hold_it_cannot_give() {
        // podman's default set: no MKNOD (27), NET_RAW (13), AUDIT_WRITE (29).
        let held = 0x8000_05fb_u64 | 1 << 18;
        let s = capability_set_within(false, &[], &[], held).unwrap();
        assert!(s.contains(&Capability::Chown) && s.contains(&Capability::SysChroot));
        for c in [
            Capability::Mknod,
            Capability::NetRaw,
            Capability::AuditWrite,
        ] {
            assert!(!s.contains(&c), "{c}");
        }
        let e = capability_set_within(false, &["MKNOD".into()], &[], held).unwrap_err();
        assert!(e.to_string().contains("CAP_MKNOD"), "{e}");
        let all = capability_set_within(true, &[], &[], held).unwrap();
        assert!(!all.contains(&Capability::Mknod) && all.contains(&Capability::Kill));
    }
    use super::*;
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn opts() -> RunOptions {
        RunOptions {
            hostname: "abc123".into(),
            ..Default::default()
        }
    }

    #[test]
    fn command_rules_match_docker() {
        let ep = s(&["/ep", "-x"]);
        let cmd = s(&["a", "b"]);
        let run = |o: RunOptions| command(Some(&ep), Some(&cmd), &o);
        // Image entrypoint + image cmd.
        assert_eq!(run(opts()).unwrap(), s(&["/ep", "-x", "a", "b"]));
        // Arguments replace Cmd, keep the entrypoint.
        assert_eq!(
            run(RunOptions {
                cmd: s(&["c"]),
                ..opts()
            })
            .unwrap(),
            s(&["/ep", "-x", "c"])
        );
        // --entrypoint replaces the entrypoint and drops the image's Cmd.
        assert_eq!(
            run(RunOptions {
                entrypoint: Some("/new".into()),
                ..opts()
            })
            .unwrap(),
            s(&["/new"])
        );
        assert_eq!(
            run(RunOptions {
                entrypoint: Some("/new".into()),
                cmd: s(&["c"]),
                ..opts()
            })
            .unwrap(),
            s(&["/new", "c"])
        );
        // --entrypoint "" clears it; with arguments they are the command.
        assert_eq!(
            run(RunOptions {
                entrypoint: Some(String::new()),
                cmd: s(&["sh"]),
                ..opts()
            })
            .unwrap(),
            s(&["sh"])
        );
        // ... and without arguments there is nothing to run (Docker: "No command specified").
        let e = run(RunOptions {
            entrypoint: Some(String::new()),
            ..opts()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no command specified"));
        // Image with only Cmd.
        assert_eq!(command(None, Some(&cmd), &opts()).unwrap(), cmd);
        assert!(command(None, None, &opts()).is_err());
    }

    #[test]
    fn env_rules_match_docker() {
        let img = s(&["PATH=/img/bin", "A=1", "B=2"]);
        let e = environment(
            &img,
            &RunOptions {
                env: s(&["B=3", "C=4", "A"]),
                ..opts()
            },
        );
        assert_eq!(e, s(&["PATH=/img/bin", "HOSTNAME=abc123", "B=3", "C=4"]));
        let e = environment(
            &[],
            &RunOptions {
                tty: true,
                ..opts()
            },
        );
        assert_eq!(e, s(&[DEFAULT_PATH, "HOSTNAME=abc123", "TERM=xterm"]));
        let e = environment(
            &[],
            &RunOptions {
                env: s(&["HOSTNAME=mine", "X=a=b"]),
                ..opts()
            },
        );
        assert_eq!(e, s(&[DEFAULT_PATH, "HOSTNAME=mine", "X=a=b"]));
    }

    #[test]
    fn env_merge_of_200k_entries_is_one_pass() {
        // Quadratic merging took minutes for this; by key index it is instant.
        let n = 200_000;
        let img: Vec<String> = (0..n).map(|i| format!("K{i}=image")).collect();
        let mut over: Vec<String> = (0..n).step_by(2).map(|i| format!("K{i}=flag")).collect();
        over.extend((1..n).step_by(2).map(|i| format!("K{i}")));
        over.push("NEW=1".into());
        let e = environment(&img, &opts());
        assert_eq!(e.len(), n + 2);
        let e = environment(
            &img,
            &RunOptions {
                env: over,
                ..opts()
            },
        );
        assert_eq!(e.len(), 2 + n / 2 + 1);
        assert_eq!(e[2], "K0=flag");
        assert_eq!(e[3], "K2=flag");
        assert_eq!(e.last().unwrap(), "NEW=1");
    }

    #[test]
    fn an_environment_execve_would_refuse_is_a_clear_error() {
        let t = image_root();
        // ~15 MiB of Env, as in the review's image: refused before any work.
        let env: Vec<String> = (0..140_000)
            .map(|i| format!("VAR_{i}={}", "x".repeat(100)))
            .collect();
        let img = ImageConfigurationBuilder::default()
            .config(
                ConfigBuilder::default()
                    .cmd(s(&["sh"]))
                    .env(env)
                    .working_dir("/made")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let o = RunOptions {
            rootfs: t.path().into(),
            ..opts()
        };
        let e = build_spec(&img, &o).unwrap_err().to_string();
        assert!(
            e.contains("140003 environment variables take") && e.contains("execve accepts"),
            "{e}"
        );
        assert!(
            !t.path().join("made").exists(),
            "nothing made before refusing"
        );
        // One string over MAX_ARG_STRLEN is refused by name.
        let e = check_exec_size(&s(&["sh"]), &[format!("BIG={}", "y".repeat(200_000))], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"BIG\"") && e.contains("131072"), "{e}");
        // The kernel's sum: a 128 KiB stack still allows ARG_MAX.
        assert!(check_exec_size(&s(&["sh"]), &s(&["A=1"]), Some(1024)).is_ok());
        let big: Vec<String> = (0..2000)
            .map(|i| format!("V{i}={}", "z".repeat(100)))
            .collect();
        assert!(check_exec_size(&s(&["sh"]), &big, Some(8 << 20)).is_ok());
        assert!(check_exec_size(&s(&["sh"]), &big, Some(512 << 10)).is_err());
    }

    use crate::user::tests::image_root;

    #[test]
    fn spec_has_docker_defaults() {
        let t = image_root();
        let cfg = ConfigBuilder::default()
            .cmd(s(&["sh"]))
            .env(s(&["FOO=bar"]))
            .working_dir("/srv/app")
            .user("app")
            .stop_signal("SIGQUIT")
            .exposed_ports(s(&["80/tcp", "443/tcp"]))
            .volumes(s(&["/data"]))
            .labels(HashMap::from([("k".to_string(), "v".to_string())]))
            .build()
            .unwrap();
        let img = ImageConfigurationBuilder::default()
            .config(cfg)
            .build()
            .unwrap();
        let extra = MountBuilder::default()
            .destination("/dev/shm")
            .typ("tmpfs")
            .source("shm")
            .build()
            .unwrap();
        let o = RunOptions {
            rootfs: t.path().into(),
            mounts: vec![extra],
            readonly_rootfs: true,
            ..opts()
        };
        let b = build_spec(&img, &o).unwrap();
        let p = b.spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &s(&["sh"]));
        assert_eq!(p.cwd(), Path::new("/srv/app"));
        assert!(
            t.path().join("srv/app").is_dir(),
            "workdir created in the rootfs"
        );
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(
            p.user().additional_gids().as_ref().unwrap(),
            &vec![1000, 50, 10]
        );
        assert!(p.env().as_ref().unwrap().contains(&"FOO=bar".to_string()));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(
            caps.effective()
                .as_ref()
                .unwrap()
                .contains(&Capability::NetBindService)
        );
        assert!(
            !caps
                .bounding()
                .as_ref()
                .unwrap()
                .contains(&Capability::SysAdmin)
        );
        assert!(caps.ambient().as_ref().unwrap().is_empty());
        assert!(p.rlimits().is_none());
        assert_eq!(b.spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(b.spec.hostname().as_deref(), Some("abc123"));
        let linux = b.spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(
            ns.contains(&LinuxNamespaceType::Network) && ns.contains(&LinuxNamespaceType::Cgroup)
        );
        assert_eq!(ns.len(), 6);
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_string())
        );
        assert!(
            linux
                .readonly_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/sys".to_string())
        );
        let devs = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(
            !devs[0].allow() && devs[0].typ() == Some(LinuxDeviceType::A),
            "deny-all first"
        );
        assert!(
            devs.iter()
                .any(|d| d.allow() && d.major() == Some(1) && d.minor() == Some(3))
        );
        let mounts = b.spec.mounts().as_ref().unwrap();
        let shm: Vec<_> = mounts
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .collect();
        assert_eq!(
            shm.len(),
            1,
            "an extra mount replaces the default at the same destination"
        );
        assert!(shm[0].options().is_none());
        let dev = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/dev"))
            .unwrap();
        assert!(
            dev.options()
                .as_ref()
                .unwrap()
                .contains(&"size=65536k".to_string())
        );
        assert_eq!(b.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(b.exposed_ports, s(&["443/tcp", "80/tcp"]));
        assert_eq!(b.volumes, s(&["/data"]));
        assert_eq!(b.labels.get("k").map(String::as_str), Some("v"));

        let host = build_spec(
            &img,
            &RunOptions {
                host_network: true,
                ..o.clone()
            },
        )
        .unwrap();
        let ns = host
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        assert!(ns.iter().all(|n| n.typ() != LinuxNamespaceType::Network));
        let e = build_spec(
            &img,
            &RunOptions {
                workdir: Some("rel".into()),
                ..o.clone()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        // Spec serialises to config.json.
        serde_json::to_string(&b.spec).unwrap();
    }

    #[test]
    fn workdir_through_a_symlink_stays_in_the_rootfs() {
        let t = image_root();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("w")).unwrap();
        std::fs::create_dir_all(t.path().join(outside.path().strip_prefix("/").unwrap())).unwrap();
        let img = ImageConfigurationBuilder::default()
            .config(ConfigBuilder::default().cmd(s(&["sh"])).build().unwrap())
            .build()
            .unwrap();
        let o = RunOptions {
            rootfs: t.path().into(),
            workdir: Some("/w/made".into()),
            ..opts()
        };
        build_spec(&img, &o).unwrap();
        assert!(!outside.path().join("made").exists());
        assert!(
            t.path()
                .join(outside.path().strip_prefix("/").unwrap())
                .join("made")
                .is_dir()
        );
    }

    #[test]
    fn workdir_through_a_dangling_symlink_is_made_where_it_points() {
        let t = image_root();
        std::os::unix::fs::symlink("/opt/app", t.path().join("app")).unwrap();
        let img = ImageConfigurationBuilder::default()
            .config(
                ConfigBuilder::default()
                    .cmd(s(&["sh"]))
                    .working_dir("/app/sub")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let o = RunOptions {
            rootfs: t.path().into(),
            ..opts()
        };
        let b = build_spec(&img, &o).unwrap();
        assert_eq!(
            b.spec.process().as_ref().unwrap().cwd(),
            Path::new("/app/sub")
        );
        assert!(t.path().join("opt/app/sub").is_dir());
        assert!(!Path::new("/opt/app/sub").exists());
    }

    #[test]
    fn workdir_is_cleaned_like_docker() {
        let t = image_root();
        let img = ImageConfigurationBuilder::default()
            .config(
                ConfigBuilder::default()
                    .cmd(s(&["sh"]))
                    .working_dir("/a/../../b/./c/")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let o = RunOptions {
            rootfs: t.path().into(),
            ..opts()
        };
        let b = build_spec(&img, &o).unwrap();
        assert_eq!(b.spec.process().as_ref().unwrap().cwd(), Path::new("/b/c"));
        assert!(t.path().join("b/c").is_dir());
        let b = build_spec(
            &ImageConfigurationBuilder::default()
                .config(ConfigBuilder::default().cmd(s(&["sh"])).build().unwrap())
                .build()
                .unwrap(),
            &o,
        )
        .unwrap();
        assert_eq!(
            b.spec.process().as_ref().unwrap().cwd(),
            Path::new("/"),
            "default workdir"
        );
    }
}
