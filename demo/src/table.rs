//! The closing table: what was checked, from plex-sim's summary (queries,
//! rows compared, children it started) and the launcher's event log (what
//! it saw born, and its verdicts), side by side, and the verdict.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;

use super::tally::Tally;
use super::view::thousands;

/// Everything the table is made from.
pub struct Outcome<'a> {
    pub tally: &'a Tally,
    /// plex-sim's JSON summary, if it wrote one.
    pub sim: Option<&'a Value>,
    /// The launcher's exit status (None: killed by a signal).
    pub launcher_code: Option<i32>,
    pub server: String,
    pub interrupted: bool,
}

pub struct Verdict {
    pub pass: bool,
    /// Why it did not pass, one reason a line.
    pub problems: Vec<String>,
}

/// Width of the label column.
const LABEL: usize = 32;

fn row(out: &mut String, label: &str, value: impl AsRef<str>) {
    let _ = writeln!(out, "  {label:<LABEL$} {}", value.as_ref());
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The pids of the children plex-sim reports having started.
pub fn sim_children(sim: &Value) -> BTreeSet<i64> {
    sim["children"]["list"]
        .as_array()
        .map(|l| l.iter().filter_map(|c| c["pid"].as_i64()).collect())
        .unwrap_or_default()
}

/// The table and the verdict.
pub fn render(o: &Outcome<'_>) -> (String, Verdict) {
    let t = o.tally;
    let mut out = String::new();
    let mut problems = Vec::new();
    let rule = format!("  {}", "-".repeat(LABEL + 40));
    let _ = writeln!(out, "\n  What was checked");
    let _ = writeln!(out, "{rule}");
    row(&mut out, "PostgreSQL", &o.server);
    let watcher = t.watcher();
    let mode = t.mode();
    row(
        &mut out,
        "launcher",
        format!("mode {mode}, watcher {watcher}"),
    );
    let sim_code = o.sim.map(|s| num(&s["exit_code"]));
    match o.sim {
        Some(s) => {
            let fill = &s["fill"];
            let filled = if num(&fill["written"]) > 0 {
                format!(
                    "written through the shim in {:.1} s",
                    fill["seconds"].as_f64().unwrap_or(0.0)
                )
            } else {
                "found from an earlier run".to_string()
            };
            row(
                &mut out,
                "library movies",
                format!("{} ({filled})", thousands(num(&s["items"]))),
            );
            row(
                &mut out,
                "queries checked",
                format!(
                    "{} ({} of the incident's hash query)",
                    thousands(num(&s["queries"])),
                    thousands(num(&s["hash_queries"]))
                ),
            );
            row(
                &mut out,
                "rows compared",
                thousands(num(&s["rows_checked"])),
            );
            row(&mut out, "mismatches", thousands(num(&s["mismatches"])));
            row(
                &mut out,
                "writes committed",
                format!(
                    "{} (each read back)",
                    thousands(num(&s["writes_committed"]))
                ),
            );
            let children = &s["children"];
            row(
                &mut out,
                "children plex-sim started",
                format!(
                    "{} ({} while a hash query was in flight)",
                    thousands(num(&children["started"])),
                    thousands(num(&children["started_mid_hash_query"]))
                ),
            );
            if num(&s["mismatches"]) > 0 {
                problems.push(format!(
                    "{} query results differed from what was written",
                    num(&s["mismatches"])
                ));
            }
            if let Some(errors) = s["errors"].as_array().filter(|e| !e.is_empty()) {
                for e in errors.iter().take(3) {
                    problems.push(format!(
                        "plex-sim: {}",
                        e["message"].as_str().unwrap_or("?")
                    ));
                }
            }
            if let Some(hang) = s["hang"].as_str() {
                problems.push(format!("plex-sim: hang: {hang}"));
            }
        }
        None => {
            problems.push("plex-sim wrote no summary (it did not get to the end of its run)".into())
        }
    }
    let kinds: Vec<String> = t
        .births_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    row(
        &mut out,
        "forks the launcher saw",
        format!(
            "{} ({})",
            thousands(t.forks() as i64),
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            }
        ),
    );
    if let Some(s) = o.sim {
        let started = sim_children(s);
        let seen = started.intersection(&t.born).count();
        let mark = if seen == started.len() {
            "every one"
        } else {
            "MISSED SOME"
        };
        row(
            &mut out,
            "children seen born",
            format!(
                "{} of {} ({mark})",
                thousands(seen as i64),
                thousands(started.len() as i64)
            ),
        );
        if seen < started.len() && watcher == "ptrace" {
            problems.push(format!(
                "the launcher saw {seen} of the {} children plex-sim started",
                started.len()
            ));
        }
    }
    row(
        &mut out,
        "pool checks ok",
        format!(
            "{} ({} by the child's fork-handler report)",
            thousands(t.pool_checks_ok as i64),
            thousands(t.after_fork_ok as i64)
        ),
    );
    row(
        &mut out,
        "pool check violations",
        thousands(t.violations as i64),
    );
    row(
        &mut out,
        "inherited socket uses",
        format!(
            "{} ({} denied)",
            thousands(t.fd_uses as i64),
            thousands(t.denied as i64)
        ),
    );
    row(
        &mut out,
        "alerts",
        thousands((t.violations + t.fd_uses) as i64),
    );
    let code = |c: Option<i64>| c.map(|c| c.to_string()).unwrap_or_else(|| "none".into());
    row(
        &mut out,
        "exit status",
        format!(
            "plex-sim {}, launcher {}",
            code(sim_code),
            code(o.launcher_code.map(i64::from))
        ),
    );
    let _ = writeln!(out, "{rule}");

    if t.violations > 0 {
        problems.push(format!("{} pool check violation(s)", t.violations));
    }
    if t.fd_uses > 0 {
        problems.push(format!(
            "{} use(s) of an inherited PostgreSQL socket",
            t.fd_uses
        ));
    }
    if o.launcher_code != Some(0) {
        problems.push(format!(
            "the launcher exited with {}",
            code(o.launcher_code.map(i64::from))
        ));
    }
    if t.summary.is_none() {
        problems.push("the event log has no summary line (the launcher did not finish)".into());
    }
    if o.interrupted {
        problems.insert(0, "interrupted before the end".into());
    }
    problems.dedup();
    let pass = problems.is_empty();
    (out, Verdict { pass, problems })
}
