//! What the translator reads from PostgreSQL's catalog: a table's columns,
//! their declared SQLite types, its rowid column and unique keys.
//!
//! Each table is read once per translation ([`Schema`] memoizes), through
//! the runtime's [`Catalog`]. Only schema facts are read, never data, so a
//! translation stays valid until the schema changes (the runtime drops its
//! cache then).
//!
//! Where the facts live (written by the DDL translation, see `ddl`):
//! - a column's comment is its declared SQLite type, followed by U+001F and
//!   its `DEFAULT` as written when it has one;
//! - the `CREATE` statement SQLite would keep in `sqlite_master` is the
//!   comment of the table, index or trigger;
//! - columns whose name starts with [`HIDDEN_PREFIX`] are the translation's
//!   own (a full-text vector, …) and are not SQLite columns.

use std::collections::HashMap;
use std::rc::Rc;

use super::{Catalog, Error};

/// Columns (and helper objects) the translation adds carry this prefix.
pub const HIDDEN_PREFIX: &str = "sqlite__";

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The declared SQLite type, `""` when none.
    pub declared: String,
    /// The `DEFAULT` as written, if any.
    pub default_text: Option<String>,
    /// PostgreSQL's type (`format_type`).
    pub pg_type: String,
    pub not_null: bool,
}

/// One table (or view) of the routed schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    /// The SQLite columns, in order (hidden ones excluded).
    pub columns: Vec<Column>,
    /// The `CREATE` statement SQLite would show in `sqlite_master`.
    pub sql: String,
    /// The column that is the rowid (`INTEGER PRIMARY KEY`), if any.
    pub rowid_column: Option<String>,
    /// Unique keys made of plain columns (primary key first).
    pub unique_keys: Vec<Vec<String>>,
    /// The primary key's columns (empty when none).
    pub primary_key: Vec<String>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The module of a virtual table (`fts4`, `spellfix1`, `rtree`).
    /// A view (its stored text is SQLite's `CREATE [TEMP] VIEW`).
    pub fn is_view(&self) -> bool {
        let words: Vec<String> = self
            .sql
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        matches!(
            words
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            ["CREATE", "VIEW", ..] | ["CREATE", "TEMP" | "TEMPORARY", "VIEW"]
        )
    }

    pub fn virtual_module(&self) -> Option<String> {
        let upper = self.sql.to_ascii_uppercase();
        if !upper.starts_with("CREATE VIRTUAL TABLE") {
            return None;
        }
        let at = upper.find(" USING ")? + " USING ".len();
        let rest = &self.sql[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        Some(rest[..end].to_ascii_lowercase())
    }
}

const COLUMNS_QUERY: &str = "SELECT a.attname::text, coalesce(col_description(c.oid, a.attnum), ''), \
     format_type(a.atttypid, a.atttypmod), a.attnotnull::text, coalesce(obj_description(c.oid, 'pg_class'), '') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     WHERE c.relname = $1 AND c.relkind IN ('r', 'v', 'p', 'm', 'f') ORDER BY a.attnum";

const KEYS_QUERY: &str = "SELECT i.indisprimary::text, \
     (SELECT string_agg(a.attname::text, chr(31) ORDER BY k.o) FROM unnest(i.indkey) WITH ORDINALITY k(n, o) \
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n) \
     FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
     WHERE c.relname = $1 AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL \
     AND 0 <> ALL (i.indkey) ORDER BY i.indisprimary DESC, i.indexrelid";

const TRIGGER_TABLE_QUERY: &str =
    "SELECT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
     WHERE t.tgname = $1 AND NOT t.tgisinternal";

/// Whether a relation has a non-internal `INSTEAD OF` trigger for an event
/// (`tgtype` bits: 64 instead of; 4 insert, 8 delete, 16 update).
const INSTEAD_OF_QUERY: &str = "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
     WHERE c.relname = $1 AND NOT t.tgisinternal AND (t.tgtype & 64) <> 0 \
     AND (t.tgtype & $2::int) <> 0";

/// Whether an index of this PostgreSQL name is in the schema.
const INDEX_QUERY: &str = "SELECT 1 FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
     WHERE c.relname = $1 AND c.relkind IN ('i', 'I')";

/// A data change, as the triggers that can stand in for it know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Insert,
    Delete,
    Update,
}

