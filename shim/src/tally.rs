//! The shim's own figures for the launcher's metrics: statements by latency
//! bucket, errors by SQLite primary result code, connects and reconnects.
//! This module owns those counters and the Tally report that carries them
//! ([`plex_pg_config::report::Tally`]); the pool's slots in use are read
//! from the pool when a report is made.
//!
//! Counting is a few relaxed atomic additions on the statement path, no
//! lock: the statement code calls [`step`] around `sqlite3_step`,
//! [`error`] when a prepare fails, and the pool calls [`connected`] and [`lost`].
//! Statements are timed from their first step (the PostgreSQL round trip
//! and the first row) and counted once each, in a latency bucket.
//!
//! The counters live in one page mapped with `MADV_WIPEONFORK`: a forked
//! child starts from zero, without the fork handler doing anything (it
//! stays as it is), so a child never reports its parent's statements as
//! its own. Where the kernel lacks `MADV_WIPEONFORK` (before 4.14),
//! nothing is counted.
//!
//! Reports go out piggy-backed on activity, at most once a second
//! ([`SEND_INTERVAL_MS`]), and when a routed database closes or the process
//! exits ([`flush`], also registered with `atexit`). They are cumulative,
//! and sent without waiting (`MSG_DONTWAIT`): one that finds the
//! launcher's queue full is dropped, and the next says everything.

use crate::error::Result;
use plex_pg_config::report::{latency_bucket, Tally, ERROR_CODES, LATENCY_BUCKETS};
use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Instant;

/// The least time between two reports made by activity.
pub const SEND_INTERVAL_MS: u64 = 1000;

/// The counters: all zero is the start (the page reads zero in a child).
#[repr(C)]
struct Figures {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    latency_us: AtomicU64,
    errors: [AtomicU64; ERROR_CODES],
    connects: AtomicU64,
    reconnects: AtomicU64,
    /// Connections lost to the server not replaced yet: the next connects
    /// are reconnects.
    lost: AtomicU64,
    /// Reports made, for [`Tally::seq`].
    seq: AtomicU64,
    /// When the last report was made by activity (ms, monotonic clock).
    sent_at_ms: AtomicU64,
    /// [`Figures::activity`] at the last report: a flush with nothing new
    /// sends nothing.
    sent_activity: AtomicU64,
}

const PAGE_SIZE: usize = 4096;
const _: () = assert!(std::mem::size_of::<Figures>() <= PAGE_SIZE);

static PAGE: AtomicPtr<Figures> = AtomicPtr::new(std::ptr::null_mut());
const UNTRIED: u8 = 0;
const UNAVAILABLE: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNTRIED);

/// The counters, mapped on first use; `None` when they cannot be.
fn figures() -> Option<&'static Figures> {
    let p = PAGE.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: a page mapped once and never unmapped, zero-initialized.
    if let Some(f) = unsafe { p.as_ref() } {
        return Some(f);
    }
    if STATE.load(Relaxed) == UNAVAILABLE {
        return None;
    }
    map_page()
}

#[cold]
fn map_page() -> Option<&'static Figures> {
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    // SAFETY: mapping one private anonymous page and marking it.
    let page = unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if page == libc::MAP_FAILED {
            None
        } else if libc::madvise(page, PAGE_SIZE, libc::MADV_WIPEONFORK) != 0 {
            libc::munmap(page, PAGE_SIZE);
            None
        } else {
            Some(page.cast::<Figures>())
        }
    };
    let Some(page) = page else {
        STATE.store(UNAVAILABLE, Relaxed);
        tracing::debug!("no MADV_WIPEONFORK here: the shim's statement figures are not counted");
        return None;
    };
    match PAGE.compare_exchange(std::ptr::null_mut(), page, AcqRel, Acquire) {
        Ok(_) => {
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(at_exit) };
        }
        Err(_) => {
            // Another thread mapped one first.
            // SAFETY: unmapping the page this thread mapped and nobody saw.
            unsafe { libc::munmap(page.cast(), PAGE_SIZE) };
        }
    }
    // SAFETY: as in `figures`.
    unsafe { PAGE.load(Acquire).as_ref() }
}

impl Figures {
    fn error(&self, code: c_int) {
        let primary = (code & 0xff) as usize;
        let i = if primary < ERROR_CODES { primary } else { 0 };
        self.errors[i].fetch_add(1, Relaxed);
    }

    /// A number that grows with anything counted.
    fn activity(&self) -> u64 {
        let sum = |a: &[AtomicU64]| a.iter().map(|v| v.load(Relaxed)).sum::<u64>();
        sum(&self.buckets) + sum(&self.errors) + self.connects.load(Relaxed)
    }
}

/// Around a step of a routed statement: `starts` when it begins an
/// execution (the statement was not being read), which is then timed and
/// counted; a failure is counted by its code. May send a report.
pub fn step(starts: bool, run: impl FnOnce() -> Result<c_int>) -> Result<c_int> {
    let started = starts.then(Instant::now);
    let result = run();
    if let Some(f) = figures() {
        if let Some(t0) = started {
            let us = t0.elapsed().as_micros().min(u64::MAX as u128) as u64;
            f.buckets[latency_bucket(us)].fetch_add(1, Relaxed);
            f.latency_us.fetch_add(us, Relaxed);
        }
        if let Err(e) = &result {
            f.error(e.code);
        }
        maybe_send(f);
    }
    result
}

