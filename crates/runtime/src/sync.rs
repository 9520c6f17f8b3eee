//! The channel between the runtime and the container's setup process: one
//! SOCK_SEQPACKET socketpair (message boundaries for free, and it can carry
//! the pty master as SCM_RIGHTS). Both ends are close-on-exec, so when the
//! container's command is exec'd the runtime reads end-of-file: that is
//! how it learns that exec succeeded.
//!
//! Messages, one per packet, first byte is the tag:
//! - `G` runtime → child: go on with setup (the hook where uid maps or
//!   cgroup placement will be done before the child continues).
//! - `T` child → runtime: pty master fd attached.
//! - `R` child → runtime: `R<path>`, the command's resolved path; set up,
//!   now blocked on the exec fifo (and on
//!   this socket: end-of-file before `D` means the runtime died, and the
//!   child exits rather than wait for a start that cannot come).
//! - `D` runtime → child: handed over (a `create` that returns): from now
//!   on the container may outlive the runtime; the child drops its
//!   parent-death signal and answers `A`.
//! - `E` child → runtime: `E<kind><message>`, setup or exec failed.
//! - `X` trampoline → runtime: `X<errno>`, the exec of the command failed
//!   (see `trampoline`: it can say no more than that).

use crate::error::Error;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid out-array of two ints.
    crate::sys::cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub enum Msg {
    Go,
    /// Set up; the command's resolved path.
    Ready(String),
    /// The trampoline's exec of the command failed with this errno.
    ExecFailed(i32),
    Detach,
    Ack,
    Pty(OwnedFd),
    Failed(Error),
    /// The peer closed its end: exec succeeded (or the process died).
    Eof,
}

pub fn send(
    sock: BorrowedFd<'_>,
    tag: u8,
    body: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(body.len() + 1);
    buf.push(tag);
    buf.extend_from_slice(body);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one fd in the control message; u64 array keeps it aligned.
    let mut cmsg_buf = [0u64; 4];
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: the control buffer is large enough for CMSG_SPACE(sizeof(int))
        // and CMSG_FIRSTHDR points inside it.
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            msg.msg_control = cmsg_buf.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: msg points at live buffers.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(());
    }
}

pub fn send_error(sock: BorrowedFd<'_>, err: &Error) {
    let mut body = vec![err.kind_byte()];
    body.extend_from_slice(err.message.as_bytes());
    let _ = send(sock, b'E', &body, None);
}

pub fn recv(sock: BorrowedFd<'_>) -> io::Result<Msg> {
    let mut buf = vec![0u8; 8192];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg_buf = [0u64; 4];
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    let n = loop {
        // SAFETY: msg points at live buffers.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        break r as usize;
    };
    let mut passed_fd = None;
    // SAFETY: walking the control messages the kernel wrote into cmsg_buf.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                passed_fd = Some(OwnedFd::from_raw_fd(fd));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
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
        b'G' => Msg::Go,
        b'R' => Msg::Ready(String::from_utf8_lossy(&buf[1..n]).into_owned()),
        b'X' if n == 2 => Msg::ExecFailed(i32::from(buf[1])),
        b'D' => Msg::Detach,
        b'A' => Msg::Ack,
        b'T' => Msg::Pty(passed_fd.ok_or_else(bad)?),
        b'E' if n >= 2 => Msg::Failed(Error::from_kind_byte(
            buf[1],
            String::from_utf8_lossy(&buf[2..n]).into_owned(),
        )),
        _ => return Err(bad()),
    })
}
