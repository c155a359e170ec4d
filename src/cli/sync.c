/* SPDX-License-Identifier: MIT */
/*
 * sync.c: `bucketfs sync [--quiet] MOUNTPOINT [PATH]`: waits until every
 * file written and closed under PATH (the whole mount without it) is in S3.
 *
 * It polls user.bucketfs.sync of PATH (the daemon reports the journal
 * rows of that subtree, as user.bucketfs.uploads does, and first starts
 * the uploads that wait out upload_delay) instead of asking the daemon to
 * wait, so that no
 * FUSE thread is held for minutes and Ctrl-C simply stops waiting. The
 * uploads go on in the daemon either way.
 *
 * Each read of user.bucketfs.sync also makes the uploads that failed for
 * a passing reason (the server unreachable, 5xx) due at once, at most once
 * a second, so sync waits through an outage: it says once what the uploads
 * wait for and goes on waiting until they land. It gives up only when
 * every remaining upload has failed permanently (AccessDenied,
 * NoSuchBucket...), or at --timeout: then it names each file with its
 * error and exits 1 (the daemon keeps the data and keeps retrying). Files
 * still open for writing are not journaled yet: sync names them but does
 * not wait for them, as their data is sent when they are closed.
 *
 * A file that another machine changed first (a conflict: its version stays
 * at the name, this mount's is saved beside it) is named with both paths
 * as the daemon reports it, once per conflict, and makes the exit status 1.
 *
 * The waiting (cli_sync_wait) is shared with `bucketfs presign`, which
 * waits for one file's upload the same way.
 *
 * Exit status: 0 all uploaded, 1 some upload failed or conflicted, 2
 * usage, or the mount or PATH could not be asked.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "cli-int.h"

#define POLL_FIRST_MS 50
#define POLL_MAX_MS 100

struct progress {
    const char *cmd; /* the subcommand that waits: "sync", "presign" */
    int on;          /* drawing a bar on stderr (a terminal) */
    uint64_t most; /* the most bytes seen outstanding: 100% of the bar */
    int64_t t0_ms;
    int64_t until_ms; /* --timeout: give up then (0: never) */
    int said_retrying; /* told once that uploads wait for their next try */
    int conflicts;     /* conflicts named */
};

static void usage(FILE *out)
{
    fprintf(out, "usage: bucketfs sync [--quiet] [--timeout DURATION] MOUNTPOINT [PATH]\n"
                 "\n"
                 "Waits until every file written and closed under PATH (a file or directory\n"
                 "of the mount; the whole mount without PATH) is in S3. Uploads that failed\n"
                 "for a passing reason (S3 unreachable) are retried at once and waited for.\n"
                 "Exits 1, naming the files and errors, when the uploads left have failed\n"
                 "for good (the daemon keeps retrying them), or at the timeout, and when\n"
                 "another machine changed a file first (both versions are kept).\n"
                 "\n"
                 "  -q, --quiet          no progress bar (drawn only when stderr is a terminal)\n"
                 "  -t, --timeout TIME   give up after TIME (30s, 5m, 1h; default: never)\n"
                 "  -h, --help\n");
}

/* PATH as given, or relative to the mount point when that is where it
 * exists; it must be on the mount's device. Returns the path to ask, or
 * NULL after printing why. Caller frees. */
static char *resolve_path(const char *mnt, dev_t dev, const char *path)
{
    struct bfs_buf b;
    struct stat st;
    char *p = NULL;

    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (stat(path, &st) == 0 || path[0] == '/' || errno == ENOTCONN) {
        if (bfs_buf_adds(&b, path) == 0)
            p = bfs_buf_steal(&b);
    } else if (bfs_buf_addf(&b, "%s/%s", mnt, path) == 0) {
        p = bfs_buf_steal(&b);
    }
    bfs_buf_done(&b);
    if (!p) {
        fprintf(stderr, "bucketfs sync: out of memory\n");
        return NULL;
    }
    if (stat(p, &st) < 0) {
        cli_report_errno("sync", path, errno);
    } else if (st.st_dev != dev) {
        fprintf(stderr, "bucketfs sync: ");
        cli_put_safe(stderr, path);
        fprintf(stderr, " is not inside the bucketfs mount ");
        cli_put_safe(stderr, mnt);
        fputc('\n', stderr);
    } else {
        return p;
    }
    free(p);
    return NULL;
}

