/* SPDX-License-Identifier: MIT */
/*
 * write.c: write-back through staging files (SPEC.md "Writes").
 *
 * A file opened for writing gets a staging copy in the cache directory
 * (DIR/staging/INO-GEN): empty for O_TRUNC and new files, else a copy of
 * the object. Reads and writes of that inode go to the staging file, so
 * every reader on this mount sees written data at once. When the last
 * writer closes (flush of its last descriptor, or release), the file is
 * fsynced (or, when small, its bytes go into the row), a journal row is
 * committed and synced, and only then does close return; the upload runs
 * in the background (upload.c). The state machine is drawn above struct
 * wfile in fs-int.h.
 *
 * LOCK ORDER: w->lock before fs->lock. Never take w->lock holding fs->lock.
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
#include "fs-int.h"

#define COPY_CHUNK (1u << 20)
/* Files up to this size are committed inside their journal row: close then
 * costs one sync (the journal's) instead of two (the file's, then the
 * journal's), which is most of what closing a small file costs. */
#define INLINE_MAX (64u << 10)

static size_t wslot(uint64_t ino)
{
    return (size_t)(ino % WFILE_BUCKETS);
}

static struct wfile *table_find(struct bfs_fs *fs, uint64_t ino)
{
    for (struct wfile *w = fs->wfiles[wslot(ino)]; w; w = w->next)
        if (w->ino == ino)
            return w;
    return NULL;
}

struct wfile *fs_wfile_find(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w;

    pthread_mutex_lock(&fs->lock);
    w = table_find(fs, ino);
    if (w)
        w->refs++;
    pthread_mutex_unlock(&fs->lock);
    return w;
}

static void wfile_free(struct wfile *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->moving_key);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->alock);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void fs_wfile_put(struct bfs_fs *fs, struct wfile *w)
{
    int last;

    if (!w)
        return;
    /* the caller's reference and the table's: if w is idle, the caller is
     * the last to know, and an upload that finished while it held w could
     * not drop it (its staging file would stay until unmount) */
    pthread_mutex_lock(&fs->lock);
    last = w->refs == 2;
    pthread_mutex_unlock(&fs->lock);
    if (last)
        fs_wfile_maybe_drop(fs, w);
    pthread_mutex_lock(&fs->lock);
    last = --w->refs == 0;
    pthread_mutex_unlock(&fs->lock);
    if (last)
        wfile_free(w);
}

/* Takes w out of the table (dropping the table's reference). */
static void table_remove(struct bfs_fs *fs, struct wfile *w)
{
    int last = 0;

    pthread_mutex_lock(&fs->lock);
    for (struct wfile **pp = &fs->wfiles[wslot(w->ino)]; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            last = --w->refs == 0;
            break;
        }
    }
    pthread_mutex_unlock(&fs->lock);
    if (last)
        wfile_free(w);
}

static struct wfile *wfile_new(uint64_t ino, int fd, uint64_t gen)
{
    struct wfile *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->ino = ino;
    w->fd = fd;
    w->gen = gen;
    w->low_gen = gen;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->alock, NULL);
    pthread_cond_init(&w->cond, NULL);
    return w;
}

/* Copies the object's bytes into the staging file, through the block cache. */
static int fill(struct bfs_fs *fs, uint64_t ino, int fd, uint64_t size)
{
    struct bfs_file *f = NULL;
    char *buf = malloc(COPY_CHUNK);
    uint64_t off = 0;
    int r = buf ? bfs_fs_open(fs, ino, O_RDONLY, &f) : -ENOMEM;

    while (r == 0 && off < size) {
        ssize_t n = bfs_fs_read(fs, f, buf, COPY_CHUNK, (off_t)off);

        if (n <= 0) {
            r = n < 0 ? (int)n : -EIO; /* shorter than its size said */
            break;
        }
        if (pwrite(fd, buf, (size_t)n, (off_t)off) != n)
            r = -errno ? -errno : -EIO;
        off += (uint64_t)n;
    }
    if (f)
        bfs_fs_release(fs, f);
    free(buf);
    return r;
}

