//! SQLite's SQL functions on PostgreSQL: each call is mapped to a
//! PostgreSQL built-in with the same meaning, or to a helper function
//! (`sqlite_*`, defined by `bootstrap`) where the meanings differ.
//!
//! A function SQLite has and this table lacks is an error naming it, never a
//! call left for PostgreSQL to guess at.

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments,
};

use super::construct::{
    as_text, binary_collated, call, call_with, cast, float8, int_literal, null, text_literal,
};
use super::literals::loosen_all;
use super::truth::truth;
use super::Error;

/// The SQLite name of a called function, lowercase.
pub fn function_name(f: &Function) -> String {
    f.name.to_string().trim_matches('"').to_ascii_lowercase()
}

/// The plain argument expressions of a call (`*` is `None`).
pub fn plain_args(f: &Function) -> Result<Vec<Option<Expr>>, Error> {
    match &f.args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::Subquery(_) => Err(Error::new(format!(
            "{}(subquery) is not supported",
            function_name(f)
        ))),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(Some(e.clone())),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(None),
                other => Err(Error::new(format!(
                    "function argument {other} is not supported"
                ))),
            })
            .collect(),
    }
}

fn distinct(f: &Function) -> Option<DuplicateTreatment> {
    match &f.args {
        FunctionArguments::List(list) => list.duplicate_treatment,
        _ => None,
    }
}

fn has_order_by(f: &Function) -> bool {
    matches!(&f.args, FunctionArguments::List(l) if l.clauses.iter().any(|c| matches!(c, FunctionArgumentClause::OrderBy(_))))
}

/// Helpers taking every argument as text (`sqlite_datetime(VARIADIC text[])` …).
const TEXT_VARIADIC_HELPERS: &[(&str, &str)] = &[
    ("datetime", "sqlite_datetime"),
    ("date", "sqlite_date"),
    ("time", "sqlite_time"),
    ("strftime", "sqlite_strftime"),
    ("julianday", "sqlite_julianday"),
    ("unixepoch", "sqlite_unixepoch"),
    ("json_extract", "sqlite_json_extract"),
    ("json_valid", "sqlite_json_valid"),
    ("json_type", "sqlite_json_type"),
    ("json_array_length", "sqlite_json_array_length"),
    ("json", "sqlite_json"),
    ("json_quote", "sqlite_json_quote"),
];

/// Helpers overloaded on PostgreSQL's types (the argument keeps its type).
const TYPED_HELPERS: &[(&str, &str, usize)] = &[
    ("typeof", "sqlite_typeof", 1),
    ("length", "sqlite_length", 1),
    ("hex", "sqlite_hex", 1),
    ("quote", "sqlite_quote", 1),
];

