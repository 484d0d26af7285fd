//! The import: every routed SQLite file of a Databases folder into its
//! PostgreSQL schema, in one PostgreSQL transaction.
//!
//! 1. Refuse if Plex runs or another process holds a SQLite lock on a file.
//! 2. Open each file read-only and hold one read transaction on it (one
//!    consistent snapshot for every pass).
//! 3. In one PostgreSQL transaction: for each file, a staging schema, the
//!    shim's bootstrap, the tables through the shim's translator.
//! 4. Check every value against its PostgreSQL column and compute the
//!    SQLite side's checksums; any value that cannot be held stops the
//!    import here, before a row is loaded.
//! 5. Rowid sequences set, rows loaded with `COPY`, then views, indexes,
//!    triggers, FTS rebuilt, `PRAGMA user_version`/`application_id`.
//! 6. Every table read back and compared (rows, checksums); a difference
//!    stops the import.
//! 7. The staging schemas renamed into place, then one `COMMIT`.
//!
//! Anything that stops it (an error, a kill, PostgreSQL restarting) before
//! the commit leaves PostgreSQL as it was: nothing of the import was ever
//! visible.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use plex_pg_config::Settings;
use postgres::Transaction;

use crate::pg::{self, ident, literal};
use crate::plan::{self, Object};
use crate::sqlite::{self, Db, ValueRef};
use crate::value::{self, Checksum, Fit, Kind, Value};

/// What the command line asks for.
#[derive(Clone, Debug)]
pub struct Options {
    pub from: PathBuf,
    pub replace: bool,
    /// Leave the SQLite files under their names after the import.
    pub keep_files: bool,
}

/// What a library file is renamed to once its library lives in PostgreSQL.
pub const ASIDE_SUFFIX: &str = ".in-postgresql";

/// How the import ended, for the exit status.
#[derive(Debug)]
pub enum Failure {
    /// Refused before anything was written (in use, non-empty target, a
    /// value PostgreSQL cannot hold): the message says what to do.
    Refused(String),
    /// Stopped by an error or a failed verification; nothing was switched.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Failed(m) => f.write_str(m),
        }
    }
}

fn failed(m: impl Into<String>) -> Failure {
    Failure::Failed(m.into())
}

/// One PostgreSQL column to fill.
#[derive(Clone, Debug)]
struct Column {
    sqlite: String,
    pg: String,
    kind: Kind,
    declared: String,
}

/// One table with rows to copy.
struct Table {
    name: String,
    pg: String,
    columns: Vec<Column>,
    /// The SQLite query: a rowid to name rows by (or NULL), then the
    /// columns in order.
    select: String,
    /// The column (index into `columns`) that owns a sequence.
    sequence_column: Option<usize>,
    sequence: Option<String>,
    autoincrement: bool,
    checksum: Checksum,
    /// Largest value of the sequence column, and the largest below 2^63−1.
    max: Option<i64>,
    max_below_top: Option<i64>,
    converted: u64,
}

/// A file and the schema it goes to.
struct Library {
    file: PathBuf,
    target: String,
    staging: String,
    db: Db,
    plan: plan::Plan,
    tables: Vec<Table>,
    /// FTS tables refilled from their content table.
    rebuilt: Vec<(String, String)>,
}

/// Print a line now (progress goes to standard output, line by line).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The routed files of `dir`, the main library first.
fn routed_files(settings: &Settings, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| settings.routes(n))
        })
        .collect();
    files.sort_by_key(|p| {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        (name != "com.plexapp.plugins.library.db", name)
    });
    if files.is_empty() {
        let aside = dir.join(format!("com.plexapp.plugins.library.db{ASIDE_SUFFIX}"));
        if aside.exists() {
            return Err(format!(
                "{} was imported already (renamed to {}); to import it again, rename it (and its -wal, -shm) back and make it writable, then run the import with --replace",
                dir.display(),
                aside.display()
            ));
        }
        return Err(format!(
            "{} holds no library database (no file matches shim.route: {}); give Plex's \"Plug-in Support/Databases\" folder",
            dir.display(),
            settings.shim.route.join(", ")
        ));
    }
    Ok(files)
}

/// A staging schema name for `target` (PostgreSQL's 63-byte limit kept).
fn staging_name(target: &str) -> String {
    let mut base: String = target.chars().take(40).collect();
    base.push_str("__plexpg_import");
    base
}

