//! aarch64: the asm-generic numbering (no `dup2` or other legacy calls —
//! `dup2` is `dup3` there) and
//! register access through `PTRACE_GETREGSET` / `PTRACE_SETREGSET`.
//!
//! `NT_PRSTATUS` is `struct user_pt_regs`: `x0`–`x30`, `sp`, `pc`,
//! `pstate`; a syscall's number is in `x8`, its arguments in `x0`–`x5`,
//! its result in `x0`. Changing `x8` at the entry stop does not change the
//! syscall the kernel runs: that takes `NT_ARM_SYSTEM_CALL`, the number as
//! an `int` (-1: skipped).

use std::mem::size_of;

/// No legacy `dup2`: C libraries call `dup3`.
pub(super) const DUP2: Option<i64> = None;

// The asm-generic numbers, checked when this module builds.
const _: () = assert!(libc::SYS_read == 63 && libc::SYS_write == 64);
const _: () = assert!(libc::SYS_close == 57 && libc::SYS_dup3 == 24);
const _: () = assert!(libc::SYS_sendto == 206 && libc::SYS_recvfrom == 207);
const _: () = assert!(libc::SYS_epoll_ctl == 21 && libc::SYS_close_range == 436);

const PTRACE_GETREGSET: libc::c_uint = 0x4204;
const PTRACE_SETREGSET: libc::c_uint = 0x4205;
/// `NT_PRSTATUS` (`elf.h`): the general registers.
const NT_PRSTATUS: libc::c_ulong = 1;
/// `NT_ARM_SYSTEM_CALL` (`elf.h`): the syscall number the kernel will run.
const NT_ARM_SYSTEM_CALL: libc::c_ulong = 0x404;

/// `struct user_pt_regs` (`asm/ptrace.h`), declared here because the C
/// libraries name it differently.
#[repr(C)]
#[derive(Clone, Copy)]
struct UserPtRegs {
    regs: [u64; 31],
    sp: u64,
    pc: u64,
    pstate: u64,
}

/// One `PTRACE_GETREGSET`/`PTRACE_SETREGSET` of `kind` on `tid`, with
/// `value` as the buffer; whether the kernel took it.
///
/// # Safety
///
/// `T` must be the kernel's layout for register set `kind` (or a prefix
/// of it): the kernel reads or writes `size_of::<T>()` bytes of `value`.
unsafe fn regset<T>(request: libc::c_uint, tid: i32, kind: libc::c_ulong, value: &mut T) -> bool {
    let mut iov = libc::iovec {
        iov_base: (value as *mut T).cast(),
        iov_len: size_of::<T>(),
    };
    // SAFETY: `iov` points at `value`, live and `size_of::<T>()` bytes long
    // for the whole call; the caller vouches that it has the layout the
    // kernel expects for `kind`, so the kernel's read or write stays inside it.
    let r = unsafe {
        libc::ptrace(
            request as _,
            tid,
            kind as *mut libc::c_void,
            &mut iov as *mut libc::iovec,
        )
    };
    r >= 0
}

pub(super) fn deny_entry(tid: i32) -> bool {
    let mut nr: libc::c_int = -1;
    // SAFETY: NT_ARM_SYSTEM_CALL is one `int`.
    unsafe { regset(PTRACE_SETREGSET, tid, NT_ARM_SYSTEM_CALL, &mut nr) }
}

pub(super) fn set_return(tid: i32, value: i64) {
    let mut regs = UserPtRegs {
        regs: [0; 31],
        sp: 0,
        pc: 0,
        pstate: 0,
    };
    // SAFETY: NT_PRSTATUS is `struct user_pt_regs`, which `UserPtRegs` copies.
    if unsafe { regset(PTRACE_GETREGSET, tid, NT_PRSTATUS, &mut regs) } {
        regs.regs[0] = value as u64;
        // SAFETY: as above.
        unsafe { regset(PTRACE_SETREGSET, tid, NT_PRSTATUS, &mut regs) };
    }
}
