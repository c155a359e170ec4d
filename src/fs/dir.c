/* SPDX-License-Identifier: MIT */
/*
 * dir.c: directory listings (the children rows of the store). A directory
 * whose listing is older than the TTL is listed again with ListObjectsV2
 * (delimiter '/', every page) and the result replaces the cached children
 * in one transaction; opendir then snapshots the children, so readdir
 * offsets stay valid however long the reader takes and whatever changes
 * meanwhile.
 *
 * What a listed entry shows: its row as merged here from the LIST (size,
 * ETag), what the store already knew of the same version (merge_known),
 * and what meta.c learnt while the pages came. A listing made by a lookup
 * (fs_list_from_page) asks nothing; the readdir that follows asks what is
 * missing of its snapshot (learn_snapshot). Either way the kernel gets
 * readdirplus attributes from the snapshot only.
 *
 * Keys that cannot be names are skipped and counted (SPEC.md): empty
 * components ("a//b"), "." and "..", components over 255 bytes. An object
 * and a prefix with the same name make one directory.
 *
 * LOCKING: no lock of its own. The store's transactions make a listing
 * all or nothing; fs->lock guards the open snapshots' list and the kept
 * first page (fs->first).
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

        if (len == 0 || fs_is_probe(name, len))
            continue; /* the directory's own marker "dir/"; conflict.c's probe */
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

/* Takes what the store knows of a listed entry: the metadata learnt for
 * the same version (so that it is not asked again, on any later mount),
 * and whether the kernel may hold an older version's pages (*changed). */
static void merge_known(struct bfs_fs *fs, uint64_t dir, struct bfs_node *n, uint64_t *changed)
{
    struct bfs_node old;

    *changed = 0;
    if (bfs_store_node_lookup(fs->store, dir, n->name, &old) < 0)
        return;
    if (old.local) {
        n->local = 1; /* written here: the store keeps it, nothing to ask */
        return;
    }
    if (n->kind != BFS_KIND_DIR && old.kind != BFS_KIND_DIR && old.etag[0] &&
        strcmp(old.etag, n->etag) != 0) {
        *changed = old.ino;
        return;
    }
    if (!(old.meta & BFS_META_HEADED) || (n->kind == BFS_KIND_DIR) != (old.kind == BFS_KIND_DIR))
        return;
    n->kind = old.kind;
    n->mode = old.mode;
    n->uid = old.uid;
    n->gid = old.gid;
    n->mtime_ns = old.mtime_ns;
    n->meta = old.meta;
}

/* Keeps what the answers of ml hold beyond the nodes: user.* attributes. */
static void keep_answers(struct bfs_fs *fs, uint64_t dir, const struct meta_learn *ml)
{
    for (size_t k = 0; k < fs_meta_count(ml); k++) {
        struct meta_answer a;
        struct bfs_node n;
        int has_xattrs = 0;

        if (fs_meta_answer(ml, k, &a) < 0)
            continue;
        for (size_t i = 0; i < a.meta->n && !has_xattrs; i++)
            has_xattrs = strncmp(a.meta->names[i], "xattr-", 6) == 0;
        if (!has_xattrs)
            continue;
        if (bfs_store_node_lookup(fs->store, dir, a.name, &n) < 0 || n.local ||
            a.dir != (n.kind == BFS_KIND_DIR))
            continue; /* gone, written here since, or an object a directory shadows */
        if (a.dir || strcmp(n.etag, a.etag) == 0)
            (void)fs_xattrs_import(fs, n.ino, a.meta);
    }
}

/* Sorts a complete listing and stores it as directory ino's children. */
static int store_listing(struct bfs_fs *fs, uint64_t ino, struct listing *l, int64_t since_ns)
{
    int r;

    dedupe(fs, l);
    r = bfs_store_listing_replace(fs->store, ino, l->nodes, l->n, since_ns);
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

/* Old versions the kernel may still cache pages of. */
struct changed {
    uint64_t *ino;
    size_t n, cap;
};

static void changed_add(struct changed *c, uint64_t ino)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        uint64_t *ni = realloc(c->ino, cap * sizeof(*ni));

        if (!ni)
            return; /* the kernel then learns it from the attributes (size) */
        c->ino = ni;
        c->cap = cap;
    }
    c->ino[c->n++] = ino;
}

/* Lists the directory from S3 into the store; with learn, also what the
 * listing cannot tell (meta.c), asked while the next pages are listed. */
