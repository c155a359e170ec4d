/* SPDX-License-Identifier: MIT */
/*
 * namespace.c: changing the tree (SPEC.md "Namespace operations"): create,
 * mkdir, mknod, symlink, unlink, rmdir and rename (attribute changes are
 * setattr.c's).
 *
 * File data goes through write-back (write.c); everything else here is
 * done on S3 before the call returns, so the tree other machines see and
 * the one this mount shows stay the same. Renaming a file that only exists
 * here is free; otherwise it is a server-side copy and a delete. Renaming
 * a directory copies every key below it in parallel: it is not atomic.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define COPY_JOBS 8

/* The mapping and key of directory parent, if things may be made in it. */
static int writable_dir(struct bfs_fs *fs, uint64_t parent, struct mapping **m, char **pkey)
{
    int kind, r;

    if (parent == BFS_ROOT_INO)
        return -EPERM; /* the root holds mappings only */
    r = fs_inode_target(fs, parent, m, pkey, &kind);
    if (r < 0)
        return r;
    if (kind != BFS_KIND_DIR)
        r = -ENOTDIR;
    else if ((*m)->read_only)
        r = -EROFS;
    if (r < 0) {
        free(*pkey);
        *pkey = NULL;
    }
    return r;
}

/* A name whose key S3 cannot take: ENAMETOOLONG, the honest answer. */
static int key_fits(const char *pkey, const char *name, int dir)
{
    return strlen(pkey) + strlen(name) + (dir != 0) > BFS_S3_KEY_MAX ? -ENAMETOOLONG : 0;
}

static char *join(const char *pkey, const char *name, int dir)
{
    struct bfs_buf b;

    bfs_buf_init(&b, 8192);
    if (bfs_buf_addf(&b, "%s%s%s", pkey, name, dir ? "/" : "") < 0)
        return NULL;
    return bfs_buf_steal(&b);
}

static int check_name(const char *name)
{
    size_t n = strlen(name);

    if (n > 255)
        return -ENAMETOOLONG;
    return fs_name_valid(name, n) ? 0 : -EINVAL;
}

/* A name was made or removed in dir: its mtime (and ctime, which stat
 * shows as the mtime) is now, as POSIX says. Kept in the row only: S3 has
 * no directory times to change, so another mount shows the marker's. The
 * kernel asks again, as it drops the directory's attributes itself. */
static void dir_changed(struct bfs_fs *fs, uint64_t dir)
{
    struct bfs_node n;

    if (dir == BFS_ROOT_INO || bfs_store_node_get(fs->store, dir, &n) < 0 ||
        n.kind != BFS_KIND_DIR)
        return;
    n.mtime_ns = bfs_now_ns();
    (void)bfs_store_node_update(fs->store, &n);
}

/* Records a new child row and gives the kernel its first lookup count. */
static int add_child(struct bfs_fs *fs, struct bfs_node *n, struct stat *ret)
{
    int r = bfs_store_node_create(fs->store, n);

    if (r == 0)
        r = fs_inode_ref(fs, n->parent, n);
    if (r == 0) {
        fs_negative_clear(fs, n->parent);
        fs_node_to_stat(fs, n, ret);
        dir_changed(fs, n->parent);
    }
    return r;
}

static void new_node(struct bfs_node *n, uint64_t parent, const char *name, int kind,
                     uint32_t mode, uint32_t uid, uint32_t gid)
{
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->kind = kind;
    n->mode = mode;
    n->uid = uid;
    n->gid = gid;
    n->mtime_ns = bfs_now_ns();
    n->fetched_ns = n->mtime_ns;
    n->meta = BFS_META_MODE | BFS_META_UID | BFS_META_GID | BFS_META_MTIME | BFS_META_HEADED;
}

int fs_put_small(struct bfs_fs *fs, struct mapping *m, const char *key, const char *body,
                 const struct bfs_node *n, const char *ctype, char etag[BFS_S3_ETAG_MAX])
{
    struct bfs_s3_meta meta = {0};
    struct bfs_s3_put_params p = {.meta = &meta, .content_type = ctype};
    struct bfs_s3_body b = {.data = body, .fd = -1, .length = strlen(body)};
    int r = fs_meta_for(fs, n->ino, &meta, n->mode, n->uid, n->gid, n->mtime_ns);

    if (r == 0)
        r = bfs_s3_put_object(m->client, m->bucket, key, &b, &p, etag, NULL);
    bfs_s3_meta_done(&meta);
    return r;
}

