//! The runtime's own binary, out of reach of a container that can see
//! the runtime process (CVE-2019-5736).
//!
//! A container with a PID namespace of its own never sees the runtime, and
//! its command is exec'd through the trampoline (see `trampoline`). One
//! without (or, later, an exec that joins a container's PID namespace) can
//! open /proc/PID/exe of the runtime: then the runtime must run from a
//! binary no container can write through, and [`ensure_sealed`]
//! re-executes it from one (an exec of berth's binary, ~1.5 ms here):
//! - [`Seal::Copy`]: a copy in `<dir>/berth-<identity>` bind-mounted
//!   read-only onto itself, made once per binary version (under a lock).
//!   A write through /proc/PID/exe, an fd on it or a reopen fails with
//!   EROFS; the mount is in the runtime's mount namespace, which no
//!   container can remount.
//! - [`Seal::Memfd`]: a sealed memfd copy (F_SEAL_WRITE…), made at every
//!   run; also the fallback where no mount is allowed.
//!
//! A binary already on a read-only mount, or a sealed memfd, is kept.

use crate::error::{Context, Error, Result};
use rustix::fs::{Mode, OFlags, StatVfsMountFlags};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How to protect the binary, as the caller knows its situation.
#[derive(Debug, Clone)]
pub enum Seal {
    /// Root in the host's namespaces: a read-only copy kept in this directory.
    Copy(PathBuf),
    /// A sealed memfd copy, made at every run.
    Memfd,
}

/// Set in the re-executed process, so that a protection that did not take
/// fails loudly instead of re-executing for ever. Never used to skip it.
const MARK: &str = "_BERTH_SEALED";

/// Whether this process runs from a binary no container can write through.
pub fn is_sealed() -> bool {
    let Ok(fd) = rustix::fs::open(
        "/proc/self/exe",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    is_protected(fd.as_fd())
}

fn is_protected(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    if rustix::fs::fstatvfs(fd).is_ok_and(|s| s.f_flag.contains(StatVfsMountFlags::RDONLY)) {
        return true;
    }
    // F_GET_SEALS needs an fd that is not O_PATH; memfds are always readable.
    let Ok(f) = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    rustix::fs::fcntl_get_seals(&f).is_ok_and(|s| s.contains(rustix::fs::SealFlags::WRITE))
}

/// Make sure this process runs from a protected binary: return at once if
/// it does, else re-execute it (same arguments and environment) from one
/// that is. Call it first thing, before threads and before any container.
pub fn ensure_sealed(how: &Seal) -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    if std::env::var_os(MARK).is_some() {
        return Err(Error::setup(
            "berth's binary could not be protected from containers (CVE-2019-5736): \
             the re-executed binary is still writable",
        ));
    }
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .step(|| "open berth's own binary".into())?;
    let protected = match how {
        Seal::Copy(dir) => sealed_copy(exe.as_fd(), dir),
        Seal::Memfd => return memfd_reexec(exe.as_fd()),
    };
    match protected {
        Ok(path) => reexec(&path),
        Err(e) => {
            // No mount allowed here (a container without CAP_SYS_ADMIN, say):
            // a memfd needs no privilege, only a copy of the binary per run.
            tracing::debug!("{}; running from a sealed memfd instead", e.message);
            memfd_reexec(exe.as_fd())
        }
    }
}

fn memfd_reexec(exe: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    let fd = memfd_copy(exe)?;
    reexec(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))
}

fn reexec(path: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let err = std::process::Command::new(path)
        .arg0(argv0)
        .args(args)
        .env(MARK, "1")
        .exec();
    Err(err).step(|| format!("re-execute {}", path.display()))
}

/// The read-only copy of the binary `exe` in `dir`, made if missing.
fn sealed_copy(exe: std::os::fd::BorrowedFd<'_>, dir: &Path) -> Result<PathBuf> {
    let st = rustix::fs::fstat(exe)
        .map_err(std::io::Error::from)
        .step(|| "stat berth's own binary".into())?;
    // Names this build of the binary: a new install is a new file.
    let name = format!(
        "berth-{:x}-{:x}-{:x}-{}.{}",
        st.st_dev, st.st_ino, st.st_size, st.st_mtime, st.st_mtime_nsec
    );
    let path = dir.join(&name);
    let ready = |p: &Path| {
        rustix::fs::statvfs(p).is_ok_and(|s| s.f_flag.contains(StatVfsMountFlags::RDONLY))
    };
    if ready(&path) {
        return Ok(path);
    }
    create_private_dir(dir)?;
    let lock = std::fs::File::open(dir).step(|| format!("open {}", dir.display()))?;
    lock.lock().step(|| format!("lock {}", dir.display()))?;
    if ready(&path) {
        return Ok(path);
    }
    prune(dir);
    let tmp = dir.join(format!(".{name}.tmp"));
    let out = rustix::fs::open(
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o555),
    )
    .map_err(std::io::Error::from)
    .step(|| format!("create {}", tmp.display()))?;
    copy_all(exe, out.as_fd(), st.st_size as u64).step(|| format!("copy to {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, &path).step(|| format!("rename {}", tmp.display()))?;
    bind_read_only(&path).step(|| format!("protect {}", path.display()))?;
    Ok(path)
}

/// Copies kept: a few binaries (an upgrade, tools built from one tree) may
/// take turns; older ones go, and a process still running one keeps it alive.
const KEPT: usize = 4;

fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut copies: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(KEPT - 1);
    for (_, p) in copies.into_iter().take(excess) {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_file(&p);
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(e).step(|| format!("create {}", dir.display())),
    }
}

/// Bind `path` onto itself and make that mount read-only (and nosuid: the
/// copy needs no set-id bits).
fn bind_read_only(path: &Path) -> std::io::Result<()> {
    use rustix::mount::{MountFlags, mount_bind, mount_remount};
    mount_bind(path, path)?;
    let ro = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
    if let Err(e) = mount_remount(path, ro, "") {
        let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
        return Err(e.into());
    }
    Ok(())
}

/// A sealed in-memory copy of `exe`: no write, resize or new seal possible.
fn memfd_copy(exe: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let name = CString::new(b"berth".as_slice()).unwrap_or_default();
    let fd = rustix::fs::memfd_create(&name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(std::io::Error::from)
        .step(|| "memfd_create".into())?;
    let size = rustix::fs::fstat(exe)
        .map_err(std::io::Error::from)
        .step(|| "stat berth's own binary".into())?
        .st_size as u64;
    copy_all(exe, fd.as_fd(), size).step(|| "copy berth's binary to a memfd".into())?;
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .map_err(std::io::Error::from)
    .step(|| "seal the memfd".into())?;
    Ok(fd)
}

fn copy_all(
    from: std::os::fd::BorrowedFd<'_>,
    to: std::os::fd::BorrowedFd<'_>,
    size: u64,
) -> std::io::Result<()> {
    let mut off: u64 = 0;
    while off < size {
        let left = (size - off) as usize;
        let n = rustix::fs::sendfile(to, from, Some(&mut off), left)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "binary shrank while copied",
            ));
        }
    }
    Ok(())
}
