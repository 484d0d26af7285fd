//! The import against its anchors (issue 13): `plex-pg-launcher import`,
//! `pgloader` and a bare `COPY` loading the same generated library into
//! the same throwaway PostgreSQL server, interleaved round after round.
//!
//! - import: `plex-pg-launcher import --from DIR` into a fresh schema, the
//!   whole command (check every value, load, indexes, FTS, read back and
//!   compare, switch), under `/usr/bin/time -v` for its peak memory; also a
//!   library of a tenth the size, for the per-row cost at both sizes.
//! - pgloader: `LOAD DATABASE FROM sqlite://… INTO postgresql://…` into a
//!   fresh database (tables and indexes created by pgloader, its own type
//!   mapping), under `/usr/bin/time -v`.
//! - COPY: `psql` running one `\copy … FROM` per table, of files dumped
//!   once, before the rounds, from what the first import loaded (the same
//!   rows), into tables of the same columns made before the clock starts,
//!   without key, index or trigger.
//!
//! Rows/s is the rows of the library file's tables (as the import loads
//! them; the same rows the COPY loads) over each one's whole wall time, so
//! the ratios are ratios of times. pgloader loads those rows plus the FTS
//! and R*Tree shadow tables' (which the import rebuilds instead); the
//! import also loads the blobs file (a few hundred rows). Prints a Markdown
//! table; the figures also go to `<target>/plex-pg-bench/import.json`.
//!
//!   import-bench [--rounds 15] [--items 100000] [--small-items 10000]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use plex_pg_bench::{cli, results, stats::rotation, stats::Spread};
use plex_pg_tests::{Cluster, TempDir, PG_DATABASE, PG_PASSWORD, PG_USER};
use serde_json::json;

const LIB: &str = "com.plexapp.plugins.library.db";

/// One measured run: wall seconds, peak RSS (KiB, GNU time's), stderr.
struct Timed {
    secs: f64,
    peak_kib: u64,
    stdout: String,
    stderr: String,
}

fn timed(cmd: &mut Command, what: &str) -> Timed {
    timed_as(cmd, what, true)
}

