/* SPDX-License-Identifier: MIT */
/*
 * http.c: executing one S3 request over libcurl: URL, signing, sending the
 * body, collecting the reply, and retrying what failed for a passing reason.
 *
 * NOTES ON THE DESIGN
 * 1. Connections. Each curl easy handle keeps its own kept-alive
 *    connection. Idle handles wait in a pool; a request borrows one for
 *    its whole life and gives it back. The pool never hands out more than
 *    max handles, which bounds the requests in flight (callers block on
 *    pool->cond while all are busy). No lock is held during a transfer.
 * 2. Retries. A failure is retried when it is transient (5xx but 501,
 *    429, SlowDown, resets, timeouts) and the request is safe to repeat:
 *    r->idempotent, or the request surely never ran (the connection could
 *    not be made, or the server answered 503/429, which S3 sends before it
 *    does anything). A GET that already passed bytes to a callback sink is
 *    not repeated: the callback cannot take them back. Waits grow
 *    exponentially (100 ms doubling, at most 5 s) with full jitter over
 *    their upper half, and each try is signed anew.
 * 3. Bodies. A 2xx body goes to r->sink when there is one; everything else
 *    (XML replies and error documents) goes to r->reply, capped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>

#include "s3-int.h"

struct s3_pool {
    pthread_mutex_t lock;  /* guards idle, nidle, nout */
    pthread_cond_t cond;   /* signalled when a handle comes back */
    CURL **idle;
    int nidle;
    int nout;              /* handles lent out */
    int max;               /* immutable */
    CURLSH *share;         /* DNS cache shared by all handles */
    pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    struct s3_pool *p = u;
    (void)h;
    (void)a;
    pthread_mutex_lock(&p->share_lock[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    struct s3_pool *p = u;
    (void)h;
    pthread_mutex_unlock(&p->share_lock[d]);
}

struct s3_pool *s3_pool_new(int max)
{
    struct s3_pool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->max = max > 0 ? max : 16;
    p->idle = calloc((size_t)p->max, sizeof(*p->idle));
    p->share = curl_share_init();
    if (!p->idle || !p->share) {
        curl_share_cleanup(p->share);
        free(p->idle);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&p->share_lock[i], NULL);
    curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return p;
}

void s3_pool_free(struct s3_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        curl_easy_cleanup(p->idle[i]);
    curl_share_cleanup(p->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&p->share_lock[i]);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p);
}

