//! Name resolution against the tables a statement reads: what needs to
//! know which table a column belongs to.
//!
//! - `rowid`, `oid`, `_rowid_` (bare or qualified) become the table's
//!   `INTEGER PRIMARY KEY` column; a table without one has no rowid on
//!   PostgreSQL and the reference is an error.
//! - `x MATCH 'query'` on a full-text table becomes a full-text search
//!   (`fts`).
//! - `*` over a table with hidden columns lists the SQLite columns.
//! - In a grouped `SELECT`, a column that is neither grouped nor
//!   aggregated (SQLite takes it from one row of the group) is wrapped in an
//!   aggregate picking one row's value: the row holding the `max()`/`min()`
//!   when the query has exactly one of those (as SQLite does), else any row.
//! - `json_each(x)` in `FROM` becomes `sqlite_json_each(x)`, and the
//!   `value` compared by `IN (SELECT value FROM json_each(…))` takes the
//!   type of the left side.
//!
//! Scopes nest: a subquery sees its own tables first, then the enclosing
//! query's (correlated references).

use std::ops::ControlFlow;
use std::rc::Rc;

use sqlparser::ast::{
    Delete, Expr, FromTable, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, GroupByExpr, Insert, JoinOperator, ObjectName, OrderBy, OrderByExpr,
    OrderByKind, OrderByOptions, OrderBySort, Query, Select, SelectItem, SetExpr, Statement,
    TableFactor, TableObject, TableWithJoins, Update, VisitMut, VisitorMut, WindowType,
};

use super::catalog::TableInfo;
use super::construct::{as_text, call, column, ident, object_name, qualified_column};
use super::fts;
use super::functions::{function_name, plain_args};
use super::grouping;
use super::implicit_order;
use super::{Context, Error};

/// One table a query reads, by the name that qualifies its columns.
#[derive(Clone, Debug)]
pub struct ScopeTable {
    /// The name qualifying its columns (alias, else table name).
    pub qualifier: String,
    /// The table's catalog entry (none for subqueries, CTEs, functions).
    pub info: Option<Rc<TableInfo>>,
    /// Its `FROM` has an outer join: its columns may read as NULL even
    /// where they are `NOT NULL`.
    pub nullable: bool,
    /// A subquery's result column names, when each is named by an alias or
    /// is a plain column (else unknown).
    pub columns: Option<Vec<String>>,
}

impl ScopeTable {
    pub(super) fn has_column(&self, name: &str) -> bool {
        self.info.as_ref().is_some_and(|i| i.column(name).is_some())
    }

    /// Whether `name` may be one of its columns: a catalog table's, a
    /// subquery's known names, anything of what is not known.
    pub(super) fn may_have_column(&self, name: &str) -> bool {
        match (&self.info, &self.columns) {
            (Some(_), _) => self.has_column(name),
            (None, Some(columns)) => columns.iter().any(|c| c == name),
            (None, None) => true,
        }
    }
}

/// Resolve names throughout a statement. `outer` is the scope the
/// statement runs in (a trigger's `new`/`old`), usually empty.
pub fn resolve(
    statement: &mut Statement,
    outer: Vec<ScopeTable>,
    cx: &mut Context,
) -> Result<(), Error> {
    let mut r = Resolver {
        cx,
        chain: vec![outer],
        query_scopes: vec![],
        select_owns_scope: vec![],
        body_scope_pushed: false,
        top_query_pending: false,
        query_is_top: vec![],
        error: None,
    };
    let _ = statement.visit(&mut r);
    r.error.map_or(Ok(()), Err)
}

/// The scope entry of a named table (as `qualifier`).
pub fn table_scope(name: &str, qualifier: &str, cx: &mut Context) -> Result<ScopeTable, Error> {
    Ok(ScopeTable {
        qualifier: qualifier.to_string(),
        info: cx.schema.table(name)?,
        nullable: false,
        columns: None,
    })
}

