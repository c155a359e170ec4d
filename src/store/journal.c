/* SPDX-License-Identifier: MIT */
/*
 * journal.c: the upload journal: the uploads table of meta.db, written
 * through a connection of its own with synchronous=FULL, so that a row
 * committed before close() returned survives a crash and a power loss
 * (the WAL is synced at each of its commits, which also covers what other
 * connections committed before).
 *
 * The staging files the rows point at live in DIR/staging/INO-GEN; they
 * hold dirty data and are never evicted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bucketfs/util.h"
#include "store-int.h"

enum jstmt { J_PUT, J_GET, J_FINISH, J_DELETE, J_FAILED, J_SET_ID, J_REKEY, J_ALL, J_COUNT };

static const char *const jsql[J_COUNT] = {
    [J_PUT] = "INSERT OR REPLACE INTO uploads(ino, map, key, gen, size, mtime_ns, mode, uid, gid,"
              " state, upload_id, attempts, error, next_ns)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [J_GET] = "SELECT ino, map, key, gen, size, mtime_ns, mode, uid, gid, state, upload_id,"
              " attempts, error, next_ns FROM uploads WHERE ino = ?1",
    [J_FINISH] = "DELETE FROM uploads WHERE ino = ?1 AND gen = ?2",
    [J_DELETE] = "DELETE FROM uploads WHERE ino = ?1",
    [J_FAILED] = "UPDATE uploads SET state = ?3, error = ?4, next_ns = ?5,"
                 " attempts = attempts + 1 WHERE ino = ?1 AND gen = ?2",
    [J_SET_ID] = "UPDATE uploads SET upload_id = ?2 WHERE ino = ?1",
    [J_REKEY] = "UPDATE uploads SET map = ?2, key = ?3 WHERE ino = ?1",
    [J_ALL] = "SELECT ino, map, key, gen, size, mtime_ns, mode, uid, gid, state, upload_id,"
              " attempts, error, next_ns FROM uploads ORDER BY ino",
};

struct journal {
    pthread_mutex_t lock; /* one writer at a time on db */
    sqlite3 *db;
    sqlite3_stmt *st[J_COUNT];
    int64_t busy_waited;
};

int store_journal_open(struct bfs_store *s)
{
    struct journal *j = calloc(1, sizeof(*j));
    char path[4096];

    if (!j)
        return -ENOMEM;
    pthread_mutex_init(&j->lock, NULL);
    if (sqlite3_open_v2(s->db_path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sqlite3_close(j->db);
        free(j);
        return -EIO;
    }
    store_busy_handler(j->db, &j->busy_waited);
    sqlite3_exec(j->db, "PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    s->journal = j;
    snprintf(path, sizeof(path), "%s/staging", s->dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

void store_journal_close(struct bfs_store *s)
{
    struct journal *j = s->journal;

    if (!j)
        return;
    for (int i = 0; i < J_COUNT; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close(j->db);
    pthread_mutex_destroy(&j->lock);
    free(j);
    s->journal = NULL;
}

/* Locks the journal and returns a reset statement (NULL: unlocked, error). */
static sqlite3_stmt *jstmt(struct bfs_store *s, enum jstmt id)
{
    struct journal *j = s->journal;

    pthread_mutex_lock(&j->lock);
    if (!j->st[id] && sqlite3_prepare_v3(j->db, jsql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &j->st[id], NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&j->lock);
        return NULL;
    }
    sqlite3_reset(j->st[id]);
    sqlite3_clear_bindings(j->st[id]);
    return j->st[id];
}

static int jexec(struct bfs_store *s, sqlite3_stmt *st, int *ret_changes)
{
    int r = store_exec(st);

    if (ret_changes)
        *ret_changes = sqlite3_changes(s->journal->db);
    pthread_mutex_unlock(&s->journal->lock);
    return r;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static int row_to_upload(sqlite3_stmt *st, struct bfs_upload *u)
{
    memset(u, 0, sizeof(*u));
    u->ino = (uint64_t)sqlite3_column_int64(st, 0);
    u->map = col_dup(st, 1);
    u->key = col_dup(st, 2);
    u->gen = (uint64_t)sqlite3_column_int64(st, 3);
    u->size = (uint64_t)sqlite3_column_int64(st, 4);
    u->mtime_ns = sqlite3_column_int64(st, 5);
    u->mode = (uint32_t)sqlite3_column_int64(st, 6);
    u->uid = (uint32_t)sqlite3_column_int64(st, 7);
    u->gid = (uint32_t)sqlite3_column_int64(st, 8);
    u->state = sqlite3_column_int(st, 9);
    u->upload_id = col_dup(st, 10);
    u->attempts = sqlite3_column_int(st, 11);
    u->error = col_dup(st, 12);
    u->next_ns = sqlite3_column_int64(st, 13);
    if (!u->map || !u->key) {
        bfs_upload_done(u);
        return -ENOMEM;
    }
    return 0;
}

void bfs_upload_done(struct bfs_upload *u)
{
    free(u->map);
    free(u->key);
    free(u->upload_id);
    free(u->error);
    memset(u, 0, sizeof(*u));
}

int bfs_store_upload_put(struct bfs_store *s, const struct bfs_upload *u)
{
    sqlite3_stmt *st = jstmt(s, J_PUT);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)u->ino);
    sqlite3_bind_text(st, 2, u->map, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, u->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)u->gen);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)u->size);
    sqlite3_bind_int64(st, 6, u->mtime_ns);
    sqlite3_bind_int64(st, 7, u->mode);
    sqlite3_bind_int64(st, 8, u->uid);
    sqlite3_bind_int64(st, 9, u->gid);
    sqlite3_bind_int(st, 10, u->state);
    if (u->upload_id)
        sqlite3_bind_text(st, 11, u->upload_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 12, u->attempts);
    if (u->error)
        sqlite3_bind_text(st, 13, u->error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 14, u->next_ns);
    return jexec(s, st, NULL);
}

int bfs_store_upload_get(struct bfs_store *s, uint64_t ino, struct bfs_upload *ret)
{
    sqlite3_stmt *st = jstmt(s, J_GET);
    int rc, r;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    rc = sqlite3_step(st);
    r = rc == SQLITE_ROW ? row_to_upload(st, ret) : rc == SQLITE_DONE ? -ENOENT : -EIO;
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->journal->lock);
    return r;
}

