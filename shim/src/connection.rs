//! A routed database handle: what `sqlite3_open` returned for a library
//! database, and its state between calls.
//!
//! The `sqlite3*` handed to the client is a real in-memory SQLite handle,
//! so any SQLite function the shim does not export (`busy_timeout`,
//! `create_function`, `db_config` …) is safe to call on it. Its
//! PostgreSQL side is here: the connection it holds (a [`Lease`], kept for
//! a transaction's length, or while a statement streams rows), the
//! transaction and savepoints, the streamed result being read, results put
//! aside when another statement needed the connection, and what
//! `sqlite3_errmsg`, `sqlite3_changes` and `sqlite3_last_insert_rowid`
//! report.

use crate::error::{Error, Result};
use crate::lock::ForkLock;
use crate::pg::PgConn;
use crate::pool::Lease;
use crate::row::{Cell, RowValue};
use crate::runtime::{self, Runtime};
use crate::sys::*;
use crate::translate::TxControl;
use std::collections::VecDeque;
use std::ffi::{c_int, CString};
use std::pin::Pin;
use tokio_postgres::RowStream;

pub struct RoutedDb {
    /// The real in-memory SQLite handle given to the client.
    pub handle: *mut sqlite3,
    pub path: String,
    pub schema: String,
    pub schema_id: u32,
    pub state: ForkLock<DbState>,
}

// SAFETY: the raw handle is only an identity and is passed to the real
// SQLite, which is thread-safe; all mutable state is behind `state`.
unsafe impl Send for RoutedDb {}
// SAFETY: as for Send: shared access reads the immutable identity fields or
// goes through `state`'s lock.
unsafe impl Sync for RoutedDb {}

/// A transaction in progress.
#[derive(Debug, Default)]
pub struct Tx {
    /// Open savepoints, outermost first.
    pub savepoints: Vec<String>,
    /// Begun by `SAVEPOINT` (releasing that one commits).
    pub began_with_savepoint: bool,
    /// A statement failed and PostgreSQL aborted the transaction: only
    /// ROLLBACK (or ROLLBACK TO a savepoint) can continue it.
    pub aborted: bool,
    /// The transaction changed the schema (a rollback must drop caches).
    pub changed_schema: bool,
    /// `BEGIN` has not been sent yet: like SQLite's deferred `BEGIN`, it
    /// goes out with the transaction's first statement (one round trip
    /// fewer per transaction), and an empty transaction costs nothing.
    pub begin_pending: bool,
}

/// How to read a streamed result's rows.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// The last column is the inserted rowid, hidden from the client.
    pub hidden_rowid: bool,
    /// Its row count is `sqlite3_changes()`.
    pub counts_changes: bool,
}

/// A result being read from the connection.
pub struct Active {
    pub exec: u64,
    pub rows: Pin<Box<RowStream>>,
    pub shape: Shape,
}

/// A result put aside (read ahead) because another statement needed the
/// connection.
pub struct Buffered {
    pub exec: u64,
    pub rows: VecDeque<Vec<RowValue>>,
}

pub struct DbState {
    pub lease: Option<Lease>,
    pub tx: Option<Tx>,
    pub active: Option<Active>,
    pub buffered: Vec<Buffered>,
    next_exec: u64,
    pub errcode: c_int,
    pub errmsg: CString,
    pub changes: i64,
    pub total_changes: i64,
    pub last_rowid: i64,
    /// The pool generation this state was last used in.
    generation: u64,
    /// Statements prepared on this handle and not finalized.
    pub live_statements: usize,
    /// Finalized statements kept for reuse: `registry`'s, which alone
    /// knows their type; kept here so they are taken and given back under
    /// the handle's lock.
    pub spare: Vec<Box<dyn std::any::Any + Send>>,
    /// Closed with `sqlite3_close_v2` while statements were alive: goes
    /// away when the last one is finalized.
    pub zombie: bool,
    /// A write in flight failed and its answer was read by a call that
    /// cannot return an error (`sqlite3_changes` …): the next step of any
    /// statement returns this error instead of running.
    pub failed_in_flight: Option<Error>,
}