struct Resolver<'r, 's, 'a, 'c> {
    cx: &'r mut Context<'s, 'a, 'c>,
    chain: Vec<Vec<ScopeTable>>,
    /// Per query being visited: whether it pushed its body's scope (so
    /// `ORDER BY` sees the `FROM` tables, as in SQLite).
    query_scopes: Vec<bool>,
    /// Per `SELECT` being visited: whether it pushed its own scope.
    select_owns_scope: Vec<bool>,
    /// The next `SELECT` visited is a query body whose scope is pushed.
    body_scope_pushed: bool,
    /// The next query visited is the statement's outermost (a `SELECT`, or
    /// an `INSERT`'s rows): the one whose order the client sees.
    top_query_pending: bool,
    /// Per query being visited: whether it is the outermost.
    query_is_top: Vec<bool>,
    error: Option<Error>,
}

impl Resolver<'_, '_, '_, '_> {
    fn fail(&mut self, e: Error) -> ControlFlow<()> {
        self.error = Some(e);
        ControlFlow::Break(())
    }

    /// `json_each` in `FROM` rewritten, then the `FROM` tables pushed.
    fn push_select_scope(&mut self, select: &mut Select) -> Result<(), Error> {
        for twj in &mut select.from {
            json_each_in_from(twj)?;
        }
        let mut scope = self.scope_of_from(&select.from)?;
        let outer_join = select.from.iter().flat_map(|twj| &twj.joins).any(|j| {
            !matches!(
                j.join_operator,
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
            )
        });
        for t in &mut scope {
            t.nullable = outer_join;
        }
        self.chain.push(scope);
        Ok(())
    }

    /// SQLite's NULL placement for `ORDER BY` terms that do not write
    /// theirs: NULLs first ascending, last descending (PostgreSQL's is the
    /// opposite). Left alone on a column that is never NULL (a rowid),
    /// where it changes nothing and would keep PostgreSQL from reading the
    /// order off the primary key's index. `own_scope`: the innermost scope
    /// is this clause's `FROM`; `aliases`: the result columns' names,
    /// which `ORDER BY` names first.
    fn sqlite_null_order(&self, order: &mut [OrderByExpr], own_scope: bool, aliases: &[String]) {
        for o in order {
            if o.options.nulls_first.is_some() || (own_scope && self.never_null(&o.expr, aliases)) {
                continue;
            }
            o.options.nulls_first = Some(!matches!(o.options.sort, Some(OrderBySort::Desc)));
        }
    }

    /// A column of the innermost scope declared `NOT NULL`, not on the
    /// nullable side of an outer join.
    fn never_null(&self, expr: &Expr, aliases: &[String]) -> bool {
        let mut e = expr;
        while let Expr::Nested(x) | Expr::Collate { expr: x, .. } = e {
            e = x;
        }
        let Some(scope) = self.chain.last() else {
            return false;
        };
        let (table, name) = match e {
            Expr::Identifier(id) if !aliases.contains(&id.value) => {
                (scope.iter().find(|t| t.has_column(&id.value)), &id.value)
            }
            Expr::CompoundIdentifier(p) if p.len() == 2 => (
                scope.iter().find(|t| t.qualifier == p[0].value),
                &p[1].value,
            ),
            _ => return false,
        };
        table.is_some_and(|t| {
            !t.nullable
                && t.info
                    .as_ref()
                    .and_then(|i| i.column(name))
                    .is_some_and(|c| c.not_null)
        })
    }

    fn scope_of_from(&mut self, from: &[TableWithJoins]) -> Result<Vec<ScopeTable>, Error> {
        let mut tables = Vec::new();
        for twj in from {
            self.add_factor(&twj.relation, &mut tables)?;
            for j in &twj.joins {
                self.add_factor(&j.relation, &mut tables)?;
            }
        }
        Ok(tables)
    }

