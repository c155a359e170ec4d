/* SPDX-License-Identifier: MIT */
/*
 * lookup.c: what a name is. Answers come, in order of preference, from a
 * fresh listing of the parent (no request at all, also for names that are
 * not there), from the node row if it was checked within the TTL, or from
 * S3: a LIST of "key/" and a HEAD of "key". A directory shadows an object
 * of the same name (SPEC.md "The tree").
 *
 * The LIST asks for a page of the directory's children, not just one key:
 * when that page is the whole directory it is kept as its listing, so the
 * lookups and the readdir that follow (ls -l a/b/c: each component, then
 * the last one's entries) need no request of their own. A name with an
 * extension is most often a file, so its HEAD goes out alongside the LIST
 * (one round trip); any other name (data, 2024, .config) is most often a
 * directory, so its HEAD is sent only when the LIST found none.
 *
 * A row whose metadata is not known for its ETag (not HEADED: a listing
 * that showed defaults, meta.c) is HEADed when its name is looked up, when
 * it is opened, and at getattr; where the answer differs from what the row
 * showed, the kernel is told (fs_kernel_inval_*) before the call answers,
 * and a type change answers ESTALE to the inode that had the old type.
 * This file and meta.c are the only places that turn S3 replies into a
 * node's attributes; inode.c turns a row into struct stat.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define PROBE_KEYS 1000 /* S3's page: the first of a readdir's pages */

struct list_probe {
    struct bfs_s3_client *client;
    const char *bucket;
    const char *prefix;
    struct bfs_s3_list_page pg;
    int listed;  /* pg holds the first page of prefix */
    int64_t since; /* when the LIST was sent */
    int found;
    int marker;  /* the first key is the "dir/" marker itself */
    int err;
};

static void *probe_dir(void *arg)
{
    struct list_probe *p = arg;
    struct bfs_s3_list_params lp = {.prefix = p->prefix, .delimiter = "/",
                                    .max_keys = PROBE_KEYS};

    p->since = bfs_now_ns();
    p->err = bfs_s3_list_objects(p->client, p->bucket, &lp, &p->pg, NULL);
    if (p->err == 0) {
        p->listed = 1;
        p->found = p->pg.nobjects > 0 || p->pg.nprefixes > 0;
        p->marker = p->pg.nobjects > 0 && strcmp(p->pg.objects[0].key, p->prefix) == 0;
    }
    return NULL;
}

static int looks_like_file(const char *name)
{
    const char *dot = strrchr(name, '.');

    return dot && dot > name && dot[1] != '\0';
}

/* ---- the mount's first page of keys ---- */

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void fs_top_keep(struct mapping *m, struct bfs_s3_list_page *pg)
{
    struct top_keys *t = &m->top;
    int sorted = 1;

    t->keys = calloc(pg->nobjects + 1, sizeof(*t->keys));
    for (size_t i = 0; t->keys && i < pg->nobjects; i++) {
        t->keys[t->n++] = pg->objects[i].key; /* moved */
        pg->objects[i].key = NULL;
        if (i > 0 && strcmp(t->keys[i - 1], t->keys[i]) >= 0)
            sorted = 0;
    }
    t->complete = pg->next_token == NULL;
    t->at_ns = bfs_now_ns();
    /* a part of the keys says something only if it is the first part in
     * S3's order (bytes); a server that lists in another order (s3rver)
     * gets its page used only when it holds every key */
    if (t->n > 1 && !sorted)
        qsort(t->keys, t->n, sizeof(*t->keys), cmp_key);
    atomic_store(&t->valid, t->keys != NULL && (sorted || t->complete));
}

void fs_top_drop(struct bfs_fs *fs)
{
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < fs->nmaps; i++)
        atomic_store(&fs->maps[i]->top.valid, 0); /* the keys stay until unmount */
    pthread_mutex_unlock(&fs->lock);
}

void fs_top_free(struct mapping *m)
{
    for (size_t i = 0; i < m->top.n; i++)
        free(m->top.keys[i]);
    free(m->top.keys);
    m->top.keys = NULL;
    m->top.n = 0;
    atomic_store(&m->top.valid, 0);
}

