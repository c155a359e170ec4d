/* SPDX-License-Identifier: MIT */
/*
 * fetch.c: getting blocks from S3 into the block cache: the in-flight
 * table, the GET of one block, and read-ahead.
 *
 * A missing block is fetched with one ranged GET carrying If-Match with
 * the ETag the file was opened at (invariant 3), then cached. Two readers
 * of one missing block share one GET: the first registers it in
 * fs->inflight and the others wait for it there.
 *
 * Bytes are handed to waiting readers as they arrive (invariant 5): a
 * reader waits for the bytes it asked for, not for the whole block. The
 * first read of a handle has its fetch run by an idle worker while it
 * waits, so that it returns after the first piece of its block (time to
 * first byte); a later read that misses runs the GET itself and is
 * answered from inside it once its bytes arrived (struct inflight_early),
 * so that its caller goes on while the rest of the block comes; other
 * readers wait for blocks fetched by read-ahead or by another reader.
 *
 * Sequential reading (each read starting where the last ended), from the
 * second read on, starts read-ahead: the next read_ahead blocks are
 * fetched by the worker pool, several GETs in flight, so that by the time
 * the reader asks for them they are in the cache. Random reads fetch only
 * the blocks they touch, until they have covered a good share of the
 * object: then randfetch.c fetches the rest in the background, through
 * fs_inflight_fetch_spare (so that a reader of a block it fetches waits
 * for that GET instead of sending another).
 *
 * Memory: a fetch holds one block buffer until it is cached and its last
 * reader is done, so memory is bounded by (FUSE threads + workers) x block
 * size, whatever the file size.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

/* A fetch on its way: where the next piece goes. */
struct fetching {
    struct bfs_fs *fs;
    struct inflight *in;
    size_t pos;               /* bytes of this attempt so far */
};

/* A fetch handed to a worker (owns a reference to in and the key). */
struct fetch_job {
    struct bfs_fs *fs;
    struct target t;
    struct inflight *in;
};

struct ra_task {
    struct bfs_fs *fs;
    struct target t;
    uint64_t idx;
};

void fs_inflight_unref(struct bfs_fs *fs, struct inflight *in)
{
    int last;

    pthread_mutex_lock(&fs->lock);
    last = --in->refs == 0;
    pthread_mutex_unlock(&fs->lock);
    if (last) {
        pthread_cond_destroy(&in->cond);
        free(in->data);
        free(in);
    }
}

static void inflight_unlink(struct bfs_fs *fs, struct inflight *in)
{
    for (struct inflight **pp = &fs->inflight; *pp; pp = &(*pp)->next) {
        if (*pp == in) {
            *pp = in->next;
            return;
        }
    }
}

/* Makes data[0, have) visible to readers (invariant 5). */
static void publish(struct bfs_fs *fs, struct inflight *in, size_t have)
{
    pthread_mutex_lock(&fs->lock);
    in->have = have;
    /* a wake-up per piece (16 KiB from RGW) would cost a context switch
     * each: wake the waiters only once the nearest of them has its bytes */
    if (in->waiters && have >= in->wake_at) {
        in->wake_at = SIZE_MAX; /* the woken that still wait set it again */
        pthread_cond_broadcast(&in->cond);
    }
    pthread_mutex_unlock(&fs->lock);
}

/* GET sink: stores a piece. A retry starts again from byte 0 with the
 * same ETag, hence the same bytes: what was published is not rewritten. */
static int sink_write(void *ctx, const void *p, size_t n)
{
    struct fetching *fc = ctx;
    struct inflight *in = fc->in;
    size_t end = fc->pos + n;

    if (n > in->len - fc->pos)
        return -EOVERFLOW; /* more than the range: the object changed? */
    if (end > in->have) { /* only the fetcher writes have: read without the lock */
        size_t skip = in->have > fc->pos ? in->have - fc->pos : 0;

        memcpy(in->data + fc->pos + skip, (const char *)p + skip, n - skip);
        publish(fc->fs, in, end);
        if (in->early && end >= in->early->need) {
            struct inflight_early *e = in->early;

            in->early = NULL;
            e->fn(e, in->data); /* data[0, end) is final (invariant 5) */
            e->done = 1;
        }
    }
    fc->pos = end;
    return 0;
}

static int sink_reset(void *ctx)
{
    ((struct fetching *)ctx)->pos = 0;
    return 0;
}

