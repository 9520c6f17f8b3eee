//! seccomp: the spec's `linux.seccomp` compiled to a classic BPF program by
//! libseccomp in the runtime process, cached, and installed by the child
//! with one `seccomp(2)` call just before exec.
//!
//! Compiling Docker's default profile takes libseccomp about 20 ms, more
//! than the rest of a container start, so a program is compiled once and
//! kept in a cache directory, keyed by the SHA-256 of the serialized
//! `linux.seccomp`, the architecture and the libseccomp version. A cache
//! file is the program followed by the SHA-256 of the program: one that is
//! torn, truncated or altered fails the check and is compiled again.

use crate::error::{Error, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One `struct sock_filter`: u16 code, u8 jt, u8 jf, u32 k.
const INSN: usize = 8;
/// The kernel's BPF_MAXINSNS.
const MAX_INSNS: usize = 4096;
/// Bumped whenever the way a spec becomes a program changes.
const CACHE_FORMAT: &str = "berth-seccomp-3";
/// Entries kept in a cache directory; beyond, the least recently used go
/// (every distinct profile and capability set is an entry of ~10 KiB).
pub const CACHE_MAX_ENTRIES: usize = 64;

/// A compiled filter, ready for the child to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The BPF instructions, in the kernel's `struct sock_filter` layout.
    pub bpf: Vec<u8>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    pub flags: libc::c_ulong,
    /// Whether it came from the cache.
    pub cached: bool,
}

fn err(msg: impl std::fmt::Display) -> Error {
    Error::setup(format!("seccomp: {msg}"))
}

/// Syscalls that may be newer than the libseccomp berth links (Debian 12's
/// 2.5.4 knows those up to Linux 6.6), which profiles such as Docker's
/// current default name. Those libseccomp does not know are left out of
/// the filter and fall under the ENOSYS prelude (see [`enosys_prelude`]):
/// the container's libc sees "not implemented" and falls back, as under
/// runc with the same libseccomp. Any other unknown name is an error.
const NEWER_SYSCALLS: &[&str] = &[
    "cachestat",
    "fchmodat2",
    "map_shadow_stack",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "uretprobe",
    "riscv_hwprobe",
];

/// Whether a profile may name this syscall: libseccomp knows it, or it is
/// one of the syscalls newer than libseccomp.
pub fn known_syscall(name: &str) -> bool {
    ScmpSyscall::from_name(name).is_ok() || NEWER_SYSCALLS.contains(&name)
}

/// The cache key of a spec: what the compiled program depends on.
pub fn cache_key(seccomp: &LinuxSeccomp) -> Result<String> {
    let json = serde_json::to_vec(seccomp).map_err(err)?;
    let v = libseccomp::ScmpVersion::current().map_err(err)?;
    let mut h = Sha256::new();
    h.update(format!(
        "{CACHE_FORMAT}\0{}\0{}.{}.{}\0",
        std::env::consts::ARCH,
        v.major,
        v.minor,
        v.micro
    ));
    h.update(&json);
    Ok(hex::encode(h.finalize()))
}

/// The program for `seccomp`, from `cache_dir` when it holds a sound copy,
/// otherwise compiled (and stored there if the directory can be written;
/// a cache that cannot be written only costs time).
pub fn prepare(seccomp: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Program> {
    let flags = filter_flags(seccomp)?;
    let path = match cache_dir {
        Some(dir) => Some(dir.join(format!("{}.bpf", cache_key(seccomp)?))),
        None => None,
    };
    if let Some(bpf) = path.as_deref().and_then(read_cached) {
        return Ok(Program {
            bpf,
            flags,
            cached: true,
        });
    }
    let bpf = compile(seccomp)?;
    if let Some(p) = &path {
        match write_cached(p, &bpf) {
            Ok(()) => prune_cache(p.parent().unwrap_or(Path::new(".")), CACHE_MAX_ENTRIES),
            Err(e) => tracing::warn!("seccomp cache {}: {e}", p.display()),
        }
    }
    Ok(Program {
        bpf,
        flags,
        cached: false,
    })
}

/// A cache entry's program, if it is sound.
fn read_cached(path: &Path) -> Option<Vec<u8>> {
    // A sound entry is at most MAX_INSNS instructions and a digest.
    let cap = (MAX_INSNS * INSN + 32) as u64;
    let mut data = berth_io::read_capped(path, cap, "seccomp cache").ok()?;
    let ok = data.len() > 32 && {
        let n = data.len() - 32;
        n % INSN == 0 && n / INSN <= MAX_INSNS && Sha256::digest(&data[..n])[..] == data[n..]
    };
    if !ok {
        tracing::warn!(
            "seccomp cache {} is corrupt: compiling again",
            path.display()
        );
        return None;
    }
    data.truncate(data.len() - 32);
    Some(data)
}

/// Keep the `max` most recently used entries of a cache directory (by
/// access time, which reads of an entry advance), removing the others.
/// Best effort: a concurrent reader of a removed entry just compiles again.
pub fn prune_cache(dir: &Path, max: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut bpf: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bpf"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.accessed().or_else(|_| m.modified()).ok()?, e.path()))
        })
        .collect();
    if bpf.len() <= max {
        return;
    }
    bpf.sort();
    for (_, p) in &bpf[..bpf.len() - max] {
        let _ = std::fs::remove_file(p);
    }
}

