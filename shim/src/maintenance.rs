//! SQLite's maintenance calls on a routed database, done by PostgreSQL.
//!
//! Plex's scheduled maintenance runs `VACUUM`, `ANALYZE`, `PRAGMA
//! integrity_check` and `PRAGMA optimize`. None of them is pretended:
//!
//! - `VACUUM` → `VACUUM (ANALYZE)` of the schema's tables, on a connection
//!   of its own (PostgreSQL's VACUUM cannot run in a transaction block);
//!   inside a transaction SQLite's error, "cannot VACUUM from within a
//!   transaction".
//! - `ANALYZE [name]` → `ANALYZE` of the schema's tables (or of the one
//!   named, or an index's table).
//! - `PRAGMA integrity_check`/`quick_check` → amcheck's `bt_index_check` on
//!   each B-tree index of the schema (`integrity_check` with
//!   `heapallindexed`: every table row must be in each index), when the
//!   extension is installed in the database; the problems found are the
//!   rows, else `ok`. Without amcheck (or without the right to run it) the
//!   answer is `ok` and a log line, once per process, says what was not
//!   checked and how to check it. The shim never creates an extension.
//! - `PRAGMA optimize` → `ANALYZE` of the tables whose statistics are stale
//!   (`pg_stat_user_tables`: more than 10 % of rows changed since the last
//!   analyze, or never analyzed), with a log line naming them.
//!
//! Each logs when it starts (with the size of what it reads, since on a
//! large library it takes a while) and what it did, with its duration.
//! Inside a transaction, the work runs on the handle's connection under a
//! savepoint (another connection could wait forever for locks this
//! transaction holds); outside one, on a connection of its own.

use crate::connection::{DbState, RoutedDb};
use crate::error::{Error, Result};
use crate::pg::PgConn;
use crate::row::{Cell, RowValue};
use crate::runtime::Runtime;
use crate::sys::*;
use crate::translate::Maintenance;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Rows of a maintenance call's answer.
pub type Rows = VecDeque<Vec<RowValue>>;

/// Run `m` for the routed database `db`; its result rows.
pub fn run(db: &RoutedDb, st: &mut DbState, rt: &'static Runtime, m: &Maintenance) -> Result<Rows> {
    st.forget_if_inherited(rt);
    if *m == Maintenance::Vacuum && st.tx.is_some() {
        return Err(Error::sql("cannot VACUUM from within a transaction"));
    }
    if st.tx.is_some() {
        st.put_aside_active()?;
        let conn = st.conn(db, rt)?;
        conn.batch("SAVEPOINT plex_pg_maintenance")?;
        let result = work(conn, rt, db, m, true);
        if result.is_err() {
            let _ = conn.batch("ROLLBACK TO SAVEPOINT plex_pg_maintenance");
        }
        conn.batch("RELEASE SAVEPOINT plex_pg_maintenance")?;
        result
    } else {
        let mut lease = rt.ready_lease(db.schema_id, &db.schema)?;
        let conn = lease
            .conn()
            .ok_or_else(|| Error::new(SQLITE_IOERR, "pool lease is stale"))?;
        work(conn, rt, db, m, false)
    }
}

fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// A catalog query, every value as text.
fn query(
    conn: &mut PgConn,
    rt: &Runtime,
    sql: &str,
    params: &[&str],
) -> Result<Vec<Vec<Option<String>>>> {
    conn.query_text(
        sql,
        params,
        rt.epoch(),
        rt.pool.settings().statement_cache as usize,
    )
}

