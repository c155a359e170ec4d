/* SPDX-License-Identifier: MIT */
/*
 * upload.c: the background uploader. Threads take inodes from a queue,
 * read their journal row, and send the staging file of that generation:
 * one PUT up to MULTIPART_MIN bytes, multipart above it with parts in
 * parallel (part size grown so that any S3 size fits in 10,000 parts).
 *
 * A failed upload stays in the journal: transient failures are retried
 * with exponential backoff (1 s doubling up to upload_retry_max, 5 min by
 * default), permanent ones (AccessDenied, NoSuchBucket, EntityTooLarge, ...)
 * every upload_retry_max, and both
 * are shown with their error by `bucketfs status`. Nothing is dropped.
 * A multipart upload records its UploadId in the row, so that after a
 * crash the next mount aborts it instead of leaking it, and starts again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define MULTIPART_MIN (16ull << 20)
#define PART_SIZE (8ull << 20)
#define PART_JOBS 4
#define OUTAGE_RETRY_NS (2LL * 1000000000) /* an upload's next try while S3 does not answer */

const char *fs_content_type(const char *key)
{
    static const struct { const char *ext, *type; } t[] = {
        {"csv", "text/csv"}, {"tsv", "text/tab-separated-values"}, {"txt", "text/plain"},
        {"json", "application/json"}, {"jsonl", "application/x-ndjson"},
        {"ndjson", "application/x-ndjson"}, {"xml", "application/xml"},
        {"html", "text/html"}, {"htm", "text/html"}, {"md", "text/markdown"},
        {"yaml", "application/yaml"}, {"yml", "application/yaml"},
        {"parquet", "application/vnd.apache.parquet"}, {"avro", "application/avro"},
        {"pdf", "application/pdf"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"svg", "image/svg+xml"},
        {"gz", "application/gzip"}, {"zip", "application/zip"}, {"tar", "application/x-tar"},
        {"bz2", "application/x-bzip2"}, {"zst", "application/zstd"},
        {"js", "text/javascript"}, {"css", "text/css"}, {"py", "text/x-python"},
        {"ipynb", "application/x-ipynb+json"}, {"npy", "application/octet-stream"},
    };
    const char *dot = strrchr(key, '.'), *slash = strrchr(key, '/');

    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
            if (strcasecmp(dot + 1, t[i].ext) == 0)
                return t[i].type;
    return "application/octet-stream";
}

/* Adds x-amz-meta-xattr-NAME = base64(value) for each user.* attribute. */
static int add_xattr(void *ctx, const char *name, const void *value, size_t len)
{
    struct bfs_s3_meta *m = ctx;
    struct bfs_buf n;
    char *b64 = malloc(len / 3 * 4 + 8);
    int r;

    if (!b64)
        return -ENOMEM;
    bfs_base64_encode(value, len, b64);
    bfs_buf_init(&n, 1024);
    r = fs_xattr_meta_name(name, &n);
    if (r == 0)
        r = bfs_s3_meta_add(m, bfs_buf_str(&n), b64);
    bfs_buf_done(&n);
    free(b64);
    return r;
}

int fs_meta_for(struct bfs_fs *fs, uint64_t ino, struct bfs_s3_meta *m, uint32_t mode,
                uint32_t uid, uint32_t gid, int64_t mtime_ns)
{
    char v[48];
    int r;

    if (ino) {
        r = bfs_store_xattrs(fs->store, ino, add_xattr, m);
        if (r < 0)
            return r;
    }
    snprintf(v, sizeof(v), "%u", mode);
    r = bfs_s3_meta_add(m, "mode", v);
    snprintf(v, sizeof(v), "%u", uid);
    if (r == 0)
        r = bfs_s3_meta_add(m, "uid", v);
    snprintf(v, sizeof(v), "%u", gid);
    if (r == 0)
        r = bfs_s3_meta_add(m, "gid", v);
    if (mtime_ns % 1000000000)
        snprintf(v, sizeof(v), "%lld.%09lld", (long long)(mtime_ns / 1000000000),
                 (long long)(mtime_ns % 1000000000));
    else
        snprintf(v, sizeof(v), "%lld", (long long)(mtime_ns / 1000000000));
    if (r == 0)
        r = bfs_s3_meta_add(m, "mtime", v);
    return r;
}

