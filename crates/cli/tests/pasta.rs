//! Rootless `--network bridge` through pasta, for real, in the rootless
//! pass (`BERTH_TEST_USER`; as root these return at once). Network safety
//! first: the test, as root, makes a network and mount namespace (the
//! "host", where berth and pasta run as the test user through nsenter and
//! setpriv) and an "outside world" namespace wired to it by a veth pair,
//! with a web server and a DNS resolver there; the host's resolv.conf is
//! the test's own, bind-mounted in its mount namespace. No packet goes to
//! an address outside these namespaces, nor to the machine's resolvers.
//!
//! Clients are wget against busybox httpd (a reply of known length): the
//! Debian 12 pasta never passes on the server's FIN once the container
//! has closed its own side first, so `echo x | nc` would hang.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The "host" (network + mount namespace) and the "outside world"
/// (network namespace), each held by a sleeping process, and the servers
/// that run in the outside world.
struct World {
    host: Child,
    outside: Child,
    servers: Vec<Child>,
    files: tempfile::TempDir,
}

/// The outside world's address, on its loopback, routed through its end
/// of the pair (10.99.0.2); the host's end is 10.99.0.1.
const OUTSIDE: &str = "10.99.1.1";

impl World {
    fn new() -> World {
        let host = namespace_holder(&["--net", "--mount"]);
        let outside = namespace_holder(&["--net"]);
        let files = tempfile::tempdir_in("/var/tmp/berth-tests").unwrap();
        let mut w = World {
            host,
            outside,
            servers: Vec::new(),
            files,
        };
        let dir = w.files.path().to_path_buf();
        let op = w.outside.id();
        w.sh_host(&format!(
            "ip link set lo up && ip link add up0 type veth peer name up1 netns {op} && \
             ip addr add 10.99.0.1/24 dev up0 && ip link set up0 up && \
             ip route add default via 10.99.0.2"
        ));
        w.sh_outside(&format!(
            "ip link set lo up && ip addr add 10.99.0.2/24 dev up1 && ip link set up1 up && \
             ip addr add {OUTSIDE}/32 dev lo"
        ));
        // The host's resolver is the outside world's: pasta forwards to it.
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {OUTSIDE}\n")).unwrap();
        w.sh_host(&format!(
            "mount --bind {} /etc/resolv.conf",
            dir.join("resolv.conf").display()
        ));
        std::fs::create_dir(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/hello.txt"), "outside-hello\n").unwrap();
        let www = dir.join("www");
        let httpd = format!("{OUTSIDE}:7001");
        let httpd_args = [
            "busybox",
            "httpd",
            "-f",
            "-p",
            &httpd,
            "-h",
            www.to_str().unwrap(),
        ];
        w.servers.push(w.spawn_outside(&httpd_args));
        w.servers
            .push(w.spawn_outside(&["python3", "-c", DNS_SERVER, OUTSIDE]));
        let t = Instant::now();
        loop {
            let listening = w.sh_outside("ss -Hltun");
            if listening.contains(&format!("{OUTSIDE}:7001"))
                && listening.contains(&format!("{OUTSIDE}:53"))
            {
                return w;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{listening}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sh_in(pid: u32, ns: &[&str], script: &str) -> String {
        let o = Command::new("nsenter")
            .args(["-t", &pid.to_string()])
            .args(ns)
            .args(["--", "sh", "-c", script])
            .output()
            .unwrap();
        assert!(o.status.success(), "{script}: {}", stderr(&o));
        stdout(&o)
    }

    fn sh_host(&self, script: &str) -> String {
        Self::sh_in(self.host.id(), &["--net", "--mount"], script)
    }

    fn sh_outside(&self, script: &str) -> String {
        Self::sh_in(self.outside.id(), &["--net"], script)
    }

    fn spawn_outside(&self, argv: &[&str]) -> Child {
        Command::new("nsenter")
            .args(["-t", &self.outside.id().to_string(), "--net", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// berth in the host namespace, as the test user; `path` replaces PATH.
    fn berth_with(&self, r: &Root, path: Option<&Path>, args: &[&str]) -> Output {
        let b = r.berth();
        let (uid, gid, _) = test_user().expect("a rootless test");
        let mut c = Command::new("/usr/bin/nsenter");
        c.args(["-t", &self.host.id().to_string(), "--net", "--mount", "--"])
            .args([
                "/usr/bin/setpriv",
                "--reuid",
                &uid.to_string(),
                "--regid",
                &gid.to_string(),
            ])
            .args(["--clear-groups", "--"])
            .arg(b.get_program())
            .args(b.get_args())
            .args(args);
        for (k, v) in b.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        // The exec root is then ROOT/run, where pasta's links are.
        c.env_remove("XDG_RUNTIME_DIR");
        if let Some(p) = path {
            c.env("PATH", p);
        }
        output_within(c, 60)
    }

    fn berth(&self, r: &Root, args: &[&str]) -> Output {
        self.berth_with(r, None, args)
    }

    fn ok(&self, r: &Root, args: &[&str]) -> String {
        let o = self.berth(r, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        stdout(&o)
    }

    /// What `wget URL` gets, run in the namespace of `holder`.
    fn wget_from(holder: &Child, url: &str) -> Output {
        let mut c = Command::new("nsenter");
        c.args(["-t", &holder.id().to_string(), "--net", "--"])
            .args(["busybox", "wget", "-q", "-O", "-", url]);
        output_within(c, 20)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in self
            .servers
            .iter_mut()
            .chain([&mut self.host, &mut self.outside])
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A resolver answering every A query with 10.99.2.2 (and any other with
/// no answer), on port 53 of the address it is given.
const DNS_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(512)
    end = q.index(b"\0", 12) + 5
    a = q[end - 4:end - 2] == b"\0\1"
    head = q[:2] + b"\x81\x80" + q[4:6] + (b"\0\1" if a else b"\0\0") + b"\0\0\0\0"
    answer = b"\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4" + bytes([10, 99, 2, 2]) if a else b""
    s.sendto(head + q[12:end] + answer, peer)
"#;

/// A process in new namespaces of the kinds `flags` names (unshare's),
/// once it is in them.
fn namespace_holder(flags: &[&str]) -> Child {
    let child = Command::new("unshare")
        .args(flags)
        .args(["--", "sleep", "3600"])
        .spawn()
        .unwrap();
    let t = Instant::now();
    // unshare execs sleep once the namespaces are made.
    while !std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
        .unwrap_or_default()
        .starts_with("sleep")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "unshare did not exec"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// `c`'s output, or a panic if it has not ended within `secs` (killed).
fn output_within(mut c: Command, secs: u64) -> Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("{c:?} still ran after {secs} s: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A root with the fixture's busybox pulled (from the machine's fixture
/// registry, before any namespace of the test's: inside there is no route
/// to it).
fn root_with_busybox() -> Root {
    let r = Root::new();
    let o = r.berth().args(["pull", "-q", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r
}

/// The live (not zombie) pasta processes of root `r`'s containers: their
/// namespace links are under `<root>/run/pasta`.
fn pastas_of(r: &Root) -> Vec<String> {
    let links = r.path().join("run/pasta");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .starts_with('Z');
        if cmdline.contains(links.to_str().unwrap()) && !zombie {
            found.push(cmdline);
        }
    }
    found
}

fn no_pasta_left(r: &Root) {
    let t = Instant::now();
    while !pastas_of(r).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "pasta left: {:?}",
            pastas_of(r)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rootless_container_reaches_the_outside_world_and_its_resolver_through_pasta() {
    if !rootless() {
        return;
    }
    let r = root_with_busybox();
    let w = World::new();
    let script = format!(
        "ip -4 -o addr show up0; ip route show default; head -n 1 /etc/resolv.conf; \
         wget -q -O - http://{OUTSIDE}:7001/hello.txt; \
         nslookup -type=a outside.test 169.254.1.1"
    );
    let out = w.ok(
        &r,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            BUSYBOX,
            "sh",
            "-c",
            &script,
        ],
    );
    // The host's address and route, on a namespace of the container's own.
    assert!(out.contains("inet 10.99.0.1/24"), "{out}");
    assert!(out.contains("default via 10.99.0.2"), "{out}");
    assert!(out.contains("nameserver 169.254.1.1\n"), "{out}");
    assert!(out.contains("outside-hello\n"), "{out}");
    // pasta's forwarder asked the host's resolver, the outside world's.
    assert!(out.contains("Address: 10.99.2.2"), "{out}");
    no_pasta_left(&r);
    assert!(r.container_ids().is_empty());
}

#[test]
fn published_ports_reach_a_rootless_container_from_the_host_and_other_hosts() {
    if !rootless() {
        return;
    }
    let r = root_with_busybox();
    let w = World::new();
    let server = "mkdir -p /www && echo pong > /www/index.html && httpd -p 81 -h /www && \
                  exec httpd -f -p 80 -h /www";
    let args = [
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "bridge",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1::81",
        BUSYBOX,
        "sh",
        "-c",
        server,
    ];
    w.ok(&r, &args);
    assert!(!pastas_of(&r).is_empty(), "no pasta runs for it");
    let ports = w.ok(&r, &["port", "web"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:8080\n"), "{ports}");
    let chosen = ports
        .lines()
        .find_map(|l| l.strip_prefix("81/tcp -> 127.0.0.1:"))
        .unwrap_or_else(|| panic!("{ports}"))
        .to_string();
    let ps = w.ok(&r, &["ps", "--format", "{{.Ports}}"]);
    assert!(
        ps.contains(&format!("0.0.0.0:8080->80/tcp, 127.0.0.1:{chosen}->81/tcp")),
        "{ps}"
    );
    let pong = |holder: &Child, url: &str| {
        let t = Instant::now();
        loop {
            let o = World::wget_from(holder, url);
            if stdout(&o) == "pong\n" {
                return;
            }
            // The server may still be starting.
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{url}: {}",
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // From the host itself, and from another host.
    pong(&w.host, "http://127.0.0.1:8080/");
    pong(&w.outside, "http://10.99.0.1:8080/");
    pong(&w.host, &format!("http://127.0.0.1:{chosen}/"));
    // Published on 127.0.0.1 only.
    let o = World::wget_from(&w.outside, &format!("http://10.99.0.1:{chosen}/"));
    assert_ne!(code(&o), 0, "{}", stdout(&o));

    // A start is a new pasta, stopped with the container.
    w.ok(&r, &["stop", "-t", "1", "web"]);
    no_pasta_left(&r);
    assert_eq!(w.ok(&r, &["port", "web"]), "");
    w.ok(&r, &["start", "web"]);
    pong(&w.outside, "http://10.99.0.1:8080/");

    w.ok(&r, &["rm", "-f", "web"]);
    no_pasta_left(&r);
    assert_ne!(
        code(&World::wget_from(&w.host, "http://127.0.0.1:8080/")),
        0
    );
}

#[test]
fn host_ports_a_rootless_berth_cannot_have_are_refused_before_the_start() {
    if !rootless() {
        return;
    }
    let r = root_with_busybox();
    let w = World::new();
    let mut holder = Command::new("nsenter")
        .args(["-t", &w.host.id().to_string(), "--net", "--"])
        .args(["busybox", "nc", "-l", "-p", "8080"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    for (publish, why) in [
        (
            "8080:80",
            "Bind for 0.0.0.0:8080 failed: port is already allocated",
        ),
        (
            "80:80",
            "Bind for 0.0.0.0:80 failed: a rootless berth may not use host ports below",
        ),
    ] {
        let run = [
            "run",
            "--rm",
            "--network",
            "bridge",
            "-p",
            publish,
            BUSYBOX,
            "true",
        ];
        let o = loop {
            let o = w.berth(&r, &run);
            // nc may not listen yet.
            if stderr(&o).contains(why) || t.elapsed() > Duration::from_secs(10) {
                break o;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(code(&o), 125, "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
    let _ = holder.kill();
    let _ = holder.wait();
    no_pasta_left(&r);
    assert!(r.container_ids().is_empty());
}

#[test]
fn without_pasta_or_with_a_failing_one_a_rootless_bridge_is_one_clear_error_and_leaves_nothing() {
    if !rootless() {
        return;
    }
    let r = root_with_busybox();
    let w = World::new();
    // A PATH with what rootless berth needs, but no pasta.
    let bin = tempfile::tempdir_in("/var/tmp/berth-tests").unwrap();
    for tool in ["newuidmap", "newgidmap"] {
        std::os::unix::fs::symlink(PathBuf::from("/usr/bin").join(tool), bin.path().join(tool))
            .unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for verb in ["run", "create"] {
        let args = [
            verb,
            "--network",
            "bridge",
            "-p",
            "8080:80",
            BUSYBOX,
            "true",
        ];
        let o = w.berth_with(&r, Some(bin.path()), &args);
        assert_eq!(code(&o), 125, "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            "berth: --network bridge for rootless containers needs pasta (Debian's package passt)\n"
        );
    }
    // A pasta that fails: the hook's failure, in one line, and nothing left.
    std::fs::write(
        bin.path().join("pasta"),
        "#!/bin/sh\necho \"pasta: no way out\" >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.path().join("pasta"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let with_path = format!("{}:/usr/bin:/bin", bin.path().display());
    let args = ["run", "--rm", "--network", "bridge", BUSYBOX, "true"];
    let o = w.berth_with(&r, Some(Path::new(&with_path)), &args);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("createRuntime hook /"), "{err}");
    assert!(
        err.contains(" failed: exit status 2: pasta: no way out"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let links = std::fs::read_dir(r.path().join("run/pasta"))
        .unwrap()
        .count();
    assert_eq!(links, 0, "a namespace link is left");
    assert!(r.container_ids().is_empty());
    // Nothing but the records' lock file.
    let containers = r.path().join("containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == ".lock"),
        "left in {}: {left:?}",
        containers.display()
    );
}