impl RoutedDb {
    pub fn new(
        handle: *mut sqlite3,
        path: String,
        schema: String,
        schema_id: u32,
        generation: u64,
    ) -> RoutedDb {
        RoutedDb {
            handle,
            path,
            schema,
            schema_id,
            state: ForkLock::new(DbState {
                lease: None,
                tx: None,
                active: None,
                buffered: Vec::new(),
                next_exec: 1,
                errcode: SQLITE_OK,
                errmsg: CString::new("not an error").unwrap(),
                changes: 0,
                total_changes: 0,
                last_rowid: 0,
                generation,
                live_statements: 0,
                spare: Vec::new(),
                zombie: false,
                failed_in_flight: None,
            }),
        }
    }
}

impl DbState {
    /// Record a failure for `sqlite3_errcode`/`sqlite3_errmsg`; returns
    /// its primary code.
    pub fn fail(&mut self, e: &Error) -> c_int {
        self.errcode = e.code;
        self.errmsg = CString::new(e.message.replace('\0', " ")).unwrap_or_default();
        e.code & 0xff
    }

    pub fn ok(&mut self) {
        self.errcode = SQLITE_OK;
    }

    pub fn set_errmsg(&mut self, code: c_int, msg: &str) {
        self.errcode = code;
        self.errmsg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    }

    pub fn next_exec_id(&mut self) -> u64 {
        self.next_exec += 1;
        self.next_exec
    }

    /// Inherited from before a fork (the pool's generation moved on):
    /// forget the lease and the results in flight, which belong to the
    /// parent's connection, without dropping them (dropping could talk on
    /// the parent's socket). Rows read ahead are leaked too, never freed:
    /// this may run in a child born without fork handlers, where another
    /// thread of the parent may have held the allocator's lock at the
    /// fork. The transaction is the parent's too.
    pub fn forget_if_inherited(&mut self, rt: &Runtime) {
        let now = rt.pool.generation();
        if self.generation == now {
            return;
        }
        std::mem::forget(self.lease.take());
        std::mem::forget(self.active.take());
        std::mem::forget(std::mem::take(&mut self.buffered));
        std::mem::forget(self.failed_in_flight.take());
        self.tx = None;
        self.generation = now;
    }

    /// The handle's connection, taking one from the pool if it has none;
    /// in a transaction whose `BEGIN` is still pending, it is sent first.
    pub fn conn(&mut self, db: &RoutedDb, rt: &'static Runtime) -> Result<&mut PgConn> {
        crate::fork::ensure_own_process()?;
        self.forget_if_inherited(rt);
        self.settle(rt)?;
        let pending = self.tx.as_ref().is_some_and(|tx| tx.begin_pending);
        let conn = self.conn_deferring_begin(db, rt)?;
        if pending {
            conn.batch("BEGIN")?;
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.begin_pending = false;
        }
        Ok(self
            .lease
            .as_mut()
            .and_then(|l| l.conn())
            .expect("connection taken above"))
    }

    /// The handle's connection, as [`DbState::conn`], but leaving a
    /// pending `BEGIN` unsent: the caller sends it with its statement
    /// (`Tx::begin_pending` says whether it must) and then clears the flag.
    pub fn conn_deferring_begin(
        &mut self,
        db: &RoutedDb,
        rt: &'static Runtime,
    ) -> Result<&mut PgConn> {
        crate::fork::ensure_own_process()?;
        self.forget_if_inherited(rt);
        if self.lease.as_mut().and_then(|l| l.conn()).is_none() {
            if self.tx.is_some() {
                // The lease cannot be missing mid-transaction, unless the
                // connection was lost; then so is the transaction.
                self.tx = None;
                return Err(Error::new(
                    SQLITE_IOERR,
                    "the connection to PostgreSQL was lost; the transaction was rolled back",
                ));
            }
            self.lease = Some(rt.ready_lease(db.schema_id, &db.schema)?);
        }
        Ok(self
            .lease
            .as_mut()
            .and_then(|l| l.conn())
            .expect("lease checked above"))
    }

