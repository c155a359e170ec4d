/* SPDX-License-Identifier: MIT */
/*
 * creds.c: finding the keys requests are signed with, and keeping the
 * temporary ones fresh.
 *
 * The chain, first match wins (SPEC.md "Credentials"):
 *   1. explicit keys (config file or -o)           source "config"
 *   2. anonymous, when asked for                    source "anonymous"
 *   3. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY    source "env"
 *   4. a profile: the named one (option or AWS_PROFILE) must exist; else
 *      "default" if the files have it. ~/.aws/credentials [NAME] and
 *      ~/.aws/config [profile NAME] ([default])     source "profile"
 *   5. an s3fs passwd file: the named one, else ~/.passwd-s3fs, else
 *      /etc/passwd-s3fs; refused when group or others have any access
 *                                                   source "passwd"
 *   6. web identity (AWS_WEB_IDENTITY_TOKEN_FILE)   source "web-identity"
 *   7. ECS container credentials                    source "ecs"
 *   8. EC2 instance metadata (IMDSv2)               source "imds"
 * 6-8 talk to a service (creds_remote.c). A provider that is configured
 * and fails is an error: the chain never falls through it to another one.
 *
 * NOTES ON THE DESIGN (renewal)
 * 1. Keys that expire (6-8, and a profile that names its expiry with
 *    x_security_token_expires, whose files are then read again) are
 *    renewed once less than RENEW_WINDOW_MAX or a tenth of their lifetime
 *    remains, whichever is less. Keys from the environment cannot change
 *    while the process runs and are never renewed.
 * 2. The first request thread that sees renewal due does it: it sets
 *    c->refreshing and drops the lock for the network. Meanwhile the other
 *    threads go on signing with the current keys while these are valid;
 *    only once they have expired do they wait on c->renewed.
 * 3. A failed renewal keeps the current keys while they are valid, is
 *    logged, and is tried again after a backoff (retry_delay). When the
 *    keys have expired and renewal failed, bfs_s3_creds_get returns
 *    -EKEYEXPIRED and the request fails with CredentialsUnavailable, which
 *    the retry loop of http.c treats as transient.
 * 4. Renewals are at least RENEW_MIN_GAP apart, so that a service handing
 *    out keys about to expire is not hammered.
 * Logging: the S3 layer otherwise logs at debug only; a failed renewal is
 * logged as a warning here because while the old keys work no caller ever
 * sees it, and it is the warning an operator needs before they expire.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3-int.h"

#define NS 1000000000LL
#define RENEW_WINDOW_MAX (300 * NS) /* renew at most this long before expiry */
#define RENEW_MIN_GAP NS            /* between two renewals */
#define RETRY_MAX (60 * NS)         /* between failed renewals, at most */

#define NO_CREDS                                                                           \
    "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile "    \
    "(AWS_PROFILE, ~/.aws/credentials), a passwd file, web identity "                      \
    "(AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN), ECS container credentials, or use "   \
    "anonymous access"

struct bfs_s3_creds {
    pthread_mutex_t lock;     /* guards the fields up to the immutable ones */
    pthread_cond_t renewed;   /* broadcast when a renewal ends */
    struct bfs_s3_keys keys;
    int64_t expires_ns;       /* wall clock; INT64_MAX: never */
    int64_t renew_ns;         /* renew from this time on (note 1) */
    int64_t next_try_ns;      /* no renewal before this time (notes 3, 4) */
    int refreshing;           /* a thread is renewing, without the lock */
    int failures;             /* renewals failed in a row */
    char last_error[256];     /* why the last renewal failed; no secrets */

    /* immutable after bfs_s3_creds_new */
    const char *source;       /* static string */
    char *region;             /* region from the profile, or NULL */
    int anonymous;
    struct s3_remote *remote; /* sources 6-8, else NULL */
    char *profile;            /* a profile with an expiry, read again to renew */
};

int s3_keys_set(struct bfs_s3_keys *k, const char *ak, const char *sk, const char *tok)
{
    if (!ak || !*ak || !sk || !*sk)
        return -EINVAL;
    if (strlen(ak) >= sizeof(k->access_key) || strlen(sk) >= sizeof(k->secret_key) ||
        (tok && strlen(tok) >= sizeof(k->session_token)))
        return -E2BIG;
    snprintf(k->access_key, sizeof(k->access_key), "%s", ak);
    snprintf(k->secret_key, sizeof(k->secret_key), "%s", sk);
    snprintf(k->session_token, sizeof(k->session_token), "%s", tok ? tok : "");
    return 0;
}

