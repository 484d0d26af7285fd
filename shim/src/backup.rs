//! `sqlite3_backup_*` from a routed database: the library, read from
//! PostgreSQL in one snapshot, written into a real SQLite database (usually
//! the file Plex's scheduled "Backup database" task opened) as a copy that
//! SQLite and Plex open as their own.
//!
//! Owns the backup object the shim hands out for a routed source, and the
//! copy itself. What the copy holds, in one transaction on the destination:
//!
//! 1. whatever the destination's `main` schema held is dropped (a backup
//!    replaces the destination, as SQLite's does);
//! 2. every table from `sqlite_master`'s text (Plex's own schema text, as
//!    the catalog keeps it), then its rows streamed from PostgreSQL (binary
//!    results turned into SQLite's classes exactly as the shim answers a
//!    `SELECT`: REALs bit for bit, BLOBs, NULLs), one row in memory at a
//!    time;
//! 3. `sqlite_sequence` as PostgreSQL's sequences have it;
//! 4. views, indexes, triggers; FTS tables with an external content table
//!    rebuilt; `user_version` and `application_id`.
//!
//! The snapshot is a `REPEATABLE READ, READ ONLY` transaction on a
//! connection of its own, or, when the source handle is inside a
//! transaction, that transaction (under a savepoint, so a failure leaves it
//! usable). `step` does all the work in its first call and returns
//! `SQLITE_DONE`, which SQLite's contract allows. Errors come back as
//! SQLite codes, with the message on the destination handle.

use crate::connection::{quote_ident, RoutedDb};
use crate::error::{Error, Result};
use crate::pg::types::{Column, Param};
use crate::pg::PgConn;
use crate::real;
use crate::row::Cell;
use crate::runtime::Runtime;
use crate::sys::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::RowStream;

/// Marks a [`Backup`] (two words no real `sqlite3_backup` starts with: its
/// first word is a pointer, and these are not canonical addresses).
const MAGIC: [u64; 2] = [0x706c_6578_2d62_6b75, 0x9e37_79b9_7f4a_7c15];

/// The shim's unfinished backups, for `sqlite3_close`: source and
/// destination handle addresses by slot (0: free). Lock-free, so a
/// `fork()` can never find it held; a backup that finds no free slot is
/// simply not tracked (the close checks then miss it, as before).
const SLOTS: usize = 64;
static SOURCES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static DESTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// How many slots are taken (closes skip the scan when none is).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether `handle` is the source of an unfinished shim backup.
pub fn is_source(handle: *mut sqlite3) -> bool {
    LIVE.load(Ordering::Acquire) > 0
        && SOURCES
            .iter()
            .any(|s| s.load(Ordering::Acquire) == handle as usize)
}

/// Whether `handle` is the destination of an unfinished shim backup.
pub fn is_dest(handle: *mut sqlite3) -> bool {
    LIVE.load(Ordering::Acquire) > 0
        && DESTS
            .iter()
            .any(|s| s.load(Ordering::Acquire) == handle as usize)
}

