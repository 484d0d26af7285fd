//! `INSERT`, `UPDATE`, `DELETE`.
//!
//! - The rowid: an `INSERT` into a table with an `INTEGER PRIMARY KEY`
//!   returns that column last (`rowid_column`), so `last_insert_rowid()` is
//!   exact.
//! - `INSERT OR IGNORE` is `ON CONFLICT DO NOTHING`. `INSERT OR REPLACE` and
//!   `REPLACE INTO` take their conflict target from the table's unique keys
//!   in the catalog: with one key that the row can hit, `ON CONFLICT (key)
//!   DO UPDATE` sets every column from `EXCLUDED` (columns not given get
//!   their defaults, as in SQLite's delete-and-insert); with several, the
//!   conflicting rows are deleted first (single-row `VALUES` only).
//! - An upsert without a conflict target takes the table's only unique key.
//! - A column assigned twice in one `UPDATE`: the last assignment wins.
//! - `UPDATE/DELETE … ORDER BY … LIMIT n` limit the rows through a
//!   subquery on the rowid (or `ctid`).
//! - Integer literals in `VALUES` and `SET` are untyped (`literals`), so
//!   `1` fills a boolean column and `'5'` an integer one; a text value
//!   assigned to a non-text column is cast to the column's type.
//! - `UPDATE sqlite_schema …` is `schema_table`'s.

use std::rc::Rc;

use sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, Delete, DoUpdate, Expr, FromTable, Insert,
    OnConflict, OnConflictAction, OnInsert, OrderByExpr, Query, SelectItem, SetExpr,
    SqliteOnConflict, Statement, TableFactor, TableObject, Update, Value,
};

use super::catalog::{Event, TableInfo};
use super::construct::{cast, column, ident, qualified_column, to_text};
use super::fts;
use super::kinds::is_text;
use super::literals::loosen;
use super::query::rewrite_statement;
use super::schema_table;
use super::scope::last_part;
use super::{Context, Error, Output, Plan, Sql};

/// Translate an `INSERT`, `UPDATE` or `DELETE`.
pub fn translate(statement: Statement, cx: &mut Context) -> Result<Plan, Error> {
    match statement {
        Statement::Insert(insert) => insert_plan(insert, cx),
        Statement::Update(update) => update_plan(update, cx),
        Statement::Delete(delete) => delete_plan(delete, cx),
        other => Err(Error::new(format!("not a data change: {other}"))),
    }
}

/// SQLite refuses to change a view's rows unless an `INSTEAD OF` trigger
/// does it (PostgreSQL would write through a simple view to its table).
fn writable(info: &TableInfo, event: Event, cx: &mut Context) -> Result<(), Error> {
    if info.is_view() && !cx.schema.has_instead_of_trigger(&info.name, event)? {
        return Err(Error::new(format!(
            "cannot modify {} because it is a view",
            info.name
        )));
    }
    Ok(())
}

fn insert_plan(mut insert: Insert, cx: &mut Context) -> Result<Plan, Error> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(Error::new("INSERT INTO a table function is not supported"));
    };
    let table_name = last_part(name);
    let info = cx.schema.existing_table(&table_name)?;
    writable(&info, Event::Insert, cx)?;
    if let Some(plan) = fts_command(&insert, &info, cx)? {
        return Ok(plan);
    }
    let columns: Vec<String> = insert.columns.iter().map(last_part).collect();
    let mut before = Vec::new();
    match (insert.or.take(), insert.replace_into) {
        (Some(SqliteOnConflict::Replace), _) | (_, true) => {
            insert.replace_into = false;
            before = replace(&mut insert, &info, &columns)?;
        }
        (Some(SqliteOnConflict::Ignore), _) => {
            insert.on = Some(OnInsert::OnConflict(OnConflict {
                conflict_target: None,
                action: OnConflictAction::DoNothing,
            }));
        }
        (Some(SqliteOnConflict::Rollback), _) => {
            return Err(Error::new("INSERT OR ROLLBACK is not supported"))
        }
        _ => {}
    }
    complete_upsert_target(&mut insert, &info)?;
    loosen_values(insert.source.as_deref_mut());
    if let Some(OnInsert::OnConflict(OnConflict {
        action: OnConflictAction::DoUpdate(u),
        ..
    })) = &mut insert.on
    {
        prepare_assignments(&mut u.assignments)?;
        qualify_target_columns(u, &info, &table_name);
    }
    let yields_rows = insert.returning.is_some();
    let in_trigger = cx.trigger_scope.is_some();
    let rowid = if in_trigger {
        None
    } else {
        info.rowid_column
            .clone()
            .or_else(|| fts::rowid_column(&info).map(str::to_string))
    };
    if let Some(rowid) = &rowid {
        insert
            .returning
            .get_or_insert_with(Vec::new)
            .push(SelectItem::UnnamedExpr(column(rowid)));
    }
    let mut statement = Statement::Insert(insert);
    rewrite_statement(&mut statement, vec![], cx)?;
    real_literals_as_text(&mut statement, &info);
    if let Statement::Insert(Insert {
        on:
            Some(OnInsert::OnConflict(OnConflict {
                action: OnConflictAction::DoUpdate(u),
                ..
            })),
        ..
    }) = &mut statement
    {
        type_assignments(&mut u.assignments, &info);
    }
    let mut outputs: Vec<Output> = before;
    outputs.push(Output {
        sql: Sql::Tree(statement),
        yields_rows,
        counts_changes: true,
        rowid_column: rowid.is_some(),
    });
    Ok(Plan::write(outputs))
}

