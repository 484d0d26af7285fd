//! The judge: the rules, and nothing else. [`Event`]s from the watchers,
//! the shim's reports and a [`Probe`] ("which of its inherited sockets does
//! this process still hold?", "is it in Plex's tree?") go in; typed
//! [`Record`]s (`pool_check` for every new process, `inherited_fd_use` for
//! every syscall on an inherited PostgreSQL socket, and the rest of the
//! event log) and [`Note`]s for the human log come out, in order, through
//! [`Judge::take_output`]. It does no I/O and reads no `/proc`: the
//! supervisor hands the output to the sinks ([`crate::sink`]), which write
//! the event log, the human log and the alerts.
//!
//! The pool check of a process is decided at the first of:
//! - its AfterFork report (the shim's fork handler ran): the pool must be
//!   empty (`slots_in_use` 0) and, in the kernel's view, the process must
//!   hold none of the PostgreSQL sockets it inherited;
//! - its exec: none of them may survive (close-on-exec) — the rule for
//!   children born without handlers (vfork, posix_spawn, clone);
//! - its exit: exiting while still holding one is a violation;
//! - [`POOL_CHECK_DEADLINE`] after its birth: still holding one then is a
//!   violation (a fork child that neither reset its pool nor exec'd),
//!   unless the child has not had the CPU to reset it yet: a child that is
//!   runnable or stopped (by a signal or a tracer), not asleep, is looked
//!   at again every [`POOL_CHECK_RECHECK`], up to [`POOL_CHECK_LIMIT`]
//!   after its birth. On a loaded machine a child can wait longer than the
//!   deadline for its first time slice; a child asleep while holding its
//!   parent's socket (waiting on it, say) is not waiting for the CPU.
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
//!
//! Each rule above is a unit test at the end of this file, on synthetic
//! events and a table for the kernel.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use plex_pg_config::report::{FdRole, HarmlessFd, Message};

use crate::events::{Record, Trigger, Verdict};
use crate::observed::{Action, Birth, Event, ExitStatus};
use crate::reports::RejectedLog;
use crate::sockets::PgFd;

/// How long after its birth a process may hold an inherited socket before
/// the pool check calls it a violation.
pub const POOL_CHECK_DEADLINE: Duration = Duration::from_secs(1);

/// How often a child past the deadline that is still waiting for the CPU
/// is looked at again.
pub const POOL_CHECK_RECHECK: Duration = Duration::from_millis(250);

/// The latest a pool check is decided, however long the child waited for
/// the CPU.
pub const POOL_CHECK_LIMIT: Duration = Duration::from_secs(10);

/// Most reports kept for processes not seen yet (procfs watcher lag).
pub const EARLY_REPORTS_LIMIT: usize = 1024;

/// Most of those from one pid (a forked child sends a Hello, a few
/// Connected and one AfterFork before a watcher can be a scan late).
pub const EARLY_REPORTS_PER_PID: usize = 16;

/// How long a report from a process not seen yet is kept: far longer than
/// a procfs scan, far shorter than a flood can wait.
pub const EARLY_REPORT_TTL: Duration = Duration::from_secs(3);

/// What the judge asks the kernel, through the supervisor (in the
/// launcher, [`crate::proc`]; in the tests, a table).
pub trait Probe {
    /// Which of `of` (by inode) `pid` still holds, under any fd number
    /// (nothing when it cannot be read).
    fn still_held(&mut self, pid: i32, of: &[PgFd]) -> Vec<PgFd>;
    /// Whether `pid` descends from `ancestor`.
    fn descends_from(&mut self, pid: i32, ancestor: i32) -> bool;
    /// Whether `pid` is runnable or stopped (by a signal or a tracer)
    /// rather than asleep: it may not have had the CPU to run its fork
    /// handler yet.
    fn waiting_for_cpu(&mut self, pid: i32) -> bool;
}

/// A line for the human log only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Debug(String),
    Warn(String),
}

/// What the judge decided, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// An event-log record (and its human line; a violation also alerts).
    Record(Record),
    /// A human log line.
    Note(Note),
}

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
    /// When the deadline rule next looks at it.
    due: Instant,
    inherited: Vec<PgFd>,
    decided: bool,
    /// It exited unfollowed, without its AfterFork report: what it
    /// inherited is taken as still held (see [`Event::Exiting`]).
    unconfirmed: bool,
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

/// What the summary adds from outside the judge.
#[derive(Debug, Default, Clone)]
pub struct SummaryExtra {
    pub alerts_sent: u64,
    pub alerts_suppressed: u64,
    pub alerts_failed: u64,
    pub watcher: String,
    /// ptrace only: event stops, syscall stops, escalations.
    pub ptrace: Option<(u64, u64, u64)>,
}

