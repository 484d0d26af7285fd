"""A small, realistic Plex library made with the real SQLite, for the import
tests; and the checks run on it through the shim afterwards.

    library.py make DIR SCHEMA ITEMS   Plex's schema (the fixture SCHEMA, one
                                       statement a line) in DIR's two library
                                       files, WAL mode; ITEMS movies with
                                       tricky values; prints {"items": N}
    library.py bad DB                  a text in an integer column (rowid
                                       printed): a value PostgreSQL refuses
    library.py hold DB READY GO        BEGIN IMMEDIATE, a write, create READY,
                                       wait (at most 60 s) for GO, ROLLBACK
    library.py rows DB                 the tricky rows, each value with its
                                       class, as JSON (run on SQLite and
                                       through the shim: they must agree)
    library.py insert DB               a new movie; prints its id as JSON
"""
import json
import os
import sqlite3
import sys
import time

LIB = "com.plexapp.plugins.library.db"
BLOBS = "com.plexapp.plugins.library.blobs.db"

# Values SQLite keeps exactly that a careless copy would not.
TITLES = ["日本語のタイトル 🎬", "", None, "Ünïcödé \t tab\nnewline \\ back", "plain", "'quoted' \"double\""]
REALS = [0.1 + 0.2, 1.0 / 3.0, 5e-324, 1.7976931348623157e308, -0.0, 123456789.12345678]


def blobs_statement(s):
    return '"schema_migrations"' in s or 'EXISTS "blobs"' in s or 'ON "blobs"' in s


def apply_schema(conn, statements):
    for s in statements:
        try:
            conn.execute(s)
        except sqlite3.OperationalError as e:
            msg = str(e)
            # Plex's SQLite has spellfix1 and the collating tokenizer.
            if s.startswith("CREATE VIRTUAL TABLE") and (
                msg.startswith("no such module") or msg.startswith("unknown tokenizer")
            ):
                continue
            raise


def make(directory, schema_path, items):
    os.makedirs(directory, exist_ok=True)
    statements = [l.strip() for l in open(schema_path, encoding="utf-8") if l.strip()]
    lib = sqlite3.connect(os.path.join(directory, LIB), isolation_level=None)
    lib.execute("PRAGMA journal_mode=WAL")
    apply_schema(lib, statements)
    lib.execute("PRAGMA user_version = 42")
    lib.execute("BEGIN")
    lib.execute(
        "INSERT INTO library_sections (id, name, name_sort, section_type, language, agent, scanner) "
        "VALUES (1, 'Movies', 'movies', 1, 'en', 'tv.plex.agents.movie', 'Plex Movie')"
    )
    lib.execute(
        "INSERT INTO section_locations (id, library_section_id, root_path) VALUES (1, 1, '/media/movies')"
    )
    rows = []
    for i in range(1, items + 1):
        t = TITLES[i % len(TITLES)]
        rows.append(
            (
                i,
                1,
                1,
                "plex://movie/%x" % i,
                None if t is None else "%s %d" % (t, i),
                None if t is None else ("%s" % t).lower(),
                REALS[i % len(REALS)],
                1990 + i % 30,
                1_600_000_000 + i,
                i * 1000,
            )
        )
    lib.executemany(
        "INSERT INTO metadata_items (id, library_section_id, metadata_type, guid, title, title_sort, "
        "rating, year, added_at, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows],
    )
    # The edges: a negative id, the largest integer, empty strings, NULLs.
    lib.execute(
        "INSERT INTO metadata_items (id, library_section_id, metadata_type, guid, title, title_sort, "
        "rating, year, duration, user_fields) VALUES (-5, 1, 1, 'negative', '', '', 2.5, NULL, 9223372036854775807, '')"
    )
    lib.executemany(
        "INSERT INTO media_items (metadata_item_id, library_section_id, width, height, size, "
        "display_aspect_ratio, interlaced, container) VALUES (?, 1, 1920, 1080, ?, ?, ?, 'mkv')",
        [(i, i * 1_000_003, 1.7777777777777777, i % 2) for i in range(1, items + 1)],
    )
    lib.execute("INSERT INTO tags (tag, tag_type) VALUES ('Drama', 1), ('Comédie', 1), ('', 1)")
    lib.executemany(
        "INSERT INTO taggings (metadata_item_id, tag_id, \"index\") VALUES (?, ?, ?)",
        [(i, 1 + i % 3, i % 5) for i in range(1, items + 1)],
    )
    # An AUTOINCREMENT table whose last rows were deleted: sqlite_sequence
    # is above its largest id, and the next id must come after it.
    lib.execute("INSERT INTO tags (id, tag, tag_type) VALUES (100, 'deleted later', 1)")
    lib.execute("DELETE FROM tags WHERE id = 100")
    # Plex's own boolean default: the text 't'.
    lib.execute("INSERT INTO section_locations (library_section_id, root_path) VALUES (1, '/media/more')")
    lib.execute("COMMIT")
    # A full-text table with its own content, and an rtree row (values a
    # 4-byte float holds exactly).
    lib.execute("CREATE VIRTUAL TABLE notes USING fts4(body, author)")
    lib.executemany(
        "INSERT INTO notes (docid, body, author) VALUES (?, ?, ?)",
        [(7, "première note ünïcode", "ann"), (9, "second note", None), (12, "", "bob")],
    )
    lib.execute("INSERT INTO locations VALUES (3, 10.5, 11.5, -20.25, 21.75)")
    # Plex keeps its full-text tables in step with the items.
    lib.execute("INSERT INTO fts4_metadata_titles(fts4_metadata_titles) VALUES('rebuild')")
    lib.execute("INSERT INTO fts4_tag_titles(fts4_tag_titles) VALUES('rebuild')")
    lib.close()
    blobs = sqlite3.connect(os.path.join(directory, BLOBS), isolation_level=None)
    blobs.execute("PRAGMA journal_mode=WAL")
    apply_schema(blobs, [s for s in statements if blobs_statement(s)])
    blobs.execute("BEGIN")
    blobs.executemany(
        "INSERT INTO blobs (blob, linked_type, linked_id, blob_type) VALUES (?, 'metadata_item', ?, 1)",
        [(bytes((i + k) % 256 for k in range(256)) if i % 4 else b"", i) for i in range(1, min(items, 500) + 1)],
    )
    blobs.execute("INSERT INTO blobs (blob, linked_type, linked_id) VALUES (NULL, 'none', NULL)")
    blobs.execute("COMMIT")
    blobs.close()
    print(json.dumps({"items": items}))


