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
//! - What has no meaning on PostgreSQL (most `PRAGMA`s) comes back as
//!   [`Action::Constant`] rows, possibly none.
//! - SQLite's maintenance calls (`VACUUM`, `ANALYZE`, `PRAGMA
//!   integrity_check`/`quick_check`/`optimize`) come back as
//!   [`Action::Maintenance`]: the runtime maps each to PostgreSQL's own
//!   (`crate::maintenance`), never a silent pretend.
//! - What cannot be translated is an [`Error`] naming the construct; the
//!   runtime turns it into `SQLITE_ERROR`. A silent wrong answer is a bug.
//! - The translator may consult PostgreSQL's catalog through [`Catalog`]
//!   (for example for a table's unique constraints).
//! - [`bootstrap_sql`] is run once per schema before anything else (helper
//!   functions the translated SQL relies on); [`DECLTYPE_QUERY`] tells the
//!   runtime a column's declared SQLite type.

mod affinity;
mod bootstrap;
mod catalog;
mod collation;
mod construct;
mod ddl;
mod dialect;
mod dml;
mod expr;
mod fts;
mod functions;
mod grouping;
mod implicit_order;
mod kinds;
mod literals;
mod names;
mod params;
mod pragma;
mod query;
mod result_names;
#[cfg(test)]
mod roundtrip;
mod schema_table;
mod schema_text;
mod scope;
#[cfg(test)]
mod testing;
mod transaction;
mod trigger;
mod truth;
mod virtual_table;

use sqlparser::ast::Statement;

use crate::value::Value;
use catalog::Schema;
use dialect::Source;
use params::Parameters;

pub use bootstrap::{bootstrap_sql, BOOTSTRAP_VERSION, DECLTYPE_QUERY};

/// The SQLite version whose behaviour the translation follows (what
/// `sqlite_version()` answers).
pub const SQLITE_VERSION: &str = "3.40.1";

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
    /// SQLite's name of each result column where it is not PostgreSQL's
    /// (`count(*)`, not `count`), by position; `None` (or past the end):
    /// PostgreSQL's name.
    pub column_names: Vec<Option<String>>,
    /// The same for the result columns after the last `*`, by position
    /// from the last column (the last name is the last column's).
    pub trailing_column_names: Vec<Option<String>>,
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
    Constant {
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    },
    /// A maintenance call, run by the runtime (`crate::maintenance`).
    Maintenance(Maintenance),
}

/// SQLite's maintenance calls, as PostgreSQL does them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Maintenance {
    /// `VACUUM [main]`: `VACUUM (ANALYZE)` of the schema's tables.
    Vacuum,
    /// `ANALYZE [main | [main.]name]`: `ANALYZE` of the schema's tables, or
    /// of the table named (or the index's table).
    Analyze(Option<String>),
    /// `PRAGMA integrity_check|quick_check [(N | table)]`: amcheck's
    /// `bt_index_check` on the schema's indexes where it is installed (the
    /// full check also verifies every table row is in its indexes).
    IntegrityCheck {
        quick: bool,
        /// At most this many problems are listed (SQLite's N, default 100).
        limit: i64,
        /// Only this table's indexes.
        table: Option<String>,
    },
    /// `PRAGMA optimize`: `ANALYZE` of the tables whose statistics are stale.
    Optimize,
}

impl Maintenance {
    /// The result column's name (`integrity_check` …), if it has rows.
    pub fn column(&self) -> Option<&'static str> {
        match self {
            Maintenance::IntegrityCheck { quick: true, .. } => Some("quick_check"),
            Maintenance::IntegrityCheck { quick: false, .. } => Some("integrity_check"),
            _ => None,
        }
    }
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

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// [`translate`] with room on the stack for SQLite's deepest expressions,
/// on any thread (Plex's have 544 KiB): when less than `RED_ZONE` is left,
/// it runs on a new stack of `STACK` bytes (mapped, touched only as used).
pub fn translate_with_room(sql: &str, catalog: &mut dyn Catalog) -> Result<Translation, Error> {
    const RED_ZONE: usize = 512 * 1024;
    const STACK: usize = 16 * 1024 * 1024;
    stacker::maybe_grow(RED_ZONE, STACK, || translate(sql, catalog))
}

/// Translate one SQLite statement (without its trailing `;`).
pub fn translate(sql: &str, catalog: &mut dyn Catalog) -> Result<Translation, Error> {
    let (plan, params) = plan(sql, catalog)?;
    Ok(plan.finish(params))
}

