/* SPDX-License-Identifier: MIT */
/*
 * s3.h: the S3 client of bucketfs.
 *
 * Contract
 * - Speaks the S3 REST API over libcurl, signed with AWS Signature Version 4.
 *   Knows nothing of FUSE or SQLite.
 * - One struct bfs_s3_client is shared by every thread. It owns a bounded
 *   pool of connections (max_connections): a call borrows one connection for
 *   the length of one request and blocks while all are busy, so the number
 *   of requests in flight never exceeds the bound, and kept-alive
 *   connections are reused.
 * - Every call is synchronous and thread-safe. Transient failures (5xx,
 *   SlowDown, 429, connection resets, timeouts) are retried with
 *   exponential backoff and full jitter, up to max_retries; only requests
 *   that are safe to repeat are retried (see http.c).
 * - Calls return 0 (or a byte count) on success and a negative errno on
 *   failure. When reterr is not NULL it is filled on failure with the HTTP
 *   status, the S3 error Code, Message and RequestId. Secrets never appear
 *   in an error, a log line or a returned URL other than presign's.
 * - Strings passed in are borrowed for the call. Structs returned are owned
 *   by the caller and freed with their _done function.
 *
 * Call bfs_s3_global_init() once from the main thread before any thread
 * uses the client (libcurl's and libxml2's global state).
 */
#ifndef BUCKETFS_S3_H
#define BUCKETFS_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* ---- errors (s3/errors.c) ---- */

struct bfs_s3_error {
    int err;             /* negative errno, as returned */
    int status;          /* HTTP status, 0 for a transport failure */
    int retryable;       /* the failure was transient (retries exhausted) */
    char code[64];       /* S3 Code, or a transport name such as "ConnectFailed" */
    char message[256];   /* S3 Message or the transport's description */
    char request_id[96];
};

/* errno for an S3 error Code and HTTP status (-EIO when unknown). */
int bfs_s3_code_errno(const char *code, int status);
/* Whether a failure with this Code/status is worth retrying. */
int bfs_s3_code_retryable(const char *code, int status);
/* Fills e (when not NULL) with err and a transport-level description. */
void bfs_s3_error_set(struct bfs_s3_error *e, int err, int status, const char *code,
                      const char *message);

/* ---- credentials (s3/creds.c) ---- */

/* One set of keys; copied out of the provider for each request. */
struct bfs_s3_keys {
    char access_key[128];
    char secret_key[128];
    char session_token[4096];
};

/* Where to look, in the order of SPEC.md. Everything may be NULL. */
struct bfs_s3_creds_opts {
    const char *access_key;   /* explicit keys win over everything */
    const char *secret_key;
    const char *session_token;
    const char *profile;      /* overrides AWS_PROFILE */
    const char *passwd_file;  /* s3fs format; also $AWSACCESSKEYID-style lookups */
    const char *bucket;       /* selects "bucket:ACCESS:SECRET" passwd lines */
    int anonymous;            /* no signing at all (public buckets) */
};

struct bfs_s3_creds;

/* Resolves the chain once, asking a credential service (STS web identity,
 * ECS, EC2 instance metadata) when the chain gets that far. On failure err
 * holds a message for the user (no secret in it). Caller frees with
 * bfs_s3_creds_free. */
int bfs_s3_creds_new(const struct bfs_s3_creds_opts *o, struct bfs_s3_creds **ret, char *err,
                     size_t errlen);
void bfs_s3_creds_free(struct bfs_s3_creds *c);
/* Copies the current keys; returns 1 for anonymous (keys untouched).
 * Thread-safe. Temporary keys near their expiry are renewed first by the
 * calling thread (network I/O) unless another thread is at it; while the
 * current keys are valid nobody waits for a renewal. -EKEYEXPIRED when they
 * have expired and renewal failed (see creds.c). */
int bfs_s3_creds_get(struct bfs_s3_creds *c, struct bfs_s3_keys *ret);
/* When the current keys expire (ns since the epoch), 0 if never. */
int64_t bfs_s3_creds_expiry(struct bfs_s3_creds *c);
/* "config", "env", "profile", "passwd", "web-identity", "ecs", "imds" or
 * "anonymous". */
