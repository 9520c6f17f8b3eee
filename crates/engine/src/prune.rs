//! What containers take on disk (`ps -s`), and `container prune`.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::Engine;
use crate::records::ContainerRecord;

/// Bytes a container has written: the files of its overlay upper dir (in
/// its own dir, or its scratch dir when its own cannot hold one), or of
/// its private copy when overlay could not be used. Docker's SizeRw.
pub fn container_size(engine: &Engine, id: &str) -> u64 {
    let Ok(records) = engine.records() else {
        return 0;
    };
    let cdir = records.dir(id);
    let candidates = [cdir.join("upper"), engine.scratch_dir(id).join("upper")];
    if let Some(upper) = candidates.iter().find(|p| p.is_dir()) {
        return tree_size(upper);
    }
    // No upper dir: a private copy is the rootfs itself (an empty mount
    // point when the container is not running: size 0).
    tree_size(&cdir.join("rootfs"))
}

/// Sum of the sizes of the files under `dir` (directories not counted,
/// hard links once, symlinks not followed, other filesystems not entered):
/// what Docker's directory size counts.
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut todo: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != top.dev() {
                continue;
            }
            if m.is_dir() {
                todo.push(e.path());
            } else if m.nlink() < 2 || seen.insert(m.ino()) {
                total += m.len();
            }
        }
    }
    total
}

/// A container `container prune` removed, and the bytes it had written.
pub struct Pruned {
    pub id: String,
    pub size: u64,
}

/// Removes every container that is not running (nor restarting, nor
/// being started or watched by a live berth) and that `selected` accepts.
pub fn prune_containers(
    engine: &Engine,
    selected: impl Fn(&ContainerRecord) -> bool,
) -> Result<Vec<Pruned>> {
    let records = engine.records()?;
    let _lock = records.lock()?;
    let mut out = Vec::new();
    for c in records.list()? {
        if c.is_running() || c.supervisor_alive() || !selected(&c) {
            continue;
        }
        let size = container_size(engine, &c.id);
        crate::remove::remove_files(engine, &c.id, true)?;
        out.push(Pruned { id: c.id, size });
    }
    Ok(out)
}
