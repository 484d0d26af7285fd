//! Locks that survive `fork()`.
//!
//! A lock held by another thread when a multithreaded process forks stays
//! held forever in the child, where that thread does not exist. Every lock
//! in the shim is therefore a [`ForkLock`]: a futex word the fork handlers
//! can take before `fork()` (so no lock is mid-update at the fork) and set
//! back to "unlocked" in the child with one atomic store, which is
//! async-signal-safe. `std::sync::Mutex` cannot be reset that way.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A futex-based mutex (Drepper's three-state design) that can be reset in
/// a forked child.
pub struct RawLock {
    word: AtomicU32,
}

impl RawLock {
    pub const fn new() -> Self {
        RawLock {
            word: AtomicU32::new(UNLOCKED),
        }
    }

    pub fn lock(&self) {
        crate::audit::lock_taken();
        if self
            .word
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let mut spins = 0;
        loop {
            // Spin a little before sleeping: critical sections here are short.
            if spins < 64 && self.word.load(Ordering::Relaxed) == LOCKED {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if self.word.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            futex_wait(&self.word, CONTENDED, None);
        }
    }

    pub fn unlock(&self) {
        if self.word.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex_wake(&self.word, 1);
        }
    }

    /// In a forked child only: forget whoever held the lock. Async-signal
    /// safe. A free lock is only read: writing would copy its page in the
    /// child (a copy-on-write fault costs microseconds).
    pub fn reset_in_child(&self) {
        if self.word.load(Ordering::Relaxed) != UNLOCKED {
            self.word.store(UNLOCKED, Ordering::Release);
        }
    }
}

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

/// A value behind a [`RawLock`].
pub struct ForkLock<T> {
    raw: RawLock,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `raw`, as with std's Mutex.
unsafe impl<T: Send> Send for ForkLock<T> {}
// SAFETY: as for Send: `&ForkLock` gives access to `value` only through
// the lock (or `get_unlocked`, whose contract excludes other threads).
unsafe impl<T: Send> Sync for ForkLock<T> {}

impl<T> ForkLock<T> {
    pub const fn new(value: T) -> Self {
        ForkLock {
            raw: RawLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> ForkLockGuard<'_, T> {
        self.raw.lock();
        ForkLockGuard { lock: self }
    }

    /// The raw lock, for the fork handlers (take before fork, release in
    /// the parent, reset in the child).
    pub fn raw(&self) -> &RawLock {
        &self.raw
    }

    /// Access without locking, for the child's fork handler, which runs
    /// when no other thread exists.
    ///
    /// # Safety
    /// No other thread may access the value (true in a forked child).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_unlocked(&self) -> &mut T {
        // SAFETY: this function's `# Safety` contract, which the caller
        // keeps, is what the calls below rely on.
        unsafe { &mut *self.value.get() }
    }
}

pub struct ForkLockGuard<'a, T> {
    lock: &'a ForkLock<T>,
}

impl<T> Deref for ForkLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for ForkLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for ForkLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw.unlock();
    }
}

/// Sleep while `*word == expected`, at most `timeout` (None: no limit).
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as _,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wake up to `n` threads sleeping on `word`.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: as above.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn serializes_threads() {
        let lock = Arc::new(ForkLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn reset_frees_a_lock_held_by_a_vanished_owner() {
        let lock = ForkLock::new(1);
        let guard = lock.lock();
        std::mem::forget(guard); // the owner "vanished", as after fork
        lock.raw().reset_in_child();
        assert_eq!(*lock.lock(), 1);
    }
}
