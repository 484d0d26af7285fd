//! Database-level exports: open, close, exec, get_table, errors, change
//! counts, autocommit, collations, memory.

use super::guard;
use crate::connection::RoutedDb;
use crate::error::Error;
use crate::registry;
use crate::runtime::Runtime;
use crate::statement::RoutedStmt;
use crate::sys::*;
use crate::{real, split};
use plex_pg_config::Settings;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

/// The file-name patterns that route a database, read once per process at
/// its first open (of any database): `shim.route` from the settings, or the
/// default when they cannot be read (the routed open then reports why).
fn route_settings() -> &'static Settings {
    static ROUTE: AtomicPtr<Settings> = AtomicPtr::new(std::ptr::null_mut());
    let p = ROUTE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: published once, never freed.
        return unsafe { &*p };
    }
    let env = |k: &str| std::env::var(k).ok();
    let settings = Settings::load(&env).unwrap_or_else(|_| {
        let mut s = Settings::default();
        let _ = s.apply_env(&|k| if k == "PLEX_PG_ROUTE" { env(k) } else { None });
        s
    });
    let fresh = Box::into_raw(Box::new(settings));
    match ROUTE.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: published now, and never freed.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: ours, from Box::into_raw above, never published.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: the winner's, published once and never freed.
            unsafe { &*winner }
        }
    }
}

/// The path to route, if `filename` names a routed database file.
fn routed_path(filename: &[u8]) -> Option<String> {
    let path = std::str::from_utf8(filename).ok()?;
    // A URI filename: file:PATH?query
    let path = match path.strip_prefix("file:") {
        Some(rest) => rest.split(['?', '#']).next().unwrap_or(""),
        None => path,
    };
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    route_settings().routes(path).then(|| path.to_string())
}

/// # Safety
/// As `sqlite3_open_v2`: `filename` null or a C string, `out` null or
/// writable, `vfs` null or a C string.
unsafe fn open(
    filename: *const c_char,
    out: *mut *mut sqlite3,
    flags: c_int,
    vfs: *const c_char,
) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if filename.is_null() || out.is_null() {
            return real::sqlite3_open_v2(filename, out, flags, vfs);
        }
        let Some(path) = routed_path(CStr::from_ptr(filename).to_bytes()) else {
            return real::sqlite3_open_v2(filename, out, flags, vfs);
        };
        registry::open(path, out, flags)
    }
}

/// # Safety
/// As `sqlite3_open`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_open(filename: *const c_char, db: *mut *mut sqlite3) -> c_int {
    // SAFETY: the caller keeps `sqlite3_open`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            open(
                filename,
                db,
                SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                std::ptr::null(),
            )
        })
    }
}

