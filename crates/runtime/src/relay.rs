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

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The largest chunk one splice or read moves.
const CHUNK: usize = 1 << 20;

/// The size asked for the output pipes.
const PIPE_SIZE: usize = 1 << 20;

/// A one-way copy from `from` to `to`.
pub(crate) struct Pump {
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
/// ends, which tells the container) or a caller's fd (left open).
enum Pipe {
    Own(OwnedFd),
    Caller(RawFd),
}

impl Pipe {
    fn raw(&self) -> RawFd {
        match self {
            Pipe::Own(fd) => fd.as_raw_fd(),
            Pipe::Caller(fd) => *fd,
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
    pub fn pumps(self) -> Vec<Pump> {
        let mut pumps = vec![
            Pump::new(Pipe::Own(self.output), Pipe::Caller(1)),
            Pump::new(Pipe::Own(self.error), Pipe::Caller(2)),
        ];
        if let Some(input) = self.input {
            pumps.push(Pump::new(Pipe::Caller(0), Pipe::Own(input)));
        }
        pumps
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

impl Pump {
    fn new(from: Pipe, to: Pipe) -> Pump {
        Pump {
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

    /// The fd and poll events this pump waits for, if it is still open.
    pub fn interest(&self) -> Option<(RawFd, libc::c_short)> {
        if !self.open {
            None
        } else if self.to_full || !self.pending.is_empty() {
            Some((self.to.raw(), libc::POLLOUT))
        } else {
            Some((self.from.raw(), libc::POLLIN))
        }
    }

    /// Move what can be moved now, after poll reported the fd of
    /// [`interest`](Self::interest) ready. Never blocks on the runtime's
    /// own (non-blocking) pipe ends.
    pub fn step(&mut self) {
        if !self.open {
            return;
        }
        self.to_full = false;
        if !self.pending.is_empty() {
            self.flush();
            return;
        }
        if self.splice {
            match splice(self.from.raw(), self.to.raw()) {
                Ok(0) => self.close(),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    // Readable by poll, so it is most likely `to` that is
                    // full: wait for it rather than spin on `from`.
                    self.to_full = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // Neither side refuses splice in a way that write would
                // accept: an O_APPEND file, a terminal, a socket of some
                // families. Copy through user space from now on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.splice = false,
                Err(_) => self.close(),
            }
            return;
        }
        let mut buf = vec![0u8; CHUNK.min(64 * 1024)];
        // SAFETY: the fd is open while the pump is; we only borrow it here.
        let from = unsafe { BorrowedFd::borrow_raw(self.from.raw()) };
        match rustix::io::read(from, &mut buf) {
            Ok(0) => self.close(),
            Ok(n) => {
                buf.truncate(n);
                self.pending = buf;
                self.flush();
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => self.close(),
        }
    }

    fn flush(&mut self) {
        // SAFETY: as in step().
        let to = unsafe { BorrowedFd::borrow_raw(self.to.raw()) };
        while !self.pending.is_empty() {
            match rustix::io::write(to, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(rustix::io::Errno::AGAIN) => {
                    self.to_full = true;
                    return;
                }
                Err(rustix::io::Errno::INTR) => {}
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
                *p = Pipe::Caller(-1);
            }
        }
    }

    /// After the container's last process is gone: copy what its pipe
    /// still holds, to its end. With `all_writers_gone` end-of-file is
    /// certain to come; otherwise (no PID namespace: a leftover process may
    /// keep the pipe open for ever) only what is already buffered is taken.
    pub fn drain(&mut self, all_writers_gone: bool) {
        if !self.is_output() {
            self.close();
            return;
        }
        let mut idle_polls = 0;
        while self.open {
            let (fd, events) = match self.interest() {
                Some(i) => i,
                None => break,
            };
            let mut p = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            let timeout = if all_writers_gone { -1 } else { 0 };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, timeout) };
            if n == 0 {
                idle_polls += 1;
                if idle_polls > 1 {
                    break;
                }
                continue;
            }
            if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
            self.step();
        }
        self.close();
    }
}

fn splice(from: RawFd, to: RawFd) -> std::io::Result<usize> {
    // SAFETY: plain integer fds and null offsets (both ends are streams).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            CHUNK,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
