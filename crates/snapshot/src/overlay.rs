//! A container's root filesystem: an overlay of the image's snapshots with a
//! private upper dir, or, when overlayfs cannot be used, a private copy.
//!
//! Layout under the container dir: `rootfs/` (what the runtime gets),
//! `upper/` and `work/` (overlay only). overlayfs takes no upper dir on
//! overlayfs, where the store of a berth running in a container is: then
//! `upper/` and `work/` go in the caller's scratch dir
//! ([`RootfsOptions::scratch`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

use crate::copy::flatten_snapshots;
use crate::lowers::visible_lowers;
use crate::resolve::Resolver;
use crate::tree::remove_tree;

/// The kernel copies mount data into one page; longer options are refused.
const MOUNT_DATA_MAX: usize = 4096;

/// statfs magic of overlayfs.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// How a container's rootfs was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// overlayfs over the snapshots.
    Overlay,
    /// A private copy of the merged snapshots (overlay unavailable).
    Copy,
}

/// How to make a container's rootfs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootfsOptions<'a> {
    /// Skip overlayfs and copy (tests, or a caller that knows overlay is unusable).
    pub force_copy: bool,
    /// Mount the overlay `volatile`: no syncs reach the upper dir's
    /// filesystem, above all the sync of that whole filesystem overlayfs
    /// makes at unmount. For containers that are thrown away when they end
    /// (`--rm`, as podman does): after a crash overlayfs refuses to mount
    /// such an upper dir again, and berth never tries. Ignored by kernels
    /// without it (before 5.10).
    pub volatile: bool,
    /// Where the upper and work dirs go when the container dir cannot hold
    /// them: it is on overlayfs, or overlayfs refuses it (EINVAL). On a
    /// filesystem overlayfs takes as upper (berth: one under its exec
    /// root, a tmpfs); made when needed, private, and the caller's to
    /// remove with the container. Without one such a rootfs is a copy.
    pub scratch: Option<&'a Path>,
}

/// A prepared container rootfs.
#[derive(Debug, Clone)]
pub struct ContainerRootfs {
    /// The directory to hand to the runtime as the bundle's rootfs.
    pub path: PathBuf,
    /// Overlay or copy.
    pub kind: RootfsKind,
    /// The overlay's upper dir, in the container dir or the scratch dir
    /// (none for a copy).
    pub upper: Option<PathBuf>,
}

/// Escape a directory for overlayfs' option parser: `,` separates options,
/// `:` separates lower dirs, `\` escapes both.
pub fn escape_overlay_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The overlay mount data for `lowers` (bottom → top).
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> String {
    // overlayfs lists the topmost lower first.
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| escape_overlay_path(p))
        .collect();
    // In a user namespace overlayfs may only use user.overlay.* xattrs,
    // which is what unprivileged snapshots carry.
    let userxattr = if crate::in_initial_userns() {
        ""
    } else {
        ",userxattr"
    };
    format!(
        "lowerdir={},upperdir={},workdir={}{userxattr}",
        lower.join(":"),
        escape_overlay_path(upper),
        escape_overlay_path(work)
    )
}

/// Make `container_dir/rootfs` from the snapshots `lowers` (bottom → top).
pub fn mount_rootfs(container_dir: &Path, lowers: &[PathBuf]) -> Result<ContainerRootfs> {
    mount_rootfs_with(container_dir, lowers, RootfsOptions::default())
}

/// Makes `container_dir/rootfs` with `container_dir` closed to other host
/// users: the merged tree holds the image's setuid binaries.
fn private_rootfs_dir(container_dir: &Path) -> Result<PathBuf> {
    let rootfs = container_dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).with_context(|| format!("creating {}", rootfs.display()))?;
    std::fs::set_permissions(
        container_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("restricting {}", container_dir.display()))?;
    Ok(rootfs)
}

