//! Running the fuzzer's statements both ways and comparing them: one case
//! file handed to `tests/sql/run_case.py` (the differential suite's runner,
//! so the fuzzer sees exactly what `translate_cases.rs` sees) on real
//! SQLite and through the shim, then, per statement, success or failure,
//! rows with their value classes, column names, declared types,
//! `sqlite3_changes()` and `sqlite3_last_insert_rowid()`; and the
//! [`Invariant`]s among the shim's own results.

use super::generate::{Invariant, Statement, Unit};
use crate::{run_case_files, unique_name, TempDir};
use serde_json::Value;
use std::time::Duration;

/// One statement's outcome as `run_case.py` prints it.
pub type Outcome = Value;

/// What differs for one statement (or one unit's invariant).
#[derive(Clone, Debug)]
pub struct Difference {
    pub index: usize,
    pub sql: String,
    /// `error`, `rows`, `columns`, `decltypes`, `changes`,
    /// `last_insert_rowid`, `norec`, `partition`, `crash`.
    pub aspect: &'static str,
    pub detail: String,
    pub reference_error: Option<String>,
    pub shim_error: Option<String>,
    /// For a `rows` difference: (SQLite's rows, the shim's), in the
    /// compared order.
    pub rows: Option<(Vec<Value>, Vec<Value>)>,
}

impl Difference {
    /// A `rows` difference where every value is equal as a number: only
    /// classes differ (INTEGER where SQLite has REAL, or the reverse).
    pub fn only_number_classes_differ(&self) -> bool {
        let Some((r, p)) = &self.rows else {
            return false;
        };
        let as_number = |v: &Value| match v[0].as_str() {
            Some("integer" | "real") => v[1].as_f64(),
            _ => None,
        };
        let same = |a: &Value, b: &Value| match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            _ => a == b,
        };
        r.len() == p.len()
            && r.iter()
                .zip(p)
                .all(|(x, y)| match (x.as_array(), y.as_array()) {
                    (Some(x), Some(y)) => {
                        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
                    }
                    _ => false,
                })
    }
}

/// Run `statements` (one a line, no blank lines) on SQLite or through the
/// shim in `dir`, schema `schema`.
pub fn outcomes(dir: &TempDir, statements: &[String], shimmed: bool, schema: &str) -> Vec<Outcome> {
    let file = dir.path().join("fuzz.test");
    let text: String = statements.iter().map(|s| format!("{s}\n\n")).collect();
    std::fs::write(&file, text).expect("write the case file");
    let out = run_case_files(dir, &[file], shimmed, schema, Duration::from_secs(1800));
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Both ways, in a fresh directory and schema: (SQLite's, the shim's).
pub fn run_both(statements: &[String]) -> (Vec<Outcome>, Vec<Outcome>) {
    let dir = TempDir::new("fuzz");
    let schema = unique_name("fuzz");
    let reference = outcomes(&dir, statements, false, &schema);
    let shimmed = outcomes(&dir, statements, true, &schema);
    (reference, shimmed)
}

/// Whether `sql` is an `INSERT`, `UPDATE` or `DELETE`.
pub fn is_write(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE" | "REPLACE")
}

pub fn error(o: &Outcome) -> Option<String> {
    o["error"].as_str().map(str::to_string)
}

/// Two values equal: same class, same value (REALs to 1e-9 relative, as
/// sums of REALs in another order may differ in the last bits).
fn same_value(a: &Value, b: &Value) -> bool {
    if a[0] == "real" && b[0] == "real" {
        let (x, y) = (a[1].as_f64().unwrap_or(0.0), b[1].as_f64().unwrap_or(0.0));
        return x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs());
    }
    a == b
}

fn same_rows(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(r, s)| {
            let (r, s) = (r.as_array(), s.as_array());
            match (r, s) {
                (Some(r), Some(s)) => {
                    r.len() == s.len() && r.iter().zip(s).all(|(x, y)| same_value(x, y))
                }
                _ => false,
            }
        })
}

/// Rows in a canonical order, numbers sorted by value whatever their
/// class (`0` beside `0.0` and `-0.0`), so that rows differing only in a
/// number's class still pair up and the difference names them.
fn sorted(rows: &[Value]) -> Vec<Value> {
    let key = |row: &Value| -> (String, String) {
        let values = row.as_array().cloned().unwrap_or_default();
        let numbers = values
            .iter()
            .map(|v| match (v[0].as_str(), v[1].as_f64()) {
                (Some("integer" | "real"), Some(x)) => format!("n{:e}", x + 0.0),
                _ => v.to_string(),
            })
            .collect::<Vec<_>>()
            .join("|");
        (numbers, row.to_string())
    };
    let mut rows = rows.to_vec();
    rows.sort_by_cached_key(key);
    rows
}

fn rows_of(o: &Outcome) -> Vec<Value> {
    o["rows"].as_array().cloned().unwrap_or_default()
}

fn short(rows: &[Value]) -> String {
    let s = Value::from(rows.to_vec()).to_string();
    if s.chars().count() > 400 {
        format!(
            "{}… ({} rows)",
            s.chars().take(400).collect::<String>(),
            rows.len()
        )
    } else {
        s
    }
}

