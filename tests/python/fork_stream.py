"""The incident's shape: stream the 40,000-row hash query and fork in the
middle of it, many times. Each child records the sockets it holds right
after the fork, then opens its own connection and queries. The parent
must get every row, exactly once, in order."""
import json
import os
import sqlite3
import sys

path, every = sys.argv[1], int(sys.argv[2])


def socket_inodes():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.append(int(link[8:-1]))
    return found


conn = sqlite3.connect(path)
cur = conn.execute("SELECT id, guid FROM metadata_items WHERE hash IS NULL ORDER BY id")
rows, bad, children = 0, 0, []
for row in cur:
    rows += 1
    if row != (rows, f"guid-{rows}"):
        bad += 1
    if rows % every == 0:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            held = socket_inodes()
            try:
                own = sqlite3.connect(path)
                count = own.execute("SELECT count(*) FROM metadata_items").fetchone()[0]
                own.close()
            except Exception as e:  # reported, never raised past _exit
                count = repr(e)
            os.write(w, json.dumps({"pid": os.getpid(), "held": held, "count": count}).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            report = json.loads(f.read())
        _, status = os.waitpid(pid, 0)
        report["exit"] = os.waitstatus_to_exitcode(status)
        children.append(report)
print(json.dumps({"pid": os.getpid(), "rows": rows, "bad": bad, "children": children}))
