//! The shim that ships, in a process laid out as Plex is: the musl build of
//! libplex_pg_shim.so (packaging/build-musl.sh) preloaded into plex-sim, the
//! stand-in for Plex, built for musl and reaching SQLite through a musl
//! libsqlite3.so on LD_LIBRARY_PATH, with a bundled musl loader as its
//! program interpreter (packaging/plex-like/). Started by the real launcher,
//! as the systemd drop-in does, against a real PostgreSQL: plex-sim creates
//! Plex's schema and a 40,000-movie library through the musl shim, streams
//! the incident's hash query on worker threads, and starts children in
//! every way Plex does while it is in flight — forks without exec that run
//! the whole query on their own connection, fork+exec, vfork+exec,
//! posix_spawn. Every result is checked by plex-sim, every child's pool by
//! the launcher (the musl shim's AfterFork report and the kernel's view).

#[path = "launcher_support.rs"]
mod launcher_support;
#[path = "packaging_support.rs"]
mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use plex_pg_tests::{pg, run, unique_name, TempDir};
use serde_json::Value;
use support::{arch, musl_shim, needed, script, step, target_dir};

const ITEMS: i64 = 40_000;

/// The Plex-like musl tree: plex-sim as "Plex Media Server", libsqlite3.so, bundled loader.
fn plex_like() -> PathBuf {
    let dir = target_dir().join("plex-like");
    let arg = dir.display().to_string();
    step(
        "lay out the Plex-like musl tree (packaging/plex-like/build.sh)",
        &mut script("plex-like/build.sh", &[&arg]),
        Duration::from_secs(40 * 60),
    );
    dir
}

