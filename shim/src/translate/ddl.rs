//! Schema statements: `CREATE TABLE` (also `… AS SELECT`), `CREATE INDEX`,
//! `CREATE VIEW`, `ALTER TABLE … ADD/RENAME/DROP`, `DROP TABLE/INDEX/VIEW`.
//!
//! A SQLite table becomes a PostgreSQL table whose column types follow the
//! declared types' affinity (`affinity`), with what SQLite would remember
//! stored as comments (`catalog` reads them back):
//! - each column's comment is its declared type, exactly as written
//!   (`dt_integer(8)`), for `sqlite3_column_decltype` and `PRAGMA
//!   table_info`;
//! - the table's, index's or view's comment is the `CREATE` text SQLite
//!   keeps in `sqlite_master` (`CREATE TABLE name …`, without `IF NOT
//!   EXISTS`), kept up to date by `ALTER TABLE`.
//!
//! Columns: text columns are `COLLATE "C"` (SQLite's BINARY) unless declared
//! with another collation; `varchar(255)` keeps no length (SQLite never
//! truncates); `DEFAULT "t"` is the string `'t'`, as SQLite reads it.
//!
//! The rowid: an `INTEGER PRIMARY KEY` column is a `bigint` primary key
//! whose default is the next value of a sequence of its own; a trigger
//! gives a NULL rowid one too and moves the sequence past explicit rowids
//! (see `rowid_machinery`). The sequences of `AUTOINCREMENT` tables are
//! what the `sqlite_sequence` view shows.
//!
//! Foreign keys are kept in the text but not enforced, as in SQLite with
//! `PRAGMA foreign_keys` off (its default).

use sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, ColumnOption, CreateIndex, CreateTable, CreateView,
    Expr, ObjectType, Statement, TableConstraint, Value,
};
use sqlparser::tokenizer::{Location, Token};

use super::affinity::{ctas_declared_type, is_text_type, postgres_type};
use super::catalog::{TableInfo, HIDDEN_PREFIX};
use super::collation::postgres_collation;
use super::construct::{quote_ident, quote_literal};
use super::dialect::Source;
use super::expr::rewrite_expr;
use super::query::rewrite_statement;
use super::scope::last_part;
use super::{Context, Error, Output, Plan, Sql};

/// Translate a schema statement.
pub fn translate(statement: Statement, cx: &mut Context) -> Result<Plan, Error> {
    match statement {
        Statement::CreateTable(ct) if ct.query.is_some() => create_table_as(ct, cx),
        Statement::CreateTable(ct) => create_table(ct, cx),
        Statement::CreateIndex(ci) => create_index(ci, cx),
        Statement::CreateView(cv) => create_view(cv, cx),
        Statement::AlterTable(at) => alter_table(at, cx),
        Statement::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => drop(object_type, if_exists, &names, cx),
        other => Err(Error::new(format!("statement not supported: {other}"))),
    }
}

/// The text SQLite keeps for a `CREATE` statement: `prefix` (`CREATE TABLE`)
/// then the statement from its name on.
fn sqlite_text(source: &Source, prefix: &str, name_start: Location) -> String {
    let rest = &source.text[source.offset(name_start)..];
    format!(
        "{prefix} {}",
        rest.trim_end().trim_end_matches(';').trim_end()
    )
}

/// The location where an object name starts.
fn name_start(name: &sqlparser::ast::ObjectName) -> Option<Location> {
    name.0
        .first()
        .and_then(|p| p.as_ident())
        .map(|i| i.span.start)
}

/// One column of a `CREATE TABLE` as PostgreSQL will have it.
struct ColumnPlan {
    name: String,
    declared: String,
    /// The `DEFAULT` expression as written (`PRAGMA table_info`'s
    /// `dflt_value`).
    default_text: Option<String>,
    definition: String,
}