static void draw(struct progress *pg, const struct bfs_json *up)
{
    uint64_t pending = bfs_json_u64(up, "pending_bytes"), sent = bfs_json_u64(up, "sent_bytes");
    uint64_t left = pending > sent ? pending - sent : 0;

    if (!pg->on)
        return;
    if (left > pg->most)
        pg->most = left;
    cli_bar_draw(pg->cmd, pg->most - left, pg->most,
                 bfs_json_u64(up, "pending") + bfs_json_u64(up, "failed"));
}

static void clear_bar(const struct progress *pg)
{
    if (pg->on)
        cli_bar_clear();
}

/* Names every listed item of state (one of "failed", "retrying", "open"). */
static void name_items(const char *cmd, const struct bfs_json *up, const char *state)
{
    const struct bfs_json *items = bfs_json_get(up, "items");

    for (const struct bfs_json *it = items ? items->child : NULL; it; it = it->next) {
        uint64_t retry = bfs_json_u64(it, "retry_in_s");
        char t[32];

        if (strcmp(bfs_json_str(it, "state"), state) != 0)
            continue;
        fprintf(stderr, "bucketfs %s: ", cmd);
        cli_put_safe(stderr, bfs_json_str(it, "path"));
        if (!strcmp(state, "open")) {
            fprintf(stderr, " is still open for writing: not waited for (it is uploaded "
                            "when closed)\n");
            continue;
        }
        if (strcmp(state, "failed") != 0 && strcmp(state, "retrying") != 0) {
            fprintf(stderr, ": not uploaded yet (%s", state); /* at --timeout */
            if (bfs_json_str(it, "error")[0]) {
                fprintf(stderr, "; last error: ");
                cli_put_safe(stderr, bfs_json_str(it, "error"));
            }
            fprintf(stderr, ")\n");
            continue;
        }
        fprintf(stderr, ": upload failed: ");
        cli_put_safe(stderr, bfs_json_str(it, "error"));
        fprintf(stderr, " (attempt %llu", (unsigned long long)bfs_json_u64(it, "attempts"));
        if (retry) {
            cli_fmt_secs(retry, t);
            fprintf(stderr, "; the daemon tries again in %s", t);
        }
        fprintf(stderr, ")\n");
    }
}

/* Names what is left: the failed uploads, and at --timeout (late) also
 * those queued or uploading at that moment (a retry just taken). */
static int report_failures(const char *cmd, const struct bfs_json *up, int late)
{
    uint64_t stuck = bfs_json_u64(up, "stuck"), listed = 0;
    const struct bfs_json *items = bfs_json_get(up, "items");

    name_items(cmd, up, "failed");
    name_items(cmd, up, "retrying");
    if (late) {
        name_items(cmd, up, "uploading");
        name_items(cmd, up, "queued");
        stuck = bfs_json_u64(up, "pending") + bfs_json_u64(up, "failed");
    }
    for (const struct bfs_json *it = items ? items->child : NULL; it; it = it->next)
        listed += !strcmp(bfs_json_str(it, "state"), "failed") ||
                  !strcmp(bfs_json_str(it, "state"), "retrying") ||
                  (late && (!strcmp(bfs_json_str(it, "state"), "uploading") ||
                            !strcmp(bfs_json_str(it, "state"), "queued")));
    if (stuck > listed)
        fprintf(stderr,
                "bucketfs %s: ... and %llu more failed uploads (bucketfs status "
                "--json)\n",
                cmd, (unsigned long long)(stuck - listed));
    if (late) {
        fprintf(stderr, "bucketfs %s: %llu upload%s not done at the timeout", cmd,
                (unsigned long long)stuck, stuck == 1 ? "" : "s");
    } else { /* the counts bucketfs status shows */
        uint64_t failed = bfs_json_u64(up, "failed"), retrying = stuck - failed;

        fprintf(stderr, "bucketfs %s: %llu upload%s failed", cmd, (unsigned long long)failed,
                failed == 1 ? "" : "s");
        if (retrying)
            fprintf(stderr, ", %llu wait%s to retry", (unsigned long long)retrying,
                    retrying == 1 ? "s" : "");
    }
    fprintf(stderr, "; the data stays in the cache and the daemon keeps retrying\n");
    return 1;
}

static int late(const struct progress *pg)
{
    return pg->until_ms && bfs_mono_ms() >= pg->until_ms;
}

/* The error of the first upload waiting for its next try. */
static const char *first_error(const struct bfs_json *up)
{
    const struct bfs_json *items = bfs_json_get(up, "items");

    for (const struct bfs_json *it = items ? items->child : NULL; it; it = it->next)
        if (!strcmp(bfs_json_str(it, "state"), "retrying"))
            return bfs_json_str(it, "error");
    return "a passing failure";
}

