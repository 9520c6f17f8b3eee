//! Compressing layers berth makes (commit, import, build) and reading
//! compressed streams it is given.
//!
//! gzip is written by [`GzipWriter`]: deflate at level 1, except that a
//! chunk whose bytes look random (already compressed media, archives,
//! encrypted data) is stored rather than compressed. Deflating such data
//! gains nothing and costs most of a commit's time (200 MB of random
//! bytes: 3.6 s at level 1 here, 0.3 s stored); zstd does the same
//! internally. The output is one ordinary gzip member: every reader reads it.

use std::io::{self, Read, Write};

use anyhow::Result;
use flate2::{Compress, Crc, FlushCompress};

use crate::manifest::Compression;

/// Input is judged, and compressed, this much at a time.
const CHUNK: usize = 128 * 1024;

/// A writer that compresses a layer as `Compression` says; [`finish`]
/// ends the stream and gives the inner writer back.
///
/// [`finish`]: Compressor::finish
pub enum Compressor<W: Write> {
    Gzip(Box<GzipWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Compressor<W> {
    pub fn new(inner: W, c: Compression) -> Result<Self> {
        Ok(match c {
            Compression::Gzip => Compressor::Gzip(Box::new(GzipWriter::new(inner))),
            Compression::Zstd => Compressor::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
            Compression::None => Compressor::None(inner),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
            Compressor::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::None(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::None(w) => w.flush(),
        }
    }
}

/// One gzip member (no name, mtime 0: the same input gives the same
/// bytes), deflated at level 1 chunk by chunk or stored; see the module doc.
pub struct GzipWriter<W: Write> {
    inner: W,
    deflate: Compress,
    crc: Crc,
    /// Whether the last chunk was stored (deflate flushed full since).
    stored: bool,
    pending: Vec<u8>,
    out: Vec<u8>,
    started: bool,
}

impl<W: Write> GzipWriter<W> {
    pub fn new(inner: W) -> Self {
        GzipWriter {
            inner,
            deflate: Compress::new(flate2::Compression::fast(), false),
            crc: Crc::new(),
            stored: false,
            pending: Vec::with_capacity(CHUNK),
            out: Vec::with_capacity(CHUNK + CHUNK / 8),
            started: false,
        }
    }

    /// Compress `pending` (all of it), or store it when it looks random.
    ///
    /// Stored blocks are written here, not by deflate (zlib-rs cannot
    /// change the level mid-stream): a full flush first leaves deflate's
    /// output byte-aligned and its history empty, so nothing it makes later
    /// refers back across the stored bytes it never saw.
    fn chunk(&mut self, flush: FlushCompress) -> io::Result<()> {
        if !self.started {
            // ID, deflate, no flags, mtime 0, no extra flags, OS unknown.
            self.inner
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
            self.started = true;
        }
        self.crc.update(&self.pending);
        let input = std::mem::take(&mut self.pending);
        if looks_random(&input) {
            if !self.stored {
                self.run(&[], FlushCompress::Full)?;
                self.stored = true;
            }
            for block in input.chunks(u16::MAX as usize) {
                let len = block.len() as u16;
                // BFINAL 0, BTYPE 00, then LEN and NLEN.
                self.inner.write_all(&[0])?;
                self.inner.write_all(&len.to_le_bytes())?;
                self.inner.write_all(&(!len).to_le_bytes())?;
                self.inner.write_all(block)?;
            }
            if matches!(flush, FlushCompress::Finish) {
                self.run(&[], flush)?;
            }
        } else {
            self.stored = false;
            self.run(&input, flush)?;
        }
        self.pending = input;
        self.pending.clear();
        Ok(())
    }

    /// Feed `input` through deflate, writing out what it makes, until it
    /// is all taken and (for a flush) all given out.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            self.out.clear();
            let before_in = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut self.out, flush)
                .map_err(io::Error::other)?;
            let took = (self.deflate.total_in() - before_in) as usize;
            input = &input[took..];
            self.inner.write_all(&self.out)?;
            let done = match flush {
                FlushCompress::Finish => status == flate2::Status::StreamEnd,
                // Not a full output buffer: deflate had no more to give.
                _ => input.is_empty() && self.out.len() < self.out.capacity(),
            };
            if done {
                return Ok(());
            }
        }
    }

    /// End the member (trailer: CRC-32 and length) and give the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.chunk(FlushCompress::Finish)?;
        let (crc, len) = (self.crc.sum(), self.crc.amount());
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&len.to_le_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == CHUNK {
            self.chunk(FlushCompress::None)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether a chunk looks incompressible: the bytes of a sample of it are
/// nearly uniform (order-0 entropy above 7.9 bits a byte). Compressed and
/// encrypted data are; text, code and binaries are far below.
fn looks_random(chunk: &[u8]) -> bool {
    const SAMPLE: usize = 8 * 1024;
    if chunk.len() < SAMPLE {
        return false;
    }
    let mut counts = [0u32; 256];
    for b in &chunk[..SAMPLE] {
        counts[*b as usize] += 1;
    }
    let n = SAMPLE as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum();
    entropy > 7.9
}

/// A writer whose writes are done by a thread of its own: what goes in is
/// handed over in 1 MiB chunks (at most 4 in flight), so making a stream
/// (walking and hashing a tree) and compressing it take two cores.
/// [`finish`](Background::finish) waits for the thread and gives back
/// what its finishing step returns; dropped unfinished, the thread is
/// stopped and joined all the same.
pub struct Background<T: Send + 'static> {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    thread: Option<std::thread::JoinHandle<io::Result<T>>>,
}

const HANDOFF: usize = 1024 * 1024;

impl<T: Send + 'static> Background<T> {
    pub fn new<W, F>(mut w: W, finish: F) -> Self
    where
        W: Write + Send + 'static,
        F: FnOnce(W) -> io::Result<T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let thread = std::thread::spawn(move || {
            for chunk in rx {
                w.write_all(&chunk)?;
            }
            finish(w)
        });
        Background {
            tx: Some(tx),
            buf: Vec::with_capacity(HANDOFF),
            thread: Some(thread),
        }
    }