    /// Read the answers of the writes in flight (see `statement`'s
    /// pipelining), in order: their `changes()` and rowids, as if each had
    /// been answered at its own step. When one failed (a server error the
    /// shim could not rule out: PostgreSQL has aborted the transaction),
    /// the transaction is rolled back and over, as on the unguarded path,
    /// and its error, marked as an earlier write's, is this call's.
    pub fn settle(&mut self, rt: &'static Runtime) -> Result<()> {
        let Some(conn) = self.lease.as_mut().and_then(|l| l.conn()) else {
            return Ok(());
        };
        if conn.in_flight() == 0 {
            return Ok(());
        }
        let answers = match conn.collect_in_flight() {
            Ok(a) => a,
            Err(e) => return Err(self.abort_transaction(rt, earlier_write(e))),
        };
        for (answer, shape) in answers {
            let (rows, affected) = match answer {
                Ok(done) => done,
                Err(e) => {
                    let e = crate::error::from_pg(&e);
                    // A write's error, or the COMMIT's own (no shape).
                    let e = if shape.is_some() {
                        self.changes = 0;
                        earlier_write(e)
                    } else {
                        e
                    };
                    return Err(self.abort_transaction(rt, e));
                }
            };
            let Some(shape) = shape else { continue };
            for row in &rows {
                if let (_, Some(id)) = convert_row(row, shape)? {
                    self.last_rowid = id;
                }
            }
            if shape.counts_changes {
                let n = affected.map_or(rows.len() as i64, |n| n as i64);
                self.changes = n;
                self.total_changes += n;
            }
        }
        Ok(())
    }

    /// [`DbState::settle`] for a call that cannot return an error
    /// (`sqlite3_changes` …): the error is recorded for
    /// `sqlite3_errcode`/`sqlite3_errmsg`.
    pub fn settle_or_record(&mut self, rt: &'static Runtime) {
        if crate::fork::ensure_own_process().is_err() {
            return;
        }
        self.forget_if_inherited(rt);
        if let Err(e) = self.settle(rt) {
            self.fail(&e);
            self.failed_in_flight = Some(e);
        }
    }

    /// Before another statement uses the connection: read the rest of the
    /// streamed result into memory, so its statement can go on stepping.
    pub fn put_aside_active(&mut self) -> Result<()> {
        let Some(mut active) = self.active.take() else {
            return Ok(());
        };
        let mut rows = VecDeque::new();
        let conn = self
            .lease
            .as_mut()
            .and_then(|l| l.conn())
            .ok_or_else(lost)?;
        while let Some(row) = conn.next_row(&mut active.rows)? {
            let (values, rowid) = convert_row(&row, active.shape)?;
            if let Some(id) = rowid {
                self.last_rowid = id;
            }
            rows.push_back(values);
        }
        self.buffered.push(Buffered {
            exec: active.exec,
            rows,
        });
        Ok(())
    }

    /// The next row of execution `exec`: from its buffer, or from the
    /// connection if it is the one streaming. None at the end.
    pub fn next_row(&mut self, exec: u64) -> Result<Option<Vec<RowValue>>> {
        if let Some(i) = self.buffered.iter().position(|b| b.exec == exec) {
            let row = self.buffered[i].rows.pop_front();
            if row.is_none() {
                self.buffered.swap_remove(i);
            }
            return Ok(row);
        }
        let Some(active) = self.active.as_mut().filter(|a| a.exec == exec) else {
            return Ok(None);
        };
        let shape = active.shape;
        let conn = self
            .lease
            .as_mut()
            .and_then(|l| l.conn())
            .ok_or_else(lost)?;
        match conn.next_row(&mut active.rows)? {
            Some(row) => {
                let (values, rowid) = convert_row(&row, shape)?;
                if let Some(id) = rowid {
                    self.last_rowid = id;
                }
                Ok(Some(values))
            }
            None => {
                let active = self.active.take().unwrap();
                if shape.counts_changes {
                    let n = active.rows.rows_affected().unwrap_or(0) as i64;
                    self.changes = n;
                    self.total_changes += n;
                }
                Ok(None)
            }
        }
    }

    /// Stop execution `exec` (reset or finalize): drop its stream or buffer.
    pub fn abandon(&mut self, exec: u64) {
        self.buffered.retain(|b| b.exec != exec);
        if self.active.as_ref().is_some_and(|a| a.exec == exec) {
            // Dropping the stream is safe: tokio-postgres discards the rest
            // of the result the next time the connection is read.
            self.active = None;
        }
    }