int bfs_store_upload_finish(struct bfs_store *s, uint64_t ino, uint64_t gen)
{
    sqlite3_stmt *st = jstmt(s, J_FINISH);
    int changes = 0, r;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)gen);
    r = jexec(s, st, &changes);
    return r < 0 ? r : changes > 0;
}

int bfs_store_upload_delete(struct bfs_store *s, uint64_t ino)
{
    sqlite3_stmt *st = jstmt(s, J_DELETE);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    return jexec(s, st, NULL);
}

int bfs_store_upload_failed(struct bfs_store *s, uint64_t ino, uint64_t gen, int permanent,
                            const char *error, int64_t next_ns)
{
    sqlite3_stmt *st = jstmt(s, J_FAILED);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)gen);
    sqlite3_bind_int(st, 3, permanent ? BFS_UPLOAD_FAILED : BFS_UPLOAD_PENDING);
    sqlite3_bind_text(st, 4, error ? error : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, next_ns);
    return jexec(s, st, NULL);
}

int bfs_store_upload_set_id(struct bfs_store *s, uint64_t ino, const char *upload_id)
{
    sqlite3_stmt *st = jstmt(s, J_SET_ID);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    if (upload_id)
        sqlite3_bind_text(st, 2, upload_id, -1, SQLITE_STATIC);
    return jexec(s, st, NULL);
}

int bfs_store_upload_rekey(struct bfs_store *s, uint64_t ino, const char *map, const char *key)
{
    sqlite3_stmt *st = jstmt(s, J_REKEY);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_text(st, 2, map, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    return jexec(s, st, NULL);
}

int bfs_store_uploads(struct bfs_store *s, int (*fn)(void *ctx, const struct bfs_upload *u),
                      void *ctx)
{
    struct bfs_upload *all = NULL, *na;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = jstmt(s, J_ALL);
    int rc, r = 0;

    if (!st)
        return -EIO;
    /* copy out first: fn may write to the journal */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && r == 0) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            na = realloc(all, cap * sizeof(*all));
            if (!na) {
                r = -ENOMEM;
                break;
            }
            all = na;
        }
        r = row_to_upload(st, &all[n]);
        if (r == 0)
            n++;
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->journal->lock);
    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = fn(ctx, &all[i]);
        bfs_upload_done(&all[i]);
    }
    free(all);
    return r;
}

void bfs_store_staging_path(struct bfs_store *s, uint64_t ino, uint64_t gen, char *out,
                            size_t size)
{
    snprintf(out, size, "%s/staging/%llu-%llu", s->dir, (unsigned long long)ino,
             (unsigned long long)gen);
}
