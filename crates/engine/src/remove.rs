//! Removing containers: `rm` (and `run --rm` at exit), and the sweep of
//! runs whose berth died, made before every `run`. Processes are named by
//! pid *and* start time and killed through the runtime's pidfd-based
//! [`berth_runtime::process`], never by a pid that may have been reused.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_runtime::process::{self, Process};

use crate::records::{ContainerRecord, Status};
use crate::{Engine, rootfs_prep, timefmt, trash};

/// Removes the container `key` names (id, id prefix or name); a running
/// one only with `force`, killing it first.
pub fn remove(engine: &Engine, key: &str, force: bool) -> Result<()> {
    let records = engine.records()?;
    let c = records.find(key)?;
    // A monitor in its restart back-off counts as running: it would
    // start the container again under the remover's feet.
    if c.is_running() || (c.restarting && c.supervisor_alive()) {
        if !force {
            bail!(
                "cannot remove container {key}: container is running: stop the container before removing or force remove"
            );
        }
        let c = records.update(&c.id, |r| {
            r.manually_stopped = true;
            Ok(r.clone())
        })?;
        if let Some((pid, start)) = c.supervisor
            && c.restarting
        {
            let _ = process::signal(pid, start, libc::SIGTERM);
        }
        if c.paused
            && let Some(path) = &c.cgroup
            && let Ok(layout) = berth_runtime::cgroups::Layout::detect()
            && let Ok(cg) = berth_runtime::cgroups::Cgroup::new(layout, path)
        {
            // A frozen process takes its SIGKILL only once thawed.
            let _ = cg.freeze(false);
        }
        if let (Some(pid), Some(start)) = (c.pid, c.pid_start)
            && let Err(e) = process::signal(pid, start, libc::SIGKILL)
        {
            tracing::debug!("kill container {key}: {e}");
        }
        // Give the supervisor a moment to record the exit and unmount.
        if let Some((pid, start)) = c.supervisor
            && let Ok(Some(p)) = Process::open(pid, start)
        {
            p.wait_exit(Duration::from_secs(10));
        }
    }
    remove_files(engine, &c.id, true)
}

/// Cleans up after berth processes that died while supervising a container
/// (SIGKILL, OOM, power cut): their containers died with them (PID 1 was
/// their child), but the rootfs mount and runtime state stay until someone
/// looks. Each such container is unmounted and recorded as exited (or
/// removed, if it was run with `--rm`). Also restarts the deletion of
/// what a killed remover left in the trash.
pub fn reap_dead_runs(engine: &Engine) -> Result<()> {
    trash::sweep(&engine.root);
    let records = engine.records()?;
    let _lock = records.lock()?;
    for mut c in records.list()? {
        if c.status != Status::Running && !c.rootfs_mounted {
            continue;
        }
        if c.supervisor.is_none() || c.supervisor_alive() {
            continue;
        }
        tracing::info!(
            "container {} outlived its berth process: cleaning up",
            c.name
        );
        kill_orphan(&c);
        if let Ok(rt) = berth_runtime::Container::load(&c.id, &engine.runtime_dir()) {
            let _ = rt.delete(true);
        }
        remove_cgroup(&c);
        crate::network::disconnect(engine, &mut c);
        rootfs_prep::unmount_rootfs(&records.dir(&c.id))?;
        if c.auto_remove {
            // --rm: removed at exit, as its berth would have done.
            remove_files(engine, &c.id, false)?;
            continue;
        }
        let _ = std::fs::remove_dir_all(engine.bundle_dir(&c.id));
        c.rootfs_mounted = false;
        c.status = Status::Exited;
        c.restarting = false;
        c.paused = false;
        if c.pid.take().is_some() {
            // PID 1 died of the parent-death signal its berth left it.
            c.exit_code.get_or_insert(128 + libc::SIGKILL);
        }
        c.finished.get_or_insert_with(timefmt::now_rfc3339);
        records.save(&c)?;
        crate::events::died(engine, &c);
    }
    Ok(())
}

/// [`reap_dead_runs`] for commands that only read (`ps`, `inspect`), so
/// that a container whose monitor was killed shows as exited: best effort.
/// (Rootless berth reads outside its user namespace, where it cannot
/// unmount; its rootfs mounts lived in the dead monitor's namespace.)
pub fn reap_for_readers(engine: &Engine) {
    if let Err(e) = reap_dead_runs(engine) {
        tracing::debug!("clean up after dead runs: {e:#}");
    }
}

/// A dead run's PID 1 may still run, orphaned: kill it (and with it its PID
/// namespace) if it is still that process, and give it a second to go.
fn kill_orphan(c: &ContainerRecord) {
    let (Some(pid), Some(start)) = (c.pid, c.pid_start) else {
        return;
    };
    match Process::open(pid, start) {
        Ok(Some(p)) => {
            if let Err(e) = p.signal(libc::SIGKILL) {
                tracing::debug!("kill {pid}: {e}");
            }
            p.wait_exit(Duration::from_secs(1));
        }
        Ok(None) => {}
        Err(e) => tracing::debug!("open process {pid}: {e}"),
    }
}

/// Removes the container's cgroup (killing what is left in it): its berth
/// may have died after making it and before the runtime recorded it.
fn remove_cgroup(c: &ContainerRecord) {
    let path = c
        .cgroup
        .clone()
        .unwrap_or_else(|| format!("/berth/{}", c.id));
    if let Err(e) = berth_runtime::cgroups::remove(&path) {
        tracing::debug!("remove cgroup {path}: {e}");
    }
}

/// Unmounts and removes everything of one container: its runtime state
/// and bundle now, its own directory (record, upper and work dirs) by
/// moving it to the trash at once, whose files go in the background.
/// With `sweep_cgroup`, also its cgroup, which the berth that ran it
/// removes itself (the runtime does, whatever happened) unless it died.
pub(crate) fn remove_files(engine: &Engine, id: &str, sweep_cgroup: bool) -> Result<()> {
    let records = engine.records()?;
    let cdir = records.dir(id);
    let runtime_dir = engine.runtime_dir();
    if let Ok(c) = berth_runtime::Container::load(id, &runtime_dir) {
        let _ = c.delete(true);
    }
    let rec = records.load(id).ok();
    if sweep_cgroup && let Some(c) = &rec {
        remove_cgroup(c);
    }
    if let Some(mut c) = rec.clone() {
        crate::network::disconnect(engine, &mut c);
    }
    let _ = std::fs::remove_dir_all(runtime_dir.join(id));
    let _ = std::fs::remove_dir_all(engine.bundle_dir(id));
    rootfs_prep::release_rootfs(&cdir)?;
    // Before the record goes: should this fail, a later rm tries again.
    let scratch = engine.scratch_dir(id);
    match berth_snapshot::remove_tree(&scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", scratch.display()));
        }
        _ => {}
    }
    trash::discard(&engine.root, &cdir)?;
    if let Some(c) = &rec {
        crate::events::container(engine, c, "destroy");
    }
    Ok(())
}