/// Run the import. Progress and the verification table go to standard
/// output.
pub fn run(settings: &Settings, options: &Options) -> Result<(), Failure> {
    let started = Instant::now();
    let files = routed_files(settings, &options.from).map_err(Failure::Refused)?;
    for f in &files {
        if let Some(why) = crate::inuse::in_use(f) {
            return Err(Failure::Refused(why));
        }
    }
    let mut libraries = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let target = settings.schema_for(&name);
        let db = Db::open_readonly(&file).map_err(Failure::Refused)?;
        // One snapshot for every pass over this file.
        db.exec("BEGIN").map_err(failed)?;
        let plan = plan::read(&db).map_err(|e| failed(format!("{}: {e}", file.display())))?;
        libraries.push(Library {
            file,
            staging: staging_name(&target),
            target,
            db,
            plan,
            tables: Vec::new(),
            rebuilt: Vec::new(),
        });
    }

    let mut client = pg::connect(settings).map_err(Failure::Refused)?;
    let mut tx = client.transaction().map_err(|e| failed(pg::chain(&e)))?;
    tx.batch_execute(
        "SET LOCAL bytea_output = hex; SET LOCAL extra_float_digits = 1; SET LOCAL client_encoding = 'UTF8'",
    )
    .map_err(|e| failed(pg::chain(&e)))?;

    // Refusals first: another import, a non-empty target.
    let mut replaced = Vec::new();
    for lib in &libraries {
        // An import killed a moment ago may still hold it until its server
        // process notices: wait a little, then refuse.
        let got = tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '15s'; SELECT pg_advisory_xact_lock(hashtext({})); SET LOCAL lock_timeout = 0",
            literal(&format!("plex-pg import {}", lib.target))
        ));
        if let Err(e) = got {
            return Err(Failure::Refused(format!(
                "another import into schema {} is running ({}); wait for it to finish",
                lib.target,
                pg::chain(&e)
            )));
        }
        let tables = target_tables(&mut tx, &lib.target).map_err(failed)?;
        if tables > 0 && !options.replace {
            return Err(Failure::Refused(format!(
                "schema {} already holds a library ({tables} tables); nothing was changed. \
                 To replace it, run the import again with --replace (the library there is kept aside as a schema of its own, named in the output), \
                 or point postgres.schema at another schema",
                lib.target
            )));
        }
        if tables > 0 {
            replaced.push(lib.target.clone());
        }
    }

    for lib in &mut libraries {
        say(&format!("{} → schema {}", lib.file.display(), lib.target));
        build_schema(&mut tx, lib)?;
    }
    // One pass over every table: each value checked against its column
    // and added to the SQLite side's checksums as it goes to `COPY`. A
    // value PostgreSQL cannot hold stops the copying (the rest is still
    // checked, so every such value is counted) and refuses the import
    // before anything is switched: the staging schemas roll back.
    let loading = Instant::now();
    let mut refusals = Refusals::default();
    let mut loaded = Vec::new();
    for lib in &mut libraries {
        load(&mut tx, lib, &mut refusals, &mut loaded)?;
    }
    if refusals.count > 0 {
        let mut msg = format!(
            "{} value(s) cannot be held by their PostgreSQL column; nothing was imported:\n",
            refusals.count
        );
        for r in &refusals.first {
            msg.push_str("  ");
            msg.push_str(r);
            msg.push('\n');
        }
        if refusals.count > refusals.first.len() as u64 {
            msg.push_str(&format!(
                "  … and {} more\n",
                refusals.count - refusals.first.len() as u64
            ));
        }
        msg.push_str(
            "SQLite keeps any value in any column; a PostgreSQL column holds one type, and the import never changes a value silently. \
             Way forward: with Plex stopped, correct each value in the SQLite file (for example with Plex's own SQLite tool: \
             UPDATE <table> SET <column> = <a value of the column's type, or NULL> WHERE rowid = <rowid>), keep a copy of the file first, \
             then run the import again.",
        );
        return Err(Failure::Refused(msg));
    }
    for line in &loaded {
        say(line);
    }
    let checked: u64 = libraries
        .iter()
        .flat_map(|l| l.tables.iter())
        .map(|t| t.checksum.rows)
        .sum();
    say(&format!(
        "checked {checked} rows against their PostgreSQL columns and loaded them in {:.2} s",
        loading.elapsed().as_secs_f64()
    ));
    for lib in &mut libraries {
        finish_schema(&mut tx, lib)?;
    }
    let mut all_ok = true;
    let verifying = Instant::now();
    for lib in &mut libraries {
        all_ok &= verify(&mut tx, lib)?;
    }
    say(&format!(
        "read back and compared in {:.2} s",
        verifying.elapsed().as_secs_f64()
    ));
    if !all_ok {
        return Err(failed(
            "verification found differences (above); nothing was switched, PostgreSQL is as it was",
        ));
    }
    // The switch: in this same transaction.
    tx.batch_execute("SET LOCAL lock_timeout = '60s'")
        .map_err(|e| failed(pg::chain(&e)))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for lib in &libraries {
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(hashtext({}))",
            literal(&format!("plex-pg schema {}", lib.target))
        ))
        .map_err(|e| failed(pg::chain(&e)))?;
        let exists = pg::scalar(
            &mut tx,
            &format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = {}",
                literal(&lib.target)
            ),
        )
        .map_err(failed)?;
        if exists.as_deref() == Some("1") {
            if replaced.contains(&lib.target) {
                let aside: String = lib.target.chars().take(40).collect();
                let aside = format!("{aside}_replaced_{stamp}");
                tx.batch_execute(&format!(
                    "ALTER SCHEMA {} RENAME TO {}",
                    ident(&lib.target),
                    ident(&aside)
                ))
                .map_err(|e| failed(pg::chain(&e)))?;
                say(&format!(
                    "the library that was in schema {} is kept as schema {aside} (drop it with DROP SCHEMA {aside} CASCADE once you no longer need it)",
                    lib.target
                ));
            } else {
                // Only the shim's helpers, no table: nothing to keep.
                tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(&lib.target)))
                    .map_err(|e| failed(pg::chain(&e)))?;
            }
        }
        tx.batch_execute(&format!(
            "ALTER SCHEMA {} RENAME TO {}",
            ident(&lib.staging),
            ident(&lib.target)
        ))
        .map_err(|e| failed(pg::chain(&e)))?;
    }
    if std::env::var_os("PLEX_PG_IMPORT_PAUSE_BEFORE_COMMIT").is_some() {
        // For tests: a window in which to kill the import just before it commits.
        say("pausing before the commit");
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
    tx.commit()
        .map_err(|e| failed(format!("the final commit failed: {}", pg::chain(&e))))?;
    let rows: u64 = libraries
        .iter()
        .flat_map(|l| l.tables.iter())
        .map(|t| t.checksum.rows)
        .sum();
    say(&format!(
        "import complete: {rows} rows verified and switched in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let files: Vec<PathBuf> = libraries.iter().map(|l| l.file.clone()).collect();
    // Close the files before they are renamed.
    drop(libraries);
    if !options.keep_files {
        for f in &files {
            set_aside(f);
        }
    }
    say("next: put the launcher in front of Plex with plex-pg-launcher enable, then restart Plex (systemctl restart plexmediaserver); plex-pg-launcher check shows where the library is (docs/migration.md, \"Switch\")");
    Ok(())
}

/// No split brain: the library now lives in PostgreSQL, so its SQLite
/// files are renamed (with their `-wal` and `-shm`) to a name that says so
/// and made read-only. A program started without the shim, Plex's SQLite
/// tool or a repair script then does not find a stale library to write
/// to. `export` writes real files back. A failure here is reported, not
/// fatal: the import is committed.
fn set_aside(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut from = file.as_os_str().to_owned();
        from.push(suffix);
        let from = PathBuf::from(from);
        if !from.exists() {
            continue;
        }
        let mut to = file.as_os_str().to_owned();
        to.push(ASIDE_SUFFIX);
        to.push(suffix);
        let to = PathBuf::from(to);
        let done = std::fs::rename(&from, &to)
            .and_then(|_| std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o444)));
        match done {
            Ok(()) if suffix.is_empty() => say(&format!(
                "{} renamed to {} (read-only): the library now lives in PostgreSQL",
                from.display(),
                to.display()
            )),
            Ok(()) => {}
            Err(e) => say(&format!(
                "warning: cannot rename {} to {} ({e}); rename it yourself, so that nothing started without the shim writes to a stale library",
                from.display(),
                to.display()
            )),
        }
    }
}

