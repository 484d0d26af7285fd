"""The SQLite C API, called directly (ctypes, global scope: the preloaded
shim's exports come first), for the calls Python's sqlite3 module never
makes. Prints one JSON object of observations."""
import ctypes as C
import json
import sys

C.CDLL("libsqlite3.so.0", mode=C.RTLD_GLOBAL)  # what the shim does not export
lib = C.CDLL(None)
P = C.c_void_p
for name, res, args in [
    ("sqlite3_open_v2", C.c_int, [C.c_char_p, C.POINTER(P), C.c_int, C.c_char_p]),
    ("sqlite3_close", C.c_int, [P]), ("sqlite3_close_v2", C.c_int, [P]),
    ("sqlite3_prepare_v2", C.c_int, [P, C.c_char_p, C.c_int, C.POINTER(P), C.POINTER(C.c_char_p)]),
    ("sqlite3_prepare16_v2", C.c_int, [P, C.c_char_p, C.c_int, C.POINTER(P), C.POINTER(P)]),
    ("sqlite3_step", C.c_int, [P]), ("sqlite3_reset", C.c_int, [P]), ("sqlite3_finalize", C.c_int, [P]),
    ("sqlite3_next_stmt", P, [P, P]), ("sqlite3_errmsg", C.c_char_p, [P]), ("sqlite3_errcode", C.c_int, [P]),
    ("sqlite3_extended_errcode", C.c_int, [P]),
    ("sqlite3_column_count", C.c_int, [P]), ("sqlite3_column_name", C.c_char_p, [P, C.c_int]),
    ("sqlite3_column_decltype", C.c_char_p, [P, C.c_int]), ("sqlite3_column_type", C.c_int, [P, C.c_int]),
    ("sqlite3_column_text", C.c_char_p, [P, C.c_int]), ("sqlite3_column_int64", C.c_int64, [P, C.c_int]),
    ("sqlite3_column_value", P, [P, C.c_int]), ("sqlite3_value_type", C.c_int, [P]),
    ("sqlite3_value_text", C.c_char_p, [P]), ("sqlite3_value_dup", P, [P]), ("sqlite3_value_free", None, [P]),
    ("sqlite3_bind_int64", C.c_int, [P, C.c_int, C.c_int64]),
    ("sqlite3_bind_text", C.c_int, [P, C.c_int, C.c_char_p, C.c_int, P]),
    ("sqlite3_bind_value", C.c_int, [P, C.c_int, P]),
    ("sqlite3_bind_parameter_count", C.c_int, [P]), ("sqlite3_bind_parameter_name", C.c_char_p, [P, C.c_int]),
    ("sqlite3_bind_parameter_index", C.c_int, [P, C.c_char_p]),
    ("sqlite3_expanded_sql", P, [P]), ("sqlite3_sql", C.c_char_p, [P]), ("sqlite3_free", None, [P]),
    ("sqlite3_stmt_readonly", C.c_int, [P]), ("sqlite3_stmt_busy", C.c_int, [P]),
    ("sqlite3_stmt_status", C.c_int, [P, C.c_int, C.c_int]), ("sqlite3_db_handle", P, [P]),
    ("sqlite3_get_table", C.c_int, [P, C.c_char_p, C.POINTER(C.POINTER(C.c_char_p)), C.POINTER(C.c_int), C.POINTER(C.c_int), C.POINTER(C.c_char_p)]),
    ("sqlite3_free_table", None, [C.POINTER(C.c_char_p)]),
    ("sqlite3_exec", C.c_int, [P, C.c_char_p, P, P, C.POINTER(C.c_char_p)]),
    ("sqlite3_get_autocommit", C.c_int, [P]), ("sqlite3_changes", C.c_int, [P]),
    ("sqlite3_busy_timeout", C.c_int, [P, C.c_int]),
]:
    f = getattr(lib, name)
    f.restype, f.argtypes = res, args

out = {}
db = P()
path = sys.argv[1].encode()
out["open"] = lib.sqlite3_open_v2(path, C.byref(db), 6, None)
out["busy_timeout_on_routed_handle"] = lib.sqlite3_busy_timeout(db, 5000)

# prepare's tail and a named parameter used twice.
st, tail = P(), C.c_char_p()
sql = b"SELECT id, title FROM items WHERE id = :id OR id = :id + 100; SELECT 2"
out["prepare"] = lib.sqlite3_prepare_v2(db, sql, -1, C.byref(st), C.byref(tail))
out["tail"] = tail.value.decode()
out["params"] = [lib.sqlite3_bind_parameter_count(st), lib.sqlite3_bind_parameter_name(st, 1).decode(),
                 lib.sqlite3_bind_parameter_index(st, b":id"), lib.sqlite3_bind_parameter_index(st, b":nope")]
