//! `sqlite3_backup_*` on a routed database: Python's `Connection.backup()`
//! and the `sqlite3` CLI's `.backup`, both under `LD_PRELOAD`, write a
//! SQLite file that the real SQLite (without the shim) opens with every row
//! the shim returns: classes, bit-exact REALs, BLOBs, NULLs, FTS4,
//! `sqlite_sequence`; and backups the shim cannot make are refused with a
//! clear error.

use plex_pg_tests::{pg, run, shim, unique_name, TempDir};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The Python side: `populate DB`, `backup DB OUT`, `dump DB`,
/// `check COPY`, `into_routed DB`.
const SCRIPT: &str = r#"
import json, sqlite3, sys

TABLES = ["items", "tags", "notes", "plain", "fts_items", "sqlite_sequence"]

def populate(path):
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript("""
    CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, rating REAL, big INTEGER, data BLOB);
    CREATE TABLE tags (id INTEGER PRIMARY KEY, tag TEXT NOT NULL, item_id INTEGER);
    CREATE INDEX idx_tags_tag ON tags (tag);
    CREATE TABLE plain (a TEXT, b REAL);
    CREATE VIRTUAL TABLE fts_items USING fts4(content='items', title);
    CREATE VIRTUAL TABLE notes USING fts4(body);
    CREATE VIEW v_items AS SELECT id, title FROM items;
    CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN INSERT INTO fts_items(docid, title) VALUES (new.id, new.title); END;
    PRAGMA user_version = 42;
    """)
    rows = [
        ("Alien", 0.1 + 0.2, 2**63 - 1, b"\x00\x01\xff"),
        ("Blade Runner", 1 / 3, -(2**63), b""),
        (None, None, None, None),
        ("Zoë 東京 ''quoted''", 1e-310, -1, bytes(range(256))),
        ("Last", 2.5, 0, b"x"),
    ]
    c.execute("BEGIN")
    for r in rows:
        c.execute("INSERT INTO items (title, rating, big, data) VALUES (?, ?, ?, ?)", r)
    c.execute("COMMIT")
    c.execute("DELETE FROM items WHERE title = 'Last'")
    for i in range(1, 40):
        c.execute("INSERT INTO tags (id, tag, item_id) VALUES (?, ?, ?)", (-i if i % 7 == 0 else i, "tag%d" % (i % 5), i % 4 + 1))
    c.execute("INSERT INTO notes (docid, body) VALUES (10, 'the quick brown fox'), (20, 'lazy dogs sleep')")
    c.execute("INSERT INTO plain VALUES ('', 123456789.123456789), (NULL, -2.0)")

def cell(v):
    if v is None:
        return ["null"]
    if isinstance(v, bool) or isinstance(v, int):
        return ["int", str(v)]
    if isinstance(v, float):
        return ["real", v.hex()]
    if isinstance(v, bytes):
        return ["blob", v.hex()]
    return ["text", v]

def dump(path):
    c = sqlite3.connect(path, isolation_level=None)
    out = {}
    for t in TABLES:
        if t == "fts_items":
            q = "SELECT docid, title FROM fts_items WHERE fts_items MATCH 'alien OR runner' ORDER BY docid"
        elif t == "notes":
            q = "SELECT docid, body FROM notes ORDER BY docid"
        elif t == "sqlite_sequence":
            q = "SELECT name, seq FROM sqlite_sequence ORDER BY name"
        elif t == "plain":
            q = "SELECT a, b FROM plain ORDER BY b"
        else:
            q = "SELECT * FROM %s ORDER BY 1" % t
        out[t] = [[cell(v) for v in r] for r in c.execute(q)]
    out["v_items"] = [[cell(v) for v in r] for r in c.execute("SELECT * FROM v_items ORDER BY id")]
    out["user_version"] = c.execute("PRAGMA user_version").fetchone()[0]
    return out

cmd = sys.argv[1]
if cmd == "populate":
    populate(sys.argv[2])
    print(json.dumps({"ok": True}))
elif cmd == "backup":
    src = sqlite3.connect(sys.argv[2], isolation_level=None)
    dst = sqlite3.connect(sys.argv[3])
    seen = []
    src.backup(dst, progress=lambda status, remaining, total: seen.append([status, remaining, total]))
    dst.close()
    print(json.dumps({"progress": seen}))