/* ---- the queue ---- */

static int queue_push(struct upload_queue *q, uint64_t ino, int64_t due_ms)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct upload_item *items = malloc(cap * sizeof(*items));

        if (!items)
            return -ENOMEM;
        for (size_t i = 0; i < q->count; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->head = 0;
        q->cap = cap;
    }
    q->items[(q->head + q->count) % q->cap] = (struct upload_item){ino, due_ms};
    q->count++;
    return 0;
}

static uint64_t queue_pop(struct upload_queue *q)
{
    uint64_t ino = q->items[q->head].ino;

    q->head = (q->head + 1) % q->cap;
    q->count--;
    return ino;
}

static void enqueue(struct bfs_fs *fs, uint64_t ino, int64_t delay_ms)
{
    struct uploader *up = &fs->up;

    pthread_mutex_lock(&up->lock);
    /* on failure the retry scan finds the journal row later, though its
     * wfile says queued (dropped) */
    if (queue_push(delay_ms > 0 ? &up->later : &up->now, ino, bfs_mono_ms() + delay_ms) == 0)
        pthread_cond_signal(&up->cond);
    else
        up->dropped = 1;
    pthread_mutex_unlock(&up->lock);
}

void fs_upload_enqueue(struct bfs_fs *fs, uint64_t ino)
{
    enqueue(fs, ino, 0);
}

void fs_upload_enqueue_later(struct bfs_fs *fs, uint64_t ino)
{
    enqueue(fs, ino, fs->cfg->upload_delay_ms);
}

void fs_upload_expedite(struct bfs_fs *fs)
{
    struct uploader *up = &fs->up;
    int moved = 0;

    pthread_mutex_lock(&up->lock);
    /* popped only once pushed: out of memory, it stays where it was */
    while (up->later.count > 0 &&
           queue_push(&up->now, up->later.items[up->later.head].ino, 0) == 0) {
        (void)queue_pop(&up->later);
        moved = 1;
    }
    /* and what waits for its next try, at most once a second (sync polls) */
    if (bfs_mono_ms() - up->retry_all_ms >= 1000) {
        up->retry_all_ms = bfs_mono_ms();
        up->retry_all = 1;
        moved = 1;
    }
    if (moved)
        pthread_cond_broadcast(&up->cond);
    pthread_mutex_unlock(&up->lock);
}

/* ---- multipart ---- */

/* A part landed: progress for bucketfs status and sync. */
static void part_sent(void *ctx, uint64_t bytes)
{
    struct wfile *w = ctx;

    pthread_mutex_lock(&w->lock);
    w->sent += bytes;
    pthread_mutex_unlock(&w->lock);
}

static int multipart(struct bfs_fs *fs, struct wfile *w, struct mapping *m,
                     const struct bfs_upload *u, int fd, const struct bfs_s3_put_params *pp,
                     char etag[BFS_S3_ETAG_MAX], struct bfs_s3_error *e)
{
    struct bfs_s3_parts p = {.fd = fd, .size = u->size, .jobs = PART_JOBS,
                             .progress = w ? part_sent : NULL, .ctx = w};
    char *id = NULL, **etags = NULL;
    int r;

    p.part_size = bfs_s3_part_size(u->size, PART_SIZE);
    r = bfs_s3_mpu_create(m->client, m->bucket, u->key, pp, &id, e);
    if (r < 0)
        return r;
    r = bfs_store_upload_set_id(fs->store, u->ino, id); /* for abort after a crash */
    if (r == 0)
        r = bfs_s3_mpu_send_parts(m->client, m->bucket, u->key, id, &p, &etags, e);
    /* the condition, if any, is checked here: parts replace nothing.
     * Ceph RGW 16 ignores it on Complete: asked just before as well */
    if (r == 0)
        r = fs_complete_check(m, u->key, pp, e);
    if (r == 0)
        r = bfs_s3_mpu_complete_if(m->client, m->bucket, u->key, id, etags,
                                   bfs_s3_parts_count(&p), pp, etag, e);
    if (r < 0)
        (void)bfs_s3_mpu_abort(m->client, m->bucket, u->key, id, NULL);
    (void)bfs_store_upload_set_id(fs->store, u->ino, NULL);
    bfs_s3_etags_free(etags, bfs_s3_parts_count(&p));
    free(id);
    return r;
}