/// Translate one call. `args` are already translated.
pub fn translate_call(f: &Function) -> Result<Expr, Error> {
    let name = function_name(f);
    let args = plain_args(f)?;
    let exprs = || -> Result<Vec<Expr>, Error> {
        args.iter()
            .cloned()
            .map(|a| a.ok_or_else(|| Error::new(format!("{name}(*) is not a function SQLite has"))))
            .collect()
    };
    let arity = |range: std::ops::RangeInclusive<usize>| -> Result<(), Error> {
        if range.contains(&args.len()) {
            Ok(())
        } else {
            Err(Error::new(format!(
                "wrong number of arguments to function {name}()"
            )))
        }
    };
    if let Some((_, helper)) = TEXT_VARIADIC_HELPERS.iter().find(|(n, _)| *n == name) {
        return Ok(call(helper, exprs()?.into_iter().map(as_text).collect()));
    }
    if let Some((_, helper, n)) = TYPED_HELPERS.iter().find(|(s, _, _)| *s == name) {
        arity(*n..=*n)?;
        return Ok(call(helper, exprs()?));
    }
    match name.as_str() {
        // sum() of integers beyond 64 bits is SQLite's "integer overflow"
        // (PostgreSQL's sum(bigint) is an exact numeric).
        "sum" if f.over.is_some() || args.len() <= 1 => {
            Ok(call("sqlite_sum_checked", vec![aggregate(f, &name)?]))
        }
        "count" | "min" | "max" if f.over.is_some() || args.len() <= 1 => aggregate(f, &name),
        "avg" => {
            arity(1..=1)?;
            Ok(cast(keep_aggregate_parts(f, "avg", exprs()?), float8()))
        }
        "total" => {
            arity(1..=1)?;
            let sum = cast(keep_aggregate_parts(f, "sum", exprs()?), float8());
            Ok(call("coalesce", vec![sum, cast(int_literal(0), float8())]))
        }
        "group_concat" | "string_agg" => group_concat(f, exprs()?),
        "min" | "max" => Ok(scalar_extreme(&name, exprs()?)),
        "ifnull" => {
            arity(2..=2)?;
            Ok(call("coalesce", loosen_all(exprs()?)))
        }
        "coalesce" => {
            if args.len() < 2 {
                return Err(Error::new(format!(
                    "wrong number of arguments to function {name}()"
                )));
            }
            Ok(call("coalesce", loosen_all(exprs()?)))
        }
        "nullif" => {
            arity(2..=2)?;
            Ok(nullif(exprs()?))
        }
        "iif" => {
            arity(3..=3)?;
            let mut a = exprs()?;
            let otherwise = a.pop().unwrap();
            let then = a.pop().unwrap();
            let condition = a.pop().unwrap();
            Ok(super::expr::case_when(truth(condition), then, otherwise))
        }
        "instr" => {
            arity(2..=2)?;
            Ok(call(
                "strpos",
                exprs()?
                    .into_iter()
                    .map(|e| binary_collated(as_text(e)))
                    .collect(),
            ))
        }
        "substr" | "substring" => {
            arity(2..=3)?;
            let mut a = exprs()?;
            a[0] = as_text(a[0].clone());
            Ok(call("sqlite_substr", a))
        }
        "lower" | "upper" => {
            arity(1..=1)?;
            Ok(call(
                &name,
                vec![binary_collated(as_text(exprs()?.remove(0)))],
            ))
        }
        "trim" | "ltrim" | "rtrim" => {
            arity(1..=2)?;
            let pg = if name == "trim" {
                "btrim"
            } else {
                name.as_str()
            };
            Ok(call(
                pg,
                exprs()?
                    .into_iter()
                    .map(|e| binary_collated(as_text(e)))
                    .collect(),
            ))
        }
        "replace" => {
            arity(3..=3)?;
            Ok(call(
                "replace",
                exprs()?
                    .into_iter()
                    .map(|e| binary_collated(as_text(e)))
                    .collect(),
            ))
        }
        "abs" => {
            arity(1..=1)?;
            Ok(call("abs", exprs()?))
        }
        "round" => {
            arity(1..=2)?;
            let mut a = exprs()?;
            if a.len() == 1 {
                a.push(int_literal(0));
            }
            Ok(call("sqlite_round", a))
        }
        "random" => {
            arity(0..=0)?;
            Ok(call("sqlite_random", vec![]))
        }
        "glob" => {
            arity(2..=2)?;
            let mut a = exprs()?;
            let value = a.pop().unwrap();
            let pattern = a.pop().unwrap();
            Ok(call("sqlite_glob", vec![as_text(pattern), as_text(value)]))
        }
        "like" => {
            arity(2..=2)?;
            let mut a = exprs()?;
            let value = a.pop().unwrap();
            let pattern = a.pop().unwrap();
            Ok(super::expr::sqlite_like(value, pattern, None, false))
        }
        "unicode" => {
            arity(1..=1)?;
            // ascii('') is 0; SQLite's unicode('') is NULL.
            let text = as_text(exprs()?.remove(0));
            Ok(call(
                "ascii",
                vec![call("nullif", vec![text, text_literal("")])],
            ))
        }
        "char" => Ok(call(
            "concat",
            exprs()?
                .into_iter()
                .map(|e| {
                    call(
                        "chr",
                        vec![cast(e, sqlparser::ast::DataType::Integer(None))],
                    )
                })
                .collect(),
        )),
        "sign" => {
            arity(1..=1)?;
            Ok(call("sign", exprs()?))
        }
        "sqlite_version" => {
            arity(0..=0)?;
            Ok(text_literal(super::SQLITE_VERSION))
        }
        "likelihood" | "likely" | "unlikely" => Ok(exprs()?.remove(0)),
        "current_timestamp" => Ok(call("sqlite_datetime", vec![text_literal("now")])),
        "current_date" => Ok(call("sqlite_date", vec![text_literal("now")])),
        "current_time" => Ok(call("sqlite_time", vec![text_literal("now")])),
        "zeroblob" => {
            arity(1..=1)?;
            Ok(call("sqlite_zeroblob", exprs()?))
        }
        "randomblob" => {
            arity(1..=1)?;
            Ok(call("sqlite_randomblob", exprs()?))
        }
        "printf" | "format" => {
            if args.is_empty() {
                return Ok(null());
            }
            Ok(call(
                "sqlite_printf",
                exprs()?.into_iter().map(as_text).collect(),
            ))
        }
        "row_number" | "rank" | "dense_rank" | "ntile" | "lag" | "lead" | "first_value"
        | "last_value" | "nth_value" | "percent_rank" | "cume_dist" => {
            Ok(Expr::Function(f.clone()))
        }
        _ => Err(Error::new(format!("no such function: {name}"))),
    }
}

