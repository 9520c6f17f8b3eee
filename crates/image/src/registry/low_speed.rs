//! The low-speed limit on response bodies (curl's `--speed-limit`): a body
//! that trickles in is given up on, as a transient failure to retry, instead
//! of keeping a pull going for days.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use ureq::http::Response;

use super::Transient;

/// The low-speed limit of [`RegistryOptions`](super::RegistryOptions).
#[derive(Clone, Copy, Debug)]
pub(super) struct LowSpeed {
    pub(super) bytes: u64,
    pub(super) time: Duration,
}

impl LowSpeed {
    /// At most `limit` bytes of a small body (a token, an error), read
    /// under the limit too: a trickled 64 KiB would otherwise take hours.
    pub(super) fn read_small(
        self,
        resp: Response<ureq::Body>,
        limit: u64,
        what: String,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.guard(resp.into_body().into_reader(), what)
            .take(limit)
            .read_to_end(&mut v)?;
        Ok(v)
    }

    /// `inner` read under the limit; `what` names it in the errors.
    pub(super) fn guard<R: Read>(self, inner: R, what: String) -> Guarded<R> {
        Guarded {
            inner,
            what,
            limit: self,
            since: Instant::now(),
            got: 0,
        }
    }
}

/// A response body under the low-speed limit, whose I/O errors are
/// transient (retryable). Counting in fixed windows is enough: a stalled
/// body is caught within two windows, and the per-read timeout (at most one
/// window) wakes a read that gets nothing at all.
pub(super) struct Guarded<R> {
    inner: R,
    /// What is being read, from where, for the error.
    what: String,
    limit: LowSpeed,
    since: Instant,
    got: u64,
}

impl<R> Guarded<R> {
    fn stalled(&self) -> io::Error {
        let secs = self.limit.time.as_secs_f64();
        io::Error::new(
            io::ErrorKind::TimedOut,
            Transient(format!(
                "{} stalled: {} bytes in {secs:.0} s, under the low-speed limit of {} bytes per {secs:.0} s",
                self.what, self.got, self.limit.bytes
            )),
        )
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let res = self.inner.read(buf);
        let window_over = self.since.elapsed() >= self.limit.time;
        match res {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.got += n as u64;
                if window_over {
                    if self.got < self.limit.bytes {
                        return Err(self.stalled());
                    }
                    self.since = Instant::now();
                    self.got = 0;
                }
                Ok(n)
            }
            Err(_) if window_over && self.got < self.limit.bytes => Err(self.stalled()),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                Transient(format!("{}: {e}", self.what)),
            )),
        }
    }
}
