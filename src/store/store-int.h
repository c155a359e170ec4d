/* SPDX-License-Identifier: MIT */
/*
 * store-int.h: what the files of src/store share: the store object, the
 * per-thread connection with its prepared statements, and the statement
 * table.
 */
#ifndef BUCKETFS_STORE_INT_H
#define BUCKETFS_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "bucketfs/store.h"

enum stmt_id {
    ST_NODE_GET, ST_NODE_LOOKUP, ST_NODE_PUT, ST_NODE_GONE, ST_CHILDREN, ST_CHILDREN_ABSENT,
    ST_NODE_UPDATE, ST_NODE_DROP_AT, ST_NODE_MOVE, ST_NODE_REMOVE, ST_NODE_INSERT, ST_NODE_DROP_NAME,
    ST_NODE_LEARNT,
    ST_LISTING_GET, ST_LISTING_SET, ST_LISTING_DEL,
    ST_BLOCK_GET, ST_BLOCK_TOUCH, ST_BLOCK_PUT, ST_BLOCK_DEL, ST_BLOCK_LRU, ST_BLOCK_OF_INO,
    ST_XATTR_GET, ST_XATTR_SET, ST_XATTR_DEL, ST_XATTR_LIST, ST_XATTR_CLEAR,
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_COUNT
};

struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    struct store_conn *next;      /* in owner->conns, guarded by owner->lock */
    struct store_conn *next_idle; /* in owner->idle, guarded by owner->lock */
    struct bfs_store *owner;      /* immutable */
    int64_t busy_waited;          /* us, for store_busy_handler */
};

struct bfs_store {
    char *dir;                /* immutable */
    char *db_path;            /* immutable */
    uint64_t limit;           /* immutable: block cache size in bytes */
    pthread_key_t key;        /* this thread's struct store_conn */
    pthread_mutex_t lock;     /* guards conns */
    struct store_conn *conns; /* every connection, for closing */
    struct store_conn *idle;  /* connections of threads that ended, for reuse */
    pthread_mutex_t evict_lock; /* one evictor at a time */
    atomic_uint_fast64_t cache_bytes, blocks;
    atomic_uint_fast64_t hits, misses, evictions, write_failures;
    struct journal *journal;  /* journal.c: its own connection and lock */
};

/* This thread's connection (made on first use); NULL if it cannot open. */
struct store_conn *store_conn(struct bfs_store *s);
/* A reset statement of this connection, ready for binding. */
sqlite3_stmt *store_stmt(struct store_conn *c, enum stmt_id id);
/* SQLite result to negative errno. */
int store_errno(int rc);
/* Waits for a locked database in microsecond steps, up to 10 s; waited is
 * the handler's own counter, kept beside the connection. */
int store_busy_handler(sqlite3 *db, int64_t *waited);
/* Runs a statement that returns no rows; resets it. */
int store_exec(sqlite3_stmt *st);
/* Binds ?1, ?2, ... from the arguments, as fmt says: 'i' an int64_t or
 * uint64_t, 't' a string (borrowed for the call), then runs statement id. */
int store_exec_args(struct store_conn *c, enum stmt_id id, const char *fmt, ...);
/* BEGIN IMMEDIATE; and its end: COMMIT when r is 0, else ROLLBACK. Returns r
 * (or the COMMIT's error). */
int store_begin(struct store_conn *c);
int store_end(struct store_conn *c, int r);

/* Writes all len bytes of data to fd (again after EINTR), then closes fd;
 * the first error, negative errno (-ENOSPC for a write of nothing). */
int store_write_close(int fd, const void *data, size_t len);
int store_blocks_init(struct bfs_store *s);
int store_journal_open(struct bfs_store *s);
void store_journal_close(struct bfs_store *s);

#endif
