//! The server's worker threads and the queries they run, Plex-shaped (SOCI's
//! `select t.col as 't_col'` and `:C1` parameters) and every one checked
//! against the catalog: the incident's hash fix-up query over every movie,
//! item details, section pages and counts, thumbnails from the blobs
//! database, and playback-progress writes that are journaled once committed
//! and read back.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::catalog::{self, Catalog};
use crate::check::{self, Expect};
use crate::journal::Journal;
use crate::log;
use crate::pool::Pool;
use crate::rendezvous::Rendezvous;
use crate::sqlite::{self, Connection, Value};
use crate::stats::Stats;

/// The incident's query, exactly as Plex sends it.
pub const HASH_QUERY: &str = "SELECT id,guid FROM metadata_items where hash is null";

/// Plex's worker threads run on 544 KiB stacks.
pub const WORKER_STACK: usize = 544 * 1024;

/// The expected results that are costly to build, made once per process.
pub struct Expected {
    pub catalog: Catalog,
    /// `(id, guid)` of every movie, by id: the hash query's exact result.
    pub hash_rows: Vec<Vec<Value>>,
}

impl Expected {
    pub fn new(catalog: Catalog) -> Expected {
        let hash_rows = (1..=catalog.items)
            .map(|i| vec![Value::Integer(i), Value::Text(Catalog::guid(i))])
            .collect();
        Expected { catalog, hash_rows }
    }
}

/// Run the hash query on `conn`; `at_midpoint(rows_read)` runs once when
/// half of the expected rows have been read, with the statement still open.
pub fn read_hash_rows(
    conn: &Connection,
    midpoint: usize,
    mut at_midpoint: impl FnMut(usize),
) -> sqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(HASH_QUERY)?;
    let mut rows = Vec::with_capacity(midpoint * 2);
    while stmt.step()? {
        rows.push(stmt.row());
        if rows.len() == midpoint {
            at_midpoint(rows.len());
        }
    }
    Ok(rows)
}

/// The hash query's rows must be exactly every movie's `(id, guid)`, in any order.
pub fn check_hash_rows(
    stats: &Stats,
    what: &str,
    mut rows: Vec<Vec<Value>>,
    expected: &Expected,
) -> bool {
    rows.sort_by_key(|r| match r.first() {
        Some(Value::Integer(id)) => *id,
        _ => i64::MIN,
    });
    check::rows(stats, what, &rows, &expected.hash_rows)
}

/// A child forked without exec, as in the incident: it opens its own
/// connection, runs the hash query, checks it, and reports on one line
/// `queries=1 rows=N mismatches=M` followed by any error messages.
pub fn fork_query_child(library_db: &std::path::Path, expected: &Expected) -> (i32, String) {
    let stats = Stats::default();
    let outcome = Connection::open(library_db, crate::pool::BUSY_TIMEOUT_MS).and_then(|conn| {
        let rows = read_hash_rows(&conn, 0, |_| {})?;
        check_hash_rows(
            &stats,
            "hash fix-up query in a child forked without exec",
            rows,
            expected,
        );
        conn.close()
    });
    if let Err(e) = outcome {
        stats.error(format!(
            "hash fix-up query in a child forked without exec: {e}"
        ));
    }
    let mut report = format!(
        "queries=1 rows={} mismatches={}",
        Stats::get(&stats.rows_checked),
        Stats::get(&stats.mismatches)
    );
    for (message, _) in stats.errors() {
        report.push('\n');
        report.push_str(&message);
    }
    (i32::from(stats.error_count() > 0), report)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    HashFixup,
    ItemDetails,
    SectionPage,
    SectionCount,
    Thumbnail,
    ProgressInsert,
    ProgressUpdate,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::HashFixup,
        Op::ItemDetails,
        Op::SectionPage,
        Op::SectionCount,
        Op::Thumbnail,
        Op::ProgressInsert,
        Op::ProgressUpdate,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::HashFixup => "hash fix-up query",
            Op::ItemDetails => "item details",
            Op::SectionPage => "section page",
            Op::SectionCount => "section count",
            Op::Thumbnail => "thumbnail",
            Op::ProgressInsert => "playback progress insert",
            Op::ProgressUpdate => "playback progress update",
        }
    }
}

/// The order each worker runs operations in (offset by its number).
const SCHEDULE: [Op; 8] = [
    Op::HashFixup,
    Op::ItemDetails,
    Op::SectionPage,
    Op::ProgressInsert,
    Op::ItemDetails,
    Op::SectionCount,
    Op::Thumbnail,
    Op::ProgressUpdate,
];

