//! What PostgreSQL buys a Plex user when it writes, measured side by side:
//!
//! - **Bulk load**: N AUTOINCREMENT rows inserted in one transaction through
//!   the shim (one prepared statement, stepped and reset per row, as Plex
//!   does), against the same INSERTs sent one by one through the `postgres`
//!   crate into a table whose rowid is a sequence too; at 4,000 and 40,000
//!   rows, so the per-row cost at both sizes can be compared.
//! - **A scan during playback**: a Scanner holds a write transaction open
//!   for `--hold-ms` at a time, inserting items, while a player records its
//!   play progress (an UPDATE on another table) every `--play-every-ms`
//!   and reads a page of the library. SQLite (WAL, Plex's 20 s busy
//!   timeout) against the shim.
//! - **Two scanners** inserting into the same table at once, each holding
//!   its transaction for `--hold-ms`: every statement's latency, every
//!   `SQLITE_BUSY`.
//! - **Subtransactions**: PostgreSQL 15 has no per-backend view of them;
//!   `pg_stat_slru`'s Subtrans and MultiXact counters, read before and
//!   after one transaction of `--tx-writes` writes through the shim while
//!   two readers read the newest items (those the transaction is
//!   inserting) and record play progress, show whether their snapshots went
//!   to `pg_subtrans`.
//!
//! Variants take turns round after round (`--rounds`, 15). Writes
//! `<target>/plex-pg-bench/writes.json`. The program re-executes itself as
//! each worker (`--worker`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plex_pg_bench::capi::Db;
use plex_pg_bench::stats::{rotation, Spread};
use plex_pg_bench::{cli, fixture, results};
use plex_pg_tests::{Cluster, TempDir};
use serde_json::{json, Value};

const BUSY_TIMEOUT_MS: i32 = 20_000;
const SCHEMA: &str = "writes";
const LIBRARY: &str = "com.plexapp.plugins.library.db";
const ITEMS: i64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn wait_until(ms: u64) {
    while now_ms() < ms {
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---- workers: one process, one connection ----

fn open(path: &str, sqlite: bool) -> Db {
    let db = Db::open(path);
    db.busy_timeout(BUSY_TIMEOUT_MS);
    if sqlite {
        db.exec("PRAGMA synchronous=OFF");
    }
    db
}

/// Latencies (µs) and errors by name, as a worker reports them.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: BTreeMap<&'static str, u64>,
    first_error: Option<String>,
}

impl Tally {
    fn time<T>(&mut self, f: impl FnOnce() -> Result<T, plex_pg_bench::capi::Error>) -> Option<T> {
        let t = Instant::now();
        match f() {
            Ok(v) => {
                self.latencies_us.push(t.elapsed().as_micros() as u64);
                Some(v)
            }
            Err(e) => {
                *self.errors.entry(e.name()).or_default() += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
                None
            }
        }
    }

    fn json(&self) -> Value {
        json!({ "latencies_us": self.latencies_us, "errors": self.errors, "first_error": self.first_error })
    }
}

fn set_up(db: &Db, sqlite: bool) {
    if sqlite {
        db.exec("PRAGMA journal_mode=WAL");
    }
    db.exec("CREATE TABLE metadata_items (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, guid TEXT, title TEXT)");
    db.exec("CREATE TABLE settings (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, item INTEGER, view_offset INTEGER, at INTEGER)");
    db.exec("BEGIN");
    for first in (1..=ITEMS).step_by(500) {
        let values: Vec<String> = (first..(first + 500).min(ITEMS + 1))
            .map(|i| format!("('plex://movie/{i}', 'Title {i}')"))
            .collect();
        db.exec(&format!(
            "INSERT INTO metadata_items (guid, title) VALUES {}",
            values.join(", ")
        ));
    }
    for i in 1..=100 {
        db.exec(&format!(
            "INSERT INTO settings (item, view_offset, at) VALUES ({i}, 0, 0)"
        ));
    }
    db.exec("COMMIT");
}

/// Insert `rows` rows into `table` in one transaction; the seconds taken.
fn load(db: &Db, table: &str, rows: i64) -> f64 {
    db.exec(&format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, guid TEXT)"
    ));
    let t = Instant::now();
    db.exec("BEGIN");
    let mut st = db.prepare(&format!("INSERT INTO {table} (guid) VALUES (?)"));
    for i in 0..rows {
        st.bind_text(1, &format!("plex://item/{i}"));
        st.step();
        st.reset();
    }
    drop(st);
    db.exec("COMMIT");
    t.elapsed().as_secs_f64()
}

