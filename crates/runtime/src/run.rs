//! `berth run` in the foreground: create + start, forward signals, copy the
//! pty if there is one, wait, delete. Single-threaded: one poll loop over a
//! signalfd, the container's pidfd, the pty master and stdin.

use crate::container::{Container, Io, Supervision};
use crate::error::{Context, Error, Result};
use crate::relay::Pump;
use crate::sys;
use crate::terminal::{self, RawMode};
use rustix::event::{PollFd, PollFlags};
use rustix::stdio::{stdin, stdout};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// Signals sent to berth that go to the container's PID 1 instead.
pub const FORWARDED_SIGNALS: [i32; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Restores the caller's signal mask on drop.
struct MaskGuard(libc::sigset_t);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        sys::sigmask(libc::SIG_SETMASK, &self.0);
    }
}

/// How a container run in the foreground ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Docker's exit code: the process's own, or 128+N if killed by signal N.
    pub code: i32,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// Run the bundle in the foreground and return how it ended. `on_start` gets the host PID
/// of the container's PID 1 just before the command is released to run. The container's state directory
/// is gone when this returns, whatever happened.
///
/// Must be called from a single-threaded process.
pub fn run(
    id: &str,
    bundle: &Path,
    state_dir: &Path,
    io: &Io,
    on_start: impl FnOnce(i32),
) -> Result<Exit> {
    let spec = crate::container::load_spec(bundle)?;
    run_spec(id, bundle, &spec, state_dir, io, on_start)
}

/// [`run`] with the bundle's spec already in memory.
pub fn run_spec(
    id: &str,
    bundle: &Path,
    spec: &oci_spec::runtime::Spec,
    state_dir: &Path,
    io: &Io,
    on_start: impl FnOnce(i32),
) -> Result<Exit> {
    // Block before create so no signal is lost (it waits in the signalfd).
    let set = sys::sigset(&FORWARDED_SIGNALS);
    let _mask = MaskGuard(sys::sigmask(libc::SIG_BLOCK, &set));
    let sfd = sys::signalfd(&set).step(|| "signalfd".into())?;

    let mut container =
        Container::create_supervised(id, bundle, spec, state_dir, io, Supervision::Foreground)?;
    // Closed after the delete below, as when the container held it.
    let master = container.take_pty_master();
    let master = master.as_ref().map(|m| m.as_fd());
    let result = supervise(&mut container, sfd.as_fd(), master, io, on_start);
    match result {
        Ok(code) => {
            let oom_killed = container.oom_killed();
            container.delete(true)?;
            Ok(Exit { code, oom_killed })
        }
        Err(e) => {
            let _ = container.delete(true);
            Err(e)
        }
    }
}

/// Start the container and look after it until its PID 1 exits: forward
/// signals, copy the pty or pump the stdio pipes, then take what output is
/// left. Docker's exit code for it.
fn supervise(
    c: &mut Container,
    sfd: BorrowedFd<'_>,
    master: Option<BorrowedFd<'_>>,
    io: &Io,
    on_start: impl FnOnce(i32),
) -> Result<i32> {
    // Raw mode only when the user types into the container (`-it`), like
    // Docker; the guard restores the terminal on every way out of here.
    let _raw = match master {
        Some(_) if io.interactive && terminal::is_tty(stdin()) => RawMode::enable(stdin()),
        _ => None,
    };
    if let Some(m) = master {
        terminal::copy_window_size(m);
    }
    // Before the release, so that by the time the command can show
    // anything, the caller has recorded it running (`inspect` gives its PID).
    on_start(c.pid());
    c.start()?;

    let mut pumps: Vec<Pump> = c
        .take_stdio()
        .map(crate::relay::Stdio::pumps)
        .unwrap_or_default();
    let mut tty = Tty {
        master,
        master_open: master.is_some(),
        stdin_open: master.is_some() && io.interactive,
        buf: vec![0u8; 64 * 1024],
    };
    relay_until_exit(c, sfd, &mut tty, &mut pumps)?;
    let code = c.wait()?;
    // PID 1 is gone, so every process of its PID namespace is too and the
    // pty's slave side and the pipes' write ends are closed: copy what is
    // left until end-of-file. Without a PID namespace a leftover process
    // may hold them open for ever: take only what is already buffered.
    let all_gone = c.has_own_pid_ns();
    for p in &mut pumps {
        p.drain(all_gone);
    }
    if let (Some(m), true) = (master, tty.master_open) {
        if !all_gone {
            let _ = crate::relay::set_nonblocking(m);
        }
        while copy(m, stdout(), &mut tty.buf) {}
    }
    Ok(code)
}

