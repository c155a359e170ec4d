/* SPDX-License-Identifier: MIT */
/*
 * creds_remote.c: temporary keys handed out by a service, the last three
 * links of the credential chain (SPEC.md "Credentials"):
 *
 *   web identity  AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (and
 *                 AWS_ROLE_SESSION_NAME): the token is traded for keys with
 *                 STS AssumeRoleWithWebIdentity, an unsigned form POST.
 *                 Endpoint: AWS_ENDPOINT_URL_STS, else the regional one of
 *                 AWS_REGION, else https://sts.amazonaws.com.
 *   ECS           AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2)
 *                 or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *                 AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN as the
 *                 Authorization header; a flat JSON reply.
 *   EC2 (IMDSv2)  PUT /latest/api/token, then the role name and its keys
 *                 under /latest/meta-data/iam/security-credentials/, both
 *                 with the session token (no IMDSv1 fallback); a flat JSON
 *                 reply. AWS_EC2_METADATA_DISABLED=true turns it off,
 *                 AWS_EC2_METADATA_SERVICE_ENDPOINT moves it.
 *
 * Token files are read again at every fetch, because Kubernetes and ECS
 * rotate them. The ECS and EC2 services live on the local link: they are
 * asked with a 1 s connect timeout and LINK_TOTAL_MS in all and never
 * through a proxy, so that a machine that is not on EC2 fails at once
 * instead of hanging. Nothing here logs; no token or key ever enters an
 * error message, and buffers that held one are wiped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "s3-int.h"

#define ECS_BASE "http://169.254.170.2"
#define IMDS_BASE "http://169.254.169.254"
#define IMDS_BASE6 "http://[fd00:ec2::254]"
#define IMDS_CREDS_PATH "/latest/meta-data/iam/security-credentials/"
#define IMDS_TOKEN_TTL "21600"
#define TOKEN_MAX (16u * 1024)   /* a token file or an IMDS session token */
#define LINK_CONNECT_MS 1000L    /* ECS and EC2 metadata: on the local link */
#define LINK_TOTAL_MS 5000L
#define STS_CONNECT_MS 5000L
#define STS_TOTAL_MS 30000L

enum kind { WEB_IDENTITY, ECS, IMDS };

struct s3_remote {
    enum kind kind;
    char *url;          /* STS endpoint, ECS credentials URL, or IMDS base */
    char *token_file;   /* web identity token, or the ECS authorization token */
    char *auth_token;   /* ECS: AWS_CONTAINER_AUTHORIZATION_TOKEN */
    char *role_arn;     /* web identity */
    char *session_name;
};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int dup_to(char **dst, const char *v)
{
    if (!v)
        return 0;
    *dst = strdup(v);
    return *dst ? 0 : -ENOMEM;
}

/* ---- setup from the environment ---- */

static int valid_region(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n >= S3_REGION_MAX)
        return 0;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
            return 0;
    return 1;
}

