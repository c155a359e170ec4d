/* SPDX-License-Identifier: MIT */
/*
 * s3-int.h: what the files of src/s3 share and nobody else may include.
 *
 * A request is described by a struct s3_request, filled by an operation in
 * ops_*.c and executed by s3_request_perform() in http.c, which builds the
 * URL, signs, sends, retries and collects the reply and its headers.
 */
#ifndef BUCKETFS_S3_INT_H
#define BUCKETFS_S3_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "bucketfs/s3.h"
#include "bucketfs/util.h"

#define S3_MAX_QUERY 8
#define S3_MAX_HEADERS 48
#define S3_REGION_MAX 32

struct s3_request {
    /* set by the operation */
    enum bfs_s3_op op;
    const char *method;
    const char *bucket;          /* NULL: service level (ListBuckets) */
    const char *key;             /* NULL: bucket level */
    struct bfs_s3_header query[S3_MAX_QUERY];
    size_t nquery;
    struct bfs_s3_header headers[S3_MAX_HEADERS]; /* names in lower case */
    size_t nheaders;
    const struct bfs_s3_body *body; /* NULL: no body */
    int idempotent;              /* safe to repeat after it may have run */
    struct bfs_s3_sink *sink;    /* 2xx body goes here; NULL: into reply */

    /* filled by s3_request_perform */
    char region[S3_REGION_MAX];  /* signs the request (preset: no discovery) */
    char bucket_region[S3_REGION_MAX]; /* x-amz-bucket-region of the reply */
    int status;
    int attempts;
    struct bfs_buf reply;        /* XML body (2xx without sink, or any error) */
    struct bfs_s3_object info;   /* headers: size, etag, mtime, type, meta */
    char *header_store;          /* owns strings built for headers[] */
    char cond_etag[BFS_S3_ETAG_MAX]; /* If-Match's value (s3_request_conditions) */
};

/* Initializes r for one operation; s3_request_done frees what it holds. */
void s3_request_init(struct s3_request *r, enum bfs_s3_op op, const char *method,
                     const char *bucket, const char *key);
void s3_request_done(struct s3_request *r);
void s3_request_query(struct s3_request *r, const char *name, const char *value);
/* value is borrowed until the request is done. */
void s3_request_header(struct s3_request *r, const char *name, const char *value);
/* If-Match (the ETag without its quotes: Ceph RGW compares it so on a
 * write, AWS takes either) and If-None-Match; NULL: not sent. */
void s3_request_conditions(struct s3_request *r, const char *if_match, const char *if_none_match);
/* Adds x-amz-meta-* headers and Content-Type; copies into r's own storage. */
int s3_request_meta(struct s3_request *r, const struct bfs_s3_meta *m, const char *ctype);
int s3_request_perform(struct bfs_s3_client *c, struct s3_request *r,
                       struct bfs_s3_error *reterr);
/* Encryption and storage class (sse.c): copied from the config at client
 * creation; the headers a request of r->op needs, added before signing. */
int s3_sse_setup(struct bfs_s3_client *c, const struct bfs_s3_config *cfg);
void s3_sse_done(struct bfs_s3_client *c);
void s3_sse_headers(const struct bfs_s3_client *c, struct s3_request *r);
/* For operations that retry on their own (errors inside 200 replies). */
int s3_client_retries(const struct bfs_s3_client *c);
void s3_backoff(struct bfs_s3_client *c, int attempt);
/* The longest s3_backoff(c, attempt) sleeps. */
int64_t s3_backoff_max_ms(int attempt);

/* ---- client internals used by http.c ---- */

struct s3_pool; /* idle curl handles, see http.c */

struct bfs_s3_client {
    /* immutable after bfs_s3_client_new */
    char *scheme;        /* "http" or "https" */
    char *host;          /* host[:port] as sent in Host */
    char *base_path;     /* endpoint path without trailing '/', often "" */
    char *endpoint;      /* as given, for messages */
    char *region;        /* the configured region, or us-east-1 when region_auto */
    int region_auto;     /* no region configured: each bucket's is discovered */
    int endpoint_aws;    /* endpoint made from the region: the host follows it */
    struct s3_regions *regions; /* discovered regions, has its own lock */
    int path_style;
    int unsigned_payload;
    int max_retries;
    long connect_timeout_ms;
    long low_speed_time_s;
    long request_timeout_ms;
    char *ca_file;
    int insecure;
    enum bfs_s3_sse sse;
    char *sse_kms_key_id;
    char *storage_class;
    char sse_c_key_b64[48];     /* SSE-C key and its MD5, base64, as sent */
    char sse_c_key_md5_b64[32];
    struct bfs_s3_creds *creds; /* owned; has its own lock */
    struct s3_pool *pool;

    /* outage state (http.c): when it began (mono ms, 0: up), when a call
     * last tried while down, how many outages ended */
    atomic_int_fast64_t down_since_ms, probe_ms;
    atomic_uint_fast64_t recoveries;

    /* statistics, updated atomically */
    atomic_uint_fast64_t requests, retries, errors, bytes_up, bytes_down;
    atomic_uint_fast64_t by_op[BFS_S3_OP_COUNT];
};