/// Every difference of one statement; the keys in `skip`
/// (`changes`, `last_insert_rowid`) are not compared.
pub fn compare(
    index: usize,
    st: &Statement,
    r: &Outcome,
    p: &Outcome,
    skip: &[&str],
) -> Vec<Difference> {
    let diff = |aspect, detail: String| Difference {
        index,
        sql: st.sql.clone(),
        aspect,
        detail,
        reference_error: error(r),
        shim_error: error(p),
        rows: None,
    };
    match (error(r), error(p)) {
        (Some(_), Some(_)) => return vec![],
        (None, None) => {}
        (Some(e), None) => {
            return vec![diff(
                "error",
                format!("SQLite failed ({e}), the shim did not"),
            )]
        }
        (None, Some(e)) => return vec![diff("error", format!("the shim failed: {e}"))],
    }
    let mut out = Vec::new();
    let (rr, pr) = if st.ordered {
        (rows_of(r), rows_of(p))
    } else {
        (sorted(&rows_of(r)), sorted(&rows_of(p)))
    };
    if !same_rows(&rr, &pr) {
        let detail = format!("SQLite {}\n    shim   {}", short(&rr), short(&pr));
        out.push(Difference {
            rows: Some((rr, pr)),
            ..diff("rows", detail)
        });
    }
    for key in ["columns", "decltypes", "changes", "last_insert_rowid"] {
        if r[key] != p[key] && !skip.contains(&key) {
            let aspect = match key {
                "columns" => "columns",
                "decltypes" => "decltypes",
                "changes" => "changes",
                _ => "last_insert_rowid",
            };
            out.push(diff(aspect, format!("SQLite {} shim {}", r[key], p[key])));
        }
    }
    out
}

/// The number in a one-value result, whatever its class.
fn number(o: &Outcome) -> Option<f64> {
    let v = &o["rows"][0][0];
    v[1].as_f64()
        .or_else(|| v[1].as_str().and_then(|s| s.parse().ok()))
}

/// Whether the shim's results of `unit` keep its invariant (statements
/// that failed are not checked: the comparison with SQLite reports them).
pub fn invariant(unit: &Unit, shim: &[Outcome]) -> Option<Difference> {
    let kind = unit.invariant?;
    if shim.len() != unit.statements.len() || shim.iter().any(|o| error(o).is_some()) {
        return None;
    }
    let broken = match kind {
        Invariant::NoRec => {
            let (a, b) = (number(&shim[0]), number(&shim[1]));
            (a != b).then(|| format!("count(*) WHERE p gives {a:?}, sum(CASE WHEN p …) {b:?}"))
        }
        Invariant::Partition => {
            let whole = sorted(&rows_of(&shim[0]));
            let parts: Vec<Value> = shim[1..].iter().flat_map(rows_of).collect();
            let parts = sorted(&parts);
            (!same_rows(&whole, &parts)).then(|| {
                format!(
                    "{} rows in all, {} in p, NOT p and p IS NULL together",
                    whole.len(),
                    parts.len()
                )
            })
        }
    };
    broken.map(|detail| Difference {
        index: unit.index,
        sql: unit
            .statements
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n    "),
        aspect: match kind {
            Invariant::NoRec => "norec",
            Invariant::Partition => "partition",
        },
        detail,
        reference_error: None,
        shim_error: None,
        rows: None,
    })
}

/// What a case file gave both ways.
#[derive(Debug, Default)]
pub struct CaseCheck {
    /// Differences outside the statements' gaps.
    pub differences: Vec<String>,
    /// Statements marked with a gap that agreed entirely: fixed, the mark
    /// (and the fuzzer's known class) can go.
    pub stale_gaps: Vec<String>,
}

/// Run a case file (`tests/sql/*.test`) both ways and list its differences
/// as the differential suite reads the file's directives (`-- unordered`,
/// `-- error`, `-- gap: KEYS reason`), where a gap may also name `error`:
/// one side failing is then not a difference. What `sql-fuzz --case`
/// prints, and how `tests/tests/fuzz_sql.rs` checks that every case of
/// `tests/sql/fuzz_found.test` still shows (only) its gap.
pub fn case_differences(path: &std::path::Path) -> CaseCheck {
    let dir = TempDir::new("fuzz_case");
    let schema = unique_name("fuzz_case");
    let run_file = |shimmed: bool| {
        let out = run_case_files(
            &dir,
            &[path.to_path_buf()],
            shimmed,
            &schema,
            Duration::from_secs(300),
        );
        out.assert_ok();
        out.stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("run_case.py prints JSON"))
            .collect::<Vec<_>>()
    };
    let (reference, shimmed) = (run_file(false), run_file(true));
    let mut out = CaseCheck::default();
    if reference.len() != shimmed.len() {
        out.differences.push(format!(
            "{} statements on SQLite, {} through the shim",
            reference.len(),
            shimmed.len()
        ));
    }
    for (i, (r, p)) in reference.iter().zip(&shimmed).enumerate() {
        let gaps: Vec<&str> = r["gap"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let st = Statement {
            sql: r["sql"].as_str().unwrap_or_default().to_string(),
            ordered: r["unordered"] != true,
        };
        if r["expect_error"] == true && (error(r).is_none() || error(p).is_none()) {
            out.differences
                .push(format!("{}\n  expected an error on both", st.sql));
            continue;
        }
        let diffs = compare(i, &st, r, p, &[]);
        if !gaps.is_empty() && diffs.is_empty() {
            out.stale_gaps.push(st.sql.clone());
        }
        for d in diffs {
            if !gaps.contains(&d.aspect) {
                out.differences
                    .push(format!("{}\n  {}: {}", d.sql, d.aspect, d.detail));
            }
        }
    }
    out
}