int bfs_fs_create(struct bfs_fs *fs, uint64_t parent, const char *name, mode_t mode,
                  uid_t uid, gid_t gid, struct stat *ret, struct bfs_file **ret_f)
{
    struct bfs_node n;
    struct mapping *m;
    struct wfile *w = NULL;
    struct bfs_file *f;
    char *pkey = NULL;
    int r = check_name(name);

    if (r == 0)
        r = writable_dir(fs, parent, &m, &pkey);
    if (r == 0)
        r = key_fits(pkey, name, 0);
    free(pkey);
    if (r < 0)
        return r;
    new_node(&n, parent, name, BFS_KIND_FILE, S_IFREG | (mode & 07777), uid, gid);
    n.local = 1;
    r = add_child(fs, &n, ret);
    if (r < 0)
        return r;
    fs_wfile_discard(fs, n.ino); /* a pending file that had this row before */
    r = fs_wfile_open(fs, n.ino, 1, &w);
    f = r == 0 ? calloc(1, sizeof(*f)) : NULL;
    if (!f) {
        fs_wfile_put(fs, w);
        bfs_fs_forget(fs, n.ino, 1);
        return r < 0 ? r : -ENOMEM;
    }
    pthread_mutex_lock(&w->lock);
    ws_written(w); /* an empty new file is still a file to upload */
    pthread_mutex_lock(&w->alock);
    w->mode = n.mode;
    w->uid = uid;
    w->gid = gid;
    w->mtime_ns = n.mtime_ns;
    pthread_mutex_unlock(&w->alock);
    w->writers++;
    w->opens++;
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_init(&f->lock, NULL);
    f->w = w;
    f->writable = 1;
    f->t.ino = n.ino;
    fs_file_track(fs, f);
    *ret_f = f;
    return 0;
}

/* mkdir, symlink, mknod: a small object PUT with its metadata, then the
 * new child row. FIFOs, sockets and devices are zero-byte objects whose
 * mode says what they are (the s3fs convention). */
static int make_object(struct bfs_fs *fs, uint64_t parent, const char *name, int kind,
                       uint32_t mode, uid_t uid, gid_t gid, const char *body, struct stat *ret)
{
    int dir = kind == BFS_KIND_DIR;
    struct bfs_node n;
    struct mapping *m;
    char *pkey = NULL, *key = NULL, etag[BFS_S3_ETAG_MAX];
    int r = check_name(name);

    if (r == 0)
        r = writable_dir(fs, parent, &m, &pkey);
    if (r == 0)
        r = key_fits(pkey, name, dir);
    if (r == 0 && !(key = join(pkey, name, dir)))
        r = -ENOMEM;
    new_node(&n, parent, name, kind, mode, uid, gid);
    n.size = strlen(body);
    if (r == 0)
        r = fs_put_small(fs, m, key, body, &n,
                         dir ? "application/x-directory" : "application/octet-stream", etag);
    if (r == 0 && !dir)
        bfs_s3_etag_normalize(etag, n.etag);
    if (r == 0)
        r = add_child(fs, &n, ret);
    if (r == 0 && dir) /* a new directory is known to be empty: no LIST needed */
        (void)bfs_store_listing_replace(fs->store, n.ino, NULL, 0, bfs_now_ns());
    free(pkey);
    free(key);
    return r;
}

int bfs_fs_mkdir(struct bfs_fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid,
                 gid_t gid, struct stat *ret)
{
    return make_object(fs, parent, name, BFS_KIND_DIR, S_IFDIR | (mode & 07777), uid, gid, "",
                       ret);
}

int bfs_fs_symlink(struct bfs_fs *fs, const char *target, uint64_t parent, const char *name,
                   uid_t uid, gid_t gid, struct stat *ret)
{
    if (strlen(target) > 4095)
        return -ENAMETOOLONG;
    return make_object(fs, parent, name, BFS_KIND_SYMLINK, S_IFLNK | 0777, uid, gid, target,
                       ret);
}

