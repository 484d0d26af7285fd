//! The launcher's one loop, on one thread: `waitpid` is process-wide, so
//! reaping, ptrace stops, the shim's reports and signals are all handled
//! here, in one `poll` over a signalfd, the report socket and the exec
//! status pipe of the command.
//!
//! The loop is the pipeline, wired in one place:
//!
//! ```text
//! waitpid ─► watcher (ptrace / procfs) ─► Event ─┐
//! report socket ─► Message ──────────────────────┼─► Judge ─► Output ─► Sinks
//! clock (deadlines) ─────────────────────────────┘  (rules)   (Record,  (event log,
//!                                   Probe: /proc ◄─┘            Note)    human log,
//!                                                                         alerts)
//! ```
//!
//! The watchers only see ([`crate::watch`]), the judge only decides
//! ([`crate::verdict`]: no I/O, the kernel asked through a [`Probe`]), and
//! the sinks only write ([`crate::sink`]). Every event a watcher pushes is
//! judged, and every output written, before the loop reads the next report
//! or `waitpid` status, so the order of the event log is the order things
//! were seen.
//!
//! Start-up order: settings are final; the event log is opened (maybe as
//! root); the launcher drops to Plex's user if asked; becomes a subreaper;
//! blocks the forwarded signals into a signalfd; binds the report socket;
//! forks the command, which waits on a gate until the watcher has seized
//! it, then execs. If watching cannot start, `verify` goes on without it
//! (fails open, loudly); `enforce` refuses to start Plex.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use plex_pg_config::report::SUPERVISOR_ENV;
use plex_pg_config::settings::{Mode, Watcher as WatcherChoice, CONFIG_ENV};
use plex_pg_config::Settings;

use crate::alert::Alerts;
use crate::events::{EventLog, Record};
use crate::init::{self, Fate, Init};
use crate::observed::{Birth, Event, ExitStatus};
use crate::privileges;
use crate::reports::{self, ReportSocket};
use crate::sink::Sinks;
use crate::sockets::{Kernel, PgFd};
use crate::spawn::{self, Spawn};
use crate::trust;
use crate::verdict::{Judge, Probe, SummaryExtra};
use crate::watch::procfs::Poller;
use crate::watch::ptrace::{Tracer, PTRACE_EVENT_STOP};

/// How long alert commands may still run once Plex's tree is gone.
const ALERT_DRAIN: Duration = Duration::from_secs(2);

/// A failure before Plex started: the message and the exit code.
pub struct StartError {
    pub code: i32,
    pub message: String,
}

fn fail(code: i32, message: impl Into<String>) -> StartError {
    StartError {
        code,
        message: message.into(),
    }
}

/// Which watcher runs.
enum Watching {
    Off,
    Ptrace(Tracer),
    Procfs(Poller),
}

impl Watching {
    fn name(&self) -> &'static str {
        match self {
            Watching::Off => "off",
            Watching::Ptrace(_) => "ptrace",
            Watching::Procfs(_) => "procfs",
        }
    }
}

/// The judge's view of the kernel: `/proc`, through the classifier, and
/// what the ptrace watcher follows of each process's inherited sockets
/// (which it confirms fd by fd rather than reading the whole fd table).
struct KernelProbe<'a> {
    tracer: Option<&'a Tracer>,
}

impl KernelProbe<'_> {
    fn of(watching: &Watching) -> KernelProbe<'_> {
        KernelProbe {
            tracer: match watching {
                Watching::Ptrace(t) => Some(t),
                _ => None,
            },
        }
    }
}

impl Probe for KernelProbe<'_> {
    fn still_held(&mut self, pid: i32, of: &[PgFd]) -> Vec<PgFd> {
        self.tracer
            .and_then(|t| t.still_held(pid, of))
            .unwrap_or_else(|| Kernel::still_held(pid, of).unwrap_or_default())
    }

    fn descends_from(&mut self, pid: i32, ancestor: i32) -> bool {
        crate::proc::is_descendant(pid, ancestor)
    }

    fn waiting_for_cpu(&mut self, pid: i32) -> bool {
        // R: runnable; T: stopped by a signal; t: stopped by the tracer.
        matches!(crate::proc::state(pid), Some('R' | 'T' | 't'))
    }
}

