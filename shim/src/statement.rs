//! A routed prepared statement: its plan (translation and result columns),
//! its bound values, and its execution: `sqlite3_step` runs the
//! translation on PostgreSQL and hands back one row at a time.
//!
//! A failing write inside a transaction must leave the transaction
//! usable, as in SQLite: a write `atomicity` proves cannot fail runs at
//! the top level, any other under a savepoint. A statement PostgreSQL runs
//! as several runs atomically (in a transaction of its own when none is
//! open). A transaction's deferred `BEGIN` goes out with its first
//! statement.

use crate::atomicity::FastWrite;
use crate::connection::{convert_row, Active, DbState, RoutedDb, Shape};
use crate::error::{Error, Result};
use crate::pg::types::Param;
use crate::pg::PgConn;
use crate::row::{Cell, RowValue};
use crate::runtime::{Columns, Plan, Runtime};
use crate::sys::*;
use crate::translate::{self, Action, PgStatement};
use crate::value::Value;
use std::collections::VecDeque;
use std::ffi::{c_int, CString};
use std::sync::Arc;

/// Where a statement is in its execution.
enum Exec {
    /// Not started (or reset).
    Idle,
    /// Reading rows of execution `id` (see `DbState::next_row`).
    Rows(u64),
    /// Handing out rows answered without PostgreSQL.
    Constant(VecDeque<Vec<RowValue>>),
    /// Finished; the next step starts over, as SQLite's does.
    Done,
}

pub struct RoutedStmt {
    /// This process's secret (see `registry`); proves the pointer is ours.
    pub secret: u64,
    /// The real statement handed to the client as `sqlite3_stmt*`.
    pub dummy: *mut sqlite3_stmt,
    pub db: Arc<RoutedDb>,
    /// The statement's SQLite text, for `sqlite3_sql`.
    pub sql: CString,
    pub plan: Arc<Plan>,
    pub binds: Vec<Value>,
    pub columns: Arc<Columns>,
    exec: Exec,
    /// The pool generation the execution started in.
    generation: u64,
    pub row: Vec<RowValue>,
    /// The error of the last step, returned again by reset/finalize.
    pub last_error: c_int,
    /// `sqlite3_stmt_status` counters, by op code.
    pub status: [c_int; 8],
    /// Finalized, kept for reuse. Its real statement still exists (and
    /// `sqlite3_next_stmt` can show it): every call on it but finalize is
    /// misuse.
    pub spare: bool,
}

// SAFETY: used by one thread at a time, as SQLite requires of statements;
// the dummy pointer is only passed to the thread-safe real SQLite.
unsafe impl Send for RoutedStmt {}

impl RoutedStmt {
    pub fn new(secret: u64, db: Arc<RoutedDb>, sql: CString, plan: Arc<Plan>) -> RoutedStmt {
        let columns = plan.columns.clone().unwrap_or_default();
        let binds = vec![Value::Null; plan.translation.params.len()];
        RoutedStmt {
            secret,
            dummy: std::ptr::null_mut(),
            db,
            sql,
            plan,
            binds,
            columns,
            exec: Exec::Idle,
            generation: 0,
            row: Vec::new(),
            last_error: SQLITE_OK,
            status: [0; 8],
            spare: false,
        }
    }

    /// Reuse a finalized statement's shell for a new text.
    pub fn renew(&mut self, sql: CString, plan: Arc<Plan>) {
        self.columns = plan.columns.clone().unwrap_or_default();
        self.binds = vec![Value::Null; plan.translation.params.len()];
        self.sql = sql;
        self.plan = plan;
        self.exec = Exec::Idle;
        self.row.clear();
        self.last_error = SQLITE_OK;
        self.status = [0; 8];
        self.spare = false;
    }

    /// `sqlite3_stmt_busy`: stepped at least once and not finished.
    pub fn busy(&self) -> bool {
        matches!(self.exec, Exec::Rows(_) | Exec::Constant(_))
    }

    /// `sqlite3_data_count`: columns of the current row.
    pub fn data_count(&self) -> usize {
        if self.busy() {
            self.row.len()
        } else {
            0
        }
    }

    pub fn value(&self, i: c_int) -> Option<&RowValue> {
        if !self.busy() || i < 0 {
            return None;
        }
        self.row.get(i as usize)
    }

