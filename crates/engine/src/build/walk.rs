//! A COPY's files from the build context: walked once for the cache key
//! (names, kinds, modes, owners, link targets and content digests, never
//! mtimes; a digest from the context's stat cache when the file is unchanged), and
//! once more, only on a miss, as the tar stream that lands in the step.
//!
//! A source is resolved in the context's root (its own symlinks followed
//! inside the context); nothing below it is followed: a directory is
//! walked by fds opened with `O_NOFOLLOW`, a symlink is copied as one, and
//! a file is read only after fstat of the inode opened shows it is the
//! regular file the walk saw. What `.dockerignore` excludes is never read,
//! nor an excluded directory walked unless an exception may take
//! something below it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context as _, Result, anyhow, bail};
use berth_image::digest::Hasher;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use super::copy::{Context, Meta};
use super::ignore::Ignore;
use super::statcache::Seen;

/// Deeper source trees are refused rather than walked without end.
const MAX_DEPTH: usize = 1024;

/// One entry of a source, named as it lands.
struct Entry<'a> {
    /// Its path in the image, relative to `/`.
    target: String,
    /// Its path in the context.
    rel: String,
    st: Stat,
    kind: Kind,
    /// Where it is opened from: its directory's fd, or the context's root.
    at: At<'a>,
}

enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
    Fifo,
    Char,
    Block,
}

enum At<'a> {
    Dir(BorrowedFd<'a>, OsString),
    Root(&'a Context, String),
}

impl Entry<'_> {
    /// The file opened for reading, if it is still the inode walked.
    fn open(&self) -> Result<std::fs::File> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match &self.at {
            At::Dir(dir, name) => {
                rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(io::Error::from)
            }
            At::Root(ctx, path) => ctx.root().open_path(Path::new(path), flags),
        }
        .with_context(|| format!("open {}", self.rel))?;
        let now = rustix::fs::fstat(&fd)?;
        if (now.st_dev, now.st_ino) != (self.st.st_dev, self.st.st_ino) {
            bail!("{} changed while it was being copied", self.rel);
        }
        Ok(std::fs::File::from(fd))
    }

    /// What the key takes of it besides its content.
    fn line(&self, meta: Meta, digest: &str) -> String {
        let (uid, gid) = meta.owner.unwrap_or((self.st.st_uid, self.st.st_gid));
        let mode = meta.mode.unwrap_or(self.st.st_mode & 0o7777);
        let (kind, link) = match &self.kind {
            Kind::Dir => ("dir", &b""[..]),
            Kind::File => ("file", &b""[..]),
            Kind::Symlink(l) => ("symlink", l.as_slice()),
            Kind::Fifo => ("fifo", &b""[..]),
            Kind::Char => ("char", &b""[..]),
            Kind::Block => ("block", &b""[..]),
        };
        format!(
            "{}\0{kind}\0{mode:o}\0{uid}\0{gid}\0{}\0{}\0{}\0{digest}\n",
            self.target,
            String::from_utf8_lossy(link),
            self.size(),
            self.st.st_rdev
        )
    }

    fn size(&self) -> u64 {
        match self.kind {
            Kind::File => self.st.st_size.max(0) as u64,
            _ => 0,
        }
    }
}

/// What the key took of a file: its content digest and, when its stat
/// had settled (see [`Seen::settled`]), that stat: a file still seen so
/// when it is copied holds those bytes.
pub struct Known {
    digest: String,
    settled: Option<Seen>,
}