static CURL *pool_get(struct s3_pool *p)
{
    CURL *h = NULL;

    pthread_mutex_lock(&p->lock);
    while (p->nidle == 0 && p->nout >= p->max)
        pthread_cond_wait(&p->cond, &p->lock);
    if (p->nidle > 0)
        h = p->idle[--p->nidle];
    p->nout++;
    pthread_mutex_unlock(&p->lock);
    if (!h)
        h = curl_easy_init();
    else
        curl_easy_reset(h); /* keeps the live connection */
    if (!h) {
        pthread_mutex_lock(&p->lock);
        p->nout--;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
    return h;
}

/* Gives h back; a handle whose connection is suspect is closed instead. */
static void pool_put(struct s3_pool *p, CURL *h, int discard)
{
    pthread_mutex_lock(&p->lock);
    p->nout--;
    if (!discard && p->nidle < p->max) {
        p->idle[p->nidle++] = h;
        h = NULL;
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- request description ---- */

void s3_request_init(struct s3_request *r, enum bfs_s3_op op, const char *method,
                     const char *bucket, const char *key)
{
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->method = method;
    r->bucket = bucket;
    r->key = key;
    r->idempotent = 1;
    bfs_buf_init(&r->reply, BFS_BUF_CAP_XML);
}

void s3_request_done(struct s3_request *r)
{
    bfs_buf_done(&r->reply);
    bfs_s3_object_done(&r->info);
    free(r->header_store);
    r->header_store = NULL;
}

void s3_request_query(struct s3_request *r, const char *name, const char *value)
{
    if (r->nquery < S3_MAX_QUERY) {
        r->query[r->nquery].name = name;
        r->query[r->nquery].value = value;
        r->nquery++;
    }
}

void s3_request_header(struct s3_request *r, const char *name, const char *value)
{
    /* curl does not send an empty header, so it must not be signed either */
    if (!value || !*value)
        return;
    if (r->nheaders < S3_MAX_HEADERS) {
        r->headers[r->nheaders].name = name;
        r->headers[r->nheaders].value = value;
        r->nheaders++;
    }
}

void s3_request_conditions(struct s3_request *r, const char *if_match, const char *if_none_match)
{
    if (if_match) {
        size_t n = strlen(if_match);

        if (n >= 2 && if_match[0] == '"' && if_match[n - 1] == '"') {
            if_match++;
            n -= 2;
        }
        snprintf(r->cond_etag, sizeof(r->cond_etag), "%.*s", (int)n, if_match);
        s3_request_header(r, "if-match", r->cond_etag);
    }
    if (if_none_match)
        s3_request_header(r, "if-none-match", if_none_match);
}

/* Metadata names and values are copied into one block r owns, as
 * "x-amz-meta-NAME\0VALUE\0..." so that headers[] can point into it. */
int s3_request_meta(struct s3_request *r, const struct bfs_s3_meta *m, const char *ctype)
{
    struct bfs_buf b;
    size_t *offs, n = m ? m->n : 0;
    int rc = 0;

    if (ctype)
        s3_request_header(r, "content-type", ctype);
    if (n == 0)
        return 0;
    if (r->header_store || r->nheaders + n > S3_MAX_HEADERS - 8)
        return -E2BIG;
    offs = calloc(2 * n, sizeof(*offs));
    if (!offs)
        return -ENOMEM;
    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    for (size_t i = 0; i < n && rc == 0; i++) {
        offs[2 * i] = b.len;
        rc = bfs_buf_addf(&b, "x-amz-meta-%s", m->names[i]);
        if (rc == 0)
            rc = bfs_buf_add(&b, "", 1);
        offs[2 * i + 1] = b.len;
        if (rc == 0)
            rc = bfs_buf_adds(&b, m->values[i]);
        if (rc == 0)
            rc = bfs_buf_add(&b, "", 1);
    }
    if (rc == 0) {
        r->header_store = bfs_buf_steal(&b);
        for (size_t i = 0; i < n; i++)
            s3_request_header(r, r->header_store + offs[2 * i],
                              r->header_store + offs[2 * i + 1]);
    }
    bfs_buf_done(&b);
    free(offs);
    return rc;
}

/* ---- one transfer ---- */

struct xfer {
    struct s3_request *r;
    struct bfs_s3_client *c;
    uint64_t body_pos;      /* bytes of the body sent so far */
    int64_t delivered;      /* bytes given to a callback sink */
    int sink_err;           /* the sink refused (too small, or its callback) */
    long timeout_ms;        /* the attempt's bound (0: only the stall rule) */
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *u)
{
    struct xfer *x = u;
    const struct bfs_s3_body *b = x->r->body;
    uint64_t left = b->length - x->body_pos;
    size_t want = size * nitems;
    ssize_t got;

    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (b->data) {
        memcpy(buf, (const char *)b->data + b->offset + x->body_pos, want);
        got = (ssize_t)want;
    } else {
        do
            got = pread(b->fd, buf, want, (off_t)(b->offset + x->body_pos));
        while (got < 0 && errno == EINTR);
        if (got <= 0)
            return CURL_READFUNC_ABORT; /* the staging file shrank or failed */
    }
    x->body_pos += (uint64_t)got;
    return (size_t)got;
}

static int on_seek(void *u, curl_off_t offset, int origin)
{
    struct xfer *x = u;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->r->body->length)
        return CURL_SEEKFUNC_FAIL;
    x->body_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *u)
{
    struct xfer *x = u;
    struct bfs_s3_sink *s = x->r->sink;
    size_t n = size * nmemb;

    if (x->r->status < 200 || x->r->status > 299 || !s)
        return bfs_buf_add(&x->r->reply, p, n) == 0 ? n : 0;
    if (s->buf) {
        if (n > s->cap - s->len) {
            x->sink_err = -EOVERFLOW;
            return 0;
        }
        memcpy(s->buf + s->len, p, n);
    } else if (s->write) {
        int rc = s->write(s->ctx, p, n);

        if (rc) {
            x->sink_err = rc < 0 ? rc : -EIO;
            return 0;
        }
        x->delivered += (int64_t)n;
    }
    s->len += n;
    return n;
}

static char *header_value(const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n), *v, *e = line + n;

    if (!colon)
        return NULL;
    for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
        ;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    return strndup(v, (size_t)(e - v));
}

static int name_is(const char *line, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n > l && line[l] == ':' && strncasecmp(line, name, l) == 0;
}

/* Parses "Content-Range: bytes 0-9/1234" into the object size. */
static void content_range(const char *v, uint64_t *size)
{
    const char *slash = strrchr(v, '/');
    int64_t total;

    if (slash && bfs_parse_int(slash + 1, 0, INT64_MAX, &total) == 0)
        *size = (uint64_t)total;
}

static void store_header(struct bfs_s3_object *o, const char *line, size_t n, char *v)
{
    int64_t num;

    if (name_is(line, n, "etag")) {
        bfs_s3_etag_normalize(v, o->etag);
    } else if (name_is(line, n, "content-length")) {
        if (bfs_parse_int(v, 0, INT64_MAX, &num) == 0 && o->size == 0)
            o->size = (uint64_t)num;
    } else if (name_is(line, n, "content-range")) {
        content_range(v, &o->size);
    } else if (name_is(line, n, "last-modified")) {
        (void)bfs_time_parse_http(v, &o->mtime_ns);
    } else if (name_is(line, n, "content-type")) {
        free(o->content_type);
        o->content_type = strdup(v);
    } else if (n > 11 && strncasecmp(line, "x-amz-meta-", 11) == 0) {
        const char *colon = memchr(line, ':', n);
        char *name = strndup(line + 11, (size_t)(colon - line - 11));

        for (char *p = name; p && *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        if (name)
            (void)bfs_s3_meta_add(&o->meta, name, v);
        free(name);
    }
}

static size_t on_header(char *line, size_t size, size_t nitems, void *u)
{
    struct xfer *x = u;
    size_t n = size * nitems;
    char *v;

    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);

        /* a new status line (after 100 Continue): start over */
        x->r->status = sp ? atoi(sp + 1) : 0;
        bfs_s3_object_done(&x->r->info);
        x->r->bucket_region[0] = '\0';
        return n;
    }
    v = header_value(line, n);
    if (v && name_is(line, n, "x-amz-bucket-region"))
        snprintf(x->r->bucket_region, sizeof(x->r->bucket_region), "%s", v);
    else if (v)
        store_header(&x->r->info, line, n, v);
    free(v);
    return n;
}

