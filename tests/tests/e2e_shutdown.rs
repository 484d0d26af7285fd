//! Shutdown end to end: TERM to the launcher while plex-sim serves (workers
//! writing playback progress, Scanners writing media parts, Tuners serving
//! for a minute) stops the whole tree within the grace period, and nothing
//! is lost: every write plex-sim journaled as committed is in PostgreSQL
//! with the journaled values.
//!
//! A 2,000-movie library: the 40,000 figure is not the point here.

#[path = "e2e_support.rs"]
mod e2e;

use std::time::{Duration, Instant};

use e2e::{alive, committed_rows_are_in_postgres, journal, sim_under_launcher};
use plex_pg_tests::unique_name;

const ITEMS: u32 = 2_000;
const GRACE_MS: u64 = 10_000;

#[test]
fn term_to_the_launcher_stops_the_tree_within_the_grace_period_and_every_committed_write_is_in_postgres(
) {
    let schema = unique_name("e2e_shutdown");
    let grace = GRACE_MS.to_string();
    let mut term_at: Option<Instant> = None;
    let sim = sim_under_launcher(
        &schema,
        ITEMS,
        &["--mode", "verify", "--grace-period-ms", &grace],
        &[
            "--duration",
            "600",
            "--spawn",
            "scanner=1",
            "--spawn",
            "tuner=1",
            "--spawn",
            "fork-query=1",
            "--helper-ms",
            "60000",
            "--scanner-parts",
            "200",
        ],
        &[],
        Duration::from_secs(300),
        |launcher_pid, dir| {
            // Serving, with writes committed and children running.
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let entries = journal(dir);
                let commits = entries.iter().filter(|e| e["event"] == "committed").count();
                let children = entries.iter().filter(|e| e["event"] == "child").count();
                if commits >= 100 && children >= 4 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "not serving after 180 s: {commits} commits, {children} children journaled"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            term_at = Some(Instant::now());
            // SAFETY: signalling the launcher we started.
            unsafe { libc::kill(launcher_pid as i32, libc::SIGTERM) };
        },
    );
    let stopped_in = term_at.map(|t| t.elapsed()).expect("TERM was sent");
    eprintln!(
        "{}; the tree stopped {:.2} s after TERM",
        sim.figures(),
        stopped_in.as_secs_f64()
    );

    // Within the grace period, and nobody needed KILL.
    assert!(
        stopped_in < Duration::from_millis(GRACE_MS),
        "the tree took {stopped_in:?} to stop\n{}",
        sim.dump()
    );
    for exit in sim.run.events("exit") {
        assert!(
            exit["signal"].is_null(),
            "a process was killed by a signal: {exit}\n{}",
            sim.dump()
        );
    }
    // plex-sim stopped by TERM, cleanly: its children got TERM and left with 0.
    let s = &sim.sim;
    assert_eq!(s["stopped_by"], "SIGTERM", "{}", sim.dump());
    assert_eq!(s["ok"], true, "{}", sim.dump());
    assert_eq!(sim.run.code, Some(0));
    assert_eq!(sim.run.summary()["exit_code"], 0);
    let tuners: Vec<_> = sim
        .children()
        .into_iter()
        .filter(|c| c["kind"] == "tuner")
        .collect();
    assert!(
        !tuners.is_empty() && tuners.iter().all(|t| t["exit_code"] == 0),
        "the Tuners, serving for a minute, left on TERM: {tuners:?}"
    );
    // The whole tree is gone: every process the launcher saw born.
    for fork in sim.run.events("fork") {
        let pid = fork["pid"].as_i64().unwrap();
        assert!(
            !alive(pid),
            "process {pid} ({fork}) still runs after the launcher exited"
        );
    }
    assert_eq!(sim.run.summary()["pool_check_violations"], 0);

    // Nothing lost.
    let entries = journal(sim.run.dir.path());
    let server = sim.server_pid();
    let by_server = entries
        .iter()
        .filter(|e| e["event"] == "committed" && e["pid"] == server)
        .count();
    assert_eq!(
        s["writes_committed"], by_server,
        "the summary counts the server's journaled commits"
    );
    let by_scanners = entries
        .iter()
        .filter(|e| e["event"] == "committed" && e["role"] == "scanner")
        .count();
    assert!(by_scanners > 0, "no Scanner commit journaled");
    let rows = committed_rows_are_in_postgres(&schema, &entries);
    eprintln!("{rows} journaled rows ({by_server} commits by the server, {by_scanners} by Scanners) all in PostgreSQL");
    assert!(rows >= 50, "only {rows} rows journaled");
}
