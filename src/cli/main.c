/* SPDX-License-Identifier: MIT */
/*
 * main.c: the bucketfs command: options, config, and the life of a mount.
 *
 * Order matters around fork: everything that checks the user's input (the
 * config, the credentials, reaching each bucket, the mount itself) runs in
 * the first process, so that a failure is a message and a non-zero exit.
 * Threads and SQLite connections must not cross fork(), so the checking
 * filesystem is torn down before daemonizing and made again in the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "bfs-config.h"
#include "bucketfs/cli.h"
#include "bucketfs/config.h"
#include "bucketfs/fs.h"
#include "bucketfs/fuse.h"
#include "bucketfs/s3.h"
#include "bucketfs/store.h"
#include "bucketfs/util.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bucketfs [options] [CONFIG] MOUNTPOINT\n"
            "       bucketfs status [--json] MOUNTPOINT\n"
            "       bucketfs sync [--quiet] [--timeout DURATION] MOUNTPOINT [PATH]\n"
            "       bucketfs presign [--expires DURATION] [--no-wait] [--timeout DURATION] PATH\n"
            "       bucketfs prefetch [--quiet] [--jobs N] PATH...\n"
            "       bucketfs versions [--json] PATH\n"
            "       bucketfs restore [--version ID | --at TIME] PATH\n"
            "\n"
            "Mounts S3 buckets (or prefixes of them) as directories of one tree.\n"
            "\n"
            "  -c, --config FILE        INI config file (see bucketfs.conf(5))\n"
            "      --map NAME=s3://BUCKET[/PREFIX][@TIME]\n"
            "                           add a mapping directory NAME (repeatable); with\n"
            "                           no mapping the root lists every bucket; @TIME\n"
            "                           (2026-11-11T12:00:00Z, or -24h before now) shows a\n"
            "                           versioned bucket read-only as it was then\n"
            "  -o OPT[,OPT...]          config keys as key=value, and mount options:\n"
            "                           ro, allow_other, default_permissions, uid=, gid=,\n"
            "                           file_mode=, dir_mode=, umask=, cache_dir=,\n"
            "                           cache_size=, metadata_ttl=, endpoint=, region=, ...\n"
            "  -f, --foreground         stay in the foreground, log to stderr\n"
            "  -d, --debug              debug log (every S3 request); implies -f\n"
            "  -s                       serve requests from one thread\n"
            "  -h, --help               this text\n"
            "  -V, --version            the version\n"
            "\n"
            "Subcommands (each takes --help), for a running mount:\n"
            "  status     cache use, pending and failed uploads with progress, requests\n"
            "  sync       wait until what was written (under PATH) is in S3\n"
            "  presign    print a presigned GET URL for a file (default 1h, at most 7d),\n"
            "             once its pending upload is done\n"
            "  prefetch   fill the block cache with files or trees, within cache_size\n"
            "  versions   list a file's versions (versioned buckets)\n"
            "  restore    make an older version of a file current again (server-side copy)\n"
            "\n"
            "Unmount with: fusermount3 -u MOUNTPOINT\n");
}

struct cli {
    struct bfs_config cfg;
    const char *config_file;
    const char *source;    /* the mount's source (fsname), as fstab names it */
    const char *mountpoint;
    int single_thread;
};

static int fail(const char *msg)
{
    fprintf(stderr, "bucketfs: %s\n", msg);
    return 1;
}

static int parse_o(struct cli *c, const char *arg, char *err, size_t errlen)
{
    char *copy = strdup(arg), *save = NULL, *item;
    int r = 0;

    if (!copy)
        return -ENOMEM;
    for (item = strtok_r(copy, ",", &save); item && r == 0; item = strtok_r(NULL, ",", &save))
        r = bfs_config_option(&c->cfg, item, err, errlen);
    free(copy);
    return r;
}

/* The first of two positional arguments: the source field of an fstab line,
 * which mount.fuse3 passes first. A config file; "none" or "bucketfs" for
 * none (everything comes from -o); or s3://BUCKET[/PREFIX], one mapping
 * named after the bucket (bucketfs(1) "FSTAB"). */
