//! The routed handles and their life: the one owner of every routed
//! `sqlite3*` (opened, listed, closed here) and of the real statements that
//! stand for routed ones (prepared, kept for reuse, finalized here).
//!
//! Databases: the table of routed handles (a few dozen at most) is here; a
//! process that never opened one skips the lookup entirely. It joins the
//! fork handlers (`fork`) at the first routed open: the table's lock is
//! held across `fork()`, and a child frees every routed handle's lock.
//!
//! Statements are looked up on every `sqlite3_column_*` call, so they need
//! no lock at all: a routed statement is a real statement, prepared on the
//! routed handle's in-memory database from the text
//! `SELECT 'plex-pg:<secret>:<address>'`, where `<secret>` is this
//! process's random number and `<address>` that of our [`RoutedStmt`].
//! `sqlite3_sql` returns that text in a few nanoseconds; a statement of any
//! other database never carries the secret. The statement found must also
//! point back at the same real statement.
//!
//! Reading and checking that text costs ~50 ns, and a row of a scan makes
//! several calls on one statement (step, then a column call per column),
//! so each thread remembers the last statement it found. The memory is
//! good until any routed statement's real statement is finalized: that
//! bumps a global epoch first ([`finalize_dummy`]), so no address freed then can
//! be mistaken for the remembered statement afterwards.

use crate::connection::RoutedDb;
use crate::error::{Error, Result};
use crate::fork::{self, Participant};
use crate::lock::ForkLock;
use crate::real;
use crate::runtime::{self, Runtime};
use crate::statement::{self, RoutedStmt};
use crate::sys::*;
use std::cell::Cell;
use std::ffi::{c_int, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The open routed databases.
static DBS: ForkLock<Vec<Arc<RoutedDb>>> = ForkLock::new(Vec::new());

/// The table's part in fork safety (see `fork`).
static FORK: Participant = Participant {
    lock: || DBS.raw().lock(),
    unlock: || DBS.raw().unlock(),
    reset_locks: || DBS.raw().reset_in_child(),
    disown: |from_handler| {
        if !from_handler {
            return; // the calling thread may hold a handle's lock
        }
        // SAFETY: in the child's fork handler only one thread exists, and
        // the table's lock was taken before the fork by this very thread,
        // so no one else can be changing the table.
        for db in unsafe { DBS.get_unlocked() }.iter() {
            // Without touching the state: leases and results in flight are
            // forgotten (never dropped) at the handle's next use in the
            // child (`DbState::forget_if_inherited`).
            db.state.raw().reset_in_child();
        }
    },
};

/// Bumped before the real statement behind a routed one is finalized.
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last routed statement this thread found: (real statement,
    /// routed statement, epoch then). Plain integers: no destructor, so
    /// the access stays a few instructions.
    static LAST: Cell<(usize, usize, u64)> = const { Cell::new((0, 0, u64::MAX)) };
}

/// Finalize the real statement behind a routed one, retiring every
/// thread's memory of it first (its address, or its [`RoutedStmt`]'s, may
/// be reused afterwards). The only way the shim finalizes one.
///
/// # Safety
/// `dummy` must be a routed statement's real statement, not yet finalized.
unsafe fn finalize_dummy(dummy: *mut sqlite3_stmt) {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        EPOCH.fetch_add(1, Ordering::SeqCst);
        real::sqlite3_finalize(dummy);
    }
}

const PREFIX: &[u8] = b"SELECT 'plex-pg:";

/// The text of the real statement that stands for a routed one.
fn marker_sql(secret: u64, stmt: *const RoutedStmt) -> CString {
    CString::new(format!(
        "SELECT 'plex-pg:{secret:016x}:{:016x}'",
        stmt as usize
    ))
    .unwrap()
}

/// The routed database behind `db`, if it is one.
pub fn db(db: *mut sqlite3) -> Option<(Arc<RoutedDb>, &'static Runtime)> {
    let rt = runtime::get()?;
    let found = DBS.lock().iter().find(|d| d.handle == db).cloned();
    found.map(|d| (d, rt))
}

/// Take a handle out of the table (closed, or its deferred close done).
fn unregister(handle: *mut sqlite3) -> Option<Arc<RoutedDb>> {
    crate::tally::flush();
    let mut dbs = DBS.lock();
    let i = dbs.iter().position(|d| d.handle == handle)?;
    Some(dbs.swap_remove(i))
}

