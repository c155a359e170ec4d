/* SPDX-License-Identifier: MIT */
/*
 * client.c: the client object: endpoint and region resolution, addressing
 * style, the URL of a bucket/key, and the small value types (metadata,
 * object info) the operations share.
 *
 * Endpoint order: the config's, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then
 * AWS's regional endpoint. Region order: the config's, AWS_REGION,
 * AWS_DEFAULT_REGION, the profile's, then each bucket's own, discovered
 * (region.c), with us-east-1 for requests without a bucket. Path-style addressing
 * is used for IP addresses and localhost in "auto" mode, and for bucket
 * names that cannot be a DNS label (dots break TLS on virtual hosts).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "s3-int.h"

int bfs_s3_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    xmlInitParser();
    return 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Splits "scheme://host[:port][/path]" into the client's fields. */
static int parse_endpoint(struct bfs_s3_client *c, const char *url, char *err, size_t errlen)
{
    const char *sep = strstr(url, "://"), *host, *slash;
    size_t n;

    if (!sep) {
        snprintf(err, errlen, "endpoint '%s' needs a scheme (http:// or https://)", url);
        return -EINVAL;
    }
    c->scheme = strndup(url, (size_t)(sep - url));
    if (!c->scheme)
        return -ENOMEM;
    for (char *p = c->scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(c->scheme, "http") != 0 && strcmp(c->scheme, "https") != 0) {
        snprintf(err, errlen, "endpoint '%s': scheme must be http or https", url);
        return -EINVAL;
    }
    host = sep + 3;
    slash = strchr(host, '/');
    n = slash ? (size_t)(slash - host) : strlen(host);
    if (n == 0 || memchr(host, '@', n) || memchr(host, '?', n)) {
        snprintf(err, errlen, "endpoint '%s' has no usable host", url);
        return -EINVAL;
    }
    c->host = strndup(host, n);
    c->base_path = strdup(slash ? slash : "");
    if (!c->host || !c->base_path)
        return -ENOMEM;
    n = strlen(c->base_path);
    while (n && c->base_path[n - 1] == '/')
        c->base_path[--n] = '\0';
    return 0;
}

/* AWS's S3 host for a region. */
static void aws_host(const char *region, char *out, size_t n)
{
    snprintf(out, n, "s3.%s.amazonaws.com%s", region, strncmp(region, "cn-", 3) ? "" : ".cn");
}

/* A host that virtual-hosted addressing cannot work with. */
static int host_wants_path_style(const char *host)
{
    const char *h = host;
    int digits_dots = 1;

    if (*h == '[')
        return 1; /* IPv6 literal */
    if (strncasecmp(h, "localhost", 9) == 0 && (h[9] == '\0' || h[9] == ':'))
        return 1;
    for (; *h && *h != ':'; h++)
        if (!isdigit((unsigned char)*h) && *h != '.')
            digits_dots = 0;
    return digits_dots;
}

/* Region, endpoint and CA file: the config's, else the environment's as
 * AWS's tools read it, else AWS's own endpoint with region discovery. */
static int pick_endpoint(struct bfs_s3_client *c, const struct bfs_s3_config *cfg)
{
    const char *endpoint, *region, *ca_file;
    char awsurl[128], host[96];

    region = cfg->region ? cfg->region : env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region && c->creds)
        region = bfs_s3_creds_region(c->creds);
    if (!region) {
        region = "us-east-1";
        c->region_auto = 1;
        c->regions = s3_regions_new();
    }
    endpoint = cfg->endpoint ? cfg->endpoint : env("AWS_ENDPOINT_URL_S3");
    if (!endpoint)
        endpoint = env("AWS_ENDPOINT_URL");
    if (!endpoint) {
        aws_host(region, host, sizeof(host));
        snprintf(awsurl, sizeof(awsurl), "https://%s", host);
        endpoint = awsurl;
        c->endpoint_aws = 1;
    }
    c->region = strdup(region);
    c->endpoint = strdup(endpoint);
    ca_file = cfg->ca_file ? cfg->ca_file : env("AWS_CA_BUNDLE");
    c->ca_file = ca_file ? strdup(ca_file) : NULL;
    if (!c->region || !c->endpoint || (ca_file && !c->ca_file) ||
        (c->region_auto && !c->regions))
        return -ENOMEM;
    return 0;
}

int bfs_s3_client_new(const struct bfs_s3_config *cfg, struct bfs_s3_creds *creds,
                      struct bfs_s3_client **ret, char *err, size_t errlen)
{
    struct bfs_s3_client *c = calloc(1, sizeof(*c));
    int r;

    if (!c) {
        bfs_s3_creds_free(creds);
        return -ENOMEM;
    }
    c->creds = creds;
    r = pick_endpoint(c, cfg);
    if (r < 0)
        goto fail;
    r = parse_endpoint(c, c->endpoint, err, errlen);
    if (r < 0)
        goto fail;
    c->path_style = cfg->addressing == BFS_S3_ADDR_PATH ||
                    (cfg->addressing == BFS_S3_ADDR_AUTO && host_wants_path_style(c->host));
    c->unsigned_payload = cfg->unsigned_payload;
    c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : cfg->max_retries < 0 ? 0 : 6;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    c->low_speed_time_s = cfg->low_speed_time_s > 0 ? cfg->low_speed_time_s : 30;
    c->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 30000;
    c->insecure = cfg->insecure;
    r = s3_sse_setup(c, cfg);
    if (r == -EINVAL)
        snprintf(err, errlen, "SSE-C needs a key (sse_c_key_file)");
    if (r < 0)
        goto fail;
    c->pool = s3_pool_new(cfg->max_connections);
    if (!c->pool) {
        r = -ENOMEM;
        goto fail;
    }
    *ret = c;
    return 0;
fail:
    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    bfs_s3_client_free(c);
    return r;
}