elif cmd == "backup_in_tx":
    src = sqlite3.connect(sys.argv[2], isolation_level=None)
    src.execute("BEGIN")
    src.execute("INSERT INTO tags (id, tag, item_id) VALUES (1000, 'uncommitted', 1)")
    dst = sqlite3.connect(sys.argv[3])
    src.backup(dst)
    dst.close()
    src.execute("ROLLBACK")
    n = src.execute("SELECT count(*) FROM tags WHERE id = 1000").fetchone()[0]
    print(json.dumps({"after_rollback": n}))
elif cmd == "dump":
    print(json.dumps(dump(sys.argv[2])))
elif cmd == "check":
    c = sqlite3.connect(sys.argv[2], isolation_level=None)
    integrity = c.execute("PRAGMA integrity_check").fetchall()
    before = dump(sys.argv[2])
    c.execute("INSERT INTO items (title) VALUES ('new')")
    new_id = c.execute("SELECT last_insert_rowid()").fetchone()[0]
    objects = sorted(r[0] + ":" + r[1] for r in c.execute("SELECT type, name FROM sqlite_master"))
    print(json.dumps({"integrity": integrity, "new_id": new_id, "objects": objects, "dump": before}))
elif cmd == "backup_error":
    src = sqlite3.connect(sys.argv[2], isolation_level=None)
    src.execute("CREATE VIRTUAL TABLE spell USING spellfix1")
    dst = sqlite3.connect(sys.argv[3])
    try:
        src.backup(dst)
        print(json.dumps({"error": None}))
    except sqlite3.Error as e:
        tables = dst.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        print(json.dumps({"error": str(e), "class": type(e).__name__, "objects_left": tables}))
elif cmd == "into_routed":
    plain = sqlite3.connect(":memory:")
    routed = sqlite3.connect(sys.argv[2])
    try:
        plain.backup(routed)
        print(json.dumps({"error": None}))
    except sqlite3.Error as e:
        print(json.dumps({"error": str(e)}))
"#;

fn script(dir: &Path) -> String {
    let p = dir.join("backup_case.py");
    std::fs::write(&p, SCRIPT).unwrap();
    p.display().to_string()
}

