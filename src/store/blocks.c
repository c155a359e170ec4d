/* SPDX-License-Identifier: MIT */
/*
 * blocks.c: the block cache: payload files under DIR/blocks, the index in
 * the blocks table, and eviction of the least recently used.
 *
 * NOTES ON THE DESIGN
 * 1. A block file is written whole to a temporary name and renamed into
 *    place, then indexed. A row therefore always names a complete file;
 *    a file without a row (crash between the two) is an orphan, removed
 *    when the cache directory is found unclean at open.
 * 2. Payloads live in files, not SQLite blobs: with 1 MiB blocks, files
 *    read faster (SQLite's own measurement puts the cross-over near
 *    100 KB), and reads can go straight from the file.
 * 3. used_ns is refreshed at most once per BFS_STORE_TOUCH_NS (10 s) per
 *    block, so reading a cached block rarely writes to the database.
 * 4. Only clean data is here (write staging is elsewhere), so eviction may
 *    drop any block. The size is kept under the limit with some slack
 *    (evict down to 90%, BFS_STORE_LOW_WATER) so that eviction runs in
 *    batches.
 * 5. A spare block (fetched in the background, nobody asked for it yet)
 *    takes only room free below the low-water mark: it never makes the
 *    cache evict, nor fills it so far that the next reader's block would,
 *    so it cannot push out what readers used.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "store-int.h"

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void block_path(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                       char *out, size_t size)
{
    snprintf(out, size, "%s/blocks/%02x/%llu-%016llx-%llu", s->dir, (unsigned)(ino & 0xff),
             (unsigned long long)ino, (unsigned long long)fnv1a(etag),
             (unsigned long long)idx);
}

static void bind_key(sqlite3_stmt *st, uint64_t ino, const char *etag, uint64_t idx)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_text(st, 2, etag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)idx);
}

/* Looks a block up; returns its length or -ENOENT, refreshing used_ns. */
static int64_t find(struct bfs_store *s, struct store_conn *c, uint64_t ino, const char *etag,
                    uint64_t idx)
{
    sqlite3_stmt *st = store_stmt(c, ST_BLOCK_GET);
    int64_t len = -ENOENT, used = 0, now;
    int rc;

    if (!st)
        return -EIO;
    bind_key(st, ino, etag, idx);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        len = sqlite3_column_int64(st, 0);
        used = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (len < 0)
        return rc == SQLITE_DONE ? -ENOENT : store_errno(rc);
    now = bfs_now_ns();
    if (now - used > BFS_STORE_TOUCH_NS && (st = store_stmt(c, ST_BLOCK_TOUCH))) {
        bind_key(st, ino, etag, idx);
        sqlite3_bind_int64(st, 4, now);
        (void)store_exec(st);
    }
    (void)s;
    return len;
}

static void forget(struct bfs_store *s, struct store_conn *c, uint64_t ino, const char *etag,
                   uint64_t idx, int64_t len)
{
    sqlite3_stmt *st = store_stmt(c, ST_BLOCK_DEL);
    char path[4096];

    block_path(s, ino, etag, idx, path, sizeof(path));
    (void)unlink(path);
    if (st) {
        bind_key(st, ino, etag, idx);
        if (store_exec(st) == 0 && sqlite3_changes(c->db) > 0 && len >= 0) {
            atomic_fetch_sub(&s->cache_bytes, (uint64_t)len);
            atomic_fetch_sub(&s->blocks, 1);
        }
    }
}

int bfs_store_block_has(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx)
{
    struct store_conn *c = store_conn(s);

    return c && find(s, c, ino, etag, idx) >= 0;
}

int bfs_store_block_open(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                         int *ret_fd, size_t *ret_len)
{
    struct store_conn *c = store_conn(s);
    char path[4096];
    int64_t blen;
    int fd;

    if (!c)
        return -EIO;
    blen = find(s, c, ino, etag, idx);
    if (blen < 0) {
        atomic_fetch_add(&s->misses, 1);
        return (int)blen;
    }
    block_path(s, ino, etag, idx, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        forget(s, c, ino, etag, idx, blen); /* the file went away: drop the row */
        atomic_fetch_add(&s->misses, 1);
        return -ENOENT;
    }
    atomic_fetch_add(&s->hits, 1);
    *ret_fd = fd;
    *ret_len = (size_t)blen;
    return 0;
}