pub struct Judge {
    procs: HashMap<i32, Proc>,
    early: HashMap<i32, Early>,
    early_total: usize,
    /// The pool's most slots (`pool.max`): a slot number must be below it.
    pool_max: u32,
    rejected: RejectedLog,
    /// The launcher's pid: reports from processes not seen yet are kept
    /// only from its descendants.
    me: i32,
    pub counts: Counts,
    /// The shim's own figures, per process (its Tally reports).
    pub tallies: crate::tally::Tallies,
    out: Vec<Output>,
}

impl Judge {
    /// A judge for the tree under `me` (the launcher), for a pool of
    /// `pool_max` slots.
    pub fn new(me: i32, pool_max: u32) -> Judge {
        Judge {
            procs: HashMap::new(),
            early: HashMap::new(),
            early_total: 0,
            pool_max,
            rejected: RejectedLog::default(),
            me,
            counts: Counts::default(),
            tallies: crate::tally::Tallies::default(),
            out: Vec::new(),
        }
    }

    /// Everything decided since the last call, in order.
    /// Processes of the tree known alive now.
    pub fn tree_size(&self) -> usize {
        self.procs.len()
    }

    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    fn record(&mut self, r: Record) {
        self.out.push(Output::Record(r));
    }

    fn note(&mut self, n: Note) {
        self.out.push(Output::Note(n));
    }

