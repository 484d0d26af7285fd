//! The January 2026 incident end to end: plex-sim (the stand-in for Plex)
//! under the launcher with the shim, on real PostgreSQL, forking while its
//! workers stream the incident's 40,000-row hash query.
//!
//! 1. The fix, verified (the write-up's `test_fork_fix.sh`, automated).
//! 2. The crash before the fix: the fork handler off and a child that uses
//!    the parent's connection, reported; what it does to the parent.
//! 3. Enforce mode on the same fault: denied, the parent unharmed.
//! 4. The procfs watcher on 1 and 2: what it sees and what it cannot.
//!
//! The 40,000-movie library is filled once (about 30 s through the shim)
//! and shared; the scenarios run one at a time, so they do not slow each
//! other's forks down, nor write to the library together.

#[path = "e2e_support.rs"]
mod e2e;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use e2e::{alive, fill_library, kind_of_method, sim_under_launcher, SimRun};
use plex_pg_tests::unique_name;

/// The incident's query returns 40,000 rows.
const ITEMS: u32 = 40_000;
/// Seconds plex-sim serves in the scenarios that start children all along.
const SERVE: &str = "20";
/// A query running longer than this is a hang (plex-sim's --query-timeout):
/// bounds the crash scenarios.
const QUERY_TIMEOUT: &str = "10";
const LIMIT: Duration = Duration::from_secs(300);

