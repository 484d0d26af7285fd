//! `plex-pg-launcher import`: a library made with the real SQLite from
//! Plex's schema (tricky values throughout) brought into PostgreSQL,
//! verified, then used through the shim; the refusals (a non-empty target,
//! a value PostgreSQL cannot hold, a library in use); an import killed
//! mid-way leaves the target as it was; the per-row cost at ten times the
//! rows.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use plex_pg_tests::{
    artifact, pg, plex_sim_library, plex_sim_library_with_shim, run, unique_name, Run, TempDir,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(600);

fn json_out(stdout: &str) -> Value {
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no output"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

/// `plex-sim library ARGS` on the real SQLite (no shim).
fn library(args: &[&str]) -> Run {
    let out = run(&mut plex_sim_library(args), LIMIT);
    out.assert_ok();
    out
}

/// A library of `items` movies in `dir` (`plex-sim library generate`).
fn make_library(dir: &Path, items: usize) {
    let d = dir.display().to_string();
    library(&["generate", "--dir", &d, "--items", &items.to_string()]);
}

fn library_db(dir: &Path) -> String {
    dir.join("com.plexapp.plugins.library.db")
        .display()
        .to_string()
}

/// `plex-pg-launcher import --from DIR [ARGS]` into `schema`.
fn import_cmd(dir: &Path, schema: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(artifact("plex-pg-launcher"));
    cmd.arg("import")
        .arg("--from")
        .arg(dir)
        .args(args)
        .envs(pg().env(schema));
    cmd
}

fn import(dir: &Path, schema: &str, args: &[&str]) -> Run {
    run(&mut import_cmd(dir, schema, args), LIMIT)
}

/// `plex-pg-launcher export --to DIR` from `schema`.
fn export(to: &Path, schema: &str) -> Run {
    run(
        Command::new(artifact("plex-pg-launcher"))
            .args(["export", "--to"])
            .arg(to)
            .envs(pg().env(schema)),
        LIMIT,
    )
}

fn count(sql: &str) -> i64 {
    pg().psql(sql)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn schema_exists(name: &str) -> bool {
    count(&format!(
        "SELECT count(*) FROM pg_namespace WHERE nspname = '{name}'"
    )) == 1
}

#[test]
fn an_imported_library_verifies_and_the_shim_reads_and_writes_it() {
    let dir = TempDir::new("import_lib");
    make_library(dir.path(), 300);
    let db = library_db(dir.path());
    let before = json_out(&library(&["rows", &db]).stdout);
    let schema = unique_name("imported");
    let out = import(dir.path(), &schema, &[]);
    eprintln!("{}", out.stdout);
    out.assert_ok();
    assert!(
        out.stdout.contains("verification of") && !out.stdout.contains("DIFFERS"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("loaded metadata_items: 301 rows"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("import complete"), "{}", out.stdout);
    // Both routed files, in the shim's schemas.
    assert_eq!(
        count(&format!("SELECT count(*) FROM {schema}.metadata_items")),
        301
    );
    assert_eq!(
        count(&format!("SELECT count(*) FROM {schema}_blobs.blobs")),
        301
    );
    // No staging schema is left.
    assert!(!schema_exists(&format!("{schema}__plexpg_import")));
    // No split brain: the SQLite files are renamed aside, read-only.
    assert!(!Path::new(&db).exists());
    let aside = format!("{db}.in-postgresql");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&aside).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o444, "{aside}");
    let again = import(dir.path(), &schema, &[]);
    assert_eq!(again.code, Some(3), "{again:?}");
    assert!(
        again.stderr.contains("was imported already"),
        "{}",
        again.stderr
    );

    // Through the shim: the same rows, classes and bytes as on SQLite.
    let through = run(
        &mut plex_sim_library_with_shim(&schema, &["rows", &db]),
        LIMIT,
    );
    through.assert_ok();
    let after = json_out(&through.stdout);
    assert_eq!(
        after, before,
        "SQLite:\n{before}\nthrough the shim:\n{after}"
    );

    // New rows get ids after the imported ones (and after sqlite_sequence's).
    let ins = run(
        &mut plex_sim_library_with_shim(&schema, &["insert", &db]),
        LIMIT,
    );
    ins.assert_ok();
    let got = json_out(&ins.stdout);
    assert_eq!(got["id"], 301, "{got}");
    assert_eq!(got["tag"], 101, "{got}");
    assert_eq!(got["after_explicit"], 5001, "{got}");
}

#[test]
fn a_non_empty_target_is_refused_and_replace_keeps_the_old_one_aside() {
    let dir = TempDir::new("import_twice");
    make_library(dir.path(), 20);
    let schema = unique_name("twice");
    import(dir.path(), &schema, &["--keep-sqlite-files"]).assert_ok();
    let again = import(dir.path(), &schema, &["--keep-sqlite-files"]);
    assert_eq!(again.code, Some(3), "{again:?}");
    assert!(
        again.stderr.contains("already holds a library") && again.stderr.contains("--replace"),
        "{}",
        again.stderr
    );
    pg().psql(&format!(
        "INSERT INTO {schema}.tags (tag, tag_type) VALUES ('only in PostgreSQL', 9)"
    ));
    let replaced = import(dir.path(), &schema, &["--replace"]);
    replaced.assert_ok();
    let aside = count(&format!(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '{schema}\\_replaced\\_%'"
    ));
    assert_eq!(aside, 1, "{}", replaced.stdout);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM {schema}.tags WHERE tag_type = 9"
        )),
        0
    );
}

