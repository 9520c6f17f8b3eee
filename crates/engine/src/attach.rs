//! `attach`: the caller's stdio joined to a running detached container,
//! through its monitor's socket ([`crate::monitor::attach`]). Output comes
//! as the container writes it, stdout and stderr apart; the caller's input
//! goes in (with `-i`), its terminal in raw mode when the container has a
//! pty; the detach keys (ctrl-p ctrl-q unless told) leave the container
//! running. Returns the container's exit code, or None when detached.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use berth_runtime::signals::SignalFd;
use rustix::event::{PollFd, PollFlags};

use crate::Engine;
use crate::monitor::attach::{self as wire, frame, next_frame};
use crate::records::ContainerRecord;

/// How to attach.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Send the caller's stdin (when the container keeps one open).
    pub stdin: bool,
    /// `--detach-keys`, Docker's grammar (`ctrl-p,ctrl-q`); None: that.
    pub detach_keys: Option<String>,
    /// Forward SIGINT, SIGTERM… to the container (without a pty).
    pub sig_proxy: bool,
}

/// Docker's `--detach-keys`: comma-separated `ctrl-X` or single characters.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut keys = Vec::new();
    for k in s.split(',') {
        let k = k.trim();
        let b = match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => bail!("invalid detach keys {s:?}: unknown key ctrl-{}", c as char),
                }
            }
            None if k.len() == 1 => k.as_bytes()[0],
            _ => bail!("invalid detach keys {s:?}: unknown key {k:?}"),
        };
        keys.push(b);
    }
    if keys.is_empty() {
        bail!("invalid detach keys {s:?}");
    }
    Ok(keys)
}

/// Attaches to the running container `key`.
pub fn attach(engine: &Engine, key: &str, opts: &AttachOptions) -> Result<Option<i32>> {
    let records = engine.records()?;
    let c = records.find(key)?;
    if !c.is_running() {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if c.paused {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if !c.detached {
        bail!(
            "container {} runs in the foreground of another berth; it has no monitor to attach to",
            c.name
        );
    }
    Session::connect(engine, &c, opts)?.run()
}

/// A connection to a container's monitor, ready to relay.
pub struct Session {
    sock: UnixStream,
    keys: Vec<u8>,
    stdin: bool,
    tty: bool,
    sig_proxy: bool,
}

impl Session {
    /// Connects to the monitor of container `c` (running, or held for
    /// this attach: see [`crate::monitor::spawn_held`]).
    pub fn connect(engine: &Engine, c: &ContainerRecord, opts: &AttachOptions) -> Result<Session> {
        let keys = parse_detach_keys(opts.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
        let sock = wire::connect(&engine.records()?.dir(&c.id))
            .with_context(|| format!("attach to container {}", c.name))?;
        crate::events::container(engine, c, "attach");
        Ok(Session {
            sock,
            keys,
            stdin: opts.stdin && c.open_stdin,
            tty: c.tty,
            sig_proxy: opts.sig_proxy && !c.tty,
        })
    }
    /// Relays until the container exits (its code) or the caller detaches (None).
    pub fn run(mut self) -> Result<Option<i32>> {
        let sig_proxy = self.sig_proxy;
        use rustix::stdio::stdin;
        let _raw = match self.tty && self.stdin {
            true => berth_runtime::terminal::RawMode::enable(stdin()),
            false => None,
        };
        if self.tty {
            self.send_size();
        }
        let forwarded: &[i32] = if sig_proxy {
            &berth_runtime::FORWARDED_SIGNALS
        } else {
            &[libc::SIGWINCH]
        };
        let signals = SignalFd::block(forwarded).context("attach: signalfd")?;
        let mut inbuf = Vec::new();
        let mut matched = 0usize;
        let mut stdin_open = self.stdin;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = vec![
                PollFd::new(&self.sock, PollFlags::IN),
                PollFd::new(&signals, PollFlags::IN),
            ];
            if stdin_open {
                fds.push(PollFd::from_borrowed_fd(stdin(), PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e).context("attach: poll"),
            }
            let (sock_ready, sig_ready) =
                (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
            let in_ready = fds.get(2).is_some_and(|p| !p.revents().is_empty());
            drop(fds);
            if sig_ready {
                self.signals(&signals);
            }
            if in_ready {
                match rustix::io::read(stdin(), &mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        self.sock.write_all(&frame(wire::STDIN_CLOSE, &[]))?;
                    }
                    Ok(n) => {
                        if self.forward_input(&buf[..n], &mut matched)? {
                            return Ok(None);
                        }
                    }
                }
            }
            if sock_ready {
                let n = match self.sock.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context("attach: read"),
                };
                if n == 0 {
                    // The monitor went without an exit code.
                    return Ok(None);
                }
                inbuf.extend_from_slice(&buf[..n]);
                if let Some(code) = write_frames(&mut inbuf)? {
                    return Ok(Some(code));
                }
            }
        }
    }

    /// Sends input on, up to the detach keys; true when they were typed.
    fn forward_input(&mut self, data: &[u8], matched: &mut usize) -> Result<bool> {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[*matched] {
                *matched += 1;
                if *matched == self.keys.len() {
                    self.sock.write_all(&frame(wire::STDIN, &out))?;
                    return Ok(true);
                }
                continue;
            }
            // A partial match that failed goes in after all.
            out.extend_from_slice(&self.keys[..*matched]);
            *matched = 0;
            out.push(b);
        }
        if !out.is_empty() {
            self.sock.write_all(&frame(wire::STDIN, &out))?;
        }
        Ok(false)
    }

    /// Window sizes go to the pty; other signals (with `--sig-proxy`) to
    /// the monitor, which sends them to PID 1, whichever it is by then.
    fn signals(&mut self, signals: &SignalFd) {
        while let Some(sig) = signals.next() {
            if sig == libc::SIGWINCH {
                self.send_size();
            } else {
                let _ = self
                    .sock
                    .write_all(&frame(wire::SIGNAL, &sig.to_be_bytes()));
            }
        }
    }

    fn send_size(&mut self) {
        for fd in [rustix::stdio::stdin(), rustix::stdio::stdout()] {
            if let Ok(ws) = rustix::termios::tcgetwinsize(fd) {
                let mut p = ws.ws_row.to_be_bytes().to_vec();
                p.extend_from_slice(&ws.ws_col.to_be_bytes());
                let _ = self.sock.write_all(&frame(wire::RESIZE, &p));
                return;
            }
        }
    }
}

/// Writes the output frames in `inbuf` to stdout and stderr; the exit code
/// once it came.
fn write_frames(inbuf: &mut Vec<u8>) -> Result<Option<i32>> {
    while let Some(f) = next_frame(inbuf) {
        let (kind, payload) = f.context("attach: bad frame from the monitor")?;
        match kind {
            wire::STDOUT => write_fd(rustix::stdio::stdout(), &payload),
            wire::STDERR => write_fd(rustix::stdio::stderr(), &payload),
            wire::EXIT if payload.len() == 4 => {
                return Ok(Some(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ])));
            }
            _ => {}
        }
    }
    Ok(None)
}

fn write_fd(fd: impl AsFd, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_follow_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-[").unwrap(), vec![b'a', 27]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }
}
