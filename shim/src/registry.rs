//! Telling routed handles from the real SQLite's, fast.
//!
//! Databases: the runtime keeps the list of routed handles (a few dozen at
//! most); a process that never opened one skips the lookup entirely.
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
use crate::real;
use crate::runtime::{self, Runtime};
use crate::statement::RoutedStmt;
use crate::sys::*;
use std::cell::Cell;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
pub unsafe fn finalize_dummy(dummy: *mut sqlite3_stmt) {
    EPOCH.fetch_add(1, Ordering::SeqCst);
    real::sqlite3_finalize(dummy);
}

const PREFIX: &[u8] = b"SELECT 'plex-pg:";

/// The text of the real statement that stands for a routed one.
pub fn marker_sql(secret: u64, stmt: *const RoutedStmt) -> CString {
    CString::new(format!(
        "SELECT 'plex-pg:{secret:016x}:{:016x}'",
        stmt as usize
    ))
    .unwrap()
}

/// The routed database behind `db`, if it is one.
pub fn db(db: *mut sqlite3) -> Option<(Arc<RoutedDb>, &'static Runtime)> {
    let rt = runtime::get()?;
    rt.db(db as usize).map(|d| (d, rt))
}

/// The routed statement behind `stmt`, if it is one.
///
/// # Safety
/// `stmt` must be a statement handle the client got from SQLite (or us),
/// not yet finalized, and used by one thread at a time.
pub unsafe fn stmt<'a>(stmt: *mut sqlite3_stmt) -> Option<(&'a mut RoutedStmt, &'static Runtime)> {
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

/// The routed statement behind `stmt`, from its text.
unsafe fn find<'a>(stmt: *mut sqlite3_stmt, rt: &Runtime) -> Option<&'a mut RoutedStmt> {
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
