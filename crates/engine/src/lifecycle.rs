//! A container's life after `create` or `run -d`: start, stop, kill,
//! restart, wait, pause and unpause. The container's monitor
//! ([`crate::monitor`]) owns its process and records its exit; these
//! commands signal the process (by pidfd, never by a bare PID), mark the
//! record under its lock, and wait for the monitor to have recorded
//! what they caused.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_runtime::process::Process;

use crate::attach::{AttachOptions, Session};
use crate::monitor::{self, Report};
use crate::records::{ContainerRecord, Status};
use crate::{Engine, remove, rootfs_prep};

/// Docker's default grace before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: u32 = 10;

/// The error Docker gives for a container that does not run.
fn not_running(c: &ContainerRecord) -> anyhow::Error {
    anyhow::anyhow!("container {} is not running", c.id)
}

/// Starts a created or exited container (`start`): mounts its rootfs again
/// and hands it to a new monitor. A running one is left as it is.
pub fn start(engine: &Engine, key: &str) -> Result<Report> {
    match claim(engine, key)? {
        None => Ok(Report::Started { pid: 0 }),
        Some(c) => launch(engine, &c, false, |_| Ok(())).map(|(r, ())| r),
    }
}

/// How a start with the caller attached ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// The command could not be run: Docker's code and why.
    Failed { code: i32, message: String },
    /// It ran and exited with this code.
    Exited(i32),
    /// The caller detached (or lost the monitor); it runs on.
    Detached,
}

/// `start -a`: like [`start`], attached before the command runs, so no
/// output is missed; returns when it exits or the caller detaches.
pub fn start_attached(engine: &Engine, key: &str, opts: &AttachOptions) -> Result<Attached> {
    let Some(c) = claim(engine, key)? else {
        // Running already: attach to it as it is.
        return Ok(match crate::attach::attach(engine, key, opts)? {
            Some(code) => Attached::Exited(code),
            None => Attached::Detached,
        });
    };
    let (report, session) = launch(engine, &c, true, |c| Session::connect(engine, c, opts))?;
    match report {
        Report::Failed { code, message } => Ok(Attached::Failed { code, message }),
        Report::Started { .. } => Ok(match session.run()? {
            Some(code) => Attached::Exited(code),
            None => Attached::Detached,
        }),
    }
}

/// Claims a stopped container for a start, under the records lock, so two
/// starts never both run it; None when it runs already.
fn claim(engine: &Engine, key: &str) -> Result<Option<ContainerRecord>> {
    remove::reap_dead_runs(engine)?;
    let records = engine.records()?;
    let c = records.find(key)?;
    if c.paused && c.is_running() {
        bail!("cannot start a paused container, try unpause instead");
    }
    if !c.is_running() && !c.restarting {
        // A monitor still finishing (unmounting, recording) after its
        // container exited: wait for it, as a `start` after `wait` must work.
        wait_for_monitor(&c)?;
    }
    let me = std::process::id() as i32;
    let me_start = berth_runtime::process::start_time(me).unwrap_or(0);
    records.update(&c.id, |r| {
        if r.is_running() || r.supervisor_alive() {
            return Ok(None);
        }
        r.supervisor = Some((me, me_start));
        r.manually_stopped = false;
        r.restart_count = 0;
        r.rootfs_mounted = true;
        Ok(Some(r.clone()))
    })
}

/// Mounts the claimed container's rootfs and starts its monitor; with
/// `held`, the monitor waits until `attach` has connected.
fn launch<T>(
    engine: &Engine,
    c: &ContainerRecord,
    held: bool,
    attach: impl FnOnce(&ContainerRecord) -> Result<T>,
) -> Result<(Report, T)> {
    let records = engine.records()?;
    let result = mount_again(engine, c).and_then(|()| {
        let mut pending = match held {
            true => monitor::spawn_held(engine, &c.id)?,
            false => monitor::Pending::spawn(engine, &c.id, false)?,
        };
        let attached = attach(c)?;
        Ok((pending.report()?, attached))
    });
    if result.is_err() {
        let _ = rootfs_prep::unmount_rootfs(&records.dir(&c.id));
        let _ = records.update(&c.id, |r| {
            r.supervisor = None;
            r.rootfs_mounted = false;
            Ok(())
        });
    }
    result
}

/// Mounts a stopped container's rootfs again over its kept upper dir.
fn mount_again(engine: &Engine, c: &ContainerRecord) -> Result<()> {
    let records = engine.records()?;
    if !c.detached {
        // Run in the foreground: from now on a monitor looks after it.
        // (Records from before foreground bundles were kept have none.)
        if !engine.bundle_of(c).join("config.json").exists() {
            bail!(
                "container {} was run in the foreground and cannot be started again; run it with -d or create it",
                c.name
            );
        }
        records.update(&c.id, |r| {
            r.detached = true;
            Ok(())
        })?;
    }
    let image = engine
        .store
        .resolve(&c.image_id)
        .with_context(|| format!("the image of container {} ({})", c.name, c.image))?;
    let lowers = rootfs_prep::prepare(engine, &image)?;
    // Waits for a `cp` that holds the stopped container's filesystem.
    let _fs = records.fs_lock(&c.id)?;
    rootfs_prep::mount_rootfs(
        &lowers,
        &records.dir(&c.id),
        &engine.scratch_dir(&c.id),
        c.auto_remove,
    )?;
    Ok(())
}