/// Tables of a library in `schema` (the shim's helper table aside).
fn target_tables(tx: &mut Transaction<'_>, schema: &str) -> Result<u64, String> {
    Ok(pg::scalar(
        tx,
        &format!(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = {} AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'sqlite\\_\\_%'",
            literal(schema)
        ),
    )?
    .and_then(|s| s.parse().ok())
    .unwrap_or(0))
}

/// The staging schema, its helpers, and every table through the translator.
fn build_schema(tx: &mut Transaction<'_>, lib: &mut Library) -> Result<(), Failure> {
    let staging = lib.staging.clone();
    tx.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}; SET LOCAL search_path = {s}",
        s = ident(&staging)
    ))
    .map_err(|e| failed(pg::chain(&e)))?;
    pg::bootstrap(tx, &staging).map_err(failed)?;
    let objects = lib.plan.tables.clone();
    for o in &objects {
        pg::run_sqlite(tx, &staging, &o.sql)
            .map_err(|e| failed(format!("creating table {}: {e}\n  SQL: {}", o.name, o.sql)))?;
        if let Some(vt) = &o.virtual_table {
            if let Some(content) = &vt.content {
                lib.rebuilt.push((o.name.clone(), content.clone()));
                continue;
            }
        }
        let table = describe(tx, lib, o)?;
        lib.tables.push(table);
    }
    Ok(())
}

