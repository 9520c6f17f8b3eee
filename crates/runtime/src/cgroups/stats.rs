//! What a container's cgroup says it uses (`stats`, and later runc's
//! `events --stats`): CPU time, memory, block I/O, tasks. Each figure is
//! read on its own and is None when its controller is not there (on v1 a
//! container is only in the hierarchies its limits use); every file read
//! is small and capped.

use std::io::Read;
use std::path::Path;

use super::{Cgroup, Layout, v1, v2};

/// Cap on one cgroup file read: io.stat grows by a line per device.
const MAX_FILE: u64 = 1 << 20;

/// A cgroup's usage at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used by its tasks since it was made, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory in use as Docker counts it: the cgroup's usage less its
    /// inactive file cache (which the kernel reclaims first).
    pub memory_usage: Option<u64>,
    /// Its memory limit in bytes; None for none (or unknown).
    pub memory_limit: Option<u64>,
    /// Bytes read from and written to block devices.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// Tasks (threads included) in it.
    pub pids: Option<u64>,
}

impl Cgroup {
    /// What the cgroup uses now.
    pub fn stats(&self) -> Stats {
        match &self.layout {
            Layout::V2 { mount, .. } => v2::stats(&mount.join(&self.rel)),
            Layout::V1(hs) => {
                let dir_of = |controller: &str| {
                    hs.iter()
                        .find(|h| h.controllers.iter().any(|c| c == controller))
                        .map(|h| h.mount.join(&self.rel))
                        .filter(|d| d.is_dir())
                };
                v1::stats(&dir_of)
            }
        }
    }
}

/// The content of cgroup file `dir/name`, at most [`MAX_FILE`] bytes;
/// None when it cannot be read.
pub(super) fn read(dir: &Path, name: &str) -> Option<String> {
    let f = std::fs::File::open(dir.join(name)).ok()?;
    let mut s = String::new();
    f.take(MAX_FILE).read_to_string(&mut s).ok()?;
    Some(s)
}

/// A file holding one number.
pub(super) fn number(dir: &Path, name: &str) -> Option<u64> {
    read(dir, name)?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`key value` lines: memory.stat,
/// cpu.stat).
pub(super) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Usage less inactive file cache, as Docker's CLI computes it (the cache
/// only when it is smaller than the usage).
pub(super) fn without_cache(usage: u64, inactive_file: Option<u64>) -> u64 {
    match inactive_file {
        Some(c) if c < usage => usage - c,
        _ => usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in list {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn v2_files_read_as_docker_reads_them() {
        let d = files(&[
            (
                "cpu.stat",
                "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
            ),
            ("memory.current", "10485760\n"),
            (
                "memory.stat",
                "anon 4096\nfile 8192\ninactive_file 4194304\n",
            ),
            ("memory.max", "67108864\n"),
            (
                "io.stat",
                "8:0 rbytes=4096 wbytes=1000 rios=1 wios=1 dbytes=0 dios=0\n\
                 253:1 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
            ),
            ("pids.current", "3\n"),
        ]);
        let s = v2::stats(d.path());
        assert_eq!(s.cpu_usage_ns, Some(2_500_000));
        assert_eq!(s.memory_usage, Some(10_485_760 - 4_194_304));
        assert_eq!(s.memory_limit, Some(64 << 20));
        assert_eq!(s.io_read_bytes, Some(4196));
        assert_eq!(s.io_write_bytes, Some(1000));
        assert_eq!(s.pids, Some(3));
    }

    #[test]
    fn v2_without_limit_or_controllers() {
        let d = files(&[("memory.current", "100\n"), ("memory.max", "max\n")]);
        let s = v2::stats(d.path());
        assert_eq!(s.memory_usage, Some(100));
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.cpu_usage_ns, None);
        assert_eq!(s.pids, None);
        // No io.stat: no figure, rather than a made-up zero.
        assert_eq!(s.io_read_bytes, None);
    }

    #[test]
    fn v1_files_read_as_docker_reads_them() {
        let cpu = files(&[("cpuacct.usage", "123456789\n")]);
        let mem = files(&[
            ("memory.usage_in_bytes", "2097152\n"),
            ("memory.stat", "cache 4096\ntotal_inactive_file 1048576\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
        ]);
        let blk = files(&[(
            "blkio.throttle.io_service_bytes",
            "8:0 Read 8192\n8:0 Write 4096\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n",
        )]);
        let dir_of = |c: &str| match c {
            "cpuacct" => Some(cpu.path().to_path_buf()),
            "memory" => Some(mem.path().to_path_buf()),
            "blkio" => Some(blk.path().to_path_buf()),
            _ => None,
        };
        let s = v1::stats(&dir_of);
        assert_eq!(s.cpu_usage_ns, Some(123_456_789));
        assert_eq!(s.memory_usage, Some(1_048_576));
        assert_eq!(s.memory_limit, None, "v1's 'unlimited' is no limit");
        assert_eq!(s.io_read_bytes, Some(8192));
        assert_eq!(s.io_write_bytes, Some(4096));
        assert_eq!(s.pids, None, "not in the pids hierarchy");
    }
}
