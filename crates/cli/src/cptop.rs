//! `cp`, `top` and `stats` (also as `container cp|top|stats`): arguments
//! as Docker's CLI takes them, its output, its errors (the container
//! side's as `Error response from daemon: …`) and exit code 1.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use berth_engine::Engine;
use berth_engine::cp::{CpOptions, DaemonError, HostDst, HostSrc};
use berth_engine::records::ContainerRecord;
use berth_engine::stats::{Reading, Sample};
use berth_io::{errln, out};

use crate::cli::{CpArgs, StatsArgs, TopArgs};
use crate::table;

/// Prints `e` as Docker's CLI would and gives its exit code, 1.
fn failed(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<DaemonError>() {
        Some(d) => errln!("Error response from daemon: {d}"),
        None => errln!("berth: {e:#}"),
    }
    1
}

/// Docker's split of a `cp` argument: `CONTAINER:PATH`, unless it is an
/// absolute path or starts with `.` (a local path may hold a colon then).
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') && !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

/// `berth cp [-a] [-L] [-q] SRC DST`.
pub fn cp(engine: &Engine, a: &CpArgs) -> Result<u8> {
    let opts = CpOptions {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    let usage = |m: &str| Err(anyhow::anyhow!("{m}"));
    let res = match (split_cp_arg(&a.src), split_cp_arg(&a.dst)) {
        ((Some(_), _), (Some(_), _)) => usage("copying between containers is not supported"),
        ((None, _), (None, _)) => usage("must specify at least one container source"),
        ((Some(_), ""), _) | (_, (Some(_), "")) => usage("container path must not be empty"),
        ((Some(c), src), (None, dst)) => {
            if dst == "-" {
                let mut stdout = std::io::stdout().lock();
                berth_engine::cp::copy_out(engine, c, src, HostDst::Stream(&mut stdout), opts)
            } else {
                berth_engine::cp::copy_out(engine, c, src, HostDst::Path(Path::new(dst)), opts)
            }
        }
        ((None, src), (Some(c), dst)) => {
            if src == "-" {
                let mut stdin = std::io::stdin().lock();
                berth_engine::cp::copy_in(engine, c, dst, HostSrc::Stream(&mut stdin), opts)
            } else {
                berth_engine::cp::copy_in(engine, c, dst, HostSrc::Path(Path::new(src)), opts)
            }
        }
    };
    Ok(match res {
        Ok(()) => 0,
        Err(e) => failed(&e),
    })
}

/// `berth top CONTAINER [ps OPTIONS]`.
pub fn top(engine: &Engine, a: &TopArgs) -> Result<u8> {
    let t = match berth_engine::top::top(engine, &a.container, &a.ps_args) {
        Ok(t) => t,
        Err(e) => return Ok(failed(&e)),
    };
    out!("{}", tabwriter(&t.titles, &t.processes));
    Ok(0)
}

/// Go's tabwriter as Docker's `top` sets it up (minimum width 20,
/// padding 3): every column but the last padded to its widest cell.
fn tabwriter(titles: &[String], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    for line in std::iter::once(titles).chain(rows.iter().map(Vec::as_slice)) {
        for (i, c) in line.iter().enumerate() {
            s.push_str(c);
            if i + 1 < line.len() {
                let w = (width[i] + 3).max(20);
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        s.push('\n');
    }
    s
}

/// Go's `%.Ng`: `prec` significant digits, trailing zeros dropped.
fn fmt_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i64;
    let decimals = (prec as i64 - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// go-units' CustomSize: divide by `base` while it fits, `%.{prec}g`.
fn custom_size(bytes: u64, base: f64, units: &[&str], prec: usize) -> String {
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", fmt_g(v, prec), units[i])
}

/// Docker's memory sizes (go-units BytesSize): `1.5MiB`, `23.42GiB`.
fn binary_size(bytes: u64) -> String {
    custom_size(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// Docker's I/O sizes (HumanSizeWithPrecision(…, 3)): `4.1kB`, `0B`.
fn decimal_size(bytes: u64) -> String {
    custom_size(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

/// The fields of a `stats` line, by template name.
fn fields(s: &Sample, no_trunc: bool) -> Vec<(&'static str, String)> {
    let dash = || "--".to_string();
    let pair = |p: Option<(u64, u64)>| {
        p.map_or_else(dash, |(a, b)| {
            format!("{} / {}", decimal_size(a), decimal_size(b))
        })
    };
    let pct = |p: Option<f64>| p.map_or_else(dash, |v| format!("{v:.2}%"));
    let id = if no_trunc {
        &s.id[..]
    } else {
        &s.id[..12.min(s.id.len())]
    };
    let mem = match (s.mem_usage, s.mem_limit) {
        (Some(u), Some(l)) => format!("{} / {}", binary_size(u), binary_size(l)),
        (Some(u), None) => format!("{} / --", binary_size(u)),
        _ => "-- / --".into(),
    };
    vec![
        ("ID", id.to_string()),
        ("Container", id.to_string()),
        ("Name", s.name.clone()),
        ("CPUPerc", pct(s.cpu_percent)),
        ("MemUsage", mem),
        ("MemPerc", pct(s.mem_percent)),
        ("NetIO", pair(s.net)),
        ("BlockIO", pair(s.block_io)),
        ("PIDs", s.pids.map_or_else(dash, |p| p.to_string())),
    ]
}

fn header_of(field: &str) -> &'static str {
    match field {
        "ID" => "CONTAINER ID",
        "Container" => "CONTAINER",
        "Name" => "NAME",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        _ => "PIDS",
    }
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}";

/// A `--format` template: literal text and `{{.Field}}`s.
enum Piece {
    Text(String),
    Field(&'static str),
}

/// Parses a template (Go's `\t` and `\n` escapes taken as Docker's CLI
/// takes them); unknown fields are an error, as in Go's templates.
fn parse_template(t: &str) -> Result<Vec<Piece>> {
    const NAMES: &[&str] = &[
        "ID",
        "Container",
        "Name",
        "CPUPerc",
        "MemUsage",
        "MemPerc",
        "NetIO",
        "BlockIO",
        "PIDs",
    ];
    let t = t.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = Vec::new();
    let mut rest = t.as_str();
    while let Some(start) = rest.find("{{") {
        out.push(Piece::Text(rest[..start].to_string()));
        let Some(end) = rest[start..].find("}}") else {
            bail!("template: unclosed action in {t:?}");
        };
        let inner = rest[start + 2..start + end].trim();
        let name = inner.strip_prefix('.').unwrap_or(inner);
        let Some(f) = NAMES.iter().find(|n| **n == name) else {
            bail!("template: can't evaluate field {inner} in stats");
        };
        out.push(Piece::Field(f));
        rest = &rest[start + end + 2..];
    }
    out.push(Piece::Text(rest.to_string()));
    Ok(out)
}

/// How `stats` prints.
enum Output {
    /// A header, then the template's lines aligned in columns.
    Table(Vec<Piece>),
    /// The template's lines as they are.
    Lines(Vec<Piece>),
    /// One JSON object a line.
    Json,
}

fn output_of(format: Option<&str>) -> Result<Output> {
    let f = format.unwrap_or("table").trim();
    if f == "json" || f == "{{json .}}" {
        return Ok(Output::Json);
    }
    if f == "table" {
        return Ok(Output::Table(parse_template(
            DEFAULT_FORMAT
                .strip_prefix("table ")
                .unwrap_or(DEFAULT_FORMAT),
        )?));
    }
    match f.strip_prefix("table ") {
        Some(t) => Ok(Output::Table(parse_template(t)?)),
        None => Ok(Output::Lines(parse_template(f)?)),
    }
}

fn render(pieces: &[Piece], vals: &[(&'static str, String)]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Field(f) => {
                s.push_str(vals.iter().find(|(k, _)| k == f).map_or("", |(_, v)| v));
            }
        }
    }
    s
}

fn block(output: &Output, samples: &[Sample], no_trunc: bool) -> String {
    match output {
        Output::Json => {
            let mut s = String::new();
            for smp in samples {
                let map: serde_json::Map<String, serde_json::Value> = fields(smp, no_trunc)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                    .collect();
                s.push_str(&serde_json::Value::Object(map).to_string());
                s.push('\n');
            }
            s
        }
        Output::Lines(p) => samples
            .iter()
            .map(|smp| render(p, &fields(smp, no_trunc)) + "\n")
            .collect(),
        Output::Table(p) => {
            // The header is the template with each field's title in it.
            let titles: Vec<(&'static str, String)> = p
                .iter()
                .filter_map(|x| match x {
                    Piece::Field(f) => Some((*f, header_of(f).to_string())),
                    Piece::Text(_) => None,
                })
                .collect();
            let header_line = render(p, &titles);
            let header: Vec<&str> = header_line.split('\t').collect();
            let rows: Vec<Vec<String>> = samples
                .iter()
                .map(|smp| {
                    render(p, &fields(smp, no_trunc))
                        .split('\t')
                        .map(str::to_string)
                        .collect()
                })
                .collect();
            let mut text = header.join("\t") + "\n";
            for r in &rows {
                text.push_str(&r.join("\t"));
                text.push('\n');
            }
            table::tabwriter(&text)
        }
    }
}

/// The containers `stats` shows this round.
fn chosen(engine: &Engine, a: &StatsArgs) -> Result<Vec<ContainerRecord>> {
    let records = engine.records()?;
    if a.containers.is_empty() {
        return Ok(records
            .list()?
            .into_iter()
            .filter(|c| a.all || c.is_running())
            .collect());
    }
    a.containers
        .iter()
        .map(|k| {
            records
                .find(k)
                .map_err(|_| anyhow::Error::from(DaemonError(format!("No such container: {k}"))))
        })
        .collect()
}

/// `berth stats [--no-stream] [--no-trunc] [-a] [--format T] [CONTAINER…]`.
pub fn stats(engine: &Engine, a: &StatsArgs) -> Result<u8> {
    let output = output_of(a.format.as_deref())?;
    let tty = std::io::stdout().is_terminal();
    let mut prev: HashMap<String, Reading> = HashMap::new();
    loop {
        let list = match chosen(engine, a) {
            Ok(l) => l,
            Err(e) => return Ok(failed(&e)),
        };
        let first = prev.is_empty();
        let mut now: HashMap<String, Reading> = list
            .iter()
            .filter(|c| c.is_running())
            .map(|c| (c.id.clone(), berth_engine::stats::read(c)))
            .collect();
        if first && !now.is_empty() {
            // CPU % needs two readings: the first block comes a second in.
            prev = now;
            std::thread::sleep(Duration::from_secs(1));
            now = list
                .iter()
                .filter(|c| c.is_running())
                .map(|c| (c.id.clone(), berth_engine::stats::read(c)))
                .collect();
        }
        let samples: Vec<Sample> = list
            .iter()
            .map(|c| match now.get(&c.id) {
                Some(r) => berth_engine::stats::sample(c, prev.get(&c.id), r),
                None => berth_engine::stats::stopped(c),
            })
            .collect();
        let text = block(&output, &samples, a.no_trunc);
        if tty && !a.no_stream {
            // Docker's redraw: clear the screen, home the cursor.
            out!("\x1b[2J\x1b[H{text}");
        } else {
            out!("{text}");
        }
        if a.no_stream {
            return Ok(0);
        }
        prev = now;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(25_143_000_000), "23.42GiB");
        assert_eq!(decimal_size(0), "0B");
        assert_eq!(decimal_size(4096), "4.1kB");
        assert_eq!(decimal_size(999), "999B");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }

    #[test]
    fn cp_arguments_split_as_docker_splits_them() {
        assert_eq!(split_cp_arg("c:/etc"), (Some("c"), "/etc"));
        assert_eq!(split_cp_arg("/a:b"), (None, "/a:b"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
    }

    #[test]
    fn templates_render_and_refuse_unknown_fields() {
        let smp = berth_engine::stats::Sample {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            cpu_percent: Some(1.234),
            mem_usage: Some(1536 * 1024),
            mem_limit: Some(64 << 20),
            mem_percent: Some(2.34375),
            net: Some((0, 0)),
            block_io: None,
            pids: Some(2),
        };
        let t = block(&output_of(None).unwrap(), std::slice::from_ref(&smp), false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("CONTAINER ID   NAME   CPU %   MEM USAGE / LIMIT"),
            "{t}"
        );
        assert!(lines[1].contains("1.5MiB / 64MiB"), "{t}");
        assert!(
            lines[1].contains("1.23%") && lines[1].contains("0B / 0B"),
            "{t}"
        );
        assert!(lines[1].contains("--"), "unknown block I/O: {t}");
        let l = block(
            &output_of(Some("{{.Name}}: {{.PIDs}}")).unwrap(),
            &[smp],
            false,
        );
        assert_eq!(l, "web: 2\n");
        assert!(output_of(Some("{{.Nope}}")).is_err());
    }
}
