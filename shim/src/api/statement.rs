//! Statement-level exports: prepare, step, reset, finalize, bind, column
//! access, and statement introspection.

use super::{guard, sql_bytes};
use crate::registry;
use crate::row::RowValue;
use crate::statement::RoutedStmt;
use crate::sys::*;
use crate::value::{Value, SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_NULL, SQLITE_TEXT};
use crate::{real, split};
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void, CStr};

/// Prepare the first statement of `sql` on a routed database; `tail` gets
/// the byte offset of what follows it.
///
/// # Safety
/// As `sqlite3_prepare_v2`: a live handle, `sql` valid for `n` bytes (or
/// up to its NUL when `n < 0`), `out` null or writable.
unsafe fn prepare(
    handle: *mut sqlite3,
    sql: *const c_char,
    n: c_int,
    out: *mut *mut sqlite3_stmt,
    tail: &mut dyn FnMut(usize),
) -> Option<c_int> {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let (db, rt) = registry::db(handle)?;
        if out.is_null() {
            return Some(SQLITE_MISUSE);
        }
        *out = std::ptr::null_mut();
        if sql.is_null() {
            return Some(
                db.state
                    .lock()
                    .fail(&crate::error::Error::misuse("NULL SQL text")),
            );
        }
        let bytes = sql_bytes(sql, n);
        let part = split::first_statement(bytes);
        tail(bytes.len() - part.tail.len());
        if part.statement.is_empty() {
            db.state.lock().ok();
            return Some(SQLITE_OK);
        }
        let Ok(text) = std::str::from_utf8(part.statement) else {
            return Some(
                db.state
                    .lock()
                    .fail(&crate::error::Error::sql("SQL text is not valid UTF-8")),
            );
        };
        Some(match registry::prepare(&db, rt, text) {
            Ok(stmt) => {
                *out = (*stmt).dummy;
                SQLITE_OK
            }
            Err(e) => db.state.lock().fail(&e),
        })
    }
}

/// # Safety
/// As `sqlite3_prepare_v2`; `tail` null or writable; `real_prepare` the
/// real SQLite's function of the same contract.
unsafe fn prepare_utf8(
    db: *mut sqlite3,
    sql: *const c_char,
    n: c_int,
    out: *mut *mut sqlite3_stmt,
    tail: *mut *const c_char,
    real_prepare: unsafe fn(
        *mut sqlite3,
        *const c_char,
        c_int,
        *mut *mut sqlite3_stmt,
        *mut *const c_char,
    ) -> c_int,
) -> c_int {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            let mut set_tail = |offset: usize| {
                if !tail.is_null() {
                    *tail = sql.add(offset);
                }
            };
            prepare(db, sql, n, out, &mut set_tail)
                .unwrap_or_else(|| real_prepare(db, sql, n, out, tail))
        })
    }
}

/// # Safety
/// As `sqlite3_prepare`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare(
    db: *mut sqlite3,
    sql: *const c_char,
    n: c_int,
    out: *mut *mut sqlite3_stmt,
    tail: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_prepare`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { prepare_utf8(db, sql, n, out, tail, real::sqlite3_prepare) }
}

/// # Safety
/// As `sqlite3_prepare_v2`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare_v2(
    db: *mut sqlite3,
    sql: *const c_char,
    n: c_int,
    out: *mut *mut sqlite3_stmt,
    tail: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_prepare_v2`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { prepare_utf8(db, sql, n, out, tail, real::sqlite3_prepare_v2) }
}

