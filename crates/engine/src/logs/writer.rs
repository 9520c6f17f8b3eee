//! [`LogWriter`]: what the monitor hands a container's output to.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use memchr::memchr;

use super::{MAX_LINE, Stream, json, rotated, time};
use crate::records::{LogConfig, LogDriver};

/// Buffered entries are written out past this (one write of about this
/// size: few system calls, and a follower is never far behind).
const FLUSH_AT: usize = 512 * 1024;

/// Writes a container's stdout and stderr to its json-file log (module
/// doc): fed whatever chunks the pipes give, it cuts them into lines,
/// buffers the entries and rotates the file. With the `none` driver it
/// takes everything and keeps nothing.
///
/// The caller calls [`flush`](LogWriter::flush) whenever its pipes have
/// nothing more to read for now (before it sleeps), so that `logs -f`
/// sees output as it comes, and [`finish`](LogWriter::finish) when the
/// container has exited, before it records the exit.
pub struct LogWriter {
    /// None: the `none` driver.
    file: Option<File>,
    path: PathBuf,
    max_size: Option<u64>,
    max_file: u32,
    /// Entries not yet written.
    buf: Vec<u8>,
    /// Bytes in the file, `buf` not counted.
    size: u64,
    /// Each stream's line so far (no newline yet), under MAX_LINE bytes.
    partial: [Vec<u8>; 2],
    /// This write's `","stream":"…","time":"TIME` (all but the closing
    /// quote of what follows an entry's `log`).
    tail: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (appending: a restarted container's log goes on) the log at
    /// `path` ([`super::log_path`]), for `config`'s driver.
    pub fn open(path: &Path, config: &LogConfig) -> io::Result<LogWriter> {
        let file = match config.driver {
            LogDriver::None => None,
            LogDriver::JsonFile => Some(open_log(path)?),
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
            max_size: config.max_size,
            max_file: config.max_file.max(1),
            buf: Vec::new(),
            size,
            partial: [Vec::new(), Vec::new()],
            tail: [Vec::new(), Vec::new()],
        })
    }

