//! The container's standard streams under `berth run`: pipes the runtime
//! makes, relayed to and from the caller's fds 0–2, as Docker relays them.
//!
//! Handing the container the caller's own fds would hand it whatever they
//! are: a terminal it could read keystrokes from or leave in raw mode, a
//! file it could reopen through /proc/self/fd, truncate or re-mode, the
//! read end of a host pipe. A pipe of its own is all a container can reach.
//!
//! Each [`Pump`] moves one stream with splice(2) (no copy through user
//! space) and falls back to read/write where splice cannot be used (an
//! O_APPEND file, a terminal). The runtime's end of each pipe is
//! non-blocking so that one full stream never stalls the others or the
//! signal forwarding in the same poll loop.

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::SpliceFlags;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The largest chunk one splice or read moves.
const CHUNK: usize = 1 << 20;

/// The size asked for the output pipes.
const PIPE_SIZE: usize = 1 << 20;

/// Sees a foreground container's output on its way to the caller (berth
/// logs it, so that `logs` shows what a container run in the foreground
/// wrote). Tapped output is read and written, not spliced.
pub trait OutputTap {
    /// `bytes` the container wrote to its fd `fd` (1 or 2).
    fn output(&mut self, fd: u8, bytes: &[u8]);
    /// Nothing more to read for now (a moment to write out).
    fn idle(&mut self);
    /// Whether the output goes to the tap alone, not on to the caller's
    /// fds 1 and 2 (`build` prefixes each line of a RUN's output itself).
    fn alone(&self) -> bool {
        false
    }
    /// How long the relay may wait without calling [`idle`](Self::idle)
    /// (a live progress display redraws its timers); None: for ever.
    fn tick(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A one-way copy from `from` to `to`.
pub(crate) struct Pump {
    /// The container's fd this pump serves (0, 1 or 2).
    fd: u8,
    from: Pipe,
    to: Pipe,
    splice: bool,
    /// Bytes read but not yet written (read/write fallback only).
    pending: Vec<u8>,
    /// The last write found `to` full: wait until it takes more.
    to_full: bool,
    open: bool,
}

/// One end of a pump: a pipe end the runtime owns (closed when the pump
/// ends, which tells the container) or one of the caller's stdio (left
/// open).
enum Pipe {
    Own(OwnedFd),
    Caller(BorrowedFd<'static>),
    Closed,
}

impl Pipe {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Pipe::Own(fd) => Some(fd.as_fd()),
            Pipe::Caller(fd) => Some(*fd),
            Pipe::Closed => None,
        }
    }
}

/// The runtime's ends of a container's stdio pipes, made before clone.
pub(crate) struct Stdio {
    /// The container's fds 0, 1, 2 (None: /dev/null for stdin).
    pub child: [Option<OwnedFd>; 3],
    /// The runtime's ends: write end of stdin, read ends of stdout, stderr.
    pub input: Option<OwnedFd>,
    pub output: OwnedFd,
    pub error: OwnedFd,
}

impl Stdio {
    /// Pipes for stdout and stderr, and for stdin when `interactive`.
    pub fn new(interactive: bool) -> std::io::Result<Stdio> {
        let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (input, child_in) = if interactive {
            let (in_r, in_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            (Some(in_w), Some(in_r))
        } else {
            (None, None)
        };
        // Larger pipes mean fewer wake-ups of the container, the relay and
        // the reader per MiB moved (64 KiB is the default); refused beyond
        // fs.pipe-max-size or a user's pipe budget, which is fine.
        for fd in [&out_r, &err_r] {
            let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
        }
        // Only the runtime's ends: the container's stay blocking, as a
        // program expects of its stdio.
        for fd in [Some(&out_r), Some(&err_r), input.as_ref()]
            .into_iter()
            .flatten()
        {
            set_nonblocking(fd.as_fd())?;
        }
        Ok(Stdio {
            child: [child_in, Some(out_w), Some(err_w)],
            input,
            output: out_r,
            error: err_r,
        })
    }

    /// The pumps of a started container, to the caller's fds 0–2.
    /// The pumps; with `tapped`, the outputs go through user space; with
    /// `alone` too, only to the tap (written on to /dev/null, so that a
    /// pump is the same loop either way).
    pub fn pumps(self, tapped: bool, alone: bool) -> Vec<Pump> {
        use rustix::stdio::{stderr, stdin, stdout};
        let to = |fd: BorrowedFd<'static>| match alone.then(null).flatten() {
            Some(null) => Pipe::Own(null),
            None => Pipe::Caller(fd),
        };
        let mut pumps = vec![
            Pump::new(1, Pipe::Own(self.output), to(stdout())),
            Pump::new(2, Pipe::Own(self.error), to(stderr())),
        ];
        for p in &mut pumps {
            p.splice = !tapped;
        }
        if let Some(input) = self.input {
            pumps.push(Pump::new(0, Pipe::Caller(stdin()), Pipe::Own(input)));
        }
        pumps
    }
}

/// /dev/null for writing; None when it cannot be opened (the output then
/// goes to the caller's fds as well: shown twice rather than lost).
fn null() -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open("/dev/null", OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

impl Pump {
    fn new(fd: u8, from: Pipe, to: Pipe) -> Pump {
        Pump {
            fd,
            from,
            to,
            splice: true,
            pending: Vec::new(),
            to_full: false,
            open: true,
        }
    }

    /// Whether this pump reads from the container (stdout, stderr).
    pub fn is_output(&self) -> bool {
        matches!(self.from, Pipe::Own(_))
    }

    /// Both ends, while the pump is open.
    fn ends(&self) -> Option<(BorrowedFd<'_>, BorrowedFd<'_>)> {
        self.open.then_some((self.from.fd()?, self.to.fd()?))
    }

    /// The fd and poll events this pump waits for, if it is still open.
    pub fn interest(&self) -> Option<PollFd<'_>> {
        let (from, to) = self.ends()?;
        Some(if self.to_full || !self.pending.is_empty() {
            PollFd::from_borrowed_fd(to, PollFlags::OUT)
        } else {
            PollFd::from_borrowed_fd(from, PollFlags::IN)
        })
    }

    /// Move what can be moved now, after poll reported the fd of
    /// [`interest`](Self::interest) ready. Never blocks on the runtime's
    /// own (non-blocking) pipe ends. Output read goes past `tap` too.
    pub fn step(&mut self, tap: Option<&mut (dyn OutputTap + '_)>) {
        if !self.open {
            return;
        }
        self.to_full = false;
        if !self.pending.is_empty() {
            self.flush();
            return;
        }
        let Some((from, to)) = self.ends() else {
            return;
        };
        if self.splice {
            let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
            // Both ends are streams: no offsets.
            match rustix::pipe::splice(from, None, to, None, CHUNK, flags) {
                Ok(0) => self.close(),
                Ok(_) => {}
                Err(Errno::AGAIN) => {
                    // Readable by poll, so it is most likely `to` that is
                    // full: wait for it rather than spin on `from`.
                    self.to_full = true;
                }
                Err(Errno::INTR) => {}
                // Neither side refuses splice in a way that write would
                // accept: an O_APPEND file, a terminal, a socket of some
                // families. Copy through user space from now on.
                Err(Errno::INVAL) => self.splice = false,
                Err(_) => self.close(),
            }
            return;
        }
        let mut buf = vec![0u8; CHUNK.min(64 * 1024)];
        match rustix::io::read(from, &mut buf) {
            Ok(0) => self.close(),
            Ok(n) => {
                buf.truncate(n);
                if let (Some(t), true) = (tap, self.is_output()) {
                    t.output(self.fd, &buf);
                }
                self.pending = buf;
                self.flush();
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) => {}
            Err(_) => self.close(),
        }
    }

    fn flush(&mut self) {
        while !self.pending.is_empty() {
            let Some((_, to)) = self.ends() else {
                return;
            };
            match rustix::io::write(to, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::AGAIN) => {
                    self.to_full = true;
                    return;
                }
                Err(Errno::INTR) => {}
                Err(_) => {
                    self.close();
                    return;
                }
            }
        }
    }

    /// Stop: the runtime's end of the container's pipe closes, so the
    /// container sees end-of-file on stdin, or EPIPE on an output whose
    /// reader (the caller's) went away — what a direct pipe would give it.
    pub fn close(&mut self) {
        self.open = false;
        self.pending = Vec::new();
        for p in [&mut self.from, &mut self.to] {
            if let Pipe::Own(_) = p {
                *p = Pipe::Closed;
            }
        }
    }

    /// After the container's last process is gone: copy what its pipe
    /// still holds, to its end. With `all_writers_gone` end-of-file is
    /// certain to come; otherwise (no PID namespace: a leftover process may
    /// keep the pipe open for ever) only what is already buffered is taken.
    pub fn drain(&mut self, all_writers_gone: bool, mut tap: Option<&mut (dyn OutputTap + '_)>) {
        if !self.is_output() {
            self.close();
            return;
        }
        let mut idle_polls = 0;
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let timeout = if all_writers_gone { None } else { Some(&now) };
        while self.open {
            let Some(p) = self.interest() else {
                break;
            };
            match rustix::event::poll(&mut [p], timeout) {
                Ok(0) => {
                    idle_polls += 1;
                    if idle_polls > 1 {
                        break;
                    }
                    continue;
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => break,
            }
            self.step(tap.as_deref_mut());
        }
        self.close();
    }
}
