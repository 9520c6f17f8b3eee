//! Shared test helpers: building layer tars with full metadata, and reading a
//! tree into a comparable map.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// A layer tar under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }
}

#[derive(Clone, Copy)]
pub struct M {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

pub const ROOT: M = M {
    mode: 0o644,
    uid: 0,
    gid: 0,
};
pub const DIR: M = M {
    mode: 0o755,
    uid: 0,
    gid: 0,
};

impl Layer {
    fn header(kind: EntryType, m: M, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.mode);
        h.set_uid(m.uid);
        h.set_gid(m.gid);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    }
    pub fn file(mut self, p: &str, m: M, data: &str) -> Self {
        let mut h = Self::header(EntryType::Regular, m, data.len() as u64);
        self.b.append_data(&mut h, p, data.as_bytes()).unwrap();
        self
    }
    pub fn file_xattr(mut self, p: &str, m: M, data: &str, key: &str, val: &[u8]) -> Self {
        let k = format!("SCHILY.xattr.{key}");
        self.b.append_pax_extensions([(k.as_str(), val)]).unwrap();
        self.file(p, m, data)
    }
    pub fn dir(mut self, p: &str, m: M) -> Self {
        let mut h = Self::header(EntryType::Directory, m, 0);
        self.b.append_data(&mut h, p, &b""[..]).unwrap();
        self
    }
    pub fn symlink(mut self, p: &str, target: &str) -> Self {
        let mut h = Self::header(
            EntryType::Symlink,
            M {
                mode: 0o777,
                ..ROOT
            },
            0,
        );
        self.b.append_link(&mut h, p, target).unwrap();
        self
    }
    pub fn hardlink(mut self, p: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Link, ROOT, 0);
        self.b.append_link(&mut h, p, target).unwrap();
        self
    }
    pub fn node(mut self, p: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(
            kind,
            M {
                mode: 0o666,
                ..ROOT
            },
            0,
        );
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, p, &b""[..]).unwrap();
        self
    }
    pub fn whiteout(self, dir: &str, name: &str) -> Self {
        let p = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&p, ROOT, "")
    }
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), ROOT, "")
    }
    pub fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A multi-layer image that exercises every rule: whiteouts, opaque dirs,
/// hardlinks within and across layers, symlinks, setuid, owners, a fifo, a
/// device, xattrs, dir replaced by file and file replaced by dir.
pub fn test_image() -> Vec<Vec<u8>> {
    let l0 = Layer::default()
        .dir("etc", DIR)
        .file(
            "etc/passwd",
            ROOT,
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .file(
            "etc/group",
            ROOT,
            "root:x:0:\nstaff:x:50:app\napp:x:1000:\n",
        )
        .dir("bin", DIR)
        .file(
            "bin/tool",
            M {
                mode: 0o4755,
                uid: 0,
                gid: 0,
            },
            "#!tool",
        )
        .symlink("bin/sh", "tool")
        .symlink("bin/abs", "/etc/passwd")
        .dir("home", DIR)
        .dir(
            "home/app",
            M {
                mode: 0o750,
                uid: 1000,
                gid: 1000,
            },
        )
        .file(
            "home/app/own",
            M {
                mode: 0o600,
                uid: 1000,
                gid: 1000,
            },
            "mine",
        )
        .dir("gone", DIR)
        .file("gone/a", ROOT, "a")
        .dir("opaque", DIR)
        .file("opaque/old", ROOT, "old")
        .dir("opaque/olddir", DIR)
        .file("opaque/olddir/x", ROOT, "x")
        .dir("becomes-file", DIR)
        .file("becomes-file/inner", ROOT, "inner")
        .file("becomes-dir", ROOT, "was a file")
        .file("shared", ROOT, "linked across layers")
        .file("del", ROOT, "deleted later")
        .dir(
            "tmp",
            M {
                mode: 0o1777,
                uid: 0,
                gid: 0,
            },
        )
        .dir(
            "empty",
            M {
                mode: 0o700,
                uid: 0,
                gid: 0,
            },
        )
        .build();
    let l1 = Layer::default()
        .whiteout("", "gone")
        .whiteout("", "del")
        .opaque("opaque")
        .file("opaque/new", ROOT, "new")
        .file(
            "becomes-file",
            M {
                mode: 0o640,
                uid: 0,
                gid: 50,
            },
            "now a file",
        )
        .dir("becomes-dir", DIR)
        .file("becomes-dir/child", ROOT, "child")
        .hardlink("shared-link", "shared")
        .file("hl-src", ROOT, "same inode")
        .hardlink("hl-dst", "hl-src")
        .node("fifo", EntryType::Fifo, 0, 0)
        .node("null", EntryType::Char, 1, 3)
        .file_xattr("xattr-file", ROOT, "x", "user.berth", b"fixture")
        .file(
            "bin/tool",
            M {
                mode: 0o2755,
                uid: 0,
                gid: 50,
            },
            "#!tool v2",
        )
        .file(
            "tmp/implicit-parent",
            ROOT,
            "tmp has no entry in this layer",
        )
        .whiteout("home/app", "nothing-here")
        .build();
    let l2 = Layer::default()
        .dir(
            "home/app",
            M {
                mode: 0o700,
                uid: 1000,
                gid: 1000,
            },
        )
        .file(
            "home/app/second",
            M {
                mode: 0o644,
                uid: 1000,
                gid: 1000,
            },
            "2",
        )
        .whiteout("home/app", "own")
        .dir("gone", DIR)
        .file("gone/back", ROOT, "resurrected")
        .whiteout("", "becomes-dir")
        .dir("becomes-dir", DIR)
        .file("becomes-dir/fresh", ROOT, "replaced dir")
        .build();
    vec![l0, l1, l2]
}

/// One entry of a tree, everything the equivalence checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub sha: String,
    pub link: String,
    pub rdev: u64,
    pub nlink: u64,
    pub mtime: Option<i64>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) else {
        return out;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") || name.starts_with("security.selinux") {
            continue;
        }
        let mut v = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(p, name.as_str(), &mut v[..]) {
            out.insert(name, v[..len].to_vec());
        }
    }
    out
}

