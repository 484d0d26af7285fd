//! `sqlite3_backup_*`: a routed source is copied by the shim
//! (`crate::backup`); any other backup goes to the real SQLite untouched.
//! The shim's backup objects carry a marker (`Backup::is_ours`) so
//! `step`/`remaining`/`pagecount`/`finish` tell them from the real
//! SQLite's without a lookup.

use super::guard;
use crate::backup::{set_dest_error, Backup};
use crate::error::Error;
use crate::real;
use crate::registry;
use crate::sys::*;
use std::ffi::{c_char, c_int, c_void, CStr};

/// The schema name a backup names: `main` (or none) is the only one a
/// routed database has.
///
/// # Safety
/// `name` must be null or a C string.
unsafe fn is_main(name: *const c_char) -> bool {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        name.is_null()
            || CStr::from_ptr(name)
                .to_bytes()
                .eq_ignore_ascii_case(b"main")
    }
}

/// # Safety
/// As `sqlite3_backup_init`: live handles; names null or C strings.
unsafe fn init(
    dest: *mut sqlite3,
    dest_name: *const c_char,
    source: *mut sqlite3,
    source_name: *const c_char,
) -> *mut c_void {
    // SAFETY: this function's `# Safety` contract, which the caller
    // keeps, is what the calls below rely on.
    unsafe {
        let routed_source = registry::db(source);
        let routed_dest = registry::db(dest);
        if let Some((db, _)) = &routed_dest {
            let what = if routed_source.is_some() {
                "both are routed to PostgreSQL: copy a schema with pg_dump/pg_restore instead"
            } else {
                "the destination is routed to PostgreSQL: restoring a SQLite file into the library is an import (plex-pg-launcher import), not a backup"
            };
            let e = Error::sql(format!("plex-pg cannot run this backup: {what}"));
            tracing::error!("sqlite3_backup_init into {}: {}", db.path, e.message);
            db.state.lock().fail(&e);
            return std::ptr::null_mut();
        }
        let Some((db, rt)) = routed_source else {
            return real::sqlite3_backup_init(dest, dest_name, source, source_name);
        };
        if dest.is_null() {
            return std::ptr::null_mut();
        }
        let fail = |msg: String| {
            set_dest_error(dest, &Error::sql(msg));
            std::ptr::null_mut()
        };
        if !is_main(source_name) {
            let name = CStr::from_ptr(source_name).to_string_lossy();
            return fail(format!("unknown database {name}"));
        }
        if !is_main(dest_name) {
            let name = CStr::from_ptr(dest_name).to_string_lossy();
            return fail(format!(
            "plex-pg backs up a routed database into a database's main schema only, not into {name}"
        ));
        }
        if real::sqlite3_get_autocommit(dest) == 0 {
            return fail("destination database is in use".into());
        }
        tracing::info!("backup of {} (schema {}) begins", db.path, db.schema);
        Box::into_raw(Backup::new(dest, db, rt)).cast()
    }
}

/// # Safety
/// As `sqlite3_backup_init`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_init(
    dest: *mut sqlite3,
    dest_name: *const c_char,
    source: *mut sqlite3,
    source_name: *const c_char,
) -> *mut c_void {
    // SAFETY: the caller keeps `sqlite3_backup_init`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(std::ptr::null_mut(), || {
            init(dest, dest_name, source, source_name)
        })
    }
}

/// # Safety
/// As `sqlite3_backup_step`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_step(p: *mut c_void, pages: c_int) -> c_int {
    // SAFETY: the caller keeps `sqlite3_backup_step`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            if Backup::is_ours(p) {
                (*p.cast::<Backup>()).step(pages)
            } else {
                real::sqlite3_backup_step(p, pages)
            }
        })
    }
}

/// # Safety
/// As `sqlite3_backup_remaining`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_remaining(p: *mut c_void) -> c_int {
    // SAFETY: the caller keeps `sqlite3_backup_remaining`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(0, || {
            if Backup::is_ours(p) {
                (*p.cast::<Backup>()).remaining()
            } else {
                real::sqlite3_backup_remaining(p)
            }
        })
    }
}

/// # Safety
/// As `sqlite3_backup_pagecount`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_pagecount(p: *mut c_void) -> c_int {
    // SAFETY: the caller keeps `sqlite3_backup_pagecount`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(0, || {
            if Backup::is_ours(p) {
                (*p.cast::<Backup>()).pagecount()
            } else {
                real::sqlite3_backup_pagecount(p)
            }
        })
    }
}

/// # Safety
/// As `sqlite3_backup_finish`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_finish(p: *mut c_void) -> c_int {
    // SAFETY: the caller keeps `sqlite3_backup_finish`'s contract (the `# Safety`
    // above): live handles, pointers valid for the lengths given; the
    // calls below rely on nothing more.
    unsafe {
        guard(SQLITE_INTERNAL, || {
            if p.is_null() {
                SQLITE_OK
            } else if Backup::is_ours(p) {
                Box::from_raw(p.cast::<Backup>()).finish()
            } else {
                real::sqlite3_backup_finish(p)
            }
        })
    }
}