struct s3_pool *s3_pool_new(int max);
void s3_pool_free(struct s3_pool *p);

/* URL and canonical URI for bucket/key under this client's addressing;
 * region picks the AWS host when the endpoint was made from the region. */
int s3_build_target(const struct bfs_s3_client *c, const char *region, const char *bucket,
                    const char *key, struct bfs_buf *host, struct bfs_buf *path);

/* ---- region discovery (region.c) ---- */

struct s3_regions;
struct s3_regions *s3_regions_new(void);
void s3_regions_free(struct s3_regions *rs);
/* The region that signs requests to bucket (NULL: service level) into out:
 * the configured one, else the bucket's, found with a HeadBucket on first
 * use (x-amz-bucket-region), else us-east-1. May do network I/O. */
void s3_region_for(struct bfs_s3_client *c, const char *bucket, char out[S3_REGION_MAX]);
/* After a failed reply to r: when it names another region for r's bucket
 * (x-amz-bucket-region on a 301 or 400), remembers it and returns 1, so
 * that the request is signed again for that region. */
int s3_region_learn(struct bfs_s3_client *c, struct s3_request *r);

/* ---- credentials internals (creds.c, creds_remote.c) ---- */

/* Copies keys into k; -EINVAL for empty, -E2BIG for oversized ones. */
int s3_keys_set(struct bfs_s3_keys *k, const char *ak, const char *sk, const char *tok);
/* Fills e for a request that could not be signed because bfs_s3_creds_get
 * failed with err (the keys expired and renewing them failed). */
void s3_creds_error(struct bfs_s3_creds *c, int err, struct bfs_s3_error *e);

/* A service that hands out temporary keys: STS web identity, the ECS
 * container endpoint or EC2 instance metadata. Immutable once made. */
struct s3_remote;
/* The provider the environment names, in the order of SPEC.md. Sets *ret
 * to NULL when there is none (instance metadata disabled); fails with a
 * message in err when a setting is wrong. Caller frees with s3_remote_free. */
int s3_remote_from_env(struct s3_remote **ret, char *err, size_t errlen);
void s3_remote_free(struct s3_remote *r);
/* "web-identity", "ecs" or "imds". */
const char *s3_remote_source(const struct s3_remote *r);
/* Whether the chain fell through to it (messages then list the others). */
int s3_remote_is_last_resort(const struct s3_remote *r);
/* Asks the service (network, bounded by short timeouts; call without
 * locks). *ret_expires_ns is 0 when the keys do not expire. */
int s3_remote_fetch(const struct s3_remote *r, struct bfs_s3_keys *ret, int64_t *ret_expires_ns,
                    char *err, size_t errlen);

/* ---- flat JSON objects (json.c), the replies of ECS and IMDS ---- */

#define S3_JSON_MAX (64u * 1024) /* bytes of one reply */
#define S3_JSON_FIELDS 32

struct s3_json {
    size_t n;
    char *names[S3_JSON_FIELDS];
    char *values[S3_JSON_FIELDS];  /* decoded strings, or numbers/literals as written */
    int is_string[S3_JSON_FIELDS];
};
/* Parses one flat object; -EPROTO when malformed or nested, -E2BIG when
 * too big. ret is written only on success; free with s3_json_done. */
int s3_json_parse(const char *text, size_t len, struct s3_json *ret);
void s3_json_done(struct s3_json *o); /* wipes the values */
/* The string value of name; NULL when absent or not a string. Borrowed. */
const char *s3_json_str(const struct s3_json *o, const char *name);

/* ---- XML replies (xml.c); every parser rejects malformed input ---- */

int s3_xml_error(const char *xml, size_t len, struct bfs_s3_error *e);
int s3_xml_list_buckets(const char *xml, size_t len, struct bfs_s3_bucket_list *ret);
int s3_xml_list_objects(const char *xml, size_t len, struct bfs_s3_list_page *ret);
int s3_xml_upload_id(const char *xml, size_t len, char **ret);
int s3_xml_list_versions(const char *xml, size_t len, struct bfs_s3_version_page *ret);
/* Status of a VersioningConfiguration ("" when absent). */
int s3_xml_versioning(const char *xml, size_t len, char ret[16]);
/* ETag of CopyObjectResult / CompleteMultipartUploadResult. An <Error>
 * document fills e and returns its errno (S3 may send one with 200). */
int s3_xml_etag(const char *xml, size_t len, char etag[BFS_S3_ETAG_MAX],
                struct bfs_s3_error *e);
int s3_xml_delete_result(const char *xml, size_t len, const char *const *keys, size_t n,
                         int *errs);
int s3_xml_list_uploads(const char *xml, size_t len, struct bfs_s3_upload_list *acc,
                        char **ret_next_key, char **ret_next_id);
/* The Credentials of an STS AssumeRole*Response; for an ErrorResponse,
 * fills e with its Code and Message and returns -EACCES. */
int s3_xml_sts_credentials(const char *xml, size_t len, struct bfs_s3_keys *ret,
                           int64_t *ret_expires_ns, struct bfs_s3_error *e);
/* Appends text with XML escaping. */
int s3_xml_escape(struct bfs_buf *b, const char *s);

#endif