/// Stops a container (`stop`): its stop signal, then SIGKILL after
/// `timeout` seconds (None: its `--stop-timeout`, else 10); no restart
/// policy brings it back. Returns once its exit is recorded.
pub fn stop(engine: &Engine, key: &str, timeout: Option<u32>, signal: Option<i32>) -> Result<()> {
    let records = engine.records()?;
    let c = records.find(key)?;
    let c = records.update(&c.id, |r| {
        r.manually_stopped = true;
        Ok(r.clone())
    })?;
    let secs = timeout.or(c.stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
    let sig = match signal {
        Some(s) => s,
        None => stop_signal(&c)?,
    };
    end_backoff(&c);
    let Some(p) = open_pid1(&c)? else {
        return wait_for_monitor(&c);
    };
    if c.paused {
        thaw(&c)?;
    }
    // Each kill is recorded before it is sent: the monitor records the
    // death it causes, and that must come after.
    crate::events::container_with(engine, &c, "kill", &[("signal", &sig.to_string())]);
    let _ = p.signal(sig);
    if !p.wait_exit(Duration::from_secs(u64::from(secs))) {
        crate::events::container_with(engine, &c, "kill", &[("signal", "9")]);
        let _ = p.signal(libc::SIGKILL);
        p.wait_exit(Duration::from_secs(10));
    }
    wait_for_monitor(&c)?;
    crate::events::container(engine, &c, "stop");
    Ok(())
}

/// The container's stop signal as a number: its own (`--stop-signal` or
/// the image's StopSignal), else SIGTERM.
fn stop_signal(c: &ContainerRecord) -> Result<i32> {
    match &c.stop_signal {
        Some(s) => parse_signal(s),
        None => Ok(libc::SIGTERM),
    }
}

/// A signal by Docker's names (`SIGTERM`, `TERM`, `term`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal: {s}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => match name.strip_prefix("RTMIN+").map(str::parse::<i32>) {
            Some(Ok(k)) if (0..=30).contains(&k) => libc::SIGRTMIN() + k,
            _ => bail!("invalid signal: {s}"),
        },
    };
    Ok(n)
}

/// Sends `sig` to a running container's PID 1 (`kill`); no restart
/// policy brings it back if it dies of it, as with Docker.
pub fn kill(engine: &Engine, key: &str, sig: i32) -> Result<()> {
    let records = engine.records()?;
    let c = records.find(key)?;
    let Some(p) = open_pid1(&c)? else {
        return Err(not_running(&c));
    };
    records.update(&c.id, |r| {
        r.manually_stopped = true;
        Ok(())
    })?;
    // Recorded before it is sent, so the death it causes comes after it.
    crate::events::container_with(engine, &c, "kill", &[("signal", &sig.to_string())]);
    p.signal(sig)
        .with_context(|| format!("kill container {}", c.name))?;
    Ok(())
}

/// `restart`: stop (if running), then start.
pub fn restart(engine: &Engine, key: &str, timeout: Option<u32>) -> Result<Report> {
    stop(engine, key, timeout, None)?;
    let report = start(engine, key)?;
    if let (Report::Started { .. }, Ok(c)) = (&report, engine.records()?.find(key)) {
        crate::events::container(engine, &c, "restart");
    }
    Ok(report)
}

