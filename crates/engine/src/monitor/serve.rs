//! The monitor while the container runs: one poll over the signalfd, PID
//! 1's pidfd, the container's output, the attach socket and its clients,
//! until PID 1 exits; then the rest of the output, the exit code, the
//! record.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};
use berth_runtime::Container;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::attach::{self, Request};
use super::{Monitor, Next};
use crate::logs::Stream;

/// After this long with nothing to do, the monitor gives back the pages
/// its last burst of work dirtied (the read buffer, the log's buffer, the
/// stack): an idle container then costs what an idle monitor costs,
/// however much it once wrote. One timed wait after activity, not a
/// periodic wake-up.
const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// The read buffer: untouched pages of a mapping of its own until output
/// comes (see `fix_mmap_threshold`), so it costs nothing resident.
fn read_buffer() -> Vec<u8> {
    vec![0u8; 1 << 20]
}

/// One of the container's output streams.
struct Output {
    stream: Stream,
    fd: OwnedFd,
    open: bool,
}

/// Where input from attached clients goes: the stdin pipe's write end, or
/// the pty master.
struct Input {
    fd: Option<OwnedFd>,
    /// Bytes not yet taken by the pipe (bounded by what clients send
    /// before it drains).
    pending: Vec<u8>,
    close_when_drained: bool,
}

/// What one poll found.
struct Wake {
    /// PID 1 has exited.
    exited: bool,
    /// Nothing at all: the poll timed out.
    idle: bool,
}

enum Slot {
    Output(usize),
    Listener,
    Client(usize),
    Input,
    Health,
}

impl Monitor<'_> {
    /// Looks after the started container `c` until its PID 1 has exited
    /// and everything it wrote is logged; records the exit and what comes next.
    pub(super) fn serve(&mut self, mut c: Container) -> Result<Next> {
        let (mut outputs, mut input, master) = streams(&mut c)?;
        super::release_free_memory();
        let mut buf = read_buffer();
        let pidfd = c.pidfd().context("container has no pidfd")?;
        let mut signals = Vec::new();
        let mut dirty = false;
        loop {
            let wake = self.wait_once(
                pidfd,
                &mut outputs,
                &mut input,
                &mut buf,
                master.as_ref(),
                &mut signals,
                dirty.then_some(IDLE_RELEASE),
            )?;
            for sig in signals.drain(..) {
                let _ = c.kill(sig);
            }
            if wake.exited {
                break;
            }
            if !wake.idle {
                dirty = true;
            } else if dirty {
                buf = read_buffer();
                self.log.release();
                super::release_free_memory();
                dirty = false;
            }
        }
        self.stop_health();
        // PID 1 is gone; with a PID namespace of its own, so is every
        // process that could write, and reading to end-of-file ends.
        for o in &mut outputs {
            while o.open && self.pump(o, &mut buf) {}
        }
        let code = c.wait().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let oom = c.oom_killed();
        if let Err(e) = c.delete(true) {
            tracing::warn!("delete container {}: {}", self.id, e.message);
        }
        self.disconnect();
        self.reap_orphans(libc::SIGCHLD);
        let next = self.record_exit(code, oom, true)?;
        self.attach.exited(code);
        Ok(next)
    }

    /// One poll (at most `idle` long, if given) and what it found.
    #[allow(clippy::too_many_arguments)]
    fn wait_once(
        &mut self,
        pidfd: BorrowedFd<'_>,
        outputs: &mut [Output],
        input: &mut Input,
        buf: &mut [u8],
        master: Option<&OwnedFd>,
        signals: &mut Vec<i32>,
        idle: Option<Duration>,
    ) -> Result<Wake> {
        let mut fds = vec![
            PollFd::from_borrowed_fd(self.signals.as_fd(), PollFlags::IN),
            PollFd::from_borrowed_fd(pidfd, PollFlags::IN),
            PollFd::from_borrowed_fd(self.attach.listener(), PollFlags::IN),
        ];
        let mut slots = vec![Slot::Listener];
        for (i, o) in outputs.iter().enumerate() {
            if o.open {
                fds.push(PollFd::from_borrowed_fd(o.fd.as_fd(), PollFlags::IN));
                slots.push(Slot::Output(i));
            }
        }
        for (i, cl) in self.attach.clients.iter().enumerate() {
            let mut flags = PollFlags::IN;
            if cl.wants_out() {
                flags |= PollFlags::OUT;
            }
            fds.push(PollFd::from_borrowed_fd(cl.fd(), flags));
            slots.push(Slot::Client(i));
        }
        if let (Some(fd), false) = (&input.fd, input.pending.is_empty()) {
            fds.push(PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::OUT));
            slots.push(Slot::Input);
        }
        // Health checks: the running one's pidfd and output, and the timer
        // (none at all without a healthcheck).
        let mut timeout = None;
        if let Some(h) = &self.health {
            for fd in h.fds() {
                fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                slots.push(Slot::Health);
            }
            timeout = Some(h.poll_timeout());
        }
        if let Some(idle) = idle {
            timeout = Some(timeout.map_or(idle, |t| t.min(idle)));
        }
        let timeout = timeout.and_then(|t| rustix::event::Timespec::try_from(t).ok());
        let woken = match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => n,
            Err(Errno::INTR) => 1,
            Err(e) => return Err(e).context("monitor: poll"),
        };
        let signalled = !fds[0].revents().is_empty();
        let exited = !fds[1].revents().is_empty();
        let mut ready = fds[2..].iter().map(|p| !p.revents().is_empty());
        slots.retain(|_| ready.next().unwrap_or(false));
        drop(fds);
        if signalled {
            // Orphans are reaped once PID 1 has been waited for; nothing
            // else is for the monitor (a SIGTERM ends only a back-off).
            while self.signals.next().is_some() {}
        }
        let mut requests = Vec::new();
        let mut gone = Vec::new();
        for slot in slots {
            match slot {
                Slot::Output(i) => {
                    self.pump(&mut outputs[i], buf);
                }
                Slot::Listener => self.attach.accept(),
                Slot::Client(i) => {
                    if !self.attach.read_client(i, buf, &mut requests) {
                        gone.push(i);
                    }
                }
                Slot::Input => input.drain(),
                Slot::Health => {}
            }
        }
        self.tend_health();
        // What was read is in the log before the monitor sleeps again
        // (`logs -f` follows it).
        if let Err(e) = self.log.flush() {
            tracing::warn!("write the log of {}: {e}", self.id);
        }
        for i in gone.into_iter().rev() {
            self.attach.clients.remove(i);
        }
        self.attach.flush();
        for r in requests {
            match r {
                Request::Input(data) => input.feed(&data),
                Request::CloseInput => input.close(),
                Request::Signal(sig) => signals.push(sig),
                Request::Resize(rows, cols) => {
                    if let Some(m) = master {
                        let ws = rustix::termios::Winsize {
                            ws_row: rows,
                            ws_col: cols,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        let _ = rustix::termios::tcsetwinsize(m, ws);
                    }
                }
            }
        }
        Ok(Wake {
            exited,
            idle: woken == 0,
        })
    }

    /// Moves one read's worth of `o` to the log and to attached clients;
    /// false once there is nothing more to read now.
    fn pump(&mut self, o: &mut Output, buf: &mut [u8]) -> bool {
        match rustix::io::read(&o.fd, &mut *buf) {
            Ok(0) => {
                o.open = false;
                false
            }
            Ok(n) => {
                if let Err(e) = self.log.write(o.stream, &buf[..n]) {
                    tracing::warn!("write the log of {}: {e}", self.id);
                }
                let kind = match o.stream {
                    Stream::Stdout => attach::STDOUT,
                    Stream::Stderr => attach::STDERR,
                };
                self.attach.broadcast(kind, &buf[..n]);
                true
            }
            Err(Errno::INTR) => true,
            Err(Errno::AGAIN) => false,
            // EIO: a pty whose every slave end is closed.
            Err(_) => {
                o.open = false;
                false
            }
        }
    }
}

