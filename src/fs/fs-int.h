/* SPDX-License-Identifier: MIT */
/*
 * fs-int.h: what the files of src/fs share.
 *
 * LOCKING
 *   fs->lock guards the inode table (hash, nlookup), the negative-lookup
 *   cache, the mapping list, the in-flight block table, the wfile table
 *   and the inodes whose staging file is being made. It is never
 *   held across an S3 request, an SQLite call or a FUSE reply; code that
 *   needs those copies what it needs (key, bucket) out first.
 *   Lock order: fs->lock before any inflight entry's own condition wait
 *   (which releases it). A wfile's lock comes before every other: w->lock
 *   -> fs->lock (fs_inode_target, the wfile table), w->lock -> the upload
 *   queue's lock, w->lock -> the journal's connection -> its sync, and
 *   w->lock -> the evictor (a staging write that needs room). Nothing
 *   takes a wfile's lock while holding one of those, nor two wfile locks.
 *
 * INVARIANTS
 *   1. An inode in the table has nlookup > 0, or is the root.
 *   2. inode->map and ->kind are immutable once made (a name that changes
 *      kind gets a new row, hence a new inode); ->key and ->parent change
 *      only in a rename (fs_inode_rekey), so they are copied out under
 *      fs->lock. A wfile commits at w->moving_key while a rename of it is
 *      under way (namespace.c), never at a key the rename is leaving.
 *   3. An open file reads one ETag (file->etag); every GET carries it as
 *      If-Match.
 *   4. A kept block file descriptor (fs->bfds) reads the block of its
 *      (ino, ETag, index): blocks are immutable per key and eviction only
 *      unlinks, so it stays right until closed.
 *   5. inflight->data[0, have) is final once published: a retried GET
 *      (same ETag, same bytes) only fills what lies beyond it, so readers
 *      copy out of it without the lock.
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
    int64_t as_of_ns;         /* immutable: 0, or the time the view shows (asof.c) */
    uint64_t ino;
    /* The first page of keys under prefix, listed without a delimiter by
     * the mount's check (bfs_fs_check): it shows which directories exist
     * near the top and whether they have a marker, so the lookups of the
     * first path components need no request (lookup.c). Set before the
     * mount serves; dropped at the first change of names through it. */
    struct top_keys {
        char **keys;          /* sorted as S3 sorts: by bytes */
        size_t n;
        int complete;         /* every key under prefix */
        int64_t at_ns;
        atomic_int valid;
    } top;
    int conflicts;            /* immutable: enum bfs_conflicts */
    atomic_int conditions;    /* COND_*: does the server honour If-Match? */
    atomic_int mpu_conditions; /* COND_*: ... on CompleteMultipartUpload? */
    atomic_int delete_conditions; /* COND_*: ... on DeleteObject? */
};

enum { COND_UNKNOWN, COND_HONOURED, COND_IGNORED };

/* What this mount did when it found another writer's version (report.c
 * names them "upload", "delete", "rename"). */
enum conflict_kind {
    CONFLICT_UPLOAD, /* ours went to copy; theirs stays at key */
    CONFLICT_DELETE, /* our unlink left theirs at key */
    CONFLICT_RENAME, /* a rename found theirs at key: it stays, copied to copy */
};

/* The conflicts of this mount (conflict.c): the newest CONFLICTS_MAX. */
#define CONFLICTS_MAX 64
struct conflict_log {
    pthread_mutex_t lock;
    struct conflict {
        char *map, *key, *copy; /* owned: the name, and where our version went
                                 * ("" for a delete: nowhere) */
        int kind;               /* enum conflict_kind */
        int64_t at_ns;
        int taken;              /* reported to a bucketfs sync already */
    } items[CONFLICTS_MAX];
    size_t head, n;
    uint64_t total;             /* since the mount */
};

struct inode {
    uint64_t ino;             /* immutable */
    uint64_t parent;          /* guarded by fs->lock: a rename changes it */
    int kind;                 /* immutable, enum bfs_kind */
    int map;                  /* immutable: mapping index, -1 for the root */
    char *key;                /* guarded by fs->lock (fs_inode_rekey): object key,
                               * or prefix ending in '/' */
    uint64_t nlookup;         /* guarded by fs->lock */
    struct inode *next;       /* hash chain, guarded by fs->lock */
};

struct negative {
    uint64_t parent;
    char *name;
    int64_t until_ms;
    struct negative *next;
};

/* A block being fetched; readers of the same block wait on it, each only
 * until the bytes it needs have arrived (invariant 5). */
struct inflight {
    uint64_t ino, idx;        /* immutable */
    char etag[BFS_S3_ETAG_MAX]; /* immutable */
    size_t len;               /* immutable: the block's expected length */
    char *data;               /* len bytes (owned; freed by the last ref) */
    size_t have;              /* data[0, have) arrived and never changes again;
                               * guarded by fs->lock (the fetcher reads it bare) */
    int done;                 /* guarded by fs->lock */
    int err;                  /* set before done */
    int waiters;              /* guarded by fs->lock */
    size_t wake_at;           /* guarded by fs->lock: the fewest bytes a waiter
                               * needs; publish wakes nobody before that */
    int refs;                 /* guarded by fs->lock */
    int64_t retry_ms;         /* a failed fetch kept (fetch.c): readers get its
                               * error until then (mono ms); guarded by fs->lock */
    struct inflight_early *early; /* the fetcher's own reader, answered from the
                               * sink (fetch.c); only the fetcher's thread */
    int spare;                /* immutable: a background fetch's (randfetch.c),
                               * cached only in spare room */
    pthread_cond_t cond;
    struct inflight *next;    /* guarded by fs->lock */
};