/// Like [`mount_rootfs`], as `opts` say.
pub fn mount_rootfs_with(
    container_dir: &Path,
    lowers: &[PathBuf],
    opts: RootfsOptions,
) -> Result<ContainerRootfs> {
    let lowers = visible_lowers(lowers);
    let rootfs = private_rootfs_dir(container_dir)?;
    if !opts.force_copy {
        // Not even tried on overlayfs: each refusal is a line in the kernel log.
        let mut places = Vec::new();
        if opts.scratch.is_none() || !is_overlayfs(container_dir) {
            places.push(container_dir);
        }
        places.extend(opts.scratch);
        let mut why = Vec::new();
        for dir in places {
            match try_overlay(container_dir, dir, &rootfs, lowers, opts.volatile) {
                Ok(upper) => {
                    return Ok(ContainerRootfs {
                        path: rootfs,
                        kind: RootfsKind::Overlay,
                        upper: Some(upper),
                    });
                }
                Err(e) => {
                    for d in ["upper", "work"] {
                        let _ = remove_tree(&dir.join(d));
                    }
                    why.push(e.why);
                    // Another place helps only an upper dir refused as such.
                    if !e.einval {
                        break;
                    }
                }
            }
        }
        // Expected in some places (rootless, overlayfs without a scratch
        // dir), and the copy works: not worth a warning on every run.
        tracing::debug!(
            "overlayfs unavailable ({}): copying the image into {}",
            why.join("; "),
            rootfs.display()
        );
    }
    flatten_snapshots(lowers, &rootfs, Resolver::Auto)
        .with_context(|| format!("copying image snapshots into {}", rootfs.display()))?;
    Ok(ContainerRootfs {
        path: rootfs,
        kind: RootfsKind::Copy,
        upper: None,
    })
}

/// The rootfs of a container that is not running, mounted again on
/// `container_dir/rootfs` over the upper dir it kept (in `container_dir`
/// or `scratch`), for `cp`. Returns whether this call mounted it: not
/// when it is mounted already (a run is starting it) or is a copy (a
/// plain directory). Unlike [`mount_rootfs_with`] it never makes an upper
/// dir nor, when the mount fails, deletes one: that one holds the
/// container's files.
pub fn remount_rootfs(
    container_dir: &Path,
    lowers: &[PathBuf],
    scratch: Option<&Path>,
) -> Result<bool> {
    let rootfs = container_dir.join("rootfs");
    if is_mount_point(&rootfs) {
        return Ok(false);
    }
    if container_dir.join("idmapped").exists() {
        anyhow::bail!("the files of a --userns remap container can be reached only while it runs");
    }
    let place = std::iter::once(container_dir)
        .chain(scratch)
        .find(|p| p.join("upper").is_dir());
    let Some(place) = place else {
        let copied = std::fs::read_dir(&rootfs).is_ok_and(|mut d| d.next().is_some());
        if copied {
            return Ok(false);
        }
        anyhow::bail!("the container's root filesystem is gone");
    };
    let mut lowers = visible_lowers(lowers).to_vec();
    for l in &lowers {
        if !l.is_dir() {
            anyhow::bail!("the image layer snapshot {} is gone", l.display());
        }
    }
    if lowers.is_empty() {
        let empty = container_dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        lowers.push(empty);
    }
    let data = overlay_options(&lowers, &place.join("upper"), &place.join("work"));
    if data.len() >= MOUNT_DATA_MAX {
        anyhow::bail!(
            "{} lower dirs make mount options longer than a page",
            lowers.len()
        );
    }
    std::fs::create_dir_all(place.join("work"))?;
    mount_overlay(&rootfs, &data, false)
        .with_context(|| format!("mount overlay on {}", rootfs.display()))?;
    Ok(true)
}

/// Whether `p` is on overlayfs.
pub fn is_overlayfs(p: &Path) -> bool {
    rustix::fs::statfs(p).is_ok_and(|s| s.f_type == OVERLAYFS_MAGIC)
}

/// Why an overlay could not be mounted; `einval`: the mount itself was
/// refused as invalid, which is what an upper dir on overlayfs gets.
struct NoOverlay {
    why: String,
    einval: bool,
}

impl NoOverlay {
    fn new(why: String) -> NoOverlay {
        NoOverlay { why, einval: false }
    }
}