/// The container's output streams, where attached input goes, and the pty
/// master (for window sizes).
fn streams(c: &mut Container) -> Result<(Vec<Output>, Input, Option<OwnedFd>)> {
    if let Some(master) = c.take_pty_master() {
        set_nonblocking(master.as_fd())?;
        let out = rustix::io::fcntl_dupfd_cloexec(&master, 3).context("dup pty master")?;
        let input = rustix::io::fcntl_dupfd_cloexec(&master, 3).context("dup pty master")?;
        let outputs = vec![Output {
            stream: Stream::Stdout,
            fd: out,
            open: true,
        }];
        return Ok((outputs, Input::new(Some(input)), Some(master)));
    }
    let s = c.take_streams().context("container has no stdio pipes")?;
    let outputs = vec![
        Output {
            stream: Stream::Stdout,
            fd: s.output,
            open: true,
        },
        Output {
            stream: Stream::Stderr,
            fd: s.error,
            open: true,
        },
    ];
    Ok((outputs, Input::new(s.input), None))
}

pub(super) fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// What clients may send ahead of a container that does not read.
const INPUT_BACKLOG: usize = 4 << 20;

impl Input {
    fn new(fd: Option<OwnedFd>) -> Input {
        Input {
            fd,
            pending: Vec::new(),
            close_when_drained: false,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.fd.is_some() && self.pending.len() + data.len() <= INPUT_BACKLOG {
            self.pending.extend_from_slice(data);
            self.drain();
        }
    }

    fn drain(&mut self) {
        let Some(fd) = &self.fd else {
            return;
        };
        while !self.pending.is_empty() {
            match rustix::io::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    self.fd = None;
                    return;
                }
            }
        }
        if self.close_when_drained {
            self.fd = None;
        }
    }

    /// End of input: the pipe closes once what is pending has gone in (a
    /// pty stays: its end of input is the client's ^D).
    fn close(&mut self) {
        self.close_when_drained = true;
        self.drain();
    }
}