int bfs_fs_mknod(struct bfs_fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid,
                 gid_t gid, struct stat *ret)
{
    return make_object(fs, parent, name, BFS_KIND_FILE, mode, uid, gid, "", ret);
}

/* Looks parent/name up for a change: its row and writable mapping/key. */
static int target_of(struct bfs_fs *fs, uint64_t parent, const char *name, struct bfs_node *n,
                     struct mapping **m, char **key)
{
    struct stat st;
    int r = bfs_fs_lookup(fs, parent, name, &st);

    if (r < 0)
        return r;
    r = bfs_store_node_get(fs->store, st.st_ino, n);
    if (r == 0)
        r = fs_inode_target(fs, st.st_ino, m, key, NULL);
    bfs_fs_forget(fs, st.st_ino, 1); /* the lookup above was ours, not the kernel's */
    if (r == 0 && (*m)->read_only) {
        free(*key);
        *key = NULL;
        r = -EROFS;
    }
    return r;
}

/* The version of n's object this mount knows, for a guarded change (see
 * conflict.c): its writer's base when it has a writer (w, may be NULL),
 * else the row's ETag; "" no object, NULL not known. *remote: whether an
 * object may be at its key at all. */
static const char *known_version(struct wfile *w, const struct bfs_node *n,
                                 char etag[BFS_S3_ETAG_MAX], int *remote)
{
    const char *known = NULL;

    *remote = 1;
    if (w) {
        pthread_mutex_lock(&w->lock);
        *remote = w->remote;
        memcpy(etag, w->base_etag, BFS_S3_ETAG_MAX);
        known = !w->remote ? "" : w->base_set ? etag : NULL;
        pthread_mutex_unlock(&w->lock);
    } else if (n->etag[0] && !n->local) {
        snprintf(etag, BFS_S3_ETAG_MAX, "%s", n->etag);
        known = etag;
    }
    return known;
}

int bfs_fs_unlink(struct bfs_fs *fs, uint64_t parent, const char *name)
{
    struct bfs_node n;
    struct mapping *m;
    struct wfile *w;
    char *key = NULL, etag[BFS_S3_ETAG_MAX];
    const char *known;
    int r, remote;

    if (parent == BFS_ROOT_INO)
        return -EPERM;
    r = target_of(fs, parent, name, &n, &m, &key);
    if (r < 0)
        return r;
    if (n.kind == BFS_KIND_DIR) {
        free(key);
        return -EISDIR;
    }
    fs_top_drop(fs); /* a directory may go with its last key */
    /* a pending upload waits, and is cancelled once the object is gone: a
     * DELETE that fails leaves the file as it was, its data included */
    w = fs_wfile_hold(fs, n.ino);
    known = known_version(w, &n, etag, &remote);
    r = remote ? fs_delete_guarded(m, key, known) : 0;
    if (r == -ESTALE) { /* another writer's version: it stays, ours goes */
        fs_conflict_record(fs, m, CONFLICT_DELETE, key, NULL);
        r = 0;
    }
    if (r == -ENOENT)
        r = 0;
    fs_wfile_unhold(fs, n.ino, w, r == 0);
    if (r == 0) {
        r = bfs_store_node_remove(fs->store, n.ino);
        (void)bfs_store_blocks_drop(fs->store, n.ino, NULL);
    }
    if (r == 0)
        dir_changed(fs, parent);
    free(key);
    return r;
}

static int count_child(void *ctx, const struct bfs_node *n)
{
    (void)ctx, (void)n;
    return 1; /* one is enough: stop */
}

