//! Which writes in a transaction may run without a savepoint.
//!
//! SQLite's rule is that a failing statement undoes only itself and leaves
//! its transaction usable; PostgreSQL aborts the whole transaction. The
//! shim keeps the rule by running a write under a savepoint — a
//! subtransaction per write, which past 64 in one transaction overflows
//! PostgreSQL's per-backend cache and sends every other session's
//! visibility checks to `pg_subtrans`, and which is most of a bulk load's
//! per-row cost. A write that *cannot* fail with a statement-level error
//! needs no savepoint. This module decides which can, from two things:
//!
//! - the statement's PostgreSQL text ([`analyse`], once per text and
//!   schema epoch): a single-row `INSERT … VALUES`, an `UPDATE … SET col =
//!   value` or a `DELETE`, whose values are parameters or literals and
//!   whose `WHERE` only compares columns with values (`AND`, `OR`, `NOT`,
//!   comparisons, `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`, `IN (list)`,
//!   `BETWEEN`): nothing there can raise once the values fit their types;
//! - the table's catalog, read in the same query: an ordinary table with
//!   no CHECK, foreign key or exclusion constraint, no deferrable one, no
//!   trigger but the rowid's own (`sqlite__rowid`, which cannot fail
//!   short of exhausting 2^63 rowids), no rule, child or row security; the
//!   columns' types, `NOT NULL`s, defaults and unique and other indexes.
//!
//! And, at each execution ([`FastWrite::admits`]), from the bound values:
//! each must convert to its parameter's type without error (checked here
//! with PostgreSQL's input rules, conservatively), a column written must
//! have exactly the parameter's type (no assignment cast that could
//! overflow), a `NOT NULL` column must not get NULL, and a long text or
//! blob must not go into an indexed column (a B-tree entry is limited to
//! about 2.7 kB).
//!
//! Unique keys are the one failure a check in the shim cannot rule out
//! (another transaction may hold the key). An `INSERT` runs with `ON
//! CONFLICT DO NOTHING` added: no row written means a conflict, and the
//! caller runs the original statement again under a savepoint, which
//! fails with exactly the error it always gave (or succeeds, if the other
//! row went away meanwhile). An `UPDATE` of a column in a unique index
//! keeps the savepoint.
//!
//! What is not proven safe keeps the savepoint. What remains possible on
//! the fast path are failures of the server or the session (out of disk,
//! deadlock, cancel, a lost connection, DDL by another process between
//! the analysis and the write): the caller rolls the transaction back, as
//! SQLite does for `SQLITE_FULL`/`IOERR`/`BUSY` (`docs/sql-support.md`,
//! "Statement atomicity").

use crate::error::Result;
use crate::pg::types::Param;
use crate::pg::PgConn;
use crate::value::Value;
use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, FromTable, InTarget, ObjectName, OnConflict,
    OnConflictAction, OnInsert, SelectItem, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, UnaryOperator, Value as Literal,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::types::Type;

/// The longest text or blob written to an indexed column without a
/// savepoint: a B-tree index entry holds at most about 2,700 bytes.
const INDEXED_VALUE_MAX: usize = 2000;

/// A write that runs at the top level of its transaction when its bound
/// values pass [`FastWrite::admits`].
#[derive(Debug)]
pub struct FastWrite {
    /// The text to run: the statement, or an `INSERT` with `ON CONFLICT
    /// DO NOTHING` added.
    pub sql: String,
    /// No row written means a unique conflict (the `DO NOTHING` was
    /// added here): the statement must be run again under a savepoint to
    /// fail as it would have.
    pub conflict_is_error: bool,
    /// Its failure is impossible outright, unique keys included: it may
    /// be sent without waiting for its answer (see `statement`'s
    /// pipelining). An `INSERT` whose only unique key is the rowid it
    /// takes from the table's sequence (none written explicitly), or one
    /// with the client's own `ON CONFLICT DO NOTHING`; an `UPDATE` (no
    /// unique column written, as for any of them here); a `DELETE`.
    pub pipelinable: bool,
    /// Columns written from parameters: the 0-based parameter (`$k` is
    /// `k - 1`) and what the column allows.
    targets: Vec<(usize, Column)>,
}

