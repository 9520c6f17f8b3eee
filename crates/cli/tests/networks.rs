//! User-defined networks for real, as root: `network create/ls/inspect/
//! rm/prune/connect/disconnect`, `--network NAME`, `--ip`, `--internal`,
//! isolation between networks and names by DNS. Network safety as in
//! network.rs: every berth runs inside a [`Sandbox`] the test made, and
//! "the outside world" is one more namespace wired to it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::sandbox::*;
use common::*;

/// `run -d --name NAME --network NET [extra] busybox` serving `word` on
/// TCP port 80.
fn server(sb: &Sandbox, r: &Root, name: &str, net: &str, extra: &[&str], word: &str) {
    let script = format!("while true; do echo {word} | nc -l -p 80; done");
    let mut args = vec!["run", "-d", "--name", name, "--network", net];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX, "sh", "-c", &script]);
    sb.ok(r, &args);
}

/// `run --rm --network NET busybox sh -c script` in the sandbox: its stdout
/// and exit code.
fn client(sb: &Sandbox, r: &Root, net: &str, script: &str) -> (String, i32) {
    let o = sb.berth(
        r,
        &["run", "--rm", "--network", net, BUSYBOX, "sh", "-c", script],
    );
    (stdout(&o), code(&o))
}

/// What `nc -w 1 ADDR 80` hears from a container on NET (one try: the
/// servers here answer at once once running, and a refusal is the point
/// of some calls).
fn hear(sb: &Sandbox, r: &Root, net: &str, addr: &str) -> String {
    client(sb, r, net, &format!("nc -w 1 {addr} 80 </dev/null")).0
}

/// Container NAME's address on network NET, from inspect.
fn address(sb: &Sandbox, r: &Root, name: &str, net: &str) -> String {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
    sb.ok(r, &["inspect", "-f", &f, name]).trim().to_string()
}

