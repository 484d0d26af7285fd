//! bench-table: the one table of `bench/run.sh`, from the figures the
//! benchmark programs left (criterion's estimates, and the JSON files of
//! `fork-handler-bench`, `supervision-bench` and `concurrency-bench`),
//! printed as Markdown so it can go into docs/benchmarks.md as it is.
//!
//! Each figure is a median with its spread: the range over the rounds
//! (`[min–max]`) for our own programs, criterion's 95 % confidence interval
//! of the median for criterion's. A figure whose program did not run is
//! left out with a line saying so.

use plex_pg_bench::results::{self, criterion_median};
use plex_pg_bench::stats::Spread;
use serde_json::Value;

fn time(ns: f64) -> String {
    match ns.abs() {
        x if x >= 1e9 => format!("{:.2} s", ns / 1e9),
        x if x >= 1e6 => format!("{:.2} ms", ns / 1e6),
        x if x >= 1e3 => format!("{:.1} µs", ns / 1e3),
        _ => format!("{ns:.0} ns"),
    }
}

fn spread(v: &Value) -> Option<Spread> {
    Spread::from_json(v)
}

/// `median [min–max]` in the unit `f` formats.
fn ranged(s: Spread, f: impl Fn(f64) -> String) -> String {
    if s.n == 1 {
        f(s.median)
    } else {
        format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max))
    }
}

