//! Container commands: run, ps, rm.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_image::{ImageRecord, Progress, ProgressMode};
use berth_io::{errln, outln};

use crate::cli::{Format, Network, PsArgs, PullPolicy, RmArgs, RunArgs};
use crate::engine::Engine;
use crate::state::{self, Container, Containers, Status};
use crate::{images, rootless, runopts, snapshots, table, timefmt, trash};

/// Where the runtime keeps its per-container state (OCI state.json).
fn runtime_dir(engine: &Engine) -> PathBuf {
    engine.exec_root.join("runtime")
}

/// A container's OCI bundle: config.json and the files bind-mounted into
/// it (/etc/hostname, hosts, resolv.conf). It lives while the container
/// runs; its rootfs, upper and work dirs and its record stay in the root.
fn bundle_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.exec_root.join("bundles").join(id)
}

/// Where a container's overlay upper and work dirs go when its own dir
/// cannot hold them: the root is on overlayfs (berth in a container),
/// the exec root is a tmpfs. Lives as long as the container.
fn scratch_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.exec_root.join("scratch").join(id)
}

/// Finds the image locally or pulls it, as `--pull` says. Like Docker, a
/// local image of another platform than `--platform` asks for is not the
/// image asked for: `--pull missing` pulls that platform.
fn obtain_image(engine: &Engine, args: &RunArgs) -> Result<ImageRecord> {
    use berth_image::Platform;
    let want = args.platform.as_deref().map(Platform::parse).transpose()?;
    let found = engine.store.resolve(&args.image).ok();
    if found.is_none() {
        // A name that can never be pulled is said to be so first, as Docker does.
        berth_image::Reference::parse(&args.image)?;
    }
    let platform_of =
        |img: &ImageRecord| Platform::new(&img.os, &img.architecture, img.variant.as_deref());
    let (local, other) = match (found, &want) {
        (Some(img), Some(w)) if !w.matches(&platform_of(&img)) => (None, Some(img)),
        (found, _) => (found, None),
    };
    let need_pull = match args.pull {
        PullPolicy::Always => true,
        PullPolicy::Missing => local.is_none(),
        PullPolicy::Never => false,
    };
    if !need_pull {
        return match (local, other, want) {
            (Some(img), ..) => Ok(img),
            (None, Some(img), Some(w)) => bail!(
                "image {} is {} locally, not the {w} asked for, and --pull never was given",
                args.image,
                platform_of(&img)
            ),
            _ => bail!(
                "no such image {} locally and --pull never was given",
                args.image
            ),
        };
    }
    if local.is_none() && !args.quiet {
        errln!("Unable to find image '{}' locally", args.image);
    }
    // The container's stdout is the user's: pull chatter goes to stderr.
    let progress = if args.quiet {
        Progress::quiet()
    } else {
        Progress::with_writer(ProgressMode::Lines, Box::new(std::io::stderr()))
    };
    let opts = images::pull_options(engine, args.platform.as_deref())?;
    snapshots::pull(engine, &args.image, &opts, &progress)
}

/// A host file copied into the container: empty when missing; bounded,
/// since a huge one would be copied into every container.
fn host_file(path: &str) -> Result<String> {
    match berth_io::read_capped_string(Path::new(path), berth_io::MIB, "host file") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        r => Ok(r?),
    }
}

/// Files every container gets of its own, bind-mounted over the image's.
fn write_etc_files(
    cdir: &Path,
    hostname: &str,
    host_network: bool,
) -> Result<Vec<oci_spec::runtime::Mount>> {
    let hosts = if host_network {
        host_file("/etc/hosts")?
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
        )
    };
    let resolv = host_file("/etc/resolv.conf")?;
    let mut mounts = Vec::new();
    for (name, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let p = cdir.join(name);
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .typ("bind")
                .source(p)
                .destination(PathBuf::from(format!("/etc/{name}")))
                .options(vec!["rbind".to_string(), "rprivate".into()])
                .build()?,
        );
    }
    Ok(mounts)
}