/// Mounts the overlay on `rootfs` with `upper/` and `work/` in `place`;
/// returns the upper dir.
fn try_overlay(
    container_dir: &Path,
    place: &Path,
    rootfs: &Path,
    lowers: &[PathBuf],
    volatile: bool,
) -> Result<PathBuf, NoOverlay> {
    let upper = place.join("upper");
    let work = place.join("work");
    let mut lowers = lowers.to_vec();
    if lowers.is_empty() {
        // overlayfs needs a lower; an image with no layers gets an empty one.
        let empty = container_dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| NoOverlay::new(e.to_string()))?;
        lowers.push(empty);
    }
    if place != container_dir {
        // The upper dir will hold the container's files: private, as the
        // container dir is (and so are the parents made here).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(place)
            .map_err(|e| NoOverlay::new(format!("creating {}: {e}", place.display())))?;
        std::fs::set_permissions(place, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| NoOverlay::new(format!("restricting {}: {e}", place.display())))?;
    }
    for d in [&upper, &work] {
        std::fs::create_dir_all(d)
            .map_err(|e| NoOverlay::new(format!("creating {}: {e}", d.display())))?;
    }
    let data = overlay_options(&lowers, &upper, &work);
    if data.len() >= MOUNT_DATA_MAX {
        return Err(NoOverlay::new(format!(
            "{} lower dirs make mount options longer than a page",
            lowers.len()
        )));
    }
    mount_overlay(rootfs, &data, volatile).map_err(|e| NoOverlay {
        einval: e.raw_os_error() == Some(libc::EINVAL),
        why: format!(
            "mount overlay on {} with the upper dir in {}: {e}",
            rootfs.display(),
            place.display()
        ),
    })?;
    Ok(upper)
}

/// Mounts overlayfs with `data`, adding `volatile` when asked and the
/// kernel knows it.
fn mount_overlay(rootfs: &Path, data: &str, volatile: bool) -> std::io::Result<()> {
    let mount = |data: String| {
        let cdata = std::ffi::CString::new(data)
            .map_err(|_| std::io::Error::other("NUL in a snapshot path"))?;
        rustix::mount::mount(
            "overlay",
            rootfs,
            "overlay",
            MountFlags::empty(),
            Some(cdata.as_c_str()),
        )
        .map_err(std::io::Error::from)
    };
    if volatile && data.len() + ",volatile".len() < MOUNT_DATA_MAX {
        match mount(format!("{data},volatile")) {
            // EINVAL: a kernel before 5.10, which has no such option.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            r => return r,
        }
    }
    mount(data.to_string())
}

/// Whether `p` is the root of a mount (a bind mount of the same
/// filesystem included). When the kernel cannot say: assume it is.
fn is_mount_point(p: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    match rustix::fs::statx(
        rustix::fs::CWD,
        p,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Err(Errno::NOENT) => false,
        _ => true,
    }
}

/// `--userns remap`: the rootfs for a container whose root is host uid/gid
/// `root` in the user namespace `userns`. The snapshots stay as they are;
/// each is seen through an id-mapped mount (host 0 shows as `root`, and so
/// as 0 inside), under `idmapped/N`, as overlay lowers; the upper dir and
/// the container dir belong to the remapped root, whose own writes land
/// with its ids. Needs a kernel with id-mapped overlay layers (5.19+).
pub fn mount_rootfs_idmapped(
    container_dir: &Path,
    lowers: &[PathBuf],
    userns: std::os::fd::BorrowedFd<'_>,
    root: (u32, u32),
    volatile: bool,
) -> Result<ContainerRootfs> {
    let lowers = visible_lowers(lowers);
    // Reachable by the remapped root (chowned below), by no other host user.
    let rootfs = private_rootfs_dir(container_dir)?;
    let own = |p: &Path| {
        std::os::unix::fs::chown(p, Some(root.0), Some(root.1))
            .with_context(|| format!("chown {} to the remapped root", p.display()))
    };
    own(container_dir)?;
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        own(d)?;
    }
    let mapped_dir = container_dir.join("idmapped");
    std::fs::create_dir_all(&mapped_dir)?;
    let mut mapped = Vec::new();
    let res = mount_idmapped_overlay(
        container_dir,
        &rootfs,
        lowers,
        userns,
        volatile,
        &mut mapped,
    );
    // The overlay holds its lowers; their own mounts can go now (and must,
    // on failure, before anything removes the directories they sit on).
    for m in &mapped {
        let _ = rustix::mount::unmount(m, UnmountFlags::DETACH);
    }
    res?;
    Ok(ContainerRootfs {
        path: rootfs,
        kind: RootfsKind::Overlay,
        upper: Some(upper),
    })
}

