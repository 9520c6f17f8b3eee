//! The image root the tests build specs in: a passwd and group of a few
//! users. Also compiled into the crate's unit tests (lib.rs), so both
//! share one fixture.

/// An image root with a passwd and group of a few users.
pub fn image_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    std::fs::write(
        t.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("etc/group"),
        "root:x:0:\nstaff:x:50:app,daemon\napp:x:1000:\nwheel:x:10:app\n",
    )
    .unwrap();
    t
}
