//! `--network bridge` for real, as root, network safety first: every berth
//! here runs inside a network and mount namespace the test made (a
//! [`Sandbox`]), so its bridge, veths, addresses and nftables table are
//! the sandbox's, never the machine's; the "outside world" is one more
//! namespace the test made and wired to the sandbox. No packet goes
//! anywhere else.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::sandbox::*;
use common::*;

/// What `nc ADDR PORT` in a new container on the bridge hears (retried
/// for a while: a server may still be starting).
fn heard_from(sb: &Sandbox, r: &Root, addr: &str, port: u16) -> String {
    let script = format!("nc -w 2 {addr} {port} </dev/null");
    let t = Instant::now();
    loop {
        let o = on_bridge(sb, r, &script);
        if !stdout(&o).trim().is_empty() {
            return stdout(&o);
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nothing from {addr}:{port}: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `run --rm --network bridge busybox sh -c script` in the sandbox.
fn on_bridge(sb: &Sandbox, r: &Root, script: &str) -> Output {
    sb.berth(
        r,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            BUSYBOX,
            "sh",
            "-c",
            script,
        ],
    )
}

fn leases(r: &Root) -> Vec<String> {
    std::fs::read_dir(r.path().join("networks/bridge/leases"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bridge_gives_a_container_an_address_route_and_name_and_takes_them_back() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let out = sb.ok(
        &r,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--hostname",
            "box",
            BUSYBOX,
            "sh",
            "-c",
            "ip -4 -o addr show eth0; ip route; grep box /etc/hosts",
        ],
    );
    assert!(out.contains("inet 172.17.0.2/16"), "{out}");
    assert!(out.contains("default via 172.17.0.1 dev eth0"), "{out}");
    assert!(out.contains("172.17.0.2\tbox"), "{out}");
    // The bridge is the gateway; berth's table masquerades the subnet.
    let br = sb.sh("ip -4 -o addr show berth0");
    assert!(br.contains("172.17.0.1/16"), "{br}");
    let nat = sb.sh("nft list set ip berth nat");
    assert!(nat.contains("elements = { 172.17.0.0/16 }"), "{nat}");
    let nft = sb.sh("nft list chain ip berth postrouting");
    assert!(
        nft.contains("ip saddr @nat oifname != @bridges masquerade"),
        "{nft}"
    );
    assert!(leases(&r).is_empty(), "a --rm run left its lease");
    sb.no_veths_left();

    // A server: reached from the host (the sandbox) and from a container.
    let id = sb.ok(
        &r,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "bridge",
            BUSYBOX,
            "sh",
            "-c",
            "while true; do echo pong | nc -l -p 8000; done",
        ],
    );
    let id = id.trim();
    let ip = sb.ok(
        &r,
        &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "srv"],
    );
    let ip = ip.trim();
    assert_eq!(ip, "172.17.0.2", "the lowest free address again");
    let gw = sb.ok(
        &r,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Gateway}} {{.HostConfig.NetworkMode}}",
            "srv",
        ],
    );
    assert_eq!(gw.trim(), "172.17.0.1 bridge");
    // From the host (the sandbox), once the server listens.
    assert_eq!(nc_from(&sb.pid(), ip, "8000").trim(), "pong");
    // From another container.
    assert_eq!(heard_from(&sb, &r, ip, 8000).trim(), "pong");
    // The server's pair stays (the clients' go with their namespaces).
    let t = Instant::now();
    while sb.veths().len() != 1 {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", sb.veths());
        std::thread::sleep(Duration::from_millis(20));
    }

    // Stopped, it holds nothing; started, it is back; removed, all is gone.
    sb.ok(&r, &["stop", "-t", "1", "srv"]);
    assert!(leases(&r).is_empty());
    sb.no_veths_left();
    let ip = sb.ok(
        &r,
        &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "srv"],
    );
    assert_eq!(ip.trim(), "");
    sb.ok(&r, &["start", "srv"]);
    assert_eq!(leases(&r), ["172.17.0.2"]);
    sb.ok(&r, &["rm", "-f", "srv"]);
    assert!(leases(&r).is_empty());
    sb.no_veths_left();
    let netns = sb.sh(&format!("ls /run/berth/netns/ | grep -c {id} || true"));
    assert_eq!(netns.trim(), "0", "the namespace's file is gone");
}

