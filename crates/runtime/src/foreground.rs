//! A process looked after in the foreground, by `run` (the container's
//! PID 1) and `exec` (a process joined to it): the caller's signals
//! forwarded to it, its pty copied or its stdio pipes pumped, until it
//! exits, then what output is left. Single-threaded: one poll loop over a
//! signalfd, the process's pidfd, the pty master and stdin, and the pumps.

use crate::error::{Context, Result};
use crate::relay::{OutputTap, Pump};
use crate::sys;
use crate::terminal::{self, RawMode};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::stdio::{stdin, stdout};
use std::os::fd::{BorrowedFd, OwnedFd};

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
pub(crate) struct MaskGuard(libc::sigset_t);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        sys::sigmask(libc::SIG_SETMASK, &self.0);
    }
}

/// The forwarded signals blocked (restored when the guard drops) and a
/// signalfd that receives them. Called before the process is made, so no
/// signal is lost; its set-up child unblocks them.
pub(crate) fn catch_signals() -> Result<(MaskGuard, OwnedFd)> {
    let set = sys::sigset(&FORWARDED_SIGNALS);
    let mask = MaskGuard(sys::sigmask(libc::SIG_BLOCK, &set));
    let sfd = sys::signalfd(&set).step(|| "signalfd".into())?;
    Ok((mask, sfd))
}

/// The caller's terminal in raw mode when the user types into the
/// process's pty (`-it`), as Docker does; the pty given its window size.
pub(crate) fn prepare_terminal(
    master: Option<BorrowedFd<'_>>,
    interactive: bool,
) -> Option<RawMode> {
    let m = master?;
    terminal::copy_window_size(m);
    if interactive && terminal::is_tty(stdin()) {
        RawMode::enable(stdin())
    } else {
        None
    }
}

/// The pty side of a foreground process (`-t`), if it has one.
pub(crate) struct Tty<'a> {
    master: Option<BorrowedFd<'a>>,
    /// The process's output still comes.
    master_open: bool,
    /// The caller's input still goes in (`-it`).
    stdin_open: bool,
    buf: Vec<u8>,
}

impl<'a> Tty<'a> {
    pub(crate) fn new(master: Option<BorrowedFd<'a>>, interactive: bool) -> Tty<'a> {
        Tty {
            master,
            master_open: master.is_some(),
            stdin_open: master.is_some() && interactive,
            buf: vec![0u8; 64 * 1024],
        }
    }
}

/// What each pollfd past the first two is for.
enum Slot {
    Master,
    Stdin,
    Pump(usize),
}

/// One poll loop over the signalfd, the process's pidfd, the pty master
/// and stdin, and the stdio pumps, until the process exits.
pub(crate) fn relay_until_exit(
    pidfd: BorrowedFd<'_>,
    sfd: BorrowedFd<'_>,
    tty: &mut Tty<'_>,
    pumps: &mut [Pump],
    mut tap: Option<&mut (dyn OutputTap + '_)>,
) -> Result<()> {
    loop {
        if let Some(t) = tap.as_deref_mut() {
            t.idle();
        }
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
        let tick = tap.as_deref().and_then(OutputTap::tick).map(|d| Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: d.subsec_nanos() as i64,
        });
        match rustix::event::poll(&mut fds, tick.as_ref()) {
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
            forward_signals(pidfd, sfd, tty.master);
        }
        for slot in slots {
            match (slot, tty.master) {
                (Slot::Master, Some(m)) => {
                    tty.master_open = copy(m, stdout(), &mut tty.buf, tap.as_deref_mut())
                }
                (Slot::Stdin, Some(m)) => tty.stdin_open = copy(stdin(), m, &mut tty.buf, None),
                (Slot::Pump(i), _) => pumps[i].step(tap.as_deref_mut()),
                _ => {}
            }
        }
        if exited {
            return Ok(());
        }
    }
}

/// Once the process has exited: copy what output is left. With
/// `all_gone` (every process that could hold the pty's slave or the
/// pipes' write ends is gone: the container's PID 1 exited, taking its
/// PID namespace with it) until end-of-file; otherwise (a process of the
/// container may hold them for ever) only what is already buffered.
pub(crate) fn drain_after_exit(
    tty: &mut Tty<'_>,
    pumps: &mut [Pump],
    all_gone: bool,
    mut tap: Option<&mut (dyn OutputTap + '_)>,
) {
    for p in pumps {
        p.drain(all_gone, tap.as_deref_mut());
    }
    if let (Some(m), true) = (tty.master, tty.master_open) {
        if !all_gone {
            let _ = crate::relay::set_nonblocking(m);
        }
        while copy(m, stdout(), &mut tty.buf, tap.as_deref_mut()) {}
    }
}

/// Copy one chunk (a pty's output: past `tap` as fd 1); false on end of
/// input or a broken output.
fn copy(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    buf: &mut [u8],
    tap: Option<&mut (dyn OutputTap + '_)>,
) -> bool {
    match sys::read(from, buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            if let Some(t) = tap {
                t.output(1, &buf[..n]);
            }
            sys::write_all(to, &buf[..n]).is_ok()
        }
    }
}

fn forward_signals(pidfd: BorrowedFd<'_>, sfd: BorrowedFd<'_>, master: Option<BorrowedFd<'_>>) {
    // One struct signalfd_siginfo per read; ssi_signo is its first u32.
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    while let Ok(n) = rustix::io::read(sfd, &mut info) {
        if n != info.len() {
            return;
        }
        let sig = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
        match master {
            // With a pty the kernel signals the process on a size change.
            Some(m) if sig == libc::SIGWINCH => terminal::copy_window_size(m),
            _ => {
                let _ = sys::pidfd_send_signal(pidfd, sig);
            }
        }
    }
}