/* -ENOTEMPTY unless directory ino (key dkey) holds nothing but its marker. */
static int dir_empty(struct bfs_fs *fs, struct mapping *m, uint64_t ino, const char *dkey)
{
    struct bfs_s3_list_params p = {.prefix = dkey, .max_keys = 2};
    struct bfs_s3_list_page pg;
    int r, empty;

    r = bfs_s3_list_objects(m->client, m->bucket, &p, &pg, NULL);
    if (r < 0)
        return r;
    empty = pg.nprefixes == 0 && (pg.nobjects == 0 ||
                                  (pg.nobjects == 1 && strcmp(pg.objects[0].key, dkey) == 0));
    bfs_s3_list_page_done(&pg);
    if (empty) { /* files written here and not uploaded yet count too */
        r = fs_list_remote(fs, ino, 0);
        if (r == 0 && bfs_store_children(fs->store, ino, count_child, NULL) > 0)
            empty = 0;
    }
    return r < 0 ? r : empty ? 0 : -ENOTEMPTY;
}

int bfs_fs_rmdir(struct bfs_fs *fs, uint64_t parent, const char *name)
{
    struct bfs_node n;
    struct mapping *m;
    char *key = NULL, *dkey = NULL;
    int r;

    if (parent == BFS_ROOT_INO)
        return -EBUSY; /* a mapping directory */
    r = target_of(fs, parent, name, &n, &m, &key);
    if (r < 0)
        return r;
    if (n.kind != BFS_KIND_DIR)
        r = -ENOTDIR;
    if (r == 0)
        r = dir_empty(fs, m, n.ino, key);
    if (r == 0) {
        fs_top_drop(fs);
        r = bfs_s3_delete_object(m->client, m->bucket, key, NULL);
        if (r == -ENOENT)
            r = 0; /* an implicit directory has no marker */
    }
    if (r == 0) {
        r = bfs_store_node_remove(fs->store, n.ino);
        (void)bfs_store_listing_invalidate(fs->store, n.ino);
    }
    if (r == 0)
        dir_changed(fs, parent);
    free(key);
    free(dkey);
    return r;
}

/* ---- rename ---- */

struct copy_job {
    struct mapping *m;
    char **keys;
    size_t n, next;
    const char *from, *to; /* prefixes */
    pthread_mutex_t lock;  /* guards next, err */
    int err;
};

static void *copy_worker(void *arg)
{
    struct copy_job *j = arg;

    for (;;) {
        size_t i;
        char *dst;
        int r;

        pthread_mutex_lock(&j->lock);
        i = j->err == 0 && j->next < j->n ? j->next++ : (size_t)-1;
        pthread_mutex_unlock(&j->lock);
        if (i == (size_t)-1)
            return NULL;
        dst = join(j->to, j->keys[i] + strlen(j->from), 0);
        r = dst ? bfs_s3_copy_object(j->m->client, j->m->bucket, j->keys[i], j->m->bucket, dst,
                                     NULL, NULL, NULL)
                : -ENOMEM;
        free(dst);
        if (r < 0) {
            pthread_mutex_lock(&j->lock);
            if (j->err == 0)
                j->err = r;
            pthread_mutex_unlock(&j->lock);
        }
    }
}

/* Every key under prefix (all pages). */
static int list_all(struct mapping *m, const char *prefix, char ***ret, size_t *ret_n)
{
    char **keys = NULL, *token = NULL;
    size_t n = 0;
    int r;

    do {
        struct bfs_s3_list_params p = {.prefix = prefix, .continuation = token};
        struct bfs_s3_list_page pg;
        char **nk;

        r = bfs_s3_list_objects(m->client, m->bucket, &p, &pg, NULL);
        free(token);
        token = NULL;
        if (r < 0)
            break;
        nk = realloc(keys, (n + pg.nobjects + 1) * sizeof(*keys));
        if (!nk) {
            r = -ENOMEM;
        } else {
            keys = nk;
            for (size_t i = 0; i < pg.nobjects; i++) {
                keys[n++] = pg.objects[i].key;
                pg.objects[i].key = NULL;
            }
            token = pg.next_token;
            pg.next_token = NULL;
        }
        bfs_s3_list_page_done(&pg);
    } while (r == 0 && token);
    free(token);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        return r;
    }
    *ret = keys;
    *ret_n = n;
    return 0;
}

/* Points the writer of a file being renamed (w->lock held) at the new
 * name: its journal rows, where commits made meanwhile go (a close during
 * the copy must not upload to the old name after its DELETE), and what the
 * next upload replaces there (dst_known). Undone by move_back. */
