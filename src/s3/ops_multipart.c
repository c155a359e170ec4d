/* SPDX-License-Identifier: MIT */
/*
 * ops_multipart.c: CreateMultipartUpload, UploadPart, Complete, Abort and
 * ListMultipartUploads.
 *
 * Repeating a request: UploadPart and Abort are idempotent. Complete is
 * repeated too; if an earlier try succeeded but its reply was lost, the
 * repeat finds no upload (NoSuchUpload). Then the object's ETag is checked
 * against the multipart ETag the parts make (MD5 of the part MD5s, "-N"),
 * and a match counts as success. Create is repeated only when the request
 * surely did not run (http.c), so a retry never leaks an upload id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3-int.h"

int bfs_s3_mpu_create(struct bfs_s3_client *c, const char *bucket, const char *key,
                      const struct bfs_s3_put_params *p, char **ret_upload_id,
                      struct bfs_s3_error *reterr)
{
    struct s3_request r;
    int rc;

    s3_request_init(&r, BFS_S3_OP_MPU_CREATE, "POST", bucket, key);
    r.idempotent = 0;
    s3_request_query(&r, "uploads", "");
    for (size_t i = 0; p && i < p->nextra; i++)
        s3_request_header(&r, p->extra[i].name, p->extra[i].value);
    rc = s3_request_meta(&r, p ? p->meta : NULL,
                         p && p->content_type ? p->content_type : "application/octet-stream");
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "MetadataTooLarge", "too much metadata");
        goto out;
    }
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0) {
        rc = s3_xml_upload_id(r.reply.data, r.reply.len, ret_upload_id);
        if (rc < 0)
            bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                             "CreateMultipartUpload reply has no UploadId");
    }
out:
    s3_request_done(&r);
    return rc;
}

int bfs_s3_mpu_part(struct bfs_s3_client *c, const char *bucket, const char *key,
                    const char *upload_id, int part_number, const struct bfs_s3_body *body,
                    char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr)
{
    struct s3_request r;
    char num[16];
    int rc;

    if (part_number < 1 || part_number > BFS_S3_PARTS_MAX) {
        bfs_s3_error_set(reterr, -EINVAL, 0, "InvalidPart", "part number out of range");
        return -EINVAL;
    }
    snprintf(num, sizeof(num), "%d", part_number);
    s3_request_init(&r, BFS_S3_OP_MPU_PART, "PUT", bucket, key);
    s3_request_query(&r, "partNumber", num);
    s3_request_query(&r, "uploadId", upload_id);
    r.body = body;
    rc = s3_request_perform(c, &r, reterr);
    if (rc == 0 && !r.info.etag[0]) {
        rc = -EPROTO;
        bfs_s3_error_set(reterr, rc, r.status, "MalformedReply", "UploadPart reply has no ETag");
    }
    if (rc == 0)
        snprintf(ret_etag, BFS_S3_ETAG_MAX, "%s", r.info.etag);
    s3_request_done(&r);
    return rc;
}

/* The ETag S3 gives an object made of these parts, when each part ETag is
 * a plain MD5; 0 when it can be computed. */
static int multipart_etag(char *const *etags, int n, char out[BFS_S3_ETAG_MAX])
{
    unsigned char *md5s = malloc((size_t)n * 16), sum[16];
    char hex[33];
    int rc = 0;

    if (!md5s)
        return -ENOMEM;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *e = etags[i];
        size_t len = strlen(e);

        if (len >= 2 && e[0] == '"')
            e++, len -= 2;
        rc = len == 32 ? bfs_hex_decode(e, 16, md5s + 16 * i) : -EINVAL;
    }
    if (rc == 0) {
        bfs_md5_range(-1, md5s, 0, (uint64_t)n * 16, sum);
        bfs_hex_encode(sum, 16, hex);
        snprintf(out, BFS_S3_ETAG_MAX, "\"%s-%d\"", hex, n);
    }
    free(md5s);
    return rc;
}

