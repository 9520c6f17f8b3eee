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

/// Length of the run of [`plain`] bytes `s` starts with.
#[inline]
pub fn plain_prefix(s: &[u8]) -> usize {
    let mut chunks = s.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let m = special(w);
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
/// lead byte), or None.
fn utf8_char(s: &[u8]) -> Option<usize> {
    let n = match s[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    std::str::from_utf8(s.get(..n)?).ok().map(|_| n)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped as the inside of a JSON string. Bytes that are not
/// UTF-8 become U+FFFD, as in Docker's logs; returns false when that
/// happened (the line is then not `s` any more).
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let mut exact = true;
    let mut i = 0;
    while i < s.len() {
        let run = plain_prefix(&s[i..]);
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        let Some(&b) = s.get(i) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
            _ => match utf8_char(&s[i..]) {
                Some(n) => {
                    out.extend_from_slice(&s[i..i + n]);
                    i += n;
                    continue;
                }
                None => {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                    exact = false;
                }
            },
        }
        i += 1;
    }
    exact
}

/// Where a JSON string's inside `s` (just after its opening quote) ends:
/// the index of its closing quote, with the unescaped bytes appended to
/// `out`. None if it is not a well-formed string.
pub fn unescape_into(out: &mut Vec<u8>, s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let j = i + memchr2(b'"', b'\\', &s[i..])?;
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
