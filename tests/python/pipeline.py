"""Writes sent without waiting for their answers (the shim's pipelining),
through the SQLite C API called directly (ctypes, global scope: the
preloaded shim's exports come first; without the shim, real SQLite's), so
nothing asks for changes() or last_insert_rowid() unless the script does.
Prints one JSON object.

    pipeline.py DB exact          in one transaction, inserts, an update
                                  and a delete, then changes(),
                                  total_changes() and last_insert_rowid(),
                                  a SELECT, a UNIQUE conflict and COMMIT
    pipeline.py DB wait           a write to a row another handle holds
                                  locked (released after 2 s by a thread):
                                  how long its step took, and how long
                                  changes() then took
    pipeline.py DB error READY GO a committed row, create READY, wait for GO
                                  (another process adds a CHECK), then in a
                                  transaction a write the CHECK refuses and
                                  a SELECT after it
    pipeline.py DB fork           writes in flight in a transaction, fork:
                                  the child writes on its own, the parent
                                  goes on and commits
"""
import ctypes as C
import json
import os
import sys
import threading
import time

C.CDLL("libsqlite3.so.0", mode=C.RTLD_GLOBAL)
lib = C.CDLL(None)
P = C.c_void_p
for name, res, args in [
    ("sqlite3_open_v2", C.c_int, [C.c_char_p, C.POINTER(P), C.c_int, C.c_char_p]),
    ("sqlite3_close", C.c_int, [P]),
    ("sqlite3_prepare_v2", C.c_int, [P, C.c_char_p, C.c_int, C.POINTER(P), C.POINTER(C.c_char_p)]),
    ("sqlite3_step", C.c_int, [P]), ("sqlite3_reset", C.c_int, [P]), ("sqlite3_finalize", C.c_int, [P]),
    ("sqlite3_errmsg", C.c_char_p, [P]), ("sqlite3_extended_errcode", C.c_int, [P]),
    ("sqlite3_column_count", C.c_int, [P]), ("sqlite3_column_text", C.c_char_p, [P, C.c_int]),
    ("sqlite3_bind_int64", C.c_int, [P, C.c_int, C.c_int64]),
    ("sqlite3_bind_text", C.c_int, [P, C.c_int, C.c_char_p, C.c_int, P]),
    ("sqlite3_get_autocommit", C.c_int, [P]), ("sqlite3_changes", C.c_int, [P]),
    ("sqlite3_total_changes", C.c_int, [P]), ("sqlite3_last_insert_rowid", C.c_int64, [P]),
]:
    f = getattr(lib, name)
    f.restype, f.argtypes = res, args

SQLITE_TRANSIENT = P(-1)


def open_db(path):
    db = P()
    rc = lib.sqlite3_open_v2(path.encode(), C.byref(db), 6, None)
    assert rc == 0, rc
    return db


class Db:
    def __init__(self, path):
        self.db = open_db(path)
        self.stmts = {}

    def stmt(self, sql):
        st = self.stmts.get(sql)
        if st is None:
            st = P()
            rc = lib.sqlite3_prepare_v2(self.db, sql.encode(), -1, C.byref(st), None)
            assert rc == 0, (sql, rc, lib.sqlite3_errmsg(self.db))
            self.stmts[sql] = st
        return st

    def run(self, sql, *args):
        """Step once per row: (rc, rows, extended code, message)."""
        st = self.stmt(sql)
        lib.sqlite3_reset(st)
        for i, a in enumerate(args, 1):
            if isinstance(a, int):
                lib.sqlite3_bind_int64(st, i, a)
            else:
                lib.sqlite3_bind_text(st, i, a.encode(), -1, SQLITE_TRANSIENT)
        rows = []
        while True:
            rc = lib.sqlite3_step(st)
            if rc != 100:
                break
            rows.append([
                (lambda v: v.decode() if v is not None else None)(lib.sqlite3_column_text(st, i))
                for i in range(lib.sqlite3_column_count(st))
            ])
        code, msg = lib.sqlite3_extended_errcode(self.db), lib.sqlite3_errmsg(self.db).decode()
        lib.sqlite3_reset(st)
        return rc, rows, code, msg

    def ok(self, sql, *args):
        rc, rows, code, msg = self.run(sql, *args)
        assert rc == 101, (sql, rc, code, msg)
        return rows

    def counts(self):
        return [lib.sqlite3_changes(self.db), lib.sqlite3_total_changes(self.db),
                lib.sqlite3_last_insert_rowid(self.db)]

    def autocommit(self):
        return lib.sqlite3_get_autocommit(self.db)


path, mode = sys.argv[1], sys.argv[2]
out = {}
INSERT = "INSERT INTO items (guid, n) VALUES (?, ?)"
UPDATE = "UPDATE items SET n = ? WHERE id = ?"