/// Run the script; with the shim preloaded (schema `schema`) or without.
fn py(dir: &Path, schema: Option<&str>, args: &[&str]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(script(dir)).args(args);
    if let Some(schema) = schema {
        cmd.envs(pg().env(schema)).env("LD_PRELOAD", shim());
    }
    let out = run(&mut cmd, Duration::from_secs(120));
    out.assert_ok();
    serde_json::from_str(out.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

/// A routed library populated through the shim; its dump as the shim
/// returns it.
fn library(dir: &TempDir, schema: &str) -> Value {
    let db = dir.library_db();
    assert_eq!(py(dir.path(), Some(schema), &["populate", &db])["ok"], true);
    let dump = py(dir.path(), Some(schema), &["dump", &db]);
    assert_eq!(dump["items"].as_array().unwrap().len(), 4, "{dump}");
    assert_eq!(
        dump["sqlite_sequence"],
        serde_json::json!([[["text", "items"], ["int", "5"]]]),
        "{dump}"
    );
    dump
}

/// The copy, opened by the real SQLite without the shim: integrity,
/// every row as the shim returned it, the next AUTOINCREMENT id.
fn check_copy(dir: &TempDir, copy: &Path, expected: &Value) {
    let v = py(dir.path(), None, &["check", &copy.display().to_string()]);
    assert_eq!(v["integrity"], serde_json::json!([["ok"]]), "{v}");
    assert_eq!(
        &v["dump"], expected,
        "the copy differs from what the shim returns"
    );
    assert_eq!(
        v["new_id"], 6,
        "an AUTOINCREMENT insert in the copy gets the id after sqlite_sequence's 5"
    );
    let objects: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for o in [
        "index:idx_tags_tag",
        "view:v_items",
        "trigger:items_ai",
        "table:fts_items",
        "table:notes",
    ] {
        assert!(
            objects.contains(&o),
            "{o} missing from the copy: {objects:?}"
        );
    }
}

#[test]
fn python_backup_of_a_routed_library_is_a_real_copy() {
    let dir = TempDir::new("backup_py");
    let schema = unique_name("backup_py");
    let expected = library(&dir, &schema);
    let copy = dir.path().join("copy.db");
    let v = py(
        dir.path(),
        Some(&schema),
        &["backup", &dir.library_db(), &copy.display().to_string()],
    );
    // One step did it all: SQLITE_DONE, nothing remaining, the pages.
    let progress = v["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 1, "{v}");
    assert_eq!(progress[0][0], 101, "{v}");
    assert_eq!(progress[0][1], 0, "{v}");
    assert!(progress[0][2].as_i64().unwrap() > 1, "{v}");
    check_copy(&dir, &copy, &expected);

    // A second backup into the same (now non-empty) file replaces it.
    let again = py(
        dir.path(),
        Some(&schema),
        &["backup", &dir.library_db(), &copy.display().to_string()],
    );
    assert_eq!(again["progress"][0][0], 101, "{again}");
    check_copy(&dir, &copy, &expected);
}

#[test]
fn cli_backup_command_of_a_routed_library_is_a_real_copy() {
    let dir = TempDir::new("backup_cli");
    let schema = unique_name("backup_cli");
    let expected = library(&dir, &schema);
    let copy = dir.path().join("cli-copy.db");
    let out = run(
        Command::new("sqlite3")
            .arg(dir.library_db())
            .arg(format!(".backup '{}'", copy.display()))
            .envs(pg().env(&schema))
            .env("LD_PRELOAD", shim()),
        Duration::from_secs(120),
    );
    out.assert_ok();
    check_copy(&dir, &copy, &expected);
}

#[test]
fn backup_inside_a_transaction_reads_that_transaction() {
    let dir = TempDir::new("backup_tx");
    let schema = unique_name("backup_tx");
    library(&dir, &schema);
    let copy = dir.path().join("tx-copy.db");
    let v = py(
        dir.path(),
        Some(&schema),
        &[
            "backup_in_tx",
            &dir.library_db(),
            &copy.display().to_string(),
        ],
    );
    assert_eq!(
        v["after_rollback"], 0,
        "the transaction was still usable: {v}"
    );
    let dump = py(dir.path(), None, &["dump", &copy.display().to_string()]);
    assert!(
        dump["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == serde_json::json!(["int", "1000"])),
        "the copy holds the transaction's own uncommitted row: {dump}"
    );
}

#[test]
fn backup_into_a_routed_database_is_refused_with_a_clear_error() {
    let dir = TempDir::new("backup_refused");
    let schema = unique_name("backup_refused");
    let v = py(
        dir.path(),
        Some(&schema),
        &["into_routed", &dir.library_db()],
    );
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("plex-pg cannot run this backup") && msg.contains("import"),
        "{v}"
    );
}

/// A copy that cannot be made (a table of a module the real SQLite lacks)
/// fails with its reason as the destination's error, and leaves nothing
/// half-written.
#[test]
fn a_failed_backup_says_why_on_the_destination() {
    let dir = TempDir::new("backup_error");
    let schema = unique_name("backup_error");
    library(&dir, &schema);
    let copy = dir.path().join("error-copy.db");
    let v = py(
        dir.path(),
        Some(&schema),
        &[
            "backup_error",
            &dir.library_db(),
            &copy.display().to_string(),
        ],
    );
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("creating table spell in the backup") && msg.contains("PLEX_PG_REAL_SQLITE"),
        "{v}"
    );
    assert_eq!(v["class"], "OperationalError", "{v}");
    assert_eq!(v["objects_left"], 0, "rolled back: {v}");
}

/// Nothing routed: the real SQLite's backup, untouched.
#[test]
fn backup_between_plain_files_goes_to_the_real_sqlite() {
    let dir = TempDir::new("backup_plain");
    let src = dir.path().join("plain.db");
    let copy = dir.path().join("plain-copy.db");
    let py_src = format!(
        "import sqlite3\nc = sqlite3.connect({src:?})\nc.execute('CREATE TABLE t (a)')\nc.execute('INSERT INTO t VALUES (1.5)')\nc.commit()\nd = sqlite3.connect({copy:?})\nc.backup(d)\nprint(d.execute('SELECT a FROM t').fetchall())\n",
        src = src.display().to_string(),
        copy = copy.display().to_string()
    );
    let out = run(
        Command::new("python3")
            .arg("-c")
            .arg(py_src)
            .envs(pg().env(&unique_name("unused")))
            .env("LD_PRELOAD", shim()),
        Duration::from_secs(60),
    );
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "[(1.5,)]");
}

/// SQLite's rules for closing under an unfinished backup, through the C
/// API (ctypes): `sqlite3_close` of the source or the destination is
/// `SQLITE_BUSY` with SQLite's message; after `finish` both close.
#[test]
fn close_under_an_unfinished_backup_is_busy() {
    let dir = TempDir::new("backup_close");
    let schema = unique_name("backup_close");
    library(&dir, &schema);
    let code = format!(
        r#"
import ctypes as C, json
C.CDLL("libsqlite3.so.0", mode=C.RTLD_GLOBAL)
lib = C.CDLL(None)
lib.sqlite3_backup_init.restype = C.c_void_p
lib.sqlite3_backup_init.argtypes = [C.c_void_p, C.c_char_p, C.c_void_p, C.c_char_p]
for f in ["sqlite3_backup_step", "sqlite3_backup_finish", "sqlite3_close", "sqlite3_backup_remaining"]:
    getattr(lib, f).argtypes = [C.c_void_p] + ([C.c_int] if f == "sqlite3_backup_step" else [])
lib.sqlite3_errmsg.restype = C.c_char_p
lib.sqlite3_errmsg.argtypes = [C.c_void_p]
src, dst = C.c_void_p(), C.c_void_p()
assert lib.sqlite3_open({src:?}.encode(), C.byref(src)) == 0
assert lib.sqlite3_open({dst:?}.encode(), C.byref(dst)) == 0
b = lib.sqlite3_backup_init(dst, b"main", src, b"main")
out = {{"backup": bool(b)}}
out["close_src"] = lib.sqlite3_close(src)
out["close_dst"] = lib.sqlite3_close(dst)
out["dst_msg"] = lib.sqlite3_errmsg(dst).decode()
out["step"] = lib.sqlite3_backup_step(b, 5)
out["remaining"] = lib.sqlite3_backup_remaining(b)
out["finish"] = lib.sqlite3_backup_finish(b)
out["close_src_after"] = lib.sqlite3_close(src)
out["close_dst_after"] = lib.sqlite3_close(dst)
print(json.dumps(out))
"#,
        src = dir.library_db(),
        dst = dir.path().join("close-copy.db").display().to_string()
    );
    let out = run(
        Command::new("python3")
            .arg("-c")
            .arg(code)
            .envs(pg().env(&schema))
            .env("LD_PRELOAD", shim()),
        Duration::from_secs(60),
    );
    out.assert_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "backup": true,
            "close_src": 5,
            "close_dst": 5,
            "dst_msg": "unable to close due to unfinalized statements or unfinished backups",
            "step": 101,
            "remaining": 0,
            "finish": 0,
            "close_src_after": 0,
            "close_dst_after": 0,
        })
    );
}