/// A failure outside a step (a prepare), by its SQLite result code.
pub fn error(code: c_int) {
    if let Some(f) = figures() {
        f.error(code);
    }
}

/// The pool opened a PostgreSQL connection.
pub fn connected() {
    if let Some(f) = figures() {
        f.connects.fetch_add(1, Relaxed);
        let replaced = f
            .lost
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if replaced {
            f.reconnects.fetch_add(1, Relaxed);
        }
    }
}

/// The pool found `n` connections closed or broken by the server: the
/// next `n` connects replace them.
pub fn lost(n: u64) {
    if n == 0 {
        return;
    }
    if let Some(f) = figures() {
        f.lost.fetch_add(n, Relaxed);
    }
}

/// Send a report now if anything was counted since the last one (a routed
/// database closes; the process exits).
pub fn flush() {
    // SAFETY: as in `figures`; never maps a page for nothing.
    let Some(f) = (unsafe { PAGE.load(std::sync::atomic::Ordering::Acquire).as_ref() }) else {
        return;
    };
    if f.activity() != f.sent_activity.load(Relaxed) {
        send(f);
    }
}

extern "C" fn at_exit() {
    // Nothing here panics; kept from unwinding into libc all the same.
    let _ = std::panic::catch_unwind(flush);
}

/// A report if the last one by activity is [`SEND_INTERVAL_MS`] old: one
/// thread wins the interval, the others go on.
fn maybe_send(f: &Figures) {
    let now = crate::clock::now_ms();
    let last = f.sent_at_ms.load(Relaxed);
    if last != 0 && now.saturating_sub(last) < SEND_INTERVAL_MS {
        return;
    }
    if f.sent_at_ms
        .compare_exchange(last, now.max(1), Relaxed, Relaxed)
        .is_ok()
    {
        send(f);
    }
}

/// Who sends the figures, with the pool's slots filled in: set by the
/// runtime when it starts. The tally sits below the runtime and the pool
/// (both count into it), so it does not reach up to them itself.
static SENDER: std::sync::OnceLock<fn(&mut Tally) -> bool> = std::sync::OnceLock::new();

/// Set who sends the figures (the runtime, once).
pub fn set_sender(sender: fn(&mut Tally) -> bool) {
    let _ = SENDER.set(sender);
}

fn send(f: &Figures) {
    let Some(sender) = SENDER.get() else {
        return;
    };
    let activity = f.activity();
    let mut t = Tally {
        seq: f.seq.load(Relaxed) + 1,
        connects: f.connects.load(Relaxed),
        reconnects: f.reconnects.load(Relaxed),
        latency_us: f.latency_us.load(Relaxed),
        ..Tally::default()
    };
    for (to, from) in t.buckets.iter_mut().zip(&f.buckets) {
        *to = from.load(Relaxed);
    }
    for (to, from) in t.errors.iter_mut().zip(&f.errors) {
        *to = from.load(Relaxed);
    }
    if sender(&mut t) {
        f.seq.fetch_add(1, Relaxed);
        f.sent_activity.store(activity, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn steps_are_timed_once_and_failures_counted_by_primary_code() {
        let f = figures().expect("MADV_WIPEONFORK (Linux 4.14+)");
        let before = f.buckets.iter().map(|b| b.load(Relaxed)).sum::<u64>();
        let errors_before = f.errors[19].load(Relaxed);
        assert_eq!(step(true, || Ok(100)).unwrap(), 100);
        // A row fetch of the same execution: not a statement.
        assert_eq!(step(false, || Ok(100)).unwrap(), 100);
        // SQLITE_CONSTRAINT_UNIQUE (2067) counts as SQLITE_CONSTRAINT (19).
        assert!(step(true, || Err(Error::new(2067, "unique"))).is_err());
        let after = f.buckets.iter().map(|b| b.load(Relaxed)).sum::<u64>();
        assert_eq!(after - before, 2);
        assert_eq!(f.errors[19].load(Relaxed) - errors_before, 1);
    }

    #[test]
    fn a_connect_after_a_loss_is_a_reconnect() {
        let f = figures().unwrap();
        let (c, r) = (f.connects.load(Relaxed), f.reconnects.load(Relaxed));
        connected();
        lost(1);
        lost(0);
        connected();
        connected();
        // (Other tests connect too, in parallel: at least these three.)
        assert!(f.connects.load(Relaxed) - c >= 3);
        assert_eq!(f.reconnects.load(Relaxed) - r, 1);
    }

    #[test]
    fn a_forked_child_starts_from_zero() {
        let f = figures().unwrap();
        connected();
        assert!(f.connects.load(Relaxed) > 0);
        // SAFETY: the child only reads an atomic and calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let zero = f.connects.load(Relaxed) == 0;
            // SAFETY: _exit is async-signal-safe; the child leaves at once.
            unsafe { libc::_exit(if zero { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child this test forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