    fn add_factor(&mut self, factor: &TableFactor, out: &mut Vec<ScopeTable>) -> Result<(), Error> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let table = last_part(name);
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_else(|| table.clone());
                out.push(table_scope(&table, &qualifier, self.cx)?);
            }
            TableFactor::Table { name, alias, .. } => {
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_else(|| last_part(name));
                out.push(ScopeTable {
                    qualifier,
                    info: None,
                    nullable: false,
                    columns: None,
                });
            }
            TableFactor::Derived {
                alias, subquery, ..
            } => {
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_default();
                let columns = match alias {
                    Some(a) if !a.columns.is_empty() => {
                        Some(a.columns.iter().map(|c| c.name.value.clone()).collect())
                    }
                    _ => result_column_names(subquery),
                };
                out.push(ScopeTable {
                    qualifier,
                    info: None,
                    nullable: false,
                    columns,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.add_factor(&table_with_joins.relation, out)?;
                for j in &table_with_joins.joins {
                    self.add_factor(&j.relation, out)?;
                }
            }
            _ => out.push(ScopeTable {
                qualifier: String::new(),
                info: None,
                nullable: false,
                columns: None,
            }),
        }
        Ok(())
    }

    /// The table a qualifier names, innermost scope first.
    fn qualified(&self, qualifier: &str) -> Option<&ScopeTable> {
        self.chain
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|t| t.qualifier == qualifier)
    }

    /// The table of the innermost scope an unqualified column belongs to.
    fn owner_of(&self, column_name: &str) -> Option<&ScopeTable> {
        for scope in self.chain.iter().rev() {
            if let Some(t) = scope.iter().find(|t| t.has_column(column_name)) {
                return Some(t);
            }
            if scope.len() == 1 && scope[0].info.is_none() && !scope[0].qualifier.is_empty() {
                return None;
            }
        }
        None
    }

    fn resolve_rowid(&self, expr: &Expr) -> Result<Option<Expr>, Error> {
        match expr {
            Expr::Identifier(id) if is_rowid_name(&id.value) => {
                let innermost = self.chain.iter().rev().find(|s| !s.is_empty());
                let Some(scope) = innermost else {
                    return Ok(None);
                };
                if scope.iter().any(|t| t.has_column(&id.value)) {
                    return Ok(None);
                }
                let candidates: Vec<&ScopeTable> =
                    scope.iter().filter(|t| t.info.is_some()).collect();
                match candidates.as_slice() {
                    [only] => Ok(Some(column(&rowid_of(only)?))),
                    [] => Ok(None),
                    _ => Err(Error::new(format!("ambiguous column name: {}", id.value))),
                }
            }
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && is_rowid_name(&parts[1].value) =>
            {
                let Some(t) = self.qualified(&parts[0].value) else {
                    return Ok(None);
                };
                if t.info.is_none() || t.has_column(&parts[1].value) {
                    return Ok(None);
                }
                Ok(Some(qualified_column(&parts[0].value, &rowid_of(t)?)))
            }
            _ => Ok(None),
        }
    }

    fn resolve_match(&self, expr: &Expr) -> Result<Option<Expr>, Error> {
        let Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::Match,
            right,
        } = expr
        else {
            return Ok(None);
        };
        let (qualifier, column_name) = match left.as_ref() {
            Expr::Identifier(id) => (None, id.value.clone()),
            Expr::CompoundIdentifier(p) if p.len() == 2 => {
                (Some(p[0].value.clone()), p[1].value.clone())
            }
            other => return Err(Error::new(format!("MATCH on {other} is not supported"))),
        };
        let table = match &qualifier {
            Some(q) => self.qualified(q),
            None => self
                .chain
                .iter()
                .rev()
                .flat_map(|s| s.iter())
                .find(|t| t.qualifier == column_name || t.has_column(&column_name)),
        };
        let Some(table) = table else {
            return Err(Error::new(format!("no such column: {column_name}")));
        };
        let Some(info) = &table.info else {
            return Err(Error::new(
                "unable to use function MATCH in the requested context",
            ));
        };
        let whole_table = qualifier.is_none() && table.qualifier == column_name;
        let target = if whole_table {
            None
        } else {
            Some(column_name.as_str())
        };
        fts::match_expr(info, &table.qualifier, target, right.as_ref().clone()).map(Some)
    }

    fn group_bare_columns(&mut self, select: &mut Select) -> Result<(), Error> {
        let grouped = match &select.group_by {
            GroupByExpr::Expressions(exprs, _) if !exprs.is_empty() => exprs.clone(),
            _ if grouping::is_aggregate_query(select) => vec![],
            _ => return Ok(()),
        };
        let scope = self.chain.last().cloned().unwrap_or_default();
        let keyed = single_extreme(select);
        let mut wrap = BareColumns {
            grouped: &grouped,
            scope: &scope,
            keyed: keyed.as_ref(),
            depth: 0,
        };
        for item in &mut select.projection {
            match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    wrap.expr(e)
                }
                _ => {}
            }
        }
        if let Some(h) = &mut select.having {
            wrap.expr(h);
        }
        Ok(())
    }

    /// A name in `HAVING` that is no column of the `FROM` tables but a
    /// result column's alias stands for that result's expression, as in
    /// SQLite (`count(*) AS cnt … HAVING cnt > 1`); PostgreSQL knows no
    /// aliases there.
    fn having_aliases(&self, select: &mut Select) {
        let Some(having) = &mut select.having else {
            return;
        };
        let scope = self.chain.last().cloned().unwrap_or_default();
        let aliases: Vec<(String, Expr)> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } => {
                    Some((alias.value.clone(), expr.clone()))
                }
                _ => None,
            })
            .filter(|(name, _)| !scope.iter().any(|t| t.may_have_column(name)))
            .collect();
        if aliases.is_empty() {
            return;
        }
        struct Substitute<'a>(&'a [(String, Expr)]);
        impl VisitorMut for Substitute<'_> {
            type Break = ();
            fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if let Expr::Identifier(id) = expr {
                    if let Some((_, e)) = self.0.iter().find(|(n, _)| *n == id.value) {
                        *expr = Expr::Nested(Box::new(e.clone()));
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = having.visit(&mut Substitute(&aliases));
    }

    fn expand_stars(&mut self, select: &mut Select) -> Result<(), Error> {
        let scope = self.chain.last().cloned().unwrap_or_default();
        if !scope.iter().any(|t| {
            t.info
                .as_ref()
                .is_some_and(|i| i.virtual_module().is_some())
        }) {
            return Ok(());
        }
        let mut items = Vec::new();
        for item in std::mem::take(&mut select.projection) {
            match &item {
                SelectItem::Wildcard(_) => {
                    for t in &scope {
                        items.extend(columns_of(t)?);
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let q = kind.to_string().trim_matches('"').to_string();
                    let t = scope
                        .iter()
                        .find(|t| t.qualifier == q)
                        .ok_or_else(|| Error::new(format!("no such table: {q}")))?;
                    items.extend(columns_of(t)?);
                }
                _ => items.push(item),
            }
        }
        select.projection = items;
        Ok(())
    }
}

/// The result column names of a query whose every column is named by an
/// alias or is a plain column.
fn result_column_names(query: &Query) -> Option<Vec<String>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(id.value.clone()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                p.last().map(|i| i.value.clone())
            }
            _ => None,
        })
        .collect()
}

