//! berth's container networks, the host side of them: network namespaces
//! kept on files ([`netns`]), links, addresses and routes set over
//! rtnetlink in-process ([`netlink`]: microseconds a call, where each run
//! of `ip` costs a fork and an exec), address leases ([`ipam`]), and the
//! DNS server of a user-defined network ([`dns`]).
//!
//! It knows nothing of containers or images: the engine says which
//! namespace gets which address on which bridge, and the runtime joins the
//! namespace by path.

pub mod dns;
pub mod ipam;
pub mod netlink;
pub mod netns;

pub use ipam::{Leases, Subnet};
pub use netlink::Netlink;
pub use netns::NetNs;

/// What failed (`add veth pair veth1 and eth0`), and why.
#[derive(Debug)]
pub struct Error {
    what: String,
    why: Why,
}

#[derive(Debug)]
enum Why {
    Io(std::io::Error),
    Msg(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(what: String, e: std::io::Error) -> Error {
        Error {
            what,
            why: Why::Io(e),
        }
    }

    pub(crate) fn msg(what: String, why: String) -> Error {
        Error {
            what,
            why: Why::Msg(why),
        }
    }

    /// The errno, when the kernel said no.
    pub fn errno(&self) -> Option<i32> {
        match &self.why {
            Why::Io(e) => e.raw_os_error(),
            Why::Msg(_) => None,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.why {
            Why::Io(e) => write!(f, "{}: {e}", self.what),
            Why::Msg(m) => write!(f, "{}: {m}", self.what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.why {
            Why::Io(e) => Some(e),
            Why::Msg(_) => None,
        }
    }
}
