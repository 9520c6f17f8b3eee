//! RUN's flags: `--network`, `--security` and the `--mount`s, as
//! BuildKit reads them, carried out with what `berth run` already mounts
//! (binds and tmpfs in the step's [`RunRequest`]), never a mount of the
//! runtime's own.
//!
//! - `type=cache`: a directory under `ROOT/build-cache-mounts`, named by
//!   the sha256 of its id, bound read-write; neither in the layer nor in
//!   the key (as BuildKit). `sharing=locked` holds an flock on it for the
//!   step; `private` takes it when no other build holds it, else a fresh
//!   directory of its own for the step; `shared` takes no lock.
//!   `builder prune` removes them. A `uid`/`gid` other than root's
//!   needs root, or a rootless berth with a subordinate id range.
//! - `type=tmpfs`: a tmpfs (`size=`).
//! - `type=bind`: the source is copied by the safe walks (the context's
//!   [`walk`], or `cp` in a stage's or an image's root) into a fresh
//!   directory under the engine's root, bound read-only (read-write with
//!   `rw`, writes dropped with it after the step). Nothing is reached by
//!   a host path joined from the Dockerfile's words, so a context symlink
//!   to `/etc` is resolved inside the context (and found missing). Its
//!   content is part of the key, as BuildKit keys a bind's source.
//! - `type=secret`: a 0400 copy of `--secret`'s value, bound read-only
//!   (or its value in `env=`'s variable), for the step alone; its value is
//!   never in the key, so a changed secret does not rebuild (as BuildKit).
//! - `type=ssh`: refused.
//!
//! The mount points the runtime had to make (a target the image lacks)
//! are taken out of the upper dir before the commit when they are still
//! empty, with their parents made for them (left: a parent that also
//! holds the step's own changes, and the mode/owner of such a parent).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use oci_spec::runtime::{Mount, MountBuilder};
use rustix::fs::{Mode, OFlags};

use super::super::SecretSource;
use super::super::copy::{self, Meta, TempDir};
use super::super::dockerfile::Instruction;
use super::super::state::State;
use super::super::walk;
use super::Builder;
use crate::request::Network;