/* ---- building and signing ---- */

struct prepared {
    struct bfs_buf url, auth, host, path, query;
    struct curl_slist *list;
    char payload_hash[65];
};

static void prepared_done(struct prepared *p)
{
    bfs_buf_done(&p->url);
    bfs_buf_done(&p->auth);
    bfs_buf_done(&p->host);
    bfs_buf_done(&p->path);
    bfs_buf_done(&p->query);
    curl_slist_free_all(p->list);
    p->list = NULL;
}

static int add_line(struct curl_slist **list, const char *name, const char *value)
{
    struct bfs_buf b;
    struct curl_slist *n;

    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (bfs_buf_addf(&b, "%s: %s", name, value) < 0)
        return -ENOMEM;
    n = curl_slist_append(*list, b.data);
    bfs_buf_done(&b);
    if (!n)
        return -ENOMEM;
    *list = n;
    return 0;
}

static int sign_and_list(struct bfs_s3_client *c, struct s3_request *r, struct prepared *p)
{
    struct bfs_s3_header h[S3_MAX_HEADERS + 4];
    struct bfs_s3_keys keys;
    size_t n = 0;
    char amz[17];
    time_t now = time(NULL);
    int anon, rc = 0;

    anon = bfs_s3_creds_get(c->creds, &keys);
    if (anon < 0)
        return anon;
    bfs_time_amz(now, amz);
    h[n++] = (struct bfs_s3_header){"host", bfs_buf_str(&p->host)};
    h[n++] = (struct bfs_s3_header){"x-amz-date", amz};
    h[n++] = (struct bfs_s3_header){"x-amz-content-sha256", p->payload_hash};
    if (!anon && keys.session_token[0])
        h[n++] = (struct bfs_s3_header){"x-amz-security-token", keys.session_token};
    for (size_t i = 0; i < r->nheaders; i++)
        h[n++] = r->headers[i];
    if (!anon) {
        struct bfs_s3_sign_input in = {
            .method = r->method, .canonical_uri = bfs_buf_str(&p->path),
            .canonical_query = bfs_buf_str(&p->query), .headers = h, .nheaders = n,
            .payload_hash = p->payload_hash, .when = now, .region = r->region, .service = "s3"};

        rc = bfs_s3_sign_header(&in, &keys, &p->auth);
        if (rc == 0)
            rc = add_line(&p->list, "Authorization", bfs_buf_str(&p->auth));
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_line(&p->list, h[i].name, h[i].value);
    /* curl would add these; S3 must not see them */
    if (rc == 0)
        rc = add_line(&p->list, "Expect", "");
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, "content-type") == 0)
            goto out;
    if (rc == 0)
        rc = add_line(&p->list, "Content-Type", "");
