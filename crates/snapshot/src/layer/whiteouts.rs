//! Whiteouts and opaque directories, and the lowers of an overlay
//! snapshot: what Flatten and Overlay mode do differently. Flatten deletes
//! for real; Overlay writes overlayfs's markers, takes missing parents'
//! metadata from the lowers, and becomes self-contained (the lowers merged
//! in, Flatten's rules from then on) where the store refuses the markers.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::applier::set_times_at;
use super::{Applier, ApplyMode, ApplyOptions};
use crate::lowers::visible_lowers;
use crate::tree::{list_dir, remove_all_at, remove_tree};
use crate::whiteout::{
    OPAQUE, OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, is_whiteout,
};

impl<'a> Applier<'a> {
    /// A `.wh.` entry `path` (`name`, `.wh.` then `rest`): an opaque marker
    /// for its directory, or a whiteout of `rest`, as the mode has them.
    pub(super) fn whiteout(
        &mut self,
        path: &Path,
        name: &[u8],
        rest: &[u8],
        mtime: u64,
    ) -> Result<()> {
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

    fn opaque_xattr(&self) -> &'static str {
        if self.privileged && crate::in_initial_userns() {
            OVERLAY_OPAQUE_XATTR
        } else {
            USER_OVERLAY_OPAQUE_XATTR
        }
    }

    /// The lowers while the layer is applied as an overlay snapshot.
    pub(super) fn overlay_lowers(&self) -> Option<&'a [PathBuf]> {
        let opts: &'a ApplyOptions = self.opts;
        match &opts.mode {
            ApplyMode::Overlay { lowers } if !self.self_contained => Some(lowers),
            _ => None,
        }
    }

    /// Marks `dir` opaque; false when the store refused the marker and the
    /// layer became self-contained instead, the caller to apply flatten's rule.
    pub(super) fn mark_opaque(&mut self, dir: &OwnedFd, what: &str) -> Result<bool> {
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
    pub(super) fn remove_lower_children(&self, dir: &Path) -> Result<()> {
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
    pub(super) fn visible<'l>(&self, lowers: &'l [PathBuf]) -> &'l [PathBuf] {
        if self.root_opaque {
            &[]
        } else {
            visible_lowers(lowers)
        }
    }

    /// Before anything reads the lowers: they must be complete.
    pub(super) fn await_lowers(&self) -> io::Result<()> {
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
    pub(super) fn parent(&self, path: &Path) -> io::Result<(OwnedFd, OsString)> {
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
    pub(super) fn is_overlay_whiteout(&self, parent: &OwnedFd, name: &OsStr) -> bool {
        self.overlay_lowers().is_some()
            && matches!(
                rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW),
                Ok(st) if is_whiteout(&st)
            )
    }
}

/// Whether an overlay whiteout or opaque marker failed because the store's
/// filesystem cannot hold one (overlayfs: EPERM), not for a passing reason.
fn store_refuses(e: Errno) -> bool {
    matches!(e, Errno::PERM | Errno::OPNOTSUPP)
}
