//! SQL translation: one SQLite statement in, what PostgreSQL must run out.
//!
//! This module is the only place that knows SQLite's dialect. The runtime
//! (`statement`, `connection`) calls [`translate`] once per distinct statement
//! text (it caches the result), runs what comes back, and knows nothing of
//! the rewrite itself. The contract:
//!
//! - [`Translation::params`] lists SQLite's parameters in index order, so
//!   `sqlite3_bind_parameter_count/_name/_index` answer from it; each
//!   [`PgStatement::args`] says which SQLite parameter feeds each `$n`.
//! - Transaction control is not run as SQL: it comes back as
//!   [`Action::Transaction`], because the runtime pins a connection for a
//!   transaction's length.
//! - What has no meaning on PostgreSQL (most `PRAGMA`s, `VACUUM`) comes back
//!   as [`Action::Constant`] rows, possibly none.
//! - What cannot be translated is an [`Error`] naming the construct; the
//!   runtime turns it into `SQLITE_ERROR`. A silent wrong answer is a bug.
//! - The translator may consult PostgreSQL's catalog through [`Catalog`]
//!   (for example for a table's unique constraints).
//! - [`bootstrap_sql`] is run once per schema before anything else (helper
//!   functions the translated SQL relies on); [`DECLTYPE_QUERY`] tells the
//!   runtime a column's declared SQLite type.

use crate::value::Value;

/// The result of translating one SQLite statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Translation {
    pub action: Action,
    /// SQLite's parameters by index (index `i` is `params[i - 1]`): the name
    /// `sqlite3_bind_parameter_name` returns (`":name"`, `"?3"`, `"@x"`,
    /// `"$x"`), or `None` for a plain `?`.
    pub params: Vec<Option<String>>,
    /// `sqlite3_stmt_readonly`: the statement does not write.
    pub readonly: bool,
    /// The statement changes the schema: after it runs, the runtime drops
    /// every cache that depends on it (translations, declared types,
    /// prepared statements).
    pub changes_schema: bool,
}

/// What the runtime does for a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Run these on PostgreSQL, in order, on one connection. Only the last
    /// may yield rows.
    Run(Vec<PgStatement>),
    /// Transaction control, handled by the runtime.
    Transaction(TxControl),
    /// Answered without PostgreSQL: these column names and rows (a no-op
    /// has neither).
    Constant { columns: Vec<String>, rows: Vec<Vec<Value>> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxControl {
    /// `BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION]`.
    Begin,
    /// `COMMIT`, `END`.
    Commit,
    /// `ROLLBACK` (of the whole transaction).
    Rollback,
    /// `SAVEPOINT name`: outside a transaction it also begins one.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`: releasing the outermost one commits.
    Release(String),
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo(String),
}

/// One PostgreSQL statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStatement {
    /// PostgreSQL text, parameters as `$1 … $n`.
    pub sql: String,
    /// For each `$k` (k = 1..n), the 0-based index of the SQLite parameter
    /// that feeds it.
    pub args: Vec<usize>,
    /// The rows it returns are the SQLite statement's result rows.
    pub yields_rows: bool,
    /// Its row count is what `sqlite3_changes()` reports.
    pub counts_changes: bool,
    /// It returns, as its last column, the rowid of each row it inserted:
    /// the runtime sets `last_insert_rowid` from the last one and hides the
    /// column (if `yields_rows`, the other columns are the result).
    pub rowid_column: bool,
}

/// Read-only access to PostgreSQL's catalog while translating.
pub trait Catalog {
    /// The schema routed statements run in.
    fn schema(&self) -> &str;
    /// Run a catalog query with text parameters; rows of text values.
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String>;
}

/// A statement that cannot be translated (`SQLITE_ERROR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Bumped whenever [`bootstrap_sql`] changes, so every schema gets the new
/// helper functions once.
pub const BOOTSTRAP_VERSION: &str = "1";