/// The pty side of a foreground container (`-t`), if it has one.
struct Tty<'a> {
    master: Option<BorrowedFd<'a>>,
    /// The container's output still comes.
    master_open: bool,
    /// The caller's input still goes in (`-it`).
    stdin_open: bool,
    buf: Vec<u8>,
}

/// What each pollfd past the first two is for.
enum Slot {
    Master,
    Stdin,
    Pump(usize),
}

/// One poll loop over the signalfd, the container's pidfd, the pty master
/// and stdin, and the stdio pumps, until PID 1 exits.
fn relay_until_exit(
    c: &Container,
    sfd: BorrowedFd<'_>,
    tty: &mut Tty<'_>,
    pumps: &mut [Pump],
) -> Result<()> {
    let pidfd = c
        .pidfd()
        .ok_or_else(|| Error::setup("container has no pidfd"))?;
    loop {
        let mut fds = vec![
            PollFd::from_borrowed_fd(sfd, PollFlags::IN),
            PollFd::from_borrowed_fd(pidfd, PollFlags::IN),
        ];
        let mut slots = Vec::new();
        if let (Some(m), true) = (tty.master, tty.master_open) {
            fds.push(PollFd::from_borrowed_fd(m, PollFlags::IN));
            slots.push(Slot::Master);
        }
        if let (Some(_), true) = (tty.master, tty.stdin_open) {
            fds.push(PollFd::from_borrowed_fd(stdin(), PollFlags::IN));
            slots.push(Slot::Stdin);
        }
        for (i, p) in pumps.iter().enumerate() {
            if let Some(pollfd) = p.interest() {
                fds.push(pollfd);
                slots.push(Slot::Pump(i));
            }
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).step(|| "poll".into()),
        }
        let signalled = !fds[0].revents().is_empty();
        let exited = !fds[1].revents().is_empty();
        let mut ready = fds[2..].iter().map(|p| !p.revents().is_empty());
        slots.retain(|_| ready.next().unwrap_or(false));
        // The pumps' fds are borrowed until here.
        drop(fds);
        if signalled {
            forward_signals(c, sfd, tty.master);
        }
        for slot in slots {
            match (slot, tty.master) {
                (Slot::Master, Some(m)) => tty.master_open = copy(m, stdout(), &mut tty.buf),
                (Slot::Stdin, Some(m)) => tty.stdin_open = copy(stdin(), m, &mut tty.buf),
                (Slot::Pump(i), _) => pumps[i].step(),
                _ => {}
            }
        }
        if exited {
            return Ok(());
        }
    }
}

/// Copy one chunk; false on end of input or a broken output.
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
    match sys::read(from, buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => sys::write_all(to, &buf[..n]).is_ok(),
    }
}

fn forward_signals(c: &Container, sfd: BorrowedFd<'_>, master: Option<BorrowedFd<'_>>) {
    // One struct signalfd_siginfo per read; ssi_signo is its first u32.
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    while let Ok(n) = rustix::io::read(sfd, &mut info) {
        if n != info.len() {
            return;
        }
        let sig = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
        match master {
            // With a pty the kernel signals the container on a size change.
            Some(m) if sig == libc::SIGWINCH => terminal::copy_window_size(m),
            _ => {
                let _ = c.kill(sig);
            }
        }
    }
}
