//! Reading a SQLite database file with the real SQLite, read-only.
//!
//! The functions are the shim's [`plex_pg_shim::real`] pointers: the system
//! `libsqlite3.so.0` loaded with `dlopen(RTLD_LOCAL)` (or the file named by
//! `PLEX_PG_REAL_SQLITE`), never linked, so this binary carries no SQLite of
//! its own and no new dependency (see `docs/migration.md`, "How it is built").

use std::ffi::{c_int, CStr, CString};
use std::path::Path;

use plex_pg_shim::real;
use plex_pg_shim::sys::{
    sqlite3, sqlite3_stmt, SQLITE_DONE, SQLITE_OK, SQLITE_OPEN_CREATE, SQLITE_OPEN_READONLY,
    SQLITE_OPEN_READWRITE, SQLITE_ROW,
};

const SQLITE_INTEGER: c_int = 1;
const SQLITE_FLOAT: c_int = 2;
const SQLITE_TEXT: c_int = 3;
const SQLITE_BLOB: c_int = 4;

/// One value as SQLite returns it, borrowed from the current row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// An open database (read-only).
pub struct Db {
    raw: *mut sqlite3,
}

impl Db {
    /// Open `path` read-only (a WAL database's `-wal` and `-shm` honoured).
    pub fn open_readonly(path: &Path) -> Result<Db, String> {
        Db::open(path, SQLITE_OPEN_READONLY)
            .map_err(|e| format!("cannot open {} read-only: {e}", path.display()))
    }

    /// Create `path` (it must not exist) for writing.
    pub fn create(path: &Path) -> Result<Db, String> {
        Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    }

    /// Open `path` with `sqlite3_open_v2`'s `flags`; the error is SQLite's.
    fn open(path: &Path, flags: std::ffi::c_int) -> Result<Db, String> {
        if !real::available() {
            return Err("the real SQLite (libsqlite3.so.0) was not found; install libsqlite3-0 or set PLEX_PG_REAL_SQLITE to its path".into());
        }
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| "a NUL byte in the path".to_string())?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: a NUL-terminated path and an out pointer.
        let rc = unsafe { real::sqlite3_open_v2(c.as_ptr(), &mut raw, flags, std::ptr::null()) };
        let db = Db { raw };
        if rc != SQLITE_OK {
            return Err(db.errmsg());
        }
        Ok(db)
    }

    fn errmsg(&self) -> String {
        if self.raw.is_null() {
            return "out of memory".into();
        }
        // SAFETY: the handle is open; errmsg returns a NUL-terminated string.
        unsafe { CStr::from_ptr(real::sqlite3_errmsg(self.raw)) }
            .to_string_lossy()
            .into_owned()
    }

    /// Prepare one statement.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, String> {
        let c = CString::new(sql).map_err(|_| "a NUL byte in SQL".to_string())?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: an open handle, NUL-terminated SQL, an out pointer.
        let rc = unsafe {
            real::sqlite3_prepare_v2(self.raw, c.as_ptr(), -1, &mut raw, std::ptr::null_mut())
        };
        if rc != SQLITE_OK || raw.is_null() {
            return Err(format!("{} (in: {sql})", self.errmsg()));
        }
        Ok(Stmt { db: self, raw })
    }

    /// Run statements that return nothing of interest.
    pub fn exec(&self, sql: &str) -> Result<(), String> {
        let mut st = self.prepare(sql)?;
        while st.step()? {}
        Ok(())
    }

    /// Every row of a query, each value as text (NULL as None); for the
    /// schema and small catalog reads.
    pub fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut st = self.prepare(sql)?;
        let mut rows = Vec::new();
        while st.step()? {
            let n = st.column_count();
            rows.push(
                (0..n)
                    .map(|i| match st.value(i) {
                        ValueRef::Null => None,
                        ValueRef::Integer(v) => Some(v.to_string()),
                        ValueRef::Real(v) => Some(v.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                    .collect(),
            );
        }
        Ok(rows)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: every statement borrows the Db, so all are finalized.
            unsafe { real::sqlite3_close(self.raw) };
        }
    }
}

/// A prepared statement.
pub struct Stmt<'d> {
    db: &'d Db,
    raw: *mut sqlite3_stmt,
}

impl Stmt<'_> {
    /// The next row (true), or the end (false).
    pub fn step(&mut self) -> Result<bool, String> {
        // SAFETY: a live statement.
        match unsafe { real::sqlite3_step(self.raw) } {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            _ => Err(self.db.errmsg()),
        }
    }

    /// Bind parameter `i` (1-based) to a copy of `v`.
    pub fn bind(&mut self, i: usize, v: ValueRef<'_>) -> Result<(), String> {
        // SQLITE_TRANSIENT: SQLite copies the bytes.
        let transient: plex_pg_shim::sys::Destructor =
            // SAFETY: SQLite's documented sentinel (-1) for "copy now".
            unsafe { std::mem::transmute::<isize, plex_pg_shim::sys::Destructor>(-1) };
        let i = i as c_int;
        // SAFETY: a live statement; pointers valid for the call (copied).
        let rc = unsafe {
            match v {
                ValueRef::Null => real::sqlite3_bind_null(self.raw, i),
                ValueRef::Integer(x) => real::sqlite3_bind_int64(self.raw, i, x),
                ValueRef::Real(x) => real::sqlite3_bind_double(self.raw, i, x),
                ValueRef::Text(t) => real::sqlite3_bind_text64(
                    self.raw,
                    i,
                    t.as_ptr().cast(),
                    t.len() as u64,
                    transient,
                    1,
                ),
                ValueRef::Blob(b) => real::sqlite3_bind_blob64(
                    self.raw,
                    i,
                    b.as_ptr().cast(),
                    b.len() as u64,
                    transient,
                ),
            }
        };
        if rc != SQLITE_OK {
            return Err(self.db.errmsg());
        }
        Ok(())
    }

    /// Ready to run again.
    pub fn reset(&mut self) {
        // SAFETY: a live statement.
        unsafe { real::sqlite3_reset(self.raw) };
    }

    pub fn column_count(&self) -> usize {
        // SAFETY: a live statement.
        unsafe { real::sqlite3_column_count(self.raw) as usize }
    }

    /// Column `i` of the current row, valid until the next step.
    pub fn value(&self, i: usize) -> ValueRef<'_> {
        let i = i as c_int;
        // SAFETY: a live statement positioned on a row; the pointers SQLite
        // returns stay valid until the next step, which needs `&mut self`.
        unsafe {
            match real::sqlite3_column_type(self.raw, i) {
                SQLITE_INTEGER => ValueRef::Integer(real::sqlite3_column_int64(self.raw, i)),
                SQLITE_FLOAT => ValueRef::Real(real::sqlite3_column_double(self.raw, i)),
                SQLITE_TEXT => {
                    let p = real::sqlite3_column_text(self.raw, i);
                    let n = real::sqlite3_column_bytes(self.raw, i) as usize;
                    ValueRef::Text(if p.is_null() || n == 0 {
                        &[]
                    } else {
                        std::slice::from_raw_parts(p, n)
                    })
                }
                SQLITE_BLOB => {
                    let p = real::sqlite3_column_blob(self.raw, i) as *const u8;
                    let n = real::sqlite3_column_bytes(self.raw, i) as usize;
                    ValueRef::Blob(if p.is_null() || n == 0 {
                        &[]
                    } else {
                        std::slice::from_raw_parts(p, n)
                    })
                }
                _ => ValueRef::Null,
            }
        }
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once.
        unsafe { real::sqlite3_finalize(self.raw) };
    }
}

/// Quote a SQLite identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
