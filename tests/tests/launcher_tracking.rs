//! The ptrace watcher's running account of each process's PostgreSQL
//! sockets (docs/launcher.md, "ptrace"), against the real shim in Python:
//! a child's inherited sockets are found from what the parent's shim
//! reported, and from a full read of the child's fds when the parent's
//! sockets are not all known (an unreported one); an escalated child is
//! let go by the `dup2`/`dup3` that drops its last inherited socket, and a
//! child that keeps one and uses it is still caught.
//!
//! Issue 19's cut of the stops: in `verify`, a `fork` child of a parent
//! whose shim's fork handler is on is not escalated (no syscall stop) and
//! no process takes an exit stop; a child born by `_Fork` (no handler, no
//! AfterFork) that exits is still a violation; with the handler off, or in
//! `enforce`, children are escalated and a use is caught.

#[path = "launcher_support.rs"]
mod support;

use std::time::Duration;

use plex_pg_launcher::events::Value;
use plex_pg_tests::{pg, schema_with, TempDir};
use support::{Launcher, Run};

/// The parent (under the shim): its children, in order.
/// - `a`: forked with the pool's connection; the fork handler drops it,
///   then the child makes 3,000 syscalls.
/// - `d`: forked once a second pool connection exists (known from its
///   Connected report).
/// - `b`: forked 1.2 s after the parent opened a PostgreSQL socket its
///   shim does not know (a raw connect to the server's socket); the child
///   `dup2`s `/dev/null` over it, then makes 3,000 syscalls.
/// - `c`: forked right after `b`; writes on that socket, exits.
const SCRIPT: &str = r#"
import json, os, socket, sqlite3, sys, time
db, server = sys.argv[1], sys.argv[2]

def child(then):
    pid = os.fork()
    if pid == 0:
        try:
            then()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid

def busy():
    for _ in range(3000):
        os.getppid()

conn = sqlite3.connect(db)
conn.execute("SELECT count(*) FROM metadata_items").fetchone()
a = child(busy)

streaming = conn.execute("SELECT id FROM metadata_items")
streaming.fetchone()
other = sqlite3.connect(db)
other.execute("SELECT count(*) FROM metadata_items").fetchone()
d = child(lambda: None)
streaming.close()

raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
raw.connect(server)
time.sleep(1.2)

def drop():
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, raw.fileno())
    busy()

b = child(drop)
c = child(lambda: os.write(raw.fileno(), b"\0"))
conn.execute("SELECT 1").fetchone()
print(json.dumps({"a": a, "b": b, "c": c, "d": d, "raw": raw.fileno()}), flush=True)
"#;

fn run() -> (Run, Value) {
    let schema = schema_with(
        "launcher_tracking",
        "CREATE TABLE metadata_items (id bigint PRIMARY KEY); \
         INSERT INTO metadata_items SELECT g FROM generate_series(1, 5000) g",
    );
    let dir = TempDir::new("launcher-tracking");
    let db = dir.library_db();
    let script = dir.path().join("tracking.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let server = pg()
        .socket_dir
        .join(format!(".s.PGSQL.{}", pg().port))
        .display()
        .to_string();
    let mut l = Launcher::new();
    l.cmd.envs(pg().env(&schema));
    let run = l.run(
        &["python3", &script.display().to_string(), &db, &server],
        Duration::from_secs(120),
    );
    let said = result_line(&run, "raw");
    (run, said)
}

/// The script's result: the last line of its output naming `key`, after
/// checking that the run succeeded.
fn result_line(run: &Run, key: &str) -> Value {
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let quoted = format!("\"{key}\"");
    let line = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains(&quoted))
        .unwrap_or_else(|| panic!("no result line\n{}", run.dump()));
    plex_pg_launcher::events::parse_line(line).unwrap()
}

fn pid(said: &Value, key: &str) -> i64 {
    said[key].as_i64().unwrap()
}

/// The (fd, inode) of each socket the child's fork event lists.
fn inherited(run: &Run, child: i64) -> Vec<(i64, i64)> {
    run.event_for("fork", child)["inherited"]
        .as_array()
        .expect("inherited list")
        .iter()
        .map(|s| (s["fd"].as_i64().unwrap(), s["inode"].as_i64().unwrap()))
        .collect()
}

