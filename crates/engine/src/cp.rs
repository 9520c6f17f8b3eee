//! `cp`: files between a container and the host, as tar streams, with
//! Docker's rules for what lands where (a trailing `/.` copies a
//! directory's contents, an existing directory takes the source by name,
//! a missing destination is created, `-a` keeps owners, `-L` follows a
//! symlink named as the source).
//!
//! Every path inside the container is resolved in its root
//! (berth-snapshot's [`Root`]: `..` and absolute symlinks stop at the
//! container's `/`), nothing below the source is followed (symlinks are
//! copied as symlinks), and what is written in goes through the layer
//! applier's safe extraction ([`berth_snapshot::extract_archive`]), so a
//! symlink in the container never makes `cp` read or write outside it; the
//! host side extracts the same way, so a container's stream cannot reach
//! past the destination either (nor plant device nodes on the host).
//!
//! The container's root: a running container's is its first process's
//! (`/proc/PID/root`), with everything mounted in it (volumes,
//! /etc/hostname); a stopped one's upper dir is mounted again with its
//! image's snapshots (under the records lock, so no run or rm starts
//! meanwhile), opened, and at once detached: the open root keeps the
//! mount alive for the copy and nothing is left mounted, even if berth is
//! killed. A stopped container's volumes are not reached (they are
//! mounted only while it runs).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_runtime::process::Process;
use berth_snapshot::archive::{self, Kind};
use berth_snapshot::{ApplyMode, ApplyOptions, Root};

use crate::Engine;
use crate::records::ContainerRecord;

/// `cp`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpOptions {
    /// `-a`: keep the source's owners (else: the destination's root, or
    /// the user running berth on the host).
    pub archive: bool,
    /// `-L`: follow a symlink named as the source.
    pub follow_link: bool,
}

/// An error of the container side, which Docker's CLI prints as the
/// daemon's (`Error response from daemon: …`).
#[derive(Debug)]
pub struct DaemonError(pub String);

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DaemonError {}

fn daemon(msg: String) -> anyhow::Error {
    DaemonError(msg).into()
}

/// Where a copy out of the container goes.
pub enum HostDst<'a> {
    /// A host path, Docker's rules.
    Path(&'a Path),
    /// A tar stream (`-`).
    Stream(&'a mut dyn Write),
}

/// Where a copy into the container comes from.
pub enum HostSrc<'a> {
    /// A host path.
    Path(&'a Path),
    /// A tar stream (`-`), extracted into the destination directory.
    Stream(&'a mut dyn Read),
}

/// The container `key` names, as `cp` reports a missing one.
fn find(engine: &Engine, key: &str) -> Result<ContainerRecord> {
    engine.records()?.find(key).map_err(|e| {
        match e.to_string().strip_prefix("no such container: ") {
            Some(k) => daemon(format!("No such container: {k}")),
            None => e,
        }
    })
}

/// A container's root, open.
struct CtrRoot {
    root: Root,
    /// For a stopped container, its filesystem lock for as long as the
    /// copy holds its (detached) overlay: a `start` then waits, rather
    /// than mount a second overlay over the same upper dir.
    _fs_lock: Option<std::fs::File>,
}

impl CtrRoot {
    /// A path naming the open root, for what opens a root by path.
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.root.fd().as_raw_fd()))
    }
}

/// The root of a running container's first process, if it is running.
fn running_root(c: &ContainerRecord) -> Result<Option<Root>> {
    let (Some(pid), Some(start)) = (c.pid, c.pid_start) else {
        return Ok(None);
    };
    let Some(p) = Process::open(pid, start)? else {
        return Ok(None);
    };
    let root = match Root::open(Path::new(&format!("/proc/{pid}/root"))) {
        Ok(r) => r,
        Err(_) if p.exited() => return Ok(None),
        Err(e) => return Err(e).context("opening the container's root"),
    };
    // Opened while the pidfd pinned it and it had not exited: its pid was
    // not reused, the root is the container's.
    Ok((!p.exited()).then_some(root))
}

