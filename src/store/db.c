/* SPDX-License-Identifier: MIT */
/*
 * db.c: the cache directory, its SQLite database and the connections to it.
 *
 * ON-DISK FORMAT (schema version 5, PRAGMA user_version; 1 to 4 are upgraded)
 *   DIR/meta.db      SQLite, WAL mode, synchronous=NORMAL:
 *     nodes(ino PK AUTOINCREMENT, parent, name, kind, size, etag, mtime_ns,
 *           mode, uid, gid, meta, fetched_ns, present, local, ctime_ns,
 *           atime_ns) UNIQUE(parent, name)
 *       one row per name ever seen; present=0 once a listing or lookup
 *       found it gone (the row and its inode number stay, so a name that
 *       comes back keeps its number). Row 1 is the root. ctime_ns and
 *       atime_ns (version 4) are kept here only, S3 has no place for them.
 *     listings(ino PK, listed_ns)  when a directory was last listed whole
 *     blocks(ino, etag, idx, len, used_ns)  PK(ino, etag, idx): the block
 *       index; used_ns orders eviction
 *     uploads(ino PK, map, key, gen, ..., base_etag)  the upload journal
 *       (journal.c); base_etag (version 5) is the version an upload replaces
 *     staged(ino PK, gen, data)  bytes of small files committed with their
 *       uploads row (version 3: version 2 had none)
 *   DIR/blocks/XX/INO-HASH-IDX   block payloads (see blocks.c)
 *   DIR/staging/INO-GEN          written files not yet in S3 (journal.c)
 *   Directories are 0700 and files 0600: only the mounting user reads them.
 *
 * Each thread has its own connection, made on first use and kept in a
 * pthread key; all of them are closed by bfs_store_close.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bucketfs/util.h"
#include "store-int.h"

#define SCHEMA_VERSION 5
#define STR_(x) #x
#define STR(x) STR_(x)

/* AUTOINCREMENT: a plain INTEGER PRIMARY KEY hands out max(ino)+1, which
 * is the number of the newest row again once that row is deleted (unlink
 * and create of the same name); an inode number must never come back while
 * the kernel, an open handle or a queued upload may still hold the old one. */
#define NODES_TABLE(name) \
    "CREATE TABLE IF NOT EXISTS " name "(" \
    " ino INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL, name TEXT NOT NULL," \
    " kind INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, etag TEXT NOT NULL DEFAULT ''," \
    " mtime_ns INTEGER NOT NULL DEFAULT 0, mode INTEGER NOT NULL DEFAULT 0," \
    " uid INTEGER NOT NULL DEFAULT 0, gid INTEGER NOT NULL DEFAULT 0," \
    " meta INTEGER NOT NULL DEFAULT 0, fetched_ns INTEGER NOT NULL DEFAULT 0," \
    " present INTEGER NOT NULL DEFAULT 1, local INTEGER NOT NULL DEFAULT 0," \
    " ctime_ns INTEGER NOT NULL DEFAULT 0, atime_ns INTEGER NOT NULL DEFAULT 0," \
    " UNIQUE(parent, name));"

/* Version 1 had nodes without AUTOINCREMENT: copy it into the new shape. */
static const char upgrade_v1[] =
    "BEGIN;"
    NODES_TABLE("nodes_v2")
    "INSERT INTO nodes_v2(ino, parent, name, kind, size, etag, mtime_ns, mode, uid, gid, meta,"
    " fetched_ns, present, local) SELECT ino, parent, name, kind, size, etag, mtime_ns, mode,"
    " uid, gid, meta, fetched_ns, present, local FROM nodes;"
    "DROP TABLE nodes;"
    "ALTER TABLE nodes_v2 RENAME TO nodes;"
    /* journal rows may name the inode of a deleted row: not that one either */
    "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(ino), 0) FROM uploads))"
    " WHERE name = 'nodes';"
    "COMMIT;";

/* Columns later versions added, for add_missing (versions 1 to 4). */
static const struct {
    const char *table, *column, *decl;
} added[] = {
    {"nodes", "ctime_ns", "INTEGER NOT NULL DEFAULT 0"},  /* version 4 */
    {"nodes", "atime_ns", "INTEGER NOT NULL DEFAULT 0"},  /* version 4 */
    {"uploads", "base_etag", "TEXT"},                     /* version 5 */
};

