/* SPDX-License-Identifier: MIT */
/* sigv4-int.h: the HMAC primitive sigv4.c signs with (crypto.c). */
#ifndef BUCKETFS_SIGV4_INT_H
#define BUCKETFS_SIGV4_INT_H

#include <stddef.h>

int s3_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                   unsigned char out[32]);

#endif
