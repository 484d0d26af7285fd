//! The server role, Plex Media Server's stand-in: set up the library, run
//! the workers and the spawner, and supervise from the main thread (take
//! signals, reap children, watch for hangs, end the run), then drain the
//! children, close the sessions and write the summary.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::children::{self, CStrings, ExecImage, Finished, Registry};
use crate::cli::{OnOff, Options, SpawnArg, SpawnSpec};
use crate::faults::{self, Fault};
use crate::helpers::PARENT_MARKER;
use crate::journal::Journal;
use crate::library::{self, Layout};
use crate::log;
use crate::pool::{exit_table, Pool};
use crate::rendezvous::Rendezvous;
use crate::signals::{self, Wake};
use crate::spawner::{self, Spawner};
use crate::sqlite;
use crate::stats::Stats;
use crate::summary::{ChildrenSummary, FaultOutcome, Summary};
use crate::workload::{self, Activity, Expected, Workload, WORKER_STACK};

/// Default run length when neither --duration nor --iterations is given.
const DEFAULT_DURATION_SECS: f64 = 30.0;
/// At the end of a run, children get this long to finish, then TERM, then KILL.
const DRAIN_NATURAL: Duration = Duration::from_secs(10);
const DRAIN_AFTER_TERM: Duration = Duration::from_secs(5);
const CHECKOUT_WAIT: Duration = Duration::from_secs(30);

fn resolve_spawn(args: &[SpawnArg]) -> Result<Vec<SpawnSpec>, String> {
    if args.is_empty() {
        return Ok(spawner::default_mix());
    }
    let specs: Vec<SpawnSpec> = args
        .iter()
        .filter_map(|a| match a {
            SpawnArg::Spec(s) => Some(*s),
            SpawnArg::None => None,
        })
        .collect();
    if args.contains(&SpawnArg::None) && !specs.is_empty() {
        return Err("--spawn none cannot be combined with other --spawn values".into());
    }
    Ok(specs)
}

/// The start-up re-exec: start this program again and exit while it serves.
fn reexec() -> i32 {
    let image = match ExecImage::current() {
        Ok(i) => i,
        Err(e) => {
            log::error!("--self-reexec: cannot find this program: {e}");
            return 1;
        }
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut args: Vec<OsString> = vec!["Plex Media Server".into()];
    args.extend(std::env::args_os().skip(1).filter(|a| a != "--self-reexec"));
    args.extend(["--reexeced-from".into(), pid.to_string().into()]);
    match children::fork_exec(&image, &CStrings::new(args)) {
        Ok(s) if s.exec_error.is_none() => {
            log::info!(
                "re-executed as pid {}; this process exits now while it serves on",
                s.pid
            );
            0
        }
        Ok(s) => {
            log::error!(
                "--self-reexec: execve failed: {}",
                s.exec_error.map(|e| e.to_string()).unwrap_or_default()
            );
            1
        }
        Err(e) => {
            log::error!("--self-reexec: fork failed: {e}");
            1
        }
    }
}

/// Write the summary where asked, or log a verdict.
fn publish(summary: &Summary, opts: &Options) {
    if let Some(dest) = &opts.summary {
        if let Err(e) = summary.write(dest) {
            log::error!("{e}");
        }
    }
    let verdict = if summary.ok { "ok" } else { "FAILED" };
    log::info!(
        "{verdict}: {} queries, {} hash queries, {} rows checked, {} mismatches, {} writes committed, \
         {} children, {} errors, stopped by {}",
        summary.queries,
        summary.hash_queries,
        summary.rows_checked,
        summary.mismatches,
        summary.writes_committed,
        summary.children.reaped,
        summary.errors.len(),
        summary.stopped_by
    );
}

/// What the supervising thread keeps while the run goes on.
struct Supervisor<'a> {
    opts: &'a Options,
    stats: &'a Stats,
    registry: &'a Registry,
    /// Children the spawner started (it counts them).
    children_started: &'a AtomicU64,
    /// When the workload started (after the set-up).
    run_start: Option<Instant>,
    summary: Summary,
}

