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
 * (PROBE), at the top of the bucket (probe_key says why). A server that honours conditions refuses it (412, or 404 for
 * the missing key) and makes nothing; one that does not makes the object,
 * which is deleted at once, and the mount says once that writes there are
 * unprotected.
 */
#include <errno.h>
#include <pthread.h>
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

/* Probes run one at a time (a second would only repeat the first). */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

/* PROBE-HOST-PID-NS[suffix]: at the bucket's top when root, else under m's
 * prefix. At the top it has no directory of its own, which a server that
 * keeps objects as files (s3rver) would remove with the object when it is
 * deleted, while another upload may be writing into it. */
static void probe_key(const struct mapping *m, int root, const char *suffix, char *key,
                      size_t size)
{
    char host[64] = "";

    (void)gethostname(host, sizeof(host) - 1);
    snprintf(key, size, "%s" PROBE "%s-%ld-%llx%s", root ? "" : m->prefix, host,
             (long)getpid(), (unsigned long long)bfs_now_ns(), suffix);
}

/* One probe: the result of writing key with an If-Match nothing matches;
 * what it made (a server that ignores the condition) is deleted. mpu: as
 * a one-part multipart upload, the condition on its Complete. */
static int probe_once(struct mapping *m, const char *key, int mpu)
{
    struct bfs_s3_put_params never = {.if_match = "\"bucketfs-no-such-version\""};
    struct bfs_s3_body one = {.data = "x", .fd = -1, .length = 1};
    char etag[BFS_S3_ETAG_MAX], *part = etag, *id = NULL;
    int r;

    if (!mpu) {
        r = bfs_s3_put_object(m->client, m->bucket, key, &one, &never, etag, NULL);
    } else {
        r = bfs_s3_mpu_create(m->client, m->bucket, key, NULL, &id, NULL);
        if (r == 0)
            r = bfs_s3_mpu_part(m->client, m->bucket, key, id, 1, &one, etag, NULL);
        if (r == 0)
            r = bfs_s3_mpu_complete_if(m->client, m->bucket, key, id, &part, 1, &never, etag,
                                       NULL);
        if (r < 0 && id)
            (void)bfs_s3_mpu_abort(m->client, m->bucket, key, id, NULL);
        free(id);
    }
    if (r == 0) /* made: the condition was ignored */
        (void)bfs_s3_delete_object(m->client, m->bucket, key, NULL);
    return r;
}

/* Asks once per mapping whether the server honours conditions (state is
 * m->conditions or m->mpu_conditions); 1 when it does or cannot tell yet. */
static int honoured(struct mapping *m, atomic_int *state, int mpu)
{
    char key[2048];
    int r, v;

    if ((v = atomic_load(state)) != COND_UNKNOWN)
        return v == COND_HONOURED;
    pthread_mutex_lock(&probe_lock);
    if ((v = atomic_load(state)) == COND_UNKNOWN) {
        probe_key(m, 1, mpu ? "-mpu" : "", key, sizeof(key));
        r = probe_once(m, key, mpu);
        if (r == -EACCES) { /* a policy for the prefix only: under it, then */
            probe_key(m, 0, mpu ? "-mpu" : "", key, sizeof(key));
            r = probe_once(m, key, mpu);
        }
        /* 412, or 404 for the missing key: honoured; made: ignored; other
         * failures (outage, no write access) say nothing: next time */
        v = r == 0 ? COND_IGNORED : r == -ESTALE || r == -ENOENT ? COND_HONOURED : COND_UNKNOWN;
        atomic_store(state, v);
        if (v == COND_IGNORED && !mpu)
            bfs_warn("mapping %s: the server ignores conditional writes (If-Match), so "
                     "writes there are not protected against other machines' (the last "
                     "upload wins); bucketfs status says so", m->name);
        else if (v == COND_IGNORED)
            bfs_info("mapping %s: the server ignores conditions on CompleteMultipartUpload; "
                     "conditional uploads up to 5 GiB go as one PUT", m->name);
    }
    pthread_mutex_unlock(&probe_lock);
    return v != COND_IGNORED;
}

static int conditions_honoured(struct bfs_fs *fs, struct mapping *m)
{
    (void)fs;
    return honoured(m, &m->conditions, 0);
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
    return honoured(m, &m->mpu_conditions, 1);
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