/* ---- profiles ---- */

struct profile_scan {
    const char *want;   /* section name to match */
    int found;
    char *ak, *sk, *tok, *region, *expires;
};

static void take(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
}

static int profile_cb(void *ctx, const char *section, const char *key, const char *value,
                      int line)
{
    struct profile_scan *s = ctx;

    (void)line;
    if (strcmp(section, s->want) != 0)
        return 0;
    s->found = 1;
    if (!key)
        return 0;
    if (strcmp(key, "aws_access_key_id") == 0)
        take(&s->ak, value);
    else if (strcmp(key, "aws_secret_access_key") == 0)
        take(&s->sk, value);
    else if (strcmp(key, "aws_session_token") == 0)
        take(&s->tok, value);
    else if (strcmp(key, "region") == 0)
        take(&s->region, value);
    else if (strcmp(key, "x_security_token_expires") == 0) /* saml2aws, gimme-aws-creds */
        take(&s->expires, value);
    return 0;
}

static void scan_done(struct profile_scan *s)
{
    if (s->sk)
        explicit_bzero(s->sk, strlen(s->sk));
    if (s->tok)
        explicit_bzero(s->tok, strlen(s->tok));
    free(s->expires);
    free(s->ak);
    free(s->sk);
    free(s->tok);
    free(s->region);
}

/* Path from an environment variable, else $HOME/rel. Caller frees. */
static char *aws_file(const char *envname, const char *rel)
{
    const char *p = getenv(envname), *home = getenv("HOME");
    struct bfs_buf b;

    if (p && *p)
        return strdup(p);
    if (!home || !*home)
        return NULL;
    bfs_buf_init(&b, 4096);
    if (bfs_buf_addf(&b, "%s/%s", home, rel) < 0)
        return NULL;
    return bfs_buf_steal(&b);
}

/* Reads one file into s; a missing file is fine, a broken one is not. */
static int scan_file(const char *path, struct profile_scan *s, char *err, size_t errlen)
{
    int r;

    if (!path)
        return 0;
    r = bfs_ini_parse_file(path, profile_cb, s, err, errlen);
    return r == -ENOENT ? 0 : r;
}

/* Keys of profile name into k, and their expiry into *ret_expires_ns
 * (INT64_MAX without x_security_token_expires); the profile's region into
 * *ret_region when that is not NULL. Returns 1 when name is the unnamed
 * "default" and no file has it. */
static int read_profile(const char *name, int named, struct bfs_s3_keys *k,
                        int64_t *ret_expires_ns, char **ret_region, char *err, size_t errlen)
{
    struct profile_scan cs = {.want = name}, cf = {0}, *use;
    char *cpath = aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    char *fpath = aws_file("AWS_CONFIG_FILE", ".aws/config");
    char section[300];
    int64_t exp = INT64_MAX;
    int r;

    snprintf(section, sizeof(section), strcmp(name, "default") ? "profile %s" : "%s", name);
    cf.want = section;
    r = scan_file(cpath, &cs, err, errlen);
    if (r == 0)
        r = scan_file(fpath, &cf, err, errlen);
    if (r < 0)
        goto out;
    /* the region counts even when the keys come from further down the chain */
    if (ret_region && cf.region && !*ret_region)
        *ret_region = strdup(cf.region);
    use = cs.ak && cs.sk ? &cs : cf.ak && cf.sk ? &cf : NULL;
    if (use && use->expires && bfs_time_parse_iso8601(use->expires, &exp) < 0) {
        snprintf(err, errlen, "profile '%s': x_security_token_expires is not an ISO 8601 time",
                 name);
        r = -EINVAL;
    } else if (use) {
        r = s3_keys_set(k, use->ak, use->sk, use->tok);
        if (r < 0)
            snprintf(err, errlen, "profile '%s' has an empty or oversized key", name);
    } else if (named) {
        snprintf(err, errlen,
                 (cs.found || cf.found) ? "profile '%s' has no aws_access_key_id and "
                                          "aws_secret_access_key"
                                        : "profile '%s' not found in %s or %s",
                 name, cpath ? cpath : "~/.aws/credentials", fpath ? fpath : "~/.aws/config");
        r = -ENOENT;
    } else {
        r = 1; /* no default profile: go on down the chain */
    }
    if (r == 0)
        *ret_expires_ns = exp;
out:
    scan_done(&cs);
    scan_done(&cf);
    free(cpath);
    free(fpath);
    return r;
}

