//! `cp`, `top`, `stats` and `diff` (also as `container cp|top|stats|diff`): arguments
//! as Docker's CLI takes them, its output, its errors (the container
//! side's as `Error response from daemon: …`) and exit code 1.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use berth_engine::Engine;
use berth_engine::cp::{CpOptions, DaemonError, HostDst, HostSrc};
use berth_engine::records::ContainerRecord;
use berth_engine::stats::{Reading, Sample};
use berth_io::{errln, out};
use serde_json::{Value, json};

use crate::cli::{CpArgs, StatsArgs, TopArgs};
use crate::format::Format;
use crate::table;
use crate::template::Val;

/// Prints `e` as Docker's CLI would and gives its exit code, 1.
fn failed(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<DaemonError>() {
        Some(d) => errln!("Error response from daemon: {d}"),
        // A missing container in Docker's words too.
        None => errln!("{}", crate::error_line(e, "")),
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
    // Docker's top.go: tabwriter.NewWriter(out, 20, 1, 3, ' ', 0).
    let mut text = t.titles.join("\t") + "\n";
    for p in &t.processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    out!("{}", table::tabwriter_min(&text, 20));
    Ok(0)
}

/// The fields of a `stats` line, as Docker's statsContext gives them (and
/// `{{json .}}` prints them): every one a string, `--` when unknown.
fn context(s: &Sample, no_trunc: bool) -> Value {
    let dash = || "--".to_string();
    let pair = |p: Option<(u64, u64)>| {
        p.map_or_else(dash, |(a, b)| {
            format!("{} / {}", table::human_size(a), table::human_size(b))
        })
    };
    let pct = |p: Option<f64>| p.map_or_else(dash, |v| format!("{v:.2}%"));
    let id = if no_trunc {
        &s.id[..]
    } else {
        &s.id[..12.min(s.id.len())]
    };
    let mem = match (s.mem_usage, s.mem_limit) {
        (Some(u), Some(l)) => format!("{} / {}", table::bytes_size(u), table::bytes_size(l)),
        (Some(u), None) => format!("{} / --", table::bytes_size(u)),
        _ => "-- / --".into(),
    };
    json!({
        "ID": id,
        "Container": id,
        "Name": s.name,
        "CPUPerc": pct(s.cpu_percent),
        "MemUsage": mem,
        "MemPerc": pct(s.mem_percent),
        "NetIO": pair(s.net),
        "BlockIO": pair(s.block_io),
        "PIDs": s.pids.map_or_else(dash, |p| p.to_string()),
    })
}

/// Docker's column titles for the stats fields.
fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// Docker's default stats columns (its `defaultStatsTableFormat`).
const DEFAULT_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// The Go type Docker's stats templates run against, named in its errors.
const CONTEXT_TYPE: &str = "*container.statsContext";

fn no_methods(_: usize, _: &str, _: &[Val]) -> Option<Result<Val, String>> {
    None
}

/// `--format` for stats. The template is tried once on a stand-in
/// container, so a bad field is an error up front, even with nothing to
/// show, rather than a second into the stream.
fn stats_format(format: Option<&str>) -> Result<Format> {
    let f = Format::parse(format, DEFAULT_TABLE)?;
    let probe = Sample {
        id: String::new(),
        name: String::new(),
        cpu_percent: None,
        mem_usage: None,
        mem_limit: None,
        mem_percent: None,
        net: None,
        block_io: None,
        pids: None,
    };
    f.render(
        &[context(&probe, false)],
        &headers(),
        CONTEXT_TYPE,
        &no_methods,
    )?;
    Ok(f)
}

fn block(format: &Format, samples: &[Sample], no_trunc: bool) -> Result<String> {
    let items: Vec<Value> = samples.iter().map(|s| context(s, no_trunc)).collect();
    format.render(&items, &headers(), CONTEXT_TYPE, &no_methods)
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
    let format = stats_format(a.format.as_deref())?;
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
        let text = block(&format, &samples, a.no_trunc)?;
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

/// `export [-o FILE] CONTAINER`: its whole filesystem as a tar stream
/// (cp's archive of `/`, owners kept). A file is written whole or not at
/// all (a temporary file renamed into place); a terminal is refused.
pub fn export(engine: &Engine, key: &str, output: Option<&Path>) -> Result<u8> {
    use berth_engine::cp::copy_out;
    let opts = CpOptions {
        archive: true,
        follow_link: false,
    };
    let res = to_output(output, "export", |w| {
        copy_out(engine, key, "/", HostDst::Stream(w), opts)
    });
    Ok(match res {
        Ok(Some(())) => 0,
        Ok(None) => 1,
        Err(e) => failed(&e),
    })
}

/// Run `write` on stdout, or on `-o FILE` made whole or not at all (a
/// temporary file renamed into place, removed on failure). A terminal is
/// refused with Docker's message: `None`, with the message printed.
pub(crate) fn to_output<T>(
    output: Option<&Path>,
    what: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<T>,
) -> Result<Option<T>> {
    let Some(path) = output else {
        if std::io::stdout().is_terminal() {
            errln!("berth: cowardly refusing to save to a terminal. Use the -o flag or redirect");
            return Ok(None);
        }
        let mut stdout = std::io::stdout().lock();
        let v = write(&mut stdout)?;
        std::io::Write::flush(&mut stdout)?;
        return Ok(Some(v));
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.berth-{what}-{}", std::process::id()));
    let res = (|| {
        let mut f = LazyFile {
            path: &tmp,
            file: None,
        };
        let v = write(&mut f)?;
        std::io::Write::flush(&mut f)?;
        std::fs::rename(&tmp, path)?;
        anyhow::Ok(v)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(Some)
}

/// A file made at its first write: rootless, the copy may go on in a
/// re-executed berth (in its user namespace), and the first process must
/// leave no file behind it.
struct LazyFile<'a> {
    path: &'a Path,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl LazyFile<'_> {
    fn file(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        if self.file.is_none() {
            self.file = Some(std::io::BufWriter::new(std::fs::File::create(self.path)?));
        }
        Ok(self.file.as_mut().expect("just made"))
    }
}

impl std::io::Write for LazyFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file()?.flush()
    }
}

/// `diff CONTAINER`: Docker's `A /path`, `C /path`, `D /path` lines.
pub fn diff(engine: &Engine, key: &str) -> Result<u8> {
    for (kind, path) in berth_engine::diff::changes(engine, key)? {
        out!("{} {path}\n", kind.letter());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments_split_as_docker_splits_them() {
        assert_eq!(split_cp_arg("c:/etc"), (Some("c"), "/etc"));
        assert_eq!(split_cp_arg("/a:b"), (None, "/a:b"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
    }

    fn web() -> Sample {
        Sample {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            cpu_percent: Some(1.234),
            mem_usage: Some(1536 * 1024),
            mem_limit: Some(64 << 20),
            mem_percent: Some(2.34375),
            net: Some((0, 4096)),
            block_io: None,
            pids: Some(2),
        }
    }

    fn shown(format: Option<&str>, no_trunc: bool) -> String {
        block(&stats_format(format).unwrap(), &[web()], no_trunc).unwrap()
    }

    #[test]
    fn the_default_table_is_dockers() {
        assert_eq!(
            shown(None, false),
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     \
             NET I/O      BLOCK I/O   PIDS\n\
             0123456789ab   web       1.23%     1.5MiB / 64MiB      2.34%     \
             0B / 4.1kB   --          2\n"
        );
        assert_eq!(shown(Some("table"), false), shown(None, false));
        let full = shown(None, true);
        assert!(full.contains("\n0123456789abcdef   web "), "{full}");
    }

    #[test]
    fn templates_tables_and_json() {
        assert_eq!(
            shown(Some("table {{.Name}}\\t{{.CPUPerc}}"), false),
            "NAME      CPU %\nweb       1.23%\n"
        );
        assert_eq!(
            shown(Some("table {{.Container}}\\t{{.PIDs}}"), false),
            "CONTAINER      PIDS\n0123456789ab   2\n"
        );
        assert_eq!(shown(Some("{{.Name}}: {{.PIDs}}"), false), "web: 2\n");
        let json = "{\"BlockIO\":\"--\",\"CPUPerc\":\"1.23%\",\"Container\":\"0123456789ab\",\
                    \"ID\":\"0123456789ab\",\"MemPerc\":\"2.34%\",\"MemUsage\":\"1.5MiB / 64MiB\",\
                    \"Name\":\"web\",\"NetIO\":\"0B / 4.1kB\",\"PIDs\":\"2\"}\n";
        assert_eq!(shown(Some("json"), false), json);
        assert_eq!(shown(Some("{{json .}}"), false), json);
        // No containers: a table is its header, a template nothing.
        let f = stats_format(Some("table {{.Name}}\\t{{.MemPerc}}")).unwrap();
        assert_eq!(block(&f, &[], false).unwrap(), "NAME      MEM %\n");
        let f = stats_format(Some("{{.Name}}")).unwrap();
        assert_eq!(block(&f, &[], false).unwrap(), "");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        for f in ["{{.Nope}}", "table {{.Name}}\\t{{.Nope}}"] {
            let e = stats_format(Some(f)).err().unwrap().to_string();
            assert!(
                e.contains("can't evaluate field Nope in type *container.statsContext"),
                "{f}: {e}"
            );
        }
        let e = stats_format(Some("{{nope}}")).err().unwrap().to_string();
        assert!(e.contains("function \"nope\" not defined"), "{e}");
    }
}
