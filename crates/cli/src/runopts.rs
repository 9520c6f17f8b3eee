//! Docker's `run` flag syntaxes turned into OCI mounts and environment:
//! `-v HOST:CTR[:ro]`, `--mount type=bind|tmpfs,...`, `--tmpfs`, `--env-file`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Mount, MountBuilder};

fn mount(kind: &str, source: &str, dest: &str, options: Vec<String>) -> Result<Mount> {
    MountBuilder::default()
        .typ(kind)
        .source(PathBuf::from(source))
        .destination(PathBuf::from(dest))
        .options(options)
        .build()
        .with_context(|| format!("mount {dest}"))
}

fn check_target(dest: &str, flag: &str) -> Result<()> {
    if !dest.starts_with('/') {
        bail!("invalid {flag}: container path {dest:?} must be absolute");
    }
    if dest == "/" {
        bail!("invalid {flag}: cannot mount over the container's root /");
    }
    Ok(())
}

/// `-v /host:/ctr[:ro|rw]`. Like Docker, a missing host directory is created.
pub fn parse_volume(spec: &str) -> Result<Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => bail!("invalid volume {spec:?}: expected HOST:CONTAINER[:ro]"),
    };
    if !src.starts_with('/') {
        bail!(
            "invalid volume {spec:?}: named volumes are not supported yet, give an absolute host path"
        );
    }
    check_target(dst, "volume")?;
    let mut options = vec!["rbind".to_string()];
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "rw" => options.push(o.to_string()),
            "z" | "Z" => {} // SELinux relabel: nothing to do without SELinux
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                options.push(o.to_string())
            }
            _ => bail!("invalid volume {spec:?}: unknown option {o:?}"),
        }
    }
    if !Path::new(src).exists() {
        std::fs::create_dir_all(src).with_context(|| format!("create volume source {src}"))?;
    }
    mount("bind", src, dst, options)
}

/// `--mount type=bind,source=/a,target=/b,readonly` and `type=tmpfs,target=/t,tmpfs-size=1m`.
pub fn parse_mount(spec: &str) -> Result<Mount> {
    let mut kind = None;
    let mut src = None;
    let mut dst = None;
    let mut ro = false;
    let mut size = None;
    let mut mode = None;
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = Some(v.to_string()),
            "source" | "src" => src = Some(v.to_string()),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => size = Some(v.to_string()),
            "tmpfs-mode" => mode = Some(v.to_string()),
            "bind-propagation" => {}
            _ => bail!("invalid mount {spec:?}: unknown field {k:?}"),
        }
    }
    let dst = dst.with_context(|| format!("invalid mount {spec:?}: target is required"))?;
    check_target(&dst, "mount")?;
    match kind.as_deref() {
        Some("bind") => {
            let src = src.with_context(|| format!("invalid mount {spec:?}: source is required"))?;
            if !src.starts_with('/') {
                bail!("invalid mount {spec:?}: source must be an absolute path");
            }
            if !Path::new(&src).exists() {
                bail!("invalid mount {spec:?}: bind source path does not exist: {src}");
            }
            let mut o = vec!["rbind".to_string()];
            o.push(if ro { "ro" } else { "rw" }.into());
            mount("bind", &src, &dst, o)
        }
        Some("tmpfs") => {
            let mut o = vec!["nosuid".to_string(), "nodev".into()];
            if ro {
                o.push("ro".into());
            }
            if let Some(s) = size {
                o.push(format!("size={s}"));
            }
            if let Some(m) = mode {
                o.push(format!("mode={m}"));
            }
            mount("tmpfs", "tmpfs", &dst, o)
        }
        Some("volume") => bail!("invalid mount {spec:?}: named volumes are not supported yet"),
        Some(t) => bail!("invalid mount {spec:?}: unknown type {t:?} (bind or tmpfs)"),
        None => bail!("invalid mount {spec:?}: type is required"),
    }
}

/// `--tmpfs /run[:size=64m,mode=1777]`; Docker's defaults are noexec,nosuid,nodev.
pub fn parse_tmpfs(spec: &str) -> Result<Mount> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    check_target(dst, "tmpfs")?;
    let mut o: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    o.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
    mount("tmpfs", "tmpfs", dst, o)
}