/// The destination `handle` is being closed (`sqlite3_close_v2`) under an
/// unfinished backup: the backup must not touch it again.
pub fn dest_closed(handle: *mut sqlite3) {
    if LIVE.load(Ordering::Acquire) == 0 {
        return;
    }
    for s in &DESTS {
        let _ = s.compare_exchange(handle as usize, 1, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// How far a backup got.
enum Progress {
    NotStarted,
    Done,
    Failed(Error),
}

/// The object `sqlite3_backup_init` returns for a routed source.
#[repr(C)]
pub struct Backup {
    magic: [u64; 2],
    dest: *mut sqlite3,
    source: Arc<RoutedDb>,
    rt: &'static Runtime,
    progress: Progress,
    pagecount: c_int,
    /// Its slot in `SOURCES`/`DESTS`, if it got one.
    slot: Option<usize>,
}

impl Backup {
    pub fn new(dest: *mut sqlite3, source: Arc<RoutedDb>, rt: &'static Runtime) -> Box<Backup> {
        let slot = (0..SLOTS).find(|&i| {
            SOURCES[i]
                .compare_exchange(
                    0,
                    source.handle as usize,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        });
        if let Some(i) = slot {
            DESTS[i].store(dest as usize, Ordering::Release);
            LIVE.fetch_add(1, Ordering::AcqRel);
        }
        Box::new(Backup {
            magic: MAGIC,
            dest,
            source,
            rt,
            progress: Progress::NotStarted,
            pagecount: 0,
            slot,
        })
    }

    /// The destination was closed under this backup (a misuse SQLite
    /// answers with SQLITE_MISUSE too): it must not be touched.
    fn dest_gone(&self) -> bool {
        self.slot
            .is_some_and(|i| DESTS[i].load(Ordering::Acquire) != self.dest as usize)
    }

    /// Whether `p` (a `sqlite3_backup*` a client passes) is one of ours.
    ///
    /// # Safety
    /// `p` must be null or a live backup object (ours or the real
    /// SQLite's, which is larger than two words).
    pub unsafe fn is_ours(p: *mut c_void) -> bool {
        // SAFETY: this function's `# Safety` contract, which the caller
        // keeps, is what the calls below rely on.
        unsafe { !p.is_null() && *(p as *const [u64; 2]) == MAGIC }
    }

    /// `sqlite3_backup_step`.
    pub fn step(&mut self, pages: c_int) -> c_int {
        if self.dest_gone() {
            return SQLITE_MISUSE;
        }
        match &self.progress {
            Progress::Done => return SQLITE_DONE,
            Progress::Failed(e) => return e.primary(),
            Progress::NotStarted if pages == 0 => return SQLITE_OK,
            Progress::NotStarted => {}
        }
        match self.copy() {
            Ok(()) => {
                self.progress = Progress::Done;
                SQLITE_DONE
            }
            Err(e) if e.primary() == SQLITE_BUSY => {
                // The destination is locked: the caller may step again.
                // SAFETY: the destination outlives its backup.
                unsafe { set_dest_error(self.dest, &e) };
                SQLITE_BUSY
            }
            Err(e) => {
                tracing::error!(
                    "backup of {} (schema {}) failed: {}",
                    self.source.path,
                    self.source.schema,
                    e.message
                );
                // SAFETY: the destination outlives its backup.
                unsafe { set_dest_error(self.dest, &e) };
                let code = e.primary();
                self.progress = Progress::Failed(e);
                code
            }
        }
    }

    /// `sqlite3_backup_remaining`: nothing once done; before, the work is
    /// not known in pages (it is done in one step).
    pub fn remaining(&self) -> c_int {
        match self.progress {
            Progress::Done => 0,
            _ => self.pagecount,
        }
    }

    /// `sqlite3_backup_pagecount`: the destination's pages once done.
    pub fn pagecount(&self) -> c_int {
        self.pagecount
    }

    /// `sqlite3_backup_finish`: SQLITE_OK unless a step failed; the
    /// failure's message stays on the destination handle.
    pub fn finish(self) -> c_int {
        match &self.progress {
            Progress::Failed(_) if self.dest_gone() => SQLITE_MISUSE,
            Progress::Failed(e) => {
                // SAFETY: the destination outlives its backup (SQLite's rule).
                unsafe { set_dest_error(self.dest, e) };
                e.primary()
            }
            _ => SQLITE_OK,
        }
    }

    /// The whole copy.
    fn copy(&mut self) -> Result<()> {
        let started = Instant::now();
        let rt = self.rt;
        let db = self.source.clone();
        crate::fork::ensure_own_process()?;
        let dest = Dest(self.dest);
        // SAFETY: `dest` is the client's open handle, which the backup may
        // use until it finishes (`sqlite3_backup_init`'s contract).
        if unsafe { real::sqlite3_get_autocommit(self.dest) } == 0 {
            return Err(Error::sql("destination database is in use"));
        }
        dest.exec("BEGIN IMMEDIATE")?;
        let result = {
            let mut st = db.state.lock();
            st.forget_if_inherited(rt);
            if st.tx.is_some() {
                // The handle's own transaction is the snapshot.
                if st.tx.as_ref().is_some_and(|t| t.aborted) {
                    Err(Error::sql(
                        "cannot back up: an earlier statement of the source's transaction failed and PostgreSQL rolled the transaction back",
                    ))
                } else {
                    st.put_aside_active()
                        .and_then(|_| st.conn(&db, rt))
                        .and_then(|conn| in_savepoint(conn, rt, &dest))
                }
            } else {
                drop(st);
                let mut lease = rt.pool.acquire(db.schema_id, &db.schema)?;
                let conn = lease
                    .conn()
                    .ok_or_else(|| Error::new(SQLITE_IOERR, "pool lease is stale"))?;
                rt.ensure_schema(db.schema_id, conn)?;
                in_snapshot(conn, rt, &dest)
            }
        };
        match result {
            Ok(stats) => {
                dest.exec("COMMIT")?;
                self.pagecount = dest
                    .query_one("PRAGMA main.page_count")?
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    "backup of {} (schema {}): {} tables, {} rows, {} pages written in {secs:.1} s ({:.0} rows/s)",
                    db.path,
                    db.schema,
                    stats.tables,
                    stats.rows,
                    self.pagecount,
                    stats.rows as f64 / secs.max(1e-6)
                );
                Ok(())
            }
            Err(e) => {
                let _ = dest.exec("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl Drop for Backup {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            DESTS[i].store(0, Ordering::Release);
            SOURCES[i].store(0, Ordering::Release);
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a copy wrote.
#[derive(Default)]
struct Stats {
    tables: usize,
    rows: u64,
}

/// The copy in a snapshot of its own (a connection outside any
/// transaction).
fn in_snapshot(conn: &mut PgConn, rt: &'static Runtime, dest: &Dest) -> Result<Stats> {
    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    let result = write_copy(conn, rt, dest);
    let end = conn.batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let stats = result?;
    end?;
    Ok(stats)
}

/// The copy inside the source handle's transaction, under a savepoint.
fn in_savepoint(conn: &mut PgConn, rt: &'static Runtime, dest: &Dest) -> Result<Stats> {
    conn.batch("SAVEPOINT plex_pg_backup")?;
    let result = write_copy(conn, rt, dest);
    if result.is_err() {
        let _ = conn.batch("ROLLBACK TO SAVEPOINT plex_pg_backup");
    }
    conn.batch("RELEASE SAVEPOINT plex_pg_backup")?;
    result
}

/// A table whose rows are copied.
struct Table {
    name: String,
    pg: String,
    /// PostgreSQL's column and the SQLite column it fills.
    columns: Vec<(String, String)>,
}

/// Text of column `i` of a catalog row.
fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

fn write_copy(conn: &mut PgConn, rt: &'static Runtime, dest: &Dest) -> Result<Stats> {
    let epoch = rt.epoch();
    let cache = rt.pool.settings().statement_cache as usize;
    clear(dest)?;
    let objects = conn.query_text(
        "SELECT type, name, sql FROM sqlite_master ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, rootpage",
        &[],
        epoch,
        cache,
    )?;
    let mut tables = Vec::new();
    let mut rebuild = Vec::new();
    for o in &objects {
        let (kind, name, sql) = (text(o, 0), text(o, 1), text(o, 2));
        if kind != "table" || name.eq_ignore_ascii_case("sqlite_sequence") || sql.is_empty() {
            continue;
        }
        dest.exec(&sql).map_err(|e| {
            Error::new(e.code, format!(
                "creating table {name} in the backup: {} (a table of Plex's own SQLite modules, spellfix1 or the collating tokenizer, needs Plex's SQLite: set PLEX_PG_REAL_SQLITE to a glibc build of it)",
                e.message
            ))
        })?;
        let upper = sql.to_ascii_uppercase();
        let is_virtual = upper.starts_with("CREATE VIRTUAL TABLE");
        let fts = is_virtual && upper.contains("USING FTS");
        if fts && upper.contains("CONTENT=") {
            rebuild.push(name);
            continue;
        }
        if is_virtual && !fts && !upper.contains("USING RTREE") {
            return Err(Error::sql(format!(
                "table {name}: backing up the rows of this virtual table is not supported ({sql})"
            )));
        }
        tables.push(describe(conn, epoch, cache, dest, &name, fts)?);
    }
    let mut stats = Stats::default();
    for t in &tables {
        stats.rows += copy_rows(conn, dest, t)?;
        stats.tables += 1;
    }
    // sqlite_sequence as PostgreSQL's sequences have it (inserting rows
    // with their ids moved SQLite's to the largest id, which may be less).
    let seqs = conn.query_text("SELECT name, seq FROM sqlite_sequence", &[], epoch, cache)?;
    if !seqs.is_empty() {
        let mut del = dest.prepare("DELETE FROM main.sqlite_sequence WHERE name = ?1")?;
        let mut ins =
            dest.prepare("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?1, ?2)")?;
        for r in &seqs {
            let name = text(r, 0);
            let seq: i64 = text(r, 1)
                .parse()
                .map_err(|_| Error::sql(format!("sqlite_sequence of {name}: not an integer")))?;
            let name = Cell::text(&name);
            del.bind(1, &name)?;
            del.run()?;
            ins.bind(1, &name)?;
            ins.bind(2, &Cell::Integer(seq))?;
            ins.run()?;
        }
    }
    for o in &objects {
        let (kind, name, sql) = (text(o, 0), text(o, 1), text(o, 2));
        if kind == "table" || sql.is_empty() {
            continue;
        }
        dest.exec(&sql).map_err(|e| {
            Error::new(
                e.code,
                format!("creating {kind} {name} in the backup: {}", e.message),
            )
        })?;
    }
    for fts in &rebuild {
        let q = quote_ident(fts);
        dest.exec(&format!("INSERT INTO {q}({q}) VALUES('rebuild')"))
            .map_err(|e| Error::new(e.code, format!("rebuilding {fts}: {}", e.message)))?;
    }
    for pragma in ["user_version", "application_id"] {
        let v = conn
            .query_text(
                "SELECT value FROM sqlite__pragma WHERE name = $1",
                &[pragma],
                epoch,
                cache,
            )
            .ok()
            .and_then(|rows| rows.first().map(|r| text(r, 0)))
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(v) = v {
            dest.exec(&format!("PRAGMA main.{pragma} = {v}"))?;
        }
    }
    Ok(stats)
}

/// Empty the destination's `main` schema (a backup replaces it).
fn clear(dest: &Dest) -> Result<()> {
    loop {
        let next = {
            let mut st = dest.prepare(
                "SELECT type, name FROM main.sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' LIMIT 1",
            )?;
            if st.step()? {
                Some((
                    st.column_text(0).unwrap_or_default(),
                    st.column_text(1).unwrap_or_default(),
                ))
            } else {
                None
            }
        };
        let Some((kind, name)) = next else { break };
        let what = if kind == "view" { "VIEW" } else { "TABLE" };
        dest.exec(&format!(
            "DROP {what} IF EXISTS main.{}",
            quote_ident(&name)
        ))?;
    }
    if dest
        .query_one("SELECT 1 FROM main.sqlite_master WHERE name = 'sqlite_sequence'")?
        .is_some()
    {
        dest.exec("DELETE FROM main.sqlite_sequence")?;
    }
    Ok(())
}

/// A table's PostgreSQL columns matched with the new SQLite table's.
fn describe(
    conn: &mut PgConn,
    epoch: u64,
    cache: usize,
    dest: &Dest,
    name: &str,
    fts: bool,
) -> Result<Table> {
    let pg = conn
        .query_text(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
             WHERE c.relkind = 'r' AND sqlite_object_name(obj_description(c.oid, 'pg_class')) = $1",
            &[name],
            epoch,
            cache,
        )?
        .first()
        .map(|r| text(r, 0))
        .ok_or_else(|| Error::sql(format!("table {name} of sqlite_master not found in PostgreSQL")))?;
    let pg_columns = conn.query_text(
        "SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass \
         AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attname NOT LIKE 'sqlite\\_\\_%' ORDER BY a.attnum",
        &[&pg],
        epoch,
        cache,
    )?;
    // An FTS table's rowid is its hidden docid, PostgreSQL's first column.
    let mut sqlite_columns: Vec<String> = if fts { vec!["docid".into()] } else { vec![] };
    let mut info = dest.prepare(&format!("PRAGMA main.table_info({})", quote_ident(name)))?;
    while info.step()? {
        sqlite_columns.push(info.column_text(1).unwrap_or_default());
    }
    if sqlite_columns.len() != pg_columns.len() {
        return Err(Error::sql(format!(
            "table {name}: {} columns in PostgreSQL, {} in its SQLite text",
            pg_columns.len(),
            sqlite_columns.len()
        )));
    }
    Ok(Table {
        name: name.to_string(),
        pg,
        columns: pg_columns
            .iter()
            .map(|r| text(r, 0))
            .zip(sqlite_columns)
            .collect(),
    })
}

/// Stream a table's rows from PostgreSQL into the destination; how many.
fn copy_rows(conn: &mut PgConn, dest: &Dest, t: &Table) -> Result<u64> {
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.0)).collect();
    let select = format!("SELECT {} FROM {}", cols.join(", "), quote_ident(&t.pg));
    let names: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.1)).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let mut ins = dest.prepare(&format!(
        "INSERT INTO main.{} ({}) VALUES ({})",
        quote_ident(&t.name),
        names.join(", "),
        marks.join(", ")
    ))?;
    let mut rows: Pin<Box<RowStream>> = {
        let (client, mut d) = conn.parts();
        let none: [Param<'_>; 0] = [];
        Box::pin(d.run(client.query_raw(select.as_str(), none.iter()))?)
    };
    let mut n = 0u64;
    let mut cells: Vec<Cell> = Vec::with_capacity(t.columns.len());
    while let Some(row) = conn.next_row(&mut rows)? {
        cells.clear();
        for i in 0..t.columns.len() {
            let Column(cell) = row
                .try_get::<_, Column>(i)
                .map_err(|e| crate::error::from_pg(&e))?;
            cells.push(cell);
        }
        // The bindings are SQLITE_STATIC: `cells` outlives the run.
        for (i, cell) in cells.iter().enumerate() {
            ins.bind(i as c_int + 1, cell)?;
        }
        ins.run()
            .map_err(|e| Error::new(e.code, format!("writing {}: {}", t.name, e.message)))?;
        n += 1;
    }
    Ok(n)
}

/// The destination: a real SQLite handle.
struct Dest(*mut sqlite3);

impl Dest {
    fn error(&self) -> Error {
        // SAFETY: a live handle; errmsg is a C string owned by SQLite.
        unsafe {
            let code = real::sqlite3_extended_errcode(self.0);
            let msg = real::sqlite3_errmsg(self.0);
            let msg = if msg.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            };
            Error::new(
                if code == SQLITE_OK {
                    SQLITE_ERROR
                } else {
                    code
                },
                msg,
            )
        }
    }

    fn exec(&self, sql: &str) -> Result<()> {
        let c = CString::new(sql).map_err(|_| Error::sql("a NUL in SQL text"))?;
        // SAFETY: a live handle and a C string.
        let rc = unsafe {
            real::sqlite3_exec(
                self.0,
                c.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn prepare(&self, sql: &str) -> Result<DestStmt<'_>> {
        let c = CString::new(sql).map_err(|_| Error::sql("a NUL in SQL text"))?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: a live handle, a C string, an out pointer.
        let rc = unsafe {
            real::sqlite3_prepare_v2(self.0, c.as_ptr(), -1, &mut stmt, std::ptr::null_mut())
        };
        if rc != SQLITE_OK || stmt.is_null() {
            return Err(self.error());
        }
        Ok(DestStmt { db: self, stmt })
    }

    /// The first column of the first row, as text.
    fn query_one(&self, sql: &str) -> Result<Option<String>> {
        let mut st = self.prepare(sql)?;
        Ok(if st.step()? { st.column_text(0) } else { None })
    }
}

/// A statement on the destination, finalized when dropped.
struct DestStmt<'d> {
    db: &'d Dest,
    stmt: *mut sqlite3_stmt,
}

impl DestStmt<'_> {
    /// Bind `cell` without a copy (`SQLITE_STATIC`): the caller runs the
    /// statement before the cell goes away.
    fn bind(&mut self, i: c_int, cell: &Cell) -> Result<()> {
        // SAFETY: a live statement; pointers valid for the lengths given.
        let rc = unsafe {
            match cell {
                Cell::Null => real::sqlite3_bind_null(self.stmt, i),
                Cell::Integer(v) => real::sqlite3_bind_int64(self.stmt, i, *v),
                Cell::Real(v) => real::sqlite3_bind_double(self.stmt, i, *v),
                // Text and blobs carry a NUL after their bytes.
                Cell::Text(b) => real::sqlite3_bind_text64(
                    self.stmt,
                    i,
                    b.as_ptr().cast::<c_char>(),
                    (b.len() - 1) as u64,
                    None,
                    1, // SQLITE_UTF8
                ),
                Cell::Blob(b) => real::sqlite3_bind_blob64(
                    self.stmt,
                    i,
                    b.as_ptr().cast::<c_void>(),
                    (b.len() - 1) as u64,
                    None,
                ),
            }
        };
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.db.error())
        }
    }

    /// One step: true for a row.
    fn step(&mut self) -> Result<bool> {
        // SAFETY: a live statement.
        match unsafe { real::sqlite3_step(self.stmt) } {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            _ => {
                let e = self.db.error();
                // SAFETY: as above.
                unsafe { real::sqlite3_reset(self.stmt) };
                Err(e)
            }
        }
    }

    /// Step to the end, then reset for the next run.
    fn run(&mut self) -> Result<()> {
        while self.step()? {}
        // SAFETY: a live statement.
        unsafe { real::sqlite3_reset(self.stmt) };
        Ok(())
    }

    fn column_text(&self, i: c_int) -> Option<String> {
        // SAFETY: a live statement on a row; the text is a C string.
        unsafe {
            let p = real::sqlite3_column_text(self.stmt, i);
            (!p.is_null()).then(|| CStr::from_ptr(p.cast()).to_string_lossy().into_owned())
        }
    }
}

impl Drop for DestStmt<'_> {
    fn drop(&mut self) {
        // SAFETY: ours, finalized once.
        unsafe { real::sqlite3_finalize(self.stmt) };
    }
}

/// Leave `e` as the error of a real SQLite handle, so `sqlite3_errcode` and
/// `sqlite3_errmsg` on it tell what happened: SQLite has no call to set a
/// handle's error, so a function made for the moment raises it.
///
/// # Safety
/// `dest` must be a live handle of the real SQLite.
pub unsafe fn set_dest_error(dest: *mut sqlite3, e: &Error) {
    /// # Safety
    /// Only as the SQL function registered below: SQLite's context and two
    /// argument values.
    unsafe extern "C" fn raise(ctx: *mut c_void, _argc: c_int, argv: *mut *mut sqlite3_value) {
        // SAFETY: SQLite passes two arguments (declared so below).
        unsafe {
            let msg = real::sqlite3_value_text(*argv);
            let code = real::sqlite3_value_int(*argv.add(1));
            real::sqlite3_result_error(ctx, msg.cast(), -1);
            real::sqlite3_result_error_code(ctx, code);
        }
    }
    const NAME: &CStr = c"plex_pg_backup_error";
    let d = Dest(dest);
    // SAFETY: a live handle; the function is removed again at once.
    unsafe {
        if real::sqlite3_create_function_v2(
            dest,
            NAME.as_ptr(),
            2,
            1,
            std::ptr::null_mut(),
            Some(raise),
            None,
            None,
            None,
        ) != SQLITE_OK
        {
            return;
        }
        if let Ok(mut st) = d.prepare("SELECT plex_pg_backup_error(?1, ?2)") {
            let msg = Cell::text(&e.message.replace('\0', " "));
            let _ = st.bind(1, &msg);
            let _ = st.bind(2, &Cell::Integer(e.code as i64));
            let _ = st.step();
            drop(st);
        }
        // The message stays with the handle: removing the function does
        // not touch it.
        real::sqlite3_create_function_v2(
            dest,
            NAME.as_ptr(),
            2,
            1,
            std::ptr::null_mut(),
            None,
            None,
            None,
            None,
        );
    }
}
