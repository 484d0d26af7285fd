//! A thin safe wrapper over the SQLite C API, declared by hand and linked
//! dynamically against the system `libsqlite3`, so that `LD_PRELOAD`
//! interposes every call exactly as it does for Plex.
//!
//! It also owns the *fork gate*: a thread about to `fork()` stops new calls
//! into SQLite and waits (bounded) for the running ones to return, so that no
//! SQLite mutex is held by another thread at the instant of the fork (a child
//! that opens its own connection would otherwise deadlock on it). Forks still
//! happen while statements are half-way through their results, which is the
//! window that matters for the shim. The gate can be switched off
//! (`--fork-gate off`).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[repr(C)]
pub struct sqlite3 {
    _opaque: [u8; 0],
}

#[repr(C)]
pub struct sqlite3_stmt {
    _opaque: [u8; 0],
}

pub const SQLITE_OK: c_int = 0;
pub const SQLITE_ROW: c_int = 100;
pub const SQLITE_DONE: c_int = 101;
const SQLITE_MISUSE: c_int = 21;

pub const SQLITE_OPEN_READWRITE: c_int = 0x0000_0002;
pub const SQLITE_OPEN_CREATE: c_int = 0x0000_0004;
pub const SQLITE_OPEN_FULLMUTEX: c_int = 0x0001_0000;

const SQLITE_INTEGER: c_int = 1;
const SQLITE_FLOAT: c_int = 2;
const SQLITE_TEXT: c_int = 3;
const SQLITE_BLOB: c_int = 4;

/// `SQLITE_TRANSIENT`: SQLite copies bound text and blobs before returning.
const SQLITE_TRANSIENT: isize = -1;