/* ---- one upload ---- */

static struct mapping *mapping_named(struct bfs_fs *fs, const char *name)
{
    struct mapping *m;

    pthread_mutex_lock(&fs->lock);
    m = fs_mapping_by_name(fs, name);
    pthread_mutex_unlock(&fs->lock);
    if (!m && fs->auto_maps && fs_maps_refresh(fs) == 0) { /* buckets not listed yet */
        pthread_mutex_lock(&fs->lock);
        m = fs_mapping_by_name(fs, name);
        pthread_mutex_unlock(&fs->lock);
    }
    return m;
}

enum { SEND_ANYWAY, SEND_IF_BASE, SEND_IF_NEW };

/* Sends u's staging file to u->key: cond SEND_IF_BASE replaces only
 * u->base_etag, SEND_IF_NEW only nothing. -ESTALE: the condition failed
 * (another writer). */
static int send_file(struct bfs_fs *fs, struct wfile *w, struct mapping *m,
                     const struct bfs_upload *u, int cond, char etag[BFS_S3_ETAG_MAX],
                     struct bfs_s3_error *e)
{
    struct bfs_s3_meta meta = {0};
    struct bfs_s3_put_params pp = {.meta = &meta, .content_type = fs_content_type(u->key)};
    struct bfs_s3_body body = {.fd = -1, .length = u->size};
    char path[4096];
    int r;

    bfs_store_staging_path(fs->store, u->ino, u->gen, path, sizeof(path));
    body.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (body.fd < 0) {
        bfs_s3_error_set(e, -errno, 0, "StagingMissing", "the staging file is gone");
        return e->err;
    }
    if (u->upload_id) /* left by a crash in the middle of a multipart upload */
        (void)bfs_s3_mpu_abort(m->client, m->bucket, u->key, u->upload_id, NULL);
    if (cond == SEND_IF_BASE) {
        fs_upload_conditions(m, u, &pp);
    } else if (cond == SEND_IF_NEW) {
        struct bfs_upload fresh = *u; /* borrows u's strings */

        fresh.base_etag = "";
        fs_upload_conditions(m, &fresh, &pp);
    }
    if (pp.if_match || pp.if_none_match)
        bfs_debug("upload of %s (inode %llu gen %llu) if %s %s", u->key,
                  (unsigned long long)u->ino, (unsigned long long)u->gen,
                  pp.if_match ? "match" : "none match", pp.if_match ? pp.if_match : "*");
    r = fs_meta_for(fs, u->ino, &meta, u->mode, u->uid, u->gid, u->mtime_ns);
    if (r == 0 && (u->size <= MULTIPART_MIN ||
                   ((pp.if_match || pp.if_none_match) && u->size <= BFS_S3_PART_MAX &&
                    !fs_complete_conditions(m))))
        r = bfs_s3_put_object(m->client, m->bucket, u->key, &body, &pp, etag, e);
    else if (r == 0)
        r = multipart(fs, w, m, u, body.fd, &pp, etag, e);
    close(body.fd);
    bfs_s3_meta_done(&meta);
    return r;
}

/* Gen u->gen is in S3: at u->key with etag, or, etag NULL, beside it
 * after a conflict (keep_ours). The name then shows the other writer's
 * version, which the next use asks S3 for (the kernel's pages go). */
static void record_success(struct bfs_fs *fs, struct wfile *w, const struct bfs_upload *u,
                           struct mapping *m, const char *etag)
{
    int finished, undo = 0;
    struct bfs_node n;
    char path[4096], made[BFS_S3_ETAG_MAX], import[4096], import_etag[BFS_S3_ETAG_MAX];
    int import_fd = -1;

