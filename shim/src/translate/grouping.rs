//! SQLite's lenient grouping, as PostgreSQL queries with the same result.
//!
//! - `GROUP BY 1` names the first result column's expression (PostgreSQL
//!   does too, but the bare-column rewrite must see the expression);
//!   `GROUP BY alias` the aliased expression when no `FROM` column has
//!   that name.
//! - `GROUP BY NULL`, `GROUP BY 'x'` (constants other than an integer) put
//!   every row in one group; PostgreSQL refuses a bare constant there, so it
//!   is cast (a cast is an expression, not a constant, to its parser).
//! - An aggregate query without `GROUP BY` (`SELECT count(*), title FROM
//!   t`) may name bare columns: [`is_aggregate_query`] lets `scope` wrap
//!   them as it does for grouped queries.
//! - `SELECT DISTINCT a … ORDER BY b`, `b` not selected: SQLite keeps the
//!   first row it reads of each distinct result (in rowid order on one
//!   table) and sorts the results by that row's `b`. [`distinct_order`]
//!   makes it a grouped query ordered by that row's keys
//!   (`sqlite_first(array_agg(b ORDER BY rowid))`).
//! - Without `ORDER BY`, SQLite returns a grouped query's rows in group-key
//!   order (it groups by sorting): [`group_key_order`] asks for that order
//!   on a statement's outermost query and on a lone subquery in its `FROM`.

use sqlparser::ast::{
    DataType, Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, GroupByExpr, OrderByExpr, OrderByKind, OrderByOptions, OrderBySort, Query,
    Select, SelectItem, SetExpr, TableFactor, TableWithJoins, Value,
};

use super::construct::{call, cast, qualified_column};
use super::functions::function_name;
use super::literals::integer_literal_text;
use super::scope::{ScopeTable, AGGREGATES};

/// `GROUP BY` terms as SQLite reads them: positions and aliases become the
/// result columns' expressions, constants become casts.
pub fn resolve_group_terms(select: &mut Select, scope: &[ScopeTable]) {
    let GroupByExpr::Expressions(terms, _) = &mut select.group_by else {
        return;
    };
    for term in terms.iter_mut() {
        if let Some(e) = result_expr(term, &select.projection, scope) {
            *term = e;
            continue;
        }
        if let Expr::Value(v) = term {
            match &v.value {
                Value::Number(..) => {}
                Value::Null | Value::SingleQuotedString(_) | Value::DoubleQuotedString(_) => {
                    *term = cast(term.clone(), DataType::Text)
                }
                _ => {}
            }
        }
    }
}

/// The result column's expression a `GROUP BY`/`ORDER BY` term names: a
/// position (`1`), or an alias that is no column of the `FROM` tables.
fn result_expr(term: &Expr, projection: &[SelectItem], scope: &[ScopeTable]) -> Option<Expr> {
    if let Some(n) = integer_literal_text(term).filter(|_| matches!(term, Expr::Value(_))) {
        let i: usize = n.parse().ok()?;
        return match projection.get(i.checked_sub(1)?)? {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(e.clone())
            }
            _ => None,
        };
    }
    let Expr::Identifier(id) = term else {
        return None;
    };
    if scope.iter().any(|t| t.may_have_column(&id.value)) {
        return None;
    }
    projection.iter().find_map(|item| match item {
        SelectItem::ExprWithAlias { expr, alias } if alias.value == id.value => Some(expr.clone()),
        _ => None,
    })
}

/// A `SELECT` without `GROUP BY` that aggregates (an aggregate in its
/// result columns or a `HAVING`): one group of every row.
pub fn is_aggregate_query(select: &Select) -> bool {
    let ungrouped = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.is_empty(),
        GroupByExpr::All(_) => false,
    };
    ungrouped
        && (select.having.is_some()
            || select.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    has_aggregate(e)
                }
                _ => false,
            }))
}

/// An aggregate call in `e`, outside subqueries and window functions.
pub fn has_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => {
            let name = function_name(f);
            let args_have = || {
                match &f.args {
                FunctionArguments::List(list) => list.args.iter().any(|a| {
                    matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) if has_aggregate(x))
                }),
                _ => false,
            }
            };
            if f.over.is_some() {
                return false;
            }
            let scalar_extreme = (name == "min" || name == "max")
                && matches!(&f.args, FunctionArguments::List(l) if l.args.len() > 1);
            (AGGREGATES.contains(&name.as_str()) && !scalar_extreme) || args_have()
        }
        Expr::BinaryOp { left, right, .. } => has_aggregate(left) || has_aggregate(right),
        Expr::Nested(x)
        | Expr::UnaryOp { expr: x, .. }
        | Expr::Cast { expr: x, .. }
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::Collate { expr: x, .. } => has_aggregate(x),
        Expr::Like {
            expr: x,
            pattern: p,
            ..
        } => has_aggregate(x) || has_aggregate(p),
        Expr::In {
            expr: x,
            target: sqlparser::ast::InTarget::List(list),
            ..
        } => has_aggregate(x) || list.iter().any(has_aggregate),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(has_aggregate)
                || conditions
                    .iter()
                    .any(|c| has_aggregate(&c.condition) || has_aggregate(&c.result))
                || else_result.as_deref().is_some_and(has_aggregate)
        }
        _ => false,
    }
}

