//! What running Plex under the launcher costs, each variant measured in
//! turn, round after round, against one PostgreSQL server, so machine noise
//! falls on all of them alike:
//!
//! - **The plex-sim workload**, a fixed amount of work (`--iterations` per
//!   worker, 40,000 movies, the Plex-like mix of children of every kind):
//!   its wall time and the resident memory of plex-sim and of the launcher
//!   at the end, under: plex-sim on plain SQLite (no shim); the shim
//!   preloaded, no launcher (the baseline); the launcher in mode `off`;
//!   `verify` with the ptrace watcher; `verify` with procfs; `enforce`.
//! - **Fork to the child's first instruction**: `fork-probe bench-fork`
//!   (the launcher's own measure, docs/launcher.md) under the same setups,
//!   with and without two PostgreSQL sessions the child inherits.
//! - **What preloading the shim alone costs** an idle process: resident
//!   and private dirty memory of `fork-probe server` with and without it.
//!
//! Writes `<target>/plex-pg-bench/supervision.json` (every run and the
//! medians with their ranges); `bench-table` prints them.
//!
//! Options: `--rounds N` (5), `--iterations N` (200), `--items N` (40000),
//! `--fork-rounds N` (5), `--forks N` (1000).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use plex_pg_bench::launch::{launcher_summary, Launch, Setup, BASELINE, NO_SHIM, SETUPS};
use plex_pg_bench::procs::{self, Watch};
use plex_pg_bench::stats::{rotation, Spread};
use plex_pg_bench::{cli, fixture, results};
use plex_pg_tests::{artifact, Cluster, TempDir};
use serde_json::{json, Value};

const SCHEMA: &str = "sim";

struct Bench {
    _cluster: Cluster,
    launch: Launch,
    tmp: TempDir,
    plex_sim: PathBuf,
    fork_probe: PathBuf,
    items: u64,
}

impl Bench {
    fn new(items: u64) -> Bench {
        let cluster = Cluster::start().expect("start PostgreSQL");
        cluster
            .psql(&format!("CREATE SCHEMA {SCHEMA}"))
            .expect("schema");
        let env = fixture::shim_env_for(&cluster, SCHEMA);
        Bench {
            _cluster: cluster,
            launch: Launch::new(env),
            tmp: TempDir::new("plex-pg-bench-supervision"),
            plex_sim: artifact("plex-sim"),
            fork_probe: artifact("fork-probe"),
            items,
        }
    }

    fn command(&self, setup: &Setup, program: &Path, args: &[OsString], events: &Path) -> Command {
        self.launch.command(setup, program, args, events)
    }

    fn data_dir(&self, shim: bool) -> PathBuf {
        self.tmp
            .path()
            .join(if shim { "postgresql" } else { "sqlite" })
    }

    fn file(&self, name: String) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// One plex-sim run: `iterations` per worker, children unless `quiet_children`.
    fn plex_sim(&self, setup: &Setup, tag: &str, iterations: u64, children: bool) -> Value {
        let summary = self.file(format!("summary-{tag}.json"));
        let events = self.file(format!("events-{tag}.jsonl"));
        let log = self.file(format!("log-{tag}.txt"));
        let mut args: Vec<OsString> = vec!["--data-dir".into(), self.data_dir(setup.shim).into()];
        for (k, v) in [
            ("--items", self.items),
            ("--iterations", iterations),
            ("--helper-ms", 100),
        ] {
            args.extend([k.into(), v.to_string().into()]);
        }
        args.extend([
            "--quiet".into(),
            "--timeout".into(),
            "900".into(),
            "--summary".into(),
            summary.clone().into(),
        ]);
        if !children {
            args.extend(["--spawn".into(), "none".into()]);
        }
        let watch: &[Watch] = if setup.launcher.is_some() {
            &[Watch::Top, Watch::FirstChild]
        } else {
            &[Watch::Top]
        };
        let mut cmd = self.command(setup, &self.plex_sim, &args, &events);
        let out = procs::run_sampled(&mut cmd, &log, Duration::from_secs(1000), watch);
        let sim: Value = std::fs::read_to_string(&summary)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let ok = out.code == Some(0) && sim["ok"] == true;
        if !ok {
            eprintln!(
                "supervision-bench: plex-sim under {:?} failed ({tag}, code {:?}):\n{}",
                setup.name,
                out.code,
                procs::tail(&log, 20)
            );
        }
        let (sim_memory, launcher_memory) = match setup.launcher {
            Some(_) => (
                out.memory.get(&Watch::FirstChild),
                out.memory.get(&Watch::Top),
            ),
            None => (out.memory.get(&Watch::Top), None),
        };
        json!({
            "setup": setup.name,
            "ok": ok,
            "wall_s": out.wall.as_secs_f64(),
            "workload_s": sim["seconds"],
            "fill": sim["fill"],
            "queries": sim["queries"],
            "children_started": sim["children"]["started"],
            "errors": sim["errors"],
            "plex_sim_rss_kib": sim_memory.map(|m| m.rss_kib),
            "plex_sim_peak_kib": sim_memory.map(|m| m.peak_kib),
            "launcher_rss_kib": launcher_memory.map(|m| m.rss_kib),
            "launcher_peak_kib": launcher_memory.map(|m| m.peak_kib),
            "launcher_summary": launcher_summary(&events),
        })
    }