/// The translated table's columns, and the SQLite query that feeds them.
fn describe(tx: &mut Transaction<'_>, lib: &Library, o: &Object) -> Result<Table, Failure> {
    let found = pg::rows(
        tx,
        &format!(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
             WHERE c.relkind = 'r' AND lower(sqlite_object_name(obj_description(c.oid, 'pg_class'))) = lower({})",
            literal(&o.name)
        ),
    )
    .map_err(failed)?;
    let pg_name = found
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .ok_or_else(|| {
            failed(format!(
                "table {} was not found after its translation",
                o.name
            ))
        })?;
    let pg_columns = pg::rows(
        tx,
        &format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(split_part(col_description(a.attrelid, a.attnum), chr(31), 1), ''), \
             pg_get_serial_sequence({t}, a.attname), coalesce(obj_description(pg_get_serial_sequence({t}, a.attname)::regclass, 'pg_class'), '') \
             FROM pg_attribute a WHERE a.attrelid = {t}::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attgenerated = '' AND a.attname NOT LIKE 'sqlite\\_\\_%' ORDER BY a.attnum",
            t = literal(&ident(&pg_name))
        ),
    )
    .map_err(failed)?;
    // Where the rows are in the SQLite file, and its columns' names.
    let module = o.virtual_table.as_ref().map(|v| v.module.as_str());
    let (source, by_name) = match module {
        None => (o.name.clone(), false),
        Some("fts3") | Some("fts4") => (format!("{}_content", o.name), false),
        Some("spellfix1") => (format!("{}_vocab", o.name), true),
        Some(_) => (o.name.clone(), false),
    };
    let source_columns: Vec<String> = lib
        .db
        .query_text(&format!("PRAGMA table_info({})", sqlite::quote(&source)))
        .map_err(|e| failed(format!("reading the columns of {source}: {e}")))?
        .into_iter()
        .map(|r| r.get(1).cloned().flatten().unwrap_or_default())
        .collect();
    let mut columns = Vec::new();
    let mut sequence_column = None;
    let mut sequence = None;
    let mut autoincrement = false;
    for (i, r) in pg_columns.iter().enumerate() {
        let get = |k: usize| r.get(k).cloned().flatten().unwrap_or_default();
        let pg_type = get(1);
        let kind = Kind::from_pg(&pg_type).ok_or_else(|| {
            failed(format!(
                "table {}, column {}: PostgreSQL type {pg_type} is not known to the import",
                o.name,
                get(0)
            ))
        })?;
        let sqlite_col = if by_name {
            source_columns
                .iter()
                .find(|c| c.eq_ignore_ascii_case(&get(0)))
                .cloned()
                .unwrap_or_default()
        } else {
            source_columns.get(i).cloned().ok_or_else(|| {
                failed(format!(
                    "table {}: PostgreSQL has {} columns, SQLite's {source} has {}",
                    o.name,
                    pg_columns.len(),
                    source_columns.len()
                ))
            })?
        };
        if let Some(seq) = r.get(3).cloned().flatten() {
            sequence_column = Some(i);
            sequence = Some(seq);
            autoincrement = get(4) == "AUTOINCREMENT";
        }
        columns.push(Column {
            sqlite: sqlite_col,
            pg: get(0),
            kind,
            declared: get(2),
        });
    }
    if !by_name && source_columns.len() != columns.len() {
        return Err(failed(format!(
            "table {}: PostgreSQL has {} columns, SQLite's {source} has {}",
            o.name,
            columns.len(),
            source_columns.len()
        )));
    }
    let rowid = if o.without_rowid { "NULL" } else { "rowid" };
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            if c.sqlite.is_empty() {
                "NULL".to_string()
            } else {
                sqlite::quote(&c.sqlite)
            }
        })
        .collect();
    let select = format!(
        "SELECT {rowid}, {} FROM {}",
        list.join(", "),
        sqlite::quote(&source)
    );
    Ok(Table {
        name: o.name.clone(),
        pg: pg_name,
        checksum: Checksum::new(columns.len()),
        columns,
        select,
        sequence_column,
        sequence,
        autoincrement,
        max: None,
        max_below_top: None,
        converted: 0,
    })
}