impl ColumnPlan {
    /// The column's comment: see [`column_comment`].
    fn comment(&self) -> Option<String> {
        column_comment(&self.declared, self.default_text.as_deref())
    }
}

/// A column's comment: the declared type, then (after a U+001F separator)
/// the default as written, if any. `None` when both are empty.
pub fn column_comment(declared: &str, default_text: Option<&str>) -> Option<String> {
    match default_text {
        Some(d) => Some(format!("{declared}\u{1f}{d}")),
        None if declared.is_empty() => None,
        None => Some(declared.to_string()),
    }
}

fn create_table(ct: CreateTable, cx: &mut Context) -> Result<Plan, Error> {
    if ct.temporary {
        return Err(Error::new(
            "CREATE TEMP TABLE is not supported on a routed database",
        ));
    }
    let table = last_part(&ct.name);
    if already_exists("table", &table, ct.if_not_exists, cx)? {
        return Ok(Plan::no_op());
    }
    let rowid = rowid_alias(&ct, cx.source);
    let mut defs = Vec::new();
    let mut columns = Vec::new();
    for c in &ct.columns {
        let col = column_plan(c, rowid.as_deref() == Some(c.name.value.as_str()), cx)?;
        defs.push(col.definition.clone());
        columns.push(col);
    }
    for constraint in &ct.constraints {
        if let Some(def) = table_constraint(constraint, rowid.as_deref())? {
            defs.push(def);
        }
    }
    let start = name_start(&ct.name).ok_or_else(|| Error::new("CREATE TABLE needs a name"))?;
    let sql = sqlite_text(cx.source, "CREATE TABLE", start);
    let mut outputs = vec![Output::text(format!(
        "CREATE TABLE {} ({})",
        quote_ident(&table),
        defs.join(", ")
    ))];
    outputs.extend(comments(&table, &sql, &columns));
    if let Some(r) = &rowid {
        outputs.extend(rowid_machinery(&table, r, has_autoincrement(&ct)));
    }
    Ok(Plan::schema_change(outputs))
}

/// Whether `CREATE … name` has nothing to do (`IF NOT EXISTS` and it
/// exists); an error when it exists without `IF NOT EXISTS`.
fn already_exists(
    kind: &str,
    name: &str,
    if_not_exists: bool,
    cx: &mut Context,
) -> Result<bool, Error> {
    match (schema_object_exists(name, cx)?, if_not_exists) {
        (false, _) => Ok(false),
        (true, true) => Ok(true),
        (true, false) => Err(Error::new(format!("{kind} {name} already exists"))),
    }
}

fn schema_object_exists(name: &str, cx: &mut Context) -> Result<bool, Error> {
    let rows = cx.schema.query(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() WHERE c.relname = $1",
        &[name],
    )?;
    Ok(!rows.is_empty())
}

/// `COMMENT ON TABLE` (the SQLite text) and `COMMENT ON COLUMN` (declared
/// types).
fn comments(table: &str, sql: &str, columns: &[ColumnPlan]) -> Vec<Output> {
    let mut out = vec![Output::text(format!(
        "COMMENT ON TABLE {} IS {}",
        quote_ident(table),
        quote_literal(sql)
    ))];
    for c in columns {
        if let Some(comment) = c.comment() {
            out.push(Output::text(format!(
                "COMMENT ON COLUMN {}.{} IS {}",
                quote_ident(table),
                quote_ident(&c.name),
                quote_literal(&comment)
            )));
        }
    }
    out
}

/// The name of a rowid table's hidden sequence and trigger function (one
/// name for both: they live in different catalogs).
fn rowid_hidden_name(table: &str) -> String {
    super::names::pg_name(&format!("{HIDDEN_PREFIX}rowid_{table}"))
}