/* Names the conflicts the daemon reports for the first time. */
static void name_conflicts(const struct bfs_json *up, struct progress *pg)
{
    const struct bfs_json *items = bfs_json_get(up, "conflict_items");

    for (const struct bfs_json *it = items ? items->child : NULL; it; it = it->next) {
        clear_bar(pg);
        fprintf(stderr, "bucketfs %s: ", pg->cmd);
        cli_put_conflict(stderr, it);
        pg->conflicts++;
    }
}

/* One look at the uploads: 0 all done, 1 failed, -1 keep waiting, 2 error. */
static int look(const char *target, struct progress *pg)
{
    struct bfs_json *up = NULL;
    uint64_t left, moving, retrying;
    /* .sync: the daemon also starts what waits out upload_delay */
    int r = cli_read_json(target, "user.bucketfs.sync", &up);

    if (r < 0) {
        clear_bar(pg);
        cli_report_errno(pg->cmd, target, r == -EINVAL ? EPROTO : -r);
        return 2;
    }
    name_conflicts(up, pg);
    left = bfs_json_u64(up, "pending") + bfs_json_u64(up, "failed");
    moving = bfs_json_u64(up, "uploading") + bfs_json_u64(up, "queued");
    retrying = bfs_json_u64(up, "retrying");
    if (left > 0 && moving == 0 && retrying > 0 && !late(pg)) {
        /* a passing failure: the daemon retries at once (this read asked) */
        if (!pg->said_retrying) {
            clear_bar(pg);
            fprintf(stderr, "bucketfs %s: %llu upload%s wait%s for S3 (%s); retrying\n",
                    pg->cmd, (unsigned long long)retrying, retrying == 1 ? "" : "s",
                    retrying == 1 ? "s" : "", first_error(up));
            pg->said_retrying = 1;
        }
        draw(pg, up);
        r = -1;
    } else if (left == 0 || moving == 0 || late(pg)) {
        clear_bar(pg);
        name_items(pg->cmd, up, "open");
        r = left == 0 ? 0 : report_failures(pg->cmd, up, late(pg));
        if (r == 0 && pg->conflicts)
            r = 1;
        if (r == 0 && pg->on && pg->most) {
            char a[32];

            cli_fmt_bytes(pg->most, a);
            fprintf(stderr, "%s: %s uploaded in %.1f s\n", pg->cmd, a,
                    (double)(bfs_mono_ms() - pg->t0_ms) / 1000);
        }
    } else {
        draw(pg, up);
        r = -1;
    }
    bfs_json_free(up);
    return r;
}

static int parse_args(int argc, char **argv, int *quiet, int64_t *timeout_s, const char **mnt,
                      const char **path)
{
    static const struct option lo[] = {{"quiet", 0, 0, 'q'}, {"timeout", 1, 0, 't'},
                                       {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "qt:h", lo, NULL)) != -1) {
        if (ch == 'q') {
            *quiet = 1;
        } else if (ch == 't') {
            if (cli_parse_timeout("sync", optarg, timeout_s) < 0)
                return 2;
        } else if (ch == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        fprintf(stderr, "bucketfs sync: %s\n",
                argc == optind ? "no mount point given" : "too many arguments");
        usage(stderr);
        return 2;
    }
    *mnt = argv[optind];
    *path = argc - optind == 2 ? argv[optind + 1] : NULL;
    return -1;
}

int cli_sync_wait(const char *cmd, const char *target, int bar, int64_t until_ms)
{
    struct progress pg = {.cmd = cmd, .on = bar, .t0_ms = bfs_mono_ms(), .until_ms = until_ms};
    int rc, wait_ms = POLL_FIRST_MS;

    while ((rc = look(target, &pg)) < 0) {
        bfs_sleep_ms(wait_ms);
        if (wait_ms < POLL_MAX_MS)
            wait_ms = wait_ms * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : wait_ms * 3 / 2;
    }
    return rc;
}

int cli_sync(int argc, char **argv)
{
    const char *mnt = NULL, *path = NULL;
    char *target = NULL;
    int quiet = 0, rc;
    int64_t timeout_s = 0, t0_ms = bfs_mono_ms();
    dev_t dev;

    rc = parse_args(argc, argv, &quiet, &timeout_s, &mnt, &path);
    if (rc >= 0)
        return rc;
    if (cli_mount_check("sync", mnt, &dev) < 0)
        return 2;
    target = path ? resolve_path(mnt, dev, path) : strdup(mnt);
    if (!target)
        return 2;
    rc = cli_sync_wait("sync", target, !quiet && isatty(STDERR_FILENO),
                       timeout_s ? t0_ms + timeout_s * 1000 : 0);
    free(target);
    return rc;
}
