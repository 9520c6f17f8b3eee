//! IPv4 subnets and the leases of their addresses.
//!
//! A lease is a file named by the address in the network's lease
//! directory, holding its owner (a container id). It is made whole and
//! then linked into place: link(2) fails if the name exists, so two berths
//! taking addresses at once never get the same one and need no lock, and a
//! berth killed at any point leaves either no lease or a whole one, which
//! [`Leases::sweep`] gives back once its owner is gone.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, Result};

/// An IPv4 subnet: `172.17.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    net: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// `addr/prefix`, `addr` being the network's first address.
    pub fn new(net: Ipv4Addr, prefix: u8) -> Result<Subnet> {
        let s = Subnet { net, prefix };
        if prefix > 30 {
            return Err(Error::msg(
                format!("subnet {s}"),
                "too small: a prefix of at most /30 is needed (network, gateway, host, broadcast)"
                    .into(),
            ));
        }
        if u32::from(net) & !s.mask() != 0 {
            return Err(Error::msg(
                format!("subnet {s}"),
                format!(
                    "not a network address (did you mean {}/{prefix}?)",
                    Ipv4Addr::from(u32::from(net) & s.mask())
                ),
            ));
        }
        Ok(s)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network's own (first) address.
    pub fn network(&self) -> Ipv4Addr {
        self.net
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// Whether `ip` is in the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.net)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let longer = if shorter == self { other } else { self };
        shorter.contains(longer.net)
    }

    /// The first host address, which Docker gives the gateway (the bridge).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + 1)
    }

    /// Host addresses, lowest first: neither the network's nor the
    /// broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.net) + 1;
        let last = u32::from(self.net) | !self.mask();
        (first..last).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Subnet> {
        let bad = |why: &str| Error::msg(format!("subnet {s:?}"), why.into());
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("prefix must be 0 to 32"))?;
        Subnet::new(addr, prefix)
    }
}

/// The leases of one network's addresses.
pub struct Leases {
    dir: PathBuf,
}

impl Leases {
    /// The leases kept in `dir` (made when missing).
    pub fn new(dir: &Path) -> Result<Leases> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        Ok(Leases {
            dir: dir.to_path_buf(),
        })
    }

    /// Leases `want`, or else the lowest free host address of `subnet`
    /// (never the gateway), to `owner`.
    pub fn take(&self, subnet: &Subnet, owner: &str, want: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        let gateway = subnet.gateway();
        if let Some(ip) = want {
            if !subnet.contains(ip) || ip == gateway || !subnet.hosts().any(|h| h == ip) {
                return Err(Error::msg(
                    format!("address {ip}"),
                    format!("not a host address of subnet {subnet} other than its gateway"),
                ));
            }
            return match self.try_take(ip, owner)? {
                true => Ok(ip),
                false => Err(Error::msg(format!("address {ip}"), "already in use".into())),
            };
        }
        for ip in subnet.hosts().filter(|ip| *ip != gateway) {
            if self.try_take(ip, owner)? {
                return Ok(ip);
            }
        }
        Err(Error::msg(
            format!("subnet {subnet}"),
            "no free address left".into(),
        ))
    }

    /// Whether `ip` was free and is now `owner`'s.
    fn try_take(&self, ip: Ipv4Addr, owner: &str) -> Result<bool> {
        let path = self.dir.join(ip.to_string());
        if path.exists() {
            return Ok(false);
        }
        // Whole before it is visible: written under a name of its own, then linked.
        let tmp = tempfile_in(&self.dir, owner)?;
        let linked = std::fs::hard_link(tmp.path(), &path);
        drop(tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(format!("lease {}", path.display()), e)),
        }
    }

    /// Gives `ip` back, if `owner` holds it.
    pub fn give_back(&self, ip: Ipv4Addr, owner: &str) -> Result<()> {
        let path = self.dir.join(ip.to_string());
        if self.owner_of(&path).as_deref() == Some(owner) {
            std::fs::remove_file(&path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
        }
        Ok(())
    }

    /// Every lease, with its owner.
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("read {}", self.dir.display()), e))?;
        Ok(rd
            .flatten()
            .filter_map(|e| {
                let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                Some((ip, self.owner_of(&e.path())?))
            })
            .collect())
    }

    /// Gives back every lease whose owner `alive` says is gone, and what a
    /// killed berth left half made. The addresses given back.
    pub fn sweep(&self, alive: impl Fn(&str) -> bool) -> Result<Vec<Ipv4Addr>> {
        let mut freed = Vec::new();
        for (ip, owner) in self.list()? {
            if !alive(&owner) {
                self.give_back(ip, &owner)?;
                freed.push(ip);
            }
        }
        // Temporary files: their berth died between write and link.
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp")
                    && e.metadata().is_ok_and(|m| {
                        m.modified()
                            .ok()
                            .and_then(|t| t.elapsed().ok())
                            .is_some_and(|age| age.as_secs() > 60)
                    })
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(freed)
    }

    fn owner_of(&self, path: &Path) -> Option<String> {
        let s = std::fs::read_to_string(path).ok()?;
        // An owner is a container id: short, one line.
        (s.len() <= 128 && !s.contains('\n')).then_some(s)
    }
}

