//! `run`: a container from an image, in the foreground, as a sequence of
//! named steps — check the request → resolve the image → create the
//! container (record, directories) → prepare its rootfs → build its spec →
//! write its bundle → start it and wait → record the exit → tear down — so
//! that a detached start, an exec or a build step can take the ones it
//! needs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use berth_image::{ImageRecord, Platform, Progress};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use crate::logs::{LogWriter, Stream};
use crate::records::{self, ContainerRecord, Records, Status};
use crate::request::{CgroupsMode, IoMode, Network, PullPolicy, RunRequest};
use crate::rootless::{self, IdMaps};
use crate::spec::{self, ContainerSpec, Setup};
use crate::{Engine, remove, rootfs_prep, timefmt};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The container's full id.
    pub id: String,
    /// The container's name.
    pub name: String,
    /// Docker's exit code: the command's own, 128+N when signal N killed
    /// it; 125, 126 or 127 when the runtime could not run it.
    pub code: i32,
    /// Why the runtime could not run it, when it could not.
    pub error: Option<String>,
}

/// Runs `req` in the foreground and returns how it ended; pull progress
/// goes to `progress`. An error is berth's own (a flag refused, an image
/// not found, a mount that failed): nothing of the container is left.
pub fn run(engine: &Engine, req: &RunRequest, progress: &Progress) -> Result<Finished> {
    run_tapped(engine, req, progress, None)
}

/// [`run`], the container's output to `tap` alone when there is one
/// (`build`'s RUN steps: it is not logged either, the container is
/// removed once committed).
pub fn run_tapped(
    engine: &Engine,
    req: &RunRequest,
    progress: &Progress,
    tap: Option<&mut dyn berth_runtime::OutputTap>,
) -> Result<Finished> {
    // `-it` goes through a monitor, attached, so that the detach keys can
    // leave it running and `attach` can come back to it.
    let attached = !req.detach && req.io.tty && req.io.interactive;
    let held;
    let req = if attached {
        held = RunRequest {
            detach: true,
            ..req.clone()
        };
        &held
    } else {
        req
    };
    let plan = check(engine, req)?;
    let clock = Clock(Instant::now());
    remove::reap_dead_runs(engine)?;
    let (image, config) = resolve_image(engine, req, progress)?;
    clock.phase("image resolved");
    let mut c = create(engine, req, &plan, &image)?;
    let rootfs = prepare_rootfs(engine, &c, &image, plan.remap.as_ref(), req.rm)?;
    let spec = build_spec(engine, req, plan, &config, &mut c, rootfs)?;
    clock.phase("spec built");
    write_bundle(&c, &spec)?;
    clock.phase("bundle written");
    if attached {
        return start_attached(engine, c, req);
    }
    if req.detach {
        return start_detached(engine, c);
    }
    crate::network::connect(engine, &mut c.rec, &c.bundle)?;
    clock.phase("network connected");
    let ended = start_and_wait(engine, &mut c, &spec, req.io, &clock, tap);
    clock.phase("container ended");
    crate::network::disconnect(engine, &mut c.rec);
    clock.phase("network disconnected");
    let finished = record_exit(&mut c, ended);
    crate::events::died(engine, &c.rec);
    clock.phase("container exited");
    match tear_down(c, req.rm, &clock) {
        Ok(()) => Ok(finished),
        Err(e) => Err(match finished.error {
            Some(why) => e.context(format!("run {}: {why}", finished.name)),
            None => e,
        }),
    }
}

/// Timestamps of `run`'s steps, at debug level.
struct Clock(Instant);

