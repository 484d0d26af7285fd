//! Shared by the end-to-end tests (`e2e_*`, included with `#[path]`):
//! plex-sim under the release launcher with the shim, on the test
//! PostgreSQL; plex-sim's summary and journal read back; the launcher's
//! event log set against what plex-sim says it started. Compiled on its own
//! too, as a test binary with no tests.
#![allow(dead_code)]

#[path = "launcher_support.rs"]
pub mod launcher;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use plex_pg_launcher::events::Value;
use plex_pg_tests::{artifact, pg, run, shim, TempDir};

pub use launcher::{Launcher, Run};

/// The launcher's kind for a child plex-sim started by `method` (glibc's
/// posix_spawn is a `clone(CLONE_VM|CLONE_VFORK)`: the tracer sees a vfork).
pub fn kind_of_method(method: &str) -> &'static str {
    match method {
        "fork" | "fork+exec" => "fork",
        "vfork+exec" | "posix_spawn" => "vfork",
        other => panic!("unknown plex-sim start method {other:?}"),
    }
}

/// plex-sim under the launcher, finished.
pub struct SimRun {
    pub run: Run,
    /// plex-sim's JSON summary.
    pub sim: Value,
}

impl SimRun {
    /// Every child plex-sim reports having started.
    pub fn children(&self) -> Vec<&Value> {
        self.sim["children"]["list"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    pub fn child_pids(&self) -> BTreeSet<i64> {
        self.children()
            .iter()
            .map(|c| c["pid"].as_i64().unwrap())
            .collect()
    }

    /// The pids of the `fork` events, the command's own spawn left out.
    pub fn born(&self) -> BTreeSet<i64> {
        self.run
            .events("fork")
            .into_iter()
            .filter(|e| e["kind"] != "spawn")
            .map(|e| e["pid"].as_i64().unwrap())
            .collect()
    }

    /// plex-sim's server process (the launcher's main process).
    pub fn server_pid(&self) -> i64 {
        self.sim["pid"].as_i64().expect("summary pid")
    }

    /// The child that injected `fault`.
    pub fn fault_child(&self, fault: &str) -> i64 {
        let faults = self.sim["faults"].as_array().expect("faults");
        let f = faults
            .iter()
            .find(|f| f["fault"] == fault)
            .unwrap_or_else(|| panic!("no {fault} in {faults:?}"));
        f["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("{fault} has no child: {f}"))
    }

    /// The pool checks of `pid` (usually one).
    pub fn pool_checks(&self, pid: i64) -> Vec<&Value> {
        self.run
            .events("pool_check")
            .into_iter()
            .filter(|e| e["pid"] == pid)
            .collect()
    }

    /// The inherited-socket uses by `pid`.
    pub fn fd_uses(&self, pid: i64) -> Vec<&Value> {
        self.run
            .events("inherited_fd_use")
            .into_iter()
            .filter(|e| e["pid"] == pid)
            .collect()
    }

    pub fn dump(&self) -> String {
        format!("{}\n--- plex-sim summary\n{:#}", self.run.dump(), self.sim)
    }

    /// plex-sim's figures and the launcher's, on one line, for the test log.
    pub fn figures(&self) -> String {
        let s = &self.sim;
        let l = self.run.summary();
        format!(
            "{:.1} s: plex-sim exit {}, {} queries ({} hash), {} rows checked, {} mismatches, {} children ({} mid hash query); \
             launcher exit {:?}, {} forks, {} pool checks ok, {} violations, {} inherited fd uses ({} denied), watcher {}",
            self.run.elapsed.as_secs_f64(),
            s["exit_code"],
            s["queries"],
            s["hash_queries"],
            s["rows_checked"],
            s["mismatches"],
            s["children"]["started"],
            s["children"]["started_mid_hash_query"],
            self.run.code,
            l["forks"],
            l["pool_checks_ok"],
            l["pool_check_violations"],
            l["inherited_fd_uses"],
            l["denied"],
            l["watcher"],
        )
    }
}

/// plex-sim's command line after the launcher's `--`, with its data
/// directory and summary in `dir`.
pub fn sim_command(dir: &Path, items: u32, args: &[&str]) -> Vec<String> {
    let mut cmd = vec![
        artifact("plex-sim").display().to_string(),
        "--data-dir".into(),
        dir.join("plex").display().to_string(),
        "--items".into(),
        items.to_string(),
        "--summary".into(),
        dir.join("summary.json").display().to_string(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    cmd
}

/// Run plex-sim (`sim_args`) under the launcher (`launcher_args`, e.g. the
/// mode) on the test server, library schema `schema`, with `env` added;
/// `between` runs while it runs (given the launcher's pid and the run's
/// directory). Bounded by `limit`.
pub fn sim_under_launcher(
    schema: &str,
    items: u32,
    launcher_args: &[&str],
    sim_args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
    between: impl FnOnce(u32, &Path),
) -> SimRun {
    let mut l = Launcher::new();
    l.cmd
        .envs(pg().env(schema))
        .envs(env.iter().copied())
        .args(launcher_args);
    let dir = l.dir.path().to_path_buf();
    let command = sim_command(&dir, items, sim_args);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let run = l.run_with(&command, limit, |pid| between(pid, &dir));
    let summary = run.dir.path().join("summary.json");
    let sim = std::fs::read(&summary)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            panic!(
                "plex-sim wrote no summary at {}\n{}",
                summary.display(),
                run.dump()
            )
        });
    SimRun { run, sim }
}

/// Fill a library of `items` movies in `schema` through the shim (plex-sim
/// alone, one worker, no children), so later runs find it ready.
pub fn fill_library(schema: &str, items: u32, limit: Duration) -> Value {
    let dir = TempDir::new("e2e-fill");
    let mut cmd = Command::new(artifact("plex-sim"));
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["--items", &items.to_string()]);
    cmd.args([
        "--threads",
        "1",
        "--iterations",
        "1",
        "--spawn",
        "none",
        "--summary",
        "-",
    ]);
    cmd.envs(pg().env(schema))
        .env("LD_PRELOAD", shim())
        .env_remove("PLEX_PG_SUPERVISOR");
    let out = run(&mut cmd, limit);
    assert!(
        !out.timed_out,
        "the fill of {items} movies did not finish within {limit:?}\n{}",
        out.stderr
    );
    out.assert_ok();
    let summary: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let fill = &summary["fill"];
    assert_eq!(
        fill["found"].as_u64().unwrap() + fill["written"].as_u64().unwrap(),
        u64::from(items),
        "the library holds every movie: {summary:#}"
    );
    summary
}

/// plex-sim's journal (`<data-dir>/plex-sim-journal.jsonl`) in a run's directory.
pub fn journal(dir: &Path) -> Vec<Value> {
    journal_at(&dir.join("plex").join("plex-sim-journal.jsonl"))
}

pub fn journal_at(path: &Path) -> Vec<Value> {
    plex_pg_tests::plex_sim_journal(path)
}

/// Every row the journal says was committed, with its last journaled
/// values, compared with what PostgreSQL holds in `schema`. Returns how
/// many rows were checked; panics on the first difference.
pub fn committed_rows_are_in_postgres(schema: &str, entries: &[Value]) -> usize {
    let mut last: BTreeMap<(String, i64), &Value> = BTreeMap::new();
    for e in entries.iter().filter(|e| e["event"] == "committed") {
        assert_eq!(
            e["db"], "library",
            "only the library database is journaled: {e}"
        );
        last.insert(
            (
                e["table"].as_str().unwrap().to_string(),
                e["id"].as_i64().unwrap(),
            ),
            &e["values"],
        );
    }
    let tables: BTreeSet<&String> = last.keys().map(|(t, _)| t).collect();
    for table in tables {
        let ids: Vec<String> = last
            .keys()
            .filter(|(t, _)| t == table)
            .map(|(_, id)| id.to_string())
            .collect();
        let out = pg().psql(&format!(
            "SELECT row_to_json(t) FROM \"{schema}\".\"{table}\" t WHERE id IN ({})",
            ids.join(",")
        ));
        let rows: BTreeMap<i64, Value> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_i64().unwrap(), v)
            })
            .collect();
        for id in ids.iter().map(|i| i.parse::<i64>().unwrap()) {
            let row = rows.get(&id).unwrap_or_else(|| {
                panic!("{table} {id} was journaled as committed but is not in PostgreSQL")
            });
            for (column, want) in last[&(table.clone(), id)].as_object().unwrap() {
                assert_eq!(
                    &row[column.as_str()],
                    want,
                    "{table} {id} column {column}: PostgreSQL has {row}"
                );
            }
        }
    }
    last.len()
}

/// Whether a process with this pid exists.
pub fn alive(pid: i64) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}