/// The translation of one statement before it is printed, and SQLite's
/// parameter names.
fn plan(sql: &str, catalog: &mut dyn Catalog) -> Result<(Plan, Vec<Option<String>>), Error> {
    let source = Source::new(sql)?;
    let mut schema = Schema::new(catalog);
    let first = source.first_word();
    if first.is_empty() {
        return Ok((Plan::no_op(), vec![]));
    }
    if first == "PRAGMA" {
        return Ok((pragma::translate(&source, &mut schema)?, vec![]));
    }
    if first == "REINDEX" {
        return Ok((reindex(&source, &mut schema)?, vec![]));
    }
    if first == "VACUUM" || first == "ANALYZE" {
        return Ok((maintenance(&source, &first)?, vec![]));
    }
    if first == "CREATE" && virtual_table::is_create_virtual(&source) {
        return Ok((virtual_table::create(&source, &mut schema)?, vec![]));
    }
    let params = Parameters::from_source(&source)?;
    let mut statement = source.parse()?;
    if matches!(statement, Statement::CreateTrigger(_)) && !params.names.is_empty() {
        return Err(Error::new("parameters are not allowed in a trigger"));
    }
    params.canonicalize(&mut statement)?;
    names::normalize(&mut statement);
    let mut cx = Context {
        source: &source,
        schema,
        trigger_scope: None,
    };
    let plan = translate_statement(statement, &mut cx)?;
    Ok((plan, params.names))
}

/// A statement's tokens after its first keyword, without semicolons: what
/// the statements read token by token (`VACUUM`, `ANALYZE`, `REINDEX`)
/// take apart.
fn after_keyword<'s>(source: &'s Source<'_>) -> Vec<&'s sqlparser::tokenizer::Token> {
    use sqlparser::tokenizer::Token;
    source
        .tokens
        .iter()
        .map(|x| &x.token)
        .filter(|t| **t != Token::SemiColon)
        .skip(1)
        .collect()
}

/// `VACUUM [schema] [INTO file]` and `ANALYZE [schema | [schema.]name]`.
fn maintenance(source: &Source, first: &str) -> Result<Plan, Error> {
    use sqlparser::tokenizer::Token;
    let t = after_keyword(source);
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.value.clone()),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(s.clone()),
        _ => None,
    };
    let is_main = |name: &str| {
        if name.eq_ignore_ascii_case("main") {
            Ok(())
        } else {
            Err(Error::new(format!("unknown database {name}")))
        }
    };
    if first == "VACUUM" {
        let rest = match t.as_slice() {
            [Token::Word(w), rest @ ..] if !w.value.eq_ignore_ascii_case("into") => {
                is_main(&w.value)?;
                rest
            }
            rest => rest,
        };
        return match rest {
            [] => Ok(Plan::maintenance(Maintenance::Vacuum, false)),
            [Token::Word(w), ..] if w.value.eq_ignore_ascii_case("into") => Err(Error::new(
                "VACUUM INTO is not supported on a database in PostgreSQL: for a SQLite copy use the backup API (sqlite3_backup_*, the sqlite3 shell's .backup) or plex-pg-launcher export",
            )),
            _ => Err(Error::new("syntax error in VACUUM")),
        };
    }
    let target = match t.as_slice() {
        [] => None,
        [one] => {
            let name = word(one).ok_or_else(|| Error::new("syntax error in ANALYZE"))?;
            (!name.eq_ignore_ascii_case("main")).then_some(name)
        }
        [schema, Token::Period, name] => {
            is_main(&word(schema).unwrap_or_default())?;
            Some(word(name).ok_or_else(|| Error::new("syntax error in ANALYZE"))?)
        }
        _ => return Err(Error::new("syntax error in ANALYZE")),
    };
    Ok(Plan::maintenance(Maintenance::Analyze(target), false))
}

/// `REINDEX [collation | [schema.]table | [schema.]index]`: a no-op
/// (PostgreSQL's indexes need no rebuilding after a collation change the
/// shim could make), but a name that is none of these is SQLite's error.
fn reindex(source: &Source, schema: &mut Schema) -> Result<Plan, Error> {
    use sqlparser::tokenizer::Token;
    let t = after_keyword(source);
    let word = |t: &Token| match t {
        Token::Word(w) => Some(names::normalized(&w.value)),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(names::normalized(s)),
        _ => None,
    };
    let (name, qualified) = match t.as_slice() {
        [] => return Ok(Plan::no_op()),
        [one] => (word(one), false),
        [db, Token::Period, one] => {
            let db = word(db).unwrap_or_default();
            if db != "main" {
                return Err(Error::new(format!("unknown database {db}")));
            }
            (word(one), true)
        }
        _ => (None, false),
    };
    let name = name.ok_or_else(|| Error::new("syntax error in REINDEX"))?;
    let known = (!qualified && (name == "rtrim" || collation::postgres_collation(&name).is_ok()))
        || schema.table(&name)?.is_some()
        || schema.has_index(&names::pg_name(&name))?;
    if known {
        Ok(Plan::no_op())
    } else {
        Err(Error::new("unable to identify the object to be reindexed"))
    }
}

/// What a statement's translation needs besides the statement.
pub(crate) struct Context<'s, 'a, 'c> {
    pub source: &'s Source<'a>,
    pub schema: Schema<'c>,
    /// Inside a trigger body: the `new` and `old` rows.
    pub trigger_scope: Option<Vec<scope::ScopeTable>>,
}

