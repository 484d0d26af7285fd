//! Comparing a query's result with what it must be: exact row counts,
//! exact values and types, the column names SOCI reads by. A difference is
//! a mismatch in the stats with a message naming the query, the row and the
//! column; every row compared counts in `rows_checked`.

use crate::sqlite::{Connection, Statement, Value};
use crate::stats::Stats;

/// Compare `got` with `expected` row by row. Returns whether they are equal.
pub fn rows(stats: &Stats, what: &str, got: &[Vec<Value>], expected: &[Vec<Value>]) -> bool {
    Stats::add(&stats.rows_checked, got.len().min(expected.len()) as u64);
    if got.len() != expected.len() {
        stats.mismatch(format!(
            "{what}: expected {} rows, got {}",
            expected.len(),
            got.len()
        ));
        return false;
    }
    for (r, (g, e)) in got.iter().zip(expected).enumerate() {
        if let Some(diff) = row_difference(g, e) {
            stats.mismatch(format!("{what}: row {r}: {diff}"));
            return false;
        }
    }
    true
}

/// The first difference between two rows, described; `None` when equal.
pub fn row_difference(got: &[Value], expected: &[Value]) -> Option<String> {
    if got.len() != expected.len() {
        return Some(format!(
            "expected {} columns, got {}",
            expected.len(),
            got.len()
        ));
    }
    got.iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (g, e))| g != e)
        .map(|(c, (g, e))| format!("column {c}: expected {e}, got {g}"))
}

/// The statement's column names must be exactly `names` (SOCI's `'t_col'` aliases).
pub fn column_names(stats: &Stats, what: &str, stmt: &Statement<'_>, names: &[&str]) -> bool {
    let got: Vec<String> = (0..stmt.column_count())
        .map(|c| stmt.column_name(c))
        .collect();
    if got != names {
        stats.mismatch(format!("{what}: expected columns {names:?}, got {got:?}"));
        return false;
    }
    true
}

/// A query and the exact result it must give.
pub struct Expect<'q> {
    /// What the query is, for messages.
    pub what: &'q str,
    pub sql: &'q str,
    pub params: &'q [(&'q str, Value)],
    /// Column names, SOCI's `'t_col'` aliases.
    pub names: &'q [&'q str],
    pub rows: &'q [Vec<Value>],
}

/// Prepare, bind, run, and check column names and rows exactly; counts one
/// query. An SQLite error is returned, a difference is a mismatch in `stats`.
pub fn query(stats: &Stats, conn: &Connection, q: &Expect<'_>) -> Result<(), String> {
    let mut stmt = conn.prepare(q.sql).map_err(|e| e.to_string())?;
    stmt.bind_all(q.params).map_err(|e| e.to_string())?;
    let got = stmt.all_rows().map_err(|e| e.to_string())?;
    Stats::add(&stats.queries, 1);
    column_names(stats, q.what, &stmt, q.names);
    rows(stats, q.what, &got, q.rows);
    Ok(())
}
