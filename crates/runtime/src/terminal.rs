//! The host side of `-t`: raw mode on the caller's terminal (restored by
//! Drop on every return path) and window-size propagation to the pty.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Puts a terminal in raw mode; restores the saved mode when dropped.
pub(crate) struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// None when `fd` is not a terminal (nothing to change).
    pub(crate) fn enable(fd: i32) -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: valid termios pointer.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes read in `enable`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

pub(crate) fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

/// Copy the window size of the caller's terminal (stdin, else stdout) to the
/// pty; the kernel then sends SIGWINCH to the container's foreground group.
pub(crate) fn copy_window_size(master: BorrowedFd<'_>) {
    for fd in [0, 1] {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            // SAFETY: valid winsize pointer.
            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            return;
        }
    }
}
