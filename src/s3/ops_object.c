/* SPDX-License-Identifier: MIT */
/*
 * ops_object.c: single-object operations: HeadObject, GetObject (ranged,
 * conditional, of one version), PutObject (metadata, Content-MD5 or SHA-256 checksum),
 * CopyObject (metadata COPY or REPLACE, from one version), DeleteObject, DeleteObjects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3-int.h"

/* Moves the reply's header fields into *ret (which the caller owns). */
static void take_info(struct s3_request *r, struct bfs_s3_object *ret)
{
    if (!ret)
        return;
    *ret = r->info;
    memset(&r->info, 0, sizeof(r->info));
}

int bfs_s3_head_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                       struct bfs_s3_object *ret, struct bfs_s3_error *reterr)
{
    return bfs_s3_head_version(c, bucket, key, NULL, ret, reterr);
}

int bfs_s3_head_version(struct bfs_s3_client *c, const char *bucket, const char *key,
                        const char *version_id, struct bfs_s3_object *ret,
                        struct bfs_s3_error *reterr)
{
    struct s3_request r;
    int rc;

    s3_request_init(&r, BFS_S3_OP_HEAD, "HEAD", bucket, key);
    if (version_id)
        s3_request_query(&r, "versionId", version_id);
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0)
        take_info(&r, ret);
    s3_request_done(&r);
    return rc;
}

int64_t bfs_s3_get_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                          const struct bfs_s3_get_params *p, struct bfs_s3_sink *sink,
                          struct bfs_s3_object *ret_info, struct bfs_s3_error *reterr)
{
    struct s3_request r;
    char range[64];
    int rc;

    s3_request_init(&r, BFS_S3_OP_GET, "GET", bucket, key);
    r.sink = sink;
    if (p && p->version_id)
        s3_request_query(&r, "versionId", p->version_id);
    if (p && p->ranged) {
        snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)p->first,
                 (unsigned long long)p->last);
        s3_request_header(&r, "range", range);
    }
    if (p && p->if_match)
        s3_request_header(&r, "if-match", p->if_match);
    if (p && p->if_none_match)
        s3_request_header(&r, "if-none-match", p->if_none_match);
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0)
        take_info(&r, ret_info);
    s3_request_done(&r);
    return rc < 0 ? rc : (int64_t)sink->len;
}

/* Content-MD5 and x-amz-checksum-sha256 values (base64 of the digest). */
static int body_digests(const struct bfs_s3_body *b, const struct bfs_s3_put_params *p,
                        char md5[32], char sha[48])
{
    unsigned char d[32];
    int rc = 0;

    if (p->content_md5) {
        rc = bfs_md5_range(b->fd, b->data, b->offset, b->length, d);
        if (rc == 0)
            bfs_base64_encode(d, 16, md5);
    }
    if (rc == 0 && p->checksum_sha256) {
        rc = bfs_sha256_range(b->fd, b->data, b->offset, b->length, d);
        if (rc == 0)
            bfs_base64_encode(d, 32, sha);
    }
    return rc;
}

static void add_extra(struct s3_request *r, const struct bfs_s3_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s3_request_header(r, h[i].name, h[i].value);
}

/* After a lost reply to a conditional PUT: is the object already this
 * body? (Its ETag is the body's MD5, SSE-KMS and SSE-C aside, which then
 * count as a conflict: a copy is kept, nothing is lost.) */
static int put_landed_earlier(struct bfs_s3_client *c, const char *bucket, const char *key,
                              const struct bfs_s3_body *body, char ret_etag[BFS_S3_ETAG_MAX])
{
    struct bfs_s3_object o = {0};
    unsigned char d[16];
    char want[40], have[BFS_S3_ETAG_MAX];
    int same;

    if (bfs_md5_range(body->fd, body->data, body->offset, body->length, d) < 0 ||
        bfs_s3_head_object(c, bucket, key, &o, NULL) < 0)
        return 0;
    bfs_hex_encode(d, 16, want + 1);
    want[0] = '"';
    snprintf(want + 33, sizeof(want) - 33, "\"");
    bfs_s3_etag_normalize(o.etag, have);
    same = strcmp(have, want) == 0;
    if (same)
        snprintf(ret_etag, BFS_S3_ETAG_MAX, "%s", have);
    bfs_s3_object_done(&o);
    return same;
}

