//! `plex-pg-demo` (what `bash demo.sh` runs): the launcher's main job on a
//! built-in default, in about a minute. Not part of the package: it needs
//! plex-sim and a PostgreSQL it can throw away, and lives in its own crate
//! so the shipped `plex-pg-launcher` carries none of it.
//! A PostgreSQL (a throwaway cluster unless one is configured),
//! plex-sim — the stand-in for Plex — under the launcher in verify mode with
//! the shim preloaded, live progress (the fill, forks seen, pool checks
//! passed, alerts, statements run), and a closing table of what was checked.
//!
//! The demo runs `plex-pg-launcher` (next to this program) as a child, in
//! a process group of its own, so a Ctrl-C reaches only the demo: it then
//! sends TERM to the launcher, which stops plex-sim and its children within
//! the grace period, and the PostgreSQL cluster is stopped and removed
//! last. Nothing is left running, on success, error or interruption.
//!
//! Parts: [`server`] (the PostgreSQL), [`tail`] (following the logs),
//! [`tally`] (counting the event log), [`view`] (the live output),
//! [`incident`] (`--incident`: the January 2026 write-up's log lines, for
//! `tests/test_fork_fix.sh`), [`table`] (the closing table and verdict).

mod incident;
mod server;
mod table;
mod tail;
mod tally;
mod view;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use plex_pg_config::settings::Settings;
use plex_pg_launcher::cli::Options;
use serde_json::Value;

use incident::Incident;
use server::DemoServer;
use tail::Tail;
use tally::Tally;
use view::{thousands, View};

/// The command line: the launcher's options (`--shim`, `--mode`,
/// `--watcher`, `--events`, `--grace-period-ms` …), passed on to it, and the
/// demo's own.
#[derive(Parser, Debug)]
#[command(
    name = "plex-pg-demo",
    version,
    about = "Run plex-sim (a stand-in for Plex) on a throwaway PostgreSQL under plex-pg-launcher in verify mode, with live progress and a closing table of what was checked; about a minute, nothing left running"
)]
struct Cli {
    #[command(flatten)]
    options: Options,
    #[command(flatten)]
    args: DemoArgs,
}

fn main() {
    let cli = Cli::parse();
    let settings = match cli.options.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("plex-pg-demo: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(&settings, &cli.options, &cli.args));
}

/// The demo's own options.
#[derive(Args, Debug, Clone, Default)]
pub struct DemoArgs {
    /// plex-sim, the stand-in for Plex  [default: next to this program]
    #[arg(long, value_name = "PATH")]
    pub plex_sim: Option<PathBuf>,
    /// Movies in the demo library  [default: 10000; 40000 with --incident]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5_000_000))]
    pub items: Option<u32>,
    /// Seconds plex-sim serves after its fill  [default: 30; 20 with --incident]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub duration: Option<u32>,
    /// Keep the run's files here (event log, logs, plex-sim's summary and
    /// journal); must be empty or not exist  [default: a temporary directory,
    /// removed unless the run fails]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print the January 2026 write-up's log lines as they happen (hash query
    /// started, fork, the child's handler, its own connection, query done),
    /// with the incident's 40,000-row query and forked children only
    #[arg(long)]
    pub incident: bool,
    /// Internal: keep a throwaway cluster for a demo (see `server`).
    #[arg(long, hide = true)]
    pub cluster_keeper: bool,
}

/// Movies and seconds of the default demo: the fill through the shim takes
/// about 10 s for 10,000 movies on a 2-core machine, a throwaway cluster
/// about 5 s, then 30 s of serving: about a minute in all.
const DEFAULT_ITEMS: u32 = 10_000;
const DEFAULT_SECONDS: u32 = 30;
/// The incident's query returns 40,000 rows.
const INCIDENT_ITEMS: u32 = 40_000;
const INCIDENT_SECONDS: u32 = 20;
/// The launcher's grace period after TERM, unless `--grace-period-ms` says.
const GRACE_MS: u64 = 10_000;
/// How often the demo reads the logs and redraws.
const TICK: Duration = Duration::from_millis(100);

/// Exit status: the demo passed (0), a check failed (1), it could not start
/// (2), it was interrupted (130).
pub fn run(settings: &Settings, options: &Options, args: &DemoArgs) -> i32 {
    if args.cluster_keeper {
        return server::keep_cluster();
    }
    let plan = match Plan::new(settings, options, args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("plex-pg-demo: {e}");
            return 2;
        }
    };
    install_signal_handlers();
    let mut view = View::new();
    view.line(&format!(
        "plex-pg demo: plex-sim (the stand-in for Plex) on PostgreSQL through the shim, under the launcher in {} mode",
        plan.mode
    ));
    view.line(&format!(
        "shim {}, plex-sim {}",
        plan.shim.display(),
        plan.plex_sim.display()
    ));
    let configured = DemoServer::configured(settings);
    view.line(if configured {
        "PostgreSQL: using the configured server"
    } else {
        "PostgreSQL: none configured, starting a throwaway cluster (initdb, a few seconds)"
    });
    let server = if configured {
        DemoServer::configured_server(settings)
    } else {
        DemoServer::throwaway(&interrupted)
    };
    let mut server = match server {
        Ok(s) => s,
        Err(e) => {
            view.line(&format!("cannot go on: {e}"));
            let _ = plan.work.finish(false);
            return if interrupted() { 130 } else { 2 };
        }
    };
    view.line(&format!("PostgreSQL: {}", server.describe()));
    let code = run_with_server(&plan, &mut server, &mut view);
    let stopped = server.finish();
    view.line(&format!("PostgreSQL: {stopped}"));
    drop(server);
    let kept = plan.work.finish(code != 0 && code != 130);
    if let Some(dir) = kept {
        view.line(&format!("the run's files are kept in {}", dir.display()));
    }
    code
}