/// `SELECT DISTINCT … ORDER BY` a term that is not a result column (which
/// PostgreSQL refuses) as a grouped query ordered by the keys of each
/// group's first row: SQLite keeps the first row it reads of each distinct
/// result, then sorts. `scope`: the query's `FROM` tables. An `ORDER BY`
/// name is a result column's alias first, as in SQLite.
pub fn distinct_order(query: &mut Query, scope: &[ScopeTable]) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    if !matches!(select.distinct, Some(Distinct::Distinct)) || is_aggregate_query(select) {
        return;
    }
    if !matches!(&select.group_by, GroupByExpr::Expressions(g, _) if g.is_empty()) {
        return;
    }
    let Some(order_by) = &mut query.order_by else {
        return;
    };
    let OrderByKind::Expressions(order) = &mut order_by.kind else {
        return;
    };
    let mut items = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                if has_window(e) {
                    return;
                }
                items.push(e.clone())
            }
            _ => return,
        }
    }
    let selected = |o: &OrderByExpr| {
        result_expr(&o.expr, &select.projection, &[]).is_some() || items.contains(&o.expr)
    };
    if order.iter().all(selected) {
        return;
    }
    // The sort as SQLite does it, on expressions (positions and aliases
    // replaced by what they name).
    let sort: Vec<OrderByExpr> = order
        .iter()
        .map(|o| OrderByExpr {
            expr: result_expr(&o.expr, &select.projection, &[]).unwrap_or(o.expr.clone()),
            options: OrderByOptions {
                sort: o.options.sort.clone(),
                nulls_first: Some(
                    o.options
                        .nulls_first
                        .unwrap_or(!matches!(o.options.sort, Some(OrderBySort::Desc))),
                ),
            },
            with_fill: None,
        })
        .collect();
    // Which row of each distinct result gives its sort keys: SQLite keeps
    // the first it reads, in rowid order on one table; elsewhere the
    // first in the sort.
    let first_row = match scope {
        [t] => t
            .info
            .as_ref()
            .and_then(|i| i.rowid_column.as_ref())
            .map(|rowid| {
                vec![OrderByExpr {
                    expr: qualified_column(&t.qualifier, rowid),
                    options: OrderByOptions {
                        sort: None,
                        nulls_first: None,
                    },
                    with_fill: None,
                }]
            }),
        _ => None,
    }
    .unwrap_or_else(|| sort.clone());
    for (o, s) in order.iter_mut().zip(&sort) {
        if selected(o) {
            continue;
        }
        let mut agg = call("array_agg", vec![s.expr.clone()]);
        if let Expr::Function(f) = &mut agg {
            if let FunctionArguments::List(list) = &mut f.args {
                list.clauses
                    .push(FunctionArgumentClause::OrderBy(first_row.clone()));
            }
        }
        o.expr = call("sqlite_first", vec![agg]);
        o.options.nulls_first = s.options.nulls_first;
    }
    select.distinct = None;
    select.group_by = GroupByExpr::Expressions(items, vec![]);
}

/// A window function call in `e`.
pub fn has_window(e: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if matches!(x, Expr::Function(f) if f.over.is_some()) {
            found = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// A grouped query without `ORDER BY` ordered by its group keys (ascending,
/// NULLs first as SQLite sorts them; constant keys left out), and so is a
/// lone subquery in `FROM` (whose rows SQLite reads in that order: an
/// outer `group_concat` sees them so). `placed`: give the keys their NULL placement here
/// (else `scope` gives it, leaving `NOT NULL` columns alone).
pub fn group_key_order(query: &mut Query, placed: bool) {
    if query.order_by.is_some() {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    if let [TableWithJoins {
        relation: TableFactor::Derived { subquery, .. },
        joins,
    }] = select.from.as_mut_slice()
    {
        if joins.is_empty() {
            group_key_order(subquery, true);
        }
    }
    let GroupByExpr::Expressions(terms, _) = &select.group_by else {
        return;
    };
    let keys: Vec<OrderByExpr> = terms
        .iter()
        .filter(|t| !is_constant(t))
        .map(|t| OrderByExpr {
            expr: t.clone(),
            options: OrderByOptions {
                sort: None,
                nulls_first: placed.then_some(true),
            },
            with_fill: None,
        })
        .collect();
    if keys.is_empty() {
        return;
    }
    query.order_by = Some(sqlparser::ast::OrderBy {
        kind: OrderByKind::Expressions(keys),
        interpolate: None,
    });
}

/// A literal (a parameter too), possibly cast or parenthesized.
pub fn is_constant(e: &Expr) -> bool {
    match e {
        Expr::Value(_) => true,
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_constant(expr),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::translate::testing::last_statement;

    fn pg(sql: &str) -> String {
        last_statement("grouping", sql)
    }

    #[test]
    fn positions_name_result_columns_and_groups_come_in_key_order() {
        let out = pg("SELECT k, count(*) FROM t GROUP BY 1");
        assert!(out.contains("GROUP BY k ORDER BY k NULLS FIRST"), "{out}");
        let out = pg("SELECT k, count(*) FROM t GROUP BY k ORDER BY 2");
        assert!(!out.contains("ORDER BY k"), "{out}");
    }

    #[test]
    fn constants_are_one_group_without_an_order() {
        let out = pg("SELECT count(*) FROM t GROUP BY NULL");
        assert!(out.contains("GROUP BY NULL::TEXT"), "{out}");
        assert!(!out.contains("ORDER BY"), "{out}");
    }

    #[test]
    fn distinct_ordered_by_an_unselected_column_groups() {
        let out = pg("SELECT DISTINCT k FROM t ORDER BY v DESC");
        assert!(out.contains("GROUP BY k"), "{out}");
        assert!(!out.contains("DISTINCT"), "{out}");
        assert!(
            out.contains("sqlite_first(array_agg(v ORDER BY v DESC NULLS LAST)) DESC NULLS LAST"),
            "{out}"
        );
        let out = pg("SELECT DISTINCT k FROM t ORDER BY k DESC");
        assert!(out.contains("DISTINCT"), "{out}");
    }
}
