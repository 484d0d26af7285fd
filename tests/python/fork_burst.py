"""A burst of forks while a result streams: more children, faster, than
the launcher's socket queues datagrams (10 by default)."""
import json
import os
import sqlite3
import sys

path, n = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(path)
cur = conn.execute("SELECT id FROM metadata_items ORDER BY id")
cur.fetchone()
print("ready", flush=True)
sys.stdin.readline()  # the test pauses its report sink, then says go
pids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
print(json.dumps({"children": pids, "rest": len(cur.fetchall())}))