static const char schema[] =
    NODES_TABLE("nodes")
    "CREATE TABLE IF NOT EXISTS listings(ino INTEGER PRIMARY KEY, listed_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS blocks(ino INTEGER NOT NULL, etag TEXT NOT NULL,"
    " idx INTEGER NOT NULL, len INTEGER NOT NULL, used_ns INTEGER NOT NULL,"
    " PRIMARY KEY(ino, etag, idx)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS blocks_lru ON blocks(used_ns);"
    "CREATE TABLE IF NOT EXISTS xattrs(ino INTEGER NOT NULL, name TEXT NOT NULL,"
    " value BLOB NOT NULL, PRIMARY KEY(ino, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS uploads(ino INTEGER PRIMARY KEY, map TEXT NOT NULL,"
    " key TEXT NOT NULL, gen INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0, upload_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    " error TEXT, next_ns INTEGER NOT NULL DEFAULT 0, base_etag TEXT);"
    "CREATE TABLE IF NOT EXISTS staged(ino INTEGER PRIMARY KEY, gen INTEGER NOT NULL,"
    " data BLOB NOT NULL);"
    "INSERT OR IGNORE INTO nodes(ino, parent, name, kind) VALUES (1, 0, '', 2);"
    /* rows detached by the last mount: no handle is open on them now */
    "DELETE FROM nodes WHERE parent = 0 AND ino != 1;";

#define NODE_COLS \
    "ino, parent, name, kind, size, etag, mtime_ns, mode, uid, gid, meta, fetched_ns, local," \
    " ctime_ns, atime_ns, present"

#define KEEP                                                                               \
    "(excluded.meta = 0 AND nodes.etag = excluded.etag AND (nodes.kind = excluded.kind OR"     \
    " (excluded.kind = 1 AND nodes.kind = 3)))"

/* A row whose name another takes (a create, a rename over it) leaves the
 * tree but stays, for the handles still open on its inode (fstat shows its
 * attributes, with no link); the next mount deletes it. Parent 0 is no
 * directory's, and "#INO" no name's. */
#define DETACH "parent = 0, name = '#' || ino, present = 0, local = 0"

/* now in ns since the epoch, in SQL (ms resolution): when a row changed
 * here, so that a listing begun before does not undo it */
#define NOW_NS "CAST((julianday('now') - 2440587.5) * 86400000000000 AS INTEGER)"