    atomic_fetch_add(&fs->up.uploaded, 1);
    atomic_fetch_add(&fs->up.bytes, u->size);
    bfs_s3_etag_normalize(etag ? etag : "", made);
    if (!w) {
        finished = bfs_store_upload_finish(fs->store, u->ino, u->gen) == 1;
        if (!finished && etag) /* a generation committed meanwhile replaces it */
            (void)bfs_store_upload_set_base(fs->store, u->ino, u->gen, made);
    } else {
        /* the row goes under w->lock: whoever sees it gone (sync, presign)
         * sees the upload ended in w too */
        pthread_mutex_lock(&w->lock);
        finished = bfs_store_upload_finish(fs->store, u->ino, u->gen) == 1;
        ws_upload_landed(w, u->gen);
        if (etag) { /* the next one replaces it; after a conflict, still the old base */
            memcpy(w->base_etag, made, sizeof(w->base_etag));
            w->base_set = 1;
            /* and so does a generation committed since the upload ended: under
             * w->lock, which commits hold, so that none is left with the old */
            (void)bfs_store_upload_set_base(fs->store, u->ino, u->gen, made);
        }
        undo = w->deleted && etag; /* (the other writer's object is not ours to delete) */
        if (!etag && finished && w->gen == u->gen && !w->dirty && !w->deleted)
            fs_node_forget_version(fs, u->ino);
        else if (etag && finished && w->gen == u->gen && !w->dirty && !undo &&
                   bfs_store_node_get(fs->store, u->ino, &n) == 0) {
            bfs_s3_etag_normalize(etag, n.etag);
            n.local = 0;
            n.fetched_ns = bfs_now_ns();
            n.meta |= BFS_META_HEADED;
            (void)bfs_store_node_update(fs->store, &n);
            /* gen is sealed (gen == u->gen): a later write copies it first,
             * so its bytes stay as uploaded while the import, after the
             * lock (up to 64 MiB of copying), reads them */
            bfs_store_staging_path(fs->store, u->ino, u->gen, import, sizeof(import));
            import_fd = dup(w->fd);
            memcpy(import_etag, n.etag, sizeof(import_etag));
        }
        if (w->gen > u->gen) { /* a newer generation took over: this file is done */
            bfs_store_staging_path(fs->store, u->ino, u->gen, path, sizeof(path));
            (void)unlink(path);
        }
        /* older ones were kept for this upload or never sent: gone too */
        fs_wfile_forget_gens(fs, w, u->gen);
        if ((!finished || w->rerun) && !undo && w->sealed)
            ws_queue(fs, w); /* a newer generation is committed: send it too */
        ws_upload_ended(w);
        pthread_mutex_unlock(&w->lock);
        if (!etag)
            fs_kernel_inval_inode(fs, u->ino, 1, 0);
        if (import_fd >= 0) {
            fs_blocks_import(fs, u->ino, import_etag, import_fd, import, u->size);
            close(import_fd);
        }
        fs_wfile_maybe_drop(fs, w);
    }
    if (undo && fs_delete_guarded(m, u->key, made) == -ESTALE) /* unlinked meanwhile */
        fs_conflict_record(fs, m, CONFLICT_DELETE, u->key, NULL);
}

static void record_failure(struct bfs_fs *fs, struct wfile *w, const struct bfs_upload *u,
                           struct mapping *m, const struct bfs_s3_error *e)
{
    int permanent = !e->retryable && e->status != 0;
    int64_t max = fs->cfg->upload_retry_max * 1000000000LL;
    int64_t wait = permanent ? max : (1000000000LL << (u->attempts < 8 ? u->attempts : 8));
    char msg[400];

