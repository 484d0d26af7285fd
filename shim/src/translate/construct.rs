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

/// `CAST(expr AS text)`, unless `expr` is text by its form already.
pub fn as_text(expr: Expr) -> Expr {
    if super::kinds::is_text(&expr) {
        expr
    } else {
        cast(expr, DataType::Text)
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
        assert_eq!(e.to_string(), "sqlite_glob('a*', \"Title\"::TEXT)");
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
}
