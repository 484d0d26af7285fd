//! The launcher as a container's entrypoint: PID 1 of its own PID namespace
//! (`unshare --pid --fork --mount-proc`, what `docker run` gives an
//! ENTRYPOINT), running plex-sim, the stand-in for Plex, with the shim
//! preloaded and its library on a real PostgreSQL. As PID 1 the kernel
//! delivers only signals the process handles and hands it every orphan:
//! the launcher must still forward `docker stop`'s SIGTERM, reap the
//! orphans, follow Plex's start-up re-exec, and exit with Plex's status.
//! Signals are sent from outside the namespace, as Docker sends them.

#[path = "packaging_support.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plex_pg_launcher::events::{self, Value};
use plex_pg_tests::{artifact, cluster::wait_until, pg, shim, unique_name, TempDir};
use support::{require, require_root};

const LIMIT: Duration = Duration::from_secs(120);

/// The launcher running as PID 1 of a new PID namespace.
struct Pid1 {
    unshare: Child,
    dir: TempDir,
    started: Instant,
}

struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    events: Vec<Value>,
    elapsed: Duration,
}

impl Ended {
    fn dump(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- events\n{}",
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

    /// plex-sim's JSON summary (its standard output).
    fn sim_summary(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("no plex-sim summary ({e})\n{}", self.dump()))
    }

