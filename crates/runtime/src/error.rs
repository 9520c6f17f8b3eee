//! The runtime's error type. Its kind decides the exit code `berth run`
//! reports, mirroring Docker: 127 command not found, 126 command not
//! executable, 125 anything else that kept the container from starting.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command does not exist (exit code 127).
    NotFound,
    /// The command exists but cannot be executed (exit code 126).
    NotExecutable,
    /// Any other failure of the runtime or of container setup (exit code 125).
    Setup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn setup(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Setup,
            message: message.into(),
        }
    }

    /// Exit code Docker uses when a container fails this way.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::NotFound => 127,
            ErrorKind::NotExecutable => 126,
            ErrorKind::Setup => 125,
        }
    }

    pub(crate) fn kind_byte(&self) -> u8 {
        match self.kind {
            ErrorKind::NotFound => b'N',
            ErrorKind::NotExecutable => b'X',
            ErrorKind::Setup => b'S',
        }
    }

    pub(crate) fn from_kind_byte(b: u8, message: String) -> Self {
        let kind = match b {
            b'N' => ErrorKind::NotFound,
            b'X' => ErrorKind::NotExecutable,
            _ => ErrorKind::Setup,
        };
        Error { kind, message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach the step that failed to an OS error: `mount proc on /proc: EPERM…`.
pub(crate) trait Context<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::setup(format!("{}: {}", what(), strip_os_error(&e))))
    }
}

impl<T> Context<T> for rustix::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(std::io::Error::from).step(what)
    }
}

/// `No such file or directory (os error 2)` → `no such file or directory`,
/// the way Go (and therefore runc and Docker) print errno.
pub(crate) fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// The error of a failed exec of the container's command, as runc words
/// it: not found is 127, not executable 126.
pub(crate) fn exec_failed(program: &str, e: &std::io::Error) -> Error {
    Error {
        kind: match e.raw_os_error() {
            Some(libc::ENOENT) => ErrorKind::NotFound,
            Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
                ErrorKind::NotExecutable
            }
            _ => ErrorKind::Setup,
        },
        message: format!("exec {program}: {}", strip_os_error(e)),
    }
}