/// Statements run once per schema (inside a transaction, under an advisory
/// lock, with `search_path` set to the schema) before any translated SQL.
pub fn bootstrap_sql(_schema: &str) -> Vec<String> {
    Vec::new()
}

/// A column's declared SQLite type, for `sqlite3_column_decltype`: `$1` is
/// the table's oid (`oid`), `$2` the column's number (`int2`); zero or one
/// row of one text column.
pub const DECLTYPE_QUERY: &str =
    "SELECT NULL::text WHERE $1::oid IS NULL AND $2::int2 IS NULL";

/// Translate one SQLite statement (without its trailing `;`).
pub fn translate(sql: &str, _catalog: &mut dyn Catalog) -> Result<Translation, Error> {
    let (text, params, args) = placeholders(sql)?;
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    let tx = |c: TxControl| Ok(Translation { action: Action::Transaction(c), params: vec![], readonly: true, changes_schema: false });
    match first {
        "BEGIN" => return tx(TxControl::Begin),
        "COMMIT" | "END" => return tx(TxControl::Commit),
        "ROLLBACK" if words.get(1).map(String::as_str) == Some("TO") => {
            let name = words.last().unwrap().to_string();
            return tx(TxControl::RollbackTo(name));
        }
        "ROLLBACK" => return tx(TxControl::Rollback),
        "SAVEPOINT" => return tx(TxControl::Savepoint(words.get(1).cloned().unwrap_or_default())),
        "RELEASE" => return tx(TxControl::Release(words.last().cloned().unwrap_or_default())),
        "PRAGMA" | "VACUUM" | "ANALYZE" | "REINDEX" => {
            return Ok(Translation {
                action: Action::Constant { columns: vec![], rows: vec![] },
                params,
                readonly: true,
                changes_schema: false,
            })
        }
        _ => {}
    }
    let is_select = matches!(first, "SELECT" | "WITH" | "VALUES");
    let is_insert = matches!(first, "INSERT");
    let ddl = matches!(first, "CREATE" | "DROP" | "ALTER");
    Ok(Translation {
        action: Action::Run(vec![PgStatement {
            sql: text,
            args,
            yields_rows: is_select,
            counts_changes: matches!(first, "INSERT" | "UPDATE" | "DELETE"),
            rowid_column: is_insert && false,
        }]),
        params,
        readonly: is_select,
        changes_schema: ddl,
    })
}

/// Rewrite SQLite placeholders to `$n`: returns the text, SQLite's
/// parameter names by index, and for each `$n` the SQLite index feeding it.
fn placeholders(sql: &str) -> Result<(String, Vec<Option<String>>, Vec<usize>), Error> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut params: Vec<Option<String>> = Vec::new();
    let mut args: Vec<usize> = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            c @ (b'?' | b':' | b'@' | b'$') => {
                let start = i;
                i += 1;
                let name_start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &sql[name_start..i];
                if c != b'?' && name.is_empty() {
                    continue;
                }
                let index = if c == b'?' {
                    if name.is_empty() {
                        params.push(None);
                        params.len() - 1
                    } else {
                        let n: usize = name.parse().map_err(|_| Error { message: format!("bad parameter ?{name}") })?;
                        if n == 0 || n > 32766 {
                            return Err(Error { message: format!("variable number must be between ?1 and ?32766") });
                        }
                        while params.len() < n {
                            params.push(None);
                        }
                        params[n - 1] = Some(format!("?{n}"));
                        n - 1
                    }
                } else {
                    let full = &sql[start..i];
                    match params.iter().position(|p| p.as_deref() == Some(full)) {
                        Some(p) => p,
                        None => {
                            params.push(Some(full.to_string()));
                            params.len() - 1
                        }
                    }
                };
                out.push_str(&sql[copied..start]);
                let k = match args.iter().position(|&a| a == index) {
                    Some(k) => k + 1,
                    None => {
                        args.push(index);
                        args.len()
                    }
                };
                out.push('$');
                out.push_str(&k.to_string());
                copied = i;
                continue;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Ok((out, params, args))
}