#[test]
fn a_value_postgresql_cannot_hold_is_named_before_anything_is_loaded() {
    let dir = TempDir::new("import_bad");
    make_library(dir.path(), 20);
    let db = library_db(dir.path());
    library(&["bad", &db]);
    let schema = unique_name("bad");
    let out = import(dir.path(), &schema, &[]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr
            .contains("table metadata_items, rowid 3, column year: 'nineteen-ninety'"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Way forward"), "{}", out.stderr);
    assert!(!out.stdout.contains("loaded "), "{}", out.stdout);
    assert!(!schema_exists(&schema));
}

/// The check is part of the load: after the first value PostgreSQL cannot
/// hold (metadata_items, in the library file, after other tables were
/// copied) nothing more is copied, but every row of every file is still
/// checked, so a second such value in the blobs file (read after it) is
/// named as well, and nothing is switched.
#[test]
fn every_value_postgresql_cannot_hold_is_named_across_files() {
    let dir = TempDir::new("import_bad2");
    make_library(dir.path(), 20);
    library(&["bad", &library_db(dir.path())]);
    let blobs = dir.path().join("com.plexapp.plugins.library.blobs.db");
    let update = run(
        Command::new("python3").args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"UPDATE blobs SET blob_type = 'not a number' WHERE id = (SELECT min(id) FROM blobs)\"); \
             c.commit(); print(c.total_changes)",
            &blobs.display().to_string(),
        ]),
        LIMIT,
    );
    update.assert_ok();
    assert_eq!(update.stdout.trim(), "1", "{update:?}");
    let schema = unique_name("bad2");
    let out = import(dir.path(), &schema, &[]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("2 value(s) cannot be held"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("table metadata_items, rowid 3, column year: 'nineteen-ninety'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("table blobs, rowid ")
            && out.stderr.contains("column blob_type: 'not a number'"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("loaded "), "{}", out.stdout);
    assert!(!schema_exists(&schema));
    assert!(!schema_exists(&format!("{schema}_blobs")));
    assert!(!schema_exists(&format!("{schema}__plexpg_import")));
}

#[test]
fn a_library_open_for_writing_is_refused() {
    let dir = TempDir::new("import_busy");
    make_library(dir.path(), 10);
    let db = library_db(dir.path());
    let ready = dir.path().join("ready");
    let go = dir.path().join("go");
    let mut holder = plex_sim_library(&["hold", &db])
        .arg(&ready)
        .arg(&go)
        .spawn()
        .unwrap();
    for _ in 0..3000 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "the holder never took its lock");
    let schema = unique_name("busy");
    let out = import(dir.path(), &schema, &[]);
    std::fs::write(&go, b"").unwrap();
    let _ = holder.wait();
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("is open in another process")
            && out.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        out.stderr
    );
    assert!(!schema_exists(&schema));
}

/// Start an import, kill it (SIGKILL) at the first stdout line containing
/// `at`; the lines it printed.
fn import_killed_at(
    dir: &Path,
    schema: &str,
    args: &[&str],
    env: &[(&str, &str)],
    at: &str,
) -> String {
    let mut cmd = import_cmd(dir, schema, args);
    cmd.envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(at) {
            // SAFETY: killing the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "the import ended before it was killed:\n{seen}"
    );
    seen
}

#[test]
fn an_interrupted_import_leaves_the_target_as_it_was_and_a_rerun_succeeds() {
    let small = TempDir::new("import_small");
    make_library(small.path(), 30);
    let big = TempDir::new("import_big");
    make_library(big.path(), 20_000);
    let schema = unique_name("interrupted");
    import(small.path(), &schema, &[]).assert_ok();
    let items = format!("SELECT count(*) FROM {schema}.metadata_items");
    assert_eq!(count(&items), 31);

    // Killed in the middle of a table's COPY (the SQLite reader pauses
    // after handing metadata_items' first chunk to the writer, the COPY
    // open)…
    let seen = import_killed_at(
        big.path(),
        &schema,
        &["--replace"],
        &[("PLEX_PG_IMPORT_PAUSE_IN_COPY", "metadata_items")],
        "pausing while copying metadata_items",
    );
    assert!(!seen.contains("loaded metadata_items"), "{seen}");
    assert_eq!(
        count(&items),
        31,
        "the target changed after a kill inside a COPY"
    );
    // …killed once every row is copied…
    let seen = import_killed_at(
        big.path(),
        &schema,
        &["--replace"],
        &[],
        "loaded metadata_items",
    );
    assert!(seen.contains("loaded metadata_items"), "{seen}");
    assert_eq!(
        count(&items),
        31,
        "the target changed after a kill mid-COPY"
    );
    // …and killed after the switch, just before the commit.
    let seen = import_killed_at(
        big.path(),
        &schema,
        &["--replace"],
        &[("PLEX_PG_IMPORT_PAUSE_BEFORE_COMMIT", "1")],
        "pausing before the commit",
    );
    assert!(seen.contains("verification of"), "{seen}");
    assert_eq!(
        count(&items),
        31,
        "the target changed after a kill before the commit"
    );
    assert!(!schema_exists(&format!("{schema}__plexpg_import")));

    let rerun = import(big.path(), &schema, &["--replace"]);
    rerun.assert_ok();
    assert_eq!(count(&items), 20_001);
}

/// The seconds one table's COPY took, from the import's progress line
/// (`loaded T: N rows, … (R rows/s)`: N / R, more precise than the
/// printed seconds).
fn copy_seconds(stdout: &str, table: &str) -> (f64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("loaded {table}:")))
        .unwrap_or_else(|| panic!("no line for {table}:\n{stdout}"));
    let rows: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let open = line.rfind('(').unwrap();
    let rate: f64 = line[open + 1..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    (rows, rows / rate)
}

