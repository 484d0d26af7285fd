//! Differences the fuzzer finds that are already known: each listed in
//! `docs/sql-support.md`'s "Known differences" or written as a minimal
//! `-- gap:` case in `tests/sql/fuzz_found.test`, with the reason. A
//! difference matching one is counted under its name, not reported as
//! new. When the translator fixes one, its case's gap goes stale
//! (`tests/tests/fuzz_sql.rs` says so) and its entry here goes too.

use super::compare::Difference;

/// A class of known difference.
#[derive(Debug)]
pub struct Known {
    /// Short name, shown in the summary.
    pub name: &'static str,
    /// Where it is written down, and why it is a difference.
    pub reason: &'static str,
    matches: fn(&Difference) -> bool,
}

/// SQLite succeeded, the shim failed with a message containing one of
/// `needles`.
fn shim_error(d: &Difference, needles: &[&str]) -> bool {
    d.reference_error.is_none()
        && d.shim_error
            .as_deref()
            .is_some_and(|e| needles.iter().any(|n| e.contains(n)))
}

/// Whether `sql` names one of `columns` (a word of it).
fn names(sql: &str, columns: &[&str]) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| columns.contains(&w))
}

/// Columns declared `float` (REAL) in the fuzzer's tables and in
/// `fuzz_found.test`.
const REAL_COLUMNS: &[&str] = &["f", "score", "r"];

/// Whether `sql` names a REAL column, has a REAL literal (`3.0`, `1e10`)
/// or casts to REAL.
fn names_a_real(sql: &str) -> bool {
    names(sql, REAL_COLUMNS)
        || sql.contains("AS REAL)")
        || sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .any(|w| {
                w.starts_with(|c: char| c.is_ascii_digit() || c == '-')
                    && (w.contains('.') || w.contains('e'))
                    && w.parse::<f64>().is_ok()
            })
}

/// Whether `text` holds a REAL as SQLite's quote() prints one it cannot
/// print in 15 digits: `d.` then 20 digits and an exponent.
fn has_twenty_digit_real(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e'))
        .any(|w| {
            w.split_once('e').is_some_and(|(m, _)| {
                m.len() == 22
                    && m.as_bytes()[1] == b'.'
                    && m[2..].bytes().all(|b| b.is_ascii_digit())
            })
        })
}

/// Columns declared `COLLATE NOCASE` in the fuzzer's tables (`t1.nc`,
/// `t3.s`) and in `fuzz_found.test` (`ff.nc`).
const NOCASE_COLUMNS: &[&str] = &["nc", "s"];
/// Columns declared `datetime` (NUMERIC affinity, PostgreSQL's numeric).
const DATETIME_COLUMNS: &[&str] = &["d"];

