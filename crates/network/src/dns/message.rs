//! The DNS wire format (RFC 1035), only as much as the server needs: the
//! header and the one question of a query, the OPT record that may follow
//! it (RFC 6891), and the replies the server makes itself. Everything else
//! is relayed as bytes and never parsed.
//!
//! Every read is bounds-checked against the message; a question name with a
//! compression pointer is refused: it is the first name of the message, so
//! a pointer could only lead back into the header or into itself.

use std::net::IpAddr;

pub(crate) const HEADER: usize = 12;
pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_PTR: u16 = 12;
pub(crate) const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
pub(crate) const TYPE_ANY: u16 = 255;
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_ANY: u16 = 255;

pub(crate) const NOERROR: u8 = 0;
pub(crate) const FORMERR: u8 = 1;
pub(crate) const SERVFAIL: u8 = 2;
const NOTIMP: u8 = 4;
pub(crate) const REFUSED: u8 = 5;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;

/// What Docker's and aardvark-dns's answers live: containers come and go,
/// but a name keeps its address as long as its container does.
const TTL: u32 = 600;
/// The UDP payload size offered in OPT replies and the most a reply over
/// UDP is allowed: the size DNS flag day 2020 settled on to stay clear of
/// IP fragmentation.
const EDNS_SIZE: u16 = 1232;
/// A reply over UDP to a client that sent no OPT record (RFC 1035 4.2.1).
const UDP_PLAIN: usize = 512;
/// The encoded name's limit, length octets and the final zero included.
const NAME_MAX: usize = 255;

/// The one question of a query, and what a reply must echo.
#[derive(Debug)]
pub(crate) struct Query<'m> {
    pub id: u16,
    flags: u16,
    /// Lowercase, dotted, no trailing dot ("" for the root); None when a
    /// label holds a '.' or a byte no name of the file can hold, which
    /// therefore can only be forwarded.
    pub name: Option<String>,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as sent, echoed byte for byte (clients that randomise
    /// the case of names check it comes back the same).
    question: &'m [u8],
    /// The client's UDP payload size, when it sent an OPT record.
    edns: Option<u16>,
}

/// Why a message is not a query the server takes.
#[derive(Debug, PartialEq)]
pub(crate) enum Bad {
    /// Not worth a reply (too short, a response, garbage): dropped.
    Ignore,
    /// A query the server can say no to, with this response code.
    Refuse(u8),
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    let b = msg.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The query in `msg`: a header with QR clear, opcode QUERY, exactly one
/// question, and optionally one OPT record after it.
pub(crate) fn parse(msg: &[u8]) -> Result<Query<'_>, Bad> {
    if msg.len() < HEADER {
        return Err(Bad::Ignore);
    }
    let id = u16_at(msg, 0).ok_or(Bad::Ignore)?;
    let flags = u16_at(msg, 2).ok_or(Bad::Ignore)?;
    if flags & QR != 0 {
        return Err(Bad::Ignore);
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(Bad::Refuse(NOTIMP));
    }
    let count = |at| u16_at(msg, at).unwrap_or(0);
    if count(4) != 1 || count(6) != 0 {
        return Err(Bad::Refuse(FORMERR));
    }
    let (name, end) = read_name(msg, HEADER)?;
    let qtype = u16_at(msg, end).ok_or(Bad::Refuse(FORMERR))?;
    let qclass = u16_at(msg, end + 2).ok_or(Bad::Refuse(FORMERR))?;
    let question = &msg[HEADER..end + 4];
    // An OPT record is the one additional record a query may carry; any
    // other shape of the rest is ignored rather than refused.
    let edns = if count(8) == 0 && count(10) == 1 {
        read_opt(&msg[end + 4..])
    } else {
        None
    };
    Ok(Query {
        id,
        flags,
        name,
        qtype,
        qclass,
        question,
        edns,
    })
}