static int open_staging(struct bfs_fs *fs, uint64_t ino, uint64_t gen, int flags)
{
    char path[4096];
    int fd;

    bfs_store_staging_path(fs->store, ino, gen, path, sizeof(path));
    fd = open(path, flags | O_RDWR | O_CLOEXEC, 0600);
    return fd < 0 ? -errno : fd;
}

static void unlink_staging(struct bfs_fs *fs, uint64_t ino, uint64_t gen)
{
    char path[4096];

    bfs_store_staging_path(fs->store, ino, gen, path, sizeof(path));
    (void)unlink(path);
}

void fs_make_room(struct bfs_fs *fs)
{
    bfs_store_shrink(fs->store, 0);
    /* an evicted block's space comes back when its kept descriptor closes;
     * then the index rows the full disk kept from going can go too */
    fs_blockfds_trim(&fs->bfds);
    bfs_store_shrink(fs->store, 0);
}

/* A new, empty staging file for gen. Never an old file of that name: a
 * generation number comes back when a wfile is made again for the inode,
 * and what is left at its name may be a hard link to another generation's
 * bytes (fs_wfile_next_gen), which O_TRUNC would destroy. */
static int create_staging(struct bfs_fs *fs, uint64_t ino, uint64_t gen)
{
    unlink_staging(fs, ino, gen);
    return open_staging(fs, ino, gen, O_CREAT | O_EXCL);
}

void fs_wfile_forget_gens(struct bfs_fs *fs, struct wfile *w, uint64_t below)
{
    for (; w->low_gen < below; w->low_gen++)
        unlink_staging(fs, w->ino, w->low_gen);
}

/* A new wfile for ino from its node: staging gen 1, filled unless truncate. */
static int create(struct bfs_fs *fs, uint64_t ino, int truncate, struct wfile **ret)
{
    struct bfs_node n;
    struct stat st;
    struct wfile *w;
    int fd, r;

    r = bfs_store_node_get(fs->store, ino, &n);
    if (r < 0)
        return r == -ENOENT ? -ESTALE : r;
    if (n.kind == BFS_KIND_DIR)
        return -EISDIR;
    /* the copy is of what S3 holds now (another machine may have written
     * it since), and the new version keeps the object's mode, owner and
     * mtime, which a listing that showed defaults (meta.c) does not say */
    if (!n.local && (r = fs_revalidate_within(fs, ino, &n, fs->reval_ms)) < 0)
        return r; /* (a local row's wfile is the one being made: settle would drop it) */
    fd = create_staging(fs, ino, 1);
    if (fd < 0)
        return fd;
    r = truncate || n.size == 0 ? 0 : fill(fs, ino, fd, n.size);
    w = r == 0 ? wfile_new(ino, fd, 1) : NULL;
    if (!w) {
        close(fd);
        unlink_staging(fs, ino, 1);
        return r < 0 ? r : -ENOMEM;
    }
    fs_node_to_stat(fs, &n, &st);
    w->size = truncate ? 0 : n.size;
    w->mtime_ns = truncate ? bfs_now_ns() : n.mtime_ns; /* O_TRUNC is a change, even of nothing */
    w->ctime_ns = n.ctime_ns;
    w->atime_ns = n.atime_ns;
    w->mode = st.st_mode;
    w->uid = st.st_uid;
    w->gid = st.st_gid;
    w->dirty = truncate;
    w->remote = n.etag[0] != '\0';
    /* what this version replaces: the object as this open found it */
    memcpy(w->base_etag, n.etag, sizeof(w->base_etag));
    w->base_set = 1;
    if (w->remote && !w->dirty)
        w->done_gen = w->gen; /* a copy of what S3 holds: nothing to send */
    *ret = w;
    return 0;
}

/* Finds ino's wfile (a reference), or marks ino as being created by the
 * caller when it has none. Waits while another thread creates it. */
static struct wfile *find_or_claim(struct bfs_fs *fs, uint64_t ino, struct wcreating *mark)
{
    struct wfile *w;