#[test]
fn outbound_traffic_is_masqueraded_to_an_upstream_the_test_made() {
    let forwarding = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_before = forwarding();
    let r = root_with_busybox();
    let sb = Sandbox::new();
    // The "outside world": one more namespace, wired to the sandbox.
    let mut outside = other_host(&sb);
    let op = outside.id().to_string();
    // It answers each client with the address it came from.
    let mut server = Command::new("nsenter")
        .args([
            "-t",
            &op,
            "--net",
            "--",
            "python3",
            "-c",
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('10.200.0.2', 9000)); s.listen(4)\n\
             while True:\n    c, a = s.accept(); c.sendall((a[0] + '\\n').encode()); c.close()\n",
        ])
        .spawn()
        .unwrap();
    let seen = heard_from(&sb, &r, "10.200.0.2", 9000);
    let _ = server.kill();
    let _ = server.wait();
    let _ = outside.kill();
    let _ = outside.wait();
    assert_eq!(
        seen.trim(),
        "10.200.0.1",
        "the container's address is masqueraded"
    );
    // Forwarding is on in the sandbox; the machine's own setting, bridge
    // and tables were never touched.
    let inside = sb.sh("cat /proc/sys/net/ipv4/ip_forward");
    assert_eq!(inside.trim(), "1");
    assert_eq!(forwarding(), host_before);
    assert!(!std::path::Path::new("/sys/class/net/berth0").exists());
}

#[test]
fn twenty_containers_at_once_get_twenty_addresses_and_leave_nothing() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let addrs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    let o = on_bridge(
                        &sb,
                        &r,
                        "ip -4 -o addr show eth0 | awk '{print $4}'; sleep 1",
                    );
                    assert_eq!(code(&o), 0, "{}", stderr(&o));
                    stdout(&o).trim().to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut uniq = addrs.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 20, "{addrs:?}");
    assert!(
        uniq.iter()
            .all(|a| a.starts_with("172.17.0.") && a.ends_with("/16")),
        "{uniq:?}"
    );
    assert!(leases(&r).is_empty(), "{:?}", leases(&r));
    sb.no_veths_left();
    assert!(r.container_ids().is_empty());
}

#[test]
fn an_unknown_network_is_refused_before_anything_is_made() {
    let r = root_with_busybox();
    let o = r
        .berth()
        .args(["run", "--rm", "--network", "nope", BUSYBOX, "true"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("network nope not found"),
        "{}",
        stderr(&o)
    );
    assert!(r.container_ids().is_empty());
}

#[test]
fn dns_flags_and_add_host_write_the_containers_files() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let out = sb.ok(
        &r,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "a.example",
            "--dns-option",
            "ndots:3",
            "--add-host",
            "db:10.1.1.1",
            "--add-host",
            "gw=host-gateway",
            BUSYBOX,
            "sh",
            "-c",
            "cat /etc/resolv.conf; tail -3 /etc/hosts",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "nameserver 192.0.2.53",
            "search a.example",
            "options ndots:3"
        ],
        "{out}"
    );
    assert!(
        lines[3].starts_with("172.17.0.2\t"),
        "the container's own name: {out}"
    );
    assert_eq!(lines[4..], ["10.1.1.1\tdb", "172.17.0.1\tgw"], "{out}");
    let o = sb.berth(
        &r,
        &["run", "--rm", "--dns", "dns.example", BUSYBOX, "true"],
    );
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("dns.example is not an ip address"),
        "{}",
        stderr(&o)
    );
    assert!(r.container_ids().is_empty());
}

