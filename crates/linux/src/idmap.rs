//! The setuid helpers newuidmap and newgidmap (Debian's uidmap), which
//! write a process's id maps beyond the caller's own id after checking
//! /etc/subuid and /etc/subgid. Callers word their own errors from
//! [`HelperError`].

use std::process::Command;

/// Which ids a map is for, and so which helper writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    Uid,
    Gid,
}

impl Ids {
    /// `newuidmap` or `newgidmap`.
    pub fn helper(self) -> &'static str {
        match self {
            Ids::Uid => "newuidmap",
            Ids::Gid => "newgidmap",
        }
    }

    /// The file of subordinate ranges the helper checks: `/etc/subuid`
    /// or `/etc/subgid`.
    pub fn subid_file(self) -> &'static str {
        match self {
            Ids::Uid => "/etc/subuid",
            Ids::Gid => "/etc/subgid",
        }
    }
}

/// One line of an id map: ids `inside..inside+size` are `outside..` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub inside: u32,
    pub outside: u32,
    pub size: u32,
}

/// Why a helper did not write the map.
#[derive(Debug)]
pub enum HelperError {
    /// It could not be run (NotFound: not installed).
    Spawn(std::io::Error),
    /// It ran and failed; what it said on stderr, trimmed.
    Failed(String),
}

/// The map as /proc/PID/uid_map takes it: one `inside outside size` line each.
pub fn map_text(maps: &[Range]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.size))
        .collect()
}

/// Run newuidmap or newgidmap to write `maps` for `pid`.
pub fn run_helper(ids: Ids, pid: i32, maps: &[Range]) -> Result<(), HelperError> {
    let mut cmd = Command::new(ids.helper());
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.inside, m.outside, m.size].map(|v| v.to_string()));
    }
    let out = cmd.output().map_err(HelperError::Spawn)?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(HelperError::Failed(why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_written_a_line_each() {
        let maps = [
            Range {
                inside: 0,
                outside: 1000,
                size: 1,
            },
            Range {
                inside: 1,
                outside: 100000,
                size: 65536,
            },
        ];
        assert_eq!(map_text(&maps), "0 1000 1\n1 100000 65536\n");
        assert_eq!(Ids::Gid.helper(), "newgidmap");
        assert_eq!(Ids::Uid.subid_file(), "/etc/subuid");
    }
}
