/* SPDX-License-Identifier: MIT */
/*
 * conflict.c: writers on several machines (SPEC.md "Cache coherence with
 * other writers"). An upload carries the version it replaces: If-Match
 * with the ETag this mount last knew of the object, If-None-Match: * for
 * a name that had none. When the server answers 412, another machine
 * changed the object first: its version stays at the name, this mount's
 * bytes go beside it as NAME.conflict-HOST-YYYYMMDDTHHMMSSZ, and the
 * conflict is logged and kept for `bucketfs status` and `sync`.
 *
 * Servers that ignore the conditions (s3rver) would make every write look
 * unconflicted: the first conditional upload of a mapping sends a PUT with
 * an If-Match that no object can match, under a name listings never show
 * (PROBE). A server that honours conditions refuses it (412, or 404 for
 * the missing key) and makes nothing; one that does not makes the object,
 * which is deleted at once, and the mount says once that writes there are
 * unprotected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define PROBE ".bucketfs-condition-probe-"

int fs_is_probe(const char *name, size_t len)
{
    return len >= sizeof(PROBE) - 1 && memcmp(name, PROBE, sizeof(PROBE) - 1) == 0;
}

/* Whether m's server honours conditional writes; asks it the first time. */
static int conditions_honoured(struct bfs_fs *fs, struct mapping *m)
{
    struct bfs_s3_put_params p = {.if_match = "\"bucketfs-no-such-version\""};
    struct bfs_s3_body empty = {.data = "", .fd = -1};
    char key[2048], etag[BFS_S3_ETAG_MAX], host[64] = "";
    int expected = COND_UNKNOWN, r;

    if (atomic_load(&m->conditions) != COND_UNKNOWN)
        return atomic_load(&m->conditions) == COND_HONOURED;
    (void)gethostname(host, sizeof(host) - 1);
    snprintf(key, sizeof(key), "%s" PROBE "%s-%ld-%llx", m->prefix, host, (long)getpid(),
             (unsigned long long)bfs_now_ns());
    r = bfs_s3_put_object(m->client, m->bucket, key, &empty, &p, etag, NULL);
    if (r == 0)
        (void)bfs_s3_delete_object(m->client, m->bucket, key, NULL);
    if (r < 0 && r != -ESTALE && r != -ENOENT) /* cannot tell now (outage, no write
                                                  * access): ask again next time */
        return 1;
    if (atomic_compare_exchange_strong(&m->conditions, &expected,
                                       r < 0 ? COND_HONOURED : COND_IGNORED) &&
        r == 0)
        bfs_warn("mapping %s: the server ignores conditional writes (If-Match), so "
                 "writes there are not protected against other machines' (the last upload "
                 "wins); bucketfs status says so", m->name);
    (void)fs;
    return atomic_load(&m->conditions) == COND_HONOURED;
}

void fs_upload_conditions(struct bfs_fs *fs, struct mapping *m, const struct bfs_upload *u,
                          struct bfs_s3_put_params *pp)
{
    pp->if_match = pp->if_none_match = NULL;
    if (m->conflicts != BFS_CONFLICTS_KEEP_BOTH || !u->base_etag)
        return;
    if (!conditions_honoured(fs, m))
        return;
    if (u->base_etag[0])
        pp->if_match = u->base_etag;
    else
        pp->if_none_match = "*";
}