#[test]
fn inherited_sockets_are_tracked_from_reports_syscalls_and_full_reads() {
    let (run, said) = run();
    let (a, b, c, d) = (
        pid(&said, "a"),
        pid(&said, "b"),
        pid(&said, "c"),
        pid(&said, "d"),
    );
    let raw = pid(&said, "raw");

    // a: the pool's connection was inherited and the fork handler dropped it.
    assert!(!inherited(&run, a).is_empty(), "{}", run.dump());
    assert_eq!(
        run.event_for("pool_check", a)["verdict"],
        "ok",
        "{}",
        run.dump()
    );

    // d: the second connection, reported after a's fork, is inherited too.
    let of_d = inherited(&run, d);
    assert!(of_d.len() >= 2, "{of_d:?}\n{}", run.dump());
    assert!(!of_d.iter().any(|&(fd, _)| fd == raw));

    // b: the socket the shim never reported is found (its fds read in full,
    // the parent's last full read being over a second old).
    let of_b = inherited(&run, b);
    assert!(
        of_b.iter().any(|&(fd, _)| fd == raw),
        "the unreported socket (fd {raw}) was not found: {of_b:?}\n{}",
        run.dump()
    );
    // It still held it when its fork handler reported: a violation.
    assert_eq!(
        run.event_for("pool_check", b)["verdict"],
        "violation",
        "{}",
        run.dump()
    );

    // c: born right after, the socket is known; its write is caught.
    let of_c = inherited(&run, c);
    assert!(
        of_c.iter().any(|&(fd, _)| fd == raw),
        "{of_c:?}\n{}",
        run.dump()
    );
    let uses: Vec<&Value> = run
        .events("inherited_fd_use")
        .into_iter()
        .filter(|u| u["pid"] == c)
        .collect();
    assert_eq!(uses.len(), 1, "{}", run.dump());
    assert_eq!(uses[0]["fd"], raw);
    assert_eq!(uses[0]["syscall"], "write");
    assert_eq!(uses[0]["action"], "observed");
    assert!(
        run.events("inherited_fd_use").iter().all(|u| u["pid"] == c),
        "only c used an inherited socket\n{}",
        run.dump()
    );

    // a and b were let go once their last inherited socket was gone: their
    // 3,000 getppid() each (6,000 stops apiece if still escalated) were
    // not stopped.
    let stops = run.summary()["syscall_stops"].as_u64().unwrap();
    assert!(
        stops < 3000,
        "{stops} syscall stops: a child was not de-escalated\n{}",
        run.dump()
    );
}

/// Issue 19's cut, in `verify`: children forked by a parent whose shim's
/// fork handler is on. `children` of them `_exit` at once; one (`q`) then
/// queries, which with the handler off runs on the parent's session; one
/// (`raw`) is born by glibc's `_Fork`, which runs no fork handler, and
/// exits without a word.
const FORKS_SCRIPT: &str = r#"
import ctypes, json, os, sqlite3, sys
db, children = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db)
conn.execute("SELECT count(*) FROM metadata_items").fetchone()

def child(then):
    pid = os.fork()
    if pid == 0:
        try:
            then()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid

quick = [child(lambda: None) for _ in range(children)]
q = child(lambda: conn.execute("SELECT count(*) FROM metadata_items").fetchone())
raw = ctypes.CDLL(None)._Fork()
if raw == 0:
    os._exit(0)
os.waitpid(raw, 0)
print(json.dumps({"quick": quick, "q": q, "raw": raw}), flush=True)
"#;

/// Run [`FORKS_SCRIPT`] under the launcher in `mode`, the shim's fork
/// handler on or off.
fn run_forks(mode: &str, handler: bool, children: usize) -> (Run, Value) {
    let schema = schema_with(
        "launcher_tracking_forks",
        "CREATE TABLE metadata_items (id bigint PRIMARY KEY); \
         INSERT INTO metadata_items SELECT g FROM generate_series(1, 100) g",
    );
    let dir = TempDir::new("launcher-tracking-forks");
    let db = dir.library_db();
    let script = dir.path().join("forks.py");
    std::fs::write(&script, FORKS_SCRIPT).unwrap();
    let mut l = Launcher::new();
    l.cmd
        .envs(pg().env(&schema))
        .env("PLEX_PG_FORK_HANDLER", if handler { "1" } else { "0" })
        .args(["--mode", mode]);
    let run = l.run(
        &[
            "python3",
            &script.display().to_string(),
            &db,
            &children.to_string(),
        ],
        Duration::from_secs(120),
    );
    let said = result_line(&run, "quick");
    (run, said)
}