/// One import of a library of `items` movies: the per-row seconds of the
/// three large tables' COPY together.
/// Also the import's peak resident memory in KiB (GNU time's).
fn per_row_copy_seconds(items: usize, anchor: bool) -> (f64, u64) {
    let dir = TempDir::new("import_size");
    make_library(dir.path(), items);
    let schema = unique_name("sized");
    let started = std::time::Instant::now();
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v")
        .arg(artifact("plex-pg-launcher"))
        .arg("import")
        .arg("--from")
        .arg(dir.path())
        .envs(pg().env(&schema));
    let out = run(&mut cmd, LIMIT);
    let total = started.elapsed().as_secs_f64();
    out.assert_ok();
    let rss: u64 = out
        .stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory from /usr/bin/time:\n{}", out.stderr));
    eprintln!("import of {items} items: peak resident memory {rss} KiB");
    let (mut rows, mut secs) = (0.0, 0.0);
    for t in ["metadata_items", "media_items", "taggings"] {
        let (r, s) = copy_seconds(&out.stdout, t);
        rows += r;
        secs += s;
    }
    eprintln!(
        "import of {items} items: {rows} rows of the three large tables copied at {:.0} rows/s; whole import {total:.1} s\n{}",
        rows / secs,
        out.stdout
    );
    if anchor {
        // The anchor: a bare COPY of the same rows by psql into a table of
        // the same columns without key, index or trigger.
        let file = dir.path().join("bare.copy").display().to_string();
        pg().psql(&format!(
            "\\copy (SELECT * FROM {schema}.metadata_items) TO '{file}'"
        ));
        pg().psql(&format!(
            "CREATE TABLE {schema}.bare (LIKE {schema}.metadata_items)"
        ));
        let t = std::time::Instant::now();
        pg().psql(&format!("\\copy {schema}.bare FROM '{file}'"));
        let bare = t.elapsed().as_secs_f64();
        let (r, s) = copy_seconds(&out.stdout, "metadata_items");
        eprintln!(
            "metadata_items: the import's COPY {:.0} rows/s; a bare COPY (psql \\copy) of the same {} rows {:.0} rows/s",
            r / s,
            items + 1,
            (items + 1) as f64 / bare
        );
    }
    pg().psql(&format!(
        "DROP SCHEMA {schema} CASCADE; DROP SCHEMA {schema}_blobs CASCADE"
    ));
    (secs / rows, rss)
}

