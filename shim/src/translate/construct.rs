//! Small constructors for the syntax-tree nodes the rewrites emit (function
//! calls, casts, literals, names), so rewrite code reads as what it builds.

use sqlparser::ast::{
    CastKind, DataType, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart, OrderBy, Query,
    SetExpr, Value,
};

/// A name printed double-quoted (immune to case folding and reserved words).
pub fn ident(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// A one-part object name, double-quoted.
pub fn object_name(name: &str) -> ObjectName {
    ObjectName(vec![ObjectNamePart::Identifier(ident(name))])
}

/// A column reference `"name"`.
pub fn column(name: &str) -> Expr {
    Expr::Identifier(ident(name))
}

/// A qualified column reference `"table"."name"`.
pub fn qualified_column(table: &str, name: &str) -> Expr {
    Expr::CompoundIdentifier(vec![ident(table), ident(name)])
}

/// A call of `name(args…)`; the name is printed bare (helper functions and
/// PostgreSQL built-ins are lowercase).
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    call_with(name, args, None)
}

/// `name(DISTINCT args…)` when `distinct`.
pub fn call_with(name: &str, args: Vec<Expr>, duplicate: Option<DuplicateTreatment>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: duplicate,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        within_group: vec![],
        filter: None,
        null_treatment: None,
        over: None,
    })
}

/// `expr::data_type`: PostgreSQL's cast, which SQLite does not have, so a
/// cast the translation adds is never taken for a client's `CAST(…)` (those
/// get SQLite's conversion rules, see `expr`).
pub fn cast(expr: Expr, data_type: DataType) -> Expr {
    let inner = match expr {
        e @ (Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Function(_)
        | Expr::Nested(_)) => e,
        Expr::Value(v) if !matches!(v.value, sqlparser::ast::Value::Number(ref n, _) if n.starts_with('-')) => {
            Expr::Value(v)
        }
        other => Expr::Nested(Box::new(other)),
    };
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(inner),
        data_type,
        format: None,
    }
}

/// `expr` as text, as SQLite converts it, unless it is text by its form
/// already.
pub fn as_text(expr: Expr) -> Expr {
    if super::kinds::is_text(&expr) {
        expr
    } else {
        to_text(expr)
    }
}

/// `expr` converted to text as SQLite converts it (`CAST(… AS TEXT)`,
/// `||`): by the translator where the form tells the type (an integer
/// literal, NULL or a parameter: `::text`; a REAL literal: SQLite's text of
/// it, `'2.0'`), else `sqlite_text(expr)`, overloaded per PostgreSQL type
/// (a REAL prints as SQLite's `%!.15g`, a boolean as `0`/`1`).
pub fn to_text(expr: Expr) -> Expr {
    match &expr {
        Expr::Value(v)
            if matches!(
                v.value,
                Value::Number(..) | Value::Null | Value::Placeholder(_)
            ) =>
        {
            cast(expr, DataType::Text)
        }
        Expr::Cast {
            expr: inner,
            data_type: DataType::DoublePrecision,
            ..
        } => match inner.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => match n.parse::<f64>() {
                    Ok(x) => cast(text_literal(&real_text(x)), DataType::Text),
                    Err(_) => call("sqlite_text", vec![expr]),
                },
                _ => call("sqlite_text", vec![expr]),
            },
            _ => call("sqlite_text", vec![expr]),
        },
        _ => call("sqlite_text", vec![expr]),
    }
}

