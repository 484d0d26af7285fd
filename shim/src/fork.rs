//! Fork safety: the `pthread_atfork` handlers, and the check that covers
//! children born without them.
//!
//! This module knows none of the state it protects. The modules that own
//! state a fork would break join from below, each with a [`Participant`]:
//! its locks to hold across `fork()` and what to drop in the child
//! (`runtime`: its caches' locks and the pool; `registry`: the handle
//! table and every routed handle's lock). The handlers only run the
//! participants' hooks, in the order they joined:
//!
//! - prepare (parent, before `fork()`): take every participant's locks, so
//!   none is mid-update in the child.
//! - parent (after): release them.
//! - child (after): unless `PLEX_PG_FORK_HANDLER=0`, let each participant
//!   disown what is the parent's (empty the pool without touching the
//!   parent's connections, free every routed handle's lock, tell the
//!   launcher: AfterFork); then free every participant's locks. Every hook
//!   is async-signal-safe: atomics, `dup3`, `getpid`, one `send`; no
//!   allocation, no lock another thread may hold (the `fork-audit` build
//!   aborts if one is taken).
//!
//! glibc does not run these handlers for `vfork`, `posix_spawn`, `clone`
//! or `_Fork`. [`ensure_own_process`], called before a routed database is
//! used, notices a process whose pid differs from the pool's owner. A
//! page marked `MADV_WIPEONFORK` tells the two kinds of such children
//! apart: after a real fork (own memory) the page reads zero and the pool
//! can be emptied as the handler would; after `vfork`/`CLONE_VM` (memory
//! shared with the parent) the page is intact, and touching the pool would
//! corrupt the parent's, so the call fails instead.

use crate::error::{Error, Result};
use crate::sys::SQLITE_MISUSE;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};

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

/// The fd that replaces an inherited socket in a child (`/dev/null`, or a
/// pipe's read end), -1 before [`configure`].
pub fn harmless_fd() -> i32 {
    HARMLESS_FD.load(Ordering::Acquire)
}

/// A module that owns state a fork would break. Every hook must be
/// async-signal-safe (see the module's doc).
pub struct Participant {
    /// Before `fork()`, in the parent: take the participant's locks.
    pub lock: fn(),
    /// After `fork()`, in the parent: release them, in reverse order.
    pub unlock: fn(),
    /// In the child: free them (they may be held by a thread that does not
    /// exist there). Always runs, handler on or off.
    pub reset_locks: fn(),
    /// In the child: drop, without touching it, what belongs to the
    /// parent. `from_handler` is false when [`ensure_own_process`] calls it
    /// for a child born without fork handlers: the calling thread may then
    /// hold locks of this participant, which must not be freed.
    pub disown: fn(from_handler: bool),
}

const MAX_PARTICIPANTS: usize = 4;
static PARTICIPANTS: [AtomicPtr<Participant>; MAX_PARTICIPANTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_PARTICIPANTS];
/// How many participants `prepare` locked: `parent` and `child` undo
/// exactly those, even if another joined in between.
static PREPARED: AtomicUsize = AtomicUsize::new(0);

/// Join the fork handlers (once per participant; later calls do nothing).
pub fn join(p: &'static Participant) {
    let ptr = p as *const Participant as *mut Participant;
    for slot in &PARTICIPANTS {
        match slot.compare_exchange(
            std::ptr::null_mut(),
            ptr,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return,
            Err(current) if current == ptr => return,
            Err(_) => continue,
        }
    }
    // A fixed table: more participants than slots is a programming error,
    // found by the first test that opens a database.
    debug_assert!(false, "more fork participants than MAX_PARTICIPANTS");
}

/// The participants that joined, in order; the first `n` at most (slots
/// fill in order, so the empty ones are at the end).
fn participants(n: usize) -> impl DoubleEndedIterator<Item = &'static Participant> {
    PARTICIPANTS[..n.min(MAX_PARTICIPANTS)]
        .iter()
        .filter_map(|slot| {
            // SAFETY: only `&'static Participant`s are stored, never removed.
            unsafe { slot.load(Ordering::Acquire).as_ref() }
        })
}

extern "C" fn prepare() {
    let n = participants(MAX_PARTICIPANTS).count();
    PREPARED.store(n, Ordering::Release);
    for p in participants(n) {
        (p.lock)();
    }
}

extern "C" fn parent() {
    for p in participants(PREPARED.load(Ordering::Acquire)).rev() {
        (p.unlock)();
    }
}

extern "C" fn child() {
    let _audit = crate::audit::ChildHandler::enter();
    let n = PREPARED.load(Ordering::Acquire);
    if n == 0 {
        return; // no routed database was ever opened
    }
    let started = monotonic_ns();
    if handler_on() {
        disown(n, true);
    }
    for p in participants(n) {
        (p.reset_locks)();
    }
    LAST_HANDLER_NS.store(monotonic_ns() - started, Ordering::Relaxed);
}

/// Let the first `n` participants drop what is the parent's, then make
/// this process the owner.
fn disown(n: usize, from_handler: bool) {
    for p in participants(n) {
        (p.disown)(from_handler);
    }
    // SAFETY: getpid is async-signal-safe and cannot fail.
    OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Release);
    let page = WIPE_PAGE.load(Ordering::Acquire);
    if !page.is_null() {
        // SAFETY: the page `configure` mapped, never unmapped; a child
        // keeps the mapping (zeroed after a real fork).
        unsafe { page.write_volatile(1) };
    }
}

/// Before a routed database is used: make sure the pool belongs to this
/// process (see the module's doc).
pub fn ensure_own_process() -> Result<()> {
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
    disown(MAX_PARTICIPANTS, false);
    Ok(())
}