/* The GET of one block into in->data, then into the cache. */
static int fetch(struct bfs_fs *fs, const struct target *t, struct inflight *in)
{
    uint64_t first = in->idx * fs->block;
    struct bfs_s3_get_params p = {.ranged = 1, .first = first, .last = first + in->len - 1};
    char real[BFS_S3_ETAG_MAX], vid[BFS_S3_VERSION_ID_MAX];
    struct fetching fc = {.fs = fs, .in = in};
    struct bfs_s3_sink sink = {.write = sink_write, .reset = sink_reset, .ctx = &fc};
    int64_t n;

    /* cached by someone whose fetch ended before ours was registered */
    if (bfs_store_block_read(fs->store, t->ino, t->etag, in->idx, 0, in->data, in->len) ==
        (ssize_t)in->len) {
        publish(fs, in, in->len);
        return 0;
    }
    atomic_fetch_add(&fs->ranged_gets, 1);
    fs_get_version(t->etag, &p, real, vid); /* the version an as_of file shows */
    n = bfs_s3_get_object(t->client, t->bucket, t->key, &p, &sink, NULL, NULL);
    if (n < 0)
        return (int)n;
    if ((size_t)n != in->len)
        return -EIO; /* the server sent less than the range: object changed? */
    if ((in->spare ? bfs_store_block_put_spare : bfs_store_block_put)(
            fs->store, t->ino, t->etag, in->idx, in->data, in->len) < 0)
        return 1; /* not cached (full): the caller keeps it for the readers that follow */
    return 0;
}

#define FAILED_KEEP_MS 2000

/* Keeps a fetched block the cache could not take in fs->inflight, done, so
 * that the kernel's next reads of it (a 1 MiB block comes in 128 KiB
 * reads) and read-ahead find it instead of fetching it again: a full
 * cache streams, one GET per block. The oldest kept block goes. Caller
 * holds fs->lock; returns a block whose last reference the caller drops. */
static struct inflight *keep_uncached(struct bfs_fs *fs, struct inflight *in)
{
    const size_t max = sizeof(fs->kept) / sizeof(fs->kept[0]);
    struct inflight *old = NULL;

    if (fs->nkept == max) {
        old = fs->kept[fs->kept_head];
        fs->kept_head = (fs->kept_head + 1) % max;
        fs->nkept--;
        inflight_unlink(fs, old);
        if (--old->refs > 0)
            old = NULL;
    }
    in->refs++; /* the FIFO's */
    fs->kept[(fs->kept_head + fs->nkept++) % max] = in;
    return old;
}

void fs_inflight_drop_kept(struct bfs_fs *fs)
{
    const size_t max = sizeof(fs->kept) / sizeof(fs->kept[0]);

    while (fs->nkept > 0) {
        struct inflight *in;

        pthread_mutex_lock(&fs->lock);
        in = fs->kept[fs->kept_head];
        fs->kept_head = (fs->kept_head + 1) % max;
        fs->nkept--;
        inflight_unlink(fs, in);
        pthread_mutex_unlock(&fs->lock);
        fs_inflight_unref(fs, in);
    }
}

/* Runs the fetch of a registered entry and tells its waiters; returns
 * fetch's result. */
static int run_fetch(struct bfs_fs *fs, const struct target *t, struct inflight *in)
{
    int err = fetch(fs, t, in);
    struct inflight *gone = NULL;

    pthread_mutex_lock(&fs->lock);
    in->err = err < 0 ? err : 0;
    in->done = 1;
    in->early = NULL; /* lived on the fetcher's stack */
    if (err < 0) /* the next reads of this block fail at once for a moment, so
                  * that one read call cannot wait for two GETs that time out */
        in->retry_ms = bfs_mono_ms() + FAILED_KEEP_MS;
    /* a spare block that found no room is not kept: it would push out the
     * blocks kept for a reader streaming through a full cache */
    if ((err == 1 && !in->spare) || err == -ETIMEDOUT)
        gone = keep_uncached(fs, in);
    else
        inflight_unlink(fs, in);
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&fs->lock);
    if (gone) {
        pthread_cond_destroy(&gone->cond);
        free(gone->data);
        free(gone);
    }
    return err;
}

