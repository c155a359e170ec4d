/* SPDX-License-Identifier: MIT */
/*
 * status.c: `bucketfs status MOUNTPOINT [--json]`: what a mount is doing,
 * from the daemon's user.bucketfs.stats (counters since the mount) and
 * user.bucketfs.uploads (the upload journal, with the progress of running
 * uploads). Plain text for people; --json prints both documents unchanged
 * as {"mountpoint":..., "stats":{...}, "uploads":{...}} for scripts.
 * The daemon's answers hold no credentials, so nothing secret can show.
 *
 * Exit status: 0 shown, 1 MOUNTPOINT is not a live bucketfs mount, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "cli-int.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bucketfs status [--json] MOUNTPOINT\n"
            "\n"
            "Shows the cache, pending and failed uploads with progress, and the S3\n"
            "requests of a bucketfs mount.\n"
            "\n"
            "  --json    one JSON object for scripts: {\"mountpoint\", \"stats\", \"uploads\"}\n"
            "  -h, --help\n");
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_ops(const struct bfs_json *by_op)
{
    int n = 0;

    if (!by_op || by_op->type != BFS_JSON_OBJECT)
        return;
    for (const struct bfs_json *m = by_op->child; m; m = m->next) {
        if (m->type != BFS_JSON_NUMBER || m->u64 == 0)
            continue;
        if (n % 6 == 0)
            printf("%s", n ? ",\n            " : "            ");
        else
            printf(", ");
        printf("%s %llu", m->name, (unsigned long long)m->u64);
        n++;
    }
    if (n)
        putchar('\n');
}

static void print_cache(const char *mnt, const struct bfs_json *st)
{
    const struct bfs_json *c = bfs_json_get(st, "cache");
    char a[32], b[32], t[32];

    cli_fmt_secs(bfs_json_u64(st, "uptime_s"), t);
    printf("bucketfs %s on ", bfs_json_str(st, "version"));
    cli_put_safe(stdout, mnt);
    printf(", up %s\n", t);
    cli_fmt_bytes(bfs_json_u64(c, "bytes"), a);
    cli_fmt_bytes(bfs_json_u64(c, "limit"), b);
    printf("cache       %s of %s in %llu blocks; %llu hits, %llu misses, %llu evictions\n", a, b,
           (unsigned long long)bfs_json_u64(c, "blocks"),
           (unsigned long long)bfs_json_u64(c, "hits"),
           (unsigned long long)bfs_json_u64(c, "misses"),
           (unsigned long long)bfs_json_u64(c, "evictions"));
    if (bfs_json_u64(c, "write_failures"))
        printf("            %llu blocks could not be cached (cache disk full?)\n",
               (unsigned long long)bfs_json_u64(c, "write_failures"));
    if (bfs_json_u64(st, "random_fetches"))
        printf("            %llu blocks fetched in the background for %llu randomly read "
               "files\n", (unsigned long long)bfs_json_u64(st, "random_fetch_blocks"),
               (unsigned long long)bfs_json_u64(st, "random_fetches"));
}

static void print_requests(const struct bfs_json *st)
{
    char a[32], b[32];

    cli_fmt_bytes(bfs_json_u64(st, "bytes_up"), a);
    cli_fmt_bytes(bfs_json_u64(st, "bytes_down"), b);
    printf("requests    %llu, %llu retried, %llu failed (404s of lookups included); "
           "%s sent, %s received\n",
           (unsigned long long)bfs_json_u64(st, "requests"),
           (unsigned long long)bfs_json_u64(st, "retries"),
           (unsigned long long)bfs_json_u64(st, "errors"), a, b);
    print_ops(bfs_json_get(st, "by_op"));
    if (bfs_json_u64(st, "unreachable_s")) {
        char t[32];

        cli_fmt_secs(bfs_json_u64(st, "unreachable_s"), t);
        printf("S3          NOT ANSWERING for %s: cached listings and attributes are served "
               "past their TTL, changes wait in the journal\n", t);
    }
    if (bfs_json_u64(st, "stale_serves"))
        printf("stale       %llu answers from the cache while S3 did not answer\n",
               (unsigned long long)bfs_json_u64(st, "stale_serves"));
    if (bfs_json_u64(st, "skipped_keys"))
        printf("skipped     %llu keys that cannot be paths (see the log)\n",
               (unsigned long long)bfs_json_u64(st, "skipped_keys"));
}

/* Conflicts (another machine changed a file first) and mappings whose
 * server ignores conditional writes. */
static void print_conflicts(const struct bfs_json *up)
{
    const struct bfs_json *items = bfs_json_get(up, "conflict_items");
    const struct bfs_json *unprot = bfs_json_get(up, "unprotected");

    if (bfs_json_u64(up, "conflicts"))
        printf("conflicts   %llu since the mount: another writer changed a file first; "
               "its version kept\n", (unsigned long long)bfs_json_u64(up, "conflicts"));
    for (const struct bfs_json *it = items ? items->child : NULL; it; it = it->next) {
        printf("            ");
        cli_put_conflict(stdout, it);
    }
    for (const struct bfs_json *m = unprot ? unprot->child : NULL; m; m = m->next) {
        printf("UNPROTECTED ");
        cli_put_safe(stdout, m->str ? m->str : "");
        printf(": the server ignores conditional writes; the last upload wins there\n");
    }
}