/// In `DO UPDATE`, SQLite reads a bare column as the target row's;
/// PostgreSQL finds it ambiguous with `excluded`: qualify it.
fn qualify_target_columns(update: &mut DoUpdate, info: &TableInfo, table: &str) {
    use sqlparser::ast::{VisitMut, VisitorMut};
    struct Qualify<'q> {
        info: &'q TableInfo,
        table: &'q str,
    }
    impl VisitorMut for Qualify<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Identifier(id) = e {
                if self.info.column(&id.value).is_some() {
                    *e = qualified_column(self.table, &id.value);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut q = Qualify { info, table };
    for a in &mut update.assignments {
        let _ = a.value.visit(&mut q);
    }
    if let Some(w) = &mut update.selection {
        let _ = w.visit(&mut q);
    }
}

/// `INSERT INTO fts(fts) VALUES('rebuild')` and the other FTS commands.
fn fts_command(insert: &Insert, info: &TableInfo, cx: &mut Context) -> Result<Option<Plan>, Error> {
    if !fts::is_fts(info)
        || insert.columns.first().map(last_part).as_deref() != Some(info.name.as_str())
    {
        return Ok(None);
    }
    let command = single_text_value(insert.source.as_deref())
        .ok_or_else(|| Error::new("an fts4 command insert needs one text value"))?;
    if insert.columns.len() > 1 {
        return Err(Error::new(format!(
            "fts4 command {command:?} with columns is not supported"
        )));
    }
    let content = if fts::command_needs_content(&command) {
        match fts::content_table_name(info)? {
            Some(name) => Some(cx.schema.existing_table(&name)?),
            None => None,
        }
    } else {
        None
    };
    let mut outputs = fts::command(info, &command, content.as_deref())?;
    // SQLite's last_insert_rowid() after a command insert is 0.
    outputs.push(Output {
        sql: Sql::Text("SELECT 0::bigint".into()),
        yields_rows: false,
        counts_changes: false,
        rowid_column: true,
    });
    Ok(Some(Plan::write(outputs)))
}

fn single_text_value(source: Option<&Query>) -> Option<String> {
    let SetExpr::Values(values) = source?.body.as_ref() else {
        return None;
    };
    match values.rows.as_slice() {
        [row] => match row.as_slice() {
            [Expr::Value(v)] => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// `INSERT OR REPLACE`: an upsert on the one key the row can hit, or a
/// delete of the conflicting rows first. Returns the statements to run
/// before the insert.
fn replace(
    insert: &mut Insert,
    info: &TableInfo,
    columns: &[String],
) -> Result<Vec<Output>, Error> {
    let given = |c: &String| columns.is_empty() || columns.contains(c);
    let keys: Vec<&Vec<String>> = info
        .unique_keys
        .iter()
        .filter(|k| k.iter().all(given))
        .collect();
    match keys.as_slice() {
        [] => Ok(vec![]),
        [key] => {
            let assignments = info
                .columns
                .iter()
                .map(|c| Assignment {
                    target: AssignmentTarget::ColumnName(super::construct::object_name(&c.name)),
                    value: qualified_column("excluded", &c.name),
                })
                .collect();
            insert.on = Some(OnInsert::OnConflict(OnConflict {
                conflict_target: Some(ConflictTarget::Columns {
                    columns: key.iter().map(|c| ident(c)).collect(),
                    predicate: None,
                }),
                action: OnConflictAction::DoUpdate(DoUpdate {
                    assignments,
                    selection: None,
                }),
            }));
            Ok(vec![])
        }
        several => delete_conflicting(insert, info, columns, several),
    }
}

/// `DELETE FROM t WHERE (k1) = (v1) OR (k2) = (v2) …` for a single-row
/// `VALUES` hitting several unique keys.
fn delete_conflicting(
    insert: &Insert,
    info: &TableInfo,
    columns: &[String],
    keys: &[&Vec<String>],
) -> Result<Vec<Output>, Error> {
    let row = match insert.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(v)) if v.rows.len() == 1 => v.rows[0].clone(),
        _ => {
            return Err(Error::new(format!(
                "INSERT OR REPLACE into {} (several unique keys) needs a single VALUES row",
                info.name
            )))
        }
    };
    let names: Vec<String> = if columns.is_empty() {
        info.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        columns.to_vec()
    };
    let value_of = |c: &String| {
        names
            .iter()
            .position(|n| n == c)
            .and_then(|i| row.get(i))
            .cloned()
    };
    let mut conditions = Vec::new();
    for key in keys {
        let mut parts = Vec::new();
        for c in key.iter() {
            let v =
                value_of(c).ok_or_else(|| Error::new(format!("no value for key column {c}")))?;
            parts.push(Expr::BinaryOp {
                left: Box::new(column(c)),
                op: sqlparser::ast::BinaryOperator::Eq,
                right: Box::new(loosen(v)),
            });
        }
        conditions.push(and_all(parts));
    }
    let condition = conditions
        .into_iter()
        .reduce(|l, r| Expr::BinaryOp {
            left: Box::new(l),
            op: sqlparser::ast::BinaryOperator::Or,
            right: Box::new(r),
        })
        .expect("several keys");
    let sql = format!(
        "DELETE FROM {} WHERE {condition}",
        super::construct::quote_ident(&info.name)
    );
    let source = super::dialect::Source::new(&sql)?;
    let statement = source.parse()?;
    Ok(vec![Output::effect(Sql::Tree(statement))])
}

fn and_all(parts: Vec<Expr>) -> Expr {
    parts
        .into_iter()
        .reduce(|l, r| Expr::BinaryOp {
            left: Box::new(l),
            op: sqlparser::ast::BinaryOperator::And,
            right: Box::new(r),
        })
        .expect("a key has columns")
}

/// `ON CONFLICT DO UPDATE` without a target takes the only unique key.
fn complete_upsert_target(insert: &mut Insert, info: &TableInfo) -> Result<(), Error> {
    if let Some(OnInsert::OnConflict(oc)) = &mut insert.on {
        if oc.conflict_target.is_none() && matches!(oc.action, OnConflictAction::DoUpdate(_)) {
            let key = match info.unique_keys.as_slice() {
                [only] => only,
                _ => {
                    return Err(Error::new(format!(
                        "ON CONFLICT DO UPDATE on {} needs a conflict target",
                        info.name
                    )))
                }
            };
            oc.conflict_target = Some(ConflictTarget::Columns {
                columns: key.iter().map(|c| ident(c)).collect(),
                predicate: None,
            });
        }
    }
    Ok(())
}

/// Whether `e` is a REAL literal as translated (`2.0::DOUBLE PRECISION`).
fn is_real_literal(e: &Expr) -> bool {
    matches!(e, Expr::Cast {
        expr,
        data_type: sqlparser::ast::DataType::DoublePrecision,
        ..
    } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..))))
}

