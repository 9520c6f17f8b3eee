//! `build`: images from a Dockerfile, as `docker build` makes them.
//!
//! 1. The Dockerfile is parsed ([`dockerfile`]); the global ARGs are
//!    resolved with the `--build-arg`s; the target stage and the stages it
//!    needs (its base stage, its `COPY --from`s) are picked, the rest never
//!    built.
//! 2. The context is opened once as a root ([`copy::Context`]) with its
//!    `.dockerignore` ([`ignore`]); every source is resolved in it, so a
//!    symlink or `..` never leads out of it, and `../x` is refused.
//! 3. Each stage starts from its base (an image, pulled when missing; an
//!    earlier stage; `scratch`) and runs the base's ONBUILD triggers
//!    (`steps`). A RUN is a container made by the engine from the previous
//!    step's image, with `berth run`'s isolation and defaults, labelled
//!    with the building berth's pid; its upper dir becomes a layer through
//!    `commit`'s writer into an untagged intermediate image, and then,
//!    unmounted, that layer's snapshot (so the next step does not unpack
//!    what this one wrote), and the container is removed. A COPY/ADD
//!    streams its files from the context walk (`walk`) through a pipe
//!    into `cp`'s safe extraction in a created (never started) container,
//!    committed the same way. A RUN's `--network` and `--mount`s (cache,
//!    tmpfs, bind, secret: `steps/mounts.rs`) become the step
//!    container's network and binds/tmpfs, as `berth run` mounts them;
//!    their mount points are taken out of the upper dir before the
//!    commit. A flag no instruction takes is refused by the parser, as
//!    BuildKit refuses it. The config-only instructions (`meta`,
//!    [`crate::instructions`]) add history entries, no layers; WORKDIR
//!    also makes its directory when missing.
//! 4. The cache ([`cache`]) keys each step on its parent's key, its text
//!    after substitution, the ARGs a RUN sees, its flags as written and
//!    its bind mounts' content (never a secret, never a cache mount's
//!    files, as BuildKit), and, for COPY/ADD, the
//!    names, modes, owners and content digests copied (never mtimes), or
//!    for `COPY --from` the image's id. A context file's digest comes from
//!    the stat cache (`statcache`) while its stat is unchanged, so a hit
//!    reads no file; a miss checks every file it copies against the
//!    digest its key took; an ADD of a URL by its bytes, name and
//!    `Last-Modified`, as BuildKit keys it. A hit takes the intermediate image. Entries are
//!    one small file each, written by rename; one whose image was pruned
//!    is a miss.
//! 5. The target's image is stored (a config-only image when its last
//!    steps changed only the config) and tagged.
//!
//! Progress (`progress`) is BuildKit's: plain lines, each line of a
//! RUN's output with its step's number and time, or a live view on a
//! terminal; a failed RUN's last lines are shown after its error.
//!
//! Guarantees: a failed or killed build leaves no image of its own and no
//! half blob (everything goes through the store's write API); the step
//! containers a killed build left are swept by the next build. ADD of a
//! local tar unpacks it, `--chown` owning its entries (`steps/add.rs`);
//! ADD of an `http(s)://` URL downloads it from berth's own (the host's)
//! network namespace, as Docker's daemon does, unless the build's network
//! is `none` (`steps/url.rs`); git and other URLs are refused. `COPY
//! --from`'s globs are matched in the other stage's root
//! (`steps/glob.rs`). `SOURCE_DATE_EPOCH` clamps every layer mtime, so
//! layers are reproducible (and steps then unpack their parent's layer
//! rather than take its upper dir, whose mtimes are not clamped).

pub mod cache;
pub mod copy;
pub mod dockerfile;
pub mod ignore;
mod meta;
mod progress;
mod statcache;
mod state;
pub mod stdin;
mod steps;
mod walk;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use berth_image::{Compression, ImageRecord};

use crate::Engine;
use crate::request::Network;
use dockerfile::{Args, Dockerfile, Instruction};
pub use progress::ProgressMode;

