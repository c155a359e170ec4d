/* SPDX-License-Identifier: MIT */
/*
 * presign.c: `bucketfs presign [--expires DURATION] PATH`: prints a
 * presigned GET URL for a file of a mounted tree, which curl or a browser
 * can download without credentials until it expires.
 *
 * The daemon signs (getxattr user.bucketfs.presign.SECS on the file), so
 * this process never holds a secret. The URL is a bearer token for the
 * object: it is printed on stdout only, never logged.
 *
 * Exit status: 0 URL printed, 1 the file cannot be presigned (not in S3
 * yet, a directory, not on a bucketfs mount, anonymous mount, SSE-C), 2 usage
 * (including an expiry outside 1 s .. 7 days, the limit of SigV4).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/s3.h"
#include "bucketfs/util.h"
#include "cli-int.h"

#define DEFAULT_EXPIRES 3600

static void usage(FILE *out)
{
    fprintf(out, "usage: bucketfs presign [--expires DURATION] PATH\n"
                 "\n"
                 "Prints a presigned GET URL for the S3 object behind PATH, a file of a\n"
                 "bucketfs mount. Anyone holding the URL can download the object until it\n"
                 "expires.\n"
                 "\n"
                 "  -e, --expires DURATION   validity: 30s, 15m, 1h (default), 7d; at most\n"
                 "                           7d (604800 s), at least 1s\n"
                 "  -h, --help\n");
}

static int parse_expires(const char *s, int64_t *ret)
{
    int64_t v;
    int r = bfs_parse_duration(s, &v);

    if (r == -EINVAL) {
        fprintf(stderr, "bucketfs presign: --expires ");
        cli_put_safe(stderr, s);
        fprintf(stderr, ": not a duration (examples: 30s, 15m, 1h, 7d)\n");
        return -1;
    }
    if (r < 0 || v > BFS_S3_PRESIGN_MAX) {
        fprintf(stderr, "bucketfs presign: --expires ");
        cli_put_safe(stderr, s);
        fprintf(stderr,
                ": longer than 7 days (%d s), the most a presigned URL "
                "(SigV4) allows\n",
                BFS_S3_PRESIGN_MAX);
        return -1;
    }
    if (v < 1) {
        fprintf(stderr, "bucketfs presign: --expires must be at least 1s\n");
        return -1;
    }
    *ret = v;
    return 0;
}

/* Why the daemon refused, in the user's terms. */
static void explain(const char *path, int err)
{
    const char *why = NULL;
    char *root = NULL;

    switch (err) {
    case EISDIR:
        why = "is a directory: only files can be presigned";
        break;
    case EAGAIN:
        why = "has data not uploaded yet: run bucketfs sync, then presign";
        break;
    case ENOKEY:
        why = "is on an anonymous mount: there are no credentials to sign with";
        break;
    case ENOENT:
    case ENOTCONN:
    case EACCES:
    case EPERM:
        break;
    default:
        root = cli_bucketfs_root(path);
        if (!root)
            why = "is not on a bucketfs mount";
        else if (err == ENOTSUP)
            why = "is in an SSE-C mapping: a presigned URL cannot carry the encryption key";
        else if (err == ENODATA)
            why = "is on a mount whose bucketfs daemon does not presign (remount with this "
                  "version)";
    }
    free(root);
    if (!why) {
        cli_report_errno("presign", path, err);
        return;
    }
    fprintf(stderr, "bucketfs presign: ");
    cli_put_safe(stderr, path);
    fprintf(stderr, " %s\n", why);
}

int cli_presign(int argc, char **argv)
{
    static const struct option lo[] = {{"expires", 1, 0, 'e'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int64_t expires = DEFAULT_EXPIRES;
    char name[64], *url = NULL;
    ssize_t n;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "e:h", lo, NULL)) != -1) {
        if (ch == 'e' && parse_expires(optarg, &expires) == 0)
            continue;
        if (ch == 'h') {
            usage(stdout);
            return 0;
        }
        if (ch != 'e')
            usage(stderr);
        return 2;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "bucketfs presign: %s\n",
                argc == optind ? "no file given" : "too many arguments");
        usage(stderr);
        return 2;
    }
    snprintf(name, sizeof(name), "user.bucketfs.presign.%lld", (long long)expires);
    n = cli_getxattr(argv[optind], name, &url);
    if (n < 0) {
        explain(argv[optind], (int)-n);
        return 1;
    }
    printf("%s\n", url);
    free(url);
    return fflush(stdout) == 0 ? 0 : 1;
}