/// Whether `e`, stored into a text column, must be converted to text the
/// SQLite way first: a REAL literal, or a computed value not text by its
/// form (a REAL is '1.0', a boolean '1', where PostgreSQL's assignment
/// would store float8's '1' and 'true'). Columns, parameters and literals
/// are left to the assignment.
fn stored_as_number_text(e: &Expr) -> bool {
    is_real_literal(e)
        || (matches!(
            e,
            Expr::BinaryOp { .. }
                | Expr::UnaryOp { .. }
                | Expr::Function(_)
                | Expr::Cast { .. }
                | Expr::Nested(_)
                | Expr::Case { .. }
        ) && !is_text(e))
}

/// After translation: a REAL literal or a computed number of a `VALUES`
/// row stored into a text column is SQLite's text of it (`1.0` is '1.0';
/// PostgreSQL's assignment would store float8's '1').
fn real_literals_as_text(statement: &mut Statement, info: &TableInfo) {
    let Statement::Insert(Insert {
        columns,
        source: Some(q),
        ..
    }) = statement
    else {
        return;
    };
    let SetExpr::Values(values) = q.body.as_mut() else {
        return;
    };
    let is_text_column: Vec<bool> = if columns.is_empty() {
        info.columns.iter().map(|c| c.pg_type == "text").collect()
    } else {
        columns
            .iter()
            .map(|n| {
                info.column(&last_part(n))
                    .is_some_and(|c| c.pg_type == "text")
            })
            .collect()
    };
    for row in &mut values.rows {
        for (cell, text) in row.iter_mut().zip(&is_text_column) {
            if *text && stored_as_number_text(cell) {
                *cell = to_text(std::mem::replace(cell, Expr::value(Value::Null)));
            }
        }
    }
}