/// What a written column allows.
#[derive(Clone, Debug)]
struct Column {
    name: String,
    type_oid: u32,
    typmod: i32,
    not_null: bool,
    has_default: bool,
    /// Neither an identity nor a generated column.
    plain: bool,
    in_unique: bool,
    indexed: bool,
    /// The table's rowid: its primary key alone, given from the table's
    /// sequence by default and by the `sqlite__rowid` trigger.
    rowid: bool,
}

/// A table's facts from the catalog: the whole table's verdict, and its
/// columns.
struct Table {
    /// An ordinary table with nothing that can fail a write but unique
    /// keys and what the columns say.
    plain: bool,
    columns: Vec<Column>,
}

/// The catalog facts of the table named `$1` (as written in a statement,
/// resolved on the search path): one row per column, the table-level
/// verdict repeated. An expression or partial index counts as covering
/// every column (its expression may read any).
const FACTS_QUERY: &str = "\
SELECT (c.relkind = 'r' AND NOT c.relhassubclass AND NOT c.relrowsecurity AND NOT c.relhasrules \
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid \
                        AND (k.contype NOT IN ('p', 'u') OR k.condeferrable)) \
        AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname <> 'sqlite__rowid'))::text, \
       a.attname::text, a.atttypid::oid::text, a.atttypmod::text, a.attnotnull::text, a.atthasdef::text, \
       (a.attidentity = '' AND a.attgenerated = '')::text, \
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique \
               AND (a.attnum = ANY (i.indkey::int2[]) OR i.indexprs IS NOT NULL OR i.indpred IS NOT NULL))::text, \
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
               AND (a.attnum = ANY (i.indkey::int2[]) OR i.indexprs IS NOT NULL OR i.indpred IS NOT NULL))::text, \
       (a.atthasdef \
        AND EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p' AND k.conkey = ARRAY[a.attnum]) \
        AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'sqlite__rowid'))::text \
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
WHERE c.oid = to_regclass($1) ORDER BY a.attnum";

/// Whether `sql` (one translated statement) can run without a savepoint
/// for some bound values, and how. Reads the table's catalog on `conn`;
/// the caller caches the answer per text until the schema changes. The
/// caller runs this where a failure cannot abort its transaction.
pub fn analyse(
    conn: &mut PgConn,
    epoch: u64,
    cache: usize,
    sql: &str,
) -> Result<Option<FastWrite>> {
    let Some(shape) = shape_of(sql) else {
        return Ok(None);
    };
    let rows = conn.query_text(FACTS_QUERY, &[&shape.table.to_string()], epoch, cache)?;
    let Some(table) = table_of(&rows) else {
        return Ok(None);
    };
    Ok(shape.judge(&table))
}

/// What the statement's text says, before the catalog is consulted.
struct Shape {
    kind: Kind,
    table: ObjectName,
    /// Column written, and from what.
    writes: Vec<(String, Source)>,
}

enum Kind {
    /// The text to run instead, when `ON CONFLICT DO NOTHING` was added.
    Insert {
        conflict_guard: Option<String>,
    },
    Update,
    Delete,
}

/// Where a written value comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// `$k`, 0-based.
    Param(usize),
    Null,
    /// A literal PostgreSQL already converted to the column's type when
    /// it prepared the statement.
    Literal,
}

