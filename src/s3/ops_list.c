/* SPDX-License-Identifier: MIT */
/*
 * ops_list.c: ListBuckets and ListObjectsV2 (one page per call; the caller
 * follows continuation tokens, so it decides how much to hold in memory).
 */
#include <errno.h>
#include <stdio.h>

#include "s3-int.h"

int bfs_s3_list_buckets(struct bfs_s3_client *c, struct bfs_s3_bucket_list *ret,
                        struct bfs_s3_error *reterr)
{
    struct s3_request r;
    int rc;

    s3_request_init(&r, BFS_S3_OP_LIST_BUCKETS, "GET", NULL, NULL);
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0) {
        rc = s3_xml_list_buckets(r.reply.data, r.reply.len, ret);
        if (rc < 0)
            bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                             "ListBuckets reply is not a valid bucket list");
    }
    s3_request_done(&r);
    return rc;
}

int bfs_s3_list_objects(struct bfs_s3_client *c, const char *bucket,
                        const struct bfs_s3_list_params *p, struct bfs_s3_list_page *ret,
                        struct bfs_s3_error *reterr)
{
    struct s3_request r;
    char maxkeys[16];
    int rc;

    s3_request_init(&r, BFS_S3_OP_LIST, "GET", bucket, NULL);
    s3_request_query(&r, "list-type", "2");
    s3_request_query(&r, "encoding-type", "url");
    if (p->prefix && *p->prefix)
        s3_request_query(&r, "prefix", p->prefix);
    if (p->delimiter && *p->delimiter)
        s3_request_query(&r, "delimiter", p->delimiter);
    if (p->start_after && *p->start_after)
        s3_request_query(&r, "start-after", p->start_after);
    if (p->continuation && *p->continuation)
        s3_request_query(&r, "continuation-token", p->continuation);
    if (p->max_keys > 0) {
        snprintf(maxkeys, sizeof(maxkeys), "%d", p->max_keys);
        s3_request_query(&r, "max-keys", maxkeys);
    }
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0) {
        rc = s3_xml_list_objects(r.reply.data, r.reply.len, ret);
        if (rc < 0)
            bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                             "ListObjectsV2 reply is malformed or truncated");
    }
    s3_request_done(&r);
    return rc;
}