/// The SQLite version of the amalgamation the tree's libsqlite3.so is built from.
fn amalgamation_version(tree: &std::path::Path) -> String {
    let src = std::fs::read_dir(tree.join("src"))
        .unwrap()
        .flatten()
        .next()
        .expect("the amalgamation's sources")
        .path();
    let header = std::fs::read_to_string(src.join("sqlite3/sqlite3.h")).unwrap();
    let line = header
        .lines()
        .find(|l| l.starts_with("#define SQLITE_VERSION "))
        .unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn the_musl_shim_needs_only_musl_libc() {
    let shim = musl_shim();
    assert_eq!(
        needed(&shim),
        ["libc.so"],
        "{} must need musl's libc.so and nothing else",
        shim.display()
    );
    let out = run(
        Command::new("readelf").arg("-h").arg(&shim),
        Duration::from_secs(30),
    );
    out.assert_ok();
    assert!(
        out.stdout.contains("DYN (Shared object file)"),
        "{}",
        out.stdout
    );
}

#[test]
fn plex_sim_on_musl_forks_during_the_hash_query_and_every_child_is_clean() {
    let shim = musl_shim();
    let tree = plex_like();
    let sim = tree.join("Plex Media Server");
    let loader = tree.join(format!("lib/ld-musl-{}.so.1", arch()));
    let mut libs = needed(&sim);
    libs.sort();
    assert_eq!(
        libs,
        ["libc.so", "libsqlite3.so"],
        "plex-sim on musl links SQLite dynamically, as Plex does"
    );
    let headers = run(
        Command::new("readelf").arg("-l").arg(&sim),
        Duration::from_secs(30),
    );
    assert!(
        headers.stdout.contains(&format!(
            "[Requesting program interpreter: {}]",
            loader.display()
        )),
        "plex-sim runs on the bundled musl loader:\n{}",
        headers.stdout
    );

    let schema = unique_name("musl");
    let data = TempDir::new("musl-data");
    let mut l = launcher_support::Launcher::new();
    l.shim = shim;
    l.cmd
        .envs(pg().env(&schema))
        .env("LD_LIBRARY_PATH", tree.join("lib"));
    let sim_arg = sim.display().to_string();
    let dir = data.path().display().to_string();
    let items = ITEMS.to_string();
    #[rustfmt::skip]
    let args = [
        sim_arg.as_str(), "--data-dir", &dir, "--items", &items, "--fill-rows-per-insert", "500", "--duration", "8",
        "--spawn", "fork-query=3", "--spawn", "tuner", "--spawn", "script-host", "--spawn", "crash-uploader",
        "--summary", "-", "--quiet",
    ];
    let r = l.run(&args, Duration::from_secs(400));
    assert_eq!(r.code, Some(0), "{}", r.dump());

    let got: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("no plex-sim summary ({e})\n{}", r.dump()));
    assert_eq!(got["ok"], true, "{got:#}");
    assert_eq!(got["mismatches"], 0, "{got:#}");
    assert_eq!(got["items"], ITEMS);
    assert_eq!(
        got["sqlite_version"],
        amalgamation_version(&tree),
        "SQLite is the musl libsqlite3.so of the tree"
    );
    assert!(got["hash_queries"].as_u64().unwrap() >= 1, "{got:#}");
    assert_eq!(
        pg().psql(&format!("SELECT count(*) FROM {schema}.metadata_items"))
            .trim(),
        items,
        "the library is on PostgreSQL"
    );

    let children = got["children"]["list"].as_array().expect("children");
    let methods: HashSet<&str> = children
        .iter()
        .filter_map(|c| c["method"].as_str())
        .collect();
    for method in ["fork", "fork+exec", "vfork+exec", "posix_spawn"] {
        assert!(
            methods.contains(method),
            "a child started by {method}: {methods:?}"
        );
    }
    let forked: Vec<&Value> = children
        .iter()
        .filter(|c| c["kind"] == "fork-query")
        .collect();
    assert!(
        forked.len() >= 5,
        "forks without exec during the run: {got:#}"
    );
    for child in &forked {
        let pid = child["pid"].as_i64().unwrap();
        assert_eq!(child["exit_code"], 0, "{child}");
        assert_eq!(
            child["report"],
            format!("queries=1 rows={ITEMS} mismatches=0"),
            "child {pid} ran the whole hash query on its own connection: {child}"
        );
        assert!(
            child["mid_hash_query_rows"].as_i64().unwrap() > 0,
            "born while the parent's hash query was in flight: {child}"
        );
        let fork = r.event_for("fork", pid);
        assert_eq!(fork["kind"], "fork", "{fork}");
        assert!(
            !fork["inherited"].as_array().unwrap().is_empty(),
            "it inherited the parent's PostgreSQL connections: {fork}"
        );
        let check = r.event_for("pool_check", pid);
        assert_eq!(check["verdict"], "ok", "{check}");
        assert_eq!(
            check["report"], true,
            "the musl shim's fork handler reported: {check}"
        );
        assert_eq!(check["slots_in_use"], 0, "{check}");
        assert_eq!(check["unreported"], serde_json::json!([]), "{check}");
    }
    for child in children {
        let check = r.event_for("pool_check", child["pid"].as_i64().unwrap());
        assert_eq!(check["verdict"], "ok", "{check}");
    }
    let summary = r.summary();
    assert_eq!(summary["pool_check_violations"], 0, "{}", r.dump());
    assert_eq!(summary["inherited_fd_uses"], 0, "{}", r.dump());
    assert_eq!(summary["watcher"], "ptrace", "{}", r.dump());
}

/// `check` runs the musl loader's list mode on the shim: the loader Plex
/// uses (here the system's musl loader stands in for Plex's bundled one)
/// loads the musl build and refuses a glibc build, which Plex's loader
/// would silently skip at Plex's start.
#[test]
fn check_asks_the_musl_loader_whether_it_loads_the_shim() {
    let loader = format!("/lib/ld-musl-{}.so.1", arch());
    if !std::path::Path::new(&loader).exists() {
        panic!("{loader} is missing: bash packaging/install-deps.sh installs musl");
    }
    let check = |shim: &std::path::Path| {
        let out = plex_pg_tests::run(
            Command::new(plex_pg_tests::artifact("plex-pg-launcher"))
                .arg("--shim")
                .arg(shim)
                .arg("check")
                .env("PLEX_PG_CONFIG", "/dev/null"),
            Duration::from_secs(60),
        );
        out.stdout
            .lines()
            .find(|l| l.contains(" loader: "))
            .unwrap_or_else(|| panic!("no loader line:\n{}", out.stdout))
            .to_string()
    };
    let musl = check(&musl_shim());
    assert!(
        musl.starts_with("ok   loader: ") && musl.contains(&format!("{loader} loads ")),
        "{musl}"
    );
    let glibc = check(&plex_pg_tests::shim());
    assert!(
        glibc.starts_with("WARN loader: ")
            && glibc.contains("cannot load")
            && glibc.contains("not a glibc build"),
        "{glibc}"
    );
}
