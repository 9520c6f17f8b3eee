//! Deleting a removed container's directory (its record, upper and work
//! dirs) without making the user wait for the disk: the directory is
//! renamed into `<root>/trash` — from that instant the container is gone —
//! and a child process deletes it. On hosts whose filesystem discards
//! freed blocks synchronously that deletion takes over a millisecond per
//! container. containerd's overlay snapshotter removes snapshots the same
//! way (rename now, delete in the background).
//!
//! A remover holds a lock on the entry it deletes; an entry nobody holds
//! (its remover was killed) is picked up by the next [`sweep`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

fn trash_dir(root: &Path) -> PathBuf {
    root.join("trash")
}

/// Move `dir` (which must hold no mount point: see
/// `berth_snapshot::release_rootfs`) into the trash of `root` and delete it
/// in the background. Nothing to do when `dir` is gone already.
pub fn discard(root: &Path, dir: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    let trash = trash_dir(root);
    let name = dir
        .file_name()
        .context("a directory to discard has a name")?;
    std::fs::create_dir_all(&trash).with_context(|| format!("create {}", trash.display()))?;
    let entry = trash.join(name);
    std::fs::rename(dir, &entry)
        .with_context(|| format!("move {} to {}", dir.display(), entry.display()))?;
    remove_in_background(vec![entry]);
    Ok(())
}

/// Start removing trash entries no remover holds (left by one that was
/// killed). Best effort: errors only mean a later sweep tries again.
pub fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(trash_dir(root)) else {
        return;
    };
    let abandoned: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::File::open(p).is_ok_and(|f| f.try_lock().is_ok()))
        .collect();
    if !abandoned.is_empty() {
        remove_in_background(abandoned);
    }
}

/// Delete `entries` in a child process that outlives this one; in this
/// process when there is no safe way to fork.
fn remove_in_background(entries: Vec<PathBuf>) {
    // fork() copies only the calling thread: with others running, one may
    // hold a lock (malloc's) the child would then wait on for ever.
    if threads() != Some(1) {
        remove_all(&entries);
        return;
    }
    // SAFETY: single-threaded (checked above), so the child may run
    // ordinary Rust code; it leaves only through _exit.
    match unsafe { libc::fork() } {
        0 => {
            detach();
            remove_all(&entries);
            // SAFETY: ends the child without running the parent's atexit
            // handlers or flushing its copy of the parent's buffers.
            unsafe { libc::_exit(0) }
        }
        -1 => remove_all(&entries),
        _ => {}
    }
}

/// The child lets go of everything of its parent's: a pipe it kept open
/// (the caller's stdout, say) would keep the caller waiting for its end.
fn detach() {
    // SAFETY: plain syscalls on descriptors this process owns.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        libc::close_range(3, u32::MAX, 0);
    }
}

fn remove_all(entries: &[PathBuf]) {
    for e in entries {
        // Held while deleting, so a sweep leaves this entry alone.
        let Ok(f) = std::fs::File::open(e) else {
            continue;
        };
        if f.try_lock().is_err() {
            continue;
        }
        if let Err(err) = berth_snapshot::remove_tree(e) {
            tracing::warn!("remove {}: {err}", e.display());
        }
    }
}

/// Number of threads of this process (field 20 of /proc/self/stat).
fn threads() -> Option<usize> {
    berth_linux::stat::Stat::of_self().and_then(|s| s.threads.try_into().ok())
}
