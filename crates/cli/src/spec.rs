//! Image config + `run` flags → the OCI runtime spec the runtime executes,
//! following Docker's rules (ENTRYPOINT/CMD overrides, env merging, users
//! resolved from the image's own /etc/passwd and /etc/group).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxCapabilitiesBuilder, LinuxNamespaceType, Mount, Spec, UserBuilder,
};
use rustix::fs::{Mode, OFlags, ResolveFlags};

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the CLI asks for, already parsed.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// `--entrypoint`: `Some("")` clears the image's.
    pub entrypoint: Option<String>,
    /// Command and arguments after the image name.
    pub cmd: Vec<String>,
    /// `-e`/`--env-file`, resolved to KEY=VALUE, in order.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: String,
    pub tty: bool,
    pub read_only: bool,
    pub host_network: bool,
    pub mounts: Vec<Mount>,
    /// Path of berth's init inside the container, when `--init`.
    pub init: Option<String>,
}

#[derive(Debug)]
pub struct Built {
    pub spec: Spec,
    /// The command as `ps` shows it (without the init).
    pub command: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// Docker's ENTRYPOINT/CMD rules: `--entrypoint` replaces the entrypoint and
/// drops the image's CMD; arguments after the image replace CMD.
pub fn command(image_entry: &[String], image_cmd: &[String], req: &Request) -> Result<Vec<String>> {
    let (entry, cmd): (Vec<String>, Vec<String>) = match &req.entrypoint {
        Some(e) if e.is_empty() => (vec![], req.cmd.clone()),
        Some(e) => (vec![e.clone()], req.cmd.clone()),
        None if !req.cmd.is_empty() => (image_entry.to_vec(), req.cmd.clone()),
        None => (image_entry.to_vec(), image_cmd.to_vec()),
    };
    let argv: Vec<String> = entry.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("no command specified: the image has no ENTRYPOINT or CMD and none was given");
    }
    Ok(argv)
}

/// Image env, then `-e` values; a later value of a key replaces an earlier
/// one in place. PATH defaults like Docker's; HOSTNAME (and TERM with -t) are set.
pub fn environment(image_env: &[String], req: &Request) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pos: HashMap<String, usize> = HashMap::new();
    let mut put = |kv: String, out: &mut Vec<String>| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        match pos.get(&key) {
            Some(&i) => out[i] = kv,
            None => {
                pos.insert(key, out.len());
                out.push(kv);
            }
        }
    };
    put(DEFAULT_PATH.to_string(), &mut out);
    put(format!("HOSTNAME={}", req.hostname), &mut out);
    if req.tty {
        put("TERM=xterm".into(), &mut out);
    }
    for kv in image_env.iter().chain(&req.env) {
        put(kv.clone(), &mut out);
    }
    out
}

/// A user as the runtime needs it.
#[derive(Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then_some(())?;
            Some(Passwd {
                name: f[0].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then_some(())?;
            Some(Group {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `name`, `uid`, `name:group`, `uid:gid` (any mix) against the
/// image's passwd and group files, like Docker.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match u.parse::<u32>() {
        Ok(uid) => users.iter().find(|p| p.uid == uid),
        Err(_) => Some(users.iter().find(|p| p.name == u).with_context(|| {
            format!("unable to find user {u}: no matching entries in the image's /etc/passwd")
        })?),
    };
    let uid = u
        .parse::<u32>()
        .unwrap_or_else(|_| entry.map(|e| e.uid).unwrap_or(0));
    let name = entry.map(|e| e.name.clone());
    match g {
        Some(g) if !g.is_empty() => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|x| x.name == g)
                    .map(|x| x.gid)
                    .with_context(|| {
                        format!("unable to find group {g}: no matching entries in the image's /etc/group")
                    })?,
            };
            Ok(ResolvedUser {
                uid,
                gid,
                additional_gids: vec![gid],
            })
        }
        _ => {
            let gid = entry.map(|e| e.gid).unwrap_or(0);
            let mut extra = vec![gid];
            if let Some(n) = &name {
                for gr in groups.iter().filter(|gr| gr.members.iter().any(|m| m == n)) {
                    if !extra.contains(&gr.gid) {
                        extra.push(gr.gid);
                    }
                }
            }
            Ok(ResolvedUser {
                uid,
                gid,
                additional_gids: extra,
            })
        }
    }
}

