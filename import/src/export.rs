//! The way back: each routed schema written to a SQLite file with the real
//! SQLite, from Plex's schema text as the catalog keeps it, then verified
//! the same way as the import.
//!
//! 1. One read-only, repeatable-read PostgreSQL transaction (one snapshot).
//! 2. For each routed file name: a new file `<name>.plexpg-export` in the
//!    target folder; in one SQLite transaction the tables from
//!    `sqlite_master`'s text, the rows (`COPY … TO STDOUT`, bound into
//!    `INSERT`s), `sqlite_sequence`, then views, indexes, triggers, FTS
//!    rebuilt, `user_version`/`application_id`; journal mode WAL, as Plex's.
//! 3. Every table read back from the file and compared with PostgreSQL.
//! 4. Only then is each file renamed to its real name. An existing file is
//!    never overwritten (the export refuses before writing anything).

use std::path::{Path, PathBuf};
use std::time::Instant;

use plex_pg_config::Settings;
use postgres::Transaction;

use crate::import::Failure;
use crate::pg::{self, ident, literal};
use crate::sqlite::{self, Db, ValueRef};
use crate::value::{self, Checksum, Kind};

fn failed(m: impl Into<String>) -> Failure {
    Failure::Failed(m.into())
}

fn say(line: &str) {
    println!("{line}");
}

/// A table whose rows are exported.
struct Table {
    name: String,
    pg: String,
    /// PostgreSQL column, its kind, the SQLite column.
    columns: Vec<(String, Kind, String)>,
    checksum: Checksum,
}

/// The routed file names (patterns without wildcards) and their schemas.
fn routed(settings: &Settings) -> Vec<(String, String)> {
    settings
        .shim
        .route
        .iter()
        .filter(|p| !p.contains(['*', '?']))
        .map(|p| (p.clone(), settings.schema_for(p)))
        .collect()
}