int bfs_s3_put_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                      const struct bfs_s3_body *body, const struct bfs_s3_put_params *p,
                      char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr)
{
    static const struct bfs_s3_put_params none;
    struct bfs_s3_body empty = {.data = "", .fd = -1};
    struct s3_request r;
    char md5[32], sha[48];
    int rc;

    if (!p)
        p = &none;
    if (!body)
        body = &empty;
    s3_request_init(&r, BFS_S3_OP_PUT, "PUT", bucket, key);
    r.body = body;
    rc = body_digests(body, p, md5, sha);
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "BodyReadFailed", "cannot read the data to upload");
        goto out;
    }
    if (p->content_md5)
        s3_request_header(&r, "content-md5", md5);
    if (p->checksum_sha256)
        s3_request_header(&r, "x-amz-checksum-sha256", sha);
    s3_request_conditions(&r, p->if_match, p->if_none_match);
    add_extra(&r, p->extra, p->nextra);
    rc = s3_request_meta(&r, p->meta, p->content_type);
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "MetadataTooLarge", "too much metadata");
        goto out;
    }
    rc = s3_request_perform(c, &r, reterr);
    if (rc == -ESTALE && r.attempts > 1 && (p->if_match || p->if_none_match) &&
        put_landed_earlier(c, bucket, key, body, r.info.etag)) {
        rc = 0; /* the condition failed on our own write, whose reply was lost */
        if (reterr)
            memset(reterr, 0, sizeof(*reterr));
    }
    if (rc == 0 && ret_etag)
        snprintf(ret_etag, BFS_S3_ETAG_MAX, "%s", r.info.etag);
out:
    s3_request_done(&r);
    return rc;
}

/* One CopyObject request. */
static int copy_once(struct bfs_s3_client *c, const char *src, const char *bucket,
                     const char *key, const struct bfs_s3_copy_params *p,
                     char etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *e)
{
    struct s3_request r;
    int rc = 0;

    s3_request_init(&r, BFS_S3_OP_COPY, "PUT", bucket, key);
    if (p->replace_meta)
        rc = s3_request_meta(&r, p->meta, p->content_type ? p->content_type
                                                          : "application/octet-stream");
    if (rc < 0) {
        bfs_s3_error_set(e, rc, 0, "MetadataTooLarge", "too much metadata");
        goto out;
    }
    s3_request_header(&r, "x-amz-copy-source", src);
    s3_request_header(&r, "x-amz-metadata-directive", p->replace_meta ? "REPLACE" : "COPY");
    if (p->if_match)
        s3_request_header(&r, "x-amz-copy-source-if-match", p->if_match);
    if (p->if_match)
        s3_request_header(&r, "x-amz-copy-if-match", p->if_match); /* RGW 16 */
    s3_request_conditions(&r, p->dst_if_match, p->dst_if_none_match);
    add_extra(&r, p->extra, p->nextra);
    rc = s3_request_perform(c, &r, e);
    if (rc == 0) {
        /* a 200 reply may still carry an <Error> (NOTES.md) */
        rc = s3_xml_etag(r.reply.data, r.reply.len, etag, e);
        if (rc == -EPROTO || rc == -ENODATA)
            bfs_s3_error_set(e, rc = -EPROTO, r.status, "MalformedReply",
                             "CopyObject reply has no ETag");
    }
out:
    s3_request_done(&r);
    return rc;
}

