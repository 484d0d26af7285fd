//! The JSON event log: one object a line, the launcher's interface to tests,
//! alerting and people. [`Record`] is its schema (`docs/events.md` says the
//! same in words): every line is a [`Line`], a `time` and one record, and
//! the human log line of an event ([`Record::human`]) is made from the same
//! record as its JSON line.
//!
//! Every line has `time` (seconds since the epoch, millisecond precision) and
//! `event`; the other fields depend on the event, in alphabetical order
//! (the records declare them so). Each line, newline
//! included, is one `write(2)` on an `O_APPEND` descriptor: several writers
//! sharing the file (two launchers, a launcher and a script) never
//! interleave inside a line, and a reader tailing it sees each event whole.
//! The file is opened by [`crate::log_files`], which refuses planted links
//! and ends a previous run's unterminated last line.

use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
pub use serde_json::Value;

use crate::log_files;
pub use crate::observed::{Action, Birth};
pub use crate::sockets::PgFd;

/// What decided a pool check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// It inherited no PostgreSQL socket.
    Birth,
    /// The shim's AfterFork report.
    AfterFork,
    Exec,
    Exit,
    /// [`crate::verdict::POOL_CHECK_DEADLINE`] after its birth.
    Deadline,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Birth => "birth",
            Trigger::AfterFork => "after_fork",
            Trigger::Exec => "exec",
            Trigger::Exit => "exit",
            Trigger::Deadline => "deadline",
        }
    }
}

/// A pool check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Violation,
}

/// One event of the log: the schema. Fields are declared in alphabetical
/// order, the order they are written in. `docs/events.md` describes each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// The first line.
    Start {
        args: Vec<String>,
        degraded: Option<String>,
        launcher_pid: i32,
        mode: String,
        pid: i32,
        program: String,
        server: String,
        version: String,
        watcher: String,
    },
    /// Watching runs with less than was asked (ptrace refused).
    WatchDegraded { reason: String, watcher: String },
    /// A new process (not a thread); also the command itself (`spawn`).
    Fork {
        escalated: bool,
        inherited: Vec<PgFd>,
        kind: Birth,
        pid: i32,
        ppid: i32,
    },
    Exec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        former_tid: Option<i32>,
        pid: i32,
        program: Option<String>,
        still_held: Vec<PgFd>,
    },
    /// `code` or `signal`, or `status: "unknown"`.
    Exit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        pid: i32,
        ppid: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    /// Whether a new process left its parent's PostgreSQL sessions alone.
    PoolCheck {
        birth: Birth,
        inherited: Vec<PgFd>,
        pid: i32,
        ppid: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        report: bool,
        slots_in_use: Option<u32>,
        still_held: Vec<PgFd>,
        trigger: Trigger,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unreported: Option<Vec<PgFd>>,
        verdict: Verdict,
    },
    /// A syscall on a PostgreSQL socket the process inherited.
    InheritedFdUse {
        action: Action,
        fd: i32,
        inode: u64,
        peer: String,
        pid: i32,
        ppid: Option<i32>,
        syscall: String,
        tid: i32,
    },
    /// The last line.
    Summary {
        alerts_failed: u64,
        alerts_sent: u64,
        alerts_suppressed: u64,
        denied: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escalations: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_stops: Option<u64>,
        execs: u64,
        exit_code: i32,
        exits: u64,
        forks: u64,
        inherited_fd_uses: u64,
        killed: u64,
        pool_check_violations: u64,
        pool_checks_ok: u64,
        processes: u64,
        reports: u64,
        reports_rejected: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        syscall_stops: Option<u64>,
        watcher: String,
    },
}

/// A line of the event log: when, and what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Seconds since the Unix epoch, millisecond precision.
    pub time: f64,
    #[serde(flatten)]
    pub record: Record,
}

/// How loud a human log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loudness {
    Debug,
    Info,
    Error,
}

