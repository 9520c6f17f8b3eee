//! Signals taken as events on a file descriptor (signalfd), for a process
//! that sleeps in one poll over several things: a monitor waiting on its
//! container, its output and its clients. The container's own set-up
//! unblocks every signal again before it execs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// Some signals, blocked for as long as this lives and readable from its fd.
pub struct SignalFd {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl SignalFd {
    /// Blocks `signals` and opens a non-blocking signalfd for them.
    pub fn block(signals: &[i32]) -> std::io::Result<SignalFd> {
        let set = sys::sigset(signals);
        let old_mask = sys::sigmask(libc::SIG_BLOCK, &set);
        match sys::signalfd(&set) {
            Ok(fd) => Ok(SignalFd { fd, old_mask }),
            Err(e) => {
                sys::sigmask(libc::SIG_SETMASK, &old_mask);
                Err(e)
            }
        }
    }

    /// The next pending signal's number, if there is one.
    pub fn next(&self) -> Option<i32> {
        // One struct signalfd_siginfo per read; ssi_signo is its first u32.
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        match rustix::io::read(&self.fd, &mut info) {
            Ok(n) if n == info.len() => {
                Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)
            }
            _ => None,
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        sys::sigmask(libc::SIG_SETMASK, &self.old_mask);
    }
}
