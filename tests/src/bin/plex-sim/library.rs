//! Plex's data directory and its two library databases: the layout, the
//! schema created from Plex's real schema on first start (through the SQLite
//! API, statement by statement, as Plex's migrations do), and the fill of
//! the library with the [`Catalog`]'s movies, resumable and with progress.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::catalog::{self, Catalog};
use crate::log;
use crate::progress::Progress;
use crate::signals;
use crate::sqlite::{self, Connection, Value};

/// Plex's real library schema, one statement a line.
pub const SCHEMA: &str = include_str!("../../../fixtures/plex/sqlite_schema.sql");

/// Marks a complete schema in `schema_migrations` (written last).
const SCHEMA_VERSION: &str = "plex-sim-schema-1";

/// Where Plex keeps its databases under its data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub databases: PathBuf,
    pub library_db: PathBuf,
    pub blobs_db: PathBuf,
}

impl Layout {
    pub fn new(data_dir: &Path) -> Layout {
        let databases = data_dir.join("Plug-in Support").join("Databases");
        Layout {
            data_dir: data_dir.to_path_buf(),
            library_db: databases.join("com.plexapp.plugins.library.db"),
            blobs_db: databases.join("com.plexapp.plugins.library.blobs.db"),
            databases,
        }
    }

    pub fn create(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.databases).map_err(|e| {
            format!(
                "cannot create the databases directory {}: {e}",
                self.databases.display()
            )
        })
    }
}

/// A statement of the fixture this SQLite cannot run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unsupported {
    pub line: usize,
    pub statement: String,
    pub error: String,
}

/// What the schema step did for one database.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaReport {
    pub database: String,
    /// The schema was created now (false: found complete from an earlier start).
    pub created: bool,
    pub statements: usize,
    pub applied: usize,
    /// Virtual tables whose module this SQLite lacks (Plex's bundled SQLite
    /// has spellfix1 and the `collating` tokenizer; a system SQLite may not).
    pub unsupported: Vec<Unsupported>,
}

