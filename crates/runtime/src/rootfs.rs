//! The container's filesystem view, built inside its mount namespace: mount
//! propagation cut off from the host, the rootfs bound onto itself, the
//! spec's mounts placed strictly inside the rootfs, a fresh /dev (see
//! `dev`), then pivot_root (or, where it cannot be had, a move onto / and
//! chroot: see `switch`) and the finishing touches (console, masked and
//! read-only paths, read-only root).

mod dev;
mod switch;

pub(crate) use switch::pivot;

use crate::error::{Context, Error, Result};
use crate::sys::{self, cstr, fd_path, openat2};
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Lookups beneath the rootfs: `..` and absolute symlinks are clamped to the
/// rootfs, magic links (/proc/self/root and friends) refused.
const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// Parsed `options` of a spec mount.
#[derive(Default, Debug)]
struct MountOptions {
    flags: libc::c_ulong,
    propagation: Vec<libc::c_ulong>,
    data: Vec<String>,
}

fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation_flag(opt).unwrap_or(0));
                continue;
            }
            // runc-specific hint we do not implement; not a kernel option.
            "tmpcopyup" => continue,
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// The rootfs-relative form of a container path (`/dev/pts` → `dev/pts`).
fn relative(dest: &Path) -> PathBuf {
    let rel: PathBuf = dest
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

fn is_enoent(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Open (O_PATH) directory `rel` beneath `root`, creating missing components
/// one by one, each created relative to its already resolved parent. A
/// dangling symlink on the way is followed (inside the root) and its target
/// created, as runc does.
fn mkdir_all(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let mut todo = rel.to_path_buf();
    // Bounded like the kernel's own symlink following.
    for _ in 0..40 {
        match mkdir_all_once(root, &todo)? {
            Ok(fd) => return Ok(fd),
            Err(next) => todo = next,
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// One pass of [`mkdir_all`]: Ok(Ok(fd)) when done, Ok(Err(path)) when a
/// dangling symlink redirected the walk to `path`.
fn mkdir_all_once(
    root: BorrowedFd<'_>,
    rel: &Path,
) -> io::Result<std::result::Result<OwnedFd, PathBuf>> {
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut cur = PathBuf::from(".");
    let mut fd = openat2(root, &cur, dir_flags, IN_ROOT)?;
    let comps: Vec<Component<'_>> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let parent = cur.clone();
        cur.push(comp.as_os_str());
        fd = match openat2(root, &cur, dir_flags, IN_ROOT) {
            Ok(f) => f,
            Err(e) if is_enoent(&e) => {
                let name = cstr(comp.as_os_str())?;
                // SAFETY: fd is a directory fd, name a valid string.
                let r = unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755) };
                if r == -1 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                    // It exists but does not resolve: a dangling symlink.
                    let Some(target) = read_link(fd.as_fd(), &name)? else {
                        return Err(e);
                    };
                    let target = target.as_path();
                    let mut next = if target.is_absolute() {
                        relative(target)
                    } else {
                        parent.join(target)
                    };
                    for c in &comps[i + 1..] {
                        next.push(c.as_os_str());
                    }
                    return Ok(Err(next));
                }
                openat2(root, &cur, dir_flags, IN_ROOT)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(Ok(fd))
}

/// Open the mount point `dest` inside the rootfs, creating it (a directory,
/// or an empty file when a file is to be bind-mounted) if missing. A
/// dangling symlink on the way or at the end is followed inside the rootfs
/// and its target created, as runc does: images ship /etc/resolv.conf as a
/// link into a /run they lack.
fn mount_target(root: BorrowedFd<'_>, dest: &Path, dir: bool) -> io::Result<OwnedFd> {
    let mut rel = relative(dest);
    // Bounded like the kernel's own symlink following.
    for _ in 0..40 {
        match openat2(root, &rel, libc::O_PATH, IN_ROOT) {
            Ok(fd) => return Ok(fd),
            Err(e) if is_enoent(&e) => {}
            Err(e) => return Err(e),
        }
        if dir {
            return mkdir_all(root, &rel);
        }
        let parent_rel = rel.parent().unwrap_or(Path::new(".")).to_path_buf();
        let Some(file_name) = rel.file_name() else {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        };
        let parent = mkdir_all(root, &parent_rel)?;
        let name = cstr(file_name)?;
        // O_EXCL|O_NOFOLLOW: never follow a (dangling) symlink while creating.
        // SAFETY: parent is a directory fd, name a valid string.
        let r = unsafe {
            libc::openat(
                parent.as_raw_fd(),
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        if r != -1 {
            // SAFETY: r is a fresh fd we own.
            unsafe { libc::close(r) };
            return openat2(
                parent.as_fd(),
                Path::new(file_name),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
            );
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
        // It exists yet did not resolve: a dangling symlink; go where it points.
        match read_link(parent.as_fd(), &name)? {
            Some(target) if target.is_absolute() => rel = relative(&target),
            Some(target) => rel = parent_rel.join(target),
            // Made by someone else meanwhile: look again.
            None => {}
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// The target of symlink `name` in `dir`, None when it is not a symlink.
fn read_link(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<Option<PathBuf>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is a writable buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(PathBuf::from(OsStr::from_bytes(&buf))))
}

fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: stat is plain data; fd is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Set up everything before pivot_root. `rootfs` is absolute.
/// `cgroup_v1`: the v1 hierarchies the container is in, when it has a
/// cgroup on v1: its /sys/fs/cgroup shows those. `nodev_root`: device
/// nodes on the root filesystem do not open (a container without a
/// device cgroup of its own would otherwise reach any device an image
/// ships a node for; its /dev is a mount of its own).
pub(crate) fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroup_v1: Option<&[crate::cgroups::Hierarchy]>,
    nodev_root: bool,
) -> Result<()> {
    let linux = spec.linux().as_ref();
    // 1. Nothing we mount may propagate back to the host.
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) if !p.is_empty() => propagation_flag(p)
            .map(|f| f | libc::MS_REC)
            .ok_or_else(|| Error::setup(format!("invalid rootfsPropagation {p:?}")))?,
        _ => libc::MS_PRIVATE | libc::MS_REC,
    };
    sys::mount(None, OsStr::new("/"), None, prop, None)
        .step(|| "make / mount propagation private".into())?;

    // 2. pivot_root needs the new root to be a mount point.
    sys::mount(
        Some(rootfs.as_os_str()),
        rootfs.as_os_str(),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .step(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    // A shared rootfs parent makes pivot_root fail with EINVAL.
    sys::mount(None, rootfs.as_os_str(), None, libc::MS_PRIVATE, None)
        .step(|| format!("make rootfs {} private", rootfs.display()))?;
    if nodev_root {
        // A bind remount replaces every per-mount flag: keep the others.
        let kept = rustix::fs::statvfs(rootfs)
            .map(|v| mount_flags_of(v.f_flag))
            .map_err(std::io::Error::from)
            .step(|| format!("statvfs rootfs {}", rootfs.display()))?;
        sys::mount(
            None,
            rootfs.as_os_str(),
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NODEV | kept,
            None,
        )
        .step(|| format!("remount rootfs {} nodev", rootfs.display()))?;
    }
    let root = sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY)
        .step(|| format!("open rootfs {}", rootfs.display()))?;

    // 3. The spec's mounts, in order.
    let mut dev_is_tmpfs = false;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        mount_one(root.as_fd(), m, bundle, cgroup_v1)?;
        if relative(m.destination()) == Path::new("dev") {
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind");
            dev_is_tmpfs = !bind;
        }
    }

    // 4. A fresh /dev gets the standard devices and links, like runc.
    if dev_is_tmpfs {
        dev::populate(root.as_fd())?;
    }
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => continue,
        };
        dev::make(
            root.as_fd(),
            d.path(),
            kind | d.file_mode().unwrap_or(0o666),
            d.major() as u32,
            d.minor() as u32,
            d.uid().zip(d.gid()),
        )?;
    }
    Ok(())
}

fn mount_one(
    root: BorrowedFd<'_>,
    m: &Mount,
    bundle: &Path,
    cgroup_v1: Option<&[crate::cgroups::Hierarchy]>,
) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let bind = typ == "bind" || opts.flags & libc::MS_BIND != 0;
    let data = opts.data.join(",");
    let what = |src: &str| format!("mount {src} on {}", dest.display());

    if typ == "cgroup" || typ == "cgroup2" {
        let target = mount_target(root, dest, true).step(|| what("cgroup"))?;
        let reopen = || {
            openat2(
                root,
                &relative(dest),
                libc::O_PATH | libc::O_DIRECTORY,
                IN_ROOT,
            )
        };
        return crate::cgroups::mount_cgroupfs(
            &fd_path(target.as_fd()),
            reopen,
            opts.flags,
            cgroup_v1,
        )
        .map_err(|e| Error::setup(format!("{}: {e}", what("cgroup"))));
    }

    if bind {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_relative() {
            bundle.join(src)
        } else {
            src
        };
        let shown = src.display().to_string();
        let src_fd = sys::open(&src, libc::O_PATH).step(|| what(&shown))?;
        let dir = is_dir(src_fd.as_fd()).step(|| what(&shown))?;
        let target = mount_target(root, dest, dir).step(|| what(&shown))?;
        sys::mount(
            Some(OsStr::new(&fd_path(src_fd.as_fd()))),
            OsStr::new(&fd_path(target.as_fd())),
            None,
            libc::MS_BIND | (opts.flags & libc::MS_REC),
            None,
        )
        .step(|| what(&shown))?;
        // Bind mounts ignore every other flag: ro, nosuid... need a remount.
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            let mounted =
                openat2(root, &relative(dest), libc::O_PATH, IN_ROOT).step(|| what(&shown))?;
            let p = fd_path(mounted.as_fd());
            let keep = sys::mount_flags(OsStr::new(&p)).unwrap_or(0) & !libc::MS_RDONLY;
            sys::mount(
                None,
                OsStr::new(&p),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | extra | keep,
                None,
            )
            .step(|| format!("remount {} with {:?}", dest.display(), m.options()))?;
        }
    } else {
        let source = m
            .source()
            .as_ref()
            .map(|s| s.as_os_str().to_owned())
            .unwrap_or_else(|| typ.into());
        let shown = source.to_string_lossy().into_owned();
        let target = mount_target(root, dest, true).step(|| what(&shown))?;
        let tpath = fd_path(target.as_fd());
        let r = sys::mount(
            Some(&source),
            OsStr::new(&tpath),
            Some(typ),
            opts.flags,
            Some(&data),
        );
        match r {
            // Without its own network namespace a container may not mount
            // sysfs; runc binds the host's /sys read-only instead.
            Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                sys::mount(
                    Some(OsStr::new("/sys")),
                    OsStr::new(&tpath),
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .step(|| what("/sys"))?;
                let mounted =
                    openat2(root, &relative(dest), libc::O_PATH, IN_ROOT).step(|| what("/sys"))?;
                sys::mount(
                    None,
                    OsStr::new(&fd_path(mounted.as_fd())),
                    None,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | opts.flags,
                    None,
                )
                .step(|| what("/sys"))?;
            }
            r => r.step(|| format!("mount {shown} ({typ}) on {}", dest.display()))?,
        }
    }
    for &p in &opts.propagation {
        let mounted = openat2(root, &relative(dest), libc::O_PATH, IN_ROOT)
            .step(|| format!("open {}", dest.display()))?;
        sys::mount(None, OsStr::new(&fd_path(mounted.as_fd())), None, p, None)
            .step(|| format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}

/// The mount flags a bind remount must repeat to keep them, from statvfs.
fn mount_flags_of(f: rustix::fs::StatVfsMountFlags) -> libc::c_ulong {
    use rustix::fs::StatVfsMountFlags as F;
    [
        (F::RDONLY, libc::MS_RDONLY),
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(s, _)| f.contains(*s))
    .fold(0, |m, (_, flag)| m | flag)
}

/// After pivot_root: masked and read-only paths, then the read-only root.
pub(crate) fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask_path(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly_path(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let keep = sys::mount_flags(OsStr::new("/")).unwrap_or(0);
        sys::mount(
            None,
            OsStr::new("/"),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
            None,
        )
        .step(|| "remount root read-only".into())?;
    }
    Ok(())
}

fn mask_path(p: &Path) -> Result<()> {
    let fd = match sys::open(p, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if is_enoent(&e) => return Ok(()),
        Err(e) => return Err(e).step(|| format!("mask {}", p.display())),
    };
    let target = fd_path(fd.as_fd());
    let r = if is_dir(fd.as_fd()).step(|| format!("mask {}", p.display()))? {
        sys::mount(
            Some(OsStr::new("tmpfs")),
            OsStr::new(&target),
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
    } else {
        sys::mount(
            Some(OsStr::new("/dev/null")),
            OsStr::new(&target),
            None,
            libc::MS_BIND,
            None,
        )
    };
    r.step(|| format!("mask {}", p.display()))
}

fn readonly_path(p: &Path) -> Result<()> {
    match sys::mount(
        Some(p.as_os_str()),
        p.as_os_str(),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    ) {
        Err(e) if is_enoent(&e) => return Ok(()),
        r => r.step(|| format!("bind {} read-only", p.display()))?,
    }
    let keep = sys::mount_flags(p.as_os_str()).unwrap_or(0);
    sys::mount(
        None,
        p.as_os_str(),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | keep,
        None,
    )
    .step(|| format!("remount {} read-only", p.display()))
}

/// Bind the pty slave onto /dev/console, as the container's console.
pub(crate) fn bind_console(slave: BorrowedFd<'_>) -> Result<()> {
    let what = || "bind pty onto /dev/console".to_string();
    let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY).step(what)?;
    let target = mount_target(root.as_fd(), Path::new("/dev/console"), false).step(what)?;
    sys::mount(
        Some(OsStr::new(&fd_path(slave))),
        OsStr::new(&fd_path(target.as_fd())),
        None,
        libc::MS_BIND,
        None,
    )
    .step(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "rbind".into(),
            "rslave".into(),
            "mode=755".into(),
            "size=65536k".into(),
        ]);
        assert_eq!(
            o.flags,
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(parse_options(&["ro".into(), "rw".into()]).flags, 0);
    }

    #[test]
    fn destinations_become_rootfs_relative() {
        assert_eq!(relative(Path::new("/dev/pts")), Path::new("dev/pts"));
        assert_eq!(relative(Path::new("/")), Path::new("."));
        assert_eq!(relative(Path::new("/a/../../b")), Path::new("a/../../b"));
    }
}
