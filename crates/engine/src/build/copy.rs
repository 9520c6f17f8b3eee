//! COPY and ADD sources: resolved in the build context (or another
//! stage's image), packed into one tar stream named as they land in the
//! image, with the content hash the cache keys on.
//!
//! The context is read through a [`Root`]: `..` and symlinks stop at the
//! context directory, nothing below a source is followed (a symlink is
//! copied as a symlink), and a source naming a path outside the context
//! (`../x`) is refused, so nothing outside the context is ever read.

use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use berth_image::digest::Hasher;
use berth_snapshot::Root;

use super::ignore::{Ignore, component};

/// The build context: its directory, opened, and its `.dockerignore`.
pub struct Context {
    pub dir: PathBuf,
    root: Root,
    pub ignore: Ignore,
}

/// Where a COPY's files come from.
pub enum From<'a> {
    Context(&'a Context),
    /// A container made from another stage's (or an image's) snapshot.
    Container(&'a crate::Engine, &'a str),
}

/// What lands where: ownership and mode overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

/// A packed COPY: its tar stream and content hash (names, kinds, modes,
/// owners, link targets and bytes; never mtimes).
pub struct Packed {
    /// The stream, spooled to an unlinked file, read from its start.
    pub tar: std::fs::File,
    pub hash: String,
    /// Whether it was packed for a directory destination.
    pub dir: bool,
}

impl Context {
    pub fn open(dir: &Path) -> Result<Context> {
        let root =
            Root::open(dir).with_context(|| format!("open the build context {}", dir.display()))?;
        // Through the context's root: a .dockerignore that is a symlink
        // resolves inside the context, like every other name in it.
        let ignore = match root.read_file(Path::new(".dockerignore"), 4 << 20) {
            Ok(Some(b)) => Ignore::parse(&String::from_utf8_lossy(&b)),
            Ok(None) => Ignore::default(),
            Err(e) => bail!("read .dockerignore: {e}"),
        };
        Ok(Context {
            dir: dir.to_path_buf(),
            root,
            ignore,
        })
    }

    /// The context file `path` opened, when it is a regular file (its
    /// symlinks resolved inside the context); `None` otherwise.
    pub fn open_file(&self, path: &str) -> Result<Option<std::fs::File>> {
        let fd = match self
            .root
            .open_path(Path::new(path), rustix::fs::OFlags::RDONLY)
        {
            Ok(fd) => fd,
            Err(_) => return Ok(None),
        };
        let f = std::fs::File::from(fd);
        Ok(f.metadata()?.is_file().then_some(f))
    }

    /// The context paths `src` names: itself, or what its glob matches
    /// (never an excluded path); `../x` refused.
    pub fn sources(&self, src: &str) -> Result<Vec<String>> {
        let parts = inside(src)?;
        let joined = parts.join("/");
        if !parts.iter().any(|p| p.contains(['*', '?', '['])) {
            if !joined.is_empty() && self.ignore.excluded(&joined) {
                bail!("file not found in build context or excluded by .dockerignore: {src}");
            }
            return Ok(vec![joined]);
        }
        let mut out = Vec::new();
        self.glob(Path::new(""), &parts, &mut out)?;
        out.retain(|p| !self.ignore.excluded(p));
        if out.is_empty() {
            bail!(
                "file not found in build context or excluded by .dockerignore: {src}: no source files were specified"
            );
        }
        out.sort();
        Ok(out)
    }

    /// Paths below `dir` whose components match `pat`, read without
    /// following symlinks.
    fn glob(&self, dir: &Path, pat: &[String], out: &mut Vec<String>) -> Result<()> {
        let Some((first, rest)) = pat.split_first() else {
            out.push(dir.to_string_lossy().into_owned());
            return Ok(());
        };
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY;
        let names = match self.root.open_path(dir, flags) {
            Ok(fd) => list(fd)?,
            Err(_) => return Ok(()),
        };
        for (name, is_dir) in names {
            if component(first, &name) && (rest.is_empty() || is_dir) {
                self.glob(&dir.join(&name), rest, out)?;
            }
        }
        Ok(())
    }
}

/// The entries of an open directory: names and whether each is a
/// directory (a symlink is not).
fn list(fd: std::os::fd::OwnedFd) -> Result<Vec<(String, bool)>> {
    let dir = rustix::fs::Dir::read_from(&fd)?;
    let mut out = Vec::new();
    for e in dir {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        out.push((name, e.file_type() == rustix::fs::FileType::Directory));
    }
    Ok(out)
}

