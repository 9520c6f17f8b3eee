//! Hostile layers: every case builds an evil tar in memory, applies it in
//! both modes (flatten, overlay snapshot) with both resolvers (openat2 and the
//! userspace fallback), and checks that a sentinel directory next to the
//! target is untouched and the outcome is the documented one: a clear error,
//! or the entry safely contained inside the target.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_snapshot::{ApplyMode, ApplyOptions, Resolver, apply_layer, diff_id_of};
use tar::{EntryType, Header};

struct Case {
    _t: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn setup() -> Case {
    // tmpfs when available: the deep-tree case makes thousands of directories
    // and disk metadata writes would dominate the run time.
    let shm = Path::new("/dev/shm");
    let t = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("sentinel"), "keep").unwrap();
    Case {
        _t: t,
        root,
        outside,
    }
}

impl Case {
    /// The sentinel tree is exactly as `setup` left it.
    fn untouched(&self) {
        let s = self.outside.join("sentinel");
        let md = std::fs::symlink_metadata(&s).expect("sentinel still there");
        assert!(md.is_file());
        assert_eq!(std::fs::read_to_string(&s).unwrap(), "keep");
        assert_eq!(md.nlink(), 1, "no hardlink to the sentinel was made");
        assert_eq!(md.mode() & 0o7777, 0o644);
        let mut names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dir", "sentinel"]);
        assert_eq!(
            std::fs::read_dir(self.outside.join("dir")).unwrap().count(),
            0
        );
        let dmd = std::fs::symlink_metadata(self.outside.join("dir")).unwrap();
        assert_eq!(dmd.mode() & 0o7777, 0o755, "outside dir mode untouched");
        assert_eq!(dmd.uid(), rustix::process::geteuid().as_raw());
        assert_ne!(dmd.mtime(), 1_600_000_000, "outside dir mtime untouched");
    }

    /// A file holding `evil` exists somewhere inside the target.
    fn contained(&self) {
        fn find(p: &Path) -> bool {
            let md = std::fs::symlink_metadata(p).unwrap();
            if md.is_dir() {
                std::fs::read_dir(p)
                    .unwrap()
                    .any(|e| find(&e.unwrap().path()))
            } else {
                md.is_file() && std::fs::read(p).unwrap() == b"evil"
            }
        }
        assert!(
            find(&self.root),
            "the evil entry should land inside the target"
        );
    }

    fn abs_outside(&self) -> String {
        self.outside.to_str().unwrap().to_string()
    }
}

fn hdr(path: &[u8], kind: EntryType, size: u64, link: Option<&[u8]>) -> Header {
    let mut h = Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..path.len()].copy_from_slice(path);
        if let Some(l) = link {
            old.linkname = [0; 100];
            old.linkname[..l.len()].copy_from_slice(l);
        }
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == EntryType::Directory {
        // Distinct from the outside dir's 0755, so a chmod through a symlink shows.
        0o711
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    h
}

#[derive(Default)]
struct Tar(Vec<(Header, Vec<u8>)>);

impl Tar {
    fn file(mut self, p: &str, data: &str) -> Self {
        self.0.push((
            hdr(p.as_bytes(), EntryType::Regular, data.len() as u64, None),
            data.into(),
        ));
        self
    }
    fn dir(mut self, p: &str) -> Self {
        self.0
            .push((hdr(p.as_bytes(), EntryType::Directory, 0, None), vec![]));
        self
    }
    fn symlink(mut self, p: &str, target: &str) -> Self {
        self.0.push((
            hdr(p.as_bytes(), EntryType::Symlink, 0, Some(target.as_bytes())),
            vec![],
        ));
        self
    }
    fn hardlink(mut self, p: &str, target: &str) -> Self {
        self.0.push((
            hdr(p.as_bytes(), EntryType::Link, 0, Some(target.as_bytes())),
            vec![],
        ));
        self
    }
    /// Dir entries for every prefix of `abs`, so a symlink to `abs` is not dangling inside.
    fn mkdirs(mut self, abs: &str) -> Self {
        let mut p = String::new();
        for c in abs.split('/').filter(|c| !c.is_empty()) {
            p = if p.is_empty() {
                c.to_string()
            } else {
                format!("{p}/{c}")
            };
            self = self.dir(&p);
        }
        self
    }
    fn build(self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (h, d) in self.0 {
            b.append(&h, &d[..]).unwrap();
        }
        b.into_inner().unwrap()
    }
}

