//! The command line: every option of the server role, and the hidden ones
//! the server passes to the helpers it executes (`--child KIND`,
//! `--scanner`, `--reexeced-from PID`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::children::{ChildKind, Method};
use crate::faults::Fault;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "plex-sim",
    version,
    about = "A stand-in for Plex Media Server: its library databases, its worker threads and the ways it starts children",
    after_help = "Exit status: 0 every check passed; 1 a result was wrong or an error happened; 2 bad usage; 3 a hang (--query-timeout or --timeout).\n\
                  Child kinds: tuner, script-host, crash-uploader, transcoder, scanner, fork-query.\n\
                  Methods: fork (fork+exec), vfork (vfork+exec), posix-spawn; fork-query is always fork without exec."
)]
pub struct Options {
    /// Plex's data directory: databases go to `<DIR>/Plug-in Support/Databases/`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Movies in the library (metadata items with a NULL hash, each with a media item and a part).
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(i64).range(1..=5_000_000))]
    pub items: i64,

    /// Rows per INSERT statement in the fill (1: one row a statement, as Plex writes).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=500))]
    pub fill_rows_per_insert: i64,

    /// Worker threads running queries (544 KiB stacks, as Plex's).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,

    /// Database sessions (connections) on the library database.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub sessions: u16,

    /// Run this long (default 30 s unless --iterations is given).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<f64>,

    /// Each worker runs this many operations, then the run ends.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,

    /// Start children of KIND by METHOD, RATE per second (default 1); repeatable; `none` for no children.
    /// Without --spawn: a Plex-like mix of every kind.
    #[arg(long = "spawn", value_name = "KIND[:METHOD][=RATE]", value_parser = parse_spawn)]
    pub spawn: Vec<SpawnArg>,

    /// Transcoders started per burst (all within a second).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub transcoder_burst: u32,

    /// How long every executed helper (tuner, script host, transcoder) serves, in ms (default: per kind).
    #[arg(long, value_name = "MS")]
    pub helper_ms: Option<u64>,

    /// Media parts each Scanner writes.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub scanner_parts: u64,

    /// Inject a fault, once (repeatable).
    #[arg(long = "fault", value_enum, value_name = "FAULT")]
    pub faults: Vec<Fault>,

    /// Re-execute at start-up; the first process exits while the re-executed one serves.
    #[arg(long)]
    pub self_reexec: bool,

    /// Keep other threads out of SQLite while forking (see docs/plex-sim.md).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub fork_gate: OnOff,

    /// How long each child start waits for a worker to be half-way through the hash query, in ms.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub mid_query_wait_ms: u64,

    /// A query running longer than this is a hang.
    #[arg(long, default_value_t = 60.0, value_name = "SECS", value_parser = parse_seconds)]
    pub query_timeout: f64,

    /// Hard bound on the whole run (fill included); exceeding it is a hang.
    #[arg(long, default_value_t = 600.0, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: f64,

    /// Write the JSON summary to FILE (atomically), or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub summary: Option<String>,

    /// Append committed writes and child starts here, one JSON object a line
    /// (default: `<DIR>/plex-sim-journal.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Only warnings and errors on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// Helper role: run as the named Plex helper (set by plex-sim for its children).
    #[arg(long, hide = true, value_enum, value_name = "KIND")]
    pub child: Option<ChildKind>,

    /// Helper role: the Plex Media Scanner, writing media parts.
    #[arg(long, hide = true)]
    pub scanner: bool,

    /// Set on the re-executed process of --self-reexec.
    #[arg(long, hide = true, value_name = "PID")]
    pub reexeced_from: Option<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// One `--spawn` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpawnArg {
    None,
    Spec(SpawnSpec),
}

/// Children of one kind, started by one method, at a rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpawnSpec {
    pub kind: ChildKind,
    pub method: Method,
    /// Starts per second (a Transcoder start is a burst).
    pub rate: f64,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be more than 0 and at most 86400 seconds"))
    }
}

fn parse_spawn(s: &str) -> Result<SpawnArg, String> {
    if s == "none" {
        return Ok(SpawnArg::None);
    }
    let (head, rate) = match s.split_once('=') {
        Some((h, r)) => {
            let rate: f64 = r
                .parse()
                .map_err(|_| format!("rate {r:?} is not a number (starts per second)"))?;
            if !(rate.is_finite() && rate > 0.0 && rate <= 50.0) {
                return Err(format!(
                    "rate {r} must be more than 0 and at most 50 per second"
                ));
            }
            (h, rate)
        }
        None => (s, 1.0),
    };
    let (kind_name, method_name) = match head.split_once(':') {
        Some((k, m)) => (k, Some(m)),
        None => (head, None),
    };
    let kind = ChildKind::from_str(kind_name, false).map_err(|_| {
        format!("unknown child kind {kind_name:?}: one of tuner, script-host, crash-uploader, transcoder, scanner, fork-query, or none")
    })?;
    let method = match method_name {
        None => kind.default_method(),
        Some(m) => Method::from_str(m, false)
            .map_err(|_| format!("unknown method {m:?}: one of fork, vfork, posix-spawn"))?,
    };
    if kind == ChildKind::ForkQuery && method != Method::Fork {
        return Err("fork-query is a fork without exec: its method can only be fork".into());
    }
    Ok(SpawnArg::Spec(SpawnSpec { kind, method, rate }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_values_parse() {
        assert_eq!(
            parse_spawn("tuner:vfork=2").unwrap(),
            SpawnArg::Spec(SpawnSpec {
                kind: ChildKind::Tuner,
                method: Method::Vfork,
                rate: 2.0
            })
        );
        assert_eq!(
            parse_spawn("scanner").unwrap(),
            SpawnArg::Spec(SpawnSpec {
                kind: ChildKind::Scanner,
                method: Method::Fork,
                rate: 1.0
            })
        );
        assert_eq!(parse_spawn("none").unwrap(), SpawnArg::None);
        assert!(parse_spawn("tunr")
            .unwrap_err()
            .contains("unknown child kind"));
        assert!(parse_spawn("tuner:clone")
            .unwrap_err()
            .contains("unknown method"));
        assert!(parse_spawn("tuner=0").unwrap_err().contains("more than 0"));
        assert!(parse_spawn("fork-query:vfork").is_err());
    }
}