    /// `sqlite3_step`.
    pub fn step(&mut self, rt: &'static Runtime) -> c_int {
        let db = self.db.clone();
        if self.spare {
            return db
                .state
                .lock()
                .fail(&Error::misuse("statement used after sqlite3_finalize"));
        }
        let mut st = db.state.lock();
        if !self.busy() {
            if let Some(e) = st.failed_in_flight.take() {
                // An earlier write of the transaction failed, seen by a
                // call that could not say so: this step says it (a
                // ROLLBACK runs instead: the error no longer matters).
                let rollback = matches!(
                    self.plan.translation.action,
                    Action::Transaction(translate::TxControl::Rollback)
                );
                if !rollback {
                    self.last_error = e.code;
                    return st.fail(&e);
                }
            }
        }
        let result = crate::tally::step(!self.busy(), || self.step_locked(&db, &mut st, rt));
        match result {
            Ok(rc) => {
                st.ok();
                self.last_error = SQLITE_OK;
                rc
            }
            Err(e) => {
                if let Exec::Rows(id) = self.exec {
                    st.abandon(id);
                }
                self.exec = Exec::Idle;
                st.release_if_idle();
                self.last_error = e.code;
                if e.primary() != SQLITE_CONSTRAINT {
                    tracing::debug!(sql = %self.sql.to_string_lossy(), "statement failed: {}", e.message);
                }
                st.fail(&e)
            }
        }
    }

