//! x86_64: the legacy `dup2` (the other calls that change the fd table
//! are shared with aarch64) and register writes through `PTRACE_GETREGS` /
//! `PTRACE_SETREGS`: the number is `orig_rax`, the result `rax`.

use nix::sys::ptrace;
use nix::unistd::Pid;

/// The legacy `dup2(old, new)`.
pub(super) const DUP2: Option<i64> = Some(libc::SYS_dup2);

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
