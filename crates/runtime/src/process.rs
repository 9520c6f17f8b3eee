//! A process named by its pid and its start time, as a record outside the
//! runtime names one (the engine's container records name a container's
//! first process and the berth that supervises it). A pid alone may have
//! been reused since it was written down; the pair may not.
//!
//! [`Process::open`] pins the process with a pidfd *before* it checks the
//! start time, so the process checked is the one later signalled or
//! waited for, never a newcomer that got the pid in between.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::sys;

/// Start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    berth_linux::stat::start_time(pid)
}

/// Whether `pid` is still the process that started at `start_time` and
/// has not exited (a zombie only waits to be reaped).
pub fn alive(pid: i32, start_time: u64) -> bool {
    matches!(Process::open(pid, start_time), Ok(Some(p)) if !p.exited())
}

/// Sends `sig` to `pid` if it is still the process that started at
/// `start_time`: false (and nothing sent) when it is gone or the pid now
/// names another process.
pub fn signal(pid: i32, start_time: u64, sig: i32) -> io::Result<bool> {
    match Process::open(pid, start_time)? {
        Some(p) => p.signal(sig).map(|()| true),
        None => Ok(false),
    }
}

/// One process, pinned by a pidfd.
#[derive(Debug)]
pub struct Process {
    pidfd: OwnedFd,
}

impl Process {
    /// The process `pid` if it is still the one that started at
    /// `start_time`; None when it is gone or the pid was reused.
    pub fn open(pid: i32, start_time: u64) -> io::Result<Option<Process>> {
        if pid <= 0 {
            return Ok(None);
        }
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Read after the pidfd pins it: a match is this very process.
        if self::start_time(pid) != Some(start_time) {
            return Ok(None);
        }
        Ok(Some(Process { pidfd }))
    }

    /// Its pidfd (setns(2) takes it to join the process's namespaces).
    pub(crate) fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Moves the calling process, which must be single-threaded, into this
    /// process's user namespace. A rootless berth outside a namespace of
    /// its own does this to reach a container's files: as their owner it
    /// may, and there it has the container root's rights, which /proc's
    /// checks on the container's root want.
    pub fn join_user_namespace(&self) -> io::Result<()> {
        rustix::thread::move_into_thread_name_spaces(
            self.pidfd.as_fd(),
            rustix::thread::ThreadNameSpaceType::USER,
        )
        .map_err(io::Error::from)
    }

    /// Sends `sig` (any signal number, as kill(2) takes it).
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        match sys::pidfd_send_signal(self.pidfd.as_fd(), sig) {
            // Exited meanwhile: there is nothing left to signal.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// Whether it has exited (its pidfd polls readable then, reaped or not).
    pub fn exited(&self) -> bool {
        self.wait_exit(Duration::ZERO)
    }

    /// Waits up to `timeout` for it to exit; whether it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let timeout = Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        loop {
            match poll(&mut fds, Some(&timeout)) {
                Ok(n) => return n > 0,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Wait for a child of this process by its pidfd (a detached exec's, say)
/// and give Docker's exit code for it: its own, or 128+N for signal N.
pub fn wait_child(pidfd: std::os::fd::BorrowedFd<'_>) -> io::Result<i32> {
    let status = crate::sys::pidfd_wait(pidfd, false)?.unwrap_or(0);
    Ok(crate::sys::exit_code(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_its_pid_and_start_time() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        assert!(alive(pid, start));
        // The same pid with another start time is another process.
        assert!(!alive(pid, start + 1));
        assert!(!signal(pid, start + 1, libc::SIGKILL).unwrap());
        let p = Process::open(pid, start).unwrap().unwrap();
        assert!(!p.exited());
        assert!(signal(pid, start, libc::SIGKILL).unwrap());
        assert!(p.wait_exit(Duration::from_secs(10)));
        // A zombie is not alive, and signalling it is no error.
        assert!(!alive(pid, start));
        p.signal(libc::SIGKILL).unwrap();
        child.wait().unwrap();
        assert!(!alive(pid, start));
        assert!(Process::open(pid, start).unwrap().is_none());
    }
}