/// Integer literals of `VALUES` rows take the column's type.
fn loosen_values(source: Option<&mut Query>) {
    if let Some(q) = source {
        if let SetExpr::Values(values) = q.body.as_mut() {
            for row in &mut values.rows {
                for cell in row.iter_mut() {
                    *cell = loosen(std::mem::replace(cell, Expr::value(Value::Null)));
                }
            }
        }
    }
}

/// Drop all but the last assignment of each column; loosen literals.
fn prepare_assignments(assignments: &mut Vec<Assignment>) -> Result<(), Error> {
    let target_name = |a: &Assignment| match &a.target {
        AssignmentTarget::ColumnName(n) => Some(last_part(n)),
        AssignmentTarget::Tuple(_) => None,
    };
    let mut kept: Vec<Assignment> = Vec::new();
    for a in assignments.drain(..).rev() {
        let name = target_name(&a);
        if name.is_some() && kept.iter().any(|k| target_name(k) == name) {
            continue;
        }
        kept.push(a);
    }
    kept.reverse();
    for a in &mut kept {
        a.value = loosen(std::mem::replace(&mut a.value, Expr::value(Value::Null)));
    }
    *assignments = kept;
    Ok(())
}

/// After translation: a text value assigned to a non-text column is cast
/// to the column's type.
fn type_assignments(assignments: &mut [Assignment], info: &TableInfo) {
    for a in assignments {
        let AssignmentTarget::ColumnName(n) = &a.target else {
            continue;
        };
        if let Some(col) = info.column(&last_part(n)) {
            a.value = typed_for_column(
                std::mem::replace(&mut a.value, Expr::value(Value::Null)),
                &col.pg_type,
            );
        }
    }
}