static LIBRARY: OnceLock<String> = OnceLock::new();
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The shared library's schema, filled on first use; and the turn to run.
fn library() -> (&'static str, MutexGuard<'static, ()>) {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let schema = LIBRARY.get_or_init(|| {
        let schema = unique_name("e2e_incident");
        let started = std::time::Instant::now();
        fill_library(&schema, ITEMS, Duration::from_secs(600));
        eprintln!(
            "library of {ITEMS} movies filled through the shim in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        schema
    });
    (schema, turn)
}

/// The fault scenarios: the fork handler off, a child forked mid hash query
/// that queries on the parent's half-read handle, and one that writes a
/// Query message straight onto an inherited socket.
fn crash(launcher_args: &[&str]) -> SimRun {
    let (schema, _turn) = library();
    let sim = sim_under_launcher(
        schema,
        ITEMS,
        launcher_args,
        &[
            "--duration",
            "3",
            "--spawn",
            "none",
            "--fault",
            "stale-handle",
            "--fault",
            "raw-write",
            "--query-timeout",
            QUERY_TIMEOUT,
        ],
        &[("PLEX_PG_FORK_HANDLER", "0")],
        LIMIT,
        |_, _| {},
    );
    eprintln!("{}", sim.figures());
    sim
}

/// What the crash did to the parent (plex-sim's server), in words; panics
/// if it did nothing.
fn harm_to_the_parent(sim: &SimRun) -> String {
    let s = &sim.sim;
    let workers: Vec<&str> = s["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("worker ") || m.starts_with("mismatch:"))
        .collect();
    let harm = if let Some(hang) = s["hang"].as_str() {
        format!("hang: {hang}")
    } else if !workers.is_empty() {
        format!("error: {}", workers.join(" | "))
    } else {
        String::new()
    };
    assert!(
        !harm.is_empty(),
        "the parent's queries came through the crash unharmed\n{}",
        sim.dump()
    );
    assert_eq!(s["ok"], false);
    harm
}

#[test]
fn fork_fix_verified_children_forked_mid_hash_query_leave_the_parents_sessions_alone() {
    let (schema, _turn) = library();
    // plex-sim's Plex-like mix: tuners, script hosts, crash uploaders,
    // transcoder bursts, scanners (fork, vfork, posix_spawn, then exec) and
    // children forked without exec that query on their own connection.
    let sim = sim_under_launcher(
        schema,
        ITEMS,
        &["--mode", "verify"],
        &["--duration", SERVE],
        &[],
        LIMIT,
        |_, _| {},
    );
    eprintln!("{}", sim.figures());
    let s = &sim.sim;

    // Every query completed with the exact rows.
    assert_eq!(sim.run.code, Some(0), "{}", sim.dump());
    assert_eq!(s["ok"], true);
    assert_eq!(s["mismatches"], 0);
    assert!(
        s["errors"].as_array().unwrap().is_empty(),
        "{:#}",
        s["errors"]
    );
    assert!(s["hang"].is_null());
    let hash_queries = s["hash_queries"].as_u64().unwrap();
    assert!(
        hash_queries >= 20,
        "the hash query ran {hash_queries} times"
    );
    assert!(s["rows_checked"].as_u64().unwrap() >= hash_queries * u64::from(ITEMS));

    // Many times during the 40,000-row query.
    let children = sim.children();
    let mid_query: Vec<_> = children
        .iter()
        .filter(|c| c["mid_hash_query_rows"].as_u64().is_some_and(|r| r > 0))
        .collect();
    assert!(
        mid_query.len() >= 15,
        "only {} of {} children were born mid hash query",
        mid_query.len(),
        children.len()
    );
    assert!(
        children
            .iter()
            .filter(|c| c["kind"] == "fork-query")
            .count()
            >= 5,
        "too few children forked without exec: {:#}",
        s["children"]["by_kind"]
    );

    // One fork event per child plex-sim reports, and no other.
    assert_eq!(
        sim.born(),
        sim.child_pids(),
        "fork events vs plex-sim's children\n{}",
        sim.dump()
    );
    let server = sim.server_pid();
    for c in &children {
        let pid = c["pid"].as_i64().unwrap();
        let fork = sim.run.event_for("fork", pid);
        assert_eq!(fork["ppid"], server, "{fork}");
        assert_eq!(
            fork["kind"],
            kind_of_method(c["method"].as_str().unwrap()),
            "{c}\n{fork}"
        );
        if c["mid_hash_query_rows"].as_u64().is_some_and(|r| r > 0) {
            assert!(
                !fork["inherited"].as_array().unwrap().is_empty(),
                "born mid query, it held the parent's streaming socket: {fork}"
            );
        }
        // A pool check, ok, for each.
        let checks = sim.pool_checks(pid);
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert_eq!(checks[0]["verdict"], "ok", "{}", sim.dump());
        if c["method"] == "fork" {
            // Forked without exec: decided by the shim's own report.
            assert_eq!(checks[0]["trigger"], "after_fork", "{}", checks[0]);
            assert_eq!(checks[0]["slots_in_use"], 0);
            assert!(
                checks[0]["unreported"].as_array().unwrap().is_empty(),
                "{}",
                checks[0]
            );
        }
    }
    // Zero violations, exit status 0.
    assert!(
        sim.run.events("inherited_fd_use").is_empty(),
        "{}",
        sim.dump()
    );
    let summary = sim.run.summary();
    assert_eq!(summary["pool_check_violations"], 0);
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["watcher"], "ptrace");
    assert_eq!(summary["forks"], children.len());
}

#[test]
fn crash_before_the_fix_is_reported_and_hurts_the_parents_query() {
    let sim = crash(&["--mode", "verify", "--watcher", "ptrace"]);
    for fault in ["stale-handle", "raw-write"] {
        let child = sim.fault_child(fault);
        let fork = sim.run.event_for("fork", child);
        assert_eq!(fork["kind"], "fork");
        assert!(!fork["inherited"].as_array().unwrap().is_empty(), "{fork}");
        let checks = sim.pool_checks(child);
        assert!(
            checks.iter().any(|c| c["verdict"] == "violation"
                && c["reason"].as_str().is_some_and(|r| !r.is_empty())),
            "no pool_check violation for the {fault} child {child}\n{}",
            sim.dump()
        );
        let uses = sim.fd_uses(child);
        assert!(
            !uses.is_empty(),
            "no inherited_fd_use by the {fault} child {child}\n{}",
            sim.dump()
        );
        assert!(
            uses.iter().all(|u| u["action"] == "observed"),
            "verify lets the syscalls run: {uses:?}"
        );
    }
    let raw: Vec<&str> = sim
        .fd_uses(sim.fault_child("raw-write"))
        .iter()
        .filter_map(|u| u["syscall"].as_str())
        .collect();
    assert!(
        raw.contains(&"write"),
        "the raw write is seen as a write: {raw:?}"
    );
    assert!(
        sim.run.stderr.contains("FORK-SAFETY VIOLATION"),
        "{}",
        sim.run.stderr
    );
    // The stale-handle child reads the parent's socket over and over: the
    // human log says it in full a few times at most, the event log has
    // every one.
    let most = sim.run.assert_repeats_limited(3);
    eprintln!("the most uses of one fd by one syscall: {most}");

    // What happened to the parent's query: an error or a hang, bounded.
    let harm = harm_to_the_parent(&sim);
    eprintln!("the parent, after the crash: {harm}");
    assert_ne!(sim.run.code, Some(0));
    assert_eq!(
        sim.run.code,
        sim.sim["exit_code"].as_i64().map(|c| c as i32),
        "the launcher exits with plex-sim's status"
    );
    let bound = QUERY_TIMEOUT.parse::<f64>().unwrap() + 40.0;
    assert!(
        sim.run.elapsed.as_secs_f64() < bound,
        "took {:?}",
        sim.run.elapsed
    );
}

#[test]
fn enforce_denies_the_stray_syscalls_and_the_parents_query_completes() {
    let sim = crash(&["--mode", "enforce"]);
    let s = &sim.sim;
    for fault in ["stale-handle", "raw-write"] {
        let uses = sim.fd_uses(sim.fault_child(fault));
        assert!(
            !uses.is_empty(),
            "{fault}: no inherited_fd_use\n{}",
            sim.dump()
        );
        assert!(
            uses.iter().all(|u| u["action"] == "denied"),
            "{fault}: {uses:?}"
        );
    }
    assert_eq!(
        sim.run.summary()["denied"],
        sim.run.events("inherited_fd_use").len()
    );
    // The children's calls failed instead: the query on the inherited
    // handle, and the raw write (EBADF).
    let outcome = |fault: &str| -> String {
        s["faults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["fault"] == fault)
            .unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        outcome("stale-handle").contains("failed"),
        "{}",
        outcome("stale-handle")
    );
    assert!(
        outcome("raw-write").contains("Bad file descriptor"),
        "{}",
        outcome("raw-write")
    );

    // The parent: every query complete and exact, no hang.
    assert!(s["hang"].is_null(), "{}", sim.dump());
    assert_eq!(s["mismatches"], 0);
    assert!(s["hash_queries"].as_u64().unwrap() >= 2);
    // plex-sim's only complaint: its raw write was refused, so it counts
    // that fault as not injected (the parent's own queries had no error).
    for e in s["errors"].as_array().unwrap() {
        let m = e["message"].as_str().unwrap();
        assert!(
            m.starts_with("fault raw-write was not injected") && m.contains("Bad file descriptor"),
            "{m}\n{}",
            sim.dump()
        );
    }
}

#[test]
fn procfs_watcher_on_the_fork_fix_sees_long_lived_children_but_not_their_syscalls_or_kinds() {
    let (schema, _turn) = library();
    let sim = sim_under_launcher(
        schema,
        ITEMS,
        &["--mode", "verify", "--watcher", "procfs"],
        &["--duration", SERVE],
        &[],
        LIMIT,
        |_, _| {},
    );
    eprintln!("{}", sim.figures());
    assert_eq!(sim.run.code, Some(0), "{}", sim.dump());
    assert_eq!(sim.sim["mismatches"], 0);
    let summary = sim.run.summary();
    assert_eq!(summary["watcher"], "procfs");
    assert!(
        summary["event_stops"].is_null(),
        "procfs stops nothing: {summary}"
    );

    // What it sees: processes alive at a scan, never how they were born.
    let children = sim.child_pids();
    let born = sim.born();
    assert!(
        born.is_subset(&children),
        "procfs reported processes plex-sim did not start\n{}",
        sim.dump()
    );
    for fork in sim
        .run
        .events("fork")
        .into_iter()
        .filter(|e| e["kind"] != "spawn")
    {
        assert_eq!(fork["kind"], "unknown", "{fork}");
        assert_eq!(fork["escalated"], false);
    }
    // Every child that lived a second or more was seen (100 ms scans).
    let mut missed = Vec::new();
    for c in sim.children() {
        let pid = c["pid"].as_i64().unwrap();
        let lived = c["seconds"].as_f64().unwrap();
        if !born.contains(&pid) {
            assert!(
                lived < 1.0,
                "child {c} lived {lived:.2} s and procfs never saw it\n{}",
                sim.dump()
            );
            missed.push(format!("{} ({:.2} s)", c["kind"].as_str().unwrap(), lived));
        }
    }
    eprintln!(
        "procfs saw {} of {} children; missed (too short-lived): {missed:?}",
        born.len(),
        children.len()
    );

    // The shim's reports still decide the forked children it saw holding
    // the parent's sockets; nothing is a violation.
    let after_fork = sim
        .run
        .events("pool_check")
        .into_iter()
        .filter(|c| c["trigger"] == "after_fork")
        .count();
    assert!(
        after_fork >= 1,
        "no pool check decided by a fork-handler report\n{}",
        sim.dump()
    );
    assert!(
        sim.run
            .events("pool_check")
            .iter()
            .all(|c| c["verdict"] == "ok"),
        "{}",
        sim.dump()
    );
    // What it cannot see: syscalls, and the exit status of a process that
    // is not the launcher's own child.
    assert!(sim.run.events("inherited_fd_use").is_empty());
    let server = sim.server_pid();
    for exit in sim
        .run
        .events("exit")
        .into_iter()
        .filter(|e| e["pid"] != server)
    {
        assert_eq!(exit["status"], "unknown", "{exit}");
    }
}

#[test]
fn procfs_watcher_on_the_crash_sees_no_syscall_and_only_a_holder_past_the_deadline() {
    let sim = crash(&["--mode", "verify", "--watcher", "procfs"]);
    // The same crash as under ptrace: the parent is hurt…
    let harm = harm_to_the_parent(&sim);
    eprintln!("the parent, after the crash: {harm}");
    // …but no syscall is ever seen, so nothing is reported as a use.
    assert!(
        sim.run.events("inherited_fd_use").is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.run.summary()["inherited_fd_uses"], 0);
    // A violation only at the deadline: a child still holding the parent's
    // sockets 1 s after it was first seen (a fault child that hangs with
    // its parent). One that did its harm and left between two scans, or
    // within the second, is not caught.
    let born: BTreeSet<i64> = sim.born();
    for fault in ["stale-handle", "raw-write"] {
        let child = sim.fault_child(fault);
        let record = sim
            .children()
            .into_iter()
            .find(|c| c["pid"] == child)
            .unwrap()
            .clone();
        let lived = record["seconds"].as_f64().unwrap();
        let violations: Vec<_> = sim
            .pool_checks(child)
            .into_iter()
            .filter(|c| c["verdict"] == "violation")
            .collect();
        if lived >= 1.5 {
            assert!(
                born.contains(&child),
                "{fault} child lived {lived:.2} s, unseen\n{}",
                sim.dump()
            );
            assert_eq!(
                violations.len(),
                1,
                "{fault} child lived {lived:.2} s holding the sockets\n{}",
                sim.dump()
            );
            assert_eq!(violations[0]["trigger"], "deadline");
            assert!(!violations[0]["still_held"].as_array().unwrap().is_empty());
            eprintln!("{fault}: the child lived {lived:.2} s and was caught at the deadline");
        } else {
            if lived < 1.0 {
                assert!(
                    violations.is_empty(),
                    "gone within the second, it cannot be caught: {violations:?}"
                );
            }
            let seen = if born.contains(&child) {
                "saw it"
            } else {
                "never saw it"
            };
            eprintln!(
                "{fault}: the child lived {lived:.2} s: procfs {seen}, {} violation(s)",
                violations.len()
            );
        }
        assert!(!alive(child));
    }
    for v in sim
        .run
        .events("pool_check")
        .into_iter()
        .filter(|c| c["verdict"] == "violation")
    {
        assert_eq!(v["trigger"], "deadline", "{v}");
    }
}
