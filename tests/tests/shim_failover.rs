//! PostgreSQL beyond one server: a host list whose first server is down,
//! a list that names a standby first, and a failover (the primary stops, the
//! standby is promoted) in the middle of a workload. The shim must find the
//! server that accepts writes, give in-flight statements a clear error,
//! reconnect within `postgres.retry_for_ms`, and lose no acknowledged write.

use plex_pg_tests::{ok_ids, Cluster, TempDir, Workload, PG_DATABASE, PG_PASSWORD, PG_USER};
use std::process::Command;
use std::time::{Duration, Instant};

const TABLE: &str = "CREATE SCHEMA failover; CREATE TABLE failover.events (id bigint PRIMARY KEY, at double precision)";

/// The shim's settings for the servers `hosts`/`ports` (libpq's comma
/// lists), schema `failover`.
fn servers(hosts: &str, ports: &str) -> Vec<(String, String)> {
    [
        ("PLEX_PG_HOST", hosts),
        ("PLEX_PG_PORT", ports),
        ("PLEX_PG_DATABASE", PG_DATABASE),
        ("PLEX_PG_USER", PG_USER),
        ("PLEX_PG_PASSWORD", PG_PASSWORD),
        ("PLEX_PG_SCHEMA", "failover"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn stored(cluster: &Cluster) -> Vec<i64> {
    cluster
        .psql("SELECT id FROM failover.events ORDER BY id")
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn first_host_down_and_a_standby_first_are_skipped() {
    let primary = Cluster::start().expect("primary");
    primary.psql(TABLE).unwrap();
    let standby = Cluster::standby_of(&primary).expect("standby");
    // A socket directory with no server in it, the standby (read-only),
    // then the primary: only the primary takes the writes.
    let nobody = TempDir::new("no-server");
    let hosts = format!(
        "{},{},{}",
        nobody.path().display(),
        standby.socket_dir().display(),
        primary.socket_dir().display()
    );
    let ports = format!("{},{},{}", primary.port(), standby.port(), primary.port());
    let (lines, stderr) =
        Workload::start(&servers(&hosts, &ports), 1.0).finish(Duration::from_secs(60));
    assert!(lines.len() > 10, "{stderr}");
    assert!(
        lines.iter().all(|v| v["ok"] == true),
        "every write succeeded on the primary: {lines:?}\n{stderr}"
    );
    let on_primary = stored(&primary);
    assert_eq!(on_primary, ok_ids(&lines));

    // `check` shows each server: the missing one, the standby, the primary.
    let out = plex_pg_tests::run(
        Command::new(plex_pg_tests::artifact("plex-pg-launcher"))
            .arg("check")
            .env("PLEX_PG_HOST", &hosts)
            .env("PLEX_PG_PORT", &ports)
            .env("PLEX_PG_DATABASE", PG_DATABASE)
            .env("PLEX_PG_USER", PG_USER)
            .env("PLEX_PG_PASSWORD", PG_PASSWORD)
            .env("PLEX_PG_CONFIG", "/dev/null"),
        Duration::from_secs(60),
    );
    let host_line = |dir: &std::path::Path, port: u16| {
        let name = format!("postgres host {}/.s.PGSQL.{port}:", dir.display());
        out.stdout
            .lines()
            .find(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", out.stdout))
            .to_string()
    };
    let missing = host_line(nobody.path(), primary.port());
    assert!(
        missing.starts_with("WARN") && missing.contains("does not answer"),
        "{missing}"
    );
    let read_only = host_line(standby.socket_dir(), standby.port());
    assert!(
        read_only.starts_with("ok") && read_only.contains("read-only (a standby)"),
        "{read_only}"
    );
    let writable = host_line(primary.socket_dir(), primary.port());
    assert!(
        writable.starts_with("ok") && writable.contains("primary: accepts writes"),
        "{writable}"
    );
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ok   postgres:")),
        "the list as a whole connects (to the primary):\n{}",
        out.stdout
    );
}

#[test]
fn failover_to_a_promoted_standby_loses_no_acknowledged_write() {
    let mut primary = Cluster::start().expect("primary");
    primary.psql(TABLE).unwrap();
    let standby = Cluster::standby_of(&primary).expect("standby");
    let hosts = format!(
        "{},{}",
        primary.socket_dir().display(),
        standby.socket_dir().display()
    );
    let ports = format!("{},{}", primary.port(), standby.port());
    let workload = Workload::start(&servers(&hosts, &ports), 8.0);
    std::thread::sleep(Duration::from_millis(2000));
    // The failover: the primary goes away, an HA manager promotes the
    // standby a moment later.
    let failed_at = Instant::now();
    primary.stop_server().expect("stop the primary");
    std::thread::sleep(Duration::from_millis(500));
    standby.promote().expect("promote");
    let promoted_after = failed_at.elapsed();
    let (lines, stderr) = workload.finish(Duration::from_secs(90));

    let ids = ok_ids(&lines);
    let first_failure = lines.iter().position(|v| v["ok"] == false);
    let last_failure = lines.iter().rposition(|v| v["ok"] == false);
    assert!(
        lines.len() > 100,
        "the workload ran: {} statements\n{stderr}",
        lines.len()
    );
    // Writes resumed on the new primary, and stayed there.
    assert_eq!(
        lines.last().unwrap()["ok"],
        true,
        "promoted after {promoted_after:?}\n{stderr}"
    );
    let resumed = lines.len() - last_failure.map_or(0, |i| i + 1);
    assert!(
        resumed > 20,
        "only {resumed} writes after the failover\n{stderr}"
    );
    if let Some(i) = first_failure {
        let e = lines[i]["error"].as_str().unwrap();
        assert!(
            e.len() > 10,
            "the in-flight statement got a clear error: {e}"
        );
    }
    // Every acknowledged write is on the new primary, once.
    let on_new = stored(&standby);
    for id in &ids {
        assert!(
            on_new.binary_search(id).is_ok(),
            "row {id} was acknowledged but is not on the new primary"
        );
    }
    let failed: Vec<i64> = lines
        .iter()
        .filter(|v| v["ok"] == false)
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    eprintln!(
        "failover: {} writes acknowledged, {} failed during the failover ({:?}), promoted {promoted_after:?} after the primary stopped",
        ids.len(),
        failed.len(),
        failed.first()
    );
}
