//! berth's own input and output: paths given relative to the current
//! directory, files it reads (every read bounded), and pipes it writes to
//! that were closed (never a panic, never an abort).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// berth as root, with the tests' config and credentials, and no `--root`.
fn bare_berth(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.current_dir(cwd)
        .env(
            "BERTH_CONFIG",
            workspace().join("crates/cli/tests/config.json"),
        )
        .env("DOCKER_CONFIG", cwd.join("docker-config"))
        .env_remove("BERTH_ROOT")
        .env_remove("BERTH_EXEC_ROOT")
        .stdin(std::process::Stdio::null());
    c
}

#[test]
fn relative_root_and_exec_root_are_taken_from_the_current_directory() {
    if rootless() {
        return; // the test user cannot enter root's temporary directories
    }
    let r = Root::new();
    let cwd = r.path();
    // Flags, then the same through the environment.
    let o = bare_berth(cwd)
        .args(["--root", "rel/root", "--exec-root", "rel/run"])
        .args(["run", "--rm", "-q", BUSYBOX, "true"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "stderr: {}", stderr(&o));
    assert!(cwd.join("rel/root/images.json").exists());
    assert!(cwd.join("rel/run/bundles").is_dir());
    let o = bare_berth(cwd)
        .env("BERTH_ROOT", "env/root")
        .env("BERTH_EXEC_ROOT", "env/run")
        .args(["run", "--rm", "-q", BUSYBOX, "echo", "hey"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "hey\n", "stderr: {}", stderr(&o));
    assert!(cwd.join("env/root/images.json").exists());
    // A relative --config is read from the current directory too.
    std::fs::write(cwd.join("conf.json"), "{\"bogus-key\": 1}").unwrap();
    let o = bare_berth(cwd)
        .args(["--root", "rel/root", "--config", "conf.json", "images"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{}", cwd.join("conf.json").display())));
}

/// Runs berth with its address space capped at 1 GiB (so a read that
/// grows without end fails here, not on the shared machine) and gives it
/// 30 s: (exit code, stderr).
fn bounded_run(mut c: Command) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth did not return within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (code(&o), stderr(&o))
}

#[test]
fn endless_input_files_fail_fast_at_their_cap() {
    let r = Root::new();
    let mut c = r.berth();
    c.args(["run", "--rm", "--env-file", "/dev/zero", BUSYBOX, "true"]);
    assert_eq!(
        bounded_run(c),
        (
            125,
            "berth: --env-file /dev/zero: larger than 1 MiB\n".into()
        )
    );
    let mut c = r.berth();
    c.args(["run", "--rm", "--security-opt", "seccomp=/dev/zero"])
        .args([BUSYBOX, "true"]);
    assert_eq!(
        bounded_run(c),
        (
            125,
            "berth: seccomp profile /dev/zero: larger than 1 MiB\n".into()
        )
    );
    let mut c = r.berth();
    c.args(["--config", "/dev/zero", "images"]);
    assert_eq!(
        bounded_run(c),
        (1, "berth: config /dev/zero: larger than 1 MiB\n".into())
    );
    // The same through BERTH_CONFIG, and for the credentials file.
    let mut c = r.berth();
    c.env("BERTH_CONFIG", "/dev/zero").arg("images");
    assert_eq!(
        bounded_run(c).1,
        "berth: config /dev/zero: larger than 1 MiB\n"
    );
    let creds = r.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    std::os::unix::fs::symlink("/dev/zero", creds.join("config.json")).unwrap();
    let mut c = r.berth();
    c.env("DOCKER_CONFIG", &creds)
        .args(["logout", "127.0.0.1:5502"]);
    let (rc, err) = bounded_run(c);
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.ends_with("/creds/config.json: larger than 4 MiB\n"),
        "{err}"
    );
    let mut c = r.berth();
    c.args(["login", "-u", "a", "--password-stdin", "127.0.0.1:5502"])
        .stdin(std::fs::File::open("/dev/zero").unwrap());
    assert_eq!(
        bounded_run(c),
        (1, "berth: --password-stdin: larger than 64 KiB\n".into())
    );
    // Nothing was left behind by the refused runs.
    assert!(r.container_ids().is_empty());
}

#[test]
fn an_env_file_may_be_a_pipe() {
    if rootless() {
        return; // the shell's pipe belongs to root
    }
    let r = Root::new();
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#""$0" --root "$1" run --rm -q --env-file <(printf 'A=from-pipe\n') "$2" sh -c 'echo $A'"#)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg(r.path())
        .arg(BUSYBOX)
        .env("BERTH_CONFIG", workspace().join("crates/cli/tests/config.json"))
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "from-pipe\n", "stderr: {}", stderr(&o));
}

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE, as into `| head -3` once head has exited.
fn closed_pipe() -> std::process::Stdio {
    let (read, write) = rustix::pipe::pipe().unwrap();
    drop(read);
    std::process::Stdio::from(write)
}

fn no_panic(o: &std::process::Output) {
    let c = code(o);
    assert!(c != 101 && c != 134 && c != -1, "berth died: {c}");
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

#[test]
fn closed_stdout_or_stderr_never_brings_berth_down() {
    let r = Root::new();
    // An error into a closed stderr: still berth's own exit code.
    let o = r
        .berth()
        .args([
            "run",
            "--rm",
            "--pull",
            "never",
            "127.0.0.1:5500/no-such:image",
            "true",
        ])
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(code(&o), 125);
    // A first run pulls: "Unable to find image" and progress into a closed
    // stderr; the container's own output goes to a closed stdout.
    let o = r
        .berth()
        .args(["run", "--rm", BUSYBOX, "sh", "-c"])
        .arg("for i in $(seq 1000); do echo $i; done; exit 3")
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(code(&o), 3);
    // Listings into a closed stdout end quietly, like Docker.
    for args in [
        &["images"][..],
        &["images", "--format", "json"],
        &["image", "inspect", BUSYBOX],
        &["ps", "-a"],
    ] {
        let o = r.berth().args(args).stdout(closed_pipe()).output().unwrap();
        no_panic(&o);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    }
    // Both closed, on an error path that prints to each.
    let o = r
        .berth()
        .args(["image", "inspect", BUSYBOX, "no-such:image"])
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    no_panic(&o);
}