/// The statements of the fixture, with their line numbers.
pub fn schema_statements() -> impl Iterator<Item = (usize, &'static str)> {
    SCHEMA
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// The part of the schema that lives in the blobs database: `schema_migrations`,
/// the `blobs` table and its indexes.
pub fn blobs_statements() -> impl Iterator<Item = (usize, &'static str)> {
    schema_statements().filter(|(_, s)| {
        s.contains("\"schema_migrations\"")
            || s.contains("EXISTS \"blobs\"")
            || s.contains("ON \"blobs\"")
    })
}

/// A failure of a virtual table for want of its module: tolerated, listed.
pub fn is_missing_module(statement: &str, error: &sqlite::Error) -> bool {
    statement.starts_with("CREATE VIRTUAL TABLE")
        && (error.message.starts_with("no such module")
            || error.message.starts_with("unknown tokenizer"))
}

fn schema_complete(conn: &Connection) -> Result<bool, String> {
    let tables = count(
        conn,
        "select count(*) from sqlite_master where type='table' and name=:C1",
        &[(":C1", "schema_migrations".into())],
    )
    .map_err(|e| format!("cannot read sqlite_master: {e}"))?;
    if tables == 0 {
        return Ok(false);
    }
    let marks = count(
        conn,
        "select count(*) from schema_migrations where version=:C1",
        &[(":C1", SCHEMA_VERSION.into())],
    )
    .map_err(|e| format!("cannot read schema_migrations: {e}"))?;
    if marks == 1 {
        Ok(true)
    } else {
        Err("the schema of an earlier start is incomplete (creation was interrupted): start again with a new --data-dir".into())
    }
}

/// Create the schema on first start; on later starts check it is complete.
fn ensure_schema(
    conn: &Connection,
    database: &str,
    statements: impl Iterator<Item = (usize, &'static str)>,
) -> Result<SchemaReport, String> {
    let statements: Vec<(usize, &str)> = statements.collect();
    let mut report = SchemaReport {
        database: database.to_string(),
        created: false,
        statements: statements.len(),
        applied: 0,
        unsupported: Vec::new(),
    };
    if schema_complete(conn)? {
        log::info!("{database}: schema found complete, not created again");
        return Ok(report);
    }
    report.created = true;
    if let Err(e) = conn.execute("PRAGMA journal_mode=WAL") {
        log::warning!("{database}: PRAGMA journal_mode=WAL failed ({e}); going on");
    }
    for (line, statement) in statements {
        match conn.execute(statement) {
            Ok(()) => report.applied += 1,
            Err(e) if is_missing_module(statement, &e) => {
                log::warning!("{database}: schema line {line} skipped, this SQLite lacks its module: {}", e.message);
                report.unsupported.push(Unsupported { line, statement: statement.to_string(), error: e.message });
            }
            Err(e) => {
                return Err(format!(
                "{database}: schema statement at line {line} of sqlite_schema.sql failed: {}\n  statement: {statement}",
                e.message
            ))
            }
        }
    }
    let mut mark = conn
        .prepare("insert into schema_migrations (version) values (:C1)")
        .map_err(|e| format!("{database}: cannot mark the schema complete: {e}"))?;
    mark.bind(":C1", SCHEMA_VERSION)
        .map_err(|e| e.to_string())?;
    mark.step()
        .map_err(|e| format!("{database}: cannot mark the schema complete: {e}"))?;
    log::info!(
        "{database}: schema created: {} statements applied, {} unsupported by this SQLite",
        report.applied,
        report.unsupported.len()
    );
    Ok(report)
}

/// What the fill step did.
#[derive(Debug, Clone, Serialize)]
pub struct FillReport {
    /// Items found already there from an earlier start.
    pub found: i64,
    /// Items written now.
    pub written: i64,
    pub blobs_found: i64,
    pub blobs_written: i64,
    pub seconds: f64,
    /// A stop signal arrived during the fill; the fill stopped after a committed batch.
    pub interrupted_by: Option<String>,
}

/// Items per fill transaction.
const BATCH: i64 = 500;

fn count(conn: &Connection, sql: &str, params: &[(&str, Value)]) -> Result<i64, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    stmt.bind_all(params).map_err(|e| e.to_string())?;
    match stmt.all_rows().map_err(|e| e.to_string())?.as_slice() {
        [row] => match row.as_slice() {
            [Value::Integer(n)] => Ok(*n),
            other => Err(format!("{sql}: expected one integer, got {other:?}")),
        },
        rows => Err(format!("{sql}: expected one row, got {}", rows.len())),
    }
}

/// Sections, locations and the root directory (once).
fn ensure_sections(conn: &Connection) -> Result<(), String> {
    if count(conn, "select count(*) from library_sections", &[])? > 0 {
        return Ok(());
    }
    let setup = [
        "insert into library_sections (\"id\",\"library_id\",\"name\",\"name_sort\",\"section_type\",\"language\",\"agent\",\"scanner\",\"uuid\") values (1,1,'Movies','Movies',1,'en-US','tv.plex.agents.movie','Plex Movie','b0e5c0de-0000-4000-8000-000000000001')",
        "insert into library_sections (\"id\",\"library_id\",\"name\",\"name_sort\",\"section_type\",\"language\",\"agent\",\"scanner\",\"uuid\") values (2,1,'TV Shows','TV Shows',2,'en-US','tv.plex.agents.series','Plex TV Series','b0e5c0de-0000-4000-8000-000000000002')",
        "insert into section_locations (\"id\",\"library_section_id\",\"root_path\") values (1,1,'/data/Movies')",
        "insert into section_locations (\"id\",\"library_section_id\",\"root_path\") values (2,2,'/data/TV')",
        "insert into directories (\"id\",\"library_section_id\",\"path\") values (1,1,'')",
        "insert into directories (\"id\",\"library_section_id\",\"path\") values (2,2,'')",
    ];
    conn.transaction(|c| setup.iter().try_for_each(|sql| c.execute(sql)))
        .map_err(|e| format!("fill: {e}"))
}

/// A table the fill writes: its columns, and each item's values in that order.
struct FillTable {
    table: &'static str,
    columns: &'static [&'static str],
    values: fn(i64) -> Vec<Value>,
}

