//! Copying between snapshot trees with fds only: copy-up of a lower file for
//! a cross-layer hardlink, and flattening overlay snapshots into one plain
//! directory when overlayfs cannot be mounted or a snapshot must be
//! self-contained.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::resolve::{Resolver, Root};
use crate::tree::{MAX_DEPTH, list_dir, remove_all_at};
use crate::whiteout::{is_opaque, is_whiteout};

fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn lookup(root: &Root, path: &Path) -> io::Result<Option<(OwnedFd, OsString, Stat)>> {
    let (p, n) = match root.parent(path, false) {
        Ok(x) => x,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(lstat_at(p.as_fd(), &n)?.map(|st| (p, n, st)))
}

/// Copy `path` as seen through the overlay of `lowers` (bottom → top) into
/// `root`, creating its parents with the lowers' metadata. Returns false when
/// the path does not exist in the merged view.
pub(crate) fn copy_up(
    lowers: &[PathBuf],
    root: &Root,
    path: &Path,
    resolver: Resolver,
) -> Result<bool> {
    for lower in lowers.iter().rev() {
        let lr = Root::open_with(lower, resolver)
            .with_context(|| format!("opening snapshot {}", lower.display()))?;
        if let Some((sp, sn, st)) = lookup(&lr, path)? {
            if is_whiteout(&st) {
                return Ok(false);
            }
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                bail!("hardlink to a directory ({})", path.display());
            }
            let parent = path.parent().unwrap_or(Path::new(""));
            let dp = make_parents(root, lowers, parent, resolver)?;
            let name = path.file_name().expect("non-empty path");
            copy_node(sp.as_fd(), &sn, &st, dp.as_fd(), name)?;
            return Ok(true);
        }
        // Not in this lower: an ancestor whited out or made opaque here hides everything below.
        let mut prefix = PathBuf::new();
        for c in path.parent().unwrap_or(Path::new("")).components() {
            prefix.push(c);
            if let Some((p, n, st)) = lookup(&lr, &prefix)?
                && (is_whiteout(&st) || is_opaque(p.as_fd(), &n))
            {
                return Ok(false);
            }
        }
    }
    Ok(false)
}