static void print_upload_totals(const struct bfs_json *st, const struct bfs_json *up)
{
    char a[32], b[32], c[32];

    cli_fmt_bytes(bfs_json_u64(up, "pending_bytes"), a);
    cli_fmt_bytes(bfs_json_u64(up, "sent_bytes"), b);
    cli_fmt_bytes(bfs_json_u64(up, "failed_bytes"), c);
    /* the daemon's counts, as bucketfs sync reads them: failed is permanent
     * failures only; those waiting for a retry are pending, and said */
    printf("uploads     %llu pending (%s), %llu uploading (%s sent), %llu waiting to retry, "
           "%llu failed (%s)\n",
           (unsigned long long)bfs_json_u64(up, "pending"), a,
           (unsigned long long)bfs_json_u64(up, "uploading"), b,
           (unsigned long long)bfs_json_u64(up, "retrying"),
           (unsigned long long)bfs_json_u64(up, "failed"), c);
    cli_fmt_bytes(bfs_json_u64(st, "uploaded_bytes"), a);
    printf("            %llu uploaded (%s) since the mount, %llu failed attempts\n",
           (unsigned long long)bfs_json_u64(st, "uploaded"), a,
           (unsigned long long)bfs_json_u64(st, "upload_failures"));
    if (bfs_json_u64(up, "open")) {
        cli_fmt_bytes(bfs_json_u64(up, "open_bytes"), a);
        printf("            %llu files open with writes not yet closed (%s)\n",
               (unsigned long long)bfs_json_u64(up, "open"), a);
    }
    print_conflicts(up);
}

static void print_item(const struct bfs_json *it)
{
    const char *state = bfs_json_str(it, "state"), *err = bfs_json_str(it, "error");
    uint64_t size = bfs_json_u64(it, "size"), sent = bfs_json_u64(it, "sent");
    uint64_t retry = bfs_json_u64(it, "retry_in_s");
    char a[32], b[32];

    cli_fmt_bytes(size, a);
    /* (state is never NULL; said so for -O2 -fsanitize, whose format check
     * cannot see through bfs_json_str) */
    printf("  %-10s %10s  ", !state ? "" : strcmp(state, "failed") ? state : "FAILED", a);
    cli_put_safe(stdout, bfs_json_str(it, "path"));
    if (!strcmp(state, "uploading") && sent) {
        cli_fmt_bytes(sent, b);
        printf("  (%s sent, %d%%)", b, size ? (int)(sent * 100 / size) : 100);
    } else if (!strcmp(state, "open")) {
        printf("  (open for writing: journaled when closed)");
    }
    putchar('\n');
    if (err[0]) {
        printf("             attempt %llu: ", (unsigned long long)bfs_json_u64(it, "attempts"));
        cli_put_safe(stdout, err);
        if (retry) {
            cli_fmt_secs(retry, b);
            printf(" (next try in %s)", b);
        }
        putchar('\n');
    }
}

static void print_items(const struct bfs_json *up)
{
    const struct bfs_json *items = bfs_json_get(up, "items");
    uint64_t total =
        bfs_json_u64(up, "pending") + bfs_json_u64(up, "failed") + bfs_json_u64(up, "open");
    uint64_t listed = bfs_json_u64(up, "listed");

    if (!items || items->type != BFS_JSON_ARRAY || !items->child)
        return;
    printf("\n");
    for (const struct bfs_json *it = items->child; it; it = it->next)
        print_item(it);
    if (total > listed)
        printf("  ... and %llu more\n", (unsigned long long)(total - listed));
}

static int parse_args(int argc, char **argv, int *json, const char **mnt)
{
    static const struct option lo[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'j') {
            *json = 1;
        } else if (ch == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "bucketfs status: %s\n",
                argc == optind ? "no mount point given" : "too many arguments");
        usage(stderr);
        return 2;
    }
    *mnt = argv[optind];
    return -1;
}

int cli_status(int argc, char **argv)
{
    struct bfs_json *st = NULL, *up = NULL;
    char *raw_st = NULL, *raw_up = NULL;
    const char *mnt = NULL;
    int json = 0, rc;
    dev_t dev;
    ssize_t n;

    rc = parse_args(argc, argv, &json, &mnt);
    if (rc >= 0)
        return rc;
    if (cli_mount_check("status", mnt, &dev) < 0)
        return 1;
    rc = 1;
    n = cli_getxattr(mnt, "user.bucketfs.stats", &raw_st);
    if (n >= 0)
        n = bfs_json_parse(raw_st, (size_t)n, 0, CLI_JSON_DEPTH, &st);
    if (n >= 0)
        n = cli_getxattr(mnt, "user.bucketfs.uploads", &raw_up);
    if (n >= 0)
        n = bfs_json_parse(raw_up, (size_t)n, 0, CLI_JSON_DEPTH, &up);
    if (n < 0) {
        cli_report_errno("status", mnt, n == -EINVAL ? EPROTO : (int)-n);
        goto out;
    }
    if (json) {
        printf("{\"mountpoint\":");
        print_json_string(mnt);
        printf(",\"stats\":%s,\"uploads\":%s}\n", raw_st, raw_up);
    } else {
        print_cache(mnt, st);
        print_upload_totals(st, up);
        print_requests(st);
        print_items(up);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    bfs_json_free(st);
    bfs_json_free(up);
    free(raw_st);
    free(raw_up);
    return rc;
}
