//! The `CREATE TABLE` text SQLite keeps in `sqlite_master`, edited the way
//! SQLite's `ALTER TABLE` edits it: a new column's definition is inserted
//! after the last column definition, a renamed table or column is written
//! `"new_name"`, a dropped column's definition is cut out. The edits work on
//! the text's tokens, so quoting and spacing elsewhere stay as written.

use sqlparser::tokenizer::{Location, Token};

use super::dialect::Source;
use super::Error;

/// One comma-separated item between the outer parentheses.
struct Item {
    /// Index of its first token.
    first: usize,
    /// Location of its first token and of the end of its last token.
    start: Location,
    end: Location,
    /// Whether it is a table constraint rather than a column.
    is_constraint: bool,
}

fn items(source: &Source) -> Result<Vec<Item>, Error> {
    let t = &source.tokens;
    let open = t
        .iter()
        .position(|x| x.token == Token::LParen)
        .ok_or_else(|| Error::new("no column list in the table's SQL"))?;
    let mut out = Vec::new();
    let mut depth = 0;
    let mut first = open + 1;
    for (i, tok) in t.iter().enumerate().skip(open + 1) {
        match tok.token {
            Token::LParen => depth += 1,
            Token::RParen if depth > 0 => depth -= 1,
            Token::Comma | Token::RParen if depth == 0 => {
                if first < i {
                    let word = source.word_at(first);
                    out.push(Item {
                        first,
                        start: t[first].span.start,
                        end: t[i - 1].span.end,
                        is_constraint: matches!(
                            word.as_str(),
                            "CONSTRAINT" | "PRIMARY" | "UNIQUE" | "CHECK" | "FOREIGN"
                        ),
                    });
                }
                if tok.token == Token::RParen {
                    return Ok(out);
                }
                first = i + 1;
            }
            _ => {}
        }
    }
    Err(Error::new("unterminated column list in the table's SQL"))
}

fn splice(text: &str, from: usize, to: usize, with: &str) -> String {
    format!("{}{with}{}", &text[..from], &text[to..])
}

/// `ALTER TABLE … ADD COLUMN def`.
pub fn add_column(sql: &str, definition: &str) -> Result<String, Error> {
    let source = Source::new(sql)?;
    let items = items(&source)?;
    let last = items
        .iter()
        .rfind(|i| !i.is_constraint)
        .ok_or_else(|| Error::new("no columns in the table's SQL"))?;
    let at = source.offset(last.end);
    Ok(splice(sql, at, at, &format!(", {definition}")))
}

/// `ALTER TABLE … RENAME TO new`.
pub fn rename_table(sql: &str, new_name: &str) -> Result<String, Error> {
    let source = Source::new(sql)?;
    let name = source
        .tokens
        .get(2)
        .ok_or_else(|| Error::new("no table name in the table's SQL"))?;
    let (from, to) = (source.offset(name.span.start), source.offset(name.span.end));
    Ok(splice(sql, from, to, &format!("\"{new_name}\"")))
}

/// `ALTER TABLE … RENAME COLUMN old TO new`.
pub fn rename_column(sql: &str, old: &str, new: &str) -> Result<String, Error> {
    let source = Source::new(sql)?;
    let item = column_item(&source, old)?;
    let tok = &source.tokens[item.first];
    let (from, to) = (source.offset(tok.span.start), source.offset(tok.span.end));
    Ok(splice(sql, from, to, &format!("\"{new}\"")))
}

/// `ALTER TABLE … DROP COLUMN name`.
pub fn drop_column(sql: &str, name: &str) -> Result<String, Error> {
    let source = Source::new(sql)?;
    let all = items(&source)?;
    let index = all
        .iter()
        .position(|i| !i.is_constraint && item_name(&source, i).as_deref() == Some(name))
        .ok_or_else(|| Error::new(format!("no such column: \"{name}\"")))?;
    let (from, to) = if index > 0 {
        (
            source.offset(all[index - 1].end),
            source.offset(all[index].end),
        )
    } else if all.len() > 1 {
        (source.offset(all[0].start), source.offset(all[1].start))
    } else {
        return Err(Error::new("cannot drop the only column"));
    };
    Ok(splice(sql, from, to, ""))
}

fn item_name(source: &Source, item: &Item) -> Option<String> {
    match &source.tokens[item.first].token {
        Token::Word(w) => Some(w.value.clone()),
        Token::SingleQuotedString(s) => Some(super::names::normalized(s)),
        _ => None,
    }
}

fn column_item(source: &Source, name: &str) -> Result<Item, Error> {
    items(source)?
        .into_iter()
        .find(|i| !i.is_constraint && item_name(source, i).as_deref() == Some(name))
        .ok_or_else(|| Error::new(format!("no such column: \"{name}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "CREATE TABLE 'x' ('id' INTEGER PRIMARY KEY, b varchar( 255 ) DEFAULT \"t\", c dt_integer(8), UNIQUE(b, c))";

    #[test]
    fn columns_are_added_after_the_last_column() {
        assert_eq!(
            add_column(SQL, "e integer(8) default 0").unwrap(),
            "CREATE TABLE 'x' ('id' INTEGER PRIMARY KEY, b varchar( 255 ) DEFAULT \"t\", c dt_integer(8), e integer(8) default 0, UNIQUE(b, c))"
        );
    }

    #[test]
    fn renames_and_drops_edit_only_their_tokens() {
        assert!(rename_table(SQL, "y")
            .unwrap()
            .starts_with("CREATE TABLE \"y\" ('id'"));
        assert!(rename_column(SQL, "b", "bb")
            .unwrap()
            .contains(", \"bb\" varchar( 255 )"));
        assert_eq!(
            drop_column(SQL, "c").unwrap(),
            "CREATE TABLE 'x' ('id' INTEGER PRIMARY KEY, b varchar( 255 ) DEFAULT \"t\", UNIQUE(b, c))"
        );
    }
}