ssize_t bfs_store_block_read(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                             uint32_t off, void *buf, size_t len)
{
    size_t blen;
    ssize_t got;
    int fd, r = bfs_store_block_open(s, ino, etag, idx, &fd, &blen);

    if (r < 0)
        return r;
    if (off >= blen) {
        close(fd);
        return 0;
    }
    if (len > blen - off)
        len = blen - off;
    do
        got = pread(fd, buf, len, off);
    while (got < 0 && errno == EINTR);
    close(fd);
    if (got != (ssize_t)len) {
        bfs_store_block_bad(s, ino, etag, idx); /* short or broken: fetch it again */
        return -ENOENT;
    }
    return got;
}

void bfs_store_block_hit(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                         int touch)
{
    struct store_conn *c = touch ? store_conn(s) : NULL;

    atomic_fetch_add(&s->hits, 1);
    if (c)
        (void)find(s, c, ino, etag, idx);
}

void bfs_store_block_bad(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx)
{
    struct store_conn *c = store_conn(s);
    int64_t blen;

    if (!c)
        return;
    blen = find(s, c, ino, etag, idx);
    if (blen >= 0)
        forget(s, c, ino, etag, idx, blen);
    atomic_fetch_sub(&s->hits, 1); /* counted as a hit when it was opened */
    atomic_fetch_add(&s->misses, 1);
}

/* Drops least recently used blocks until the cache is under 90% of its
 * limit. One thread evicts at a time; a writer that finds the cache over
 * its limit waits for the evictor rather than adding to the excess. */
static void evict_to(struct bfs_store *s, struct store_conn *c, uint64_t target)
{
    uint64_t before = UINT64_MAX;

    pthread_mutex_lock(&s->evict_lock);
    /* a pass that frees nothing ends it: the index cannot be written (a
     * full disk fails the DELETEs), and the same rows would come back */
    while (atomic_load(&s->cache_bytes) > target && atomic_load(&s->cache_bytes) < before) {
        before = atomic_load(&s->cache_bytes);
        struct { uint64_t ino, idx; int64_t len; char etag[80]; } batch[64];
        sqlite3_stmt *st = store_stmt(c, ST_BLOCK_LRU);
        int n = 0;

        if (!st)
            break;
        while (n < 64 && sqlite3_step(st) == SQLITE_ROW) {
            const unsigned char *e = sqlite3_column_text(st, 1);

            batch[n].ino = (uint64_t)sqlite3_column_int64(st, 0);
            snprintf(batch[n].etag, sizeof(batch[n].etag), "%s", e ? (const char *)e : "");
            batch[n].idx = (uint64_t)sqlite3_column_int64(st, 2);
            batch[n].len = sqlite3_column_int64(st, 3);
            n++;
        }
        sqlite3_reset(st);
        if (n == 0)
            break; /* what remains is reserved by writers in flight */
        /* no further than the target: a batch can be the whole of a small
         * cache, read-ahead blocks not yet read included */
        for (int i = 0; i < n && atomic_load(&s->cache_bytes) > target; i++) {
            forget(s, c, batch[i].ino, batch[i].etag, batch[i].idx, batch[i].len);
            atomic_fetch_add(&s->evictions, 1);
        }
    }
    pthread_mutex_unlock(&s->evict_lock);
}

static void evict(struct bfs_store *s, struct store_conn *c)
{
    evict_to(s, c, BFS_STORE_LOW_WATER(s->limit));
}

int bfs_store_spare_room(struct bfs_store *s, uint64_t len)
{
    return atomic_load(&s->cache_bytes) + len <= BFS_STORE_LOW_WATER(s->limit);
}

/* Reserves len bytes under the limit before a block is written, so that
 * concurrent writers (the read-ahead workers) cannot all pass the check
 * and overshoot the limit together; evicts to make room, except for a
 * spare block (note 5). */
static int reserve(struct bfs_store *s, struct store_conn *c, size_t len, int spare)
{
    uint64_t cap = spare ? BFS_STORE_LOW_WATER(s->limit) : s->limit;

    if (atomic_fetch_add(&s->cache_bytes, len) + len <= cap)
        return 0;
    if (!spare) {
        evict(s, c);
        if (atomic_load(&s->cache_bytes) <= s->limit)
            return 0;
    }
    atomic_fetch_sub(&s->cache_bytes, len);
    return -ENOBUFS; /* all of it is in flight, or no spare room: skip caching this one */
}

void bfs_store_shrink(struct bfs_store *s, uint64_t target)
{
    struct store_conn *c = store_conn(s);

    if (c)
        evict_to(s, c, target);
}

int store_write_close(int fd, const void *data, size_t len)
{
    const char *p = data;
    int r = 0;

    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r = w < 0 ? -errno : -ENOSPC;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}

static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    int fd, r;

    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)gettid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    r = store_write_close(fd, data, len);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        (void)unlink(tmp);
    return r;
}

/* Caches a block whose bytes are data, or the file at from (renamed into
 * place): reserves its bytes under the limit, makes the file, indexes it.
 * spare: a background block (note 5). */
