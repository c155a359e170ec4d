/* SPDX-License-Identifier: MIT */
/*
 * test-s3-creds.c: the parts of the credential chain and of region
 * discovery that need no network:
 * - renewal of expiring keys, driven by a profile whose file names its
 *   expiry (x_security_token_expires): renewed near expiry, old keys kept
 *   while a renewal fails, -EKEYEXPIRED after, recovery, and many threads
 *   asking at once;
 * - the settings of the service providers (web identity, ECS, EC2) and
 *   the messages of their mistakes;
 * - the per-bucket region table and the AWS host that follows a region.
 * The services themselves are tested end to end in
 * tests/integration/test_creds.py.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "src/s3/s3-int.h"
#include "test.h"

static char dir[] = "/tmp/bfs-test-creds-XXXXXX";
static char credfile[128];

static void clear_env(void)
{
    static const char *vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
        "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"};

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("HOME", dir, 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/bfs-config", 1);
}

/* Writes [renew] with keys AK/SK expiring at exp_ns (atomically). */
static void write_profile(const char *ak, const char *sk, int64_t exp_ns)
{
    char tmp[160], when[32];
    time_t t = (time_t)(exp_ns / 1000000000);
    struct tm tm;
    FILE *f;

    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tmp, sizeof(tmp), "%s.tmp", credfile);
    f = fopen(tmp, "w");
    if (!f)
        abort();
    fprintf(f, "[renew]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
            "aws_session_token = tok-%s\nx_security_token_expires = %s.%03dZ\n",
            ak, sk, ak, when, (int)(exp_ns / 1000000 % 1000));
    fclose(f);
    if (rename(tmp, credfile) < 0)
        abort();
}

static void sleep_until(int64_t t_ns)
{
    int64_t now = bfs_now_ns();

    if (t_ns > now)
        bfs_sleep_ms((t_ns - now) / 1000000 + 1);
}

static void renewal(void)
{
    struct bfs_s3_creds_opts o = {.profile = "renew"};
    struct bfs_s3_creds *c = NULL;
    struct bfs_s3_keys k;
    struct bfs_s3_error e;
    char err[512] = "";
    int64_t t0 = bfs_now_ns(), s = 1000000000;

    write_profile("AKA", "SKA", t0 + 2 * s);
    CHECK(bfs_s3_creds_new(&o, &c, err, sizeof(err)) == 0);
    if (!c) {
        fprintf(stderr, "creds: %s\n", err);
        return;
    }
    CHECK_STR(bfs_s3_creds_source(c), "profile");
    CHECK(bfs_s3_creds_get(c, &k) == 0);
    CHECK_STR(k.access_key, "AKA");
    CHECK_STR(k.session_token, "tok-AKA");
    CHECK(bfs_s3_creds_expiry(c) / 1000000 == (t0 + 2 * s) / 1000000);

    /* renewal is due when a tenth of the lifetime is left: at t0+1.8 s */
    write_profile("AKB", "SKB", t0 + 4 * s);
    CHECK(bfs_s3_creds_get(c, &k) == 0);
    CHECK_STR(k.access_key, "AKA"); /* not due yet: the file is not read */
    sleep_until(t0 + 1850 * 1000000LL);
    CHECK(bfs_s3_creds_get(c, &k) == 0);
    CHECK_STR(k.access_key, "AKB");
    CHECK_STR(k.secret_key, "SKB");

    /* a failed renewal keeps the current keys while they are valid... */
    unlink(credfile);
    sleep_until(t0 + 3850 * 1000000LL);
    CHECK(bfs_s3_creds_get(c, &k) == 0);
    CHECK_STR(k.access_key, "AKB");
    /* ...and fails once they have expired, saying why */
    sleep_until(t0 + 4100 * 1000000LL);
    memset(&k, 0, sizeof(k));
    CHECK(bfs_s3_creds_get(c, &k) == -EKEYEXPIRED);
    CHECK(k.access_key[0] == '\0');
    s3_creds_error(c, -EKEYEXPIRED, &e);
    CHECK_STR(e.code, "CredentialsUnavailable");
    CHECK(e.err == -EACCES && e.retryable && e.status == 0);
    CHECK(strstr(e.message, "profile") && strstr(e.message, "not found"));
    CHECK(!strstr(e.message, "SKB") && !strstr(e.message, "tok-"));

    /* the next try (1 s after the failure) finds the file back */
    write_profile("AKC", "SKC", bfs_now_ns() + 60 * s);
    sleep_until(t0 + 4900 * 1000000LL);
    CHECK(bfs_s3_creds_get(c, &k) == 0);
    CHECK_STR(k.access_key, "AKC");
    bfs_s3_creds_free(c);
}

