//! `top`: the host's `ps` with the user's options, cut down to the
//! container's processes, and a container's processes as `stats` counts
//! them. A container's processes are those in its cgroup; one without a
//! cgroup of its own (it runs in berth's) has those whose PID namespace
//! is its first process's.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_runtime::cgroups::{Cgroup, Layout};

use crate::Engine;
use crate::cp::DaemonError;
use crate::records::ContainerRecord;

/// What `ps` printed for the container: its header's column titles and
/// each process's row, split into as many fields (the last keeps its
/// spaces: a command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// `ps` output is small; a cap keeps a runaway one from filling memory.
const PS_OUTPUT_MAX: u64 = 64 << 20;
/// A `ps` that has not finished by then is killed.
const PS_TIMEOUT: Duration = Duration::from_secs(30);

/// The container's cgroup, when it has one of its own.
pub fn cgroup_of(c: &ContainerRecord) -> Option<Cgroup> {
    let path = c.cgroup.as_deref()?;
    Cgroup::new(Layout::detect().ok()?, path).ok()
}

/// The host PIDs of the running container `c`'s processes.
pub fn pids(c: &ContainerRecord) -> Vec<i32> {
    if let Some(cg) = cgroup_of(c) {
        let p = cg.procs();
        if !p.is_empty() {
            return p;
        }
    }
    let Some(init) = c.pid else {
        return Vec::new();
    };
    same_pid_ns(init)
}

/// Every process in the PID namespace of `init` (the host's /proc lists
/// them all; one inode names a namespace).
fn same_pid_ns(init: i32) -> Vec<i32> {
    let ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok();
    let Some(want) = ns(&init.to_string()) else {
        return Vec::new();
    };
    let own = ns("self");
    use std::os::unix::fs::MetadataExt;
    // Sharing the host's namespace would make every process the container's.
    if own.is_some_and(|o| (o.dev(), o.ino()) == (want.dev(), want.ino())) {
        return vec![init];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if ns(&pid.to_string()).is_some_and(|m| (m.dev(), m.ino()) == (want.dev(), want.ino())) {
            out.push(pid);
        }
    }
    out
}

/// The running container `key` names, or Docker's error for one that is not.
pub(crate) fn running(engine: &Engine, key: &str) -> Result<ContainerRecord> {
    let c = engine.records()?.find(key).map_err(|e| {
        match e.to_string().strip_prefix("no such container: ") {
            Some(k) => DaemonError(format!("No such container: {k}")).into(),
            None => e,
        }
    })?;
    if !c.is_running() {
        return Err(DaemonError(format!("container {} is not running", c.id)).into());
    }
    Ok(c)
}

/// `top CONTAINER [ps OPTIONS]`: `ps` (options `-ef` when none) keeping
/// the rows whose PID is the container's.
pub fn top(engine: &Engine, key: &str, ps_args: &[String]) -> Result<Top> {
    let c = running(engine, key)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = run_ps(&args)?;
    let pids = pids(&c);
    parse_ps(&out, &pids).map_err(|e| DaemonError(e.to_string()).into())
}

fn run_ps(args: &[String]) -> Result<String> {
    let mut child = Command::new("ps")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ps")?;
    // Read on a thread so the deadline below holds even if ps hangs.
    let mut stdout = child.stdout.take().context("ps stdout")?;
    let mut stderr = child.stderr.take().context("ps stderr")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(PS_OUTPUT_MAX).read_to_end(&mut out);
        let mut err = Vec::new();
        let _ = (&mut stderr).take(1 << 16).read_to_end(&mut err);
        (out, err)
    });
    let deadline = Instant::now() + PS_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("ps did not finish within {} s", PS_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = reader.join().unwrap_or_default();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        return Err(DaemonError(format!(
            "ps: {}: {}",
            status,
            err.trim().lines().next().unwrap_or("failed")
        ))
        .into());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Docker's parsing of `ps` output: the header's titles, then each line
/// split on blanks into as many fields, the last taking the rest.
fn parse_ps(out: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = out.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        bail!("Couldn't find PID field in ps output");
    };
    let mut processes = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            bail!("Unexpected pid in ps output: {line:?}");
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len();
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|f| f.to_string()).collect();
        row.push(fields.get(n - 1..).map(|r| r.join(" ")).unwrap_or_default());
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_only() {
        let out = "UID   PID  PPID  C STIME TTY  TIME     CMD\n\
                   root    1     0  0 10:00 ?    00:00:01 /sbin/init splash\n\
                   root   42     1  0 10:01 ?    00:00:00 sleep 100\n";
        let t = parse_ps(out, &[42]).unwrap();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.processes[0][1], "42");
        assert_eq!(t.processes[0][7], "sleep 100");
        let e = parse_ps("USER COMMAND\nroot x\n", &[1]).unwrap_err();
        assert!(e.to_string().contains("PID field"), "{e}");
    }

    #[test]
    fn own_process_found_in_its_namespace() {
        let me = std::process::id() as i32;
        assert_eq!(
            same_pid_ns(me),
            vec![me],
            "the host's namespace is never scanned"
        );
    }
}
