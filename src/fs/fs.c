/* SPDX-License-Identifier: MIT */
/*
 * fs.c: making and tearing down the filesystem: S3 clients per mapping,
 * mapping directories under the root, ListBuckets mode, statfs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "fs-int.h"

/* The client settings of mapping m (its overrides over the globals). */
static struct bfs_s3_config client_config(const struct bfs_config *c,
                                          const struct bfs_conn_settings *o)
{
    struct bfs_s3_config sc = {0};
    int ps = o && o->path_style >= 0 ? o->path_style : c->conn.path_style;

    sc.endpoint = o && o->endpoint ? o->endpoint : c->conn.endpoint;
    sc.region = o && o->region ? o->region : c->conn.region;
    sc.addressing = ps < 0 ? BFS_S3_ADDR_AUTO : ps ? BFS_S3_ADDR_PATH : BFS_S3_ADDR_VHOST;
    sc.unsigned_payload = 1;
    sc.max_connections = c->max_connections;
    sc.request_timeout_ms = (long)c->request_timeout_ms;
    /* a stalled transfer is cut within the call's bound too */
    sc.low_speed_time_s = c->request_timeout_ms < 30000 ? (long)(c->request_timeout_ms / 1000) : 0;
    sc.ca_file = c->ca_file;
    sc.insecure = c->insecure;
    return sc;
}

/* Encryption and storage class of mapping m into sc; key holds an SSE-C key. */
static int client_encryption(const struct bfs_mapping *m, struct bfs_s3_config *sc,
                             unsigned char key[32], char *err, size_t errlen)
{
    int r = 0;

    if (!m)
        return 0;
    sc->storage_class = m->storage_class;
    if (!m->sse)
        return 0;
    if (!strcmp(m->sse, "AES256")) {
        sc->sse = BFS_S3_SSE_S3;
    } else if (!strcmp(m->sse, "aws:kms")) {
        sc->sse = BFS_S3_SSE_KMS;
        sc->sse_kms_key_id = m->sse_kms_key_id;
    } else {
        sc->sse = BFS_S3_SSE_C;
        r = bfs_s3_sse_c_key_load(m->sse_c_key_file, key, err, errlen);
        sc->sse_c_key = key;
    }
    return r;
}

static int make_client(struct bfs_fs *fs, const struct bfs_mapping *m,
                       const struct bfs_conn_settings *o, const char *bucket,
                       struct bfs_s3_client **ret, char *err, size_t errlen)
{
    const struct bfs_config *c = fs->cfg;
    struct bfs_s3_config sc = client_config(c, o);
    unsigned char key[32];
    struct bfs_s3_creds_opts co = {
        .access_key = c->access_key, .secret_key = c->secret_key,
        .session_token = c->session_token, .passwd_file = c->passwd_file,
        .profile = o && o->profile ? o->profile : c->conn.profile, .bucket = bucket,
        .anonymous = c->anonymous};
    struct bfs_s3_client **nc;
    struct bfs_s3_creds *creds;
    int r = client_encryption(m, &sc, key, err, errlen);

    if (r == 0)
        r = bfs_s3_creds_new(&co, &creds, err, errlen);
    if (r < 0) {
        explicit_bzero(key, sizeof(key));
        return r;
    }
    nc = realloc(fs->clients, (fs->nclients + 1) * sizeof(*nc));
    if (!nc) {
        bfs_s3_creds_free(creds);
        return -ENOMEM;
    }
    fs->clients = nc;
    r = bfs_s3_client_new(&sc, creds, &fs->clients[fs->nclients], err, errlen);
    explicit_bzero(key, sizeof(key));
    if (r < 0)
        return r;
    *ret = fs->clients[fs->nclients++];
    return 0;
}

/* Whether mapping m needs a client of its own. */
static int overrides(const struct bfs_mapping *m)
{
    const struct bfs_conn_settings *o = &m->conn;

    return o->region || o->endpoint || o->path_style >= 0 || o->profile || m->sse ||
           m->storage_class;
}

