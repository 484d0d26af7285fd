//! The fork-audit build (`--features fork-audit`): proof that the child's
//! fork handler allocates nothing and takes no lock.
//!
//! In a forked child only the forking thread exists; memory allocator and
//! lock state are as the parent's other threads left them at the fork, so
//! an allocation or a lock in the handler may wait forever (the rules in
//! `fork`). This build marks the time the child handler runs
//! ([`ChildHandler`]); meanwhile any allocation, reallocation or free by
//! the shim's Rust code (a `#[global_allocator]` wrapper) and any `RawLock`
//! (`lock`) taken abort the process with a message naming what was
//! attempted. The fork tests run over this build (`tests/run.sh`).
//!
//! Without the feature everything here compiles to nothing.

#[cfg(feature = "fork-audit")]
use std::sync::atomic::{AtomicBool, Ordering};

/// Set while the child's fork handler runs. A global, not a thread-local:
/// it is set only in the child, where the handler's thread is the only
/// one.
#[cfg(feature = "fork-audit")]
static IN_CHILD_HANDLER: AtomicBool = AtomicBool::new(false);

/// Marks the child handler's run, from creation to drop.
pub(crate) struct ChildHandler(());

impl ChildHandler {
    /// The child's fork handler starts.
    pub(crate) fn enter() -> ChildHandler {
        #[cfg(feature = "fork-audit")]
        IN_CHILD_HANDLER.store(true, Ordering::SeqCst);
        ChildHandler(())
    }
}

impl Drop for ChildHandler {
    fn drop(&mut self) {
        #[cfg(feature = "fork-audit")]
        IN_CHILD_HANDLER.store(false, Ordering::SeqCst);
    }
}

/// A lock is about to be taken: abort in the audit build if the child's
/// fork handler is running.
#[inline(always)]
pub(crate) fn lock_taken() {
    #[cfg(feature = "fork-audit")]
    if IN_CHILD_HANDLER.load(Ordering::Relaxed) {
        violation(b"plex-pg fork-audit: a lock was taken in the child's fork handler\n");
    }
}

/// Write `message` to stderr with one `write(2)` (no allocation, no lock)
/// and abort.
#[cfg(feature = "fork-audit")]
fn violation(message: &[u8]) -> ! {
    // SAFETY: write(2) on fd 2 from a buffer valid for its length, and
    // abort(3); both async-signal-safe.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::abort()
    }
}

#[cfg(feature = "fork-audit")]
mod allocator {
    use super::{violation, IN_CHILD_HANDLER};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::Ordering;

    /// The system allocator, refusing service in the child's fork handler.
    struct Audited;

    fn check(what: &'static [u8]) {
        if IN_CHILD_HANDLER.load(Ordering::Relaxed) {
            violation(what);
        }
    }

    // SAFETY: every call is forwarded unchanged to `System`, which upholds
    // `GlobalAlloc`'s contract; the check before it only reads an atomic
    // (or aborts).
    unsafe impl GlobalAlloc for Audited {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            check(b"plex-pg fork-audit: memory was allocated in the child's fork handler\n");
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            check(b"plex-pg fork-audit: memory was allocated in the child's fork handler\n");
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            check(b"plex-pg fork-audit: memory was freed in the child's fork handler\n");
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            check(b"plex-pg fork-audit: memory was reallocated in the child's fork handler\n");
            // SAFETY: the caller's contract, passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static AUDITED: Audited = Audited;
}

#[cfg(all(test, feature = "fork-audit"))]
mod tests {
    use super::ChildHandler;

    /// Fork; in the child, run `f` as if in the child's fork handler, then
    /// exit 0. The child's wait status.
    fn in_child_handler(f: fn()) -> i32 {
        // SAFETY: fork(2) in a test process; the child only runs `f` (the
        // violation under test, which aborts) and `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let marked = ChildHandler::enter();
            f();
            drop(marked);
            // SAFETY: ends the child without running the parent's atexit
            // handlers or destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child, into a local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    }

    fn aborted(status: i32) -> bool {
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT
    }

    #[test]
    fn an_allocation_in_the_child_handler_aborts() {
        let status = in_child_handler(|| {
            std::hint::black_box(Vec::<u8>::with_capacity(64));
        });
        assert!(aborted(status), "wait status {status:#x}");
    }

    #[test]
    fn a_lock_in_the_child_handler_aborts() {
        static LOCK: crate::lock::ForkLock<()> = crate::lock::ForkLock::new(());
        let status = in_child_handler(|| drop(LOCK.lock()));
        assert!(aborted(status), "wait status {status:#x}");
    }

    #[test]
    fn atomics_and_syscalls_in_the_child_handler_pass() {
        let status = in_child_handler(|| {
            // SAFETY: getpid cannot fail.
            std::hint::black_box(unsafe { libc::getpid() });
        });
        assert_eq!(status, 0);
    }
}