/// A REAL as SQLite prints it (`%!.15g`): 15 significant digits, always
/// a point or an exponent: `1.0`, `10000000000.0`, `1.0e+15`, `2.5e-07`
/// (the same as the bootstrap's `sqlite_real_text`).
pub fn real_text(x: f64) -> String {
    if x.is_nan() {
        return String::new();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    if x == 0.0 {
        return "0.0".to_string();
    }
    let scientific = format!("{x:.14e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("an exponent in {:e}");
    let exponent: i32 = exponent.parse().expect("a decimal exponent");
    let sign = if x < 0.0 { "-" } else { "" };
    if (-4..15).contains(&exponent) {
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let before = exponent + 1;
        let (int, frac) = if before <= 0 {
            (
                "0".to_string(),
                "0".repeat(before.unsigned_abs() as usize) + &digits,
            )
        } else {
            let (i, f) = digits.split_at(before as usize);
            (i.to_string(), f.to_string())
        };
        let frac = frac.trim_end_matches('0');
        let frac = if frac.is_empty() { "0" } else { frac };
        format!("{sign}{int}.{frac}")
    } else {
        let m = mantissa.trim_end_matches('0');
        let m = if m.ends_with('.') {
            format!("{m}0")
        } else {
            m.to_string()
        };
        let e_sign = if exponent < 0 { '-' } else { '+' };
        format!("{m}e{e_sign}{:02}", exponent.unsigned_abs())
    }
}

/// `expr COLLATE "C"`: byte-wise, as SQLite's BINARY, and allowed where
/// PostgreSQL refuses non-deterministic collations (substring search).
pub fn binary_collated(expr: Expr) -> Expr {
    Expr::Collate {
        expr: Box::new(expr),
        collation: object_name("C"),
    }
}

/// A text literal.
pub fn text_literal(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

/// An integer literal.
pub fn int_literal(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

/// `NULL`.
pub fn null() -> Expr {
    Expr::value(Value::Null)
}

/// A boolean literal.
pub fn bool_literal(b: bool) -> Expr {
    Expr::value(Value::Boolean(b))
}

/// PostgreSQL's `double precision`.
pub fn float8() -> DataType {
    DataType::DoublePrecision
}

/// `"name"` for PostgreSQL text we write ourselves.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` for PostgreSQL text we write ourselves.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `(body ORDER BY …)`: a query body in its own parentheses.
pub fn parenthesized(body: SetExpr, order_by: Option<OrderBy>) -> SetExpr {
    SetExpr::Query(Box::new(Query {
        with: None,
        body: Box::new(body),
        order_by,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_casts_print_as_postgres() {
        let e = call(
            "sqlite_glob",
            vec![text_literal("a*"), as_text(column("Title"))],
        );
        assert_eq!(e.to_string(), "sqlite_glob('a*', sqlite_text(\"Title\"))");
        let sum = Expr::BinaryOp {
            left: Box::new(column("a")),
            op: sqlparser::ast::BinaryOperator::Plus,
            right: Box::new(column("b")),
        };
        assert_eq!(
            cast(sum, DataType::Text).to_string(),
            "(\"a\" + \"b\")::TEXT"
        );
        assert_eq!(
            binary_collated(column("x")).to_string(),
            "\"x\" COLLATE \"C\""
        );
    }

    #[test]
    fn reals_print_as_sqlite_prints_them() {
        for (x, text) in [
            (1.0, "1.0"),
            (1e10, "10000000000.0"),
            (1e15, "1.0e+15"),
            (1e20, "1.0e+20"),
            (1e100, "1.0e+100"),
            (1.0 / 3.0, "0.333333333333333"),
            (0.1, "0.1"),
            (1e-5, "1.0e-05"),
            (0.0001, "0.0001"),
            (-2.5e-7, "-2.5e-07"),
            (-1.5, "-1.5"),
            (123456789012345.0, "123456789012345.0"),
            (999999999999999.9, "1.0e+15"),
            (9007199254740993.0, "9.00719925474099e+15"),
            (-0.0, "0.0"),
            (f64::INFINITY, "Inf"),
        ] {
            assert_eq!(real_text(x), text, "{x}");
        }
        let literal = cast(Expr::value(Value::Number("2.0".into(), false)), float8());
        assert_eq!(to_text(literal).to_string(), "'2.0'::TEXT");
        assert_eq!(
            to_text(Expr::value(Value::Number("5".into(), false))).to_string(),
            "5::TEXT"
        );
    }
}