const char *bfs_s3_creds_source(const struct bfs_s3_creds *c);
/* The region named by the profile's config, or NULL. Borrowed. */
const char *bfs_s3_creds_region(const struct bfs_s3_creds *c);

/* ---- signing (s3/sigv4.c); pure functions, unit-tested on AWS vectors ---- */

struct bfs_s3_header {
    const char *name;
    const char *value;
};

struct bfs_s3_sign_input {
    const char *method;
    const char *canonical_uri;   /* already percent-encoded path */
    const char *canonical_query; /* sorted, encoded; "" when none */
    const struct bfs_s3_header *headers; /* headers to sign, any case/order */
    size_t nheaders;
    const char *payload_hash;    /* hex SHA-256 or "UNSIGNED-PAYLOAD" */
    time_t when;
    const char *region;
    const char *service;         /* "s3" */
};

/* The Authorization header value into out (caller's buffer, cleared first). */
struct bfs_buf;
int bfs_s3_sign_header(const struct bfs_s3_sign_input *in, const struct bfs_s3_keys *k,
                       struct bfs_buf *out);
/* The signature alone (64 hex + NUL) for a canonical request; used for
 * presigned URLs, where the auth parameters are part of the query. */
int bfs_s3_sign_string(const struct bfs_s3_sign_input *in, const struct bfs_s3_keys *k,
                       char ret_sig[65], struct bfs_buf *signed_headers);
/* A canonical query string from name/value pairs (sorted, encoded). */
int bfs_s3_canonical_query(const struct bfs_s3_header *params, size_t n, struct bfs_buf *out);

/* ---- hashing (s3/crypto.c) ---- */

void bfs_sha256_hex(const void *p, size_t n, char out[65]);
/* MD5 of a byte range of a file or of memory (fd < 0), as raw bytes. */
int bfs_md5_range(int fd, const void *mem, uint64_t off, uint64_t len, unsigned char out[16]);
int bfs_sha256_range(int fd, const void *mem, uint64_t off, uint64_t len, unsigned char out[32]);

/* ---- the client (s3/client.c) ---- */

enum bfs_s3_addressing { BFS_S3_ADDR_AUTO = 0, BFS_S3_ADDR_PATH, BFS_S3_ADDR_VHOST };

/* Server-side encryption of what a client writes (and reads, for SSE-C). */
enum bfs_s3_sse { BFS_S3_SSE_NONE = 0, BFS_S3_SSE_S3, BFS_S3_SSE_KMS, BFS_S3_SSE_C };

struct bfs_s3_config {
    const char *endpoint;   /* NULL: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS */
    const char *region;     /* NULL: AWS_REGION, AWS_DEFAULT_REGION, profile, else
                             * each bucket's, discovered (HeadBucket), us-east-1 */
    enum bfs_s3_addressing addressing; /* auto: path style for IP/localhost */
    int unsigned_payload;   /* send UNSIGNED-PAYLOAD instead of body SHA-256 */
    int max_connections;    /* requests in flight at once (default 16) */
    int max_retries;        /* retries after the first try (0: 6, negative: none) */
    long connect_timeout_ms; /* default 10 s */
    long low_speed_time_s;  /* abort a transfer stalled this long (default 30 s) */
    long request_timeout_ms; /* the longest a call without a large body takes,
                              * retries included (default 30 s); see below */
    const char *ca_file;    /* CA bundle (NULL: AWS_CA_BUNDLE, else the system's) */
    int insecure;           /* do not verify TLS peers (explicit only) */
    enum bfs_s3_sse sse;    /* sent on PUT, multipart and copy requests */
    const char *sse_kms_key_id; /* BFS_S3_SSE_KMS: NULL for the AWS-managed key */
    const unsigned char *sse_c_key; /* BFS_S3_SSE_C: 32 bytes, copied */
    const char *storage_class; /* NULL: the bucket's default (STANDARD) */
};