/// `must`: a failure stops the benchmark (otherwise it is printed).
fn timed_as(cmd: &mut Command, what: &str, must: bool) -> Timed {
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !must {
        eprintln!("{what} failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    if !out.status.success() && must {
        panic!("{what} failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    let peak_kib = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Timed {
        secs,
        peak_kib,
        stdout,
        stderr,
    }
}

/// The import's own load phase: the rows and seconds of every table's
/// `COPY` (reading SQLite, encoding, `COPY`), from its `loaded T: N rows,
/// … (R rows/s)` lines (N / R: more precise than the printed seconds).
fn copy_phase(stdout: &str) -> (f64, f64) {
    let (mut rows, mut secs) = (0.0, 0.0);
    for line in stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("loaded "))
    {
        let n: f64 = line
            .split(": ")
            .nth(1)
            .and_then(|x| x.split_whitespace().next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        let open = line.rfind('(').unwrap_or_else(|| panic!("{line}"));
        let rate: f64 = line[open + 1..]
            .split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        rows += n;
        secs += n / rate;
    }
    (rows, secs)
}

fn make_library(dir: &Path, items: usize) {
    let out = plex_pg_tests::plex_sim_library(&[
        "generate",
        "--dir",
        &dir.display().to_string(),
        "--items",
        &items.to_string(),
    ])
    .output()
    .expect("plex-sim");
    assert!(out.status.success(), "plex-sim library generate: {out:?}");
    // One file for all three: no WAL beside it.
    let db = dir.join(LIB);
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "sqlite3 checkpoint: {out:?}");
}

struct Bench {
    cluster: Cluster,
    launcher: std::path::PathBuf,
}

impl Bench {
    fn psql(&self, sql: &str) -> String {
        self.cluster.psql(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    fn psql_db(&self, db: &str, sql: &str) -> String {
        let bin = plex_pg_tests::cluster::find_pg_bin().expect("psql");
        plex_pg_tests::cluster::psql(
            &bin,
            self.cluster.socket_dir(),
            self.cluster.port(),
            PG_USER,
            db,
            sql,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Rows in every ordinary table of `schema` (of database `db`); with
    /// `fts` false, not the full-text tables the import rebuilds (`fts4_*`:
    /// not rows of the library file, not counted by the import either).
    fn rows_in(&self, db: &str, schema: &str, fts: bool) -> u64 {
        let tables: Vec<String> = self
            .tables(db, schema)
            .into_iter()
            .filter(|t| fts || !t.starts_with("fts4_"))
            .collect();
        if tables.is_empty() {
            return 0;
        }
        let sum = tables
            .iter()
            .map(|t| format!("(SELECT count(*) FROM \"{schema}\".\"{t}\")"))
            .collect::<Vec<_>>()
            .join(" + ");
        self.psql_db(db, &format!("SELECT {sum}"))
            .trim()
            .parse()
            .unwrap()
    }

    fn tables(&self, db: &str, schema: &str) -> Vec<String> {
        self.psql_db(
            db,
            &format!(
                "SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY tablename"
            ),
        )
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
    }

    /// The import renames the library file it has imported (so Plex cannot
    /// open the old copy): each import gets a fresh copy, made untimed.
    fn import(&self, pristine: &Path, schema: &str) -> Timed {
        let dir = pristine.with_extension("run");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in std::fs::read_dir(pristine).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-v")
            .arg(&self.launcher)
            .args(["import", "--from"])
            .arg(&dir)
            .envs(plex_pg_bench::fixture::shim_env_for(&self.cluster, schema));
        timed(&mut cmd, "plex-pg-launcher import")
    }

    fn drop_import(&self, schema: &str) {
        self.psql(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS {schema}_blobs CASCADE"
        ));
    }

    fn pgloader(&self, load: &Path, db: &str) -> Timed {
        self.psql(&format!("CREATE DATABASE {db} OWNER {PG_USER}"));
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-v").arg("pgloader").arg(load);
        timed_as(&mut cmd, "pgloader", false)
    }
}

fn main() {
    let rounds: usize = cli::opt("rounds", 15);
    let items: usize = cli::opt("items", 100_000);
    let small_items: usize = cli::opt("small-items", 10_000);
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let tmp = TempDir::new("plex-pg-bench-import");
    let large = tmp.path().join("large");
    let small = tmp.path().join("small");
    eprintln!("== libraries of {items} and {small_items} items (plex-sim library generate)");
    make_library(&large, items);
    make_library(&small, small_items);

    let bench = Bench {
        cluster: Cluster::start().expect("start PostgreSQL"),
        launcher: plex_pg_tests::artifact("plex-pg-launcher"),
    };
    let version = Command::new("pgloader")
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|e| panic!("pgloader: {e} (bench/import.sh installs it)"));
    eprintln!("{version}");

    // Warm-up import: what the bare COPY loads, and how many rows each loads.
    eprintln!("== warm-up: one import, the COPY files dumped from it");
    let first = bench.import(&large, "warm");
    eprintln!("{}", first.stdout);
    let main_rows = bench.rows_in(PG_DATABASE, "warm", false);
    let import_rows = main_rows + bench.rows_in(PG_DATABASE, "warm_blobs", false);
    let copy_dir = tmp.path().join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    // The tables of the library file (not the FTS tables the import
    // rebuilds from them).
    let tables: Vec<String> = bench
        .tables(PG_DATABASE, "warm")
        .into_iter()
        .filter(|t| !t.starts_with("fts4_"))
        .collect();
    let mut script = String::new();
    let mut ddl = String::new();
    for t in &tables {
        let file = copy_dir.join(format!("{t}.copy"));
        bench.psql(&format!(
            "\\copy (SELECT * FROM warm.\"{t}\") TO '{}'",
            file.display()
        ));
        ddl.push_str(&format!(
            "CREATE TABLE SCHEMA.\"{t}\" (LIKE warm.\"{t}\");\n"
        ));
        script.push_str(&format!(
            "\\copy SCHEMA.\"{t}\" FROM '{}'\n",
            file.display()
        ));
    }
    eprintln!(
        "import: {import_rows} rows ({main_rows} of the library file, {} of the blobs file) in {:.1} s, {} tables",
        import_rows - main_rows,
        first.secs,
        tables.len()
    );
    let small_first = bench.import(&small, "warm_small");
    let small_rows = bench.rows_in(PG_DATABASE, "warm_small", false);
    bench.drop_import("warm_small");
    eprintln!(
        "import of {small_items} items: {small_rows} rows in {:.1} s",
        small_first.secs
    );

    // pgloader's command file: the library file into a database of its own.
    let load = tmp.path().join("library.load");
    let pg_url = |db: &str| {
        format!(
            "postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/{db}",
            bench.cluster.port()
        )
    };
    // Without CAST rules pgloader cannot create Plex's tables (its error
    // is printed); the rounds use the fewest rules that let it load the
    // file: Plex's `dt_integer(8)` and `string` types, its boolean
    // defaults written "t", and integers past 2^62 (SBCL's fixnums).
    const CASTS: &str = "  CAST type dt_integer to bigint drop typemod,\n       type boolean to boolean drop default,\n       type string to text,\n       type integer to bigint drop typemod\n";
    let write_load = |db: &str, casts: &str| {
        std::fs::write(
            &load,
            format!(
                "LOAD DATABASE\n  FROM sqlite://{}\n  INTO {}\n  WITH include drop, create tables, create indexes, reset sequences\n{casts};\n",
                large.join(LIB).display(),
                pg_url(db)
            ),
        )
        .unwrap();
    };
    let errors = |t: &Timed| -> String {
        t.stdout
            .lines()
            .chain(t.stderr.lines())
            .filter(|l| {
                l.contains("ERROR") || l.contains("FATAL") || l.contains("Total import time")
            })
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    };
    eprintln!("== pgloader without CAST rules");
    write_load("pgl_plain", "");
    let plain = bench.pgloader(&load, "pgl_plain");
    eprintln!(
        "pgloader without CAST rules: {} rows in {} tables in {:.1} s\n{}",
        bench.rows_in("pgl_plain", "public", true),
        bench.tables("pgl_plain", "public").len(),
        plain.secs,
        errors(&plain)
    );
    bench.psql("DROP DATABASE pgl_plain");
    eprintln!("== warm-up: one pgloader run with the CAST rules");
    write_load("pgl_warm", CASTS);
    let pgl_first = bench.pgloader(&load, "pgl_warm");
    let pgl_rows = bench.rows_in("pgl_warm", "public", true);
    eprintln!(
        "pgloader: {pgl_rows} rows in {} tables in {:.1} s\n{}",
        bench.tables("pgl_warm", "public").len(),
        pgl_first.secs,
        errors(&pgl_first)
    );
    bench.psql("DROP DATABASE pgl_warm");
    eprintln!(
        "{}",
        pgl_first
            .stdout
            .lines()
            .chain(pgl_first.stderr.lines())
            .filter(|l| l.contains("  ") && !l.contains("WARNING"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let copy_rows = main_rows;
    let mut import_rps = Vec::new();
    let mut small_rps = Vec::new();
    let mut pgl_rps = Vec::new();
    let mut copy_rps = Vec::new();
    let mut r_pgl = Vec::new();
    let mut r_copy = Vec::new();
    let mut phase_rps = Vec::new();
    let mut r_phase = Vec::new();
    let mut peak_large = Vec::new();
    let mut peak_small = Vec::new();
    let mut peak_pgl = Vec::new();
    let mut per_row_large = Vec::new();
    let mut per_row_small = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        let mut got = [0.0f64; 4];
        let mut got_phase = 0.0;
        for i in rotation(round, 4) {
            match i {
                0 => {
                    let schema = format!("imp_{round}");
                    let t = bench.import(&large, &schema);
                    bench.drop_import(&schema);
                    got[0] = main_rows as f64 / t.secs;
                    let (rows, secs) = copy_phase(&t.stdout);
                    got_phase = rows / secs;
                    peak_large.push(t.peak_kib as f64);
                    per_row_large.push(t.secs / main_rows as f64 * 1e6);
                }
                1 => {
                    let db = format!("pgl_{round}");
                    write_load(&db, CASTS);
                    let t = bench.pgloader(&load, &db);
                    bench.psql(&format!("DROP DATABASE {db}"));
                    got[1] = main_rows as f64 / t.secs;
                    peak_pgl.push(t.peak_kib as f64);
                }
                2 => {
                    let schema = format!("copy_{round}");
                    bench.psql(&format!(
                        "CREATE SCHEMA {schema};\n{}",
                        ddl.replace("SCHEMA.", &format!("{schema}."))
                    ));
                    let file = tmp.path().join("copy.psql");
                    std::fs::write(&file, script.replace("SCHEMA.", &format!("{schema}.")))
                        .unwrap();
                    let bin = plex_pg_tests::cluster::find_pg_bin().expect("psql");
                    let mut cmd = Command::new(bin.join("psql"));
                    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                        .arg(bench.cluster.socket_dir())
                        .args(["-p", &bench.cluster.port().to_string()])
                        .args(["-U", PG_USER, "-d", PG_DATABASE, "-f"])
                        .arg(&file);
                    let t = timed(&mut cmd, "psql \\copy");
                    bench.psql(&format!("DROP SCHEMA {schema} CASCADE"));
                    got[2] = copy_rows as f64 / t.secs;
                }
                _ => {
                    let schema = format!("small_{round}");
                    let t = bench.import(&small, &schema);
                    bench.drop_import(&schema);
                    got[3] = small_rows as f64 / t.secs;
                    peak_small.push(t.peak_kib as f64);
                    per_row_small.push(t.secs / small_rows as f64 * 1e6);
                }
            }
        }
        import_rps.push(got[0]);
        pgl_rps.push(got[1]);
        copy_rps.push(got[2]);
        small_rps.push(got[3]);
        r_pgl.push(got[0] / got[1]);
        r_copy.push(got[0] / got[2]);
        phase_rps.push(got_phase);
        r_phase.push(got_phase / got[2]);
        eprintln!(
            "round {}: import {:.0} rows/s (its COPY phase {got_phase:.0}), pgloader {:.0}, COPY {:.0}, import of {small_items} items {:.0}; import/pgloader {:.2}, import/COPY {:.2} ({:.0} s so far)",
            round + 1,
            got[0],
            got[1],
            got[2],
            got[3],
            got[0] / got[1],
            got[0] / got[2],
            started.elapsed().as_secs_f64()
        );
    }
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let s = |v: &[f64]| Spread::of(v).unwrap();
    let fmt = |x: Spread, d: usize| format!("{:.*} [{:.*}–{:.*}]", d, x.median, d, x.min, d, x.max);
    println!("| {rounds} rounds, interleaved | rows | rows/s, median [min–max] | peak RSS, median [min–max] |");
    println!("|---|---|---|---|");
    println!(
        "| `plex-pg-launcher import`, {items} items (whole command) | {main_rows} (+{} of the blobs file) | {} | {} MB |",
        import_rows - main_rows,
        fmt(s(&import_rps), 0),
        fmt(
            s(&peak_large.iter().map(|k| k / 1024.0).collect::<Vec<_>>()),
            1
        )
    );
    println!(
        "| its load phase alone (every table's `COPY`: read SQLite, encode, `COPY`) | {main_rows} (+{}) | {} | |",
        import_rows - main_rows,
        fmt(s(&phase_rps), 0)
    );
    println!(
        "| `pgloader` ({version}), same file | {main_rows} (it loads {pgl_rows} with the FTS shadow tables) | {} | {} MB |",
        fmt(s(&pgl_rps), 0),
        fmt(
            s(&peak_pgl.iter().map(|k| k / 1024.0).collect::<Vec<_>>()),
            1
        )
    );
    println!(
        "| bare `psql \\copy` of the same rows, {} tables without index | {copy_rows} | {} | |",
        tables.len(),
        fmt(s(&copy_rps), 0)
    );
    println!(
        "| `plex-pg-launcher import`, {small_items} items | {small_rows} | {} | {} MB |",
        fmt(s(&small_rps), 0),
        fmt(
            s(&peak_small.iter().map(|k| k / 1024.0).collect::<Vec<_>>()),
            1
        )
    );
    println!();
    println!("| per round | median [min–max] |");
    println!("|---|---|");
    println!(
        "| import rows/s ÷ pgloader rows/s (target ≥ 2) | {} |",
        fmt(s(&r_pgl), 2)
    );
    println!(
        "| import rows/s ÷ COPY rows/s (target ≥ 0.5) | {} |",
        fmt(s(&r_copy), 2)
    );
    println!(
        "| the import's load phase rows/s ÷ COPY rows/s | {} |",
        fmt(s(&r_phase), 2)
    );
    println!(
        "| import µs per row, {items} items | {} |",
        fmt(s(&per_row_large), 2)
    );
    println!(
        "| import µs per row, {small_items} items | {} |",
        fmt(s(&per_row_small), 2)
    );
    println!();
    println!(
        "load average at start: {}; at end: {}; {:.0} s of rounds",
        load_start.trim(),
        load_end.trim(),
        started.elapsed().as_secs_f64()
    );
    results::write(
        "import",
        &json!({
            "rounds": rounds,
            "rows": { "import": import_rows, "pgloader": pgl_rows, "copy": copy_rows, "small": small_rows },
            "import_rows_per_s": s(&import_rps).to_json(),
            "pgloader_rows_per_s": s(&pgl_rps).to_json(),
            "copy_rows_per_s": s(&copy_rps).to_json(),
            "small_rows_per_s": s(&small_rps).to_json(),
            "import_over_pgloader": s(&r_pgl).to_json(),
            "import_over_copy": s(&r_copy).to_json(),
            "load_phase_rows_per_s": s(&phase_rps).to_json(),
            "load_phase_over_copy": s(&r_phase).to_json(),
            "import_peak_kib": s(&peak_large).to_json(),
            "pgloader_peak_kib": s(&peak_pgl).to_json(),
            "load_start": load_start.trim(),
            "load_end": load_end.trim(),
        }),
    );
}
