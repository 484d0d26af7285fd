"""Issue 19's fork-heavy shape, through the SQLite API (the shim when it is
preloaded): a 5,000-row table, then ROUNDS rounds of a streamed query with a
fork in the middle whose child exits at once, a fork+exec of /bin/true, and
an update. Prints one JSON line: the seconds the rounds took, and the
children started.

    python3 bench/fork_shape.py DB ROUNDS
"""
import json
import os
import sqlite3
import sys
import time

ROWS = 5000


def main():
    db, rounds = sys.argv[1], int(sys.argv[2])
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE IF NOT EXISTS shape (id INTEGER PRIMARY KEY, title TEXT, n INTEGER)"
    )
    if con.execute("SELECT count(*) FROM shape").fetchone()[0] < ROWS:
        con.execute("DELETE FROM shape")
        con.executemany(
            "INSERT INTO shape (id, title, n) VALUES (?, ?, 0)",
            ((i, "Title %d" % i) for i in range(1, ROWS + 1)),
        )
    con.commit()
    children = 0
    start = time.monotonic()
    for r in range(rounds):
        seen = 0
        for _row in con.execute("SELECT id, title, n FROM shape"):
            seen += 1
            if seen == ROWS // 2:
                # Forked mid-stream: the child inherits the streaming session.
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
                children += 1
        if seen != ROWS:
            raise SystemExit("round %d: %d rows, not %d" % (r, seen, ROWS))
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/true", ["true"])
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit("round %d: /bin/true exited with status %d" % (r, status))
        children += 1
        con.execute("UPDATE shape SET n = n + 1 WHERE id = ?", (r % ROWS + 1,))
        con.commit()
    seconds = time.monotonic() - start
    print(json.dumps({"seconds": seconds, "rounds": rounds, "children": children}))


main()
