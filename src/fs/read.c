/* SPDX-License-Identifier: MIT */
/*
 * read.c: open file handles and reading file data through the block cache
 * (fetch.c gets missing blocks from S3).
 *
 * A read is cut into blocks of fs->block bytes. Each block comes from the
 * block cache, or from its fetch (fetch.c), whose bytes a reader takes as
 * soon as the ones it needs have arrived.
 *
 * Cached blocks are read through the open block files of blockfds.c, so
 * that a read costs one pread, without asking the index or opening and
 * closing the file (the kernel sends a sequential reader's reads in 128 KiB
 * to 1 MiB pieces; a random reader's can be 4 KiB).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "fs-int.h"

void fs_blocks_import(struct bfs_fs *fs, uint64_t ino, const char *etag, int fd,
                      const char *path, uint64_t size)
{
    char *buf;

    /* a small file: no copy, and no new file for ext4 to allocate (small
     * files by the thousand spend much of their CPU there) */
    if (size > 0 && size <= fs->block) {
        (void)bfs_store_block_adopt(fs->store, ino, etag, 0, path, (size_t)size);
        return;
    }
    buf = size > 0 && size <= FS_IMPORT_MAX ? malloc(fs->block) : NULL;

    for (uint64_t off = 0, idx = 0; buf && off < size; off += fs->block, idx++) {
        size_t len = size - off < fs->block ? (size_t)(size - off) : fs->block;

        if (pread(fd, buf, len, (off_t)off) != (ssize_t)len ||
            bfs_store_block_put(fs->store, ino, etag, idx, buf, len) < 0)
            break; /* a cache that is full or failing only costs a download later */
    }
    free(buf);
}

/* Reads want bytes at boff of block idx from the cache through a kept
 * descriptor (invariant 4); -ENOENT when the block is not cached. */
static ssize_t read_cached(struct bfs_fs *fs, struct bfs_file *f, uint64_t idx, uint32_t boff,
                           char *buf, size_t want)
{
    struct blockfd *b;
    ssize_t got;
    int r = fs_blockfd_get(fs, &f->t, idx, &b);

    if (r == -ENOMEM) /* cannot keep it: read it once */
        return bfs_store_block_read(fs->store, f->t.ino, f->t.etag, idx, boff, buf, want);
    if (r < 0)
        return r;
    if (boff >= b->len) {
        fs_blockfd_unref(b);
        return 0;
    }
    if (want > b->len - boff)
        want = b->len - boff;
    do
        got = pread(b->fd, buf, want, boff);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)want) { /* broken file: forget it, fetch the block again */
        fs_blockfd_bad(fs, b);
        got = -ENOENT;
    }
    fs_blockfd_unref(b);
    return got;
}

/* A read answered from inside the GET of its block (struct inflight_early). */
struct early_read {
    struct inflight_early e; /* first: the callback gets &e */
    struct bfs_fs *fs;
    struct bfs_file *f;      /* not touched once answered: it may be released */
    struct bfs_read_early *user;
    uint64_t off;            /* the read's */
    uint32_t boff;
    size_t want;
};

static void early_answer(struct inflight_early *e, const char *data)
{
    struct early_read *er = (struct early_read *)e;

    fs_read_track(er->fs, er->f, er->off, er->want); /* before the handle may go */
    atomic_fetch_add(&er->fs->early_answers, 1);
    er->user->reply(er->user->ctx, data + er->boff, er->want);
}

/* The fetch of block idx run here, answering the read from inside it when
 * its bytes arrived (early->replied). The GET gets a copy of the target:
 * the handle may be released while the rest of the block comes. */
static struct inflight *fetch_early(struct bfs_fs *fs, struct bfs_file *f, uint64_t idx,
                                    uint32_t boff, size_t want, struct bfs_read_early *early)
{
    struct early_read er = {.e = {.need = (size_t)boff + want, .fn = early_answer}, .fs = fs,
                            .f = f, .user = early, .off = idx * fs->block + boff, .boff = boff,
                            .want = want};
    struct target t = f->t;
    struct inflight *in;

    t.key = strdup(f->t.key);
    if (!t.key)
        return NULL;
    in = fs_inflight_get_early(fs, &t, idx, &er.e);
    free(t.key);
    early->replied = er.e.done;
    return in;
}

