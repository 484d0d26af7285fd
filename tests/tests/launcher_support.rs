//! Shared by the `launcher_*` tests (included with `#[path]`): run the
//! release `plex-pg-launcher` with a bounded wait, capture its output and
//! read its event log back (as JSON values, or typed:
//! [`Run::records`]); run `plex-pg-launcher check`; plant files as Plex's
//! user would. Compiled on its own too, as a test binary with no tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plex_pg_launcher::events::{self, Record, Value};
use plex_pg_tests::{artifact, TempDir};

/// A finished launcher run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
    pub elapsed: Duration,
    /// The run's directory, kept until the run is dropped.
    pub dir: TempDir,
}

impl Run {
    /// The event log, typed.
    pub fn records(&self) -> Vec<Record> {
        self.events
            .iter()
            .map(|v| {
                serde_json::from_value::<events::Line>(v.clone())
                    .unwrap_or_else(|e| panic!("{e}: {v}\n{}", self.dump()))
                    .record
            })
            .collect()
    }

    /// The one `pool_check` record of `pid`.
    pub fn pool_check(&self, pid: i64) -> Record {
        let found: Vec<Record> = self
            .records()
            .into_iter()
            .filter(|r| matches!(r, Record::PoolCheck { pid: p, .. } if i64::from(*p) == pid))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one pool_check for pid {pid}, got {found:?}\n{}",
            self.dump()
        );
        found.into_iter().next().unwrap()
    }

    /// Events named `name`.
    pub fn events(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    /// The one event named `name` about `pid`.
    pub fn event_for(&self, name: &str, pid: i64) -> &Value {
        let found: Vec<&Value> = self
            .events(name)
            .into_iter()
            .filter(|e| e["pid"] == pid)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {name} event for pid {pid}, got {found:?}\n{}",
            self.dump()
        );
        found[0]
    }

    /// The value of a `key: value` line printed by fork-probe.
    pub fn said(&self, key: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
    }

    /// The human log limits repeats of a violation: for each process, fd
    /// and syscall, at most `max_full` lines in full, and those plus the
    /// counts of the "… the same … N more time(s)" lines make exactly the
    /// `inherited_fd_use` records of the event log (which keeps every one).
    /// Returns the most records one of them had.
    pub fn assert_repeats_limited(&self, max_full: usize) -> usize {
        use std::collections::BTreeMap;
        let mut records: BTreeMap<(i64, i64, String), usize> = BTreeMap::new();
        for u in self.events("inherited_fd_use") {
            let key = (
                u["pid"].as_i64().unwrap(),
                u["fd"].as_i64().unwrap(),
                u["syscall"].as_str().unwrap().to_string(),
            );
            *records.entry(key).or_default() += 1;
        }
        for ((pid, fd, syscall), &n) in &records {
            let full_start = format!("FORK-SAFETY VIOLATION: process {pid} (thread ");
            let full_mid = format!(") called {syscall} on fd {fd}, ");
            let count_start =
                format!("the same FORK-SAFETY VIOLATION of process {pid} ({syscall} on fd {fd}, ");
            let mut full = 0;
            let mut counted = 0;
            for line in self.stderr.lines() {
                if let Some(i) = line.find(&full_start) {
                    if line[i..].contains(&full_mid) {
                        full += 1;
                    }
                } else if let Some(i) = line.find(&count_start) {
                    let rest = &line[i + count_start.len()..];
                    let number = rest
                        .split(") ")
                        .nth(1)
                        .and_then(|r| r.split(' ').next())
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or_else(|| panic!("no count in {line:?}"));
                    counted += number;
                }
            }
            assert!(
                full >= 1 && full <= max_full,
                "process {pid}'s {syscall} on fd {fd}: {full} lines in full (at most {max_full}), {n} records\n{}",
                self.stderr
            );
            assert_eq!(
                full + counted,
                n,
                "process {pid}'s {syscall} on fd {fd}: {full} in full + {counted} counted, {n} records\n{}",
                self.stderr
            );
        }
        records.values().copied().max().unwrap_or(0)
    }

    pub fn dump(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}--- events\n{}",
            self.code,
            self.elapsed,
            self.stdout,
            self.stderr,
            self.events
                .iter()
                .map(|e| format!("{e}\n"))
                .collect::<String>()
        )
    }

    pub fn summary(&self) -> &Value {
        let s = self.events("summary");
        assert_eq!(s.len(), 1, "one summary expected\n{}", self.dump());
        s[0]
    }
}