/* A reader that runs its block's GET itself and is answered from inside
 * it, once data[0, need) arrived, while the rest of the block keeps coming
 * (read.c; a random reader's next read need not wait for it). */
struct inflight_early {
    size_t need;
    void (*fn)(struct inflight_early *e, const char *data);
    int done;                 /* fn ran */
};

struct task {
    void (*fn)(void *arg);
    void *arg;
    int low;                  /* from the low queue */
    struct task *next;
};

/* A small pool of worker threads for read-ahead and parallel lookups. */
struct workers {
    pthread_mutex_t lock;     /* guards head, tail, queued, stop and the low queue */
    pthread_cond_t cond;
    struct task *head, *tail;
    int queued;
    struct task *low_head, *low_tail; /* background fetches: run only when head
                               * is empty, at most low_max at once */
    int low_running;
    int low_max;              /* immutable */
    int idle;                 /* threads waiting for a task */
    int stop;
    int nthreads;             /* immutable */
    pthread_t *threads;
};

/*
 * Write state of one inode that has a staging file. The transitions are
 * the ws_* functions of wstate.c, called with w->lock held; fs_wstate()
 * names the state of the newest generation (gen):
 *
 *   (none) --open for write: a copy of the object--> clean (done_gen = gen)
 *   (none) --create, O_TRUNC--> dirty
 *   (none) --mount: a journal row--> committed (recovered, queued)
 *   clean --write, truncate, chmod (ws_new_gen + ws_written)--> dirty
 *   dirty --the close that leaves no unflushed handle, fsync, release:
 *           fsync or inline bytes, journal row of gen (ws_committed)--> committed
 *   committed --upload taken (ws_upload_begin)--> uploading
 *   uploading --gen in S3 (ws_upload_landed)--> clean, or committed when a
 *           newer generation was committed meanwhile (queued again)
 *   uploading --failure (ws_upload_failed)--> committed, retried later
 *   committed --write: gen+1 as a copy of gen (ws_new_gen)--> dirty; the
 *           upload of gen keeps reading its own, unchanged file
 *   dirty --commit fails for lack of disk (ws_back_to)--> committed (the
 *           journal's generation) or clean (the object in S3)
 *   any --unlink, rename over it (ws_cancelled)--> deleted
 *   clean --no handle, nothing queued (fs_wfile_maybe_drop)--> (none)
 * Beside the state: held (an unlink or rename is being decided: uploads
 * wait, ws_hold), moving_key (a rename under way: commits go there).
 * At most one upload per inode runs at a time (w->uploading), so uploads of
 * one file reach S3 in generation order and a stale one never lands last.
 */
/* An inode whose staging file is being made (filled from S3, which may
 * take long): other openers of the same inode wait; other inodes go on. */
struct wcreating {
    uint64_t ino;
    struct wcreating *next;
};

struct wfile {
    uint64_t ino;             /* immutable */
    pthread_mutex_t lock;     /* guards every field below */
    pthread_mutex_t alock;    /* taken inside lock by whoever changes what stat
                               * shows (size, the times, mode, uid, gid) or
                               * fd: stat and reads take only alock, so they
                               * never wait out an fsync, a commit or a copy
                               * holding lock */
    pthread_cond_t cond;      /* signalled when an upload ends */
    int fd;                   /* staging file of gen, read-write */
    uint64_t gen;
    uint64_t low_gen;         /* the oldest generation whose staging file may
                               * still exist (fs_wfile_forget_gens) */
    int writers;              /* open handles that may write */
    int unflushed;            /* handles written through since their last flush */
    int opens;                /* open handles reading or writing through it */
    int dirty;                /* written since the last commit */
    int sealed;               /* gen is committed: the next write starts gen+1 */
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns, atime_ns; /* local only, as in struct bfs_node */
    char base_etag[BFS_S3_ETAG_MAX]; /* the version the next upload replaces:
                               * "" none (a new name); see base_set */
    int base_set;             /* 0: unconditional (recovered old row, renamed) */
    uint32_t mode, uid, gid;
    uint64_t done_gen;        /* newest generation known to be in S3 */
    int uploading;            /* an upload of this inode runs */
    uint64_t sent;            /* bytes of the running upload S3 has taken (parts) */
    int queued;               /* in the upload queue */
    int rerun;                /* asked for while uploading: queue again at the end */
    int held;                 /* uploads wait (fs_wfile_hold): an unlink or a
                               * rename over this file is being decided */
    int bounced;              /* an upload found it held: queued again at unhold */
    int last_err;             /* result of the newest finished upload */
    int deleted;              /* unlinked: an upload that lands must be undone */
    int remote;               /* an object exists at the key (rename must delete it) */
    struct mapping *moving_map; /* a rename of the file is under way: commits */
    char *moving_key;         /* journal here, not at the inode's old key (owned) */
    int refs;                 /* guarded by fs->lock: table + users */
    struct wfile *next;       /* guarded by fs->lock */
};