int bfs_s3_copy_object(struct bfs_s3_client *c, const char *src_bucket, const char *src_key,
                       const char *bucket, const char *key, const struct bfs_s3_copy_params *p,
                       char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr)
{
    static const struct bfs_s3_copy_params none;
    struct bfs_s3_error e = {0};
    struct bfs_buf src;
    char etag[BFS_S3_ETAG_MAX];
    int rc;

    if (!p)
        p = &none;
    bfs_buf_init(&src, BFS_BUF_CAP_URL);
    /* the source is "/bucket/key", URL-encoded (the '/' kept) */
    rc = bfs_buf_adds(&src, "/");
    if (rc == 0)
        rc = bfs_uri_encode(&src, src_bucket, strlen(src_bucket), 0);
    if (rc == 0)
        rc = bfs_buf_adds(&src, "/");
    if (rc == 0)
        rc = bfs_uri_encode(&src, src_key, strlen(src_key), 1);
    if (rc == 0 && p->src_version_id) /* "/bucket/key?versionId=ID" */
        rc = bfs_buf_adds(&src, "?versionId=");
    if (rc == 0 && p->src_version_id)
        rc = bfs_uri_encode(&src, p->src_version_id, strlen(p->src_version_id), 0);
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "RequestTooLarge", "key too long");
        bfs_buf_done(&src);
        return rc;
    }
    /* http.c retries transport and status failures; an error inside a 200
     * reply is only seen here, and is retried here the same way */
    for (int attempt = 0;; attempt++) {
        rc = copy_once(c, src.data, bucket, key, p, etag, &e);
        if (rc == 0 || e.status != 200 || !e.retryable || attempt >= s3_client_retries(c))
            break;
        s3_backoff(c, attempt);
    }
    if (rc == 0 && ret_etag)
        memcpy(ret_etag, etag, BFS_S3_ETAG_MAX);
    else if (rc < 0 && reterr)
        *reterr = e;
    bfs_buf_done(&src);
    return rc;
}

int bfs_s3_delete_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                         struct bfs_s3_error *reterr)
{
    return bfs_s3_delete_object_if(c, bucket, key, NULL, reterr);
}

int bfs_s3_delete_object_if(struct bfs_s3_client *c, const char *bucket, const char *key,
                            const char *if_match, struct bfs_s3_error *reterr)
{
    struct s3_request r;
    struct bfs_s3_error e;
    int rc;

    s3_request_init(&r, BFS_S3_OP_DELETE, "DELETE", bucket, key);
    s3_request_conditions(&r, if_match, NULL);
    rc = s3_request_perform(c, &r, &e);
    s3_request_done(&r);
    if (rc == -ENOENT && strcmp(e.code, "NoSuchKey") == 0)
        rc = 0; /* some servers say so; S3 itself answers 204 */
    if (rc < 0 && reterr)
        *reterr = e;
    return rc;
}

int bfs_s3_delete_objects(struct bfs_s3_client *c, const char *bucket, const char *const *keys,
                          size_t n, int *ret_errs, struct bfs_s3_error *reterr)
{
    struct bfs_buf xml;
    struct bfs_s3_body body = {.fd = -1};
    struct s3_request r;
    unsigned char md[16];
    char md5[32];
    int rc = 0;

    if (n == 0)
        return 0;
    if (n > BFS_S3_DELETE_MAX) {
        bfs_s3_error_set(reterr, -E2BIG, 0, "TooManyKeys", "more than 1000 keys");
        return -E2BIG;
    }
    bfs_buf_init(&xml, BFS_BUF_CAP_XML);
    rc = bfs_buf_adds(&xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                            "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = bfs_buf_adds(&xml, "<Object><Key>");
        if (rc == 0)
            rc = s3_xml_escape(&xml, keys[i]);
        if (rc == 0)
            rc = bfs_buf_adds(&xml, "</Key></Object>");
    }
    if (rc == 0)
        rc = bfs_buf_adds(&xml, "</Delete>");
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "RequestTooLarge", "keys too long");
        bfs_buf_done(&xml);
        return rc;
    }
    body.data = xml.data;
    body.length = xml.len;
    bfs_md5_range(-1, xml.data, 0, xml.len, md);
    bfs_base64_encode(md, 16, md5);
    s3_request_init(&r, BFS_S3_OP_DELETE_MANY, "POST", bucket, NULL);
    s3_request_query(&r, "delete", "");
    s3_request_header(&r, "content-md5", md5);
    s3_request_header(&r, "content-type", "application/xml");
    r.body = &body;
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0) {
        rc = s3_xml_delete_result(r.reply.data, r.reply.len, keys, n, ret_errs);
        if (rc < 0)
            bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                             "DeleteObjects reply is malformed");
    }
    s3_request_done(&r);
    bfs_buf_done(&xml);
    return rc;
}
