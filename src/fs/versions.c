/* SPDX-License-Identifier: MIT */
/*
 * versions.c: what `bucketfs versions` and `bucketfs restore` ask of the
 * daemon, so that its credentials and its view are used: the versions of
 * one key, and making an older version current again with a server-side
 * copy (CopyObject of "bucket/key?versionId=ID" onto the key).
 *
 * Both are asked of the file's directory (getxattr of
 * user.bucketfs.versions/NAME or user.bucketfs.restore/SPEC/NAME), because
 * a deleted file, which restore brings back, has no inode to ask. SPEC is
 * "version=ID", "at=NS" (the newest version at or before NS ns since the
 * epoch) or "previous" (the newest version that is not the latest one).
 * The answer is JSON; a refusal the user should read is {"error": ...}.
 *
 * A restore is done when the answer comes: the copy is in S3 (the copy is
 * one request, so there is nothing to resume after a crash; a restore
 * asked again makes one more identical version). The mount then forgets
 * what it knew of the name (row, listing, negative entry, the kernel's
 * entry and pages), so the next look shows the restored content. A file
 * with a local change not uploaded yet is refused: the restore would be
 * overwritten by that upload, or would overwrite it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define VERSIONS_MAX 100000  /* versions of one key read, at most */
#define ANSWER_MAX (60u * 1024) /* what one xattr value can carry, with room */

struct key_versions {
    const char *key;          /* borrowed */
    struct bfs_s3_version *v; /* newest first */
    size_t n, cap;
    int truncated;            /* more than VERSIONS_MAX */
};

static void key_versions_done(struct key_versions *kv)
{
    for (size_t i = 0; i < kv->n; i++)
        bfs_s3_object_done(&kv->v[i].o);
    free(kv->v);
}

static int take(struct key_versions *kv, struct bfs_s3_version *v)
{
    if (kv->n == VERSIONS_MAX) {
        kv->truncated = 1;
        return 0;
    }
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 16;
        struct bfs_s3_version *nv = realloc(kv->v, cap * sizeof(*nv));

        if (!nv)
            return -ENOMEM;
        kv->v = nv;
        kv->cap = cap;
    }
    kv->v[kv->n++] = *v;
    memset(v, 0, sizeof(*v));
    return 0;
}

/* Takes a page's versions of kv->key; 1 (stop) at the first other key. */
static int take_page(void *ctx, struct bfs_s3_version_page *pg)
{
    struct key_versions *kv = ctx;
    int r = 0;

    for (size_t i = 0; i < pg->nversions && r == 0; i++) {
        if (strcmp(pg->versions[i].o.key, kv->key) != 0)
            return 1;
        r = take(kv, &pg->versions[i]);
    }
    return r == 0 && kv->truncated ? 1 : r;
}

/* Every version of exactly key. Listed with key as the prefix, key's own
 * versions come first (no other key under that prefix sorts before it),
 * so the first other key ends the list. */
static int list_key(struct mapping *m, const char *key, struct key_versions *kv)
{
    struct bfs_s3_version_params p = {.prefix = key};

    kv->key = key;
    return bfs_s3_list_versions_each(m->client, m->bucket, &p, take_page, kv, NULL);
}

static int version_json(struct bfs_buf *b, const struct bfs_s3_version *v)
{
    const char *e = v->o.etag;
    size_t elen = strlen(e);
    char when[96];
    time_t t = (time_t)(v->o.mtime_ns / 1000000000);
    struct tm tm;
    int r;

    gmtime_r(&t, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(v->o.mtime_ns / 1000000 % 1000));
    r = bfs_buf_adds(b, "{\"version_id\":");
    if (r == 0)
        r = fs_json_str(b, v->version_id);
    if (r == 0)
        r = bfs_buf_addf(b, ",\"last_modified\":\"%s\",\"mtime_ns\":%lld,\"size\":%llu,"
                            "\"etag\":\"%.*s\",\"latest\":%s,\"delete_marker\":%s}",
                         when, (long long)v->o.mtime_ns, (unsigned long long)v->o.size,
                         (int)(elen >= 2 ? elen - 2 : 0), elen >= 2 ? e + 1 : "",
                         v->latest ? "true" : "false", v->delete_marker ? "true" : "false");
    return r;
}

static int versions_json(const char *key, const struct key_versions *kv, struct bfs_buf *b)
{
    size_t i;
    int r = bfs_buf_adds(b, "{\"key\":");

    if (r == 0)
        r = fs_json_str(b, key);
    if (r == 0)
        r = bfs_buf_adds(b, ",\"versions\":[");
    for (i = 0; i < kv->n && r == 0 && b->len < ANSWER_MAX; i++) {
        r = i ? bfs_buf_adds(b, ",") : 0;
        if (r == 0)
            r = version_json(b, &kv->v[i]);
    }
    if (r == 0) /* the newest that fit in one xattr value; the rest are older */
        r = bfs_buf_addf(b, "],\"count\":%zu,\"truncated\":%s}", kv->n,
                         i < kv->n || kv->truncated ? "true" : "false");
    return r;
}

