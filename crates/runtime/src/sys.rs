//! The syscalls the runtime needs that rustix does not wrap safely, and a
//! few thin helpers over those it does; everything else calls rustix
//! directly. `libc` is left for what rustix lacks: here clone3, the exec
//! calls, poll for the set-up child, signal masks, dispositions and
//! signalfd, close_range, dup3 onto a given number, `_exit`, and signals by
//! arbitrary number; elsewhere seccomp(2) (`seccomp`), bpf(2)
//! (`cgroups::devices`), the interface ioctls of `setup::loopback_up`, and
//! fork and execvp in `init`. Each wrapper turns -1/errno into
//! `io::Error`; nothing here knows about containers.
//!
//! What may run in the cloned child (see [`clone_process`]): it is a copy
//! of a single-threaded process, so it may allocate (no other thread can
//! hold the allocator's lock), but no atfork handler ran for it, and it
//! leaves through [`exec_fd`] or [`exit_now`], never through the parent's
//! exit path (atexit handlers, the destructors of the parent's copy).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::process::{Pid, WaitId, WaitIdOptions};
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cstr(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Map a libc return value to `io::Result`.
fn cvt<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Result of [`clone_process`], seen from each side.
pub enum Cloned {
    Child,
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// fork(2) with namespace flags: the child starts in fresh namespaces (so with
/// CLONE_NEWPID it is PID 1 there) and the parent gets a pidfd, which is
/// immune to PID reuse, for waiting and signalling.
///
/// Like fork, the child continues on a copy of the caller's stack. Because
/// this bypasses glibc's fork, no atfork handlers run: the caller must be
/// single-threaded (another thread could hold the malloc lock forever in
/// the child) and the child should only do setup work and then exec or
/// [`exit_now`]. With `cgroup` (a cgroup v2 directory fd) the child starts
/// in that cgroup. `ns_flags` may also hold CLONE_PARENT (the child is the
/// caller's sibling, as exec's second child is the runtime's own).
pub fn clone_process(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    // clone3 refuses an exit signal with CLONE_PARENT: the child then
    // signals its (new) parent as the caller does, with SIGCHLD.
    let sibling = ns_flags & libc::CLONE_PARENT as u64 != 0;
    let mut args = libc::clone_args {
        flags: ns_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: if sibling { 0 } else { libc::SIGCHLD as u64 },
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    if let Some(cg) = cgroup {
        // Born in its cgroup (v2): no migration, no window outside the limits.
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: a NULL stack makes clone3 behave like fork (the child runs on
    // a copy of this stack, see above for what it may do); `args` and
    // `pidfd` outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: pid as libc::pid_t,
            // SAFETY: CLONE_PIDFD made the kernel store a fresh pidfd, which
            // nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // pidfd_open(2) refuses what is not a PID with EINVAL.
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Send signal number `sig`, whichever it is: rustix takes only the named
/// signals safely, and a container may be sent a real-time one.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments and a NULL siginfo, which means "as if sent
    // by kill(2)".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt(r).map(drop)
}

/// kill(2) with any signal number (see [`pidfd_send_signal`]).
pub fn kill(pid: libc::pid_t, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Wait for the process behind `pidfd` to exit and return its raw wait
/// status (as `waitpid` would).
pub fn pidfd_wait(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<i32>> {
    let mut options = WaitIdOptions::EXITED;
    if nohang {
        options |= WaitIdOptions::NOHANG;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), options) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(None) => return Ok(None),
            Ok(Some(st)) => {
                return Ok(Some(match st.exit_status() {
                    Some(code) => (code & 0xff) << 8,
                    // killed or dumped: the low bits are the signal number
                    None => st.terminating_signal().unwrap_or(0) & 0x7f,
                }));
            }
        }
    }
}

/// Block until some of `fds` are readable (or hung up); which ones are.
/// poll(2), where rustix makes ppoll(2): the set-up child waits here under
/// the container's seccomp filter, which was written against poll.
pub fn wait_readable<const N: usize>(fds: [BorrowedFd<'_>; N]) -> io::Result<[bool; N]> {
    let mut p = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `p` is an array of N pollfd, which poll only writes revents of.
        if unsafe { libc::poll(p.as_mut_ptr(), N as libc::nfds_t, -1) } >= 0 {
            return Ok(p.map(|p| p.revents != 0));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Docker's exit code for a raw wait status: the code itself, or 128+signal.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// openat2(2): open `path` beneath `dir` with `resolve` flags (e.g.
/// RESOLVE_IN_ROOT, so `..` and absolute symlinks stay inside `dir`).
///
/// Not berth-snapshot's `Root` resolver, on purpose: this is the bare
/// syscall, called in the set-up child inside the container's mount
/// namespace on a borrowed rootfs fd, to pin mount targets as fds. It has
/// no userspace fallback: without openat2 the runtime fails closed
/// (ENOSYS) rather than walking paths itself. The snapshot crate's `Root`
/// carries the fallback walk that unpacking on old kernels needs.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            // A concurrent rename raced the lookup; try again.
            Err(rustix::io::Errno::AGAIN) => continue,
            r => return Ok(r?),
        }
    }
}

/// open(2), close-on-exec; a file it creates gets mode 0644.
pub fn open(path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?)
}

/// Path that refers to an open fd through procfs; mount(2) follows it to the
/// exact inode the fd was opened on (no second path lookup to race).
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(rustix::io::Errno::INTR) => {}
            r => return Ok(r?),
        }
    }
}