struct Supervisor {
    signals: SignalFd,
    reports: Option<ReportSocket>,
    exec_status: Option<OwnedFd>,
    program: String,
    watching: Watching,
    kernel: Kernel,
    /// What the watcher saw and the judge has not been given yet.
    seen: Vec<Event>,
    judge: Judge,
    sinks: Sinks,
    init: Init,
    /// The metrics endpoint's snapshot, when `launcher.metrics_listen` is set.
    metrics: Option<crate::metrics::Shared>,
    mode: &'static str,
}

/// Start the command and supervise it; returns the launcher's exit code.
pub fn run(settings: Settings, program: Vec<OsString>) -> i32 {
    match Supervisor::start(&settings, program) {
        Ok(mut s) => s.run(),
        Err(e) => {
            eprintln!("plex-pg-launcher: {}", e.message);
            e.code
        }
    }
}

impl Supervisor {
    fn start(settings: &Settings, program: Vec<OsString>) -> Result<Supervisor, StartError> {
        let l = &settings.launcher;
        let stop = crate::stop::grace_period(settings);
        if stop.systemd_kills_first {
            tracing::warn!("stop: {}", stop.why);
        } else {
            tracing::info!("stop: {}", stop.why);
        }
        let path = spawn::resolve(&program[0], std::env::var_os("PATH").as_deref())
            .map_err(|e| fail(127, format!("cannot start {:?}: {e}", program[0])))?;
        // Preloaded by its absolute path: a relative one would stop
        // loading in any Plex process that changes its directory (and
        // musl's loader skips a missing preload without a word).
        let shim = std::fs::canonicalize(&l.shim)
            .and_then(|p| std::fs::metadata(&p).map(|m| (p, m.is_file())));
        let shim = match shim {
            Ok((path, true)) => path,
            Ok(_) => return Err(fail(2, format!("the shim {} (launcher.shim, from {}) is not a file", l.shim.display(), settings.origin("launcher.shim")))),
            Err(e) => {
                return Err(fail(
                    2,
                    format!(
                        "the shim {} (launcher.shim, from {}) cannot be used: {e}; install plex-pg's shim or point --shim at it. Nothing was started",
                        l.shim.display(),
                        settings.origin("launcher.shim")
                    ),
                ))
            }
        };
        trust::check_file(&shim).map_err(|e| {
            fail(
                2,
                format!(
                    "refusing the shim {} (launcher.shim, from {}): {e}. Nothing was started",
                    l.shim.display(),
                    settings.origin("launcher.shim")
                ),
            )
        })?;
        let target = match &l.user {
            Some(user) => Some(privileges::lookup(user).map_err(|e| fail(2, e))?),
            None => None,
        };
        let service_uid = target.as_ref().map(|t| t.uid.as_raw());
        let mut log = EventLog::open(l.events.as_deref(), service_uid).map_err(|e| {
            fail(
                2,
                format!(
                    "cannot open the event log {:?} (launcher.events): {e}",
                    l.events.as_deref().unwrap_or("")
                ),
            )
        })?;
        log.rotate_at(l.events_max_bytes, l.events_keep);
        // Bound before the launcher becomes Plex's user: a refused address
        // is an error at start.
        let metrics = match &l.metrics_listen {
            Some(listen) => {
                let shared = crate::metrics::Shared::default();
                let addr = crate::metrics::serve(listen, shared.clone()).map_err(|e| {
                    fail(
                        2,
                        format!("cannot serve metrics at {listen} (launcher.metrics_listen): {e}"),
                    )
                })?;
                tracing::info!("metrics: http://{addr}/metrics");
                Some(shared)
            }
            None => None,
        };
        if let Some(target) = &target {
            privileges::become_user(target).map_err(|e| fail(1, e))?;
        }
        let me = std::process::id() as i32;
        // SAFETY: PR_SET_CHILD_SUBREAPER takes plain integers.
        if me != 1 && unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(
                "cannot become a subreaper: {}; orphans of Plex will not be reaped by the launcher",
                std::io::Error::last_os_error()
            );
        }
        let signals =
            block_signals().map_err(|e| fail(1, format!("cannot set up signal handling: {e}")))?;
        let reports = if l.mode == Mode::Off {
            None
        } else {
            Some(
                ReportSocket::bind(&reports::default_base())
                    .map_err(|e| fail(1, format!("cannot create the report socket: {e}")))?,
            )
        };

