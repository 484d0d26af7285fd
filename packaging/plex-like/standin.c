/*
 * The musl stand-in for Plex Media Server: a musl program that reaches
 * SQLite the way Plex does (its bundled libsqlite3.so, found through
 * LD_LIBRARY_PATH; plex-pg's shim preloaded in front of it) and forks the
 * way that crashed Plex in January 2026: in the middle of streaming the
 * hash fix-up query, from a worker thread with Plex's 544 KiB stack.
 *
 *   "Plex Media Server" DIR EXPECTED_ROWS FORK_EVERY
 *
 * DIR holds the databases. In order:
 *  1. com.plexapp.dlna.db, not routed: a table is written and read back
 *     through the real (musl) SQLite.
 *  2. com.plexapp.plugins.library.db, routed to PostgreSQL: a worker thread
 *     streams `SELECT id,guid FROM metadata_items where hash is null`
 *     and forks every FORK_EVERY rows. Each child records the socket inodes
 *     it holds right after the fork, opens its own connection, counts the
 *     rows, reports on a pipe and _exit()s; the parent goes on streaming.
 *  3. The fix-up itself: in one transaction, hash = 'h<id>' for ids 1..100.
 *
 * Prints one JSON object on standard output: the rows the parent got and
 * how many were wrong (bad guid, duplicate or unknown id), the ids missing,
 * each child (pid, held inodes, its count or error, exit status), and the
 * SQLite version loaded. Exits 0 when it ran to the end, 1 (with SQLite's
 * message on standard error) when a call failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PLEX_THREAD_STACK (544 * 1024)

static const char *dir;
static long expected;
static long fork_every;

/* A growing string, for the JSON output. */
struct buf {
    char *s;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            perror("vsnprintf");
            exit(1);
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) {
            perror("realloc");
            exit(1);
        }
    }
}

static void die_db(sqlite3 *db, const char *what) {
    fprintf(stderr, "plex-standin: %s: %s\n", what, db ? sqlite3_errmsg(db) : "no handle");
    exit(1);
}

static char *db_path(const char *name) {
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0) {
        perror("asprintf");
        exit(1);
    }
    return p;
}

static sqlite3 *open_db(const char *name) {
    sqlite3 *db = NULL;
    char *path = db_path(name);
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK)
        die_db(db, path);
    free(path);
    return db;
}

static void exec_sql(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "plex-standin: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* The socket inodes this process holds, as a JSON array. */
static void socket_inodes(struct buf *out) {
    put(out, "[");
    DIR *d = opendir("/proc/self/fd");
    int first = 1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char link[300], target[128];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        unsigned long long inode;
        if (sscanf(target, "socket:[%llu]", &inode) == 1) {
            put(out, "%s%llu", first ? "" : ",", inode);
            first = 0;
        }
    }
    if (d)
        closedir(d);
    put(out, "]");
}

