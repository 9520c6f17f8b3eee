//! Docker's `run` flag syntaxes turned into the engine's [`RunRequest`]:
//! `-v HOST:CTR[:OPTS]`, `--mount type=bind|tmpfs,...`, `--tmpfs`,
//! `--env-file`, sizes, devices, ulimits. What depends on the host (a
//! cgroup to make, a capability berth holds, a subordinate id range) is
//! the engine's to check.
//!
//! Mounts are checked up front, each refusal naming the flag as given
//! (`-v /x:/proc: cannot mount over /proc`): modes as Docker's parser
//! takes them (one of rw/ro, one propagation, one of z/Z), destinations as
//! runc's `checkProcMount` allows them, and no two on one point.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use berth_engine::{Device, IoLimits, Userns};
use oci_spec::runtime::{Mount, MountBuilder};

use crate::cli::RunArgs;

/// `--userns host|remap|remap:USER`.
pub fn parse_userns(flag: &str) -> Result<Userns> {
    match flag {
        "" | "host" => Ok(Userns::Host),
        "remap" => Ok(Userns::Remap { user: None }),
        f => f
            .strip_prefix("remap:")
            .filter(|u| !u.is_empty())
            .map(|u| Userns::Remap {
                user: Some(u.to_string()),
            })
            .ok_or_else(|| anyhow!("invalid --userns {f:?}: use host, remap or remap:USER")),
    }
}

fn mount(kind: &str, source: &str, dest: &str, options: Vec<String>) -> Result<Mount> {
    MountBuilder::default()
        .typ(kind)
        .source(PathBuf::from(source))
        .destination(PathBuf::from(dest))
        .options(options)
        .build()
        .with_context(|| format!("mount {dest}"))
}

/// What may be mounted inside /proc: runc's list (files lxcfs emulates).
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// Mount points berth makes itself, whose masks, device nodes and
/// terminals a mount on top would silently undo or break. (runc allows
/// /proc only for a proc source, which these flags cannot give.)
const OWN_MOUNTS: &[&str] = &["/proc", "/sys", "/dev", "/dev/pts"];

/// A container path made canonical (`//`, `.` and a trailing `/` go), or
/// why it cannot be a mount point.
fn target(dest: &str) -> Result<String> {
    if !dest.starts_with('/') {
        bail!("container path must be absolute");
    }
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        bail!("container path must not contain ..");
    }
    let clean = format!("/{}", parts.join("/"));
    if clean == "/" || OWN_MOUNTS.contains(&clean.as_str()) {
        bail!("cannot mount over {clean}");
    }
    if clean.starts_with("/proc/") && !PROC_ALLOWED.contains(&clean.as_str()) {
        bail!(
            "cannot mount inside /proc (only {})",
            PROC_ALLOWED.join(", ")
        );
    }
    Ok(clean)
}

/// A `-v` option's class: at most one of each, as Docker's parser allows.
fn mode_class(o: &str) -> Option<&'static str> {
    match o {
        "ro" | "rw" => Some("access"),
        "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => Some("propagation"),
        "z" | "Z" => Some("label"),
        _ => None,
    }
}

/// One mount flag, checked: the mount, and a `-v` host directory to make
/// once every flag has passed.
struct Parsed {
    mount: Mount,
    create: Option<String>,
}

/// `-v /host:/ctr[:ro|rw,...]`.
fn volume(spec: &str) -> Result<Parsed> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => bail!("expected HOST:CONTAINER[:OPTIONS]"),
    };
    if !src.starts_with('/') {
        bail!("named volumes are not supported yet, give an absolute host path");
    }
    let dst = target(dst)?;
    let mut options = vec!["rbind".to_string()];
    let mut seen = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let class = mode_class(o).ok_or_else(|| anyhow!("unknown option: {o}"))?;
        if seen.contains(&class) {
            bail!("invalid mode: {opts}");
        }
        seen.push(class);
        if class != "label" {
            options.push(o.to_string()); // z/Z relabel: nothing to do without SELinux
        }
    }
    // Like Docker, a missing host directory is created (after all checks).
    let create = (!Path::new(src).exists()).then(|| src.to_string());
    Ok(Parsed {
        mount: mount("bind", src, &dst, options)?,
        create,
    })
}

