//! PostgreSQL's side: the connection, the translator's catalog over it, and
//! running a SQLite statement through the shim's translator.

use std::io::BufRead;
use std::time::Duration;

use plex_pg_config::Settings;
use plex_pg_shim::translate::{self, Action, Catalog};
use postgres::{SimpleQueryMessage, Transaction};

use crate::sqlite::ValueRef;
use crate::value::{self, Kind, Value};

/// Connect as the shim would (`postgres.*` settings, TLS included).
pub fn connect(settings: &Settings) -> Result<postgres::Client, String> {
    plex_pg_tls::client::connect(
        &settings.postgres,
        "plex-pg-import",
        Duration::from_secs(30),
    )
}

pub use plex_pg_tls::client::chain;

/// Every row of `COPY (<select>) TO STDOUT` (text format, 64 KiB read at a
/// time: no table is held in memory), each line decoded column by column
/// in `kinds` ([`value::decode`]) and handed to `each`, which returns false
/// to stop. Errors name `what` (the table, as the caller says it).
pub fn copy_rows<E>(
    tx: &mut Transaction<'_>,
    select: &str,
    kinds: &[Kind],
    what: &str,
    fail: impl Fn(String) -> E,
    mut each: impl FnMut(Vec<Value>) -> Result<bool, E>,
) -> Result<(), E> {
    let reader = tx
        .copy_out(&format!("COPY ({select}) TO STDOUT"))
        .map_err(|e| fail(format!("reading {what}: {}", chain(&e))))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| fail(format!("reading {what}: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let mut row = Vec::with_capacity(kinds.len());
        for (field, kind) in line.split(|&b| b == b'\t').zip(kinds) {
            row.push(value::decode(*kind, field).map_err(|e| fail(format!("{what}: {e}")))?);
        }
        if !each(row)? {
            return Ok(());
        }
    }
}

/// Every row of `COPY (<select>) TO STDOUT (FORMAT binary)` (256 KiB read
/// at a time), each field decoded in `kinds` ([`value::decode_binary`],
/// borrowed from one reused row buffer: no allocation per value) and
/// handed to `each` as the values of one row. Every kind but `Numeric`.
pub fn copy_binary_rows<E>(
    tx: &mut Transaction<'_>,
    select: &str,
    kinds: &[Kind],
    what: &str,
    fail: impl Fn(String) -> E,
    mut each: impl FnMut(&[ValueRef<'_>]) -> Result<(), E>,
) -> Result<(), E> {
    use std::io::Read;
    let reader = tx
        .copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
        .map_err(|e| fail(format!("reading {what}: {}", chain(&e))))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 18, reader);
    let io = |e: std::io::Error| format!("reading {what}: {e}");
    let mut header = [0u8; 19];
    reader.read_exact(&mut header).map_err(|e| fail(io(e)))?;
    if header[..11] != value::BINARY_HEADER[..11] {
        return Err(fail(format!("reading {what}: not a binary COPY stream")));
    }
    let extension = u32::from_be_bytes([header[15], header[16], header[17], header[18]]);
    std::io::copy(
        &mut (&mut reader).take(extension as u64),
        &mut std::io::sink(),
    )
    .map_err(|e| fail(io(e)))?;
    let mut data: Vec<u8> = Vec::with_capacity(1 << 12);
    let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(kinds.len());
    let mut values: Vec<ValueRef<'static>> = Vec::with_capacity(kinds.len());
    loop {
        let mut n = [0u8; 2];
        reader.read_exact(&mut n).map_err(|e| fail(io(e)))?;
        let n = i16::from_be_bytes(n);
        if n == -1 {
            return Ok(());
        }
        if n as usize != kinds.len() {
            return Err(fail(format!(
                "reading {what}: {n} fields in a row, {} expected",
                kinds.len()
            )));
        }
        data.clear();
        spans.clear();
        for _ in 0..n {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).map_err(|e| fail(io(e)))?;
            let len = i32::from_be_bytes(len);
            if len < 0 {
                spans.push(None);
                continue;
            }
            let start = data.len();
            data.resize(start + len as usize, 0);
            reader
                .read_exact(&mut data[start..])
                .map_err(|e| fail(io(e)))?;
            spans.push(Some((start, start + len as usize)));
        }
        // The values borrow `data` for this row only; the vector is
        // emptied before `data` changes.
        let mut row: Vec<ValueRef<'_>> = std::mem::take(&mut values)
            .into_iter()
            .map(|_| ValueRef::Null)
            .collect();
        row.clear();
        for (span, kind) in spans.iter().zip(kinds) {
            let field = span.map(|(a, b)| &data[a..b]);
            row.push(value::decode_binary(*kind, field).map_err(|e| fail(format!("{what}: {e}")))?);
        }
        each(&row)?;
        row.clear();
        values = row.into_iter().map(|_| ValueRef::Null).collect();
    }
}

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A quoted identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Rows of a simple query, every value as text.
pub fn rows(tx: &mut Transaction<'_>, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = tx
        .simple_query(sql)
        .map_err(|e| format!("{} (in: {sql})", chain(&e)))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The first value of the first row.
pub fn scalar(tx: &mut Transaction<'_>, sql: &str) -> Result<Option<String>, String> {
    Ok(rows(tx, sql)?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten()))
}

/// The translator's view of the catalog: the staging schema, through the
/// import's transaction (parameters inlined as literals, which PostgreSQL
/// types as the shim's text parameters are typed).
struct TxCatalog<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    schema: String,
}

impl Catalog for TxCatalog<'_, '_> {
    fn schema(&self) -> &str {
        &self.schema
    }
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut text = sql.to_string();
        for (i, p) in params.iter().enumerate().rev() {
            text = text.replace(&format!("${}", i + 1), &literal(p));
        }
        rows(self.tx, &text)
    }
}

/// Translate one SQLite statement with the shim's translator and run what
/// it gives in the transaction (search_path is the schema being built).
pub fn run_sqlite(tx: &mut Transaction<'_>, schema: &str, sql: &str) -> Result<(), String> {
    let translation = {
        let mut catalog = TxCatalog {
            tx,
            schema: schema.to_string(),
        };
        translate::translate(sql, &mut catalog).map_err(|e| e.message)?
    };
    match translation.action {
        Action::Run(statements) => {
            for s in statements {
                if !s.args.is_empty() {
                    return Err(format!("the translation needs parameters: {}", s.sql));
                }
                tx.batch_execute(&s.sql)
                    .map_err(|e| format!("{} (running: {})", chain(&e), s.sql))?;
            }
            Ok(())
        }
        Action::Constant { .. } => Ok(()),
        Action::Transaction(_) => Err("transaction control in a schema statement".into()),
        Action::Maintenance(_) => Ok(()),
    }
}

/// What the shim runs once per schema before anything else, and the
/// comment that tells it the schema is ready (as `runtime::bootstrap`).
pub fn bootstrap(tx: &mut Transaction<'_>, schema: &str) -> Result<(), String> {
    for sql in translate::bootstrap_sql(schema) {
        tx.batch_execute(&sql)
            .map_err(|e| format!("preparing schema {schema}: {}", chain(&e)))?;
    }
    let marker = format!("plex-pg bootstrap {}", translate::BOOTSTRAP_VERSION);
    tx.batch_execute(&format!(
        "COMMENT ON SCHEMA {} IS {}",
        ident(schema),
        literal(&marker)
    ))
    .map_err(|e| chain(&e))
}