#[link(name = "sqlite3")]
extern "C" {
    fn sqlite3_libversion() -> *const c_char;
    fn sqlite3_open_v2(
        filename: *const c_char,
        db: *mut *mut sqlite3,
        flags: c_int,
        vfs: *const c_char,
    ) -> c_int;
    fn sqlite3_close_v2(db: *mut sqlite3) -> c_int;
    fn sqlite3_errmsg(db: *mut sqlite3) -> *const c_char;
    fn sqlite3_errstr(rc: c_int) -> *const c_char;
    fn sqlite3_busy_timeout(db: *mut sqlite3, ms: c_int) -> c_int;
    fn sqlite3_prepare_v2(
        db: *mut sqlite3,
        sql: *const c_char,
        nbyte: c_int,
        stmt: *mut *mut sqlite3_stmt,
        tail: *mut *const c_char,
    ) -> c_int;
    fn sqlite3_bind_parameter_index(stmt: *mut sqlite3_stmt, name: *const c_char) -> c_int;
    fn sqlite3_bind_int64(stmt: *mut sqlite3_stmt, idx: c_int, value: i64) -> c_int;
    fn sqlite3_bind_double(stmt: *mut sqlite3_stmt, idx: c_int, value: f64) -> c_int;
    fn sqlite3_bind_text(
        stmt: *mut sqlite3_stmt,
        idx: c_int,
        text: *const c_char,
        n: c_int,
        destructor: isize,
    ) -> c_int;
    fn sqlite3_bind_blob(
        stmt: *mut sqlite3_stmt,
        idx: c_int,
        data: *const c_void,
        n: c_int,
        destructor: isize,
    ) -> c_int;
    fn sqlite3_bind_null(stmt: *mut sqlite3_stmt, idx: c_int) -> c_int;
    fn sqlite3_step(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_finalize(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_reset(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_column_count(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_column_name(stmt: *mut sqlite3_stmt, col: c_int) -> *const c_char;
    fn sqlite3_column_type(stmt: *mut sqlite3_stmt, col: c_int) -> c_int;
    fn sqlite3_column_int64(stmt: *mut sqlite3_stmt, col: c_int) -> i64;
    fn sqlite3_column_double(stmt: *mut sqlite3_stmt, col: c_int) -> f64;
    fn sqlite3_column_text(stmt: *mut sqlite3_stmt, col: c_int) -> *const u8;
    fn sqlite3_column_blob(stmt: *mut sqlite3_stmt, col: c_int) -> *const c_void;
    fn sqlite3_column_bytes(stmt: *mut sqlite3_stmt, col: c_int) -> c_int;
    fn sqlite3_changes(db: *mut sqlite3) -> c_int;
    fn sqlite3_last_insert_rowid(db: *mut sqlite3) -> i64;
}

// ---------------------------------------------------------------- fork gate

/// Threads inside a call into SQLite right now.
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// A thread wants to fork: new calls wait until it has.
static FORK_PENDING: AtomicBool = AtomicBool::new(false);
static FORKER: Mutex<()> = Mutex::new(());
static GATE_ON: AtomicBool = AtomicBool::new(true);

/// Held around each call into SQLite.
struct Inside;

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn enter() -> Option<Inside> {
    if !GATE_ON.load(Ordering::Acquire) {
        return None;
    }
    loop {
        while FORK_PENDING.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_micros(100));
        }
        INSIDE.fetch_add(1, Ordering::SeqCst);
        if !FORK_PENDING.load(Ordering::SeqCst) {
            return Some(Inside);
        }
        INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held by a thread across `fork()`. `quiesced` is false when other threads
/// were still inside SQLite after the wait (one waiting out a lock held by a
/// thread the gate stopped, say): the fork then went ahead anyway.
pub struct ForkGate {
    _forker: MutexGuard<'static, ()>,
    pub quiesced: bool,
    pub inside: usize,
}

impl Drop for ForkGate {
    fn drop(&mut self) {
        FORK_PENDING.store(false, Ordering::SeqCst);
    }
}

/// Stop new calls into SQLite and wait at most `wait` for the running ones to return.
pub fn gate_for_fork(wait: Duration) -> Option<ForkGate> {
    if !GATE_ON.load(Ordering::Acquire) {
        return None;
    }
    let forker = FORKER.lock().unwrap_or_else(|e| e.into_inner());
    FORK_PENDING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + wait;
    let mut inside = INSIDE.load(Ordering::SeqCst);
    while inside > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(50));
        inside = INSIDE.load(Ordering::SeqCst);
    }
    Some(ForkGate {
        _forker: forker,
        quiesced: inside == 0,
        inside,
    })
}

/// `--fork-gate off`: forks may happen while another thread is inside SQLite.
pub fn set_fork_gate(on: bool) {
    GATE_ON.store(on, Ordering::Release);
}

/// In a forked child: the gate was copied closed by the forking thread;
/// the child is single-threaded, so it simply stops using it.
pub fn forget_gate_after_fork() {
    GATE_ON.store(false, Ordering::Release);
}

// ---------------------------------------------------------------- errors

/// A failed SQLite call: the result code, SQLite's message, and the SQL.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: i32,
    pub message: String,
    pub sql: Option<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLite result code {})", self.message, self.code)?;
        if let Some(sql) = &self.sql {
            write!(f, " in statement: {}", shorten(sql, 300))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// The message for `rc` on `db`; call with the gate held, right after the failing call.
unsafe fn error_of(db: *mut sqlite3, rc: c_int, sql: Option<&str>) -> Error {
    let msg = if db.is_null() {
        sqlite3_errstr(rc)
    } else {
        sqlite3_errmsg(db)
    };
    let message = if msg.is_null() {
        format!("SQLite error {rc}")
    } else {
        CStr::from_ptr(msg).to_string_lossy().into_owned()
    };
    Error {
        code: rc,
        message,
        sql: sql.map(str::to_string),
    }
}

fn misuse(message: String, sql: &str) -> Error {
    Error {
        code: SQLITE_MISUSE,
        message,
        sql: Some(sql.to_string()),
    }
}

/// The SQLite library's version, as `sqlite3_libversion` reports it.
pub fn library_version() -> String {
    let _g = enter();
    // SAFETY: returns a static NUL-terminated string.
    unsafe {
        CStr::from_ptr(sqlite3_libversion())
            .to_string_lossy()
            .into_owned()
    }
}

// ---------------------------------------------------------------- values

/// One SQLite value, as bound or as read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "NULL"),
            Value::Integer(v) => write!(f, "{v}"),
            Value::Real(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "'{}'", shorten(v, 80)),
            Value::Blob(v) => write!(f, "blob of {} bytes", v.len()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

// ---------------------------------------------------------------- connections

/// An open `sqlite3*` handle, closed with `sqlite3_close_v2` when dropped.
pub struct Connection {
    db: *mut sqlite3,
}

// SAFETY: handles are opened with SQLITE_OPEN_FULLMUTEX (serialized mode), and
// each Connection is used by one thread at a time (it moves through a pool).
unsafe impl Send for Connection {}

impl Connection {
    /// Open (and create) the database at `path`, serialized, with a busy timeout.
    pub fn open(path: &Path, busy_timeout_ms: i32) -> Result<Connection> {
        let name = path
            .to_str()
            .ok_or_else(|| misuse(format!("path is not UTF-8: {}", path.display()), ""))?;
        let c_name =
            CString::new(name).map_err(|_| misuse(format!("path contains NUL: {name}"), ""))?;
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
        let mut db = std::ptr::null_mut();
        let _g = enter();
        // SAFETY: valid C string and out-pointer; the handle is closed on error.
        unsafe {
            let rc = sqlite3_open_v2(c_name.as_ptr(), &mut db, flags, std::ptr::null());
            if rc != SQLITE_OK {
                let mut err = error_of(db, rc, None);
                err.message = format!("cannot open {name}: {}", err.message);
                if !db.is_null() {
                    sqlite3_close_v2(db);
                }
                return Err(err);
            }
            sqlite3_busy_timeout(db, busy_timeout_ms);
        }
        Ok(Connection { db })
    }

    /// A handle this process holds only because it inherited it through
    /// `fork()`: usable, but never closed by this wrapper.
    ///
    /// # Safety
    /// `db` must be a handle opened by this program before the fork.
    pub unsafe fn inherited(db: *mut sqlite3) -> std::mem::ManuallyDrop<Connection> {
        std::mem::ManuallyDrop::new(Connection { db })
    }

    /// The raw handle (for the fork-safety experiments and the exit handler).
    pub fn raw(&self) -> *mut sqlite3 {
        self.db
    }

    /// Run one statement to completion, discarding any rows.
    pub fn execute(&self, sql: &str) -> Result<()> {
        let mut stmt = self.prepare(sql)?;
        while stmt.step()? {}
        Ok(())
    }

    /// Compile `sql` (one statement).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let c_sql = CString::new(sql).map_err(|_| misuse("SQL contains NUL".into(), sql))?;
        let mut stmt = std::ptr::null_mut();
        let _g = enter();
        // SAFETY: valid handle and C string; the statement is owned by the result.
        unsafe {
            let rc =
                sqlite3_prepare_v2(self.db, c_sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut());
            if rc != SQLITE_OK {
                return Err(error_of(self.db, rc, Some(sql)));
            }
        }
        if stmt.is_null() {
            return Err(misuse("statement is empty".into(), sql));
        }
        Ok(Statement {
            stmt,
            conn: self,
            sql: sql.to_string(),
        })
    }

    /// Run `body` in a write transaction (`BEGIN IMMEDIATE` … `COMMIT`),
    /// rolled back when `body` or the commit fails.
    pub fn transaction<T>(&self, body: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.execute("BEGIN IMMEDIATE")?;
        let outcome = body(self).and_then(|v| self.execute("COMMIT").map(|()| v));
        if outcome.is_err() {
            let _ = self.execute("ROLLBACK");
        }
        outcome
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    pub fn changes(&self) -> i64 {
        let _g = enter();
        // SAFETY: valid handle.
        i64::from(unsafe { sqlite3_changes(self.db) })
    }

    /// Rowid of the last successful INSERT on this handle.
    pub fn last_insert_rowid(&self) -> i64 {
        let _g = enter();
        // SAFETY: valid handle.
        unsafe { sqlite3_last_insert_rowid(self.db) }
    }

    /// Close now, reporting failure (dropping closes too, silently).
    pub fn close(self) -> Result<()> {
        let db = self.db;
        std::mem::forget(self);
        let _g = enter();
        // SAFETY: the handle is owned and not used again.
        unsafe { close_raw_locked(db) }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _g = enter();
        // SAFETY: the handle is owned and not used again.
        let _ = unsafe { close_raw_locked(self.db) };
    }
}

unsafe fn close_raw_locked(db: *mut sqlite3) -> Result<()> {
    let rc = sqlite3_close_v2(db);
    if rc == SQLITE_OK {
        Ok(())
    } else {
        Err(error_of(std::ptr::null_mut(), rc, None))
    }
}

/// `sqlite3_close_v2` on a raw handle, for the exit handler. Returns the result code.
///
/// # Safety
/// `db` must be a handle this process opened (or inherited) and not closed yet.
pub unsafe fn close_raw(db: *mut sqlite3) -> i32 {
    let _g = enter();
    sqlite3_close_v2(db)
}

// ---------------------------------------------------------------- statements

/// A prepared statement, finalized when dropped.
pub struct Statement<'c> {
    stmt: *mut sqlite3_stmt,
    conn: &'c Connection,
    sql: String,
}

impl Statement<'_> {
    fn fail(&self, rc: c_int) -> Error {
        // SAFETY: called with the gate held, right after the failing call.
        unsafe { error_of(self.conn.db, rc, Some(&self.sql)) }
    }

    /// Bind `value` to the named parameter (`:C1`, SOCI's style).
    pub fn bind(&mut self, name: &str, value: impl Into<Value>) -> Result<()> {
        let c_name = CString::new(name)
            .map_err(|_| misuse(format!("parameter name {name:?} contains NUL"), &self.sql))?;
        let idx = {
            let _g = enter();
            // SAFETY: valid statement and C string.
            unsafe { sqlite3_bind_parameter_index(self.stmt, c_name.as_ptr()) }
        };
        if idx == 0 {
            return Err(misuse(format!("no parameter named {name}"), &self.sql));
        }
        self.bind_at(idx as usize, value)
    }

    /// Bind `value` to the parameter numbered `idx` (from 1).
    pub fn bind_at(&mut self, idx: usize, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        let idx = col_c(idx);
        let _g = enter();
        // SAFETY: valid statement; text and blobs are copied (SQLITE_TRANSIENT).
        let rc = unsafe {
            match &value {
                Value::Null => sqlite3_bind_null(self.stmt, idx),
                Value::Integer(v) => sqlite3_bind_int64(self.stmt, idx, *v),
                Value::Real(v) => sqlite3_bind_double(self.stmt, idx, *v),
                Value::Text(v) => sqlite3_bind_text(
                    self.stmt,
                    idx,
                    v.as_ptr().cast(),
                    len_c(v.len()),
                    SQLITE_TRANSIENT,
                ),
                Value::Blob(v) => sqlite3_bind_blob(
                    self.stmt,
                    idx,
                    v.as_ptr().cast(),
                    len_c(v.len()),
                    SQLITE_TRANSIENT,
                ),
            }
        };
        if rc != SQLITE_OK {
            return Err(self.fail(rc));
        }
        Ok(())
    }

    /// Bind several named parameters.
    pub fn bind_all(&mut self, params: &[(&str, Value)]) -> Result<()> {
        for (name, value) in params {
            self.bind(name, value.clone())?;
        }
        Ok(())
    }

    /// Advance: `true` when a row is ready, `false` when done.
    pub fn step(&mut self) -> Result<bool> {
        let _g = enter();
        // SAFETY: valid statement.
        let rc = unsafe { sqlite3_step(self.stmt) };
        match rc {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            _ => Err(self.fail(rc)),
        }
    }

    /// Back to the start, bindings kept, to run again (the previous run's
    /// error, if any, was reported by its `step`).
    pub fn reset(&mut self) {
        let _g = enter();
        // SAFETY: valid statement.
        unsafe { sqlite3_reset(self.stmt) };
    }

    pub fn column_count(&self) -> usize {
        let _g = enter();
        // SAFETY: valid statement.
        usize::try_from(unsafe { sqlite3_column_count(self.stmt) }).unwrap_or(0)
    }

    /// The column's name as the statement reports it (SOCI reads columns by it).
    pub fn column_name(&self, col: usize) -> String {
        let _g = enter();
        // SAFETY: valid statement; the name pointer is valid until the next call.
        unsafe {
            let p = sqlite3_column_name(self.stmt, col_c(col));
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// The current row's value in `col`, with the type SQLite reports.
    pub fn value(&self, col: usize) -> Value {
        let col = col_c(col);
        let _g = enter();
        // SAFETY: valid statement positioned on a row; pointers are copied at once.
        unsafe {
            match sqlite3_column_type(self.stmt, col) {
                SQLITE_INTEGER => Value::Integer(sqlite3_column_int64(self.stmt, col)),
                SQLITE_FLOAT => Value::Real(sqlite3_column_double(self.stmt, col)),
                SQLITE_TEXT => {
                    let p = sqlite3_column_text(self.stmt, col);
                    let n = usize::try_from(sqlite3_column_bytes(self.stmt, col)).unwrap_or(0);
                    if p.is_null() {
                        Value::Text(String::new())
                    } else {
                        Value::Text(
                            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned(),
                        )
                    }
                }
                SQLITE_BLOB => {
                    let p = sqlite3_column_blob(self.stmt, col);
                    let n = usize::try_from(sqlite3_column_bytes(self.stmt, col)).unwrap_or(0);
                    if p.is_null() {
                        Value::Blob(Vec::new())
                    } else {
                        Value::Blob(std::slice::from_raw_parts(p.cast::<u8>(), n).to_vec())
                    }
                }
                _ => Value::Null,
            }
        }
    }

    /// Every value of the current row.
    pub fn row(&self) -> Vec<Value> {
        (0..self.column_count()).map(|c| self.value(c)).collect()
    }

    /// Run to completion and return every row.
    pub fn all_rows(&mut self) -> Result<Vec<Vec<Value>>> {
        let mut rows = Vec::new();
        while self.step()? {
            rows.push(self.row());
        }
        Ok(rows)
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        let _g = enter();
        // SAFETY: the statement is owned and not used again.
        unsafe { sqlite3_finalize(self.stmt) };
    }
}

fn len_c(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

fn col_c(col: usize) -> c_int {
    c_int::try_from(col).unwrap_or(c_int::MAX)
}
