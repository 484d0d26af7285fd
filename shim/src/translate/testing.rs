//! What the translator's unit tests share: a catalog with no tables, and
//! the PostgreSQL text a statement translates to over it.

use super::{translate, Action, Catalog};

/// A schema named `.0` with no tables: queries translate as they would
/// over unknown tables.
pub struct NoTables(pub &'static str);

impl Catalog for NoTables {
    fn schema(&self) -> &str {
        self.0
    }
    fn query(&mut self, _: &str, _: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        Ok(vec![])
    }
}

/// The last PostgreSQL statement `sql` translates to in schema `schema`;
/// panics when it is not a statement to run.
pub fn last_statement(schema: &'static str, sql: &str) -> String {
    match translate(sql, &mut NoTables(schema)).map(|t| t.action) {
        Ok(Action::Run(statements)) => statements.last().map(|s| s.sql.clone()).unwrap_or_default(),
        other => panic!("{sql}: {other:?}"),
    }
}
