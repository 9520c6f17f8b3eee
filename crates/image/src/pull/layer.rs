//! Fetching one layer of a pull: reused from the store when it is there, else
//! downloaded (with retries) and verified while it streams, its decompressed
//! tar handed to the pull's sink on a thread of its own.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use anyhow::{Context, Result, bail};

use super::verify::{Chunk, InflateLimit, SinkFailed, check_diff, verify_stream};
use super::{LayerSink, PullOptions, SinkLayer, retry};
use crate::digest::Digest;
use crate::manifest::{Compression, Descriptor, layer_compression};
use crate::progress::{Progress, human};
use crate::registry::{Session, Transient};
use crate::store::{LayerFacts, LayerInfo, Store};

/// Fetches the layers of one pull; its worker threads share it.
pub(super) struct LayerFetcher<'a> {
    pub store: &'a Store,
    pub session: &'a Session,
    /// Every layer's diff_id from the image config, bottom first.
    pub diff_ids: &'a [Digest],
    pub opts: &'a PullOptions,
    pub progress: &'a Progress,
    /// Set once a layer failed for real: the others stop.
    pub cancel: AtomicBool,
    /// Set once any layer had to be downloaded.
    pub any_fetched: AtomicBool,
    pub sink: Option<LayerSink<'a>>,
}

/// One layer being fetched: where it sits in the image, what the manifest
/// says of it, and how it inflates.
struct LayerJob<'d> {
    index: usize,
    desc: &'d Descriptor,
    comp: Compression,
    limit: InflateLimit,
}