fn ratio(x: f64) -> String {
    format!("{x:.3}×")
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn us(x: f64) -> String {
    format!("{x:.0} µs")
}

/// An overhead: signed.
fn more_us(x: f64) -> String {
    format!("{x:+.0} µs")
}

/// "met", or by how much it is missed (in the target's own terms).
fn verdict(value: f64, limit: f64, what: impl Fn(f64) -> String) -> String {
    if value <= limit {
        "met".into()
    } else {
        format!("**MISSED** by {}", what(value - limit))
    }
}

struct Table {
    rows: Vec<[String; 4]>,
    missing: Vec<String>,
}

impl Table {
    fn row(
        &mut self,
        what: impl Into<String>,
        figure: impl Into<String>,
        compared: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.rows
            .push([what.into(), figure.into(), compared.into(), target.into()]);
    }

    fn section(&mut self, title: &str) {
        self.row(format!("**{title}**"), "", "", "");
    }

    fn print(&self) {
        println!("| measure | median [spread] | compared (ratio or overhead, median [spread]) | target |");
        println!("|---|---|---|---|");
        for r in &self.rows {
            println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
        }
        for m in &self.missing {
            println!("\n(not run: {m})");
        }
    }
}

fn supervision(t: &mut Table, s: &Value) {
    let settings = &s["settings"];
    let w = &s["workload"];
    t.section(&format!(
        "Supervision: plex-sim workload ({} items, {} iterations × 4 workers, Plex-like children), wall time, {} interleaved rounds",
        settings["items"], settings["iterations"], settings["rounds"]
    ));
    let seconds = |x: f64| format!("{x:.2} s");
    for (name, label, target) in [
        (
            "no launcher",
            "shim preloaded, no launcher (baseline)",
            None,
        ),
        ("launcher off", "launcher `--mode off`", None),
        (
            "verify ptrace",
            "launcher `verify`, ptrace watcher",
            Some(1.03),
        ),
        ("verify procfs", "launcher `verify`, procfs watcher", None),
        ("enforce", "launcher `enforce` (ptrace)", None),
        ("no shim", "plex-sim on plain SQLite (no shim)", None),
    ] {
        let v = &w[name];
        let (Some(wall), Some(r)) = (spread(&v["wall_s"]), spread(&v["wall_ratio"])) else {
            t.row(label, "no successful run", "", "");
            continue;
        };
        let failed = v["runs_failed"].as_u64().unwrap_or(0);
        let note = if failed > 0 {
            format!(" ({failed} failed runs left out)")
        } else {
            String::new()
        };
        let target = match target {
            Some(limit) => format!(
                "≤ {limit:.2}×: {}",
                verdict(r.median, limit, |d| format!("{:.1} %", d * 100.0))
            ),
            None => String::new(),
        };
        let compared = if name == "no launcher" {
            String::new()
        } else {
            format!("{} of baseline", ranged(r, ratio))
        };
        t.row(
            label,
            format!("{}{note}", ranged(wall, seconds)),
            compared,
            target,
        );
    }

    for (key, title) in [
        ("inherits_nothing", "child inherits nothing"),
        (
            "inherits_2_sessions",
            "child inherits 2 PostgreSQL sessions (escalated under ptrace)",
        ),
    ] {
        t.section(&format!(
            "Fork → child's first instruction (`fork-probe bench-fork {}`, {title}), {} interleaved rounds",
            settings["forks"], settings["fork_rounds"]
        ));
        let f = &s["fork"][key];
        for (name, label) in [
            ("no shim", "no shim, no launcher"),
            ("no launcher", "shim preloaded, no launcher (baseline)"),
            ("launcher off", "launcher `--mode off`"),
            ("verify ptrace", "launcher `verify`, ptrace"),
            ("verify procfs", "launcher `verify`, procfs"),
            ("enforce", "launcher `enforce`"),
        ] {
            let v = &f[name];
            let tail = if v["p99_us"].is_null() { "p90" } else { "p99" };
            let (Some(p50), Some(pt)) = (spread(&v["p50_us"]), spread(&v[format!("{tail}_us")]))
            else {
                t.row(label, "no successful run", "", "");
                continue;
            };
            let figure = format!("p50 {}; {tail} {}", ranged(p50, us), ranged(pt, us));
            let (compared, target) = match name {
                "no launcher" => match spread(&v["p50_over_no_shim_us"]) {
                    Some(d) => (
                        format!("preloading the shim: p50 {}", ranged(d, more_us)),
                        String::new(),
                    ),
                    None => (String::new(), String::new()),
                },
                "no shim" => (String::new(), String::new()),
                _ => {
                    let d50 = spread(&v["p50_overhead_us"]);
                    let dt = spread(&v[format!("{tail}_overhead_us")]);
                    let compared = match (d50, dt) {
                        (Some(a), Some(b)) => {
                            format!("p50 {}; {tail} {}", ranged(a, more_us), ranged(b, more_us))
                        }
                        _ => String::new(),
                    };
                    let target = d50
                        .map(|a| format!("p50 overhead < 100 µs: {}", verdict(a.median, 100.0, us)))
                        .unwrap_or_default();
                    (compared, target)
                }
            };
            t.row(label, figure, compared, target);
        }
    }
}

fn fork_handler(t: &mut Table, f: &Value) {
    t.section("The shim's fork handler, timed inside the child (`fork-handler-bench`)");
    // By number of connections (the JSON object's keys sort as text).
    let mut rows: Vec<(&String, &Value)> =
        f["connections"].as_object().into_iter().flatten().collect();
    rows.sort_by_key(|(n, _)| n.parse::<u32>().unwrap_or(u32::MAX));
    for (n, v) in rows {
        let (Some(median), Some(p99)) = (v["median_ns"].as_f64(), v["p99_ns"].as_f64()) else {
            continue;
        };
        let target = if n == "64" {
            format!("< 1 µs: {}", verdict(median, 1000.0, time))
        } else {
            String::new()
        };
        let label = if n == "1" {
            "1 pooled connection, streaming".to_string()
        } else {
            format!("{n} pooled connections, each streaming")
        };
        t.row(
            label,
            format!("median {}; p99 {}", time(median), time(p99)),
            "",
            target,
        );
    }
}

/// Criterion's medians of both sides, and the interleaved ratio (the one
/// judged against the target when it ran).
fn criterion_pair(
    t: &mut Table,
    interleaved: &Value,
    label: &str,
    group: &str,
    target: Option<f64>,
) {
    let (Some(s), Some(p)) = (
        criterion_median(group, "shim"),
        criterion_median(group, "postgres"),
    ) else {
        t.missing.push(format!("criterion {group}"));
        return;
    };
    let alternating = spread(&interleaved[group]["ratio"]);
    let judged = alternating.map(|a| a.median).unwrap_or(s.0 / p.0);
    let target = match target {
        Some(limit) => format!(
            "≤ {limit:.2}×: {}",
            verdict(judged, limit, |d| format!("{:.1} %", d * 100.0))
        ),
        None => "(none)".into(),
    };
    let compared = match alternating {
        Some(a) => format!(
            "criterion {}; interleaved ({} rounds) **{}**",
            ratio(s.0 / p.0),
            a.n,
            ranged(a, ratio)
        ),
        None => format!("criterion **{}**", ratio(s.0 / p.0)),
    };
    t.row(
        label,
        format!(
            "shim {} [{}–{}]; postgres crate {} [{}–{}]",
            time(s.0),
            time(s.1),
            time(s.2),
            time(p.0),
            time(p.1),
            time(p.2)
        ),
        compared,
        target,
    );
}

fn translation(t: &mut Table) {
    t.section(
        "Translation over Plex's fixtures (`shim/benches/translate.rs`, criterion, per statement)",
    );
    for (function, label, target) in [
        (
            "cached_lookup",
            "cached lookup (what a warm statement costs)",
            Some(1000.0),
        ),
        (
            "uncached_memoized_catalog",
            "uncached: parse, rewrite, print (catalog answers at hand)",
            None,
        ),
        (
            "uncached_live_catalog",
            "uncached, first use: with catalog queries to a live server",
            None,
        ),
    ] {
        let Some(m) = criterion_median("translate", function) else {
            t.missing.push(format!("criterion translate/{function}"));
            continue;
        };
        let target = target
            .map(|l| format!("< 1 µs: {}", verdict(m.0, l, time)))
            .unwrap_or_default();
        t.row(
            label,
            format!("{} [{}–{}]", time(m.0), time(m.1), time(m.2)),
            "",
            target,
        );
    }
}

fn concurrency(t: &mut Table, c: &Value) {
    let st = &c["settings"];
    t.section(&format!(
        "A library scan during playback: {} writer processes (transactions of {} inserts + {} updates) and {} readers (a read every {} ms), {} s windows, {} interleaved rounds",
        st["writers"], st["rows_per_transaction"], st["rows_per_transaction"], st["readers"], st["read_every_ms"], st["seconds"], st["rounds"]
    ));
    let sides = &c["sides"];
    let per_s = |x: f64| format!("{x:.0}/s");
    let ms = |x: f64| format!("{x:.2} ms");
    for (key, label, f) in [
        (
            "writes_per_s",
            "write transactions committed",
            &per_s as &dyn Fn(f64) -> String,
        ),
        ("reads_per_s", "reads done", &per_s),
        ("write_p50_ms", "write transaction latency p50", &ms),
        ("write_p99_ms", "write transaction latency p99", &ms),
        ("read_p50_ms", "read latency p50", &ms),
        ("read_p99_ms", "read latency p99", &ms),
    ] {
        let (Some(lite), Some(shim)) = (spread(&sides["SQLite"][key]), spread(&sides["shim"][key]))
        else {
            continue;
        };
        let compared = match spread(&c["shim_over_sqlite"][key]) {
            Some(r) => format!("shim {}: {} of SQLite", ranged(shim, f), ranged(r, ratio)),
            None => format!(
                "shim {} ({:.2}× SQLite's median)",
                ranged(shim, f),
                shim.median / lite.median
            ),
        };
        t.row(label, format!("SQLite {}", ranged(lite, f)), compared, "");
    }
    let errors = |side: &str| {
        let e = &sides[side]["errors"];
        let list: Vec<String> = e
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let lost = sides[side]["lost_rows"].as_i64().unwrap_or(0);
        let failed = sides[side]["failed_workers"].as_i64().unwrap_or(0);
        format!(
            "{}; lost rows {lost}; failed workers {failed}",
            if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            }
        )
    };
    t.row(
        "errors (all rounds)",
        format!("SQLite: {}", errors("SQLite")),
        format!("shim: {}", errors("shim")),
        "",
    );
}

