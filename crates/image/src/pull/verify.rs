//! Verifying a layer blob in one streaming pass: its size and digest, and
//! its decompressed tar's diff_id, with decompression bombs and a failed
//! sink stopping the pass early.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use anyhow::{Context, Result, bail};

use super::PullOptions;
use crate::digest::{Digest, Hasher};
use crate::manifest::{Compression, Descriptor};
use crate::progress::Progress;
use crate::registry::Transient;

/// A layer stopped because another one failed: never the cause of a failed pull.
#[derive(Debug, thiserror::Error)]
#[error("cancelled: another layer failed")]
struct Cancelled;

pub(super) fn is_cancelled(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Cancelled>())
}

/// Inflating stopped because the layer's sink had failed (its error says why).
#[derive(Debug, thiserror::Error)]
#[error("the layer's sink failed")]
pub(super) struct SinkFailed;

/// How far one layer may inflate; see [`PullOptions::max_inflate_ratio`].
#[derive(Clone, Copy, Debug)]
pub(super) struct InflateLimit {
    cap: u64,
    ratio: u64,
    size: u64,
}

impl InflateLimit {
    pub(super) fn of(opts: &PullOptions, size: u64) -> Self {
        let cap = match opts.max_inflate_ratio {
            0 => u64::MAX,
            r => r.saturating_mul(size).max(opts.inflate_floor),
        };
        InflateLimit {
            cap,
            ratio: opts.max_inflate_ratio,
            size,
        }
    }

    fn exceeded(&self) -> io::Error {
        io::Error::other(Bomb(format!(
            "inflates past {} bytes, more than {} times its {} bytes: refused as a decompression bomb",
            self.cap, self.ratio, self.size
        )))
    }
}

/// A layer inflating past its [`InflateLimit`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Bomb(String);

/// A layer's diff_id must be the one its image config names.
pub(super) fn check_diff(got: &Digest, want: &Digest) -> Result<()> {
    if got != want {
        bail!("diff_id mismatch: layer unpacks to {got}, the image config says {want}");
    }
    Ok(())
}

/// A piece of decompressed tar for a [`LayerSink`](super::LayerSink), or why the stream broke.
pub(super) type Chunk = std::result::Result<Vec<u8>, String>;

/// Where decompressed bytes go: the diff_id hasher, and the sink if there is
/// one. Stops the decompressor (by failing) past the limit or once the sink
/// failed: inflating on would be wasted, and a bomb's hours of CPU.
struct Out {
    hasher: Hasher,
    tx: Option<SyncSender<Chunk>>,
    sink_failed: Option<Arc<AtomicBool>>,
    limit: InflateLimit,
}

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.hasher.len().saturating_add(b.len() as u64) > self.limit.cap {
            return Err(self.limit.exceeded());
        }
        if self
            .sink_failed
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            return Err(io::Error::other(SinkFailed));
        }
        self.hasher.update(b);
        // A sink that stopped reading (e.g. after the tar end marker) just stops getting data.
        if let Some(tx) = &self.tx
            && tx.send(Ok(b.to_vec())).is_err()
        {
            self.tx = None;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Unpack {
    Gzip(Box<flate2::write::MultiGzDecoder<Out>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Out>>),
    Plain(Out),
}

impl Unpack {
    fn new(c: Compression, limit: InflateLimit, to_sink: Option<ToSink>) -> io::Result<Self> {
        let (tx, sink_failed) = to_sink.unzip();
        let out = Out {
            hasher: Hasher::new(),
            tx,
            sink_failed,
            limit,
        };
        Ok(match c {
            Compression::Gzip => Unpack::Gzip(Box::new(flate2::write::MultiGzDecoder::new(out))),
            Compression::Zstd => Unpack::Zstd(Box::new(zstd::stream::write::Decoder::new(out)?)),
            Compression::None => Unpack::Plain(out),
        })
    }

    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Unpack::Gzip(d) => d.write_all(b),
            Unpack::Zstd(d) => d.write_all(b),
            Unpack::Plain(o) => o.write_all(b),
        }
    }

    fn finish(self) -> io::Result<Hasher> {
        match self {
            Unpack::Gzip(d) => d.finish().map(|o| o.hasher),
            Unpack::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner().hasher)
            }
            Unpack::Plain(o) => Ok(o.hasher),
        }
    }
}

/// The channel to a layer's sink, and the flag its thread sets when it failed.
pub(super) type ToSink = (SyncSender<Chunk>, Arc<AtomicBool>);

/// Stream a layer blob once: write it to `sink`, hash it, decompress and hash the
/// tar. Returns (diff_id, unpacked size) once digest and size match `desc`.
#[allow(clippy::too_many_arguments)]
pub(super) fn verify_stream(
    mut src: impl Read,
    mut sink: Option<&mut std::fs::File>,
    desc: &Descriptor,
    comp: Compression,
    progress: Option<&Progress>,
    cancel: &AtomicBool,
    limit: InflateLimit,
    to_sink: Option<ToSink>,
) -> Result<(Digest, u64)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut blob = Hasher::new();
    let mut unpack = Some(Unpack::new(comp, limit, to_sink)?);
    let mut unpack_err: Option<io::Error> = None;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(Cancelled.into());
        }
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Transient(format!("reading blob: {e}")).into()),
        };
        if blob.len() + n as u64 > desc.size {
            bail!(
                "blob is larger than the {} bytes its descriptor says",
                desc.size
            );
        }
        blob.update(&buf[..n]);
        if let Some(f) = sink.as_mut() {
            f.write_all(&buf[..n]).context("write temp file")?;
        }
        if let Some(u) = unpack.as_mut() {
            // Keep hashing after a decompression error: a digest mismatch is the better diagnosis.
            if let Err(e) = u.write_all(&buf[..n]) {
                // A bomb or a failed sink ends the layer now, not at the end of the blob.
                match e.get_ref() {
                    Some(i) if i.is::<SinkFailed>() => return Err(SinkFailed.into()),
                    Some(i) if i.is::<Bomb>() => bail!("{i}"),
                    _ => {}
                }
                unpack_err = Some(e);
                unpack = None;
            }
        }
        if let Some(p) = progress {
            p.layer_bytes(&desc.digest, n as u64);
        }
    }
    if blob.len() < desc.size {
        return Err(Transient(format!(
            "short read: got {} of {} bytes",
            blob.len(),
            desc.size
        ))
        .into());
    }
    let got = blob.finish();
    if got != desc.digest {
        bail!(
            "digest mismatch: blob hashes to {got}, expected {}",
            desc.digest
        );
    }
    let what = match comp {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::None => "tar",
    };
    if let Some(e) = unpack_err {
        bail!("layer is not valid {what}: {e}");
    }
    let h = unpack
        .expect("set unless errored")
        .finish()
        .with_context(|| format!("layer is not valid {what}"))?;
    let n = h.len();
    Ok((h.finish(), n))
}
