//! Path resolution inside a root directory that can never leave it.
//!
//! Every path handed to [`Root`] is resolved as if the root were `/`: absolute
//! symlinks restart at the root, `..` stops at the root, and no step is ever
//! taken through a host path string. The kernel does this for us with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`; on kernels without
//! openat2 (ENOSYS) a userspace walk does the same thing one component at a
//! time with `O_NOFOLLOW`, reading each symlink itself and keeping the chain of
//! directory fds so that `..` never touches the real parent of a directory.
//!
//! Why our own code rather than pathrs: pathrs does the same job well, but its
//! fallback is not forceable per call and its errors and mkdir semantics differ
//! from what layer unpacking needs (create missing parents as real dirs, refuse
//! a dangling symlink as parent). The code is small enough that owning it and
//! running every test through both resolvers is the safer trade.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Linux' own limit on symlinks followed in one lookup (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Set once openat2 has returned ENOSYS so later lookups skip straight to the walk.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// Which resolver a [`Root`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// openat2 when the kernel has it, the userspace walk otherwise.
    #[default]
    Auto,
    /// Always the userspace walk (tests use it to cover the fallback).
    Fallback,
}

/// A directory that paths are resolved inside of.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    resolver: Resolver,
}

impl Root {
    /// Open `path` (a host path, trusted) as a root.
    pub fn open(path: &Path) -> io::Result<Root> {
        Self::open_with(path, Resolver::Auto)
    }

