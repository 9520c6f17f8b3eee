//! Compressed blobs inflated and hashed on threads of their own, from the
//! store (still in the page cache) once each is written, while the archive
//! streams on: `load` learns each layer's diff_id alongside reading the
//! archive instead of after it, and on as many cores as there are (several
//! layers at once), not one layer after another on one.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};

use crate::digest::{Digest, Hasher};
use crate::manifest::Compression;

/// The compression a blob's first bytes tell, if any.
pub(super) fn sniff(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// What a compressed blob inflated to (digest and size), or why it did not.
pub(super) struct Inflated {
    pub compression: Compression,
    pub result: Result<(Digest, u64), String>,
}

/// How far a blob may inflate: 100 times its size, and always 1 GiB (pull's
/// defaults; see `PullOptions::max_inflate_ratio`).
fn inflate_cap(size: u64) -> u64 {
    size.saturating_mul(100).max(1 << 30)
}

struct Job {
    blob: Digest,
    compression: Compression,
    thread: JoinHandle<Result<(Digest, u64)>>,
}

/// Blobs being inflated, at most `max` at once; every thread is joined
/// before this is dropped.
pub(super) struct Inflating {
    jobs: VecDeque<Job>,
    done: HashMap<Digest, Inflated>,
    max: usize,
}

impl Inflating {
    pub(super) fn new() -> Inflating {
        let max = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        Inflating {
            jobs: VecDeque::new(),
            done: HashMap::new(),
            max,
        }
    }

    /// Inflate blob `blob` (at `path`, compressed with `c`) on a thread.
    pub(super) fn start(&mut self, blob: Digest, size: u64, path: PathBuf, c: Compression) {
        while self.jobs.len() >= self.max {
            self.join_oldest();
        }
        let thread = std::thread::spawn(move || {
            let f = BufReader::with_capacity(256 * 1024, File::open(&path)?);
            let dec: Box<dyn Read> = match c {
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
                Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(f)?),
                Compression::None => Box::new(f),
            };
            let cap = inflate_cap(size);
            let mut h = Hasher::new();
            io::copy(&mut dec.take(cap + 1), &mut h).context("decompress")?;
            let n = h.len();
            if n > cap {
                bail!(
                    "inflates past {cap} bytes, more than 100 times its {size}: refused as a decompression bomb"
                );
            }
            Ok((h.finish(), n))
        });
        self.jobs.push_back(Job {
            blob,
            compression: c,
            thread,
        });
    }

    /// A blob that does not inflate is no layer, or a broken or hostile
    /// one: which, only a manifest naming it a layer tells.
    fn join_oldest(&mut self) {
        let Some(j) = self.jobs.pop_front() else {
            return;
        };
        let result = match j.thread.join() {
            Ok(r) => r.map_err(|e| format!("{e:#}")),
            Err(_) => Err("inflating thread panicked".into()),
        };
        self.done.insert(
            j.blob,
            Inflated {
                compression: j.compression,
                result,
            },
        );
    }

    /// Every blob's result, once all are done.
    pub(super) fn finish(mut self) -> HashMap<Digest, Inflated> {
        while !self.jobs.is_empty() {
            self.join_oldest();
        }
        std::mem::take(&mut self.done)
    }
}

impl Drop for Inflating {
    fn drop(&mut self) {
        for j in self.jobs.drain(..) {
            let _ = j.thread.join();
        }
    }
}
