/* SPDX-License-Identifier: MIT */
/*
 * copy.c: copy_file_range(2) inside one bucket as a server-side copy
 * (SPEC.md "Namespace operations"): `cp` of a file that is in S3 into a
 * new or truncated file becomes one CopyObject, and no byte of the data
 * passes through this machine. What is not that case is refused with
 * EOPNOTSUPP, and the kernel then copies the bytes itself (read, write),
 * as it does for any file system.
 *
 * The copy is made before copy_file_range returns, so nothing needs to be
 * journaled for it: once cp hears "copied", the object is in S3, and a
 * crash before that leaves cp with an error. The destination's pending
 * upload (what it held before the truncate) waits during the copy and is
 * cancelled once the copy is there; the handle then reads the new object
 * from S3, and a later write through it copies the object back into a
 * staging file first, as an open for writing does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

/* The source is the version in S3 as a whole: no writer holds changes to
 * it, and the handle reads one ETag. */
static int source_in_s3(struct bfs_fs *fs, const struct bfs_file *in)
{
    struct wfile *w = fs_wfile_find(fs, in->t.ino);
    int clean = 1;

    if (in->w || !in->t.key || !in->t.etag[0] || in->t.size == 0)
        clean = 0;
    if (w) { /* written on this mount since the reader opened */
        pthread_mutex_lock(&w->lock);
        clean = clean && fs_wstate(w) == WS_CLEAN && w->remote;
        pthread_mutex_unlock(&w->lock);
        fs_wfile_put(fs, w);
    }
    return clean;
}

/* The destination is a file only this handle has open, empty, in a
 * mapping of the same bucket and credentials as the source. */
static int target_ok(struct bfs_fs *fs, const struct bfs_file *in, const struct bfs_file *out,
                     struct mapping **ret_m, char **ret_key)
{
    struct wfile *w = out->w;
    int ok;

    if (!w || !out->writable ||
        fs_inode_target(fs, out->t.ino, ret_m, ret_key, NULL) < 0)
        return 0;
    pthread_mutex_lock(&w->lock);
    ok = w->opens == 1 && w->writers == 1 && w->size == 0 && !w->deleted && !w->moving_key;
    pthread_mutex_unlock(&w->lock);
    ok = ok && !(*ret_m)->read_only && (*ret_m)->client == in->t.client &&
         strcmp((*ret_m)->bucket, in->t.bucket) == 0;
    if (!ok) {
        free(*ret_key);
        *ret_key = NULL;
    }
    return ok;
}

/* The copy itself, with the destination's mode, owner and new mtime, and
 * only of the version the source handle reads. */
static int copy_object(struct bfs_fs *fs, const struct bfs_file *in, struct wfile *w,
                       struct mapping *m, const char *key, struct bfs_node *n,
                       char etag[BFS_S3_ETAG_MAX])
{
    struct bfs_s3_meta meta = {0};
    struct bfs_s3_copy_params p = {.replace_meta = 1, .meta = &meta,
                                   .content_type = fs_content_type(key), .if_match = in->t.etag};
    int r;

    pthread_mutex_lock(&w->lock);
    n->mode = w->mode, n->uid = w->uid, n->gid = w->gid;
    pthread_mutex_unlock(&w->lock);
    n->mtime_ns = bfs_now_ns();
    r = fs_meta_for(fs, n->ino, &meta, n->mode, n->uid, n->gid, n->mtime_ns);
    if (r == 0)
        r = bfs_s3_copy_object(m->client, in->t.bucket, in->t.key, m->bucket, key, &p, etag, NULL);
    bfs_s3_meta_done(&meta);
    return r;
}

/* The copy is in S3: the row says so, the handle reads it from there, and
 * the staging file's generation (the truncated file) is dropped. */
static void adopt(struct bfs_fs *fs, struct bfs_file *out, struct mapping *m, char *key,
                  struct bfs_node *n, const char *etag, uint64_t size)
{
    /* (the wfile itself goes at the end of the hold: bfs_fs_copy_range) */
    struct wfile *w = out->w;

    bfs_s3_etag_normalize(etag, n->etag);
    n->size = size;
    n->local = 0;
    n->fetched_ns = bfs_now_ns();
    n->ctime_ns = n->mtime_ns;
    n->meta |= BFS_META_MODE | BFS_META_UID | BFS_META_GID | BFS_META_MTIME | BFS_META_HEADED;
    (void)bfs_store_node_update(fs->store, n);
    pthread_mutex_lock(&w->lock);
    w->opens--;
    w->writers--;
    pthread_mutex_unlock(&w->lock);
    out->w = NULL;
    fs_wfile_put(fs, w);
    out->t.client = m->client;
    out->t.bucket = m->bucket;
    free(out->t.key);
    out->t.key = key;
    memcpy(out->t.etag, n->etag, sizeof(out->t.etag));
    out->t.size = size;
    fs_kernel_inval_inode(fs, out->t.ino, 1, 0);
}

/* What the destination's next upload would replace (conflict.c): a copy
 * over another machine's newer version is left to that upload instead. */
static const char *base_of(struct wfile *w, char known[BFS_S3_ETAG_MAX])
{
    int set;

    if (!w)
        return NULL;
    pthread_mutex_lock(&w->lock);
    set = w->base_set;
    memcpy(known, w->base_etag, BFS_S3_ETAG_MAX);
    pthread_mutex_unlock(&w->lock);
    return set ? known : NULL;
}

ssize_t bfs_fs_copy_range(struct bfs_fs *fs, struct bfs_file *in, off_t off_in,
                          struct bfs_file *out, off_t off_out, size_t len)
{
    uint64_t size = in->t.size;
    char etag[BFS_S3_ETAG_MAX], *key = NULL;
    struct bfs_node n;
    struct mapping *m;
    struct wfile *held;
    char known[BFS_S3_ETAG_MAX];
    int r;

    /* a whole file into an empty one, and one CopyObject can make it */
    if (off_in != 0 || off_out != 0 || len < size || size > BFS_S3_PART_MAX ||
        !source_in_s3(fs, in) || !target_ok(fs, in, out, &m, &key))
        return -EOPNOTSUPP;
    r = bfs_store_node_get(fs->store, out->t.ino, &n);
    held = r == 0 ? fs_wfile_hold(fs, out->t.ino) : NULL; /* its uploads wait */
    if (r == 0)
        r = fs_version_is(m, key, base_of(held, known));
    if (r == 0)
        r = copy_object(fs, in, out->w, m, key, &n, etag);
    if (r == 0) {
        atomic_fetch_add(&fs->copies, 1);
        atomic_fetch_add(&fs->copied_bytes, size);
        adopt(fs, out, m, key, &n, etag, size);
        key = NULL;
    }
    /* copied: no upload, what the file had is replaced (discard) */
    fs_wfile_unhold(fs, out->t.ino, held, r == 0);
    free(key);
    if (r < 0)
        bfs_debug("copy_file_range: no server-side copy (%s): the kernel copies the bytes",
                  strerror(-r));
    return r == 0 ? (ssize_t)size : -EOPNOTSUPP;
}
