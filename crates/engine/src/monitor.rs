//! A detached container's monitor: berth itself, re-executed as
//! `berth monitor ID [--held] --root R --exec-root E [--config C]` (the
//! front end routes that to [`main`] before anything else), one small process per container that outlives the command
//! that started it, as podman's conmon does, with no second program.
//!
//! The monitor creates the container (its PID 1 is the monitor's child),
//! holds its stdio (pipes, or the pty master with `-t`), writes every byte
//! of output to the log before it records the exit, waits for PID 1,
//! records exit code, finish time and OOM kill, applies the restart policy,
//! and serves `attach` on `<container dir>/attach.sock` ([`attach`]). It
//! sleeps in one epoll over a pidfd, the output, its clients and a
//! signalfd: no polling.
//!
//! A monitor that is killed takes its container with it: PID 1 keeps the
//! parent-death signal SIGKILL the runtime gives a held container (and
//! with it goes its PID namespace). The next berth command that looks
//! ([`crate::remove::reap_dead_runs`]) records the exit and unmounts.
//!
//! The caller learns how the start went from one line on the monitor's
//! stdout (a pipe), after which the monitor points it at /dev/null.

pub mod attach;
mod health;
mod serve;
pub mod warnings;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_runtime::signals::SignalFd;

use crate::logs::LogWriter;
use crate::records::{Records, RestartPolicy, Status};
use crate::{Engine, remove, rootfs_prep, timefmt};

/// The hidden subcommand a front end routes to [`main`].
pub const SUBCOMMAND: &str = "monitor";

/// How a detached start went, as its monitor reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The container's command runs; the host PID of its PID 1.
    Started { pid: i32 },
    /// It could not be run: Docker's exit code (125, 126, 127) and why.
    /// The monitor has recorded the exit and cleaned up.
    Failed { code: i32, message: String },
}

/// Starts the monitor of container `id`, whose record, bundle and mounted
/// rootfs are ready, and waits until it has started the container's
/// command or failed to.
pub fn spawn(engine: &Engine, id: &str) -> Result<Report> {
    let mut pending = Pending::spawn(engine, id, false)?;
    pending.report()
}

/// Like [`spawn`], for a caller that attaches before the container's
/// command runs (`start -a`, `run -it`): the monitor waits for the first
/// client (for a while) before it starts the container, so no output is
/// missed. Attach to the container, then call [`Pending::report`].
pub fn spawn_held(engine: &Engine, id: &str) -> Result<Pending> {
    let mut pending = Pending::spawn(engine, id, true)?;
    match pending.line()?.as_str() {
        "ready" => Ok(pending),
        other => bail!("the container's monitor said {other:?} instead of ready"),
    }
}

/// A monitor started by this process, whose report is still to be read.
pub struct Pending {
    out: std::process::ChildStdout,
    log_path: PathBuf,
    /// The first process, which only forks the monitor proper and exits:
    /// reaped once the report is in, off the path to it.
    first: std::process::Child,
}

