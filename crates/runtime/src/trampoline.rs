//! The last exec is never berth's: the container's command is exec'd by a
//! tiny trampoline, so that no process of the container can ever run or
//! hold the runtime's own binary (CVE-2019-5736).
//!
//! The set-up child is a clone of the runtime. Until it execs, its
//! /proc/self/exe is the runtime's binary, and the kernel resolves every
//! path of that exec in its context: an entrypoint `/proc/self/exe` (or a
//! link to it, or a script whose interpreter it is, or an ELF whose
//! PT_INTERP it is) would make the host's binary the container's PID 1,
//! which could then write it once no host process runs it. So the child
//! execs this trampoline from a sealed memfd, and the trampoline execs the
//! command: every path of that exec is resolved with the trampoline as
//! /proc/self/exe, and the trampoline is read-only, unlinked, and gone
//! from the container's memory the moment it has exec'd.
//!
//! runc and crun get the same effect by re-executing themselves from a
//! sealed copy; on a paravirtualised host an exec of berth's 7 MB static
//! binary costs ~1.5 ms (its start-up page faults), this one ~0.2 ms.
//! runc 1.1's `runc-dmz` was the same idea in C.
//!
//! The trampoline is 99 bytes of x86-64, hand-assembled from:
//!
//! ```text
//! _start:                           ; argv[0] = the command's path, argv[1..] = its argv
//!     mov edi, 3                    ; fd 3: the runtime's channel, open only in the
//!     mov esi, 2                    ;   first exec (a trampoline exec'd again through
//!     mov edx, 1                    ;   /proc/self/exe finds it closed and gives up)
//!     mov eax, 72                   ; fcntl(3, F_SETFD, FD_CLOEXEC)
//!     syscall
//!     test rax, rax
//!     jnz fail
//!     mov rcx, [rsp]                ; argc
//!     mov rdi, [rsp+8]              ; path = argv[0]
//!     lea rsi, [rsp+16]             ; argv = &argv[1]
//!     lea rdx, [rsp+rcx*8+16]       ; envp: past argv's NULL
//!     mov eax, 59                   ; execve(path, argv, envp)
//!     syscall
//!     neg eax                       ; failed: tell the runtime 'X', errno
//!     sub rsp, 16
//!     mov byte ptr [rsp], 'X'
//!     mov byte ptr [rsp+1], al
//!     mov edi, 3
//!     mov rsi, rsp
//!     mov edx, 2
//!     mov eax, 1                    ; write(3, "X" errno, 2)
//!     syscall
//! fail:
//!     mov edi, 127
//!     mov eax, 231                  ; exit_group(127)
//!     syscall
//! ```
//! (`as --64` then `objcopy -O binary -j .text` gives the bytes below.)

use std::os::fd::OwnedFd;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("berth's exec trampoline exists for x86-64 only");

/// The machine code of the listing above.
const CODE: [u8; 99] = [
    0xbf, 0x03, 0x00, 0x00, 0x00, 0xbe, 0x02, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0xb8,
    0x48, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x75, 0x3c, 0x48, 0x8b, 0x0c, 0x24, 0x48,
    0x8b, 0x7c, 0x24, 0x08, 0x48, 0x8d, 0x74, 0x24, 0x10, 0x48, 0x8d, 0x54, 0xcc, 0x10, 0xb8, 0x3b,
    0x00, 0x00, 0x00, 0x0f, 0x05, 0xf7, 0xd8, 0x48, 0x83, 0xec, 0x10, 0xc6, 0x04, 0x24, 0x58, 0x88,
    0x44, 0x24, 0x01, 0xbf, 0x03, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe6, 0xba, 0x02, 0x00, 0x00, 0x00,
    0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x7f, 0x00, 0x00, 0x00, 0xb8, 0xe7, 0x00, 0x00,
    0x00, 0x0f, 0x05,
];

/// The fd on which the trampoline reports a failed exec, unless fds are
/// kept for the command (runc's `--preserve-fds`): then the first after them.
pub(crate) const REPORT_FD: i32 = 3;

