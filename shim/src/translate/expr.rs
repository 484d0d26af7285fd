//! Expression rewrites: SQLite's operators, literals, casts and
//! collations as PostgreSQL expressions with the same meaning.
//!
//! [`rewrite_expressions`] walks a statement bottom-up (children first) and
//! rewrites every expression in place:
//!
//! | SQLite | PostgreSQL |
//! |--------|------------|
//! | `a IS b`, `a IS NOT b` | `IS NOT DISTINCT FROM`, `IS DISTINCT FROM` |
//! | `a \|\| b` | `CAST(a AS text) \|\| CAST(b AS text)` (NULL stays NULL) |
//! | `a / b`, `a % b` | `a / NULLIF(b, 0)`: division by zero is NULL |
//! | `a LIKE p [ESCAPE e]` | `CAST(a AS text) COLLATE "C" ILIKE p ESCAPE e` (ASCII-only case folding, no default escape, a `COLLATE` on either side dropped) |
//! | `a GLOB p` | `sqlite_glob(p, a)` |
//! | `x IN ()` | `false` (`NOT IN ()` is `true`) |
//! | `a -> p`, `a ->> p` | `sqlite_json_arrow(a, p)`, `sqlite_json_extract_value(a, p)` |
//! | `CAST(x AS INTEGER/REAL/NUMERIC/BLOB)` | `sqlite_cast_*` (SQLite's lenient conversion) |
//! | `x COLLATE NOCASE` | see `collation` |
//! | conditions (`WHERE`, `AND`, `NOT`, `CASE WHEN`) | see `truth` |
//!
//! Function calls go through `functions`, literals through `literals`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, DataType, Expr, InTarget, SelectItem, Statement,
    TrimWhereField, UnaryOperator, Value, VisitMut, VisitorMut,
};

use super::affinity::{affinity, Affinity};
use super::collation::postgres_collation;
use super::construct::{
    as_text, binary_collated, bool_literal, call, cast, float8, object_name, text_literal, to_text,
};
use super::dialect::Source;
use super::functions::{function_name, plain_args, translate_call};
use super::kinds::{is_boolean, is_text};
use super::literals::{integer_literal_text, is_literal, loosen, loosen_all, translate_value};
use super::names::is_client_call;
use super::truth::{make_truth, truth};
use super::Error;

/// Rewrite every expression of `statement` (or of any visitable node).
pub fn rewrite_expressions<V: VisitMut>(node: &mut V, source: &Source) -> Result<(), Error> {
    let mut r = Rewriter {
        source,
        error: None,
    };
    let _ = node.visit(&mut r);
    r.error.map_or(Ok(()), Err)
}

/// Rewrite one expression tree.
pub fn rewrite_expr(expr: &mut Expr, source: &Source) -> Result<(), Error> {
    let mut r = Rewriter {
        source,
        error: None,
    };
    let _ = expr.visit(&mut r);
    r.error.map_or(Ok(()), Err)
}

