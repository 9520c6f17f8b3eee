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
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::lowers::visible_lowers;
use crate::resolve::{Resolver, Root, clean};
use crate::tree::{list_dir, remove_all_at, remove_tree};
use crate::whiteout::{
    OPAQUE, OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, is_whiteout,
};

/// Default cap on a layer's decompressed size: far above any real layer,
/// low enough that a decompression bomb stops before filling a disk.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;

/// Files from this size on are checked against the free space first (one
/// fstatvfs, about a microsecond; small files fail soon enough on ENOSPC).
const FREE_SPACE_CHECK_MIN: u64 = 1 << 20;

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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            mode: ApplyMode::Flatten,
            max_bytes: DEFAULT_MAX_BYTES,
            resolver: Resolver::Auto,
            privileged: None,
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
    let root = Root::open_with(target, opts.resolver)
        .with_context(|| format!("opening layer target {}", target.display()))?;
    let privileged = opts
        .privileged
        .unwrap_or_else(|| rustix::process::geteuid().is_root());
    let mut hr = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
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
            .map_err(|e| anyhow!("layer {diff_id}: not a valid tar stream: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error(diff_id, e))?;
            let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            ap.entry(&mut entry)
                .with_context(|| format!("layer {diff_id}: entry {shown:?}"))?;
            ap.report.entries += 1;
        }
    }
    // The digest covers the whole stream, end-of-archive blocks and padding too.
    io::copy(&mut hr, &mut io::sink()).map_err(|e| tar_error(diff_id, e))?;
    let got = hex::encode(hr.hasher.finalize_reset());
    if got != want {
        bail!("layer content digest mismatch: expected sha256:{want}, got sha256:{got}");
    }
    ap.finish_dirs()
        .with_context(|| format!("layer {diff_id}: setting directory metadata"))?;
    ap.report.bytes_read = hr.count;
    Ok(ap.report)
}

fn tar_error(diff_id: &str, e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::FileTooLarge {
        return anyhow!("layer {diff_id}: {e}");
    }
    anyhow!("layer {diff_id}: not a valid tar stream (or truncated): {e}")
}

/// sha256 and size cap over the decompressed stream.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
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
        self.hasher.update(&buf[..n]);
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

impl<'a> Applier<'a> {
    fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.report.warnings.push(msg);
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let path = clean(&raw).map_err(|m| anyhow!("{m}"))?;
        let kind = e.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let meta = self.meta(e)?;

        if path.as_os_str().is_empty() {
            // `./`: the target's own metadata.
            if kind == tar::EntryType::Directory {
                let fd = self
                    .root
                    .open_path(Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)?;
                self.own_and_xattrs(fd.as_fd(), &meta)?;
                self.dirs.push(DirFixup {
                    path,
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
                return Ok(());
            }
            bail!("non-directory entry for the root itself");
        }

        let name = path
            .file_name()
            .expect("cleaned non-empty path has a name")
            .as_bytes();
        if let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&path, name, rest, meta.mtime);
        }