/// The id-mapped lowers (recorded in `mapped` as they are mounted) and
/// the overlay on them.
fn mount_idmapped_overlay(
    container_dir: &Path,
    rootfs: &Path,
    lowers: &[PathBuf],
    userns: std::os::fd::BorrowedFd<'_>,
    volatile: bool,
    mapped: &mut Vec<PathBuf>,
) -> Result<()> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags};
    let mapped_dir = container_dir.join("idmapped");
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    for (i, lower) in lowers.iter().enumerate() {
        let target = mapped_dir.join(i.to_string());
        std::fs::create_dir_all(&target)?;
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            lower,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .with_context(|| format!("open_tree {}", lower.display()))?;
        idmap(&tree, userns).with_context(|| {
            format!(
                "id-mapping {} (needs Linux 5.12+ and a filesystem that supports it)",
                lower.display()
            )
        })?;
        rustix::mount::move_mount(
            &tree,
            "",
            rustix::fs::CWD,
            &target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .with_context(|| format!("mounting the id-mapped {}", lower.display()))?;
        mapped.push(target);
    }
    if mapped.is_empty() {
        let empty = container_dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        mapped.push(empty);
    }
    let data = overlay_options(mapped, &upper, &work);
    if data.len() >= MOUNT_DATA_MAX {
        anyhow::bail!(
            "{} layers make overlay options longer than a page",
            lowers.len()
        );
    }
    mount_overlay(rootfs, &data, volatile)
        .with_context(|| format!("mount overlay of id-mapped layers on {}", rootfs.display()))?;
    Ok(())
}

/// Make the detached mount `tree` id-mapped through `userns`.
fn idmap(tree: &std::os::fd::OwnedFd, userns: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr reads `attr` (of the size passed) and an empty
    // path relative to the open tree fd; all outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Unmount (if mounted) and delete the container's rootfs, upper and work
/// dirs; a scratch dir ([`RootfsOptions::scratch`]) is the caller's to delete.
pub fn remove_rootfs(container_dir: &Path) -> Result<()> {
    release_rootfs(container_dir)?;
    for d in ["rootfs", "upper", "work", "empty", "idmapped"] {
        match remove_tree(&container_dir.join(d)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing {}", container_dir.join(d).display()));
            }
        }
    }
    Ok(())
}

/// Unmount everything of the container's rootfs under `container_dir`
/// (the overlay, id-mapped lowers a killed berth left), and fail unless
/// nothing there is a mount point any more: after this, deleting the
/// directory can only delete the container's own files.
pub fn release_rootfs(container_dir: &Path) -> Result<()> {
    let rootfs = container_dir.join("rootfs");
    match rustix::mount::unmount(&rootfs, UnmountFlags::empty()) {
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
        // Busy: detach so the directory can still go; the kernel frees it when unused.
        Err(Errno::BUSY) => rustix::mount::unmount(&rootfs, UnmountFlags::DETACH)
            .with_context(|| format!("unmounting {}", rootfs.display()))?,
        // Not ours to unmount (unprivileged) is fine when nothing is mounted:
        // a copied rootfs shares its parent's device, an overlay never does.
        Err(Errno::PERM) if !is_mount_point(&rootfs) => {}
        Err(e) => return Err(e).with_context(|| format!("unmounting {}", rootfs.display())),
    }
    // Id-mapped lowers are snapshots seen through another mount: a berth
    // killed while mounting them may have left some. Never recurse into one.
    if let Ok(entries) = std::fs::read_dir(container_dir.join("idmapped")) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = rustix::mount::unmount(&p, UnmountFlags::DETACH);
            if is_mount_point(&p) {
                anyhow::bail!("{} is still a mount point, not removing it", p.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_escape_and_order() {
        let o = overlay_options(
            &[PathBuf::from("/s/a"), PathBuf::from("/s/b:c,d\\e")],
            Path::new("/c/upper"),
            Path::new("/c/work"),
        );
        assert_eq!(
            o,
            "lowerdir=/s/b\\:c\\,d\\\\e:/s/a,upperdir=/c/upper,workdir=/c/work"
        );
    }
}