static int move_writer(struct bfs_fs *fs, struct wfile *w, struct mapping *m, const char *to,
                       int pending, int replaced, const char *dst_known)
{
    int r = 0;

    free(w->moving_key);
    w->moving_map = m;
    if (!(w->moving_key = strdup(to)))
        return -ENOMEM;
    if (pending) /* the journal row now names the new key, and what is there */
        r = bfs_store_upload_rekey(fs->store, w->ino, m->name, to, dst_known);
    if (r < 0)
        return r;
    if (pending && replaced >= 0) /* what is at the new key: the replaced file's */
        w->remote = replaced;
    /* at the new key, the next upload replaces what is there: known when
     * the rename is only local; after a copy, whatever the copy made */
    w->base_set = pending && dst_known;
    snprintf(w->base_etag, sizeof(w->base_etag), "%s", w->base_set ? dst_known : "");
    if (w->done_gen < w->gen && w->sealed)
        ws_queue(fs, w);
    return 0;
}

/* The writers a rename moves: held (their uploads wait), committing at
 * their new key, with what they were before, until rename_end. */
struct movers {
    struct mover {
        struct wfile *w;      /* a reference */
        char *from;           /* its key before the rename */
        int remote, base_set;
        char base[BFS_S3_ETAG_MAX];
    } *v;
    size_t n;
};

/* Holds w (a reference, which mv takes) and points it at key `to`. */
static int move_one(struct bfs_fs *fs, struct mapping *m, struct wfile *w, const char *from,
                    const char *to, int replaced, const char *dst_known, struct movers *mv)
{
    struct mover *v = realloc(mv->v, (mv->n + 1) * sizeof(*v)), *o;
    int r, pending;

    if (!v) {
        fs_wfile_put(fs, w);
        return -ENOMEM;
    }
    mv->v = v;
    o = &v[mv->n];
    *o = (struct mover){.w = w, .from = strdup(from)};
    pthread_mutex_lock(&w->lock);
    ws_hold(w); /* waits for a running upload */
    mv->n++;
    o->remote = w->remote, o->base_set = w->base_set;
    memcpy(o->base, w->base_etag, sizeof(o->base));
    pending = w->dirty || (w->sealed && w->done_gen < w->gen);
    r = o->from ? move_writer(fs, w, m, to, pending, replaced, dst_known) : -ENOMEM;
    pthread_mutex_unlock(&w->lock);
    return r;
}

/* The version at the old key this mount knows (known_version's). */
static const char *mover_known(const struct mover *o)
{
    return !o->remote ? "" : o->base_set ? o->base : NULL;
}

/* The rename failed in S3: the writers and their rows go back. */
static void move_back(struct bfs_fs *fs, struct mapping *m, struct movers *mv)
{
    for (size_t i = 0; i < mv->n; i++) {
        struct mover *o = &mv->v[i];
        struct wfile *w = o->w;

        pthread_mutex_lock(&w->lock);
        if (o->from)
            (void)bfs_store_upload_rekey(fs->store, w->ino, m->name, o->from, mover_known(o));
        w->remote = o->remote;
        w->base_set = o->base_set;
        memcpy(w->base_etag, o->base, sizeof(w->base_etag));
        free(w->moving_key);
        w->moving_key = NULL;
        pthread_mutex_unlock(&w->lock);
    }
}

/* The end of a rename: the writers commit at their inode's key again (it
 * has the new one now), and their uploads go on. */
static void rename_end(struct bfs_fs *fs, struct movers *mv)
{
    for (size_t i = 0; i < mv->n; i++) {
        struct wfile *w = mv->v[i].w;

        pthread_mutex_lock(&w->lock);
        free(w->moving_key);
        w->moving_key = NULL;
        pthread_mutex_unlock(&w->lock);
        fs_wfile_unhold(fs, w->ino, w, 0);
        free(mv->v[i].from);
    }
    free(mv->v);
    mv->v = NULL;
    mv->n = 0;
}

/* A file: free while only local, else a server-side copy and a delete.
 * replaced: the rename replaces a file at `to`, whose object may be in S3;
 * dst_known: the version there this mount knows (known_version). *other:
 * `to` holds another writer's version now (a conflict, see conflict.c).
 * The file's writer, if any, joins mv. */