/* What a fetch needs, copied so that it can outlive the file handle. */
struct target {
    struct bfs_s3_client *client;
    char *bucket; /* borrowed from the mapping, which lives as long as fs */
    char *key;
    char etag[BFS_S3_ETAG_MAX];
    uint64_t ino, size;
};

/* An open cached block file (blockfds.c). */
struct blockfd {
    uint64_t ino, idx;    /* immutable */
    char etag[BFS_S3_ETAG_MAX]; /* immutable */
    size_t len;           /* immutable */
    int fd;               /* immutable; closed by the last unref */
    atomic_int sized;     /* the file was seen to hold len bytes */
    atomic_int refs;      /* the table's + readers' (blockfds.c note 3) */
    int cached;           /* in the table; under its lock, as are: */
    int64_t touched_ns;   /* when the index last heard of a use */
    struct blockfd *hnext, *prev, *next; /* hash chain; use list */
};

/* The table of open block files, most recently used first. */
struct blockfds {
    pthread_mutex_t lock;
    struct blockfd **slots;
    size_t nslots, n, cap; /* cap: immutable */
    struct blockfd *head, *tail;
};

int fs_blockfds_init(struct blockfds *t, uint64_t cache_size, uint32_t block);
void fs_blockfds_free(struct blockfds *t);
/* Closes every kept descriptor no reader holds: an evicted block's disk
 * space comes back only at its close (a full cache disk needs it). */
void fs_blockfds_trim(struct blockfds *t);
/* Block idx of tg's object version, open, with a reference for the
 * caller; -ENOENT when it is not cached. */
int fs_blockfd_get(struct bfs_fs *fs, const struct target *tg, uint64_t idx,
                   struct blockfd **ret);
void fs_blockfd_unref(struct blockfd *b);
/* b read short: out of the table and the index (the caller still holds
 * its reference). */
void fs_blockfd_bad(struct bfs_fs *fs, struct blockfd *b);

struct bfs_file {
    struct target t;
    struct wfile *w;      /* staging, when the inode has one (a reference) */
    int writable;         /* opened for writing */
    int wrote;            /* written through since its last flush (w->lock) */
    int direct;           /* another version is open too: bypass the page cache */
    pthread_mutex_t lock; /* guards next_off, ra_next, seq, touched, ntouched, rf_over */
    uint64_t next_off;    /* where a sequential reader reads next */
    uint64_t ra_next;     /* first block not yet handed to read-ahead */
    int seq;              /* consecutive sequential reads */
    uint8_t *touched;     /* blocks random reads touched, a bit each (randfetch.c;
                           * owned), NULL until the first or once rf_over */
    uint64_t ntouched;    /* bits set in touched */
    int rf_over;          /* the background fetch started, or never will */
    struct bfs_file *prev, *next; /* fs->files, guarded by fs->lock */
};

/* The upload queue (upload.c). */
/* A FIFO of inodes to upload, each due at a time (CLOCK_MONOTONIC ms). */
struct upload_queue {
    struct upload_item {
        uint64_t ino;
        int64_t due_ms;
    } *items;
    size_t head, count, cap;
};

/* Upload threads. Small files: RGW on 2 cores took 1000 PUTs of 16 KiB 20%
 * faster from 8 than from 4 (curl, 16 at a time: 10% faster again); each
 * multipart upload adds its part senders (upload.c). */
#define UPLOADERS 8

struct uploader {
    pthread_mutex_t lock;     /* guards the queues, dropped and stop */
    pthread_cond_t cond;
    struct upload_queue now;  /* due at once: fsync, retries, recovery */
    struct upload_queue later; /* closed files, due upload_delay_ms after
                                * close; one delay for all keeps it in order */
    int dropped;              /* a push failed (no memory): the next retry
                               * scan queues rows whose wfile says queued */
    int retry_all;            /* the next scan, at once, also takes rows whose
                               * retry time has not come (sync, a recovery) */
    int64_t retry_all_ms;     /* when sync last asked for that */
    uint64_t recoveries_seen; /* the clients' outages that ended, as last seen */
    int stop;
    int nthreads;             /* immutable */
    pthread_t threads[UPLOADERS];
    atomic_uint_fast64_t uploaded, bytes, failures;
};

#define WFILE_BUCKETS 256
#define INODE_BUCKETS 4096
#define NEG_MAX 4096