struct Rewriter<'s, 'a> {
    source: &'s Source<'a>,
    error: Option<Error>,
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match rewrite_one(expr, self.source) {
            Ok(Some(new)) => {
                *expr = without_column_collation(new);
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    fn post_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        if let Statement::Query(q) = statement {
            let _ = q;
        }
        ControlFlow::Continue(())
    }
}

/// The rewrite of one node whose children are already rewritten.
fn rewrite_one(expr: &mut Expr, source: &Source) -> Result<Option<Expr>, Error> {
    Ok(match expr {
        Expr::Value(v) => {
            let original = source.slice(v.span.start, v.span.end);
            translate_value(&v.value, original)?
        }
        Expr::BinaryOp { left, op, right } => binary(take(left), op.clone(), take(right))?,
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        } => {
            make_truth(inner);
            None
        }
        // SQLite's unary `+` does nothing, to any class (PostgreSQL has
        // no `+ text`); of a column, the result is an expression (no
        // declared type).
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr: inner,
        } => Some(if is_literal(inner) || is_untyped(inner) {
            Expr::Nested(Box::new(take(inner)))
        } else {
            call("sqlite_plus", vec![take(inner)])
        }),
        // `-` of a text reads the text as a number first (`-'5'` is -5,
        // `-'x'` is 0).
        // A condition used as a number (`- NOT a`) is 0 or 1.
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::BitwiseNot,
            expr: inner,
        } if is_boolean(inner) => {
            **inner = cast(take(inner), DataType::Integer(None));
            None
        }
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } if is_untyped(inner) || is_text(inner) => {
            let is_placeholder = matches!(inner.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
            let operand = if is_placeholder {
                numeric_if_placeholder(take(inner))
            } else {
                call("sqlite_cast_numeric", vec![take(inner)])
            };
            Some(Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(operand),
            })
        }
        Expr::Like {
            negated,
            expr: value,
            pattern,
            escape_char,
            ..
        } => Some(sqlite_like(
            take(value),
            take(pattern),
            escape_char.take().map(|e| *e),
            *negated,
        )),
        Expr::In {
            target: InTarget::List(list),
            negated,
            ..
        } if list.is_empty() => Some(bool_literal(*negated)),
        Expr::In {
            expr: left,
            target: InTarget::List(list),
            ..
        } => {
            if !is_literal(left) && !is_untyped(left) {
                let items = std::mem::take(list);
                *list = items.into_iter().map(loosen).collect();
            }
            None
        }
        // A number beside a column of a subquery takes the column's
        // affinity (`5 IN (SELECT text_col)` compares '5'), as SQLite's
        // `=`: untyped, PostgreSQL reads it as the column's type.
        Expr::In {
            expr: left,
            target: InTarget::Subquery(query),
            ..
        } if integer_literal_text(left).is_some() && selects_one_column(query) => {
            **left = loosen(take(left));
            None
        }
        Expr::In {
            expr: left,
            target: InTarget::Subquery(query),
            ..
        } if is_non_numeric_text(left) => {
            compare_as_text(query);
            None
        }
        // `x IN t` is SQLite's shorthand for `x IN (SELECT * FROM t)`.
        Expr::In {
            target:
                InTarget::Table {
                    name,
                    args: Some(_),
                },
            ..
        } => {
            return Err(Error::new(format!(
                "IN {name}(…) (a table-valued function) is not supported"
            )));
        }
        Expr::In { target, .. } if matches!(target, InTarget::Table { .. }) => {
            let text = match &*target {
                InTarget::Table { name, .. } => format!("SELECT * FROM {name}"),
                _ => String::new(),
            };
            let Statement::Query(query) = Source::new(&text)?.parse()? else {
                return Err(Error::new(format!("{text} is not a query")));
            };
            *target = InTarget::Subquery(query);
            None
        }
        Expr::Between {
            expr: value,
            low,
            high,
            ..
        } => {
            if !is_literal(value) {
                **low = loosen(take(low));
                **high = loosen(take(high));
            }
            None
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            case(operand.is_some(), conditions, else_result);
            None
        }
        Expr::Function(f) if is_client_call(f) => {
            if matches!(
                function_name(f).as_str(),
                "sum" | "avg" | "total" | "min" | "max"
            ) {
                numeric_args(f);
            }
            Some(translate_call(f)?)
        }
        Expr::Cast {
            kind: CastKind::Cast,
            expr: value,
            data_type,
            ..
        } => Some(sqlite_cast(take(value), data_type)?),
        Expr::Collate {
            expr: value,
            collation,
        } => {
            let pg = postgres_collation(&collation.to_string())?;
            Some(Expr::Collate {
                expr: Box::new(take(value)),
                collation: object_name(pg),
            })
        }
        Expr::Trim {
            expr: value,
            trim_where,
            trim_what,
            trim_characters,
        } => {
            let pg = match trim_where {
                None | Some(TrimWhereField::Both) => "btrim",
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
            };
            let mut args = vec![binary_collated(as_text(take(value)))];
            if let Some(what) = trim_what.take() {
                args.push(as_text(*what));
            }
            if let Some(chars) = trim_characters.take() {
                args.extend(chars.into_iter().map(as_text));
            }
            Some(call(pg, args))
        }
        Expr::Substring {
            expr: value,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![as_text(take(value))];
            args.extend(substring_from.take().map(|e| *e));
            args.extend(substring_for.take().map(|e| *e));
            Some(call("sqlite_substr", args))
        }
        Expr::ILike { .. } | Expr::SimilarTo { .. } | Expr::RLike { .. } => {
            return Err(Error::new(format!("operator not in SQLite: {expr}")));
        }
        _ => None,
    })
}