/// Render a row's name for messages.
fn row_name(rowid: ValueRef<'_>) -> String {
    match rowid {
        ValueRef::Integer(i) => format!("rowid {i}"),
        _ => "a row (the table has no rowid)".into(),
    }
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(t.to_vec()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// `sqlite_sequence` of the file: table name (lowercase) → value.
fn sqlite_sequence(db: &Db) -> Result<Vec<(String, i64)>, String> {
    let exists =
        db.query_text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")?;
    if exists
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .as_deref()
        != Some("1")
    {
        return Ok(Vec::new());
    }
    Ok(db
        .query_text("SELECT name, seq FROM sqlite_sequence")?
        .into_iter()
        .filter_map(|r| {
            let name = r.first().cloned().flatten()?;
            let seq = r.get(1).cloned().flatten()?.parse().ok()?;
            Some((name.to_ascii_lowercase(), seq))
        })
        .collect())
}

/// Values PostgreSQL cannot hold, across every file: the first 20 named,
/// all counted.
#[derive(Default)]
struct Refusals {
    first: Vec<String>,
    count: u64,
}

/// What the reader learns of one table on its way through.
struct Read {
    checksum: Checksum,
    max: Option<i64>,
    max_below_top: Option<i64>,
    converted: u64,
}

/// From the SQLite reader to the `COPY` writer.
enum Msg {
    /// Table `i` has rows (about `total`): start its `COPY`.
    Begin(usize, u64),
    /// Encoded rows of the current table, `rows` so far.
    Chunk(Vec<u8>, u64),
    /// The current table is done: finish its `COPY` (its last chunk was
    /// sent), `rows` in all.
    End(u64),
}

/// The reader's error when the writer has stopped (its own error says why).
const WRITER_STOPPED: &str = "the writer stopped";

/// How many encoded bytes make a chunk, and how many chunks may wait for
/// the writer: what the load holds in memory, whatever the table's size.
const CHUNK: usize = 1 << 18;
const CHUNKS_IN_FLIGHT: usize = 4;

/// The database handle, lent to the reader thread while the writer does
/// not touch it (SQLite's default threading mode lets a connection be used
/// from any one thread at a time).
struct Lent<'a>(&'a Db);
// SAFETY: only the reader thread uses the handle while it is lent (the
// load's writer side makes no SQLite call until the reader is joined).
unsafe impl Send for Lent<'_> {}

/// The reader: every table's rows, in order, each value fitted to its
/// column (a refused one recorded by table, rowid and column), added to the
/// checksums and encoded for `COPY` (binary where every column allows it).
/// After a refusal nothing more is sent, but every row is still checked.
fn read_tables(
    db: Lent<'_>,
    tables: &[Table],
    refusing: bool,
    to_writer: std::sync::mpsc::SyncSender<Msg>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<(Vec<Read>, Refusals), String> {
    let db = db.0;
    let mut refusals = Refusals::default();
    let mut refusing = refusing;
    let mut out = Vec::with_capacity(tables.len());
    let pause_in = std::env::var("PLEX_PG_IMPORT_PAUSE_IN_COPY").ok();
    for (ti, t) in tables.iter().enumerate() {
        let binary = value::binary_ok(t.columns.iter().map(|c| c.kind));
        let mut read = Read {
            checksum: Checksum::new(t.columns.len()),
            max: None,
            max_below_top: None,
            converted: 0,
        };
        let mut st = db
            .prepare(&t.select)
            .map_err(|e| format!("reading {}: {e}", t.name))?;
        let mut buf: Vec<u8> = Vec::new();
        let mut begun = false;
        let mut chunks = 0u64;
        while st.step().map_err(|e| format!("reading {}: {e}", t.name))? {
            if !begun && !refusing {
                let total = db
                    .query_text(&format!("SELECT count(*) FROM ({})", t.select))?
                    .first()
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if to_writer.send(Msg::Begin(ti, total)).is_err() {
                    return Err(WRITER_STOPPED.into());
                }
                begun = true;
                buf = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK + (1 << 12)));
                if binary {
                    buf.extend_from_slice(value::BINARY_HEADER);
                }
            }
            let encode = begun && !refusing;
            if encode && binary {
                value::binary_row(t.columns.len(), &mut buf);
            }
            let mut row = read.checksum.row();
            for (i, c) in t.columns.iter().enumerate() {
                let v = st.value(i + 1);
                let x = match value::fit(c.kind, v) {
                    Fit::Exact(x) => x,
                    Fit::Converted(x) => {
                        read.converted += 1;
                        x
                    }
                    Fit::Refused(why) => {
                        refusing = true;
                        refusals.count += 1;
                        if refusals.first.len() < 20 {
                            refusals.first.push(format!(
                                "table {}, {}, column {}: {} (declared {:?}, PostgreSQL {:?}): {why}",
                                t.name,
                                row_name(st.value(0)),
                                c.sqlite,
                                owned(v).show(),
                                c.declared,
                                c.kind
                            ));
                        }
                        ValueRef::Null
                    }
                };
                row.value(i, x);
                if encode {
                    if binary {
                        value::encode_binary(c.kind, x, &mut buf);
                    } else {
                        if i > 0 {
                            buf.push(b'\t');
                        }
                        value::encode(c.kind, x, &mut buf);
                    }
                }
                if Some(i) == t.sequence_column {
                    if let ValueRef::Integer(v) = x {
                        read.max = Some(read.max.map_or(v, |m| m.max(v)));
                        if v < i64::MAX {
                            read.max_below_top = Some(read.max_below_top.map_or(v, |m| m.max(v)));
                        }
                    }
                }
            }
            row.finish();
            if encode && !binary {
                buf.push(b'\n');
            }
            if encode && buf.len() >= CHUNK {
                let next = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK + (1 << 12)));
                let full = std::mem::replace(&mut buf, next);
                if to_writer
                    .send(Msg::Chunk(full, read.checksum.rows))
                    .is_err()
                {
                    return Err(WRITER_STOPPED.into());
                }
                chunks += 1;
                if chunks == 1 && pause_in.as_deref() == Some(t.name.as_str()) {
                    // For tests: a window in which to kill the import while
                    // a table's COPY is under way.
                    say(&format!("pausing while copying {}", t.name));
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        }
        if begun && !refusing {
            if binary {
                buf.extend_from_slice(value::BINARY_TRAILER);
            }
            let rows = read.checksum.rows;
            if to_writer.send(Msg::Chunk(buf, rows)).is_err()
                || to_writer.send(Msg::End(rows)).is_err()
            {
                return Err(WRITER_STOPPED.into());
            }
        }
        out.push(read);
    }
    Ok((out, refusals))
}

