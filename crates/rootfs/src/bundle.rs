//! Image config + `run` options → the OCI runtime spec (config.json), with
//! Docker's rules for command, environment, user and working directory, and
//! Docker's default namespaces, mounts, masked paths and capabilities.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use rustix::fs::OFlags;

use crate::resolve::Root;

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

/// The process identity `--user` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids from /etc/group membership.
    pub additional_gids: Vec<u32>,
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

    let cwd = opts
        .workdir
        .clone()
        .or_else(|| cfg.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("the working directory {cwd:?} is invalid, it needs to be an absolute path");
    }
    root.mkdir_all(Path::new(&cwd))
        .with_context(|| format!("creating working directory {cwd} in the rootfs"))?;

    let caps: std::collections::HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
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
    let process = ProcessBuilder::default()
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
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;

    let mut mounts: Vec<Mount> = default_mounts()?
        .into_iter()
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
    spec.set_hostname(Some(opts.hostname.clone()));
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
/// `KEY` (no `=`) removes KEY (Docker's ReplaceOrAppendEnvValues).
fn replace_or_append(base: &mut Vec<String>, overrides: &[String]) {
    for o in overrides {
        let key = env_key(o);
        if !o.contains('=') {
            base.retain(|b| env_key(b) != key);
            continue;
        }
        match base.iter_mut().find(|b| env_key(b) == key) {
            Some(slot) => *slot = o.clone(),
            None => base.push(o.clone()),
        }
    }
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
    replace_or_append(&mut env, image_env);
    replace_or_append(&mut env, &opts.env);
    env
}

fn read_in_root(root: &Root, path: &str) -> Result<Option<String>> {
    match root.open_path(Path::new(path), OFlags::RDONLY) {
        Ok(fd) => {
            let mut s = String::new();
            // Bounded: a hostile image could make /etc/passwd a huge file.
            std::fs::File::from(fd)
                .take(16 << 20)
                .read_to_string(&mut s)
                .with_context(|| format!("reading {path} in the image"))?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {path} in the image")),
    }
}

/// Resolve `--user` against the image's own /etc/passwd and /etc/group
/// (runc's GetExecUser rules, which Docker uses): a name must exist; a
/// numeric uid need not (gid 0 then); supplementary groups come from
/// /etc/group membership unless a group was given explicitly.
pub fn resolve_user(root: &Root, spec: &str) -> Result<ExecUser> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_in_root(root, "/etc/passwd")?;
    let group = read_in_root(root, "/etc/group")?;
    let uid_num = user_arg.parse::<u32>().ok();

    let (mut uid, mut gid, mut name) = (0u32, 0u32, String::new());
    if !user_arg.is_empty() {
        let found = passwd.as_deref().unwrap_or("").lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let (u, g) = (f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?);
            (f[0] == user_arg || uid_num == Some(u)).then(|| (u, g, f[0].to_string()))
        });
        match (found, uid_num) {
            (Some((u, g, n)), _) => (uid, gid, name) = (u, g, n),
            (None, Some(u)) => uid = u,
            (None, None) => {
                bail!("unable to find user {user_arg}: no matching entries in passwd file")
            }
        }
    } else if let Some(root_entry) = passwd
        .as_deref()
        .unwrap_or("")
        .lines()
        .find(|l| l.split(':').nth(2) == Some("0"))
    {
        name = root_entry.split(':').next().unwrap_or("").to_string();
    }

    let groups: Vec<(String, u32, Vec<String>)> = group
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f.get(3).map(|m| {
                m.split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            });
            Some((
                f[0].to_string(),
                f[2].parse().ok()?,
                members.unwrap_or_default(),
            ))
        })
        .collect();

    let mut additional = Vec::new();
    match group_arg {
        Some(g) if !g.is_empty() => {
            let gnum = g.parse::<u32>().ok();
            match groups.iter().find(|(n, id, _)| n == g || gnum == Some(*id)) {
                Some((_, id, _)) => gid = *id,
                None => {
                    gid = gnum.ok_or_else(|| {
                        anyhow!("unable to find group {g}: no matching entries in group file")
                    })?
                }
            }
        }
        _ if !name.is_empty() => {
            for (_, id, members) in &groups {
                if members.contains(&name) && !additional.contains(id) {
                    additional.push(*id);
                }
            }
        }
        _ => {}
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids: additional,
    })
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