/// Importing costs the same per row at 100,000 items as at 10,000 (every
/// pass streams; nothing grows with the table but the indexes), within a
/// generous factor; the best of two runs of each size, alternating, so a
/// slow moment of the shared machine falls on both. Memory does not grow
/// with the rows either (no table is ever held whole).
#[test]
fn import_costs_the_same_per_row_at_ten_times_the_rows() {
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut memory = Vec::new();
    for round in 0..2 {
        let (s, m_small) = per_row_copy_seconds(10_000, false);
        let (l, m_large) = per_row_copy_seconds(100_000, round == 1);
        small.push(s);
        large.push(l);
        memory.push((m_small, m_large));
    }
    for (m_small, m_large) in &memory {
        assert!(
            *m_large < m_small * 2,
            "peak memory grew with the rows: {m_small} KiB at 10,000 items, {m_large} KiB at 100,000"
        );
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (small, large) = (best(&small), best(&large));
    let ratio = large / small;
    assert!(
        ratio < 3.0,
        "per-row cost at 100,000 items is {ratio:.2}× the cost at 10,000 ({:.2} µs against {:.2} µs)",
        large * 1e6,
        small * 1e6
    );
}

/// A value that changes on its way into PostgreSQL is found by the
/// verification, named by table, rowid and column, and nothing is
/// switched. The change is made by PostgreSQL itself: an event trigger
/// (this test's schema only) puts a trigger on the staging table that
/// alters one title (rowid 10) as `COPY` inserts it.
#[test]
fn a_difference_is_named_by_table_rowid_and_column_and_nothing_is_switched() {
    let dir = TempDir::new("import_diff");
    make_library(dir.path(), 20);
    let schema = unique_name("differs");
    let staging = format!("{schema}__plexpg_import");
    let hook = unique_name("corrupt");
    pg().psql(&format!(
        r#"CREATE FUNCTION public.{hook}() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()
           WHERE command_tag = 'CREATE TABLE' AND object_identity = '{staging}.metadata_items' LOOP
    EXECUTE 'CREATE FUNCTION {staging}.{hook}() RETURNS trigger LANGUAGE plpgsql AS $b$ BEGIN IF NEW.id = 10 THEN NEW.title := NEW.title || ''!''; END IF; RETURN NEW; END $b$';
    EXECUTE 'CREATE TRIGGER {hook} BEFORE INSERT ON {staging}.metadata_items FOR EACH ROW EXECUTE FUNCTION {staging}.{hook}()';
  END LOOP;
END $$;
CREATE EVENT TRIGGER {hook} ON ddl_command_end EXECUTE FUNCTION public.{hook}();"#
    ));
    let out = import(dir.path(), &schema, &[]);
    pg().psql(&format!(
        "DROP EVENT TRIGGER {hook}; DROP FUNCTION public.{hook}()"
    ));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("DIFFERS"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("table metadata_items, rowid 10, column title: SQLite TEXT 'plain 10' (8 bytes), PostgreSQL TEXT 'plain 10!' (9 bytes)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("nothing was switched"),
        "{}",
        out.stderr
    );
    assert!(!schema_exists(&schema));
    assert!(!schema_exists(&staging));
}

/// The backup the migration guide gives: `pg_dump -Fc` of both schemas,
/// the schemas dropped, `pg_restore`; through the shim the library reads
/// as it did (same rows, classes, sequences, FTS, user_version).
#[test]
fn a_pg_dump_of_an_imported_library_restores_to_the_same_library() {
    let dir = TempDir::new("import_dump");
    make_library(dir.path(), 50);
    let db = library_db(dir.path());
    let before = json_out(&library(&["rows", &db]).stdout);
    let schema = unique_name("dumped");
    import(dir.path(), &schema, &[]).assert_ok();
    let bin = plex_pg_tests::cluster::find_pg_bin().expect("PostgreSQL's programs");
    let p = pg();
    let dump = dir.path().join("library.dump");
    let conn = |cmd: &mut Command| {
        cmd.arg("-h")
            .arg(&p.socket_dir)
            .args(["-p", &p.port.to_string(), "-U", plex_pg_tests::PG_USER])
            .env("PGPASSWORD", plex_pg_tests::PG_PASSWORD);
    };
    let mut dump_cmd = Command::new(bin.join("pg_dump"));
    conn(&mut dump_cmd);
    dump_cmd
        .args(["-Fc", "-n", &schema, "-n", &format!("{schema}_blobs"), "-f"])
        .arg(&dump)
        .arg(plex_pg_tests::PG_DATABASE);
    run(&mut dump_cmd, LIMIT).assert_ok();
    pg().psql(&format!(
        "DROP SCHEMA {schema} CASCADE; DROP SCHEMA {schema}_blobs CASCADE"
    ));
    let mut restore = Command::new(bin.join("pg_restore"));
    conn(&mut restore);
    restore.args(["-d", plex_pg_tests::PG_DATABASE]).arg(&dump);
    run(&mut restore, LIMIT).assert_ok();
    let through = run(
        &mut plex_sim_library_with_shim(&schema, &["rows", &db]),
        LIMIT,
    );
    through.assert_ok();
    assert_eq!(json_out(&through.stdout), before);
    let ins = run(
        &mut plex_sim_library_with_shim(&schema, &["insert", &db]),
        LIMIT,
    );
    ins.assert_ok();
    assert_eq!(json_out(&ins.stdout)["id"], 51);
}

/// The launcher with Plex's application-support directory at `support`,
/// library schema `schema`, starting `/bin/true` (mode off: no
/// supervision needed to see whether it starts at all).
fn launcher_start(support: &Path, schema: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(artifact("plex-pg-launcher"));
    cmd.args(["--mode", "off", "--shim"])
        .arg(plex_pg_tests::shim())
        .args(["--", "/bin/true"])
        .envs(pg().env(schema))
        .env("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR", support)
        .env_remove("PLEX_PG_SUPERVISOR")
        .envs(env.iter().copied());
    run(&mut cmd, LIMIT)
}

/// The guard: an empty schema next to Plex's SQLite library stops the
/// launcher before Plex starts, saying to import; the setting lets a fresh
/// install start; after the import it starts.
#[test]
fn the_guard_refuses_an_empty_schema_next_to_a_sqlite_library() {
    let support = TempDir::new("import_guard");
    let databases = support
        .path()
        .join("Plex Media Server")
        .join("Plug-in Support")
        .join("Databases");
    let schema = unique_name("guarded");
    // No library file: nothing to protect.
    launcher_start(support.path(), &schema, &[]).assert_ok();
    make_library(&databases, 5);
    let refused = launcher_start(support.path(), &schema, &[]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("holds no library")
            && refused.stderr.contains("plex-pg-launcher import --from")
            && refused.stderr.contains("allow_empty_library"),
        "{}",
        refused.stderr
    );
    assert!(
        check(support.path(), &schema)
            .contains("holds no library while the SQLite library is there"),
        "check does not report the state"
    );
    launcher_start(
        support.path(),
        &schema,
        &[("PLEX_PG_ALLOW_EMPTY_LIBRARY", "1")],
    )
    .assert_ok();
    import(&databases, &schema, &[]).assert_ok();
    launcher_start(support.path(), &schema, &[]).assert_ok();
    let after = check(support.path(), &schema);
    eprintln!("{after}");
    assert!(
        after.contains(&format!("PostgreSQL schema {schema} holds a library:"))
            && after.contains("was imported (renamed aside)"),
        "{after}"
    );
}

/// `plex-pg-launcher check`'s output (its other checks may fail here).
fn check(support: &Path, schema: &str) -> String {
    let mut cmd = Command::new(artifact("plex-pg-launcher"));
    cmd.arg("check")
        .envs(pg().env(schema))
        .env("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR", support);
    let out = run(&mut cmd, LIMIT);
    out.stdout
}

/// The way back: after an import and writes through the shim, `export`
/// writes SQLite files that the real SQLite reads as the same library
/// (the rows, classes, sqlite_sequence, FTS, user_version the shim showed,
/// and the new rows), passing SQLite's integrity check; it never
/// overwrites a file.
#[test]
fn export_writes_back_what_postgresql_holds() {
    let dir = TempDir::new("import_export");
    make_library(dir.path(), 40);
    let db = library_db(dir.path());
    let schema = unique_name("exported");
    import(dir.path(), &schema, &[]).assert_ok();
    let ins = run(
        &mut plex_sim_library_with_shim(&schema, &["insert", &db]),
        LIMIT,
    );
    ins.assert_ok();
    let on_pg = run(
        &mut plex_sim_library_with_shim(&schema, &["rows", &db]),
        LIMIT,
    );
    on_pg.assert_ok();
    let on_pg = json_out(&on_pg.stdout);

    let back = TempDir::new("import_back");
    let out = export(back.path(), &schema);
    eprintln!("{}", out.stdout);
    out.assert_ok();
    assert!(!out.stdout.contains("DIFFERS"), "{}", out.stdout);
    let refused = export(back.path(), &schema);
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stderr.contains("never overwrites"),
        "{}",
        refused.stderr
    );

    let exported = library_db(back.path());
    let from_file = json_out(&library(&["rows", &exported]).stdout);
    assert_eq!(
        from_file, on_pg,
        "exported file:\n{from_file}\nthrough the shim:\n{on_pg}"
    );
    let check = run(
        Command::new("python3").args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('PRAGMA integrity_check').fetchone()[0], c.execute('PRAGMA journal_mode').fetchone()[0])",
            &exported,
        ]),
        LIMIT,
    );
    check.assert_ok();
    assert_eq!(check.stdout.trim(), "ok wal");
}

