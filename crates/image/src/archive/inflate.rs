//! Layers decompressed and hashed while they stream in, on a thread of
//! their own: `load` learns each compressed blob's diff_id in the pass that
//! writes it, instead of reading it back and inflating it after (a second
//! pass over every layer, and on one core).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

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

/// A decompressing hasher fed chunk by chunk; bounded (8 chunks in flight).
pub(super) struct Inflater {
    tx: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<Result<(Digest, u64)>>>,
}

impl Inflater {
    pub(super) fn new(c: Compression) -> Inflater {
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let thread = std::thread::spawn(move || {
            let src = Chunks {
                rx,
                buf: Vec::new(),
                pos: 0,
            };
            let mut dec: Box<dyn Read> = match c {
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(src)),
                Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(src)?),
                Compression::None => Box::new(src),
            };
            let mut h = Hasher::new();
            io::copy(&mut dec, &mut h).context("decompress")?;
            let n = h.len();
            Ok((h.finish(), n))
        });
        Inflater {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// More of the blob. A decoder that failed already takes nothing more.
    pub(super) fn feed(&mut self, buf: &[u8]) {
        if let Some(tx) = &self.tx
            && tx.send(buf.to_vec()).is_err()
        {
            self.tx = None;
        }
    }

    /// The digest and size of the decompressed stream.
    pub(super) fn finish(mut self) -> Result<(Digest, u64)> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => anyhow::bail!("decompressing thread failed"),
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // Closing the channel ends the thread's input; join it.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The receiving end, as a reader.
struct Chunks {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