/// Everything decided before anything starts.
struct Plan {
    launcher: PathBuf,
    plex_sim: PathBuf,
    shim: PathBuf,
    mode: String,
    watcher: Option<String>,
    grace_ms: u64,
    poll_ms: Option<String>,
    events: PathBuf,
    items: u32,
    seconds: u32,
    incident: bool,
    work: WorkDir,
}

impl Plan {
    fn new(settings: &Settings, options: &Options, args: &DemoArgs) -> Result<Plan, String> {
        let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let here = me.parent().map(Path::to_path_buf).unwrap_or_default();
        let launcher = executable(
            &here.join("plex-pg-launcher"),
            "plex-pg-launcher next to plex-pg-demo",
        )
        .map_err(|e| {
            format!("{e}. `cargo build --release --workspace` builds both in target/release")
        })?;
        let plex_sim = match &args.plex_sim {
            Some(p) => executable(p, "--plex-sim")?,
            None => executable(&here.join("plex-sim"), "plex-sim next to plex-pg-demo").map_err(|e| {
                format!(
                    "{e}. plex-sim is the stand-in for Plex the demo runs; `cargo build --release --workspace` builds it \
                     next to plex-pg-demo in target/release, or pass --plex-sim PATH"
                )
            })?,
        };
        let shim = match &options.shim {
            Some(_) => settings.launcher.shim.clone(),
            None if here.join("libplex_pg_shim.so").is_file() => here.join("libplex_pg_shim.so"),
            None => settings.launcher.shim.clone(),
        };
        if !shim.is_file() {
            return Err(format!(
                "the shim {} does not exist (looked next to plex-pg-demo, then launcher.shim): \
                 build it with `cargo build --release --workspace`, or pass --shim PATH",
                shim.display()
            ));
        }
        if options.user.is_some() {
            return Err(
                "--user is not supported by the demo: it runs everything as the user who starts it"
                    .into(),
            );
        }
        if options.events.as_deref() == Some("-") {
            return Err("--events - (standard output) cannot be used with the demo, whose output is the progress: give a file".into());
        }
        let grace_ms = match &options.grace_period_ms {
            Some(_) => settings.launcher.grace_period.as_millis() as u64,
            None => GRACE_MS,
        };
        let work = WorkDir::new(args.work_dir.as_deref())?;
        let events = match &options.events {
            Some(path) => PathBuf::from(path),
            None => work.path.join("events.jsonl"),
        };
        Ok(Plan {
            launcher,
            plex_sim,
            shim,
            mode: options.mode.clone().unwrap_or_else(|| "verify".into()),
            watcher: options.watcher.clone(),
            grace_ms,
            poll_ms: options.poll_interval_ms.clone(),
            events,
            items: args.items.unwrap_or(if args.incident {
                INCIDENT_ITEMS
            } else {
                DEFAULT_ITEMS
            }),
            seconds: args.duration.unwrap_or(if args.incident {
                INCIDENT_SECONDS
            } else {
                DEFAULT_SECONDS
            }),
            incident: args.incident,
            work,
        })
    }

