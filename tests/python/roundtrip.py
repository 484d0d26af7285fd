"""Write rows of every SQLite type through the module, read them back,
print what came back with Python's type names."""
import json
import sqlite3
import sys

conn = sqlite3.connect(sys.argv[1])
rows = [
    (1, "Alien", 8.5, b"\x00\xff\x10", None),
    (2, "O'Brien \u2603", -1.25, b"", "x"),
    (3, None, None, None, None),
]
cur = conn.executemany("INSERT INTO items (id, title, rating, data, note) VALUES (?, ?, ?, ?, ?)", rows)
inserted = cur.rowcount
conn.commit()
cur = conn.execute("SELECT id, title, rating, data, note FROM items ORDER BY id")
names = [d[0] for d in cur.description]
out = []
for row in cur.fetchall():
    out.append([[type(v).__name__, v.hex() if isinstance(v, bytes) else v] for v in row])
updated = conn.execute("UPDATE items SET note = 'seen' WHERE id IN (1, 2)").rowcount
conn.commit()
print(json.dumps({"names": names, "rows": out, "inserted": inserted, "updated": updated,
                  "total_changes": conn.total_changes}))