/// Docker's predefined ARGs: usable without an ARG instruction.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What `build` is asked.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    /// `-f`; None: `CONTEXT/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// `-f -`: the Dockerfile's text (read from stdin by the front end).
    pub dockerfile_text: Option<String>,
    /// `-t`s.
    pub tags: Vec<String>,
    /// `--build-arg K=V`s, in order.
    pub build_args: Vec<(String, String)>,
    /// `--target`: the stage to build (else the last).
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: pull every base image, even one there is locally.
    pub pull: bool,
    /// `--platform`: the base images' platform (else the host's).
    pub platform: Option<String>,
    /// `--label K=V`s: on the image built.
    pub labels: Vec<(String, String)>,
    /// The RUN containers' network.
    pub network: Network,
    /// `--secret`s: what `RUN --mount=type=secret` mounts.
    pub secrets: Vec<Secret>,
    pub compression: Compression,
    /// How progress is shown (`--progress`).
    pub progress: ProgressMode,
}

/// `--secret id=ID,…`: a value kept out of every layer and cache key.
#[derive(Debug, Clone)]
pub struct Secret {
    pub id: String,
    pub source: SecretSource,
}

/// Where a secret's value is read (when a step mounts it).
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    /// An environment variable of berth's.
    Env(String),
}

/// A build's result.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: ImageRecord,
    /// How many steps (FROM, RUN, COPY, ADD) came from the cache.
    pub cached: usize,
    pub steps: usize,
}

/// A RUN that failed: its command and exit code.
#[derive(Debug)]
pub struct StepFailed {
    pub command: String,
    pub code: i32,
}

impl std::fmt::Display for StepFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process \"{}\" did not complete successfully: exit code: {}",
            self.command, self.code
        )
    }
}

impl std::error::Error for StepFailed {}