void bfs_s3_client_free(struct bfs_s3_client *c)
{
    if (!c)
        return;
    s3_pool_free(c->pool);
    bfs_s3_creds_free(c->creds);
    free(c->scheme);
    free(c->host);
    free(c->base_path);
    free(c->endpoint);
    free(c->region);
    s3_regions_free(c->regions);
    free(c->ca_file);
    s3_sse_done(c);
    free(c);
}

const char *bfs_s3_client_region(const struct bfs_s3_client *c)
{
    return c->region;
}

const char *bfs_s3_client_endpoint(const struct bfs_s3_client *c)
{
    return c->endpoint;
}

static int dns_compatible(const char *bucket)
{
    size_t n = strlen(bucket);

    if (n < 3 || n > 63)
        return 0;
    for (const char *p = bucket; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return 0;
    return 1;
}

int s3_build_target(const struct bfs_s3_client *c, const char *region, const char *bucket,
                    const char *key, struct bfs_buf *host, struct bfs_buf *path)
{
    int vhost = bucket && !c->path_style && dns_compatible(bucket);
    const char *base = c->host;
    char other[96];
    int r;

    if (c->endpoint_aws && region && strcmp(region, c->region) != 0) {
        aws_host(region, other, sizeof(other));
        base = other;
    }
    r = vhost ? bfs_buf_addf(host, "%s.%s", bucket, base) : bfs_buf_adds(host, base);
    if (r == 0)
        r = bfs_buf_adds(path, c->base_path);
    if (r == 0 && bucket && !vhost) {
        r = bfs_buf_adds(path, "/");
        if (r == 0)
            r = bfs_uri_encode(path, bucket, strlen(bucket), 0);
    }
    if (r == 0)
        r = bfs_buf_adds(path, "/");
    if (r == 0 && key)
        r = bfs_uri_encode(path, key, strlen(key), 1);
    return r;
}

const char *bfs_s3_op_name(enum bfs_s3_op op)
{
    static const char *names[] = {"list_buckets", "list", "head", "get", "put", "copy",
                                  "delete", "delete_many", "mpu_create", "mpu_part",
                                  "mpu_complete", "mpu_abort", "mpu_list", "other"};
    return op < BFS_S3_OP_COUNT ? names[op] : "?";
}

void bfs_s3_client_stats(const struct bfs_s3_client *c, struct bfs_s3_stats *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->requests = atomic_load(&c->requests);
    ret->retries = atomic_load(&c->retries);
    ret->errors = atomic_load(&c->errors);
    ret->bytes_up = atomic_load(&c->bytes_up);
    ret->bytes_down = atomic_load(&c->bytes_down);
    for (int i = 0; i < BFS_S3_OP_COUNT; i++)
        ret->by_op[i] = atomic_load(&c->by_op[i]);
}

/* ---- value types ---- */

void bfs_s3_meta_done(struct bfs_s3_meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->names[i]);
        free(m->values[i]);
    }
    free(m->names);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

int bfs_s3_meta_add(struct bfs_s3_meta *m, const char *name, const char *value)
{
    char **nn, **vv, *n, *v;

    nn = realloc(m->names, (m->n + 1) * sizeof(*nn));
    if (!nn)
        return -ENOMEM;
    m->names = nn;
    vv = realloc(m->values, (m->n + 1) * sizeof(*vv));
    if (!vv)
        return -ENOMEM;
    m->values = vv;
    n = strdup(name);
    v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    m->names[m->n] = n;
    m->values[m->n] = v;
    m->n++;
    return 0;
}

const char *bfs_s3_meta_get(const struct bfs_s3_meta *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcasecmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}

void bfs_s3_object_done(struct bfs_s3_object *o)
{
    free(o->key);
    free(o->content_type);
    bfs_s3_meta_done(&o->meta);
    memset(o, 0, sizeof(*o));
}

void bfs_s3_etag_normalize(const char *in, char out[BFS_S3_ETAG_MAX])
{
    size_t n = strlen(in);

    /* quoted already; also what follows the quotes is kept (bucketfs's
     * "ETAG"@VERSIONID of a version, fs/asof.c) */
    if (n >= 2 && in[0] == '"' && strchr(in + 1, '"'))
        snprintf(out, BFS_S3_ETAG_MAX, "%s", in);
    else
        snprintf(out, BFS_S3_ETAG_MAX, "\"%.*s\"", BFS_S3_ETAG_MAX - 3, in);
}

uint64_t bfs_s3_part_size(uint64_t size, uint64_t preferred)
{
    const uint64_t mib = 1024 * 1024;
    uint64_t ps = preferred < BFS_S3_PART_MIN ? BFS_S3_PART_MIN : preferred;
    uint64_t need = (size + BFS_S3_PARTS_MAX - 1) / BFS_S3_PARTS_MAX;

    if (need > ps)
        ps = need;
    ps = (ps + mib - 1) / mib * mib;
    return ps > BFS_S3_PART_MAX ? BFS_S3_PART_MAX : ps;
}
