//! The names the server answers for, from the hosts-style file the engine
//! keeps: `ADDRESS NAME [NAME...]` a line, `#` to the end of a line a
//! comment. The engine replaces the file (write and rename), so a change
//! shows as a new inode, size or mtime, and a removed file means the
//! network is gone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::message::{self, Rdata};
use crate::{Error, Result};

/// A network of a few hundred containers writes a few tens of KiB; what
/// lies past this is not read.
const FILE_MAX: u64 = 1 << 20;
/// Longer lines are skipped: no valid line of the engine's is this long.
const LINE_MAX: usize = 4096;

/// What tells one version of the file from the next.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// The names of the file, lowercase, and the addresses of each.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_name: HashMap<String, Vec<IpAddr>>,
    /// The first name given for each address, for PTR.
    by_addr: HashMap<IpAddr, String>,
    stamp: Option<Stamp>,
}

/// What a query finds in the table.
#[derive(Debug, PartialEq)]
pub(crate) enum Found<'t> {
    /// The name is the table's: these records (none for a type it has no
    /// records of).
    Local(Vec<Rdata<'t>>),
    /// Not a name of the table's: for upstream.
    Elsewhere,
}

impl Table {
    /// The table of the file at `path`; None when there is no file.
    pub(crate) fn load(path: &Path) -> Result<Option<Table>> {
        let mut t = Table::default();
        match t.refresh(path) {
            Ok(true) => Ok(Some(t)),
            Ok(false) => Ok(None),
            Err(e) => Err(Error::io(format!("read names {}", path.display()), e)),
        }
    }