/// A Scanner: transactions held `hold_ms` each, inserting items, until
/// `until`; or, when `writes` > 0, `writes` inserts in transactions of
/// `per_tx`.
fn scanner(db: &Db, tag: &str, hold_ms: u64, until: u64, writes: i64, per_tx: i64) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0i64;
    while if writes > 0 {
        n < writes
    } else {
        now_ms() < until
    } {
        if tally.time(|| db.try_exec("BEGIN IMMEDIATE")).is_none() {
            continue;
        }
        let end = now_ms() + hold_ms;
        let mut ok = true;
        let mut in_tx = 0;
        while ok
            && (if writes > 0 {
                in_tx < per_tx && n < writes
            } else {
                now_ms() < end
            })
        {
            n += 1;
            in_tx += 1;
            ok = tally
                .time(|| {
                    let mut st =
                        db.try_prepare("INSERT INTO metadata_items (guid, title) VALUES (?, ?)")?;
                    st.bind_text(1, &format!("plex://scan/{tag}/{n}"));
                    st.bind_text(2, &format!("Scanned {n}"));
                    st.try_step()
                })
                .is_some();
        }
        if !ok || tally.time(|| db.try_exec("COMMIT")).is_none() {
            let _ = db.try_exec("ROLLBACK");
        }
    }
    tally
}

