//! What the launcher's event log has said so far, counted record by record
//! as the demo reads it (the records are `plex_pg_launcher::events::Record`,
//! the log's schema): births by kind, pool checks, inherited-socket uses,
//! and the closing `summary` record.

use std::collections::{BTreeMap, BTreeSet};

use plex_pg_launcher::events::{self, Action, Birth, Record, Trigger, Verdict};
use serde_json::Value;

#[derive(Default, Debug)]
pub struct Tally {
    /// `fork` events other than the command's own spawn, by kind.
    pub births_by_kind: BTreeMap<String, u64>,
    /// Their pids.
    pub born: BTreeSet<i64>,
    /// Births whose `inherited` list was not empty.
    pub born_holding: u64,
    pub pool_checks_ok: u64,
    pub violations: u64,
    /// Pool checks decided by the shim's AfterFork report, and ok.
    pub after_fork_ok: u64,
    pub fd_uses: u64,
    pub denied: u64,
    pub execs: u64,
    pub exits: u64,
    /// The `start` record: (mode, watcher) actually running.
    pub start: Option<(String, String)>,
    /// The `summary` record, once the launcher has exited.
    pub summary: Option<Record>,
    pub lines: u64,
    /// Lines that are not JSON, or not a record of the schema.
    pub unreadable: u64,
}

impl Tally {
    /// Count one event line; returns it as JSON (for the live views) when
    /// it is a record.
    pub fn add(&mut self, line: &str) -> Option<Value> {
        self.lines += 1;
        let parsed = events::parse_line(line)
            .ok()
            .and_then(|v| Some((serde_json::from_value::<events::Line>(v.clone()).ok()?, v)));
        let Some((typed, event)) = parsed else {
            self.unreadable += 1;
            return None;
        };
        match typed.record {
            Record::Start { mode, watcher, .. } => self.start = Some((mode, watcher)),
            Record::Fork {
                kind,
                pid,
                inherited,
                ..
            } if kind != Birth::Spawned => {
                *self
                    .births_by_kind
                    .entry(kind.name().to_string())
                    .or_default() += 1;
                self.born.insert(i64::from(pid));
                if !inherited.is_empty() {
                    self.born_holding += 1;
                }
            }
            Record::PoolCheck {
                verdict: Verdict::Ok,
                trigger,
                ..
            } => {
                self.pool_checks_ok += 1;
                if trigger == Trigger::AfterFork {
                    self.after_fork_ok += 1;
                }
            }
            Record::PoolCheck { .. } => self.violations += 1,
            Record::InheritedFdUse { action, .. } => {
                self.fd_uses += 1;
                if action != Action::Observed {
                    self.denied += 1;
                }
            }
            Record::Exec { .. } => self.execs += 1,
            Record::Exit { .. } => self.exits += 1,
            summary @ Record::Summary { .. } => self.summary = Some(summary),
            Record::Fork { .. } | Record::WatchDegraded { .. } => {}
        }
        Some(event)
    }

    pub fn forks(&self) -> u64 {
        self.births_by_kind.values().sum()
    }

    /// Alert command runs, from the summary record.
    #[cfg(test)]
    pub fn alerts_sent(&self) -> u64 {
        match &self.summary {
            Some(Record::Summary { alerts_sent, .. }) => *alerts_sent,
            _ => 0,
        }
    }

    /// The mode that ran (`verify`, `enforce`, `off`), from the start record.
    pub fn mode(&self) -> &str {
        self.start.as_ref().map_or("?", |(m, _)| m)
    }

    /// The watcher that ran (`ptrace`, `procfs`, `off`), from the start record.
    pub fn watcher(&self) -> &str {
        self.start.as_ref().map_or("?", |(_, w)| w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plex_pg_launcher::events::{Line, PgFd};

    fn line(record: Record) -> String {
        serde_json::to_string(&Line { time: 1.0, record }).unwrap()
    }

    fn fork(kind: Birth, pid: i32, inherited: usize) -> String {
        let socket = PgFd {
            fd: 5,
            inode: 55,
            peer: "unix:/tmp/.s.PGSQL.5432".into(),
        };
        line(Record::Fork {
            escalated: false,
            inherited: vec![socket; inherited],
            kind,
            pid,
            ppid: 10,
        })
    }

    fn check(pid: i32, verdict: Verdict, trigger: Trigger) -> String {
        line(Record::PoolCheck {
            birth: Birth::Fork,
            inherited: vec![],
            pid,
            ppid: 10,
            reason: None,
            report: false,
            slots_in_use: None,
            still_held: vec![],
            trigger,
            unreported: None,
            verdict,
        })
    }

    #[test]
    fn counts_each_kind_of_record() {
        let mut t = Tally::default();
        let summary = Record::Summary {
            alerts_failed: 0,
            alerts_sent: 3,
            alerts_suppressed: 0,
            denied: 1,
            escalations: None,
            event_stops: None,
            execs: 0,
            exit_code: 0,
            exits: 0,
            forks: 2,
            inherited_fd_uses: 1,
            killed: 0,
            pool_check_violations: 1,
            pool_checks_ok: 1,
            processes: 3,
            reports: 0,
            reports_rejected: 0,
            syscall_stops: None,
            watcher: "ptrace".into(),
        };
        for l in [
            line(Record::Start {
                args: vec![],
                degraded: None,
                launcher_pid: 9,
                mode: "verify".into(),
                pid: 10,
                program: "plex-sim".into(),
                server: "unix:/tmp/.s.PGSQL.5432".into(),
                version: "0".into(),
                watcher: "ptrace".into(),
            }),
            fork(Birth::Spawned, 10, 0),
            fork(Birth::Fork, 11, 1),
            fork(Birth::Vfork, 12, 0),
            check(11, Verdict::Ok, Trigger::AfterFork),
            check(12, Verdict::Violation, Trigger::Exit),
            line(Record::InheritedFdUse {
                action: Action::Denied,
                fd: 5,
                inode: 55,
                peer: "unix:/tmp/.s.PGSQL.5432".into(),
                pid: 12,
                ppid: Some(10),
                syscall: "write".into(),
                tid: 12,
            }),
            "not json".into(),
            r#"{"time":1,"event":"no_such_event"}"#.into(),
            line(summary),
        ] {
            t.add(&l);
        }
        assert_eq!(t.forks(), 2);
        assert_eq!(t.born, [11, 12].into_iter().collect());
        assert_eq!(t.born_holding, 1);
        assert_eq!((t.pool_checks_ok, t.after_fork_ok, t.violations), (1, 1, 1));
        assert_eq!((t.fd_uses, t.denied), (1, 1));
        assert_eq!((t.lines, t.unreadable), (10, 2));
        assert_eq!(t.alerts_sent(), 3);
        assert_eq!((t.mode(), t.watcher()), ("verify", "ptrace"));
    }
}
