//! Metadata rules: capabilities survive chown, trusted.* only when privileged,
//! devices skipped (with a warning) when unprivileged, setuid after chown.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use berth_snapshot::{ApplyMode, ApplyOptions, apply_layer, diff_id_of};
use common::{Layer, M, ROOT};

/// cap_net_raw+ep as a VFS_CAP_REVISION_2 xattr.
fn cap_net_raw() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 13).to_le_bytes());
    v.extend_from_slice(&[0; 12]);
    v
}

fn xattr(p: &std::path::Path, k: &str) -> Option<Vec<u8>> {
    let mut v = vec![0u8; 256];
    rustix::fs::lgetxattr(p, k, &mut v[..])
        .ok()
        .map(|n| v[..n].to_vec())
}

fn apply(
    l: &[u8],
    target: &std::path::Path,
    privileged: Option<bool>,
    overlay: bool,
) -> berth_snapshot::ApplyReport {
    let mode = if overlay {
        ApplyMode::Overlay { lowers: vec![] }
    } else {
        ApplyMode::Flatten
    };
    let opts = ApplyOptions {
        mode,
        privileged,
        ..Default::default()
    };
    apply_layer(l, target, &diff_id_of(l).unwrap(), &opts).unwrap()
}

#[test]
fn file_capabilities_survive_chown() {
    for overlay in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let l = Layer::default()
            .file_xattr(
                "ping",
                M {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                },
                "bin",
                "security.capability",
                &cap_net_raw(),
            )
            .file_xattr(
                "owned",
                M {
                    mode: 0o4750,
                    uid: 1000,
                    gid: 1000,
                },
                "x",
                "security.capability",
                &cap_net_raw(),
            )
            .build();
        apply(&l, t.path(), None, overlay);
        assert_eq!(
            xattr(&t.path().join("ping"), "security.capability"),
            Some(cap_net_raw())
        );
        assert_eq!(
            xattr(&t.path().join("owned"), "security.capability"),
            Some(cap_net_raw())
        );
        let md = std::fs::metadata(t.path().join("owned")).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.permissions().mode() & 0o7777),
            (1000, 1000, 0o4750)
        );
    }
}

#[test]
fn trusted_xattrs_only_when_privileged() {
    let l = Layer::default()
        .file_xattr("f", ROOT, "x", "trusted.berth", b"t")
        .build();
    let t = tempfile::tempdir().unwrap();
    apply(&l, t.path(), Some(true), false);
    assert_eq!(
        xattr(&t.path().join("f"), "trusted.berth"),
        Some(b"t".to_vec())
    );
    let t = tempfile::tempdir().unwrap();
    let r = apply(&l, t.path(), Some(false), false);
    assert_eq!(xattr(&t.path().join("f"), "trusted.berth"), None);
    assert!(
        r.warnings.iter().any(|w| w.contains("trusted.berth")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn unprivileged_skips_devices_and_ownership_with_a_warning() {
    let l = Layer::default()
        .node("null", tar::EntryType::Char, 1, 3)
        .node("fifo", tar::EntryType::Fifo, 0, 0)
        .file(
            "mine",
            M {
                mode: 0o640,
                uid: 1000,
                gid: 1000,
            },
            "x",
        )
        .build();
    let t = tempfile::tempdir().unwrap();
    let r = apply(&l, t.path(), Some(false), false);
    assert!(!t.path().join("null").exists());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("null") && w.contains("device node skipped")),
        "{:?}",
        r.warnings
    );
    assert!(t.path().join("fifo").exists(), "fifos need no privilege");
    let md = std::fs::metadata(t.path().join("mine")).unwrap();
    assert_eq!(
        md.uid(),
        rustix::process::geteuid().as_raw(),
        "no chown when unprivileged"
    );
    assert_eq!(md.permissions().mode() & 0o7777, 0o640);
    assert_eq!(r.bytes_written, 1);
    assert_eq!(r.entries, 3);
}

#[test]
fn read_only_directory_is_still_filled() {
    // A 0555 dir with children: modes are applied at the end, so the unpack
    // (even unprivileged) can still create the children.
    let l = Layer::default()
        .dir(
            "ro",
            M {
                mode: 0o555,
                uid: 0,
                gid: 0,
            },
        )
        .file("ro/f", ROOT, "x")
        .build();
    for privileged in [Some(true), Some(false)] {
        let t = tempfile::tempdir().unwrap();
        apply(&l, t.path(), privileged, false);
        assert!(t.path().join("ro/f").exists());
        assert_eq!(
            std::fs::metadata(t.path().join("ro"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o555
        );
    }
}
