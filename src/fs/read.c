/* SPDX-License-Identifier: MIT */
/*
 * read.c: reading file data through the block cache.
 *
 * A read is cut into blocks of fs->block bytes. Each block comes from the
 * block cache, or is fetched with one ranged GET carrying If-Match with
 * the ETag the file was opened at (invariant 3), then cached. Two readers
 * of one missing block share one GET: the first registers it in
 * fs->inflight and the others wait for it there.
 *
 * Sequential reading (each read starting where the last ended) starts
 * read-ahead: the next read_ahead blocks are fetched by the worker pool,
 * several GETs in flight, so that by the time the reader asks for them
 * they are in the cache. Random reads fetch only the blocks they touch.
 *
 * Memory: a fetch holds one block buffer until it is cached, so memory is
 * bounded by (FUSE threads + workers) x block size, whatever the file size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "fs-int.h"

struct ra_task {
    struct bfs_fs *fs;
    struct target t;
    uint64_t idx;
};

static void inflight_unref(struct bfs_fs *fs, struct inflight *in)
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

/* The GET of one block into a fresh buffer, then into the cache. */
static int fetch(struct bfs_fs *fs, const struct target *t, uint64_t idx, struct inflight *in)
{
    uint64_t first = idx * fs->block;
    uint64_t last = first + fs->block > t->size ? t->size - 1 : first + fs->block - 1;
    struct bfs_s3_get_params p = {.ranged = 1, .first = first, .last = last,
                                  .if_match = t->etag};
    struct bfs_s3_sink sink = {0};
    int64_t n;

    in->len = (size_t)(last - first + 1);
    in->data = malloc(in->len);
    if (!in->data)
        return -ENOMEM;
    /* cached by someone whose fetch ended before ours was registered */
    if (bfs_store_block_read(fs->store, t->ino, t->etag, idx, 0, in->data, in->len) ==
        (ssize_t)in->len)
        return 0;
    sink.buf = in->data;
    sink.cap = in->len;
    atomic_fetch_add(&fs->ranged_gets, 1);
    n = bfs_s3_get_object(t->client, t->bucket, t->key, &p, &sink, NULL, NULL);
    if (n < 0)
        return (int)n;
    if ((size_t)n != in->len)
        return -EIO; /* the server sent less than the range: object changed? */
    (void)bfs_store_block_put(fs->store, t->ino, t->etag, idx, in->data, in->len);
    return 0;
}

void fs_blocks_import(struct bfs_fs *fs, uint64_t ino, const char *etag, int fd, uint64_t size)
{
    char *buf = size > 0 && size <= FS_IMPORT_MAX ? malloc(fs->block) : NULL;

    for (uint64_t off = 0, idx = 0; buf && off < size; off += fs->block, idx++) {
        size_t len = size - off < fs->block ? (size_t)(size - off) : fs->block;

        if (pread(fd, buf, len, (off_t)off) != (ssize_t)len ||
            bfs_store_block_put(fs->store, ino, etag, idx, buf, len) < 0)
            break; /* a cache that is full or failing only costs a download later */
    }
    free(buf);
}

/* Returns the in-flight entry for block idx, done, with a reference the
 * caller drops with inflight_unref. */
static struct inflight *get_block(struct bfs_fs *fs, const struct target *t, uint64_t idx)
{
    struct inflight *in;

    pthread_mutex_lock(&fs->lock);
    for (in = fs->inflight; in; in = in->next)
        if (in->ino == t->ino && in->idx == idx && strcmp(in->etag, t->etag) == 0)
            break;
    if (in) {
        in->refs++;
        while (!in->done)
            pthread_cond_wait(&in->cond, &fs->lock);
        pthread_mutex_unlock(&fs->lock);
        return in;
    }
    in = calloc(1, sizeof(*in));
    if (!in) {
        pthread_mutex_unlock(&fs->lock);
        return NULL;
    }
    in->ino = t->ino;
    in->idx = idx;
    memcpy(in->etag, t->etag, sizeof(in->etag));
    in->refs = 1;
    pthread_cond_init(&in->cond, NULL);
    in->next = fs->inflight;
    fs->inflight = in;
    pthread_mutex_unlock(&fs->lock);

    in->err = fetch(fs, t, idx, in);

