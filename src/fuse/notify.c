/* SPDX-License-Identifier: MIT */
/*
 * notify.c: the kernel invalidations of one session, sent by one thread.
 *
 * LOCKING: n->lock guards the queue, stop and every item's done and
 * abandoned flags. An item belongs to its caller while the caller waits
 * for it, and to the thread otherwise (queued without wait, or abandoned
 * by a caller that stopped waiting): whoever sees the other gone frees it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucketfs/util.h"
#include "fuse-int.h"

#define WAIT_MS 1000 /* the longest a caller waits for its invalidation */

struct item {
    int entry;           /* inval_entry; else inval_inode */
    uint64_t ino;        /* the inode, or the entry's parent */
    int data;
    char *name;
    int waited;          /* the caller waits for it */
    int done, abandoned;
    struct item *next;
};

struct notifier {
    struct fuse_session *se;
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* work queued, or an item done */
    struct item *head, *tail;
    int stop;
    pthread_t th;
};

static void item_free(struct item *it)
{
    free(it->name);
    free(it);
}

static void send_one(struct notifier *n, struct item *it)
{
    /* -ENOENT: the kernel holds nothing of it; other errors (unmounting)
     * leave nothing to do either */
    if (it->entry)
        (void)fuse_lowlevel_notify_inval_entry(n->se, it->ino, it->name, strlen(it->name));
    else
        (void)fuse_lowlevel_notify_inval_inode(n->se, it->ino, it->data ? 0 : -1, 0);
}

static void *run(void *arg)
{
    struct notifier *n = arg;

    pthread_mutex_lock(&n->lock);
    for (;;) {
        struct item *it;

        while (!n->head && !n->stop)
            pthread_cond_wait(&n->cond, &n->lock);
        if (!n->head)
            break;
        it = n->head;
        n->head = it->next;
        if (!n->head)
            n->tail = NULL;
        pthread_mutex_unlock(&n->lock);
        send_one(n, it);
        pthread_mutex_lock(&n->lock);
        if (!it->waited || it->abandoned) {
            item_free(it);
        } else {
            it->done = 1;
            pthread_cond_broadcast(&n->cond);
        }
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

struct notifier *notifier_start(struct fuse_session *se)
{
    struct notifier *n = calloc(1, sizeof(*n));
    pthread_condattr_t ca;

    if (!n)
        return NULL;
    n->se = se;
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&n->th, NULL, run, n) != 0) {
        pthread_cond_destroy(&n->cond);
        pthread_mutex_destroy(&n->lock);
        free(n);
        return NULL;
    }
    return n;
}

void notifier_stop(struct notifier *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stop = 1;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->th, NULL);
    /* the thread ends with the queue empty; no caller waits any more */
    pthread_cond_destroy(&n->cond);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static void post(struct notifier *n, struct item *it)
{
    struct timespec until;
    int64_t ms;

    pthread_mutex_lock(&n->lock);
    if (n->stop) {
        pthread_mutex_unlock(&n->lock);
        item_free(it);
        return;
    }
    if (n->tail)
        n->tail->next = it;
    else
        n->head = it;
    n->tail = it;
    pthread_cond_broadcast(&n->cond);
    if (!it->waited) {
        pthread_mutex_unlock(&n->lock);
        return;
    }
    ms = bfs_mono_ms() + WAIT_MS;
    until.tv_sec = ms / 1000;
    until.tv_nsec = (ms % 1000) * 1000000;
    while (!it->done && pthread_cond_timedwait(&n->cond, &n->lock, &until) != ETIMEDOUT)
        ;
    if (it->done)
        item_free(it);
    else
        it->abandoned = 1; /* the thread frees it once sent */
    pthread_mutex_unlock(&n->lock);
}

void notifier_inval_inode(void *ctx, uint64_t ino, int data, int wait)
{
    struct item *it = calloc(1, sizeof(*it));

    if (!it)
        return; /* the kernel learns at its attributes' timeout */
    it->ino = ino;
    it->data = data;
    it->waited = wait;
    post(ctx, it);
}

void notifier_inval_entry(void *ctx, uint64_t parent, const char *name, int wait)
{
    struct item *it = calloc(1, sizeof(*it));

    if (!it || !(it->name = strdup(name))) {
        free(it);
        return;
    }
    it->entry = 1;
    it->ino = parent;
    it->waited = wait;
    post(ctx, it);
}