const MODES: [bool; 2] = [false, true];
const RESOLVERS: [Resolver; 2] = [Resolver::Auto, Resolver::Fallback];

/// Apply `layers` in order: flatten onto the target, or one snapshot each
/// under the target (`0`, `1`, ...) with the earlier ones as lowers.
fn apply_all(
    c: &Case,
    layers: &[Vec<u8>],
    overlay: bool,
    resolver: Resolver,
    max: Option<u64>,
) -> anyhow::Result<()> {
    let mut lowers = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let diff = diff_id_of(&l[..]).unwrap();
        let (target, mode) = if overlay {
            let t = c.root.join(i.to_string());
            std::fs::create_dir_all(&t).unwrap();
            (
                t,
                ApplyMode::Overlay {
                    lowers: lowers.clone(),
                },
            )
        } else {
            (c.root.clone(), ApplyMode::Flatten)
        };
        let opts = ApplyOptions {
            mode,
            resolver,
            max_bytes: max.unwrap_or(berth_snapshot::DEFAULT_MAX_BYTES),
            ..Default::default()
        };
        apply_layer(&l[..], &target, &diff, &opts)?;
        lowers.push(target);
    }
    Ok(())
}

/// Run `case` for both modes and both resolvers; `expect` checks the result.
fn each(layers: impl Fn(&Case) -> Vec<Vec<u8>>, expect: impl Fn(&Case, anyhow::Result<()>, bool)) {
    for overlay in MODES {
        for r in RESOLVERS {
            let c = setup();
            let res = apply_all(&c, &layers(&c), overlay, r, None);
            expect(&c, res, overlay);
            c.untouched();
        }
    }
}

fn err_contains(res: anyhow::Result<()>, want: &str) {
    let e = format!("{:#}", res.expect_err("the layer must be refused"));
    assert!(e.contains(want), "error {e:?} should mention {want:?}");
}

#[test]
fn dotdot_entry_is_refused() {
    each(
        |_| vec![Tar::default().file("../outside/sentinel", "evil").build()],
        |_, r, _| err_contains(r, "climbs above the root"),
    );
}

#[test]
fn dotdot_hidden_in_the_middle_is_refused() {
    each(
        |_| {
            vec![
                Tar::default()
                    .dir("a")
                    .file("a/../../outside/sentinel", "evil")
                    .build(),
            ]
        },
        |_, r, _| err_contains(r, "climbs above the root"),
    );
}

#[test]
fn absolute_path_lands_inside() {
    each(
        |c| {
            vec![
                Tar::default()
                    .file(&format!("{}/sentinel", c.abs_outside()), "evil")
                    .build(),
            ]
        },
        |c, r, _| {
            r.unwrap();
            c.contained();
        },
    );
}

#[test]
fn absolute_symlink_then_write_through_it_same_layer() {
    each(
        |c| {
            vec![
                Tar::default()
                    .mkdirs(&c.abs_outside())
                    .symlink("link", &c.abs_outside())
                    .file("link/sentinel", "evil")
                    .build(),
            ]
        },
        |c, r, overlay| {
            r.unwrap();
            c.contained();
            if !overlay {
                let inside = c
                    .root
                    .join(c.abs_outside().trim_start_matches('/'))
                    .join("sentinel");
                assert_eq!(std::fs::read_to_string(inside).unwrap(), "evil");
            }
        },
    );
}

