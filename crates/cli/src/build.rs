//! `build` / `image build`: an image from a Dockerfile. Progress and the
//! RUN steps' output go to stderr (as BuildKit's do): `--progress plain`
//! as lines, `tty` as a live view, `auto` the view when stderr is a
//! terminal; `-q` keeps them quiet and prints the image id on stdout. A
//! failed build exits 1 and leaves no image.

use std::os::fd::AsFd;

use std::io::Read;

use anyhow::{Context, Result, bail};
use berth_engine::Engine;
use berth_engine::build::{BuildRequest, ProgressMode, Secret, SecretSource, build as run_build};
use berth_io::outln;

use crate::cli::{BuildArgs, ProgressArg};

pub fn build(engine: &Engine, args: &BuildArgs) -> Result<u8> {
    // `-`: the context (a tar) or the Dockerfile from stdin.
    let from_stdin = (args.context.as_os_str() == "-")
        .then(|| {
            if args.file.as_deref() == Some(std::path::Path::new("-")) {
                bail!("invalid argument: can't use stdin for both build context and dockerfile");
            }
            berth_engine::build::stdin::read(engine, std::io::stdin().lock())
        })
        .transpose()?;
    let context = match &from_stdin {
        Some(s) => s.dir().to_path_buf(),
        None => args.context.clone(),
    };
    if from_stdin.as_ref().is_some_and(|s| s.dockerfile.is_some()) && args.file.is_some() {
        bail!("-f names a file in the build context, and the context on stdin is a Dockerfile");
    }
    if !context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found or not a directory",
            args.context.display()
        );
    }
    let mut build_args = Vec::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.push((k.to_string(), v.to_string())),
            // `--build-arg K`: the environment's value, if it has one.
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.push((a.clone(), v));
                }
            }
        }
    }
    let network = args
        .network
        .clone()
        .unwrap_or_else(|| berth_engine::network::default_mode(engine));
    // `-f -`: the Dockerfile from stdin.
    let stdin = args.file.as_deref() == Some(std::path::Path::new("-"));
    let dockerfile_text = if let Some(t) = from_stdin.as_ref().and_then(|s| s.dockerfile.clone()) {
        Some(t)
    } else if stdin {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().take(16 << 20), &mut t)
            .context("read the Dockerfile from stdin")?;
        Some(t)
    } else {
        None
    };
    // With a context from stdin, -f names a file in it.
    let dockerfile = match (&from_stdin, args.file.clone().filter(|_| !stdin)) {
        (Some(_), Some(f)) if f.is_relative() => Some(context.join(f)),
        (_, f) => f,
    };
    let req = BuildRequest {
        context,
        dockerfile,
        dockerfile_text,
        tags: args.tags.clone(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        platform: args.platform.clone(),
        labels: args
            .labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect(),
        network: berth_engine::Network::parse(&network),
        secrets: args
            .secrets
            .iter()
            .map(|s| parse_secret(s).with_context(|| format!("--secret {s}")))
            .collect::<Result<_>>()?,
        compression: berth_image::Compression::Gzip,
        // Quiet: nothing is shown, so nothing is redrawn either.
        progress: match args.quiet {
            true => ProgressMode::Plain,
            false => progress_mode(args.progress),
        },
    };
    // The RUN steps' output goes to the progress; anything else a step
    // might write to berth's stdout goes to stderr (or nowhere, quiet)
    // for as long as the build runs: stdout is the image id's.
    let saved = rustix::io::dup(std::io::stdout().as_fd()).context("dup stdout")?;
    let sink = if args.quiet {
        Some(std::fs::OpenOptions::new().write(true).open("/dev/null")?)
    } else {
        None
    };
    let stderr = std::io::stderr();
    let into = match &sink {
        Some(f) => f.as_fd(),
        None => stderr.as_fd(),
    };
    rustix::stdio::dup2_stdout(into).context("redirect stdout")?;
    let mut progress: Box<dyn std::io::Write> = if args.quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::BufWriter::new(std::io::stderr()))
    };
    let built = run_build(engine, &req, &mut progress);
    drop(progress);
    rustix::stdio::dup2_stdout(&saved).context("restore stdout")?;
    let built = built?;
    if let Some(f) = &args.iidfile {
        std::fs::write(f, built.image.id.to_string())
            .with_context(|| format!("write the image id to {}", f.display()))?;
    }
    if args.quiet {
        outln!("{}", built.image.id);
    }
    Ok(0)
}

