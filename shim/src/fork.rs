//! Fork safety: the `pthread_atfork` handlers, and the check that covers
//! children born without them.
//!
//! - prepare (parent, before `fork()`): take the shim's global locks, so
//!   none is mid-update in the child.
//! - parent (after): release them.
//! - child (after): release them; then, unless `PLEX_PG_FORK_HANDLER=0`,
//!   empty the pool without touching the parent's connections (see
//!   `Pool::reset_in_child`), free every routed handle's lock, and tell the
//!   launcher (AfterFork). Async-signal-safe: atomics, `dup3`, `getpid`,
//!   one `send`; no allocation, no lock another thread may hold.
//!
//! glibc does not run these handlers for `vfork`, `posix_spawn`, `clone`
//! or `_Fork`. [`ensure_own_pool`], called before a routed database is
//! used, notices a process whose pid differs from the pool's owner. A
//! page marked `MADV_WIPEONFORK` tells the two kinds of such children
//! apart: after a real fork (own memory) the page reads zero and the pool
//! can be emptied as the handler would; after `vfork`/`CLONE_VM` (memory
//! shared with the parent) the page is intact, and touching the pool would
//! corrupt the parent's, so the call fails instead.

use crate::error::{Error, Result};
use crate::runtime::{self, Runtime};
use crate::sys::SQLITE_MISUSE;
use plex_pg_config::report::{HarmlessFd, MAX_REPORTED_FDS};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

static HANDLER_ON: AtomicBool = AtomicBool::new(true);
static HARMLESS_FD: AtomicI32 = AtomicI32::new(-1);
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
static WIPE_PAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// How long the last child handler took, in nanoseconds (for benchmarks).
static LAST_HANDLER_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Nanoseconds the last run of the child's fork handler took in this
/// process (0 if it never ran). A diagnostic for `bench/`: call it from a
/// forked child through `dlsym`.
#[no_mangle]
pub extern "C" fn plex_pg_last_fork_handler_ns() -> u64 {
    LAST_HANDLER_NS.load(Ordering::Relaxed)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Register the handlers; from the library's constructor. Cheap, and the
/// handlers do nothing until a routed database is opened.
pub fn register() {
    // SAFETY: registering plain extern "C" functions.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Set up at the runtime's creation: whether the handler is on, the fd
/// that replaces the parent's sockets, the wipe-on-fork page.
pub fn configure(handler_on: bool) {
    HANDLER_ON.store(handler_on, Ordering::Release);
    OWNER_PID.store(std::process::id() as i32, Ordering::Release);
    // SAFETY: opening /dev/null; mapping and marking one private page.
    unsafe {
        let mut fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            // No /dev/null (a bare container): the read end of a pipe is
            // as harmless.
            let mut p = [0; 2];
            if libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) == 0 {
                libc::close(p[1]);
                fd = p[0];
            }
        }
        HARMLESS_FD.store(fd, Ordering::Release);
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if page != libc::MAP_FAILED && libc::madvise(page, 4096, libc::MADV_WIPEONFORK) == 0 {
            let page = page as *mut u8;
            page.write_volatile(1);
            WIPE_PAGE.store(page, Ordering::Release);
        }
    }
}

pub fn handler_on() -> bool {
    HANDLER_ON.load(Ordering::Acquire)
}

extern "C" fn prepare() {
    if let Some(rt) = runtime::get() {
        for lock in rt.fork_locks() {
            lock.lock();
        }
    }
}

extern "C" fn parent() {
    if let Some(rt) = runtime::get() {
        for lock in rt.fork_locks().iter().rev() {
            lock.unlock();
        }
    }
}

extern "C" fn child() {
    let Some(rt) = runtime::get() else { return };
    let started = monotonic_ns();
    if handler_on() {
        // SAFETY: only this thread exists in the child.
        for db in unsafe { rt.dbs_in_child() } {
            db.state.raw().reset_in_child();
        }
        empty_pool(rt);
    }
    for lock in rt.fork_locks() {
        lock.reset_in_child();
    }
    LAST_HANDLER_NS.store(monotonic_ns() - started, Ordering::Relaxed);
}

/// Empty the pool as the child's handler does, and report it.
fn empty_pool(rt: &Runtime) {
    // Not zero-filled: only the entries written are read, and filling 4 KiB
    // of stack would copy a page or two in the child for nothing.
    let mut done = [std::mem::MaybeUninit::<HarmlessFd>::uninit(); MAX_REPORTED_FDS];
    let n = rt
        .pool
        .reset_in_child(HARMLESS_FD.load(Ordering::Acquire), &mut done);
    // SAFETY: reset_in_child initialized the first n entries.
    let done = unsafe { std::slice::from_raw_parts(done.as_ptr() as *const HarmlessFd, n) };
    // SAFETY: getpid is async-signal-safe.
    OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Release);
    let page = WIPE_PAGE.load(Ordering::Acquire);
    if !page.is_null() {
        // SAFETY: our mapped page.
        unsafe { page.write_volatile(1) };
    }
    rt.reporter
        .after_fork(rt.pool.generation(), rt.pool.open_count(), done);
}

/// Before a routed database is used: make sure the pool belongs to this
/// process (see the module's doc).
pub fn ensure_own_pool(rt: &Runtime) -> Result<()> {
    if !handler_on() {
        return Ok(()); // reproducing the old shim: no protection at all
    }
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    if pid == OWNER_PID.load(Ordering::Acquire) {
        return Ok(());
    }
    let page = WIPE_PAGE.load(Ordering::Acquire);
    // SAFETY: our mapped page, still mapped in any child.
    let own_memory = !page.is_null() && unsafe { page.read_volatile() } == 0;
    if !own_memory {
        return Err(Error::new(
            SQLITE_MISUSE,
            "plex-pg: this process shares its parent's memory (vfork or clone without fork handlers); it must exec before it uses the library database",
        ));
    }
    tracing::warn!("this process was forked without fork handlers (_Fork or clone); emptying the inherited pool now");
    empty_pool(rt);
    Ok(())
}
