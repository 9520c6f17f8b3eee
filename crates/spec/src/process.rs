//! The container's process from the image and the flags, by Docker's
//! rules: its command, environment and working directory, and a check that
//! execve(2) will take them.

use std::collections::HashMap;

use anyhow::{Result, bail};
use oci_spec::runtime::PosixRlimit;

use crate::options::RunOptions;

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's rules: `--entrypoint X` replaces the entrypoint and drops the
/// image Cmd; `--entrypoint ""` clears it; arguments replace Cmd.
pub fn command(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    opts: &RunOptions,
) -> Result<Vec<String>> {
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => image_entrypoint.map(<[String]>::to_vec).unwrap_or_default(),
    };
    let cmd: Vec<String> = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        vec![]
    } else {
        image_cmd.map(<[String]>::to_vec).unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd and none was given");
    }
    Ok(args)
}

pub(crate) fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Replace entries with the same key in place, append new ones; a bare
/// `KEY` (no `=`) removes KEY (Docker's ReplaceOrAppendEnvValues). One pass:
/// keys are indexed, so an image with 100,000s of entries costs as many
/// hash lookups, not their square.
pub fn merge_env(base: Vec<String>, layers: &[&[String]]) -> Vec<String> {
    let mut slots: Vec<Option<String>> = Vec::with_capacity(base.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    let overrides = layers.iter().flat_map(|l| l.iter());
    for e in base.iter().chain(overrides) {
        match e.split_once('=') {
            None => {
                if let Some(i) = index.remove(e.as_str()) {
                    slots[i] = None;
                }
            }
            Some((key, _)) => match index.get(key) {
                Some(&i) => slots[i] = Some(e.clone()),
                None => {
                    index.insert(key.to_string(), slots.len());
                    slots.push(Some(e.clone()));
                }
            },
        }
    }
    slots.into_iter().flatten().collect()
}

/// Docker's order: default PATH, HOSTNAME, TERM (with -t), then the image
/// env, then `-e`, later ones replacing earlier ones by key.
pub fn environment(image_env: &[String], opts: &RunOptions) -> Vec<String> {
    let mut env = vec![
        DEFAULT_PATH.to_string(),
        format!("HOSTNAME={}", opts.hostname),
    ];
    if opts.tty {
        env.push("TERM=xterm".into());
    }
    merge_env(env, &[image_env, &opts.env])
}

/// The working directory: `--workdir`, else the image's, `/` when empty.
/// It must be absolute, and is cleaned lexically like Go's filepath.Clean:
/// `..` stops at `/`.
pub(crate) fn working_dir(flag: Option<&str>, image: Option<&str>) -> Result<String> {
    let cwd = flag.or(image).filter(|w| !w.is_empty()).unwrap_or("/");
    if !cwd.starts_with('/') {
        bail!("the working directory {cwd:?} is invalid, it needs to be an absolute path");
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in cwd.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Linux's ARG_MAX: the least execve(2) accepts for strings, whatever the stack.
const ARG_MAX: u64 = 32 * 4096;

/// MAX_ARG_STRLEN: the longest single argument or environment string.
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Refuse, before anything is made, a command execve(2) would refuse with
/// E2BIG: by the kernel's own sum (fs/exec.c), strings with their NULs
/// plus one pointer each must fit in a quarter of the stack limit, capped
/// at 6 MiB and never below ARG_MAX. `stack` is RLIMIT_STACK's soft value.
pub(crate) fn check_exec_size(args: &[String], env: &[String], stack: Option<u64>) -> Result<()> {
    let limit = stack.map_or(6 << 20, |s| (s / 4).min(6 << 20)).max(ARG_MAX);
    let mut total = 8 * (args.len() + env.len()) as u64;
    for (what, s) in args
        .iter()
        .map(|a| ("argument", a))
        .chain(env.iter().map(|e| ("environment variable", e)))
    {
        if s.len() >= MAX_ARG_STRLEN {
            let shown: String = env_key(s).chars().take(40).collect();
            bail!(
                "{what} {shown:?}… is {} bytes, more than the {MAX_ARG_STRLEN} execve accepts",
                s.len()
            );
        }
        total += s.len() as u64 + 1;
    }
    if total > limit {
        bail!(
            "the command's {} arguments and {} environment variables take {total} bytes, more than the {limit} execve accepts",
            args.len(),
            env.len()
        );
    }
    Ok(())
}

/// The soft RLIMIT_STACK the container's process will have: `--ulimit
/// stack`, else berth's own, which it inherits; None when unlimited.
pub(crate) fn stack_limit(rlimits: &[PosixRlimit]) -> Option<u64> {
    let given = rlimits
        .iter()
        .find(|r| r.typ() == oci_spec::runtime::PosixRlimitType::RlimitStack)
        .map(|r| r.soft());
    let soft =
        given.or_else(|| rustix::process::getrlimit(rustix::process::Resource::Stack).current)?;
    (soft != u64::MAX).then_some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_spec;
    use crate::common::image_root;
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn opts() -> RunOptions {
        RunOptions {
            hostname: "abc123".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_environment_execve_would_refuse_is_a_clear_error() {
        let t = image_root();
        // ~15 MiB of Env, as in the review's image: refused before any work.
        let env: Vec<String> = (0..140_000)
            .map(|i| format!("VAR_{i}={}", "x".repeat(100)))
            .collect();
        let img = ImageConfigurationBuilder::default()
            .config(
                ConfigBuilder::default()
                    .cmd(s(&["sh"]))
                    .env(env)
                    .working_dir("/made")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let o = RunOptions {
            rootfs: t.path().into(),
            ..opts()
        };
        let e = build_spec(&img, &o).unwrap_err().to_string();
        assert!(
            e.contains("140003 environment variables take") && e.contains("execve accepts"),
            "{e}"
        );
        assert!(
            !t.path().join("made").exists(),
            "nothing made before refusing"
        );
        // One string over MAX_ARG_STRLEN is refused by name.
        let e = check_exec_size(&s(&["sh"]), &[format!("BIG={}", "y".repeat(200_000))], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"BIG\"") && e.contains("131072"), "{e}");
        // The kernel's sum: a 128 KiB stack still allows ARG_MAX.
        assert!(check_exec_size(&s(&["sh"]), &s(&["A=1"]), Some(1024)).is_ok());
        let big: Vec<String> = (0..2000)
            .map(|i| format!("V{i}={}", "z".repeat(100)))
            .collect();
        assert!(check_exec_size(&s(&["sh"]), &big, Some(8 << 20)).is_ok());
        assert!(check_exec_size(&s(&["sh"]), &big, Some(512 << 10)).is_err());
    }
}
