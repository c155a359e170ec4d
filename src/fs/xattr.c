/* SPDX-License-Identifier: MIT */
/*
 * xattr.c: read-only extended attributes. On files and directories,
 * user.s3.bucket, user.s3.key, user.s3.etag and user.s3.url describe the
 * object behind the name. On the mount root, user.bucketfs.stats holds the
 * mount's counters as one JSON object (what `bucketfs status` shows).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

static const char object_names[] = "user.s3.bucket\0user.s3.key\0user.s3.etag\0user.s3.url\0";
static const char root_names[] = "user.bucketfs.stats\0";

static int stats_json(struct bfs_fs *fs, struct bfs_buf *b)
{
    struct bfs_s3_stats total = {0};
    struct bfs_store_stats ss;
    int r;

    for (size_t i = 0; i < fs->nclients; i++) {
        struct bfs_s3_stats s;

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
                            "\"readahead_blocks\":%llu,\"ranged_gets\":%llu}",
                         (unsigned long long)ss.cache_bytes, (unsigned long long)ss.cache_limit,
                         (unsigned long long)ss.blocks, (unsigned long long)ss.hits,
                         (unsigned long long)ss.misses, (unsigned long long)ss.evictions,
                         (unsigned long long)ss.write_failures,
                         (unsigned long long)atomic_load(&fs->skipped_keys),
                         (unsigned long long)atomic_load(&fs->readahead_blocks),
                         (unsigned long long)atomic_load(&fs->ranged_gets));
    return r;
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
    else if (!strcmp(name, "user.s3.etag") && bfs_store_node_get(fs->store, ino, &n) == 0 &&
             n.etag[0]) /* without S3's quotes, comparable with md5sum */
        r = bfs_buf_add(b, n.etag + (n.etag[0] == '"'),
                        strlen(n.etag) - (n.etag[0] == '"' ? 2 : 0));
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

ssize_t bfs_fs_getxattr(struct bfs_fs *fs, uint64_t ino, const char *name, char *buf,
                        size_t size)
{
    struct bfs_buf b;
    ssize_t r;

    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (ino == BFS_ROOT_INO)
        r = !strcmp(name, "user.bucketfs.stats") ? stats_json(fs, &b) : -ENODATA;
    else
        r = object_attr(fs, ino, name, &b);
    if (r == 0)
        r = reply(&b, buf, size);
    bfs_buf_done(&b);
    return r;
}

ssize_t bfs_fs_listxattr(struct bfs_fs *fs, uint64_t ino, char *buf, size_t size)
{
    struct bfs_buf b;
    ssize_t r;

    (void)fs;
    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (ino == BFS_ROOT_INO)
        r = bfs_buf_add(&b, root_names, sizeof(root_names) - 1);
    else
        r = bfs_buf_add(&b, object_names, sizeof(object_names) - 1);
    if (r == 0)
        r = reply(&b, buf, size);
    bfs_buf_done(&b);
    return r;
}
