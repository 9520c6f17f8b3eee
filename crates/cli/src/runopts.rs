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
    let text =
        std::fs::read_to_string(path).with_context(|| format!("env file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_env(line) {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(e) => bail!("env file {} line {}: {e}", path.display(), n + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
