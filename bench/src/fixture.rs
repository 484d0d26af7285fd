//! What every comparison runs against: one throwaway PostgreSQL server and
//! a library-shaped table of 40,000 metadata items with a NULL hash.

use plex_pg_tests::{Cluster, PG_DATABASE, PG_USER};

pub const ITEMS: i64 = 40_000;

/// The server, with schema `bench` holding `metadata_items`.
pub fn server() -> Cluster {
    let c = Cluster::start().expect("start PostgreSQL");
    c.psql(&format!(
        "CREATE SCHEMA bench; CREATE TABLE bench.metadata_items (id bigint PRIMARY KEY, guid text, title text, hash text); \
         INSERT INTO bench.metadata_items SELECT g, 'plex://movie/' || g, 'Title ' || g, NULL FROM generate_series(1, {ITEMS}) g; \
         CREATE TABLE bench.plays (id bigserial PRIMARY KEY, item bigint, at bigint); ANALYZE"
    ))
    .expect("fixture");
    c
}

/// `PLEX_PG_*` for the shim, pointing at `c`'s socket, schema `bench`.
pub fn shim_env(c: &Cluster) -> Vec<(String, String)> {
    shim_env_for(c, "bench")
}

/// `PLEX_PG_*` for the shim (and the launcher), pointing at `c`'s socket,
/// library schema `schema`, no settings file, warnings only.
pub fn shim_env_for(c: &Cluster, schema: &str) -> Vec<(String, String)> {
    let mut env = c.env();
    env.push(("PLEX_PG_SCHEMA".into(), schema.into()));
    env.push(("PLEX_PG_CONFIG".into(), "/dev/null".into()));
    env.push(("PLEX_PG_LOG_LEVEL".into(), "warn".into()));
    env
}

/// A `postgres` crate client on the same socket, same schema.
pub fn postgres_client(c: &Cluster) -> postgres::Client {
    postgres::Config::new()
        .host_path(c.socket_dir())
        .port(c.port())
        .user(PG_USER)
        .dbname(PG_DATABASE)
        .options("-c search_path=bench")
        .connect(postgres::NoTls)
        .expect("postgres client")
}