/// # Safety
/// As `sqlite3_prepare_v3` (the flags are hints with no meaning here).
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare_v3(
    db: *mut sqlite3,
    sql: *const c_char,
    n: c_int,
    flags: c_uint,
    out: *mut *mut sqlite3_stmt,
    tail: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_prepare_v3`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            let mut set_tail = |offset: usize| {
                if !tail.is_null() {
                    *tail = sql.add(offset);
                }
            };
            prepare(db, sql, n, out, &mut set_tail)
                .unwrap_or_else(|| real::sqlite3_prepare_v3(db, sql, n, flags, out, tail))
        })
    }
}

/// # Safety
/// As `sqlite3_prepare16_v2`: UTF-16 in native byte order; a negative
/// length means up to the 0 code unit.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare16_v2(
    db: *mut sqlite3,
    sql: *const c_void,
    n: c_int,
    out: *mut *mut sqlite3_stmt,
    tail: *mut *const c_void,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_prepare16_v2`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            if registry::db(db).is_none() || sql.is_null() {
                return real::sqlite3_prepare16_v2(db, sql, n, out, tail);
            }
            let units = {
                let p = sql as *const u16;
                let max = if n < 0 { usize::MAX } else { n as usize / 2 };
                let mut len = 0;
                while len < max && *p.add(len) != 0 {
                    len += 1;
                }
                std::slice::from_raw_parts(p, len)
            };
            let text = String::from_utf16_lossy(units);
            let c = std::ffi::CString::new(text.clone()).unwrap_or_default();
            let mut tail_bytes = text.len();
            let rc = prepare(db, c.as_ptr(), -1, out, &mut |offset| tail_bytes = offset)
                .unwrap_or(SQLITE_MISUSE);
            if !tail.is_null() {
                // The tail, in UTF-16 units of the caller's text.
                let consumed: usize = text[..tail_bytes.min(text.len())]
                    .chars()
                    .map(char::len_utf16)
                    .sum();
                *tail = (sql as *const u16).add(consumed) as *const c_void;
            }
            rc
        })
    }
}

macro_rules! stmt_call {
    ($stmt:expr, $fallback:expr, |$s:ident, $rt:ident| $routed:expr, $real:expr) => {
        guard($fallback, || match registry::stmt($stmt) {
            #[allow(unused_variables)]
            Some(($s, $rt)) => $routed,
            None => $real,
        })
    };
}

/// # Safety
/// As `sqlite3_step`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_step(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_step`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| s.step(rt),
            real::sqlite3_step(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_reset`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_reset(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_reset`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| s.reset(),
            real::sqlite3_reset(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_finalize`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_finalize(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_finalize`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| registry::finalize(s as *mut RoutedStmt),
            real::sqlite3_finalize(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_clear_bindings`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_clear_bindings(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_clear_bindings`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| {
                s.clear_bindings();
                SQLITE_OK
            },
            real::sqlite3_clear_bindings(stmt)
        )
    }
}

/// Call a value's destructor once SQLite would be done with it (we copy at
/// once), unless it is `SQLITE_STATIC` or `SQLITE_TRANSIENT`.
///
/// # Safety
/// `d` must be the destructor the client gave with `p`, not yet called.
unsafe fn dispose(p: *const c_void, d: Destructor) {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if let Some(f) = d {
            if !is_transient(d) && !p.is_null() {
                f(p as *mut c_void);
            }
        }
    }
}

/// # Safety
/// `p` must be null or valid for `n` bytes (up to its NUL when `n < 0`).
unsafe fn utf8_value(p: *const c_char, n: i64) -> Value {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if p.is_null() {
            return Value::Null;
        }
        let bytes = if n < 0 {
            CStr::from_ptr(p).to_bytes()
        } else {
            std::slice::from_raw_parts(p as *const u8, n as usize)
        };
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
        Value::Text(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// # Safety
/// `p` must be null or valid for `n` bytes (up to a 0 code unit when
/// `n < 0`), 2-byte aligned.
unsafe fn utf16_value(p: *const c_void, n: i64, big_endian: bool) -> Value {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if p.is_null() {
            return Value::Null;
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, n.max(0) as usize);
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| {
                if big_endian {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            })
            .take_while(|&u| u != 0)
            .collect();
        Value::Text(String::from_utf16_lossy(&units))
    }
}

/// # Safety
/// `p` must be null or valid for `n` bytes.
unsafe fn blob_value(p: *const c_void, n: i64) -> Value {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if p.is_null() {
            return Value::Null;
        }
        Value::Blob(std::slice::from_raw_parts(p as *const u8, n.max(0) as usize).to_vec())
    }
}

