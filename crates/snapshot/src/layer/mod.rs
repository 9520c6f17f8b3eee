//! Applying one OCI layer tar to a directory.
//!
//! The tar crate only parses; every filesystem change is made here with *at
//! calls relative to a directory fd obtained through [`Root`], so a path in
//! the layer can never reach outside the target, whatever symlinks earlier
//! entries or layers planted.
//!
//! Path rules (documented behaviour, tested in tests/hostile.rs):
//! - absolute names are taken relative to the target (`/etc/x` is `etc/x`),
//!   like Docker and containerd;
//! - a `..` that would climb above the target is refused (`a/../b` is `b`);
//! - symlinks on the way to an entry are followed *inside* the target, as if
//!   the target were `/` (`link -> /etc` then `link/passwd` writes
//!   `<target>/etc/passwd`), like containerd; the entry's own final name is
//!   never followed: whatever is there is replaced;
//! - a later entry for the same name wins, like tar: a non-directory (or a
//!   directory replaced by a non-directory) is removed first; a directory over
//!   a directory keeps the contents and takes the new metadata;
//! - hardlinks link to the named entry itself (a symlink is linked as a
//!   symlink, never followed);
//! - an opaque marker (`.wh..wh..opq`) hides all the lower layers have in its
//!   directory, at the layer's root too (then nothing of them is left), like
//!   containerd's applier and umoci (tests/overlay.rs).
//!
//! The whole stream is hashed while it is read and checked against the
//! expected diff_id at the end; on a mismatch the target must be discarded by
//! the caller (it may hold partial content). The decompressed size is capped,
//! and a file larger than the free space of the target's filesystem is
//! refused at its header, before it is inflated (tests/hostile.rs).

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use crate::resolve::{Resolver, Root};

mod applier;
mod from_upper;
mod whiteouts;

pub use from_upper::{UpperOptions, UpperReport, write_upper, write_upper_with};

/// Default cap on a layer's decompressed size: far above any real layer,
/// low enough that a decompression bomb stops before filling a disk.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;

/// How whiteouts and cross-layer hardlinks are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyMode {
    /// The target already holds the lower layers: whiteouts delete for real.
    Flatten,
    /// The target is an empty snapshot dir for this layer alone: whiteouts
    /// become overlayfs whiteouts (char 0:0), opaque dirs get
    /// `trusted.overlay.opaque=y` (on the snapshot's own root, which
    /// overlayfs ignores, it tells [`crate::lowers::visible_lowers`] to
    /// leave the lowers out), and hardlinks to files of earlier layers
    /// are satisfied by copying the file up from `lowers` (bottom → top).
    ///
    /// Where the target's filesystem refuses a whiteout or an opaque marker
    /// (overlayfs refuses both made through it; since Linux 6.7 it takes
    /// the marker, escaped), the snapshot becomes self-contained instead:
    /// see [`ApplyReport::self_contained`].
    Overlay {
        /// Snapshot dirs of the earlier layers, bottom first.
        lowers: Vec<PathBuf>,
    },
    /// Not a layer (`cp` into a container or out of one): `.wh.` names
    /// are ordinary names, as in Docker's `cp`, and nothing is deleted.
    Plain,
}

/// Options for [`apply_layer`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Flatten or overlay snapshot.
    pub mode: ApplyMode,
    /// Cap on the decompressed tar stream, in bytes.
    pub max_bytes: u64,
    /// Path resolver (tests force the fallback).
    pub resolver: Resolver,
    /// Whether to chown, create devices and set `trusted.*` xattrs.
    /// `None`: when running as uid 0.
    pub privileged: Option<bool>,
    /// Entries land below this directory of the target (a `cp`
    /// destination, resolved in the target like every entry's parents),
    /// `..` in their names never climbing above it; the stream's own `./`
    /// entry is then skipped (the destination keeps its metadata).
    /// Empty: the target itself.
    pub under: PathBuf,
    /// Every entry owned by this uid/gid instead of the stream's (`cp`
    /// without `-a`); when privileged only, like all chowns.
    pub owner: Option<(u32, u32)>,
    /// Skip device nodes (with a warning) even when privileged: `cp` out
    /// of a container must not plant the container's device nodes on the
    /// host.
    pub skip_devices: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            mode: ApplyMode::Flatten,
            max_bytes: DEFAULT_MAX_BYTES,
            resolver: Resolver::Auto,
            privileged: None,
            under: PathBuf::new(),
            owner: None,
            skip_devices: false,
        }
    }
}

/// What applying a layer did.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Decompressed tar bytes read (the size the diff_id covers).
    pub bytes_read: u64,
    /// File content bytes written.
    pub bytes_written: u64,
    /// Tar entries processed.
    pub entries: u64,
    /// Things skipped on purpose (devices when unprivileged, unsupported xattrs, ...).
    pub warnings: Vec<String>,
    /// Overlay mode only: the target's filesystem refused an overlay
    /// whiteout or opaque marker, so the target holds the merged view of
    /// the visible lowers with this layer applied over it, whiteouts
    /// deleting for real. As a lower it must hide the ones below it: the
    /// caller marks it so ([`crate::Snapshots`] does, for
    /// [`crate::lowers::visible_lowers`]). Done with a sibling dir,
    /// `<target>.partial`, made and removed meanwhile.
    pub self_contained: bool,
}

