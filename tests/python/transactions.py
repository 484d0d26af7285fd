"""Transactions as SQLite has them: rollback, savepoints, a failing
statement that leaves the transaction usable, autocommit state."""
import json
import sqlite3
import sys

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
log = {}
conn.execute("BEGIN")
log["in_tx_after_begin"] = conn.in_transaction
conn.execute("INSERT INTO items (id, title) VALUES (20, 'rolled back')")
conn.execute("ROLLBACK")
log["in_tx_after_rollback"] = conn.in_transaction
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO items (id, title) VALUES (21, 'kept')")
conn.execute("SAVEPOINT a")
conn.execute("INSERT INTO items (id, title) VALUES (22, 'undone by rollback to')")
conn.execute("ROLLBACK TO a")
try:
    conn.execute("INSERT INTO items (id, title) VALUES (21, 'duplicate')")
    log["duplicate"] = "accepted"
except sqlite3.IntegrityError as e:
    log["duplicate"] = "IntegrityError: " + str(e)
conn.execute("INSERT INTO items (id, title) VALUES (23, 'after the failure')")
conn.execute("RELEASE a")
conn.execute("COMMIT")
log["in_tx_after_commit"] = conn.in_transaction
try:
    conn.execute("COMMIT")
    log["commit_without_tx"] = "accepted"
except sqlite3.OperationalError as e:
    log["commit_without_tx"] = str(e)
# A savepoint outside a transaction starts one; releasing it commits.
conn.execute("SAVEPOINT outer_sp")
log["in_tx_after_savepoint"] = conn.in_transaction
conn.execute("INSERT INTO items (id, title) VALUES (24, 'by savepoint')")
conn.execute("RELEASE outer_sp")
log["in_tx_after_release"] = conn.in_transaction
log["ids"] = [r[0] for r in conn.execute("SELECT id FROM items WHERE id >= 20 ORDER BY id")]
print(json.dumps(log))
