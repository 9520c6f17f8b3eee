//! The embedded DNS server for real, as root: each test runs again inside
//! a network and mount namespace of its own (made by unshare(1)) with only
//! loopback up, the server on 127.0.0.1 and fake upstream resolvers on
//! 127.0.0.2 and 127.0.0.3 of that namespace. No packet leaves it: the
//! machine's own resolvers are never asked.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_network::Netlink;
use berth_network::dns::Server;

const INSIDE: &str = "BERTH_NETWORK_TEST_INSIDE";
const A: u16 = 1;
const PTR: u16 = 12;
const AAAA: u16 = 28;
const SERVFAIL: u8 = 2;
const WAIT: Duration = Duration::from_secs(5);

/// Runs test `name` again in a network and mount namespace of its own,
/// loopback up; true in that copy, which then runs the test's body.
fn isolated(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        let mut nl = Netlink::open().unwrap();
        let lo = nl.link_index("lo").unwrap().unwrap();
        nl.set_up(lo, None).unwrap();
        return true;
    }
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the test did not run: {text}");
    false
}

/// A query of `name` for `qtype`, recursion desired.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    m
}

/// A reply, read the long way round.
#[derive(Debug)]
struct Reply {
    id: u16,
    rcode: u8,
    authoritative: bool,
    /// Each answer's type and data.
    answers: Vec<(u16, Vec<u8>)>,
}

fn skip_name(m: &[u8], mut at: usize) -> usize {
    loop {
        match m[at] {
            0 => return at + 1,
            l if l & 0xC0 == 0xC0 => return at + 2,
            l => at += 1 + l as usize,
        }
    }
}

fn read_reply(m: &[u8]) -> Reply {
    assert!(m[2] & 0x80 != 0, "a response");
    assert!(m[3] & 0x80 != 0, "recursion available");
    let count = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
    assert_eq!(count(4), 1, "the question echoed");
    let mut at = skip_name(m, 12) + 4;
    let mut answers = Vec::new();
    for _ in 0..count(6) {
        at = skip_name(m, at);
        let rtype = count(at);
        assert_eq!(count(at + 2), 1, "class IN");
        let len = count(at + 8) as usize;
        answers.push((rtype, m[at + 10..at + 10 + len].to_vec()));
        at += 10 + len;
    }
    Reply {
        id: count(0),
        rcode: m[3] & 0xf,
        authoritative: m[2] & 0x04 != 0,
        answers,
    }
}

/// Asks `server` over UDP.
fn ask(server: SocketAddr, id: u16, name: &str, qtype: u16) -> Reply {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.send_to(&query(id, name, qtype), server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = s.recv_from(&mut buf).expect("a reply in time");
    assert_eq!(from, server);
    read_reply(&buf[..n])
}

/// Asks `server` over TCP.
fn ask_tcp(server: SocketAddr, id: u16, name: &str, qtype: u16) -> Reply {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let q = query(id, name, qtype);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut m = vec![0; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m).unwrap();
    read_reply(&m)
}

fn ipv4s(r: &Reply) -> Vec<Ipv4Addr> {
    r.answers
        .iter()
        .map(|(t, d)| {
            assert_eq!(*t, A);
            Ipv4Addr::new(d[0], d[1], d[2], d[3])
        })
        .collect()
}

/// Replaces the names file as the engine does: a new file renamed over.
fn write_names(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A server on 127.0.0.1, any port, serving `names` (written first) and
/// relaying to `upstreams`; where it listens, and its thread.
struct Running {
    addr: SocketAddr,
    names: PathBuf,
    thread: JoinHandle<berth_network::Result<()>>,
    _dir: tempfile::TempDir,
}

fn serve(names: &str, upstreams: &[SocketAddr], timeout: Option<Duration>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names");
    write_names(&path, names);
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    if let Some(t) = timeout {
        server.set_forward_timeout(t);
    }
    let addr = server.local_addr();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0);
    let (p, ups) = (path.clone(), upstreams.to_vec());
    let thread = std::thread::spawn(move || server.run(&p, &ups));
    Running {
        addr,
        names: path,
        thread,
        _dir: dir,
    }
}

impl Running {
    /// Removes the names file; the server must be done within 2 s.
    fn stop(self) {
        std::fs::remove_file(&self.names).unwrap();
        let t = Instant::now();
        while !self.thread.is_finished() {
            assert!(t.elapsed() < Duration::from_secs(2), "still serving");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.thread.join().unwrap().unwrap();
    }
}

/// The answer a fake upstream gives: the query, one A record 192.0.2.N.
fn upstream_answer(q: &[u8], n: u8) -> Vec<u8> {
    let mut r = q.to_vec();
    r[2] |= 0x80;
    r[3] |= 0x80;
    r[7] = 1;
    r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, n]);
    r
}