struct bfs_s3_client;

/* Reads a 256-bit SSE-C key (32 raw bytes, or base64) from a file that
 * only its owner may read. err gets a message (never the key). */
int bfs_s3_sse_c_key_load(const char *path, unsigned char key[32], char *err, size_t errlen);

/* Takes ownership of creds (also on failure). err gets a user message. */
int bfs_s3_global_init(void);
int bfs_s3_client_new(const struct bfs_s3_config *cfg, struct bfs_s3_creds *creds,
                      struct bfs_s3_client **ret, char *err, size_t errlen);
void bfs_s3_client_free(struct bfs_s3_client *c);
/* The configured region (us-east-1 when discovered per bucket). Borrowed. */
const char *bfs_s3_client_region(const struct bfs_s3_client *c);
const char *bfs_s3_client_endpoint(const struct bfs_s3_client *c); /* borrowed */

/* Counters since the client was made; read without locks (approximate). */
struct bfs_s3_stats {
    uint64_t requests, retries, errors;
    uint64_t bytes_up, bytes_down;
    uint64_t by_op[16]; /* indexed by enum bfs_s3_op */
};
enum bfs_s3_op {
    BFS_S3_OP_LIST_BUCKETS, BFS_S3_OP_LIST, BFS_S3_OP_HEAD, BFS_S3_OP_GET, BFS_S3_OP_PUT,
    BFS_S3_OP_COPY, BFS_S3_OP_DELETE, BFS_S3_OP_DELETE_MANY, BFS_S3_OP_MPU_CREATE,
    BFS_S3_OP_MPU_PART, BFS_S3_OP_MPU_COMPLETE, BFS_S3_OP_MPU_ABORT, BFS_S3_OP_MPU_LIST,
    BFS_S3_OP_OTHER, BFS_S3_OP_COUNT
};
const char *bfs_s3_op_name(enum bfs_s3_op op);
void bfs_s3_client_stats(const struct bfs_s3_client *c, struct bfs_s3_stats *ret);

/* Outages. A call that ends because the endpoint did not answer (refused,
 * timed out, reset, unresolvable) marks it down, logged once; while it is
 * down, calls fail at once (-ETIMEDOUT, code "Unreachable") but for one
 * every two seconds, which tries; the first answer of any kind marks it up
 * again (logged, counted in recoveries). Calls that carry a large body
 * (uploads, parts) and copies always try and are bounded only by the
 * stall rule (low_speed_time_s): they run in the background or must not
 * be cut. Returns the ms since the outage began, or 0 when up. */
int64_t bfs_s3_client_down_ms(const struct bfs_s3_client *c);
uint64_t bfs_s3_client_recoveries(const struct bfs_s3_client *c);
/* Whether err (a negative errno from a call) says the endpoint did not answer. */
int bfs_s3_unreachable(int err);

/* ---- objects and metadata ---- */

#define BFS_S3_ETAG_MAX 80 /* quoted ETag of a multipart upload fits */
#define BFS_S3_KEY_MAX 1024 /* S3's limit on a key, in bytes */

struct bfs_s3_meta {
    char **names;  /* lower-case, without "x-amz-meta-" */
    char **values;
    size_t n;
};
void bfs_s3_meta_done(struct bfs_s3_meta *m);
int bfs_s3_meta_add(struct bfs_s3_meta *m, const char *name, const char *value);
const char *bfs_s3_meta_get(const struct bfs_s3_meta *m, const char *name);

struct bfs_s3_object {
    char *key;           /* NULL for HEAD replies */
    uint64_t size;
    char etag[BFS_S3_ETAG_MAX]; /* with its quotes, as S3 sends it */
    int64_t mtime_ns;    /* LastModified */
    char *content_type;  /* HEAD/GET only */
    struct bfs_s3_meta meta; /* HEAD/GET only */
};
void bfs_s3_object_done(struct bfs_s3_object *o);
/* Copies an ETag into out with the double quotes S3 normally sends
 * (some servers leave them off in some replies); one that starts quoted
 * is copied as it is. */