/// `src`'s components inside the context; an error when it climbs out.
fn inside(src: &str) -> Result<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for c in src.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    bail!("forbidden path outside the build context: {src}");
                }
            }
            c => parts.push(c.to_string()),
        }
    }
    Ok(parts)
}

/// Packs `srcs` (paths in `from`) to land at `dest` (absolute, a
/// directory when `dest_dir`): a directory's contents go into it, a
/// file by its name into a directory `dest`, else to `dest` itself.
/// The streams are spooled to files in `spool`, never held in memory.
pub fn pack(
    from: &From<'_>,
    srcs: &[String],
    (dest, dest_dir): (&str, bool),
    meta: Meta,
    spool: &Path,
) -> Result<Packed> {
    let mut out = tar::Builder::new(io::BufWriter::new(spool_file(spool)?));
    let mut hasher = Hasher::new();
    let dest = dest
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string();
    for src in srcs {
        let raw = read_source(from, src, spool)?;
        let mut a = tar::Archive::new(io::BufReader::new(raw));
        for e in a.entries().context("reading a source's tar")? {
            let mut e = e?;
            let name = e.path()?.to_string_lossy().into_owned();
            let below = name
                .trim_end_matches('/')
                .split_once('/')
                .map(|(_, b)| b.to_string());
            let is_dir = e.header().entry_type().is_dir();
            let target = match (&below, is_dir) {
                // A directory source's own entry: its contents land in dest.
                (None, true) => continue,
                (None, false) if dest_dir => join(&dest, base(src)),
                (None, false) => dest.clone(),
                (Some(b), _) => {
                    if let From::Context(c) = from
                        && c.ignore.excluded(&format!("{src}/{b}"))
                    {
                        continue;
                    }
                    join(&dest, b)
                }
            };
            append(&mut out, &mut hasher, &mut e, &target, meta, src, &dest)?;
        }
    }
    packed(out, hasher, dest_dir)
}

/// A heredoc's `content` as the file `name` (0644, root's unless `meta`
/// says otherwise) landing at `dest`.
pub fn pack_inline(
    name: &str,
    content: &[u8],
    (dest, dest_dir): (&str, bool),
    meta: Meta,
    spool: &Path,
) -> Result<Packed> {
    let dest = dest.trim_start_matches('/').trim_end_matches('/');
    let target = if dest_dir {
        join(dest, name)
    } else {
        dest.to_string()
    };
    let (uid, gid) = meta.owner.unwrap_or((0, 0));
    let mode = meta.mode.unwrap_or(0o644);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_size(content.len() as u64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.set_mtime(now.map(|d| d.as_secs()).unwrap_or(0));
    let mut hasher = Hasher::new();
    let line = format!(
        "{target}\0inline\0{mode:o}\0{uid}\0{gid}\0{}\n",
        content.len()
    );
    hasher.update(line.as_bytes());
    hasher.update(content);
    let mut out = tar::Builder::new(io::BufWriter::new(spool_file(spool)?));
    out.append_data(&mut h, &target, content)?;
    packed(out, hasher, dest_dir)
}

/// The finished stream, rewound, with its hash.
fn packed(
    out: tar::Builder<io::BufWriter<std::fs::File>>,
    hasher: Hasher,
    dir: bool,
) -> Result<Packed> {
    let w = out.into_inner().context("finishing the COPY stream")?;
    let mut tar = w.into_inner().map_err(|e| e.into_error())?;
    tar.seek(io::SeekFrom::Start(0))?;
    Ok(Packed {
        tar,
        hash: hasher.finish().to_string(),
        dir,
    })
}

fn base(src: &str) -> &str {
    src.trim_end_matches('/').rsplit('/').next().unwrap_or(src)
}

fn join(dest: &str, rest: &str) -> String {
    if dest.is_empty() {
        rest.to_string()
    } else {
        format!("{dest}/{rest}")
    }
}

/// `src` of `from` as a tar stream whose first entry is its base name.
fn read_source(from: &From<'_>, src: &str, spool: &Path) -> Result<std::fs::File> {
    let mut raw = io::BufWriter::new(spool_file(spool)?);
    match from {
        From::Context(c) => {
            let path = if src.is_empty() { "." } else { src };
            // Any name but "." (which tar readers drop from entries' paths).
            let name = Path::new("s");
            // What .dockerignore excludes is never read, nor an excluded
            // directory walked unless an exception may take something in it.
            let pruned = |entry: &Path, is_dir: bool| {
                let below = entry.strip_prefix(name).unwrap_or(entry).to_string_lossy();
                let rel = format!("{src}/{below}");
                c.ignore.excluded(&rel) && !(is_dir && c.ignore.may_include_below(&rel))
            };
            berth_snapshot::archive::write_archive_pruned(
                &c.root,
                Path::new(path),
                true,
                name,
                &mut raw,
                &pruned,
            )
            .map_err(|e| {
                anyhow!("file not found in build context or excluded by .dockerignore: {src}: {e}")
            })?;
        }
        From::Container(engine, id) => {
            let opts = crate::cp::CpOptions::default();
            crate::cp::copy_out(
                engine,
                id,
                &format!("/{src}"),
                crate::cp::HostDst::Stream(&mut raw),
                opts,
            )?;
        }
    }
    let mut f = raw.into_inner().map_err(|e| e.into_error())?;
    f.seek(io::SeekFrom::Start(0))?;
    Ok(f)
}

/// A file in `dir`, unlinked at once: gone with its last descriptor.
fn spool_file(dir: &Path) -> Result<std::fs::File> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("spool-{}-{n}", std::process::id()));
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    std::fs::remove_file(&path)?;
    Ok(f)
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