fn open_root(engine: &Engine, c: &ContainerRecord) -> Result<CtrRoot> {
    if crate::rootless::active() && !crate::rootless::in_own_userns() {
        rootless_enter(c)?;
    }
    if c.is_running()
        && let Some(root) = running_root(c)?
    {
        return Ok(CtrRoot {
            root,
            _fs_lock: None,
        });
    }
    let records = engine.records()?;
    let lock = records.lock()?;
    let c = records.load(&c.id)?;
    if c.is_running() {
        drop(lock);
        if let Some(root) = running_root(&c)? {
            return Ok(CtrRoot {
                root,
                _fs_lock: None,
            });
        }
        bail!("container {} is starting or stopping: try again", c.name);
    }
    let cdir = records.dir(&c.id);
    let fs_lock = records.fs_lock(&c.id)?;
    let lowers = crate::rootfs_prep::lowers_of(engine, &c)?;
    let scratch = engine.scratch_dir(&c.id);
    let mounted = berth_snapshot::remount_rootfs(&cdir, &lowers, Some(&scratch))?;
    let rootfs = cdir.join("rootfs");
    let root = Root::open(&rootfs).with_context(|| format!("open {}", rootfs.display()));
    if mounted {
        // The open root holds the mount; nothing stays mounted in the root dir.
        crate::rootfs_prep::unmount_rootfs(&cdir)?;
    }
    Ok(CtrRoot {
        root: root?,
        _fs_lock: Some(fs_lock),
    })
}

/// Rootless, a container's files are reached from inside a user
/// namespace: a running container's own (a fresh one of berth's, as other
/// commands use, is a stranger to it, and /proc would refuse its root); for
/// a stopped one, berth's, where its overlay can be mounted (this process
/// runs again there).
pub(crate) fn rootless_enter(c: &ContainerRecord) -> Result<()> {
    if c.is_running()
        && let (Some(pid), Some(start)) = (c.pid, c.pid_start)
        && let Some(p) = Process::open(pid, start)?
    {
        return p
            .join_user_namespace()
            .with_context(|| format!("join the user namespace of container {}", c.name));
    }
    crate::rootless::reexec_in_userns()
}

/// The last name of `p` as `cp` names the copy: `.` for a `/.` source
/// (its contents), `.` for the root itself.
fn base_name(p: &str) -> PathBuf {
    let cleaned = berth_snapshot::resolve::clean(p.as_bytes()).unwrap_or_default();
    if contents_of(p) {
        return PathBuf::from(".");
    }
    cleaned
        .file_name()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// `DIR/.`: the directory's contents, not the directory.
fn contents_of(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

/// A container path as the resolver takes it: relative to the root, `..`
/// stopping there (Docker's leading `/` is optional).
/// `..` is folded first, as Docker's `filepath.Clean` does, never above `/`.
pub(crate) fn in_root(p: &str) -> PathBuf {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = PathBuf::from(".");
    out.extend(parts);
    out
}

/// Copies `src` of container `key` to the host.
pub fn copy_out(
    engine: &Engine,
    key: &str,
    src: &str,
    dst: HostDst<'_>,
    opts: CpOptions,
) -> Result<()> {
    let c = find(engine, key)?;
    let ctr = open_root(engine, &c)?;
    let follow = opts.follow_link || src.ends_with('/') || contents_of(src);
    let path = in_root(src);
    let not_found = || daemon(format!("Could not find the file {src} in container {key}"));
    let kind = archive::stat_path(&ctr.root, &path, follow)
        .map_err(|e| daemon(format!("{src}: {e}")))?
        .ok_or_else(not_found)?;
    if (src.ends_with('/') || contents_of(src)) && kind != Kind::Dir {
        return Err(daemon(format!("{src}: not a directory")));
    }
    let name = base_name(src);
    let dst = match dst {
        HostDst::Stream(w) => return archive::write_archive(&ctr.root, &path, follow, &name, w),
        HostDst::Path(p) => p,
    };
    let (into, under, name) = host_target(dst, kind == Kind::Dir, name)?;
    let owner = (!opts.archive).then(|| {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    });
    let xopts = ApplyOptions {
        mode: ApplyMode::Plain,
        under,
        owner,
        skip_devices: true,
        ..Default::default()
    };
    piped(
        |w| archive::write_archive(&ctr.root, &path, follow, &name, w),
        |r| berth_snapshot::extract_archive(r, &into, &xopts).map(drop),
    )
}

/// Where on the host a copy named `name` goes, by Docker's rules: the
/// directory to extract in, the subdirectory of it the stream lands in,
/// and the name the copy takes.
fn host_target(dst: &Path, src_is_dir: bool, name: PathBuf) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let shown = dst.display();
    match std::fs::metadata(dst) {
        Ok(m) if m.is_dir() => Ok((dst.to_path_buf(), PathBuf::from("."), name)),
        Ok(_) if src_is_dir => {
            bail!("cannot overwrite non-directory \"{shown}\" with a directory")
        }
        Ok(_) => split_dest(dst),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dst.as_os_str().as_encoded_bytes().ends_with(b"/") && !src_is_dir {
                bail!("destination directory \"{shown}\" does not exist");
            }
            split_dest(dst)
        }
        Err(e) => Err(e).with_context(|| format!("stat {shown}")),
    }
}