    /// One event from a watcher, seen at `now`.
    pub fn handle(&mut self, event: Event, now: Instant, probe: &mut dyn Probe) {
        match event {
            Event::Born {
                pid,
                ppid,
                birth,
                inherited,
                escalated,
            } => self.born(pid, ppid, birth, inherited, escalated, now, probe),
            Event::Exec {
                pid,
                former_tid,
                program,
                still_held,
            } => {
                self.counts.execs += 1;
                self.record(Record::Exec {
                    former_tid,
                    pid,
                    program,
                    still_held: still_held.clone(),
                });
                self.decide(pid, Trigger::Exec, still_held, None);
            }
            Event::Exiting {
                pid,
                still_held,
                unconfirmed,
            } => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.unconfirmed = unconfirmed;
                }
                self.decide(pid, Trigger::Exit, still_held, None)
            }
            Event::Exited { pid, status } => {
                let Some(p) = self.procs.remove(&pid) else {
                    return;
                };
                self.counts.exits += 1;
                self.tallies.exited(pid);
                let (code, signal, status) = match status {
                    Some(ExitStatus::Code(c)) => (Some(c), None, None),
                    Some(ExitStatus::Signal(s)) => (None, Some(s), None),
                    None => (None, None, Some("unknown".to_string())),
                };
                self.record(Record::Exit {
                    code,
                    pid,
                    ppid: p.ppid,
                    signal,
                    status,
                });
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

    #[allow(clippy::too_many_arguments)]
    fn born(
        &mut self,
        pid: i32,
        ppid: i32,
        birth: Birth,
        inherited: Vec<PgFd>,
        escalated: bool,
        now: Instant,
        probe: &mut dyn Probe,
    ) {
        self.counts.processes += 1;
        if birth != Birth::Spawned {
            self.counts.forks += 1;
        }
        self.record(Record::Fork {
            escalated,
            inherited: inherited.clone(),
            kind: birth,
            pid,
            ppid,
        });
        let nothing = inherited.is_empty();
        self.procs.insert(
            pid,
            Proc {
                ppid,
                birth,
                born_at: now,
                due: now + POOL_CHECK_DEADLINE,
                inherited,
                decided: false,
                unconfirmed: false,
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
                self.apply_report(pid, msg, now, probe);
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
                Trigger::Exit if p.unconfirmed => "when it exited, without exec and without its fork handler's AfterFork report (a fork child trusted to the handler is not followed: what it inherited is taken as still held)",
                Trigger::Exit => "when it exited, without exec",
                Trigger::Deadline => "past the deadline (1 s after its birth, longer while it waited for the CPU), without exec or pool reset",
                Trigger::AfterFork => "after its fork handler ran",
                Trigger::Birth => "at birth",
            };
            reasons.push(format!(
                "it still held {} of its parent's PostgreSQL socket(s) {what}",
                still_held.len()
            ));
        }
        // The kernel's list against the shim's: sockets the handler did not name.
        let unreported = after_fork.map(|(_, harmless)| {
            p.inherited
                .iter()
                .filter(|s| {
                    !harmless
                        .iter()
                        .any(|h| h.role == FdRole::Socket && h.inode == s.inode)
                })
                .cloned()
                .collect()
        });
        let (verdict, reason) = if reasons.is_empty() {
            self.counts.pool_checks_ok += 1;
            (Verdict::Ok, None)
        } else {
            self.counts.pool_check_violations += 1;
            (Verdict::Violation, Some(reasons.join("; ")))
        };
        let record = Record::PoolCheck {
            birth: p.birth,
            inherited: p.inherited.clone(),
            pid,
            ppid: p.ppid,
            reason,
            report: after_fork.is_some(),
            slots_in_use: slots,
            still_held,
            trigger,
            unreported,
            verdict,
        };
        self.record(record);
    }

    fn fd_use(&mut self, pid: i32, tid: i32, fd: i32, syscall: &str, socket: PgFd, action: Action) {
        self.counts.inherited_fd_uses += 1;
        match action {
            Action::Denied => self.counts.denied += 1,
            Action::Killed => self.counts.killed += 1,
            Action::Observed => {}
        }
        let ppid = self.procs.get(&pid).map(|p| p.ppid);
        self.record(Record::InheritedFdUse {
            action,
            fd,
            inode: socket.inode,
            peer: socket.peer,
            pid,
            ppid,
            syscall: syscall.to_string(),
            tid,
        });
    }

    /// Count and log (rate-limited) a rejected report.
    fn reject(&mut self, now: Instant, why: impl FnOnce() -> String) {
        self.counts.reports_rejected += 1;
        for line in self.rejected.rejected(now, why) {
            self.note(Note::Warn(line));
        }
    }

    /// A datagram from the shim, received at `now`. `sender` is the pid the
    /// kernel attested.
    pub fn report(
        &mut self,
        sender: Option<i32>,
        message: Result<Message, String>,
        now: Instant,
        probe: &mut dyn Probe,
    ) {
        self.counts.reports += 1;
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return self.reject(now, || {
                    format!(
                        "from pid {}: {e}",
                        sender.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
                    )
                });
            }
        };
        let Some(sender) = sender else {
            return self.reject(now, || "no sender credentials (SO_PASSCRED)".into());
        };
        if message.pid() != sender {
            return self.reject(now, || {
                format!(
                    "it claims pid {} but was sent by pid {sender}",
                    message.pid()
                )
            });
        }
        if self.procs.contains_key(&sender) {
            return self.apply_report(sender, message, now, probe);
        }
        // Not seen yet: kept a few seconds for a watcher a scan late, and
        // only from a descendant of the launcher.
        self.expire_early(now);
        if !probe.descends_from(sender, self.me) {
            return self.reject(now, || {
                format!("from pid {sender}, which is not in Plex's tree")
            });
        }
        let held = self.early.get(&sender).map_or(0, |e| e.messages.len());
        if held >= EARLY_REPORTS_PER_PID {
            return self.reject(now, || {
                format!("from pid {sender}, not seen yet, which already has {held} reports waiting")
            });
        }
        if self.early_total >= EARLY_REPORTS_LIMIT {
            return self.reject(now, || format!("from pid {sender}, not seen yet: {EARLY_REPORTS_LIMIT} reports are already waiting"));
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
            let processes = before - self.early.len();
            self.note(Note::Debug(format!(
                "dropped {dropped} report(s) from {processes} process(es) never seen in Plex's tree"
            )));
        }
    }

    fn apply_report(&mut self, pid: i32, message: Message, now: Instant, probe: &mut dyn Probe) {
        if let Message::Connected { slot, .. } | Message::Closed { slot, .. } = &message {
            if *slot >= self.pool_max {
                let (slot, max) = (*slot, self.pool_max);
                return self.reject(now, || {
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
                p.shim.get_or_insert_with(Shim::default).fork_handler = fork_handler;
                self.note(Note::Debug(format!("process {pid}: shim {shim_version} active, pool of {pool_capacity}, fork handler {}", if fork_handler { "on" } else { "OFF" })));
                if !fork_handler {
                    self.note(Note::Warn(format!("process {pid} runs the shim with its fork handler OFF (shim.fork_handler = false): its forked children keep its PostgreSQL sockets")));
                }
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
            Message::Tally { tally, .. } => self.tallies.update(pid, &tally),
            Message::AfterFork {
                ppid,
                slots_in_use,
                harmless,
                ..
            } => {
                let mismatch = (ppid != p.ppid && p.birth != Birth::Unknown).then(|| {
                    format!(
                        "process {pid}'s AfterFork report names parent {ppid}, the kernel says {}",
                        p.ppid
                    )
                });
                let decided = p.decided;
                if let Some(m) = mismatch {
                    self.note(Note::Warn(m));
                }
                let inherited = self.procs[&pid].inherited.clone();
                if decided {
                    if slots_in_use > 0 {
                        // Decided earlier (exec came first): the pool was still not empty.
                        if let Some(p) = self.procs.get_mut(&pid) {
                            p.decided = false;
                        }
                        let still = probe.still_held(pid, &inherited);
                        self.decide(
                            pid,
                            Trigger::AfterFork,
                            still,
                            Some((slots_in_use, &harmless)),
                        );
                    }
                    return;
                }
                let still = probe.still_held(pid, &inherited);
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
    pub fn tick(&mut self, now: Instant, probe: &mut dyn Probe) {
        self.expire_early(now);
        if let Some(line) = self.rejected.flush(now) {
            self.note(Note::Warn(line));
        }
        let due: Vec<i32> = self
            .procs
            .iter()
            .filter(|(_, p)| !p.decided && now >= p.due)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in due {
            let (inherited, born_at) = {
                let p = &self.procs[&pid];
                (p.inherited.clone(), p.born_at)
            };
            let still = probe.still_held(pid, &inherited);
            let age = now.duration_since(born_at);
            if !still.is_empty() && age < POOL_CHECK_LIMIT && probe.waiting_for_cpu(pid) {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.due = (now + POOL_CHECK_RECHECK).min(born_at + POOL_CHECK_LIMIT);
                }
                self.note(Note::Debug(format!(
                    "process {pid} still holds {} inherited PostgreSQL socket(s) {} ms after its birth but has not been asleep (runnable or stopped): looked at again in {} ms",
                    still.len(),
                    age.as_millis(),
                    POOL_CHECK_RECHECK.as_millis()
                )));
                continue;
            }
            self.decide(pid, Trigger::Deadline, still, None);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let checks = self.procs.values().filter(|p| !p.decided).map(|p| p.due);
        let early = self.early.values().map(|e| e.first + EARLY_REPORT_TTL);
        checks
            .chain(early)
            .chain(self.rejected.next_deadline())
            .min()
    }

    /// The last record: counts, and the launcher's exit code.
    pub fn summary(&mut self, exit_code: i32, extra: SummaryExtra) {
        let c = self.counts.clone();
        let (event_stops, syscall_stops, escalations) = match extra.ptrace {
            Some((e, s, x)) => (Some(e), Some(s), Some(x)),
            None => (None, None, None),
        };
        self.record(Record::Summary {
            alerts_failed: extra.alerts_failed,
            alerts_sent: extra.alerts_sent,
            alerts_suppressed: extra.alerts_suppressed,
            denied: c.denied,
            escalations,
            event_stops,
            execs: c.execs,
            exit_code,
            exits: c.exits,
            forks: c.forks,
            inherited_fd_uses: c.inherited_fd_uses,
            killed: c.killed,
            pool_check_violations: c.pool_check_violations,
            pool_checks_ok: c.pool_checks_ok,
            processes: c.processes,
            reports: c.reports,
            reports_rejected: c.reports_rejected,
            syscall_stops,
            watcher: extra.watcher,
        });
    }
}

/// Every rule of the header, on synthetic events: no process, no `/proc`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Record;
    use plex_pg_config::report::HarmlessFd;
    use std::collections::HashSet;

    const ME: i32 = 100;
    const PARENT: i32 = 200;
    const CHILD: i32 = 300;

    /// The kernel, as a table: what each pid still holds (by inode), and
    /// which pids are in the launcher's tree.
    #[derive(Default)]
    struct Kernel {
        held: HashMap<i32, Vec<u64>>,
        tree: HashSet<i32>,
        /// Runnable or stopped, not asleep.
        runnable: HashSet<i32>,
    }

    impl Probe for Kernel {
        fn still_held(&mut self, pid: i32, of: &[PgFd]) -> Vec<PgFd> {
            let held = self.held.get(&pid).cloned().unwrap_or_default();
            of.iter()
                .filter(|s| held.contains(&s.inode))
                .cloned()
                .collect()
        }

        fn descends_from(&mut self, pid: i32, ancestor: i32) -> bool {
            ancestor == ME && self.tree.contains(&pid)
        }

        fn waiting_for_cpu(&mut self, pid: i32) -> bool {
            self.runnable.contains(&pid)
        }
    }

    fn sock(fd: i32, inode: u64) -> PgFd {
        PgFd {
            fd,
            inode,
            peer: "unix:/run/postgresql/.s.PGSQL.5432".into(),
        }
    }

    struct World {
        judge: Judge,
        kernel: Kernel,
        t0: Instant,
    }

    impl World {
        fn new() -> World {
            World {
                judge: Judge::new(ME, 4),
                kernel: Kernel::default(),
                t0: Instant::now(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn event(&mut self, ms: u64, event: Event) -> Vec<Record> {
            let now = self.at(ms);
            self.judge.handle(event, now, &mut self.kernel);
            self.records()
        }

        fn report(
            &mut self,
            ms: u64,
            sender: Option<i32>,
            m: Result<Message, String>,
        ) -> Vec<Record> {
            let now = self.at(ms);
            self.judge.report(sender, m, now, &mut self.kernel);
            self.records()
        }

        fn tick(&mut self, ms: u64) -> Vec<Record> {
            let now = self.at(ms);
            self.judge.tick(now, &mut self.kernel);
            self.records()
        }

        fn records(&mut self) -> Vec<Record> {
            self.judge
                .take_output()
                .into_iter()
                .filter_map(|o| match o {
                    Output::Record(r) => Some(r),
                    Output::Note(_) => None,
                })
                .collect()
        }

        /// Plex itself, then a fork child that inherited `inherited`
        /// (the kernel says it holds them).
        fn forked(&mut self, birth: Birth, inherited: Vec<PgFd>) -> Vec<Record> {
            self.event(
                0,
                Event::Born {
                    pid: PARENT,
                    ppid: ME,
                    birth: Birth::Spawned,
                    inherited: Vec::new(),
                    escalated: false,
                },
            );
            self.kernel
                .held
                .insert(CHILD, inherited.iter().map(|s| s.inode).collect());
            self.kernel.tree.insert(CHILD);
            let escalated = !inherited.is_empty();
            self.event(
                0,
                Event::Born {
                    pid: CHILD,
                    ppid: PARENT,
                    birth,
                    inherited,
                    escalated,
                },
            )
        }
    }

    fn after_fork(pid: i32, slots_in_use: u32, harmless: &[u64]) -> Result<Message, String> {
        Ok(Message::AfterFork {
            pid,
            ppid: PARENT,
            generation: 1,
            slots_in_use,
            harmless: harmless
                .iter()
                .enumerate()
                .map(|(i, &inode)| HarmlessFd {
                    fd: 10 + i as i32,
                    role: FdRole::Socket,
                    inode,
                })
                .collect(),
        })
    }

    fn connected(pid: i32, slot: u32) -> Result<Message, String> {
        Ok(Message::Connected {
            pid,
            ppid: PARENT,
            slot,
            fd: 7,
            inode: 77,
            generation: 1,
        })
    }

    /// The pool checks among `records`: (trigger, verdict, still held, reason).
    fn checks(records: &[Record]) -> Vec<(Trigger, Verdict, usize, Option<String>)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::PoolCheck {
                    trigger,
                    verdict,
                    still_held,
                    reason,
                    ..
                } => Some((*trigger, *verdict, still_held.len(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn only_check(records: &[Record]) -> (Trigger, Verdict, usize, Option<String>) {
        let c = checks(records);
        assert_eq!(c.len(), 1, "{records:#?}");
        c.into_iter().next().unwrap()
    }

    #[test]
    fn a_process_that_inherited_nothing_is_decided_at_birth() {
        let mut w = World::new();
        let r = w.forked(Birth::Fork, Vec::new());
        assert!(matches!(r[0], Record::Fork { pid: CHILD, .. }), "{r:#?}");
        let (trigger, verdict, held, _) = only_check(&r);
        assert_eq!((trigger, verdict, held), (Trigger::Birth, Verdict::Ok, 0));
        assert_eq!(w.judge.counts.forks, 1);
        assert_eq!(w.judge.counts.processes, 2);
        // Nothing more to decide, ever.
        assert!(checks(&w.tick(5_000)).is_empty());
    }

    #[test]
    fn after_fork_with_an_empty_pool_and_the_sockets_gone_passes() {
        let mut w = World::new();
        assert!(checks(&w.forked(Birth::Fork, vec![sock(5, 55)])).is_empty());
        w.kernel.held.insert(CHILD, Vec::new()); // the handler put it away
        let r = w.report(10, Some(CHILD), after_fork(CHILD, 0, &[55]));
        assert_eq!(only_check(&r), (Trigger::AfterFork, Verdict::Ok, 0, None));
        let Record::PoolCheck {
            report,
            slots_in_use,
            unreported,
            ..
        } = &r[0]
        else {
            panic!("{r:#?}")
        };
        assert!(*report);
        assert_eq!(*slots_in_use, Some(0));
        assert_eq!(unreported.as_deref(), Some(&[][..]));
    }

    #[test]
    fn after_fork_with_slots_in_use_is_a_violation() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        w.kernel.held.insert(CHILD, Vec::new());
        let r = w.report(10, Some(CHILD), after_fork(CHILD, 2, &[55]));
        let (trigger, verdict, _, reason) = only_check(&r);
        assert_eq!((trigger, verdict), (Trigger::AfterFork, Verdict::Violation));
        assert!(reason.unwrap().contains("2 slot(s) in use"));
        assert!(r[0].is_violation());
        assert_eq!(w.judge.counts.pool_check_violations, 1);
    }

    #[test]
    fn after_fork_while_the_kernel_says_a_socket_is_still_held_is_a_violation() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55), sock(6, 66)]);
        // The kernel still shows inode 66; the report names only 55.
        w.kernel.held.insert(CHILD, vec![66]);
        let r = w.report(10, Some(CHILD), after_fork(CHILD, 0, &[55]));
        let (trigger, verdict, held, reason) = only_check(&r);
        assert_eq!(
            (trigger, verdict, held),
            (Trigger::AfterFork, Verdict::Violation, 1)
        );
        assert!(reason.unwrap().contains("after its fork handler ran"));
        let Record::PoolCheck { unreported, .. } = &r[0] else {
            panic!()
        };
        let unreported: Vec<u64> = unreported
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.inode)
            .collect();
        assert_eq!(unreported, [66]);
    }

    #[test]
    fn exec_passes_when_no_inherited_socket_survives_and_fails_when_one_does() {
        for (survivors, verdict) in [
            (vec![], Verdict::Ok),
            (vec![sock(5, 55)], Verdict::Violation),
        ] {
            let mut w = World::new();
            w.forked(Birth::Vfork, vec![sock(5, 55)]);
            let r = w.event(
                5,
                Event::Exec {
                    pid: CHILD,
                    former_tid: None,
                    program: Some("/bin/true".into()),
                    still_held: survivors.clone(),
                },
            );
            assert!(matches!(&r[0], Record::Exec { pid: CHILD, .. }), "{r:#?}");
            let (trigger, v, held, reason) = only_check(&r);
            assert_eq!(
                (trigger, v, held),
                (Trigger::Exec, verdict, survivors.len())
            );
            assert_eq!(reason.is_some(), verdict == Verdict::Violation);
            assert_eq!(w.judge.counts.execs, 1);
        }
    }

    #[test]
    fn exiting_unfollowed_without_an_after_fork_report_says_so() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        let r = w.event(
            5,
            Event::Exiting {
                pid: CHILD,
                still_held: vec![sock(5, 55)],
                unconfirmed: true,
            },
        );
        let (trigger, verdict, _, reason) = only_check(&r);
        assert_eq!((trigger, verdict), (Trigger::Exit, Verdict::Violation));
        assert!(reason.unwrap().contains("AfterFork report"));
    }

    #[test]
    fn exiting_while_holding_an_inherited_socket_is_a_violation() {
        let mut w = World::new();
        w.forked(Birth::Clone, vec![sock(5, 55)]);
        let r = w.event(
            5,
            Event::Exiting {
                pid: CHILD,
                still_held: vec![sock(5, 55)],
                unconfirmed: false,
            },
        );
        let (trigger, verdict, _, reason) = only_check(&r);
        assert_eq!((trigger, verdict), (Trigger::Exit, Verdict::Violation));
        assert!(reason.unwrap().contains("when it exited"));
        // The exit that follows is recorded, without a second check.
        let r = w.event(
            6,
            Event::Exited {
                pid: CHILD,
                status: Some(ExitStatus::Signal(9)),
            },
        );
        assert!(checks(&r).is_empty());
        assert!(
            matches!(
                r[..],
                [Record::Exit {
                    pid: CHILD,
                    ppid: PARENT,
                    signal: Some(9),
                    code: None,
                    ..
                }]
            ),
            "{r:#?}"
        );
    }

    #[test]
    fn exit_before_the_check_is_decided_ok_by_the_exit() {
        let mut w = World::new();
        w.forked(Birth::Unknown, vec![sock(5, 55)]);
        let r = w.event(
            5,
            Event::Exited {
                pid: CHILD,
                status: None,
            },
        );
        assert!(
            matches!(&r[0], Record::Exit { status: Some(s), .. } if s == "unknown"),
            "{r:#?}"
        );
        assert_eq!(only_check(&r), (Trigger::Exit, Verdict::Ok, 0, None));
        assert_eq!(w.judge.counts.exits, 1);
        // Forgotten: no deadline comes for it.
        assert!(checks(&w.tick(5_000)).is_empty());
        assert!(w.judge.next_deadline().is_none());
    }

    #[test]
    fn the_deadline_decides_a_child_that_neither_reset_nor_exec_d() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        assert_eq!(w.judge.next_deadline(), Some(w.at(0) + POOL_CHECK_DEADLINE));
        // Not before the deadline.
        assert!(checks(&w.tick(999)).is_empty());
        let r = w.tick(1_000);
        let (trigger, verdict, held, reason) = only_check(&r);
        assert_eq!(
            (trigger, verdict, held),
            (Trigger::Deadline, Verdict::Violation, 1)
        );
        assert!(reason
            .unwrap()
            .contains("past the deadline (1 s after its birth"));
    }

    #[test]
    fn a_child_still_waiting_for_the_cpu_at_the_deadline_gets_more_time_up_to_the_limit() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        w.kernel.runnable.insert(CHILD);
        // Runnable (never scheduled since its birth): looked at again later.
        assert!(checks(&w.tick(1_000)).is_empty());
        assert_eq!(
            w.judge.next_deadline(),
            Some(w.at(1_000) + POOL_CHECK_RECHECK)
        );
        // It ran its handler meanwhile: ok, not a violation.
        w.kernel.held.insert(CHILD, Vec::new());
        assert_eq!(
            only_check(&w.tick(1_250)),
            (Trigger::Deadline, Verdict::Ok, 0, None)
        );

        // One that stays runnable and keeps the socket: decided at the limit.
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        w.kernel.runnable.insert(CHILD);
        let limit = POOL_CHECK_LIMIT.as_millis() as u64;
        assert!(checks(&w.tick(limit - 1)).is_empty());
        let (trigger, verdict, held, _) = only_check(&w.tick(limit));
        assert_eq!(
            (trigger, verdict, held),
            (Trigger::Deadline, Verdict::Violation, 1)
        );
    }

    #[test]
    fn the_deadline_passes_a_child_that_dropped_its_sockets() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        w.kernel.held.insert(CHILD, Vec::new());
        assert_eq!(
            only_check(&w.tick(1_000)),
            (Trigger::Deadline, Verdict::Ok, 0, None)
        );
    }

    #[test]
    fn a_late_after_fork_with_slots_in_use_is_a_second_violation() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        // Exec came first and passed...
        let r = w.event(
            5,
            Event::Exec {
                pid: CHILD,
                former_tid: None,
                program: None,
                still_held: Vec::new(),
            },
        );
        assert_eq!(only_check(&r).1, Verdict::Ok);
        // ...then the fork handler's report says the pool was not empty.
        w.kernel.held.insert(CHILD, Vec::new());
        let r = w.report(10, Some(CHILD), after_fork(CHILD, 1, &[55]));
        let (trigger, verdict, _, _) = only_check(&r);
        assert_eq!((trigger, verdict), (Trigger::AfterFork, Verdict::Violation));
        assert_eq!(w.judge.counts.pool_checks_ok, 2); // Plex's own, and the exec
        assert_eq!(w.judge.counts.pool_check_violations, 1);
    }

    #[test]
    fn a_late_after_fork_with_an_empty_pool_changes_nothing() {
        let mut w = World::new();
        w.forked(Birth::Fork, Vec::new()); // decided at birth
        let r = w.report(10, Some(CHILD), after_fork(CHILD, 0, &[]));
        assert!(checks(&r).is_empty(), "{r:#?}");
    }

    #[test]
    fn an_early_after_fork_decides_a_child_first_seen_holding_nothing() {
        // procfs: the report comes before the scan that sees the child.
        let mut w = World::new();
        w.event(
            0,
            Event::Born {
                pid: PARENT,
                ppid: ME,
                birth: Birth::Spawned,
                inherited: Vec::new(),
                escalated: false,
            },
        );
        w.kernel.tree.insert(CHILD);
        assert!(w
            .report(1, Some(CHILD), after_fork(CHILD, 0, &[55]))
            .is_empty());
        let r = w.event(
            50,
            Event::Born {
                pid: CHILD,
                ppid: PARENT,
                birth: Birth::Unknown,
                inherited: Vec::new(),
                escalated: false,
            },
        );
        let (trigger, verdict, _, _) = only_check(&r);
        assert_eq!((trigger, verdict), (Trigger::AfterFork, Verdict::Ok));
        assert_eq!(w.judge.counts.reports_rejected, 0);
    }

    #[test]
    fn reports_that_cannot_be_trusted_are_rejected_and_counted() {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        let now = w.at(1);
        let bad: [(Option<i32>, Result<Message, String>); 5] = [
            // Undecodable, no credentials, a pid that is not the sender's.
            (Some(CHILD), Err("bad magic".into())),
            (None, after_fork(CHILD, 0, &[])),
            (Some(PARENT), after_fork(CHILD, 0, &[])),
            // A slot beyond pool.max (4 here).
            (Some(CHILD), connected(CHILD, 4)),
            // From outside Plex's tree.
            (Some(999), connected(999, 0)),
        ];
        for (sender, message) in bad {
            w.judge.report(sender, message, now, &mut w.kernel);
        }
        assert_eq!(w.judge.counts.reports, 5);
        assert_eq!(w.judge.counts.reports_rejected, 5);
        // Logged (each in full: the burst is 5, and the fifth line says
        // the next ones are only counted), never recorded.
        let out = w.judge.take_output();
        assert_eq!(out.len(), 6, "{out:#?}");
        assert!(out.iter().all(|o| matches!(o, Output::Note(Note::Warn(_)))));
        // A good one still counts, and is not rejected.
        w.report(2, Some(CHILD), connected(CHILD, 3));
        assert_eq!(w.judge.counts.reports, 6);
        assert_eq!(w.judge.counts.reports_rejected, 5);
    }

    #[test]
    fn rejected_reports_are_logged_a_few_at_a_time() {
        let mut w = World::new();
        for _ in 0..20 {
            let now = w.at(0);
            w.judge.report(None, Err("x".into()), now, &mut w.kernel);
        }
        let notes: Vec<Output> = w.judge.take_output();
        let burst = crate::reports::REJECTED_LOG_BURST as usize;
        // The burst in full, and one line saying the rest are counted.
        assert_eq!(notes.len(), burst + 1, "{notes:#?}");
        assert!(notes
            .iter()
            .all(|n| matches!(n, Output::Note(Note::Warn(_)))));
        assert_eq!(w.judge.counts.reports_rejected, 20);
    }

    #[test]
    fn early_reports_are_bounded_per_pid_in_all_and_in_time() {
        let mut w = World::new();
        w.kernel.tree.extend(1000..1100);
        for _ in 0..EARLY_REPORTS_PER_PID + 3 {
            w.report(0, Some(1000), connected(1000, 0));
        }
        assert_eq!(w.judge.counts.reports_rejected, 3);
        // In all: fill up to the limit from many pids.
        let mut sent = EARLY_REPORTS_PER_PID;
        let mut pid = 1001;
        while sent < EARLY_REPORTS_LIMIT {
            for _ in 0..EARLY_REPORTS_PER_PID.min(EARLY_REPORTS_LIMIT - sent) {
                w.report(0, Some(pid), connected(pid, 0));
                sent += 1;
            }
            pid += 1;
            w.kernel.tree.insert(pid);
        }
        assert_eq!(w.judge.counts.reports_rejected, 3);
        w.kernel.tree.insert(pid);
        w.report(0, Some(pid), connected(pid, 0));
        assert_eq!(w.judge.counts.reports_rejected, 4);
        // In time: never claimed, dropped after the TTL, and counted.
        assert_eq!(w.judge.next_deadline(), Some(w.at(0) + EARLY_REPORT_TTL));
        w.tick(EARLY_REPORT_TTL.as_millis() as u64);
        assert_eq!(
            w.judge.counts.reports_rejected,
            4 + EARLY_REPORTS_LIMIT as u64
        );
        assert!(w.judge.next_deadline().is_none());
    }

    fn fd_use(action: Action) -> Record {
        let mut w = World::new();
        w.forked(Birth::Fork, vec![sock(5, 55)]);
        let r = w.event(
            5,
            Event::FdUse {
                pid: CHILD,
                tid: CHILD + 1,
                fd: 5,
                syscall: "write",
                socket: sock(5, 55),
                action,
            },
        );
        assert_eq!(w.judge.counts.inherited_fd_uses, 1);
        assert_eq!(
            (w.judge.counts.denied, w.judge.counts.killed),
            match action {
                Action::Observed => (0, 0),
                Action::Denied => (1, 0),
                Action::Killed => (0, 1),
            }
        );
        assert_eq!(r.len(), 1, "{r:#?}");
        r.into_iter().next().unwrap()
    }

    #[test]
    fn inherited_socket_use_is_recorded_as_observed_in_verify() {
        let r = fd_use(Action::Observed);
        assert!(r.is_violation());
        assert_eq!(
            r,
            Record::InheritedFdUse {
                action: Action::Observed,
                fd: 5,
                inode: 55,
                peer: "unix:/run/postgresql/.s.PGSQL.5432".into(),
                pid: CHILD,
                ppid: Some(PARENT),
                syscall: "write".into(),
                tid: CHILD + 1,
            }
        );
        assert!(r.human().unwrap().1.contains("allowed (verify mode)"));
    }

    #[test]
    fn inherited_socket_use_is_recorded_as_denied_or_killed_in_enforce() {
        let r = fd_use(Action::Denied);
        assert!(matches!(
            r,
            Record::InheritedFdUse {
                action: Action::Denied,
                ..
            }
        ));
        assert!(r.human().unwrap().1.contains("denied with EBADF"));
        let r = fd_use(Action::Killed);
        assert!(matches!(
            r,
            Record::InheritedFdUse {
                action: Action::Killed,
                ..
            }
        ));
    }

    #[test]
    fn the_summary_carries_the_counts_and_what_the_sinks_add() {
        let mut w = World::new();
        w.forked(Birth::Fork, Vec::new());
        w.judge.summary(
            3,
            SummaryExtra {
                alerts_sent: 1,
                watcher: "procfs".into(),
                ..SummaryExtra::default()
            },
        );
        let r = w.records();
        let Record::Summary {
            exit_code,
            processes,
            forks,
            pool_checks_ok,
            alerts_sent,
            event_stops,
            watcher,
            ..
        } = &r[0]
        else {
            panic!("{r:#?}")
        };
        assert_eq!(
            (
                *exit_code,
                *processes,
                *forks,
                *pool_checks_ok,
                *alerts_sent
            ),
            (3, 2, 1, 2, 1)
        );
        assert_eq!((event_stops, watcher.as_str()), (&None, "procfs"));
    }

    #[test]
    fn the_shims_figures_are_kept_per_process_and_outlive_its_exit() {
        let mut w = World::new();
        w.forked(Birth::Fork, Vec::new());
        let tally = |pid: i32, statements: u64| {
            let mut t = plex_pg_config::report::Tally {
                seq: statements,
                slots_in_use: 2,
                slots_max: 4,
                ..Default::default()
            };
            t.buckets[0] = statements;
            t.errors[1] = 1;
            Ok(Message::Tally {
                pid,
                ppid: PARENT,
                tally: Box::new(t),
            })
        };
        w.report(10, Some(PARENT), tally(PARENT, 30));
        w.report(10, Some(CHILD), tally(CHILD, 4));
        // A Tally naming another pid than its sender's is rejected.
        w.report(10, Some(CHILD), tally(PARENT, 1000));
        assert_eq!(w.judge.counts.reports_rejected, 1);
        let s = w.judge.tallies.summary();
        assert_eq!(s.total.statements(), 34);
        assert_eq!(s.total.errors[1], 2);
        assert_eq!(s.pools.len(), 2);
        w.event(
            20,
            Event::Exited {
                pid: CHILD,
                status: Some(ExitStatus::Code(0)),
            },
        );
        let after = w.judge.tallies.summary();
        assert_eq!(after.total, s.total);
        assert_eq!(after.pools.len(), 1);
        assert_eq!(after.pools[0].pid, PARENT);
    }
}