#[test]
fn published_ports_reach_the_container_from_other_hosts_the_host_and_containers() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let mut other = other_host(&sb);
    let server = "while true; do echo pong | nc -l -p 80; done";
    sb.ok(
        &r,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "bridge",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1::80",
            BUSYBOX,
            "sh",
            "-c",
            server,
        ],
    );
    // Where they went: ps, port, inspect.
    let ps = sb.ok(&r, &["ps", "--format", "{{.Ports}}"]);
    let random: u16 = ps
        .trim()
        .strip_prefix("0.0.0.0:8080->80/tcp, 127.0.0.1:")
        .and_then(|s| s.strip_suffix("->80/tcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{ps}"));
    let port = sb.ok(&r, &["port", "web"]);
    assert_eq!(
        port,
        format!("80/tcp -> 0.0.0.0:8080\n80/tcp -> 127.0.0.1:{random}\n")
    );
    let o = sb.berth(&r, &["port", "web", "81"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("No public port '81/tcp' published for web"),
        "{}",
        stderr(&o)
    );
    let ports = sb.ok(
        &r,
        &["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"],
    );
    let v: serde_json::Value = serde_json::from_str(&ports).unwrap();
    assert_eq!(v["80/tcp"][0]["HostPort"], "8080", "{v}");

    // From another host, from the host itself (loopback too), from a container.
    let op = other.id().to_string();
    assert_eq!(nc_from(&op, "10.200.0.1", "8080").trim(), "pong");
    assert_eq!(nc_from(&sb.pid(), "127.0.0.1", "8080").trim(), "pong");
    assert_eq!(
        nc_from(&sb.pid(), "127.0.0.1", &random.to_string()).trim(),
        "pong"
    );
    assert_eq!(heard_from(&sb, &r, "172.17.0.1", 8080).trim(), "pong");

    // A port another container has, or a host process holds: Docker's error.
    let o = sb.berth(
        &r,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "-p",
            "8080:80",
            BUSYBOX,
            "true",
        ],
    );
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("Bind for 0.0.0.0:8080 failed: port is already allocated"),
        "{}",
        stderr(&o)
    );
    let mut holder = Command::new("nsenter")
        .args([
            "-t",
            &sb.pid(),
            "--net",
            "--",
            "busybox",
            "nc",
            "-l",
            "-p",
            "9090",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let o = sb.berth(
        &r,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "-p",
            "9090:80",
            BUSYBOX,
            "true",
        ],
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("Bind for 0.0.0.0:9090 failed"),
        "{}",
        stderr(&o)
    );
    let o = sb.berth(&r, &["run", "--rm", "-p", "80", BUSYBOX, "true"]);
    assert_eq!(code(&o), 125, "-p without a network");

    // Removed, its entries are gone from the maps.
    sb.ok(&r, &["rm", "-f", "web"]);
    for map in ["tcp-ports", "tcp-addr-ports"] {
        let maps = sb.sh(&format!("nft list map ip berth {map}"));
        assert!(!maps.contains("elements"), "{maps}");
    }
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn network_container_name_joins_another_containers_namespace() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    // One on the bridge, one with loopback only: each serves on 127.0.0.1 too.
    for (name, net, word) in [("onbr", "bridge", "br-pong"), ("lone", "none", "lo-pong")] {
        let server = format!("while true; do echo {word} | nc -l -p 80; done");
        sb.ok(
            &r,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                net,
                BUSYBOX,
                "sh",
                "-c",
                &server,
            ],
        );
    }
    let join = |name: &str, script: &str| {
        let t = Instant::now();
        loop {
            let net = format!("container:{name}");
            let o = sb.berth(
                &r,
                &[
                    "run",
                    "--rm",
                    "--network",
                    &net,
                    BUSYBOX,
                    "sh",
                    "-c",
                    script,
                ],
            );
            if code(&o) == 0 && stdout(&o).contains("pong") {
                return stdout(&o);
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{name}: {}",
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let out = join(
        "onbr",
        "ip -4 -o addr show eth0; nc -w 2 127.0.0.1 80 </dev/null",
    );
    assert!(
        out.contains("inet 172.17.0.2/16") && out.contains("br-pong"),
        "{out}"
    );
    let out = join("lone", "nc -w 2 127.0.0.1 80 </dev/null");
    assert_eq!(out.trim(), "lo-pong");
    // Docker's refusals.
    for (args, says) in [
        (
            vec!["--network", "container:nope"],
            "No such container: nope",
        ),
        (
            vec!["--network", "container:onbr", "-p", "80"],
            "conflicting options: port publishing",
        ),
        (
            vec!["--network", "container:onbr", "--hostname", "h"],
            "conflicting options: hostname",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.extend([BUSYBOX, "true"]);
        let o = sb.berth(&r, &a);
        assert_eq!(code(&o), 125, "{a:?}");
        assert!(stderr(&o).contains(says), "{a:?}: {}", stderr(&o));
    }
    sb.ok(&r, &["stop", "-t", "0", "lone"]);
    let o = sb.berth(
        &r,
        &[
            "run",
            "--rm",
            "--network",
            "container:lone",
            BUSYBOX,
            "true",
        ],
    );
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("non running container: lone"),
        "{}",
        stderr(&o)
    );
    sb.ok(&r, &["rm", "-f", "onbr", "lone"]);
    assert!(r.container_ids().is_empty());
}

#[test]
fn a_killed_berth_leaves_nothing_of_its_network_that_the_next_command_keeps() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let mut child = sb.doomed(
        &r,
        &[
            "run",
            "--name",
            "doomed",
            "--network",
            "bridge",
            "-p",
            "8080:80",
            BUSYBOX,
            "sh",
            "-c",
            "echo ready; exec sleep 600",
        ],
    );
    assert_eq!(leases(&r).len(), 1);
    let maps = sb.sh("nft list map ip berth tcp-ports");
    assert!(maps.contains("8080 : 172.17.0.2 . 80"), "{maps}");
    // SIGKILL: berth gets no chance to disconnect anything.
    child.kill().unwrap();
    child.wait().unwrap();
    // The next command finds the dead run and takes its network away.
    let t = Instant::now();
    loop {
        let ps = sb.ok(&r, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
        if ps.trim() == "doomed exited" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{ps}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(leases(&r).is_empty(), "{:?}", leases(&r));
    let maps = sb.sh("nft list map ip berth tcp-ports");
    assert!(!maps.contains("elements"), "{maps}");
    let id = sb.ok(&r, &["ps", "-aq", "--no-trunc"]);
    assert!(
        !std::path::Path::new("/run/berth/netns")
            .join(id.trim())
            .exists(),
        "its namespace's file is gone"
    );
    sb.no_veths_left();
    // And its port is free for the next container.
    sb.ok(
        &r,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "-p",
            "8080:80",
            BUSYBOX,
            "true",
        ],
    );
    sb.ok(&r, &["rm", "doomed"]);
}