/// `plex-pg-launcher enable|disable` with the drop-in's directory under
/// `systemd`, Plex's support folder `support`, the library in `schema`.
fn switch(
    support: &Path,
    systemd: &Path,
    schema: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new(artifact("plex-pg-launcher"));
    cmd.args(args)
        .arg("--systemd-dir")
        .arg(systemd)
        .envs(pg().env(schema))
        .env("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR", support)
        .envs(env.iter().copied());
    run(&mut cmd, LIMIT)
}

/// The switch is deliberate and never hands Plex an empty library:
/// `enable` refuses an empty schema beside an SQLite library (the setting
/// for a fresh install allows it), a successful import says to run
/// `enable`, which then installs the drop-in; `disable` refuses while
/// PostgreSQL holds the library and no SQLite library is in place (export
/// first; `--force` overrides), and takes the drop-in out once the
/// exported files are back.
#[test]
fn enable_and_disable_refuse_to_hand_plex_an_empty_library() {
    use std::os::unix::fs::PermissionsExt;
    let support = TempDir::new("import_switch");
    let systemd = TempDir::new("import_switch_systemd");
    std::fs::set_permissions(systemd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let drop_in = systemd
        .path()
        .join("plexmediaserver.service.d")
        .join("10-plex-pg.conf");
    let shipped = std::fs::read_to_string(
        plex_pg_tests::workspace_root().join("packaging/systemd/plex-pg.conf"),
    )
    .unwrap();
    let databases = support
        .path()
        .join("Plex Media Server")
        .join("Plug-in Support")
        .join("Databases");
    let schema = unique_name("switched");
    make_library(&databases, 5);

    let refused = switch(support.path(), systemd.path(), &schema, &["enable"], &[]);
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stderr.contains("holds no library")
            && refused.stderr.contains("plex-pg-launcher import --from")
            && refused.stderr.contains("allow_empty_library"),
        "{}",
        refused.stderr
    );
    assert!(!drop_in.exists(), "a refused enable installed the drop-in");
    let fresh = switch(
        support.path(),
        systemd.path(),
        &schema,
        &["enable"],
        &[("PLEX_PG_ALLOW_EMPTY_LIBRARY", "1")],
    );
    fresh.assert_ok();
    assert_eq!(std::fs::read_to_string(&drop_in).unwrap(), shipped);
    // Nothing in PostgreSQL: taking it out loses nothing.
    switch(support.path(), systemd.path(), &schema, &["disable"], &[]).assert_ok();
    assert!(!drop_in.exists());

    let imported = import(&databases, &schema, &[]);
    imported.assert_ok();
    assert!(
        imported.stdout.contains("plex-pg-launcher enable"),
        "the import says what comes next:\n{}",
        imported.stdout
    );
    let enabled = switch(support.path(), systemd.path(), &schema, &["enable"], &[]);
    enabled.assert_ok();
    assert!(
        enabled.stdout.contains("systemctl restart plexmediaserver"),
        "{}",
        enabled.stdout
    );
    assert_eq!(std::fs::read_to_string(&drop_in).unwrap(), shipped);

    let refused = switch(support.path(), systemd.path(), &schema, &["disable"], &[]);
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stderr.contains("plex-pg-launcher export --to")
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert!(drop_in.is_file(), "a refused disable removed the drop-in");

    let exported = export(&databases, &schema);
    exported.assert_ok();
    let disabled = switch(support.path(), systemd.path(), &schema, &["disable"], &[]);
    disabled.assert_ok();
    assert!(!drop_in.exists() && !drop_in.parent().unwrap().exists());
    let again = switch(support.path(), systemd.path(), &schema, &["disable"], &[]);
    again.assert_ok();
    assert!(again.stdout.contains("not installed"), "{}", again.stdout);
}