/// `--mount type=bind,source=/a,target=/b,readonly` and `type=tmpfs,target=/t,tmpfs-size=1m`.
fn mount_flag(spec: &str) -> Result<Parsed> {
    let mut kind = None;
    let mut src = None;
    let mut dst = None;
    let mut ro = false;
    let mut propagation = None;
    let mut tmpfs = Vec::new();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = Some(v.to_string()),
            "source" | "src" => src = Some(v.to_string()),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => {
                ro = match v {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid value for {k}: {v}"),
                }
            }
            "tmpfs-size" => tmpfs.push(("tmpfs-size", format!("size={v}"))),
            "tmpfs-mode" => tmpfs.push(("tmpfs-mode", format!("mode={v}"))),
            "bind-propagation" if mode_class(v) == Some("propagation") => {
                propagation = Some(v.to_string())
            }
            "bind-propagation" => bail!("unknown bind-propagation: {v}"),
            _ => bail!("unknown field {k:?}"),
        }
    }
    let dst = target(&dst.context("target is required")?)?;
    match kind.as_deref() {
        Some("bind") => {
            if let Some((k, _)) = tmpfs.first() {
                bail!("{k} is for type=tmpfs");
            }
            let src = src.context("source is required")?;
            if !src.starts_with('/') {
                bail!("source must be an absolute path");
            }
            if !Path::new(&src).exists() {
                bail!("bind source path does not exist: {src}");
            }
            let mut o = vec!["rbind".to_string()];
            o.push(if ro { "ro" } else { "rw" }.into());
            o.extend(propagation);
            Ok(Parsed {
                mount: mount("bind", &src, &dst, o)?,
                create: None,
            })
        }
        Some("tmpfs") => {
            if src.is_some() || propagation.is_some() {
                bail!("type=tmpfs takes no source or bind-propagation");
            }
            let mut o = vec!["nosuid".to_string(), "nodev".into()];
            if ro {
                o.push("ro".into());
            }
            o.extend(tmpfs.into_iter().map(|(_, v)| v));
            Ok(Parsed {
                mount: mount("tmpfs", "tmpfs", &dst, o)?,
                create: None,
            })
        }
        Some("volume") => bail!("named volumes are not supported yet"),
        Some(t) => bail!("unknown type {t:?} (bind or tmpfs)"),
        None => bail!("type is required"),
    }
}

/// tmpfs options as mount(8) takes them; anything else would fail only
/// when the container's mounts are made, with the kernel's EINVAL.
fn tmpfs_option_ok(o: &str) -> bool {
    const FLAGS: &[&str] = &[
        "rw",
        "ro",
        "exec",
        "noexec",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "atime",
        "noatime",
        "relatime",
        "norelatime",
        "strictatime",
        "diratime",
        "nodiratime",
        "sync",
        "async",
        "dirsync",
    ];
    const KEYS: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
        "huge",
    ];
    match o.split_once('=') {
        Some((k, v)) => KEYS.contains(&k) && !v.is_empty(),
        None => FLAGS.contains(&o),
    }
}

/// `--tmpfs /run[:size=64m,mode=1777]`; Docker's defaults are noexec,nosuid,nodev.
fn tmpfs(spec: &str) -> Result<Parsed> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let dst = target(dst)?;
    let mut o: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    for opt in opts.split(',').filter(|s| !s.is_empty()) {
        if !tmpfs_option_ok(opt) {
            bail!("unknown option: {opt}");
        }
        o.push(opt.to_string());
    }
    Ok(Parsed {
        mount: mount("tmpfs", "tmpfs", &dst, o)?,
        create: None,
    })
}

