//! The whole spec for an image: Docker's defaults, and a working directory
//! made inside the rootfs whatever its symlinks say.

mod common;

use std::collections::HashMap;
use std::path::Path;

use berth_spec::{RunOptions, build_spec};
use common::image_root;
use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
use oci_spec::runtime::{Capability, LinuxDeviceType, LinuxNamespaceType, MountBuilder};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn opts() -> RunOptions {
    RunOptions {
        hostname: "abc123".into(),
        ..Default::default()
    }
}

#[test]
fn spec_has_docker_defaults() {
    let t = image_root();
    let cfg = ConfigBuilder::default()
        .cmd(s(&["sh"]))
        .env(s(&["FOO=bar"]))
        .working_dir("/srv/app")
        .user("app")
        .stop_signal("SIGQUIT")
        .exposed_ports(s(&["80/tcp", "443/tcp"]))
        .volumes(s(&["/data"]))
        .labels(HashMap::from([("k".to_string(), "v".to_string())]))
        .build()
        .unwrap();
    let img = ImageConfigurationBuilder::default()
        .config(cfg)
        .build()
        .unwrap();
    let extra = MountBuilder::default()
        .destination("/dev/shm")
        .typ("tmpfs")
        .source("shm")
        .build()
        .unwrap();
    let o = RunOptions {
        rootfs: t.path().into(),
        mounts: vec![extra],
        readonly_rootfs: true,
        ..opts()
    };
    let b = build_spec(&img, &o).unwrap();
    let p = b.spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &s(&["sh"]));
    assert_eq!(p.cwd(), Path::new("/srv/app"));
    assert!(
        t.path().join("srv/app").is_dir(),
        "workdir created in the rootfs"
    );
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert_eq!(
        p.user().additional_gids().as_ref().unwrap(),
        &vec![1000, 50, 10]
    );
    assert!(p.env().as_ref().unwrap().contains(&"FOO=bar".to_string()));
    let caps = p.capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
    assert!(
        caps.effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetBindService)
    );
    assert!(
        !caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin)
    );
    assert!(caps.ambient().as_ref().unwrap().is_empty());
    assert!(p.rlimits().is_none());
    assert_eq!(b.spec.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(b.spec.hostname().as_deref(), Some("abc123"));
    let linux = b.spec.linux().as_ref().unwrap();
    let ns: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert!(ns.contains(&LinuxNamespaceType::Network) && ns.contains(&LinuxNamespaceType::Cgroup));
    assert_eq!(ns.len(), 6);
    assert!(
        linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string())
    );
    assert!(
        linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string())
    );
    let devs = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert!(
        !devs[0].allow() && devs[0].typ() == Some(LinuxDeviceType::A),
        "deny-all first"
    );
    assert!(
        devs.iter()
            .any(|d| d.allow() && d.major() == Some(1) && d.minor() == Some(3))
    );
    let mounts = b.spec.mounts().as_ref().unwrap();
    let shm: Vec<_> = mounts
        .iter()
        .filter(|m| m.destination() == Path::new("/dev/shm"))
        .collect();
    assert_eq!(
        shm.len(),
        1,
        "an extra mount replaces the default at the same destination"
    );
    assert!(shm[0].options().is_none());
    let dev = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/dev"))
        .unwrap();
    assert!(
        dev.options()
            .as_ref()
            .unwrap()
            .contains(&"size=65536k".to_string())
    );
    assert_eq!(b.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(b.exposed_ports, s(&["443/tcp", "80/tcp"]));
    assert_eq!(b.volumes, s(&["/data"]));
    assert_eq!(b.labels.get("k").map(String::as_str), Some("v"));

    let host = build_spec(
        &img,
        &RunOptions {
            host_network: true,
            ..o.clone()
        },
    )
    .unwrap();
    let ns = host
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap();
    assert!(ns.iter().all(|n| n.typ() != LinuxNamespaceType::Network));
    let e = build_spec(
        &img,
        &RunOptions {
            workdir: Some("rel".into()),
            ..o.clone()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("absolute"), "{e}");
    // Spec serialises to config.json.
    serde_json::to_string(&b.spec).unwrap();
}

#[test]
fn workdir_through_a_symlink_stays_in_the_rootfs() {
    let t = image_root();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t.path().join("w")).unwrap();
    std::fs::create_dir_all(t.path().join(outside.path().strip_prefix("/").unwrap())).unwrap();
    let img = ImageConfigurationBuilder::default()
        .config(ConfigBuilder::default().cmd(s(&["sh"])).build().unwrap())
        .build()
        .unwrap();
    let o = RunOptions {
        rootfs: t.path().into(),
        workdir: Some("/w/made".into()),
        ..opts()
    };
    build_spec(&img, &o).unwrap();
    assert!(!outside.path().join("made").exists());
    assert!(
        t.path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("made")
            .is_dir()
    );
}

#[test]
fn workdir_through_a_dangling_symlink_is_made_where_it_points() {
    let t = image_root();
    std::os::unix::fs::symlink("/opt/app", t.path().join("app")).unwrap();
    let img = ImageConfigurationBuilder::default()
        .config(
            ConfigBuilder::default()
                .cmd(s(&["sh"]))
                .working_dir("/app/sub")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let o = RunOptions {
        rootfs: t.path().into(),
        ..opts()
    };
    let b = build_spec(&img, &o).unwrap();
    assert_eq!(
        b.spec.process().as_ref().unwrap().cwd(),
        Path::new("/app/sub")
    );
    assert!(t.path().join("opt/app/sub").is_dir());
    assert!(!Path::new("/opt/app/sub").exists());
}

#[test]
fn workdir_is_cleaned_like_docker() {
    let t = image_root();
    let img = ImageConfigurationBuilder::default()
        .config(
            ConfigBuilder::default()
                .cmd(s(&["sh"]))
                .working_dir("/a/../../b/./c/")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let o = RunOptions {
        rootfs: t.path().into(),
        ..opts()
    };
    let b = build_spec(&img, &o).unwrap();
    assert_eq!(b.spec.process().as_ref().unwrap().cwd(), Path::new("/b/c"));
    assert!(t.path().join("b/c").is_dir());
    let b = build_spec(
        &ImageConfigurationBuilder::default()
            .config(ConfigBuilder::default().cmd(s(&["sh"])).build().unwrap())
            .build()
            .unwrap(),
        &o,
    )
    .unwrap();
    assert_eq!(
        b.spec.process().as_ref().unwrap().cwd(),
        Path::new("/"),
        "default workdir"
    );
}
