//! The shim's own figures, from its Tally reports, per process of Plex's
//! tree: statements by latency bucket, errors by SQLite code, connects and
//! reconnects, pool slots in use and the pool's size.
//!
//! A Tally is cumulative for its process, so each process's latest figures
//! are kept (field by field the largest seen: reports sent by two threads
//! may arrive out of order). When a process exits, its figures move to the
//! exited total: the metrics' counters are that total plus the live
//! processes' figures, and never go backwards while the launcher runs.

use std::collections::HashMap;

use plex_pg_config::report::{Tally, ERROR_CODES, LATENCY_BUCKETS};

/// Counters of one process, or summed over many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figures {
    pub connects: u64,
    pub reconnects: u64,
    pub latency_us: u64,
    /// Statements by latency bucket, not cumulative.
    pub buckets: [u64; LATENCY_BUCKETS],
    /// Failed steps and prepares by SQLite primary result code.
    pub errors: [u64; ERROR_CODES],
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            connects: 0,
            reconnects: 0,
            latency_us: 0,
            buckets: [0; LATENCY_BUCKETS],
            errors: [0; ERROR_CODES],
        }
    }
}

impl Figures {
    /// Statements run: every one is in one bucket.
    pub fn statements(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Saturating: the figures come from Plex's processes, which could send
    /// any value; a sum must neither wrap (a counter going backwards) nor
    /// overflow.
    fn add(&mut self, o: &Figures) {
        self.connects = self.connects.saturating_add(o.connects);
        self.reconnects = self.reconnects.saturating_add(o.reconnects);
        self.latency_us = self.latency_us.saturating_add(o.latency_us);
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a = a.saturating_add(*b);
        }
        for (a, b) in self.errors.iter_mut().zip(&o.errors) {
            *a = a.saturating_add(*b);
        }
    }

    /// Each counter the larger of the two.
    fn raise_to(&mut self, t: &Tally) {
        self.connects = self.connects.max(t.connects);
        self.reconnects = self.reconnects.max(t.reconnects);
        self.latency_us = self.latency_us.max(t.latency_us);
        for (a, b) in self.buckets.iter_mut().zip(&t.buckets) {
            *a = (*a).max(*b);
        }
        for (a, b) in self.errors.iter_mut().zip(&t.errors) {
            *a = (*a).max(*b);
        }
    }
}

/// A live process's pool, from its latest Tally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    pub pid: i32,
    pub slots_in_use: u32,
    pub slots_max: u32,
}

#[derive(Debug, Default)]
struct Live {
    seq: u64,
    pool: Pool,
    figures: Figures,
}

/// Every process's figures.
#[derive(Debug, Default)]
pub struct Tallies {
    live: HashMap<i32, Live>,
    exited: Figures,
}

/// What the metrics show of the shim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Over every process, the exited ones included.
    pub total: Figures,
    /// The live processes that reported, by pid.
    pub pools: Vec<Pool>,
}

impl Tallies {
    /// A Tally from `pid` (a process of the tree, its sender checked).
    pub fn update(&mut self, pid: i32, t: &Tally) {
        let live = self.live.entry(pid).or_default();
        live.figures.raise_to(t);
        if t.seq >= live.seq {
            live.seq = t.seq;
            live.pool = Pool {
                pid,
                slots_in_use: t.slots_in_use,
                slots_max: t.slots_max,
            };
        }
    }

    /// `pid` exited: its figures stay in the totals, its pool is gone.
    pub fn exited(&mut self, pid: i32) {
        if let Some(live) = self.live.remove(&pid) {
            self.exited.add(&live.figures);
        }
    }

    pub fn summary(&self) -> Summary {
        let mut total = self.exited.clone();
        let mut pools = Vec::with_capacity(self.live.len());
        for live in self.live.values() {
            total.add(&live.figures);
            pools.push(live.pool.clone());
        }
        pools.sort_by_key(|p| p.pid);
        Summary { total, pools }
    }
}

/// SQLite's name for a primary result code (the index of
/// [`Figures::errors`]); index 0 counts codes outside the range.
pub fn code_name(code: usize) -> &'static str {
    const NAMES: [&str; 29] = [
        "other",
        "SQLITE_ERROR",
        "SQLITE_INTERNAL",
        "SQLITE_PERM",
        "SQLITE_ABORT",
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_NOMEM",
        "SQLITE_READONLY",
        "SQLITE_INTERRUPT",
        "SQLITE_IOERR",
        "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND",
        "SQLITE_FULL",
        "SQLITE_CANTOPEN",
        "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",
        "SQLITE_SCHEMA",
        "SQLITE_TOOBIG",
        "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH",
        "SQLITE_MISUSE",
        "SQLITE_NOLFS",
        "SQLITE_AUTH",
        "SQLITE_FORMAT",
        "SQLITE_RANGE",
        "SQLITE_NOTADB",
        "SQLITE_NOTICE",
        "SQLITE_WARNING",
    ];
    NAMES.get(code).copied().unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(seq: u64, statements: u64, in_use: u32) -> Tally {
        let mut t = Tally {
            seq,
            slots_in_use: in_use,
            slots_max: 8,
            connects: seq,
            ..Tally::default()
        };
        t.buckets[3] = statements;
        t.errors[1] = seq;
        t
    }

    #[test]
    fn the_totals_never_go_backwards_when_processes_exit_or_reports_reorder() {
        let mut t = Tallies::default();
        t.update(10, &tally(2, 50, 3));
        // An older report, arriving late: the counters keep the larger,
        // the pool keeps the later report's.
        t.update(10, &tally(1, 40, 7));
        t.update(11, &tally(1, 5, 1));
        let s = t.summary();
        assert_eq!(s.total.statements(), 55);
        assert_eq!(s.total.connects, 3);
        assert_eq!(s.total.errors[1], 3);
        assert_eq!(
            s.pools,
            vec![
                Pool {
                    pid: 10,
                    slots_in_use: 3,
                    slots_max: 8
                },
                Pool {
                    pid: 11,
                    slots_in_use: 1,
                    slots_max: 8
                }
            ]
        );
        t.exited(10);
        let after = t.summary();
        assert_eq!(after.total, s.total, "an exit moves figures, loses none");
        assert_eq!(after.pools.len(), 1);
        // The pid comes back as a new process: it starts from its own zero.
        t.update(10, &tally(1, 1, 0));
        assert_eq!(t.summary().total.statements(), 56);
        t.exited(12); // never reported: nothing changes
        assert_eq!(t.summary().total.statements(), 56);
    }

    #[test]
    fn codes_are_named_as_sqlite_names_them() {
        assert_eq!(code_name(1), "SQLITE_ERROR");
        assert_eq!(code_name(5), "SQLITE_BUSY");
        assert_eq!(code_name(19), "SQLITE_CONSTRAINT");
        assert_eq!(code_name(28), "SQLITE_WARNING");
        assert_eq!(code_name(0), "other");
        assert_eq!(code_name(31), "other");
    }

    #[test]
    fn forged_huge_figures_saturate_instead_of_wrapping() {
        let mut all = Tallies::default();
        all.update(10, &tally(1, u64::MAX, 1));
        all.exited(10);
        all.update(11, &tally(1, 5, 1));
        // The exited total is u64::MAX statements; adding the live 5 stays there.
        assert_eq!(all.summary().total.buckets[3], u64::MAX);
        all.exited(11);
        assert_eq!(all.summary().total.buckets[3], u64::MAX);
    }
}
