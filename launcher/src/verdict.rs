//! Verdicts: `pool_check` for every new process and `inherited_fd_use`
//! for every syscall on an inherited PostgreSQL socket, written to the
//! event log with a human line through `tracing`, violations also sent to
//! the alert command.
//!
//! The pool check of a process is decided at the first of:
//! - its AfterFork report (the shim's fork handler ran): the pool must be
//!   empty (`slots_in_use` 0) and, in the kernel's view, the process must
//!   hold none of the PostgreSQL sockets it inherited;
//! - its exec: none of them may survive (close-on-exec) — the rule for
//!   children born without handlers (vfork, posix_spawn, clone);
//! - its exit: exiting while still holding one is a violation;
//! - [`POOL_CHECK_DEADLINE`] after its birth: still holding one then is a
//!   violation (a fork child that neither reset its pool nor exec'd).
//!
//! A process that inherited no PostgreSQL socket is decided at birth, unless
//! its AfterFork report arrived before it was seen (procfs). An
//! AfterFork report that arrives after the decision is still checked: a
//! non-empty pool is reported as a violation of its own.
//!
//! State kept for reports is bounded, whoever sends them: a process's
//! connections by the pool's maximum (a slot number beyond it is rejected
//! and counted); reports from processes not seen yet only from descendants
//! of the launcher, at most [`EARLY_REPORTS_PER_PID`] per pid and
//! [`EARLY_REPORTS_LIMIT`] in all, each dropped after [`EARLY_REPORT_TTL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use plex_pg_config::report::{FdRole, HarmlessFd, Message};
use serde_json::{json, Value};

use crate::alert::Alerts;
use crate::events::EventLog;
use crate::sockets::{fds_json, Kernel, PgFd};
use crate::watch::{Action, Birth, Event};

/// How long after its birth a process may hold an inherited socket before
/// the pool check calls it a violation.
pub const POOL_CHECK_DEADLINE: Duration = Duration::from_secs(1);

/// Most reports kept for processes not seen yet (procfs watcher lag).
pub const EARLY_REPORTS_LIMIT: usize = 1024;

/// Most of those from one pid (a forked child sends a Hello, a few
/// Connected and one AfterFork before a watcher can be a scan late).
pub const EARLY_REPORTS_PER_PID: usize = 16;

/// How long a report from a process not seen yet is kept: far longer than
/// a procfs scan, far shorter than a flood can wait.
pub const EARLY_REPORT_TTL: Duration = Duration::from_secs(3);

/// Reports from a process not seen yet, since `first`.
#[derive(Debug)]
struct Early {
    first: Instant,
    messages: Vec<Message>,
}

#[derive(Debug)]
struct Proc {
    ppid: i32,
    birth: Birth,
    born_at: Instant,
    inherited: Vec<PgFd>,
    decided: bool,
    shim: Option<Shim>,
}

/// What the shim of a process said about itself.
#[derive(Debug, Default)]
struct Shim {
    fork_handler: bool,
    connections: HashMap<u32, (i32, u64)>,
}

/// Counts for the summary.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub processes: u64,
    pub forks: u64,
    pub execs: u64,
    pub exits: u64,
    pub pool_checks_ok: u64,
    pub pool_check_violations: u64,
    pub inherited_fd_uses: u64,
    pub denied: u64,
    pub killed: u64,
    pub reports: u64,
    pub reports_rejected: u64,
}

pub struct Judge {
    procs: HashMap<i32, Proc>,
    early: HashMap<i32, Early>,
    early_total: usize,
    /// The pool's most slots (`pool.max`): a slot number must be below it.
    pub pool_max: u32,
    rejected: crate::reports::RejectedLog,
    me: i32,
    pub counts: Counts,
    pub log: EventLog,
    pub alerts: Alerts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Birth,
    AfterFork,
    Exec,
    Exit,
    Deadline,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Birth => "birth",
            Trigger::AfterFork => "after_fork",
            Trigger::Exec => "exec",
            Trigger::Exit => "exit",
            Trigger::Deadline => "deadline",
        }
    }
}

impl Judge {
    pub fn new(log: EventLog, alerts: Alerts) -> Judge {
        Judge {
            procs: HashMap::new(),
            early: HashMap::new(),
            early_total: 0,
            pool_max: plex_pg_config::settings::POOL_MAX_LIMIT,
            rejected: crate::reports::RejectedLog::default(),
            me: std::process::id() as i32,
            counts: Counts::default(),
            log,
            alerts,
        }
    }