static int use_source(struct cli *c, const char *src, char *err, size_t errlen)
{
    c->source = src;
    if (!strcmp(src, "none") || !strcmp(src, "bucketfs"))
        return 0;
    if (!strncmp(src, "s3://", 5)) {
        struct bfs_buf spec;
        int r;

        if (strcspn(src + 5, "/") == 0) {
            snprintf(err, errlen, "%s: expected s3://BUCKET[/PREFIX]", src);
            return -EINVAL;
        }
        bfs_buf_init(&spec, 8192);
        if (bfs_buf_addf(&spec, "%.*s=%s", (int)strcspn(src + 5, "/"), src + 5, src) < 0)
            return -ENOMEM;
        r = bfs_config_add_map(&c->cfg, bfs_buf_str(&spec), err, errlen);
        bfs_buf_done(&spec);
        return r;
    }
    if (c->config_file) {
        snprintf(err, errlen, "config file given twice");
        return -EINVAL;
    }
    c->config_file = src;
    return 0;
}

/* [CONFIG] MOUNTPOINT: at most two positional arguments. */
static int add_pos(const char *pos[2], int *npos, const char *arg, char *err, size_t errlen)
{
    if (*npos == 2) {
        snprintf(err, errlen, "too many arguments (see bucketfs --help)");
        return -EINVAL;
    }
    pos[(*npos)++] = arg;
    return 0;
}

/* Returns 0 to go on, or an exit status + 1000 to stop (help, version).
 * Options may follow the positional arguments, as mount.fuse3 puts them
 * ("bucketfs SOURCE DIR -o OPTS"); the leading '-' of the option string
 * keeps that so even under POSIXLY_CORRECT. */
