/* SPDX-License-Identifier: MIT */
/*
 * parts.c: the parts of one multipart upload, sent in parallel from a few
 * threads that each take the next part number until all are sent or one
 * fails (then the others stop taking new ones). Creating, completing and
 * aborting the upload stay with the caller, who knows what the upload is
 * for (the journal's UploadId, conditions on Complete).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "s3-int.h"

#define JOBS_MAX 64

struct sender {
    struct bfs_s3_client *c;
    const char *bucket, *key, *id;
    const struct bfs_s3_parts *p;
    int nparts;
    char **etags;
    pthread_mutex_t lock; /* guards next, err, e */
    int next, err;
    struct bfs_s3_error e;
};

static int take(struct sender *s)
{
    int part;

    pthread_mutex_lock(&s->lock);
    part = s->err == 0 && s->next < s->nparts ? s->next++ : -1;
    pthread_mutex_unlock(&s->lock);
    return part;
}

static void *send_parts(void *arg)
{
    struct sender *s = arg;
    const struct bfs_s3_parts *p = s->p;
    int part;

    while ((part = take(s)) >= 0) {
        struct bfs_s3_body body = {.fd = p->fd, .offset = (uint64_t)part * p->part_size};
        struct bfs_s3_error e = {0};
        char etag[BFS_S3_ETAG_MAX];
        int r;

        body.length = p->size - body.offset < p->part_size ? p->size - body.offset : p->part_size;
        r = bfs_s3_mpu_part(s->c, s->bucket, s->key, s->id, part + 1, &body, etag, &e);
        if (r == 0 && p->progress)
            p->progress(p->ctx, body.length);
        pthread_mutex_lock(&s->lock);
        if (r == 0 && !(s->etags[part] = strdup(etag)))
            r = -ENOMEM;
        if (r < 0 && s->err == 0) {
            s->err = r;
            s->e = e;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

int bfs_s3_parts_count(const struct bfs_s3_parts *p)
{
    return p->size ? (int)((p->size + p->part_size - 1) / p->part_size) : 1;
}

int bfs_s3_mpu_send_parts(struct bfs_s3_client *c, const char *bucket, const char *key,
                          const char *upload_id, const struct bfs_s3_parts *p, char ***ret_etags,
                          struct bfs_s3_error *reterr)
{
    struct sender s = {.c = c, .bucket = bucket, .key = key, .id = upload_id, .p = p};
    pthread_t th[JOBS_MAX];
    int jobs = p->jobs > 0 && p->jobs <= JOBS_MAX ? p->jobs : 4, n = 0;

    s.nparts = bfs_s3_parts_count(p);
    if (!(s.etags = calloc((size_t)s.nparts, sizeof(char *))))
        return -ENOMEM;
    pthread_mutex_init(&s.lock, NULL);
    for (; n < jobs && n < s.nparts; n++)
        if (pthread_create(&th[n], NULL, send_parts, &s) != 0)
            break;
    if (n == 0) /* no thread to be had: this one sends them */
        send_parts(&s);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&s.lock);
    if (s.err < 0) {
        bfs_s3_etags_free(s.etags, s.nparts);
        if (reterr)
            *reterr = s.e;
        return s.err;
    }
    *ret_etags = s.etags;
    return 0;
}

void bfs_s3_etags_free(char **etags, int n)
{
    for (int i = 0; etags && i < n; i++)
        free(etags[i]);
    free(etags);
}
