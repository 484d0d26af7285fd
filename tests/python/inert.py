"""Use SQLite without opening a library database: the preloaded shim must
stay inert (no thread, no socket, nothing logged)."""
import json
import os
import sqlite3

conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x)")
conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
total = conn.execute("SELECT sum(x) FROM t").fetchone()[0]
sockets = []
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
            sockets.append(fd)
    except OSError:
        pass  # the directory's own fd, closed by now
threads = len(os.listdir("/proc/self/task"))
maps = open("/proc/self/maps").read()
print(json.dumps({"total": total, "sockets": len(sockets), "threads": threads,
                  "shim_loaded": "libplex_pg_shim" in maps}))