    /// Reads the file again if it changed; false when it is gone. An
    /// unreadable new version leaves the table as it was.
    pub(crate) fn refresh(&mut self, path: &Path) -> std::io::Result<bool> {
        let stamp = match std::fs::metadata(path) {
            Ok(m) => Stamp::of(&m),
            Err(e) if gone(&e) => return Ok(false),
            Err(_) if self.stamp.is_some() => return Ok(true),
            Err(e) => return Err(e),
        };
        if Some(stamp) == self.stamp {
            return Ok(true);
        }
        match read(path) {
            Ok((text, stamp)) => {
                self.fill(&text);
                self.stamp = Some(stamp);
                Ok(true)
            }
            Err(e) if gone(&e) => Ok(false),
            Err(_) if self.stamp.is_some() => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn fill(&mut self, text: &[u8]) {
        self.by_name.clear();
        self.by_addr.clear();
        for line in text.split(|&b| b == b'\n') {
            if line.len() > LINE_MAX {
                continue;
            }
            let line = String::from_utf8_lossy(line);
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_ascii_whitespace();
            let Some(Ok(addr)) = words.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in words {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !message::valid_name(&name) {
                    continue;
                }
                self.by_addr.entry(addr).or_insert_with(|| name.clone());
                self.by_name.entry(name).or_default().push(addr);
            }
        }
        for addrs in self.by_name.values_mut() {
            addrs.sort_unstable();
            addrs.dedup();
        }
    }

    /// The records for a question of `qtype` and `qclass` about `name`
    /// (lowercase), rotated by `turn` so that a name many containers share
    /// (a network alias) spreads its clients over them, as Docker does.
    pub(crate) fn find(&self, name: &str, qtype: u16, qclass: u16, turn: usize) -> Found<'_> {
        use message::{CLASS_ANY, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR};
        if qtype == TYPE_PTR
            && let Some(addr) = message::reverse_addr(name)
            && let Some(owner) = self.by_addr.get(&addr)
        {
            return Found::Local(vec![Rdata::Ptr(owner)]);
        }
        let Some(addrs) = self.by_name.get(name) else {
            return Found::Elsewhere;
        };
        if qclass != CLASS_IN && qclass != CLASS_ANY {
            return Found::Local(Vec::new());
        }
        let mut records: Vec<Rdata> = addrs
            .iter()
            .filter(|a| match qtype {
                TYPE_A => a.is_ipv4(),
                TYPE_AAAA => a.is_ipv6(),
                TYPE_ANY => true,
                _ => false,
            })
            .map(|&a| Rdata::Addr(a))
            .collect();
        if !records.is_empty() {
            let n = records.len();
            records.rotate_left(turn % n);
        }
        Found::Local(records)
    }
}

fn gone(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// The file's first MiB (only whole lines of it) and its stamp, read
/// without blocking on something that is not a regular file.
fn read(path: &Path) -> std::io::Result<(Vec<u8>, Stamp)> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut text = Vec::new();
    f.take(FILE_MAX).read_to_end(&mut text)?;
    if text.len() as u64 == FILE_MAX
        && let Some(end) = text.iter().rposition(|&b| b == b'\n')
    {
        text.truncate(end);
    }
    Ok((text, Stamp::of(&meta)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use message::{CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR};

    fn table(text: &str) -> Table {
        let mut t = Table::default();
        t.fill(text.as_bytes());
        t
    }

    fn addrs(found: Found) -> Vec<String> {
        match found {
            Found::Local(r) => r
                .iter()
                .map(|r| match r {
                    Rdata::Addr(a) => a.to_string(),
                    Rdata::Ptr(n) => n.to_string(),
                })
                .collect(),
            Found::Elsewhere => vec!["elsewhere".into()],
        }
    }

    #[test]
    fn lines_give_names_their_addresses_and_comments_nothing() {
        let t = table(
            "# the network's names\n\
             172.18.0.2 Web web.alias. 0123456789ab # container web\n\
             172.18.0.3\tdb  shared\n\
             172.18.0.4 shared\n\
             fd00::4 shared\n\
             not-an-address nobody\n\
             172.18.0.9 bad..name\n\
             \n\
             #172.18.0.5 commented\n",
        );
        let find = |name, qtype| addrs(t.find(name, qtype, CLASS_IN, 0));
        assert_eq!(find("web", TYPE_A), ["172.18.0.2"]);
        assert_eq!(find("web.alias", TYPE_A), ["172.18.0.2"]);
        assert_eq!(find("0123456789ab", TYPE_A), ["172.18.0.2"]);
        assert_eq!(find("shared", TYPE_A), ["172.18.0.3", "172.18.0.4"]);
        assert_eq!(find("shared", TYPE_AAAA), ["fd00::4"]);
        assert_eq!(find("shared", TYPE_ANY).len(), 3);
        assert_eq!(find("web", TYPE_AAAA), Vec::<String>::new(), "NODATA");
        assert_eq!(find("web", 16), Vec::<String>::new(), "TXT: NODATA");
        for unknown in [
            "nobody",
            "commented",
            "bad..name",
            "web.",
            "web.alias.example",
        ] {
            assert_eq!(find(unknown, TYPE_A), ["elsewhere"], "{unknown}");
        }
        assert_eq!(find("2.0.18.172.in-addr.arpa", TYPE_PTR), ["web"]);
        assert_eq!(find("9.0.18.172.in-addr.arpa", TYPE_PTR), ["elsewhere"]);
        // The same name twice for one address is one record; other classes
        // of a known name have none.
        let t = table("10.0.0.1 a a\n10.0.0.1 a\n");
        assert_eq!(addrs(t.find("a", TYPE_A, CLASS_IN, 0)), ["10.0.0.1"]);
        assert_eq!(addrs(t.find("a", TYPE_A, 3, 0)), Vec::<String>::new());
    }

    #[test]
    fn a_shared_name_turns_its_addresses_round() {
        let t = table("10.0.0.1 s\n10.0.0.2 s\n10.0.0.3 s\n");
        let first = |turn| addrs(t.find("s", TYPE_A, CLASS_IN, turn))[0].clone();
        assert_eq!(
            [first(0), first(1), first(2), first(3)],
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
        );
    }

    #[test]
    fn a_file_is_read_again_when_replaced_and_its_removal_is_the_end() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("names");
        assert!(Table::load(&path).unwrap().is_none());
        std::fs::write(&path, "10.0.0.1 a\n").unwrap();
        let mut t = Table::load(&path).unwrap().unwrap();
        assert_eq!(addrs(t.find("a", TYPE_A, CLASS_IN, 0)), ["10.0.0.1"]);
        let tmp = d.path().join("names.tmp");
        std::fs::write(&tmp, "10.0.0.2 b\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(t.refresh(&path).unwrap());
        assert_eq!(addrs(t.find("a", TYPE_A, CLASS_IN, 0)), ["elsewhere"]);
        assert_eq!(addrs(t.find("b", TYPE_A, CLASS_IN, 0)), ["10.0.0.2"]);
        std::fs::remove_file(&path).unwrap();
        assert!(!t.refresh(&path).unwrap());
        // A directory where the file was is no table, but not the end
        // either of one that had been read.
        std::fs::create_dir(&path).unwrap();
        assert!(Table::load(&path).is_err());
        std::fs::write(&tmp, "10.0.0.3 c\n").unwrap();
        let mut t = Table::load(&tmp).unwrap().unwrap();
        std::fs::remove_file(&tmp).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        assert!(t.refresh(&tmp).unwrap());
        assert_eq!(addrs(t.find("c", TYPE_A, CLASS_IN, 0)), ["10.0.0.3"]);
    }

    #[test]
    fn only_the_first_mib_of_whole_short_lines_is_read() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("names");
        let mut text = format!("10.0.0.1 {}\n", "y".repeat(LINE_MAX));
        text.push_str("10.0.0.2 first\n");
        while text.len() < FILE_MAX as usize - 5 {
            text.push_str("# filler\n");
        }
        text.push_str("10.0.0.3 cut\n10.0.0.4 past\n");
        std::fs::write(&path, text).unwrap();
        let t = Table::load(&path).unwrap().unwrap();
        assert_eq!(addrs(t.find("first", TYPE_A, CLASS_IN, 0)), ["10.0.0.2"]);
        for name in ["cut", "past"] {
            assert_eq!(addrs(t.find(name, TYPE_A, CLASS_IN, 0)), ["elsewhere"]);
        }
        assert_eq!(t.by_name.len(), 1);
    }
}
