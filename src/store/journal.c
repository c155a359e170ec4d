/* SPDX-License-Identifier: MIT */
/*
 * journal.c: the upload journal: the uploads table of meta.db, written
 * through a connection of its own, so that a row committed before close()
 * returned survives a crash and a power loss.
 *
 * Durability is ours rather than SQLite's: the connection commits with
 * synchronous=NORMAL and then fdatasyncs the WAL through a descriptor of
 * its own, outside the journal's lock, so that threads committing at the
 * same time share one flush (group commit) instead of queueing behind one
 * flush each. That is what synchronous=FULL gives, one sync per commit,
 * minus the queue. (If the WAL cannot be opened, the connection falls back
 * to synchronous=FULL.) A sync of the WAL also covers what other
 * connections committed before it.
 *
 * The staging files the rows point at live in DIR/staging/INO-GEN; they
 * hold dirty data and are never evicted. A small file's bytes may ride in
 * the row's transaction instead (table staged): then the commit is the only
 * sync close() needs, and opening the journal rewrites such staging files
 * from their rows, whatever a crash left of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "store-int.h"

enum jstmt {
    J_PUT, J_GET, J_FINISH, J_DELETE, J_FAILED, J_SET_ID, J_REKEY, J_SET_BASE, J_ALL,
    J_STAGED_PUT, J_STAGED_DEL, J_STAGED_FINISH, J_STAGED_ALL, J_STAGED_ORPHANS,
    J_BEGIN, J_COMMIT, J_ROLLBACK, J_COUNT
};

static const char *const jsql[J_COUNT] = {
    [J_PUT] = "INSERT OR REPLACE INTO uploads(ino, map, key, gen, size, mtime_ns, mode, uid, gid,"
              " state, upload_id, attempts, error, next_ns, base_etag)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [J_GET] = "SELECT ino, map, key, gen, size, mtime_ns, mode, uid, gid, state, upload_id,"
              " attempts, error, next_ns, base_etag FROM uploads WHERE ino = ?1",
    [J_FINISH] = "DELETE FROM uploads WHERE ino = ?1 AND gen = ?2",
    [J_DELETE] = "DELETE FROM uploads WHERE ino = ?1",
    [J_FAILED] = "UPDATE uploads SET state = ?3, error = ?4, next_ns = ?5,"
                 " attempts = attempts + 1 WHERE ino = ?1 AND gen = ?2",
    [J_SET_ID] = "UPDATE uploads SET upload_id = ?2 WHERE ino = ?1",
    /* at another key, the upload replaces whatever is there (rename) */
    [J_REKEY] = "UPDATE uploads SET map = ?2, key = ?3, base_etag = ?4 WHERE ino = ?1",
    [J_SET_BASE] = "UPDATE uploads SET base_etag = ?3 WHERE ino = ?1 AND gen > ?2"
                   " AND base_etag IS NOT NULL",
    [J_ALL] = "SELECT ino, map, key, gen, size, mtime_ns, mode, uid, gid, state, upload_id,"
              " attempts, error, next_ns, base_etag FROM uploads ORDER BY ino",
    [J_STAGED_PUT] = "INSERT OR REPLACE INTO staged(ino, gen, data) VALUES (?1, ?2, ?3)",
    [J_STAGED_DEL] = "DELETE FROM staged WHERE ino = ?1",
    [J_STAGED_FINISH] = "DELETE FROM staged WHERE ino = ?1 AND gen = ?2",
    [J_STAGED_ALL] = "SELECT s.ino, s.gen, s.data FROM staged s JOIN uploads u"
                     " ON u.ino = s.ino AND u.gen = s.gen",
    [J_STAGED_ORPHANS] = "DELETE FROM staged WHERE NOT EXISTS (SELECT 1 FROM uploads u"
                         " WHERE u.ino = staged.ino AND u.gen = staged.gen)",
    [J_BEGIN] = "BEGIN IMMEDIATE",
    [J_COMMIT] = "COMMIT",
    [J_ROLLBACK] = "ROLLBACK",
};