/// The collation the translation gives a computed text: PostgreSQL's
/// default, not a column's.
const COMPUTED_TEXT_COLLATION: &str = "default";

/// A computed text over columns (`nc || 'x'`, `lower(nc)`, a `CASE` of
/// texts) without the collation of its columns. PostgreSQL gives an
/// expression the implicit collation of the columns in it, so one over a
/// NOCASE column compares, sorts and groups ignoring case; in SQLite only
/// the column itself (or a `CAST` of it) carries its collation, and an
/// expression has BINARY unless an explicit `COLLATE` is in it. Left alone
/// when there is an explicit `COLLATE` inside (it propagates in both) or
/// no column.
fn without_column_collation(e: Expr) -> Expr {
    let computed = matches!(
        &e,
        Expr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } | Expr::Case { .. }
    ) || matches!(&e, Expr::Function(f) if !matches!(function_name(f).as_str(), "sqlite_text" | "sqlite_plus"));
    if !computed || !is_text(&e) || !names_a_column_without_collate(&e) {
        return e;
    }
    // `a || b COLLATE x` would collate `b` alone: parenthesised.
    let e = match e {
        e @ Expr::BinaryOp { .. } => Expr::Nested(Box::new(e)),
        e => e,
    };
    Expr::Collate {
        expr: Box::new(e),
        collation: object_name(COMPUTED_TEXT_COLLATION),
    }
}

/// Whether `e` names a column and has no `COLLATE`.
fn names_a_column_without_collate(e: &Expr) -> bool {
    let (column, collate) = scan_columns_and_collations(e);
    column && !collate
}

/// Whether `e` has an explicit `COLLATE`.
fn has_collate(e: &Expr) -> bool {
    scan_columns_and_collations(e).1
}

