//! SQLite against the shim on PostgreSQL under concurrency, as a library
//! scan during playback: several processes write (each a Scanner: in
//! transactions of `BEGIN IMMEDIATE`, 20 media parts inserted and 20
//! metadata items updated, then `COMMIT`, as fast as they can) while others
//! read (each a player or a browsing client: a point select by id, then a
//! page of 50 items, one every `--read-every-ms`), all through the SQLite C
//! API, each process with its own connection.
//!
//! SQLite gets the set-up Plex gives it: WAL, a 20 s busy timeout
//! (`sqlite3_busy_timeout`, as plex-sim does), and `synchronous=OFF`
//! because the benchmark's PostgreSQL runs with `fsync=off`: neither side
//! waits for a disk. The shim's side runs the same program with the shim
//! preloaded and the same busy timeout.
//!
//! The sides take turns, round after round, for the same window each.
//! Reported per side: committed write transactions, rows written and reads
//! per second; p50/p99 latency of a write transaction and of a read; every
//! error by SQLite result code (`SQLITE_BUSY` …); and writes the workers
//! counted as committed that the database does not hold (must be 0).
//!
//! Writes `<target>/plex-pg-bench/concurrency.json`. Options: `--rounds N`
//! (3), `--seconds S` (10), `--writers N` (3), `--readers N` (3),
//! `--read-every-ms MS` (5; 0 reads as fast as possible).
//! Internally the program re-executes itself as each worker (`--worker`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plex_pg_bench::capi::{Db, Error};
use plex_pg_bench::stats::{median_p99, rotation, Spread};
use plex_pg_bench::{cli, fixture, results};
use plex_pg_tests::{Cluster, TempDir};
use serde_json::{json, Value};

const ITEMS: i64 = 40_000;
const ROWS_PER_TRANSACTION: i64 = 20;
const PAGE: i64 = 50;
const BUSY_TIMEOUT_MS: i32 = 20_000;
const SCHEMA: &str = "concurrency";
/// The shim routes a database by its file name: Plex's library.
const LIBRARY: &str = "com.plexapp.plugins.library.db";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A small deterministic generator, one stream per worker.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

// ---- the worker side: one process, one connection ----

fn open(path: &str, sqlite_settings: bool) -> Db {
    let db = Db::open(path);
    db.busy_timeout(BUSY_TIMEOUT_MS);
    if sqlite_settings {
        db.exec("PRAGMA synchronous=OFF");
    }
    db
}

/// Plex-like tables and 40,000 items, written through the C API (so on
/// the shim's side, through its translation).
fn set_up(db: &Db, sqlite_settings: bool) {
    if sqlite_settings {
        db.exec("PRAGMA journal_mode=WAL");
    }
    db.exec(
        "CREATE TABLE metadata_items (id INTEGER PRIMARY KEY, guid TEXT, title TEXT, hash TEXT)",
    );
    db.exec("CREATE TABLE media_parts (id INTEGER PRIMARY KEY, metadata_item_id INTEGER, file TEXT, size INTEGER)");
    db.exec("BEGIN");
    for first in (1..=ITEMS).step_by(500) {
        let values: Vec<String> = (first..(first + 500).min(ITEMS + 1))
            .map(|i| format!("({i}, 'plex://movie/{i}', 'Title {i}', NULL)"))
            .collect();
        db.exec(&format!(
            "INSERT INTO metadata_items (id, guid, title, hash) VALUES {}",
            values.join(", ")
        ));
    }
    db.exec("COMMIT");
}

/// One Scanner transaction over its own items; the rows it wrote.
fn scan_transaction(db: &Db, rng: &mut Rng, writer: i64, writers: i64) -> Result<i64, Error> {
    let share = ITEMS / writers;
    db.try_exec("BEGIN IMMEDIATE")?;
    for _ in 0..ROWS_PER_TRANSACTION {
        let item = writer * share + 1 + rng.below(share);
        let mut ins = db.try_prepare(
            "INSERT INTO media_parts (metadata_item_id, file, size) VALUES (?, ?, ?)",
        )?;
        ins.bind_int(1, item);
        ins.bind_text(2, &format!("/data/Movies/scan{writer}/{item}.mkv"));
        ins.bind_int(3, 1_000_000 + item);
        ins.try_step()?;
        let mut upd = db.try_prepare("UPDATE metadata_items SET hash = ? WHERE id = ?")?;
        upd.bind_text(1, &format!("{item:040x}"));
        upd.bind_int(2, item);
        upd.try_step()?;
    }
    db.try_exec("COMMIT")?;
    Ok(ROWS_PER_TRANSACTION)
}

