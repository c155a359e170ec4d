/* SPDX-License-Identifier: MIT */
/*
 * versions.c: `bucketfs versions [--json] PATH` lists the versions of a
 * file of a versioned bucket (version id, time, size, ETag, latest, delete
 * marker), and `bucketfs restore [--version ID | --at TIME] PATH` makes an
 * older one current again with a server-side copy.
 *
 * The daemon does the S3 work with its own credentials (fs/versions.c):
 * these commands ask PATH's directory, through one getxattr each of
 * user.bucketfs.versions/NAME or user.bucketfs.restore/SPEC/NAME, because
 * a deleted file has no inode of its own to ask. One call each: a restore
 * must not run twice for a size probe. When restore returns 0 the copy is
 * in S3 and the mount shows the restored content.
 *
 * Exit status: 0 done, 1 refused or failed (the reason is printed), 2
 * usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "cli-int.h"

#define XATTR_NAME_MAX_LEN 255 /* the kernel's limit on an attribute name */

struct opts {
    int json;
    const char *version, *at;
    const char *path;
};

static void usage(const char *cmd, FILE *out)
{
    if (!strcmp(cmd, "versions"))
        fprintf(out, "usage: bucketfs versions [--json] PATH\n"
                     "\n"
                     "Lists the versions of the object behind PATH (a file of a bucketfs\n"
                     "mount, or one deleted from it) in a bucket with versioning: newest\n"
                     "first, with version id, time, size, ETag, which is the latest, and\n"
                     "delete markers.\n"
                     "\n"
                     "  -j, --json   the daemon's answer as JSON\n"
                     "  -h, --help\n");
    else
        fprintf(out, "usage: bucketfs restore [--version ID | --at TIME] PATH\n"
                     "\n"
                     "Makes an older version of PATH current again with a server-side copy\n"
                     "(a new version with the old content); works for a deleted file too.\n"
                     "Without an option: the newest version that is not the latest (for a\n"
                     "deleted file, the one before the delete). Returns once the copy is in\n"
                     "S3; the mount shows it at once.\n"
                     "\n"
                     "  -v, --version ID   that version (see bucketfs versions)\n"
                     "  -a, --at TIME      the version current at TIME: 2026-11-11T12:00:00Z\n"
                     "                     (UTC), or a duration before now: -24h, -30m\n"
                     "  -h, --help\n");
}

static int parse_args(const char *cmd, int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"json", 0, 0, 'j'}, {"version", 1, 0, 'v'},
                                       {"at", 1, 0, 'a'},   {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int restore = !strcmp(cmd, "restore"), ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, restore ? "v:a:h" : "jh", lo, NULL)) != -1) {
        if (ch == 'h') {
            usage(cmd, stdout);
            return 0;
        }
        if (ch == '?' || (restore && ch == 'j') || (!restore && ch != 'j')) {
            usage(cmd, stderr);
            return 2;
        }
        if (ch == 'j')
            o->json = 1;
        else if (ch == 'v')
            o->version = optarg;
        else
            o->at = optarg;
    }
    if (argc - optind != 1 || (o->version && o->at)) {
        fprintf(stderr, "bucketfs %s: %s\n", cmd,
                o->version && o->at ? "--version and --at exclude each other"
                : argc == optind    ? "no file given" : "too many arguments");
        usage(cmd, stderr);
        return 2;
    }
    o->path = argv[optind];
    return -1;
}

/* PATH's directory and last name, for asking the directory. */
static int split_path(const char *cmd, const char *path, char **ret_dir, char **ret_name)
{
    size_t n = strlen(path);
    const char *slash;

    while (n > 1 && path[n - 1] == '/')
        n--;
    slash = memrchr(path, '/', n);
    *ret_name = slash ? strndup(slash + 1, n - (size_t)(slash + 1 - path)) : strndup(path, n);
    *ret_dir = !slash ? strdup(".") : slash == path ? strdup("/")
                                                    : strndup(path, (size_t)(slash - path));
    if (!*ret_dir || !*ret_name || !**ret_name || !strcmp(*ret_name, ".") ||
        !strcmp(*ret_name, "..")) {
        fprintf(stderr, "bucketfs %s: ", cmd);
        cli_put_safe(stderr, path);
        fprintf(stderr, ": not a file name\n");
        free(*ret_dir);
        free(*ret_name);
        return -1;
    }
    return 0;
}

static void explain(const char *cmd, const char *path, int err)
{
    fprintf(stderr, "bucketfs %s: ", cmd);
    cli_put_safe(stderr, path);
    if (err == ENODATA || err == ENOTSUP)
        fprintf(stderr, ": not on a bucketfs mount, or its daemon does not know versions "
                        "(remount with this version)\n");
    else if (err == ENOTDIR || err == EPERM)
        fprintf(stderr, ": not a file inside a mapping of a bucketfs mount\n");
    else
        fprintf(stderr, ": %s\n", strerror(err));
}

