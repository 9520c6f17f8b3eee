//! What the runtime is: `--version`, `features` (the runtime-spec's
//! features document, which containerd and dockerd ask newer runtimes
//! for) and `spec` (a starting config.json).

use anyhow::{Context, Result, bail};
use berth_io::outln;
use std::path::Path;

/// The runtime-spec version berth's runtime implements.
const OCI_VERSION: &str = "1.2.0";

/// Capability names by number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

pub fn version() {
    outln!("{} version {}", super::NAME, env!("CARGO_PKG_VERSION"));
    outln!("spec: {OCI_VERSION}");
}

pub fn features() -> Result<()> {
    let last = berth_runtime::capabilities::last_cap() as usize;
    let caps: Vec<String> = CAPABILITIES
        .iter()
        .take(last + 1)
        .map(|c| format!("CAP_{c}"))
        .collect();
    let doc = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [
            "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
            "poststop"
        ],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "lazytime", "mand", "noatime", "nodev", "nodiratime", "noexec", "nolazytime",
            "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime",
            "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared",
            "slave", "strictatime", "suid", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": {
            "org.berth.version": env!("CARGO_PKG_VERSION"),
        }
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// `spec`: runc's default config.json (oci-spec's defaults are runc's),
/// or its rootless variant, into the bundle; never over an existing one.
pub fn spec(rootless: bool, bundle: Option<&Path>) -> Result<()> {
    let dir = bundle.unwrap_or(Path::new("."));
    let path = dir.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = if rootless {
        oci_spec::runtime::Spec::rootless(
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    } else {
        oci_spec::runtime::Spec::default()
    };
    // oci-spec's default names its own project.
    spec.set_hostname(Some("berth".into()));
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))
}
