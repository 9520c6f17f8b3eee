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
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::Engine;

/// What berth prepares in every container's upper directory.
pub(crate) const PREPARED: &[&str] = &[
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

/// The changes in `upper` over `lowers`. The upper dir of a running
/// container is the container's to change while this reads it: every
/// directory is opened beneath the upper dir's own fd with no symlink
/// followed (openat2), every entry looked at without following it, so a
/// directory swapped for a symlink never leads outside.
fn walk(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(Kind, String)>> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
    let in_lower = |rel: &Path| {
        lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok())
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let root = rustix::fs::open(upper, dir_flags, Mode::empty())?;
    let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // Path → kind; a BTreeMap keeps Docker's order.
    let mut out: BTreeMap<PathBuf, Kind> = BTreeMap::new();
    let mut todo: Vec<PathBuf> = vec![PathBuf::new()];
    let mut seen = 0usize;
    while let Some(dir) = todo.pop() {
        let at = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir.as_path()
        };
        // Gone, or no longer a directory, since it was listed: nothing under it.
        let Ok(fd) = rustix::fs::openat2(&root, at, dir_flags, Mode::empty(), beneath) else {
            continue;
        };
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            seen += 1;
            if seen > MAX_ENTRIES {
                bail!("more than {MAX_ENTRIES} changed entries: too many to list");
            }
            let rel = dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            if PREPARED.iter().any(|p| rel == Path::new(p)) {
                continue;
            }
            let Ok(st) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                out.insert(rel, Kind::Deleted);
            } else if ft == FileType::Directory {
                if !in_lower(&rel) {
                    out.insert(rel.clone(), Kind::Added);
                } else if opaque(&fd, name) {
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

/// Whether overlayfs marked the directory `name` in `dir` opaque (its lower
/// contents hidden): as root `trusted.overlay.opaque`, rootless
/// `user.overlay.opaque`. Opened without following a link.
fn opaque(dir: &std::os::fd::OwnedFd, name: &std::ffi::CStr) -> bool {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let Ok(fd) = rustix::fs::openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|attr| {
            let mut v = [0u8; 1];
            rustix::fs::fgetxattr(&fd, *attr, &mut v).is_ok_and(|n| n == 1 && v[0] == b'y')
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

    /// A symlink in the upper dir (a directory swapped for one, say) is an
    /// entry like any other: nothing of where it points is listed.
    #[test]
    fn links_are_never_followed() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(host.path(), upper.path().join("evil")).unwrap();
        let got: Vec<String> = walk(upper.path(), &[lower.path().to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|(k, p)| format!("{} {p}", k.letter()))
            .collect();
        assert_eq!(got, ["A /evil"]);
    }
}
