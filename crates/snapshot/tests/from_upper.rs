//! A layer written from an overlay's upper dir (what `commit` stores),
//! applied over the lower dir, gives back exactly the tree the overlay
//! showed: additions, changes, deletions, a replaced directory, hardlinks,
//! symlinks, modes and xattrs.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use berth_snapshot::{ApplyMode, ApplyOptions, apply_layer, diff_id_of, write_upper};
use common::{assert_same, tree};

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

#[test]
fn a_layer_from_the_upper_dir_rebuilds_the_merged_tree() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper, work, merged) = (
        t.path().join("lower"),
        t.path().join("upper"),
        t.path().join("work"),
        t.path().join("merged"),
    );
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    sh(
        &lower,
        "mkdir -p bin etc old/deep var/empty proc
         echo ls > bin/ls; echo root > etc/passwd; echo k > etc/keep
         echo x > old/x; echo d > old/deep/d; echo s > same",
    );
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(std::ffi::CString::new(data).unwrap().as_c_str()),
    )
    .expect("mount overlay");
    sh(
        &merged,
        "mkdir -p newdir/sub; echo new > newdir/sub/f; ln newdir/sub/f newdir/f2
         echo changed >> etc/passwd; chmod 600 etc/keep; rm bin/ls
         rm -rf old; mkdir old; echo y > old/y
         ln -s /etc/passwd lnk; mkfifo pipe; chown 1234:5678 newdir/f2
         mkdir -p proc/leftover",
    );
    rustix::fs::setxattr(
        merged.join("newdir/sub/f"),
        "user.note",
        b"hello",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let expected = tree(&merged);
    assert!(
        expected["newdir/sub/f"].xattrs.contains_key("user.note"),
        "the xattr is part of what is compared"
    );
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::empty()).unwrap();

    let (layer, report) = write_upper(&upper, &["proc"], Vec::new()).unwrap();
    let (again, _) = write_upper(&upper, &["proc"], Vec::new()).unwrap();
    assert_eq!(layer, again, "the same upper dir gives the same bytes");
    assert!(report.whiteouts >= 1, "{report:?}");

    // Names in the layer: whiteouts and the opaque marker in OCI form.
    let names: Vec<String> = tar::Archive::new(layer.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for want in ["bin/.wh.ls", "old/.wh..wh..opq", "old/y", "lnk", "pipe"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("proc")), "{names:?}");

    // Applied over a copy of the lower dir, the layer gives the merged tree
    // (bar what was skipped).
    let target = t.path().join("target");
    let st = Command::new("cp")
        .args(["-a"])
        .arg(&lower)
        .arg(&target)
        .status()
        .unwrap();
    assert!(st.success());
    let diff_id = diff_id_of(layer.as_slice()).unwrap();
    let opts = ApplyOptions {
        mode: ApplyMode::Flatten,
        ..Default::default()
    };
    apply_layer(layer.as_slice(), &target, &diff_id, &opts).unwrap();
    let mut expected = expected;
    expected.remove("proc/leftover");
    let got = tree(&target);
    assert_same(&expected, &got, "merged view vs lower + committed layer");
    assert_eq!(
        fs::metadata(target.join("etc/keep"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}