/// Compares two SQLite library files with the real SQLite (Python's
/// sqlite3), every row of every table as a multiset of typed values (a
/// `boolean` column's text 't'/'f' taken as the 1/0 the shim shows; FTS
/// shadow tables are derived, their FTS table is compared instead).
/// Prints JSON: tables and rows compared, rows only in the second file
/// (by table, with their `id`), rows only in the first, and the
/// sqlite_sequence of each.
/// Runs [`COMPARE_PY`] on two library files; its JSON report.
fn compare_libraries(first: &Path, second: &Path) -> Value {
    let cmp = run(
        Command::new("python3")
            .args(["-c", COMPARE_PY])
            .arg(first)
            .arg(second),
        LIMIT,
    );
    cmp.assert_ok();
    json_out(&cmp.stdout)
}

const COMPARE_PY: &str = r#"
import json, sqlite3, sys
from collections import Counter

def typed(v):
    if v is None: return ("null", None)
    if isinstance(v, int): return ("integer", v)
    if isinstance(v, float): return ("real", v.hex())
    if isinstance(v, bytes): return ("blob", v.hex())
    return ("text", v)

def tables(c):
    names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    virtual = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    shadow = lambda n: any(n.startswith(v + "_") for v in virtual)
    return [n for n in names if not shadow(n)]

def read(c, t):
    cols = c.execute('PRAGMA table_info("%s")' % t.replace('"', '""')).fetchall()
    boolean = [(col[2] or "").lower() == "boolean" for col in cols]
    names = [col[1] for col in cols]
    out = Counter()
    for r in c.execute('SELECT * FROM "%s"' % t.replace('"', '""')):
        r = tuple(({"t": 1, "f": 0}.get(v, v) if b and isinstance(v, str) else v) for v, b in zip(r, boolean))
        out[tuple(typed(v) for v in r)] += 1
    return names, out

a = sqlite3.connect(sys.argv[1])
b = sqlite3.connect(sys.argv[2])
ta, tb = tables(a), tables(b)
report = {"tables": 0, "rows": 0, "only_in_second": {}, "only_in_first": {}, "missing_tables": sorted(set(ta) ^ set(tb))}
for t in ta:
    if t not in tb: continue
    names, ra = read(a, t)
    _, rb = read(b, t)
    report["tables"] += 1
    report["rows"] += sum(ra.values())
    idx = names.index("id") if "id" in names else None
    extra = rb - ra
    gone = ra - rb
    if extra:
        report["only_in_second"][t] = sorted((k[idx][1] if idx is not None else None) for k in extra.elements())
    if gone:
        report["only_in_first"][t] = [list(k) for k in list(gone.elements())[:5]]