/// The machinery keeping rowids SQLite's, installed by the bootstrap's
/// `sqlite_rowid_install`: a sequence per table, the column's default,
/// and a trigger that gives a NULL rowid the next value and moves the
/// sequence past an explicit one. `nextval` costs the same at any table
/// size and never waits for another transaction; rowids a rolled-back or
/// failed insert took are not handed out again (`docs/sql-support.md`).
/// With `AUTOINCREMENT` the sequence is what `sqlite_sequence` shows.
fn rowid_machinery(table: &str, column: &str, autoincrement: bool) -> Vec<Output> {
    let mut out = Vec::new();
    if autoincrement {
        out.push(Output::text("SELECT sqlite_sequence_create()"));
    }
    out.push(Output::text(format!(
        "SELECT sqlite_rowid_install({}, {}, {autoincrement}, {})",
        quote_literal(table),
        quote_literal(column),
        quote_literal(&rowid_hidden_name(table))
    )));
    out
}

/// The column that is the rowid: declared exactly `INTEGER` and the whole
/// primary key.
fn rowid_alias(ct: &CreateTable, source: &Source) -> Option<String> {
    let mut pk: Vec<String> = Vec::new();
    for c in &ct.columns {
        if c.options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
        {
            pk.push(c.name.value.clone());
        }
    }
    for t in &ct.constraints {
        if let TableConstraint::PrimaryKey(p) = t {
            pk.extend(
                p.columns
                    .iter()
                    .map(|c| index_column_name(&c.column.expr).unwrap_or_default()),
            );
        }
    }
    let [only] = pk.as_slice() else { return None };
    let c = ct.columns.iter().find(|c| &c.name.value == only)?;
    declared_type(c, source)
        .eq_ignore_ascii_case("INTEGER")
        .then(|| only.clone())
}

