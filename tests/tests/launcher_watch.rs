//! The watchers against real PostgreSQL sessions, real fork/vfork/
//! posix_spawn/clone, real ptrace and real /proc: fork-probe plays the
//! shim's side (see tests/src/bin/fork-probe.rs).

#[path = "launcher_support.rs"]
mod support;

use std::time::Duration;

use plex_pg_launcher::events::{Record, Trigger, Verdict};
use plex_pg_tests::{pg, unique_name};
use support::{probe, Launcher, Run};

const LIMIT: Duration = Duration::from_secs(60);

/// A launcher whose command sees the test server.
fn launcher() -> Launcher {
    let mut l = Launcher::new();
    l.cmd.envs(pg().env(&unique_name("launcher")));
    l
}

fn child_of(run: &Run) -> i64 {
    run.said("child")
        .unwrap_or_else(|| panic!("fork-probe printed no child\n{}", run.dump()))
        .parse()
        .unwrap()
}

fn socket_name() -> String {
    format!(".s.PGSQL.{}", pg().port)
}

/// The child's inherited sockets, as the fork event lists them.
fn inherited(run: &Run, child: i64) -> Vec<i64> {
    let fork = run.event_for("fork", child);
    let list = fork["inherited"].as_array().expect("inherited list");
    for s in list {
        assert!(
            s["peer"].as_str().unwrap().ends_with(&socket_name()),
            "not the test server's socket: {s}"
        );
    }
    list.iter().map(|s| s["fd"].as_i64().unwrap()).collect()
}

