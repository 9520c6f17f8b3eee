//! A network and mount namespace of the test's own for berth to make its
//! bridges, veths and firewall in, and more namespaces wired to it as
//! "other hosts": network tests send packets only within them.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A network and mount namespace of the test's own, held by a sleeping
/// process; commands enter it with nsenter.
pub struct Sandbox {
    holder: Child,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let holder = namespace_holder(&["--net", "--mount"]);
        let sb = Sandbox { holder };
        sb.sh("ip link set lo up");
        sb
    }

    pub fn pid(&self) -> String {
        self.holder.id().to_string()
    }

    /// `sh -c script` in the sandbox; its stdout, asserted to succeed.
    pub fn sh(&self, script: &str) -> String {
        let o = Command::new("nsenter")
            .args([
                "-t",
                &self.pid(),
                "--net",
                "--mount",
                "--",
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{script}: {}", stderr(&o));
        stdout(&o)
    }

    /// berth in the sandbox.
    pub fn berth(&self, r: &Root, args: &[&str]) -> Output {
        let mut c = r.berth();
        let exe = c.get_program().to_owned();
        let mut n = Command::new("nsenter");
        n.args(["-t", &self.pid(), "--net", "--mount", "--"])
            .arg(exe);
        n.args(c.get_args()).args(args);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => n.env(k, v),
                None => n.env_remove(k),
            };
        }
        n.stdin(Stdio::null());
        c.stdin(Stdio::null());
        n.output().unwrap()
    }

    /// berth `args` in the sandbox, left running in the foreground (to be
    /// killed mid-run), once the container's command has said `ready`.
    pub fn doomed(&self, r: &Root, args: &[&str]) -> Child {
        let cmd = r.berth();
        let mut berth = Command::new("nsenter");
        berth
            .args(["-t", &self.pid(), "--net", "--mount", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .args(args)
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = berth.spawn().unwrap();
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        child
    }

    pub fn ok(&self, r: &Root, args: &[&str]) -> String {
        let o = self.berth(r, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        stdout(&o)
    }

    /// Waits until the sandbox has no veth left: a pair goes with its
    /// container's namespace, which the kernel takes down in the background.
    pub fn no_veths_left(&self) {
        let t = Instant::now();
        while !self.veths().is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "veths left: {:?}",
                self.veths()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The sandbox's veths (the host ends of containers' pairs).
    pub fn veths(&self) -> Vec<String> {
        self.sh("ip -o link show")
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
            .filter(|n| n.starts_with("veth"))
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A process in new namespaces of the kinds `flags` names (unshare's),
/// once it is in them.
pub fn namespace_holder(flags: &[&str]) -> Child {
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let child = Command::new("unshare")
        .args(flags)
        .args(["--", "sleep", "3600"])
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::fs::read_link(format!("/proc/{}/ns/net", child.id())).ok() == Some(own.clone()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "unshare did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
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

/// A root with the fixture's busybox pulled (from the machine's fixture
/// registry, before any sandbox: inside one there is no route to it).
pub fn root_with_busybox() -> Root {
    let r = Root::new();
    let o = r.berth().args(["pull", "-q", BUSYBOX]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r
}

/// A namespace wired to the sandbox as "another host": the sandbox is
/// 10.200.0.1, it is 10.200.0.2. Returns its holder.
pub fn other_host(sb: &Sandbox) -> Child {
    let other = namespace_holder(&["--net"]);
    let op = other.id().to_string();
    sb.sh(&format!(
        "ip link add up0 type veth peer name up1 netns {op} && \
         ip addr add 10.200.0.1/24 dev up0 && ip link set up0 up"
    ));
    let o = Command::new("nsenter")
        .args([
            "-t",
            &op,
            "--net",
            "--",
            "sh",
            "-c",
            "ip addr add 10.200.0.2/24 dev up1 && ip link set up1 up && ip link set lo up",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    other
}

/// `busybox nc ADDR PORT` run in the namespace of process `pid`, retried
/// until it hears something (a server may still be starting).
pub fn nc_from(pid: &str, addr: &str, port: &str) -> String {
    let t = Instant::now();
    loop {
        let o = Command::new("nsenter")
            .args([
                "-t", pid, "--net", "--", "busybox", "nc", "-w", "2", addr, port,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !stdout(&o).trim().is_empty() {
            return stdout(&o);
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nothing from {addr}:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