impl Record {
    /// The `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            Record::Start { .. } => "start",
            Record::WatchDegraded { .. } => "watch_degraded",
            Record::Fork { .. } => "fork",
            Record::Exec { .. } => "exec",
            Record::Exit { .. } => "exit",
            Record::PoolCheck { .. } => "pool_check",
            Record::InheritedFdUse { .. } => "inherited_fd_use",
            Record::Summary { .. } => "summary",
        }
    }

    /// Whether the record is a violation, which the alert command receives.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            Record::PoolCheck {
                verdict: Verdict::Violation,
                ..
            } | Record::InheritedFdUse { .. }
        )
    }

    /// The human log's line for this record, if it has one (the start's
    /// and degraded watching's lines are written where they happen, with
    /// advice the record does not carry).
    pub fn human(&self) -> Option<(Loudness, String)> {
        Some(match self {
            Record::Start { .. } | Record::WatchDegraded { .. } | Record::Summary { .. } => {
                return None
            }
            Record::Fork {
                pid,
                ppid,
                kind,
                inherited,
                ..
            } => (
                Loudness::Debug,
                format!(
                    "new process {pid} ({}) from {ppid}, {} inherited PostgreSQL socket(s)",
                    kind.name(),
                    inherited.len()
                ),
            ),
            Record::Exec { pid, program, .. } => (
                Loudness::Debug,
                format!(
                    "process {pid} executed {}",
                    program.as_deref().unwrap_or("?")
                ),
            ),
            Record::Exit { pid, .. } => (Loudness::Debug, format!("process {pid} exited")),
            Record::PoolCheck {
                pid,
                ppid,
                birth,
                trigger,
                reason,
                verdict,
                ..
            } => match (verdict, reason) {
                (Verdict::Violation, reason) => (
                    Loudness::Error,
                    format!(
                        "FORK-SAFETY VIOLATION: process {pid} (child of {ppid}, born by {}): {}. Parent and child now share a PostgreSQL session; \
                         check that the shim is preloaded with its fork handler on (shim.fork_handler), and see the event log",
                        birth.name(),
                        reason.as_deref().unwrap_or("?")
                    ),
                ),
                (Verdict::Ok, _) => (
                    Loudness::Debug,
                    format!("pool check of process {pid}: ok ({})", trigger.name()),
                ),
            },
            Record::InheritedFdUse {
                action,
                fd,
                peer,
                pid,
                ppid,
                syscall,
                tid,
                ..
            } => (
                Loudness::Error,
                format!(
                    "FORK-SAFETY VIOLATION: process {pid} (thread {tid}, child of {}) called {syscall} on fd {fd}, a PostgreSQL connection ({peer}) it inherited from its parent: {}",
                    ppid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                    match action {
                        Action::Observed => "allowed (verify mode); the parent's session may now be corrupt",
                        Action::Denied => "denied with EBADF (enforce mode)",
                        Action::Killed => "denied and the process killed (enforce mode, kill_offender)",
                    }
                ),
            ),
        })
    }
}

/// Where events go.
pub struct EventLog {
    out: Option<Out>,
    /// Set after the first failed write, so a full disk is reported once.
    failed: bool,
    /// Set after the first failed rotation, likewise.
    rotation_failed: bool,
}

enum Out {
    Stdout,
    File(crate::log_files::Rotating),
}

impl EventLog {
    /// `None`: no event log. `Some("-")`: standard output. Otherwise a file,
    /// appended to (created with mode 0640 when missing), opened as
    /// [`crate::log_files::open_append`] does; `service_uid` is Plex's user
    /// when the launcher will drop to it.
    pub fn open(target: Option<&str>, service_uid: Option<u32>) -> io::Result<EventLog> {
        let out = match target {
            None => None,
            Some("-") => Some(Out::Stdout),
            Some(path) => Some(Out::File(crate::log_files::Rotating::open(
                Path::new(path),
                service_uid,
                0,
                0,
            )?)),
        };
        Ok(EventLog {
            out,
            failed: false,
            rotation_failed: false,
        })
    }

    /// Rotate the file at `max_bytes` (0: never), keeping `keep` old ones
    /// (`launcher.events_max_bytes`, `launcher.events_keep`).
    pub fn rotate_at(&mut self, max_bytes: u64, keep: u32) {
        if let Some(Out::File(f)) = self.out.as_mut() {
            f.set_limits(max_bytes, keep);
        }
    }

    /// A log that drops everything (mode `off` without an events file).
    pub fn none() -> EventLog {
        EventLog {
            out: None,
            failed: false,
            rotation_failed: false,
        }
    }

