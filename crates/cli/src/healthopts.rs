//! `run`/`create`'s health flags, Docker's grammar: `--health-cmd`,
//! `--health-interval`, `--health-timeout`, `--health-start-period`,
//! `--health-start-interval` (Go durations), `--health-retries`,
//! `--no-healthcheck`.

use anyhow::{Result, bail};
use berth_engine::health::{Healthcheck, parse_go_duration};
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct HealthArgs {
    /// Command to run to check health (run with /bin/sh -c).
    #[arg(long, value_name = "STRING")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub health_interval: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub health_timeout: Option<i64>,
    /// Start period for the container to initialize before starting
    /// health-retries countdown (ms|s|m|h) (default 0s).
    #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub health_start_period: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h)
    /// (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub health_start_interval: Option<i64>,
    /// Consecutive failures needed to report unhealthy (default 3).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
}

fn duration(s: &str) -> Result<i64, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

/// The container's own healthcheck (None: the image's as it is), as the
/// docker CLI builds it: unset fields 0, `--no-healthcheck` `["NONE"]`.
pub fn healthcheck(a: &HealthArgs) -> Result<Option<Healthcheck>> {
    let n = |v: Option<i64>| v.unwrap_or(0);
    let any = a.health_cmd.as_deref().is_some_and(|c| !c.is_empty())
        || [
            a.health_interval,
            a.health_timeout,
            a.health_start_period,
            a.health_start_interval,
            a.health_retries,
        ]
        .iter()
        .any(|v| n(*v) != 0);
    if a.no_healthcheck {
        if any {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !any {
        return Ok(None);
    }
    for (flag, v) in [
        ("interval", a.health_interval),
        ("timeout", a.health_timeout),
        ("retries", a.health_retries),
        ("start-period", a.health_start_period),
        ("start-interval", a.health_start_interval),
    ] {
        if n(v) < 0 {
            bail!("--health-{flag} cannot be negative");
        }
    }
    let test = match a.health_cmd.as_deref() {
        Some(c) if !c.is_empty() => vec!["CMD-SHELL".to_string(), c.to_string()],
        _ => Vec::new(),
    };
    Ok(Some(Healthcheck {
        test,
        interval: n(a.health_interval),
        timeout: n(a.health_timeout),
        start_period: n(a.health_start_period),
        start_interval: n(a.health_start_interval),
        retries: n(a.health_retries),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_dockers_cli() {
        let mut a = HealthArgs::default();
        assert_eq!(healthcheck(&a).unwrap(), None);
        a.no_healthcheck = true;
        assert_eq!(healthcheck(&a).unwrap().unwrap().test, ["NONE"]);
        a.health_retries = Some(2);
        assert_eq!(
            healthcheck(&a).unwrap_err().to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        a.no_healthcheck = false;
        a.health_cmd = Some("true".into());
        a.health_interval = Some(200_000_000);
        let h = healthcheck(&a).unwrap().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries, h.timeout), (200_000_000, 2, 0));
        a.health_timeout = Some(-1);
        assert_eq!(
            healthcheck(&a).unwrap_err().to_string(),
            "--health-timeout cannot be negative"
        );
    }
}
