//! Container logs in Docker's `json-file` format: the monitor writes them
//! ([`LogWriter`]), `logs` reads them back ([`read`], [`show`]).
//!
//! The log of container ID is `<container dir>/ID-json.log` ([`log_path`]),
//! one JSON object a line, as Docker writes it:
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-11-30T23:59:59.123456789Z"}
//! ```
//!
//! - `log` is one line with its newline. A line longer than 16 KiB is
//!   cut into entries of 16 KiB without a newline (Docker's partial
//!   messages; berth cuts between UTF-8 characters where it can); a line
//!   still unfinished when the container exits is an entry without one.
//!   Printed back one after another they are the bytes written.
//! - `stream` is `stdout` or `stderr`; `logs` writes each back to its own.
//! - `time`: when berth read the entry from the pipe, UTC, always nine
//!   fractional digits (Go reads it; it sorts as text).
//! - `raw`, a berth extension: bytes that are not UTF-8 cannot be in a
//!   JSON string, and Docker replaces them with U+FFFD, losing them. An
//!   entry whose line is not UTF-8 keeps `log` as Docker would have it
//!   (for Docker's tools, which ignore fields they do not know) and adds
//!   the exact line, base64, in `raw`; `logs` prints `raw` when there is
//!   one, so what comes back is what the container wrote, byte for byte.
//!
//! Rotation (`--log-opt max-size=…`): before an entry that would take the
//! file past max-size, `X` becomes `X.1` (`X.1` becomes `X.2`…, keeping
//! max-file files in all) and a new `X` is begun. Readers open every file
//! first and read the open files, so renames do not disturb them.

mod config;
mod decode;
mod follow;
mod json;
mod reader;
mod time;
mod writer;

#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::Engine;
use crate::records::{ContainerRecord, LogDriver};

pub use time::{now_nanos, parse_bound};
pub use writer::LogWriter;

/// A line's content longer than this is cut into partial entries (Docker's
/// 16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// Which of the container's outputs bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// Container `id`'s log in its directory `container_dir`, as Docker names it.
pub fn log_path(container_dir: &Path, id: &str) -> PathBuf {
    container_dir.join(format!("{id}-json.log"))
}

/// The `n`th rotated file of the log at `path` (`X.n`).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// What `logs` shows.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `--tail N`: the last N entries only (None: all).
    pub tail: Option<usize>,
    /// `--since`/`--until`, nanoseconds since the epoch ([`parse_bound`]).
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// `-t`: each line begins with its time and a space.
    pub timestamps: bool,
    /// `--details`: each line begins with the entry's attributes and a space.
    pub details: bool,
    /// `-f`: after the replay, new entries until the container stops.
    pub follow: bool,
    /// Which streams to show.
    pub stdout: bool,
    pub stderr: bool,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            tail: None,
            since: None,
            until: None,
            timestamps: false,
            details: false,
            follow: false,
            stdout: true,
            stderr: true,
        }
    }
}

/// Reads the log at `path` (and its rotated files) as `opts` says: what
/// the container wrote to stdout goes to `out`, to stderr to `err`. With
/// `follow`, goes on until `stopped()` (asked when there is nothing new,
/// at least every second) is true, then reads what is left and returns.
/// A missing log is an empty one.
pub fn read(
    path: &Path,
    opts: &ReadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stopped: &dyn Fn() -> bool,
) -> io::Result<()> {
    // Watched before anything is read: no write in between goes unseen.
    let watch = opts
        .follow
        .then(|| follow::Watch::new(path.parent().unwrap_or(Path::new("."))));
    let (older, current) = reader::open_all(path)?;
    let mut files: Vec<&reader::LogFile> = older.iter().collect();
    files.extend(current.as_ref());
    let (first, mut pos) = match opts.tail {
        Some(n) => reader::tail_start(&files, n)?,
        None => (0, 0),
    };
    let mut sink = decode::Sink::new(opts, out, err);
    let mut pump = reader::Pump::new();
    for (i, f) in files.iter().enumerate().skip(first) {
        let p = if i == first { pos } else { 0 };
        let mut at = p;
        let newest = current.is_some() && i == files.len() - 1;
        // Without -f, each file up to its size when opened: a container
        // writing fast cannot keep `logs` reading forever.
        let end = (!(opts.follow && newest)).then_some(f.len);
        pump.run(&f.file, &mut at, end, &mut sink)?;
        if newest {
            pos = at;
        } else {
            pump.end_of_file(&mut sink)?;
        }
    }
    if current.is_none() {
        pos = 0;
    }
    match watch {
        Some(w) => {
            let cur = follow::Current { file: current, pos };
            follow::follow(path, cur, &w, &mut pump, &mut sink, opts, stopped)
        }
        None => sink.flush(),
    }
}

/// `logs` of container `c`: its log read as `opts` says; with `follow`,
/// until its record says it has stopped (exited and not about to be
/// restarted, or removed).
pub fn show(
    engine: &Engine,
    c: &ContainerRecord,
    opts: &ReadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    if c.log.driver == LogDriver::None {
        bail!("configured logging driver does not support reading");
    }
    let records = engine.records()?;
    let path = log_path(&records.dir(&c.id), &c.id);
    let stopped = || match records.load(&c.id) {
        Ok(r) => !r.is_running() && !r.restarting,
        Err(_) => true,
    };
    read(&path, opts, out, err, &stopped)?;
    Ok(())
}
