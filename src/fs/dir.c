/* SPDX-License-Identifier: MIT */
/*
 * dir.c: directory listings. A directory whose listing is older than the
 * TTL is listed again with ListObjectsV2 (delimiter '/', every page) and
 * the result replaces the cached children in one transaction; opendir then
 * snapshots the children, so readdir offsets stay valid however long the
 * reader takes and whatever changes meanwhile.
 *
 * Keys that cannot be names are skipped and counted (SPEC.md): empty
 * components ("a//b"), "." and "..", components over 255 bytes. An object
 * and a prefix with the same name make one directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define DIR_MAX_ENTRIES (10u * 1000 * 1000) /* a listing larger than this is refused */

struct dir_entry {
    char *name;
    struct stat st;
    struct bfs_node node;
};

struct bfs_dir {
    uint64_t ino;
    struct dir_entry *e;
    size_t n, cap;
    struct bfs_fs *fs;            /* immutable */
    struct bfs_dir *prev, *next;  /* fs->dirs, guarded by fs->lock */
};

struct listing {
    struct bfs_node *nodes;
    size_t n, cap;
};

static int listing_add(struct listing *l, const char *name, size_t len, int kind,
                       const struct bfs_s3_object *o)
{
    struct bfs_node *n;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct bfs_node *nn;

        if (cap > DIR_MAX_ENTRIES)
            return -EFBIG;
        nn = realloc(l->nodes, cap * sizeof(*nn));
        if (!nn)
            return -ENOMEM;
        l->nodes = nn;
        l->cap = cap;
    }
    n = &l->nodes[l->n++];
    memset(n, 0, sizeof(*n));
    memcpy(n->name, name, len);
    n->name[len] = '\0';
    n->kind = kind;
    n->fetched_ns = bfs_now_ns();
    if (o) {
        fs_node_from_object(n, o, 0);
    } else {
        n->mtime_ns = n->fetched_ns;
    }
    return 0;
}

static int cmp_node(const void *a, const void *b)
{
    const struct bfs_node *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    /* directories first, so that dedupe keeps them */
    return c ? c : (y->kind == BFS_KIND_DIR) - (x->kind == BFS_KIND_DIR);
}

static void dedupe(struct bfs_fs *fs, struct listing *l)
{
    size_t o = 0;

    if (l->n > 1) /* qsort wants a valid pointer even for nothing */
        qsort(l->nodes, l->n, sizeof(*l->nodes), cmp_node);
    for (size_t i = 0; i < l->n; i++) {
        if (o > 0 && strcmp(l->nodes[o - 1].name, l->nodes[i].name) == 0) {
            atomic_fetch_add(&fs->skipped_keys, 1); /* shadowed by the directory */
            continue;
        }
        l->nodes[o++] = l->nodes[i];
    }
    l->n = o;
}

/* Adds one page to the listing; names relative to prefix plen. */
static int add_page(struct bfs_fs *fs, struct listing *l, const struct bfs_s3_list_page *pg,
                    size_t plen)
{
    int r = 0;

    for (size_t i = 0; i < pg->nobjects && r == 0; i++) {
        const char *name = pg->objects[i].key + plen;
        size_t len = strlen(pg->objects[i].key) - plen;

        if (len == 0)
            continue; /* the directory's own marker "dir/" */
        if (!fs_name_valid(name, len)) {
            atomic_fetch_add(&fs->skipped_keys, 1);
            continue;
        }
        r = listing_add(l, name, len, BFS_KIND_FILE, &pg->objects[i]);
    }
    for (size_t i = 0; i < pg->nprefixes && r == 0; i++) {
        const char *name = pg->prefixes[i] + plen;
        size_t len = strlen(pg->prefixes[i]) - plen;

        if (len > 0 && name[len - 1] == '/')
            len--;
        if (!fs_name_valid(name, len)) {
            atomic_fetch_add(&fs->skipped_keys, 1);
            continue;
        }
        r = listing_add(l, name, len, BFS_KIND_DIR, NULL);
    }
    return r;
}

