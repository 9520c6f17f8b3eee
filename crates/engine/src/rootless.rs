//! Rootless mode: berth run by an ordinary user. The container gets a user
//! namespace where that user is root, and, when /etc/subuid and
//! /etc/subgid grant the user a range and newuidmap/newgidmap are
//! installed, ids 1..=N map onto that range so images' other users work.
//! What rootless changes in a container's spec is said in the spec module
//! (`spec::build`), with every other edit of it.
//!
//! With a subordinate range, commands that write the store re-execute
//! berth inside a user and mount namespace of its own (as podman does):
//! there berth is root over the mapped ids, so layers unpack with their
//! owners, and overlayfs can be mounted (kernel 5.11+, `userxattr`).
//! Without one, berth stays outside: containers get a namespace mapping
//! the user alone, files of other owners become root's, and rootfs are copies.

use std::path::Path;

use anyhow::Result;
use berth_linux::idmap::Ids;
use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

use crate::request::Userns;

/// A user namespace's id maps: container ids to host ids.
#[derive(Debug, Clone)]
pub struct IdMaps {
    pub uids: Vec<LinuxIdMapping>,
    pub gids: Vec<LinuxIdMapping>,
}

/// Set in the re-executed berth (the value is only a marker).
const IN_USERNS: &str = "_BERTH_ROOTLESS_USERNS";

/// Whether berth runs without root (outside or inside its own namespace).
pub fn active() -> bool {
    !rustix::process::geteuid().is_root() || in_own_userns()
}

/// Whether this is the rootless berth re-executed in its user namespace.
pub fn in_own_userns() -> bool {
    std::env::var_os(IN_USERNS).is_some() && !berth_linux::in_initial_userns()
}

/// On cgroup v2, the cgroup delegated to this user that berth runs in
/// (systemd's `user@UID.service`), relative to the root: where a rootless
/// berth's containers go by default, since it may not create `/berth`.
/// None on v1, or outside any delegation.
pub fn delegated_cgroup() -> Option<String> {
    let mount = Path::new("/sys/fs/cgroup");
    if !mount.join("cgroup.controllers").exists() {
        return None; // not a pure v2 host
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    highest_writable(own, |rel| {
        let dir = mount.join(rel);
        let w = |p: &Path| rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok();
        w(&dir) && w(&dir.join("cgroup.procs")) && w(&dir.join("cgroup.subtree_control"))
    })
}

/// The highest ancestor of cgroup `own` (or `own`) that `writable` says
/// this user may manage: the top of its delegation (the root never is).
fn highest_writable(own: &str, writable: impl Fn(&str) -> bool) -> Option<String> {
    let parts: Vec<&str> = own.split('/').filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .map(|n| parts[..n].join("/"))
        .find(|rel| writable(rel))
}

/// The forwarding target of the waiting parent's signal handler.
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Terminal-made signals (^C) reach the child through the process group
    // already; only signals sent to this process by someone are passed on.
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    let child = CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if code <= 0 && child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, sig) };
    }
}

/// Run this same command again inside a new user and mount namespace where
/// this user is root and its subordinate ids are mapped, and exit with its
/// status. Returns (doing nothing) when rootless berth has no range to map.
pub fn reexec_in_userns() -> Result<()> {
    use std::os::fd::AsRawFd;
    if !active() || in_own_userns() {
        return Ok(());
    }
    let maps = id_maps()?;
    if maps.uids.len() < 2 {
        return Ok(());
    }
    // Everything the child needs is allocated before fork.
    let again = Reexec::prepare()?;
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;

    // SAFETY: berth is single-threaded here (this runs before anything
    // starts a thread); the child only makes async-signal-safe calls on
    // memory prepared above, then execs or _exits.
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        again.child(parent, ready_w.as_raw_fd(), go_r.as_raw_fd());
    }
    if pid < 0 {
        anyhow::bail!("rootless: fork: {}", std::io::Error::last_os_error());
    }
    drop(ready_w);
    drop(go_r);
    CHILD.store(pid, std::sync::atomic::Ordering::Relaxed);
    let mut b = [0u8];
    if rustix::io::read(&ready_r, &mut b).unwrap_or(0) != 1 {
        anyhow::bail!(
            "rootless: could not create a user namespace (are unprivileged user namespaces disabled?)"
        );
    }
    write_id_maps(pid, &maps)?;
    // The signals `berth run` passes to a container, passed on to it.
    for sig in berth_runtime::FORWARDED_SIGNALS {
        // SAFETY: installing a handler that only calls kill(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    rustix::io::write(&go_w, &[1])?;
    std::process::exit(wait_for(pid)?);
}

/// berth's own command line and environment (plus the marker of the
/// re-executed berth) as execve takes them, made before fork.
struct Reexec {
    exe: std::ffi::CString,
    argv_p: Vec<*const libc::c_char>,
    envp_p: Vec<*const libc::c_char>,
    // What the pointers point into.
    _argv: Vec<std::ffi::CString>,
    _envp: Vec<std::ffi::CString>,
}

