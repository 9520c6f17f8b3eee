//! JSON strings as the log writes and reads them: escaping with a fast
//! path for runs of plain ASCII (eight bytes at a time), and unescaping.

use memchr::memchr2;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes that may stand in a JSON string as they are and need no UTF-8
/// check: printable ASCII but `"` and `\`.
const fn plain(b: u8) -> bool {
    b >= 0x20 && b < 0x80 && b != b'"' && b != b'\\'
}

/// High bit set in every byte of `w` that is not [`plain`]. Only the
/// lowest flagged byte is exact (a borrow can flag bytes above a true
/// hit), which is all [`plain_prefix`] asks of it.
#[inline]
fn special(w: u64) -> u64 {
    let below_space = w.wrapping_sub(LO * 0x20) & !w;
    let q = w ^ (LO * b'"' as u64);
    let quote = q.wrapping_sub(LO) & !q;
    let s = w ^ (LO * b'\\' as u64);
    let backslash = s.wrapping_sub(LO) & !s;
    (below_space | quote | backslash | w) & HI
}

/// Eight bytes as a word, the first lowest.
#[inline]
fn word(c: &[u8]) -> u64 {
    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
}

/// Length of the run of [`plain`] bytes `s` starts with.
#[inline]
pub fn plain_prefix(s: &[u8]) -> usize {
    let mut chunks = s.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let m = special(word(c));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + chunks
        .remainder()
        .iter()
        .position(|&b| !plain(b))
        .unwrap_or(chunks.remainder().len())
}

/// Length of the valid UTF-8 character `s` starts with (a non-ASCII
/// lead byte), or None. By hand rather than `str::from_utf8`: binary
/// output is mostly bytes that fail at the first test.
#[inline]
fn utf8_char(s: &[u8]) -> Option<usize> {
    let cont = |i: usize, lo: u8, hi: u8| s.get(i).is_some_and(|b| (lo..=hi).contains(b));
    let (n, lo, hi) = match s[0] {
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xE1..=0xEF => (3, 0x80, 0xBF),
        0xF0 => (4, 0x90, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        _ => return None,
    };
    let ok = cont(1, lo, hi) && (n < 3 || cont(2, 0x80, 0xBF)) && (n < 4 || cont(3, 0x80, 0xBF));
    ok.then_some(n)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped as the inside of a JSON string. Bytes that are not
/// UTF-8 become U+FFFD, as in Docker's logs; returns false when that
/// happened (the line is then not `s` any more).
#[inline]
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let run = plain_prefix(s);
    out.extend_from_slice(&s[..run]);
    match &s[run..] {
        [] => true,
        // A line of plain text: the common case.
        b"\n" => {
            out.extend_from_slice(b"\\n");
            true
        }
        rest => escape_dense(out, rest),
    }
}

/// How each byte is written inside a JSON string: up to six bytes and
/// their count; count 0 for the lead bytes of multi-byte UTF-8 characters
/// (checked one by one); `lossy` for bytes never valid in UTF-8, written
/// as U+FFFD.
#[derive(Clone, Copy)]
struct Esc {
    bytes: [u8; 8],
    len: u8,
    lossy: bool,
}

const ESCAPES: [Esc; 256] = {
    let mut t = [Esc {
        bytes: [0; 8],
        len: 0,
        lossy: false,
    }; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let e = &mut t[b];
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            _ => 0,
        };
        if short != 0 {
            (e.bytes[0], e.bytes[1], e.len) = (b'\\', short, 2);
        } else if c < 0x20 {
            e.bytes = [b'\\', b'u', b'0', b'0', HEX[b >> 4], HEX[b & 15], 0, 0];
            e.len = 6;
        } else if c < 0x80 {
            (e.bytes[0], e.len) = (c, 1);
        } else if c < 0xC2 || c > 0xF4 {
            (e.bytes[0], e.bytes[1], e.bytes[2]) = (0xEF, 0xBF, 0xBD);
            (e.len, e.lossy) = (3, true);
        }
        b += 1;
    }
    t
};

