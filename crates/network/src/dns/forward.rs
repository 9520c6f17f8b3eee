//! Queries for names the server does not hold, relayed as bytes to the
//! upstream resolvers in turn: over UDP from one socket per address family
//! under an id of the server's choosing (two clients may well pick the
//! same id), a reply taken only with that id, from an upstream asked, about
//! the same question; over TCP on a connection of its own per query. The
//! time a query is given is shared among the upstreams not yet tried; a
//! SERVFAIL or REFUSED moves on to the next, as Docker's resolver does.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::Owner;
use super::message::{self, REFUSED, SERVFAIL};
use super::tcp::{FrameReader, FrameWriter};
use crate::{Error, Result};

/// Queries waiting for upstream at once; more are answered SERVFAIL.
const PENDING_MAX: usize = 1024;
/// Of them, the ones over TCP, each holding a connection.
const TCP_MAX: usize = 64;
/// Replies read from an upstream socket at one wake.
const BATCH: usize = 64;

/// Who asked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Client {
    Udp(SocketAddr),
    /// A TCP client's token (see `tcp::Clients`).
    Tcp(u64),
}

/// A query's TCP connection to its current upstream.
#[derive(Debug)]
struct Leg {
    stream: TcpStream,
    writer: FrameWriter,
    reader: FrameReader,
    written: bool,
}

#[derive(Debug)]
struct Pending {
    client: Client,
    client_id: u16,
    /// The query as sent upstream, under the server's id.
    query: Vec<u8>,
    tcp: Option<Leg>,
    over_tcp: bool,
    /// Upstreams asked so far, in order.
    tried: usize,
    attempt_end: Instant,
    end: Instant,
}

#[derive(Debug)]
pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    pending: HashMap<u16, Pending>,
    /// Keyed at random by the OS: ids nobody off the host can guess.
    ids: RandomState,
    count: u64,
    timeout: Duration,
    /// Replies ready for their clients.
    pub(crate) done: Vec<(Client, Vec<u8>)>,
}

impl Forwarder {
    pub(crate) fn new(upstreams: &[SocketAddr], timeout: Duration) -> Result<Forwarder> {
        // A family the host cannot use (IPv6 disabled, say) only costs the
        // upstreams of that family; with no socket at all, nothing works.
        let mut failed = None;
        let mut socket = |any: &str, v4: bool| {
            if !upstreams.iter().any(|u| u.is_ipv4() == v4) {
                return None;
            }
            let s = UdpSocket::bind(any).and_then(|s| s.set_nonblocking(true).map(|()| s));
            s.map_err(|e| failed = Some(Error::io(format!("bind DNS forwarding on {any}"), e)))
                .ok()
        };
        let (v4, v6) = (socket("0.0.0.0:0", true), socket("[::]:0", false));
        if let (None, None, Some(e)) = (&v4, &v6, failed) {
            return Err(e);
        }
        Ok(Forwarder {
            upstreams: upstreams.to_vec(),
            v4,
            v6,
            pending: HashMap::new(),
            ids: RandomState::new(),
            count: 0,
            timeout,
            done: Vec::new(),
        })
    }

    /// Relays `query` (a query parsed already) from `client`.
    pub(crate) fn start(&mut self, client: Client, query: &[u8], now: Instant) {
        let over_tcp = matches!(client, Client::Tcp(_));
        let full = self.pending.len() >= PENDING_MAX
            || (over_tcp && self.pending.values().filter(|p| p.over_tcp).count() >= TCP_MAX);
        // With at most 1024 of 65536 ids taken, 16 draws all taken is
        // about one chance in 2^64.
        let mut id = None;
        for _ in 0..16 {
            let draw = self.next_id();
            if !self.pending.contains_key(&draw) {
                id = Some(draw);
                break;
            }
        }
        let (Some(id), false, false) = (id, full, self.upstreams.is_empty()) else {
            if let Some(reply) = servfail(query, over_tcp) {
                self.done.push((client, reply));
            }
            return;
        };
        let mut sent = query.to_vec();
        message::set_id(&mut sent, id);
        let p = Pending {
            client,
            client_id: u16::from_be_bytes([query[0], query[1]]),
            query: sent,
            tcp: None,
            over_tcp,
            tried: 0,
            attempt_end: now,
            end: now + self.timeout,
        };
        self.pending.insert(id, p);
        self.next_attempt(id, now);
    }

    fn next_id(&mut self) -> u16 {
        self.count += 1;
        self.ids.hash_one(self.count) as u16
    }

