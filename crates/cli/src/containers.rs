//! Container commands: run, ps, rm, inspect. The engine does the work;
//! here are the flags it is given, what is printed, and the exit codes.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use berth_engine::records::{ContainerRecord, LogConfig, RestartPolicy, Status};
use berth_engine::{Engine, Finished, IoMode, Limits, RunRequest, SecurityOpts, Ulimit, timefmt};
use berth_image::{Progress, ProgressMode};
use berth_io::{errln, outln};

use crate::cli::{CgroupsMode, Format, PsArgs, PullPolicy, RmArgs, RunArgs};
use crate::{ENGINE_ERROR, runopts, table};

/// `berth run`: the container's own exit code (128+N when signal N killed
/// it), 125 for berth's errors, 126 when its command cannot be executed,
/// 127 when it is not found.
pub fn run(engine: &Engine, args: &RunArgs) -> Result<u8> {
    let req = request(args)?;
    // The container's stdout is the user's: pull chatter goes to stderr.
    let progress = if args.quiet {
        Progress::quiet()
    } else {
        Progress::with_writer(ProgressMode::Lines, Box::new(std::io::stderr()))
    };
    let Finished {
        id,
        name,
        code,
        error,
    } = berth_engine::run(engine, &req, &progress)?;
    if let Some(why) = error {
        errln!("berth: run {name}: {why}");
    } else if req.detach {
        outln!("{id}");
    }
    Ok(u8::try_from(code).unwrap_or(ENGINE_ERROR))
}

/// `berth create`: the container made, not started; prints its id.
pub fn create(engine: &Engine, args: &RunArgs) -> Result<u8> {
    let mut req = request(args)?;
    req.detach = true;
    let progress = if args.quiet {
        Progress::quiet()
    } else {
        Progress::with_writer(ProgressMode::Lines, Box::new(std::io::stderr()))
    };
    let f = berth_engine::run::create_only(engine, &req, &progress)?;
    outln!("{}", f.id);
    Ok(0)
}

/// What `berth run` asks of the engine, from its flags: each parsed and
/// checked as far as its grammar goes, before anything is pulled or made.
fn request(args: &RunArgs) -> Result<RunRequest> {
    // Checked first: -v below makes the host dirs it names that are
    // missing, which a refused run must not leave behind.
    if let Some(n) = &args.name {
        berth_engine::records::validate_name(n)?;
    }
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let mounts = runopts::parse_mounts(&args.volumes, &args.mounts, &args.tmpfs)?;
    let limits = Limits {
        memory: args
            .memory
            .as_deref()
            .map(|v| runopts::parse_bytes("--memory", v))
            .transpose()?,
        memory_swap: args
            .memory_swap
            .as_deref()
            .map(runopts::parse_swap)
            .transpose()?,
        memory_reservation: args
            .memory_reservation
            .as_deref()
            .map(|v| runopts::parse_bytes("--memory-reservation", v))
            .transpose()?,
        cpus: args.cpus.as_deref().map(runopts::parse_cpus).transpose()?,
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        pids_limit: args.pids_limit,
        io: runopts::io_limits(args)?,
    };
    let ulimits = args
        .ulimit
        .iter()
        .map(|u| {
            Ok(Ulimit {
                spec: u.clone(),
                rlimit: runopts::parse_ulimit(u)?,
            })
        })
        .collect::<Result<_>>()?;
    let devices = args
        .device
        .iter()
        .map(|d| runopts::parse_device(d))
        .collect::<Result<_>>()?;
    let userns = runopts::parse_userns(&args.userns)?;
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(runopts::read_env_file(f)?);
    }
    for e in &args.env {
        env.extend(runopts::parse_env(e)?);
    }
    let security = SecurityOpts::parse(&args.security_opt)?;
    Ok(RunRequest {
        image: args.image.clone(),
        platform: args.platform.clone(),
        pull: match args.pull {
            PullPolicy::Always => berth_engine::PullPolicy::Always,
            PullPolicy::Missing => berth_engine::PullPolicy::Missing,
            PullPolicy::Never => berth_engine::PullPolicy::Never,
        },
        name: args.name.clone(),
        rm: args.rm,
        command: args.command.clone(),
        entrypoint: args.entrypoint.clone(),
        env,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        hostname: args.hostname.clone(),
        init: args.init,
        io: IoMode {
            tty: args.tty,
            interactive: args.interactive,
        },
        mounts,
        read_only: args.read_only,
        limits,
        ulimits,
        cgroup_parent: args.cgroup_parent.clone(),
        cgroups: args.cgroups.map(|m| match m {
            CgroupsMode::Enabled => berth_engine::CgroupsMode::Enabled,
            CgroupsMode::Disabled => berth_engine::CgroupsMode::Disabled,
        }),
        privileged: args.privileged,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        devices,
        security,
        userns,
        network: args.network.clone(),
        no_pivot: args.no_pivot,
        detach: args.detach,
        restart: match &args.restart {
            Some(p) => RestartPolicy::parse(p)?,
            None => RestartPolicy::No,
        },
        stop_signal: args
            .stop_signal
            .as_deref()
            .map(|s| berth_engine::lifecycle::parse_signal(s).map(|_| s.to_string()))
            .transpose()?,
        stop_timeout: args.stop_timeout,
        detach_keys: args.detach_keys.clone(),
        log: LogConfig::parse(args.log_driver.as_deref(), &args.log_opt)?,
        ..Default::default()
    })
}

