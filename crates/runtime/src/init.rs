//! A minimal init for `--init`: PID 1 that runs the command as its child in
//! the child's own process group, forwards signals to it, reaps every
//! zombie, and exits with the command's status — what tini does.

use crate::sys;
use berth_io::errln;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

/// Entry point when berth runs as the container's init. `argv` is the full
/// argument vector: `[argv0, "--", cmd, args...]` (the `--` is optional).
pub fn init_main(argv: &[OsString]) -> ! {
    let mut args = argv.get(1..).unwrap_or_default();
    if args.first().map(|a| a.as_bytes()) == Some(b"--") {
        args = &args[1..];
    }
    if args.is_empty() {
        errln!("berth-init: no command given (usage: berth-init -- COMMAND [ARG...])");
        std::process::exit(125);
    }
    let argv_c: Vec<CString> = match args.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => {
            errln!("berth-init: argument contains a NUL byte");
            std::process::exit(125);
        }
    };

    // Not PID 1 (no PID namespace): still adopt orphans of our subtree
    // (any non-zero argument makes this process a subreaper).
    if !rustix::process::getpid().is_init() {
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::Pid::INIT));
    }
    let shown = args[0].to_string_lossy().into_owned();

    // Everything is blocked in init and taken synchronously by sigwaitinfo.
    let all = sys::sigset_all();
    let old = sys::sigmask(libc::SIG_SETMASK, &all);

    // SAFETY: init is single-threaded, so the child may do anything before
    // exec; it only execs (argv was prepared above) or exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        errln!("berth-init: fork: {}", std::io::Error::last_os_error());
        std::process::exit(125);
    }
    if child == 0 {
        exec_command(&argv_c, &old, &shown);
    }
    forward_and_reap(child, &all)
}

/// The forked child: its own process group, in the terminal's foreground,
/// with the caller's signal mask, then the command.
fn exec_command(argv: &[CString], mask: &libc::sigset_t, shown: &str) -> ! {
    use rustix::stdio::stdin;
    let _ = rustix::process::setpgid(None, None);
    // Take the terminal's foreground so ^C reaches the command; SIGTTOU
    // is still blocked here so this cannot stop us.
    if rustix::termios::isatty(stdin()) {
        let _ = rustix::termios::tcsetpgrp(stdin(), rustix::process::getpgrp());
    }
    sys::sigmask(libc::SIG_SETMASK, mask);
    let mut p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    p.push(std::ptr::null());
    // SAFETY: a NULL-terminated array of pointers into `argv`'s C strings,
    // which outlive the call.
    unsafe { libc::execvp(p[0], p.as_ptr()) };
    let err = std::io::Error::last_os_error();
    // init is single-threaded, so formatting after fork is safe.
    errln!("berth-init: exec {shown}: {err}");
    sys::exit_now(if err.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    })
}

/// Forward every signal but SIGCHLD to the command; on SIGCHLD reap every
/// child (orphans re-parented to us as well as the command), and exit with
/// the command's status once it is gone.
fn forward_and_reap(child: libc::pid_t, all: &libc::sigset_t) -> ! {
    use rustix::process::{WaitOptions, wait};
    loop {
        let Ok(sig) = sys::sigwait(all) else {
            continue;
        };
        if sig != libc::SIGCHLD {
            // The child may already be gone (ESRCH).
            let _ = sys::kill(child, sig);
            continue;
        }
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            if pid.as_raw_nonzero().get() == child {
                std::process::exit(sys::exit_code(status.as_raw()));
            }
        }
    }
}
