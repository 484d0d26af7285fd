//! When each child starts: every requested kind and fault once at the start
//! of the run, then each kind at its rate until the run ends. Each start
//! first tries to catch a worker half-way through the hash query, so the
//! child is born while that query is in flight, as in the incident.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::children::{self, CStrings, ChildKind, ExecImage, Method, Record, Registry};
use crate::cli::{OnOff, Options, SpawnSpec};
use crate::faults::{self, Fault};
use crate::library::Layout;
use crate::log;
use crate::rendezvous::{Parked, Rendezvous};

/// What a child forked without exec runs: given its pid and the parked
/// hash query (if it was forked during one), its exit code and a note.
type ForkedBody<'a> = dyn FnMut(i32, Option<&Parked>) -> (i32, String) + 'a;
use crate::stats::Stats;
use crate::workload::{self, Expected};

/// Bound on a forked child (its `alarm`), and on any child's life beyond its own.
const FORKED_CHILD_LIMIT_SECS: u32 = 45;
const CHILD_GRACE: Duration = Duration::from_secs(30);
/// The Scanner opens its own, smaller pool.
const SCANNER_SESSIONS: &str = "4";

/// The Plex-like mix used when no `--spawn` is given.
pub fn default_mix() -> Vec<SpawnSpec> {
    [
        (ChildKind::Tuner, 0.2),
        (ChildKind::ScriptHost, 0.5),
        (ChildKind::CrashUploader, 0.1),
        (ChildKind::Transcoder, 0.1),
        (ChildKind::Scanner, 0.05),
        (ChildKind::ForkQuery, 0.5),
    ]
    .into_iter()
    .map(|(kind, rate)| SpawnSpec {
        kind,
        method: kind.default_method(),
        rate,
    })
    .collect()
}

pub struct Spawner<'a> {
    pub opts: &'a Options,
    pub specs: Vec<SpawnSpec>,
    pub layout: &'a Layout,
    pub journal_path: &'a std::path::Path,
    pub image: &'a ExecImage,
    pub registry: &'a Registry,
    pub rendezvous: &'a Rendezvous,
    pub expected: &'a Expected,
    pub stats: &'a Stats,
    /// Fds the server had at start-up (for the raw-write fault).
    pub startup_fds: &'a [i32],
    /// TERM, the duration or a hang: stop starting children at once.
    pub stop: &'a AtomicBool,
    /// Set once every requested kind and fault has been started once.
    pub first_round_done: &'a AtomicBool,
    /// The workers are done: finish the first round, start nothing more.
    pub workers_done: &'a AtomicBool,
    pub started: &'a std::sync::atomic::AtomicU64,
}

