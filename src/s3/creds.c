/* SPDX-License-Identifier: MIT */
/*
 * creds.c: finding the keys requests are signed with.
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
 * The keys are kept under a lock so that a later refreshing provider can
 * replace them while requests copy them out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3-int.h"

struct bfs_s3_creds {
    pthread_mutex_t lock;     /* guards keys */
    struct bfs_s3_keys keys;
    const char *source;       /* immutable, static string */
    char *region;             /* immutable: region from the profile, or NULL */
    int anonymous;            /* immutable */
};

static int set_keys(struct bfs_s3_keys *k, const char *ak, const char *sk, const char *tok)
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
    char *ak, *sk, *tok, *region;
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
    return 0;
}

static void scan_done(struct profile_scan *s)
{
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

static int from_profile(struct bfs_s3_creds *c, const char *name, int named, char *err,
                        size_t errlen)
{
    struct profile_scan cs = {.want = name}, cf = {0};
    char *cpath = aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    char *fpath = aws_file("AWS_CONFIG_FILE", ".aws/config");
    char section[300];
    int r;

    snprintf(section, sizeof(section), strcmp(name, "default") ? "profile %s" : "%s", name);
    cf.want = section;
    r = scan_file(cpath, &cs, err, errlen);
    if (r == 0)
        r = scan_file(fpath, &cf, err, errlen);
    if (r < 0)
        goto out;
    if (cf.region)
        c->region = strdup(cf.region);
    if (cs.ak && cs.sk) {
        r = set_keys(&c->keys, cs.ak, cs.sk, cs.tok);
    } else if (cf.ak && cf.sk) {
        r = set_keys(&c->keys, cf.ak, cf.sk, cf.tok);
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
    if (r == -EINVAL || r == -E2BIG)
        snprintf(err, errlen, "profile '%s' has an empty or oversized key", name);
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
    r = set_keys(&c->keys, ak, sk, NULL);
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

/* ---- the chain ---- */

static int resolve(struct bfs_s3_creds *c, const struct bfs_s3_creds_opts *o, char *err,
                   size_t errlen)
{
    const char *profile = o->profile ? o->profile : getenv("AWS_PROFILE");
    char *pw;
    int r;

    if (o->access_key || o->secret_key) {
        c->source = "config";
        r = set_keys(&c->keys, o->access_key, o->secret_key, o->session_token);
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
        r = set_keys(&c->keys, getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"),
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
    snprintf(err, errlen,
             "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a "
             "profile (AWS_PROFILE, ~/.aws/credentials), a passwd file, or use anonymous "
             "access");
    return -ENOKEY;
}

int bfs_s3_creds_new(const struct bfs_s3_creds_opts *o, struct bfs_s3_creds **ret, char *err,
                     size_t errlen)
{
    struct bfs_s3_creds *c = calloc(1, sizeof(*c));
    int r;

    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
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
    pthread_mutex_destroy(&c->lock);
    free(c->region);
    free(c);
}

int bfs_s3_creds_get(struct bfs_s3_creds *c, struct bfs_s3_keys *ret)
{
    if (c->anonymous)
        return 1;
    pthread_mutex_lock(&c->lock);
    *ret = c->keys;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

const char *bfs_s3_creds_source(const struct bfs_s3_creds *c)
{
    return c->source;
}

const char *bfs_s3_creds_region(const struct bfs_s3_creds *c)
{
    return c->region;
}