void bfs_s3_etag_normalize(const char *in, char out[BFS_S3_ETAG_MAX]);

/* Where a request body comes from: memory, or a range of a file (pread). */
struct bfs_s3_body {
    const void *data;    /* NULL: read from fd */
    int fd;
    uint64_t offset;
    uint64_t length;
};

/* Where a GET body goes: a fixed buffer, or a callback. */
struct bfs_s3_sink {
    char *buf;           /* fixed buffer of cap bytes, or NULL */
    size_t cap;
    size_t len;          /* bytes stored so far (out) */
    /* Called with each piece when buf is NULL; non-zero aborts. */
    int (*write)(void *ctx, const void *p, size_t n);
    /* Optional: forgets what write got, so that a failed GET may be tried
     * again from the start; without it such a GET is not retried. */
    int (*reset)(void *ctx);
    void *ctx;
};

/* ---- operations (s3/ops_*.c) ---- */

struct bfs_s3_bucket_list {
    char **names;
    int64_t *created_ns;
    size_t n;
};
void bfs_s3_bucket_list_done(struct bfs_s3_bucket_list *l);
int bfs_s3_list_buckets(struct bfs_s3_client *c, struct bfs_s3_bucket_list *ret,
                        struct bfs_s3_error *reterr);

struct bfs_s3_list_params {
    const char *prefix;
    const char *delimiter;
    const char *start_after;
    const char *continuation; /* token of the previous page */
    int max_keys;             /* 0: server default (1000) */
};
struct bfs_s3_list_page {
    struct bfs_s3_object *objects; /* key, size, etag, mtime_ns */
    size_t nobjects;
    char **prefixes;               /* common prefixes, with the delimiter */
    size_t nprefixes;
    char *next_token;              /* non-NULL when truncated */
};
void bfs_s3_list_page_done(struct bfs_s3_list_page *p);
/* One page of ListObjectsV2. Keys come decoded (encoding-type=url). */
int bfs_s3_list_objects(struct bfs_s3_client *c, const char *bucket,
                        const struct bfs_s3_list_params *p, struct bfs_s3_list_page *ret,
                        struct bfs_s3_error *reterr);

int bfs_s3_head_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                       struct bfs_s3_object *ret, struct bfs_s3_error *reterr);

struct bfs_s3_get_params {
    int ranged;              /* when set, bytes first..last inclusive */
    uint64_t first, last;
    const char *if_match;     /* ETag; a mismatch fails with -ESTALE (412) */
    const char *if_none_match; /* ETag; a match fails with -EALREADY (304) */
    const char *version_id;   /* that version of the object (versionId); NULL: latest */
};
/* Returns the number of bytes delivered to the sink. ret_info (may be NULL)
 * gets size (whole object), etag, mtime, content type and metadata. A
 * fixed-buffer sink that is too small fails with -EOVERFLOW. */
int64_t bfs_s3_get_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                          const struct bfs_s3_get_params *p, struct bfs_s3_sink *sink,
                          struct bfs_s3_object *ret_info, struct bfs_s3_error *reterr);

struct bfs_s3_put_params {
    const struct bfs_s3_meta *meta;
    const char *content_type;
    int content_md5;          /* send Content-MD5 (server verifies the body) */
    int checksum_sha256;      /* send x-amz-checksum-sha256 */
    const char *if_none_match; /* "*": create only */
    const char *if_match;     /* replace only this version (an ETag, quoted or not) */
    const struct bfs_s3_header *extra; /* e.g. SSE, storage class */
    size_t nextra;
};
/* A PUT whose condition (if_match, if_none_match) fails answers -ESTALE
 * (412). One whose earlier try landed but whose reply was lost is checked
 * against the object (its ETag is the body's MD5) and succeeds. */
int bfs_s3_put_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                      const struct bfs_s3_body *body, const struct bfs_s3_put_params *p,
                      char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr);