fn shape_of(sql: &str) -> Option<Shape> {
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if parsed.len() != 1 {
        return None;
    }
    match parsed.pop()? {
        Statement::Insert(mut insert) => {
            let TableObject::TableName(table) = insert.table.clone() else {
                return None;
            };
            let simple = insert.or.is_none()
                && !insert.ignore
                && !insert.overwrite
                && insert.assignments.is_empty()
                && insert.partitioned.is_none()
                && insert.after_columns.is_empty()
                && insert.overriding.is_none()
                && !insert.replace_into
                && insert.insert_alias.is_none()
                && insert.output.is_none()
                && insert.settings.is_none()
                && insert.format_clause.is_none()
                && !insert.columns.is_empty()
                && plain_returning(insert.returning.as_deref());
            if !simple {
                return None;
            }
            let query = insert.source.as_deref()?;
            if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
                return None;
            }
            let SetExpr::Values(values) = query.body.as_ref() else {
                return None;
            };
            let [row] = values.rows.as_slice() else {
                return None;
            };
            let row = &row.content;
            if row.len() != insert.columns.len() {
                return None;
            }
            let mut writes = Vec::new();
            for (name, value) in insert.columns.iter().zip(row) {
                writes.push((last_name(name)?, source(value)?));
            }
            let conflict_guard = match &insert.on {
                None => {
                    insert.on = Some(OnInsert::OnConflict(OnConflict {
                        conflict_target: None,
                        action: OnConflictAction::DoNothing,
                    }));
                    Some(Statement::Insert(insert).to_string())
                }
                Some(OnInsert::OnConflict(OnConflict {
                    conflict_target: None,
                    action: OnConflictAction::DoNothing,
                })) => None,
                Some(_) => return None,
            };
            Some(Shape {
                kind: Kind::Insert { conflict_guard },
                table,
                writes,
            })
        }
        Statement::Update(update) => {
            let simple = update.from.is_none()
                && update.or.is_none()
                && update.order_by.is_empty()
                && update.limit.is_none()
                && update.output.is_none()
                && update.settings.is_none()
                && update.on_cluster.is_none()
                && plain_returning(update.returning.as_deref())
                && update.selection.as_ref().is_none_or(safe_condition);
            if !simple {
                return None;
            }
            let table = single_table(&update.table)?;
            let mut writes = Vec::new();
            for a in &update.assignments {
                let AssignmentTarget::ColumnName(name) = &a.target else {
                    return None;
                };
                writes.push((last_name(name)?, source(&a.value)?));
            }
            Some(Shape {
                kind: Kind::Update,
                table,
                writes,
            })
        }
        Statement::Delete(delete) => {
            let tables = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let simple = delete.tables.is_empty()
                && delete.using.is_none()
                && delete.order_by.is_empty()
                && delete.limit.is_none()
                && delete.output.is_none()
                && delete.settings.is_none()
                && delete.on_cluster.is_none()
                && plain_returning(delete.returning.as_deref())
                && delete.selection.as_ref().is_none_or(safe_condition);
            let [table] = tables.as_slice() else {
                return None;
            };
            if !simple {
                return None;
            }
            Some(Shape {
                kind: Kind::Delete,
                table: single_table(table)?,
                writes: Vec::new(),
            })
        }
        _ => None,
    }
}

impl Shape {
    /// The verdict, given the table's facts.
    fn judge(self, table: &Table) -> Option<FastWrite> {
        if !table.plain {
            return None;
        }
        let mut targets = Vec::new();
        for (name, source) in &self.writes {
            let column = table.columns.iter().find(|c| c.name == *name)?;
            if !column.plain {
                return None;
            }
            match source {
                Source::Null if column.not_null => return None,
                Source::Param(k) => targets.push((*k, column.clone())),
                _ => {}
            }
            if matches!(self.kind, Kind::Update) && column.in_unique {
                return None;
            }
        }
        let written = |c: &Column| self.writes.iter().any(|(n, _)| *n == c.name);
        // No unique key but the rowid, which the sequence gives.
        let only_rowid_unique = table
            .columns
            .iter()
            .all(|c| !c.in_unique || (c.rowid && !written(c)));
        let (sql, conflict_is_error) = match self.kind {
            Kind::Insert { conflict_guard } => {
                // A NOT NULL column left out must have a default.
                if table
                    .columns
                    .iter()
                    .any(|c| c.not_null && !c.has_default && !written(c))
                {
                    return None;
                }
                match conflict_guard {
                    Some(sql) => (sql, true),
                    None => (String::new(), false),
                }
            }
            Kind::Update | Kind::Delete => (String::new(), false),
        };
        Some(FastWrite {
            sql,
            conflict_is_error,
            pipelinable: !conflict_is_error || only_rowid_unique,
            targets,
        })
    }
}