const METADATA_ITEMS: FillTable = FillTable {
    table: "metadata_items",
    columns: &[
        "library_section_id",
        "metadata_type",
        "guid",
        "media_item_count",
        "title",
        "title_sort",
        "year",
        "index",
        "duration",
        "added_at",
        "created_at",
        "updated_at",
        "hash",
    ],
    values: |i| {
        let (title, at) = (Catalog::title(i), Catalog::added_at(i));
        vec![
            catalog::MOVIES_SECTION.into(),
            catalog::MOVIE_TYPE.into(),
            Catalog::guid(i).into(),
            1i64.into(),
            title.clone().into(),
            title.into(),
            Catalog::year(i).into(),
            0i64.into(),
            Catalog::duration_ms(i).into(),
            at.into(),
            at.into(),
            at.into(),
            Value::Null,
        ]
    },
};

const MEDIA_ITEMS: FillTable = FillTable {
    table: "media_items",
    columns: &[
        "library_section_id",
        "section_location_id",
        "metadata_item_id",
        "width",
        "height",
        "size",
        "duration",
        "container",
        "video_codec",
        "audio_codec",
        "display_aspect_ratio",
        "created_at",
        "updated_at",
    ],
    values: |i| {
        let at = Catalog::added_at(i);
        vec![
            catalog::MOVIES_SECTION.into(),
            1i64.into(),
            i.into(),
            1920i64.into(),
            1080i64.into(),
            Catalog::part_size(i).into(),
            Catalog::duration_ms(i).into(),
            "mkv".into(),
            "h264".into(),
            "aac".into(),
            Catalog::aspect_ratio(i).into(),
            at.into(),
            at.into(),
        ]
    },
};

const MEDIA_PARTS: FillTable = FillTable {
    table: "media_parts",
    columns: &[
        "media_item_id",
        "directory_id",
        "file",
        "size",
        "duration",
        "created_at",
        "updated_at",
    ],
    values: |i| {
        let at = Catalog::added_at(i);
        vec![
            i.into(),
            1i64.into(),
            Catalog::part_file(i).into(),
            Catalog::part_size(i).into(),
            Catalog::duration_ms(i).into(),
            at.into(),
            at.into(),
        ]
    },
};

const BLOBS: FillTable = FillTable {
    table: "blobs",
    columns: &[
        "blob",
        "linked_type",
        "linked_id",
        "linked_guid",
        "created_at",
        "blob_type",
    ],
    values: |i| {
        vec![
            Catalog::blob(i).into(),
            "metadata_item".into(),
            i.into(),
            Catalog::guid(i).into(),
            Catalog::added_at(i).into(),
            catalog::THUMB_BLOB_TYPE.into(),
        ]
    },
};

