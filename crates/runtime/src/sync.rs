//! The channel between the runtime and the container's set-up process: one
//! SOCK_SEQPACKET socketpair (message boundaries for free, and it can carry
//! the pty master as SCM_RIGHTS). Both ends are close-on-exec. The child's
//! end is handed to the exec trampoline as fd 3 (see `trampoline`), which
//! makes it close-on-exec again before it execs the command: when the
//! command is running, the runtime reads end-of-file; that is how it
//! learns that exec succeeded.
//!
//! One message per packet, its first byte the tag; [`send`] is the only
//! writer of tags (the trampoline's `X` aside), [`recv`] the only reader.
//!
//! ```text
//!  runtime (create / start)                    child (setup.rs)
//!  ───────────────────────                    ────────────────
//!  clone3 ──────────────────────────────────▶ blocks in recv
//!  uid/gid maps written (user namespace)
//!  G  go ahead ─────────────────────────────▶ joins its v1 cgroup, enters
//!                                             namespaces, mounts its root
//!     ◀────────────────────────── H  run the createRuntime hooks (if any)
//!  runs them (see hooks)
//!  G  go on ────────────────────────────────▶ switches root, sets its
//!                                             identity
//!     ◀────────────────────────── T  pty master (SCM_RIGHTS), `terminal` only
//!     ◀────────────────────────── R  <the command's resolved path>
//!  state.json written                         blocks on the exec fifo, and
//!                                             on this socket: end-of-file
//!                                             before D means the runtime
//!                                             died, and it exits
//!  D  handed over (`create` returns) ───────▶ drops its parent-death signal
//!     ◀────────────────────────── A  acknowledged
//!  start: writes the exec fifo ─────────────▶ execs the trampoline
//!     ◀────────────────────────── end-of-file: the command runs
//!     ◀────────────────────────── X <errno>: the trampoline's exec failed
//! ```
//! At any point the child may send `E<kind><message>` (set-up failed) and
//! exit; the runtime then kills and reaps it.
//!
//! `exec` into a running container (see `exec`) has two children on the
//! channel: one that joins the container's namespaces, and its own child,
//! born in them (in the container's PID namespace) as the runtime's child:
//! ```text
//!  runtime                     joining child            exec'd child
//!  clone3 (into the cgroup) ─▶ setns, clone3 ─────────▶ sets its identity
//!     ◀──────────────────────  P <pid> + its pidfd       (any order from here)
//!                              exits
//!     ◀────────────────────────────────────────────────  T  pty master
//!     ◀────────────────────────────────────────────────  R  <path>
//!     ◀────────────────────────────────────────────────  end-of-file / X / E
//! ```

use crate::error::Error;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use std::ffi::CStr;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The tags, one byte each, shared by [`send`] and [`recv`].
mod tag {
    pub const GO: u8 = b'G';
    pub const HOOKS: u8 = b'H';
    pub const PTY: u8 = b'T';
    pub const READY: u8 = b'R';
    pub const DETACH: u8 = b'D';
    pub const ACK: u8 = b'A';
    pub const FAILED: u8 = b'E';
    pub const PID: u8 = b'P';
    /// Written by the trampoline's machine code, never by [`super::send`].
    pub const EXEC_FAILED: u8 = b'X';
}

pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A message to send: borrowed, so that sending allocates nothing.
pub enum Outgoing<'a> {
    /// runtime → child: go on with set-up (the maps of a new user
    /// namespace are written; the createRuntime hooks have run).
    Go,
    /// child → runtime: namespaces and rootfs are ready, run the
    /// createRuntime hooks now.
    Hooks,
    /// child → runtime: the pty master.
    Pty(BorrowedFd<'a>),
    /// child → runtime: set up; the command's resolved path.
    Ready(&'a CStr),
    /// runtime → child: handed over, the container may outlive the runtime.
    Detach,
    /// child → runtime: the parent-death signal is dropped.
    Ack,
    /// child → runtime: set-up (or exec) failed.
    Failed(&'a Error),
    /// exec's joining child → runtime: the exec'd child, by its host pid
    /// and a pidfd.
    Pid(i32, BorrowedFd<'a>),
}

/// A message received.
pub enum Msg {
    Go,
    Hooks,
    /// Set up; the command's resolved path.
    Ready(String),
    /// The trampoline's exec of the command failed with this errno.
    ExecFailed(i32),
    Detach,
    Ack,
    Pty(OwnedFd),
    Failed(Error),
    /// The exec'd child: its host pid and a pidfd.
    Pid(i32, OwnedFd),
    /// The peer closed its end: exec succeeded (or the process died).
    Eof,
}

/// Write `msg` as one packet.
pub fn send(sock: BorrowedFd<'_>, msg: Outgoing<'_>) -> io::Result<()> {
    let mut fd = None;
    let kind;
    let pid;
    let (tag, body): (u8, &[&[u8]]) = match msg {
        Outgoing::Go => (tag::GO, &[]),
        Outgoing::Hooks => (tag::HOOKS, &[]),
        Outgoing::Pty(master) => {
            fd = Some(master);
            (tag::PTY, &[])
        }
        Outgoing::Ready(path) => (tag::READY, &[path.to_bytes()]),
        Outgoing::Detach => (tag::DETACH, &[]),
        Outgoing::Ack => (tag::ACK, &[]),
        Outgoing::Failed(err) => {
            kind = [err.kind_byte()];
            (tag::FAILED, &[&kind, err.message.as_bytes()])
        }
        Outgoing::Pid(p, pidfd) => {
            fd = Some(pidfd);
            pid = p.to_ne_bytes();
            (tag::PID, &[&pid])
        }
    };
    let tag = [tag];
    let iov: [IoSlice<'_>; 3] = [
        IoSlice::new(&tag),
        IoSlice::new(body.first().copied().unwrap_or_default()),
        IoSlice::new(body.get(1).copied().unwrap_or_default()),
    ];
    let fds;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if let Some(fd) = fd {
        fds = [fd];
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => {}
            r => return r.map(drop).map_err(io::Error::from),
        }
    }
}

/// Tell the runtime why set-up failed, if it still listens.
pub fn send_error(sock: BorrowedFd<'_>, err: &Error) {
    let _ = send(sock, Outgoing::Failed(err));
}

pub fn recv(sock: BorrowedFd<'_>) -> io::Result<Msg> {
    let mut buf = vec![0u8; 8192];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => {}
            r => break r?.bytes,
        }
    };
    let mut passed_fd = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                passed_fd = Some(fd);
            }
        }
    }
    if n == 0 {
        return Ok(Msg::Eof);
    }
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed message from container setup",
        )
    };
    Ok(match buf[0] {
        tag::GO => Msg::Go,
        tag::HOOKS => Msg::Hooks,
        tag::READY => Msg::Ready(String::from_utf8_lossy(&buf[1..n]).into_owned()),
        tag::EXEC_FAILED if n == 2 => Msg::ExecFailed(i32::from(buf[1])),
        tag::DETACH => Msg::Detach,
        tag::ACK => Msg::Ack,
        tag::PTY => Msg::Pty(passed_fd.ok_or_else(bad)?),
        tag::PID if n == 5 => Msg::Pid(
            i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]),
            passed_fd.ok_or_else(bad)?,
        ),
        tag::FAILED if n >= 2 => Msg::Failed(Error::from_kind_byte(
            buf[1],
            String::from_utf8_lossy(&buf[2..n]).into_owned(),
        )),
        _ => return Err(bad()),
    })
}
