//! The Plex Media Scanner role (`--scanner`): plex-sim executed again by the
//! server, opening its own pool on the same library database and writing
//! media parts (a media item and its part per transaction, in the TV
//! section the server's checks do not read) from two worker threads. Each
//! committed row is journaled and read back through another session. A stop
//! signal ends it after the current transaction, with exit code 0.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::catalog::{self, Catalog};
use crate::check::{self, Expect};
use crate::cli::Options;
use crate::helpers;
use crate::journal::Journal;
use crate::library::Layout;
use crate::log;
use crate::pool::Pool;
use crate::signals::{self, Wake};
use crate::stats::Stats;
use crate::workload::WORKER_STACK;

const THREADS: u64 = 2;

struct Scan<'a> {
    pool: &'a Pool,
    journal: &'a Journal,
    stats: &'a Stats,
    stop: &'a AtomicBool,
}

impl Scan<'_> {
    fn write_part(&self, thread: u64, k: u64) -> Result<(), String> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let file = format!("/data/TV/Scanned by {pid}/Episode {thread}x{k:04}.mkv");
        let size = Catalog::part_size(i64::from(pid) * 100_000 + (thread * 10_000 + k) as i64);
        let now = catalog::EPOCH;
        let session = self.pool.checkout(Duration::from_secs(30))?;
        let (media_id, part_id) = session
            .transaction(|c| {
                let mut media = c.prepare(
                    "insert into media_items (\"library_section_id\",\"section_location_id\",\"metadata_item_id\",\
                     \"size\",\"container\",\"created_at\",\"updated_at\") values (:C1,:C2,NULL,:C3,:C4,:C5,:C6)",
                )?;
                media.bind_all(&[
                    (":C1", catalog::SCANNER_SECTION.into()),
                    (":C2", catalog::SCANNER_SECTION.into()),
                    (":C3", size.into()),
                    (":C4", "mkv".into()),
                    (":C5", now.into()),
                    (":C6", now.into()),
                ])?;
                media.step()?;
                let media_id = c.last_insert_rowid();
                let mut part = c.prepare(
                    "insert into media_parts (\"media_item_id\",\"directory_id\",\"file\",\"size\",\"created_at\",\"updated_at\") \
                     values (:C1,:C2,:C3,:C4,:C5,:C6)",
                )?;
                part.bind_all(&[
                    (":C1", media_id.into()),
                    (":C2", 2i64.into()),
                    (":C3", file.clone().into()),
                    (":C4", size.into()),
                    (":C5", now.into()),
                    (":C6", now.into()),
                ])?;
                part.step()?;
                Stats::add(&self.stats.queries, 2);
                Ok((media_id, c.last_insert_rowid()))
            })
            .map_err(|e| e.to_string())?;
        drop(session);
        Stats::add(&self.stats.writes_committed, 2);
        let journaled = self
            .journal
            .committed(
                "library",
                "media_items",
                media_id,
                json!({"library_section_id": catalog::SCANNER_SECTION, "size": size, "container": "mkv"}),
            )
            .and_then(|()| {
                self.journal.committed(
                    "library",
                    "media_parts",
                    part_id,
                    json!({"media_item_id": media_id, "file": file, "size": size}),
                )
            });
        if let Err(e) = journaled {
            self.stats.error(e);
        }
        let reader = self.pool.checkout(Duration::from_secs(30))?;
        check::query(
            self.stats,
            &reader,
            &Expect {
                what: "scanned part read back",
                sql: "select media_parts.id as 'media_parts_id', media_parts.file as 'media_parts_file', \
             media_parts.size as 'media_parts_size', media_items.library_section_id as 'media_items_library_section_id' \
             from media_parts join media_items on media_items.id=media_parts.media_item_id where media_items.id=:C1",
                params: &[(":C1", media_id.into())],
                names: &["media_parts_id", "media_parts_file", "media_parts_size", "media_items_library_section_id"],
                rows: &[vec![part_id.into(), file.into(), size.into(), catalog::SCANNER_SECTION.into()]],
            })
    }

    fn run_thread(&self, thread: u64, parts: u64) {
        for k in 0..parts {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.write_part(thread, k) {
                self.stats
                    .error(format!("scanner thread {thread}, part {k}: {e}"));
            }
        }
    }
}

pub fn run(opts: &Options) -> i32 {
    let started = Instant::now();
    let journal = match helpers::start_helper("scanner", opts) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let Some(data_dir) = &opts.data_dir else {
        log::error!("--data-dir is required for --scanner");
        return 2;
    };
    let layout = Layout::new(data_dir);
    let pool = match Pool::open("scanner", &layout.library_db, usize::from(opts.sessions)) {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot open the scanner's sessions: {e}");
            return 1;
        }
    };
    let stats = Stats::default();
    let stop = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    let scan = Scan {
        pool: &pool,
        journal: &journal,
        stats: &stats,
        stop: &stop,
    };
    let per_thread = opts.scanner_parts.div_ceil(THREADS);
    let deadline = started + Duration::from_secs_f64(opts.timeout);
    let mut stopped_by = None;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (scan, finished) = (&scan, &finished);
            let parts =
                per_thread.min(opts.scanner_parts - (t * per_thread).min(opts.scanner_parts));
            std::thread::Builder::new()
                .name(format!("scanner-{t}"))
                .stack_size(WORKER_STACK)
                .spawn_scoped(s, move || {
                    scan.run_thread(t, parts);
                    finished.fetch_add(1, Ordering::AcqRel);
                })
                .expect("start a scanner thread");
        }
        while finished.load(Ordering::Acquire) < THREADS as usize {
            if let Wake::Stop(sig) = signals::wait(Duration::from_millis(100)) {
                stopped_by = Some(signals::name(sig));
                stop.store(true, Ordering::Release);
            }
            if Instant::now() > deadline {
                log::error!(
                    "scanner: still writing after --timeout {} s: a hang",
                    opts.timeout
                );
                // SAFETY: leaving at once; threads may be stuck in a query.
                unsafe { libc::_exit(3) };
            }
        }
    });
    for e in pool.close() {
        stats.error(e);
    }
    log::info!(
        "scanner: {} rows committed, {} rows checked, {} mismatches, {} errors in {:.1} s{}",
        Stats::get(&stats.writes_committed),
        Stats::get(&stats.rows_checked),
        Stats::get(&stats.mismatches),
        stats.error_count(),
        started.elapsed().as_secs_f64(),
        stopped_by
            .map(|s| format!(" (stopped by {s})"))
            .unwrap_or_default()
    );
    i32::from(stats.error_count() > 0)
}
