//! Blobs and temp files. A blob is written to a locked temp file and renamed
//! into `blobs/sha256/` only once verified and fsync'ed; temp files of dead
//! writers are reaped, and blobs no image references are pruned.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use rustix::fs::{FlockOperation, flock};

use super::Store;
use crate::digest::{Digest, Hasher};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Temp files younger than this are never reaped: their writer may not have locked them yet.
pub(super) const TMP_GRACE: Duration = Duration::from_secs(10);

impl Store {
    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether a verified blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Read a whole (small) blob.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        // Small blobs are manifests and configs; registries cap those at 4 MiB.
        Ok(berth_io::read_capped(&p, 64 * berth_io::MIB, "blob")?)
    }

    /// Delete temp files older than `grace` whose writer is gone (its flock is free).
    /// `Store::open` does this with a 10 s grace; returns how many were removed.
    pub fn reap_temp(&self, grace: Duration) -> Result<usize> {
        let mut n = 0;
        let dir = self.root.join("tmp");
        let now = SystemTime::now();
        for e in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let Ok(e) = e else { continue };
            let p = e.path();
            let Ok(meta) = e.metadata() else { continue };
            // A timestamp "in the future" (fine-grained file times vs. the clock) counts as age zero.
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            let young = age < grace;
            if young {
                continue;
            }
            let Ok(f) = File::open(&p) else { continue };
            // A live writer holds an exclusive lock on its temp file; if we get it, the writer is gone.
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok()
                && fs::remove_file(&p).is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// A new locked temp file in `<root>/tmp`.
    pub(crate) fn temp(&self, hint: &str) -> Result<TempFile> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{hint}.{}.{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        flock(&file, FlockOperation::LockExclusive)
            .with_context(|| format!("lock {}", path.display()))?;
        Ok(TempFile {
            file: Some(file),
            path,
        })
    }

    /// Store bytes already verified to hash to `d`.
    pub(crate) fn put_verified_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        if Digest::of(bytes) != *d {
            bail!("refusing to store content that does not hash to {d}");
        }
        if self.has_blob(d) {
            return Ok(());
        }
        let mut t = self.temp(d.hex())?;
        t.file().write_all(bytes)?;
        t.commit(&self.blob_path(d))
    }

    /// Delete blobs no image references. Returns (count, bytes) freed.
    pub fn prune_blobs(&self) -> Result<(usize, u64)> {
        // Exclusive: no pull is between writing blobs and indexing them.
        let _gc = self.lock("gc.lock", FlockOperation::LockExclusive)?;
        let keep = self.named_blobs()?;
        let dir = self.root.join("blobs/sha256");
        let (mut n, mut bytes) = (0, 0);
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            self.remove_blob(&name)?;
            n += 1;
        }
        Ok((n, bytes))
    }

    /// Delete those of `digests` no image references (what a refused load
    /// wrote), when no writer is between writing blobs and naming them;
    /// else they stay for `image prune`. Returns how many went.
    pub fn remove_unnamed(&self, digests: &[Digest]) -> Result<usize> {
        let Ok(_gc) = self.lock("gc.lock", FlockOperation::NonBlockingLockExclusive) else {
            return Ok(0);
        };
        let keep = self.named_blobs()?;
        let mut n = 0;
        for d in digests {
            if !keep.contains(d.hex()) && self.has_blob(d) {
                self.remove_blob(d.hex())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// A blob and what is known of it as a layer.
    fn remove_blob(&self, hex: &str) -> Result<()> {
        fs::remove_file(self.root.join("blobs/sha256").join(hex))?;
        let _ = fs::remove_file(self.root.join("layers").join(format!("{hex}.json")));
        Ok(())
    }

    /// The hex names of every blob an image references.
    fn named_blobs(&self) -> Result<BTreeSet<String>> {
        let idx = self.read_index()?;
        let mut keep = BTreeSet::new();
        for i in &idx.images {
            keep.insert(i.id.hex().to_string());
            keep.insert(i.manifest_digest.hex().to_string());
            for d in &i.repo_digests {
                if let Some(Ok(dg)) = d.split_once('@').map(|(_, d)| Digest::parse(d)) {
                    keep.insert(dg.hex().to_string());
                }
            }
            for l in &i.layers {
                keep.insert(l.digest.hex().to_string());
            }
        }
        Ok(keep)
    }

    /// Hex names of all blobs present (for tests and diagnostics).
    pub fn blob_names(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("blobs/sha256"))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Names of leftover temp files.
    pub fn temp_names(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("tmp"))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Check every blob hashes to its name. Returns the names of bad ones.
    pub fn verify_blobs(&self) -> Result<Vec<String>> {
        let mut bad = Vec::new();
        for name in self.blob_names()? {
            let mut h = Hasher::new();
            io::copy(
                &mut File::open(self.root.join("blobs/sha256").join(&name))?,
                &mut h,
            )?;
            if h.finish().hex() != name {
                bad.push(name);
            }
        }
        Ok(bad)
    }
}

/// A temp file in the store, deleted on drop unless committed.
pub(crate) struct TempFile {
    file: Option<File>,
    path: PathBuf,
}

impl TempFile {
    pub(crate) fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("temp file open until commit")
    }

    /// fsync, rename into place, fsync the directory.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<()> {
        let f = self.file.take().expect("temp file open until commit");
        f.sync_all()
            .with_context(|| format!("fsync {}", self.path.display()))?;
        fs::rename(&self.path, dest).with_context(|| format!("rename into {}", dest.display()))?;
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("fsync {}", dir.display()))?;
        }
        // Keep the lock until after the rename so the reaper never sees an unlocked live file.
        drop(f);
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaper_spares_live_writers_and_takes_dead_ones() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let mut live = s.temp("live").unwrap();
        live.file().write_all(b"x").unwrap();
        // A dead writer's leftover: nobody holds its lock.
        fs::write(d.path().join("tmp/dead.1.1"), b"y").unwrap();
        assert_eq!(s.reap_temp(Duration::ZERO).unwrap(), 1);
        assert_eq!(s.temp_names().unwrap().len(), 1, "the live temp file stays");
        // Young files are spared by the default grace.
        fs::write(d.path().join("tmp/dead.1.2"), b"y").unwrap();
        Store::open(d.path()).unwrap();
        assert_eq!(s.temp_names().unwrap().len(), 2);
        drop(live);
        assert_eq!(
            s.temp_names().unwrap().len(),
            1,
            "dropping an uncommitted temp file removes it"
        );
    }

    #[test]
    fn put_refuses_wrong_content_and_commits_atomically() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let good = Digest::of(b"hello");
        assert!(s.put_verified_bytes(&good, b"hellO").is_err());
        assert!(!s.has_blob(&good));
        s.put_verified_bytes(&good, b"hello").unwrap();
        assert_eq!(s.read_blob(&good).unwrap(), b"hello");
        assert!(s.temp_names().unwrap().is_empty());
        assert_eq!(s.verify_blobs().unwrap(), Vec::<String>::new());
        // A damaged blob on disk is reported.
        fs::write(s.blob_path(&good), b"evil").unwrap();
        assert_eq!(s.verify_blobs().unwrap(), vec![good.hex().to_string()]);
    }
}
