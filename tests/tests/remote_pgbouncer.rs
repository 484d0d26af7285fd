//! PgBouncer (Debian's 1.18) in front of PostgreSQL. In session mode each
//! shim connection is a session of its own and everything works: the core
//! of the shim's behaviour runs through it here (open, create, writes in
//! and out of transactions, a failing statement inside a transaction,
//! streaming reads, forks while a query streams). In transaction and
//! statement mode a session's state (its schema and time zone, its
//! prepared statements) would not survive from one transaction to the
//! next: the shim refuses such a connection at open, `check` fails it and
//! the launcher does not start Plex, each saying to set
//! `pool_mode = session`.

use plex_pg_tests::{
    artifact, attempt, pg, python_script, run, schema_with, shim, PgBouncer, Run, TempDir,
};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn bouncer(mode: &str) -> PgBouncer {
    let server = pg();
    PgBouncer::start(&server.socket_dir, server.port, mode)
}

fn python(bouncer: &PgBouncer, schema: &str, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(python_script(script))
        .args(args)
        .envs(bouncer.env(schema))
        .env("LD_PRELOAD", shim());
    cmd
}

fn last_json(out: &plex_pg_tests::Run) -> Value {
    serde_json::from_str(out.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr))
}

#[test]
fn session_pooling_runs_the_shims_core() {
    let b = bouncer("session");
    let schema = schema_with(
        "bouncer",
        "CREATE TABLE items (id bigint PRIMARY KEY, title text, rating double precision, data bytea, note text); \
         CREATE TABLE metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
         INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, 40000) g",
    );
    let dir = TempDir::new("bouncer");
    let db = dir.library_db();

    // Open, create, write outside a transaction, read back.
    let (v, stderr, _) = attempt(
        &b.env(&schema),
        &[
            "CREATE TABLE made_here (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO made_here (name) VALUES ('one')",
            "INSERT INTO made_here (name) VALUES ('two')",
            "SELECT id, name FROM made_here ORDER BY id",
        ],
    );
    assert_eq!(v["opened"], true, "{v}\n{stderr}");
    assert_eq!(v["rows"], json!([[1, "one"], [2, "two"]]), "{v}\n{stderr}");
    assert!(
        !stderr.contains("pooled per"),
        "session mode is not refused: {stderr}"
    );

    // Transactions: rollback, savepoints, a failing statement inside a
    // transaction that leaves it usable.
    let out = run(&mut python(&b, &schema, "transactions.py", &[&db]), LIMIT);
    out.assert_ok();
    let log = last_json(&out);
    assert_eq!(log["ids"], json!([21, 23, 24]), "{log}");
    let dup = log["duplicate"].as_str().unwrap();
    assert!(dup.starts_with("IntegrityError"), "{dup}");
    assert_eq!(
        pg().psql(&format!(
            "SELECT id FROM {schema}.items WHERE id >= 20 ORDER BY id"
        )),
        "21\n23\n24\n"
    );

    // A transaction of 5,000 inserts.
    let out = run(
        &mut python(&b, &schema, "writes.py", &[&db, "load", "5000"]),
        LIMIT,
    );
    out.assert_ok();
    assert_eq!(last_json(&out)["rows"], 5000);
    assert_eq!(
        pg().psql(&format!("SELECT count(*) FROM {schema}.loaded")),
        "5000\n"
    );

    // Streaming 40,000 rows while forking 20 children that each open their
    // own connection (a PgBouncer session each) and query.
    let out = run(
        &mut python(&b, &schema, "fork_stream.py", &[&db, "2000"]),
        Duration::from_secs(240),
    );
    out.assert_ok();
    let got = last_json(&out);
    assert_eq!(got["rows"], 40_000, "every row, once: {}", out.stderr);
    assert_eq!(got["bad"], 0);
    let children = got["children"].as_array().unwrap();
    assert_eq!(children.len(), 20);
    for child in children {
        assert_eq!(child["exit"], 0);
        assert_eq!(child["count"], 40_000, "{child}");
    }

    // `check` sees one backend per session.
    let (line, _) = check_pooling_line(&b, &schema);
    assert!(
        line.starts_with("ok") && line.contains("one backend per session"),
        "{line}"
    );
}

/// `plex-pg-launcher check` through the bouncer: its `postgres pooling:`
/// line, and the whole run.
fn check_pooling_line(b: &PgBouncer, schema: &str) -> (String, Run) {
    let out = run(
        Command::new(artifact("plex-pg-launcher"))
            .arg("check")
            .envs(b.env(schema)),
        Duration::from_secs(60),
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("postgres pooling:"))
        .unwrap_or_else(|| panic!("no pooling line:\n{}\n{}", out.stdout, out.stderr))
        .to_string();
    (line, out)
}

/// Every refusal names the cause and the remedy.
fn assert_names_session_mode(text: &str, per: &str) {
    assert!(
        text.contains(&format!("pooled per {per}")) && text.contains("pool_mode = session"),
        "the refusal names the cause and says to set pool_mode = session: {text}"
    );
}

fn refused_everywhere(mode: &str, per: &str) {
    let b = bouncer(mode);
    let schema = schema_with(&format!("bouncer_{mode}"), "CREATE TABLE t (a bigint)");

    // The shim: a clear SQLite error at open, nothing written.
    let (v, stderr, _) = attempt(&b.env(&schema), &["INSERT INTO t VALUES (1)"]);
    assert_eq!(v["opened"], false, "{v}\n{stderr}");
    assert_eq!(v["error"]["class"], "OperationalError", "{v}");
    assert_names_session_mode(v["error"]["message"].as_str().unwrap(), per);
    assert_eq!(
        pg().psql(&format!("SELECT count(*) FROM {schema}.t")),
        "0\n"
    );

    // `check`: a FAIL line, and a failing exit status.
    let (line, out) = check_pooling_line(&b, &schema);
    assert!(line.starts_with("FAIL"), "{line}");
    assert_names_session_mode(&line, per);
    assert_eq!(out.code, Some(1), "{}", out.stdout);

    // The launcher: Plex is not started.
    let marker = TempDir::new("bouncer-start");
    let started = marker.path().join("started");
    let out = run(
        Command::new(artifact("plex-pg-launcher"))
            .arg("--")
            .arg("touch")
            .arg(&started)
            .envs(b.env(&schema))
            .env("PLEX_PG_ALLOW_EMPTY_LIBRARY", "1"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert_names_session_mode(&out.stderr, per);
    assert!(out.stderr.contains("Nothing was started"), "{}", out.stderr);
    assert!(!started.exists(), "the command must not have run");
}

#[test]
fn transaction_pooling_is_refused_at_open_by_check_and_at_start() {
    refused_everywhere("transaction", "transaction");
}

#[test]
fn statement_pooling_is_refused_too() {
    refused_everywhere("statement", "statement");
}