/// Export every routed schema that holds a library into `dir`.
pub fn run(settings: &Settings, dir: &Path) -> Result<(), Failure> {
    let started = Instant::now();
    if !dir.is_dir() {
        return Err(Failure::Refused(format!(
            "{} is not a directory; create it (Plex's \"Plug-in Support/Databases\" folder, or an empty folder to copy from)",
            dir.display()
        )));
    }
    let mut client = pg::connect(settings).map_err(Failure::Refused)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| failed(pg::chain(&e)))?;
    tx.batch_execute("SET LOCAL bytea_output = hex; SET LOCAL extra_float_digits = 1; SET LOCAL client_encoding = 'UTF8'")
        .map_err(|e| failed(pg::chain(&e)))?;
    let mut jobs = Vec::new();
    for (file, schema) in routed(settings) {
        let exists = pg::scalar(
            &mut tx,
            &format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = {}",
                literal(&schema)
            ),
        )
        .map_err(failed)?;
        if exists.as_deref() != Some("1") {
            continue;
        }
        let target = dir.join(&file);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = target.clone().into_os_string();
            p.push(suffix);
            if Path::new(&p).exists() {
                return Err(Failure::Refused(format!(
                    "{} exists; the export never overwrites a file: move it aside (it may be the library the import read) or export to an empty folder",
                    Path::new(&p).display()
                )));
            }
        }
        jobs.push((file, schema, target));
    }
    if jobs.is_empty() {
        return Err(Failure::Refused(
            "no routed schema exists in PostgreSQL: nothing to export".into(),
        ));
    }
    let mut written = Vec::new();
    let mut all_ok = true;
    for (file, schema, target) in &jobs {
        let mut temp = target.clone().into_os_string();
        temp.push(".plexpg-export");
        let temp = PathBuf::from(temp);
        let _ = std::fs::remove_file(&temp);
        say(&format!("schema {schema} → {}", target.display()));
        let result = export_one(&mut tx, schema, &temp);
        match result {
            Ok(ok) => {
                all_ok &= ok;
                written.push((temp, target.clone()));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                for (t, _) in &written {
                    let _ = std::fs::remove_file(t);
                }
                return Err(e);
            }
        }
        let _ = file;
    }
    if !all_ok {
        for (t, _) in &written {
            let _ = std::fs::remove_file(t);
        }
        return Err(failed(
            "verification found differences (above); no file was written",
        ));
    }
    for (temp, target) in &written {
        std::fs::rename(temp, target).map_err(|e| {
            failed(format!(
                "cannot rename {} to {}: {e}",
                temp.display(),
                target.display()
            ))
        })?;
    }
    say(&format!(
        "export complete in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        written
            .iter()
            .map(|(_, t)| t.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// One schema into one new file; false when the verification differs.
fn export_one(tx: &mut Transaction<'_>, schema: &str, path: &Path) -> Result<bool, Failure> {
    tx.batch_execute(&format!("SET LOCAL search_path = {}", ident(schema)))
        .map_err(|e| failed(pg::chain(&e)))?;
    let objects = pg::rows(
        tx,
        "SELECT type, name, sql FROM sqlite_master ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, rootpage",
    )
    .map_err(failed)?;
    let db = Db::create(path).map_err(failed)?;
    db.exec("BEGIN").map_err(failed)?;
    let mut tables = Vec::new();
    let mut rebuild = Vec::new();
    for o in &objects {
        let get = |i: usize| o.get(i).cloned().flatten().unwrap_or_default();
        let (kind, name, sql) = (get(0), get(1), get(2));
        if kind != "table" || name.eq_ignore_ascii_case("sqlite_sequence") {
            continue;
        }
        db.exec(&sql).map_err(|e| {
            failed(format!(
                "creating table {name} in SQLite: {e} (a table of Plex's own SQLite modules, spellfix1 or the collating tokenizer, needs Plex's SQLite: set PLEX_PG_REAL_SQLITE to a glibc build of it)"
            ))
        })?;
        let upper = sql.to_ascii_uppercase();
        if upper.starts_with("CREATE VIRTUAL TABLE")
            && upper.contains("USING FTS")
            && upper.contains("CONTENT=")
        {
            rebuild.push(name.clone());
            continue;
        }
        let fts = upper.starts_with("CREATE VIRTUAL TABLE") && upper.contains("USING FTS");
        if upper.starts_with("CREATE VIRTUAL TABLE") && !upper.contains("USING RTREE") && !fts {
            return Err(failed(format!(
                "table {name}: exporting the rows of this virtual table is not supported yet ({sql})"
            )));
        }
        tables.push(describe(tx, &db, &name, fts)?);
    }
    for t in &mut tables {
        copy_table(tx, &db, t)?;
    }
    // sqlite_sequence: PostgreSQL's sequences, as SQLite keeps them.
    let seqs = pg::rows(tx, "SELECT name, seq FROM sqlite_sequence").unwrap_or_default();
    for r in seqs {
        let (Some(name), Some(seq)) = (r.first().cloned().flatten(), r.get(1).cloned().flatten())
        else {
            continue;
        };
        let mut up = db
            .prepare("UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1")
            .map_err(failed)?;
        let seq: i64 = seq
            .parse()
            .map_err(|_| failed("bad sqlite_sequence value"))?;
        up.bind(1, ValueRef::Text(name.as_bytes()))
            .map_err(failed)?;
        up.bind(2, ValueRef::Integer(seq)).map_err(failed)?;
        while up.step().map_err(failed)? {}
        drop(up);
        let n = db
            .query_text(&format!(
                "SELECT count(*) FROM sqlite_sequence WHERE name = '{}'",
                name.replace('\'', "''")
            ))
            .map_err(failed)?;
        if n.first()
            .and_then(|r| r.first().cloned().flatten())
            .as_deref()
            == Some("0")
        {
            let mut ins = db
                .prepare("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)")
                .map_err(failed)?;
            ins.bind(1, ValueRef::Text(name.as_bytes()))
                .map_err(failed)?;
            ins.bind(2, ValueRef::Integer(seq)).map_err(failed)?;
            while ins.step().map_err(failed)? {}
        }
    }
    for o in &objects {
        let get = |i: usize| o.get(i).cloned().flatten().unwrap_or_default();
        let (kind, name, sql) = (get(0), get(1), get(2));
        if kind == "table" {
            continue;
        }
        db.exec(&sql)
            .map_err(|e| failed(format!("creating {kind} {name} in SQLite: {e}")))?;
    }
    for fts in &rebuild {
        let q = sqlite::quote(fts);
        db.exec(&format!("INSERT INTO {q}({q}) VALUES('rebuild')"))
            .map_err(|e| failed(format!("rebuilding {fts}: {e}")))?;
    }
    for pragma in ["user_version", "application_id"] {
        let v = pg::scalar(
            tx,
            &format!(
                "SELECT value FROM sqlite__pragma WHERE name = {}",
                literal(pragma)
            ),
        )
        .unwrap_or(None);
        if let Some(v) = v.and_then(|v| v.parse::<i64>().ok()) {
            db.exec(&format!("PRAGMA {pragma} = {v}")).map_err(failed)?;
        }
    }
    db.exec("COMMIT").map_err(failed)?;
    db.exec("PRAGMA journal_mode = WAL").map_err(failed)?;
    verify(&db, schema, &tables)
}

/// A table's PostgreSQL columns matched with the new SQLite table's.
fn describe(tx: &mut Transaction<'_>, db: &Db, name: &str, fts: bool) -> Result<Table, Failure> {
    let pg_name = pg::scalar(
        tx,
        &format!(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
             WHERE c.relkind = 'r' AND sqlite_object_name(obj_description(c.oid, 'pg_class')) = {}",
            literal(name)
        ),
    )
    .map_err(failed)?
    .ok_or_else(|| failed(format!("table {name} not found in PostgreSQL")))?;
    let pg_columns = pg::rows(
        tx,
        &format!(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = {}::regclass \
             AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attname NOT LIKE 'sqlite\\_\\_%' ORDER BY a.attnum",
            literal(&ident(&pg_name))
        ),
    )
    .map_err(failed)?;
    // An FTS table's rowid is its hidden docid, PostgreSQL's first column.
    let mut sqlite_columns: Vec<String> = if fts { vec!["docid".into()] } else { vec![] };
    sqlite_columns.extend(
        db.query_text(&format!("PRAGMA table_info({})", sqlite::quote(name)))
            .map_err(failed)?
            .into_iter()
            .map(|r| r.get(1).cloned().flatten().unwrap_or_default()),
    );
    if sqlite_columns.len() != pg_columns.len() {
        return Err(failed(format!(
            "table {name}: {} columns in PostgreSQL, {} in its SQLite text",
            pg_columns.len(),
            sqlite_columns.len()
        )));
    }
    let mut columns = Vec::new();
    for (r, s) in pg_columns.iter().zip(sqlite_columns) {
        let col = r.first().cloned().flatten().unwrap_or_default();
        let t = r.get(1).cloned().flatten().unwrap_or_default();
        let kind = Kind::from_pg(&t)
            .ok_or_else(|| failed(format!("table {name}, column {col}: type {t} unknown")))?;
        columns.push((col, kind, s));
    }
    Ok(Table {
        name: name.to_string(),
        pg: pg_name,
        checksum: Checksum::new(columns.len()),
        columns,
    })
}

/// Rows from PostgreSQL into the SQLite table; the PostgreSQL checksum.
fn copy_table(tx: &mut Transaction<'_>, db: &Db, t: &mut Table) -> Result<(), Failure> {
    let started = Instant::now();
    let cols: Vec<String> = t.columns.iter().map(|c| ident(&c.0)).collect();
    let select = format!("SELECT {} FROM {}", cols.join(", "), ident(&t.pg));

    let names: Vec<String> = t.columns.iter().map(|c| sqlite::quote(&c.2)).collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    let mut ins = db
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            sqlite::quote(&t.name),
            names.join(", "),
            marks.join(", ")
        ))
        .map_err(failed)?;
    let kinds: Vec<Kind> = t.columns.iter().map(|c| c.1).collect();
    let name = t.name.clone();
    let checksum = &mut t.checksum;
    pg::copy_rows(tx, &select, &kinds, &name, failed, |row| {
        for (i, v) in row.iter().enumerate() {
            ins.bind(i + 1, value::as_ref(v)).map_err(failed)?;
        }
        while ins
            .step()
            .map_err(|e| failed(format!("writing {name}: {e}")))?
        {}
        ins.reset();
        checksum.add(row.iter().map(value::as_ref));
        Ok(true)
    })?;
    if t.checksum.rows > 0 {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        say(&format!(
            "  wrote {}: {} rows in {secs:.2} s ({:.0} rows/s)",
            t.name,
            t.checksum.rows,
            t.checksum.rows as f64 / secs
        ));
    }
    Ok(())
}

/// The file read back, table by table, against PostgreSQL's checksums.
fn verify(db: &Db, schema: &str, tables: &[Table]) -> Result<bool, Failure> {
    say(&format!(
        "verification of schema {schema} against the written file (every value, in SQLite's classes):"
    ));
    let mut ok = true;
    let mut empty = 0;
    for t in tables {
        let names: Vec<String> = t.columns.iter().map(|c| sqlite::quote(&c.2)).collect();
        let mut st = db
            .prepare(&format!(
                "SELECT {} FROM {}",
                names.join(", "),
                sqlite::quote(&t.name)
            ))
            .map_err(failed)?;
        let mut got = Checksum::new(t.columns.len());
        while st.step().map_err(failed)? {
            got.add((0..t.columns.len()).map(|i| st.value(i)));
        }
        let same = got == t.checksum;
        if same && got.rows == 0 {
            empty += 1;
            continue;
        }
        ok &= same;
        say(&format!(
            "  {:<40} {:>12} {:>12}  {}",
            t.name,
            t.checksum.rows,
            got.rows,
            if same { "ok" } else { "DIFFERS" }
        ));
    }
    if empty > 0 {
        say(&format!("  and {empty} tables empty on both sides"));
    }
    Ok(ok)
}
