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