/// `--progress`: `auto` is the live view when stderr is a terminal.
fn progress_mode(arg: ProgressArg) -> ProgressMode {
    let stderr = std::io::stderr();
    let tty = match arg {
        ProgressArg::Plain => false,
        ProgressArg::Tty => true,
        ProgressArg::Auto => rustix::termios::isatty(&stderr),
    };
    if !tty {
        return ProgressMode::Plain;
    }
    // Not a terminal (`--progress tty` into a file) or no size: 80.
    let width = rustix::termios::tcgetwinsize(&stderr)
        .map(|w| usize::from(w.ws_col))
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(80);
    ProgressMode::Tty { width }
}

/// `builder prune`: every cache entry, and the intermediate images no tag
/// and no container keeps; then the blobs and snapshots nothing needs.
pub fn prune(engine: &Engine) -> Result<u8> {
    let pruned = berth_engine::build::cache::prune(engine)?;
    let (blobs, bytes) = engine.store.prune_blobs()?;
    let snaps = berth_engine::rootfs_prep::prune(engine)?;
    for ev in &pruned.events {
        if let berth_image::RemoveEvent::Deleted(d) = ev {
            outln!("deleted: {d}");
        }
    }
    outln!(
        "Total reclaimed space: {} ({blobs} blobs, {snaps} snapshots)",
        crate::table::human_size(bytes)
    );
    Ok(0)
}

/// `--secret id=ID,src=PATH` (`source=`, `type=file`) or `id=ID,env=VAR`
/// (`type=env`), as buildx takes it; a lone `src` or `env` names the id
/// too, as buildx defaults it.
fn parse_secret(spec: &str) -> Result<Secret> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .with_context(|| format!("invalid field {field:?}: expected KEY=VALUE"))?;
        match k {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" if v == "file" || v == "env" => kind = Some(v.to_string()),
            "type" => bail!("unsupported secret type {v:?}"),
            _ => bail!("unexpected key {k:?}"),
        }
    }
    // `type=env` with `src` names the variable.
    if kind.as_deref() == Some("env") && env.is_none() {
        env = src.take();
    }
    let source = match (src, env) {
        (Some(p), None) => SecretSource::File(p.into()),
        (None, Some(v)) => SecretSource::Env(v),
        (None, None) => match &id {
            Some(i) => SecretSource::Env(i.clone()),
            None => bail!("id is required"),
        },
        (Some(_), Some(_)) => bail!("give src or env, not both"),
    };
    let id = match (id, &source) {
        (Some(i), _) => i,
        (None, SecretSource::File(p)) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("id is required")?,
        (None, SecretSource::Env(v)) => v.clone(),
    };
    Ok(Secret { id, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(spec: &str) -> (String, String) {
        let s = parse_secret(spec).unwrap();
        let src = match s.source {
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Env(v) => format!("env {v}"),
        };
        (s.id, src)
    }

    #[test]
    fn secrets_read_as_buildx_reads_them() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(read("id=tok,src=/a/b"), pair("tok", "file /a/b"));
        assert_eq!(read("id=tok,source=/a/b"), pair("tok", "file /a/b"));
        assert_eq!(read("src=/a/npmrc"), pair("npmrc", "file /a/npmrc"));
        assert_eq!(read("id=tok,env=TOKEN"), pair("tok", "env TOKEN"));
        assert_eq!(read("id=tok,type=env,src=T"), pair("tok", "env T"));
        assert_eq!(read("id=TOKEN"), pair("TOKEN", "env TOKEN"));
        assert!(parse_secret("tok").is_err());
        assert!(parse_secret("id=a,src=/x,env=Y").is_err());
        assert!(parse_secret("id=a,type=ssh").is_err());
        assert!(parse_secret("id=a,bogus=1").is_err());
    }
}
