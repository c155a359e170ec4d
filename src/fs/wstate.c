/* SPDX-License-Identifier: MIT */
/*
 * wstate.c: the state of a write file (struct wfile) and its transitions,
 * in one place. write.c, upload.c, namespace.c and read.c decide when a
 * transition happens; only the functions here change the state flags
 * (dirty, sealed, queued, uploading, rerun, held, bounced, deleted,
 * done_gen, gen, last_err), each with w->lock held, and each checks the
 * invariants afterwards. The diagram is above struct wfile in fs-int.h.
 *
 * A broken invariant is a bug in bucketfs, never the user's doing: it is
 * logged with the whole state, and in debug builds (the sanitizer pass of
 * the tests) it aborts so that the tests cannot miss it.
 */
#include <stdlib.h>

#include "bucketfs/util.h"
#include "fs-int.h"

enum wstate fs_wstate(const struct wfile *w)
{
    if (w->deleted)
        return WS_DELETED;
    if (w->dirty)
        return WS_DIRTY;
    if (w->uploading)
        return WS_UPLOADING;
    if (w->done_gen >= w->gen)
        return WS_CLEAN;
    return w->sealed ? WS_COMMITTED : WS_CHANGING;
}

const char *fs_wstate_name(enum wstate s)
{
    static const char *const names[] = {[WS_CLEAN] = "clean", [WS_DIRTY] = "dirty",
                                        [WS_CHANGING] = "changing", [WS_COMMITTED] = "committed",
                                        [WS_UPLOADING] = "uploading", [WS_DELETED] = "deleted"};

    return names[s];
}

/* The first invariant w breaks, or NULL. */
static const char *broken(const struct wfile *w)
{
    if (w->done_gen > w->gen)
        return "an upload newer than the file";
    if (w->low_gen > w->gen + 1) /* gen + 1: every file forgotten (unlinked, uploaded) */
        return "the oldest staging file newer than the file";
    if (w->dirty && w->sealed && !w->deleted)
        return "written into a committed generation";
    if (w->held < 0 || w->writers < 0 || w->opens < w->writers || w->unflushed < 0)
        return "a negative count";
    if (!w->base_set && w->base_etag[0])
        return "a base version that is not used";
    if (w->fd < 0)
        return "no staging file";
    return NULL;
}

static void check(const struct wfile *w, const char *after)
{
    const char *why = broken(w);

    if (!why)
        return;
    bfs_err("BUG: inode %llu after %s: %s (state %s, gen %llu, done %llu, dirty %d, sealed %d, "
            "queued %d, uploading %d, held %d, writers %d, opens %d)",
            (unsigned long long)w->ino, after, why, fs_wstate_name(fs_wstate(w)),
            (unsigned long long)w->gen, (unsigned long long)w->done_gen, w->dirty, w->sealed,
            w->queued, w->uploading, w->held, w->writers, w->opens);
#ifdef BFS_DEBUG_INVARIANTS
    abort();
#endif
}

void ws_written(struct wfile *w)
{
    w->dirty = 1;
    check(w, "a write");
}

void ws_committed(struct bfs_fs *fs, struct wfile *w)
{
    w->dirty = 0;
    w->sealed = 1;
    w->queued = 1;
    w->last_err = 0;
    /* gen may have been a copy of what S3 held (create): not any more */
    if (w->done_gen >= w->gen)
        w->done_gen = w->gen - 1;
    fs_upload_enqueue_later(fs, w->ino);
    check(w, "a commit");
}

void ws_new_gen(struct wfile *w)
{
    w->gen++;
    w->sealed = 0;
    check(w, "a new generation");
}

void ws_back_to(struct wfile *w, uint64_t gen, int in_s3)
{
    w->gen = gen;
    w->dirty = 0;
    w->sealed = 1;
    if (in_s3)
        w->done_gen = gen;
    check(w, "a return to a saved generation");
}

int ws_queue(struct bfs_fs *fs, struct wfile *w)
{
    if (w->queued || w->deleted)
        return 0;
    ws_requeue(fs, w);
    return 1;
}

void ws_requeue(struct bfs_fs *fs, struct wfile *w)
{
    w->queued = 1;
    fs_upload_enqueue(fs, w->ino);
}

enum ws_begin ws_upload_begin(struct wfile *w)
{
    if (w->uploading) { /* one at a time; the running one queues again when it ends */
        w->queued = 0;
        w->rerun = 1;
        return WS_LATER;
    }
    if (w->held) { /* an unlink or rename decides first; queued again after */
        w->bounced = 1;
        return WS_HELD;
    }
    w->uploading = 1;
    w->queued = 0;
    w->sent = 0;
    check(w, "an upload's start");
    return WS_GO;
}

void ws_upload_landed(struct wfile *w, uint64_t gen)
{
    if (w->done_gen < gen)
        w->done_gen = gen;
    w->uploading = 0;
    w->last_err = 0;
    w->remote = 1;
    check(w, "an upload");
}

void ws_upload_failed(struct wfile *w, int err)
{
    w->uploading = 0;
    w->last_err = err;
    w->rerun = 0; /* the retry scan sends the newest row when its time comes */
    pthread_cond_broadcast(&w->cond);
    check(w, "a failed upload");
}

void ws_upload_none(struct wfile *w, int committed)
{
    w->uploading = 0;
    if (!committed && w->done_gen < w->gen && !w->dirty)
        w->done_gen = w->gen; /* no row: every generation is done */
    check(w, "an upload with nothing to send");
}

void ws_upload_ended(struct wfile *w)
{
    w->rerun = 0;
    pthread_cond_broadcast(&w->cond);
}

void ws_cancelled(struct wfile *w)
{
    w->deleted = 1;
    w->dirty = 0;
    pthread_cond_broadcast(&w->cond);
    check(w, "an unlink");
}

void ws_hold(struct wfile *w)
{
    w->held++;
    while (w->uploading)
        pthread_cond_wait(&w->cond, &w->lock);
    check(w, "a hold");
}

int ws_unhold(struct wfile *w)
{
    int bounced;

    w->held--;
    bounced = w->held == 0 && w->bounced;
    if (bounced)
        w->bounced = 0;
    check(w, "the end of a hold");
    return bounced;
}
