//! Layer snapshots keyed by chain id, one directory each, for overlayfs.
//!
//! `<dir>/<chainid-hex>/` holds one layer unpacked alone in overlay mode,
//! or, where the store cannot hold that layer's whiteouts, the merged view
//! of its chain (see [`crate::layer::ApplyReport::self_contained`]), which
//! an empty file `<dir>/.base/<chainid-hex>` marks: a file, not an xattr,
//! since such a store may keep no xattrs at all. Its state is on disk
//! before the snapshot gets its name, and the snapshot loses its name
//! before its mark goes, so a mark left by a crash names no snapshot, and
//! is put right by the next unpack of that chain.
//! A snapshot is unpacked into `<dir>/.tmp-<hex>-<pid>`, synced and renamed
//! into place, so a crash never leaves a half snapshot under its final name;
//! a per-chain lock file (`<dir>/.locks/<hex>`) keeps two processes from
//! unpacking the same chain, and whoever holds it removes stale temps.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::layer::{ApplyMode, ApplyOptions, apply_layer_gated};
use crate::lowers::BASE;
use crate::tree::remove_tree;

/// One layer of an image, as the snapshotter needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDesc {
    /// `sha256:<hex>` of the uncompressed layer tar.
    pub diff_id: String,
}

/// OCI chain ids: chainid(L0) = diffid(L0); chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln)).
pub fn chain_ids(diff_ids: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.to_string(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}")))
            ),
        };
        out.push(next);
    }
    out
}

fn hex_of(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| anyhow!("{digest:?} is not a sha256 digest"))
}

/// Removes `path` (relative, `/`-separated) below `top`, its parents
/// opened with no symlink followed: a parent that is a symlink or missing
/// means there is nothing of ours to remove.
fn remove_beneath(top: &File, path: &str) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some(last) = parts.pop() else {
        return Ok(());
    };
    let mut dir: std::os::fd::OwnedFd = top.as_fd().try_clone_to_owned()?;
    for p in parts {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        dir = match rustix::fs::openat(&dir, p, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(_) => return Ok(()),
        };
    }
    // The directory keeps its times, as the layer has them.
    let st = rustix::fs::fstat(&dir)?;
    crate::tree::remove_all_at(dir.as_fd(), std::ffi::OsStr::new(last))?;
    let t = |s: i64, ns: u64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: t(st.st_atime, st.st_atime_nsec as u64),
        last_modification: t(st.st_mtime, st.st_mtime_nsec as u64),
    };
    rustix::fs::futimens(&dir, &times)?;
    Ok(())
}

/// A directory of snapshots.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    /// Options for unpacking (mode is always overlay; cap and resolver apply).
    pub apply: ApplyOptions,
    /// How many layers [`Self::prepare`] unpacks at once.
    pub parallel: usize,
}

