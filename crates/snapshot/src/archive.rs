//! A tar stream of one file or directory tree inside a [`Root`], for `cp`
//! out of a container: the path is resolved in the root (its symlinks
//! clamped to it), and nothing below it is ever followed: symlinks go in
//! the stream as symlinks, a directory is walked by fds with `O_NOFOLLOW`,
//! and a file is read only after fstat of the very inode opened says it is
//! a regular file (a FIFO swapped in would block, a device act).
//!
//! Hardlinks are not detected (each name carries its content) and xattrs
//! are not kept: what `cp` needs, not what an image needs.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::resolve::{Root, clean};
use crate::tree::{MAX_DEPTH, list_dir};

/// What a resolved path is, opened as far as writing it needs.
enum Node {
    Dir(OwnedFd),
    File(std::fs::File),
    Link(Vec<u8>),
    /// FIFO or device: a header only. Sockets are left out, as tar does.
    Special,
    Socket,
}

/// What [`stat_path`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// The kind of `path` in `root` (its last component followed when
/// `follow`), or None when there is nothing there.
pub fn stat_path(root: &Root, path: &Path, follow: bool) -> io::Result<Option<Kind>> {
    let st = match lookup(root, path, follow) {
        Ok(st) => st,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(Some(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }))
}

fn lookup(root: &Root, path: &Path, follow: bool) -> io::Result<Stat> {
    let path = clean_io(path)?;
    if follow || path.as_os_str().is_empty() {
        let fd = root.open_path(&path, OFlags::PATH)?;
        return Ok(rustix::fs::fstat(&fd)?);
    }
    let (p, n) = root.parent(&path, false)?;
    Ok(rustix::fs::statat(&p, &n, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `path` made relative to the root with `..` folded lexically and never
/// above the root, as Docker's `filepath.Clean` of a container path is
/// (the root is `/`: `/..` is `/`).
fn clean_io(path: &Path) -> io::Result<std::path::PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.as_os_str().as_bytes().split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    clean(&parts.join(&b'/')).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))
}

/// Writes `path` of `root` (its last component followed when `follow`,
/// `..` stopping at the root) to `out` as a tar stream whose first entry
/// is named `name` (a directory's entries below it). The stream is
/// finished (end-of-archive blocks written).
pub fn write_archive(
    root: &Root,
    path: &Path,
    follow: bool,
    name: &Path,
    out: impl Write,
) -> Result<()> {
    write_archive_pruned(root, path, follow, name, out, &|_, _| false)
}

/// [`write_archive`] without what `pruned(name, is_dir)` says to leave
/// out: an entry below the first, and for a directory everything in it,
/// never read nor walked (a build's `.dockerignore`).
pub fn write_archive_pruned(
    root: &Root,
    path: &Path,
    follow: bool,
    name: &Path,
    out: impl Write,
    pruned: &dyn Fn(&Path, bool) -> bool,
) -> Result<()> {
    let cleaned = clean_io(path)?;
    let (st, node) = if follow || cleaned.as_os_str().is_empty() {
        open_followed(root, &cleaned)?
    } else {
        let (p, n) = root.parent(&cleaned, false)?;
        open_at(p.as_fd(), &n)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?
    };
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    emit(&mut tar, name, &st, node, 0, pruned)?;
    tar.finish().context("writing the tar stream")?;
    Ok(())
}

/// `path` resolved in the root with its last symlink followed (in the root).
fn open_followed(root: &Root, path: &Path) -> io::Result<(Stat, Node)> {
    let fd = root.open_path(path, OFlags::PATH)?;
    let st = rustix::fs::fstat(&fd)?;
    let node = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Node::Dir(same(
            root.open_path(path, OFlags::RDONLY | OFlags::DIRECTORY)?,
            &st,
        )?),
        FileType::RegularFile => Node::File(std::fs::File::from(same(
            root.open_path(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?,
            &st,
        )?)),
        FileType::Socket => Node::Socket,
        _ => Node::Special,
    };
    Ok((st, node))
}

/// `fd` if it is the inode `st` describes: a name swapped meanwhile fails.
fn same(fd: OwnedFd, st: &Stat) -> io::Result<OwnedFd> {
    let again = rustix::fs::fstat(&fd)?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(io::Error::other("changed while it was being copied"));
    }
    Ok(fd)
}

/// `dir/name`, never followed; None when it is gone.
fn open_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<(Stat, Node)>> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let node = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Node::Dir(same(
            rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | nofollow,
                Mode::empty(),
            )?,
            &st,
        )?),
        FileType::RegularFile => Node::File(std::fs::File::from(same(
            rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | nofollow,
                Mode::empty(),
            )?,
            &st,
        )?)),
        FileType::Symlink => {
            Node::Link(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
        }
        FileType::Socket => Node::Socket,
        _ => Node::Special,
    };
    Ok(Some((st, node)))
}

fn header(st: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn emit<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &Path,
    st: &Stat,
    node: Node,
    depth: usize,
    pruned: &dyn Fn(&Path, bool) -> bool,
) -> Result<()> {
    let written = |r: io::Result<()>| r.with_context(|| format!("archiving {}", name.display()));
    match node {
        Node::Socket => Ok(()),
        Node::Special => {
            let ft = FileType::from_raw_mode(st.st_mode);
            let kind = match ft {
                FileType::Fifo => tar::EntryType::Fifo,
                FileType::CharacterDevice => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            };
            let mut h = header(st, kind);
            if ft != FileType::Fifo {
                h.set_device_major(rustix::fs::major(st.st_rdev))?;
                h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
            }
            written(tar.append_data(&mut h, name, io::empty()))
        }
        Node::Link(target) => {
            let mut h = header(st, tar::EntryType::Symlink);
            written(tar.append_link(&mut h, name, OsStr::from_bytes(&target)))
        }
        Node::File(file) => {
            let size = st.st_size.max(0) as u64;
            let mut h = header(st, tar::EntryType::Regular);
            h.set_size(size);
            written(tar.append_data(&mut h, name, exactly(file, size)))
        }
        Node::Dir(fd) => {
            if depth > MAX_DEPTH {
                bail!("{}: directory tree deeper than {MAX_DEPTH}", name.display());
            }
            let mut h = header(st, tar::EntryType::Directory);
            written(tar.append_data(&mut h, name, io::empty()))?;
            let mut children: Vec<OsString> = list_dir(fd.as_fd())?;
            children.sort();
            for c in children {
                // Gone since it was listed: a running container's churn.
                if let Some((cst, cnode)) = open_at(fd.as_fd(), &c)? {
                    let child = name.join(&c);
                    let is_dir = FileType::from_raw_mode(cst.st_mode) == FileType::Directory;
                    if !pruned(&child, is_dir) {
                        emit(tar, &child, &cst, cnode, depth + 1, pruned)?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Exactly `size` bytes of `file`: cut when it grew since its stat, padded
/// with zeros when it shrank (a tar entry's size is fixed by its header).
fn exactly(file: std::fs::File, size: u64) -> impl Read {
    file.take(size).chain(io::repeat(0)).take(size)
}
