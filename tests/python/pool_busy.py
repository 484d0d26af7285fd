"""Two handles, a pool of one connection: while the first streams a
result (holding the connection), the second waits pool.acquire_timeout
and gets SQLITE_BUSY, not a hang; once the first is done, it works."""
import json
import sqlite3
import sys
import time

path = sys.argv[1]
a = sqlite3.connect(path)
b = sqlite3.connect(path)
cur = a.execute("SELECT id FROM big ORDER BY id")
cur.fetchone()
started = time.time()
try:
    b.execute("SELECT 1").fetchall()
    busy = None
except sqlite3.OperationalError as e:
    busy = str(e)
waited = time.time() - started
rest = len(cur.fetchall())
after = b.execute("SELECT count(*) FROM big").fetchone()[0]
print(json.dumps({"busy": busy, "waited": waited, "rest": rest, "after": after}))