static int rename_file(struct bfs_fs *fs, struct mapping *m, const struct bfs_node *src,
                       const char *from, const char *to, int replaced, const char *dst_known,
                       int *other, struct movers *mv)
{
    struct wfile *w = fs_wfile_find(fs, src->ino);
    char etag[BFS_S3_ETAG_MAX];
    const char *src_known;
    int r, remote, pending;

    *other = 0;
    if (!w) {
        src_known = known_version(NULL, src, etag, &remote);
        return fs_rename_object(fs, m, from, to, src_known, dst_known, other);
    }
    r = move_one(fs, m, w, from, to, replaced, dst_known, mv);
    if (r < 0) {
        move_back(fs, m, mv);
        return r;
    }
    remote = mv->v[mv->n - 1].remote;
    src_known = mover_known(&mv->v[mv->n - 1]);
    pthread_mutex_lock(&w->lock);
    pending = w->dirty || (w->sealed && w->done_gen < w->gen);
    pthread_mutex_unlock(&w->lock);
    if (!pending)
        r = fs_rename_object(fs, m, from, to, src_known, dst_known, other);
    else if (remote) /* the old object must not stay behind, unless another's */
        r = fs_delete_guarded(m, from, src_known);
    if (r == -ESTALE && pending) {
        fs_conflict_record(fs, m, CONFLICT_DELETE, from, NULL);
        r = 0;
    }
    if (r == -ENOENT)
        r = 0;
    if (r < 0)
        move_back(fs, m, mv);
    return r;
}

/* Holds every writer of a file below directory key from and points it at
 * its key below to (a close during the copies commits there, and its
 * upload waits until the copies and deletes are done). */
static int move_dir_writers(struct bfs_fs *fs, struct mapping *m, const char *from,
                            const char *to, struct movers *mv)
{
    struct wfile **all;
    size_t n, flen = strlen(from);
    int r = fs_wfiles_snapshot(fs, &all, &n);

    for (size_t i = 0; r == 0 && i < n; i++) {
        struct mapping *wm;
        char *key = NULL, *nkey = NULL;

        if (fs_inode_target(fs, all[i]->ino, &wm, &key, NULL) == 0 && wm == m &&
            strncmp(key, from, flen) == 0 && asprintf(&nkey, "%s%s", to, key + flen) >= 0) {
            r = move_one(fs, m, all[i], key, nkey, -1, NULL, mv);
            all[i] = NULL; /* mv has its reference */
        }
        free(key);
        free(nkey);
    }
    for (size_t i = 0; i < n; i++)
        fs_wfile_put(fs, all[i]);
    free(all);
    return r;
}

/* Every key below from is copied below to, then deleted. The writers of
 * files below it join mv first: their uploads wait (a running one ends
 * first), and what they commit meanwhile goes to the new keys. */
static int rename_dir(struct bfs_fs *fs, struct mapping *m, const char *from, const char *to,
                      struct movers *mv)
{
    struct copy_job j = {.m = m, .from = from, .to = to};
    pthread_t th[COPY_JOBS];
    int nth = 0, r;

    r = move_dir_writers(fs, m, from, to, mv);
    if (r == 0)
        r = list_all(m, from, &j.keys, &j.n);
    if (r < 0) {
        move_back(fs, m, mv);
        return r;
    }
    pthread_mutex_init(&j.lock, NULL);
    for (; nth < COPY_JOBS && (size_t)nth < j.n; nth++)
        if (pthread_create(&th[nth], NULL, copy_worker, &j) != 0)
            break;
    if (nth == 0)
        copy_worker(&j);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    r = j.err;
    /* the copies are all there: now remove the originals, 1000 at a time */
    for (size_t i = 0; r == 0 && i < j.n; i += BFS_S3_DELETE_MAX) {
        size_t k = j.n - i < BFS_S3_DELETE_MAX ? j.n - i : BFS_S3_DELETE_MAX;
        int *errs = calloc(k, sizeof(int));

        r = errs ? bfs_s3_delete_objects(m->client, m->bucket, (const char *const *)j.keys + i,
                                         k, errs, NULL)
                 : -ENOMEM;
        for (size_t e = 0; r == 0 && errs && e < k; e++)
            r = errs[e];
        free(errs);
    }
    for (size_t i = 0; i < j.n; i++)
        free(j.keys[i]);
    free(j.keys);
    pthread_mutex_destroy(&j.lock);
    if (r < 0)
        move_back(fs, m, mv);
    return r;
}

