//! Names: SQLite's names are case-insensitive and may be written bare, in
//! double quotes, backticks, brackets, or (in DDL, where SQLite accepts it)
//! single quotes. Every name of the syntax tree is printed for PostgreSQL as
//! a double-quoted, ASCII-lowercased identifier: the schema is created with
//! the same spelling, so `Title`, `"title"` and `[TITLE]` name one column,
//! and PostgreSQL's reserved words (`"order"`, `"index"`) stay names.

use std::ops::ControlFlow;

use sqlparser::ast::{Ident, Statement, VisitMut, VisitorMut};

/// Normalize every name of a statement.
pub fn normalize(statement: &mut Statement) {
    let _ = statement.visit(&mut Normalize);
}

/// A name as PostgreSQL sees it after normalization.
pub fn normalized(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Normalize one identifier in place.
pub fn normalize_ident(ident: &mut Ident) {
    ident.value = normalized(&ident.value);
    ident.quote_style = Some('"');
}

struct Normalize;

impl VisitorMut for Normalize {
    type Break = ();
    fn pre_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<()> {
        normalize_ident(ident);
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::dialect::Source;

    #[test]
    fn every_spelling_of_a_name_prints_the_same() {
        let source = Source::new("CREATE INDEX 'I' ON 'Tbl' (\"A\", [b], `C`, d)").unwrap();
        let mut st = source.parse().unwrap();
        normalize(&mut st);
        assert_eq!(st.to_string(), "CREATE INDEX \"i\" ON \"tbl\"(\"a\", \"b\", \"c\", \"d\")");
    }
}