/// One `--mount`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::build) struct Spec {
    kind: Kind,
    /// Absolute, in the container.
    target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Cache {
        id: String,
        sharing: Sharing,
        mode: u32,
        owner: (u32, u32),
    },
    Tmpfs {
        size: Option<String>,
    },
    Bind {
        source: String,
        from: Option<String>,
        rw: bool,
    },
    Secret {
        id: String,
        required: bool,
        mode: u32,
        owner: (u32, u32),
        env: Option<String>,
        /// Whether it is mounted as a file (else only in `env`).
        file: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A bind's source, resolved for the key.
enum Source {
    Context(Vec<String>, HashMap<String, walk::Known>),
    Image(berth_image::ImageRecord, String),
}

/// A RUN's flags, read and keyed; prepared only on a cache miss.
pub(super) struct Plan {
    specs: Vec<(Spec, Option<Source>)>,
    pub(super) network: Network,
    /// What the key takes of the flags: their text as written, and each
    /// bind's content.
    pub(super) key: String,
}

/// What a step's mounts hold while it runs; dropped after it.
#[derive(Default)]
pub(super) struct Prepared {
    pub(super) mounts: Vec<Mount>,
    pub(super) env: Vec<String>,
    /// The targets, to take their mount points out of the upper dir.
    pub(super) targets: Vec<String>,
    _dirs: Vec<TempDir>,
    _locks: Vec<std::fs::File>,
}

/// The `--mount` stages `inst` reads from (`from=`), for the stages a
/// target needs.
pub(in crate::build) fn froms(inst: &Instruction) -> Vec<String> {
    if inst.keyword != "RUN" {
        return Vec::new();
    }
    inst.flags
        .iter()
        .filter(|(k, _)| k == "mount")
        .filter_map(|(_, v)| parse(v, "/").ok())
        .filter_map(|s| match s.kind {
            Kind::Bind { from, .. } => from,
            _ => None,
        })
        .collect()
}

/// `--mount`'s value: comma-separated `key=value`s (a bare key is
/// `true`), relative targets under `workdir`.
pub(in crate::build) fn parse(v: &str, workdir: &str) -> Result<Spec> {
    let mut f: Vec<(String, String)> = Vec::new();
    for field in v.split(',').filter(|f| !f.is_empty()) {
        let (k, val) = field.split_once('=').unwrap_or((field, "true"));
        let k = match k.to_ascii_lowercase().as_str() {
            "dst" | "destination" => "target".to_string(),
            "src" => "source".to_string(),
            "readwrite" => "rw".to_string(),
            k => k.to_string(),
        };
        f.push((k, val.to_string()));
    }
    let get = |k: &str| f.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let kind = get("type").unwrap_or_else(|| "bind".into());
    let allowed: &[&str] = match kind.as_str() {
        "cache" => &[
            "type", "target", "id", "sharing", "mode", "uid", "gid", "from", "source", "ro",
            "readonly",
        ],
        "tmpfs" => &["type", "target", "size"],
        "bind" => &["type", "target", "source", "from", "rw", "ro", "readonly"],
        "secret" => &[
            "type", "target", "id", "required", "mode", "uid", "gid", "env",
        ],
        "ssh" => bail!("RUN --mount=type=ssh is not supported by berth build"),
        t => bail!("unsupported mount type {t:?}"),
    };
    if let Some((k, _)) = f.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        bail!("unexpected key '{k}' in '{v}'");
    }
    let flag = |k: &str| -> Result<bool> {
        match get(k).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(x) => bail!("invalid value for {k}: {x}"),
        }
    };
    let num = |k: &str, radix: u32, default: u32| -> Result<u32> {
        get(k).map_or(Ok(default), |x| {
            u32::from_str_radix(&x, radix).map_err(|_| anyhow!("invalid value for {k}: {x}"))
        })
    };
    let owner = (num("uid", 10, 0)?, num("gid", 10, 0)?);
    let target = get("target");
    let (kind, target) = match kind.as_str() {
        "cache" => {
            if get("from").is_some() || get("source").is_some() {
                bail!("a cache mount with from= or source= is not supported by berth build");
            }
            if flag("ro")? || flag("readonly")? {
                bail!("a read-only cache mount is not supported by berth build");
            }
            let target = target.context("mount target is required")?;
            let sharing = match get("sharing").as_deref() {
                None | Some("shared") => Sharing::Shared,
                Some("private") => Sharing::Private,
                Some("locked") => Sharing::Locked,
                Some(x) => bail!("unsupported sharing value {x:?}"),
            };
            let id = get("id").unwrap_or_else(|| target.clone());
            let mode = num("mode", 8, 0o755)?;
            (
                Kind::Cache {
                    id,
                    sharing,
                    mode,
                    owner,
                },
                target,
            )
        }
        "tmpfs" => (
            Kind::Tmpfs { size: get("size") },
            target.context("mount target is required")?,
        ),
        "bind" => {
            let rw = flag("rw")? && !(flag("ro")? || flag("readonly")?);
            let source = get("source").unwrap_or_default();
            let from = get("from");
            (
                Kind::Bind { source, from, rw },
                target.context("mount target is required")?,
            )
        }
        _ => {
            let id = get("id")
                .or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(String::from)
                })
                .filter(|i| !i.is_empty())
                .context("secret id is required")?;
            let env = get("env");
            let file = target.is_some() || env.is_none();
            let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
            let required = flag("required")?;
            let mode = num("mode", 8, 0o400)?;
            (
                Kind::Secret {
                    id,
                    required,
                    mode,
                    owner,
                    env,
                    file,
                },
                target,
            )
        }
    };
    let target = if target.starts_with('/') {
        target
    } else {
        format!("{}/{target}", workdir.trim_end_matches('/'))
    };
    let target = format!(
        "/{}",
        crate::cp::in_root(&target).strip_prefix(".")?.display()
    );
    if target == "/" {
        bail!("a mount on / is not supported");
    }
    Ok(Spec { kind, target })
}

