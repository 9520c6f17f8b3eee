//! An OCI layer tar from an overlay upper directory, for `commit`: what a
//! container changed, in the form every applier reads.
//!
//! - overlayfs whiteouts (char devices 0:0) become `.wh.<name>` entries;
//!   an opaque directory (`trusted.overlay.opaque` or, rootless,
//!   `user.overlay.opaque`) becomes its entry plus `<dir>/.wh..wh..opq`;
//! - entries come depth first, names sorted bytewise, so the same tree
//!   gives the same bytes; hardlinked files are stored once and linked;
//! - modes, owners, mtimes and xattrs (PAX `SCHILY.xattr.*`) are kept,
//!   overlayfs's own xattrs are not; sockets are left out, as Docker does.
//!
//! The upper dir may belong to a running container: every entry is opened
//! beneath the dir's own fd with no symlink followed (openat2) and a file
//! is read only after fstat of the opened inode says it is a regular one,
//! so a name swapped for a link or a FIFO never leads anywhere.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use tar::{EntryType, Header};

/// Entries written at most: a layer of more is refused, not written on.
const MAX_ENTRIES: u64 = 10_000_000;

/// What [`write_upper`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpperReport {
    pub entries: u64,
    pub whiteouts: u64,
    /// Entries the layer does not hold as the upper dir has them: sockets
    /// (left out), and overlayfs's redirected directories and metacopy
    /// files. With none, the upper dir is the layer's snapshot as it is.
    pub not_in_layer: u64,
}

/// How [`write_upper_with`] writes a layer.
#[derive(Debug, Default, Clone, Copy)]
pub struct UpperOptions<'a> {
    /// Top-level relative paths left out (what the engine itself puts in
    /// every container's upper dir).
    pub skip: &'a [&'a str],
    /// Every mtime later than this (seconds since the epoch) written as
    /// this: BuildKit's rewrite-timestamp for `SOURCE_DATE_EPOCH`, so the
    /// same tree gives the same bytes whenever it was made.
    pub mtime_max: Option<u64>,
}

/// Write the layer tar of `upper` to `out`, leaving out the top-level
/// relative paths in `skip` (what the engine itself puts in every
/// container's upper dir). Returns `out` with the tar finished.
pub fn write_upper<W: Write>(upper: &Path, skip: &[&str], out: W) -> Result<(W, UpperReport)> {
    let opts = UpperOptions {
        skip,
        mtime_max: None,
    };
    write_upper_with(upper, &opts, out)
}

/// [`write_upper`] with every option.
pub fn write_upper_with<W: Write>(
    upper: &Path,
    opts: &UpperOptions<'_>,
    out: W,
) -> Result<(W, UpperReport)> {
    let skip = opts.skip;
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let root = rustix::fs::open(upper, dir_flags, Mode::empty())
        .with_context(|| format!("open {}", upper.display()))?;
    let mut w = Walk {
        root,
        tar: tar::Builder::new(out),
        links: HashMap::new(),
        report: UpperReport::default(),
        mtime_max: opts.mtime_max,
    };
    let mut todo = w.children(Path::new(""))?;
    while let Some(rel) = todo.pop() {
        if skip.iter().any(|s| rel == Path::new(s)) {
            continue;
        }
        w.report.entries += 1;
        if w.report.entries > MAX_ENTRIES {
            bail!("more than {MAX_ENTRIES} changed entries: too many for a layer");
        }
        if w.entry(&rel)? {
            todo.extend(w.children(&rel)?);
        }
    }
    let report = w.report;
    let out = w.tar.into_inner().context("finish the layer tar")?;
    Ok((out, report))
}

struct Walk<W: Write> {
    root: OwnedFd,
    tar: tar::Builder<W>,
    /// (dev, ino) of files with several links → the name stored first.
    links: HashMap<(u64, u64), PathBuf>,
    report: UpperReport,
    mtime_max: Option<u64>,
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

impl<W: Write> Walk<W> {
    fn open(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let at = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        Ok(rustix::fs::openat2(
            &self.root,
            at,
            flags,
            Mode::empty(),
            beneath(),
        )?)
    }

