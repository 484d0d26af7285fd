//! plex-sim, the stand-in for Plex, against the real system SQLite (no
//! shim): Plex's data directory and the schema from the fixture, the fill
//! and the incident's hash query, every child kind and start method, every
//! fault, the summary's figures against the databases and the journal,
//! SIGTERM, the start-up re-exec, the hang bound, and bad input.
//!
//! The databases are read back here through plex-sim's own thin wrapper of
//! the SQLite C API, compiled into this test.

#[allow(dead_code)]
#[path = "../src/bin/plex-sim/sqlite.rs"]
mod sqlite;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plex_pg_tests::{artifact, fixture, plex_sim_journal, run, Run, TempDir};
use serde_json::Value as Json;
use sqlite::{Connection, Value};

const HASH_QUERY: &str = "SELECT id,guid FROM metadata_items where hash is null";

fn plex_sim() -> Command {
    let mut cmd = Command::new(artifact("plex-sim"));
    cmd.env_remove("LD_PRELOAD");
    cmd
}

fn databases(dir: &Path) -> PathBuf {
    dir.join("Plug-in Support").join("Databases")
}

fn library_db(dir: &Path) -> PathBuf {
    databases(dir).join("com.plexapp.plugins.library.db")
}

fn blobs_db(dir: &Path) -> PathBuf {
    databases(dir).join("com.plexapp.plugins.library.blobs.db")
}

/// Run plex-sim on `dir` with `args` and `--summary -`; returns the run and its summary.
fn sim(dir: &Path, args: &[&str], limit: Duration) -> (Run, Json) {
    let mut cmd = plex_sim();
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .args(["--summary", "-"]);
    let out = run(&mut cmd, limit);
    assert!(
        !out.timed_out,
        "plex-sim did not finish within {limit:?}:\n{}",
        out.stderr
    );
    let summary = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary on stdout ({e}):\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        )
    });
    (out, summary)
}

fn ok(out: &Run, summary: &Json) {
    assert_eq!(
        out.code,
        Some(0),
        "plex-sim failed: {summary:#}\n--- stderr\n{}",
        out.stderr
    );
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["mismatches"], 0);
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{:#}",
        summary["errors"]
    );
}

fn open(path: &Path) -> Connection {
    Connection::open(path, 5000).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    conn.prepare(sql)
        .and_then(|mut s| s.all_rows())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn int(conn: &Connection, sql: &str) -> i64 {
    match rows(conn, sql).as_slice() {
        [row] => match row.as_slice() {
            [Value::Integer(n)] => *n,
            other => panic!("{sql}: {other:?}"),
        },
        other => panic!("{sql}: {other:?}"),
    }
}

fn journal(dir: &Path) -> Vec<Json> {
    plex_sim_journal(&dir.join("plex-sim-journal.jsonl"))
}

fn children_of<'a>(summary: &'a Json, kind: &str) -> Vec<&'a Json> {
    summary["children"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .collect()
}

/// The object a schema statement creates: `(name, is a virtual table)`.
fn created_name(statement: &str) -> (String, bool) {
    let virt = statement.starts_with("CREATE VIRTUAL TABLE");
    let rest = statement
        .trim_start_matches("CREATE TABLE IF NOT EXISTS ")
        .trim_start_matches("CREATE UNIQUE INDEX ")
        .trim_start_matches("CREATE INDEX ")
        .trim_start_matches("CREATE VIRTUAL TABLE ");
    let name: String = rest
        .split([' ', '('])
        .next()
        .unwrap()
        .trim_matches('"')
        .to_string();
    (name, virt)
}