def typed(v):
    if v is None:
        return ["null", None]
    if isinstance(v, bool):
        return ["integer", int(v)]
    if isinstance(v, int):
        return ["integer", v]
    if isinstance(v, float):
        return ["real", v.hex()]
    if isinstance(v, bytes):
        return ["blob", v.hex()]
    return ["text", v]


def rows(db):
    conn = sqlite3.connect(db, isolation_level=None)
    out = {}
    q = "SELECT id, guid, title, title_sort, rating, year, duration, user_fields FROM metadata_items WHERE id IN (-5, 1, 2, 3, 4, 5, 6) ORDER BY id"
    out["metadata_items"] = [[typed(v) for v in r] for r in conn.execute(q)]
    out["count"] = conn.execute("SELECT count(*), min(id), max(id) FROM metadata_items").fetchone()
    out["tags"] = [[typed(v) for v in r] for r in conn.execute("SELECT id, tag FROM tags ORDER BY id")]
    out["sequence"] = sorted(conn.execute("SELECT name, seq FROM sqlite_sequence WHERE name IN ('tags', 'metadata_items')"))
    out["user_version"] = conn.execute("PRAGMA user_version").fetchone()[0]
    out["fts"] = conn.execute(
        "SELECT count(*) FROM fts4_metadata_titles WHERE fts4_metadata_titles MATCH 'plain'"
    ).fetchone()[0]
    out["notes"] = [[typed(v) for v in r] for r in conn.execute("SELECT docid, body, author FROM notes WHERE notes MATCH 'note' ORDER BY docid")]
    out["locations"] = [[typed(v) for v in r] for r in conn.execute("SELECT * FROM locations")]
    blobs_db = os.path.join(os.path.dirname(db), BLOBS)
    b = sqlite3.connect(blobs_db, isolation_level=None)
    out["blobs"] = [[typed(v) for v in r] for r in b.execute("SELECT id, blob FROM blobs WHERE id IN (1, 4, 5) ORDER BY id")]
    print(json.dumps(out, sort_keys=True))


def insert(db):
    conn = sqlite3.connect(db, isolation_level=None)
    cur = conn.execute(
        "INSERT INTO metadata_items (library_section_id, metadata_type, guid, title) VALUES (1, 1, 'new', 'New movie')"
    )
    tag = conn.execute("INSERT INTO tags (tag, tag_type) VALUES ('new', 1)").lastrowid
    # An explicit id above the others moves the sequence (the rowid
    # trigger is on again after the import's COPY).
    conn.execute("INSERT INTO tags (id, tag, tag_type) VALUES (5000, 'explicit', 1)")
    after = conn.execute("INSERT INTO tags (tag, tag_type) VALUES ('after', 1)").lastrowid
    print(json.dumps({"id": cur.lastrowid, "tag": tag, "after_explicit": after}))


def main():
    mode = sys.argv[1]
    if mode == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "bad":
        conn = sqlite3.connect(sys.argv[2], isolation_level=None)
        conn.execute("UPDATE metadata_items SET year = 'nineteen-ninety' WHERE id = 3")
        print(json.dumps({"rowid": 3}))
    elif mode == "hold":
        conn = sqlite3.connect(sys.argv[2], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE metadata_items SET title = title WHERE id = 1")
        open(sys.argv[3], "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[4]) and time.monotonic() < deadline:
            time.sleep(0.01)
        conn.execute("ROLLBACK")
    elif mode == "rows":
        rows(sys.argv[2])
    elif mode == "insert":
        insert(sys.argv[2])
    else:
        sys.exit("unknown mode " + mode)


main()
