/* SPDX-License-Identifier: MIT */
/*
 * presign.c: `bucketfs presign [--expires DURATION] [--no-wait]
 * [--timeout DURATION] [--quiet] PATH`: prints a presigned GET URL for a
 * file of a mounted tree, which curl or a browser can download without
 * credentials until it expires.
 *
 * The daemon signs (getxattr user.bucketfs.presign.SECS on the file), so
 * this process never holds a secret. The URL is a bearer token for the
 * object: it is printed on stdout only, never logged.
 *
 * A file closed but not uploaded yet makes the daemon answer EAGAIN: the
 * URL would name an older object or none. Then presign waits for that
 * file's upload exactly as `bucketfs sync MOUNT PATH` does
 * (cli_sync_wait: polling, sync's progress bar on a terminal, --timeout)
 * and asks again. A file still open for writing has no upload to wait for
 * (its data is journaled at close), so it is refused at once: the daemon's
 * report of the file (user.bucketfs.uploads) lists it as "open". With
 * --no-wait a pending file is refused as before.
 *
 * Exit status: 0 URL printed, 1 the file cannot be presigned (open for
 * writing, not in S3 yet with --no-wait, its upload failed or was not done
 * at --timeout, a directory, not on a bucketfs mount, anonymous mount,
 * SSE-C), 2 usage (including an expiry outside 1 s .. 7 days, the limit of
 * SigV4).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bucketfs/s3.h"
#include "bucketfs/util.h"
#include "cli-int.h"

#define DEFAULT_EXPIRES 3600
/* Asks after the upload looked done before giving up: a file rewritten
 * meanwhile, or the moment between the upload's journal row going and the
 * daemon noting the object's new ETag, when the report says done and
 * presign still pending. */
#define WAIT_ROUNDS 50
#define ROUND_PAUSE_MS 100

struct opts {
    int64_t expires, timeout_s;
    int no_wait, quiet;
    const char *path;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: bucketfs presign [--expires DURATION] [--no-wait] [--timeout DURATION]\n"
                 "                        [--quiet] PATH\n"
                 "\n"
                 "Prints a presigned GET URL for the S3 object behind PATH, a file of a\n"
                 "bucketfs mount. Anyone holding the URL can download the object until it\n"
                 "expires. A file closed but not uploaded yet is waited for first, as\n"
                 "bucketfs sync waits; a file still open for writing is refused.\n"
                 "\n"
                 "  -e, --expires DURATION   validity: 30s, 15m, 1h (default), 7d; at most\n"
                 "                           7d (604800 s), at least 1s\n"
                 "  -n, --no-wait            refuse a file whose upload is pending\n"
                 "  -t, --timeout DURATION   stop waiting for the upload after DURATION\n"
                 "                           (30s, 5m; default: never) and exit 1\n"
                 "  -q, --quiet              no progress bar while waiting (drawn only when\n"
                 "                           stderr is a terminal)\n"
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
        why = "has data not uploaded yet (--no-wait): run bucketfs sync, or presign "
              "without --no-wait";
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

/* Whether the daemon's report of the file path lists it as open with
 * unsaved writes: then there is no upload to wait for yet. */
static int open_for_writing(const char *path)
{
    struct bfs_json *up = NULL;
    int open = 0;

    if (cli_read_json(path, "user.bucketfs.uploads", &up) == 0)
        open = bfs_json_u64(up, "open") > 0;
    bfs_json_free(up);
    return open;
}

/* Asks the daemon for the URL, waiting for the file's upload while it
 * answers EAGAIN. Returns the exit status; prints the URL on success. */
static int sign(const struct opts *o)
{
    int64_t until_ms = o->timeout_s ? bfs_mono_ms() + o->timeout_s * 1000 : 0;
    char name[64], *url = NULL;
    ssize_t n;

    snprintf(name, sizeof(name), "user.bucketfs.presign.%lld", (long long)o->expires);
    for (int round = 0; (n = cli_getxattr(o->path, name, &url)) < 0; round++) {
        if (n == -EAGAIN && open_for_writing(o->path)) {
            fprintf(stderr, "bucketfs presign: ");
            cli_put_safe(stderr, o->path);
            fprintf(stderr, " is still open for writing: close it (its upload starts "
                            "then), then presign\n");
            return 1;
        }
        if (n != -EAGAIN || o->no_wait || round == WAIT_ROUNDS) {
            explain(o->path, (int)-n);
            return 1;
        }
        if (round)
            bfs_sleep_ms(ROUND_PAUSE_MS);
        if (cli_sync_wait("presign", o->path, !o->quiet && isatty(STDERR_FILENO), until_ms))
            return 1; /* cli_sync_wait named what failed or is left */
    }
    printf("%s\n", url);
    free(url);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"expires", 1, 0, 'e'}, {"no-wait", 0, 0, 'n'},
                                       {"timeout", 1, 0, 't'}, {"quiet", 0, 0, 'q'},
                                       {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "e:nt:qh", lo, NULL)) != -1) {
        if (ch == 'e' && parse_expires(optarg, &o->expires) == 0)
            continue;
        if (ch == 't' && cli_parse_timeout("presign", optarg, &o->timeout_s) == 0)
            continue;
        if (ch == 'n' || ch == 'q') {
            *(ch == 'n' ? &o->no_wait : &o->quiet) = 1;
            continue;
        }
        if (ch == 'h') {
            usage(stdout);
            return 0;
        }
        if (ch != 'e' && ch != 't')
            usage(stderr);
        return 2;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "bucketfs presign: %s\n",
                argc == optind ? "no file given" : "too many arguments");
        usage(stderr);
        return 2;
    }
    o->path = argv[optind];
    return -1;
}

int cli_presign(int argc, char **argv)
{
    struct opts o = {.expires = DEFAULT_EXPIRES};
    int rc = parse_args(argc, argv, &o);

    return rc >= 0 ? rc : sign(&o);
}