impl Clock {
    fn phase(&self, what: &str) {
        tracing::debug!(
            "run: {what} at {:.2} ms",
            self.0.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// What the checks decided, before anything is pulled or made.
pub(crate) struct Plan {
    /// Whether the container gets a cgroup of its own.
    pub own_cgroup: bool,
    /// `--userns remap`'s id maps.
    pub remap: Option<IdMaps>,
    /// `--network container:NAME`: that container's id and the network
    /// namespace to join.
    pub network_of: Option<(String, PathBuf)>,
}

/// Checks what the front end could not: what depends on this host, its
/// configuration and berth's own rules. Nothing is pulled or made yet.
pub(crate) fn check(engine: &Engine, req: &RunRequest) -> Result<Plan> {
    if let Some(n) = &req.name {
        records::validate_name(n)?;
    }
    if req.rm && req.restart != records::RestartPolicy::No {
        bail!("conflicting options: cannot both remove and restart containers");
    }
    if crate::pasta::wanted(req) {
        crate::pasta::find()?;
    }
    crate::network::check(engine, req)?;
    let network_of = match &req.network {
        Network::Container(key) => {
            if req.hostname.is_some() {
                bail!("conflicting options: hostname and the network mode");
            }
            if !req.publish.is_empty() || req.publish_all {
                bail!("conflicting options: port publishing and the container type network mode");
            }
            Some(crate::network::namespace_of(engine, key)?)
        }
        _ => None,
    };
    if (!req.publish.is_empty() || req.publish_all) && req.network == Network::None {
        bail!("published ports need a network: use --network bridge (--network none has none)");
    }
    if !req.publish.is_empty() && req.network == Network::Host {
        berth_io::errln!("WARNING: Published ports are discarded when using host network mode");
    }
    let own_cgroup = wants_own_cgroup(engine, req)?;
    say_what_is_missing(req);
    berth_spec::resources::resources(&req.limits)?;
    berth_spec::capabilities::capability_set(req.privileged, &req.cap_add, &req.cap_drop)?;
    for u in &req.ulimits {
        crate::host::check_ulimit(u)?;
    }
    cgroups_path(req.cgroup_parent.as_deref(), "check")?;
    let remap = rootless::remap_maps(&req.userns)?;
    req.security
        .seccomp
        .check_syscall_names(berth_runtime::seccomp::known_syscall)?;
    Ok(Plan {
        own_cgroup,
        remap,
        network_of,
    })
}

/// Whether the container gets a cgroup of its own. Without a writable
/// cgroup filesystem (inside a container, say) one that asks for no limits
/// runs in berth's own cgroup, which still bounds it; one that asks for
/// limits is refused, never run without them.
fn wants_own_cgroup(engine: &Engine, req: &RunRequest) -> Result<bool> {
    let needs = first_cgroup_flag(req);
    let mode = req.cgroups.or(engine.config.cgroups);
    if mode == Some(CgroupsMode::Disabled) {
        if let Some(flag) = needs {
            bail!("{flag} needs a cgroup, and cgroups are disabled (--cgroups disabled)");
        }
        return Ok(false);
    }
    if rootless::active() {
        // Rootless decides by its delegation (spec::build drops the cgroup
        // of a container without limits).
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

/// The first flag that only a cgroup of the container's own can honour.
fn first_cgroup_flag(req: &RunRequest) -> Option<&'static str> {
    let (l, io) = (&req.limits, &req.limits.io);
    [
        (l.memory.is_some(), "--memory"),
        (l.memory_swap.is_some(), "--memory-swap"),
        (l.memory_reservation.is_some(), "--memory-reservation"),
        (l.cpus.is_some(), "--cpus"),
        (l.cpu_shares.is_some(), "--cpu-shares"),
        (l.cpuset_cpus.is_some(), "--cpuset-cpus"),
        (l.pids_limit.is_some(), "--pids-limit"),
        (io.weight.is_some(), "--blkio-weight"),
        (!io.read_bps.is_empty(), "--device-read-bps"),
        (!io.write_bps.is_empty(), "--device-write-bps"),
        (!io.read_iops.is_empty(), "--device-read-iops"),
        (!io.write_iops.is_empty(), "--device-write-iops"),
        (req.cgroup_parent.is_some(), "--cgroup-parent"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
}

/// At info level (off by default), what this run does without.
fn say_what_is_missing(req: &RunRequest) {
    if !tracing::enabled!(tracing::Level::INFO) || rootless::active() {
        return;
    }
    let host = crate::host::Host::get();
    if req.network != Network::Host && !host.has_cap("CAP_NET_ADMIN") {
        tracing::info!("no CAP_NET_ADMIN: the container's loopback interface stays down");
    }
    if host.has_cap("CAP_SYS_ADMIN") && host.pivot_root_refused() {
        tracing::info!("pivot_root is refused (seccomp): the root is switched by move and chroot");
    }
}

/// `linux.cgroupsPath` for container `id`: `/berth/<id>` by default (for a
/// rootless berth on v2, `<its delegated cgroup>/berth/<id>`); under
/// `--cgroup-parent`, `/PARENT/<id>`, or systemd's `PARENT:berth:<id>` when
/// the parent is a slice.
pub fn cgroups_path(parent: Option<&str>, id: &str) -> Result<String> {
    match parent.map(str::trim) {
        None | Some("") => match rootless::active()
            .then(rootless::delegated_cgroup)
            .flatten()
        {
            Some(delegated) => Ok(format!("/{delegated}/berth/{id}")),
            None => Ok(format!("/berth/{id}")),
        },
        Some(p) if p.ends_with(".slice") => {
            if p.contains('/') {
                bail!("invalid --cgroup-parent {p:?}: a systemd slice is a name, not a path");
            }
            Ok(format!("{p}:berth:{id}"))
        }
        Some(p) => {
            if p.split('/').any(|c| c == "..") {
                bail!("invalid --cgroup-parent {p:?}: must not contain ..");
            }
            Ok(format!("/{}/{id}", p.trim_matches('/')))
        }
    }
}

/// Finds the image locally or pulls it, as `--pull` says, and reads its
/// config. Like Docker, a local image of another platform than
/// `--platform` asks for is not the image asked for: `--pull missing`
/// pulls that platform.
pub(crate) fn resolve_image(
    engine: &Engine,
    req: &RunRequest,
    progress: &Progress,
) -> Result<(ImageRecord, ImageConfiguration)> {
    let want = req.platform.as_deref().map(Platform::parse).transpose()?;
    let found = engine.store.resolve(&req.image).ok();
    if found.is_none() {
        // A name that can never be pulled is said to be so first, as Docker does.
        berth_image::Reference::parse(&req.image)?;
    }
    let platform_of =
        |img: &ImageRecord| Platform::new(&img.os, &img.architecture, img.variant.as_deref());
    let (local, other) = match (found, &want) {
        (Some(img), Some(w)) if !w.matches(&platform_of(&img)) => (None, Some(img)),
        (found, _) => (found, None),
    };
    let need_pull = match req.pull {
        PullPolicy::Always => true,
        PullPolicy::Missing => local.is_none(),
        PullPolicy::Never => false,
    };
    let image = match (need_pull, local, other, want) {
        (false, Some(img), ..) => img,
        (false, None, Some(img), Some(w)) => bail!(
            "image {} is {} locally, not the {w} asked for, and --pull never was given",
            req.image,
            platform_of(&img)
        ),
        (false, ..) => bail!(
            "no such image {} locally and --pull never was given",
            req.image
        ),
        (true, local, ..) => {
            if local.is_none() {
                // Docker names it with its tag: 'busybox:latest'.
                let named = berth_image::Reference::parse(&req.image)
                    .map(|r| r.with_default_tag().familiar())
                    .unwrap_or_else(|_| req.image.clone());
                progress.status(&format!("Unable to find image '{named}' locally"));
            }
            let opts = engine.pull_options(req.platform.as_deref())?;
            rootfs_prep::pull(engine, &req.image, &opts, progress)?
        }
    };
    let config = engine.store.config(&image)?;
    Ok((image, config))
}

/// A container `run` has made: its record, its directories, and the guard
/// that removes it all unless disarmed.
pub(crate) struct Created<'e> {
    pub id: String,
    pub rec: ContainerRecord,
    pub records: Records,
    /// `<root>/containers/<id>`: record, rootfs mount point, upper dir.
    pub dir: PathBuf,
    /// `<exec root>/bundles/<id>`.
    pub bundle: PathBuf,
    pub teardown: Teardown<'e>,
}

/// Creates the container: a new id and name, its record (saved, so that
/// whatever happens next is found and cleaned up), its bundle directory.
pub(crate) fn create<'e>(
    engine: &'e Engine,
    req: &RunRequest,
    plan: &Plan,
    image: &ImageRecord,
) -> Result<Created<'e>> {
    let records = engine.records()?;
    let id = records::new_id()?;
    let me = std::process::id() as i32;
    let lock = records.lock()?;
    let name = match &req.name {
        Some(n) => {
            if let Some(other) = records.name_taken(n)? {
                return Err(records::NameConflict {
                    name: n.clone(),
                    id: other,
                }
                .into());
            }
            n.clone()
        }
        None => records::new_name(&records, &id)?,
    };
    let rec = ContainerRecord {
        id: id.clone(),
        name,
        image: req.image.clone(),
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
        cgroup: plan
            .own_cgroup
            .then(|| cgroups_path(req.cgroup_parent.as_deref(), &id))
            .transpose()?,
        supervisor: Some((me, berth_runtime::process::start_time(me).unwrap_or(0))),
        // Recorded before they are used, so that neither a prune nor the
        // clean-up after a crash can miss them (unmounting what is not
        // mounted yet is a no-op).
        snapshots: image.chain_ids().iter().map(|c| c.to_string()).collect(),
        rootfs_mounted: true,
        auto_remove: req.rm,
        labels: Default::default(),
        stop_signal: None,
        stop_timeout: req.stop_timeout,
        detached: req.detach,
        tty: req.io.tty,
        open_stdin: req.io.interactive,
        log: req.log.clone(),
        restart: req.restart,
        restart_count: 0,
        restarting: false,
        manually_stopped: false,
        paused: false,
        healthcheck: healthcheck(engine, req, image)?,
        health: None,
        network: crate::network::mode_of(engine, req, plan.network_of.as_ref())?,
        ports: crate::ports::requested(engine, req, image),
        published: Vec::new(),
        networks: crate::network::endpoints_of(engine, req)?,
        hostname: req.hostname.clone(),
    };
    // Saved twice more, at start and (unless --rm removes it) at exit: each
    // save is a new file, and on many hosts a freed block costs a
    // synchronous discard.
    records.save(&rec)?;
    drop(lock);
    let teardown = Teardown {
        engine,
        id: id.clone(),
        armed: true,
    };
    let dir = records.dir(&id);
    engine.exec_root_ready()?;
    let bundle = engine.bundle_of(&rec);
    std::fs::create_dir_all(bundle.parent().unwrap_or(&bundle))
        .and_then(|()| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&bundle)
        })
        .with_context(|| format!("create {}", bundle.display()))?;
    Ok(Created {
        id,
        rec,
        records,
        dir,
        bundle,
        teardown,
    })
}

/// The container's healthcheck: `--health-*` over the image's HEALTHCHECK.
fn healthcheck(
    engine: &Engine,
    req: &RunRequest,
    image: &ImageRecord,
) -> Result<Option<crate::health::Healthcheck>> {
    let from_image = engine
        .store
        .config_json(image)
        .ok()
        .and_then(|c| crate::health::Healthcheck::from_image_config(&c));
    let merged = crate::health::Healthcheck::merge(req.healthcheck.clone(), from_image);
    if let Some(h) = &merged {
        h.validate()?;
    }
    Ok(merged)
}

/// Cleans up a container that failed before or while running, unless disarmed.
pub(crate) struct Teardown<'e> {
    engine: &'e Engine,
    id: String,
    armed: bool,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = remove::remove_files(self.engine, &self.id, false)
        {
            tracing::warn!("clean up container {}: {e:#}", self.id);
        }
    }
}

