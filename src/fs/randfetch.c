/* SPDX-License-Identifier: MIT */
/*
 * randfetch.c: fetching the rest of an object in the background once random
 * reads of an open file have covered a good share of it (SPEC.md "Reads").
 *
 * A random reader (fio, a database or index file, weights read by offset)
 * waits for every block it touches, one GET after another: a 1 GiB object
 * read in 4 KiB pieces costs 1,024 block GETs in a row before every read
 * is a cache hit. A reader that has touched a good share of the blocks
 * will most likely touch nearly all of them, so once it has, the blocks
 * nobody asked for yet are fetched several at a time in the background
 * and the cache fills in a fraction of that time.
 *
 * NOTES ON THE DESIGN
 * 1. Coverage is counted per open handle (struct bfs_file): a bitmap of the
 *    blocks touched by reads that jump (fs_read_track: back, or beyond
 *    read_ahead blocks ahead of where the last read ended; a sequential
 *    reader has read-ahead, and its reads may come a little out of order). The fetch starts when they reach 1/RF_SHARE of the
 *    object's blocks, and at least RF_MIN_TOUCHED of them. Why a quarter:
 *    on this kind of machine (2 cores shared with the server) a lone random
 *    reader's GETs, each answered from inside as soon as its bytes came,
 *    already take most of what the server can send, so the background
 *    GETs share that with the reader's own: the reader's misses get slower
 *    while the rest comes. That pays once it has covered enough to go on
 *    missing (a reader at a quarter misses 3 reads in 4), and costs at most
 *    3 times what the reader fetched itself when the guess is wrong; a
 *    reader that looks up a few places (a header, a footer, an index entry)
 *    stays far below it. With a sixteenth, 300 random 4 KiB reads of a
 *    1 GiB object (257 blocks) ran with the fetch going for most of them
 *    and slower than without it (bench/results-rgw-randfetch.md); with a
 *    quarter it starts at their end, and fio's run after about 300 reads.
 *    The minimum keeps a file of a few blocks read at two places (a
 *    header, then one record) from fetching all of it.
 * 2. Only objects that fit below the cache's low-water mark (90% of
 *    cache_size, BFS_STORE_LOW_WATER) are fetched, and every block goes
 *    into spare room only (blocks.c note 5): the fetch never evicts, so
 *    it cannot push out the blocks readers just used; the first block
 *    that finds no room ends it.
 * 3. One fetch per object version (inode, ETag), in fs->rfetches; every
 *    GET carries the handle's ETag as If-Match (invariant 3), so a changed
 *    object fails the GET and ends the fetch: its blocks are never mixed.
 * 4. Priority: RF_TASKS tasks per fetch on the workers' low queue
 *    (workers.c), each one block GET at a time and then back to the end
 *    of that queue, so read-ahead and readers' fetches queued meanwhile go
 *    first; the pool runs at most low_max such tasks at once (fs.c), which
 *    leaves read_ahead threads for a sequential reader. A reader that
 *    needs a block being fetched here waits for that GET (fetch.c) rather
 *    than sending its own.
 * 5. Ends: when every block was looked at, at the first failure or block
 *    without room, or when the last handle on the version is released
 *    (fs_rfetch_release): the GETs in flight then finish (at most
 *    low_max), and no other starts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs-int.h"

#define RF_SHARE 4        /* note 1: a quarter of the blocks ... */
#define RF_MIN_TOUCHED 4  /* ... and at least this many */
#define RF_TASKS FS_RFETCH_INFLIGHT

/* The background fetch of one object version. */
struct rfetch {
    struct bfs_fs *fs;        /* immutable */
    struct target t;          /* immutable; owns key */
    uint64_t nblocks;         /* immutable */
    uint64_t next;            /* the next block to look at; guarded by fs->lock */
    int stop;                 /* guarded by fs->lock */
    int refs;                 /* fs->rfetches' and the tasks'; guarded by fs->lock */
    struct rfetch *next_job;  /* fs->rfetches, guarded by fs->lock */
};

static uint64_t nblocks_of(const struct bfs_fs *fs, uint64_t size)
{
    return (size + fs->block - 1) / fs->block;
}

/* Whether random reads of f may start a background fetch (notes 1, 2). */
static int eligible(const struct bfs_fs *fs, const struct bfs_file *f)
{
    return fs->cfg->random_fetch && !f->w && nblocks_of(fs, f->t.size) > RF_MIN_TOUCHED &&
           f->t.size <= BFS_STORE_LOW_WATER(fs->cfg->cache_size);
}

static void rf_unref(struct rfetch *j)
{
    struct bfs_fs *fs = j->fs;
    int last;

    pthread_mutex_lock(&fs->lock);
    last = --j->refs == 0;
    pthread_mutex_unlock(&fs->lock);
    if (last) {
        free(j->t.key);
        free(j);
    }
}

static void rf_halt(struct rfetch *j)
{
    pthread_mutex_lock(&j->fs->lock);
    j->stop = 1;
    pthread_mutex_unlock(&j->fs->lock);
}

/* Fetches the next block that is neither cached nor in flight: 1 after a
 * GET (more may follow), 0 when this fetch is over (note 4). */