/// The name at `at` and where it ends: labels of 1 to 63 octets, no
/// pointers, at most 255 octets in all.
fn read_name(msg: &[u8], mut at: usize) -> Result<(Option<String>, usize), Bad> {
    let formerr = Bad::Refuse(FORMERR);
    let mut name = String::new();
    let mut plain = true;
    loop {
        let len = *msg.get(at).ok_or(Bad::Refuse(FORMERR))? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // 0xC0 is a pointer, 0x40 and 0x80 label kinds never defined.
        if len & 0xC0 != 0 || at - HEADER + len >= NAME_MAX {
            return Err(formerr);
        }
        let label = msg.get(at..at + len).ok_or(Bad::Refuse(FORMERR))?;
        at += len;
        if !name.is_empty() {
            name.push('.');
        }
        for &b in label {
            if b == b'.' || !b.is_ascii_graphic() {
                plain = false;
            } else {
                name.push(b.to_ascii_lowercase() as char);
            }
        }
    }
    Ok((plain.then_some(name), at))
}

/// The UDP payload size of the OPT record that is all of `rest`, if it is
/// one (root name, type 41, within bounds).
fn read_opt(rest: &[u8]) -> Option<u16> {
    if rest.first() != Some(&0) || u16_at(rest, 1)? != TYPE_OPT {
        return None;
    }
    let rdlen = u16_at(rest, 9)? as usize;
    if rest.len() != 11 + rdlen {
        return None;
    }
    u16_at(rest, 3)
}

/// A header-only reply to `msg` saying `rcode`, for queries that cannot be
/// read far enough to echo their question. None when `msg` has no header.
pub(crate) fn refusal(msg: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    let flags = QR | (flags & (0x7800 | RD)) | RA | rcode as u16;
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// What an answer record holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rdata<'t> {
    Addr(IpAddr),
    /// A name the names file holds: already checked to be a valid name.
    Ptr(&'t str),
}

impl Query<'_> {
    /// The most a reply may weigh: 512 octets over UDP, or what the
    /// client's OPT record offers up to 1232; 65535 over TCP.
    fn limit(&self, tcp: bool) -> usize {
        match (tcp, self.edns) {
            (true, _) => u16::MAX as usize,
            (false, None) => UDP_PLAIN,
            (false, Some(size)) => (size.min(EDNS_SIZE) as usize).max(UDP_PLAIN),
        }
    }

    /// A reply with `rcode` and the `answers` that fit (authoritative when
    /// the server holds the name); TC set when some did not.
    pub(crate) fn reply(
        &self,
        rcode: u8,
        authoritative: bool,
        answers: &[Rdata],
        tcp: bool,
    ) -> Vec<u8> {
        let opt = if self.edns.is_some() { 11 } else { 0 };
        let limit = self.limit(tcp) - opt;
        let mut out = Vec::with_capacity(UDP_PLAIN);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(self.question);
        let mut fit = 0u16;
        for rd in answers {
            let at = out.len();
            push_record(&mut out, rd);
            if out.len() > limit {
                out.truncate(at);
                break;
            }
            fit += 1;
        }
        let mut flags = QR | (self.flags & RD) | RA | rcode as u16;
        if authoritative {
            flags |= AA;
        }
        if (fit as usize) < answers.len() {
            flags |= TC;
        }
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[4..6].copy_from_slice(&1u16.to_be_bytes());
        out[6..8].copy_from_slice(&fit.to_be_bytes());
        if self.edns.is_some() {
            out[10..12].copy_from_slice(&1u16.to_be_bytes());
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&EDNS_SIZE.to_be_bytes());
            out.extend_from_slice(&[0; 6]);
        }
        out
    }
}

/// One answer record, its owner a pointer to the question's name.
fn push_record(out: &mut Vec<u8>, rd: &Rdata) {
    out.extend_from_slice(&[0xC0, HEADER as u8]);
    let (rtype, data): (u16, Vec<u8>) = match rd {
        Rdata::Addr(IpAddr::V4(a)) => (TYPE_A, a.octets().to_vec()),
        Rdata::Addr(IpAddr::V6(a)) => (TYPE_AAAA, a.octets().to_vec()),
        Rdata::Ptr(name) => (TYPE_PTR, encode_name(name)),
    };
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&TTL.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(&data);
}

