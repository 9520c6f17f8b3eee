//! The embedded DNS server of a user-defined network, as Docker's and
//! podman's aardvark-dns: containers on the network resolve each other by
//! name, alias, hostname or short id, and every other name through the
//! host's resolvers. One server a network, in a process of its own on the
//! host side, bound to the bridge's address, port 53, UDP and TCP.
//!
//! 1. The engine writes the network's names in a hosts-style file
//!    (`names`), replacing it whole at each change; the server reads it
//!    again when its inode, size or mtime changes (looked at before each
//!    query and at least every half second), and returns when it is
//!    removed.
//! 2. A query (`message`) for a name of the file is answered from it,
//!    authoritatively: A (and AAAA) records, none (NODATA) for other types,
//!    PTR for the reverse name of an address of the file. The case of a
//!    name does not matter, and only whole names match: no search domains.
//! 3. Any other query is relayed as bytes to the upstream resolvers
//!    (`forward`), TCP over TCP, for up to 5 s in all; with no upstream, or
//!    none answering, the reply is SERVFAIL, as Docker's.
//!
//! One thread and one poll(2) over every socket. Every input is bounded:
//! messages by their framing, queries waiting for upstream (1024), TCP
//! clients (64, each with a deadline), the names file (1 MiB); a malformed
//! query is dropped or refused, never trusted.

mod forward;
mod message;
mod names;
mod tcp;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::{Error, Result};
use forward::{Client, Forwarder};
use message::Bad;
use names::{Found, Table};
use tcp::Clients;

/// The longest the server sleeps: how soon it sees the names file gone.
const TICK: Duration = Duration::from_millis(500);
/// What Docker's resolver waits for its external servers, about.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries read from the UDP socket at one wake, so TCP is not starved.
const UDP_BATCH: usize = 64;
/// Tries at a port free for both UDP and TCP, when any port will do.
const BIND_TRIES: usize = 16;

/// The DNS server of one network, bound and not yet serving.
#[derive(Debug)]
pub struct Server {
    udp: UdpSocket,
    tcp: TcpListener,
    forward_timeout: Duration,
}

/// What a ready file descriptor of the poll belongs to.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Udp,
    Listener,
    /// The forwarding UDP socket, 0 IPv4, 1 IPv6.
    Upstream(usize),
    /// The TCP connection upstream of the query of this id.
    UpstreamTcp(u16),
    Client(u64),
}

impl Server {
    /// Binds UDP and TCP on `addr` (port 53 in production; port 0 picks a
    /// port free for both).
    pub fn bind(addr: SocketAddr) -> Result<Server> {
        let what = |proto: &str| format!("bind DNS on {proto} {addr}");
        for _ in 0..BIND_TRIES {
            let udp = UdpSocket::bind(addr).map_err(|e| Error::io(what("udp"), e))?;
            let local = udp.local_addr().map_err(|e| Error::io(what("udp"), e))?;
            let tcp = match TcpListener::bind(local) {
                Ok(tcp) => tcp,
                Err(e) if e.kind() == ErrorKind::AddrInUse && addr.port() == 0 => continue,
                Err(e) => return Err(Error::io(what("tcp"), e)),
            };
            udp.set_nonblocking(true)
                .and_then(|()| tcp.set_nonblocking(true))
                .map_err(|e| Error::io(what("udp and tcp"), e))?;
            return Ok(Server {
                udp,
                tcp,
                forward_timeout: FORWARD_TIMEOUT,
            });
        }
        Err(Error::msg(
            what("udp and tcp"),
            "no port free for both".into(),
        ))
    }

    /// Where the server listens, UDP and TCP.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound socket always has an address; the fallback is for the
        // type checker only.
        self.udp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// How long a forwarded query waits for the upstreams, all of them,
    /// before it is answered SERVFAIL (5 s unless set).
    pub fn set_forward_timeout(&mut self, timeout: Duration) {
        self.forward_timeout = timeout;
    }

    /// Serves the names of the file `names` and relays every other query
    /// to `upstreams`, until the file is removed; then Ok. The file holds
    /// lines `ADDRESS NAME [NAME...]`, `#` comments; the caller replaces it
    /// whole (write and rename).
    pub fn run(&mut self, names: &Path, upstreams: &[SocketAddr]) -> Result<()> {
        let Some(table) = Table::load(names)? else {
            return Ok(());
        };
        let mut state = State {
            names: names.to_path_buf(),
            gone: false,
            table,
            forwarder: Forwarder::new(upstreams, self.forward_timeout)?,
            clients: Clients::default(),
            buf: vec![0; u16::MAX as usize],
        };
        loop {
            let now = Instant::now();
            let deadline = [
                state.forwarder.expire(now),
                state.clients.expire(now),
                Some(now + TICK),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + TICK);
            state.deliver(&self.udp, now);
            let ready = self.wait(&state, deadline.saturating_duration_since(now))?;
            for (owner, ready) in ready {
                state.on_ready(self, owner, ready);
            }
            state.deliver(&self.udp, Instant::now());
            if !state.fresh() {
                return Ok(());
            }
        }
    }

