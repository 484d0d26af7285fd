//! Cutting SQL text into statements, as `sqlite3_prepare`'s tail and
//! `sqlite3_exec` do: a `;` ends a statement unless it is inside a string,
//! a quoted identifier, a comment, or the body of a `CREATE TRIGGER …
//! BEGIN … END`.

/// The first statement of `sql` and what follows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    /// The statement's text, without the `;` that ends it and without
    /// leading blanks and comments; empty when there is none.
    pub statement: &'a [u8],
    /// Everything after that `;` (or nothing, at the end of the text).
    pub tail: &'a [u8],
}

/// Cut the first statement off `sql`. Empty statements (`;;`) are skipped,
/// as SQLite does.
pub fn first_statement(sql: &[u8]) -> Split<'_> {
    let mut start = skip_blank(sql, 0);
    loop {
        if start < sql.len() && sql[start] == b';' {
            start = skip_blank(sql, start + 1);
            continue;
        }
        break;
    }
    let end = statement_end(sql, start);
    let statement = trim_end(&sql[start..end]);
    let tail = if end < sql.len() {
        &sql[end + 1..]
    } else {
        &sql[end..]
    };
    Split { statement, tail }
}

/// Whether `sql` holds nothing but blanks, comments and `;`.
#[cfg(test)]
fn is_blank(sql: &[u8]) -> bool {
    first_statement(sql).statement.is_empty()
}

/// Every statement of `sql`, in order.
#[cfg(test)]
fn statements(mut sql: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    loop {
        let s = first_statement(sql);
        if s.statement.is_empty() {
            return out;
        }
        out.push(s.statement);
        sql = s.tail;
    }
}

/// `sql` with each parameter (`?`, `?NNN`, `:name`, `@name`, `$name`)
/// outside strings, quoted names and comments replaced by what `with`
/// returns for it (for `sqlite3_expanded_sql`).
pub fn replace_parameters(sql: &[u8], mut with: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0;
    let mut i = 0;
    while i < sql.len() {
        let next = match sql[i] {
            b'\'' | b'"' | b'`' => skip_quoted(sql, i, sql[i]),
            b'[' => sql[i..]
                .iter()
                .position(|&c| c == b']')
                .map_or(sql.len(), |p| i + p + 1),
            b'-' if sql.get(i + 1) == Some(&b'-') => skip_line_comment(sql, i),
            b'/' if sql.get(i + 1) == Some(&b'*') => skip_block_comment(sql, i),
            c @ (b'?' | b':' | b'@' | b'$') => {
                let mut end = i + 1;
                while end < sql.len() && (sql[end].is_ascii_alphanumeric() || sql[end] == b'_') {
                    end += 1;
                }
                if c == b'?' || end > i + 1 {
                    out.push_str(&String::from_utf8_lossy(&sql[copied..i]));
                    out.push_str(&with(&String::from_utf8_lossy(&sql[i..end])));
                    copied = end;
                }
                end
            }
            _ => i + 1,
        };
        i = next;
    }
    out.push_str(&String::from_utf8_lossy(&sql[copied.min(sql.len())..]));
    out
}

/// Index of the `;` ending the statement that starts at `start`, or the
/// text's length.
fn statement_end(sql: &[u8], start: usize) -> usize {
    let mut i = start;
    let mut words = 0; // leading keywords seen, to spot CREATE [TEMP] TRIGGER
    let mut trigger = false;
    let mut in_body = false;
    let mut last_word_end = false; // the previous token was END (inside a trigger body)
    while i < sql.len() {
        match sql[i] {
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(sql, i, sql[i]);
                last_word_end = false;
            }
            b'[' => {
                i = sql[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(sql.len(), |p| i + p + 1);
                last_word_end = false;
            }
            b'-' if sql.get(i + 1) == Some(&b'-') => i = skip_line_comment(sql, i),
            b'/' if sql.get(i + 1) == Some(&b'*') => i = skip_block_comment(sql, i),
            b';' => {
                if !in_body || last_word_end {
                    return i;
                }
                i += 1;
                last_word_end = false;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let w_start = i;
                while i < sql.len()
                    && (sql[i].is_ascii_alphanumeric() || sql[i] == b'_' || sql[i] == b'$')
                {
                    i += 1;
                }
                let word = &sql[w_start..i];
                if words < 3 {
                    words += 1;
                    if word.eq_ignore_ascii_case(b"TRIGGER") {
                        trigger = true;
                    }
                }
                if trigger && !in_body && word.eq_ignore_ascii_case(b"BEGIN") {
                    in_body = true;
                }
                last_word_end = in_body && word.eq_ignore_ascii_case(b"END");
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                i += 1;
                last_word_end = false;
            }
        }
    }
    sql.len()
}