/// Blocks until the container is not running (and not about to be
/// restarted) and returns its exit code (`wait`).
pub fn wait(engine: &Engine, key: &str) -> Result<i32> {
    let records = engine.records()?;
    let id = records.find(key)?.id;
    loop {
        let c = records.load(&id)?;
        // The record of a --rm container goes with its exit; its monitor
        // says the exit code on its socket first. (Others are waited for
        // through their record, across restarts.)
        if c.detached
            && c.auto_remove
            && c.status == Status::Running
            && !c.restarting
            && c.supervisor_alive()
            && let Some(code) = exit_from_monitor(&records.dir(&id))
        {
            return Ok(code);
        }
        if let Some(p) = open_pid1(&c)? {
            // Sleeps until PID 1 exits (a pidfd poll); the monitor then records it.
            while !p.wait_exit(Duration::from_secs(3600)) {}
        }
        if c.restarting || (c.status == Status::Running && c.supervisor_alive()) {
            // Between PID 1's exit and the monitor's record, or in a back-off.
            wait_for_record_change(&records, &c)?;
            continue;
        }
        if c.status == Status::Created && !c.supervisor_alive() {
            // Docker's wait on a created container waits for it to run and exit.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return Ok(c.exit_code.unwrap_or(0));
    }
}

/// Listens on the monitor's attach socket (output read and dropped) until
/// it says the container's exit code; None if it closes without one (it
/// had already said it, or it was killed).
fn exit_from_monitor(cdir: &std::path::Path) -> Option<i32> {
    use crate::monitor::attach::{self as wire, next_frame};
    use std::io::Read;
    let mut sock = wire::connect(cdir).ok()?;
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match sock.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        while let Some(frame) = next_frame(&mut pending) {
            match frame {
                Ok((wire::EXIT, p)) if p.len() == 4 => {
                    return Some(i32::from_be_bytes([p[0], p[1], p[2], p[3]]));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Sleeps until the record differs from `c` (the monitor wrote it), or
/// its monitor is gone.
fn wait_for_record_change(records: &crate::records::Records, c: &ContainerRecord) -> Result<()> {
    let before = serde_json::to_vec(c)?;
    let mut delay = Duration::from_millis(1);
    loop {
        let now = records.load(&c.id)?;
        if serde_json::to_vec(&now)? != before || !now.supervisor_alive() {
            return Ok(());
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Freezes (`pause`) or thaws (`unpause`) every process of the container
/// through its cgroup's freezer.
pub fn pause(engine: &Engine, key: &str, frozen: bool) -> Result<()> {
    let records = engine.records()?;
    let c = records.find(key)?;
    if !c.is_running() {
        bail!("container {} is not running", c.id);
    }
    match (frozen, c.paused) {
        (true, true) => bail!("container {} is already paused", c.id),
        (false, false) => bail!("container {} is not paused", c.id),
        _ => {}
    }
    let cg = cgroup_of(&c)?;
    if frozen {
        cg.ensure_freezer()
            .with_context(|| format!("pause container {}", c.name))?;
    }
    cg.freeze(frozen).with_context(|| {
        format!(
            "{} container {}",
            if frozen { "pause" } else { "unpause" },
            c.name
        )
    })?;
    records.update(&c.id, |r| {
        r.paused = frozen;
        Ok(())
    })?;
    crate::events::container(engine, &c, if frozen { "pause" } else { "unpause" });
    Ok(())
}

fn thaw(c: &ContainerRecord) -> Result<()> {
    cgroup_of(c)?.freeze(false).context("thaw before stopping")
}

fn cgroup_of(c: &ContainerRecord) -> Result<berth_runtime::cgroups::Cgroup> {
    let Some(path) = &c.cgroup else {
        bail!(
            "container {} has no cgroup of its own, and pause needs one",
            c.name
        );
    };
    let layout = berth_runtime::cgroups::Layout::detect().context("find the cgroup filesystems")?;
    if crate::rootless::active() && !layout.is_v2() {
        bail!(
            "pause needs cgroup v2 for a rootless container (cgroup v1 is not delegated to users)"
        );
    }
    berth_runtime::cgroups::Cgroup::new(layout, path).context("find the container's cgroup")
}

/// The container's PID 1, if it still runs.
fn open_pid1(c: &ContainerRecord) -> Result<Option<Process>> {
    if c.status != Status::Running {
        return Ok(None);
    }
    match (c.pid, c.pid_start) {
        (Some(pid), Some(start)) => Ok(Process::open(pid, start)?),
        _ => Ok(None),
    }
}

/// A monitor in its restart back-off wakes up on SIGTERM, finds the
/// container marked stopped, and ends.
fn end_backoff(c: &ContainerRecord) {
    if let Some((pid, start)) = c.supervisor
        && c.restarting
    {
        let _ = berth_runtime::process::signal(pid, start, libc::SIGTERM);
    }
}

/// Waits (bounded) until the monitor has recorded the exit and ended.
fn wait_for_monitor(c: &ContainerRecord) -> Result<()> {
    let Some((pid, start)) = c.supervisor else {
        return Ok(());
    };
    if let Some(m) = Process::open(pid, start)? {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !m.wait_exit(Duration::from_secs(1)) {
            if Instant::now() > deadline {
                bail!("the monitor of container {} did not end", c.name);
            }
        }
    }
    Ok(())
}

/// Starts, after a reboot (or whenever a boot unit calls it), every
/// container whose restart policy asks to run again, as Docker's daemon
/// does when it starts: `always` ones, `unless-stopped` ones not stopped
/// by hand, `on-failure` ones not stopped by hand whose last exit was a
/// failure (a reboot ends a running one with SIGKILL: 137). Returns the
/// names started, and the failures.
pub fn boot(engine: &Engine) -> Result<Vec<(String, Result<()>)>> {
    remove::reap_dead_runs(engine)?;
    let mut out = Vec::new();
    for c in engine.records()?.list()? {
        if c.is_running() || c.supervisor_alive() {
            continue;
        }
        let wanted = match c.restart {
            crate::records::RestartPolicy::No => false,
            crate::records::RestartPolicy::Always => true,
            crate::records::RestartPolicy::UnlessStopped => !c.manually_stopped,
            crate::records::RestartPolicy::OnFailure { .. } => {
                !c.manually_stopped && c.exit_code.is_some_and(|x| x != 0)
            }
        };
        if wanted {
            let r = start(engine, &c.id).and_then(|r| match r {
                Report::Started { .. } => Ok(()),
                Report::Failed { message, .. } => Err(anyhow::anyhow!(message)),
            });
            out.push((c.name.clone(), r));
        }
    }
    Ok(out)
}