/// `count`, `sum`, `min`, `max` as aggregates keep their PostgreSQL form.
fn aggregate(f: &Function, name: &str) -> Result<Expr, Error> {
    let mut f = f.clone();
    f.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(name)]);
    Ok(Expr::Function(f))
}

/// A call of `pg_name` with `args`, keeping DISTINCT, FILTER and OVER.
fn keep_aggregate_parts(f: &Function, pg_name: &str, args: Vec<Expr>) -> Expr {
    let mut out = call_with(pg_name, args, distinct(f));
    if let Expr::Function(g) = &mut out {
        g.filter = f.filter.clone();
        g.over = f.over.clone();
    }
    out
}

/// `group_concat(x [, sep])` is `string_agg(x::text, sep)`.
fn group_concat(f: &Function, mut args: Vec<Expr>) -> Result<Expr, Error> {
    if args.is_empty() || args.len() > 2 {
        return Err(Error::new(
            "wrong number of arguments to function group_concat()",
        ));
    }
    if has_order_by(f) {
        return Err(Error::new("group_concat(… ORDER BY …) is not supported"));
    }
    if distinct(f) == Some(DuplicateTreatment::Distinct) {
        if args.len() == 2 {
            return Err(Error::new(
                "DISTINCT aggregates must have exactly one argument",
            ));
        }
        // SQLite keeps the order values are first seen in; PostgreSQL's
        // string_agg(DISTINCT …) sorts them.
        let mut collected =
            keep_aggregate_parts(f, "array_agg", vec![as_text(args.pop().unwrap())]);
        if let Expr::Function(g) = &mut collected {
            if let FunctionArguments::List(list) = &mut g.args {
                list.duplicate_treatment = None;
            }
        }
        return Ok(call("sqlite_distinct_concat", vec![collected]));
    }
    let separator = if args.len() == 2 {
        as_text(args.pop().unwrap())
    } else {
        text_literal(",")
    };
    let value = as_text(args.pop().unwrap());
    Ok(keep_aggregate_parts(
        f,
        "string_agg",
        vec![value, separator],
    ))
}

/// `nullif(a, b)` is `a` (of `a`'s own type, as in SQLite) unless it equals
/// `b`; PostgreSQL's `nullif` gives both the common type (`nullif(53, 2.5)`
/// would be a REAL 53.0, and divide as one).
fn nullif(args: Vec<Expr>) -> Expr {
    let value = args[0].clone();
    let mut compared = loosen_all(args).into_iter();
    let (left, right) = (
        compared.next().expect("two arguments"),
        compared.next().expect("two arguments"),
    );
    let equal = Expr::BinaryOp {
        left: Box::new(left),
        op: sqlparser::ast::BinaryOperator::Eq,
        right: Box::new(right),
    };
    super::expr::case_when(equal, null(), value)
}

/// Scalar `min(a, b, …)` / `max(a, b, …)`: NULL if any argument is NULL
/// (unlike `LEAST`/`GREATEST`, which skip NULLs).
fn scalar_extreme(name: &str, args: Vec<Expr>) -> Expr {
    let args = loosen_all(args);
    let any_null = args
        .iter()
        .map(|a| Expr::IsNull(Box::new(a.clone())))
        .reduce(|l, r| Expr::BinaryOp {
            left: Box::new(l),
            op: sqlparser::ast::BinaryOperator::Or,
            right: Box::new(r),
        })
        .expect("two or more arguments");
    let pg = if name == "min" { "least" } else { "greatest" };
    super::expr::case_when(any_null, null(), call(pg, args))
}