/// What the key took of every file `srcs` (context paths) copies, by
/// context path, and the hash of the whole copy as it lands at `dest`:
/// what the cache keys a COPY on. Unchanged files are not read.
pub fn digest(
    ctx: &Context,
    srcs: &[String],
    exclude: &Ignore,
    dest: (&str, bool),
    meta: Meta,
) -> Result<(String, HashMap<String, Known>)> {
    let mut stat = ctx.stat.lock().unwrap_or_else(|e| e.into_inner());
    let mut hasher = Hasher::new();
    let mut files = HashMap::new();
    walk(ctx, srcs, exclude, dest, &mut |e| {
        let digest = match e.kind {
            Kind::File => {
                let d = match stat.get(&e.rel, &e.st) {
                    Some(d) => d,
                    None => {
                        let read_at = SystemTime::now();
                        let mut h = Hasher::new();
                        io::copy(&mut exactly(e.open()?, e.size()), &mut HashWriter(&mut h))
                            .with_context(|| format!("read {}", e.rel))?;
                        let d = h.finish().to_string();
                        stat.put(&e.rel, &e.st, &d, read_at);
                        d
                    }
                };
                let seen = Seen::of(&e.st);
                let settled = seen.settled(SystemTime::now()).then_some(seen);
                let known = Known {
                    digest: d.clone(),
                    settled,
                };
                files.insert(e.rel.clone(), known);
                d
            }
            _ => String::new(),
        };
        hasher.update(e.line(meta, &digest).as_bytes());
        Ok(())
    })?;
    Ok((hasher.finish().to_string(), files))
}

/// The copy as a tar stream into `out`, each file checked against what
/// [`digest`] took of it (its settled stat unchanged before and after it
/// is read, else its bytes hashed again): a context changed in between
/// fails the step rather than cache what its key does not say.
pub fn write_tar(
    ctx: &Context,
    srcs: &[String],
    exclude: &Ignore,
    dest: (&str, bool),
    meta: Meta,
    known: &HashMap<String, Known>,
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    walk(ctx, srcs, exclude, dest, &mut |e| {
        let mut h = tar::Header::new_gnu();
        let (uid, gid) = meta.owner.unwrap_or((e.st.st_uid, e.st.st_gid));
        h.set_mode(meta.mode.unwrap_or(e.st.st_mode & 0o7777));
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(e.st.st_mtime.max(0) as u64);
        h.set_size(0);
        let kind = match &e.kind {
            Kind::Dir => tar::EntryType::Directory,
            Kind::File => tar::EntryType::Regular,
            Kind::Symlink(l) => {
                h.set_entry_type(tar::EntryType::Symlink);
                let l = std::ffi::OsStr::from_bytes(l);
                return Ok(tar.append_link(&mut h, &e.target, l)?);
            }
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
        };
        h.set_entry_type(kind);
        if matches!(e.kind, Kind::Char | Kind::Block) {
            h.set_device_major(rustix::fs::major(e.st.st_rdev))?;
            h.set_device_minor(rustix::fs::minor(e.st.st_rdev))?;
        }
        if !matches!(e.kind, Kind::File) {
            return Ok(tar.append_data(&mut h, &e.target, io::empty())?);
        }
        h.set_size(e.size());
        let changed = || anyhow!("{} changed while the build read it: build again", e.rel);
        let k = known.get(&e.rel).ok_or_else(changed)?;
        let file = e.open()?;
        let seen = |f: &std::fs::File| -> Result<Seen> { Ok(Seen::of(&rustix::fs::fstat(f)?)) };
        if k.settled.is_some() && k.settled == Some(seen(&file)?) {
            tar.append_data(&mut h, &e.target, exactly(&file, e.size()))
                .with_context(|| format!("copy {}", e.rel))?;
            if k.settled != Some(seen(&file)?) {
                return Err(changed());
            }
            return Ok(());
        }
        let mut hasher = Hasher::new();
        let body = Hashing {
            inner: exactly(&file, e.size()),
            hasher: &mut hasher,
        };
        tar.append_data(&mut h, &e.target, body)
            .with_context(|| format!("copy {}", e.rel))?;
        if k.digest != hasher.finish().as_str() {
            return Err(changed());
        }
        Ok(())
    })?;
    tar.into_inner()
        .context("finishing the COPY stream")?
        .flush()?;
    Ok(())
}

