"""Writes at PostgreSQL's scale, through Python's sqlite3 module.

    writes.py DB load N           one transaction of N AUTOINCREMENT inserts;
                                  prints {"rows", "seconds"}
    writes.py DB hold READY GO    BEGIN, insert a row, create READY, wait
                                  (at most 60 s) for GO, then COMMIT
    writes.py DB join READY GO    wait for READY, then BEGIN, insert a row,
                                  COMMIT, create GO; prints the seconds the
                                  transaction took and its rowid

    writes.py DB atomicity        in one transaction, writes that fail
                                  (UNIQUE, NOT NULL, a type error, CHECK)
                                  between writes that succeed; prints each
                                  statement's outcome and the rows committed
    writes.py DB plex N           one transaction of N Plex-like writes
                                  (an INSERT of bound values, an UPDATE
                                  and a DELETE by id) into `media_parts`
    writes.py DB abort READY GO   commit a write into `guarded`, create READY,
                                  wait for GO (another process changes the
                                  table meanwhile), then in a transaction a
                                  write and one the change makes fail;
                                  prints what each did and what is kept
    writes.py DB replace          outside a transaction, REPLACEs that hit
                                  two unique keys (a DELETE and an INSERT in
                                  one transaction of their own), one of
                                  which fails; prints outcomes and rows

The table is `loaded (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, guid
TEXT)`, created by `load` (or by the caller) in the library schema.
"""
import json
import os
import sqlite3
import sys
import time


def wait_for(path, seconds):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


