//! Health checks while the container runs, in the monitor's one poll: a
//! timer (the poll's timeout) starts each check as a detached exec whose
//! stdout and stderr come back on one pipe; its pidfd and that pipe join
//! the poll; a check past its timeout is killed (with whatever it
//! started); each result goes to the record's State.Health. Docker's
//! schedule: the first check an interval after the start (the start
//! interval while starting inside the start period), each next one an
//! interval after the previous ended.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use berth_runtime::DetachedStdio;
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, WaitIdStatus, waitid};

use super::Monitor;
use crate::health::{HealthResult, HealthStatus, Healthcheck, MAX_OUTPUT, go_duration};
use crate::timefmt;

/// The checks of one run of the container.
pub(super) struct Checker {
    hc: Healthcheck,
    /// When the container's command started (for the start period).
    began: Instant,
    /// When the next check starts, while none runs.
    next: Instant,
    probe: Option<Probe>,
    status: HealthStatus,
}

/// A check that runs.
struct Probe {
    pid: i32,
    pidfd: OwnedFd,
    output: Option<OwnedFd>,
    out: Vec<u8>,
    truncated: bool,
    start: String,
    started: Instant,
    in_start_period: bool,
    timed_out: bool,
}

impl Checker {
    /// The checks of a container just started; None when it has none.
    pub(super) fn new(hc: Option<&Healthcheck>, began: Instant) -> Option<Checker> {
        let hc = hc.filter(|h| h.active())?.clone();
        let mut c = Checker {
            hc,
            began,
            next: began,
            probe: None,
            status: HealthStatus::Starting,
        };
        c.next = began + c.interval(began);
        Some(c)
    }

    /// Docker's getInterval: the start interval while starting inside the
    /// start period, else the interval.
    fn interval(&self, now: Instant) -> Duration {
        if self.status == HealthStatus::Starting
            && now.duration_since(self.began) < self.hc.start_period()
        {
            self.hc.start_interval()
        } else {
            self.hc.interval()
        }
    }

    /// How long the monitor may sleep before something is due here.
    pub(super) fn poll_timeout(&self) -> Duration {
        let now = Instant::now();
        match &self.probe {
            // Killed: its pidfd says when it is gone.
            Some(p) if p.timed_out => Duration::from_secs(3600),
            Some(p) => (p.started + self.hc.timeout()).saturating_duration_since(now),
            None => self.next.saturating_duration_since(now),
        }
    }

    /// The running check's pidfd and output, for the poll.
    pub(super) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let Some(p) = &self.probe else {
            return Vec::new();
        };
        let mut fds = vec![p.pidfd.as_fd()];
        fds.extend(p.output.as_ref().map(|o| o.as_fd()));
        fds
    }
}

impl Probe {
    /// Takes what the check wrote: its first [`MAX_OUTPUT`] bytes kept, the
    /// rest read and dropped. A bounded number of reads per wake-up; the
    /// poll comes back for more.
    fn read(&mut self) {
        let Some(fd) = &self.output else {
            return;
        };
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    self.output = None;
                    return;
                }
                Ok(n) => {
                    let keep = n.min(MAX_OUTPUT - self.out.len());
                    self.out.extend_from_slice(&buf[..keep]);
                    self.truncated |= keep < n;
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    self.output = None;
                    return;
                }
            }
        }
    }

    /// Kills the check and what it started (its session's process group:
    /// the check is unreaped, so the group's id is still its own).
    fn kill(&mut self) {
        if let Some(pid) = Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
        self.timed_out = true;
    }

    /// Its exit code (Docker's: 128+N for signal N) once it has exited,
    /// reaped; None while it runs.
    fn reap(&self, block: bool) -> Option<i32> {
        let mut opts = WaitIdOptions::EXITED;
        if !block {
            opts |= WaitIdOptions::NOHANG;
        }
        loop {
            match waitid(WaitId::PidFd(self.pidfd.as_fd()), opts) {
                Err(Errno::INTR) => continue,
                Ok(Some(st)) => return Some(exit_code(&st)),
                Ok(None) => return None,
                // Not ours to wait for (never so): count it gone.
                Err(_) => return Some(-1),
            }
        }
    }
}

fn exit_code(st: &WaitIdStatus) -> i32 {
    match (st.exit_status(), st.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => -1,
    }
}