/// Apply one decompressed layer tar to `target`, verifying its sha256 against
/// `diff_id` (`sha256:<hex>`). On error the target may be partly written and
/// must be discarded by the caller.
pub fn apply_layer(
    reader: impl Read,
    target: &Path,
    diff_id: &str,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    apply_layer_gated(reader, target, diff_id, opts, &|| true)
}

/// [`apply_layer`] for a layer unpacked while its lowers may still be
/// unpacking (overlay mode): `lowers_ready` is called once, the first time
/// the layer needs to read the lowers (a parent dir it does not carry, a
/// hardlink to a lower file), and must return once they are complete, or
/// return false to give up, which fails the apply. Most layers carry their
/// parents and never call it, so layers of one image unpack in parallel and
/// still come out exactly as they would one after another.
pub fn apply_layer_gated(
    reader: impl Read,
    target: &Path,
    diff_id: &str,
    opts: &ApplyOptions,
    lowers_ready: &dyn Fn() -> bool,
) -> Result<ApplyReport> {
    let want = diff_id
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| anyhow!("layer diff_id {diff_id:?} is not a sha256 digest"))?
        .to_ascii_lowercase();
    apply(reader, target, Some((diff_id, &want)), opts, lowers_ready)
}

/// Extract a tar stream that is not a layer (`cp`'s): no digest to check,
/// and [`ApplyMode::Plain`] unless `opts` say otherwise; every other rule
/// of [`apply_layer`] holds (names resolved in the target, `..` above it
/// refused, a symlink never followed out of it).
pub fn extract_archive(
    reader: impl Read,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    apply(reader, target, None, opts, &|| true)
}

/// The unpacking shared by layers (`digest`: the diff_id as given and its
/// hex, checked at the end) and other archives.
fn apply(
    reader: impl Read,
    target: &Path,
    digest: Option<(&str, &str)>,
    opts: &ApplyOptions,
    lowers_ready: &dyn Fn() -> bool,
) -> Result<ApplyReport> {
    let what = digest.map_or_else(|| "archive".to_string(), |d| format!("layer {}", d.0));
    let root = Root::open_with(target, opts.resolver)
        .with_context(|| format!("opening layer target {}", target.display()))?;
    let privileged = opts
        .privileged
        .unwrap_or_else(|| rustix::process::geteuid().is_root());
    let mut hr = HashingReader {
        inner: reader,
        // Only a layer's stream is checked against a digest.
        hasher: digest.map(|_| Sha256::new()),
        count: 0,
        cap: opts.max_bytes,
    };
    let mut ap = Applier {
        root: &root,
        target,
        opts,
        privileged,
        created: HashSet::new(),
        dirs: Vec::new(),
        report: ApplyReport::default(),
        lowers_ready,
        lowers_waited: std::cell::Cell::new(false),
        root_opaque: false,
        self_contained: false,
    };
    {
        let mut archive = tar::Archive::new(&mut hr);
        let entries = archive
            .entries()
            .map_err(|e| anyhow!("{what}: not a valid tar stream: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error(&what, e))?;
            let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            ap.entry(&mut entry)
                .with_context(|| format!("{what}: entry {shown:?}"))?;
            ap.report.entries += 1;
        }
    }
    // The digest covers the whole stream, end-of-archive blocks and padding too.
    io::copy(&mut hr, &mut io::sink()).map_err(|e| tar_error(&what, e))?;
    if let (Some((_, want)), Some(h)) = (digest, hr.hasher.take()) {
        let got = hex::encode(h.finalize());
        if got != want {
            bail!("layer content digest mismatch: expected sha256:{want}, got sha256:{got}");
        }
    }
    ap.finish_dirs()
        .with_context(|| format!("{what}: setting directory metadata"))?;
    ap.report.bytes_read = hr.count;
    Ok(ap.report)
}

fn tar_error(what: &str, e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::FileTooLarge {
        return anyhow!("{what}: {e}");
    }
    anyhow!("{what}: not a valid tar stream (or truncated): {e}")
}

/// sha256 (for a layer) and size cap over the decompressed stream.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
    cap: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("decompressed layer exceeds the {} byte cap", self.cap),
            ));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

struct DirFixup {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

struct Applier<'a> {
    root: &'a Root,
    /// The root's path, for the sibling a self-contained snapshot needs.
    target: &'a Path,
    opts: &'a ApplyOptions,
    privileged: bool,
    /// Paths this layer created, so an opaque marker keeps them.
    created: HashSet<PathBuf>,
    /// Directory mode and mtime are set at the end: children would bump the
    /// mtime, and a read-only dir mode would stop an unprivileged unpack.
    dirs: Vec<DirFixup>,
    report: ApplyReport,
    /// See [`apply_layer_gated`]; called at most once.
    lowers_ready: &'a dyn Fn() -> bool,
    lowers_waited: std::cell::Cell<bool>,
    /// This layer's own root is opaque: the lowers are hidden from it too.
    root_opaque: bool,
    /// Overlay mode turned flatten: see [`ApplyReport::self_contained`].
    self_contained: bool,
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

/// `sha256:<hex>` of a byte stream (the diff_id of an uncompressed tar).
pub fn diff_id_of(mut r: impl Read) -> io::Result<String> {
    let mut h = Sha256::new();
    io::copy(&mut r, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}