    /// The entries of directory `rel`, sorted so the stack pops them in
    /// order. Gone since it was listed: none.
    fn children(&self, rel: &Path) -> Result<Vec<PathBuf>> {
        let Ok(fd) = self.open(rel, OFlags::RDONLY | OFlags::DIRECTORY) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(&fd)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort_unstable_by(|a, b| b.cmp(a));
        Ok(names
            .into_iter()
            .map(|n| rel.join(OsStr::from_bytes(&n)))
            .collect())
    }

    /// Write the entry for `rel`; true when it is a directory to descend.
    fn entry(&mut self, rel: &Path) -> Result<bool> {
        let Ok(fd) = self.open(rel, OFlags::PATH) else {
            return Ok(false); // gone since it was listed
        };
        let st = rustix::fs::fstat(&fd)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut h = Header::new_ustar();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid.into());
        h.set_gid(st.st_gid.into());
        let mtime = st.st_mtime.max(0) as u64;
        h.set_mtime(self.mtime_max.map_or(mtime, |m| mtime.min(m)));
        h.set_size(0);
        match ft {
            FileType::CharacterDevice if st.st_rdev == 0 => {
                let name = rel.file_name().unwrap_or_default().as_bytes();
                let wh = rel.with_file_name(OsStr::from_bytes(&[b".wh.", name].concat()));
                self.report.whiteouts += 1;
                self.marker(&wh, &h)?;
                Ok(false)
            }
            FileType::Directory => {
                let dir = self.open(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let raw = xattrs_raw(&dir);
                self.report.not_in_layer += u64::from(overlay_private(&raw));
                let xattrs = layer_xattrs(raw.clone());
                h.set_entry_type(EntryType::Directory);
                self.append(rel, &mut h, &xattrs, io::empty())?;
                if opaque(&raw) {
                    self.marker(&rel.join(".wh..wh..opq"), &h)?;
                }
                Ok(true)
            }
            FileType::RegularFile => {
                self.file(rel, &mut h, &st)?;
                Ok(false)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
                h.set_entry_type(EntryType::Symlink);
                self.tar
                    .append_link(&mut h, rel, OsStr::from_bytes(target.to_bytes()))?;
                Ok(false)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                h.set_entry_type(match ft {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                let dev = st.st_rdev;
                h.set_device_major(rustix::fs::major(dev))?;
                h.set_device_minor(rustix::fs::minor(dev))?;
                self.append(rel, &mut h, &[], io::empty())?;
                Ok(false)
            }
            _ => {
                // Sockets: not content.
                self.report.not_in_layer += 1;
                Ok(false)
            }
        }
    }

    /// A regular file: its bytes, or a link to the name it was stored
    /// under already.
    fn file(&mut self, rel: &Path, h: &mut Header, st: &rustix::fs::Stat) -> Result<()> {
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                self.tar.append_link(h, rel, &first)?;
                return Ok(());
            }
            self.links.insert(key, rel.to_path_buf());
        }
        let fd = self.open(rel, OFlags::RDONLY)?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            bail!("{}: changed while it was read", rel.display());
        }
        let raw = xattrs_raw(&fd);
        self.report.not_in_layer += u64::from(overlay_private(&raw));
        let xattrs = layer_xattrs(raw);
        h.set_entry_type(EntryType::Regular);
        h.set_size(st.st_size as u64);
        let file = std::fs::File::from(fd);
        // Large reads: a big file in few syscalls.
        let cap = (st.st_size as usize).clamp(8 * 1024, 1024 * 1024);
        // A file that grows meanwhile is cut at the size in its header;
        // one that shrinks is an error (the tar would be short).
        let mut body = io::BufReader::with_capacity(cap, file).take(st.st_size as u64);
        self.append(rel, h, &xattrs, &mut body)
    }