int fs_complete_conditions(struct mapping *m)
{
    struct bfs_s3_put_params never = {.if_match = "\"bucketfs-no-such-version\""};
    struct bfs_s3_body one = {.data = "x", .fd = -1, .length = 1};
    char key[2048], host[64] = "", etag[BFS_S3_ETAG_MAX], *part = etag, *id = NULL;
    int expected = COND_UNKNOWN, r;

    if (atomic_load(&m->mpu_conditions) != COND_UNKNOWN)
        return atomic_load(&m->mpu_conditions) == COND_HONOURED;
    (void)gethostname(host, sizeof(host) - 1);
    snprintf(key, sizeof(key), "%s" PROBE "%s-%ld-%llx-mpu", m->prefix, host, (long)getpid(),
             (unsigned long long)bfs_now_ns());
    r = bfs_s3_mpu_create(m->client, m->bucket, key, NULL, &id, NULL);
    if (r == 0)
        r = bfs_s3_mpu_part(m->client, m->bucket, key, id, 1, &one, etag, NULL);
    if (r == 0)
        r = bfs_s3_mpu_complete_if(m->client, m->bucket, key, id, &part, 1, &never, etag, NULL);
    if (r == 0) /* made: the condition was ignored */
        (void)bfs_s3_delete_object(m->client, m->bucket, key, NULL);
    else if (id)
        (void)bfs_s3_mpu_abort(m->client, m->bucket, key, id, NULL);
    free(id);
    if (r < 0 && r != -ESTALE && r != -ENOENT)
        return 0; /* cannot tell now: one PUT is safe either way; ask next time */
    if (atomic_compare_exchange_strong(&m->mpu_conditions, &expected,
                                       r < 0 ? COND_HONOURED : COND_IGNORED) && r == 0)
        bfs_info("mapping %s: the server ignores conditions on CompleteMultipartUpload; "
                 "conditional uploads up to 5 GiB go as one PUT", m->name);
    return atomic_load(&m->mpu_conditions) == COND_HONOURED;
}

int fs_complete_check(struct mapping *m, const char *key, const struct bfs_s3_put_params *pp,
                      struct bfs_s3_error *e)
{
    struct bfs_s3_object o = {0};
    char have[BFS_S3_ETAG_MAX], want[BFS_S3_ETAG_MAX];
    int r;

    if (!pp->if_match && !pp->if_none_match)
        return 0;
    r = bfs_s3_head_object(m->client, m->bucket, key, &o, e);
    if (r == -ENOENT) /* nothing there: a create may go, a replace may not */
        r = pp->if_none_match ? 0 : -ESTALE;
    else if (r == 0 && pp->if_none_match)
        r = -ESTALE;
    else if (r == 0) {
        bfs_s3_etag_normalize(o.etag, have);
        bfs_s3_etag_normalize(pp->if_match, want);
        r = strcmp(have, want) == 0 ? 0 : -ESTALE;
    }
    if (r == -ESTALE)
        bfs_s3_error_set(e, r, 412, "PreconditionFailed", "changed by another writer");
    bfs_s3_object_done(&o);
    return r;
}

char *fs_conflict_key(const char *key, int n)
{
    char host[64] = "", stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    char *out;

    (void)gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p; p++)
        if (*p == '/' || *p == '.')
            *p = '_'; /* one path component; the first dot starts "conflict" */
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if (n > 1 ? asprintf(&out, "%s.conflict-%s-%s-%d", key, host[0] ? host : "host", stamp, n) < 0
              : asprintf(&out, "%s.conflict-%s-%s", key, host[0] ? host : "host", stamp) < 0)
        return NULL;
    return out;
}

void fs_conflict_record(struct bfs_fs *fs, const struct mapping *m, const char *key,
                        const char *copy)
{
    struct conflict_log *cl = &fs->conflicts;
    struct conflict *c;

    bfs_err("conflict: s3://%s/%s was changed by another writer since this mount read it; "
            "its version stays, this mount's is saved as s3://%s/%s", m->bucket, key,
            m->bucket, copy);
    pthread_mutex_lock(&cl->lock);
    c = &cl->items[(cl->head + cl->n) % CONFLICTS_MAX];
    if (cl->n == CONFLICTS_MAX) { /* full: the oldest goes (the log keeps it) */
        c = &cl->items[cl->head];
        cl->head = (cl->head + 1) % CONFLICTS_MAX;
        cl->n--;
    }
    free(c->map);
    free(c->key);
    free(c->copy);
    c->map = strdup(m->name);
    c->key = strdup(key);
    c->copy = strdup(copy);
    c->at_ns = bfs_now_ns();
    c->taken = 0;
    if (c->map && c->key && c->copy)
        cl->n++;
    cl->total++;
    pthread_mutex_unlock(&cl->lock);
}

void fs_conflicts_free(struct bfs_fs *fs)
{
    struct conflict_log *cl = &fs->conflicts;

    for (size_t i = 0; i < CONFLICTS_MAX; i++) {
        free(cl->items[i].map);
        free(cl->items[i].key);
        free(cl->items[i].copy);
    }
    pthread_mutex_destroy(&cl->lock);
}