/// Unpacks what the image still lacks and mounts the container's rootfs
/// (`volatile` for one removed at exit: no syncs of its writes); under
/// `--userns remap`, an id-mapped one. Returns its path.
pub(crate) fn prepare_rootfs(
    engine: &Engine,
    c: &Created<'_>,
    image: &ImageRecord,
    remap: Option<&IdMaps>,
    volatile: bool,
) -> Result<PathBuf> {
    let t0 = Instant::now();
    let lowers = rootfs_prep::prepare(engine, image)?;
    let rootfs = match remap {
        None => {
            let scratch = engine.scratch_dir(&c.id);
            rootfs_prep::mount_rootfs(&lowers, &c.dir, &scratch, volatile)?
        }
        Some(IdMaps { uids, gids }) => {
            let ns = berth_runtime::new_userns(uids, gids)
                .map_err(|e| anyhow::anyhow!("--userns: {}", e.message))?;
            let root = (uids[0].host_id(), gids[0].host_id());
            // The remapped root bind-mounts the bundle's files.
            std::os::unix::fs::chown(&c.bundle, Some(root.0), Some(root.1))
                .with_context(|| format!("chown {} to the remapped root", c.bundle.display()))?;
            berth_snapshot::overlay::mount_rootfs_idmapped(
                &c.dir,
                &lowers.dirs,
                std::os::fd::AsFd::as_fd(&ns),
                root,
                volatile,
            )?
            .path
        }
    };
    tracing::debug!("rootfs ready in {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);
    Ok(rootfs)
}

/// Writes the files the container binds in (its /etc files, berth's init)
/// and builds its final spec; the record takes the command, labels and
/// stop signal, and the container's `create` event is emitted.
fn build_spec(
    engine: &Engine,
    req: &RunRequest,
    plan: Plan,
    config: &ImageConfiguration,
    c: &mut Created<'_>,
    rootfs: PathBuf,
) -> Result<Spec> {
    let hostname = req
        .hostname
        .clone()
        .unwrap_or_else(|| c.id[..12].to_string());
    let net = match &req.network {
        Network::Bridge(n) => Some(crate::network::store::find(engine, n)?),
        _ => None,
    };
    // A user-defined network's containers ask its DNS server (on the
    // gateway), unless --dns says otherwise.
    let mut dns = req.dns.clone();
    if let Some(net) = net.as_ref().filter(|n| n.has_dns())
        && dns.servers.is_empty()
    {
        dns.servers.push(net.gateway()?.into());
    }
    let etc_mounts = crate::etc_files::write(
        &c.bundle,
        &hostname,
        req.network == Network::Host,
        &dns,
        net.and_then(|n| n.gateway).map(Into::into),
    )?;
    crate::pasta::forward_dns(req, &c.bundle)?;
    let init_binary = req.init.then(|| init_copy(&c.dir)).transpose()?;
    let setup = Setup {
        rootfs,
        hostname,
        etc_mounts,
        init_binary,
        cgroups_path: c.rec.cgroup.clone(),
        remap: plan.remap,
        no_pivot: req.no_pivot || engine.config.no_pivot,
        network_ns: match &req.network {
            Network::Bridge(_) => Some(crate::network::netns_path(engine, &c.id)),
            Network::Container(_) => plan.network_of.map(|(_, ns)| ns),
            _ => None,
        },
    };
    let ContainerSpec {
        spec,
        command,
        labels,
        stop_signal,
    } = spec::build(config, req, setup)?;
    c.rec.command = command;
    c.rec.labels = labels;
    c.rec.stop_signal = req.stop_signal.clone().or(stop_signal);
    // Now that the record has its labels (the image's and --label's).
    crate::events::container(engine, &c.rec, "create");
    Ok(spec)
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

/// Writes `config.json`: the bundle stays complete (a runtime can run it
/// as it is), while the runtime is handed the spec in memory rather than
/// parsing it back.
pub(crate) fn write_bundle(c: &Created<'_>, spec: &Spec) -> Result<()> {
    let path = c.bundle.join("config.json");
    std::fs::write(&path, serde_json::to_vec(spec)?)
        .with_context(|| format!("write {}", path.display()))
}

/// Creates the container in the runtime, starts it with berth's stdio
/// relayed (or a pty), forwards signals and waits for it; the record says
/// it runs (with its PID) before its command is released.
fn start_and_wait(
    engine: &Engine,
    c: &mut Created<'_>,
    spec: &Spec,
    io: IoMode,
    clock: &Clock,
    tap: Option<&mut dyn berth_runtime::OutputTap>,
) -> std::result::Result<berth_runtime::Exit, berth_runtime::Error> {
    let rio = berth_runtime::Io {
        interactive: io.interactive,
        ..Default::default()
    };
    let Created {
        id,
        rec,
        records,
        bundle,
        ..
    } = c;
    // A kept container's output is logged as a detached one's is, so that
    // `logs` shows it afterwards; a --rm one's goes with it, so it is not
    // (and keeps the spliced, copy-free relay); neither is one with
    // `--log-driver none`, nor one whose output goes to a tap of the caller's.
    let logged =
        tap.is_none() && !rec.auto_remove && !matches!(rec.log.driver, records::LogDriver::None);
    let mut log = match logged {
        false => None,
        true => {
            let path = crate::logs::log_path(&records.dir(id), id);
            match LogWriter::open(&path, &rec.log) {
                Ok(w) => Some(LogTap(w)),
                Err(e) => {
                    tracing::warn!("open the log of {id}: {e}");
                    None
                }
            }
        }
    };
    let on_start = |pid| {
        clock.phase("container started");
        rec.pid = Some(pid);
        rec.pid_start = berth_runtime::process::start_time(pid);
        rec.status = Status::Running;
        rec.started = Some(timefmt::now_rfc3339());
        if let Err(e) = records.save(rec) {
            tracing::warn!("record container start: {e:#}");
        }
        crate::events::container(engine, rec, "start");
    };
    let tap = tap.or(log.as_mut().map(|t| t as &mut dyn berth_runtime::OutputTap));
    let exit =
        berth_runtime::run_spec(id, bundle, spec, &engine.runtime_dir(), &rio, on_start, tap);
    if let Some(LogTap(mut w)) = log
        && let Err(e) = w.finish()
    {
        tracing::warn!("write the log of {id}: {e}");
    }
    exit
}

/// A foreground container's output into its json-file log.
struct LogTap(LogWriter);

impl berth_runtime::OutputTap for LogTap {
    fn output(&mut self, fd: u8, bytes: &[u8]) {
        let stream = if fd == 2 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        if let Err(e) = self.0.write(stream, bytes) {
            tracing::warn!("write the container's log: {e}");
        }
    }

    fn idle(&mut self) {
        if let Err(e) = self.0.flush() {
            tracing::warn!("write the container's log: {e}");
        }
    }
}

/// The record of how it ended (in memory; [`tear_down`] saves it).
fn record_exit(
    c: &mut Created<'_>,
    ended: std::result::Result<berth_runtime::Exit, berth_runtime::Error>,
) -> Finished {
    let rec = &mut c.rec;
    let (code, error) = match ended {
        Ok(exit) => {
            rec.oom_killed = exit.oom_killed;
            (exit.code, None)
        }
        Err(e) => (e.exit_code(), Some(e.message)),
    };
    rec.status = Status::Exited;
    rec.exit_code = Some(code);
    rec.pid = None;
    rec.finished = Some(timefmt::now_rfc3339());
    if rec.started.is_none() {
        rec.started = rec.finished.clone();
    }
    Finished {
        id: rec.id.clone(),
        name: rec.name.clone(),
        code,
        error,
    }
}

/// Hands the container to a monitor of its own and returns once its
/// command runs (code 0) or could not be run (Docker's 125/126/127 and
/// why; the monitor has recorded that and cleaned up).
fn start_detached(engine: &Engine, mut c: Created<'_>) -> Result<Finished> {
    c.records.save(&c.rec)?;
    let report = crate::monitor::spawn(engine, &c.id)?;
    // From here on the container is the monitor's, whatever it said.
    c.teardown.armed = false;
    let (code, error) = match report {
        crate::monitor::Report::Started { .. } => (0, None),
        crate::monitor::Report::Failed { code, message } => (code, Some(message)),
    };
    Ok(Finished {
        id: c.id,
        name: c.rec.name,
        code,
        error,
    })
}

/// [`start_detached`] with the caller attached before the command runs.
fn start_attached(engine: &Engine, mut c: Created<'_>, req: &RunRequest) -> Result<Finished> {
    c.records.save(&c.rec)?;
    let mut pending = crate::monitor::spawn_held(engine, &c.id)?;
    c.teardown.armed = false;
    let opts = crate::attach::AttachOptions {
        stdin: true,
        detach_keys: req.detach_keys.clone(),
        sig_proxy: true,
    };
    let session = crate::attach::Session::connect(engine, &c.rec, &opts)?;
    let (code, error) = match pending.report()? {
        crate::monitor::Report::Failed { code, message } => (code, Some(message)),
        crate::monitor::Report::Started { .. } => (session.run()?.unwrap_or(0), None),
    };
    Ok(Finished {
        id: c.id,
        name: c.rec.name,
        code,
        error,
    })
}

/// `create`: the container made (record, snapshots, bundle) but not
/// started; its rootfs is mounted again by `start`.
pub fn create_only(engine: &Engine, req: &RunRequest, progress: &Progress) -> Result<Finished> {
    let plan = check(engine, req)?;
    remove::reap_dead_runs(engine)?;
    let (image, config) = resolve_image(engine, req, progress)?;
    let mut c = create(engine, req, &plan, &image)?;
    let rootfs = prepare_rootfs(engine, &c, &image, plan.remap.as_ref(), req.rm)?;
    let spec = build_spec(engine, req, plan, &config, &mut c, rootfs)?;
    write_bundle(&c, &spec)?;
    rootfs_prep::unmount_rootfs(&c.dir)?;
    c.rec.rootfs_mounted = false;
    c.rec.supervisor = None;
    c.records.save(&c.rec)?;
    c.teardown.armed = false;
    Ok(Finished {
        id: c.id,
        name: c.rec.name,
        code: 0,
        error: None,
    })
}

/// Unmounts the rootfs; then, unless `rm`, keeps the record (`ps -a`
/// shows it and `rm` removes it) and drops the bundle, which served this
/// run only; with `rm`, removes it all. A `--rm` record is not saved
/// again, only removed: should that fail, it still names a dead
/// supervisor, and the next run's sweep cleans it up.
fn tear_down(mut c: Created<'_>, rm: bool, clock: &Clock) -> Result<()> {
    rootfs_prep::unmount_rootfs(&c.dir)?;
    c.rec.rootfs_mounted = false;
    if !rm {
        // Its bundle stays (in its own dir): `start` runs it again.
        c.records.save(&c.rec)?;
    }
    c.teardown.armed = rm;
    clock.phase("recorded");
    drop(c.teardown);
    clock.phase("removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cgroup_paths() {
        use super::cgroups_path as c;
        assert_eq!(c(None, "abc").unwrap(), "/berth/abc");
        assert_eq!(c(Some("/ci/jobs/"), "abc").unwrap(), "/ci/jobs/abc");
        assert_eq!(
            c(Some("user-1000.slice"), "abc").unwrap(),
            "user-1000.slice:berth:abc"
        );
        assert!(c(Some("../../x"), "abc").is_err());
    }
}