    /// Waits for any socket to be ready, or `timeout`; which are ready.
    fn wait(&self, state: &State, timeout: Duration) -> Result<Vec<(Owner, PollFlags)>> {
        let mut fds = vec![
            PollFd::new(&self.udp, PollFlags::IN),
            PollFd::new(&self.tcp, PollFlags::IN),
        ];
        let mut owners = vec![Owner::Udp, Owner::Listener];
        state.forwarder.poll_fds(&mut fds, &mut owners);
        state.clients.poll_fds(&mut fds, &mut owners);
        let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("wait for DNS queries".into(), e.into())),
        }
        Ok(owners
            .into_iter()
            .zip(fds.iter().map(PollFd::revents))
            .filter(|(_, ready)| !ready.is_empty())
            .collect())
    }
}

/// What the serving loop keeps.
struct State {
    names: PathBuf,
    /// The names file was found removed: the server is done.
    gone: bool,
    table: Table,
    forwarder: Forwarder,
    clients: Clients,
    /// The largest message there is: UDP reads are never cut short.
    buf: Vec<u8>,
}

/// What to do with a query.
enum Outcome {
    Reply(Vec<u8>),
    /// Given to the forwarder, which answers it.
    Forwarded,
    Ignore,
}

impl State {
    /// Brings the table up to date with the file; false once the file is
    /// gone. A file that cannot be read keeps the table it had.
    fn fresh(&mut self) -> bool {
        self.gone = self.gone || !self.table.refresh(&self.names).unwrap_or(true);
        !self.gone
    }

    fn on_ready(&mut self, server: &Server, owner: Owner, ready: PollFlags) {
        let now = Instant::now();
        match owner {
            Owner::Udp => self.on_udp(&server.udp, now),
            Owner::Listener => self.clients.accept(&server.tcp, now),
            Owner::Upstream(family) => self.forwarder.on_udp(family, &mut self.buf, now),
            Owner::UpstreamTcp(id) => self.forwarder.on_tcp(id, now),
            Owner::Client(token) => {
                let Some(query) = self.clients.on_ready(token, ready, now) else {
                    return;
                };
                match self.answer(&query, Client::Tcp(token), now) {
                    Outcome::Reply(reply) => self.clients.respond(token, &reply, now),
                    Outcome::Forwarded => {}
                    Outcome::Ignore => self.clients.close(token),
                }
            }
        }
    }

    fn on_udp(&mut self, udp: &UdpSocket, now: Instant) {
        for _ in 0..UDP_BATCH {
            let Ok((n, peer)) = udp.recv_from(&mut self.buf) else {
                return;
            };
            let query = self.buf[..n].to_vec();
            if let Outcome::Reply(reply) = self.answer(&query, Client::Udp(peer), now) {
                // UDP may lose a reply; so may the server, when the socket
                // is full. The client asks again.
                let _ = udp.send_to(&reply, peer);
            }
        }
    }

    /// Answers `msg` from `client` from the names, or gives it to the
    /// forwarder.
    fn answer(&mut self, msg: &[u8], client: Client, now: Instant) -> Outcome {
        let tcp = matches!(client, Client::Tcp(_));
        let q = match message::parse(msg) {
            Ok(q) => q,
            Err(Bad::Ignore) => return Outcome::Ignore,
            Err(Bad::Refuse(rcode)) => {
                return message::refusal(msg, rcode).map_or(Outcome::Ignore, Outcome::Reply);
            }
        };
        // A stat a query (a microsecond or two): a name the engine has
        // removed is never answered from the file once it is replaced.
        self.fresh();
        let found = match &q.name {
            Some(name) => self.table.find(name, q.qtype, q.qclass, q.id as usize),
            None => Found::Elsewhere,
        };
        match found {
            Found::Local(records) => Outcome::Reply(q.reply(message::NOERROR, true, &records, tcp)),
            Found::Elsewhere => {
                self.forwarder.start(client, msg, now);
                Outcome::Forwarded
            }
        }
    }

    /// Sends the forwarder's replies to their clients.
    fn deliver(&mut self, udp: &UdpSocket, now: Instant) {
        for (client, reply) in std::mem::take(&mut self.forwarder.done) {
            match client {
                Client::Udp(peer) => {
                    let _ = udp.send_to(&reply, peer);
                }
                Client::Tcp(token) => self.clients.respond(token, &reply, now),
            }
        }
    }
}
