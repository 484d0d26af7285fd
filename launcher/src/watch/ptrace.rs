//! The ptrace watcher: `PTRACE_SEIZE` from spawn, event stops only
//! (fork, vfork, clone, exec; no exit stop: an exit is judged from the
//! tracer's account when it is reaped), restarted with `PTRACE_CONT`;
//! syscall stops only for a process that holds a PostgreSQL socket it
//! inherited, and in `verify` not for a `fork` child whose parent's shim
//! has its fork handler on and reported every socket the child inherited
//! (the handler replaces them before any code of the child runs: the child
//! is checked at its AfterFork report, exec, deadline and exit instead).
//! The syscall that drops an escalated process's last inherited socket is
//! let go at its entry when it cannot fail (`Tracer::drops_last`).
//!
//! Traps handled:
//! - a child's first stop can arrive before its parent's fork event: the
//!   child is held stopped until the event says how it was born (or, after
//!   [`HOLD_LIMIT`], judged with what `/proc` says);
//! - exec by a thread other than the leader: the thread takes the leader's
//!   tid ([`Event::Exec`] carries the former tid) and the other threads are
//!   forgotten;
//! - ESRCH from any ptrace call: the tracee died; its exit is reported by
//!   `waitpid` later, so the error is ignored;
//! - group-stops (`PTRACE_EVENT_STOP` with a stopping signal) are left in
//!   place with `PTRACE_LISTEN`, never resumed, never re-injected; a
//!   signal-delivery stop is resumed with its signal;
//! - a fork or vfork parent is resumed at once after its event, before the
//!   child's fds are read (the child runs nothing before its first stop is
//!   handled, so its fd table stays as the fork left it; a vfork parent
//!   then blocks in the kernel until the child execs or exits), and the
//!   child is never held waiting on the parent; only a `clone` of a new
//!   process, which may share the parent's fd table, holds the parent
//!   until the child's fds are read.
//!
//! What the tracer knows of each process's PostgreSQL sockets is kept up
//! to date as it goes, so that a fork costs reads of the few fds that
//! matter, not of the child's whole fd table:
//! - its own connections, from its shim's Connected reports
//!   ([`Tracer::report`], read before any fork event that follows them);
//! - the sockets it inherited and still holds, from its birth and then from
//!   the syscalls of its escalated threads (`close`, `close_range`, the
//!   `dup` family: [`arch::fd_change`]), each drop confirmed by one
//!   `readlink` of the fd it dropped;
//! - at exec, which of them survived (one `readlink` each).
//!
//! A child's inherited sockets are then the parent's known ones that the
//! child's fd table shows (one `readlink` per known socket, the inode
//! compared). The whole fd table is still read for a parent whose shim
//! has not said Hello (no shim, or not reporting: its sockets are not
//! reported, so they are not known), that reported more connections than
//! a pool can have, or whose fd table was last read in full more than
//! [`FULL_READ_EVERY`] ago: a PostgreSQL socket the shim did not report
//! (opened outside its pool, or a fork in the instant between a connect
//! and its report) is then found at the parent's next fork after at most
//! that long, and a child born meanwhile is not seen holding it.
//!
//! The syscall and its arguments come from `PTRACE_GET_SYSCALL_INFO`
//! ([`super::syscall_info`]), the same on every architecture. Enforce mode
//! denies a syscall by replacing its number with -1 at the entry stop (the
//! kernel skips it) and setting the return value to `-EBADF` at the exit
//! stop; which syscalls matter and how registers are written are per
//! architecture, in [`super::arch`] (x86_64 and aarch64).
//!
//! The tracer sees; it does not judge. What it sees goes out as
//! [`Event`]s, which the supervisor hands to the judge.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::syscall_info::SyscallStop;
use nix::errno::Errno;
use nix::sys::ptrace::{self, Event as PtraceEvent, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use plex_pg_config::report::{FdRole, Message, MAX_REPORTED_FDS};
use plex_pg_config::settings::Mode;

use super::arch::{self, FdChange};
use crate::observed::{Action, Birth, Event, ExitStatus};
use crate::proc::{program_of, status_number};
use crate::sockets::{Kernel, PgFd};

/// How long a child whose first stop came before its parent's event is
/// held before it is judged without the event.
pub const HOLD_LIMIT: Duration = Duration::from_secs(1);

/// The most connections kept per process from its Connected reports: a
/// pool's slots and the pooler probe's session, twice over. A process
/// that reports more (forged reports) has its children's fd tables read
/// in full until a fork re-reads them.
const REPORTED_LIMIT: usize = 2 * MAX_REPORTED_FDS;

/// How long what is known of a parent's sockets is used without reading a
/// child's fd table in full: the longest an unreported PostgreSQL socket
/// of the parent goes unseen in its children (one full read a second per
/// forking process costs nothing measurable).
pub const FULL_READ_EVERY: Duration = Duration::from_secs(1);

/// The options every tracee gets (inherited by auto-attached children).
pub fn options() -> Options {
    Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_EXITKILL
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Running (or stopped by us and handled).
    Running,
    /// Its parent's event was handled; its first stop has not come yet.
    AwaitingFirstStop,
    /// Its first stop came before its parent's event: kept stopped.
    Held(Instant),
}

#[derive(Debug)]
struct Thread {
    tgid: i32,
    start: Start,
    /// The entry of a denied syscall was seen; set its result at the exit.
    deny_pending: bool,
    /// A syscall that changes the fd table is running: follow it at its
    /// exit.
    fd_change: Option<FdChange>,
}

impl Thread {
    fn new(tgid: i32, start: Start) -> Thread {
        Thread {
            tgid,
            start,
            deny_pending: false,
            fd_change: None,
        }
    }
}

/// A connection the shim of a process reported (or, after a full read,
/// a PostgreSQL socket found in a child's fd table).
#[derive(Clone, Copy, Debug)]
struct Reported {
    fd: i32,
    inode: u64,
    /// The shim reported it (Connected): one of its pool's sockets, which
    /// its fork handler replaces in a child. False for one only found by a
    /// full read.
    by_shim: bool,
    /// A Closed report came. It is sent before the socket is closed, so a
    /// fork in between still copies it: forgotten at the next fork whose
    /// child does not show it.
    closed: bool,
}

#[derive(Debug, Default)]
struct Traced {
    /// Stopped at every syscall while it holds an inherited socket.
    escalated: bool,
    /// The PostgreSQL sockets it held at birth.
    inherited: Vec<PgFd>,
    /// Those it still holds, under the fd numbers it holds them by: the
    /// birth's, followed through its syscalls while escalated.
    held: Vec<PgFd>,
    /// Its own connections, from its shim's reports, by fd number.
    reported: Vec<Reported>,
    /// Its shim said Hello (in the program it runs now): its connections
    /// are reported.
    hello: bool,
    /// Its shim's Hello said its fork handler is on.
    fork_handler: bool,
    /// Not escalated although it inherited sockets: a `fork` child, in
    /// `verify`, of a parent whose shim's fork handler is on, and every
    /// socket it inherited one the shim reported (its handler replaces
    /// them before any code of the child runs). `held` is not followed:
    /// it is confirmed when its AfterFork report comes.
    trusted: bool,
    /// Its AfterFork report came.
    after_fork: bool,
    /// More than [`REPORTED_LIMIT`] connections were reported.
    overflowed: bool,
    /// When a child's fd table was last read in full at its fork.
    full_read: Option<Instant>,
    threads: usize,
}

impl Traced {
    /// Whether its shim's fork handler replaces every one of `inherited`
    /// in a `fork` child before any code of the child runs: the shim said
    /// Hello with its handler on, and each is a socket it reported (fd and
    /// inode; one reported closed too, as its fd stays in the pool's table
    /// until the `close(2)`).
    fn handler_replaces(&self, inherited: &[PgFd]) -> bool {
        self.hello
            && self.fork_handler
            && inherited.iter().all(|s| {
                self.reported
                    .iter()
                    .any(|r| r.by_shim && r.fd == s.fd && r.inode == s.inode)
            })
    }

    /// The fd numbers of the PostgreSQL sockets it is known to hold, if
    /// what is known is all it may hold (its shim reports).
    fn known_fds(&self, now: Instant) -> Option<Vec<i32>> {
        let fresh = self
            .full_read
            .is_some_and(|t| now.duration_since(t) < FULL_READ_EVERY);
        if !self.hello || self.overflowed || !fresh {
            return None;
        }
        let mut fds: Vec<i32> = self
            .held
            .iter()
            .map(|h| h.fd)
            .chain(self.reported.iter().map(|r| r.fd))
            .collect();
        fds.sort_unstable();
        fds.dedup();
        Some(fds)
    }
}

/// Counters for the summary and the benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub event_stops: u64,
    pub syscall_stops: u64,
    pub escalations: u64,
    /// Children that inherited sockets and were not escalated: trusted to
    /// their shim's fork handler (`verify` only).
    pub trusted: u64,
    /// Births whose fd table was read in full (the parent's sockets were
    /// not all known).
    pub full_reads: u64,
}

