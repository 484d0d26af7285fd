//! `PRAGMA`: read from the token stream (sqlparser's `PRAGMA` takes no
//! bare-word values such as `WAL`).
//!
//! - Schema questions (`table_info`, `table_xinfo`, `index_list`,
//!   `index_info`, `index_xinfo`) run on PostgreSQL's catalog through the
//!   `sqlite_*` functions `bootstrap` defines.
//! - `user_version` and `application_id` persist in the schema's
//!   `sqlite__pragma` table.
//! - Settings with no meaning on PostgreSQL (`journal_mode`, `synchronous`,
//!   `cache_size`, …) are answered without PostgreSQL: setting one returns
//!   what SQLite returns (a row for `journal_mode`, `locking_mode`,
//!   `busy_timeout` …, none for most), reading one returns a fixed value
//!   (listed in `SETTINGS`). `foreign_keys` reads 0: keys are not enforced.
//! - An unknown pragma does nothing, as in SQLite.

use sqlparser::tokenizer::Token;

use super::catalog::Schema;
use super::construct::quote_literal;
use super::dialect::Source;
use super::names::normalized;
use super::{Error, Maintenance, Output, Plan, Sql};
use crate::value::Value;

/// A parsed `PRAGMA [schema.]name [= value | (value)]`.
#[derive(Debug, PartialEq)]
struct Pragma {
    name: String,
    value: Option<String>,
}

fn parse(source: &Source) -> Result<Pragma, Error> {
    let t: Vec<&Token> = source
        .tokens
        .iter()
        .map(|x| &x.token)
        .filter(|t| **t != Token::SemiColon)
        .collect();
    let word = |i: usize| match t.get(i) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let mut i = 1;
    if matches!(t.get(2), Some(Token::Period)) {
        let schema = word(1).unwrap_or_default().to_ascii_lowercase();
        if schema != "main" {
            return Err(Error::new(format!("unknown database {schema}")));
        }
        i = 3;
    }
    let name = word(i)
        .ok_or_else(|| Error::new("PRAGMA needs a name"))?
        .to_ascii_lowercase();
    let rest = &t[i + 1..];
    let value_tokens: &[&Token] = match rest {
        [] => return Ok(Pragma { name, value: None }),
        [Token::Eq, v @ ..] => v,
        [Token::LParen, v @ .., Token::RParen] => v,
        _ => return Err(Error::new(format!("syntax error in PRAGMA {name}"))),
    };
    let value = match value_tokens {
        [Token::Minus, Token::Number(n, _)] => format!("-{n}"),
        [Token::Plus, Token::Number(n, _)] | [Token::Number(n, _)] => n.clone(),
        [Token::Word(w)] => w.value.clone(),
        [Token::SingleQuotedString(s)] => s.clone(),
        _ => return Err(Error::new(format!("syntax error in PRAGMA {name}"))),
    };
    Ok(Pragma {
        name,
        value: Some(value),
    })
}

/// Settings answered without PostgreSQL: name, the value read back, and
/// whether setting it returns the new value as a row (as SQLite does).
const SETTINGS: &[(&str, Setting, bool)] = &[
    ("journal_mode", Setting::Text("wal"), true),
    ("locking_mode", Setting::Text("normal"), true),
    ("synchronous", Setting::Int(1), false),
    ("cache_size", Setting::Int(-2000), false),
    ("temp_store", Setting::Int(0), false),
    ("mmap_size", Setting::Int(0), true),
    ("page_size", Setting::Int(4096), false),
    ("auto_vacuum", Setting::Int(0), false),
    ("secure_delete", Setting::Int(0), false),
    ("recursive_triggers", Setting::Int(0), false),
    ("automatic_index", Setting::Int(1), false),
    ("cache_spill", Setting::Int(1), false),
    ("wal_autocheckpoint", Setting::Int(1000), true),
    ("busy_timeout", Setting::Int(0), true),
    ("threads", Setting::Int(0), true),
    ("query_only", Setting::Int(0), false),
    ("writable_schema", Setting::Int(0), false),
    ("count_changes", Setting::Int(0), false),
    ("legacy_alter_table", Setting::Int(0), false),
    ("defer_foreign_keys", Setting::Int(0), false),
    ("ignore_check_constraints", Setting::Int(0), false),
    ("reverse_unordered_selects", Setting::Int(0), false),
    ("trusted_schema", Setting::Int(1), false),
    ("cell_size_check", Setting::Int(0), false),
    ("analysis_limit", Setting::Int(0), true),
    ("soft_heap_limit", Setting::Int(0), true),
    ("hard_heap_limit", Setting::Int(0), true),
    ("journal_size_limit", Setting::Int(-1), true),
    ("read_uncommitted", Setting::Int(0), false),
    ("fullfsync", Setting::Int(0), false),
    ("checkpoint_fullfsync", Setting::Int(0), false),
    ("foreign_keys", Setting::Int(0), false),
    ("encoding", Setting::Text("UTF-8"), false),
    ("freelist_count", Setting::Int(0), false),
    ("data_version", Setting::Int(1), false),
    ("case_sensitive_like", Setting::Int(0), false),
];