    pthread_mutex_lock(&fs->lock);
    in->done = 1;
    inflight_unlink(fs, in);
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&fs->lock);
    return in;
}

static void ra_run(void *arg)
{
    struct ra_task *rt = arg;

    if (!bfs_store_block_has(rt->fs->store, rt->t.ino, rt->t.etag, rt->idx)) {
        struct inflight *in = get_block(rt->fs, &rt->t, rt->idx);

        if (in)
            inflight_unref(rt->fs, in);
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

/* Notes where this read falls and starts read-ahead for sequential ones. */
static void track(struct bfs_fs *fs, struct bfs_file *f, uint64_t off, size_t size)
{
    uint64_t cur = off / fs->block, from, until;
    int seq, run;

    pthread_mutex_lock(&f->lock);
    seq = off == f->next_off || (off < f->next_off && f->next_off - off < fs->block);
    f->seq = seq ? f->seq + 1 : 0;
    run = f->seq;
    f->next_off = off + size;
    from = f->ra_next > cur + 1 ? f->ra_next : cur + 1;
    until = cur + 1 + (uint64_t)fs->cfg->read_ahead;
    if (!seq)
        f->ra_next = 0;
    pthread_mutex_unlock(&f->lock);
    if ((run >= 1 || off == 0) && from < until)
        read_ahead(fs, f, from, until);
}

ssize_t bfs_fs_read(struct bfs_fs *fs, struct bfs_file *f, char *buf, size_t size, off_t off)
{
    uint64_t pos = (uint64_t)off, end;
    size_t done = 0;
    struct wfile *w;

    if (off < 0)
        return -EINVAL;
    if (f->w)
        return fs_wfile_read(f->w, buf, size, off);
    w = fs_wfile_find(fs, f->t.ino); /* written since this reader opened */
    if (w) {
        ssize_t n = fs_wfile_read(w, buf, size, off);
        fs_wfile_put(fs, w);
        return n;
    }
    if (pos >= f->t.size || size == 0)
        return 0;
    end = pos + size > f->t.size ? f->t.size : pos + size;
    track(fs, f, pos, (size_t)(end - pos));
    while (pos < end) {
        uint64_t idx = pos / fs->block;
        uint32_t boff = (uint32_t)(pos % fs->block);
        size_t want = (size_t)(end - pos < fs->block - boff ? end - pos : fs->block - boff);
        ssize_t got = bfs_store_block_read(fs->store, f->t.ino, f->t.etag, idx, boff,
                                           buf + done, want);

        if (got < 0) {
            struct inflight *in = get_block(fs, &f->t, idx);

            if (!in)
                return done ? (ssize_t)done : -ENOMEM;
            got = in->err < 0 ? in->err : boff >= in->len ? 0 : (ssize_t)want;
            if (got > 0) {
                if ((size_t)got > in->len - boff)
                    got = (ssize_t)(in->len - boff);
                memcpy(buf + done, in->data + boff, (size_t)got);
            }
            inflight_unref(fs, in);
        }
        if (got == -ESTALE) { /* the object changed under this reader */
            fs_node_stale(fs, f->t.ino);
            return -EIO;
        }
        if (got < 0)
            return done ? (ssize_t)done : got;
        if (got == 0)
            break;
        done += (size_t)got;
        pos += (uint64_t)got;
    }
    return (ssize_t)done;
}

/* A handle on the staging copy: for writers, and readers of a staged file. */
static int open_staged(struct bfs_fs *fs, uint64_t ino, int flags, struct bfs_file **ret)
{
    int writable = (flags & O_ACCMODE) != O_RDONLY;
    struct wfile *w = NULL;
    struct bfs_file *f;
    struct mapping *m;
    char *key = NULL;
    int r = fs_inode_target(fs, ino, &m, &key, NULL);

    if (r == 0 && writable && m->read_only)
        r = -EROFS;
    free(key);
    if (r == 0)
        r = writable || (flags & O_TRUNC) ? fs_wfile_open(fs, ino, (flags & O_TRUNC) != 0, &w)
                                          : (w = fs_wfile_find(fs, ino)) ? 0 : -ENOENT;
    if (r < 0)
        return r;
    f = calloc(1, sizeof(*f));
    if (!f) {
        fs_wfile_put(fs, w);
        return -ENOMEM;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->w = w;
    f->writable = writable;
    f->t.ino = ino;
    pthread_mutex_lock(&w->lock);
    w->opens++;
    w->writers += writable;
    pthread_mutex_unlock(&w->lock);
    fs_file_track(fs, f);
    *ret = f;
    return 0;
}

void fs_file_track(struct bfs_fs *fs, struct bfs_file *f)
{
    pthread_mutex_lock(&fs->lock);
    f->prev = NULL;
    f->next = fs->files;
    if (fs->files)
        fs->files->prev = f;
    fs->files = f;
    pthread_mutex_unlock(&fs->lock);
}

static void file_untrack(struct bfs_fs *fs, struct bfs_file *f)
{
    pthread_mutex_lock(&fs->lock);
    if (f->prev)
        f->prev->next = f->next;
    else if (fs->files == f)
        fs->files = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    pthread_mutex_unlock(&fs->lock);
}

int bfs_fs_open(struct bfs_fs *fs, uint64_t ino, int flags, struct bfs_file **ret)
{
    struct bfs_file *f;
    struct mapping *m;
    struct bfs_node n;
    char *key = NULL;
    int r;

    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
        return open_staged(fs, ino, flags, ret);
    r = open_staged(fs, ino, flags, ret);
    if (r != -ENOENT)
        return r;
    r = bfs_store_node_get(fs->store, ino, &n);
    if (r == -ENOENT)
        return -ESTALE;
    if (r == 0)
        r = fs_revalidate(fs, ino, &n);
    if (r == 0 && n.kind == BFS_KIND_DIR)
        r = -EISDIR;
    if (r == 0)
        r = fs_inode_target(fs, ino, &m, &key, NULL);
    if (r < 0)
        return r;
    f = calloc(1, sizeof(*f));
    if (!f) {
        free(key);
        return -ENOMEM;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->t.client = m->client;
    f->t.bucket = m->bucket;
    f->t.key = key;
    f->t.ino = ino;
    f->t.size = n.size;
    memcpy(f->t.etag, n.etag, sizeof(f->t.etag));
    fs_file_track(fs, f);
    *ret = f;
    return 0;
}

ssize_t bfs_fs_write(struct bfs_fs *fs, struct bfs_file *f, const char *buf, size_t size,
                     off_t off)
{
    if (!f->w || !f->writable)
        return -EBADF;
    return fs_wfile_write(fs, f->w, buf, size, off);
}

int bfs_fs_flush(struct bfs_fs *fs, struct bfs_file *f)
{
    struct wfile *w = f->w;
    int r = 0;

    if (!w || !f->writable)
        return 0;
    pthread_mutex_lock(&w->lock);
    /* the last writer's close commits; with others still writing, their
     * close will (and release catches descriptors that never flush) */
    if (w->dirty && w->writers <= 1)
        r = fs_wfile_commit(fs, w);
    if (r == 0 && fs->cfg->sync_upload)
        r = fs_wfile_wait_upload(fs, w, w->gen);
    pthread_mutex_unlock(&w->lock);
    return r;
}

int bfs_fs_fsync(struct bfs_fs *fs, struct bfs_file *f)
{
    struct wfile *w = f->w;
    int r = 0;

    if (!w)
        return 0; /* nothing written through this handle */
    pthread_mutex_lock(&w->lock);
    if (w->dirty)
        r = fs_wfile_commit(fs, w);
    if (r == 0)
        r = fs_wfile_wait_upload(fs, w, w->gen);
    pthread_mutex_unlock(&w->lock);
    return r;
}

void bfs_fs_release(struct bfs_fs *fs, struct bfs_file *f)
{
    struct wfile *w;

    if (!f)
        return;
    file_untrack(fs, f);
    w = f->w;
    if (w) {
        pthread_mutex_lock(&w->lock);
        w->opens--;
        w->writers -= f->writable;
        if (f->writable && w->writers == 0 && w->dirty) {
            int r = fs_wfile_commit(fs, w);
            if (r < 0) /* the data stays in the staging file; log it, nobody else can see it */
                bfs_err("cannot commit inode %llu for upload: %s", (unsigned long long)w->ino,
                        strerror(-r));
        }
        pthread_mutex_unlock(&w->lock);
        fs_wfile_maybe_drop(fs, w);
        fs_wfile_put(fs, w);
    }
    pthread_mutex_destroy(&f->lock);
    free(f->t.key);
    free(f);
}