    /// An empty marker entry (`.wh.` name) with `like`'s owner and mtime.
    fn marker(&mut self, path: &Path, like: &Header) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(like.uid()?);
        h.set_gid(like.gid()?);
        h.set_mtime(like.mtime()?);
        h.set_size(0);
        self.append(path, &mut h, &[], io::empty())
    }

    /// One entry, after a PAX header for its xattrs when it has any.
    fn append(
        &mut self,
        path: &Path,
        h: &mut Header,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        mut body: impl Read,
    ) -> Result<()> {
        if !xattrs.is_empty() {
            let mut records = Vec::new();
            for (k, v) in xattrs {
                pax_record(&mut records, &[b"SCHILY.xattr.", k.as_slice()].concat(), v);
            }
            let mut x = Header::new_ustar();
            x.set_entry_type(EntryType::XHeader);
            x.set_mode(0o644);
            x.set_size(records.len() as u64);
            x.set_mtime(h.mtime()?);
            self.tar
                .append_data(&mut x, "PaxHeaders.0/entry", records.as_slice())?;
        }
        let want = h.size()?;
        let mut counted = CountingReader {
            inner: &mut body,
            n: 0,
        };
        self.tar
            .append_data(h, path, &mut counted)
            .with_context(|| format!("add {} to the layer", path.display()))?;
        if counted.n != want {
            bail!("{}: changed while it was read", path.display());
        }
        Ok(())
    }
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A PAX record: `<len> <key>=<value>\n`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Every xattr of `fd` with its value, sorted by name.
fn xattrs_raw(fd: &impl AsFd) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::flistxattr(fd, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut v = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::fgetxattr(fd, cname.as_c_str(), &mut v) {
            v.truncate(len);
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    out
}

/// The xattrs that belong in a layer: not overlayfs's own.
fn layer_xattrs(raw: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw.into_iter()
        .filter(|(k, _)| !k.starts_with(b"trusted.overlay.") && !k.starts_with(b"user.overlay."))
        .collect()
}

/// An overlayfs redirect or metacopy mark: the entry means more than it
/// holds (a renamed lower directory, a file whose data is below).
fn overlay_private(raw: &[(Vec<u8>, Vec<u8>)]) -> bool {
    raw.iter().any(|(k, _)| {
        let k = k
            .strip_prefix(b"trusted.overlay.")
            .or_else(|| k.strip_prefix(b"user.overlay."));
        matches!(k, Some(b"redirect" | b"metacopy"))
    })
}

fn opaque(raw: &[(Vec<u8>, Vec<u8>)]) -> bool {
    raw.iter().any(|(k, v)| {
        (k == b"trusted.overlay.opaque" || k == b"user.overlay.opaque") && v.as_slice() == b"y"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_clamped_never_raised() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir/f"), "f").unwrap();
        let mtimes = |max: Option<u64>| -> Vec<u64> {
            let opts = UpperOptions {
                skip: &[],
                mtime_max: max,
            };
            let (tar, _) = write_upper_with(d.path(), &opts, Vec::new()).unwrap();
            tar::Archive::new(tar.as_slice())
                .entries()
                .unwrap()
                .map(|e| e.unwrap().header().mtime().unwrap())
                .collect()
        };
        assert_eq!(mtimes(Some(1_000)), vec![1_000, 1_000]);
        let now = mtimes(None);
        assert!(now.iter().all(|m| *m > 1_000));
        assert_eq!(mtimes(Some(4_000_000_000)), now);
    }

    #[test]
    fn pax_lengths_count_themselves() {
        let mut v = Vec::new();
        pax_record(&mut v, b"k", b"v");
        assert_eq!(v, b"6 k=v\n");
        let mut v = Vec::new();
        pax_record(&mut v, b"SCHILY.xattr.user.x", &[b'a'; 80]);
        let s = String::from_utf8(v.clone()).unwrap();
        let len: usize = s.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, v.len());
    }
}
