//! `sql-fuzz [SEED] [COUNT] [--emit FILE]`: the differential SQL fuzzer's
//! long run (`bench/fuzz-sql.sh` builds and runs it). Generates COUNT
//! units (default 2000) from SEED (default 1), runs them on real SQLite
//! and through the shim (on a throwaway PostgreSQL, or the one
//! `PLEX_PG_TEST_SOCKET_DIR`/`PLEX_PG_TEST_PORT` name), prints the
//! summary, and exits 1 when it found a new difference. `--emit FILE`
//! writes the run as a case file for `tests/sql/run_case.py` instead;
//! `--case FILE` runs a case file both ways and prints its differences
//! outside its `-- gap:` marks (a gap may name `error`).
//! See `docs/fuzzing.md`.

use plex_pg_tests::fuzz;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut numbers = Vec::new();
    let mut emit = None;
    let mut case = None;
    while let Some(a) = args.next() {
        if a == "--emit" {
            emit = args.next();
        } else if a == "--case" {
            case = args.next();
        } else if let Ok(n) = a.parse::<u64>() {
            numbers.push(n);
        } else {
            eprintln!("usage: sql-fuzz [SEED] [COUNT] [--emit FILE] | --case FILE");
            std::process::exit(2);
        }
    }
    if let Some(path) = case {
        let check = fuzz::compare::case_differences(std::path::Path::new(&path));
        for d in &check.differences {
            println!("{d}");
        }
        for sql in &check.stale_gaps {
            println!("{sql}\n  agrees: its gap is stale");
        }
        println!(
            "{path}: {} difference(s) outside its gaps, {} stale gap(s)",
            check.differences.len(),
            check.stale_gaps.len()
        );
        std::process::exit(i32::from(!check.differences.is_empty()));
    }
    let seed = numbers.first().copied().unwrap_or(1);
    let count = numbers.get(1).copied().unwrap_or(2000) as usize;
    if let Some(path) = emit {
        std::fs::write(&path, fuzz::case_file(seed, count))
            .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        return;
    }
    let start = std::time::Instant::now();
    let report = fuzz::run(seed, count);
    print!("{}", report.summary());
    println!("({:.1} s)", start.elapsed().as_secs_f64());
    if !report.new_differences().is_empty() {
        std::process::exit(1);
    }
}