impl Snapshots {
    /// Use (and create) `dir` as the snapshot directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Snapshots> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join(".locks"))
            .with_context(|| format!("creating {}", dir.display()))?;
        // Snapshots hold images' setuid binaries and device nodes: host users
        // must not reach them (Docker keeps its own state dirs 0700/0710 too).
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
        Ok(Snapshots {
            dir,
            apply: ApplyOptions::default(),
            parallel: 3,
        })
    }

    /// Where the snapshot for `chain_id` lives (whether or not it exists).
    pub fn path(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(hex_of(chain_id)?))
    }

    /// Make sure every layer has a snapshot, unpacking only the missing ones
    /// (`open(i)` gives layer i's decompressed tar), and return the snapshot
    /// dirs bottom → top, ready to be overlay lowers. Missing layers unpack
    /// in parallel, taken bottom first, so the lowest one in progress never
    /// waits for another (see [`apply_layer_gated`]).
    pub fn prepare<'r>(
        &self,
        layers: &[LayerDesc],
        open: impl Fn(usize) -> Result<Box<dyn Read + 'r>> + Sync,
    ) -> Result<Vec<PathBuf>> {
        let diffs: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        for d in &diffs {
            hex_of(d).context("layer diff_id")?;
        }
        let chains = chain_ids(&diffs);
        let dirs = chains
            .iter()
            .map(|c| self.path(c))
            .collect::<Result<Vec<_>>>()?;
        let missing: Vec<usize> = (0..dirs.len()).filter(|&i| !dirs[i].is_dir()).collect();
        if missing.is_empty() {
            return Ok(dirs);
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let errors: Mutex<Vec<(usize, anyhow::Error)>> = Mutex::new(Vec::new());
        let give_up = || failed.load(Ordering::SeqCst);
        std::thread::scope(|s| {
            for _ in 0..self.parallel.clamp(1, missing.len()) {
                s.spawn(|| {
                    while let Some(&i) = missing.get(next.fetch_add(1, Ordering::SeqCst))
                        && !give_up()
                    {
                        let res =
                            self.ensure(&chains[i], &layers[i], i, &dirs[..i], &give_up, || {
                                open(i).with_context(|| {
                                    format!("opening layer {i} ({})", layers[i].diff_id)
                                })
                            });
                        if let Err(e) = res {
                            failed.store(true, Ordering::SeqCst);
                            errors
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, e));
                        }
                    }
                });
            }
        });
        // The lowest layer's error is the cause; higher ones may only have given up.
        let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
        errors.sort_by_key(|(i, _)| *i);
        match errors.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(dirs),
        }
    }

    /// For a pull's layer sink (layers arrive out of order, concurrently):
    /// unpack layer `index` of `layers` from `reader` and return its dir.
    /// The layer starts at once; should it need its lowers (see
    /// [`apply_layer_gated`]) it waits for their snapshots, or gives up when
    /// `give_up()` says so: then nothing is published (`Ok(None)`) and
    /// [`Self::prepare`] finishes the layer after the pull.
    pub fn unpack_layer(
        &self,
        layers: &[LayerDesc],
        index: usize,
        reader: &mut dyn Read,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Option<PathBuf>> {
        let diffs: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        for d in &diffs {
            hex_of(d).context("layer diff_id")?;
        }
        let chains = chain_ids(&diffs);
        let chain = chains
            .get(index)
            .ok_or_else(|| anyhow!("layer index {index} out of range"))?;
        let lowers = chains[..index]
            .iter()
            .map(|c| self.path(c))
            .collect::<Result<Vec<_>>>()?;
        self.ensure(chain, &layers[index], index, &lowers, give_up, || {
            Ok(Box::new(reader) as Box<dyn Read + '_>)
        })
    }

    /// The snapshot for `chain` (layer `i`), unpacked from `open()` over
    /// `lowers` unless it already exists. Lock, temp dir, sync, rename.
    /// `None`: the layer needed its lowers and `give_up()` said stop first.
    fn ensure<'r>(
        &self,
        chain: &str,
        layer: &LayerDesc,
        i: usize,
        lowers: &[PathBuf],
        give_up: &dyn Fn() -> bool,
        open: impl FnOnce() -> Result<Box<dyn Read + 'r>>,
    ) -> Result<Option<PathBuf>> {
        let hex = hex_of(chain)?;
        let final_dir = self.dir.join(hex);
        if final_dir.is_dir() {
            return Ok(Some(final_dir));
        }
        let _lock = self.lock(hex)?;
        // Someone else may have finished it while we waited for the lock.
        if final_dir.is_dir() {
            return Ok(Some(final_dir));
        }
        self.clean_temps(hex)?;
        let tmp = self.dir.join(format!(".tmp-{hex}-{}", std::process::id()));
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let gave_up = Cell::new(false);
        let lowers_ready = || {
            // Polling is cheap here: few layers need their lowers at all,
            // and they may be unpacked by another process.
            while !lowers.iter().all(|d| d.is_dir()) {
                if give_up() {
                    gave_up.set(true);
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            true
        };
        let res = (|| -> Result<()> {
            let reader = open()?;
            let opts = ApplyOptions {
                mode: ApplyMode::Overlay {
                    lowers: lowers.to_vec(),
                },
                ..self.apply.clone()
            };
            let report = apply_layer_gated(reader, &tmp, &layer.diff_id, &opts, &lowers_ready)?;
            self.publish(hex, &tmp, report.self_contained)
        })();
        if let Err(e) = res {
            let _ = remove_tree(&tmp);
            if gave_up.get() {
                return Ok(None);
            }
            return Err(e.context(format!("unpacking layer {i} ({})", layer.diff_id)));
        }
        Ok(Some(final_dir))
    }

    /// Takes `dir`, an unmounted overlay upper dir whose changes were just
    /// written as the layer that makes `chain`, as that chain's snapshot
    /// instead of unpacking the layer again: the top-level `skip` entries
    /// (what the engine put there and the layer leaves out) are removed,
    /// the data synced, and the dir renamed into place. The caller vouches
    /// that nothing else in `dir` differs from the layer. `false` when it
    /// was not taken: the snapshot exists, or `dir` is on another
    /// filesystem; `dir` is then left as it was.
    pub fn adopt(&self, chain: &str, dir: &std::path::Path, skip: &[&str]) -> Result<bool> {
        let hex = hex_of(chain)?;
        let final_dir = self.dir.join(hex);
        if final_dir.is_dir() {
            return Ok(false);
        }
        let _lock = self.lock(hex)?;
        if final_dir.is_dir() {
            return Ok(false);
        }
        self.clean_temps(hex)?;
        let tmp = self.dir.join(format!(".tmp-{hex}-{}", std::process::id()));
        match std::fs::rename(dir, &tmp) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("taking {}", dir.display())),
        }
        let res = (|| -> Result<()> {
            let top = File::open(&tmp)?;
            for path in skip {
                remove_beneath(&top, path).with_context(|| format!("removing {path}"))?;
            }
            self.publish(hex, &tmp, false)
        })();
        if let Err(e) = res {
            let _ = remove_tree(&tmp);
            return Err(e.context(format!("taking the snapshot of {chain}")));
        }
        Ok(true)
    }

    /// Names the complete snapshot `tmp` for `hex`, marked self-contained
    /// or not. Data (and mark) go on disk before the name: a crash after the
    /// rename must not leave a complete-looking snapshot with empty files,
    /// or one whose lowers would show through.
    fn publish(&self, hex: &str, tmp: &std::path::Path, base: bool) -> Result<()> {
        self.mark_base(hex, base)?;
        rustix::fs::syncfs(File::open(tmp)?)?;
        let final_dir = self.dir.join(hex);
        std::fs::rename(tmp, &final_dir)
            .with_context(|| format!("moving snapshot into {}", final_dir.display()))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Marks the snapshot of `hex` self-contained, or makes sure it is
    /// not (a crash may have left a mark that names no snapshot).
    fn mark_base(&self, hex: &str, base: bool) -> Result<()> {
        let mark = self.dir.join(BASE).join(hex);
        let res = if base {
            std::fs::create_dir_all(self.dir.join(BASE))
                .and_then(|()| File::create(&mark).map(drop))
        } else {
            match std::fs::remove_file(&mark) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        };
        res.with_context(|| format!("marking {}", mark.display()))
    }

    fn lock(&self, hex: &str) -> Result<File> {
        let p = self.dir.join(".locks").join(hex);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .with_context(|| format!("opening lock {}", p.display()))?;
        f.lock()
            .with_context(|| format!("locking {}", p.display()))?;
        Ok(f)
    }

    /// With the chain's lock held, any temp for it is a leftover of a crash.
    fn clean_temps(&self, hex: &str) -> Result<()> {
        let prefix = format!(".tmp-{hex}-");
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                remove_tree(&e.path())?;
            }
        }
        Ok(())
    }

    /// Chain ids of the snapshots present.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(format!("sha256:{name}"));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove every snapshot whose chain id is not in `keep` (and stale
    /// temps); returns the chain ids removed. Each removal holds the chain's
    /// lock, so it never races an unpack of the same chain.
    pub fn remove_except(&self, keep: &HashSet<String>) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for chain in self.list()? {
            if keep.contains(&chain) {
                continue;
            }
            let hex = hex_of(&chain)?.to_string();
            let _lock = self.lock(&hex)?;
            // Rename first so a crash mid-delete never leaves a partial snapshot under its name.
            let doomed = self
                .dir
                .join(format!(".tmp-{hex}-rm{}", std::process::id()));
            match std::fs::rename(self.dir.join(&hex), &doomed) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => bail!("removing snapshot {chain}: {e}"),
            }
            remove_tree(&doomed).with_context(|| format!("removing snapshot {chain}"))?;
            let _ = std::fs::remove_file(self.dir.join(BASE).join(&hex));
            let _ = std::fs::remove_file(self.dir.join(".locks").join(&hex));
            removed.push(chain);
        }
        // Temps of crashed unpacks for chains nobody prepares again: removable
        // once their chain's lock is free (a live unpack holds it).
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_prefix(".tmp-").and_then(|r| r.get(..64)) else {
                continue;
            };
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join(".locks").join(hex))?;
            if lock.try_lock().is_ok() {
                remove_tree(&self.dir.join(&name))
                    .with_context(|| format!("removing stale {name}"))?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_rule() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = chain_ids(&[&a, &b]);
        assert_eq!(c[0], a);
        let want = hex::encode(Sha256::digest(format!("{a} {b}")));
        assert_eq!(c[1], format!("sha256:{want}"));
    }
}