        // The command's environment: the shim preloaded, the report socket,
        // the configuration file the launcher read.
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                k != "LD_PRELOAD"
                    && k != SUPERVISOR_ENV
                    && (settings.file.is_none() || k != CONFIG_ENV)
            })
            .collect();
        let mut preload = OsString::from(shim.as_os_str());
        if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
            preload.push(":");
            preload.push(old);
        }
        env.push(("LD_PRELOAD".into(), preload));
        if let Some(r) = &reports {
            env.push((SUPERVISOR_ENV.into(), r.path().as_os_str().to_owned()));
        }
        if let Some(file) = &settings.file {
            env.push((CONFIG_ENV.into(), file.as_os_str().to_owned()));
        }
        let mut spawn = Spawn::new(&path, &program, &env)
            .map_err(|e| fail(2, format!("cannot start {}: {e}", path.display())))?;
        spawn.own_process_group = true;
        spawn.die_with_parent = true;
        let mut child = spawn
            .start(true)
            .map_err(|e| fail(1, format!("fork failed: {e}")))?;
        let pid = child.pid;

        let mut why = String::new();
        let watching = match (l.mode, l.watcher) {
            (Mode::Off, _) => Watching::Off,
            (_, WatcherChoice::Procfs) => Watching::Procfs(Poller::new(me, l.poll_interval, pid)),
            (mode, choice) => {
                let mut tracer = Tracer::new(mode, l.kill_offender);
                match tracer.seize(pid) {
                    Ok(()) => Watching::Ptrace(tracer),
                    Err(e) => {
                        why = format!(
                            "PTRACE_SEIZE of the command failed: {e} ({})",
                            ptrace_hint()
                        );
                        if mode == Mode::Enforce {
                            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                            let _ = waitpid(Pid::from_raw(pid), None);
                            return Err(fail(
                                1,
                                format!("enforce mode needs the ptrace watcher, and {why}. Plex was not started; use --mode verify or allow ptrace"),
                            ));
                        }
                        if choice == WatcherChoice::Ptrace {
                            tracing::error!("WATCHING DEGRADED: the ptrace watcher was asked for, but {why}; Plex runs anyway (verify fails open) under the weaker procfs watcher");
                        } else {
                            tracing::warn!("ptrace is not permitted here ({why}); using the procfs watcher, which sees less (see docs/launcher.md)");
                        }
                        Watching::Procfs(Poller::new(me, l.poll_interval, pid))
                    }
                }
            }
        };
        drop(child.gate.take()); // let it exec

        let kernel = Kernel::new(&settings.postgres);
        let judge = Judge::new(me, settings.pool.max);
        let mut sinks = Sinks::new(
            log,
            Alerts::new(l.alert_command.clone(), l.alert_limit_per_minute),
        );
        sinks.record(&Record::Start {
            args: program
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            degraded: (!why.is_empty()).then(|| why.clone()),
            launcher_pid: me,
            mode: mode_name(l.mode).into(),
            pid,
            program: path.display().to_string(),
            server: kernel.describe_server(),
            version: env!("CARGO_PKG_VERSION").into(),
            watcher: watching.name().into(),
        });
        if !why.is_empty() {
            sinks.record(&Record::WatchDegraded {
                reason: why.clone(),
                watcher: watching.name().into(),
            });
        }
        tracing::info!(
            "started {} as pid {pid}; mode {}, watcher {}, PostgreSQL at {}",
            path.display(),
            mode_name(l.mode),
            watching.name(),
            kernel.describe_server()
        );
        let mut seen = Vec::new();
        if !matches!(watching, Watching::Off) {
            seen.push(Event::Born {
                pid,
                ppid: me,
                birth: Birth::Spawned,
                inherited: Vec::new(),
                escalated: false,
            });
        }
        let mut supervisor = Supervisor {
            signals,
            reports,
            exec_status: Some(child.exec_status),
            program: path.display().to_string(),
            watching,
            kernel,
            seen,
            judge,
            sinks,
            init: Init::new(pid, stop.period),
            metrics,
            mode: mode_name(l.mode),
        };
        supervisor.judge_seen(Instant::now());
        Ok(supervisor)
    }

    /// Copy the counts into the metrics endpoint's snapshot.
    fn publish_metrics(&self) {
        let Some(shared) = &self.metrics else { return };
        if let Ok(mut s) = shared.lock() {
            s.counts = self.judge.counts.clone();
            s.alerts_sent = self.sinks.alerts.sent;
            s.alerts_suppressed = self.sinks.alerts.suppressed;
            s.alerts_failed = self.sinks.alerts.failed;
            s.mode = self.mode;
            s.watcher = self.watching.name();
            s.tree = self.judge.tree_size() as u64;
            s.shim = self.judge.tallies.summary();
        }
    }

    /// The middle of the pipeline: what the watcher saw goes to the judge,
    /// what the judge decided goes to the sinks.
    fn judge_seen(&mut self, now: Instant) {
        for event in self.seen.drain(..) {
            self.judge
                .handle(event, now, &mut KernelProbe::of(&self.watching));
        }
        self.sinks.take(self.judge.take_output());
    }

    fn run(&mut self) -> i32 {
        let mut drain_until: Option<Instant> = None;
        let code = loop {
            self.reap();
            self.read_reports();
            let now = Instant::now();
            match &mut self.watching {
                Watching::Ptrace(t) => t.tick(now, &mut self.seen, &mut self.kernel),
                Watching::Procfs(p) => {
                    let helpers = self.sinks.alerts.running().clone();
                    p.tick(now, &helpers, &mut self.seen, &mut self.kernel)
                }
                Watching::Off => {}
            }
            self.judge_seen(now);
            self.judge.tick(now, &mut KernelProbe::of(&self.watching));
            self.sinks.take(self.judge.take_output());
            self.sinks.tick(now);
            self.publish_metrics();
            let helpers = self.sinks.alerts.running().clone();
            self.init.tick(now, &helpers);
            if let Some(code) = self.init.finished(self.sinks.alerts.running()) {
                if self.sinks.alerts.running().is_empty() {
                    break code;
                }
                let until = *drain_until.get_or_insert(now + ALERT_DRAIN);
                if now >= until {
                    tracing::warn!(
                        "alert command(s) still running after {} s; killing them",
                        ALERT_DRAIN.as_secs()
                    );
                    for &pid in self.sinks.alerts.running() {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    self.reap();
                    break code;
                }
            }
            self.wait(now, drain_until);
        };
        self.read_reports();
        let extra = SummaryExtra {
            alerts_sent: self.sinks.alerts.sent,
            alerts_suppressed: self.sinks.alerts.suppressed,
            alerts_failed: self.sinks.alerts.failed,
            watcher: self.watching.name().into(),
            ptrace: match &self.watching {
                Watching::Ptrace(t) => Some((
                    t.stats.event_stops,
                    t.stats.syscall_stops,
                    t.stats.escalations,
                )),
                _ => None,
            },
        };
        self.judge.summary(code, extra);
        self.sinks.take(self.judge.take_output());
        self.sinks.flush();
        tracing::info!(
            "{} and its tree have exited; the launcher exits with {code}",
            self.program
        );
        code
    }

    /// Sleep in `poll` until a signal, a report, the exec status, or the
    /// next deadline.
    fn wait(&mut self, now: Instant, drain_until: Option<Instant>) {
        let mut deadline = now + Duration::from_secs(1);
        let candidates = [
            match &self.watching {
                Watching::Ptrace(t) => t.next_deadline(),
                Watching::Procfs(p) => Some(p.next_deadline()),
                Watching::Off => None,
            },
            self.judge.next_deadline(),
            self.sinks.next_deadline(),
            self.init.next_deadline(),
            drain_until,
        ];
        for d in candidates.into_iter().flatten() {
            deadline = deadline.min(d);
        }
        let timeout = deadline.saturating_duration_since(now);
        let timeout = PollTimeout::try_from(timeout.as_millis().min(1000) as i32 + 1)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = &self.reports {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        let exec_index = fds.len();
        if let Some(e) = &self.exec_status {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, timeout);
        let signalled = fds[0].revents().is_some_and(|r| !r.is_empty());
        let exec_ready = self.exec_status.is_some()
            && fds
                .get(exec_index)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        drop(fds);
        if exec_ready {
            if let Some(fd) = self.exec_status.take() {
                if let Err(e) = spawn::exec_result(&fd) {
                    tracing::error!("cannot execute {}: {e}", self.program);
                    eprintln!("plex-pg-launcher: cannot execute {}: {e}", self.program);
                }
            }
        }
        // Read only when poll says a signal is waiting: the loop wakes
        // for every report and ptrace stop, and a read that finds nothing
        // is a syscall per wake-up.
        if !signalled {
            return;
        }
        while let Ok(Some(info)) = self.signals.read_signal() {
            let sig = info.ssi_signo as i32;
            match init::fate(sig) {
                Fate::Forward => {
                    let helpers = self.sinks.alerts.running().clone();
                    self.init.forward(sig, &helpers);
                }
                Fate::Reap | Fate::Ignore | Fate::Kernel => {}
            }
        }
    }

    /// Every `waitpid` result waiting: ptrace stops and exits.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            // Reports first where they can matter: a parent's Connected was
            // sent before its fork (the tracer's account of its sockets), a
            // child's AfterFork before its exit or exec. A syscall stop, a
            // signal-delivery stop or a first stop decides nothing a report
            // could change, and an escalated child makes many: the reports
            // wait for the next status that needs them, or the loop.
            let needs_reports = !matches!(
                status,
                WaitStatus::PtraceSyscall(_)
                    | WaitStatus::Stopped(..)
                    | WaitStatus::PtraceEvent(_, _, PTRACE_EVENT_STOP)
            );
            if needs_reports {
                self.read_reports();
            }
            let ended = match status {
                WaitStatus::Exited(pid, code) => Some((pid.as_raw(), ExitStatus::Code(code))),
                WaitStatus::Signaled(pid, sig, _) => {
                    Some((pid.as_raw(), ExitStatus::Signal(sig as i32)))
                }
                _ => None,
            };
            match &mut self.watching {
                Watching::Ptrace(t) => t.on_status(status, &mut self.seen, &mut self.kernel),
                Watching::Procfs(_) => {
                    if let Some((pid, st)) = ended {
                        self.seen.push(Event::Exited {
                            pid,
                            status: Some(st),
                        });
                    }
                }
                Watching::Off => {}
            }
            self.judge_seen(Instant::now());
            if let Some((pid, st)) = ended {
                if self.sinks.alerts.reaped(pid, st) {
                    continue;
                }
                self.init.reaped(pid, st, self.sinks.alerts.running());
            }
        }
    }

    fn read_reports(&mut self) {
        let Some(r) = &self.reports else { return };
        let mut any = false;
        while let Some(received) = r.recv() {
            if let (Some(pid), Ok(plex_pg_config::report::Message::Connected { inode, .. })) =
                (received.sender, &received.message)
            {
                self.kernel.follow_connect(pid, *inode);
            }
            if let (Watching::Ptrace(t), Some(pid), Ok(m)) =
                (&mut self.watching, received.sender, &received.message)
            {
                if m.pid() == pid {
                    t.report(pid, m);
                }
            }
            self.judge.report(
                received.sender,
                received.message,
                Instant::now(),
                &mut KernelProbe::of(&self.watching),
            );
            any = true;
        }
        if any {
            self.sinks.take(self.judge.take_output());
        }
    }
}

