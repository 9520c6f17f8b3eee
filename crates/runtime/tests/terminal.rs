//! `process.terminal`: a real pseudo-terminal on the test side stands in
//! for the user's terminal.

mod common;

use common::*;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;

fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    let ws = libc::winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers are valid; name and termios may be NULL.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0);
    // SAFETY: fresh fds.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: termios is plain data.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: an open fd and a termios to fill.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t
}

fn read_some(fd: &OwnedFd, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: valid buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    out.extend_from_slice(&buf[..n as usize]);
    true
}

#[test]
fn tty_window_size_ctrl_c_and_mode_restore() {
    // PID 1 is busybox sh, which handles SIGINT (so it receives it even as
    // PID 1) by exiting with 130; it waits in the `read` builtin, so no child
    // process (busybox runs applets like sleep inside the shell) blurs it.
    let mut b = Bundle::sh("tty; stty size; echo ready; read x; echo not-interrupted");
    b.config["process"]["terminal"] = true.into();
    let (master, slave) = openpty();
    let before = termios(&slave);
    let mut cmd = b.command(true);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let during = {
        let mut out = Vec::new();
        while !String::from_utf8_lossy(&out).contains("ready") {
            assert!(
                read_some(&master, &mut out),
                "eof before ready: {:?}",
                String::from_utf8_lossy(&out)
            );
        }
        let during = termios(&slave);
        // ^C typed by the user travels as a byte and becomes SIGINT inside.
        assert_eq!(
            // SAFETY: writing one byte from a valid buffer.
            unsafe { libc::write(master.as_raw_fd(), [3u8].as_ptr().cast(), 1) },
            1
        );
        drop(slave);
        while read_some(&master, &mut out) {}
        let out = String::from_utf8_lossy(&out).into_owned();
        assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
        assert!(out.contains("33 111\r\n"), "{out:?}");
        assert!(!out.contains("not-interrupted"), "{out:?}");
        during
    };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(
        during.c_lflag & libc::ICANON,
        0,
        "terminal was not in raw mode"
    );
    let after = termios(&master);
    assert_eq!(after.c_lflag, before.c_lflag, "local modes not restored");
    assert_eq!(after.c_iflag, before.c_iflag, "input modes not restored");
    assert_eq!(after.c_oflag, before.c_oflag, "output modes not restored");
}

#[test]
fn window_size_changes_reach_the_container() {
    let mut b = Bundle::sh("trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done");
    b.config["process"]["terminal"] = true.into();
    let (master, slave) = openpty();
    let mut cmd = b.command(true);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("ready") {
        assert!(read_some(&master, &mut out), "eof before ready");
    }
    // What a terminal emulator does on resize: new size, then SIGWINCH to
    // the foreground process (berth).
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid winsize pointer; plain kill of our own child.
    unsafe {
        assert_eq!(libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws), 0);
        assert_eq!(libc::kill(child.id() as i32, libc::SIGWINCH), 0);
    }
    while !String::from_utf8_lossy(&out).contains("40 120") {
        assert!(
            read_some(&master, &mut out),
            "eof before resize: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(
        // SAFETY: writing one byte (^C) from a valid buffer.
        unsafe { libc::write(master.as_raw_fd(), [3u8].as_ptr().cast(), 1) },
        1
    );
    drop(slave);
    while read_some(&master, &mut out) {}
    assert_eq!(child.wait().unwrap().code(), Some(130));
}
