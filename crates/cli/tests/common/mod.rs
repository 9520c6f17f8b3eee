//! Shared test support: the fixture registry and a berth command bound to a
//! throw-away root. Tests run real containers, so they need root; with
//! `BERTH_TEST_USER=name` berth itself runs as that ordinary user
//! (rootless mode), the root dir being theirs.

#![allow(dead_code)]

pub mod peers;
pub mod sandbox;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub const PLAIN: &str = "127.0.0.1:5500";
pub const BUSYBOX: &str = "127.0.0.1:5500/busybox:latest";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts the fixture registries once per test binary (idempotent script).
/// `BERTH_TEST_REGISTRY=external`: they are already up and reachable (the
/// v2 VM of `fixture/v2vm.sh` forwards the host's, and has no bash).
pub fn fixture() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        if std::env::var("BERTH_TEST_REGISTRY").as_deref() == Ok("external") {
            return;
        }
        let st = Command::new("bash")
            .arg(workspace().join("fixture/registry.sh"))
            .arg("up")
            .stdout(Stdio::null())
            .status()
            .expect("run fixture/registry.sh");
        assert!(st.success(), "fixture/registry.sh up failed");
    });
}

/// A berth root that is removed (containers, mounts and all) when dropped.
pub struct Root {
    pub dir: tempfile::TempDir,
    /// The overlayfs the root is on ([`Root::on_overlayfs`]), unmounted
    /// after `dir` is removed.
    overlay: Option<OverlayMount>,
}

/// An overlayfs (lower, upper and work in a temp dir) mounted on `merged`;
/// lazily unmounted when dropped, whatever is still inside.
pub struct OverlayMount {
    pub merged: PathBuf,
    _dir: tempfile::TempDir,
}

impl OverlayMount {
    pub fn new() -> OverlayMount {
        std::fs::create_dir_all("/var/tmp/berth-tests").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("overlay-")
            .tempdir_in("/var/tmp/berth-tests")
            .unwrap();
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let merged = dir.path().join("merged");
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
                dir.path().display()
            ))
            .arg(&merged)
            .status()
            .unwrap();
        assert!(st.success(), "mount an overlayfs on {}", merged.display());
        OverlayMount { merged, _dir: dir }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
    }
}

/// The user of `BERTH_TEST_USER`: (uid, gid, home).
pub fn test_user() -> Option<(u32, u32, PathBuf)> {
    let name = std::env::var("BERTH_TEST_USER")
        .ok()
        .filter(|n| !n.is_empty())?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let f: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .unwrap_or_else(|| panic!("BERTH_TEST_USER={name}: no such user"));
    Some((
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        PathBuf::from(f[5]),
    ))
}

