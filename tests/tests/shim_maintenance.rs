//! SQLite's maintenance calls on a routed database, through Python's
//! sqlite3 and the shim, against real PostgreSQL: `VACUUM` is PostgreSQL's
//! `VACUUM (ANALYZE)` outside a transaction and SQLite's error inside one;
//! `ANALYZE` analyzes; `PRAGMA integrity_check` runs amcheck where it is
//! installed (and finds a deliberately corrupted index), else answers `ok`
//! with a log line saying what was not checked; `PRAGMA optimize` analyzes
//! the tables whose statistics are stale.

use plex_pg_tests::{attempt, pg, unique_name};
use serde_json::{json, Value};

/// A fresh schema name and the shim's environment for it.
fn env(prefix: &str) -> (String, Vec<(String, String)>) {
    let schema = unique_name(prefix);
    let env = pg().env(&schema);
    (schema, env)
}

/// `pg_stat_user_tables`' column `what IS NOT NULL` for a table; stats are
/// written when the command ends, read a few times in case of delay.
fn stat_set(schema: &str, table: &str, what: &str) -> bool {
    for _ in 0..20 {
        let v = pg().psql(&format!(
            "SELECT {what} IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = '{schema}' AND relname = '{table}'"
        ));
        if v.trim() == "t" {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    false
}

fn no_errors(v: &Value) {
    assert!(v.get("errors").is_none(), "{v}");
}

#[test]
fn vacuum_outside_a_transaction_is_postgresql_vacuum_analyze() {
    let (schema, env) = env("vacuum");
    let (v, stderr, _) = attempt(
        &env,
        &[
            "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT)",
            "INSERT INTO items (title) VALUES ('a'), ('b'), ('c')",
            "DELETE FROM items WHERE title = 'b'",
            "VACUUM",
        ],
    );
    no_errors(&v);
    assert_eq!(v["rows"], json!([]), "{v}");
    assert!(stat_set(&schema, "items", "last_vacuum"), "VACUUM ran");
    assert!(stat_set(&schema, "items", "last_analyze"), "with ANALYZE");
    assert!(
        stderr.contains("VACUUM (ANALYZE) of its") && stderr.contains("done in"),
        "the log says what runs and how long it took: {stderr}"
    );
}

#[test]
fn vacuum_inside_a_transaction_is_sqlites_error() {
    let (schema, env) = env("vacuum_tx");
    let (v, _, _) = attempt(
        &env,
        &[
            "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT)",
            "BEGIN",
            "INSERT INTO items (title) VALUES ('a')",
            "VACUUM",
            "COMMIT",
            "VACUUM INTO '/nowhere.db'",
            "SELECT count(*) FROM items",
        ],
    );
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v}");
    assert_eq!(errors[0]["index"], 3);
    assert_eq!(errors[0]["class"], "OperationalError");
    assert_eq!(
        errors[0]["message"],
        "cannot VACUUM from within a transaction"
    );
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("VACUUM INTO is not supported"),
        "{v}"
    );
    assert_eq!(
        v["rows"],
        json!([[1]]),
        "the transaction went on and committed"
    );
    assert!(!stat_set(&schema, "items", "last_vacuum"));
}

#[test]
fn analyze_updates_postgresql_statistics() {
    let (schema, env) = env("analyze");
    let (v, _, _) = attempt(
        &env,
        &[
            "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT)",
            "CREATE TABLE other (id INTEGER PRIMARY KEY, name TEXT)",
            "CREATE INDEX idx_other_name ON other (name)",
            "INSERT INTO items (title) VALUES ('a'), ('b')",
            "ANALYZE main.items",
        ],
    );
    no_errors(&v);
    assert!(stat_set(&schema, "items", "last_analyze"));
    assert!(
        !stat_set(&schema, "other", "last_analyze"),
        "only the table named"
    );
    let (v, _, _) = attempt(
        &env,
        &[
            "BEGIN",
            "ANALYZE idx_other_name",
            "COMMIT",
            "ANALYZE no_such_table",
            "ANALYZE",
            "SELECT 1",
        ],
    );
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["message"], "no such table: no_such_table");
    assert_eq!(v["rows"], json!([[1]]));
    assert!(
        stat_set(&schema, "other", "last_analyze"),
        "an index's table, in a transaction"
    );
}