impl Supervisor<'_> {
    /// Account for a reaped child: log it, fold its report in, judge it.
    fn finished(&mut self, f: Finished) {
        let took = format!("{:.2} s", f.seconds);
        if f.ok() {
            log::info!(
                "child {} ({}) pid {} {} after {took}",
                f.kind,
                f.method,
                f.pid,
                f.status()
            );
        }
        if let Some(e) = &f.exec_error {
            self.stats
                .error(format!("{} pid {}: execve failed: {e}", f.kind, f.pid));
        }
        let fault = self
            .opts
            .faults
            .iter()
            .find(|x| x.name() == f.kind)
            .copied();
        if let Some(fault) = fault {
            let report = f.report.clone().unwrap_or_default();
            let injected = faults::was_injected(&report);
            let prevented = !injected && f.exit_code == Some(faults::PREVENTED);
            *self
                .summary
                .faults_injected
                .entry(fault.name().into())
                .or_default() += u64::from(injected);
            let outcome = format!(
                "{}; the child {}",
                report.lines().collect::<Vec<_>>().join("; "),
                f.status()
            );
            if injected || prevented {
                log::info!("fault {} (pid {}): {outcome}", fault.name(), f.pid);
            } else {
                self.stats.error(format!(
                    "fault {} was not injected (child pid {}): {outcome}",
                    fault.name(),
                    f.pid
                ));
            }
            self.summary.faults.push(FaultOutcome {
                fault: fault.name().into(),
                pid: Some(f.pid),
                injected,
                prevented,
                outcome,
            });
        } else if f.kind == children::ChildKind::ForkQuery.name() {
            self.fold_fork_query_report(&f);
        }
        if !f.ok() && fault.is_none() {
            let why = if f.killed_overdue {
                " (killed: it ran past its deadline)"
            } else {
                ""
            };
            self.stats.error(format!(
                "child {} ({}) pid {} {} after {took}, expected exit code {}{why}",
                f.kind,
                f.method,
                f.pid,
                f.status(),
                f.expect_exit
            ));
        }
        self.summary.children.record(&f);
    }

    /// `queries=1 rows=N mismatches=M` then messages, from a forked query child.
    fn fold_fork_query_report(&self, f: &Finished) {
        let report = f.report.clone().unwrap_or_default();
        let mut lines = report.lines();
        let figures: BTreeMap<&str, u64> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        if figures.is_empty() && f.ok() {
            self.stats.error(format!(
                "fork-query pid {} exited 0 without a report",
                f.pid
            ));
        }
        Stats::add(
            &self.stats.queries,
            figures.get("queries").copied().unwrap_or(0),
        );
        Stats::add(
            &self.stats.hash_queries,
            figures.get("queries").copied().unwrap_or(0),
        );
        Stats::add(
            &self.stats.rows_checked,
            figures.get("rows").copied().unwrap_or(0),
        );
        Stats::add(
            &self.stats.mismatches,
            figures.get("mismatches").copied().unwrap_or(0),
        );
        for message in lines {
            self.stats
                .error(format!("fork-query pid {}: {message}", f.pid));
        }
    }

    fn reap(&mut self) {
        for f in self.registry.reap() {
            self.finished(f);
        }
        for (pid, kind) in self.registry.kill_overdue() {
            log::error!("child {kind} pid {pid} ran past its deadline: killed");
        }
    }

    /// A hang: kill the children, write the summary, and leave at once
    /// (threads may be stuck inside a query).
    fn hang(&mut self, reason: String) -> ! {
        log::error!("hang: {reason}");
        self.registry.signal_all(libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.registry.live_count() > 0 && Instant::now() < deadline {
            signals::wait(Duration::from_millis(20));
            self.reap();
        }
        self.summary.hang = Some(reason);
        self.summary.stopped_by = "hang".into();
        self.summary.seconds = self.run_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        self.summary.children.started = self.children_started.load(Ordering::Relaxed);
        self.summary.settle(self.stats);
        publish(&self.summary, self.opts);
        // SAFETY: leaving without exit handlers (a thread may hold a session).
        unsafe { libc::_exit(3) }
    }

    fn check_deadlines(&mut self, process_start: Instant, activity: &Activity) {
        if let Some((worker, op, secs)) = activity.longest() {
            if secs > self.opts.query_timeout {
                self.hang(format!(
                    "worker {worker} has been in its {op} for {secs:.1} s (--query-timeout {} s)",
                    self.opts.query_timeout
                ));
            }
        }
        if process_start.elapsed().as_secs_f64() > self.opts.timeout {
            self.hang(format!(
                "the run exceeded --timeout {} s",
                self.opts.timeout
            ));
        }
    }

    /// Wait for the children: first for them to end, then TERM, then KILL.
    fn drain(&mut self, term_at_once: bool, process_start: Instant, activity: &Activity) {
        let start = Instant::now();
        let (mut termed, mut killed) = (false, false);
        while self.registry.live_count() > 0 {
            signals::wait(Duration::from_millis(100));
            self.reap();
            self.check_deadlines(process_start, activity);
            if !termed && (term_at_once || start.elapsed() > DRAIN_NATURAL) {
                let n = self.registry.signal_all(libc::SIGTERM);
                if n > 0 {
                    log::info!("sent SIGTERM to {n} children still running");
                }
                termed = true;
            }
            if termed && !killed && start.elapsed() > DRAIN_NATURAL + DRAIN_AFTER_TERM {
                let n = self.registry.signal_all(libc::SIGKILL);
                self.stats
                    .error(format!("{n} children did not stop after SIGTERM: killed"));
                killed = true;
            }
        }
    }
}