    /// `fork-probe bench-fork`: its percentiles of fork → child, in µs.
    fn fork_latency(&self, setup: &Setup, connect: bool, forks: u64, tag: &str) -> Value {
        let log = self.file(format!("fork-{tag}.txt"));
        let events = self.file(format!("fork-events-{tag}.jsonl"));
        let mut args: Vec<OsString> = vec!["bench-fork".into(), forks.to_string().into()];
        if connect {
            args.push("--connect".into());
        }
        let mut cmd = self.command(setup, &self.fork_probe, &args, &events);
        let out = procs::run_sampled(&mut cmd, &log, Duration::from_secs(300), &[]);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let mut figures = serde_json::Map::new();
        for line in text.lines() {
            // "fork to child (us, median): 56.1"
            if let Some(rest) = line.strip_prefix("fork to child (us, ") {
                if let Some((label, value)) = rest.split_once("): ") {
                    let label = if label == "median" { "p50" } else { label };
                    if let Ok(v) = value.trim().parse::<f64>() {
                        figures.insert(label.to_string(), json!(v));
                    }
                }
            }
        }
        let ok = out.code == Some(0) && figures.contains_key("p50");
        if !ok {
            eprintln!(
                "supervision-bench: fork-probe under {:?} failed ({tag}):\n{}",
                setup.name,
                procs::tail(&log, 20)
            );
        }
        json!({ "setup": setup.name, "connect": connect, "ok": ok, "us": figures })
    }

    /// An idle process (`fork-probe server`), with or without the shim
    /// preloaded: its resident and private dirty memory, KiB.
    fn idle_memory(&self, shim: bool) -> Value {
        let mut cmd = Command::new(&self.fork_probe);
        cmd.args(["server", "0", "600"]).env_remove("LD_PRELOAD");
        if shim {
            cmd.env("LD_PRELOAD", &self.launch.shim);
        }
        let mut child = cmd.spawn().expect("fork-probe server");
        std::thread::sleep(Duration::from_millis(300));
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", child.id()))
            .unwrap_or_default();
        let _ = child.wait();
        json!({
            "shim": shim,
            "rss_kib": procs::status_field(&rollup, "Rss:"),
            "private_dirty_kib": procs::status_field(&rollup, "Private_Dirty:"),
        })
    }
}

/// `f` of each run of `setup` that succeeded.
fn figures(runs: &[Value], setup: &str, f: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    runs.iter()
        .filter(|r| r["setup"] == setup && r["ok"] == true)
        .filter_map(f)
        .collect()
}

/// Per round, `f(run) op f(baseline run)`; their spread.
fn paired(
    runs: &[Value],
    setup: &str,
    base: &str,
    f: impl Fn(&Value) -> Option<f64>,
    op: fn(f64, f64) -> f64,
) -> Value {
    let mut values = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r["setup"] == setup && r["ok"] == true)
    {
        let b = runs.iter().find(|b| {
            b["setup"] == base
                && b["round"] == r["round"]
                && b["connect"] == r["connect"]
                && b["ok"] == true
        });
        if let (Some(x), Some(y)) = (f(r), b.and_then(&f)) {
            values.push(op(x, y));
        }
    }
    spread_json(&values)
}

fn spread_json(values: &[f64]) -> Value {
    Spread::of(values)
        .map(Spread::to_json)
        .unwrap_or(Value::Null)
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b
}

fn difference(a: f64, b: f64) -> f64 {
    a - b
}

