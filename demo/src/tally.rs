//! What the launcher's event log has said so far, counted line by line as
//! the demo reads it (`docs/events.md`): births by kind, pool checks,
//! inherited-socket uses, and the closing `summary` line.

use std::collections::{BTreeMap, BTreeSet};

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
    /// The `start` line: mode and watcher actually running.
    pub start: Option<Value>,
    /// The `summary` line, once the launcher has exited.
    pub summary: Option<Value>,
    pub lines: u64,
    pub unreadable: u64,
}

impl Tally {
    /// Count one event line; returns the event when it parsed.
    pub fn add(&mut self, line: &str) -> Option<Value> {
        self.lines += 1;
        let Ok(event) = plex_pg_launcher::events::parse_line(line) else {
            self.unreadable += 1;
            return None;
        };
        match event["event"].as_str().unwrap_or("") {
            "start" => self.start = Some(event.clone()),
            "fork" if event["kind"] != "spawn" => {
                let kind = event["kind"].as_str().unwrap_or("?").to_string();
                *self.births_by_kind.entry(kind).or_default() += 1;
                if let Some(pid) = event["pid"].as_i64() {
                    self.born.insert(pid);
                }
                if event["inherited"].as_array().is_some_and(|a| !a.is_empty()) {
                    self.born_holding += 1;
                }
            }
            "pool_check" if event["verdict"] == "ok" => {
                self.pool_checks_ok += 1;
                if event["trigger"] == "after_fork" {
                    self.after_fork_ok += 1;
                }
            }
            "pool_check" => self.violations += 1,
            "inherited_fd_use" => {
                self.fd_uses += 1;
                if event["action"] != "observed" {
                    self.denied += 1;
                }
            }
            "exec" => self.execs += 1,
            "exit" => self.exits += 1,
            "summary" => self.summary = Some(event.clone()),
            _ => {}
        }
        Some(event)
    }

    pub fn forks(&self) -> u64 {
        self.births_by_kind.values().sum()
    }

    /// Alert command runs, from the summary line.
    #[cfg(test)]
    pub fn alerts_sent(&self) -> u64 {
        self.summary
            .as_ref()
            .and_then(|s| s["alerts_sent"].as_u64())
            .unwrap_or(0)
    }

    /// The watcher that ran (`ptrace`, `procfs`, `off`), from the start line.
    pub fn watcher(&self) -> &str {
        self.start
            .as_ref()
            .and_then(|s| s["watcher"].as_str())
            .unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_of_line() {
        let mut t = Tally::default();
        for line in [
            r#"{"time":1,"event":"start","watcher":"ptrace","mode":"verify"}"#,
            r#"{"time":1,"event":"fork","kind":"spawn","pid":10,"inherited":[]}"#,
            r#"{"time":1,"event":"fork","kind":"fork","pid":11,"inherited":[{"fd":5}]}"#,
            r#"{"time":1,"event":"fork","kind":"vfork","pid":12,"inherited":[]}"#,
            r#"{"time":1,"event":"pool_check","verdict":"ok","trigger":"after_fork","pid":11}"#,
            r#"{"time":1,"event":"pool_check","verdict":"violation","trigger":"exit","pid":12}"#,
            r#"{"time":1,"event":"inherited_fd_use","action":"denied","pid":12}"#,
            "not json",
            r#"{"time":2,"event":"summary","alerts_sent":3}"#,
        ] {
            t.add(line);
        }
        assert_eq!(t.forks(), 2);
        assert_eq!(t.born, [11, 12].into_iter().collect());
        assert_eq!(t.born_holding, 1);
        assert_eq!((t.pool_checks_ok, t.after_fork_ok, t.violations), (1, 1, 1));
        assert_eq!((t.fd_uses, t.denied), (1, 1));
        assert_eq!(t.unreadable, 1);
        assert_eq!(t.alerts_sent(), 3);
        assert_eq!(t.watcher(), "ptrace");
    }
}