/// Every known class, checked in order.
pub const KNOWN: &[Known] = &[
    Known {
        name: "integer overflow",
        reason: "docs/sql-support.md, Known differences, \"Integer overflow\": 64-bit overflow of \
                 arithmetic on columns is PostgreSQL's `bigint out of range` where SQLite gives a REAL",
        matches: |d| shim_error(d, &["out of range"]),
    },
    Known {
        name: "transaction aborted after a refused statement",
        reason: "fuzz_found.test: inside BEGIN, a statement PostgreSQL refuses when preparing it \
                 (not fenced by the per-write savepoint) aborts the transaction; every later \
                 statement fails until ROLLBACK, where SQLite's transaction goes on",
        matches: |d| shim_error(d, &["current transaction is aborted"]),
    },
    Known {
        name: "integer column as the condition of a write",
        reason: "fuzz_found.test: `UPDATE/DELETE … WHERE int_col` is PostgreSQL's `argument of \
                 WHERE must be type boolean` (a query's WHERE goes through sqlite_truth)",
        matches: |d| shim_error(d, &["argument of WHERE must be type boolean"]),
    },
    Known {
        name: "boolean column as a number",
        reason: "fuzz_found.test: a `boolean` column is PostgreSQL's boolean; arithmetic, bitwise \
                 operators, abs/min/max/sum/avg, comparing it with a number column or a number \
                 other than 0/1 fail (SQLite's boolean is NUMERIC: 0 and 1)",
        matches: |d| shim_error(d, &["boolean"]),
    },
    Known {
        name: "GLOB on a NOCASE text",
        reason: "fuzz_found.test: GLOB is a regular expression on PostgreSQL, which refuses the \
                 nondeterministic sqlite_nocase collation; SQLite's GLOB ignores collations",
        matches: |d| shim_error(d, &["nondeterministic collations are not supported"]),
    },
    Known {
        name: "BINARY and NOCASE texts in one expression",
        reason: "fuzz_found.test: `min(v, nc)`, `CASE … THEN nc ELSE v END`, a compound column \
                 from both: PostgreSQL's `collation mismatch` / `could not determine which \
                 collation`; SQLite takes the left operand's collation or none",
        matches: |d| {
            shim_error(
                d,
                &["collation mismatch", "could not determine which collation"],
            )
        },
    },
    Known {
        name: "NOCASE kept by expressions",
        reason: "fuzz_found.test: on PostgreSQL an expression over a NOCASE column keeps \
                 sqlite_nocase, so it sorts, compares and groups ignoring case; in SQLite only \
                 the column itself (or an explicit COLLATE) carries NOCASE. The translation \
                 drops it from expressions it knows are text (`nc || 'x'`, `lower(nc)`, a CASE \
                 of texts); not from those whose type it cannot tell (`ifnull(nc, 'x')`, \
                 `nullif(nc, '9')`, `iif(k, s, s)`, `max(ifnull(nc, …))`). Matched broadly: any \
                 row or invariant difference of a statement naming a NOCASE column",
        matches: |d| {
            matches!(d.aspect, "rows" | "norec" | "partition") && names(&d.sql, NOCASE_COLUMNS)
        },
    },
    Known {
        name: "GROUP BY a constant",
        reason: "fuzz_found.test: `SELECT 7, count(*) … GROUP BY 1`, `SELECT 2, count(*) … GROUP BY 1` (then PostgreSQL's position 2: \
                 the aggregate), `GROUP BY 9007199254740993`, \
                 `GROUP BY - 9007199254740993`: the constant reaches PostgreSQL as a GROUP BY or \
                 ORDER BY position (or a non-integer constant there), which it refuses",
        matches: |d| {
            shim_error(
                d,
                &[
                    "non-integer constant in GROUP BY",
                    "non-integer constant in ORDER BY",
                    "GROUP BY position",
                    "ORDER BY position",
                    "aggregate functions are not allowed in GROUP BY",
                ],
            )
        },
    },
    Known {
        name: "declared types of a compound SELECT",
        reason: "fuzz_found.test: SQLite gives a compound's columns the first SELECT's declared \
                 types; the shim none",
        matches: |d| {
            d.aspect == "decltypes"
                && ["UNION", "INTERSECT", "EXCEPT"]
                    .iter()
                    .any(|k| d.sql.contains(k))
        },
    },
    Known {
        name: "NULL literal typed text",
        reason: "fuzz_found.test: a NULL literal whose type PostgreSQL cannot infer is text, or \
                 stays unknown (`CASE NULL WHEN x'00'`, `nullif(NULL, x)`, `CASE … THEN NULL ELSE \
                 NULL END`, `NULL - NULL`, `NULL & NULL`): beside a blob or a real, or as a number, it is \
                 `operator does not exist`, `function avg(text) does not exist`, `COALESCE types \
                 … cannot be matched` or `operator is not unique: unknown - unknown`",
        matches: |d| {
            d.sql.contains("NULL")
                && shim_error(
                    d,
                    &[
                        "operator does not exist: text ",
                        " text hint",
                        "(text)",
                        "(text, ",
                        ", text)",
                        "and text cannot be matched",
                        "types text and ",
                        "double precision |",
                        "double precision &",
                        "| double precision",
                        "& double precision",
                        "operator is not unique: unknown",
                    ],
                )
        },
    },
    Known {
        name: "bitwise operators on a datetime column",
        reason: "fuzz_found.test: a `datetime` column is PostgreSQL's numeric, which has no `&`, `|`",
        matches: |d| {
            shim_error(
                d,
                &[
                    "operator does not exist: numeric &",
                    "operator does not exist: numeric |",
                    "& numeric",
                    "| numeric",
                ],
            )
        },
    },
    Known {
        name: "datetime arithmetic beyond 64 bits",
        reason: "fuzz_found.test: a `datetime` column is PostgreSQL's numeric, so arithmetic on it \
                 is exact where SQLite's 64-bit integers overflow into REAL: the same numbers, \
                 INTEGER where SQLite has REAL (`(d * 9007199254740993) * 0` is 0, SQLite 0.0)",
        matches: |d| d.only_number_classes_differ() && names(&d.sql, DATETIME_COLUMNS),
    },
    Known {
        name: "one class per result column",
        reason: "docs/sql-support.md, Known differences, \"Per-value classes of expressions\": a \
                 PostgreSQL result column has one type, so a number SQLite gives as INTEGER in \
                 some rows and REAL in others (`CASE … THEN CAST(x AS INTEGER) ELSE abs(NULL) \
                 END`) comes back as one class; the values are equal",
        matches: |d| d.only_number_classes_differ(),
    },
    Known {
        name: "a column beside a literal that does not convert",
        reason: "fuzz_found.test: `int_col < 'abc'`, `int_col = ''`, `datetime_col > 'x'`, \
                 `text_col >= 3.5`: the literal takes the column's PostgreSQL type and fails to \
                 convert (`invalid input syntax`, `operator does not exist: text >= double \
                 precision`); SQLite compares across classes",
        matches: |d| {
            shim_error(
                d,
                &[
                    "invalid input syntax for type bigint",
                    "invalid input syntax for type numeric",
                    "invalid input syntax for type double precision",
                    "operator does not exist: text ",
                    "operator does not exist: double precision ",
                ],
            )
        },
    },
    Known {
        name: "integer literal beyond 2^53 beside a REAL",
        reason: "fuzz_found.test: an integer literal beside an expression is untyped (it takes \
                 the other side's type, SQLite's affinity rule), so beside a REAL it is read as \
                 one and rounded (9007199254740993 = CAST(9007199254740993 AS REAL)); columns \
                 and computed integers compare with REALs exactly. Matched on the one such \
                 integer of the fuzzer's values",
        matches: |d| {
            matches!(d.aspect, "rows" | "norec" | "partition")
                && (d.sql.contains("9007199254740993") || d.detail.contains("9007199254740993"))
                && names_a_real(&d.sql)
        },
    },
    Known {
        name: "|| binds tighter than arithmetic",
        reason: "fuzz_found.test: SQLite's `||` binds tighter than `*`, `/`, `%`, `+`, `-` \
                 (`f * 2 || ''` is `f * (2 || '')`, a REAL); the parser's is looser, so the \
                 shim concatenates the product (a text). Matched on any row or invariant \
                 difference of a statement with `||` beside an arithmetic operator",
        matches: |d| {
            matches!(d.aspect, "rows" | "norec" | "partition")
                && d.sql.contains("||")
                && [" * ", " / ", " % ", " + ", " - "]
                    .iter()
                    .any(|o| d.sql.contains(o))
        },
    },
    Known {
        name: "quote of a REAL beyond 15 digits",
        reason: "docs/sql-support.md, Known differences, \"REALs as text\": quote() of a REAL \
                 whose 15 significant digits do not read back as it is the shortest text that \
                 does (-0.009000000000000001), SQLite's 20 digits (-9.00000000000000105471e-03). \
                 Matched on a row difference of a statement calling quote where SQLite's text \
                 has 20 digits and an exponent",
        matches: |d| {
            matches!(d.aspect, "rows" | "norec" | "partition")
                && d.sql.contains("quote(")
                && has_twenty_digit_real(&d.detail)
        },
    },
    Known {
        name: "aggregate of NULL",
        reason: "fuzz_found.test: `sum(NULL)`, `total(NULL)`, `avg(NULL)`: PostgreSQL's \
                 `function sum(unknown) is not unique`",
        matches: |d| shim_error(d, &["(unknown) is not unique"]),
    },
];

/// The known class `d` belongs to, if any.
pub fn classify(d: &Difference) -> Option<&'static Known> {
    KNOWN.iter().find(|k| (k.matches)(d))
}
