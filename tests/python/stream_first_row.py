"""Read one row of a large result, then ask PostgreSQL (psql) whether the
query is still running: it is when rows are streamed, not loaded whole.
Only the shim's sessions reading `table` count (other tests run beside
this one: a bare name would match their `bigint`).
Then read the rest and check every row."""
import json
import os
import sqlite3
import subprocess
import sys

path, table, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(path)
cur = conn.execute(f"SELECT id, guid FROM {table} ORDER BY id")
first = cur.fetchone()
state = subprocess.run(
    ["psql", "-X", "-A", "-t", "-h", os.environ["PLEX_PG_HOST"], "-p", os.environ["PLEX_PG_PORT"],
     "-U", os.environ["PLEX_PG_USER"], "-d", os.environ["PLEX_PG_DATABASE"], "-c",
     f"SELECT state FROM pg_stat_activity WHERE application_name = 'plex-pg' AND query ~* '\\mFROM \"?{table}\\M' AND pid <> pg_backend_pid()"],
    capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
).stdout.split()
count, bad = 1, 0 if first == (1, "guid-1") else 1
for row in cur:
    count += 1
    if row != (count, f"guid-{count}"):
        bad += 1
print(json.dumps({"first": list(first), "state_after_first_row": state, "rows": count, "bad": bad}))
