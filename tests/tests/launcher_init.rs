//! The launcher as an init: exit statuses, signal forwarding, the grace
//! period, reaping orphans, Plex's re-exec shape, and refusing bad
//! configuration before anything starts. Real processes, real signals.

#[path = "launcher_support.rs"]
mod support;

use std::time::Duration;

use support::{probe, wait_for_file, Launcher};

fn signal(pid: u32, sig: i32) {
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig})"
    );
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn exit_code_is_propagated() {
    let run = Launcher::new().run(&["sh", "-c", "exit 7"], LIMIT);
    assert_eq!(run.code, Some(7), "{}", run.dump());
    assert_eq!(run.summary()["exit_code"], 7);
}

#[test]
fn death_by_signal_gives_128_plus_signal() {
    let run = Launcher::new().run(&["sh", "-c", "kill -SEGV $$"], LIMIT);
    assert_eq!(run.code, Some(128 + 11), "{}", run.dump());
}

#[test]
fn term_is_forwarded_and_the_trap_status_returned() {
    let l = Launcher::new();
    let ready = l.dir.path().join("ready");
    let script = format!(
        "trap 'exit 42' TERM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let run = l.run_with(&["sh", "-c", &script], LIMIT, |pid| {
        assert!(
            wait_for_file(&ready, Duration::from_secs(10)),
            "the command never started"
        );
        signal(pid, libc::SIGTERM);
    });
    assert_eq!(run.code, Some(42), "{}", run.dump());
}

#[test]
fn usr1_and_hup_are_forwarded() {
    let l = Launcher::new();
    let dir = l.dir.path().to_path_buf();
    let script = format!(
        "trap 'touch {d}/usr1' USR1; trap 'touch {d}/hup' HUP; touch {d}/ready; \
         while [ ! -e {d}/usr1 ] || [ ! -e {d}/hup ]; do sleep 0.05; done; exit 3",
        d = dir.display()
    );
    let run = l.run_with(&["sh", "-c", &script], LIMIT, |pid| {
        assert!(wait_for_file(&dir.join("ready"), Duration::from_secs(10)));
        signal(pid, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(100));
        signal(pid, libc::SIGHUP);
    });
    assert_eq!(run.code, Some(3), "{}", run.dump());
}

#[test]
fn a_command_ignoring_term_is_killed_after_the_grace_period() {
    let mut l = Launcher::new();
    l.cmd.args(["--grace-period-ms", "300"]);
    let ready = l.dir.path().join("ready");
    let script = format!(
        "trap '' TERM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let mut sent = std::time::Instant::now();
    let run = l.run_with(&["sh", "-c", &script], LIMIT, |pid| {
        assert!(wait_for_file(&ready, Duration::from_secs(10)));
        sent = std::time::Instant::now();
        signal(pid, libc::SIGTERM);
    });
    assert_eq!(run.code, Some(128 + 9), "{}", run.dump());
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "killed before the grace period: {waited:?}"
    );
    assert!(run.stderr.contains("grace period over"), "{}", run.dump());
}

#[test]
fn orphaned_grandchild_is_reaped() {
    let run = Launcher::new().run(&[&probe(), "orphan"], LIMIT);
    assert_eq!(run.said("orphan"), Some("reaped"), "{}", run.dump());
    assert_eq!(run.code, Some(0), "{}", run.dump());
}

#[test]
fn reexec_shape_supervises_the_adopted_server_and_returns_its_status() {
    // The first process starts the server with posix_spawn (vfork+exec)
    // and exits 0 at once; the server runs 400 ms and exits 5.
    let run = Launcher::new().run(&[&probe(), "reexec", "5", "400"], LIMIT);
    assert_eq!(run.code, Some(5), "{}", run.dump());
    assert!(
        run.elapsed >= Duration::from_millis(400),
        "did not wait for the server: {:?}",
        run.elapsed
    );
    let server: i64 = run.said("server").expect("server pid").parse().unwrap();
    let exit = run.event_for("exit", server);
    assert_eq!(exit["code"], 5, "{}", run.dump());
    assert!(run.stderr.contains("as the main process"), "{}", run.dump());
}