pub struct Tracer {
    threads: HashMap<i32, Thread>,
    procs: HashMap<i32, Traced>,
    mode: Mode,
    kill_offender: bool,
    pub stats: Stats,
}

/// `PTRACE_EVENT_STOP`: a tracee's first stop, or a group-stop.
pub(crate) const PTRACE_EVENT_STOP: i32 = 128;

impl Tracer {
    pub fn new(mode: Mode, kill_offender: bool) -> Tracer {
        Tracer {
            threads: HashMap::new(),
            procs: HashMap::new(),
            mode,
            kill_offender,
            stats: Stats::default(),
        }
    }

    /// Seize the freshly forked `pid` (blocked on its gate, before exec).
    pub fn seize(&mut self, pid: i32) -> nix::Result<()> {
        ptrace::seize(Pid::from_raw(pid), options())?;
        self.threads.insert(pid, Thread::new(pid, Start::Running));
        self.procs.insert(
            pid,
            Traced {
                threads: 1,
                ..Traced::default()
            },
        );
        Ok(())
    }

    /// Handle one `waitpid` result. Exits of traced thread group leaders
    /// become [`Event::Exited`].
    pub fn on_status(&mut self, status: WaitStatus, out: &mut Vec<Event>, kernel: &mut Kernel) {
        match status {
            WaitStatus::PtraceEvent(pid, sig, ev) => {
                self.stats.event_stops += 1;
                let tid = pid.as_raw();
                match ev {
                    e if e == PtraceEvent::PTRACE_EVENT_FORK as i32 => {
                        self.on_new(tid, Birth::Fork, out, kernel)
                    }
                    e if e == PtraceEvent::PTRACE_EVENT_VFORK as i32 => {
                        self.on_new(tid, Birth::Vfork, out, kernel)
                    }
                    e if e == PtraceEvent::PTRACE_EVENT_CLONE as i32 => {
                        self.on_new(tid, Birth::Clone, out, kernel)
                    }
                    e if e == PtraceEvent::PTRACE_EVENT_EXEC as i32 => self.on_exec(tid, out),
                    PTRACE_EVENT_STOP => self.on_event_stop(tid, sig),
                    _ => self.resume(tid, None),
                }
            }
            WaitStatus::PtraceSyscall(pid) => {
                self.stats.syscall_stops += 1;
                self.on_syscall(pid.as_raw(), out);
            }
            WaitStatus::Stopped(pid, sig) => {
                // Signal-delivery stop: deliver the signal.
                self.resume(pid.as_raw(), Some(sig));
            }
            WaitStatus::Exited(pid, code) => {
                self.on_death(pid.as_raw(), ExitStatus::Code(code), out)
            }
            WaitStatus::Signaled(pid, sig, _) => {
                self.on_death(pid.as_raw(), ExitStatus::Signal(sig as i32), out)
            }
            _ => {}
        }
    }

