//! SQLite's literals on PostgreSQL, and the loose typing of numbers.
//!
//! - A real literal (`1.5`, `2.0`, `1e3`) is `double precision`, so it reads
//!   back as FLOAT as in SQLite (a bare `2.0` would be `numeric`, read as an
//!   integer).
//! - `0x1F` is an integer, `x'1F'` a blob (sqlparser reads both as hex
//!   strings; the original text tells them apart).
//! - An integer literal next to a value of another type is "loosened" into
//!   an untyped literal (`'5'`), which PostgreSQL reads as the other side's
//!   type: `text_col = 5` compares as text, `bool_col = 1` as a boolean,
//!   `coalesce(int_col, 0)` stays an integer. That is SQLite's affinity rule
//!   for a column compared with a literal.

use sqlparser::ast::{DataType, Expr, UnaryOperator, Value};

use super::construct::{cast, float8, text_literal};
use super::Error;

/// The text of an integer literal, `-N` included.
pub fn integer_literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if is_integer_text(n) => Some(n.clone()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => integer_literal_text(expr).map(|n| negate(&n)),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => integer_literal_text(expr),
        Expr::Nested(e) => integer_literal_text(e),
        _ => None,
    }
}

/// The text of a numeric literal (integer or real), `-N` included.
pub fn signed_number_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.clone()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => signed_number_text(expr).map(|n| negate(&n)),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        }
        | Expr::Nested(expr) => signed_number_text(expr),
        _ => None,
    }
}

/// The text of `-n` (`- -5` is `5`, never `--5`).
fn negate(n: &str) -> String {
    match n.strip_prefix('-') {
        Some(positive) => positive.to_string(),
        None => format!("-{n}"),
    }
}

fn is_integer_text(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an expression is a literal (number, string, blob, NULL,
/// boolean), possibly signed or as translated here.
pub fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Value(v) => !matches!(v.value, Value::Placeholder(_)),
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => is_literal(expr),
        Expr::Cast { expr, .. } => is_literal(expr),
        Expr::Nested(e) => is_literal(e),
        _ => false,
    }
}

/// An integer literal as an untyped literal; anything else unchanged.
pub fn loosen(expr: Expr) -> Expr {
    match integer_literal_text(&expr) {
        Some(text) => text_literal(&text),
        None => expr,
    }
}

/// Loosen the integer literals of a list whose other members are not all
/// literals (a list of literals only keeps their own types).
pub fn loosen_all(exprs: Vec<Expr>) -> Vec<Expr> {
    let untyped = |e: &Expr| {
        is_literal(e) || matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
    };
    if exprs.iter().all(untyped) {
        return exprs;
    }
    exprs.into_iter().map(loosen).collect()
}

/// Translate a literal value; `original` is its text as written.
pub fn translate_value(value: &Value, original: &str) -> Result<Option<Expr>, Error> {
    match value {
        Value::Number(n, _) if !is_integer_text(n) => {
            Ok(Some(cast(Expr::value(value.clone()), float8())))
        }
        Value::Number(n, _) if n.parse::<i64>().is_err() => {
            Ok(Some(cast(Expr::value(value.clone()), float8())))
        }
        Value::HexStringLiteral(hex)
            if original.starts_with("0x") || original.starts_with("0X") =>
        {
            let n = u64::from_str_radix(hex, 16)
                .map_err(|_| Error::new(format!("hex literal too big: {original}")))?;
            Ok(Some(Expr::value(Value::Number(
                (n as i64).to_string(),
                false,
            ))))
        }
        Value::HexStringLiteral(hex) => Ok(Some(cast(
            text_literal(&format!("\\x{hex}")),
            DataType::Bytea,
        ))),
        Value::DoubleQuotedString(s) => Ok(Some(text_literal(s))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Value;

    #[test]
    fn integers_loosen_and_reals_become_float8() {
        let five = Expr::value(Value::Number("5".into(), false));
        assert_eq!(loosen(five.clone()).to_string(), "'5'");
        let minus = Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(five),
        };
        assert_eq!(loosen(minus.clone()).to_string(), "'-5'");
        let minus_minus = Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(minus),
        };
        assert_eq!(loosen(minus_minus).to_string(), "'5'");
        let real = translate_value(&Value::Number("2.0".into(), false), "2.0")
            .unwrap()
            .unwrap();
        assert_eq!(real.to_string(), "2.0::DOUBLE PRECISION");
        let hex = translate_value(&Value::HexStringLiteral("1F".into()), "0x1F")
            .unwrap()
            .unwrap();
        assert_eq!(hex.to_string(), "31");
        let blob = translate_value(&Value::HexStringLiteral("1F".into()), "x'1F'")
            .unwrap()
            .unwrap();
        assert_eq!(blob.to_string(), "'\\x1F'::BYTEA");
    }
}