/// Opens `path` beneath `root` without ever leaving it: `..` and symlinks,
/// absolute ones included, resolve as if `root` were `/`.
fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    rustix::fs::openat2(
        root.as_fd(),
        if rel.is_empty() { "." } else { rel },
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

fn read_in_root(root: &OwnedFd, path: &str) -> Result<String> {
    match open_in_root(root, path, OFlags::RDONLY) {
        Ok(fd) => {
            let mut s = String::new();
            std::fs::File::from(fd)
                .take(4 << 20)
                .read_to_string(&mut s)
                .with_context(|| format!("read the image's {path}"))?;
            Ok(s)
        }
        Err(rustix::io::Errno::NOENT) => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("open the image's {path}")),
    }
}

/// `mkdir -p` of an absolute path inside `root`, each step resolved in root.
fn mkdir_in_root(root: &OwnedFd, path: &Path) -> Result<()> {
    let mut cur = PathBuf::from("/");
    for c in path.components() {
        let Component::Normal(name) = c else { continue };
        let parent = open_in_root(
            root,
            &cur.to_string_lossy(),
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .with_context(|| format!("working directory {}", path.display()))?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("create working directory {}", path.display()));
            }
        }
        cur.push(name);
    }
    Ok(())
}

pub fn build(image: &ImageConfiguration, rootfs: &Path, req: &Request) -> Result<Built> {
    let cfg = image.config().clone().unwrap_or_default();
    let entry = cfg.entrypoint().clone().unwrap_or_default();
    let cmd = cfg.cmd().clone().unwrap_or_default();
    let argv = command(&entry, &cmd, req)?;
    let env = environment(&cfg.env().clone().unwrap_or_default(), req);

    let workdir = match req.workdir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) if !w.starts_with('/') => {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path")
        }
        Some(w) => w.to_string(),
        None => cfg
            .working_dir()
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
    };
    let root_fd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open rootfs {}", rootfs.display()))?;
    mkdir_in_root(&root_fd, Path::new(&workdir))?;

    let user_spec = req
        .user
        .clone()
        .or_else(|| cfg.user().clone())
        .unwrap_or_default();
    let user = resolve_user(
        &user_spec,
        &read_in_root(&root_fd, "/etc/passwd")?,
        &read_in_root(&root_fd, "/etc/group")?,
    )?;

    let mut spec = Spec::default();
    spec.set_hostname(Some(req.hostname.clone()));
    spec.set_annotations(None);

    let mut process = spec.process().clone().unwrap_or_default();
    let full_argv = match &req.init {
        Some(init) => [vec![init.clone(), "--".into()], argv.clone()].concat(),
        None => argv.clone(),
    };
    process.set_args(Some(full_argv));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(&workdir));
    process.set_terminal(Some(req.tty));
    process.set_rlimits(None); // Docker sets none; hard limits can't be raised here anyway.
    process.set_user(
        UserBuilder::default()
            .uid(user.uid)
            .gid(user.gid)
            .additional_gids(user.additional_gids.clone())
            .build()?,
    );
    let caps: oci_spec::runtime::Capabilities = DEFAULT_CAPS.into_iter().collect();
    // A non-root user starts with no effective capabilities, as in Docker.
    let running_caps = if user.uid == 0 {
        caps.clone()
    } else {
        Default::default()
    };
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(running_caps.clone())
            .permitted(running_caps.clone())
            .inheritable(running_caps)
            .ambient(oci_spec::runtime::Capabilities::new())
            .build()?,
    ));
    spec.set_process(Some(process));

    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(req.read_only));
    spec.set_root(Some(root));

    // Defaults first; a user mount on the same destination replaces one.
    let mut mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            !req.mounts
                .iter()
                .any(|u| u.destination() == m.destination())
        })
        .collect();
    mounts.extend(req.mounts.iter().cloned());
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let namespaces = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !(req.host_network && n.typ() == LinuxNamespaceType::Network))
        .collect();
    linux.set_namespaces(Some(namespaces));
    linux.set_masked_paths(Some(MASKED.iter().map(|s| s.to_string()).collect()));
    linux.set_readonly_paths(Some(READONLY.iter().map(|s| s.to_string()).collect()));
    linux.set_resources(None);
    spec.set_linux(Some(linux));

    Ok(Built {
        spec,
        command: argv,
        labels: cfg
            .labels()
            .clone()
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
        stop_signal: cfg.stop_signal().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            hostname: "h".into(),
            ..Default::default()
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let e = s(&["/entry"]);
        let c = s(&["default", "args"]);
        // Image defaults.
        assert_eq!(
            command(&e, &c, &req()).unwrap(),
            s(&["/entry", "default", "args"])
        );
        // Arguments replace CMD, keep ENTRYPOINT.
        let r = Request {
            cmd: s(&["x"]),
            ..req()
        };
        assert_eq!(command(&e, &c, &r).unwrap(), s(&["/entry", "x"]));
        // --entrypoint replaces ENTRYPOINT and drops the image's CMD.
        let r = Request {
            entrypoint: Some("/other".into()),
            ..req()
        };
        assert_eq!(command(&e, &c, &r).unwrap(), s(&["/other"]));
        let r = Request {
            entrypoint: Some("/other".into()),
            cmd: s(&["a"]),
            ..req()
        };
        assert_eq!(command(&e, &c, &r).unwrap(), s(&["/other", "a"]));
        // --entrypoint "" clears it.
        let r = Request {
            entrypoint: Some(String::new()),
            cmd: s(&["sh"]),
            ..req()
        };
        assert_eq!(command(&e, &c, &r).unwrap(), s(&["sh"]));
        let r = Request {
            entrypoint: Some(String::new()),
            ..req()
        };
        assert!(
            command(&e, &c, &r)
                .unwrap_err()
                .to_string()
                .contains("no command")
        );
    }

    #[test]
    fn env_merges_by_key_and_defaults_path() {
        let r = Request {
            env: s(&["A=override", "NEW=1"]),
            tty: true,
            ..req()
        };
        let env = environment(&s(&["A=image", "B=2"]), &r);
        assert_eq!(
            env,
            s(&[
                DEFAULT_PATH,
                "HOSTNAME=h",
                "TERM=xterm",
                "A=override",
                "B=2",
                "NEW=1"
            ])
        );
        let env = environment(&s(&["PATH=/only"]), &req());
        assert_eq!(env[0], "PATH=/only");
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n";

    #[test]
    fn users_resolve_from_the_images_files() {
        let u = |s: &str| resolve_user(s, PASSWD, GROUP);
        assert_eq!(
            u("").unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        assert_eq!(
            u("app").unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![1000, 50]
            }
        );
        assert_eq!(u("1000").unwrap().gid, 1000);
        // A uid with no passwd entry is allowed, with gid 0.
        assert_eq!(
            u("4242").unwrap(),
            ResolvedUser {
                uid: 4242,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        assert_eq!(
            u("app:staff").unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 50,
                additional_gids: vec![50]
            }
        );
        assert_eq!(
            u("7:9").unwrap(),
            ResolvedUser {
                uid: 7,
                gid: 9,
                additional_gids: vec![9]
            }
        );
        assert!(u("ghost").unwrap_err().to_string().contains("ghost"));
        assert!(
            u("app:nogroup")
                .unwrap_err()
                .to_string()
                .contains("nogroup")
        );
    }

    #[test]
    fn spec_has_docker_defaults_and_refuses_relative_workdir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        // A symlink pointing out of the rootfs must not make mkdir escape.
        std::os::unix::fs::symlink("/", dir.path().join("escape")).unwrap();
        let img: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],"WorkingDir":"/escape/berth-test-wd"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let b = build(
            &img,
            dir.path(),
            &Request {
                user: Some("app".into()),
                host_network: true,
                ..req()
            },
        )
        .unwrap();
        assert!(
            dir.path().join("berth-test-wd").is_dir(),
            "workdir created inside the rootfs"
        );
        assert!(
            !Path::new("/berth-test-wd").exists(),
            "workdir escaped the rootfs"
        );
        let p = b.spec.process().as_ref().unwrap();
        assert_eq!(p.user().uid(), 1000);
        assert!(p.rlimits().is_none());
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(
            caps.effective().as_ref().unwrap().is_empty(),
            "non-root has no effective caps"
        );
        let ns = b
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap();
        assert!(
            !ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network),
            "host network"
        );
        let r = Request {
            workdir: Some("rel".into()),
            ..req()
        };
        assert!(
            build(&img, dir.path(), &r)
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
    }
}
