/* SPDX-License-Identifier: MIT */
/*
 * fs-int.h: what the files of src/fs share.
 *
 * LOCKING
 *   fs->lock guards the inode table (hash, nlookup), the negative-lookup
 *   cache, the mapping list and the in-flight block table. It is never
 *   held across an S3 request, an SQLite call or a FUSE reply; code that
 *   needs those copies what it needs (key, bucket) out first.
 *   Lock order: fs->lock before any inflight entry's own condition wait
 *   (which releases it).
 *
 * INVARIANTS
 *   1. An inode in the table has nlookup > 0, or is the root.
 *   2. inode->key, ->map, ->kind and ->parent are immutable once made (a
 *      name that changes kind gets a new row, hence a new inode).
 *   3. An open file reads one ETag (file->etag); every GET carries it as
 *      If-Match.
 */
#ifndef BUCKETFS_FS_INT_H
#define BUCKETFS_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "bucketfs/config.h"
#include "bucketfs/fs.h"
#include "bucketfs/s3.h"
#include "bucketfs/store.h"

struct mapping {
    char *name;
    char *bucket;
    char *prefix;             /* "" or ending in '/' */
    struct bfs_s3_client *client; /* borrowed from fs->clients */
    int read_only;
    uint64_t ino;
};

struct inode {
    uint64_t ino;             /* immutable */
    uint64_t parent;          /* immutable */
    int kind;                 /* immutable, enum bfs_kind */
    int map;                  /* immutable: mapping index, -1 for the root */
    char *key;                /* immutable: object key, or prefix ending in '/' */
    uint64_t nlookup;         /* guarded by fs->lock */
    struct inode *next;       /* hash chain, guarded by fs->lock */
};

struct negative {
    uint64_t parent;
    char *name;
    int64_t until_ms;
    struct negative *next;
};

/* A block being fetched; readers of the same block wait on it. */
struct inflight {
    uint64_t ino, idx;
    char etag[BFS_S3_ETAG_MAX];
    int done;                 /* guarded by fs->lock */
    int err;
    char *data;               /* the block once done (owned; freed by the last ref) */
    size_t len;
    int refs;                 /* guarded by fs->lock */
    pthread_cond_t cond;
    struct inflight *next;
};

struct task {
    void (*fn)(void *arg);
    void *arg;
    struct task *next;
};

/* A small pool of worker threads for read-ahead and parallel lookups. */
struct workers {
    pthread_mutex_t lock;     /* guards head, tail, queued, stop */
    pthread_cond_t cond;
    struct task *head, *tail;
    int queued;
    int stop;
    int nthreads;             /* immutable */
    pthread_t *threads;
};

#define INODE_BUCKETS 4096
#define NEG_MAX 4096

struct bfs_fs {
    const struct bfs_config *cfg; /* borrowed, immutable */
    struct bfs_store *store;  /* borrowed */
    struct bfs_s3_client **clients; /* owned, immutable after new */
    size_t nclients;
    int64_t ttl_ms;           /* immutable */
    uint32_t block;           /* immutable: block size */
    int64_t started_ns;       /* immutable: mount time, the root's mtime */

    pthread_mutex_t lock;
    struct inode *inodes[INODE_BUCKETS];
    struct mapping **maps;    /* grows in ListBuckets mode; guarded by lock */
    size_t nmaps;
    int64_t maps_listed_ms;   /* ListBuckets mode: when the root was listed */
    int auto_maps;            /* immutable: no mapping configured */
    struct negative *neg;     /* guarded by lock */
    size_t nneg;
    struct inflight *inflight; /* guarded by lock */
    struct workers workers;

    atomic_uint_fast64_t skipped_keys, readahead_blocks, ranged_gets;
};

/* ---- inode.c ---- */
struct inode *fs_inode_get(struct bfs_fs *fs, uint64_t ino); /* caller holds lock */
int fs_inode_insert(struct bfs_fs *fs, struct inode *i);     /* takes ownership */
/* Finds or makes the in-memory inode for a store row under parent, adding
 * one lookup count. Returns a negative errno if the parent is unknown. */
int fs_inode_ref(struct bfs_fs *fs, uint64_t parent, const struct bfs_node *n);
/* Copies what an S3 request needs for ino: the mapping and the key. */
int fs_inode_target(struct bfs_fs *fs, uint64_t ino, struct mapping **ret_map, char **ret_key,
                    int *ret_kind);
void fs_node_to_stat(const struct bfs_fs *fs, const struct bfs_node *n, struct stat *st);
/* Fills n from object metadata (HEAD reply): kind, mode, uid, gid, mtime. */
void fs_node_from_object(struct bfs_node *n, const struct bfs_s3_object *o, int headed);
int fs_name_valid(const char *name, size_t len);
void fs_negative_add(struct bfs_fs *fs, uint64_t parent, const char *name);
int fs_negative_has(struct bfs_fs *fs, uint64_t parent, const char *name);
void fs_negative_clear(struct bfs_fs *fs, uint64_t parent);
struct mapping *fs_mapping_by_name(struct bfs_fs *fs, const char *name);
int fs_maps_refresh(struct bfs_fs *fs);

/* ---- workers.c ---- */
int fs_workers_start(struct workers *w, int n);
void fs_workers_stop(struct workers *w);
/* Queues fn(arg); -EAGAIN when the queue is long (the caller may skip it). */
int fs_workers_submit(struct workers *w, void (*fn)(void *), void *arg, int max_queued);

/* ---- lookup.c ---- */
/* Asks S3 what parent/name is (file, directory or nothing) and records it. */
int fs_resolve(struct bfs_fs *fs, uint64_t parent, const char *name, struct bfs_node *ret);
/* Re-checks a file's attributes with HEAD when they are older than the TTL. */
int fs_revalidate(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n);
/* Marks a node's attributes as needing a HEAD before the next use. */
void fs_node_stale(struct bfs_fs *fs, uint64_t ino);

#endif
