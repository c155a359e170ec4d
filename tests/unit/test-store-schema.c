/* SPDX-License-Identifier: MIT */
/*
 * test-store-schema.c: opening cache directories made by older bucketfs
 * versions (schema 1, 2 and 3, built here by hand with sqlite3 in the shape
 * those versions wrote) upgrades them to schema 4 in place: every row keeps
 * its fields, the new local times (ctime_ns, atime_ns) read 0 until set,
 * and once set they are kept, across a close and reopen too. A fresh
 * directory gets schema 4, and a database of a newer schema (99) is refused
 * and left as it was.
 */
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/store.h"
#include "test.h"

#define LIMIT (64ULL << 20)

/* The nodes table of schema 2 and 3 (without ctime_ns, atime_ns); schema 1
 * is the same without AUTOINCREMENT. */
#define OLD_NODES(autoinc)                                                                   \
    "CREATE TABLE nodes("                                                                    \
    " ino INTEGER PRIMARY KEY" autoinc ", parent INTEGER NOT NULL, name TEXT NOT NULL,"      \
    " kind INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, etag TEXT NOT NULL DEFAULT '',"  \
    " mtime_ns INTEGER NOT NULL DEFAULT 0, mode INTEGER NOT NULL DEFAULT 0,"                   \
    " uid INTEGER NOT NULL DEFAULT 0, gid INTEGER NOT NULL DEFAULT 0,"                         \
    " meta INTEGER NOT NULL DEFAULT 0, fetched_ns INTEGER NOT NULL DEFAULT 0,"                 \
    " present INTEGER NOT NULL DEFAULT 1, local INTEGER NOT NULL DEFAULT 0,"                   \
    " UNIQUE(parent, name));"

/* Schema 4's nodes: the local times, before the journal's base_etag. */
#define V4_NODES                                                                             \
    "CREATE TABLE nodes("                                                                    \
    " ino INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL, name TEXT NOT NULL,"   \
    " kind INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, etag TEXT NOT NULL DEFAULT '',"  \
    " mtime_ns INTEGER NOT NULL DEFAULT 0, mode INTEGER NOT NULL DEFAULT 0,"                   \
    " uid INTEGER NOT NULL DEFAULT 0, gid INTEGER NOT NULL DEFAULT 0,"                         \
    " meta INTEGER NOT NULL DEFAULT 0, fetched_ns INTEGER NOT NULL DEFAULT 0,"                 \
    " present INTEGER NOT NULL DEFAULT 1, local INTEGER NOT NULL DEFAULT 0,"                   \
    " ctime_ns INTEGER NOT NULL DEFAULT 0, atime_ns INTEGER NOT NULL DEFAULT 0,"               \
    " UNIQUE(parent, name));"

/* A pending upload of the file, in the old journal (no base_etag). */
#define OLD_UPLOAD                                                                           \
    "INSERT INTO uploads(ino, map, key, gen, size, mtime_ns, mode, uid, gid)"                 \
    " VALUES (7, 'data', 'data/report.csv', 3, 123457, 1500000000123456789, 33184, 1234, 2345);"

#define OLD_TABLES                                                                           \
    "CREATE TABLE listings(ino INTEGER PRIMARY KEY, listed_ns INTEGER NOT NULL);"            \
    "CREATE TABLE blocks(ino INTEGER NOT NULL, etag TEXT NOT NULL,"                          \
    " idx INTEGER NOT NULL, len INTEGER NOT NULL, used_ns INTEGER NOT NULL,"                  \
    " PRIMARY KEY(ino, etag, idx)) WITHOUT ROWID;"                                            \
    "CREATE INDEX blocks_lru ON blocks(used_ns);"                                            \
    "CREATE TABLE xattrs(ino INTEGER NOT NULL, name TEXT NOT NULL,"                          \
    " value BLOB NOT NULL, PRIMARY KEY(ino, name)) WITHOUT ROWID;"                            \
    "CREATE TABLE uploads(ino INTEGER PRIMARY KEY, map TEXT NOT NULL,"                       \
    " key TEXT NOT NULL, gen INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL," \
    " mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"                     \
    " state INTEGER NOT NULL DEFAULT 0, upload_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,"  \
    " error TEXT, next_ns INTEGER NOT NULL DEFAULT 0);"

#define STAGED_TABLE                                                                         \
    "CREATE TABLE staged(ino INTEGER PRIMARY KEY, gen INTEGER NOT NULL, data BLOB NOT NULL);"

/* The rows every old database gets: the root, a subdirectory, a file in it
 * with metadata from its object, and a name found gone (present 0). */
