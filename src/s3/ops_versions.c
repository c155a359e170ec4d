/* SPDX-License-Identifier: MIT */
/*
 * ops_versions.c: the bucket-level requests of versioned buckets:
 * ListObjectVersions (one page per call, or every page in turn following
 * KeyMarker and VersionIdMarker, so the caller decides what to keep) and
 * GetBucketVersioning. Reading, heading and copying one version are the
 * single-object operations of ops_object.c with a version id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "s3-int.h"

int bfs_s3_list_versions(struct bfs_s3_client *c, const char *bucket,
                         const struct bfs_s3_version_params *p, struct bfs_s3_version_page *ret,
                         struct bfs_s3_error *reterr)
{
    struct s3_request r;
    char maxkeys[16];
    int rc;

    s3_request_init(&r, BFS_S3_OP_LIST, "GET", bucket, NULL);
    s3_request_query(&r, "versions", "");
    s3_request_query(&r, "encoding-type", "url");
    if (p->prefix && *p->prefix)
        s3_request_query(&r, "prefix", p->prefix);
    if (p->delimiter && *p->delimiter)
        s3_request_query(&r, "delimiter", p->delimiter);
    if (p->key_marker && *p->key_marker)
        s3_request_query(&r, "key-marker", p->key_marker);
    if (p->key_marker && *p->key_marker && p->version_marker && *p->version_marker)
        s3_request_query(&r, "version-id-marker", p->version_marker);
    if (p->max_keys > 0) {
        snprintf(maxkeys, sizeof(maxkeys), "%d", p->max_keys);
        s3_request_query(&r, "max-keys", maxkeys);
    }
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0) {
        rc = s3_xml_list_versions(r.reply.data, r.reply.len, ret);
        if (rc < 0)
            bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                             "ListObjectVersions reply is malformed or truncated");
    }
    s3_request_done(&r);
    return rc;
}

int bfs_s3_list_versions_each(struct bfs_s3_client *c, const char *bucket,
                              const struct bfs_s3_version_params *p,
                              int (*fn)(void *ctx, struct bfs_s3_version_page *pg), void *ctx,
                              struct bfs_s3_error *reterr)
{
    struct bfs_s3_version_params q = *p;
    char *km = NULL, *vm = NULL;
    int r;

    do {
        struct bfs_s3_version_page pg;

        r = bfs_s3_list_versions(c, bucket, &q, &pg, reterr);
        free(km);
        free(vm);
        km = vm = NULL;
        if (r < 0)
            break;
        r = fn(ctx, &pg);
        km = pg.next_key; /* the next request's markers */
        vm = pg.next_version;
        pg.next_key = pg.next_version = NULL;
        bfs_s3_version_page_done(&pg);
        q.key_marker = km;
        q.version_marker = vm;
    } while (r == 0 && km);
    free(km);
    free(vm);
    return r < 0 ? r : 0;
}

int bfs_s3_bucket_versioning(struct bfs_s3_client *c, const char *bucket, char ret[16],
                             struct bfs_s3_error *reterr)
{
    struct s3_request r;
    int rc;

    s3_request_init(&r, BFS_S3_OP_OTHER, "GET", bucket, NULL);
    s3_request_query(&r, "versioning", "");
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0) {
        rc = s3_xml_versioning(r.reply.data, r.reply.len, ret);
        if (rc < 0)
            bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                             "GetBucketVersioning reply is not a VersioningConfiguration");
    }
    s3_request_done(&r);
    return rc;
}