fn main() {
    let rounds: usize = cli::opt("rounds", 5);
    let iterations: u64 = cli::opt("iterations", 200);
    let items: u64 = cli::opt("items", 40_000);
    let fork_rounds: usize = cli::opt("fork-rounds", 5);
    let forks: u64 = cli::opt("forks", 1000);
    let bench = Bench::new(items);

    eprintln!(
        "supervision-bench: filling {items} movies, on PostgreSQL through the shim and on SQLite"
    );
    let fills: Vec<Value> = [BASELINE, NO_SHIM]
        .iter()
        .map(|&i| bench.plex_sim(&SETUPS[i], &format!("fill-{i}"), 1, false))
        .collect();
    for warm in [BASELINE, NO_SHIM] {
        bench.plex_sim(
            &SETUPS[warm],
            &format!("warm-{warm}"),
            (iterations / 10).max(1),
            true,
        );
    }

    let mut loadavg = Vec::new();
    let mut runs = Vec::new();
    for round in 0..rounds {
        loadavg.push(procs::loadavg());
        for i in rotation(round, SETUPS.len()) {
            let mut run = bench.plex_sim(&SETUPS[i], &format!("{round}-{i}"), iterations, true);
            run["round"] = json!(round);
            eprintln!(
                "supervision-bench: round {round} {:<14} {:>7.2} s ok={}",
                SETUPS[i].name,
                run["wall_s"].as_f64().unwrap_or(0.0),
                run["ok"]
            );
            runs.push(run);
        }
    }

    let mut fork_runs = Vec::new();
    let combos: Vec<(usize, bool)> = (0..SETUPS.len())
        .flat_map(|i| [(i, false), (i, true)])
        .collect();
    for round in 0..fork_rounds {
        for k in rotation(round, combos.len()) {
            let (i, connect) = combos[k];
            let mut run = bench.fork_latency(&SETUPS[i], connect, forks, &format!("{round}-{k}"));
            run["round"] = json!(round);
            fork_runs.push(run);
        }
        eprintln!("supervision-bench: fork round {round} done");
    }

    let mut idle = Vec::new();
    for round in 0..rounds {
        for shim in [round % 2 == 0, round % 2 == 1] {
            let mut m = bench.idle_memory(shim);
            m["round"] = json!(round);
            idle.push(m);
        }
    }

    let base = SETUPS[BASELINE].name;
    let wall = |r: &Value| r["wall_s"].as_f64();
    let mut workload = serde_json::Map::new();
    for s in &SETUPS {
        let stat = |key: &str| spread_json(&figures(&runs, s.name, |r| r[key].as_f64()));
        let launcher_stat = |key: &str| {
            spread_json(&figures(&runs, s.name, |r| {
                r["launcher_summary"][key].as_f64()
            }))
        };
        workload.insert(
            s.name.into(),
            json!({
                "runs_ok": figures(&runs, s.name, wall).len(),
                "runs_failed": runs.iter().filter(|r| r["setup"] == s.name && r["ok"] != true).count(),
                "wall_s": stat("wall_s"),
                "wall_ratio": paired(&runs, s.name, base, wall, ratio),
                "children_started": stat("children_started"),
                "queries": stat("queries"),
                "plex_sim_rss_kib": stat("plex_sim_rss_kib"),
                "plex_sim_peak_kib": stat("plex_sim_peak_kib"),
                "launcher_rss_kib": stat("launcher_rss_kib"),
                "launcher_peak_kib": stat("launcher_peak_kib"),
                "event_stops": launcher_stat("event_stops"),
                "syscall_stops": launcher_stat("syscall_stops"),
                "escalations": launcher_stat("escalations"),
            }),
        );
    }
    let mut fork = serde_json::Map::new();
    for connect in [false, true] {
        let mut by_setup = serde_json::Map::new();
        for s in &SETUPS {
            let runs: Vec<Value> = fork_runs
                .iter()
                .filter(|r| r["connect"] == connect)
                .cloned()
                .collect();
            let mut entry = serde_json::Map::new();
            for p in ["p50", "p90", "p99"] {
                let f = |r: &Value| r["us"][p].as_f64();
                if figures(&runs, s.name, f).is_empty() {
                    continue;
                }
                entry.insert(format!("{p}_us"), spread_json(&figures(&runs, s.name, f)));
                entry.insert(
                    format!("{p}_overhead_us"),
                    paired(&runs, s.name, base, f, difference),
                );
                entry.insert(
                    format!("{p}_over_no_shim_us"),
                    paired(&runs, s.name, SETUPS[NO_SHIM].name, f, difference),
                );
            }
            by_setup.insert(s.name.into(), Value::Object(entry));
        }
        fork.insert(
            if connect {
                "inherits_2_sessions"
            } else {
                "inherits_nothing"
            }
            .into(),
            Value::Object(by_setup),
        );
    }
    let idle_of = |shim: bool, key: &str| -> Vec<f64> {
        idle.iter()
            .filter(|m| m["shim"] == shim)
            .filter_map(|m| m[key].as_f64())
            .collect()
    };
    let idle_diff = |key: &str| -> Vec<f64> {
        idle_of(true, key)
            .iter()
            .zip(idle_of(false, key))
            .map(|(a, b)| a - b)
            .collect()
    };
    let preload = json!({
        "rss_kib": { "no shim": spread_json(&idle_of(false, "rss_kib")), "shim": spread_json(&idle_of(true, "rss_kib")), "difference": spread_json(&idle_diff("rss_kib")) },
        "private_dirty_kib": { "no shim": spread_json(&idle_of(false, "private_dirty_kib")), "shim": spread_json(&idle_of(true, "private_dirty_kib")), "difference": spread_json(&idle_diff("private_dirty_kib")) },
    });

    let mut summary: BTreeMap<&str, Value> = BTreeMap::new();
    summary.insert("settings", json!({ "rounds": rounds, "iterations": iterations, "items": items, "fork_rounds": fork_rounds, "forks": forks, "helper_ms": 100 }));
    summary.insert("loadavg_at_rounds", json!(loadavg));
    summary.insert("fills", json!(fills));
    summary.insert("workload", Value::Object(workload));
    summary.insert("fork", Value::Object(fork));
    summary.insert("preload_idle_memory", preload);
    summary.insert("runs", json!(runs));
    summary.insert("fork_runs", json!(fork_runs));
    summary.insert("idle_memory_runs", json!(idle));
    let path = results::write("supervision", &json!(summary));
    eprintln!("supervision-bench: wrote {}", path.display());
}