/// Cleans up a container that failed before or while running, unless disarmed.
struct Teardown<'a> {
    engine: &'a Engine,
    id: String,
    armed: bool,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = remove_container_files(self.engine, &self.id, false)
        {
            tracing::warn!("clean up container {}: {e:#}", self.id);
        }
    }
}

pub fn run(engine: &Engine, args: &RunArgs) -> Result<u8> {
    let host_network = args.network == Network::Host;
    if let Some(n) = &args.name {
        state::validate_name(n)?;
    }
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    // Flags are checked before anything is pulled or created.
    let mut extra_mounts = runopts::parse_mounts(&args.volumes, &args.mounts, &args.tmpfs)?;
    let limits = berth_spec::resources::Limits {
        memory: args
            .memory
            .as_deref()
            .map(|v| runopts::parse_bytes("--memory", v))
            .transpose()?,
        memory_swap: args
            .memory_swap
            .as_deref()
            .map(runopts::parse_swap)
            .transpose()?,
        memory_reservation: args
            .memory_reservation
            .as_deref()
            .map(|v| runopts::parse_bytes("--memory-reservation", v))
            .transpose()?,
        cpus: args.cpus.as_deref().map(runopts::parse_cpus).transpose()?,
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        pids_limit: args.pids_limit,
        io: runopts::io_limits(args)?,
    };
    // Checked here so a bad value fails before any pull.
    let has_limits = limits != berth_spec::resources::Limits::default();
    let own_cgroup = wants_own_cgroup(engine, args)?;
    say_what_is_missing(args);
    berth_spec::resources::resources(&limits)?;
    berth_spec::capabilities::capability_set(args.privileged, &args.cap_add, &args.cap_drop)?;
    let mut rlimits = Vec::new();
    for u in &args.ulimit {
        let rl = runopts::parse_ulimit(u)?;
        runopts::check_ulimit(u, &rl)?;
        rlimits.push(rl);
    }
    runopts::cgroups_path(args.cgroup_parent.as_deref(), "check")?;
    let devices = args
        .device
        .iter()
        .map(|d| runopts::parse_device(d))
        .collect::<Result<Vec<_>>>()?;
    let remap = rootless::remap_maps(&args.userns)?;
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(runopts::read_env_file(f)?);
    }
    for e in &args.env {
        env.extend(runopts::parse_env(e)?);
    }
    let security = berth_spec::seccomp::SecurityOpts::parse(&args.security_opt)?;
    security
        .seccomp
        .check_syscall_names(berth_runtime::seccomp::known_syscall)?;

    let started = std::time::Instant::now();
    let phase = |what: &str| {
        tracing::debug!(
            "run: {what} at {:.2} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    };
    reap_dead_runs(engine)?;
    let image = obtain_image(engine, args)?;
    phase("image resolved");
    let image_config = engine.store.config(&image)?;

    let containers = Containers::open(&engine.root)?;
    let id = state::new_id()?;
    let me = std::process::id() as i32;
    let lock = containers.lock()?;
    let name = match &args.name {
        Some(n) => {
            if let Some(other) = containers.name_taken(n)? {
                bail!(
                    "conflict: the container name \"{n}\" is already in use by container {}; remove it or choose another name",
                    &other[..12.min(other.len())]
                );
            }
            n.clone()
        }
        None => state::new_name(&containers, &id)?,
    };
    let mut rec = Container {
        id: id.clone(),
        name,
        image: args.image.clone(),
        image_id: image.id.to_string(),
        command: Vec::new(),
        created: timefmt::now_rfc3339(),
        started: None,
        finished: None,
        status: Status::Created,
        exit_code: None,
        oom_killed: false,
        pid: None,
        pid_start: None,
        cgroup: own_cgroup
            .then(|| runopts::cgroups_path(args.cgroup_parent.as_deref(), &id))
            .transpose()?,
        supervisor: Some((me, state::process_start_time(me).unwrap_or(0))),
        // Recorded before they are used, so that neither a prune nor the
        // clean-up after a crash can miss them (unmounting what is not
        // mounted yet is a no-op).
        snapshots: image.chain_ids().iter().map(|c| c.to_string()).collect(),
        rootfs_mounted: true,
        auto_remove: args.rm,
        labels: BTreeMap::new(),
        stop_signal: None,
    };
    // Saved twice more, at start and (unless --rm removes it) at exit: each
    // save is a new file, and on many hosts a freed block costs a
    // synchronous discard.
    containers.save(&rec)?;
    drop(lock);
    let mut teardown = Teardown {
        engine,
        id: id.clone(),
        armed: true,
    };

    let cdir = containers.dir(&id);
    engine.exec_root_ready()?;
    let bdir = bundle_dir(engine, &id);
    std::fs::create_dir_all(bdir.parent().unwrap_or(&bdir))
        .and_then(|()| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&bdir)
        })
        .with_context(|| format!("create {}", bdir.display()))?;
    let t0 = std::time::Instant::now();
    let lowers = snapshots::prepare(engine, &image)?;
    // A container thrown away at exit needs no syncs of its writes (see
    // RootfsOptions::volatile).
    let volatile = args.rm;
    let rootfs = match &remap {
        None => snapshots::mount_rootfs(&lowers, &cdir, &scratch_dir(engine, &id), volatile)?,
        Some((uids, gids)) => {
            let ns = berth_runtime::new_userns(uids, gids)
                .map_err(|e| anyhow::anyhow!("--userns: {}", e.message))?;
            let root = (uids[0].host_id(), gids[0].host_id());
            // The remapped root bind-mounts the bundle's files.
            std::os::unix::fs::chown(&bdir, Some(root.0), Some(root.1))
                .with_context(|| format!("chown {} to the remapped root", bdir.display()))?;
            berth_snapshot::overlay::mount_rootfs_idmapped(
                &cdir,
                &lowers.dirs,
                std::os::fd::AsFd::as_fd(&ns),
                root,
                volatile,
            )?
            .path
        }
    };
    tracing::debug!("rootfs ready in {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);

    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    extra_mounts.extend(write_etc_files(&bdir, &hostname, host_network)?);
    // No node can be made in a user namespace: bind the host's.
    let device_nodes = if rootless::active() || remap.is_some() {
        for d in &devices {
            extra_mounts.push(d.bind_mount()?);
        }
        Vec::new()
    } else {
        devices.iter().map(|d| d.node.clone()).collect()
    };
    let mut init_path = None;
    if args.init {
        extra_mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .typ("bind")
                .source(init_copy(&cdir)?)
                .destination(PathBuf::from(snapshots::INIT_PATH))
                .options(vec!["bind".to_string(), "ro".into()])
                .build()?,
        );
        init_path = Some(snapshots::INIT_PATH.to_string());
    }
    let mut built = berth_spec::bundle::build_spec(
        &image_config,
        &berth_spec::options::RunOptions {
            rootfs: rootfs.clone(),
            // The rootfs stays in the root, beside its upper dir.
            spec_root: Some(rootfs.clone()),
            entrypoint: args.entrypoint.clone(),
            cmd: args.command.clone(),
            env,
            user: args.user.clone(),
            workdir: args.workdir.clone(),
            hostname,
            tty: args.tty,
            readonly_rootfs: args.read_only,
            host_network,
            mounts: extra_mounts,
            privileged: args.privileged,
            cap_add: args.cap_add.clone(),
            cap_drop: args.cap_drop.clone(),
            cgroups_path: rec.cgroup.clone(),
            limits,
            rlimits,
            devices: device_nodes,
            device_rules: devices.iter().map(|d| d.rule.clone()).collect(),
        },
    )?;
    // seccomp for the final capability set (the spec's bounding set), and
    // no_new_privs; none under --privileged, as in Docker.
    berth_spec::seccomp::apply(&mut built.spec, &security, args.privileged)?;
    if !own_cgroup {
        without_cgroup(&mut built.spec, args);
    } else if cgroup_mount_impossible(&built.spec, &security, args.privileged)
        && args.cgroup_parent.is_none()
    {
        // On cgroup v1, only the hierarchies its limits use (saves ~0.5 ms):
        // it can never mount a cgroup filesystem, so the hierarchies it is
        // not in are out of its sight. Under a parent the user names it
        // joins every one, so that the parent's limits bind it.
        let mut notes = built.spec.annotations().clone().unwrap_or_default();
        notes.insert(
            berth_runtime::cgroups::V1_HIERARCHIES.to_string(),
            "used".to_string(),
        );
        built.spec.set_annotations(Some(notes));
    }
    if args.no_pivot || engine.config.no_pivot {
        let mut notes = built.spec.annotations().clone().unwrap_or_default();
        notes.insert(berth_runtime::NO_PIVOT.to_string(), "true".to_string());
        built.spec.set_annotations(Some(notes));
    }
    if rootless::active() {
        rootless::adapt(&mut built.spec, has_limits)?;
    }
    if let Some((uids, gids)) = remap {
        rootless::add_userns(&mut built.spec, uids, gids)?;
    }
    let process = built
        .spec
        .process_mut()
        .as_mut()
        .context("spec without a process")?;
    let argv = process.args().clone().unwrap_or_default();
    if let Some(init) = init_path {
        process.set_args(Some(
            [
                vec![init, "init".to_string(), "--".to_string()],
                argv.clone(),
            ]
            .concat(),
        ));
    }
    rec.command = argv;
    rec.labels = built.labels.clone().into_iter().collect();
    rec.stop_signal = built.stop_signal.clone();
    phase("spec built");
    let spec_path = bdir.join("config.json");
    // The bundle stays complete (a runtime can run it as it is), while the
    // runtime below is handed the spec in memory rather than parsing it back.
    std::fs::write(&spec_path, serde_json::to_vec(&built.spec)?)
        .with_context(|| format!("write {}", spec_path.display()))?;

    let io = berth_runtime::Io {
        interactive: args.interactive,
    };
    phase("bundle written");
    let result =
        berth_runtime::run_spec(&id, &bdir, &built.spec, &runtime_dir(engine), &io, |pid| {
            phase("container started");
            rec.pid = Some(pid);
            rec.pid_start = state::process_start_time(pid);
            rec.status = Status::Running;
            rec.started = Some(timefmt::now_rfc3339());
            if let Err(e) = containers.save(&rec) {
                tracing::warn!("record container start: {e:#}");
            }
        });
    let code = match result {
        Ok(exit) => {
            rec.oom_killed = exit.oom_killed;
            exit.code
        }
        Err(e) => {
            errln!("berth: run {}: {}", rec.name, e.message);
            e.exit_code()
        }
    };
    rec.status = Status::Exited;
    rec.exit_code = Some(code);
    rec.pid = None;
    rec.finished = Some(timefmt::now_rfc3339());
    if rec.started.is_none() {
        rec.started = rec.finished.clone();
    }
    phase("container exited");
    snapshots::unmount_rootfs(&cdir)?;
    rec.rootfs_mounted = false;
    // Kept unless --rm: `ps -a` shows it and `rm` removes it; its bundle
    // served this run only. A --rm record is not saved again, only removed
    // (bundle and all, by the teardown); should that fail, it still names
    // a dead supervisor, and the next berth run cleans it up.
    if !args.rm {
        if let Err(e) = std::fs::remove_dir_all(&bdir) {
            tracing::warn!("remove {}: {e}", bdir.display());
        }
        containers.save(&rec)?;
    }
    teardown.armed = args.rm;
    phase("recorded");
    drop(teardown);
    phase("removed");
    Ok(u8::try_from(code).unwrap_or(125))
}