impl Pending {
    pub fn spawn(engine: &Engine, id: &str, held: bool) -> Result<Pending> {
        let cdir = engine.records()?.dir(id);
        let log_path = cdir.join("monitor.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let mut cmd = std::process::Command::new("/proc/self/exe");
        std::os::unix::process::CommandExt::arg0(&mut cmd, "berth");
        cmd.args([SUBCOMMAND, id]);
        if held {
            cmd.arg("--held");
        }
        cmd.arg("--root").arg(&engine.root);
        cmd.arg("--exec-root").arg(&engine.exec_root);
        if let Some(c) = &engine.config_path {
            cmd.arg("--config").arg(c);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        let mut first = cmd.spawn().context("start the container's monitor")?;
        let out = first.stdout.take().context("the monitor's stdout")?;
        Ok(Pending {
            out,
            log_path,
            first,
        })
    }

    /// One line of the monitor's, bounded; empty at end of file.
    fn line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut b = [0u8];
        while line.len() < 64 * 1024 {
            match self.out.read(&mut b) {
                Ok(0) => break,
                Ok(_) if b[0] == b'\n' => break,
                Ok(_) => line.push(b[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => bail!("read the monitor's report: {e}"),
            }
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// How the start went.
    pub fn report(&mut self) -> Result<Report> {
        let line = self.line()?;
        let _ = self.first.wait();
        parse_report(&line).with_context(|| {
            format!(
                "the container's monitor ended without saying how the start went (see {})",
                self.log_path.display()
            )
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Never left a zombie, whatever became of the report.
        let _ = self.first.wait();
    }
}

fn parse_report(text: &str) -> Result<Report> {
    if let Some(pid) = text.strip_prefix("ok ") {
        return Ok(Report::Started {
            pid: pid.parse().context("bad pid in report")?,
        });
    }
    if let Some(rest) = text.strip_prefix("err ") {
        let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
        return Ok(Report::Failed {
            code: code.parse().context("bad code in report")?,
            message: message.to_string(),
        });
    }
    bail!("no report")
}

/// The monitor process of container `id` (`berth monitor ID`). Returns
/// when the container has ended for good; the front end exits with 0.
/// With `held`, it says `ready` and waits for a first attached client
/// (30 s at most) before it starts the container.
pub fn main(engine: &Engine, id: &str, held: bool) -> Result<()> {
    detach()?;
    fix_mmap_threshold();
    let mut m = Monitor::new(engine, id)?;
    if held {
        m.say_more("ready");
        m.attach.wait_for_client(Duration::from_secs(30));
    }
    let result = m.run();
    if let Err(e) = &result {
        tracing::error!("monitor of {id}: {e:#}");
    }
    m.finish();
    result
}

/// Leaves the caller: a grandchild that the caller need not reap, in a
/// session of its own (no terminal's signals reach it).
fn detach() -> Result<()> {
    // SAFETY: the monitor is single-threaded here (nothing has started a
    // thread); the parent only calls _exit, the child goes on as usual.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => {}
        p if p < 0 => bail!("monitor: fork: {}", std::io::Error::last_os_error()),
        // SAFETY: _exit is always safe; nothing of the parent needs flushing.
        _ => unsafe { libc::_exit(0) },
    }
    rustix::process::setsid().context("monitor: setsid")?;
    // Orphans of the container's processes (under --pid host, say) are
    // ours to reap, not init's.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    Ok(())
}

/// Docker's restart rules: never after `stop`/`kill`; `on-failure`
/// after a non-zero exit, up to its count; `always` and `unless-stopped`
/// after any exit.
fn restarts(r: &crate::records::ContainerRecord, code: i32) -> bool {
    !r.manually_stopped
        && match r.restart {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (max_retries == 0 || r.restart_count < max_retries)
            }
        }
}

/// What the monitor decides after the container's command exited.
pub(super) enum Next {
    Restart(Duration),
    Stop,
}

pub(crate) struct Monitor<'e> {
    engine: &'e Engine,
    records: Records,
    id: String,
    cdir: PathBuf,
    bundle: PathBuf,
    log: LogWriter,
    /// The caller's pipe, until the first start is reported.
    report: Option<OwnedFd>,
    signals: SignalFd,
    attach: attach::Server,
    /// The last restart back-off (zero before the first).
    backoff: Duration,
    /// When the container's command was last started.
    began: Instant,
    /// Why the first start failed, for the caller once cleaned up.
    failure: Option<String>,
    /// Its health checks, while it runs (None without a healthcheck).
    health: Option<health::Checker>,
}

/// Signals the monitor handles as events: SIGTERM ends a back-off early
/// (see [`crate::lifecycle`]'s stop), SIGCHLD reaps adopted orphans.
const SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD];

impl<'e> Monitor<'e> {
    fn new(engine: &'e Engine, id: &str) -> Result<Monitor<'e>> {
        let records = engine.records()?;
        let me = std::process::id() as i32;
        let me_start = berth_runtime::process::start_time(me).unwrap_or(0);
        // Ours from now on: the caller may exit once it has our report.
        let rec = records.update(id, |c| {
            c.supervisor = Some((me, me_start));
            Ok(c.clone())
        })?;
        let cdir = records.dir(id);
        let bundle = engine.bundle_of(&rec);
        let log = LogWriter::open(&crate::logs::log_path(&cdir, id), &rec.log)
            .context("open the container's log")?;
        let report = rustix::io::dup(std::io::stdout()).ok();
        let null = std::fs::File::open("/dev/null")?;
        rustix::stdio::dup2_stdout(&null).context("monitor: stdout")?;
        let signals = SignalFd::block(&SIGNALS).context("monitor: signalfd")?;
        let attach = attach::Server::bind(&cdir)?;
        Ok(Monitor {
            engine,
            records,
            id: id.to_string(),
            cdir,
            bundle,
            log,
            report,
            signals,
            attach,
            backoff: Duration::ZERO,
            began: Instant::now(),
            failure: None,
            health: None,
        })
    }

    /// Runs the container until it ends for good: the first start
    /// (reported to the caller), then as many restarts as its policy asks.
    fn run(&mut self) -> Result<()> {
        loop {
            self.began = Instant::now();
            let next = match self.start_once() {
                Ok(c) => self.serve(c)?,
                Err(e) => {
                    let code = e.exit_code();
                    let first = self.report.is_some();
                    // A command that cannot run is not restarted from the
                    // first start: `run -d` reports it instead.
                    let next = self.record_exit(code, false, !first)?;
                    if first {
                        // Said once cleaned up (see finish): a caller that
                        // hears of the failure finds nothing left mounted.
                        self.failure = Some(format!("err {code} {}", e.message.replace('\n', " ")));
                        return Ok(());
                    }
                    tracing::warn!("restart {}: {}", self.id, e.message);
                    next
                }
            };
            match next {
                Next::Stop => return Ok(()),
                Next::Restart(delay) => {
                    if !self.back_off(delay)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Creates and starts the container from its bundle, recorded running
    /// (with its PID) before its command is released.
    fn start_once(&mut self) -> berth_runtime::Result<berth_runtime::Container> {
        let mut rec = self.records.load(&self.id).map_err(setup_error)?;
        // Its network lives while it runs: made for each start, taken
        // away after each exit (serve), or here when it does not start.
        crate::network::connect(self.engine, &mut rec, &self.bundle).map_err(setup_error)?;
        let started = self.create_and_start(&rec);
        if started.is_err() {
            self.disconnect();
        }
        started
    }

    /// Takes the container's network away, and its published ports out of
    /// its record.
    pub(super) fn disconnect(&self) {
        if let Ok(mut rec) = self.records.load(&self.id) {
            let had_ports = !rec.published.is_empty();
            crate::network::disconnect(self.engine, &mut rec);
            if had_ports {
                let _ = self.records.update(&self.id, |r| {
                    r.published.clear();
                    Ok(())
                });
            }
        }
    }

    fn create_and_start(
        &mut self,
        rec: &crate::records::ContainerRecord,
    ) -> berth_runtime::Result<berth_runtime::Container> {
        let io = berth_runtime::Io {
            interactive: rec.open_stdin,
            ..Default::default()
        };
        // Read for each start rather than kept: the monitor idles for as
        // long as the container runs, and a spec with a seccomp profile is
        // tens of KiB.
        let spec = berth_runtime::load_spec(&self.bundle)?;
        let mut c = berth_runtime::Container::create_held(
            &self.id,
            &self.bundle,
            &spec,
            &self.engine.runtime_dir(),
            &io,
        )?;
        drop(spec);
        let pid = c.pid();
        self.records
            .update(&self.id, |r| {
                r.pid = Some(pid);
                r.pid_start = berth_runtime::process::start_time(pid);
                r.status = Status::Running;
                r.restarting = false;
                r.started = Some(timefmt::now_rfc3339());
                r.finished = None;
                r.exit_code = None;
                r.oom_killed = false;
                // Docker's: each start is checked anew, from `starting`
                // (the log of earlier runs kept).
                if r.healthcheck.as_ref().is_some_and(|h| h.active()) {
                    let h = r.health.get_or_insert_with(Default::default);
                    h.status = crate::health::HealthStatus::Starting;
                    h.failing_streak = 0;
                }
                Ok(())
            })
            .map_err(setup_error)?;
        if let Err(e) = c.start() {
            let _ = c.delete(true);
            return Err(e);
        }
        crate::events::container(self.engine, rec, "start");
        self.health = health::Checker::new(rec.healthcheck.as_ref(), Instant::now());
        if self.report.is_some() {
            self.say(&format!("ok {pid}"));
        }
        Ok(c)
    }

    /// A line to the caller before the report.
    fn say_more(&mut self, line: &str) {
        if let Some(fd) = &self.report {
            let _ = rustix::io::write(fd, format!("{line}\n").as_bytes());
        }
    }

    /// Tells the caller how the first start went, once.
    fn say(&mut self, line: &str) {
        if let Some(fd) = self.report.take() {
            let _ = rustix::io::write(&fd, format!("{line}\n").as_bytes());
        }
    }

    /// The exit, in the record (code, time, OOM kill), with what the
    /// restart policy makes of it, in one update: a `wait` never sees the
    /// exit of a container about to restart as its end.
    pub(super) fn record_exit(
        &mut self,
        code: i32,
        oom_killed: bool,
        may_restart: bool,
    ) -> Result<Next> {
        if let Err(e) = self.log.finish() {
            tracing::warn!("write the log of {}: {e}", self.id);
        }
        let ran = self.began.elapsed();
        let rec = self.records.update(&self.id, |r| {
            r.status = Status::Exited;
            r.exit_code = Some(code);
            r.oom_killed = oom_killed;
            r.pid = None;
            r.paused = false;
            r.finished = Some(timefmt::now_rfc3339());
            if r.started.is_none() {
                r.started = r.finished.clone();
            }
            r.restarting = may_restart && restarts(r, code);
            if r.restarting {
                r.restart_count += 1;
            }
            Ok(r.clone())
        })?;
        crate::events::died(self.engine, &rec);
        if !rec.restarting {
            return Ok(Next::Stop);
        }
        // Docker's back-off: 100 ms, doubling to a minute; from 100 ms
        // again after a run of 10 s.
        if ran >= Duration::from_secs(10) {
            self.backoff = Duration::ZERO;
        }
        self.backoff = if self.backoff.is_zero() {
            Duration::from_millis(100)
        } else {
            (self.backoff * 2).min(Duration::from_secs(60))
        };
        Ok(Next::Restart(self.backoff))
    }

    /// Waits out the back-off; false when a `stop` (or `rm -f`) ended it.
    fn back_off(&mut self, delay: Duration) -> Result<bool> {
        let deadline = Instant::now() + delay;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(true);
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.signals,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec::try_from(left).ok();
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            while let Some(sig) = self.signals.next() {
                self.reap_orphans(sig);
            }
            if self.records.load(&self.id)?.manually_stopped {
                return Ok(false);
            }
        }
    }

    /// Reaps adopted orphans (of `--pid host` containers), once PID 1 has
    /// been waited for: a wait for any child must not take PID 1 from the
    /// runtime, which waits for it through its pidfd.
    fn reap_orphans(&self, sig: i32) {
        if sig != libc::SIGCHLD {
            return;
        }
        use rustix::process::{WaitId, WaitIdOptions, waitid};
        while let Ok(Some(_)) = waitid(WaitId::All, WaitIdOptions::EXITED | WaitIdOptions::NOHANG) {
        }
    }

    /// Unmounts the rootfs and marks the container ended for good (or
    /// removes it, under `--rm`).
    fn finish(&mut self) {
        self.attach.close();
        self.disconnect();
        if let Err(e) = rootfs_prep::unmount_rootfs(&self.cdir) {
            tracing::warn!("unmount the rootfs of {}: {e:#}", self.id);
        }
        let rec = self.records.update(&self.id, |r| {
            r.rootfs_mounted = false;
            r.restarting = false;
            if r.status != Status::Exited {
                r.status = Status::Exited;
                r.finished.get_or_insert_with(timefmt::now_rfc3339);
            }
            Ok(r.clone())
        });
        if let Ok(rec) = rec
            && rec.auto_remove
            && let Err(e) = remove::remove_files(self.engine, &self.id, false)
        {
            tracing::warn!("remove {}: {e:#}", self.id);
        }
        let failure = self.failure.take();
        self.say(
            failure
                .as_deref()
                .unwrap_or("err 125 the monitor stopped before the container started"),
        );
    }
}

/// Gives the kernel back the memory that set-up used and no longer needs:
/// a monitor idles for as long as its container runs, and what it keeps
/// resident is what every detached container costs. Free heap pages go
/// (malloc_trim), and the stack pages below the deepest the monitor's
/// loop goes (set-up's, clap's and the runtime's frames were deeper).
pub(super) fn release_free_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some(low) = stack_low() else {
        return;
    };
    // Nothing below the stack pointer is live (no signal handlers run on
    // it: the monitor takes signals from a signalfd); only madvise's own
    // frame, called from here, must stay.
    const KEEP: usize = 16 * 1024;
    let page = 4096;
    let top = (sp.saturating_sub(KEEP)) & !(page - 1);
    if top > low {
        // SAFETY: [low, top) is this thread's stack below every live
        // frame (madvise's is above sp - KEEP); MADV_DONTNEED only drops
        // those pages, which fault back in as zeros if ever used again.
        unsafe {
            libc::madvise(low as *mut libc::c_void, top - low, libc::MADV_DONTNEED);
        }
    }
}

/// Makes every allocation of 128 KiB or more a mapping of its own, given
/// back to the kernel when freed. glibc would otherwise raise the
/// threshold after the first such free, and a dropped output buffer would
/// stay in the heap, resident, for as long as the container idles.
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; the process is
    // single-threaded here.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// The lowest address of the main thread's stack mapping.
fn stack_low() -> Option<usize> {
    let maps = berth_io::read_capped_string(
        std::path::Path::new("/proc/self/maps"),
        berth_io::MIB,
        "maps",
    )
    .ok()?;
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let (range, _) = line.split_once(' ')?;
    let (low, _) = range.split_once('-')?;
    usize::from_str_radix(low, 16).ok()
}

fn setup_error(e: anyhow::Error) -> berth_runtime::Error {
    berth_runtime::Error::setup(format!("{e:#}"))
}