    pthread_mutex_lock(&fs->lock);
    for (;;) {
        struct wcreating *c = fs->wcreating;

        w = table_find(fs, ino);
        if (w) {
            w->refs++;
            break;
        }
        while (c && c->ino != ino)
            c = c->next;
        if (!c) {
            mark->ino = ino;
            mark->next = fs->wcreating;
            fs->wcreating = mark;
            break;
        }
        pthread_cond_wait(&fs->wcreated, &fs->lock);
    }
    pthread_mutex_unlock(&fs->lock);
    return w;
}

/* Ends a claim, putting w (if made) in the table. Caller holds fs->lock. */
static void unclaim_locked(struct bfs_fs *fs, struct wcreating *mark, struct wfile *w)
{
    for (struct wcreating **pp = &fs->wcreating; *pp; pp = &(*pp)->next) {
        if (*pp == mark) {
            *pp = mark->next;
            break;
        }
    }
    if (w) {
        w->refs = 2; /* the table's and the caller's */
        w->next = fs->wfiles[wslot(w->ino)];
        fs->wfiles[wslot(w->ino)] = w;
    }
    pthread_cond_broadcast(&fs->wcreated);
}

int fs_wfile_open(struct bfs_fs *fs, uint64_t ino, int truncate, struct wfile **ret)
{
    struct wcreating mark;
    struct wfile *w = find_or_claim(fs, ino, &mark);
    int r;

    if (!w) {
        /* filling may download the whole object: no lock is held */
        r = create(fs, ino, truncate, &w);
        pthread_mutex_lock(&fs->lock);
        unclaim_locked(fs, &mark, r == 0 ? w : NULL);
        pthread_mutex_unlock(&fs->lock);
        if (r < 0)
            return r;
        *ret = w;
        return 0;
    }
    if (truncate) {
        pthread_mutex_lock(&w->lock);
        r = fs_wfile_truncate_locked(fs, w, 0);
        pthread_mutex_unlock(&w->lock);
        if (r < 0) {
            fs_wfile_put(fs, w);
            return r;
        }
    }
    *ret = w;
    return 0;
}

/* Before the first change after a commit: move to generation gen+1, as a
 * copy, so that an upload of gen keeps reading an unchanging file. */
static int unseal(struct bfs_fs *fs, struct wfile *w)
{
    int fd, r = 0;
    off_t in = 0, out = 0;
    uint64_t left = w->size;

    if (!w->sealed || w->deleted) /* an unlinked file is never sent again */
        return 0;
    fd = create_staging(fs, w->ino, w->gen + 1);
    if (fd < 0)
        return fd;
    while (left > 0 && r == 0) {
        ssize_t n = copy_file_range(w->fd, &in, fd, &out, left, 0);

        if (n <= 0)
            r = n < 0 ? -errno : -EIO;
        else
            left -= (uint64_t)n;
    }
    if (r < 0) {
        close(fd);
        unlink_staging(fs, w->ino, w->gen + 1);
        return r;
    }
    pthread_mutex_lock(&w->alock); /* readers take only alock */
    close(w->fd);
    w->fd = fd;
    pthread_mutex_unlock(&w->alock);
    /* gen's file stays for its upload, which removes it when done; if that
     * upload already finished, nobody needs it any more */
    if (!w->uploading && !w->queued && w->done_gen >= w->gen)
        unlink_staging(fs, w->ino, w->gen);
    ws_new_gen(w);
    return 0;
}

int fs_wfile_next_gen(struct bfs_fs *fs, struct wfile *w)
{
    char from[4096], to[4096];

    if (!w->sealed)
        return 0;
    if (w->writers > 0) /* writes would follow into the file gen's upload reads */
        return unseal(fs, w);
    /* same bytes, new name: a hard link is enough (the commit that follows
     * seals gen+1 again before anything can write to it) */
    bfs_store_staging_path(fs->store, w->ino, w->gen, from, sizeof(from));
    bfs_store_staging_path(fs->store, w->ino, w->gen + 1, to, sizeof(to));
    (void)unlink(to);
    if (link(from, to) < 0)
        return unseal(fs, w);
    if (!w->uploading && !w->queued && w->done_gen >= w->gen)
        (void)unlink(from);
    ws_new_gen(w);
    return 0;
}