#[test]
fn lays_out_plex_data_dir_and_creates_the_schema_from_the_fixture() {
    let dir = TempDir::new("sim_layout");
    let (out, summary) = sim(
        dir.path(),
        &[
            "--items",
            "500",
            "--threads",
            "1",
            "--iterations",
            "8",
            "--spawn",
            "none",
        ],
        Duration::from_secs(120),
    );
    ok(&out, &summary);
    assert!(library_db(dir.path()).is_file() && blobs_db(dir.path()).is_file());
    assert_eq!(
        summary["library_db"],
        library_db(dir.path()).display().to_string()
    );

    let fixture = std::fs::read_to_string(fixture("sqlite_schema.sql")).unwrap();
    let statements: Vec<&str> = fixture
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let report = &summary["schema"][0];
    assert_eq!(report["database"], "com.plexapp.plugins.library.db");
    assert_eq!(report["created"], true);
    assert_eq!(report["statements"], statements.len());
    let unsupported: HashSet<&str> = report["unsupported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["statement"].as_str().unwrap())
        .collect();
    assert_eq!(
        report["applied"].as_u64().unwrap() as usize + unsupported.len(),
        statements.len()
    );

    let lib = open(&library_db(dir.path()));
    let present: HashSet<String> = rows(&lib, "select name from sqlite_master")
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    for statement in &statements {
        let (name, virt) = created_name(statement);
        if unsupported.contains(statement) {
            assert!(
                virt,
                "only virtual tables may lack their module: {statement}"
            );
        } else {
            assert!(
                present.contains(&name),
                "{name} from the fixture is not in sqlite_master"
            );
        }
    }
    assert_eq!(
        int(
            &lib,
            "select count(*) from metadata_items where hash is null"
        ),
        500
    );
    let blobs = open(&blobs_db(dir.path()));
    assert_eq!(int(&blobs, "select count(*) from blobs"), 500);
    assert_eq!(
        int(
            &blobs,
            "select count(*) from sqlite_master where name='metadata_items'"
        ),
        0
    );
    drop((lib, blobs));

    // A second start finds the schema and the library, and writes neither again.
    let (out, again) = sim(
        dir.path(),
        &[
            "--items",
            "500",
            "--threads",
            "1",
            "--iterations",
            "8",
            "--spawn",
            "none",
        ],
        Duration::from_secs(120),
    );
    ok(&out, &again);
    assert_eq!(again["schema"][0]["created"], false);
    assert_eq!(again["fill"]["found"], 500);
    assert_eq!(again["fill"]["written"], 0);
    // ...and a different --items is refused, clearly.
    let (out, more) = sim(
        dir.path(),
        &["--items", "400", "--iterations", "1", "--spawn", "none"],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(1));
    assert!(
        more["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already holds 500 movies"),
        "{more:#}"
    );
}

#[test]
fn fills_40000_movies_and_the_hash_query_returns_each_exactly_once() {
    let dir = TempDir::new("sim_fill");
    let (out, summary) = sim(
        dir.path(),
        &["--threads", "1", "--iterations", "2", "--spawn", "none"],
        Duration::from_secs(300),
    );
    ok(&out, &summary);
    assert_eq!(summary["items"], 40_000);
    assert_eq!(summary["fill"]["written"], 40_000);
    assert!(
        out.stderr.contains("40000/40000 (100%"),
        "fill progress on stderr:\n{}",
        out.stderr
    );
    assert_eq!(summary["hash_queries"], 1);
    assert!(summary["rows_checked"].as_u64().unwrap() >= 40_000);

    let lib = open(&library_db(dir.path()));
    let got = rows(&lib, HASH_QUERY);
    assert_eq!(got.len(), 40_000);
    let ids: HashSet<i64> = got
        .iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref v => panic!("{v:?}"),
        })
        .collect();
    assert_eq!(ids, (1..=40_000).collect::<HashSet<i64>>());
    let guids: HashSet<String> = got.iter().map(|r| r[1].to_string()).collect();
    assert_eq!(guids.len(), 40_000, "every guid distinct");
    assert!(got
        .iter()
        .all(|r| matches!(&r[1], Value::Text(g) if g.starts_with("plex://movie/"))));
    assert_eq!(
        int(
            &lib,
            "select count(*) from media_items where metadata_item_id=id"
        ),
        40_000
    );
    assert_eq!(
        int(&lib, "select count(*) from media_parts where media_item_id=id and file like '/data/Movies/%.mkv'"),
        40_000
    );
    assert_eq!(
        int(
            &open(&blobs_db(dir.path())),
            "select count(*) from blobs where length(blob)>=64"
        ),
        1000
    );
}