/// Whether `e` names a column, and whether it has a `COLLATE`.
fn scan_columns_and_collations(e: &Expr) -> (bool, bool) {
    use sqlparser::ast::Visit;
    struct Scan {
        column: bool,
        collate: bool,
    }
    impl sqlparser::ast::Visitor for Scan {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => self.column = true,
                Expr::Collate { .. } => self.collate = true,
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut scan = Scan {
        column: false,
        collate: false,
    };
    let _ = e.visit(&mut scan);
    (scan.column, scan.collate)
}

/// A comparison's operand without the translation's computed-text
/// collation when the other operand has an explicit `COLLATE` (SQLite
/// uses that one; PostgreSQL would refuse two explicit collations).
fn yield_collation(side: Expr, other: &Expr) -> Expr {
    match side {
        Expr::Collate { expr, collation }
            if collation.to_string() == format!("\"{COMPUTED_TEXT_COLLATION}\"")
                && has_collate(other) =>
        {
            match *expr {
                Expr::Nested(inner) => *inner,
                inner => inner,
            }
        }
        other_side => other_side,
    }
}

fn take(e: &mut Box<Expr>) -> Expr {
    std::mem::replace(&mut **e, Expr::value(Value::Null))
}

fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Result<Option<Expr>, Error> {
    let op_expr = |l: Expr, op: BinaryOperator, r: Expr| Expr::BinaryOp {
        left: Box::new(l),
        op,
        right: Box::new(r),
    };
    let arithmetic = matches!(
        op,
        BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
            | BinaryOperator::Modulo
            | BinaryOperator::BitwiseAnd
            | BinaryOperator::BitwiseOr
            | BinaryOperator::PGBitwiseShiftLeft
            | BinaryOperator::PGBitwiseShiftRight
    );
    // Conditions used as numbers (`(a > 1) + 1`) are 0 or 1.
    let (left, right) = if arithmetic {
        (integer_if_boolean(left), integer_if_boolean(right))
    } else {
        (left, right)
    };
    Ok(Some(match op {
        BinaryOperator::Eq
        | BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => {
            let (l, r) = loosen_pair(left, right);
            let (l, r) = coerce_text_side(l, r);
            let l = yield_collation(l, &r);
            let r = yield_collation(r, &l);
            op_expr(l, op, r)
        }
        BinaryOperator::Is => {
            let (l, r) = loosen_pair(left, right);
            Expr::IsNotDistinctFrom(Box::new(l), Box::new(r))
        }
        BinaryOperator::IsNot => {
            let (l, r) = loosen_pair(left, right);
            Expr::IsDistinctFrom(Box::new(l), Box::new(r))
        }
        BinaryOperator::StringConcat => op_expr(as_text(left), op, as_text(right)),
        BinaryOperator::Divide | BinaryOperator::Modulo => {
            let helper = if op == BinaryOperator::Divide {
                "sqlite_div"
            } else {
                "sqlite_mod"
            };
            let (l, r) = if is_untyped(&left) && is_untyped(&right) {
                (numeric_if_placeholder(left), numeric_if_placeholder(right))
            } else {
                widen_constants(left, right)
            };
            call(helper, vec![l, r])
        }
        BinaryOperator::PGBitwiseShiftLeft | BinaryOperator::PGBitwiseShiftRight => {
            let helper = if op == BinaryOperator::PGBitwiseShiftLeft {
                "sqlite_shl"
            } else {
                "sqlite_shr"
            };
            call(
                helper,
                vec![
                    cast(left, DataType::BigInt(None)),
                    cast(right, DataType::BigInt(None)),
                ],
            )
        }
        BinaryOperator::Glob => call("sqlite_glob", vec![as_text(right), as_text(left)]),
        BinaryOperator::And | BinaryOperator::Or => op_expr(truth(left), op, truth(right)),
        BinaryOperator::Arrow => call("sqlite_json_arrow", vec![as_text(left), as_text(right)]),
        BinaryOperator::LongArrow => call(
            "sqlite_json_extract_value",
            vec![as_text(left), as_text(right)],
        ),
        BinaryOperator::Match => {
            return Err(Error::new(
                "unable to use function MATCH in the requested context",
            ));
        }
        BinaryOperator::Regexp => return Err(Error::new("no such function: REGEXP")),
        BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply
            if is_untyped(&left) && is_untyped(&right) =>
        {
            op_expr(
                numeric_if_placeholder(left),
                op,
                numeric_if_placeholder(right),
            )
        }
        BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply
            if overflowed_constant(&left, &op, &right).is_some() =>
        {
            overflowed_constant(&left, &op, &right).unwrap_or(left)
        }
        BinaryOperator::Plus
        | BinaryOperator::Minus
        | BinaryOperator::Multiply
        | BinaryOperator::BitwiseAnd
        | BinaryOperator::BitwiseOr => {
            let (l, r) = widen_constants(left, right);
            op_expr(l, op, r)
        }
        BinaryOperator::AtAt => op_expr(left, op, right),
        other => return Err(Error::new(format!("operator {other} is not supported"))),
    }))
}

/// A boolean (a comparison, `NOT`, `IN` …) as SQLite's integer 0 or 1
/// (PostgreSQL casts a boolean to `integer`, not to `bigint`).
fn integer_if_boolean(e: Expr) -> Expr {
    if is_boolean(&e) {
        cast(e, DataType::Integer(None))
    } else {
        e
    }
}

/// Conditions given to a numeric function (`sum(a > 1)`, SQLite's way to
/// count) as 0 or 1.
fn numeric_args(f: &mut sqlparser::ast::Function) {
    if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
        for a in &mut list.args {
            if let sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(x)) =
                a
            {
                let inner = std::mem::replace(x, Expr::value(Value::Null));
                *x = integer_if_boolean(inner);
            }
        }
    }
}