static void top_move(struct top_keys *to, struct top_keys *from)
{
    to->keys = from->keys;
    to->n = from->n;
    to->complete = from->complete;
    to->at_ns = from->at_ns;
    atomic_store(&to->valid, atomic_load(&from->valid));
    from->keys = NULL;
    from->n = 0;
    atomic_store(&from->valid, 0);
}

struct bfs_fs_tops {
    size_t n;
    struct mapping maps[]; /* only their top is used */
};

struct bfs_fs_tops *bfs_fs_tops_take(struct bfs_fs *fs)
{
    struct bfs_fs_tops *t = calloc(1, sizeof(*t) + fs->nmaps * sizeof(t->maps[0]));

    if (!t)
        return NULL;
    t->n = fs->nmaps;
    for (size_t i = 0; i < fs->nmaps; i++) {
        top_move(&t->maps[i].top, &fs->maps[i]->top);
    }
    return t;
}

void bfs_fs_tops_give(struct bfs_fs *fs, struct bfs_fs_tops *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        /* the same config makes the same mappings in the same order */
        if (fs && i < fs->nmaps && !fs->auto_maps && !fs->maps[i]->top.keys)
            top_move(&fs->maps[i]->top, &t->maps[i].top);
        fs_top_free(&t->maps[i]);
    }
    free(t);
}

enum { TOP_UNKNOWN, TOP_NOT_DIR, TOP_DIR, TOP_DIR_MARKER };

/* What the first page says of directory key dkey ("a/b/"). The page holds
 * every key from the start up to its last, so the first key >= dkey
 * decides: it starts with dkey (a directory; equal: its marker), or it is
 * past every key that could (no such directory). */
static int top_dir(const struct bfs_fs *fs, const struct mapping *m, const char *dkey)
{
    const struct top_keys *t = &m->top;
    size_t lo = 0, hi = t->n, len = strlen(dkey);

    /* made by this mount's own check, maybe in the process before fork,
     * so before started_ns: only the TTL applies */
    if (!atomic_load(&t->valid) || (bfs_now_ns() - t->at_ns) / 1000000 >= fs->ttl_ms)
        return TOP_UNKNOWN;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(t->keys[mid], dkey) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->n && strncmp(t->keys[lo], dkey, len) == 0)
        return t->keys[lo][len] ? TOP_DIR : TOP_DIR_MARKER;
    return lo < t->n || t->complete ? TOP_NOT_DIR : TOP_UNKNOWN;
}

int fs_stale_ok(struct bfs_fs *fs, int r)
{
    if (!bfs_s3_unreachable(r))
        return 0;
    atomic_fetch_add(&fs->stale_serves, 1);
    return 1;
}

/* Whether a check made at then_ns still holds. Checks made by an earlier
 * mount are never trusted: the object may have changed while nobody was
 * watching, so the first use after a mount always asks S3 once. */
int fs_fresh(const struct bfs_fs *fs, int64_t then_ns)
{
    return fs_fresh_within(fs, then_ns, fs->ttl_ms);
}

int fs_fresh_within(const struct bfs_fs *fs, int64_t then_ns, int64_t window_ms)
{
    return then_ns >= fs->started_ns && (bfs_now_ns() - then_ns) / 1000000 < window_ms;
}

/* Asks what it takes to learn whether key is an object and dir (probe's
 * prefix) a directory, filling probe and o; returns the HEAD's result for
 * key (-ENOENT when not asked). */
static int ask(struct bfs_fs *fs, struct mapping *m, const char *name, const char *key,
               struct list_probe *probe, struct bfs_s3_object *o)
{
    int top = top_dir(fs, m, probe->prefix), head, threaded;
    pthread_t th;

    if (top == TOP_DIR || top == TOP_DIR_MARKER) { /* shadows any object */
        probe->found = 1;
        probe->marker = top == TOP_DIR_MARKER;
        return -ENOENT;
    }
    if (top == TOP_NOT_DIR)
        return bfs_s3_head_object(m->client, m->bucket, key, o, NULL);
    if (!looks_like_file(name)) {
        probe_dir(probe);
        return probe->err == 0 && !probe->found
                   ? bfs_s3_head_object(m->client, m->bucket, key, o, NULL) : -ENOENT;
    }
    threaded = pthread_create(&th, NULL, probe_dir, probe) == 0;
    head = bfs_s3_head_object(m->client, m->bucket, key, o, NULL);
    if (threaded)
        pthread_join(th, NULL);
    else
        probe_dir(probe);
    return head;
}

