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

    // Not PID 1 (no PID namespace): still adopt orphans of our subtree.
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::getpid() } != 1 {
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let shown = args[0].to_string_lossy().into_owned();

    // Everything is blocked in init and taken synchronously by sigwaitinfo.
    // SAFETY: sigfillset initialises the set.
    let all = unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut s);
        s
    };
    let old = sys::sigmask(libc::SIG_SETMASK, &all);

    // SAFETY: init is single-threaded; the child only calls async-signal-safe
    // functions before exec (argv was prepared above).
    let child = unsafe { libc::fork() };
    if child < 0 {
        errln!("berth-init: fork: {}", std::io::Error::last_os_error());
        std::process::exit(125);
    }
    if child == 0 {
        // SAFETY: async-signal-safe calls only, then exec or _exit.
        unsafe {
            libc::setpgid(0, 0);
            // Take the terminal's foreground so ^C reaches the command; SIGTTOU
            // is still blocked here so this cannot stop us.
            if libc::isatty(0) == 1 {
                libc::tcsetpgrp(0, libc::getpgrp());
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            let mut p: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
            p.push(std::ptr::null());
            libc::execvp(p[0], p.as_ptr());
            let err = std::io::Error::last_os_error();
            // init is single-threaded, so formatting after fork is safe.
            errln!("berth-init: exec {shown}: {err}");
            libc::_exit(if err.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            });
        }
    }

    loop {
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set and out-pointer.
        let sig = unsafe { libc::sigwaitinfo(&all, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: plain kill; the child may already be gone (ESRCH).
            unsafe { libc::kill(child, sig) };
            continue;
        }
        // Reap everything: orphans re-parented to us as well as the command.
        loop {
            let mut status = 0;
            // SAFETY: valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                std::process::exit(sys::exit_code(status));
            }
        }
    }
}