/*
 * LIST carries no metadata, so by default a listing shows objects with the
 * mount's default mode and LastModified, and a symlink stored elsewhere as
 * a regular file until it is looked up by name (one LIST per 1,000 entries
 * is the contract of ls -l). list_meta=small HEADs, several in parallel,
 * the objects under 4 KiB whose metadata is not known yet (symlink targets
 * and FIFOs are that small), list_meta=all every object. What a HEAD learnt
 * is kept for that ETag, so each object is HEADed once.
 */
#define HEAD_MAX_SIZE 4095
#define HEAD_JOBS 8

struct heads {
    struct bfs_fs *fs;
    struct mapping *m;
    const char *prefix;
    struct bfs_node *nodes;
    size_t *idx;               /* nodes to HEAD */
    struct bfs_s3_meta *meta;  /* what each HEAD said, for the xattrs */
    size_t n;
    pthread_mutex_t lock;      /* guards next */
    size_t next;
};

static void *head_worker(void *arg)
{
    struct heads *h = arg;

    for (;;) {
        struct bfs_s3_object o = {0};
        struct bfs_buf key;
        struct bfs_node *n;
        size_t j;

        pthread_mutex_lock(&h->lock);
        j = h->next < h->n ? h->next++ : (size_t)-1;
        pthread_mutex_unlock(&h->lock);
        if (j == (size_t)-1)
            return NULL;
        n = &h->nodes[h->idx[j]];
        bfs_buf_init(&key, 8192);
        if (bfs_buf_addf(&key, "%s%s", h->prefix, n->name) == 0 &&
            bfs_s3_head_object(h->m->client, h->m->bucket, key.data, &o, NULL) == 0 &&
            strcmp(o.etag, n->etag) == 0) {
            fs_node_from_object(n, &o, 1);
            h->meta[j] = o.meta; /* moved */
            memset(&o.meta, 0, sizeof(o.meta));
        }
        bfs_s3_object_done(&o);
        bfs_buf_done(&key);
    }
}

/* HEADs the small, not yet known objects of a listing; returns how many. */
static size_t head_small(struct heads *h, uint64_t dir, struct listing *l)
{
    pthread_t th[HEAD_JOBS];
    int nth = 0;

    h->idx = calloc(l->n + 1, sizeof(*h->idx));
    if (!h->idx)
        return 0;
    for (size_t i = 0; i < l->n; i++) {
        struct bfs_node old;

        if (l->nodes[i].kind != BFS_KIND_FILE || h->fs->cfg->list_meta == BFS_LIST_META_NONE ||
            (h->fs->cfg->list_meta == BFS_LIST_META_SMALL && l->nodes[i].size > HEAD_MAX_SIZE))
            continue;
        if (bfs_store_node_lookup(h->fs->store, dir, l->nodes[i].name, &old) == 0 &&
            (old.meta & BFS_META_HEADED) && strcmp(old.etag, l->nodes[i].etag) == 0)
            continue; /* known: the listing keeps what was learnt */
        h->idx[h->n++] = i;
    }
    h->meta = calloc(h->n + 1, sizeof(*h->meta));
    if (!h->meta) {
        h->n = 0;
        return 0;
    }
    h->nodes = l->nodes;
    pthread_mutex_init(&h->lock, NULL);
    for (; nth < HEAD_JOBS && (size_t)nth < h->n; nth++)
        if (pthread_create(&th[nth], NULL, head_worker, h) != 0)
            break;
    if (nth == 0 && h->n)
        head_worker(h);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&h->lock);
    return h->n;
}

static void heads_done(struct bfs_fs *fs, struct heads *h, const struct listing *l, int stored)
{
    for (size_t j = 0; j < h->n; j++) {
        if (stored && h->meta[j].n)
            (void)fs_xattrs_import(fs, l->nodes[h->idx[j]].ino, &h->meta[j]);
        bfs_s3_meta_done(&h->meta[j]);
    }
    free(h->meta);
    free(h->idx);
}