/* n is the directory probe found: its marker, if any, carries its mode,
 * owner, times and attributes (into o). Returns the marker HEAD's result. */
static int dir_node(struct mapping *m, const struct list_probe *probe, struct bfs_s3_object *o,
                    struct bfs_node *n)
{
    int head;

    bfs_s3_object_done(o);
    head = probe->marker ? bfs_s3_head_object(m->client, m->bucket, probe->prefix, o, NULL)
                         : -1;
    if (head == 0)
        fs_node_from_object(n, o, 1);
    else
        n->mtime_ns = bfs_now_ns();
    n->meta |= BFS_META_HEADED; /* marker or none: what the directory is, is known */
    n->kind = BFS_KIND_DIR;
    n->size = 0;
    n->etag[0] = '\0';
    return head;
}

int fs_resolve(struct bfs_fs *fs, uint64_t parent, const char *name, struct bfs_node *ret)
{
    struct bfs_s3_object o = {0};
    struct list_probe probe = {0};
    struct bfs_node n = {.parent = parent};
    struct mapping *m;
    struct bfs_buf key, dir;
    char *pkey = NULL;
    int r, head;

    r = fs_inode_target(fs, parent, &m, &pkey, NULL);
    if (r < 0)
        return r;
    bfs_buf_init(&key, 8192);
    bfs_buf_init(&dir, 8192);
    r = bfs_buf_addf(&key, "%s%s", pkey, name);
    if (r == 0)
        r = bfs_buf_addf(&dir, "%s%s/", pkey, name);
    free(pkey);
    if (r < 0)
        goto out;
    probe = (struct list_probe){.client = m->client, .bucket = m->bucket, .prefix = dir.data};
    head = ask(fs, m, name, key.data, &probe, &o);
    snprintf(n.name, sizeof(n.name), "%s", name);
    n.fetched_ns = bfs_now_ns();
    if (probe.err < 0 && probe.err != -ENOENT) {
        r = probe.err;
    } else if (probe.found) {
        if (head == 0)
            atomic_fetch_add(&fs->skipped_keys, 1); /* object shadowed by the directory */
        head = dir_node(m, &probe, &o, &n);
        r = 0;
    } else if (head == 0) {
        fs_node_from_object(&n, &o, 1);
        r = 0;
    } else {
        r = head;
    }
    if (r == 0)
        r = bfs_store_node_put(fs->store, &n);
    if (r == 0 && head == 0)
        r = fs_xattrs_import(fs, n.ino, &o.meta);
    if (r == 0 && n.kind == BFS_KIND_DIR && probe.pg.next_token)
        fs_first_page_keep(fs, n.ino, &probe.pg, probe.since);
    else if (r == 0 && n.kind == BFS_KIND_DIR && probe.listed) /* the whole directory */
        (void)fs_list_from_page(fs, n.ino, dir.data, &probe.pg, probe.since);
    if (r == 0)
        *ret = n;
out:
    bfs_s3_list_page_done(&probe.pg);
    bfs_s3_object_done(&o);
    bfs_buf_done(&key);
    bfs_buf_done(&dir);
    return r;
}

static int lookup_root(struct bfs_fs *fs, const char *name, struct bfs_node *n)
{
    int known;

    pthread_mutex_lock(&fs->lock);
    known = fs_mapping_by_name(fs, name) != NULL;
    pthread_mutex_unlock(&fs->lock);
    if (!known && fs->auto_maps && !fs_negative_has(fs, BFS_ROOT_INO, name)) {
        (void)fs_maps_refresh(fs);
        pthread_mutex_lock(&fs->lock);
        known = fs_mapping_by_name(fs, name) != NULL;
        pthread_mutex_unlock(&fs->lock);
        if (!known)
            fs_negative_add(fs, BFS_ROOT_INO, name);
    }
    if (!known)
        return -ENOENT;
    return bfs_store_node_lookup(fs->store, BFS_ROOT_INO, name, n);
}