static int sts_endpoint(struct s3_remote *r)
{
    const char *url = env("AWS_ENDPOINT_URL_STS");
    const char *region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
    char buf[128];

    if (!url && region && valid_region(region)) {
        snprintf(buf, sizeof(buf), "https://sts.%s.amazonaws.com%s", region,
                 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
        url = buf;
    }
    return dup_to(&r->url, url ? url : "https://sts.amazonaws.com");
}

static int web_identity_setup(struct s3_remote *r, char *err, size_t errlen)
{
    const char *name = env("AWS_ROLE_SESSION_NAME");
    char gen[48];

    if (!env("AWS_ROLE_ARN")) {
        snprintf(err, errlen, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
        return -EINVAL;
    }
    if (!name) {
        snprintf(gen, sizeof(gen), "bucketfs-%lld", (long long)time(NULL));
        name = gen;
    }
    r->kind = WEB_IDENTITY;
    if (dup_to(&r->token_file, env("AWS_WEB_IDENTITY_TOKEN_FILE")) < 0 ||
        dup_to(&r->role_arn, env("AWS_ROLE_ARN")) < 0 || dup_to(&r->session_name, name) < 0)
        return -ENOMEM;
    return sts_endpoint(r);
}

/* The hosts a full URI may name over plain http: loopback, and the ECS and
 * EKS agents' link-local addresses (the rule of the AWS SDKs). */
static int trusted_http_host(const char *host)
{
    struct in_addr a;

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0 ||
        strcasecmp(host, "[fd00:ec2::23]") == 0)
        return 1;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static int ecs_full_uri_ok(const char *uri)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;

    if (!u)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, uri, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        ok = strcasecmp(scheme, "https") == 0 ||
             (strcasecmp(scheme, "http") == 0 && trusted_http_host(host));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static int ecs_setup(struct s3_remote *r, char *err, size_t errlen)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    struct bfs_buf b;
    int ok;

    r->kind = ECS;
    if (dup_to(&r->token_file, env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) < 0 ||
        dup_to(&r->auth_token, env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) < 0)
        return -ENOMEM;
    if (rel) {
        if (rel[0] != '/') {
            snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
            return -EINVAL;
        }
        bfs_buf_init(&b, BFS_BUF_CAP_URL);
        if (bfs_buf_addf(&b, "%s%s", ECS_BASE, rel) < 0)
            return -E2BIG;
        r->url = bfs_buf_steal(&b);
        return r->url ? 0 : -ENOMEM;
    }
    ok = ecs_full_uri_ok(full);
    if (ok < 0)
        return ok;
    if (!ok) {
        snprintf(err, errlen,
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI '%s' is refused: it must be an https URL, "
                 "or http to a loopback address or the ECS/EKS agent (169.254.170.2, "
                 "169.254.170.23)", full);
        return -EINVAL;
    }
    return dup_to(&r->url, full);
}

static int imds_setup(struct s3_remote *r)
{
    const char *url = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    size_t n;

    r->kind = IMDS;
    if (!url)
        url = mode && strcasecmp(mode, "IPv6") == 0 ? IMDS_BASE6 : IMDS_BASE;
    if (dup_to(&r->url, url) < 0)
        return -ENOMEM;
    n = strlen(r->url);
    while (n && r->url[n - 1] == '/')
        r->url[--n] = '\0';
    return 0;
}

int s3_remote_from_env(struct s3_remote **ret, char *err, size_t errlen)
{
    struct s3_remote *r = calloc(1, sizeof(*r));
    const char *off = env("AWS_EC2_METADATA_DISABLED");
    int rc;

    if (!r)
        return -ENOMEM;
    if (env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        rc = web_identity_setup(r, err, errlen);
    } else if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
               env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        rc = ecs_setup(r, err, errlen);
    } else if (off && strcasecmp(off, "true") == 0) {
        free(r);
        *ret = NULL;
        return 0;
    } else {
        rc = imds_setup(r);
    }
    if (rc < 0) {
        if (rc == -ENOMEM || rc == -E2BIG)
            snprintf(err, errlen, "out of memory while reading the credential settings");
        s3_remote_free(r);
        return rc;
    }
    *ret = r;
    return 0;
}

void s3_remote_free(struct s3_remote *r)
{
    if (!r)
        return;
    if (r->auth_token)
        explicit_bzero(r->auth_token, strlen(r->auth_token));
    free(r->url);
    free(r->token_file);
    free(r->auth_token);
    free(r->role_arn);
    free(r->session_name);
    free(r);
}

const char *s3_remote_source(const struct s3_remote *r)
{
    return r->kind == WEB_IDENTITY ? "web-identity" : r->kind == ECS ? "ecs" : "imds";
}

int s3_remote_is_last_resort(const struct s3_remote *r)
{
    return r->kind == IMDS;
}

/* ---- one HTTP exchange ---- */