/// Arithmetic between integer constants in 64 bits: SQLite's integers are
/// 64-bit, PostgreSQL's literals 32-bit (`79*91*73*67*94` would overflow).
/// Beside anything else a literal keeps its type (PostgreSQL widens it to
/// the other side's, and a recursive CTE's `depth + 1` must keep the type
/// its first term gave `depth`).
fn widen_constants(left: Expr, right: Expr) -> (Expr, Expr) {
    if is_integer_constant(&left) && is_integer_constant(&right) {
        (widen(left), widen(right))
    } else {
        (left, right)
    }
}

/// Arithmetic of integer constants that overflows 64 bits: the REAL
/// SQLite turns it into (both operands as doubles), as a literal; PostgreSQL's
/// `bigint` arithmetic would fail. `None` when it fits (or is not constant).
fn overflowed_constant(left: &Expr, op: &BinaryOperator, right: &Expr) -> Option<Expr> {
    let (l, r) = (constant_value(left)?, constant_value(right)?);
    if exact_arithmetic(l, op, r).is_some() {
        return None;
    }
    let (lf, rf) = (l as f64, r as f64);
    let real = match op {
        BinaryOperator::Plus => lf + rf,
        BinaryOperator::Minus => lf - rf,
        BinaryOperator::Multiply => lf * rf,
        _ => return None,
    };
    let magnitude = cast(
        Expr::value(Value::Number(format!("{:?}", real.abs()), false)),
        float8(),
    );
    Some(if real < 0.0 {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(magnitude),
        }
    } else {
        magnitude
    })
}

/// `+`, `-`, `*` of two 64-bit integers, `None` on overflow.
fn exact_arithmetic(l: i64, op: &BinaryOperator, r: i64) -> Option<i64> {
    match op {
        BinaryOperator::Plus => l.checked_add(r),
        BinaryOperator::Minus => l.checked_sub(r),
        BinaryOperator::Multiply => l.checked_mul(r),
        _ => None,
    }
}

/// The value of an integer literal or of (translated) `+ - *` of them.
fn constant_value(e: &Expr) -> Option<i64> {
    match e {
        Expr::Cast {
            expr,
            data_type: DataType::BigInt(None),
            ..
        }
        | Expr::Nested(expr) => constant_value(expr),
        Expr::BinaryOp { left, op, right } => {
            exact_arithmetic(constant_value(left)?, op, constant_value(right)?)
        }
        _ => integer_literal_text(e)?.parse().ok(),
    }
}

/// An integer literal, or (translated) arithmetic of integer literals.
fn is_integer_constant(e: &Expr) -> bool {
    match e {
        Expr::Cast {
            expr,
            data_type: DataType::BigInt(None),
            ..
        }
        | Expr::Nested(expr) => is_integer_constant(expr),
        Expr::BinaryOp { left, right, .. } => {
            is_integer_constant(left) && is_integer_constant(right)
        }
        Expr::Function(f)
            if matches!(
                function_name(f).as_str(),
                "sqlite_div" | "sqlite_mod" | "sqlite_shl" | "sqlite_shr"
            ) =>
        {
            plain_args(f).is_ok_and(|args| {
                args.iter()
                    .all(|a| a.as_ref().is_some_and(is_integer_constant))
            })
        }
        _ => integer_literal_text(e).is_some(),
    }
}

/// An integer literal that PostgreSQL would type as 32-bit, cast to bigint.
fn widen(e: Expr) -> Expr {
    match integer_literal_text(&e) {
        Some(text) if text.parse::<i32>().is_ok() => cast(e, DataType::BigInt(None)),
        _ => e,
    }
}

/// A query whose one result is a plain column (which has an affinity).
fn selects_one_column(query: &sqlparser::ast::Query) -> bool {
    match query.body.as_ref() {
        sqlparser::ast::SetExpr::Select(select) => matches!(
            select.projection.as_slice(),
            [
                SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                    | SelectItem::ExprWithAlias {
                        expr: Expr::Identifier(_) | Expr::CompoundIdentifier(_),
                        ..
                    }
            ]
        ),
        _ => false,
    }
}