#[test]
fn relative_symlink_climbing_out_then_write() {
    each(
        |c| {
            vec![
                Tar::default()
                    .symlink("link", "../../../../../../../../..")
                    .file(&format!("link{}/sentinel", c.abs_outside()), "evil")
                    .build(),
            ]
        },
        |c, r, _| {
            r.unwrap();
            c.contained();
        },
    );
}

/// A symlink whose target does not exist inside the root cannot be a parent:
/// refused like Docker does (mkdir -p through a dangling symlink fails).
fn contained_or_dangling(c: &Case, r: anyhow::Result<()>) {
    match r {
        Ok(()) => c.contained(),
        Err(e) => assert!(format!("{e:#}").contains("dangling symlink"), "{e:#}"),
    }
}

#[test]
fn dangling_symlink_as_parent_is_refused() {
    each(
        |c| {
            vec![
                Tar::default()
                    .symlink("link", &c.abs_outside())
                    .file("link/sentinel", "evil")
                    .build(),
            ]
        },
        |c, r, _| contained_or_dangling(c, r),
    );
}

#[test]
fn symlink_planted_by_an_earlier_layer() {
    each(
        |c| {
            vec![
                Tar::default()
                    .mkdirs(&c.abs_outside())
                    .symlink("etc", &c.abs_outside())
                    .build(),
                Tar::default().file("etc/sentinel", "evil").build(),
            ]
        },
        |c, r, _| {
            r.unwrap();
            c.contained();
        },
    );
}

#[test]
fn relative_symlink_from_earlier_layer_climbing_out() {
    each(
        |c| {
            vec![
                Tar::default().dir("a").symlink("a/up", "../../..").build(),
                Tar::default()
                    .file(&format!("a/up/{}/sentinel", c.abs_outside()), "evil")
                    .build(),
            ]
        },
        |c, r, _| {
            r.unwrap();
            c.contained();
        },
    );
}

#[test]
fn file_replaces_a_symlink_instead_of_following_it() {
    each(
        |c| {
            vec![
                Tar::default()
                    .symlink("x", &format!("{}/sentinel", c.abs_outside()))
                    .file("x", "evil")
                    .build(),
            ]
        },
        |c, r, overlay| {
            r.unwrap();
            let x = if overlay {
                c.root.join("0/x")
            } else {
                c.root.join("x")
            };
            assert!(std::fs::symlink_metadata(&x).unwrap().is_file());
            assert_eq!(std::fs::read_to_string(x).unwrap(), "evil");
        },
    );
}

#[test]
fn symlink_replacing_a_dir_mid_layer() {
    each(
        |c| {
            vec![
                Tar::default()
                    .mkdirs(&c.abs_outside())
                    .dir("d")
                    .file("d/f", "x")
                    .symlink("d", &c.abs_outside())
                    .file("d/sentinel", "evil")
                    .build(),
            ]
        },
        |c, r, _| {
            r.unwrap();
            c.contained();
        },
    );
}

#[test]
fn hardlink_with_dotdot_target_is_refused() {
    each(
        |_| vec![Tar::default().hardlink("h", "../outside/sentinel").build()],
        |_, r, _| err_contains(r, "climbs above the root"),
    );
}

#[test]
fn hardlink_to_absolute_outside_path_is_not_found_inside() {
    each(
        |c| {
            vec![
                Tar::default()
                    .hardlink("h", &format!("{}/sentinel", c.abs_outside()))
                    .build(),
            ]
        },
        |_, r, _| err_contains(r, "does not exist"),
    );
}

#[test]
fn hardlink_through_a_symlinked_dir_stays_inside() {
    each(
        |c| {
            vec![
                Tar::default()
                    .symlink("d", &c.abs_outside())
                    .hardlink("h", "d/sentinel")
                    .build(),
            ]
        },
        |_, r, _| err_contains(r, "does not exist"),
    );
}