fn skip_quoted(sql: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < sql.len() {
        if sql[i] == quote {
            if sql.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    sql.len()
}

fn skip_line_comment(sql: &[u8], at: usize) -> usize {
    sql[at..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(sql.len(), |p| at + p + 1)
}

fn skip_block_comment(sql: &[u8], at: usize) -> usize {
    sql[at + 2..]
        .windows(2)
        .position(|w| w == b"*/")
        .map_or(sql.len(), |p| at + 2 + p + 2)
}

/// Skip whitespace and comments from `i`.
fn skip_blank(sql: &[u8], mut i: usize) -> usize {
    loop {
        while i < sql.len() && sql[i].is_ascii_whitespace() {
            i += 1;
        }
        if sql[i..].starts_with(b"--") {
            i = skip_line_comment(sql, i);
        } else if sql[i..].starts_with(b"/*") {
            i = skip_block_comment(sql, i);
        } else {
            return i;
        }
    }
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(sql: &str) -> Vec<String> {
        statements(sql.as_bytes())
            .into_iter()
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn plain_statements() {
        assert_eq!(all("SELECT 1; SELECT 2 ;\n"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(all("  -- c\n /* x; */ SELECT ';' ; ;; "), ["SELECT ';'"]);
        assert_eq!(
            all("SELECT \"a;b\", [c;d], `e;f`"),
            ["SELECT \"a;b\", [c;d], `e;f`"]
        );
        assert_eq!(all("SELECT 'it''s;'; x"), ["SELECT 'it''s;'", "x"]);
    }

    #[test]
    fn trigger_bodies_keep_their_semicolons() {
        let t = "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES(1); DELETE FROM c; END; SELECT 1";
        assert_eq!(
            all(t),
            [
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES(1); DELETE FROM c; END",
                "SELECT 1"
            ]
        );
        // BEGIN as a statement is not a trigger body.
        assert_eq!(all("BEGIN; COMMIT;"), ["BEGIN", "COMMIT"]);
    }

    #[test]
    fn tail_and_blankness() {
        let s = first_statement(b"SELECT 1; -- done\n");
        assert_eq!(s.statement, b"SELECT 1");
        assert_eq!(s.tail, b" -- done\n");
        assert!(is_blank(s.tail));
        assert!(is_blank(b" ; /* */ ;"));
        assert!(!is_blank(b"; x"));
        let s = first_statement(b"SELECT 2");
        assert_eq!((s.statement, s.tail), (&b"SELECT 2"[..], &b""[..]));
    }

    #[test]
    fn parameters_are_replaced_outside_quotes() {
        let mut n = 0;
        let out = replace_parameters(b"SELECT ?, ':x', :x, ?2 -- ?\n, @y, $z", |p| {
            n += 1;
            format!("<{p}>")
        });
        assert_eq!(out, "SELECT <?>, ':x', <:x>, <?2> -- ?\n, <@y>, <$z>");
        assert_eq!(n, 5);
    }

    #[test]
    fn unterminated_things_end_at_the_end() {
        assert_eq!(all("SELECT 'open"), ["SELECT 'open"]);
        assert_eq!(all("SELECT 1 /* open"), ["SELECT 1 /* open"]);
    }
}
