//! COPY and ADD sources: resolved in the build context (the files are
//! walked by [`super::walk`]) or in another stage's image (packed here into
//! one tar stream named as they land), and the `--chown`/`--chmod` flags.
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
use super::statcache::StatCache;

/// The build context: its directory, opened, and its `.dockerignore`.
pub struct Context {
    pub dir: PathBuf,
    root: Root,
    pub ignore: Ignore,
    /// The digests of its files, by their stat.
    pub stat: std::sync::Mutex<StatCache>,
}

/// What lands where: ownership and mode overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

impl Context {
    pub fn open(dir: &Path) -> Result<Context> {
        Context::open_for(dir, None)
    }

    /// The context for the Dockerfile `dockerfile` (a host path; None:
    /// the context's own `Dockerfile`): its `<name>.dockerignore` beside
    /// it, when there is one, is taken over the context's `.dockerignore`,
    /// as BuildKit takes it.
    pub fn open_for(dir: &Path, dockerfile: Option<&Path>) -> Result<Context> {
        let root =
            Root::open(dir).with_context(|| format!("open the build context {}", dir.display()))?;
        let own = match dockerfile {
            Some(f) => {
                let mut name = f.file_name().unwrap_or_default().to_os_string();
                name.push(".dockerignore");
                let p = f.with_file_name(name);
                match std::fs::File::open(&p) {
                    Ok(file) => {
                        let mut b = Vec::new();
                        file.take(4 << 20)
                            .read_to_end(&mut b)
                            .with_context(|| format!("read {}", p.display()))?;
                        Some(b)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => bail!("read {}: {e}", p.display()),
                }
            }
            None => read_in(&root, "Dockerfile.dockerignore")?,
        };
        // Through the context's root: a .dockerignore that is a symlink
        // resolves inside the context, like every other name in it.
        let ignore = match own {
            Some(b) => Ignore::parse(&String::from_utf8_lossy(&b)),
            None => read_in(&root, ".dockerignore")?
                .map(|b| Ignore::parse(&String::from_utf8_lossy(&b)))
                .unwrap_or_default(),
        };
        Ok(Context {
            dir: dir.to_path_buf(),
            root,
            ignore,
            stat: std::sync::Mutex::new(StatCache::none()),
        })
    }

    /// The context with its stat cache under the engine's `root`.
    pub fn with_stat_cache(self, root: &Path) -> Context {
        let stat = StatCache::load(root, &self.dir);
        Context {
            stat: std::sync::Mutex::new(stat),
            ..self
        }
    }

    /// Writes back what the build learnt of the context's files.
    pub fn save_stat_cache(&self) -> Result<()> {
        self.stat.lock().unwrap_or_else(|e| e.into_inner()).save()
    }

    /// The context directory, opened.
    pub(super) fn root(&self) -> &Root {
        &self.root
    }

    /// Whether `path` is a directory of the context (symlinks resolved
    /// inside it).
    pub fn is_dir(&self, path: &str) -> bool {
        let path = if path.is_empty() { "." } else { path };
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY;
        self.root.open_path(Path::new(path), flags).is_ok()
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
        glob(&self.root, Path::new(""), &parts, &mut out)?;
        out.retain(|p| !self.ignore.excluded(p));
        if out.is_empty() {
            bail!(
                "file not found in build context or excluded by .dockerignore: {src}: no source files were specified"
            );
        }
        out.sort();
        Ok(out)
    }
}

/// Paths below `dir` of `root` whose components match `pat`, read without
/// following symlinks (`dir` itself resolved inside `root`): the context's
/// globs, and a `COPY --from`'s in the other stage's root.
pub(super) fn glob(root: &Root, dir: &Path, pat: &[String], out: &mut Vec<String>) -> Result<()> {
    let Some((first, rest)) = pat.split_first() else {
        out.push(dir.to_string_lossy().into_owned());
        return Ok(());
    };
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY;
    let names = match root.open_path(dir, flags) {
        Ok(fd) => list(fd)?,
        Err(_) => return Ok(()),
    };
    for (name, is_dir) in names {
        if component(first, &name) && (rest.is_empty() || is_dir) {
            glob(root, &dir.join(&name), rest, out)?;
        }
    }
    Ok(())
}

/// The file `name` of the context (its symlinks resolved inside it), at
/// most 4 MiB of it; None when there is none.
fn read_in(root: &Root, name: &str) -> Result<Option<Vec<u8>>> {
    root.read_file(Path::new(name), 4 << 20)
        .map_err(|e| anyhow!("read {name}: {e}"))
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

/// Packs `srcs` (paths in the container `id`, made from another stage's
/// or an image's snapshot) to land at `dest` (absolute, a directory when
/// `dest_dir`): a directory's contents go into it, a file by its name into
/// a directory `dest`, else to `dest` itself. The stream is spooled to a
/// file in `spool`, never held in memory, and returned rewound.
pub fn pack(
    engine: &crate::Engine,
    id: &str,
    (srcs, exclude): (&[String], &Ignore),
    (dest, dest_dir): (&str, bool),
    meta: Meta,
    spool: &Path,
) -> Result<std::fs::File> {
    let mut out = tar::Builder::new(io::BufWriter::new(spool_file(spool)?));
    let dest = dest
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string();
    for src in srcs {
        let raw = read_source(engine, id, src, spool)?;
        let mut a = tar::Archive::new(io::BufReader::new(raw));
        for e in a.entries().context("reading a source's tar")? {
            let mut e = e?;
            let name = e.path()?.to_string_lossy().into_owned();
            let below = name
                .trim_end_matches('/')
                .split_once('/')
                .map(|(_, b)| b.to_string());
            let is_dir = e.header().entry_type().is_dir();
            // `--exclude`: by the path below the source, a file source by
            // its name; each entry on its own (an excluded directory's
            // entries are excluded by it unless an exception takes them).
            let by = below.as_deref().unwrap_or(base(src));
            if exclude.excluded(by) && !(below.is_none() && is_dir) {
                continue;
            }
            let target = match (&below, is_dir) {
                // A directory source's own entry: its contents land in dest.
                (None, true) => continue,
                (None, false) if dest_dir => join(&dest, base(src)),
                (None, false) => dest.clone(),
                (Some(b), _) => join(&dest, b),
            };
            append(&mut out, &mut e, &target, meta, src, &dest)?;
        }
    }
    let w = out.into_inner().context("finishing the COPY stream")?;
    let mut tar = w.into_inner().map_err(|e| e.into_error())?;
    tar.seek(io::SeekFrom::Start(0))?;
    Ok(tar)
}

/// A heredoc's `content` as the file `name` (0644, root's unless `meta`
/// says otherwise) landing at `dest`: a tar stream, and the key of what
/// lands.
pub fn pack_inline(
    name: &str,
    content: &[u8],
    (dest, dest_dir): (&str, bool),
    meta: Meta,
) -> Result<(Vec<u8>, String)> {
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
    let mut out = tar::Builder::new(Vec::new());
    out.append_data(&mut h, &target, content)?;
    Ok((out.into_inner()?, hasher.finish().to_string()))
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

/// `src` of the container `id` as a tar stream whose first entry is its
/// base name.
fn read_source(engine: &crate::Engine, id: &str, src: &str, spool: &Path) -> Result<std::fs::File> {
    let mut raw = io::BufWriter::new(spool_file(spool)?);
    let opts = crate::cp::CpOptions::default();
    crate::cp::copy_out(
        engine,
        id,
        &format!("/{src}"),
        crate::cp::HostDst::Stream(&mut raw),
        opts,
    )?;
    let mut f = raw.into_inner().map_err(|e| e.into_error())?;
    f.seek(io::SeekFrom::Start(0))?;
    Ok(f)
}

/// A file in `dir`, unlinked at once: gone with its last descriptor.
pub(super) fn spool_file(dir: &Path) -> Result<std::fs::File> {
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

/// One entry, renamed to `target`, owners and mode as `meta` says, into
/// the stream.
fn append<W: io::Write, R: Read>(
    out: &mut tar::Builder<W>,
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
    let link = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
    match (h.entry_type(), link) {
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
        _ => out.append_data(&mut h, target, e)?,
    }
    Ok(())
}

/// ADD of a URL other than `http(s)://` (git, ftp): not in this slice.
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

pub struct TempDir(std::path::PathBuf);

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
}