#[test]
fn hardlink_to_a_symlink_pointing_out_links_the_symlink() {
    each(
        |c| {
            vec![
                Tar::default()
                    .symlink("s", &format!("{}/sentinel", c.abs_outside()))
                    .hardlink("h", "s")
                    .build(),
            ]
        },
        |c, r, overlay| {
            r.unwrap();
            let h = if overlay {
                c.root.join("0/h")
            } else {
                c.root.join("h")
            };
            assert!(
                std::fs::symlink_metadata(h)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        },
    );
}

#[test]
fn hardlink_to_a_directory_is_refused() {
    each(
        |_| vec![Tar::default().dir("d").hardlink("h", "d").build()],
        |_, r, _| err_contains(r, "hardlink to a directory"),
    );
}

#[test]
fn whiteout_naming_dotdot_is_refused() {
    each(
        |_| vec![Tar::default().dir("a").file("a/.wh..", "").build()],
        |_, r, _| err_contains(r, "invalid whiteout name"),
    );
    each(
        |_| vec![Tar::default().file(".wh.", "").build()],
        |_, r, _| err_contains(r, "invalid whiteout name"),
    );
}

#[test]
fn whiteout_through_a_symlink_deletes_nothing_outside() {
    each(
        |c| {
            vec![
                Tar::default().symlink("link", &c.abs_outside()).build(),
                Tar::default()
                    .file("link/.wh.sentinel", "")
                    .file("link/.wh.dir", "")
                    .build(),
            ]
        },
        |_, r, _| r.unwrap(),
    );
}

#[test]
fn opaque_marker_through_a_symlink_clears_nothing_outside() {
    each(
        |c| {
            vec![
                Tar::default().symlink("link", &c.abs_outside()).build(),
                Tar::default().file("link/.wh..wh..opq", "").build(),
            ]
        },
        |_, r, _| r.unwrap(),
    );
}

#[test]
fn aufs_metadata_names_are_ignored() {
    each(
        |_| {
            vec![
                Tar::default()
                    .dir(".wh..wh.plnk")
                    .file(".wh..wh.aufs", "")
                    .build(),
            ]
        },
        |_, r, _| r.unwrap(),
    );
}

#[test]
fn duplicate_entries_later_wins() {
    each(
        |_| {
            vec![
                Tar::default()
                    .file("f", "one")
                    .dir("d")
                    .file("d/x", "1")
                    .file("d", "evil")
                    .file("f", "two")
                    .build(),
            ]
        },
        |c, r, overlay| {
            r.unwrap();
            let base = if overlay {
                c.root.join("0")
            } else {
                c.root.clone()
            };
            assert_eq!(std::fs::read_to_string(base.join("f")).unwrap(), "two");
            assert_eq!(std::fs::read_to_string(base.join("d")).unwrap(), "evil");
        },
    );
}

#[test]
fn symlink_loop_as_parent_is_an_error() {
    each(
        |_| {
            vec![
                Tar::default()
                    .symlink("a", "b")
                    .symlink("b", "a")
                    .file("a/x", "evil")
                    .build(),
            ]
        },
        |_, r, _| assert!(r.is_err()),
    );
}

#[test]
fn not_a_tar_is_refused() {
    each(
        |_| {
            vec![
                (0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect(),
            ]
        },
        |_, r, _| err_contains(r, "not a valid tar"),
    );
}

#[test]
fn declared_size_that_lies_is_refused() {
    each(
        |_| {
            let h = hdr(b"f", EntryType::Regular, 100_000, None);
            let mut raw = h.as_bytes().to_vec();
            raw.extend_from_slice(b"evil");
            vec![raw]
        },
        |c, r, _| {
            assert!(r.is_err(), "a truncated entry must fail");
            let _ = c;
        },
    );
}

#[test]
fn wrong_diff_id_is_refused() {
    for overlay in MODES {
        let c = setup();
        let l = Tar::default().file("f", "x").build();
        let opts = ApplyOptions {
            mode: if overlay {
                ApplyMode::Overlay { lowers: vec![] }
            } else {
                ApplyMode::Flatten
            },
            ..Default::default()
        };
        let bad = format!("sha256:{}", "0".repeat(64));
        let e = apply_layer(&l[..], &c.root, &bad, &opts).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let e = apply_layer(&l[..], &c.root, "md5:abc", &opts).unwrap_err();
        assert!(e.to_string().contains("not a sha256 digest"), "{e}");
        c.untouched();
    }
}

#[test]
fn decompression_bomb_stops_at_the_cap() {
    for overlay in MODES {
        for r in RESOLVERS {
            let c = setup();
            let big = "z".repeat(2 << 20);
            let l = Tar::default().file("bomb", &big).build();
            let e = apply_all(&c, &[l], overlay, r, Some(1 << 20)).unwrap_err();
            assert!(format!("{e:#}").contains("cap"), "{e:#}");
            c.untouched();
        }
    }
}

#[test]
fn pax_path_with_dotdot_is_refused() {
    each(
        |_| {
            let mut b = tar::Builder::new(Vec::new());
            b.append_pax_extensions([("path", &b"../outside/sentinel"[..])])
                .unwrap();
            let h = hdr(b"innocent", EntryType::Regular, 4, None);
            b.append(&h, &b"evil"[..]).unwrap();
            vec![b.into_inner().unwrap()]
        },
        |_, r, _| err_contains(r, "climbs above the root"),
    );
}

#[test]
fn gnu_long_name_through_symlink_stays_inside() {
    each(
        |c| {
            let mut b = tar::Builder::new(Vec::new());
            for (h, d) in Tar::default().mkdirs(&c.abs_outside()).0 {
                b.append(&h, &d[..]).unwrap();
            }
            let h = hdr(
                b"link",
                EntryType::Symlink,
                0,
                Some(c.abs_outside().as_bytes()),
            );
            b.append(&h, &b""[..]).unwrap();
            let long = format!("link/{}/sentinel", "d".repeat(150));
            let mut h = Header::new_gnu();
            h.set_entry_type(EntryType::Regular);
            h.set_size(4);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, long, &b"evil"[..]).unwrap();
            vec![b.into_inner().unwrap()]
        },
        |c, r, _| {
            r.unwrap();
            c.contained();
        },
    );
}

#[test]
fn xattr_trusted_overlay_from_a_layer_is_dropped() {
    overlay_xattr_from_a_layer_is_dropped("trusted.overlay.opaque");
}

#[test]
fn xattr_user_overlay_from_a_layer_is_dropped() {
    // What unprivileged overlayfs (userxattr) obeys: as dangerous in a layer.
    overlay_xattr_from_a_layer_is_dropped("user.overlay.opaque");
}

fn overlay_xattr_from_a_layer_is_dropped(name: &str) {
    for overlay in MODES {
        let c = setup();
        let mut b = tar::Builder::new(Vec::new());
        let key = format!("SCHILY.xattr.{name}");
        b.append_pax_extensions([(key.as_str(), &b"y"[..])])
            .unwrap();
        b.append(&hdr(b"d", EntryType::Directory, 0, None), &b""[..])
            .unwrap();
        let l = b.into_inner().unwrap();
        apply_all(&c, &[l], overlay, Resolver::Auto, None).unwrap();
        let d = if overlay {
            c.root.join("0/d")
        } else {
            c.root.join("d")
        };
        let mut buf = [0u8; 8];
        let got = rustix::fs::lgetxattr(&d, name, &mut buf[..]);
        assert_eq!(
            got,
            Err(rustix::io::Errno::NODATA),
            "a layer must not set overlay xattrs"
        );
        c.untouched();
    }
}

#[test]
fn path_longer_than_path_max_is_refused() {
    each(
        |_| {
            let mut b = tar::Builder::new(Vec::new());
            let long = format!("{}/f", "d/".repeat(2100));
            b.append_pax_extensions([("path", long.as_bytes())])
                .unwrap();
            b.append(&hdr(b"short", EntryType::Regular, 4, None), &b"evil"[..])
                .unwrap();
            vec![b.into_inner().unwrap()]
        },
        |_, r, _| err_contains(r, "longer than PATH_MAX"),
    );
}

#[test]
fn tree_deeper_than_any_path_is_refused_not_a_crash() {
    // Symlinks chain 500-deep paths into a 1500-deep tree (over the 1024
    // limit, deeper than a path may name); whiting it out
    // must end in a clear error (flatten), never a stack overflow.
    let deep = "a/".repeat(500);
    let build = || {
        let mut b = tar::Builder::new(Vec::new());
        let mut put = |path: String, link: Option<String>| {
            let mut h = Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match link {
                Some(l) => {
                    h.set_entry_type(EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, l).unwrap();
                }
                None => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(0);
                    b.append_data(&mut h, path, &b""[..]).unwrap();
                }
            }
        };
        put(format!("{deep}f"), None);
        put("l1".into(), Some(deep.trim_end_matches('/').into()));
        for i in 1..3 {
            put(format!("l{i}/{deep}f"), None);
            put(
                format!("l{}", i + 1),
                Some(format!("l{i}/{}", deep.trim_end_matches('/'))),
            );
        }
        b.into_inner().unwrap()
    };
    each(
        |_| vec![build(), Tar::default().file(".wh.a", "").build()],
        |_, r, overlay| {
            if overlay {
                r.unwrap();
            } else {
                err_contains(r, "too deep");
            }
        },
    );
}