struct bfs_s3_copy_params {
    int replace_meta;         /* REPLACE with meta/content_type, else COPY */
    const struct bfs_s3_meta *meta;
    const char *content_type;
    const char *if_match;     /* source must have this ETag */
    const char *dst_if_match; /* the destination must be this version (ETag) */
    const char *dst_if_none_match; /* "*": the destination must not exist */
    const char *src_version_id; /* copy that version of the source (NULL: latest) */
    const struct bfs_s3_header *extra;
    size_t nextra;
};
int bfs_s3_copy_object(struct bfs_s3_client *c, const char *src_bucket, const char *src_key,
                       const char *bucket, const char *key, const struct bfs_s3_copy_params *p,
                       char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr);

int bfs_s3_delete_object(struct bfs_s3_client *c, const char *bucket, const char *key,
                         struct bfs_s3_error *reterr);
/* The same, only while the object is version if_match (an ETag, quoted or
 * not; NULL: any): -ESTALE (412) when another version is there. A key
 * already gone is success, as for an unconditional DELETE. Servers that
 * ignore the condition delete whatever is there. */
int bfs_s3_delete_object_if(struct bfs_s3_client *c, const char *bucket, const char *key,
                            const char *if_match, struct bfs_s3_error *reterr);

#define BFS_S3_DELETE_MAX 1000 /* keys per DeleteObjects request */
/* Deletes up to BFS_S3_DELETE_MAX keys in one request. ret_errs[i] is 0 or
 * the negative errno of key i (a missing key counts as deleted). */
int bfs_s3_delete_objects(struct bfs_s3_client *c, const char *bucket, const char *const *keys,
                          size_t n, int *ret_errs, struct bfs_s3_error *reterr);

/* ---- multipart upload ---- */

#define BFS_S3_PART_MIN (5ull * 1024 * 1024)
#define BFS_S3_PART_MAX (5ull * 1024 * 1024 * 1024)
#define BFS_S3_PARTS_MAX 10000

/* Caller frees *ret_upload_id with free(). */
int bfs_s3_mpu_create(struct bfs_s3_client *c, const char *bucket, const char *key,
                      const struct bfs_s3_put_params *p, char **ret_upload_id,
                      struct bfs_s3_error *reterr);
int bfs_s3_mpu_part(struct bfs_s3_client *c, const char *bucket, const char *key,
                    const char *upload_id, int part_number, const struct bfs_s3_body *body,
                    char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr);
/* The parts of bytes [0, size) of fd, part_size each (the last one less),
 * sent jobs at a time (0: 4, at most 64); progress (may be NULL) hears of
 * each part that landed, from the thread that sent it. */
struct bfs_s3_parts {
    int fd;
    uint64_t size, part_size;
    int jobs;
    void (*progress)(void *ctx, uint64_t bytes);
    void *ctx;
};
/* How many parts p makes (1 for nothing: an empty object has one part). */
int bfs_s3_parts_count(const struct bfs_s3_parts *p);
/* Sends every part of p to upload upload_id; *ret_etags gets one ETag per
 * part, in order (free with bfs_s3_etags_free). On the first failure the
 * others stop; the error is that part's. The caller completes or aborts. */
int bfs_s3_mpu_send_parts(struct bfs_s3_client *c, const char *bucket, const char *key,
                          const char *upload_id, const struct bfs_s3_parts *p, char ***ret_etags,
                          struct bfs_s3_error *reterr);
void bfs_s3_etags_free(char **etags, int n);
/* Completes with parts 1..n. If a retried request finds the upload gone,
 * the object's ETag is compared with the one these parts make, so a
 * completion whose reply was lost still succeeds. */
int bfs_s3_mpu_complete(struct bfs_s3_client *c, const char *bucket, const char *key,
                        const char *upload_id, char *const *part_etags, int n,
                        char ret_etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *reterr);
/* The same, conditional as a PUT with cond's if_match / if_none_match
 * (-ESTALE when the condition fails; NULL cond: none). */
int bfs_s3_mpu_complete_if(struct bfs_s3_client *c, const char *bucket, const char *key,
                           const char *upload_id, char *const *part_etags, int n,
                           const struct bfs_s3_put_params *cond, char ret_etag[BFS_S3_ETAG_MAX],
                           struct bfs_s3_error *reterr);