    if (wait > max)
        wait = max;
    /* S3 did not answer: the uploads themselves find out when it does
     * (a success then makes every other waiting upload go at once) */
    if (bfs_s3_unreachable(e->err) && wait > OUTAGE_RETRY_NS)
        wait = OUTAGE_RETRY_NS;
    snprintf(msg, sizeof(msg), "%s%s%s", e->code, e->message[0] ? ": " : "", e->message);
    (void)bfs_store_upload_failed(fs->store, u->ino, u->gen, permanent, msg, bfs_now_ns() + wait);
    atomic_fetch_add(&fs->up.failures, 1);
    /* an outage is logged once, by the client; its uploads wait quietly */
    if (bfs_s3_unreachable(e->err))
        bfs_debug("upload of %s waits for the endpoint (%s)", u->key, msg);
    else
        bfs_err("upload of %s failed (attempt %d): %s; %s, trying again in %lld s", u->key,
                u->attempts + 1, msg, permanent ? "kept in the journal" : "transient",
                (long long)(wait / 1000000000));
    if (w) {
        pthread_mutex_lock(&w->lock);
        ws_upload_failed(w, e->err ? e->err : -EIO);
        pthread_mutex_unlock(&w->lock);
    }
}

/* The ETag S3 gives the bytes of u's staging file sent as one PUT (their
 * MD5), or, multipart, as send_file cuts them (the MD5 of the parts' MD5s
 * and "-N"). */
static int etag_of_staging(struct bfs_fs *fs, const struct bfs_upload *u, int in_parts,
                           char ret[BFS_S3_ETAG_MAX])
{
    uint64_t part = !in_parts ? u->size : bfs_s3_part_size(u->size, PART_SIZE);
    uint64_t nparts = !in_parts || part == 0 ? 1 : (u->size + part - 1) / part;
    unsigned char *md5s = malloc(16 * nparts), d[16];
    char path[4096], hex[33];
    int fd, r = md5s ? 0 : -ENOMEM;

    bfs_store_staging_path(fs->store, u->ino, u->gen, path, sizeof(path));
    fd = r == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (r == 0 && fd < 0)
        r = -errno;
    for (uint64_t i = 0; i < nparts && r == 0; i++) {
        uint64_t off = i * part;

        r = bfs_md5_range(fd, NULL, off, u->size - off < part ? u->size - off : part,
                          md5s + 16 * i);
    }
    if (fd >= 0)
        close(fd);
    if (r == 0 && in_parts)
        r = bfs_md5_range(-1, md5s, 0, 16 * nparts, d);
    if (r == 0) {
        bfs_hex_encode(in_parts ? d : md5s, 16, hex);
        if (in_parts)
            snprintf(ret, BFS_S3_ETAG_MAX, "\"%s-%llu\"", hex, (unsigned long long)nparts);
        else
            snprintf(ret, BFS_S3_ETAG_MAX, "\"%s\"", hex);
    }
    free(md5s);
    return r;
}

/* A 412 may be our own upload: one that landed before a crash kept its
 * row from being finished. It is when the object's ETag is what these
 * bytes make (not so with SSE-KMS or SSE-C: then a conflict copy is kept,
 * and nothing is lost either). */
static int landed_already(struct bfs_fs *fs, struct mapping *m, const struct bfs_upload *u,
                          char etag[BFS_S3_ETAG_MAX])
{
    struct bfs_s3_object o = {0};
    char want[BFS_S3_ETAG_MAX], have[BFS_S3_ETAG_MAX];
    int same = 0;

    if (bfs_s3_head_object(m->client, m->bucket, u->key, &o, NULL) == 0 &&
        etag_of_staging(fs, u, strchr(o.etag, '-') != NULL, want) == 0) {
        bfs_s3_etag_normalize(o.etag, have);
        same = strcmp(have, want) == 0;
        bfs_debug("%s refused the condition: it is %s, this upload makes %s", u->key, have,
                  want);
        if (same)
            memcpy(etag, have, BFS_S3_ETAG_MAX);
    }
    bfs_s3_object_done(&o);
    return same;
}

/* Another writer changed u->key first (412): this mount's bytes go to a
 * conflict name beside it, unconditionally (the name is new). */