#[test]
fn metadata_entries_over_a_symlink_do_not_touch_its_target() {
    // A dir entry and a file named like a symlink to an outside dir: each
    // replaces the symlink; chmod/chown/utimes never reach the target.
    each(
        |c| {
            let out = format!("{}/dir", c.abs_outside());
            vec![
                Tar::default()
                    .symlink("d", &out)
                    .dir("d")
                    .symlink("e", &out)
                    .file("e", "evil")
                    .build(),
            ]
        },
        |c, r, overlay| {
            r.unwrap();
            let base = if overlay {
                c.root.join("0")
            } else {
                c.root.clone()
            };
            assert!(std::fs::symlink_metadata(base.join("d")).unwrap().is_dir());
            assert!(std::fs::symlink_metadata(base.join("e")).unwrap().is_file());
        },
    );
}

/// A decompression bomb (64 MiB of zeros in a 64 KiB gzip) unpacked into a
/// store whose filesystem has 8 MiB free: refused at its header, before it
/// is inflated or fills the disk, with an error naming the entry and the
/// sizes, and no partial snapshot left behind.
#[test]
fn a_file_larger_than_the_free_space_is_refused_before_inflating() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting(Box<dyn Read>, Arc<AtomicU64>);
    impl Read for Counting {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(b)?;
            self.1.fetch_add(n as u64, Ordering::SeqCst);
            Ok(n)
        }
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }

    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("snaps");
    std::fs::create_dir(&dir).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &dir,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(c"size=8m"),
    )
    .unwrap();
    let _u = Unmount(dir.clone());

    let size = 64u64 << 20;
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    b.append_data(&mut h, "bomb", std::io::repeat(0).take(size))
        .unwrap();
    let gz = b.into_inner().unwrap().finish().unwrap();
    let diff_id = diff_id_of(flate2::read::GzDecoder::new(&gz[..])).unwrap();

    let snaps = berth_snapshot::Snapshots::new(&dir).unwrap();
    let inflated = Arc::new(AtomicU64::new(0));
    let e = snaps
        .prepare(&[berth_snapshot::LayerDesc { diff_id }], |_| {
            let gz = flate2::read::GzDecoder::new(std::io::Cursor::new(gz.clone()));
            Ok(Box::new(Counting(Box::new(gz), inflated.clone())))
        })
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("\"bomb\"") && e.contains(&format!("{size} bytes")) && e.contains("free"),
        "{e}"
    );
    let n = inflated.load(Ordering::SeqCst);
    assert!(n < 1 << 20, "inflated {n} bytes before refusing");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [".locks"], "no partial snapshot");
}