/// A string literal that does not read as a number.
fn is_non_numeric_text(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.trim().parse::<f64>().is_err(),
            _ => false,
        },
        _ => false,
    }
}

/// `'text' IN (SELECT x …)`: SQLite compares a text that does not read as
/// a number with each `x` as it is (unequal to every number); PostgreSQL
/// would convert the text to `x`'s type and fail. Comparing with `x` as
/// text gives SQLite's answer: no number prints as such a text.
fn compare_as_text(query: &mut sqlparser::ast::Query) {
    if let sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() {
        if let [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] =
            select.projection.as_mut_slice()
        {
            let value = std::mem::replace(e, Expr::value(Value::Null));
            *e = as_text(value);
        }
    }
}

/// A placeholder or a string literal: PostgreSQL does not know its type.
fn is_untyped(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_) | Value::SingleQuotedString(_)))
}

/// A placeholder in arithmetic between untyped operands is a number.
fn numeric_if_placeholder(e: Expr) -> Expr {
    match &e {
        Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => {
            cast(e, DataType::Numeric(sqlparser::ast::ExactNumberInfo::None))
        }
        _ => e,
    }
}

/// Loosen an integer literal compared with a non-literal.
fn loosen_pair(left: Expr, right: Expr) -> (Expr, Expr) {
    match (
        is_literal(&left) || is_untyped(&left),
        is_literal(&right) || is_untyped(&right),
    ) {
        (true, false) => (loosen(left), right),
        (false, true) => (left, loosen(right)),
        _ => (left, right),
    }
}

/// A column compared with a text-valued expression: SQLite applies the
/// column's affinity to the text; `sqlite_coerce(column, text)` converts
/// the text to the column's type (overloaded by `bootstrap`).
fn coerce_text_side(left: Expr, right: Expr) -> (Expr, Expr) {
    let is_column = |e: &Expr| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
    let computed_text = |e: &Expr| is_text(e) && !is_literal(e);
    if is_column(&left) && computed_text(&right) {
        let right = call("sqlite_coerce", vec![left.clone(), right]);
        (left, right)
    } else if is_column(&right) && computed_text(&left) {
        let left = call("sqlite_coerce", vec![right.clone(), left]);
        (left, right)
    } else {
        (left, right)
    }
}

/// `value LIKE pattern [ESCAPE e]` with SQLite's meaning. A `COLLATE` on
/// either side is dropped: SQLite's `LIKE` folds ASCII case whatever the
/// collation (`n LIKE ? COLLATE NOCASE` on a NOCASE column), and the
/// comparison is made on `"C"`.
pub fn sqlite_like(value: Expr, pattern: Expr, escape: Option<Expr>, negated: bool) -> Expr {
    let escape = escape.unwrap_or_else(|| text_literal(""));
    Expr::ILike {
        negated,
        any: false,
        expr: Box::new(binary_collated(as_text(without_collate(value)))),
        pattern: Box::new(as_text(without_collate(pattern))),
        escape_char: Some(Box::new(escape)),
    }
}

/// `e` without the `COLLATE` clauses around it.
fn without_collate(e: Expr) -> Expr {
    match e {
        Expr::Collate { expr, .. } => without_collate(*expr),
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::Collate { .. }) => {
            without_collate(*inner)
        }
        other => other,
    }
}

/// `CASE WHEN condition THEN then ELSE otherwise END`.
pub fn case_when(condition: Expr, then: Expr, otherwise: Expr) -> Expr {
    let mut conditions = vec![CaseWhen {
        condition: truth(condition),
        result: then,
    }];
    let mut else_result = Some(Box::new(otherwise));
    case(false, &mut conditions, &mut else_result);
    Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions,
        else_result,
    }
}

