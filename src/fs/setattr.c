/* SPDX-License-Identifier: MIT */
/*
 * setattr.c: attribute changes (chmod, chown, utimens, truncate): kept in
 * the row, riding on a pending upload when the file has a staging copy,
 * else written to S3 as a metadata copy of the object onto itself before
 * the call returns (SPEC.md "Namespace operations").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bucketfs/util.h"
#include "fs-int.h"

/* One HEAD and one copy onto itself. */
static int rewrite_meta_once(struct bfs_fs *fs, struct mapping *m, const char *key,
                             const struct bfs_node *n, char etag[BFS_S3_ETAG_MAX])
{
    struct bfs_s3_object o = {0};
    struct bfs_s3_meta meta = {0};
    struct bfs_s3_copy_params p = {.replace_meta = 1, .meta = &meta};
    int r = bfs_s3_head_object(m->client, m->bucket, key, &o, NULL);

    if (r < 0)
        return r;
    for (size_t i = 0; i < o.meta.n && r == 0; i++) {
        const char *name = o.meta.names[i];

        /* ours are set below; other tools' metadata is kept */
        if (strcmp(name, "mode") && strcmp(name, "uid") && strcmp(name, "gid") &&
            strcmp(name, "mtime") && strncmp(name, "xattr-", 6))
            r = bfs_s3_meta_add(&meta, name, o.meta.values[i]);
    }
    if (r == 0)
        r = fs_meta_for(fs, n->ino, &meta, n->mode, n->uid, n->gid, n->mtime_ns);
    p.content_type = o.content_type;
    p.if_match = o.etag; /* not over a version someone else just wrote */
    if (r == 0)
        r = bfs_s3_copy_object(m->client, m->bucket, key, m->bucket, key, &p, etag, NULL);
    bfs_s3_meta_done(&meta);
    bfs_s3_object_done(&o);
    return r;
}

/* chmod/chown/utimens of an object in S3: a copy onto itself with the new
 * metadata, keeping its content type and other metadata. The copy is of
 * the version just looked at; when another writer replaced it between the
 * HEAD and the copy (412), the new version gets the metadata instead. */
int fs_rewrite_meta(struct bfs_fs *fs, struct mapping *m, const char *key,
                    const struct bfs_node *n, char etag[BFS_S3_ETAG_MAX])
{
    int r = -ESTALE;

    for (int tries = 0; tries < 3 && r == -ESTALE; tries++)
        r = rewrite_meta_once(fs, m, key, n, etag);
    return r;
}

static void apply_attrs(struct bfs_node *n, const struct stat *a, int set)
{
    if (set & BFS_SET_MODE)
        n->mode = (n->mode & S_IFMT) | (a->st_mode & 07777);
    if (set & BFS_SET_UID)
        n->uid = a->st_uid;
    if (set & BFS_SET_GID)
        n->gid = a->st_gid;
    if (set & BFS_SET_MTIME)
        n->mtime_ns = (int64_t)a->st_mtim.tv_sec * 1000000000 + a->st_mtim.tv_nsec;
    if (set & BFS_SET_MTIME_NOW)
        n->mtime_ns = bfs_now_ns();
    if (set & BFS_SET_ATIME)
        n->atime_ns = (int64_t)a->st_atim.tv_sec * 1000000000 + a->st_atim.tv_nsec;
    if (set & BFS_SET_ATIME_NOW)
        n->atime_ns = bfs_now_ns();
    n->ctime_ns = bfs_now_ns(); /* any change of the inode's attributes */
    n->meta |= BFS_META_MODE | BFS_META_UID | BFS_META_GID | BFS_META_MTIME;
}

/* Sets mode, owner and times in w (w->lock held). */
static void apply_to_wfile(struct wfile *w, const struct stat *a, int set, struct bfs_node *n)
{
    n->mode = w->mode, n->uid = w->uid, n->gid = w->gid, n->mtime_ns = w->mtime_ns;
    n->atime_ns = w->atime_ns;
    apply_attrs(n, a, set);
    pthread_mutex_lock(&w->alock);
    w->mode = n->mode, w->uid = n->uid, w->gid = n->gid, w->mtime_ns = n->mtime_ns;
    w->ctime_ns = n->ctime_ns, w->atime_ns = n->atime_ns;
    pthread_mutex_unlock(&w->alock);
}

/* Mode, owner and times of a file with a staging copy ride on its upload
 * while it has one to come. When all of it is in S3 already, 1: the
 * caller rewrites the object's metadata instead (a copy onto itself, not
 * a new generation: that would send the whole file again). */
static int set_staged(struct bfs_fs *fs, struct wfile *w, const struct stat *a, int set,
                      struct bfs_node *n)
{
    int uploaded;

    pthread_mutex_lock(&w->lock);
    apply_to_wfile(w, a, set, n);
    uploaded = w->remote && w->base_set && !w->dirty && !w->uploading && !w->queued &&
               w->done_gen >= w->gen;
    pthread_mutex_unlock(&w->lock);
    return uploaded ? 1 : fs_wfile_touch(fs, w);
}

