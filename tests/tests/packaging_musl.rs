//! The shim that ships, in a process laid out as Plex is: the musl build of
//! libplex_pg_shim.so (packaging/build-musl.sh) preloaded into a musl
//! program that reaches SQLite through a musl libsqlite3.so on
//! LD_LIBRARY_PATH and whose program interpreter is a bundled musl loader
//! (packaging/plex-like/). Started by the real launcher, as the systemd
//! drop-in does, against a real PostgreSQL: the incident's hash query
//! streams 40,000 rows while the process forks 40 times in the middle of
//! it; every child's pool must be empty (the musl shim's AfterFork report,
//! and the kernel's view of its sockets), every child's own connection must
//! work, and the parent must get every row.

#[path = "launcher_support.rs"]
mod launcher_support;
#[path = "packaging_support.rs"]
mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use plex_pg_tests::{pg, run, schema_with, TempDir};
use serde_json::Value;
use support::{arch, musl_shim, needed, script, step, target_dir};

const ROWS: i64 = 40_000;
const FORK_EVERY: i64 = 1_000;

/// The Plex-like musl tree: stand-in, libsqlite3.so, bundled loader.
fn plex_like() -> PathBuf {
    let dir = target_dir().join("plex-like");
    let arg = dir.display().to_string();
    step("lay out the Plex-like musl tree (packaging/plex-like/build.sh)", &mut script("plex-like/build.sh", &[&arg]), Duration::from_secs(15 * 60));
    dir
}

#[test]
fn the_musl_shim_needs_only_musl_libc() {
    let shim = musl_shim();
    assert_eq!(needed(&shim), ["libc.so"], "{} must need musl's libc.so and nothing else", shim.display());
    let out = run(Command::new("readelf").arg("-h").arg(&shim), Duration::from_secs(30));
    out.assert_ok();
    assert!(out.stdout.contains("DYN (Shared object file)"), "{}", out.stdout);
}

#[test]
fn fork_during_the_hash_query_in_a_musl_plex_like_process() {
    let shim = musl_shim();
    let tree = plex_like();
    let standin = tree.join("Plex Media Server");
    let loader = tree.join(format!("lib/ld-musl-{}.so.1", arch()));
    let mut libs = needed(&standin);
    libs.sort();
    assert_eq!(libs, ["libc.so", "libsqlite3.so"], "the stand-in links SQLite dynamically, as Plex does");
    let headers = run(Command::new("readelf").arg("-l").arg(&standin), Duration::from_secs(30));
    assert!(
        headers.stdout.contains(&format!("[Requesting program interpreter: {}]", loader.display())),
        "the stand-in runs on the bundled musl loader:\n{}",
        headers.stdout
    );

    let schema = schema_with(
        "musl",
        &format!(
            "CREATE TABLE metadata_items (id bigint PRIMARY KEY, guid text, hash text); \
             INSERT INTO metadata_items SELECT g, 'guid-' || g, NULL FROM generate_series(1, {ROWS}) g"
        ),
    );
    let data = TempDir::new("musl-data");
    let mut l = launcher_support::Launcher::new();
    l.shim = shim;
    l.cmd.envs(pg().env(&schema)).env("LD_LIBRARY_PATH", tree.join("lib"));
    let dir = data.path().display().to_string();
    let standin_arg = standin.display().to_string();
    let r = l.run(&[&standin_arg, &dir, &ROWS.to_string(), &FORK_EVERY.to_string()], Duration::from_secs(90));
    assert_eq!(r.code, Some(0), "{}", r.dump());

    let got: Value = serde_json::from_str(r.stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON from the stand-in ({e})\n{}", r.dump()));
    assert_eq!(got["done"], true, "{got}");
    assert_eq!(got["rows"], ROWS, "the parent got every row: {got}");
    assert_eq!(got["bad"], 0, "no row altered or repeated: {got}");
    assert_eq!(got["missing"], 0, "{got}");
    assert_eq!(got["updated"], 100, "the hash fix-up's transaction: {got}");
    assert_eq!(got["passthrough"]["count"], 3, "com.plexapp.dlna.db on the real musl SQLite: {got}");
    let header = std::fs::read(data.path().join("com.plexapp.dlna.db")).expect("com.plexapp.dlna.db is a real SQLite file");
    assert!(header.starts_with(b"SQLite format 3\0"));
    assert_eq!(
        pg().psql(&format!("SELECT count(*) FROM {schema}.metadata_items WHERE hash = 'h' || id")).trim(),
        "100",
        "the fix-up reached PostgreSQL"
    );

    let children = got["children"].as_array().expect("children");
    assert_eq!(children.len() as i64, ROWS / FORK_EVERY, "{got}");
    for child in children {
        let pid = child["pid"].as_i64().unwrap();
        assert_eq!(child["exit"], 0, "{child}");
        assert_eq!(child["count"], ROWS, "child {pid} queried on its own connection: {child}");
        let fork = r.event_for("fork", pid);
        assert_eq!(fork["kind"], "fork", "{fork}");
        let inherited: HashSet<u64> =
            fork["inherited"].as_array().unwrap().iter().map(|s| s["inode"].as_u64().unwrap()).collect();
        assert!(!inherited.is_empty(), "forked while the stream held a PostgreSQL connection: {fork}");
        let held: HashSet<u64> = child["held"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert!(held.is_disjoint(&inherited), "child {pid} still holds a parent PostgreSQL socket: {held:?} {inherited:?}");
        let check = r.event_for("pool_check", pid);
        assert_eq!(check["verdict"], "ok", "{check}");
        assert_eq!(check["report"], true, "the musl shim's fork handler reported: {check}");
        assert_eq!(check["slots_in_use"], 0, "{check}");
        assert_eq!(check["unreported"], serde_json::json!([]), "{check}");
    }
    let summary = r.summary();
    assert_eq!(summary["pool_check_violations"], 0, "{}", r.dump());
    assert_eq!(summary["inherited_fd_uses"], 0, "{}", r.dump());
    assert_eq!(summary["watcher"], "ptrace", "{}", r.dump());
}