/// Conditions become truth values; results of mixed kinds are unified:
/// integer literals loosen to the other results' type, and when some
/// results are text and others are not, all become text.
fn case(has_operand: bool, conditions: &mut [CaseWhen], else_result: &mut Option<Box<Expr>>) {
    if !has_operand {
        for c in conditions.iter_mut() {
            make_truth(&mut c.condition);
        }
    }
    let mut results: Vec<Expr> = conditions.iter().map(|c| c.result.clone()).collect();
    if let Some(e) = else_result.as_deref() {
        results.push(e.clone());
    }
    // Text-ness is judged before loosening: a loosened integer literal
    // (`'1'`) looks like text but takes the other results' type.
    let any_text = results.iter().any(is_text);
    let all_text_or_null = results.iter().all(|r| is_text(r) || is_null(r));
    results = loosen_all(results);
    if any_text && !all_text_or_null {
        results = results
            .into_iter()
            .map(|r| if is_null(&r) { r } else { as_text(r) })
            .collect();
    }
    let mut it = results.into_iter();
    for c in conditions.iter_mut() {
        c.result = it.next().expect("one result per condition");
    }
    if let Some(e) = else_result.as_deref_mut() {
        *e = it.next().expect("the else result");
    }
}

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if v.value == Value::Null)
}

/// `CAST(x AS type)` with SQLite's conversion rules.
fn sqlite_cast(value: Expr, data_type: &DataType) -> Result<Expr, Error> {
    let declared = data_type.to_string();
    Ok(match affinity(&declared) {
        Affinity::Integer => call("sqlite_cast_integer", vec![value]),
        Affinity::Real => call("sqlite_cast_real", vec![value]),
        Affinity::Numeric => call("sqlite_cast_numeric", vec![value]),
        Affinity::Text if is_text(&value) => cast(value, DataType::Text),
        Affinity::Text => to_text(value),
        Affinity::Blob => call("sqlite_cast_blob", vec![value]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let source = Source::new(sql).unwrap();
        let mut st = source.parse().unwrap();
        crate::translate::names::normalize(&mut st);
        rewrite_expressions(&mut st, &source).unwrap();
        st.to_string()
    }

    #[test]
    fn operators_take_sqlite_meaning() {
        assert_eq!(
            rewritten("SELECT a IS b, a || 1, a / b FROM t"),
            "SELECT a IS NOT DISTINCT FROM b, (sqlite_text(a) || 1::TEXT) COLLATE \"default\", sqlite_div(a, b) FROM t"
        );
        assert_eq!(
            rewritten("SELECT * FROM t WHERE a LIKE 'x%' AND b IN () AND c = 5"),
            "SELECT * FROM t WHERE sqlite_text(a) COLLATE \"C\" ILIKE 'x%' ESCAPE '' AND false AND c = '5'"
        );
    }

    #[test]
    fn integer_constants_are_64_bit_and_columns_keep_their_type() {
        assert_eq!(
            rewritten("SELECT 79 * 91, a + 1, 1 << 63, 7 % a FROM t"),
            "SELECT 79::BIGINT * 91::BIGINT, a + 1, sqlite_shl(1::BIGINT, 63::BIGINT), sqlite_mod(7, a) FROM t"
        );
    }

    #[test]
    fn case_of_numbers_and_a_loosened_literal_stays_numeric() {
        let out = rewritten("SELECT CASE WHEN a > 1 THEN 1 ELSE a / 2 END FROM t");
        assert!(out.contains("THEN '1' ELSE sqlite_div(a, 2) END"), "{out}");
        assert!(!out.contains("::TEXT"), "{out}");
    }

    #[test]
    fn iif_with_mixed_results_unifies_to_text() {
        let out = rewritten(
            "SELECT iif(typeof(c) IN ('integer', 'real'), datetime(c, 'unixepoch'), c) FROM t",
        );
        assert!(out.contains("CASE WHEN sqlite_typeof(c) COLLATE \"default\" IN ('integer', 'real') THEN sqlite_datetime(sqlite_text(c), 'unixepoch') COLLATE \"default\" ELSE sqlite_text(c) END"), "{out}");
    }

    #[test]
    fn json_valid_in_where_becomes_a_truth_value() {
        let out = rewritten("UPDATE t SET x = x ->> 'url' WHERE x IS NOT NULL and json_valid(x)");
        assert!(
            out.ends_with(
                "WHERE x IS NOT NULL AND sqlite_truth(sqlite_json_valid(sqlite_text(x)))"
            ),
            "{out}"
        );
    }
}