    fn summary_path(&self) -> PathBuf {
        self.work.path.join("plex-sim-summary.json")
    }

    fn log_path(&self) -> PathBuf {
        self.work.path.join("demo.log")
    }

    /// The launcher's command line, with plex-sim after `--`.
    fn command(&self, server: &DemoServer) -> Command {
        let mut cmd = Command::new(&self.launcher);
        cmd.args([
            "--mode",
            &self.mode,
            "--grace-period-ms",
            &self.grace_ms.to_string(),
        ]);
        if let Some(w) = &self.watcher {
            cmd.args(["--watcher", w]);
        }
        if let Some(p) = &self.poll_ms {
            cmd.args(["--poll-interval-ms", p]);
        }
        cmd.arg("--events")
            .arg(&self.events)
            .arg("--shim")
            .arg(&self.shim)
            .arg("--")
            .arg(&self.plex_sim);
        cmd.arg("--data-dir").arg(self.work.path.join("plex"));
        cmd.args([
            "--items",
            &self.items.to_string(),
            "--duration",
            &self.seconds.to_string(),
        ]);
        if self.incident {
            // One worker: one hash query in flight at a time in the parent;
            // children forked without exec, as in the incident.
            cmd.args(["--threads", "1", "--spawn", "fork-query=1"]);
        }
        cmd.arg("--summary").arg(self.summary_path());
        cmd.envs(server.env());
        if self.incident {
            // The shim's "connected" lines and the launcher's process lines.
            cmd.env("PLEX_PG_LOG_LEVEL", "debug");
        }
        // A demo started under a launcher must not report to that one.
        cmd.env_remove("PLEX_PG_SUPERVISOR")
            .env_remove("PLEX_PG_EVENTS");
        cmd
    }
}

/// `path` if it is an executable file, else why not.
fn executable(path: &Path, what: &str) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path.to_path_buf()),
        Ok(_) => Err(format!(
            "{} ({what}) is not an executable file",
            path.display()
        )),
        Err(e) => Err(format!("{} ({what}) cannot be used: {e}", path.display())),
    }
}

/// The run's directory: given (kept), or temporary (removed unless the run failed).
struct WorkDir {
    path: PathBuf,
    temporary: bool,
}