/// A file in `dir` holding `content`, removed when dropped.
fn tempfile_in(dir: &Path, content: &str) -> Result<TempFile> {
    use std::io::Write;
    for n in 0u32..100 {
        let path = dir.join(format!(".tmp{}-{n}", std::process::id()));
        match std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(content.as_bytes())
                    .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
                return Ok(TempFile(path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
        }
    }
    Err(Error::msg(
        format!("lease in {}", dir.display()),
        "no free temporary name".into(),
    ))
}

struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_check_like_docker() {
        let s: Subnet = "172.18.0.0/16".parse().unwrap();
        assert_eq!(s.to_string(), "172.18.0.0/16");
        assert_eq!(s.gateway(), Ipv4Addr::new(172, 18, 0, 1));
        assert!(s.contains(Ipv4Addr::new(172, 18, 255, 254)));
        assert!(!s.contains(Ipv4Addr::new(172, 19, 0, 1)));
        let e = "172.18.0.1/16".parse::<Subnet>().unwrap_err().to_string();
        assert!(e.contains("did you mean 172.18.0.0/16"), "{e}");
        for bad in ["172.18.0.0", "x/16", "10.0.0.0/33", "10.0.0.0/31"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        let small: Subnet = "10.1.2.0/30".parse().unwrap();
        let hosts: Vec<_> = small.hosts().collect();
        assert_eq!(
            hosts,
            [Ipv4Addr::new(10, 1, 2, 1), Ipv4Addr::new(10, 1, 2, 2)]
        );
        let a: Subnet = "10.0.0.0/8".parse().unwrap();
        let inner: Subnet = "10.9.0.0/16".parse().unwrap();
        assert!(a.overlaps(&inner) && inner.overlaps(&a));
        assert!(!a.overlaps(&s) && !s.overlaps(&a));
    }

    #[test]
    fn leases_go_lowest_first_never_twice_and_come_back() {
        let d = tempfile::tempdir().unwrap();
        let l = Leases::new(d.path()).unwrap();
        let s: Subnet = "10.1.2.0/29".parse().unwrap();
        let a = l.take(&s, "a", None).unwrap();
        let b = l.take(&s, "b", None).unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 1, 2, 2), Ipv4Addr::new(10, 1, 2, 3))
        );
        let e = l.take(&s, "c", Some(b)).unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
        assert!(l.take(&s, "c", Some(s.gateway())).is_err());
        assert!(l.take(&s, "c", Some(Ipv4Addr::new(10, 1, 3, 2))).is_err());
        assert_eq!(
            l.take(&s, "c", Some(Ipv4Addr::new(10, 1, 2, 6)))
                .unwrap()
                .octets()[3],
            6
        );
        // Only the owner gives an address back.
        l.give_back(a, "b").unwrap();
        assert!(
            l.take(&s, "d", Some(a))
                .unwrap_err()
                .to_string()
                .contains("in use")
        );
        l.give_back(a, "a").unwrap();
        assert_eq!(l.take(&s, "d", None).unwrap(), a);
        // .4 and .5 remain; then the subnet is full.
        l.take(&s, "e", None).unwrap();
        l.take(&s, "f", None).unwrap();
        let e = l.take(&s, "g", None).unwrap_err().to_string();
        assert!(e.contains("no free address"), "{e}");
        // Owners that are gone give theirs back.
        let freed = l.sweep(|o| o != "b" && o != "e").unwrap();
        assert_eq!(freed.len(), 2);
        assert_eq!(l.list().unwrap().len(), 3);
        assert!(
            std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().starts_with(".tmp"))
        );
    }

    #[test]
    fn concurrent_takers_never_share_an_address() {
        let d = tempfile::tempdir().unwrap();
        let s: Subnet = "10.9.0.0/24".parse().unwrap();
        let got: Vec<Ipv4Addr> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..20)
                .map(|i| {
                    let dir = d.path().to_path_buf();
                    sc.spawn(move || {
                        let l = Leases::new(&dir).unwrap();
                        (0..5)
                            .map(|j| l.take(&s, &format!("c{i}-{j}"), None).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut uniq = got.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 100);
        assert!(uniq.iter().all(|ip| s.contains(*ip) && *ip != s.gateway()));
    }
}
