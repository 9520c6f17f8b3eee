//! `rename` and `container prune`.

use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result, bail};
use berth_engine::records::ContainerRecord;
use berth_engine::{Engine, timefmt};
use berth_io::outln;

use super::filter;
use crate::cli::{ContainerPruneArgs, RenameArgs};
use crate::table;

pub fn rename(engine: &Engine, args: &RenameArgs) -> Result<u8> {
    berth_engine::rename::rename(engine, &args.container, &args.new_name)?;
    Ok(0)
}

/// `container prune [-f] [--filter until=…|label=…|label!=…]`.
pub fn prune(engine: &Engine, args: &ContainerPruneArgs) -> Result<u8> {
    let select = PruneFilter::new(&args.filter)?;
    if !args.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let pruned = berth_engine::prune::prune_containers(engine, |c| select.matches(c))?;
    if !pruned.is_empty() {
        outln!("Deleted Containers:");
        for p in &pruned {
            outln!("{}", p.id);
        }
        outln!("");
    }
    let total: u64 = pruned.iter().map(|p| p.size).sum();
    outln!(
        "Total reclaimed space: {}",
        table::human_size_precision(total, 4)
    );
    Ok(0)
}

/// Docker's prompt: `[y/N]`, anything but y or yes (or no answer) is no.
pub(crate) fn confirm(warning: &str) -> Result<bool> {
    let mut o = std::io::stdout();
    let _ = write!(o, "{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = o.flush();
    let mut line = String::new();
    // One short line is all an answer is; an endless stdin is cut there.
    std::io::stdin()
        .lock()
        .take(1024)
        .read_line(&mut line)
        .context("read the answer")?;
    let answer = line.trim().to_lowercase();
    Ok(answer == "y" || answer == "yes")
}

/// `container prune`'s filters: `until` (a duration back from now, an
/// RFC 3339 time or Unix seconds), `label`, `label!`.
pub(crate) struct PruneFilter {
    /// Only containers created before this, milliseconds since the epoch.
    until: Option<i64>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

impl PruneFilter {
    pub(crate) fn new(args: &[String]) -> Result<PruneFilter> {
        let m = filter::parse(args, &["until", "label", "label!"])?;
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        let until = match get("until").as_slice() {
            [] => None,
            [u] => Some(until_ms(u).with_context(|| format!("invalid filter 'until={u}'"))?),
            _ => bail!("more than one until filter specified"),
        };
        Ok(PruneFilter {
            until,
            labels: get("label"),
            not_labels: get("label!"),
        })
    }

    pub(crate) fn matches(&self, c: &ContainerRecord) -> bool {
        self.selects(&c.created, &c.labels)
    }

    /// Whether something created at `created` (RFC 3339) with `labels`
    /// is to be pruned (a container, an image).
    pub(crate) fn selects(
        &self,
        created: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        let created = timefmt::parse_rfc3339_ms(created).unwrap_or(0);
        self.until.is_none_or(|u| created < u)
            && self.labels.iter().all(|l| filter::label_matches(labels, l))
            && !self
                .not_labels
                .iter()
                .any(|l| filter::label_matches(labels, l))
    }
}

/// `until=`: `24h`, `1h30m`, `90s` back from now; an RFC 3339 time; or
/// Unix seconds.
fn until_ms(s: &str) -> Result<i64> {
    if let Some(t) = timefmt::parse_rfc3339_ms(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    Ok(timefmt::now_ms() - go_duration_ms(s)?)
}

/// A Go duration (`1h30m`, `10s`, `500ms`) in milliseconds.
fn go_duration_ms(s: &str) -> Result<i64> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n]
            .parse()
            .map_err(|_| anyhow::anyhow!("not a duration"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => bail!("not a duration"),
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::record;
    use super::*;
    use berth_engine::records::Status;

    #[test]
    fn prune_filters() {
        assert_eq!(go_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(go_duration_ms("500ms").unwrap(), 500);
        assert!(go_duration_ms("5 days").is_err());
        assert_eq!(until_ms("1700000000").unwrap(), 1_700_000_000_000);
        let old = record("old", Status::Exited, 7200);
        let f = PruneFilter::new(&["until=1h".into()]).unwrap();
        let mut new = record("new", Status::Exited, 0);
        new.created = timefmt::now_rfc3339();
        assert!(f.matches(&old));
        assert!(!f.matches(&new));
        let f = PruneFilter::new(&["label!=app=web".into()]).unwrap();
        assert!(!f.matches(&old));
        let f = PruneFilter::new(&["label=app".into()]).unwrap();
        assert!(f.matches(&new));
        assert!(PruneFilter::new(&["until=soon".into()]).is_err());
        assert!(PruneFilter::new(&["colour=red".into()]).is_err());
    }
}
