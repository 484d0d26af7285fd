//! Errors as SQLite reports them: a result code (extended) and a message.
//!
//! PostgreSQL's errors keep PostgreSQL's own message; the code is the
//! SQLite code a client would get for the same failure (a unique violation
//! is `SQLITE_CONSTRAINT_UNIQUE`, a lock timeout `SQLITE_BUSY` …), so Plex's
//! error handling takes the same paths it takes on SQLite.
//!
//! Where the shim itself decides by what went wrong (prepare again after a
//! stale cached plan, explain a missing privilege), it asks the error's
//! kind ([`Error::is_stale_plan`], [`Error::is_permission_denied`]), which
//! reads PostgreSQL's SQLSTATE code and never its message text: the text
//! is translated with the server's `lc_messages` and changes between
//! versions.

use crate::sys::*;
use std::ffi::c_int;
use tokio_postgres::error::SqlState;

/// A failure, ready for `sqlite3_errcode`/`sqlite3_errmsg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Extended result code; `code & 0xff` is the primary one.
    pub code: c_int,
    pub message: String,
    /// PostgreSQL's SQLSTATE and reporting routine, when PostgreSQL
    /// reported the failure.
    pg: Option<PgCause>,
}

/// What PostgreSQL said about a failure, besides its words.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PgCause {
    state: SqlState,
    /// The server function that raised it (`RevalidateCachedQuery` …):
    /// tells apart failures that share an SQLSTATE.
    routine: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: c_int, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            pg: None,
        }
    }
    /// PostgreSQL's SQLSTATE, when PostgreSQL reported this failure.
    pub fn state(&self) -> Option<&SqlState> {
        self.pg.as_ref().map(|c| &c.state)
    }
    /// PostgreSQL refused a cached plan whose result type changed after
    /// DDL from another session (`feature_not_supported`, raised while
    /// revalidating the plan): preparing again fixes it.
    pub fn is_stale_plan(&self) -> bool {
        self.pg.as_ref().is_some_and(|c| {
            c.state == SqlState::FEATURE_NOT_SUPPORTED
                && c.routine
                    .as_deref()
                    .is_none_or(|r| r == "RevalidateCachedQuery")
        })
    }
    /// The role lacks a privilege (`insufficient_privilege`).
    pub fn is_permission_denied(&self) -> bool {
        self.state() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
    }
    pub fn sql(message: impl Into<String>) -> Error {
        Error::new(SQLITE_ERROR, message)
    }
    pub fn misuse(message: impl Into<String>) -> Error {
        Error::new(SQLITE_MISUSE, message)
    }
    pub fn range(message: impl Into<String>) -> Error {
        Error::new(SQLITE_RANGE, message)
    }
    pub fn primary(&self) -> c_int {
        self.code & 0xff
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The SQLite result code for a PostgreSQL error state.
pub fn code_for_state(state: &SqlState) -> c_int {
    match state.code() {
        "23505" => SQLITE_CONSTRAINT_UNIQUE,
        "23502" => SQLITE_CONSTRAINT_NOTNULL,
        "23503" => SQLITE_CONSTRAINT_FOREIGNKEY,
        "23514" => SQLITE_CONSTRAINT_CHECK,
        s if s.starts_with("23") => SQLITE_CONSTRAINT,
        // serialization failure, deadlock, lock not available
        "40001" | "40P01" | "55P03" => SQLITE_BUSY,
        "57014" => 9, // SQLITE_INTERRUPT: canceled
        "25006" => SQLITE_READONLY,
        "42501" => SQLITE_AUTH,
        "22003" => SQLITE_MISMATCH,
        // admin shutdown, crash shutdown, cannot connect now
        "57P01" | "57P02" | "57P03" => SQLITE_IOERR,
        s if s.starts_with("08") => SQLITE_IOERR,
        s if s.starts_with("53") => SQLITE_NOMEM, // insufficient resources
        _ => SQLITE_ERROR,
    }
}

/// Turn a tokio-postgres error into an SQLite one. The message keeps
/// PostgreSQL's own words (with its detail and hint, which say what to
/// fix); for the failures clients test by message (`no such table`,
/// `UNIQUE constraint failed` …) SQLite's wording comes first, so code
/// written against SQLite still recognises them.
pub fn from_pg(e: &tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let mut message = db.message().to_string();
        if let Some(detail) = db.detail() {
            message.push_str(" (");
            message.push_str(detail);
            message.push(')');
        }
        if let Some(hint) = db.hint() {
            message.push_str(" hint: ");
            message.push_str(hint);
        }
        if let Some(sqlite) = sqlite_wording(db) {
            message = format!("{sqlite} [PostgreSQL: {message}]");
        }
        let mut err = Error::new(code_for_state(db.code()), message);
        err.pg = Some(PgCause {
            state: db.code().clone(),
            routine: db.routine().map(str::to_string),
        });
        return err;
    }
    if e.is_closed() {
        return Error::new(SQLITE_IOERR, "the connection to PostgreSQL was closed");
    }
    Error::new(SQLITE_IOERR, format!("PostgreSQL connection error: {e}"))
}

/// SQLite's message for the same failure, where clients match on it.
fn sqlite_wording(db: &tokio_postgres::error::DbError) -> Option<String> {
    let quoted = || {
        let m = db.message();
        let start = m.find('"')? + 1;
        let end = start + m[start..].find('"')?;
        Some(m[start..end].to_string())
    };
    let qualified = |column: Option<&str>| match (db.table(), column) {
        (Some(t), Some(c)) => Some(format!("{t}.{c}")),
        _ => None,
    };
    match db.code().code() {
        "42P01" => Some(format!("no such table: {}", quoted()?)),
        "42703" => Some(format!(
            "no such column: {}",
            quoted().or_else(|| {
                // `column t.c does not exist`
                db.message()
                    .strip_prefix("column ")?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })?
        )),
        "42883" => Some(format!(
            "no such function: {}",
            db.message().strip_prefix("function ")?.split('(').next()?
        )),
        "42P07" => Some(format!("table {} already exists", quoted()?)),
        "42601" => Some(format!("near \"{}\": syntax error", quoted()?)),
        "23502" => Some(format!(
            "NOT NULL constraint failed: {}",
            qualified(db.column())?
        )),
        "23505" => {
            // Detail: Key (a, b)=(1, 2) already exists.
            let detail = db.detail()?;
            let cols = detail.strip_prefix("Key (")?.split(")=").next()?;
            let table = db.table()?;
            let list: Vec<String> = cols
                .split(", ")
                .map(|c| format!("{table}.{}", c.trim_matches('"')))
                .collect();
            Some(format!("UNIQUE constraint failed: {}", list.join(", ")))
        }
        _ => None,
    }
}

/// Whether `e` means the connection is gone (the server restarted, the
/// network dropped it) rather than that the statement failed.
pub fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(state) => {
            let c = state.code();
            c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03"
        }
        None => e.as_db_error().is_none(),
    }
}
