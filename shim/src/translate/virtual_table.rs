//! `CREATE VIRTUAL TABLE`: SQLite's modules as real PostgreSQL tables.
//!
//! sqlparser does not parse module arguments (they are free-form tokens), so
//! the statement is read here from its tokens: `CREATE VIRTUAL TABLE [IF
//! NOT EXISTS] name USING module(arg, …)`, arguments split at top-level
//! commas.
//!
//! | module | PostgreSQL | queries |
//! |--------|------------|---------|
//! | `fts4` | a table `(docid bigint PRIMARY KEY, <columns> text, sqlite__tsv tsvector)` with a GIN index; the vector is generated from the columns, one weight (A, B, C, D) per column | `MATCH` is full-text search (`fts`); `INSERT … ('rebuild')` refills from the `content=` table |
//! | `spellfix1` | a table `(id, word, rank, langid, soundslike)` | rows are stored and read; `MATCH` (fuzzy search) is an error |
//! | `rtree` | a table `(id bigint PRIMARY KEY, <bounds> real)` | range conditions on the bounds are plain comparisons |
//!
//! The table's comment keeps the `CREATE VIRTUAL TABLE` text, so
//! `sqlite_master` shows it as SQLite does.

use sqlparser::tokenizer::Token;

use super::construct::{quote_ident, quote_literal};
use super::dialect::Source;
use super::fts;
use super::names::normalized;
use super::{catalog::Schema, Error, Output, Plan, Sql};

/// Whether the statement is `CREATE VIRTUAL TABLE`.
pub fn is_create_virtual(source: &Source) -> bool {
    source.word_at(1) == "VIRTUAL"
}

/// A parsed `CREATE VIRTUAL TABLE`.
#[derive(Debug, PartialEq)]
pub struct VirtualTable {
    pub name: String,
    pub if_not_exists: bool,
    pub module: String,
    /// Module arguments as written, trimmed.
    pub args: Vec<String>,
    /// The text SQLite keeps in `sqlite_master`.
    pub sql: String,
}

/// Read `CREATE VIRTUAL TABLE` from its tokens.
pub fn parse(source: &Source) -> Result<VirtualTable, Error> {
    let t = &source.tokens;
    let mut i = 3;
    let if_not_exists = source.word_at(3) == "IF";
    if if_not_exists {
        if source.word_at(4) != "NOT" || source.word_at(5) != "EXISTS" {
            return Err(Error::new("syntax error in CREATE VIRTUAL TABLE"));
        }
        i = 6;
    }
    let name_token = t
        .get(i)
        .ok_or_else(|| Error::new("CREATE VIRTUAL TABLE needs a name"))?;
    let name = match &name_token.token {
        Token::Word(w) => w.value.clone(),
        Token::SingleQuotedString(s) => normalized(s),
        other => return Err(Error::new(format!("near \"{other}\": syntax error"))),
    };
    let mut j = i + 1;
    if matches!(t.get(j).map(|x| &x.token), Some(Token::Period)) {
        return Err(Error::new(
            "a virtual table in another database is not supported",
        ));
    }
    if source.word_at(j) != "USING" {
        return Err(Error::new("CREATE VIRTUAL TABLE needs USING module"));
    }
    j += 1;
    let module = match t.get(j).map(|x| &x.token) {
        Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
        _ => return Err(Error::new("CREATE VIRTUAL TABLE needs a module name")),
    };
    let args = module_args(source, j + 1)?;
    let sql_start = source.offset(name_token.span.start);
    let sql = format!(
        "CREATE VIRTUAL TABLE {}",
        source.text[sql_start..]
            .trim_end()
            .trim_end_matches(';')
            .trim_end()
    );
    Ok(VirtualTable {
        name,
        if_not_exists,
        module,
        args,
        sql,
    })
}

/// The arguments between the parentheses at token `open`, as written.
fn module_args(source: &Source, open: usize) -> Result<Vec<String>, Error> {
    let t = &source.tokens;
    match t.get(open).map(|x| &x.token) {
        None => return Ok(vec![]),
        Some(Token::LParen) => {}
        Some(other) => return Err(Error::new(format!("near \"{other}\": syntax error"))),
    }
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = t[open].span.end;
    for tok in &t[open + 1..] {
        match tok.token {
            Token::LParen => depth += 1,
            Token::RParen if depth > 0 => depth -= 1,
            Token::RParen | Token::Comma if depth == 0 => {
                let arg = source.slice(start, tok.span.start).trim();
                if !arg.is_empty() {
                    args.push(arg.to_string());
                }
                if tok.token == Token::RParen {
                    return Ok(args);
                }
                start = tok.span.end;
            }
            _ => {}
        }
    }
    Err(Error::new(
        "unterminated module arguments in CREATE VIRTUAL TABLE",
    ))
}