/// One read: a point select, or a page of items.
fn read(db: &Db, rng: &mut Rng, page: bool) -> Result<i64, Error> {
    let id = 1 + rng.below(ITEMS);
    let sql = if page {
        "SELECT id, title, hash FROM metadata_items WHERE id > ? ORDER BY id LIMIT 50"
    } else {
        "SELECT id, guid, title FROM metadata_items WHERE id = ?"
    };
    let mut st = db.try_prepare(sql)?;
    st.bind_int(1, id);
    let mut n = 0;
    while st.try_step()? {
        std::hint::black_box((st.int(0), st.text_len(1)));
        n += 1;
    }
    let expected = if page { PAGE.min(ITEMS - id) } else { 1 };
    if n != expected {
        return Err(Error {
            code: -1,
            message: format!("{sql} with {id}: {n} rows, expected {expected}"),
        });
    }
    Ok(n)
}

fn worker() {
    let role: String = cli::opt("worker", String::new());
    let path: String = cli::opt("db", String::new());
    let sqlite_settings = cli::opt("sqlite-settings", 0) == 1;
    if role == "setup" {
        set_up(&open(&path, sqlite_settings), sqlite_settings);
        return;
    }
    let db = open(&path, sqlite_settings);
    if role == "count" {
        let mut st = db.prepare("SELECT count(*) FROM media_parts");
        assert!(st.step());
        println!("{}", json!({ "count": st.int(0) }));
        return;
    }
    let index: i64 = cli::opt("index", 0);
    let writers: i64 = cli::opt("writers", 1);
    let (from, until): (u64, u64) = (cli::opt("from-ms", 0), cli::opt("until-ms", 0));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) * 0x1000_0001));
    while now_ms() < from {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (mut ops, mut rows, mut latencies_us) = (0u64, 0i64, Vec::new());
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut first_error = None;
    let pace = Duration::from_millis(cli::opt("read-every-ms", 0));
    let mut next = Instant::now();
    while now_ms() < until {
        if role == "reader" {
            next += pace;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let t = Instant::now();
        let r = if role == "writer" {
            scan_transaction(&db, &mut rng, index, writers)
        } else {
            read(&db, &mut rng, ops % 2 == 1)
        };
        match r {
            Ok(n) => {
                ops += 1;
                rows += n;
                latencies_us.push(t.elapsed().as_micros() as u64);
            }
            Err(e) => {
                *errors
                    .entry(if e.code == -1 {
                        "wrong result"
                    } else {
                        e.name()
                    })
                    .or_default() += 1;
                first_error.get_or_insert_with(|| e.to_string());
                if role == "writer" {
                    let _ = db.try_exec("ROLLBACK");
                }
            }
        }
    }
    println!(
        "{}",
        json!({ "role": role, "ops": ops, "rows": rows, "errors": errors, "first_error": first_error, "latencies_us": latencies_us })
    );
}

// ---- the orchestrating side ----

struct Side {
    name: &'static str,
    shim: bool,
    db: String,
}

struct Bench {
    _cluster: Cluster,
    env: Vec<(String, String)>,
    shim: PathBuf,
    me: PathBuf,
}

impl Bench {
    fn worker(&self, side: &Side, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.me);
        cmd.args([
            "--db",
            &side.db,
            "--sqlite-settings",
            if side.shim { "0" } else { "1" },
        ])
        .args(args);
        cmd.env_remove("LD_PRELOAD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if side.shim {
            cmd.envs(self.env.iter().cloned())
                .env("LD_PRELOAD", &self.shim);
        }
        cmd
    }

    fn one(&self, side: &Side, args: &[&str]) -> Value {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = self.worker(side, &args).output().expect("worker");
        assert!(out.status.success(), "{} worker {args:?} failed", side.name);
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or(Value::Null)
    }

    fn count(&self, side: &Side) -> i64 {
        self.one(side, &["--worker", "count"])["count"]
            .as_i64()
            .expect("count")
    }

    /// One window of `seconds` with `writers` and `readers` processes.
    fn window(
        &self,
        side: &Side,
        writers: usize,
        readers: usize,
        read_every_ms: u64,
        seconds: u64,
    ) -> Value {
        let before = self.count(side);
        let from = now_ms() + 1000;
        let until = from + seconds * 1000;
        let roles =
            std::iter::repeat_n("writer", writers).chain(std::iter::repeat_n("reader", readers));
        let children: Vec<_> = roles
            .enumerate()
            .map(|(i, role)| {
                let index = if role == "writer" { i } else { i - writers };
                let args = [
                    "--worker".into(),
                    role.to_string(),
                    "--index".into(),
                    index.to_string(),
                    "--writers".into(),
                    writers.to_string(),
                    "--from-ms".into(),
                    from.to_string(),
                    "--until-ms".into(),
                    until.to_string(),
                    "--read-every-ms".into(),
                    read_every_ms.to_string(),
                ];
                self.worker(side, &args).spawn().expect("worker")
            })
            .collect();
        let outputs: Vec<Value> = children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().expect("worker");
                let v = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
                    .unwrap_or(Value::Null);
                if !out.status.success() || v.is_null() {
                    eprintln!(
                        "concurrency-bench: a {} worker failed ({:?})",
                        side.name, out.status
                    );
                }
                v
            })
            .collect();
        let after = self.count(side);
        let secs = seconds as f64;
        fn of_role<'a>(outputs: &'a [Value], role: &'a str) -> impl Iterator<Item = &'a Value> {
            outputs.iter().filter(move |o| o["role"] == role)
        }
        let sum = |role: &str, key: &str| {
            of_role(&outputs, role)
                .filter_map(|o| o[key].as_i64())
                .sum::<i64>()
        };
        let latency = |role: &str| {
            let mut all: Vec<f64> = of_role(&outputs, role)
                .flat_map(|o| o["latencies_us"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_f64())
                .collect();
            if all.is_empty() {
                return json!(null);
            }
            let (p50, p99) = median_p99(&mut all);
            json!({ "p50_ms": p50 / 1000.0, "p99_ms": p99 / 1000.0 })
        };
        let mut errors: BTreeMap<String, i64> = BTreeMap::new();
        let mut first_errors = Vec::new();
        for o in &outputs {
            for (k, v) in o["errors"].as_object().into_iter().flatten() {
                *errors
                    .entry(format!("{} {k}", o["role"].as_str().unwrap_or("?")))
                    .or_default() += v.as_i64().unwrap_or(0);
            }
            if let Some(e) = o["first_error"].as_str() {
                first_errors.push(e.to_string());
            }
        }
        let rows_written = sum("writer", "rows");
        json!({
            "side": side.name,
            "workers_ok": outputs.iter().filter(|o| !o.is_null()).count(),
            "workers": writers + readers,
            "writes_per_s": sum("writer", "ops") as f64 / secs,
            "rows_written_per_s": rows_written as f64 / secs,
            "reads_per_s": sum("reader", "ops") as f64 / secs,
            "write_latency": latency("writer"),
            "read_latency": latency("reader"),
            "errors": errors,
            "first_errors": first_errors,
            "lost_rows": rows_written - (after - before),
        })
    }
}

