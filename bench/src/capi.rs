//! The few SQLite C calls a benchmark makes, linked against the system
//! libsqlite3 so `LD_PRELOAD` of the shim interposes them, as for Plex.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, CStr, CString};

#[repr(C)]
pub struct sqlite3 {
    _opaque: [u8; 0],
}

#[repr(C)]
pub struct sqlite3_stmt {
    _opaque: [u8; 0],
}

pub const SQLITE_ROW: c_int = 100;
pub const SQLITE_DONE: c_int = 101;

#[link(name = "sqlite3")]
extern "C" {
    fn sqlite3_open_v2(
        filename: *const c_char,
        db: *mut *mut sqlite3,
        flags: c_int,
        vfs: *const c_char,
    ) -> c_int;
    fn sqlite3_close_v2(db: *mut sqlite3) -> c_int;
    fn sqlite3_busy_timeout(db: *mut sqlite3, ms: c_int) -> c_int;
    fn sqlite3_errmsg(db: *mut sqlite3) -> *const c_char;
    fn sqlite3_exec(
        db: *mut sqlite3,
        sql: *const c_char,
        cb: usize,
        arg: usize,
        err: *mut *mut c_char,
    ) -> c_int;
    fn sqlite3_prepare_v2(
        db: *mut sqlite3,
        sql: *const c_char,
        n: c_int,
        stmt: *mut *mut sqlite3_stmt,
        tail: *mut *const c_char,
    ) -> c_int;
    fn sqlite3_step(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_reset(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_finalize(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_bind_int64(stmt: *mut sqlite3_stmt, i: c_int, v: i64) -> c_int;
    fn sqlite3_bind_text(
        stmt: *mut sqlite3_stmt,
        i: c_int,
        v: *const c_char,
        n: c_int,
        d: isize,
    ) -> c_int;
    fn sqlite3_column_int64(stmt: *mut sqlite3_stmt, i: c_int) -> i64;
    fn sqlite3_column_text(stmt: *mut sqlite3_stmt, i: c_int) -> *const u8;
    fn sqlite3_column_bytes(stmt: *mut sqlite3_stmt, i: c_int) -> c_int;
}

/// A failed call: SQLite's result code (primary or extended) and message.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: c_int,
    pub message: String,
}

impl Error {
    /// SQLite's name for the primary result code.
    pub fn name(&self) -> &'static str {
        match self.code & 0xff {
            5 => "SQLITE_BUSY",
            6 => "SQLITE_LOCKED",
            10 => "SQLITE_IOERR",
            14 => "SQLITE_CANTOPEN",
            19 => "SQLITE_CONSTRAINT",
            _ => "other",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.name(), self.code, self.message)
    }
}

/// An open database.
pub struct Db(*mut sqlite3);

// SAFETY: SQLite handles opened in serialized mode may move between threads.
unsafe impl Send for Db {}

impl Db {
    pub fn open(path: &str) -> Db {
        let c = CString::new(path).unwrap();
        let mut db = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer.
        let rc = unsafe { sqlite3_open_v2(c.as_ptr(), &mut db, 0x2 | 0x4, std::ptr::null()) };
        let d = Db(db);
        assert_eq!(rc, 0, "open {path}: {}", d.errmsg());
        d
    }

    pub fn errmsg(&self) -> String {
        // SAFETY: the handle is valid; errmsg returns a C string.
        unsafe {
            CStr::from_ptr(sqlite3_errmsg(self.0))
                .to_string_lossy()
                .into_owned()
        }
    }

    /// How long SQLite (or the shim) waits out a lock before `SQLITE_BUSY`.
    pub fn busy_timeout(&self, ms: i32) {
        // SAFETY: valid handle.
        unsafe { sqlite3_busy_timeout(self.0, ms) };
    }

    /// Run `sql`; panics on an error.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = self.try_exec(sql) {
            panic!("{sql}: {e}");
        }
    }

    /// Run `sql`; an error is returned with its result code.
    pub fn try_exec(&self, sql: &str) -> Result<(), Error> {
        let c = CString::new(sql).unwrap();
        // SAFETY: valid handle and C string.
        let rc = unsafe { sqlite3_exec(self.0, c.as_ptr(), 0, 0, std::ptr::null_mut()) };
        self.check(rc)
    }

    /// Prepare `sql`; panics on an error.
    pub fn prepare(&self, sql: &str) -> Stmt<'_> {
        self.try_prepare(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn try_prepare(&self, sql: &str) -> Result<Stmt<'_>, Error> {
        let c = CString::new(sql).unwrap();
        let mut st = std::ptr::null_mut();
        // SAFETY: valid handle, C string and out pointer.
        let rc =
            unsafe { sqlite3_prepare_v2(self.0, c.as_ptr(), -1, &mut st, std::ptr::null_mut()) };
        self.check(rc)?;
        Ok(Stmt { db: self, st })
    }

    fn check(&self, rc: c_int) -> Result<(), Error> {
        if rc == 0 {
            Ok(())
        } else {
            Err(Error {
                code: rc,
                message: self.errmsg(),
            })
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: closing our handle once.
        unsafe { sqlite3_close_v2(self.0) };
    }
}

/// A prepared statement.
pub struct Stmt<'a> {
    db: &'a Db,
    st: *mut sqlite3_stmt,
}

impl Stmt<'_> {
    pub fn bind_int(&mut self, i: i32, v: i64) {
        // SAFETY: valid statement.
        unsafe { sqlite3_bind_int64(self.st, i, v) };
    }

    pub fn bind_text(&mut self, i: i32, v: &str) {
        // SAFETY: valid statement; SQLITE_TRANSIENT (-1) makes SQLite copy.
        unsafe { sqlite3_bind_text(self.st, i, v.as_ptr().cast(), v.len() as c_int, -1) };
    }

    /// Step once: true for a row, false when done; panics on an error.
    pub fn step(&mut self) -> bool {
        self.try_step().unwrap_or_else(|e| panic!("step: {e}"))
    }

    /// Step once: true for a row, false when done.
    pub fn try_step(&mut self) -> Result<bool, Error> {
        // SAFETY: valid statement.
        match unsafe { sqlite3_step(self.st) } {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            rc => Err(Error {
                code: rc,
                message: self.db.errmsg(),
            }),
        }
    }

    pub fn int(&self, i: i32) -> i64 {
        // SAFETY: valid statement on a row.
        unsafe { sqlite3_column_int64(self.st, i) }
    }

    pub fn text_len(&self, i: i32) -> usize {
        // SAFETY: valid statement on a row; text before bytes, as SQLite asks.
        unsafe {
            sqlite3_column_text(self.st, i);
            sqlite3_column_bytes(self.st, i) as usize
        }
    }

    pub fn reset(&mut self) {
        // SAFETY: valid statement.
        unsafe { sqlite3_reset(self.st) };
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: finalizing our statement once.
        unsafe { sqlite3_finalize(self.st) };
    }
}
