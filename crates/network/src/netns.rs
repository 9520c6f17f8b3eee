//! Network namespaces kept on files, as `ip netns` keeps them: the
//! namespace's nsfs file bind-mounted over an empty file, so that it lives
//! from the container's set-up until its removal, whatever its processes do,
//! and the runtime joins it by path (`linux.namespaces[].path`).
//!
//! Making one moves the calling thread into the new namespace and back:
//! the caller must not be sharing the thread's network namespace with
//! anything that runs meanwhile (berth is single-threaded there).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::UnmountFlags;
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::{Error, Result};

/// A network namespace kept on a file.
pub struct NetNs {
    path: PathBuf,
    file: File,
}

impl NetNs {
    /// Makes a new network namespace and keeps it on `path` (a file that
    /// must not exist yet; its directory must). Its loopback is down.
    pub fn create(path: &Path) -> Result<NetNs> {
        let what = || format!("create network namespace {}", path.display());
        File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(what(), e))?;
        let made = Back::to_current()
            .and_then(|back| {
                // SAFETY: only the network namespace is unshared, never the
                // fd table that makes unshare unsafe.
                unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }
                    .map_err(|e| Error::io(what(), e.into()))?;
                let bound = rustix::mount::mount_bind("/proc/thread-self/ns/net", path)
                    .map_err(|e| Error::io(what(), e.into()));
                back.go()?;
                bound
            })
            .and_then(|()| NetNs::open(path));
        if made.is_err() {
            let _ = rustix::mount::unmount(path, UnmountFlags::DETACH);
            let _ = std::fs::remove_file(path);
        }
        made
    }

    /// The namespace kept on `path`.
    pub fn open(path: &Path) -> Result<NetNs> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
        Ok(NetNs {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` with the calling thread in this namespace (sockets it
    /// opens stay there), then moves the thread back.
    pub fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let back = Back::to_current()?;
        rustix::thread::move_into_link_name_space(self.fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| Error::io(format!("enter {}", self.path.display()), e.into()))?;
        let r = f();
        back.go()?;
        r
    }

    /// Lets the namespace go (it ends once no process is in it) and
    /// removes its file. Also for a file a killed berth left, mounted or not.
    pub fn remove(path: &Path) -> Result<()> {
        match rustix::mount::unmount(path, UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("unmount network namespace {}", path.display()),
                    e.into(),
                ));
            }
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                format!("remove network namespace {}", path.display()),
                e,
            )),
            _ => Ok(()),
        }
    }
}

/// The thread's network namespace before a move, to go back to.
struct Back(OwnedFd);

impl Back {
    fn to_current() -> Result<Back> {
        rustix::fs::open(
            "/proc/thread-self/ns/net",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map(Back)
        .map_err(|e| Error::io("open this thread's network namespace".into(), e.into()))
    }

    fn go(self) -> Result<()> {
        rustix::thread::move_into_link_name_space(self.0.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| Error::io("return to berth's network namespace".into(), e.into()))
    }
}
