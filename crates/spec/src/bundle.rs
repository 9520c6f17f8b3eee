//! Image config + `run` options → the OCI runtime spec (config.json):
//! [`build_spec`] puts together what the other modules decide by Docker's
//! rules: the process ([`crate::process`], [`crate::user`],
//! [`crate::capabilities`]), namespaces, resources ([`crate::resources`])
//! and mounts ([`crate::mounts`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Linux, LinuxBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Process,
    ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

use berth_snapshot::Root;

use crate::capabilities::{capability_set, linux_capabilities};
use crate::mounts::{MASKED_PATHS, READONLY_PATHS, container_mounts};
use crate::options::RunOptions;
use crate::process::{check_exec_size, command, env_key, environment, stack_limit, working_dir};
use crate::resources::{device_rules, resources};
use crate::user::{ExecUser, resolve_user};

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

    let cwd = working_dir(opts.workdir.as_deref(), cfg.working_dir().as_deref())?;
    root.mkdir_all_following(Path::new(&cwd))
        .with_context(|| format!("creating working directory {cwd} in the rootfs"))?;

    let process = process(opts, &user, args, env, &cwd)?;
    let linux = linux(opts)?;
    let mounts = container_mounts(opts.privileged, &opts.mounts)?;

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

/// The spec's `process`: `args` and `env` run as `user` in `cwd`, with the
/// container's capabilities and, only when asked, rlimits.
fn process(
    opts: &RunOptions,
    user: &ExecUser,
    args: Vec<String>,
    env: Vec<String>,
    cwd: &str,
) -> Result<Process> {
    let caps = capability_set(opts.privileged, &opts.cap_add, &opts.cap_drop)?;
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
        .cwd(PathBuf::from(cwd))
        .capabilities(linux_capabilities(caps)?)
        .no_new_privileges(false)
        .build()?;
    // No rlimits unless asked, like Docker (the builder's default has RLIMIT_NOFILE).
    process.set_rlimits(if opts.rlimits.is_empty() {
        None
    } else {
        Some(opts.rlimits.clone())
    });
    Ok(process)
}

/// The spec's `linux`: namespaces, resources and device rules, masked and
/// read-only paths (none for `--privileged`), cgroup path and devices.
fn linux(opts: &RunOptions) -> Result<Linux> {
    let mut resources = resources(&opts.limits)?;
    resources.set_devices(Some(device_rules(opts.privileged, &opts.device_rules)?));
    let (masked, readonly): (&[&str], &[&str]) = if opts.privileged {
        (&[], &[])
    } else {
        (&MASKED_PATHS, &READONLY_PATHS)
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(opts.host_network, opts.network_ns.as_deref())?)
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .resources(resources)
        .build()?;
    linux.set_cgroups_path(opts.cgroups_path.as_ref().map(PathBuf::from));
    if !opts.devices.is_empty() {
        linux.set_devices(Some(opts.devices.clone()));
    }
    Ok(linux)
}

/// Docker's namespaces: pid, mount, uts, ipc, network (not with
/// `--network host`; `network_ns` when the engine made it) and cgroup.
fn namespaces(
    host_network: bool,
    network_ns: Option<&std::path::Path>,
) -> Result<Vec<LinuxNamespace>> {
    let mut namespaces = Vec::new();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ] {
        if t == LinuxNamespaceType::Network && host_network {
            continue;
        }
        let mut ns = LinuxNamespaceBuilder::default().typ(t);
        if let (LinuxNamespaceType::Network, Some(p)) = (t, network_ns) {
            ns = ns.path(p);
        }
        namespaces.push(ns.build()?);
    }
    Ok(namespaces)
}