/// A fake upstream on UDP `addr` answering `n` queries with 192.0.2.`last`;
/// tells what it got and from where.
fn udp_upstream(
    addr: &str,
    n: usize,
    last: u8,
) -> (SocketAddr, mpsc::Receiver<(Vec<u8>, SocketAddr)>) {
    let s = UdpSocket::bind(addr).unwrap();
    let (tx, rx) = mpsc::channel();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..n {
            let (len, from) = s.recv_from(&mut buf).unwrap();
            s.send_to(&upstream_answer(&buf[..len], last), from)
                .unwrap();
            tx.send((buf[..len].to_vec(), from)).unwrap();
        }
    });
    (addr, rx)
}

const NAMES: &str = "# network front\n\
                     172.18.0.2 web www 0123456789ab\n\
                     172.18.0.3 db\n\
                     172.18.0.4 pool\n\
                     172.18.0.5 pool\n";

#[test]
fn a_name_and_its_aliases_resolve_in_any_case() {
    if !isolated("a_name_and_its_aliases_resolve_in_any_case") {
        return;
    }
    let s = serve(NAMES, &[], None);
    let web = Ipv4Addr::new(172, 18, 0, 2);
    for name in ["web", "www", "0123456789ab", "WeB", "WWW.", "web."] {
        let r = ask(s.addr, 0x4242, name, A);
        assert_eq!(
            (r.id, r.rcode, r.authoritative),
            (0x4242, 0, true),
            "{name}"
        );
        assert_eq!(ipv4s(&r), [web], "{name}");
    }
    let mut pool = ipv4s(&ask(s.addr, 1, "pool", A));
    pool.sort();
    assert_eq!(
        pool,
        [Ipv4Addr::new(172, 18, 0, 4), Ipv4Addr::new(172, 18, 0, 5)]
    );
    // Over TCP as well.
    assert_eq!(
        ipv4s(&ask_tcp(s.addr, 2, "DB", A)),
        [Ipv4Addr::new(172, 18, 0, 3)]
    );
    // Only whole names: no search domain, no prefix.
    for other in ["web.example", "we"] {
        assert_eq!(ask(s.addr, 3, other, A).rcode, SERVFAIL, "{other}");
    }
    s.stop();
}

#[test]
fn a_known_name_has_no_aaaa_and_its_address_a_ptr() {
    if !isolated("a_known_name_has_no_aaaa_and_its_address_a_ptr") {
        return;
    }
    let s = serve(NAMES, &[], None);
    let r = ask(s.addr, 7, "web", AAAA);
    assert_eq!((r.rcode, r.authoritative, r.answers.len()), (0, true, 0));
    let r = ask(s.addr, 8, "2.0.18.172.in-addr.arpa", PTR);
    assert_eq!((r.rcode, r.authoritative), (0, true));
    assert_eq!(r.answers, [(PTR, b"\x03web\x00".to_vec())]);
    s.stop();
}

