//! A container's OCI runtime spec, finished in one place: [`build`] takes
//! the image config and the request (plus what `run`'s earlier steps made:
//! the rootfs, the container's own /etc files, its cgroup path) and
//! returns the spec the runtime is given, with nothing left to edit.
//! berth-rootfs turns image config and options into a spec by Docker's
//! rules (command, environment, user, mounts, capabilities, resources);
//! what is said here is berth's: the seccomp profile for the final
//! capability set, the runtime's annotations (no cgroup, the v1
//! hierarchies it joins, no pivot_root), rootless mode and `--userns
//! remap`, rootless `--network bridge` (pasta's hook), and `--init` as
//! PID 1.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, Spec,
};

use crate::request::{Limits, Network, RunRequest};
use crate::rootless::{self, IdMaps};

/// Where `--init` puts berth's own binary inside the container.
pub const INIT_PATH: &str = "/sbin/berth-init";

/// What the container is made of beyond the image and the request: what
/// `run`'s earlier steps decided and made.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Host path of its root filesystem, mounted.
    pub rootfs: PathBuf,
    pub hostname: String,
    /// Its own /etc/hostname, hosts and resolv.conf, bound over the image's.
    pub etc_mounts: Vec<Mount>,
    /// berth's private copy of itself, PID 1 under `--init`.
    pub init_binary: Option<PathBuf>,
    /// `linux.cgroupsPath`; None: no cgroup of its own.
    pub cgroups_path: Option<String>,
    /// `--userns remap`'s id maps.
    pub remap: Option<IdMaps>,
    /// Switch the root without pivot_root (`--no-pivot`, or the
    /// configuration's `no-pivot`).
    pub no_pivot: bool,
    /// The network namespace the engine made (`--network bridge`).
    pub network_ns: Option<PathBuf>,
}

/// The final spec, and what the container's record keeps of it.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub spec: Spec,
    /// The command as the image and the request make it (what `ps` shows):
    /// without `--init`'s own.
    pub command: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
    /// Image StopSignal, if any.
    pub stop_signal: Option<String>,
}

/// The container's spec for `image` run as `req` asks, on `setup`.
pub fn build(image: &ImageConfiguration, req: &RunRequest, setup: Setup) -> Result<ContainerSpec> {
    let Setup {
        rootfs,
        hostname,
        etc_mounts,
        init_binary,
        cgroups_path,
        remap,
        no_pivot,
        network_ns,
    } = setup;
    let own_cgroup = cgroups_path.is_some();
    // Rootless, the bridge is pasta's: a namespace the runtime makes, in
    // the container's user namespace, rather than one the engine keeps.
    let pasta = crate::pasta::wanted(req);
    let network_ns = network_ns.filter(|_| !pasta);
    let mut mounts = req.mounts.clone();
    mounts.extend(etc_mounts);
    // No node can be made in a user namespace: bind the host's.
    let device_nodes = if rootless::active() || remap.is_some() {
        for d in &req.devices {
            mounts.push(d.bind_mount()?);
        }
        Vec::new()
    } else {
        req.devices.iter().map(|d| d.node.clone()).collect()
    };
    if let Some(init) = &init_binary {
        mounts.push(
            MountBuilder::default()
                .typ("bind")
                .source(init)
                .destination(PathBuf::from(INIT_PATH))
                .options(vec!["bind".to_string(), "ro".into()])
                .build()?,
        );
    }
    let built = berth_spec::bundle::build_spec(
        image,
        &berth_spec::RunOptions {
            rootfs: rootfs.clone(),
            // The rootfs stays in the root, beside its upper dir.
            spec_root: Some(rootfs),
            entrypoint: req.entrypoint.clone(),
            cmd: req.command.clone(),
            env: req.env.clone(),
            user: req.user.clone(),
            workdir: req.workdir.clone(),
            hostname,
            tty: req.io.tty,
            readonly_rootfs: req.read_only,
            host_network: req.network == Network::Host,
            network_ns: network_ns.clone(),
            mounts,
            privileged: req.privileged,
            cap_add: req.cap_add.clone(),
            cap_drop: req.cap_drop.clone(),
            cgroups_path,
            limits: req.limits.clone(),
            rlimits: req.ulimits.iter().map(|u| u.rlimit).collect(),
            devices: device_nodes,
            device_rules: req.devices.iter().map(|d| d.rule.clone()).collect(),
        },
    )?;
    let mut spec = built.spec;
    // seccomp for the final capability set (the spec's bounding set), and
    // no_new_privs; none under --privileged, as in Docker.
    berth_spec::seccomp::apply(&mut spec, &req.security, req.privileged)?;
    if !own_cgroup {
        without_cgroup(&mut spec, req);
    } else if cgroup_mount_impossible(&spec, req) && req.cgroup_parent.is_none() {
        // On cgroup v1, only the hierarchies its limits use (saves ~1 ms):
        // it can never mount a cgroup filesystem, so the hierarchies it is
        // not in are out of its sight. Under a parent the user names it
        // joins every one, so that the parent's limits bind it. (`pause`
        // adds a freezer when it needs one; `stats` reads /proc where a
        // controller is missing.)
        annotate(&mut spec, berth_runtime::cgroups::V1_HIERARCHIES, "used");
    }
    if no_pivot {
        annotate(&mut spec, berth_runtime::NO_PIVOT, "true");
    }
    if rootless::active() {
        adapt_rootless(&mut spec, req.limits != Limits::default())?;
    }
    if let Some(maps) = remap {
        add_userns(&mut spec, maps)?;
    }
    if pasta {
        crate::pasta::add_hook(&mut spec)?;
    }
    let command = init_as_pid1(&mut spec, init_binary.is_some())?;
    Ok(ContainerSpec {
        spec,
        command,
        labels: built
            .labels
            .into_iter()
            .chain(req.labels.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect(),
        stop_signal: built.stop_signal,
    })
}

fn annotate(spec: &mut Spec, key: &str, value: &str) {
    spec.annotations_mut()
        .get_or_insert_with(HashMap::new)
        .insert(key.to_string(), value.to_string());
}

/// The container's command, returned as it is; with `init`, berth's init
/// is put before it as PID 1 (`berth-init init -- CMD…`: chosen by the
/// subcommand, never by the name an image gives a file).
fn init_as_pid1(spec: &mut Spec, init: bool) -> Result<Vec<String>> {
    let process = spec
        .process_mut()
        .as_mut()
        .context("spec without a process")?;
    let argv = process.args().clone().unwrap_or_default();
    if init {
        process.set_args(Some(
            [
                vec![INIT_PATH.to_string(), "init".to_string(), "--".to_string()],
                argv.clone(),
            ]
            .concat(),
        ));
    }
    Ok(argv)
}

/// A container without a cgroup of its own: the runtime is told to make
/// none, and, with no device cgroup of its own to stop it opening device
/// nodes, it may not make any (CAP_MKNOD) unless asked for by name.
/// Inside a container the outer device cgroup still applies; on a host
/// nothing else would.
fn without_cgroup(spec: &mut Spec, req: &RunRequest) {
    annotate(spec, berth_runtime::cgroups::MODE, "disabled");
    let asked = req.privileged
        || req.cap_add.iter().any(|c| {
            matches!(
                c.to_ascii_uppercase().trim_start_matches("CAP_"),
                "MKNOD" | "ALL"
            )
        });
    if asked {
        return;
    }
    let Some(process) = spec.process_mut().as_mut() else {
        return;
    };
    if let Some(mut caps) = process.capabilities().clone() {
        let drop = |set: &Option<Capabilities>| {
            set.clone().map(|mut s| {
                s.remove(&Capability::Mknod);
                s
            })
        };
        caps.set_bounding(drop(caps.bounding()));
        caps.set_effective(drop(caps.effective()));
        caps.set_permitted(drop(caps.permitted()));
        caps.set_inheritable(drop(caps.inheritable()));
        caps.set_ambient(drop(caps.ambient()));
        process.set_capabilities(Some(caps));
    }
}

/// Whether no process of the container can ever mount a cgroup filesystem:
/// CAP_SYS_ADMIN is out of its bounding set, and berth's default seccomp
/// profile refuses the new user namespace that would give it one there.
/// Anything else (a custom profile, unconfined, --privileged) may.
fn cgroup_mount_impossible(spec: &Spec, req: &RunRequest) -> bool {
    let bounding = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref());
    !req.privileged
        && req.security.seccomp == berth_spec::seccomp::Choice::Default
        && bounding.is_some_and(|b| !b.contains(&Capability::SysAdmin))
}