int bfs_fs_rename(struct bfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
                  const char *newname, unsigned int flags)
{
    struct bfs_node src, dst;
    struct mapping *m, *m2;
    struct wfile *held = NULL;
    struct movers moving = {0};
    uint64_t held_ino = 0;
    char *from = NULL, *pkey = NULL, *to = NULL, dst_etag[BFS_S3_ETAG_MAX];
    struct stat st;
    int r, exists, dremote, other = 0;

    if (flags & RENAME_EXCHANGE)
        return -EINVAL;
    if (parent == BFS_ROOT_INO || newparent == BFS_ROOT_INO)
        return -EPERM; /* mapping directories stay where they are */
    r = check_name(newname);
    if (r == 0)
        r = target_of(fs, parent, name, &src, &m, &from);
    if (r == 0)
        r = writable_dir(fs, newparent, &m2, &pkey);
    if (r == 0)
        r = key_fits(pkey, newname, src.kind == BFS_KIND_DIR);
    if (r < 0)
        goto out;
    if (m2->client != m->client || strcmp(m2->bucket, m->bucket) != 0) {
        r = -EXDEV; /* mv copies across buckets itself */
        goto out;
    }
    to = join(pkey, newname, src.kind == BFS_KIND_DIR);
    if (!to) {
        r = -ENOMEM;
        goto out;
    }
    exists = bfs_fs_lookup(fs, newparent, newname, &st) == 0;
    if (exists) {
        bfs_fs_forget(fs, st.st_ino, 1);
        r = bfs_store_node_get(fs->store, st.st_ino, &dst);
        if (r == 0 && (flags & RENAME_NOREPLACE))
            r = -EEXIST;
        else if (r == 0 && dst.kind == BFS_KIND_DIR && src.kind != BFS_KIND_DIR)
            r = -EISDIR;
        else if (r == 0 && dst.kind != BFS_KIND_DIR && src.kind == BFS_KIND_DIR)
            r = -ENOTDIR;
        else if (r == 0 && dst.kind == BFS_KIND_DIR)
            r = dir_empty(fs, m, dst.ino, to);
        /* replaced: its pending upload is moot once the rename worked */
        if (r == 0 && dst.ino != src.ino && dst.kind != BFS_KIND_DIR) {
            held = fs_wfile_hold(fs, dst.ino);
            held_ino = dst.ino;
        }
        if (r < 0 || dst.ino == src.ino)
            goto out;
    }
    fs_top_drop(fs);
    if (src.kind == BFS_KIND_DIR)
        r = rename_dir(fs, m, from, to, &moving);
    else
        r = rename_file(fs, m, &src, from, to, exists,
                        exists ? known_version(held, &dst, dst_etag, &dremote) : "", &other,
                        &moving);
    if (r == -ENOSYS && src.kind != BFS_KIND_DIR)
        r = -EXDEV; /* the server cannot copy it (Ceph RGW and encrypted objects):
                     * mv then copies through the mount and unlinks */
    if (r == 0)
        r = bfs_store_node_move(fs->store, src.ino, newparent, newname);
    if (r == 0 && other) { /* another writer's version is at `to` now */
        fs_node_forget_version(fs, src.ino);
        fs_kernel_inval_inode(fs, src.ino, 1, 0);
    }
    if (r == 0) {
        fs_inode_rekey(fs, src.ino, newparent, to);
        fs_negative_clear(fs, newparent);
        dir_changed(fs, parent);
        if (newparent != parent)
            dir_changed(fs, newparent);
    }
    rename_end(fs, &moving);
out:
    if (held_ino)
        fs_wfile_unhold(fs, held_ino, held, r == 0);
    free(from);
    free(pkey);
    free(to);
    return r;
}
