/* SPDX-License-Identifier: MIT */
/*
 * region.c: the region that signs a bucket's requests when none is
 * configured (SPEC.md: "Region is configured or discovered from the
 * bucket").
 *
 * A client without a region (no region key, AWS_REGION, AWS_DEFAULT_REGION
 * or profile region) sends a HeadBucket the first time it meets a bucket
 * and keeps the x-amz-bucket-region header of the reply. S3 sends it with
 * 200 and also with 301, 400 and 403, so neither the right region nor any
 * permission is needed to learn it. A server that sends no such header
 * gets us-east-1 for the bucket, as requests without a bucket do. A later
 * 301/307/400 reply naming another region replaces what is kept, and that
 * request is signed again for it (s3_region_learn).
 *
 * Regions are kept per client and bucket, so every mapping signs for its
 * own bucket even when mappings share a client. One thread asks per
 * bucket: others that meet the bucket meanwhile wait for its answer (on a
 * condition, no lock held across the request); an unanswered HeadBucket
 * settles nothing, and the next request asks again. When the endpoint itself
 * was made from the region (AWS, no endpoint given), the host follows the
 * bucket's region too (s3_build_target in client.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3-int.h"

#define REGIONS_MAX 256 /* buckets remembered per client; then the oldest goes */

struct s3_regions {
    pthread_mutex_t lock;  /* guards everything below */
    pthread_cond_t found;  /* broadcast when a discovery ends */
    size_t n;              /* slots used */
    size_t next;           /* slot to reuse once all are used */
    char *bucket[REGIONS_MAX];
    char region[REGIONS_MAX][S3_REGION_MAX];
    int pending[REGIONS_MAX]; /* a thread is asking HeadBucket; others wait */
};

struct s3_regions *s3_regions_new(void)
{
    struct s3_regions *rs = calloc(1, sizeof(*rs));

    if (rs) {
        pthread_mutex_init(&rs->lock, NULL);
        pthread_cond_init(&rs->found, NULL);
    }
    return rs;
}

void s3_regions_free(struct s3_regions *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++)
        free(rs->bucket[i]);
    pthread_cond_destroy(&rs->found);
    pthread_mutex_destroy(&rs->lock);
    free(rs);
}

/* A header value that can be a region: it goes into signatures and hosts. */
static int valid_region(const char *r)
{
    size_t n = strlen(r);

    if (n < 2 || n >= S3_REGION_MAX)
        return 0;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
            return 0;
    return 1;
}

/* Caller holds rs->lock. The slot of bucket, or -1. */
static int find(const struct s3_regions *rs, const char *bucket)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->bucket[i], bucket) == 0)
            return (int)i;
    return -1;
}

/* Caller holds rs->lock. A new slot for bucket (evicting the oldest
 * settled one when full), or -1 when none can be had. */
static int add(struct s3_regions *rs, const char *bucket)
{
    char *b = strdup(bucket);
    size_t i;

    if (!b)
        return -1;
    if (rs->n < REGIONS_MAX) {
        i = rs->n++;
    } else {
        for (size_t tries = 0; rs->pending[rs->next] && tries < REGIONS_MAX; tries++)
            rs->next = (rs->next + 1) % REGIONS_MAX;
        if (rs->pending[rs->next]) {
            free(b);
            return -1;
        }
        i = rs->next;
        rs->next = (rs->next + 1) % REGIONS_MAX;
        free(rs->bucket[i]);
    }
    rs->bucket[i] = b;
    rs->region[i][0] = '\0';
    rs->pending[i] = 0;
    return (int)i;
}

/* Caller holds rs->lock. Forgets slot i (a discovery that got no answer). */
static void drop(struct s3_regions *rs, int i)
{
    free(rs->bucket[i]);
    rs->n--;
    if ((size_t)i != rs->n) {
        rs->bucket[i] = rs->bucket[rs->n];
        memcpy(rs->region[i], rs->region[rs->n], S3_REGION_MAX);
        rs->pending[i] = rs->pending[rs->n];
    }
    rs->next = 0;
}

/* HeadBucket, signed for the default region (a 400 naming the region is
 * learnt and retried inside s3_request_perform). Returns whether the
 * server answered; out gets the region to use either way. */
static int head_bucket(struct bfs_s3_client *c, const char *bucket, char out[S3_REGION_MAX])
{
    struct s3_request r;
    int found, answered;

    s3_request_init(&r, BFS_S3_OP_OTHER, "HEAD", bucket, NULL);
    snprintf(r.region, sizeof(r.region), "%s", c->region); /* preset: no discovery */
    (void)s3_request_perform(c, &r, NULL);
    found = valid_region(r.bucket_region);
    answered = r.status != 0;
    snprintf(out, S3_REGION_MAX, "%s", found ? r.bucket_region : c->region);
    bfs_debug("s3 bucket %s: region %s (%s)", bucket, out,
              found      ? "x-amz-bucket-region of HeadBucket"
              : answered ? "HeadBucket named none: the default"
                         : "HeadBucket failed: the default for now");
    s3_request_done(&r);
    return answered;
}

void s3_region_for(struct bfs_s3_client *c, const char *bucket, char out[S3_REGION_MAX])
{
    struct s3_regions *rs = c->regions;
    int i, answered;

    if (!c->region_auto || !bucket) {
        snprintf(out, S3_REGION_MAX, "%s", c->region);
        return;
    }
    pthread_mutex_lock(&rs->lock);
    while ((i = find(rs, bucket)) >= 0 && rs->pending[i])
        pthread_cond_wait(&rs->found, &rs->lock);
    if (i >= 0) {
        memcpy(out, rs->region[i], S3_REGION_MAX);
        pthread_mutex_unlock(&rs->lock);
        return;
    }
    /* the first to meet the bucket asks; the others wait for its answer */
    i = add(rs, bucket);
    if (i >= 0)
        rs->pending[i] = 1;
    pthread_mutex_unlock(&rs->lock);
    answered = head_bucket(c, bucket, out);
    if (i < 0)
        return;
    pthread_mutex_lock(&rs->lock);
    i = find(rs, bucket);
    if (i >= 0 && answered) {
        snprintf(rs->region[i], S3_REGION_MAX, "%s", out);
        rs->pending[i] = 0;
    } else if (i >= 0) {
        drop(rs, i); /* nothing settled: the next request asks again */
    }
    pthread_cond_broadcast(&rs->found);
    pthread_mutex_unlock(&rs->lock);
}

int s3_region_learn(struct bfs_s3_client *c, struct s3_request *r)
{
    struct s3_regions *rs = c->regions;
    int i;

    if (!c->region_auto || !r->bucket || !valid_region(r->bucket_region) ||
        strcmp(r->bucket_region, r->region) == 0)
        return 0;
    if (r->status != 301 && r->status != 307 && r->status != 400)
        return 0;
    bfs_debug("s3 bucket %s: region %s, not %s (HTTP %d)", r->bucket, r->bucket_region,
              r->region, r->status);
    pthread_mutex_lock(&rs->lock);
    i = find(rs, r->bucket);
    if (i < 0)
        i = add(rs, r->bucket);
    if (i >= 0)
        snprintf(rs->region[i], S3_REGION_MAX, "%s", r->bucket_region);
    pthread_mutex_unlock(&rs->lock);
    snprintf(r->region, sizeof(r->region), "%s", r->bucket_region);
    return 1;
}
