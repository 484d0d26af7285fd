//! What the ptrace watcher needs per architecture: which syscall numbers
//! act on an fd (and at which argument positions; the list is shared, the
//! numbers are the target's), which change what an fd number refers to
//! (close, close_range, the dup family: [`fd_change`], with the legacy
//! `dup2` per architecture), and how a denied syscall is skipped and its
//! result set.
//! One module per supported architecture ([`x86_64`], [`aarch64`]); any
//! other target does not build, rather than build a watcher that would see
//! no inherited-socket use.
//!
//! The syscall number and arguments themselves are read with
//! `PTRACE_GET_SYSCALL_INFO` ([`super::syscall_info`]), which is the same
//! everywhere; only writes go through the registers.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
use aarch64 as imp;
#[cfg(target_arch = "x86_64")]
use x86_64 as imp;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("plex-pg-launcher's ptrace watcher supports x86_64 and aarch64 only: add this architecture's syscall table and register access in launcher/src/watch/arch/");

/// Syscalls on an fd: number, name, positions of fd arguments. The same
/// calls on both architectures (neither table has a legacy call here);
/// `libc` gives each its number for the target (`c_long` is `i64` on both).
const USES: &[(i64, &str, &[usize])] = &[
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

/// A syscall that reads, writes or otherwise acts on a socket, with the
/// argument positions holding fds.
pub(crate) fn uses_fd(nr: i64) -> Option<(&'static str, &'static [usize])> {
    USES.iter()
        .find(|(n, _, _)| *n == nr)
        .map(|(_, name, pos)| (*name, *pos))
}

/// `CLOSE_RANGE_CLOEXEC` (`linux/close_range.h`): mark close-on-exec,
/// close nothing now.
const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;

/// How a syscall changes what fd numbers refer to, read from its entry
/// arguments (the new fd of `dup`/`fcntl(F_DUPFD)` is its result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdChange {
    /// `close(fd)`.
    Close(i32),
    /// `close_range(first, last, flags)` without `CLOSE_RANGE_CLOEXEC`.
    CloseRange { first: u32, last: u32 },
    /// `dup2(old, new)`, `dup3(old, new, flags)`: `new` now refers to
    /// `old`'s file (the file it referred to before is released).
    DupOnto { old: i32, new: i32 },
    /// `dup(old)`, `fcntl(old, F_DUPFD[_CLOEXEC], …)`: a new fd, the
    /// result, refers to `old`'s file.
    Dup { old: i32 },
}

/// Whether a `dup3`'s flags are valid (0 or `O_CLOEXEC`: it fails with
/// EINVAL otherwise); true for every other syscall.
pub(crate) fn dup_flags_valid(nr: i64, args: &[u64; 6]) -> bool {
    nr != libc::SYS_dup3 || args[2] & !(libc::O_CLOEXEC as u64) == 0
}

/// What `nr` with `args` does to the fd table, if anything the watcher
/// follows. `close_range` with `CLOSE_RANGE_CLOEXEC` closes nothing until
/// an exec (which the watcher checks on its own).
pub(crate) fn fd_change(nr: i64, args: &[u64; 6]) -> Option<FdChange> {
    let fd = |i: usize| args[i] as i32;
    match nr {
        libc::SYS_close => Some(FdChange::Close(fd(0))),
        libc::SYS_close_range if args[2] & CLOSE_RANGE_CLOEXEC == 0 => Some(FdChange::CloseRange {
            first: args[0] as u32,
            last: args[1] as u32,
        }),
        libc::SYS_dup3 => Some(FdChange::DupOnto {
            old: fd(0),
            new: fd(1),
        }),
        libc::SYS_dup => Some(FdChange::Dup { old: fd(0) }),
        libc::SYS_fcntl if matches!(args[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) => {
            Some(FdChange::Dup { old: fd(0) })
        }
        n if Some(n) == imp::DUP2 => Some(FdChange::DupOnto {
            old: fd(0),
            new: fd(1),
        }),
        _ => None,
    }
}

/// At a syscall-entry stop of `tid`: make the kernel skip the syscall (its
/// number becomes -1). Whether it worked.
pub(crate) fn deny_entry(tid: i32) -> bool {
    imp::deny_entry(tid)
}

/// At a syscall-exit stop of `tid`: set the syscall's return value.
pub(crate) fn set_return(tid: i32, value: i64) {
    imp::set_return(tid, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_io_is_watched_and_close_rechecks() {
        assert_eq!(uses_fd(libc::SYS_write).map(|u| u.0), Some("write"));
        assert_eq!(uses_fd(libc::SYS_sendto).map(|u| u.0), Some("sendto"));
        assert_eq!(
            uses_fd(libc::SYS_splice).map(|u| u.1),
            Some(&[0usize, 2][..])
        );
        assert!(uses_fd(libc::SYS_getpid).is_none());
    }

    #[test]
    fn fd_changes_are_read_from_the_arguments() {
        let args = |a: u64, b: u64, c: u64| [a, b, c, 0, 0, 0];
        assert_eq!(
            fd_change(libc::SYS_close, &args(7, 0, 0)),
            Some(FdChange::Close(7))
        );
        assert_eq!(
            fd_change(libc::SYS_dup3, &args(3, 7, libc::O_CLOEXEC as u64)),
            Some(FdChange::DupOnto { old: 3, new: 7 })
        );
        assert_eq!(
            fd_change(libc::SYS_close_range, &args(3, u32::MAX as u64, 0)),
            Some(FdChange::CloseRange {
                first: 3,
                last: u32::MAX
            })
        );
        assert_eq!(
            fd_change(libc::SYS_close_range, &args(3, 9, CLOSE_RANGE_CLOEXEC)),
            None
        );
        assert_eq!(
            fd_change(libc::SYS_fcntl, &args(5, libc::F_DUPFD_CLOEXEC as u64, 10)),
            Some(FdChange::Dup { old: 5 })
        );
        assert_eq!(
            fd_change(libc::SYS_fcntl, &args(5, libc::F_GETFL as u64, 0)),
            None
        );
        assert_eq!(
            fd_change(libc::SYS_dup, &args(5, 0, 0)),
            Some(FdChange::Dup { old: 5 })
        );
        assert_eq!(fd_change(libc::SYS_getpid, &args(0, 0, 0)), None);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            fd_change(libc::SYS_dup2, &args(3, 7, 0)),
            Some(FdChange::DupOnto { old: 3, new: 7 })
        );
    }
}
