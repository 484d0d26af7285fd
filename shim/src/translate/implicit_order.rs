//! SQLite's orders of queries without `ORDER BY`, where SQLite's order is
//! deterministic and the client sees it (a statement's outermost query,
//! also an `INSERT`'s rows, whose rowids follow it). PostgreSQL returns
//! hash or heap order there.
//!
//! - `SELECT DISTINCT` over one table: SQLite scans the table in rowid
//!   order and returns each result the first time it meets it (a temporary
//!   b-tree only tells it what it has already returned).
//!   [`distinct_scan_order`] makes it a grouped query ordered by each
//!   result's first rowid (`GROUP BY a, b ORDER BY min(rowid)`).
//! - Compounds: `UNION`, `INTERSECT` and `EXCEPT` fill a temporary b-tree
//!   and read it back, so their rows come sorted by the whole row (each
//!   column's collation, NULLs first); `UNION ALL` appends its branches in
//!   the order written, each in its own order. [`compound_order`] orders
//!   the last such operator's result by every column, and a sorted or
//!   grouped branch of a `UNION ALL` in its own parentheses.
//!
//! Grouped queries (group-key order) are `grouping::group_key_order`.
//! Not reproduced: scans SQLite makes through an index (its planner picks
//! an index for a `WHERE`, or for a `DISTINCT` on an indexed column, and
//! returns that index's order), joins (the order of the plan's outer
//! loop), and plain scans without `DISTINCT` (rowid order would add a sort
//! to every such query: `docs/sql-support.md`, "Known differences").

use std::ops::ControlFlow;

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, InTarget, OrderBy, OrderByExpr, OrderByKind, OrderByOptions,
    Query, Select, SelectItem, SetExpr, SetQuantifier, Values,
};

use super::construct::{call, int_literal, parenthesized, qualified_column};
use super::fts;
use super::grouping::{self, has_window, is_aggregate_query, is_constant};
use super::scope::ScopeTable;

/// `SELECT DISTINCT …` from one table with a rowid, without `ORDER BY`:
/// grouped by its result columns and ordered by each group's first rowid,
/// which is the order SQLite's scan returns them in. `from`: the query's
/// `FROM` tables.
pub fn distinct_scan_order(query: &mut Query, from: &[ScopeTable]) {
    if query.order_by.is_some() {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    if !matches!(select.distinct, Some(Distinct::Distinct)) || is_aggregate_query(select) {
        return;
    }
    if !matches!(&select.group_by, GroupByExpr::Expressions(g, _) if g.is_empty()) {
        return;
    }
    let ([table], [only]) = (from, select.from.as_slice()) else {
        return;
    };
    if !only.joins.is_empty() {
        return;
    }
    let Some(rowid) = table.info.as_ref().and_then(|i| {
        fts::rowid_column(i)
            .map(str::to_string)
            .or_else(|| i.rowid_column.clone())
    }) else {
        return;
    };
    let mut keys = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                if has_window(e) || has_subquery(e) {
                    return;
                }
                if !is_constant(e) {
                    keys.push(e.clone());
                }
            }
            // A `*` left unexpanded: the table's columns, none hidden.
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => keys.extend(
                table
                    .info
                    .iter()
                    .flat_map(|i| &i.columns)
                    .map(|c| qualified_column(&table.qualifier, &c.name)),
            ),
            _ => return,
        }
    }
    // Only constants: one row at most, and a GROUP BY of nothing would
    // give one on no rows too.
    if keys.is_empty() {
        return;
    }
    select.distinct = None;
    select.group_by = GroupByExpr::Expressions(keys, vec![]);
    query.order_by = Some(order_by(vec![OrderByExpr {
        expr: call("min", vec![qualified_column(&table.qualifier, &rowid)]),
        options: OrderByOptions {
            sort: None,
            nulls_first: None,
        },
        with_fill: None,
    }]));
}

/// A compound without `ORDER BY` in SQLite's order: sorted by every column
/// when its last operator is `UNION`, `INTERSECT` or `EXCEPT`; else (a
/// `UNION ALL`) each branch that SQLite sorts (such a compound on the
/// left, a grouped `SELECT`) sorted in its own parentheses.
pub fn compound_order(query: &mut Query) {
    if query.order_by.is_some() {
        return;
    }
    let SetExpr::SetOperation { .. } = query.body.as_ref() else {
        return;
    };
    let Some(n) = column_count(&query.body) else {
        return;
    };
    if sorts(&query.body) {
        query.order_by = Some(whole_row(n));
    } else {
        order_branches(&mut query.body, n);
    }
}