    fn hand_off(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(HANDOFF));
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped: its error says why.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("the writer thread ended early")),
        }
    }

    fn join(&mut self) -> io::Result<T> {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the writer thread panicked")),
            None => Err(io::Error::other("the writer thread was already joined")),
        }
    }

    pub fn finish(mut self) -> io::Result<T> {
        if !self.buf.is_empty() {
            self.hand_off()?;
        }
        self.join()
    }
}

impl<T: Send + 'static> Write for Background<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(HANDOFF - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == HANDOFF {
            self.hand_off()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: Send + 'static> Drop for Background<T> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A gzip stream's content (members one after another, as `gzip` makes).
pub fn gzip_reader<R: io::BufRead>(r: R) -> impl Read {
    flate2::bufread::MultiGzDecoder::new(r)
}

/// A zstd stream's content.
pub fn zstd_reader<'a, R: io::BufRead + 'a>(r: R) -> Result<impl Read + 'a> {
    Ok(zstd::stream::read::Decoder::with_buffer(r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Random chunks are stored, text deflated, and a mix of both comes
    /// back whole through an ordinary gzip reader.
    #[test]
    fn mixed_input_round_trips_and_only_text_shrinks() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let random: Vec<u8> = (0..3 * CHUNK + 77)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let text: Vec<u8> = b"the same line of text, again and again\n"
            .iter()
            .cycle()
            .take(2 * CHUNK + 5)
            .copied()
            .collect();
        let input = [text.as_slice(), &random, &text, b"tail"].concat();
        let mut w = GzipWriter::new(Vec::new());
        // Odd-sized writes, as a tar builder makes them.
        for piece in input.chunks(1000) {
            w.write_all(piece).unwrap();
        }
        let gz = w.finish().unwrap();
        assert_eq!(gunzip(&gz), input);
        let stored_random = random.len() as f64;
        assert!(
            (gz.len() as f64) < stored_random * 1.01 + 4096.0,
            "random bytes stored, text deflated: {} for {} random",
            gz.len(),
            random.len()
        );
        assert!(gz.len() > random.len(), "random bytes do not shrink");
        // Deterministic.
        let mut again = GzipWriter::new(Vec::new());
        again.write_all(&input).unwrap();
        assert_eq!(again.finish().unwrap(), gz);
        // Empty input is a valid, empty member.
        assert_eq!(gunzip(&GzipWriter::new(Vec::new()).finish().unwrap()), b"");
    }
}