seq = lambda c: dict(c.execute("SELECT name, seq FROM sqlite_sequence")) if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone() else {}
report["sequence"] = [seq(a), seq(b)]
print(json.dumps(report, sort_keys=True))
"#;

/// The issue's round trip, with plex-sim as Plex: a library (and its blobs
/// database) made by plex-sim on the real SQLite, imported and verified;
/// plex-sim then runs under the launcher on PostgreSQL (its fill finds every
/// imported item, every read it checks sees the imported rows, and its new
/// playback rows get ids after the imported ones); the export is compared
/// with the original files by the real SQLite, every row of every table:
/// the same, plus exactly plex-sim's new rows.
#[test]
fn a_plex_sim_library_goes_to_postgresql_runs_under_the_launcher_and_comes_back() {
    const ITEMS: &str = "300";
    let support = TempDir::new("import_roundtrip");
    let data = support.path().join("Plex Media Server");
    let databases = data.join("Plug-in Support").join("Databases");
    let sim_args = [
        "--items",
        ITEMS,
        "--threads",
        "2",
        "--iterations",
        "40",
        "--spawn",
        "none",
    ];
    // 1. Plex's library, on SQLite: the fill, then playback rows.
    let made = run(
        Command::new(artifact("plex-sim"))
            .env_remove("LD_PRELOAD")
            .arg("--data-dir")
            .arg(&data)
            .args(sim_args)
            .args(["--summary", "-"]),
        LIMIT,
    );
    made.assert_ok();
    let originals = TempDir::new("import_roundtrip_originals");
    for name in [
        "com.plexapp.plugins.library.db",
        "com.plexapp.plugins.library.blobs.db",
    ] {
        // Checkpointed by plex-sim's close; -wal files, if any, go along.
        for suffix in ["", "-wal"] {
            let from = databases.join(format!("{name}{suffix}"));
            if from.exists() {
                std::fs::copy(&from, originals.path().join(format!("{name}{suffix}"))).unwrap();
            }
        }
    }
    let original = library_db(originals.path());
    let before = run(
        Command::new("python3").args([
            "-c",
            "import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute('SELECT coalesce(max(id), 0), count(*) FROM metadata_item_settings').fetchone())",
            &original,
        ]),
        LIMIT,
    );
    before.assert_ok();
    let before: Vec<i64> = before
        .stdout
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let (settings_before, settings_rows) = (before[0], before[1]);
    assert!(settings_rows > 0, "plex-sim wrote playback rows on SQLite");

    // 2. Imported, with the blobs database, and verified.
    let schema = unique_name("roundtrip");
    let imported = import(&databases, &schema, &[]);
    eprintln!("{}", imported.stdout);
    imported.assert_ok();
    assert!(
        imported.stdout.contains("verification of")
            && imported
                .stdout
                .contains("com.plexapp.plugins.library.blobs.db")
            && !imported.stdout.contains("DIFFERS"),
        "{}",
        imported.stdout
    );
    assert_eq!(
        count(&format!("SELECT count(*) FROM {schema}.metadata_items")),
        ITEMS.parse::<i64>().unwrap()
    );
    assert!(count(&format!("SELECT count(*) FROM {schema}_blobs.blobs")) > 0);

    // 3. plex-sim under the launcher (the guard lets it start: the schema
    //    holds the library), on PostgreSQL through the shim.
    let events = support.path().join("events.jsonl");
    let summary_path = support.path().join("summary.json");
    let under = run(
        Command::new(artifact("plex-pg-launcher"))
            .envs(pg().env(&schema))
            .env("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR", support.path())
            .env_remove("PLEX_PG_SUPERVISOR")
            .arg("--events")
            .arg(&events)
            .arg("--shim")
            .arg(plex_pg_tests::shim())
            .arg("--")
            .arg(artifact("plex-sim"))
            .arg("--data-dir")
            .arg(&data)
            .args(sim_args)
            .arg("--summary")
            .arg(&summary_path),
        LIMIT,
    );
    let summary: Value = std::fs::read(&summary_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("plex-sim wrote no summary: {under:?}"));
    assert_eq!(under.code, Some(0), "{under:?}\n{summary:#}");
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(summary["mismatches"], 0, "{summary:#}");
    assert_eq!(
        summary["fill"]["found"].as_u64(),
        Some(ITEMS.parse().unwrap()),
        "plex-sim's fill found every imported movie: {summary:#}"
    );
    assert_eq!(summary["fill"]["written"].as_u64(), Some(0), "{summary:#}");
    let new_rows = count(&format!(
        "SELECT count(*) FROM {schema}.metadata_item_settings WHERE id > {settings_before}"
    ));
    assert!(new_rows > 0, "plex-sim wrote playback rows: {summary:#}");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM {schema}.metadata_item_settings WHERE id <= {settings_before}"
        )),
        settings_rows,
        "the imported playback rows are all still there"
    );

    // 4. Exported, and compared with the originals by the real SQLite.
    let back = TempDir::new("import_roundtrip_back");
    let exported = export(back.path(), &schema);
    exported.assert_ok();
    for (file, new_table) in [
        (
            "com.plexapp.plugins.library.db",
            Some("metadata_item_settings"),
        ),
        ("com.plexapp.plugins.library.blobs.db", None),
    ] {
        let report = compare_libraries(&originals.path().join(file), &back.path().join(file));
        eprintln!("{file}: {report}");
        assert!(report["tables"].as_u64().unwrap() >= 1, "{report}");
        assert_eq!(report["missing_tables"], serde_json::json!([]), "{report}");
        assert_eq!(report["only_in_first"], serde_json::json!({}), "{report}");
        let extra = report["only_in_second"].as_object().unwrap();
        match new_table {
            Some(t) => {
                assert_eq!(extra.len(), 1, "only plex-sim's new rows: {report}");
                let ids: Vec<i64> = extra[t]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect();
                assert_eq!(ids.len() as i64, new_rows, "{report}");
                assert!(
                    ids.iter().all(|&id| id > settings_before),
                    "plex-sim's rows got ids after the imported ones ({settings_before}): {ids:?}"
                );
                let seq = report["sequence"][1][t].as_i64().unwrap_or(0);
                assert!(seq >= *ids.iter().max().unwrap(), "{report}");
            }
            None => assert!(extra.is_empty(), "{report}"),
        }
    }
}