/// Store atomically: a reader sees the whole entry or none.
fn write_cached(path: &Path, bpf: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bpf)?;
        f.write_all(&Sha256::digest(bpf))?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn filter_flags(seccomp: &LinuxSeccomp) -> Result<libc::c_ulong> {
    let mut flags: libc::c_ulong = 0;
    for f in seccomp.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // The runtime is single-threaded when the filter goes on.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(err(
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs seccomp notify, which is not supported",
                ));
            }
        };
    }
    Ok(flags)
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    // runtime-spec: errnoRet defaults to EPERM.
    let errno = errno.unwrap_or(libc::EPERM as u32);
    let errno = i32::try_from(errno)
        .ok()
        .filter(|e| *e <= 0xffff)
        .ok_or_else(|| err(format!("errnoRet {errno} out of range")))?;
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(err("SCMP_ACT_NOTIFY (seccomp notify) is not supported"));
        }
    })
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // value is the mask, valueTwo what the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

/// Compile with libseccomp, always (no cache).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<u8>> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(err)?;
    // A binary tree of syscall numbers rather than a list: the kernel
    // takes 0.3 ms instead of 1.1 ms to accept Docker's profile (it runs
    // the filter for every syscall number to build its cache), and each
    // syscall of the container walks a few branches, not hundreds.
    ctx.set_ctl_optimize(2).map_err(err)?;
    for arch in seccomp.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let a = ScmpArch::from_str(&name)
            .map_err(|_| err(format!("architecture {name} is unknown to libseccomp")))?;
        ctx.add_arch(a)
            .map_err(|e| err(format!("add architecture {name}: {e}")))?;
    }
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        // libseccomp refuses a rule that would change nothing.
        if act == default {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let cmps: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        // Several conditions on one argument cannot all hold: old Docker
        // profiles mean "any of them", so each becomes a rule of its own
        // (what runc does). Otherwise the conditions are and-ed.
        let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let separate = indexes.len() < args.len();
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                if NEWER_SYSCALLS.contains(&name.as_str()) {
                    continue;
                }
                return Err(err(format!("unknown syscall {name:?}")));
            };
            let added = if cmps.is_empty() {
                ctx.add_rule(act, sys).map(|_| ())
            } else if separate {
                cmps.iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sys, &[*c]).map(|_| ()))
            } else {
                ctx.add_rule_conditional(act, sys, &cmps).map(|_| ())
            };
            added.map_err(|e| err(format!("rule for {name}: {e}")))?;
        }
    }
    let mut bpf = enosys_prelude(seccomp)?;
    bpf.extend(export(&ctx)?);
    if bpf.len() / INSN > MAX_INSNS {
        return Err(err(format!(
            "filter of {} instructions is too long",
            bpf.len() / INSN
        )));
    }
    Ok(bpf)
}