/* Asks the daemon; returns its parsed answer, or the exit status. */
static int ask(const char *cmd, const struct opts *o, const char *spec, struct bfs_json **ret)
{
    char *dir = NULL, *name = NULL, *text = NULL;
    struct bfs_buf x;
    ssize_t n;
    int rc = 1;

    if (split_path(cmd, o->path, &dir, &name) < 0)
        return 1;
    bfs_buf_init(&x, 4096);
    if (bfs_buf_addf(&x, "user.bucketfs.%s/%s%s%s", cmd, spec ? spec : "", spec ? "/" : "",
                     name) < 0 || x.len > XATTR_NAME_MAX_LEN) {
        fprintf(stderr, "bucketfs %s: the name of ", cmd);
        cli_put_safe(stderr, o->path);
        fprintf(stderr, " is too long to ask the mount about (at most %zu bytes here)\n",
                XATTR_NAME_MAX_LEN - (x.len - strlen(name)));
    } else if ((n = cli_getxattr(dir, bfs_buf_str(&x), &text)) < 0) {
        explain(cmd, o->path, (int)-n);
    } else if (bfs_json_parse(text, (size_t)n, 0, CLI_JSON_DEPTH, ret) < 0) {
        fprintf(stderr, "bucketfs %s: the mount's answer is malformed\n", cmd);
    } else if (bfs_json_get(*ret, "error")) {
        fprintf(stderr, "bucketfs %s: ", cmd);
        cli_put_safe(stderr, o->path);
        fprintf(stderr, ": ");
        cli_put_safe(stderr, bfs_json_str(*ret, "error"));
        fprintf(stderr, "\n");
        bfs_json_free(*ret);
        *ret = NULL;
    } else {
        rc = 0;
        if (o->json)
            printf("%s\n", text);
    }
    bfs_buf_done(&x);
    free(text);
    free(dir);
    free(name);
    return rc;
}

static int flag(const struct bfs_json *v, const char *name)
{
    const struct bfs_json *f = bfs_json_get(v, name);

    return f && f->type == BFS_JSON_BOOL && f->boolean;
}

static void print_version(const struct bfs_json *v)
{
    char size[32];

    cli_fmt_bytes(bfs_json_u64(v, "size"), size);
    cli_put_safe(stdout, bfs_json_str(v, "version_id"));
    printf("  %s  %10s  %-34s  %s%s\n", bfs_json_str(v, "last_modified"),
           flag(v, "delete_marker") ? "-" : size,
           flag(v, "delete_marker") ? "(delete marker)" : bfs_json_str(v, "etag"),
           flag(v, "latest") ? "latest" : "",
           flag(v, "delete_marker") && flag(v, "latest") ? " (deleted)" : "");
}

int cli_versions(int argc, char **argv)
{
    struct opts o = {0};
    struct bfs_json *j = NULL;
    const struct bfs_json *vs;
    int rc = parse_args("versions", argc, argv, &o);

    if (rc >= 0)
        return rc;
    if ((rc = ask("versions", &o, NULL, &j)) != 0 || o.json) {
        bfs_json_free(j);
        return rc;
    }
    vs = bfs_json_get(j, "versions");
    if (!vs || !vs->child)
        printf("no versions (is versioning enabled on the bucket?)\n");
    for (const struct bfs_json *v = vs ? vs->child : NULL; v; v = v->next)
        print_version(v);
    if (flag(j, "truncated"))
        printf("(%llu versions in all; the oldest are not shown)\n",
               (unsigned long long)bfs_json_u64(j, "count"));
    bfs_json_free(j);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cli_restore(int argc, char **argv)
{
    struct opts o = {0};
    struct bfs_json *j = NULL;
    const struct bfs_json *v;
    char spec[160];
    int64_t at;
    int rc = parse_args("restore", argc, argv, &o);

    if (rc >= 0)
        return rc;
    if (o.at && bfs_parse_time_spec(o.at, bfs_now_ns(), &at) < 0) {
        fprintf(stderr, "bucketfs restore: --at ");
        cli_put_safe(stderr, o.at);
        fprintf(stderr, ": expected a UTC time (2026-11-11T12:00:00Z) or a duration before "
                        "now (-24h)\n");
        return 2;
    }
    if (o.version && (strlen(o.version) > 128 || strchr(o.version, '/') || !*o.version)) {
        fprintf(stderr, "bucketfs restore: --version: not a version id\n");
        return 2;
    }
    if (o.version)
        snprintf(spec, sizeof(spec), "version=%s", o.version);
    else if (o.at)
        snprintf(spec, sizeof(spec), "at=%lld", (long long)at);
    else
        snprintf(spec, sizeof(spec), "previous");
    if ((rc = ask("restore", &o, spec, &j)) != 0)
        return rc;
    v = bfs_json_get(j, "restored");
    printf("restored ");
    cli_put_safe(stdout, o.path);
    printf(" to version ");
    cli_put_safe(stdout, bfs_json_str(v, "version_id"));
    printf(" of %s (%llu bytes)\n", bfs_json_str(v, "last_modified"),
           (unsigned long long)bfs_json_u64(v, "size"));
    bfs_json_free(j);
    return fflush(stdout) == 0 ? 0 : 1;
}