#[test]
fn a_name_removed_from_the_file_stops_resolving() {
    if !isolated("a_name_removed_from_the_file_stops_resolving") {
        return;
    }
    let s = serve(NAMES, &[], None);
    assert_eq!(
        ipv4s(&ask(s.addr, 1, "db", A)),
        [Ipv4Addr::new(172, 18, 0, 3)]
    );
    write_names(&s.names, "172.18.0.2 web\n172.18.0.6 cache\n");
    // At once: the very next query.
    assert_eq!(ask(s.addr, 2, "db", A).rcode, SERVFAIL);
    assert_eq!(
        ipv4s(&ask(s.addr, 3, "cache", A)),
        [Ipv4Addr::new(172, 18, 0, 6)]
    );
    s.stop();
}

#[test]
fn unknown_names_go_upstream_over_udp_under_an_id_of_the_servers() {
    if !isolated("unknown_names_go_upstream_over_udp_under_an_id_of_the_servers") {
        return;
    }
    let (up, got) = udp_upstream("127.0.0.2:53", 2, 7);
    let s = serve(NAMES, &[up], None);
    for id in [0x1111, 0x2222] {
        let r = ask(s.addr, id, "Example.Org", A);
        assert_eq!((r.id, r.rcode, r.authoritative), (id, 0, false));
        assert_eq!(ipv4s(&r), [Ipv4Addr::new(192, 0, 2, 7)]);
        let (q, from) = got.recv_timeout(WAIT).unwrap();
        // The rest of the query as the client sent it, from a socket of
        // the forwarder's.
        assert_eq!(&q[2..], &query(id, "Example.Org", A)[2..]);
        assert_ne!(from.port(), s.addr.port());
    }
    s.stop();
}

#[test]
fn unknown_names_go_upstream_over_tcp_when_asked_over_tcp() {
    if !isolated("unknown_names_go_upstream_over_tcp_when_asked_over_tcp") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.2:53").unwrap();
    let up = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut len = [0u8; 2];
        c.read_exact(&mut len).unwrap();
        let mut q = vec![0; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut q).unwrap();
        let r = upstream_answer(&q, 9);
        c.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
        c.write_all(&r).unwrap();
        q
    });
    let s = serve(NAMES, &[up], None);
    let r = ask_tcp(s.addr, 0x3333, "big.example", A);
    assert_eq!((r.id, r.rcode), (0x3333, 0));
    assert_eq!(ipv4s(&r), [Ipv4Addr::new(192, 0, 2, 9)]);
    assert_eq!(&fake.join().unwrap()[2..], &query(0, "big.example", A)[2..]);
    s.stop();
}

#[test]
fn a_silent_upstream_gives_way_to_the_next_then_to_servfail() {
    if !isolated("a_silent_upstream_gives_way_to_the_next_then_to_servfail") {
        return;
    }
    // Bound, so the query is taken, and never answered.
    let silent = UdpSocket::bind("127.0.0.3:53").unwrap();
    let (up, got) = udp_upstream("127.0.0.2:53", 1, 5);
    let ups = [silent.local_addr().unwrap(), up];
    let s = serve(NAMES, &ups, Some(Duration::from_millis(600)));
    let t = Instant::now();
    let r = ask(s.addr, 0x5555, "example.net", A);
    assert_eq!((r.id, r.rcode), (0x5555, 0));
    assert_eq!(ipv4s(&r), [Ipv4Addr::new(192, 0, 2, 5)]);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    got.recv_timeout(WAIT).unwrap();
    // Now neither answers: SERVFAIL after the timeout, about.
    let t = Instant::now();
    let r = ask(s.addr, 0x6666, "example.net", A);
    assert_eq!((r.id, r.rcode, r.answers.len()), (0x6666, SERVFAIL, 0));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let mut buf = [0u8; 512];
    silent.set_read_timeout(Some(WAIT)).unwrap();
    assert!(
        silent.recv_from(&mut buf).is_ok(),
        "the silent one was asked"
    );
    s.stop();
}

#[test]
fn with_no_upstream_other_names_are_servfail_over_udp_and_tcp() {
    if !isolated("with_no_upstream_other_names_are_servfail_over_udp_and_tcp") {
        return;
    }
    let s = serve(NAMES, &[], None);
    let r = ask(s.addr, 9, "example.com", A);
    assert_eq!((r.id, r.rcode, r.authoritative), (9, SERVFAIL, false));
    assert_eq!(ask_tcp(s.addr, 10, "example.com", A).rcode, SERVFAIL);
    s.stop();
}