/// One `-e` value: `KEY=VALUE`, or `KEY` taken from berth's own environment
/// (dropped when unset, as Docker does).
pub fn parse_env(spec: &str) -> Result<Option<String>> {
    let key = spec.split('=').next().unwrap_or("");
    if key.is_empty() {
        bail!("invalid environment variable {spec:?}: empty name");
    }
    if key.contains(char::is_whitespace) {
        bail!("invalid environment variable {spec:?}: name contains whitespace");
    }
    if spec.contains('=') {
        return Ok(Some(spec.to_string()));
    }
    Ok(std::env::var(spec).ok().map(|v| format!("{spec}={v}")))
}

/// `--env-file`: one variable a line, `#` comments and blank lines skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<String>> {
    let text = berth_io::read_capped_string(path, berth_io::MIB, "--env-file")?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_env(line) {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(e) => bail!("--env-file {} line {}: {e}", path.display(), n + 1),
        }
    }
    Ok(out)
}

/// A size as Docker's RAMInBytes takes it: `1024`, `512k`, `64m`, `1.5g`,
/// `2gb` (binary units, any case).
pub fn parse_bytes(flag: &str, v: &str) -> Result<i64> {
    let bad = || anyhow::anyhow!("invalid {flag} {v:?}: expected a size like 512m or 1g");
    let lower = v.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if unit.len() > 2 || !num.is_finite() || num < 0.0 {
        return Err(bad());
    }
    let n = num * mult;
    if n > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(n as i64)
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
pub fn parse_swap(v: &str) -> Result<i64> {
    if v.trim() == "-1" {
        return Ok(-1);
    }
    parse_bytes("--memory-swap", v)
}

/// `--cpus 1.5`.
pub fn parse_cpus(v: &str) -> Result<f64> {
    let c: f64 = v
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid --cpus {v:?}: expected a number like 0.5"))?;
    if !c.is_finite() || c <= 0.0 {
        bail!("invalid --cpus {v:?}: must be above zero");
    }
    Ok(c)
}

/// One `--device`: the host's node, the node to make in the container
/// (type, numbers and mode of the host's) and the device-cgroup rule that
/// lets it be used.
pub struct DeviceFlag {
    pub host: PathBuf,
    pub node: oci_spec::runtime::LinuxDevice,
    pub rule: oci_spec::runtime::LinuxDeviceCgroup,
}

impl DeviceFlag {
    /// In a user namespace no node can be made: the host's is bound instead
    /// (podman's way), from the host path given, whatever the container
    /// path is.
    pub fn bind_mount(&self) -> Result<Mount> {
        Ok(MountBuilder::default()
            .typ("bind")
            .source(&self.host)
            .destination(self.node.path())
            .options(vec!["bind".to_string(), "nosuid".into(), "noexec".into()])
            .build()?)
    }
}

/// `--device HOST[:CONTAINER][:PERMS]`, as Docker reads it; PERMS
/// defaults to rwm.
pub fn parse_device(spec: &str) -> Result<DeviceFlag> {
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let bad = |why: &str| anyhow::anyhow!("invalid --device {spec:?}: {why}");
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, perms) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, p] if perms_ok(p) => (h, h, p),
        [h, c] => (h, c, "rwm"),
        [h, c, p] if perms_ok(p) => (h, c, p),
        [_, _, _] => return Err(bad("permissions are a combination of r, w and m")),
        _ => return Err(bad("expected HOST[:CONTAINER][:PERMS]")),
    };
    if !Path::new(host).is_absolute() || !Path::new(container).is_absolute() {
        return Err(bad("device paths must be absolute"));
    }
    if Path::new(container)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(bad("the container path must not contain .."));
    }
    let meta = std::fs::metadata(host).map_err(|e| {
        let msg = e.to_string();
        bad(msg.split(" (os error").next().unwrap_or(&msg))
    })?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(bad("not a device node"));
    };
    let (major, minor) = (
        libc::major(meta.rdev()) as i64,
        libc::minor(meta.rdev()) as i64,
    );
    let device = LinuxDeviceBuilder::default()
        .path(container)
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(meta.mode() & 0o777)
        .uid(0u32)
        .gid(0u32)
        .build()?;
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(perms)
        .build()?;
    Ok(DeviceFlag {
        host: PathBuf::from(host),
        node: device,
        rule,
    })
}

