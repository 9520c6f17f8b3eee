//! `--userns remap`: the container's root is an unprivileged host id from
//! /etc/subuid, the image's files keep their owners through id-mapped
//! layers, and the remapped root gets nothing a host root would.
//! Needs the user scripts/test-user.sh creates (berthtest).

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

fn remap_user() -> (String, u32) {
    let user = std::env::var("BERTH_REMAP_USER").unwrap_or_else(|_| "berthtest".into());
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    let start = subuid
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| f[1].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no /etc/subuid range for {user}: run scripts/test-user.sh"));
    (user, start)
}

#[test]
fn remapped_root_is_root_inside_and_a_subordinate_id_outside() {
    if rootless() {
        return; // a root-only flag
    }
    let r = Root::new();
    let (user, start) = remap_user();
    let flag = format!("remap:{user}");
    let o = r.run(&[
        "--name",
        "remapped",
        "-q",
        "--userns",
        &flag,
        "127.0.0.1:5500/layers:latest",
        "sh",
        "-c",
        "id -u; tr -s ' ' < /proc/self/uid_map; stat -c '%u:%g' /data/owned /etc/passwd; echo x > /new",
    ]);
    assert_eq!(
        stdout(&o),
        format!("0\n 0 {start} 65536\n1234:5678\n0:0\n"),
        "{}",
        stderr(&o)
    );
    // What the container's root wrote belongs to the subordinate id on the host.
    let id = r.container_ids().concat();
    let written = r.path().join("containers").join(&id).join("upper/new");
    let meta = std::fs::metadata(&written).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (start, start));
}

#[test]
fn remapped_root_cannot_read_a_host_roots_secret() {
    if rootless() {
        return;
    }
    let r = Root::new();
    let (user, _) = remap_user();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(dir.path().join("secret"), "host root only\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let v = format!("{}:/host:ro", dir.path().display());
    let flag = format!("remap:{user}");
    let o = r.run(&[
        "--rm",
        "-q",
        "--userns",
        &flag,
        "-v",
        &v,
        BUSYBOX,
        "cat",
        "/host/secret",
    ]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    // Twin: the same container without remapping is the host's root.
    let o = r.run(&["--rm", "-q", "-v", &v, BUSYBOX, "cat", "/host/secret"]);
    assert_eq!(stdout(&o), "host root only\n", "{}", stderr(&o));
}

#[test]
fn bad_userns_values_are_refused() {
    let r = Root::new();
    for (v, want) in [
        (
            "remap:no-such-user-here",
            "no range for \"no-such-user-here\"",
        ),
        ("private", "invalid --userns"),
    ] {
        let o = r.run(&["--rm", "-q", "--userns", v, BUSYBOX, "true"]);
        assert_eq!(code(&o), 125, "{v}");
        assert!(
            stderr(&o).contains(want) && stderr(&o).lines().count() == 1,
            "{v}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_remapped_container_gets_the_device_it_was_given() {
    if rootless() {
        return;
    }
    // In the remapped user namespace no node can be made: the host's
    // /dev/zero is bound at /dev/z.
    let r = Root::new();
    let flag = format!("remap:{}", remap_user().0);
    let o = r.run_with_zero_as_dev_z(&["--userns", &flag]);
    assert_eq!(stdout(&o), "1,5\n4\n", "{}", stderr(&o));
}