/* Adds a mapping and its directory row under the root. Caller holds no lock. */
static int add_mapping(struct bfs_fs *fs, const char *name, const char *bucket,
                       const char *prefix, struct bfs_s3_client *client, int read_only,
                       int conflicts, int64_t as_of_ns)
{
    struct bfs_node n = {.parent = BFS_ROOT_INO, .kind = BFS_KIND_DIR,
                         .mtime_ns = bfs_now_ns()};
    struct mapping *m = calloc(1, sizeof(*m)), **nm;
    int r;

    if (!m)
        return -ENOMEM;
    snprintf(n.name, sizeof(n.name), "%s", name);
    r = bfs_store_node_put(fs->store, &n);
    m->name = strdup(name);
    m->bucket = strdup(bucket);
    m->prefix = strdup(prefix);
    m->client = client;
    m->read_only = read_only;
    m->as_of_ns = as_of_ns;
    m->conflicts = conflicts;
    atomic_init(&m->conditions, COND_UNKNOWN);
    atomic_init(&m->mpu_conditions, COND_UNKNOWN);
    atomic_init(&m->delete_conditions, COND_UNKNOWN);
    m->ino = n.ino;
    pthread_mutex_lock(&fs->lock);
    /* two ListBuckets refreshes at once (lookups of two unknown names)
     * both find a new bucket missing: the first adds it */
    if (r == 0 && m->name && fs_mapping_by_name(fs, m->name))
        r = 1;
    nm = r == 0 ? realloc(fs->maps, (fs->nmaps + 1) * sizeof(*nm)) : NULL;
    if (nm)
        fs->maps = nm;
    if (r != 0 || !nm || !m->name || !m->bucket || !m->prefix) {
        pthread_mutex_unlock(&fs->lock);
        free(m->name);
        free(m->bucket);
        free(m->prefix);
        free(m);
        return r == 1 ? 0 : r < 0 ? r : -ENOMEM;
    }
    fs->maps[fs->nmaps++] = m;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

/* ListBuckets mode: adds a mapping for every bucket not yet known. */
int fs_maps_refresh(struct bfs_fs *fs)
{
    struct bfs_s3_bucket_list l;
    struct bfs_s3_error e;
    int r;

    r = bfs_s3_list_buckets(fs->clients[0], &l, &e);
    if (r < 0)
        return r;
    for (size_t i = 0; i < l.n && r == 0; i++) {
        int known;

        pthread_mutex_lock(&fs->lock);
        known = fs_mapping_by_name(fs, l.names[i]) != NULL;
        pthread_mutex_unlock(&fs->lock);
        if (!known && fs_name_valid(l.names[i], strlen(l.names[i])))
            r = add_mapping(fs, l.names[i], l.names[i], "", fs->clients[0], fs->cfg->read_only,
                            fs->cfg->conflicts, 0);
    }
    bfs_s3_bucket_list_done(&l);
    pthread_mutex_lock(&fs->lock);
    fs->maps_listed_ms = bfs_mono_ms();
    pthread_mutex_unlock(&fs->lock);
    return r;
}

static int setup_maps(struct bfs_fs *fs, char *err, size_t errlen)
{
    const struct bfs_config *c = fs->cfg;
    struct bfs_s3_client *dflt;
    int r;

    r = make_client(fs, NULL, NULL, c->nmaps ? c->maps[0].bucket : NULL, &dflt, err, errlen);
    for (size_t i = 0; i < c->nmaps && r == 0; i++) {
        const struct bfs_mapping *m = &c->maps[i];
        struct bfs_s3_client *cl = dflt;

        if (overrides(m))
            r = make_client(fs, m, &m->conn, m->bucket, &cl, err, errlen);
        if (r == 0)
            r = add_mapping(fs, m->name, m->bucket, m->prefix, cl, m->read_only, m->conflicts,
                            m->as_of_ns);
        if (r < 0 && !err[0])
            snprintf(err, errlen, "mapping %s: %s", m->name, strerror(-r));
    }
    return r;
}

/* The root lives in the inode table for good (invariant 1). */
static int add_root(struct bfs_fs *fs)
{
    struct inode *root = calloc(1, sizeof(*root));

    if (!root || !(root->key = strdup(""))) {
        free(root);
        return -ENOMEM;
    }
    root->ino = BFS_ROOT_INO;
    root->kind = BFS_KIND_DIR;
    root->map = -1;
    root->nlookup = 1;
    return fs_inode_insert(fs, root);
}

/* How many background fetches (randfetch.c) may run at once: the pool has
 * read_ahead + 4 threads, and a sequential reader's read-ahead must find
 * its read_ahead of them free; at least one. */
static int rfetch_slots(const struct bfs_config *cfg, int nworkers)
{
    int n = nworkers - cfg->read_ahead;

    return n < 1 ? 1 : n > FS_RFETCH_INFLIGHT ? FS_RFETCH_INFLIGHT : n;
}

int bfs_fs_new(const struct bfs_config *cfg, struct bfs_store *store, int recover,
               struct bfs_fs **ret, char *err, size_t errlen)
{
    struct bfs_fs *fs = calloc(1, sizeof(*fs));
    int nworkers = cfg->read_ahead + 4 > 32 ? 32 : cfg->read_ahead + 4;
    int r;

    err[0] = '\0';
    if (!fs)
        return -ENOMEM;
    pthread_mutex_init(&fs->lock, NULL);
    pthread_mutex_init(&fs->conflicts.lock, NULL);
    pthread_cond_init(&fs->wcreated, NULL);
    fs->cfg = cfg;
    fs->store = store;
    fs->ttl_ms = cfg->metadata_ttl * 1000;
    fs->reval_ms = cfg->revalidate_ms < fs->ttl_ms ? cfg->revalidate_ms : fs->ttl_ms;
    fs->block = cfg->block_size;
    fs->started_ns = bfs_now_ns();
    fs->auto_maps = cfg->nmaps == 0;
    r = fs_blockfds_init(&fs->bfds, cfg->cache_size, fs->block);
    if (r == 0)
        r = add_root(fs);
    if (r == 0)
        r = setup_maps(fs, err, errlen);
    if (r == 0)
        r = fs_workers_start(&fs->workers, nworkers, rfetch_slots(cfg, nworkers));
    if (r == 0)
        r = fs_uploader_start(fs, UPLOADERS);
    if (r == 0 && recover)
        r = fs_wfiles_recover(fs); /* uploads a crash left in the journal */
    if (r < 0) {
        if (!err[0])
            snprintf(err, errlen, "%s", strerror(-r));
        bfs_fs_free(fs);
        return r;
    }
    *ret = fs;
    return 0;
}

void bfs_fs_free(struct bfs_fs *fs)
{
    if (!fs)
        return;
    /* handles the kernel never released (a lazy unmount with files open):
     * their dirty data goes to the journal like any close */
    while (fs->files)
        bfs_fs_release(fs, fs->files);
    while (fs->dirs)
        bfs_fs_closedir(fs->dirs);
    fs_uploader_stop(fs);
    fs_workers_stop(&fs->workers);
    fs_rfetch_free(fs);
    fs_inflight_drop_kept(fs);
    fs_blockfds_free(&fs->bfds);
    fs_wfiles_free(fs);
    for (size_t i = 0; i < INODE_BUCKETS; i++) {
        struct inode *n, *next;
        for (n = fs->inodes[i]; n; n = next) {
            next = n->next;
            free(n->key);
            free(n);
        }
    }
    for (size_t i = 0; i < fs->nmaps; i++) {
        fs_top_free(fs->maps[i]);
        free(fs->maps[i]->name);
        free(fs->maps[i]->bucket);
        free(fs->maps[i]->prefix);
        free(fs->maps[i]);
    }
    free(fs->maps);
    while (fs->neg) {
        struct negative *n = fs->neg;
        fs->neg = n->next;
        free(n->name);
        free(n);
    }
    for (size_t i = 0; i < fs->nclients; i++)
        bfs_s3_client_free(fs->clients[i]);
    free(fs->clients);
    pthread_cond_destroy(&fs->wcreated);
    bfs_s3_list_page_done(&fs->first.pg);
    pthread_mutex_destroy(&fs->lock);
    fs_conflicts_free(fs);
    free(fs);
}

int bfs_fs_check(struct bfs_fs *fs, char *err, size_t errlen)
{
    struct bfs_s3_error e = {0};
    int r = 0;

    if (fs->auto_maps) {
        r = fs_maps_refresh(fs);
        if (r < 0) {
            struct bfs_s3_bucket_list l;
            (void)bfs_s3_list_buckets(fs->clients[0], &l, &e);
            snprintf(err, errlen, "cannot list buckets at %s: %s%s%s",
                     bfs_s3_client_endpoint(fs->clients[0]), e.code[0] ? e.code : "",
                     e.code[0] ? ": " : "", e.message[0] ? e.message : strerror(-r));
        }
        return r;
    }
    for (size_t i = 0; i < fs->nmaps && r == 0; i++) {
        struct mapping *m = fs->maps[i];
        struct bfs_s3_list_params p = {.prefix = m->prefix, .max_keys = 1000};
        struct bfs_s3_list_page pg;

        if (m->as_of_ns) { /* no top keys: they would be today's */
            r = fs_asof_check(m, err, errlen);
            continue;
        }
        r = bfs_s3_list_objects(m->client, m->bucket, &p, &pg, &e);
        if (r == 0) {
            fs_top_keep(m, &pg);
            bfs_s3_list_page_done(&pg);
        } else
            snprintf(err, errlen, "mapping %s: cannot list s3://%s/%s at %s: %s%s%s", m->name,
                     m->bucket, m->prefix, bfs_s3_client_endpoint(m->client),
                     e.code[0] ? e.code : "", e.code[0] ? ": " : "",
                     e.message[0] ? e.message : strerror(-r));
    }
    return r;
}

double bfs_fs_ttl(const struct bfs_fs *fs)
{
    return (double)fs->ttl_ms / 1000.0;
}

double bfs_fs_negative_ttl(const struct bfs_fs *fs)
{
    return (double)fs->reval_ms / 1000.0;
}

void bfs_fs_statfs(struct bfs_fs *fs, struct statvfs *st)
{
    /* S3 has no size: report a large, mostly free filesystem so that
     * df prints something sensible and tools that check space go on */
    const uint64_t total = 1ull << 50; /* 1 PiB */
    struct bfs_store_stats ss;

    bfs_store_stats(fs->store, &ss);
    memset(st, 0, sizeof(*st));
    st->f_bsize = fs->block;
    st->f_frsize = 4096;
    st->f_blocks = total / 4096;
    st->f_bfree = st->f_bavail = (total - ss.cache_bytes) / 4096;
    st->f_files = 1ull << 32;
    st->f_ffree = st->f_favail = (1ull << 32) - 1;
    st->f_namemax = 255;
}

struct pending {
    size_t n, failed;
    uint64_t bytes;
    char first_error[300];
};

static int count_pending(void *ctx, const struct bfs_upload *u)
{
    struct pending *p = ctx;

    if (u->state == BFS_UPLOAD_FAILED) {
        if (!p->failed++)
            snprintf(p->first_error, sizeof(p->first_error), "%s: %s", u->key,
                     u->error ? u->error : "");
        return 0;
    }
    p->n++;
    p->bytes += u->size;
    return 0;
}

void bfs_fs_drain(struct bfs_fs *fs)
{
    int64_t last_log = 0;

    for (;;) {
        struct pending p = {0};

        fs_upload_expedite(fs); /* nobody waits for upload_delay to pass now */
        if (bfs_store_uploads(fs->store, count_pending, &p) < 0)
            return;
        if (p.n == 0) {
            if (p.failed)
                bfs_err("%zu upload(s) failed and stay in the journal for the next mount "
                        "(first: %s)", p.failed, p.first_error);
            return;
        }
        if (bfs_mono_ms() - last_log >= 2000) {
            bfs_info("waiting for %zu upload(s), %llu bytes, before exiting (a second "
                     "signal leaves them in the journal for the next mount)",
                     p.n, (unsigned long long)p.bytes);
            last_log = bfs_mono_ms();
        }
        bfs_sleep_ms(100);
    }
}