/* Reads want bytes at boff of block idx from its fetch, as soon as they
 * have arrived. With early, the GET runs here and answers the read from
 * inside (fetch_early): it returns after its own bytes (time to first
 * byte) and the caller goes on while the rest of the block comes, without
 * handing the GET to a worker (two wake-ups, which on a busy machine cost
 * more than the rest of the block: random reads, A/B on RGW). Without
 * early, a handle's first read has a worker run its GET, for its time to
 * first byte; later ones run it here. */
static ssize_t read_fetched(struct bfs_fs *fs, struct bfs_file *f, uint64_t idx, uint32_t boff,
                            char *buf, size_t want, struct bfs_read_early *early)
{
    struct inflight *in;
    ssize_t got;
    int first;

    if (early) {
        in = fetch_early(fs, f, idx, boff, want, early);
    } else {
        pthread_mutex_lock(&f->lock);
        first = f->next_off == 0; /* nothing read through this handle yet */
        pthread_mutex_unlock(&f->lock);
        in = fs_inflight_get(fs, &f->t, idx, first);
    }
    if (!in)
        return -ENOMEM;
    if (early && early->replied) {
        fs_inflight_unref(fs, in);
        return (ssize_t)want;
    }
    got = fs_inflight_wait(fs, in, (size_t)boff + want);
    if (got >= 0) {
        got = boff >= (size_t)got ? 0 : (ssize_t)((size_t)got - boff);
        if ((size_t)got > want)
            got = (ssize_t)want;
        memcpy(buf, in->data + boff, (size_t)got); /* invariant 5: no lock needed */
    }
    fs_inflight_unref(fs, in);
    return got;
}

/* Answers a read that lies in one cached block with a reference to its
 * bytes in the block file (an open one, blockfds.c): 1 when *ref
 * was filled, 0 when the read must copy, -ENOENT when the block is not
 * cached (the caller fetches it without asking again). The block file's
 * size is checked once, so that a broken file cannot make a short answer
 * (which the kernel would take for the end of the file). */
static int read_ref(struct bfs_fs *fs, struct bfs_file *f, uint64_t pos, uint64_t end,
                    struct bfs_read_ref *ref)
{
    uint64_t idx = pos / fs->block;
    uint32_t boff = (uint32_t)(pos % fs->block);
    struct blockfd *b;
    struct stat st;
    int r;

    if ((end - 1) / fs->block != idx)
        return 0;
    r = fs_blockfd_get(fs, &f->t, idx, &b);
    if (r < 0)
        return r == -ENOENT ? r : 0;
    if (!b->sized && fstat(b->fd, &st) == 0 && (uint64_t)st.st_size == b->len)
        b->sized = 1; /* set once, always to 1: a benign race between readers */
    if (!b->sized || boff + (end - pos) > b->len) {
        fs_blockfd_unref(b);
        return 0;
    }
    ref->fd = b->fd;
    ref->off = (off_t)boff;
    ref->len = (size_t)(end - pos);
    ref->hold = b;
    fs_read_track(fs, f, pos, ref->len);
    return 1;
}

void bfs_fs_read_ref_done(struct bfs_file *f, struct bfs_read_ref *ref)
{
    (void)f; /* not touched: the handle may be released already (blockfds.c note 3) */
    if (ref->hold)
        fs_blockfd_unref(ref->hold);
    ref->hold = NULL;
}

ssize_t bfs_fs_read(struct bfs_fs *fs, struct bfs_file *f, char *buf, size_t size, off_t off)
{
    return bfs_fs_read_zc(fs, f, buf, size, off, NULL, NULL);
}

ssize_t bfs_fs_read_zc(struct bfs_fs *fs, struct bfs_file *f, char *buf, size_t size, off_t off,
                       struct bfs_read_ref *ref, struct bfs_read_early *early)
{
    uint64_t pos = (uint64_t)off, end;
    size_t done = 0;
    struct wfile *w;
    int r;