out:
    explicit_bzero(&keys, sizeof(keys));
    return rc;
}

static int prepare(struct bfs_s3_client *c, struct s3_request *r, struct prepared *p)
{
    int rc;

    rc = s3_build_target(c, r->region, r->bucket, r->key, &p->host, &p->path);
    if (rc == 0 && r->nquery)
        rc = bfs_s3_canonical_query(r->query, r->nquery, &p->query);
    if (rc == 0)
        rc = bfs_buf_addf(&p->url, "%s://%s%s%s%s", c->scheme, bfs_buf_str(&p->host),
                          bfs_buf_str(&p->path), r->nquery ? "?" : "", bfs_buf_str(&p->query));
    if (rc == 0)
        rc = sign_and_list(c, r, p);
    return rc;
}

/* SHA-256 of the body for x-amz-content-sha256, unless unsigned. */
static int payload_hash(struct bfs_s3_client *c, struct s3_request *r, char out[65])
{
    unsigned char md[32];
    int rc;

    if (!r->body) {
        bfs_sha256_hex("", 0, out);
        return 0;
    }
    if (c->unsigned_payload) {
        snprintf(out, 65, "UNSIGNED-PAYLOAD");
        return 0;
    }
    rc = bfs_sha256_range(r->body->fd, r->body->data, r->body->offset, r->body->length, md);
    if (rc == 0)
        bfs_hex_encode(md, 32, out);
    return rc;
}

static void set_method(CURL *h, struct s3_request *r)
{
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(r->body ? r->body->length : 0));
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(r->body ? r->body->length : 0));
        if (!r->body)
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

static void set_options(struct bfs_s3_client *c, CURL *h, struct xfer *x, struct prepared *p)
{
    curl_easy_setopt(h, CURLOPT_URL, bfs_buf_str(&p->url));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, p->list);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, c->pool->share);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, x->timeout_ms); /* pooled handles keep it */
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (x->r->body) {
        /* 1 MiB reads of the body instead of 16 KiB: fewer read and send
         * calls per part (512 MiB to RGW: 6.6 -> 6.0 s, within the noise) */
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
    }
    set_method(h, x->r);
}

/* Maps a curl failure to an error; sets whether it is worth a retry and
 * whether the request may have reached the server. */
static void transport_error(CURLcode cc, const char *detail, struct bfs_s3_error *e,
                            int *maybe_ran)
{
    int err = -EIO, retry = 0;
    const char *code = "TransportError";

    *maybe_ran = 1;
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        err = -EHOSTUNREACH, retry = 1, code = "ResolveFailed", *maybe_ran = 0;
        break;
    case CURLE_COULDNT_CONNECT:
        err = -ECONNREFUSED, retry = 1, code = "ConnectFailed", *maybe_ran = 0;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        err = -ETIMEDOUT, retry = 1, code = "Timeout";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        err = -ECONNRESET, retry = 1, code = "ConnectionReset";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
        err = -EPERM, code = "TLSVerifyFailed", *maybe_ran = 0;
        break;
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        err = -EIO, code = "BodyReadFailed";
        break;
    default:
        break;
    }
    bfs_s3_error_set(e, err, 0, code, detail && *detail ? detail : curl_easy_strerror(cc));
    e->retryable = retry;
}

/* Fills e from a non-2xx reply. */
static void http_error(struct s3_request *r, struct bfs_s3_error *e)
{
    bfs_s3_error_set(e, 0, r->status, NULL, NULL);
    if (r->reply.len == 0 || s3_xml_error(r->reply.data, r->reply.len, e) < 0) {
        /* HEAD replies have no body; others may be HTML from a proxy */
        const char *code = r->status == 404 ? (r->key ? "NoSuchKey" : "NoSuchBucket")
                           : r->status == 403 ? "AccessDenied"
                           : r->status == 412 ? "PreconditionFailed"
                           : r->status == 304 ? "NotModified"
                           : r->status == 503 ? "ServiceUnavailable"
                           : r->status == 429 ? "TooManyRequests"
                           : r->status >= 500 ? "InternalError" : "HttpError";
        snprintf(e->code, sizeof(e->code), "%s", code);
        snprintf(e->message, sizeof(e->message), "HTTP %d", r->status);
    }
    e->err = bfs_s3_code_errno(e->code, r->status);
    e->retryable = bfs_s3_code_retryable(e->code, r->status);
}

