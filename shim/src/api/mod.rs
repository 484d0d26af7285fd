//! The exported SQLite C API: one `extern "C"` function per symbol, with
//! `sqlite3.h`'s exact signature. Each decides whether its handle is
//! routed (see `registry`): if so the shim answers, otherwise the call goes
//! to the real SQLite untouched.
//!
//! Nothing panics across this boundary: every export runs inside
//! [`guard`], which turns a panic into an error code (and a log line).

mod backup;
mod database;
mod statement;
mod value;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f`; if it panics, log it and return `fallback`.
pub(crate) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            tracing::error!("plex-pg internal error (a bug; please report it): {what}");
            fallback
        }
    }
}

/// The bytes of SQL text given as (pointer, length): a negative length
/// means "up to the NUL"; otherwise at most that many bytes, stopping at a
/// NUL if there is one first.
///
/// # Safety
/// `p` must be valid for the bytes described.
pub(crate) unsafe fn sql_bytes<'a>(p: *const c_char, n: i32) -> &'a [u8] {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        if n < 0 {
            return CStr::from_ptr(p).to_bytes();
        }
        let all = std::slice::from_raw_parts(p as *const u8, n as usize);
        let end = all.iter().position(|&b| b == 0).unwrap_or(all.len());
        &all[..end]
    }
}
