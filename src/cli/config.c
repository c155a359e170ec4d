/* SPDX-License-Identifier: MIT */
/*
 * config.c: the INI config file, -o options and --map specs, all validated
 * through one table of keys so that the file and the command line accept
 * exactly the same things (SPEC.md "Config file").
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/config.h"
#include "bucketfs/util.h"

enum vtype { V_STR, V_BOOL, V_SIZE, V_DURATION, V_INT, V_MODE, V_PATHSTYLE, V_SSE, V_ID,
             V_LISTMETA, V_CONFLICTS, V_ASOF, V_RANDFETCH };

/* Where a key may appear. */
#define K_GLOBAL 1
#define K_MAP 2
#define K_CONN 4 /* global, overridable per mapping */

struct key {
    const char *name;
    enum vtype type;
    int where;
};

static const struct key keys[] = {
    {"region", V_STR, K_CONN},          {"endpoint", V_STR, K_CONN},
    {"path_style", V_PATHSTYLE, K_CONN}, {"profile", V_STR, K_CONN},
    {"access_key", V_STR, K_GLOBAL},    {"secret_key", V_STR, K_GLOBAL},
    {"session_token", V_STR, K_GLOBAL}, {"passwd_file", V_STR, K_GLOBAL},
    {"anonymous", V_BOOL, K_GLOBAL},    {"ca_file", V_STR, K_GLOBAL},
    {"insecure", V_BOOL, K_GLOBAL},     {"cache_dir", V_STR, K_GLOBAL},
    {"cache_size", V_SIZE, K_GLOBAL},   {"metadata_ttl", V_DURATION, K_GLOBAL},
    {"upload_retry_max", V_DURATION, K_GLOBAL}, {"upload_delay", V_DURATION, K_GLOBAL},
    {"request_timeout", V_DURATION, K_GLOBAL}, {"revalidate", V_DURATION, K_GLOBAL},
    {"block_size", V_SIZE, K_GLOBAL},   {"read_ahead", V_INT, K_GLOBAL},
    {"max_connections", V_INT, K_GLOBAL}, {"uid", V_ID, K_GLOBAL},
    {"list_meta", V_LISTMETA, K_GLOBAL}, {"conflicts", V_CONFLICTS, K_GLOBAL | K_MAP},
    {"random_fetch", V_RANDFETCH, K_GLOBAL},
    {"gid", V_ID, K_GLOBAL},            {"file_mode", V_MODE, K_GLOBAL},
    {"dir_mode", V_MODE, K_GLOBAL},     {"umask", V_MODE, K_GLOBAL},
    {"read_only", V_BOOL, K_GLOBAL | K_MAP}, {"allow_other", V_BOOL, K_GLOBAL},
    {"default_permissions", V_BOOL, K_GLOBAL}, {"sync_upload", V_BOOL, K_GLOBAL},
    {"bucket", V_STR, K_MAP},           {"prefix", V_STR, K_MAP},
    {"sse", V_SSE, K_MAP},              {"sse_kms_key_id", V_STR, K_MAP},
    {"sse_c_key_file", V_STR, K_MAP},   {"storage_class", V_STR, K_MAP},
    {"as_of", V_ASOF, K_MAP},
};

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

void bfs_config_init(struct bfs_config *c)
{
    memset(c, 0, sizeof(*c));
    c->conn.path_style = -1;
    c->cache_size = 10ull << 30;
    c->metadata_ttl = 60;
    c->upload_retry_max = 300;
    c->request_timeout_ms = 30000;
    c->revalidate_ms = 1000;
    c->upload_delay_ms = 200;
    c->block_size = 1u << 20;
    c->read_ahead = 8;
    c->max_connections = 16;
    c->list_meta = BFS_LIST_META_AUTO;
    c->random_fetch = 1;
    c->uid = getuid();
    c->gid = getgid();
    c->file_mode = 0644;
    c->dir_mode = 0755;
    c->umask = 0;
    c->default_permissions = -1;
}

static void conn_done(struct bfs_conn_settings *s)
{
    free(s->region);
    free(s->endpoint);
    free(s->profile);
}

static void map_done(struct bfs_mapping *m)
{
    free(m->name);
    free(m->bucket);
    free(m->prefix);
    conn_done(&m->conn);
    free(m->sse);
    free(m->sse_kms_key_id);
    free(m->sse_c_key_file);
    free(m->storage_class);
}