static int complete_body(struct bfs_buf *xml, char *const *etags, int n)
{
    int rc = bfs_buf_adds(xml, "<CompleteMultipartUpload>");

    for (int i = 0; i < n && rc == 0; i++) {
        rc = bfs_buf_addf(xml, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
        if (rc == 0)
            rc = s3_xml_escape(xml, etags[i]);
        if (rc == 0)
            rc = bfs_buf_adds(xml, "</ETag></Part>");
    }
    if (rc == 0)
        rc = bfs_buf_adds(xml, "</CompleteMultipartUpload>");
    return rc;
}

/* After a lost reply: is the object already what these parts make? */
static int completed_earlier(struct bfs_s3_client *c, const char *bucket, const char *key,
                             char *const *etags, int n, char ret_etag[BFS_S3_ETAG_MAX])
{
    struct bfs_s3_object o = {0};
    char want[BFS_S3_ETAG_MAX];
    int same;

    if (multipart_etag(etags, n, want) < 0 || bfs_s3_head_object(c, bucket, key, &o, NULL) < 0)
        return 0;
    same = strcmp(o.etag, want) == 0;
    bfs_s3_object_done(&o);
    if (same)
        memcpy(ret_etag, want, BFS_S3_ETAG_MAX);
    return same;
}

/* One CompleteMultipartUpload request; *ret_attempts counts its tries. */
static int complete_once(struct bfs_s3_client *c, const char *bucket, const char *key,
                         const char *upload_id, const struct bfs_s3_body *body,
                         char *const *part_etags, int n, const struct bfs_s3_put_params *cond,
                         char etag[BFS_S3_ETAG_MAX], int *ret_attempts, struct bfs_s3_error *e)
{
    struct s3_request r;
    int rc;

    s3_request_init(&r, BFS_S3_OP_MPU_COMPLETE, "POST", bucket, key);
    s3_request_query(&r, "uploadId", upload_id);
    s3_request_header(&r, "content-type", "application/xml");
    if (cond)
        s3_request_conditions(&r, cond->if_match, cond->if_none_match);
    r.body = body;
    rc = s3_request_perform(c, &r, e);
    if (rc == 0) /* S3 may answer 200 and then report an error in the body */
        rc = s3_xml_etag(r.reply.data, r.reply.len, etag, e);
    if (rc == -ENODATA) { /* an empty <ETag>: the header, or what the parts make */
        if (r.info.etag[0])
            memcpy(etag, r.info.etag, BFS_S3_ETAG_MAX);
        rc = r.info.etag[0] || multipart_etag(part_etags, n, etag) == 0 ? 0 : -EPROTO;
    }
    if (rc == -EPROTO)
        bfs_s3_error_set(e, rc, r.status, "MalformedReply", "CompleteMultipartUpload reply");
    *ret_attempts += r.attempts;
    s3_request_done(&r);
    return rc;
}

int bfs_s3_mpu_complete(struct bfs_s3_client *c, const char *bucket, const char *key,
                        const char *upload_id, char *const *part_etags, int n,
                        char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr)
{
    return bfs_s3_mpu_complete_if(c, bucket, key, upload_id, part_etags, n, NULL, ret_etag,
                                  reterr);
}

int bfs_s3_mpu_complete_if(struct bfs_s3_client *c, const char *bucket, const char *key,
                           const char *upload_id, char *const *part_etags, int n,
                           const struct bfs_s3_put_params *cond, char ret_etag[BFS_S3_ETAG_MAX],
                           struct bfs_s3_error *reterr)
{
    struct bfs_buf xml;
    struct bfs_s3_body body = {.fd = -1};
    struct bfs_s3_error e = {0};
    char etag[BFS_S3_ETAG_MAX];
    int rc, attempts = 0;

    bfs_buf_init(&xml, BFS_BUF_CAP_XML);
    rc = complete_body(&xml, part_etags, n);
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "RequestTooLarge", "too many parts");
        bfs_buf_done(&xml);
        return rc;
    }
    body.data = xml.data;
    body.length = xml.len;
    for (int i = 0;; i++) {
        rc = complete_once(c, bucket, key, upload_id, &body, part_etags, n, cond, etag,
                           &attempts, &e);
        if (rc == 0 || e.status != 200 || !e.retryable || i >= s3_client_retries(c))
            break;
        s3_backoff(c, i); /* an error inside a 200 reply: try again */
    }
    /* a retry after a lost reply finds the upload gone, or (conditional)
     * the condition failing on the object it made */
    if (((rc == -ENOENT && strcmp(e.code, "NoSuchUpload") == 0) || (rc == -ESTALE && cond)) &&
        attempts > 1 && completed_earlier(c, bucket, key, part_etags, n, etag))
        rc = 0;
    if (rc == 0 && ret_etag)
        memcpy(ret_etag, etag, BFS_S3_ETAG_MAX);
    else if (rc < 0 && reterr)
        *reterr = e;
    bfs_buf_done(&xml);
    return rc;
}

int bfs_s3_mpu_abort(struct bfs_s3_client *c, const char *bucket, const char *key,
                     const char *upload_id, struct bfs_s3_error *reterr)
{
    struct s3_request r;
    int rc;

    s3_request_init(&r, BFS_S3_OP_MPU_ABORT, "DELETE", bucket, key);
    s3_request_query(&r, "uploadId", upload_id);
    rc = s3_request_perform(c, &r, reterr);
    s3_request_done(&r);
    return rc;
}

int bfs_s3_mpu_list(struct bfs_s3_client *c, const char *bucket, const char *prefix,
                    struct bfs_s3_upload_list *ret, struct bfs_s3_error *reterr)
{
    struct bfs_s3_upload_list acc = {0};
    char *key_marker = NULL, *id_marker = NULL;
    int rc, pages = 0;

    do {
        struct s3_request r;
        char *nk = NULL, *ni = NULL;

        s3_request_init(&r, BFS_S3_OP_MPU_LIST, "GET", bucket, NULL);
        s3_request_query(&r, "uploads", "");
        if (prefix && *prefix)
            s3_request_query(&r, "prefix", prefix);
        if (key_marker)
            s3_request_query(&r, "key-marker", key_marker);
        if (id_marker)
            s3_request_query(&r, "upload-id-marker", id_marker);
        rc = s3_request_perform(c, &r, reterr);
        if (rc == 0) {
            rc = s3_xml_list_uploads(r.reply.data, r.reply.len, &acc, &nk, &ni);
            if (rc < 0)
                bfs_s3_error_set(reterr, rc, r.status, "MalformedReply",
                                 "ListMultipartUploads reply is malformed");
        }
        s3_request_done(&r);
        free(key_marker);
        free(id_marker);
        key_marker = nk;
        id_marker = ni;
    } while (rc == 0 && key_marker && ++pages < 10000);
    free(key_marker);
    free(id_marker);
    if (rc < 0) {
        bfs_s3_upload_list_done(&acc);
        return rc;
    }
    *ret = acc;
    return 0;
}
