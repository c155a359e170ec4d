/* SPDX-License-Identifier: MIT */
/*
 * xattr.c: read-only extended attributes. On files and directories,
 * user.s3.bucket, user.s3.key, user.s3.etag and user.s3.url describe the
 * object behind the name. On the mount root, user.bucketfs.stats holds the
 * mount's counters as one JSON object (what `bucketfs status` shows);
 * report.c answers the other user.bucketfs.* names (uploads, presign).
 *
 * user.* attributes set by users are kept in the store and persisted in the
 * object's metadata as x-amz-meta-xattr-NAME (NAME escaped: S3 lower-cases
 * metadata names) with a base64 value, so they survive and travel with the
 * object. S3 limits user metadata to 2 KB in all, which bounds them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/xattr.h>

#include "bfs-config.h"
#include "bucketfs/util.h"
#include "fs-int.h"

#define META_LIMIT 2000 /* S3: 2 KB of user metadata, names and values */

static const char object_names[] = "user.s3.bucket\0user.s3.key\0user.s3.url\0";
static const char root_names[] = "user.bucketfs.stats\0user.bucketfs.uploads\0";

static int stats_json(struct bfs_fs *fs, struct bfs_buf *b)
{
    struct bfs_s3_stats total = {0};
    struct bfs_store_stats ss;
    int64_t down_ms = 0; /* the longest outage going on */
    int r;

    for (size_t i = 0; i < fs->nclients; i++) {
        struct bfs_s3_stats s;
        int64_t d = bfs_s3_client_down_ms(fs->clients[i]);

        if (d > down_ms)
            down_ms = d;
        bfs_s3_client_stats(fs->clients[i], &s);
        total.requests += s.requests;
        total.retries += s.retries;
        total.errors += s.errors;
        total.bytes_up += s.bytes_up;
        total.bytes_down += s.bytes_down;
        for (int k = 0; k < BFS_S3_OP_COUNT; k++)
            total.by_op[k] += s.by_op[k];
    }
    bfs_store_stats(fs->store, &ss);
    r = bfs_buf_addf(b, "{\"requests\":%llu,\"retries\":%llu,\"errors\":%llu,"
                        "\"bytes_up\":%llu,\"bytes_down\":%llu,\"by_op\":{",
                     (unsigned long long)total.requests, (unsigned long long)total.retries,
                     (unsigned long long)total.errors, (unsigned long long)total.bytes_up,
                     (unsigned long long)total.bytes_down);
    for (int k = 0; k < BFS_S3_OP_COUNT && r == 0; k++)
        r = bfs_buf_addf(b, "%s\"%s\":%llu", k ? "," : "", bfs_s3_op_name((enum bfs_s3_op)k),
                         (unsigned long long)total.by_op[k]);
    if (r == 0)
        r = bfs_buf_addf(b, "},\"cache\":{\"bytes\":%llu,\"limit\":%llu,\"blocks\":%llu,"
                            "\"hits\":%llu,\"misses\":%llu,\"evictions\":%llu,"
                            "\"write_failures\":%llu},\"skipped_keys\":%llu,"
                            "\"readahead_blocks\":%llu,\"ranged_gets\":%llu,"
                            "\"block_fd_reuses\":%llu,\"early_answers\":%llu,"
                            "\"random_fetches\":%llu,\"random_fetch_blocks\":%llu,"
                            "\"meta_requests\":%llu,\"kernel_invals\":%llu,\"stale_serves\":%llu,"
                            "\"unreachable_s\":%lld,\"server_copies\":%llu,"
                            "\"server_copied_bytes\":%llu,"
                            "\"uploaded\":%llu,\"uploaded_bytes\":%llu,"
                            "\"upload_failures\":%llu,\"uptime_s\":%lld,"
                            "\"version\":\"%s\"}",
                         (unsigned long long)ss.cache_bytes, (unsigned long long)ss.cache_limit,
                         (unsigned long long)ss.blocks, (unsigned long long)ss.hits,
                         (unsigned long long)ss.misses, (unsigned long long)ss.evictions,
                         (unsigned long long)ss.write_failures,
                         (unsigned long long)atomic_load(&fs->skipped_keys),
                         (unsigned long long)atomic_load(&fs->readahead_blocks),
                         (unsigned long long)atomic_load(&fs->ranged_gets),
                         (unsigned long long)atomic_load(&fs->block_fd_reuses),
                         (unsigned long long)atomic_load(&fs->early_answers),
                         (unsigned long long)atomic_load(&fs->rfetches_started),
                         (unsigned long long)atomic_load(&fs->rfetch_blocks),
                         (unsigned long long)atomic_load(&fs->meta_requests),
                         (unsigned long long)atomic_load(&fs->kernel_invals),
                         (unsigned long long)atomic_load(&fs->stale_serves),
                         (long long)((down_ms + 999) / 1000),
                         (unsigned long long)atomic_load(&fs->copies),
                         (unsigned long long)atomic_load(&fs->copied_bytes),
                         (unsigned long long)atomic_load(&fs->up.uploaded),
                         (unsigned long long)atomic_load(&fs->up.bytes),
                         (unsigned long long)atomic_load(&fs->up.failures),
                         (long long)((bfs_now_ns() - fs->started_ns) / 1000000000), BFS_VERSION);
    return r;
}