static int parse_args(int argc, char **argv, struct cli *c, char *err, size_t errlen)
{
    enum { OPT_MAP = 256 };
    static const struct option lo[] = {
        {"config", 1, 0, 'c'}, {"map", 1, 0, OPT_MAP}, {"foreground", 0, 0, 'f'},
        {"debug", 0, 0, 'd'}, {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
    const char *pos[2] = {NULL, NULL};
    int npos = 0, ch, r;

    /* -o items are applied after the config file, so they override it */
    char **oargs = calloc((size_t)argc, sizeof(char *));
    int no = 0;

    if (!oargs)
        return -ENOMEM;
    r = 0;
    while (r == 0 && (ch = getopt_long(argc, argv, "-c:o:fdshV", lo, NULL)) != -1) {
        switch (ch) {
        case 1: r = add_pos(pos, &npos, optarg, err, errlen); break; /* in order */
        case 'c': c->config_file = optarg; break;
        case 'o': oargs[no++] = optarg; break;
        case 'f': c->cfg.foreground = 1; break;
        case 'd': c->cfg.debug = c->cfg.foreground = 1; break;
        case 's': c->single_thread = 1; break;
        case 'h': usage(stdout); r = 1000; break;
        case 'V': printf("bucketfs %s\n", BFS_VERSION); r = 1000; break;
        case OPT_MAP: r = bfs_config_add_map(&c->cfg, optarg, err, errlen); break;
        default: snprintf(err, errlen, "unknown option (see bucketfs --help)"); r = -EINVAL;
        }
    }
    for (int i = optind; r == 0 && i < argc; i++) /* after "--" */
        r = add_pos(pos, &npos, argv[i], err, errlen);
    if (r == 0 && npos == 0) {
        snprintf(err, errlen, "no mount point given (see bucketfs --help)");
        r = -EINVAL;
    }
    if (r == 0) {
        c->mountpoint = pos[npos - 1];
        if (npos == 2)
            r = use_source(c, pos[0], err, errlen);
        else
            c->source = c->config_file;
    }
    if (r == 0 && c->config_file)
        r = bfs_config_load(&c->cfg, c->config_file, err, errlen);
    for (int i = 0; r == 0 && i < no; i++)
        r = parse_o(c, oargs[i], err, errlen);
    free(oargs);
    if (r == 0)
        r = bfs_config_finish(&c->cfg, c->mountpoint, err, errlen);
    return r;
}

/* The -o string for libfuse. The source becomes fsname, so that mount(8)
 * and findmnt show the fstab line's source and "mount -a" knows the line is
 * mounted already; libfuse reads '\\' as an escape in option values. */
static char *fuse_options(const struct cli *c)
{
    const struct bfs_config *cfg = &c->cfg;
    const char *src = c->source ? c->source : "bucketfs";
    struct bfs_buf b;
    int r = 0;

    bfs_buf_init(&b, 16384);
    r |= bfs_buf_adds(&b, "fsname=");
    for (; *src && r == 0; src++)
        r |= bfs_buf_addf(&b, "%s%c", *src == ',' || *src == '\\' ? "\\" : "", *src);
    if (r < 0)
        return NULL; /* a source over the cap: the buffer freed itself */
    bfs_buf_adds(&b, ",subtype=bucketfs");
    if (cfg->allow_other)
        bfs_buf_adds(&b, ",allow_other");
    if (cfg->default_permissions)
        bfs_buf_adds(&b, ",default_permissions");
    if (cfg->read_only)
        bfs_buf_adds(&b, ",ro");
    if (cfg->fuse_opts)
        bfs_buf_addf(&b, ",%s", cfg->fuse_opts);
    return bfs_buf_steal(&b);
}

/* Makes store + fs; with check, also proves every bucket answers. */
static int open_fs(struct cli *c, int check, struct bfs_store **st, struct bfs_fs **fs,
                   char *err, size_t errlen)
{
    int r = bfs_store_open(c->cfg.cache_dir, c->cfg.cache_size, st, err, errlen);

    if (r == 0)
        r = bfs_fs_new(&c->cfg, *st, !check, fs, err, errlen);
    if (r == 0 && check)
        r = bfs_fs_check(*fs, err, errlen);
    return r;
}

static void close_fs(struct bfs_store **st, struct bfs_fs **fs)
{
    bfs_fs_free(*fs);
    *fs = NULL;
    bfs_store_close(*st);
    *st = NULL;
}

/* One mount per cache directory: two daemons on one upload journal would
 * recover and upload the same files twice. This happens easily, since a
 * second "mount DIR" of an fstab line stacks a second FUSE mount on the
 * first. The lock (flock on CACHE_DIR/lock) is taken before the mount, is
 * inherited by the daemon across fork and ends with it. -ENOENT while the
 * directory does not exist yet (nobody can be using it). */
static int lock_cache_dir(const char *dir, int *ret_fd, char *err, size_t errlen)
{
    struct bfs_buf path;
    int fd, e;

    bfs_buf_init(&path, 8192);
    if (bfs_buf_addf(&path, "%s/lock", dir) < 0)
        return -ENAMETOOLONG;
    fd = open(bfs_buf_str(&path), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    e = errno;
    bfs_buf_done(&path);
    if (fd < 0 && e == ENOENT)
        return -ENOENT;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s/lock: %s", dir, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        e = errno;
        close(fd);
        if (e != EWOULDBLOCK) {
            snprintf(err, errlen, "cannot lock %s/lock: %s", dir, strerror(e));
            return -e;
        }
        snprintf(err, errlen, "cache directory %s is in use by another bucketfs mount (is "
                 "this one mounted already?); give each mount its own cache_dir", dir);
        return -EBUSY;
    }
    *ret_fd = fd;
    return 0;
}

static int mount_and_serve(struct cli *c)
{
    struct bfs_store *st = NULL;
    struct bfs_fs *fs = NULL;
    struct bfs_fuse *fu = NULL;
    struct bfs_fs_tops *tops = NULL; /* what the check learnt, for the daemon */
    char err[1024] = "", *opts = NULL;
    int r, lockfd = -1;

    r = lock_cache_dir(c->cfg.cache_dir, &lockfd, err, sizeof(err));
    if (r == 0 || r == -ENOENT)
        r = open_fs(c, 1, &st, &fs, err, sizeof(err));
    if (r == 0)
        tops = bfs_fs_tops_take(fs);
    close_fs(&st, &fs);
    if (r == 0 && lockfd < 0) /* open_fs made the directory */
        r = lock_cache_dir(c->cfg.cache_dir, &lockfd, err, sizeof(err));
    if (r < 0) {
        bfs_fs_tops_give(NULL, tops);
        if (lockfd >= 0)
            close(lockfd);
        return fail(err[0] ? err : strerror(-r));
    }
    opts = fuse_options(c);
    r = opts ? bfs_fuse_new(opts, &fu, err, sizeof(err)) : -ENOMEM;
    free(opts);
    if (r == 0)
        r = bfs_fuse_mount(fu, c->mountpoint, err, sizeof(err));
    if (r < 0) {
        bfs_fs_tops_give(NULL, tops);
        bfs_fuse_free(fu);
        close(lockfd);
        return fail(err[0] ? err : strerror(-r));
    }
    if (!c->cfg.foreground)
        bfs_log_setup(c->cfg.debug ? BFS_LOG_DEBUG : BFS_LOG_INFO, 1);
    if (fuse_daemonize(c->cfg.foreground) != 0) {
        bfs_fs_tops_give(NULL, tops);
        bfs_fuse_free(fu);
        close(lockfd);
        return fail("cannot daemonize");
    }
    r = open_fs(c, 0, &st, &fs, err, sizeof(err));
    bfs_fs_tops_give(r == 0 ? fs : NULL, tops);
    if (r < 0) {
        bfs_err("%s", err[0] ? err : strerror(-r));
        bfs_fuse_free(fu);
        close_fs(&st, &fs);
        close(lockfd);
        return 1;
    }
    bfs_info("mounted %zu mapping(s) on %s, cache %s", c->cfg.nmaps, c->mountpoint,
             c->cfg.cache_dir);
    r = bfs_fuse_run(fu, fs, c->single_thread);
    bfs_info("unmounting %s", c->mountpoint);
    bfs_fuse_free(fu);
    bfs_fs_drain(fs); /* what close() returned for reaches S3 before we exit */
    close_fs(&st, &fs);
    close(lockfd);
    return r < 0 ? 1 : 0;
}

/* Overwrites the values of secret options in argv, so that ps and
 * /proc/PID/cmdline do not show them (SPEC.md "Credentials"). */
static void hide_secrets(int argc, char **argv)
{
    static const char *const names[] = {"secret_key=", "session_token=", NULL};

    for (int i = 1; i < argc; i++) {
        for (size_t k = 0; names[k]; k++) {
            for (char *p = strstr(argv[i], names[k]); p; p = strstr(p, names[k])) {
                p += strlen(names[k]);
                while (*p && *p != ',')
                    *p++ = '*';
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    char err[1024] = "";
    int r;

    if (argc > 1 && (r = bfs_cli_subcommand(argc - 1, argv + 1)) >= 0)
        return r; /* status, sync, presign: ask a running mount */
    bfs_config_init(&c.cfg);
    r = parse_args(argc, argv, &c, err, sizeof(err));
    hide_secrets(argc, argv);
    if (r >= 1000) {
        bfs_config_done(&c.cfg);
        return r - 1000;
    }
    if (r < 0) {
        bfs_config_done(&c.cfg);
        return fail(err[0] ? err : strerror(-r));
    }
    bfs_log_setup(c.cfg.debug ? BFS_LOG_DEBUG : BFS_LOG_INFO, 0);
    if (bfs_s3_global_init() < 0) {
        bfs_config_done(&c.cfg);
        return fail("cannot initialize libcurl");
    }
    umask(077); /* the cache directory is the mounting user's only */
    r = mount_and_serve(&c);
    bfs_config_done(&c.cfg);
    return r;
}
