//! PostgreSQL restarted in the middle of a workload: the shim reconnects
//! (with backoff while the server is down) and the statements after the
//! restart succeed; no write the client saw succeed is lost.

use plex_pg_tests::{ok_ids, Cluster, Workload};
use std::time::{Duration, Instant};

#[test]
fn server_restart_mid_workload() {
    let mut cluster = Cluster::start().expect("cluster");
    cluster
        .psql("CREATE SCHEMA restart; CREATE TABLE restart.events (id bigint PRIMARY KEY, at double precision)")
        .unwrap();
    let mut env = cluster.env();
    env.push(("PLEX_PG_SCHEMA".into(), "restart".into()));
    let workload = Workload::start(&env, 6.0);

    std::thread::sleep(Duration::from_millis(1500));
    let restarted_at = Instant::now();
    cluster.restart().expect("restart");
    let downtime = restarted_at.elapsed();

    let (lines, stderr) = workload.finish(Duration::from_secs(60));
    let ok_ids = ok_ids(&lines);
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
