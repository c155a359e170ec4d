/* SPDX-License-Identifier: MIT */
/*
 * crypto.c: SHA-256, HMAC-SHA-256 and MD5 through OpenSSL's EVP interface,
 * over memory or a byte range of a file (read in bounded chunks, so hashing
 * a multi-GiB part does not need it in memory).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "s3-int.h"
#include "sigv4-int.h"

#define HASH_CHUNK (256u * 1024)

void bfs_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
    bfs_hex_encode(md, 32, out);
}

int s3_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                   unsigned char out[32])
{
    unsigned int len = 32;

    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &len))
        return -EIO;
    return 0;
}

static int digest_range(const EVP_MD *md, int fd, const void *mem, uint64_t off, uint64_t len,
                        unsigned char *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *chunk = NULL;
    int r = -EIO;

    if (!ctx)
        return -ENOMEM;
    if (!EVP_DigestInit_ex(ctx, md, NULL))
        goto out;
    if (mem) {
        if (!EVP_DigestUpdate(ctx, (const char *)mem + off, len))
            goto out;
    } else {
        chunk = malloc(HASH_CHUNK);
        if (!chunk) {
            r = -ENOMEM;
            goto out;
        }
        while (len > 0) {
            size_t want = len < HASH_CHUNK ? (size_t)len : HASH_CHUNK;
            ssize_t got = pread(fd, chunk, want, (off_t)off);

            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                r = got < 0 ? -errno : -EIO; /* a file shorter than promised */
                goto out;
            }
            if (!EVP_DigestUpdate(ctx, chunk, (size_t)got))
                goto out;
            off += (uint64_t)got;
            len -= (uint64_t)got;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, NULL))
        r = 0;
out:
    free(chunk);
    EVP_MD_CTX_free(ctx);
    return r;
}

int bfs_md5_range(int fd, const void *mem, uint64_t off, uint64_t len, unsigned char out[16])
{
    return digest_range(EVP_md5(), fd, mem, off, len, out);
}

int bfs_sha256_range(int fd, const void *mem, uint64_t off, uint64_t len, unsigned char out[32])
{
    return digest_range(EVP_sha256(), fd, mem, off, len, out);
}
