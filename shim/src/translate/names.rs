//! Names: SQLite's names are case-insensitive and may be written bare, in
//! double quotes, backticks, brackets, or (in DDL, where SQLite accepts it)
//! single quotes. Every name of the syntax tree is printed for PostgreSQL
//! ASCII-lowercased, bare when PostgreSQL reads it back unchanged, else
//! double-quoted: the schema is created with the same spelling, so `Title`,
//! `"title"` and `[TITLE]` name one column, and PostgreSQL's keywords
//! (`"order"`, `"user"`) stay names.
//!
//! The names of called functions are always quoted: that marks a call as
//! the client's (SQLite's function, to translate), where the translation's
//! own calls are bare (see `construct::call`).

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Ident, Statement, VisitMut, VisitorMut};

/// Normalize every name of a statement.
pub fn normalize(statement: &mut Statement) {
    let _ = statement.visit(&mut Normalize);
}

/// A name as PostgreSQL sees it after normalization.
pub fn normalized(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// PostgreSQL's longest name, in bytes (`NAMEDATALEN - 1`).
const MAX_NAME: usize = 63;

/// The PostgreSQL name for a SQLite name: lowercased, and when longer than
/// PostgreSQL keeps, cut and suffixed with a hash of the whole name, so two
/// long names sharing a prefix stay two names (PostgreSQL would cut both to
/// the same 63 bytes). `sqlite_master` shows the SQLite name.
pub fn pg_name(name: &str) -> String {
    let lower = normalized(name);
    if lower.len() <= MAX_NAME {
        return lower;
    }
    let hash = lower.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = MAX_NAME - 17;
    while !lower.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash:016x}", &lower[..cut])
}

/// Normalize one identifier in place.
pub fn normalize_ident(ident: &mut Ident) {
    ident.value = pg_name(&ident.value);
    ident.quote_style = if needs_quotes(&ident.value) {
        Some('"')
    } else {
        None
    };
}

/// Whether PostgreSQL needs a name quoted to read it back as written.
pub fn needs_quotes(name: &str) -> bool {
    let mut chars = name.chars();
    let plain_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let plain =
        plain_start && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    !plain || POSTGRES_KEYWORDS.binary_search(&name).is_ok()
}

/// PostgreSQL's keywords that are not "unreserved" (`pg_get_keywords()`
/// with `catcode <> 'U'`), sorted: as names they must be quoted.
const POSTGRES_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Whether a call is the client's (its name quoted by [`normalize`]).
pub fn is_client_call(f: &sqlparser::ast::Function) -> bool {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.quote_style == Some('"'))
}

struct Normalize;

impl VisitorMut for Normalize {
    type Break = ();
    fn pre_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<()> {
        normalize_ident(ident);
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            for part in &mut f.name.0 {
                if let sqlparser::ast::ObjectNamePart::Identifier(i) = part {
                    i.quote_style = Some('"');
                }
            }
        }
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
        assert_eq!(st.to_string(), "CREATE INDEX i ON tbl(a, b, c, d)");
    }

    #[test]
    fn long_names_stay_distinct_within_postgres_limit() {
        let a = pg_name("index_metadata_agent_provider_group_items_on_metadata_agent_provider_id");
        let b = pg_name("index_metadata_agent_provider_group_items_on_metadata_agent_provider_group_id_and_metadata_agent_provider_id");
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert_eq!(pg_name("Tags"), "tags");
    }

    #[test]
    fn keywords_and_odd_names_stay_quoted() {
        assert!(needs_quotes("order"));
        assert!(needs_quotes("user"));
        assert!(needs_quotes("my col"));
        assert!(needs_quotes("9lives"));
        assert!(!needs_quotes("metadata_items"));
        assert!(!needs_quotes("index"));
        let mut sorted = POSTGRES_KEYWORDS.to_vec();
        sorted.sort();
        assert_eq!(sorted, POSTGRES_KEYWORDS);
    }
}