fn base_summary(opts: &Options, layout: &Layout, journal: &Journal) -> Summary {
    Summary {
        ok: false,
        exit_code: 1,
        stopped_by: String::new(),
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() },
        reexeced_from: opts.reexeced_from,
        version: env!("CARGO_PKG_VERSION"),
        sqlite_version: sqlite::library_version(),
        data_dir: layout.data_dir.display().to_string(),
        library_db: layout.library_db.display().to_string(),
        blobs_db: layout.blobs_db.display().to_string(),
        journal: journal.path().display().to_string(),
        items: opts.items,
        threads: opts.threads,
        sessions: opts.sessions,
        fork_gate: opts.fork_gate == OnOff::On,
        schema: Vec::new(),
        fill: None,
        seconds: 0.0,
        queries: 0,
        hash_queries: 0,
        rows_checked: 0,
        mismatches: 0,
        writes_committed: 0,
        children: ChildrenSummary::default(),
        faults_injected: opts
            .faults
            .iter()
            .map(|f| (f.name().to_string(), 0))
            .collect(),
        faults: Vec::new(),
        errors: Vec::new(),
        hang: None,
    }
}

/// Bound the set-up (schema and fill) by --timeout from another thread.
fn setup_watchdog(opts: &Options, base: Summary, done: &'static AtomicBool) {
    let (timeout, dest) = (opts.timeout, opts.summary.clone());
    std::thread::spawn(move || {
        let start = Instant::now();
        while !done.load(Ordering::Acquire) {
            if start.elapsed().as_secs_f64() > timeout {
                let mut summary = base;
                summary.hang = Some(format!(
                    "setting up the library (schema, fill) exceeded --timeout {timeout} s"
                ));
                summary.stopped_by = "hang".into();
                summary.exit_code = 3;
                log::error!("hang: {}", summary.hang.as_deref().unwrap_or(""));
                if let Some(dest) = dest {
                    let _ = summary.write(&dest);
                }
                // SAFETY: leaving at once; the main thread is stuck.
                unsafe { libc::_exit(3) };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

pub fn run(opts: &Options) -> i32 {
    log::set_role("server");
    log::set_quiet(opts.quiet);
    let process_start = Instant::now();
    signals::block();
    let Some(data_dir) = &opts.data_dir else {
        log::error!("--data-dir is required: Plex's data directory, where the databases are kept");
        return 2;
    };
    let specs = match resolve_spawn(&opts.spawn) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return 2;
        }
    };
    if opts.self_reexec && opts.reexeced_from.is_none() {
        return reexec();
    }
    sqlite::set_fork_gate(opts.fork_gate == OnOff::On);
    // SAFETY: getpid has no preconditions. No other thread runs yet.
    std::env::set_var(PARENT_MARKER, unsafe { libc::getpid() }.to_string());
    let startup_fds = faults::open_fds();
    exit_table::install();

    let layout = Layout::new(data_dir);
    if let Err(e) = layout.create() {
        log::error!("{e}");
        return 1;
    }
    let journal_path = opts
        .journal
        .clone()
        .unwrap_or_else(|| data_dir.join("plex-sim-journal.jsonl"));
    let journal = match Journal::open(&journal_path, "server") {
        Ok(j) => j,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let stats = Stats::default();
    let registry = Registry::default();
    let children_started = AtomicU64::new(0);
    let mut sup = Supervisor {
        opts,
        stats: &stats,
        registry: &registry,
        children_started: &children_started,
        run_start: None,
        summary: base_summary(opts, &layout, &journal),
    };
    log::info!(
        "SQLite {} at {}; {} items, {} threads, {} sessions",
        sup.summary.sqlite_version,
        layout.library_db.display(),
        opts.items,
        opts.threads,
        opts.sessions
    );

    // ---- set-up: schema and fill
    let catalog = Catalog { items: opts.items };
    let setup_done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    setup_watchdog(opts, sup.summary.clone(), setup_done);
    let prepared = library::prepare(&layout, &catalog, opts.fill_rows_per_insert);
    setup_done.store(true, Ordering::Release);
    match prepared {
        Ok((schema, fill)) => {
            sup.summary.schema = schema;
            let interrupted = fill.interrupted_by.clone();
            sup.summary.fill = Some(fill);
            if let Some(sig) = interrupted {
                log::info!("stopped by {sig} during the fill, after a committed batch");
                sup.summary.stopped_by = sig;
                sup.summary.settle(&stats);
                publish(&sup.summary, opts);
                return sup.summary.exit_code;
            }
        }
        Err(e) => {
            stats.error(format!("setting up the library: {e}"));
            sup.summary.stopped_by = "setup error".into();
            sup.summary.settle(&stats);
            publish(&sup.summary, opts);
            return sup.summary.exit_code;
        }
    }

    // ---- sessions, workers, spawner
    let library_pool = Pool::open("library", &layout.library_db, usize::from(opts.sessions));
    let blobs_pool = Pool::open(
        "blobs",
        &layout.blobs_db,
        usize::from(opts.sessions / 4).max(2),
    );
    let image = ExecImage::current();
    let (library_pool, blobs_pool, image) = match (library_pool, blobs_pool, image) {
        (Ok(l), Ok(b), Ok(i)) => (l, b, i),
        (l, b, i) => {
            let why = [
                l.err().map(|e| e.to_string()),
                b.err().map(|e| e.to_string()),
                i.err().map(|e| e.to_string()),
            ];
            stats.error(format!(
                "opening the sessions: {}",
                why.into_iter().flatten().collect::<Vec<_>>().join("; ")
            ));
            sup.summary.stopped_by = "setup error".into();
            sup.summary.settle(&stats);
            publish(&sup.summary, opts);
            return sup.summary.exit_code;
        }
    };
    let expected = Expected::new(catalog);
    let rendezvous = Rendezvous::default();
    let threads = usize::from(opts.threads);
    let activity = Activity::new(threads);
    let stop = AtomicBool::new(false);
    let workers_done = AtomicBool::new(false);
    let workers_finished = AtomicUsize::new(0);
    let spawner_finished = AtomicBool::new(false);
    let first_round_done = AtomicBool::new(false);
    let wrong_result = AtomicBool::new(opts.faults.contains(&Fault::WrongResult));
    let load = Workload {
        library: &library_pool,
        blobs: &blobs_pool,
        expected: &expected,
        stats: &stats,
        journal: &journal,
        rendezvous: &rendezvous,
        activity: &activity,
        stop: &stop,
        iterations: opts.iterations,
        wrong_result: &wrong_result,
        checkout_wait: CHECKOUT_WAIT,
    };
    let spawner = Spawner {
        opts,
        specs,
        layout: &layout,
        journal_path: journal.path(),
        image: &image,
        registry: &registry,
        rendezvous: &rendezvous,
        expected: &expected,
        stats: &stats,
        startup_fds: &startup_fds,
        stop: &stop,
        first_round_done: &first_round_done,
        workers_done: &workers_done,
        started: &children_started,
    };
    let duration = opts.duration.or(if opts.iterations.is_none() {
        Some(DEFAULT_DURATION_SECS)
    } else {
        None
    });
    let run_start = Instant::now();
    sup.run_start = Some(run_start);
    let mut stopped_by: Option<String> = None;

    std::thread::scope(|s| {
        for w in 0..threads {
            let (load, workers_finished) = (&load, &workers_finished);
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .stack_size(WORKER_STACK)
                .spawn_scoped(s, move || {
                    workload::run_worker(load, w);
                    workers_finished.fetch_add(1, Ordering::AcqRel);
                })
                .expect("start a worker thread");
        }
        let (spawner, spawner_finished) = (&spawner, &spawner_finished);
        std::thread::Builder::new()
            .name("spawner".into())
            .stack_size(WORKER_STACK)
            .spawn_scoped(s, move || {
                spawner.run();
                spawner_finished.store(true, Ordering::Release);
            })
            .expect("start the spawner thread");

        loop {
            if let Wake::Stop(sig) = signals::wait(Duration::from_millis(100)) {
                if stopped_by.is_none() {
                    log::info!(
                        "{}: stopping; current transactions finish, children get SIGTERM",
                        signals::name(sig)
                    );
                    stopped_by = Some(signals::name(sig));
                }
                stop.store(true, Ordering::Release);
                registry.signal_all(libc::SIGTERM);
            }
            sup.reap();
            // The run lasts at least until every kind and fault has started once.
            let first_round = first_round_done.load(Ordering::Acquire)
                || spawner_finished.load(Ordering::Acquire);
            if duration.is_some_and(|d| run_start.elapsed().as_secs_f64() >= d)
                && first_round
                && !stop.load(Ordering::Acquire)
            {
                stopped_by.get_or_insert_with(|| "duration".into());
                stop.store(true, Ordering::Release);
            }
            if workers_finished.load(Ordering::Acquire) == threads
                && !workers_done.load(Ordering::Acquire)
            {
                workers_done.store(true, Ordering::Release);
                rendezvous.close();
                stopped_by.get_or_insert_with(|| "iterations".into());
            }
            sup.check_deadlines(process_start, &activity);
            if workers_done.load(Ordering::Acquire) && spawner_finished.load(Ordering::Acquire) {
                break;
            }
        }
        sup.summary.seconds = run_start.elapsed().as_secs_f64();
        let termed = stopped_by.as_deref().is_some_and(|s| s.starts_with("SIG"));
        sup.drain(termed, process_start, &activity);
    });

    for e in library_pool.close().into_iter().chain(blobs_pool.close()) {
        stats.error(e);
    }
    if wrong_result.load(Ordering::Acquire) {
        stats.error("--fault wrong-result was not injected: no hash query ran".into());
    } else if opts.faults.contains(&Fault::WrongResult) {
        sup.summary
            .faults_injected
            .insert(Fault::WrongResult.name().into(), 1);
        sup.summary.faults.push(FaultOutcome {
            fault: Fault::WrongResult.name().into(),
            pid: None,
            injected: true,
            prevented: false,
            outcome: "a row of a hash query's result was altered before its check".into(),
        });
    }
    sup.summary.children.started = children_started.load(Ordering::Relaxed);
    sup.summary.stopped_by = stopped_by.unwrap_or_else(|| "iterations".into());
    sup.summary.settle(&stats);
    publish(&sup.summary, opts);
    sup.summary.exit_code
}
