//! Container rootfs isolation with real overlay mounts (and the copy fallback):
//! containers never see each other's writes and never change the snapshots.

mod common;

use std::os::unix::fs::PermissionsExt;

use berth_rootfs::{
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
    berth_rootfs::overlay::remove_rootfs(&cdir).unwrap();
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
        let opts = berth_rootfs::layer::ApplyOptions::default();
        berth_rootfs::layer::apply_layer(&l[..], &flat, &diff_id_of(&l[..]).unwrap(), &opts)
            .unwrap();
    }
    assert_eq!(names(&flat), want, "flattened");
}
