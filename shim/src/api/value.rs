//! `sqlite3_value_*` exports: the shim's own values (from
//! `sqlite3_column_value` on a routed statement) are recognised by their
//! magic header; every other value goes to the real SQLite.

use super::guard;
use crate::real;
use crate::row::RowValue;
use crate::sys::*;
use std::ffi::{c_int, c_uchar, c_void};

/// Ours, if it is.
/// # Safety
/// `v` must be null or a live `sqlite3_value*` (the real SQLite's or
/// ours), used by one thread at a time.
unsafe fn ours<'a>(v: *mut sqlite3_value) -> Option<&'a RowValue> {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if RowValue::is_ours(v as *const u8) {
            Some(&*(v as *const RowValue))
        } else {
            None
        }
    }
}

macro_rules! value_getter {
    ($name:ident -> $ty:ty, $fallback:expr, |$v:ident| $body:expr) => {
        /// # Safety
        /// As the SQLite function of that name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(value: *mut sqlite3_value) -> $ty {
            // SAFETY: `value` is the caller's live `sqlite3_value*`, as the
            // function's contract requires; one not ours goes to the real
            // function under the same contract.
            guard($fallback, || match unsafe { ours(value) } {
                Some($v) => $body,
                // SAFETY: not ours: passed on under the same contract.
                None => unsafe { real::$name(value) },
            })
        }
    };
}

value_getter!(sqlite3_value_type -> c_int, crate::value::SQLITE_NULL, |v| v.type_code());
value_getter!(sqlite3_value_numeric_type -> c_int, crate::value::SQLITE_NULL, |v| v.numeric_type());
value_getter!(sqlite3_value_int -> c_int, 0, |v| v.int());
value_getter!(sqlite3_value_int64 -> i64, 0, |v| v.int64());
value_getter!(sqlite3_value_double -> f64, 0.0, |v| v.double());
value_getter!(sqlite3_value_bytes -> c_int, 0, |v| v.bytes());
value_getter!(sqlite3_value_text -> *const c_uchar, std::ptr::null(), |v| v.text().map_or(std::ptr::null(), |t| t.as_ptr()));
value_getter!(sqlite3_value_blob -> *const c_void, std::ptr::null(), |v| {
    v.blob().filter(|b| !b.is_empty()).map_or(std::ptr::null(), |b| b.as_ptr().cast())
});

/// # Safety
/// As `sqlite3_value_dup`: a copy the caller frees with `sqlite3_value_free`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_dup(value: *const sqlite3_value) -> *mut sqlite3_value {
    // SAFETY: the caller keeps `sqlite3_value_dup`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(std::ptr::null_mut(), || {
            match ours(value as *mut sqlite3_value) {
                Some(v) => {
                    Box::into_raw(Box::new(RowValue::new(v.cell().clone()))) as *mut sqlite3_value
                }
                None => real::sqlite3_value_dup(value),
            }
        })
    }
}

/// # Safety
/// As `sqlite3_value_free`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_free(value: *mut sqlite3_value) {
    // SAFETY: the caller keeps `sqlite3_value_free`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard((), || match ours(value) {
            Some(_) => drop(Box::from_raw(value as *mut RowValue)),
            None => real::sqlite3_value_free(value),
        })
    }
}