/* What a HEAD changed of what a row showed (head_into). */
#define SEEN_KIND 1  /* the name is another type now: the kernel's inode is wrong */
#define SEEN_ATTR 2  /* mode, owner, times or size differ */
#define SEEN_DATA 4  /* another version: the kernel's pages are wrong */

static int seen_change(const struct bfs_fs *fs, const struct bfs_node *a, const struct bfs_node *b)
{
    struct stat x, y;
    int seen = 0;

    fs_node_to_stat(fs, a, &x);
    fs_node_to_stat(fs, b, &y);
    if ((x.st_mode & S_IFMT) != (y.st_mode & S_IFMT))
        seen |= SEEN_KIND;
    if (x.st_mode != y.st_mode || x.st_uid != y.st_uid || x.st_gid != y.st_gid ||
        x.st_size != y.st_size || x.st_mtim.tv_sec != y.st_mtim.tv_sec ||
        x.st_mtim.tv_nsec != y.st_mtim.tv_nsec)
        seen |= SEEN_ATTR;
    if (strcmp(a->etag, b->etag) != 0)
        seen |= SEEN_DATA;
    return seen;
}

/* What a HEAD (or GET) answer o says of n, a row of the store, into the
 * store: metadata, size, ETag. *seen (may be NULL) says what changed of
 * what the row showed. r: the request's result. Frees o. */
static int learn_object(struct bfs_fs *fs, struct bfs_node *n, struct bfs_s3_object *o, int r,
                        int *seen)
{
    struct bfs_node old = *n;

    if (seen)
        *seen = 0;
    if (r == -ENOENT) {
        (void)bfs_store_node_gone(fs->store, n->parent, n->name);
        return r;
    }
    if (r < 0) {
        bfs_s3_object_done(o);
        return r;
    }
    fs_node_from_object(n, o, 1);
    n->fetched_ns = bfs_now_ns();
    r = bfs_store_node_put(fs->store, n);
    if (r == 0)
        r = fs_xattrs_import(fs, n->ino, &o->meta);
    bfs_s3_object_done(o);
    if (r == 0 && strcmp(old.etag, n->etag) != 0)
        (void)bfs_store_blocks_drop(fs->store, n->ino, n->etag); /* old version's blocks */
    if (r == 0 && seen)
        *seen = seen_change(fs, &old, n);
    return r;
}

/* HEADs key into n (learn_object). */
static int head_into(struct bfs_fs *fs, struct mapping *m, const char *key, struct bfs_node *n,
                     int *seen)
{
    struct bfs_s3_object o = {0};
    int r = fs_object_head(m, key, n->etag, &o);

    return learn_object(fs, n, &o, r, seen);
}

/* For an open whose first block is not cached: a GET of that block asks
 * what a HEAD would (its reply carries the ETag, size and metadata) and
 * brings the bytes the first read wants, so that the check costs no
 * request of its own. The block is kept under the ETag it came with. */
static int get_into(struct bfs_fs *fs, struct mapping *m, const char *key, struct bfs_node *n,
                    int *seen)
{
    uint64_t len = n->size < fs->block ? n->size : fs->block;
    struct bfs_s3_get_params p = {.ranged = 1, .first = 0, .last = len - 1};
    struct bfs_s3_object o = {0};
    struct bfs_s3_sink sink = {.cap = len};
    int64_t got;
    int r;

    sink.buf = malloc(len);
    if (!sink.buf)
        return head_into(fs, m, key, n, seen);
    got = bfs_s3_get_object(m->client, m->bucket, key, &p, &sink, &o, NULL);
    if (got == -ERANGE || got == -EOVERFLOW) { /* it shrank to nothing, or grew: ask plainly */
        bfs_s3_object_done(&o);
        free(sink.buf);
        return head_into(fs, m, key, n, seen);
    }
    r = learn_object(fs, n, &o, got < 0 ? (int)got : 0, seen);
    if (r == 0 && (uint64_t)got == (n->size < fs->block ? n->size : fs->block))
        (void)bfs_store_block_put(fs->store, n->ino, n->etag, 0, sink.buf, (size_t)got);
    free(sink.buf);
    return r;
}

