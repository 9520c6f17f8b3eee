//! `import`: an image of one layer from a flat filesystem tar (what
//! `export` writes), plain or gzip/zstd-compressed, with `-c` changes.
//!
//! The stream is read once: every byte goes both through a tar parser,
//! which refuses what no root filesystem needs (names or hardlinks that
//! climb out with `..`), and into the layer blob (gzip), hashed for its
//! diff_id on the way. The applier that later unpacks it is the hostile-
//! proof one every pulled layer goes through; this check only makes a bad
//! archive fail here, with nothing stored, rather than at `run`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use berth_image::compress::Compressor;
use berth_image::digest::Hasher;
use berth_image::manifest::media;
use berth_image::{Compression, ImageRecord, Platform};
use serde_json::{Map, Value, json};

/// Entries an imported archive may have.
const MAX_ENTRIES: u64 = 10_000_000;

/// What `import` is asked.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// `REPO[:TAG]`; none leaves the image untagged.
    pub reference: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<String>,
    /// Where the archive came from, for the history (`-` for stdin).
    pub source: String,
}

/// Import the archive `src` reads.
pub fn import(engine: &crate::Engine, src: impl Read, req: &ImportRequest) -> Result<ImageRecord> {
    if let Some(r) = &req.reference {
        berth_image::store::familiar_tag(r)?;
    }
    let mut config = Map::new();
    crate::instructions::apply(&mut config, &req.changes)?;
    let store = &engine.store;
    let guard = store.write_guard()?;
    let out = io::BufWriter::with_capacity(256 * 1024, store.blob_writer()?);
    let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = Counted {
        inner: src,
        n: read.clone(),
    };
    let mut tee = TeeReader {
        src: decompressed(counted)?,
        read,
        out: Compressor::new(out, Compression::Gzip)?,
        hasher: Hasher::new(),
    };
    check_tar(&mut tee)?;
    let size = tee.hasher.len();
    let diff_id = tee.hasher.finish();
    let blob = tee
        .out
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .commit(store, None)?;
    store.record_layer(&blob.digest, &diff_id, size)?;

    let now = crate::timefmt::now_rfc3339();
    let host = Platform::host();
    let comment = req
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", req.source));
    let cfg = json!({
        "architecture": host.architecture,
        "os": host.os,
        "created": now,
        "config": Value::Object(config),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": now, "comment": comment}],
    });
    let cfg = store.put_blob_bytes(&serde_json::to_vec(&cfg)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "digest": cfg.digest, "size": cfg.size},
        "layers": [{"mediaType": media::DOCKER_LAYER_GZIP, "digest": blob.digest, "size": blob.size}],
    });
    let m = store.put_blob_bytes(&serde_json::to_vec(&manifest)?)?;
    let rec = store.add_image(&m.digest, req.reference.as_deref())?;
    drop(guard);
    crate::events::image(
        engine,
        "import",
        rec.id.as_str(),
        req.reference.as_deref().unwrap_or(""),
    );
    Ok(rec)
}

/// `src` decompressed by its magic bytes: gzip, zstd or none.
pub(crate) fn decompressed<'a>(src: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, src);
    let head = r.fill_buf().context("read the archive")?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(berth_image::compress::gzip_reader(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(berth_image::compress::zstd_reader(r)?)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) || head.starts_with(b"BZh") {
        bail!("xz and bzip2 archives are not supported: decompress it first, or use gzip or zstd")
    } else {
        Box::new(r)
    })
}

/// A reader that counts the bytes it gives.
struct Counted<R> {
    inner: R,
    n: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.set(self.n.get() + n as u64);
        Ok(n)
    }
}

/// Reads `src` (the archive decompressed; `read` counts what came in),
/// and writes what it read to `out`, hashed.
struct TeeReader<'a, W: Write> {
    src: Box<dyn Read + 'a>,
    read: std::rc::Rc<std::cell::Cell<u64>>,
    out: W,
    hasher: Hasher,
}

/// An archive inflating past this many times its size, and past 1 GiB,
/// is refused as a decompression bomb (pull's and load's rule).
const MAX_RATIO: u64 = 100;

impl<W: Write> Read for TeeReader<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read(buf)?;
        self.out.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        let inflated = self.hasher.len();
        if inflated > 1 << 30 && inflated / MAX_RATIO > self.read.get() {
            return Err(io::Error::other(format!(
                "the archive inflates past {MAX_RATIO} times its size: refusing it"
            )));
        }
        Ok(n)
    }
}

/// Walk every entry (reading it whole), refusing names that climb out;
/// then read what follows the archive's end, so all of it is the layer.
fn check_tar(r: &mut impl Read) -> Result<()> {
    let mut archive = tar::Archive::new(r);
    let mut n = 0u64;
    for entry in archive.entries().context("read the archive")? {
        let mut e = entry.context("read the archive")?;
        n += 1;
        if n > MAX_ENTRIES {
            bail!("the archive has more than {MAX_ENTRIES} entries");
        }
        let path = e.path().context("an entry's name")?.into_owned();
        climbs(&path)?;
        // What unpacking will read of the header: refused here if it is not
        // numbers, rather than when the image is first run.
        let h = e.header();
        h.mode()
            .and(h.uid())
            .and(h.gid())
            .and(h.mtime())
            .with_context(|| format!("archive entry {:?}", path.display()))?;
        if e.header().entry_type() == tar::EntryType::Link
            && let Some(target) = e.link_name().context("a hardlink's target")?
        {
            climbs(&target)?;
        }
        io::copy(&mut e, &mut io::sink())
            .with_context(|| format!("read {} from the archive", path.display()))?;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).context("read the archive")?;
    Ok(())
}

fn climbs(p: &Path) -> Result<()> {
    if p.components().any(|c| c == Component::ParentDir) {
        bail!(
            "archive entry {:?} climbs out with '..': refusing it",
            p.display()
        );
    }
    Ok(())
}