/// Every table's row count of a SQLite file (real SQLite, no shim).
fn counts(dir: &Path, file: &Path) -> Value {
    // FTS shadow tables are left out: a rebuilt index need not be
    // segmented as the original was (the FTS tables' own rows count).
    let code = format!(
        "import json, sqlite3\nc = sqlite3.connect('file:' + {:?} + '?mode=ro', uri=True)\nrows = c.execute(\"SELECT name, sql LIKE 'CREATE VIRTUAL%' FROM sqlite_master WHERE type = 'table'\").fetchall()\nvirt = [n for n, v in rows if v]\nnames = [n for n, v in rows if not any(n.startswith(x + '_') for x in virt)]\nprint(json.dumps({{n: c.execute('SELECT count(*) FROM \"%s\"' % n).fetchone()[0] for n in names}}))\n",
        file.display().to_string()
    );
    let out = run(
        Command::new("python3").arg("-c").arg(code).current_dir(dir),
        Duration::from_secs(600),
    );
    out.assert_ok();
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// GNU time's peak resident memory (KiB) and wall seconds.
fn time_v(stderr: &str) -> (u64, String) {
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} from /usr/bin/time:\n{stderr}"))
    };
    (
        field("Maximum resident set size (kbytes): ")
            .parse()
            .unwrap(),
        field("Elapsed (wall clock) time (h:mm:ss or m:ss): "),
    )
}