/// `dst` as its parent directory, which must exist, and its last name.
fn split_dest(dst: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let name = dst
        .file_name()
        .with_context(|| format!("invalid destination {}", dst.display()))?;
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("no such directory: {}", parent.display());
    }
    Ok((parent, PathBuf::from("."), PathBuf::from(name)))
}

/// Runs `produce` (writing a tar stream) and `consume` (reading it) at
/// once, through a pipe: nothing is held in memory or on disk. A consumer
/// that stops early closes its end, and the producer's write fails.
fn piped(
    produce: impl FnOnce(&mut dyn Write) -> Result<()> + Send,
    consume: impl FnOnce(&mut dyn Read) -> Result<()>,
) -> Result<()> {
    let (mut r, w) = std::io::pipe().context("pipe")?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut w = w;
            produce(&mut w)
        });
        let consumed = consume(&mut r);
        drop(r);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("archiving thread panicked")));
        match (produced, consumed) {
            // The consumer stopped first (it refused an entry): its reason.
            (Err(p), Err(c)) if broken_pipe(&p) => Err(c),
            // Otherwise the producer's error says why the stream ended early.
            (Err(p), _) => Err(p),
            (Ok(()), c) => c,
        }
    })
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether `path` (its symlinks followed, in the root) is a directory
/// in container `key`.
pub(crate) fn is_dir(engine: &Engine, key: &str, path: &str) -> Result<bool> {
    let c = find(engine, key)?;
    let ctr = open_root(engine, &c)?;
    Ok(archive::stat_path(&ctr.root, &in_root(path), true)? == Some(Kind::Dir))
}

/// `f` of container `key`'s root, open (a `COPY --from`'s globs read
/// names in it; every path is resolved inside it).
pub(crate) fn in_container<T>(
    engine: &Engine,
    key: &str,
    f: impl FnOnce(&Root) -> Result<T>,
) -> Result<T> {
    let c = find(engine, key)?;
    let ctr = open_root(engine, &c)?;
    f(&ctr.root)
}

/// Extracts the tar stream `r` into container `key` below `under` (made
/// when missing), `..` never climbing above it, owners as in the stream
/// unless `owner` says otherwise: ADD's unpacking of a local archive.
pub(crate) fn extract_under(
    engine: &Engine,
    key: &str,
    under: &str,
    owner: Option<(u32, u32)>,
    r: &mut dyn Read,
) -> Result<()> {
    let c = find(engine, key)?;
    let ctr = open_root(engine, &c)?;
    let xopts = ApplyOptions {
        mode: ApplyMode::Plain,
        under: in_root(under),
        owner,
        ..Default::default()
    };
    berth_snapshot::extract_archive(r, &ctr.path(), &xopts)?;
    Ok(())
}

