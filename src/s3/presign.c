/* SPDX-License-Identifier: MIT */
/*
 * presign.c: presigned GET URLs (SigV4 query signing). The URL carries the
 * signature, so it is printed for the user and never logged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "s3-int.h"

int bfs_s3_presign_get(struct bfs_s3_client *c, const char *bucket, const char *key,
                       int64_t expires, time_t now, char **ret_url)
{
    struct bfs_buf host, path, query, signed_list, cred, url;
    struct bfs_s3_header q[6], h[1];
    struct bfs_s3_keys k;
    char amz[17], exp[24], sig[65], region[S3_REGION_MAX];
    size_t nq = 0;
    int rc;

    if (expires < 1 || expires > BFS_S3_PRESIGN_MAX)
        return -EINVAL;
    if (c->sse == BFS_S3_SSE_C)
        return -ENOTSUP; /* a GET of an SSE-C object needs the key in headers */
    rc = bfs_s3_creds_get(c->creds, &k);
    if (rc == 1)
        return -ENOKEY; /* anonymous: nothing to sign with */
    if (rc < 0)
        return rc;
    s3_region_for(c, bucket, region);
    bfs_buf_init(&host, BFS_BUF_CAP_URL);
    bfs_buf_init(&path, BFS_BUF_CAP_URL);
    bfs_buf_init(&query, BFS_BUF_CAP_URL);
    bfs_buf_init(&signed_list, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&cred, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&url, BFS_BUF_CAP_URL);
    bfs_time_amz(now, amz);
    snprintf(exp, sizeof(exp), "%lld", (long long)expires);
    rc = s3_build_target(c, region, bucket, key, &host, &path);
    if (rc == 0)
        rc = bfs_buf_addf(&cred, "%s/%.8s/%s/s3/aws4_request", k.access_key, amz, region);
    if (rc < 0)
        goto out;
    q[nq++] = (struct bfs_s3_header){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
    q[nq++] = (struct bfs_s3_header){"X-Amz-Credential", cred.data};
    q[nq++] = (struct bfs_s3_header){"X-Amz-Date", amz};
    q[nq++] = (struct bfs_s3_header){"X-Amz-Expires", exp};
    q[nq++] = (struct bfs_s3_header){"X-Amz-SignedHeaders", "host"};
    if (k.session_token[0])
        q[nq++] = (struct bfs_s3_header){"X-Amz-Security-Token", k.session_token};
    rc = bfs_s3_canonical_query(q, nq, &query);
    if (rc == 0) {
        struct bfs_s3_sign_input in = {
            .method = "GET", .canonical_uri = path.data, .canonical_query = query.data,
            .headers = h, .nheaders = 1, .payload_hash = "UNSIGNED-PAYLOAD", .when = now,
            .region = region, .service = "s3"};

        h[0] = (struct bfs_s3_header){"host", host.data};
        rc = bfs_s3_sign_string(&in, &k, sig, &signed_list);
    }
    if (rc == 0)
        rc = bfs_buf_addf(&url, "%s://%s%s?%s&X-Amz-Signature=%s", c->scheme, host.data,
                          path.data, query.data, sig);
    if (rc == 0) {
        *ret_url = bfs_buf_steal(&url);
        rc = *ret_url ? 0 : -ENOMEM;
    }
out:
    explicit_bzero(&k, sizeof(k));
    bfs_buf_done(&host);
    bfs_buf_done(&path);
    bfs_buf_done(&query);
    bfs_buf_done(&signed_list);
    bfs_buf_done(&cred);
    bfs_buf_done(&url);
    return rc;
}
