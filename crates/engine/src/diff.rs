//! `diff`: what a container changed in its filesystem, as Docker prints
//! it: `A` added, `C` changed, `D` deleted, one path a line, in path order.
//! Read from its overlay upper directory against the image's snapshots:
//! a whiteout is a deletion, an entry the image has is a change, any other
//! an addition; a directory the image has is listed as changed when
//! something under it is listed (or it was made opaque), as Docker lists
//! the directories of the files changed in them.
//!
//! What berth itself puts in the upper directory for every container (the
//! files `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` it binds, the
//! mount points `/proc`, `/dev`, `/sys`) is left out, as Docker's diff
//! leaves out its init layer.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::Engine;

/// What berth prepares in every container's upper directory.
const PREPARED: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "proc",
    "dev",
    "sys",
];

/// Entries walked at most: a diff of a tree larger than this is refused
/// rather than read without end.
const MAX_ENTRIES: usize = 10_000_000;

/// One line of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Changed,
    Deleted,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Added => 'A',
            Kind::Changed => 'C',
            Kind::Deleted => 'D',
        }
    }
}

/// The changes of container `key`, in path order (`/a`, `/a/b`, …).
pub fn changes(engine: &Engine, key: &str) -> Result<Vec<(Kind, String)>> {
    let records = engine.records()?;
    let c = records.find(key)?;
    let candidates = [
        records.dir(&c.id).join("upper"),
        engine.scratch_dir(&c.id).join("upper"),
    ];
    let Some(upper) = candidates.into_iter().find(|p| p.is_dir()) else {
        bail!(
            "{}: its root filesystem is a copy, not an overlay: diff needs an overlay's upper layer",
            c.name
        );
    };
    walk(&upper, &crate::rootfs_prep::lowers_of(engine, &c)?)
}

/// The changes in `upper` over `lowers`.
fn walk(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(Kind, String)>> {
    let in_lower = |rel: &Path| {
        lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok())
    };
    // Path → kind; a BTreeMap keeps Docker's order.
    let mut out: BTreeMap<PathBuf, Kind> = BTreeMap::new();
    let mut todo: Vec<PathBuf> = vec![PathBuf::new()];
    let mut seen = 0usize;
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(upper.join(&dir))? {
            seen += 1;
            if seen > MAX_ENTRIES {
                bail!("more than {MAX_ENTRIES} changed entries: too many to list");
            }
            let entry = entry?;
            let rel = dir.join(entry.file_name());
            if PREPARED.iter().any(|p| rel == Path::new(p)) {
                continue;
            }
            let meta = entry.metadata()?;
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                out.insert(rel, Kind::Deleted);
            } else if ft.is_dir() {
                let existed = in_lower(&rel);
                if !existed {
                    out.insert(rel.clone(), Kind::Added);
                } else if opaque(&upper.join(&rel)) {
                    out.insert(rel.clone(), Kind::Changed);
                }
                todo.push(rel);
            } else {
                let kind = if in_lower(&rel) {
                    Kind::Changed
                } else {
                    Kind::Added
                };
                out.insert(rel, kind);
            }
        }
    }
    // The image's directories that hold a listed change are changed too.
    let parents: Vec<PathBuf> = out
        .keys()
        .flat_map(|p| p.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()))
        .map(Path::to_path_buf)
        .collect();
    for p in parents {
        out.entry(p).or_insert(Kind::Changed);
    }
    Ok(out
        .into_iter()
        .map(|(p, k)| (k, format!("/{}", p.display())))
        .collect())
}

/// Whether overlayfs marked `dir` opaque (its lower contents hidden): as
/// root `trusted.overlay.opaque`, rootless `user.overlay.opaque`.
fn opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut v = [0u8; 1];
            rustix::fs::lgetxattr(dir, *name, &mut v).is_ok_and(|n| n == 1 && v[0] == b'y')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_listed_as_docker_lists_them() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let (l, u) = (lower.path(), upper.path());
        for d in ["bin", "etc", "tmp", "var/lib"] {
            std::fs::create_dir_all(l.join(d)).unwrap();
        }
        std::fs::write(l.join("bin/ls"), "").unwrap();
        std::fs::write(l.join("etc/passwd"), "").unwrap();
        // What berth prepares, and what the container did.
        for d in ["bin", "etc", "tmp", "proc", "newdir/sub", "var"] {
            std::fs::create_dir_all(u.join(d)).unwrap();
        }
        for f in [
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "etc/passwd",
            "tmp/t",
            "newdir/sub/f",
        ] {
            std::fs::write(u.join(f), "x").unwrap();
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            u.join("bin/ls"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let got: Vec<String> = walk(u, &[l.to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|(k, p)| format!("{} {p}", k.letter()))
            .collect();
        assert_eq!(
            got,
            [
                "C /bin",
                "D /bin/ls",
                "C /etc",
                "C /etc/passwd",
                "A /newdir",
                "A /newdir/sub",
                "A /newdir/sub/f",
                "C /tmp",
                "A /tmp/t",
            ]
        );
    }
}
