//! What the ptrace watcher does differently per architecture: which
//! syscall numbers act on an fd (and at which argument positions), which
//! may drop one, and how a denied syscall is skipped and its result set.
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

/// A syscall that reads, writes or otherwise acts on a socket, with the
/// argument positions holding fds.
pub(crate) fn uses_fd(nr: i64) -> Option<(&'static str, &'static [usize])> {
    imp::USES
        .iter()
        .find(|(n, _, _)| *n == nr)
        .map(|(_, name, pos)| (*name, *pos))
}

/// A syscall after which an inherited socket may be gone.
pub(crate) fn drops_fds(nr: i64) -> bool {
    imp::DROPS.contains(&nr)
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
        assert!(drops_fds(libc::SYS_close));
        assert!(drops_fds(libc::SYS_dup3));
        assert!(uses_fd(libc::SYS_getpid).is_none());
        assert!(!drops_fds(libc::SYS_getpid));
    }
}