if mode == "exact":
    d = Db(path)
    d.ok("CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, n INTEGER)")
    d.ok("CREATE TABLE keyed (id INTEGER PRIMARY KEY, k TEXT UNIQUE)")
    d.ok("INSERT INTO keyed (k) VALUES ('a')")
    d.ok("BEGIN")
    for i in range(5):
        d.ok(INSERT, "g%d" % i, i)
    out["after_inserts"] = d.counts()
    d.ok("UPDATE items SET n = ? WHERE id <= ?", 100, 3)
    d.ok("DELETE FROM items WHERE id = ?", 5)
    out["after_update_delete"] = d.counts()
    for i in range(5, 8):
        d.ok(INSERT, "g%d" % i, i)
    out["seen"] = d.ok("SELECT count(*), sum(n), max(id) FROM items")
    rc, _, code, _ = d.run("INSERT INTO keyed (k) VALUES (?)", "a")
    out["conflict"] = [rc, code, d.autocommit()]
    out["after_conflict"] = d.counts()
    d.ok("INSERT INTO keyed (k) VALUES (?)", "b")
    d.ok("UPDATE items SET n = ? WHERE id = ?", 7, 7)
    d.ok("COMMIT")
    out["after_commit"] = d.counts()
    out["autocommit"] = d.autocommit()
    out["items"] = d.ok("SELECT id, guid, n FROM items ORDER BY id")
    out["keyed"] = d.ok("SELECT id, k FROM keyed ORDER BY id")
elif mode == "wait":
    a, b = Db(path), Db(path)
    a.ok("CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, n INTEGER)")
    a.ok(INSERT, "one", 1)
    a.ok(INSERT, "two", 2)
    # b holds row 1.
    b.ok("BEGIN")
    b.ok(UPDATE, 10, 1)
    b.counts()

    def release():
        time.sleep(2)
        b.ok("COMMIT")

    t = threading.Thread(target=release)
    a.ok("BEGIN")
    a.ok(INSERT, "three", 3)
    # The statement prepared on a's connection (another row: no wait).
    a.ok(UPDATE, 20, 2)
    a.counts()
    t.start()
    start = time.monotonic()
    a.ok(UPDATE, 11, 1)
    out["step_seconds"] = time.monotonic() - start
    start = time.monotonic()
    out["counts"] = a.counts()
    out["changes_seconds"] = time.monotonic() - start
    a.ok("COMMIT")
    t.join()
    out["items"] = a.ok("SELECT id, n FROM items ORDER BY id")
elif mode == "error":
    ready, go = sys.argv[3], sys.argv[4]
    d = Db(path)
    d.ok("CREATE TABLE guarded (id INTEGER PRIMARY KEY, n INTEGER)")
    insert = "INSERT INTO guarded (n) VALUES (?)"
    d.ok("BEGIN")
    d.ok(insert, 1)
    d.ok("COMMIT")
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("GO never came")
        time.sleep(0.02)
    select = "SELECT n FROM guarded ORDER BY id"
    d.ok(select)  # prepared: its step, not its prepare, reads the answers
    d.ok("BEGIN")
    out["steps"] = [d.run(insert, 2)[0], d.run(insert, -1)[0], d.run(insert, 4)[0]]
    out["autocommit_before"] = d.autocommit()
    rc, rows, code, msg = d.run(select)
    out["select"] = {"rc": rc, "code": code, "message": msg, "rows": rows}
    out["autocommit"] = d.autocommit()
    rc, _, code, msg = d.run("COMMIT")
    out["commit"] = [rc, msg]
    out["kept"] = d.ok("SELECT n FROM guarded ORDER BY id")
    d.ok(insert, 5)
    out["after"] = d.ok("SELECT n FROM guarded ORDER BY id")
elif mode == "fork":
    d = Db(path)
    d.ok("CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, n INTEGER)")
    d.ok(INSERT, "warm", 0)
    d.ok("BEGIN")
    for i in range(1, 21):
        d.ok(INSERT, "parent", i)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child = {"autocommit": d.autocommit()}
        try:
            d.ok(INSERT, "child", 1000)
            child["rows"] = d.ok("SELECT count(*) FROM items WHERE guid = 'child'")
            child["autocommit_after"] = d.autocommit()
        except AssertionError as e:
            child["error"] = repr(e)
        os.write(w, json.dumps(child).encode())
        os._exit(0)
    os.close(w)
    child = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        child += chunk
    os.waitpid(pid, 0)
    out["child"] = json.loads(child.decode())
    for i in range(21, 31):
        d.ok(INSERT, "parent", i)
    out["counts"] = d.counts()
    out["autocommit_in_tx"] = d.autocommit()
    d.ok("COMMIT")
    out["parent_rows"] = d.ok("SELECT count(*), sum(n) FROM items WHERE guid = 'parent'")
    out["child_rows"] = d.ok("SELECT count(*) FROM items WHERE guid = 'child'")
else:
    sys.exit("unknown mode " + mode)
print(json.dumps(out))
