//! The printed PostgreSQL means what the translated tree means: every
//! translation is printed, parsed back with PostgreSQL's grammar, and the
//! two trees compared with every expression fully parenthesized. A printed
//! operator that reads differently (`- -5` printed `--5`, the start of a
//! comment; a rewritten operand lacking the parentheses its precedence
//! needs) makes the trees differ.

use std::ops::ControlFlow;
use std::path::PathBuf;

use sqlparser::ast::{Expr, Statement, Value, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{params, plan, Catalog, PlanAction, Sql};

/// A schema with no tables: queries translate as they would over unknown
/// tables; what needs a table's facts is refused, and skipped here.
struct Empty;

impl Catalog for Empty {
    fn schema(&self) -> &str {
        "roundtrip"
    }
    fn query(&mut self, _sql: &str, _params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        Ok(vec![])
    }
}

/// Nested expressions removed, then every compound expression wrapped in
/// one: the tree's shape, printed.
struct Canonical;

fn atomic(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) | Expr::Nested(_)
    )
}

impl VisitorMut for Canonical {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        while let Expr::Nested(inner) = expr {
            let inner = std::mem::replace(&mut **inner, Expr::value(Value::Null));
            *expr = inner;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if !atomic(expr) {
            let inner = std::mem::replace(expr, Expr::value(Value::Null));
            *expr = Expr::Nested(Box::new(inner));
        }
        ControlFlow::Continue(())
    }
}

fn canonical(mut statement: Statement) -> String {
    let _ = statement.visit(&mut Canonical);
    statement.to_string()
}

/// Print `statement`, parse it back as PostgreSQL, and compare shapes.
fn check(sqlite: &str, statement: Statement) -> Result<(), String> {
    let printed = statement.to_string();
    let parsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(super::dialect::PARSER_RECURSION_LIMIT)
        .try_with_sql(&printed)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| format!("{sqlite}\n  printed {printed}\n  does not parse: {e}"))?;
    let [back] = <[Statement; 1]>::try_from(parsed).map_err(|v| {
        format!(
            "{sqlite}\n  printed {printed}\n  reads as {} statements",
            v.len()
        )
    })?;
    let (want, got) = (canonical(statement), canonical(back));
    if want != got {
        return Err(format!(
            "{sqlite}\n  printed {printed}\n  tree    {want}\n  read as {got}"
        ));
    }
    Ok(())
}

/// Statements of the differential suite (`tests/sql/*.test`: blocks
/// separated by blank lines, `#` and `-- ` lines are not SQL).
fn suite_statements() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for block in text.split("\n\n") {
            let sql: Vec<&str> = block
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    !t.starts_with('#') && !t.starts_with("-- ")
                })
                .collect();
            let sql = sql.join("\n");
            if !sql.trim().is_empty() {
                out.push(sql.trim().to_string());
            }
        }
    }
    out
}

/// Translate and check each statement; how many were checked, and every
/// difference.
fn round_trip(statements: &[String]) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for sql in statements {
        let Ok((plan, _)) = plan(sql, &mut Empty) else {
            continue;
        };
        let PlanAction::Run(outputs) = plan.action else {
            continue;
        };
        for output in outputs {
            if let Sql::Tree(mut statement) = output.sql {
                params::to_postgres(&mut statement);
                checked += 1;
                if let Err(e) = check(sql, statement) {
                    failures.push(e);
                }
            }
        }
    }
    (checked, failures)
}

