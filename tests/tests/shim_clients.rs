//! Real SQLite clients through the shim: Python's `sqlite3` module and the
//! `sqlite3` CLI, with `LD_PRELOAD`, on a file named like Plex's library.
//! Rows written land in PostgreSQL (checked with psql), rows read come back
//! with SQLite's types, other databases stay in SQLite, and transactions
//! behave as SQLite's.

use plex_pg_tests::{pg, python_with_shim, run, schema_with, shim, TempDir};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const ITEMS: &str =
    "CREATE TABLE items (id bigint PRIMARY KEY, title text, rating double precision, data bytea, note text)";
const LIMIT: Duration = Duration::from_secs(60);

fn json_out(stdout: &str) -> Value {
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no output"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

#[test]
fn python_rows_land_in_postgres_and_come_back_typed() {
    let schema = schema_with("clients", ITEMS);
    let dir = TempDir::new("clients");
    let db = dir.library_db();
    let out = run(
        &mut python_with_shim("roundtrip.py", &schema, &[&db]),
        LIMIT,
    );
    out.assert_ok();
    let got = json_out(&out.stdout);
    assert_eq!(
        got["names"],
        json!(["id", "title", "rating", "data", "note"])
    );
    assert_eq!(
        got["rows"],
        json!([
            [
                ["int", 1],
                ["str", "Alien"],
                ["float", 8.5],
                ["bytes", "00ff10"],
                ["NoneType", null]
            ],
            [
                ["int", 2],
                ["str", "O'Brien \u{2603}"],
                ["float", -1.25],
                ["bytes", ""],
                ["str", "x"]
            ],
            [
                ["int", 3],
                ["NoneType", null],
                ["NoneType", null],
                ["NoneType", null],
                ["NoneType", null]
            ],
        ])
    );
    assert_eq!(got["inserted"], 3);
    assert_eq!(
        got["updated"], 2,
        "sqlite3_changes after an UPDATE of two rows"
    );
    assert_eq!(got["total_changes"], 5, "3 inserted + 2 updated");
    // What PostgreSQL holds, seen without the shim.
    let stored = pg().psql(&format!(
        "SELECT id, coalesce(title,'-'), coalesce(rating::text,'-'), coalesce(encode(data,'hex'),'-'), coalesce(note,'-') FROM {schema}.items ORDER BY id"
    ));
    assert_eq!(
        stored,
        "1|Alien|8.5|00ff10|seen\n2|O'Brien \u{2603}|-1.25||seen\n3|-|-|-|-\n"
    );
    assert!(
        !dir.path().join("com.plexapp.plugins.library.db").exists(),
        "a routed database never touches the disk"
    );
}

#[test]
fn sqlite3_cli_reads_and_writes_postgres() {
    let schema = schema_with("cli", ITEMS);
    let dir = TempDir::new("cli");
    let mut cmd = Command::new("sqlite3");
    cmd.arg(dir.library_db())
        .arg("INSERT INTO items (id, title, rating) VALUES (10, 'from the cli', 2.5); SELECT id, title, rating FROM items WHERE id = 10;")
        .envs(pg().env(&schema))
        .env("LD_PRELOAD", shim());
    let out = run(&mut cmd, LIMIT);
    out.assert_ok();
    assert_eq!(out.stdout, "10|from the cli|2.5\n");
    assert_eq!(
        pg().psql(&format!("SELECT title FROM {schema}.items WHERE id = 10")),
        "from the cli\n"
    );
    // A syntax error is reported with PostgreSQL's message, not a crash.
    let mut bad = Command::new("sqlite3");
    bad.arg(dir.library_db())
        .arg("SELEC 1")
        .envs(pg().env(&schema))
        .env("LD_PRELOAD", shim());
    let out = run(&mut bad, LIMIT);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("syntax error at or near \"SELEC\""),
        "{}",
        out.stderr
    );
}

#[test]
fn other_databases_stay_in_sqlite() {
    let schema = schema_with("other", ITEMS);
    let dir = TempDir::new("other");
    let other = dir.path().join("com.plexapp.dlna.db");
    let out = run(
        &mut python_with_shim("other_db.py", &schema, &[&other.display().to_string()]),
        LIMIT,
    );
    out.assert_ok();
    assert!(
        out.stdout.starts_with("(42, 'integer', '3."),
        "real SQLite answered: {}",
        out.stdout
    );
    assert!(other.exists(), "the file is SQLite's");
    // Read back with the plain sqlite3 CLI, no shim.
    let mut plain = Command::new("sqlite3");
    plain.arg(&other).arg("SELECT x FROM kept_local");
    assert_eq!(run(&mut plain, LIMIT).stdout, "42\n");
    let tables =
        pg().psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'kept_local'");
    assert_eq!(tables, "0\n", "nothing reached PostgreSQL");
}