/// A player: every `every_ms`, its play progress (an UPDATE), then a page
/// of the library (a read; with `newest`, the newest items, which a
/// scanner's open transaction is inserting), until `until`.
fn player(db: &Db, every_ms: u64, until: u64, newest: bool) -> (Tally, Tally) {
    let (mut writes, mut reads) = (Tally::default(), Tally::default());
    let mut tick = 0i64;
    let mut next = Instant::now();
    while now_ms() < until {
        tick += 1;
        writes.time(|| {
            let mut st =
                db.try_prepare("UPDATE settings SET view_offset = ?, at = ? WHERE item = ?")?;
            st.bind_int(1, tick * 1000);
            st.bind_int(2, now_ms() as i64);
            st.bind_int(3, 1 + tick % 100);
            st.try_step()
        });
        reads.time(|| {
            let mut st = if newest {
                db.try_prepare(
                    "SELECT id, title FROM metadata_items WHERE id > ? ORDER BY id DESC LIMIT 50",
                )?
            } else {
                db.try_prepare(
                    "SELECT id, title FROM metadata_items WHERE id > ? ORDER BY id LIMIT 50",
                )?
            };
            st.bind_int(1, if newest { 0 } else { (tick * 50) % ITEMS });
            let mut n = 0;
            while st.try_step()? {
                n += st.text_len(1);
            }
            Ok(n)
        });
        if every_ms == 0 {
            continue;
        }
        next += Duration::from_millis(every_ms);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    (writes, reads)
}

fn worker() {
    let role: String = cli::opt("worker", String::new());
    let path: String = cli::opt("db", String::new());
    let sqlite = cli::opt("sqlite", 0) == 1;
    let db = open(&path, sqlite);
    let from: u64 = cli::opt("from-ms", 0);
    let until: u64 = cli::opt("until-ms", 0);
    let out = match role.as_str() {
        "setup" => {
            set_up(&db, sqlite);
            json!({})
        }
        "load" => {
            let table: String = cli::opt("table", String::new());
            json!({ "seconds": load(&db, &table, cli::opt("rows", 0)) })
        }
        "scanner" => {
            wait_until(from);
            let tag: String = cli::opt("tag", String::new());
            let writes = cli::opt("writes", 0);
            let per_tx = cli::opt("per-tx", writes);
            scanner(&db, &tag, cli::opt("hold-ms", 3000), until, writes, per_tx).json()
        }
        "player" => {
            wait_until(from);
            let (w, r) = player(
                &db,
                cli::opt("play-every-ms", 1000),
                until,
                cli::opt("newest", 0) == 1,
            );
            json!({ "writes": w.json(), "reads": r.json() })
        }
        other => panic!("unknown worker {other}"),
    };
    println!("{out}");
}

// ---- the orchestrating side ----

struct Side {
    name: &'static str,
    sqlite: bool,
    db: String,
}

struct Bench {
    cluster: Cluster,
    env: Vec<(String, String)>,
    shim: PathBuf,
    me: PathBuf,
}

impl Bench {
    fn spawn(&self, side: &Side, args: &[String]) -> Child {
        let mut cmd = Command::new(&self.me);
        cmd.args([
            "--db",
            &side.db,
            "--sqlite",
            if side.sqlite { "1" } else { "0" },
        ])
        .args(args);
        cmd.env_remove("LD_PRELOAD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !side.sqlite {
            cmd.envs(self.env.iter().cloned())
                .env("LD_PRELOAD", &self.shim);
        }
        cmd.spawn().expect("worker")
    }

    fn wait(child: Child) -> Value {
        let out = child.wait_with_output().expect("worker");
        assert!(out.status.success(), "a worker failed: {:?}", out.status);
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("worker output")
    }

    fn one(&self, side: &Side, args: &[String]) -> Value {
        Self::wait(self.spawn(side, args))
    }

    /// `pg_stat_slru`'s counters of the Subtrans and MultiXact caches.
    fn slru(&self, client: &mut postgres::Client) -> Value {
        // Backends report their counters when idle, at most every second.
        std::thread::sleep(Duration::from_millis(1500));
        client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .expect("clear");
        let mut out = serde_json::Map::new();
        for row in client
            .query(
                "SELECT name, blks_zeroed, blks_hit, blks_read, blks_written, blks_exists FROM pg_stat_slru \
                 WHERE name IN ('Subtrans', 'MultiXactMember', 'MultiXactOffset')",
                &[],
            )
            .expect("pg_stat_slru")
        {
            let name: String = row.get(0);
            let v: Vec<i64> = (1..6).map(|i| row.get::<_, i64>(i)).collect();
            out.insert(
                name,
                json!({ "zeroed": v[0], "hit": v[1], "read": v[2], "written": v[3], "exists": v[4] }),
            );
        }
        Value::Object(out)
    }
}

/// `writes` inserts through the shim in transactions of `per_tx` while two
/// readers read the newest items (20 ms apart): `pg_stat_slru`'s Subtrans
/// and MultiXact counters before and after, the readers' latency.
fn subtransactions(
    bench: &Bench,
    client: &mut postgres::Client,
    shim: &Side,
    writes: i64,
    per_tx: i64,
) -> Value {
    let before = bench.slru(client);
    let from = now_ms() + 1000;
    let until = from + 5000;
    let readers: Vec<Child> = (0..2)
        .map(|i| {
            bench.spawn(
                shim,
                &args(&[
                    ("worker", "player".into()),
                    ("tag", format!("r{i}")),
                    ("from-ms", from.to_string()),
                    ("until-ms", until.to_string()),
                    ("play-every-ms", "20".into()),
                    ("newest", "1".into()),
                ]),
            )
        })
        .collect();
    let writer = bench.one(
        shim,
        &args(&[
            ("worker", "scanner".into()),
            ("tag", format!("slru{per_tx}")),
            ("from-ms", from.to_string()),
            ("until-ms", until.to_string()),
            ("writes", writes.to_string()),
            ("per-tx", per_tx.to_string()),
        ]),
    );
    let readers: Vec<Value> = readers.into_iter().map(Bench::wait).collect();
    let after = bench.slru(client);
    let delta = |cache: &str, key: &str| {
        after[cache][key].as_i64().unwrap_or(0) - before[cache][key].as_i64().unwrap_or(0)
    };
    let reads: Vec<&Value> = readers.iter().map(|r| &r["reads"]).collect();
    let v = json!({
        "writes": writes,
        "per_transaction": per_tx,
        "writer": latency(&[&writer]),
        "writer_errors": writer["errors"],
        "reader_reads": latency(&reads),
        "before": before, "after": after,
        "subtrans_hit_delta": delta("Subtrans", "hit"),
        "subtrans_read_delta": delta("Subtrans", "read"),
        "subtrans_zeroed_delta": delta("Subtrans", "zeroed"),
        "multixact_member_hit_delta": delta("MultiXactMember", "hit"),
        "multixact_offset_hit_delta": delta("MultiXactOffset", "hit"),
    });
    eprintln!(
        "writes-bench: subtransactions, {writes} writes in transactions of {per_tx}: {}",
        v["subtrans_hit_delta"]
    );
    v
}

fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
        .collect()
}