impl Spawner<'_> {
    /// Run until the run ends. Returns when it started its last child.
    pub fn run(&self) {
        for spec in &self.specs {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.start_kind(spec);
        }
        for &fault in self
            .opts
            .faults
            .iter()
            .filter(|f| **f != Fault::WrongResult)
        {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.inject(fault);
        }
        self.first_round_done.store(true, Ordering::Release);
        let now = Instant::now();
        let mut due: Vec<Instant> = self.specs.iter().map(|s| now + period(s.rate)).collect();
        while !self.stop.load(Ordering::Acquire) && !self.workers_done.load(Ordering::Acquire) {
            let Some((next, at)) = due
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .map(|(i, t)| (i, *t))
            else {
                return;
            };
            if Instant::now() < at {
                std::thread::sleep(
                    at.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                );
                continue;
            }
            self.start_kind(&self.specs[next]);
            due[next] = at + period(self.specs[next].rate);
            if due[next] < Instant::now() {
                due[next] = Instant::now();
            }
        }
    }

    fn mid_query_wait(&self) -> Duration {
        Duration::from_millis(self.opts.mid_query_wait_ms)
    }

    fn start_kind(&self, spec: &SpawnSpec) {
        match spec.kind {
            ChildKind::Transcoder => {
                let burst = self.opts.transcoder_burst;
                let gap = Duration::from_millis(900 / u64::from(burst));
                for k in 0..burst {
                    if k > 0 {
                        std::thread::sleep(gap);
                    }
                    self.start_exec(spec, gap.max(Duration::from_millis(50)));
                }
            }
            ChildKind::ForkQuery => self.start_fork_query(),
            _ => self.start_exec(spec, self.mid_query_wait()),
        }
    }

    fn helper_argv(&self, kind: ChildKind) -> CStrings {
        let journal = self.journal_path.as_os_str().to_os_string();
        let mut args: Vec<std::ffi::OsString> = vec![kind.program_name().into()];
        if kind == ChildKind::Scanner {
            args.extend([
                "--scanner".into(),
                "--data-dir".into(),
                self.layout.data_dir.as_os_str().to_os_string(),
            ]);
            args.extend([
                "--scanner-parts".into(),
                self.opts.scanner_parts.to_string().into(),
            ]);
            args.extend(["--sessions".into(), SCANNER_SESSIONS.into()]);
            args.extend(["--timeout".into(), self.opts.timeout.to_string().into()]);
        } else {
            args.extend(["--child".into(), kind.name().into()]);
            if let Some(ms) = self.opts.helper_ms {
                args.extend(["--helper-ms".into(), ms.to_string().into()]);
            }
        }
        args.extend(["--journal".into(), journal]);
        if self.opts.fork_gate == OnOff::Off {
            args.extend(["--fork-gate".into(), "off".into()]);
        }
        if self.opts.quiet {
            args.push("--quiet".into());
        }
        CStrings::new(args)
    }

    fn deadline_of(&self, kind: ChildKind) -> Instant {
        let life = match kind {
            ChildKind::Scanner => Duration::from_secs_f64(self.opts.timeout),
            _ => self
                .opts
                .helper_ms
                .map(Duration::from_millis)
                .unwrap_or_else(|| kind.default_lifetime()),
        };
        Instant::now() + life + CHILD_GRACE
    }

    fn record(
        &self,
        kind: &str,
        method: &'static str,
        rows: Option<usize>,
        expect_exit: i32,
        deadline: Instant,
    ) -> Record {
        Record {
            kind: kind.to_string(),
            method,
            started: Instant::now(),
            mid_hash_query_rows: rows,
            report: None,
            expect_exit,
            deadline,
            exec_error: None,
        }
    }

    fn started_log(&self, what: &str, method: &str, pid: i32, parked: Option<Parked>) {
        self.started.fetch_add(1, Ordering::Relaxed);
        match parked {
            Some(p) => log::info!(
                "started {what} ({method}) pid {pid} while worker {}'s hash query was in flight ({} rows read)",
                p.worker,
                p.rows_read
            ),
            None => log::info!("started {what} ({method}) pid {pid}"),
        }
    }

    fn start_exec(&self, spec: &SpawnSpec, wait: Duration) {
        let argv = self.helper_argv(spec.kind);
        let method = spec.method.label(true);
        let catch = self.rendezvous.catch(wait);
        let parked = catch.as_ref().map(|c| c.parked);
        let rows = parked.map(|p| p.rows_read);
        let outcome = self.registry.start(|| {
            let started = children::spawn_exec(spec.method, self.image, &argv)?;
            let mut record = self.record(
                spec.kind.name(),
                method,
                rows,
                0,
                self.deadline_of(spec.kind),
            );
            record.exec_error = started.exec_error.map(|e| e.to_string());
            Ok((started.pid, record))
        });
        drop(catch);
        match outcome {
            Ok(pid) => self.started_log(spec.kind.program_name(), method, pid, parked),
            Err(e) => self.stats.error(format!(
                "cannot start {} by {method}: {e}",
                spec.kind.program_name()
            )),
        }
    }

    /// Fork without exec and run `body` in the child, during the hash query if possible.
    fn start_forked(&self, what: &str, expect_exit: i32, body: &mut ForkedBody<'_>) {
        let method = Method::Fork.label(false);
        let catch = self.rendezvous.catch(self.mid_query_wait());
        let parked = catch.as_ref().map(|c| c.parked);
        let rows = parked.map(|p| p.rows_read);
        let deadline =
            Instant::now() + Duration::from_secs(u64::from(FORKED_CHILD_LIMIT_SECS)) + CHILD_GRACE;
        let outcome = self.registry.start(|| {
            let mut child_body = |report_fd: i32| body(report_fd, parked.as_ref());
            let (pid, report) = children::fork_call(FORKED_CHILD_LIMIT_SECS, &mut child_body)?;
            let mut record = self.record(what, method, rows, expect_exit, deadline);
            record.report = Some(report);
            Ok((pid, record))
        });
        drop(catch);
        match outcome {
            Ok(pid) => self.started_log(what, method, pid, parked),
            Err(e) => self.stats.error(format!("cannot fork for {what}: {e}")),
        }
    }

    fn start_fork_query(&self) {
        let (library_db, expected) = (&self.layout.library_db, self.expected);
        self.start_forked(ChildKind::ForkQuery.name(), 0, &mut |_, _| {
            workload::fork_query_child(library_db, expected)
        });
    }

    fn inject(&self, fault: Fault) {
        log::info!("injecting fault {}", fault.name());
        let expect = fault.injected_exit();
        match fault {
            Fault::StaleHandle => self.start_forked(fault.name(), expect, &mut |report_fd, parked| match parked {
                Some(p) => faults::stale_handle_child(p.handle, report_fd),
                None => (2, "not injected: no worker was in the hash query, so no in-flight handle to use".into()),
            }),
            Fault::RawWrite => {
                let startup = self.startup_fds;
                self.start_forked(fault.name(), expect, &mut |report_fd, _| faults::raw_write_child(startup, report_fd))
            }
            Fault::ExitAfterFailedExec => {
                let missing_path = self.layout.data_dir.join("missing").join(ChildKind::Transcoder.program_name());
                let missing = CString::new(missing_path.as_os_str().as_bytes()).unwrap_or_default();
                let argv = self.helper_argv(ChildKind::Transcoder);
                let image = self.image;
                self.start_forked(fault.name(), expect, &mut |report_fd, _| {
                    faults::exit_after_failed_exec_child(image, &missing, &argv, report_fd)
                })
            }
            Fault::WrongResult => {}
        }
    }
}

fn period(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate)
}
