//! `plex-sim library …`: the generator of realistic Plex libraries for the
//! import, export and backup tests, and the small operations those tests
//! run on a library afterwards (on the real SQLite, or through the shim
//! when it is preloaded: plex-sim calls the SQLite C API, so the same
//! command reads PostgreSQL under `LD_PRELOAD`).
//!
//! - `generate --dir DIR --items N`: Plex's schema (the embedded fixture)
//!   in DIR's two library files, WAL mode, `user_version` 42; N movies
//!   (metadata item, media item, tagging each) with tricky values: Unicode,
//!   empty strings, NULLs, REALs that need all 17 digits (and the smallest
//!   subnormal, the largest double, −0.0), 2^63−1, a negative id; an
//!   AUTOINCREMENT table whose `sqlite_sequence` is above its largest id;
//!   Plex's FTS4 tables rebuilt, a full-text table with its own content, an
//!   rtree row; every other table of the schema too (`generator_tables.rs`:
//!   accounts, devices, directories, play queues, statistics, agents,
//!   settings, …, in a real library's proportions), so that no table is
//!   empty; in the blobs file, up to 500 blobs (every fourth empty), a row
//!   of NULLs, and Plex's schema migrations. Every value is a function of the item number: the same
//!   N gives the same library. Prints `{"items": N}`.
//! - `bad DB`: a text in an integer column (metadata item 3's year).
//! - `hold DB READY GO`: `BEGIN IMMEDIATE`, a write, creates READY, waits
//!   (at most 60 s) for GO, rolls back.
//! - `rows DB`: the tricky rows, each value with its class, as one JSON
//!   line (REALs as their 64 bits, blobs as hex): the same on SQLite and
//!   through the shim, or the library changed on the way.
//! - `insert DB`: new rows after the imported ones; their ids as JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value as Json};

use crate::generator_tables;
use crate::library::{blobs_statements, is_missing_module, schema_statements};
use crate::sqlite::{Connection, Value};

const LIB: &str = "com.plexapp.plugins.library.db";
const BLOBS: &str = "com.plexapp.plugins.library.blobs.db";

/// Titles SQLite keeps exactly that a careless copy would not (`None`: NULL).
pub(crate) const TITLES: [Option<&str>; 6] = [
    Some("日本語のタイトル 🎬"),
    Some(""),
    None,
    Some("Ünïcödé \t tab\nnewline \\ back"),
    Some("plain"),
    Some("'quoted' \"double\""),
];

/// Ratings: REALs whose every bit matters.
pub(crate) const REALS: [f64; 6] = [
    0.1 + 0.2,
    1.0 / 3.0,
    5e-324,
    f64::MAX,
    -0.0,
    123_456_789.123_456_78,
];

#[derive(Parser, Debug)]
#[command(
    name = "plex-sim library",
    about = "Realistic Plex libraries for the import and backup tests, and what the tests do with them"
)]
struct LibraryCli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make DIR's two library files: Plex's schema and N movies with tricky values.
    Generate {
        /// The directory of the two files (created; the files must not exist).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Movies in the library.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=10_000_000))]
        items: i64,
    },
    /// Put a text into an integer column (metadata item 3's year).
    Bad { db: PathBuf },
    /// Hold a write transaction until GO exists (READY is created once it is held).
    Hold {
        db: PathBuf,
        ready: PathBuf,
        go: PathBuf,
    },
    /// The tricky rows, each value with its class, as JSON.
    Rows { db: PathBuf },
    /// Insert new rows; print their ids as JSON.
    Insert { db: PathBuf },
}