    /// One event from a watcher.
    pub fn handle(&mut self, event: Event) {
        match event {
            Event::Born {
                pid,
                ppid,
                birth,
                inherited,
                escalated,
            } => self.born(pid, ppid, birth, inherited, escalated),
            Event::Exec {
                pid,
                former_tid,
                program,
                still_held,
            } => {
                self.counts.execs += 1;
                tracing::debug!(
                    "process {pid} executed {}",
                    program.as_deref().unwrap_or("?")
                );
                let mut fields =
                    json!({"pid": pid, "program": program, "still_held": fds_json(&still_held)});
                if let Some(f) = former_tid {
                    fields["former_tid"] = json!(f);
                }
                self.log.emit("exec", fields);
                self.decide(pid, Trigger::Exec, still_held, None);
            }
            Event::Exiting { pid, still_held } => self.decide(pid, Trigger::Exit, still_held, None),
            Event::Exited { pid, status } => {
                let Some(p) = self.procs.remove(&pid) else {
                    return;
                };
                self.counts.exits += 1;
                let mut fields = json!({"pid": pid, "ppid": p.ppid});
                match status {
                    Some(crate::init::ExitStatus::Code(c)) => fields["code"] = json!(c),
                    Some(crate::init::ExitStatus::Signal(s)) => fields["signal"] = json!(s),
                    None => fields["status"] = json!("unknown"),
                }
                tracing::debug!("process {pid} exited");
                self.log.emit("exit", fields);
                if !p.decided {
                    // Exited between two looks (procfs), or with no exit stop:
                    // its sockets are gone with it, and it was not seen holding
                    // one past the deadline.
                    self.procs.insert(pid, p);
                    self.decide(pid, Trigger::Exit, Vec::new(), None);
                    self.procs.remove(&pid);
                }
            }
            Event::FdUse {
                pid,
                tid,
                fd,
                syscall,
                socket,
                action,
            } => self.fd_use(pid, tid, fd, syscall, socket, action),
        }
    }

    fn born(&mut self, pid: i32, ppid: i32, birth: Birth, inherited: Vec<PgFd>, escalated: bool) {
        self.counts.processes += 1;
        if birth != Birth::Spawned {
            self.counts.forks += 1;
        }
        tracing::debug!(
            "new process {pid} ({}) from {ppid}, {} inherited PostgreSQL socket(s)",
            birth.name(),
            inherited.len()
        );
        self.log.emit(
            "fork",
            json!({"pid": pid, "ppid": ppid, "kind": birth.name(), "inherited": fds_json(&inherited), "escalated": escalated}),
        );
        let nothing = inherited.is_empty();
        self.procs.insert(
            pid,
            Proc {
                ppid,
                birth,
                born_at: Instant::now(),
                inherited,
                decided: false,
                shim: None,
            },
        );
        // Reports that came before the process was seen (the procfs watcher
        // sees a child up to a scan late; its fork handler reported at once)
        // decide first: the shim's own word is worth more than "nothing
        // inherited" when the handler has already put the sockets away.
        if let Some(early) = self.early.remove(&pid) {
            self.early_total -= early.messages.len();
            for msg in early.messages {
                self.apply_report(pid, msg);
            }
        }
        if nothing {
            // (A no-op when a report above has decided it already.)
            self.decide(pid, Trigger::Birth, Vec::new(), None);
        }
    }