    fn events(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    fn launcher_summary(&self) -> &Value {
        let s = self.events("summary");
        assert_eq!(s.len(), 1, "one summary\n{}", self.dump());
        s[0]
    }

    /// Every process the launcher saw born also exited (was reaped).
    fn assert_all_reaped(&self) {
        for fork in self.events("fork") {
            let pid = &fork["pid"];
            assert!(
                self.events("exit").iter().any(|e| &e["pid"] == pid),
                "process {pid} was never reaped\n{}",
                self.dump()
            );
        }
    }
}

impl Pid1 {
    fn start(sim_args: &[&str]) -> Pid1 {
        require_root("unshare --pid needs CAP_SYS_ADMIN");
        require("unshare", "util-linux");
        let dir = TempDir::new("pid1");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(artifact("plex-pg-launcher"))
            .arg("--events")
            .arg(dir.path().join("events.jsonl"))
            .arg("--shim")
            .arg(shim())
            .args(["--grace-period-ms", "3000", "--"])
            .arg(artifact("plex-sim"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--items", "2000", "--summary", "-", "--quiet"])
            .args(sim_args)
            .envs(pg().env(&unique_name("pid1")))
            .env_remove("PLEX_PG_SUPERVISOR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
        let unshare = cmd.spawn().expect("start unshare");
        Pid1 {
            unshare,
            dir,
            started: Instant::now(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The outer pids of the children of `pid`, whichever thread made them.
    fn children(pid: u32) -> Vec<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default();
        tasks
            .iter()
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    /// The launcher's pid as seen from here (outside its namespace).
    fn launcher(&self) -> u32 {
        let mut found = None;
        assert!(
            wait_until(Duration::from_secs(10), || {
                found = Self::children(self.unshare.id()).first().copied();
                found.is_some()
            }),
            "unshare started no launcher"
        );
        found.unwrap()
    }

    /// Wait (bounded) until plex-sim's workload has committed a write.
    fn wait_for_workload(&self) {
        let journal = self.data().join("plex-sim-journal.jsonl");
        let ok = wait_until(Duration::from_secs(60), || {
            std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"event\":\"committed\""))
        });
        assert!(
            ok,
            "plex-sim's workload never started\n--- stderr\n{}",
            std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
        );
    }

    fn wait(mut self) -> Ended {
        let code = loop {
            if let Some(status) = self.unshare.try_wait().unwrap() {
                break status.code();
            }
            if self.started.elapsed() > LIMIT {
                let _ = self.unshare.kill();
                let _ = self.unshare.wait();
                panic!(
                    "the launcher as PID 1 did not exit within {LIMIT:?}\n--- stderr\n{}",
                    std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let events_path = self.dir.path().join("events.jsonl");
        Ended {
            code,
            stdout: read("stdout"),
            stderr: read("stderr"),
            events: if events_path.exists() {
                events::read(&events_path).unwrap()
            } else {
                Vec::new()
            },
            elapsed: self.started.elapsed(),
        }
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid we found under our own child.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn as_pid_1_it_runs_plex_sim_to_the_end_reaps_everything_and_returns_its_status() {
    let run = Pid1::start(&[
        "--iterations",
        "4",
        "--spawn",
        "tuner",
        "--spawn",
        "script-host",
        "--spawn",
        "fork-query",
        "--helper-ms",
        "300",
    ])
    .wait();
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let start = &run.events("start")[0];
    assert_eq!(
        start["launcher_pid"],
        1,
        "the launcher is PID 1 of its namespace\n{}",
        run.dump()
    );
    assert_eq!(start["watcher"], "ptrace", "{}", run.dump());
    let sim = run.sim_summary();
    assert_eq!(sim["ok"], true, "{sim:#}");
    assert!(sim["children"]["started"].as_u64().unwrap() >= 3, "{sim:#}");
    let summary = run.launcher_summary();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["pool_check_violations"], 0, "{}", run.dump());
    assert!(summary["forks"].as_u64().unwrap() >= 3, "{}", run.dump());
    run.assert_all_reaped();
}

#[test]
fn as_pid_1_a_failing_plex_sim_gives_its_exit_code() {
    // wrong-result: plex-sim alters a row of its own check and fails (1).
    let run = Pid1::start(&[
        "--iterations",
        "2",
        "--spawn",
        "none",
        "--fault",
        "wrong-result",
    ])
    .wait();
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.sim_summary()["exit_code"], 1);
    assert_eq!(run.launcher_summary()["exit_code"], 1);
}

#[test]
fn as_pid_1_docker_stop_term_is_forwarded_and_plex_sim_stops_cleanly() {
    let p = Pid1::start(&[
        "--duration",
        "90",
        "--spawn",
        "tuner=2",
        "--helper-ms",
        "60000",
    ]);
    let launcher = p.launcher();
    p.wait_for_workload();
    let sent = Instant::now();
    signal(launcher, libc::SIGTERM);
    let run = p.wait();
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "took {:?} to stop after TERM",
        sent.elapsed()
    );
    let sim = run.sim_summary();
    assert_eq!(sim["stopped_by"], "SIGTERM", "{sim:#}");
    assert_eq!(sim["ok"], true, "{sim:#}");
    assert!(run.stderr.contains("forwarding SIGTERM"), "{}", run.dump());
    run.assert_all_reaped();
}

#[test]
fn as_pid_1_it_follows_plex_sims_start_up_reexec() {
    let p = Pid1::start(&["--self-reexec", "--duration", "90", "--spawn", "none"]);
    let launcher = p.launcher();
    p.wait_for_workload();
    signal(launcher, libc::SIGTERM);
    let run = p.wait();
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let sim = run.sim_summary();
    assert!(
        sim["reexeced_from"].is_i64(),
        "the summary comes from the re-executed server: {sim:#}"
    );
    assert_eq!(
        sim["stopped_by"], "SIGTERM",
        "TERM reached the adopted server: {sim:#}"
    );
    assert!(run.stderr.contains("as the main process"), "{}", run.dump());
    let first = sim["reexeced_from"].as_i64().unwrap();
    let exit = run
        .events("exit")
        .into_iter()
        .find(|e| e["pid"] == first)
        .cloned();
    assert_eq!(
        exit.map(|e| e["code"].clone()),
        Some(serde_json::json!(0)),
        "the first process exited 0\n{}",
        run.dump()
    );
    run.assert_all_reaped();
}

#[test]
fn as_pid_1_plex_killed_gives_137_and_its_orphans_are_reaped() {
    let p = Pid1::start(&[
        "--duration",
        "90",
        "--spawn",
        "tuner=2",
        "--helper-ms",
        "60000",
    ]);
    let launcher = p.launcher();
    p.wait_for_workload();
    // Wait for a running tuner, so Plex's death leaves an orphan behind.
    let mut sim = 0;
    let has_tuner = wait_until(Duration::from_secs(30), || {
        sim = Pid1::children(launcher).first().copied().unwrap_or(0);
        sim != 0 && !Pid1::children(sim).is_empty()
    });
    assert!(has_tuner, "plex-sim started no tuner");
    signal(sim, libc::SIGKILL);
    let run = p.wait();
    assert_eq!(run.code, Some(128 + 9), "{}", run.dump());
    assert_eq!(run.launcher_summary()["exit_code"], 137);
    assert!(
        run.stderr.contains("outlived the main process"),
        "the orphans were terminated\n{}",
        run.dump()
    );
    run.assert_all_reaped();
}