int fs_list_remote(struct bfs_fs *fs, uint64_t ino, int learn)
{
    struct listing l = {0};
    struct changed ch = {0};
    struct meta_learn *ml = NULL;
    struct mapping *m;
    char *prefix = NULL, *token = NULL;
    int64_t since = bfs_now_ns(); /* before the first LIST is sent */
    int r, kind;

    r = fs_inode_target(fs, ino, &m, &prefix, &kind);
    if (r < 0)
        return r;
    if (learn)
        ml = fs_meta_begin(fs, m, prefix);
    do {
        struct bfs_s3_list_params p = {.prefix = prefix, .delimiter = "/", .continuation = token};
        struct bfs_s3_list_page pg;
        size_t from = l.n;

        if (m->as_of_ns) /* every page of versions at once (asof.c) */
            r = fs_asof_list(m, prefix, &pg);
        else
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
        for (size_t i = from; r == 0 && i < l.n; i++) {
            uint64_t old;

            merge_known(fs, ino, &l.nodes[i], &old);
            if (old)
                changed_add(&ch, old);
        }
        if (r == 0)
            fs_meta_page(ml, l.nodes, from, l.n);
    } while (r == 0 && token);
    free(token);
    fs_meta_end(ml, l.nodes);
    if (r == 0)
        r = store_listing(fs, ino, &l, since);
    if (r == 0)
        keep_answers(fs, ino, ml);
    /* pages of versions that are gone: the kernel must not serve them */
    for (size_t i = 0; r == 0 && i < ch.n; i++)
        fs_kernel_inval_inode(fs, ch.ino[i], 1, 0);
    fs_meta_free(ml);
    free(ch.ino);
    free(prefix);
    free(l.nodes);
    return r;
}

int fs_list_from_page(struct bfs_fs *fs, uint64_t ino, const char *prefix,
                      const struct bfs_s3_list_page *pg, int64_t since_ns)
{
    struct listing l = {0};
    int r = pg->next_token ? -EAGAIN : add_page(fs, &l, pg, strlen(prefix));

    /* no metadata asked here: a lookup wants one name; the readdir that
     * may follow asks (learn_snapshot) */
    for (size_t i = 0; r == 0 && i < l.n; i++) {
        uint64_t old;

        merge_known(fs, ino, &l.nodes[i], &old);
        if (old)
            fs_kernel_inval_inode(fs, old, 1, 0);
    }
    if (r == 0)
        r = store_listing(fs, ino, &l, since_ns);
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

/* A directory listed earlier (by a lookup's LIST, or within the TTL):
 * asks what meta.c wants of the snapshot's entries (nothing once they are
 * known), stores the answers and shows them. */
static int learn_snapshot(struct bfs_fs *fs, struct bfs_dir *d)
{
    size_t n = d->n - 2, nch = 0;
    struct bfs_node *nodes, *ch;
    struct meta_learn *ml;
    struct mapping *m;
    char *prefix = NULL;
    int r;

    if (d->n <= 2 || fs->cfg->list_meta == BFS_LIST_META_NONE)
        return 0;
    r = fs_inode_target(fs, d->ino, &m, &prefix, NULL);
    if (r < 0)
        return r;
    nodes = malloc(2 * n * sizeof(*nodes));
    ml = nodes ? fs_meta_begin(fs, m, prefix) : NULL;
    free(prefix);
    if (!ml) {
        free(nodes);
        return 0; /* shown as they are */
    }
    for (size_t i = 0; i < n; i++)
        nodes[i] = d->e[i + 2].node;
    fs_meta_batch(ml, nodes, n);
    fs_meta_end(ml, nodes);
    ch = nodes + n;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].meta == d->e[i + 2].node.meta && nodes[i].kind == d->e[i + 2].node.kind)
            continue; /* nothing learnt */
        d->e[i + 2].node = nodes[i];
        ch[nch++] = nodes[i];
    }
    if (nch > 0 && bfs_store_nodes_learnt(fs->store, ch, nch) == 0)
        keep_answers(fs, d->ino, ml);
    fs_meta_free(ml);
    free(nodes);
    return 0;
}

int bfs_fs_opendir(struct bfs_fs *fs, uint64_t ino, struct bfs_dir **ret)
{
    struct bfs_node dot = {.ino = ino, .kind = BFS_KIND_DIR, .name = "."};
    struct bfs_node dotdot = {.ino = ino, .kind = BFS_KIND_DIR, .name = ".."};
    struct bfs_dir *d = calloc(1, sizeof(*d));
    int r = 0, listed = 0;

    if (!d)
        return -ENOMEM;
    d->ino = ino;
    if (ino == BFS_ROOT_INO)
        r = root_refresh(fs);
    else if ((listed = stale_listing(fs, ino)))
        r = fs_list_remote(fs, ino, 1);
    /* S3 does not answer: the last listing, however old */
    if (r < 0 && listed && bfs_store_listing_time(fs->store, ino) != 0 && fs_stale_ok(fs, r))
        r = 0;
    /* "." and ".." first; readdir needs only their type */
    if (r == 0)
        r = snap_add(d, &dot);
    if (r == 0)
        r = snap_add(d, &dotdot);
    if (r == 0)
        r = ino == BFS_ROOT_INO ? snap_root(fs, d) : bfs_store_children(fs->store, ino, snap_add, d);
    if (r == 0 && ino != BFS_ROOT_INO && !listed)
        r = learn_snapshot(fs, d);
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