impl FastWrite {
    /// The text to run, `original` unless it was changed.
    pub fn sql<'a>(&'a self, original: &'a str) -> &'a str {
        if self.sql.is_empty() {
            original
        } else {
            &self.sql
        }
    }

    /// Whether these bound values (`params`, as sent for the prepared
    /// statement whose parameter types are `types`) cannot make the
    /// statement fail.
    pub fn admits(&self, types: &[Type], params: &[Param<'_>]) -> bool {
        if types.len() != params.len() {
            return false;
        }
        if !types.iter().zip(params).all(|(t, p)| fits(p.0, t)) {
            return false;
        }
        self.targets.iter().all(|(k, column)| {
            let (Some(ty), Some(Param(value))) = (types.get(*k), params.get(*k)) else {
                return false;
            };
            if ty.oid() != column.type_oid || column.typmod != -1 {
                return false;
            }
            match value {
                Value::Null => !column.not_null,
                Value::Text(s) => !column.indexed || s.len() <= INDEXED_VALUE_MAX,
                Value::Blob(b) => !column.indexed || b.len() <= INDEXED_VALUE_MAX,
                Value::Integer(_) | Value::Real(_) => true,
            }
        })
    }
}

/// Whether PostgreSQL's input function for `ty` surely accepts `value`
/// as `pg::types::Param` sends it. Conservative: `false` only costs a
/// savepoint.
fn fits(value: &Value, ty: &Type) -> bool {
    let text_like = matches!(*ty, Type::TEXT | Type::VARCHAR);
    match value {
        Value::Null => true,
        Value::Integer(_) => {
            text_like || matches!(*ty, Type::INT8 | Type::FLOAT8 | Type::NUMERIC | Type::BOOL)
        }
        Value::Real(f) => match *ty {
            Type::FLOAT8 | Type::BOOL => true,
            Type::NUMERIC => f.is_finite(),
            Type::INT8 => f.fract() == 0.0 && f.abs() < 9.2e18,
            _ => text_like,
        },
        Value::Text(s) => match *ty {
            Type::BYTEA => true,
            Type::INT8 => s.parse::<i64>().is_ok(),
            _ => text_like && !s.contains('\0'),
        },
        Value::Blob(_) => *ty == Type::BYTEA,
    }
}

/// `RETURNING` of plain columns only (the rowid the translator adds).
fn plain_returning(items: Option<&[SelectItem]>) -> bool {
    items.unwrap_or_default().iter().all(|item| {
        matches!(
            item,
            SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_))
        )
    })
}

fn single_table(t: &TableWithJoins) -> Option<ObjectName> {
    if !t.joins.is_empty() {
        return None;
    }
    match &t.relation {
        TableFactor::Table {
            name,
            args: None,
            with_hints,
            version: None,
            partitions,
            json_path: None,
            sample: None,
            ..
        } if with_hints.is_empty() && partitions.is_empty() => Some(name.clone()),
        _ => None,
    }
}

/// A column name as PostgreSQL stores it (unquoted names fold to lower
/// case).
fn last_name(name: &ObjectName) -> Option<String> {
    let ident = name.0.last()?.as_ident()?;
    Some(if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    })
}

/// A written value the shim can judge: a parameter or a literal.
fn source(e: &Expr) -> Option<Source> {
    let Expr::Value(v) = e else {
        return None;
    };
    Some(match &v.value {
        Literal::Placeholder(p) => {
            Source::Param(p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)?)
        }
        Literal::Null => Source::Null,
        _ => Source::Literal,
    })
}

