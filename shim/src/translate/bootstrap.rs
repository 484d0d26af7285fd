//! What each routed schema holds before any translated SQL runs: the
//! collations, helper functions, views and tables translations rely on
//! (`bootstrap.sql`, beside this file), and the query that answers
//! `sqlite3_column_decltype`.
//!
//! Every object is created with `CREATE OR REPLACE` / `IF NOT EXISTS`, so
//! running the bootstrap again (a new [`BOOTSTRAP_VERSION`]) upgrades a
//! schema in place. Helper names start with `sqlite_` (PostgreSQL's own
//! functions always win over same-named ones in a schema); hidden tables
//! with `sqlite__`.

/// Bumped whenever `bootstrap.sql` changes, so every schema gets the new
/// helper functions once.
pub const BOOTSTRAP_VERSION: &str = "plex-pg-translate-7";

/// The helper SQL, statements separated by lines holding only `;;`.
const BOOTSTRAP: &str = include_str!("bootstrap.sql");

/// Helpers of the query and expression translation (`expr`, `functions`),
/// run after [`BOOTSTRAP`]; same format.
const QUERY_HELPERS: &str = include_str!("bootstrap_queries.sql");

/// Statements run once per schema (inside a transaction, under an advisory
/// lock, with `search_path` set to the schema) before any translated SQL.
pub fn bootstrap_sql(_schema: &str) -> Vec<String> {
    [BOOTSTRAP, QUERY_HELPERS]
        .iter()
        .flat_map(|sql| sql.split("\n;;\n"))
        .map(str::trim)
        .filter(|s| {
            !s.is_empty()
                && !s
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
        })
        .map(str::to_string)
        .collect()
}

/// A column's declared SQLite type, for `sqlite3_column_decltype`: `$1` is
/// the table's oid (`oid`), `$2` the column's number (`int2`); zero or one
/// row of one text column. The declared type is the column comment up to
/// its U+001F separator (see `ddl`); a column without one has none (NULL).
pub const DECLTYPE_QUERY: &str =
    "SELECT nullif(split_part(col_description($1::oid, $2::int2), chr(31), 1), '')";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_splits_into_statements() {
        let statements = bootstrap_sql("plex");
        assert!(statements.len() > 20, "{}", statements.len());
        assert!(statements.iter().all(|s| !s.contains("\n;;\n")));
        assert!(statements
            .iter()
            .any(|s| s.contains("FUNCTION sqlite_datetime(")));
        assert!(
            statements
                .iter()
                .any(|s| s.contains("FUNCTION sqlite_div(")),
            "the query helpers are included"
        );
    }
}
