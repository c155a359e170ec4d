/* SPDX-License-Identifier: MIT */
/*
 * workers.c: a fixed pool of threads running queued tasks: read-ahead
 * fetches and readers' block fetches (fetch.c). Uploads have their own
 * threads (upload.c). The queue is bounded by the caller's max_queued so
 * that read-ahead cannot pile up without end.
 * A reader's own block fetch jumps the queue, and only when a thread is
 * idle to start it at once: it must never wait behind read-ahead.
 * Background fetches (randfetch.c) go in a second queue of the lowest
 * priority: a thread takes from it only when the first queue is empty, and
 * at most low_max of its tasks run at once, so that read-ahead queued after
 * them starts first and finds threads free.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs-int.h"

/* The next task to run, or NULL; caller holds w->lock. While stopping,
 * the low queue drains whatever low_max says (its tasks see the stop and
 * end at once). */
static struct task *take(struct workers *w)
{
    struct task *t = w->head;

    if (t) {
        w->head = t->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
        return t;
    }
    t = w->low_head;
    if (!t || (w->low_running >= w->low_max && !w->stop))
        return NULL;
    w->low_head = t->next;
    if (!w->low_head)
        w->low_tail = NULL;
    w->low_running++;
    return t;
}

static void *worker(void *arg)
{
    struct workers *w = arg;

    for (;;) {
        struct task *t;
        int low;

        pthread_mutex_lock(&w->lock);
        w->idle++;
        while (!(t = take(w)) && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        w->idle--;
        pthread_mutex_unlock(&w->lock);
        if (!t) /* stopping, queues drained */
            return NULL;
        low = t->low;
        t->fn(t->arg);
        free(t);
        if (low) { /* a slot of the low queue is free: a waiting task may go */
            pthread_mutex_lock(&w->lock);
            w->low_running--;
            if (w->low_head)
                pthread_cond_signal(&w->cond);
            pthread_mutex_unlock(&w->lock);
        }
    }
}

int fs_workers_start(struct workers *w, int n, int low_max)
{
    w->low_max = low_max > 0 ? low_max : 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->threads = calloc((size_t)n, sizeof(*w->threads));
    if (!w->threads)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&w->threads[i], NULL, worker, w) != 0)
            break;
        w->nthreads++;
    }
    return w->nthreads > 0 ? 0 : -EAGAIN;
}

void fs_workers_stop(struct workers *w)
{
    if (!w->threads)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    free(w->threads);
    w->threads = NULL;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

static struct task *task_new(void (*fn)(void *), void *arg, int low)
{
    struct task *t = malloc(sizeof(*t));

    if (t) {
        t->fn = fn;
        t->arg = arg;
        t->low = low;
        t->next = NULL;
    }
    return t;
}

/* Puts t at the end of the queue *head .. *tail; caller holds w->lock. */
static void append(struct task **head, struct task **tail, struct task *t)
{
    if (*tail)
        (*tail)->next = t;
    else
        *head = t;
    *tail = t;
}

int fs_workers_submit(struct workers *w, void (*fn)(void *), void *arg, int max_queued)
{
    struct task *t = task_new(fn, arg, 0);

    if (!t)
        return -ENOMEM;
    pthread_mutex_lock(&w->lock);
    if (w->stop || (max_queued > 0 && w->queued >= max_queued)) {
        pthread_mutex_unlock(&w->lock);
        free(t);
        return -EAGAIN;
    }
    append(&w->head, &w->tail, t);
    w->queued++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int fs_workers_submit_now(struct workers *w, void (*fn)(void *), void *arg)
{
    struct task *t = task_new(fn, arg, 0);

    if (!t)
        return -ENOMEM;
    pthread_mutex_lock(&w->lock);
    /* an idle thread, even one already woken for another task, takes the
     * head of the queue next: this task */
    if (w->stop || w->idle == 0) {
        pthread_mutex_unlock(&w->lock);
        free(t);
        return -EAGAIN;
    }
    t->next = w->head;
    w->head = t;
    if (!w->tail)
        w->tail = t;
    w->queued++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int fs_workers_submit_low(struct workers *w, void (*fn)(void *), void *arg)
{
    struct task *t = task_new(fn, arg, 1);

    if (!t)
        return -ENOMEM;
    pthread_mutex_lock(&w->lock);
    if (w->stop) {
        pthread_mutex_unlock(&w->lock);
        free(t);
        return -EAGAIN;
    }
    append(&w->low_head, &w->low_tail, t);
    if (w->low_running < w->low_max)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}