/// Every table of Plex's schema (`tests/fixtures/plex/sqlite_schema.sql`)
/// is in a generated library and holds at least one row, in the library
/// file or in the blobs file, and every table of each file holds one (the
/// round trip below then covers them all). Prints JSON: the tables of the
/// schema missing from the files, the empty tables of each file.
const EVERY_TABLE_PY: &str = r#"
import json, re, sqlite3, sys
schema = open(sys.argv[1], encoding="utf-8").read()
declared = set(re.findall(r'^CREATE TABLE IF NOT EXISTS "([^"]+)"', schema, re.M))
report = {"declared": len(declared), "missing": [], "empty": {}}
seen = set()
for f in sys.argv[2:]:
    c = sqlite3.connect(f)
    names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    virtual = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    empty = []
    for n in names:
        if any(n.startswith(v + "_") for v in virtual): continue
        seen.add(n)
        if c.execute('SELECT count(*) FROM "%s"' % n.replace('"', '""')).fetchone()[0] == 0:
            empty.append(n)
    if empty: report["empty"][f] = sorted(empty)
report["missing"] = sorted(declared - seen)
print(json.dumps(report, sort_keys=True))
"#;

/// A generated library fills every table of Plex's schema, and every row
/// of every table comes back from PostgreSQL as it was: generated,
/// imported and verified, exported, and compared with the original files
/// by the real SQLite.
#[test]
fn a_generated_library_fills_every_table_and_every_row_comes_back() {
    let dir = TempDir::new("import_every_table");
    make_library(dir.path(), 300);
    let files = [
        "com.plexapp.plugins.library.db",
        "com.plexapp.plugins.library.blobs.db",
    ];
    let every = run(
        Command::new("python3")
            .args(["-c", EVERY_TABLE_PY])
            .arg(plex_pg_tests::workspace_root().join("tests/fixtures/plex/sqlite_schema.sql"))
            .args(files.iter().map(|f| dir.path().join(f))),
        LIMIT,
    );
    every.assert_ok();
    let report = json_out(&every.stdout);
    eprintln!("{report}");
    assert_eq!(report["declared"], 52, "{report}");
    assert_eq!(report["missing"], serde_json::json!([]), "{report}");
    assert_eq!(report["empty"], serde_json::json!({}), "{report}");

    let originals = TempDir::new("import_every_table_originals");
    for name in files {
        for suffix in ["", "-wal"] {
            let from = dir.path().join(format!("{name}{suffix}"));
            if from.exists() {
                std::fs::copy(&from, originals.path().join(format!("{name}{suffix}"))).unwrap();
            }
        }
    }
    let schema = unique_name("every");
    let imported = import(dir.path(), &schema, &[]);
    eprintln!("{}", imported.stdout);
    imported.assert_ok();
    assert!(
        imported.stdout.contains("verification of") && !imported.stdout.contains("DIFFERS"),
        "{}",
        imported.stdout
    );
    let back = TempDir::new("import_every_table_back");
    let exported = export(back.path(), &schema);
    eprintln!("{}", exported.stdout);
    exported.assert_ok();
    for file in files {
        let report = compare_libraries(&originals.path().join(file), &back.path().join(file));
        eprintln!("{file}: {report}");
        assert_eq!(report["missing_tables"], serde_json::json!([]), "{report}");
        assert_eq!(report["only_in_first"], serde_json::json!({}), "{report}");
        assert_eq!(report["only_in_second"], serde_json::json!({}), "{report}");
        assert_eq!(report["sequence"][0], report["sequence"][1], "{report}");
    }
}