/// One entry, renamed to `target`, owners and mode as `meta` says, into
/// the stream and the hash.
fn append<W: io::Write, R: Read>(
    out: &mut tar::Builder<W>,
    hasher: &mut Hasher,
    e: &mut tar::Entry<'_, R>,
    target: &str,
    meta: Meta,
    src: &str,
    dest: &str,
) -> Result<()> {
    let mut h = e.header().clone();
    if let Some((u, g)) = meta.owner {
        h.set_uid(u.into());
        h.set_gid(g.into());
    }
    if let Some(m) = meta.mode {
        h.set_mode(m);
    }
    let kind = h.entry_type();
    let link = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
    let line = format!(
        "{target}\0{:?}\0{:o}\0{}\0{}\0{}\0{}\n",
        kind,
        h.mode()?,
        h.uid()?,
        h.gid()?,
        link.as_deref().unwrap_or(""),
        h.size()?
    );
    hasher.update(line.as_bytes());
    match (kind, link) {
        (tar::EntryType::Link, Some(l)) => {
            // A hard link names another entry of the same source.
            let rest = l.split_once('/').map(|(_, r)| r.to_string());
            let to = match rest {
                Some(r) => join(dest, &r),
                None => join(dest, base(src)),
            };
            out.append_link(&mut h, target, to)?;
        }
        (tar::EntryType::Symlink, Some(l)) => out.append_link(&mut h, target, l)?,
        _ => out.append_data(&mut h, target, Hashing { inner: e, hasher })?,
    }
    Ok(())
}

/// ADD of a URL: not in this slice.
pub fn refuse_add(srcs: &[String]) -> Result<()> {
    for s in srcs {
        if s.contains("://") {
            bail!("ADD of a remote URL ({s}) is not supported by berth build yet");
        }
    }
    Ok(())
}

/// `--chown=USER[:GROUP]`, ids or names; a name is looked up by
/// `lookup(file, name)` (`passwd` or `group`, the image's); without a
/// group, the user's id is the group's too, as in Docker.
pub fn chown(v: &str, lookup: &mut dyn FnMut(&str, &str) -> Result<u32>) -> Result<(u32, u32)> {
    let mut id = |s: &str, file: &str| -> Result<u32> {
        match s.parse() {
            Ok(n) => Ok(n),
            Err(_) if s.is_empty() => bail!("invalid --chown={v}"),
            Err(_) => lookup(file, s).with_context(|| format!("--chown={v}")),
        }
    };
    match v.split_once(':') {
        Some((u, g)) => Ok((id(u, "passwd")?, id(g, "group")?)),
        None => {
            let u = id(v, "passwd")?;
            Ok((u, u))
        }
    }
}