/// Every table's rows checked and copied in one pass: a reader thread
/// (SQLite, [`read_tables`]) hands encoded chunks over a bounded channel to
/// this thread, which writes them into each table's `COPY`; then the rowid
/// sequences are set. The `loaded …` lines are kept for the caller to print
/// once no value was refused.
fn load(
    tx: &mut Transaction<'_>,
    lib: &mut Library,
    refusals: &mut Refusals,
    loaded: &mut Vec<String>,
) -> Result<(), Failure> {
    // After a refused value only checking goes on: the COPY it cut short
    // left the transaction aborted, and nothing more is sent to it.
    let refusing = refusals.count > 0;
    if !refusing {
        tx.batch_execute(&format!("SET LOCAL search_path = {}", ident(&lib.staging)))
            .map_err(|e| failed(pg::chain(&e)))?;
    }
    let sequences = sqlite_sequence(&lib.db).map_err(failed)?;
    let (to_writer, from_reader) = std::sync::mpsc::sync_channel::<Msg>(CHUNKS_IN_FLIGHT);
    let (to_reader, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let tables = &lib.tables;
    let lent = Lent(&lib.db);
    let (written, read) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_tables(lent, tables, refusing, to_writer, spare));
        let written = write_tables(tx, tables, from_reader, to_reader);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err("the SQLite reader panicked".into()));
        (written, read)
    });
    // The writer's error when it stopped first (the reader then only
    // says that it did); else the reader's, which stopped the writer.
    let (reads, found) = match (read, written) {
        (Err(e), Ok(_)) => return Err(failed(e)),
        (Err(e), Err(w)) => return Err(if e == WRITER_STOPPED { w } else { failed(e) }),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(r), Ok(lines)) => {
            loaded.extend(lines);
            r
        }
    };
    refusals.count += found.count;
    for r in found.first {
        if refusals.first.len() < 20 {
            refusals.first.push(r);
        }
    }
    for (t, r) in lib.tables.iter_mut().zip(reads) {
        t.checksum = r.checksum;
        t.max = r.max;
        t.max_below_top = r.max_below_top;
        t.converted = r.converted;
    }
    if refusals.count > 0 {
        return Ok(());
    }
    // The sequences: past every copied rowid (the rowid trigger was off
    // while copying, so none moved).
    for t in &lib.tables {
        let Some(seq) = &t.sequence else { continue };
        let from_file = sequences
            .iter()
            .find(|(n, _)| *n == t.name.to_ascii_lowercase())
            .map(|(_, s)| *s);
        let value = if t.autoincrement {
            match (t.max, from_file) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        } else {
            t.max_below_top
        };
        if let Some(v) = value {
            tx.batch_execute(&format!(
                "SELECT setval({s}::regclass, {v}) FROM pg_sequence WHERE seqrelid = {s}::regclass AND {v} BETWEEN seqmin AND seqmax",
                s = literal(seq)
            ))
            .map_err(|e| failed(format!("setting the rowid sequence of {}: {}", t.name, pg::chain(&e))))?;
        }
    }
    Ok(())
}

