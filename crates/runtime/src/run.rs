//! `berth run` in the foreground: create + start, forward signals, copy the
//! pty if there is one, wait, delete. Single-threaded: one poll loop over a
//! signalfd, the container's pidfd, the pty master and stdin.

use crate::container::{Container, Io, Supervision};
use crate::error::{Context, Error, Result};
use crate::relay::Pump;
use crate::sys;
use crate::terminal::{self, RawMode};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
    // SAFETY: valid sigset pointer; returns a new fd.
    let sfd = sys::cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })
        .step(|| "signalfd".into())?;
    // SAFETY: fresh fd.
    let sfd = unsafe { OwnedFd::from_raw_fd(sfd) };

    let mut container =
        Container::create_supervised(id, bundle, spec, state_dir, io, Supervision::Foreground)?;
    let result = supervise(&mut container, sfd.as_fd(), io, on_start);
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

fn supervise(
    c: &mut Container,
    sfd: BorrowedFd<'_>,
    io: &Io,
    on_start: impl FnOnce(i32),
) -> Result<i32> {
    let master = c.pty_master().map(|m| m.as_raw_fd());
    // Raw mode only when the user types into the container (`-it`), like
    // Docker; the guard restores the terminal on every way out of here.
    let _raw = match master {
        Some(_) if io.interactive && terminal::is_tty(0) => RawMode::enable(0),
        _ => None,
    };
    if let Some(m) = master {
        // SAFETY: m stays open while `c` lives.
        terminal::copy_window_size(unsafe { BorrowedFd::borrow_raw(m) });
    }
    // Before the release, so that by the time the command can show
    // anything, the caller has recorded it running (`inspect` gives its PID).
    on_start(c.pid());
    c.start()?;

    let pidfd = c
        .pidfd_raw()
        .ok_or_else(|| Error::setup("container has no pidfd"))?;
    let mut pumps: Vec<Pump> = c
        .take_stdio()
        .map(crate::relay::Stdio::pumps)
        .unwrap_or_default();
    let mut stdin_open = master.is_some() && io.interactive;
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 64 * 1024];
    // What each pollfd past the first two is for.
    enum Slot {
        Master,
        Stdin,
        Pump(usize),
    }
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut slots = Vec::new();
        let mut watch = |fd: i32, events: libc::c_short, slot: Slot| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            slots.push(slot);
        };
        if let (Some(m), true) = (master, master_open) {
            watch(m, libc::POLLIN, Slot::Master);
        }
        if let (Some(_), true) = (master, stdin_open) {
            watch(0, libc::POLLIN, Slot::Stdin);
        }
        for (i, p) in pumps.iter().enumerate() {
            if let Some((fd, events)) = p.interest() {
                watch(fd, events, Slot::Pump(i));
            }
        }
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).step(|| "poll".into());
        }
        if fds[0].revents != 0 {
            forward_signals(c, sfd, master);
        }
        for (p, slot) in fds[2..].iter().zip(&slots) {
            if p.revents == 0 {
                continue;
            }
            match slot {
                Slot::Master => master_open = copy(p.fd, 1, &mut buf),
                Slot::Stdin => stdin_open = copy(0, master.unwrap_or(-1), &mut buf),
                Slot::Pump(i) => pumps[*i].step(),
            }
        }
        if fds[1].revents != 0 {
            break;
        }
    }
    let code = c.wait()?;
    // PID 1 is gone, so every process of its PID namespace is too and the
    // pty's slave side and the pipes' write ends are closed: copy what is
    // left until end-of-file. Without a PID namespace a leftover process
    // may hold them open for ever: take only what is already buffered.
    let all_gone = c.has_own_pid_ns();
    for p in &mut pumps {
        p.drain(all_gone);
    }
    if let (Some(m), true) = (master, master_open) {
        if !all_gone {
            // SAFETY: fcntl on an fd we hold.
            unsafe {
                libc::fcntl(
                    m,
                    libc::F_SETFL,
                    libc::fcntl(m, libc::F_GETFL) | libc::O_NONBLOCK,
                )
            };
        }
        while copy(m, 1, &mut buf) {}
    }
    Ok(code)
}

/// Copy one chunk; false on end of input or a broken output.
fn copy(from: i32, to: i32, buf: &mut [u8]) -> bool {
    // SAFETY: both fds stay open for the duration of supervise().
    let (from, to) = unsafe { (BorrowedFd::borrow_raw(from), BorrowedFd::borrow_raw(to)) };
    match sys::read(from, buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => sys::write_all(to, &buf[..n]).is_ok(),
    }
}

fn forward_signals(c: &Container, sfd: BorrowedFd<'_>, master: Option<i32>) {
    loop {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one siginfo into a buffer of its size.
        let n = unsafe {
            libc::read(
                sfd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n != size as isize {
            return;
        }
        let sig = info.ssi_signo as i32;
        match master {
            // With a pty the kernel signals the container on a size change.
            // SAFETY: m stays open while `c` lives.
            Some(m) if sig == libc::SIGWINCH => {
                terminal::copy_window_size(unsafe { BorrowedFd::borrow_raw(m) })
            }
            _ => {
                let _ = c.kill(sig);
            }
        }
    }
}