/// `name` in labels; the caller has checked it is a valid name.
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Whether `name` (dotted, no trailing dot) can be sent as a DNS name:
/// labels of 1 to 63 printable octets, 255 octets encoded.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() + 2 <= NAME_MAX
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_graphic()))
}

/// The address a reverse name stands for: `d.c.b.a.in-addr.arpa` or the
/// 32 nibbles of `….ip6.arpa`, strictly (no leading zeros, no extra
/// labels); the name is lowercase already.
pub(crate) fn reverse_addr(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut labels = rest.split('.');
        for o in octets.iter_mut().rev() {
            let l = labels.next()?;
            let digits = l.bytes().all(|b| b.is_ascii_digit());
            if !digits || l.is_empty() || l.len() > 3 || (l.len() > 1 && l.starts_with('0')) {
                return None;
            }
            *o = l.parse().ok()?;
        }
        return labels.next().is_none().then_some(IpAddr::from(octets));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    if rest.len() != 63 {
        return None;
    }
    let mut addr = 0u128;
    for (i, l) in rest.split('.').enumerate() {
        let &[b] = l.as_bytes() else { return None };
        let nibble = (b as char).to_digit(16)? as u128;
        addr |= nibble << (4 * i);
    }
    Some(IpAddr::from(addr.to_be_bytes()))
}

/// The query id and response code of a reply from upstream, if `msg` has
/// a response's header.
pub(crate) fn response_head(msg: &[u8]) -> Option<(u16, u8)> {
    let flags = u16_at(msg, 2)?;
    (msg.len() >= HEADER && flags & QR != 0).then_some((u16_at(msg, 0)?, (flags & 0xf) as u8))
}

/// Whether upstream's reply `resp` is to `query`: same question, octets
/// compared without case (RFC 1035 2.3.3), or none at all (a FORMERR may
/// carry none).
pub(crate) fn same_question(query: &[u8], resp: &[u8]) -> bool {
    if u16_at(resp, 4) == Some(0) {
        return true;
    }
    let Ok((_, end)) = read_name(query, HEADER) else {
        return false;
    };
    match (query.get(HEADER..end + 4), resp.get(HEADER..end + 4)) {
        (Some(q), Some(r)) => q.eq_ignore_ascii_case(r),
        _ => false,
    }
}