/// Read a tree: path (relative, "" for the root) → Info. Dir mtimes are
/// left out (removing a whiteout's victim legitimately bumps them).
pub fn tree(root: &Path) -> BTreeMap<String, Info> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, Info>) {
    let md = std::fs::symlink_metadata(p).unwrap();
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        "other"
    };
    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let info = Info {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_file() { md.size() } else { 0 },
        sha: if ft.is_file() {
            hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
        } else {
            String::new()
        },
        link: if ft.is_symlink() {
            std::fs::read_link(p)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        },
        rdev: md.rdev(),
        nlink: if ft.is_dir() { 0 } else { md.nlink() },
        mtime: if ft.is_dir() { None } else { Some(md.mtime()) },
        xattrs: xattrs(p),
    };
    if !rel.is_empty() {
        out.insert(rel, info);
    }
    if ft.is_dir() {
        let mut kids: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        kids.sort();
        for k in kids {
            walk(root, &k, out);
        }
    }
}

/// Assert two trees are equal, listing every difference.
pub fn assert_same(a: &BTreeMap<String, Info>, b: &BTreeMap<String, Info>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in first: {k}")),
            Some(w) if w != v => diffs.push(format!("{k}: {v:?} != {w:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("only in second: {k}"));
        }
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

/// Unmounts and removes a container rootfs when dropped, so a failing test
/// does not leave overlay mounts behind.
pub struct Cleanup(pub std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = berth_snapshot::remove_rootfs(&self.0);
    }
}

/// An overlayfs (lower, upper and work in a temp dir) mounted on `merged`,
/// standing for the root filesystem of a container berth runs in; unmounted
/// when dropped, after whatever was mounted inside it.
pub struct OverlayFs {
    pub merged: std::path::PathBuf,
    /// A ramfs holding lower, upper and work, mounted on the temp dir.
    ramfs: bool,
    dir: tempfile::TempDir,
}

impl OverlayFs {
    pub fn new() -> OverlayFs {
        Self::make(false)
    }

    /// One whose upper dir is on a ramfs, which keeps no xattrs: overlayfs
    /// mounts it all the same, and refuses every xattr, as it would over
    /// tmpfs before Linux 6.6.
    pub fn without_xattrs() -> OverlayFs {
        Self::make(true)
    }

    fn make(ramfs: bool) -> OverlayFs {
        let dir = tempfile::tempdir().unwrap();
        if ramfs {
            rustix::mount::mount(
                "ramfs",
                dir.path(),
                "ramfs",
                rustix::mount::MountFlags::empty(),
                None,
            )
            .expect("mount a ramfs");
        }
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let merged = dir.path().join("merged");
        let data = format!(
            "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
            dir.path().display()
        );
        rustix::mount::mount(
            "overlay",
            &merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(std::ffi::CString::new(data).unwrap().as_c_str()),
        )
        .expect("mount an overlayfs for the store");
        OverlayFs { merged, ramfs, dir }
    }

    /// Whether overlay metadata xattrs can be set through this overlay
    /// (escaped, Linux 6.7+), which before 6.7 it refuses.
    pub fn takes_overlay_xattrs(&self) -> bool {
        let probe = self.merged.join(".xattr-probe");
        std::fs::create_dir(&probe).unwrap();
        let ok = rustix::fs::setxattr(
            &probe,
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        std::fs::remove_dir(&probe).unwrap();
        ok
    }
}

impl Drop for OverlayFs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH);
        if self.ramfs {
            let _ = rustix::mount::unmount(self.dir.path(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}