/// Put the container in a user namespace with these maps.
fn add_userns(spec: &mut Spec, maps: IdMaps) -> Result<()> {
    if let Some(linux) = spec.linux_mut().as_mut() {
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()?,
        );
        linux.set_namespaces(Some(ns));
        linux.set_uid_mappings(Some(maps.uids));
        linux.set_gid_mappings(Some(maps.gids));
    }
    Ok(())
}

/// Rootless: no cgroup unless limits were asked for, and never device
/// rules (no device can be made in a user namespace, and the v2 filter
/// needs privilege to load).
fn drop_cgroup_unless_limited(spec: &mut Spec, has_limits: bool) {
    if let Some(linux) = spec.linux_mut().as_mut() {
        if !has_limits {
            linux.set_resources(None);
            linux.set_cgroups_path(None);
        } else if let Some(res) = linux.resources_mut().as_mut() {
            res.set_devices(None);
        }
    }
}

/// Rootless berth: a user namespace with this user's maps; no cgroup
/// unless limits were asked for (and then it must be delegated); no devpts
/// gid option when gid 5 is not mapped.
fn adapt_rootless(spec: &mut Spec, has_limits: bool) -> Result<()> {
    if rootless::in_own_userns() {
        // Already in berth's own user namespace: the container's other
        // namespaces belong to it; only the cgroup is left to decide.
        drop_cgroup_unless_limited(spec, has_limits);
        return Ok(());
    }
    let maps = rootless::id_maps()?;
    let tty_gid_mapped = maps
        .gids
        .iter()
        .any(|m| m.container_id() <= 5 && 5 < m.container_id() + m.size());
    add_userns(spec, maps)?;
    drop_cgroup_unless_limited(spec, has_limits);
    if !tty_gid_mapped && let Some(mounts) = spec.mounts_mut().as_mut() {
        for m in mounts
            .iter_mut()
            .filter(|m| m.typ().as_deref() == Some("devpts"))
        {
            let opts: Vec<String> = m
                .options()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.starts_with("gid="))
                .collect();
            m.set_options(Some(opts));
        }
    }
    Ok(())
}