struct journal {
    pthread_mutex_t lock; /* one writer at a time on db */
    sqlite3 *db;
    sqlite3_stmt *st[J_COUNT];
    int64_t busy_waited;
    int walfd;                 /* the WAL, for our own syncs; -1: synchronous=FULL */
    pthread_mutex_t sync_lock; /* guards written, synced, syncing */
    pthread_cond_t synced_cond;
    uint64_t written, synced;  /* commits made, commits known durable */
    int syncing;               /* a thread is in fdatasync */
};

static int restore_staged(struct bfs_store *s);

/* The WAL exists while a connection has the database open in WAL mode: it
 * stays the same file until the last connection closes. */
static void open_wal(struct bfs_store *s, struct journal *j)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s-wal", s->db_path);
    j->walfd = open(path, O_RDONLY | O_CLOEXEC);
    if (j->walfd < 0 ||
        sqlite3_exec(j->db, "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK) {
        if (j->walfd >= 0)
            close(j->walfd);
        j->walfd = -1;
        sqlite3_exec(j->db, "PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    }
}

int store_journal_open(struct bfs_store *s)
{
    struct journal *j = calloc(1, sizeof(*j));
    char path[4096];
    int r;

    if (!j)
        return -ENOMEM;
    j->walfd = -1;
    pthread_mutex_init(&j->lock, NULL);
    pthread_mutex_init(&j->sync_lock, NULL);
    pthread_cond_init(&j->synced_cond, NULL);
    s->journal = j;
    if (sqlite3_open_v2(s->db_path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return -EIO; /* store_journal_close frees j */
    store_busy_handler(j->db, &j->busy_waited);
    sqlite3_exec(j->db, "PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    snprintf(path, sizeof(path), "%s/staging", s->dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    r = restore_staged(s); /* reads: the WAL is open after it */
    if (r == 0)
        open_wal(s, j);
    return r;
}

void store_journal_close(struct bfs_store *s)
{
    struct journal *j = s->journal;

    if (!j)
        return;
    for (int i = 0; i < J_COUNT; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close(j->db);
    if (j->walfd >= 0)
        close(j->walfd);
    pthread_cond_destroy(&j->synced_cond);
    pthread_mutex_destroy(&j->sync_lock);
    pthread_mutex_destroy(&j->lock);
    free(j);
    s->journal = NULL;
}

/* A reset statement of the journal's connection; the caller holds j->lock. */
static sqlite3_stmt *jprep(struct journal *j, enum jstmt id)
{
    if (!j->st[id] && sqlite3_prepare_v3(j->db, jsql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &j->st[id], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(j->st[id]);
    sqlite3_clear_bindings(j->st[id]);
    return j->st[id];
}

/* Locks the journal and returns a reset statement (NULL: unlocked, error). */
static sqlite3_stmt *jstmt(struct bfs_store *s, enum jstmt id)
{
    struct journal *j = s->journal;
    sqlite3_stmt *st;

    pthread_mutex_lock(&j->lock);
    st = jprep(j, id);
    if (!st)
        pthread_mutex_unlock(&j->lock);
    return st;
}

/* Runs statement id with ino (and gen, when not 0) bound; under j->lock. */
static int jrun(struct journal *j, enum jstmt id, uint64_t ino, uint64_t gen, int *ret_changes)
{
    sqlite3_stmt *st = jprep(j, id);
    int r;

    if (!st)
        return -EIO;
    if (ino)
        sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    if (gen)
        sqlite3_bind_int64(st, 2, (sqlite3_int64)gen);
    r = store_exec(st);
    if (ret_changes)
        *ret_changes = sqlite3_changes(j->db);
    return r;
}

/* Ends a transaction begun with J_BEGIN: COMMIT when r is 0, else ROLLBACK. */
static int jend(struct journal *j, int r)
{
    if (r == 0)
        r = jrun(j, J_COMMIT, 0, 0, NULL);
    if (r < 0)
        (void)jrun(j, J_ROLLBACK, 0, 0, NULL);
    return r;
}

/* Counts a commit just made (under j->lock); returns its number for
 * journal_sync. With synchronous=FULL it is durable already. */
static uint64_t committed(struct journal *j)
{
    uint64_t seq;

    pthread_mutex_lock(&j->sync_lock);
    seq = ++j->written;
    if (j->walfd < 0)
        j->synced = seq;
    pthread_mutex_unlock(&j->sync_lock);
    return seq;
}

/* Returns once commit seq is on disk. One thread syncs at a time; those
 * that arrive meanwhile wait for it and, if their commit came after that
 * sync began, sync once more for all of them. */
static int journal_sync(struct journal *j, uint64_t seq)
{
    int r = 0;

    pthread_mutex_lock(&j->sync_lock);
    while (j->synced < seq && r == 0) {
        uint64_t upto = j->written;

        if (j->syncing) {
            pthread_cond_wait(&j->synced_cond, &j->sync_lock);
            continue;
        }
        j->syncing = 1;
        pthread_mutex_unlock(&j->sync_lock);
        r = fdatasync(j->walfd) < 0 ? -errno : 0;
        pthread_mutex_lock(&j->sync_lock);
        j->syncing = 0;
        if (r == 0 && upto > j->synced)
            j->synced = upto;
        pthread_cond_broadcast(&j->synced_cond);
    }
    pthread_mutex_unlock(&j->sync_lock);
    return r;
}

int bfs_store_journal_sync(struct bfs_store *s)
{
    struct journal *j = s->journal;
    uint64_t seq;

    pthread_mutex_lock(&j->sync_lock);
    seq = j->written;
    pthread_mutex_unlock(&j->sync_lock);
    return journal_sync(j, seq);
}

/* Ends the transaction of a write (COMMIT or ROLLBACK, as jend), counts it
 * when it changed rows, and unlocks the journal. Returns the commit's number
 * for journal_sync, 0 when there is nothing to wait for; *r its result. */
static uint64_t jend_write(struct journal *j, int *r, int changed)
{
    uint64_t seq = 0;

    *r = jend(j, *r);
    if (*r == 0 && changed)
        seq = committed(j);
    pthread_mutex_unlock(&j->lock);
    return seq;
}

/* Runs the bound statement st, unlocks the journal and waits until the
 * commit is on disk. */
static int jexec(struct bfs_store *s, sqlite3_stmt *st, int *ret_changes)
{
    struct journal *j = s->journal;
    int r = store_exec(st), changes = sqlite3_changes(j->db);
    uint64_t seq = 0;

    if (ret_changes)
        *ret_changes = changes;
    if (r == 0 && changes > 0) /* else nothing was written */
        seq = committed(j);
    pthread_mutex_unlock(&j->lock);
    return seq ? journal_sync(j, seq) : r;
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
    u->base_etag = col_dup(st, 14);
    if (!u->map || !u->key || (!u->base_etag && sqlite3_column_type(st, 14) != SQLITE_NULL)) {
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
    free(u->base_etag);
    memset(u, 0, sizeof(*u));
}

static int bind_row(sqlite3_stmt *st, const struct bfs_upload *u)
{
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
    if (u->base_etag)
        sqlite3_bind_text(st, 15, u->base_etag, -1, SQLITE_STATIC);
    return store_exec(st);
}

static int put_staged(struct journal *j, const struct bfs_upload *u, const void *data,
                      size_t len)
{
    sqlite3_stmt *st;

    if (!data)
        return jrun(j, J_STAGED_DEL, u->ino, 0, NULL);
    st = jprep(j, J_STAGED_PUT);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)u->ino);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)u->gen);
    /* "" for an empty file: a NULL pointer would bind NULL */
    sqlite3_bind_blob64(st, 3, len ? data : "", len, SQLITE_STATIC);
    return store_exec(st);
}

int bfs_store_upload_put(struct bfs_store *s, const struct bfs_upload *u, const void *data,
                         size_t len)
{
    struct journal *j = s->journal;
    sqlite3_stmt *st;
    uint64_t seq;
    int r;

    pthread_mutex_lock(&j->lock);
    r = jrun(j, J_BEGIN, 0, 0, NULL);
    if (r == 0)
        r = (st = jprep(j, J_PUT)) ? bind_row(st, u) : -EIO;
    if (r == 0)
        r = put_staged(j, u, data, len);
    seq = jend_write(j, &r, 1);
    return seq ? journal_sync(j, seq) : r;
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

/* Deletes ino's row (del_row) and its bytes (del_bytes) in one transaction,
 * both of gen when gen is not 0; *rows and *bytes: what each deleted. The
 * journal is unlocked on return; the result is the commit's number for
 * journal_sync, 0 when nothing was deleted (or on error, in *r). */
static uint64_t delete_row(struct journal *j, enum jstmt del_row, enum jstmt del_bytes,
                           uint64_t ino, uint64_t gen, int *rows, int *bytes, int *r)
{
    pthread_mutex_lock(&j->lock);
    *r = jrun(j, J_BEGIN, 0, 0, NULL);
    if (*r == 0)
        *r = jrun(j, del_row, ino, gen, rows);
    if (*r == 0)
        *r = jrun(j, del_bytes, ino, gen, bytes);
    return jend_write(j, r, *rows + *bytes > 0);
}

/* A finish of a row whose bytes were in the journal needs no sync of its
 * own: lost in a power cut, it brings back the row and the bytes with it,
 * and the file is sent again. The next sync (any commit that waits for
 * one, or bfs_store_journal_sync) makes it durable. Other rows wait: their
 * staging file is moved or removed once this returns. */
int bfs_store_upload_finish(struct bfs_store *s, uint64_t ino, uint64_t gen)
{
    int rows = 0, bytes = 0, r;
    uint64_t seq = delete_row(s->journal, J_FINISH, J_STAGED_FINISH, ino, gen, &rows, &bytes,
                              &r);

    if (seq && !bytes)
        r = journal_sync(s->journal, seq);
    return r < 0 ? r : rows > 0;
}

int bfs_store_upload_delete(struct bfs_store *s, uint64_t ino)
{
    int rows = 0, bytes = 0, r;
    uint64_t seq = delete_row(s->journal, J_DELETE, J_STAGED_DEL, ino, 0, &rows, &bytes, &r);

    return seq ? journal_sync(s->journal, seq) : r;
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

int bfs_store_upload_rekey(struct bfs_store *s, uint64_t ino, const char *map, const char *key,
                           const char *base_etag)
{
    sqlite3_stmt *st = jstmt(s, J_REKEY);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_text(st, 2, map, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    if (base_etag)
        sqlite3_bind_text(st, 4, base_etag, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    return jexec(s, st, NULL);
}

int bfs_store_upload_set_base(struct bfs_store *s, uint64_t ino, uint64_t after_gen,
                              const char *etag)
{
    sqlite3_stmt *st = jstmt(s, J_SET_BASE);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after_gen);
    sqlite3_bind_text(st, 3, etag, -1, SQLITE_STATIC);
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

/* Writes a staging file whole from bytes the journal holds. */
static int write_staging(struct bfs_store *s, uint64_t ino, uint64_t gen, const void *data,
                         size_t len)
{
    char path[4096];
    int fd;

    bfs_store_staging_path(s, ino, gen, path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    return store_write_close(fd, data, len);
}

/* Rewrites the staging file of every row whose bytes the journal holds,
 * and drops the bytes of rows that are gone. Runs before anything reads
 * the staging files. */
static int restore_staged(struct bfs_store *s)
{
    struct journal *j = s->journal;
    sqlite3_stmt *st;
    int rc = SQLITE_DONE, r = 0;

    pthread_mutex_lock(&j->lock);
    st = jprep(j, J_STAGED_ALL);
    if (!st)
        r = -EIO;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        r = write_staging(s, (uint64_t)sqlite3_column_int64(st, 0),
                          (uint64_t)sqlite3_column_int64(st, 1), sqlite3_column_blob(st, 2),
                          (size_t)sqlite3_column_bytes(st, 2));
    if (st && r == 0 && rc != SQLITE_DONE)
        r = store_errno(rc);
    if (st)
        sqlite3_reset(st);
    if (r == 0)
        r = jrun(j, J_STAGED_ORPHANS, 0, 0, NULL);
    pthread_mutex_unlock(&j->lock);
    return r;
}