/* The metadata copy of an uploaded file made etag: its writer's next
 * upload replaces that version. */
static void set_base(struct wfile *w, const char *etag)
{
    pthread_mutex_lock(&w->lock);
    bfs_s3_etag_normalize(etag, w->base_etag);
    pthread_mutex_unlock(&w->lock);
}

/* ftruncate, fchmod, futimens of a file unlinked while open (Python's
 * tempfile.TemporaryFile): the handle's staging file and attributes only.
 * Nothing may reach S3 or the row (that would bring the name back). A
 * handle without a staging file has nowhere to keep a change: the answer
 * is what it shows. */
static int set_unlinked(struct bfs_fs *fs, uint64_t ino, const struct stat *a, int set,
                        struct stat *ret)
{
    struct wfile *w = fs_file_wfile(fs, ino);
    struct bfs_node n = {0};
    int r = 0;

    if (w) {
        pthread_mutex_lock(&w->lock);
        if (set & BFS_SET_SIZE)
            r = fs_wfile_truncate_locked(fs, w, (uint64_t)a->st_size);
        if (r == 0 && (set & ~BFS_SET_SIZE))
            apply_to_wfile(w, a, set, &n);
        pthread_mutex_unlock(&w->lock);
        fs_wfile_put(fs, w);
    }
    return r < 0 ? r : bfs_fs_getattr(fs, ino, ret);
}

static int set_size(struct bfs_fs *fs, uint64_t ino, uint64_t size)
{
    struct wfile *w = NULL;
    int r = fs_wfile_open(fs, ino, size == 0, &w);

    if (r < 0)
        return r;
    pthread_mutex_lock(&w->lock);
    if (w->size != size || size == 0)
        r = fs_wfile_truncate_locked(fs, w, size);
    if (r == 0 && w->writers == 0) /* truncate(2) without an open file */
        r = fs_wfile_commit(fs, w);
    pthread_mutex_unlock(&w->lock);
    fs_wfile_maybe_drop(fs, w);
    fs_wfile_put(fs, w);
    return r;
}

int bfs_fs_setattr(struct bfs_fs *fs, uint64_t ino, const struct stat *a, int set,
                   struct stat *ret)
{
    struct bfs_node n;
    struct mapping *m;
    struct wfile *w;
    char *key = NULL, etag[BFS_S3_ETAG_MAX];
    int r, kind;

    if (ino == BFS_ROOT_INO)
        return bfs_fs_getattr(fs, ino, ret); /* accepted; the root has nowhere to keep it */
    r = bfs_store_node_get(fs->store, ino, &n);
    if (r < 0)
        return r == -ENOENT ? -ESTALE : r;
    if (!n.present)
        return set_unlinked(fs, ino, a, set, ret);
    if (n.parent == BFS_ROOT_INO) { /* mapping directory: kept locally (SPEC.md) */
        if (set & BFS_SET_SIZE)
            return -EISDIR;
        apply_attrs(&n, a, set);
        r = bfs_store_node_update(fs->store, &n);
        return r < 0 ? r : bfs_fs_getattr(fs, ino, ret);
    }
    r = fs_inode_target(fs, ino, &m, &key, &kind);
    if (r == 0 && m->read_only)
        r = -EROFS;
    if (r == 0 && (set & BFS_SET_SIZE))
        r = kind == BFS_KIND_DIR ? -EISDIR : set_size(fs, ino, (uint64_t)a->st_size);
    set &= ~BFS_SET_SIZE;
    if (r == 0 && set) {
        struct stat cur;

        /* start from what the file shows now (defaults included) */
        if (bfs_fs_getattr(fs, ino, &cur) == 0 && !(n.meta & BFS_META_MODE)) {
            n.mode = cur.st_mode, n.uid = cur.st_uid, n.gid = cur.st_gid;
            n.mtime_ns = (int64_t)cur.st_mtim.tv_sec * 1000000000 + cur.st_mtim.tv_nsec;
        }
        w = fs_wfile_find(fs, ino);
        if (w)
            r = set_staged(fs, w, a, set, &n);
        else
            apply_attrs(&n, a, set);
        if (!w || r == 1) {
            r = 0;
            if (kind == BFS_KIND_DIR) /* a marker carries a directory's metadata */
                r = fs_put_small(fs, m, key, "", &n, "application/x-directory", etag);
            else
                r = fs_rewrite_meta(fs, m, key, &n, etag);
            if (r == 0) {
                if (kind != BFS_KIND_DIR)
                    bfs_s3_etag_normalize(etag, n.etag);
                n.fetched_ns = bfs_now_ns();
                r = bfs_store_node_update(fs->store, &n);
            }
            if (r == 0 && w)
                set_base(w, etag);
        }
        if (w)
            fs_wfile_put(fs, w);
    }
    free(key);
    return r < 0 ? r : bfs_fs_getattr(fs, ino, ret);
}