struct bfs_fs {
    const struct bfs_config *cfg; /* borrowed, immutable */
    struct bfs_store *store;  /* borrowed */
    struct bfs_s3_client **clients; /* owned, immutable after new */
    size_t nclients;
    int64_t ttl_ms;           /* immutable */
    int64_t reval_ms;         /* immutable: revalidate, at most ttl_ms */
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
    struct inflight *kept[16]; /* fetched blocks the cache could not take (full),
                                * and failed fetches for a moment: kept in
                                * fs->inflight, done, for the readers that
                                * follow; a FIFO of nkept from kept_head,
                                * guarded by lock */
    size_t nkept, kept_head;
    struct first_page {       /* a lookup's LIST of a large directory, kept for
                               * the readdir that most often follows; guarded
                               * by lock */
        uint64_t ino;
        int64_t at_ns;
        struct bfs_s3_list_page pg;
    } first;
    struct workers workers;
    struct blockfds bfds;     /* open block files of all readers */
    struct wfile *wfiles[WFILE_BUCKETS]; /* guarded by lock */
    struct wcreating *wcreating; /* inodes whose staging file is being made,
                                  * guarded by lock */
    pthread_cond_t wcreated;  /* signalled when one of them is done */
    struct uploader up;
    struct bfs_dir *dirs;     /* open directory snapshots, guarded by lock */
    struct bfs_file *files;   /* open handles, guarded by lock: freed at the end
                               * when the kernel went away without releasing them */
    struct rfetch *rfetches;  /* background fetches of object versions still
                               * open (randfetch.c), guarded by lock */