/// Whether the container gets a cgroup of its own. Without a writable
/// cgroup filesystem (inside a container, say) one that asks for no limits
/// runs in berth's own cgroup, which still bounds it; one that asks for
/// limits is refused, never run without them.
fn wants_own_cgroup(engine: &Engine, args: &RunArgs) -> Result<bool> {
    use crate::cli::CgroupsMode;
    let needs = first_cgroup_flag(args);
    let mode = args.cgroups.or(engine.config.cgroups);
    if mode == Some(CgroupsMode::Disabled) {
        if let Some(flag) = needs {
            bail!("{flag} needs a cgroup, and cgroups are disabled (--cgroups disabled)");
        }
        return Ok(false);
    }
    if rootless::active() {
        // Rootless decides by its delegation (rootless::adapt).
        return Ok(true);
    }
    match (crate::host::Host::get().cgroups().unwritable, needs) {
        (None, _) => Ok(true),
        (Some(why), Some(flag)) => {
            bail!("{flag} needs a cgroup, and berth may not make one here: {why}")
        }
        (Some(why), None) => {
            tracing::info!("containers run without a cgroup of their own: {why}");
            Ok(false)
        }
    }
}

/// At info level (off by default), what this run does without.
fn say_what_is_missing(args: &RunArgs) {
    if !tracing::enabled!(tracing::Level::INFO) || rootless::active() {
        return;
    }
    let host = crate::host::Host::get();
    if args.network != Network::Host && !host.has_cap("CAP_NET_ADMIN") {
        tracing::info!("no CAP_NET_ADMIN: the container's loopback interface stays down");
    }
    if host.has_cap("CAP_SYS_ADMIN") && host.pivot_root_refused() {
        tracing::info!("pivot_root is refused (seccomp): the root is switched by move and chroot");
    }
}