    /// Decide the pool check of `pid` (once).
    fn decide(
        &mut self,
        pid: i32,
        trigger: Trigger,
        still_held: Vec<PgFd>,
        after_fork: Option<(u32, &[HarmlessFd])>,
    ) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.decided {
            return;
        }
        p.decided = true;
        let slots = after_fork.map(|(s, _)| s);
        let mut reasons = Vec::new();
        if let Some(s) = slots.filter(|&s| s > 0) {
            reasons.push(format!(
                "the shim's pool still had {s} slot(s) in use after the fork handler"
            ));
        }
        if !still_held.is_empty() {
            let what = match trigger {
                Trigger::Exec => "after exec (not close-on-exec?)",
                Trigger::Exit => "when it exited, without exec",
                Trigger::Deadline => "more than 1 s after its birth, without exec or pool reset",
                Trigger::AfterFork => "after its fork handler ran",
                Trigger::Birth => "at birth",
            };
            reasons.push(format!(
                "it still held {} of its parent's PostgreSQL socket(s) {what}",
                still_held.len()
            ));
        }
        let mut fields = json!({
            "pid": pid,
            "ppid": p.ppid,
            "birth": p.birth.name(),
            "trigger": trigger.name(),
            "verdict": if reasons.is_empty() { "ok" } else { "violation" },
            "inherited": fds_json(&p.inherited),
            "still_held": fds_json(&still_held),
            "slots_in_use": slots,
            "report": after_fork.is_some(),
        });
        if let Some((_, harmless)) = after_fork {
            // The kernel's list against the shim's: sockets the handler did not name.
            let unreported: Vec<&PgFd> = p
                .inherited
                .iter()
                .filter(|s| {
                    !harmless
                        .iter()
                        .any(|h| h.role == FdRole::Socket && h.inode == s.inode)
                })
                .collect();
            fields["unreported"] = Value::Array(unreported.iter().map(|s| s.to_json()).collect());
        }
        if reasons.is_empty() {
            self.counts.pool_checks_ok += 1;
            tracing::debug!("pool check of process {pid}: ok ({})", trigger.name());
            self.log.emit("pool_check", fields);
        } else {
            self.counts.pool_check_violations += 1;
            let reason = reasons.join("; ");
            tracing::error!(
                "FORK-SAFETY VIOLATION: process {pid} (child of {}, born by {}): {reason}. Parent and child now share a PostgreSQL session; \
                 check that the shim is preloaded with its fork handler on (shim.fork_handler), and see the event log",
                p.ppid,
                p.birth.name()
            );
            fields["reason"] = json!(reason);
            let line = self.log.emit("pool_check", fields);
            self.alerts.raise(&line);
        }
    }

    fn fd_use(&mut self, pid: i32, tid: i32, fd: i32, syscall: &str, socket: PgFd, action: Action) {
        self.counts.inherited_fd_uses += 1;
        match action {
            Action::Denied => self.counts.denied += 1,
            Action::Killed => self.counts.killed += 1,
            Action::Observed => {}
        }
        let ppid = self.procs.get(&pid).map(|p| p.ppid);
        tracing::error!(
            "FORK-SAFETY VIOLATION: process {pid} (thread {tid}, child of {}) called {syscall} on fd {fd}, a PostgreSQL connection ({}) it inherited from its parent: {}",
            ppid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            socket.peer,
            match action {
                Action::Observed => "allowed (verify mode); the parent's session may now be corrupt",
                Action::Denied => "denied with EBADF (enforce mode)",
                Action::Killed => "denied and the process killed (enforce mode, kill_offender)",
            }
        );
        let line = self.log.emit(
            "inherited_fd_use",
            json!({
                "pid": pid, "ppid": ppid, "tid": tid, "fd": fd, "inode": socket.inode,
                "syscall": syscall, "peer": socket.peer, "action": action.name(),
            }),
        );
        self.alerts.raise(&line);
    }

    /// Count and log (rate-limited) a rejected report.
    fn reject(&mut self, why: impl FnOnce() -> String) {
        self.counts.reports_rejected += 1;
        self.rejected.rejected(Instant::now(), why);
    }

    /// A datagram from the shim. `sender` is the pid the kernel attested.
    pub fn report(&mut self, sender: Option<i32>, message: Result<Message, String>) {
        self.counts.reports += 1;
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return self.reject(|| {
                    format!(
                        "from pid {}: {e}",
                        sender.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
                    )
                });
            }
        };
        let Some(sender) = sender else {
            return self.reject(|| "no sender credentials (SO_PASSCRED)".into());
        };
        if message.pid() != sender {
            return self.reject(|| {
                format!(
                    "it claims pid {} but was sent by pid {sender}",
                    message.pid()
                )
            });
        }
        if self.procs.contains_key(&sender) {
            return self.apply_report(sender, message);
        }
        // Not seen yet: kept a few seconds for a watcher a scan late, and
        // only from a descendant of the launcher.
        let now = Instant::now();
        self.expire_early(now);
        if !is_descendant(sender, self.me) {
            return self.reject(|| format!("from pid {sender}, which is not in Plex's tree"));
        }
        let held = self.early.get(&sender).map_or(0, |e| e.messages.len());
        if held >= EARLY_REPORTS_PER_PID {
            return self.reject(|| {
                format!("from pid {sender}, not seen yet, which already has {held} reports waiting")
            });
        }
        if self.early_total >= EARLY_REPORTS_LIMIT {
            return self.reject(|| format!("from pid {sender}, not seen yet: {EARLY_REPORTS_LIMIT} reports are already waiting"));
        }
        self.early
            .entry(sender)
            .or_insert_with(|| Early {
                first: now,
                messages: Vec::new(),
            })
            .messages
            .push(message);
        self.early_total += 1;
    }

    /// Drop reports from processes still not seen after [`EARLY_REPORT_TTL`].
    fn expire_early(&mut self, now: Instant) {
        let before = self.early.len();
        let mut dropped = 0;
        self.early.retain(|_, e| {
            let keep = now.duration_since(e.first) < EARLY_REPORT_TTL;
            if !keep {
                dropped += e.messages.len();
            }
            keep
        });
        if self.early.len() != before {
            self.early_total -= dropped;
            self.counts.reports_rejected += dropped as u64;
            tracing::debug!(
                "dropped {dropped} report(s) from {} process(es) never seen in Plex's tree",
                before - self.early.len()
            );
        }
    }

    fn apply_report(&mut self, pid: i32, message: Message) {
        if let Message::Connected { slot, .. } | Message::Closed { slot, .. } = &message {
            if *slot >= self.pool_max {
                let (slot, max) = (*slot, self.pool_max);
                return self.reject(|| {
                    format!("from pid {pid}: slot {slot} is beyond the pool's {max} (pool.max)")
                });
            }
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        match message {
            Message::Hello {
                shim_version,
                pool_capacity,
                fork_handler,
                ..
            } => {
                tracing::debug!("process {pid}: shim {shim_version} active, pool of {pool_capacity}, fork handler {}", if fork_handler { "on" } else { "OFF" });
                if !fork_handler {
                    tracing::warn!("process {pid} runs the shim with its fork handler OFF (shim.fork_handler = false): its forked children keep its PostgreSQL sockets");
                }
                p.shim.get_or_insert_with(Shim::default).fork_handler = fork_handler;
            }
            Message::Connected {
                slot, fd, inode, ..
            } => {
                p.shim
                    .get_or_insert_with(Shim::default)
                    .connections
                    .insert(slot, (fd, inode));
            }
            Message::Closed { slot, .. } => {
                p.shim
                    .get_or_insert_with(Shim::default)
                    .connections
                    .remove(&slot);
            }
            Message::AfterFork {
                ppid,
                slots_in_use,
                harmless,
                ..
            } => {
                if ppid != p.ppid && p.birth != Birth::Unknown {
                    tracing::warn!(
                        "process {pid}'s AfterFork report names parent {ppid}, the kernel says {}",
                        p.ppid
                    );
                }
                if p.decided {
                    if slots_in_use > 0 {
                        // Decided earlier (exec came first): the pool was still not empty.
                        p.decided = false;
                        let still = Kernel::still_held(pid, &p.inherited).unwrap_or_default();
                        self.decide(
                            pid,
                            Trigger::AfterFork,
                            still,
                            Some((slots_in_use, &harmless)),
                        );
                    }
                    return;
                }
                let still = Kernel::still_held(pid, &p.inherited).unwrap_or_default();
                self.decide(
                    pid,
                    Trigger::AfterFork,
                    still,
                    Some((slots_in_use, &harmless)),
                );
            }
        }
    }

    /// Deadlines of undecided pool checks; expiry of early reports; the
    /// count of rejected reports at the end of a logging interval.
    pub fn tick(&mut self, now: Instant) {
        self.expire_early(now);
        self.rejected.flush(now);
        let due: Vec<i32> = self
            .procs
            .iter()
            .filter(|(_, p)| !p.decided && now.duration_since(p.born_at) >= POOL_CHECK_DEADLINE)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in due {
            let inherited = self.procs[&pid].inherited.clone();
            let still = Kernel::still_held(pid, &inherited).unwrap_or_default();
            self.decide(pid, Trigger::Deadline, still, None);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let checks = self
            .procs
            .values()
            .filter(|p| !p.decided)
            .map(|p| p.born_at + POOL_CHECK_DEADLINE);
        let early = self.early.values().map(|e| e.first + EARLY_REPORT_TTL);
        checks
            .chain(early)
            .chain(self.rejected.next_deadline())
            .min()
    }

    /// The last event: counts, and the launcher's exit code.
    pub fn summary(&mut self, exit_code: i32, extra: Value) {
        let c = self.counts.clone();
        let mut fields = json!({
            "exit_code": exit_code,
            "processes": c.processes, "forks": c.forks, "execs": c.execs, "exits": c.exits,
            "pool_checks_ok": c.pool_checks_ok, "pool_check_violations": c.pool_check_violations,
            "inherited_fd_uses": c.inherited_fd_uses, "denied": c.denied, "killed": c.killed,
            "reports": c.reports, "reports_rejected": c.reports_rejected,
            "alerts_sent": self.alerts.sent, "alerts_suppressed": self.alerts.suppressed, "alerts_failed": self.alerts.failed,
        });
        if let (Value::Object(f), Value::Object(e)) = (&mut fields, extra) {
            f.extend(e);
        }
        self.log.emit("summary", fields);
    }
}

/// Whether `pid` descends from `ancestor` (its parent chain in `/proc`
/// reaches it). A process that vanished meanwhile is not.
fn is_descendant(pid: i32, ancestor: i32) -> bool {
    let mut current = pid;
    // Deep enough for any real tree; bounded against a loop of stale reads.
    for _ in 0..256 {
        let Ok(stat) = procfs::process::Process::new(current).and_then(|p| p.stat()) else {
            return false;
        };
        if stat.ppid == ancestor {
            return true;
        }
        if stat.ppid <= 1 {
            return false;
        }
        current = stat.ppid;
    }
    false
}