/// # Safety
/// As `sqlite3_bind_int`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_int(stmt: *mut sqlite3_stmt, i: c_int, v: c_int) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_int`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| s.bind(i, Value::Integer(v as i64)),
            real::sqlite3_bind_int(stmt, i, v)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_int64`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_int64(stmt: *mut sqlite3_stmt, i: c_int, v: i64) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_int64`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| s.bind(i, Value::Integer(v)),
            real::sqlite3_bind_int64(stmt, i, v)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_double`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_double(stmt: *mut sqlite3_stmt, i: c_int, v: f64) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_double`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        // SQLite binds NaN as NULL.
        let value = if v.is_nan() {
            Value::Null
        } else {
            Value::Real(v)
        };
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| s.bind(i, value),
            real::sqlite3_bind_double(stmt, i, v)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_null`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_null(stmt: *mut sqlite3_stmt, i: c_int) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_null`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| s.bind(i, Value::Null),
            real::sqlite3_bind_null(stmt, i)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_text`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_text(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    v: *const c_char,
    n: c_int,
    d: Destructor,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_text`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| {
                let rc = s.bind(i, utf8_value(v, n as i64));
                dispose(v.cast(), d);
                rc
            },
            real::sqlite3_bind_text(stmt, i, v, n, d)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_text64`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_text64(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    v: *const c_char,
    n: u64,
    d: Destructor,
    encoding: c_uchar,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_text64`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| {
                // SQLITE_UTF8 1, UTF16LE 2, UTF16BE 3, UTF16 (native) 4.
                let value = match encoding {
                    2 => utf16_value(v.cast(), n as i64, false),
                    3 => utf16_value(v.cast(), n as i64, true),
                    4 => utf16_value(v.cast(), n as i64, cfg!(target_endian = "big")),
                    _ => utf8_value(v, n as i64),
                };
                let rc = s.bind(i, value);
                dispose(v.cast(), d);
                rc
            },
            real::sqlite3_bind_text64(stmt, i, v, n, d, encoding)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_blob`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_blob(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    v: *const c_void,
    n: c_int,
    d: Destructor,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_blob`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| {
                let rc = s.bind(i, blob_value(v, n as i64));
                dispose(v, d);
                rc
            },
            real::sqlite3_bind_blob(stmt, i, v, n, d)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_blob64`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_blob64(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    v: *const c_void,
    n: u64,
    d: Destructor,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_blob64`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            SQLITE_INTERNAL,
            |s, rt| {
                let rc = s.bind(i, blob_value(v, n as i64));
                dispose(v, d);
                rc
            },
            real::sqlite3_bind_blob64(stmt, i, v, n, d)
        )
    }
}

/// A `sqlite3_value*` (ours or the real SQLite's) as a [`Value`].
///
/// # Safety
/// `v` must be null or a live `sqlite3_value*`, ours or the real SQLite's.
unsafe fn read_value(v: *const sqlite3_value) -> Value {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if v.is_null() {
            return Value::Null;
        }
        if RowValue::is_ours(v as *const u8) {
            return (*(v as *const RowValue)).cell().to_value();
        }
        let v = v as *mut sqlite3_value;
        match real::sqlite3_value_type(v) {
            SQLITE_INTEGER => Value::Integer(real::sqlite3_value_int64(v)),
            SQLITE_FLOAT => Value::Real(real::sqlite3_value_double(v)),
            SQLITE_TEXT => {
                let p = real::sqlite3_value_text(v);
                let n = real::sqlite3_value_bytes(v);
                utf8_value(p.cast(), n as i64)
            }
            SQLITE_BLOB => {
                let p = real::sqlite3_value_blob(v);
                let n = real::sqlite3_value_bytes(v);
                blob_value(p, n as i64)
            }
            _ => Value::Null,
        }
    }
}