impl Builder<'_> {
    /// `inst`'s flags read, in stage `stage` (whose earlier stages a bind
    /// may read), each bind's source resolved and keyed.
    pub(super) fn plan(&mut self, st: &State, inst: &Instruction, stage: usize) -> Result<Plan> {
        let network = match inst.flag("network") {
            None | Some("default") => self.req.network.clone(),
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(n) => bail!("unsupported RUN --network={n}: default, none or host"),
        };
        match inst.flag("security") {
            None | Some("sandbox") => {}
            Some("insecure") => bail!(
                "RUN --security=insecure is not supported by berth build (it needs the security.insecure entitlement)"
            ),
            Some(s) => bail!("unsupported RUN --security={s}: sandbox or insecure"),
        }
        let vars = st.vars();
        let workdir = st
            .get("WorkingDir")
            .and_then(serde_json::Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let mut specs = Vec::new();
        let mut key = Vec::new();
        for (k, v) in &inst.flags {
            key.push(format!("--{k}={v}"));
            if k != "mount" {
                continue;
            }
            let v = crate::instructions::substitute(v, &vars)?;
            let spec = parse(&v, &workdir).with_context(|| format!("--mount={v}"))?;
            if specs
                .iter()
                .any(|(s, _): &(Spec, _)| s.target == spec.target)
            {
                bail!("--mount={v}: duplicate mount target {}", spec.target);
            }
            let source = match &spec.kind {
                Kind::Bind { source, from, .. } => {
                    let (src, k) = self.bind_source(source, from.as_deref(), stage)?;
                    key.push(k);
                    Some(src)
                }
                _ => None,
            };
            specs.push((spec, source));
        }
        Ok(Plan {
            specs,
            network,
            key: key.join("\n"),
        })
    }

    /// A bind's source and what the key takes of it: the context's
    /// files by their digests, an image's by its id.
    fn bind_source(
        &mut self,
        source: &str,
        from: Option<&str>,
        stage: usize,
    ) -> Result<(Source, String)> {
        let Some(from) = from else {
            let paths = self.ctx.sources(source)?;
            let meta = root_owned();
            let (hash, known) =
                walk::digest(self.ctx, &paths, &Default::default(), ("m", false), meta)?;
            return Ok((Source::Context(paths, known), format!("bind {hash}")));
        };
        let img = self.stage_image(from, stage)?;
        let k = format!("bind from {} {source}", img.id);
        Ok((Source::Image(img, source.to_string()), k))
    }

    /// The plan's mounts made, for one run of the step.
    pub(super) fn prepare(&self, plan: &Plan) -> Result<Prepared> {
        let mut p = Prepared::default();
        for (spec, source) in &plan.specs {
            let t = spec.target.as_str();
            match (&spec.kind, source) {
                (
                    Kind::Cache {
                        id,
                        sharing,
                        mode,
                        owner,
                    },
                    _,
                ) => {
                    let dir = self.cache_dir(id, *mode, *owner)?;
                    let dir = match sharing {
                        Sharing::Shared => dir,
                        Sharing::Locked => {
                            p._locks.push(lock(&dir, true)?.expect("blocking"));
                            dir
                        }
                        Sharing::Private => match lock(&dir, false)? {
                            Some(l) => {
                                p._locks.push(l);
                                dir
                            }
                            None => {
                                let own = copy::tempdir(self.engine)?;
                                let d = own.path().join("m");
                                make_dir(&d, *mode, *owner)?;
                                p._dirs.push(own);
                                d
                            }
                        },
                    };
                    p.mounts.push(bind(&dir, t, true)?);
                }
                (Kind::Tmpfs { size }, _) => {
                    let mut o = vec!["nosuid".to_string(), "nodev".into()];
                    o.extend(size.as_ref().map(|s| format!("size={s}")));
                    p.mounts.push(mount("tmpfs", Path::new("tmpfs"), t, o)?);
                }
                (Kind::Bind { rw, .. }, Some(src)) => {
                    let dir = copy::tempdir(self.engine)?;
                    self.copy_source(src, dir.path())?;
                    p.mounts.push(bind(&dir.path().join("m"), t, *rw)?);
                    p._dirs.push(dir);
                }
                (Kind::Bind { .. }, None) => bail!("the bind mount on {t} has no source"),
                (
                    Kind::Secret {
                        id,
                        required,
                        mode,
                        owner,
                        env,
                        file,
                    },
                    _,
                ) => {
                    let Some(value) = self.secret(id)? else {
                        if *required {
                            bail!("secret {id} not found: give it with --secret id={id},src=PATH");
                        }
                        continue;
                    };
                    if let Some(var) = env {
                        p.env
                            .push(format!("{var}={}", String::from_utf8_lossy(&value)));
                    }
                    if *file {
                        let dir = copy::tempdir(self.engine)?;
                        let f = dir.path().join("secret");
                        std::fs::write(&f, &value).context("write the secret's copy")?;
                        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode))?;
                        chown(&f, *owner)?;
                        p.mounts.push(bind(&f, t, false)?);
                        p._dirs.push(dir);
                    }
                }
            }
            p.targets.push(t.to_string());
        }
        Ok(p)
    }

    /// The cache mount `id`'s directory, made (with `mode` and `owner`)
    /// when it is first used.
    fn cache_dir(&self, id: &str, mode: u32, owner: (u32, u32)) -> Result<PathBuf> {
        let mut h = berth_image::digest::Hasher::new();
        h.update(id.as_bytes());
        let name = h.finish().to_string();
        let top = self.engine.root.join(CACHE_MOUNTS);
        let dir = top.join(name.trim_start_matches("sha256:"));
        if dir.is_dir() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&top).context("create the cache mounts' dir")?;
        // Made aside and renamed: a concurrent build sees it whole or not.
        let fresh = top.join(format!("new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fresh);
        make_dir(&fresh, mode, owner)?;
        if std::fs::rename(&fresh, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&fresh);
        }
        Ok(dir)
    }

    /// A bind's source copied into `dir` as `dir/m`.
    fn copy_source(&self, src: &Source, dir: &Path) -> Result<()> {
        let spool = self.engine.root.join("build-tmp");
        let tar = match src {
            Source::Context(paths, known) => {
                let mut f = copy::spool_file(&spool)?;
                walk::write_tar(
                    self.ctx,
                    paths,
                    &Default::default(),
                    ("m", false),
                    root_owned(),
                    known,
                    &mut f,
                )?;
                std::io::Seek::rewind(&mut f)?;
                f
            }
            Source::Image(img, path) => {
                let id = self.container(img)?;
                let path = path.trim_matches('/');
                let packed = copy::pack(
                    self.engine,
                    &id,
                    (
                        &[if path.is_empty() {
                            ".".into()
                        } else {
                            path.to_string()
                        }],
                        &Default::default(),
                    ),
                    ("m", false),
                    Meta::default(),
                    &spool,
                );
                crate::remove::remove(self.engine, &id, true)?;
                packed?
            }
        };
        berth_snapshot::extract_archive(std::io::BufReader::new(tar), dir, &super::plain())?;
        // A directory's own entry is not in the stream: an empty one is
        // only its name.
        if !dir.join("m").exists() {
            std::fs::create_dir(dir.join("m"))?;
        }
        Ok(())
    }

    /// The value of `--secret id=ID`, None when not given (or its
    /// variable unset).
    fn secret(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let Some(s) = self.req.secrets.iter().rev().find(|s| s.id == id) else {
            return Ok(None);
        };
        match &s.source {
            SecretSource::Env(v) => Ok(std::env::var_os(v).map(|x| {
                use std::os::unix::ffi::OsStrExt;
                x.as_bytes().to_vec()
            })),
            SecretSource::File(p) => {
                let what = format!("secret {id}");
                Ok(Some(berth_io::read_capped(p, 500 * 1024, &what)?))
            }
        }
    }
}