#define FILE_INO 7
#define DIR_INO 5
#define GONE_INO 9
#define FILE_MTIME 1500000000123456789LL
#define FILE_FETCHED 1700000000987654321LL
#define FILE_MODE (S_IFREG | 0640)
#define OLD_ROWS                                                                             \
    "INSERT INTO nodes(ino, parent, name, kind) VALUES (1, 0, '', 2);"                        \
    "INSERT INTO nodes(ino, parent, name, kind, mtime_ns, mode, meta, fetched_ns)"             \
    " VALUES (5, 1, 'data', 2, 1400000000000000000, 16877, 1, 1700000000000000000);"           \
    "INSERT INTO nodes(ino, parent, name, kind, size, etag, mtime_ns, mode, uid, gid, meta,"   \
    " fetched_ns, present, local) VALUES (7, 5, 'report.csv', 1, 123457,"                      \
    " '\"0123456789abcdef0123456789abcdef\"', 1500000000123456789, 33184, 1234, 2345, 15,"      \
    " 1700000000987654321, 1, 0);"                                                             \
    "INSERT INTO nodes(ino, parent, name, kind, size, etag, mtime_ns, present)"               \
    " VALUES (9, 5, 'gone.txt', 1, 3, '\"e1\"', 1600000000000000000, 0);"

static char root[] = "/tmp/bfs-test-schema-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void subdir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", root, name);
}

/* Runs sql on DIR/meta.db (made if missing); 0 or the SQLite error. */
static int db_exec(const char *dir, const char *sql)
{
    char path[512], *msg = NULL;
    sqlite3 *db;
    int rc;

    snprintf(path, sizeof(path), "%s/meta.db", dir);
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc;
}