/// The berth binary and the tests' config copied where an ordinary user can
/// reach them (the checkout may sit in root's home), once per test binary.
fn reachable_copies() -> (PathBuf, PathBuf) {
    static COPIES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    COPIES
        .get_or_init(|| {
            // Copies of test binaries that have finished go first.
            for e in std::fs::read_dir("/var/tmp/berth-tests").unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("bin-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            let dir = PathBuf::from(format!("/var/tmp/berth-tests/bin-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let exe = dir.join("berth");
            let config = dir.join("config.json");
            std::fs::copy(env!("CARGO_BIN_EXE_berth"), &exe).unwrap();
            std::fs::copy(workspace().join("crates/cli/tests/config.json"), &config).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
            (exe, config)
        })
        .clone()
}

/// berth as a shell command line (for script(1) and the like), run as the
/// test user when there is one, with the tests' config (no bridge on the
/// machine's network, whatever script(1) passes on).
pub fn berth_shell() -> String {
    match test_user() {
        Some((_, _, home)) => {
            let (exe, config) = reachable_copies();
            format!(
                "runuser -u {} -- env HOME={} BERTH_CONFIG={} {}",
                std::env::var("BERTH_TEST_USER").unwrap(),
                home.display(),
                config.display(),
                exe.display()
            )
        }
        None => format!(
            "env BERTH_CONFIG={} {}",
            workspace().join("crates/cli/tests/config.json").display(),
            env!("CARGO_BIN_EXE_berth")
        ),
    }
}

/// Whether berth runs rootless in these tests.
pub fn rootless() -> bool {
    test_user().is_some()
}

impl Root {
    pub fn new() -> Root {
        fixture();
        std::fs::create_dir_all("/var/tmp/berth-tests").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in("/var/tmp/berth-tests")
            .unwrap();
        if let Some((uid, gid, _)) = test_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        Root { dir, overlay: None }
    }

    /// A root on overlayfs, as berth's is when it runs in a container
    /// (`docker run --cap-add SYS_ADMIN …`).
    pub fn on_overlayfs() -> Root {
        fixture();
        let overlay = OverlayMount::new();
        let dir = tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in(&overlay.merged)
            .unwrap();
        if let Some((uid, gid, _)) = test_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        Root {
            dir,
            overlay: Some(overlay),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn berth(&self) -> Command {
        let (exe, config) = match test_user() {
            Some(_) => reachable_copies(),
            None => (
                PathBuf::from(env!("CARGO_BIN_EXE_berth")),
                workspace().join("crates/cli/tests/config.json"),
            ),
        };
        let mut c = Command::new(exe);
        c.arg("--root").arg(self.path());
        // No user config or credentials leak into tests.
        c.env("BERTH_CONFIG", config);
        c.env("DOCKER_CONFIG", self.path().join("docker-config"));
        c.stdin(Stdio::null());
        if let Some((uid, gid, home)) = test_user() {
            use std::os::unix::process::CommandExt;
            c.uid(uid)
                .gid(gid)
                .env("HOME", home)
                .env_remove("XDG_DATA_HOME");
        }
        c
    }

    /// Full ids of every container in this root (`ps -aq --no-trunc`).
    pub fn container_ids(&self) -> Vec<String> {
        let out = self
            .berth()
            .args(["ps", "-aq", "--no-trunc"])
            .output()
            .unwrap();
        stdout(&out).lines().map(str::to_string).collect()
    }

    /// `berth ARGS…` with `input` on its stdin (fed by a thread, so a
    /// child that writes while it reads never blocks), output captured.
    pub fn with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .berth()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        // The child may refuse before reading it all.
        let w = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &data);
        });
        let o = child.wait_with_output().unwrap();
        w.join().unwrap();
        o
    }

    /// `berth run --rm IMAGE args…`, output captured.
    pub fn run(&self, args: &[&str]) -> Output {
        self.berth().arg("run").args(args).output().unwrap()
    }

    /// `berth run ARGS…` that must end within `secs`: killed and None if not.
    pub fn run_within(&self, secs: u64, args: &[&str]) -> Option<Output> {
        let mut child = self
            .berth()
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(child.wait_with_output().unwrap())
    }

    /// Starts `berth run --rm -q --name NAME ARGS...` and waits for the
    /// command's first line: the berth process, that line, and what
    /// `inspect` then says of the container.
    pub fn started(&self, name: &str, args: &[&str]) -> (Child, String, serde_json::Value) {
        let mut child = self
            .berth()
            .args(["run", "--rm", "-q", "--name", name])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let o = self.berth().args(["inspect", name]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (child, line, v[0].clone())
    }

    /// Runs busybox given the host's /dev/zero as /dev/z (after `flags`);
    /// it prints the node's numbers and how many bytes 4 reads gave.
    pub fn run_with_zero_as_dev_z(&self, flags: &[&str]) -> Output {
        let mut args = vec!["--rm", "-q", "--device", "/dev/zero:/dev/z"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[
            BUSYBOX,
            "sh",
            "-c",
            "stat -c %t,%T /dev/z; head -c 4 /dev/z | wc -c",
        ]);
        self.run(&args)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Remove every container the test left so its mounts go too.
        for id in self.container_ids() {
            let _ = self.berth().args(["rm", "-f", &id]).output();
        }
        // Let berth's background removal finish before the directory goes.
        let trash = self.path().join("trash");
        for _ in 0..500 {
            if std::fs::read_dir(&trash).map_or(true, |mut d| d.next().is_none()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Exit code, -1 when killed by a signal.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The host's mount points, leaving out those of other tests' roots
/// (tests run in parallel) but keeping everything under `mine`; and
/// berth's exec root, the tmpfs the first berth run on a host mounts on
/// /run/berth and leaves there for every later one.
pub fn host_mounts(mine: &Path) -> Vec<String> {
    let mine = mine.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').skip(4).take(1).collect::<String>())
        .filter(|m| !m.starts_with("/var/tmp/berth-tests/") || m.starts_with(&mine))
        .filter(|m| m != "/run/berth")
        .collect()
}

/// One entry of a layer a test builds (all owned by root, mtime 0).
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    /// A file of `n` zero bytes (compresses to almost nothing).
    Zeros(&'a str, u64),
    Symlink(&'a str, &'a str),
    Fifo(&'a str),
    CharDevice(&'a str, u32, u32),
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn curl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(o.status.success(), "curl {args:?}: {}", stderr(&o));
    o.stdout
}

/// Pushes `data` as a blob of `repo` on the plain fixture registry.
fn push_blob(repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let loc = curl(&[
        "-o",
        "/dev/null",
        "-X",
        "POST",
        "-w",
        "%header{location}",
        &format!("http://{PLAIN}/v2/{repo}/blobs/uploads/"),
    ]);
    let loc = String::from_utf8(loc).unwrap();
    let loc = if loc.starts_with('/') {
        format!("http://{PLAIN}{loc}")
    } else {
        loc
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), data).unwrap();
    curl(&[
        "-o",
        "/dev/null",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.path().display()),
        &format!("{loc}{sep}digest={digest}"),
    ]);
    digest
}

/// Builds and pushes an image made of the fixture's busybox layer plus one
/// layer of `entries`, with `config` merged into its config's `config`
/// (Env, User, WorkingDir…), but for `history`, which becomes the image
/// config's own; returns its reference, tagged by content.
pub fn push_image(repo: &str, entries: &[Entry<'_>], config: serde_json::Value) -> String {
    push_image_stacked(repo, entries, config, 1)
}

/// [`push_image`] with the layer of `entries` stacked `copies` times.
pub fn push_image_stacked(
    repo: &str,
    entries: &[Entry<'_>],
    config: serde_json::Value,
    copies: usize,
) -> String {
    fixture();
    let repo = format!("berth-tests/{repo}");
    let accept = "Accept: application/vnd.docker.distribution.manifest.v2+json";
    let bb: serde_json::Value = serde_json::from_slice(&curl(&[
        "-H",
        accept,
        &format!("http://{PLAIN}/v2/busybox/manifests/latest"),
    ]))
    .unwrap();
    let bb_cfg: serde_json::Value = serde_json::from_slice(&curl(&[
        "-L",
        &format!(
            "http://{PLAIN}/v2/busybox/blobs/{}",
            bb["config"]["digest"].as_str().unwrap()
        ),
    ]))
    .unwrap();
    let bb_layer = bb["layers"][0].clone();
    // Cross-repository mount: the busybox layer without uploading it again.
    curl(&[
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!(
            "http://{PLAIN}/v2/{repo}/blobs/uploads/?mount={}&from=busybox",
            bb_layer["digest"].as_str().unwrap()
        ),
    ]);

    let mut tar = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        let (path, data): (&str, Box<dyn std::io::Read>) = match *e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (p, Box::new(std::io::empty()))
            }
            Entry::File(p, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                (p, Box::new(d))
            }
            Entry::Zeros(p, n) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(n);
                (p, Box::new(std::io::repeat(0).take(n)))
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name(target).unwrap();
                (p, Box::new(std::io::empty()))
            }
            Entry::Fifo(p) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                (p, Box::new(std::io::empty()))
            }
            Entry::CharDevice(p, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o644);
                h.set_device_major(major).unwrap();
                h.set_device_minor(minor).unwrap();
                (p, Box::new(std::io::empty()))
            }
        };
        tar.append_data(&mut h, path, data).unwrap();
    }
    let layer = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &layer).unwrap();
    let gz = gz.finish().unwrap();
    let layer_digest = push_blob(&repo, &gz);

    let mut cfg = serde_json::json!({
        "Cmd": ["sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    });
    let mut history = None;
    for (k, v) in config.as_object().into_iter().flatten() {
        if k == "history" {
            history = Some(v.clone());
        } else {
            cfg[k] = v.clone();
        }
    }
    let mut diff_ids = vec![bb_cfg["rootfs"]["diff_ids"][0].clone()];
    diff_ids.extend(std::iter::repeat_n(serde_json::json!(diff_id), copies));
    let mut image_config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let Some(h) = history {
        image_config["history"] = h;
    }
    let image_config = serde_json::to_vec(&image_config).unwrap();
    let config_digest = push_blob(&repo, &image_config);
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let mut layers = vec![serde_json::json!({
        "mediaType": gzip, "digest": bb_layer["digest"], "size": bb_layer["size"],
    })];
    layers.extend(std::iter::repeat_n(
        serde_json::json!({"mediaType": gzip, "digest": layer_digest, "size": gz.len()}),
        copies,
    ));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": image_config.len(),
        },
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let tag = &sha256_hex(&manifest)[..16];
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &manifest).unwrap();
    curl(&[
        "-o",
        "/dev/null",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", file.path().display()),
        &format!("http://{PLAIN}/v2/{repo}/manifests/{tag}"),
    ]);
    format!("{PLAIN}/{repo}:{tag}")
}

/// Whether this host's /sys/fs/cgroup is one cgroup v2 hierarchy (as on
/// most hosts, and in fixture/v2vm.sh's VM), else v1 hierarchies (this
/// machine kind, a hybrid). Tests of one kind say which host they need and
/// are run on both by the test suite.
pub fn cgroup_v2() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(1) == Some(&"/sys/fs/cgroup") && f.get(2) == Some(&"cgroup2")
        })
}