    /// Asks the next upstream that takes the query; SERVFAIL when none is
    /// left, or no time.
    fn next_attempt(&mut self, id: u16, now: Instant) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.tcp = None;
        while p.tried < self.upstreams.len() && now < p.end {
            let up = self.upstreams[p.tried];
            let left = (self.upstreams.len() - p.tried) as u32;
            p.tried += 1;
            let sent = if p.over_tcp {
                connect(up).map(|stream| {
                    p.tcp = Some(Leg {
                        stream,
                        writer: FrameWriter::new(&p.query),
                        reader: FrameReader::default(),
                        written: false,
                    })
                })
            } else {
                let socket = if up.is_ipv4() { &self.v4 } else { &self.v6 };
                socket
                    .as_ref()
                    .map_or(Err(std::io::ErrorKind::Unsupported.into()), |s| {
                        s.send_to(&p.query, up).map(drop)
                    })
            };
            if sent.is_ok() {
                p.attempt_end = now + (p.end - now) / left;
                return;
            }
        }
        self.fail(id);
    }

    fn fail(&mut self, id: u16) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        if let Some(mut reply) = servfail(&p.query, p.over_tcp) {
            message::set_id(&mut reply, p.client_id);
            self.done.push((p.client, reply));
        }
    }

    /// Takes `resp` if it answers a query waiting, from where it was sent;
    /// None if not.
    fn on_reply(&mut self, resp: &[u8], from: Option<SocketAddr>, now: Instant) -> Option<()> {
        let (id, rcode) = message::response_head(resp)?;
        let p = self.pending.get(&id)?;
        let asked = &self.upstreams[..p.tried];
        let from_asked = match from {
            Some(from) => {
                !p.over_tcp
                    && asked
                        .iter()
                        .any(|u| u.ip() == from.ip() && u.port() == from.port())
            }
            None => p.over_tcp,
        };
        if !from_asked || !message::same_question(&p.query, resp) {
            return None;
        }
        if matches!(rcode, SERVFAIL | REFUSED) && p.tried < self.upstreams.len() {
            self.next_attempt(id, now);
            return Some(());
        }
        let p = self.pending.remove(&id)?;
        let mut reply = resp.to_vec();
        message::set_id(&mut reply, p.client_id);
        self.done.push((p.client, reply));
        Some(())
    }

    pub(crate) fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>, owners: &mut Vec<Owner>) {
        for (i, s) in [&self.v4, &self.v6].into_iter().enumerate() {
            if let Some(s) = s {
                fds.push(PollFd::new(s, PollFlags::IN));
                owners.push(Owner::Upstream(i));
            }
        }
        for (&id, p) in &self.pending {
            if let Some(leg) = &p.tcp {
                let events = if leg.written {
                    PollFlags::IN
                } else {
                    PollFlags::OUT
                };
                fds.push(PollFd::new(&leg.stream, events));
                owners.push(Owner::UpstreamTcp(id));
            }
        }
    }

    /// Reads the replies waiting on UDP socket `family` (0 IPv4, 1 IPv6).
    pub(crate) fn on_udp(&mut self, family: usize, buf: &mut [u8], now: Instant) {
        for _ in 0..BATCH {
            let socket = if family == 0 { &self.v4 } else { &self.v6 };
            let Some(Ok((n, from))) = socket.as_ref().map(|s| s.recv_from(buf)) else {
                return;
            };
            self.on_reply(&buf[..n], Some(from), now);
        }
    }

    /// Moves query `id`'s TCP connection on; the next upstream if it broke
    /// or answered something else.
    pub(crate) fn on_tcp(&mut self, id: u16, now: Instant) {
        let Some(leg) = self.pending.get_mut(&id).and_then(|p| p.tcp.as_mut()) else {
            return;
        };
        let step = if leg.written {
            leg.reader.read_from(&mut leg.stream)
        } else {
            match leg.writer.write_to(&mut leg.stream) {
                Ok(written) => {
                    leg.written = written;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        match step {
            Ok(None) => {}
            Ok(Some(resp)) => {
                let ours = message::response_head(&resp).is_some_and(|(rid, _)| rid == id);
                if !ours || self.on_reply(&resp, None, now).is_none() {
                    self.next_attempt(id, now);
                }
            }
            Err(_) => self.next_attempt(id, now),
        }
    }

    /// Moves on the queries whose upstream took too long; the earliest
    /// deadline left.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let late: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.attempt_end <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            self.next_attempt(id, now);
        }
        self.pending.values().map(|p| p.attempt_end).min()
    }
}

/// A TCP connection to `up` under way, without waiting for it.
fn connect(up: SocketAddr) -> std::io::Result<TcpStream> {
    let family = if up.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    match rustix::net::connect(&fd, &up) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// The SERVFAIL reply to `query`, its question echoed when it has one.
fn servfail(query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    match message::parse(query) {
        Ok(q) => Some(q.reply(SERVFAIL, false, &[], tcp)),
        Err(_) => message::refusal(query, SERVFAIL),
    }
}
