/* SPDX-License-Identifier: MIT */
/*
 * sigv4.c: AWS Signature Version 4 for S3.
 *
 * The steps, each in its own helper:
 *   1. canonical headers: names lower-cased, values trimmed with inner runs
 *      of spaces folded, sorted by name; the signed-headers list from them
 *   2. canonical request: method, URI (encoded once for S3), query, headers,
 *      signed headers, payload hash, joined by newlines
 *   3. string to sign: algorithm, timestamp, scope, SHA-256 of step 2
 *   4. signing key: HMAC chain over date, region, service, "aws4_request"
 *   5. signature: hex HMAC of step 3 with the key of step 4
 * Pure functions of their input: the unit tests replay AWS's published S3
 * examples through them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3-int.h"
#include "sigv4-int.h"

struct canon_header {
    char *name;  /* lower case */
    char *value; /* trimmed, spaces folded */
};

static int cmp_header(const void *a, const void *b)
{
    const struct canon_header *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s);

    for (char *p = d; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static char *fold_dup(const char *s)
{
    char *d = malloc(strlen(s) + 1), *o = d;

    if (!d)
        return NULL;
    while (*s == ' ' || *s == '\t')
        s++;
    while (*s) {
        if (*s == ' ' || *s == '\t') {
            while (*s == ' ' || *s == '\t')
                s++;
            if (*s)
                *o++ = ' ';
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return d;
}

static void free_headers(struct canon_header *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

/* Step 1: canonical headers block and signed-headers list. */
static int canon_headers(const struct bfs_s3_sign_input *in, struct bfs_buf *block,
                         struct bfs_buf *signed_list)
{
    struct canon_header *h = calloc(in->nheaders ? in->nheaders : 1, sizeof(*h));
    int r = 0;

    if (!h)
        return -ENOMEM;
    for (size_t i = 0; i < in->nheaders; i++) {
        h[i].name = lower_dup(in->headers[i].name);
        h[i].value = fold_dup(in->headers[i].value);
        if (!h[i].name || !h[i].value) {
            r = -ENOMEM;
            goto out;
        }
    }
    qsort(h, in->nheaders, sizeof(*h), cmp_header);
    for (size_t i = 0; i < in->nheaders && r == 0; i++) {
        r = bfs_buf_addf(block, "%s:%s\n", h[i].name, h[i].value);
        if (r == 0)
            r = bfs_buf_addf(signed_list, "%s%s", i ? ";" : "", h[i].name);
    }
out:
    free_headers(h, in->nheaders);
    return r;
}

/* Steps 1-3: the string to sign, and the signed-headers list. */
static int string_to_sign(const struct bfs_s3_sign_input *in, struct bfs_buf *sts,
                          struct bfs_buf *signed_list)
{
    struct bfs_buf creq, block;
    char amz[17], hash[65];
    int r;

    bfs_buf_init(&creq, BFS_BUF_CAP_XML);
    bfs_buf_init(&block, BFS_BUF_CAP_XML);
    r = canon_headers(in, &block, signed_list);
    if (r == 0)
        r = bfs_buf_addf(&creq, "%s\n%s\n%s\n%s\n%s\n%s", in->method, in->canonical_uri,
                         in->canonical_query ? in->canonical_query : "", bfs_buf_str(&block),
                         bfs_buf_str(signed_list), in->payload_hash);
    if (r == 0) {
        bfs_sha256_hex(creq.data, creq.len, hash);
        bfs_time_amz(in->when, amz);
        r = bfs_buf_addf(sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amz, amz,
                         in->region, in->service, hash);
    }
    bfs_buf_done(&creq);
    bfs_buf_done(&block);
    return r;
}

/* Steps 4-5. */
static int signature(const struct bfs_s3_sign_input *in, const struct bfs_s3_keys *k,
                     const struct bfs_buf *sts, char out[65])
{
    unsigned char kdate[32], kregion[32], kservice[32], ksigning[32], sig[32];
    char seed[160], amz[17];
    int n, r;

    n = snprintf(seed, sizeof(seed), "AWS4%s", k->secret_key);
    if (n < 0 || (size_t)n >= sizeof(seed))
        return -EINVAL;
    bfs_time_amz(in->when, amz);
    r = s3_hmac_sha256(seed, (size_t)n, amz, 8, kdate);
    if (r == 0)
        r = s3_hmac_sha256(kdate, 32, in->region, strlen(in->region), kregion);
    if (r == 0)
        r = s3_hmac_sha256(kregion, 32, in->service, strlen(in->service), kservice);
    if (r == 0)
        r = s3_hmac_sha256(kservice, 32, "aws4_request", 12, ksigning);
    if (r == 0)
        r = s3_hmac_sha256(ksigning, 32, sts->data, sts->len, sig);
    explicit_bzero(seed, sizeof(seed));
    explicit_bzero(ksigning, sizeof(ksigning));
    if (r == 0)
        bfs_hex_encode(sig, 32, out);
    return r;
}

int bfs_s3_sign_string(const struct bfs_s3_sign_input *in, const struct bfs_s3_keys *k,
                       char ret_sig[65], struct bfs_buf *signed_headers)
{
    struct bfs_buf sts;
    int r;

    bfs_buf_init(&sts, BFS_BUF_CAP_SMALL);
    r = string_to_sign(in, &sts, signed_headers);
    if (r == 0)
        r = signature(in, k, &sts, ret_sig);
    bfs_buf_done(&sts);
    return r;
}

int bfs_s3_sign_header(const struct bfs_s3_sign_input *in, const struct bfs_s3_keys *k,
                       struct bfs_buf *out)
{
    struct bfs_buf signed_list;
    char sig[65], amz[17];
    int r;

    bfs_buf_init(&signed_list, BFS_BUF_CAP_SMALL);
    bfs_buf_reset(out);
    r = bfs_s3_sign_string(in, k, sig, &signed_list);
    if (r == 0) {
        bfs_time_amz(in->when, amz);
        r = bfs_buf_addf(out,
                         "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request,"
                         "SignedHeaders=%s,Signature=%s",
                         k->access_key, amz, in->region, in->service,
                         bfs_buf_str(&signed_list), sig);
    }
    bfs_buf_done(&signed_list);
    return r;
}

struct enc_param {
    struct bfs_buf name, value;
};

static int cmp_param(const void *a, const void *b)
{
    const struct enc_param *x = a, *y = b;
    int c = strcmp(bfs_buf_str(&x->name), bfs_buf_str(&y->name));

    return c ? c : strcmp(bfs_buf_str(&x->value), bfs_buf_str(&y->value));
}

int bfs_s3_canonical_query(const struct bfs_s3_header *params, size_t n, struct bfs_buf *out)
{
    struct enc_param *e = calloc(n ? n : 1, sizeof(*e));
    int r = 0;

    if (!e)
        return -ENOMEM;
    for (size_t i = 0; i < n && r == 0; i++) {
        const char *v = params[i].value ? params[i].value : "";

        bfs_buf_init(&e[i].name, BFS_BUF_CAP_URL);
        bfs_buf_init(&e[i].value, BFS_BUF_CAP_URL);
        r = bfs_uri_encode(&e[i].name, params[i].name, strlen(params[i].name), 0);
        if (r == 0)
            r = bfs_uri_encode(&e[i].value, v, strlen(v), 0);
    }
    if (r == 0)
        qsort(e, n, sizeof(*e), cmp_param);
    for (size_t i = 0; i < n && r == 0; i++)
        r = bfs_buf_addf(out, "%s%s=%s", i ? "&" : "", bfs_buf_str(&e[i].name),
                         bfs_buf_str(&e[i].value));
    for (size_t i = 0; i < n; i++) {
        bfs_buf_done(&e[i].name);
        bfs_buf_done(&e[i].value);
    }
    free(e);
    return r;
}