/// A launcher command line to build on, with the event log in `dir` and
/// the release shim preloaded.
pub struct Launcher {
    pub cmd: Command,
    pub dir: TempDir,
    /// Passed as `--shim`; the release shim unless a test changes it.
    pub shim: PathBuf,
    /// Passed as `--events`; `events.jsonl` in `dir` unless a test changes it.
    pub events: PathBuf,
}

impl Default for Launcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Launcher {
    pub fn new() -> Launcher {
        let dir = TempDir::new("launcher-test");
        let mut cmd = Command::new(artifact("plex-pg-launcher"));
        let events = dir.path().join("events.jsonl");
        // No configuration file of the machine may leak in.
        cmd.env("PLEX_PG_CONFIG", "/dev/null");
        cmd.env_remove("PLEX_PG_SUPERVISOR");
        Launcher {
            cmd,
            dir,
            shim: plex_pg_tests::shim(),
            events,
        }
    }

    pub fn events_path(&self) -> PathBuf {
        self.events.clone()
    }

    /// Start it; `between` runs while it is running (to send signals).
    pub fn run_with(mut self, command: &[&str], limit: Duration, between: impl FnOnce(u32)) -> Run {
        self.cmd
            .arg("--events")
            .arg(&self.events)
            .arg("--shim")
            .arg(&self.shim)
            .arg("--")
            .args(command);
        let out = self.dir.path().join("stdout");
        let err = self.dir.path().join("stderr");
        self.cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let start = Instant::now();
        let mut child = self.cmd.spawn().expect("start plex-pg-launcher");
        between(child.id());
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "plex-pg-launcher did not exit within {limit:?}\n--- stderr\n{}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = start.elapsed();
        let events = match std::fs::symlink_metadata(self.events_path()) {
            // A run refused before start (exit 2) may leave a planted, non-JSON file there.
            Ok(m) if m.is_file() && code != Some(2) => events::read(&self.events_path()).unwrap(),
            _ => Vec::new(),
        };
        Run {
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
            events,
            elapsed,
            dir: self.dir,
        }
    }

    pub fn run(self, command: &[&str], limit: Duration) -> Run {
        self.run_with(command, limit, |_| {})
    }
}

/// fork-probe, the stand-in for the shim's side.
pub fn probe() -> String {
    artifact("fork-probe").display().to_string()
}

/// Wait (bounded) until `path` exists.
pub fn wait_for_file(path: &Path, limit: Duration) -> bool {
    plex_pg_tests::cluster::wait_until(limit, || path.exists())
}

/// `plex-pg-launcher check` with `args` and `env` added to the test's
/// environment: its exit status, and its standard output then error.
pub fn check<K, V>(args: &[&str], env: impl IntoIterator<Item = (K, V)>) -> (Option<i32>, String)
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let out = Command::new(artifact("plex-pg-launcher"))
        .arg("check")
        .args(args)
        .envs(env)
        .output()
        .expect("run check");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The uid of `user`.
pub fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory owned by `nobody`, as Plex's user owns its log directory.
pub fn service_user_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid_of("nobody")), None).unwrap();
    chmod(&dir, 0o755);
    dir
}

/// The set-up of the planted-link attacks: the launcher drops to `nobody`,
/// whose log directory (returned) is where the attacker plants names.
pub fn as_service_user(l: &mut Launcher) -> PathBuf {
    l.cmd.arg("--user").arg("nobody");
    service_user_dir(l.dir.path(), "logs")
}

/// `dir/name` made a symbolic link to `target` by `nobody` (the link
/// itself owned by it, as if Plex's user had planted it).
pub fn plant_symlink(dir: &Path, name: &str, target: &Path) -> PathBuf {
    let planted = dir.join(name);
    std::os::unix::fs::symlink(target, &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(uid_of("nobody")), None).unwrap();
    planted
}
