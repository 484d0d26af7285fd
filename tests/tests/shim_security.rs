//! The shim's side of `docs/security.md`: a malformed password in the
//! configuration is never repeated into Plex's log or an SQLite error
//! message; the connect retry window lasts as long as configured; errors
//! that retrying cannot fix (no password where one is needed) fail at once
//! with the real cause. Real PostgreSQL, a real client (Python's sqlite3)
//! with the shim preloaded.

use plex_pg_tests::{pg, python_script, run, shim, TempDir};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// Open the library database with the shim and run `SELECT 1`: the
/// client's JSON answer, its standard error, and how long it took.
fn attempt(env: &[(String, String)]) -> (Value, String, Duration) {
    let dir = TempDir::new("shim-security");
    let db = dir.path().join("com.plexapp.plugins.library.db");
    let mut cmd = Command::new("python3");
    cmd.arg(python_script("attempt.py"))
        .arg(&db)
        .arg("SELECT 1")
        .envs(env.iter().cloned())
        .env("LD_PRELOAD", shim());
    let started = Instant::now();
    let out = run(&mut cmd, Duration::from_secs(60));
    out.assert_ok();
    let v = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    (v, out.stderr, started.elapsed())
}

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
        let (v, stderr, _) = attempt(&env);
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
