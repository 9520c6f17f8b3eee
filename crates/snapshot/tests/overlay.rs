//! Container rootfs isolation with real overlay mounts (and the copy fallback):
//! containers never see each other's writes and never change the snapshots.

mod common;

use std::os::unix::fs::PermissionsExt;

use berth_snapshot::{
    LayerDesc, RootfsKind, RootfsOptions, Snapshots, diff_id_of, mount_rootfs_with, remove_rootfs,
};
use common::{assert_same, test_image, tree};

/// The superblock options of the mount at `path`, from mountinfo.
fn mount_options(path: &std::path::Path) -> Option<String> {
    let want = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(want))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
}

fn isolation(opts: RootfsOptions) {
    let force_copy = opts.force_copy;
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let snaps = Snapshots::new(t.path().join("snaps")).unwrap();
    let descs: Vec<LayerDesc> = layers
        .iter()
        .map(|l| LayerDesc {
            diff_id: diff_id_of(&l[..]).unwrap(),
        })
        .collect();
    let lowers = snaps
        .prepare(&descs, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    let before: Vec<_> = lowers.iter().map(|l| tree(l)).collect();

    let _g1 = common::Cleanup(t.path().join("c1"));
    let _g2 = common::Cleanup(t.path().join("c2"));
    let c1 = mount_rootfs_with(&t.path().join("c1"), &lowers, opts).unwrap();
    let c2 = mount_rootfs_with(&t.path().join("c2"), &lowers, opts).unwrap();
    let want = if force_copy {
        RootfsKind::Copy
    } else {
        RootfsKind::Overlay
    };
    assert_eq!((c1.kind, c2.kind), (want, want));
    let (r1, r2) = (&c1.path, &c2.path);
    if !force_copy {
        let o = mount_options(r1).expect("c1's overlay in mountinfo");
        // Shown as `fsync=volatile` since Linux 6.6.
        let volatile = o
            .split(',')
            .any(|o| o == "volatile" || o == "fsync=volatile");
        assert_eq!(volatile, opts.volatile, "{o}");
    }
    // setuid binaries of the image must not be reachable by host users.
    for d in [t.path().join("snaps"), t.path().join("c1")] {
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
    }

    std::fs::write(r1.join("new-file"), "c1").unwrap();
    std::fs::write(r1.join("etc/passwd"), "changed").unwrap();
    std::fs::remove_file(r1.join("etc/group")).unwrap();
    std::fs::remove_dir_all(r1.join("opaque")).unwrap();
    std::fs::rename(r1.join("bin/tool"), r1.join("bin/renamed")).unwrap();
    // Renaming a lower directory gives EXDEV on overlayfs without redirect_dir,
    // as under Docker's overlay2; `mv` then copies. Either outcome is fine here.
    match std::fs::rename(r1.join("home/app"), r1.join("home/moved")) {
        Ok(()) => {}
        Err(e) if !force_copy && e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(e) => panic!("rename: {e}"),
    }
    std::fs::set_permissions(r1.join("shared"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(r1.join("becomes-dir/fresh"), Some(7), Some(7)).unwrap();

    assert!(!r2.join("new-file").exists());
    assert!(
        std::fs::read_to_string(r2.join("etc/passwd"))
            .unwrap()
            .starts_with("root:")
    );
    assert!(r2.join("etc/group").exists() && r2.join("opaque/new").exists());
    assert!(r2.join("bin/tool").exists() && !r2.join("bin/renamed").exists());
    assert!(r2.join("home/app/second").exists());
    assert_eq!(
        std::fs::metadata(r2.join("shared"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    // c1 sees its own changes.
    assert!(!r1.join("etc/group").exists() && r1.join("bin/renamed").exists());

    for (l, b) in lowers.iter().zip(&before) {
        assert_same(b, &tree(l), "snapshot changed by a container");
    }
    remove_rootfs(&t.path().join("c1")).unwrap();
    remove_rootfs(&t.path().join("c2")).unwrap();
    for (l, b) in lowers.iter().zip(&before) {
        assert_same(b, &tree(l), "snapshot changed by cleanup");
    }
    for c in ["c1", "c2"] {
        for d in ["rootfs", "upper", "work"] {
            assert!(!t.path().join(c).join(d).exists(), "{c}/{d} left behind");
        }
    }
}

#[test]
fn overlay_containers_are_isolated() {
    isolation(RootfsOptions::default());
}

#[test]
fn volatile_overlay_containers_are_isolated_and_removed_whole() {
    // `--rm` containers: no syncs, and the marker overlayfs leaves in the
    // work dir (work/incompat/volatile) goes with the rest.
    isolation(RootfsOptions {
        volatile: true,
        ..Default::default()
    });
}

#[test]
fn copied_containers_are_isolated() {
    isolation(RootfsOptions {
        force_copy: true,
        ..Default::default()
    });
}

#[test]
fn too_many_lowers_fall_back_to_copy() {
    let t = tempfile::tempdir().unwrap();
    // 200 lower dirs with long names: the options string exceeds a page.
    let mut lowers = Vec::new();
    for i in 0..200 {
        let d = t.path().join(format!("{i:0>40}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), "x").unwrap();
        lowers.push(d);
    }
    let c = mount_rootfs_with(&t.path().join("c"), &lowers, RootfsOptions::default()).unwrap();
    assert_eq!(c.kind, RootfsKind::Copy);
    assert!(c.path.join("f0").exists() && c.path.join("f199").exists());
    remove_rootfs(&t.path().join("c")).unwrap();
}

#[test]
fn overlay_inside_overlay_falls_back_to_copy() {
    // berth running inside a container: its state dir is on overlayfs, where
    // an upper dir is refused (EINVAL); the rootfs must then be a copy.
    let t = tempfile::tempdir().unwrap();
    let layers = test_image();
    let snaps = Snapshots::new(t.path().join("snaps")).unwrap();
    let descs: Vec<LayerDesc> = layers
        .iter()
        .map(|l| LayerDesc {
            diff_id: diff_id_of(&l[..]).unwrap(),
        })
        .collect();
    let lowers = snaps
        .prepare(&descs, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    let _g = common::Cleanup(t.path().join("outer"));
    let outer =
        mount_rootfs_with(&t.path().join("outer"), &lowers, RootfsOptions::default()).unwrap();
    assert_eq!(outer.kind, RootfsKind::Overlay);
    let inner_dir = outer.path.join("var-lib-berth/ctr");
    let inner = mount_rootfs_with(&inner_dir, &lowers, RootfsOptions::default());
    let inner = inner.unwrap();
    assert_eq!(inner.kind, RootfsKind::Copy);
    assert_same(
        &tree(&t.path().join("outer/rootfs/etc")),
        &tree(&inner.path.join("etc")),
        "copied rootfs content",
    );
    remove_rootfs(&inner_dir).unwrap();
    remove_rootfs(&t.path().join("outer")).unwrap();
}

#[test]
fn removing_a_rootfs_never_deletes_through_a_leftover_lower_mount() {
    // A berth killed while mounting id-mapped lowers (--userns remap)
    // leaves a snapshot bind-mounted under idmapped/: removing the
    // container must not recurse into it and empty the snapshot.
    let t = tempfile::tempdir().unwrap();
    let snap = t.path().join("snapshot");
    std::fs::create_dir(&snap).unwrap();
    std::fs::write(snap.join("precious"), "image data").unwrap();
    let cdir = t.path().join("container");
    let lower = cdir.join("idmapped/0");
    std::fs::create_dir_all(&lower).unwrap();
    rustix::mount::mount_bind(&snap, &lower).unwrap();
    assert!(lower.join("precious").exists());
    berth_snapshot::overlay::remove_rootfs(&cdir).unwrap();
    let _ = rustix::mount::unmount(&lower, rustix::mount::UnmountFlags::DETACH);
    assert_eq!(
        std::fs::read_to_string(snap.join("precious")).unwrap(),
        "image data"
    );
    assert!(!cdir.join("idmapped").exists());
}

/// An opaque marker at a layer's root hides everything the layers below
/// have, as umoci and containerd's tar applier do; overlayfs ignores the
/// opaque xattr on a layer's root, so berth must not leave it to the kernel.
/// Checked in the overlay mount, the copy fallback and a flattened apply.
#[test]
fn opaque_marker_at_a_layers_root_hides_every_lower_entry() {
    use common::{DIR, Layer, ROOT};
    let layers = [
        Layer::default()
            .dir("etc", DIR)
            .file("etc/old", ROOT, "old\n")
            .file("old-top", ROOT, "old\n")
            .build(),
        Layer::default()
            .file(".wh..wh..opq", ROOT, "")
            .file("new", ROOT, "new\n")
            .dir("etc", DIR)
            .file("etc/fresh", ROOT, "fresh\n")
            .build(),
    ];
    let want = ["etc", "etc/fresh", "new"];
    let names = |root: &std::path::Path| tree(root).into_keys().collect::<Vec<_>>();

    let t = tempfile::tempdir().unwrap();
    let snaps = Snapshots::new(t.path().join("snaps")).unwrap();
    let descs: Vec<LayerDesc> = layers
        .iter()
        .map(|l| LayerDesc {
            diff_id: diff_id_of(&l[..]).unwrap(),
        })
        .collect();
    let lowers = snaps
        .prepare(&descs, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap();
    for force_copy in [false, true] {
        let dir = t.path().join(format!("c-{force_copy}"));
        let _g = common::Cleanup(dir.clone());
        let opts = RootfsOptions {
            force_copy,
            ..RootfsOptions::default()
        };
        let c = mount_rootfs_with(&dir, &lowers, opts).unwrap();
        assert_eq!(names(&c.path), want, "copy: {force_copy}");
        remove_rootfs(&dir).unwrap();
    }

    let flat = t.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for l in &layers {
        let opts = berth_snapshot::layer::ApplyOptions::default();
        berth_snapshot::layer::apply_layer(&l[..], &flat, &diff_id_of(&l[..]).unwrap(), &opts)
            .unwrap();
    }
    assert_eq!(names(&flat), want, "flattened");
}

fn descs_of(layers: &[Vec<u8>]) -> Vec<LayerDesc> {
    layers
        .iter()
        .map(|l| LayerDesc {
            diff_id: diff_id_of(&l[..]).unwrap(),
        })
        .collect()
}

fn prepare_in(dir: &std::path::Path, layers: &[Vec<u8>]) -> Vec<std::path::PathBuf> {
    Snapshots::new(dir)
        .unwrap()
        .prepare(&descs_of(layers), |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap()
}

/// `layers` applied one after another to a plain directory: the tree every
/// way of making the rootfs must give.
fn flattened(
    layers: &[Vec<u8>],
    dir: &std::path::Path,
) -> std::collections::BTreeMap<String, common::Info> {
    std::fs::create_dir_all(dir).unwrap();
    for l in layers {
        berth_snapshot::apply_layer(
            &l[..],
            dir,
            &diff_id_of(&l[..]).unwrap(),
            &berth_snapshot::ApplyOptions::default(),
        )
        .unwrap();
    }
    tree(dir)
}

/// The rootfs of `lowers` as an overlay (upper and work in `scratch` when
/// the container dir is on overlayfs) and as a copy: both must be `want`.
fn check_rootfs(
    lowers: &[std::path::PathBuf],
    cdir: &std::path::Path,
    scratch: &std::path::Path,
    want: &std::collections::BTreeMap<String, common::Info>,
) {
    let _g = common::Cleanup(cdir.to_path_buf());
    let _s = common::Cleanup(scratch.to_path_buf());
    let opts = RootfsOptions {
        scratch: Some(scratch),
        ..RootfsOptions::default()
    };
    let c = mount_rootfs_with(cdir, lowers, opts).unwrap();
    assert_eq!(c.kind, RootfsKind::Overlay);
    let place = if berth_snapshot::overlay::is_overlayfs(cdir.parent().unwrap()) {
        scratch
    } else {
        cdir
    };
    assert_eq!(c.upper, Some(place.join("upper")));
    assert_same(want, &tree(&c.path), "overlay rootfs");
    remove_rootfs(cdir).unwrap();
    berth_snapshot::remove_tree(scratch).unwrap();
    let copy = RootfsOptions {
        force_copy: true,
        ..RootfsOptions::default()
    };
    let c = mount_rootfs_with(cdir, lowers, copy).unwrap();
    assert_eq!((c.kind, c.upper), (RootfsKind::Copy, None));
    assert_same(want, &tree(&c.path), "copied rootfs");
    remove_rootfs(cdir).unwrap();
}

fn temps(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

/// berth in a container: its store is on overlayfs, which refuses overlay
/// whiteouts (char 0:0) made through it, and before Linux 6.7 opaque
/// markers too. A layer that needs one becomes a self-contained snapshot
/// (its lowers merged in, whiteouts applied for real) that hides the
/// lowers; a layer that needs none is unpacked as on any store.
#[test]
fn snapshots_on_overlayfs_become_self_contained_only_where_needed() {
    let layers = test_image();
    let t = tempfile::tempdir().unwrap();
    let want = flattened(&layers, &t.path().join("flat"));
    let plain = prepare_in(&t.path().join("plain"), &layers);

    let ovl = common::OverlayFs::new();
    let snaps = ovl.merged.join("snaps");
    let lowers = prepare_in(&snaps, &layers);
    assert_same(
        &tree(&plain[0]),
        &tree(&lowers[0]),
        "a layer without whiteouts is unpacked as it is",
    );
    for i in 1..layers.len() {
        let upto = flattened(&layers[..=i], &t.path().join(format!("flat{i}")));
        assert_same(&upto, &tree(&lowers[i]), "layer {i}: self-contained");
    }
    assert_eq!(
        berth_snapshot::lowers::visible_lowers(&lowers),
        &lowers[2..],
        "the top self-contained snapshot hides the ones below"
    );
    assert!(temps(&snaps).is_empty(), "{:?}", temps(&snaps));
    check_rootfs(
        &lowers,
        &ovl.merged.join("ctr"),
        &t.path().join("scratch"),
        &want,
    );

    // The store moved to a normal filesystem (xattrs kept) still works.
    let moved = t.path().join("moved");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&snaps)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(st.success());
    // busybox's cp -a (the v2 VM's) keeps no symlink's mtime: put them back.
    for (rel, info) in tree(&snaps) {
        if let ("symlink", Some(mtime)) = (info.kind, info.mtime) {
            let t = rustix::fs::Timestamps {
                last_access: rustix::time::Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                },
                last_modification: rustix::time::Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                },
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                moved.join(rel),
                &t,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
    }
    let moved_lowers: Vec<_> = lowers
        .iter()
        .map(|l| moved.join(l.file_name().unwrap()))
        .collect();
    check_rootfs(
        &moved_lowers,
        &t.path().join("ctr"),
        &t.path().join("scratch"),
        &want,
    );
}

/// A layer whose only overlay metadata is an opaque marker (in a dir, or
/// at its root): since Linux 6.7 overlayfs stores it escaped and a nested
/// overlay honours it, so the snapshot stays per-layer; before, the xattr
/// is refused and the snapshot becomes self-contained. The tree is the
/// image's either way.
#[test]
fn opaque_markers_on_overlayfs_give_the_exact_tree() {
    use common::{DIR, Layer, ROOT};
    let base = Layer::default()
        .dir("d", DIR)
        .file("d/old", ROOT, "old\n")
        .file("top-old", ROOT, "old\n")
        .build();
    let in_dir = Layer::default()
        .dir("d", DIR)
        .opaque("d")
        .file("d/new", ROOT, "new\n")
        .build();
    let at_root = Layer::default()
        .file(".wh..wh..opq", ROOT, "")
        .file("new", ROOT, "new\n")
        .build();
    let ovl = common::OverlayFs::new();
    let kept = ovl.takes_overlay_xattrs();
    for (n, image) in [vec![base.clone(), in_dir], vec![base, at_root]]
        .into_iter()
        .enumerate()
    {
        let t = tempfile::tempdir().unwrap();
        let want = flattened(&image, &t.path().join("flat"));
        let lowers = prepare_in(&ovl.merged.join(format!("snaps{n}")), &image);
        let visible = berth_snapshot::lowers::visible_lowers(&lowers).len();
        // A root-opaque layer hides its lowers whichever way it is kept.
        let hides = n == 1 || !kept;
        assert_eq!(visible, if hides { 1 } else { 2 }, "image {n}");
        if !kept {
            assert_same(&want, &tree(&lowers[1]), "self-contained");
        }
        check_rootfs(
            &lowers,
            &ovl.merged.join(format!("ctr{n}")),
            &t.path().join("scratch"),
            &want,
        );
    }
}

/// A store whose filesystem keeps no xattrs at all (overlayfs over a
/// filesystem without them, as over tmpfs before Linux 6.6): whiteouts and
/// opaque markers are refused, and so would be any xattr marking a
/// snapshot self-contained; the tree is still the image's.
#[test]
fn self_contained_snapshots_need_no_xattrs() {
    use common::{DIR, Layer, ROOT};
    let layers = [
        Layer::default()
            .dir("d", DIR)
            .file("d/old", ROOT, "old\n")
            .file("gone", ROOT, "gone\n")
            .dir("o", DIR)
            .file("o/old", ROOT, "old\n")
            .build(),
        Layer::default()
            .whiteout("", "gone")
            .dir("o", DIR)
            .opaque("o")
            .file("o/new", ROOT, "new\n")
            .file("d/new", ROOT, "new\n")
            .build(),
        Layer::default().file("top", ROOT, "top\n").build(),
    ];
    let t = tempfile::tempdir().unwrap();
    let want = flattened(&layers, &t.path().join("flat"));
    let ovl = common::OverlayFs::without_xattrs();
    let lowers = prepare_in(&ovl.merged.join("snaps"), &layers);
    assert_eq!(
        berth_snapshot::lowers::visible_lowers(&lowers),
        &lowers[1..],
        "layer 1 is self-contained, layer 2 as it is"
    );
    assert_same(
        &flattened(&layers[2..], &t.path().join("top")),
        &tree(&lowers[2]),
        "layer 2 alone",
    );
    check_rootfs(
        &lowers,
        &ovl.merged.join("ctr"),
        &t.path().join("scratch"),
        &want,
    );
}

/// A layer that became self-contained and then fails its digest check
/// leaves nothing behind: no snapshot, no temp, no set-aside part.
#[test]
fn a_failed_self_contained_unpack_leaves_nothing() {
    let layers = test_image();
    let ovl = common::OverlayFs::new();
    let snaps = ovl.merged.join("snaps");
    let mut d = descs_of(&layers);
    d[1].diff_id = format!("sha256:{}", "0".repeat(64));
    let s = Snapshots::new(&snaps).unwrap();
    let err = s
        .prepare(&d, |i| {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("digest mismatch"), "{err:#}");
    assert!(temps(&snaps).is_empty(), "{:?}", temps(&snaps));
    assert_eq!(s.list().unwrap().len(), 1, "only the bottom layer's");
}

/// With the store on overlayfs, a container's upper and work dirs go in a
/// scratch dir overlayfs accepts; without one, the rootfs is a copy.
#[test]
fn a_container_dir_on_overlayfs_puts_the_upper_in_scratch() {
    let layers = test_image();
    let t = tempfile::tempdir().unwrap();
    let lowers = prepare_in(&t.path().join("snaps"), &layers);
    let ovl = common::OverlayFs::new();
    let cdir = ovl.merged.join("ctr");
    // Its parents too are made, private.
    let scratch = t.path().join("exec-root/scratch/ctr");
    let _g = common::Cleanup(cdir.clone());
    let _s = common::Cleanup(scratch.clone());
    let c = mount_rootfs_with(&cdir, &lowers, RootfsOptions::default()).unwrap();
    assert_eq!((c.kind, c.upper), (RootfsKind::Copy, None));
    remove_rootfs(&cdir).unwrap();
    let opts = RootfsOptions {
        scratch: Some(&scratch),
        ..RootfsOptions::default()
    };
    let c = mount_rootfs_with(&cdir, &lowers, opts).unwrap();
    assert_eq!(c.kind, RootfsKind::Overlay);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&scratch), mode(scratch.parent().unwrap())),
        (0o700, 0o700)
    );
    std::fs::write(c.path.join("written"), "w").unwrap();
    assert!(scratch.join("upper/written").exists());
    assert!(!cdir.join("upper").exists() && !cdir.join("work").exists());
    remove_rootfs(&cdir).unwrap();
    berth_snapshot::remove_tree(&scratch).unwrap();
    assert!(!scratch.exists());
}