static const char *const sql[ST_COUNT] = {
    [ST_NODE_GET] = "SELECT " NODE_COLS " FROM nodes WHERE ino = ?1",
    [ST_NODE_LOOKUP] = "SELECT " NODE_COLS " FROM nodes WHERE parent = ?1 AND name = ?2"
                       " AND present = 1",
    [ST_NODE_PUT] =
        "INSERT INTO nodes(parent, name, kind, size, etag, mtime_ns, mode, uid, gid, meta,"
        " fetched_ns, present) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1)"
        " ON CONFLICT(parent, name) DO UPDATE SET"
        " size = excluded.size, etag = excluded.etag, fetched_ns = excluded.fetched_ns,"
        " present = 1,"
        /* KEEP: a listing (no metadata) of the same version keeps what a HEAD
         * learnt, the kind included (LIST cannot tell a symlink) */
        " kind = CASE WHEN " KEEP " THEN nodes.kind ELSE excluded.kind END,"
        " mtime_ns = CASE WHEN " KEEP " THEN nodes.mtime_ns ELSE excluded.mtime_ns END,"
        " mode = CASE WHEN " KEEP " THEN nodes.mode ELSE excluded.mode END,"
        " uid = CASE WHEN " KEEP " THEN nodes.uid ELSE excluded.uid END,"
        " gid = CASE WHEN " KEEP " THEN nodes.gid ELSE excluded.gid END,"
        " meta = CASE WHEN " KEEP " THEN nodes.meta ELSE excluded.meta END"
        /* nor does a view older than what the row holds (a listing that
         * began before an upload finished or a rename moved the row) */
        " WHERE nodes.local = 0 AND nodes.fetched_ns <= excluded.fetched_ns"
        " RETURNING ino, mtime_ns, mode, uid, gid, meta, kind, ctime_ns, atime_ns",
    [ST_NODE_GONE] = "UPDATE nodes SET present = 0 WHERE parent = ?1 AND name = ?2"
                     " AND local = 0",
    [ST_CHILDREN] = "SELECT " NODE_COLS " FROM nodes WHERE parent = ?1 AND present = 1"
                    " ORDER BY name",
    [ST_CHILDREN_ABSENT] = "UPDATE nodes SET present = 0 WHERE parent = ?1 AND local = 0"
                           " AND fetched_ns <= ?2",
    [ST_NODE_UPDATE] = "UPDATE nodes SET kind = ?2, size = ?3, etag = ?4, mtime_ns = ?5,"
                       " mode = ?6, uid = ?7, gid = ?8, meta = ?9, fetched_ns = ?10,"
                       " local = ?11, ctime_ns = ?12, atime_ns = ?13, present = 1 WHERE ino = ?1",
    [ST_NODE_DROP_AT] = "UPDATE nodes SET " DETACH " WHERE parent = ?1 AND name = ?2 AND ino != ?3",
    [ST_NODE_MOVE] = "UPDATE nodes SET parent = ?2, name = ?3, present = 1,"
                     " fetched_ns = " NOW_NS ", ctime_ns = " NOW_NS " WHERE ino = ?1",
    [ST_NODE_REMOVE] = "UPDATE nodes SET present = 0, local = 0, fetched_ns = " NOW_NS
                       " WHERE ino = ?1",
    [ST_NODE_INSERT] = "INSERT INTO nodes(parent, name, kind, size, etag, mtime_ns, mode, uid,"
                       " gid, meta, fetched_ns, local, ctime_ns, atime_ns, present) VALUES (?1,"
                       " ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1) RETURNING ino",
    [ST_NODE_DROP_NAME] = "UPDATE nodes SET " DETACH " WHERE parent = ?1 AND name = ?2",
    /* what a HEAD said of the version the row still holds */
    [ST_NODE_LEARNT] = "UPDATE nodes SET kind = ?2, mtime_ns = ?3, mode = ?4, uid = ?5, gid = ?6,"
                       " meta = ?7 WHERE ino = ?1 AND etag = ?8 AND local = 0",
    [ST_LISTING_GET] = "SELECT listed_ns FROM listings WHERE ino = ?1",
    [ST_LISTING_SET] = "INSERT OR REPLACE INTO listings(ino, listed_ns) VALUES (?1, ?2)",
    [ST_LISTING_DEL] = "DELETE FROM listings WHERE ino = ?1",
    [ST_BLOCK_GET] = "SELECT len, used_ns FROM blocks WHERE ino = ?1 AND etag = ?2 AND idx = ?3",
    [ST_BLOCK_TOUCH] = "UPDATE blocks SET used_ns = ?4 WHERE ino = ?1 AND etag = ?2 AND idx = ?3",
    [ST_BLOCK_PUT] = "INSERT OR REPLACE INTO blocks(ino, etag, idx, len, used_ns)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_BLOCK_DEL] = "DELETE FROM blocks WHERE ino = ?1 AND etag = ?2 AND idx = ?3",
    [ST_BLOCK_LRU] = "SELECT ino, etag, idx, len FROM blocks ORDER BY used_ns LIMIT 64",
    [ST_BLOCK_OF_INO] = "SELECT etag, idx, len FROM blocks WHERE ino = ?1",
    [ST_XATTR_GET] = "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
    [ST_XATTR_SET] = "INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3)",
    [ST_XATTR_DEL] = "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
    [ST_XATTR_LIST] = "SELECT name, value FROM xattrs WHERE ino = ?1 ORDER BY name",
    [ST_XATTR_CLEAR] = "DELETE FROM xattrs WHERE ino = ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

int store_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return -EACCES;
    case SQLITE_CANTOPEN: return -ENOENT;
    default: return -EIO;
    }
}

int store_exec(sqlite3_stmt *st)
{
    int rc;

    if (!st)
        return -EIO;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_errno(rc);
}

