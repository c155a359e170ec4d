/* SPDX-License-Identifier: MIT */
/*
 * sse.c: server-side encryption and storage class of a client: loading an
 * SSE-C key file, and the headers each kind of request must carry.
 *
 * Which request needs what (S3 API reference):
 *   PUT, CreateMultipartUpload   x-amz-server-side-encryption (+ KMS key id)
 *                                or the three SSE-C headers; storage class
 *   CopyObject                   the same for the new object, and the
 *                                copy-source SSE-C headers to read the old
 *   GET, HEAD, UploadPart,
 *   CompleteMultipartUpload      the SSE-C headers (S3 cannot read or
 *                                extend an SSE-C object without the key)
 * The key itself lives only in the client and in request headers; it is
 * never logged (http.c logs method, key, status and sizes only).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3-int.h"

int bfs_s3_sse_c_key_load(const char *path, unsigned char key[32], char *err, size_t errlen)
{
    unsigned char raw[128];
    struct stat st;
    ssize_t n;
    size_t len;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "sse_c_key_file %s: %s", path, strerror(errno));
        return r;
    }
    if (fstat(fd, &st) < 0 || (st.st_mode & (S_IRWXG | S_IRWXO))) {
        snprintf(err, errlen, "sse_c_key_file %s is accessible by group or others (mode "
                 "%04o): its permissions must be 0600 or 0400", path,
                 (unsigned)(st.st_mode & 07777));
        close(fd);
        return -EPERM;
    }
    n = read(fd, raw, sizeof(raw));
    close(fd);
    len = n > 0 ? (size_t)n : 0;
    if (len == 32) {
        memcpy(key, raw, 32); /* the raw 256-bit key */
    } else {
        unsigned char dec[96];

        while (len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r' || raw[len - 1] == ' '))
            len--;
        if (n < 0 || bfs_base64_decode((const char *)raw, len, dec, sizeof(dec)) != 32) {
            snprintf(err, errlen, "sse_c_key_file %s: expected a 256-bit key, as 32 bytes "
                     "or in base64 (e.g. openssl rand -base64 32)", path);
            r = -EINVAL;
        } else {
            memcpy(key, dec, 32);
        }
        explicit_bzero(dec, sizeof(dec));
    }
    explicit_bzero(raw, sizeof(raw));
    return r;
}

int s3_sse_setup(struct bfs_s3_client *c, const struct bfs_s3_config *cfg)
{
    unsigned char md5[16];

    c->sse = cfg->sse;
    if (cfg->sse == BFS_S3_SSE_KMS && cfg->sse_kms_key_id &&
        !(c->sse_kms_key_id = strdup(cfg->sse_kms_key_id)))
        return -ENOMEM;
    if (cfg->storage_class && !(c->storage_class = strdup(cfg->storage_class)))
        return -ENOMEM;
    if (cfg->sse == BFS_S3_SSE_C) {
        if (!cfg->sse_c_key)
            return -EINVAL;
        bfs_base64_encode(cfg->sse_c_key, 32, c->sse_c_key_b64);
        if (bfs_md5_range(-1, cfg->sse_c_key, 0, 32, md5) < 0)
            return -EIO;
        bfs_base64_encode(md5, 16, c->sse_c_key_md5_b64);
    }
    return 0;
}

void s3_sse_done(struct bfs_s3_client *c)
{
    free(c->sse_kms_key_id);
    free(c->storage_class);
    explicit_bzero(c->sse_c_key_b64, sizeof(c->sse_c_key_b64));
}

static void customer_key(const struct bfs_s3_client *c, struct s3_request *r, int source)
{
    static const char *const names[2][3] = {
        {"x-amz-server-side-encryption-customer-algorithm",
         "x-amz-server-side-encryption-customer-key",
         "x-amz-server-side-encryption-customer-key-md5"},
        {"x-amz-copy-source-server-side-encryption-customer-algorithm",
         "x-amz-copy-source-server-side-encryption-customer-key",
         "x-amz-copy-source-server-side-encryption-customer-key-md5"}};

    s3_request_header(r, names[source][0], "AES256");
    s3_request_header(r, names[source][1], c->sse_c_key_b64);
    s3_request_header(r, names[source][2], c->sse_c_key_md5_b64);
}

void s3_sse_headers(const struct bfs_s3_client *c, struct s3_request *r)
{
    int creates = r->op == BFS_S3_OP_PUT || r->op == BFS_S3_OP_MPU_CREATE ||
                  r->op == BFS_S3_OP_COPY;
    int reads = r->op == BFS_S3_OP_GET || r->op == BFS_S3_OP_HEAD ||
                r->op == BFS_S3_OP_MPU_PART || r->op == BFS_S3_OP_MPU_COMPLETE;

    if (!r->key || (!creates && !reads))
        return;
    if (creates && c->storage_class)
        s3_request_header(r, "x-amz-storage-class", c->storage_class);
    switch (c->sse) {
    case BFS_S3_SSE_S3:
        if (creates)
            s3_request_header(r, "x-amz-server-side-encryption", "AES256");
        break;
    case BFS_S3_SSE_KMS:
        if (creates) {
            s3_request_header(r, "x-amz-server-side-encryption", "aws:kms");
            if (c->sse_kms_key_id)
                s3_request_header(r, "x-amz-server-side-encryption-aws-kms-key-id",
                                  c->sse_kms_key_id);
        }
        break;
    case BFS_S3_SSE_C:
        customer_key(c, r, 0);
        if (r->op == BFS_S3_OP_COPY)
            customer_key(c, r, 1);
        break;
    default:
        break;
    }
}