struct racer {
    struct bfs_s3_creds *c;
    int64_t until;
    int failures, old, renewed, other;
};

static void *race(void *u)
{
    struct racer *r = u;
    struct bfs_s3_keys k;

    while (bfs_now_ns() < r->until) {
        if (bfs_s3_creds_get(r->c, &k) < 0)
            r->failures++;
        else if (!strcmp(k.access_key, "AKOLD") && !strcmp(k.secret_key, "SKOLD"))
            r->old++;
        else if (!strcmp(k.access_key, "AKNEW") && !strcmp(k.secret_key, "SKNEW") &&
                 !strcmp(k.session_token, "tok-AKNEW"))
            r->renewed++;
        else
            r->other++; /* a torn copy */
    }
    return NULL;
}

/* Many threads across a renewal: none fails, none sees a mix of keys. */
static void concurrent(void)
{
    struct bfs_s3_creds_opts o = {.profile = "renew"};
    struct bfs_s3_creds *c = NULL;
    struct racer r[8];
    pthread_t t[8];
    char err[512];
    int64_t t0 = bfs_now_ns(), s = 1000000000;
    int old = 0, renewed = 0, bad = 0;

    write_profile("AKOLD", "SKOLD", t0 + 2 * s);
    CHECK(bfs_s3_creds_new(&o, &c, err, sizeof(err)) == 0);
    if (!c)
        return;
    write_profile("AKNEW", "SKNEW", t0 + 60 * s);
    for (int i = 0; i < 8; i++) {
        r[i] = (struct racer){.c = c, .until = t0 + 2500 * 1000000LL};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        old += r[i].old;
        renewed += r[i].renewed;
        bad += r[i].failures + r[i].other;
    }
    CHECK(bad == 0);
    CHECK(old > 0 && renewed > 0);
    bfs_s3_creds_free(c);
}

static int remote(const char *want_source, char *err, size_t n)
{
    struct s3_remote *r = NULL;
    int rc = s3_remote_from_env(&r, err, n);

    if (rc == 0 && want_source) {
        CHECK(r != NULL);
        if (r)
            CHECK_STR(s3_remote_source(r), want_source);
    }
    if (rc == 0 && !want_source)
        CHECK(r == NULL);
    s3_remote_free(r);
    return rc;
}

static void service_settings(void)
{
    char err[512] = "", path[160];
    struct s3_remote *r = NULL;
    struct bfs_s3_keys k;
    int64_t exp;

    clear_env();
    CHECK(remote("imds", err, sizeof(err)) == 0); /* the last resort */
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    CHECK(remote(NULL, err, sizeof(err)) == 0);
    setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
    CHECK(remote("imds", err, sizeof(err)) == 0);

    /* ECS: relative URIs go to the agent; full URIs must be safe */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:51679/creds", 1);
    CHECK(remote("ecs", err, sizeof(err)) == 0);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://localhost/creds", 1);
    CHECK(remote("ecs", err, sizeof(err)) == 0);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials", 1);
    CHECK(remote("ecs", err, sizeof(err)) == 0);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://creds.example.com/x", 1);
    CHECK(remote("ecs", err, sizeof(err)) == 0);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://creds.example.com/x", 1);
    CHECK(remote("ecs", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "FULL_URI") && strstr(err, "loopback"));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://128.0.0.1/x", 1);
    CHECK(remote("ecs", err, sizeof(err)) == -EINVAL);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "file:///etc/passwd", 1);
    CHECK(remote("ecs", err, sizeof(err)) == -EINVAL);
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/credentials", 1);
    CHECK(remote("ecs", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "RELATIVE_URI") != NULL);
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    CHECK(remote("ecs", err, sizeof(err)) == 0); /* relative wins over full */

    /* web identity comes first and needs a role */
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    CHECK(remote("web-identity", err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "AWS_ROLE_ARN") != NULL);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
    CHECK(remote("web-identity", err, sizeof(err)) == 0);
    /* a token file that cannot be read fails before any network */
    CHECK(s3_remote_from_env(&r, err, sizeof(err)) == 0 && r);
    if (r) {
        CHECK(s3_remote_fetch(r, &k, &exp, err, sizeof(err)) == -ENOENT);
        CHECK(strstr(err, "/nonexistent/token") != NULL);
        snprintf(path, sizeof(path), "%s/empty-token", dir);
        fclose(fopen(path, "w"));
        s3_remote_free(r);
        r = NULL;
        setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path, 1);
        CHECK(s3_remote_from_env(&r, err, sizeof(err)) == 0 && r);
        CHECK(r && s3_remote_fetch(r, &k, &exp, err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, "empty") != NULL);
        s3_remote_free(r);
    }
    clear_env();
}