/// A set operation SQLite computes in a temporary b-tree (read back sorted).
fn sorts(set: &SetExpr) -> bool {
    matches!(
        set,
        SetExpr::SetOperation { set_quantifier, .. }
            if !matches!(set_quantifier, SetQuantifier::All | SetQuantifier::AllByName)
    )
}

/// The branches of a chain of `UNION ALL`, each sorted as SQLite returns it.
fn order_branches(set: &mut SetExpr, n: usize) {
    let SetExpr::SetOperation { left, right, .. } = set else {
        return;
    };
    for branch in [left, right] {
        if sorts(branch) {
            wrap(branch, Some(whole_row(n)));
        } else if matches!(branch.as_ref(), SetExpr::SetOperation { .. }) {
            order_branches(branch, n);
        } else if matches!(branch.as_ref(), SetExpr::Select(s) if is_grouped(s)) {
            wrap(branch, None);
            if let SetExpr::Query(q) = branch.as_mut() {
                grouping::group_key_order(q, true);
            }
        }
    }
}

fn is_grouped(select: &Select) -> bool {
    matches!(&select.group_by, GroupByExpr::Expressions(g, _) if !g.is_empty())
}

/// `set` as a parenthesized query with this order.
fn wrap(set: &mut Box<SetExpr>, order: Option<OrderBy>) {
    let empty = SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: vec![],
    });
    let body = std::mem::replace(set.as_mut(), empty);
    **set = parenthesized(body, order);
}

/// `ORDER BY 1, 2, …, n`, NULLs first.
fn whole_row(n: usize) -> OrderBy {
    order_by(
        (1..=n as i64)
            .map(|i| OrderByExpr {
                expr: int_literal(i),
                options: OrderByOptions {
                    sort: None,
                    nulls_first: Some(true),
                },
                with_fill: None,
            })
            .collect(),
    )
}

fn order_by(terms: Vec<OrderByExpr>) -> OrderBy {
    OrderBy {
        kind: OrderByKind::Expressions(terms),
        interpolate: None,
    }
}

/// The number of result columns of a compound (its first `SELECT`'s),
/// unless a `*` is left unexpanded.
fn column_count(set: &SetExpr) -> Option<usize> {
    match set {
        SetExpr::SetOperation { left, .. } => column_count(left),
        SetExpr::Query(q) => column_count(&q.body),
        SetExpr::Select(s) => s
            .projection
            .iter()
            .all(|i| {
                matches!(
                    i,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            })
            .then_some(s.projection.len()),
        SetExpr::Values(v) => v.rows.first().map(|r| r.content.len()),
        _ => None,
    }
}

fn has_subquery(e: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if matches!(
            x,
            Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::In {
                    target: InTarget::Subquery(_),
                    ..
                }
        ) {
            found = true;
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use crate::translate::testing::last_statement;

    /// No table is known (the DISTINCT rewrite, which needs a rowid, is
    /// checked by the differential cases).
    fn pg(sql: &str) -> String {
        last_statement("implicit_order", sql)
    }

    #[test]
    fn compounds_are_sorted_by_the_whole_row() {
        let out = pg("SELECT a, b FROM t UNION SELECT 1, 2");
        assert!(
            out.ends_with("ORDER BY 1 NULLS FIRST, 2 NULLS FIRST"),
            "{out}"
        );
        let out = pg("SELECT a FROM t UNION SELECT 1 ORDER BY 1 DESC");
        assert!(!out.contains("NULLS FIRST"), "{out}");
        let out = pg("SELECT a FROM t UNION ALL SELECT 1");
        assert!(!out.contains("ORDER BY"), "{out}");
    }

    #[test]
    fn sorted_branches_of_union_all_are_sorted_in_parentheses() {
        let out = pg("SELECT a FROM t UNION SELECT 1 UNION ALL SELECT 2");
        assert!(
            out.contains("(SELECT a FROM t UNION SELECT 1 ORDER BY 1 NULLS FIRST) UNION ALL"),
            "{out}"
        );
        let out = pg("SELECT 2 UNION ALL SELECT k FROM t GROUP BY k");
        assert!(
            out.contains("UNION ALL (SELECT k FROM t GROUP BY k ORDER BY k NULLS FIRST)"),
            "{out}"
        );
    }

    #[test]
    fn compound_operators_group_left_to_right() {
        let out = pg("SELECT 1 UNION SELECT 2 INTERSECT SELECT 2");
        assert!(
            out.starts_with("(SELECT 1 UNION SELECT 2) INTERSECT SELECT 2"),
            "{out}"
        );
        let out = pg("SELECT 1 INTERSECT SELECT 1 UNION SELECT 2");
        assert!(!out.contains('('), "{out}");
    }
}
