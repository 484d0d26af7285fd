//! The shim against the `postgres` crate used directly: same server, same
//! queries, one process, side by side. Point select by primary key (with a
//! warm translation cache: the statement is prepared anew each time, as
//! Plex's database layer does), an insert, and the 40,000-row hash query
//! of the January 2026 incident, read row by row (prepared anew too).
//!
//! Measured twice over the same closures: by criterion (each side in turn,
//! with its confidence intervals), then interleaved: short batches of the
//! shim and of the crate alternate, round after round, and the ratio of
//! each round's pair is kept, so a machine whose load changes during the
//! run shifts both sides of every ratio alike. The interleaved ratios go
//! to `<target>/plex-pg-bench/shim-vs-postgres.json` for the table.
//!
//! The process re-executes itself with the shim preloaded (the `postgres`
//! crate makes no SQLite calls, so the preload changes nothing for it).

use criterion::Criterion;
use plex_pg_bench::capi::Db;
use plex_pg_bench::fixture::{self, ITEMS};
use plex_pg_bench::results;
use plex_pg_bench::stats::Spread;
use serde_json::json;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

const CHILD: &str = "PLEX_PG_BENCH_CHILD";
const LIBRARY: &str = "/nonexistent/Plug-in Support/Databases/com.plexapp.plugins.library.db";
/// Interleaved rounds per comparison, and the time each side's batch takes.
const ROUNDS: usize = 31;
const BATCH: Duration = Duration::from_millis(40);

fn cluster_coordinates() -> (std::path::PathBuf, u16) {
    (
        std::env::var_os("PLEX_PG_HOST")
            .expect("PLEX_PG_HOST")
            .into(),
        std::env::var("PLEX_PG_PORT")
            .expect("PLEX_PG_PORT")
            .parse()
            .unwrap(),
    )
}

fn postgres_client() -> postgres::Client {
    let (dir, port) = cluster_coordinates();
    postgres::Config::new()
        .host_path(dir)
        .port(port)
        .user(plex_pg_tests::PG_USER)
        .dbname(plex_pg_tests::PG_DATABASE)
        .options("-c search_path=bench")
        .connect(postgres::NoTls)
        .expect("postgres client")
}

/// One comparison: the same work done through the shim and through the crate.
struct Pair {
    group: &'static str,
    sample_size: usize,
    shim: Box<dyn FnMut()>,
    postgres: Box<dyn FnMut()>,
}

fn next_id() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    NEXT.fetch_add(7919, Ordering::Relaxed) % ITEMS + 1
}

fn point_select() -> Pair {
    let db = Db::open(LIBRARY);
    let mut client = postgres_client();
    let stmt = client
        .prepare("SELECT id, guid, title FROM metadata_items WHERE id = $1")
        .unwrap();
    Pair {
        group: "point_select",
        sample_size: 100,
        shim: Box::new(move || {
            let mut st = db.prepare("SELECT id, guid, title FROM metadata_items WHERE id = ?");
            st.bind_int(1, next_id());
            assert!(st.step());
            black_box((st.int(0), st.text_len(1), st.text_len(2)));
        }),
        postgres: Box::new(move || {
            let row = client.query_one(&stmt, &[&next_id()]).unwrap();
            black_box((
                row.get::<_, i64>(0),
                row.get::<_, &str>(1).len(),
                row.get::<_, &str>(2).len(),
            ));
        }),
    }
}

fn insert() -> Pair {
    let db = Db::open(LIBRARY);
    let mut client = postgres_client();
    let stmt = client
        .prepare("INSERT INTO plays (item, at) VALUES ($1, $2)")
        .unwrap();
    Pair {
        group: "insert",
        sample_size: 100,
        shim: Box::new(move || {
            let mut st = db.prepare("INSERT INTO plays (item, at) VALUES (?, ?)");
            st.bind_int(1, 42);
            st.bind_int(2, 1_764_000_000);
            assert!(!st.step());
        }),
        postgres: Box::new(move || {
            client.execute(&stmt, &[&42i64, &1_764_000_000i64]).unwrap();
        }),
    }
}

fn hash_scan() -> Pair {
    let db = Db::open(LIBRARY);
    let mut client = postgres_client();
    let sql = "SELECT id,guid FROM metadata_items where hash is null";
    Pair {
        group: "hash_scan_40k",
        sample_size: 20,
        shim: Box::new(move || {
            let mut st = db.prepare(sql);
            let mut n = 0;
            while st.step() {
                black_box((st.int(0), st.text_len(1)));
                n += 1;
            }
            assert_eq!(n, ITEMS);
        }),
        postgres: Box::new(move || {
            let stmt = client.prepare(sql).unwrap();
            let mut rows = client.query_raw(&stmt, std::iter::empty::<i64>()).unwrap();
            let mut n = 0;
            while let Some(row) =
                postgres::fallible_iterator::FallibleIterator::next(&mut rows).unwrap()
            {
                black_box((row.get::<_, i64>(0), row.get::<_, &str>(1).len()));
                n += 1;
            }
            assert_eq!(n, ITEMS);
        }),
    }
}

fn with_criterion(c: &mut Criterion, pair: &mut Pair) {
    let mut g = c.benchmark_group(pair.group);
    g.sample_size(pair.sample_size);
    g.bench_function("shim", |b| b.iter(&mut pair.shim));
    g.bench_function("postgres", |b| b.iter(&mut pair.postgres));
    g.finish();
}

/// Nanoseconds per call of `f` over `n` calls.
fn batch(f: &mut dyn FnMut(), n: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Shim and crate in alternating batches; each round's ratio.
fn interleaved(pair: &mut Pair) -> serde_json::Value {
    let per_call = batch(&mut pair.shim, 3).max(batch(&mut pair.postgres, 3));
    let n = ((BATCH.as_nanos() as f64 / per_call) as u32).max(1);
    let (mut shim, mut pg, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (s, p) = if round % 2 == 0 {
            let s = batch(&mut pair.shim, n);
            (s, batch(&mut pair.postgres, n))
        } else {
            let p = batch(&mut pair.postgres, n);
            (batch(&mut pair.shim, n), p)
        };
        shim.push(s);
        pg.push(p);
        ratio.push(s / p);
    }
    let spread = |v: &[f64]| Spread::of(v).map(Spread::to_json);
    eprintln!(
        "{}: interleaved shim/postgres {:.3}×",
        pair.group,
        Spread::of(&ratio).unwrap().median
    );
    json!({ "rounds": ROUNDS, "calls_per_batch": n, "shim_ns": spread(&shim), "postgres_ns": spread(&pg), "ratio": spread(&ratio) })
}

fn main() {
    if std::env::var_os(CHILD).is_none() {
        let cluster = fixture::server();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .envs(fixture::shim_env(&cluster))
            .env("LD_PRELOAD", plex_pg_tests::shim())
            .env(CHILD, "1")
            .status()
            .expect("re-run with the shim");
        // exit() runs no destructor: stop and remove the cluster first.
        drop(cluster);
        std::process::exit(status.code().unwrap_or(1));
    }
    let mut c = Criterion::default().configure_from_args();
    let mut pairs = [point_select(), insert(), hash_scan()];
    for pair in pairs.iter_mut() {
        with_criterion(&mut c, pair);
    }
    c.final_summary();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut out = serde_json::Map::new();
    for pair in pairs.iter_mut() {
        out.insert(pair.group.into(), interleaved(pair));
    }
    results::write("shim-vs-postgres", &serde_json::Value::Object(out));
}