    atomic_uint_fast64_t skipped_keys, readahead_blocks, ranged_gets, block_fd_reuses;
    atomic_uint_fast64_t early_answers; /* reads answered from inside their GET */
    atomic_uint_fast64_t rfetches_started, rfetch_blocks; /* background fetches after
                                        * random reads, and the blocks they got */
    atomic_uint_fast64_t meta_requests; /* HEADs of listings' metadata */
    atomic_uint_fast64_t stale_serves; /* answers from the cache past their TTL
                                        * because S3 did not answer */
    atomic_uint_fast64_t kernel_invals; /* kernel entries and inodes invalidated */
    atomic_uint_fast64_t copies, copied_bytes; /* copy_file_range made in S3 (copy.c) */
    struct conflict_log conflicts;
    struct bfs_fs_kernel kernel; /* set before the first request */
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
/* st's times: ctime is the later of ctime_ns and mtime_ns, atime is mtime
 * unless atime_ns was set (0: not kept). */
void fs_stat_times(struct stat *st, int64_t mtime_ns, int64_t ctime_ns, int64_t atime_ns);
/* Fills n from object metadata (HEAD reply): kind, mode, uid, gid, mtime. */
void fs_node_from_object(struct bfs_node *n, const struct bfs_s3_object *o, int headed);
int fs_name_valid(const char *name, size_t len);
void fs_negative_add(struct bfs_fs *fs, uint64_t parent, const char *name);
int fs_negative_has(struct bfs_fs *fs, uint64_t parent, const char *name);
void fs_negative_clear(struct bfs_fs *fs, uint64_t parent);
struct mapping *fs_mapping_by_name(struct bfs_fs *fs, const char *name);
/* Keeps the keys of the mount's first page (moved out of pg). */
void fs_top_keep(struct mapping *m, struct bfs_s3_list_page *pg);
/* Names changed through the mount: the first pages may be wrong now. */
void fs_top_drop(struct bfs_fs *fs);
void fs_top_free(struct mapping *m);
int fs_maps_refresh(struct bfs_fs *fs);

/* ---- write.c ---- */
/* The wfile of ino with a reference, or NULL. */
struct wfile *fs_wfile_find(struct bfs_fs *fs, uint64_t ino);
void fs_wfile_put(struct bfs_fs *fs, struct wfile *w);
/* Makes the staging file for ino (empty when truncate, else a copy of the
 * object) unless one exists; returns it with a reference. */
int fs_wfile_open(struct bfs_fs *fs, uint64_t ino, int truncate, struct wfile **ret);
/* Commits a dirty wfile: fsync, journal row, node row; queues the upload.
 * Caller holds w->lock. */
int fs_wfile_commit(struct bfs_fs *fs, struct wfile *w);
int fs_wfile_truncate_locked(struct bfs_fs *fs, struct wfile *w, uint64_t size);
/* Metadata changed: commit it (as a new generation) unless writers will. */
int fs_wfile_touch(struct bfs_fs *fs, struct wfile *w);
/* Moves a sealed wfile to gen+1 with the same bytes (metadata change):
 * a hard link when no writer has it open (the caller commits at once), a
 * copy otherwise. Caller holds w->lock. */
int fs_wfile_next_gen(struct bfs_fs *fs, struct wfile *w);
ssize_t fs_wfile_write(struct bfs_fs *fs, struct wfile *w, const char *buf, size_t size,
                       off_t off);
ssize_t fs_wfile_read(struct wfile *w, char *buf, size_t size, off_t off);
/* Removes the staging files of w's generations below below, which no
 * upload reads any more (one upload of an inode runs at a time, in order).
 * Caller holds w->lock. */
void fs_wfile_forget_gens(struct bfs_fs *fs, struct wfile *w, uint64_t below);
/* The last writer's commit failed for lack of disk: the written data cannot
 * be kept (its close said so), and its staging file must not keep the disk
 * full. Goes back to the last safe state: the committed generation waiting
 * for its upload, else the object in S3, else an empty file. Caller holds
 * w->lock. */
void fs_wfile_abandon(struct bfs_fs *fs, struct wfile *w);
/* Drops w from the table if nothing needs it any more. */
void fs_wfile_maybe_drop(struct bfs_fs *fs, struct wfile *w);
/* Waits (w->lock held) until gen is in S3; the upload's error otherwise. */
int fs_wfile_wait_upload(struct bfs_fs *fs, struct wfile *w, uint64_t gen);
/* Re-creates wfiles of journal rows found at start (crash recovery). */
int fs_wfiles_recover(struct bfs_fs *fs);
/* At unmount, after the uploader stopped: frees every wfile and removes
 * the staging files no journal row needs (a wfile still referenced when
 * its upload finished stayed in the table with its file). */
void fs_wfiles_free(struct bfs_fs *fs);
/* Unlinks ino's staging files and forgets its journal row (cancel). */
void fs_wfile_discard(struct bfs_fs *fs, uint64_t ino);
/* Keeps ino's uploads from starting (one running lands first) while an
 * unlink or a rename over it is tried: its data is dropped only once that
 * worked (fs_wfile_unhold with discard), never for a call that fails.
 * Returns a reference, or NULL when ino has no wfile. */
struct wfile *fs_wfile_hold(struct bfs_fs *fs, uint64_t ino);
/* Every wfile in the table, each with a reference for the caller (who puts
 * them and frees the array). */
int fs_wfiles_snapshot(struct bfs_fs *fs, struct wfile ***ret, size_t *ret_n);
/* Ends a hold; discard: the unlink or rename worked, cancel ino's upload. */
void fs_wfile_unhold(struct bfs_fs *fs, uint64_t ino, struct wfile *w, int discard);
/* Stat fields that a wfile overrides (size, mtime, mode, uid, gid). */
void fs_wfile_stat(struct bfs_fs *fs, uint64_t ino, struct stat *st);
void fs_wfile_stat_of(struct wfile *w, struct stat *st);
/* The wfile an open handle of ino holds (a reference), or NULL: the only
 * way to an unlinked file, which has left the table. Scans every handle. */
struct wfile *fs_file_wfile(struct bfs_fs *fs, uint64_t ino);
/* Waits until no upload of ino runs and none is queued or pending. */
int fs_wfile_wait_clean(struct bfs_fs *fs, uint64_t ino);

/* ---- fetch.c ---- */
/* Whether block idx of (ino, etag) is being fetched or was just fetched
 * (its bytes are on their way into the cache). */
int fs_inflight_has(struct bfs_fs *fs, uint64_t ino, const char *etag, uint64_t idx);
/* The fetch of block idx of t, with a reference the caller drops with
 * fs_inflight_unref; started unless one runs. With async, an idle worker
 * runs it so that the caller may return before the whole block arrived;
 * otherwise (or with no idle worker) the caller runs it. NULL: no memory. */
struct inflight *fs_inflight_get(struct bfs_fs *fs, const struct target *t, uint64_t idx,
                                 int async);
/* fs_inflight_get without a worker, calling e->fn from the GET once its
 * bytes arrived, when this call starts the fetch (e->done tells). */
struct inflight *fs_inflight_get_early(struct bfs_fs *fs, const struct target *t, uint64_t idx,
                                       struct inflight_early *e);
/* Fetches block idx of t into spare room of the cache (a background
 * fetch, randfetch.c), in the caller's thread, unless it is in flight
 * already; readers of the block meanwhile wait for this GET. Returns 1
 * fetched and cached, 0 left to the fetch in flight, -ENOBUFS fetched but
 * no spare room, or the GET's negative errno. */
int fs_inflight_fetch_spare(struct bfs_fs *fs, const struct target *t, uint64_t idx);
/* Waits until in->data[0, need) arrived or the fetch ended; returns the
 * bytes that arrived (>= need on success) or the fetch's negative errno. */
ssize_t fs_inflight_wait(struct bfs_fs *fs, struct inflight *in, size_t need);
void fs_inflight_unref(struct bfs_fs *fs, struct inflight *in);
/* Drops the kept uncached blocks (bfs_fs_free). */
void fs_inflight_drop_kept(struct bfs_fs *fs);
/* The cache disk is full: frees what the cache holds (clean blocks and
 * the descriptors kept on them) so that written data finds room. */
void fs_make_room(struct bfs_fs *fs);
/* Notes where a read falls and starts read-ahead for sequential ones. */
void fs_read_track(struct bfs_fs *fs, struct bfs_file *f, uint64_t off, size_t size);

/* Records an open handle (so that bfs_fs_free can release leftovers). */
void fs_file_track(struct bfs_fs *fs, struct bfs_file *f);
/* read.c: puts a file just uploaded as etag (size bytes, its sealed
 * staging file at path, open as fd) into the block cache, so that reading
 * back what was written costs no download: a file of one block is moved
 * there (path is gone after), a larger one copied. Files above
 * FS_IMPORT_MAX are left to be fetched on demand. */
#define FS_IMPORT_MAX (64ull << 20)
void fs_blocks_import(struct bfs_fs *fs, uint64_t ino, const char *etag, int fd,
                      const char *path, uint64_t size);

/* ---- upload.c ---- */
int fs_uploader_start(struct bfs_fs *fs, int nthreads);
void fs_uploader_stop(struct bfs_fs *fs);
void fs_upload_enqueue(struct bfs_fs *fs, uint64_t ino);
/* The same after upload_delay_ms: what a close commits. */
void fs_upload_enqueue_later(struct bfs_fs *fs, uint64_t ino);
/* Every upload waiting out its delay, or its next try after a passing
 * failure, is due now (bucketfs sync). */
void fs_upload_expedite(struct bfs_fs *fs);
const char *fs_content_type(const char *key);
/* Metadata headers for mode, uid, gid and mtime (s3fs style), and for the
 * user.* attributes of ino (0: none). */
int fs_meta_for(struct bfs_fs *fs, uint64_t ino, struct bfs_s3_meta *m, uint32_t mode,
                uint32_t uid, uint32_t gid, int64_t mtime_ns);

/* ---- wstate.c ---- (every function: w->lock held) */
enum wstate { WS_CLEAN, WS_DIRTY, WS_CHANGING, WS_COMMITTED, WS_UPLOADING, WS_DELETED };
enum wstate fs_wstate(const struct wfile *w);
const char *fs_wstate_name(enum wstate s);
/* gen's bytes or attributes changed (gen is not committed). */
void ws_written(struct wfile *w);
/* gen's journal row is durable: sealed, and queued after upload_delay. */
void ws_committed(struct bfs_fs *fs, struct wfile *w);
/* gen+1 exists, a copy (or link) of gen's file, not committed. */
void ws_new_gen(struct wfile *w);
/* Written data could not be committed: back to generation gen, which the
 * journal holds, or which is what S3 holds (in_s3). */
void ws_back_to(struct wfile *w, uint64_t gen, int in_s3);
/* Queues w's upload unless queued already or unlinked; 1 if it did. */
int ws_queue(struct bfs_fs *fs, struct wfile *w);
/* Queues it even if it says queued (the queue may have lost the entry). */
void ws_requeue(struct bfs_fs *fs, struct wfile *w);
enum ws_begin { WS_GO, WS_LATER, WS_HELD };
/* An uploader took w from the queue: WS_GO it uploads; WS_LATER one runs
 * (it queues w again when it ends); WS_HELD an unlink or rename decides
 * first (unhold queues it again). */
enum ws_begin ws_upload_begin(struct wfile *w);
/* gen is in S3 (at its key or, after a conflict, beside it). */
void ws_upload_landed(struct wfile *w, uint64_t gen);
/* The upload failed with err (negative errno); waiters are woken. */
void ws_upload_failed(struct wfile *w, int err);
/* The upload found no row to send; committed: one was made since. */
void ws_upload_none(struct wfile *w, int committed);
/* The end of an upload, landed or not: waiters are woken. */
void ws_upload_ended(struct wfile *w);
/* Unlinked, or replaced by a rename: never sent again. */
void ws_cancelled(struct wfile *w);
/* Uploads wait until ws_unhold; waits for a running one to end. */
void ws_hold(struct wfile *w);
/* 1 when the last hold ended and an upload bounced meanwhile (queue it). */
int ws_unhold(struct wfile *w);

/* ---- conflict.c ---- */
/* Sets pp's If-Match / If-None-Match for u (none with conflicts =
 * overwrite, an unconditional row, or a server that ignores them). */
void fs_upload_conditions(struct mapping *m, const struct bfs_upload *u,
                          struct bfs_s3_put_params *pp);
/* Whether a listed name is the probe (never shown: on a server that
 * ignores conditions it exists for a moment). */
int fs_is_probe(const char *name, size_t len);
/* KEY.conflict-HOST-YYYYMMDDTHHMMSSZ, with -N for n > 1 (caller frees). */
char *fs_conflict_key(const char *key, int n);
/* Before a CompleteMultipartUpload with pp's condition: whether the object
 * is still the version it replaces (-ESTALE if not). Servers that ignore
 * the condition on Complete (Ceph RGW 16) leave only this HEAD's window. */
int fs_complete_check(struct mapping *m, const char *key, const struct bfs_s3_put_params *pp,
                      struct bfs_s3_error *e);
/* Whether m's server honours conditions on CompleteMultipartUpload (asks
 * it the first time; Ceph RGW 16 does not). Where it does not, a
 * conditional upload up to 5 GiB goes as one PUT, which it honours. */
int fs_complete_conditions(struct mapping *m);
/* Deletes key while it is the version known (an ETag; NULL or "": any
 * version): -ESTALE when another writer's version is there, which stays.
 * With conflicts = overwrite, any version. An absent key is success. */
int fs_delete_guarded(struct mapping *m, const char *key, const char *known);
/* Whether key still holds the version known (an ETag; "": none; NULL:
 * any): 0, or -ESTALE when another writer's is there (one HEAD; always 0
 * with conflicts = overwrite). A key now gone is 0. */
int fs_version_is(struct mapping *m, const char *key, const char *known);
/* Renames an object in S3 (a copy, then a delete) with the same guard at
 * both names: src_known the version at from this mount knows, dst_known
 * the one at to ("" none; NULL any). When another writer changed from,
 * its version stays there and is what is copied; when it changed to, its
 * version stays and ours goes to TO.conflict-...; either way the conflict
 * is recorded and *ret_other says that to now holds another writer's
 * version. -ENOSYS: the server cannot copy. */
int fs_rename_object(struct bfs_fs *fs, struct mapping *m, const char *from, const char *to,
                     const char *src_known, const char *dst_known, int *ret_other);
/* Forgets which version of ino's object the row holds, so the next use
 * asks S3 (after a conflict the name shows the other writer's version).
 * The caller drops the kernel's pages (fs_kernel_inval_inode). */
void fs_node_forget_version(struct bfs_fs *fs, uint64_t ino);
/* Logs a conflict (object keys) and keeps it for status and sync. */
void fs_conflict_record(struct bfs_fs *fs, const struct mapping *m, int kind, const char *key,
                        const char *copy);
void fs_conflicts_free(struct bfs_fs *fs);

/* ---- asof.c: mappings as of a time ---- */
/* "ETAG"@VERSIONID, the ETag an as_of node carries (asof.c DESIGN 2);
 * -ENAMETOOLONG when it does not fit. */
int fs_asof_etag(const char *etag, const char *version_id, char out[BFS_S3_ETAG_MAX]);
/* Whether etag names a version; then its real ETag and version id. */
int fs_etag_version(const char *etag, char real[BFS_S3_ETAG_MAX],
                    char vid[BFS_S3_VERSION_ID_MAX]);
/* Sets p's If-Match (and versionId) for reading the object etag names;
 * real and vid hold what p points at. */
void fs_get_version(const char *etag, struct bfs_s3_get_params *p, char real[BFS_S3_ETAG_MAX],
                    char vid[BFS_S3_VERSION_ID_MAX]);
/* HEAD of key as a node with etag shows it (its version, for an as_of
 * node; o->etag is then etag). etag may be NULL: the latest. */
int fs_object_head(struct mapping *m, const char *key, const char *etag,
                   struct bfs_s3_object *o);
/* Directory prefix of m as of m->as_of_ns, as one page of ListObjectsV2
 * would show it (every page of versions read). Caller frees ret. */
int fs_asof_list(struct mapping *m, const char *prefix, struct bfs_s3_list_page *ret);
/* The mount's check of an as_of mapping: its bucket keeps versions. */
int fs_asof_check(struct mapping *m, char *err, size_t errlen);

/* ---- versions.c ---- */
/* user.bucketfs.versions/NAME and user.bucketfs.restore/SPEC/NAME of
 * directory ino (what follows "user.bucketfs."): the versions of a file,
 * or making one current again; a JSON answer into b. */
int fs_versions_xattr(struct bfs_fs *fs, uint64_t ino, const char *what, struct bfs_buf *b);

/* ---- report.c ---- */
/* The user.bucketfs.WHAT attributes other than stats ("uploads",
 * "presign.SECS") of ino into b; -ENODATA for an unknown WHAT. */
int fs_report_xattr(struct bfs_fs *fs, uint64_t ino, const char *what, struct bfs_buf *b);
/* Appends s as a JSON string (quoted, escaped). */
int fs_json_str(struct bfs_buf *b, const char *s);
/* Whether ino has data that is not in S3 yet (the object is older or absent). */
int fs_not_uploaded(struct bfs_fs *fs, uint64_t ino);

/* ---- xattr.c ---- */
/* "xattr-" + the attribute name after "user.", escaped so that S3's
 * lower-casing of metadata names loses nothing. */
int fs_xattr_meta_name(const char *name, struct bfs_buf *out);
/* Replaces ino's stored attributes with those in object metadata m. */
int fs_xattrs_import(struct bfs_fs *fs, uint64_t ino, const struct bfs_s3_meta *m);

/* ---- namespace.c ---- */
/* Rewrites the metadata of an object with a copy onto itself. */
int fs_rewrite_meta(struct bfs_fs *fs, struct mapping *m, const char *key,
                    const struct bfs_node *n, char etag[BFS_S3_ETAG_MAX]);
/* PUTs a small object (directory marker, symlink, special file) with metadata. */
int fs_put_small(struct bfs_fs *fs, struct mapping *m, const char *key, const char *body,
                 const struct bfs_node *n, const char *ctype, char etag[BFS_S3_ETAG_MAX]);

/* ---- namespace.c / dir.c ---- */
/* With learn, also the metadata a listing cannot carry (meta.c). */
int fs_list_remote(struct bfs_fs *fs, uint64_t ino, int learn);
/* Keeps the first page of directory ino's listing (moved out of pg) for
 * its next fs_list_remote within the TTL. */
void fs_first_page_keep(struct bfs_fs *fs, uint64_t ino, struct bfs_s3_list_page *pg,
                        int64_t since_ns);
/* Stores one page (prefix's children) as the whole listing of directory
 * ino; -EAGAIN, storing nothing, if the page is not the whole directory. */
int fs_list_from_page(struct bfs_fs *fs, uint64_t ino, const char *prefix,
                      const struct bfs_s3_list_page *pg, int64_t since_ns);
/* Changes the key of ino (and of every inode below it, for a directory). */
void fs_inode_rekey(struct bfs_fs *fs, uint64_t ino, uint64_t parent, const char *key);

/* ---- randfetch.c ---- */
/* Background block GETs in flight at most (the workers' low_max), fewer
 * when the pool has no threads beyond read_ahead's (fs.c). */
#define FS_RFETCH_INFLIGHT 4
struct rfetch;
/* A read of f at [off, off + size) that jumps: counts the blocks it
 * touches and, once they are a good share of the object, starts fetching
 * the rest in the background. Caller does not hold f->lock. */
void fs_rfetch_note(struct bfs_fs *fs, struct bfs_file *f, uint64_t off, size_t size);
/* f is released (out of fs->files already): frees its coverage and stops
 * the background fetch of its version unless another handle reads it. */
void fs_rfetch_release(struct bfs_fs *fs, struct bfs_file *f);
/* Frees what is left in fs->rfetches (after the workers stopped). */
void fs_rfetch_free(struct bfs_fs *fs);

/* ---- workers.c ---- */
/* n threads, of which at most low_max run tasks of the low queue at once. */
int fs_workers_start(struct workers *w, int n, int low_max);
void fs_workers_stop(struct workers *w);
/* Queues fn(arg); -EAGAIN when the queue is long (the caller may skip it). */
int fs_workers_submit(struct workers *w, void (*fn)(void *), void *arg, int max_queued);
/* Queues a task first in line if a thread is idle to take it; -EAGAIN if not. */
int fs_workers_submit_now(struct workers *w, void (*fn)(void *), void *arg);
/* Queues a task of the lowest priority: it runs when no other task waits,
 * and at most low_max such tasks run at once. -EAGAIN when stopping. */
int fs_workers_submit_low(struct workers *w, void (*fn)(void *), void *arg);

/* ---- meta.c ---- */
/* What a listing cannot tell, learnt in parallel while it goes on. */
#define BFS_META_SMALL_MAX 4095 /* an object this small may be a symlink */
struct meta_learn;
/* NULL with list_meta=none (every fs_meta_* call takes NULL). */
struct meta_learn *fs_meta_begin(struct bfs_fs *fs, struct mapping *m, const char *prefix);
/* Entries nodes[from, to) arrived (one LIST page): starts the requests
 * list_meta asks for. Entries that are local or HEADED count as known. */
void fs_meta_page(struct meta_learn *ml, const struct bfs_node *nodes, size_t from, size_t to);
/* fs_meta_page over n entries at once, in pages of 1,000. */
void fs_meta_batch(struct meta_learn *ml, const struct bfs_node *nodes, size_t n);
/* Waits for every request and writes the answers into nodes (the same
 * array, maybe moved, with the same entries at the same places). */
void fs_meta_end(struct meta_learn *ml, struct bfs_node *nodes);
/* The answers, for what the nodes do not hold (user xattrs). */
struct meta_answer {
    const char *name;
    int dir;
    const char *etag;
    const struct bfs_s3_meta *meta;
};
size_t fs_meta_count(const struct meta_learn *ml);
int fs_meta_answer(const struct meta_learn *ml, size_t k, struct meta_answer *ret);
void fs_meta_free(struct meta_learn *ml);
/* Whether object metadata holds any of mode, uid, gid, mtime. */
int fs_meta_carried(const struct bfs_s3_meta *m);

/* ---- inode.c: telling the kernel ----
 * What the kernel was told and is wrong now. With wait, returns once the
 * kernel has it (bounded: the fuse layer gives up after a second); never
 * call with wait for the entry of a directory whose lookup, create or
 * readdir is being answered (the kernel holds that directory's lock). */
void fs_kernel_inval_inode(struct bfs_fs *fs, uint64_t ino, int data, int wait);
void fs_kernel_inval_entry(struct bfs_fs *fs, uint64_t parent, const char *name, int wait);

/* ---- lookup.c ---- */
/* Whether r (an S3 call's result) says S3 did not answer, so that what the
 * cache knows may be served past its TTL (stale-if-error); counts it. */
int fs_stale_ok(struct bfs_fs *fs, int r);
int fs_fresh(const struct bfs_fs *fs, int64_t then_ns);
/* The same for window_ms (fs->reval_ms: opens, names found missing). */
int fs_fresh_within(const struct bfs_fs *fs, int64_t then_ns, int64_t window_ms);
/* Asks S3 what parent/name is (file, directory or nothing) and records it. */
int fs_resolve(struct bfs_fs *fs, uint64_t parent, const char *name, struct bfs_node *ret);
/* Re-checks a file's attributes with HEAD when they are older than the TTL. */
int fs_revalidate(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n);
/* The same when older than window_ms: an open (close-to-open with other
 * machines) passes fs->reval_ms. */
int fs_revalidate_within(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n, int64_t window_ms);
/* An open's check (fs->reval_ms): when the first block is not cached, its
 * GET is the check and fills the cache (no HEAD of its own). */
int fs_revalidate_open(struct bfs_fs *fs, uint64_t ino, struct bfs_node *n);
/* Marks a node's attributes as needing a HEAD before the next use. */
void fs_node_stale(struct bfs_fs *fs, uint64_t ino);

#endif
