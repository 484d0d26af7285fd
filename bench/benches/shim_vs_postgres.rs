//! The shim against the `postgres` crate used directly: same server, same
//! queries, one process, side by side. Point select by primary key (with a
//! warm translation cache: the statement is prepared anew each time, as
//! Plex's database layer does), an insert, and the 40,000-row hash query
//! of the January 2026 incident, read row by row.
//!
//! The process re-executes itself with the shim preloaded (the `postgres`
//! crate makes no SQLite calls, so the preload changes nothing for it).

use criterion::{criterion_group, BatchSize, Criterion};
use plex_pg_bench::capi::Db;
use plex_pg_bench::fixture::{self, ITEMS};
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};

const CHILD: &str = "PLEX_PG_BENCH_CHILD";
const LIBRARY: &str = "/nonexistent/Plug-in Support/Databases/com.plexapp.plugins.library.db";

fn cluster_coordinates() -> (std::path::PathBuf, u16) {
    (
        std::env::var_os("PLEX_PG_HOST").expect("PLEX_PG_HOST").into(),
        std::env::var("PLEX_PG_PORT").expect("PLEX_PG_PORT").parse().unwrap(),
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

fn point_select(c: &mut Criterion) {
    let mut g = c.benchmark_group("point_select");
    let db = Db::open(LIBRARY);
    let sql = "SELECT id, guid, title FROM metadata_items WHERE id = ?";
    let next = AtomicI64::new(0);
    let id = || next.fetch_add(7919, Ordering::Relaxed) % ITEMS + 1;
    g.bench_function("shim", |b| {
        b.iter(|| {
            let mut st = db.prepare(sql);
            st.bind_int(1, id());
            assert!(st.step());
            black_box((st.int(0), st.text_len(1), st.text_len(2)));
        })
    });
    let mut client = postgres_client();
    let stmt = client.prepare("SELECT id, guid, title FROM metadata_items WHERE id = $1").unwrap();
    g.bench_function("postgres", |b| {
        b.iter(|| {
            let row = client.query_one(&stmt, &[&id()]).unwrap();
            black_box((row.get::<_, i64>(0), row.get::<_, &str>(1).len(), row.get::<_, &str>(2).len()));
        })
    });
    g.finish();
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert");
    let db = Db::open(LIBRARY);
    g.bench_function("shim", |b| {
        b.iter(|| {
            let mut st = db.prepare("INSERT INTO plays (item, at) VALUES (?, ?)");
            st.bind_int(1, 42);
            st.bind_int(2, 1_764_000_000);
            assert!(!st.step());
        })
    });
    let mut client = postgres_client();
    let stmt = client.prepare("INSERT INTO plays (item, at) VALUES ($1, $2)").unwrap();
    g.bench_function("postgres", |b| b.iter(|| client.execute(&stmt, &[&42i64, &1_764_000_000i64]).unwrap()));
    g.finish();
}

fn hash_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash_scan_40k");
    g.sample_size(20);
    let db = Db::open(LIBRARY);
    let sql = "SELECT id,guid FROM metadata_items where hash is null";
    g.bench_function("shim", |b| {
        b.iter_batched(
            || db.prepare(sql),
            |mut st| {
                let mut n = 0;
                while st.step() {
                    black_box((st.int(0), st.text_len(1)));
                    n += 1;
                }
                assert_eq!(n, ITEMS);
            },
            BatchSize::PerIteration,
        )
    });
    let mut client = postgres_client();
    let stmt = client.prepare("SELECT id,guid FROM metadata_items where hash is null").unwrap();
    g.bench_function("postgres", |b| {
        b.iter(|| {
            let mut rows = client.query_raw(&stmt, std::iter::empty::<i64>()).unwrap();
            let mut n = 0;
            while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows).unwrap() {
                black_box((row.get::<_, i64>(0), row.get::<_, &str>(1).len()));
                n += 1;
            }
            assert_eq!(n, ITEMS);
        })
    });
    g.finish();
}

criterion_group!(benches, point_select, insert, hash_scan);

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
        std::process::exit(status.code().unwrap_or(1));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