/// Every `-v`, `--mount` and `--tmpfs`, in that order, checked together
/// before anything is made: a refusal names the flag as given and leaves
/// nothing behind; only then are missing `-v` host directories created.
pub fn parse_mounts(
    volumes: &[String],
    mounts: &[String],
    tmpfs_flags: &[String],
) -> Result<Vec<Mount>> {
    type Parse = fn(&str) -> Result<Parsed>;
    let flags = [
        ("-v", volumes, volume as Parse),
        ("--mount", mounts, mount_flag),
        ("--tmpfs", tmpfs_flags, tmpfs),
    ];
    let mut parsed: Vec<Parsed> = Vec::new();
    for (flag, values, parse) in flags {
        for spec in values {
            let p = parse(spec).with_context(|| format!("{flag} {spec}"))?;
            let dst = p.mount.destination();
            if parsed.iter().any(|q| q.mount.destination() == dst) {
                bail!("{flag} {spec}: duplicate mount point: {}", dst.display());
            }
            parsed.push(p);
        }
    }
    for src in parsed.iter().filter_map(|p| p.create.as_deref()) {
        std::fs::create_dir_all(src).with_context(|| format!("create volume source {src}"))?;
    }
    Ok(parsed.into_iter().map(|p| p.mount).collect())
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
    let mut out = Vec::new();
    for_each_line(path, "--env-file", |line| {
        out.extend(parse_env(line)?);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` on each line of the file that says something (not blank, not
/// a `#` comment), leading blanks trimmed; an error names `flag`, the file
/// and the line.
fn for_each_line(path: &Path, flag: &str, mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let text = berth_io::read_capped_string(path, berth_io::MIB, flag)?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Err(e) = f(line) {
            bail!("{flag} {} line {}: {e}", path.display(), n + 1);
        }
    }
    Ok(())
}

/// `--label KEY=VALUE` (or `KEY`: an empty value), as Docker takes it.
pub fn parse_label(l: &str) -> Result<(String, String)> {
    let (k, v) = l.split_once('=').unwrap_or((l, ""));
    if k.trim().is_empty() {
        bail!("invalid label {l:?}: empty name");
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--label-file`: one label a line, `#` comments and blank lines skipped.
pub fn read_label_file(path: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for_each_line(path, "--label-file", |line| {
        out.push(parse_label(line)?);
        Ok(())
    })?;
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

/// `--device HOST[:CONTAINER][:PERMS]`, as Docker reads it; PERMS
/// defaults to rwm.
pub fn parse_device(spec: &str) -> Result<Device> {
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
    Ok(Device {
        host: PathBuf::from(host),
        node: device,
        rule,
    })
}

/// Docker's block IO flags: weight as given (checked with the other
/// limits), each `PATH:RATE` as the block device's numbers.
pub fn io_limits(args: &RunArgs) -> Result<IoLimits> {
    let rates = |flag: &str, specs: &[String], bytes: bool| {
        specs
            .iter()
            .map(|s| parse_device_rate(flag, s, bytes))
            .collect::<Result<Vec<_>>>()
    };
    Ok(IoLimits {
        weight: args.blkio_weight,
        read_bps: rates("--device-read-bps", &args.device_read_bps, true)?,
        write_bps: rates("--device-write-bps", &args.device_write_bps, true)?,
        read_iops: rates("--device-read-iops", &args.device_read_iops, false)?,
        write_iops: rates("--device-write-iops", &args.device_write_iops, false)?,
    })
}

/// `/dev/sda:1mb` (a size, with `bytes`) or `/dev/sda:100`: the block
/// device's (major, minor) and the rate.
pub fn parse_device_rate(flag: &str, spec: &str, bytes: bool) -> Result<(i64, i64, u64)> {
    let bad = |why: &str| anyhow::anyhow!("invalid {flag} {spec:?}: {why}");
    let (path, rate) = spec
        .rsplit_once(':')
        .ok_or_else(|| bad("expected PATH:RATE"))?;
    let rate = if bytes {
        parse_bytes(flag, rate)? as u64
    } else {
        rate.parse::<u64>()
            .map_err(|_| bad(&format!("{rate:?} is not a number")))?
    };
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| {
        let msg = e.to_string();
        bad(&format!(
            "{path}: {}",
            msg.split(" (os error").next().unwrap_or(&msg)
        ))
    })?;
    if !meta.file_type().is_block_device() {
        return Err(bad(&format!("{path} is not a block device")));
    }
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    Ok((i64::from(major), i64::from(minor), rate))
}

/// `--ulimit nofile=1024:2048` (soft[:hard]; `unlimited` or -1 for no limit).
pub fn parse_ulimit(spec: &str) -> Result<oci_spec::runtime::PosixRlimit> {
    let bad = |why: &str| anyhow::anyhow!("invalid ulimit {spec:?}: {why}");
    let (name, vals) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]"))?;
    let limit = berth_linux::rlimit::by_docker_name(name)
        .ok_or_else(|| bad(&format!("unknown limit {name:?}")))?;
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
    let typ: oci_spec::runtime::PosixRlimitType =
        serde_json::from_value(serde_json::Value::String(limit.oci.to_string()))
            .map_err(|_| bad(&format!("unknown limit {name:?}")))?;
    Ok(oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_parse_like_docker() {
        use super::parse_label as p;
        assert_eq!(p("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(p("flag").unwrap(), ("flag".into(), String::new()));
        assert_eq!(p("k=").unwrap(), ("k".into(), String::new()));
        assert!(p("=v").is_err() && p("").is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "# comment\n\n  a=1\nb\n=bad\n").unwrap();
        let e = super::read_label_file(f.path()).unwrap_err().to_string();
        assert!(e.contains("line 5"), "{e}");
        std::fs::write(f.path(), "# comment\n\n  a=1\nb\n").unwrap();
        let got = super::read_label_file(f.path()).unwrap();
        assert_eq!(got, [("a".into(), "1".into()), ("b".into(), String::new())]);
    }

    #[test]
    fn devices_parse_like_docker() {
        use oci_spec::runtime::LinuxDeviceType;
        let p = |s: &str| {
            let berth_engine::Device {
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
    fn ulimits_parse() {
        let r = super::parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((r.soft(), r.hard()), (1024, 2048));
        let r = super::parse_ulimit("nproc=50").unwrap();
        assert_eq!((r.soft(), r.hard()), (50, 50));
        assert!(super::parse_ulimit("nofile=10:5").is_err());
        assert!(super::parse_ulimit("bogus=1").is_err());
        assert!(super::parse_ulimit("nofile").is_err());
    }

    use super::*;

    /// The error of a refused set of flags, as berth prints it.
    fn refusal(v: &[&str], m: &[&str], t: &[&str]) -> String {
        let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        format!("{:#}", parse_mounts(&s(v), &s(m), &s(t)).unwrap_err())
    }

    fn one(v: &[&str], m: &[&str], t: &[&str]) -> Mount {
        let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        parse_mounts(&s(v), &s(m), &s(t)).unwrap().remove(0)
    }

    #[test]
    fn volume_syntax() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("new");
        let m = one(
            &[&format!("{}:/data/:ro,rslave,Z", src.display())],
            &[],
            &[],
        );
        assert!(src.is_dir(), "missing host dir is created like Docker");
        assert_eq!(m.destination(), Path::new("/data"));
        assert_eq!(m.options().as_ref().unwrap(), &["rbind", "ro", "rslave"]);
        assert!(refusal(&["rel:/data"], &[], &[]).contains("named volumes"));
        for (spec, problem) in [
            ("/a:data", "container path must be absolute"),
            ("/a:/b/../c", "container path must not contain .."),
            ("/a:/.", "cannot mount over /"),
            ("/a:/b:bogus", "unknown option: bogus"),
            ("/a:/b:rw,ro", "invalid mode: rw,ro"),
            ("/a:/b:z,Z", "invalid mode: z,Z"),
            ("/a:/b:private,shared", "invalid mode: private,shared"),
            ("/a:/proc", "cannot mount over /proc"),
            (
                "/a:/proc/sys/kernel",
                "cannot mount inside /proc (only /proc/cpuinfo",
            ),
            ("/a:/proc/self/../1", "container path must not contain .."),
            ("/a:/sys/", "cannot mount over /sys"),
            ("/a://dev", "cannot mount over /dev"),
            ("/a:/dev/./pts", "cannot mount over /dev/pts"),
            ("/a", "expected HOST:CONTAINER[:OPTIONS]"),
        ] {
            assert!(
                refusal(&[spec], &[], &[]).starts_with(&format!("-v {spec}: {problem}")),
                "{spec}: {}",
                refusal(&[spec], &[], &[])
            );
        }
        // runc's list of files inside /proc that may be replaced.
        let m = one(&["/a:/proc/meminfo:ro"], &[], &[]);
        assert_eq!(m.destination(), Path::new("/proc/meminfo"));
    }

    #[test]
    fn mount_syntax() {
        let m = one(&[], &["type=bind,source=/tmp,target=/t,readonly"], &[]);
        assert_eq!(m.typ().as_deref(), Some("bind"));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        let m = one(
            &[],
            &["type=bind,src=/tmp,dst=/t,bind-propagation=rshared"],
            &[],
        );
        assert_eq!(m.options().as_ref().unwrap(), &["rbind", "rw", "rshared"]);
        let t = one(&[], &["type=tmpfs,target=/scratch,tmpfs-size=1m"], &[]);
        assert!(
            t.options()
                .as_ref()
                .unwrap()
                .contains(&"size=1m".to_string())
        );
        for (spec, problem) in [
            (
                "type=bind,source=/nonexistent-x,target=/t",
                "does not exist",
            ),
            ("type=bind,source=/tmp", "target is required"),
            ("type=nfs,target=/x", "unknown type \"nfs\""),
            ("type=bind,src=/tmp,dst=/dev", "cannot mount over /dev"),
            ("type=tmpfs,dst=/proc/", "cannot mount over /proc"),
            (
                "type=bind,src=/tmp,dst=/x,bind-propagation=odd",
                "unknown bind-propagation: odd",
            ),
            (
                "type=bind,src=/tmp,dst=/x,tmpfs-mode=1777",
                "tmpfs-mode is for type=tmpfs",
            ),
            ("type=tmpfs,src=/tmp,dst=/x", "type=tmpfs takes no source"),
            (
                "type=bind,src=/tmp,dst=/x,readonly=yes",
                "invalid value for readonly: yes",
            ),
        ] {
            let e = refusal(&[], &[spec], &[]);
            assert!(e.starts_with(&format!("--mount {spec}: ")), "{e}");
            assert!(e.contains(problem), "{e}");
        }
    }

    #[test]
    fn tmpfs_syntax_and_duplicate_mount_points() {
        let t = one(&[], &[], &["/run:size=64m,mode=1777,uid=1"]);
        assert_eq!(
            t.options().as_ref().unwrap(),
            &[
                "noexec",
                "nosuid",
                "nodev",
                "size=64m",
                "mode=1777",
                "uid=1"
            ]
        );
        assert_eq!(
            refusal(&[], &[], &["/t:size=1m,bogus"]),
            "--tmpfs /t:size=1m,bogus: unknown option: bogus"
        );
        assert_eq!(
            refusal(&[], &[], &["/dev/pts"]),
            "--tmpfs /dev/pts: cannot mount over /dev/pts"
        );
        // The same point however it is spelt, across flags; the later flag
        // is named, and no host dir is made for a refused set.
        let d = tempfile::tempdir().unwrap();
        let fresh = d.path().join("fresh");
        let v = format!("{}:/data", fresh.display());
        assert_eq!(
            refusal(&[&v, "/b:/data/"], &[], &[]),
            "-v /b:/data/: duplicate mount point: /data"
        );
        assert_eq!(
            refusal(&[&v], &["type=tmpfs,dst=//data/."], &[]),
            "--mount type=tmpfs,dst=//data/.: duplicate mount point: /data"
        );
        assert_eq!(
            refusal(&[&v], &[], &["/data"]),
            "--tmpfs /data: duplicate mount point: /data"
        );
        assert!(!fresh.exists());
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
