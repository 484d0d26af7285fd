//! Running a measured command: its wall time, and the resident memory of
//! the processes that matter in it, sampled from `/proc` while it runs (the
//! last sample before a process exits is its memory after the workload).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often memory is sampled: cheap enough (one small `/proc` read per
/// watched process) not to disturb what is measured.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Resident memory of one process, in KiB, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak so far.
    pub peak_kib: u64,
}

impl Memory {
    pub fn of(pid: i32) -> Option<Memory> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(Memory {
            rss_kib: status_field(&text, "VmRSS:")?,
            peak_kib: status_field(&text, "VmHWM:")?,
        })
    }
}

/// A `kB` field of `/proc/<pid>/status` or `smaps_rollup`.
/// The load averages (1, 5, 15 min) as `/proc/loadavg` gives them, e.g.
/// `1.87 1.75 1.68`; empty when it cannot be read.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn status_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The oldest child of `pid` (a launcher's first child is the command it started).
pub fn first_child(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Which processes of a run to sample, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watch {
    /// The process started.
    Top,
    /// The first child of the process started.
    FirstChild,
}

/// What a run gave.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub wall: Duration,
    pub timed_out: bool,
    /// The last sample of each watched process.
    pub memory: BTreeMap<Watch, Memory>,
}

/// Run `cmd` in a process group of its own (standard output and error to
/// `log`), killing the group after `limit`, sampling the memory of the `watch`ed processes.
pub fn run_sampled(
    cmd: &mut Command,
    log: &std::path::Path,
    limit: Duration,
    watch: &[Watch],
) -> Outcome {
    let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let err = out.try_clone().unwrap();
    let started = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let memory = Arc::new(Mutex::new(BTreeMap::new()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (memory, done, watch) = (memory.clone(), done.clone(), watch.to_vec());
        std::thread::spawn(move || {
            let mut child_pid: Option<i32> = None;
            while !done.load(Ordering::Acquire) {
                for w in &watch {
                    let p = match w {
                        Watch::Top => Some(pid),
                        Watch::FirstChild => {
                            if child_pid.is_none() {
                                child_pid = first_child(pid);
                            }
                            child_pid
                        }
                    };
                    if let Some(m) = p.and_then(Memory::of) {
                        memory.lock().unwrap().insert(*w, m);
                    }
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > limit {
            timed_out = true;
            // SAFETY: signalling the process group made for this command.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            break child.wait().expect("wait");
        }
        // Short naps: the wall time is read to within a millisecond.
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = started.elapsed();
    done.store(true, Ordering::Release);
    sampler.join().unwrap();
    let memory = memory.lock().unwrap().clone();
    Outcome {
        code: status.code(),
        wall,
        timed_out,
        memory,
    }
}

/// The last lines of a log, for a failure message.
pub fn tail(log: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field(text, "VmRSS:"), Some(1024));
        assert_eq!(status_field(text, "VmSwap:"), None);
    }

    #[test]
    fn samples_a_running_process() {
        let dir = std::env::temp_dir().join(format!("plex-pg-bench-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let out = run_sampled(
            Command::new("sleep").arg("0.3"),
            &log,
            Duration::from_secs(10),
            &[Watch::Top],
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(out.code, Some(0));
        assert!(out.wall >= Duration::from_millis(300), "{:?}", out.wall);
        assert!(out.memory[&Watch::Top].rss_kib > 0);
    }
}
