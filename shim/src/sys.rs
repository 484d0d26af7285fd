//! The SQLite C API's types and constants, as `sqlite3.h` defines them.

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};

/// `sqlite3`: a database connection (opaque).
#[repr(C)]
pub struct sqlite3 {
    _private: [u8; 0],
}

/// `sqlite3_stmt`: a prepared statement (opaque).
#[repr(C)]
pub struct sqlite3_stmt {
    _private: [u8; 0],
}

/// `sqlite3_value`: a dynamically typed value (opaque).
#[repr(C)]
pub struct sqlite3_value {
    _private: [u8; 0],
}

/// A bound value's destructor; also the sentinels `SQLITE_STATIC` (0) and
/// `SQLITE_TRANSIENT` (-1), which is why it is an integer-sized pointer.
pub type Destructor = Option<unsafe extern "C" fn(*mut c_void)>;

pub type ExecCallback = Option<
    unsafe extern "C" fn(
        *mut c_void,
        c_int,
        *mut *mut std::ffi::c_char,
        *mut *mut std::ffi::c_char,
    ) -> c_int,
>;

pub type CollationCompare =
    Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, c_int, *const c_void) -> c_int>;

pub const SQLITE_OK: c_int = 0;
pub const SQLITE_ERROR: c_int = 1;
pub const SQLITE_INTERNAL: c_int = 2;
pub const SQLITE_ABORT: c_int = 4;
pub const SQLITE_BUSY: c_int = 5;
pub const SQLITE_NOMEM: c_int = 7;
pub const SQLITE_READONLY: c_int = 8;
pub const SQLITE_IOERR: c_int = 10;
pub const SQLITE_CANTOPEN: c_int = 14;
pub const SQLITE_CONSTRAINT: c_int = 19;
pub const SQLITE_MISMATCH: c_int = 20;
pub const SQLITE_MISUSE: c_int = 21;
pub const SQLITE_AUTH: c_int = 23;
pub const SQLITE_RANGE: c_int = 25;
pub const SQLITE_ROW: c_int = 100;
pub const SQLITE_DONE: c_int = 101;

pub const SQLITE_CONSTRAINT_CHECK: c_int = SQLITE_CONSTRAINT | (1 << 8);
pub const SQLITE_CONSTRAINT_FOREIGNKEY: c_int = SQLITE_CONSTRAINT | (3 << 8);
pub const SQLITE_CONSTRAINT_NOTNULL: c_int = SQLITE_CONSTRAINT | (5 << 8);
pub const SQLITE_CONSTRAINT_PRIMARYKEY: c_int = SQLITE_CONSTRAINT | (6 << 8);
pub const SQLITE_CONSTRAINT_UNIQUE: c_int = SQLITE_CONSTRAINT | (8 << 8);
pub const SQLITE_IOERR_READ: c_int = SQLITE_IOERR | (1 << 8);
pub const SQLITE_BUSY_TIMEOUT: c_int = SQLITE_BUSY | (3 << 8);

pub const SQLITE_OPEN_READONLY: c_int = 0x0000_0001;
pub const SQLITE_OPEN_READWRITE: c_int = 0x0000_0002;
pub const SQLITE_OPEN_CREATE: c_int = 0x0000_0004;
pub const SQLITE_OPEN_URI: c_int = 0x0000_0040;
pub const SQLITE_OPEN_MEMORY: c_int = 0x0000_0080;
pub const SQLITE_OPEN_NOMUTEX: c_int = 0x0000_8000;
pub const SQLITE_OPEN_FULLMUTEX: c_int = 0x0001_0000;

pub const SQLITE_UTF8: c_int = 1;

pub const SQLITE_STMTSTATUS_FULLSCAN_STEP: c_int = 1;
pub const SQLITE_STMTSTATUS_SORT: c_int = 2;
pub const SQLITE_STMTSTATUS_AUTOINDEX: c_int = 3;
pub const SQLITE_STMTSTATUS_VM_STEP: c_int = 4;
pub const SQLITE_STMTSTATUS_REPREPARE: c_int = 5;
pub const SQLITE_STMTSTATUS_RUN: c_int = 6;

/// `SQLITE_TRANSIENT`: SQLite must copy the bound value.
pub fn is_transient(d: Destructor) -> bool {
    d.map(|f| f as usize) == Some(usize::MAX)
}
