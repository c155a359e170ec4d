/* SPDX-License-Identifier: MIT */
/*
 * store.h: the local state of a mount, in one cache directory: an SQLite
 * database (inodes, directory listings, block index) and block files.
 *
 * Contract
 * - Knows nothing of HTTP or FUSE. Keys, buckets and paths are the fs
 *   layer's business: the store keeps (parent inode, name) rows.
 * - Thread-safe: each thread gets its own SQLite connection (WAL mode,
 *   busy timeout), made on first use and closed by bfs_store_close.
 * - Inode numbers are the rowids of the nodes table: stable for the life
 *   of the database. Inode 1 is the root.
 * - Block files hold clean data only, keyed by (inode, ETag, index), so a
 *   changed object can never be served from blocks of its old version.
 *   The cache is kept under its size limit by evicting the least recently
 *   used blocks. A block that cannot be written (full disk) is simply not
 *   cached: callers still get their data.
 * - Functions return 0 or a negative errno; -ENOENT means "no such row".
 */
#ifndef BUCKETFS_STORE_H
#define BUCKETFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BFS_ROOT_INO 1

enum bfs_kind { BFS_KIND_FILE = 1, BFS_KIND_DIR = 2, BFS_KIND_SYMLINK = 3 };

/* Which metadata fields came from the object (s3fs headers), bit flags. */
#define BFS_META_MODE 1
#define BFS_META_UID 2
#define BFS_META_GID 4
#define BFS_META_MTIME 8
#define BFS_META_HEADED 16 /* a HEAD was done for this ETag: absent = default */

struct bfs_node {
    uint64_t ino;
    uint64_t parent;
    char name[256];
    int kind;              /* enum bfs_kind */
    uint64_t size;
    char etag[80];         /* "" for directories and unknown */
    int64_t mtime_ns;      /* from metadata, else LastModified */
    uint32_t mode;         /* permission bits and type, when meta & MODE */
    uint32_t uid, gid;
    int meta;              /* BFS_META_* */
    int64_t fetched_ns;    /* when the attributes were last checked with S3 */
    int local;             /* written here and not yet uploaded: listings keep it */
    int64_t ctime_ns;      /* last change here (chmod, rename...); 0: mtime. Local only */
    int64_t atime_ns;      /* set explicitly (utimens); 0: mtime. Local only */
    int present;           /* read only: 0 once unlinked or found gone (the row stays) */
};

struct bfs_store;

struct bfs_store_stats {
    uint64_t cache_bytes, cache_limit, blocks;
    uint64_t hits, misses, evictions, write_failures;
};

/* Opens (creating) DIR/meta.db and DIR/blocks/, mode 0700/0600. err gets a
 * message. limit is the block cache size in bytes. */
int bfs_store_open(const char *dir, uint64_t limit, struct bfs_store **ret, char *err,
                   size_t errlen);
void bfs_store_close(struct bfs_store *s);
void bfs_store_stats(struct bfs_store *s, struct bfs_store_stats *ret);

/* ---- nodes (store/nodes.c) ---- */

int bfs_store_node_get(struct bfs_store *s, uint64_t ino, struct bfs_node *ret);
/* A present child by name; -ENOENT when absent (or listed as gone). */
int bfs_store_node_lookup(struct bfs_store *s, uint64_t parent, const char *name,
                          struct bfs_node *ret);
/* Inserts or updates the child n->parent/n->name, keeping its inode number,
 * marks it present, and writes the inode into n->ino. Metadata known for the
 * same ETag is kept when n brings none. */
int bfs_store_node_put(struct bfs_store *s, struct bfs_node *n);
/* Marks a child absent (a lookup found nothing there). */
int bfs_store_node_gone(struct bfs_store *s, uint64_t parent, const char *name);
/* Creates parent/name with every field of n, local flag included, as a
 * new inode (any old row of that name goes); writes the inode into n->ino. */
int bfs_store_node_create(struct bfs_store *s, struct bfs_node *n);
/* Rewrites every attribute of row n->ino (not its place). */
int bfs_store_node_update(struct bfs_store *s, const struct bfs_node *n);
/* Moves row ino to parent/name, replacing whatever row was there. */
int bfs_store_node_move(struct bfs_store *s, uint64_t ino, uint64_t parent, const char *name);
/* Marks row ino absent (unlink, rmdir). */
int bfs_store_node_remove(struct bfs_store *s, uint64_t ino);

