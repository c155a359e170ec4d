/* SPDX-License-Identifier: MIT */
/*
 * blockfds.c: the block files kept open for readers, shared by all handles.
 *
 * A read of a cached block needs its file. Asking the index (SQLite) and
 * opening and closing the file for every read cost more than the read
 * itself when reads are small and random (4 KiB reads over a large object),
 * so open block files are kept in a table keyed by (inode, ETag, block),
 * and the least recently used is closed when the table is full.
 *
 * NOTES ON THE DESIGN
 * 1. A block file never changes once indexed (blocks.c note 1): a kept
 *    descriptor reads the right bytes even after eviction unlinked the
 *    file. The disk space of such a file comes back at its close, so the
 *    table is small next to the cache limit (fs_blockfds_init).
 * 2. A block the store finds broken is dropped from the table (a new fetch
 *    writes a new file; the old descriptor would keep the bad one).
 * 3. Readers hold a reference (refs) while they use a descriptor; the table
 *    holds one while the entry is in it. The last unref closes the file. It
 *    takes no lock: a spliced reply drops its reference after the reply,
 *    when the handle it came from may be gone already.
 * 4. The index's used_ns, which eviction goes by, is refreshed through the
 *    store at most every BFS_STORE_TOUCH_NS per entry, so that a block read
 *    only through a kept descriptor is not evicted as if unused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define BLOCKFDS_MIN 16
#define BLOCKFDS_MAX 1024

static size_t slot_of(const struct blockfds *t, uint64_t ino, const char *etag, uint64_t idx)
{
    uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ idx * 0xc2b2ae3d27d4eb4full;

    for (const char *p = etag; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29)) & (t->nslots - 1);
}

int fs_blockfds_init(struct blockfds *t, uint64_t cache_size, uint32_t block)
{
    struct rlimit rl;
    uint64_t cap = cache_size / 8 / (block ? block : 1);

    /* note 1: at most an eighth of the cache held by kept descriptors; and
     * at most a quarter of the descriptors this process may open */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        cap > rl.rlim_cur / 4)
        cap = rl.rlim_cur / 4;
    if (cap > BLOCKFDS_MAX)
        cap = BLOCKFDS_MAX;
    if (cap < BLOCKFDS_MIN)
        cap = BLOCKFDS_MIN;
    t->cap = (size_t)cap;
    for (t->nslots = 1; t->nslots < 2 * t->cap;)
        t->nslots <<= 1;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    return 0;
}

void fs_blockfd_unref(struct blockfd *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1) {
        close(b->fd);
        free(b);
    }
}

/* Takes b out of the use list. Caller holds t->lock. */
static void list_remove(struct blockfds *t, struct blockfd *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        t->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        t->tail = b->prev;
    b->prev = b->next = NULL;
}

/* Takes b out of the hash chain and the use list. Caller holds t->lock;
 * the table's reference passes to the caller. */
static void unlink_entry(struct blockfds *t, struct blockfd *b)
{
    struct blockfd **pp = &t->slots[slot_of(t, b->ino, b->etag, b->idx)];

    while (*pp && *pp != b)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = b->hnext;
    list_remove(t, b);
    b->hnext = NULL;
    b->cached = 0;
    t->n--;
}

static void push_front(struct blockfds *t, struct blockfd *b)
{
    b->prev = NULL;
    b->next = t->head;
    if (t->head)
        t->head->prev = b;
    t->head = b;
    if (!t->tail)
        t->tail = b;
}

void fs_blockfds_free(struct blockfds *t)
{
    if (!t->slots)
        return;
    while (t->head) {
        struct blockfd *b = t->head;

        unlink_entry(t, b);
        fs_blockfd_unref(b);
    }
    free(t->slots);
    t->slots = NULL;
    pthread_mutex_destroy(&t->lock);
}

void fs_blockfds_trim(struct blockfds *t)
{
    if (!t->slots)
        return;
    pthread_mutex_lock(&t->lock);
    while (t->head) { /* readers keep theirs: only the table's reference goes */
        struct blockfd *b = t->head;

        unlink_entry(t, b);
        fs_blockfd_unref(b);
    }
    pthread_mutex_unlock(&t->lock);
}

/* The entry for the key with a reference, or NULL; caller holds t->lock.
 * *touch: the index should hear of the use (note 4). */
static struct blockfd *lookup(struct blockfds *t, uint64_t ino, const char *etag, uint64_t idx,
                              int64_t now, int *touch)
{
    struct blockfd *b = t->slots[slot_of(t, ino, etag, idx)];

    while (b && (b->ino != ino || b->idx != idx || strcmp(b->etag, etag) != 0))
        b = b->hnext;
    if (b) {
        atomic_fetch_add(&b->refs, 1);
        *touch = now - b->touched_ns > BFS_STORE_TOUCH_NS;
        if (*touch)
            b->touched_ns = now;
        if (t->head != b) { /* most recently used first */
            list_remove(t, b);
            push_front(t, b);
        }
    }
    return b;
}

int fs_blockfd_get(struct bfs_fs *fs, const struct target *tg, uint64_t idx,
                   struct blockfd **ret)
{
    struct blockfds *t = &fs->bfds;
    struct blockfd *b, *old = NULL, *raced;
    int64_t now = bfs_now_ns();
    int r, touch = 0;

    pthread_mutex_lock(&t->lock);
    b = lookup(t, tg->ino, tg->etag, idx, now, &touch);
    pthread_mutex_unlock(&t->lock);
    if (b) {
        bfs_store_block_hit(fs->store, b->ino, b->etag, b->idx, touch);
        atomic_fetch_add(&fs->block_fd_reuses, 1);
        *ret = b;
        return 0;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    r = bfs_store_block_open(fs->store, tg->ino, tg->etag, idx, &b->fd, &b->len);
    if (r < 0) {
        free(b);
        return r;
    }
    b->ino = tg->ino;
    b->idx = idx;
    memcpy(b->etag, tg->etag, sizeof(b->etag));
    b->touched_ns = now;
    atomic_init(&b->refs, 2); /* the table's and the caller's */
    pthread_mutex_lock(&t->lock);
    raced = lookup(t, tg->ino, tg->etag, idx, now, &touch); /* opened by another meanwhile */
    if (!raced) {
        size_t s = slot_of(t, b->ino, b->etag, idx);

        b->hnext = t->slots[s];
        t->slots[s] = b;
        b->cached = 1;
        push_front(t, b);
        if (++t->n > t->cap) {
            old = t->tail;
            unlink_entry(t, old);
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (raced) {
        atomic_store(&b->refs, 1);
        fs_blockfd_unref(b);
        b = raced;
    }
    if (old)
        fs_blockfd_unref(old);
    *ret = b;
    return 0;
}

void fs_blockfd_bad(struct bfs_fs *fs, struct blockfd *b)
{
    int cached;

    pthread_mutex_lock(&fs->bfds.lock);
    cached = b->cached;
    if (cached)
        unlink_entry(&fs->bfds, b);
    pthread_mutex_unlock(&fs->bfds.lock);
    bfs_store_block_bad(fs->store, b->ino, b->etag, b->idx);
    if (cached)
        fs_blockfd_unref(b);
}