impl LayerFetcher<'_> {
    /// Bring layer `index` (described by `desc`) into the store, or take the
    /// copy already there, streaming its tar to the sink if there is one.
    pub(super) fn fetch(&self, index: usize, desc: &Descriptor) -> Result<LayerInfo> {
        let job = LayerJob {
            index,
            desc,
            comp: layer_compression(&desc.media_type)?,
            limit: InflateLimit::of(self.opts, desc.size),
        };
        if self.store.has_blob(&desc.digest) {
            return self.reuse(&job);
        }
        self.any_fetched.store(true, Ordering::SeqCst);
        self.progress.layer_start(&desc.digest, desc.size);
        let (got_diff, unpacked) = retry(self.opts.registry.attempts, |n| {
            if n > 0 {
                self.progress
                    .layer_retry(&desc.digest, &format!("attempt {}", n + 1));
            }
            self.download(&job)
        })?;
        self.store.put_layer_facts(
            &desc.digest,
            &LayerFacts {
                diff_id: got_diff,
                unpacked_size: unpacked,
            },
        )?;
        self.progress.layer_done(
            &desc.digest,
            &format!("Pull complete ({})", human(desc.size)),
        );
        Ok(self.info(&job, unpacked))
    }

    /// The layer as the image record keeps it.
    fn info(&self, job: &LayerJob, unpacked_size: u64) -> LayerInfo {
        LayerInfo {
            digest: job.desc.digest.clone(),
            media_type: job.desc.media_type.clone(),
            size: job.desc.size,
            diff_id: self.diff_ids[job.index].clone(),
            unpacked_size,
            path: self.store.blob_path(&job.desc.digest),
        }
    }

    /// A layer already in the store: check its diff_id against the config
    /// (re-deriving its facts from the blob if they were lost) and stream it
    /// to the sink from there.
    fn reuse(&self, job: &LayerJob) -> Result<LayerInfo> {
        let desc = job.desc;
        let facts = match self.store.layer_facts(&desc.digest) {
            Some(f) => f,
            None => {
                // Blob present but its facts were lost: re-derive them from the local copy.
                let f = File::open(self.store.blob_path(&desc.digest))?;
                let (d, n) =
                    verify_stream(f, None, desc, job.comp, None, &self.cancel, job.limit, None)?;
                let facts = LayerFacts {
                    diff_id: d,
                    unpacked_size: n,
                };
                self.store.put_layer_facts(&desc.digest, &facts)?;
                facts
            }
        };
        check_diff(&facts.diff_id, &self.diff_ids[job.index])?;
        let layer = self.info(job, facts.unpacked_size);
        if let Some(sink) = self.sink {
            let at = SinkLayer {
                index: job.index,
                layer: &layer,
                diff_ids: self.diff_ids,
                cancelled: &self.cancel,
            };
            sink(&at, &mut *self.store.open_layer(&layer)?).context("unpacking")?;
        }
        self.progress.layer_done(&desc.digest, "Already exists");
        Ok(layer)
    }

    /// One download attempt: stream the blob into a temp file, verifying it
    /// (and feeding the sink) on the way, and rename it into the store only
    /// once it checked out. Returns (diff_id, unpacked size).
    fn download(&self, job: &LayerJob) -> Result<(Digest, u64)> {
        let desc = job.desc;
        let mut tmp = self.store.temp(desc.digest.hex())?;
        let (body, len) = self.session.blob(&desc.digest)?;
        if let Some(len) = len.filter(|l| *l != desc.size) {
            return Err(Transient(format!(
                "registry announced {len} bytes, the manifest says {}",
                desc.size
            ))
            .into());
        }
        let r = match self.sink {
            None => {
                let r = verify_stream(
                    body,
                    Some(tmp.file()),
                    desc,
                    job.comp,
                    Some(self.progress),
                    &self.cancel,
                    job.limit,
                    None,
                )?;
                check_diff(&r.0, &self.diff_ids[job.index])?;
                r
            }
            Some(sink) => self.verify_into_sink(sink, job, body, tmp.file())?,
        };
        tmp.commit(&self.store.blob_path(&desc.digest))?;
        Ok(r)
    }

    /// Verify a downloading blob into `file` while the sink reads its
    /// decompressed tar on a thread of its own, through a bounded channel.
    /// The stream ends cleanly only once everything was verified; when the
    /// sink failed, its error is the cause.
    fn verify_into_sink(
        &self,
        sink: LayerSink<'_>,
        job: &LayerJob,
        body: Box<dyn Read + Send>,
        file: &mut File,
    ) -> Result<(Digest, u64)> {
        let (tx, rx) = sync_channel::<Chunk>(16);
        let provisional = self.info(job, 0);
        let sink_failed = Arc::new(AtomicBool::new(false));
        let failed = sink_failed.clone();
        let (index, diff_ids, cancel) = (job.index, self.diff_ids, &self.cancel);
        std::thread::scope(|s| {
            let consumer = s.spawn(move || {
                let mut reader = ChanReader {
                    rx,
                    buf: Vec::new(),
                    pos: 0,
                };
                let at = SinkLayer {
                    index,
                    layer: &provisional,
                    diff_ids,
                    cancelled: cancel,
                };
                let r = sink(&at, &mut reader);
                // Before the reader (the channel's end) goes: Out::write
                // must see why its sends fail.
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                drop(reader);
                r
            });
            let res = verify_stream(
                body,
                Some(file),
                job.desc,
                job.comp,
                Some(self.progress),
                cancel,
                job.limit,
                Some((tx.clone(), sink_failed)),
            )
            .and_then(|r| check_diff(&r.0, &diff_ids[index]).map(|_| r));
            // End the stream: cleanly only once everything was verified.
            if let Err(e) = &res {
                let _ = tx.send(Err(format!("{e:#}")));
            }
            drop(tx);
            let Ok(consumed) = consumer.join() else {
                bail!("unpacking: the layer consumer panicked")
            };
            // The sink's failure is the cause when it is why the stream stopped.
            match (res, consumed) {
                (Err(e), Err(why)) if e.is::<SinkFailed>() => Err(why.context("unpacking")),
                (Err(e), _) => Err(e),
                (Ok(_), Err(why)) => Err(why.context("unpacking")),
                (Ok(r), Ok(())) => Ok(r),
            }
        })
    }
}

/// The sink's end of the channel.
struct ChanReader {
    rx: Receiver<Chunk>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    self.buf = v;
                    self.pos = 0;
                }
                Ok(Err(why)) => return Err(io::Error::other(why)),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
