//! DNS over TCP (RFC 7766): messages framed by a two-octet length, read
//! and written without blocking, and the server's TCP clients, one query
//! at a time each, each with a deadline.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::Owner;

/// More clients than this are closed as they come: a container asks over
/// TCP only after a truncated UDP answer.
const CLIENTS_MAX: usize = 64;
/// How long a client has to send a whole query, or read a whole reply.
const IDLE: Duration = Duration::from_secs(10);
/// Connections accepted at one wake, so that UDP is not starved.
const ACCEPT_BATCH: usize = 16;

/// One length-framed message coming in.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Reads what `r` has of the message; Some when it is whole. An empty
    /// message or the end of the stream is an error.
    pub(crate) fn read_from(&mut self, r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            let need = match self.buf.as_slice() {
                [hi, lo, ..] => 2 + u16::from_be_bytes([*hi, *lo]) as usize,
                _ => 2,
            };
            if need == 2 && self.buf.len() == 2 {
                return Err(ErrorKind::InvalidData.into());
            }
            if self.buf.len() == need && need > 2 {
                let msg = self.buf.split_off(2);
                self.buf.clear();
                return Ok(Some(msg));
            }
            let have = self.buf.len();
            self.buf.resize(need, 0);
            let n = r.read(&mut self.buf[have..]);
            self.buf.truncate(have + *n.as_ref().unwrap_or(&0));
            match n {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One length-framed message going out.
#[derive(Debug)]
pub(crate) struct FrameWriter {
    out: Vec<u8>,
    sent: usize,
}

impl FrameWriter {
    pub(crate) fn new(msg: &[u8]) -> FrameWriter {
        let mut out = Vec::with_capacity(2 + msg.len());
        out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        out.extend_from_slice(msg);
        FrameWriter { out, sent: 0 }
    }

    /// Writes what `w` takes; true once all is written.
    pub(crate) fn write_to(&mut self, w: &mut impl Write) -> std::io::Result<bool> {
        while self.sent < self.out.len() {
            match w.write(&self.out[self.sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

#[derive(Debug)]
enum State {
    Reading(FrameReader),
    /// A query is being answered (forwarded, most likely).
    Waiting,
    Writing(FrameWriter),
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    state: State,
    deadline: Instant,
}

/// The server's TCP clients, by a number never reused, so that an answer
/// for a client gone is not given to the next.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    conns: HashMap<u64, Conn>,
    next: u64,
}

impl Clients {
    pub(crate) fn accept(&mut self, listener: &TcpListener, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            if self.conns.len() >= CLIENTS_MAX || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.next += 1;
            let state = State::Reading(FrameReader::default());
            let deadline = now + IDLE;
            let conn = Conn {
                stream,
                state,
                deadline,
            };
            self.conns.insert(self.next, conn);
        }
    }

    pub(crate) fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>, owners: &mut Vec<Owner>) {
        for (&token, c) in &self.conns {
            let events = match c.state {
                State::Reading(_) => PollFlags::IN,
                // Errors and hang-ups are reported all the same.
                State::Waiting => PollFlags::empty(),
                State::Writing(_) => PollFlags::OUT,
            };
            fds.push(PollFd::new(&c.stream, events));
            owners.push(Owner::Client(token));
        }
    }

    /// Moves client `token` on after poll said `ready`; a whole query when
    /// one has come.
    pub(crate) fn on_ready(
        &mut self,
        token: u64,
        ready: PollFlags,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let c = self.conns.get_mut(&token)?;
        let done = match &mut c.state {
            State::Reading(r) => match r.read_from(&mut c.stream) {
                Ok(Some(query)) => {
                    c.state = State::Waiting;
                    return Some(query);
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            },
            State::Writing(w) => w.write_to(&mut c.stream),
            State::Waiting if ready.intersects(PollFlags::ERR | PollFlags::HUP) => {
                Err(ErrorKind::ConnectionAborted.into())
            }
            State::Waiting => Ok(false),
        };
        match done {
            Ok(true) => {
                c.state = State::Reading(FrameReader::default());
                c.deadline = now + IDLE;
            }
            Ok(false) => {}
            Err(_) => self.close(token),
        }
        None
    }

    /// Sends `reply` to client `token`, if it is still there.
    pub(crate) fn respond(&mut self, token: u64, reply: &[u8], now: Instant) {
        if let Some(c) = self.conns.get_mut(&token) {
            c.state = State::Writing(FrameWriter::new(reply));
            c.deadline = now + IDLE;
            self.on_ready(token, PollFlags::OUT, now);
        }
    }

    pub(crate) fn close(&mut self, token: u64) {
        self.conns.remove(&token);
    }

    /// Closes the clients past their deadline; the earliest deadline left.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.conns
            .retain(|_, c| matches!(c.state, State::Waiting) || c.deadline > now);
        self.conns
            .values()
            .filter(|c| !matches!(c.state, State::Waiting))
            .map(|c| c.deadline)
            .min()
    }
}