/// p50, p99 and max (ms) of latencies gathered from workers' tallies.
fn latency(tallies: &[&Value]) -> Value {
    let mut all: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t["latencies_us"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_u64())
        .collect();
    if all.is_empty() {
        return Value::Null;
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    json!({ "n": all.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0) })
}

fn errors(tallies: &[&Value]) -> Value {
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for t in tallies {
        for (k, v) in t["errors"].as_object().into_iter().flatten() {
            *sum.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }
    json!(sum)
}

fn spread(values: &[f64]) -> Value {
    Spread::of(values)
        .map(Spread::to_json)
        .unwrap_or(Value::Null)
}

fn main() {
    if std::env::args().any(|a| a == "--worker") {
        return worker();
    }
    let rounds: usize = cli::opt("rounds", 15);
    let small: i64 = cli::opt("small", 4_000);
    let large: i64 = cli::opt("large", 40_000);
    let seconds: u64 = cli::opt("seconds", 10);
    let hold_ms: u64 = cli::opt("hold-ms", 3000);
    let play_every_ms: u64 = cli::opt("play-every-ms", 1000);
    let scenario_rounds: usize = cli::opt("scenario-rounds", 3);
    let tx_writes: i64 = cli::opt("tx-writes", 10_000);
    let cluster = Cluster::start().expect("start PostgreSQL");
    cluster
        .psql(&format!("CREATE SCHEMA {SCHEMA}"))
        .expect("schema");
    let tmp = TempDir::new("plex-pg-bench-writes");
    let bench = Bench {
        env: fixture::shim_env_for(&cluster, SCHEMA),
        cluster,
        shim: plex_pg_tests::shim(),
        me: std::env::current_exe().unwrap(),
    };
    let sqlite = Side {
        name: "SQLite",
        sqlite: true,
        db: tmp.path().join(LIBRARY).display().to_string(),
    };
    let shim = Side {
        name: "shim",
        sqlite: false,
        db: PathBuf::from("/nonexistent/Plug-in Support/Databases")
            .join(LIBRARY)
            .display()
            .to_string(),
    };
    for side in [&sqlite, &shim] {
        bench.one(side, &args(&[("worker", "setup".into())]));
    }
    let mut client = postgres::Config::new()
        .host_path(bench.cluster.socket_dir())
        .port(bench.cluster.port())
        .user(plex_pg_tests::PG_USER)
        .dbname(plex_pg_tests::PG_DATABASE)
        .connect(postgres::NoTls)
        .expect("postgres client");

    // Bulk load: shim and postgres crate, both sizes, interleaved.
    let mut bulk: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut ratio_large = Vec::new();
    let mut growth = Vec::new();
    for round in 0..rounds {
        let mut got: BTreeMap<&str, f64> = BTreeMap::new();
        for i in rotation(round, 4) {
            let rows = if i % 2 == 0 { small } else { large };
            let table = format!("bulk_{round}_{i}");
            let seconds = if i < 2 {
                bench.one(
                    &shim,
                    &args(&[
                        ("worker", "load".into()),
                        ("table", table),
                        ("rows", rows.to_string()),
                    ]),
                )["seconds"]
                    .as_f64()
                    .expect("seconds")
            } else {
                let t = format!("{SCHEMA}.{table}");
                client
                    .batch_execute(&format!(
                        "CREATE TABLE {t} (id bigserial PRIMARY KEY, guid text)"
                    ))
                    .expect("create");
                let start = Instant::now();
                let mut tx = client.transaction().expect("begin");
                let st = tx
                    .prepare(&format!("INSERT INTO {t} (guid) VALUES ($1) RETURNING id"))
                    .expect("prepare");
                for r in 0..rows {
                    tx.query_one(&st, &[&format!("plex://item/{r}")])
                        .expect("insert");
                }
                tx.commit().expect("commit");
                start.elapsed().as_secs_f64()
            };
            let key = [
                "shim_small",
                "shim_large",
                "postgres_small",
                "postgres_large",
            ][i];
            got.insert(key, seconds);
            bulk.entry(key).or_default().push(seconds);
        }
        ratio_large.push(got["shim_large"] / got["postgres_large"]);
        growth.push((got["shim_large"] / large as f64) / (got["shim_small"] / small as f64));
        eprintln!(
            "writes-bench: bulk round {round}: shim {:.2} s / postgres {:.2} s for {large} rows; per-row cost at {large} / at {small}: {:.2}",
            got["shim_large"], got["postgres_large"], growth[round]
        );
    }

    // A scan during playback, and two scanners on one table: each side in
    // turn, `scenario_rounds` rounds.
    let mut scenarios: Vec<Value> = Vec::new();
    for round in 0..scenario_rounds {
        for side in [&sqlite, &shim].into_iter().cycle().skip(round % 2).take(2) {
            for kind in ["scan_during_playback", "two_scanners"] {
                let from = now_ms() + 1000;
                let until = from + seconds * 1000;
                let common = |role: &str, tag: &str| {
                    args(&[
                        ("worker", role.into()),
                        ("tag", format!("{tag}{round}")),
                        ("from-ms", from.to_string()),
                        ("until-ms", until.to_string()),
                        ("hold-ms", hold_ms.to_string()),
                        ("play-every-ms", play_every_ms.to_string()),
                    ])
                };
                let second = if kind == "two_scanners" {
                    common("scanner", "b")
                } else {
                    common("player", "p")
                };
                let children = [
                    bench.spawn(side, &common("scanner", "a")),
                    bench.spawn(side, &second),
                ];
                let outs: Vec<Value> = children.into_iter().map(Bench::wait).collect();
                let w = if kind == "two_scanners" {
                    json!({
                        "side": side.name, "kind": kind, "round": round,
                        "first_scanner": latency(&[&outs[0]]), "second_scanner": latency(&[&outs[1]]),
                        "errors": errors(&[&outs[0], &outs[1]]),
                        "first_error": outs.iter().find_map(|o| o["first_error"].as_str()),
                    })
                } else {
                    let first_error = [&outs[0], &outs[1]["writes"], &outs[1]["reads"]]
                        .iter()
                        .find_map(|o| o["first_error"].as_str());
                    json!({
                        "side": side.name, "kind": kind, "round": round,
                        "scanner": latency(&[&outs[0]]),
                        "player_write": latency(&[&outs[1]["writes"]]), "player_read": latency(&[&outs[1]["reads"]]),
                        "errors": errors(&[&outs[0], &outs[1]["writes"], &outs[1]["reads"]]),
                        "first_error": first_error,
                    })
                };
                eprintln!("writes-bench: {w}");
                scenarios.push(w);
            }
        }
    }

    // Subtransactions: `tx_writes` writes through the shim in one
    // transaction, then in transactions of 50 (fewer than the 64
    // subtransactions a backend caches), while two readers read.
    let slru = json!({
        "one_transaction": subtransactions(&bench, &mut client, &shim, tx_writes, tx_writes),
        "transactions_of_50": subtransactions(&bench, &mut client, &shim, tx_writes, 50),
    });

    let keys: Vec<(String, Value)> = bulk
        .iter()
        .map(|(k, v)| (k.to_string(), spread(v)))
        .collect();
    let out = json!({
        "settings": { "rounds": rounds, "small": small, "large": large, "seconds": seconds, "hold_ms": hold_ms,
                      "play_every_ms": play_every_ms, "scenario_rounds": scenario_rounds, "tx_writes": tx_writes,
                      "busy_timeout_ms": BUSY_TIMEOUT_MS },
        "bulk_seconds": keys.into_iter().collect::<serde_json::Map<_, _>>(),
        "bulk_shim_over_postgres_large": spread(&ratio_large),
        "bulk_per_row_large_over_small": spread(&growth),
        "scenarios": scenarios,
        "subtransactions": slru,
    });
    let path = results::write("writes", &out);
    let table = markdown(&out);
    let md = path.with_extension("md");
    std::fs::write(&md, &table).expect("write the table");
    println!("{table}");
    eprintln!(
        "writes-bench: wrote {} and {}",
        path.display(),
        md.display()
    );
}

/// A spread as `median [min–max]` with a unit.
fn show(v: &Value, unit: &str, digits: usize) -> String {
    match Spread::from_json(v) {
        Some(s) => format!(
            "{:.d$}{unit} [{:.d$}{unit}–{:.d$}{unit}]",
            s.median,
            s.min,
            s.max,
            d = digits
        ),
        None => "–".into(),
    }
}

/// One writer's latency over the rounds of a scenario: the median of the
/// rounds' p50, and the largest p99 and max of any round.
fn writer_latency(out: &Value, side: &str, kind: &str, key: &str) -> String {
    let windows: Vec<&Value> = out["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["side"] == side && w["kind"] == kind)
        .collect();
    let of = |k: &str| {
        windows
            .iter()
            .filter_map(|w| w[key][k].as_f64())
            .collect::<Vec<_>>()
    };
    let worst = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::max);
    match Spread::of(&of("p50_ms")) {
        Some(p50) => format!(
            "p50 {:.3} ms, p99 {:.2} ms, max {:.1} ms",
            p50.median,
            worst(of("p99_ms")),
            worst(of("max_ms"))
        ),
        None => "–".into(),
    }
}

fn busy(out: &Value, side: &str, kind: &str) -> u64 {
    out["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["side"] == side && w["kind"] == kind)
        .filter_map(|w| w["errors"]["SQLITE_BUSY"].as_u64())
        .sum()
}

/// The figures as a Markdown table (what `docs/benchmarks.md` quotes).
fn markdown(out: &Value) -> String {
    let s = &out["settings"];
    let b = &out["bulk_seconds"];
    let mut t = String::from("| measure | SQLite | shim | compared |\n|---|---|---|---|\n");
    t += &format!(
        "| **Bulk load: one transaction of AUTOINCREMENT inserts, {} interleaved rounds** | | | |\n",
        s["rounds"]
    );
    t += &format!(
        "| {} rows | | {} | `postgres` crate, same INSERTs one by one: {}; shim/postgres {} |\n",
        s["large"],
        show(&b["shim_large"], " s", 2),
        show(&b["postgres_large"], " s", 2),
        show(&out["bulk_shim_over_postgres_large"], "×", 2)
    );
    t += &format!(
        "| {} rows | | {} | `postgres` crate: {}; shim's per-row cost at {} / at {}: {} |\n",
        s["small"],
        show(&b["shim_small"], " s", 3),
        show(&b["postgres_small"], " s", 3),
        s["large"],
        s["small"],
        show(&out["bulk_per_row_large_over_small"], "×", 2)
    );
    t += &format!(
        "| **A scan during playback: a Scanner holding {} ms write transactions, a player recording progress every {} ms and reading a page, {} s windows, {} rounds** | | | |\n",
        s["hold_ms"], s["play_every_ms"], s["seconds"], s["scenario_rounds"]
    );
    for (label, key) in [
        ("player's progress UPDATE", "player_write"),
        ("player's page read", "player_read"),
        ("Scanner's INSERT", "scanner"),
    ] {
        t += &format!(
            "| {label} | {} | {} | |\n",
            writer_latency(out, "SQLite", "scan_during_playback", key),
            writer_latency(out, "shim", "scan_during_playback", key)
        );
    }
    t += &format!(
        "| `SQLITE_BUSY` | {} | {} | |\n",
        busy(out, "SQLite", "scan_during_playback"),
        busy(out, "shim", "scan_during_playback")
    );
    t += &format!("| **Two Scanners inserting into one table, {} ms transactions, every statement timed** | | | |\n", s["hold_ms"]);
    for (label, key) in [
        ("first Scanner", "first_scanner"),
        ("second Scanner", "second_scanner"),
    ] {
        t += &format!(
            "| {label} | {} | {} | |\n",
            writer_latency(out, "SQLite", "two_scanners", key),
            writer_latency(out, "shim", "two_scanners", key)
        );
    }
    t += &format!(
        "| `SQLITE_BUSY` | {} | {} | |\n",
        busy(out, "SQLite", "two_scanners"),
        busy(out, "shim", "two_scanners")
    );
    t += &format!(
        "| **Subtransactions: {} INSERTs through the shim, two readers of the newest rows every 20 ms; `pg_stat_slru` before and after** | | | |\n",
        s["tx_writes"]
    );
    for (label, key) in [
        ("in one transaction", "one_transaction"),
        ("in transactions of 50", "transactions_of_50"),
    ] {
        let x = &out["subtransactions"][key];
        t += &format!(
            "| {label} | | Subtrans {} hits, {} reads; MultiXactMember {} hits, MultiXactOffset {} hits | readers: p50 {} ms, p99 {} ms |\n",
            x["subtrans_hit_delta"],
            x["subtrans_read_delta"],
            x["multixact_member_hit_delta"],
            x["multixact_offset_hit_delta"],
            x["reader_reads"]["p50_ms"],
            x["reader_reads"]["p99_ms"]
        );
    }
    t
}
