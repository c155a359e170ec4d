/* SPDX-License-Identifier: MIT */
/*
 * test-s3-sigv4.c: Signature Version 4 against the examples AWS publishes
 * for S3 ("Signature Calculations for the Authorization Header" and "Query
 * String Authentication"): example bucket, AKIAIOSFODNN7EXAMPLE, 2013-05-24.
 */
#include <stdlib.h>
#include <time.h>

#include "bucketfs/s3.h"
#include "bucketfs/util.h"
#include "test.h"

#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const struct bfs_s3_keys keys = {
    .access_key = "AKIAIOSFODNN7EXAMPLE",
    .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
static const time_t when = 1369353600; /* 20130524T000000Z */

static void check_auth(const char *method, const char *uri, const char *query,
                       const struct bfs_s3_header *h, size_t n, const char *payload,
                       const char *want)
{
    struct bfs_s3_sign_input in = {.method = method, .canonical_uri = uri,
                                   .canonical_query = query, .headers = h, .nheaders = n,
                                   .payload_hash = payload, .when = when,
                                   .region = "us-east-1", .service = "s3"};
    struct bfs_buf out;

    bfs_buf_init(&out, BFS_BUF_CAP_SMALL);
    CHECK(bfs_s3_sign_header(&in, &keys, &out) == 0);
    CHECK_STR(bfs_buf_str(&out), want);
    bfs_buf_done(&out);
}