pub fn rm(engine: &Engine, args: &RmArgs) -> Result<u8> {
    let mut failed = false;
    for key in &args.containers {
        match berth_engine::remove::remove(engine, key, args.force) {
            Ok(()) => outln!("{key}"),
            Err(e) => {
                errln!("berth: rm {key}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { ENGINE_ERROR } else { 0 })
}

/// Docker's STATUS column: `Up 3 seconds`, `Exited (0) 2 minutes ago`.
fn status_text(c: &ContainerRecord) -> String {
    match c.status {
        Status::Created => "Created".into(),
        Status::Running if c.is_running() => {
            format!(
                "Up {}",
                timefmt::since(c.started.as_deref().unwrap_or(&c.created))
            )
        }
        Status::Running => "Exited (unknown): berth died".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            timefmt::since(c.finished.as_deref().unwrap_or(&c.created))
        ),
    }
}

/// `berth inspect`: Docker's shape for the fields berth records.
pub fn inspect(engine: &Engine, keys: &[String]) -> Result<u8> {
    berth_engine::remove::reap_for_readers(engine);
    let records = engine.records()?;
    let mut out = Vec::new();
    let mut failed = false;
    for key in keys {
        match records.find(key) {
            Ok(c) => {
                let running = c.is_running();
                out.push(serde_json::json!({
                    "Id": c.id,
                    "Name": format!("/{}", c.name),
                    "Created": c.created,
                    "Path": c.command.first(),
                    "Args": c.command.get(1..).unwrap_or_default(),
                    "State": {
                        "Status": if running { "running" } else { match c.status {
                            Status::Created => "created",
                            _ => "exited",
                        }},
                        "Running": running,
                        "OOMKilled": c.oom_killed,
                        "Pid": if running { c.pid.unwrap_or(0) } else { 0 },
                        "ExitCode": c.exit_code.unwrap_or(0),
                        "StartedAt": c.started,
                        "FinishedAt": c.finished,
                    },
                    "Image": c.image_id,
                    "Config": { "Image": c.image, "Labels": c.labels },
                }));
            }
            Err(e) => {
                errln!("berth: inspect {key}: {e:#}");
                failed = true;
            }
        }
    }
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed { 1 } else { 0 })
}

pub fn ps(engine: &Engine, args: &PsArgs) -> Result<u8> {
    berth_engine::remove::reap_for_readers(engine);
    let all = engine.records()?.list()?;
    let shown: Vec<&ContainerRecord> = all.iter().filter(|c| args.all || c.is_running()).collect();
    let id_of = |c: &ContainerRecord| {
        if args.no_trunc {
            c.id.clone()
        } else {
            c.id[..12].to_string()
        }
    };
    if args.quiet {
        for c in shown {
            outln!("{}", id_of(c));
        }
        return Ok(0);
    }
    let command = |c: &ContainerRecord| {
        let s = c.command.join(" ");
        let s = if !args.no_trunc && s.chars().count() > 20 {
            format!("{}…", s.chars().take(19).collect::<String>())
        } else {
            s
        };
        format!("\"{s}\"")
    };
    match args.format {
        Format::Table => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|c| {
                    vec![
                        id_of(c),
                        c.image.clone(),
                        command(c),
                        format!("{} ago", timefmt::since(&c.created)),
                        status_text(c),
                        c.name.clone(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "NAMES",
                ],
                &rows,
            );
        }
        Format::Json => {
            for c in shown {
                let v = serde_json::json!({
                    "ID": id_of(c), "Image": c.image, "Command": command(c),
                    "CreatedAt": c.created, "Status": status_text(c), "Names": c.name,
                    "State": if c.is_running() { "running" } else if c.status == Status::Created { "created" } else { "exited" },
                    "ExitCode": c.exit_code, "Labels": c.labels,
                });
                outln!("{v}");
            }
        }
    }
    Ok(0)
}