#[test]
fn main_failing_takes_the_rest_of_the_tree_down() {
    let mut l = Launcher::new();
    l.cmd.args(["--grace-period-ms", "200"]);
    let run = l.run(&["sh", "-c", "sleep 30 & exit 4"], LIMIT);
    assert_eq!(run.code, Some(4), "{}", run.dump());
    assert!(
        run.elapsed < Duration::from_secs(10),
        "waited for the leftover sleep: {:?}",
        run.elapsed
    );
}

#[test]
fn bad_configuration_is_refused_before_anything_starts() {
    let l = Launcher::new();
    let marker = l.dir.path().join("started");
    let config = l.dir.path().join("bad.toml");
    std::fs::write(&config, "[launcher]\nmode = \"paranoid\"\n").unwrap();
    let mut l = l;
    l.cmd.arg("--config").arg(&config);
    let touch = format!("touch {}", marker.display());
    let run = l.run(&["sh", "-c", &touch], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("launcher.mode") && run.stderr.contains("bad.toml"),
        "{}",
        run.stderr
    );
    assert!(
        !marker.exists(),
        "the command ran despite the bad configuration"
    );

    let mut l = Launcher::new();
    l.cmd.args(["--grace-period-ms", "soon"]);
    let run = l.run(&["sh", "-c", &touch], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("launcher.grace_period_ms") && run.stderr.contains("command line"),
        "{}",
        run.stderr
    );
    assert!(!marker.exists());
}

#[test]
fn missing_shim_is_refused_before_anything_starts() {
    let mut l = Launcher::new();
    let marker = l.dir.path().join("started");
    l.shim = "/nonexistent/libplex_pg_shim.so".into();
    let touch = format!("touch {}", marker.display());
    let run = l.run(&["sh", "-c", &touch], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("/nonexistent/libplex_pg_shim.so")
            && run.stderr.contains("Nothing was started"),
        "{}",
        run.stderr
    );
    assert!(!marker.exists());
}

