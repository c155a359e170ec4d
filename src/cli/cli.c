/* SPDX-License-Identifier: MIT */
/*
 * cli.c: the subcommand table, and what the subcommands share: finding the
 * bucketfs mount that holds a path, asking it through its virtual extended
 * attributes, turning errno into messages, and formatting sizes and times.
 *
 * A bucketfs mount is recognised by its answer, not by its name in
 * /proc/self/mountinfo: only the root inode of a bucketfs mount answers
 * user.bucketfs.stats, whatever fsname or helper mounted it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "bucketfs/cli.h"
#include "bucketfs/util.h"
#include "cli-int.h"

#define XATTR_MAX (64u * 1024) /* the kernel's limit on one value */
#define BAR_WIDTH 30

int bfs_cli_subcommand(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } cmds[] = {{"status", cli_status},
                {"sync", cli_sync},
                {"presign", cli_presign},
                {"prefetch", cli_prefetch},
                {"versions", cli_versions},
                {"restore", cli_restore}};

    if (argc < 1 || !argv[0])
        return -1;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[0], cmds[i].name) == 0)
            return cmds[i].run(argc, argv);
    }
    return -1;
}

ssize_t cli_getxattr(const char *path, const char *name, char **ret)
{
    char *buf = malloc(XATTR_MAX + 1);
    ssize_t n;

    if (!buf)
        return -ENOMEM;
    n = getxattr(path, name, buf, XATTR_MAX);
    if (n < 0) {
        n = -errno;
        free(buf);
        return n;
    }
    buf[n] = '\0';
    *ret = buf;
    return n;
}

int cli_read_json(const char *path, const char *name, struct bfs_json **ret)
{
    char *text = NULL;
    ssize_t n = cli_getxattr(path, name, &text);
    int r;

    if (n < 0)
        return (int)n;
    r = bfs_json_parse(text, (size_t)n, 0, CLI_JSON_DEPTH, ret);
    free(text);
    return r;
}

/* Whether dir is the root of a bucketfs mount (it answers the stats). */
static int answers(const char *dir)
{
    return getxattr(dir, "user.bucketfs.stats", NULL, 0) >= 0;
}

char *cli_bucketfs_root(const char *path)
{
    char *p = realpath(path, NULL);
    struct stat st, up;

    if (!p || stat(p, &st) < 0) {
        free(p);
        return NULL;
    }
    /* climb while the parent is on the same device: p ends as the mount root */
    while (strcmp(p, "/") != 0) {
        char *slash = strrchr(p, '/');
        size_t plen = slash == p ? 1 : (size_t)(slash - p);
        char save = p[plen];

        p[plen] = '\0';
        if (stat(p, &up) < 0 || up.st_dev != st.st_dev) {
            p[plen] = save;
            break;
        }
    }
    if (!answers(p)) {
        free(p);
        return NULL;
    }
    return p;
}

void cli_report_errno(const char *cmd, const char *path, int err)
{
    fprintf(stderr, "bucketfs %s: ", cmd);
    cli_put_safe(stderr, path);
    if (err == ENOTCONN)
        fprintf(stderr,
                ": the bucketfs daemon of this mount is gone (%s); unmount it with "
                "fusermount3 -u\n",
                strerror(err));
    else
        fprintf(stderr, ": %s\n", strerror(err));
}

int cli_mount_check(const char *cmd, const char *mountpoint, dev_t *ret_dev)
{
    struct stat st;
    char *root;

    if (stat(mountpoint, &st) < 0) {
        cli_report_errno(cmd, mountpoint, errno);
        return -1;
    }
    if (getxattr(mountpoint, "user.bucketfs.stats", NULL, 0) >= 0) {
        *ret_dev = st.st_dev;
        return 0;
    }
    if (errno == ENOTCONN) {
        cli_report_errno(cmd, mountpoint, errno);
        return -1;
    }
    root = cli_bucketfs_root(mountpoint);
    fprintf(stderr, "bucketfs %s: ", cmd);
    cli_put_safe(stderr, mountpoint);
    if (root) {
        fprintf(stderr, " is inside the bucketfs mount ");
        cli_put_safe(stderr, root);
        fprintf(stderr, ", not its mount point\n");
    } else {
        fprintf(stderr, " is not a bucketfs mount point\n");
    }
    free(root);
    return -1;
}

void cli_bar_draw(const char *label, uint64_t done, uint64_t total, uint64_t files_left)
{
    char bar[BAR_WIDTH + 1], a[32], b[32];
    int fill;

    if (done > total)
        done = total;
    fill = total ? (int)(done * BAR_WIDTH / total) : BAR_WIDTH;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    cli_fmt_bytes(done, a);
    cli_fmt_bytes(total, b);
    fprintf(stderr, "\r\033[K%s [%s] %3d%%  %s of %s, %llu file%s left", label, bar,
            total ? (int)(done * 100 / total) : 100, a, b, (unsigned long long)files_left,
            files_left == 1 ? "" : "s");
    fflush(stderr);
}

void cli_bar_clear(void)
{
    fprintf(stderr, "\r\033[K");
}

int cli_parse_timeout(const char *cmd, const char *arg, int64_t *ret_s)
{
    int64_t v;

    if (bfs_parse_duration(arg, &v) < 0 || v <= 0) {
        fprintf(stderr, "bucketfs %s: bad --timeout '", cmd);
        cli_put_safe(stderr, arg);
        fprintf(stderr, "' (a duration such as 30s, 5m or 1h)\n");
        return -1;
    }
    *ret_s = v;
    return 0;
}

void cli_fmt_bytes(uint64_t n, char out[32])
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = -1;

    if (n < 1024) {
        snprintf(out, 32, "%llu B", (unsigned long long)n);
        return;
    }
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(out, 32, "%.1f %s", v, unit[u]);
}

void cli_fmt_secs(uint64_t s, char out[32])
{
    if (s < 60)
        snprintf(out, 32, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(out, 32, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(out, 32, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(out, 32, "%llud%lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
}

void cli_put_safe(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

void cli_put_conflict(FILE *f, const struct bfs_json *it)
{
    const char *kind = bfs_json_str(it, "kind"), *copy = bfs_json_str(it, "copy");

    cli_put_safe(f, bfs_json_str(it, "path"));
    if (strcmp(kind, "delete") == 0) {
        fprintf(f, ": changed by another writer before the delete here; its version "
                   "stays\n");
        return;
    }
    if (strcmp(kind, "rename") == 0)
        fprintf(f, ": changed by another writer before the rename here; its version "
                   "stays, and the rename copied it to ");
    else
        fprintf(f, ": changed by another writer first; its version stays, this mount's "
                   "is saved as ");
    cli_put_safe(f, copy);
    fprintf(f, "\n");
}