#[test]
fn optimize_analyzes_stale_tables() {
    let (schema, env) = env("optimize");
    let (v, _, _) = attempt(
        &env,
        &["CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT)"],
    );
    no_errors(&v);
    // Rows written by another session (its statistics are sent when it ends).
    pg().psql(&format!(
        "SET search_path = {schema}; INSERT INTO items (id, title) SELECT g, 't' || g FROM generate_series(1, 500) g"
    ));
    assert!(!stat_set(&schema, "items", "last_analyze"));
    let (v, stderr, _) = attempt(&env, &["PRAGMA optimize"]);
    no_errors(&v);
    assert!(stat_set(&schema, "items", "last_analyze"), "{stderr}");
    assert!(
        stderr.contains("PRAGMA optimize") && stderr.contains("items"),
        "the log names the tables: {stderr}"
    );
}

/// One test for the three states of the database (amcheck absent,
/// installed, an index corrupted): the extension is per database.
#[test]
fn integrity_check_uses_amcheck_and_reports_a_corrupted_index() {
    let (schema, env) = env("integrity");
    let setup = [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT)",
        "CREATE INDEX idx_items_title ON items (title)",
        "INSERT INTO items (title) VALUES ('a'), ('b'), ('c')",
    ];
    let (v, _, _) = attempt(&env, &setup);
    no_errors(&v);
    let installed = pg()
        .psql("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'")
        .trim()
        == "1";
    if !installed {
        let (v, stderr, _) = attempt(&env, &["PRAGMA integrity_check"]);
        assert_eq!(v["rows"], json!([["ok"]]), "{v}");
        assert!(
            stderr.contains("without checking the indexes")
                && stderr.contains("CREATE EXTENSION amcheck")
                && stderr.contains("pg_amcheck"),
            "the log says what was not checked and how to check it: {stderr}"
        );
        pg().psql("CREATE EXTENSION IF NOT EXISTS amcheck");
    }
    let (v, stderr, _) = attempt(
        &env,
        &[
            "PRAGMA quick_check",
            "PRAGMA integrity_check(items)",
            "PRAGMA integrity_check",
        ],
    );
    no_errors(&v);
    assert_eq!(v["rows"], json!([["ok"]]), "{v}");
    assert!(stderr.contains("bt_index_check on"), "{stderr}");

    // An index whose expression's function changed behind its back: the
    // table's rows are no longer where the index says (amcheck's
    // heapallindexed finds them missing).
    pg().psql(&format!(
        "SET search_path = {schema};
         CREATE TABLE corrupt (a bigint);
         INSERT INTO corrupt SELECT g FROM generate_series(1, 100) g;
         CREATE FUNCTION lying(x bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT x';
         CREATE INDEX corrupt_idx ON corrupt (lying(a));
         CREATE OR REPLACE FUNCTION lying(x bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT -x';"
    ));
    let (v, _, _) = attempt(&env, &["PRAGMA integrity_check"]);
    no_errors(&v);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    let problem = rows[0][0].as_str().unwrap();
    assert!(
        problem.contains("corrupt_idx") && problem.contains("lacks matching index tuple"),
        "{problem}"
    );
    // quick_check checks each index's own structure only, as SQLite's
    // does not compare tables with their indexes.
    let (v, _, _) = attempt(&env, &["PRAGMA quick_check"]);
    assert_eq!(v["rows"], json!([["ok"]]), "{v}");
    // Inside a transaction too (on its connection, under a savepoint).
    let (v, _, _) = attempt(
        &env,
        &[
            "BEGIN",
            "INSERT INTO items (title) VALUES ('d')",
            "PRAGMA integrity_check",
        ],
    );
    no_errors(&v);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v["rows"][0][0].as_str().unwrap().contains("corrupt_idx"),
        "{v}"
    );
}
