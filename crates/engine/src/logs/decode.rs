//! One log entry (a line of the file) decoded, and what `logs` prints of
//! it: [`Sink`] keeps stdout's and stderr's apart, buffered, in order.

use std::collections::BTreeMap;
use std::io::{self, Write};

use base64::Engine as _;
use memchr::memrchr;
use serde::Deserialize;

use super::{ReadOptions, json, time};

/// What follows `log`'s string in an entry berth wrote: the stream and a
/// nine-digit UTC time at fixed places, so the fast path finds them from
/// the end of the line.
const STREAM_AT: &[u8] = b"\",\"stream\":\"";
const TIME_AT: &[u8] = b"\",\"time\":\"";
const TIME_LEN: usize = 30;
/// From `log`'s closing quote to the time's (the `}` or `raw` after it
/// not counted).
const TAIL: usize = STREAM_AT.len() + 6 + TIME_AT.len() + TIME_LEN + 1;
const HEAD: &[u8] = b"{\"log\":\"";
const RAW_AT: &[u8] = b"\",\"raw\":\"";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Output buffered per stream up to this before it is written.
const OUT_CHUNK: usize = 128 * 1024;

/// An entry in the general JSON form (Docker's with `attrs`, other field
/// orders, berth's with `raw`).
#[derive(Deserialize)]
struct Entry {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    attrs: Option<BTreeMap<String, String>>,
}

/// Where decoded entries go: stdout's to one writer, stderr's to the
/// other, each buffered; the other stream's buffer is written first
/// whenever the stream changes, so `2>&1` reads in the log's order.
pub struct Sink<'a> {
    w: [&'a mut dyn Write; 2],
    buf: [Vec<u8>; 2],
    last: usize,
    /// Whether the stream's next output begins a line (gets the prefixes).
    line_start: [bool; 2],
    opts: &'a ReadOptions,
    /// Lines that are not entries (reported once).
    bad: u64,
}