/* Sorts a complete listing, learns what list_meta asks for and stores it
 * as directory ino's children. */
static int store_listing(struct bfs_fs *fs, struct mapping *m, uint64_t ino, const char *prefix,
                         struct listing *l, int64_t since_ns)
{
    struct heads h = {.fs = fs, .m = m, .prefix = prefix};
    int r;

    dedupe(fs, l);
    head_small(&h, ino, l);
    r = bfs_store_listing_replace(fs->store, ino, l->nodes, l->n, since_ns);
    heads_done(fs, &h, l, r == 0);
    fs_negative_clear(fs, ino);
    return r;
}

void fs_first_page_keep(struct bfs_fs *fs, uint64_t ino, struct bfs_s3_list_page *pg,
                        int64_t since_ns)
{
    pthread_mutex_lock(&fs->lock);
    bfs_s3_list_page_done(&fs->first.pg);
    fs->first.ino = ino;
    fs->first.at_ns = since_ns;
    fs->first.pg = *pg;
    memset(pg, 0, sizeof(*pg));
    pthread_mutex_unlock(&fs->lock);
}

static int first_page_take(struct bfs_fs *fs, uint64_t ino, struct bfs_s3_list_page *pg,
                           int64_t *since_ns)
{
    int r = -ENOENT;

    pthread_mutex_lock(&fs->lock);
    if (fs->first.ino == ino && fs_fresh(fs, fs->first.at_ns)) {
        *since_ns = fs->first.at_ns;
        *pg = fs->first.pg;
        memset(&fs->first.pg, 0, sizeof(fs->first.pg));
        r = 0;
    }
    if (fs->first.ino == ino)
        fs->first.ino = 0;
    pthread_mutex_unlock(&fs->lock);
    return r;
}

/* Lists the directory from S3 into the store. */
int fs_list_remote(struct bfs_fs *fs, uint64_t ino)
{
    struct listing l = {0};
    struct mapping *m;
    char *prefix = NULL, *token = NULL;
    int64_t since = bfs_now_ns(); /* before the first LIST is sent */
    int r, kind;

    r = fs_inode_target(fs, ino, &m, &prefix, &kind);
    if (r < 0)
        return r;
    do {
        struct bfs_s3_list_params p = {.prefix = prefix, .delimiter = "/", .continuation = token};
        struct bfs_s3_list_page pg;

        r = l.n == 0 && !token && first_page_take(fs, ino, &pg, &since) == 0
                ? 0 : bfs_s3_list_objects(m->client, m->bucket, &p, &pg, NULL);
        free(token);
        token = NULL;
        if (r < 0)
            break;
        r = add_page(fs, &l, &pg, strlen(prefix));
        token = pg.next_token;
        pg.next_token = NULL;
        bfs_s3_list_page_done(&pg);
    } while (r == 0 && token);
    free(token);
    if (r == 0)
        r = store_listing(fs, m, ino, prefix, &l, since);
    free(prefix);
    free(l.nodes);
    return r;
}

int fs_list_from_page(struct bfs_fs *fs, struct mapping *m, uint64_t ino, const char *prefix,
                      const struct bfs_s3_list_page *pg, int64_t since_ns)
{
    struct listing l = {0};
    int r = pg->next_token ? -EAGAIN : add_page(fs, &l, pg, strlen(prefix));

    if (r == 0)
        r = store_listing(fs, m, ino, prefix, &l, since_ns);
    free(l.nodes);
    return r;
}

static int snap_add(void *ctx, const struct bfs_node *n)
{
    struct bfs_dir *d = ctx;
    struct dir_entry *e;

    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        struct dir_entry *ne = realloc(d->e, cap * sizeof(*ne));

        if (!ne)
            return -ENOMEM;
        d->e = ne;
        d->cap = cap;
    }
    e = &d->e[d->n];
    e->name = strdup(n->name);
    if (!e->name)
        return -ENOMEM;
    e->node = *n;
    d->n++;
    return 0;
}