/// mkdir -p `parent` in `root`, each new dir taking the owner/mode/mtime
/// of the same dir in the topmost of `lowers` (bottom → top) that has it, so
/// the merged view keeps the lower's metadata rather than our defaults.
pub(crate) fn make_parents(
    root: &Root,
    lowers: &[PathBuf],
    parent: &Path,
    resolver: Resolver,
) -> Result<OwnedFd> {
    let mut srcs: Vec<Root> = Vec::new();
    let mut prefix = PathBuf::new();
    for c in parent.components() {
        prefix.push(c);
        if let Some((_, _, st)) = lookup(root, &prefix)?
            && FileType::from_raw_mode(st.st_mode) == FileType::Directory
        {
            continue;
        }
        if srcs.is_empty() {
            for l in lowers.iter().rev() {
                srcs.push(
                    Root::open_with(l, resolver)
                        .with_context(|| format!("opening snapshot {}", l.display()))?,
                );
            }
        }
        // Missing here (or a symlink/other node: mkdirat reports it, as mkdir -p would).
        let (p, n) = root.parent(&prefix, false)?;
        match rustix::fs::mkdirat(&p, n.as_os_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(Errno::EXIST) => bail!("{} exists and is not a directory", prefix.display()),
            Err(e) => return Err(io::Error::from(e).into()),
        }
        let dfd = rustix::fs::openat(
            &p,
            n.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for src in &srcs {
            if let Ok(sfd) = src.open_path(&prefix, OFlags::RDONLY | OFlags::DIRECTORY) {
                apply_meta_fd(dfd.as_fd(), &rustix::fs::fstat(&sfd)?)?;
                break;
            }
        }
    }
    root.open_path(parent, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(Into::into)
}

fn ts(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::time::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::time::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

fn apply_meta_fd(fd: BorrowedFd<'_>, st: &Stat) -> io::Result<()> {
    if rustix::process::geteuid().is_root() {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
        )?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    rustix::fs::futimens(fd, &ts(st))?;
    Ok(())
}

fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = vec![0u8; 64 * 1024];
    let n = match rustix::fs::flistxattr(src, &mut names[..]) {
        Ok(n) => n,
        Err(Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        // Overlay's own markers belong to the snapshot they are in, never copied.
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let mut val = vec![0u8; 64 * 1024];
        let len = rustix::fs::fgetxattr(src, name, &mut val[..])?;
        rustix::fs::fsetxattr(dst, name, &val[..len], XattrFlags::empty())?;
    }
    Ok(())
}

/// Copy one non-directory node `sp/sn` (stat `st`) to `dp/dn`.
fn copy_node(
    sp: BorrowedFd<'_>,
    sn: &OsStr,
    st: &Stat,
    dp: BorrowedFd<'_>,
    dn: &OsStr,
) -> io::Result<()> {
    let root = rustix::process::geteuid().is_root();
    let (u, g) = (
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    );
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let src = rustix::fs::openat(
                sp,
                sn,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let dst = rustix::fs::openat(
                dp,
                dn,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            // Reflink when the filesystem can share extents; a byte copy otherwise.
            if rustix::fs::ioctl_ficlone(&dst, &src).is_err() {
                let mut s = std::fs::File::from(src.try_clone()?);
                let mut d = std::fs::File::from(dst.try_clone()?);
                io::copy(&mut s, &mut d)?;
            }
            if root {
                rustix::fs::fchown(&dst, u, g)?;
            }
            // After the chown, which clears security.capability; from the
            // source fd already open rather than opening it again.
            copy_xattrs(src.as_fd(), dst.as_fd())?;
            rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
            rustix::fs::futimens(&dst, &ts(st))?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(sp, sn, Vec::new())?;
            rustix::fs::symlinkat(OsStr::from_bytes(target.as_bytes()), dp, dn)?;
            if root {
                rustix::fs::chownat(dp, dn, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            rustix::fs::utimensat(dp, dn, &ts(st), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        ft @ (FileType::CharacterDevice
        | FileType::BlockDevice
        | FileType::Fifo
        | FileType::Socket) => {
            rustix::fs::mknodat(dp, dn, ft, Mode::from_raw_mode(0o600), st.st_rdev)?;
            if root {
                rustix::fs::chownat(dp, dn, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            rustix::fs::chmodat(
                dp,
                dn,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                AtFlags::empty(),
            )?;
            rustix::fs::utimensat(dp, dn, &ts(st), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        other => return Err(io::Error::other(format!("cannot copy file type {other:?}"))),
    }
    Ok(())
}

/// Merge overlay snapshots (bottom → top) into the plain directory `target`,
/// applying whiteouts (char 0:0) and opaque markers, keeping hardlinks that
/// are within one snapshot.
pub fn flatten_snapshots(lowers: &[PathBuf], target: &Path, resolver: Resolver) -> Result<()> {
    let troot = Root::open_with(target, resolver)?;
    for lower in lowers {
        let src = rustix::fs::open(
            lower,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening snapshot {}", lower.display()))?;
        let dst = troot.open_path(Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut links = HashMap::new();
        merge(
            src.as_fd(),
            dst.as_fd(),
            &troot,
            PathBuf::new(),
            Some(&mut links),
            0,
        )
        .with_context(|| format!("flattening snapshot {}", lower.display()))?;
    }
    Ok(())
}

/// [`flatten_snapshots`] of the one snapshot `src` over `target`, on the
/// same filesystem, moving its files rather than copying them: `src` is
/// left with its directories only.
pub(crate) fn move_snapshot_over(src: &Path, target: &Path, resolver: Resolver) -> Result<()> {
    let troot = Root::open_with(target, resolver)?;
    let s = rustix::fs::open(
        src,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", src.display()))?;
    let dst = troot.open_path(Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)?;
    merge(s.as_fd(), dst.as_fd(), &troot, PathBuf::new(), None, 0)
        .with_context(|| format!("moving {} over {}", src.display(), target.display()))
}

/// Merges `src` over `dst`: copies its files, keeping hardlinks within it
/// through `links`; or, without `links`, moves them (a rename keeps an
/// inode's names linked).
fn merge(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    troot: &Root,
    rel: PathBuf,
    mut links: Option<&mut HashMap<(u64, u64), PathBuf>>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!("directory tree too deep to copy at {}", rel.display());
    }
    for name in list_dir(src)? {
        let st =
            rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
        let child_rel = rel.join(&name);
        if is_whiteout(&st) {
            remove_all_at(dst, &name)?;
            continue;
        }
        let existing = lstat_at(dst, &name)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            match existing {
                Some(e) if FileType::from_raw_mode(e.st_mode) == FileType::Directory => {
                    if is_opaque(src, &name) {
                        let d = rustix::fs::openat(
                            dst,
                            &name,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?;
                        for c in list_dir(d.as_fd())? {
                            remove_all_at(d.as_fd(), &c)?;
                        }
                    }
                }
                Some(_) => {
                    remove_all_at(dst, &name)?;
                    rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700))
                        .map_err(io::Error::from)?;
                }
                None => rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700))
                    .map_err(io::Error::from)?,
            }
            let s = rustix::fs::openat(
                src,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let d = rustix::fs::openat(
                dst,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            merge(
                s.as_fd(),
                d.as_fd(),
                troot,
                child_rel,
                links.as_deref_mut(),
                depth + 1,
            )?;
            copy_xattrs(s.as_fd(), d.as_fd())?;
            apply_meta_fd(d.as_fd(), &st)?;
            continue;
        }
        if existing.is_some() {
            remove_all_at(dst, &name)?;
        }
        let Some(links) = links.as_deref_mut() else {
            rustix::fs::renameat(src, &name, dst, &name).map_err(io::Error::from)?;
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = links.get(&key)
                && let Ok((p, n)) = troot.parent(first, false)
            {
                rustix::fs::linkat(&p, n.as_os_str(), dst, &name, AtFlags::empty())
                    .map_err(io::Error::from)?;
                continue;
            }
            links.insert(key, child_rel.clone());
        }
        copy_node(src, &name, &st, dst, &name)?;
    }
    Ok(())
}