fn memory(t: &mut Table, s: &Value) {
    t.section(
        "Memory (resident, at the end of the plex-sim workload; idle process for the preload)",
    );
    let w = &s["workload"];
    if let (Some(lite), Some(shim)) = (
        spread(&w["no shim"]["plex_sim_rss_kib"]),
        spread(&w["no launcher"]["plex_sim_rss_kib"]),
    ) {
        t.row(
            "plex-sim server process",
            format!("on SQLite {}", ranged(lite, mib)),
            format!(
                "through the shim {}: {:+.1} MiB",
                ranged(shim, mib),
                (shim.median - lite.median) / 1024.0
            ),
            "",
        );
    }
    for (name, label) in [
        ("launcher off", "launcher, mode off"),
        ("verify ptrace", "launcher, verify/ptrace"),
        ("verify procfs", "launcher, verify/procfs"),
        ("enforce", "launcher, enforce"),
    ] {
        if let (Some(rss), Some(peak)) = (
            spread(&w[name]["launcher_rss_kib"]),
            spread(&w[name]["launcher_peak_kib"]),
        ) {
            t.row(
                label,
                format!("{} (peak {})", ranged(rss, mib), ranged(peak, mib)),
                "",
                "",
            );
        }
    }
    let p = &s["preload_idle_memory"];
    for (key, label) in [
        ("rss_kib", "idle process, resident"),
        (
            "private_dirty_kib",
            "idle process, private dirty (not shareable)",
        ),
    ] {
        if let (Some(a), Some(b), Some(d)) = (
            spread(&p[key]["no shim"]),
            spread(&p[key]["shim"]),
            spread(&p[key]["difference"]),
        ) {
            t.row(
                label,
                format!("no shim {}", ranged(a, mib)),
                format!(
                    "shim preloaded {}: {}",
                    ranged(b, mib),
                    ranged(d, |x| format!("{x:+.0} KiB"))
                ),
                "",
            );
        }
    }
}

fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim())
        .unwrap_or("?");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = plex_pg_bench::procs::status_field(&mem, "MemTotal:").unwrap_or(0);
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load_now = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_start =
        std::fs::read_to_string(results::dir().join("load-start.txt")).unwrap_or_default();
    println!(
        "Machine: {cores} cores ({model}), {:.1} GiB RAM; finished {date}.",
        total as f64 / 1024.0 / 1024.0
    );
    println!(
        "Load average (1, 5, 15 min) at the start: {}; at the end: {}.",
        field3(&load_start),
        field3(&load_now)
    );
}

fn field3(loadavg: &str) -> String {
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    machine();
    let mut t = Table {
        rows: Vec::new(),
        missing: Vec::new(),
    };
    match results::read("supervision") {
        Some(s) => {
            if let Some(l) = s["loadavg_at_rounds"].as_array() {
                let l: Vec<String> = l.iter().filter_map(|v| v.as_str()).map(field3).collect();
                println!("Load average at each supervision round: {}.", l.join(" / "));
            }
            if let Some(b) = spread(&s["workload"]["no launcher"]["wall_s"]) {
                println!("Noise: the baseline's wall time ranged {:.1} % around its median over the rounds.", (b.max - b.min) / b.median * 100.0);
            }
            println!();
            supervision(&mut t, &s);
            memory(&mut t, &s);
        }
        None => t.missing.push("supervision-bench".into()),
    }
    match results::read("fork-handler") {
        Some(f) => fork_handler(&mut t, &f),
        None => t.missing.push("fork-handler-bench".into()),
    }
    t.section("The shim against the `postgres` crate, same server, same queries: criterion (medians, 95 % CI) and interleaved batches (ratio, median [range])");
    let interleaved = results::read("shim-vs-postgres").unwrap_or(Value::Null);
    criterion_pair(
        &mut t,
        &interleaved,
        "point select by primary key (warm translation cache)",
        "point_select",
        Some(1.10),
    );
    criterion_pair(&mut t, &interleaved, "insert", "insert", None);
    criterion_pair(
        &mut t,
        &interleaved,
        "the 40,000-row hash query, read row by row",
        "hash_scan_40k",
        Some(1.05),
    );
    translation(&mut t);
    match results::read("concurrency") {
        Some(c) => concurrency(&mut t, &c),
        None => t.missing.push("concurrency-bench".into()),
    }
    t.print();
}