/// Where in [`CODE`] the two `mov edi, 3` keep their immediate (the fd).
const REPORT_FD_IMMEDIATES: [usize; 2] = [1, 68];

/// The trampoline's report fd when the command keeps fds 3..3+`kept`.
pub(crate) fn report_fd(kept: u32) -> i32 {
    REPORT_FD + kept.min(65536) as i32
}

/// Where the image is mapped (at least vm.mmap_min_addr).
const BASE: u64 = 0x1_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;
const PHNUM: usize = 2;

/// The trampoline as a static ELF executable: a header, two program
/// headers (the code, read + execute; a non-executable stack), the code.
fn image(report_fd: i32) -> Vec<u8> {
    let size = (EHDR + PHDR * PHNUM + CODE.len()) as u64;
    let mut elf = Vec::with_capacity(size as usize);
    let mut put = |b: &[u8]| elf.extend_from_slice(b);
    // ELF header: 64-bit, little-endian, version 1, System V.
    put(b"\x7fELF\x02\x01\x01\x00");
    put(&[0; 8]);
    put(&2u16.to_le_bytes()); // ET_EXEC
    put(&62u16.to_le_bytes()); // EM_X86_64
    put(&1u32.to_le_bytes()); // EV_CURRENT
    put(&(BASE + (EHDR + PHDR * PHNUM) as u64).to_le_bytes()); // entry: the code
    put(&(EHDR as u64).to_le_bytes()); // program headers right after
    put(&0u64.to_le_bytes()); // no section headers
    put(&0u32.to_le_bytes()); // flags
    for half in [EHDR, PHDR, PHNUM, 64, 0, 0] {
        put(&(half as u16).to_le_bytes()); // sizes and counts
    }
    // PT_LOAD: the whole file at BASE, read + execute.
    put(&1u32.to_le_bytes());
    put(&5u32.to_le_bytes());
    for word in [0, BASE, BASE, size, size, 0x1000] {
        put(&word.to_le_bytes());
    }
    // PT_GNU_STACK: read + write, never execute.
    put(&0x6474_e551u32.to_le_bytes());
    put(&6u32.to_le_bytes());
    for word in [0u64, 0, 0, 0, 0, 16] {
        put(&word.to_le_bytes());
    }
    let mut code = CODE;
    for at in REPORT_FD_IMMEDIATES {
        code[at..at + 4].copy_from_slice(&(report_fd as u32).to_le_bytes());
    }
    put(&code);
    elf
}

/// A sealed memfd holding the trampoline (close-on-exec): nothing can
/// write, grow or shrink it, and it has no name in any filesystem.
pub(crate) fn memfd(report_fd: i32) -> std::io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        c"berth-exec",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let image = image(report_fd);
    let mut written = 0;
    while written < image.len() {
        written += rustix::io::write(&fd, &image[written..])?;
    }
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_image_is_a_well_formed_static_executable() {
        let elf = super::image(super::REPORT_FD);
        assert_eq!(elf.len(), 64 + 2 * 56 + 99);
        assert_eq!(&elf[..4], b"\x7fELF");
        // The entry point is the first byte of the code.
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry - super::BASE, 64 + 2 * 56);
        assert_eq!(&elf[176..181], &[0xbf, 0x03, 0, 0, 0]);
    }

    #[test]
    fn kept_fds_move_both_uses_of_the_report_fd() {
        // Both immediates are the listing's `mov edi, 3` (bf 03 00 00 00).
        for at in super::REPORT_FD_IMMEDIATES {
            assert_eq!(&super::CODE[at - 1..at + 4], &[0xbf, 3, 0, 0, 0]);
        }
        let fd = super::report_fd(5);
        assert_eq!(fd, 8);
        let code = &super::image(fd)[176..];
        for at in super::REPORT_FD_IMMEDIATES {
            assert_eq!(&code[at - 1..at + 4], &[0xbf, 8, 0, 0, 0]);
        }
        // Nothing else changed.
        let n = code
            .iter()
            .zip(super::CODE)
            .filter(|(a, b)| **a != *b)
            .count();
        assert_eq!(n, 2);
    }
}