int store_exec_args(struct store_conn *c, enum stmt_id id, const char *fmt, ...)
{
    sqlite3_stmt *st = store_stmt(c, id);
    va_list ap;
    int i = 1;

    if (!st)
        return -EIO;
    va_start(ap, fmt);
    for (; *fmt; fmt++, i++) {
        if (*fmt == 'i')
            sqlite3_bind_int64(st, i, (sqlite3_int64)va_arg(ap, int64_t));
        else
            sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
    }
    va_end(ap);
    return store_exec(st);
}

int store_begin(struct store_conn *c)
{
    return c ? store_exec(store_stmt(c, ST_BEGIN)) : -EIO;
}

int store_end(struct store_conn *c, int r)
{
    if (r == 0)
        r = store_exec(store_stmt(c, ST_COMMIT));
    if (r < 0)
        (void)store_exec(store_stmt(c, ST_ROLLBACK));
    return r;
}

static void conn_free(struct store_conn *c)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

/* Another connection holds the write lock: wait for it in short steps
 * (20 us doubling to 1 ms), for up to 10 s in all. SQLite's own busy
 * timeout sleeps 1, 2, 5, 10 ... ms, and writers of this process meet
 * each other often (a close journals while an upload finishes): in cp -r
 * of small files that was five sleeps per file. */
static int busy_wait(void *arg, int count)
{
    int64_t *waited = arg, us = count < 6 ? 20LL << count : 1000;

    if (count == 0)
        *waited = 0;
    if (*waited > 10 * 1000000)
        return 0;
    bfs_sleep_us(us);
    *waited += us;
    return 1;
}

int store_busy_handler(sqlite3 *db, int64_t *waited)
{
    return sqlite3_busy_handler(db, busy_wait, waited) == SQLITE_OK ? 0 : -EIO;
}

static struct store_conn *conn_open(struct bfs_store *s)
{
    struct store_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (sqlite3_open_v2(s->db_path, &c->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        conn_free(c);
        return NULL;
    }
    store_busy_handler(c->db, &c->busy_waited);
    sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;", NULL, NULL,
                 NULL);
    return c;
}

/* pthread key destructor: a thread ended; keep its connection for another
 * (FUSE starts and ends worker threads as load changes). */
static void conn_release(void *p)
{
    struct store_conn *c = p;

    pthread_mutex_lock(&c->owner->lock);
    c->next_idle = c->owner->idle;
    c->owner->idle = c;
    pthread_mutex_unlock(&c->owner->lock);
}

struct store_conn *store_conn(struct bfs_store *s)
{
    struct store_conn *c = pthread_getspecific(s->key);

    if (c)
        return c;
    pthread_mutex_lock(&s->lock);
    c = s->idle;
    if (c)
        s->idle = c->next_idle;
    pthread_mutex_unlock(&s->lock);
    if (!c) {
        c = conn_open(s);
        if (!c)
            return NULL;
        c->owner = s;
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        s->conns = c;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_setspecific(s->key, c);
    return c;
}

sqlite3_stmt *store_stmt(struct store_conn *c, enum stmt_id id)
{
    if (!c)
        return NULL;
    if (!c->st[id] && sqlite3_prepare_v3(c->db, sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &c->st[id], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(c->st[id]);
    sqlite3_clear_bindings(c->st[id]);
    return c->st[id];
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen, "cannot create cache directory %s: %s", path, strerror(e));
        return -e;
    }
    if (chmod(path, 0700) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot set mode 0700 on %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

/* mkdir -p for the cache directory itself (parents get 0755, like mkdir -p). */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char *p = strdup(dir);
    int r = 0;

    if (!p)
        return -ENOMEM;
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            r = -errno;
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            break;
        }
        *q = '/';
    }
    free(p);
    return r < 0 ? r : make_dir(dir, err, errlen);
}

static int has_column(sqlite3 *db, const char *table, const char *column)
{
    char q[128];
    sqlite3_stmt *st;
    int found = 0;

    snprintf(q, sizeof(q), "PRAGMA table_info(%s)", table);
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (!found && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);

        found = name && strcmp((const char *)name, column) == 0;
    }
    sqlite3_finalize(st);
    return found;
}