    /// Open `path` as a root using a specific resolver.
    pub fn open_with(path: &Path, resolver: Resolver) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd, resolver })
    }

    /// The root directory's own fd (O_PATH).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The resolver in use.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Open `path` inside the root, following symlinks (clamped to the root).
    /// `flags` are applied to the final open; O_CLOEXEC is always added.
    pub fn open_path(&self, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        if self.resolver == Resolver::Auto && !OPENAT2_MISSING.load(Ordering::Relaxed) {
            match openat2_in_root(self.fd.as_fd(), path, flags) {
                Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
                    OPENAT2_MISSING.store(true, Ordering::Relaxed);
                }
                // `..` under RESOLVE_IN_ROOT fails with EAGAIN while any
                // mount or rename happens on the host, which on a busy one
                // may be always: the walk does the same without that check.
                Err(e) if e.raw_os_error() == Some(Errno::AGAIN.raw_os_error()) => {}
                other => return other,
            }
        }
        walk(self.fd.as_fd(), path, flags)
    }

    /// Read the regular file at `path` (symlinks followed inside the root),
    /// at most `max` bytes of it; `None` when there is no such file.
    ///
    /// The file is only looked at (O_PATH) until fstat shows it is a regular
    /// file: a FIFO would block a read forever and opening a device can act
    /// on hardware (a watchdog starts ticking when opened). The reading open
    /// adds O_NONBLOCK|O_NOCTTY and must land on the same inode.
    pub fn read_file(&self, path: &Path, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let fd = match self.open_path(path, OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::Io(e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(ReadError::NotRegular);
        }
        if st.st_size as u64 > max {
            return Err(ReadError::TooLarge(max));
        }
        let file = self
            .open_path(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
            .map_err(ReadError::Io)?;
        let again = rustix::fs::fstat(&file).map_err(|e| ReadError::Io(e.into()))?;
        if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
            return Err(ReadError::NotRegular);
        }
        let mut data = Vec::new();
        // Bounded even if the file grows after the fstat.
        io::Read::read_to_end(
            &mut io::Read::take(std::fs::File::from(file), max + 1),
            &mut data,
        )
        .map_err(ReadError::Io)?;
        if data.len() as u64 > max {
            return Err(ReadError::TooLarge(max));
        }
        Ok(Some(data))
    }

    /// Open the directory at `path` (O_PATH), following symlinks in the root.
    pub fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        self.open_path(path, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Create every missing directory of `path` (mode 0755, like `mkdir -p`),
    /// following symlinks in the root, and return the final directory (O_PATH).
    /// A dangling symlink on the way is an error, never a dir created elsewhere.
    pub fn mkdir_all(&self, path: &Path) -> io::Result<OwnedFd> {
        match self.open_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let comps = normal_components(path)?;
        // Find the deepest existing ancestor by bisection (existence of
        // prefixes is monotonic), so a deep path costs O(log n) lookups.
        let (mut lo, mut hi) = (0usize, comps.len());
        let mut cur = self.open_dir(Path::new("."))?;
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            let prefix: PathBuf = comps[..mid].iter().collect();
            match self.open_dir(&prefix) {
                Ok(fd) => {
                    lo = mid;
                    cur = fd;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => hi = mid,
                Err(e) => return Err(e),
            }
        }
        let have = lo;
        for (i, comp) in comps.iter().enumerate().skip(have) {
            match rustix::fs::mkdirat(&cur, comp.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                // It exists yet did not resolve: a symlink to nowhere.
                Err(Errno::EXIST) => {
                    let shown: PathBuf = comps[..=i].iter().collect();
                    return Err(io::Error::other(format!(
                        "{} is a dangling symlink",
                        shown.display()
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            // We just made it a directory: open it without following anything.
            cur = rustix::fs::openat(
                &cur,
                comp.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
        }
        Ok(cur)
    }

    /// `mkdir -p` as a runtime needs it for a working directory or mount
    /// point (runc's MkdirAllInRoot): like [`Root::mkdir_all`], except that a
    /// dangling symlink on the way is followed, inside the root like every
    /// other one, and what it points at is created. Returns the final
    /// directory (O_PATH).
    pub fn mkdir_all_following(&self, path: &Path) -> io::Result<OwnedFd> {
        let mut todo = path.to_path_buf();
        for _ in 0..=MAX_SYMLINKS {
            match self.mkdir_all_once(&todo)? {
                Ok(fd) => return Ok(fd),
                Err(next) => todo = next,
            }
        }
        Err(Errno::LOOP.into())
    }

    /// One pass of [`Root::mkdir_all_following`]: the directory, or the path
    /// to try next when a dangling symlink redirected the walk. Each step
    /// resolves the whole prefix again in the root, so `..` in a link
    /// target means the real parent, as the kernel would take it.
    fn mkdir_all_once(&self, path: &Path) -> io::Result<Result<OwnedFd, PathBuf>> {
        let comps: Vec<&OsStr> = path
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
            .map(|c| c.as_os_str())
            .collect();
        let mut cur = PathBuf::from(".");
        let mut fd = self.open_dir(&cur)?;
        for (i, comp) in comps.iter().enumerate() {
            let parent = cur.clone();
            cur.push(comp);
            fd = match self.open_dir(&cur) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&fd, *comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            // There yet not found: a symlink to nowhere (so far).
                            let target = rustix::fs::readlinkat(&fd, *comp, Vec::new())?;
                            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                            let mut next = parent.join(target);
                            next.extend(&comps[i + 1..]);
                            return Ok(Err(next));
                        }
                        Err(e) => return Err(e.into()),
                    }
                    rustix::fs::openat(
                        &fd,
                        *comp,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(Ok(fd))
    }

    /// Resolve the parent of `path` (creating missing parents when `create`)
    /// and return it with the final component, which is NOT resolved: the
    /// caller acts on it with *at calls that do not follow symlinks.
    /// `path` must be normalised (see [`clean`]) and not be the root itself.
    pub fn parent(&self, path: &Path, create: bool) -> io::Result<(OwnedFd, OsString)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no final name"))?
            .to_os_string();
        let parent = path.parent().unwrap_or(Path::new(""));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let fd = if create {
            self.mkdir_all(parent)?
        } else {
            self.open_dir(parent)?
        };
        Ok((fd, name))
    }
}

/// Why [`Root::read_file`] gave no content.
#[derive(Debug)]
pub enum ReadError {
    /// A FIFO, device, socket or directory.
    NotRegular,
    /// Larger than the limit given (bytes).
    TooLarge(u64),
    /// Resolving, opening or reading failed.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotRegular => f.write_str("is not a regular file"),
            ReadError::TooLarge(max) if max % (1 << 20) == 0 => {
                write!(f, "is larger than {} MiB", max >> 20)
            }
            ReadError::TooLarge(max) => write!(f, "is larger than {max} bytes"),
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

fn normal_components(path: &Path) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: '..' not allowed here", path.display()),
                ));
            }
        }
    }
    Ok(out)
}

/// The runtime has its own bare openat2 (berth-runtime's `sys::openat2`,
/// for mount targets in the set-up child, with no fallback): see there why
/// it does not use this resolver.
fn openat2_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    // EAGAIN: a concurrent rename somewhere in the tree; the kernel asks us to retry.
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            root,
            path,
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) if tries < 32 => tries += 1,
            r => return r.map_err(Into::into),
        }
    }
}