/// A condition that cannot raise once its parameters fit their types:
/// columns and values compared, combined with `AND`/`OR`/`NOT`.
fn safe_condition(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) => true,
        Expr::Nested(x) | Expr::IsNull(x) | Expr::IsNotNull(x) => safe_condition(x),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => safe_condition(expr),
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::And
                    | BinaryOperator::Or
            ) && safe_condition(left)
                && safe_condition(right)
        }
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            safe_condition(a) && safe_condition(b)
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            ..
        } => safe_condition(expr) && list.iter().all(safe_condition),
        Expr::Between {
            expr, low, high, ..
        } => safe_condition(expr) && safe_condition(low) && safe_condition(high),
        _ => false,
    }
}

/// The facts query's rows as a [`Table`]; `None` when the table was not
/// found or a row does not read.
fn table_of(rows: &[Vec<Option<String>>]) -> Option<Table> {
    let flag = |row: &[Option<String>], i: usize| row.get(i)?.as_deref().map(|v| v == "true");
    let first = rows.first()?;
    let mut table = Table {
        plain: flag(first, 0)?,
        columns: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        table.columns.push(Column {
            name: row.get(1)?.clone()?,
            type_oid: row.get(2)?.as_deref()?.parse().ok()?,
            typmod: row.get(3)?.as_deref()?.parse().ok()?,
            not_null: flag(row, 4)?,
            has_default: flag(row, 5)?,
            plain: flag(row, 6)?,
            in_unique: flag(row, 7)?,
            indexed: flag(row, 8)?,
            rowid: flag(row, 9)?,
        });
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_that_can_be_judged() {
        let s = shape_of("INSERT INTO t (a, b) VALUES ($1, NULL) RETURNING id").unwrap();
        assert!(
            matches!(&s.kind, Kind::Insert { conflict_guard: Some(g) } if g.contains("ON CONFLICT DO NOTHING RETURNING id"))
        );
        assert_eq!(
            s.writes,
            vec![("a".into(), Source::Param(0)), ("b".into(), Source::Null)]
        );
        let s = shape_of("INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING").unwrap();
        assert!(matches!(
            s.kind,
            Kind::Insert {
                conflict_guard: None
            }
        ));
        let s = shape_of("UPDATE t SET \"B\" = $1 WHERE id = $2 AND (x IS NULL OR y IN ($3, 4))")
            .unwrap();
        assert_eq!(s.writes, vec![("B".into(), Source::Param(0))]);
        assert!(shape_of("DELETE FROM t WHERE id BETWEEN $1 AND $2").is_some());
    }

    #[test]
    fn shapes_that_keep_the_savepoint() {
        for sql in [
            "INSERT INTO t (a) VALUES ($1), ($2)",
            "INSERT INTO t (a) VALUES (lower($1))",
            "INSERT INTO t (a) SELECT a FROM u",
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
            "INSERT INTO t (a) VALUES ($1) RETURNING a + 1",
            "UPDATE t SET a = a + $1",
            "UPDATE t SET a = $1 WHERE id IN (SELECT id FROM u)",
            "UPDATE t SET a = $1 WHERE sqlite_truth(b)",
            "DELETE FROM t WHERE a / $1 > 2",
            "SELECT 1",
            "INSERT INTO t (a) VALUES ($1); DELETE FROM t",
        ] {
            assert!(shape_of(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn values_that_fit() {
        assert!(fits(&Value::Integer(5), &Type::INT8));
        assert!(fits(&Value::Text("12".into()), &Type::INT8));
        assert!(!fits(&Value::Text("12abc".into()), &Type::INT8));
        assert!(!fits(&Value::Text(" 12".into()), &Type::INT8));
        assert!(!fits(&Value::Real(1.5), &Type::INT8));
        assert!(fits(&Value::Real(2.0), &Type::INT8));
        assert!(!fits(&Value::Text("a\0b".into()), &Type::TEXT));
        assert!(!fits(&Value::Blob(vec![1]), &Type::TEXT));
        assert!(!fits(&Value::Text("1.5".into()), &Type::FLOAT8));
        assert!(!fits(&Value::Real(f64::NAN), &Type::NUMERIC));
        assert!(fits(&Value::Null, &Type::INT8));
    }

    fn column(name: &str, not_null: bool, has_default: bool, in_unique: bool) -> Column {
        Column {
            name: name.into(),
            type_oid: Type::TEXT.oid(),
            typmod: -1,
            not_null,
            has_default,
            plain: true,
            in_unique,
            indexed: in_unique,
            rowid: false,
        }
    }

    #[test]
    fn tables_that_decide() {
        let table = Table {
            plain: true,
            columns: vec![
                column("id", true, true, true),
                column("guid", false, false, false),
                column("title", true, false, false),
            ],
        };
        let insert = |sql: &str| shape_of(sql).unwrap().judge(&table);
        // A NOT NULL column without a default left out.
        assert!(insert("INSERT INTO t (guid) VALUES ($1)").is_none());
        assert!(insert("INSERT INTO t (title) VALUES (NULL)").is_none());
        let fw = insert("INSERT INTO t (guid, title) VALUES ($1, $2)").unwrap();
        assert!(fw.conflict_is_error);
        let ok = [Value::Text("g".into()), Value::Text("t".into())];
        let null_title = [Value::Text("g".into()), Value::Null];
        let types = [Type::TEXT, Type::TEXT];
        let params = |v: &'static [Value]| v.iter().map(Param).collect::<Vec<_>>();
        let ok: &'static [Value] = Box::leak(Box::new(ok));
        let null_title: &'static [Value] = Box::leak(Box::new(null_title));
        assert!(fw.admits(&types, &params(ok)));
        assert!(!fw.admits(&types, &params(null_title)));
        assert!(!fw.admits(&[Type::TEXT, Type::INT8], &params(ok)));
        // An UPDATE of a unique column keeps the savepoint.
        assert!(insert("UPDATE t SET id = $1").is_none());
        assert!(insert("UPDATE t SET guid = $1 WHERE id = $2").is_some());
        // Pipelining: `id` is a unique key but not the rowid here, so an
        // INSERT may conflict; an UPDATE or DELETE cannot.
        assert!(!fw.pipelinable);
        assert!(
            insert("UPDATE t SET guid = $1 WHERE id = $2")
                .unwrap()
                .pipelinable
        );
        assert!(insert("DELETE FROM t WHERE id = $1").unwrap().pipelinable);
        assert!(
            insert("INSERT INTO t (guid, title) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .unwrap()
                .pipelinable
        );
        let mut rowid_only = table.columns.clone();
        rowid_only[0].rowid = true;
        let sequenced = Table {
            plain: true,
            columns: rowid_only,
        };
        let judged = |sql: &str| shape_of(sql).unwrap().judge(&sequenced).unwrap();
        assert!(judged("INSERT INTO t (guid, title) VALUES ($1, $2)").pipelinable);
        // The rowid given explicitly may conflict.
        assert!(!judged("INSERT INTO t (id, title) VALUES ($1, $2)").pipelinable);
        // Another unique key may conflict.
        let mut keyed = sequenced.columns.clone();
        keyed[1].in_unique = true;
        let keyed = Table {
            plain: true,
            columns: keyed,
        };
        let fw = shape_of("INSERT INTO t (guid, title) VALUES ($1, $2)")
            .unwrap()
            .judge(&keyed)
            .unwrap();
        assert!(fw.conflict_is_error && !fw.pipelinable);
        let closed = Table {
            plain: false,
            columns: table.columns.clone(),
        };
        assert!(shape_of("DELETE FROM t").unwrap().judge(&closed).is_none());
    }
}