    fn step_locked(
        &mut self,
        db: &RoutedDb,
        st: &mut DbState,
        rt: &'static Runtime,
    ) -> Result<c_int> {
        if matches!(self.exec, Exec::Done) {
            self.exec = Exec::Idle;
        }
        if let Exec::Rows(id) = self.exec {
            if self.generation != rt.pool.generation() {
                return Err(Error::new(
                    SQLITE_ABORT,
                    "this statement's results belong to the parent process (it forked while they were read); reset the statement",
                ));
            }
            return self.fetch(st, id);
        }
        if let Exec::Constant(rows) = &mut self.exec {
            return Ok(match rows.pop_front() {
                Some(row) => {
                    self.row = row;
                    SQLITE_ROW
                }
                None => {
                    self.exec = Exec::Done;
                    SQLITE_DONE
                }
            });
        }
        self.status[SQLITE_STMTSTATUS_RUN as usize] += 1;
        self.generation = rt.pool.generation();
        let plan = self.plan.clone();
        match &plan.translation.action {
            Action::Constant { rows, .. } => {
                let rows = rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| RowValue::new(Cell::from_value(v)))
                            .collect()
                    })
                    .collect();
                self.exec = Exec::Constant(rows);
                self.step_locked(db, st, rt)
            }
            Action::Transaction(op) => {
                st.transaction(db, rt, op)?;
                self.exec = Exec::Done;
                Ok(SQLITE_DONE)
            }
            Action::Run(stmts) => self.run(db, st, rt, stmts),
            Action::Maintenance(m) => {
                self.exec = Exec::Constant(crate::maintenance::run(db, st, rt, m)?);
                self.step_locked(db, st, rt)
            }
        }
    }

    fn fetch(&mut self, st: &mut DbState, id: u64) -> Result<c_int> {
        self.status[SQLITE_STMTSTATUS_VM_STEP as usize] += 1;
        match st.next_row(id)? {
            Some(row) => {
                self.row = row;
                Ok(SQLITE_ROW)
            }
            None => {
                self.exec = Exec::Done;
                self.row.clear();
                st.release_if_idle();
                Ok(SQLITE_DONE)
            }
        }
    }

    /// Run the translation's PostgreSQL statements.
    fn run(
        &mut self,
        db: &RoutedDb,
        st: &mut DbState,
        rt: &'static Runtime,
        stmts: &[PgStatement],
    ) -> Result<c_int> {
        st.put_aside_active()?;
        let translation = &self.plan.translation;
        let in_tx = st.tx.is_some();
        let writes =
            translation.changes_schema || stmts.iter().any(|s| s.counts_changes || s.rowid_column);
        // Several statements run in a transaction of their own; a write in
        // an open transaction runs under a savepoint.
        let implicit_tx = !in_tx && stmts.len() > 1;
        let guarded = in_tx && writes;
        let id = st.next_exec_id();
        let outcome = if guarded && stmts.len() == 1 {
            write_in_transaction(db, st, rt, &stmts[0], &self.binds)
        } else if implicit_tx && !translation.changes_schema {
            st.conn(db, rt)
                .and_then(|conn| run_in_own_transaction(conn, rt, stmts, &self.binds))
        } else {
            st.conn(db, rt)
                .and_then(|conn| run_wrapped(conn, rt, stmts, &self.binds, implicit_tx, guarded))
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if stmts.iter().any(|s| s.counts_changes) {
                    // SQLite's changes() after a failed INSERT/UPDATE/DELETE.
                    st.changes = 0;
                }
                if in_tx && !guarded {
                    // A failed read: PostgreSQL aborted the transaction.
                    if let Some(tx) = st.tx.as_mut() {
                        tx.aborted = true;
                    }
                }
                return Err(e);
            }
        };
        if translation.changes_schema {
            rt.schema_changed();
            if let Some(tx) = st.tx.as_mut() {
                tx.changed_schema = true;
            }
        }
        if let Some(n) = outcome.changes {
            st.changes = n;
            st.total_changes += n;
        }
        if let Some(rowid) = outcome.rowid {
            st.last_rowid = rowid;
        }
        if let (None, Some((described, hidden))) = (&self.plan.columns, &outcome.described) {
            // The columns could not be known at prepare time (the
            // statement needed earlier ones to run first).
            self.columns = Arc::new(columns_of(
                st.conn(db, rt)?,
                rt,
                described,
                *hidden,
                translation,
            )?);
        }
        match outcome.rows {
            Rows::None => {
                self.exec = Exec::Done;
                st.release_if_idle();
                Ok(SQLITE_DONE)
            }
            Rows::Read(rows) => {
                st.buffered
                    .push(crate::connection::Buffered { exec: id, rows });
                self.exec = Exec::Rows(id);
                self.fetch(st, id)
            }
            Rows::Stream(active_rows, shape) => {
                st.active = Some(Active {
                    exec: id,
                    rows: active_rows,
                    shape,
                });
                self.exec = Exec::Rows(id);
                self.fetch(st, id)
            }
        }
    }

    /// `sqlite3_reset`: stop reading; the bindings stay.
    pub fn reset(&mut self) -> c_int {
        let db = self.db.clone();
        let mut st = db.state.lock();
        self.stop(&mut st);
        std::mem::replace(&mut self.last_error, SQLITE_OK) & 0xff
    }

    /// End the current execution, if any.
    pub fn stop(&mut self, st: &mut DbState) {
        if let Exec::Rows(id) = self.exec {
            if self.generation == crate::connection::rt().pool.generation() {
                st.abandon(id);
            }
        }
        self.exec = Exec::Idle;
        self.row.clear();
        st.release_if_idle();
    }

    /// Bind `v` to parameter `i` (1-based).
    pub fn bind(&mut self, i: c_int, v: Value) -> c_int {
        if self.busy() {
            return self
                .db
                .state
                .lock()
                .fail(&Error::misuse("bind on a busy statement"));
        }
        match self.binds.get_mut((i as usize).wrapping_sub(1)) {
            Some(slot) if i >= 1 => {
                *slot = v;
                SQLITE_OK
            }
            _ => self
                .db
                .state
                .lock()
                .fail(&Error::range("column index out of range")),
        }
    }

    pub fn clear_bindings(&mut self) {
        self.binds.iter_mut().for_each(|b| *b = Value::Null);
    }

    /// `sqlite3_bind_parameter_name` (index from 1).
    pub fn param_name(&self, i: c_int) -> Option<&std::ffi::CStr> {
        let i = usize::try_from(i).ok()?.checked_sub(1)?;
        self.plan.param_names.get(i)?.as_deref()
    }

    /// `sqlite3_bind_parameter_index`: the index of a named parameter.
    pub fn parameter_index(&self, name: &[u8]) -> c_int {
        self.plan
            .translation
            .params
            .iter()
            .position(|p| p.as_deref().map(str::as_bytes) == Some(name))
            .map_or(0, |i| i as c_int + 1)
    }

    /// `sqlite3_expanded_sql`: the text with each parameter replaced by
    /// its bound value as an SQL literal.
    pub fn expanded_sql(&self) -> String {
        let params = &self.plan.translation.params;
        let mut positional = 0usize;
        crate::split::replace_parameters(self.sql.to_bytes(), |p| {
            let index = if p == "?" {
                positional += 1;
                Some(positional)
            } else if let Some(n) = p.strip_prefix('?') {
                let n = n.parse::<usize>().ok();
                if let Some(n) = n {
                    positional = positional.max(n);
                }
                n
            } else {
                params
                    .iter()
                    .position(|q| q.as_deref() == Some(p))
                    .map(|i| i + 1)
            };
            index
                .and_then(|i| self.binds.get(i - 1))
                .map_or_else(|| "NULL".to_string(), literal)
        })
    }
}

/// A bound value as an SQL literal.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => crate::row::format_real(*f),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => format!(
            "x'{}'",
            b.iter().map(|c| format!("{c:02x}")).collect::<String>()
        ),
    }
}

enum Rows {
    None,
    /// Read whole (the statement ran under a savepoint or a transaction of
    /// its own, which must end before the next statement).
    Read(VecDeque<Vec<RowValue>>),
    Stream(Stream, Shape),
}

struct Outcome {
    rows: Rows,
    changes: Option<i64>,
    rowid: Option<i64>,
    /// The last statement, prepared, when it yields rows (and whether its
    /// last column is a hidden rowid).
    described: Option<(tokio_postgres::Statement, bool)>,
}