impl WorkDir {
    fn new(given: Option<&Path>) -> Result<WorkDir, String> {
        match given {
            Some(dir) => {
                let empty = match std::fs::read_dir(dir) {
                    Ok(mut entries) => entries.next().is_none(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                    Err(e) => return Err(format!("--work-dir {}: {e}", dir.display())),
                };
                if !empty {
                    return Err(format!(
                        "--work-dir {} is not empty: give a new or empty directory",
                        dir.display()
                    ));
                }
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create --work-dir {}: {e}", dir.display()))?;
                Ok(WorkDir {
                    path: dir.to_path_buf(),
                    temporary: false,
                })
            }
            None => {
                let base = std::env::var_os("TMPDIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| "/tmp".into());
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let path = base.join(format!("plex-pg-demo.{}.{nanos}", std::process::id()));
                std::fs::create_dir_all(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                Ok(WorkDir {
                    path,
                    temporary: true,
                })
            }
        }
    }

    /// Remove a temporary directory unless `keep`; returns the directory if it stays.
    fn finish(&self, keep: bool) -> Option<PathBuf> {
        if self.temporary && !keep {
            let _ = std::fs::remove_dir_all(&self.path);
            None
        } else {
            Some(self.path.clone())
        }
    }
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::Relaxed);
}

/// INT, TERM and HUP are noted, and acted on by the demo's loop.
fn install_signal_handlers() {
    catch(
        &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP],
        on_signal,
        libc::SA_RESTART,
    );
}

/// Run `handler` (which must only store to an atomic) on each of `signals`.
fn catch(signals: &[libc::c_int], handler: extern "C" fn(libc::c_int), flags: libc::c_int) {
    for &sig in signals {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = flags;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

fn interrupted() -> bool {
    SIGNAL.load(Ordering::Relaxed) != 0
}

/// What the run is doing, for the status line.
#[derive(PartialEq)]
enum Phase {
    Filling,
    Serving,
    Stopping,
}

fn run_with_server(plan: &Plan, server: &mut DemoServer, view: &mut View) -> i32 {
    let mut log = match std::fs::File::create(plan.log_path()) {
        Ok(f) => f,
        Err(e) => {
            view.line(&format!("cannot create {}: {e}", plan.log_path().display()));
            return 2;
        }
    };
    // Follow the event log from where it ends before the launcher starts:
    // its `start` line (the mode and watcher actually running, for the
    // closing table) is written at once, before the demo would look.
    let mut events = Tail::new(&plan.events, false);
    let mut cmd = plan.command(server);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            view.line(&format!("cannot start {}: {e}", plan.launcher.display()));
            return 2;
        }
    };
    view.line(&format!(
        "started plex-sim under the launcher: {} movies, {} s of serving, event log {}",
        thousands(i64::from(plan.items)),
        plan.seconds,
        plan.events.display()
    ));
    // The tree's stderr (launcher, plex-sim, shim) goes to demo.log; the
    // incident view also reads it.
    let (tx, lines) = mpsc::channel::<String>();
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }

    let mut server_log: Option<Tail> = None;
    let mut incident = plan.incident.then(Incident::default);
    let mut tally = Tally::default();
    let mut phase = Phase::Filling;
    let mut movies: Option<i64> = None;
    let mut statements: Option<i64> = None;
    let mut last_poll: Option<Instant> = None;
    let mut term_sent: Option<Instant> = None;
    let mut killed = false;
    let started = Instant::now();
    // plex-sim bounds itself (--timeout, 600 s by default); this bounds the demo.
    let limit = Duration::from_secs(u64::from(plan.seconds) + 900);
    let grace = Duration::from_millis(plan.grace_ms);

