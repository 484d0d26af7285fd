//! The launcher's Prometheus endpoint, scraped while Plex's stand-in runs
//! and parsed by Prometheus's own text parser (Debian's
//! python3-prometheus-client): the counters move with a real run through
//! the shim, the violations of a run with the fork handler off are counted,
//! `plex-pg-launcher status` prints the same figures, and the shim's own
//! figures (statements, their latency histogram, errors by SQLite code,
//! connects, pool slots) move during a plex-sim run.

#[path = "launcher_support.rs"]
mod launcher_support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use launcher_support::Launcher;
use plex_pg_tests::{artifact, pg, python_script, run, schema_with, TempDir};

const PARSE: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=10).read().decode()
out = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
"#;

/// The samples at `addr`, as Prometheus's parser reads them.
fn scrape(addr: &str) -> HashMap<String, f64> {
    let out = run(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(PARSE)
            .arg(addr),
        Duration::from_secs(30),
    );
    assert_eq!(
        out.code,
        Some(0),
        "the scrape failed (python3-prometheus-client: bash packaging/install-deps.sh installs it):\n{}",
        out.stderr
    );
    serde_json::from_str(&out.stdout).unwrap()
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Run `script` through the shim under the launcher in verify mode with
/// the endpoint on; once the event log holds `wait_for`, scrape it and ask
/// `status`, then stop the tree.
fn scraped(
    script: &str,
    rows: u32,
    arg: &str,
    handler: bool,
    wait_for: &'static str,
) -> (HashMap<String, f64>, String, Vec<serde_json::Value>) {
    let schema = schema_with(
        "launcher_metrics",
        &format!(
            "CREATE TABLE metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
             INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, {rows}) g"
        ),
    );
    let dir = TempDir::new("launcher-metrics");
    let db = dir.library_db();
    let addr = free_addr();
    let mut launcher = Launcher::new();
    launcher
        .cmd
        .envs(pg().env(&schema))
        .env("PLEX_PG_METRICS_LISTEN", &addr)
        .env("PLEX_PG_FORK_HANDLER", if handler { "1" } else { "0" })
        .args(["--mode", "verify", "--grace-period-ms", "1000"]);
    let events = launcher.events_path();
    let script = python_script(script).display().to_string();
    let done = dir.path().join("done");
    // With the handler on, the script ends: keep the tree alive until the
    // scrape. With it off, the parent hangs on its corrupted session.
    let shell = format!(
        "python3 {script} {db} {arg}; touch {}; sleep 60",
        done.display()
    );
    let command: Vec<&str> = if handler {
        vec!["/bin/sh", "-c", &shell]
    } else {
        vec!["python3", &script, &db, arg]
    };
    let mut got = (HashMap::new(), String::new(), Vec::new());
    // Generous bounds: on a loaded 2-core machine Python took 2 minutes to
    // start under ptrace (pyenv's shim scripts fork a dozen processes).
    let outcome = launcher.run_with(&command, Duration::from_secs(420), |pid| {
        let seen =
            plex_pg_tests::cluster::wait_until(Duration::from_secs(300), || match wait_for {
                "done" => done.exists(),
                // Every `&`-separated part, in any order.
                _ => std::fs::read_to_string(&events)
                    .map(|t| wait_for.split('&').all(|part| t.contains(part)))
                    .unwrap_or(false),
            });
        if seen {
            std::thread::sleep(Duration::from_millis(500));
            got.0 = scrape(&addr);
            got.2 = std::fs::read_to_string(&events)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
        }
        let status = run(
            Command::new(artifact("plex-pg-launcher"))
                .arg("status")
                .env("PLEX_PG_CONFIG", "/dev/null")
                .env("PLEX_PG_METRICS_LISTEN", &addr),
            Duration::from_secs(30),
        );
        got.1 = status.stdout;
        // SAFETY: signalling the launcher this test started.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    });
    // Stopped by TERM: the launcher ends as its command did.
    assert!(
        !got.0.is_empty(),
        "no {wait_for} within 300 s:\n{}",
        outcome.dump()
    );
    got
}

#[test]
fn the_counters_move_with_a_run_through_the_shim() {
    let (m, status, events) = scraped("fork_stream.py", 5000, "1000", true, "done");
    // The script has ended (only `sleep` runs): the endpoint must say what
    // the event log says.
    let count = |event: &str, verdict: Option<&str>| {
        events
            .iter()
            .filter(|v| v["event"] == event && verdict.is_none_or(|x| v["verdict"] == x))
            .count() as f64
    };
    assert!(m["plexpg_forks_total"] >= 5.0, "{m:?}");
    assert_eq!(m["plexpg_processes_total"], count("fork", None), "{m:?}");
    assert_eq!(m["plexpg_forks_total"], count("fork", None) - 1.0, "{m:?}");
    assert_eq!(m["plexpg_execs_total"], count("exec", None), "{m:?}");
    assert_eq!(m["plexpg_exits_total"], count("exit", None), "{m:?}");
    assert_eq!(
        m["plexpg_pool_checks_total{verdict=ok}"],
        count("pool_check", Some("ok")),
        "{m:?}"
    );
    assert_eq!(
        m["plexpg_pool_checks_total{verdict=violation}"],
        count("pool_check", Some("violation")),
        "{m:?}"
    );
    assert!(m["plexpg_reports_total{result=accepted}"] >= 1.0, "{m:?}");
    assert!(m["plexpg_tree_processes"] >= 1.0, "{m:?}");
    let info = m
        .keys()
        .find(|k| k.starts_with("plexpg_launcher_info{"))
        .unwrap_or_else(|| panic!("{m:?}"));
    assert!(
        info.contains("mode=verify") && info.contains("watcher=ptrace"),
        "{info}"
    );
    assert!(
        status.contains("plexpg_forks_total ")
            && status.contains("plexpg_shim_statements_total ")
            && status.contains("plexpg_shim_statement_seconds_bucket{le=\"+Inf\"} "),
        "status printed:\n{status}"
    );
    // fork_stream.py's statements went through the shim: counted.
    assert!(m["plexpg_shim_statements_total"] >= 1.0, "{m:?}");
}

#[test]
fn the_violations_of_a_run_with_the_fork_handler_off_are_counted() {
    let (m, _, _) = scraped(
        "fork_crash.py",
        40000,
        "40000",
        false,
        // The use is seen at once; the pool check's verdict at its deadline.
        "inherited_fd_use&\"verdict\":\"violation\"",
    );
    assert!(
        m["plexpg_pool_checks_total{verdict=violation}"] >= 1.0,
        "{m:?}"
    );
    assert!(
        m["plexpg_inherited_fd_uses_total{action=observed}"] >= 1.0,
        "{m:?}"
    );
    assert_eq!(
        m["plexpg_inherited_fd_uses_total{action=denied}"], 0.0,
        "{m:?}"
    );
}

/// A statement SQLite refuses at prepare (no such table: SQLITE_ERROR),
/// run through the shim by Python's sqlite3 on the library database.
const BAD_STATEMENT: &str = r#"
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM metadata_items").fetchone()
try:
    conn.execute("SELECT * FROM plex_pg_no_such_table").fetchall()
    print("no error")
except sqlite3.OperationalError as e:
    print("refused:", e)
conn.close()
"#;

/// The value of `name` in a scrape (0 when absent).
fn sample(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

#[test]
fn the_shims_figures_move_with_a_plex_sim_run() {
    let schema = plex_pg_tests::unique_name("launcher_metrics_shim");
    pg().psql(&format!("CREATE SCHEMA {schema}"));
    let addr = free_addr();
    let mut launcher = Launcher::new();
    let dir = launcher.dir.path().to_path_buf();
    let data = dir.join("plex");
    let library = data
        .join("Plug-in Support/Databases/com.plexapp.plugins.library.db")
        .display()
        .to_string();
    let bad = dir.join("bad.py");
    std::fs::write(&bad, BAD_STATEMENT).unwrap();
    let done = dir.join("done");
    launcher
        .cmd
        .envs(pg().env(&schema))
        .env("PLEX_PG_METRICS_LISTEN", &addr)
        .args(["--mode", "verify", "--grace-period-ms", "1000"]);
    // plex-sim makes Plex's schema, fills 300 items and works for 20 s;
    // then the bad statement; then the tree idles until the last scrape.
    let shell = format!(
        "{} --data-dir '{}' --items 300 --duration 20 --threads 2 --spawn none --summary '{}' && \
         python3 '{}' '{library}' > '{}' 2>&1; touch '{}'; sleep 60",
        artifact("plex-sim").display(),
        data.display(),
        dir.join("summary.json").display(),
        bad.display(),
        dir.join("bad.out").display(),
        done.display()
    );
    let mut scrapes: Vec<HashMap<String, f64>> = Vec::new();
    let mut waited_for = String::new();
    let run = launcher.run_with(
        &["/bin/sh", "-c", &shell],
        Duration::from_secs(480),
        |pid| {
            // First statements counted, then two seconds later more.
            let first = plex_pg_tests::cluster::wait_until(Duration::from_secs(300), || {
                let m = scrape(&addr);
                let moving = sample(&m, "plexpg_shim_statements_total") > 0.0;
                if moving {
                    scrapes.push(m);
                }
                moving || done.exists()
            });
            if first && !scrapes.is_empty() {
                std::thread::sleep(Duration::from_secs(2));
                scrapes.push(scrape(&addr));
                let finished =
                    plex_pg_tests::cluster::wait_until(Duration::from_secs(180), || done.exists());
                if finished {
                    // The Python process's last Tally is sent at its exit.
                    std::thread::sleep(Duration::from_millis(500));
                    scrapes.push(scrape(&addr));
                } else {
                    waited_for = "the end of plex-sim and the bad statement".into();
                }
            } else {
                waited_for = "a statement counted".into();
            }
            // SAFETY: signalling the launcher this test started.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        },
    );
    assert!(
        waited_for.is_empty() && scrapes.len() == 3,
        "no {waited_for} within the time\n{}\n--- bad statement\n{}",
        run.dump(),
        std::fs::read_to_string(dir.join("bad.out")).unwrap_or_default()
    );
    let (a, b, c) = (&scrapes[0], &scrapes[1], &scrapes[2]);
    let statements = |m: &HashMap<String, f64>| sample(m, "plexpg_shim_statements_total");
    assert!(statements(a) > 0.0, "{a:?}");
    assert!(
        statements(b) > statements(a),
        "plex-sim's statements are counted as they run: {} then {}",
        statements(a),
        statements(b)
    );
    assert!(statements(c) >= statements(b), "counters never go back");
    let said = std::fs::read_to_string(dir.join("bad.out")).unwrap_or_default();
    assert!(
        said.lines()
            .any(|l| l.starts_with("refused: no such table")),
        "{said}"
    );
    assert!(
        sample(c, "plexpg_shim_errors_total{code=SQLITE_ERROR}") >= 1.0,
        "the bad statement counted under SQLITE_ERROR: {c:?}"
    );
    assert!(sample(c, "plexpg_shim_connects_total") >= 1.0, "{c:?}");
    for m in [a, b, c] {
        // The histogram: cumulative buckets, +Inf = _count = statements.
        let mut buckets: Vec<(f64, f64)> = m
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix("plexpg_shim_statement_seconds_bucket{le=")?;
                let le = le.strip_suffix('}')?;
                Some((le.parse::<f64>().unwrap(), *v))
            })
            .collect();
        buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(buckets.len(), 15, "{m:?}");
        assert!(buckets.last().unwrap().0.is_infinite());
        for pair in buckets.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "not cumulative: {buckets:?}");
        }
        let count = sample(m, "plexpg_shim_statement_seconds_count");
        assert_eq!(buckets.last().unwrap().1, count, "{m:?}");
        assert_eq!(count, statements(m), "{m:?}");
        assert!(
            sample(m, "plexpg_shim_statement_seconds_sum") > 0.0,
            "{m:?}"
        );
        // Each process's pool: slots in use within [0, its maximum].
        let pools: Vec<(&String, &f64)> = m
            .iter()
            .filter(|(k, _)| k.starts_with("plexpg_shim_pool_slots_in_use{"))
            .collect();
        for (k, in_use) in &pools {
            let max = sample(m, &k.replace("slots_in_use", "slots_max"));
            assert!(
                **in_use >= 0.0 && **in_use <= max && max >= 1.0,
                "{k} = {in_use}, max {max}"
            );
        }
        assert_eq!(
            pools.len() as f64,
            sample(m, "plexpg_shim_processes"),
            "{m:?}"
        );
    }
    // plex-sim was alive and working at the first two scrapes.
    assert!(sample(a, "plexpg_shim_processes") >= 1.0, "{a:?}");
}

#[test]
fn the_grafana_dashboard_asks_only_for_metrics_the_launcher_serves() {
    let text = plex_pg_launcher::metrics::render(&plex_pg_launcher::metrics::Snapshot::default());
    // Sample names, and the families declared (a family may have no
    // sample yet, e.g. errors by code before the first error; a
    // histogram's samples are its _bucket, _sum and _count).
    let mut served: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            served.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    served.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    let path = plex_pg_tests::workspace_root().join("packaging/grafana/plex-pg.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut asked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("plexpg_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    served.contains(&name),
                    "the dashboard asks for {name}, not served: {served:?}"
                );
                asked += 1;
            }
        }
    }
    assert!(asked >= 8, "{asked}");
}