static void job_run(void *arg)
{
    struct fetch_job *j = arg;

    run_fetch(j->fs, &j->t, j->in);
    fs_inflight_unref(j->fs, j->in);
    free(j->t.key);
    free(j);
}

/* Hands the fetch of in to an idle worker; -1 when none takes it. */
static int fetch_async(struct bfs_fs *fs, const struct target *t, struct inflight *in)
{
    struct fetch_job *j = malloc(sizeof(*j));

    if (!j)
        return -1;
    j->fs = fs;
    j->t = *t;
    j->in = in;
    j->t.key = strdup(t->key);
    pthread_mutex_lock(&fs->lock);
    in->refs++; /* the job's */
    pthread_mutex_unlock(&fs->lock);
    if (j->t.key && fs_workers_submit_now(&fs->workers, job_run, j) == 0)
        return 0;
    pthread_mutex_lock(&fs->lock);
    in->refs--; /* the caller still holds one: never the last */
    pthread_mutex_unlock(&fs->lock);
    free(j->t.key);
    free(j);
    return -1;
}

/* A new entry for block idx of t; caller holds fs->lock. */
static struct inflight *inflight_new(struct bfs_fs *fs, const struct target *t, uint64_t idx)
{
    uint64_t first = idx * fs->block;
    struct inflight *in = calloc(1, sizeof(*in));

    if (!in)
        return NULL;
    in->len = (size_t)(first + fs->block > t->size ? t->size - first : fs->block);
    in->data = malloc(in->len ? in->len : 1);
    if (!in->data) {
        free(in);
        return NULL;
    }
    in->ino = t->ino;
    in->idx = idx;
    memcpy(in->etag, t->etag, sizeof(in->etag));
    in->refs = 1;
    in->wake_at = SIZE_MAX;
    pthread_cond_init(&in->cond, NULL);
    in->next = fs->inflight;
    fs->inflight = in;
    return in;
}

int fs_inflight_has(struct bfs_fs *fs, uint64_t ino, const char *etag, uint64_t idx)
{
    int found = 0;

    pthread_mutex_lock(&fs->lock);
    for (struct inflight *in = fs->inflight; in && !found; in = in->next)
        found = in->ino == ino && in->idx == idx && strcmp(in->etag, etag) == 0 &&
                !(in->done && in->err < 0);
    pthread_mutex_unlock(&fs->lock);
    return found;
}

/* The entry for block idx of t, or NULL; caller holds fs->lock. */
static struct inflight *inflight_find(struct bfs_fs *fs, const struct target *t, uint64_t idx)
{
    struct inflight *in;

    for (in = fs->inflight; in; in = in->next)
        if (in->ino == t->ino && in->idx == idx && strcmp(in->etag, t->etag) == 0)
            break;
    if (in && in->done && in->err < 0 && bfs_mono_ms() >= in->retry_ms) {
        inflight_unlink(fs, in); /* a kept failure whose time is over: try again */
        in = NULL;
    }
    return in;
}

static struct inflight *inflight_start(struct bfs_fs *fs, const struct target *t, uint64_t idx,
                                       int async, struct inflight_early *e)
{
    struct inflight *in;

    pthread_mutex_lock(&fs->lock);
    in = inflight_find(fs, t, idx);
    if (in) {
        in->refs++;
        pthread_mutex_unlock(&fs->lock);
        return in;
    }
    in = inflight_new(fs, t, idx);
    if (in)
        in->early = e;
    pthread_mutex_unlock(&fs->lock);
    if (in && (!async || fetch_async(fs, t, in) < 0))
        run_fetch(fs, t, in);
    return in;
}

struct inflight *fs_inflight_get(struct bfs_fs *fs, const struct target *t, uint64_t idx,
                                 int async)
{
    return inflight_start(fs, t, idx, async, NULL);
}

struct inflight *fs_inflight_get_early(struct bfs_fs *fs, const struct target *t, uint64_t idx,
                                       struct inflight_early *e)
{
    return inflight_start(fs, t, idx, 0, e);
}

int fs_inflight_fetch_spare(struct bfs_fs *fs, const struct target *t, uint64_t idx)
{
    struct inflight *in, *found;
    int r;

    pthread_mutex_lock(&fs->lock);
    found = inflight_find(fs, t, idx);
    in = found ? NULL : inflight_new(fs, t, idx);
    if (in)
        in->spare = 1; /* before anyone else can see it */
    pthread_mutex_unlock(&fs->lock);
    if (found)
        return 0; /* someone fetches it, or its fetch failed a moment ago */
    if (!in)
        return -ENOMEM;
    r = run_fetch(fs, t, in);
    fs_inflight_unref(fs, in);
    return r == 1 ? -ENOBUFS : r < 0 ? r : 1;
}