static int place(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                 const void *data, const char *from, size_t len, int spare)
{
    struct store_conn *c = store_conn(s);
    sqlite3_stmt *st;
    char path[4096];
    int r;

    if (!c)
        return -EIO;
    if (len > s->limit / 4)
        return -EFBIG; /* a cache this small would only thrash */
    if (find(s, c, ino, etag, idx) >= 0)
        return 0; /* another reader cached it first */
    r = reserve(s, c, len, spare);
    if (r < 0)
        return r;
    block_path(s, ino, etag, idx, path, sizeof(path));
    if (from) {
        r = rename(from, path) < 0 ? -errno : 0;
    } else {
        r = write_file(path, data, len);
        if ((r == -ENOSPC || r == -EDQUOT) && !spare) {
            evict(s, c); /* the disk is fuller than our limit thinks: make room, try again */
            r = write_file(path, data, len);
        }
    }
    st = r == 0 ? store_stmt(c, ST_BLOCK_PUT) : NULL;
    if (r == 0 && !st)
        r = -EIO;
    if (r == 0) {
        bind_key(st, ino, etag, idx);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)len);
        sqlite3_bind_int64(st, 5, bfs_now_ns());
        r = store_exec(st);
        if (r < 0)
            (void)unlink(path);
    }
    if (r < 0) {
        atomic_fetch_sub(&s->cache_bytes, len);
        atomic_fetch_add(&s->write_failures, 1);
        return r;
    }
    atomic_fetch_add(&s->blocks, 1);
    return 0;
}

int bfs_store_block_put(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                        const void *data, size_t len)
{
    return place(s, ino, etag, idx, data, NULL, len, 0);
}

int bfs_store_block_put_spare(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                              const void *data, size_t len)
{
    return place(s, ino, etag, idx, data, NULL, len, 1);
}

int bfs_store_block_adopt(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                          const char *from, size_t len)
{
    return place(s, ino, etag, idx, NULL, from, len, 0);
}

int bfs_store_blocks_drop(struct bfs_store *s, uint64_t ino, const char *keep_etag)
{
    struct store_conn *c = store_conn(s);
    sqlite3_stmt *st = store_stmt(c, ST_BLOCK_OF_INO);
    struct { uint64_t idx; int64_t len; char etag[80]; } *v = NULL, *nv;
    size_t n = 0, cap = 0;
    int r = 0;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *e = sqlite3_column_text(st, 0);

        if (keep_etag && e && strcmp((const char *)e, keep_etag) == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
        }
        snprintf(v[n].etag, sizeof(v[n].etag), "%s", e ? (const char *)e : "");
        v[n].idx = (uint64_t)sqlite3_column_int64(st, 1);
        v[n].len = sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++)
        forget(s, c, ino, v[i].etag, v[i].idx, v[i].len);
    free(v);
    return r;
}

/* Removes every file under blocks/ that the index does not name (left by
 * a crash between writing and indexing), and index rows without files. */
static void sweep(struct bfs_store *s, struct store_conn *c)
{
    char path[4096];

    sqlite3_exec(c->db, "DELETE FROM blocks WHERE len < 0", NULL, NULL, NULL);
    for (int d = 0; d < 256; d++) {
        DIR *dir;
        struct dirent *e;

        snprintf(path, sizeof(path), "%s/blocks/%02x", s->dir, d);
        dir = opendir(path);
        if (!dir)
            continue;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.')
                continue;
            if (strstr(e->d_name, ".tmp")) {
                char full[4400];
                snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
                (void)unlink(full);
            }
        }
        closedir(dir);
    }
}

int store_blocks_init(struct bfs_store *s)
{
    struct store_conn *c = store_conn(s);
    sqlite3_stmt *st;
    char path[4096];

    if (!c)
        return -EIO;
    snprintf(path, sizeof(path), "%s/blocks", s->dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    for (int d = 0; d < 256; d++) {
        snprintf(path, sizeof(path), "%s/blocks/%02x", s->dir, d);
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return -errno;
    }
    sweep(s, c);
    if (sqlite3_prepare_v2(c->db, "SELECT count(*), coalesce(sum(len), 0) FROM blocks", -1, &st,
                           NULL) != SQLITE_OK)
        return -EIO;
    if (sqlite3_step(st) == SQLITE_ROW) {
        atomic_store(&s->blocks, (uint64_t)sqlite3_column_int64(st, 0));
        atomic_store(&s->cache_bytes, (uint64_t)sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    if (atomic_load(&s->cache_bytes) > s->limit)
        evict(s, c); /* the limit was lowered since last time */
    return 0;
}