const SAVEPOINT_SQL: &str = "SAVEPOINT plexpg_statement";
const BEGIN_SAVEPOINT_SQL: &str = "BEGIN; SAVEPOINT plexpg_statement";
const RELEASE_SQL: &str = "RELEASE SAVEPOINT plexpg_statement";
const UNDO_SQL: &str = "ROLLBACK TO SAVEPOINT plexpg_statement; RELEASE SAVEPOINT plexpg_statement";

/// Run the statements, in a transaction of their own (`implicit_tx`) or
/// under a savepoint (`guarded`) when asked, one after the other.
fn run_wrapped(
    conn: &mut PgConn,
    rt: &Runtime,
    stmts: &[PgStatement],
    binds: &[Value],
    implicit_tx: bool,
    guarded: bool,
) -> Result<Outcome> {
    if implicit_tx {
        conn.batch("BEGIN")?;
    } else if guarded {
        conn.batch(SAVEPOINT_SQL)?;
    }
    let outcome = run_all(conn, rt, stmts, binds, implicit_tx || guarded);
    let finish = match (&outcome, implicit_tx, guarded) {
        (Ok(_), true, _) => conn.batch("COMMIT"),
        (Ok(_), _, true) => conn.batch(RELEASE_SQL),
        (Err(_), true, _) => conn.batch("ROLLBACK"),
        (Err(_), _, true) => conn.batch(UNDO_SQL),
        _ => Ok(()),
    };
    let outcome = outcome?;
    finish?;
    Ok(outcome)
}

/// Several statements outside a transaction, in one of their own:
/// `BEGIN`, the statements and `COMMIT` go out together, one round trip
/// (each statement prepared first; a translation that changes the schema
/// is not sent this way, its later statements may need the earlier ones
/// to have run before they can be prepared). A failing statement aborts
/// the transaction, and PostgreSQL answers the `COMMIT` with a rollback:
/// nothing is kept, as before. A plan PostgreSQL finds stale sends it all
/// again one statement at a time.
fn run_in_own_transaction(
    conn: &mut PgConn,
    rt: &Runtime,
    stmts: &[PgStatement],
    binds: &[Value],
) -> Result<Outcome> {
    let prepared = stmts
        .iter()
        .map(|pgs| prepare(conn, rt, &pgs.sql))
        .collect::<Result<Vec<_>>>()?;
    let params: Vec<Vec<Param<'_>>> = stmts.iter().map(|pgs| params_of(pgs, binds)).collect();
    let (client, mut d) = conn.parts();
    type Work<'a> = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<
                        (Vec<tokio_postgres::Row>, Option<u64>),
                        tokio_postgres::Error,
                    >,
                > + 'a,
        >,
    >;
    let works: Vec<Work<'_>> = prepared
        .iter()
        .zip(&params)
        .map(|(st, params)| {
            Box::pin(async move {
                let mut rows = Box::pin(client.query_raw(st, params.iter()).await?);
                let mut got = Vec::new();
                while let Some(row) =
                    std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx))
                        .await
                {
                    got.push(row?);
                }
                Ok((got, rows.rows_affected()))
            }) as Work<'_>
        })
        .collect();
    let (begin, done, commit) = d.drive(crate::pg::drive::join3(
        client.batch_execute("BEGIN"),
        crate::pg::drive::join_all(works),
        client.batch_execute("COMMIT"),
    ))?;
    let first_error = done
        .iter()
        .find_map(|r| r.as_ref().err())
        .or(begin.as_ref().err())
        .or(commit.as_ref().err())
        .map(|e| d.pg_error(e));
    if let Some(e) = first_error {
        if stale_plan(&e) {
            for pgs in stmts {
                conn.forget_statement(&pgs.sql);
            }
            return run_wrapped(conn, rt, stmts, binds, true, false);
        }
        return Err(e);
    }
    let mut outcome = Outcome {
        rows: Rows::None,
        changes: None,
        rowid: None,
        described: None,
    };
    for (i, ((pgs, st), result)) in stmts.iter().zip(&prepared).zip(done).enumerate() {
        let last = i + 1 == stmts.len();
        let (rows, affected) = result.map_err(|e| crate::error::from_pg(&e))?;
        let part = collect(rows, affected, pgs, last)?;
        if pgs.yields_rows && last {
            outcome.described = Some((st.clone(), pgs.rowid_column));
            outcome.rows = part.rows;
        }
        outcome.changes = part.changes.or(outcome.changes);
        outcome.rowid = part.rowid.or(outcome.rowid);
    }
    Ok(outcome)
}

