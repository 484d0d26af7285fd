//! The launcher's Prometheus endpoint, scraped while Plex's stand-in runs
//! and parsed by Prometheus's own text parser (Debian's
//! python3-prometheus-client): the counters move with a real run through
//! the shim, the violations of a run with the fork handler off are counted,
//! and `plex-pg-launcher status` prints the same figures.

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
    let outcome = launcher.run_with(&command, Duration::from_secs(240), |pid| {
        let seen =
            plex_pg_tests::cluster::wait_until(Duration::from_secs(120), || match wait_for {
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
        "no {wait_for} within 120 s:\n{}",
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
        status.contains("plexpg_forks_total "),
        "status printed:\n{status}"
    );
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

#[test]
fn the_grafana_dashboard_asks_only_for_metrics_the_launcher_serves() {
    let text = plex_pg_launcher::metrics::render(&plex_pg_launcher::metrics::Snapshot::default());
    let served: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
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
                    served.contains(name.as_str()),
                    "the dashboard asks for {name}, not served: {served:?}"
                );
                asked += 1;
            }
        }
    }
    assert!(asked >= 8, "{asked}");
}