/* HEADs a child of parent known from a listing. */
static int head_child(struct bfs_fs *fs, uint64_t parent, struct bfs_node *n, int *seen)
{
    struct mapping *m;
    struct bfs_buf key;
    char *pkey = NULL;
    int r = fs_inode_target(fs, parent, &m, &pkey, NULL);

    if (r < 0)
        return r;
    bfs_buf_init(&key, 8192);
    r = bfs_buf_addf(&key, "%s%s", pkey, n->name);
    if (r == 0)
        r = head_into(fs, m, key.data, n, seen);
    bfs_buf_done(&key);
    free(pkey);
    return r;
}

/* Whether ino is in a mapping as of a time (asof.c). */
static int in_as_of(struct bfs_fs *fs, uint64_t ino)
{
    struct mapping *m;
    char *key = NULL;
    int r = fs_inode_target(fs, ino, &m, &key, NULL);

    free(key);
    return r == 0 && m->as_of_ns;
}

/* find() in a mapping as of a time: the names are those of the listing
 * of versions (a HEAD or a LIST would tell today's), and a name's
 * metadata is asked of its version once. */
static int find_as_of(struct bfs_fs *fs, uint64_t parent, const char *name,
                      struct bfs_node *n, int listed)
{
    int r = listed ? 0 : fs_list_remote(fs, parent, 0), seen = 0;

    if (r < 0 && !(bfs_store_listing_time(fs->store, parent) && fs_stale_ok(fs, r)))
        return r;
    r = bfs_store_node_lookup(fs->store, parent, name, n);
    if (r == 0 && n->kind != BFS_KIND_DIR && !(n->meta & BFS_META_HEADED))
        r = head_child(fs, parent, n, &seen);
    if (r == -ENOENT)
        fs_negative_add(fs, parent, name);
    return r;
}

/* Finds parent/name without touching the kernel's counts. */
static int find(struct bfs_fs *fs, uint64_t parent, const char *name, struct bfs_node *n)
{
    int r, row, listed, seen = 0;
    int64_t listed_ns;

    if (parent == BFS_ROOT_INO)
        return lookup_root(fs, name, n);
    if (fs_negative_has(fs, parent, name))
        return -ENOENT;
    listed_ns = bfs_store_listing_time(fs->store, parent);
    listed = fs_fresh(fs, listed_ns);
    if (in_as_of(fs, parent))
        return find_as_of(fs, parent, name, n, listed);
    r = row = bfs_store_node_lookup(fs->store, parent, name, n);
    /* a local row (written here, upload pending) is the truth: S3 has not
     * seen it yet */
    if (r == 0 && (n->local || (n->kind == BFS_KIND_DIR && (n->meta & BFS_META_HEADED))))
        return 0;
    if (r == 0 && n->kind != BFS_KIND_DIR && (listed || fs_fresh(fs, n->fetched_ns))) {
        /* a name asked for by itself gets its metadata (mode, owner, times,
         * symlink), which a listing does not carry: one HEAD, once */
        if (n->meta & BFS_META_HEADED)
            return 0;
        r = head_child(fs, parent, n, &seen);
        /* the reply carries the new attributes (and a new type makes the
         * kernel drop its old inode); its pages of an old version go */
        if (r == 0 && (seen & SEEN_DATA))
            fs_kernel_inval_inode(fs, n->ino, 1, 0);
    } else if (r == -ENOENT && fs_fresh_within(fs, listed_ns, fs->reval_ms)) {
        return -ENOENT; /* older: another machine may have made it since */
    } else { /* unknown, stale, or a directory from a listing (is there a marker?) */
        r = fs_resolve(fs, parent, name, n);
    }
    /* S3 does not answer: what the cache knows, however old (a row, or
     * the name's absence from the last listing) */
    if (r < 0 && (row == 0 || (row == -ENOENT && listed_ns)) && fs_stale_ok(fs, r))
        return row == 0 && bfs_store_node_lookup(fs->store, parent, name, n) == 0 ? 0 : -ENOENT;
    if (r == -ENOENT) {
        (void)bfs_store_node_gone(fs->store, parent, name);
        fs_negative_add(fs, parent, name);
    }
    return r;
}