/// Open the routed database `path`: the client gets a real in-memory
/// handle (`*out`, set even on failure, as SQLite does), so any SQLite
/// function the shim does not export works on it. A dead server, a bad
/// password or a bad configuration fail here with `SQLITE_CANTOPEN`, as a
/// missing file would.
///
/// # Safety
/// `out` must be valid for writing.
pub unsafe fn open(path: String, out: *mut *mut sqlite3, flags: c_int) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        fork::join(&FORK);
        let rt = runtime::init();
        let mem_flags = SQLITE_OPEN_READWRITE
            | SQLITE_OPEN_CREATE
            | (flags & (SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_FULLMUTEX));
        let mut mem = std::ptr::null_mut();
        let rc = real::sqlite3_open_v2(c":memory:".as_ptr(), &mut mem, mem_flags, std::ptr::null());
        *out = mem;
        if rc != SQLITE_OK || mem.is_null() {
            return if rc == SQLITE_OK { SQLITE_NOMEM } else { rc };
        }
        let file = path.rsplit('/').next().unwrap_or(&path);
        let schema = rt.settings.schema_for(file);
        let schema_id = rt.schema_id(&schema);
        let db = Arc::new(RoutedDb::new(
            mem,
            path.clone(),
            schema.clone(),
            schema_id,
            rt.pool.generation(),
        ));
        DBS.lock().push(db.clone());
        // A configuration error was logged once, when the runtime was made.
        // Otherwise a connection must be had and the schema be ready, so a
        // dead server or a bad password shows at open time.
        let checked = match &rt.init_error {
            Some(e) => Err(e.clone()),
            None => rt
                .ready_lease(db.schema_id, &db.schema)
                .map(drop)
                .inspect_err(|e| {
                    tracing::error!("cannot open {path} on PostgreSQL: {}", e.message)
                }),
        };
        let mut st = db.state.lock();
        match checked {
            Ok(()) => {
                tracing::debug!("opened {path} on PostgreSQL (schema {schema})");
                st.ok();
                SQLITE_OK
            }
            Err(e) => {
                let e = Error::new(SQLITE_CANTOPEN, e.message);
                st.fail(&e)
            }
        }
    }
}

/// Close a routed database (`v2`: `sqlite3_close_v2`, which defers the
/// close while statements are alive).
///
/// # Safety
/// `db` must be the routed database behind its handle, not closed yet.
pub unsafe fn close(db: Arc<RoutedDb>, rt: &'static Runtime, v2: bool) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let handle = db.handle;
        let mut st = db.state.lock();
        st.forget_if_inherited(rt);
        // The source of an unfinished backup: SQLite's answer for close (a
        // close_v2 goes ahead; the backup keeps what it needs of the handle).
        if (st.live_statements > 0 || crate::backup::is_source(handle)) && !v2 {
            return st.fail(&Error::new(
                SQLITE_BUSY,
                "unable to close due to unfinalized statements or unfinished backups",
            ));
        }
        // Closing rolls back what is not committed, as SQLite does.
        if st.tx.is_some() {
            let _ = st.conn(&db, rt).map(|c| c.batch("ROLLBACK"));
            st.tx = None;
        }
        st.active = None;
        st.buffered.clear();
        st.lease = None;
        for shell in st.spare.drain(..) {
            if let Ok(shell) = shell.downcast::<RoutedStmt>() {
                finalize_dummy(shell.dummy);
            }
        }
        if st.live_statements > 0 {
            st.zombie = true; // gone when its last statement is finalized
            drop(st);
        } else {
            drop(st);
            unregister(handle);
        }
        tracing::debug!("closed {}", db.path);
        real::sqlite3_close_v2(handle)
    }
}

/// Prepare `text` (one statement) on a routed database: plan it, and give
/// it a real statement to stand for it (a spare one when there is).
pub fn prepare(db: &Arc<RoutedDb>, rt: &'static Runtime, text: &str) -> Result<*mut RoutedStmt> {
    let mut st = db.state.lock();
    st.forget_if_inherited(rt);
    let made = (|| {
        let plan = statement::plan(db, &mut st, rt, text)?;
        let sql =
            CString::new(text).map_err(|_| Error::sql("unrecognized token: NUL byte in SQL"))?;
        let spare = st.spare.pop().and_then(|s| s.downcast::<RoutedStmt>().ok());
        let stmt = match spare {
            Some(mut shell) => {
                shell.renew(sql, plan);
                shell
            }
            None => {
                let mut shell = Box::new(RoutedStmt::new(rt.secret, db.clone(), sql, plan));
                let marker = marker_sql(rt.secret, &*shell);
                let mut dummy = std::ptr::null_mut();
                // SAFETY: preparing a constant SELECT on our own open
                // in-memory handle; `marker` and `dummy` outlive the call.
                let rc = unsafe {
                    real::sqlite3_prepare_v2(
                        db.handle,
                        marker.as_ptr(),
                        -1,
                        &mut dummy,
                        std::ptr::null_mut(),
                    )
                };
                if rc != SQLITE_OK || dummy.is_null() {
                    return Err(Error::new(
                        SQLITE_NOMEM,
                        "cannot allocate a statement handle",
                    ));
                }
                shell.dummy = dummy;
                shell
            }
        };
        Ok(stmt)
    })();
    match made {
        Ok(stmt) => {
            st.live_statements += 1;
            st.ok();
            Ok(Box::into_raw(stmt))
        }
        Err(e) => {
            crate::tally::error(e.code);
            st.release_if_idle();
            Err(e)
        }
    }
}