/// One write in an open transaction. When `atomicity` proves it cannot
/// fail with a statement-level error, it runs at the top level (no
/// subtransaction); otherwise under a savepoint. A pending `BEGIN` goes
/// out in the same round trip.
fn write_in_transaction(
    db: &RoutedDb,
    st: &mut DbState,
    rt: &'static Runtime,
    pgs: &PgStatement,
    binds: &[Value],
) -> Result<Outcome> {
    let (begin, aborted) = st
        .tx
        .as_ref()
        .map_or((false, false), |tx| (tx.begin_pending, tx.aborted));
    if !aborted && send_without_waiting(db, st, rt, pgs, binds, begin)? {
        return Ok(Outcome {
            rows: Rows::None,
            changes: None,
            rowid: None,
            described: None,
        });
    }
    st.settle(rt)?;
    let conn = st.conn_deferring_begin(db, rt)?;
    let fast = if aborted {
        // PostgreSQL refuses every statement now: the savepoint path gives
        // the error it always gave.
        None
    } else {
        fast_write(conn, rt, db.schema_id, &pgs.sql, begin)?
    };
    let params = params_of(pgs, binds);
    let attempt = match &fast {
        Some(fw) => {
            let sql = fw.sql(&pgs.sql);
            match prepare(conn, rt, sql) {
                Ok(prepared) if fw.admits(prepared.params(), &params) => Some(
                    pipelined(conn, begin.then_some("BEGIN"), &prepared, &params, None)
                        .map(|done| (done, fw.conflict_is_error)),
                ),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        }
        None => None,
    };
    let outcome = match attempt {
        None => run_guarded(conn, rt, pgs, binds, true, begin),
        Some(Ok(((_, Some(0)), true))) => {
            // A unique conflict (the added DO NOTHING wrote nothing): run
            // it again under a savepoint, to fail exactly as it would have.
            run_guarded(conn, rt, pgs, binds, true, false)
        }
        Some(Ok(((rows, affected), _))) => collect(rows, affected, pgs, true),
        Some(Err(e)) => {
            // Not a failure the analysis could rule out: PostgreSQL has
            // aborted the transaction.
            if let Some(tx) = st.tx.as_mut() {
                tx.begin_pending = false;
            }
            return Err(st.abort_transaction(rt, e));
        }
    };
    if let Some(tx) = st.tx.as_mut() {
        tx.begin_pending = false;
    }
    outcome
}

/// Pipelining: a write in an open transaction that `atomicity` has
/// proven unable to fail (unique conflicts included: `pipelinable`), whose
/// verdict and prepared statement are at hand (no round trip needed to
/// know), is sent without waiting for its answer; its step returns
/// `SQLITE_DONE` at once. Its answer (rowid, change count, or a server
/// error that rolls the transaction back) is read by `DbState::settle`
/// when anything next needs the connection or a result. True when sent
/// so; false when the write must take the ordinary path.
fn send_without_waiting(
    db: &RoutedDb,
    st: &mut DbState,
    rt: &'static Runtime,
    pgs: &PgStatement,
    binds: &[Value],
    begin: bool,
) -> Result<bool> {
    if !rt.pool.settings().pipeline_writes || pgs.yields_rows {
        return Ok(false);
    }
    let Some(Some(fw)) = rt.cached_fast_write(db.schema_id, &pgs.sql) else {
        return Ok(false);
    };
    if !fw.pipelinable {
        return Ok(false);
    }
    let conn = st.conn_deferring_begin(db, rt)?;
    if conn.in_flight() >= crate::pg::conn::MAX_IN_FLIGHT {
        return Ok(false);
    }
    let Some(prepared) = conn.cached_statement(fw.sql(&pgs.sql), rt.epoch()) else {
        return Ok(false);
    };
    let params = params_of(pgs, binds);
    if !fw.admits(prepared.params(), &params) {
        return Ok(false);
    }
    let owned: Vec<Value> = params.iter().map(|p| p.0.clone()).collect();
    let shape = Shape {
        hidden_rowid: pgs.rowid_column,
        counts_changes: pgs.counts_changes,
    };
    let sent = if begin {
        conn.send_batch("BEGIN")
    } else {
        Ok(())
    }
    .and_then(|()| conn.send_write(&prepared, owned, shape));
    if let Some(tx) = st.tx.as_mut() {
        tx.begin_pending = false;
    }
    match sent {
        Ok(()) => Ok(true),
        // The connection failed: so did the transaction.
        Err(e) => Err(st.abort_transaction(rt, e)),
    }
}

/// Whether (and how) `sql` runs without a savepoint: cached per schema
/// epoch, else analysed now. In a transaction already begun the analysis
/// runs under a savepoint of its own (once per statement text), so a
/// failure there cannot abort the transaction; it then only means "no".
fn fast_write(
    conn: &mut PgConn,
    rt: &Runtime,
    schema_id: u32,
    sql: &str,
    outside_tx: bool,
) -> Result<Option<Arc<FastWrite>>> {
    if let Some(verdict) = rt.cached_fast_write(schema_id, sql) {
        return Ok(verdict);
    }
    let epoch = rt.epoch();
    let cache = rt.pool.settings().statement_cache as usize;
    if !outside_tx {
        conn.batch("SAVEPOINT plexpg_analysis")?;
    }
    let verdict = crate::atomicity::analyse(conn, epoch, cache, sql).and_then(|fw| match fw {
        // The text to run is prepared once here, where a refusal is harmless.
        Some(fw) => conn
            .prepare(fw.sql(sql), epoch, cache)
            .map(|_| Some(Arc::new(fw))),
        None => Ok(None),
    });
    let verdict = match verdict {
        Ok(v) => {
            if !outside_tx {
                conn.batch("RELEASE SAVEPOINT plexpg_analysis")?;
            }
            v
        }
        Err(e) => {
            tracing::debug!(sql, "no fast path for this write: {}", e.message);
            if !outside_tx {
                conn.batch(
                    "ROLLBACK TO SAVEPOINT plexpg_analysis; RELEASE SAVEPOINT plexpg_analysis",
                )?;
            }
            None
        }
    };
    rt.cache_fast_write(schema_id, sql, verdict.clone(), epoch);
    Ok(verdict)
}

/// Run a prepared statement with simple-protocol batches before and after
/// it, all in one round trip; its rows read whole. The statement's own
/// error says the most, then the one before's, then the one after's.
fn pipelined(
    conn: &mut PgConn,
    before: Option<&str>,
    st: &tokio_postgres::Statement,
    params: &[Param<'_>],
    after: Option<&str>,
) -> Result<(Vec<tokio_postgres::Row>, Option<u64>)> {
    let (client, mut d) = conn.parts();
    let batch = |sql: Option<&str>| {
        let sql = sql.map(str::to_string);
        async move {
            match sql {
                Some(sql) => client.batch_execute(&sql).await,
                None => Ok(()),
            }
        }
    };
    let work = async {
        let mut rows = Box::pin(client.query_raw(st, params.iter()).await?);
        let mut got = Vec::new();
        while let Some(row) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx)).await
        {
            got.push(row?);
        }
        Ok::<_, tokio_postgres::Error>((got, rows.rows_affected()))
    };
    let (begin, work, end) = d.drive(crate::pg::drive::join3(batch(before), work, batch(after)))?;
    match (begin, work, end) {
        (_, Err(e), _) | (Err(e), Ok(_), _) | (Ok(()), Ok(_), Err(e)) => Err(d.pg_error(&e)),
        (Ok(()), Ok(w), Ok(())) => Ok(w),
    }
}

