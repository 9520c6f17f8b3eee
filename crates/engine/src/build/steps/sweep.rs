//! What a killed build left behind, swept by the next build once the
//! berth that made it is gone: its step containers (each labelled with
//! that berth's pid), and its temporary files, each named with the pid
//! (staging and bind-mount dirs and secret copies under `build-tmp`, a
//! cache mount being made, half-written cache entries).

use anyhow::Result;

use crate::Engine;

/// The label of a step's container: the pid of the berth building.
const STEP_LABEL: &str = "org.berth.build-step";

pub(super) fn step_label() -> std::collections::BTreeMap<String, String> {
    [(STEP_LABEL.to_string(), std::process::id().to_string())].into()
}

/// Removes the step containers a killed build left (their berth is gone;
/// a running build's are never touched).
pub(in crate::build) fn sweep(engine: &Engine) -> Result<()> {
    // A killed build's step is recorded running until someone looks.
    crate::remove::reap_dead_runs(engine)?;
    for c in engine.records()?.list()? {
        let Some(pid) = c.labels.get(STEP_LABEL) else {
            continue;
        };
        if !c.is_running()
            && !alive(pid)
            && let Err(e) = crate::remove::remove(engine, &c.id, true)
        {
            tracing::debug!("sweep build step {}: {e:#}", c.id);
        }
    }
    // `<pid>-<ns>`, `new-<pid>`, `.tmp-stat-<pid>`, `.tmp-<pid>-<key>`.
    type PidOf = fn(&str) -> Option<&str>;
    let leftovers: [(&str, PidOf); 3] = [
        ("build-tmp", |n| n.split_once('-').map(|(p, _)| p)),
        (super::mounts::CACHE_MOUNTS, |n| n.strip_prefix("new-")),
        ("build-cache", |n| {
            let rest = n.strip_prefix(".tmp-")?;
            rest.strip_prefix("stat-").unwrap_or(rest).split('-').next()
        }),
    ];
    for (dir, pid_of) in leftovers {
        let Ok(entries) = std::fs::read_dir(engine.root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = pid_of(&name).filter(|p| p.parse::<u32>().is_ok()) else {
                continue;
            };
            let path = e.path();
            if !alive(pid)
                && let Err(e) = berth_snapshot::remove_tree(&path)
            {
                tracing::debug!("sweep {}: {e}", path.display());
            }
        }
    }
    Ok(())
}

/// Whether process `pid` lives: a zombie does not (a killed rootless
/// berth's re-executed self may wait unreaped under an init that reaps
/// nothing).
fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name's closing parenthesis.
    match stat.rsplit_once(')') {
        Some((_, rest)) => !rest.trim_start().starts_with(['Z', 'X']),
        None => false,
    }
}