/// # Safety
/// As `sqlite3_open_v2`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_open_v2(
    filename: *const c_char,
    db: *mut *mut sqlite3,
    flags: c_int,
    vfs: *const c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_open_v2`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { guard(SQLITE_INTERNAL, || open(filename, db, flags, vfs)) }
}

/// # Safety
/// As `sqlite3_close`: `handle` null or a live database handle.
unsafe fn close(handle: *mut sqlite3, v2: bool) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let Some((db, rt)) = registry::db(handle) else {
            // The destination of an unfinished shim backup (the real SQLite
            // does not know of it): refused as SQLite refuses it, or, for
            // close_v2, the backup told to leave the handle alone.
            if crate::backup::is_dest(handle) {
                if !v2 {
                    let e = Error::new(
                        SQLITE_BUSY,
                        "unable to close due to unfinalized statements or unfinished backups",
                    );
                    crate::backup::set_dest_error(handle, &e);
                    return SQLITE_BUSY;
                }
                crate::backup::dest_closed(handle);
            }
            return if v2 {
                real::sqlite3_close_v2(handle)
            } else {
                real::sqlite3_close(handle)
            };
        };
        registry::close(db, rt, v2)
    }
}

/// # Safety
/// As `sqlite3_close`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_close(db: *mut sqlite3) -> c_int {
    // SAFETY: the caller keeps `sqlite3_close`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { guard(SQLITE_INTERNAL, || close(db, false)) }
}

/// # Safety
/// As `sqlite3_close_v2`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_close_v2(db: *mut sqlite3) -> c_int {
    // SAFETY: the caller keeps `sqlite3_close_v2`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { guard(SQLITE_INTERNAL, || close(db, true)) }
}

/// Run every statement of `sql` on a routed database, calling `on_row`
/// with each result row's texts and column names. `on_row` returning true
/// aborts (SQLITE_ABORT). Returns the result code and the error message.
///
/// # Safety
/// `db` must be open; `on_row` gets statements valid only for the call.
unsafe fn run_script(
    db: &Arc<RoutedDb>,
    rt: &'static Runtime,
    sql: &[u8],
    mut on_row: impl FnMut(&RoutedStmt) -> bool,
) -> (c_int, Option<String>) {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let mut rest = sql;
        loop {
            let part = split::first_statement(rest);
            if part.statement.is_empty() {
                return (SQLITE_OK, None);
            }
            rest = part.tail;
            let text = match std::str::from_utf8(part.statement) {
                Ok(t) => t,
                Err(_) => return (SQLITE_ERROR, Some("SQL text is not valid UTF-8".into())),
            };
            let stmt = match registry::prepare(db, rt, text) {
                Ok(s) => s,
                Err(e) => {
                    let rc = db.state.lock().fail(&e);
                    return (rc, Some(e.message));
                }
            };
            let s = &mut *stmt;
            let mut result = (SQLITE_OK, None);
            loop {
                match s.step(rt) {
                    SQLITE_ROW => {
                        if on_row(s) {
                            let e = Error::new(SQLITE_ABORT, "query aborted");
                            db.state.lock().fail(&e);
                            result = (SQLITE_ABORT, Some(e.message));
                            break;
                        }
                    }
                    SQLITE_DONE => break,
                    rc => {
                        result = (
                            rc,
                            Some(db.state.lock().errmsg.to_string_lossy().into_owned()),
                        );
                        break;
                    }
                }
            }
            registry::finalize(stmt);
            if result.0 != SQLITE_OK {
                if result.0 != SQLITE_ABORT {
                    db.state
                        .lock()
                        .set_errmsg(result.0, result.1.as_deref().unwrap_or(""));
                }
                return result;
            }
        }
    }
}

/// The current row's values as C strings (NULL as None).
fn row_texts(s: &RoutedStmt) -> Vec<Option<CString>> {
    (0..s.data_count() as c_int)
        .map(|i| {
            s.value(i)
                .and_then(|v| v.blob())
                .map(|b| CString::new(b.to_vec()).unwrap_or_default())
        })
        .collect()
}

/// Hand `msg` to the client as `sqlite3_exec`'s error message (freed
/// with `sqlite3_free`).
///
/// # Safety
/// `out` must be null or writable.
unsafe fn set_errmsg(out: *mut *mut c_char, msg: Option<String>) {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if !out.is_null() {
            *out = match msg {
                Some(m) => real::malloc_cstring(m.as_bytes()),
                None => std::ptr::null_mut(),
            };
        }
    }
}

/// # Safety
/// As `sqlite3_exec`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_exec(
    handle: *mut sqlite3,
    sql: *const c_char,
    callback: ExecCallback,
    arg: *mut c_void,
    errmsg: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_exec`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            let Some((db, rt)) = registry::db(handle) else {
                return real::sqlite3_exec(handle, sql, callback, arg, errmsg);
            };
            if sql.is_null() {
                return SQLITE_OK;
            }
            let (rc, msg) = run_script(&db, rt, CStr::from_ptr(sql).to_bytes(), |s| {
                let Some(cb) = callback else { return false };
                let texts = row_texts(s);
                let mut values: Vec<*mut c_char> = texts
                    .iter()
                    .map(|t| {
                        t.as_ref()
                            .map_or(std::ptr::null_mut(), |c| c.as_ptr() as *mut c_char)
                    })
                    .collect();
                let mut names: Vec<*mut c_char> = s
                    .columns
                    .names
                    .iter()
                    .map(|n| n.as_ptr() as *mut c_char)
                    .collect();
                names.resize(values.len(), std::ptr::null_mut());
                cb(
                    arg,
                    values.len() as c_int,
                    values.as_mut_ptr(),
                    names.as_mut_ptr(),
                ) != 0
            });
            set_errmsg(errmsg, if rc == SQLITE_OK { None } else { msg });
            rc
        })
    }
}