/// # Safety
/// As `sqlite3_bind_value`. One of our values bound to a real statement
/// is bound by its content (the real SQLite cannot read ours).
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_value(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    v: *const sqlite3_value,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_value`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(stmt, SQLITE_INTERNAL, |s, rt| s.bind(i, read_value(v)), {
            if !v.is_null() && RowValue::is_ours(v as *const u8) {
                match read_value(v) {
                    Value::Null => real::sqlite3_bind_null(stmt, i),
                    Value::Integer(x) => real::sqlite3_bind_int64(stmt, i, x),
                    Value::Real(x) => real::sqlite3_bind_double(stmt, i, x),
                    Value::Text(t) => real::sqlite3_bind_text64(
                        stmt,
                        i,
                        t.as_ptr().cast(),
                        t.len() as u64,
                        std::mem::transmute::<isize, Destructor>(-1),
                        SQLITE_UTF8 as u8,
                    ),
                    Value::Blob(b) => real::sqlite3_bind_blob64(
                        stmt,
                        i,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        std::mem::transmute::<isize, Destructor>(-1),
                    ),
                }
            } else {
                real::sqlite3_bind_value(stmt, i, v)
            }
        })
    }
}

/// # Safety
/// As `sqlite3_bind_parameter_count`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_parameter_count(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_parameter_count`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| s.binds.len() as c_int,
            real::sqlite3_bind_parameter_count(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_parameter_index`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_parameter_index(
    stmt: *mut sqlite3_stmt,
    name: *const c_char,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_bind_parameter_index`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| if name.is_null() {
                0
            } else {
                s.parameter_index(CStr::from_ptr(name).to_bytes())
            },
            real::sqlite3_bind_parameter_index(stmt, name)
        )
    }
}

/// # Safety
/// As `sqlite3_bind_parameter_name`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_parameter_name(
    stmt: *mut sqlite3_stmt,
    i: c_int,
) -> *const c_char {
    // SAFETY: the caller keeps `sqlite3_bind_parameter_name`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            std::ptr::null(),
            |s, rt| s.param_name(i).map_or(std::ptr::null(), |n| n.as_ptr()),
            real::sqlite3_bind_parameter_name(stmt, i)
        )
    }
}

