//! Test helper: drives the runtime from its own single-threaded process, so
//! the (multi-threaded) test harness never forks in-process. Also stands in
//! for the berth binary as `/sbin/berth-init` inside test containers.
//! With BERTH_TEST_SEAL=copy|memfd it first re-executes itself from a
//! sealed binary (`exe::ensure_sealed`; the copy in /run/berth/exe or
//! BERTH_TEST_EXE_DIR), which a container without a PID namespace needs.
//! With BERTH_TEST_DENY_PIVOT_ROOT=EPERM|ENOSYS it runs under a seccomp
//! filter refusing pivot_root with that errno, as Docker's default profile
//! refuses it to an engine run inside a container.
//!
//! Usage:
//!   berth-runtime-test init -- CMD [ARG...]
//!   berth-runtime-test run    STATE_DIR ID BUNDLE [-i]
//!   berth-runtime-test create STATE_DIR ID BUNDLE
//!   berth-runtime-test start|state|delete STATE_DIR ID
//!   berth-runtime-test kill   STATE_DIR ID SIGNAL
//!   berth-runtime-test exec   STATE_DIR ID BUNDLE [-i] [-t] [-d] -- CMD [ARG...]
//! Exits with the container's (or exec'd command's) exit code, or the
//! error's Docker exit code; `exec -d` prints the exec'd process's pid.

use berth_runtime::{Container, Io};
use std::ffi::OsString;
use std::path::Path;

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "init") {
        berth_runtime::init::init_main(&argv[1..]);
    }
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.len() < 4 {
        eprintln!("usage: berth-runtime-test run|create|start|state|kill|delete STATE_DIR ID ...");
        std::process::exit(2);
    }
    let (cmd, state_dir, id) = (args[1].as_str(), Path::new(&args[2]), args[3].as_str());
    let seal = std::env::var("BERTH_TEST_SEAL").ok();
    if let (true, Some(seal)) = (matches!(cmd, "run" | "create"), seal) {
        use berth_runtime::exe::Seal;
        let dir = std::env::var_os("BERTH_TEST_EXE_DIR").unwrap_or_else(|| "/run/berth/exe".into());
        let how = match seal.as_str() {
            "memfd" => Seal::Memfd,
            _ => Seal::Copy(dir.into()),
        };
        if let Err(e) = berth_runtime::exe::ensure_sealed(&how) {
            eprintln!("berth-runtime-test: {e}");
            std::process::exit(125);
        }
    }
    if let Ok(errno) = std::env::var("BERTH_TEST_DENY_PIVOT_ROOT") {
        deny_pivot_root(&errno);
    }
    let result = match cmd {
        "run" => {
            let io = Io {
                interactive: args.iter().any(|a| a == "-i"),
                ..Default::default()
            };
            berth_runtime::run(id, Path::new(&args[4]), state_dir, &io, |pid| {
                if let Ok(f) = std::env::var("BERTH_TEST_PIDFILE") {
                    let tmp = format!("{f}.tmp");
                    let _ = std::fs::write(&tmp, pid.to_string());
                    let _ = std::fs::rename(&tmp, &f);
                }
            })
            .map(|exit| {
                if exit.oom_killed {
                    eprintln!("berth-runtime-test: OOMKilled");
                }
                exit.code
            })
        }
        "create" => {
            Container::create(id, Path::new(&args[4]), state_dir, &Io::default()).map(|_| 0)
        }
        "start" => Container::load(id, state_dir)
            .and_then(|mut c| c.start())
            .map(|_| 0),
        "state" => Container::load(id, state_dir)
            .and_then(|mut c| c.state())
            .map(|s| {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
                0
            }),
        "kill" => Container::load(id, state_dir)
            .and_then(|c| c.kill(args[4].parse().unwrap_or(libc::SIGTERM)))
            .map(|_| 0),
        "exec" => exec(state_dir, id, &args[4..]),
        "delete" => Container::load(id, state_dir)
            .and_then(|c| c.delete(false))
            .map(|_| 0),
        other => {
            eprintln!("unknown command {other}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("berth-runtime-test: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// `exec BUNDLE [-i] [-t] [-d] -- CMD...`: the bundle's process with CMD
/// as its args (and a terminal with -t), in the running container.
fn exec(state_dir: &Path, id: &str, args: &[String]) -> berth_runtime::Result<i32> {
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (flags, cmd) = (&args[..split], args.get(split + 1..).unwrap_or_default());
    let flag = |f: &str| flags.iter().any(|a| a == f);
    let spec = berth_runtime::load_spec(Path::new(&flags[0]))?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(cmd.to_vec()));
    process.set_terminal(Some(flag("-t")));
    let x = berth_runtime::Exec {
        id,
        state_dir,
        spec: &spec,
        process: &process,
        preserve_fds: 0,
    };
    if flag("-d") {
        let d = berth_runtime::exec_detached(&x, berth_runtime::DetachedStdio::Inherit)?;
        println!("{}", d.pid);
        return Ok(0);
    }
    berth_runtime::exec(
        &x,
        &Io {
            interactive: flag("-i"),
            ..Default::default()
        },
    )
}

fn deny_pivot_root(errno: &str) {
    use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
    let errno = match errno {
        "ENOSYS" => libc::ENOSYS,
        _ => libc::EPERM,
    };
    let loaded = ScmpFilterContext::new(ScmpAction::Allow).and_then(|mut f| {
        f.add_rule(
            ScmpAction::Errno(errno),
            ScmpSyscall::from_name("pivot_root")?,
        )?;
        // Root may load a filter without no_new_privs, which the
        // container's own setuid programs would feel.
        f.set_ctl_nnp(false)?;
        f.load()
    });
    if let Err(e) = loaded {
        eprintln!("berth-runtime-test: seccomp filter: {e}");
        std::process::exit(125);
    }
}