int bfs_s3_mpu_abort(struct bfs_s3_client *c, const char *bucket, const char *key,
                     const char *upload_id, struct bfs_s3_error *reterr);

struct bfs_s3_upload_list {
    char **keys;
    char **upload_ids;
    int64_t *initiated_ns;
    size_t n;
};
void bfs_s3_upload_list_done(struct bfs_s3_upload_list *l);
/* All in-progress multipart uploads under prefix (follows pages). */
int bfs_s3_mpu_list(struct bfs_s3_client *c, const char *bucket, const char *prefix,
                    struct bfs_s3_upload_list *ret, struct bfs_s3_error *reterr);

/* The part size that fits size into at most BFS_S3_PARTS_MAX parts, no
 * smaller than preferred (rounded up to whole MiB). */
uint64_t bfs_s3_part_size(uint64_t size, uint64_t preferred);

/* ---- versioned buckets (s3/ops_versions.c) ---- */

#define BFS_S3_VERSION_ID_MAX 128 /* AWS and RGW send 32 characters, "null" */

/* One entry of ListObjectVersions: a version or a delete marker. */
struct bfs_s3_version {
    struct bfs_s3_object o;  /* key, size (0 for a marker), etag, mtime_ns */
    char version_id[BFS_S3_VERSION_ID_MAX];
    int latest;              /* IsLatest */
    int delete_marker;
};
struct bfs_s3_version_params {
    const char *prefix;
    const char *delimiter;
    const char *key_marker;     /* the previous page's next_key */
    const char *version_marker; /* the previous page's next_version */
    int max_keys;               /* 0: server default (1000) */
};
struct bfs_s3_version_page {
    struct bfs_s3_version *versions; /* by key, each key's newest first */
    size_t nversions;
    char **prefixes;                 /* common prefixes, with the delimiter */
    size_t nprefixes;
    char *next_key, *next_version;   /* non-NULL when truncated (next_version may be "") */
};
void bfs_s3_version_page_done(struct bfs_s3_version_page *p);
/* One page of ListObjectVersions (versions and delete markers in the
 * order S3 sends them). Keys come decoded (encoding-type=url). */
int bfs_s3_list_versions(struct bfs_s3_client *c, const char *bucket,
                         const struct bfs_s3_version_params *p, struct bfs_s3_version_page *ret,
                         struct bfs_s3_error *reterr);
/* Every page from p's markers on, each handed to fn (which may take what
 * it wants out of it; the page is freed after). fn returns 0 to go on,
 * 1 to stop (success), or a negative errno, which is returned. */
int bfs_s3_list_versions_each(struct bfs_s3_client *c, const char *bucket,
                              const struct bfs_s3_version_params *p,
                              int (*fn)(void *ctx, struct bfs_s3_version_page *pg), void *ctx,
                              struct bfs_s3_error *reterr);
/* GetBucketVersioning: "Enabled", "Suspended", or "" for a bucket that
 * never had versioning. */
int bfs_s3_bucket_versioning(struct bfs_s3_client *c, const char *bucket, char ret[16],
                             struct bfs_s3_error *reterr);
/* HeadObject of one version (version_id NULL: the latest; ops_object.c). */
int bfs_s3_head_version(struct bfs_s3_client *c, const char *bucket, const char *key,
                        const char *version_id, struct bfs_s3_object *ret,
                        struct bfs_s3_error *reterr);

/* ---- presigned URLs ---- */

#define BFS_S3_PRESIGN_MAX (7 * 24 * 3600)
/* A presigned GET URL valid for expires seconds from now; -EINVAL when
 * expires is outside 1..BFS_S3_PRESIGN_MAX, -ENOKEY for an anonymous
 * client, -ENOTSUP with SSE-C (the key would have to travel in headers).
 * Caller frees *ret_url. */
int bfs_s3_presign_get(struct bfs_s3_client *c, const char *bucket, const char *key,
                       int64_t expires, time_t now, char **ret_url);

#endif
