//! The differential SQL fuzzer (issue 15): random but reproducible
//! statements over tables declared with Plex's types, run on real SQLite
//! and through the shim, compared as the differential suite compares its
//! cases, plus invariants the shim must keep on its own (SQLancer's NoREC
//! and ternary logic partitioning).
//!
//! It is a module of the tests library so that the CI test
//! (`tests/tests/fuzz_sql.rs`, a short fixed-seed run that fails on any
//! new difference) and the long-run binary (`sql-fuzz`, driven by
//! `bench/fuzz-sql.sh`) share one generator and one comparison. How to
//! run, replay and turn a difference into a case: `docs/fuzzing.md`.
//!
//! - [`rng`]: the seeded generator (SplitMix64);
//! - [`schema`]: the tables and their seeded rows;
//! - [`generate`]: statements, per index of a run;
//! - [`compare`]: running both ways, differences, invariants;
//! - [`known`]: the differences already documented, and why.

pub mod compare;
pub mod generate;
pub mod known;
pub mod rng;
pub mod schema;

use compare::Difference;
use generate::Unit;
use std::collections::BTreeMap;

/// A difference with the known class it belongs to, if any.
#[derive(Debug)]
pub struct Finding {
    pub difference: Difference,
    pub known: Option<&'static known::Known>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub units: usize,
    pub statements: usize,
    /// Statements whose outcomes agreed on every aspect.
    pub agreed: usize,
    /// Statements not compared: run after a write that failed on one
    /// side only, before its `ROLLBACK`.
    pub skipped: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new_differences(&self) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.known.is_none()).collect()
    }

    /// Differences counted by class: a known class's name, or `new <aspect>`.
    pub fn by_class(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for f in &self.findings {
            let class = match f.known {
                Some(k) => format!("known: {}", k.name),
                None => format!("new: {}", f.difference.aspect),
            };
            *out.entry(class).or_insert(0) += 1;
        }
        out
    }

    /// The summary printed by `sql-fuzz` and by a failing CI run.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "seed {}: {} units, {} statements, {} agreed, {} not compared, {} difference(s), {} new\n",
            self.seed,
            self.units,
            self.statements,
            self.agreed,
            self.skipped,
            self.findings.len(),
            self.new_differences().len()
        );
        for (class, n) in self.by_class() {
            s += &format!("  {n:5}  {class}\n");
        }
        for f in self.new_differences() {
            let d = &f.difference;
            s += &format!(
                "\nNEW {} at seed {} index {}:\n    {}\n    {}\n",
                d.aspect,
                self.seed,
                d.index,
                d.sql.replace('\n', " "),
                d.detail.replace('\n', " ")
            );
        }
        s
    }
}

/// The units `0..count` of the run from `seed`.
pub fn units(seed: u64, count: usize) -> Vec<Unit> {
    (0..count).map(|i| generate::unit(seed, i)).collect()
}

/// The whole run as a case file for `tests/sql/run_case.py`: the setup,
/// then each unit's statements, each preceded by `-- note: index N` (and
/// `-- unordered` when its rows are compared as a multiset).
pub fn case_file(seed: u64, count: usize) -> String {
    let mut s = format!("-- note: sql-fuzz seed {seed}, {count} units\n");
    for sql in schema::setup(seed) {
        s += &format!("{sql}\n\n");
    }
    for u in units(seed, count) {
        for st in &u.statements {
            let unordered = if st.ordered { "" } else { "-- unordered\n" };
            s += &format!("-- note: index {}\n{unordered}{}\n\n", u.index, st.sql);
        }
    }
    s
}

/// Generate `count` units from `seed`, run them both ways, compare.
pub fn run(seed: u64, count: usize) -> Report {
    let setup = schema::setup(seed);
    let units = units(seed, count);
    let mut all: Vec<(usize, generate::Statement)> = setup
        .iter()
        .map(|sql| {
            (
                usize::MAX,
                generate::Statement {
                    sql: sql.clone(),
                    ordered: true,
                },
            )
        })
        .collect();
    for u in &units {
        all.extend(u.statements.iter().map(|s| (u.index, s.clone())));
    }
    let texts: Vec<String> = all.iter().map(|(_, s)| s.sql.clone()).collect();
    let (reference, shimmed) = compare::run_both(&texts);
    let mut report = Report {
        seed,
        units: count,
        statements: all.len(),
        ..Report::default()
    };
    let push = |d: Difference, report: &mut Report| {
        let known = known::classify(&d);
        report.findings.push(Finding {
            difference: d,
            known,
        });
    };
    // The connection's counters after a write that failed on one side
    // only keep that difference until both sides agree again.
    let mut tainted: Vec<&str> = Vec::new();
    let mut diverged = false;
    let mut last_write: Option<String> = None;
    for (i, (index, st)) in all.iter().enumerate() {
        match (reference.get(i), shimmed.get(i)) {
            (Some(r), Some(p)) => {
                if st.sql == "ROLLBACK" {
                    diverged = false;
                }
                if diverged {
                    // What a write that failed on one side only left in
                    // the tables: its difference is reported already.
                    report.skipped += 1;
                    continue;
                }
                let mut diffs = compare::compare(*index, st, r, p, &tainted);
                if st.sql == "ROLLBACK" {
                    last_write = None;
                } else if let Some(write) = &last_write {
                    // The table read after a write differs because of it.
                    for d in &mut diffs {
                        d.sql = format!("{write}; {}", d.sql);
                    }
                }
                if compare::is_write(&st.sql) {
                    last_write = Some(st.sql.clone());
                }
                if compare::is_write(&st.sql)
                    && compare::error(r).is_none() != compare::error(p).is_none()
                {
                    diverged = true;
                    tainted = vec!["changes", "last_insert_rowid"];
                }
                tainted.retain(|key| !(r[*key].is_number() && r[*key] == p[*key]));
                if diffs.is_empty() {
                    report.agreed += 1;
                }
                for d in diffs {
                    push(d, &mut report);
                }
            }
            (r, _) => {
                let side = if r.is_none() { "SQLite" } else { "the shim" };
                push(
                    Difference {
                        index: *index,
                        sql: st.sql.clone(),
                        aspect: "crash",
                        detail: format!("{side}'s run stopped before this statement"),
                        reference_error: None,
                        shim_error: None,
                        rows: None,
                    },
                    &mut report,
                );
                break;
            }
        }
    }
    // Invariants, on the shim's outcomes of each unit.
    let mut at = setup.len();
    for u in &units {
        let n = u.statements.len();
        if let Some(outs) = shimmed.get(at..at + n) {
            if let Some(d) = compare::invariant(u, outs) {
                push(d, &mut report);
            }
        }
        at += n;
    }
    report
}