/* A whole listing at once, in one transaction: every child in nodes[] is
 * put (their ino fields are filled), every other child is marked absent,
 * and the directory's listing time is set to now_ns, the time the listing
 * began: rows changed here since (an upload finished, a rename, an unlink)
 * are left as they are. */
int bfs_store_listing_replace(struct bfs_store *s, uint64_t parent, struct bfs_node *nodes,
                              size_t n, int64_t now_ns);
/* Writes what was learnt of rows' metadata (kind, mtime, mode, uid, gid,
 * meta of each node, by ino) in one transaction, to rows that still hold
 * the node's ETag and are not local. */
int bfs_store_nodes_learnt(struct bfs_store *s, const struct bfs_node *nodes, size_t n);
/* When the directory was last listed completely (0: never). */
int64_t bfs_store_listing_time(struct bfs_store *s, uint64_t parent);
/* Forgets the listing time, so the next readdir lists again. */
int bfs_store_listing_invalidate(struct bfs_store *s, uint64_t parent);
/* Present children in name order. The callback returns non-zero to stop.
 * Caller's node is only valid during the callback. */
int bfs_store_children(struct bfs_store *s, uint64_t parent,
                       int (*fn)(void *ctx, const struct bfs_node *n), void *ctx);

/* ---- extended attributes (store/nodes.c) ----
 * user.* attributes of a node, as last read from its object or set here. */

/* Copies the value into buf (size 0: just its length); -ENODATA if none,
 * -ERANGE if buf is too small. */
ssize_t bfs_store_xattr_get(struct bfs_store *s, uint64_t ino, const char *name, void *buf,
                            size_t size);
int bfs_store_xattr_set(struct bfs_store *s, uint64_t ino, const char *name, const void *value,
                        size_t len);
int bfs_store_xattr_remove(struct bfs_store *s, uint64_t ino, const char *name);
int bfs_store_xattr_clear(struct bfs_store *s, uint64_t ino);
/* Every attribute of ino; fn returns non-zero to stop. */
int bfs_store_xattrs(struct bfs_store *s, uint64_t ino,
                     int (*fn)(void *ctx, const char *name, const void *value, size_t len),
                     void *ctx);

/* ---- upload journal (store/journal.c) ----
 * One row per file written here and not yet in S3, on disk (synced) when
 * the call that wrote it returns, so that it survives power loss once
 * close returned. Writers at the same time share their syncs.
 * gen grows with every commit of the same inode: an upload of an older gen
 * never removes the row of a newer one. */

enum bfs_upload_state { BFS_UPLOAD_PENDING = 0, BFS_UPLOAD_FAILED = 1 };

struct bfs_upload {
    uint64_t ino;
    char *map;             /* mapping name */
    char *key;             /* object key */
    uint64_t gen, size;
    int64_t mtime_ns;
    uint32_t mode, uid, gid;
    int state;             /* enum bfs_upload_state */
    char *upload_id;       /* multipart upload in progress, or NULL */
    int attempts;
    char *error;           /* last failure, for status */
    int64_t next_ns;       /* not before (backoff) */
    char *base_etag;       /* the version it replaces (If-Match): "" none, so a
                            * create (If-None-Match: *); NULL unconditional */
};
void bfs_upload_done(struct bfs_upload *u);

/* Inserts or replaces the row of u->ino. data (len bytes), when not NULL,
 * is the content of the staging file of u->gen, kept in the same commit:
 * the staging file then needs no fsync of its own, because opening the
 * store rewrites it from the journal. Meant for small files. */
int bfs_store_upload_put(struct bfs_store *s, const struct bfs_upload *u, const void *data,
                         size_t len);
int bfs_store_upload_get(struct bfs_store *s, uint64_t ino, struct bfs_upload *ret);
/* Deletes the row if its gen is still gen: 1 deleted, 0 newer gen there.
 * The deletion is durable on return, except for a row that holds its bytes
 * (a power cut may bring that one back, with its bytes: sent again). */
