//! The device allow-list on cgroup v2: an eBPF program of type
//! CGROUP_DEVICE attached to the container's cgroup (v2 has no devices
//! controller files). It checks the OCI rules the way the v1 controller
//! does: the last rule that matches decides, nothing matching is denied.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes used (BPF_CLASS | BPF_OP | BPF_SRC / BPF_SIZE | BPF_MODE).
const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_X: u8 = 0xbc;
const MOV64_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

// bpf_cgroup_dev_ctx: access_type = (access << 16) | type, major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// The program for `rules` (in spec order).
fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    // Last rule first: the first match from the end decides.
    for rule in rules.iter().rev() {
        let mut checks: Vec<Insn> = Vec::new();
        match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::C | LinuxDeviceType::U => checks.push(insn(JNE_K, 2, 0, 0, DEV_CHAR)),
            LinuxDeviceType::B => checks.push(insn(JNE_K, 2, 0, 0, DEV_BLOCK)),
            LinuxDeviceType::P => continue, // fifos are not devices to the kernel
            LinuxDeviceType::A => {}
        }
        let access = rule.access().as_deref().unwrap_or("rwm");
        let mut allowed = 0;
        for c in access.chars() {
            allowed |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            };
        }
        if allowed != ACC_READ | ACC_WRITE | ACC_MKNOD {
            // The request must ask for nothing outside the rule's access.
            checks.push(insn(MOV32_X, 6, 3, 0, 0));
            checks.push(insn(AND32_K, 6, 0, 0, !allowed));
            checks.push(insn(JNE_K, 6, 0, 0, 0));
        }
        if let Some(major) = rule.major().filter(|m| *m >= 0) {
            checks.push(insn(JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
            checks.push(insn(JNE_K, 5, 0, 0, minor as i32));
        }
        // Every failed check jumps past this rule's two-instruction verdict.
        let n = checks.len();
        for (i, c) in checks.iter_mut().enumerate() {
            if c.code == JNE_K {
                c.off = (n - i - 1 + 2) as i16;
            }
        }
        p.extend(checks);
        p.push(insn(MOV64_K, 0, 0, 0, rule.allow() as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if n == 0 {
            // Matches everything: the rules before it can never decide (and
            // the verifier refuses unreachable code).
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// bpf(2), which rustix does not wrap. `attr` is a bpf_attr, zero-padded,
/// with any pointer in it to memory that lives through the call.
fn bpf(cmd: libc::c_long, attr: &[u64]) -> io::Result<i64> {
    // SAFETY: the kernel reads `attr` (of the length passed) and, for the
    // commands used here, only the buffers it points to, which the caller
    // keeps alive: the program, the license and the log.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u64 = 15;
const BPF_CGROUP_DEVICE: u64 = 6;

/// `BPF_PROG_LOAD` of `prog` with a verifier log of `log` bytes (0: none):
/// the program's fd.
fn load(prog: &[Insn], log: &mut [u8]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    // bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt | insns | license |
    // log_level, log_size | log_buf | ... (zeroes).
    let mut attr = [0u64; 16];
    attr[0] = BPF_PROG_TYPE_CGROUP_DEVICE | ((prog.len() as u64) << 32);
    attr[1] = prog.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    if !log.is_empty() {
        attr[3] = 1 | ((log.len() as u64) << 32);
        attr[4] = log.as_mut_ptr() as u64;
    }
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Why the verifier refused `prog`, in one line: its last few lines
/// (the reason and its count of instructions), from a log big enough
/// to hold them all. A log that overflows makes the load fail with
/// ENOSPC whatever the program, so it is only asked for after a failure.
fn verifier_says(prog: &[Insn]) -> String {
    let mut size = 1 << 20;
    loop {
        let mut log = vec![0u8; size];
        match load(prog, &mut log) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < 16 << 20 => size *= 4,
            Err(_) => {
                let text = String::from_utf8_lossy(&log);
                let lines: Vec<&str> = text
                    .trim_end_matches('\0')
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                // Register-state lines run long: the start says enough.
                let tail = lines[lines.len().saturating_sub(3)..]
                    .iter()
                    .map(|l| l.chars().take(160).collect::<String>());
                return tail.collect::<Vec<_>>().join("; ");
            }
            // Loaded this time (a transient failure): say nothing more.
            Ok(_) => return String::new(),
        }
    }
}

/// Load the program for `rules` and attach it to the cgroup v2 directory `cgroup`.
pub(crate) fn attach(cgroup: BorrowedFd<'_>, rules: &[LinuxDeviceCgroup]) -> io::Result<()> {
    let prog = program(rules);
    let prog_fd = load(&prog, &mut []).map_err(|e| {
        let why = verifier_says(&prog);
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" (verifier: {why})")
        };
        io::Error::new(
            e.kind(),
            format!(
                "load the device filter (eBPF, {} instructions): {}{why}",
                prog.len(),
                crate::error::strip_os_error(&e)
            ),
        )
    })?;
    // bpf_attr for BPF_PROG_ATTACH: target_fd, attach_bpf_fd | attach_type, flags.
    let mut attr = [0u64; 4];
    attr[0] = cgroup.as_raw_fd() as u64 | ((prog_fd.as_raw_fd() as u64) << 32);
    attr[1] = BPF_CGROUP_DEVICE;
    bpf(BPF_PROG_ATTACH, &attr)
        .map_err(|e| io::Error::new(e.kind(), format!("attach the device filter (eBPF): {e}")))?;
    // The attachment keeps the program; the cgroup's removal frees both.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_next_rule() {
        let rule = oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1i64)
            .minor(3i64)
            .access("rw")
            .build()
            .unwrap();
        let p = program(&[rule]);
        // 6 loads, 5 checks (type, access x3, major, minor -> 6), verdict 2, default 2.
        assert_eq!(p.len(), 6 + 6 + 2 + 2);
        for (i, ins) in p.iter().enumerate() {
            if ins.code == JNE_K {
                // Every check of the rule jumps to the default verdict.
                assert_eq!(i as i16 + 1 + ins.off, 14, "insn {i}");
            }
        }
    }

    #[test]
    fn a_refused_program_is_explained_in_one_line() {
        // Needs CAP_BPF (the tests run as root). r0 is never set: the
        // verifier refuses it, and its reason is what the error keeps.
        let prog = [insn(EXIT, 0, 0, 0, 0)];
        let e = load(&prog, &mut []).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        let why = verifier_says(&prog);
        assert!(why.contains("R0 !read_ok"), "{why}");
        assert!(!why.contains('\n'), "{why}");
    }
}