    /// Outside a transaction, with nothing streaming: give the connection
    /// back to the pool.
    pub fn release_if_idle(&mut self) {
        if self.tx.is_none() && self.active.is_none() {
            self.lease = None;
        }
    }

    /// Run transaction control for `BEGIN`, `COMMIT`, `SAVEPOINT` …, with
    /// SQLite's rules (and messages) for what is allowed when.
    pub fn transaction(
        &mut self,
        db: &RoutedDb,
        rt: &'static Runtime,
        op: &TxControl,
    ) -> Result<()> {
        self.forget_if_inherited(rt);
        match op {
            TxControl::Begin => {
                if self.tx.is_some() {
                    return Err(Error::sql(
                        "cannot start a transaction within a transaction",
                    ));
                }
                self.begin(db, rt, None)
            }
            TxControl::Savepoint(name) => {
                if self.tx.is_none() {
                    return self.begin(db, rt, Some(name));
                }
                self.put_aside_active()?;
                self.conn(db, rt)?
                    .batch(&format!("SAVEPOINT {}", quote_ident(name)))?;
                self.tx
                    .as_mut()
                    .unwrap()
                    .savepoints
                    .push(name.to_ascii_lowercase());
                Ok(())
            }
            TxControl::Commit => {
                if self.tx.is_none() {
                    return Err(Error::sql("cannot commit - no transaction is active"));
                }
                self.end(db, rt, true)
            }
            TxControl::Rollback => {
                if self.tx.is_none() {
                    return Err(Error::sql("cannot rollback - no transaction is active"));
                }
                self.end(db, rt, false)
            }
            TxControl::Release(name) => {
                let i = self.savepoint_index(name)?;
                let tx = self.tx.as_ref().unwrap();
                if i == 0 && tx.began_with_savepoint {
                    return self.end(db, rt, true);
                }
                self.put_aside_active()?;
                self.conn(db, rt)?
                    .batch(&format!("RELEASE SAVEPOINT {}", quote_ident(name)))?;
                self.tx.as_mut().unwrap().savepoints.truncate(i);
                Ok(())
            }
            TxControl::RollbackTo(name) => {
                let i = self.savepoint_index(name)?;
                self.put_aside_active()?;
                self.conn(db, rt)?
                    .batch(&format!("ROLLBACK TO SAVEPOINT {}", quote_ident(name)))?;
                let tx = self.tx.as_mut().unwrap();
                tx.savepoints.truncate(i + 1);
                tx.aborted = false;
                if tx.changed_schema {
                    rt.schema_changed();
                }
                Ok(())
            }
        }
    }

    /// After a statement that ran outside a savepoint failed in a way
    /// PostgreSQL answers by aborting the transaction (a server error the
    /// shim could not rule out: out of disk, deadlock, cancel, a lost
    /// connection): the transaction is rolled back and over, as SQLite
    /// does for `SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_BUSY` and
    /// `SQLITE_NOMEM` in a transaction — `sqlite3_get_autocommit` says 1
    /// again, and a later `COMMIT` is "no transaction is active".
    pub fn abort_transaction(&mut self, rt: &'static Runtime, e: Error) -> Error {
        let Some(tx) = self.tx.take() else {
            return e;
        };
        if let Some(conn) = self.lease.as_mut().and_then(|l| l.conn()) {
            conn.drop_in_flight();
            let _ = conn.batch("ROLLBACK");
        }
        if tx.changed_schema {
            rt.schema_changed();
        }
        self.release_if_idle();
        let mut e = e;
        e.message = format!("{} (the transaction was rolled back)", e.message);
        e
    }

    fn savepoint_index(&self, name: &str) -> Result<usize> {
        let wanted = name.to_ascii_lowercase();
        self.tx
            .as_ref()
            .and_then(|tx| tx.savepoints.iter().rposition(|s| *s == wanted))
            .ok_or_else(|| Error::sql(format!("no such savepoint: {name}")))
    }

