//! `plex-pg-demo` (what `bash demo.sh` runs), run for real (a throwaway PostgreSQL, plex-sim
//! under the launcher with the shim): its closing table's figures against
//! the event log and plex-sim's summary it leaves in `--work-dir`; nothing
//! left running after it, on success, on Ctrl-C and on an error; and
//! `tests/test_fork_fix.sh`, the incident's lines for people.

#[path = "e2e_support.rs"]
mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::alive;
use plex_pg_launcher::events::{self, Record, Value};
use plex_pg_tests::{artifact, run, workspace_root, TempDir};

/// The demo's command, with nothing of the machine's or the test run's
/// PostgreSQL settings: it must start its own server.
fn demo(args: &[&str]) -> Command {
    let mut cmd = Command::new(artifact("plex-pg-demo"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PLEX_PG_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PLEX_PG_CONFIG", "/dev/null").args(args);
    cmd
}

/// The throwaway cluster's directory, from the demo's line
/// `PostgreSQL: throwaway cluster at <dir>/.s.PGSQL.<port>, schema plex`.
fn cluster_dir(output: &str) -> PathBuf {
    let line = output
        .lines()
        .find(|l| l.contains("PostgreSQL: throwaway cluster at "))
        .unwrap_or_else(|| panic!("the demo did not say where its cluster is:\n{output}"));
    let socket = line
        .split("throwaway cluster at ")
        .nth(1)
        .unwrap()
        .split(", ")
        .next()
        .unwrap();
    Path::new(socket).parent().unwrap().to_path_buf()
}

/// Nothing of the run is left: the cluster's directory is gone, no process
/// runs from it, and no process the launcher saw born is alive.
fn nothing_left_running(output: &str, events: Option<&Path>) {
    let dir = cluster_dir(output);
    assert!(
        !dir.exists(),
        "the cluster's directory {} is still there",
        dir.display()
    );
    let needle = dir.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(&needle),
                "still running: {} {cmdline}",
                entry.file_name().to_string_lossy()
            );
        }
    }
    if let Some(path) = events {
        for e in events::read(path)
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "fork")
        {
            assert!(!alive(e["pid"].as_i64().unwrap()), "still running: {e}");
        }
    }
}

/// The closing table: label → value.
fn table(output: &str) -> BTreeMap<String, String> {
    let start = output
        .find("What was checked")
        .unwrap_or_else(|| panic!("no closing table:\n{output}"));
    output[start..]
        .lines()
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('-'))
        .filter_map(|l| {
            Some((
                l.get(2..34)?.trim().to_string(),
                l.get(35..)?.trim().to_string(),
            ))
        })
        .collect()
}