int bfs_fs_lookup(struct bfs_fs *fs, uint64_t parent, const char *name, struct stat *ret)
{
    struct bfs_node n;
    int r;

    if (!fs_name_valid(name, strlen(name)))
        return strlen(name) > 255 ? -ENAMETOOLONG : -ENOENT;
    if (parent != BFS_ROOT_INO) { /* S3 cannot hold such a key: say so */
        struct mapping *m;
        char *pkey = NULL;

        r = fs_inode_target(fs, parent, &m, &pkey, NULL);
        if (r == 0 && strlen(pkey) + strlen(name) > BFS_S3_KEY_MAX)
            r = -ENAMETOOLONG;
        free(pkey);
        if (r < 0)
            return r;
    }
    r = find(fs, parent, name, &n);
    if (r == 0)
        r = fs_inode_ref(fs, parent, &n);
    if (r == 0) {
        fs_node_to_stat(fs, &n, ret);
        fs_wfile_stat(fs, n.ino, ret);
    }
    return r;
}

/* A row marked local with no staging file and no journal row is left over
 * (its upload finished while the row could not be updated): S3 has it. */
static void settle(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n)
{
    struct bfs_upload u;
    struct wfile *w;

    if (!n->local)
        return;
    w = fs_wfile_find(fs, ino);
    if (w) {
        fs_wfile_put(fs, w);
        return;
    }
    if (bfs_store_upload_get(fs->store, ino, &u) == 0) {
        bfs_upload_done(&u);
        return;
    }
    n->local = 0;
    n->fetched_ns = 0;
    (void)bfs_store_node_update(fs->store, n);
}

int fs_revalidate(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n)
{
    return fs_revalidate_within(fs, ino, n, fs->ttl_ms);
}

static int revalidate(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n, int64_t window_ms,
                      int get);

int fs_revalidate_within(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n, int64_t window_ms)
{
    return revalidate(fs, ino, n, window_ms, 0);
}

int fs_revalidate_open(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n)
{
    return revalidate(fs, ino, n, fs->reval_ms, 1);
}

/* get: the first block may be fetched instead of a HEAD (get_into). */
static int revalidate(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n, int64_t window_ms,
                      int get)
{
    struct mapping *m;
    char *key = NULL;
    int r, seen = 0;

    settle(fs, ino, n);
    if (n->kind == BFS_KIND_DIR || n->local)
        return 0;
    /* a listing that showed defaults (meta.c) is checked at the first use */
    if (fs_fresh_within(fs, n->fetched_ns, window_ms) && (n->meta & BFS_META_HEADED))
        return 0;
    r = fs_inode_target(fs, ino, &m, &key, NULL);
    if (r == 0 && m->as_of_ns && (n->meta & BFS_META_HEADED)) {
        free(key);
        return 0; /* a version never changes (asof.c DESIGN 3) */
    }
    get = get && r == 0 && !m->as_of_ns && n->size > 0 && n->kind == BFS_KIND_FILE && n->etag[0] &&
          !bfs_store_block_has(fs->store, ino, n->etag, 0) &&
          !fs_inflight_has(fs, ino, n->etag, 0); /* a read just fetched it */
    if (r == 0)
        r = get ? get_into(fs, m, key, n, &seen) : head_into(fs, m, key, n, &seen);
    free(key);
    if (r < 0 && fs_stale_ok(fs, r))
        return 0; /* S3 does not answer: the row as it is */
    if (r == -ENOENT || (r == 0 && (seen & SEEN_KIND))) {
        /* the kernel's inode for the name is wrong: its next lookup of
         * the name asks again (and ESTALE makes open and stat do that) */
        fs_kernel_inval_entry(fs, n->parent, n->name, 1);
        return r == 0 ? -ESTALE : r;
    }
    if (r == 0 && (seen & (SEEN_ATTR | SEEN_DATA)))
        fs_kernel_inval_inode(fs, ino, (seen & SEEN_DATA) != 0, 1);
    return r;
}

void fs_node_stale(struct bfs_fs *fs, uint64_t ino)
{
    struct bfs_node n;

    if (bfs_store_node_get(fs->store, ino, &n) == 0) {
        n.fetched_ns = 0;
        (void)bfs_store_node_update(fs->store, &n);
    }
}

