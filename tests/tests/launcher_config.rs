//! The configuration as an administrator meets it: `check` lists every
//! problem in one run and names a mistyped variable with the one meant;
//! plex-postgresql's variables start the launcher with their meaning
//! instead of refusing it; a start with several bad values names them all.

#[path = "launcher_support.rs"]
mod launcher_support;

use std::process::Command;
use std::time::Duration;

use launcher_support::Launcher;
use plex_pg_tests::{artifact, run, TempDir};

#[test]
fn check_lists_every_configuration_error_and_names_a_mistyped_variable() {
    let dir = TempDir::new("config-check");
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[pool]\nmax = 0\n[launcher]\nmode = \"loud\"\nwatcher = \"eyes\"\n",
    )
    .unwrap();
    let out = run(
        Command::new(artifact("plex-pg-launcher"))
            .arg("--config")
            .arg(&file)
            .arg("check")
            .env_remove("PLEX_PG_CONFIG")
            .env("PLEX_PG_MOD", "enforce")
            .env("PLEX_PG_IDLE_TIMEOUT", "300")
            // Nothing answers here: the runtime checks must still run.
            .env("PLEX_PG_HOST", dir.path())
            .env("PLEX_PG_RETRY_FOR_MS", "0"),
        Duration::from_secs(60),
    );
    let fails: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL config:"))
        .collect();
    for key in ["launcher.mode", "launcher.watcher", "pool.max"] {
        assert!(
            fails
                .iter()
                .any(|l| l.contains(&format!("`{key}`")) && l.contains(&file.display().to_string())),
            "no FAIL line naming {key} and the file:\n{}",
            out.stdout
        );
    }
    let warns: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("WARN config:"))
        .collect();
    assert!(
        warns
            .iter()
            .any(|l| l.contains("PLEX_PG_MOD ") && l.contains("did you mean PLEX_PG_MODE?")),
        "the mistyped variable is not named:\n{}",
        out.stdout
    );
    assert!(
        warns
            .iter()
            .any(|l| l.contains("PLEX_PG_IDLE_TIMEOUT is plex-postgresql's")),
        "{}",
        out.stdout
    );
    // Every problem in one run: the checks after the configuration ran too.
    assert!(
        out.stdout.lines().any(|l| l.contains("postgres")),
        "the PostgreSQL check did not run:\n{}",
        out.stdout
    );
    // A configuration error: 2, as a start would give.
    assert_eq!(out.code, Some(2), "{}", out.stdout);
}

#[test]
fn plex_postgresql_variables_start_plex_with_their_meaning() {
    let mut launcher = Launcher::new();
    launcher
        .cmd
        .env("PLEX_PG_POOL_SIZE", "50")
        .env("PLEX_PG_LOG_LEVEL", "1")
        .env("PLEX_PG_MOD", "enforce")
        .args(["--mode", "off"]);
    let run = launcher.run(&["/bin/sh", "-c", "exit 7"], Duration::from_secs(30));
    assert_eq!(run.code, Some(7), "{}", run.dump());
    assert!(
        run.stderr.contains("pool.max follows pool.size = 50"),
        "{}",
        run.dump()
    );
    assert!(
        run.stderr
            .contains("log level 1 read with plex-postgresql's numbering: info"),
        "{}",
        run.dump()
    );
    assert!(
        run.stderr.contains("did you mean PLEX_PG_MODE?"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_start_with_several_bad_values_names_each_and_starts_nothing() {
    let dir = TempDir::new("config-start");
    let marker = dir.path().join("started");
    let mut launcher = Launcher::new();
    launcher
        .cmd
        .env("PLEX_PG_POOL_MAX", "none")
        .env("PLEX_PG_MODE", "loud");
    let run = launcher.run(
        &["/usr/bin/touch", &marker.display().to_string()],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(2), "{}", run.dump());
    for var in ["PLEX_PG_POOL_MAX", "PLEX_PG_MODE"] {
        assert!(run.stderr.contains(var), "{var} not named:\n{}", run.dump());
    }
    assert!(!marker.exists(), "the command was started");
}

#[test]
fn check_weighs_max_connections_against_the_pools_plex_will_open() {
    let pg = plex_pg_tests::pg();
    let max: u64 = pg.psql("SHOW max_connections").trim().parse().unwrap();
    let check = |database: &str, pool_max: u64| {
        let mut cmd = Command::new(artifact("plex-pg-launcher"));
        cmd.arg("check")
            .envs(pg.env("check_connections"))
            .env("PLEX_PG_DATABASE", database)
            .env("PLEX_PG_POOL_SIZE", "1")
            .env("PLEX_PG_POOL_MAX", pool_max.to_string());
        let out = run(&mut cmd, Duration::from_secs(60));
        out.stdout
            .lines()
            .find(|l| l.contains(" connections: "))
            .unwrap_or_else(|| panic!("no connections line:\n{}", out.stdout))
            .to_string()
    };
    let small = check(plex_pg_tests::PG_DATABASE, 2);
    assert!(
        small.starts_with("ok   connections: ")
            && small.contains(&format!("max_connections {max} ")),
        "{small}"
    );
    // A database that takes 5 connections: not even one pool of 32 fits.
    let _ = pg.try_psql("CREATE DATABASE check_budget CONNECTION LIMIT 5");
    let limited = check("check_budget", 32);
    assert!(
        limited.starts_with("FAIL connections: ")
            && limited.contains("a CONNECTION LIMIT of 5")
            && limited.contains("fewer than one process's pool.max = 32"),
        "{limited}"
    );
}

#[test]
fn check_tries_the_event_log_as_the_user_plex_runs_as() {
    let dir = TempDir::new("config-logs");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[launcher]\nuser = \"nobody\"\nevents = \"{}/events.jsonl\"\n",
            logs.display()
        ),
    )
    .unwrap();
    let logs_line = || {
        let out = run(
            Command::new(artifact("plex-pg-launcher"))
                .arg("--config")
                .arg(&file)
                .arg("check")
                .env_remove("PLEX_PG_CONFIG"),
            Duration::from_secs(60),
        );
        out.stdout
            .lines()
            .find(|l| l.contains(" logs: "))
            .unwrap_or_else(|| panic!("no logs line:\n{}", out.stdout))
            .to_string()
    };
    use std::os::unix::fs::PermissionsExt;
    // Root's directory, 0755: nobody cannot create the log there.
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = logs_line();
    assert!(
        refused.starts_with("FAIL logs: nobody cannot write")
            && refused.contains("launcher.events"),
        "{refused}"
    );
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777)).unwrap();
    let allowed = logs_line();
    assert!(
        allowed.starts_with("ok   logs: ") && allowed.contains("writable by nobody"),
        "{allowed}"
    );
}