/* 1. A database that is not routed: the real SQLite. */
static void passthrough(struct buf *out) {
    sqlite3 *db = open_db("com.plexapp.dlna.db");
    exec_sql(db, "CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, name TEXT);"
                 "DELETE FROM devices;"
                 "INSERT INTO devices (name) VALUES ('tv'), ('phone'), ('speaker');");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT count(*), group_concat(name, ',') FROM devices", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        die_db(db, "reading com.plexapp.dlna.db");
    put(out, "\"passthrough\":{\"count\":%d,\"names\":\"%s\"},", sqlite3_column_int(st, 0),
        (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A forked child: what it holds, then a connection of its own. */
static void child(int report_fd) {
    struct buf r = {0};
    put(&r, "{\"pid\":%d,\"held\":", (int)getpid());
    socket_inodes(&r);
    sqlite3 *db = NULL;
    char *path = db_path("com.plexapp.plugins.library.db");
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM metadata_items", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        put(&r, ",\"count\":%lld}", (long long)sqlite3_column_int64(st, 0));
    } else {
        const char *msg = db ? sqlite3_errmsg(db) : "open failed";
        put(&r, ",\"error\":\"");
        for (; *msg; msg++)
            put(&r, (*msg == '"' || *msg == '\\') ? "\\%c" : "%c", *msg);
        put(&r, "\"}");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    ssize_t off = 0;
    while (off < (ssize_t)r.len) {
        ssize_t n = write(report_fd, r.s + off, r.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(3);
        off += n;
    }
    _exit(0);
}

/* 2. The hash query, streamed, with forks in the middle of it. */
static void *worker(void *arg) {
    struct buf *out = arg;
    sqlite3 *db = open_db("com.plexapp.plugins.library.db");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT id,guid FROM metadata_items where hash is null", -1, &st, NULL) != SQLITE_OK)
        die_db(db, "preparing the hash query");
    unsigned char *seen = calloc((size_t)expected + 1, 1);
    long rows = 0, bad = 0;
    int first_child = 1;
    struct buf children = {0};
    put(&children, "[");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        long long id = sqlite3_column_int64(st, 0);
        const char *guid = (const char *)sqlite3_column_text(st, 1);
        char want[40];
        snprintf(want, sizeof want, "guid-%lld", id);
        if (id < 1 || id > expected || seen[id] || !guid || strcmp(guid, want) != 0)
            bad++;
        else
            seen[id] = 1;
        if (rows % fork_every != 0)
            continue;
        int pipefd[2];
        if (pipe(pipefd) != 0) {
            perror("pipe");
            exit(1);
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            exit(1);
        }
        if (pid == 0) {
            close(pipefd[0]);
            child(pipefd[1]);
        }
        close(pipefd[1]);
        struct buf report = {0};
        char chunk[512];
        ssize_t n;
        while ((n = read(pipefd[0], chunk, sizeof chunk)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            put(&report, "%.*s", (int)n, chunk);
        }
        close(pipefd[0]);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (report.len > 1 && report.s[report.len - 1] == '}') {
            report.s[report.len - 1] = 0;
            put(&children, "%s%s,\"exit\":%d}", first_child ? "" : ",", report.s, code);
        } else {
            put(&children, "%s{\"pid\":%d,\"exit\":%d,\"error\":\"no report\"}", first_child ? "" : ",", (int)pid, code);
        }
        first_child = 0;
        free(report.s);
    }
    if (rc != SQLITE_DONE)
        die_db(db, "streaming the hash query");
    sqlite3_finalize(st);
    long missing = 0;
    for (long i = 1; i <= expected; i++)
        missing += !seen[i];
    put(out, "\"rows\":%ld,\"bad\":%ld,\"missing\":%ld,\"children\":%s],", rows, bad, missing, children.s);
    free(children.s);
    free(seen);

    /* 3. The fix-up: one transaction of bound updates. */
    exec_sql(db, "BEGIN");
    if (sqlite3_prepare_v2(db, "UPDATE metadata_items SET hash = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        die_db(db, "preparing the hash update");
    int updated = 0;
    for (int id = 1; id <= 100; id++) {
        char hash[32];
        snprintf(hash, sizeof hash, "h%d", id);
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, id);
        if (sqlite3_step(st) != SQLITE_DONE)
            die_db(db, "updating a hash");
        updated += sqlite3_changes(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    exec_sql(db, "COMMIT");
    put(out, "\"updated\":%d,", updated);
    sqlite3_close(db);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 || (expected = atol(argv[2])) <= 0 || (fork_every = atol(argv[3])) <= 0) {
        fprintf(stderr, "usage: %s DIR EXPECTED_ROWS FORK_EVERY\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    struct buf out = {0};
    put(&out, "{\"pid\":%d,\"sqlite\":\"%s\",", (int)getpid(), sqlite3_libversion());
    passthrough(&out);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PLEX_THREAD_STACK);
    pthread_t t;
    int err = pthread_create(&t, &attr, worker, &out);
    if (err != 0) {
        fprintf(stderr, "plex-standin: pthread_create: %s\n", strerror(err));
        return 1;
    }
    pthread_join(t, NULL);
    put(&out, "\"done\":true}\n");
    fputs(out.s, stdout);
    return 0;
}