static int keep_ours(struct bfs_fs *fs, struct wfile *w, struct mapping *m, struct bfs_upload *u,
                     struct bfs_s3_error *e)
{
    char *key = u->key, etag[BFS_S3_ETAG_MAX];
    int r = -ESTALE;

    /* a new name, and never over another copy: mounts of one host may lose
     * the same second (then NAME.conflict-HOST-TIME-2, -3...) */
    for (int n = 1; n <= 16 && r == -ESTALE; n++) {
        char *copy = fs_conflict_key(key, n);

        if (!copy)
            return -ENOMEM;
        u->key = copy;
        r = send_file(fs, w, m, u, SEND_IF_NEW, etag, e);
        u->key = key;
        if (r == 0)
            fs_conflict_record(fs, m, CONFLICT_UPLOAD, key, copy);
        free(copy);
    }
    return r;
}

/* upload_one found no journal row for w. The lookup did not hold w->lock,
 * so a close may have committed a row since, and the queue entry of that
 * commit may have been taken meanwhile by another uploader that saw this
 * one running and left it (rerun). Saying "done" then would let the wfile
 * be dropped with its staging file while the row waits for it. So look
 * again under the lock (commits happen under it): a row now is queued
 * again, and only no row means this generation is done. */
static void nothing_to_send(struct bfs_fs *fs, struct wfile *w, int r)
{
    struct bfs_upload u;

    pthread_mutex_lock(&w->lock);
    if (r == -ENOENT)
        r = bfs_store_upload_get(fs->store, w->ino, &u);
    if (r == 0)
        bfs_upload_done(&u);
    ws_upload_none(w, r != -ENOENT); /* (another error: the journal cannot say) */
    if (r == 0)
        ws_queue(fs, w);
    ws_upload_ended(w);
    pthread_mutex_unlock(&w->lock);
    fs_wfile_maybe_drop(fs, w);
    fs_wfile_put(fs, w);
}

static void upload_one(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w = fs_wfile_find(fs, ino);
    struct bfs_s3_error e = {0};
    struct bfs_upload u;
    struct mapping *m;
    char etag[BFS_S3_ETAG_MAX] = "";
    int r;

    if (w) {
        enum ws_begin go;

        pthread_mutex_lock(&w->lock);
        go = ws_upload_begin(w);
        pthread_mutex_unlock(&w->lock);
        if (go != WS_GO) {
            fs_wfile_put(fs, w);
            return;
        }
    }
    r = bfs_store_upload_get(fs->store, ino, &u);
    if (r < 0) { /* nothing left to send (cancelled, or sent already) */
        if (w)
            nothing_to_send(fs, w, r);
        return;
    }
    m = mapping_named(fs, u.map);
    if (!m) {
        bfs_s3_error_set(&e, -ENXIO, 400, "NoSuchMapping", "mapping not in this mount's config");
        r = e.err;
    } else {
        r = send_file(fs, w, m, &u, SEND_IF_BASE, etag, &e);
    }
    if (r == -ESTALE && u.base_etag && landed_already(fs, m, &u, etag))
        r = 0;
    if (r == -ESTALE && u.base_etag && (r = keep_ours(fs, w, m, &u, &e)) == 0)
        record_success(fs, w, &u, m, NULL);
    else if (r == 0)
        record_success(fs, w, &u, m, etag);
    else
        record_failure(fs, w, &u, m, &e);
    bfs_upload_done(&u);
    fs_wfile_put(fs, w);
}

struct scan {
    struct bfs_fs *fs;
    int dropped; /* a push failed since the last scan: "queued" may be untrue */
    int all;     /* every row that failed for a passing reason, due or not */
};

/* Queues journal rows whose retry time has come and that are not queued
 * (or, after a failed push, that are not uploading: a second entry for an
 * inode finds nothing left to send). */
