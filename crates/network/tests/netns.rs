//! Network namespaces, a bridge and veth pairs for real, as root, each
//! test run again inside a network and mount namespace of its own (made
//! by unshare(1)): the "host" the code sees is the test's, so nothing here
//! touches the machine's network, and every packet stays in namespaces the
//! test made.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use berth_network::{NetNs, Netlink};

const INSIDE: &str = "BERTH_NETWORK_TEST_INSIDE";

/// Runs test `name` again in a network and mount namespace of its own;
/// true in that copy, which then runs the test's body.
fn isolated(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the test did not run: {text}");
    false
}

/// Sets up link `name` of the current namespace's with `addr/24`.
fn up_with(nl: &mut Netlink, name: &str, addr: Ipv4Addr) {
    let i = nl.link_index(name).unwrap().unwrap();
    nl.add_address(i, addr, 24).unwrap();
    nl.set_up(i, None).unwrap();
}

/// A container-like namespace at `path` joined to `bridge` as `addr`.
fn container(path: &Path, host_veth: &str, bridge: u32, addr: Ipv4Addr) -> NetNs {
    let ns = NetNs::create(path).unwrap();
    let mut host = Netlink::open().unwrap();
    host.add_veth(host_veth, "eth0", ns.fd(), None).unwrap();
    let i = host.link_index(host_veth).unwrap().unwrap();
    host.set_up(i, Some(bridge)).unwrap();
    ns.run(|| {
        let mut nl = Netlink::open()?;
        let lo = nl.link_index("lo")?.unwrap();
        nl.set_up(lo, None)?;
        up_with(&mut nl, "eth0", addr);
        nl.add_default_route(Ipv4Addr::new(10, 77, 0, 1))?;
        Ok(())
    })
    .unwrap();
    ns
}

#[test]
fn a_namespace_on_a_file_has_only_loopback_and_goes_with_remove() {
    if !isolated("a_namespace_on_a_file_has_only_loopback_and_goes_with_remove") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("ns");
    let ns = NetNs::create(&path).unwrap();
    let own = std::fs::metadata("/proc/self/ns/net").unwrap();
    let kept = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_ne!(own.ino(), kept.ino(), "a namespace of its own");
    let names = ns.run(|| Netlink::open()?.link_names()).unwrap();
    assert_eq!(names, ["lo"]);
    // Back where it was: the test's namespace, not the new one.
    assert_eq!(
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
        own.ino()
    );
    // A second namespace on the same file is refused, nothing changed.
    let e = NetNs::create(&path).err().unwrap().to_string();
    assert!(
        e.contains("create network namespace") && e.contains("exists"),
        "{e}"
    );
    drop(ns);
    NetNs::remove(&path).unwrap();
    assert!(!path.exists());
    NetNs::remove(&path).unwrap();
}

#[test]
fn a_bridge_and_veth_pairs_carry_tcp_between_namespaces_and_go_with_them() {
    if !isolated("a_bridge_and_veth_pairs_carry_tcp_between_namespaces_and_go_with_them") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut host = Netlink::open().unwrap();
    host.add_bridge("berth-t0").unwrap();
    up_with(&mut host, "berth-t0", Ipv4Addr::new(10, 77, 0, 1));
    let bridge = host.link_index("berth-t0").unwrap().unwrap();
    let a = container(
        &d.path().join("a"),
        "veth-ta",
        bridge,
        Ipv4Addr::new(10, 77, 0, 2),
    );
    let b = container(
        &d.path().join("b"),
        "veth-tb",
        bridge,
        Ipv4Addr::new(10, 77, 0, 3),
    );
    // The container's side of each pair is only in its namespace.
    let names = host.link_names().unwrap();
    assert!(names.iter().all(|n| n != "eth0"), "{names:?}");

    // A server in a, clients in b and on the "host" (the bridge).
    let a_addr = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 7070);
    let listener = a.run(|| Ok(TcpListener::bind(a_addr).unwrap())).unwrap();
    let server = std::thread::spawn(move || {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (mut s, peer) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
            peers.push(peer.ip());
        }
        peers
    });
    let echo = |mut s: TcpStream| {
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    };
    echo(b.run(|| Ok(TcpStream::connect(a_addr).unwrap())).unwrap());
    echo(TcpStream::connect(a_addr).unwrap());
    let peers = server.join().unwrap();
    assert_eq!(
        peers,
        [Ipv4Addr::new(10, 77, 0, 3), Ipv4Addr::new(10, 77, 0, 1)].map(std::net::IpAddr::V4),
        "source addresses kept"
    );

    // Errors name what failed.
    let e = host
        .add_veth("veth-ta", "eth1", a.fd(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("add veth pair veth-ta and eth1:") && e.contains("exists"),
        "{e}"
    );

    // Removing a's host side takes its pair; removing the file, the namespace.
    let ta = host.link_index("veth-ta").unwrap().unwrap();
    host.delete_link(ta).unwrap();
    assert_eq!(host.link_index("veth-ta").unwrap(), None);
    let left = a.run(|| Netlink::open()?.link_names()).unwrap();
    assert_eq!(left, ["lo"]);
    for (ns, name) in [(a, "a"), (b, "b")] {
        drop(ns);
        NetNs::remove(&d.path().join(name)).unwrap();
    }
    // b's pair goes with its namespace (which the kernel cleans up a
    // moment later, in the background).
    let t = std::time::Instant::now();
    while host.link_index("veth-tb").unwrap().is_some() {
        assert!(t.elapsed().as_secs() < 10, "veth-tb outlived its namespace");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
