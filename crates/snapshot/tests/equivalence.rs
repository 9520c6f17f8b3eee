//! The same multi-layer image three ways: flattened, snapshots merged by
//! copy, and snapshots mounted with overlayfs. All must be identical, and
//! match the OCI whiteout/opaque/hardlink semantics.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use berth_snapshot::{
    ApplyMode, ApplyOptions, LayerDesc, Resolver, RootfsKind, RootfsOptions, Snapshots,
    apply_layer, diff_id_of, flatten_snapshots, mount_rootfs_with, remove_rootfs,
};
use common::{assert_same, test_image, tree};

fn flatten(layers: &[Vec<u8>], target: &std::path::Path, resolver: Resolver) {
    std::fs::create_dir_all(target).unwrap();
    for l in layers {
        let opts = ApplyOptions {
            mode: ApplyMode::Flatten,
            resolver,
            ..Default::default()
        };
        apply_layer(&l[..], target, &diff_id_of(&l[..]).unwrap(), &opts).unwrap();
    }
}

fn snapshots(layers: &[Vec<u8>], dir: &std::path::Path, resolver: Resolver) -> Vec<PathBuf> {
    let mut s = Snapshots::new(dir).unwrap();
    s.apply.resolver = resolver;
    let descs: Vec<LayerDesc> = layers
        .iter()
        .map(|l| LayerDesc {
            diff_id: diff_id_of(&l[..]).unwrap(),
        })
        .collect();
    s.prepare(&descs, |i| {
        Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
    })
    .unwrap()
}

#[test]
fn flatten_follows_oci_semantics() {
    for r in [Resolver::Auto, Resolver::Fallback] {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("flat");
        flatten(&test_image(), &f, r);
        let md = |p: &str| std::fs::symlink_metadata(f.join(p));
        assert!(md("gone/a").is_err() && md("gone/back").unwrap().is_file());
        assert!(md("del").is_err());
        assert!(
            md("opaque/old").is_err() && md("opaque/olddir").is_err() && md("opaque/new").is_ok()
        );
        assert!(md("becomes-file").unwrap().is_file());
        assert_eq!(md("becomes-file").unwrap().gid(), 50);
        assert!(md("becomes-dir").unwrap().is_dir() && md("becomes-dir/fresh").is_ok());
        assert!(
            md("becomes-dir/child").is_err(),
            "whiteout + new dir in one layer replaces the dir"
        );
        assert_eq!(
            md("shared").unwrap().ino(),
            md("shared-link").unwrap().ino()
        );
        assert_eq!(md("hl-src").unwrap().ino(), md("hl-dst").unwrap().ino());
        assert!(md("fifo").unwrap().file_type().is_fifo());
        let null = md("null").unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        let tool = md("bin/tool").unwrap();
        assert_eq!(
            (tool.mode() & 0o7777, tool.gid()),
            (0o2755, 50),
            "setgid survives chown"
        );
        assert_eq!(
            std::fs::read_link(f.join("bin/abs")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        let home = md("home/app").unwrap();
        assert_eq!(
            (home.mode() & 0o7777, home.uid(), home.gid()),
            (0o700, 1000, 1000)
        );
        assert!(md("home/app/own").is_err() && md("home/app/second").is_ok());
        assert_eq!(md("tmp").unwrap().mode() & 0o7777, 0o1777);
        let mut v = [0u8; 16];
        let n = rustix::fs::lgetxattr(f.join("xattr-file"), "user.berth", &mut v[..]).unwrap();
        assert_eq!(&v[..n], b"fixture");
        assert_eq!(md("etc/passwd").unwrap().mtime(), 1_700_000_000);
    }
}

#[test]
fn snapshots_hold_overlay_whiteouts() {
    let t = tempfile::tempdir().unwrap();
    let lowers = snapshots(&test_image(), &t.path().join("snaps"), Resolver::Auto);
    let wo = std::fs::symlink_metadata(lowers[1].join("gone")).unwrap();
    assert!(wo.file_type().is_char_device() && wo.rdev() == 0);
    // The entry's mtime, not the clock's: unpacking is reproducible.
    assert_eq!(wo.mtime(), 1_700_000_000);
    let mut v = [0u8; 4];
    let n = rustix::fs::lgetxattr(
        lowers[1].join("opaque"),
        "trusted.overlay.opaque",
        &mut v[..],
    )
    .unwrap();
    assert_eq!(&v[..n], b"y");
    // Cross-layer hardlink: the lower file was copied up into layer 1's snapshot.
    let s = std::fs::symlink_metadata(lowers[1].join("shared")).unwrap();
    assert_eq!(
        s.ino(),
        std::fs::symlink_metadata(lowers[1].join("shared-link"))
            .unwrap()
            .ino()
    );
    assert!(
        std::fs::symlink_metadata(lowers[0].join("shared"))
            .unwrap()
            .nlink()
            == 1
    );
}

#[test]
fn flatten_copy_and_overlay_agree() {
    for r in [Resolver::Auto, Resolver::Fallback] {
        let t = tempfile::tempdir().unwrap();
        let layers = test_image();
        let f = t.path().join("flat");
        flatten(&layers, &f, r);
        let want = tree(&f);

        let lowers = snapshots(&layers, &t.path().join("snaps"), r);
        let c = t.path().join("copy");
        std::fs::create_dir_all(&c).unwrap();
        flatten_snapshots(&lowers, &c, r).unwrap();
        assert_same(&want, &tree(&c), "flatten vs merged snapshots");

        let cdir = t.path().join("ctr");
        let _g = common::Cleanup(cdir.clone());
        let rootfs = mount_rootfs_with(&cdir, &lowers, RootfsOptions::default()).unwrap();
        assert_eq!(
            rootfs.kind,
            RootfsKind::Overlay,
            "overlayfs should work on this test machine"
        );
        let got = tree(&rootfs.path);
        remove_rootfs(&cdir).unwrap();
        assert_same(&want, &got, "flatten vs overlay mount");
        assert!(!cdir.join("rootfs").exists());
    }
}