fn columns_of(t: &ScopeTable) -> Result<Vec<SelectItem>, Error> {
    let info = t
        .info
        .as_ref()
        .ok_or_else(|| Error::new("* over a subquery beside a virtual table is not supported"))?;
    Ok(info
        .columns
        .iter()
        .map(|c| SelectItem::UnnamedExpr(qualified_column(&t.qualifier, &c.name)))
        .collect())
}

fn rowid_of(t: &ScopeTable) -> Result<String, Error> {
    let info = t.info.as_ref().expect("a catalog table");
    if let Some(col) = fts::rowid_column(info) {
        return Ok(col.to_string());
    }
    info.rowid_column.clone().ok_or_else(|| {
        Error::new(format!(
            "rowid of table {} is not supported: it has no INTEGER PRIMARY KEY",
            info.name
        ))
    })
}

fn is_rowid_name(name: &str) -> bool {
    matches!(name, "rowid" | "oid" | "_rowid_")
}

/// The last part of a (possibly schema-qualified) name.
pub fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

impl VisitorMut for Resolver<'_, '_, '_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.query_is_top
            .push(std::mem::take(&mut self.top_query_pending));
        let SetExpr::Select(select) = query.body.as_mut() else {
            self.query_scopes.push(false);
            return ControlFlow::Continue(());
        };
        match self.push_select_scope(select) {
            Ok(()) => {
                self.query_scopes.push(true);
                self.body_scope_pushed = true;
                ControlFlow::Continue(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let own_scope = self.query_scopes.pop() == Some(true);
        let from: &[ScopeTable] = match (own_scope, self.chain.last()) {
            (true, Some(scope)) => scope,
            _ => &[],
        };
        if self.query_is_top.pop() == Some(true) {
            grouping::group_key_order(query, false);
            implicit_order::distinct_scan_order(query, from);
            implicit_order::compound_order(query);
        }
        grouping::distinct_order(query, from);
        if let Some(OrderBy {
            kind: OrderByKind::Expressions(order),
            ..
        }) = &mut query.order_by
        {
            let aliases: Vec<String> = match query.body.as_ref() {
                SetExpr::Select(select) => select
                    .projection
                    .iter()
                    .filter_map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => vec![],
            };
            self.sqlite_null_order(order, own_scope, &aliases);
        }
        if own_scope {
            self.chain.pop();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        if std::mem::take(&mut self.body_scope_pushed) {
            self.select_owns_scope.push(false);
            return ControlFlow::Continue(());
        }
        match self.push_select_scope(select) {
            Ok(()) => {
                self.select_owns_scope.push(true);
                ControlFlow::Continue(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        grouping::resolve_group_terms(select, self.chain.last().map_or(&[], |s| s.as_slice()));
        self.having_aliases(select);
        let result = self
            .expand_stars(select)
            .and_then(|_| self.group_bare_columns(select));
        if self.select_owns_scope.pop() == Some(true) {
            self.chain.pop();
        }
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => self.fail(e),
        }
    }

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        self.top_query_pending = matches!(statement, Statement::Query(_) | Statement::Insert(_));
        let target = match statement {
            Statement::Update(Update { table, .. }) => {
                Some(self.scope_of_from(std::slice::from_ref(table)))
            }
            Statement::Delete(Delete {
                from: FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f),
                ..
            }) => Some(self.scope_of_from(f)),
            Statement::Insert(Insert {
                table: TableObject::TableName(name),
                table_alias,
                ..
            }) => {
                let t = last_part(name);
                let q = table_alias
                    .as_ref()
                    .map(|a| a.alias.value.clone())
                    .unwrap_or_else(|| t.clone());
                Some(table_scope(&t, &q, self.cx).map(|s| vec![s]))
            }
            _ => None,
        };
        match target {
            Some(Ok(scope)) => {
                self.chain.push(scope);
                ControlFlow::Continue(())
            }
            Some(Err(e)) => self.fail(e),
            None => {
                self.chain.push(vec![]);
                ControlFlow::Continue(())
            }
        }
    }

    fn post_visit_statement(&mut self, _statement: &mut Statement) -> ControlFlow<()> {
        self.chain.pop();
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(Function {
            over: Some(WindowType::WindowSpec(spec)),
            ..
        }) = expr
        {
            self.sqlite_null_order(&mut spec.order_by, true, &[]);
        }
        let resolved = self.resolve_rowid(expr).and_then(|r| match r {
            Some(e) => Ok(Some(e)),
            None => self.resolve_match(expr),
        });
        match resolved {
            Ok(Some(e)) => *expr = e,
            Ok(None) => {}
            Err(e) => return self.fail(e),
        }
        if let Expr::In {
            expr: left,
            target: sqlparser::ast::InTarget::Subquery(subquery),
            ..
        } = expr
        {
            let left_type = self.type_of(left);
            json_each_value_type(subquery, left_type.as_deref());
        }
        ControlFlow::Continue(())
    }
}

impl Resolver<'_, '_, '_, '_> {
    /// PostgreSQL's type of a column reference, when known.
    fn type_of(&self, expr: &Expr) -> Option<String> {
        let (table, name) = match expr {
            Expr::Identifier(id) => (self.owner_of(&id.value)?, &id.value),
            Expr::CompoundIdentifier(p) if p.len() == 2 => {
                (self.qualified(&p[0].value)?, &p[1].value)
            }
            _ => return None,
        };
        table.info.as_ref()?.column(name).map(|c| c.pg_type.clone())
    }
}

/// `json_each(x)` in FROM becomes the helper set-returning function.
fn json_each_in_from(twj: &mut TableWithJoins) -> Result<(), Error> {
    let mut factors: Vec<&mut TableFactor> = vec![&mut twj.relation];
    factors.extend(twj.joins.iter_mut().map(|j| &mut j.relation));
    for f in factors {
        if let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = f
        {
            let fname = last_part(name);
            if fname != "json_each" {
                return Err(Error::new(format!(
                    "no such table-valued function: {fname}"
                )));
            }
            if args.args.len() != 1 {
                return Err(Error::new(
                    "json_each() with a path argument is not supported",
                ));
            }
            let arg = match &args.args[0] {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e.clone(),
                other => return Err(Error::new(format!("json_each({other}) is not supported"))),
            };
            let alias = alias.clone().or_else(|| {
                Some(sqlparser::ast::TableAlias {
                    explicit: true,
                    name: ident("json_each"),
                    columns: vec![],
                    at: None,
                })
            });
            *f = TableFactor::Table {
                name: object_name("sqlite_json_each"),
                alias,
                args: Some(sqlparser::ast::TableFunctionArgs {
                    args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(as_text(arg)))],
                    settings: None,
                }),
                with_hints: vec![],
                version: None,
                with_ordinality: false,
                partitions: vec![],
                json_path: None,
                sample: None,
                index_directives: vec![],
                inheritance: None,
            };
        }
    }
    Ok(())
}