/// Sets the id of `msg` (which has a header).
pub(crate) fn set_id(msg: &mut [u8], id: u16) {
    msg[..2].copy_from_slice(&id.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query of `name` (dotted) for `qtype`, with an OPT record offering
    /// `edns` when given.
    pub(crate) fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(size) = edns {
            m.push(0);
            m.extend_from_slice(&TYPE_OPT.to_be_bytes());
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0; 6]);
        }
        m
    }

    fn count(m: &[u8], at: usize) -> u16 {
        u16_at(m, at).unwrap()
    }

    #[test]
    fn a_query_is_read_lowercase_with_its_type_and_opt() {
        let m = query(0x1234, "Web.Example.", TYPE_A, Some(4096));
        let q = parse(&m).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name.as_deref(), Some("web.example"));
        assert_eq!((q.qtype, q.qclass, q.edns), (TYPE_A, CLASS_IN, Some(4096)));
        let root = query(1, "", TYPE_A, None);
        assert_eq!(parse(&root).unwrap().name.as_deref(), Some(""));
    }

    #[test]
    fn every_truncation_of_a_query_is_refused_or_dropped_never_a_panic() {
        let m = query(7, "a.bb.ccc", TYPE_AAAA, None);
        for n in 0..m.len() {
            let got = parse(&m[..n]);
            assert!(got.is_err(), "{n}: {got:?}");
            if n < HEADER {
                assert_eq!(got.unwrap_err(), Bad::Ignore);
            }
        }
        assert!(parse(&m).is_ok());
    }

    #[test]
    fn pointers_loops_reserved_labels_and_long_names_are_formerr() {
        let formerr = Err(Bad::Refuse(FORMERR));
        let mut m = query(1, "a", TYPE_A, None);
        // A pointer to itself, and one into the header.
        for target in [12u8, 0] {
            m.truncate(HEADER);
            m.extend_from_slice(&[0xC0, target, 0, 1, 0, 1]);
            assert_eq!(parse(&m).map(|_| ()), formerr);
        }
        m.truncate(HEADER);
        m.extend_from_slice(&[1, b'a', 0x40, 0, 0, 1, 0, 1]);
        assert_eq!(parse(&m).map(|_| ()), formerr);
        let long = "x".repeat(64);
        assert_eq!(parse(&query(1, &long, TYPE_A, None)).map(|_| ()), formerr);
        // 255 octets encoded is the most: 4 labels of 63, less one octet.
        let max = format!("{0}.{0}.{0}.{1}", "x".repeat(63), "x".repeat(61));
        assert_eq!(encode_name(&max).len(), 255);
        assert!(parse(&query(1, &max, TYPE_A, None)).is_ok());
        let over = format!("{max}x");
        assert_eq!(parse(&query(1, &over, TYPE_A, None)).map(|_| ()), formerr);
    }

    #[test]
    fn counts_other_than_one_question_and_non_queries_are_turned_away() {
        let m = query(1, "a", TYPE_A, None);
        for (at, value) in [(4, 0u16), (4, 2), (4, 0xffff), (6, 1), (6, 0xffff)] {
            let mut bad = m.clone();
            bad[at..at + 2].copy_from_slice(&value.to_be_bytes());
            assert_eq!(parse(&bad).map(|_| ()), Err(Bad::Refuse(FORMERR)));
        }
        // Huge additional counts are not read: the query stands, no OPT.
        let mut many = query(1, "a", TYPE_A, Some(1400));
        many[10..12].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(parse(&many).unwrap().edns, None);
        let mut response = m.clone();
        response[2] |= 0x80;
        assert_eq!(parse(&response).map(|_| ()), Err(Bad::Ignore));
        let mut update = m.clone();
        update[2] |= 5 << 3;
        assert_eq!(parse(&update).map(|_| ()), Err(Bad::Refuse(NOTIMP)));
        let r = refusal(&update, NOTIMP).unwrap();
        assert_eq!((r.len(), r[3] & 0xf, r[2] & 0x80), (HEADER, NOTIMP, 0x80));
        assert_eq!(refusal(&m[..3], SERVFAIL), None);
    }

    #[test]
    fn a_label_holding_a_dot_or_a_control_byte_matches_no_name() {
        let mut m = query(1, "ab.c", TYPE_A, None);
        m[HEADER + 1] = b'.';
        assert_eq!(parse(&m).unwrap().name, None);
        m[HEADER + 1] = 0;
        assert_eq!(parse(&m).unwrap().name, None);
    }

    #[test]
    fn replies_echo_the_question_and_fit_their_transport() {
        let m = query(9, "Web", TYPE_A, None);
        let q = parse(&m).unwrap();
        let addrs: Vec<Rdata> = (0..100u8)
            .map(|i| Rdata::Addr(IpAddr::from([10, 0, 0, i])))
            .collect();
        let udp = q.reply(NOERROR, true, &addrs, false);
        assert!(udp.len() <= 512);
        let fit = count(&udp, 6) as usize;
        assert_eq!(fit, (512 - HEADER - 9) / 16);
        assert_eq!(
            count(&udp, 2) & (QR | AA | TC | RD | RA),
            QR | AA | TC | RD | RA
        );
        assert_eq!(&udp[HEADER..HEADER + 9], &m[HEADER..], "case kept");
        let tcp = q.reply(NOERROR, true, &addrs, true);
        assert_eq!((count(&tcp, 6), count(&tcp, 2) & TC), (100, 0));
        assert_eq!(tcp.len(), HEADER + 9 + 100 * 16);
        // The first record: pointer, A, IN, TTL 600, 4 octets.
        let rec = &tcp[HEADER + 9..HEADER + 25];
        assert_eq!(rec, &[0xC0, 12, 0, 1, 0, 1, 0, 0, 2, 88, 0, 4, 10, 0, 0, 0]);

        let m = query(9, "web", TYPE_A, Some(4096));
        let e = parse(&m).unwrap();
        let big = e.reply(NOERROR, true, &addrs, false);
        assert!(big.len() <= EDNS_SIZE as usize && count(&big, 6) > fit as u16);
        assert_eq!(count(&big, 10), 1);
        assert_eq!(&big[big.len() - 11..big.len() - 6], &[0, 0, 41, 0x04, 0xd0]);
        let m = query(9, "web", TYPE_A, Some(100));
        let small = parse(&m).unwrap();
        let r = small.reply(SERVFAIL, false, &[], false);
        assert_eq!(
            (count(&r, 2) & 0xf, count(&r, 2) & AA, count(&r, 6)),
            (2, 0, 0)
        );
    }

    #[test]
    fn a_ptr_record_holds_the_name_in_labels() {
        let m = query(1, "2.0.17.172.in-addr.arpa", TYPE_PTR, None);
        let q = parse(&m).unwrap();
        let r = q.reply(NOERROR, true, &[Rdata::Ptr("web.net")], false);
        let rec = &r[r.len() - 21..];
        assert_eq!(&rec[..4], &[0xC0, 12, 0, 12]);
        assert_eq!(&rec[10..12], &[0, 9]);
        assert_eq!(&rec[12..], b"\x03web\x03net\x00");
    }

    #[test]
    fn reverse_names_are_read_strictly() {
        let v4 = |s: &str| reverse_addr(s);
        assert_eq!(v4("4.3.2.1.in-addr.arpa"), Some(IpAddr::from([1, 2, 3, 4])));
        assert_eq!(
            v4("255.0.0.10.in-addr.arpa"),
            Some(IpAddr::from([10, 0, 0, 255]))
        );
        for bad in [
            "3.2.1.in-addr.arpa",
            "5.4.3.2.1.in-addr.arpa",
            "256.3.2.1.in-addr.arpa",
            "04.3.2.1.in-addr.arpa",
            "+4.3.2.1.in-addr.arpa",
            ".3.2.1.in-addr.arpa",
            "in-addr.arpa",
            "4.3.2.1.in-addr.arpa.example",
        ] {
            assert_eq!(v4(bad), None, "{bad}");
        }
        let one = format!("1.{}8.b.d.0.1.0.0.2.ip6.arpa", "0.".repeat(23));
        assert_eq!(reverse_addr(&one), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(reverse_addr(&one[2..]), None);
        assert_eq!(reverse_addr(&one.replace("8.b", "8b.")), None);
    }

    #[test]
    fn names_are_valid_when_they_fit_labels() {
        assert!(valid_name("web") && valid_name("a.b-c_d"));
        for bad in ["", "a..b", ".a", "a b", &"x".repeat(64), &"x.".repeat(127)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn responses_are_matched_by_question_without_case() {
        let q = query(1, "Web.Example", TYPE_A, None);
        let mut r = query(1, "wEB.example", TYPE_A, None);
        r[2] |= 0x80;
        assert_eq!(response_head(&r), Some((1, 0)));
        assert!(same_question(&q, &r));
        assert!(!same_question(&q, &query(1, "web.other", TYPE_A, None)));
        assert!(!same_question(&q, &r[..20]));
        r[4..6].copy_from_slice(&[0, 0]);
        assert!(same_question(&q, &r), "a FORMERR may carry no question");
        assert_eq!(response_head(&q), None);
        assert_eq!(response_head(&r[..11]), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = query(1, "a.b", TYPE_A, Some(512));
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half of them a valid header, so the parser reaches the name.
            if next() % 2 == 0 && m.len() >= HEADER {
                m[..HEADER].copy_from_slice(&base[..HEADER]);
            }
            if let Ok(q) = parse(&m) {
                let _ = q.reply(NOERROR, true, &[Rdata::Ptr("x")], false);
            }
            let _ = (
                refusal(&m, FORMERR),
                response_head(&m),
                same_question(&m, &base),
            );
            let _ = same_question(&base, &m);
        }
    }
}
