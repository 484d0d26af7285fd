//! `SELECT` (and the query parts of other statements): clauses whose
//! SQLite form differs from PostgreSQL's.
//!
//! - `LIMIT a, b` is `LIMIT b OFFSET a`; a negative `LIMIT` means no limit
//!   and a negative `OFFSET` none (`LIMIT ?` with a negative value too:
//!   `CASE WHEN ? < 0 THEN NULL ELSE ? END`).
//! - `INDEXED BY` / `NOT INDEXED` are planner hints: dropped.
//! - A subquery in `FROM` without a name gets one (PostgreSQL 15 needs it).
//! - `WHERE`, `HAVING` and `ON` conditions become truth values (`truth`).
//! - An inner join's `ON` naming a table PostgreSQL does not see there (one
//!   joined later) moves to `WHERE`; `JOIN t` without a condition is a
//!   `CROSS JOIN`.
//!
//! Name resolution (`scope`) runs first, expression rewrites (`expr`) last.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, JoinConstraint, JoinOperator, LimitClause, Offset, OffsetRows,
    Query, Select, Statement, TableFactor, VisitMut, VisitorMut,
};

use super::construct::{call, cast, int_literal, null};
use super::expr::{case_when, rewrite_expressions};
use super::literals::integer_literal_text;
use super::scope::{self, ScopeTable};
use super::truth::make_truth;
use super::{Context, Error, Output, Plan, Sql};

/// Translate a `SELECT` (or `VALUES`, `WITH …`).
pub fn translate(mut statement: Statement, cx: &mut Context) -> Result<Plan, Error> {
    rewrite_statement(&mut statement, vec![], cx)?;
    let mut plan = Plan::read(vec![]);
    (plan.column_names, plan.trailing_column_names) =
        super::result_names::sqlite_names(&statement, cx.source);
    plan.action = super::PlanAction::Run(vec![Output::rows(Sql::Tree(statement))]);
    Ok(plan)
}

/// Resolve names, rewrite query clauses and expressions of any statement.
pub fn rewrite_statement(
    statement: &mut Statement,
    outer: Vec<ScopeTable>,
    cx: &mut Context,
) -> Result<(), Error> {
    let outer = if outer.is_empty() {
        cx.trigger_scope.clone().unwrap_or_default()
    } else {
        outer
    };
    scope::resolve(statement, outer, cx)?;
    let _ = statement.visit(&mut Clauses);
    rewrite_expressions(statement, cx.source)
}

struct Clauses;