int fs_wfile_truncate_locked(struct bfs_fs *fs, struct wfile *w, uint64_t size)
{
    int r = unseal(fs, w);

    if (r == 0 && ftruncate(w->fd, (off_t)size) < 0)
        r = -errno;
    if (r == 0) {
        pthread_mutex_lock(&w->alock);
        w->size = size;
        w->mtime_ns = bfs_now_ns();
        pthread_mutex_unlock(&w->alock);
        ws_written(w);
    }
    return r;
}

ssize_t fs_wfile_write(struct bfs_fs *fs, struct wfile *w, const char *buf, size_t size,
                       off_t off)
{
    ssize_t n;
    int r;

    pthread_mutex_lock(&w->lock);
    r = unseal(fs, w);
    if (r < 0) {
        pthread_mutex_unlock(&w->lock);
        return r;
    }
    n = pwrite(w->fd, buf, size, off);
    if (n < 0 && (errno == ENOSPC || errno == EDQUOT)) {
        fs_make_room(fs); /* clean cached blocks give way to written data */
        n = pwrite(w->fd, buf, size, off);
    }
    if (n < 0) {
        n = -errno; /* ENOSPC: the cache disk is full; nothing committed is lost */
    } else {
        pthread_mutex_lock(&w->alock);
        if ((uint64_t)off + (uint64_t)n > w->size)
            w->size = (uint64_t)off + (uint64_t)n;
        w->mtime_ns = bfs_now_ns();
        pthread_mutex_unlock(&w->alock);
        ws_written(w);
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

ssize_t fs_wfile_read(struct wfile *w, char *buf, size_t size, off_t off)
{
    ssize_t n;

    /* alock: w->fd stays the staging file while it reads, and the read does
     * not wait for a commit's fsync (writes to the file are the kernel's
     * to order, as for any file) */
    pthread_mutex_lock(&w->alock);
    n = pread(w->fd, buf, size, off);
    if (n < 0)
        n = -errno;
    pthread_mutex_unlock(&w->alock);
    return n;
}

/* A small file goes into the journal row (one sync, the journal's); a
 * larger one is fsynced here and the row only points at it. *ret is the
 * small file's bytes (caller frees) or NULL. */
static int inline_bytes(struct wfile *w, char **ret)
{
    char *data;
    ssize_t n;

    *ret = NULL;
    if (w->size > INLINE_MAX)
        return fsync(w->fd) < 0 ? -errno : 0;
    data = malloc(w->size ? w->size : 1);
    if (!data)
        return -ENOMEM;
    n = pread(w->fd, data, w->size, 0);
    if (n != (ssize_t)w->size) {
        free(data);
        return n < 0 ? -errno : -EIO;
    }
    *ret = data;
    return 0;
}

int fs_wfile_commit(struct bfs_fs *fs, struct wfile *w)
{
    struct bfs_upload u = {.ino = w->ino, .gen = w->gen, .size = w->size,
                           .mtime_ns = w->mtime_ns, .mode = w->mode, .uid = w->uid,
                           .gid = w->gid, .base_etag = w->base_set ? w->base_etag : NULL};
    struct mapping *m;
    struct bfs_node n;
    char *key = NULL, *data = NULL;
    int r;

    if (!w->dirty || w->deleted)
        return 0; /* nothing new, or unlinked: nothing to send */
    r = inline_bytes(w, &data);
    if (r < 0)
        return r;
    if (w->moving_key) { /* a rename is under way: the new name is the one */
        m = w->moving_map;
        key = strdup(w->moving_key);
        r = key ? 0 : -ENOMEM;
    } else {
        r = fs_inode_target(fs, w->ino, &m, &key, NULL);
    }
    if (r == 0) {
        u.map = m->name;
        u.key = key;
        r = bfs_store_upload_put(fs->store, &u, data, data ? w->size : 0);
    }
    free(key);
    free(data);
    if (r < 0)
        return r;
    if (bfs_store_node_get(fs->store, w->ino, &n) == 0) {
        n.size = w->size;
        n.mtime_ns = w->mtime_ns;
        if (w->ctime_ns > n.ctime_ns) /* a rename may have set the row's since */
            n.ctime_ns = w->ctime_ns;
        if (w->atime_ns)
            n.atime_ns = w->atime_ns;
        n.mode = w->mode;
        n.uid = w->uid;
        n.gid = w->gid;
        n.meta = BFS_META_MODE | BFS_META_UID | BFS_META_GID | BFS_META_MTIME;
        n.etag[0] = '\0';
        n.local = 1;
        n.fetched_ns = bfs_now_ns();
        (void)bfs_store_node_update(fs->store, &n);
    }
    ws_committed(fs, w);
    return 0;
}

/* Goes back to the generation the journal holds (its file was kept for
 * its upload); -ENOENT when there is none. */
static int back_to_committed(struct bfs_fs *fs, struct wfile *w)
{
    struct bfs_upload u;
    int fd, r = bfs_store_upload_get(fs->store, w->ino, &u);

    if (r < 0)
        return r;
    fd = u.gen < w->gen ? open_staging(fs, w->ino, u.gen, 0) : -ENOENT;
    if (fd >= 0) {
        unlink_staging(fs, w->ino, w->gen);
        pthread_mutex_lock(&w->alock);
        close(w->fd);
        w->fd = fd;
        w->size = u.size;
        w->mtime_ns = u.mtime_ns;
        w->mode = u.mode;
        w->uid = u.uid;
        w->gid = u.gid;
        pthread_mutex_unlock(&w->alock);
        ws_back_to(w, u.gen, 0);
    }
    bfs_upload_done(&u);
    return fd < 0 ? fd : 0;
}

void fs_wfile_abandon(struct bfs_fs *fs, struct wfile *w)
{
    struct bfs_node n;

    if (!w->dirty || w->deleted)
        return;
    bfs_err("inode %llu: written data could not be committed (the cache disk is full); "
            "the file goes back to its last saved state", (unsigned long long)w->ino);
    if (back_to_committed(fs, w) == 0) {
        if (bfs_store_node_get(fs->store, w->ino, &n) == 0) {
            n.size = w->size;
            n.mtime_ns = w->mtime_ns;
            (void)bfs_store_node_update(fs->store, &n);
        }
    } else if (w->remote) {
        /* the object in S3 is the file again: nothing to send, and the
         * next use asks S3 what it is */
        if (ftruncate(w->fd, 0) < 0)
            bfs_warn("inode %llu: cannot free its staging file: %s", (unsigned long long)w->ino,
                     strerror(errno));
        ws_back_to(w, w->gen, 1);
        if (bfs_store_node_get(fs->store, w->ino, &n) == 0) {
            n.local = 0;
            n.fetched_ns = 0;
            (void)bfs_store_node_update(fs->store, &n);
        }
    } else if (ftruncate(w->fd, 0) == 0) { /* a new file: it stays, empty */
        pthread_mutex_lock(&w->alock);
        w->size = 0;
        w->mtime_ns = bfs_now_ns();
        pthread_mutex_unlock(&w->alock);
        (void)fs_wfile_commit(fs, w);
    }
    fs_kernel_inval_inode(fs, w->ino, 1, 0);
}

/* Drops a wfile nobody needs: uploaded, unused. Caller holds w->lock. */
static int idle(const struct wfile *w)
{
    return w->opens == 0 && !w->dirty && !w->uploading && !w->queued && w->done_gen >= w->gen;
}

void fs_wfile_maybe_drop(struct bfs_fs *fs, struct wfile *w)
{
    int drop = 0;

    pthread_mutex_lock(&w->lock);
    if (idle(w) && !w->deleted) { /* a deleted one has left the table already */
        /* only if nobody else holds it: a concurrent open that just found it
         * must not end up writing into a dropped, unlinked staging file.
         * The caller's reference and the table's make two. */
        pthread_mutex_lock(&fs->lock);
        if (w->refs == 2) {
            for (struct wfile **pp = &fs->wfiles[wslot(w->ino)]; *pp; pp = &(*pp)->next) {
                if (*pp == w) {
                    *pp = w->next;
                    w->refs--;
                    drop = 1;
                    break;
                }
            }
        }
        pthread_mutex_unlock(&fs->lock);
        if (drop) /* every generation is in S3: no file is needed */
            fs_wfile_forget_gens(fs, w, w->gen + 1);
    }
    pthread_mutex_unlock(&w->lock);
}

int fs_wfile_wait_upload(struct bfs_fs *fs, struct wfile *w, uint64_t gen)
{
    int r;

    if (w->done_gen < gen && w->queued && !w->uploading)
        fs_upload_enqueue(fs, w->ino); /* someone waits: skip upload_delay */
    while (w->done_gen < gen && !w->deleted && (w->uploading || w->queued) &&
           w->last_err == 0)
        pthread_cond_wait(&w->cond, &w->lock);
    r = w->done_gen >= gen || w->deleted ? 0 : w->last_err ? w->last_err : -EIO;
    return r;
}

int fs_wfile_wait_clean(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w = fs_wfile_find(fs, ino);
    int r = 0;

    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    if (w->dirty)
        r = fs_wfile_commit(fs, w);
    if (r == 0)
        r = fs_wfile_wait_upload(fs, w, w->gen);
    pthread_mutex_unlock(&w->lock);
    fs_wfile_put(fs, w);
    return r;
}

void fs_wfile_discard(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w = fs_wfile_find(fs, ino);

    if (!w) {
        (void)bfs_store_upload_delete(fs->store, ino);
        return;
    }
    pthread_mutex_lock(&w->lock);
    /* let a running upload land first: undoing it later could delete what
     * a rename or a new file puts under the same key meanwhile */
    while (w->uploading)
        pthread_cond_wait(&w->cond, &w->lock);
    (void)bfs_store_upload_delete(fs->store, ino);
    ws_cancelled(w);
    /* open handles keep reading and writing the unlinked file through their
     * descriptor, as on a local disk; the name is free at once, and no
     * upload will read an older generation's file either */
    fs_wfile_forget_gens(fs, w, w->gen + 1);
    pthread_mutex_unlock(&w->lock);
    table_remove(fs, w);
    fs_wfile_put(fs, w);
}

int fs_wfiles_snapshot(struct bfs_fs *fs, struct wfile ***ret, size_t *ret_n)
{
    struct wfile **v = NULL;
    size_t n = 0, cap = 0;
    int r = 0;

    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < WFILE_BUCKETS && r == 0; i++) {
        for (struct wfile *w = fs->wfiles[i]; w && r == 0; w = w->next) {
            if (n == cap) {
                struct wfile **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

                if (!nv) {
                    r = -ENOMEM;
                    break;
                }
                v = nv;
            }
            w->refs++;
            v[n++] = w;
        }
    }
    pthread_mutex_unlock(&fs->lock);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            fs_wfile_put(fs, v[i]);
        free(v);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

struct wfile *fs_wfile_hold(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w = fs_wfile_find(fs, ino);

    if (w) {
        pthread_mutex_lock(&w->lock);
        ws_hold(w);
        pthread_mutex_unlock(&w->lock);
    }
    return w;
}

void fs_wfile_unhold(struct bfs_fs *fs, uint64_t ino, struct wfile *w, int discard)
{
    if (w) {
        pthread_mutex_lock(&w->lock);
        if (ws_unhold(w) && !discard)
            fs_upload_enqueue(fs, ino); /* still queued: the wait resumes */
        pthread_mutex_unlock(&w->lock);
    }
    if (discard)
        fs_wfile_discard(fs, ino);
    fs_wfile_put(fs, w);
}

void fs_wfile_stat(struct bfs_fs *fs, uint64_t ino, struct stat *st)
{
    struct wfile *w = fs_wfile_find(fs, ino);

    if (w) {
        fs_wfile_stat_of(w, st);
        fs_wfile_put(fs, w);
    }
}

void fs_wfile_stat_of(struct wfile *w, struct stat *st)
{
    int64_t row_ctime;

    pthread_mutex_lock(&w->alock);
    st->st_size = (off_t)w->size;
    st->st_blocks = (blkcnt_t)((w->size + 511) / 512);
    row_ctime = st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec; /* a rename's */
    fs_stat_times(st, w->mtime_ns, w->ctime_ns > row_ctime ? w->ctime_ns : row_ctime,
                  w->atime_ns);
    st->st_mode = (st->st_mode & S_IFMT) | (w->mode & 07777);
    st->st_uid = w->uid;
    st->st_gid = w->gid;
    pthread_mutex_unlock(&w->alock);
}

static int recover_one(void *ctx, const struct bfs_upload *u)
{
    struct bfs_fs *fs = ctx;
    struct bfs_node n;
    struct wfile *w;
    int fd = open_staging(fs, u->ino, u->gen, 0);

    if (fd < 0) {
        bfs_err("upload journal: staging file of %s (inode %llu) is missing: %s", u->key,
                (unsigned long long)u->ino, strerror(-fd));
        (void)bfs_store_upload_failed(fs->store, u->ino, u->gen, 1, "staging file missing",
                                      INT64_MAX);
        return 0;
    }
    w = wfile_new(u->ino, fd, u->gen);
    if (!w) {
        close(fd);
        return -ENOMEM;
    }
    w->size = u->size;
    w->mtime_ns = u->mtime_ns;
    w->mode = u->mode;
    w->uid = u->uid;
    w->gid = u->gid;
    if (bfs_store_node_get(fs->store, u->ino, &n) == 0) { /* the journal keeps no times */
        w->ctime_ns = n.ctime_ns;
        w->atime_ns = n.atime_ns;
    }
    w->base_set = u->base_etag != NULL;
    snprintf(w->base_etag, sizeof(w->base_etag), "%s", u->base_etag ? u->base_etag : "");
    w->sealed = 1; /* committed, as ws_committed leaves it */
    w->queued = 1;
    w->refs = 1;
    pthread_mutex_lock(&fs->lock);
    w->next = fs->wfiles[wslot(u->ino)];
    fs->wfiles[wslot(u->ino)] = w;
    pthread_mutex_unlock(&fs->lock);
    fs_upload_enqueue(fs, u->ino);
    return 0;
}

/* Staging files that no journal row names are left over: a generation
 * whose upload a crash interrupted after a newer one was committed, or a
 * write never closed. Nothing refers to them (recovery made the wfiles of
 * every row already), so they go. */
static void remove_orphans(struct bfs_fs *fs)
{
    char dir[4096], *slash;
    struct dirent *e;
    DIR *d;

    bfs_store_staging_path(fs->store, 0, 0, dir, sizeof(dir));
    slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    d = opendir(dir);
    while (d && (e = readdir(d))) {
        unsigned long long ino, gen;
        struct bfs_upload u;
        int keep, end = 0;

        if (sscanf(e->d_name, "%llu-%llu%n", &ino, &gen, &end) != 2 || e->d_name[end])
            continue; /* not a staging file */
        keep = bfs_store_upload_get(fs->store, ino, &u);
        if (keep == 0) {
            keep = u.gen == gen;
            bfs_upload_done(&u);
        } else {
            keep = keep != -ENOENT; /* the journal cannot say: keep it */
        }
        if (!keep)
            unlink_staging(fs, ino, gen);
    }
    if (d)
        closedir(d);
}

int fs_wfiles_recover(struct bfs_fs *fs)
{
    int r = bfs_store_uploads(fs->store, recover_one, fs);

    if (r == 0)
        remove_orphans(fs);
    return r;
}

void fs_wfiles_free(struct bfs_fs *fs)
{
    for (size_t i = 0; i < WFILE_BUCKETS; i++) {
        struct wfile *w, *next;

        for (w = fs->wfiles[i]; w; w = next) {
            next = w->next;
            wfile_free(w);
        }
        fs->wfiles[i] = NULL;
    }
    remove_orphans(fs);
}

int fs_wfile_touch(struct bfs_fs *fs, struct wfile *w)
{
    int r = 0;

    pthread_mutex_lock(&w->lock);
    if (!w->dirty) {
        r = fs_wfile_next_gen(fs, w);
        if (r == 0)
            ws_written(w);
    }
    if (r == 0 && w->writers == 0)
        r = fs_wfile_commit(fs, w);
    pthread_mutex_unlock(&w->lock);
    return r;
}
