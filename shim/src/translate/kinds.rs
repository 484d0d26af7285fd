//! What an expression's PostgreSQL type is, as far as its form alone
//! tells: a boolean (conditions need one, see `truth`) or text (`CASE`
//! branches and `||` operands are unified on it, see `expr`).

use sqlparser::ast::{BinaryOperator, DataType, Expr, UnaryOperator, Value};

/// Whether an expression is a boolean by its form alone.
pub fn is_boolean(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::And
                | BinaryOperator::Or
                | BinaryOperator::Spaceship
                | BinaryOperator::PGRegexMatch
                | BinaryOperator::PGRegexIMatch
                | BinaryOperator::PGRegexNotMatch
                | BinaryOperator::PGRegexNotIMatch
                | BinaryOperator::AtAt
        ),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::In { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::Exists { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. } => true,
        Expr::Value(v) => matches!(v.value, Value::Boolean(_)),
        Expr::Nested(e) => is_boolean(e),
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            matches!(
                name.as_str(),
                "sqlite_glob" | "sqlite_truth" | "sqlite_fts_match"
            )
        }
        _ => false,
    }
}

/// Whether an expression is text by its form (string literals, text
/// casts, functions returning text).
pub fn is_text(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => matches!(v.value, Value::SingleQuotedString(_)),
        Expr::Cast {
            data_type: DataType::Text,
            ..
        } => true,
        Expr::Collate { expr, .. } | Expr::Nested(expr) => is_text(expr),
        Expr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } => true,
        Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            let null = |e: &Expr| matches!(e, Expr::Value(v) if v.value == Value::Null);
            let results = conditions
                .iter()
                .map(|c| &c.result)
                .chain(else_result.as_deref());
            let mut any_text = false;
            for r in results {
                if is_text(r) {
                    any_text = true;
                } else if !null(r) {
                    return false;
                }
            }
            any_text
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            matches!(
                name.as_str(),
                "sqlite_datetime"
                    | "sqlite_date"
                    | "sqlite_time"
                    | "sqlite_strftime"
                    | "sqlite_typeof"
                    | "sqlite_substr"
                    | "sqlite_hex"
                    | "sqlite_quote"
                    | "sqlite_json_extract"
                    | "sqlite_json_extract_value"
                    | "sqlite_json_arrow"
                    | "sqlite_json_type"
                    | "sqlite_json"
                    | "sqlite_printf"
                    | "sqlite_text"
                    | "sqlite_real_text"
                    | "lower"
                    | "upper"
                    | "btrim"
                    | "ltrim"
                    | "rtrim"
                    | "replace"
                    | "string_agg"
                    | "concat"
            )
        }
        _ => false,
    }
}