/// Give every signal its fate ([`init::fate`]): the forwarded ones and
/// SIGCHLD are blocked into a signalfd (realtime signals included, so none
/// takes its default action on the launcher); the ignored ones are ignored.
/// What the launcher's parent gave it is recorded first, for its children
/// ([`spawn::record_inherited_signals`]).
fn block_signals() -> nix::Result<SignalFd> {
    spawn::record_inherited_signals();
    // SAFETY: sigset_t manipulation on a local, then sigprocmask/signal.
    let set = unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut raw);
        for sig in init::all_signals() {
            if matches!(init::fate(sig), Fate::Forward | Fate::Reap) {
                libc::sigaddset(&mut raw, sig);
            }
        }
        SigSet::from_sigset_t_unchecked(raw)
    };
    set.thread_block()?;
    for &s in init::IGNORED {
        // SAFETY: SIG_IGN for a signal number.
        unsafe { libc::signal(s, libc::SIG_IGN) };
    }
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Off => "off",
        Mode::Verify => "verify",
        Mode::Enforce => "enforce",
    }
}

/// Why ptrace may be refused here, for the log line.
pub fn ptrace_hint() -> String {
    let yama = crate::proc::yama_ptrace_scope();
    let tracer = crate::proc::own_status_field("TracerPid:");
    let mut parts = Vec::new();
    match yama.as_deref() {
        Some("3") => {
            parts.push("Yama ptrace_scope is 3: ptrace is disabled on this machine".to_string())
        }
        Some(v) => parts.push(format!("Yama ptrace_scope {v}")),
        None => parts.push("no Yama".to_string()),
    }
    if let Some(t) = tracer.filter(|t| t != "0") {
        parts.push(format!("the launcher itself is traced by pid {t}"));
    }
    parts.push(
        "a container's seccomp profile may also forbid ptrace; `plex-pg-launcher check` tells"
            .into(),
    );
    parts.join("; ")
}