static int error_json(struct bfs_buf *b, const char *msg, const char *detail)
{
    struct bfs_buf t;
    int r;

    bfs_buf_init(&t, BFS_BUF_CAP_SMALL);
    r = bfs_buf_addf(&t, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
    if (r == 0)
        r = bfs_buf_adds(b, "{\"error\":");
    if (r == 0)
        r = fs_json_str(b, bfs_buf_str(&t));
    if (r == 0)
        r = bfs_buf_adds(b, "}");
    bfs_buf_done(&t);
    return r;
}

/* The version SPEC names (DESIGN above), or NULL with *why set. */
static const struct bfs_s3_version *choose(const struct key_versions *kv, const char *spec,
                                           const char **why)
{
    int64_t at = 0;
    int by_id = strncmp(spec, "version=", 8) == 0, by_time = strncmp(spec, "at=", 3) == 0;

    if (by_time && bfs_parse_int(spec + 3, INT64_MIN, INT64_MAX, &at) < 0)
        by_time = 0;
    if (!by_id && !by_time && strcmp(spec, "previous") != 0) {
        *why = "bad request";
        return NULL;
    }
    for (size_t i = 0; i < kv->n; i++) {
        const struct bfs_s3_version *v = &kv->v[i];

        if (by_id && strcmp(v->version_id, spec + 8) != 0)
            continue;
        if (by_time && v->o.mtime_ns > at)
            continue;
        if (!by_id && !by_time && v->latest)
            continue;
        if (v->delete_marker && (by_id || by_time)) {
            *why = by_id ? "that version is a delete marker"
                         : "the file was deleted at that time";
            return NULL;
        }
        if (!v->delete_marker)
            return v;
    }
    *why = by_id ? "no such version" : by_time ? "no version that old"
                                               : "no older version to restore";
    return NULL;
}

/* The mount forgets what it knew of dir/name (DESIGN above). */
static void forget_name(struct bfs_fs *fs, uint64_t dir, const char *name)
{
    struct bfs_node n;

    fs_top_drop(fs);
    (void)bfs_store_listing_invalidate(fs->store, dir);
    fs_negative_clear(fs, dir);
    if (bfs_store_node_lookup(fs->store, dir, name, &n) == 0) {
        fs_node_forget_version(fs, n.ino);
        fs_kernel_inval_inode(fs, n.ino, 1, 1);
    }
    fs_kernel_inval_entry(fs, dir, name, 1);
}

static int restore(struct bfs_fs *fs, struct mapping *m, uint64_t dir, const char *key,
                   const char *name, const char *spec, struct bfs_buf *b)
{
    struct key_versions kv = {0};
    struct bfs_s3_copy_params cp = {0};
    struct bfs_s3_error e = {0};
    const struct bfs_s3_version *v;
    const char *why = NULL;
    char etag[BFS_S3_ETAG_MAX];
    struct bfs_node n;
    int r;

    if (m->as_of_ns || m->read_only)
        return error_json(b, m->as_of_ns ? "the mapping shows the past (as_of): restore "
                                           "through a mapping of the bucket as it is"
                                         : "the mapping is read-only", NULL);
    if (bfs_store_node_lookup(fs->store, dir, name, &n) == 0 && fs_not_uploaded(fs, n.ino))
        return error_json(b, "has a local change not uploaded yet: run bucketfs sync, "
                             "then restore", NULL);
    r = list_key(m, key, &kv);
    if (r == 0 && !(v = choose(&kv, spec, &why)))
        r = error_json(b, kv.n ? why : "no versions (is versioning enabled on the bucket?)",
                       NULL);
    else if (r == 0 && v->o.size > BFS_S3_PART_MAX)
        r = error_json(b, "larger than 5 GiB, the most one CopyObject copies", NULL);
    else if (r == 0) {
        cp.src_version_id = v->version_id;
        r = bfs_s3_copy_object(m->client, m->bucket, key, m->bucket, key, &cp, etag, &e);
        forget_name(fs, dir, name); /* whatever the copy did */
        if (r < 0)
            r = error_json(b, "the copy failed", e.message[0] ? e.message : strerror(-r));
        else if ((r = bfs_buf_adds(b, "{\"restored\":")) == 0 && (r = version_json(b, v)) == 0)
            r = bfs_buf_addf(b, ",\"etag\":\"%.*s\"}", (int)(strlen(etag) - 2), etag + 1);
    }
    key_versions_done(&kv);
    return r;
}

int fs_versions_xattr(struct bfs_fs *fs, uint64_t ino, const char *what, struct bfs_buf *b)
{
    int is_restore = strncmp(what, "restore/", 8) == 0;
    const char *name = strrchr(what, '/'), *args = what + (is_restore ? 8 : 9);
    struct key_versions kv = {0};
    struct mapping *m;
    char *pkey = NULL, *spec = NULL, *key = NULL;
    int kind, r;

    if (!name || !fs_name_valid(name + 1, strlen(name + 1)) || (is_restore && name < args))
        return -EINVAL;
    r = fs_inode_target(fs, ino, &m, &pkey, &kind);
    if (r == 0 && kind != BFS_KIND_DIR)
        r = -ENOTDIR;
    if (r == 0 && (!(key = malloc(strlen(pkey) + strlen(name))) ||
                   (is_restore && !(spec = strndup(args, (size_t)(name - args))))))
        r = -ENOMEM;
    if (r < 0)
        goto out;
    memcpy(key, pkey, strlen(pkey));
    memcpy(key + strlen(pkey), name + 1, strlen(name)); /* with its NUL */
    if (is_restore)
        r = restore(fs, m, ino, key, name + 1, spec, b);
    else if ((r = list_key(m, key, &kv)) == 0)
        r = versions_json(key, &kv, b);
out:
    key_versions_done(&kv);
    free(pkey);
    free(spec);
    free(key);
    return r;
}