    /// Write one record, stamped with the time. Returns the line written
    /// (without newline), which the alert command receives for violations.
    pub fn emit(&mut self, record: &Record) -> String {
        let line = Line {
            time: now_seconds(),
            record: record.clone(),
        };
        let line = serde_json::to_string(&line).unwrap_or_else(|e| {
            // Only a map with non-string keys fails; the records have none.
            format!("{{\"event\":\"error\",\"reason\":{:?}}}", e.to_string())
        });
        if let Some(out) = self.out.as_mut() {
            let mut whole = Vec::with_capacity(line.len() + 1);
            whole.extend_from_slice(line.as_bytes());
            whole.push(b'\n');
            let result = match out {
                Out::Stdout => {
                    let mut stdout = io::stdout().lock();
                    stdout
                        .flush()
                        .and_then(|_| log_files::write_once(&stdout, &whole))
                }
                Out::File(f) => match f.append(&whole) {
                    Ok(Some(e)) => {
                        if !self.rotation_failed {
                            tracing::warn!("cannot rotate the event log: {e}; it grows past launcher.events_max_bytes until this is fixed");
                        }
                        self.rotation_failed = true;
                        Ok(())
                    }
                    Ok(None) => {
                        self.rotation_failed = false;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                if !self.failed {
                    tracing::error!("cannot write to the event log: {e}; further events are lost until it works again");
                }
                self.failed = true;
            } else {
                self.failed = false;
            }
        }
        line
    }
}

/// Seconds since the epoch, rounded to the millisecond.
fn now_seconds() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

/// The complete lines of an event log's text. The launcher writes each line
/// with one `write(2)`, but a reader running beside it can catch the last
/// one half-written: a line without its `\n` is left for the next read.
fn complete_lines(text: &str) -> std::str::Lines<'_> {
    let end = text.rfind('\n').unwrap_or(0);
    text[..end].lines()
}

/// Read an event log back as typed lines: one per complete, non-empty line.
pub fn read_lines(path: &Path) -> io::Result<Vec<Line>> {
    let text = std::fs::read_to_string(path)?;
    complete_lines(&text)
        .filter(|l| !l.trim().is_empty())
        .map(parse_record)
        .collect()
}

/// One line, typed.
pub fn parse_record(line: &str) -> io::Result<Line> {
    serde_json::from_str(line)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {line}")))
}

/// Read an event log back: one JSON value per complete, non-empty line.
/// For tests, the demo, and people's scripts.
pub fn read(path: &Path) -> io::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    complete_lines(&text)
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

/// One line of JSON.
pub fn parse_line(line: &str) -> io::Result<Value> {
    serde_json::from_str(line)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {line}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork() -> Record {
        Record::Fork {
            escalated: true,
            inherited: vec![PgFd {
                fd: 4,
                inode: 15795,
                peer: "unix:/run/postgresql/.s.PGSQL.5432".into(),
            }],
            kind: Birth::Vfork,
            pid: 14472,
            ppid: 14469,
        }
    }

    #[test]
    fn a_half_written_last_line_is_left_for_the_next_read() {
        let dir = std::env::temp_dir().join(format!("plexpg-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let whole = serde_json::to_string(&Line {
            time: 1.0,
            record: fork(),
        })
        .unwrap();
        std::fs::write(&path, format!("{whole}\n{}", &whole[..40])).unwrap();
        assert_eq!(read_lines(&path).unwrap().len(), 1);
        assert_eq!(read(&path).unwrap().len(), 1);
        std::fs::write(&path, format!("{whole}\n{whole}\n")).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        std::fs::write(&path, "{\"time\":1,\n").unwrap();
        assert!(
            read(&path).is_err(),
            "a complete line that is not JSON is an error"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_is_time_event_then_the_fields_in_alphabetical_order() {
        let line = serde_json::to_string(&Line {
            time: 1795933885.779,
            record: fork(),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"time":1795933885.779,"event":"fork","escalated":true,"inherited":[{"fd":4,"inode":15795,"peer":"unix:/run/postgresql/.s.PGSQL.5432"}],"kind":"vfork","pid":14472,"ppid":14469}"#
        );
        assert_eq!(parse_record(&line).unwrap().record, fork());
    }

    #[test]
    fn absent_optional_fields_are_left_out_and_read_back_as_none() {
        let exit = Record::Exit {
            code: None,
            pid: 5,
            ppid: 1,
            signal: Some(9),
            status: None,
        };
        let text = serde_json::to_string(&exit).unwrap();
        assert_eq!(text, r#"{"event":"exit","pid":5,"ppid":1,"signal":9}"#);
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, exit);
        // `slots_in_use` stays, as null, when there was no report.
        let check = Record::PoolCheck {
            birth: Birth::Spawned,
            inherited: vec![],
            pid: 5,
            ppid: 1,
            reason: None,
            report: false,
            slots_in_use: None,
            still_held: vec![],
            trigger: Trigger::AfterFork,
            unreported: None,
            verdict: Verdict::Ok,
        };
        let text = serde_json::to_string(&check).unwrap();
        assert!(text.contains(r#""birth":"spawn""#), "{text}");
        assert!(text.contains(r#""slots_in_use":null"#), "{text}");
        assert!(text.contains(r#""trigger":"after_fork""#), "{text}");
        assert!(!text.contains("unreported"), "{text}");
    }

    #[test]
    fn emit_writes_the_line_it_returns() {
        let dir = std::env::temp_dir().join(format!("plex-pg-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut log = EventLog::open(path.to_str(), None).unwrap();
        let line = log.emit(&fork());
        let back = read_lines(&path).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].record, fork());
        assert_eq!(parse_line(&line).unwrap()["event"], "fork");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
