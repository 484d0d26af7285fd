"""A worker thread with Plex's small stack (544 KiB) prepares and runs a
deeply nested statement through the shim (parsing and translating it
recurses deeply)."""
import json
import sqlite3
import sys
import threading

path, depth = sys.argv[1], int(sys.argv[2])
sql = "SELECT " + "(" * depth + "1" + "".join(" + 1)" for _ in range(depth)) + ", " + \
      "iif(1, " * depth + "'deep'" + ", 'no')" * depth
result = {}


def work():
    try:
        conn = sqlite3.connect(path)
        result["row"] = list(conn.execute(sql).fetchone())
    except Exception as e:
        result["error"] = repr(e)


threading.stack_size(544 * 1024)
t = threading.Thread(target=work)
t.start()
t.join()
print(json.dumps(result))
