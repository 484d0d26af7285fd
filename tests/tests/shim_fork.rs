//! Fork during an in-flight query, as in the January 2026 incident.
//!
//! With the fork handler: the parent streams all 40,000 rows while it forks
//! 200 times; each child's pool is empty (its AfterFork report), it holds
//! none of the parent's PostgreSQL sockets (socket inodes in /proc), and it
//! can open its own connection and query. With `PLEX_PG_FORK_HANDLER=0`
//! and a child using the connection it inherited, the parent's query
//! breaks: the crash, reproduced.

use plex_pg_config::report::{FdRole, Message};
use plex_pg_tests::{python_with_shim, run, schema_with, ReportSink, TempDir};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

const ROWS: i64 = 40_000;

fn library_schema(prefix: &str) -> String {
    schema_with(
        prefix,
        &format!(
            "CREATE TABLE metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
             INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, {ROWS}) g"
        ),
    )
}

#[test]
fn fork_during_the_hash_query_200_times() {
    let schema = library_schema("fork");
    let dir = TempDir::new("fork");
    let db = dir.library_db();
    let sink = ReportSink::new();
    let mut cmd = python_with_shim("fork_stream.py", &schema, &[&db, "200"]);
    cmd.env("PLEX_PG_SUPERVISOR", &sink.path);
    let out = run(&mut cmd, Duration::from_secs(240));
    out.assert_ok();
    let got: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(got["rows"], ROWS, "every row, once");
    assert_eq!(got["bad"], 0, "in order, none altered");
    let children = got["children"].as_array().unwrap();
    assert_eq!(children.len(), 200);
    let parent = got["pid"].as_i64().unwrap() as i32;

    std::thread::sleep(Duration::from_millis(200)); // let the last datagrams arrive
    let reports = sink.messages();
    let parent_sockets: HashSet<u64> = reports
        .iter()
        .filter_map(|m| match m {
            Message::Connected { pid, inode, .. } if *pid == parent => Some(*inode),
            _ => None,
        })
        .collect();
    assert!(
        !parent_sockets.is_empty(),
        "the parent reported its connections: {reports:?}"
    );
    for child in children {
        let pid = child["pid"].as_i64().unwrap() as i32;
        assert_eq!(child["exit"], 0);
        assert_eq!(
            child["count"], ROWS,
            "the child queried on its own connection"
        );
        let held: HashSet<u64> = child["held"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            held.is_disjoint(&parent_sockets),
            "child {pid} holds a parent PostgreSQL socket: {held:?} vs {parent_sockets:?}"
        );
        let after_fork = reports
            .iter()
            .find_map(|m| match m {
                Message::AfterFork {
                    pid: p,
                    ppid,
                    slots_in_use,
                    harmless,
                    ..
                } if *p == pid => Some((*ppid, *slots_in_use, harmless.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no AfterFork from child {pid}"));
        assert_eq!(after_fork.0, parent);
        assert_eq!(after_fork.1, 0, "the child's pool is empty");
        let neutralized: HashSet<u64> = after_fork
            .2
            .iter()
            .filter(|h| h.role == FdRole::Socket)
            .map(|h| h.inode)
            .collect();
        assert!(
            !neutralized.is_empty() && neutralized.is_subset(&parent_sockets),
            "{neutralized:?}"
        );
    }
}

#[test]
fn without_the_fork_handler_the_parent_query_breaks() {
    let schema = library_schema("crash");
    let dir = TempDir::new("crash");
    let db = dir.library_db();
    let mut cmd = python_with_shim("fork_crash.py", &schema, &[&db, &ROWS.to_string()]);
    cmd.env("PLEX_PG_FORK_HANDLER", "0");
    let out = run(&mut cmd, Duration::from_secs(20));
    assert!(
        out.stderr.contains("fork handler is OFF"),
        "the shim warns loudly: {}",
        out.stderr
    );
    let completed = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["complete"] == true);
    assert!(
        !completed,
        "the parent must not get its rows intact:\n{}",
        out.stdout
    );
    // Either a hang (bounded by the timeout) or an error / wrong rows.
    assert!(
        out.timed_out || out.stdout.contains("\"error\"") || out.stdout.contains("\"bad\""),
        "{out:?}"
    );

    // The same program with the handler on completes.
    let out = run(
        &mut python_with_shim("fork_crash.py", &schema, &[&db, &ROWS.to_string()]),
        Duration::from_secs(60),
    );
    out.assert_ok();
    assert!(out.stdout.contains("\"complete\": true"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("\"child_count\": {ROWS}")),
        "{}",
        out.stdout
    );
}

#[test]
fn reports_announce_the_process_and_every_connection() {
    let sink = ReportSink::new();
    let dir = TempDir::new("reports");
    let db = dir.library_db();
    // pool.size 0: a connection is closed as soon as it is released.
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(plex_pg_tests::python_script("attempt.py"))
        .args([db.as_str(), "SELECT 1", "SELECT 2"])
        .envs(plex_pg_tests::pg().env("reports"))
        .env("LD_PRELOAD", plex_pg_tests::shim())
        .env("PLEX_PG_POOL_SIZE", "0")
        .env("PLEX_PG_SUPERVISOR", &sink.path);
    run(&mut cmd, Duration::from_secs(60)).assert_ok();
    std::thread::sleep(Duration::from_millis(200));
    let reports = sink.messages();
    let hellos: Vec<_> = reports
        .iter()
        .filter(|m| matches!(m, Message::Hello { .. }))
        .collect();
    assert_eq!(hellos.len(), 1, "{reports:?}");
    let Message::Hello {
        pool_capacity,
        fork_handler,
        shim_version,
        ..
    } = hellos[0]
    else {
        unreachable!()
    };
    assert_eq!((*pool_capacity, *fork_handler), (32, true));
    assert_eq!(shim_version, env!("CARGO_PKG_VERSION"));
    let connected: Vec<(i32, u64)> = reports
        .iter()
        .filter_map(|m| match m {
            Message::Connected { fd, inode, .. } => Some((*fd, *inode)),
            _ => None,
        })
        .collect();
    let closed: Vec<(i32, u64)> = reports
        .iter()
        .filter_map(|m| match m {
            Message::Closed { fd, inode, .. } => Some((*fd, *inode)),
            _ => None,
        })
        .collect();
    assert!(
        connected.len() >= 2,
        "open check + two statements: {reports:?}"
    );
    assert_eq!(
        connected, closed,
        "every connection opened was reported closed, with the same fd and inode"
    );
}

#[test]
fn a_burst_of_forks_loses_no_report() {
    use std::io::{BufRead, Write};
    let schema = library_schema("burst");
    let dir = TempDir::new("burst");
    let db = dir.library_db();
    let sink = ReportSink::new();
    let mut child = python_with_shim("fork_burst.py", &schema, &[&db, "40"])
        .env("PLEX_PG_SUPERVISOR", &sink.path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // The "launcher" is busy for 300 ms while 40 children are born: its
    // queue (10 datagrams) fills up long before it reads again.
    sink.pause(true);
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sink.pause(false);
    let got: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(got["rest"], ROWS - 1);
    std::thread::sleep(Duration::from_millis(300));
    let children: HashSet<i64> = got["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    let reported: HashSet<i64> = sink
        .messages()
        .iter()
        .filter_map(|m| match m {
            Message::AfterFork { pid, .. } => Some(*pid as i64),
            _ => None,
        })
        .collect();
    assert_eq!(children.len(), 40);
    assert!(
        children.is_subset(&reported),
        "lost: {:?}",
        children.difference(&reported).collect::<Vec<_>>()
    );
}