/* ---- s3fs passwd files ---- */

static int passwd_line(char *line, const char *bucket, char **ak, char **sk, int *exact)
{
    char *a, *b, *c;
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (!*line || *line == '#')
        return 0;
    a = line;
    b = strchr(a, ':');
    if (!b)
        return -EINVAL;
    *b++ = '\0';
    c = strchr(b, ':');
    if (c) { /* bucket:ACCESS:SECRET */
        *c++ = '\0';
        if (!bucket || strcmp(a, bucket) != 0 || *exact)
            return 0;
        *exact = 1;
        take(ak, b);
        take(sk, c);
    } else if (!*exact && !*ak) {
        take(ak, a);
        take(sk, b);
    }
    return 0;
}

static int from_passwd(struct bfs_s3_creds *c, const char *path, const char *bucket,
                       char *err, size_t errlen)
{
    char line[1024], *ak = NULL, *sk = NULL;
    struct stat st;
    int exact = 0, lineno = 0, r = 0;
    FILE *f = fopen(path, "re");

    if (!f) {
        r = -errno;
        snprintf(err, errlen, "passwd file %s: %s", path, strerror(errno));
        return r;
    }
    if (fstat(fileno(f), &st) < 0 || (st.st_mode & (S_IRWXG | S_IRWXO))) {
        snprintf(err, errlen,
                 "passwd file %s is accessible by group or others (mode %04o): its "
                 "permissions must be 0600 or 0400 (chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        r = -EPERM;
        goto out;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (passwd_line(line, bucket, &ak, &sk, &exact) < 0) {
            snprintf(err, errlen, "passwd file %s:%d: expected ACCESS:SECRET or "
                     "BUCKET:ACCESS:SECRET", path, lineno);
            r = -EINVAL;
            goto out;
        }
    }
    r = s3_keys_set(&c->keys, ak, sk, NULL);
    if (r < 0)
        snprintf(err, errlen, "passwd file %s has no usable ACCESS:SECRET line", path);
out:
    if (sk)
        explicit_bzero(sk, strlen(sk));
    free(ak);
    free(sk);
    explicit_bzero(line, sizeof(line));
    fclose(f);
    return r;
}

static char *default_passwd(void)
{
    const char *home = getenv("HOME");
    struct bfs_buf b;

    bfs_buf_init(&b, 4096);
    if (home && bfs_buf_addf(&b, "%s/.passwd-s3fs", home) == 0 && access(b.data, F_OK) == 0)
        return bfs_buf_steal(&b);
    bfs_buf_done(&b);
    if (access("/etc/passwd-s3fs", F_OK) == 0)
        return strdup("/etc/passwd-s3fs");
    return NULL;
}

/* ---- renewal ---- */

/* Asks the source again (network for 6-8; files for a profile). Called
 * without the lock: reads immutable fields only. */
static int fetch(struct bfs_s3_creds *c, struct bfs_s3_keys *k, int64_t *ret_expires_ns,
                 char *err, size_t errlen)
{
    int64_t exp = INT64_MAX, now;
    int r;

    if (c->remote)
        r = s3_remote_fetch(c->remote, k, &exp, err, errlen);
    else
        r = read_profile(c->profile, 1, k, &exp, NULL, err, errlen);
    if (r == 0 && exp == 0)
        exp = INT64_MAX; /* a service that names no expiry */
    now = bfs_now_ns();
    if (r == 0 && exp <= now) {
        snprintf(err, errlen, "credentials from %s expired %lld s ago when handed out (is the "
                 "clock right?)", c->source, (long long)((now - exp) / NS));
        r = -EKEYEXPIRED;
    }
    if (r == 0)
        *ret_expires_ns = exp;
    else
        explicit_bzero(k, sizeof(*k));
    return r;
}

/* Caller holds c->lock (or owns c alone). Note 1. */
static void install(struct bfs_s3_creds *c, const struct bfs_s3_keys *k, int64_t exp,
                    int64_t now)
{
    int64_t window = exp == INT64_MAX ? 0 : (exp - now) / 10;

    c->keys = *k;
    c->expires_ns = exp;
    c->renew_ns = exp == INT64_MAX ? INT64_MAX : exp - (window < RENEW_WINDOW_MAX ? window
                                                                             : RENEW_WINDOW_MAX);
    c->next_try_ns = now + RENEW_MIN_GAP;
}

/* How long to wait after c->failures failed renewals: 1 s doubling up to
 * RETRY_MAX, but at most half the keys' remaining life, so that there is
 * a second chance before they expire, and a few seconds once they have. */
static int64_t retry_delay(const struct bfs_s3_creds *c, int64_t now)
{
    int64_t d = NS << (c->failures < 7 ? c->failures - 1 : 6);

    if (d > RETRY_MAX)
        d = RETRY_MAX;
    if (now < c->expires_ns && d > (c->expires_ns - now) / 2)
        d = (c->expires_ns - now) / 2;
    if (now >= c->expires_ns && d > 4 * NS)
        d = 4 * NS;
    return d < RENEW_MIN_GAP ? RENEW_MIN_GAP : d;
}

/* Called with c->lock held; drops it while fetching (note 2). */
static void renew_locked(struct bfs_s3_creds *c)
{
    struct bfs_s3_keys k;
    char err[sizeof(c->last_error)];
    int64_t exp = 0, now;
    int r;

    c->refreshing = 1;
    pthread_mutex_unlock(&c->lock);
    r = fetch(c, &k, &exp, err, sizeof(err));
    now = bfs_now_ns();
    pthread_mutex_lock(&c->lock);
    c->refreshing = 0;
    if (r == 0) {
        install(c, &k, exp, now);
        if (c->failures)
            bfs_info("credentials from %s renewed after %d failed attempt(s)", c->source,
                     c->failures);
        else
            bfs_debug("credentials from %s renewed, valid for %lld s", c->source,
                      exp == INT64_MAX ? -1LL : (long long)((exp - now) / NS));
        c->failures = 0;
        c->last_error[0] = '\0';
    } else {
        c->failures++;
        c->next_try_ns = now + retry_delay(c, now);
        snprintf(c->last_error, sizeof(c->last_error), "%s", err);
        if (now < c->expires_ns)
            bfs_warn("renewing credentials from %s failed (%s); the current ones stay in use "
                     "for %lld s more, next try in %lld s", c->source, err,
                     (long long)((c->expires_ns - now) / NS),
                     (long long)((c->next_try_ns - now) / NS));
        else
            bfs_warn("renewing credentials from %s failed (%s) and they have expired: requests "
                     "fail until a renewal succeeds", c->source, err);
    }
    explicit_bzero(&k, sizeof(k));
    pthread_cond_broadcast(&c->renewed);
}

int bfs_s3_creds_get(struct bfs_s3_creds *c, struct bfs_s3_keys *ret)
{
    int rc = 0;

    if (c->anonymous)
        return 1;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        int64_t now = bfs_now_ns();

        if (now < c->renew_ns)
            break;
        if (!c->refreshing && now >= c->next_try_ns) {
            renew_locked(c);
            continue;
        }
        if (now < c->expires_ns)
            break; /* someone renews, or a failed renewal waits: these still work */
        if (!c->refreshing) {
            rc = -EKEYEXPIRED;
            break;
        }
        pthread_cond_wait(&c->renewed, &c->lock);
    }
    if (rc == 0)
        *ret = c->keys;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void s3_creds_error(struct bfs_s3_creds *c, int err, struct bfs_s3_error *e)
{
    char msg[sizeof(e->message)];

    pthread_mutex_lock(&c->lock);
    snprintf(msg, sizeof(msg), "credentials from %s expired and could not be renewed: %.190s",
             c->source, c->last_error[0] ? c->last_error : strerror(-err));
    pthread_mutex_unlock(&c->lock);
    bfs_s3_error_set(e, -EACCES, 0, "CredentialsUnavailable", msg);
    if (e)
        e->retryable = 1;
}

int64_t bfs_s3_creds_expiry(struct bfs_s3_creds *c)
{
    int64_t exp;

    pthread_mutex_lock(&c->lock);
    exp = c->anonymous || c->expires_ns == INT64_MAX ? 0 : c->expires_ns;
    pthread_mutex_unlock(&c->lock);
    return exp;
}

/* ---- the chain ---- */

static int from_profile(struct bfs_s3_creds *c, const char *name, int named, char *err,
                        size_t errlen)
{
    struct bfs_s3_keys k;
    int64_t exp = INT64_MAX;
    int r = read_profile(name, named, &k, &exp, &c->region, err, errlen);

    if (r != 0)
        return r;
    install(c, &k, exp, bfs_now_ns());
    explicit_bzero(&k, sizeof(k));
    if (exp != INT64_MAX) {
        c->profile = strdup(name);
        if (!c->profile)
            return -ENOMEM;
    }
    return 0;
}

/* Sources 6-8: the one the environment names, asked once now. */
static int from_remote(struct bfs_s3_creds *c, char *err, size_t errlen)
{
    struct bfs_s3_keys k;
    char why[768];
    int64_t exp = INT64_MAX;
    int r = s3_remote_from_env(&c->remote, err, errlen);

    if (r < 0)
        return r;
    if (!c->remote) {
        snprintf(err, errlen, NO_CREDS " (EC2 instance metadata is off: "
                 "AWS_EC2_METADATA_DISABLED)");
        return -ENOKEY;
    }
    c->source = s3_remote_source(c->remote);
    r = fetch(c, &k, &exp, why, sizeof(why));
    if (r < 0) {
        if (s3_remote_is_last_resort(c->remote))
            snprintf(err, errlen, NO_CREDS "; %s", why);
        else
            snprintf(err, errlen, "%s", why);
        return r;
    }
    install(c, &k, exp, bfs_now_ns());
    explicit_bzero(&k, sizeof(k));
    return 0;
}

static int resolve(struct bfs_s3_creds *c, const struct bfs_s3_creds_opts *o, char *err,
                   size_t errlen)
{
    const char *profile = o->profile ? o->profile : getenv("AWS_PROFILE");
    char *pw;
    int r;

    if (o->access_key || o->secret_key) {
        c->source = "config";
        r = s3_keys_set(&c->keys, o->access_key, o->secret_key, o->session_token);
        if (r < 0)
            snprintf(err, errlen, "access key and secret key must both be given");
        return r;
    }
    if (o->anonymous) {
        c->source = "anonymous";
        c->anonymous = 1;
        return 0;
    }
    if (!o->profile && getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY")) {
        c->source = "env";
        r = s3_keys_set(&c->keys, getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"),
                        getenv("AWS_SESSION_TOKEN"));
        if (r < 0)
            snprintf(err, errlen, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is empty or too long");
        return r;
    }
    if (!o->passwd_file) {
        c->source = "profile";
        r = from_profile(c, profile && *profile ? profile : "default", profile && *profile,
                         err, errlen);
        if (r <= 0)
            return r;
    }
    pw = o->passwd_file ? strdup(o->passwd_file) : default_passwd();
    if (pw) {
        c->source = "passwd";
        r = from_passwd(c, pw, o->bucket, err, errlen);
        free(pw);
        return r;
    }
    return from_remote(c, err, errlen);
}

int bfs_s3_creds_new(const struct bfs_s3_creds_opts *o, struct bfs_s3_creds **ret, char *err,
                     size_t errlen)
{
    struct bfs_s3_creds *c = calloc(1, sizeof(*c));
    int r;

    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->renewed, NULL);
    c->expires_ns = c->renew_ns = INT64_MAX;
    r = resolve(c, o, err, errlen);
    if (r < 0) {
        bfs_s3_creds_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

void bfs_s3_creds_free(struct bfs_s3_creds *c)
{
    if (!c)
        return;
    explicit_bzero(&c->keys, sizeof(c->keys));
    pthread_cond_destroy(&c->renewed);
    pthread_mutex_destroy(&c->lock);
    s3_remote_free(c->remote);
    free(c->profile);
    free(c->region);
    free(c);
}

const char *bfs_s3_creds_source(const struct bfs_s3_creds *c)
{
    return c->source;
}

const char *bfs_s3_creds_region(const struct bfs_s3_creds *c)
{
    return c->region;
}