static void chain_end(void)
{
    struct bfs_s3_creds_opts o = {0};
    struct bfs_s3_creds *c = NULL;
    char err[1024] = "";

    clear_env();
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    CHECK(bfs_s3_creds_new(&o, &c, err, sizeof(err)) == -ENOKEY);
    CHECK(c == NULL);
    CHECK(strstr(err, "no credentials found") && strstr(err, "AWS_EC2_METADATA_DISABLED"));
    clear_env();
}

static void regions(void)
{
    struct bfs_s3_creds_opts o = {.anonymous = 1};
    struct bfs_s3_config cfg = {0};
    struct bfs_s3_creds *cr = NULL;
    struct bfs_s3_client *c = NULL;
    struct s3_request r;
    struct bfs_buf host, path;
    char err[256], region[S3_REGION_MAX];

    clear_env();
    CHECK(bfs_s3_creds_new(&o, &cr, err, sizeof(err)) == 0);
    CHECK(bfs_s3_client_new(&cfg, cr, &c, err, sizeof(err)) == 0);
    if (!c)
        return;
    CHECK(c->region_auto && c->endpoint_aws);
    CHECK_STR(bfs_s3_client_region(c), "us-east-1");
    bfs_buf_init(&host, BFS_BUF_CAP_URL);
    bfs_buf_init(&path, BFS_BUF_CAP_URL);
    CHECK(s3_build_target(c, "eu-west-1", "bkt", "a b", &host, &path) == 0);
    CHECK_STR(bfs_buf_str(&host), "bkt.s3.eu-west-1.amazonaws.com");
    CHECK_STR(bfs_buf_str(&path), "/a%20b");
    bfs_buf_reset(&host);
    bfs_buf_reset(&path);
    CHECK(s3_build_target(c, "cn-north-1", "bkt", NULL, &host, &path) == 0);
    CHECK_STR(bfs_buf_str(&host), "bkt.s3.cn-north-1.amazonaws.com.cn");
    bfs_buf_reset(&host);
    bfs_buf_reset(&path);
    CHECK(s3_build_target(c, "us-east-1", NULL, NULL, &host, &path) == 0);
    CHECK_STR(bfs_buf_str(&host), "s3.us-east-1.amazonaws.com");

    /* a 301 naming the bucket's region is learnt, a 403 or a junk value is not */
    s3_request_init(&r, BFS_S3_OP_GET, "GET", "bkt", "k");
    snprintf(r.region, sizeof(r.region), "us-east-1");
    snprintf(r.bucket_region, sizeof(r.bucket_region), "ap-south-1");
    r.status = 403;
    CHECK(s3_region_learn(c, &r) == 0);
    r.status = 301;
    snprintf(r.bucket_region, sizeof(r.bucket_region), "AP/south");
    CHECK(s3_region_learn(c, &r) == 0);
    snprintf(r.bucket_region, sizeof(r.bucket_region), "ap-south-1");
    CHECK(s3_region_learn(c, &r) == 1);
    CHECK_STR(r.region, "ap-south-1");
    CHECK(s3_region_learn(c, &r) == 0); /* already signed for it */
    s3_request_done(&r);
    s3_region_for(c, "bkt", region); /* from the table: no network */
    CHECK_STR(region, "ap-south-1");
    s3_region_for(c, NULL, region);
    CHECK_STR(region, "us-east-1");
    bfs_buf_done(&host);
    bfs_buf_done(&path);
    bfs_s3_client_free(c);

    /* a configured region is used as is, and the host does not move */
    cr = NULL;
    cfg.region = "eu-central-1";
    CHECK(bfs_s3_creds_new(&o, &cr, err, sizeof(err)) == 0);
    CHECK(bfs_s3_client_new(&cfg, cr, &c, err, sizeof(err)) == 0);
    CHECK(!c->region_auto);
    s3_region_for(c, "bkt", region);
    CHECK_STR(region, "eu-central-1");
    bfs_s3_client_free(c);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(credfile, sizeof(credfile), "%s/credentials", dir);
    bfs_s3_global_init();
    clear_env();
    setenv("AWS_SHARED_CREDENTIALS_FILE", credfile, 1);
    renewal();
    concurrent();
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    service_settings();
    chain_end();
    regions();
    unlink(credfile);
    {
        char p[200];

        snprintf(p, sizeof(p), "%s/empty-token", dir);
        unlink(p);
    }
    rmdir(dir);
    TEST_DONE();
}
