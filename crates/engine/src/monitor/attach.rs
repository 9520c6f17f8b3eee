//! `attach`'s wire: a unix socket the monitor listens on,
//! `<container dir>/attach.sock`, reachable only by who may enter that
//! directory (berth's root). Frames both ways are `[kind][len: u32 BE][payload]`:
//! the monitor sends the container's output as it comes ([`STDOUT`],
//! [`STDERR`]) and its exit code ([`EXIT`], 4 bytes BE) before closing;
//! a client sends input ([`STDIN`]), end of input ([`STDIN_CLOSE`]) and
//! its terminal's size ([`RESIZE`]: rows, cols as u16 BE) and signals
//! for PID 1 ([`SIGNAL`], 4 bytes BE). Nothing is
//! replayed: what came before is in the log, as with Docker.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const STDIN_CLOSE: u8 = 4;
pub const RESIZE: u8 = 5;
pub const SIGNAL: u8 = 6;

/// Output a slow client has not taken yet, at most: past it, it is let go
/// rather than let it stall the container (whose output still goes to the log).
const CLIENT_BACKLOG: usize = 8 << 20;
/// The largest frame a client may send.
const MAX_FRAME: usize = 1 << 20;

/// The socket's path for a container dir.
pub fn socket_path(cdir: &Path) -> PathBuf {
    cdir.join("attach.sock")
}

/// A path to `name` in `dir` short enough for a unix socket address
/// (108 bytes) however deep `dir` is: through the open directory's fd.
fn short_path(dir: &std::fs::File, name: &str) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// Connects to the monitor of the container in `cdir`.
pub fn connect(cdir: &Path) -> std::io::Result<UnixStream> {
    let dir = std::fs::File::open(cdir)?;
    UnixStream::connect(short_path(&dir, "attach.sock"))
}

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Takes complete frames off the front of `buf`.
pub fn next_frame(buf: &mut Vec<u8>) -> Option<std::io::Result<(u8, Vec<u8>)>> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME {
        return Some(Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "attach frame too large",
        )));
    }
    if buf.len() < 5 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Some(Ok((kind, payload)))
}

pub(crate) struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

/// What a client asked for.
pub(crate) enum Request {
    Input(Vec<u8>),
    CloseInput,
    Resize(u16, u16),
    Signal(i32),
}

pub(crate) struct Server {
    listener: UnixListener,
    path: PathBuf,
    pub clients: Vec<Client>,
}

impl Server {
    pub fn bind(cdir: &Path) -> Result<Server> {
        let path = socket_path(cdir);
        let _ = std::fs::remove_file(&path);
        let dir = std::fs::File::open(cdir).with_context(|| format!("open {}", cdir.display()))?;
        let listener = UnixListener::bind(short_path(&dir, "attach.sock"))
            .with_context(|| format!("listen on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            path,
            clients: Vec::new(),
        })
    }

    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    stream,
                    inbuf: Vec::new(),
                    outbuf: Vec::new(),
                });
            }
        }
    }

    /// Waits until a client connects, or `limit` has passed.
    pub fn wait_for_client(&mut self, limit: std::time::Duration) {
        let mut fds = [rustix::event::PollFd::new(
            &self.listener,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec::try_from(limit).ok();
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        self.accept();
    }

    /// Queues `data` for every client and writes what each takes now.
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let f = frame(kind, data);
        for c in &mut self.clients {
            c.outbuf.extend_from_slice(&f);
        }
        self.flush();
    }

    /// Writes queued output; lets go of clients that are gone or too slow.
    pub fn flush(&mut self) {
        self.clients.retain_mut(|c| {
            while !c.outbuf.is_empty() {
                match c.stream.write(&c.outbuf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        c.outbuf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            c.outbuf.len() <= CLIENT_BACKLOG
        });
    }

    /// Reads what client `i` sent, through the caller's `buf` (a big
    /// buffer on the stack would keep the monitor's idle stack big);
    /// false when it has gone.
    pub fn read_client(&mut self, i: usize, buf: &mut [u8], out: &mut Vec<Request>) -> bool {
        let c = &mut self.clients[i];
        loop {
            match c.stream.read(buf) {
                Ok(0) => return false,
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        while let Some(f) = next_frame(&mut c.inbuf) {
            match f {
                Ok((STDIN, data)) => out.push(Request::Input(data)),
                Ok((STDIN_CLOSE, _)) => out.push(Request::CloseInput),
                Ok((RESIZE, p)) if p.len() == 4 => out.push(Request::Resize(
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                )),
                Ok((SIGNAL, p)) if p.len() == 4 => out.push(Request::Signal(i32::from_be_bytes([
                    p[0], p[1], p[2], p[3],
                ]))),
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Tells every client the exit code and lets them go (blocking briefly
    /// for what they have not taken: the exit must reach them).
    pub fn exited(&mut self, code: i32) {
        self.broadcast(EXIT, &code.to_be_bytes());
        for c in &mut self.clients {
            let _ = c.stream.set_nonblocking(false);
            let _ = c
                .stream
                .set_write_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = c.stream.write_all(&c.outbuf);
        }
        self.clients.clear();
    }

    pub fn close(&mut self) {
        self.clients.clear();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Client {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    pub fn wants_out(&self) -> bool {
        !self.outbuf.is_empty()
    }
}
