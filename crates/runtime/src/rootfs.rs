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
use crate::sys::{self, fd_path, openat2};
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::{
    MountFlags, MountPropagationFlags, mount_bind, mount_bind_recursive, mount_change,
    mount_remount,
};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Lookups beneath the rootfs: `..` and absolute symlinks are clamped to the
/// rootfs, magic links (/proc/self/root and friends) refused.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// MS_REMOUNT, which rustix keeps to its `mount_remount`: a spec mount may
/// ask for it among its options.
const REMOUNT: MountFlags = MountFlags::from_bits_retain(libc::MS_REMOUNT as u32);

/// Parsed `options` of a spec mount.
#[derive(Debug)]
struct MountOptions {
    flags: MountFlags,
    propagation: Vec<MountPropagationFlags>,
    data: Vec<String>,
}

fn parse_options(options: &[String]) -> MountOptions {
    use MountFlags as F;
    let mut o = MountOptions {
        flags: MountFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (F::RDONLY, F::empty()),
            "rw" => (F::empty(), F::RDONLY),
            "nosuid" => (F::NOSUID, F::empty()),
            "suid" => (F::empty(), F::NOSUID),
            "nodev" => (F::NODEV, F::empty()),
            "dev" => (F::empty(), F::NODEV),
            "noexec" => (F::NOEXEC, F::empty()),
            "exec" => (F::empty(), F::NOEXEC),
            "sync" => (F::SYNCHRONOUS, F::empty()),
            "async" => (F::empty(), F::SYNCHRONOUS),
            "dirsync" => (F::DIRSYNC, F::empty()),
            "remount" => (REMOUNT, F::empty()),
            "mand" => (F::PERMIT_MANDATORY_FILE_LOCKING, F::empty()),
            "nomand" => (F::empty(), F::PERMIT_MANDATORY_FILE_LOCKING),
            "atime" => (F::empty(), F::NOATIME),
            "noatime" => (F::NOATIME, F::empty()),
            "diratime" => (F::empty(), F::NODIRATIME),
            "nodiratime" => (F::NODIRATIME, F::empty()),
            "relatime" => (F::RELATIME, F::empty()),
            "norelatime" => (F::empty(), F::RELATIME),
            "strictatime" => (F::STRICTATIME, F::empty()),
            "nostrictatime" => (F::empty(), F::STRICTATIME),
            "bind" => (F::BIND, F::empty()),
            "rbind" => (F::BIND | F::REC, F::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation_flag(opt).unwrap_or(MountPropagationFlags::empty()));
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

fn propagation_flag(name: &str) -> Option<MountPropagationFlags> {
    use MountPropagationFlags as P;
    Some(match name {
        "private" => P::PRIVATE,
        "rprivate" => P::PRIVATE | P::REC,
        "shared" => P::SHARED,
        "rshared" => P::SHARED | P::REC,
        "slave" => P::DOWNSTREAM,
        "rslave" => P::DOWNSTREAM | P::REC,
        "unbindable" => P::UNBINDABLE,
        "runbindable" => P::UNBINDABLE | P::REC,
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
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    let mut cur = PathBuf::from(".");
    let mut fd = openat2(root, &cur, dir_flags, IN_ROOT)?;
    let comps: Vec<Component<'_>> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let parent = cur.clone();
        cur.push(comp.as_os_str());
        fd = match openat2(root, &cur, dir_flags, IN_ROOT) {
            Ok(f) => f,
            Err(e) if is_enoent(&e) => {
                let name = comp.as_os_str();
                match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(e) if e != rustix::io::Errno::EXIST => return Err(e.into()),
                    Err(e) => {
                        // It exists but does not resolve: a dangling symlink.
                        let Some(target) = read_link(fd.as_fd(), name)? else {
                            return Err(e.into());
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
        match openat2(root, &rel, OFlags::PATH, IN_ROOT) {
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
        // O_EXCL|O_NOFOLLOW: never follow a (dangling) symlink while creating.
        let created = rustix::fs::openat(
            &parent,
            file_name,
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        );
        match created {
            Ok(file) => {
                drop(file);
                return openat2(
                    parent.as_fd(),
                    Path::new(file_name),
                    OFlags::PATH | OFlags::NOFOLLOW,
                    ResolveFlags::empty(),
                );
            }
            Err(e) if e != rustix::io::Errno::EXIST => return Err(e.into()),
            Err(_) => {}
        }
        // It exists yet did not resolve: a dangling symlink; go where it points.
        match read_link(parent.as_fd(), file_name)? {
            Some(target) if target.is_absolute() => rel = relative(&target),
            Some(target) => rel = parent_rel.join(target),
            // Made by someone else meanwhile: look again.
            None => {}
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// The target of symlink `name` in `dir`, None when it is not a symlink.
fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<PathBuf>> {
    use std::os::unix::ffi::OsStringExt;
    // Room for any target: one readlinkat.
    let buf = Vec::with_capacity(libc::PATH_MAX as usize);
    match rustix::fs::readlinkat(dir, name, buf) {
        Ok(target) => Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(
            target.into_bytes(),
        )))),
        Err(rustix::io::Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// The mount flags in effect on the mount holding `path`, limited to the
/// ones a bind remount must repeat (the kernel refuses to clear locked
/// nosuid/nodev/noexec on remount, and silently would on a fresh remount).
fn kept_flags(path: impl rustix::path::Arg) -> io::Result<MountFlags> {
    Ok(mount_flags_of(rustix::fs::statvfs(path)?.f_flag))
}

/// The mount flags a bind remount must repeat to keep them, from statvfs.
fn mount_flags_of(f: rustix::fs::StatVfsMountFlags) -> MountFlags {
    use rustix::fs::StatVfsMountFlags as S;
    [
        (S::RDONLY, MountFlags::RDONLY),
        (S::NOSUID, MountFlags::NOSUID),
        (S::NODEV, MountFlags::NODEV),
        (S::NOEXEC, MountFlags::NOEXEC),
        (S::NOATIME, MountFlags::NOATIME),
        (S::NODIRATIME, MountFlags::NODIRATIME),
        (S::RELATIME, MountFlags::RELATIME),
    ]
    .into_iter()
    .filter(|(s, _)| f.contains(*s))
    .fold(MountFlags::empty(), |m, (_, flag)| m | flag)
}

/// The mount point `path` is on: the longest mount point of
/// /proc/self/mountinfo that is `path` or one of its ancestors.
fn parent_mount(path: &Path) -> std::io::Result<PathBuf> {
    let info = berth_io::read_capped(
        Path::new("/proc/self/mountinfo"),
        16 * berth_io::MIB,
        "mountinfo",
    )?;
    let mut best = PathBuf::from("/");
    for line in String::from_utf8_lossy(&info).lines() {
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        // mountinfo escapes space, tab, newline and backslash as octal.
        let point = PathBuf::from(switch::unescape(point));
        if path.starts_with(&point) && point.as_os_str().len() > best.as_os_str().len() {
            best = point;
        }
    }
    Ok(best)
}

/// Set up everything before pivot_root. `rootfs` is absolute.
/// `cgroup_v1`: the v1 hierarchies the container is in, when it has a
/// cgroup on v1: its /sys/fs/cgroup shows those (see `cgroups::V1View`). `nodev_root`: device
/// nodes on the root filesystem do not open (a container without a
/// device cgroup of its own would otherwise reach any device an image
/// ships a node for; its /dev is a mount of its own).
pub(crate) fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroup_v1: Option<&crate::cgroups::V1View>,
    nodev_root: bool,
) -> Result<()> {
    let linux = spec.linux().as_ref();
    // 1. Nothing we mount may propagate back to the host.
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) if !p.is_empty() => propagation_flag(p)
            .map(|f| f | MountPropagationFlags::REC)
            .ok_or_else(|| Error::setup(format!("invalid rootfsPropagation {p:?}")))?,
        _ => MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    };
    mount_change("/", prop).step(|| "make / mount propagation private".into())?;
    if prop.contains(MountPropagationFlags::SHARED) {
        // pivot_root refuses a new root whose parent mount is shared (and
        // a bind of a shared mount would be shared too): that one mount
        // goes private, the rest keeps the propagation asked for (runc's
        // rootfsParentMountPrivate).
        let parent = parent_mount(rootfs).step(|| "read /proc/self/mountinfo".into())?;
        mount_change(&parent, MountPropagationFlags::PRIVATE)
            .step(|| format!("make {} private", parent.display()))?;
    }

    // 2. pivot_root needs the new root to be a mount point.
    mount_bind_recursive(rootfs, rootfs)
        .step(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    // A shared rootfs parent makes pivot_root fail with EINVAL.
    mount_change(rootfs, MountPropagationFlags::PRIVATE)
        .step(|| format!("make rootfs {} private", rootfs.display()))?;
    if nodev_root {
        // A bind remount replaces every per-mount flag: keep the others.
        let kept = kept_flags(rootfs).step(|| format!("statvfs rootfs {}", rootfs.display()))?;
        mount_remount(rootfs, MountFlags::BIND | MountFlags::NODEV | kept, "")
            .step(|| format!("remount rootfs {} nodev", rootfs.display()))?;
    }
    let root = sys::open(rootfs, OFlags::PATH | OFlags::DIRECTORY)
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
            LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
            LinuxDeviceType::B => FileType::BlockDevice,
            LinuxDeviceType::P => FileType::Fifo,
            LinuxDeviceType::A => continue,
        };
        dev::make(
            root.as_fd(),
            d.path(),
            kind,
            d.file_mode().unwrap_or(0o666),
            d.major() as u32,
            d.minor() as u32,
            d.uid().zip(d.gid()),
        )?;
    }
    Ok(())
}

/// One spec mount at its destination inside the rootfs, then the
/// propagation its options ask for.
fn mount_one(
    root: BorrowedFd<'_>,
    m: &Mount,
    bundle: &Path,
    cgroup_v1: Option<&crate::cgroups::V1View>,
) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(root, dest, &opts, cgroup_v1);
    }
    if typ == "bind" || opts.flags.contains(MountFlags::BIND) {
        bind_one(root, m, &opts, bundle)?;
    } else {
        mount_fs(root, m, &opts)?;
    }
    for &p in &opts.propagation {
        let mounted = openat2(root, &relative(dest), OFlags::PATH, IN_ROOT)
            .step(|| format!("open {}", dest.display()))?;
        mount_change(fd_path(mounted.as_fd()), p)
            .step(|| format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}

/// A cgroup filesystem (see `cgroups::mount_cgroupfs`).
fn mount_cgroup(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
    cgroup_v1: Option<&crate::cgroups::V1View>,
) -> Result<()> {
    let what = || format!("mount cgroup on {}", dest.display());
    let target = mount_target(root, dest, true).step(what)?;
    let reopen = || {
        openat2(
            root,
            &relative(dest),
            OFlags::PATH | OFlags::DIRECTORY,
            IN_ROOT,
        )
    };
    crate::cgroups::mount_cgroupfs(&fd_path(target.as_fd()), reopen, opts.flags, cgroup_v1)
        .map_err(|e| Error::setup(format!("{}: {e}", what())))
}

/// A bind mount of a host path (relative ones from the bundle), remounted
/// for the flags a bind ignores (ro, nosuid …).
fn bind_one(root: BorrowedFd<'_>, m: &Mount, opts: &MountOptions, bundle: &Path) -> Result<()> {
    let dest = m.destination();
    let src = m.source().clone().unwrap_or_default();
    let src = if src.is_relative() {
        bundle.join(src)
    } else {
        src
    };
    let what = || format!("mount {} on {}", src.display(), dest.display());
    let src_fd = sys::open(&src, OFlags::PATH).step(what)?;
    let dir = is_dir(src_fd.as_fd()).step(what)?;
    let target = mount_target(root, dest, dir).step(what)?;
    let (from, to) = (fd_path(src_fd.as_fd()), fd_path(target.as_fd()));
    if opts.flags.contains(MountFlags::REC) {
        mount_bind_recursive(from, to)
    } else {
        mount_bind(from, to)
    }
    .step(what)?;
    // Bind mounts ignore every other flag: ro, nosuid... need a remount.
    let extra = opts.flags - (MountFlags::BIND | MountFlags::REC | REMOUNT);
    if !extra.is_empty() {
        let mounted = openat2(root, &relative(dest), OFlags::PATH, IN_ROOT).step(what)?;
        let p = fd_path(mounted.as_fd());
        let keep = kept_flags(p.as_str()).unwrap_or(MountFlags::empty()) - MountFlags::RDONLY;
        mount_remount(p.as_str(), MountFlags::BIND | extra | keep, "")
            .step(|| format!("remount {} with {:?}", dest.display(), m.options()))?;
    }
    Ok(())
}

/// A filesystem of the mount's type (proc, tmpfs, sysfs …).
fn mount_fs(root: BorrowedFd<'_>, m: &Mount, opts: &MountOptions) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let source = m
        .source()
        .as_ref()
        .map(|s| s.as_os_str().to_owned())
        .unwrap_or_else(|| typ.into());
    let shown = source.to_string_lossy().into_owned();
    let what = |src: &str| format!("mount {src} on {}", dest.display());
    let target = mount_target(root, dest, true).step(|| what(&shown))?;
    let tpath = fd_path(target.as_fd());
    let data = opts.data.join(",");
    let failed = || format!("mount {shown} ({typ}) on {}", dest.display());
    let data = (!data.is_empty())
        .then(|| sys::cstr(&data))
        .transpose()
        .step(failed)?;
    let r = rustix::mount::mount(
        source.as_os_str(),
        tpath.as_str(),
        typ,
        opts.flags,
        data.as_deref(),
    );
    match r {
        // Without its own network namespace a container may not mount
        // sysfs; runc binds the host's /sys read-only instead.
        Err(rustix::io::Errno::PERM) if typ == "sysfs" => {
            mount_bind_recursive("/sys", tpath.as_str()).step(|| what("/sys"))?;
            let mounted =
                openat2(root, &relative(dest), OFlags::PATH, IN_ROOT).step(|| what("/sys"))?;
            mount_remount(
                fd_path(mounted.as_fd()),
                MountFlags::BIND | MountFlags::RDONLY | opts.flags,
                "",
            )
            .step(|| what("/sys"))
        }
        r => r.step(failed),
    }
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
        let keep = kept_flags("/").unwrap_or(MountFlags::empty());
        mount_remount("/", MountFlags::BIND | MountFlags::RDONLY | keep, "")
            .step(|| "remount root read-only".into())?;
    }
    Ok(())
}

fn mask_path(p: &Path) -> Result<()> {
    let fd = match sys::open(p, OFlags::PATH) {
        Ok(fd) => fd,
        Err(e) if is_enoent(&e) => return Ok(()),
        Err(e) => return Err(e).step(|| format!("mask {}", p.display())),
    };
    let target = fd_path(fd.as_fd());
    let r = if is_dir(fd.as_fd()).step(|| format!("mask {}", p.display()))? {
        rustix::mount::mount("tmpfs", target.as_str(), "tmpfs", MountFlags::RDONLY, None)
    } else {
        mount_bind("/dev/null", target.as_str())
    };
    r.step(|| format!("mask {}", p.display()))
}

fn readonly_path(p: &Path) -> Result<()> {
    match mount_bind_recursive(p, p) {
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        r => r.step(|| format!("bind {} read-only", p.display()))?,
    }
    let keep = kept_flags(p).unwrap_or(MountFlags::empty());
    let flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::REC | keep;
    mount_remount(p, flags, "").step(|| format!("remount {} read-only", p.display()))
}

/// Bind the pty slave onto /dev/console, as the container's console.
pub(crate) fn bind_console(slave: BorrowedFd<'_>) -> Result<()> {
    let what = || "bind pty onto /dev/console".to_string();
    let root = sys::open(Path::new("/"), OFlags::PATH | OFlags::DIRECTORY).step(what)?;
    let target = mount_target(root.as_fd(), Path::new("/dev/console"), false).step(what)?;
    mount_bind(fd_path(slave), fd_path(target.as_fd())).step(what)
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
            libc::c_ulong::from(o.flags.bits()),
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        let propagation: Vec<libc::c_ulong> =
            o.propagation.iter().map(|p| p.bits().into()).collect();
        assert_eq!(propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(parse_options(&["ro".into(), "rw".into()]).flags.bits(), 0);
    }

    #[test]
    fn destinations_become_rootfs_relative() {
        assert_eq!(relative(Path::new("/dev/pts")), Path::new("dev/pts"));
        assert_eq!(relative(Path::new("/")), Path::new("."));
        assert_eq!(relative(Path::new("/a/../../b")), Path::new("a/../../b"));
    }
}
