//! The machine-readable account of a run, written as one JSON object to a
//! file (atomically: a temporary file renamed) or to stdout: what was set
//! up, the checked queries and their figures, every child with its exit
//! status, the faults injected, the errors, and a hang if there was one.
//! `docs/plex-sim.md` describes every field.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::children::Finished;
use crate::library::{FillReport, SchemaReport};
use crate::stats::Stats;

#[derive(Debug, Clone, Serialize)]
pub struct ChildEntry {
    pub pid: i32,
    pub kind: String,
    pub method: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub seconds: f64,
    pub mid_hash_query_rows: Option<usize>,
    pub report: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KindSummary {
    pub reaped: u64,
    pub methods: BTreeMap<String, u64>,
    pub exit_codes: BTreeMap<String, u64>,
    pub signals: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChildrenSummary {
    pub started: u64,
    pub reaped: u64,
    pub started_mid_hash_query: u64,
    pub by_kind: BTreeMap<String, KindSummary>,
    pub list: Vec<ChildEntry>,
}

impl ChildrenSummary {
    pub fn record(&mut self, f: &Finished) {
        self.reaped += 1;
        if f.mid_hash_query_rows.is_some() {
            self.started_mid_hash_query += 1;
        }
        let kind = self.by_kind.entry(f.kind.clone()).or_default();
        kind.reaped += 1;
        *kind.methods.entry(f.method.to_string()).or_default() += 1;
        if let Some(c) = f.exit_code {
            *kind.exit_codes.entry(c.to_string()).or_default() += 1;
        }
        if let Some(s) = f.signal {
            *kind.signals.entry(s.to_string()).or_default() += 1;
        }
        self.list.push(ChildEntry {
            pid: f.pid,
            kind: f.kind.clone(),
            method: f.method.to_string(),
            exit_code: f.exit_code,
            signal: f.signal,
            seconds: f.seconds,
            mid_hash_query_rows: f.mid_hash_query_rows,
            report: f.report.clone(),
        });
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultOutcome {
    pub fault: String,
    pub pid: Option<i32>,
    pub injected: bool,
    /// Not injected because the shim's fork handler had already made it
    /// impossible (not an error).
    pub prevented: bool,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: bool,
    pub exit_code: i32,
    /// `duration`, `iterations`, a signal's name, `hang`, or `setup error`.
    pub stopped_by: String,
    pub pid: i32,
    pub reexeced_from: Option<i32>,
    pub version: &'static str,
    pub sqlite_version: String,
    pub data_dir: String,
    pub library_db: String,
    pub blobs_db: String,
    pub journal: String,
    pub items: i64,
    pub threads: u16,
    pub sessions: u16,
    pub fork_gate: bool,
    pub schema: Vec<SchemaReport>,
    pub fill: Option<FillReport>,
    /// Seconds the workload ran (fill excluded).
    pub seconds: f64,
    pub queries: u64,
    pub hash_queries: u64,
    pub rows_checked: u64,
    pub mismatches: u64,
    pub writes_committed: u64,
    pub children: ChildrenSummary,
    pub faults_injected: BTreeMap<String, u64>,
    pub faults: Vec<FaultOutcome>,
    pub errors: Vec<ErrorCount>,
    pub hang: Option<String>,
}

/// Exit status of a run: 3 a hang, 1 a mismatch or an error, else 0.
pub fn exit_code(stats: &Stats, hang: bool) -> i32 {
    if hang {
        3
    } else if Stats::get(&stats.mismatches) > 0 || stats.error_count() > 0 {
        1
    } else {
        0
    }
}

impl Summary {
    /// Take the figures from `stats` and settle `ok` and `exit_code`.
    pub fn settle(&mut self, stats: &Stats) {
        self.queries = Stats::get(&stats.queries);
        self.hash_queries = Stats::get(&stats.hash_queries);
        self.rows_checked = Stats::get(&stats.rows_checked);
        self.mismatches = Stats::get(&stats.mismatches);
        self.writes_committed = Stats::get(&stats.writes_committed);
        self.errors = stats
            .errors()
            .into_iter()
            .map(|(message, count)| ErrorCount { message, count })
            .collect();
        self.exit_code = exit_code(stats, self.hang.is_some());
        self.ok = self.exit_code == 0;
    }

    /// Write to `dest` (`-` for stdout).
    pub fn write(&self, dest: &str) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| format!("cannot encode the summary: {e}"))?;
        if dest == "-" {
            crate::children::write_all_fd(1, format!("{text}\n").as_bytes());
            return Ok(());
        }
        let path = Path::new(dest);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, format!("{text}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the summary to {dest}: {e}"))
    }
}
