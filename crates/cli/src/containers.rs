//! Container commands: run, ps, rm, inspect, rename, prune. The engine
//! does the work; here are the flags it is given, what is printed, and the
//! exit codes.

mod filter;
pub mod inspect;
mod manage;
mod ps;
mod view;

pub(crate) use manage::{PruneFilter, confirm};
pub use manage::{prune, rename};
pub use ps::ps;
pub use view::go_time;

use std::io::IsTerminal;

use anyhow::{Result, bail};
use berth_engine::records::{LogConfig, RestartPolicy};
use berth_engine::{Engine, Finished, IoMode, Limits, RunRequest, SecurityOpts, Ulimit};
use berth_image::{Progress, ProgressMode};
use berth_io::{errln, outln};

use crate::cli::{CgroupsMode, PullPolicy, RmArgs, RunArgs};
use crate::{ENGINE_ERROR, runopts};

/// `berth run`: the container's own exit code (128+N when signal N killed
/// it), 125 for berth's errors, 126 when its command cannot be executed,
/// 127 when it is not found.
pub fn run(engine: &Engine, args: &RunArgs) -> Result<u8> {
    let req = request(engine, args)?;
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
    let mut req = request(engine, args)?;
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
/// `--label-file` then `--label`.
fn labels(args: &RunArgs) -> Result<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    for f in &args.label_file {
        labels.extend(runopts::read_label_file(f)?);
    }
    for l in &args.label {
        let (k, v) = runopts::parse_label(l)?;
        labels.insert(k, v);
    }
    Ok(labels)
}

/// `--dns*`, `--add-host` and `-p`.
fn network_flags(
    args: &RunArgs,
) -> Result<(
    berth_engine::etc_files::DnsOptions,
    Vec<berth_engine::ports::PortBinding>,
)> {
    use berth_engine::etc_files::{DnsOptions, parse_add_host, parse_dns};
    let dns = DnsOptions {
        servers: args
            .dns
            .iter()
            .map(|s| parse_dns(s))
            .collect::<Result<_>>()?,
        search: args.dns_search.clone(),
        options: args.dns_option.clone(),
        hosts: args
            .add_host
            .iter()
            .map(|h| parse_add_host(h))
            .collect::<Result<_>>()?,
    };
    let mut publish = Vec::new();
    for p in &args.publish {
        publish.extend(berth_engine::ports::parse(p)?);
    }
    Ok((dns, publish))
}

/// `--network` (the config's default when not given) and `--ip`.
struct NetworkMode {
    network: berth_engine::Network,
    ip: Option<std::net::Ipv4Addr>,
}

fn network_mode(engine: &Engine, args: &RunArgs) -> Result<NetworkMode> {
    let network = berth_engine::Network::parse(
        &args
            .network
            .clone()
            .unwrap_or_else(|| berth_engine::network::default_mode(engine)),
    );
    let ip = args
        .ip
        .as_deref()
        .map(|ip| {
            ip.parse()
                .map_err(|_| anyhow::anyhow!("invalid IPv4 address: {ip}"))
        })
        .transpose()?;
    Ok(NetworkMode { network, ip })
}

fn request(engine: &Engine, args: &RunArgs) -> Result<RunRequest> {
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
    let (dns, publish) = network_flags(args)?;
    let net = network_mode(engine, args)?;
    Ok(RunRequest {
        labels: labels(args)?,
        dns,
        publish,
        publish_all: args.publish_all,
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
        network: net.network,
        network_aliases: args.network_alias.clone(),
        ip: net.ip,
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
        healthcheck: crate::healthopts::healthcheck(&args.health)?,
    })
}

/// `rm`: each container's name as given once removed; an error line for
/// each that could not be, and exit 1.
pub fn rm(engine: &Engine, args: &RmArgs) -> Result<u8> {
    let mut failed = false;
    for key in &args.containers {
        match berth_engine::remove::remove(engine, key, args.force) {
            Ok(()) => outln!("{key}"),
            Err(e) => {
                errln!("{}", crate::error_line(&e, &format!("rm {key}")));
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
