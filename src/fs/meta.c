/* SPDX-License-Identifier: MIT */
/*
 * meta.c: what a listing cannot tell. LIST gives names, sizes and ETags;
 * the mode (and with it the type: symlink, FIFO), the owner and the mtime
 * that s3fs-style metadata carries need a request per object. This file
 * decides which entries of a listing to ask about, asks in parallel while
 * the listing goes on (dir.c hands it each page as it arrives), and writes
 * the answers into the listing's nodes, which dir.c stores keyed by ETag:
 * a later listing of the same versions, on this mount or the next, asks
 * nothing.
 *
 * Which entries (list_meta):
 *   none   none: the mount's defaults (inexact; an explicit opt-in)
 *   all    every object and directory marker not known for its ETag
 *   auto   a sample of each page (META_SAMPLE entries spread over it; entries
 *          already known count first); once any entry of the directory
 *          turns out to carry metadata, every entry of it. When no sample
 *          carries any (a bucket written by other tools), the others show
 *          the defaults without being marked HEADED, so that a lookup by
 *          name or an open asks S3 and corrects them (lookup.c).
 *   small  auto, and always every object under 4 KiB
 * Each is a HEAD: on Ceph RGW a GET of even a small object costs the server
 * a read of its data, and 10,000 HEADs took 7.0 s where GETs took 9.4 s
 * (RGW's request rate is the limit of a listing with metadata). A symlink's
 * target is fetched by its first readlink and kept in the block cache.
 *
 * LOCKING: ml->lock guards the queue, pending, closing and the thread
 * count (at most max_connections - 2, so that a listing's own next LIST
 * and other files' reads find a connection). A job's result is written by the one worker that ran it and read
 * by the listing's thread only once pending says the job ended (the lock
 * orders the two). Only the listing's thread touches the nodes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define META_JOBS 32   /* the most requests in flight for one listing */
#define META_SAMPLE 8  /* entries of a page asked about to learn whether the
                        * directory carries metadata */
#define META_PAGE 1000 /* what one LIST page holds */

struct meta_job {
    size_t idx;          /* the entry, in the caller's nodes */
    char name[256];
    char *key;           /* object key, or the directory's marker "dir/" */
    char etag[BFS_S3_ETAG_MAX]; /* what the listing says (objects) */
    int dir;
    /* the answer: */
    int r;               /* 0: o holds it; -ENOENT: no such object */
    struct bfs_s3_object o;
    struct meta_job *next; /* the queue */
};

struct meta_learn {
    struct bfs_fs *fs;
    struct mapping *m;
    char *prefix;
    int mode;              /* BFS_LIST_META_* */
    pthread_mutex_t lock;
    pthread_cond_t work, idle;
    struct meta_job *head, *tail;
    size_t pending;        /* queued or running */
    int closing;
    int nth, maxth;        /* maxth: immutable */
    pthread_t th[META_JOBS];
    atomic_int carrying;   /* an entry carries metadata */
    struct meta_job **jobs; /* every job, owned */
    size_t njobs, capjobs;
    size_t *deferred;      /* entries not asked about (yet) */
    size_t ndeferred, capdeferred;
};

int fs_meta_carried(const struct bfs_s3_meta *m)
{
    return bfs_s3_meta_get(m, "mode") || bfs_s3_meta_get(m, "uid") ||
           bfs_s3_meta_get(m, "gid") || bfs_s3_meta_get(m, "mtime");
}

static void run(struct meta_learn *ml, struct meta_job *j)
{
    struct bfs_s3_client *c = ml->m->client;
    const char *bucket = ml->m->bucket;

    atomic_fetch_add(&ml->fs->meta_requests, 1);
    if (ml->m->as_of_ns && j->dir)
        j->r = -ENOENT; /* no version of a marker is known: defaults (asof.c) */
    else if (ml->m->as_of_ns)
        j->r = fs_object_head(ml->m, j->key, j->etag, &j->o);
    else
        j->r = bfs_s3_head_object(c, bucket, j->key, &j->o, NULL);
    if (j->r == 0 && !j->dir) {
        char etag[BFS_S3_ETAG_MAX];

        bfs_s3_etag_normalize(j->o.etag, etag);
        if (strcmp(etag, j->etag) != 0)
            j->r = -ESTALE; /* another version than the listing's: ask again later */
    }
    if (j->r == 0 && fs_meta_carried(&j->o.meta))
        atomic_store(&ml->carrying, 1);
}