/// One write in an open transaction, fenced by a savepoint so a failure
/// leaves the transaction usable, as in SQLite. SAVEPOINT (after a pending
/// BEGIN), the statement and RELEASE go out together: one round trip, not
/// three.
fn run_guarded(
    conn: &mut PgConn,
    rt: &Runtime,
    pgs: &PgStatement,
    binds: &[Value],
    retry: bool,
    begin: bool,
) -> Result<Outcome> {
    let st = prepare(conn, rt, &pgs.sql)?;
    let params = params_of(pgs, binds);
    let before = if begin {
        BEGIN_SAVEPOINT_SQL
    } else {
        SAVEPOINT_SQL
    };
    match pipelined(conn, Some(before), &st, &params, Some(RELEASE_SQL)) {
        Ok((rows, affected)) => collect(rows, affected, pgs, true),
        Err(e) => {
            let _ = conn.batch(UNDO_SQL);
            if retry && stale_plan(&e) {
                conn.forget_statement(&pgs.sql);
                return run_guarded(conn, rt, pgs, binds, false, false);
            }
            Err(e)
        }
    }
}

fn params_of<'a>(pgs: &PgStatement, binds: &'a [Value]) -> Vec<Param<'a>> {
    pgs.args
        .iter()
        .map(|&a| Param(binds.get(a).unwrap_or(&Value::Null)))
        .collect()
}

/// What one statement's rows, read whole, give: the visible rows (if it
/// yields rows and is the last), the change count, the last rowid.
fn collect(
    rows: Vec<tokio_postgres::Row>,
    affected: Option<u64>,
    pgs: &PgStatement,
    last: bool,
) -> Result<Outcome> {
    let shape = Shape {
        hidden_rowid: pgs.rowid_column,
        counts_changes: pgs.counts_changes,
    };
    let mut outcome = Outcome {
        rows: Rows::None,
        changes: None,
        rowid: None,
        described: None,
    };
    let mut visible = VecDeque::new();
    let count = rows.len() as i64;
    for row in &rows {
        let (values, rowid) = convert_row(row, shape)?;
        if rowid.is_some() {
            outcome.rowid = rowid;
        }
        if pgs.yields_rows {
            visible.push_back(values);
        }
    }
    if pgs.counts_changes {
        outcome.changes = Some(affected.map_or(count, |n| n as i64));
    }
    if pgs.yields_rows && last {
        outcome.rows = Rows::Read(visible);
    }
    Ok(outcome)
}