/// The integers in a value, commas removed: "1,234 (56 of x)" → [1234, 56].
fn numbers(value: &str) -> Vec<i64> {
    value
        .replace(',', "")
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn the_demo_passes_and_its_closing_table_matches_the_event_log() {
    let work = TempDir::new("e2e-demo");
    let dir = work.path().join("run");
    let started = Instant::now();
    let out = run(
        demo(&["--work-dir", dir.to_str().unwrap()]).current_dir(work.path()),
        Duration::from_secs(400),
    );
    let took = started.elapsed();
    eprintln!(
        "{}\n(the demo took {:.1} s)",
        out.stdout,
        took.as_secs_f64()
    );
    assert!(
        !out.timed_out,
        "the demo did not finish within 400 s\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("PASS:"), "{}", out.stdout);
    // Live progress went by: the fill, then the running figures.
    assert!(
        out.stdout.contains("filling the library through the shim"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("forks seen"), "{}", out.stdout);

    let t = table(&out.stdout);
    let first = |label: &str| -> i64 {
        *numbers(
            t.get(label)
                .unwrap_or_else(|| panic!("no row {label:?} in {t:#?}")),
        )
        .first()
        .unwrap()
    };
    let events = events::read(&dir.join("events.jsonl")).unwrap();
    let sim: Value =
        serde_json::from_slice(&std::fs::read(dir.join("plex-sim-summary.json")).unwrap()).unwrap();
    let named =
        |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == name).collect() };

    // The launcher's figures, counted here from the event log.
    let forks: Vec<&Value> = named("fork")
        .into_iter()
        .filter(|e| e["kind"] != "spawn")
        .collect();
    assert_eq!(
        first("forks the launcher saw"),
        forks.len() as i64,
        "{t:#?}"
    );
    for kind in ["fork", "vfork", "clone", "unknown"] {
        let n = forks.iter().filter(|e| e["kind"] == kind).count();
        if n > 0 {
            assert!(
                t["forks the launcher saw"].contains(&format!("{kind} {n}")),
                "{kind} {n}: {t:#?}"
            );
        }
    }
    let checks = named("pool_check");
    let ok = checks.iter().filter(|c| c["verdict"] == "ok").count() as i64;
    let after_fork = checks
        .iter()
        .filter(|c| c["verdict"] == "ok" && c["trigger"] == "after_fork")
        .count() as i64;
    assert_eq!(
        numbers(&t["pool checks ok"]),
        vec![ok, after_fork],
        "{t:#?}"
    );
    let violations = checks.len() as i64 - ok;
    let uses = named("inherited_fd_use").len() as i64;
    assert_eq!(first("pool check violations"), violations);
    assert_eq!(first("inherited socket uses"), uses);
    assert_eq!(first("alerts"), violations + uses);
    assert_eq!((violations, uses), (0, 0), "a passing demo has no alert");
    let summary = named("summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["forks"], forks.len());
    assert_eq!(summary[0]["pool_checks_ok"], ok);

    // plex-sim's figures, from its summary.
    assert_eq!(
        numbers(&t["queries checked"]),
        vec![
            sim["queries"].as_i64().unwrap(),
            sim["hash_queries"].as_i64().unwrap()
        ]
    );
    assert_eq!(
        first("rows compared"),
        sim["rows_checked"].as_i64().unwrap()
    );
    assert_eq!(first("mismatches"), 0);
    assert_eq!(
        first("writes committed"),
        sim["writes_committed"].as_i64().unwrap()
    );
    assert_eq!(first("library movies"), sim["items"].as_i64().unwrap());
    assert_eq!(
        numbers(&t["children plex-sim started"]),
        vec![
            sim["children"]["started"].as_i64().unwrap(),
            sim["children"]["started_mid_hash_query"].as_i64().unwrap()
        ]
    );
    // Side by side: every child plex-sim started was seen born.
    let children: BTreeSet<i64> = sim["children"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_i64().unwrap())
        .collect();
    let born: BTreeSet<i64> = forks.iter().map(|e| e["pid"].as_i64().unwrap()).collect();
    assert_eq!(
        numbers(&t["children seen born"]),
        vec![
            children.intersection(&born).count() as i64,
            children.len() as i64
        ]
    );
    assert!(
        children.len() >= 10,
        "a demo starts many children: {}",
        children.len()
    );
    assert_eq!(t["exit status"], "plex-sim 0, launcher 0");
    // Mode and watcher as the launcher's start record says (never `?`).
    let start = events::read_lines(&dir.join("events.jsonl"))
        .unwrap()
        .into_iter()
        .find_map(|l| match l.record {
            Record::Start { mode, watcher, .. } => Some((mode, watcher)),
            _ => None,
        })
        .expect("a start record");
    assert_eq!(start.0, "verify");
    assert_eq!(
        t["launcher"],
        format!("mode {}, watcher {}", start.0, start.1),
        "{t:#?}"
    );

    nothing_left_running(&out.stdout, Some(&dir.join("events.jsonl")));
}

#[test]
fn ctrl_c_stops_the_demo_and_leaves_nothing_running() {
    let work = TempDir::new("e2e-demo-int");
    let dir = work.path().join("run");
    let mut child = demo(&[
        "--items",
        "2000",
        "--duration",
        "120",
        "--work-dir",
        dir.to_str().unwrap(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let sink = output.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    // Serving, with children started: then Ctrl-C (SIGINT to the demo).
    let deadline = Instant::now() + Duration::from_secs(180);
    let events = dir.join("events.jsonl");
    while !std::fs::read_to_string(&events)
        .map(|t| t.matches("\"event\":\"fork\"").count() >= 4)
        .unwrap_or(false)
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the demo started no children within 180 s:\n{}",
                output.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = Instant::now();
    // SAFETY: signalling the demo we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if interrupted.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!(
                "the demo did not stop within 60 s of SIGINT:\n{}",
                output.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    let output = output.lock().unwrap().clone();
    eprintln!(
        "{output}\n(stopped {:.1} s after SIGINT)",
        interrupted.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(130), "{output}");
    assert!(
        output.contains("interrupted: TERM to the launcher"),
        "{output}"
    );
    assert!(
        output.contains("throwaway PostgreSQL stopped and removed"),
        "{output}"
    );
    // plex-sim stopped on TERM and still accounted for its run.
    let sim: Value =
        serde_json::from_slice(&std::fs::read(dir.join("plex-sim-summary.json")).unwrap()).unwrap();
    assert_eq!(sim["stopped_by"], "SIGTERM");
    nothing_left_running(&output, Some(&events));
}

#[test]
fn the_demo_says_clearly_what_is_missing_and_cleans_up_after_a_failure() {
    // No plex-sim: said at once, nothing started.
    let out = run(
        &mut demo(&["--plex-sim", "/nonexistent/plex-sim"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("/nonexistent/plex-sim (--plex-sim) cannot be used"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("PostgreSQL:"),
        "nothing is started: {}",
        out.stdout
    );
    let out = run(
        &mut demo(&["--work-dir", "/proc/self"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("is not empty"), "{}", out.stderr);

    // A "plex-sim" that fails at once: the verdict says so, and the cluster
    // is stopped and removed all the same.
    let work = TempDir::new("e2e-demo-fail");
    let out = run(
        &mut demo(&[
            "--plex-sim",
            "/bin/false",
            "--work-dir",
            work.path().join("run").to_str().unwrap(),
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("plex-sim wrote no summary"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("the launcher exited with 1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("throwaway PostgreSQL stopped and removed"),
        "{}",
        out.stdout
    );
    nothing_left_running(&out.stdout, None);
}

#[test]
fn test_fork_fix_script_prints_the_incidents_lines_as_they_happen_and_a_verdict() {
    // 5,000 movies and 8 s: the lines and the verdict are the point here;
    // the script's own default is the incident's 40,000 rows.
    let script = workspace_root().join("tests/test_fork_fix.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .args(["--no-build", "--items", "5000", "--duration", "8"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PLEX_PG_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PLEX_PG_CONFIG", "/dev/null");
    let out = run(&mut cmd, Duration::from_secs(300));
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("PASS:"), "{}", out.stdout);

    // For each child born holding the parent's sockets: the fork, its
    // handler's report, its own connection in slot 0; and parent queries in
    // flight at a fork, started and done.
    let forks: Vec<i64> = out
        .stdout
        .lines()
        .filter(|l| l.contains("fork                 [launcher] process "))
        .filter_map(|l| l.split("process ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert!(forks.len() >= 4, "too few forks narrated:\n{}", out.stdout);
    for pid in &forks {
        assert!(
            out.stdout.contains(&format!("[FORK_CHILD {pid}]")),
            "no handler line for {pid}"
        );
        assert!(
            out.stdout.contains(&format!(
                "[child {pid}]          created its own PostgreSQL connection in pool slot 0"
            )),
            "no own-connection line for {pid}"
        );
    }
    // (The server logs statements from when the library is ready: the
    // first child or two may be born before that.)
    let started = out.stdout.matches("hash query started").count();
    let done = out.stdout.matches("hash query done").count();
    assert!(
        started + 2 >= forks.len() && done >= forks.len() / 2,
        "{started} started, {done} done:\n{}",
        out.stdout
    );
    let verdict = |label: &str| -> i64 {
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label:?}"));
        *numbers(line.rsplit(": ").next().unwrap()).last().unwrap()
    };
    assert_eq!(
        verdict("fork handlers that emptied the inherited pool"),
        forks.len() as i64
    );
    assert_eq!(
        verdict("children that then created their own connection"),
        forks.len() as i64
    );
    assert_eq!(
        verdict("parent hash queries in flight at a fork that completed") as usize,
        done
    );
    nothing_left_running(&out.stdout, None);
}