impl VisitorMut for Clauses {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(limit) = query.limit_clause.take() {
            query.limit_clause = Some(sqlite_limit(limit));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        forward_join_conditions(select);
        if let Some(w) = &mut select.selection {
            make_truth(w);
        }
        if let Some(h) = &mut select.having {
            make_truth(h);
        }
        for twj in &mut select.from {
            for j in &mut twj.joins {
                if let Some(JoinConstraint::On(e)) = join_constraint(&mut j.join_operator) {
                    make_truth(e);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                index_directives, ..
            } => index_directives.clear(),
            TableFactor::Derived {
                alias: alias @ None,
                ..
            } => {
                // PostgreSQL 15 wants a name for a subquery in FROM.
                *alias = Some(sqlparser::ast::TableAlias {
                    explicit: true,
                    name: super::construct::ident("sqlite_subquery"),
                    columns: vec![],
                    at: None,
                });
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// An inner join's `ON` naming a table that PostgreSQL does not see there
/// (joined later, `a JOIN b ON b.x = c.y JOIN c`, or another item of a
/// comma list): SQLite reads an inner join's condition as a `WHERE` term,
/// PostgreSQL refuses the reference. When that join's `FROM` item has only
/// inner joins, the condition moves to `WHERE` (the same rows) and the
/// join becomes a `CROSS JOIN` (as does a `JOIN` without a condition).
fn forward_join_conditions(select: &mut Select) {
    let qualifier = |f: &TableFactor| match f {
        TableFactor::Table { name, alias, .. } => Some(
            alias
                .as_ref()
                .map(|a| a.name.value.clone())
                .unwrap_or_else(|| scope::last_part(name)),
        ),
        TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| a.name.value.clone()),
        _ => None,
    };
    let all: Vec<String> = select
        .from
        .iter()
        .flat_map(|twj| std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)))
        .filter_map(qualifier)
        .collect();
    let mut moved = Vec::new();
    for twj in &mut select.from {
        // `JOIN t` without `ON`/`USING` is a cross join to SQLite; PostgreSQL
        // wants a condition.
        for j in &mut twj.joins {
            if let JoinOperator::Join(JoinConstraint::None)
            | JoinOperator::Inner(JoinConstraint::None) = j.join_operator
            {
                j.join_operator = JoinOperator::CrossJoin(JoinConstraint::None);
            }
        }
        let inner_only = twj.joins.iter().all(|j| {
            matches!(
                j.join_operator,
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
            )
        });
        if !inner_only {
            continue;
        }
        let mut visible: Vec<String> = qualifier(&twj.relation).into_iter().collect();
        for j in &mut twj.joins {
            visible.extend(qualifier(&j.relation));
            let (JoinOperator::Join(c) | JoinOperator::Inner(c)) = &mut j.join_operator else {
                continue;
            };
            let JoinConstraint::On(on) = c else {
                continue;
            };
            let mut hidden = false;
            let _ = sqlparser::ast::visit_expressions(&*on, |e| {
                if let Expr::CompoundIdentifier(parts) = e {
                    if let Some(q) = parts.len().checked_sub(2).map(|i| &parts[i].value) {
                        hidden |= all.contains(q) && !visible.contains(q);
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            if hidden {
                moved.push(std::mem::replace(
                    on,
                    Expr::value(sqlparser::ast::Value::Null),
                ));
                j.join_operator = JoinOperator::CrossJoin(JoinConstraint::None);
            }
        }
    }
    for on in moved {
        let on = Expr::Nested(Box::new(on));
        select.selection = Some(match select.selection.take() {
            Some(w) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(w))),
                op: BinaryOperator::And,
                right: Box::new(on),
            },
            None => on,
        });
    }
}

fn join_constraint(op: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}

/// A SQLite `LIMIT` clause as PostgreSQL's `LIMIT … OFFSET …`.
fn sqlite_limit(limit: LimitClause) -> LimitClause {
    let (limit, offset) = match limit {
        LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
        LimitClause::LimitOffset { limit, offset, .. } => (limit, offset.map(|o| o.value)),
    };
    LimitClause::LimitOffset {
        limit: limit.and_then(non_negative_limit),
        offset: offset.map(|o| Offset {
            value: non_negative_offset(o),
            rows: OffsetRows::None,
        }),
        limit_by: vec![],
    }
}

/// A negative limit is no limit.
fn non_negative_limit(e: Expr) -> Option<Expr> {
    match integer_literal_text(&e) {
        Some(t) if t.starts_with('-') => None,
        Some(_) => Some(e),
        None => {
            let e = cast(e, DataType::BigInt(None));
            let negative = Expr::BinaryOp {
                left: Box::new(e.clone()),
                op: BinaryOperator::Lt,
                right: Box::new(int_literal(0)),
            };
            Some(case_when(negative, null(), e))
        }
    }
}

/// A negative offset is no offset.
fn non_negative_offset(e: Expr) -> Expr {
    match integer_literal_text(&e) {
        Some(t) if t.starts_with('-') => int_literal(0),
        Some(_) => e,
        None => call(
            "greatest",
            vec![cast(e, DataType::BigInt(None)), int_literal(0)],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::dialect::Source;

    fn limit(sql: &str) -> String {
        let s = Source::new(sql).unwrap();
        let mut st = s.parse().unwrap();
        let _ = st.visit(&mut Clauses);
        st.to_string()
    }

    #[test]
    fn sqlite_limits_become_postgres_limits() {
        assert_eq!(
            limit("SELECT a FROM t LIMIT 5, 10"),
            "SELECT \"a\" FROM \"t\" LIMIT 10 OFFSET 5"
        );
        assert_eq!(
            limit("SELECT a FROM t LIMIT -1 OFFSET 3"),
            "SELECT \"a\" FROM \"t\" OFFSET 3"
        );
        assert_eq!(
            limit("SELECT a FROM t INDEXED BY i"),
            "SELECT \"a\" FROM \"t\""
        );
        assert_eq!(
            limit("SELECT a FROM t LIMIT ?"),
            "SELECT \"a\" FROM \"t\" LIMIT CASE WHEN ?::BIGINT < 0 THEN NULL ELSE ?::BIGINT END"
        );
    }
}
