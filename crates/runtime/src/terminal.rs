//! The host side of `-t`: raw mode on the caller's terminal (restored by
//! Drop on every return path) and window-size propagation to the pty.

use rustix::termios::{OptionalActions, Termios};
use std::os::fd::BorrowedFd;

/// Puts a terminal in raw mode; restores the saved mode when dropped.
pub struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    /// None when `fd` is not a terminal (nothing to change).
    pub fn enable(fd: BorrowedFd<'static>) -> Option<RawMode> {
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    rustix::termios::isatty(fd)
}

/// Copy the window size of the caller's terminal (stdin, else stdout) to the
/// pty; the kernel then sends SIGWINCH to the container's foreground group.
pub fn copy_window_size(master: BorrowedFd<'_>) {
    for fd in [rustix::stdio::stdin(), rustix::stdio::stdout()] {
        if let Ok(ws) = rustix::termios::tcgetwinsize(fd) {
            let _ = rustix::termios::tcsetwinsize(master, ws);
            return;
        }
    }
}

/// Hand a pty master to whoever listens on the unix socket at `path`
/// (runc's `--console-socket`: containerd's shim, conmon): one message
/// carrying the fd (SCM_RIGHTS) and, as runc sends, the name "/dev/ptmx".
pub fn send_to_console_socket(
    path: &std::path::Path,
    master: BorrowedFd<'_>,
) -> std::io::Result<()> {
    use rustix::net::{
        AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
        SocketFlags, SocketType,
    };
    use std::mem::MaybeUninit;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&sock, &SocketAddrUnix::new(path)?)?;
    let name = b"/dev/ptmx";
    let iov = [std::io::IoSlice::new(name)];
    let fds = [master];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    loop {
        match rustix::net::sendmsg(&sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => {}
            r => return r.map(drop).map_err(Into::into),
        }
    }
}
