//! Step containers a killed build left behind: each is labelled with the
//! pid of the berth that made it, and swept by the next build once that
//! berth is gone.

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