/// The writer: each table's `COPY` started when the reader finds its first
/// row (an empty table costs no round trip), its chunks written, finished.
/// Returns the `loaded …` lines. When the reader stops sending (done, a
/// refused value, an error: its result says which), a `COPY` still open
/// is aborted by dropping its writer.
fn write_tables(
    tx: &mut Transaction<'_>,
    tables: &[Table],
    from_reader: std::sync::mpsc::Receiver<Msg>,
    to_reader: std::sync::mpsc::Sender<Vec<u8>>,
) -> Result<Vec<String>, Failure> {
    let mut lines = Vec::new();
    while let Ok(msg) = from_reader.recv() {
        let Msg::Begin(i, total) = msg else { continue };
        let t = &tables[i];
        // The rowid trigger only gives a NULL rowid a value (a SQLite
        // rowid never is NULL) and moves the sequence (set after the
        // load): off while copying, so no row pays for its WHEN clause.
        let rowid_trigger = t.sequence.is_some()
            && pg::scalar(
                tx,
                &format!(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = {}::regclass AND tgname = 'sqlite__rowid'",
                    literal(&ident(&t.pg))
                ),
            )
            .map_err(failed)?
            .as_deref()
                == Some("1");
        if rowid_trigger {
            tx.batch_execute(&format!(
                "ALTER TABLE {} DISABLE TRIGGER sqlite__rowid",
                ident(&t.pg)
            ))
            .map_err(|e| failed(pg::chain(&e)))?;
        }
        let binary = value::binary_ok(t.columns.iter().map(|c| c.kind));
        let cols: Vec<String> = t.columns.iter().map(|c| ident(&c.pg)).collect();
        let copy = format!(
            "COPY {} ({}) FROM STDIN{}",
            ident(&t.pg),
            cols.join(", "),
            if binary { " (FORMAT binary)" } else { "" }
        );
        let loading = |e: &dyn std::fmt::Display| failed(format!("loading {}: {e}", t.name));
        let started = Instant::now();
        let mut progress = crate::progress::TableProgress::new(&t.name, total);
        let mut writer = tx.copy_in(&copy).map_err(|e| loading(&pg::chain(&e)))?;
        let mut bytes = 0u64;
        let rows = loop {
            match from_reader.recv() {
                Ok(Msg::Chunk(mut chunk, rows)) => {
                    writer
                        .write_all(&chunk)
                        .map_err(|e| loading(&pg::chain(&e)))?;
                    bytes += chunk.len() as u64;
                    progress.update(rows, bytes);
                    chunk.clear();
                    let _ = to_reader.send(chunk);
                }
                Ok(Msg::End(rows)) => break rows,
                // The reader stopped mid-table: the COPY is aborted.
                Ok(Msg::Begin(..)) | Err(_) => return Ok(lines),
            }
        };
        writer.finish().map_err(|e| loading(&pg::chain(&e)))?;
        progress.finish();
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        if rowid_trigger {
            tx.batch_execute(&format!(
                "ALTER TABLE {} ENABLE TRIGGER sqlite__rowid",
                ident(&t.pg)
            ))
            .map_err(|e| failed(pg::chain(&e)))?;
        }
        lines.push(format!(
            "  loaded {}: {rows} rows, {:.1} MB in {secs:.2} s ({:.0} rows/s)",
            t.name,
            bytes as f64 / 1e6,
            rows as f64 / secs
        ));
    }
    Ok(lines)
}