/// In `x IN (SELECT value FROM json_each(…))`, cast `value` (text) to the
/// type of `x` so the comparison is typed as SQLite's would be.
fn json_each_value_type(subquery: &mut Query, left_type: Option<&str>) {
    let SetExpr::Select(select) = subquery.body.as_mut() else {
        return;
    };
    let from_json = select.from.len() == 1
        && matches!(&select.from[0].relation, TableFactor::Table { name, .. } if last_part(name) == "sqlite_json_each");
    if !from_json || select.projection.len() != 1 {
        return;
    }
    let Some(pg_type) = left_type else { return };
    let data_type = match pg_type {
        "bigint" => sqlparser::ast::DataType::BigInt(None),
        "double precision" => sqlparser::ast::DataType::DoublePrecision,
        "numeric" => sqlparser::ast::DataType::Numeric(sqlparser::ast::ExactNumberInfo::None),
        "boolean" => sqlparser::ast::DataType::Boolean,
        _ => return,
    };
    if let SelectItem::UnnamedExpr(e) = &mut select.projection[0] {
        *e = super::construct::cast(e.clone(), data_type);
    }
}

/// The one `max(x)`/`min(x)` of a grouped query (SQLite then takes bare
/// columns from the row holding that extreme).
fn single_extreme(select: &Select) -> Option<(bool, Expr)> {
    let mut found = Vec::new();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            collect_extremes(e, &mut found);
        }
    }
    if found.len() == 1 {
        found.pop()
    } else {
        None
    }
}