/// Visits every entry `srcs` copy, in order: a directory source's
/// contents land in `dest`, a file by its name into a directory `dest`,
/// else as `dest` itself. What `exclude` (COPY's `--exclude`s) matches,
/// by its path below its source (a file source by its name), is left
/// out as `.dockerignore` leaves things out.
fn walk(
    ctx: &Context,
    srcs: &[String],
    exclude: &Ignore,
    (dest, dest_dir): (&str, bool),
    visit: &mut dyn FnMut(&Entry<'_>) -> Result<()>,
) -> Result<()> {
    let dirs = Dirs { ctx, exclude };
    let dest = dest.trim_start_matches('/').trim_end_matches('/');
    for src in srcs {
        let path = if src.is_empty() { "." } else { src.as_str() };
        let missing = |e: io::Error| {
            anyhow!("file not found in build context or excluded by .dockerignore: {src}: {e}")
        };
        let fd = ctx
            .root()
            .open_path(Path::new(path), OFlags::PATH)
            .map_err(missing)?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let dir = ctx
                .root()
                .open_path(Path::new(path), OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(missing)?;
            same(&dir, &st)?;
            dirs.walk(dir.as_fd(), (src, "", dest), 0, visit)?;
            continue;
        }
        if exclude.excluded(base(src)) {
            continue;
        }
        let Some(kind) = kind_of(&st, None) else {
            continue;
        };
        let target = if dest_dir {
            join(dest, base(src))
        } else {
            dest.to_string()
        };
        let at = At::Root(ctx, path.to_string());
        let rel = src.clone();
        visit(&Entry {
            target,
            rel,
            st,
            kind,
            at,
        })?;
    }
    Ok(())
}

/// What a directory source's walk leaves out: the context's
/// `.dockerignore` (by context path) and the COPY's `--exclude`s (by the
/// path below the source).
struct Dirs<'a> {
    ctx: &'a Context,
    exclude: &'a Ignore,
}

impl Dirs<'_> {
    /// The entries below `dir`, which is `rel` in the context, `below`
    /// under its source and lands at `target`.
    fn walk(
        &self,
        dir: BorrowedFd<'_>,
        (rel, below, target): (&str, &str, &str),
        depth: usize,
        visit: &mut dyn FnMut(&Entry<'_>) -> Result<()>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            bail!("{rel}: directory tree deeper than {MAX_DEPTH}");
        }
        let mut names = list(dir).with_context(|| format!("read the directory {rel}"))?;
        names.sort();
        for name in names {
            let st = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let n = name.to_string_lossy();
            let (crel, cbelow, ctarget) = (join(rel, &n), join(below, &n), join(target, &n));
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let (ignored, excluded) = (
                self.ctx.ignore.excluded(&crel),
                self.exclude.excluded(&cbelow),
            );
            let walked_anyway = is_dir
                && (!ignored || self.ctx.ignore.may_include_below(&crel))
                && (!excluded || self.exclude.may_include_below(&cbelow));
            if (ignored || excluded) && !walked_anyway {
                continue;
            }
            let link = match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    Some(rustix::fs::readlinkat(dir, &name, Vec::new())?.into_bytes())
                }
                _ => None,
            };
            let Some(kind) = kind_of(&st, link) else {
                continue;
            };
            if !ignored && !excluded {
                let at = At::Dir(dir, name.clone());
                visit(&Entry {
                    target: ctarget.clone(),
                    rel: crel.clone(),
                    st,
                    kind,
                    at,
                })?;
            }
            if is_dir {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = match rustix::fs::openat(dir, &name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(anyhow!("open {crel}: {e}")),
                };
                same(&sub, &st)?;
                self.walk(sub.as_fd(), (&crel, &cbelow, &ctarget), depth + 1, visit)?;
            }
        }
        Ok(())
    }
}

/// The kind a stat shows; sockets are left out, as tar leaves them.
fn kind_of(st: &Stat, link: Option<Vec<u8>>) -> Option<Kind> {
    Some(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink(link.unwrap_or_default()),
        FileType::Fifo => Kind::Fifo,
        FileType::CharacterDevice => Kind::Char,
        FileType::BlockDevice => Kind::Block,
        _ => return None,
    })
}

