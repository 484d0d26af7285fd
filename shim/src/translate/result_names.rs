//! Result column names as SQLite gives them: a result column that is not a
//! plain column reference and has no alias is named by its text as written
//! (`count(*)`, `max(id)`, `min( id )`, `a + 1`); PostgreSQL would name it
//! `count`, `max`, `?column?`. Libraries look columns up by these names.
//!
//! The text comes from the statement's tokens: the outermost `SELECT`'s
//! result list (the first of a compound), split at its top-level commas.
//! A plain column reference keeps PostgreSQL's name (the column's), also
//! when the translation made it an expression (a bare column of a grouped
//! query). The names travel with the translation (the runtime reports
//! them), so no PostgreSQL alias is involved and no 63-byte limit; a
//! view's columns are named by aliases.

use sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::dialect::Source;

/// SQLite's names of the result columns of `statement` (a query) where
/// PostgreSQL's differ (see [`super::Translation`]): those before the
/// list's first `*` by position, and those after its last `*` by position
/// from the end (how many columns a `*` gives is PostgreSQL's to say).
pub fn sqlite_names(
    statement: &Statement,
    source: &Source,
) -> (Vec<Option<String>>, Vec<Option<String>>) {
    let Statement::Query(query) = statement else {
        return (vec![], vec![]);
    };
    let Some(projection) = first_projection(query) else {
        return (vec![], vec![]);
    };
    let names = item_names(projection, source);
    let star = |item: &SelectItem| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    };
    let first_star = projection.iter().position(star);
    let last_star = projection.iter().rposition(star);
    let trim = |mut v: Vec<Option<String>>| {
        while v.last() == Some(&None) {
            v.pop();
        }
        v
    };
    match (first_star, last_star) {
        (Some(first), Some(last)) => {
            let leading = trim(names[..first].to_vec());
            let mut trailing: Vec<Option<String>> = names[last + 1..].to_vec();
            trailing.reverse();
            let mut trailing = trim(trailing);
            trailing.reverse();
            (leading, trailing)
        }
        _ => (trim(names), vec![]),
    }
}

/// Name the unnamed result columns of a view's query as SQLite would, with
/// aliases (PostgreSQL keeps 63 bytes of a name).
pub fn name_view_columns(statement: &mut Statement, source: &Source) {
    let Statement::Query(query) = statement else {
        return;
    };
    let Some(projection) = first_projection_mut(query) else {
        return;
    };
    let names = item_names(projection, source);
    for (item, name) in projection.iter_mut().zip(names) {
        let (SelectItem::UnnamedExpr(expr), Some(name)) = (&mut *item, name) else {
            continue;
        };
        let expr = std::mem::replace(expr, Expr::value(sqlparser::ast::Value::Null));
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', name),
        };
    }
}

/// For each item of the list, SQLite's name where PostgreSQL's differs:
/// an unnamed expression is named by its text as written; a column
/// reference the translation made an expression by the column's name.
/// All `None` when the list's text cannot be matched with the tree.
fn item_names(projection: &[SelectItem], source: &Source) -> Vec<Option<String>> {
    let none = vec![None; projection.len()];
    let Some(items) = result_items(&source.tokens) else {
        return none;
    };
    if items.len() != projection.len() {
        return none;
    }
    projection
        .iter()
        .zip(items)
        .map(|(item, tokens)| {
            let SelectItem::UnnamedExpr(expr) = item else {
                return None;
            };
            let name = match column_reference(tokens) {
                Some(_) if is_column(expr) => return None,
                Some(column) => column,
                None => {
                    let (first, last) = (&tokens[0], &tokens[tokens.len() - 1]);
                    source
                        .slice(first.span.start, last.span.end)
                        .trim()
                        .to_string()
                }
            };
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The leftmost `SELECT`'s result list.
fn first_projection(query: &Query) -> Option<&Vec<SelectItem>> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => return Some(&select.projection),
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(q) => body = q.body.as_ref(),
            _ => return None,
        }
    }
}

fn first_projection_mut(query: &mut Query) -> Option<&mut Vec<SelectItem>> {
    let mut body = query.body.as_mut();
    loop {
        match body {
            SetExpr::Select(select) => return Some(&mut select.projection),
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            SetExpr::Query(q) => body = q.body.as_mut(),
            _ => return None,
        }
    }
}

fn is_column(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(e) => is_column(e),
        e => matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)),
    }
}