/// # Safety
/// As `sqlite3_column_count`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_count(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_column_count`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| s.columns.names.len() as c_int,
            real::sqlite3_column_count(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_data_count`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_data_count(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_data_count`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| s.data_count() as c_int,
            real::sqlite3_data_count(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_column_name`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_name(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_char {
    // SAFETY: the caller keeps `sqlite3_column_name`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            std::ptr::null(),
            |s, rt| usize::try_from(i)
                .ok()
                .and_then(|i| s.columns.names.get(i))
                .map_or(std::ptr::null(), |n| n.as_ptr()),
            real::sqlite3_column_name(stmt, i)
        )
    }
}

/// # Safety
/// As `sqlite3_column_decltype`: the type in the SQLite declaration.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_decltype(
    stmt: *mut sqlite3_stmt,
    i: c_int,
) -> *const c_char {
    // SAFETY: the caller keeps `sqlite3_column_decltype`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            std::ptr::null(),
            |s, rt| usize::try_from(i)
                .ok()
                .and_then(|i| s.columns.decltypes.get(i))
                .and_then(|d| d.as_ref())
                .map_or(std::ptr::null(), |d| d.as_ptr()),
            real::sqlite3_column_decltype(stmt, i)
        )
    }
}

macro_rules! column_getter {
    ($name:ident -> $ty:ty, $none:expr, |$v:ident| $body:expr) => {
        /// # Safety
        /// As the SQLite function of that name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(stmt: *mut sqlite3_stmt, i: c_int) -> $ty {
            // SAFETY: the caller keeps the function's contract: `stmt` is a
            // live statement used by one thread at a time (what the lookup
            // needs); one not ours goes to the real function as it came.
            unsafe {
                stmt_call!(
                    stmt,
                    $none,
                    |s, rt| match s.value(i) {
                        Some($v) => $body,
                        None => $none,
                    },
                    real::$name(stmt, i)
                )
            }
        }
    };
}

column_getter!(sqlite3_column_type -> c_int, SQLITE_NULL, |v| v.type_code());
column_getter!(sqlite3_column_int -> c_int, 0, |v| v.int());
column_getter!(sqlite3_column_int64 -> i64, 0, |v| v.int64());
column_getter!(sqlite3_column_double -> f64, 0.0, |v| v.double());
column_getter!(sqlite3_column_bytes -> c_int, 0, |v| v.bytes());
column_getter!(sqlite3_column_text -> *const c_uchar, std::ptr::null(), |v| v.text().map_or(std::ptr::null(), |t| t.as_ptr()));
column_getter!(sqlite3_column_blob -> *const c_void, std::ptr::null(), |v| {
    // SQLite returns NULL for a zero-length blob.
    v.blob().filter(|b| !b.is_empty()).map_or(std::ptr::null(), |b| b.as_ptr().cast())
});
column_getter!(sqlite3_column_value -> *mut sqlite3_value, std::ptr::null_mut(), |v| v as *const RowValue as *mut sqlite3_value);

/// # Safety
/// As `sqlite3_stmt_readonly`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_readonly(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_stmt_readonly`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| s.plan.translation.readonly as c_int,
            real::sqlite3_stmt_readonly(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_stmt_busy`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_busy(stmt: *mut sqlite3_stmt) -> c_int {
    // SAFETY: the caller keeps `sqlite3_stmt_busy`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| s.busy() as c_int,
            real::sqlite3_stmt_busy(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_stmt_status`: runs (SQLITE_STMTSTATUS_RUN) and rows
/// stepped (VM_STEP) are counted; the rest are 0.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_status(
    stmt: *mut sqlite3_stmt,
    op: c_int,
    reset: c_int,
) -> c_int {
    // SAFETY: the caller keeps `sqlite3_stmt_status`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            0,
            |s, rt| match s.status.get_mut(op as usize) {
                Some(counter) => {
                    let v = *counter;
                    if reset != 0 {
                        *counter = 0;
                    }
                    v
                }
                None => 0,
            },
            real::sqlite3_stmt_status(stmt, op, reset)
        )
    }
}

/// # Safety
/// As `sqlite3_db_handle`. A routed statement's stand-in belongs to the
/// routed handle, so the real answer is right for both.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_db_handle(stmt: *mut sqlite3_stmt) -> *mut sqlite3 {
    // SAFETY: the caller keeps `sqlite3_db_handle`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe { real::sqlite3_db_handle(stmt) }
}

/// # Safety
/// As `sqlite3_sql`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_sql(stmt: *mut sqlite3_stmt) -> *const c_char {
    // SAFETY: the caller keeps `sqlite3_sql`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            std::ptr::null(),
            |s, rt| s.sql.as_ptr(),
            real::sqlite3_sql(stmt)
        )
    }
}

/// # Safety
/// As `sqlite3_expanded_sql`: the caller frees the result with
/// `sqlite3_free`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_expanded_sql(stmt: *mut sqlite3_stmt) -> *mut c_char {
    // SAFETY: the caller keeps `sqlite3_expanded_sql`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        stmt_call!(
            stmt,
            std::ptr::null_mut(),
            |s, rt| real::malloc_cstring(s.expanded_sql().as_bytes()),
            real::sqlite3_expanded_sql(stmt)
        )
    }
}