static int perform_once(struct bfs_s3_client *c, struct s3_request *r, const char *hash,
                        struct xfer *x, struct bfs_s3_error *e, int *maybe_ran)
{
    struct prepared p = {0};
    char detail[CURL_ERROR_SIZE] = "";
    CURL *h;
    CURLcode cc;
    int rc;

    bfs_buf_init(&p.url, BFS_BUF_CAP_URL);
    bfs_buf_init(&p.auth, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&p.host, BFS_BUF_CAP_URL);
    bfs_buf_init(&p.path, BFS_BUF_CAP_URL);
    bfs_buf_init(&p.query, BFS_BUF_CAP_URL);
    snprintf(p.payload_hash, sizeof(p.payload_hash), "%s", hash);
    *maybe_ran = 0;
    rc = prepare(c, r, &p);
    if (rc == -EKEYEXPIRED) {
        s3_creds_error(c->creds, rc, e);
        rc = e->err;
        goto out;
    }
    if (rc < 0) {
        bfs_s3_error_set(e, rc, 0, "RequestTooLarge", "cannot build the request");
        goto out;
    }
    h = pool_get(c->pool);
    if (!h) {
        rc = -ENOMEM;
        bfs_s3_error_set(e, rc, 0, "OutOfMemory", "curl_easy_init failed");
        goto out;
    }
    set_options(c, h, x, &p);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
    r->status = 0;
    r->bucket_region[0] = '\0';
    bfs_buf_reset(&r->reply);
    cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    pool_put(c->pool, h, cc != CURLE_OK);
    if (cc == CURLE_WRITE_ERROR && x->sink_err) {
        rc = x->sink_err;
        bfs_s3_error_set(e, rc, r->status, "SinkFull", "reply larger than the buffer");
        *maybe_ran = 1;
    } else if (cc != CURLE_OK) {
        transport_error(cc, detail, e, maybe_ran);
        rc = e->err;
    } else if (r->status < 200 || r->status > 299) {
        http_error(r, e);
        *maybe_ran = r->status != 503 && r->status != 429;
        rc = e->err;
    } else {
        rc = 0;
    }
out:
    prepared_done(&p);
    return rc;
}

static int64_t backoff_ms(int attempt)
{
    int64_t cap = 100LL << (attempt < 6 ? attempt : 6);
    uint32_t rnd = 0;

    if (cap > 5000)
        cap = 5000;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
        rnd = (uint32_t)bfs_mono_ms() * 2654435761u;
    return cap / 2 + (int64_t)(rnd % (uint32_t)(cap / 2 + 1));
}

int64_t s3_backoff_max_ms(int attempt)
{
    int64_t cap = 100LL << (attempt < 6 ? attempt : 6);

    return cap > 5000 ? 5000 : cap;
}

int s3_client_retries(const struct bfs_s3_client *c)
{
    return c->max_retries;
}

void s3_backoff(struct bfs_s3_client *c, int attempt)
{
    atomic_fetch_add(&c->retries, 1);
    bfs_sleep_ms(backoff_ms(attempt));
}

/* ---- outages ---- */

#define PROBE_MS 2000     /* while down, one call tries this often */
#define BOUNDED_BODY (1u << 20) /* calls with more to send run unbounded */

int bfs_s3_unreachable(int err)
{
    return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EHOSTUNREACH ||
           err == -ECONNRESET || err == -ENETUNREACH;
}

int64_t bfs_s3_client_down_ms(const struct bfs_s3_client *c)
{
    int64_t since = atomic_load(&c->down_since_ms);

    return since ? bfs_mono_ms() - since + 1 : 0;
}

uint64_t bfs_s3_client_recoveries(const struct bfs_s3_client *c)
{
    return atomic_load(&c->recoveries);
}

/* Uploads and copies may take long by right; every other call answers
 * within request_timeout_ms, whatever the server does. */
static int bounded(const struct s3_request *r)
{
    return !(r->body && r->body->length > BOUNDED_BODY) && r->op != BFS_S3_OP_COPY &&
           r->op != BFS_S3_OP_MPU_PART && r->op != BFS_S3_OP_MPU_COMPLETE;
}