static void *worker(void *arg)
{
    struct meta_learn *ml = arg;

    pthread_mutex_lock(&ml->lock);
    for (;;) {
        struct meta_job *j;

        while (!ml->head && !ml->closing)
            pthread_cond_wait(&ml->work, &ml->lock);
        if (!ml->head)
            break;
        j = ml->head;
        ml->head = j->next;
        if (!ml->head)
            ml->tail = NULL;
        pthread_mutex_unlock(&ml->lock);
        run(ml, j);
        pthread_mutex_lock(&ml->lock);
        if (--ml->pending == 0)
            pthread_cond_broadcast(&ml->idle);
    }
    pthread_mutex_unlock(&ml->lock);
    return NULL;
}

struct meta_learn *fs_meta_begin(struct bfs_fs *fs, struct mapping *m, const char *prefix)
{
    struct meta_learn *ml;

    if (fs->cfg->list_meta == BFS_LIST_META_NONE)
        return NULL;
    ml = calloc(1, sizeof(*ml));
    if (!ml || !(ml->prefix = strdup(prefix))) {
        free(ml);
        return NULL; /* no memory: the listing shows defaults */
    }
    ml->fs = fs;
    ml->m = m;
    ml->mode = fs->cfg->list_meta;
    /* the connections less two: the listing's next LIST and a reader of
     * another file find one free */
    ml->maxth = fs->cfg->max_connections - 2;
    ml->maxth = ml->maxth < 1 ? 1 : ml->maxth > META_JOBS ? META_JOBS : ml->maxth;
    pthread_mutex_init(&ml->lock, NULL);
    pthread_cond_init(&ml->work, NULL);
    pthread_cond_init(&ml->idle, NULL);
    return ml;
}

/* Queues a request for entry idx; without memory the entry stays unknown. */
static void ask(struct meta_learn *ml, const struct bfs_node *nodes, size_t idx)
{
    const struct bfs_node *n = &nodes[idx];
    struct meta_job *j;
    struct bfs_buf key;

    if (ml->njobs == ml->capjobs) {
        size_t cap = ml->capjobs ? ml->capjobs * 2 : 64;
        struct meta_job **nj = realloc(ml->jobs, cap * sizeof(*nj));

        if (!nj)
            return;
        ml->jobs = nj;
        ml->capjobs = cap;
    }
    j = calloc(1, sizeof(*j));
    bfs_buf_init(&key, 8192);
    if (!j || bfs_buf_addf(&key, "%s%s%s", ml->prefix, n->name,
                           n->kind == BFS_KIND_DIR ? "/" : "") < 0) {
        bfs_buf_done(&key);
        free(j);
        return;
    }
    j->key = bfs_buf_steal(&key);
    j->idx = idx;
    memcpy(j->name, n->name, sizeof(j->name));
    j->dir = n->kind == BFS_KIND_DIR;
    memcpy(j->etag, n->etag, sizeof(j->etag));
    ml->jobs[ml->njobs++] = j;
    pthread_mutex_lock(&ml->lock);
    if (ml->tail)
        ml->tail->next = j;
    else
        ml->head = j;
    ml->tail = j;
    ml->pending++;
    /* a thread per request in flight, up to maxth */
    if (ml->nth < ml->maxth && (size_t)ml->nth < ml->pending &&
        pthread_create(&ml->th[ml->nth], NULL, worker, ml) == 0)
        ml->nth++;
    pthread_cond_signal(&ml->work);
    pthread_mutex_unlock(&ml->lock);
}

static int defer(struct meta_learn *ml, size_t idx)
{
    if (ml->ndeferred == ml->capdeferred) {
        size_t cap = ml->capdeferred ? ml->capdeferred * 2 : 256;
        size_t *nd = realloc(ml->deferred, cap * sizeof(*nd));

        if (!nd)
            return -ENOMEM;
        ml->deferred = nd;
        ml->capdeferred = cap;
    }
    ml->deferred[ml->ndeferred++] = idx;
    return 0;
}

static void ask_deferred(struct meta_learn *ml, const struct bfs_node *nodes)
{
    for (size_t k = 0; k < ml->ndeferred; k++)
        ask(ml, nodes, ml->deferred[k]);
    ml->ndeferred = 0;
}

static int known(const struct bfs_node *n)
{
    return n->local || (n->meta & BFS_META_HEADED);
}