/// Where the cache mounts live, under the engine's root.
pub(in crate::build) const CACHE_MOUNTS: &str = "build-cache-mounts";

/// A context bind's files as COPY lands them: root's.
fn root_owned() -> Meta {
    Meta {
        owner: Some((0, 0)),
        mode: None,
    }
}

fn make_dir(d: &Path, mode: u32, owner: (u32, u32)) -> Result<()> {
    std::fs::create_dir(d).with_context(|| format!("create {}", d.display()))?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))?;
    chown(d, owner)
}

/// `owner` on `p`; root's needs nothing (berth's files are root's, or
/// the rootless user's, which is the container's root).
fn chown(p: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    if (uid, gid) == (0, 0) {
        return Ok(());
    }
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", p.display()))
}

/// An flock on `dir`: waited for when `wait`, else None when held.
fn lock(dir: &Path, wait: bool) -> Result<Option<std::fs::File>> {
    use rustix::fs::FlockOperation as Op;
    let f = std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    let op = if wait {
        Op::LockExclusive
    } else {
        Op::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(anyhow!("lock {}: {e}", dir.display())),
    }
}

fn bind(src: &Path, target: &str, rw: bool) -> Result<Mount> {
    let o = vec!["rbind".to_string(), if rw { "rw" } else { "ro" }.into()];
    mount("bind", src, target, o)
}

fn mount(kind: &str, src: &Path, target: &str, options: Vec<String>) -> Result<Mount> {
    MountBuilder::default()
        .typ(kind)
        .source(src)
        .destination(PathBuf::from(target))
        .options(options)
        .build()
        .with_context(|| format!("mount {target}"))
}

