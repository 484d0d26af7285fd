"""Run a SQL case file through SQLite's C API, as Plex does, and print what
every statement gave as one JSON object a line.

    python3 run_case.py DATABASE CASE_FILE [CASE_FILE ...]

The C API is called through ctypes from the process's global symbol scope,
so with LD_PRELOAD=libplex_pg_shim.so the calls go to the shim (and, for a
file named com.plexapp.plugins.library.db, to PostgreSQL), and without it to
the system's libsqlite3. Per statement: the error (or null), the columns'
declared types, each value's storage class and value, sqlite3_changes() and
sqlite3_last_insert_rowid().

Case files: statements separated by blank lines (a `.sql` fixture is one
statement a line). Lines starting with `-- ` before a statement are
directives:
  -- params: JSON     a list binds by index, an object by name
  -- unordered        rows are compared as a multiset
  -- error            the statement must fail (on both)
  -- gap: KEYS reason not compared for this statement: rows, columns,
                     decltypes, changes, last_insert_rowid (a documented difference,
                     see docs/sql-support.md)
  -- note: text       ignored
Plex's client collations icu_root and naturalsort are registered, as Plex
registers them.
"""
import ctypes
import ctypes.util
import json
import re
import sys

SQLITE_ROW, SQLITE_DONE = 100, 101
SQLITE_OPEN_READWRITE, SQLITE_OPEN_CREATE = 0x2, 0x4
SQLITE_TRANSIENT = ctypes.c_void_p(-1)
TYPES = {1: "integer", 2: "real", 3: "text", 4: "blob", 5: "null"}

ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0", mode=ctypes.RTLD_GLOBAL)
api = ctypes.CDLL(None)


