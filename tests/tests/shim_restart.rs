//! PostgreSQL restarted in the middle of a workload: the shim reconnects
//! (with backoff while the server is down) and the statements after the
//! restart succeed; no write the client saw succeed is lost.

use plex_pg_tests::{python_script, shim, Cluster, TempDir, PG_DATABASE, PG_PASSWORD, PG_USER};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn server_restart_mid_workload() {
    let mut cluster = Cluster::start().expect("cluster");
    cluster
        .psql("CREATE SCHEMA restart; CREATE TABLE restart.events (id bigint PRIMARY KEY, at double precision)")
        .unwrap();
    let dir = TempDir::new("restart");
    let db = dir.path().join("com.plexapp.plugins.library.db");
    let mut child = Command::new("python3")
        .arg(python_script("restart_workload.py"))
        .arg(&db)
        .arg("6")
        .env("PLEX_PG_HOST", cluster.socket_dir())
        .env("PLEX_PG_PORT", cluster.port().to_string())
        .env("PLEX_PG_DATABASE", PG_DATABASE)
        .env("PLEX_PG_USER", PG_USER)
        .env("PLEX_PG_PASSWORD", PG_PASSWORD)
        .env("PLEX_PG_SCHEMA", "restart")
        .env("PLEX_PG_CONFIG", "/dev/null")
        .env("LD_PRELOAD", shim())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader =
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).collect::<Vec<_>>());
    let stderr = child.stderr.take().unwrap();
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());

    std::thread::sleep(Duration::from_millis(1500));
    let restarted_at = Instant::now();
    cluster.restart().expect("restart");
    let downtime = restarted_at.elapsed();

    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the workload hung after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    let lines: Vec<Value> = reader
        .join()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stderr = err_reader.join().unwrap();
    let ok_ids: Vec<i64> = lines
        .iter()
        .filter(|v| v["ok"] == true)
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    let first_failure = lines.iter().position(|v| v["ok"] == false);
    let last = lines.last().unwrap();
    assert!(
        lines.len() > 50,
        "the workload ran: {} statements",
        lines.len()
    );
    assert_eq!(
        last["ok"], true,
        "the statements after the restart succeed; restart took {downtime:?}\n{stderr}"
    );
    if let Some(i) = first_failure {
        // Whatever failed was during the restart; everything after the
        // last failure succeeded.
        let last_failure = lines.iter().rposition(|v| v["ok"] == false).unwrap();
        assert!(lines[last_failure + 1..].iter().all(|v| v["ok"] == true));
        assert!(
            lines[i]["error"].as_str().unwrap().len() > 10,
            "the error says something: {}",
            lines[i]
        );
    }
    // No write reported as done is lost.
    let stored: Vec<i64> = cluster
        .psql("SELECT id FROM restart.events ORDER BY id")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for id in &ok_ids {
        assert!(
            stored.binary_search(id).is_ok(),
            "row {id} was reported written but is not in PostgreSQL"
        );
    }
}