    /// Held children whose parent's event never came.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Event>, kernel: &mut Kernel) {
        let overdue: Vec<i32> = self
            .threads
            .iter()
            .filter_map(|(&tid, t)| match t.start {
                Start::Held(since) if now.duration_since(since) >= HOLD_LIMIT => Some(tid),
                _ => None,
            })
            .collect();
        for tid in overdue {
            let tgid = status_number(tid, "Tgid:").unwrap_or(tid);
            if tgid != tid && self.procs.contains_key(&tgid) {
                // A thread of a known process: run it in its process's mode.
                self.threads.insert(tid, Thread::new(tgid, Start::Running));
                if let Some(p) = self.procs.get_mut(&tgid) {
                    p.threads += 1;
                }
                self.resume(tid, None);
                continue;
            }
            tracing::warn!("process {tid} started, but the fork event of its parent never came; judging it from /proc");
            self.threads.remove(&tid);
            let ppid = status_number(tid, "PPid:").unwrap_or(0);
            self.adopt_child(ppid, tid, Birth::Unknown, true, out, kernel);
        }
    }

    /// When the next [`Tracer::tick`] is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.threads
            .values()
            .filter_map(|t| match t.start {
                Start::Held(since) => Some(since + HOLD_LIMIT),
                _ => None,
            })
            .min()
    }

    fn resume(&self, tid: i32, sig: Option<Signal>) {
        let escalated = self
            .threads
            .get(&tid)
            .and_then(|t| self.procs.get(&t.tgid))
            .map(|p| p.escalated)
            .unwrap_or(false);
        let pid = Pid::from_raw(tid);
        let result = if escalated {
            ptrace::syscall(pid, sig)
        } else {
            ptrace::cont(pid, sig)
        };
        match result {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::error!("cannot resume traced process {tid}: {e}; it may stay stopped")
            }
        }
    }

    /// A fork, vfork or clone event in `parent`.
    fn on_new(&mut self, parent: i32, birth: Birth, out: &mut Vec<Event>, kernel: &mut Kernel) {
        let child = match ptrace::getevent(Pid::from_raw(parent)) {
            Ok(c) => c as i32,
            Err(e) => {
                if e != Errno::ESRCH {
                    tracing::warn!("cannot read the new pid from the fork event of {parent}: {e}");
                }
                self.resume(parent, None);
                return;
            }
        };
        let parent_tgid = self.threads.get(&parent).map(|t| t.tgid).unwrap_or(parent);
        let was_held = matches!(
            self.threads.get(&child),
            Some(Thread {
                start: Start::Held(_),
                ..
            })
        );
        // A fork or vfork always makes a process; only a clone may make a
        // thread, and only then is the child's status read (before the
        // parent goes on: a clone may share the parent's fd table).
        let is_thread =
            birth == Birth::Clone && status_number(child, "Tgid:").unwrap_or(child) == parent_tgid;
        if is_thread {
            // A new thread of the same process.
            let start = if was_held {
                Start::Running
            } else {
                Start::AwaitingFirstStop
            };
            self.threads.insert(child, Thread::new(parent_tgid, start));
            if let Some(p) = self.procs.get_mut(&parent_tgid) {
                p.threads += 1;
            }
            if was_held {
                self.resume(child, None);
            }
            self.resume(parent, None);
        } else {
            self.threads.remove(&child);
            // The child runs no instruction before its first stop is
            // handled, so its fd table stays as fork or vfork left it: the
            // parent goes on at once and the child's fds are read after.
            // A clone of a new process may share the parent's table
            // (CLONE_FILES), which the parent could change meanwhile: that
            // parent is held until the child's fds are read.
            let shares_fds = birth == Birth::Clone;
            if !shares_fds {
                self.resume(parent, None);
            }
            self.adopt_child(parent_tgid, child, birth, was_held, out, kernel);
            if shares_fds {
                self.resume(parent, None);
            }
        }
    }

    /// Record a new process: its inherited PostgreSQL sockets, read before
    /// it runs any instruction, decide whether it is escalated, and let it
    /// go if it is already at its first stop.
    fn adopt_child(
        &mut self,
        ppid: i32,
        child: i32,
        birth: Birth,
        at_first_stop: bool,
        out: &mut Vec<Event>,
        kernel: &mut Kernel,
    ) {
        let inherited = if self.mode == Mode::Off {
            Vec::new()
        } else {
            self.inherited_by(ppid, child, kernel)
        };
        let parent = self.procs.get(&ppid);
        let trusted = !inherited.is_empty()
            && self.mode == Mode::Verify
            && birth == Birth::Fork
            && parent.is_some_and(|p| p.handler_replaces(&inherited));
        let escalated = !inherited.is_empty() && !trusted;
        if escalated {
            self.stats.escalations += 1;
        }
        if trusted {
            self.stats.trusted += 1;
        }
        // A forked child's shim is its parent's (same program, same
        // reporter): it reports as its parent did. Its pool starts empty
        // (the fork handler), so it has no connections of its own yet.
        let hello = parent.is_some_and(|p| p.hello);
        let fork_handler = parent.is_some_and(|p| p.fork_handler);
        self.procs.insert(
            child,
            Traced {
                escalated,
                trusted,
                inherited: inherited.clone(),
                held: inherited.clone(),
                hello,
                fork_handler,
                threads: 1,
                ..Traced::default()
            },
        );
        let start = if at_first_stop {
            Start::Running
        } else {
            Start::AwaitingFirstStop
        };
        self.threads.insert(child, Thread::new(child, start));
        out.push(Event::Born {
            pid: child,
            ppid,
            birth,
            inherited,
            escalated,
        });
        if at_first_stop {
            self.resume(child, None);
        }
    }

    /// The PostgreSQL sockets `child`, not run yet, inherited from `ppid`:
    /// those of the parent's known sockets that the child's fd table shows
    /// (one `readlink` each), or, when the parent's sockets are not all
    /// known, every fd of the child read (and the parent's known sockets
    /// taken from it: the child's table is the parent's at the fork).
    fn inherited_by(&mut self, ppid: i32, child: i32, kernel: &mut Kernel) -> Vec<PgFd> {
        let now = Instant::now();
        let known = self.procs.get(&ppid).and_then(|p| p.known_fds(now));
        let Some(fds) = known else {
            self.stats.full_reads += 1;
            let found = kernel.pg_fds(child).unwrap_or_else(|e| {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    tracing::warn!("cannot read the fds of new process {child}: {e}");
                }
                Vec::new()
            });
            if let Some(p) = self.procs.get_mut(&ppid) {
                // What the shim reported stays its word: a socket found
                // that it did not report is not one its handler replaces.
                let by_shim = |f: &PgFd| {
                    p.reported
                        .iter()
                        .any(|r| r.by_shim && r.fd == f.fd && r.inode == f.inode)
                };
                p.reported = found
                    .iter()
                    .take(REPORTED_LIMIT)
                    .map(|f| Reported {
                        fd: f.fd,
                        inode: f.inode,
                        by_shim: by_shim(f),
                        closed: false,
                    })
                    .collect();
                p.overflowed = false;
                p.full_read = Some(now);
            }
            return found;
        };
        let found: Vec<PgFd> = fds
            .iter()
            .filter_map(|&fd| kernel.pg_fd(child, fd))
            .collect();
        if let Some(p) = self.procs.get_mut(&ppid) {
            // What the child shows is what the parent held at the fork: a
            // connection reported closed and not there is forgotten, one
            // found under a reported number is the parent's now.
            p.reported
                .retain(|r| !r.closed || found.iter().any(|f| f.fd == r.fd && f.inode == r.inode));
            for f in &found {
                if let Some(r) = p.reported.iter_mut().find(|r| r.fd == f.fd) {
                    if r.inode != f.inode {
                        // Another socket under a reported number: not
                        // the one the shim reported.
                        r.inode = f.inode;
                        r.by_shim = false;
                    }
                }
            }
        }
        found
    }

    /// A report from the shim of `pid` (the sender the kernel attested,
    /// equal to the report's own pid): what it says of its connections.
    /// It is the shim's word, used only to know which fds to look at: a
    /// child's inherited sockets are what the kernel shows at those fds.
    pub fn report(&mut self, pid: i32, message: &Message) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        match *message {
            Message::Hello { fork_handler, .. } => {
                p.hello = true;
                p.fork_handler = fork_handler;
            }
            Message::Connected { fd, inode, .. } => {
                if let Some(r) = p.reported.iter_mut().find(|r| r.fd == fd) {
                    *r = Reported {
                        fd,
                        inode,
                        by_shim: true,
                        closed: false,
                    };
                } else if p.reported.len() < REPORTED_LIMIT {
                    p.reported.push(Reported {
                        fd,
                        inode,
                        by_shim: true,
                        closed: false,
                    });
                } else {
                    p.overflowed = true;
                }
            }
            Message::Closed { fd, inode, .. } => {
                if let Some(r) = p
                    .reported
                    .iter_mut()
                    .find(|r| r.fd == fd && r.inode == inode)
                {
                    r.closed = true;
                }
            }
            Message::AfterFork { ref harmless, .. } => {
                if p.trusted && !p.after_fork {
                    // Its handler ran: what it still holds, one `readlink`
                    // per inherited socket (the rest of its life is not
                    // followed). An fd that is not there (it is gone, its
                    // fds closed with it, or the handler closed the fd for
                    // want of /dev/null) was dropped if the handler named
                    // it, and is taken as held if not: the judge's check
                    // that follows reads whether it is gone (and so
                    // whether that account is all there is) only then.
                    let named = |s: &PgFd| {
                        harmless
                            .iter()
                            .any(|h| h.role == FdRole::Socket && h.inode == s.inode)
                    };
                    p.held.retain(|h| match crate::proc::fd_entry(pid, h.fd) {
                        Some(inode) => inode == Some(h.inode),
                        None => !named(h),
                    });
                }
                p.after_fork = true;
            }
            Message::Tally { .. } => {}
        }
    }

    /// Which of `of` (by inode) the traced process `pid` still holds: its
    /// held sockets, each confirmed with one `readlink`. `None` for a
    /// process the tracer does not know (the caller reads its fd table).
    pub fn still_held(&self, pid: i32, of: &[PgFd]) -> Option<Vec<PgFd>> {
        let p = self.procs.get(&pid)?;
        Some(
            confirm_held(pid, &p.held)
                .unwrap_or_else(|| p.held.clone())
                .into_iter()
                .filter(|h| of.iter().any(|o| o.inode == h.inode))
                .collect(),
        )
    }

    fn on_event_stop(&mut self, tid: i32, sig: Signal) {
        match self.threads.get_mut(&tid) {
            None => {
                // First stop of a child whose parent's event has not come.
                self.threads
                    .insert(tid, Thread::new(tid, Start::Held(Instant::now())));
            }
            Some(t) if t.start == Start::AwaitingFirstStop => {
                t.start = Start::Running;
                self.resume(tid, None);
            }
            Some(t) if matches!(t.start, Start::Held(_)) => {}
            Some(_) => {
                if matches!(
                    sig,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                ) {
                    // Group-stop: stay stopped, but keep reporting.
                    // SAFETY: PTRACE_LISTEN ignores addr and data (null here).
                    let r = unsafe { libc::ptrace(libc::PTRACE_LISTEN, tid, 0usize, 0usize) };
                    if r < 0 {
                        let e = Errno::last();
                        if e != Errno::ESRCH {
                            tracing::warn!("PTRACE_LISTEN on {tid} failed: {e}");
                        }
                    }
                } else {
                    self.resume(tid, None);
                }
            }
        }
    }

    fn on_exec(&mut self, tid: i32, out: &mut Vec<Event>) {
        let former = ptrace::getevent(Pid::from_raw(tid))
            .ok()
            .map(|f| f as i32)
            .filter(|&f| f != tid);
        let tgid = tid;
        // Every other thread of the process is gone; the execing one is now `tid`.
        self.threads.retain(|&t, th| th.tgid != tgid || t == tid);
        self.threads.insert(tid, Thread::new(tgid, Start::Running));
        let p = self.procs.entry(tgid).or_default();
        p.threads = 1;
        // Stopped at its exec: it is there to be read.
        let still_held = confirm_held(tgid, &p.held).unwrap_or_default();
        p.held = still_held.clone();
        // The new program's shim has not said Hello yet; its connections
        // are those that survived the exec (not close-on-exec).
        p.hello = false;
        p.fork_handler = false;
        p.reported
            .retain(|r| crate::proc::fd_inode(tgid, r.fd) == Some(r.inode));
        if still_held.is_empty() && p.escalated {
            p.escalated = false;
            tracing::debug!("process {tgid} no longer holds an inherited PostgreSQL socket after exec: syscall stops off");
        }
        out.push(Event::Exec {
            pid: tgid,
            former_tid: former,
            program: program_of(tgid),
            still_held,
        });
        self.resume(tid, None);
    }

    fn on_death(&mut self, tid: i32, status: ExitStatus, out: &mut Vec<Event>) {
        let Some(thread) = self.threads.remove(&tid) else {
            return;
        };
        if let Some(p) = self.procs.get_mut(&thread.tgid) {
            p.threads = p.threads.saturating_sub(1);
        }
        if tid == thread.tgid {
            if let Some(p) = self.procs.remove(&tid) {
                if !p.held.is_empty() {
                    // Its fds closed with it, unread: there is no exit stop
                    // (no PTRACE_O_TRACEEXIT). What it held is the account:
                    // followed through its syscalls (escalated), confirmed
                    // at its AfterFork report (trusted), or, for a trusted
                    // child whose report never came, all it inherited.
                    out.push(Event::Exiting {
                        pid: tid,
                        still_held: p.held,
                        unconfirmed: p.trusted && !p.after_fork,
                    });
                }
            }
            self.threads.retain(|_, t| t.tgid != tid);
            out.push(Event::Exited {
                pid: tid,
                status: Some(status),
            });
        }
    }

    fn on_syscall(&mut self, tid: i32, out: &mut Vec<Event>) {
        let pid = Pid::from_raw(tid);
        let info = match super::syscall_info::get(pid) {
            Ok(i) => i,
            Err(Errno::ESRCH) => return,
            Err(e) => {
                tracing::warn!("PTRACE_GET_SYSCALL_INFO on {tid} failed: {e}");
                self.resume(tid, None);
                return;
            }
        };
        let Some(tgid) = self.threads.get(&tid).map(|t| t.tgid) else {
            self.resume(tid, None);
            return;
        };
        match info {
            SyscallStop::Entry { nr, args } => {
                let escalated = self.procs.get(&tgid).map(|p| p.escalated).unwrap_or(false);
                if escalated {
                    self.check_entry(tid, tgid, nr, &args, out);
                }
            }
            SyscallStop::Exit { rval, is_error } => self.on_syscall_exit(tid, tgid, rval, is_error),
            SyscallStop::Other => {}
        }
        self.resume(tid, None);
    }

    fn check_entry(&mut self, tid: i32, tgid: i32, nr: i64, args: &[u64; 6], out: &mut Vec<Event>) {
        if let Some(change) = arch::fd_change(nr, args) {
            if self.drops_last(tid, tgid, change, arch::dup_flags_valid(nr, args)) {
                // Let go at the entry: PTRACE_CONT, no exit stop.
                if let Some(p) = self.procs.get_mut(&tgid) {
                    p.held.clear();
                    p.escalated = false;
                    tracing::debug!("process {tgid} drops its last inherited PostgreSQL socket: syscall stops off");
                }
                return;
            }
            if let Some(t) = self.threads.get_mut(&tid) {
                t.fd_change = Some(change);
            }
            return;
        }
        let Some((name, positions)) = arch::uses_fd(nr) else {
            return;
        };
        let Some(p) = self.procs.get(&tgid) else {
            return;
        };
        for &pos in positions {
            let fd = args[pos] as i32;
            let Some(inode) = Kernel::fd_inode(tid, fd) else {
                continue;
            };
            let Some(socket) = p.inherited.iter().find(|s| s.inode == inode) else {
                continue;
            };
            let socket = PgFd {
                fd,
                inode,
                peer: socket.peer.clone(),
            };
            let action = match self.mode {
                Mode::Enforce => {
                    if arch::deny_entry(tid) {
                        if let Some(t) = self.threads.get_mut(&tid) {
                            t.deny_pending = true;
                        }
                        if self.kill_offender {
                            let _ = nix::sys::signal::kill(Pid::from_raw(tgid), Signal::SIGKILL);
                            Action::Killed
                        } else {
                            Action::Denied
                        }
                    } else {
                        Action::Observed
                    }
                }
                _ => Action::Observed,
            };
            out.push(Event::FdUse {
                pid: tgid,
                tid,
                fd,
                syscall: name,
                socket,
                action,
            });
            return;
        }
    }

    /// Whether `change`, at its entry, is sure to leave the process with
    /// none of its inherited sockets: a single-threaded process (no other
    /// thread can copy one meanwhile) whose every held socket is the fd a
    /// `close` closes (it cannot fail on an open fd; even interrupted, the
    /// fd is gone), or the fd a `dup2`/`dup3` replaces with an open fd
    /// that is not one of them (valid flags, not the same fd: it cannot
    /// fail then; one `readlink` of the old fd, instead of the new one at
    /// the exit).
    fn drops_last(&self, tid: i32, tgid: i32, change: FdChange, flags_valid: bool) -> bool {
        let Some(p) = self.procs.get(&tgid) else {
            return false;
        };
        if p.threads != 1 || p.held.is_empty() {
            return false;
        }
        match change {
            FdChange::Close(fd) => p.held.iter().all(|h| h.fd == fd),
            FdChange::DupOnto { old, new } => {
                flags_valid
                    && old != new
                    && p.held.iter().all(|h| h.fd == new)
                    && match crate::proc::fd_entry(tid, old) {
                        None => false,
                        Some(None) => true,
                        Some(Some(inode)) => !p.inherited.iter().any(|s| s.inode == inode),
                    }
            }
            FdChange::CloseRange { .. } | FdChange::Dup { .. } => false,
        }
    }

    fn on_syscall_exit(&mut self, tid: i32, tgid: i32, rval: i64, is_error: bool) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        if std::mem::take(&mut t.deny_pending) {
            arch::set_return(tid, -(libc::EBADF as i64));
        }
        let Some(change) = t.fd_change.take() else {
            return;
        };
        let Some(p) = self.procs.get_mut(&tgid) else {
            return;
        };
        if !p.escalated {
            return;
        }
        follow(tid, &mut p.held, &p.inherited, change, rval, is_error);
        if p.held.is_empty() {
            p.escalated = false;
            tracing::debug!(
                "process {tgid} no longer holds an inherited PostgreSQL socket: syscall stops off"
            );
        }
    }
}