static int rf_step(struct rfetch *j)
{
    struct bfs_fs *fs = j->fs;

    for (;;) {
        uint64_t idx, len;
        int r;

        pthread_mutex_lock(&fs->lock);
        if (j->next >= j->nblocks)
            j->stop = 1;
        idx = j->next++;
        r = j->stop;
        pthread_mutex_unlock(&fs->lock);
        if (r)
            return 0;
        if (bfs_store_block_has(fs->store, j->t.ino, j->t.etag, idx))
            continue;
        len = j->t.size - idx * fs->block < fs->block ? j->t.size - idx * fs->block : fs->block;
        r = bfs_store_spare_room(fs->store, len) ? fs_inflight_fetch_spare(fs, &j->t, idx)
                                                 : -ENOBUFS;
        if (r == 0)
            continue; /* another fetch has it */
        if (r < 0) {
            rf_halt(j);
            return 0;
        }
        atomic_fetch_add(&fs->rfetch_blocks, 1);
        return 1;
    }
}

/* A task of the low queue: one block, then back to the queue's end. */
static void rf_run(void *arg)
{
    struct rfetch *j = arg;

    if (rf_step(j) && fs_workers_submit_low(&j->fs->workers, rf_run, j) == 0)
        return; /* the task keeps its reference */
    rf_unref(j);
}

/* The fetch of (ino, etag) in fs->rfetches; caller holds fs->lock. */
static struct rfetch **rf_find(struct bfs_fs *fs, uint64_t ino, const char *etag)
{
    struct rfetch **pp = &fs->rfetches;

    while (*pp && ((*pp)->t.ino != ino || strcmp((*pp)->t.etag, etag) != 0))
        pp = &(*pp)->next_job;
    return pp;
}

/* A new fetch for f's object version, or NULL (no memory). */
static struct rfetch *rf_new(struct bfs_fs *fs, const struct bfs_file *f)
{
    struct rfetch *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->fs = fs;
    j->t = f->t;
    j->t.key = strdup(f->t.key);
    if (!j->t.key) {
        free(j);
        return NULL;
    }
    j->nblocks = nblocks_of(fs, f->t.size);
    j->refs = 1; /* fs->rfetches' */
    return j;
}

/* Starts fetching the rest of f's object unless a fetch of it runs. */
static void rf_start(struct bfs_fs *fs, const struct bfs_file *f)
{
    struct rfetch *j = rf_new(fs, f);
    int dup;

    if (!j)
        return;
    pthread_mutex_lock(&fs->lock);
    dup = *rf_find(fs, j->t.ino, j->t.etag) != NULL;
    if (!dup) {
        j->next_job = fs->rfetches;
        fs->rfetches = j;
        j->refs += RF_TASKS; /* before a task can run and drop its own */
    }
    pthread_mutex_unlock(&fs->lock);
    if (dup) {
        rf_unref(j);
        return;
    }
    atomic_fetch_add(&fs->rfetches_started, 1);
    for (int i = 0; i < RF_TASKS; i++)
        if (fs_workers_submit_low(&fs->workers, rf_run, j) < 0)
            rf_unref(j);
}

/* Marks the blocks of [off, end) in f's bitmap; returns whether they reach
 * the share of note 1 now. Caller holds f->lock. */
static int rf_mark(struct bfs_fs *fs, struct bfs_file *f, uint64_t off, uint64_t end)
{
    uint64_t n = nblocks_of(fs, f->t.size), need = (n + RF_SHARE - 1) / RF_SHARE;

    if (need < RF_MIN_TOUCHED)
        need = RF_MIN_TOUCHED;
    for (uint64_t idx = off / fs->block; idx <= (end - 1) / fs->block && idx < n; idx++) {
        uint8_t bit = (uint8_t)(1u << (idx % 8));

        if (!(f->touched[idx / 8] & bit)) {
            f->touched[idx / 8] |= bit;
            f->ntouched++;
        }
    }
    return f->ntouched >= need;
}

void fs_rfetch_note(struct bfs_fs *fs, struct bfs_file *f, uint64_t off, size_t size)
{
    uint8_t *done = NULL;
    int start = 0;

    if (size == 0 || off >= f->t.size)
        return;
    pthread_mutex_lock(&f->lock);
    if (!f->rf_over && !f->touched) { /* the first random read: is it worth watching? */
        if (eligible(fs, f))
            f->touched = calloc((size_t)((nblocks_of(fs, f->t.size) + 7) / 8), 1);
        f->rf_over = !f->touched;
    }
    if (!f->rf_over && rf_mark(fs, f, off, off + size)) {
        start = f->rf_over = 1;
        done = f->touched; /* not needed any more */
        f->touched = NULL;
    }
    pthread_mutex_unlock(&f->lock);
    free(done);
    if (start)
        rf_start(fs, f);
}

void fs_rfetch_release(struct bfs_fs *fs, struct bfs_file *f)
{
    struct rfetch *j = NULL, **pp;
    int other = 0;

    free(f->touched); /* the handle is no longer read (release) */
    f->touched = NULL;
    if (f->w)
        return;
    pthread_mutex_lock(&fs->lock);
    for (const struct bfs_file *o = fs->files; o && !other; o = o->next)
        other = o != f && o->t.ino == f->t.ino && !o->w && strcmp(o->t.etag, f->t.etag) == 0;
    pp = other ? NULL : rf_find(fs, f->t.ino, f->t.etag);
    if (pp && *pp) { /* the last handle on this version: cancel (note 4) */
        j = *pp;
        *pp = j->next_job;
        j->stop = 1;
    }
    pthread_mutex_unlock(&fs->lock);
    if (j)
        rf_unref(j); /* fs->rfetches' reference */
}

void fs_rfetch_free(struct bfs_fs *fs)
{
    while (fs->rfetches) {
        struct rfetch *j = fs->rfetches;

        fs->rfetches = j->next_job;
        rf_unref(j);
    }
}