/// A text-valued expression stored into a non-text column is cast to the
/// column's type (PostgreSQL has no implicit cast from text).
fn typed_for_column(value: Expr, pg_type: &str) -> Expr {
    if pg_type == "text" && stored_as_number_text(&value) {
        return to_text(value);
    }
    let literal =
        matches!(&value, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
    if pg_type == "text" || literal || !is_text(&value) {
        return value;
    }
    let data_type = match pg_type {
        "bigint" => sqlparser::ast::DataType::BigInt(None),
        "double precision" => sqlparser::ast::DataType::DoublePrecision,
        "numeric" => sqlparser::ast::DataType::Numeric(sqlparser::ast::ExactNumberInfo::None),
        "boolean" => sqlparser::ast::DataType::Boolean,
        "bytea" => sqlparser::ast::DataType::Bytea,
        "real" => sqlparser::ast::DataType::Real,
        _ => return value,
    };
    cast(value, data_type)
}

fn update_plan(mut update: Update, cx: &mut Context) -> Result<Plan, Error> {
    let (table_name, qualifier) = named_table(&update.table.relation)
        .ok_or_else(|| Error::new("UPDATE of a subquery is not supported"))?;
    if schema_table::is_schema_table(&table_name) {
        return schema_table::update(update, cx);
    }
    match update.or.take() {
        None | Some(SqliteOnConflict::Abort) | Some(SqliteOnConflict::Fail) => {}
        Some(other) => return Err(Error::new(format!("UPDATE OR {other} is not supported"))),
    }
    let info = cx.schema.existing_table(&table_name)?;
    writable(&info, Event::Update, cx)?;
    prepare_assignments(&mut update.assignments)?;
    if update.limit.is_some() || !update.order_by.is_empty() {
        let limited = limited_rows(
            &info,
            &qualifier,
            &table_name,
            update.selection.take(),
            std::mem::take(&mut update.order_by),
            update.limit.take(),
        )?;
        update.selection = Some(limited);
    }
    let yields_rows = update.returning.is_some();
    let mut statement = Statement::Update(update);
    rewrite_statement(&mut statement, vec![], cx)?;
    if let Statement::Update(u) = &mut statement {
        type_assignments(&mut u.assignments, &info);
    }
    Ok(Plan::write(vec![Output {
        sql: Sql::Tree(statement),
        yields_rows,
        counts_changes: true,
        rowid_column: false,
    }]))
}

fn delete_plan(mut delete: Delete, cx: &mut Context) -> Result<Plan, Error> {
    let tables = match &delete.from {
        FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t.clone(),
    };
    let single = if tables.len() == 1 {
        named_table(&tables[0].relation)
    } else {
        None
    };
    let (table_name, qualifier) =
        single.ok_or_else(|| Error::new("DELETE from several tables is not supported"))?;
    if schema_table::is_schema_table(&table_name) {
        return Err(Error::new("table sqlite_master may not be modified"));
    }
    let info = cx.schema.existing_table(&table_name)?;
    writable(&info, Event::Delete, cx)?;
    if delete.limit.is_some() || !delete.order_by.is_empty() {
        let limited = limited_rows(
            &info,
            &qualifier,
            &table_name,
            delete.selection.take(),
            std::mem::take(&mut delete.order_by),
            delete.limit.take(),
        )?;
        delete.selection = Some(limited);
    }
    let yields_rows = delete.returning.is_some();
    let mut statement = Statement::Delete(delete);
    rewrite_statement(&mut statement, vec![], cx)?;
    Ok(Plan::write(vec![Output {
        sql: Sql::Tree(statement),
        yields_rows,
        counts_changes: true,
        rowid_column: false,
    }]))
}

/// A table in `FROM`: its name and the name qualifying its columns.
fn named_table(factor: &TableFactor) -> Option<(String, String)> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    let table = last_part(name);
    let qualifier = alias
        .as_ref()
        .map(|a| a.name.value.clone())
        .unwrap_or_else(|| table.clone());
    Some((table, qualifier))
}

/// `key IN (SELECT key FROM t WHERE … ORDER BY … LIMIT …)`, the key being
/// the rowid column, else PostgreSQL's `ctid`.
fn limited_rows(
    info: &Rc<TableInfo>,
    qualifier: &str,
    table: &str,
    selection: Option<Expr>,
    order_by: Vec<OrderByExpr>,
    limit: Option<Expr>,
) -> Result<Expr, Error> {
    let key = info
        .rowid_column
        .clone()
        .unwrap_or_else(|| "ctid".to_string());
    let key_sql = if key == "ctid" {
        "ctid".to_string()
    } else {
        super::construct::quote_ident(&key)
    };
    let mut sql = format!(
        "SELECT {key_sql} FROM {} AS {}",
        super::construct::quote_ident(table),
        super::construct::quote_ident(qualifier)
    );
    if let Some(w) = &selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    if !order_by.is_empty() {
        sql.push_str(&format!(
            " ORDER BY {}",
            order_by
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(l) = &limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    let source = super::dialect::Source::new(&sql)?;
    let Statement::Query(subquery) = source.parse()? else {
        unreachable!("a SELECT")
    };
    let key_expr = if key == "ctid" {
        Expr::Identifier(sqlparser::ast::Ident::new("ctid"))
    } else {
        qualified_column(qualifier, &key)
    };
    Ok(Expr::In {
        expr: Box::new(key_expr),
        target: sqlparser::ast::InTarget::Subquery(subquery),
        negated: false,
        global: false,
    })
}
