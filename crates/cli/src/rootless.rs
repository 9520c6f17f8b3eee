//! Rootless mode: berth run by an ordinary user. The container gets a user
//! namespace where that user is root, and, when /etc/subuid and
//! /etc/subgid grant the user a range and newuidmap/newgidmap are
//! installed, ids 1..=N map onto that range so images' other users work.
//! The rest of what rootless changes is decided here too, in one place.

use std::path::Path;

use anyhow::Result;
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec,
};

/// Whether berth runs without root.
pub fn active() -> bool {
    !rustix::process::geteuid().is_root()
}

fn mapping(container: u32, host: u32, size: u32) -> Result<LinuxIdMapping> {
    Ok(LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()?)
}

/// The subordinate range of `user` (name or numeric id) in `file`
/// (/etc/subuid format: `name:start:count`), the first one listed.
pub fn sub_range(file: &Path, user: &str, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != user && who != id.to_string() {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok()?))
    })
}

fn has_helper(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Id maps for this user: 0 → the user, 1.. → its subordinate range (if any).
pub fn id_maps() -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let name = user_name(uid);
    let mut uids = vec![mapping(0, uid, 1)?];
    let mut gids = vec![mapping(0, gid, 1)?];
    if has_helper("newuidmap")
        && has_helper("newgidmap")
        && let (Some((us, uc)), Some((gs, gc))) = (
            sub_range(Path::new("/etc/subuid"), &name, uid),
            sub_range(Path::new("/etc/subgid"), &name, gid),
        )
    {
        uids.push(mapping(1, us, uc)?);
        gids.push(mapping(1, gs, gc)?);
    } else {
        tracing::debug!(
            "rootless: no subordinate ids for {name} (or no newuidmap): only root exists in containers"
        );
    }
    Ok((uids, gids))
}

/// Adapt a spec for rootless: a user namespace with this user's maps; no
/// cgroup unless limits were asked for (and then it must be delegated);
/// no devpts gid option when gid 5 is not mapped.
pub fn adapt(spec: &mut Spec, has_limits: bool) -> Result<()> {
    let (uids, gids) = id_maps()?;
    let tty_gid_mapped = gids
        .iter()
        .any(|m| m.container_id() <= 5 && 5 < m.container_id() + m.size());
    if let Some(linux) = spec.linux_mut().as_mut() {
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()?,
        );
        linux.set_namespaces(Some(ns));
        linux.set_uid_mappings(Some(uids));
        linux.set_gid_mappings(Some(gids));
        if !has_limits {
            linux.set_resources(None);
            linux.set_cgroups_path(None);
        }
    }
    if !tty_gid_mapped && let Some(mounts) = spec.mounts_mut().as_mut() {
        for m in mounts
            .iter_mut()
            .filter(|m| m.typ().as_deref() == Some("devpts"))
        {
            let opts: Vec<String> = m
                .options()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.starts_with("gid="))
                .collect();
            m.set_options(Some(opts));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), "alice:100000:65536\n1001:300000:1000\n").unwrap();
        assert_eq!(
            super::sub_range(t.path(), "alice", 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            super::sub_range(t.path(), "bob", 1001),
            Some((300000, 1000))
        );
        assert_eq!(super::sub_range(t.path(), "carol", 1002), None);
    }
}
