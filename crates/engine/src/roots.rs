//! Where berth keeps things, and what every command needs: the root (image
//! store, snapshots, container records, trash), the exec root (what lives
//! only as long as a container's processes: bundles, the runtime's state,
//! scratch upper dirs, the seccomp cache), the configuration.

use std::path::{Path, PathBuf};

use anyhow::Result;
use berth_image::{Platform, PullOptions, RegistryOptions, Store};

use crate::config::{self, Config};

/// Where the engine's directories and configuration are, when not the
/// defaults (`--root`, `--exec-root`, `--config`): absolute paths.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    /// A configuration file named explicitly, which must exist.
    pub config: Option<PathBuf>,
}

/// An engine over one root and exec root.
pub struct Engine {
    pub root: PathBuf,
    /// Per-container state that lives as long as the container's processes
    /// (runtime state, bundles): memory-backed where berth can make it so.
    pub exec_root: PathBuf,
    /// Whether `exec_root` is the default /run/berth, which berth mounts a
    /// tmpfs on when /run is not one.
    exec_root_default: bool,
    pub config: Config,
    /// The configuration file named on the command line, if one was
    /// (handed on to the monitors berth starts).
    pub config_path: Option<PathBuf>,
    pub store: Store,
}

/// The system-wide exec root of berth run as root.
const SYSTEM_EXEC_ROOT: &str = "/run/berth";

/// Default exec root: /run/berth for root; rootless,
/// `$XDG_RUNTIME_DIR/berth` (a tmpfs of the user's, on systemd hosts) or
/// else `ROOT/run`.
fn default_exec_root(root: &Path) -> PathBuf {
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
    pub fn open(opts: &Options) -> Result<Engine> {
        let root = opts.root.clone().unwrap_or_else(default_root);
        let config = match &opts.config {
            Some(p) => Config::load(p, true)?,
            None => Config::load(&config::default_path(), false)?,
        };
        let store = Store::open(&root)?;
        let exec_root = opts
            .exec_root
            .clone()
            .unwrap_or_else(|| default_exec_root(&root));
        let exec_root_default =
            opts.exec_root.is_none() && exec_root == Path::new(SYSTEM_EXEC_ROOT);
        Ok(Engine {
            root,
            exec_root,
            exec_root_default,
            config,
            config_path: opts.config.clone(),
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
fn system_exec_root_ready() -> Result<()> {
    use anyhow::Context;
    let dir = Path::new(SYSTEM_EXEC_ROOT);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if is_tmpfs(dir) || !berth_snapshot::in_initial_userns() {
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
fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == TMPFS_MAGIC)
}

impl Engine {
    /// How registries are reached, from the configuration.
    pub fn registry_options(&self) -> RegistryOptions {
        self.config.low_speed(RegistryOptions {
            mirrors: self.config.registry_mirrors.clone(),
            insecure_registries: self.config.insecure_registries.clone(),
            certs_d: Some(self.config.certs_dir()),
            ..RegistryOptions::default()
        })
    }

    /// A pull of `platform` (`linux/arm64`; None: this host's).
    pub fn pull_options(&self, platform: Option<&str>) -> Result<PullOptions> {
        Ok(PullOptions {
            registry: self.registry_options(),
            platform: platform.map(Platform::parse).transpose()?,
            ..PullOptions::default()
        })
    }

    /// The container records under the root.
    pub fn records(&self) -> Result<crate::records::Records> {
        crate::records::Records::open(&self.root)
    }

    /// Where the runtime keeps its per-container state (OCI state.json).
    pub(crate) fn runtime_dir(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }

    /// A container's OCI bundle: config.json and the files bind-mounted
    /// into it (/etc/hostname, hosts, resolv.conf). It lives while the
    /// container runs; its rootfs, upper and work dirs and its record stay
    /// in the root.
    pub(crate) fn bundle_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("bundles").join(id)
    }

    /// The bundle of container `c`: in the exec root for one run in the
    /// foreground with --rm, which lives only as long as that run; in the
    /// container's own dir for any other, which `start` runs again (after
    /// a reboot too, when the exec root is gone).
    pub(crate) fn bundle_of(&self, c: &crate::records::ContainerRecord) -> PathBuf {
        if c.detached || !c.auto_remove {
            self.root.join("containers").join(&c.id).join("bundle")
        } else {
            self.bundle_dir(&c.id)
        }
    }

    /// Where a container's overlay upper and work dirs go when its own dir
    /// cannot hold them: the root is on overlayfs (berth in a container),
    /// the exec root is a tmpfs. Lives as long as the container.
    pub(crate) fn scratch_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("scratch").join(id)
    }
}