/// Run `plex-sim library ARGS` (`args` starts with `library`); the exit
/// status. What a command prints (a JSON line, or nothing) goes to stdout.
pub fn run(args: impl Iterator<Item = String>) -> i32 {
    let cli = LibraryCli::parse_from(args);
    let outcome = match cli.command {
        Command::Generate { dir, items } => generate(&dir, items),
        Command::Bad { db } => bad(&db),
        Command::Hold { db, ready, go } => hold(&db, &ready, &go),
        Command::Rows { db } => rows(&db),
        Command::Insert { db } => insert(&db),
    };
    match outcome {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            eprintln!("plex-sim library: {e}");
            1
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, String>;

fn open(db: &Path) -> Result<Connection> {
    Connection::open(db, 20_000).map_err(|e| e.to_string())
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.execute(sql).map_err(|e| e.to_string())
}

/// Run `sql` once per row of `rows`, one prepared statement.
pub(crate) fn insert_many(
    conn: &Connection,
    sql: &str,
    rows: impl Iterator<Item = Vec<Value>>,
) -> Result<()> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    for row in rows {
        stmt.reset();
        for (n, v) in row.into_iter().enumerate() {
            stmt.bind_at(n + 1, v).map_err(|e| e.to_string())?;
        }
        while stmt.step().map_err(|e| e.to_string())? {}
    }
    Ok(())
}

/// Plex's schema statements, skipping the virtual tables whose module this
/// SQLite lacks (Plex's has spellfix1 and the `collating` tokenizer).
fn apply_schema<'a>(
    conn: &Connection,
    statements: impl Iterator<Item = (usize, &'a str)>,
) -> Result<()> {
    for (line, s) in statements {
        match conn.execute(s) {
            Ok(()) => {}
            Err(e) if is_missing_module(s, &e) => {}
            Err(e) => return Err(format!("schema line {line}: {e}")),
        }
    }
    Ok(())
}

fn opt_text(s: Option<String>) -> Value {
    s.map_or(Value::Null, Value::Text)
}

fn generate(dir: &Path, items: i64) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in [LIB, BLOBS] {
        let p = dir.join(name);
        if p.exists() {
            return Err(format!("{} exists already", p.display()));
        }
    }
    let lib = open(&dir.join(LIB))?;
    exec(&lib, "PRAGMA journal_mode=WAL")?;
    apply_schema(&lib, schema_statements())?;
    exec(&lib, "PRAGMA user_version = 42")?;
    exec(&lib, "BEGIN")?;
    exec(
        &lib,
        "INSERT INTO library_sections (id, name, name_sort, section_type, language, agent, scanner) \
         VALUES (1, 'Movies', 'movies', 1, 'en', 'tv.plex.agents.movie', 'Plex Movie')",
    )?;
    exec(
        &lib,
        "INSERT INTO section_locations (id, library_section_id, root_path) VALUES (1, 1, '/media/movies')",
    )?;
    insert_many(
        &lib,
        "INSERT INTO metadata_items (id, library_section_id, metadata_type, guid, title, title_sort, \
         rating, year, added_at, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (1..=items).map(|i| {
            let t = TITLES[(i % 6) as usize];
            vec![
                Value::Integer(i),
                Value::Integer(1),
                Value::Integer(1),
                Value::Text(format!("plex://movie/{i:x}")),
                opt_text(t.map(|t| format!("{t} {i}"))),
                opt_text(t.map(str::to_lowercase)),
                Value::Real(REALS[(i % 6) as usize]),
                Value::Integer(1990 + i % 30),
                Value::Integer(1_600_000_000 + i),
                Value::Integer(i * 1000),
            ]
        }),
    )?;
    // The edges: a negative id, the largest integer, empty strings, NULLs.
    exec(
        &lib,
        "INSERT INTO metadata_items (id, library_section_id, metadata_type, guid, title, title_sort, \
         rating, year, duration, user_fields) VALUES (-5, 1, 1, 'negative', '', '', 2.5, NULL, 9223372036854775807, '')",
    )?;
    insert_many(
        &lib,
        "INSERT INTO media_items (metadata_item_id, library_section_id, width, height, size, \
         display_aspect_ratio, interlaced, container) VALUES (?, 1, 1920, 1080, ?, ?, ?, 'mkv')",
        (1..=items).map(|i| {
            vec![
                Value::Integer(i),
                Value::Integer(i * 1_000_003),
                Value::Real(1.777_777_777_777_777_7),
                Value::Integer(i % 2),
            ]
        }),
    )?;
    // A real library's proportions: a file (part) per media item, three
    // streams per part (video, audio, subtitles), play state for about a
    // third of the items, a view history for a fifth.
    insert_many(
        &lib,
        "INSERT INTO media_parts (media_item_id, directory_id, hash, file, \"index\", size, \
         duration, created_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
        (1..=items).map(|i| {
            let t = TITLES[(i % 6) as usize].unwrap_or("");
            vec![
                Value::Integer(i),
                Value::Integer(generator_tables::item_directory(i)),
                Value::Text(format!(
                    "{:040x}",
                    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                )),
                Value::Text(format!(
                    "/media/movies/{t} {i} ({})/{t} {i}.mkv",
                    1990 + i % 30
                )),
                Value::Integer(i * 1_000_003),
                Value::Integer(i * 1000),
                Value::Integer(1_600_000_000 + i),
            ]
        }),
    )?;
    insert_many(
        &lib,
        "INSERT INTO media_streams (stream_type_id, media_item_id, media_part_id, codec, language, \
         \"index\", channels, bitrate, \"default\", forced, url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (1..=items).flat_map(|i| {
            let video = vec![
                Value::Integer(1),
                Value::Integer(i),
                Value::Integer(i),
                Value::Text(if i % 3 == 0 { "hevc" } else { "h264" }.into()),
                Value::Null,
                Value::Integer(0),
                Value::Null,
                Value::Integer(8_000_000 + i % 1000),
                Value::Integer(1),
                Value::Integer(0),
                Value::Null,
            ];
            let audio = vec![
                Value::Integer(2),
                Value::Integer(i),
                Value::Integer(i),
                Value::Text(if i % 2 == 0 { "eac3" } else { "aac" }.into()),
                Value::Text(if i % 4 == 0 { "fra" } else { "eng" }.into()),
                Value::Integer(1),
                Value::Integer(if i % 2 == 0 { 6 } else { 2 }),
                Value::Integer(640_000),
                Value::Integer(1),
                Value::Integer(0),
                Value::Null,
            ];
            let subtitles = vec![
                Value::Integer(3),
                Value::Integer(i),
                Value::Integer(i),
                Value::Text("srt".into()),
                if i % 7 == 0 { Value::Null } else { Value::Text("fra".into()) },
                Value::Integer(2),
                Value::Null,
                Value::Null,
                Value::Integer(0),
                Value::Integer((i % 11 == 0) as i64),
                if i % 5 == 0 {
                    Value::Text(format!("file:///media/movies/sous-titres/{i}.fra.srt"))
                } else {
                    Value::Null
                },
            ];
            [video, audio, subtitles]
        }),
    )?;
    insert_many(
        &lib,
        "INSERT INTO metadata_item_settings (account_id, guid, rating, view_offset, view_count, \
         last_viewed_at, created_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
        (1..=items).filter(|i| i % 10 < 3).map(|i| {
            vec![
                Value::Text(format!("plex://movie/{i:x}")),
                if i % 4 == 0 {
                    Value::Null
                } else {
                    Value::Real(REALS[(i % 6) as usize])
                },
                Value::Integer(i * 37 % 7_200_000),
                Value::Integer(i % 4),
                Value::Integer(1_700_000_000 + i),
                Value::Integer(1_650_000_000 + i),
            ]
        }),
    )?;
    insert_many(
        &lib,
        "INSERT INTO metadata_item_views (account_id, guid, metadata_type, library_section_id, \
         title, viewed_at, view_type) VALUES (1, ?, 1, 1, ?, ?, 0)",
        (1..=items).filter(|i| i % 5 == 0).map(|i| {
            let t = TITLES[(i % 6) as usize];
            vec![
                Value::Text(format!("plex://movie/{i:x}")),
                opt_text(t.map(|t| format!("{t} {i}"))),
                Value::Integer(1_700_000_000 + i),
            ]
        }),
    )?;
    exec(
        &lib,
        "INSERT INTO tags (tag, tag_type) VALUES ('Drama', 1), ('Comédie', 1), ('', 1)",
    )?;
    insert_many(
        &lib,
        "INSERT INTO taggings (metadata_item_id, tag_id, \"index\") VALUES (?, ?, ?)",
        (1..=items).map(|i| {
            vec![
                Value::Integer(i),
                Value::Integer(1 + i % 3),
                Value::Integer(i % 5),
            ]
        }),
    )?;
    // An AUTOINCREMENT table whose last rows were deleted: sqlite_sequence
    // is above its largest id, and the next id must come after it.
    exec(
        &lib,
        "INSERT INTO tags (id, tag, tag_type) VALUES (100, 'deleted later', 1)",
    )?;
    exec(&lib, "DELETE FROM tags WHERE id = 100")?;
    // Plex's own boolean default: the text 't'.
    exec(
        &lib,
        "INSERT INTO section_locations (library_section_id, root_path) VALUES (1, '/media/more')",
    )?;
    // Every other table of Plex's schema.
    generator_tables::fill(&lib, items)?;
    exec(&lib, "COMMIT")?;
    // A full-text table with its own content, and an rtree row (values a
    // 4-byte float holds exactly).
    exec(&lib, "CREATE VIRTUAL TABLE notes USING fts4(body, author)")?;
    insert_many(
        &lib,
        "INSERT INTO notes (docid, body, author) VALUES (?, ?, ?)",
        [
            (7, "première note ünïcode", Some("ann")),
            (9, "second note", None),
            (12, "", Some("bob")),
        ]
        .into_iter()
        .map(|(id, body, author)| {
            vec![
                Value::Integer(id),
                Value::from(body),
                opt_text(author.map(str::to_string)),
            ]
        }),
    )?;
    exec(
        &lib,
        "INSERT INTO locations VALUES (3, 10.5, 11.5, -20.25, 21.75)",
    )?;
    // Plex keeps its full-text tables in step with the items.
    exec(
        &lib,
        "INSERT INTO fts4_metadata_titles(fts4_metadata_titles) VALUES('rebuild')",
    )?;
    exec(
        &lib,
        "INSERT INTO fts4_tag_titles(fts4_tag_titles) VALUES('rebuild')",
    )?;
    lib.close().map_err(|e| e.to_string())?;

    let blobs = open(&dir.join(BLOBS))?;
    exec(&blobs, "PRAGMA journal_mode=WAL")?;
    apply_schema(&blobs, blobs_statements())?;
    exec(&blobs, "BEGIN")?;
    insert_many(
        &blobs,
        "INSERT INTO blobs (blob, linked_type, linked_id, blob_type) VALUES (?, 'metadata_item', ?, 1)",
        (1..=items.min(500)).map(|i| {
            let blob = if i % 4 != 0 {
                (0..256).map(|k| ((i + k) % 256) as u8).collect()
            } else {
                Vec::new()
            };
            vec![Value::Blob(blob), Value::Integer(i)]
        }),
    )?;
    exec(
        &blobs,
        "INSERT INTO blobs (blob, linked_type, linked_id) VALUES (NULL, 'none', NULL)",
    )?;
    generator_tables::fill_blobs(&blobs)?;
    exec(&blobs, "COMMIT")?;
    blobs.close().map_err(|e| e.to_string())?;
    Ok(json!({ "items": items }).to_string())
}