static int requeue_due(void *ctx, const struct bfs_upload *u)
{
    struct scan *sc = ctx;
    struct bfs_fs *fs = sc->fs;
    struct wfile *w;

    if (u->next_ns > bfs_now_ns() && !(sc->all && u->state != BFS_UPLOAD_FAILED))
        return 0;
    w = fs_wfile_find(fs, u->ino);
    if (w) {
        pthread_mutex_lock(&w->lock);
        if (!w->uploading && (!w->queued || sc->dropped))
            ws_requeue(fs, w);
        pthread_mutex_unlock(&w->lock);
        fs_wfile_put(fs, w);
    }
    return 0;
}

/* Whether an outage of an endpoint ended since the last look. Caller
 * holds up->lock. */
static int recovered(struct bfs_fs *fs)
{
    uint64_t n = 0;

    for (size_t i = 0; i < fs->nclients; i++)
        n += bfs_s3_client_recoveries(fs->clients[i]);
    if (n == fs->up.recoveries_seen)
        return 0;
    fs->up.recoveries_seen = n;
    return 1;
}

/* Takes the next inode that is due, waiting for one; returns 0 at stop
 * once both queues are empty (at stop the delayed ones are due at once).
 * Every second without work, it runs the retry scan. */
static uint64_t next_due(struct bfs_fs *fs, int64_t *last_scan)
{
    struct uploader *up = &fs->up;
    uint64_t ino = 0;

    pthread_mutex_lock(&up->lock);
    for (;;) {
        int64_t now = bfs_mono_ms(), wake = *last_scan + 1000;
        struct timespec ts;

        if (up->now.count > 0) {
            ino = queue_pop(&up->now);
            break;
        }
        if (up->later.count > 0 && (up->stop || up->later.items[up->later.head].due_ms <= now)) {
            ino = queue_pop(&up->later);
            break;
        }
        if (up->stop)
            break;
        if (recovered(fs))
            up->retry_all = 1; /* S3 answers again: what waited goes at once */
        if (now >= wake || up->retry_all) {
            struct scan sc = {.fs = fs, .dropped = up->dropped, .all = up->retry_all};

            *last_scan = now;
            up->dropped = 0;
            up->retry_all = 0;
            pthread_mutex_unlock(&up->lock);
            (void)bfs_store_uploads(fs->store, requeue_due, &sc);
            (void)bfs_store_journal_sync(fs->store); /* finishes left unsynced */
            pthread_mutex_lock(&up->lock);
            continue;
        }
        if (up->later.count > 0 && up->later.items[up->later.head].due_ms < wake)
            wake = up->later.items[up->later.head].due_ms;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (wake - now) / 1000;
        ts.tv_nsec += (long)((wake - now) % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&up->cond, &up->lock, &ts);
    }
    pthread_mutex_unlock(&up->lock);
    return ino;
}

static void *uploader_main(void *arg)
{
    struct bfs_fs *fs = arg;
    int64_t last_scan = bfs_mono_ms();
    uint64_t ino;

    while ((ino = next_due(fs, &last_scan)) != 0)
        upload_one(fs, ino);
    return NULL;
}

int fs_uploader_start(struct bfs_fs *fs, int nthreads)
{
    struct uploader *up = &fs->up;

    pthread_mutex_init(&up->lock, NULL);
    pthread_cond_init(&up->cond, NULL);
    if (nthreads > UPLOADERS)
        nthreads = UPLOADERS;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&up->threads[i], NULL, uploader_main, fs) != 0)
            break;
        up->nthreads++;
    }
    return up->nthreads > 0 ? 0 : -EAGAIN;
}

void fs_uploader_stop(struct bfs_fs *fs)
{
    struct uploader *up = &fs->up;

    if (up->nthreads == 0)
        return;
    pthread_mutex_lock(&up->lock);
    up->stop = 1;
    pthread_cond_broadcast(&up->cond);
    pthread_mutex_unlock(&up->lock);
    for (int i = 0; i < up->nthreads; i++)
        pthread_join(up->threads[i], NULL);
    up->nthreads = 0;
    free(up->now.items);
    free(up->later.items);
    memset(&up->now, 0, sizeof(up->now));
    memset(&up->later, 0, sizeof(up->later));
    pthread_cond_destroy(&up->cond);
    pthread_mutex_destroy(&up->lock);
}
