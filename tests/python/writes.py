"""Writes at PostgreSQL's scale, through Python's sqlite3 module.

    writes.py DB load N           one transaction of N AUTOINCREMENT inserts;
                                  prints {"rows", "seconds"}
    writes.py DB hold READY GO    BEGIN, insert a row, create READY, wait
                                  (at most 60 s) for GO, then COMMIT
    writes.py DB join READY GO    wait for READY, then BEGIN, insert a row,
                                  COMMIT, create GO; prints the seconds the
                                  transaction took and its rowid

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
else:
    sys.exit("unknown mode " + mode)