/// # Safety
/// As `sqlite3_get_table`. The result is freed with the real
/// `sqlite3_free_table`, so it is laid out exactly as SQLite lays it out:
/// slot 0 holds the number of slots, the caller sees slot 1 on.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_get_table(
    handle: *mut sqlite3,
    sql: *const c_char,
    result: *mut *mut *mut c_char,
    nrow: *mut c_int,
    ncolumn: *mut c_int,
    errmsg: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_get_table`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            let Some((db, rt)) = registry::db(handle) else {
                return real::sqlite3_get_table(handle, sql, result, nrow, ncolumn, errmsg);
            };
            if result.is_null() || sql.is_null() {
                return SQLITE_MISUSE;
            }
            let mut cells: Vec<Option<Vec<u8>>> = Vec::new();
            let mut columns = 0usize;
            let mut rows = 0usize;
            let (rc, msg) = run_script(&db, rt, CStr::from_ptr(sql).to_bytes(), |s| {
                let n = s.data_count();
                if rows == 0 && columns == 0 {
                    columns = n;
                    cells.extend(
                        s.columns
                            .names
                            .iter()
                            .take(n)
                            .map(|c| Some(c.as_bytes().to_vec())),
                    );
                    cells.resize(n, Some(Vec::new()));
                }
                cells.extend(
                    row_texts(s)
                        .into_iter()
                        .take(columns)
                        .map(|t| t.map(|c| c.into_bytes())),
                );
                rows += 1;
                false
            });
            *result = std::ptr::null_mut();
            if rc != SQLITE_OK {
                set_errmsg(errmsg, msg);
                return rc;
            }
            let slots = cells.len() + 1;
            let array = real::sqlite3_malloc64((slots * std::mem::size_of::<*mut c_char>()) as u64)
                as *mut *mut c_char;
            if array.is_null() {
                return SQLITE_NOMEM;
            }
            *array = slots as *mut c_char;
            for (i, cell) in cells.iter().enumerate() {
                *array.add(i + 1) = cell
                    .as_ref()
                    .map_or(std::ptr::null_mut(), |b| real::malloc_cstring(b));
            }
            *result = array.add(1);
            if !nrow.is_null() {
                *nrow = rows as c_int;
            }
            if !ncolumn.is_null() {
                *ncolumn = columns as c_int;
            }
            set_errmsg(errmsg, None);
            SQLITE_OK
        })
    }
}

macro_rules! db_getter {
    ($(#[$doc:meta])* $name:ident -> $ty:ty, $fallback:expr, |$st:ident| $body:expr) => {
        $(#[$doc])*
        /// # Safety
        /// As the SQLite function of that name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(handle: *mut sqlite3) -> $ty {
            guard($fallback, || match registry::db(handle) {
                Some((db, rt)) => {
                    let mut $st = db.state.lock();
                    $st.forget_if_inherited(rt);
                    $body
                }
                // SAFETY: not ours: the caller's handle, passed on to the
                // real function under the same contract.
                None => unsafe { real::$name(handle) },
            })
        }
    };
}

db_getter!(sqlite3_errcode -> c_int, SQLITE_INTERNAL, |st| st.errcode & 0xff);
db_getter!(sqlite3_extended_errcode -> c_int, SQLITE_INTERNAL, |st| st.errcode);
// The counts and the rowid are exact when asked: the answers of writes
// still in flight are read first (a failed one is then recorded as the
// handle's error, its transaction rolled back).
db_getter!(sqlite3_changes -> c_int, 0, |st| { st.settle_or_record(crate::connection::rt()); st.changes as c_int });
db_getter!(sqlite3_changes64 -> i64, 0, |st| { st.settle_or_record(crate::connection::rt()); st.changes });
db_getter!(sqlite3_total_changes -> c_int, 0, |st| { st.settle_or_record(crate::connection::rt()); st.total_changes as c_int });
db_getter!(sqlite3_total_changes64 -> i64, 0, |st| { st.settle_or_record(crate::connection::rt()); st.total_changes });
db_getter!(sqlite3_last_insert_rowid -> i64, 0, |st| { st.settle_or_record(crate::connection::rt()); st.last_rowid });
db_getter!(
    /// Autocommit is on outside a transaction: Python's sqlite3 module
    /// decides from this whether to send COMMIT.
    sqlite3_get_autocommit -> c_int, 1, |st| st.tx.is_none() as c_int
);
db_getter!(
    /// The message stays valid until the next call on the handle.
    sqlite3_errmsg -> *const c_char, c"plex-pg internal error".as_ptr(), |st| {
        if st.errcode == SQLITE_OK { c"not an error".as_ptr() } else { st.errmsg.as_ptr() }
    }
);

/// # Safety
/// As `sqlite3_create_collation`. The collation is registered on the
/// handle's in-memory database; for routed statements the translator maps
/// collation names to PostgreSQL's (see docs/sql-support.md).
#[no_mangle]
pub unsafe extern "C" fn sqlite3_create_collation(
    db: *mut sqlite3,
    name: *const c_char,
    rep: c_int,
    arg: *mut c_void,
    cmp: CollationCompare,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_create_collation`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            real::sqlite3_create_collation(db, name, rep, arg, cmp)
        })
    }
}

/// # Safety
/// As `sqlite3_create_collation_v2`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_create_collation_v2(
    db: *mut sqlite3,
    name: *const c_char,
    rep: c_int,
    arg: *mut c_void,
    cmp: CollationCompare,
    destroy: Destructor,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_create_collation_v2`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            real::sqlite3_create_collation_v2(db, name, rep, arg, cmp, destroy)
        })
    }
}

/// # Safety
/// As `sqlite3_free`: memory always comes from the real SQLite's allocator.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_free(p: *mut c_void) {
    // SAFETY: the caller keeps `sqlite3_free`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { real::sqlite3_free(p) }
}

/// # Safety
/// As `sqlite3_malloc`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_malloc(n: c_int) -> *mut c_void {
    // SAFETY: the caller keeps `sqlite3_malloc`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { real::sqlite3_malloc(n) }
}