    if (ref)
        ref->hold = NULL;
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
    r = ref ? read_ref(fs, f, pos, end, ref) : 0;
    if (r > 0)
        return 0;
    while (pos < end) {
        uint64_t idx = pos / fs->block;
        uint32_t boff = (uint32_t)(pos % fs->block);
        size_t want = (size_t)(end - pos < fs->block - boff ? end - pos : fs->block - boff);
        ssize_t got = r == -ENOENT ? r : read_cached(fs, f, idx, boff, buf + done, want);

        r = 0; /* read_ref's answer was about the first block only */
        if (got == -ENOENT) /* early only for a read that lies in this block */
            got = read_fetched(fs, f, idx, boff, buf + done, want,
                               done == 0 && pos + want == end ? early : NULL);
        if (early && early->replied)
            return got; /* answered: f may be released already */
        if (done == 0) /* after this read's own GET gave its first bytes: read-ahead
                        * started before would compete with it */
            fs_read_track(fs, f, (uint64_t)off, (size_t)(end - (uint64_t)off));
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

struct wfile *fs_file_wfile(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w = NULL;

    pthread_mutex_lock(&fs->lock);
    for (struct bfs_file *f = fs->files; f && !w; f = f->next) {
        if (f->t.ino == ino && f->w) {
            w = f->w;
            w->refs++;
        }
    }
    pthread_mutex_unlock(&fs->lock);
    return w;
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

/* Whether a handle on another version of f's inode is open: the kernel's
 * page cache is one per inode, so pages an old reader brings in would be
 * served to the new one (a mix of versions). Such a handle reads around
 * the page cache; the old readers keep theirs, all of one version. */
static int other_version_open(struct bfs_fs *fs, const struct bfs_file *f)
{
    int other = 0;

    pthread_mutex_lock(&fs->lock);
    for (const struct bfs_file *o = fs->files; o && !other; o = o->next)
        other = o != f && o->t.ino == f->t.ino && !o->w && strcmp(o->t.etag, f->t.etag) != 0;
    pthread_mutex_unlock(&fs->lock);
    return other;
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
        r = fs_revalidate_open(fs, ino, &n); /* close-to-open */
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
    f->direct = other_version_open(fs, f);
    *ret = f;
    return 0;
}

int bfs_fs_file_direct(const struct bfs_file *f)
{
    return f->direct;
}

/* A writable handle whose file was made by a server-side copy writes again:
 * the object comes back into a staging file, as for an open for writing. */
static int reattach(struct bfs_fs *fs, struct bfs_file *f)
{
    struct wfile *w;
    int r = fs_wfile_open(fs, f->t.ino, 0, &w);

    if (r < 0)
        return r;
    pthread_mutex_lock(&w->lock);
    w->opens++;
    w->writers++;
    pthread_mutex_unlock(&w->lock);
    f->w = w;
    return 0;
}

ssize_t bfs_fs_write(struct bfs_fs *fs, struct bfs_file *f, const char *buf, size_t size,
                     off_t off)
{
    ssize_t n;

    if (!f->writable)
        return -EBADF;
    if (!f->w) { /* its data went to S3 by a server-side copy (copy.c) */
        int r = reattach(fs, f);

        if (r < 0)
            return r;
    }
    n = fs_wfile_write(fs, f->w, buf, size, off);
    if (n >= 0 && !f->wrote) {
        pthread_mutex_lock(&f->w->lock);
        if (!f->wrote) {
            f->wrote = 1;
            f->w->unflushed++;
        }
        pthread_mutex_unlock(&f->w->lock);
    }
    return n;
}

/* This handle's writes are flushed (close); unflushed says whether every
 * other handle's are too. Caller holds w->lock. */
static void flushed(struct bfs_file *f, struct wfile *w)
{
    if (f->wrote) {
        f->wrote = 0;
        w->unflushed--;
    }
}

int bfs_fs_flush(struct bfs_fs *fs, struct bfs_file *f)
{
    struct wfile *w = f->w;
    int r = 0;

    if (!w || !f->writable)
        return 0;
    pthread_mutex_lock(&w->lock);
    /* close returns once what was written is journaled: the close that
     * leaves no handle with unflushed writes commits. Not "the last writer":
     * the releases that lower writers come after close has returned. A
     * handle still writing commits again at its own close. */
    flushed(f, w);
    if (w->dirty && w->unflushed == 0)
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
    fs_rfetch_release(fs, f);
    w = f->w;
    if (w) {
        pthread_mutex_lock(&w->lock);
        w->opens--;
        w->writers -= f->writable;
        flushed(f, w); /* a descriptor that never flushed (killed process) */
        if (f->writable && (w->writers == 0 || w->unflushed == 0) && w->dirty) {
            int r = fs_wfile_commit(fs, w);

            if (r == -ENOSPC || r == -EDQUOT)
                fs_wfile_abandon(fs, w);
            else if (r < 0) /* the data stays in the staging file; log it, nobody else can see it */
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
