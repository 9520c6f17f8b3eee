//! berth-io: how berth reads the files it is given and writes its own
//! output, shared by every crate of berth (image, rootfs, runtime, engine,
//! command line); it depends on none of them.
//!
//! - [`read_capped`] / [`read_capped_string`]: every file a user names
//!   (`--env-file`, a seccomp profile, `--config`, `~/.docker/config.json`,
//!   a registry's CA files, a bundle's `config.json`) and every host file
//!   berth copies (`/etc/hosts`, `/etc/passwd` …) is read up to a cap, so
//!   `/dev/zero` or a runaway file ends in a one-line error instead of
//!   gigabytes of memory or a read that never returns. The read is capped
//!   rather than the file required to be regular: `--env-file <(…)` (a
//!   pipe) must keep working.
//! - [`outln!`], [`out!`], [`errln!`]: berth's own writes to stdout and
//!   stderr. `println!` panics when the pipe is closed (`berth … | head`),
//!   and with `panic = "abort"` that is a core dump (exit 134). These drop
//!   what cannot be written, as a closed reader wants nothing more.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

/// One mebibyte: the cap of most small text inputs.
pub const MIB: u64 = 1 << 20;

/// Reads all of `path`, refusing past `limit` bytes. Errors keep the
/// kind of the underlying one (so a caller can still treat NotFound
/// apart) and read as one line: `<what> <path>: <problem>`, e.g.
/// `--env-file /dev/zero: larger than 1 MiB`.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(named)?;
    let mut buf = Vec::new();
    // One byte past the cap tells "exactly the cap" from "more".
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(named)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{what} {}: larger than {}", path.display(), size(limit)),
        ));
    }
    Ok(buf)
}

/// [`read_capped`] for text: invalid UTF-8 is an error naming the file.
pub fn read_capped_string(path: &Path, limit: u64, what: &str) -> io::Result<String> {
    String::from_utf8(read_capped(path, limit, what)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: not UTF-8 text", path.display()),
        )
    })
}

/// `1 MiB`, `64 KiB`, `100 bytes`: a cap as people say it.
fn size(n: u64) -> String {
    match n {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// Writes to stdout, dropping what a closed or failing stdout refuses.
pub fn write_out(args: fmt::Arguments) {
    let _ = io::stdout().lock().write_fmt(args);
}

/// Writes to stderr, dropping what a closed or failing stderr refuses.
pub fn write_err(args: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `println!` that never panics (see the crate's header).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics (see the crate's header).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (see the crate's header).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_cap_and_name_the_file() {
        let e = read_capped(Path::new("/dev/zero"), MIB, "--env-file").unwrap_err();
        assert_eq!(e.to_string(), "--env-file /dev/zero: larger than 1 MiB");
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, [b'x'; 1024]).unwrap();
        assert_eq!(read_capped(&f, 1024, "t").unwrap().len(), 1024);
        let e = read_capped(&f, 1023, "t").unwrap_err();
        assert!(e.to_string().ends_with(": larger than 1023 bytes"), "{e}");
        let e = read_capped(&d.path().join("no"), 1, "config").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("config /"), "{e}");
        std::fs::write(&f, [0xff]).unwrap();
        let e = read_capped_string(&f, 1, "t").unwrap_err();
        assert!(e.to_string().ends_with("not UTF-8 text"), "{e}");
    }
}