void bfs_config_done(struct bfs_config *c)
{
    conn_done(&c->conn);
    free(c->access_key);
    if (c->secret_key)
        explicit_bzero(c->secret_key, strlen(c->secret_key));
    free(c->secret_key);
    free(c->session_token);
    free(c->passwd_file);
    free(c->ca_file);
    free(c->cache_dir);
    free(c->fuse_opts);
    for (size_t i = 0; i < c->nmaps; i++)
        map_done(&c->maps[i]);
    free(c->maps);
    memset(c, 0, sizeof(*c));
}

static int set_str(char **dst, const char *v)
{
    char *d = strdup(v);

    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

/* Normalizes a prefix: no leading '/', a trailing '/' unless empty. */
static int set_prefix(char **dst, const char *v)
{
    struct bfs_buf b;

    while (*v == '/')
        v++;
    bfs_buf_init(&b, 4096);
    if (bfs_buf_adds(&b, v) < 0 || (*v && v[strlen(v) - 1] != '/' && bfs_buf_adds(&b, "/") < 0))
        return -E2BIG;
    free(*dst);
    *dst = bfs_buf_steal(&b);
    return *dst ? 0 : -ENOMEM;
}

static int parse_mode(const char *v, mode_t *ret)
{
    char *end;
    long m;

    errno = 0;
    m = strtol(v, &end, 8);
    if (!*v || *end || errno || m < 0 || m > 07777)
        return -EINVAL;
    *ret = (mode_t)m;
    return 0;
}

static const char *type_hint(enum vtype t)
{
    switch (t) {
    case V_BOOL: return "expected true or false";
    case V_SIZE: return "expected a size such as 512M or 20G";
    case V_DURATION: return "expected a duration such as 60s, 5m or 1h";
    case V_INT: return "expected a number from 1 to 1024";
    case V_MODE: return "expected an octal mode such as 0644";
    case V_PATHSTYLE: return "expected auto, true or false";
    case V_SSE: return "expected AES256, aws:kms or sse-c";
    case V_ID: return "expected a number";
    case V_LISTMETA: return "expected none, small or all";
    case V_CONFLICTS: return "expected keep-both or overwrite";
    case V_ASOF: return "expected a UTC time (2026-11-11T12:00:00Z) or a duration before now (-24h)";
    case V_RANDFETCH: return "expected auto or off";
    default: return "bad value";
    }
}

/* Sets string key n (V_STR) of c (global) or m (mapping). */
static int apply_string(struct bfs_config *c, struct bfs_mapping *m,
                        struct bfs_conn_settings *conn, const char *n, const char *v)
{
    if (*v == '\0')
        return -EINVAL;
    if (!strcmp(n, "region")) return set_str(&conn->region, v);
    if (!strcmp(n, "endpoint")) return strstr(v, "://") ? set_str(&conn->endpoint, v) : -EINVAL;
    if (!strcmp(n, "profile")) return set_str(&conn->profile, v);
    if (!strcmp(n, "bucket")) return set_str(&m->bucket, v);
    if (!strcmp(n, "prefix")) return set_prefix(&m->prefix, v);
    if (!strcmp(n, "sse_kms_key_id")) return set_str(&m->sse_kms_key_id, v);
    if (!strcmp(n, "sse_c_key_file")) return set_str(&m->sse_c_key_file, v);
    if (!strcmp(n, "storage_class"))
        return strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(v)
                   ? set_str(&m->storage_class, v) : -EINVAL;
    if (!strcmp(n, "access_key")) return set_str(&c->access_key, v);
    if (!strcmp(n, "secret_key")) return set_str(&c->secret_key, v);
    if (!strcmp(n, "session_token")) return set_str(&c->session_token, v);
    if (!strcmp(n, "passwd_file")) return set_str(&c->passwd_file, v);
    if (!strcmp(n, "ca_file")) return set_str(&c->ca_file, v);
    if (!strcmp(n, "cache_dir")) return set_str(&c->cache_dir, v);
    return -EINVAL;
}

/* The words of list_meta. */
static int parse_list_meta(const char *v, int *out)
{
    if (!strcmp(v, "none"))
        *out = BFS_LIST_META_NONE;
    else if (!strcmp(v, "small"))
        *out = BFS_LIST_META_SMALL;
    else if (!strcmp(v, "all"))
        *out = BFS_LIST_META_ALL;
    else if (!strcmp(v, "auto"))
        *out = BFS_LIST_META_AUTO;
    else
        return -EINVAL;
    return 0;
}

/* Parses v for k into the right field of c (global) or m (mapping). */
static int apply(struct bfs_config *c, struct bfs_mapping *m, const struct key *k,
                 const char *v)
{
    struct bfs_conn_settings *conn = m ? &m->conn : &c->conn;
    const char *n = k->name;
    int64_t i64;
    uint64_t u64;
    int b, r = 0;

    switch (k->type) {
    case V_BOOL:
        if ((r = bfs_parse_bool(v, &b)) < 0)
            return r;
        if (!strcmp(n, "read_only")) *(m ? &m->read_only : &c->read_only) = b;
        else if (!strcmp(n, "anonymous")) c->anonymous = b;
        else if (!strcmp(n, "insecure")) c->insecure = b;
        else if (!strcmp(n, "allow_other")) c->allow_other = b;
        else if (!strcmp(n, "default_permissions")) c->default_permissions = b;
        else if (!strcmp(n, "sync_upload")) c->sync_upload = b;
        return 0;
    case V_SIZE:
        if ((r = bfs_parse_size(v, &u64)) < 0)
            return r;
        if (!strcmp(n, "block_size")) {
            if (u64 < 64 * 1024 || u64 > 64u << 20 || (u64 & (u64 - 1)))
                return -EINVAL; /* a power of two, 64K..64M */
            c->block_size = (uint32_t)u64;
        } else {
            c->cache_size = u64;
        }
        return 0;
    case V_DURATION:
        if (!strcmp(n, "upload_delay"))
            return bfs_parse_duration_ms(v, &c->upload_delay_ms) < 0 ||
                           c->upload_delay_ms > 3600 * 1000 ? -EINVAL : 0;
        if (!strcmp(n, "upload_retry_max"))
            return bfs_parse_duration(v, &c->upload_retry_max) < 0 || c->upload_retry_max < 1
                       ? -EINVAL : 0;
        if (!strcmp(n, "revalidate"))
            return bfs_parse_duration_ms(v, &c->revalidate_ms) < 0 ||
                           c->revalidate_ms > 3600 * 1000 ? -EINVAL : 0;
        if (!strcmp(n, "request_timeout"))
            return bfs_parse_duration_ms(v, &c->request_timeout_ms) < 0 ||
                           c->request_timeout_ms < 1000 || c->request_timeout_ms > 3600 * 1000
                       ? -EINVAL : 0;
        return bfs_parse_duration(v, &c->metadata_ttl);
    case V_INT:
        if ((r = bfs_parse_int(v, 1, 1024, &i64)) < 0)
            return r;
        *(!strcmp(n, "read_ahead") ? &c->read_ahead : &c->max_connections) = (int)i64;
        return 0;
    case V_ID:
        if ((r = bfs_parse_int(v, 0, UINT32_MAX - 1, &i64)) < 0)
            return r;
        if (!strcmp(n, "uid")) c->uid = (uid_t)i64;
        else c->gid = (gid_t)i64;
        return 0;
    case V_MODE:
        return parse_mode(v, !strcmp(n, "file_mode") ? &c->file_mode
                             : !strcmp(n, "dir_mode") ? &c->dir_mode : &c->umask);
    case V_PATHSTYLE:
        if (!strcmp(v, "auto")) {
            conn->path_style = -1;
            return 0;
        }
        if ((r = bfs_parse_bool(v, &b)) < 0)
            return r;
        conn->path_style = b;
        return 0;
    case V_LISTMETA:
        return parse_list_meta(v, &c->list_meta);
    case V_CONFLICTS:
        if (strcmp(v, "keep-both") && strcmp(v, "overwrite"))
            return -EINVAL;
        *(m ? &m->conflicts : &c->conflicts) =
            !strcmp(v, "overwrite") ? BFS_CONFLICTS_OVERWRITE : BFS_CONFLICTS_KEEP_BOTH;
        return 0;
    case V_ASOF:
        return bfs_parse_time_spec(v, bfs_now_ns(), &m->as_of_ns) < 0 || m->as_of_ns <= 0
                   ? -EINVAL : 0;
    case V_RANDFETCH:
        if (strcmp(v, "auto") && strcmp(v, "off"))
            return -EINVAL;
        c->random_fetch = !strcmp(v, "auto");
        return 0;
    case V_SSE:
        if (!strcmp(v, "AES256") || !strcmp(v, "aws:kms") || !strcmp(v, "sse-c"))
            return set_str(&m->sse, v);
        return -EINVAL;
    case V_STR:
        break;
    }
    return apply_string(c, m, conn, n, v);
}

/* Sets one key; "where" prefixes any message. */
static int set_key(struct bfs_config *c, struct bfs_mapping *m, const char *key,
                   const char *value, const char *where, char *err, size_t errlen)
{
    const struct key *k = find_key(key);
    int ok_here, r;

    if (!k) {
        snprintf(err, errlen, "%s: unknown key '%s'", where, key);
        return -EINVAL;
    }
    ok_here = m ? (k->where & (K_MAP | K_CONN)) : (k->where & (K_GLOBAL | K_CONN));
    if (!ok_here) {
        snprintf(err, errlen, "%s: '%s' belongs in %s", where, key,
                 m ? "[global]" : "a mapping section");
        return -EINVAL;
    }
    r = apply(c, m, k, value);
    if (r == -ENOMEM) {
        snprintf(err, errlen, "%s: out of memory", where);
    } else if (r < 0) {
        /* the value of secret keys is not repeated back */
        int secret = !strcmp(key, "secret_key") || !strcmp(key, "session_token");
        snprintf(err, errlen, "%s: bad value %s%s%s for '%s' (%s)", where, secret ? "" : "'",
                 secret ? "(hidden)" : value, secret ? "" : "'", key, type_hint(k->type));
        return -EINVAL;
    }
    return r;
}

static int valid_map_name(const char *n)
{
    return *n && strlen(n) <= 255 && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

static struct bfs_mapping *new_map(struct bfs_config *c, const char *name, int line)
{
    struct bfs_mapping *maps = realloc(c->maps, (c->nmaps + 1) * sizeof(*maps)), *m;

    if (!maps)
        return NULL;
    c->maps = maps;
    m = &maps[c->nmaps];
    memset(m, 0, sizeof(*m));
    m->conn.path_style = -1;
    m->read_only = -1;
    m->conflicts = -1;
    m->line = line;
    m->name = strdup(name);
    m->prefix = strdup("");
    if (!m->name || !m->prefix) {
        map_done(m);
        return NULL;
    }
    c->nmaps++;
    return m;
}

struct load_ctx {
    struct bfs_config *c;
    struct bfs_mapping *cur; /* NULL while in [global] */
    int in_section;
    int secret_line;       /* first line holding a secret, 0 if none */
    const char *path;
    char *err;
    size_t errlen;
};

static int load_cb(void *ctx, const char *section, const char *key, const char *value,
                   int line)
{
    struct load_ctx *l = ctx;
    char where[PATH_MAX + 32];

    snprintf(where, sizeof(where), "%s:%d", l->path, line);
    if (!key) { /* a new section */
        l->in_section = 1;
        if (!strcmp(section, "global")) {
            l->cur = NULL;
            return 0;
        }
        if (!valid_map_name(section)) {
            snprintf(l->err, l->errlen, "%s: '%s' cannot be a directory name", where, section);
            return -EINVAL;
        }
        for (size_t i = 0; i < l->c->nmaps; i++) {
            if (!strcmp(l->c->maps[i].name, section)) {
                snprintf(l->err, l->errlen, "%s: mapping [%s] defined twice", where, section);
                return -EINVAL;
            }
        }
        l->cur = new_map(l->c, section, line);
        return l->cur ? 0 : -ENOMEM;
    }
    if (!l->in_section) {
        snprintf(l->err, l->errlen, "%s: '%s' is outside any [section]", where, key);
        return -EINVAL;
    }
    if (!l->secret_line && (!strcmp(key, "secret_key") || !strcmp(key, "session_token")))
        l->secret_line = line;
    return set_key(l->c, l->cur, key, value, where, l->err, l->errlen);
}

/* A file that holds a secret must be the owner's alone, as the s3fs passwd
 * file must: refused, not warned about, so that a mistake cannot go unseen
 * in a daemon's log (bucketfs.conf(5) "FILES"). */
static int check_secret_mode(const struct load_ctx *l)
{
    struct stat st;

    if (!l->secret_line || stat(l->path, &st) < 0 || !(st.st_mode & (S_IRWXG | S_IRWXO)))
        return 0;
    snprintf(l->err, l->errlen,
             "%s:%d: the file holds a secret but group or others may access it (mode %04o): "
             "chmod 600 %s",
             l->path, l->secret_line, (unsigned)(st.st_mode & 07777), l->path);
    return -EACCES;
}

int bfs_config_load(struct bfs_config *c, const char *path, char *err, size_t errlen)
{
    struct load_ctx l = {.c = c, .path = path, .err = err, .errlen = errlen};
    int r = bfs_ini_parse_file(path, load_cb, &l, err, errlen);

    return r < 0 ? r : check_secret_mode(&l);
}

/* Options of mount(8), fstab and libfuse that are passed on or ignored. */
static const char *const fuse_pass[] = {"allow_root", "auto_unmount", "dev", "nodev", "suid",
                                        "nosuid", "exec", "noexec", "atime", "noatime",
                                        "async", "sync", "dirsync", NULL};
static const char *const fuse_pass_prefix[] = {"fsname=", "subtype=", "max_read=", NULL};
/* Generic mount(8)/fstab options with no meaning here: mount(8) and
 * mount.fuse3 pass some of them on (rw, _netdev, nofail, user, ...), and the
 * atime family is refused by libfuse 3.14 although bucketfs keeps no atime. */
static const char *const ignored[] = {
    "_netdev", "noauto", "auto", "nofail", "user", "users", "nouser", "owner", "group",
    "defaults", "rw", "relatime", "norelatime", "strictatime", "nostrictatime", "diratime",
    "nodiratime", "lazytime", "nolazytime", "iversion", "noiversion", "mand", "nomand",
    "silent", "loud", NULL};

static int in_list(const char *const *list, const char *item, int prefix)
{
    for (size_t i = 0; list[i]; i++)
        if (prefix ? !strncmp(item, list[i], strlen(list[i])) : !strcmp(item, list[i]))
            return 1;
    return 0;
}

static int add_fuse_opt(struct bfs_config *c, const char *item)
{
    struct bfs_buf b;

    bfs_buf_init(&b, 4096);
    if (bfs_buf_addf(&b, "%s%s%s", c->fuse_opts ? c->fuse_opts : "", c->fuse_opts ? "," : "",
                     item) < 0)
        return -ENOMEM;
    free(c->fuse_opts);
    c->fuse_opts = bfs_buf_steal(&b);
    return c->fuse_opts ? 0 : -ENOMEM;
}

int bfs_config_option(struct bfs_config *c, const char *item, char *err, size_t errlen)
{
    const char *eq = strchr(item, '=');
    char key[64], where[96];
    const struct key *k;

    if (in_list(ignored, item, 0) || !strncmp(item, "x-", 2) || !strncmp(item, "comment=", 8))
        return 0;
    if (in_list(fuse_pass, item, 0) || in_list(fuse_pass_prefix, item, 1))
        return add_fuse_opt(c, item);
    if (!strcmp(item, "ro"))
        item = "read_only";
    if (!strcmp(item, "debug")) {
        c->debug = c->foreground = 1;
        return 0;
    }
    snprintf(key, sizeof(key), "%.*s", (int)(eq ? (size_t)(eq - item) : strlen(item)), item);
    snprintf(where, sizeof(where), "-o %s", key);
    k = find_key(key);
    if (k && !eq && k->type == V_BOOL) /* a bare flag means true */
        return set_key(c, NULL, key, "true", where, err, errlen);
    if (!eq) {
        snprintf(err, errlen, "-o %s: unknown option", item);
        return -EINVAL;
    }
    return set_key(c, NULL, key, eq + 1, where, err, errlen);
}

/* "s3://bucket/prefix@TIME": a key may hold '@', so only a last '@' that
 * a time follows makes the view as of then. Cuts it from the bucket or
 * prefix it ended. */
static int split_as_of(struct bfs_mapping *m)
{
    char *s = m->prefix[0] ? m->prefix : m->bucket, *at = strrchr(s, '@');
    size_t n;

    if (!at || bfs_parse_time_spec(at + 1, bfs_now_ns(), &m->as_of_ns) < 0)
        return 0;
    if (m->as_of_ns <= 0 || at == m->bucket)
        return -EINVAL;
    *at = '\0';
    n = strlen(m->prefix);
    if (n > 0 && m->prefix[n - 1] != '/')
        return set_prefix(&m->prefix, m->prefix); /* it ends in '/' again */
    return 0;
}

int bfs_config_add_map(struct bfs_config *c, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '='), *url, *slash;
    struct bfs_mapping *m;
    char *name;
    int r;

    if (!eq || strncmp(eq + 1, "s3://", 5) != 0) {
        snprintf(err, errlen, "--map %s: expected NAME=s3://BUCKET[/PREFIX]", spec);
        return -EINVAL;
    }
    name = strndup(spec, (size_t)(eq - spec));
    if (!name)
        return -ENOMEM;
    url = eq + 6;
    slash = strchr(url, '/');
    if (!valid_map_name(name) || slash == url || !*url) {
        snprintf(err, errlen, "--map %s: bad name or bucket", spec);
        free(name);
        return -EINVAL;
    }
    for (size_t i = 0; i < c->nmaps; i++) {
        if (!strcmp(c->maps[i].name, name)) {
            snprintf(err, errlen, "--map %s: mapping '%s' defined twice", spec, name);
            free(name);
            return -EINVAL;
        }
    }
    m = new_map(c, name, 0);
    free(name);
    if (!m)
        return -ENOMEM;
    m->bucket = slash ? strndup(url, (size_t)(slash - url)) : strdup(url);
    r = m->bucket ? set_prefix(&m->prefix, slash ? slash + 1 : "") : -ENOMEM;
    if (r == 0)
        r = split_as_of(m);
    if (r < 0)
        snprintf(err, errlen, "--map %s: %s", spec, strerror(-r));
    return r;
}

/* ~/.cache/bucketfs/<mountpoint with '/' as '_'>, /var/cache for root. */
static int default_cache_dir(struct bfs_config *c, const char *mountpoint)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char real[PATH_MAX];
    struct bfs_buf b;

    if (!realpath(mountpoint, real))
        snprintf(real, sizeof(real), "%s", mountpoint);
    for (char *p = real; *p; p++)
        if (*p == '/')
            *p = '_';
    bfs_buf_init(&b, PATH_MAX);
    if (getuid() == 0)
        bfs_buf_addf(&b, "/var/cache/bucketfs/%s", real);
    else if (xdg && *xdg)
        bfs_buf_addf(&b, "%s/bucketfs/%s", xdg, real);
    else
        bfs_buf_addf(&b, "%s/.cache/bucketfs/%s", home ? home : "/tmp", real);
    c->cache_dir = bfs_buf_steal(&b);
    return c->cache_dir ? 0 : -ENOMEM;
}