impl Monitor<'_> {
    /// After each poll: takes the running check's output, its end, kills
    /// it past its timeout, and starts the next check when it is due.
    pub(super) fn tend_health(&mut self) {
        let Some(mut ch) = self.health.take() else {
            return;
        };
        let now = Instant::now();
        let timeout = ch.hc.timeout();
        let mut ended = None;
        if let Some(p) = &mut ch.probe {
            p.read();
            match p.reap(false) {
                Some(code) => {
                    p.read();
                    ended = Some(code);
                }
                None if !p.timed_out && now >= p.started + timeout => p.kill(),
                None => {}
            }
        }
        if let Some(code) = ended
            && let Some(p) = ch.probe.take()
        {
            let (code, output) = if p.timed_out {
                let t = go_duration(timeout);
                (-1, format!("Health check exceeded timeout ({t})"))
            } else {
                let mut s = String::from_utf8_lossy(&p.out).into_owned();
                if p.truncated {
                    s.push_str("...");
                }
                (code, s)
            };
            self.health_result(&mut ch, &p.start, p.in_start_period, code, output);
        }
        if ch.probe.is_none() && now >= ch.next {
            self.start_check(&mut ch);
        }
        self.health = Some(ch);
    }

    /// Starts a check (or records why it could not start).
    fn start_check(&mut self, ch: &mut Checker) {
        let start = timefmt::now_rfc3339();
        let now = Instant::now();
        let in_start_period = now.duration_since(ch.began) < ch.hc.start_period();
        match self.spawn_check(&ch.hc) {
            Ok(Some(d)) => {
                let output = d
                    .output
                    .filter(|o| super::serve::set_nonblocking(o.as_fd()).is_ok());
                ch.probe = Some(Probe {
                    pid: d.pid,
                    pidfd: d.pidfd,
                    output,
                    out: Vec::new(),
                    truncated: false,
                    start,
                    started: now,
                    in_start_period,
                    timed_out: false,
                });
            }
            // Paused, or PID 1 is going: no check this time.
            Ok(None) => ch.next = now + ch.interval(now),
            Err((code, why)) => self.health_result(ch, &start, in_start_period, code, why),
        }
    }

    /// The check's exec, its output on a pipe; None when there is nothing
    /// to check now; Err: the exit code and why it could not run.
    fn spawn_check(
        &self,
        hc: &Healthcheck,
    ) -> Result<Option<berth_runtime::Detached>, (i32, String)> {
        let setup = |e: anyhow::Error| (-1, format!("{e:#}"));
        let rec = self.records.load(&self.id).map_err(setup)?;
        // A frozen container's exec would freeze the monitor with it.
        if rec.paused || !rec.process_alive() {
            return Ok(None);
        }
        let spec = berth_runtime::load_spec(&self.bundle).map_err(|e| (-1, e.message))?;
        let req = crate::ExecRequest {
            container: self.id.clone(),
            command: hc.command().unwrap_or_default(),
            ..Default::default()
        };
        let process = crate::exec::exec_process(&spec, &rec, &req).map_err(setup)?;
        let state_dir = self.engine.runtime_dir();
        let x = berth_runtime::Exec {
            id: &self.id,
            state_dir: &state_dir,
            spec: &spec,
            process: &process,
            preserve_fds: 0,
        };
        match berth_runtime::exec_detached(&x, DetachedStdio::Output) {
            Ok(d) => Ok(Some(d)),
            Err(_) if !rec.process_alive() => Ok(None),
            Err(e) => Err((e.exit_code(), e.message)),
        }
    }

    /// A check's result, in the record; the next check an interval on.
    fn health_result(
        &mut self,
        ch: &mut Checker,
        start: &str,
        in_start_period: bool,
        exit_code: i32,
        output: String,
    ) {
        let result = HealthResult {
            start: start.to_string(),
            end: timefmt::now_rfc3339(),
            exit_code,
            output,
        };
        let retries = ch.hc.retries();
        let updated = self.records.update(&self.id, |r| {
            let h = r.health.get_or_insert_with(Default::default);
            h.record(result, retries, in_start_period);
            Ok((h.status, r.clone()))
        });
        match updated {
            Ok((status, rec)) => {
                // Docker's event comes with each change of status.
                if status != ch.status {
                    let action = format!("health_status: {}", status.as_str());
                    crate::events::container_with(self.engine, &rec, &action, &[]);
                }
                ch.status = status;
            }
            Err(e) => tracing::warn!("record the health of {}: {e:#}", self.id),
        }
        let now = Instant::now();
        ch.next = now + ch.interval(now);
        // The check's allocations (its spec, above all) go back now: the
        // monitor idles between checks.
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// Ends the checks (the container has exited): a running check is
    /// killed and reaped; State.Health stays as it was, as Docker keeps it.
    pub(super) fn stop_health(&mut self) {
        let Some(mut ch) = self.health.take() else {
            return;
        };
        if let Some(mut p) = ch.probe.take()
            && p.reap(false).is_none()
        {
            p.kill();
            // SIGKILLed: it goes.
            p.reap(true);
        }
    }
}