#[derive(Clone, Copy)]
enum Setting {
    Int(i64),
    Text(&'static str),
}

const JOURNAL_MODES: &[&str] = &["delete", "truncate", "persist", "memory", "wal", "off"];

/// Translate a `PRAGMA`.
pub fn translate(source: &Source, _schema: &mut Schema) -> Result<Plan, Error> {
    let p = parse(source)?;
    let arg = || {
        p.value
            .clone()
            .map(|v| normalized(&v))
            .ok_or_else(|| Error::new(format!("PRAGMA {} needs an argument", p.name)))
    };
    match p.name.as_str() {
        "table_info" | "table_xinfo" => Ok(catalog_rows("sqlite_table_info", &arg()?)),
        "index_list" => Ok(catalog_rows("sqlite_index_list", &arg()?)),
        "index_info" | "index_xinfo" => Ok(catalog_rows("sqlite_index_info", &arg()?)),
        "user_version" | "application_id" => stored_integer(&p),
        "database_list" => Ok(Plan::constant(
            names(&["seq", "name", "file"]),
            vec![vec![
                Value::Integer(0),
                Value::Text("main".into()),
                Value::Text(String::new()),
            ]],
        )),
        "integrity_check" | "quick_check" => {
            let (limit, table) = match p.value.as_deref() {
                None => (100, None),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) => (if n <= 0 { 100 } else { n }, None),
                    Err(_) => (100, Some(v.to_string())),
                },
            };
            Ok(Plan::maintenance(
                Maintenance::IntegrityCheck {
                    quick: p.name == "quick_check",
                    limit,
                    table,
                },
                true,
            ))
        }
        "foreign_key_check" => Ok(Plan::constant(
            names(&["table", "rowid", "parent", "fkid"]),
            vec![],
        )),
        "foreign_key_list" => Ok(Plan::constant(
            names(&[
                "id",
                "seq",
                "table",
                "from",
                "to",
                "on_update",
                "on_delete",
                "match",
            ]),
            vec![],
        )),
        "collation_list" => Ok(Plan::constant(
            names(&["seq", "name"]),
            ["naturalsort", "icu_root", "RTRIM", "NOCASE", "BINARY"]
                .iter()
                .enumerate()
                .map(|(i, n)| vec![Value::Integer(i as i64), Value::Text((*n).into())])
                .collect(),
        )),
        "compile_options" => Ok(Plan::constant(
            names(&["compile_options"]),
            ["ENABLE_FTS3", "ENABLE_FTS4", "ENABLE_JSON1", "ENABLE_RTREE"]
                .iter()
                .map(|o| vec![Value::Text((*o).into())])
                .collect(),
        )),
        "wal_checkpoint" => Ok(Plan::constant(
            names(&["busy", "log", "checkpointed"]),
            vec![vec![
                Value::Integer(0),
                Value::Integer(0),
                Value::Integer(0),
            ]],
        )),
        "page_count" => Ok(Plan::read(vec![Output::rows(Sql::Text(
            "SELECT (pg_database_size(current_database()) / 4096)::bigint AS page_count".into(),
        ))])),
        "case_sensitive_like" if p.value.as_deref().is_some_and(is_true) => Err(Error::new(
            "PRAGMA case_sensitive_like = ON is not supported",
        )),
        "optimize" => Ok(Plan::maintenance(Maintenance::Optimize, false)),
        "shrink_memory" | "incremental_vacuum" => Ok(Plan::no_op()),
        name => Ok(setting(name, p.value.as_deref())?.unwrap_or_else(Plan::no_op)),
    }
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "true" | "yes")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Rows of a catalog function: `SELECT * FROM f('arg')`.
fn catalog_rows(function: &str, arg: &str) -> Plan {
    Plan::read(vec![Output::rows(Sql::Text(format!(
        "SELECT * FROM {function}({})",
        quote_literal(arg)
    )))])
}