/* etag (without S3's quotes, comparable with md5sum) and, in a mapping as
 * of a time, version_id: the version the node shows (asof.c). */
static int etag_attr(const struct bfs_node *n, const char *what, struct bfs_buf *b)
{
    char real[BFS_S3_ETAG_MAX], vid[BFS_S3_VERSION_ID_MAX];
    const char *e = n->etag;

    if (fs_etag_version(n->etag, real, vid))
        e = real;
    else if (!strcmp(what, "version_id"))
        return -ENODATA;
    if (!strcmp(what, "version_id"))
        return bfs_buf_adds(b, vid);
    if (strcmp(what, "etag") != 0)
        return -ENODATA;
    return bfs_buf_add(b, e + (e[0] == '"'), strlen(e) - (e[0] == '"' ? 2 : 0));
}

static int object_attr(struct bfs_fs *fs, uint64_t ino, const char *name, struct bfs_buf *b)
{
    struct mapping *m;
    struct bfs_node n;
    char *key = NULL;
    int r = fs_inode_target(fs, ino, &m, &key, NULL);

    if (r < 0)
        return r == -EPERM ? -ENODATA : r;
    if (!strcmp(name, "user.s3.bucket"))
        r = bfs_buf_adds(b, m->bucket);
    else if (!strcmp(name, "user.s3.key"))
        r = bfs_buf_adds(b, key);
    else if (!strcmp(name, "user.s3.url"))
        r = bfs_buf_addf(b, "s3://%s/%s", m->bucket, key);
    else if (!strncmp(name, "user.s3.", 8) && bfs_store_node_get(fs->store, ino, &n) == 0 &&
             n.etag[0])
        r = etag_attr(&n, name + 8, b);
    else
        r = -ENODATA;
    free(key);
    return r;
}

static ssize_t reply(const struct bfs_buf *b, char *buf, size_t size)
{
    if (size == 0)
        return (ssize_t)b->len;
    if (b->len > size)
        return -ERANGE;
    memcpy(buf, bfs_buf_str(b), b->len);
    return (ssize_t)b->len;
}

int fs_xattr_meta_name(const char *name, struct bfs_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    int r = bfs_buf_adds(out, "xattr-");

    for (const unsigned char *p = (const unsigned char *)name; *p && r == 0; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
            *p == '-') {
            r = bfs_buf_add(out, p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            r = bfs_buf_add(out, esc, 3);
        }
    }
    return r;
}

int fs_xattrs_import(struct bfs_fs *fs, uint64_t ino, const struct bfs_s3_meta *m)
{
    int r = bfs_store_xattr_clear(fs->store, ino);

    for (size_t i = 0; i < m->n && r == 0; i++) {
        const char *v = m->values[i];
        unsigned char *val;
        char *name = NULL;
        int len;

        if (strncmp(m->names[i], "xattr-", 6) != 0 || bfs_uri_decode(m->names[i] + 6, &name) < 0)
            continue; /* not ours, or not decodable: ignore rather than fail */
        val = malloc(strlen(v) / 4 * 3 + 3);
        len = val ? bfs_base64_decode(v, strlen(v), val, strlen(v) / 4 * 3 + 3) : -ENOMEM;
        if (len >= 0 && *name)
            r = bfs_store_xattr_set(fs->store, ino, name, val, (size_t)len);
        free(val);
        free(name);
    }
    return r;
}

/* Makes sure the node's attributes were read from its object (a listing
 * alone does not carry them). */
static int load(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n)
{
    int r = bfs_store_node_get(fs->store, ino, n);

    if (r == -ENOENT)
        return -ESTALE;
    if (r == 0 && !(n->meta & BFS_META_HEADED) && !n->local && n->kind != BFS_KIND_DIR) {
        n->fetched_ns = 0; /* force the HEAD */
        r = fs_revalidate(fs, ino, n);
    }
    return r;
}

ssize_t bfs_fs_getxattr(struct bfs_fs *fs, uint64_t ino, const char *name, char *buf,
                        size_t size)
{
    struct bfs_node n;
    struct bfs_buf b;
    ssize_t r;

    if (ino != BFS_ROOT_INO && strncmp(name, "user.", 5) == 0 && strncmp(name, "user.s3.", 8) &&
        strncmp(name, "user.bucketfs.", 14)) {
        r = load(fs, ino, &n);
        return r < 0 ? r : bfs_store_xattr_get(fs->store, ino, name + 5, buf, size);
    }
    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (!strncmp(name, "user.bucketfs.", 14) && strcmp(name, "user.bucketfs.stats"))
        r = fs_report_xattr(fs, ino, name + 14, &b); /* uploads, presign.SECS */
    else if (ino == BFS_ROOT_INO)
        r = !strcmp(name, "user.bucketfs.stats") ? stats_json(fs, &b) : -ENODATA;
    else
        r = object_attr(fs, ino, name, &b);
    if (r == 0)
        r = reply(&b, buf, size);
    bfs_buf_done(&b);
    return r;
}

