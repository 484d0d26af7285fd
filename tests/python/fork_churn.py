"""Connection churn at the moment of fork (issue 11's shape): worker
threads open a routed database, run a query and close it, in a loop, while
the main thread forks children that never exec and linger, so the launcher
reads each child's fd table after its fork handler ran. With
`pool.size = 0` every release closes a PostgreSQL connection and every
acquire opens one, so sockets are being created, connected and closed at
the instant of every fork.

Arguments: the library database, how many children, how many threads.
Prints one JSON line: the children forked, the queries the threads ran,
and every error a thread or child saw."""
import json
import os
import sqlite3
import sys
import threading
import time

path, forks, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
LINGER = 1.5

stop = threading.Event()
queries = [0] * threads
errors = []


def churn(i):
    while not stop.is_set():
        try:
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("SELECT count(*) FROM metadata_items").fetchone()
            conn.close()
            queries[i] += 1
        except Exception as e:  # recorded: the test fails on any
            errors.append(f"thread {i}: {e!r}")
            time.sleep(0.01)


workers = [threading.Thread(target=churn, args=(i,)) for i in range(threads)]
for w in workers:
    w.start()
# Let every thread get going before the first fork.
while min(queries) == 0 and not errors:
    time.sleep(0.01)

children = []
started = time.monotonic()
for n in range(forks):
    pid = os.fork()
    if pid == 0:
        # No exec, no database: the child only exists long enough for the
        # launcher to read its fd table after the fork handler ran.
        time.sleep(LINGER)
        os._exit(0)
    children.append(pid)
    # Reap the ones done, so the tree stays at a few dozen processes.
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if done == 0:
            break
    time.sleep(0.005)
stop.set()
for w in workers:
    w.join()
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
print(json.dumps({
    "children": children,
    "queries": sum(queries),
    "seconds": round(time.monotonic() - started, 1),
    "errors": errors[:20],
}))