/// The declared type of a column as written (`dt_integer(8)`), `""` if
/// none: the tokens after the name up to the first constraint.
pub fn declared_type(c: &ColumnDef, source: &Source) -> String {
    let tokens = &source.tokens;
    let Some(at) = tokens
        .iter()
        .position(|t| t.span.start == c.name.span.start)
    else {
        return String::new();
    };
    let mut end = None;
    let mut i = at + 1;
    while let Some(t) = tokens.get(i) {
        match &t.token {
            Token::Word(w) if !is_constraint_word(&w.value) || w.quote_style.is_some() => {
                end = Some(t.span.end);
                i += 1;
            }
            Token::LParen if end.is_some() => {
                let mut depth = 0;
                while let Some(t) = tokens.get(i) {
                    match t.token {
                        Token::LParen => depth += 1,
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(t.span.end);
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                break;
            }
            _ => break,
        }
    }
    match end {
        Some(e) => standard_type_name(source.slice(tokens[at + 1].span.start, e)),
        None => String::new(),
    }
}

/// SQLite (3.37+) reports the standard type names in upper case whatever
/// their spelling (`integer` is `INTEGER`); other declared types as written.
fn standard_type_name(declared: &str) -> String {
    const STANDARD: [&str; 6] = ["ANY", "BLOB", "INT", "INTEGER", "REAL", "TEXT"];
    let upper = declared.to_ascii_uppercase();
    if STANDARD.contains(&upper.as_str()) {
        upper
    } else {
        declared.to_string()
    }
}

fn is_constraint_word(word: &str) -> bool {
    matches!(
        word.to_ascii_uppercase().as_str(),
        "CONSTRAINT"
            | "PRIMARY"
            | "NOT"
            | "NULL"
            | "UNIQUE"
            | "CHECK"
            | "DEFAULT"
            | "COLLATE"
            | "REFERENCES"
            | "GENERATED"
            | "AS"
    )
}

fn column_plan(c: &ColumnDef, is_rowid: bool, cx: &mut Context) -> Result<ColumnPlan, Error> {
    let declared = declared_type(c, cx.source);
    let name = c.name.value.clone();
    let pg_type = postgres_type(&declared);
    let mut def = format!(
        "{} {}",
        quote_ident(&name),
        if is_rowid { "bigint" } else { pg_type }
    );
    let collation = c.options.iter().find_map(|o| match &o.option {
        ColumnOption::Collation(n) => Some(n.to_string()),
        _ => None,
    });
    if is_text_type(pg_type) && !is_rowid {
        let pg = match &collation {
            Some(n) => postgres_collation(n)?,
            None => "C",
        };
        def.push_str(&format!(" COLLATE {}", quote_ident(pg)));
    }
    let mut default_text = None;
    for o in &c.options {
        match &o.option {
            ColumnOption::Null | ColumnOption::Collation(_) | ColumnOption::ForeignKey(_) => {}
            ColumnOption::NotNull => def.push_str(" NOT NULL"),
            ColumnOption::Default(e) => {
                let span = sqlparser::ast::Spanned::span(e);
                default_text = Some(cx.source.slice(span.start, span.end).to_string());
                def.push_str(&format!(" DEFAULT {}", default_value(e, cx)?));
            }
            ColumnOption::PrimaryKey(_) => def.push_str(" PRIMARY KEY"),
            ColumnOption::Unique(_) => def.push_str(" UNIQUE"),
            ColumnOption::Check(check) => {
                let mut e = (*check.expr).clone();
                rewrite_expr(&mut e, cx.source)?;
                def.push_str(&format!(" CHECK ({})", super::truth::truth(e)));
            }
            ColumnOption::DialectSpecific(tokens) if is_autoincrement(tokens) => {
                if !is_rowid {
                    return Err(Error::new(
                        "AUTOINCREMENT is only allowed on an INTEGER PRIMARY KEY",
                    ));
                }
            }
            other => {
                return Err(Error::new(format!(
                    "column constraint not supported: {other}"
                )))
            }
        }
    }
    Ok(ColumnPlan {
        name,
        declared,
        default_text,
        definition: def,
    })
}

fn has_autoincrement(ct: &CreateTable) -> bool {
    ct.columns.iter().any(|c| {
        c.options
            .iter()
            .any(|o| matches!(&o.option, ColumnOption::DialectSpecific(t) if is_autoincrement(t)))
    })
}

fn is_autoincrement(tokens: &[Token]) -> bool {
    matches!(tokens, [Token::Word(w)] if w.value.eq_ignore_ascii_case("AUTOINCREMENT"))
}

/// A `DEFAULT` value: a double-quoted name is the string it spells.
fn default_value(e: &Expr, cx: &mut Context) -> Result<String, Error> {
    if let Expr::Identifier(id) = e {
        let original = cx
            .source
            .original_name(id.span.start)
            .unwrap_or(&id.value)
            .to_string();
        return Ok(quote_literal(&original));
    }
    if let Some(n) = super::literals::signed_number_text(e) {
        // Untyped, so it fits a boolean column as well as a number one.
        return Ok(quote_literal(&n));
    }
    if let Expr::Value(v) = e {
        if matches!(v.value, Value::SingleQuotedString(_) | Value::Null) {
            return Ok(v.value.to_string());
        }
    }
    let mut e = e.clone();
    if let Expr::Function(f) = &e {
        let name = super::functions::function_name(f);
        if matches!(
            name.as_str(),
            "current_timestamp" | "current_date" | "current_time"
        ) {
            let helper = match name.as_str() {
                "current_timestamp" => "sqlite_datetime",
                "current_date" => "sqlite_date",
                _ => "sqlite_time",
            };
            return Ok(format!("{helper}('now')"));
        }
    }
    rewrite_expr(&mut e, cx.source)?;
    Ok(format!("({e})"))
}

fn table_constraint(c: &TableConstraint, rowid: Option<&str>) -> Result<Option<String>, Error> {
    let names = |cols: &[sqlparser::ast::IndexColumn]| -> Result<String, Error> {
        cols.iter()
            .map(|c| {
                index_column_name(&c.column.expr)
                    .map(|n| quote_ident(&n))
                    .ok_or_else(|| Error::new("a key column must be a column name"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(", "))
    };
    Ok(match c {
        TableConstraint::PrimaryKey(p) => {
            let cols = names(&p.columns)?;
            let _ = rowid;
            Some(format!("PRIMARY KEY ({cols})"))
        }
        TableConstraint::Unique(u) => Some(format!("UNIQUE ({})", names(&u.columns)?)),
        TableConstraint::ForeignKey(_) => None,
        TableConstraint::Check(check) => Some(format!("CHECK ({})", check.expr)),
        other => {
            return Err(Error::new(format!(
                "table constraint not supported: {other}"
            )))
        }
    })
}

/// A column named in an index or key: a name, or (SQLite's quirk) a
/// string literal naming a column.
fn index_column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(super::names::normalized(s)),
            _ => None,
        },
        _ => None,
    }
}

fn create_table_as(ct: CreateTable, cx: &mut Context) -> Result<Plan, Error> {
    let table = last_part(&ct.name);
    if already_exists("table", &table, ct.if_not_exists, cx)? {
        return Ok(Plan::no_op());
    }
    let query_ast = ct.query.expect("CREATE TABLE … AS");
    let plain = plain_column_flags(&query_ast);
    let mut query = Statement::Query(query_ast);
    rewrite_statement(&mut query, vec![], cx)?;
    let create = format!("CREATE TABLE {} AS {query}", quote_ident(&table));
    let describe = format!(
        "SELECT sqlite_describe_ctas({}, {}, {})",
        quote_literal(&table),
        quote_literal(&ctas_types_json()),
        quote_literal(&plain)
    );
    Ok(Plan::schema_change(vec![
        Output::effect(Sql::Text(create)),
        Output::text(describe),
    ]))
}

/// Per result column of a `CREATE TABLE … AS` query, whether it is a plain
/// column reference (SQLite declares those by affinity, expressions not at
/// all), as a PostgreSQL `boolean[]` literal; `{}` (all plain) with `*`.
fn plain_column_flags(query: &sqlparser::ast::Query) -> String {
    use sqlparser::ast::{SelectItem, SetExpr};
    let SetExpr::Select(select) = query.body.as_ref() else {
        return "{}".into();
    };
    let mut flags = Vec::new();
    for item in &select.projection {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return "{}".into(),
        };
        flags.push(
            if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                "t"
            } else {
                "f"
            },
        );
    }
    format!("{{{}}}", flags.join(","))
}

