//! x86_64: the syscall table (the x86_64 numbering, with the legacy calls
//! such as `dup2`) and register writes through `PTRACE_GETREGS` /
//! `PTRACE_SETREGS`: the number is `orig_rax`, the result `rax`.

use nix::sys::ptrace;
use nix::unistd::Pid;

/// Syscalls on an fd: number (`c_long` is `i64` here), name, positions of
/// fd arguments.
pub(super) const USES: &[(i64, &str, &[usize])] = &[
    (libc::SYS_read, "read", &[0]),
    (libc::SYS_write, "write", &[0]),
    (libc::SYS_pread64, "pread64", &[0]),
    (libc::SYS_pwrite64, "pwrite64", &[0]),
    (libc::SYS_readv, "readv", &[0]),
    (libc::SYS_writev, "writev", &[0]),
    (libc::SYS_preadv, "preadv", &[0]),
    (libc::SYS_pwritev, "pwritev", &[0]),
    (libc::SYS_preadv2, "preadv2", &[0]),
    (libc::SYS_pwritev2, "pwritev2", &[0]),
    (libc::SYS_sendto, "sendto", &[0]),
    (libc::SYS_recvfrom, "recvfrom", &[0]),
    (libc::SYS_sendmsg, "sendmsg", &[0]),
    (libc::SYS_recvmsg, "recvmsg", &[0]),
    (libc::SYS_sendmmsg, "sendmmsg", &[0]),
    (libc::SYS_recvmmsg, "recvmmsg", &[0]),
    (libc::SYS_shutdown, "shutdown", &[0]),
    (libc::SYS_setsockopt, "setsockopt", &[0]),
    (libc::SYS_getsockopt, "getsockopt", &[0]),
    (libc::SYS_ioctl, "ioctl", &[0]),
    (libc::SYS_connect, "connect", &[0]),
    (libc::SYS_bind, "bind", &[0]),
    (libc::SYS_listen, "listen", &[0]),
    (libc::SYS_accept, "accept", &[0]),
    (libc::SYS_accept4, "accept4", &[0]),
    (libc::SYS_sendfile, "sendfile", &[0, 1]),
    (libc::SYS_splice, "splice", &[0, 2]),
    (libc::SYS_tee, "tee", &[0, 1]),
    (libc::SYS_copy_file_range, "copy_file_range", &[0, 2]),
    (libc::SYS_epoll_ctl, "epoll_ctl", &[2]),
];

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