/// Views, indexes, triggers; FTS refilled; the file's user_version and
/// application_id.
fn finish_schema(tx: &mut Transaction<'_>, lib: &mut Library) -> Result<(), Failure> {
    let started = Instant::now();
    // Index builds sort each table once: room to sort in memory, and
    // PostgreSQL's parallel workers for the large ones (they see this
    // transaction's rows).
    tx.batch_execute(&format!(
        "SET LOCAL search_path = {}; SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL max_parallel_maintenance_workers = 2",
        ident(&lib.staging)
    ))
    .map_err(|e| failed(pg::chain(&e)))?;
    let after = lib.plan.after.clone();
    for o in &after {
        pg::run_sqlite(tx, &lib.staging, &o.sql).map_err(|e| {
            failed(format!(
                "creating {} {}: {e}\n  SQL: {}",
                o.kind, o.name, o.sql
            ))
        })?;
    }
    for (fts, content) in &lib.rebuilt {
        pg::run_sqlite(
            tx,
            &lib.staging,
            &format!(
                "INSERT INTO {q}({q}) VALUES('rebuild')",
                q = sqlite::quote(fts)
            ),
        )
        .map_err(|e| {
            failed(format!(
                "rebuilding full-text table {fts} from {content}: {e}"
            ))
        })?;
    }
    for pragma in ["user_version", "application_id"] {
        let v = lib
            .db
            .query_text(&format!("PRAGMA {pragma}"))
            .map_err(failed)?
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_else(|| "0".into());
        if v != "0" {
            pg::run_sqlite(tx, &lib.staging, &format!("PRAGMA {pragma} = {v}")).map_err(failed)?;
        }
    }
    say(&format!(
        "  {} views, indexes and triggers, {} full-text tables rebuilt in {:.2} s",
        after.len(),
        lib.rebuilt.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Read a table back from PostgreSQL (`COPY … TO STDOUT`), row by row.
fn read_back(
    tx: &mut Transaction<'_>,
    t: &Table,
    order_by: Option<&str>,
    each: impl FnMut(Vec<Value>) -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let cols: Vec<String> = t.columns.iter().map(|c| ident(&c.pg)).collect();
    let order = order_by
        .map(|c| format!(" ORDER BY {}", ident(c)))
        .unwrap_or_default();
    let select = format!("SELECT {} FROM {}{order}", cols.join(", "), ident(&t.pg));
    let kinds: Vec<_> = t.columns.iter().map(|c| c.kind).collect();
    pg::copy_rows(
        tx,
        &select,
        &kinds,
        &format!("{} back", t.name),
        failed,
        each,
    )
}

/// Pass 3: every table read back and compared. Prints the table; false
/// when something differs.
fn verify(tx: &mut Transaction<'_>, lib: &mut Library) -> Result<bool, Failure> {
    tx.batch_execute(&format!("SET LOCAL search_path = {}", ident(&lib.staging)))
        .map_err(|e| failed(pg::chain(&e)))?;
    say(&format!(
        "verification of {} (every value, in SQLite's classes):",
        lib.file.display()
    ));
    say(&format!(
        "  {:<40} {:>12} {:>12} {:>10} {:>10}  result",
        "table", "SQLite rows", "PG rows", "SQLite", "PG"
    ));
    let mut ok = true;
    let mut empty = 0;
    for i in 0..lib.tables.len() {
        let t = &lib.tables[i];
        let mut got = Checksum::new(t.columns.len());
        let kinds: Vec<Kind> = t.columns.iter().map(|c| c.kind).collect();
        if value::binary_ok(kinds.iter().copied()) {
            // Binary: no value parsed from text, none allocated.
            let cols: Vec<String> = t.columns.iter().map(|c| ident(&c.pg)).collect();
            let select = format!("SELECT {} FROM {}", cols.join(", "), ident(&t.pg));
            pg::copy_binary_rows(
                tx,
                &select,
                &kinds,
                &format!("{} back", t.name),
                failed,
                |row| {
                    got.add(row.iter().copied());
                    Ok(())
                },
            )?;
        } else {
            read_back(tx, t, None, |row| {
                got.add(row.iter().map(value::as_ref));
                Ok(true)
            })?;
        }
        let same = got == t.checksum;
        if same && got.rows == 0 {
            empty += 1;
            continue;
        }
        let note = if !same {
            "DIFFERS".to_string()
        } else if t.converted > 0 {
            format!("ok ({} boolean 't'/'f' read as 1/0)", t.converted)
        } else {
            "ok".to_string()
        };
        say(&format!(
            "  {:<40} {:>12} {:>12} {:>10} {:>10}  {note}",
            t.name,
            t.checksum.rows,
            got.rows,
            t.checksum.short(),
            got.short()
        ));
        if !same {
            ok = false;
            for d in differences(tx, lib, i, &got)? {
                say(&format!("    {d}"));
            }
        }
    }
    for (fts, content) in &lib.rebuilt {
        say(&format!(
            "  {fts:<40} {:>12} {:>12} {:>10} {:>10}  rebuilt from {content}",
            "-", "-", "-", "-"
        ));
    }
    if empty > 0 {
        say(&format!("  and {empty} tables empty on both sides"));
    }
    Ok(ok)
}

/// Where a table differs: by rowid and column when it has a rowid column,
/// else the columns whose checksums differ.
fn differences(
    tx: &mut Transaction<'_>,
    lib: &Library,
    i: usize,
    got: &Checksum,
) -> Result<Vec<String>, Failure> {
    let t = &lib.tables[i];
    let mut out = Vec::new();
    if got.rows != t.checksum.rows {
        out.push(format!(
            "table {}: {} rows in SQLite, {} in PostgreSQL",
            t.name, t.checksum.rows, got.rows
        ));
    }
    let Some(k) = t.sequence_column else {
        for (c, col) in t.columns.iter().enumerate() {
            if got.columns.get(c) != t.checksum.columns.get(c) {
                out.push(format!(
                    "table {} (no rowid), column {}: the values differ",
                    t.name, col.sqlite
                ));
            }
        }
        return Ok(out);
    };
    // Both sides in rowid order, walked together.
    let mut st = lib
        .db
        .prepare(&format!(
            "{} ORDER BY {}",
            t.select,
            sqlite::quote(&t.columns[k].sqlite)
        ))
        .map_err(failed)?;
    let mut pending = st.step().map_err(failed)?;
    let fitted = |st: &sqlite::Stmt, c: usize, kind: Kind| match value::fit(kind, st.value(c + 1)) {
        Fit::Exact(x) | Fit::Converted(x) => owned(x),
        Fit::Refused(_) => Value::Null,
    };
    read_back(tx, t, Some(&t.columns[k].pg), |row| {
        let pg_id = match row[k] {
            Value::Integer(i) => i,
            _ => return Ok(true),
        };
        loop {
            if !pending {
                out.push(format!(
                    "table {}, rowid {pg_id}: in PostgreSQL only",
                    t.name
                ));
                break;
            }
            let sqlite_id = match fitted(&st, k, t.columns[k].kind) {
                Value::Integer(i) => i,
                _ => i64::MIN,
            };
            if sqlite_id < pg_id {
                out.push(format!(
                    "table {}, rowid {sqlite_id}: in SQLite only",
                    t.name
                ));
                pending = st.step().map_err(failed)?;
                continue;
            }
            if sqlite_id == pg_id {
                for (c, col) in t.columns.iter().enumerate() {
                    let a = fitted(&st, c, col.kind);
                    let b = &row[c];
                    let same = match (&a, b) {
                        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
                        _ => &a == b,
                    };
                    if !same {
                        out.push(format!(
                            "table {}, rowid {pg_id}, column {}: SQLite {} {}, PostgreSQL {} {}",
                            t.name,
                            col.sqlite,
                            a.class(),
                            a.show(),
                            b.class(),
                            b.show()
                        ));
                    }
                }
                pending = st.step().map_err(failed)?;
            } else {
                out.push(format!(
                    "table {}, rowid {pg_id}: in PostgreSQL only",
                    t.name
                ));
            }
            break;
        }
        Ok(out.len() < 20)
    })?;
    Ok(out)
}
