//! The launcher runs as root in front of Plex: each test here is one of the
//! attacks of `docs/security.md`, made for real (planted links, loose
//! permissions, another user's directory), and asserts it fails. Most need
//! root, as CI runs them, to create the service user's view (`chown
//! nobody`); as anyone else they say so and return.

#[path = "launcher_support.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use plex_pg_launcher::events::{Record, Verdict};
use support::{as_service_user, chmod, plant_symlink, service_user_dir, Launcher};

const LIMIT: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("skipped: this attack needs the tests to run as root (CI does)");
    false
}

/// A shared library whose constructor creates `marker`: it shows whether
/// an untrusted shim ever ran.
fn evil_library(dir: &Path, marker: &Path) -> PathBuf {
    let src = dir.join("evil.c");
    std::fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) {{ int fd = open(\"{}\", O_CREAT | O_WRONLY, 0644); if (fd >= 0) close(fd); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let lib = dir.join("libevil.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(status.success(), "compiling the evil library failed");
    lib
}

/// `check` against no server (port 1), with `config` or none.
fn check(args: &[&str], config: Option<&Path>) -> (Option<i32>, String) {
    let config = config.unwrap_or(Path::new("/dev/null"));
    support::check(
        args,
        [
            ("PLEX_PG_PORT", Path::new("1").as_os_str()),
            ("PLEX_PG_CONNECT_TIMEOUT_MS", Path::new("200").as_os_str()),
            ("PLEX_PG_CONFIG", config.as_os_str()),
        ],
    )
}

/// Attack 1: Plex's user owns the log directory and plants `events.jsonl`
/// as a link to a root-owned file (existing, and one root would create).
#[test]
fn a_planted_symlink_for_the_event_log_is_refused_not_followed() {
    if !is_root() {
        return;
    }
    let mut l = Launcher::new();
    let logs = as_service_user(&mut l);
    let root_dir = l.dir.path().join("root-only");
    std::fs::create_dir(&root_dir).unwrap();
    chmod(&root_dir, 0o755);
    let victim = root_dir.join("victim");
    std::fs::write(&victim, "root's\n").unwrap();
    let marker = l.dir.path().join("started");
    l.events = plant_symlink(&logs, "events.jsonl", &victim);
    let run = l.run(&["sh", "-c", &format!("touch {}", marker.display())], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("symbolic link") && run.stderr.contains("events.jsonl"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's\n",
        "root wrote through the planted link"
    );
    assert!(
        !marker.exists(),
        "Plex started despite the refused event log"
    );

    // A link to a file that does not exist yet: root must not create it.
    let mut l = Launcher::new();
    let logs = as_service_user(&mut l);
    let created = root_dir.join("new-file");
    l.events = plant_symlink(&logs, "events.jsonl", &created);
    let run = l.run(&["true"], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        !created.exists(),
        "root created a file through the planted link"
    );
}

/// Attack 1, by hard link: a second name for a root-owned file in the
/// service user's directory (possible where protected_hardlinks is off).
#[test]
fn a_planted_hard_link_for_the_event_log_is_refused() {
    if !is_root() {
        return;
    }
    let mut l = Launcher::new();
    let logs = as_service_user(&mut l);
    let victim = l.dir.path().join("victim");
    std::fs::write(&victim, "root's\n").unwrap();
    let planted = logs.join("events.jsonl");
    std::fs::hard_link(&victim, &planted).unwrap();
    l.events = planted;
    let run = l.run(&["true"], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(run.stderr.contains("hard links"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's\n");
}

/// Attack 1 for `log.file`: the launcher logs to standard error instead of
/// following the link; the event log in the same directory works, owned by
/// root and appendable.
#[test]
fn a_planted_symlink_for_the_log_file_is_not_followed() {
    if !is_root() {
        return;
    }
    let mut l = Launcher::new();
    let logs = as_service_user(&mut l);
    let victim = l.dir.path().join("victim");
    std::fs::write(&victim, "root's\n").unwrap();
    let planted = plant_symlink(&logs, "plex-pg.log", &victim);
    let events = logs.join("events.jsonl");
    l.cmd.env("PLEX_PG_LOG_FILE", &planted);
    l.events = events.clone();
    let run = l.run(&["true"], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(
        run.stderr.contains("symbolic link") && run.stderr.contains("logging to standard error"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's\n");
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.lines().count() >= 2 && text.ends_with('\n'), "{text}");
}

/// Attack 2: a config anyone may write (it names the shim, the alert
/// command and the user), and one whose password anyone may read.
#[test]
fn a_config_others_can_write_or_read_a_password_in_is_refused() {
    let mut l = Launcher::new();
    let config = l.dir.path().join("config.toml");
    std::fs::write(&config, "[launcher]\nmode = \"off\"\n").unwrap();
    chmod(&config, 0o666);
    let marker = l.dir.path().join("started");
    l.cmd.arg("--config").arg(&config);
    let first = l.run(&["sh", "-c", &format!("touch {}", marker.display())], LIMIT);
    assert_eq!(first.code, Some(2), "{}", first.dump());
    assert!(
        first.stderr.contains("config.toml") && first.stderr.contains("chmod go-w"),
        "{}",
        first.stderr
    );
    assert!(!marker.exists());
    let (code, out) = check(&[], Some(&config));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL config:") && l.contains("chmod go-w")),
        "{out}"
    );

    chmod(&config, 0o644);
    std::fs::write(
        &config,
        "[postgres]\npassword = \"s3cret-pw\"\n[launcher]\nmode = \"off\"\n",
    )
    .unwrap();
    let mut l2 = Launcher::new();
    l2.cmd.arg("--config").arg(&config);
    let run = l2.run(&["sh", "-c", &format!("touch {}", marker.display())], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("readable by every user") && run.stderr.contains("chmod o-r"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
    let (code, out) = check(&[], Some(&config));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL config:") && l.contains("chmod o-r")),
        "{out}"
    );

    // 0640, as the package installs it: accepted.
    chmod(&config, 0o640);
    let mut l3 = Launcher::new();
    l3.cmd.arg("--config").arg(&config);
    let run = l3.run(&["true"], LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    drop(first);
}

/// Attack 3: a shim anyone may write; nothing starts, and `check` neither
/// passes it nor loads it.
#[test]
fn a_world_writable_shim_is_refused_and_never_loaded() {
    let mut l = Launcher::new();
    let marker = l.dir.path().join("constructor-ran");
    let lib = evil_library(l.dir.path(), &marker);
    chmod(&lib, 0o777);
    l.shim = lib.clone();
    let run = l.run(&["true"], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("refusing the shim") && run.stderr.contains("chmod go-w"),
        "{}",
        run.stderr
    );
    let (code, out) = check(&["--shim", lib.to_str().unwrap()], None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL shim:") && l.contains("chmod go-w")),
        "{out}"
    );
    assert!(!marker.exists(), "the untrusted shim's constructor ran");
}

/// Attack 3: a root-owned shim in a directory another user owns (who could
/// rename their own library over it): refused at start and by `check`, and
/// its constructor never runs as root.
#[test]
fn a_shim_in_another_users_directory_is_refused_and_never_loaded() {
    if !is_root() {
        return;
    }
    let mut l = Launcher::new();
    let theirs = service_user_dir(l.dir.path(), "their-lib");
    let marker = l.dir.path().join("constructor-ran");
    let lib = evil_library(l.dir.path(), &marker);
    let shim = theirs.join("libplex_pg_shim.so");
    std::fs::rename(&lib, &shim).unwrap();
    assert_eq!(std::fs::metadata(&shim).unwrap().uid(), 0);
    l.shim = shim.clone();
    let run = l.run(&["true"], LIMIT);
    assert_eq!(run.code, Some(2), "{}", run.dump());
    assert!(
        run.stderr.contains("their-lib")
            && run.stderr.contains("nobody")
            && run.stderr.contains("chown root"),
        "{}",
        run.stderr
    );
    let (code, out) = check(&["--shim", shim.to_str().unwrap()], None);
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL shim:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("their-lib") && line.contains("does not load it"),
        "{line}"
    );
    assert!(!out.contains("ok   shim"), "{out}");
    assert!(
        !marker.exists(),
        "the untrusted shim's constructor ran as root"
    );
}

/// Attack 4: a password that is not a string, or an unterminated one, must
/// not be printed back by the launcher or `check` (the error names the key,
/// the file and the line instead).
#[test]
fn a_malformed_password_is_never_printed() {
    for (doc, secret) in [
        ("[postgres]\npassword = 424242\n", "424242"),
        (
            "[postgres]\npassword = \"s3cret-unterminated\n[launcher]\nmode = \"off\"\n",
            "s3cret-unterminated",
        ),
        ("[postgres]\npassword = 's3cret-literal\n", "s3cret-literal"),
    ] {
        let mut l = Launcher::new();
        let config = l.dir.path().join("config.toml");
        std::fs::write(&config, doc).unwrap();
        chmod(&config, 0o600);
        l.cmd.arg("--config").arg(&config);
        let run = l.run(&["true"], LIMIT);
        assert_eq!(run.code, Some(2), "{}", run.dump());
        assert!(run.stderr.contains("config.toml"), "{}", run.stderr);
        assert!(
            run.stderr.contains("postgres.password") || run.stderr.contains("line 2"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "{doc:?} printed:\n{}",
            run.dump()
        );
        let (code, out) = check(&[], Some(&config));
        assert_eq!(code, Some(2), "{out}");
        assert!(!out.contains(secret), "check printed the password:\n{out}");
    }
}

fn signal(pid: u32, sig: i32) {
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig})"
    );
}

/// Attack 7: a graceful stop. The main process exits 0 on TERM while a
/// well-behaved helper (which also exits on TERM) is still running: the
/// helper must get TERM too, and the launcher must exit 0 at once — not
/// KILL the helper at the end of the grace period and exit 137.
#[test]
fn a_term_with_a_surviving_helper_ends_with_exit_0_promptly_and_the_helper_got_term() {
    let mut l = Launcher::new();
    let ready = l.dir.path().join("ready");
    let got_term = l.dir.path().join("helper-got-term");
    l.cmd.args(["--grace-period-ms", "10000", "--mode", "off"]);
    let helper = format!(
        "trap 'echo yes > {}; exit 0' TERM; while :; do sleep 0.05; done",
        got_term.display()
    );
    let script = format!(
        "sh -c \"{helper}\" & trap 'exit 0' TERM; touch {}; wait",
        ready.display()
    );
    let mut termed_at = None;
    let run = l.run_with(&["sh", "-c", &script], LIMIT, |pid| {
        assert!(
            support::wait_for_file(&ready, Duration::from_secs(10)),
            "the command did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
        termed_at = Some(std::time::Instant::now());
        signal(pid, libc::SIGTERM);
    });
    let stop_took = termed_at.unwrap().elapsed();
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(
        got_term.exists(),
        "the adopted helper never got TERM\n{}",
        run.dump()
    );
    assert!(
        stop_took < Duration::from_secs(5),
        "the stop took {stop_took:?}: waited for the grace period\n{}",
        run.dump()
    );
}

/// Attack 9: a signal the launcher does not list (SIGALRM) must not take
/// its default action on the launcher (ending it, and Plex with it): it is
/// forwarded like the others.
#[test]
fn an_unlisted_signal_is_forwarded_not_fatal_to_the_launcher() {
    let mut l = Launcher::new();
    let ready = l.dir.path().join("ready");
    l.cmd.args(["--mode", "off"]);
    let script = format!(
        "trap 'exit 3' ALRM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let run = l.run_with(&["sh", "-c", &script], LIMIT, |pid| {
        assert!(
            support::wait_for_file(&ready, Duration::from_secs(10)),
            "the command did not start"
        );
        signal(pid, libc::SIGALRM);
    });
    assert_eq!(
        run.code,
        Some(3),
        "the launcher did not forward SIGALRM\n{}",
        run.dump()
    );
}

/// Attack 9: the command starts with the signal state a plain exec from
/// the launcher's parent would give it: the launcher's own blocked and
/// ignored signals (TERM, CHLD, PIPE, TTOU…) are not passed on; what the
/// parent ignored (here USR1, as `nohup` does for HUP) stays ignored.
#[test]
fn the_command_starts_with_the_signal_state_its_parent_gave_the_launcher() {
    let dir = plex_pg_tests::TempDir::new("signal-state");
    let show = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"];
    let parent = |launcher: bool| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("trap '' USR1; exec \"$@\"").arg("sh");
        if launcher {
            cmd.arg(plex_pg_tests::artifact("plex-pg-launcher"))
                .args(["--mode", "off", "--events"])
                .arg(dir.path().join("events.jsonl"))
                .arg("--shim")
                .arg(plex_pg_tests::shim())
                .arg("--");
        }
        cmd.args(show).env("PLEX_PG_CONFIG", "/dev/null");
        let out = plex_pg_tests::run(&mut cmd, LIMIT);
        out.assert_ok();
        out.stdout.clone()
    };
    let plain = parent(false);
    let usr1 = 1u64 << (libc::SIGUSR1 - 1);
    let ignored = plain
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:\t"))
        .map(|v| u64::from_str_radix(v, 16).unwrap())
        .unwrap();
    assert!(ignored & usr1 != 0, "{plain}");
    assert_eq!(
        parent(true),
        plain,
        "under the launcher the command's signal state differs from a plain exec's"
    );
}

/// Attack 8: three launchers appending to one event log at once (each line
/// one `write(2)` on `O_APPEND`): every line of the shared file parses.
#[test]
fn three_launchers_sharing_one_event_log_never_corrupt_a_line() {
    let shared = plex_pg_tests::TempDir::new("shared-events");
    let path = shared.path().join("events.jsonl");
    let script = "for i in $(seq 300); do /bin/true; done";
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let path = path.clone();
                s.spawn(move || {
                    let mut l = Launcher::new();
                    l.events = path;
                    l.run(&["sh", "-c", script], Duration::from_secs(120))
                })
            })
            .collect();
        for r in runs {
            let run = r.join().unwrap();
            assert_eq!(run.code, Some(0), "{}", run.dump());
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let mut starts = 0;
    for (n, line) in text.lines().enumerate() {
        let line = plex_pg_launcher::events::parse_record(line)
            .unwrap_or_else(|e| panic!("line {} is corrupt: {e}", n + 1));
        starts += matches!(line.record, Record::Start { .. }) as usize;
    }
    assert_eq!(starts, 3, "{text}");
    assert!(
        text.lines().count() > 3000,
        "too few lines to have raced: {}",
        text.lines().count()
    );
    assert!(text.ends_with('\n'));
}

/// Attack 8: a run killed in the middle of a line leaves it unterminated;
/// the next run ends it before appending, so its own first line is whole.
#[test]
fn a_partial_last_line_is_terminated_before_the_next_run_appends() {
    let dir = plex_pg_tests::TempDir::new("partial-line");
    let path = dir.path().join("events.jsonl");
    std::fs::write(
        &path,
        "{\"time\":1.0,\"event\":\"summary\"}\n{\"time\":2.0,\"event\":\"fo",
    )
    .unwrap();
    let mut cmd = Command::new(plex_pg_tests::artifact("plex-pg-launcher"));
    cmd.args(["--mode", "off", "--events"])
        .arg(&path)
        .arg("--shim")
        .arg(plex_pg_tests::shim())
        .args(["--", "true"])
        .env("PLEX_PG_CONFIG", "/dev/null");
    plex_pg_tests::run(&mut cmd, LIMIT).assert_ok();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "{\"time\":2.0,\"event\":\"fo", "{text}");
    let next =
        plex_pg_launcher::events::parse_record(lines[2]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(matches!(next.record, Record::Start { .. }), "{text}");
}

/// Attack 5: a process in Plex's tree sends `Connected` reports with
/// ever-new slot numbers. Slots beyond `pool.max` are rejected and counted,
/// so the launcher (PID 1 in Docker) stays small however many arrive.
#[test]
fn two_million_reports_with_ever_new_slots_leave_the_launcher_small() {
    let n: u64 = 2_000_000;
    let l = Launcher::new();
    let run = l.run(
        &[&support::probe(), "flood", &n.to_string(), "connected"],
        Duration::from_secs(300),
    );
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(
        run.said("sent"),
        Some(n.to_string().as_str()),
        "{}",
        run.dump()
    );
    let hwm: u64 = run
        .said("parent_vm_hwm_kb")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", run.dump()));
    assert!(hwm < 40_000, "the launcher grew to {hwm} kB on {n} reports");
    let summary = run.summary();
    let rejected = summary["reports_rejected"].as_u64().unwrap();
    assert!(
        rejected >= n - 32,
        "only {rejected} of {n} reports beyond pool.max were rejected\n{summary}"
    );
    assert_rate_limited(&run);
}

/// Attack 6: a process outside Plex's tree (of the same user, which may
/// send to the socket) floods reports, trying to fill the buffer kept for
/// processes a procfs scan has not seen yet; the reports of Plex's later
/// children must still be taken.
#[test]
fn an_outsider_cannot_fill_the_early_report_buffer() {
    let mut l = Launcher::new();
    l.cmd
        .envs(plex_pg_tests::pg().env(&plex_pg_tests::unique_name("early")));
    l.cmd
        .args(["--watcher", "procfs", "--poll-interval-ms", "400"]);
    let sock_file = l.dir.path().join("sock");
    let go = l.dir.path().join("go");
    let probe = support::probe();
    let script = format!(
        // Written aside and renamed: the test must never read a file the
        // shell has created but not yet written (an empty path).
        "echo \"$PLEX_PG_SUPERVISOR\" > {sock}.part && mv {sock}.part {sock}; while [ ! -e {go} ]; do sleep 0.02; done; for i in 1 2 3 4; do {probe} fork --hold 1200 || exit 1; done",
        sock = sock_file.display(),
        go = go.display()
    );
    let run = l.run_with(&["sh", "-c", &script], Duration::from_secs(120), |_| {
        assert!(
            support::wait_for_file(&sock_file, Duration::from_secs(10)),
            "the command did not start"
        );
        let sock = std::fs::read_to_string(&sock_file)
            .unwrap()
            .trim()
            .to_string();
        let out = plex_pg_tests::run(
            Command::new(support::probe())
                .args(["flood", "3000", "hello"])
                .env("PLEX_PG_SUPERVISOR", &sock),
            Duration::from_secs(60),
        );
        out.assert_ok();
        std::fs::write(&go, "").unwrap();
    });
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let children: Vec<i64> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("child: "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 4, "{}", run.dump());
    for child in children {
        assert!(
            matches!(
                run.pool_check(child),
                Record::PoolCheck {
                    verdict: Verdict::Ok,
                    ..
                }
            ),
            "{}",
            run.dump()
        );
    }
    // Every report of the tree was taken (parents' Hello and Connected,
    // children's AfterFork): the only rejected ones are the outsider's
    // 3,000. (Whether a child's check waited for its report is the procfs
    // watcher's timing: a scan may see a child after its handler ran and
    // before its report came, and judge it from /proc alone.)
    let summary = run.summary();
    assert_eq!(summary["reports_rejected"], 3000, "{}", run.dump());
    let accepted = summary["reports"].as_u64().unwrap() - 3000;
    assert!(
        accepted >= 2 * 4,
        "each of the 4 rounds sends at least a parent's and a child's report: {accepted}\n{}",
        run.dump()
    );
    assert_rate_limited(&run);
}

/// At most 5 full lines per 10 s about rejected reports.
fn assert_rate_limited(run: &support::Run) {
    let warnings = run.stderr.matches("rejected a report:").count() as u64;
    let intervals = run.elapsed.as_secs() / 10 + 1;
    assert!(
        warnings <= 5 * intervals,
        "{warnings} warnings for rejected reports in {:?}: logging is not rate-limited",
        run.elapsed
    );
}