#[test]
fn verify_trusts_the_fork_handler_and_takes_no_exit_stops() {
    const CHILDREN: usize = 40;
    let (run, said) = run_forks("verify", true, CHILDREN);
    let quick: Vec<i64> = said["quick"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    let (q, raw) = (pid(&said, "q"), pid(&said, "raw"));

    // Each inherited the pool's socket and was not escalated: its handler
    // replaced the socket before any of its code ran, and said so.
    for &c in quick.iter().chain([&q]) {
        assert!(!inherited(&run, c).is_empty(), "{c}\n{}", run.dump());
        assert_eq!(run.event_for("fork", c)["escalated"], false, "{c}");
        let check = run.event_for("pool_check", c);
        assert_eq!(check["verdict"], "ok", "{c}\n{}", run.dump());
        assert_eq!(check["trigger"], "after_fork", "{c}");
    }
    assert!(run.events("inherited_fd_use").is_empty(), "{}", run.dump());
    let summary = run.summary();
    assert_eq!(summary["escalations"], 0, "{summary}");
    assert_eq!(summary["syscall_stops"], 0, "{summary}");
    // No exit stops: a process costs its parent's fork event, its own
    // first stop, and its execs (a thread would add a clone event and a
    // first stop). With PTRACE_O_TRACEEXIT every process and thread added
    // one more: `processes` (over 80 here) above this bound.
    let count = |k: &str| summary[k].as_u64().unwrap();
    let stops = count("event_stops");
    assert!(count("forks") > CHILDREN as u64, "{summary}");
    assert!(
        stops <= 2 * count("forks") + count("execs") + 10,
        "{stops} event stops: exit stops?\n{summary}"
    );

    // The `_Fork` child ran no handler and sent no AfterFork; it was not
    // followed, and exited: what it inherited is taken as still held.
    assert!(!inherited(&run, raw).is_empty(), "{}", run.dump());
    assert_eq!(run.event_for("fork", raw)["escalated"], false);
    let check = run.event_for("pool_check", raw);
    assert_eq!(check["verdict"], "violation", "{}", run.dump());
    assert_eq!(check["trigger"], "exit");
    assert!(
        check["reason"].as_str().unwrap().contains("AfterFork"),
        "{check}"
    );
}

#[test]
fn without_the_fork_handler_a_child_is_escalated_and_caught() {
    let (run, said) = run_forks("verify", false, 2);
    let q = pid(&said, "q");
    assert_eq!(
        run.event_for("fork", q)["escalated"],
        true,
        "{}",
        run.dump()
    );
    let uses: Vec<&Value> = run
        .events("inherited_fd_use")
        .into_iter()
        .filter(|u| u["pid"] == q)
        .collect();
    assert!(!uses.is_empty(), "{}", run.dump());
    assert_eq!(uses[0]["action"], "observed");
    // It exited holding the parent's socket (no exit stop: the account
    // followed through its syscalls says so).
    let check = run.event_for("pool_check", q);
    assert_eq!(check["verdict"], "violation", "{}", run.dump());
    assert_eq!(check["trigger"], "exit");
    assert!(run.summary()["syscall_stops"].as_u64().unwrap() > 0);
}

#[test]
fn enforce_escalates_every_child_that_inherits() {
    let (run, said) = run_forks("enforce", true, 2);
    let q = pid(&said, "q");
    let raw = pid(&said, "raw");
    for c in [q, raw] {
        assert_eq!(run.event_for("fork", c)["escalated"], true, "{c}");
    }
    // q's handler dropped the socket (followed): ok. The `_Fork` child
    // kept it to its exit (followed, not assumed).
    assert_eq!(run.event_for("pool_check", q)["verdict"], "ok");
    let check = run.event_for("pool_check", raw);
    assert_eq!(check["verdict"], "violation", "{}", run.dump());
    assert!(!check["reason"].as_str().unwrap().contains("AfterFork"));
    assert!(run.events("inherited_fd_use").is_empty(), "{}", run.dump());
}