/// The routed schema as the translator sees it, memoized per translation.
pub struct Schema<'c> {
    catalog: &'c mut dyn Catalog,
    tables: HashMap<String, Option<Rc<TableInfo>>>,
}

impl<'c> Schema<'c> {
    pub fn new(catalog: &'c mut dyn Catalog) -> Schema<'c> {
        Schema {
            catalog,
            tables: HashMap::new(),
        }
    }

    /// Run a catalog query (text parameters, text results).
    pub fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, Error> {
        self.catalog
            .query(sql, params)
            .map_err(|e| Error::new(format!("reading the catalog: {e}")))
    }

    /// The table named `name` (already lowercase), or `None`.
    pub fn table(&mut self, name: &str) -> Result<Option<Rc<TableInfo>>, Error> {
        if let Some(t) = self.tables.get(name) {
            return Ok(t.clone());
        }
        let info = self.load(name)?.map(Rc::new);
        self.tables.insert(name.to_string(), info.clone());
        Ok(info)
    }

    /// Like [`Schema::table`], but a missing table is an error.
    pub fn existing_table(&mut self, name: &str) -> Result<Rc<TableInfo>, Error> {
        self.table(name)?
            .ok_or_else(|| Error::new(format!("no such table: {name}")))
    }

    /// Whether `relation` has an `INSTEAD OF` trigger for `event`.
    pub fn has_instead_of_trigger(&mut self, relation: &str, event: Event) -> Result<bool, Error> {
        let bit = match event {
            Event::Insert => "4",
            Event::Delete => "8",
            Event::Update => "16",
        };
        Ok(!self.query(INSTEAD_OF_QUERY, &[relation, bit])?.is_empty())
    }

    /// Whether an index named `name` (PostgreSQL's name) exists.
    pub fn has_index(&mut self, name: &str) -> Result<bool, Error> {
        Ok(!self.query(INDEX_QUERY, &[name])?.is_empty())
    }

    /// The table a trigger is on.
    pub fn trigger_table(&mut self, trigger: &str) -> Result<Option<String>, Error> {
        let rows = self.query(TRIGGER_TABLE_QUERY, &[trigger])?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    fn load(&mut self, name: &str) -> Result<Option<TableInfo>, Error> {
        let rows = self.query(COLUMNS_QUERY, &[name])?;
        if rows.is_empty() {
            return Ok(None);
        }
        let text =
            |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let sql = text(&rows[0], 4);
        let columns: Vec<Column> = rows
            .iter()
            .map(|r| {
                let comment = text(r, 1);
                let (declared, default_text) = match comment.split_once('\u{1f}') {
                    Some((d, x)) => (d.to_string(), Some(x.to_string())),
                    None => (comment, None),
                };
                (r, declared, default_text)
            })
            .map(|(r, declared, default_text)| Column {
                name: text(r, 0),
                declared,
                default_text,
                pg_type: text(r, 2),
                not_null: text(r, 3) == "true",
            })
            .filter(|c| !c.name.starts_with(HIDDEN_PREFIX))
            .collect();
        let mut primary_key = Vec::new();
        let mut unique_keys = Vec::new();
        for r in self.query(KEYS_QUERY, &[name])? {
            let cols: Vec<String> = text(&r, 1).split('\u{1f}').map(str::to_string).collect();
            if text(&r, 0) == "true" {
                primary_key = cols.clone();
            }
            unique_keys.push(cols);
        }
        let rtree = sql.to_ascii_uppercase().contains("USING RTREE");
        let rowid_column = match primary_key.as_slice() {
            [only] if rtree => Some(only.clone()),
            [only] => columns
                .iter()
                .find(|c| &c.name == only && c.declared.eq_ignore_ascii_case("INTEGER"))
                .map(|c| c.name.clone()),
            _ => None,
        };
        Ok(Some(TableInfo {
            name: name.to_string(),
            columns,
            sql,
            rowid_column,
            unique_keys,
            primary_key,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_module_is_read_from_the_create_statement() {
        let mut t = TableInfo {
            name: "f".into(),
            columns: vec![],
            sql: "CREATE VIRTUAL TABLE f USING fts4(content=\"tags\", tag)".into(),
            rowid_column: None,
            unique_keys: vec![],
            primary_key: vec![],
        };
        assert_eq!(t.virtual_module().as_deref(), Some("fts4"));
        t.sql = "CREATE TABLE f (a)".into();
        assert_eq!(t.virtual_module(), None);
    }
}
