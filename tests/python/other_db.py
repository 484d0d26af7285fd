"""A database whose name is not routed stays in SQLite."""
import sqlite3
import sys

conn = sqlite3.connect(sys.argv[1])
conn.execute("CREATE TABLE kept_local (x INTEGER)")
conn.execute("INSERT INTO kept_local VALUES (41 + 1)")
conn.commit()
print(conn.execute("SELECT x, typeof(x), sqlite_version() FROM kept_local").fetchone())