static void root_stat(struct bfs_fs *fs, struct stat *st)
{
    struct bfs_node n = {.ino = BFS_ROOT_INO, .kind = BFS_KIND_DIR, .mtime_ns = fs->started_ns};

    fs_node_to_stat(fs, &n, st);
}

/* An unlinked file written through a handle still open shows that file
 * (fstat comes without the handle: the kernel's inode has none). */
static void unlinked_stat(struct bfs_fs *fs, uint64_t ino, struct stat *st)
{
    struct wfile *w = fs_file_wfile(fs, ino);

    if (w) {
        fs_wfile_stat_of(w, st);
        fs_wfile_put(fs, w);
    }
    st->st_nlink = 0;
}

int bfs_fs_getattr(struct bfs_fs *fs, uint64_t ino, struct stat *ret)
{
    return bfs_fs_fgetattr(fs, ino, NULL, ret);
}

int bfs_fs_fgetattr(struct bfs_fs *fs, uint64_t ino, struct bfs_file *f, struct stat *ret)
{
    struct bfs_node n;
    int r;

    if (ino == BFS_ROOT_INO) {
        root_stat(fs, ret);
        return 0;
    }
    r = bfs_store_node_get(fs->store, ino, &n);
    if (r == -ENOENT)
        return -ESTALE;
    /* unlinked (here or by a listing) while the kernel holds the inode, an
     * open file most likely: its last attributes, with no link left, as a
     * local file system answers fstat then */
    if (r == 0 && n.present)
        r = fs_revalidate(fs, ino, &n);
    if (r == 0) {
        fs_node_to_stat(fs, &n, ret);
        if (f && f->w && f->t.ino == ino)
            fs_wfile_stat_of(f->w, ret);
        else if (n.present)
            fs_wfile_stat(fs, ino, ret);
        else
            unlinked_stat(fs, ino, ret);
    }
    return r;
}

/* A symlink's target from the block cache, else from S3, then kept there
 * (rsync and cp -a read every link's target; the next readlink is free). */
int bfs_fs_readlink(struct bfs_fs *fs, uint64_t ino, char *buf, size_t size)
{
    struct bfs_s3_sink sink = {.buf = buf, .cap = size - 1};
    struct bfs_s3_get_params gp = {0};
    struct bfs_s3_object o = {0};
    struct bfs_node n = {0};
    char real[BFS_S3_ETAG_MAX], vid[BFS_S3_VERSION_ID_MAX];
    struct mapping *m;
    char *key = NULL;
    char etag[BFS_S3_ETAG_MAX];
    int64_t got;
    int kind, r;

    r = fs_inode_target(fs, ino, &m, &key, &kind);
    if (r < 0)
        return r;
    if (kind != BFS_KIND_SYMLINK) {
        free(key);
        return -EINVAL;
    }
    if (bfs_store_node_get(fs->store, ino, &n) == 0 && n.etag[0] && !n.local &&
        (got = bfs_store_block_read(fs->store, ino, n.etag, 0, 0, buf, size - 1)) >= 0 &&
        (uint64_t)got == n.size) {
        free(key);
        buf[got] = '\0';
        return (int)got;
    }
    fs_get_version(n.etag, &gp, real, vid);
    gp.if_match = NULL; /* the link is read whatever it became (its ETag is checked below) */
    got = bfs_s3_get_object(m->client, m->bucket, key, &gp, &sink, &o, NULL);
    free(key);
    if (got >= 0 && gp.version_id) /* the version's ETag is the node's */
        snprintf(o.etag, sizeof(o.etag), "%s", n.etag);
    if (got >= 0) {
        bfs_s3_etag_normalize(o.etag, etag);
        if (strcmp(etag, n.etag) == 0 && !n.local)
            (void)bfs_store_block_put(fs->store, ino, etag, 0, buf, (size_t)got);
    }
    bfs_s3_object_done(&o);
    if (got == -EOVERFLOW)
        return -ENAMETOOLONG;
    if (got < 0)
        return (int)got;
    buf[got] = '\0';
    return (int)got;
}
