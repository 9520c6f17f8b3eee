//! Times in logs: each entry's `time` (RFC 3339 with nanoseconds, UTC),
//! and the bounds `--since`/`--until` take, as nanoseconds since the Unix
//! epoch (i64: years 1678 to 2262).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};

use crate::timefmt;

pub const NANOS: i64 = 1_000_000_000;

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() as i64 * NANOS + i64::from(d.subsec_nanos())
}

/// `2026-11-30T23:59:59.123456789Z`: what the writer puts in every entry
/// and `-t` prints (Docker's RFC3339NanoFixed: always nine digits, so it
/// also sorts as text).
pub fn format_nanos(t: i64) -> String {
    timefmt::format_unix(t.div_euclid(NANOS), t.rem_euclid(NANOS) as u32)
}

/// An entry's `time`: RFC 3339, any number of fractional digits (Docker
/// writes Go's RFC3339Nano, which drops trailing zeros), `Z` or an offset.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    // timefmt slices by byte offsets.
    if !s.is_ascii() {
        return None;
    }
    let secs = timefmt::parse_rfc3339(s)?;
    let frac = s
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|r| &r[..r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())])
        .unwrap_or("");
    secs.checked_mul(NANOS)?.checked_add(fraction_nanos(frac)?)
}

/// Digits after a decimal point as nanoseconds (beyond nine: dropped).
fn fraction_nanos(digits: &str) -> Option<i64> {
    let mut n = 0i64;
    for (k, c) in digits.bytes().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        if k < 9 {
            n = n * 10 + i64::from(c - b'0');
        }
    }
    Some(n * 10i64.pow(9u32.saturating_sub(digits.len() as u32)))
}

/// `--since`/`--until` in Docker's forms: RFC 3339 (`2026-01-02T15:04:05Z`,
/// fraction and offset optional, or a bare date), Unix seconds with an
/// optional fraction (`1700000000.5`), or a Go duration before `now`
/// (`10m`, `1h30m`, `1.5h`, `300ms`). A time without a zone is taken as
/// UTC (Docker takes the host's local zone).
pub fn parse_bound(flag: &str, s: &str, now: i64) -> Result<i64> {
    let bad = || {
        anyhow!("invalid value for \"{flag}\": failed to parse value as time or duration: {s:?}")
    };
    if let Some(t) = unix_seconds(s) {
        return t.ok_or_else(bad);
    }
    // A Go duration (`10m`, `1h30m`, `0`): that long before now.
    if let Ok(d) = crate::health::parse_go_duration(s) {
        return now.checked_sub(d).ok_or_else(bad);
    }
    if s.len() == 10 {
        return parse_rfc3339_nanos(&format!("{s}T00:00:00Z")).ok_or_else(bad);
    }
    parse_rfc3339_nanos(s).ok_or_else(bad)
}

/// `SECONDS[.FRACTION]`: None if `s` is not of that shape, Some(None) if
/// it is but out of range.
fn unix_seconds(s: &str) -> Option<Option<i64>> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    Some(
        int.parse::<i64>()
            .ok()
            .and_then(|i| i.checked_mul(NANOS)?.checked_add(fraction_nanos(frac)?)),
    )
}