impl Reexec {
    fn prepare() -> Result<Reexec> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let cstr =
            |b: &[u8]| CString::new(b).map_err(|_| anyhow::anyhow!("argument with a NUL byte"));
        let exe = cstr(b"/proc/self/exe")?;
        let argv: Vec<CString> = std::env::args_os()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_>>()?;
        let mut envp: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .collect::<Result<_>>()?;
        envp.push(cstr(format!("{IN_USERNS}=1").as_bytes())?);
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        envp_p.push(std::ptr::null());
        Ok(Reexec {
            exe,
            argv_p,
            envp_p,
            _argv: argv,
            _envp: envp,
        })
    }

    /// The child of fork: makes its namespaces, says so on `ready`, waits
    /// on `go` for its id maps, becomes root there and execs berth again.
    fn child(&self, parent: libc::pid_t, ready: libc::c_int, go: libc::c_int) -> ! {
        // SAFETY: raw syscalls on fds and buffers that stay valid (made
        // before fork); only async-signal-safe calls, then exec or _exit.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                libc::_exit(125);
            }
            let one = [1u8];
            libc::write(ready, one.as_ptr().cast(), 1);
            let mut b = [0u8];
            if libc::read(go, b.as_mut_ptr().cast(), 1) != 1 {
                libc::_exit(125);
            }
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                libc::_exit(125);
            }
            // Dies with the berth that waits for it, as if one process. Set
            // only now: a change of credentials clears it. A parent already
            // gone by then is noticed by its pid.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(125);
            }
            libc::execve(
                self.exe.as_ptr(),
                self.argv_p.as_ptr(),
                self.envp_p.as_ptr(),
            );
            libc::_exit(127);
        }
    }
}

/// Writes the child's id maps with newuidmap and newgidmap; on failure
/// the child is killed.
fn write_id_maps(pid: libc::pid_t, maps: &IdMaps) -> Result<()> {
    use berth_linux::idmap::{HelperError, Range};
    let ranges = |maps: &[LinuxIdMapping]| -> Vec<Range> {
        maps.iter()
            .map(|m| Range {
                inside: m.container_id(),
                outside: m.host_id(),
                size: m.size(),
            })
            .collect()
    };
    for (ids, maps) in [(Ids::Uid, &maps.uids), (Ids::Gid, &maps.gids)] {
        let failed = match berth_linux::idmap::run_helper(ids, pid, &ranges(maps)) {
            Ok(()) => None,
            Err(HelperError::Failed(stderr)) => Some(stderr),
            Err(HelperError::Spawn(e)) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            // SAFETY: kill and waitpid on our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            anyhow::bail!("rootless: {} for pid {pid}: {why}", ids.helper());
        }
    }
    Ok(())
}

/// Waits for our child `pid` and returns its exit status, 128+N when
/// signal N killed it.
fn wait_for(pid: libc::pid_t) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child into a local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            anyhow::bail!("rootless: waiting for berth in its user namespace failed");
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

fn mapping(container: u32, host: u32, size: u32) -> Result<LinuxIdMapping> {
    Ok(LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()?)
}

/// The subordinate range of `user` (name or numeric id) in `file`
/// (/etc/subuid format: `name:start:count`), the first one listed.
pub fn sub_range(file: &Path, user: &str, id: u32) -> Option<(u32, u32)> {
    let text = berth_io::read_capped_string(file, 16 * berth_io::MIB, "subordinate ids").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != user && who != id.to_string() {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok()?))
    })
}

fn has_helper(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn user_name(uid: u32) -> String {
    berth_io::read_capped_string(Path::new("/etc/passwd"), 16 * berth_io::MIB, "passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Id maps for this user: 0 → the user, 1.. → its subordinate range (if any).
pub fn id_maps() -> Result<IdMaps> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let name = user_name(uid);
    let mut uids = vec![mapping(0, uid, 1)?];
    let mut gids = vec![mapping(0, gid, 1)?];
    if has_helper(Ids::Uid.helper())
        && has_helper(Ids::Gid.helper())
        && let (Some((us, uc)), Some((gs, gc))) = (
            sub_range(Path::new("/etc/subuid"), &name, uid),
            sub_range(Path::new("/etc/subgid"), &name, gid),
        )
    {
        uids.push(mapping(1, us, uc)?);
        gids.push(mapping(1, gs, gc)?);
    } else {
        tracing::debug!(
            "rootless: no subordinate ids for {name} (or no newuidmap): only root exists in containers"
        );
    }
    Ok(IdMaps { uids, gids })
}

/// `--userns remap[:USER]` (root only): the container's ids 0..N are USER's
/// subordinate range. None for `host`.
pub fn remap_maps(userns: &Userns) -> Result<Option<IdMaps>> {
    let (user, flag) = match userns {
        Userns::Host => return Ok(None),
        Userns::Remap { user: None } => ("berth", "remap".to_string()),
        Userns::Remap { user: Some(u) } => (u.as_str(), format!("remap:{u}")),
    };
    if active() {
        anyhow::bail!(
            "--userns {flag}: rootless berth always runs containers in its own user namespace"
        );
    }
    let range = |file: &str| {
        sub_range(Path::new(file), user, u32::MAX).ok_or_else(|| {
            anyhow::anyhow!(
                "--userns {flag}: no range for {user:?} in {file}; add one, e.g. \
                 usermod --add-subuids 200000-265535 --add-subgids 200000-265535 {user}"
            )
        })
    };
    let (us, uc) = range("/etc/subuid")?;
    let (gs, gc) = range("/etc/subgid")?;
    Ok(Some(IdMaps {
        uids: vec![mapping(0, us, uc)?],
        gids: vec![mapping(0, gs, gc)?],
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_delegation_is_the_highest_cgroup_the_user_may_manage() {
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope";
        let mine = |rel: &str| rel.starts_with("user.slice/user-1000.slice/user@1000.service");
        assert_eq!(
            super::highest_writable(own, mine).as_deref(),
            Some("user.slice/user-1000.slice/user@1000.service")
        );
        assert_eq!(super::highest_writable(own, |_| false), None);
        assert_eq!(super::highest_writable("/", |_| true), None);
    }

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), "alice:100000:65536\n1001:300000:1000\n").unwrap();
        assert_eq!(
            super::sub_range(t.path(), "alice", 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            super::sub_range(t.path(), "bob", 1001),
            Some((300000, 1000))
        );
        assert_eq!(super::sub_range(t.path(), "carol", 1002), None);
    }
}
