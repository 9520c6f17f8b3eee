//! One tar entry to one node of the target: a file, directory, symlink,
//! hardlink, device or FIFO, with its owner, mode, xattrs and mtime, every
//! change made by *at calls on fds from the layer's [`Root`].

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::{Applier, ApplyMode, DirFixup, Meta};
use crate::resolve::{Root, clean};
use crate::tree::remove_all_at;
use crate::whiteout::{WHITEOUT_PREFIX, is_whiteout};

/// Files from this size on are checked against the free space first (one
/// fstatvfs, about a microsecond; small files fail soon enough on ENOSPC).
const FREE_SPACE_CHECK_MIN: u64 = 1 << 20;

impl Applier<'_> {
    pub(super) fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.report.warnings.push(msg);
    }

    /// Apply one tar entry: the root's own metadata, a whiteout, or a node
    /// of one of tar's kinds in its parent dir (made if missing). Paths
    /// this layer made are remembered, so its own opaque markers keep them.
    pub(super) fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
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
            if !self.opts.under.as_os_str().is_empty() {
                // `./` of a `cp` stream: the destination keeps its own metadata.
                return Ok(());
            }
            return self.root_entry(kind, path, &meta);
        }
        let path = self.opts.under.join(path);

        let name = path
            .file_name()
            .expect("cleaned non-empty path has a name")
            .as_bytes();
        if self.opts.mode != ApplyMode::Plain
            && let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX)
        {
            return self.whiteout(&path, name, rest, meta.mtime);
        }

        let (parent, name) = self.parent(&path).context("creating parent directories")?;
        let name = name.as_os_str();
        let made = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear_slot(&parent, name, false)?;
                let sparse = kind == tar::EntryType::GNUSparse;
                self.file(e, &parent, name, &meta, sparse)?;
                true
            }
            tar::EntryType::Directory => {
                self.directory(&path, &parent, name, &meta)?;
                true
            }
            tar::EntryType::Symlink => {
                self.symlink(e, &parent, name, &meta)?;
                true
            }
            tar::EntryType::Link => self.link(e, &path, &parent, name)?,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.special(e, &path, &parent, name, &meta)?
            }
            other => bail!("unsupported tar entry type {other:?}"),
        };
        if made {
            self.created.insert(path);
        }
        Ok(())
    }

    /// `./`: the target's own metadata.
    fn root_entry(&mut self, kind: tar::EntryType, path: PathBuf, meta: &Meta) -> Result<()> {
        if kind != tar::EntryType::Directory {
            bail!("non-directory entry for the root itself");
        }
        let fd = self
            .root
            .open_path(Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)?;
        self.own_and_xattrs(fd.as_fd(), meta)?;
        self.dirs.push(DirFixup {
            path,
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    /// A directory, or the one already there with its contents kept; its
    /// mode and mtime are set last ([`Self::finish_dirs`]).
    fn directory(
        &mut self,
        path: &Path,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
    ) -> Result<()> {
        let replaced_whiteout = self.is_overlay_whiteout(parent, name);
        self.clear_slot(parent, name, true)?;
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io::Error::from(e)).context("mkdir"),
        }
        let mut fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // `.wh.d` then `d/` in one layer replaces the lower `d`:
        // without opaque, overlayfs would merge the old contents back in.
        if replaced_whiteout && !self.mark_opaque(&fd, "marking replaced directory opaque")? {
            // Self-contained now, the lower `d` merged in: the
            // whiteout deletes it for real, as flattening does.
            self.remove_lower_children(path)?;
            fd = self
                .root
                .open_path(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)?;
        }
        self.own_and_xattrs(fd.as_fd(), meta)?;
        self.dirs.push(DirFixup {
            path: path.to_path_buf(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
    ) -> Result<()> {
        let target = e
            .link_name_bytes()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("symlink without a target"))?
            .into_owned();
        self.clear_slot(parent, name, false)?;
        rustix::fs::symlinkat(OsStr::from_bytes(&target), parent, name)
            .map_err(io::Error::from)
            .context("symlink")?;
        if self.privileged {
            rustix::fs::chownat(
                parent,
                name,
                uid(meta.uid),
                gid(meta.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io::Error::from)
            .context("lchown")?;
        }
        self.path_xattrs(parent, name, meta)?;
        set_times_at(parent, name, meta.mtime)
    }

    /// A hardlink entry; false for one naming itself, which makes nothing.
    fn link<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        path: &Path,
        parent: &OwnedFd,
        name: &OsStr,
    ) -> Result<bool> {
        let raw = e
            .link_name_bytes()
            .ok_or_else(|| anyhow!("hardlink without a target"))?
            .into_owned();
        let target = clean(&raw).map_err(|m| anyhow!("hardlink target: {m}"))?;
        if target.as_os_str().is_empty() {
            bail!("hardlink to the root directory");
        }
        let target = self.opts.under.join(target);
        if target == path {
            return Ok(false);
        }
        self.hardlink(&target, parent, name)?;
        Ok(true)
    }

    /// A device node or FIFO; false when a device was skipped (not root,
    /// or mknod not permitted), with a warning.
    fn special<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        path: &Path,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
    ) -> Result<bool> {
        let (ft, dev) = match e.header().entry_type() {
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
        if ft != FileType::Fifo && (!self.privileged || self.opts.skip_devices) {
            let why = if self.privileged {
                "not copied out of a container"
            } else {
                "not running as root"
            };
            self.warn(format!("{}: device node skipped ({why})", path.display()));
            return Ok(false);
        }
        self.clear_slot(parent, name, false)?;
        match rustix::fs::mknodat(parent, name, ft, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(Errno::PERM) if ft != FileType::Fifo => {
                self.warn(format!(
                    "{}: device node skipped (mknod not permitted)",
                    path.display()
                ));
                return Ok(false);
            }
            Err(e) => return Err(io::Error::from(e)).context("mknod"),
        }
        if self.privileged {
            rustix::fs::chownat(
                parent,
                name,
                uid(meta.uid),
                gid(meta.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io::Error::from)
            .context("chown")?;
        }
        rustix::fs::chmodat(
            parent,
            name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(io::Error::from)
        .context("chmod")?;
        self.path_xattrs(parent, name, meta)?;
        set_times_at(parent, name, meta.mtime)?;
        Ok(true)
    }

    fn meta<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = e.header();
        let mode = h.mode().context("bad mode field")? & 0o7777;
        let uid = u32::try_from(h.uid().context("bad uid field")?).context("uid out of range")?;
        let gid = u32::try_from(h.gid().context("bad gid field")?).context("gid out of range")?;
        let (uid, gid) = self.opts.owner.unwrap_or((uid, gid));
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

    /// Make room for a new entry at `parent/name`, tar style: anything there
    /// goes, except a directory about to be replaced by a directory.
    pub(super) fn clear_slot(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        new_is_dir: bool,
    ) -> Result<()> {
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

    pub(super) fn finish_dirs(&mut self) -> Result<()> {
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

pub(super) fn set_times_at(parent: &OwnedFd, name: &OsStr, mtime: u64) -> Result<()> {
    rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
        .context("setting mtime")
}