        let (parent, name) = self.parent(&path).context("creating parent directories")?;
        let name = name.as_os_str();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear_slot(&parent, name, false)?;
                let sparse = kind == tar::EntryType::GNUSparse;
                self.file(e, &parent, name, &meta, sparse)?;
            }
            tar::EntryType::Directory => {
                let replaced_whiteout = self.is_overlay_whiteout(&parent, name);
                self.clear_slot(&parent, name, true)?;
                match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io::Error::from(e)).context("mkdir"),
                }
                let mut fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                // `.wh.d` then `d/` in one layer replaces the lower `d`:
                // without opaque, overlayfs would merge the old contents back in.
                if replaced_whiteout
                    && !self.mark_opaque(&fd, "marking replaced directory opaque")?
                {
                    // Self-contained now, the lower `d` merged in: the
                    // whiteout deletes it for real, as flattening does.
                    self.remove_lower_children(&path)?;
                    fd = self
                        .root
                        .open_path(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)?;
                }
                self.own_and_xattrs(fd.as_fd(), &meta)?;
                self.dirs.push(DirFixup {
                    path: path.clone(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| anyhow!("symlink without a target"))?
                    .into_owned();
                self.clear_slot(&parent, name, false)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(io::Error::from)
                    .context("symlink")?;
                if self.privileged {
                    rustix::fs::chownat(
                        &parent,
                        name,
                        uid(meta.uid),
                        gid(meta.gid),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(io::Error::from)
                    .context("lchown")?;
                }
                self.path_xattrs(&parent, name, &meta)?;
                set_times_at(&parent, name, meta.mtime)?;
            }
            tar::EntryType::Link => {
                let raw = e
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("hardlink without a target"))?
                    .into_owned();
                let target = clean(&raw).map_err(|m| anyhow!("hardlink target: {m}"))?;
                if target.as_os_str().is_empty() {
                    bail!("hardlink to the root directory");
                }
                if target == path {
                    return Ok(());
                }
                self.hardlink(&target, &parent, name)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    other => {
                        let major = e.header().device_major()?.unwrap_or(0);
                        let minor = e.header().device_minor()?.unwrap_or(0);
                        let ft = if other == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                if ft != FileType::Fifo && !self.privileged {
                    self.warn(format!(
                        "{}: device node skipped (not running as root)",
                        path.display()
                    ));
                    return Ok(());
                }
                self.clear_slot(&parent, name, false)?;
                match rustix::fs::mknodat(&parent, name, ft, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {}
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        self.warn(format!(
                            "{}: device node skipped (mknod not permitted)",
                            path.display()
                        ));
                        return Ok(());
                    }
                    Err(e) => return Err(io::Error::from(e)).context("mknod"),
                }
                if self.privileged {
                    rustix::fs::chownat(
                        &parent,
                        name,
                        uid(meta.uid),
                        gid(meta.gid),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(io::Error::from)
                    .context("chown")?;
                }
                rustix::fs::chmodat(
                    &parent,
                    name,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(io::Error::from)
                .context("chmod")?;
                self.path_xattrs(&parent, name, &meta)?;
                set_times_at(&parent, name, meta.mtime)?;
            }
            other => bail!("unsupported tar entry type {other:?}"),
        }
        self.created.insert(path);
        Ok(())
    }

    fn meta<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = e.header();
        let mode = h.mode().context("bad mode field")? & 0o7777;
        let uid = u32::try_from(h.uid().context("bad uid field")?).context("uid out of range")?;
        let gid = u32::try_from(h.gid().context("bad gid field")?).context("gid out of range")?;
        let mtime = h.mtime().unwrap_or(0);
        let mut xattrs = Vec::new();
        let mut dropped = Vec::new();
        if let Some(pax) = e.pax_extensions().context("bad PAX header")? {
            for ext in pax {
                let ext = ext.context("bad PAX record")?;
                let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                let name = OsStr::from_bytes(name).to_os_string();
                let n = name.as_bytes();
                // trusted.overlay.* and user.overlay.* would steer overlayfs
                // (opaque, redirect, metacopy): only this code may set those.
                // Other trusted.* need root.
                if n.starts_with(b"trusted.overlay.")
                    || n.starts_with(b"user.overlay.")
                    || (n.starts_with(b"trusted.")
                        && !(self.privileged && crate::in_initial_userns()))
                {
                    dropped.push(name);
                    continue;
                }
                xattrs.push((name, ext.value_bytes().to_vec()));
            }
        }
        for d in dropped {
            self.warn(format!("xattr {} dropped", d.to_string_lossy()));
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn opaque_xattr(&self) -> &'static str {
        if self.privileged && crate::in_initial_userns() {
            OVERLAY_OPAQUE_XATTR
        } else {
            USER_OVERLAY_OPAQUE_XATTR
        }
    }

    /// The lowers while the layer is applied as an overlay snapshot.
    fn overlay_lowers(&self) -> Option<&'a [PathBuf]> {
        let opts: &'a ApplyOptions = self.opts;
        match &opts.mode {
            ApplyMode::Overlay { lowers } if !self.self_contained => Some(lowers),
            _ => None,
        }
    }

    /// Marks `dir` opaque; false when the store refused the marker and the
    /// layer became self-contained instead, the caller to apply flatten's rule.
    fn mark_opaque(&mut self, dir: &OwnedFd, what: &str) -> Result<bool> {
        match rustix::fs::fsetxattr(dir, self.opaque_xattr(), b"y", XattrFlags::empty()) {
            Ok(()) => Ok(true),
            Err(e) if store_refuses(e) => {
                self.become_self_contained(e)?;
                Ok(false)
            }
            Err(e) => Err(io::Error::from(e)).context(what.to_string()),
        }
    }

    /// The store refused overlay metadata (`why`): from here on the layer
    /// is applied flattened, over the merged view of its visible lowers.
    /// What the layer has made so far is set aside in `<target>.partial`,
    /// the lowers are copied in, and the set-aside part moved back over
    /// them, by renames both ways (a layer's files are copied never):
    /// the target's root, and with it the fd every lookup starts from,
    /// stays the same directory.
    fn become_self_contained(&mut self, why: Errno) -> Result<()> {
        let Some(lowers) = self.overlay_lowers() else {
            bail!("a flattened layer cannot become self-contained");
        };
        self.await_lowers()?;
        let lowers = self.visible(lowers);
        tracing::debug!(
            "{}: the store refuses overlay metadata ({why}): merging {} lower snapshots in",
            self.target.display(),
            lowers.len()
        );
        let mut name = self
            .target
            .file_name()
            .ok_or_else(|| anyhow!("{} has no name", self.target.display()))?
            .to_os_string();
        name.push(".partial");
        let partial = self.target.with_file_name(name);
        std::fs::create_dir(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let res = (|| -> Result<()> {
            let top = self
                .root
                .open_path(Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)?;
            let aside = rustix::fs::open(
                &partial,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            for child in list_dir(top.as_fd())? {
                rustix::fs::renameat(&top, &child, &aside, &child).map_err(io::Error::from)?;
            }
            crate::copy::flatten_snapshots(lowers, self.target, self.opts.resolver)?;
            crate::copy::move_snapshot_over(&partial, self.target, self.opts.resolver)
        })();
        let removed = remove_tree(&partial);
        res.context("merging the lower snapshots in")?;
        removed.with_context(|| format!("removing {}", partial.display()))?;
        self.self_contained = true;
        self.report.self_contained = true;
        Ok(())
    }

    /// Flatten's rule for an opaque `dir`: what the lower layers put in it
    /// goes, what this layer made stays.
    fn remove_lower_children(&self, dir: &Path) -> Result<()> {
        let at = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let fd = match self.root.open_path(at, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).context("opening opaque directory"),
        };
        for child in list_dir(fd.as_fd())? {
            if !self.created.contains(&dir.join(&child)) {
                remove_all_at(fd.as_fd(), &child)?;
            }
        }
        Ok(())
    }

    /// The lowers this layer may still see (parents, hardlink targets).
    fn visible<'l>(&self, lowers: &'l [PathBuf]) -> &'l [PathBuf] {
        if self.root_opaque {
            &[]
        } else {
            visible_lowers(lowers)
        }
    }

    /// Before anything reads the lowers: they must be complete.
    fn await_lowers(&self) -> io::Result<()> {
        if !self.lowers_waited.get() {
            if !(self.lowers_ready)() {
                return Err(io::Error::other(
                    "the lower layers' snapshots are not available",
                ));
            }
            self.lowers_waited.set(true);
        }
        Ok(())
    }

    /// The entry's parent dir, created if missing. In overlay mode missing
    /// parents take their metadata from the lowers (like containerd), or the
    /// new upper dir's defaults would replace the lower dir's owner and mode.
    fn parent(&self, path: &Path) -> io::Result<(OwnedFd, OsString)> {
        if let Some(lowers) = self.overlay_lowers()
            && !lowers.is_empty()
        {
            match self.root.parent(path, false) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.await_lowers()?;
                    let dir = path.parent().unwrap_or(Path::new(""));
                    let lowers = self.visible(lowers);
                    crate::copy::make_parents(self.root, lowers, dir, self.opts.resolver)
                        .map_err(io::Error::other)?;
                }
                other => return other,
            }
        }
        self.root.parent(path, true)
    }

    /// In overlay mode, whether `parent/name` is a whiteout this layer made.
    fn is_overlay_whiteout(&self, parent: &OwnedFd, name: &OsStr) -> bool {
        self.overlay_lowers().is_some()
            && matches!(
                rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW),
                Ok(st) if is_whiteout(&st)
            )
    }

    /// Make room for a new entry at `parent/name`, tar style: anything there
    /// goes, except a directory about to be replaced by a directory.
    fn clear_slot(&self, parent: &OwnedFd, name: &OsStr, new_is_dir: bool) -> Result<()> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io::Error::from(e)).context("stat"),
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && new_is_dir {
                    return Ok(());
                }
                remove_all_at(parent.as_fd(), name).context("replacing existing entry")
            }
        }
    }

    fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        sparse: bool,
    ) -> Result<()> {
        let declared = e.header().entry_size().unwrap_or(0);
        if !sparse && declared >= FREE_SPACE_CHECK_MIN {
            // A bomb's one huge file is refused at its header, before it is
            // inflated and before it fills the disk everything else shares.
            let st = rustix::fs::fstatvfs(parent)
                .map_err(io::Error::from)
                .context("statvfs")?;
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if declared > free {
                bail!(
                    "a file of {declared} bytes does not fit: the store's filesystem has {free} bytes free"
                );
            }
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io::Error::from)
        .context("create")?;
        let mut file = std::fs::File::from(fd);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match e.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::FileTooLarge => return Err(err.into()),
                Err(err) => return Err(anyhow!("reading file content: {err}")),
            };
            file.write_all(&buf[..n]).context("write")?;
            written += n as u64;
        }
        if !sparse && written != declared {
            bail!("declared size {declared} but the stream ended after {written} bytes");
        }
        self.report.bytes_written += written;
        self.own_and_xattrs(file.as_fd(), meta)?;
        // Mode after chown: chown clears setuid/setgid.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
            .map_err(io::Error::from)
            .context("chmod")?;
        set_times_fd(file.as_fd(), meta.mtime)?;
        Ok(())
    }

    fn own_and_xattrs(&mut self, fd: BorrowedFd<'_>, meta: &Meta) -> Result<()> {
        if self.privileged {
            rustix::fs::fchown(fd, uid(meta.uid), gid(meta.gid))
                .map_err(io::Error::from)
                .context("chown")?;
        }
        for (k, v) in &meta.xattrs {
            match rustix::fs::fsetxattr(fd, k.as_os_str(), v, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::OPNOTSUPP) | Err(Errno::PERM)
                    if !k.as_bytes().starts_with(b"security.capability") =>
                {
                    self.warn(format!(
                        "xattr {} not supported here, skipped",
                        k.to_string_lossy()
                    ));
                }
                Err(e) => {
                    return Err(io::Error::from(e))
                        .with_context(|| format!("setting xattr {}", k.to_string_lossy()));
                }
            }
        }
        Ok(())
    }

    /// xattrs on a node we cannot open for writing (symlink, device, fifo):
    /// through the parent fd's /proc link, never following the final name.
    fn path_xattrs(&mut self, parent: &OwnedFd, name: &OsStr, meta: &Meta) -> Result<()> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        let mut p = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
        p.extend_from_slice(name.as_bytes());
        let p = OsStr::from_bytes(&p);
        for (k, v) in &meta.xattrs {
            if let Err(e) = rustix::fs::lsetxattr(p, k.as_os_str(), v, XattrFlags::empty()) {
                self.warn(format!(
                    "xattr {} on {}: {e}, skipped",
                    k.to_string_lossy(),
                    name.to_string_lossy()
                ));
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, path: &Path, name: &[u8], rest: &[u8], mtime: u64) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new(""));
        let overlay = self.overlay_lowers().is_some();
        if name == OPAQUE {
            if overlay {
                let fd = if dir.as_os_str().is_empty() {
                    // Kept as the snapshot's mark for visible_lowers(): overlayfs
                    // itself ignores it on a layer's root.
                    self.root_opaque = true;
                    self.root
                        .open_path(Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)?
                } else {
                    let (p, n) = self.parent(dir)?;
                    self.clear_slot(&p, &n, true)?;
                    match rustix::fs::mkdirat(&p, n.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io::Error::from(e)).context("mkdir"),
                    }
                    rustix::fs::openat(
                        &p,
                        n.as_os_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?
                };
                if !self.mark_opaque(&fd, "marking directory opaque")? {
                    return self.whiteout(path, name, rest, mtime);
                }
                return Ok(());
            }
            // Flatten: empty the directory of everything from lower layers
            // (at the layer's root too: "" names no path, "." the root).
            return self.remove_lower_children(dir);
        }
        if rest.starts_with(WHITEOUT_PREFIX) {
            // Other AUFS metadata (.wh..wh.plnk etc.): meaningless here.
            self.warn(format!("{}: AUFS metadata entry ignored", path.display()));
            return Ok(());
        }
        if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') {
            bail!("invalid whiteout name");
        }
        let victim = OsStr::from_bytes(rest);
        if overlay {
            let (p, _) = self.parent(path)?;
            self.clear_slot(&p, victim, false)?;
            match rustix::fs::mknodat(
                &p,
                victim,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            ) {
                Ok(()) => {}
                Err(e) if store_refuses(e) => {
                    self.become_self_contained(e)?;
                    return self.whiteout(path, name, rest, mtime);
                }
                Err(e) => {
                    return Err(io::Error::from(e)).context("creating overlay whiteout");
                }
            }
            // The `.wh.` entry's mtime, not the clock: the same layer always
            // unpacks to the same tree.
            set_times_at(&p, victim, mtime)?;
            self.created.insert(dir.join(victim));
            return Ok(());
        }
        let p = match self.root.open_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).context("opening whiteout's directory"),
        };
        remove_all_at(p.as_fd(), victim).context("applying whiteout")?;
        Ok(())
    }

    fn hardlink(&mut self, target: &Path, parent: &OwnedFd, name: &OsStr) -> Result<()> {
        let lookup = |root: &Root| -> Result<Option<(OwnedFd, OsString, FileType)>> {
            let (tp, tn) = match root.parent(target, false) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).context("hardlink target"),
            };
            match rustix::fs::statat(&tp, tn.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                // An overlay whiteout made by this layer is not a file to link to.
                Ok(st) if is_whiteout(&st) && self.overlay_lowers().is_some() => Ok(None),
                Ok(st) => Ok(Some((tp, tn, FileType::from_raw_mode(st.st_mode)))),
                Err(Errno::NOENT) => Ok(None),
                Err(e) => Err(io::Error::from(e)).context("hardlink target"),
            }
        };
        let mut found = lookup(self.root)?;
        if found.is_none()
            && let Some(lowers) = self.overlay_lowers()
            && !lowers.is_empty()
        {
            self.await_lowers()?;
            // Only now are the lowers complete, their opaque roots known.
            let lowers = self.visible(lowers);
            if crate::copy::copy_up(lowers, self.root, target, self.opts.resolver)? {
                found = lookup(self.root)?;
            }
        }
        let (tp, tn, ft) =
            found.ok_or_else(|| anyhow!("hardlink target {} does not exist", target.display()))?;
        if ft == FileType::Directory {
            bail!("hardlink to a directory ({})", target.display());
        }
        self.clear_slot(parent, name, false)?;
        rustix::fs::linkat(&tp, tn.as_os_str(), parent, name, AtFlags::empty())
            .map_err(io::Error::from)
            .context("link")?;
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is the last touch it gets.
        let dirs = std::mem::take(&mut self.dirs);
        for d in dirs.iter().rev() {
            let fd = match self.root.open_path(
                &d.path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            ) {
                Ok(fd) => fd,
                // Replaced by a non-directory or deleted later in the layer.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e).with_context(|| d.path.display().to_string()),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode)).map_err(io::Error::from)?;
            set_times_fd(fd.as_fd(), d.mtime)?;
        }
        Ok(())
    }
}

/// Whether an overlay whiteout or opaque marker failed because the store's
/// filesystem cannot hold one (overlayfs: EPERM), not for a passing reason.
fn store_refuses(e: Errno) -> bool {
    matches!(e, Errno::PERM | Errno::OPNOTSUPP)
}

fn uid(u: u32) -> Option<rustix::fs::Uid> {
    Some(rustix::fs::Uid::from_raw(u))
}
fn gid(g: u32) -> Option<rustix::fs::Gid> {
    Some(rustix::fs::Gid::from_raw(g))
}

fn times(mtime: u64) -> Timestamps {
    let t = rustix::time::Timespec {
        tv_sec: mtime.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_times_fd(fd: BorrowedFd<'_>, mtime: u64) -> Result<()> {
    rustix::fs::futimens(fd, &times(mtime))
        .map_err(io::Error::from)
        .context("setting mtime")
}

fn set_times_at(parent: &OwnedFd, name: &OsStr, mtime: u64) -> Result<()> {
    rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
        .context("setting mtime")
}

/// `sha256:<hex>` of a byte stream (the diff_id of an uncompressed tar).
pub fn diff_id_of(mut r: impl Read) -> io::Result<String> {
    let mut h = Sha256::new();
    io::copy(&mut r, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}
