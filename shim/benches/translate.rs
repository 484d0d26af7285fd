//! How long translation takes, over Plex's real SQL (both fixtures, every
//! statement in turn; criterion's time is per statement):
//!
//! - `cached_lookup`: what the runtime pays once a text is translated — a
//!   lookup of the statement text in a map of translations;
//! - `uncached/memoized_catalog`: parsing, rewriting and printing, with the
//!   catalog's answers already at hand (the translator's own cost);
//! - `uncached/live_catalog`: a first translation as the runtime does it,
//!   reading the catalog of a real PostgreSQL (a throwaway cluster) holding
//!   Plex's schema.
//!
//! Run: `cargo bench -p plex-pg-shim --bench translate`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use plex_pg_launcher::cluster::Cluster;
use plex_pg_shim::translate::{bootstrap_sql, translate, Action, Catalog, Translation};

const SCHEMA: &str = "bench";

fn fixture(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/plex")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.trim().trim_end_matches(';').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The catalog of a live server, values read back as text.
struct LiveCatalog {
    client: postgres::Client,
}

impl Catalog for LiveCatalog {
    fn schema(&self) -> &str {
        SCHEMA
    }
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let rows = self.client.query(sql, &params).map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| (0..r.len()).map(|i| text_value(r, i)).collect())
            .collect())
    }
}

fn text_value(row: &postgres::Row, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<_, Option<String>>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<_, Option<i64>>(i) {
        return v.map(|n| n.to_string());
    }
    row.try_get::<_, Option<i32>>(i)
        .ok()
        .flatten()
        .map(|n| n.to_string())
}

/// A catalog query's rows, every value as text.
type Rows = Vec<Vec<Option<String>>>;

/// Answers recorded from a live catalog, replayed without a server.
#[derive(Default)]
struct MemoCatalog {
    /// By query text and parameters.
    answers: HashMap<(String, Vec<String>), Rows>,
}

impl Catalog for MemoCatalog {
    fn schema(&self) -> &str {
        SCHEMA
    }
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        let key = (
            sql.to_string(),
            params.iter().map(|p| p.to_string()).collect(),
        );
        self.answers
            .get(&key)
            .cloned()
            .ok_or_else(|| "not recorded".to_string())
    }
}

/// Records what a live catalog answers.
struct Recorder<'l> {
    live: &'l mut LiveCatalog,
    memo: &'l mut MemoCatalog,
}

impl Catalog for Recorder<'_> {
    fn schema(&self) -> &str {
        SCHEMA
    }
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        let rows = self.live.query(sql, params)?;
        let key = (
            sql.to_string(),
            params.iter().map(|p| p.to_string()).collect(),
        );
        self.memo.answers.insert(key, rows.clone());
        Ok(rows)
    }
}

/// A server holding Plex's schema, created through the translator.
fn server_with_plex_schema(schema_sql: &[String]) -> (Cluster, LiveCatalog) {
    let cluster = Cluster::start().expect("a throwaway PostgreSQL cluster");
    let conn = format!(
        "host={} port={} user={} password={} dbname={}",
        cluster.socket_dir().display(),
        cluster.port(),
        Cluster::USER,
        Cluster::PASSWORD,
        Cluster::DATABASE
    );
    let mut client = postgres::Client::connect(&conn, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {SCHEMA}; SET search_path = {SCHEMA}"
        ))
        .unwrap();
    for s in bootstrap_sql(SCHEMA) {
        client
            .batch_execute(&s)
            .unwrap_or_else(|e| panic!("bootstrap: {e}\n{s}"));
    }
    let mut catalog = LiveCatalog { client };
    for sql in schema_sql {
        let t = translate(sql, &mut catalog).unwrap_or_else(|e| panic!("{sql}: {e}"));
        if let Action::Run(statements) = t.action {
            for s in statements {
                catalog
                    .client
                    .query(s.sql.as_str(), &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", s.sql));
            }
        }
    }
    (cluster, catalog)
}

fn benches(c: &mut Criterion) {
    let schema_sql = fixture("sqlite_schema.sql");
    let statements: Vec<String> = schema_sql
        .iter()
        .cloned()
        .chain(fixture("statements.sql"))
        .collect();
    let (_cluster, mut live) = server_with_plex_schema(&schema_sql);

    let mut memo = MemoCatalog::default();
    let mut cache: HashMap<String, Arc<Translation>> = HashMap::new();
    for sql in &statements {
        let mut recorder = Recorder {
            live: &mut live,
            memo: &mut memo,
        };
        if let Ok(t) = translate(sql, &mut recorder) {
            cache.insert(sql.clone(), Arc::new(t));
        }
    }
    eprintln!(
        "{} statements, {} translated",
        statements.len(),
        cache.len()
    );

    let mut group = c.benchmark_group("translate");
    let mut i = 0;
    group.bench_function("cached_lookup", |b| {
        b.iter(|| {
            i = (i + 1) % statements.len();
            black_box(cache.get(black_box(statements[i].as_str())).cloned())
        })
    });
    group.bench_function("uncached/memoized_catalog", |b| {
        b.iter(|| {
            i = (i + 1) % statements.len();
            black_box(translate(black_box(&statements[i]), &mut memo).ok())
        })
    });
    group.bench_function("uncached/live_catalog", |b| {
        b.iter(|| {
            i = (i + 1) % statements.len();
            black_box(translate(black_box(&statements[i]), &mut live).ok())
        })
    });
    group.finish();
}

criterion_group!(translation, benches);
criterion_main!(translation);
