//! `--log-driver` and `--log-opt`, in Docker's grammar and words.

use anyhow::{Result, anyhow, bail};

use crate::records::{LogConfig, LogDriver};

/// Drivers Docker has that berth does not (yet): named so the refusal
/// says "not supported" rather than "unknown".
const DOCKER_DRIVERS: &[&str] = &[
    "local",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

impl LogConfig {
    /// `--log-driver` (None: json-file) and its `--log-opt KEY=VALUE`s:
    /// `max-size` (a size: `10m`, `1.5g`, `512k`, bytes without a unit)
    /// and `max-file` (files kept, at least 1; only meaningful with
    /// max-size, as in Docker).
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let driver = match driver.unwrap_or("json-file") {
            "json-file" => LogDriver::JsonFile,
            "none" => LogDriver::None,
            d if DOCKER_DRIVERS.contains(&d) => {
                bail!("log driver {d:?} is not supported by berth: use json-file or none")
            }
            d => bail!(
                "failed to get logging factory: logger: no log driver named '{d}' is registered"
            ),
        };
        let mut cfg = LogConfig {
            driver,
            max_size: None,
            max_file: 1,
        };
        if driver == LogDriver::None {
            if !opts.is_empty() {
                bail!("invalid logging opts for driver none");
            }
            return Ok(cfg);
        }
        for opt in opts {
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            match key {
                "max-size" => {
                    let n = parse_size(value).ok_or_else(|| {
                        anyhow!("--log-opt max-size={value}: invalid size: '{value}'")
                    })?;
                    if n == 0 {
                        bail!("--log-opt max-size={value}: max-size must be a positive number");
                    }
                    cfg.max_size = Some(n);
                }
                "max-file" => {
                    cfg.max_file = match value.parse::<i64>() {
                        Ok(n) if n < 1 => bail!("max-file cannot be less than 1"),
                        Ok(n) => u32::try_from(n)
                            .map_err(|_| anyhow!("--log-opt max-file={value}: too many files"))?,
                        Err(_) => bail!(
                            "--log-opt max-file={value}: strconv.Atoi: parsing \"{value}\": invalid syntax"
                        ),
                    }
                }
                "compress" | "labels" | "labels-regex" | "env" | "env-regex" | "tag" | "mode"
                | "max-buffer-size" => {
                    bail!("log opt '{key}' of the json-file log driver is not supported by berth")
                }
                _ => bail!("unknown log opt '{key}' for json-file log driver"),
            }
        }
        Ok(cfg)
    }
}

/// Docker's RAMInBytes: `NUMBER[ ]?[kmgtp]?[i]?[b]?`, any case, binary
/// units (`1.5m` is 1572864).
fn parse_size(v: &str) -> Option<u64> {
    let lower = v.to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let num: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let n = num * (1u64 << shift) as f64;
    (n < u64::MAX as f64).then_some(n as u64)
}