fn translate_statement(statement: Statement, cx: &mut Context) -> Result<Plan, Error> {
    match statement {
        Statement::Query(_) => query::translate(statement, cx),
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
            dml::translate(statement, cx)
        }
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => transaction::translate(&statement),
        Statement::CreateTrigger(_) | Statement::DropTrigger(_) => {
            trigger::translate(statement, cx)
        }
        Statement::Vacuum(_) => Ok(Plan::maintenance(Maintenance::Vacuum, false)),
        Statement::Analyze(_) => Ok(Plan::maintenance(Maintenance::Analyze(None), false)),
        Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::AlterTable(_)
        | Statement::Drop { .. }
        | Statement::CreateView(_) => ddl::translate(statement, cx),
        other => Err(Error::new(format!(
            "statement not supported: {}",
            first_words(&other.to_string())
        ))),
    }
}

/// The first words of a statement, to name it in an error.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// One PostgreSQL statement of a plan, before its parameters are numbered.
pub(crate) struct Output {
    pub sql: Sql,
    pub yields_rows: bool,
    pub counts_changes: bool,
    pub rowid_column: bool,
}

/// A statement as a syntax tree (parameters to number) or as finished text.
// Built once per translation and moved a few times: boxing the tree would
// add an allocation per statement for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sql {
    Tree(Statement),
    Text(String),
}

impl Output {
    /// A statement run for its effect only.
    pub fn effect(sql: Sql) -> Output {
        Output {
            sql,
            yields_rows: false,
            counts_changes: false,
            rowid_column: false,
        }
    }
    /// A statement whose rows are the result.
    pub fn rows(sql: Sql) -> Output {
        Output {
            sql,
            yields_rows: true,
            counts_changes: false,
            rowid_column: false,
        }
    }
    /// Finished text run for its effect only.
    pub fn text(sql: impl Into<String>) -> Output {
        Output::effect(Sql::Text(sql.into()))
    }
}

/// A translation before parameters are numbered.
pub(crate) struct Plan {
    pub action: PlanAction,
    pub readonly: bool,
    pub changes_schema: bool,
    /// See [`Translation::column_names`].
    pub column_names: Vec<Option<String>>,
    /// See [`Translation::trailing_column_names`].
    pub trailing_column_names: Vec<Option<String>>,
}

pub(crate) enum PlanAction {
    Run(Vec<Output>),
    Transaction(TxControl),
    Constant {
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    },
    Maintenance(Maintenance),
}

impl Plan {
    /// A maintenance call the runtime runs.
    pub fn maintenance(m: Maintenance, readonly: bool) -> Plan {
        Plan {
            action: PlanAction::Maintenance(m),
            readonly,
            changes_schema: false,
            column_names: vec![],
            trailing_column_names: vec![],
        }
    }
    /// Nothing to do (a setting with no meaning on PostgreSQL).
    pub fn no_op() -> Plan {
        Plan::constant(vec![], vec![])
    }
    /// Rows answered without PostgreSQL.
    pub fn constant(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Plan {
        Plan {
            action: PlanAction::Constant { columns, rows },
            readonly: true,
            changes_schema: false,
            column_names: vec![],
            trailing_column_names: vec![],
        }
    }
    /// Statements that read.
    pub fn read(outputs: Vec<Output>) -> Plan {
        Plan {
            action: PlanAction::Run(outputs),
            readonly: true,
            changes_schema: false,
            column_names: vec![],
            trailing_column_names: vec![],
        }
    }
    /// Statements that write data.
    pub fn write(outputs: Vec<Output>) -> Plan {
        Plan {
            action: PlanAction::Run(outputs),
            readonly: false,
            changes_schema: false,
            column_names: vec![],
            trailing_column_names: vec![],
        }
    }
    /// Statements that change the schema.
    pub fn schema_change(outputs: Vec<Output>) -> Plan {
        Plan {
            action: PlanAction::Run(outputs),
            readonly: false,
            changes_schema: true,
            column_names: vec![],
            trailing_column_names: vec![],
        }
    }

    fn finish(self, params: Vec<Option<String>>) -> Translation {
        let action = match self.action {
            PlanAction::Run(outputs) => Action::Run(outputs.into_iter().map(render).collect()),
            PlanAction::Transaction(t) => Action::Transaction(t),
            PlanAction::Constant { columns, rows } => Action::Constant { columns, rows },
            PlanAction::Maintenance(m) => Action::Maintenance(m),
        };
        Translation {
            action,
            params,
            readonly: self.readonly,
            changes_schema: self.changes_schema,
            column_names: self.column_names,
            trailing_column_names: self.trailing_column_names,
        }
    }
}

fn render(output: Output) -> PgStatement {
    let (sql, args) = match output.sql {
        Sql::Tree(mut statement) => {
            let args = params::to_postgres(&mut statement);
            (statement.to_string(), args)
        }
        Sql::Text(text) => (text, vec![]),
    };
    PgStatement {
        sql,
        args,
        yields_rows: output.yields_rows,
        counts_changes: output.counts_changes,
        rowid_column: output.rowid_column,
    }
}