impl<'a> Sink<'a> {
    pub fn new(opts: &'a ReadOptions, out: &'a mut dyn Write, err: &'a mut dyn Write) -> Sink<'a> {
        Sink {
            w: [out, err],
            buf: [Vec::new(), Vec::new()],
            last: 0,
            line_start: [true, true],
            opts,
            bad: 0,
        }
    }

    /// One line of a log file (without its newline).
    pub fn line(&mut self, l: &[u8]) -> io::Result<()> {
        if l.is_empty() {
            return Ok(());
        }
        if self.fast(l)? {
            return Ok(());
        }
        match serde_json::from_slice::<Entry>(l) {
            Ok(e) => self.general(e),
            Err(e) => {
                if self.bad == 0 {
                    tracing::warn!("log: skipping a line that is not an entry: {e}");
                }
                self.bad += 1;
                Ok(())
            }
        }
    }

    /// The form berth writes (and Docker, when its time has nine digits):
    /// decoded straight into the output. False: not that form.
    fn fast(&mut self, l: &[u8]) -> io::Result<bool> {
        let Some((l, raw)) = split_raw(l) else {
            return Ok(false);
        };
        if l.len() < HEAD.len() + TAIL || !l.starts_with(HEAD) {
            return Ok(false);
        }
        let t = &l[l.len() - TAIL..];
        let (stream, rest) = t[STREAM_AT.len()..].split_at(6);
        let s = match stream {
            b"stdout" => 0,
            b"stderr" => 1,
            _ => return Ok(false),
        };
        let Some(ts) = rest
            .strip_prefix(TIME_AT)
            .and_then(|r| r.strip_suffix(b"\""))
            .filter(|ts| ts.len() == TIME_LEN && ts[TIME_LEN - 1] == b'Z')
        else {
            return Ok(false);
        };
        if !t.starts_with(STREAM_AT) {
            return Ok(false);
        }
        if !self.wanted(s) {
            return Ok(true);
        }
        if self.opts.since.is_some() || self.opts.until.is_some() {
            let when = std::str::from_utf8(ts)
                .ok()
                .and_then(time::parse_rfc3339_nanos);
            if !self.in_range(when) {
                return Ok(true);
            }
        }
        self.switch_to(s)?;
        let mark = self.buf[s].len();
        self.prefix(s, ts, None);
        let ok = match raw {
            Some(r) => B64.decode_vec(r, &mut self.buf[s]).is_ok(),
            None => {
                // The string ends at the quote that begins the tail: it
                // must be the first one not escaped.
                let body = &l[HEAD.len()..=l.len() - TAIL];
                json::unescape_into(&mut self.buf[s], body) == Some(body.len() - 1)
            }
        };
        if !ok {
            self.buf[s].truncate(mark);
            return Ok(false);
        }
        self.ended(s);
        self.maybe_write(s)?;
        Ok(true)
    }

    fn general(&mut self, e: Entry) -> io::Result<()> {
        let s = match e.stream.as_str() {
            "stderr" => 1,
            _ => 0,
        };
        let when = time::parse_rfc3339_nanos(&e.time);
        if !self.wanted(s) || !self.in_range(when) {
            return Ok(());
        }
        let text = match e.raw.as_deref().map(|r| B64.decode(r)) {
            Some(Ok(bytes)) => bytes,
            _ => e.log.into_bytes(),
        };
        // -t prints the time in one form whatever form the file has.
        let ts = when.map_or(e.time, time::format_nanos);
        self.switch_to(s)?;
        let attrs = e.attrs.map(|a| attrs_text(&a));
        self.prefix(s, ts.as_bytes(), Some(attrs.as_deref().unwrap_or("")));
        self.buf[s].extend_from_slice(&text);
        self.ended(s);
        self.maybe_write(s)
    }

    fn wanted(&self, s: usize) -> bool {
        if s == 0 {
            self.opts.stdout
        } else {
            self.opts.stderr
        }
    }

    /// `--since`/`--until`, both inclusive as in Docker; an entry without
    /// a readable time is shown.
    fn in_range(&self, when: Option<i64>) -> bool {
        let Some(t) = when else { return true };
        self.opts.since.is_none_or(|s| t >= s) && self.opts.until.is_none_or(|u| t <= u)
    }

    /// `-t`'s time and `--details`' attributes, where a line begins (a
    /// long line's later pieces get none: they continue it).
    fn prefix(&mut self, s: usize, ts: &[u8], attrs: Option<&str>) {
        if !self.line_start[s] {
            return;
        }
        let b = &mut self.buf[s];
        if self.opts.timestamps {
            b.extend_from_slice(ts);
            b.push(b' ');
        }
        if self.opts.details {
            b.extend_from_slice(attrs.unwrap_or("").as_bytes());
            b.push(b' ');
        }
    }

    fn ended(&mut self, s: usize) {
        self.line_start[s] = self.buf[s].last() == Some(&b'\n');
    }

    fn switch_to(&mut self, s: usize) -> io::Result<()> {
        if self.last != s {
            self.write_out(self.last)?;
            self.last = s;
        }
        Ok(())
    }

    fn maybe_write(&mut self, s: usize) -> io::Result<()> {
        if self.buf[s].len() >= OUT_CHUNK {
            self.write_out(s)?;
        }
        Ok(())
    }

    fn write_out(&mut self, s: usize) -> io::Result<()> {
        if !self.buf[s].is_empty() {
            self.w[s].write_all(&self.buf[s])?;
            self.buf[s].clear();
        }
        Ok(())
    }

    /// Everything so far out to the writers (before `logs -f` sleeps, and
    /// at the end).
    pub fn flush(&mut self) -> io::Result<()> {
        let first = 1 - self.last;
        self.write_out(first)?;
        self.write_out(self.last)?;
        self.w[0].flush()?;
        self.w[1].flush()
    }
}

/// An entry `{…}` without its `}` and berth's `raw` (which comes last, and
/// has no quotes in it): the rest, through the time's closing quote, and
/// raw's value.
fn split_raw(l: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let l = l.strip_suffix(b"}")?;
    let before_last = l.len().checked_sub(1)?;
    let q = memrchr(b'"', &l[..before_last])?;
    if l[..=q].ends_with(RAW_AT) {
        Some((&l[..q + 2 - RAW_AT.len()], Some(&l[q + 1..before_last])))
    } else {
        Some((l, None))
    }
}

/// Docker's `--details` text: `key=value` pairs sorted by key, joined by
/// commas, each side query-escaped.
fn attrs_text(attrs: &BTreeMap<String, String>) -> String {
    let esc = |s: &str| {
        let mut o = String::new();
        for b in s.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    o.push(b as char)
                }
                b' ' => o.push('+'),
                _ => o.push_str(&format!("%{b:02X}")),
            }
        }
        o
    };
    attrs
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(",")
}