/// Waits until `nc ADDR 80` from NET hears `word` (a server may be starting).
fn wait_for(sb: &Sandbox, r: &Root, net: &str, addr: &str, word: &str) {
    let t = Instant::now();
    loop {
        let o = sb.berth(
            r,
            &[
                "run",
                "--rm",
                "--network",
                net,
                BUSYBOX,
                "sh",
                "-c",
                &format!("nc -w 1 {addr} 80 </dev/null"),
            ],
        );
        if stdout(&o).trim() == word {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{addr} on {net} never said {word}: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn network_create_ls_inspect_rm_prune_as_docker_has_them() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let id = sb.ok(&r, &["network", "create", "--label", "team=a", "front"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    sb.ok(
        &r,
        &[
            "network",
            "create",
            "--subnet",
            "10.88.0.0/24",
            "--gateway",
            "10.88.0.254",
            "--internal",
            "back",
        ],
    );
    // Docker's pools: the default bridge has 172.17/16, so 172.18/16 next.
    let f = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Internal}} {{.Labels.team}}";
    assert_eq!(
        sb.ok(&r, &["network", "inspect", "-f", f, "front"]).trim(),
        "172.18.0.0/16 172.18.0.1 false a"
    );
    assert_eq!(
        sb.ok(&r, &["network", "inspect", "-f", f, "back"]).trim(),
        "10.88.0.0/24 10.88.0.254 true <no value>"
    );
    let ls = sb.ok(&r, &["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(
        ls,
        "bridge bridge\nhost host\nnone null\nback bridge\nfront bridge\n"
    );
    let named = sb.ok(
        &r,
        &[
            "network",
            "ls",
            "-f",
            "label=team=a",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(named, "front\n");
    // Docker's errors.
    for (args, msg) in [
        (
            vec!["network", "create", "front"],
            "network with name front already exists",
        ),
        (
            vec!["network", "create", "--subnet", "10.88.0.128/25", "x"],
            "Pool overlaps with other one",
        ),
        (
            vec!["network", "create", "--subnet", "10.1.0.1/24", "x"],
            "not a network address",
        ),
        (vec!["network", "create", "a b"], "invalid network name"),
        (
            vec!["network", "rm", "bridge"],
            "bridge is a pre-defined network and cannot be removed",
        ),
        (vec!["network", "rm", "nope"], "network nope not found"),
    ] {
        let o = sb.berth(&r, &args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
    // A running container keeps its network; prune takes the unused one.
    server(&sb, &r, "web", "front", &[], "hi");
    let o = sb.berth(&r, &["network", "rm", "front"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("has active endpoints"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        sb.ok(&r, &["network", "prune", "-f"]),
        "Deleted Networks:\nback\n"
    );
    let members = sb.ok(
        &r,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
            "front",
        ],
    );
    assert_eq!(members.trim(), "web 172.18.0.2/16");
    sb.ok(&r, &["rm", "-f", "web"]);
    assert_eq!(sb.ok(&r, &["network", "rm", "front"]), "front\n");
    // Its bridge and firewall entries went with it.
    let links = sb.sh("ip -o link show");
    assert!(!links.contains("br-"), "{links}");
    let table = sb.sh("nft list set ip berth bridges");
    assert!(!table.contains("br-"), "{table}");
    sb.no_veths_left();
}

#[test]
fn networks_are_isolated_from_each_other_and_internal_ones_from_the_world() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let mut other = other_host(&sb);
    // The "outside world": a server in the other namespace, routed to.
    let mut world = Command::new("nsenter")
        .args(["-t", &other.id().to_string(), "--net", "--"])
        .args(["busybox", "sh", "-c"])
        .arg("while true; do echo world | busybox nc -l -p 80; done")
        .spawn()
        .unwrap();
    sb.ok(&r, &["network", "create", "red"]);
    sb.ok(&r, &["network", "create", "blue"]);
    sb.ok(
        &r,
        &[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.77.0.0/24",
            "vault",
        ],
    );
    server(&sb, &r, "r1", "red", &[], "red-pong");
    server(
        &sb,
        &r,
        "v1",
        "vault",
        &["--ip", "10.77.0.50"],
        "vault-pong",
    );
    let r1 = address(&sb, &r, "r1", "red");
    assert_eq!(address(&sb, &r, "v1", "vault"), "10.77.0.50");
    wait_for(&sb, &r, "red", &r1, "red-pong");
    wait_for(&sb, &r, "vault", "10.77.0.50", "vault-pong");
    // Not from another network, nor from the default bridge.
    assert_eq!(hear(&sb, &r, "blue", &r1), "");
    assert_eq!(hear(&sb, &r, "bridge", &r1), "");
    assert_eq!(hear(&sb, &r, "red", "10.77.0.50"), "");
    // Out to the world from a network, not from an internal one.
    wait_for(&sb, &r, "red", "10.200.0.2", "world");
    assert_eq!(hear(&sb, &r, "vault", "10.200.0.2"), "");
    // The host (the sandbox) reaches containers on every network.
    assert_eq!(nc_from(&sb.pid(), &r1, "80").trim(), "red-pong");
    // --ip: taken, outside the subnet, or on a network without a subnet
    // of the user's: Docker's errors, nothing left.
    let before = r.container_ids().len();
    for (net, ip, msg) in [
        ("vault", "10.77.0.50", "Address already in use"),
        (
            "vault",
            "10.78.0.5",
            "no configured subnet contains the IP address",
        ),
        (
            "red",
            "172.18.0.9",
            "user specified IP address is supported only",
        ),
    ] {
        let o = sb.berth(
            &r,
            &["run", "--rm", "--network", net, "--ip", ip, BUSYBOX, "true"],
        );
        assert_eq!(code(&o), 125, "{net} {ip}");
        assert!(stderr(&o).contains(msg), "{net} {ip}: {}", stderr(&o));
    }
    assert_eq!(r.container_ids().len(), before);
    sb.ok(&r, &["rm", "-f", "r1", "v1"]);
    let _ = world.kill();
    let _ = world.wait();
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn connect_and_disconnect_move_a_running_container_between_networks() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    sb.ok(&r, &["network", "create", "one"]);
    sb.ok(
        &r,
        &["network", "create", "--subnet", "10.66.0.0/24", "two"],
    );
    server(&sb, &r, "srv", "one", &[], "pong");
    let o = sb.berth(&r, &["network", "connect", "one", "srv"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("already exists in network one"),
        "{}",
        stderr(&o)
    );
    sb.ok(
        &r,
        &[
            "network",
            "connect",
            "--ip",
            "10.66.0.7",
            "--alias",
            "db",
            "two",
            "srv",
        ],
    );
    // At once: a second interface with the address asked for.
    let ifs = sb.ok(&r, &["exec", "srv", "ip", "-o", "-4", "addr", "show"]);
    assert!(
        ifs.contains("eth1") && ifs.contains("10.66.0.7/24"),
        "{ifs}"
    );
    wait_for(&sb, &r, "two", "10.66.0.7", "pong");
    let aliases = sb.ok(
        &r,
        &[
            "inspect",
            "-f",
            "{{json (index .NetworkSettings.Networks \"two\").Aliases}}",
            "srv",
        ],
    );
    assert_eq!(aliases.trim(), "[\"db\"]");
    sb.ok(&r, &["network", "disconnect", "two", "srv"]);
    let ifs = sb.ok(&r, &["exec", "srv", "ip", "-o", "-4", "addr", "show"]);
    assert!(!ifs.contains("10.66.0.7"), "{ifs}");
    assert_eq!(hear(&sb, &r, "two", "10.66.0.7"), "");
    let o = sb.berth(&r, &["network", "disconnect", "two", "srv"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("is not connected to network two"),
        "{}",
        stderr(&o)
    );
    // A stopped container is connected for its next start.
    sb.ok(&r, &["stop", "-t", "0", "srv"]);
    sb.ok(&r, &["network", "connect", "two", "srv"]);
    sb.ok(&r, &["start", "srv"]);
    let ifs = sb.ok(&r, &["exec", "srv", "ip", "-o", "-4", "addr", "show"]);
    assert!(
        ifs.contains("eth0") && ifs.contains("eth1") && ifs.contains("10.66.0."),
        "{ifs}"
    );
    sb.ok(&r, &["rm", "-f", "srv"]);
    sb.ok(&r, &["network", "rm", "one", "two"]);
    sb.no_veths_left();
}

/// berth's own name server as "the world's" resolver at 10.200.0.2:53 in
/// namespace `pid`, answering `outside.test` from a names file in `dir`
/// (it ends when the file is removed). Its resolv.conf is an empty one of
/// its own mount namespace: it forwards nothing anywhere.
fn upstream_resolver(pid: &str, dir: &std::path::Path) {
    let names = dir.join("names");
    std::fs::write(&names, "10.200.0.77 outside.test\n").unwrap();
    std::fs::write(dir.join("resolv.conf"), "").unwrap();
    let exe = env!("CARGO_BIN_EXE_berth");
    let script = format!(
        "mount --bind {d}/resolv.conf /etc/resolv.conf && exec {exe} dns-server {n} {d}/lock 10.200.0.2:53",
        d = dir.display(),
        n = names.display()
    );
    // Its stderr stays open while it serves: not a pipe that output() would
    // wait on.
    let o = Command::new("nsenter")
        .args([
            "-t", pid, "--net", "--", "unshare", "--mount", "sh", "-c", &script,
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "ok");
}

#[test]
fn containers_on_a_network_find_each_other_by_name_and_alias_and_the_world_by_its_resolver() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let mut other = other_host(&sb);
    let world = tempfile::tempdir().unwrap();
    upstream_resolver(&other.id().to_string(), world.path());
    // The sandbox's resolver is the world's: what berth's DNS forwards to.
    let conf = world.path().join("sandbox-resolv.conf");
    std::fs::write(&conf, "nameserver 10.200.0.2\n").unwrap();
    sb.sh(&format!("mount --bind {} /etc/resolv.conf", conf.display()));
    sb.ok(&r, &["network", "create", "app"]);
    let sleeper = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"];
    let mut early = vec!["run", "-d", "--name", "early", "--network", "app", BUSYBOX];
    early.extend_from_slice(&sleeper);
    sb.ok(&r, &early);
    // Started after the client: found all the same, by name, alias, short id.
    let mut late = vec![
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "app",
        "--network-alias",
        "cache",
        "--hostname",
        "late-host",
        BUSYBOX,
    ];
    late.extend_from_slice(&sleeper);
    let late_id = sb.ok(&r, &late).trim().to_string();
    let addr = address(&sb, &r, "late", "app");
    let resolv = sb.ok(&r, &["exec", "early", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 172.18.0.1"), "{resolv}");
    for name in ["late", "cache", "LATE", &late_id[..12], "late-host"] {
        let o = sb.berth(&r, &["exec", "early", "nslookup", name]);
        assert_eq!(code(&o), 0, "{name}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(&addr), "{name}: {}", stdout(&o));
    }
    // Other names go to the host's resolver (the world's, here).
    let o = sb.berth(&r, &["exec", "early", "nslookup", "outside.test"]);
    assert!(
        stdout(&o).contains("10.200.0.77"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    // And by name over TCP to it: a ping by name reaches the address.
    let o = sb.berth(
        &r,
        &["exec", "early", "ping", "-c", "1", "-W", "2", "cache"],
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // Renamed, it answers to its new name only.
    sb.ok(&r, &["rename", "late", "later"]);
    let o = sb.berth(&r, &["exec", "early", "nslookup", "later"]);
    assert!(stdout(&o).contains(&addr), "{}", stdout(&o));
    let o = sb.berth(&r, &["exec", "early", "nslookup", "late"]);
    assert!(!stdout(&o).contains(&addr), "{}", stdout(&o));
    // Removed, it stops resolving; a container on another network never did.
    sb.ok(&r, &["rm", "-f", "later"]);
    let o = sb.berth(&r, &["exec", "early", "nslookup", "later"]);
    assert!(!stdout(&o).contains(&addr), "{}", stdout(&o));
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    sb.ok(&r, &["network", "create", "elsewhere"]);
    let (out, _) = client(&sb, &r, "elsewhere", "nslookup early");
    assert!(!out.contains("172.18."), "{out}");
    // Nor by asking the other network's name server itself.
    let early_addr = address(&sb, &r, "early", "app");
    let (out, _) = client(&sb, &r, "elsewhere", "nslookup early 172.18.0.1");
    assert!(!out.contains(&early_addr), "{out}");
    // The default bridge has no names (Docker's): the host's resolver.
    let (out, _) = client(&sb, &r, "bridge", "cat /etc/resolv.conf");
    assert_eq!(out, "nameserver 10.200.0.2\n");
    sb.ok(&r, &["rm", "-f", "early"]);
    // The last container gone, so is the network's server.
    let t = Instant::now();
    while sb.sh("ss -lun").contains("172.18.0.1:53") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the DNS server stayed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(world.path().join("names")).unwrap();
    let _ = other.kill();
    let _ = other.wait();
}

/// Asks the name server at ADDR:5353 for `udp.test` over UDP from the
/// network namespace of process `pid`: the address in its answer, or
/// nothing when none came within a second.
fn ask_udp(pid: &str, addr: &str) -> String {
    let script = r"
import socket, struct, sys
q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b'\x03udp\x04test\x00' + struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(q, (sys.argv[1], 5353))
try:
    d = s.recv(512)
    print('.'.join(map(str, d[-4:])))
except socket.timeout:
    pass
";
    let o = Command::new("nsenter")
        .args(["-t", pid, "--net", "--", "python3", "-c", script, addr])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn a_published_udp_port_answers_the_host_and_other_hosts() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let mut other = other_host(&sb);
    sb.ok(&r, &["network", "create", "udpnet"]);
    // A UDP server the image lacks: berth's own name server, bind-mounted
    // in, answering udp.test.
    let exe = format!("{}:/berth:ro", env!("CARGO_BIN_EXE_berth"));
    let serve = "echo 10.9.9.9 udp.test > /tmp/names && \
                 /berth dns-server /tmp/names /tmp/lock 0.0.0.0:53 && exec sleep 600";
    sb.ok(
        &r,
        &[
            "run",
            "-d",
            "--name",
            "udp",
            "--network",
            "udpnet",
            "-v",
            &exe,
            "-p",
            "5353:53/udp",
            "-p",
            "127.0.0.1::53/udp",
            BUSYBOX,
            "sh",
            "-c",
            serve,
        ],
    );
    let ports = sb.ok(&r, &["port", "udp"]);
    assert!(
        ports.starts_with("53/udp -> 0.0.0.0:5353\n53/udp -> 127.0.0.1:"),
        "{ports}"
    );
    let t = Instant::now();
    // Retried: the server may not be up yet.
    while ask_udp(&sb.pid(), "127.0.0.1") != "10.9.9.9" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no answer over UDP from the host"
        );
    }
    assert_eq!(ask_udp(&other.id().to_string(), "10.200.0.1"), "10.9.9.9");
    sb.ok(&r, &["rm", "-f", "udp"]);
    let udp = sb.sh("nft list map ip berth udp-ports");
    assert!(!udp.contains("elements"), "{udp}");
    assert_eq!(ask_udp(&other.id().to_string(), "10.200.0.1"), "");
    let _ = other.kill();
    let _ = other.wait();
}

/// Debian's dockerd with Docker's defaults (its bridge, iptables rules
/// and FORWARD policy drop), in the sandbox: its sysfs made the sandbox's
/// own (dockerd reads its bridge there), the cgroup mounts kept. Returns
/// its process and directory once it is up.
fn dockerd_in(sb: &Sandbox) -> (std::process::Child, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("dockerd-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let d = dir.path().display();
    sb.sh(&format!(
        "mkdir -p {d}/cg && mount --rbind /sys/fs/cgroup {d}/cg && \
         mount -t sysfs sysfs /sys && mount --move {d}/cg /sys/fs/cgroup"
    ));
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new("nsenter")
        .args([
            "-t",
            &sb.pid(),
            "--net",
            "--mount",
            "--",
            "/usr/sbin/dockerd",
        ])
        .arg(format!("--data-root={d}/data"))
        .arg(format!("--exec-root={d}/exec"))
        .arg(format!("--pidfile={d}/pid"))
        .arg(format!("-H=unix://{d}/sock"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let t = Instant::now();
    // Up once it answers on its socket and has made all its rules, its
    // DOCKER-USER chain last (in the background, after it answers): berth
    // lets a bridge through there when it makes the bridge.
    let ping = format!("curl -s --max-time 2 --unix-socket {d}/sock http://docker/_ping || true");
    let made = |rules: &str| {
        [
            "-N DOCKER-USER",
            "-A FORWARD -j DOCKER-USER",
            "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
        ]
        .iter()
        .all(|r| rules.contains(r))
    };
    while sb.sh(&ping) != "OK" || !made(&sb.sh("iptables -w -S 2>/dev/null || true")) {
        let text = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "dockerd did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (child, dir)
}

#[test]
fn bridges_work_beside_dockers_forward_drop_and_leave_its_rules_alone() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    let mut other = other_host(&sb);
    let mut world = Command::new("nsenter")
        .args(["-t", &other.id().to_string(), "--net", "--"])
        .args(["busybox", "sh", "-c"])
        .arg("while true; do echo world | busybox nc -l -p 80; done")
        .spawn()
        .unwrap();
    let (mut dockerd, _dir) = dockerd_in(&sb);
    let forward = sb.sh("iptables -w -S FORWARD");
    assert!(forward.contains("-P FORWARD DROP"), "{forward}");
    sb.ok(&r, &["network", "create", "beside"]);
    // Out through Docker's drop, on the default bridge and a network of its own.
    wait_for(&sb, &r, "bridge", "10.200.0.2", "world");
    wait_for(&sb, &r, "beside", "10.200.0.2", "world");
    let user = sb.sh("iptables -w -S DOCKER-USER");
    assert!(
        user.contains("-A DOCKER-USER -i berth0 -j ACCEPT"),
        "{user}"
    );
    // docker0 has Docker's 172.17.0.0/16: berth's default bridge took the
    // next subnet, as Docker would have.
    let f = "{{range .IPAM.Config}}{{.Subnet}}{{end}}";
    let subnet = sb.ok(&r, &["network", "inspect", "-f", f, "bridge"]);
    assert_eq!(subnet.trim(), "172.18.0.0/16");
    // Docker's own rules are as Docker made them (Docker itself rewrites
    // the chain for a while after it starts: compared rule by rule).
    let after = sb.sh("iptables -w -S FORWARD");
    for rule in [
        "-P FORWARD DROP",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -o docker0 -j DOCKER",
        "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
    ] {
        assert!(after.contains(rule), "{rule}: {after}");
    }
    assert!(!after.contains("berth"), "{after}");
    // A removed network takes its rules out of DOCKER-USER.
    sb.ok(&r, &["network", "rm", "beside"]);
    let user = sb.sh("iptables -w -S DOCKER-USER");
    assert!(!user.contains("br-"), "{user}");
    stop_gently(&mut dockerd);
    let _ = world.kill();
    let _ = world.wait();
    let _ = other.kill();
    let _ = other.wait();
}

/// SIGTERM, then a wait for the process to end (dockerd stops its
/// containerd first).
fn stop_gently(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_berth_leaves_no_name_lease_or_interface_on_a_user_network() {
    let r = root_with_busybox();
    let sb = Sandbox::new();
    sb.ok(&r, &["network", "create", "frail"]);
    let mut child = sb.doomed(
        &r,
        &[
            "run",
            "--name",
            "doomed",
            "--network",
            "frail",
            BUSYBOX,
            "sh",
            "-c",
            "echo ready; exec sleep 600",
        ],
    );
    // Another container on the network resolves it while it runs.
    let (out, _) = client(&sb, &r, "frail", "nslookup doomed");
    assert!(out.contains("172.18.0.2"), "{out}");
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
    let leases = r.path().join("networks/frail/leases");
    let left: Vec<_> = std::fs::read_dir(&leases).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let (out, code) = client(&sb, &r, "frail", "nslookup doomed");
    assert!(!out.contains("172.18.0.2") && code != 0, "{out}");
    sb.no_veths_left();
    sb.ok(&r, &["rm", "doomed"]);
    sb.ok(&r, &["network", "rm", "frail"]);
}