/// `--ulimit nofile=1024:2048` (soft[:hard]; `unlimited` or -1 for no limit).
pub fn parse_ulimit(spec: &str) -> Result<oci_spec::runtime::PosixRlimit> {
    let bad = |why: &str| anyhow::anyhow!("invalid ulimit {spec:?}: {why}");
    let (name, vals) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]"))?;
    let known = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if !known.contains(&name) {
        return Err(bad(&format!("unknown limit {name:?}")));
    }
    let num = |s: &str| -> Result<u64> {
        match s {
            "unlimited" | "-1" => Ok(libc::RLIM_INFINITY),
            s => s
                .parse::<u64>()
                .map_err(|_| bad(&format!("{s:?} is not a number"))),
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(bad(&format!(
            "soft limit {soft} is above hard limit {hard}"
        )));
    }
    let typ: oci_spec::runtime::PosixRlimitType = serde_json::from_value(
        serde_json::Value::String(format!("RLIMIT_{}", name.to_ascii_uppercase())),
    )
    .map_err(|_| bad(&format!("unknown limit {name:?}")))?;
    Ok(oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()?)
}

/// Refuse, before anything starts, a hard limit above the current one when
/// berth cannot raise it (no CAP_SYS_RESOURCE, as for root on some hosts).
pub fn check_ulimit(spec: &str, rl: &oci_spec::runtime::PosixRlimit) -> Result<()> {
    let name = spec.split('=').next().unwrap_or(spec);
    let resource = match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        _ => libc::RLIMIT_STACK,
    };
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(resource, &mut cur) } != 0 {
        return Ok(());
    }
    if rl.hard() > cur.rlim_max && !has_cap_sys_resource() {
        let show = |v: u64| {
            if v == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        bail!(
            "ulimit {spec}: hard limit {} is above this host's {} and berth lacks CAP_SYS_RESOURCE to raise it; ask for at most {name}={}",
            show(rl.hard()),
            show(cur.rlim_max),
            show(cur.rlim_max)
        );
    }
    Ok(())
}

fn has_cap_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|eff| eff & (1 << 24) != 0) // CAP_SYS_RESOURCE
}

