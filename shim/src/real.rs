//! The real SQLite library, reached through function pointers.
//!
//! The shim exports `sqlite3_*` symbols itself, so it must never link
//! libsqlite3 (its own exports would call themselves). Each real function is
//! looked up on first use and kept in an atomic pointer: no lock, so a
//! lookup racing a `fork()` cannot leave the child stuck.
//!
//! Where to look: the file named by `PLEX_PG_REAL_SQLITE` (the launcher
//! exports `shim.real_sqlite` under that name), else the next definition in
//! the link order (`dlsym(RTLD_NEXT)`, the normal case for Plex, which links
//! its bundled libsqlite3), else an already loaded `libsqlite3.so.0` /
//! `libsqlite3.so` (Python loads it privately, out of `RTLD_NEXT`'s reach),
//! else that library loaded now.

use crate::sys::*;
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void, CStr};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The library handle symbols are taken from, once decided.
static LIBRARY: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// `dlsym` of `name` in the real SQLite; null when there is none.
fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: plain libdl calls with NUL-terminated names.
    unsafe {
        let lib = LIBRARY.load(Ordering::Acquire);
        if !lib.is_null() {
            return libc::dlsym(lib, name.as_ptr());
        }
        if let Some(path) = std::env::var_os("PLEX_PG_REAL_SQLITE").filter(|p| !p.is_empty()) {
            if let Ok(cpath) =
                std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
            {
                let handle = libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                if !handle.is_null() {
                    LIBRARY.store(handle, Ordering::Release);
                    return libc::dlsym(handle, name.as_ptr());
                }
            }
        }
        let next = libc::dlsym(libc::RTLD_NEXT, name.as_ptr());
        if !next.is_null() {
            return next;
        }
        for (lib, flags) in [
            (c"libsqlite3.so.0", libc::RTLD_NOLOAD | libc::RTLD_LAZY),
            (c"libsqlite3.so", libc::RTLD_NOLOAD | libc::RTLD_LAZY),
            (c"libsqlite3.so.0", libc::RTLD_LAZY | libc::RTLD_LOCAL),
            (c"libsqlite3.so", libc::RTLD_LAZY | libc::RTLD_LOCAL),
        ] {
            let handle = libc::dlopen(lib.as_ptr(), flags);
            if !handle.is_null() {
                LIBRARY.store(handle, Ordering::Release);
                return libc::dlsym(handle, name.as_ptr());
            }
        }
        null_mut()
    }
}

/// Whether the real SQLite can be found at all (checked before opening).
pub fn available() -> bool {
    !lookup(c"sqlite3_libversion_number").is_null()
}

fn missing(name: &str) -> ! {
    let msg = format!(
        "plex-pg shim: the real SQLite function {name} was not found; set PLEX_PG_REAL_SQLITE to the path of libsqlite3\n"
    );
    // SAFETY: writing a buffer to stderr.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort();
    }
}

macro_rules! real_api {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)*) => {
        $(
            /// The real SQLite's function of the same name.
            ///
            /// # Safety
            /// As for the C function.
            #[inline]
            #[allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                static SLOT: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
                let mut f = SLOT.load(Ordering::Relaxed);
                if f.is_null() {
                    let cname = concat!(stringify!($name), "\0");
                    // SAFETY: a literal name with one NUL, at its end.
                    f = lookup(unsafe { CStr::from_bytes_with_nul_unchecked(cname.as_bytes()) });
                    if f.is_null() {
                        missing(stringify!($name));
                    }
                    SLOT.store(f, Ordering::Relaxed);
                }
                // SAFETY: `f` is the real SQLite's function of this name
                // (non-null, checked above), whose C signature is the one
                // declared here, from sqlite3.h.
                let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(f) };
                // SAFETY: the caller keeps the C function's contract (this
                // function's `# Safety`).
                unsafe { f($($arg),*) }
            }
        )*
    };
}