#[test]
fn unknown_command_exits_127() {
    let run = Launcher::new().run(&["no-such-command-plex-pg"], LIMIT);
    assert_eq!(run.code, Some(127), "{}", run.dump());
    assert!(
        run.stderr.contains("no-such-command-plex-pg"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_command_gets_the_shim_and_the_supervisor_socket() {
    let l = Launcher::new();
    let out = l.dir.path().join("env");
    let script = format!("env > {}", out.display());
    let mut l = l;
    l.cmd.env("LD_PRELOAD", "");
    let run = l.run(&["sh", "-c", &script], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let env = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    let shim = plex_pg_tests::shim().display().to_string();
    assert!(
        env.lines().any(|l| l == format!("LD_PRELOAD={shim}")),
        "{env}"
    );
    let sock = env
        .lines()
        .find_map(|l| l.strip_prefix("PLEX_PG_SUPERVISOR="))
        .expect("PLEX_PG_SUPERVISOR set");
    assert!(sock.ends_with("supervisor.sock"), "{sock}");
    assert!(
        env.lines().any(|l| l == "PLEX_PG_CONFIG=/dev/null"),
        "{env}"
    );
}

#[test]
fn user_option_runs_the_tree_as_that_user_and_still_traces_it() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: --user needs the tests to run as root (CI does)");
        return;
    }
    let mut l = Launcher::new();
    l.cmd.args(["--user", "nobody"]);
    // The probe must be reachable by nobody: it is under the work tree,
    // which is world-readable on CI's clone.
    let run = l.run(
        &[
            "sh",
            "-c",
            "id -u; id -G; sh -c 'grep -E \"^(Uid|CapEff)\" /proc/self/status'",
        ],
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let nobody = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap();
    let uid = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some(uid.as_str()), "{}", run.dump());
    assert!(
        !run.stdout.split_whitespace().any(|g| g == "0"),
        "root's group kept: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("CapEff:\t0000000000000000"),
        "capabilities kept: {}",
        run.stdout
    );
    // Traced without CAP_SYS_PTRACE: the nested sh was seen.
    assert_eq!(
        run.events("start")[0]["watcher"],
        "ptrace",
        "{}",
        run.dump()
    );
    assert!(run.events("fork").len() >= 2, "{}", run.dump());
    assert!(run.events("exec").len() >= 2, "{}", run.dump());
}

#[test]
fn exec_from_a_thread_is_followed_under_the_leaders_pid() {
    let run = Launcher::new().run(&[&probe(), "thread-exec"], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let main = run.events("start")[0]["pid"].as_i64().unwrap();
    let tid: i64 = run
        .said("exec from thread")
        .expect("thread id")
        .parse()
        .unwrap();
    assert_ne!(tid, main);
    let execs: Vec<_> = run
        .events("exec")
        .into_iter()
        .filter(|e| e["pid"] == main)
        .collect();
    assert_eq!(
        execs.len(),
        2,
        "the probe's exec, then the thread's\n{}",
        run.dump()
    );
    assert_eq!(execs[1]["former_tid"], tid, "{}", run.dump());
    assert!(execs[1]["program"].as_str().unwrap().ends_with("/true"));
    assert_eq!(run.event_for("exit", main)["code"], 0);
}

#[test]
fn a_stopped_command_stays_stopped_until_continued() {
    let l = Launcher::new();
    let events = l.events_path();
    let run = l.run_with(
        &["sh", "-c", "kill -STOP $$; echo resumed; exit 9"],
        LIMIT,
        |_| {
            let pid = plex_pg_tests::cluster::wait_until(Duration::from_secs(10), || {
                std::fs::read_to_string(&events)
                    .map(|t| t.contains("\"event\":\"exec\""))
                    .unwrap_or(false)
            });
            assert!(pid, "the command never started");
            let text = std::fs::read_to_string(&events).unwrap();
            let main: i32 = text
                .lines()
                .find(|l| l.contains("\"event\":\"start\""))
                .and_then(|l| plex_pg_launcher::events::parse_line(l).ok())
                .and_then(|v| v["pid"].as_i64())
                .unwrap() as i32;
            let state = || {
                let stat =
                    std::fs::read_to_string(format!("/proc/{main}/stat")).unwrap_or_default();
                stat.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("?")
                    .to_string()
            };
            // Group-stopped (shown as a tracing stop, `t`, under ptrace)...
            assert!(plex_pg_tests::cluster::wait_until(
                Duration::from_secs(10),
                || matches!(state().as_str(), "T" | "t")
            ));
            // ...and it stays so: the watcher must not resume it.
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                matches!(state().as_str(), "T" | "t"),
                "resumed by the launcher: state {}",
                state()
            );
            signal(main as u32, libc::SIGCONT);
        },
    );
    assert_eq!(run.code, Some(9), "{}", run.dump());
    assert_eq!(run.stdout.trim(), "resumed");
}

#[test]
fn a_relative_shim_path_is_preloaded_by_its_absolute_path() {
    let mut l = Launcher::new();
    // `--shim` relative to the launcher's directory; the command then
    // changes directory, as any Plex process may.
    let shim = l.shim.clone();
    l.cmd.current_dir(shim.parent().unwrap());
    l.shim = shim.file_name().unwrap().into();
    let out = l.dir.path().join("preload");
    let script = format!("cd / && printf %s \"$LD_PRELOAD\" > {}", out.display());
    let run = l.run(&["sh", "-c", &script], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let preload = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        std::path::Path::new(&preload),
        shim.canonicalize().unwrap(),
        "LD_PRELOAD is the shim's absolute path"
    );
}