/// PostgreSQL type → SQLite declared type of a `CREATE TABLE … AS` column,
/// as the JSON object `sqlite_describe_ctas` reads.
fn ctas_types_json() -> String {
    let pairs: Vec<String> = [
        "bigint",
        "integer",
        "smallint",
        "text",
        "double precision",
        "real",
        "numeric",
        "boolean",
    ]
    .iter()
    .map(|t| format!("\"{t}\": \"{}\"", ctas_declared_type(t)))
    .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn create_index(ci: CreateIndex, cx: &mut Context) -> Result<Plan, Error> {
    let name = ci
        .name
        .as_ref()
        .map(last_part)
        .ok_or_else(|| Error::new("CREATE INDEX needs a name"))?;
    let table = last_part(&ci.table_name);
    let info = cx.schema.existing_table(&table)?;
    if info.virtual_module().is_some() {
        return Err(Error::new("virtual tables may not be indexed"));
    }
    if already_exists("index", &name, ci.if_not_exists, cx)? {
        return Ok(Plan::no_op());
    }
    let mut cols = Vec::new();
    for c in &ci.columns {
        cols.push(index_column(&c.column, &info, cx)?);
    }
    let mut sql = format!(
        "CREATE {}INDEX {} ON {} ({})",
        if ci.unique { "UNIQUE " } else { "" },
        quote_ident(&name),
        quote_ident(&table),
        cols.join(", ")
    );
    if let Some(p) = &ci.predicate {
        let mut p = p.clone();
        rewrite_expr(&mut p, cx.source)?;
        sql.push_str(&format!(" WHERE {}", super::truth::truth(p)));
    }
    let start = ci
        .name
        .as_ref()
        .and_then(name_start)
        .ok_or_else(|| Error::new("CREATE INDEX needs a name"))?;
    let prefix = if ci.unique {
        "CREATE UNIQUE INDEX"
    } else {
        "CREATE INDEX"
    };
    let text = sqlite_text(cx.source, prefix, start);
    Ok(Plan::schema_change(vec![
        Output::text(sql),
        Output::text(format!(
            "COMMENT ON INDEX {} IS {}",
            quote_ident(&name),
            quote_literal(&text)
        )),
    ]))
}

/// One indexed column or expression, with its collation and order.
fn index_column(
    c: &sqlparser::ast::OrderByExpr,
    info: &TableInfo,
    cx: &mut Context,
) -> Result<String, Error> {
    let (inner, collation) = match &c.expr {
        Expr::Collate { expr, collation } => (
            expr.as_ref(),
            Some(postgres_collation(&collation.to_string())?),
        ),
        e => (e, None),
    };
    let mut text = match index_column_name(inner) {
        Some(n) if info.column(&n).is_some() => quote_ident(&n),
        Some(n) => return Err(Error::new(format!("no such column: {n}"))),
        None => {
            let mut e = inner.clone();
            rewrite_expr(&mut e, cx.source)?;
            format!("({e})")
        }
    };
    if let Some(pg) = collation {
        text.push_str(&format!(" COLLATE {}", quote_ident(pg)));
    }
    // SQLite's NULL placement (first ascending, last descending), which
    // the translated ORDER BY asks for: the index can then give that order.
    match c.options.sort {
        Some(sqlparser::ast::OrderBySort::Desc) => text.push_str(" DESC NULLS LAST"),
        Some(sqlparser::ast::OrderBySort::Asc) => text.push_str(" ASC NULLS FIRST"),
        _ => text.push_str(" NULLS FIRST"),
    }
    Ok(text)
}

fn create_view(cv: CreateView, cx: &mut Context) -> Result<Plan, Error> {
    let name = last_part(&cv.name);
    if already_exists("view", &name, cv.if_not_exists, cx)? {
        return Ok(Plan::no_op());
    }
    let mut query = Statement::Query(cv.query);
    rewrite_statement(&mut query, vec![], cx)?;
    super::result_names::name_view_columns(&mut query, cx.source);
    let start = name_start(&cv.name).ok_or_else(|| Error::new("CREATE VIEW needs a name"))?;
    let text = sqlite_text(cx.source, "CREATE VIEW", start);
    Ok(Plan::schema_change(vec![
        Output::effect(Sql::Text(format!(
            "CREATE VIEW {} AS {query}",
            quote_ident(&name)
        ))),
        Output::text(format!(
            "COMMENT ON VIEW {} IS {}",
            quote_ident(&name),
            quote_literal(&text)
        )),
    ]))
}

fn drop(
    object_type: ObjectType,
    if_exists: bool,
    names: &[sqlparser::ast::ObjectName],
    cx: &mut Context,
) -> Result<Plan, Error> {
    let kind = match object_type {
        ObjectType::Table => "TABLE",
        ObjectType::Index => "INDEX",
        ObjectType::View => "VIEW",
        other => return Err(Error::new(format!("DROP {other} is not supported"))),
    };
    let [name] = names else {
        return Err(Error::new("DROP of several objects is not supported"));
    };
    let name = last_part(name);
    if !schema_object_exists(&name, cx)? {
        if if_exists {
            return Ok(Plan::no_op());
        }
        return Err(Error::new(format!(
            "no such {}: {name}",
            kind.to_ascii_lowercase()
        )));
    }
    let mut outputs = vec![Output::text(format!("DROP {kind} {}", quote_ident(&name)))];
    if kind == "TABLE" {
        outputs.push(Output::text(format!(
            "DROP FUNCTION IF EXISTS {}()",
            quote_ident(&rowid_hidden_name(&name))
        )));
    }
    Ok(Plan::schema_change(outputs))
}

fn alter_table(at: AlterTable, cx: &mut Context) -> Result<Plan, Error> {
    let table = last_part(&at.name);
    let info = cx.schema.existing_table(&table)?;
    let [operation] = at.operations.as_slice() else {
        return Err(Error::new(
            "ALTER TABLE with several operations is not supported",
        ));
    };
    let t = quote_ident(&table);
    let (mut outputs, new_sql) = match operation {
        AlterTableOperation::AddColumn { column_def, .. } => {
            let col = column_plan(column_def, false, cx)?;
            let def_text = cx.source.text[cx.source.offset(column_def.name.span.start)..]
                .trim_end()
                .trim_end_matches(';')
                .trim_end();
            let mut out = vec![Output::text(format!(
                "ALTER TABLE {t} ADD COLUMN {}",
                col.definition
            ))];
            if let Some(comment) = col.comment() {
                out.push(Output::text(format!(
                    "COMMENT ON COLUMN {t}.{} IS {}",
                    quote_ident(&col.name),
                    quote_literal(&comment)
                )));
            }
            (out, super::schema_text::add_column(&info.sql, def_text)?)
        }
        AlterTableOperation::RenameTable { table_name } => {
            let new_name = match table_name {
                sqlparser::ast::RenameTableNameKind::As(n)
                | sqlparser::ast::RenameTableNameKind::To(n) => last_part(n),
            };
            (
                vec![Output::text(format!(
                    "ALTER TABLE {t} RENAME TO {}",
                    quote_ident(&new_name)
                ))],
                super::schema_text::rename_table(&info.sql, &new_name)?,
            )
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => (
            vec![Output::text(format!(
                "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                quote_ident(&old_column_name.value),
                quote_ident(&new_column_name.value)
            ))],
            super::schema_text::rename_column(
                &info.sql,
                &old_column_name.value,
                &new_column_name.value,
            )?,
        ),
        AlterTableOperation::DropColumn { column_names, .. } => {
            let [col] = column_names.as_slice() else {
                return Err(Error::new(
                    "DROP COLUMN of several columns is not supported",
                ));
            };
            (
                vec![Output::text(format!(
                    "ALTER TABLE {t} DROP COLUMN {}",
                    quote_ident(&col.value)
                ))],
                super::schema_text::drop_column(&info.sql, &col.value)?,
            )
        }
        other => return Err(Error::new(format!("ALTER TABLE {other} is not supported"))),
    };
    let renamed = match operation {
        AlterTableOperation::RenameTable { table_name } => match table_name {
            sqlparser::ast::RenameTableNameKind::As(n)
            | sqlparser::ast::RenameTableNameKind::To(n) => last_part(n),
        },
        _ => table.clone(),
    };
    outputs.push(Output::text(format!(
        "COMMENT ON TABLE {} IS {}",
        quote_ident(&renamed),
        quote_literal(&new_sql)
    )));
    let renames_rowid = match operation {
        AlterTableOperation::RenameTable { .. } => true,
        AlterTableOperation::RenameColumn {
            old_column_name, ..
        } => info.rowid_column.as_deref() == Some(old_column_name.value.as_str()),
        _ => false,
    };
    if renames_rowid && info.rowid_column.is_some() {
        // The rowid's sequence and trigger function are named after the
        // table, and the function names the column.
        outputs.push(Output::text(format!(
            "SELECT sqlite_rowid_refresh({}, {}, {})",
            quote_literal(&renamed),
            quote_literal(&rowid_hidden_name(&table)),
            quote_literal(&rowid_hidden_name(&renamed))
        )));
    }
    Ok(Plan::schema_change(outputs))
}
