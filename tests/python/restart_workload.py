"""Insert a row every few milliseconds for a while, in autocommit, and
print each outcome as a JSON line; the test restarts PostgreSQL meanwhile."""
import json
import sqlite3
import sys
import time

path, seconds = sys.argv[1], float(sys.argv[2])
conn = sqlite3.connect(path, isolation_level=None)
end = time.time() + seconds
i = 0
while time.time() < end:
    i += 1
    try:
        conn.execute("INSERT INTO events (id, at) VALUES (?, ?)", (i, time.time()))
        print(json.dumps({"id": i, "ok": True}), flush=True)
    except sqlite3.Error as e:
        print(json.dumps({"id": i, "ok": False, "error": str(e)}), flush=True)
    time.sleep(0.01)