/// The tokens of each item of the outermost `SELECT`'s result list: the
/// first `SELECT` outside parentheses, up to the keyword ending the list.
fn result_items(tokens: &[TokenWithSpan]) -> Option<Vec<&[TokenWithSpan]>> {
    let mut depth = 0usize;
    let mut start = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w) if depth == 0 && w.keyword == Keyword::SELECT => {
                start = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    let mut at = start?;
    while matches!(&tokens.get(at)?.token, Token::Word(w) if matches!(w.keyword, Keyword::DISTINCT | Keyword::ALL))
    {
        at += 1;
    }
    let mut items = Vec::new();
    let mut item_start = at;
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(at) {
        let end_of_list = depth == 0
            && match &t.token {
                Token::SemiColon | Token::EOF => true,
                Token::Word(w) => matches!(
                    w.keyword,
                    Keyword::FROM
                        | Keyword::WHERE
                        | Keyword::GROUP
                        | Keyword::HAVING
                        | Keyword::WINDOW
                        | Keyword::ORDER
                        | Keyword::LIMIT
                        | Keyword::UNION
                        | Keyword::EXCEPT
                        | Keyword::INTERSECT
                ),
                _ => false,
            };
        if end_of_list {
            items.push(&tokens[item_start..i]);
            return nonempty(items);
        }
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                items.push(&tokens[item_start..i]);
                item_start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tokens[item_start..]);
    nonempty(items)
}

fn nonempty(items: Vec<&[TokenWithSpan]>) -> Option<Vec<&[TokenWithSpan]>> {
    if items.iter().all(|i| !i.is_empty()) {
        Some(items)
    } else {
        None
    }
}

/// `name`, `table.name` or `schema.table.name`, possibly in parentheses:
/// the column's name.
fn column_reference(mut tokens: &[TokenWithSpan]) -> Option<String> {
    while tokens.len() > 2
        && tokens[0].token == Token::LParen
        && tokens[tokens.len() - 1].token == Token::RParen
    {
        tokens = &tokens[1..tokens.len() - 1];
    }
    let is_name = |t: &TokenWithSpan| matches!(&t.token, Token::Word(_));
    let shape_ok = tokens.len() % 2 == 1
        && tokens.iter().enumerate().all(|(i, t)| {
            if i % 2 == 0 {
                is_name(t)
            } else {
                t.token == Token::Period
            }
        });
    if !shape_ok {
        return None;
    }
    match &tokens.last()?.token {
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<Option<String>> {
        let source = Source::new(sql).unwrap();
        let st = source.parse().unwrap();
        sqlite_names(&st, &source).0
    }

    fn some(names: &[&str]) -> Vec<Option<String>> {
        names
            .iter()
            .map(|n| (!n.is_empty()).then(|| n.to_string()))
            .collect()
    }

    #[test]
    fn expressions_are_named_by_their_text() {
        assert_eq!(
            names("SELECT count(*), max( id ),a+1 , b, t.c, d AS x, rowid, * FROM t GROUP BY b"),
            some(&["count(*)", "max( id )", "a+1"])
        );
        assert_eq!(
            names("WITH w AS (SELECT 1 AS v) SELECT DISTINCT (SELECT v FROM w), 'it''s', \"q\"\"\" FROM w UNION SELECT 2, 3, 4"),
            some(&["(SELECT v FROM w)", "'it''s'"])
        );
        let source = Source::new("SELECT a + 1, t.*, b, *, count(*), c FROM t").unwrap();
        let st = source.parse().unwrap();
        assert_eq!(
            sqlite_names(&st, &source),
            (some(&["a + 1"]), some(&["count(*)", ""]))
        );
        assert_eq!(
            names("SELECT - -5, CASE WHEN a THEN 1 END\nFROM t ORDER BY 1"),
            some(&["- -5", "CASE WHEN a THEN 1 END"])
        );
        assert_eq!(
            names("SELECT ((a)), (a) + (b), (t.c) FROM t"),
            some(&["", "(a) + (b)"])
        );
    }

    #[test]
    fn a_column_made_an_expression_keeps_its_name() {
        let source = Source::new("SELECT k, id FROM g GROUP BY k").unwrap();
        let mut st = source.parse().unwrap();
        if let Statement::Query(q) = &mut st {
            if let SetExpr::Select(s) = q.body.as_mut() {
                if let SelectItem::UnnamedExpr(e) = &mut s.projection[1] {
                    *e = super::super::construct::call("min", vec![e.clone()]);
                }
            }
        }
        assert_eq!(sqlite_names(&st, &source).0, some(&["", "id"]));
        name_view_columns(&mut st, &source);
        assert!(
            st.to_string()
                .starts_with("SELECT \"k\", min(id) AS \"id\" FROM"),
            "{st}"
        );
    }
}