fn main() {
    if std::env::args().any(|a| a == "--worker") {
        return worker();
    }
    let rounds: usize = cli::opt("rounds", 3);
    let seconds: u64 = cli::opt("seconds", 10);
    let writers: usize = cli::opt("writers", 3);
    let readers: usize = cli::opt("readers", 3);
    let read_every_ms: u64 = cli::opt("read-every-ms", 5);
    let cluster = Cluster::start().expect("start PostgreSQL");
    cluster
        .psql(&format!("CREATE SCHEMA {SCHEMA}"))
        .expect("schema");
    let tmp = TempDir::new("plex-pg-bench-concurrency");
    let bench = Bench {
        env: fixture::shim_env_for(&cluster, SCHEMA),
        _cluster: cluster,
        shim: plex_pg_tests::shim(),
        me: std::env::current_exe().unwrap(),
    };
    let sides = [
        Side {
            name: "SQLite",
            shim: false,
            db: tmp.path().join(LIBRARY).display().to_string(),
        },
        Side {
            name: "shim",
            shim: true,
            db: Path::new("/nonexistent/Plug-in Support/Databases")
                .join(LIBRARY)
                .display()
                .to_string(),
        },
    ];
    for side in &sides {
        bench.one(side, &["--worker", "setup"]);
    }
    let mut windows = Vec::new();
    for round in 0..rounds {
        for i in rotation(round, sides.len()) {
            let mut w = bench.window(&sides[i], writers, readers, read_every_ms, seconds);
            w["round"] = json!(round);
            eprintln!(
                "concurrency-bench: round {round} {:<6} {:>7.1} writes/s {:>8.1} reads/s errors {}",
                sides[i].name,
                w["writes_per_s"].as_f64().unwrap_or(0.0),
                w["reads_per_s"].as_f64().unwrap_or(0.0),
                w["errors"]
            );
            windows.push(w);
        }
    }
    let mut summary = serde_json::Map::new();
    for side in &sides {
        let mine: Vec<&Value> = windows.iter().filter(|w| w["side"] == side.name).collect();
        let spread = |f: &dyn Fn(&Value) -> Option<f64>| {
            Spread::of(&mine.iter().filter_map(|w| f(w)).collect::<Vec<_>>())
                .map(Spread::to_json)
                .unwrap_or(Value::Null)
        };
        let mut errors: BTreeMap<String, i64> = BTreeMap::new();
        for w in &mine {
            for (k, v) in w["errors"].as_object().into_iter().flatten() {
                *errors.entry(k.clone()).or_default() += v.as_i64().unwrap_or(0);
            }
        }
        summary.insert(
            side.name.into(),
            json!({
                "writes_per_s": spread(&|w| w["writes_per_s"].as_f64()),
                "rows_written_per_s": spread(&|w| w["rows_written_per_s"].as_f64()),
                "reads_per_s": spread(&|w| w["reads_per_s"].as_f64()),
                "write_p50_ms": spread(&|w| w["write_latency"]["p50_ms"].as_f64()),
                "write_p99_ms": spread(&|w| w["write_latency"]["p99_ms"].as_f64()),
                "read_p50_ms": spread(&|w| w["read_latency"]["p50_ms"].as_f64()),
                "read_p99_ms": spread(&|w| w["read_latency"]["p99_ms"].as_f64()),
                "errors": errors,
                "lost_rows": mine.iter().filter_map(|w| w["lost_rows"].as_i64()).sum::<i64>(),
                "failed_workers": mine.iter().map(|w| w["workers"].as_i64().unwrap_or(0) - w["workers_ok"].as_i64().unwrap_or(0)).sum::<i64>(),
            }),
        );
    }
    let ratio = |key: &str| {
        let values: Vec<f64> = (0..rounds)
            .filter_map(|r| {
                let of = |side: &str| {
                    windows
                        .iter()
                        .find(|w| w["side"] == side && w["round"] == r)
                        .and_then(|w| w[key].as_f64())
                };
                Some(of("shim")? / of("SQLite")?)
            })
            .collect();
        Spread::of(&values)
            .map(Spread::to_json)
            .unwrap_or(Value::Null)
    };
    let out = json!({
        "settings": { "rounds": rounds, "seconds": seconds, "writers": writers, "readers": readers, "read_every_ms": read_every_ms, "items": ITEMS, "rows_per_transaction": ROWS_PER_TRANSACTION, "busy_timeout_ms": BUSY_TIMEOUT_MS },
        "sides": summary,
        "shim_over_sqlite": { "writes_per_s": ratio("writes_per_s"), "reads_per_s": ratio("reads_per_s") },
        "windows": windows,
    });
    let path = results::write("concurrency", &out);
    eprintln!("concurrency-bench: wrote {}", path.display());
}