void fs_meta_page(struct meta_learn *ml, const struct bfs_node *nodes, size_t from, size_t to)
{
    size_t ncand = 0, nknown = 0, want, *cand;

    if (!ml || from >= to)
        return;
    for (size_t i = from; i < to; i++) {
        if (!known(&nodes[i]))
            continue;
        nknown++;
        if (nodes[i].meta & (BFS_META_MODE | BFS_META_UID | BFS_META_GID | BFS_META_MTIME))
            atomic_store(&ml->carrying, 1);
    }
    if (ml->mode == BFS_LIST_META_ALL || atomic_load(&ml->carrying)) {
        ask_deferred(ml, nodes);
        for (size_t i = from; i < to; i++)
            if (!known(&nodes[i]))
                ask(ml, nodes, i);
        return;
    }
    cand = malloc((to - from) * sizeof(*cand));
    if (!cand)
        return;
    for (size_t i = from; i < to; i++) {
        if (known(&nodes[i]))
            continue;
        if (ml->mode == BFS_LIST_META_SMALL && nodes[i].kind != BFS_KIND_DIR &&
            nodes[i].size <= BFS_META_SMALL_MAX)
            ask(ml, nodes, i);
        else
            cand[ncand++] = i;
    }
    /* the sample: spread over the page, so that one kind of name (a
     * prefix of files another tool wrote) does not make all of it */
    want = nknown >= META_SAMPLE ? 0 : META_SAMPLE - nknown;
    if (want > ncand)
        want = ncand;
    for (size_t k = 0, s = 0; k < ncand; k++) {
        if (s < want && k == s * ncand / want) {
            ask(ml, nodes, cand[k]);
            s++;
        } else if (defer(ml, cand[k]) < 0) {
            break;
        }
    }
    free(cand);
}

void fs_meta_batch(struct meta_learn *ml, const struct bfs_node *nodes, size_t n)
{
    for (size_t from = 0; ml && from < n; from += META_PAGE)
        fs_meta_page(ml, nodes, from, from + META_PAGE < n ? from + META_PAGE : n);
}

/* What one answer says of its entry. */
static void apply(struct bfs_node *n, struct meta_job *j)
{
    if (j->dir) {
        if (j->r == 0) {
            int64_t fetched = n->fetched_ns;

            fs_node_from_object(n, &j->o, 1);
            n->fetched_ns = fetched;
        } else if (j->r != -ENOENT) {
            return; /* not known: stays as the listing said */
        }
        n->meta |= BFS_META_HEADED; /* marker or none: the directory is known */
        n->kind = BFS_KIND_DIR;
        n->size = 0;
        n->etag[0] = '\0';
        return;
    }
    if (j->r == 0) {
        int64_t fetched = n->fetched_ns;

        fs_node_from_object(n, &j->o, 1);
        n->fetched_ns = fetched;
    }
}

void fs_meta_end(struct meta_learn *ml, struct bfs_node *nodes)
{
    if (!ml)
        return;
    pthread_mutex_lock(&ml->lock);
    for (;;) {
        while (ml->pending > 0)
            pthread_cond_wait(&ml->idle, &ml->lock);
        if (!atomic_load(&ml->carrying) || ml->ndeferred == 0)
            break;
        /* a late answer carried metadata: the rest of the directory too */
        pthread_mutex_unlock(&ml->lock);
        ask_deferred(ml, nodes);
        pthread_mutex_lock(&ml->lock);
    }
    ml->closing = 1;
    pthread_cond_broadcast(&ml->work);
    pthread_mutex_unlock(&ml->lock);
    for (int i = 0; i < ml->nth; i++)
        pthread_join(ml->th[i], NULL);
    ml->nth = 0;
    for (size_t k = 0; k < ml->njobs; k++)
        apply(&nodes[ml->jobs[k]->idx], ml->jobs[k]);
}

size_t fs_meta_count(const struct meta_learn *ml)
{
    return ml ? ml->njobs : 0;
}

int fs_meta_answer(const struct meta_learn *ml, size_t k, struct meta_answer *ret)
{
    const struct meta_job *j;

    if (!ml || k >= ml->njobs)
        return -ENOENT;
    j = ml->jobs[k];
    if (j->r != 0)
        return j->r;
    ret->name = j->name;
    ret->dir = j->dir;
    ret->etag = j->etag;
    ret->meta = &j->o.meta;
    return 0;
}

void fs_meta_free(struct meta_learn *ml)
{
    if (!ml)
        return;
    if (ml->nth) { /* fs_meta_end was not called: stop the workers */
        pthread_mutex_lock(&ml->lock);
        ml->closing = 1;
        pthread_cond_broadcast(&ml->work);
        while (ml->pending > 0)
            pthread_cond_wait(&ml->idle, &ml->lock);
        pthread_mutex_unlock(&ml->lock);
        for (int i = 0; i < ml->nth; i++)
            pthread_join(ml->th[i], NULL);
    }
    for (size_t k = 0; k < ml->njobs; k++) {
        bfs_s3_object_done(&ml->jobs[k]->o);
        free(ml->jobs[k]->key);
        free(ml->jobs[k]);
    }
    free(ml->jobs);
    free(ml->deferred);
    free(ml->prefix);
    pthread_cond_destroy(&ml->work);
    pthread_cond_destroy(&ml->idle);
    pthread_mutex_destroy(&ml->lock);
    free(ml);
}