    let status = loop {
        // The server's log first: a query in flight at a fork started before it.
        if let (Some(tail), Some(inc)) = (server_log.as_mut(), incident.as_mut()) {
            for line in tail.lines() {
                inc.server_line(&line, view);
            }
        }
        read_events(&mut events, &mut tally, &mut incident, view);
        while let Ok(line) = lines.try_recv() {
            let _ = writeln!(log, "{line}");
            if let Some(inc) = incident.as_mut() {
                inc.stderr_line(&line, view);
            }
        }

        if last_poll.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_poll = Some(Instant::now());
            statements = server.statements();
            if phase == Phase::Filling {
                movies = server.movies().or(movies);
                if movies.is_some_and(|m| m >= i64::from(plan.items)) || tally.forks() > 0 {
                    phase = Phase::Serving;
                    view.line(&format!(
                        "library ready: {} movies in PostgreSQL; plex-sim now queries, writes and starts children for {} s",
                        thousands(movies.unwrap_or(0)),
                        plan.seconds
                    ));
                    if incident.is_some() {
                        server_log = server.log_statements().map(|p| Tail::new(&p, false));
                        if let Some(inc) = incident.as_mut() {
                            inc.server_log = server_log.is_some();
                        }
                        if server_log.is_none() {
                            view.line("(the server's statement log is not ours to read: no hash-query start/done lines)");
                        }
                    }
                }
            }
        }
        // The incident view prints its own lines once plex-sim serves.
        if incident.is_none() || phase == Phase::Filling {
            view.status(&status_text(&phase, &tally, movies, statements, plan.items));
        }

        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => {
                view.line(&format!("cannot wait for the launcher: {e}"));
                break None;
            }
        }
        let overdue = started.elapsed() > limit;
        if (interrupted() || overdue) && term_sent.is_none() {
            phase = Phase::Stopping;
            view.line(&if overdue {
                format!("the run took more than {} s: stopping it", limit.as_secs())
            } else {
                "interrupted: TERM to the launcher, which stops plex-sim and its children"
                    .to_string()
            });
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            term_sent = Some(Instant::now());
        }
        if let Some(t) = term_sent {
            if !killed && t.elapsed() > grace + Duration::from_secs(5) {
                view.line("the launcher did not stop within its grace period: KILL (its traced children die with it)");
                let _ = child.kill();
                killed = true;
            }
        }
        std::thread::sleep(TICK);
    };
    // The last lines.
    read_events(&mut events, &mut tally, &mut incident, view);
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        let _ = writeln!(log, "{line}");
        if let Some(inc) = incident.as_mut() {
            inc.stderr_line(&line, view);
        }
    }
    if let (Some(tail), Some(inc)) = (server_log.as_mut(), incident.as_mut()) {
        for line in tail.lines() {
            inc.server_line(&line, view);
        }
    }
    view.clear_status();

    let sim: Option<Value> = std::fs::read(plan.summary_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let launcher_code = status.and_then(|s| s.code());
    let outcome = table::Outcome {
        tally: &tally,
        sim: sim.as_ref(),
        launcher_code,
        server: server.describe(),
        interrupted: term_sent.is_some(),
    };
    let (text, verdict) = table::render(&outcome);
    print!("{text}");
    if let Some(inc) = &incident {
        for line in inc.verdict(plan.items) {
            println!("  {line}");
        }
    }
    if verdict.pass {
        println!(
            "  PASS: every query returned exactly what was written, and every child plex-sim started was watched and \
             left its parent's PostgreSQL sessions alone ({:.0} s)\n",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("  FAIL:");
        for p in &verdict.problems {
            println!("    - {p}");
        }
        println!(
            "  (the tree's log is {}; the event log {})\n",
            plan.log_path().display(),
            plan.events.display()
        );
    }
    let _ = std::io::stdout().flush();
    if interrupted() {
        130
    } else if verdict.pass {
        0
    } else {
        1
    }
}

/// New lines of the launcher's event log: counted, and narrated by the
/// incident view or, in the plain view, shown when they are alerts.
fn read_events(
    events: &mut Tail,
    tally: &mut Tally,
    incident: &mut Option<Incident>,
    view: &mut View,
) {
    for line in events.lines() {
        if let Some(event) = tally.add(&line) {
            if let Some(inc) = incident.as_mut() {
                inc.event(&event, view);
            } else if let Some(alert) = view::alert(&event) {
                view.line(&alert);
            }
        }
    }
}

fn status_text(
    phase: &Phase,
    t: &Tally,
    movies: Option<i64>,
    statements: Option<i64>,
    items: u32,
) -> String {
    let statements = statements.map(thousands).unwrap_or_else(|| "?".into());
    match phase {
        Phase::Filling => format!(
            "filling the library through the shim: {} of {} movies in PostgreSQL",
            thousands(movies.unwrap_or(0)),
            thousands(i64::from(items))
        ),
        Phase::Serving | Phase::Stopping => format!(
            "{}forks seen {} · pool checks ok {} · violations {} · alerts {} · statements on PostgreSQL {}",
            if *phase == Phase::Stopping { "stopping: " } else { "" },
            t.forks(),
            t.pool_checks_ok,
            t.violations,
            t.violations + t.fd_uses,
            statements
        ),
    }
}
