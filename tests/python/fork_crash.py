"""The crash of January 2026: fork while streaming; the child uses the
handle it inherited (the parent's connection) for a query of its own.
Prints how far the parent got; with the fork handler off it never gets
all rows (an error, wrong rows, or a hang the test bounds)."""
import json
import os
import sqlite3
import sys

path, expected = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(path)
cur = conn.execute("SELECT id, guid FROM metadata_items WHERE hash IS NULL ORDER BY id")
rows, bad, error = 0, 0, None
try:
    for row in cur:
        rows += 1
        if row != (rows, f"guid-{rows}"):
            bad += 1
        if rows == 100:
            pid = os.fork()
            if pid == 0:
                try:
                    n = conn.execute("SELECT count(*) FROM metadata_items").fetchone()[0]
                    print(json.dumps({"child_count": n}), flush=True)
                except Exception as e:
                    print(json.dumps({"child_error": str(e)}), flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
            print(json.dumps({"forked": pid}), flush=True)
except sqlite3.Error as e:
    error = str(e)
print(json.dumps({"rows": rows, "bad": bad, "error": error, "complete": rows == expected and bad == 0 and error is None}), flush=True)