    /// Takes `bytes` the container wrote to `stream`: each line completed
    /// becomes an entry, a line longer than 16 KiB entries of 16 KiB
    /// without a newline (Docker's partial messages), the rest waits for
    /// more. Entries made by one call share one time: they came out of the
    /// pipe together, and nothing tells when each went in.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() || bytes.is_empty() {
            return Ok(());
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(FLUSH_AT + 64 * 1024);
        }
        self.stamp(time::now_nanos());
        let s = stream as usize;
        let mut rest = bytes;
        // First the line a previous call began.
        while !self.partial[s].is_empty() && !rest.is_empty() {
            let room = MAX_LINE - self.partial[s].len();
            let window = &rest[..rest.len().min(room + 1)];
            if let Some(i) = memchr(b'\n', window) {
                let mut line = std::mem::take(&mut self.partial[s]);
                line.extend_from_slice(&rest[..=i]);
                rest = &rest[i + 1..];
                self.entry(stream, &line)?;
                line.clear();
                self.partial[s] = line;
            } else if rest.len() > room {
                // One byte past the limit, to see where characters end.
                let mut line = std::mem::take(&mut self.partial[s]);
                line.extend_from_slice(&rest[..=room]);
                rest = &rest[room + 1..];
                let cut = char_cut(&line, MAX_LINE);
                self.entry(stream, &line[..cut])?;
                line.drain(..cut);
                self.partial[s] = line;
            } else {
                self.partial[s].extend_from_slice(rest);
                return Ok(());
            }
        }
        // Then whole lines straight from `bytes`.
        while !rest.is_empty() {
            let window = &rest[..rest.len().min(MAX_LINE + 1)];
            if let Some(i) = memchr(b'\n', window) {
                self.entry(stream, &rest[..=i])?;
                rest = &rest[i + 1..];
            } else if rest.len() > MAX_LINE {
                let cut = char_cut(rest, MAX_LINE);
                self.entry(stream, &rest[..cut])?;
                rest = &rest[cut..];
            } else {
                self.partial[s].extend_from_slice(rest);
                break;
            }
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out the entries buffered so far. On an error (a full disk)
    /// they are dropped, not kept to grow without end: the container
    /// must not stall on its log.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = f.write_all(&self.buf);
        self.size += self.buf.len() as u64;
        self.buf.clear();
        r
    }

    /// Gives the buffer's memory back while nothing is buffered (the
    /// monitor idles); the next write takes it again.
    pub fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// The container has exited: the lines it left unfinished become
    /// entries without a newline, and everything is written to the file.
    ///
    /// Not fsynced: "in the log before the exit is recorded" is about
    /// what `logs` reads, which the page cache serves; a sync of a busy
    /// log costs seconds of disk writes at every exit, and a power cut
    /// that could lose the tail also ends the container. Docker does not
    /// sync its logs either.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            self.stamp(time::now_nanos());
            for stream in [Stream::Stdout, Stream::Stderr] {
                let line = std::mem::take(&mut self.partial[stream as usize]);
                if !line.is_empty() {
                    self.entry(stream, &line)?;
                }
            }
        }
        self.flush()
    }

    /// Sets the time of the entries made next.
    fn stamp(&mut self, now: i64) {
        let t = time::format_nanos(now);
        for (s, name) in [(0, "stdout"), (1, "stderr")] {
            let tail = &mut self.tail[s];
            tail.clear();
            tail.extend_from_slice(b"\",\"stream\":\"");
            tail.extend_from_slice(name.as_bytes());
            tail.extend_from_slice(b"\",\"time\":\"");
            tail.extend_from_slice(t.as_bytes());
        }
    }

    /// One entry for `line` (its newline included, if it has one).
    fn entry(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(b"{\"log\":\"");
        let exact = json::escape_into(&mut self.buf, line);
        self.buf.extend_from_slice(&self.tail[stream as usize]);
        if !exact {
            self.buf.extend_from_slice(b"\",\"raw\":\"");
            let at = self.buf.len();
            let b64 = base64::engine::general_purpose::STANDARD;
            self.buf
                .resize(at + base64::encoded_len(line.len(), true).unwrap_or(0), 0);
            let n = b64
                .encode_slice(line, &mut self.buf[at..])
                .map_err(io::Error::other)?;
            self.buf.truncate(at + n);
        }
        self.buf.extend_from_slice(b"\"}\n");
        if let Some(max) = self.max_size {
            let before = self.size + start as u64;
            if before > 0 && before + (self.buf.len() - start) as u64 > max {
                self.rotate(start)?;
            }
        }
        Ok(())
    }

    /// Starts a new file before the entry at `buf[start..]`: what precedes
    /// it goes to the current file, which becomes `.1` (`.1` becomes `.2`…,
    /// the oldest beyond max-file removed); with max-file 1 it is removed.
    fn rotate(&mut self, start: usize) -> io::Result<()> {
        let entry = self.buf.split_off(start);
        self.flush()?;
        self.buf = entry;
        let keep = self.max_file - 1;
        if keep == 0 {
            remove_if_there(&self.path)?;
        } else {
            remove_if_there(&rotated(&self.path, keep))?;
            for n in (1..keep).rev() {
                rename_if_there(&rotated(&self.path, n), &rotated(&self.path, n + 1))?;
            }
            rename_if_there(&self.path, &rotated(&self.path, 1))?;
        }
        self.file = Some(open_log(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

impl Drop for LogWriter {
    /// A monitor that dies early still leaves what it had (best effort:
    /// [`LogWriter::finish`] is the way that reports errors).
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

fn remove_if_there(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Where to cut `s` (longer than `at`) at about `at` bytes without
/// splitting a UTF-8 character: back over at most three continuation
/// bytes, else at `at` (binary data has no characters to keep whole).
fn char_cut(s: &[u8], at: usize) -> usize {
    let cont = |i: usize| s.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    match (0..=3).find(|&k| !cont(at - k)) {
        Some(k) if k < at => at - k,
        _ => at,
    }
}
