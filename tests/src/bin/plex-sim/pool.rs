//! Plex's pool of database sessions: a fixed set of open handles on one
//! database, lent to one thread at a time with a bounded wait.
//!
//! Every open handle is also listed in a lock-free table that an `atexit`
//! handler closes, as a C++ static destructor of Plex's pool would: in the
//! server the pool is closed before exit and the table is empty then, but a
//! forked child that leaves through `exit()` closes the handles it inherited
//! (the `exit-after-failed-exec` fault).

use std::ops::Deref;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::log;
use crate::sqlite::{self, sqlite3, Connection};

/// How long SQLite retries a locked database before SQLITE_BUSY.
pub const BUSY_TIMEOUT_MS: i32 = 20_000;

pub struct Pool {
    name: &'static str,
    free: Mutex<Vec<Connection>>,
    returned: Condvar,
    size: usize,
}

impl Pool {
    /// Open `size` sessions on `path`.
    pub fn open(name: &'static str, path: &Path, size: usize) -> sqlite::Result<Pool> {
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open(path, BUSY_TIMEOUT_MS)?;
            exit_table::register(conn.raw());
            conns.push(conn);
        }
        Ok(Pool {
            name,
            free: Mutex::new(conns),
            returned: Condvar::new(),
            size,
        })
    }

    /// Borrow a session, waiting at most `wait` for one to be returned.
    pub fn checkout(&self, wait: Duration) -> Result<Lease<'_>, String> {
        let deadline = Instant::now() + wait;
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = free.pop() {
                exit_table::set_leased(conn.raw(), true);
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no free session in the {} pool ({} sessions) within {:.0} s",
                    self.name,
                    self.size,
                    wait.as_secs_f64()
                ));
            }
            free = self
                .returned
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Close every session that is back in the pool; returns the errors.
    pub fn close(&self) -> Vec<String> {
        let conns = std::mem::take(&mut *self.free.lock().unwrap_or_else(|e| e.into_inner()));
        let mut errors = Vec::new();
        for conn in conns {
            exit_table::unregister(conn.raw());
            if let Err(e) = conn.close() {
                errors.push(format!("closing a session of the {} pool: {e}", self.name));
            }
        }
        errors
    }
}

/// A session lent by a [`Pool`], returned when dropped.
pub struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Connection>,
}

impl Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("lease holds a connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            exit_table::set_leased(conn.raw(), false);
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
            self.pool.returned.notify_one();
        }
    }
}

/// The handles the exit handler closes: fixed slots of atomic pointers, so
/// a forked child can read them whatever lock another thread held. The low
/// bit of a slot marks a session lent out; the handler closes only the
/// sessions that are back in the pool, as a pool's destructor would.
pub mod exit_table {
    use super::*;

    const SLOTS: usize = 256;
    const LEASED: usize = 1;
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: AtomicPtr<sqlite3> = AtomicPtr::new(ptr::null_mut());
    static HANDLES: [AtomicPtr<sqlite3>; SLOTS] = [EMPTY; SLOTS];
    static INSTALLED: AtomicUsize = AtomicUsize::new(0);

    fn tagged(db: *mut sqlite3, leased: bool) -> *mut sqlite3 {
        (db as usize | if leased { LEASED } else { 0 }) as *mut sqlite3
    }

    fn untagged(p: *mut sqlite3) -> (*mut sqlite3, bool) {
        (
            (p as usize & !LEASED) as *mut sqlite3,
            p as usize & LEASED != 0,
        )
    }

    fn find(db: *mut sqlite3) -> Option<&'static AtomicPtr<sqlite3>> {
        HANDLES
            .iter()
            .find(|s| untagged(s.load(Ordering::Acquire)).0 == db)
    }

    pub fn register(db: *mut sqlite3) {
        for slot in &HANDLES {
            if slot
                .compare_exchange(ptr::null_mut(), db, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        log::warning!("more than {SLOTS} open sessions: the exit handler will not close them all");
    }

    pub fn unregister(db: *mut sqlite3) {
        if let Some(slot) = find(db) {
            slot.store(ptr::null_mut(), Ordering::Release);
        }
    }

    /// Mark a session lent out (`true`) or back in its pool.
    pub fn set_leased(db: *mut sqlite3, leased: bool) {
        if let Some(slot) = find(db) {
            slot.store(tagged(db, leased), Ordering::Release);
        }
    }

    /// Register the exit handler (once per process).
    pub fn install() {
        if INSTALLED.swap(1, Ordering::AcqRel) == 0 {
            // SAFETY: registering a plain extern "C" fn.
            unsafe { libc::atexit(close_at_exit) };
        }
    }

    extern "C" fn close_at_exit() {
        let (mut idle, mut leased) = (Vec::new(), 0usize);
        for slot in &HANDLES {
            let (db, lent) = untagged(slot.swap(ptr::null_mut(), Ordering::AcqRel));
            if db.is_null() {
                continue;
            }
            if lent {
                leased += 1;
            } else {
                idle.push(db);
            }
        }
        if idle.is_empty() && leased == 0 {
            return;
        }
        log::warning!(
            "exit handler: closing {} idle database sessions ({leased} lent out, left alone)",
            idle.len()
        );
        let failed = idle
            .iter()
            // SAFETY: each pointer was registered by Pool::open and not closed since.
            .filter(|&&db| unsafe { sqlite::close_raw(db) } != sqlite::SQLITE_OK)
            .count();
        log::warning!(
            "exit handler: closed {} sessions ({failed} reported an error)",
            idle.len()
        );
    }
}