ssize_t fs_inflight_wait(struct bfs_fs *fs, struct inflight *in, size_t need)
{
    ssize_t r;

    if (need > in->len)
        need = in->len;
    pthread_mutex_lock(&fs->lock);
    in->waiters++;
    while (!in->done && in->have < need) {
        if (need < in->wake_at)
            in->wake_at = need;
        pthread_cond_wait(&in->cond, &fs->lock);
    }
    in->waiters--;
    /* bytes that arrived are right (same ETag) even if the GET failed later */
    r = in->have >= need ? (ssize_t)in->have : in->err < 0 ? in->err : -EIO;
    pthread_mutex_unlock(&fs->lock);
    return r;
}

static void ra_run(void *arg)
{
    struct ra_task *rt = arg;

    if (!bfs_store_block_has(rt->fs->store, rt->t.ino, rt->t.etag, rt->idx)) {
        struct inflight *in = fs_inflight_get(rt->fs, &rt->t, rt->idx, 0);

        if (in)
            fs_inflight_unref(rt->fs, in);
        atomic_fetch_add(&rt->fs->readahead_blocks, 1);
    }
    free(rt->t.key);
    free(rt);
}

static void read_ahead(struct bfs_fs *fs, struct bfs_file *f, uint64_t from, uint64_t until)
{
    uint64_t nblocks = (f->t.size + fs->block - 1) / fs->block;

    if (until > nblocks)
        until = nblocks;
    for (uint64_t idx = from; idx < until; idx++) {
        struct ra_task *rt = calloc(1, sizeof(*rt));

        if (!rt || !(rt->t.key = strdup(f->t.key))) {
            free(rt);
            return;
        }
        rt->fs = fs;
        rt->t.client = f->t.client;
        rt->t.bucket = f->t.bucket;
        memcpy(rt->t.etag, f->t.etag, sizeof(rt->t.etag));
        rt->t.ino = f->t.ino;
        rt->t.size = f->t.size;
        rt->idx = idx;
        if (fs_workers_submit(&fs->workers, ra_run, rt, fs->cfg->read_ahead * 4) < 0) {
            free(rt->t.key);
            free(rt);
            return;
        }
        pthread_mutex_lock(&f->lock);
        if (f->ra_next < idx + 1)
            f->ra_next = idx + 1;
        pthread_mutex_unlock(&f->lock);
    }
}

void fs_read_track(struct bfs_fs *fs, struct bfs_file *f, uint64_t off, size_t size)
{
    uint64_t cur = off / fs->block, from, until, reach = (uint64_t)fs->cfg->read_ahead * fs->block;
    int seq, run, jump;

    pthread_mutex_lock(&f->lock);
    /* next_off is 0 until the first read: that one is never sequential */
    seq = f->next_off != 0 &&
          (off == f->next_off || (off < f->next_off && f->next_off - off < fs->block));
    /* what counts as a random read (randfetch.c): a jump away from where
     * the last read ended, not a read near it (the kernel's own read-ahead
     * sends a sequential reader's reads from several threads, which may
     * come out of order) */
    jump = f->next_off == 0 || off + fs->block < f->next_off || off >= f->next_off + reach;
    f->seq = seq ? f->seq + 1 : 0;
    run = f->seq;
    f->next_off = off + size;
    from = f->ra_next > cur + 1 ? f->ra_next : cur + 1;
    until = cur + 1 + (uint64_t)fs->cfg->read_ahead;
    if (!seq)
        f->ra_next = 0;
    pthread_mutex_unlock(&f->lock);
    if (jump)
        fs_rfetch_note(fs, f, off, size);
    /* not on a first read, even at offset 0: an open, a read of the
     * start (a header, a magic number) and random reads is common, and
     * read-ahead would compete with those; a sequential reader's second
     * read follows at once (A/B on RGW: the random reads after a first
     * read of the start ran slower while its read-ahead ran) */
    if (run >= 1 && from < until)
        read_ahead(fs, f, from, until);
}