/// A few instructions put before libseccomp's program: a syscall whose
/// number is above every syscall this libseccomp knows (so no profile rule
/// can be about it) gets ENOSYS rather than the default action. A kernel
/// newer than the profile then looks, to the container, like an older
/// kernel: libcs that try a new syscall first fall back on ENOSYS, where
/// EPERM would be an error. runc does the same. Only when the default
/// action refuses; x86_64 and i386 only.
fn enosys_prelude(seccomp: &LinuxSeccomp) -> Result<Vec<u8>> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // struct seccomp_data: int nr; __u32 arch; ...
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const X32_BIT: u32 = 0x4000_0000;
    // <linux/audit.h>
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    if !cfg!(target_arch = "x86_64")
        || matches!(
            seccomp.default_action(),
            LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
        )
    {
        return Ok(Vec::new());
    }
    let listed = |a: Arch| seccomp.architectures().iter().flatten().any(|x| *x == a);
    let mut arches = vec![(AUDIT_ARCH_X86_64, highest_known(ScmpArch::X8664)?)];
    if listed(Arch::ScmpArchX86) {
        arches.push((AUDIT_ARCH_I386, highest_known(ScmpArch::X86)?));
    }

    // Jump targets: an instruction index, the shared RET ENOSYS, or the
    // first instruction of libseccomp's program right after it.
    #[derive(Clone, Copy)]
    enum To {
        Next,
        At(usize),
        Enosys,
        Filter,
    }
    let mut prog: Vec<(u16, To, To, u32)> = Vec::new();
    for (i, (audit_arch, max)) in arches.iter().enumerate() {
        let last = i + 1 == arches.len();
        let block = prog.len();
        let other_arch = if last { To::Filter } else { To::At(block + 5) };
        prog.push((LD_W_ABS, To::Next, To::Next, ARCH));
        prog.push((JEQ_K, To::Next, other_arch, *audit_arch));
        prog.push((LD_W_ABS, To::Next, To::Next, NR));
        // x32 syscalls (x86_64's arch, bit 30 set) are left to libseccomp.
        prog.push((JGE_K, To::Filter, To::Next, X32_BIT));
        prog.push((JGT_K, To::Enosys, To::Filter, *max));
    }
    let enosys = prog.len();
    let filter = enosys + 1;
    let mut bpf = Vec::with_capacity(filter * INSN);
    for (pc, (code, jt, jf, k)) in prog.into_iter().enumerate() {
        let off = |t: To| {
            let target = match t {
                To::Next => pc + 1,
                To::At(at) => at,
                To::Enosys => enosys,
                To::Filter => filter,
            };
            // Jumps are relative to the next instruction; all go forward.
            (target - (pc + 1)) as u8
        };
        bpf.extend_from_slice(&code.to_ne_bytes());
        bpf.extend_from_slice(&[off(jt), off(jf)]);
        bpf.extend_from_slice(&k.to_ne_bytes());
    }
    bpf.extend_from_slice(&RET_K.to_ne_bytes());
    bpf.extend_from_slice(&[0, 0]);
    bpf.extend_from_slice(&(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32).to_ne_bytes());
    Ok(bpf)
}

/// The highest syscall number libseccomp has a name for on `arch`.
fn highest_known(arch: ScmpArch) -> Result<u32> {
    (0..1024)
        .rev()
        .find(|nr| ScmpSyscall::from(*nr).get_name_by_arch(arch).is_ok())
        .map(|nr| nr as u32)
        .ok_or_else(|| err(format!("libseccomp knows no syscall of {arch:?}")))
}

/// libseccomp 2.5 exports only to a file descriptor: a memfd, read back.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    let fd = rustix::fs::memfd_create(c"berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| err(format!("memfd_create: {}", std::io::Error::from(e))))?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&f)
        .map_err(|e| err(format!("export: {e}")))?;
    let mut bpf = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut bpf))
        .map_err(|e| err(format!("read exported program: {e}")))?;
    if bpf.is_empty() || bpf.len() % INSN != 0 || bpf.len() / INSN > MAX_INSNS {
        return Err(err(format!(
            "libseccomp produced a program of {} bytes",
            bpf.len()
        )));
    }
    Ok(bpf)
}

/// Install the program on the calling thread (the container's process).
/// Needs no_new_privs or CAP_SYS_ADMIN.
pub(crate) fn install(p: &Program) -> Result<()> {
    let prog = libc::sock_fprog {
        len: (p.bpf.len() / INSN) as libc::c_ushort,
        filter: p.bpf.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at bpf.len()/8 sock_filter records that stay
    // alive for the call; the kernel copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(err(format!(
            "install filter: {}",
            crate::error::strip_os_error(&e)
        )));
    }
    Ok(())
}