/* An older version's tables get the columns added since. */
static int add_missing(sqlite3 *db, char **msg)
{
    int rc = SQLITE_OK;

    for (size_t i = 0; i < sizeof(added) / sizeof(added[0]) && rc == SQLITE_OK; i++) {
        char q[256];

        if (has_column(db, added[i].table, added[i].column))
            continue;
        snprintf(q, sizeof(q), "ALTER TABLE %s ADD COLUMN %s %s;", added[i].table,
                 added[i].column, added[i].decl);
        rc = sqlite3_exec(db, q, NULL, NULL, msg);
    }
    return rc;
}

static int init_schema(struct bfs_store *s, char *err, size_t errlen)
{
    struct store_conn *c = store_conn(s);
    sqlite3_stmt *st;
    char *msg = NULL;
    int version = 0, rc;

    if (!c) {
        snprintf(err, errlen, "cannot open %s", s->db_path);
        return -EIO;
    }
    chmod(s->db_path, 0600);
    rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL;", NULL, NULL, &msg);
    if (rc == SQLITE_OK && sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) ==
                               SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK && version > SCHEMA_VERSION) {
        snprintf(err, errlen, "%s was made by a newer bucketfs (schema %d); use another "
                 "cache_dir", s->db_path, version);
        return -EPROTO;
    }
    if (rc == SQLITE_OK && version == 1)
        rc = sqlite3_exec(c->db, upgrade_v1, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, schema, NULL, NULL, &msg);
    if (rc == SQLITE_OK && version >= 1 && version < SCHEMA_VERSION)
        rc = add_missing(c->db, &msg); /* every table exists now */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, "PRAGMA user_version=" STR(SCHEMA_VERSION) ";", NULL,
                          NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", s->db_path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return store_errno(rc) ? store_errno(rc) : -EIO;
    }
    return 0;
}

int bfs_store_open(const char *dir, uint64_t limit, struct bfs_store **ret, char *err,
                   size_t errlen)
{
    struct bfs_store *s = calloc(1, sizeof(*s));
    struct bfs_buf b;
    int r;

    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->evict_lock, NULL);
    if (pthread_key_create(&s->key, conn_release) != 0) {
        free(s);
        return -ENOMEM;
    }
    s->limit = limit;
    s->dir = strdup(dir);
    bfs_buf_init(&b, 4096);
    r = bfs_buf_addf(&b, "%s/meta.db", dir);
    s->db_path = r == 0 ? bfs_buf_steal(&b) : NULL;
    if (!s->dir || !s->db_path) {
        r = -ENOMEM;
        goto fail;
    }
    r = make_dirs(dir, err, errlen);
    if (r == 0)
        r = init_schema(s, err, errlen);
    if (r == 0) {
        r = store_journal_open(s);
        if (r < 0)
            snprintf(err, errlen, "cannot open the upload journal in %s: %s", dir, strerror(-r));
    }
    if (r == 0) {
        r = store_blocks_init(s);
        if (r < 0)
            snprintf(err, errlen, "cannot prepare the block cache in %s: %s", dir,
                     strerror(-r));
    }
    if (r < 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    bfs_store_close(s);
    return r;
}

void bfs_store_close(struct bfs_store *s)
{
    struct store_conn *c, *next;

    if (!s)
        return;
    /* every other thread using the store has ended by now */
    pthread_setspecific(s->key, NULL);
    store_journal_close(s);
    for (c = s->conns; c; c = next) {
        next = c->next;
        conn_free(c);
    }
    pthread_key_delete(s->key);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->evict_lock);
    free(s->dir);
    free(s->db_path);
    free(s);
}

void bfs_store_stats(struct bfs_store *s, struct bfs_store_stats *ret)
{
    ret->cache_bytes = atomic_load(&s->cache_bytes);
    ret->cache_limit = s->limit;
    ret->blocks = atomic_load(&s->blocks);
    ret->hits = atomic_load(&s->hits);
    ret->misses = atomic_load(&s->misses);
    ret->evictions = atomic_load(&s->evictions);
    ret->write_failures = atomic_load(&s->write_failures);
}
