//! Bad input gets a clear error and nothing crashes: malformed SQL, a
//! wrong password, a bad configuration value (named with its source, and
//! logged once), an unreachable server (an error within the retry window,
//! not a hang).

use plex_pg_tests::{attempt, pg, run, Pg, TempDir, PG_DATABASE, PG_PASSWORD, PG_USER};
use serde_json::Value;
use std::net::TcpListener;
use std::time::Duration;

fn tcp_env(pg: &Pg, port: u16, password: &str) -> Vec<(String, String)> {
    let mut env = pg.env("errors");
    env.retain(|(k, _)| k != "PLEX_PG_HOST" && k != "PLEX_PG_PORT" && k != "PLEX_PG_PASSWORD");
    env.push(("PLEX_PG_HOST".into(), "127.0.0.1".into()));
    env.push(("PLEX_PG_PORT".into(), port.to_string()));
    env.push(("PLEX_PG_PASSWORD".into(), password.into()));
    env
}

#[test]
fn malformed_sql_is_an_error_with_postgres_message() {
    let (v, _, _) = attempt(
        &pg().env("errors"),
        &["SELEC 1", "SELECT 1 +", "SELECT 40 + 2"],
    );
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["class"], "OperationalError");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("syntax error at or near \"SELEC\""),
        "{v}"
    );
    assert_eq!(
        v["rows"],
        serde_json::json!([[42]]),
        "the connection works on after errors"
    );
}

#[test]
fn errors_clients_match_on_use_sqlite_wording_and_keep_postgres_message() {
    let schema = plex_pg_tests::schema_with(
        "wording",
        "CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)",
    );
    let (v, _, _) = attempt(
        &pg().env(&schema),
        &[
            "SELECT * FROM no_such_thing",
            "INSERT INTO items (id, title) VALUES (1, 'a')",
            "INSERT INTO items (id, title) VALUES (1, 'b')",
            "INSERT INTO items (id, title) VALUES (2, NULL)",
            "SELECT nope FROM items",
        ],
    );
    let messages: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 4, "{v}");
    assert!(
        messages[0].starts_with("no such table: no_such_thing")
            && messages[0].contains("does not exist"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].starts_with("UNIQUE constraint failed: items.id")
            && messages[1].contains("duplicate key"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].starts_with("NOT NULL constraint failed: items.title"),
        "{}",
        messages[2]
    );
    assert!(
        messages[3].starts_with("no such column: nope"),
        "{}",
        messages[3]
    );
    let classes: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        [
            "OperationalError",
            "IntegrityError",
            "IntegrityError",
            "OperationalError"
        ]
    );
}

#[test]
fn wrong_password_says_what_to_check_and_never_logs_the_password() {
    let pg = pg();
    // TCP asks for a password (the socket trusts): find the server's port.
    let port = pg.port;
    let (v, stderr, _) = attempt(&tcp_env(pg, port, "not-the-password-123"), &["SELECT 1"]);
    assert_eq!(v["opened"], false);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(
        msg.contains("postgres.password"),
        "says what to check: {msg}"
    );
    assert!(
        !stderr.contains("not-the-password-123"),
        "password logged: {stderr}"
    );
    // The right password over TCP works.
    let (v, _, _) = attempt(&tcp_env(pg, port, PG_PASSWORD), &["SELECT 7"]);
    assert_eq!(v["rows"], serde_json::json!([[7]]), "{v}");
}

#[test]
fn bad_config_value_names_key_and_source_once() {
    let mut env = pg().env("errors");
    env.push(("PLEX_PG_POOL_SIZE".into(), "lots".into()));
    let (v, stderr, _) = attempt(&env, &["SELECT 1"]);
    assert_eq!(v["opened"], false);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("pool.size") && msg.contains("PLEX_PG_POOL_SIZE") && msg.contains("\"lots\""),
        "{msg}"
    );
    assert_eq!(
        stderr.matches("PLEX_PG_POOL_SIZE").count(),
        1,
        "logged once: {stderr}"
    );

    // A bad value in the file names the file.
    let dir = TempDir::new("badconf");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[pool]\nmax = \"many\"\n").unwrap();
    let mut env = pg().env("errors");
    env.retain(|(k, _)| k != "PLEX_PG_CONFIG");
    env.push(("PLEX_PG_CONFIG".into(), file.display().to_string()));
    let (v, _, _) = attempt(&env, &["SELECT 1"]);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("pool.max") && msg.contains(&file.display().to_string()),
        "{msg}"
    );
}

#[test]
fn unreachable_server_fails_within_the_retry_window() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = tcp_env(pg(), port, PG_PASSWORD);
    env.push(("PLEX_PG_RETRY_FOR_MS".into(), "800".into()));
    env.push(("PLEX_PG_USER".into(), PG_USER.into()));
    env.push(("PLEX_PG_DATABASE".into(), PG_DATABASE.into()));
    let (v, stderr, took) = attempt(&env, &["SELECT 1"]);
    assert_eq!(v["opened"], false);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );
    assert!(msg.contains("retried for"), "{msg}");
    assert!(stderr.contains("retrying"), "the wait is logged: {stderr}");
    assert!(took < Duration::from_secs(30), "no hang: {took:?}");
}

#[test]
fn exhausted_pool_waits_then_reports_busy() {
    let schema = plex_pg_tests::schema_with(
        "busy",
        "CREATE TABLE big (id bigint PRIMARY KEY); INSERT INTO big SELECT g FROM generate_series(1, 200000) g",
    );
    let dir = TempDir::new("busy");
    let db = dir.library_db();
    let mut cmd = plex_pg_tests::python_with_shim("pool_busy.py", &schema, &[&db]);
    cmd.env("PLEX_PG_POOL_MAX", "1")
        .env("PLEX_PG_POOL_SIZE", "1")
        .env("PLEX_PG_POOL_TIMEOUT_MS", "300");
    let out = run(&mut cmd, Duration::from_secs(60));
    out.assert_ok();
    let v: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    let busy = v["busy"]
        .as_str()
        .unwrap_or_else(|| panic!("no SQLITE_BUSY: {v}"));
    assert!(
        busy.contains("pool.max") && busy.contains("300 ms"),
        "{busy}"
    );
    assert!(
        v["waited"].as_f64().unwrap() >= 0.29,
        "it waited the timeout: {v}"
    );
    assert_eq!(v["rest"], 199_999, "the first handle's stream is intact");
    assert_eq!(
        v["after"], 200_000,
        "the second handle works once the connection is free"
    );
}