db, mode = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None)
if mode == "load":
    n = int(sys.argv[3])
    conn.execute("CREATE TABLE IF NOT EXISTS loaded (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, guid TEXT)")
    rows = [("guid-%d" % i,) for i in range(n)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    cur = conn.executemany("INSERT INTO loaded (guid) VALUES (?)", rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": cur.rowcount, "seconds": seconds}))
elif mode == "hold":
    ready, go = sys.argv[3], sys.argv[4]
    conn.execute("BEGIN")
    cur = conn.execute("INSERT INTO loaded (guid) VALUES ('held')")
    rowid = cur.lastrowid
    open(ready, "w").close()
    released = wait_for(go, 60)
    conn.execute("COMMIT")
    print(json.dumps({"released_by_other": released, "rowid": rowid}))
elif mode == "join":
    ready, go = sys.argv[3], sys.argv[4]
    if not wait_for(ready, 60):
        sys.exit("the holder never became ready")
    start = time.perf_counter()
    conn.execute("BEGIN")
    cur = conn.execute("INSERT INTO loaded (guid) VALUES ('joined')")
    rowid = cur.lastrowid
    conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    open(go, "w").close()
    print(json.dumps({"seconds": seconds, "rowid": rowid}))
elif mode == "atomicity":
    conn.execute("CREATE TABLE fast (id INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT NOT NULL UNIQUE, n INTEGER NOT NULL DEFAULT 0, note TEXT)")
    conn.execute("CREATE TABLE checked (id INTEGER PRIMARY KEY, n INTEGER CHECK (n >= 0))")
    steps = []

    def step(name, sql, args=()):
        try:
            cur = conn.execute(sql, args)
            steps.append({"step": name, "ok": True, "rowid": cur.lastrowid, "changes": conn.total_changes,
                          "rowcount": cur.rowcount, "in_transaction": conn.in_transaction})
        except sqlite3.Error as e:
            steps.append({"step": name, "ok": False, "code": getattr(e, "sqlite_errorcode", None),
                          "message": str(e), "in_transaction": conn.in_transaction})

    conn.execute("BEGIN")
    step("first", "INSERT INTO fast (guid, note) VALUES (?, ?)", ("g1", "one"))
    step("duplicate", "INSERT INTO fast (guid, note) VALUES (?, ?)", ("g1", "again"))
    step("null", "INSERT INTO fast (guid, note) VALUES (?, ?)", (None, "no guid"))
    step("type", "INSERT INTO fast (guid, n) VALUES (?, ?)", ("gt", "not a number"))
    step("second", "INSERT INTO fast (guid, n) VALUES (?, ?)", ("g2", 7))
    step("update_null", "UPDATE fast SET n = ? WHERE guid = ?", (None, "g1"))
    step("update_unique", "UPDATE fast SET guid = ? WHERE guid = ?", ("g1", "g2"))
    step("update", "UPDATE fast SET n = ?, note = ? WHERE guid = ?", (5, "five", "g1"))
    step("check", "INSERT INTO checked (n) VALUES (?)", (-1,))
    step("checked", "INSERT INTO checked (n) VALUES (?)", (3,))
    step("ignored", "INSERT OR IGNORE INTO fast (guid) VALUES (?)", ("g2",))
    step("third", "INSERT INTO fast (guid) VALUES (?)", ("g3",))
    step("delete", "DELETE FROM fast WHERE guid = ?", ("g3",))
    step("delete_none", "DELETE FROM fast WHERE guid = ?", ("nothing",))
    conn.execute("COMMIT")
    rows = conn.execute("SELECT id, guid, n, note FROM fast ORDER BY id").fetchall()
    checked = conn.execute("SELECT n FROM checked").fetchall()
    print(json.dumps({"steps": steps, "rows": rows, "checked": checked}))
elif mode == "plex":
    n = int(sys.argv[3])
    conn.execute("CREATE TABLE media_parts (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, media_item_id integer, "
                 "directory_id integer, hash varchar(255), file varchar(255), size integer(8), duration integer, "
                 "created_at datetime, updated_at datetime)")
    conn.execute("CREATE INDEX index_media_parts_on_hash ON media_parts (hash)")
    conn.execute("BEGIN")
    last = 0
    for i in range(n):
        cur = conn.execute("INSERT INTO media_parts (media_item_id, directory_id, hash, file, size, duration, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (i, 1, "h%d" % i, "/m/%d.mkv" % i, 1000 + i, 60000, 1796677200, 1796677200))
        last = cur.lastrowid
        conn.execute("UPDATE media_parts SET size = ?, updated_at = ? WHERE id = ?", (2000 + i, 1796680800, last))
        if i % 2:
            conn.execute("DELETE FROM media_parts WHERE id = ?", (last,))
    conn.execute("COMMIT")
    count, total = conn.execute("SELECT count(*), sum(size) FROM media_parts").fetchone()
    print(json.dumps({"last_rowid": last, "count": count, "total": total}))
elif mode == "abort":
    ready, go = sys.argv[3], sys.argv[4]
    conn.execute("CREATE TABLE guarded (id INTEGER PRIMARY KEY, n INTEGER)")
    insert = "INSERT INTO guarded (n) VALUES (?)"
    conn.execute("BEGIN")
    conn.execute(insert, (1,))
    conn.execute("COMMIT")
    open(ready, "w").close()
    if not wait_for(go, 60):
        sys.exit("GO never came")
    out = {}
    conn.execute("BEGIN")
    conn.execute(insert, (2,))
    try:
        conn.execute(insert, (-1,))
        out["failed"] = False
    except sqlite3.Error as e:
        out.update(failed=True, code=getattr(e, "sqlite_errorcode", None), message=str(e))
    out["in_transaction"] = conn.in_transaction
    try:
        conn.execute("COMMIT")
        out["commit"] = "ok"
    except sqlite3.Error as e:
        out["commit"] = str(e)
        out["commit_code"] = getattr(e, "sqlite_errorcode", None)
    out["kept"] = [r[0] for r in conn.execute("SELECT n FROM guarded ORDER BY id")]
    conn.execute(insert, (3,))
    out["after"] = [r[0] for r in conn.execute("SELECT n FROM guarded ORDER BY id")]
    print(json.dumps(out))
elif mode == "replace":
    conn.execute("CREATE TABLE keyed (id INTEGER PRIMARY KEY, a TEXT UNIQUE, b TEXT UNIQUE, c TEXT NOT NULL)")
    conn.execute("INSERT INTO keyed (a, b, c) VALUES ('a1', 'b1', 'x'), ('a2', 'b2', 'y')")
    out = {}
    cur = conn.execute("REPLACE INTO keyed (a, b, c) VALUES (?, ?, ?)", ("a1", "b2", "z"))
    out["replaced"] = {"rowid": cur.lastrowid, "rowcount": cur.rowcount}
    try:
        conn.execute("REPLACE INTO keyed (a, b, c) VALUES (?, ?, ?)", ("a1", "b3", None))
        out["failed"] = False
    except sqlite3.Error as e:
        out.update(failed=True, code=getattr(e, "sqlite_errorcode", None))
    out["in_transaction"] = conn.in_transaction
    out["rows"] = conn.execute("SELECT id, a, b, c FROM keyed ORDER BY id").fetchall()
    print(json.dumps(out))
else:
    sys.exit("unknown mode " + mode)