/// Run every statement; the last one's rows are the result. With
/// `read_whole`, rows are read now rather than streamed.
fn run_all(
    conn: &mut PgConn,
    rt: &Runtime,
    stmts: &[PgStatement],
    binds: &[Value],
    read_whole: bool,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        rows: Rows::None,
        changes: None,
        rowid: None,
        described: None,
    };
    for (i, pgs) in stmts.iter().enumerate() {
        let last = i + 1 == stmts.len();
        let params = params_of(pgs, binds);
        if pgs.yields_rows && last || pgs.rowid_column {
            let (statement, mut stream) = query(conn, rt, &pgs.sql, &params)?;
            if pgs.yields_rows && last && !read_whole {
                let shape = Shape {
                    hidden_rowid: pgs.rowid_column,
                    counts_changes: pgs.counts_changes,
                };
                outcome.described = Some((statement, pgs.rowid_column));
                outcome.rows = Rows::Stream(stream, shape);
                continue;
            }
            let mut rows = Vec::new();
            while let Some(row) = conn.next_row(&mut stream)? {
                rows.push(row);
            }
            let part = collect(rows, stream.rows_affected(), pgs, last)?;
            if pgs.yields_rows && last {
                outcome.described = Some((statement, pgs.rowid_column));
                outcome.rows = part.rows;
            }
            outcome.changes = part.changes.or(outcome.changes);
            outcome.rowid = part.rowid.or(outcome.rowid);
        } else {
            let n = execute(conn, rt, &pgs.sql, &params)? as i64;
            if pgs.counts_changes {
                outcome.changes = Some(n);
            }
        }
    }
    Ok(outcome)
}

/// A statement prepared on `conn` (cached there).
fn prepare(conn: &mut PgConn, rt: &Runtime, sql: &str) -> Result<tokio_postgres::Statement> {
    conn.prepare(sql, rt.epoch(), rt.pool.settings().statement_cache as usize)
}

/// PostgreSQL refuses a cached plan whose result type changed after DDL
/// from another session: prepare again, once.
fn stale_plan(e: &Error) -> bool {
    e.is_stale_plan()
}

type Stream = std::pin::Pin<Box<tokio_postgres::RowStream>>;