fn bad(db: &Path) -> Result<String> {
    let conn = open(db)?;
    exec(
        &conn,
        "UPDATE metadata_items SET year = 'nineteen-ninety' WHERE id = 3",
    )?;
    Ok(json!({ "rowid": 3 }).to_string())
}

fn hold(db: &Path, ready: &Path, go: &Path) -> Result<String> {
    let conn = open(db)?;
    exec(&conn, "BEGIN IMMEDIATE")?;
    exec(
        &conn,
        "UPDATE metadata_items SET title = title WHERE id = 1",
    )?;
    std::fs::write(ready, b"").map_err(|e| format!("cannot create {}: {e}", ready.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    exec(&conn, "ROLLBACK")?;
    Ok(String::new())
}

/// A value with its class: `["integer", 5]`, `["real", "<64 bits in hex>"]`,
/// `["text", "…"]`, `["blob", "<hex>"]`, `["null", null]`.
fn typed(v: &Value) -> Json {
    match v {
        Value::Null => json!(["null", null]),
        Value::Integer(i) => json!(["integer", i]),
        Value::Real(r) => json!(["real", format!("{:016x}", r.to_bits())]),
        Value::Text(t) => json!(["text", t]),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            json!(["blob", hex])
        }
    }
}

fn query(conn: &Connection, sql: &str) -> Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    stmt.all_rows().map_err(|e| e.to_string())
}