/// `insert into T ("a","b") values (:C1,:C2),(:C3,:C4)…` for `rows` rows.
fn insert_sql(t: &FillTable, rows: usize) -> String {
    let columns = t
        .columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(",");
    let n = t.columns.len();
    let tuples = (0..rows)
        .map(|r| {
            format!(
                "({})",
                (1..=n)
                    .map(|c| format!(":C{}", r * n + c))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    format!("insert into {} ({columns}) values {tuples}", t.table)
}

/// Insert items `from..=to` of `t` with one statement, and check they got
/// exactly the ids `from..=to` (the catalog's ids).
fn insert_items(conn: &Connection, t: &FillTable, from: i64, to: i64) -> sqlite::Result<()> {
    let rows = (to - from + 1) as usize;
    let mut stmt = conn.prepare(&insert_sql(t, rows))?;
    let n = t.columns.len();
    for (r, i) in (from..=to).enumerate() {
        for (c, value) in (t.values)(i).into_iter().enumerate() {
            // Positional: `:C<k>` is the k-th parameter (a lookup by name is linear).
            stmt.bind_at(r * n + c + 1, value)?;
        }
    }
    stmt.step()?;
    let (changed, last) = (conn.changes(), conn.last_insert_rowid());
    if changed != rows as i64 || last != to {
        return Err(sqlite::Error {
            code: 0,
            message: format!(
                "fill of {}: inserting items {from}..={to} changed {changed} rows and gave last id {last}; \
                 expected {rows} rows, last id {to} (ids must run 1..N: was an earlier fill interrupted with \
                 ids lost? start again with a new --data-dir)",
                t.table
            ),
            sql: None,
        });
    }
    Ok(())
}

/// Fill items `from..=to` of `tables` in transactions of [`BATCH`] items,
/// `rows_per_insert` rows a statement; stops early on a stop signal (after
/// the current batch commits). Returns the last item written.
fn fill_range(
    conn: &Connection,
    what: &str,
    (from, to): (i64, i64),
    tables: &[&FillTable],
    rows_per_insert: i64,
    interrupted: &mut Option<String>,
) -> Result<i64, String> {
    if from > to {
        return Ok(to);
    }
    let mut progress = Progress::new(what, (to - from + 1) as u64);
    let mut last = from - 1;
    while last < to {
        let end = (last + BATCH).min(to);
        conn.transaction(|c| {
            let mut first = last + 1;
            while first <= end {
                let chunk_end = (first + rows_per_insert - 1).min(end);
                for t in tables {
                    insert_items(c, t, first, chunk_end)?;
                }
                first = chunk_end + 1;
            }
            Ok(())
        })
        .map_err(|e| format!("fill of {what}, items {}..{end}: {e}", last + 1))?;
        progress.advance((end - last) as u64);
        last = end;
        if let Some(sig) = signals::take_pending_stop() {
            *interrupted = Some(signals::name(sig));
            break;
        }
    }
    progress.finish();
    Ok(last)
}

/// Bring the library to the catalog's content: write what an earlier start
/// did not. Fails clearly on a library that holds something else.
pub fn fill(
    library: &Connection,
    blobs: &Connection,
    catalog: &Catalog,
    rows_per_insert: i64,
) -> Result<FillReport, String> {
    let started = Instant::now();
    ensure_sections(library)?;
    let found = count(
        library,
        "select count(*) from metadata_items where library_section_id=:C1",
        &[(":C1", catalog::MOVIES_SECTION.into())],
    )?;
    if found > catalog.items {
        return Err(format!(
            "the library already holds {found} movies, more than --items {}: use the same --items or a new --data-dir",
            catalog.items
        ));
    }
    let mut interrupted = None;
    let last = fill_range(
        library,
        "movies (metadata items, media items, parts)",
        (found + 1, catalog.items),
        &[&METADATA_ITEMS, &MEDIA_ITEMS, &MEDIA_PARTS],
        rows_per_insert,
        &mut interrupted,
    )?;
    let blobs_found = count(blobs, "select count(*) from blobs", &[])?;
    let blob_target = catalog.blob_items();
    if blobs_found > blob_target {
        return Err(format!(
            "the blobs database holds {blobs_found} thumbnails, more than {blob_target}: use a new --data-dir"
        ));
    }
    let blobs_last = if interrupted.is_none() {
        fill_range(
            blobs,
            "thumbnails",
            (blobs_found + 1, blob_target),
            &[&BLOBS],
            rows_per_insert,
            &mut interrupted,
        )?
    } else {
        blobs_found
    };
    Ok(FillReport {
        found,
        written: last - found,
        blobs_found,
        blobs_written: blobs_last - blobs_found,
        seconds: started.elapsed().as_secs_f64(),
        interrupted_by: interrupted,
    })
}

/// Create the layout and both schemas, then fill.
pub fn prepare(
    layout: &Layout,
    catalog: &Catalog,
    rows_per_insert: i64,
) -> Result<(Vec<SchemaReport>, FillReport), String> {
    layout.create()?;
    let library = Connection::open(&layout.library_db, crate::pool::BUSY_TIMEOUT_MS)
        .map_err(|e| e.to_string())?;
    let blobs = Connection::open(&layout.blobs_db, crate::pool::BUSY_TIMEOUT_MS)
        .map_err(|e| e.to_string())?;
    let reports = vec![
        ensure_schema(
            &library,
            "com.plexapp.plugins.library.db",
            schema_statements(),
        )?,
        ensure_schema(
            &blobs,
            "com.plexapp.plugins.library.blobs.db",
            blobs_statements(),
        )?,
    ];
    let fill = fill(&library, &blobs, catalog, rows_per_insert)?;
    library.close().map_err(|e| e.to_string())?;
    blobs.close().map_err(|e| e.to_string())?;
    Ok((reports, fill))
}