static int root_refresh(struct bfs_fs *fs)
{
    int64_t listed;

    if (!fs->auto_maps)
        return 0;
    pthread_mutex_lock(&fs->lock);
    listed = fs->maps_listed_ms;
    pthread_mutex_unlock(&fs->lock);
    if (bfs_mono_ms() - listed < fs->ttl_ms)
        return 0;
    return fs_maps_refresh(fs);
}

/* The root's entries: the mappings of this mount (not rows of earlier ones). */
static int snap_root(struct bfs_fs *fs, struct bfs_dir *d)
{
    size_t nmaps;
    int r = 0;

    pthread_mutex_lock(&fs->lock);
    nmaps = fs->nmaps;
    pthread_mutex_unlock(&fs->lock);
    for (size_t i = 0; i < nmaps && r == 0; i++) {
        struct bfs_node n;
        uint64_t ino;

        pthread_mutex_lock(&fs->lock);
        ino = fs->maps[i]->ino; /* maps only grow, and entries never move */
        pthread_mutex_unlock(&fs->lock);
        if (bfs_store_node_get(fs->store, ino, &n) == 0)
            r = snap_add(d, &n);
    }
    return r;
}

static int stale_listing(struct bfs_fs *fs, uint64_t ino)
{
    return !fs_fresh(fs, bfs_store_listing_time(fs->store, ino));
}

int bfs_fs_opendir(struct bfs_fs *fs, uint64_t ino, struct bfs_dir **ret)
{
    struct bfs_node dot = {.ino = ino, .kind = BFS_KIND_DIR, .name = "."};
    struct bfs_node dotdot = {.ino = ino, .kind = BFS_KIND_DIR, .name = ".."};
    struct bfs_dir *d = calloc(1, sizeof(*d));
    int r = 0;

    if (!d)
        return -ENOMEM;
    d->ino = ino;
    if (ino == BFS_ROOT_INO)
        r = root_refresh(fs);
    else if (stale_listing(fs, ino))
        r = fs_list_remote(fs, ino);
    /* "." and ".." first; readdir needs only their type */
    if (r == 0)
        r = snap_add(d, &dot);
    if (r == 0)
        r = snap_add(d, &dotdot);
    if (r == 0)
        r = ino == BFS_ROOT_INO ? snap_root(fs, d) : bfs_store_children(fs->store, ino, snap_add, d);
    if (r < 0) {
        bfs_fs_closedir(d);
        return r;
    }
    for (size_t i = 0; i < d->n; i++)
        fs_node_to_stat(fs, &d->e[i].node, &d->e[i].st);
    d->fs = fs;
    pthread_mutex_lock(&fs->lock);
    d->next = fs->dirs;
    if (fs->dirs)
        fs->dirs->prev = d;
    fs->dirs = d;
    pthread_mutex_unlock(&fs->lock);
    *ret = d;
    return 0;
}

void bfs_fs_closedir(struct bfs_dir *d)
{
    if (!d)
        return;
    if (d->fs) {
        pthread_mutex_lock(&d->fs->lock);
        if (d->prev)
            d->prev->next = d->next;
        else if (d->fs->dirs == d)
            d->fs->dirs = d->next;
        if (d->next)
            d->next->prev = d->prev;
        pthread_mutex_unlock(&d->fs->lock);
    }
    for (size_t i = 0; i < d->n; i++)
        free(d->e[i].name);
    free(d->e);
    free(d);
}

int bfs_fs_dir_entry(struct bfs_dir *d, size_t i, const char **ret_name, struct stat *ret_st)
{
    if (i >= d->n)
        return -ENOENT;
    *ret_name = d->e[i].name;
    *ret_st = d->e[i].st;
    return 0;
}

int bfs_fs_dir_ref(struct bfs_fs *fs, struct bfs_dir *d, size_t i)
{
    if (i < 2 || i >= d->n)
        return 0; /* "." and ".." carry no count */
    return fs_inode_ref(fs, d->ino, &d->e[i].node);
}
