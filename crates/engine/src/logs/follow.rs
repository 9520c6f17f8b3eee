//! `logs -f`: after the replay, new entries as they are written, across
//! rotations, until the container stops. Sleeps on inotify (the log's
//! directory: the log written, rotated, the record replaced) with a 1 s
//! timeout as the way out.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

use super::decode::Sink;
use super::reader::{LogFile, Pump};
use super::{ReadOptions, rotated, time};

/// Waits for something to happen in the log's directory.
pub struct Watch(Option<OwnedFd>);

impl Watch {
    /// Watches `dir`. Without inotify (its limits reached) follow polls.
    pub fn new(dir: &Path) -> Watch {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok();
        let fd = fd.filter(|fd| {
            let what = WatchFlags::MODIFY
                | WatchFlags::CREATE
                | WatchFlags::MOVED_TO
                | WatchFlags::MOVED_FROM
                | WatchFlags::DELETE
                | WatchFlags::CLOSE_WRITE;
            inotify::add_watch(fd, dir, what).is_ok()
        });
        if fd.is_none() {
            tracing::debug!("logs -f: no inotify watch on {}, polling", dir.display());
        }
        Watch(fd)
    }

    /// Until an event or one second passed (a tenth without inotify).
    fn wait(&self) -> io::Result<()> {
        let Some(fd) = &self.0 else {
            std::thread::sleep(std::time::Duration::from_millis(100));
            return Ok(());
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let second = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&second)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        // What happened does not matter, only that something did.
        let mut events = [0u8; 4096];
        loop {
            match rustix::io::read(fd, &mut events) {
                Ok(0) | Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The file being followed (None: not made yet) and how far it has been read.
pub struct Current {
    pub file: Option<LogFile>,
    pub pos: u64,
}

/// Follows `path` from `cur` (where the replay stopped) until `stopped()`
/// says the container will write no more, or `--until` passes.
pub fn follow(
    path: &Path,
    mut cur: Current,
    watch: &Watch,
    pump: &mut Pump,
    sink: &mut Sink,
    opts: &ReadOptions,
    stopped: &dyn Fn() -> bool,
) -> io::Result<()> {
    loop {
        let read = catch_up(path, &mut cur, pump, sink)?;
        if opts.until.is_some_and(|u| time::now_nanos() > u) {
            break;
        }
        if read {
            continue;
        }
        if stopped() {
            // The writer finished before the exit was recorded: one more
            // read sees all it wrote.
            catch_up(path, &mut cur, pump, sink)?;
            break;
        }
        sink.flush()?;
        watch.wait()?;
    }
    sink.flush()
}

/// Reads what is new: the current file to its end and, if it was rotated
/// away, the files made since, oldest first. Returns whether it read any.
fn catch_up(path: &Path, cur: &mut Current, pump: &mut Pump, sink: &mut Sink) -> io::Result<bool> {
    let mut any = false;
    if let Some(f) = &cur.file {
        any |= pump.run(&f.file, &mut cur.pos, None, sink)?;
    }
    let now = std::fs::metadata(path).ok().map(|m| m.ino());
    if now.is_some() && now == cur.file.as_ref().map(|f| f.ino) {
        return Ok(any);
    }
    // Rotated (or made at last): the old file has all it will get.
    let (between, newest) = match cur.file.take() {
        Some(old) => {
            pump.run(&old.file, &mut cur.pos, None, sink)?;
            pump.end_of_file(sink)?;
            since(path, old.ino)?
        }
        None => (Vec::new(), LogFile::open(path)?),
    };
    for f in between {
        let mut pos = 0;
        any |= pump.run(&f, &mut pos, None, sink)?;
        pump.end_of_file(sink)?;
    }
    cur.file = newest;
    cur.pos = 0;
    if let Some(f) = &cur.file {
        any |= pump.run(&f.file, &mut cur.pos, None, sink)?;
    }
    Ok(any)
}

/// The rotated files newer than the one with inode `ino` (more than one
/// rotation since the last look), oldest first, and the current file, all
/// opened: an open file keeps its inode whatever is renamed after. The
/// names shift while a writer rotates, so the look is taken again until
/// the current file is the same before and after it. If `ino` is gone
/// (rotated out, or max-file 1) nothing tells what is newer: none is read.
fn since(path: &Path, ino: u64) -> io::Result<(Vec<File>, Option<LogFile>)> {
    for _ in 0..100 {
        let newest = LogFile::open(path)?;
        let newest_ino = newest.as_ref().map(|f| f.ino);
        let mut between: Vec<(u64, File)> = Vec::new();
        let mut k = 1;
        let found = loop {
            let Ok(f) = File::open(rotated(path, k)) else {
                break false;
            };
            let i = f.metadata()?.ino();
            if i == ino {
                break true;
            }
            if Some(i) != newest_ino && !between.iter().any(|(b, _)| *b == i) {
                between.push((i, f));
            }
            k += 1;
        };
        let settled = std::fs::metadata(path).ok().map(|m| m.ino()) == newest_ino;
        if settled {
            let between = if found { between } else { Vec::new() };
            return Ok((between.into_iter().rev().map(|(_, f)| f).collect(), newest));
        }
    }
    Ok((Vec::new(), LogFile::open(path)?))
}