out["readonly"] = lib.sqlite3_stmt_readonly(st)
out["columns"] = [lib.sqlite3_column_name(st, i).decode() for i in range(lib.sqlite3_column_count(st))]
lib.sqlite3_bind_int64(st, 1, 1)
expanded = lib.sqlite3_expanded_sql(st)
out["expanded"] = C.cast(expanded, C.c_char_p).value.decode()
lib.sqlite3_free(expanded)
out["sql"] = lib.sqlite3_sql(st).decode()
out["db_handle_matches"] = lib.sqlite3_db_handle(st) == db.value
out["step"] = lib.sqlite3_step(st)
out["busy_while_reading"] = lib.sqlite3_stmt_busy(st)
v = lib.sqlite3_column_value(st, 1)
dup = lib.sqlite3_value_dup(v)
out["value"] = [lib.sqlite3_value_type(v), lib.sqlite3_value_text(v).decode(), lib.sqlite3_value_text(dup).decode()]
# One of our values bound to another routed statement.
st2 = P()
lib.sqlite3_prepare_v2(db, b"SELECT ?", -1, C.byref(st2), None)
out["bind_value"] = lib.sqlite3_bind_value(st2, 1, dup)
lib.sqlite3_step(st2)
out["bound_back"] = lib.sqlite3_column_text(st2, 0).decode()
lib.sqlite3_finalize(st2)
lib.sqlite3_value_free(dup)
out["done"] = lib.sqlite3_step(st)
out["status_run"] = lib.sqlite3_stmt_status(st, 6, 0)
# Closing with a statement alive is refused (sqlite3_close), as in SQLite.
out["close_busy"] = lib.sqlite3_close(db)
out["close_busy_msg"] = lib.sqlite3_errmsg(db).decode()
lib.sqlite3_finalize(st)

# UTF-16 prepare.
st = P()
utf16 = "SELECT 'é' || title FROM items WHERE id = 1".encode("utf-16-le") + b"\0\0"
out["prepare16"] = lib.sqlite3_prepare16_v2(db, utf16, -1, C.byref(st), None)
lib.sqlite3_step(st)
out["utf16_text"] = lib.sqlite3_column_text(st, 0).decode()
lib.sqlite3_finalize(st)

# get_table and exec with a callback.
res, nrow, ncol, err = C.POINTER(C.c_char_p)(), C.c_int(), C.c_int(), C.c_char_p()
out["get_table"] = lib.sqlite3_get_table(db, b"SELECT id, title FROM items ORDER BY id", C.byref(res), C.byref(nrow), C.byref(ncol), C.byref(err))
out["table"] = [nrow.value, ncol.value] + [(res[i] or b"NULL").decode() for i in range((nrow.value + 1) * ncol.value)]
lib.sqlite3_free_table(res)
seen = []
CB = C.CFUNCTYPE(C.c_int, P, C.c_int, C.POINTER(C.c_char_p), C.POINTER(C.c_char_p))
def on_row(_, n, values, names):
    seen.append({names[i].decode(): (values[i] or b"NULL").decode() for i in range(n)})
    return 0
cb = CB(on_row)
out["exec"] = lib.sqlite3_exec(db, b"UPDATE items SET note = 'e' WHERE id = 1; SELECT id, note FROM items WHERE id = 1", C.cast(cb, P), None, C.byref(err))
out["exec_rows"] = seen
out["changes"] = lib.sqlite3_changes(db)
out["exec_error"] = lib.sqlite3_exec(db, b"SELECT 1; SELEC 2", None, None, C.byref(err))
out["exec_errmsg"] = err.value.decode() if err.value else None

# A statement found with sqlite3_next_stmt can be finalized (including
# shells the shim keeps for reuse), then the handle closes.
st = P()
lib.sqlite3_prepare_v2(db, b"SELECT 1", -1, C.byref(st), None)
lib.sqlite3_finalize(st)
finalized = 0
while True:
    s = lib.sqlite3_next_stmt(db, None)
    if not s:
        break
    lib.sqlite3_finalize(s)
    finalized += 1
out["next_stmt_finalized"] = finalized
out["close"] = lib.sqlite3_close(db)
print(json.dumps(out))
