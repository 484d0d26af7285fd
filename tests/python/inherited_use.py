"""A child that uses the PostgreSQL session it inherited, for the launcher
to catch (run under the launcher with the shim's fork handler off).

    inherited_use.py DB             one phase
    inherited_use.py DB READY GO    a phase; create READY, wait for GO
                                    (the test changes something meanwhile,
                                    e.g. moves the server's host name);
                                    then a phase in a new process (a new
                                    pool: a new connection)

A phase opens the library, runs `SELECT 1`, forks a child that runs it
again on the inherited connection (the January 2026 mistake), waits for
it, and prints {"parent", "child", "one"}.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time


def phase(db):
    conn = sqlite3.connect(db)
    one = conn.execute("SELECT 1").fetchone()[0]
    pid = os.fork()
    if pid == 0:
        try:
            conn.execute("SELECT 1").fetchone()
        except Exception:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    print(json.dumps({"parent": os.getpid(), "child": pid, "one": one}), flush=True)


db = sys.argv[1]
phase(db)
if len(sys.argv) == 4:
    ready, go = sys.argv[2], sys.argv[3]
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("GO never came")
        time.sleep(0.01)
    subprocess.run([sys.executable, __file__, db], check=True)
