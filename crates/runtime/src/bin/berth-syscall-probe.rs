//! Test helper, copied into test containers: makes raw syscalls that
//! busybox has no applet for, with arguments that can do no harm, and
//! prints how each ended, so tests can tell a seccomp refusal from the
//! kernel's own.
//!
//! Usage: berth-syscall-probe NAME… ; prints `NAME=OK` or `NAME=EPERM`
//! (etc.) per line.

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EBADF => "EBADF".into(),
        libc::EACCES => "EACCES".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENODEV => "ENODEV".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::ENOKEY => "ENOKEY".into(),
        libc::EXDEV => "EXDEV".into(),
        libc::ENOTEMPTY => "ENOTEMPTY".into(),
        other => format!("errno{other}"),
    }
}

/// Raw syscall result: Ok(value) or Err(errno).
fn check(rc: libc::c_long) -> Result<libc::c_long, i32> {
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

fn probe(name: &str) -> Result<libc::c_long, i32> {
    // SAFETY: in every arm, a raw syscall with constant arguments and
    // pointers to live static strings; none changes this process's memory.
    unsafe {
        match name {
            // KEYCTL_GET_KEYRING_ID of the session keyring, without creating it.
            "keyctl" => check(libc::syscall(libc::SYS_keyctl, 0, -3, 0)),
            // A key type that does not exist: ENODEV once past seccomp.
            "add_key" => check(libc::syscall(
                libc::SYS_add_key,
                c"berth-no-such-type".as_ptr(),
                c"probe".as_ptr(),
                std::ptr::null::<u8>(),
                0,
                -2,
            )),
            // A clone_args size of 0 is invalid: EINVAL once past seccomp.
            "clone3" => check(libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0)),
            "clone_newuser" => fork_with(libc::CLONE_NEWUSER),
            "fork" => fork_with(0),
            "personality_query" => check(libc::personality(0xffff_ffff) as libc::c_long),
            // ADDR_NO_RANDOMIZE: not one of the personas Docker allows.
            "personality_norandom" => {
                let r = check(libc::personality(0x0040000) as libc::c_long);
                if r.is_ok() {
                    libc::personality(0);
                }
                r
            }
            "socket_vsock" => socket(libc::AF_VSOCK),
            "socket_inet" => socket(libc::AF_INET),
            // Onto a path that does not exist: ENOENT once past seccomp.
            "mount" => check(libc::mount(
                c"none".as_ptr(),
                c"/berth-no-such-dir".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) as libc::c_long),
            // Wrong magic numbers: EINVAL once past seccomp and the
            // capability check; it can never reboot anything.
            "reboot" => check(libc::syscall(libc::SYS_reboot, 0, 0, 0, 0)),
            // Newer than Debian 12's libseccomp (x86_64 number 457): no
            // request, EFAULT once past seccomp.
            "statmount" => check(libc::syscall(
                457,
                std::ptr::null::<u8>(),
                std::ptr::null_mut::<u8>(),
                0,
                0,
            )),
            // On a path that does not exist: ENOENT once past seccomp.
            "fchmodat2" => check(libc::syscall(
                452,
                libc::AT_FDCWD,
                c"/berth-no-such-file".as_ptr(),
                0o755,
                0,
            )),
            // No parameters: EFAULT once past seccomp.
            "io_uring_setup" => check(libc::syscall(
                libc::SYS_io_uring_setup,
                0,
                std::ptr::null_mut::<u8>(),
            )),
            // Not a file descriptor: EBADF once past seccomp and the capability check.
            "finit_module" => check(libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0)),
            // The same through the i386 entry (int 0x80): getpid (20) and
            // statmount (457), which the filter judges per architecture.
            "i386_getpid" => int80(20),
            "i386_statmount" => int80(457),
            // The classic chroot escape: chroot into /tmp keeping the cwd
            // outside it, climb `..` far more than any depth, and see
            // where it ends: EXDEV unless at the / it started from.
            "chroot_climb" => chroot_climb(),
            // Unmount / and setns into this very mount namespace, which
            // lands on its root: ENOTEMPTY if /proc or /sys there has
            // anything in it. Only this container's view is changed.
            "old_root_bare" => old_root_bare(),
            _ => {
                eprintln!("berth-syscall-probe: unknown probe {name}");
                std::process::exit(2);
            }
        }
    }
}

fn chroot_climb() -> Result<libc::c_long, i32> {
    let id = |p: &str| -> Result<(u64, u64), i32> {
        let st = rustix::fs::stat(p).map_err(errno)?;
        Ok((st.st_dev, st.st_ino))
    };
    let top = id("/")?;
    // This process is the probe's alone.
    rustix::process::chdir("/").map_err(errno)?;
    rustix::process::chroot("/tmp").map_err(errno)?;
    for _ in 0..256 {
        rustix::process::chdir("..").map_err(errno)?;
    }
    if id(".")? == top {
        Ok(0)
    } else {
        Err(libc::EXDEV)
    }
}

fn old_root_bare() -> Result<libc::c_long, i32> {
    use rustix::fs::{Mode, OFlags};
    let ns = rustix::fs::open("/proc/self/ns/mnt", OFlags::RDONLY, Mode::empty()).map_err(errno)?;
    rustix::mount::unmount("/", rustix::mount::UnmountFlags::DETACH).map_err(errno)?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(rustix::thread::LinkNameSpaceType::Mount),
    )
    .map_err(errno)?;
    for dir in ["/proc", "/sys"] {
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(libc::ENOTEMPTY);
        }
    }
    Ok(0)
}

fn errno(e: rustix::io::Errno) -> i32 {
    e.raw_os_error()
}

/// An i386 syscall with null arguments, from 64-bit code.
fn int80(nr: i64) -> Result<libc::c_long, i32> {
    let ret: i64;
    // SAFETY: int 0x80 with null arguments for getpid/statmount; clobbers
    // only the registers named here (the compat entry saves the rest).
    unsafe {
        // rbx belongs to LLVM: saved and zeroed around the call.
        std::arch::asm!(
            "push rbx",
            "xor ebx, ebx",
            "int 0x80",
            "pop rbx",
            inlateout("rax") nr => ret,
            in("rcx") 0,
            in("rdx") 0,
            in("rsi") 0,
            in("rdi") 0,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as libc::c_long)
    }
}

fn socket(family: libc::c_int) -> Result<libc::c_long, i32> {
    use rustix::net::{AddressFamily, SocketType};
    // Closed at once (dropped).
    rustix::net::socket(
        AddressFamily::from_raw(family as rustix::net::RawAddressFamily),
        SocketType::STREAM,
        None,
    )
    .map_err(errno)?;
    Ok(0)
}

/// Raw clone (as glibc's fork does) with extra flags; the child exits at once.
fn fork_with(flags: libc::c_int) -> Result<libc::c_long, i32> {
    // SAFETY: the child only calls _exit, touching no state of the parent.
    let pid = check(unsafe {
        let pid = libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        );
        if pid == 0 {
            libc::_exit(0);
        }
        pid
    })?;
    let pid = rustix::process::Pid::from_raw(pid as i32);
    // Reaping our own child.
    let _ = rustix::process::waitpid(pid, rustix::process::WaitOptions::empty());
    Ok(0)
}

fn main() {
    for name in std::env::args().skip(1) {
        match probe(&name) {
            Ok(_) => println!("{name}=OK"),
            Err(e) => println!("{name}={}", errno_name(e)),
        }
    }
}