#[test]
fn unary_operators_print_unambiguously() {
    let statements: Vec<String> = [
        "SELECT - -5",
        "SELECT - - - 5, -(-5), - -a, -+a, +-a, - +5, - - 'x' FROM t",
        "SELECT CAST(- - a AS INTEGER), CAST(- -5 AS REAL) FROM t",
        "SELECT - -5 AS x, 1 FROM t WHERE a = - -1 AND b = 2",
        "SELECT a - -1, a- -1, a - - -1, 5 - -a, -a - -b FROM t",
        "SELECT -0x10, - -0x7FFFFFFFFFFFFFFF, ~ -1, - ~1, NOT - -a FROM t",
        "SELECT -(a + b) * 2, -(a / b), - (a || b), -a * -b, -sum(a), - - count(*) FROM t",
        "SELECT -CASE WHEN a THEN 1 ELSE -2 END, - -(SELECT -1) FROM t",
        "SELECT - -? , - - :x",
        "SELECT a FROM t WHERE -a < - -b ORDER BY - -a DESC, -b",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (checked, failures) = round_trip(&statements);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, statements.len(), "every statement translates");
}

#[test]
fn every_suite_statement_prints_as_its_tree() {
    let statements = suite_statements();
    let (checked, failures) = round_trip(&statements);
    eprintln!("{checked} of {} statements checked", statements.len());
    assert!(
        failures.is_empty(),
        "{} of {checked}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked > statements.len() / 2,
        "{checked} of {} statements checked",
        statements.len()
    );
}

#[test]
fn a_tree_printed_without_its_parentheses_is_caught() {
    let parsed = |sql: &str| {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    };
    assert!(check("", parsed("SELECT (a + b) * c, - (-5)")).is_ok());
    // The tree of `(a + b) * c` without its Nested node prints `a + b * c`.
    let mut lost = parsed("SELECT (a + b) * c");
    struct Strip;
    impl VisitorMut for Strip {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Nested(inner) = expr {
                *expr = std::mem::replace(&mut **inner, Expr::value(Value::Null));
            }
            ControlFlow::Continue(())
        }
    }
    let _ = lost.visit(&mut Strip);
    let err = check("", lost).unwrap_err();
    assert!(err.contains("read as"), "{err}");
}

/// SQLite's deepest expressions: a chain of 1,000 `OR`s (its expression
/// depth limit), and parentheses, `NOT`, unary minus, function calls,
/// `CASE` and subqueries as deep as its parser takes them (93, 94, 94, 31,
/// 18, 18). Each translates on a thread with Plex's 544 KiB of stack,
/// and its printed text reads back as its tree.
#[test]
fn sqlite_deepest_expressions_translate_on_a_small_stack() {
    let chain: Vec<String> = (0..1000).map(|i| format!("metadata_type = {i}")).collect();
    let statements = vec![
        format!("SELECT id FROM t WHERE {}", chain.join(" OR ")),
        format!("SELECT {}", vec!["a"; 1000].join(" + ")),
        format!("SELECT {}1{}", "(".repeat(93), ")".repeat(93)),
        format!("SELECT id FROM t WHERE {}a", "NOT ".repeat(94)),
        format!("SELECT {}a FROM t", "- ".repeat(94)),
        format!("SELECT {}-1{}", "abs(".repeat(31), ")".repeat(31)),
        format!(
            "SELECT {}1{}",
            "CASE WHEN a THEN ".repeat(18),
            " END".repeat(18)
        ),
        format!("SELECT {}1{}", "(SELECT ".repeat(18), ")".repeat(18)),
    ];
    let worker = std::thread::Builder::new()
        .stack_size(544 * 1024)
        .spawn(move || {
            let mut out = Vec::new();
            for sql in &statements {
                let translated = super::translate_with_room(sql, &mut Empty);
                let checked = stacker::maybe_grow(512 * 1024, 16 * 1024 * 1024, || {
                    round_trip(std::slice::from_ref(sql))
                });
                out.push((
                    sql.chars().take(60).collect::<String>(),
                    translated.is_ok(),
                    checked,
                ));
            }
            out
        })
        .unwrap();
    for (sql, translated, (checked, failures)) in worker.join().unwrap() {
        assert!(translated, "{sql}… does not translate");
        assert_eq!(checked, 1, "{sql}…");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
