"""Open a database and run each SQL argument; print one JSON object with
what happened: the rows of the last statement, or the error (class and
message) of the first that failed. Used to check error paths."""
import json
import sqlite3
import sys

path, *statements = sys.argv[1:]
result = {"opened": False}
try:
    conn = sqlite3.connect(path, isolation_level=None)
    result["opened"] = True
    rows = None
    for i, sql in enumerate(statements):
        try:
            rows = conn.execute(sql).fetchall()
        except sqlite3.Error as e:
            result.setdefault("errors", []).append({"index": i, "class": type(e).__name__, "message": str(e)})
    result["rows"] = rows
except sqlite3.Error as e:
    result["error"] = {"class": type(e).__name__, "message": str(e)}
print(json.dumps(result))
