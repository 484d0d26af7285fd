//! Stopping Plex: a main process that takes its time to close cleanly
//! inside the grace period exits with its own status, never KILLed (137);
//! past the grace period it is KILLed; `check` says which grace period
//! applies and why (under systemd: the unit's TimeoutStopSec less a
//! margin, `launcher/src/stop.rs`, whose decision is unit-tested).

#[path = "launcher_support.rs"]
mod launcher_support;

use std::time::Duration;

use launcher_support::Launcher;

/// A main process that needs `close` to stop after TERM, then exits 5.
fn slow_closer(close: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("trap 'sleep {close}; exit 5' TERM; while :; do sleep 0.1; done"),
    ]
}

fn stop_after(grace_ms: &str, close: &str) -> launcher_support::Run {
    let mut launcher = Launcher::new();
    launcher
        .cmd
        .env_remove("INVOCATION_ID")
        .env("PLEX_PG_GRACE_PERIOD_MS", grace_ms)
        .args(["--mode", "off"]);
    let command = slow_closer(close);
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    launcher.run_with(&args, Duration::from_secs(60), |pid| {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signalling the launcher this test started.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    })
}

#[test]
fn a_slow_clean_close_inside_the_grace_period_exits_with_its_status_not_137() {
    let run = stop_after("30000", "3");
    assert_eq!(run.code, Some(5), "{}", run.dump());
    assert!(
        run.elapsed >= Duration::from_secs(3),
        "the close was cut short: {}",
        run.dump()
    );
    assert!(
        run.stderr.contains("KILL 30 s after TERM (launcher.grace_period_ms, from environment variable PLEX_PG_GRACE_PERIOD_MS)"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_close_longer_than_the_grace_period_is_killed() {
    let run = stop_after("1000", "20");
    assert_eq!(run.code, Some(137), "{}", run.dump());
    assert!(run.elapsed < Duration::from_secs(20), "{}", run.dump());
}

#[test]
fn check_says_which_grace_period_applies_and_why() {
    let out = plex_pg_tests::run(
        std::process::Command::new(plex_pg_tests::artifact("plex-pg-launcher"))
            .arg("check")
            .env("PLEX_PG_CONFIG", "/dev/null")
            .env_remove("INVOCATION_ID")
            .env_remove("PLEX_PG_GRACE_PERIOD_MS"),
        Duration::from_secs(60),
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l
                .starts_with("ok   stop: KILL 10 s after TERM (the default: not under systemd")),
        "{}",
        out.stdout
    );
}
