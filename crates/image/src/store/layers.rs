//! Layers in the store: what an image's layers are, the facts learnt about
//! each while it was verified (diff_id, unpacked size), and a layer's
//! decompressed tar stream.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{ImageRecord, Store};
use crate::digest::Digest;
use crate::manifest::{Compression, layer_compression};

/// One layer of an image, as the rootfs side needs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Layer media type (tells the compression).
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (verified at pull time).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub unpacked_size: u64,
    /// Where the blob is (filled in when read from the store).
    #[serde(skip)]
    pub path: PathBuf,
}

impl LayerInfo {
    /// How the blob is compressed.
    pub fn compression(&self) -> Result<Compression> {
        layer_compression(&self.media_type)
    }
}

/// Per-layer facts cached next to the blob.
#[derive(Serialize, Deserialize)]
pub(crate) struct LayerFacts {
    pub diff_id: Digest,
    pub unpacked_size: u64,
}

impl Store {
    /// The facts cached for layer blob `d`; unreadable ones count as none.
    pub(crate) fn layer_facts(&self, d: &Digest) -> Option<LayerFacts> {
        let p = self.root.join("layers").join(format!("{}.json", d.hex()));
        let b = berth_io::read_capped(&p, berth_io::MIB, "layer facts").ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Cache the facts of layer blob `d`, replacing them atomically.
    pub(crate) fn put_layer_facts(&self, d: &Digest, facts: &LayerFacts) -> Result<()> {
        let mut t = self.temp(&format!("{}.facts", d.hex()))?;
        t.file().write_all(&serde_json::to_vec(facts)?)?;
        t.commit(&self.root.join("layers").join(format!("{}.json", d.hex())))
    }

    /// `r` with the path of each layer's blob filled in.
    pub(super) fn fill_paths(&self, mut r: ImageRecord) -> ImageRecord {
        for l in &mut r.layers {
            l.path = self.blob_path(&l.digest);
        }
        r
    }

    /// The layers of an image, bottom first, with blob paths.
    pub fn layers(&self, img: &ImageRecord) -> Vec<LayerInfo> {
        self.fill_paths(img.clone()).layers
    }

    /// The decompressed tar stream of a layer.
    ///
    /// A compressed layer is inflated on a thread of its own, so that inflating
    /// overlaps with whatever the reader does with the tar (unpacking it): two
    /// cores instead of one. The thread ends with the stream or when the
    /// reader is dropped, and the drop joins it, so none outlives the reader
    /// (the runtime must fork from a single-threaded process).
    pub fn open_layer(&self, layer: &LayerInfo) -> Result<Box<dyn Read + Send>> {
        let p = self.blob_path(&layer.digest);
        let f = File::open(&p).with_context(|| format!("open layer {}", layer.digest))?;
        let r = BufReader::with_capacity(256 * 1024, f);
        Ok(match layer.compression()? {
            Compression::Gzip => Box::new(Pipelined::new(Box::new(
                flate2::read::MultiGzDecoder::new(r),
            ))),
            Compression::Zstd => Box::new(Pipelined::new(Box::new(
                zstd::stream::read::Decoder::with_buffer(r).context("zstd")?,
            ))),
            Compression::None => Box::new(r),
        })
    }
}

/// A reader fed by a thread that reads `src` ahead, through a bounded channel.
struct Pipelined {
    rx: Option<std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    buf: Vec<u8>,
    pos: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pipelined {
    fn new(mut src: Box<dyn Read + Send>) -> Pipelined {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let thread = std::thread::spawn(move || {
            loop {
                let mut chunk = vec![0u8; 256 * 1024];
                let msg = match src.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let stop = msg.is_err();
                if tx.send(msg).is_err() || stop {
                    break;
                }
            }
        });
        Pipelined {
            rx: Some(rx),
            buf: Vec::new(),
            pos: 0,
            thread: Some(thread),
        }
    }
}

impl Read for Pipelined {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.as_ref().and_then(|rx| rx.recv().ok()) {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next send.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