fn collect_extremes(e: &Expr, out: &mut Vec<(bool, Expr)>) {
    if let Expr::Function(f) = e {
        let name = function_name(f);
        if (name == "max" || name == "min") && f.over.is_none() {
            if let Ok(args) = plain_args(f) {
                if let [Some(arg)] = args.as_slice() {
                    out.push((name == "max", arg.clone()));
                    return;
                }
            }
        }
        if let Ok(args) = plain_args(f) {
            for a in args.into_iter().flatten() {
                collect_extremes(&a, out);
            }
        }
        return;
    }
    match e {
        Expr::BinaryOp { left, right, .. } => {
            collect_extremes(left, out);
            collect_extremes(right, out);
        }
        Expr::Nested(x) | Expr::UnaryOp { expr: x, .. } | Expr::Cast { expr: x, .. } => {
            collect_extremes(x, out)
        }
        _ => {}
    }
}

/// SQLite's aggregate functions (`min`/`max` with one argument).
pub(super) const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "total",
    "min",
    "max",
    "group_concat",
    "string_agg",
];

/// Wraps the bare columns of a grouped query's expressions.
struct BareColumns<'b> {
    grouped: &'b [Expr],
    scope: &'b [ScopeTable],
    keyed: Option<&'b (bool, Expr)>,
    depth: usize,
}