int bfs_config_finish(struct bfs_config *c, const char *mountpoint, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->nmaps; i++) {
        struct bfs_mapping *m = &c->maps[i];

        if (!m->bucket) {
            snprintf(err, errlen, "mapping [%s]%s: no bucket given", m->name,
                     m->line ? "" : " (--map)");
            return -EINVAL;
        }
        if (m->read_only < 0 || m->as_of_ns)
            m->read_only = m->as_of_ns ? 1 : c->read_only; /* the past cannot change */
        if (m->conflicts < 0)
            m->conflicts = c->conflicts;
        /* aws:kms without a key id is allowed: S3 uses the AWS-managed key */
        if (m->sse && !strcmp(m->sse, "sse-c") && !m->sse_c_key_file) {
            snprintf(err, errlen, "mapping [%s]: sse = sse-c needs sse_c_key_file", m->name);
            return -EINVAL;
        }
        if (m->sse_c_key_file && !(m->sse && !strcmp(m->sse, "sse-c"))) {
            snprintf(err, errlen, "mapping [%s]: sse_c_key_file needs sse = sse-c", m->name);
            return -EINVAL;
        }
        if (m->sse_kms_key_id && !(m->sse && !strcmp(m->sse, "aws:kms"))) {
            snprintf(err, errlen, "mapping [%s]: sse_kms_key_id needs sse = aws:kms", m->name);
            return -EINVAL;
        }
    }
    if (c->access_key && !c->secret_key) {
        snprintf(err, errlen, "access_key is set but secret_key is not");
        return -EINVAL;
    }
    if (c->default_permissions < 0)
        c->default_permissions = c->allow_other;
    if (!c->cache_dir)
        return default_cache_dir(c, mountpoint);
    return 0;
}
