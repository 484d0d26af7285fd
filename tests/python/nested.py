"""Nested statements on one handle, as SQLite allows: while one SELECT is
being read, others are prepared and run on the same handle (with a pool
of a single connection, so nothing may need a second one)."""
import json
import sqlite3
import sys

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
outer = conn.execute("SELECT id FROM items ORDER BY id")
seen = []
for (i,) in outer:
    title = conn.execute(f"SELECT title FROM items WHERE id = ? AND {i} = {i}", (i,)).fetchone()[0]
    conn.execute("UPDATE items SET note = ? WHERE id = ?", (f"seen {i}", i))
    seen.append([i, title])
print(json.dumps({"seen": seen, "notes": conn.execute("SELECT count(*) FROM items WHERE note LIKE 'seen %'").fetchone()[0]}))
