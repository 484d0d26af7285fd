//! x86_64: the calls that may drop an fd (with the legacy `dup2`) and
//! register writes through `PTRACE_GETREGS` /
//! `PTRACE_SETREGS`: the number is `orig_rax`, the result `rax`.

use nix::sys::ptrace;
use nix::unistd::Pid;

/// Syscalls after which an fd may be gone.
pub(super) const DROPS: &[i64] = &[
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_dup2,
    libc::SYS_dup3,
];

pub(super) fn deny_entry(tid: i32) -> bool {
    let pid = Pid::from_raw(tid);
    match ptrace::getregs(pid) {
        Ok(mut regs) => {
            regs.orig_rax = u64::MAX; // -1: no such syscall, skipped by the kernel
            ptrace::setregs(pid, regs).is_ok()
        }
        Err(_) => false,
    }
}

pub(super) fn set_return(tid: i32, value: i64) {
    let pid = Pid::from_raw(tid);
    if let Ok(mut regs) = ptrace::getregs(pid) {
        regs.rax = value as u64;
        let _ = ptrace::setregs(pid, regs);
    }
}