static int list_one(void *ctx, const char *name, const void *value, size_t len)
{
    struct bfs_buf *b = ctx;
    int r = bfs_buf_addf(b, "user.%s", name);

    (void)value, (void)len;
    return r == 0 ? bfs_buf_add(b, "", 1) : r;
}

ssize_t bfs_fs_listxattr(struct bfs_fs *fs, uint64_t ino, char *buf, size_t size)
{
    struct bfs_node n;
    struct bfs_buf b;
    ssize_t r;

    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (ino == BFS_ROOT_INO) {
        r = bfs_buf_add(&b, root_names, sizeof(root_names) - 1);
    } else {
        r = bfs_buf_add(&b, object_names, sizeof(object_names) - 1);
        if (r == 0)
            r = load(fs, ino, &n);
        if (r == 0 && n.etag[0]) /* directories have none */
            r = bfs_buf_add(&b, "user.s3.etag", sizeof("user.s3.etag"));
        if (r == 0)
            r = bfs_store_xattrs(fs->store, ino, list_one, &b);
    }
    if (r == 0)
        r = reply(&b, buf, size);
    bfs_buf_done(&b);
    return r;
}

static int add_size(void *ctx, const char *name, const void *value, size_t len)
{
    size_t *total = ctx;

    (void)value;
    *total += strlen(name) * 3 + 6 + (len + 2) / 3 * 4;
    return 0;
}

/* Sends the node's metadata, attributes included, to S3 (or to its
 * pending upload). */
static int persist(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n)
{
    struct wfile *w = fs_wfile_find(fs, ino);
    struct mapping *m;
    char *key = NULL, etag[BFS_S3_ETAG_MAX];
    size_t total = 64;
    int r;

    (void)bfs_store_xattrs(fs->store, ino, add_size, &total);
    n->ctime_ns = bfs_now_ns();
    if (w) {
        pthread_mutex_lock(&w->lock);
        pthread_mutex_lock(&w->alock);
        w->ctime_ns = n->ctime_ns;
        pthread_mutex_unlock(&w->alock);
        pthread_mutex_unlock(&w->lock);
    }
    if (total > META_LIMIT)
        r = -ENOSPC; /* S3 would refuse the metadata */
    else if (w)
        r = fs_wfile_touch(fs, w); /* rides on the (next) upload */
    else if ((r = fs_inode_target(fs, ino, &m, &key, NULL)) == 0 && m->read_only)
        r = -EROFS;
    else if (r == 0 && n->kind == BFS_KIND_DIR)
        r = fs_put_small(fs, m, key, "", n, "application/x-directory", etag);
    else if (r == 0)
        r = fs_rewrite_meta(fs, m, key, n, etag);
    if (r == 0 && !w && n->kind != BFS_KIND_DIR) {
        bfs_s3_etag_normalize(etag, n->etag);
        n->fetched_ns = bfs_now_ns();
        r = bfs_store_node_update(fs->store, n);
    }
    fs_wfile_put(fs, w);
    free(key);
    return r;
}

int bfs_fs_setxattr(struct bfs_fs *fs, uint64_t ino, const char *name, const char *value,
                    size_t size, int flags)
{
    struct bfs_node n;
    ssize_t have;
    int r;

    if (ino == BFS_ROOT_INO || strncmp(name, "user.", 5) != 0)
        return -ENOTSUP;
    if (!strncmp(name, "user.s3.", 8) || !strncmp(name, "user.bucketfs.", 14))
        return -EPERM; /* ours, read-only */
    r = load(fs, ino, &n);
    if (r < 0)
        return r;
    if (n.parent == BFS_ROOT_INO)
        return -ENOTSUP; /* mapping directories have no object */
    have = bfs_store_xattr_get(fs->store, ino, name + 5, NULL, 0);
    if ((flags & XATTR_CREATE) && have >= 0)
        return -EEXIST;
    if ((flags & XATTR_REPLACE) && have < 0)
        return -ENODATA;
    r = bfs_store_xattr_set(fs->store, ino, name + 5, value, size);
    if (r == 0)
        r = persist(fs, ino, &n);
    if (r < 0) /* not kept where it should be: do not pretend */
        (void)(have >= 0 ? 0 : bfs_store_xattr_remove(fs->store, ino, name + 5));
    return r;
}

int bfs_fs_removexattr(struct bfs_fs *fs, uint64_t ino, const char *name)
{
    struct bfs_node n;
    int r;

    if (ino == BFS_ROOT_INO || strncmp(name, "user.", 5) != 0)
        return -ENOTSUP;
    if (!strncmp(name, "user.s3.", 8) || !strncmp(name, "user.bucketfs.", 14))
        return -EPERM;
    r = load(fs, ino, &n);
    if (r == 0 && bfs_store_xattr_get(fs->store, ino, name + 5, NULL, 0) < 0)
        r = -ENODATA;
    if (r == 0)
        r = bfs_store_xattr_remove(fs->store, ino, name + 5);
    if (r == 0)
        r = persist(fs, ino, &n);
    return r;
}