real_api! {
    fn sqlite3_open(filename: *const c_char, db: *mut *mut sqlite3) -> c_int;
    fn sqlite3_open_v2(filename: *const c_char, db: *mut *mut sqlite3, flags: c_int, vfs: *const c_char) -> c_int;
    fn sqlite3_close(db: *mut sqlite3) -> c_int;
    fn sqlite3_close_v2(db: *mut sqlite3) -> c_int;
    fn sqlite3_exec(db: *mut sqlite3, sql: *const c_char, cb: ExecCallback, arg: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn sqlite3_get_table(db: *mut sqlite3, sql: *const c_char, result: *mut *mut *mut c_char, rows: *mut c_int, cols: *mut c_int, err: *mut *mut c_char) -> c_int;
    fn sqlite3_prepare(db: *mut sqlite3, sql: *const c_char, n: c_int, stmt: *mut *mut sqlite3_stmt, tail: *mut *const c_char) -> c_int;
    fn sqlite3_prepare_v2(db: *mut sqlite3, sql: *const c_char, n: c_int, stmt: *mut *mut sqlite3_stmt, tail: *mut *const c_char) -> c_int;
    fn sqlite3_prepare_v3(db: *mut sqlite3, sql: *const c_char, n: c_int, flags: c_uint, stmt: *mut *mut sqlite3_stmt, tail: *mut *const c_char) -> c_int;
    fn sqlite3_prepare16_v2(db: *mut sqlite3, sql: *const c_void, n: c_int, stmt: *mut *mut sqlite3_stmt, tail: *mut *const c_void) -> c_int;
    fn sqlite3_step(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_reset(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_finalize(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_clear_bindings(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_bind_int(stmt: *mut sqlite3_stmt, i: c_int, v: c_int) -> c_int;
    fn sqlite3_bind_int64(stmt: *mut sqlite3_stmt, i: c_int, v: i64) -> c_int;
    fn sqlite3_bind_double(stmt: *mut sqlite3_stmt, i: c_int, v: f64) -> c_int;
    fn sqlite3_bind_null(stmt: *mut sqlite3_stmt, i: c_int) -> c_int;
    fn sqlite3_bind_text(stmt: *mut sqlite3_stmt, i: c_int, v: *const c_char, n: c_int, d: Destructor) -> c_int;
    fn sqlite3_bind_text64(stmt: *mut sqlite3_stmt, i: c_int, v: *const c_char, n: u64, d: Destructor, enc: c_uchar) -> c_int;
    fn sqlite3_bind_blob(stmt: *mut sqlite3_stmt, i: c_int, v: *const c_void, n: c_int, d: Destructor) -> c_int;
    fn sqlite3_bind_blob64(stmt: *mut sqlite3_stmt, i: c_int, v: *const c_void, n: u64, d: Destructor) -> c_int;
    fn sqlite3_bind_value(stmt: *mut sqlite3_stmt, i: c_int, v: *const sqlite3_value) -> c_int;
    fn sqlite3_bind_parameter_count(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_bind_parameter_index(stmt: *mut sqlite3_stmt, name: *const c_char) -> c_int;
    fn sqlite3_bind_parameter_name(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_char;
    fn sqlite3_column_count(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_data_count(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_column_type(stmt: *mut sqlite3_stmt, i: c_int) -> c_int;
    fn sqlite3_column_int(stmt: *mut sqlite3_stmt, i: c_int) -> c_int;
    fn sqlite3_column_int64(stmt: *mut sqlite3_stmt, i: c_int) -> i64;
    fn sqlite3_column_double(stmt: *mut sqlite3_stmt, i: c_int) -> f64;
    fn sqlite3_column_text(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_uchar;
    fn sqlite3_column_blob(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_void;
    fn sqlite3_column_bytes(stmt: *mut sqlite3_stmt, i: c_int) -> c_int;
    fn sqlite3_column_name(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_char;
    fn sqlite3_column_value(stmt: *mut sqlite3_stmt, i: c_int) -> *mut sqlite3_value;
    fn sqlite3_column_decltype(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_char;
    fn sqlite3_value_type(v: *mut sqlite3_value) -> c_int;
    fn sqlite3_value_numeric_type(v: *mut sqlite3_value) -> c_int;
    fn sqlite3_value_text(v: *mut sqlite3_value) -> *const c_uchar;
    fn sqlite3_value_int(v: *mut sqlite3_value) -> c_int;
    fn sqlite3_value_int64(v: *mut sqlite3_value) -> i64;
    fn sqlite3_value_double(v: *mut sqlite3_value) -> f64;
    fn sqlite3_value_bytes(v: *mut sqlite3_value) -> c_int;
    fn sqlite3_value_blob(v: *mut sqlite3_value) -> *const c_void;
    fn sqlite3_value_dup(v: *const sqlite3_value) -> *mut sqlite3_value;
    fn sqlite3_value_free(v: *mut sqlite3_value) -> ();
    fn sqlite3_changes(db: *mut sqlite3) -> c_int;
    fn sqlite3_changes64(db: *mut sqlite3) -> i64;
    fn sqlite3_total_changes(db: *mut sqlite3) -> c_int;
    fn sqlite3_total_changes64(db: *mut sqlite3) -> i64;
    fn sqlite3_last_insert_rowid(db: *mut sqlite3) -> i64;
    fn sqlite3_get_autocommit(db: *mut sqlite3) -> c_int;
    fn sqlite3_errmsg(db: *mut sqlite3) -> *const c_char;
    fn sqlite3_errcode(db: *mut sqlite3) -> c_int;
    fn sqlite3_extended_errcode(db: *mut sqlite3) -> c_int;
    fn sqlite3_stmt_readonly(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_stmt_busy(stmt: *mut sqlite3_stmt) -> c_int;
    fn sqlite3_stmt_status(stmt: *mut sqlite3_stmt, op: c_int, reset: c_int) -> c_int;
    fn sqlite3_db_handle(stmt: *mut sqlite3_stmt) -> *mut sqlite3;
    fn sqlite3_sql(stmt: *mut sqlite3_stmt) -> *const c_char;
    fn sqlite3_expanded_sql(stmt: *mut sqlite3_stmt) -> *mut c_char;
    fn sqlite3_free(p: *mut c_void) -> ();
    fn sqlite3_malloc(n: c_int) -> *mut c_void;
    fn sqlite3_malloc64(n: u64) -> *mut c_void;
    fn sqlite3_create_collation(db: *mut sqlite3, name: *const c_char, rep: c_int, arg: *mut c_void, cmp: CollationCompare) -> c_int;
    fn sqlite3_create_collation_v2(db: *mut sqlite3, name: *const c_char, rep: c_int, arg: *mut c_void, cmp: CollationCompare, destroy: Destructor) -> c_int;
    fn sqlite3_libversion_number() -> c_int;
    fn sqlite3_backup_init(dest: *mut sqlite3, dest_name: *const c_char, source: *mut sqlite3, source_name: *const c_char) -> *mut c_void;
    fn sqlite3_backup_step(p: *mut c_void, pages: c_int) -> c_int;
    fn sqlite3_backup_remaining(p: *mut c_void) -> c_int;
    fn sqlite3_backup_pagecount(p: *mut c_void) -> c_int;
    fn sqlite3_backup_finish(p: *mut c_void) -> c_int;
    fn sqlite3_create_function_v2(db: *mut sqlite3, name: *const c_char, n_arg: c_int, text_rep: c_int, app: *mut c_void, func: ScalarFunction, step: ScalarFunction, last: FinalFunction, destroy: Destructor) -> c_int;
    fn sqlite3_result_error(ctx: *mut c_void, msg: *const c_char, n: c_int) -> ();
    fn sqlite3_result_error_code(ctx: *mut c_void, code: c_int) -> ();
}

/// A function's `xFunc`/`xStep` (context, argument count, arguments).
pub type ScalarFunction = Option<unsafe extern "C" fn(*mut c_void, c_int, *mut *mut sqlite3_value)>;
/// An aggregate's `xFinal`.
pub type FinalFunction = Option<unsafe extern "C" fn(*mut c_void)>;

/// A copy of `bytes` (plus a NUL) in memory from the real `sqlite3_malloc`,
/// for results the caller releases with `sqlite3_free`. Null on failure.
pub fn malloc_cstring(bytes: &[u8]) -> *mut c_char {
    // SAFETY: the allocation is len + 1 bytes and we write exactly that.
    unsafe {
        let p = sqlite3_malloc64(bytes.len() as u64 + 1) as *mut u8;
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            *p.add(bytes.len()) = 0;
        }
        p.cast()
    }
}