/// Finalize a routed statement: stop it, keep its shell for reuse (or free
/// it), and complete a deferred close of its database. Returns the error
/// of its last step, as `sqlite3_finalize` does.
///
/// # Safety
/// `stmt` must come from [`prepare`] and not be finalized yet.
pub unsafe fn finalize(stmt: *mut RoutedStmt) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if (*stmt).spare {
            return finalize_spare(stmt);
        }
        let mut shell = Box::from_raw(stmt);
        let db = shell.db.clone();
        let mut st = db.state.lock();
        shell.stop(&mut st);
        st.live_statements -= 1;
        let rc = shell.last_error & 0xff;
        if st.zombie || st.spare.len() >= 16 {
            finalize_dummy(shell.dummy);
            drop(shell);
        } else {
            shell.binds.clear();
            shell.row.clear();
            shell.spare = true;
            st.spare.push(shell);
        }
        if st.zombie && st.live_statements == 0 {
            drop(st);
            unregister(db.handle);
        }
        rc
    }
}

/// A client finalizing a spare shell it found with `sqlite3_next_stmt`
/// (some do, before closing): take it out of the spares, free it.
///
/// # Safety
/// `stmt` must be a spare shell of its database.
unsafe fn finalize_spare(stmt: *mut RoutedStmt) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let db = (*stmt).db.clone();
        let mut st = db.state.lock();
        let found = st.spare.iter().position(|s| {
            s.downcast_ref::<RoutedStmt>()
                .is_some_and(|s| std::ptr::eq(s, stmt))
        });
        if let Some(i) = found {
            if let Ok(shell) = st.spare.swap_remove(i).downcast::<RoutedStmt>() {
                finalize_dummy(shell.dummy);
            }
        }
        SQLITE_OK
    }
}

/// The routed statement behind `stmt`, if it is one.
///
/// # Safety
/// `stmt` must be a statement handle the client got from SQLite (or us),
/// not yet finalized, and used by one thread at a time.
pub unsafe fn stmt<'a>(stmt: *mut sqlite3_stmt) -> Option<(&'a mut RoutedStmt, &'static Runtime)> {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let rt = runtime::get()?;
        if stmt.is_null() {
            return None;
        }
        let epoch = EPOCH.load(Ordering::Acquire);
        let (last_stmt, last_routed, last_epoch) = LAST.with(Cell::get);
        if last_stmt == stmt as usize && last_epoch == epoch {
            // SAFETY: found below in this epoch, and not freed since (freeing
            // a routed statement's real statement retires the epoch first).
            return Some((&mut *(last_routed as *mut RoutedStmt), rt));
        }
        let found = find(stmt, rt)?;
        LAST.with(|l| l.set((stmt as usize, found as *mut RoutedStmt as usize, epoch)));
        Some((found, rt))
    }
}

/// The routed statement behind `stmt`, from its text.
/// # Safety
/// As [`stmt`]: a live statement handle, used by one thread at a time.
unsafe fn find<'a>(stmt: *mut sqlite3_stmt, rt: &Runtime) -> Option<&'a mut RoutedStmt> {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let text = real::sqlite3_sql(stmt);
        if text.is_null() {
            return None;
        }
        // The marker is PREFIX, 16 hex digits, ':', 16 hex digits, '\''.
        // Compare byte by byte: the text ends at its NUL, which matches
        // nothing here, so nothing past it is read.
        let text = text as *const u8;
        const LEN: usize = PREFIX.len() + 34;
        let mut bytes = [0u8; LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = *text.add(i);
            if *b == 0 || (i < PREFIX.len() && *b != PREFIX[i]) {
                return None;
            }
        }
        let secret = hex(&bytes[PREFIX.len()..PREFIX.len() + 16])?;
        if secret != rt.secret || bytes[PREFIX.len() + 16] != b':' {
            return None;
        }
        let addr = hex(&bytes[PREFIX.len() + 17..PREFIX.len() + 33])? as usize;
        let routed = (addr as *mut RoutedStmt).as_mut()?;
        (routed.secret == rt.secret && routed.dummy == stmt).then_some(routed)
    }
}

fn hex(digits: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &d in digits {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        v = v << 4 | n as u64;
    }
    Some(v)
}