/// The id of `name` in an `/etc/passwd` or `/etc/group` text.
pub fn id_in(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

/// `--chmod=OCTAL`.
pub fn chmod(v: &str) -> Result<u32> {
    u32::from_str_radix(v, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| anyhow!("invalid --chmod={v}: an octal mode is needed"))
}

/// A staging directory under the engine's root.
pub(super) fn tempdir(engine: &crate::Engine) -> Result<TempDir> {
    let dir = engine.root.join("build-tmp").join(format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).context("create a build staging dir")?;
    Ok(TempDir(dir))
}

pub(super) struct TempDir(std::path::PathBuf);

impl TempDir {
    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_names_and_ids() {
        let passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        let group = "root:x:0:\nstaff:x:50:\n";
        let mut look = |file: &str, name: &str| -> Result<u32> {
            id_in(if file == "passwd" { passwd } else { group }, name)
                .ok_or_else(|| anyhow!("unable to find {name} in /etc/{file}"))
        };
        assert_eq!(chown("1:2", &mut look).unwrap(), (1, 2));
        assert_eq!(chown("7", &mut look).unwrap(), (7, 7));
        assert_eq!(chown("app", &mut look).unwrap(), (1000, 1000));
        assert_eq!(chown("app:staff", &mut look).unwrap(), (1000, 50));
        assert_eq!(chown("root:5", &mut look).unwrap(), (0, 5));
        assert!(chown("nobody", &mut look).is_err());
        assert!(chown(":1", &mut look).is_err());
    }

    #[test]
    fn sources_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("src/a.txt"), "a").unwrap();
        std::fs::write(d.path().join("src/b.txt"), "b").unwrap();
        std::fs::write(d.path().join("src/c.log"), "c").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "src/b.txt\n").unwrap();
        let c = Context::open(d.path()).unwrap();
        assert_eq!(c.sources("src/*.txt").unwrap(), vec!["src/a.txt"]);
        assert_eq!(c.sources("./src/../src/c.log").unwrap(), vec!["src/c.log"]);
        assert!(
            c.sources("../x")
                .unwrap_err()
                .to_string()
                .contains("outside the build context")
        );
        assert!(c.sources("src/b.txt").is_err());
        assert!(c.sources("*.none").is_err());
    }

    #[test]
    fn ignored_files_are_never_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("keep"), "k").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "deep\n").unwrap();
        // Deeper than any archive may go: walking it would fail the copy.
        let mut p = d.path().join("deep");
        for _ in 0..1100 {
            p = p.join("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        let c = Context::open(d.path()).unwrap();
        let sp = tempfile::tempdir().unwrap();
        let packed = pack(
            &From::Context(&c),
            &[String::new()],
            ("/app/", true),
            Meta::default(),
            sp.path(),
        )
        .unwrap();
        let names: Vec<String> = tar::Archive::new(packed.tar)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["app/.dockerignore", "app/keep"]);
    }

    #[test]
    fn pack_names_and_hash() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("dir/sub")).unwrap();
        std::fs::write(d.path().join("dir/sub/x"), "x").unwrap();
        std::fs::write(d.path().join("f"), "f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("dir/out")).unwrap();
        let c = Context::open(d.path()).unwrap();
        let from = From::Context(&c);
        let sp = tempfile::tempdir().unwrap();
        let pack = |from: &From<'_>, srcs: &[String], dest: &str, dir: bool, meta: Meta| {
            pack(from, srcs, (dest, dir), meta, sp.path())
        };
        let names = |p: Packed| -> Vec<String> {
            tar::Archive::new(p.tar)
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let srcs = vec!["dir".to_string(), "f".to_string()];
        let p = pack(&from, &srcs, "/app/", true, Meta::default()).unwrap();
        let hash = p.hash.clone();
        let mut all = names(p);
        all.sort();
        assert_eq!(all, vec!["app/f", "app/out", "app/sub", "app/sub/x"]);
        let p = Packed {
            tar: tempfile::tempfile().unwrap(),
            hash,
            dir: true,
        };
        // mtimes do not count; bytes and owners do.
        let again = pack(&from, &srcs, "/app/", true, Meta::default()).unwrap();
        assert_eq!(p.hash, again.hash);
        std::fs::write(d.path().join("f"), "g").unwrap();
        assert_ne!(
            p.hash,
            pack(&from, &srcs, "/app/", true, Meta::default())
                .unwrap()
                .hash
        );
        let owned = Meta {
            owner: Some((1, 2)),
            mode: None,
        };
        assert_ne!(
            p.hash,
            pack(&from, &srcs, "/app/", true, owned).unwrap().hash
        );
        let one = pack(&from, &["f".to_string()], "/x", false, Meta::default()).unwrap();
        assert_eq!(names(one), vec!["x"]);
    }
}