fn query(
    conn: &mut PgConn,
    rt: &Runtime,
    sql: &str,
    params: &[Param<'_>],
) -> Result<(tokio_postgres::Statement, Stream)> {
    let st = prepare(conn, rt, sql)?;
    match conn.query(&st, params) {
        Err(e) if stale_plan(&e) => {
            conn.forget_statement(sql);
            let st = prepare(conn, rt, sql)?;
            let rows = conn.query(&st, params)?;
            Ok((st, rows))
        }
        Err(e) => Err(e),
        Ok(rows) => Ok((st, rows)),
    }
}

fn execute(conn: &mut PgConn, rt: &Runtime, sql: &str, params: &[Param<'_>]) -> Result<u64> {
    let st = prepare(conn, rt, sql)?;
    match conn.execute(&st, params) {
        Err(e) if stale_plan(&e) => {
            conn.forget_statement(sql);
            let st = prepare(conn, rt, sql)?;
            conn.execute(&st, params)
        }
        other => other,
    }
}

/// Translate and describe `sql` for `db` (cached per schema and text).
/// The handle's own connection is used when it has one (in a transaction
/// it sees the transaction's DDL; a result still streaming on it is set
/// aside, as running the new statement would do anyway); otherwise any
/// connection of the pool, for the time of planning.
pub fn plan(db: &RoutedDb, st: &mut DbState, rt: &'static Runtime, sql: &str) -> Result<Arc<Plan>> {
    if let Some(p) = rt.cached_plan(db.schema_id, sql) {
        return Ok(p);
    }
    let epoch = rt.epoch();
    let mut temporary = None;
    let conn: &mut PgConn = if st.tx.is_some() || st.lease.is_some() {
        st.put_aside_active()?;
        st.conn(db, rt)?
    } else {
        let lease = temporary.insert(rt.ready_lease(db.schema_id, &db.schema)?);
        lease
            .conn()
            .ok_or_else(|| Error::new(SQLITE_IOERR, "pool lease is stale"))?
    };
    let translation = {
        let mut catalog = ConnCatalog {
            conn: &mut *conn,
            rt,
            schema: &db.schema,
        };
        translate::translate_with_room(sql, &mut catalog)
    };
    let translation = match translation {
        Ok(t) => t,
        Err(e) => return Err(untranslatable(conn, rt, sql, e)),
    };
    let columns = describe(conn, rt, &translation)?;
    let param_names = translation
        .params
        .iter()
        .map(|p| p.as_deref().and_then(|n| CString::new(n).ok()))
        .collect();
    let plan = Arc::new(Plan {
        translation,
        param_names,
        columns,
    });
    rt.cache_plan(db.schema_id, sql, plan.clone(), epoch);
    drop(temporary);
    Ok(plan)
}

/// The error for a statement the translator refused. When it could not
/// even parse it, PostgreSQL is asked to parse the text as it is (prepare
/// only, nothing runs): malformed SQL is then reported with PostgreSQL's
/// own message. Otherwise, and for every other refusal, the translator's
/// message, which names the construct, logged once per statement text.
fn untranslatable(conn: &mut PgConn, rt: &Runtime, sql: &str, e: translate::Error) -> Error {
    if e.message.starts_with("syntax error") {
        if let Err(pg) = conn.prepare(sql, rt.epoch(), 0) {
            return pg;
        }
    }
    let msg = format!("plex-pg cannot translate this statement: {}", e.message);
    tracing::warn!(sql, "{msg}");
    Error::sql(msg)
}

/// The result columns, when they can be known before running: a single
/// statement (PostgreSQL prepares it, which also reports errors at
/// prepare time, as SQLite does), or constant rows.
fn describe(
    conn: &mut PgConn,
    rt: &Runtime,
    t: &translate::Translation,
) -> Result<Option<Arc<Columns>>> {
    match &t.action {
        Action::Constant { columns, .. } => Ok(Some(Arc::new(Columns {
            names: columns
                .iter()
                .map(|c| CString::new(c.as_str()).unwrap_or_default())
                .collect(),
            decltypes: vec![None; columns.len()],
        }))),
        Action::Transaction(_) => Ok(Some(Arc::default())),
        Action::Maintenance(m) => Ok(Some(Arc::new(Columns {
            names: m
                .column()
                .map(|c| CString::new(c).unwrap_or_default())
                .into_iter()
                .collect(),
            decltypes: m.column().map(|_| None).into_iter().collect(),
        }))),
        Action::Run(stmts) if stmts.len() == 1 && !t.changes_schema => {
            let pgs = &stmts[0];
            let st = conn.prepare(
                &pgs.sql,
                rt.epoch(),
                rt.pool.settings().statement_cache as usize,
            )?;
            if !pgs.yields_rows {
                return Ok(Some(Arc::default()));
            }
            Ok(Some(Arc::new(columns_of(
                conn,
                rt,
                &st,
                pgs.rowid_column,
                t,
            )?)))
        }
        Action::Run(_) => Ok(None),
    }
}

/// Names and declared types of a prepared statement's visible columns.
fn columns_of(
    conn: &mut PgConn,
    rt: &Runtime,
    st: &tokio_postgres::Statement,
    hidden_rowid: bool,
    t: &translate::Translation,
) -> Result<Columns> {
    let cols = st.columns();
    let visible = if hidden_rowid {
        cols.len().saturating_sub(1)
    } else {
        cols.len()
    };
    let mut out = Columns::default();
    for (i, c) in cols[..visible].iter().enumerate() {
        // SQLite's name where it is not PostgreSQL's (`count(*)`).
        let from_end = visible - 1 - i;
        let sqlite = match t.column_names.get(i) {
            Some(n) => n.as_deref(),
            None if from_end < t.trailing_column_names.len() => {
                t.trailing_column_names[t.trailing_column_names.len() - 1 - from_end].as_deref()
            }
            None => None,
        };
        let name = sqlite.unwrap_or(c.name());
        out.names.push(CString::new(name).unwrap_or_default());
        let decl = match (c.table_oid(), c.column_id()) {
            (Some(t), Some(n)) if t != 0 && n > 0 => rt.decltype(conn, t, n)?,
            _ => None,
        };
        out.decltypes.push(decl);
    }
    Ok(out)
}

/// The catalog, as the translator sees it: queries on this connection.
struct ConnCatalog<'a> {
    conn: &'a mut PgConn,
    rt: &'a Runtime,
    schema: &'a str,
}

impl translate::Catalog for ConnCatalog<'_> {
    fn schema(&self) -> &str {
        self.schema
    }
    fn query(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
        let cache = self.rt.pool.settings().statement_cache as usize;
        self.conn
            .query_text(sql, params, self.rt.epoch(), cache)
            .map_err(|e| e.message)
    }
}