/// Resolve `path` component by component below `root`, never following a
/// symlink with the kernel and never opening `..`.
pub(crate) fn walk(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let follow_last = !flags.contains(OFlags::NOFOLLOW);
    // Pending components, front = next. Symlink targets are spliced in front.
    let mut pending: std::collections::VecDeque<OsString> = split(path.as_os_str());
    // Directory chain from the root: `..` pops, never below the root.
    let mut chain: Vec<OwnedFd> = vec![rustix::fs::openat(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?];
    let mut links = 0usize;
    while let Some(comp) = pending.pop_front() {
        if comp == "." || comp.is_empty() {
            continue;
        }
        if comp == ".." {
            if chain.len() > 1 {
                chain.pop();
            }
            continue;
        }
        let last = pending.iter().all(|c| c.is_empty() || c == ".");
        let cur = chain.last().expect("chain always holds the root");
        let fd = rustix::fs::openat(
            cur,
            comp.as_os_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Symlink && (!last || follow_last) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::LOOP.into());
            }
            let target = rustix::fs::readlinkat(cur, comp.as_os_str(), Vec::new())?;
            let target = OsStr::from_bytes(target.as_bytes()).to_os_string();
            if target.as_bytes().starts_with(b"/") {
                chain.truncate(1);
            }
            for (i, c) in split(&target).into_iter().enumerate() {
                pending.insert(i, c);
            }
            continue;
        }
        if last {
            if ft == FileType::Symlink {
                // NOFOLLOW asked for and the last component is a symlink: open it as is.
                return reopen(cur, &comp, flags);
            }
            return reopen(cur, &comp, flags);
        }
        if ft != FileType::Directory {
            return Err(Errno::NOTDIR.into());
        }
        chain.push(fd);
    }
    // Path was empty or ended in `.`/`..`: the directory we stand in.
    let cur = chain.last().expect("chain always holds the root");
    reopen(cur, OsStr::new("."), flags)
}

fn reopen(dir: &OwnedFd, name: &OsStr, flags: OFlags) -> io::Result<OwnedFd> {
    // O_NOFOLLOW: if the name was swapped for a symlink since we looked, fail rather than follow.
    let flags = if name == "." {
        flags
    } else {
        flags | OFlags::NOFOLLOW
    };
    let flags = if flags.contains(OFlags::PATH) {
        flags & (OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC)
    } else {
        flags
    };
    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(Into::into)
}

fn split(p: &OsStr) -> std::collections::VecDeque<OsString> {
    p.as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsStr::from_bytes(c).to_os_string())
        .collect()
}

/// Normalise a path from a layer: strip leading `/` and `./` (absolute names
/// are taken as relative to the root, like Docker and containerd do), drop
/// `.` components and fold `a/..`. A `..` that would climb above the root is
/// refused: no legitimate layer needs it and refusing names the bad entry.
pub fn clean(raw: &[u8]) -> Result<PathBuf, String> {
    // PATH_MAX: longer names cannot be used by anything in the container, and
    // bounding them bounds the work per entry.
    if raw.len() >= 4096 {
        return Err(format!(
            "path of {} bytes is longer than PATH_MAX",
            raw.len()
        ));
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path climbs above the root with '..'".into());
                }
            }
            c => out.push(c),
        }
    }
    if raw.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    let mut p = PathBuf::new();
    for c in out {
        p.push(OsStr::from_bytes(c));
    }
    Ok(p)
}
