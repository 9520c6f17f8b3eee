//! Health checks, Docker's way: what a container is checked with (the
//! image's `HEALTHCHECK` merged with `--health-*`, kept in its record as
//! Docker's Config.Healthcheck), and what the checks found (State.Health).
//! The container's monitor runs them (see `monitor::health`).

use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Docker's defaults for fields left 0.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;
/// Results kept in State.Health.Log, and bytes of output kept of each.
pub const MAX_LOG_ENTRIES: usize = 5;
pub const MAX_OUTPUT: usize = 4096;

/// Docker's Config.Healthcheck (and an image config's): durations in
/// nanoseconds, 0 for "not set" (the default, or the image's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `[]` (inherit), `["NONE"]`, `["CMD", args…]`, `["CMD-SHELL", cmd]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Healthcheck {
    /// Docker's merge of a container's healthcheck over its image's: each
    /// field the container leaves unset is the image's.
    pub fn merge(user: Option<Healthcheck>, image: Option<Healthcheck>) -> Option<Healthcheck> {
        let (mut u, i) = match (user, image) {
            (None, i) => return i,
            (u, None) => return u,
            (Some(u), Some(i)) => (u, i),
        };
        if u.test.is_empty() {
            u.test = i.test;
        }
        let pick = |a: &mut i64, b: i64| {
            if *a == 0 {
                *a = b;
            }
        };
        pick(&mut u.interval, i.interval);
        pick(&mut u.timeout, i.timeout);
        pick(&mut u.start_period, i.start_period);
        pick(&mut u.start_interval, i.start_interval);
        pick(&mut u.retries, i.retries);
        Some(u)
    }

    /// The image config's `config.Healthcheck` (Docker's extension of the
    /// OCI image config), if it has a valid one.
    pub fn from_image_config(config: &serde_json::Value) -> Option<Healthcheck> {
        let hc = config.get("config")?.get("Healthcheck")?;
        serde_json::from_value(hc.clone()).ok()
    }

    /// The command a check runs; None when it checks nothing (`NONE`, no test).
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, [cmd])) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => None,
        }
    }

    /// Whether the container is checked at all.
    pub fn active(&self) -> bool {
        self.command().is_some()
    }

    pub fn interval(&self) -> Duration {
        or_default(self.interval, DEFAULT_INTERVAL)
    }
    pub fn timeout(&self) -> Duration {
        or_default(self.timeout, DEFAULT_TIMEOUT)
    }
    pub fn start_period(&self) -> Duration {
        or_default(self.start_period, Duration::ZERO)
    }
    pub fn start_interval(&self) -> Duration {
        or_default(self.start_interval, DEFAULT_START_INTERVAL)
    }
    pub fn retries(&self) -> u32 {
        if self.retries <= 0 {
            DEFAULT_RETRIES
        } else {
            self.retries.min(i64::from(u32::MAX)) as u32
        }
    }

    /// The daemon's checks of a healthcheck, in its words.
    pub fn validate(&self) -> Result<()> {
        let min = 1_000_000; // 1 ms
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < min {
                bail!("{name} in Healthcheck cannot be less than 1ms");
            }
        }
        if self.retries < 0 {
            bail!("Retries in Healthcheck cannot be negative");
        }
        Ok(())
    }
}

fn or_default(ns: i64, default: Duration) -> Duration {
    if ns <= 0 {
        default
    } else {
        Duration::from_nanos(ns as u64)
    }
}

/// Docker's State.Health.Status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// Docker's State.Health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    #[serde(default)]
    pub failing_streak: u32,
    #[serde(default)]
    pub log: Vec<HealthResult>,
}

/// One check's result (Start and End in RFC 3339 with nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

impl Health {
    /// Docker's handling of a result: a success makes it healthy; a
    /// failure counts (towards `retries` and unhealthy) unless it came
    /// while still starting, inside the start period. `in_start_period`:
    /// the check began less than the start period after the container.
    pub fn record(&mut self, result: HealthResult, retries: u32, in_start_period: bool) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak = self.failing_streak.saturating_add(1);
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(result);
        if self.log.len() > MAX_LOG_ENTRIES {
            let extra = self.log.len() - MAX_LOG_ENTRIES;
            self.log.drain(..extra);
        }
    }
}

/// A Go duration (`300ms`, `1m30s`, `1.5h`, `0`) in nanoseconds, as the
/// docker CLI's duration flags take it.
pub fn parse_go_duration(s: &str) -> Result<i64> {
    let bad = || anyhow::anyhow!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow::anyhow!("time: missing unit in duration {s:?}"))?;
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.');
        let (unit, tail) = tail.split_at(unit_len.unwrap_or(tail.len()));
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => bail!("time: unknown unit {unit:?} in duration {s:?}"),
        };
        total += num.parse::<f64>().map_err(|_| bad())? * scale;
        rest = tail;
    }
    if total > i64::MAX as f64 {
        bail!("time: invalid duration {s:?}");
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// Go's Duration.String(): `300ms`, `30s`, `1m30s`, `1.5µs`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128| {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let h = ns / 3_600_000_000_000;
    let m = ns / 60_000_000_000 % 60;
    let s = frac(ns % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_go_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_go_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_go_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_go_duration("0").unwrap(), 0);
        assert_eq!(parse_go_duration("-2s").unwrap(), -2_000_000_000);
        for bad in ["", "5", "s", "5x", "1..2s", "-"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn merge_field_by_field() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            retries: 7,
            ..Default::default()
        };
        let user = Healthcheck {
            interval: 9,
            ..Default::default()
        };
        let m = Healthcheck::merge(Some(user), Some(image.clone())).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (9, 7));
        let none = Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert!(
            !Healthcheck::merge(Some(none), Some(image))
                .unwrap()
                .active()
        );
    }

    #[test]
    fn status_machine() {
        let fail = || HealthResult {
            exit_code: 1,
            ..Default::default()
        };
        let mut h = Health::default();
        h.record(fail(), 2, true);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        h.record(fail(), 2, false);
        assert_eq!(h.status, HealthStatus::Starting);
        h.record(fail(), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        h.record(HealthResult::default(), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        for _ in 0..10 {
            h.record(fail(), 2, true);
        }
        // Once healthy, the start period no longer excuses failures.
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
    }
}