fn typed_rows(conn: &Connection, sql: &str) -> Result<Json> {
    Ok(Json::Array(
        query(conn, sql)?
            .iter()
            .map(|r| Json::Array(r.iter().map(typed).collect()))
            .collect(),
    ))
}

/// The first value of the first row.
fn scalar(conn: &Connection, sql: &str) -> Result<Json> {
    let rows = query(conn, sql)?;
    let v = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| format!("no row from {sql}"))?;
    Ok(plain(v))
}

/// A value as JSON, without its class.
fn plain(v: &Value) -> Json {
    match v {
        Value::Integer(i) => json!(i),
        Value::Text(t) => json!(t),
        other => typed(other),
    }
}

fn rows(db: &Path) -> Result<String> {
    let conn = open(db)?;
    let mut out = serde_json::Map::new();
    out.insert(
        "metadata_items".into(),
        typed_rows(
            &conn,
            "SELECT id, guid, title, title_sort, rating, year, duration, user_fields FROM metadata_items \
             WHERE id IN (-5, 1, 2, 3, 4, 5, 6) ORDER BY id",
        )?,
    );
    let count = query(
        &conn,
        "SELECT count(*), min(id), max(id) FROM metadata_items",
    )?;
    out.insert(
        "count".into(),
        Json::Array(
            count
                .first()
                .map_or(Vec::new(), |r| r.iter().map(plain).collect()),
        ),
    );
    out.insert(
        "tags".into(),
        typed_rows(&conn, "SELECT id, tag FROM tags ORDER BY id")?,
    );
    let mut seq: Vec<Vec<Json>> = query(
        &conn,
        "SELECT name, seq FROM sqlite_sequence WHERE name IN ('tags', 'metadata_items')",
    )?
    .iter()
    .map(|r| r.iter().map(plain).collect())
    .collect();
    seq.sort_by_key(|r| r.first().map(|n| n.to_string()).unwrap_or_default());
    out.insert(
        "sequence".into(),
        Json::Array(seq.into_iter().map(Json::Array).collect()),
    );
    out.insert("user_version".into(), scalar(&conn, "PRAGMA user_version")?);
    out.insert(
        "fts".into(),
        scalar(
            &conn,
            "SELECT count(*) FROM fts4_metadata_titles WHERE fts4_metadata_titles MATCH 'plain'",
        )?,
    );
    out.insert(
        "notes".into(),
        typed_rows(
            &conn,
            "SELECT docid, body, author FROM notes WHERE notes MATCH 'note' ORDER BY docid",
        )?,
    );
    out.insert(
        "locations".into(),
        typed_rows(&conn, "SELECT * FROM locations")?,
    );
    let blobs_db = db.parent().unwrap_or(Path::new(".")).join(BLOBS);
    let b = open(&blobs_db)?;
    out.insert(
        "blobs".into(),
        typed_rows(
            &b,
            "SELECT id, blob FROM blobs WHERE id IN (1, 4, 5) ORDER BY id",
        )?,
    );
    Ok(Json::Object(out).to_string())
}

