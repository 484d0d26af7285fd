//! The coarse monotonic clock the pool (when a slot was released) and the
//! tally (when its figures were last sent) read on their hot paths.

/// Milliseconds on the coarse monotonic clock (a vDSO call, no syscall).
pub(crate) fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: filling a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}