struct call {
    const char *what;          /* the service, for messages */
    const char *method;        /* GET, PUT or POST */
    const char *url;
    struct curl_slist *headers;
    const char *body;          /* POST and PUT; NULL: none */
    long connect_ms, total_ms;
    int local;                 /* on the local link: never through a proxy */
    long status;               /* out */
    struct bfs_buf reply;      /* out, capped at BFS_BUF_CAP_SMALL */
};

static size_t on_reply(char *p, size_t size, size_t n, void *u)
{
    return bfs_buf_add(u, p, size * n) == 0 ? size * n : 0;
}

static void wipe(struct bfs_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->len);
    bfs_buf_done(b);
}

static int call(struct call *q, char *err, size_t errlen)
{
    char detail[CURL_ERROR_SIZE] = "";
    const char *ca = env("AWS_CA_BUNDLE");
    CURL *h = curl_easy_init();
    CURLcode cc;

    if (!h)
        return -ENOMEM;
    wipe(&q->reply);
    curl_easy_setopt(h, CURLOPT_URL, q->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, q->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, q->total_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, q->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &q->reply);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
    if (ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    if (q->local)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (q->body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
    curl_easy_cleanup(h);
    if (cc == CURLE_OK)
        return 0;
    if (cc == CURLE_WRITE_ERROR)
        snprintf(detail, sizeof(detail), "reply larger than %u bytes", BFS_BUF_CAP_SMALL);
    snprintf(err, errlen, "%s (%s) did not answer: %s", q->what, q->url,
             detail[0] ? detail : curl_easy_strerror(cc));
    return cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
           : cc == CURLE_COULDNT_CONNECT  ? -ECONNREFUSED
                                          : -EIO;
}

/* A header line; values with line breaks would smuggle in other headers. */
static int add_header(struct curl_slist **l, const char *name, const char *value)
{
    struct bfs_buf b;
    struct curl_slist *n;

    if (strpbrk(value, "\r\n"))
        return -EINVAL;
    bfs_buf_init(&b, TOKEN_MAX + 256);
    if (bfs_buf_addf(&b, "%s: %s", name, value) < 0)
        return -E2BIG;
    n = curl_slist_append(*l, b.data);
    wipe(&b);
    if (!n)
        return -ENOMEM;
    *l = n;
    return 0;
}

/* curl keeps copies of header lines; wipe the ones that carried tokens. */
static void free_headers(struct curl_slist **l)
{
    for (struct curl_slist *n = *l; n; n = n->next)
        explicit_bzero(n->data, strlen(n->data));
    curl_slist_free_all(*l);
    *l = NULL;
}

/* Up to n bytes of a server's text that are safe to show: letters,
 * digits and a little punctuation. */
static void shown(const char *in, char *out, size_t n)
{
    size_t i = 0;

    for (; in && *in && i + 1 < n; in++)
        if ((*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') ||
            (*in >= '0' && *in <= '9') || strchr(" .,:_-/()'", *in))
            out[i++] = *in;
    out[i] = '\0';
}

/* Reads a token file whole, without its trailing newline. */
static int read_token(const char *path, const char *what, struct bfs_buf *out, char *err,
                      size_t errlen)
{
    char chunk[4096];
    size_t n;
    int r = 0;
    FILE *f = fopen(path, "re");

    bfs_buf_init(out, TOKEN_MAX);
    if (!f) {
        r = -errno;
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return r;
    }
    while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        r = bfs_buf_add(out, chunk, n);
    if (r == 0 && ferror(f))
        r = -EIO;
    fclose(f);
    explicit_bzero(chunk, sizeof(chunk));
    while (r == 0 && out->len && strchr(" \t\r\n", out->data[out->len - 1]))
        out->data[--out->len] = '\0';
    if (r == 0 && (out->len == 0 || strlen(out->data) != out->len || strpbrk(out->data, "\r\n")))
        r = -EINVAL;
    if (r < 0) {
        wipe(out);
        snprintf(err, errlen, "%s %s: %s", what, path,
                 r == -E2BIG    ? "larger than 16 KiB"
                 : r == -EINVAL ? "empty, or not a single line of text"
                                : strerror(-r));
    }
    return r;
}

/* Keys from a flat JSON reply (ECS, EC2): AccessKeyId, SecretAccessKey,
 * Token, Expiration, and Code when the service sends one. */
static int json_keys(const struct call *q, struct bfs_s3_keys *ret, int64_t *ret_expires_ns,
                     char *err, size_t errlen)
{
    struct s3_json j;
    const char *code, *exp;
    char code_shown[64];
    int64_t exp_ns = 0;
    int r = s3_json_parse(q->reply.data, q->reply.len, &j);

    if (r < 0) {
        snprintf(err, errlen, "%s (%s) sent a reply that is not a flat JSON object", q->what,
                 q->url);
        return -EPROTO;
    }
    code = s3_json_str(&j, "Code");
    exp = s3_json_str(&j, "Expiration");
    if (code && strcmp(code, "Success") != 0) {
        shown(code, code_shown, sizeof(code_shown));
        snprintf(err, errlen, "%s (%s) has no credentials: Code %s", q->what, q->url,
                 code_shown);
        r = -EACCES;
    } else if (exp && bfs_time_parse_iso8601(exp, &exp_ns) < 0) {
        snprintf(err, errlen, "%s (%s) sent an Expiration that is not an ISO 8601 time",
                 q->what, q->url);
        r = -EPROTO;
    } else if (s3_keys_set(ret, s3_json_str(&j, "AccessKeyId"), s3_json_str(&j, "SecretAccessKey"),
                           s3_json_str(&j, "Token")) < 0) {
        snprintf(err, errlen, "%s (%s) sent a reply without a usable AccessKeyId, "
                 "SecretAccessKey and Token", q->what, q->url);
        r = -EPROTO;
    } else {
        *ret_expires_ns = exp_ns;
    }
    s3_json_done(&j);
    return r;
}

static int http_refused(const struct call *q, const char *doing, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s (%s) refused %s: HTTP %ld", q->what, q->url, doing, q->status);
    return q->status == 401 || q->status == 403 ? -EACCES : -EIO;
}

/* ---- the three services ---- */

static int form_body(const struct s3_remote *r, const struct bfs_buf *token, struct bfs_buf *b)
{
    int rc = bfs_buf_adds(b, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=");

    if (rc == 0)
        rc = bfs_uri_encode(b, r->role_arn, strlen(r->role_arn), 0);
    if (rc == 0)
        rc = bfs_buf_adds(b, "&RoleSessionName=");
    if (rc == 0)
        rc = bfs_uri_encode(b, r->session_name, strlen(r->session_name), 0);
    if (rc == 0)
        rc = bfs_buf_adds(b, "&WebIdentityToken=");
    if (rc == 0)
        rc = bfs_uri_encode(b, token->data, token->len, 0);
    return rc;
}

static int web_identity_fetch(const struct s3_remote *r, struct bfs_s3_keys *ret,
                              int64_t *ret_expires_ns, char *err, size_t errlen)
{
    struct call q = {.what = "STS AssumeRoleWithWebIdentity", .method = "POST", .url = r->url,
                     .connect_ms = STS_CONNECT_MS, .total_ms = STS_TOTAL_MS};
    struct bfs_s3_error e = {0};
    struct bfs_buf token, body;
    char code[64], msg[200];
    int rc;

    bfs_buf_init(&q.reply, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&body, 4 * TOKEN_MAX);
    rc = read_token(r->token_file, "web identity token file", &token, err, errlen);
    if (rc < 0)
        return rc;
    rc = form_body(r, &token, &body);
    if (rc == 0)
        rc = add_header(&q.headers, "Content-Type", "application/x-www-form-urlencoded");
    if (rc < 0) {
        snprintf(err, errlen, "cannot build the STS request (token or role ARN too long)");
        goto out;
    }
    q.body = body.data;
    rc = call(&q, err, errlen);
    if (rc < 0)
        goto out;
    rc = s3_xml_sts_credentials(q.reply.data, q.reply.len, ret, ret_expires_ns, &e);
    if (rc == 0 && q.status != 200)
        rc = -EPROTO; /* credentials in a failed reply: believe the status */
    if (rc == -EACCES) {
        shown(e.code, code, sizeof(code));
        shown(e.message, msg, sizeof(msg));
        snprintf(err, errlen, "%s (%s) refused role %s: HTTP %ld %s: %s", q.what, q.url,
                 r->role_arn, q.status, code, msg);
    } else if (rc < 0) {
        snprintf(err, errlen, "%s (%s) for role %s: HTTP %ld, %s", q.what, q.url, r->role_arn,
                 q.status, q.status == 200 ? "a reply without credentials" : "no usable reply");
        rc = q.status == 200 ? -EPROTO : -EIO;
    }
out:
    free_headers(&q.headers);
    wipe(&q.reply);
    wipe(&body);
    wipe(&token);
    return rc;
}

static int ecs_fetch(const struct s3_remote *r, struct bfs_s3_keys *ret, int64_t *ret_expires_ns,
                     char *err, size_t errlen)
{
    struct call q = {.what = "the ECS credentials endpoint", .method = "GET", .url = r->url,
                     .connect_ms = LINK_CONNECT_MS, .total_ms = LINK_TOTAL_MS, .local = 1};
    struct bfs_buf auth;
    int rc = 0;

    bfs_buf_init(&q.reply, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&auth, TOKEN_MAX);
    if (r->token_file) {
        rc = read_token(r->token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &auth, err,
                        errlen);
        if (rc < 0)
            goto out;
    } else if (r->auth_token) {
        rc = bfs_buf_adds(&auth, r->auth_token);
    }
    if (rc == 0 && auth.len)
        rc = add_header(&q.headers, "Authorization", auth.data);
    if (rc == 0)
        rc = add_header(&q.headers, "Accept", "application/json");
    if (rc < 0) {
        snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN is too long or has line breaks");
        goto out;
    }
    rc = call(&q, err, errlen);
    if (rc == 0 && q.status != 200)
        rc = http_refused(&q, "the credentials request", err, errlen);
    if (rc == 0)
        rc = json_keys(&q, ret, ret_expires_ns, err, errlen);
out:
    free_headers(&q.headers);
    wipe(&q.reply);
    wipe(&auth);
    return rc;
}

/* An IAM role name as IMDS lists it (first line), checked before it goes
 * into a URL. */
static int role_name(const struct bfs_buf *reply, char out[130])
{
    size_t n = 0;

    for (const char *p = reply->data; p && *p && *p != '\n' && *p != '\r'; p++) {
        if (n == 128 || !(strchr("+=,.@_-", *p) || (*p >= 'a' && *p <= 'z') ||
                          (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return -EPROTO;
        out[n++] = *p;
    }
    out[n] = '\0';
    return n ? 0 : -EPROTO;
}

/* IMDSv2 step 1: a session token into token; q's headers end up holding
 * it for the next requests. url is scratch. */
static int imds_token(const struct s3_remote *r, struct call *q, struct bfs_buf *url,
                      struct bfs_buf *token, char *err, size_t errlen)
{
    int rc;

    q->method = "PUT", q->body = ""; /* the empty Content-Type drops curl's form type */
    rc = bfs_buf_addf(url, "%s/latest/api/token", r->url);
    if (rc == 0)
        rc = add_header(&q->headers, "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL);
    if (rc == 0)
        rc = add_header(&q->headers, "Content-Type", "");
    if (rc < 0) {
        snprintf(err, errlen, "EC2 instance metadata endpoint URL too long");
        return rc;
    }
    q->url = url->data;
    rc = call(q, err, errlen);
    if (rc == 0 && q->status != 200)
        rc = http_refused(q, "the IMDSv2 session token request", err, errlen);
    if (rc == 0 && (bfs_buf_add(token, q->reply.data, q->reply.len) < 0 || token->len == 0 ||
                    strlen(token->data) != token->len || strpbrk(token->data, "\r\n"))) {
        snprintf(err, errlen, "EC2 instance metadata (%s) sent an unusable session token", q->url);
        rc = -EPROTO;
    }
    free_headers(&q->headers);
    if (rc == 0)
        rc = add_header(&q->headers, "X-aws-ec2-metadata-token", token->data);
    q->method = "GET", q->body = NULL;
    return rc;
}

/* IMDSv2 step 2: the role attached to the instance; url is left holding
 * the credentials path. */
static int imds_role(const struct s3_remote *r, struct call *q, struct bfs_buf *url,
                     char role[130], char *err, size_t errlen)
{
    int rc;

    bfs_buf_reset(url);
    rc = bfs_buf_addf(url, "%s%s", r->url, IMDS_CREDS_PATH);
    if (rc < 0)
        return rc;
    q->url = url->data;
    rc = call(q, err, errlen);
    if (rc == 0 && q->status == 404) {
        snprintf(err, errlen, "EC2 instance metadata (%s): no IAM role is attached to this "
                 "instance", q->url);
        rc = -ENOKEY;
    } else if (rc == 0 && q->status != 200) {
        rc = http_refused(q, "the role request", err, errlen);
    } else if (rc == 0 && role_name(&q->reply, role) < 0) {
        snprintf(err, errlen, "EC2 instance metadata (%s) sent an invalid role name", q->url);
        rc = -EPROTO;
    }
    return rc;
}

static int imds_fetch(const struct s3_remote *r, struct bfs_s3_keys *ret, int64_t *ret_expires_ns,
                      char *err, size_t errlen)
{
    struct call q = {.what = "EC2 instance metadata", .connect_ms = LINK_CONNECT_MS,
                     .total_ms = LINK_TOTAL_MS, .local = 1};
    struct bfs_buf url, token;
    char role[130];
    int rc;

    bfs_buf_init(&q.reply, BFS_BUF_CAP_SMALL);
    bfs_buf_init(&url, BFS_BUF_CAP_URL);
    bfs_buf_init(&token, TOKEN_MAX);
    rc = imds_token(r, &q, &url, &token, err, errlen);
    if (rc == 0)
        rc = imds_role(r, &q, &url, role, err, errlen);
    /* 3. the role's keys */
    if (rc == 0 && (rc = bfs_buf_addf(&url, "%s", role)) == 0) {
        q.url = url.data;
        rc = call(&q, err, errlen);
        if (rc == 0 && q.status != 200)
            rc = http_refused(&q, "the credentials request", err, errlen);
        if (rc == 0)
            rc = json_keys(&q, ret, ret_expires_ns, err, errlen);
    }
    free_headers(&q.headers);
    wipe(&q.reply);
    wipe(&token);
    bfs_buf_done(&url);
    return rc;
}

int s3_remote_fetch(const struct s3_remote *r, struct bfs_s3_keys *ret, int64_t *ret_expires_ns,
                    char *err, size_t errlen)
{
    int rc;

    err[0] = '\0';
    if (r->kind == WEB_IDENTITY)
        rc = web_identity_fetch(r, ret, ret_expires_ns, err, errlen);
    else if (r->kind == ECS)
        rc = ecs_fetch(r, ret, ret_expires_ns, err, errlen);
    else
        rc = imds_fetch(r, ret, ret_expires_ns, err, errlen);
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "credentials from %s: %s", s3_remote_source(r), strerror(-rc));
    return rc;
}
