//! The translator proven against SQLite: each case runs through SQLite's C
//! API twice — on real SQLite, and through the shim (`LD_PRELOAD`) on a file
//! named like Plex's library, so on PostgreSQL — by `tests/sql/run_case.py`,
//! and every statement's outcome is compared: success or failure, rows
//! with each value's storage class, column names, declared types,
//! `sqlite3_changes()` and `sqlite3_last_insert_rowid()`.
//!
//! Cases: Plex's whole schema, every statement of Plex's migrations (on
//! that schema, with rows in it), and the suite under `tests/sql/`.

use plex_pg_tests::{fixture, run_case_files, unique_name, workspace_root, TempDir};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// What SQLite's own build lacks and Plex's has (spellfix1, the ICU
/// tokenizer): there the reference fails and PostgreSQL must succeed.
const PLEX_ONLY: &[&str] = &["no such module: spellfix1", "unknown tokenizer: collating"];

fn case(name: &str) -> PathBuf {
    workspace_root().join("tests/sql").join(name)
}

/// Run case files on SQLite (`shimmed` false) or through the shim.
fn outcomes(dir: &TempDir, files: &[PathBuf], shimmed: bool, schema: &str) -> Vec<Value> {
    let out = run_case_files(dir, files, shimmed, schema, LIMIT);
    out.assert_ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Rows in a comparable order (sorted when the case says they are unordered).
fn rows(v: &Value) -> Vec<Value> {
    let mut rows = v["rows"].as_array().cloned().unwrap_or_default();
    if v["unordered"] == true {
        rows.sort_by_key(|r| r.to_string());
    }
    rows
}

/// Every difference between SQLite's outcomes and PostgreSQL's.
fn differences(reference: &[Value], postgres: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    if reference.len() != postgres.len() {
        out.push(format!(
            "{} statements on SQLite, {} through the shim",
            reference.len(),
            postgres.len()
        ));
    }
    for (r, p) in reference.iter().zip(postgres) {
        let sql = r["sql"].as_str().unwrap_or_default();
        let short: String = sql.chars().take(160).collect();
        let (r_err, p_err) = (r["error"].as_str(), p["error"].as_str());
        match (r_err, p_err) {
            (Some(e), None) if PLEX_ONLY.iter().any(|m| e.contains(m)) => continue,
            (Some(_), Some(_)) => continue,
            (None, None) if r["expect_error"] == true => {
                out.push(format!("{short}\n  expected an error on both"))
            }
            (None, None) => {}
            (Some(e), None) => {
                out.push(format!(
                    "{short}\n  SQLite failed ({e}), PostgreSQL did not"
                ));
                continue;
            }
            (None, Some(e)) => {
                out.push(format!("{short}\n  PostgreSQL failed: {e}"));
                continue;
            }
        }
        let gap = |key: &str| {
            r["gap"]
                .as_array()
                .is_some_and(|g| g.iter().any(|k| k == key))
        };
        if !gap("rows") && rows(r) != rows(p) {
            out.push(format!(
                "{short}\n  rows: SQLite {}\n        shim   {}",
                Value::from(rows(r)),
                Value::from(rows(p))
            ));
        }
        for key in ["columns", "decltypes", "changes", "last_insert_rowid"] {
            if !gap(key) && r[key] != p[key] {
                out.push(format!(
                    "{short}\n  {key}: SQLite {} shim {}",
                    r[key], p[key]
                ));
            }
        }
    }
    out
}

/// Run `files` both ways and fail with every difference.
fn assert_same(name: &str, files: &[PathBuf]) -> Vec<Value> {
    let dir = TempDir::new(name);
    let schema = unique_name(name);
    let reference = outcomes(&dir, files, false, &schema);
    let postgres = outcomes(&dir, files, true, &schema);
    let diffs = differences(&reference, &postgres);
    assert!(
        diffs.is_empty(),
        "{} difference(s) between SQLite and the shim:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(!reference.is_empty(), "the case ran no statement");
    postgres
}

#[test]
fn plex_schema_builds_as_on_sqlite() {
    let results = assert_same(
        "tr_schema",
        &[fixture("sqlite_schema.sql"), case("schema_check.test")],
    );
    let failed: Vec<&Value> = results.iter().filter(|r| !r["error"].is_null()).collect();
    assert!(
        failed.is_empty(),
        "every schema statement runs on PostgreSQL: {failed:?}"
    );
}

#[test]
fn plex_migration_statements_have_sqlite_effect() {
    assert_same(
        "tr_statements",
        &[
            fixture("sqlite_schema.sql"),
            case("plex_seed.test"),
            fixture("statements.sql"),
            case("plex_dump.test"),
        ],
    );
}

/// One test per case file of the suite.
macro_rules! suite {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                assert_same(stringify!($test), &[case($file)]);
            }
        )*
    };
}

suite! {
    case_parameters => "parameters.test",
    case_identifiers => "identifiers.test",
    case_rowid => "rowid.test",
    case_conflicts => "conflicts.test",
    case_limits => "limits.test",
    case_operators => "operators.test",
    case_forms => "forms.test",
    case_arithmetic => "arithmetic.test",
    case_ordering => "ordering.test",
    case_implicit_order => "implicit_order.test",
    case_names => "names.test",
    case_depth => "depth.test",
    case_loose_typing => "loose_typing.test",
    case_grouping => "grouping.test",
    case_plex_queries => "plex_queries.test",
    case_text_matching => "text_matching.test",
    case_functions => "functions.test",
    case_datetime => "datetime.test",
    case_json => "json.test",
    case_schema_catalog => "schema_catalog.test",
    case_ddl => "ddl.test",
    case_refused_writes => "refused_writes.test",
    case_transactions => "transactions.test",
    case_sequences => "sequences.test",
    case_fulltext => "fulltext.test",
}