fn work(
    conn: &mut PgConn,
    rt: &Runtime,
    db: &RoutedDb,
    m: &Maintenance,
    in_tx: bool,
) -> Result<Rows> {
    let started = Instant::now();
    match m {
        Maintenance::Vacuum => {
            let (tables, n, size) = tables(conn, rt)?;
            if n == 0 {
                return Ok(Rows::new());
            }
            tracing::info!(
                "VACUUM on {} (schema {}): VACUUM (ANALYZE) of its {n} tables ({} MiB): PostgreSQL reads every table, which on a large library takes a while",
                db.path,
                db.schema,
                size / (1 << 20)
            );
            conn.batch(&format!("VACUUM (ANALYZE) {tables}"))?;
            tracing::info!(
                "VACUUM on {} (schema {}): done in {:.1} s",
                db.path,
                db.schema,
                started.elapsed().as_secs_f64()
            );
            Ok(Rows::new())
        }
        Maintenance::Analyze(name) => {
            let (tables, n) = match name {
                None => {
                    let (tables, n, _) = tables(conn, rt)?;
                    (tables, n)
                }
                Some(name) => (table_of(conn, rt, name)?, 1),
            };
            if n > 0 {
                conn.batch(&format!("ANALYZE {tables}"))?;
            }
            tracing::info!(
                "ANALYZE on {} (schema {}): {n} tables analyzed in {:.1} s",
                db.path,
                db.schema,
                started.elapsed().as_secs_f64()
            );
            Ok(Rows::new())
        }
        Maintenance::Optimize => {
            let stale = query(
                conn,
                rt,
                "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() AND (n_mod_since_analyze > 50 + 0.1 * greatest(n_live_tup, 0) \
                 OR (last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup > 0)) ORDER BY relname",
                &[],
            )?;
            if stale.is_empty() {
                tracing::info!(
                    "PRAGMA optimize on {} (schema {}): every table's statistics are fresh; nothing to do",
                    db.path,
                    db.schema
                );
                return Ok(Rows::new());
            }
            let names: Vec<String> = stale.iter().map(|r| text(r, 0)).collect();
            conn.batch(&format!("ANALYZE {}", names.join(", ")))?;
            tracing::info!(
                "PRAGMA optimize on {} (schema {}): ANALYZE of {} tables whose statistics were stale ({}) in {:.1} s",
                db.path,
                db.schema,
                names.len(),
                names.join(", "),
                started.elapsed().as_secs_f64()
            );
            Ok(Rows::new())
        }
        Maintenance::IntegrityCheck {
            quick,
            limit,
            table,
        } => integrity_check(conn, rt, db, *quick, *limit, table.as_deref(), in_tx),
    }
}

/// The schema's tables as a list for VACUUM/ANALYZE, how many, their size
/// in bytes.
fn tables(conn: &mut PgConn, rt: &Runtime) -> Result<(String, i64, i64)> {
    let rows = query(
        conn,
        rt,
        "SELECT coalesce(string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY c.relname), ''), count(*), \
         coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')",
        &[],
    )?;
    let row = rows.first().cloned().unwrap_or_default();
    Ok((
        text(&row, 0),
        text(&row, 1).parse().unwrap_or(0),
        text(&row, 2).parse().unwrap_or(0),
    ))
}

/// The table SQLite's `name` (a table or an index) is, qualified.
fn table_of(conn: &mut PgConn, rt: &Runtime, name: &str) -> Result<String> {
    let rows = query(
        conn,
        rt,
        "SELECT format('%I.%I', n.nspname, t.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_index i ON i.indexrelid = c.oid \
         JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid) \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') \
         AND (lower(sqlite_object_name(obj_description(c.oid, 'pg_class'))) = lower($1) OR lower(c.relname) = lower($1)) \
         ORDER BY c.relkind DESC LIMIT 1",
        &[name],
    )?;
    rows.first()
        .map(|r| text(r, 0))
        .ok_or_else(|| Error::sql(format!("no such table: {name}")))
}

/// Logged once per process: integrity checks answered without amcheck.
static UNCHECKED_LOGGED: AtomicBool = AtomicBool::new(false);

