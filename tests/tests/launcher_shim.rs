//! The launcher with the real shim: Python's sqlite3 module under
//! `LD_PRELOAD` (set by the launcher) on a file named like Plex's library,
//! against the test PostgreSQL, forking in the middle of the incident's
//! 40,000-row hash query (the shim's own scripts, tests/python/).

#[path = "launcher_support.rs"]
mod support;

use std::time::Duration;

use plex_pg_launcher::events::Value;
use plex_pg_tests::{pg, python_script, schema_with, TempDir};
use support::{Launcher, Run};

const ROWS: i64 = 40_000;

fn library() -> (String, TempDir, String) {
    let schema = schema_with(
        "launcher_shim",
        &format!(
            "CREATE TABLE metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
             INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, {ROWS}) g"
        ),
    );
    let dir = TempDir::new("launcher-shim");
    let db = dir.library_db();
    (schema, dir, db)
}

fn launcher(schema: &str) -> Launcher {
    let mut l = Launcher::new();
    l.cmd.envs(pg().env(schema));
    l
}

fn last_json(run: &Run) -> Value {
    let line = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"rows\""))
        .unwrap_or_else(|| panic!("no result line\n{}", run.dump()));
    plex_pg_launcher::events::parse_line(line).unwrap()
}

#[test]
fn forks_of_the_real_shim_pass_the_pool_check() {
    let (schema, _dir, db) = library();
    let script = python_script("fork_stream.py").display().to_string();
    let run = launcher(&schema).run(&["python3", &script, &db, "2000"], Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let result = last_json(&run);
    assert_eq!(result["rows"], ROWS);
    assert_eq!(result["bad"], 0);
    let children = result["children"].as_array().unwrap();
    assert_eq!(children.len(), 20);
    for child in children {
        let pid = child["pid"].as_i64().unwrap();
        let fork = run.event_for("fork", pid);
        assert_eq!(fork["kind"], "fork");
        assert!(
            !fork["inherited"].as_array().unwrap().is_empty(),
            "the child was born holding the streaming socket: {fork}"
        );
        let check = run.event_for("pool_check", pid);
        assert_eq!(check["verdict"], "ok", "{}", run.dump());
        assert_eq!(check["trigger"], "after_fork", "{check}");
        assert_eq!(check["slots_in_use"], 0);
        assert_eq!(
            check["unreported"].as_array().unwrap().len(),
            0,
            "the shim named every socket the kernel saw: {check}"
        );
    }
    assert!(run.events("inherited_fd_use").is_empty(), "{}", run.dump());
    assert_eq!(run.summary()["pool_check_violations"], 0);
    assert!(run.summary()["reports_rejected"] == 0, "{}", run.dump());
}

/// The January crash: no fork handler, the child queries on the parent's
/// connection while the parent streams.
fn crash(mode: &str, limit: Duration) -> Run {
    let (schema, _dir, db) = library();
    let script = python_script("fork_crash.py").display().to_string();
    let mut l = launcher(&schema);
    l.cmd
        .env("PLEX_PG_FORK_HANDLER", "0")
        .args(["--mode", mode, "--grace-period-ms", "1000"]);
    let events = l.events_path();
    l.run_with(
        &["python3", &script, &db, &ROWS.to_string()],
        limit,
        |launcher_pid| {
            if mode == "verify" {
                // The parent may hang on its corrupted session: once the use is
                // reported, stop the tree (TERM to the launcher is forwarded).
                let seen = plex_pg_tests::cluster::wait_until(Duration::from_secs(30), || {
                    std::fs::read_to_string(&events)
                        .map(|t| t.contains("inherited_fd_use"))
                        .unwrap_or(false)
                });
                assert!(seen, "no inherited_fd_use reported within 30 s");
                std::thread::sleep(Duration::from_millis(300));
                unsafe { libc::kill(launcher_pid as i32, libc::SIGTERM) };
            }
        },
    )
}

#[test]
fn verify_reports_the_january_crash() {
    let run = crash("verify", Duration::from_secs(60));
    let uses = run.events("inherited_fd_use");
    assert!(!uses.is_empty(), "{}", run.dump());
    assert!(
        uses.iter().all(|u| u["action"] == "observed"),
        "{}",
        run.dump()
    );
    let child = uses[0]["pid"].as_i64().unwrap();
    assert_eq!(run.event_for("fork", child)["kind"], "fork");
    assert!(
        run.stderr.contains("FORK-SAFETY VIOLATION"),
        "{}",
        run.stderr
    );
}

#[test]
fn enforce_saves_the_parents_query() {
    let run = crash("enforce", Duration::from_secs(90));
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let uses = run.events("inherited_fd_use");
    assert!(
        !uses.is_empty() && uses.iter().all(|u| u["action"] == "denied"),
        "{}",
        run.dump()
    );
    let result = last_json(&run);
    assert_eq!(
        result["complete"],
        true,
        "denied in the child, the parent's stream stays intact\n{}",
        run.dump()
    );
    assert!(
        run.stdout.contains("child_error"),
        "the child's query failed instead\n{}",
        run.dump()
    );
}