/// The rest of [`escape_into`], from the first byte that needs care, into
/// room made for the worst case (six bytes each: `\u00XX`, and sixteen to
/// spare for whole-word stores): eight bytes are looked at a time, their
/// plain run stored as a word, the byte after it from the table. Few
/// branches: text full of quotes (JSON logs) and binary output (as many
/// kinds of byte as bytes) both go at a steady pace.
fn escape_dense(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let mut o = out.len();
    out.resize(o + s.len() * 6 + 16, 0);
    let mut lossy = false;
    let mut i = 0;
    while i < s.len() {
        if let Some(c) = s.get(i..i + 8) {
            let w = word(c);
            let m = special(w);
            out[o..o + 8].copy_from_slice(&w.to_le_bytes());
            let run = if m == 0 {
                8
            } else {
                (m.trailing_zeros() / 8) as usize
            };
            (o, i) = (o + run, i + run);
            if run == 8 {
                continue;
            }
        }
        let e = &ESCAPES[s[i] as usize];
        if e.len != 0 {
            out[o..o + 8].copy_from_slice(&e.bytes);
            o += e.len as usize;
            lossy |= e.lossy;
            i += 1;
            continue;
        }
        match utf8_char(&s[i..]) {
            Some(n) => {
                out[o..o + n].copy_from_slice(&s[i..i + n]);
                (o, i) = (o + n, i + n);
            }
            None => {
                out[o..o + 3].copy_from_slice("\u{fffd}".as_bytes());
                (o, i, lossy) = (o + 3, i + 1, true);
            }
        }
    }
    out.truncate(o);
    !lossy
}

/// The first `"` or `\\` in `s`: a word at a time over the first bytes
/// (the next escape is often near), memchr's vector search beyond.
#[inline]
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(c) = s.get(i..i + 8)
        && i < 32
    {
        let w = word(c);
        let q = w ^ (LO * b'"' as u64);
        let b = w ^ (LO * b'\\' as u64);
        let m = (q.wrapping_sub(LO) & !q | b.wrapping_sub(LO) & !b) & HI;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr2(b'"', b'\\', &s[i..]).map(|j| i + j)
}

/// Where a JSON string's inside `s` (just after its opening quote) ends:
/// the index of its closing quote, with the unescaped bytes appended to
/// `out`. None if it is not a well-formed string.
pub fn unescape_into(out: &mut Vec<u8>, s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let j = i + quote_or_backslash(&s[i..])?;
        out.extend_from_slice(&s[i..j]);
        if s[j] == b'"' {
            return Some(j);
        }
        let e = *s.get(j + 1)?;
        i = j + 2;
        let c = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'b' => 8,
            b'f' => 12,
            b'u' => {
                i = unicode_escape(out, s, j)?;
                continue;
            }
            _ => return None,
        };
        out.push(c);
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    let h = s.get(..4)?;
    let mut v = 0;
    for &c in h {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// `\uXXXX` at `s[j..]` (a surrogate pair takes two): appended as UTF-8, a
/// lone surrogate as U+FFFD. Returns the index after it.
fn unicode_escape(out: &mut Vec<u8>, s: &[u8], j: usize) -> Option<usize> {
    let hi = hex4(&s[j + 2..])?;
    let mut end = j + 6;
    let c = if (0xD800..0xDC00).contains(&hi) {
        match (s.get(end..end + 2), hex4(s.get(end + 2..).unwrap_or(&[]))) {
            (Some(b"\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                end += 6;
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
            }
            _ => None,
        }
    } else {
        char::from_u32(hi)
    };
    let mut b = [0; 4];
    out.extend_from_slice(c.unwrap_or('\u{fffd}').encode_utf8(&mut b).as_bytes());
    Some(end)
}