/* One integer a query on DIR/meta.db answers, or -1. */
static int64_t db_int(const char *dir, const char *sql)
{
    char path[512];
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;

    snprintf(path, sizeof(path), "%s/meta.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static int make_dir(const char *dir)
{
    return mkdir(dir, 0700) == 0 ? 0 : -errno;
}

/* The file row as the old database holds it, with ctime/atime unset. */
static void check_file_row(const struct bfs_node *n)
{
    CHECK(n->ino == FILE_INO);
    CHECK(n->parent == DIR_INO);
    CHECK_STR(n->name, "report.csv");
    CHECK(n->kind == BFS_KIND_FILE);
    CHECK(n->size == 123457);
    CHECK_STR(n->etag, "\"0123456789abcdef0123456789abcdef\"");
    CHECK(n->mtime_ns == FILE_MTIME);
    CHECK(n->mode == FILE_MODE);
    CHECK(n->uid == 1234 && n->gid == 2345);
    CHECK(n->meta == (BFS_META_MODE | BFS_META_UID | BFS_META_GID | BFS_META_MTIME));
    CHECK(n->fetched_ns == FILE_FETCHED);
    CHECK(n->local == 0);
    CHECK(n->present == 1);
}

/* An old database of schema version (1, 2 or 3), opened and used. */
static void upgrade(int version)
{
    char dir[256], sql[8192], name[32], err[512] = "";
    struct bfs_store *s = NULL;
    struct bfs_node n, back;
    int r;

    fprintf(stderr, "upgrade from schema %d\n", version);
    snprintf(name, sizeof(name), "v%d", version);
    subdir(dir, sizeof(dir), name);
    CHECK(make_dir(dir) == 0);
    snprintf(sql, sizeof(sql), "%s%s%s%s%sPRAGMA user_version=%d;",
             version == 1 ? OLD_NODES("") : version == 4 ? V4_NODES : OLD_NODES(" AUTOINCREMENT"),
             OLD_TABLES, version >= 3 ? STAGED_TABLE : "", OLD_ROWS, OLD_UPLOAD, version);
    if (db_exec(dir, sql) != SQLITE_OK) {
        CHECK(!"the old database could be built");
        return;
    }
    CHECK(db_int(dir, "PRAGMA user_version") == version);
    CHECK(db_int(dir, "SELECT count(*) FROM pragma_table_info('nodes') WHERE name = 'ctime_ns'")
          == (version == 4));

    r = bfs_store_open(dir, LIMIT, &s, err, sizeof(err));
    CHECK(r == 0);
    if (r != 0) {
        fprintf(stderr, "bfs_store_open(%s) = %d: %s\n", dir, r, err);
        return;
    }
    {   /* the journal row: kept, unconditional (the old journal knew no base) */
        struct bfs_upload u;

        CHECK(bfs_store_upload_get(s, FILE_INO, &u) == 0);
        CHECK(u.gen == 3 && u.size == 123457 && u.key && !strcmp(u.key, "data/report.csv"));
        CHECK(u.base_etag == NULL);
        bfs_upload_done(&u);
        CHECK(bfs_store_upload_set_base(s, FILE_INO, 2, "\"e9\"") == 0);
        CHECK(bfs_store_upload_get(s, FILE_INO, &u) == 0);
        CHECK(u.base_etag == NULL); /* an unconditional row stays so */
        bfs_upload_done(&u);
        u = (struct bfs_upload){.ino = FILE_INO, .map = "data", .key = "data/report.csv",
                                .gen = 4, .size = 1, .base_etag = "\"e1\""};
        CHECK(bfs_store_upload_put(s, &u, "x", 1) == 0);
        CHECK(bfs_store_upload_set_base(s, FILE_INO, 4, "\"e2\"") == 0); /* not newer */
        CHECK(bfs_store_upload_get(s, FILE_INO, &u) == 0);
        CHECK(u.gen == 4 && u.base_etag && !strcmp(u.base_etag, "\"e1\""));
        bfs_upload_done(&u);
        CHECK(bfs_store_upload_set_base(s, FILE_INO, 3, "\"e2\"") == 0);
        CHECK(bfs_store_upload_get(s, FILE_INO, &u) == 0);
        CHECK(u.base_etag && !strcmp(u.base_etag, "\"e2\""));
        bfs_upload_done(&u);
        CHECK(bfs_store_upload_delete(s, FILE_INO) == 0);
    }
    memset(&n, 0x5a, sizeof(n)); /* what the read does not set shows */
    CHECK(bfs_store_node_get(s, FILE_INO, &n) == 0);
    check_file_row(&n);
    CHECK(n.ctime_ns == 0);
    CHECK(n.atime_ns == 0);

    /* the other rows: the root, the directory, the name found gone */
    CHECK(bfs_store_node_get(s, BFS_ROOT_INO, &back) == 0);
    CHECK(back.kind == BFS_KIND_DIR && back.parent == 0 && back.present == 1);
    CHECK(back.ctime_ns == 0 && back.atime_ns == 0);
    CHECK(bfs_store_node_get(s, DIR_INO, &back) == 0);
    CHECK(back.kind == BFS_KIND_DIR && back.mode == (S_IFDIR | 0755));
    CHECK(back.mtime_ns == 1400000000000000000LL && back.meta == BFS_META_MODE);
    CHECK(back.present == 1);
    CHECK(bfs_store_node_get(s, GONE_INO, &back) == 0);
    CHECK(back.present == 0);
    CHECK(back.mtime_ns == 1600000000000000000LL && back.size == 3);
    CHECK(bfs_store_node_lookup(s, DIR_INO, "gone.txt", &back) == -ENOENT);
    CHECK(bfs_store_node_lookup(s, DIR_INO, "report.csv", &back) == 0);
    CHECK(back.ino == FILE_INO && back.mtime_ns == FILE_MTIME && back.ctime_ns == 0);

    /* the local times are written and read back, the rest unchanged */
    n.ctime_ns = 1700000001000000007LL;
    n.atime_ns = 1300000000000000042LL;
    CHECK(bfs_store_node_update(s, &n) == 0);
    memset(&back, 0, sizeof(back));
    CHECK(bfs_store_node_get(s, FILE_INO, &back) == 0);
    check_file_row(&back);
    CHECK(back.ctime_ns == 1700000001000000007LL);
    CHECK(back.atime_ns == 1300000000000000042LL);

    /* an inode number made after the upgrade is a new one (AUTOINCREMENT) */
    memset(&back, 0, sizeof(back));
    back.parent = DIR_INO;
    snprintf(back.name, sizeof(back.name), "new.bin");
    back.kind = BFS_KIND_FILE;
    back.mtime_ns = 1;
    back.ctime_ns = 2;
    back.atime_ns = 3;
    back.local = 1;
    CHECK(bfs_store_node_create(s, &back) == 0);
    CHECK(back.ino > GONE_INO);
    uint64_t new_ino = back.ino;
    memset(&back, 0, sizeof(back));
    CHECK(bfs_store_node_get(s, new_ino, &back) == 0);
    CHECK(back.ctime_ns == 2 && back.atime_ns == 3 && back.local == 1 && back.present == 1);
    bfs_store_close(s);
    s = NULL;

    CHECK(db_int(dir, "PRAGMA user_version") == 5);
    CHECK(db_int(dir, "SELECT count(*) FROM pragma_table_info('nodes')"
                      " WHERE name IN ('ctime_ns', 'atime_ns')") == 2);
    CHECK(db_int(dir, "SELECT count(*) FROM pragma_table_info('uploads')"
                      " WHERE name = 'base_etag'") == 1);
    CHECK(db_int(dir, "SELECT count(*) FROM sqlite_master WHERE name = 'staged'") == 1);

    /* and kept by the next open, which upgrades nothing again */
    r = bfs_store_open(dir, LIMIT, &s, err, sizeof(err));
    CHECK(r == 0);
    if (r != 0) {
        fprintf(stderr, "reopening %s: %d: %s\n", dir, r, err);
        return;
    }
    memset(&back, 0, sizeof(back));
    CHECK(bfs_store_node_get(s, FILE_INO, &back) == 0);
    check_file_row(&back);
    CHECK(back.ctime_ns == 1700000001000000007LL);
    CHECK(back.atime_ns == 1300000000000000042LL);
    CHECK(bfs_store_node_get(s, new_ino, &back) == 0);
    CHECK(back.ctime_ns == 2 && back.atime_ns == 3);
    bfs_store_close(s);
}

/* A directory that does not exist yet: made, with schema 4 and the root. */
static void fresh(void)
{
    char dir[256], err[512] = "";
    struct bfs_store *s = NULL;
    struct bfs_node n, back;
    int r;

    subdir(dir, sizeof(dir), "fresh/cache");
    r = bfs_store_open(dir, LIMIT, &s, err, sizeof(err));
    CHECK(r == 0);
    if (r != 0) {
        fprintf(stderr, "bfs_store_open(%s) = %d: %s\n", dir, r, err);
        return;
    }
    CHECK(bfs_store_node_get(s, BFS_ROOT_INO, &n) == 0);
    CHECK(n.kind == BFS_KIND_DIR && n.present == 1 && n.ctime_ns == 0 && n.atime_ns == 0);
    memset(&n, 0, sizeof(n));
    n.parent = BFS_ROOT_INO;
    snprintf(n.name, sizeof(n.name), "a.txt");
    n.kind = BFS_KIND_FILE;
    n.size = 5;
    n.mtime_ns = FILE_MTIME;
    n.mode = FILE_MODE;
    n.ctime_ns = FILE_MTIME + 1000;
    n.atime_ns = 0;
    CHECK(bfs_store_node_create(s, &n) == 0);
    CHECK(n.ino > BFS_ROOT_INO);
    CHECK(bfs_store_node_get(s, n.ino, &back) == 0);
    CHECK(back.mtime_ns == FILE_MTIME && back.ctime_ns == FILE_MTIME + 1000);
    CHECK(back.atime_ns == 0 && back.mode == FILE_MODE && back.size == 5);
    n.atime_ns = 42;
    CHECK(bfs_store_node_update(s, &n) == 0);
    CHECK(bfs_store_node_get(s, n.ino, &back) == 0);
    CHECK(back.atime_ns == 42 && back.ctime_ns == FILE_MTIME + 1000);
    /* a removed row keeps its times and says it is gone */
    CHECK(bfs_store_node_remove(s, n.ino) == 0);
    CHECK(bfs_store_node_get(s, n.ino, &back) == 0);
    CHECK(back.present == 0 && back.atime_ns == 42);
    bfs_store_close(s);
    CHECK(db_int(dir, "PRAGMA user_version") == 5);
}

/* A database of a newer bucketfs: refused, not touched. */
static void newer(void)
{
    char dir[256], err[512] = "";
    struct bfs_store *s = NULL;
    int r;

    subdir(dir, sizeof(dir), "v99");
    CHECK(make_dir(dir) == 0);
    CHECK(db_exec(dir, "CREATE TABLE future(x INTEGER); INSERT INTO future VALUES (1);"
                       "PRAGMA user_version=99;") == SQLITE_OK);
    r = bfs_store_open(dir, LIMIT, &s, err, sizeof(err));
    CHECK(r == -EPROTO);
    CHECK(r < 0 || s == NULL);
    if (r == 0)
        bfs_store_close(s);
    CHECK(strstr(err, "schema 99") != NULL);
    CHECK(db_int(dir, "PRAGMA user_version") == 99);
    CHECK(db_int(dir, "SELECT count(*) FROM sqlite_master WHERE name = 'nodes'") == 0);
    CHECK(db_int(dir, "SELECT x FROM future") == 1);
}

int main(void)
{
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    upgrade(4);
    upgrade(3);
    upgrade(2);
    upgrade(1);
    fresh();
    newer();
    rm_rf(root);
    TEST_DONE();
}