/// Builds `req`, progress to `out` as `req.progress` asks; each line of
/// a RUN's output goes there too, with its step's number.
pub fn build(engine: &Engine, req: &BuildRequest, out: &mut dyn Write) -> Result<Built> {
    let (text, shown) = match &req.dockerfile_text {
        Some(t) => (t.clone(), "Dockerfile".to_string()),
        None => {
            let path = req
                .dockerfile
                .clone()
                .unwrap_or_else(|| req.context.join("Dockerfile"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read dockerfile {}", path.display()))?;
            let shown = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Dockerfile".into());
            (text, shown)
        }
    };
    let df = dockerfile::parse(&text, &shown)?;
    for t in &req.tags {
        berth_image::store::familiar_tag(t)?;
    }
    let ctx = copy::Context::open_for(&req.context, req.dockerfile.as_deref())?
        .with_stat_cache(&engine.root);
    let globals = global_args(&df, &req.build_args)?;
    let target = match &req.target {
        Some(t) => stage_index(&df, &t.to_ascii_lowercase())
            .ok_or_else(|| anyhow!("target stage {t:?} could not be found"))?,
        None => df.stages.len() - 1,
    };
    let needed = needed_stages(&df, target);
    private_dirs(engine)?;
    steps::sweep(engine)?;
    let built = (|| {
        let mut b = steps::Builder::new(engine, req, &ctx, out, &df, &shown, &globals)?;
        for (i, _) in df.stages.iter().enumerate().take(target + 1) {
            if needed[i] {
                b.stage(i)?;
            }
        }
        b.finish(target)
    })();
    // What was learnt of the context holds whether or not the build did.
    if let Err(e) = ctx.save_stat_cache() {
        tracing::warn!("build: {e:#}");
    }
    let built = built?;
    unconsumed(&df, &req.build_args, out);
    Ok(built)
}

/// The build's own dirs under the engine root, made 0700 (and made so
/// again when older berths left them open): a step writes its cache
/// mounts and `rw` binds as the container's root, so a setuid binary it
/// plants there must be out of every other host user's reach, and the
/// stat cache names the context's files.
pub(crate) fn private_dirs(engine: &Engine) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in ["build-tmp", "build-cache", steps::CACHE_MOUNTS] {
        let d = engine.root.join(d);
        std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restrict {}", d.display()))?;
    }
    Ok(())
}

/// Docker's warning for `--build-arg`s no ARG declared.
fn unconsumed(df: &Dockerfile, build_args: &[(String, String)], out: &mut dyn Write) {
    let declared: Vec<String> = df
        .global_args
        .iter()
        .chain(df.stages.iter().flat_map(|s| &s.instructions))
        .filter(|i| i.keyword == "ARG")
        .flat_map(|i| {
            i.shell_text()
                .split_whitespace()
                .map(|w| w.split('=').next().unwrap_or(w).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut unused: Vec<&str> = build_args
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            !declared.iter().any(|d| d == k) && !PROXY_ARGS.contains(k) && *k != "SOURCE_DATE_EPOCH"
        })
        .collect();
    unused.sort();
    unused.dedup();
    if !unused.is_empty() {
        let _ = writeln!(
            out,
            "[Warning] One or more build-args [{}] were not consumed",
            unused.join(" ")
        );
    }
}

/// `SOURCE_DATE_EPOCH`: a `--build-arg` (as BuildKit takes it), else
/// the environment of `berth build`; unset or not a number: none.
pub(super) fn source_date_epoch(req: &BuildRequest) -> Option<i64> {
    let arg = req
        .build_args
        .iter()
        .rev()
        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
        .map(|(_, v)| v.clone());
    arg.or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The ARGs before the first FROM: `K=V`, a `--build-arg` over the default.
fn global_args(df: &Dockerfile, build_args: &[(String, String)]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for a in &df.global_args {
        for (k, v) in arg_pairs(a, &out, build_args)? {
            if let Some(v) = v {
                out.push(format!("{k}={v}"));
            }
        }
    }
    Ok(out)
}

/// An ARG's names and values (None: declared, no value): a build arg's
/// value over the default (substituted with `env`).
pub(crate) fn arg_pairs(
    inst: &Instruction,
    env: &[String],
    build_args: &[(String, String)],
) -> Result<Vec<(String, Option<String>)>> {
    let text = match &inst.args {
        Args::Shell(t) => t.clone(),
        Args::Exec(v) => v.join(" "),
    };
    let mut out = Vec::new();
    for w in text.split_whitespace() {
        let (k, default) = match w.split_once('=') {
            Some((k, v)) => (k, Some(crate::instructions::words(v, env)?.join(" "))),
            None => (w, None),
        };
        if k.is_empty() {
            bail!("ARG names must not be empty");
        }
        let given = build_args
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone());
        out.push((k.to_string(), given.or(default)));
    }
    Ok(out)
}

/// The stage named (or numbered) `name`.
pub(crate) fn stage_index(df: &Dockerfile, name: &str) -> Option<usize> {
    df.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(name))
        .or_else(|| name.parse::<usize>().ok().filter(|i| *i < df.stages.len()))
}

/// The stages `target` needs: its base stage and its `COPY --from`s,
/// recursively (earlier stages only, as in Docker).
fn needed_stages(df: &Dockerfile, target: usize) -> Vec<bool> {
    let mut needed = vec![false; df.stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed[i] {
            continue;
        }
        needed[i] = true;
        let s = &df.stages[i];
        let mut refs: Vec<String> = vec![s.base.to_ascii_lowercase()];
        for inst in &s.instructions {
            if let Some(f) = inst.flag("from") {
                refs.push(f.to_ascii_lowercase());
            }
            refs.extend(
                steps::mount_froms(inst)
                    .iter()
                    .map(|f| f.to_ascii_lowercase()),
            );
        }
        for r in refs {
            if let Some(j) = stage_index(df, &r).filter(|j| *j < i) {
                todo.push(j);
            }
        }
    }
    needed
}
