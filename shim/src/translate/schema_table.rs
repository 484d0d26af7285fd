//! `sqlite_master` / `sqlite_schema`: reading it is a view `bootstrap`
//! defines over PostgreSQL's catalog (objects whose comment holds their
//! SQLite text); writing it (`PRAGMA writable_schema` then `UPDATE
//! sqlite_schema SET sql = … WHERE …`, as Plex's migrations do to change
//! declared types) is translated here.
//!
//! The new `sql` of each matching row is computed on PostgreSQL (the `SET`
//! expression, translated, evaluated over the view) while translating. For
//! a table, the new text is parsed as SQLite DDL: each column whose declared
//! type changed gets the new declared type, and a new PostgreSQL type when
//! its affinity maps to another (`ALTER COLUMN … TYPE … USING`, values kept
//! as they convert). The object's comment becomes the new text.

use sqlparser::ast::{
    AssignmentTarget, ColumnDef, Expr, SelectItem, SetExpr, Statement, TableFactor, Update,
};

use super::affinity::postgres_type;
use super::construct::{quote_ident, quote_literal};
use super::dialect::Source;
use super::query::rewrite_statement;
use super::scope::last_part;
use super::{Context, Error, Output, Plan};

/// Whether a name is SQLite's schema table.
pub fn is_schema_table(name: &str) -> bool {
    matches!(
        name,
        "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_temp_schema"
    )
}

/// `UPDATE sqlite_schema SET sql = … WHERE …`.
pub fn update(update: Update, cx: &mut Context) -> Result<Plan, Error> {
    let [assignment] = update.assignments.as_slice() else {
        return Err(Error::new("UPDATE sqlite_schema may only set sql"));
    };
    let target = match &assignment.target {
        AssignmentTarget::ColumnName(n) => last_part(n),
        AssignmentTarget::Tuple(_) => String::new(),
    };
    if target != "sql" {
        return Err(Error::new(format!(
            "UPDATE sqlite_schema of column {target} is not supported"
        )));
    }
    let rows = matching_rows(&update, &assignment.value, cx)?;
    let updated = rows.len();
    let mut outputs = Vec::new();
    for (kind, name, table, new_sql) in rows {
        match kind.as_str() {
            "table" => outputs.extend(retype_table(&name, &new_sql, cx)?),
            "index" => outputs.push(Output::text(format!(
                "COMMENT ON INDEX {} IS {}",
                quote_ident(&name),
                quote_literal(&new_sql)
            ))),
            "view" => outputs.push(Output::text(format!(
                "COMMENT ON VIEW {} IS {}",
                quote_ident(&name),
                quote_literal(&new_sql)
            ))),
            "trigger" => outputs.push(Output::text(format!(
                "COMMENT ON TRIGGER {} ON {} IS {}",
                quote_ident(&super::names::pg_name(&name)),
                quote_ident(&super::names::pg_name(&table)),
                quote_literal(&new_sql)
            ))),
            other => {
                return Err(Error::new(format!(
                    "sqlite_schema row of type {other} cannot be updated"
                )))
            }
        }
    }
    // sqlite3_changes(): the rows of sqlite_schema updated.
    outputs.push(Output {
        sql: super::Sql::Text(format!("SELECT generate_series(1, {updated})")),
        yields_rows: false,
        counts_changes: true,
        rowid_column: false,
    });
    Ok(Plan::schema_change(outputs))
}

/// `(type, name, tbl_name, new sql)` of each row the update matches.
fn matching_rows(
    update: &Update,
    value: &Expr,
    cx: &mut Context,
) -> Result<Vec<(String, String, String, String)>, Error> {
    let source = Source::new("SELECT type, name, tbl_name, sql FROM sqlite_master")?;
    let Statement::Query(mut q) = source.parse()? else {
        unreachable!("a SELECT")
    };
    if let SetExpr::Select(s) = q.body.as_mut() {
        s.projection[3] = SelectItem::UnnamedExpr(value.clone());
        s.selection = update.selection.clone();
        if let TableFactor::Table { .. } = &s.from[0].relation {}
    }
    let mut st = Statement::Query(q);
    super::names::normalize(&mut st);
    rewrite_statement(&mut st, vec![], cx)?;
    let sql = st.to_string();
    if sql.contains("?") && sql.contains('$') || sql.contains("?1") {
        return Err(Error::new(
            "parameters in UPDATE sqlite_schema are not supported",
        ));
    }
    let text = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    Ok(cx
        .schema
        .query(&sql, &[])?
        .iter()
        .map(|r| (text(r, 0), text(r, 1), text(r, 2), text(r, 3)))
        .collect())
}

/// New declared types (and PostgreSQL types) for a table whose SQLite text
/// changed, then the new text as its comment.
fn retype_table(table: &str, new_sql: &str, cx: &mut Context) -> Result<Vec<Output>, Error> {
    let table = &super::names::pg_name(table);
    let info = cx.schema.existing_table(table)?;
    let source = Source::new(new_sql)?;
    let Statement::CreateTable(ct) = source.parse()? else {
        return Err(Error::new(format!(
            "the new sql of table {table} is not a CREATE TABLE"
        )));
    };
    let t = quote_ident(table);
    let mut outputs = Vec::new();
    for c in &ct.columns {
        let name = super::names::normalized(&c.name.value);
        let Some(old) = info.column(&name) else {
            return Err(Error::new(format!(
                "UPDATE sqlite_schema may not add column {name}"
            )));
        };
        let declared = declared_type_of(c, &source);
        if declared == old.declared {
            continue;
        }
        let new_type = postgres_type(&declared);
        if new_type != old.pg_type && info.rowid_column.as_deref() != Some(name.as_str()) {
            outputs.push(Output::text(format!(
                "ALTER TABLE {t} ALTER COLUMN {col} TYPE {new_type} USING {col}::{new_type}",
                col = quote_ident(&name)
            )));
        }
        let comment =
            super::ddl::column_comment(&declared, old.default_text.as_deref()).unwrap_or_default();
        outputs.push(Output::text(format!(
            "COMMENT ON COLUMN {t}.{} IS {}",
            quote_ident(&name),
            quote_literal(&comment)
        )));
    }
    outputs.push(Output::text(format!(
        "COMMENT ON TABLE {t} IS {}",
        quote_literal(new_sql)
    )));
    Ok(outputs)
}

fn declared_type_of(c: &ColumnDef, source: &Source) -> String {
    super::ddl::declared_type(c, source)
}