/// What each worker is doing since when, for the hang watchdog.
pub struct Activity {
    started: Instant,
    since_ms: Vec<AtomicU64>,
    op: Vec<AtomicUsize>,
}

impl Activity {
    pub fn new(workers: usize) -> Activity {
        Activity {
            started: Instant::now(),
            since_ms: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            op: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    fn begin(&self, worker: usize, op: Op) {
        self.op[worker].store(
            Op::ALL.iter().position(|o| *o == op).unwrap_or(0),
            Ordering::Relaxed,
        );
        self.since_ms[worker].store(self.now_ms(), Ordering::Release);
    }

    fn end(&self, worker: usize) {
        self.since_ms[worker].store(0, Ordering::Release);
    }

    /// The operation running longest: `(worker, operation, seconds)`.
    pub fn longest(&self) -> Option<(usize, &'static str, f64)> {
        let now = self.now_ms();
        (0..self.since_ms.len())
            .filter_map(|w| {
                let since = self.since_ms[w].load(Ordering::Acquire);
                (since != 0).then(|| {
                    (
                        w,
                        Op::ALL[self.op[w].load(Ordering::Relaxed)].name(),
                        // A worker may begin after `now` was read: never negative.
                        now.saturating_sub(since) as f64 / 1000.0,
                    )
                })
            })
            .max_by(|a, b| a.2.total_cmp(&b.2))
    }
}

/// Everything the workers share.
pub struct Workload<'a> {
    pub library: &'a Pool,
    pub blobs: &'a Pool,
    pub expected: &'a Expected,
    pub stats: &'a Stats,
    pub journal: &'a Journal,
    pub rendezvous: &'a Rendezvous,
    pub activity: &'a Activity,
    pub stop: &'a AtomicBool,
    pub iterations: Option<u64>,
    /// `--fault wrong-result`: alter the next hash query's result once.
    pub wrong_result: &'a AtomicBool,
    pub checkout_wait: Duration,
}

/// A worker's own playback-progress row (only its worker writes it).
struct OwnRow {
    id: i64,
    account_id: i64,
    guid: String,
    view_offset: i64,
    view_count: i64,
}

struct Worker<'w, 'a> {
    id: usize,
    load: &'w Workload<'a>,
    rng: u64,
    own: Vec<OwnRow>,
}

/// Run worker `id` until the stop flag or its iterations. Returns operations run.
pub fn run_worker(load: &Workload<'_>, id: usize) -> u64 {
    // SAFETY: getpid has no preconditions.
    let seed = (unsafe { libc::getpid() } as u64) << 16 | id as u64;
    let mut worker = Worker {
        id,
        load,
        rng: seed,
        own: Vec::new(),
    };
    let mut n = 0u64;
    while !load.stop.load(Ordering::Acquire) && load.iterations.is_none_or(|it| n < it) {
        let op = SCHEDULE[(n as usize + id) % SCHEDULE.len()];
        load.activity.begin(id, op);
        let outcome = worker.run(op);
        load.activity.end(id);
        if let Err(e) = outcome {
            load.stats.error(format!("worker {id}, {}: {e}", op.name()));
        }
        n += 1;
    }
    n
}

impl Worker<'_, '_> {
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(1);
        catalog::mix(self.rng as i64)
    }

    fn random_item(&mut self) -> i64 {
        1 + (self.next() % self.load.expected.catalog.items as u64) as i64
    }

