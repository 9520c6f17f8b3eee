//! `--user` against the image's own /etc/passwd and /etc/group: the uid,
//! gid, supplementary groups and home the container's process gets.
//!
//! Rules are runc's GetExecUser (which Docker uses) plus what Docker adds
//! around it: a name must exist, a numeric uid need not (gid 0 then);
//! supplementary groups come from /etc/group membership of the user's name
//! unless a group was given; Docker puts the primary gid first in the
//! additional gids; HOME is the passwd entry's home, else `/` (runc's
//! default).
//!
//! Both files come from the image, so neither is trusted: they are read
//! inside the rootfs, only when regular files, at most [`MAX_FILE_BYTES`]
//! each, and parsed in one pass over their lines.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Result, anyhow, bail};

use berth_snapshot::Root;

/// Largest /etc/passwd or /etc/group read (a million users is ~60 MiB; an
/// image with more than a quarter of that is not one to run).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Linux's NGROUPS_MAX: setgroups(2) takes no more.
const MAX_GROUPS: usize = 65_536;

/// The process identity `--user` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Additional gids as Docker sets them: the primary gid, then the
    /// groups of /etc/group that list the user.
    pub additional_gids: Vec<u32>,
    /// Home directory from the passwd entry, `/` without one.
    pub home: String,
}

/// A text file of the image, `None` when absent; one-line errors name it.
pub fn read_image_file(root: &Root, path: &str) -> Result<Option<String>> {
    match root.read_file(Path::new(path), MAX_FILE_BYTES) {
        Ok(data) => Ok(data.map(|d| String::from_utf8_lossy(&d).into_owned())),
        Err(e) => bail!("image file {path} {e}"),
    }
}

/// Resolve `spec` (`name`, `uid`, `uid:gid`, `name:group`…) in `root`.
pub fn resolve_user(root: &Root, spec: &str) -> Result<ExecUser> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_image_file(root, "/etc/passwd")?.unwrap_or_default();
    let uid_num = user_arg.parse::<u32>().ok();
    // Root by default, as runc: the name still matters for its groups.
    let want_uid = if user_arg.is_empty() {
        Some(0)
    } else {
        uid_num
    };
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.splitn(7, ':').collect();
        if f.len() < 4 {
            return None;
        }
        let (u, g) = (f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?);
        let hit = (!user_arg.is_empty() && f[0] == user_arg) || want_uid == Some(u);
        hit.then(|| (u, g, f[0], f.get(5).copied().unwrap_or("")))
    });
    let (uid, mut gid, name, home) = match (entry, want_uid) {
        (Some((u, g, n, h)), _) => (u, g, n, h),
        (None, Some(u)) => (u, 0, "", ""),
        (None, None) => {
            bail!("unable to find user {user_arg}: no matching entries in passwd file")
        }
    };

    let group = read_image_file(root, "/etc/group")?.unwrap_or_default();
    // name:x:gid:member,member…
    let groups = group.lines().filter_map(|l| {
        let mut f = l.splitn(4, ':');
        let (n, _, id) = (f.next()?, f.next()?, f.next()?.parse::<u32>().ok()?);
        Some((n, id, f.next().unwrap_or("")))
    });
    let mut additional = Vec::new();
    match group_arg {
        Some(g) if !g.is_empty() => {
            let gnum = g.parse::<u32>().ok();
            gid = match groups
                .into_iter()
                .find(|(n, id, _)| *n == g || gnum == Some(*id))
            {
                Some((_, id, _)) => id,
                None => gnum.ok_or_else(|| {
                    anyhow!("unable to find group {g}: no matching entries in group file")
                })?,
            };
        }
        _ if !name.is_empty() => {
            let mut seen = HashSet::from([gid]);
            for (_, id, members) in groups {
                if members.split(',').any(|m| m == name) && seen.insert(id) {
                    additional.push(id);
                }
            }
        }
        _ => {}
    }
    additional.insert(0, gid);
    if additional.len() > MAX_GROUPS {
        bail!(
            "user {spec} is in {} groups, more than the {MAX_GROUPS} Linux allows",
            additional.len()
        );
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids: additional,
        home: if home.is_empty() { "/" } else { home }.to_string(),
    })
}
