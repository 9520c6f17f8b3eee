//! Reading a log back: the files of a log (rotated ones first), `--tail`
//! found from the end, lines cut and handed to the [`Sink`].

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use memchr::{memchr_iter, memrchr_iter};

use super::decode::Sink;
use super::rotated;

/// Bytes read at a time.
const CHUNK: usize = 256 * 1024;
/// A line (an entry) longer than this is not one berth or Docker wrote:
/// skipped, so a corrupt file cannot make `logs` hold it all in memory.
const MAX_ENTRY: usize = 8 * 1024 * 1024;

/// One file of a log, open: renames (rotation) do not move it.
pub struct LogFile {
    pub file: File,
    pub ino: u64,
    /// Its size when opened: where a read that does not follow stops.
    pub len: u64,
}

impl LogFile {
    pub fn open(p: &Path) -> io::Result<Option<LogFile>> {
        match File::open(p) {
            Ok(file) => {
                let m = file.metadata()?;
                Ok(Some(LogFile {
                    file,
                    ino: m.ino(),
                    len: m.len(),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The log's files, oldest first (`X.N` … `X.1`, `X`; the last is None if
/// `X` is missing). Opened newest first and checked against the names
/// afterwards: a rotation in between makes it start over (a few times).
pub fn open_all(path: &Path) -> io::Result<(Vec<LogFile>, Option<LogFile>)> {
    for _ in 0..10 {
        let current = LogFile::open(path)?;
        let mut older = Vec::new();
        while let Some(f) = LogFile::open(&rotated(path, older.len() as u32 + 1))? {
            older.push(f);
        }
        let same = |p: &Path, f: &LogFile| std::fs::metadata(p).is_ok_and(|m| m.ino() == f.ino);
        let stable = current.as_ref().is_none_or(|f| same(path, f))
            && older
                .iter()
                .enumerate()
                .all(|(i, f)| same(&rotated(path, i as u32 + 1), f));
        if stable || older.is_empty() {
            older.reverse();
            return Ok((older, current));
        }
    }
    Err(io::Error::other(
        "the log kept rotating while it was opened",
    ))
}

/// Where the last `n` entries begin: the index in `files` (oldest first)
/// and the offset in it. Reads backwards from each file's end, newest
/// first, so only the tail is read whatever the history's size.
pub fn tail_start(files: &[&LogFile], n: usize) -> io::Result<(usize, u64)> {
    let mut need = n;
    let mut block = vec![0u8; 64 * 1024];
    for (i, f) in files.iter().enumerate().rev() {
        let mut end = f.len;
        // Newlines still to pass: each ends an entry; the one before the
        // entries wanted ends the entry before them.
        let mut left = need + 1;
        while end > 0 {
            let start = end.saturating_sub(block.len() as u64);
            let b = &mut block[..(end - start) as usize];
            f.file.read_exact_at(b, start)?;
            let count = memrchr_iter(b'\n', b).count();
            if count >= left {
                let at = memrchr_iter(b'\n', b).nth(left - 1).unwrap_or(0);
                return Ok((i, start + at as u64 + 1));
            }
            left -= count;
            end = start;
        }
        // The whole file is wanted; `left - 1` entries more from older ones.
        need = left - 1;
        if need == 0 {
            return Ok((i, 0));
        }
    }
    Ok((0, 0))
}

/// Reads one file forward from `pos`, handing each complete line to the
/// sink; what follows the last newline waits in `carry` for more.
pub struct Pump {
    buf: Vec<u8>,
    have: usize,
    /// Inside a line too long to be an entry, skipping to its end.
    skipping: bool,
}

impl Pump {
    pub fn new() -> Pump {
        Pump {
            buf: vec![0; CHUNK],
            have: 0,
            skipping: false,
        }
    }

    /// Reads `f` from `*pos` up to `end` (None: to its end of file).
    /// Returns whether anything was read.
    pub fn run(
        &mut self,
        f: &File,
        pos: &mut u64,
        end: Option<u64>,
        sink: &mut Sink,
    ) -> io::Result<bool> {
        let mut any = false;
        loop {
            if self.have == self.buf.len() {
                self.grow();
            }
            let mut room = &mut self.buf[self.have..];
            if let Some(e) = end {
                let left = e.saturating_sub(*pos).min(room.len() as u64);
                room = &mut room[..left as usize];
            }
            if room.is_empty() {
                return Ok(any);
            }
            let n = match f.read_at(room, *pos) {
                Ok(0) => return Ok(any),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            any = true;
            *pos += n as u64;
            let old = self.have;
            self.have += n;
            let mut start = 0;
            for nl in memchr_iter(b'\n', &self.buf[old..self.have]) {
                let at = old + nl;
                if self.skipping {
                    self.skipping = false;
                } else {
                    sink.line(&self.buf[start..at])?;
                }
                start = at + 1;
            }
            self.buf.copy_within(start..self.have, 0);
            self.have -= start;
        }
    }

    /// A line longer than the buffer: a bigger one, up to MAX_ENTRY; past
    /// that the line is dropped.
    fn grow(&mut self) {
        if self.buf.len() < MAX_ENTRY {
            self.buf.resize(self.buf.len() * 2, 0);
        } else {
            tracing::warn!("log: skipping an entry longer than {MAX_ENTRY} bytes");
            self.have = 0;
            self.skipping = true;
        }
    }

    /// At the end of a file no one writes any more: a last line without
    /// its newline (not one berth wrote) is taken as it is.
    pub fn end_of_file(&mut self, sink: &mut Sink) -> io::Result<()> {
        if self.have > 0 && !self.skipping {
            sink.line(&self.buf[..self.have])?;
        }
        self.discard();
        Ok(())
    }

    /// Forgets a partial line (the file it came from is being written).
    pub fn discard(&mut self) {
        self.have = 0;
        self.skipping = false;
    }
}