fn integrity_check(
    conn: &mut PgConn,
    rt: &Runtime,
    db: &RoutedDb,
    quick: bool,
    limit: i64,
    table: Option<&str>,
    in_tx: bool,
) -> Result<Rows> {
    let started = Instant::now();
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let ok = || {
        let mut rows = Rows::new();
        rows.push_back(vec![RowValue::new(Cell::text("ok"))]);
        rows
    };
    let ext = query(
        conn,
        rt,
        "SELECT (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'), \
         EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'), current_database()::text",
        &[],
    )?;
    let row = ext.first().cloned().unwrap_or_default();
    let database = text(&row, 2);
    let Some(nsp) = row.first().cloned().flatten() else {
        let why = if text(&row, 1) == "t" {
            format!("PostgreSQL's amcheck extension is available but not installed in database {database}")
        } else {
            "PostgreSQL's amcheck extension is not available on the server (Debian ships it in the postgresql-15 package)".into()
        };
        unchecked(db, pragma, &why, &database);
        return Ok(ok());
    };
    let indexes = query(
        conn,
        rt,
        "SELECT i.indexrelid::bigint, ic.relname::text, \
         coalesce(sqlite_object_name(obj_description(tc.oid, 'pg_class')), tc.relname::text) \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = tc.relnamespace JOIN pg_am am ON am.oid = ic.relam \
         WHERE n.nspname = current_schema() AND am.amname = 'btree' AND i.indisvalid AND i.indisready \
         AND ic.relpersistence <> 't' ORDER BY tc.relname, ic.relname",
        &[],
    )?;
    let indexes: Vec<_> = indexes
        .into_iter()
        .filter(|r| table.is_none_or(|t| text(r, 2).eq_ignore_ascii_case(t)))
        .collect();
    tracing::info!(
        "PRAGMA {pragma} on {} (schema {}): amcheck's bt_index_check on {} indexes{}",
        db.path,
        db.schema,
        indexes.len(),
        if quick {
            ""
        } else {
            " with heapallindexed (every table row looked up in each index: on a large library this takes a while)"
        }
    );
    let func = format!("{}.bt_index_check", crate::connection::quote_ident(&nsp));
    let mut problems = Rows::new();
    for r in &indexes {
        if problems.len() as i64 >= limit {
            break;
        }
        let (oid, index, table) = (text(r, 0), text(r, 1), text(r, 2));
        let sql = format!("SELECT {func}({oid}::oid::regclass, {})", !quick);
        let result = if in_tx {
            conn.batch(&format!("SAVEPOINT plex_pg_check; {sql}"))
                .inspect_err(|_| {
                    let _ = conn.batch("ROLLBACK TO SAVEPOINT plex_pg_check");
                })
                .and_then(|_| conn.batch("RELEASE SAVEPOINT plex_pg_check"))
        } else {
            conn.batch(&sql)
        };
        if let Err(e) = result {
            if e.is_permission_denied() {
                unchecked(
                    db,
                    pragma,
                    &format!(
                        "this role may not run amcheck's bt_index_check ({}): GRANT EXECUTE ON FUNCTION {func}(regclass, boolean) TO the role, as a superuser",
                        e.message
                    ),
                    &database,
                );
                return Ok(ok());
            }
            problems.push_back(vec![RowValue::new(Cell::text(&format!(
                "index {index} of table {table}: {}",
                e.message
            )))]);
        }
    }
    tracing::info!(
        "PRAGMA {pragma} on {} (schema {}): {} indexes checked in {:.1} s, {} problems",
        db.path,
        db.schema,
        indexes.len(),
        started.elapsed().as_secs_f64(),
        problems.len()
    );
    if problems.is_empty() {
        Ok(ok())
    } else {
        for p in &problems {
            if let Some(Cell::Text(t)) = p.first().map(|v| v.cell()) {
                tracing::error!(
                    "PRAGMA {pragma} on {}: {}",
                    db.path,
                    String::from_utf8_lossy(&t[..t.len() - 1])
                );
            }
        }
        Ok(problems)
    }
}

/// Say once per process that an integrity check answered `ok` without
/// checking, why, and how to check.
fn unchecked(db: &RoutedDb, pragma: &str, why: &str, database: &str) {
    if UNCHECKED_LOGGED.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        "PRAGMA {pragma} on {} (schema {}) answered ok without checking the indexes: {why}. \
         PostgreSQL keeps its own consistency (and checksums pages if the cluster was made with --data-checksums); \
         to check the indexes, as a superuser: CREATE EXTENSION amcheck; in database {database} (the shim then uses it), \
         or run: pg_amcheck --heapallindexed --schema {} {database}. Said once per process.",
        db.path,
        db.schema,
        db.schema
    );
}