/// `fd` must be the inode `st` describes: a name swapped meanwhile fails.
fn same(fd: &OwnedFd, st: &Stat) -> Result<()> {
    let again = rustix::fs::fstat(fd)?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        bail!("the build context changed while it was being read");
    }
    Ok(())
}

fn list(fd: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut d = rustix::fs::Dir::read_from(fd)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let n = e?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            out.push(OsString::from(std::ffi::OsStr::from_bytes(&n)));
        }
    }
    Ok(out)
}

fn base(src: &str) -> &str {
    src.trim_end_matches('/').rsplit('/').next().unwrap_or(src)
}

fn join(dir: &str, rest: &str) -> String {
    match (dir.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{rest}"),
    }
}

/// Exactly `size` bytes of `file`: cut when it grew since its stat, padded
/// with zeros when it shrank (a tar entry's size is fixed by its header);
/// the digest pass reads the same bytes, so a change shows as a mismatch.
fn exactly(file: impl Read, size: u64) -> impl Read {
    file.take(size).chain(io::repeat(0)).take(size)
}

struct HashWriter<'h>(&'h mut Hasher);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes what is read through it.
struct Hashing<'h, R> {
    inner: R,
    hasher: &'h mut Hasher,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ctx: &Context, srcs: &[&str], dest: (&str, bool)) -> Vec<String> {
        let srcs: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
        let (_, digests) = digest(ctx, &srcs, &Ignore::default(), dest, Meta::default()).unwrap();
        let mut out = Vec::new();
        write_tar(
            ctx,
            &srcs,
            &Ignore::default(),
            dest,
            Meta::default(),
            &digests,
            &mut out,
        )
        .unwrap();
        tar::Archive::new(out.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn ignored_files_are_never_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("keep"), "k").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "deep\n").unwrap();
        // Deeper than any walk may go: walking it would fail the copy.
        let mut p = d.path().join("deep");
        for _ in 0..1100 {
            p = p.join("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        let c = Context::open(d.path()).unwrap();
        assert_eq!(
            names(&c, &[""], ("/app/", true)),
            vec!["app/.dockerignore", "app/keep"]
        );
    }

    #[test]
    fn names_and_key() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("dir/sub")).unwrap();
        std::fs::write(d.path().join("dir/sub/x"), "x").unwrap();
        std::fs::write(d.path().join("f"), "f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("dir/out")).unwrap();
        let c = Context::open(d.path()).unwrap();
        let mut all = names(&c, &["dir", "f"], ("/app/", true));
        all.sort();
        assert_eq!(all, vec!["app/f", "app/out", "app/sub", "app/sub/x"]);
        assert_eq!(names(&c, &["f"], ("/x", false)), vec!["x"]);
        let srcs = vec!["dir".to_string(), "f".to_string()];
        let key = |meta: Meta| {
            digest(&c, &srcs, &Ignore::default(), ("/app/", true), meta)
                .unwrap()
                .0
        };
        let first = key(Meta::default());
        // mtimes do not count; bytes, modes and owners do.
        let f = d.path().join("f");
        let old = std::fs::File::open(&f).unwrap();
        old.set_modified(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(first, key(Meta::default()));
        std::fs::write(&f, "g").unwrap();
        let changed = key(Meta::default());
        assert_ne!(first, changed);
        let owned = Meta {
            owner: Some((1, 2)),
            mode: None,
        };
        assert_ne!(changed, key(owned));
        let moded = Meta {
            owner: None,
            mode: Some(0o600),
        };
        assert_ne!(changed, key(moded));
    }

    #[test]
    fn a_file_changed_after_its_digest_fails_the_copy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "one").unwrap();
        let c = Context::open(d.path()).unwrap();
        let srcs = vec!["f".to_string()];
        let (_, digests) = digest(
            &c,
            &srcs,
            &Ignore::default(),
            ("/f", false),
            Meta::default(),
        )
        .unwrap();
        std::fs::write(d.path().join("f"), "two").unwrap();
        let e = write_tar(
            &c,
            &srcs,
            &Ignore::default(),
            ("/f", false),
            Meta::default(),
            &digests,
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("changed while the build read it"),
            "{e}"
        );
    }
}