def fn(name, restype, *argtypes):
    f = getattr(api, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


P = ctypes.c_void_p
open_v2 = fn("sqlite3_open_v2", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(P), ctypes.c_int, ctypes.c_char_p)
prepare = fn("sqlite3_prepare_v2", ctypes.c_int, P, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(P), ctypes.POINTER(ctypes.c_char_p))
step = fn("sqlite3_step", ctypes.c_int, P)
finalize = fn("sqlite3_finalize", ctypes.c_int, P)
errmsg = fn("sqlite3_errmsg", ctypes.c_char_p, P)
changes = fn("sqlite3_changes", ctypes.c_int, P)
last_rowid = fn("sqlite3_last_insert_rowid", ctypes.c_int64, P)
bind_count = fn("sqlite3_bind_parameter_count", ctypes.c_int, P)
bind_index = fn("sqlite3_bind_parameter_index", ctypes.c_int, P, ctypes.c_char_p)
bind_int64 = fn("sqlite3_bind_int64", ctypes.c_int, P, ctypes.c_int, ctypes.c_int64)
bind_double = fn("sqlite3_bind_double", ctypes.c_int, P, ctypes.c_int, ctypes.c_double)
bind_text = fn("sqlite3_bind_text", ctypes.c_int, P, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, P)
bind_blob = fn("sqlite3_bind_blob", ctypes.c_int, P, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, P)
bind_null = fn("sqlite3_bind_null", ctypes.c_int, P, ctypes.c_int)
column_count = fn("sqlite3_column_count", ctypes.c_int, P)
column_name = fn("sqlite3_column_name", ctypes.c_char_p, P, ctypes.c_int)
column_decltype = fn("sqlite3_column_decltype", ctypes.c_char_p, P, ctypes.c_int)
column_type = fn("sqlite3_column_type", ctypes.c_int, P, ctypes.c_int)
column_int64 = fn("sqlite3_column_int64", ctypes.c_int64, P, ctypes.c_int)
column_double = fn("sqlite3_column_double", ctypes.c_double, P, ctypes.c_int)
column_text = fn("sqlite3_column_text", ctypes.c_void_p, P, ctypes.c_int)
column_blob = fn("sqlite3_column_blob", ctypes.c_void_p, P, ctypes.c_int)
column_bytes = fn("sqlite3_column_bytes", ctypes.c_int, P, ctypes.c_int)
COLLATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
create_collation = fn("sqlite3_create_collation_v2", ctypes.c_int, P, ctypes.c_char_p, ctypes.c_int, P, COLLATE, P)


def icu_key(s):
    """ICU root order at tertiary strength, as far as ASCII goes: letters
    by their lowercase, lowercase before uppercase."""
    return (s.lower(), [c.isupper() for c in s])


def natural_key(s):
    """Numbers by value, the rest as icu_key: differences of letters
    anywhere come before differences of case."""
    parts = [p for p in re.split(r"(\d+)", s) if p != ""]
    primary = [(0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts]
    return (primary, [c.isupper() for c in s])


def collation(key):
    def compare(_ctx, n1, p1, n2, p2):
        a = ctypes.string_at(p1, n1).decode("utf-8", "replace")
        b = ctypes.string_at(p2, n2).decode("utf-8", "replace")
        ka, kb = key(a), key(b)
        return (ka > kb) - (ka < kb)
    return COLLATE(compare)


COLLATIONS = {b"icu_root": collation(icu_key), b"naturalsort": collation(natural_key)}


def value(stmt, i):
    t = column_type(stmt, i)
    if t == 1:
        return ["integer", column_int64(stmt, i)]
    if t == 2:
        return ["real", column_double(stmt, i)]
    if t == 3:
        p, n = column_text(stmt, i), column_bytes(stmt, i)
        return ["text", ctypes.string_at(p, n).decode("utf-8", "replace")]
    if t == 4:
        p, n = column_blob(stmt, i), column_bytes(stmt, i)
        return ["blob", ctypes.string_at(p, n).hex() if n else ""]
    return ["null", None]


def bind(stmt, params):
    items = enumerate(params, 1) if isinstance(params, list) else (
        (bind_index(stmt, name.encode()), v) for name, v in params.items())
    for i, v in items:
        if i == 0:
            raise ValueError("no such parameter")
        if v is None:
            bind_null(stmt, i)
        elif isinstance(v, bool) or isinstance(v, int):
            bind_int64(stmt, i, int(v))
        elif isinstance(v, float):
            bind_double(stmt, i, v)
        elif isinstance(v, dict) and "blob" in v:
            b = bytes.fromhex(v["blob"])
            bind_blob(stmt, i, b, len(b), SQLITE_TRANSIENT)
        else:
            b = str(v).encode()
            bind_text(stmt, i, b, len(b), SQLITE_TRANSIENT)


def run(db, sql, params):
    out = {"sql": sql, "error": None}
    stmt = P()
    rc = prepare(db, sql.encode(), -1, ctypes.byref(stmt), None)
    if rc != 0:
        out["error"] = errmsg(db).decode("utf-8", "replace")
        return out
    try:
        if params is not None:
            bind(stmt, params)
        n = column_count(stmt)
        out["columns"] = [column_name(stmt, i).decode() for i in range(n)]
        rows = []
        while True:
            rc = step(stmt)
            if rc == SQLITE_ROW:
                rows.append([value(stmt, i) for i in range(n)])
            elif rc == SQLITE_DONE:
                break
            else:
                out["error"] = errmsg(db).decode("utf-8", "replace")
                break
        out["decltypes"] = [(column_decltype(stmt, i) or b"").decode() or None for i in range(n)]
        out["rows"] = rows
    finally:
        finalize(stmt)
    out["changes"] = changes(db)
    out["last_insert_rowid"] = last_rowid(db)
    return out


def statements(path):
    """(sql, directives) of a case file or a one-statement-a-line fixture."""
    text = open(path, encoding="utf-8").read()
    blocks = text.splitlines() if path.endswith(".sql") else re.split(r"\n\s*\n", text)
    for block in blocks:
        directives, lines = {}, []
        for line in block.splitlines():
            s = line.strip()
            if s.startswith("-- ") and not lines:
                key, _, rest = s[3:].partition(":")
                directives[key.strip()] = rest.strip()
            elif s and not s.startswith("#"):
                lines.append(line)
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if sql:
            yield sql, directives


def main():
    db = P()
    rc = open_v2(sys.argv[1].encode(), ctypes.byref(db), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, None)
    if rc != 0:
        print(json.dumps({"open_error": errmsg(db).decode()}))
        sys.exit(1)
    for name, cb in COLLATIONS.items():
        create_collation(db, name, 1, None, cb, None)
    for path in sys.argv[2:]:
        for sql, directives in statements(path):
            params = json.loads(directives["params"]) if "params" in directives else None
            result = run(db, sql, params)
            result["unordered"] = "unordered" in directives
            result["expect_error"] = "error" in directives
            result["gap"] = directives.get("gap", "").split(" ")[0].split(",")
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