/// Takes the mount points the runtime made for `targets` out of `upper`
/// (a step's upper dir) while they are empty, and then their parents
/// while those are empty, walking by descriptors that never follow a
/// symlink (the step may have left any).
pub(super) fn tidy(upper: &Path, targets: &[String]) -> Result<()> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let root = rustix::fs::open(upper, dir_flags, Mode::empty())
        .with_context(|| format!("open {}", upper.display()))?;
    for t in targets {
        let parts: Vec<&str> = t.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let mut fds = vec![root.try_clone()?];
        for p in parents {
            let cur = fds.last().expect("root");
            match rustix::fs::openat(cur, *p, dir_flags, Mode::empty()) {
                Ok(fd) => fds.push(fd),
                Err(_) => break,
            }
        }
        if fds.len() != parts.len() {
            continue;
        }
        let mut name = *last;
        while let Some(dir) = fds.pop() {
            if !remove_if_empty(&dir, name) || fds.is_empty() {
                break;
            }
            name = parts[fds.len() - 1];
        }
    }
    Ok(())
}

/// Removes `name` in `dir` when it is an empty directory or an empty
/// regular file (what a mount point is); whether it did.
fn remove_if_empty(dir: &impl rustix::fd::AsFd, name: &str) -> bool {
    use rustix::fs::{AtFlags, FileType};
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    match FileType::from_raw_mode(st.st_mode) {
        // rmdir fails on a directory that holds anything (a whiteout too).
        FileType::Directory => rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).is_ok(),
        FileType::RegularFile if st.st_size == 0 => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_read_as_buildkit_reads_them() {
        let s = parse("type=cache,target=/root/.cache", "/").unwrap();
        assert_eq!(s.target, "/root/.cache");
        assert!(
            matches!(&s.kind, Kind::Cache { id, sharing: Sharing::Shared, mode: 0o755, owner: (0, 0) } if id == "/root/.cache")
        );
        let s = parse(
            "type=cache,target=c,id=x,sharing=locked,mode=0700,uid=5",
            "/w",
        )
        .unwrap();
        assert_eq!(s.target, "/w/c");
        assert!(
            matches!(&s.kind, Kind::Cache { id, sharing: Sharing::Locked, mode: 0o700, owner: (5, 0) } if id == "x")
        );
        let s = parse("target=/x,source=a,rw", "/").unwrap();
        assert!(matches!(&s.kind, Kind::Bind { source, from: None, rw: true } if source == "a"));
        let s = parse("type=secret,id=tok", "/").unwrap();
        assert_eq!(s.target, "/run/secrets/tok");
        assert!(matches!(
            &s.kind,
            Kind::Secret {
                required: false,
                mode: 0o400,
                file: true,
                ..
            }
        ));
        let s = parse("type=tmpfs,dst=/t,size=1m", "/").unwrap();
        assert_eq!(
            s.kind,
            Kind::Tmpfs {
                size: Some("1m".into())
            }
        );
        assert!(
            parse("type=ssh", "/")
                .unwrap_err()
                .to_string()
                .contains("not supported")
        );
        assert!(parse("type=cache", "/").is_err());
        assert!(
            parse("type=tmpfs,target=/t,bogus=1", "/")
                .unwrap_err()
                .to_string()
                .contains("unexpected key 'bogus'")
        );
        assert!(parse("type=nope,target=/t", "/").is_err());
        assert!(parse("type=tmpfs,target=/", "/").is_err());
        assert!(parse("type=cache,target=/c,mode=9", "/").is_err());
    }

    #[test]
    fn tidy_takes_only_empty_mount_points() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path();
        std::fs::create_dir_all(u.join("a/b/c")).unwrap();
        std::fs::create_dir_all(u.join("run/secrets")).unwrap();
        std::fs::write(u.join("run/secrets/tok"), "").unwrap();
        std::fs::create_dir_all(u.join("keep/m")).unwrap();
        std::fs::write(u.join("keep/mine"), "x").unwrap();
        std::fs::create_dir_all(u.join("full")).unwrap();
        std::fs::write(u.join("full/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", u.join("evil")).unwrap();
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        tidy(
            u,
            &t(&["/a/b/c", "/run/secrets/tok", "/keep/m", "/full", "/evil/x"]),
        )
        .unwrap();
        assert!(!u.join("a").exists());
        assert!(!u.join("run").exists());
        assert!(u.join("keep/mine").exists() && !u.join("keep/m").exists());
        assert!(u.join("full/f").exists());
        assert!(u.join("evil").is_symlink());
    }
}
