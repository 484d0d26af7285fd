//! fork-shape-bench: what supervision costs on fork-heavy work (issue 19's
//! shape). `bench/fork_shape.py` — a 5,000-row table; per round a streamed
//! query with a fork in the middle whose child exits at once, a fork+exec
//! of `/bin/true`, and an update — is run under every setup
//! ([`plex_pg_bench::launch::SETUPS`]), the setups in a new order each
//! round, against one PostgreSQL server, so machine noise falls on all of
//! them alike.
//!
//! Per setup: the median of the rounds' times with their range, the median
//! of the per-round ratios to the baseline (the shim, no launcher) with
//! their range, and the added cost per child process (the per-round time
//! difference divided by the children of a run). The launcher's own counts
//! (event and syscall stops, escalations) are printed beside them, so the
//! total can be checked against the per-event costs. Beside the time, the
//! CPU the run's whole process tree used (user + system, from
//! `getrusage(RUSAGE_CHILDREN)` around the run: the launcher, Python and
//! its children; not the PostgreSQL server), as added CPU per child: on a
//! loaded machine the time stretches with other work, the CPU much less.
//!
//! Prints a Markdown table; writes `<target>/plex-pg-bench/fork-shape.json`.
//! Options: `--rounds N` (15), `--shape-rounds N` (100, the script's own
//! rounds per run), `--launcher PATH` (another build of the launcher, to
//! compare two), `--strace DIR`: instead of the rounds, one run of each
//! launcher setup with the launcher alone under `strace -c` (its syscall
//! counts, written to `DIR/<setup>.txt`; the traced tree is not counted).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use plex_pg_bench::launch::{launcher_summary, Launch, BASELINE, SETUPS};
use plex_pg_bench::stats::{rotation, Spread};
use plex_pg_bench::{cli, fixture, results};
use plex_pg_tests::{Cluster, TempDir};
use serde_json::{json, Value};

const SCHEMA: &str = "shape";

/// User + system CPU seconds of every waited-for child of this process so
/// far (a child's own waited-for children included).
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fork_shape.py")
}

