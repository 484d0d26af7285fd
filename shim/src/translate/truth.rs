//! SQLite's truth values where PostgreSQL wants a boolean.
//!
//! SQLite takes any value as a condition (`WHERE json_valid(x)`,
//! `iif(flag, …)`, `NOT count`): a number is true when non-zero, text is
//! converted to a number first, NULL is unknown. PostgreSQL's `WHERE`,
//! `AND`, `OR`, `NOT`, `CASE WHEN` need a boolean, so an operand that is not
//! a boolean by its form is wrapped in `sqlite_truth(…)` (overloaded per
//! type by `bootstrap`; identity on booleans).

use sqlparser::ast::{Expr, Value};

use super::construct::call;
use super::kinds::is_boolean;

/// `expr` as a condition.
pub fn truth(expr: Expr) -> Expr {
    if is_boolean(&expr) {
        expr
    } else {
        call("sqlite_truth", vec![expr])
    }
}

/// `expr` as a condition, in place.
pub fn make_truth(expr: &mut Expr) {
    if !is_boolean(expr) {
        let inner = std::mem::replace(expr, Expr::value(Value::Null));
        *expr = truth(inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::construct::{column, int_literal};
    use sqlparser::ast::BinaryOperator;

    #[test]
    fn comparisons_stay_and_values_are_wrapped() {
        let cmp = Expr::BinaryOp {
            left: Box::new(column("a")),
            op: BinaryOperator::Eq,
            right: Box::new(int_literal(1)),
        };
        assert_eq!(truth(cmp.clone()).to_string(), cmp.to_string());
        assert_eq!(truth(column("flag")).to_string(), "sqlite_truth(\"flag\")");
    }
}
