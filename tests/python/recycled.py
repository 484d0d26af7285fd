"""Statement handles recycled between a routed database and a plain one.

Twenty routed statements are left open, each read once, then all finalized
(more than the shim keeps as spares, so the real statements behind the
last ones are freed); plain SQLite statements prepared next tend to get the
freed addresses. Each must still be answered by its own database. Prints
the number of rounds checked."""
import gc
import sqlite3
import sys

library, other, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
routed = sqlite3.connect(library, cached_statements=0)
plain = sqlite3.connect(other, cached_statements=0)
plain.execute("CREATE TABLE local (x INTEGER)")
plain.executemany("INSERT INTO local VALUES (?)", [(i,) for i in range(7)])
plain.commit()
routed.executemany("INSERT INTO items (id, title) VALUES (?, ?)", [(i, f"t{i}") for i in range(1, 4)])
routed.commit()
expected = routed.execute("SELECT count(*) FROM items").fetchone()[0]
assert expected == 3, expected
for r in range(rounds):
    cursors = [routed.execute("SELECT id FROM items ORDER BY id") for _ in range(20)]
    for c in cursors:
        assert c.fetchone() == (1,), r
    for c in cursors:
        c.close()
    del cursors
    gc.collect()
    for _ in range(5):
        got = plain.execute("SELECT count(*), sqlite_version() FROM local").fetchone()
        assert got[0] == 7, f"round {r}: a plain statement was answered by PostgreSQL: {got}"
        assert routed.execute("SELECT count(*) FROM items").fetchone()[0] == expected, r
print(rounds)
