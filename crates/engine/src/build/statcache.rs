//! The stat cache: a context file's content digest, remembered with the
//! stat it was read under (device, inode, size, mtime and ctime to the
//! nanosecond), so a build keys a COPY of unchanged files without reading
//! them again. One file per context directory, `ROOT/build-cache/.stat-<hash
//! of the context's path>`, replaced by rename; `builder prune` drops it.
//!
//! A file written again within the filesystem's timestamp granularity
//! after it was hashed could keep its whole stat, so a digest is only
//! remembered for a file whose mtime and ctime are older than the read by
//! more than [`SETTLED`] (git's "racily clean" rule): anything newer is
//! read again by the next build. ctime cannot be set from user space, so
//! putting an old mtime back on a changed file does not hide it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use rustix::fs::Stat;

/// How much older than its reading a file must be for its digest to be kept.
const SETTLED: Duration = Duration::from_secs(2);

/// The most a stat cache file is read: past it, the cache starts empty.
const MAX_FILE: u64 = 64 << 20;

/// What a file is remembered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Seen {
    pub fn of(st: &Stat) -> Seen {
        Seen {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }

    /// Whether a file seen so, read at `read_at`, was last changed long
    /// enough before to be told apart from any later write by its stat.
    pub fn settled(&self, read_at: SystemTime) -> bool {
        let at = |(s, ns): (i64, i64)| {
            UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32)
        };
        at(self.mtime) + SETTLED < read_at && at(self.ctime) + SETTLED < read_at
    }
}

pub struct StatCache {
    /// The cache file, and the context directory it is of.
    file: Option<(PathBuf, PathBuf)>,
    entries: HashMap<String, (Seen, String)>,
    changed: bool,
}

impl StatCache {
    /// No cache: every digest is read, none kept.
    pub fn none() -> StatCache {
        StatCache {
            file: None,
            entries: HashMap::new(),
            changed: false,
        }
    }

    /// The cache of the context `dir` under the engine's root; an
    /// unreadable or damaged file is an empty cache.
    pub fn load(root: &Path, dir: &Path) -> StatCache {
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let name = berth_image::digest::Digest::of(canonical.as_os_str().as_encoded_bytes());
        let file = root
            .join("build-cache")
            .join(format!(".stat-{}", name.hex()));
        let mut entries = HashMap::new();
        if let Ok(text) = read_bounded(&file) {
            for line in text.lines() {
                if let Some((rel, e)) = parse(line) {
                    entries.insert(rel, e);
                }
            }
        }
        StatCache {
            file: Some((file, canonical)),
            entries,
            changed: false,
        }
    }

    /// The digest remembered for `rel` when `st` is still its stat (one
    /// remembered under another stat is forgotten).
    pub fn get(&mut self, rel: &str, st: &Stat) -> Option<String> {
        let (seen, digest) = self.entries.get(rel)?;
        if *seen == Seen::of(st) {
            return Some(digest.clone());
        }
        self.entries.remove(rel);
        self.changed = true;
        None
    }

    /// Remembers `digest` for `rel` read under `st` at `read_at`, unless
    /// the file changed too recently to be told apart from a later write.
    pub fn put(&mut self, rel: &str, st: &Stat, digest: &str, read_at: SystemTime) {
        if rel.contains('\n') {
            return;
        }
        let seen = Seen::of(st);
        if seen.settled(read_at) {
            self.entries
                .insert(rel.to_string(), (seen, digest.to_string()));
            self.changed = true;
        }
    }

    /// Writes the cache back when it learnt or forgot something (temp
    /// file, rename), then without the files no longer in the context, so
    /// it does not grow with what the context once held.
    pub fn save(&mut self) -> Result<()> {
        let Some((file, dir)) = &self.file else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        self.entries
            .retain(|rel, _| std::fs::symlink_metadata(dir.join(rel)).is_ok());
        let dir = file.parent().expect("in build-cache");
        std::fs::create_dir_all(dir).context("create the build cache")?;
        let tmp = dir.join(format!(".tmp-stat-{}", std::process::id()));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).context("write the build's stat cache")?,
        );
        for (rel, (s, digest)) in &self.entries {
            writeln!(
                out,
                "{digest} {} {} {} {} {} {} {} {rel}",
                s.dev, s.ino, s.size, s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1
            )?;
        }
        out.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .context("write the build's stat cache")?;
        std::fs::rename(&tmp, file).context("write the build's stat cache")
    }
}

fn read_bounded(file: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(MAX_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// One line: `digest dev ino size mtime mtime_ns ctime ctime_ns path`.
fn parse(line: &str) -> Option<(String, (Seen, String))> {
    let mut f = line.splitn(9, ' ');
    let digest = f.next()?;
    berth_image::digest::Digest::parse(digest).ok()?;
    let mut n = || f.next()?.parse::<i64>().ok();
    let (dev, ino, size) = (n()?, n()?, n()?);
    let mtime = (n()?, n()?);
    let ctime = (n()?, n()?);
    let rel = f.next()?;
    let seen = Seen {
        dev: dev as u64,
        ino: ino as u64,
        size,
        mtime,
        ctime,
    };
    Some((rel.to_string(), (seen, digest.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_settled_files_only() {
        let root = tempfile::tempdir().unwrap();
        let ctx = tempfile::tempdir().unwrap();
        let f = ctx.path().join("a b");
        std::fs::write(&f, "x").unwrap();
        let st = rustix::fs::stat(&f).unwrap();
        let d = berth_image::digest::Digest::of(b"x").to_string();
        let mut c = StatCache::load(root.path(), ctx.path());
        // Just written: not told apart from a write in the same tick.
        c.put("a b", &st, &d, SystemTime::now());
        assert_eq!(c.get("a b", &st), None);
        c.put("a b", &st, &d, SystemTime::now() + Duration::from_secs(3));
        assert_eq!(c.get("a b", &st).as_deref(), Some(d.as_str()));
        c.save().unwrap();
        let mut again = StatCache::load(root.path(), ctx.path());
        assert_eq!(again.get("a b", &st).as_deref(), Some(d.as_str()));
        // Any change of the stat is a miss.
        std::fs::write(&f, "yy").unwrap();
        let st2 = rustix::fs::stat(&f).unwrap();
        assert_eq!(again.get("a b", &st2), None);
        // A file gone from the context is gone from the cache.
        let mut c = StatCache::load(root.path(), ctx.path());
        assert_eq!(c.get("a b", &st).as_deref(), Some(d.as_str()));
        std::fs::remove_file(&f).unwrap();
        // (Saved when it learnt something: here, of another file.)
        std::fs::write(ctx.path().join("b"), "b").unwrap();
        let st_b = rustix::fs::stat(ctx.path().join("b")).unwrap();
        c.put("b", &st_b, &d, SystemTime::now() + Duration::from_secs(3));
        c.save().unwrap();
        let left = StatCache::load(root.path(), ctx.path()).entries;
        assert_eq!(left.keys().collect::<Vec<_>>(), ["b"]);
        // Another context has its own file.
        let other = tempfile::tempdir().unwrap();
        assert_eq!(
            StatCache::load(root.path(), other.path()).get("a b", &st),
            None
        );
    }
}