/// The figures of `docs/benchmarks.md`, "Backup": a generated library of
/// 100,000 items (`plex-sim library generate`), imported, then backed up through the shim
/// with Python's `Connection.backup()`; the real SQLite's own backup of the
/// original file as the anchor. The copy must hold every row of the
/// original. Run: `cargo test --release -p plex-pg-tests --test
/// shim_backup -- --ignored --nocapture backup_of_a_100000_item_library`.
#[test]
#[ignore]
fn backup_of_a_100000_item_library() {
    let items: usize = std::env::var("BACKUP_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = TempDir::new("backup_bench");
    let lib_dir = dir.path().join("lib");
    run(
        &mut plex_pg_tests::plex_sim_library(&[
            "generate",
            "--dir",
            &lib_dir.display().to_string(),
            "--items",
            &items.to_string(),
        ]),
        Duration::from_secs(3600),
    )
    .assert_ok();
    let original = lib_dir.join("com.plexapp.plugins.library.db");
    let before = counts(dir.path(), &original);

    // The anchor: the real SQLite's page copy of the original file.
    let anchor_copy = dir.path().join("anchor.db");
    let code = format!(
        "import sqlite3, time\ns = sqlite3.connect({:?})\nd = sqlite3.connect({:?})\nt = time.monotonic()\ns.backup(d)\nprint(time.monotonic() - t)\n",
        original.display().to_string(),
        anchor_copy.display().to_string()
    );
    let anchor = run(
        Command::new("/usr/bin/time")
            .arg("-v")
            .arg("python3")
            .arg("-c")
            .arg(code),
        Duration::from_secs(3600),
    );
    anchor.assert_ok();
    let anchor_secs: f64 = anchor.stdout.trim().parse().unwrap();
    let schema = unique_name("backup_bench");
    run(
        Command::new(plex_pg_tests::artifact("plex-pg-launcher"))
            .arg("import")
            .arg("--from")
            .arg(&lib_dir)
            .envs(pg().env(&schema)),
        Duration::from_secs(3600),
    )
    .assert_ok();

    // Through the shim: the routed library (a file name the shim routes).
    let routed = dir.path().join("com.plexapp.plugins.library.db");
    let copy = dir.path().join("shim-copy.db");
    let code = format!(
        "import sqlite3, time\ns = sqlite3.connect({:?})\nd = sqlite3.connect({:?})\nt = time.monotonic()\ns.backup(d)\nprint(time.monotonic() - t)\n",
        routed.display().to_string(),
        copy.display().to_string()
    );
    let shim_run = run(
        Command::new("/usr/bin/time")
            .arg("-v")
            .arg("python3")
            .arg("-c")
            .arg(code)
            .envs(pg().env(&schema))
            .env("LD_PRELOAD", shim()),
        Duration::from_secs(3600),
    );
    shim_run.assert_ok();
    let secs: f64 = shim_run.stdout.trim().parse().unwrap();
    let after = counts(dir.path(), &copy);
    assert_eq!(before, after, "the backup holds every row of the original");
    let rows: u64 = after
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let (rss, wall) = time_v(&shim_run.stderr);
    let (anchor_rss, _) = time_v(&anchor.stderr);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backup of {items} items through the shim: {rows} rows in {secs:.1} s ({:.0} rows/s), process wall {wall}, peak RSS {rss} KiB, copy {} bytes\n\
         real SQLite's backup of the original file: {anchor_secs:.2} s, peak RSS {anchor_rss} KiB, {} bytes\n\
         shim log: {}",
        rows as f64 / secs,
        size(&copy),
        size(&anchor_copy),
        shim_run.stderr.lines().filter(|l| l.contains("backup of")).collect::<Vec<_>>().join("\n")
    );
    // Plex's maintenance calls on the same library, each timed.
    pg().psql("CREATE EXTENSION IF NOT EXISTS amcheck");
    let code = format!(
        "import sqlite3, time\ns = sqlite3.connect({:?}, isolation_level=None)\nfor q in ['VACUUM', 'ANALYZE', 'PRAGMA quick_check', 'PRAGMA integrity_check', 'PRAGMA optimize']:\n    t = time.monotonic()\n    r = s.execute(q).fetchall()\n    print('%s: %.2f s %r' % (q, time.monotonic() - t, r[:3]))\n",
        routed.display().to_string()
    );
    let maint = run(
        Command::new("python3")
            .arg("-c")
            .arg(code)
            .envs(pg().env(&schema))
            .env("LD_PRELOAD", shim()),
        Duration::from_secs(3600),
    );
    maint.assert_ok();
    assert!(
        maint.stdout.contains("PRAGMA integrity_check: ") && maint.stdout.contains("[('ok',)]"),
        "{}",
        maint.stdout
    );
    eprintln!(
        "maintenance on {items} items:\n{}{}",
        maint.stdout, maint.stderr
    );
}
