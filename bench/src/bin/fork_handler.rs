//! The child's fork handler, timed inside the child (the shim records its
//! duration; `plex_pg_last_fork_handler_ns`), with 1, 8 and 64 PostgreSQL
//! connections open in the pool, each streaming a result, as when Plex
//! forks during queries. Prints median and p99 over 300 forks each, and
//! writes them to `<target>/plex-pg-bench/fork-handler.json` for the table.

use plex_pg_bench::capi::Db;
use plex_pg_bench::{fixture, results, stats};
use serde_json::json;

const CHILD: &str = "PLEX_PG_BENCH_CHILD";
const FORKS: usize = 300;

fn library(i: usize) -> String {
    format!("/nonexistent/{i}/com.plexapp.plugins.library.db")
}

/// Fork `FORKS` times; each child reports how long its handler took.
fn measure() -> Vec<f64> {
    let sym = c"plex_pg_last_fork_handler_ns";
    // SAFETY: looking up the shim's diagnostic export.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, sym.as_ptr()) };
    assert!(!f.is_null(), "the shim is not preloaded");
    // SAFETY: the export's signature.
    let last_ns: extern "C" fn() -> u64 = unsafe { std::mem::transmute(f) };
    let mut out = Vec::with_capacity(FORKS);
    for _ in 0..FORKS {
        let mut fds = [0; 2];
        // SAFETY: pipe, fork, write, _exit, waitpid: the classic pattern.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let pid = libc::fork();
            if pid == 0 {
                let ns = last_ns();
                libc::write(fds[1], (&ns as *const u64).cast(), 8);
                libc::_exit(0);
            }
            libc::close(fds[1]);
            let mut ns = 0u64;
            assert_eq!(libc::read(fds[0], (&mut ns as *mut u64).cast(), 8), 8);
            libc::close(fds[0]);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            out.push(ns as f64);
        }
    }
    out
}

fn main() {
    if std::env::var_os(CHILD).is_none() {
        let cluster = fixture::server();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .envs(fixture::shim_env(&cluster))
            .env("PLEX_PG_POOL_MAX", "64")
            .env("PLEX_PG_POOL_SIZE", "64")
            .env("LD_PRELOAD", plex_pg_tests::shim())
            .env(CHILD, "1")
            .status()
            .expect("re-run with the shim");
        // exit() runs no destructor: stop and remove the cluster first.
        drop(cluster);
        std::process::exit(status.code().unwrap_or(1));
    }
    println!("connections  handler median  handler p99  (ns, {FORKS} forks each)");
    let mut figures = serde_json::Map::new();
    for open in [1usize, 8, 64] {
        let dbs: Vec<Db> = (0..open).map(|i| Db::open(&library(i))).collect();
        let mut stmts: Vec<_> = dbs
            .iter()
            .map(|d| d.prepare("SELECT id, guid FROM metadata_items"))
            .collect();
        for st in stmts.iter_mut() {
            assert!(
                st.step(),
                "each handle streams a result, holding its connection"
            );
        }
        let (median, p99) = stats::median_p99(&mut measure());
        println!("{open:>11}  {median:>14.0}  {p99:>11.0}");
        figures.insert(
            open.to_string(),
            json!({ "median_ns": median, "p99_ns": p99, "forks": FORKS }),
        );
        drop(stmts);
        drop(dbs);
    }
    results::write("fork-handler", &json!({ "connections": figures }));
}