#[test]
fn transactions_behave_as_in_sqlite() {
    let schema = schema_with("tx", ITEMS);
    let dir = TempDir::new("tx");
    let out = run(
        &mut python_with_shim("transactions.py", &schema, &[&dir.library_db()]),
        LIMIT,
    );
    out.assert_ok();
    let log = json_out(&out.stdout);
    assert_eq!(log["in_tx_after_begin"], true);
    assert_eq!(log["in_tx_after_rollback"], false);
    assert_eq!(log["in_tx_after_commit"], false);
    assert_eq!(
        log["in_tx_after_savepoint"], true,
        "SAVEPOINT outside a transaction begins one"
    );
    assert_eq!(
        log["in_tx_after_release"], false,
        "releasing that savepoint commits"
    );
    let dup = log["duplicate"].as_str().unwrap();
    assert!(
        dup.starts_with("IntegrityError") && dup.contains("duplicate key"),
        "{dup}"
    );
    assert_eq!(
        log["commit_without_tx"],
        "cannot commit - no transaction is active"
    );
    // 20 rolled back, 22 rolled back to the savepoint; 21 and 23 survive
    // the failed duplicate insert between them; 24 by savepoint.
    assert_eq!(log["ids"], json!([21, 23, 24]));
    assert_eq!(
        pg().psql(&format!(
            "SELECT id FROM {schema}.items WHERE id >= 20 ORDER BY id"
        )),
        "21\n23\n24\n"
    );
}

#[test]
fn large_results_stream() {
    let schema = schema_with(
        "stream",
        "CREATE TABLE stream_big (id bigint PRIMARY KEY, guid text); INSERT INTO stream_big SELECT g, 'guid-' || g FROM generate_series(1, 300000) g",
    );
    let dir = TempDir::new("stream");
    let out = run(
        &mut python_with_shim(
            "stream_first_row.py",
            &schema,
            &[&dir.library_db(), "stream_big", "300000"],
        ),
        LIMIT,
    );
    out.assert_ok();
    let got = json_out(&out.stdout);
    assert_eq!(got["first"], json!([1, "guid-1"]));
    // After one row the query is still running on the server: the rest
    // is not loaded into memory before the first row is returned.
    assert_eq!(
        got["state_after_first_row"],
        json!(["active"]),
        "{}",
        out.stdout
    );
    assert_eq!(got["rows"], 300000);
    assert_eq!(got["bad"], 0);
}

#[test]
fn inert_in_a_process_that_never_opens_a_library_database() {
    let mut cmd = Command::new("python3");
    cmd.arg(plex_pg_tests::python_script("inert.py"))
        .envs(pg().env("inert"))
        .env("PLEX_PG_LOG_LEVEL", "trace")
        .env("LD_PRELOAD", shim());
    let out = run(&mut cmd, LIMIT);
    out.assert_ok();
    let got = json_out(&out.stdout);
    assert_eq!(got["shim_loaded"], true);
    assert_eq!(got["total"], 4950, "the real SQLite answered");
    assert_eq!(got["threads"], 1, "no thread started");
    assert_eq!(got["sockets"], 0, "no connection made");
    assert_eq!(out.stderr, "", "nothing logged");
}