/// Translate `CREATE VIRTUAL TABLE`.
pub fn create(source: &Source, schema: &mut Schema) -> Result<Plan, Error> {
    let vt = parse(source)?;
    if vt.if_not_exists && schema.table(&vt.name)?.is_some() {
        return Ok(Plan::no_op());
    }
    let mut outputs = match vt.module.as_str() {
        "fts3" | "fts4" => fts::create(&vt)?,
        "spellfix1" => spellfix1(&vt)?,
        "rtree" | "rtree_i32" => rtree(&vt)?,
        other => return Err(Error::new(format!("no such module: {other}"))),
    };
    outputs.push(Output::text(format!(
        "COMMENT ON TABLE {} IS {}",
        quote_ident(&vt.name),
        quote_literal(&vt.sql)
    )));
    Ok(Plan::schema_change(outputs))
}

fn spellfix1(vt: &VirtualTable) -> Result<Vec<Output>, Error> {
    if !vt.args.is_empty() {
        return Err(Error::new("spellfix1 arguments are not supported"));
    }
    Ok(vec![Output::text(format!(
        "CREATE TABLE {} (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \"word\" text COLLATE \"C\", \
         \"rank\" bigint, \"langid\" bigint DEFAULT 0, \"soundslike\" text COLLATE \"C\", \"k1\" text COLLATE \"C\", \"k2\" text COLLATE \"C\")",
        quote_ident(&vt.name)
    ))])
}

fn rtree(vt: &VirtualTable) -> Result<Vec<Output>, Error> {
    let names: Vec<String> = vt.args.iter().map(|a| column_name_of_arg(a)).collect();
    if names.len() < 3 || names.len() % 2 == 0 || names.len() > 11 {
        return Err(Error::new("wrong number of columns for an rtree table"));
    }
    let table = quote_ident(&vt.name);
    let mut cols = vec![format!("{} bigint PRIMARY KEY", quote_ident(&names[0]))];
    let (bound_type, bound_declared) = if vt.module == "rtree_i32" {
        ("integer", "INT")
    } else {
        ("real", "REAL")
    };
    cols.extend(
        names[1..]
            .iter()
            .map(|n| format!("{} {bound_type}", quote_ident(n))),
    );
    let mut out = vec![Output::text(format!(
        "CREATE TABLE {table} ({})",
        cols.join(", ")
    ))];
    // SQLite's rtree declares its columns INT and REAL (the rowid INT).
    for (i, n) in names.iter().enumerate() {
        let declared = if i == 0 { "INT" } else { bound_declared };
        out.push(Output::text(format!(
            "COMMENT ON COLUMN {table}.{} IS {}",
            quote_ident(n),
            quote_literal(declared)
        )));
    }
    // Creating an rtree writes its root node: one change, rowid 1.
    out.push(Output {
        sql: Sql::Text("SELECT 1::bigint".into()),
        yields_rows: false,
        counts_changes: true,
        rowid_column: true,
    });
    Ok(out)
}

/// The column name of a module argument such as `"id" integer` or `title`.
pub fn column_name_of_arg(arg: &str) -> String {
    let arg = arg.trim();
    let name = match arg.chars().next() {
        Some(q @ ('"' | '`' | '\'')) => arg[1..].split(q).next().unwrap_or(""),
        Some('[') => arg[1..].split(']').next().unwrap_or(""),
        _ => arg.split_whitespace().next().unwrap_or(""),
    };
    normalized(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts4_arguments_are_split_at_top_level_commas() {
        let sql = "CREATE VIRTUAL TABLE fts4_tag_titles_icu USING fts4(content=\"tags\", tag, tokenize=collating 'root@colStrength=primary;colAlternate=shifted')";
        let s = Source::new(sql).unwrap();
        let vt = parse(&s).unwrap();
        assert_eq!(vt.name, "fts4_tag_titles_icu");
        assert_eq!(vt.module, "fts4");
        assert_eq!(
            vt.args,
            vec![
                "content=\"tags\"",
                "tag",
                "tokenize=collating 'root@colStrength=primary;colAlternate=shifted'"
            ]
        );
        assert_eq!(vt.sql, sql);
    }

    #[test]
    fn rtree_columns_are_named_from_arguments() {
        assert_eq!(column_name_of_arg("\"lat_min\" float"), "lat_min");
        assert_eq!(column_name_of_arg("id"), "id");
    }
}