/* 0: try; -ETIMEDOUT: the endpoint is down and another call tried lately. */
static int down_gate(struct bfs_s3_client *c, struct bfs_s3_error *e)
{
    int64_t since = atomic_load(&c->down_since_ms), now, last;

    if (!since)
        return 0;
    now = bfs_mono_ms();
    last = atomic_load(&c->probe_ms);
    if (now - last >= PROBE_MS && atomic_compare_exchange_strong(&c->probe_ms, &last, now))
        return 0;
    char msg[96];

    snprintf(msg, sizeof(msg), "the endpoint has not answered for %lld s",
             (long long)((now - since) / 1000));
    bfs_s3_error_set(e, -ETIMEDOUT, 0, "Unreachable", msg);
    e->retryable = 1;
    return -ETIMEDOUT;
}

/* since: when the call that found it began (the outage began before) */
static void mark_down(struct bfs_s3_client *c, const struct bfs_s3_error *e, int64_t since)
{
    int64_t zero = 0;

    atomic_store(&c->probe_ms, bfs_mono_ms());
    if (atomic_compare_exchange_strong(&c->down_since_ms, &zero, since > 0 ? since : 1))
        bfs_err("S3 endpoint %s does not answer (%s: %s): cached data is served, changes wait "
                "in the journal", c->endpoint, e->code, e->message);
}

static void mark_up(struct bfs_s3_client *c)
{
    int64_t since = atomic_exchange(&c->down_since_ms, 0);

    if (since) {
        atomic_fetch_add(&c->recoveries, 1);
        bfs_err("S3 endpoint %s answers again (after %lld s)", c->endpoint,
                (long long)((bfs_mono_ms() - since) / 1000));
    }
}

int s3_request_perform(struct bfs_s3_client *c, struct s3_request *r,
                       struct bfs_s3_error *reterr)
{
    struct bfs_s3_error e = {0};
    char hash[65];
    int rc, maybe_ran = 0, relocated = 0, limited = bounded(r);
    int64_t t0 = bfs_mono_ms(), deadline = t0 + c->request_timeout_ms;

    if (limited && (rc = down_gate(c, &e)) < 0) {
        atomic_fetch_add(&c->errors, 1);
        if (reterr)
            *reterr = e;
        return rc;
    }
    if (!r->region[0])
        s3_region_for(c, r->bucket, r->region);
    s3_sse_headers(c, r);
    rc = payload_hash(c, r, hash);
    if (rc < 0) {
        bfs_s3_error_set(reterr, rc, 0, "BodyReadFailed", "cannot read the request body");
        return rc;
    }
    for (;;) {
        struct xfer x = {.r = r, .c = c};
        int64_t now = bfs_mono_ms();

        x.timeout_ms = limited ? (long)(deadline - now > 1 ? deadline - now : 1) : 0;
        r->attempts++;
        if (r->sink)
            r->sink->len = 0;
        atomic_fetch_add(&c->requests, 1);
        atomic_fetch_add(&c->by_op[r->op], 1);
        rc = perform_once(c, r, hash, &x, &e, &maybe_ran);
        if (r->body)
            atomic_fetch_add(&c->bytes_up, x.body_pos);
        atomic_fetch_add(&c->bytes_down, r->sink ? r->sink->len : r->reply.len);
        bfs_debug("s3 %s %s/%s -> %d %s, %zu bytes, %lld ms, try %d", r->method,
                  r->bucket ? r->bucket : "", r->key ? r->key : "", r->status,
                  rc ? e.code : "ok", r->sink ? r->sink->len : r->reply.len,
                  (long long)(bfs_mono_ms() - t0), r->attempts);
        if (rc == 0 || r->status != 0)
            mark_up(c); /* an answer of any kind */
        if (rc == 0)
            return 0;
        if (!relocated && s3_region_learn(c, r)) {
            relocated = 1; /* the bucket lives elsewhere: sign for its region */
            continue;
        }
        if (!e.retryable || r->attempts > c->max_retries || (maybe_ran && !r->idempotent))
            break;
        /* bytes already given to a callback can only be taken back by it */
        if (x.delivered > 0 && (!r->sink->reset || r->sink->reset(r->sink->ctx) < 0))
            break;
        /* a bounded call does not wait past its time, nor on an outage */
        if (limited && (atomic_load(&c->down_since_ms) ||
                        bfs_mono_ms() + s3_backoff_max_ms(r->attempts - 1) >= deadline))
            break;
        s3_backoff(c, r->attempts - 1);
    }
    if (r->status == 0 && bfs_s3_unreachable(rc))
        mark_down(c, &e, t0);
    atomic_fetch_add(&c->errors, 1);
    if (reterr)
        *reterr = e;
    return rc;
}