#[test]
fn a_deliberately_wrong_result_fails_the_run() {
    let dir = TempDir::new("sim_wrong");
    let (out, summary) = sim(
        dir.path(),
        &[
            "--items",
            "300",
            "--iterations",
            "4",
            "--spawn",
            "none",
            "--fault",
            "wrong-result",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(summary["ok"], false);
    assert_eq!(
        summary["mismatches"], 1,
        "exactly the altered query: {summary:#}"
    );
    assert_eq!(summary["faults_injected"]["wrong-result"], 1);
    let message = summary["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(HASH_QUERY) && message.contains("deliberately-wrong"),
        "{message}"
    );
}

#[test]
fn every_child_kind_and_method_is_started_reaped_and_counted() {
    let dir = TempDir::new("sim_children");
    let args = [
        "--items",
        "2000",
        "--duration",
        "4",
        "--helper-ms",
        "200",
        "--scanner-parts",
        "10",
        "--transcoder-burst",
        "3",
        "--spawn",
        "tuner:fork=0.5",
        "--spawn",
        "script-host:vfork=0.5",
        "--spawn",
        "crash-uploader:posix-spawn=0.5",
        "--spawn",
        "transcoder:vfork=0.3",
        "--spawn",
        "scanner:posix-spawn=0.3",
        "--spawn",
        "fork-query=1",
    ];
    let (out, summary) = sim(dir.path(), &args, Duration::from_secs(180));
    ok(&out, &summary);
    let by_kind = &summary["children"]["by_kind"];
    for (kind, method) in [
        ("tuner", "fork+exec"),
        ("script-host", "vfork+exec"),
        ("crash-uploader", "posix_spawn"),
        ("transcoder", "vfork+exec"),
        ("scanner", "posix_spawn"),
        ("fork-query", "fork"),
    ] {
        let k = &by_kind[kind];
        let n = k["reaped"].as_u64().unwrap_or(0);
        assert!(n >= 1, "{kind} never started: {by_kind:#}");
        assert_eq!(k["methods"][method], n, "{kind} by {method}: {k:#}");
        assert_eq!(k["exit_codes"]["0"], n, "{kind} exit codes: {k:#}");
    }
    assert_eq!(
        by_kind["transcoder"]["reaped"].as_u64().unwrap() % 3,
        0,
        "transcoders come in bursts of 3"
    );
    let list = summary["children"]["list"].as_array().unwrap();
    assert_eq!(summary["children"]["started"], list.len());
    assert_eq!(summary["children"]["reaped"], list.len());
    assert!(
        summary["children"]["started_mid_hash_query"]
            .as_u64()
            .unwrap()
            >= 1,
        "{summary:#}"
    );

    // Every executed child journaled its own start, with the server as parent.
    let server = summary["pid"].as_i64().unwrap();
    let entries = journal(dir.path());
    let journaled: BTreeMap<i64, String> = entries
        .iter()
        .filter(|e| e["event"] == "child")
        .inspect(|e| assert_eq!(e["ppid"], server, "{e}"))
        .map(|e| {
            (
                e["pid"].as_i64().unwrap(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let executed: BTreeMap<i64, String> = list
        .iter()
        .filter(|c| c["kind"] != "fork-query")
        .map(|c| {
            (
                c["pid"].as_i64().unwrap(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(journaled, executed);

    // Each forked query child checked the whole hash query on its own connection.
    for c in children_of(&summary, "fork-query") {
        assert!(
            c["report"]
                .as_str()
                .unwrap()
                .starts_with("queries=1 rows=2000 mismatches=0"),
            "{c}"
        );
    }

    // The Scanners' parts are in the library, as journaled.
    let lib = open(&library_db(dir.path()));
    let parts: Vec<&Json> = entries
        .iter()
        .filter(|e| e["event"] == "committed" && e["table"] == "media_parts")
        .collect();
    assert_eq!(
        parts.len() as u64,
        10 * by_kind["scanner"]["reaped"].as_u64().unwrap()
    );
    assert_eq!(int(&lib, "select count(*) from media_parts join media_items on media_items.id=media_parts.media_item_id where media_items.library_section_id=2"), parts.len() as i64);
}

/// A socket peer that looks like PostgreSQL (`.s.PGSQL.<port>`), connected
/// and handed to plex-sim as fd 9, for the raw-write fault.
#[test]
fn each_fault_is_injected_and_counted() {
    let dir = TempDir::new("sim_faults");
    let listener = UnixListener::bind(dir.path().join(".s.PGSQL.5999")).unwrap();
    let client = std::os::unix::net::UnixStream::connect(dir.path().join(".s.PGSQL.5999")).unwrap();
    let (mut server_end, _) = listener.accept().unwrap();
    let fd = client.as_raw_fd();
    let mut cmd = plex_sim();
    cmd.arg("--data-dir").arg(dir.path()).args([
        "--items",
        "2000",
        "--duration",
        "3",
        "--spawn",
        "none",
        "--summary",
        "-",
    ]);
    cmd.args([
        "--fault",
        "stale-handle",
        "--fault",
        "raw-write",
        "--fault",
        "exit-after-failed-exec",
    ]);
    // SAFETY: dup2 in the child before exec; the new fd 9 is not close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run(&mut cmd, Duration::from_secs(120));
    drop(client);
    let summary: Json = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    ok(&out, &summary);
    for fault in ["stale-handle", "raw-write", "exit-after-failed-exec"] {
        assert_eq!(summary["faults_injected"][fault], 1, "{fault}: {summary:#}");
    }

    // raw-write: the bytes arrived at the PostgreSQL-looking peer, as a Query message.
    server_end
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = server_end.read_to_end(&mut got);
    assert_eq!(got.first(), Some(&b'Q'), "{got:?}");
    assert!(
        String::from_utf8_lossy(&got).contains("plex-sim raw write"),
        "{got:?}"
    );
    let raw = &children_of(&summary, "raw-write")[0];
    assert!(
        raw["report"]
            .as_str()
            .unwrap()
            .contains("on inherited fd 9"),
        "{raw}"
    );

    // stale-handle: the child queried through the parent's half-read handle.
    let stale = &children_of(&summary, "stale-handle")[0];
    assert!(
        stale["mid_hash_query_rows"].as_u64().unwrap() >= 1,
        "{stale}"
    );
    assert!(
        stale["report"]
            .as_str()
            .unwrap()
            .contains("answered [[Integer(2000)]]"),
        "{stale}"
    );

    // exit-after-failed-exec: exit code 127, and the exit handler ran in that child.
    let failed = &children_of(&summary, "exit-after-failed-exec")[0];
    assert_eq!(failed["exit_code"], 127);
    let pid = failed["pid"].as_i64().unwrap();
    assert!(
        out.stderr.contains(&format!(
            "plex-sim[{pid}] server: WARN exit handler: closing"
        )),
        "no exit handler output from pid {pid}:\n{}",
        out.stderr
    );
    // The parent's own work went on correct.
    assert!(summary["hash_queries"].as_u64().unwrap() >= 1);
}

#[test]
fn sigterm_ends_the_run_cleanly_and_every_committed_write_is_in_the_database() {
    let dir = TempDir::new("sim_term");
    let summary_path = dir.path().join("summary.json");
    let mut child = plex_sim()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--items",
            "2000",
            "--duration",
            "300",
            "--spawn",
            "scanner=1",
            "--spawn",
            "tuner=1",
            "--helper-ms",
            "60000",
        ])
        .arg("--summary")
        .arg(&summary_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while journal(dir.path())
        .iter()
        .filter(|e| e["event"] == "committed")
        .count()
        < 40
    {
        assert!(
            Instant::now() < deadline,
            "no committed writes journaled within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("plex-sim did not exit within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let summary: Json = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{summary:#}");
    assert_eq!(summary["stopped_by"], "SIGTERM");
    assert_eq!(summary["ok"], true, "{summary:#}");
    // The tuners were serving for a minute: they got TERM and left with 0.
    let tuners = children_of(&summary, "tuner");
    assert!(
        !tuners.is_empty() && tuners.iter().all(|t| t["exit_code"] == 0),
        "{tuners:?}"
    );
    for c in summary["children"]["list"].as_array().unwrap() {
        // SAFETY: kill with signal 0 only checks existence.
        let alive = unsafe { libc::kill(c["pid"].as_i64().unwrap() as i32, 0) } == 0;
        assert!(!alive, "child {c} still runs after plex-sim exited");
    }

    // Every journaled commit is in the database with its last journaled values.
    let entries = journal(dir.path());
    let server_pid = summary["pid"].clone();
    let server_commits = entries
        .iter()
        .filter(|e| e["event"] == "committed" && e["pid"] == server_pid)
        .count();
    assert_eq!(summary["writes_committed"], server_commits);
    let mut last: HashMap<(String, i64), &Json> = HashMap::new();
    for e in entries.iter().filter(|e| e["event"] == "committed") {
        last.insert(
            (
                e["table"].as_str().unwrap().to_string(),
                e["id"].as_i64().unwrap(),
            ),
            &e["values"],
        );
    }
    assert!(last.len() >= 10, "{} rows journaled", last.len());
    let lib = open(&library_db(dir.path()));
    for ((table, id), values) in &last {
        let columns: Vec<&String> = values.as_object().unwrap().keys().collect();
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(",");
        let got = rows(&lib, &format!("select {list} from {table} where id={id}"));
        assert_eq!(got.len(), 1, "{table} {id} is missing");
        for (col, v) in columns.iter().zip(&got[0]) {
            let want = match &values[col.as_str()] {
                Json::Number(n) => Value::Integer(n.as_i64().unwrap()),
                Json::String(s) => Value::Text(s.clone()),
                other => panic!("{other}"),
            };
            assert_eq!(v, &want, "{table} {id} {col}");
        }
    }
}

#[test]
fn the_start_up_reexec_parent_exits_while_the_child_serves() {
    let dir = TempDir::new("sim_reexec");
    let summary_path = dir.path().join("summary.json");
    let mut cmd = plex_sim();
    cmd.arg("--data-dir").arg(dir.path()).args([
        "--self-reexec",
        "--items",
        "300",
        "--iterations",
        "4",
        "--spawn",
        "none",
    ]);
    cmd.arg("--summary")
        .arg(&summary_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut parent = cmd.spawn().unwrap();
    let parent_pid = parent.id() as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = parent.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the first process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        !summary_path.exists(),
        "the first process writes no summary: the re-executed one does"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !summary_path.exists() {
        assert!(
            Instant::now() < deadline,
            "the re-executed process wrote no summary within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary: Json = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["reexeced_from"], parent_pid);
    assert_ne!(summary["pid"], parent_pid);
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert!(summary["hash_queries"].as_u64().unwrap() >= 1);
}

#[test]
fn timeout_bounds_the_run_and_reports_a_hang() {
    let dir = TempDir::new("sim_timeout");
    let started = Instant::now();
    let (out, summary) = sim(
        dir.path(),
        &[
            "--items",
            "300",
            "--duration",
            "600",
            "--timeout",
            "3",
            "--spawn",
            "tuner=1",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(summary["stopped_by"], "hang");
    assert!(
        summary["hang"].as_str().unwrap().contains("--timeout 3"),
        "{summary:#}"
    );
    let list = summary["children"]["list"].as_array().unwrap();
    assert!(!list.is_empty(), "tuners were started: {summary:#}");
    assert_eq!(
        summary["children"]["started"],
        list.len(),
        "every child started was killed and reaped"
    );
    for c in summary["children"]["list"].as_array().unwrap() {
        // SAFETY: kill with signal 0 only checks existence.
        assert!(
            unsafe { libc::kill(c["pid"].as_i64().unwrap() as i32, 0) } != 0,
            "child {c} left running"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = TempDir::new("sim_bad");
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["--data-dir", "x", "--spawn", "tunr"],
            2,
            "unknown child kind",
        ),
        (
            &["--data-dir", "x", "--spawn", "fork-query:vfork"],
            2,
            "fork without exec",
        ),
        (&["--data-dir", "x", "--items", "0"], 2, "--items"),
        (&["--items", "10"], 2, "--data-dir is required"),
        (
            &["--data-dir", "x", "--spawn", "none", "--spawn", "tuner"],
            2,
            "cannot be combined",
        ),
    ];
    for (args, code, message) in cases {
        let out = run(
            plex_sim().args(args).current_dir(dir.path()),
            Duration::from_secs(30),
        );
        assert_eq!(out.code, Some(code), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{args:?}: expected {message:?} in:\n{}",
            out.stderr
        );
    }
    // A data directory that cannot be made.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run(
        plex_sim()
            .arg("--data-dir")
            .arg(&file)
            .args(["--iterations", "1"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cannot create the databases directory"),
        "{}",
        out.stderr
    );
    // A helper that did not inherit the server's environment says so.
    let out = run(
        plex_sim()
            .args(["--child", "tuner", "--journal"])
            .arg(dir.path().join("j"))
            .env_remove("PLEX_SIM_PARENT"),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(4));
    assert!(
        out.stderr
            .contains("did not inherit the server's environment"),
        "{}",
        out.stderr
    );
}
