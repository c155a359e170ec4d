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

enum probe { PROBE_PUT, PROBE_MPU, PROBE_DELETE };

/* One probe: the result of writing key with an If-Match nothing matches
 * (PROBE_MPU: as a one-part multipart upload, the condition on its
 * Complete), or of deleting it so (PROBE_DELETE: the object is made
 * first); what is left is deleted. 0: the condition was ignored. */
static int probe_once(struct mapping *m, const char *key, enum probe what)
{
    static const char never_etag[] = "\"bucketfs-no-such-version\"";
    struct bfs_s3_put_params never = {.if_match = never_etag}, plain = {0};
    struct bfs_s3_body one = {.data = "x", .fd = -1, .length = 1};
    char etag[BFS_S3_ETAG_MAX], *part = etag, *id = NULL;
    int r;

    if (what == PROBE_PUT) {
        r = bfs_s3_put_object(m->client, m->bucket, key, &one, &never, etag, NULL);
    } else if (what == PROBE_DELETE) {
        r = bfs_s3_put_object(m->client, m->bucket, key, &one, &plain, etag, NULL);
        if (r == 0)
            r = bfs_s3_delete_object_if(m->client, m->bucket, key, never_etag, NULL);
        if (r == -ESTALE) /* kept, as it should be: now it goes */
            (void)bfs_s3_delete_object(m->client, m->bucket, key, NULL);
        return r;
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

static void say_ignored(const struct mapping *m, enum probe what)
{
    if (what == PROBE_PUT)
        bfs_warn("mapping %s: the server ignores conditional writes (If-Match), so "
                 "writes there are not protected against other machines' (the last "
                 "upload wins); bucketfs status says so", m->name);
    else if (what == PROBE_MPU)
        bfs_info("mapping %s: the server ignores conditions on CompleteMultipartUpload; "
                 "conditional uploads up to 5 GiB go as one PUT", m->name);
    else
        bfs_info("mapping %s: the server ignores If-Match on DELETE; a delete checks "
                 "the version with a HEAD first", m->name);
}

/* Asks once per mapping whether the server honours conditions (state is
 * m->conditions, m->mpu_conditions or m->delete_conditions); 1 when it
 * does or cannot tell yet. */
static int honoured(struct mapping *m, atomic_int *state, enum probe what)
{
    static const char *const suffix[] = {"", "-mpu", "-del"};
    char key[2048];
    int r, v;

    if ((v = atomic_load(state)) != COND_UNKNOWN)
        return v == COND_HONOURED;
    pthread_mutex_lock(&probe_lock);
    if ((v = atomic_load(state)) == COND_UNKNOWN) {
        probe_key(m, 1, suffix[what], key, sizeof(key));
        r = probe_once(m, key, what);
        if (r == -EACCES) { /* a policy for the prefix only: under it, then */
            probe_key(m, 0, suffix[what], key, sizeof(key));
            r = probe_once(m, key, what);
        }
        /* 412, or 404 for the missing key: honoured; made: ignored; other
         * failures (outage, no write access) say nothing: next time */
        v = r == 0 ? COND_IGNORED : r == -ESTALE || r == -ENOENT ? COND_HONOURED : COND_UNKNOWN;
        atomic_store(state, v);
        if (v == COND_IGNORED)
            say_ignored(m, what);
    }
    pthread_mutex_unlock(&probe_lock);
    return v != COND_IGNORED;
}

void fs_upload_conditions(struct mapping *m, const struct bfs_upload *u,
                          struct bfs_s3_put_params *pp)
{
    pp->if_match = pp->if_none_match = NULL;
    if (m->conflicts != BFS_CONFLICTS_KEEP_BOTH || !u->base_etag)
        return;
    if (!honoured(m, &m->conditions, PROBE_PUT))
        return;
    if (u->base_etag[0])
        pp->if_match = u->base_etag;
    else
        pp->if_none_match = "*";
}

int fs_complete_conditions(struct mapping *m)
{
    return honoured(m, &m->mpu_conditions, PROBE_MPU);
}

/* Which version is at key: 0 the one known (an ETag), -ESTALE another,
 * -ENOENT none; other errors as they come. One HEAD. */
static int version_at(struct mapping *m, const char *key, const char *known,
                      struct bfs_s3_error *e)
{
    struct bfs_s3_object o = {0};
    char have[BFS_S3_ETAG_MAX], want[BFS_S3_ETAG_MAX];
    int r = bfs_s3_head_object(m->client, m->bucket, key, &o, e);

    if (r == 0) {
        bfs_s3_etag_normalize(o.etag, have);
        bfs_s3_etag_normalize(known, want);
        r = strcmp(have, want) == 0 ? 0 : -ESTALE;
    }
    bfs_s3_object_done(&o);
    return r;
}

int fs_complete_check(struct mapping *m, const char *key, const struct bfs_s3_put_params *pp,
                      struct bfs_s3_error *e)
{
    int r;

    if (!pp->if_match && !pp->if_none_match)
        return 0;
    r = version_at(m, key, pp->if_match ? pp->if_match : "", e);
    if (r == -ENOENT) /* nothing there: a create may go, a replace may not */
        r = pp->if_none_match ? 0 : -ESTALE;
    else if (r == 0 && pp->if_none_match)
        r = -ESTALE;
    if (r == -ESTALE)
        bfs_s3_error_set(e, r, 412, "PreconditionFailed", "changed by another writer");
    return r;
}

int fs_version_is(struct mapping *m, const char *key, const char *known)
{
    int r;

    if (m->conflicts != BFS_CONFLICTS_KEEP_BOTH || !known)
        return 0;
    r = version_at(m, key, known, NULL); /* "": nothing may be there */
    return r == -ENOENT ? 0 : r;
}

int fs_delete_guarded(struct mapping *m, const char *key, const char *known)
{
    int r;

    if (m->conflicts != BFS_CONFLICTS_KEEP_BOTH || !known || !known[0])
        return bfs_s3_delete_object(m->client, m->bucket, key, NULL);
    if (honoured(m, &m->delete_conditions, PROBE_DELETE))
        return bfs_s3_delete_object_if(m->client, m->bucket, key, known, NULL);
    /* the server would delete any version: look first (a HEAD's window) */
    r = version_at(m, key, known, NULL);
    if (r == 0)
        r = bfs_s3_delete_object(m->client, m->bucket, key, NULL);
    return r == -ENOENT ? 0 : r;
}

/* Where a rename's copy goes when another writer's version is at to: the
 * first TO.conflict-... name nothing holds (caller frees), or NULL. */
static char *free_conflict_key(struct mapping *m, const char *to)
{
    for (int n = 1; n <= 16; n++) {
        char *copy = fs_conflict_key(to, n);
        struct bfs_s3_object o = {0};
        int r;

        if (!copy)
            return NULL;
        r = bfs_s3_head_object(m->client, m->bucket, copy, &o, NULL);
        bfs_s3_object_done(&o);
        if (r == -ENOENT)
            return copy;
        free(copy);
        if (r < 0)
            return NULL;
    }
    return NULL;
}

/* Copies from to dest, of version src_known when given; when another
 * writer changed from, copies what is there now and says so (*changed). */
static int copy_known(struct mapping *m, const char *from, const char *dest,
                      const char *src_known, int *changed)
{
    /* RGW 16 reads the source condition as x-amz-copy-if-match, AWS as
     * x-amz-copy-source-if-match: the S3 client sends both */
    struct bfs_s3_copy_params p = {.if_match = src_known};
    int r = bfs_s3_copy_object(m->client, m->bucket, from, m->bucket, dest, &p, NULL, NULL);

    if (r == -ESTALE && src_known) {
        *changed = 1;
        p.if_match = NULL;
        r = bfs_s3_copy_object(m->client, m->bucket, from, m->bucket, dest, &p, NULL, NULL);
    }
    return r;
}

int fs_rename_object(struct bfs_fs *fs, struct mapping *m, const char *from, const char *to,
                     const char *src_known, const char *dst_known, int *ret_other)
{
    int guard = m->conflicts == BFS_CONFLICTS_KEEP_BOTH, changed = 0, r = 0;
    char *dest = NULL;

    *ret_other = 0;
    if (!guard)
        src_known = dst_known = NULL;
    if (dst_known) { /* servers ignore conditions on CopyObject's target: look */
        r = version_at(m, to, dst_known, NULL); /* "": any is another's */
        if (r == -ESTALE && !(dest = free_conflict_key(m, to)))
            return -EIO;
        if (r == -ENOENT || r == -ESTALE)
            r = 0;
    }
    if (r == 0)
        r = copy_known(m, from, dest ? dest : to, src_known, &changed);
    if (r == 0 && !changed)
        r = fs_delete_guarded(m, from, src_known);
    if (r == -ESTALE) { /* changed between the copy and the delete */
        changed = 1;
        r = 0;
    }
    if (r == 0 && changed)
        fs_conflict_record(fs, m, CONFLICT_RENAME, from, dest ? dest : to);
    if (r == 0 && dest)
        fs_conflict_record(fs, m, CONFLICT_UPLOAD, to, dest);
    *ret_other = r == 0 && (changed || dest);
    free(dest);
    return r;
}

void fs_node_forget_version(struct bfs_fs *fs, uint64_t ino)
{
    struct bfs_node n;

    if (bfs_store_node_get(fs->store, ino, &n) == 0) {
        n.local = 0;
        n.fetched_ns = 0;
        n.etag[0] = '\0';
        n.meta &= ~BFS_META_HEADED;
        (void)bfs_store_node_update(fs->store, &n);
    }
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

void fs_conflict_record(struct bfs_fs *fs, const struct mapping *m, int kind, const char *key,
                        const char *copy)
{
    struct conflict_log *cl = &fs->conflicts;
    struct conflict *c;

    if (kind == CONFLICT_UPLOAD)
        bfs_err("conflict: s3://%s/%s was changed by another writer since this mount read "
                "it; its version stays, this mount's is saved as s3://%s/%s", m->bucket, key,
                m->bucket, copy);
    else if (kind == CONFLICT_DELETE)
        bfs_err("conflict: s3://%s/%s was changed by another writer since this mount read "
                "it; its version stays (the delete here was not applied)", m->bucket, key);
    else
        bfs_err("conflict: s3://%s/%s was changed by another writer since this mount read "
                "it; its version stays, and was what the rename copied to s3://%s/%s",
                m->bucket, key, m->bucket, copy);
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
    c->copy = strdup(copy ? copy : "");
    c->kind = kind;
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
