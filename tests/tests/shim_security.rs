//! The shim's side of `docs/security.md`: a malformed password in the
//! configuration is never repeated into Plex's log or an SQLite error
//! message; the connect retry window lasts as long as configured; errors
//! that retrying cannot fix (no password where one is needed) fail at once
//! with the real cause. Real PostgreSQL, a real client (Python's sqlite3)
//! with the shim preloaded.

use plex_pg_tests::{attempt, pg, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Attack 4, in the shim: the same malformed passwords as the launcher's
/// test; neither the SQLite error nor the log may hold them.
#[test]
fn a_malformed_password_is_never_repeated_by_the_shim() {
    for (doc, secret) in [
        ("[postgres]\npassword = 424242\n", "424242"),
        (
            "[postgres]\npassword = \"s3cret-unterminated\n",
            "s3cret-unterminated",
        ),
    ] {
        let dir = TempDir::new("shim-secret");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, doc).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut env = pg().env("security");
        env.retain(|(k, _)| k != "PLEX_PG_CONFIG");
        env.push(("PLEX_PG_CONFIG".into(), file.display().to_string()));
        let (v, stderr, _) = attempt(&env, &["SELECT 1"]);
        assert_eq!(v["opened"], false, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("config.toml"), "{msg}");
        assert!(
            !msg.contains(secret),
            "the SQLite error holds the password: {msg}"
        );
        assert!(
            !stderr.contains(secret),
            "the log holds the password: {stderr}"
        );
    }
}

/// The test server over TCP on 127.0.0.1 (which asks for a password, where
/// the socket trusts), at `port`.
fn tcp_env(port: u16, password: &str, retry_for_ms: u64) -> Vec<(String, String)> {
    let mut env = pg().env("security");
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "PLEX_PG_HOST" | "PLEX_PG_PORT" | "PLEX_PG_PASSWORD"
        )
    });
    env.push(("PLEX_PG_HOST".into(), "127.0.0.1".into()));
    env.push(("PLEX_PG_PORT".into(), port.to_string()));
    env.push(("PLEX_PG_PASSWORD".into(), password.into()));
    env.push(("PLEX_PG_RETRY_FOR_MS".into(), retry_for_ms.to_string()));
    env
}

/// The port of the test server's TCP listener on 127.0.0.1.
fn server_port() -> u16 {
    pg().port
}

/// After `after`, listen on `port` and pass every connection through to
/// the test server: a server that comes back while the shim retries.
fn server_back_on(port: u16, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy port");
        for client in listener.incoming().take(8) {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", server_port())) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server.try_clone().unwrap(), client.try_clone().unwrap()),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    })
}

/// Attack 9: with `retry_for_ms = 3000`, a server back after 2.3 s must be
/// found (the shim used to give up at 1.55 s, its backoff's next step
/// being longer than what was left).
#[test]
fn the_retry_window_lasts_as_long_as_configured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _proxy = server_back_on(port, Duration::from_millis(2300));
    let (v, stderr, took) = attempt(
        &tcp_env(port, plex_pg_tests::PG_PASSWORD, 3000),
        &["SELECT 1"],
    );
    assert_eq!(v["opened"], true, "gave up after {took:?}: {v}\n{stderr}");
    assert_eq!(v["rows"], serde_json::json!([[1]]), "{v}");
    assert!(took >= Duration::from_millis(2300), "{took:?}");
    assert!(stderr.contains("reachable again"), "{stderr}");
}

/// Attack 9: a server that asks for a password when none is configured
/// fails at once, saying so, instead of after the whole retry window as
/// an `invalid configuration`.
#[test]
fn a_missing_password_fails_at_once_with_the_real_cause() {
    let (v, stderr, took) = attempt(&tcp_env(server_port(), "", 20_000), &["SELECT 1"]);
    assert_eq!(v["opened"], false, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("postgres.password") && msg.contains("none is configured"),
        "{msg}"
    );
    assert!(
        took < Duration::from_secs(10),
        "retried a missing password for {took:?}\n{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
}

/// An unknown database (SQLSTATE 3D000) fails at once, naming the key.
#[test]
fn an_unknown_database_fails_at_once() {
    let mut env = pg().env("security");
    env.retain(|(k, _)| k != "PLEX_PG_DATABASE");
    env.push(("PLEX_PG_DATABASE".into(), "no_such_database_plex_pg".into()));
    env.push(("PLEX_PG_RETRY_FOR_MS".into(), "20000".into()));
    let (v, stderr, took) = attempt(&env, &["SELECT 1"]);
    assert_eq!(v["opened"], false, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("postgres.database"), "{msg}");
    assert!(
        took < Duration::from_secs(10),
        "retried an unknown database for {took:?}\n{stderr}"
    );
}