static void get_object(void)
{
    const struct bfs_s3_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                                      {"Range", "bytes=0-9"},
                                      {"x-amz-content-sha256", EMPTY_SHA},
                                      {"x-amz-date", "20130524T000000Z"}};

    check_auth("GET", "/test.txt", "", h, 4, EMPTY_SHA,
               "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
               "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
               "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void put_object(void)
{
    const char *body = "Welcome to Amazon S3.";
    char sha[65];
    struct bfs_buf uri;

    bfs_sha256_hex(body, strlen(body), sha);
    CHECK_STR(sha, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    /* the key "test$file.text" is encoded once: '$' -> %24 */
    bfs_buf_init(&uri, BFS_BUF_CAP_URL);
    CHECK(bfs_buf_adds(&uri, "/") == 0);
    CHECK(bfs_uri_encode(&uri, "test$file.text", 14, 1) == 0);
    CHECK_STR(bfs_buf_str(&uri), "/test%24file.text");
    {
        const struct bfs_s3_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                                          {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                          {"x-amz-date", "20130524T000000Z"},
                                          {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                                          {"x-amz-content-sha256", sha}};

        check_auth("PUT", bfs_buf_str(&uri), "", h, 5, sha,
                   "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                   "aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
                   "x-amz-storage-class,Signature="
                   "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    }
    bfs_buf_done(&uri);
}

static void get_lifecycle(void)
{
    const struct bfs_s3_header q[] = {{"lifecycle", ""}};
    const struct bfs_s3_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                                      {"x-amz-date", "20130524T000000Z"},
                                      {"x-amz-content-sha256", EMPTY_SHA}};
    struct bfs_buf query;

    bfs_buf_init(&query, BFS_BUF_CAP_URL);
    CHECK(bfs_s3_canonical_query(q, 1, &query) == 0);
    CHECK_STR(bfs_buf_str(&query), "lifecycle=");
    check_auth("GET", "/", bfs_buf_str(&query), h, 3, EMPTY_SHA,
               "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
               "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
               "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    bfs_buf_done(&query);
}

static void list_objects(void)
{
    /* given out of order: the canonical query must sort them */
    const struct bfs_s3_header q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    const struct bfs_s3_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                                      {"x-amz-date", "20130524T000000Z"},
                                      {"x-amz-content-sha256", EMPTY_SHA}};
    struct bfs_buf query;

    bfs_buf_init(&query, BFS_BUF_CAP_URL);
    CHECK(bfs_s3_canonical_query(q, 2, &query) == 0);
    CHECK_STR(bfs_buf_str(&query), "max-keys=2&prefix=J");
    check_auth("GET", "/", bfs_buf_str(&query), h, 3, EMPTY_SHA,
               "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
               "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
               "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    bfs_buf_done(&query);
}

static void presigned(void)
{
    const struct bfs_s3_header q[] = {
        {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
        {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"},
        {"X-Amz-Date", "20130524T000000Z"},
        {"X-Amz-Expires", "86400"},
        {"X-Amz-SignedHeaders", "host"}};
    const struct bfs_s3_header h[] = {{"host", "examplebucket.s3.amazonaws.com"}};
    struct bfs_buf query, signed_list;
    char sig[65];
    struct bfs_s3_sign_input in = {.method = "GET", .canonical_uri = "/test.txt",
                                   .headers = h, .nheaders = 1,
                                   .payload_hash = "UNSIGNED-PAYLOAD", .when = when,
                                   .region = "us-east-1", .service = "s3"};

    bfs_buf_init(&query, BFS_BUF_CAP_URL);
    bfs_buf_init(&signed_list, BFS_BUF_CAP_URL);
    CHECK(bfs_s3_canonical_query(q, 5, &query) == 0);
    in.canonical_query = bfs_buf_str(&query);
    CHECK(bfs_s3_sign_string(&in, &keys, sig, &signed_list) == 0);
    CHECK_STR(sig, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    CHECK_STR(bfs_buf_str(&signed_list), "host");
    bfs_buf_done(&query);
    bfs_buf_done(&signed_list);
}

static void encoding(void)
{
    static const struct { const char *in, *keep, *full; } v[] = {
        {"a b+c", "a%20b%2Bc", "a%20b%2Bc"},
        {"100%~x", "100%25~x", "100%25~x"},
        {"dir//f.csv", "dir//f.csv", "dir%2F%2Ff.csv"},
        {"caf\xc3\xa9", "caf%C3%A9", "caf%C3%A9"},
        {"=&?#*", "%3D%26%3F%23%2A", "%3D%26%3F%23%2A"},
        {"A-Z_a.z~09", "A-Z_a.z~09", "A-Z_a.z~09"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct bfs_buf a, b;
        char *back = NULL;

        bfs_buf_init(&a, 256);
        bfs_buf_init(&b, 256);
        CHECK(bfs_uri_encode(&a, v[i].in, strlen(v[i].in), 1) == 0);
        CHECK(bfs_uri_encode(&b, v[i].in, strlen(v[i].in), 0) == 0);
        CHECK_STR(bfs_buf_str(&a), v[i].keep);
        CHECK_STR(bfs_buf_str(&b), v[i].full);
        CHECK(bfs_uri_decode(bfs_buf_str(&b), &back) == 0);
        CHECK_STR(back, v[i].in);
        free(back);
        bfs_buf_done(&a);
        bfs_buf_done(&b);
    }
}

static void header_folding(void)
{
    /* values are trimmed and inner runs of blanks folded before signing */
    const struct bfs_s3_header a[] = {{"Host", "h"}, {"X-Amz-Meta-Note", "  two   words "}};
    const struct bfs_s3_header b[] = {{"x-amz-meta-note", "two words"}, {"host", "h"}};
    struct bfs_s3_sign_input in = {.method = "PUT", .canonical_uri = "/k",
                                   .canonical_query = "", .headers = a, .nheaders = 2,
                                   .payload_hash = EMPTY_SHA, .when = when,
                                   .region = "eu-west-1", .service = "s3"};
    struct bfs_buf x, y;

    bfs_buf_init(&x, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&y, BFS_BUF_CAP_SMALL);
    CHECK(bfs_s3_sign_header(&in, &keys, &x) == 0);
    in.headers = b;
    CHECK(bfs_s3_sign_header(&in, &keys, &y) == 0);
    CHECK_STR(bfs_buf_str(&x), bfs_buf_str(&y));
    CHECK(strstr(bfs_buf_str(&x), "/eu-west-1/s3/") != NULL);
    /* and a different secret gives a different signature */
    {
        struct bfs_s3_keys k2 = keys;
        k2.secret_key[0] = 'X';
        CHECK(bfs_s3_sign_header(&in, &k2, &y) == 0);
        CHECK(strcmp(bfs_buf_str(&x), bfs_buf_str(&y)) != 0);
    }
    bfs_buf_done(&x);
    bfs_buf_done(&y);
}

static void part_sizes(void)
{
    const uint64_t mib = 1024 * 1024;

    CHECK(bfs_s3_part_size(25 * mib, 8 * mib) == 8 * mib);
    CHECK(bfs_s3_part_size(1, 0) == BFS_S3_PART_MIN);
    /* 5 TiB, the S3 maximum, fits in 10,000 parts */
    uint64_t ps = bfs_s3_part_size(5ull << 40, 8 * mib);
    CHECK((5ull << 40) / ps + ((5ull << 40) % ps != 0) <= BFS_S3_PARTS_MAX);
    CHECK(ps % mib == 0 && ps <= BFS_S3_PART_MAX);
}

int main(void)
{
    get_object();
    put_object();
    get_lifecycle();
    list_objects();
    presigned();
    encoding();
    header_folding();
    part_sizes();
    TEST_DONE();
}