fn insert(db: &Path) -> Result<String> {
    let conn = open(db)?;
    exec(
        &conn,
        "INSERT INTO metadata_items (library_section_id, metadata_type, guid, title) VALUES (1, 1, 'new', 'New movie')",
    )?;
    let id = conn.last_insert_rowid();
    exec(&conn, "INSERT INTO tags (tag, tag_type) VALUES ('new', 1)")?;
    let tag = conn.last_insert_rowid();
    // An explicit id above the others moves the sequence (the rowid
    // trigger is on again after the import's COPY).
    exec(
        &conn,
        "INSERT INTO tags (id, tag, tag_type) VALUES (5000, 'explicit', 1)",
    )?;
    exec(
        &conn,
        "INSERT INTO tags (tag, tag_type) VALUES ('after', 1)",
    )?;
    let after = conn.last_insert_rowid();
    Ok(json!({ "id": id, "tag": tag, "after_explicit": after }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_need_every_bit_and_typed_keeps_them() {
        assert_eq!(
            typed(&Value::Real(-0.0)),
            json!(["real", "8000000000000000"])
        );
        assert_ne!(typed(&Value::Real(0.1 + 0.2)), typed(&Value::Real(0.3)));
        assert_eq!(typed(&Value::Blob(vec![0, 255])), json!(["blob", "00ff"]));
    }
}