#[test]
fn fork_with_the_handler_passes_the_pool_check() {
    let run = launcher().run(&[&probe(), "fork"], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let child = child_of(&run);
    assert_eq!(inherited(&run, child).len(), 2, "{}", run.dump());
    assert_eq!(run.event_for("fork", child)["kind"], "fork");
    let Record::PoolCheck {
        verdict,
        trigger,
        report,
        slots_in_use,
        still_held,
        unreported,
        ..
    } = run.pool_check(child)
    else {
        unreachable!()
    };
    assert_eq!(
        (verdict, trigger),
        (Verdict::Ok, Trigger::AfterFork),
        "{}",
        run.dump()
    );
    assert!(report);
    assert_eq!(slots_in_use, Some(0));
    assert!(still_held.is_empty());
    assert_eq!(unreported, Some(Vec::new()));
    assert!(run.events("inherited_fd_use").is_empty(), "{}", run.dump());
    assert_eq!(run.said("parent session 0"), Some("ok"));
    assert_eq!(run.said("parent session 1"), Some("ok"));
    assert_eq!(run.summary()["pool_check_violations"], 0);
}

/// The January 2026 shape: no fork handler, the child writes on the
/// parent's session.
fn touch_without_handler(extra: &[&str]) -> Run {
    let mut l = launcher();
    l.cmd.env("PLEX_PG_FORK_HANDLER", "0").args(extra);
    l.run(&[&probe(), "fork", "--touch"], LIMIT)
}

fn assert_fd_use(run: &Run, action: &str) -> i64 {
    let child = child_of(run);
    let fds = inherited(run, child);
    assert!(!fds.is_empty(), "{}", run.dump());
    let uses = run.events("inherited_fd_use");
    assert_eq!(uses.len(), 1, "{}", run.dump());
    let u = uses[0];
    assert_eq!(u["pid"], child);
    assert_eq!(u["syscall"], "write");
    assert_eq!(u["action"], action);
    assert!(fds.contains(&u["fd"].as_i64().unwrap()));
    assert!(u["peer"].as_str().unwrap().ends_with(&socket_name()));
    let born = run.event_for("fork", child)["time"].as_f64().unwrap();
    let seen = u["time"].as_f64().unwrap();
    assert!(
        seen - born < 1.0,
        "inherited_fd_use {:.3} s after the fork",
        seen - born
    );
    assert_eq!(
        run.event_for("pool_check", child)["verdict"],
        "violation",
        "{}",
        run.dump()
    );
    child
}

#[test]
fn verify_observes_a_write_on_an_inherited_socket() {
    let run = touch_without_handler(&[]);
    assert_fd_use(&run, "observed");
    assert_eq!(
        run.said("child touch"),
        Some("ok"),
        "verify must not change what the child does\n{}",
        run.dump()
    );
    // The write reached the server on the parent's session: the parent's
    // next query sees the stray reply (this is the corruption).
    assert!(
        run.said("parent session 0").unwrap().starts_with("broken"),
        "{}",
        run.dump()
    );
    assert_eq!(run.summary()["inherited_fd_uses"], 1);
    assert!(
        run.stderr.contains("FORK-SAFETY VIOLATION"),
        "{}",
        run.stderr
    );
}

#[test]
fn enforce_denies_it_with_ebadf() {
    let run = touch_without_handler(&["--mode", "enforce"]);
    assert_fd_use(&run, "denied");
    assert_eq!(run.said("child touch"), Some("EBADF"), "{}", run.dump());
    assert_eq!(
        run.said("parent session 0"),
        Some("ok"),
        "the denied write must not reach the server\n{}",
        run.dump()
    );
    assert_eq!(run.summary()["denied"], 1);
}

#[test]
fn enforce_can_kill_the_offender() {
    let l = launcher();
    let config = l.dir.path().join("kill.toml");
    std::fs::write(&config, "[launcher]\nkill_offender = true\n").unwrap();
    let mut l = l;
    l.cmd
        .env("PLEX_PG_FORK_HANDLER", "0")
        .arg("--mode")
        .arg("enforce")
        .arg("--config")
        .arg(&config);
    let run = l.run(&[&probe(), "fork", "--touch"], LIMIT);
    assert_fd_use(&run, "killed");
    assert_eq!(run.said("child status"), Some("137"), "{}", run.dump());
    assert_eq!(run.said("parent session 0"), Some("ok"), "{}", run.dump());
}

/// Children started without fork handlers are held to the exec rule.
fn started(scenario: &str, kind: &str) {
    let run = launcher().run(&[&probe(), scenario], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let child = child_of(&run);
    let main = run.events("start")[0]["pid"].as_i64().unwrap();
    let fork = run.event_for("fork", child);
    assert_eq!(fork["kind"], kind, "{scenario}\n{}", run.dump());
    assert_eq!(
        fork["ppid"],
        main,
        "{scenario}: the parent is the process, not the thread\n{}",
        run.dump()
    );
    assert_eq!(
        inherited(&run, child).len(),
        1,
        "{scenario}\n{}",
        run.dump()
    );
    let exec = run.event_for("exec", child);
    assert!(
        exec["program"].as_str().unwrap().ends_with("/true"),
        "{exec}"
    );
    let check = run.event_for("pool_check", child);
    assert_eq!(check["trigger"], "exec", "{scenario}\n{}", run.dump());
    assert_eq!(check["verdict"], "ok", "{scenario}\n{}", run.dump());
    assert_eq!(run.said("parent session 0"), Some("ok"));
    assert_eq!(run.said("child status"), Some("0"));
}

#[test]
fn fork_exec_is_seen_and_checked_by_the_exec_rule() {
    started("fork-exec", "fork");
}

#[test]
fn posix_spawn_is_seen_as_vfork() {
    started("posix-spawn", "vfork");
}

#[test]
fn vfork_exec_is_seen() {
    started("vfork-exec", "vfork");
}

#[test]
fn fork_from_a_thread_is_seen() {
    started("thread-fork", "fork");
}

#[test]
fn procfs_watcher_flags_a_child_holding_its_parents_socket() {
    let mut l = launcher();
    l.cmd.env("PLEX_PG_FORK_HANDLER", "0").args([
        "--watcher",
        "procfs",
        "--poll-interval-ms",
        "20",
    ]);
    let run = l.run(&[&probe(), "fork", "--hold", "3000"], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.events("start")[0]["watcher"], "procfs");
    let child = child_of(&run);
    assert_eq!(run.event_for("fork", child)["kind"], "unknown");
    let check = run.event_for("pool_check", child);
    assert_eq!(check["verdict"], "violation", "{}", run.dump());
    assert_eq!(check["trigger"], "deadline", "{}", run.dump());
    assert_eq!(
        check["still_held"].as_array().unwrap().len(),
        2,
        "{}",
        run.dump()
    );
}

#[test]
fn procfs_watcher_passes_a_child_whose_handler_ran() {
    let mut l = launcher();
    l.cmd
        .args(["--watcher", "procfs", "--poll-interval-ms", "20"]);
    let run = l.run(&[&probe(), "fork", "--hold", "300"], LIMIT);
    let child = child_of(&run);
    assert_eq!(
        run.event_for("pool_check", child)["verdict"],
        "ok",
        "{}",
        run.dump()
    );
    assert_eq!(run.summary()["pool_check_violations"], 0, "{}", run.dump());
}

#[test]
fn alert_command_gets_violations_rate_limited() {
    let l = launcher();
    let alerts = l.dir.path().join("alerts");
    let config = l.dir.path().join("alert.toml");
    std::fs::write(
        &config,
        format!(
            "[launcher]\nalert_command = \"cat >> '{}'\"\nalert_limit_per_minute = 1\n",
            alerts.display()
        ),
    )
    .unwrap();
    let mut l = l;
    l.cmd
        .env("PLEX_PG_FORK_HANDLER", "0")
        .arg("--config")
        .arg(&config);
    let run = l.run(&[&probe(), "fork", "--touch"], LIMIT);
    assert_fd_use(&run, "observed");
    let text = std::fs::read_to_string(&alerts)
        .unwrap_or_else(|e| panic!("no alert written: {e}\n{}", run.dump()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "the limit is one a minute: {text}");
    assert!(
        lines[0].contains("\"event\":\"inherited_fd_use\""),
        "{text}"
    );
    assert_eq!(run.summary()["alerts_sent"], 1);
    assert_eq!(
        run.summary()["alerts_suppressed"],
        1,
        "the pool_check violation is suppressed\n{}",
        run.dump()
    );
}

#[test]
fn mode_off_only_does_init_duties() {
    let mut l = launcher();
    l.cmd
        .env("PLEX_PG_FORK_HANDLER", "0")
        .args(["--mode", "off"]);
    let run = l.run(&[&probe(), "fork", "--touch"], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.events("start")[0]["watcher"], "off");
    assert!(
        run.events("fork").is_empty() && run.events("inherited_fd_use").is_empty(),
        "{}",
        run.dump()
    );
    assert_eq!(run.said("child touch"), Some("ok"));
}

/// `plex-pg-launcher check` with `env` and extra arguments: (exit code, output).
fn check(env: &[(String, String)], args: &[&str]) -> (Option<i32>, String) {
    support::check(args, env.iter().cloned())
}

#[test]
fn check_passes_against_the_test_server_and_fails_clearly() {
    let shim = plex_pg_tests::shim().display().to_string();
    let mut env = pg().env("check");
    env.push(("PLEX_PG_SHIM".into(), shim.clone()));
    let (code, out) = check(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "ok   config:",
        "ok   ptrace: PTRACE_SEIZE of a child works",
        "ok   shim:",
        "ok   postgres:",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");

    // A server nobody listens on, and a missing shim: each its own line, with what to do.
    let mut bad = env.clone();
    bad.retain(|(k, _)| k != "PLEX_PG_PORT");
    bad.push(("PLEX_PG_PORT".into(), "1".into()));
    let (code, out) = check(&bad, &["--shim", "/nonexistent/libplex_pg_shim.so"]);
    assert_eq!(code, Some(1), "{out}");
    let fail_pg = out
        .lines()
        .find(|l| l.starts_with("FAIL postgres:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        fail_pg.contains(".s.PGSQL.1") && fail_pg.contains("check postgres.*"),
        "{fail_pg}"
    );
    let fail_shim = out
        .lines()
        .find(|l| l.starts_with("FAIL shim:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        fail_shim.contains("/nonexistent/libplex_pg_shim.so") && fail_shim.contains("--shim"),
        "{fail_shim}"
    );

    // A bad value is named with its key and source before any check runs.
    let mut wrong = env;
    wrong.push(("PLEX_PG_MODE".into(), "paranoid".into()));
    let (code, out) = check(&wrong, &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("launcher.mode") && out.contains("PLEX_PG_MODE"),
        "{out}"
    );
}