/// `linux.cgroupsPath` for container `id`: `/berth/<id>` by default; under
/// `--cgroup-parent`, `/PARENT/<id>`, or systemd's `PARENT:berth:<id>` when
/// the parent is a slice.
pub fn cgroups_path(parent: Option<&str>, id: &str) -> Result<String> {
    match parent.map(str::trim) {
        None | Some("") => Ok(format!("/berth/{id}")),
        Some(p) if p.ends_with(".slice") => {
            if p.contains('/') {
                bail!("invalid --cgroup-parent {p:?}: a systemd slice is a name, not a path");
            }
            Ok(format!("{p}:berth:{id}"))
        }
        Some(p) => {
            if p.split('/').any(|c| c == "..") {
                bail!("invalid --cgroup-parent {p:?}: must not contain ..");
            }
            Ok(format!("/{}/{id}", p.trim_matches('/')))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_parse_like_docker() {
        use oci_spec::runtime::LinuxDeviceType;
        let p = |s: &str| {
            let super::DeviceFlag {
                host,
                node: d,
                rule: r,
            } = super::parse_device(s).unwrap();
            assert_eq!(host, std::path::Path::new("/dev/null"));
            (
                d.path().display().to_string(),
                d.typ(),
                d.major(),
                d.minor(),
                r.access().clone().unwrap(),
                r.allow(),
            )
        };
        let null = |path: &str, perms: &str| {
            (
                path.to_string(),
                LinuxDeviceType::C,
                1,
                3,
                perms.to_string(),
                true,
            )
        };
        assert_eq!(p("/dev/null"), null("/dev/null", "rwm"));
        assert_eq!(p("/dev/null:r"), null("/dev/null", "r"));
        assert_eq!(p("/dev/null:/dev/x"), null("/dev/x", "rwm"));
        assert_eq!(p("/dev/null:/dev/x:rw"), null("/dev/x", "rw"));
        for bad in [
            "",
            "/etc/hostname",
            "/dev/null:/dev/x:q",
            "/a:/b:c:d",
            "null",
        ] {
            assert!(super::parse_device(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_parse_like_docker() {
        use super::parse_bytes as p;
        assert_eq!(p("-m", "1024").unwrap(), 1024);
        assert_eq!(p("-m", "32m").unwrap(), 32 << 20);
        assert_eq!(p("-m", "32MB").unwrap(), 32 << 20);
        assert_eq!(p("-m", "1.5g").unwrap(), 3 << 29);
        assert_eq!(p("-m", "4k").unwrap(), 4096);
        for bad in ["", "m", "12x", "-5m", "1..2m", "3mbb"] {
            assert!(p("-m", bad).is_err(), "{bad}");
        }
        assert_eq!(super::parse_swap("-1").unwrap(), -1);
        assert!(super::parse_cpus("0").is_err() && super::parse_cpus("x").is_err());
        assert_eq!(super::parse_cpus("0.5").unwrap(), 0.5);
    }

    #[test]
    fn ulimits_parse_and_check() {
        let r = super::parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((r.soft(), r.hard()), (1024, 2048));
        let r = super::parse_ulimit("nproc=50").unwrap();
        assert_eq!((r.soft(), r.hard()), (50, 50));
        assert!(super::parse_ulimit("nofile=10:5").is_err());
        assert!(super::parse_ulimit("bogus=1").is_err());
        assert!(super::parse_ulimit("nofile").is_err());
        // Lowering is always possible.
        super::check_ulimit("nofile=64", &super::parse_ulimit("nofile=64").unwrap()).unwrap();
    }

    #[test]
    fn cgroup_paths() {
        use super::cgroups_path as c;
        assert_eq!(c(None, "abc").unwrap(), "/berth/abc");
        assert_eq!(c(Some("/ci/jobs/"), "abc").unwrap(), "/ci/jobs/abc");
        assert_eq!(
            c(Some("user-1000.slice"), "abc").unwrap(),
            "user-1000.slice:berth:abc"
        );
        assert!(c(Some("../../x"), "abc").is_err());
    }

    use super::*;

    #[test]
    fn volume_syntax() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("new");
        let m = parse_volume(&format!("{}:/data:ro", src.display())).unwrap();
        assert!(src.is_dir(), "missing host dir is created like Docker");
        assert_eq!(m.destination(), Path::new("/data"));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(
            parse_volume("rel:/data")
                .unwrap_err()
                .to_string()
                .contains("named volumes")
        );
        assert!(
            parse_volume("/a:data")
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        assert!(
            parse_volume("/a:/b:bogus")
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
        assert!(parse_volume("/a").is_err());
    }

    #[test]
    fn mount_syntax() {
        let m = parse_mount("type=bind,source=/tmp,target=/t,readonly").unwrap();
        assert_eq!(m.typ().as_deref(), Some("bind"));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        let t = parse_mount("type=tmpfs,target=/scratch,tmpfs-size=1m").unwrap();
        assert!(
            t.options()
                .as_ref()
                .unwrap()
                .contains(&"size=1m".to_string())
        );
        let e = parse_mount("type=bind,source=/nonexistent-x,target=/t").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(parse_mount("type=bind,source=/tmp").is_err());
        assert!(
            parse_mount("type=nfs,target=/x")
                .unwrap_err()
                .to_string()
                .contains("nfs")
        );
    }

    #[test]
    fn env_syntax() {
        assert_eq!(parse_env("A=b=c").unwrap().as_deref(), Some("A=b=c"));
        assert!(parse_env("=x").is_err());
        assert_eq!(parse_env("BERTH_T_UNSET_VAR").unwrap(), None);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("e");
        std::fs::write(&f, "# c\n\nX=1\nY=two words\n").unwrap();
        assert_eq!(read_env_file(&f).unwrap(), vec!["X=1", "Y=two words"]);
        std::fs::write(&f, "ok=1\nbad name=2\n").unwrap();
        let e = read_env_file(&f).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