impl BareColumns<'_> {
    fn expr(&mut self, e: &mut Expr) {
        if self.grouped.contains(e) {
            return;
        }
        match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) if !self.dependent(e) => {
                *e = self.pick_one(e.clone());
            }
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {}
            Expr::Function(f) => {
                let name = function_name(f);
                let is_aggregate = AGGREGATES.contains(&name.as_str())
                    && f.over.is_none()
                    && !is_scalar_extreme(f);
                if is_aggregate {
                    return;
                }
                if let FunctionArguments::List(list) = &mut f.args {
                    for a in &mut list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            self.expr(x);
                        }
                    }
                }
            }
            Expr::BinaryOp { left, right, .. } => {
                self.expr(left);
                self.expr(right);
            }
            Expr::Nested(x)
            | Expr::UnaryOp { expr: x, .. }
            | Expr::Cast { expr: x, .. }
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::Collate { expr: x, .. } => self.expr(x),
            Expr::Like {
                expr: x,
                pattern: p,
                ..
            } => {
                self.expr(x);
                self.expr(p);
            }
            Expr::In {
                expr: x,
                target: sqlparser::ast::InTarget::List(list),
                ..
            } => {
                self.expr(x);
                for i in list {
                    self.expr(i);
                }
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(o) = operand {
                    self.expr(o);
                }
                for c in conditions {
                    self.expr(&mut c.condition);
                    self.expr(&mut c.result);
                }
                if let Some(x) = else_result {
                    self.expr(x);
                }
            }
            _ => {}
        }
        let _ = self.depth;
    }

    /// Whether a column is determined by the group: grouped itself, or of a
    /// table whose primary key is grouped.
    fn dependent(&self, e: &Expr) -> bool {
        let (table, name) = match e {
            Expr::Identifier(id) => (
                self.scope.iter().find(|t| t.has_column(&id.value)),
                id.value.as_str(),
            ),
            Expr::CompoundIdentifier(p) if p.len() == 2 => (
                self.scope.iter().find(|t| t.qualifier == p[0].value),
                p[1].value.as_str(),
            ),
            _ => return false,
        };
        let Some(table) = table else {
            // Not a column of this query's tables: an outer reference or an
            // output alias, which PostgreSQL accepts as it is.
            return true;
        };
        let grouped_here = |col: &str| {
            self.grouped.iter().any(|g| match g {
                Expr::Identifier(id) => {
                    id.value == col && self.scope.iter().filter(|t| t.has_column(col)).count() <= 1
                }
                Expr::CompoundIdentifier(p) => {
                    p.len() == 2 && p[0].value == table.qualifier && p[1].value == col
                }
                _ => false,
            })
        };
        if grouped_here(name) {
            return true;
        }
        let Some(info) = &table.info else { return true };
        !info.primary_key.is_empty() && info.primary_key.iter().all(|k| grouped_here(k))
    }

    fn pick_one(&self, column_ref: Expr) -> Expr {
        let mut agg = call("array_agg", vec![column_ref]);
        if let (Some((is_max, key)), Expr::Function(f)) = (self.keyed, &mut agg) {
            if let FunctionArguments::List(list) = &mut f.args {
                list.clauses
                    .push(FunctionArgumentClause::OrderBy(vec![OrderByExpr {
                        expr: key.clone(),
                        options: OrderByOptions {
                            sort: Some(if *is_max {
                                sqlparser::ast::OrderBySort::Desc
                            } else {
                                sqlparser::ast::OrderBySort::Asc
                            }),
                            nulls_first: Some(false),
                        },
                        with_fill: None,
                    }]));
            }
        }
        call("sqlite_first", vec![agg])
    }
}

fn is_scalar_extreme(f: &sqlparser::ast::Function) -> bool {
    let name = function_name(f);
    (name == "min" || name == "max") && plain_args(f).map(|a| a.len() > 1).unwrap_or(false)
}
