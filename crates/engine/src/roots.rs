//! What every command needs: the root, the configuration, the image store.

use std::path::PathBuf;

use anyhow::Result;
use berth_image::{RegistryOptions, Store};

use crate::cli::Cli;
use crate::config::{self, Config};

pub struct Engine {
    pub root: PathBuf,
    /// Per-container state that lives as long as the container's processes
    /// (runtime state, bundles): memory-backed where berth can make it so.
    pub exec_root: PathBuf,
    /// Whether `exec_root` is the default /run/berth, which berth mounts a
    /// tmpfs on when /run is not one.
    exec_root_default: bool,
    pub config: Config,
    pub store: Store,
}

/// The system-wide exec root of berth run as root.
const SYSTEM_EXEC_ROOT: &str = "/run/berth";

/// Default exec root: /run/berth for root; rootless,
/// `$XDG_RUNTIME_DIR/berth` (a tmpfs of the user's, on systemd hosts) or
/// else `ROOT/run`.
fn default_exec_root(root: &std::path::Path) -> PathBuf {
    if !crate::rootless::active() {
        return PathBuf::from(SYSTEM_EXEC_ROOT);
    }
    // Only a runtime dir of this user's own (an inherited one may not be).
    let euid = rustix::process::geteuid().as_raw();
    let own = |d: &PathBuf| {
        std::fs::metadata(d).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == euid)
    };
    match std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .filter(own)
    {
        Some(d) => d.join("berth"),
        None => root.join("run"),
    }
}

/// Default root: /var/lib/berth for root, `$XDG_DATA_HOME/berth` otherwise.
fn default_root() -> PathBuf {
    if !crate::rootless::active() {
        return PathBuf::from("/var/lib/berth");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute()) // XDG: a relative one is ignored
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .filter(|d| d.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("berth")
}

impl Engine {
    pub fn open(cli: &Cli) -> Result<Engine> {
        let root = cli.root.clone().unwrap_or_else(default_root);
        let config = match &cli.config {
            Some(p) => Config::load(p, true)?,
            None => Config::load(&config::default_path(), false)?,
        };
        let store = Store::open(&root)?;
        let exec_root = cli
            .exec_root
            .clone()
            .unwrap_or_else(|| default_exec_root(&root));
        let exec_root_default =
            cli.exec_root.is_none() && exec_root == std::path::Path::new(SYSTEM_EXEC_ROOT);
        Ok(Engine {
            root,
            exec_root,
            exec_root_default,
            config,
            store,
        })
    }

    /// Makes the exec root, before a container first needs it. The default
    /// /run/berth gets a tmpfs of its own when it is not on one already
    /// (/run is a tmpfs on most hosts, but not all): what is kept there
    /// describes running processes, and must go when they all do, at
    /// reboot; and it is written and removed at every start, cheap in
    /// memory while on some disks every freed block is a synchronous
    /// discard.
    pub fn exec_root_ready(&self) -> Result<()> {
        use anyhow::Context;
        let dir = &self.exec_root;
        if !self.exec_root_default {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            return Ok(());
        }
        system_exec_root_ready()
    }
}

/// The system exec root, /run/berth, made and (where /run is not already
/// memory) given a tmpfs of its own.
pub fn system_exec_root_ready() -> Result<()> {
    use anyhow::Context;
    let dir = std::path::Path::new(SYSTEM_EXEC_ROOT);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if is_tmpfs(dir) || !berth_rootfs::in_initial_userns() {
        return Ok(());
    }
    // Two berths must not both mount (the second would hide the first's
    // files): lock the directory, then look again.
    let d = std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    d.lock()
        .with_context(|| format!("lock {}", dir.display()))?;
    if is_tmpfs(dir) {
        return Ok(());
    }
    if let Err(e) = rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        Some(c"mode=0711"),
    ) {
        // Not fatal: a plain directory works, only slower and without
        // the clean slate at reboot.
        tracing::debug!("mount tmpfs on {}: {e}", dir.display());
    }
    Ok(())
}

/// Whether `dir` is on a tmpfs.
fn is_tmpfs(dir: &std::path::Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == TMPFS_MAGIC)
}

impl Engine {
    pub fn registry_options(&self) -> RegistryOptions {
        self.config.low_speed(RegistryOptions {
            mirrors: self.config.registry_mirrors.clone(),
            insecure_registries: self.config.insecure_registries.clone(),
            certs_d: Some(self.config.certs_dir()),
            ..RegistryOptions::default()
        })
    }
}