int bfs_store_upload_finish(struct bfs_store *s, uint64_t ino, uint64_t gen);
/* Makes every journal change made so far durable. */
int bfs_store_journal_sync(struct bfs_store *s);
int bfs_store_upload_delete(struct bfs_store *s, uint64_t ino);
/* Records a failure of gen (no-op for a newer gen). */
int bfs_store_upload_failed(struct bfs_store *s, uint64_t ino, uint64_t gen, int permanent,
                            const char *error, int64_t next_ns);
int bfs_store_upload_set_id(struct bfs_store *s, uint64_t ino, const char *upload_id);
/* A rename: the rows of ino now go to map/key, replacing base_etag there
 * ("" none, NULL unconditional). */
int bfs_store_upload_rekey(struct bfs_store *s, uint64_t ino, const char *map, const char *key,
                           const char *base_etag);
/* A generation newer than after_gen, committed while after_gen was being
 * uploaded, replaces what that upload made: etag. */
int bfs_store_upload_set_base(struct bfs_store *s, uint64_t ino, uint64_t after_gen,
                              const char *etag);
/* Every row, in inode order; fn returns non-zero to stop. */
int bfs_store_uploads(struct bfs_store *s, int (*fn)(void *ctx, const struct bfs_upload *u),
                      void *ctx);
/* The staging file of ino's generation gen (DIR/staging/INO-GEN). */
void bfs_store_staging_path(struct bfs_store *s, uint64_t ino, uint64_t gen, char *out,
                            size_t size);

/* ---- block cache (store/blocks.c) ---- */

/* Reads len bytes at off of a cached block into buf; returns bytes read
 * or -ENOENT when the block is not cached. */
ssize_t bfs_store_block_read(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                             uint32_t off, void *buf, size_t len);
/* Opens a cached block: ret_fd (caller closes it) and the block's length;
 * -ENOENT when it is not cached. A block never changes once cached (a
 * changed object has another ETag, so other block files), and eviction
 * only unlinks its file: the descriptor keeps reading the same, right
 * bytes for as long as the caller holds it. */
int bfs_store_block_open(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                         int *ret_fd, size_t *ret_len);
/* How stale a block's last-use time may get before a read refreshes it:
 * eviction order is that coarse, and reads of a hot block do not write. */
#define BFS_STORE_TOUCH_NS (10LL * 1000000000)

/* Counts a read of a block through a descriptor kept from
 * bfs_store_block_open; touch: also note the use for eviction (a reader
 * calls it with touch at most every BFS_STORE_TOUCH_NS per block). */
void bfs_store_block_hit(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                         int touch);
/* Reports a block that read short or failed through a descriptor from
 * bfs_store_block_open: its row and file go, so the next read fetches it. */
void bfs_store_block_bad(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx);
/* Whether a block is cached (no data copied). */
int bfs_store_block_has(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx);
/* Stores a block (evicting others if needed). The cache never holds more
 * than its limit, counting blocks being written; -ENOBUFS when nothing can
 * be evicted to make room. Failure to cache is reported but harmless: the
 * caller has the data already. */
int bfs_store_block_put(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                        const void *data, size_t len);
/* bfs_store_block_put for a block fetched in the background, which nobody
 * asked for yet: stored only in room free below BFS_STORE_LOW_WATER, never
 * by evicting (-ENOBUFS when there is none). */
int bfs_store_block_put_spare(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                              const void *data, size_t len);
/* What eviction brings a full cache of limit bytes down to (90%). */
#define BFS_STORE_LOW_WATER(limit) ((limit) / 10 * 9)
/* Whether len more bytes fit below the low-water mark (spare room). */
int bfs_store_spare_room(struct bfs_store *s, uint64_t len);
/* Stores a block whose bytes are the file at from, len bytes long, by
 * renaming it into the cache (same file system; the caller must never
 * write to it again). On failure from stays where it was, unless it was
 * moved already (then it is gone). */
int bfs_store_block_adopt(struct bfs_store *s, uint64_t ino, const char *etag, uint64_t idx,
                          const char *from, size_t len);
/* Evicts least recently used blocks until the cache holds at most target
 * bytes (the disk is fuller than the limit knows: written data needs it). */
void bfs_store_shrink(struct bfs_store *s, uint64_t target);
/* Drops every block of ino whose ETag is not keep_etag (NULL: all). */
int bfs_store_blocks_drop(struct bfs_store *s, uint64_t ino, const char *keep_etag);

#endif