    fn begin(
        &mut self,
        db: &RoutedDb,
        rt: &'static Runtime,
        savepoint: Option<&str>,
    ) -> Result<()> {
        self.put_aside_active()?;
        // The connection is taken now (an exhausted pool or a server that
        // is down shows here, as SQLite's BEGIN fails); a plain BEGIN
        // itself waits for the first statement.
        let result = self.conn(db, rt).and_then(|conn| match savepoint {
            Some(name) => conn.batch(&format!("BEGIN; SAVEPOINT {}", quote_ident(name))),
            None => Ok(()),
        });
        if let Err(e) = result {
            self.release_if_idle();
            return Err(e);
        }
        self.tx = Some(Tx {
            savepoints: savepoint
                .map(|s| vec![s.to_ascii_lowercase()])
                .unwrap_or_default(),
            began_with_savepoint: savepoint.is_some(),
            begin_pending: savepoint.is_none(),
            ..Tx::default()
        });
        Ok(())
    }

    /// COMMIT or ROLLBACK, then give the connection back. Results still
    /// being read are put aside first (SQLite lets them be read on). A
    /// COMMIT of a transaction PostgreSQL aborted is refused loudly: it
    /// would silently roll back.
    fn end(&mut self, db: &RoutedDb, rt: &'static Runtime, commit: bool) -> Result<()> {
        self.put_aside_active()?;
        // With writes in flight, a COMMIT goes out behind them and one
        // wait reads every answer, its own last (PostgreSQL answers a
        // COMMIT after a failed write with a rollback).
        let in_flight = self
            .lease
            .as_mut()
            .and_then(|l| l.conn())
            .map_or(0, |c| c.in_flight());
        let commit_sent = commit
            && in_flight > 0
            && self
                .tx
                .as_ref()
                .is_some_and(|tx| !tx.aborted && !tx.begin_pending);
        if commit_sent {
            let sent = self
                .lease
                .as_mut()
                .and_then(|l| l.conn())
                .ok_or_else(lost)
                .and_then(|c| c.send_batch("COMMIT"));
            if let Err(e) = sent {
                return Err(self.abort_transaction(rt, e));
            }
        }
        // The writes in flight are answered first. Before a COMMIT, one
        // that failed is the COMMIT's error (the transaction is rolled
        // back); before a ROLLBACK it does not matter.
        if let Err(e) = self.settle(rt) {
            return if commit { Err(e) } else { Ok(()) };
        }
        let tx = self.tx.take().unwrap();
        let aborted = tx.aborted;
        let result = if commit_sent {
            Ok(())
        } else if tx.begin_pending {
            // Nothing was sent: there is nothing to end.
            Ok(())
        } else if commit && aborted {
            let _ = self.conn(db, rt).map(|c| c.batch("ROLLBACK"));
            Err(Error::sql(
                "cannot commit: an earlier statement of this transaction failed and PostgreSQL rolled the transaction back",
            ))
        } else {
            self.conn(db, rt)
                .and_then(|c| c.batch(if commit { "COMMIT" } else { "ROLLBACK" }))
        };
        if tx.changed_schema && (!commit || result.is_err()) {
            rt.schema_changed();
        }
        self.release_if_idle();
        result
    }
}

/// A pipelined write's error, surfacing at a later call.
fn earlier_write(mut e: Error) -> Error {
    e.message = format!("an earlier write of this transaction failed: {}", e.message);
    e
}

fn lost() -> Error {
    Error::new(SQLITE_IOERR, "the connection to PostgreSQL was lost")
}

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL row as SQLite values; with a hidden rowid column, that
/// column's value separately.
pub fn convert_row(
    row: &tokio_postgres::Row,
    shape: Shape,
) -> Result<(Vec<RowValue>, Option<i64>)> {
    let n = row.len();
    let visible = if shape.hidden_rowid {
        n.saturating_sub(1)
    } else {
        n
    };
    let mut values = Vec::with_capacity(visible);
    for i in 0..visible {
        let crate::pg::types::Column(cell) =
            row.try_get(i).map_err(|e| crate::error::from_pg(&e))?;
        values.push(RowValue::new(cell));
    }
    let rowid = if shape.hidden_rowid && n > 0 {
        let crate::pg::types::Column(cell) =
            row.try_get(n - 1).map_err(|e| crate::error::from_pg(&e))?;
        match cell {
            Cell::Integer(i) => Some(i),
            _ => None,
        }
    } else {
        None
    };
    Ok((values, rowid))
}

/// The runtime, which exists whenever a routed database does.
pub fn rt() -> &'static Runtime {
    runtime::get().expect("a routed database exists, so the runtime does")
}