#[test]
fn run_returns_once_the_names_file_is_removed() {
    if !isolated("run_returns_once_the_names_file_is_removed") {
        return;
    }
    // Busy, with a TCP client that never asks and a query forwarded to an
    // upstream that never answers: neither holds the server.
    let silent = UdpSocket::bind("127.0.0.2:53").unwrap();
    let s = serve(NAMES, &[silent.local_addr().unwrap()], None);
    let _idle = TcpStream::connect(s.addr).unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(&query(1, "example.org", A), s.addr).unwrap();
    let mut buf = [0u8; 512];
    silent.set_read_timeout(Some(WAIT)).unwrap();
    silent.recv_from(&mut buf).unwrap();
    s.stop();
    // A file that is not there at all: nothing to serve.
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    server.run(Path::new("/nonexistent/names"), &[]).unwrap();
}

#[test]
fn a_reply_from_an_address_not_asked_is_not_taken() {
    if !isolated("a_reply_from_an_address_not_asked_is_not_taken") {
        return;
    }
    let up = UdpSocket::bind("127.0.0.2:53").unwrap();
    let forger = UdpSocket::bind("127.0.0.3:53").unwrap();
    let s = serve(NAMES, &[up.local_addr().unwrap()], None);
    let fake = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = up.recv_from(&mut buf).unwrap();
        // The right id and question, from the wrong address, first.
        forger
            .send_to(&upstream_answer(&buf[..n], 66), from)
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        up.send_to(&upstream_answer(&buf[..n], 7), from).unwrap();
    });
    let r = ask(s.addr, 0x7777, "example.org", A);
    assert_eq!(ipv4s(&r), [Ipv4Addr::new(192, 0, 2, 7)]);
    fake.join().unwrap();
    s.stop();
}

#[test]
fn hostile_input_is_dropped_or_refused_and_the_server_still_answers() {
    if !isolated("hostile_input_is_dropped_or_refused_and_the_server_still_answers") {
        return;
    }
    let s = serve(NAMES, &[], None);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1500];
    // Garbage, a response, a query of two questions: no reply or FORMERR.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 300) as usize;
        let m: Vec<u8> = (0..len).map(|i| (x >> (i % 57)) as u8).collect();
        c.send_to(&m, s.addr).unwrap();
    }
    while c.recv_from(&mut buf).is_ok() {}
    // A name pointing at itself: FORMERR, header only.
    let mut lp = query(0x0101, "", A);
    lp.splice(12..13, [0xC0, 12]);
    c.send_to(&lp, s.addr).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!((n, &buf[..2], buf[3] & 0xf), (12, &[1u8, 1][..], 1));
    // An UPDATE: NOTIMP.
    let mut up = query(0x0202, "web", A);
    up[2] = 5 << 3;
    c.send_to(&up, s.addr).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!((n, buf[3] & 0xf), (12, 4));

    // TCP: an empty message and a half one are closed; past 64 clients
    // the next is closed at once; the server answers all along.
    let closed = |mut t: TcpStream| {
        t.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(t.read(&mut [0u8; 8]).map_err(|e| e.kind()), Ok(0));
    };
    let mut empty = TcpStream::connect(s.addr).unwrap();
    empty.write_all(&[0, 0]).unwrap();
    closed(empty);
    let mut half = TcpStream::connect(s.addr).unwrap();
    half.write_all(&[0, 40, 1, 2, 3]).unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    closed(half);
    let clients: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    assert_eq!(
        ipv4s(&ask(s.addr, 3, "web", A)),
        [Ipv4Addr::new(172, 18, 0, 2)]
    );
    closed(TcpStream::connect(s.addr).unwrap());
    drop(clients);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        ipv4s(&ask_tcp(s.addr, 4, "web", A)),
        [Ipv4Addr::new(172, 18, 0, 2)]
    );
    s.stop();
}
