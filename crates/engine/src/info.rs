//! The data behind `berth info` (Docker's command): what berth runs on,
//! and what it had to do without here (see host.rs). Printing it is the
//! front end's.

use anyhow::Result;
use serde::Serialize;

use crate::Engine;
use crate::host::{self, Host};

/// Docker's `info` fields, as far as berth has them; serialised with
/// Docker's names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    pub server_version: &'static str,
    pub root_dir: String,
    pub exec_root: String,
    pub containers: usize,
    pub containers_running: usize,
    pub containers_stopped: usize,
    pub images: usize,
    /// overlay, or copy when overlayfs cannot be used.
    pub driver: String,
    pub backing_filesystem: String,
    /// Where containers' overlay upper directories go.
    pub upper_dirs: Option<String>,
    /// cgroupfs, or none when berth cannot make cgroups.
    pub cgroup_driver: &'static str,
    pub cgroup_version: Option<u8>,
    pub cgroups: String,
    pub security_options: Vec<String>,
    pub capabilities_missing: Vec<&'static str>,
    pub rootless: bool,
    pub user_namespaces: bool,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: &'static str,
    pub architecture: &'static str,
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    pub mem_total: u64,
    pub name: String,
    /// What berth had to do without on this host, one line each.
    pub adapted: Vec<String>,
}

/// What `info` shows about this host and this engine.
pub fn gather(engine: &Engine) -> Result<Info> {
    let host = Host::get();
    let rootless = crate::rootless::active();
    let containers = engine.records()?.list()?;
    let running = containers.iter().filter(|c| c.is_running()).count();
    let images = engine.store.images()?.len();
    let mut adapted = Vec::new();

    let (driver, upper_dirs) = storage(engine, &mut adapted);
    let cgroups = host.cgroups();
    let mode = engine.config.cgroups;
    let (cgroup_driver, cgroups_line) = match (&cgroups.unwritable, mode) {
        (_, Some(crate::request::CgroupsMode::Disabled)) => (
            "none",
            "disabled (config: \"cgroups\": \"disabled\")".to_string(),
        ),
        (Some(why), _) if !rootless => {
            adapted.push(format!(
                "no writable cgroup filesystem ({why}): containers run in berth's own cgroup; \
                 resource limits are refused"
            ));
            ("none", format!("unavailable: {why}"))
        }
        (Some(_), _) => ("cgroupfs", "delegated cgroups only (rootless)".to_string()),
        (None, _) => ("cgroupfs", "enabled".to_string()),
    };
    if !rootless {
        if !host.has_cap("CAP_NET_ADMIN") {
            adapted.push(
                "no CAP_NET_ADMIN: a container's private network namespace keeps its loopback \
                 down (--network host works)"
                    .into(),
            );
        }
        if host.has_cap("CAP_SYS_ADMIN") && host.pivot_root_refused() {
            adapted.push(
                "pivot_root is refused (a seccomp filter): the root is switched by moving it onto \
                 / and chroot, as with --no-pivot"
                    .into(),
            );
        }
    }
    let userns = host::userns_available();
    if !userns {
        adapted.push("user namespaces unavailable: rootless and --userns remap cannot work".into());
    }
    let mut security_options = vec!["name=seccomp,profile=builtin".to_string()];
    if rootless {
        security_options.push("name=rootless".into());
    }
    if host.seccomp_filtered {
        security_options.push("berth itself runs under a seccomp filter".into());
    }
    let uname = rustix::system::uname();
    Ok(Info {
        server_version: env!("CARGO_PKG_VERSION"),
        root_dir: engine.root.display().to_string(),
        exec_root: engine.exec_root.display().to_string(),
        containers: containers.len(),
        containers_running: running,
        containers_stopped: containers.len() - running,
        images,
        driver,
        backing_filesystem: host::fs_name(&engine.root),
        upper_dirs,
        cgroup_driver,
        cgroup_version: cgroups.version,
        cgroups: cgroups_line,
        security_options,
        capabilities_missing: host.missing_caps(),
        rootless,
        user_namespaces: userns,
        kernel_version: uname.release().to_string_lossy().into_owned(),
        operating_system: os_name(),
        os_type: "linux",
        architecture: std::env::consts::ARCH,
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total: mem_total(),
        name: uname.nodename().to_string_lossy().into_owned(),
        adapted,
    })
}

/// The storage driver containers get here, and where their upper
/// directories go: overlay refuses an upper directory on overlayfs (a
/// store inside a container), so those go to the exec root.
fn storage(engine: &Engine, adapted: &mut Vec<String>) -> (String, Option<String>) {
    let on_overlay = host::on_overlayfs(&engine.root);
    let upper = if on_overlay {
        // Where run would put them: the exec root, a tmpfs of its own.
        if let Err(e) = engine.exec_root_ready() {
            tracing::debug!("exec root: {e:#}");
        }
        let scratch = engine.exec_root.join("scratch");
        adapted.push(format!(
            "the store is on overlayfs: container upper directories go to {} ({}); layers \
             with whiteouts become self-contained snapshots",
            scratch.display(),
            host::fs_name(&engine.exec_root)
        ));
        scratch
    } else {
        engine.root.join("containers")
    };
    match overlay_works(engine, &upper) {
        Ok(()) => ("overlay".into(), Some(upper.display().to_string())),
        Err(why) => {
            adapted.push(format!(
                "overlayfs unavailable ({why}): container root filesystems are copied"
            ));
            ("copy".into(), None)
        }
    }
}

/// A trial overlay mount: a lower in the store, upper and work in `upper`.
fn overlay_works(engine: &Engine, upper: &std::path::Path) -> Result<(), String> {
    if crate::rootless::active() && berth_snapshot::in_initial_userns() {
        // Rootless berth mounts inside its own user namespace at run time.
        return Ok(());
    }
    let err = |e: std::io::Error| e.to_string();
    let tmp = engine.root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(err)?;
    std::fs::create_dir_all(upper).map_err(err)?;
    let pid = std::process::id();
    let low = tmp.join(format!("info-{pid}"));
    let up = upper.join(format!(".info-{pid}"));
    let result = (|| {
        let (u, w, m) = (up.join("u"), up.join("w"), low.join("m"));
        for d in [&u, &w, &m] {
            std::fs::create_dir_all(d).map_err(err)?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            low.display(),
            u.display(),
            w.display()
        );
        let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
        rustix::mount::mount(
            "overlay",
            &m,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(data.as_c_str()),
        )
        .map_err(|e| err(e.into()))?;
        let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&low);
    let _ = std::fs::remove_dir_all(&up);
    result
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