/// Copies `src` from the host into container `key` at `dst`.
pub fn copy_in(
    engine: &Engine,
    key: &str,
    dst: &str,
    src: HostSrc<'_>,
    opts: CpOptions,
) -> Result<()> {
    let c = find(engine, key)?;
    let ctr = open_root(engine, &c)?;
    let path = in_root(dst);
    let dkind =
        archive::stat_path(&ctr.root, &path, true).map_err(|e| daemon(format!("{dst}: {e}")))?;
    let st = rustix::fs::fstat(ctr.root.fd()).context("stat the container's root")?;
    let owner = (!opts.archive).then_some((st.st_uid, st.st_gid));
    let xopts = |under: PathBuf| ApplyOptions {
        mode: ApplyMode::Plain,
        under,
        owner,
        ..Default::default()
    };
    let into = ctr.path();
    let src = match src {
        HostSrc::Stream(r) => {
            match dkind {
                None => {
                    return Err(daemon(format!(
                        "Could not find the file {dst} in container {key}"
                    )));
                }
                Some(Kind::Dir) => {}
                Some(_) => return Err(daemon("extraction point is not a directory".into())),
            }
            berth_snapshot::extract_archive(r, &into, &xopts(path))?;
            return Ok(());
        }
        HostSrc::Path(p) => p,
    };
    let shown = src.display().to_string();
    let follow = opts.follow_link || shown.ends_with('/') || contents_of(&shown);
    let meta = if follow {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .with_context(|| format!("lstat {shown}"))?;
    if (shown.ends_with('/') || contents_of(&shown)) && !meta.is_dir() {
        bail!("{shown}: not a directory");
    }
    let (under, name) = match dkind {
        Some(Kind::Dir) => (path, base_name(&shown)),
        Some(_) if meta.is_dir() => {
            return Err(daemon(format!(
                "cannot overwrite non-directory \"{dst}\" with a directory"
            )));
        }
        _ => container_dest(&ctr.root, dst, &path, dkind.is_some(), meta.is_dir(), key)?,
    };
    let host_path = host_source(src)?;
    let host = Root::open(Path::new("/")).context("open /")?;
    piped(
        |w| archive::write_archive(&host, &host_path, follow, &name, w),
        |r| berth_snapshot::extract_archive(r, &into, &xopts(under)).map(drop),
    )
}

/// A missing (or non-directory) container destination: its parent must
/// be a directory; the copy takes its name.
fn container_dest(
    root: &Root,
    dst: &str,
    path: &Path,
    exists: bool,
    src_is_dir: bool,
    key: &str,
) -> Result<(PathBuf, PathBuf)> {
    if !exists && dst.ends_with('/') && !src_is_dir {
        return Err(daemon(format!(
            "destination directory {dst} does not exist in container {key}"
        )));
    }
    let name = path
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| daemon(format!("invalid destination {dst}")))?;
    let parent = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match archive::stat_path(root, &parent, true).map_err(|e| daemon(format!("{dst}: {e}")))? {
        Some(Kind::Dir) => Ok((parent, name)),
        _ => Err(daemon(format!(
            "Could not find the file {} in container {key}",
            Path::new("/")
                .join(parent.strip_prefix(".").unwrap_or(&parent))
                .display()
        ))),
    }
}

/// A host source as a path from the host's `/`: the host's paths are the
/// user's own, their symlinks resolved as the host resolves them (`-L` to
/// an absolute target included).
fn host_source(src: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(src).with_context(|| format!("{}", src.display()))?;
    Ok(abs.strip_prefix("/").unwrap_or(&abs).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_as_docker_takes_them() {
        assert_eq!(base_name("/etc/passwd"), PathBuf::from("passwd"));
        assert_eq!(base_name("/etc/"), PathBuf::from("etc"));
        assert_eq!(base_name("/etc/."), PathBuf::from("."));
        assert_eq!(base_name("/"), PathBuf::from("."));
        assert_eq!(in_root("/a//b/./c"), PathBuf::from("./a/b/c"));
        assert_eq!(in_root("a/../../b"), PathBuf::from("./b"));
        assert_eq!(in_root("/../.."), PathBuf::from("."));
        assert!(contents_of("/x/.") && contents_of(".") && !contents_of("/x/.y"));
    }
}
