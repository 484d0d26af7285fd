//! The executed helpers other than the Scanner (`--child KIND`): Tuner
//! Service, Script Host, Crash Uploader, Transcoder. Each checks it got the
//! server's whole environment, journals its start, serves for its lifetime
//! or until a stop signal, and exits 0.

use std::time::{Duration, Instant};

use crate::children::ChildKind;
use crate::cli::Options;
use crate::journal::Journal;
use crate::log;
use crate::signals::{self, Wake};

/// Set by the server in its own environment; a helper without it did not
/// inherit the server's environment (nor, then, `LD_PRELOAD`).
pub const PARENT_MARKER: &str = "PLEX_SIM_PARENT";

/// Exit code of a helper that did not get the server's environment.
pub const EXIT_NO_ENVIRONMENT: i32 = 4;

/// What every helper does first: block the stop signals, check the
/// environment, journal its start. Returns the journal, or the exit code.
pub fn start_helper(kind: &str, opts: &Options) -> Result<Journal, i32> {
    log::set_role(kind);
    log::set_quiet(opts.quiet);
    signals::block();
    let Some(path) = &opts.journal else {
        log::error!("--journal is required in a helper role");
        return Err(2);
    };
    if std::env::var_os(PARENT_MARKER).is_none() {
        log::error!(
            "{PARENT_MARKER} is not set: this helper did not inherit the server's environment"
        );
        return Err(EXIT_NO_ENVIRONMENT);
    }
    let journal = Journal::open(path, kind).map_err(|e| {
        log::error!("{e}");
        1
    })?;
    if let Err(e) = journal.child_started(kind) {
        log::error!("{e}");
        return Err(1);
    }
    Ok(journal)
}

/// Wait until `deadline` or a stop signal; returns the signal, if any.
pub fn serve_until(deadline: Instant) -> Option<i32> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        if let Wake::Stop(sig) = signals::wait(left.min(Duration::from_millis(200))) {
            return Some(sig);
        }
    }
}

pub fn run(kind: ChildKind, opts: &Options) -> i32 {
    if matches!(kind, ChildKind::Scanner | ChildKind::ForkQuery) {
        log::error!(
            "--child {} is not a helper role (the scanner runs with --scanner)",
            kind.name()
        );
        return 2;
    }
    let started = Instant::now();
    if let Err(code) = start_helper(kind.name(), opts) {
        return code;
    }
    let lifetime = opts
        .helper_ms
        .map(Duration::from_millis)
        .unwrap_or_else(|| kind.default_lifetime());
    match serve_until(started + lifetime) {
        Some(sig) => log::info!(
            "{}: stopped by {} after {:.2} s",
            kind.program_name(),
            signals::name(sig),
            started.elapsed().as_secs_f64()
        ),
        None => log::info!(
            "{}: done after {:.2} s",
            kind.program_name(),
            started.elapsed().as_secs_f64()
        ),
    }
    0
}