/// The first flag that only a cgroup of the container's own can honour.
fn first_cgroup_flag(args: &RunArgs) -> Option<&'static str> {
    [
        (args.memory.is_some(), "--memory"),
        (args.memory_swap.is_some(), "--memory-swap"),
        (args.memory_reservation.is_some(), "--memory-reservation"),
        (args.cpus.is_some(), "--cpus"),
        (args.cpu_shares.is_some(), "--cpu-shares"),
        (args.cpuset_cpus.is_some(), "--cpuset-cpus"),
        (args.pids_limit.is_some(), "--pids-limit"),
        (args.blkio_weight.is_some(), "--blkio-weight"),
        (!args.device_read_bps.is_empty(), "--device-read-bps"),
        (!args.device_write_bps.is_empty(), "--device-write-bps"),
        (!args.device_read_iops.is_empty(), "--device-read-iops"),
        (!args.device_write_iops.is_empty(), "--device-write-iops"),
        (args.cgroup_parent.is_some(), "--cgroup-parent"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
}

/// A container without a cgroup of its own: the runtime is told to make
/// none, and, with no device cgroup of its own to stop it opening device
/// nodes, it may not make any (CAP_MKNOD) unless asked for by name.
/// Inside a container the outer device cgroup still applies; on a host
/// nothing else would.
fn without_cgroup(spec: &mut oci_spec::runtime::Spec, args: &RunArgs) {
    use oci_spec::runtime::Capability;
    let mut notes = spec.annotations().clone().unwrap_or_default();
    notes.insert(
        berth_runtime::cgroups::MODE.to_string(),
        "disabled".to_string(),
    );
    spec.set_annotations(Some(notes));
    let asked = args.privileged
        || args.cap_add.iter().any(|c| {
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
        let drop = |set: &Option<oci_spec::runtime::Capabilities>| {
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
fn cgroup_mount_impossible(
    spec: &oci_spec::runtime::Spec,
    security: &berth_spec::seccomp::SecurityOpts,
    privileged: bool,
) -> bool {
    let bounding = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref());
    !privileged
        && security.seccomp == berth_spec::seccomp::Choice::Default
        && bounding.is_some_and(|b| !b.contains(&oci_spec::runtime::Capability::SysAdmin))
}

/// Cleans up after berth processes that died while supervising a container
/// (SIGKILL, OOM, power cut): their containers died with them (PID 1 was
/// their child), but the rootfs mount and runtime state stay until someone
/// looks. Each such container is unmounted and recorded as exited.
fn reap_dead_runs(engine: &Engine) -> Result<()> {
    trash::sweep(&engine.root);
    let containers = Containers::open(&engine.root)?;
    let _lock = containers.lock()?;
    for mut c in containers.list()? {
        if c.status != Status::Running && !(c.status == Status::Created && c.rootfs_mounted) {
            continue;
        }
        if c.supervisor.is_none() || c.supervisor_alive() {
            continue;
        }
        tracing::info!(
            "container {} outlived its berth process: cleaning up",
            c.name
        );
        let cdir = containers.dir(&c.id);
        // Its PID 1 may still run, orphaned: kill it (and with it the PID
        // namespace) if the pid is still that container's: its root is our rootfs.
        if let Some(pid) = c.pid
            && std::fs::read_link(format!("/proc/{pid}/root")).ok() == Some(cdir.join("rootfs"))
        {
            // SAFETY: kill(2) of the container's init, identified by its root above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            for _ in 0..100 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        if let Ok(rt) = berth_runtime::Container::load(&c.id, &runtime_dir(engine)) {
            let _ = rt.delete(true);
        }
        remove_cgroup(&c);
        snapshots::unmount_rootfs(&cdir)?;
        if c.auto_remove {
            // --rm: removed at exit, as its berth would have done.
            remove_container_files(engine, &c.id, false)?;
            continue;
        }
        let _ = std::fs::remove_dir_all(bundle_dir(engine, &c.id));
        c.rootfs_mounted = false;
        c.status = Status::Exited;
        c.pid = None;
        c.finished.get_or_insert_with(timefmt::now_rfc3339);
        containers.save(&c)?;
    }
    Ok(())
}

/// Removes the container's cgroup (killing what is left in it): its berth
/// may have died after making it and before the runtime recorded it.
fn remove_cgroup(c: &Container) {
    let path = c
        .cgroup
        .clone()
        .unwrap_or_else(|| format!("/berth/{}", c.id));
    if let Err(e) = berth_runtime::cgroups::remove(&path) {
        tracing::debug!("remove cgroup {path}: {e}");
    }
}

/// Unmounts and removes everything of one container: its runtime state
/// and bundle now, its own directory (record, upper and work dirs) by
/// moving it to the trash at once, whose files go in the background.
/// With `sweep_cgroup`, also its cgroup, which the berth that ran it
/// removes itself (the runtime does, whatever happened) unless it died.
fn remove_container_files(engine: &Engine, id: &str, sweep_cgroup: bool) -> Result<()> {
    let containers = Containers::open(&engine.root)?;
    let cdir = containers.dir(id);
    if let Ok(c) = berth_runtime::Container::load(id, &runtime_dir(engine)) {
        let _ = c.delete(true);
    }
    if sweep_cgroup && let Ok(c) = containers.load(id) {
        remove_cgroup(&c);
    }
    let _ = std::fs::remove_dir_all(runtime_dir(engine).join(id));
    let _ = std::fs::remove_dir_all(bundle_dir(engine, id));
    snapshots::release_rootfs(&cdir)?;
    // Before the record goes: should this fail, a later rm tries again.
    let scratch = scratch_dir(engine, id);
    match berth_snapshot::remove_tree(&scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", scratch.display()));
        }
        _ => {}
    }
    trash::discard(&engine.root, &cdir)
}

pub fn rm(engine: &Engine, args: &RmArgs) -> Result<u8> {
    let containers = Containers::open(&engine.root)?;
    let mut failed = false;
    for key in &args.containers {
        let res = (|| -> Result<()> {
            let c = containers.find(key)?;
            if c.is_running() {
                if !args.force {
                    bail!(
                        "cannot remove container {key}: it is running (stop it first or use rm -f)"
                    );
                }
                if let Some(pid) = c.pid {
                    // SAFETY: kill(2) on the container's init; a stale pid was excluded by is_running.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                // Give the supervisor a moment to record the exit and unmount.
                for _ in 0..100 {
                    if c.supervisor
                        .is_none_or(|(p, t)| !state::process_alive(p, t))
                    {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            remove_container_files(engine, &c.id, true)?;
            outln!("{key}");
            Ok(())
        })();
        if let Err(e) = res {
            errln!("berth: rm {key}: {e:#}");
            failed = true;
        }
    }
    Ok(if failed { 125 } else { 0 })
}

/// A private copy of berth's own binary in the container's directory, for
/// `--init`: the container runs it as PID 1, and a process in it that
/// writes through /proc/1/exe (or remounts it rw, when privileged) reaches
/// this copy, discarded with the container, never the host's berth
/// (CVE-2019-5736). A memfd would be nicer but cannot be bind-mounted.
fn init_copy(cdir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dst = cdir.join("berth-init");
    let mut exe = std::fs::File::open("/proc/self/exe").context("open berth's own binary")?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o555)
        .open(&dst)
        .with_context(|| format!("create {}", dst.display()))?;
    std::io::copy(&mut exe, &mut out).with_context(|| format!("write {}", dst.display()))?;
    Ok(dst)
}

/// `berth inspect`: Docker's shape for the fields berth records.
pub fn inspect(engine: &Engine, keys: &[String]) -> Result<u8> {
    let containers = Containers::open(&engine.root)?;
    let mut out = Vec::new();
    let mut failed = false;
    for key in keys {
        match containers.find(key) {
            Ok(c) => {
                let running = c.is_running();
                out.push(serde_json::json!({
                    "Id": c.id,
                    "Name": format!("/{}", c.name),
                    "Created": c.created,
                    "Path": c.command.first(),
                    "Args": c.command.get(1..).unwrap_or_default(),
                    "State": {
                        "Status": if running { "running" } else { match c.status {
                            Status::Created => "created",
                            _ => "exited",
                        }},
                        "Running": running,
                        "OOMKilled": c.oom_killed,
                        "Pid": if running { c.pid.unwrap_or(0) } else { 0 },
                        "ExitCode": c.exit_code.unwrap_or(0),
                        "StartedAt": c.started,
                        "FinishedAt": c.finished,
                    },
                    "Image": c.image_id,
                    "Config": { "Image": c.image, "Labels": c.labels },
                }));
            }
            Err(e) => {
                errln!("berth: inspect {key}: {e:#}");
                failed = true;
            }
        }
    }
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed { 1 } else { 0 })
}

pub fn ps(engine: &Engine, args: &PsArgs) -> Result<u8> {
    let all = Containers::open(&engine.root)?.list()?;
    let shown: Vec<&Container> = all.iter().filter(|c| args.all || c.is_running()).collect();
    let id_of = |c: &Container| {
        if args.no_trunc {
            c.id.clone()
        } else {
            c.id[..12].to_string()
        }
    };
    if args.quiet {
        for c in shown {
            outln!("{}", id_of(c));
        }
        return Ok(0);
    }
    let command = |c: &Container| {
        let s = c.command.join(" ");
        let s = if !args.no_trunc && s.chars().count() > 20 {
            format!("{}…", s.chars().take(19).collect::<String>())
        } else {
            s
        };
        format!("\"{s}\"")
    };
    match args.format {
        Format::Table => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|c| {
                    vec![
                        id_of(c),
                        c.image.clone(),
                        command(c),
                        format!("{} ago", timefmt::since(&c.created)),
                        c.status_text(),
                        c.name.clone(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "NAMES",
                ],
                &rows,
            );
        }
        Format::Json => {
            for c in shown {
                let v = serde_json::json!({
                    "ID": id_of(c), "Image": c.image, "Command": command(c),
                    "CreatedAt": c.created, "Status": c.status_text(), "Names": c.name,
                    "State": if c.is_running() { "running" } else if c.status == Status::Created { "created" } else { "exited" },
                    "ExitCode": c.exit_code, "Labels": c.labels,
                });
                outln!("{v}");
            }
        }
    }
    Ok(0)
}
