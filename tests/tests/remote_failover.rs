//! A failover under the launcher, with plex-sim as Plex: a primary and a
//! streaming standby (`pg_basebackup -R`), plex-sim writing under the
//! launcher in verify mode with the host list `primary,standby`
//! (`target_session_attrs` read-write); the primary stops, the standby is
//! promoted. Writes resume on the new primary, every write plex-sim saw
//! commit is on it, nothing hangs, the launcher's pool checks stay ok, and
//! after the failover a child's deliberate use of an inherited connection
//! is still caught.

#[path = "launcher_support.rs"]
mod support;

use plex_pg_tests::{
    artifact, python_script, run, shim, Cluster, TempDir, PG_DATABASE, PG_PASSWORD, PG_USER,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const ITEMS: u32 = 2_000;
const SCHEMA: &str = "failover_sim";

fn servers(primary: &Cluster, standby: &Cluster) -> Vec<(String, String)> {
    [
        (
            "PLEX_PG_HOST",
            format!(
                "{},{}",
                primary.socket_dir().display(),
                standby.socket_dir().display()
            ),
        ),
        (
            "PLEX_PG_PORT",
            format!("{},{}", primary.port(), standby.port()),
        ),
        ("PLEX_PG_DATABASE", PG_DATABASE.into()),
        ("PLEX_PG_USER", PG_USER.into()),
        ("PLEX_PG_PASSWORD", PG_PASSWORD.into()),
        ("PLEX_PG_SCHEMA", SCHEMA.into()),
        ("PLEX_PG_CONFIG", "/dev/null".into()),
        ("PLEX_PG_ALLOW_EMPTY_LIBRARY", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn journal(path: &std::path::Path) -> Vec<Value> {
    plex_pg_tests::plex_sim_journal(path)
}

#[test]
fn plex_sim_under_the_launcher_survives_a_failover() {
    let mut primary = Cluster::start().expect("primary");
    // The library, filled through the shim on the primary alone.
    let fill_dir = TempDir::new("failover-fill");
    let mut fill = Command::new(artifact("plex-sim"));
    fill.arg("--data-dir")
        .arg(fill_dir.path())
        .args(["--items", &ITEMS.to_string()])
        .args([
            "--threads",
            "1",
            "--iterations",
            "1",
            "--spawn",
            "none",
            "--summary",
            "-",
        ])
        .envs(primary.env())
        .env("PLEX_PG_SCHEMA", SCHEMA)
        .env("PLEX_PG_CONFIG", "/dev/null")
        .env("LD_PRELOAD", shim())
        .env_remove("PLEX_PG_SUPERVISOR");
    run(&mut fill, Duration::from_secs(600)).assert_ok();
    // pg_basebackup waits for a spread checkpoint: with the fill's dirty
    // buffers that takes minutes; an immediate one first leaves it little.
    primary.psql("CHECKPOINT").expect("checkpoint");
    let standby = Cluster::standby_of(&primary).expect("standby");

    let mut l = support::Launcher::new();
    l.cmd
        .envs(servers(&primary, &standby))
        .args(["--mode", "verify"]);
    let dir = l.dir.path().to_path_buf();
    let data = dir.join("plex");
    let journal_path = data.join("plex-sim-journal.jsonl");
    let summary = dir.join("summary.json");
    let after = dir.join("after.json");
    // plex-sim for 20 s (no children: the pool checks of the children of
    // the last step are the ones asserted), then, after the failover, a
    // child that uses its parent's connection (fork handler off).
    let script = format!(
        "{} --data-dir {} --items {ITEMS} --summary {} --duration 20 --spawn none --query-timeout 40; \
         PLEX_PG_FORK_HANDLER=0 python3 {} {} > {}",
        artifact("plex-sim").display(),
        data.display(),
        summary.display(),
        python_script("inherited_use.py").display(),
        dir.join("com.plexapp.plugins.library.db").display(),
        after.display(),
    );
    let journal_for_between = journal_path.clone();
    let mut committed_at_failover = 0;
    let run = l.run_with(&["sh", "-c", &script], Duration::from_secs(300), |_| {
        // Let plex-sim write for a while, then fail over.
        assert!(plex_pg_tests::cluster::wait_until(
            Duration::from_secs(120),
            || { journal(&journal_for_between).len() > 20 }
        ));
        std::thread::sleep(Duration::from_secs(3));
        primary.stop_server().expect("stop the primary");
        std::thread::sleep(Duration::from_millis(500));
        standby.promote().expect("promote the standby");
        committed_at_failover = journal(&journal_for_between).len();
    });
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let sim: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap())
        .unwrap_or_else(|e| panic!("no plex-sim summary ({e})\n{}", run.dump()));
    eprintln!(
        "plex-sim: exit {}, stopped by {}, {} queries, {} writes committed, {} mismatches, errors {}; {} journal lines at the failover, {} at the end",
        sim["exit_code"],
        sim["stopped_by"],
        sim["queries"],
        sim["writes_committed"],
        sim["mismatches"],
        sim["errors"],
        committed_at_failover,
        journal(&journal_path).len()
    );
    // Nothing hung (plex-sim's exit 3), the run went its full length.
    assert_ne!(sim["exit_code"], 3, "plex-sim saw a hang: {sim:#}");
    assert_eq!(sim["stopped_by"], "duration", "{sim:#}");
    assert_eq!(sim["mismatches"], 0, "no result was wrong: {sim:#}");
    // Writes resumed on the new primary: plex-sim committed after the
    // failover (the old primary was stopped by then).
    let entries = journal(&journal_path);
    assert!(
        entries.len() > committed_at_failover + 10,
        "writes resumed after the failover: {} journal lines at it, {} at the end",
        committed_at_failover,
        entries.len()
    );
    // Every committed write is on the new primary.
    let mut by_table: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e["event"] == "committed" && e["db"] == "library")
    {
        by_table
            .entry(e["table"].as_str().unwrap().to_string())
            .or_default()
            .push(e["id"].as_i64().unwrap());
    }
    let mut checked = 0;
    for (table, mut ids) in by_table {
        ids.sort_unstable();
        ids.dedup();
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let found = standby
            .psql(&format!(
                "SELECT count(*) FROM \"{SCHEMA}\".\"{table}\" WHERE id IN ({})",
                list.join(",")
            ))
            .unwrap();
        assert_eq!(
            found.trim(),
            ids.len().to_string(),
            "every committed {table} row is on the new primary"
        );
        checked += ids.len();
    }
    assert!(checked > 0);
    // The launcher's pool checks: plex-sim's process passed them all; the
    // only violation is the deliberate one after the failover, and its use
    // of the inherited connection (to the new primary) was caught.
    let phase: Value = serde_json::from_str(
        std::fs::read_to_string(&after)
            .unwrap()
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("inherited_use.py said nothing ({e})\n{}", run.dump()));
    let child = phase["child"].as_i64().unwrap();
    let violations: Vec<&Value> = run
        .events("pool_check")
        .into_iter()
        .filter(|e| e["verdict"] != "ok")
        .collect();
    assert_eq!(violations.len(), 1, "{}", run.dump());
    assert_eq!(violations[0]["pid"], child, "{}", run.dump());
    let new_primary = format!(".s.PGSQL.{}", standby.port());
    assert!(
        run.events("inherited_fd_use")
            .iter()
            .any(|u| u["pid"] == child
                && u["peer"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with(&new_primary)),
        "the child's use of its parent's connection to the new primary was caught\n{}",
        run.dump()
    );
}