#[test]
fn c_api_calls_python_never_makes() {
    let schema = schema_with("capi", ITEMS);
    pg().psql(&format!(
        "INSERT INTO {schema}.items (id, title) VALUES (1, 'one'), (2, 'two')"
    ));
    let dir = TempDir::new("capi");
    let out = run(
        &mut python_with_shim("capi.py", &schema, &[&dir.library_db()]),
        LIMIT,
    );
    out.assert_ok();
    let v = json_out(&out.stdout);
    assert_eq!(v["open"], 0);
    assert_eq!(
        v["busy_timeout_on_routed_handle"], 0,
        "unexported calls are safe on routed handles"
    );
    assert_eq!(v["prepare"], 0);
    assert_eq!(v["tail"], " SELECT 2");
    assert_eq!(
        v["params"],
        json!([1, ":id", 1, 0]),
        "a repeated name is one parameter"
    );
    assert_eq!(v["readonly"], 1);
    assert_eq!(v["columns"], json!(["id", "title"]));
    assert_eq!(
        v["expanded"],
        "SELECT id, title FROM items WHERE id = 1 OR id = 1 + 100"
    );
    assert_eq!(
        v["sql"],
        "SELECT id, title FROM items WHERE id = :id OR id = :id + 100"
    );
    assert_eq!(v["db_handle_matches"], true);
    assert_eq!(v["step"], 100);
    assert_eq!(v["busy_while_reading"], 1);
    assert_eq!(v["value"], json!([3, "one", "one"]));
    assert_eq!(v["bind_value"], 0);
    assert_eq!(v["bound_back"], "one");
    assert_eq!(v["done"], 101);
    assert_eq!(v["status_run"], 1);
    assert_eq!(v["close_busy"], 5, "SQLITE_BUSY with a statement alive");
    assert_eq!(
        v["close_busy_msg"],
        "unable to close due to unfinalized statements or unfinished backups"
    );
    assert_eq!(v["prepare16"], 0);
    assert_eq!(v["utf16_text"], "éone");
    assert_eq!(v["get_table"], 0);
    assert_eq!(
        v["table"],
        json!([2, 2, "id", "title", "1", "one", "2", "two"])
    );
    assert_eq!(v["exec"], 0);
    assert_eq!(v["exec_rows"], json!([{"id": "1", "note": "e"}]));
    assert_eq!(v["exec_error"], 1);
    assert!(
        v["exec_errmsg"].as_str().unwrap().contains("syntax error"),
        "{v}"
    );
    assert!(
        v["next_stmt_finalized"].as_u64().unwrap() >= 1,
        "the reused shells are visible and finalizable"
    );
    assert_eq!(v["close"], 0);
}

#[test]
fn deep_statements_on_plex_sized_thread_stacks() {
    let dir = TempDir::new("stack");
    let out = run(
        &mut python_with_shim("small_stack.py", "stack", &[&dir.library_db(), "40"]),
        LIMIT,
    );
    out.assert_ok();
    assert_eq!(
        json_out(&out.stdout),
        json!({"row": [41, "deep"]}),
        "{}",
        out.stderr
    );
}

#[test]
fn nested_statements_on_one_handle_with_a_single_connection() {
    let schema = schema_with("nested", ITEMS);
    pg().psql(&format!("INSERT INTO {schema}.items (id, title) SELECT g, 'title ' || g FROM generate_series(1, 50) g"));
    let dir = TempDir::new("nested");
    let mut cmd = python_with_shim("nested.py", &schema, &[&dir.library_db()]);
    cmd.env("PLEX_PG_POOL_MAX", "1")
        .env("PLEX_PG_POOL_SIZE", "1")
        .env("PLEX_PG_POOL_TIMEOUT_MS", "2000");
    let out = run(&mut cmd, LIMIT);
    out.assert_ok();
    let v = json_out(&out.stdout);
    let seen = v["seen"].as_array().unwrap();
    assert_eq!(
        seen.len(),
        50,
        "every outer row, each with its inner statements"
    );
    assert_eq!(seen[49], json!([50, "title 50"]));
    assert_eq!(v["notes"], 50);
}

#[test]
fn localtime_means_the_process_time_zone() {
    let dir = TempDir::new("tz");
    // 2026-07-01 00:00:00 UTC (`date -u -d 2026-07-01 +%s`): summer time in Berlin.
    let sql = "SELECT datetime(1782864000, 'unixepoch', 'localtime'), datetime('2026-01-01 12:00:00', 'utc')";
    let answer = |shimmed: bool, name: &str| {
        let mut cmd = Command::new("python3");
        cmd.arg(plex_pg_tests::python_script("attempt.py"))
            .arg(dir.path().join(name))
            .arg(sql)
            .envs(pg().env("tz"))
            .env("TZ", "Europe/Berlin");
        if shimmed {
            cmd.env("LD_PRELOAD", shim());
        }
        let out = run(&mut cmd, LIMIT);
        out.assert_ok();
        json_out(&out.stdout)["rows"].clone()
    };
    let sqlite = answer(false, "plain.db");
    // `TZ=Europe/Berlin date -d @1782864000`: CEST, two hours ahead; and
    // noon in Berlin's winter is 11:00 UTC.
    assert_eq!(
        sqlite,
        json!([["2026-07-01 02:00:00", "2026-01-01 11:00:00"]])
    );
    assert_eq!(answer(true, "com.plexapp.plugins.library.db"), sqlite);
}

#[test]
fn recycled_statement_handles_reach_the_right_database() {
    let schema = schema_with("recycled", ITEMS);
    let dir = TempDir::new("recycled");
    let other = dir.path().join("com.plexapp.dlna.db").display().to_string();
    let out = run(
        &mut python_with_shim("recycled.py", &schema, &[&dir.library_db(), &other, "200"]),
        LIMIT,
    );
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "200", "{}", out.stderr);
}