    fn run(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::HashFixup => self.hash_fixup(),
            Op::ItemDetails => self.item_details(),
            Op::SectionPage => self.section_page(),
            Op::SectionCount => self.section_count(),
            Op::Thumbnail => self.thumbnail(),
            Op::ProgressInsert => self.progress_insert(),
            Op::ProgressUpdate => self.progress_update(),
        }
    }

    /// Borrow a session of `pool` and run a checked query on it.
    fn read(&self, pool: &Pool, expect: &Expect<'_>) -> Result<(), String> {
        let session = pool.checkout(self.load.checkout_wait)?;
        check::query(self.load.stats, &session, expect)
    }

    fn hash_fixup(&mut self) -> Result<(), String> {
        let load = self.load;
        let session = load.library.checkout(load.checkout_wait)?;
        let midpoint = (load.expected.catalog.items as usize / 2).max(1);
        let handle = session.raw();
        let mut rows = read_hash_rows(&session, midpoint, |read| {
            load.rendezvous.offer(self.id, handle, read)
        })
        .map_err(|e| e.to_string())?;
        drop(session);
        Stats::add(&load.stats.queries, 1);
        Stats::add(&load.stats.hash_queries, 1);
        if load.wrong_result.swap(false, Ordering::AcqRel) {
            if let Some(row) = rows.first_mut() {
                log::warning!("--fault wrong-result: altering a row of this hash query's result before the check");
                row[1] = Value::Text("plex://movie/deliberately-wrong".into());
            }
        }
        check_hash_rows(load.stats, HASH_QUERY, rows, load.expected);
        Ok(())
    }

    fn item_details(&mut self) -> Result<(), String> {
        let i = self.random_item();
        self.read(
            self.load.library,
            &Expect {
                what: "item details",
                sql: "select metadata_items.id as 'metadata_items_id', metadata_items.guid as 'metadata_items_guid', \
             metadata_items.title as 'metadata_items_title', metadata_items.year as 'metadata_items_year', \
             media_items.id as 'media_items_id', media_items.display_aspect_ratio as 'media_items_display_aspect_ratio', \
             media_parts.file as 'media_parts_file', media_parts.size as 'media_parts_size' \
             from metadata_items join media_items on media_items.metadata_item_id=metadata_items.id \
             join media_parts on media_parts.media_item_id=media_items.id where metadata_items.id=:C1",
                params: &[(":C1", i.into())],
                names: &[
                "metadata_items_id",
                "metadata_items_guid",
                "metadata_items_title",
                "metadata_items_year",
                "media_items_id",
                "media_items_display_aspect_ratio",
                "media_parts_file",
                "media_parts_size",
            ],
                rows: &[vec![
                i.into(),
                Catalog::guid(i).into(),
                Catalog::title(i).into(),
                Catalog::year(i).into(),
                i.into(),
                Catalog::aspect_ratio(i).into(),
                Catalog::part_file(i).into(),
                Catalog::part_size(i).into(),
            ]],
            })
    }

    fn section_page(&mut self) -> Result<(), String> {
        let items = self.load.expected.catalog.items;
        let start = self.random_item();
        let end = (start + 50).min(items + 1);
        let expected: Vec<Vec<Value>> = (start..end)
            .map(|i| vec![i.into(), Catalog::title(i).into(), Value::Null])
            .collect();
        self.read(
            self.load.library,
            &Expect {
                what: "section page",
                sql:
                    "select metadata_items.id as 'metadata_items_id', metadata_items.title as 'metadata_items_title', \
             metadata_items.hash as 'metadata_items_hash' from metadata_items \
             where metadata_items.library_section_id=:C1 and metadata_items.id>=:C2 and metadata_items.id<:C3 \
             order by metadata_items.id",
                params: &[(":C1", catalog::MOVIES_SECTION.into()), (":C2", start.into()), (":C3", (start + 50).into())],
                names: &["metadata_items_id", "metadata_items_title", "metadata_items_hash"],
                rows: &expected,
            },
        )
    }

    fn section_count(&mut self) -> Result<(), String> {
        self.read(
            self.load.library,
            &Expect {
                what: "section count",
                sql: "select count(*) as 'count' from metadata_items \
             where metadata_items.library_section_id=:C1 and metadata_items.metadata_type=:C2",
                params: &[
                    (":C1", catalog::MOVIES_SECTION.into()),
                    (":C2", catalog::MOVIE_TYPE.into()),
                ],
                names: &["count"],
                rows: &[vec![self.load.expected.catalog.items.into()]],
            },
        )
    }

    fn thumbnail(&mut self) -> Result<(), String> {
        let i = 1 + (self.next() % self.load.expected.catalog.blob_items() as u64) as i64;
        self.read(
            self.load.blobs,
            &Expect {
                what: "thumbnail",
                sql: "select blobs.blob as 'blobs_blob', blobs.linked_guid as 'blobs_linked_guid' from blobs \
             where blobs.linked_type=:C1 and blobs.linked_id=:C2 and blobs.blob_type=:C3",
                params: &[(":C1", "metadata_item".into()), (":C2", i.into()), (":C3", catalog::THUMB_BLOB_TYPE.into())],
                names: &["blobs_blob", "blobs_linked_guid"],
                rows: &[vec![Catalog::blob(i).into(), Catalog::guid(i).into()]],
            },
        )
    }

    /// Journal a committed row and read it back.
    fn committed(&mut self, session: &Connection, row: OwnRow) -> Result<(), String> {
        let load = self.load;
        Stats::add(&load.stats.writes_committed, 1);
        let values = json!({
            "account_id": row.account_id, "guid": row.guid,
            "view_offset": row.view_offset, "view_count": row.view_count,
        });
        if let Err(e) = load
            .journal
            .committed("library", "metadata_item_settings", row.id, values)
        {
            load.stats.error(e);
        }
        let expected = vec![vec![
            row.account_id.into(),
            row.guid.clone().into(),
            row.view_offset.into(),
            row.view_count.into(),
        ]];
        let outcome = check::query(
            load.stats,
            session,
            &Expect {
                what: "playback progress read back",
                sql: "select metadata_item_settings.account_id as 'metadata_item_settings_account_id', \
             metadata_item_settings.guid as 'metadata_item_settings_guid', \
             metadata_item_settings.view_offset as 'metadata_item_settings_view_offset', \
             metadata_item_settings.view_count as 'metadata_item_settings_view_count' \
             from metadata_item_settings where metadata_item_settings.id=:C1",
                params: &[(":C1", row.id.into())],
                names: &[
                    "metadata_item_settings_account_id",
                    "metadata_item_settings_guid",
                    "metadata_item_settings_view_offset",
                    "metadata_item_settings_view_count",
                ],
                rows: &expected,
            },
        );
        match self.own.iter_mut().find(|r| r.id == row.id) {
            Some(existing) => *existing = row,
            None => self.own.push(row),
        }
        outcome
    }

    fn progress_insert(&mut self) -> Result<(), String> {
        let item = self.random_item();
        let view_offset = (self.next() % Catalog::duration_ms(item) as u64) as i64;
        let account_id = 1 + self.id as i64;
        let guid = Catalog::guid(item);
        let now = catalog::EPOCH + (self.next() % 1_000_000) as i64;
        let session = self.load.library.checkout(self.load.checkout_wait)?;
        let id = session
            .transaction(|c| {
                let mut stmt = c.prepare(
                    "insert into metadata_item_settings (\"account_id\",\"guid\",\"view_offset\",\"view_count\",\
                     \"last_viewed_at\",\"created_at\",\"updated_at\") values (:C1,:C2,:C3,:C4,:C5,:C6,:C7)",
                )?;
                stmt.bind_all(&[
                    (":C1", account_id.into()),
                    (":C2", guid.clone().into()),
                    (":C3", view_offset.into()),
                    (":C4", 1i64.into()),
                    (":C5", now.into()),
                    (":C6", now.into()),
                    (":C7", now.into()),
                ])?;
                stmt.step()?;
                Stats::add(&self.load.stats.queries, 1);
                Ok(c.last_insert_rowid())
            })
            .map_err(|e| e.to_string())?;
        self.committed(
            &session,
            OwnRow {
                id,
                account_id,
                guid,
                view_offset,
                view_count: 1,
            },
        )
    }

    fn progress_update(&mut self) -> Result<(), String> {
        if self.own.is_empty() {
            return self.progress_insert();
        }
        let pick = (self.next() % self.own.len() as u64) as usize;
        let (id, account_id, guid, count) = {
            let r = &self.own[pick];
            (r.id, r.account_id, r.guid.clone(), r.view_count)
        };
        let view_offset = (self.next() % 7_200_000) as i64;
        let session = self.load.library.checkout(self.load.checkout_wait)?;
        let changed = session
            .transaction(|c| {
                let mut stmt = c.prepare(
                    "update metadata_item_settings set \"view_offset\"=:C1, \"view_count\"=\"view_count\"+1, \
                     \"updated_at\"=:C2 where \"id\"=:C3",
                )?;
                stmt.bind_all(&[(":C1", view_offset.into()), (":C2", catalog::EPOCH.into()), (":C3", id.into())])?;
                stmt.step()?;
                Stats::add(&self.load.stats.queries, 1);
                Ok(c.changes())
            })
            .map_err(|e| e.to_string())?;
        if changed != 1 {
            self.load.stats.mismatch(format!(
                "playback progress update of row {id}: expected 1 row changed, got {changed}"
            ));
        }
        self.committed(
            &session,
            OwnRow {
                id,
                account_id,
                guid,
                view_offset,
                view_count: count + 1,
            },
        )
    }
}