/// Which of `held` `pid` still holds: one `readlink` per socket, the
/// inode compared (nothing is read when it holds none). `None` when an fd
/// could not be read because the process is gone (a zombie's fds are
/// closed): the caller then has only its account. Whether it is gone is
/// read (`/proc/<pid>/stat`) only when an fd is missing, not when another
/// file took its number (the fork handler's `/dev/null`).
fn confirm_held(pid: i32, held: &[PgFd]) -> Option<Vec<PgFd>> {
    let mut still = Vec::new();
    let mut missing = false;
    for h in held {
        match crate::proc::fd_entry(pid, h.fd) {
            Some(inode) if inode == Some(h.inode) => still.push(h.clone()),
            Some(_) => {}
            None => missing = true,
        }
    }
    if missing && !matches!(crate::proc::state(pid), Some(s) if s != 'Z' && s != 'X') {
        return None;
    }
    Some(still)
}

/// Follow one fd-table change of an escalated process in `held`, the
/// inherited sockets it holds: a dropped fd is confirmed gone with one
/// `readlink` (it may have been given back another copy meanwhile), a new
/// copy of a held socket is added after one `readlink` shows it.
fn follow(
    tid: i32,
    held: &mut Vec<PgFd>,
    inherited: &[PgFd],
    change: FdChange,
    rval: i64,
    is_error: bool,
) {
    // What `fd` refers to now, if it is one of the inherited sockets.
    let now_at = |fd: i32| -> Option<PgFd> {
        let inode = crate::proc::fd_inode(tid, fd)?;
        inherited.iter().find(|s| s.inode == inode).map(|s| PgFd {
            fd,
            inode,
            peer: s.peer.clone(),
        })
    };
    let recheck = |held: &mut Vec<PgFd>, fd: i32| {
        let now = now_at(fd);
        held.retain(|h| h.fd != fd);
        held.extend(now);
    };
    match change {
        FdChange::Close(fd) => {
            if held.iter().any(|h| h.fd == fd) {
                recheck(held, fd);
            }
        }
        FdChange::CloseRange { first, last } => {
            let dropped: Vec<i32> = held
                .iter()
                .map(|h| h.fd)
                .filter(|&fd| fd >= 0 && (first..=last).contains(&(fd as u32)))
                .collect();
            for fd in dropped {
                recheck(held, fd);
            }
        }
        FdChange::DupOnto { old, new } => {
            if held.iter().any(|h| h.fd == new || h.fd == old) && old != new {
                recheck(held, new);
            }
        }
        FdChange::Dup { old } => {
            if !is_error && held.iter().any(|h| h.fd == old) {
                if let Ok(new) = i32::try_from(rval) {
                    recheck(held, new);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::unix::net::UnixStream;

    fn inode_of(fd: i32) -> u64 {
        crate::proc::fd_inode(std::process::id() as i32, fd).unwrap()
    }

    fn as_pg(fd: i32) -> PgFd {
        PgFd {
            fd,
            inode: inode_of(fd),
            peer: "unix:test".into(),
        }
    }

    /// `follow` on this very process: its own fds stand for an escalated
    /// child's, the syscalls are made for real and their results given.
    #[test]
    fn held_sockets_follow_close_dup_and_dup_onto() {
        let me = std::process::id() as i32;
        let (a, _peer_a) = UnixStream::pair().unwrap();
        let (b, _peer_b) = UnixStream::pair().unwrap();
        let (a, b) = (a.into_raw_fd(), b.into_raw_fd());
        let inherited = vec![as_pg(a), as_pg(b)];
        let mut held = inherited.clone();

        // dup(a): the copy is held too.
        // SAFETY: dup of an fd this test owns.
        let copy = unsafe { libc::dup(a) };
        assert!(copy >= 0);
        follow(
            me,
            &mut held,
            &inherited,
            FdChange::Dup { old: a },
            copy as i64,
            false,
        );
        assert_eq!(held.len(), 3, "{held:?}");
        assert!(held
            .iter()
            .any(|h| h.fd == copy && h.inode == inherited[0].inode));

        // dup2(/dev/null, a): a is gone, its copy is not.
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dup2 onto an fd this test owns.
        assert_eq!(unsafe { libc::dup2(null.as_raw_fd(), a) }, a);
        let onto = FdChange::DupOnto {
            old: null.as_raw_fd(),
            new: a,
        };
        follow(me, &mut held, &inherited, onto, a as i64, false);
        assert!(!held.iter().any(|h| h.fd == a), "{held:?}");
        assert!(held.iter().any(|h| h.fd == copy));

        // A failed dup2 onto b (bad old fd): b is still held.
        follow(
            me,
            &mut held,
            &inherited,
            FdChange::DupOnto { old: -1, new: b },
            -(libc::EBADF as i64),
            true,
        );
        assert!(held.iter().any(|h| h.fd == b), "{held:?}");

        // close(copy), close_range over b: nothing is held.
        // SAFETY: closing fds this test owns.
        unsafe { libc::close(copy) };
        follow(me, &mut held, &inherited, FdChange::Close(copy), 0, false);
        // SAFETY: as above.
        unsafe { libc::close(b) };
        let range = FdChange::CloseRange {
            first: b as u32,
            last: b as u32,
        };
        follow(me, &mut held, &inherited, range, 0, false);
        assert!(held.is_empty(), "{held:?}");
        assert_eq!(confirm_held(me, &inherited[1..]).map(|h| h.len()), Some(0));
        // SAFETY: a is /dev/null now, still ours.
        unsafe { libc::close(a) };
    }

    /// The entry of the `close` or `dup2`/`dup3` that drops the last
    /// inherited socket lets the process go (no exit stop) only when it
    /// cannot fail to: this process's own fds stand for a child's.
    #[test]
    fn the_last_drop_is_let_go_at_its_entry_only_when_sure() {
        let me = std::process::id() as i32;
        let (a, _peer_a) = UnixStream::pair().unwrap();
        let (b, _peer_b) = UnixStream::pair().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let (a, b, null) = (a.as_raw_fd(), b.as_raw_fd(), null.as_raw_fd());
        let mut t = Tracer::new(Mode::Enforce, false);
        let traced = |held: Vec<PgFd>, threads| Traced {
            escalated: true,
            inherited: vec![as_pg(a), as_pg(b)],
            held,
            threads,
            ..Traced::default()
        };
        t.procs.insert(me, traced(vec![as_pg(a)], 1));
        let onto = |old, new| FdChange::DupOnto { old, new };
        assert!(t.drops_last(me, me, FdChange::Close(a), true));
        assert!(!t.drops_last(me, me, FdChange::Close(b), true));
        assert!(t.drops_last(me, me, onto(null, a), true));
        // Invalid dup3 flags, the same fd, a closed old fd, or another
        // inherited socket copied over it: it may still hold one after.
        assert!(!t.drops_last(me, me, onto(null, a), false));
        assert!(!t.drops_last(me, me, onto(a, a), true));
        assert!(!t.drops_last(me, me, onto(9999, a), true));
        assert!(!t.drops_last(me, me, onto(b, a), true));
        assert!(!t.drops_last(me, me, FdChange::CloseRange { first: 0, last: !0 }, true));
        // Two still held, or another thread that may copy it meanwhile.
        t.procs.insert(me, traced(vec![as_pg(a), as_pg(b)], 1));
        assert!(!t.drops_last(me, me, FdChange::Close(a), true));
        t.procs.insert(me, traced(vec![as_pg(a)], 2));
        assert!(!t.drops_last(me, me, FdChange::Close(a), true));
    }

    /// A trusted child's AfterFork: what it holds is read once; if it is
    /// gone, what its handler named is taken as replaced, the rest held.
    #[test]
    fn a_trusted_childs_after_fork_confirms_what_it_holds() {
        let me = std::process::id() as i32;
        let (a, _peer_a) = UnixStream::pair().unwrap();
        let a = a.as_raw_fd();
        let mut t = Tracer::new(Mode::Verify, false);
        let after_fork = |pid, inode| Message::AfterFork {
            pid,
            ppid: 1,
            generation: 1,
            slots_in_use: 0,
            harmless: vec![plex_pg_config::report::HarmlessFd {
                fd: a,
                role: FdRole::Socket,
                inode,
            }],
        };
        // Alive and still holding it (the handler did not replace it).
        t.procs.insert(
            me,
            Traced {
                trusted: true,
                inherited: vec![as_pg(a)],
                held: vec![as_pg(a)],
                threads: 1,
                ..Traced::default()
            },
        );
        t.report(me, &after_fork(me, 1));
        assert_eq!(t.procs[&me].held.len(), 1);
        assert!(t.procs[&me].after_fork);
        // Gone (no such pid): the socket it named is replaced, another not.
        let gone = i32::MAX - 1;
        let named = PgFd {
            fd: 5,
            inode: 55,
            peer: "unix:test".into(),
        };
        let other = PgFd {
            fd: 6,
            inode: 66,
            peer: "unix:test".into(),
        };
        t.procs.insert(
            gone,
            Traced {
                trusted: true,
                inherited: vec![named.clone(), other.clone()],
                held: vec![named, other],
                threads: 1,
                ..Traced::default()
            },
        );
        t.report(gone, &after_fork(gone, 55));
        let held: Vec<i32> = t.procs[&gone].held.iter().map(|h| h.fd).collect();
        assert_eq!(held, vec![6]);
        assert_eq!(
            t.still_held(gone, &t.procs[&gone].inherited).unwrap().len(),
            1
        );
    }

    #[test]
    fn a_parents_connections_are_known_from_its_reports_until_a_full_read_is_due() {
        let mut t = Tracer::new(Mode::Verify, false);
        t.procs.insert(
            10,
            Traced {
                threads: 1,
                ..Traced::default()
            },
        );
        let connected = |fd, inode| Message::Connected {
            pid: 10,
            ppid: 1,
            slot: 0,
            fd,
            inode,
            generation: 1,
        };
        let now = Instant::now();
        // No Hello: nothing is known.
        t.report(10, &connected(7, 70));
        assert_eq!(t.procs[&10].known_fds(now), None);
        t.report(
            10,
            &Message::Hello {
                pid: 10,
                ppid: 1,
                shim_version: "test".into(),
                pool_capacity: 4,
                fork_handler: true,
            },
        );
        // Said Hello, but no full read yet.
        assert_eq!(t.procs[&10].known_fds(now), None);
        t.procs.get_mut(&10).unwrap().full_read = Some(now);
        t.report(10, &connected(8, 80));
        assert_eq!(t.procs[&10].known_fds(now), Some(vec![7, 8]));
        // Closed: still looked at (the fork may have come before close()).
        t.report(
            10,
            &Message::Closed {
                pid: 10,
                ppid: 1,
                slot: 0,
                fd: 7,
                inode: 70,
                generation: 1,
            },
        );
        assert_eq!(t.procs[&10].known_fds(now), Some(vec![7, 8]));
        // A second later, a full read is due again.
        assert_eq!(t.procs[&10].known_fds(now + FULL_READ_EVERY), None);
        // A flood of reports: the parent's children are read in full.
        for fd in 0..(REPORTED_LIMIT as i32 + 1) {
            t.report(10, &connected(100 + fd, 1000 + fd as u64));
        }
        assert!(t.procs[&10].overflowed);
        assert_eq!(t.procs[&10].known_fds(now), None);
    }
}