/// `user_version` / `application_id`: read or written in `sqlite__pragma`.
fn stored_integer(p: &Pragma) -> Result<Plan, Error> {
    let key = quote_literal(&p.name);
    match &p.value {
        None => Ok(Plan::read(vec![Output::rows(Sql::Text(format!(
            "SELECT coalesce((SELECT value FROM sqlite__pragma WHERE name = {key}), 0) AS {}",
            p.name
        )))])),
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| Error::new(format!("PRAGMA {} needs an integer", p.name)))?;
            let n = if p.name == "user_version" || p.name == "application_id" {
                n as i32 as i64
            } else {
                n
            };
            Ok(Plan::write(vec![Output::text(format!(
                "INSERT INTO sqlite__pragma (name, value) VALUES ({key}, {n}) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            ))]))
        }
    }
}

/// A setting with no meaning on PostgreSQL.
fn setting(name: &str, value: Option<&str>) -> Result<Option<Plan>, Error> {
    let Some((_, read, set_returns_row)) = SETTINGS.iter().find(|(n, _, _)| *n == name) else {
        return Ok(None);
    };
    // SQLite names the column of PRAGMA busy_timeout `timeout`.
    let column = vec![if name == "busy_timeout" {
        "timeout"
    } else {
        name
    }
    .to_string()];
    let row = |v: Value| Plan::constant(column.clone(), vec![vec![v]]);
    Ok(Some(match value {
        None => row(match read {
            Setting::Int(i) => Value::Integer(*i),
            Setting::Text(t) => Value::Text((*t).into()),
        }),
        Some(v) if name == "journal_mode" => {
            let mode = v.to_ascii_lowercase();
            let answer = if JOURNAL_MODES.contains(&mode.as_str()) {
                mode
            } else {
                "wal".to_string()
            };
            row(Value::Text(answer))
        }
        Some(v) if name == "locking_mode" => {
            let mode = v.to_ascii_lowercase();
            row(Value::Text(if mode == "exclusive" {
                mode
            } else {
                "normal".into()
            }))
        }
        Some(v) if *set_returns_row => row(match v.parse::<i64>() {
            Ok(n) => Value::Integer(n),
            Err(_) => Value::Text(v.to_string()),
        }),
        Some(_) => Plan::no_op(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(sql: &str) -> Pragma {
        parse(&Source::new(sql).unwrap()).unwrap()
    }

    #[test]
    fn pragma_forms_parse() {
        assert_eq!(
            pragma("PRAGMA journal_mode = WAL"),
            Pragma {
                name: "journal_mode".into(),
                value: Some("\"wal\"".replace('"', ""))
            }
        );
        assert_eq!(
            pragma("PRAGMA main.cache_size=-2000"),
            Pragma {
                name: "cache_size".into(),
                value: Some("-2000".into())
            }
        );
        assert_eq!(
            pragma("PRAGMA table_info('tags')"),
            Pragma {
                name: "table_info".into(),
                value: Some("tags".into())
            }
        );
        assert_eq!(
            pragma("pragma user_version"),
            Pragma {
                name: "user_version".into(),
                value: None
            }
        );
    }
}