/// Make `fd` this process's standard stream `target` (0, 1 or 2).
pub fn dup_to_stdio(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    Ok(match target {
        0 => rustix::stdio::dup2_stdin(fd),
        1 => rustix::stdio::dup2_stdout(fd),
        _ => rustix::stdio::dup2_stderr(fd),
    }?)
}

/// dup3(2) onto a given fd number, without close-on-exec: what a program
/// exec'd next is to find open there. Whatever was at `target` is closed.
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: integer fds; the caller owns `target` (nothing else uses that
    // number: it is to be the exec'd program's).
    cvt(unsafe { libc::dup3(fd.as_raw_fd(), target, 0) }).map(drop)
}

/// Mark every fd from `first` up close-on-exec (close_range(2)).
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC nothing is closed, only flagged.
    let r = unsafe {
        libc::close_range(
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    cvt(r).map(drop)
}

/// execveat(2) of `fd` itself (AT_EMPTY_PATH), or, where that is refused
/// (a seccomp profile allowing execve but not execveat), execve(2) of its
/// /proc/self/fd link, with `argv0` then `args` as its argv. Returns only
/// on failure.
pub fn exec_fd(fd: BorrowedFd<'_>, argv0: &CStr, args: &[CString], env: &[CString]) -> io::Error {
    let mut argv: Vec<*const libc::c_char> = Vec::with_capacity(args.len() + 2);
    argv.push(argv0.as_ptr());
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of pointers into C strings that live
    // through the call; an empty path with AT_EMPTY_PATH execs the fd itself.
    unsafe {
        libc::execveat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr().cast(),
            envp.as_ptr().cast(),
            libc::AT_EMPTY_PATH,
        )
    };
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS)) {
        return e;
    }
    let path = match cstr(fd_path(fd)) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: as above, and `path` is a C string too.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Leave at once with `code`: no atexit handlers, no destructors, none of
/// which belong to a cloned child.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no preconditions; it ends the process.
    unsafe { libc::_exit(code) }
}

/// A signal set built from signal numbers.
pub fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset adds to it;
    // an invalid number only makes sigaddset fail.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The set of every signal.
pub fn sigset_all() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the set it is given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// Change this thread's signal mask, returning the previous one.
pub fn sigmask(how: libc::c_int, set: &libc::sigset_t) -> libc::sigset_t {
    // SAFETY: both pointers are valid sigset_t; `old` is fully written.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(how, set, &mut old);
        old
    }
}

/// Every signal back to its default disposition (exec keeps ignored ones:
/// Rust ignores SIGPIPE).
pub fn default_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler; an invalid number fails
        // harmlessly (EINVAL).
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// A signalfd(2) for `set` (close-on-exec, non-blocking).
pub fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: a valid sigset pointer; -1 asks for a new fd.
    let fd = cvt(unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// sigwaitinfo(2): the number of the next signal of `set` (which must be
/// blocked), once one is pending.
pub fn sigwait(set: &libc::sigset_t) -> io::Result<i32> {
    // SAFETY: a valid set; `info` is plain data the kernel fills.
    cvt(unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::sigwaitinfo(set, &mut info)
    })
}