fn main() {
    let rounds: usize = cli::opt("rounds", 15);
    let shape_rounds: u64 = cli::opt("shape-rounds", 100);
    let cluster = Cluster::start().expect("start PostgreSQL");
    cluster
        .psql(&format!("CREATE SCHEMA {SCHEMA}"))
        .expect("schema");
    let mut launch = Launch::new(fixture::shim_env_for(&cluster, SCHEMA));
    let launcher: String = cli::opt("launcher", String::new());
    if !launcher.is_empty() {
        launch.launcher = PathBuf::from(launcher);
    }
    let tmp = TempDir::new("plex-pg-bench-fork-shape");
    let db = |shim: bool| {
        let dir = tmp.path().join(if shim { "postgresql" } else { "sqlite" });
        std::fs::create_dir_all(&dir).expect("data dir");
        dir.join("com.plexapp.plugins.library.db")
    };

    let run = |i: usize, tag: &str, shape_rounds: u64| -> Value {
        let setup = &SETUPS[i];
        let events = tmp.path().join(format!("events-{tag}.jsonl"));
        let args: Vec<OsString> = vec![
            script().into(),
            db(setup.shim).into(),
            shape_rounds.to_string().into(),
        ];
        let mut cmd = launch.command(setup, &PathBuf::from("python3"), &args, &events);
        let started = std::time::Instant::now();
        let cpu_before = children_cpu();
        let out = plex_pg_tests::run(&mut cmd, Duration::from_secs(600));
        let cpu = children_cpu() - cpu_before;
        let wall = started.elapsed().as_secs_f64();
        let line: Value = out
            .stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        let ok = out.code == Some(0) && line["seconds"].is_number();
        if !ok {
            eprintln!(
                "fork-shape-bench: {} failed (code {:?}):\n{}",
                setup.name, out.code, out.stderr
            );
        }
        json!({
            "setup": setup.name,
            "ok": ok,
            "seconds": line["seconds"],
            "children": line["children"],
            "wall_s": wall,
            "cpu_s": cpu,
            "launcher": launcher_summary(&events),
        })
    };

    eprintln!("fork-shape-bench: filling the table and warming every setup");
    for i in 0..SETUPS.len() {
        run(i, &format!("warm-{i}"), 2);
    }
    let strace: String = cli::opt("strace", String::new());
    if !strace.is_empty() {
        std::fs::create_dir_all(&strace).expect("strace output directory");
        for setup in SETUPS.iter().filter(|s| s.launcher.is_some()) {
            let events = tmp.path().join("events-strace.jsonl");
            let args: Vec<OsString> = vec![
                script().into(),
                db(setup.shim).into(),
                shape_rounds.to_string().into(),
            ];
            let inner = launch.command(setup, &PathBuf::from("python3"), &args, &events);
            let counts =
                PathBuf::from(&strace).join(format!("{}.txt", setup.name.replace(' ', "-")));
            let mut cmd = std::process::Command::new("strace");
            cmd.arg("-c")
                .arg("-o")
                .arg(&counts)
                .arg(inner.get_program());
            cmd.args(inner.get_args());
            for (k, v) in inner.get_envs() {
                match v {
                    Some(v) => cmd.env(k, v),
                    None => cmd.env_remove(k),
                };
            }
            let out = plex_pg_tests::run(&mut cmd, Duration::from_secs(600));
            let summary = launcher_summary(&events);
            println!(
                "{}: exit {:?}, {}; launcher summary {summary}",
                setup.name,
                out.code,
                counts.display()
            );
        }
        return;
    }
    let mut loadavg = Vec::new();
    let mut runs = Vec::new();
    for round in 0..rounds {
        let load = plex_pg_bench::procs::loadavg();
        loadavg.push(load.split_whitespace().next().unwrap_or("?").to_string());
        for i in rotation(round, SETUPS.len()) {
            let mut r = run(i, &format!("{round}-{i}"), shape_rounds);
            r["round"] = json!(round);
            runs.push(r);
        }
        eprintln!("fork-shape-bench: round {} of {rounds} done", round + 1);
    }

    let base = SETUPS[BASELINE].name;
    let field_of = |key: &str, setup: &str, round: &Value| {
        runs.iter()
            .find(|r| r["setup"] == setup && &r["round"] == round && r["ok"] == true)
            .and_then(|r| r[key].as_f64())
    };
    let of = |setup: &str, round: &Value| field_of("seconds", setup, round);
    let children = runs
        .iter()
        .find_map(|r| r["children"].as_f64())
        .unwrap_or(0.0);
    let mut summary = serde_json::Map::new();
    println!(
        "| setup ({shape_rounds} shape rounds a run, {children:.0} children; {rounds} interleaved rounds) | time, median [range] | ratio to the shim without launcher, median [range] | added per child, median [range] | CPU of the tree added per child, median [range] | launcher: event stops / syscall stops / escalations a run |"
    );
    println!("|---|---|---|---|---|---|");
    for s in &SETUPS {
        let mine: Vec<&Value> = runs
            .iter()
            .filter(|r| r["setup"] == s.name && r["ok"] == true)
            .collect();
        let times: Vec<f64> = mine.iter().filter_map(|r| r["seconds"].as_f64()).collect();
        let (mut ratios, mut per_child, mut cpu_per_child) = (Vec::new(), Vec::new(), Vec::new());
        for r in &mine {
            if let (Some(x), Some(b)) = (r["cpu_s"].as_f64(), field_of("cpu_s", base, &r["round"]))
            {
                if children > 0.0 {
                    cpu_per_child.push((x - b) / children * 1e6);
                }
            }
            if let (Some(x), Some(b)) = (r["seconds"].as_f64(), of(base, &r["round"])) {
                ratios.push(x / b);
                if children > 0.0 {
                    per_child.push((x - b) / children * 1e6);
                }
            }
        }
        let count = |key: &str| {
            Spread::of(
                &mine
                    .iter()
                    .filter_map(|r| r["launcher"][key].as_f64())
                    .collect::<Vec<_>>(),
            )
        };
        let show = |v: Option<Spread>, f: &dyn Fn(f64) -> String| match v {
            Some(s) => format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max)),
            None => "—".into(),
        };
        let stops = match (
            count("event_stops"),
            count("syscall_stops"),
            count("escalations"),
        ) {
            (Some(e), Some(y), Some(x)) => {
                format!("{:.0} / {:.0} / {:.0}", e.median, y.median, x.median)
            }
            _ => "—".into(),
        };
        let is_base = s.name == base;
        println!(
            "| {} | {} | {} | {} | {} | {stops} |",
            s.name,
            show(Spread::of(&times), &|x| format!("{x:.2} s")),
            if is_base {
                "1 (the baseline)".into()
            } else {
                show(Spread::of(&ratios), &|x| format!("{x:.3}×"))
            },
            if is_base {
                "—".into()
            } else {
                show(Spread::of(&per_child), &|x| format!("{x:+.0} µs"))
            },
            if is_base {
                "—".into()
            } else {
                show(Spread::of(&cpu_per_child), &|x| format!("{x:+.0} µs"))
            },
        );
        summary.insert(
            s.name.into(),
            json!({
                "runs_ok": mine.len(),
                "seconds": Spread::of(&times).map(Spread::to_json),
                "ratio": Spread::of(&ratios).map(Spread::to_json),
                "per_child_us": Spread::of(&per_child).map(Spread::to_json),
                "cpu_per_child_us": Spread::of(&cpu_per_child).map(Spread::to_json),
            }),
        );
    }
    println!(
        "\nLoad average (1 min) at each round: {}.",
        loadavg.join(" ")
    );
    let path = results::write(
        "fork-shape",
        &json!({
            "settings": { "rounds": rounds, "shape_rounds": shape_rounds },
            "loadavg_at_rounds": loadavg,
            "by_setup": summary,
            "runs": runs,
        }),
    );
    eprintln!("fork-shape-bench: wrote {}", path.display());
}
