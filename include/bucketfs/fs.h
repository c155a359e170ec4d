/* SPDX-License-Identifier: MIT */
/*
 * fs.h: the filesystem logic of bucketfs: the tree of mappings, inodes and
 * their lookup counts, attributes, directory listings and reads through
 * the block cache, built on the S3 client and the store.
 *
 * Contract
 * - Knows nothing of FUSE: it speaks inode numbers and struct stat, and
 *   the fuse layer turns results into replies.
 * - Every function is thread-safe and may block on S3; none holds a lock
 *   while it does.
 * - Functions return 0 (or a byte count) or a negative errno.
 * - Lookup counts follow the kernel's: each successful bfs_fs_lookup and
 *   each bfs_fs_dir_ref adds one, bfs_fs_forget takes n away. An inode
 *   stays resolvable while its count is above zero (and the root always).
 */
#ifndef BUCKETFS_FS_H
#define BUCKETFS_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct bfs_config;
struct bfs_store;
struct bfs_fs;
struct bfs_dir;
struct bfs_file;

/* Builds the filesystem for a finished config over an open store. The
 * S3 clients are made here from the config (one per distinct endpoint).
 * With recover, uploads left in the journal are resumed. err gets a
 * message for the user. */
int bfs_fs_new(const struct bfs_config *cfg, struct bfs_store *store, int recover,
               struct bfs_fs **ret, char *err, size_t errlen);
/* Checks that every mapping's bucket answers (a LIST of the first page of
 * keys), so that a mount with bad credentials or a wrong endpoint fails at
 * once. The page is kept: it answers lookups near the top of the tree. */
int bfs_fs_check(struct bfs_fs *fs, char *err, size_t errlen);
/* What the check learnt, moved out of fs, for the filesystem made again
 * after fork (the daemon's): bfs_fs_tops_give hands it over (fs may be
 * NULL) and frees the rest. */
struct bfs_fs_tops;
struct bfs_fs_tops *bfs_fs_tops_take(struct bfs_fs *fs);
void bfs_fs_tops_give(struct bfs_fs *fs, struct bfs_fs_tops *t);
void bfs_fs_free(struct bfs_fs *fs);

/* How the fs tells the kernel that what it said is wrong now (the fuse
 * layer's fuse_lowlevel_notify_inval_*). With wait, each returns once the
 * kernel has it, or after about a second. Set before the first request. */
struct bfs_fs_kernel {
    void (*inval_inode)(void *ctx, uint64_t ino, int data, int wait); /* data: pages too */
    void (*inval_entry)(void *ctx, uint64_t parent, const char *name, int wait);
    void *ctx;
};
void bfs_fs_set_kernel(struct bfs_fs *fs, const struct bfs_fs_kernel *k);

/* Seconds the kernel may cache entries and attributes. */
double bfs_fs_ttl(const struct bfs_fs *fs);
/* Seconds the kernel may cache that a name does not exist: a file another
 * machine makes is found by name within it (revalidate). */
double bfs_fs_negative_ttl(const struct bfs_fs *fs);

/* ---- names and attributes (fs/lookup.c, fs/inode.c) ---- */

int bfs_fs_lookup(struct bfs_fs *fs, uint64_t parent, const char *name, struct stat *ret);
void bfs_fs_forget(struct bfs_fs *fs, uint64_t ino, uint64_t nlookup);
int bfs_fs_getattr(struct bfs_fs *fs, uint64_t ino, struct stat *ret);
/* The same through an open handle f (fstat; NULL: none): a file unlinked
 * while open shows what its handle writes. */
int bfs_fs_fgetattr(struct bfs_fs *fs, uint64_t ino, struct bfs_file *f, struct stat *ret);
/* Symlink target into buf (NUL-terminated); returns its length. */
int bfs_fs_readlink(struct bfs_fs *fs, uint64_t ino, char *buf, size_t size);

/* ---- directories (fs/dir.c) ---- */

/* Takes a snapshot of the directory's entries (listing S3 if the cached
 * listing is older than the TTL). Caller frees with bfs_fs_closedir. */
int bfs_fs_opendir(struct bfs_fs *fs, uint64_t ino, struct bfs_dir **ret);
void bfs_fs_closedir(struct bfs_dir *d);
/* Entry i of the snapshot ("." and ".." first): its name and attributes;
 * -ENOENT past the end. Borrowed until closedir. */
int bfs_fs_dir_entry(struct bfs_dir *d, size_t i, const char **ret_name, struct stat *ret_st);
/* Adds one lookup count to entry i (readdirplus handed it to the kernel). */
int bfs_fs_dir_ref(struct bfs_fs *fs, struct bfs_dir *d, size_t i);

/* ---- file data (fs/read.c) ---- */

int bfs_fs_open(struct bfs_fs *fs, uint64_t ino, int flags, struct bfs_file **ret);
/* Whether f must be opened around the kernel's page cache (direct_io):
 * handles on an older version of the file are open beside it. */
int bfs_fs_file_direct(const struct bfs_file *f);
/* Reads into buf; returns the byte count (short only at end of file). */
/* copy_file_range from in to out (SPEC.md "Namespace operations"): the
 * whole of a file that is in S3 into an empty file of the same bucket is
 * one server-side copy, and the answer is its size; anything else is
 * -EOPNOTSUPP, and the kernel copies the bytes through read and write. */
ssize_t bfs_fs_copy_range(struct bfs_fs *fs, struct bfs_file *in, off_t off_in,
                          struct bfs_file *out, off_t off_out, size_t len);
ssize_t bfs_fs_read(struct bfs_fs *fs, struct bfs_file *f, char *buf, size_t size, off_t off);
/* Bytes of a read that can be sent from a file descriptor (splice) rather
 * than copied: fd, off and len are borrowed until bfs_fs_read_ref_done. */
struct bfs_read_ref {
    int fd;
    off_t off;
    size_t len;
    void *hold;  /* NULL: no reference was given */
};
/* An answer a read may send before it returns: a read of a block that is
 * not cached can be answered from inside the block's GET, once its own
 * bytes arrived, while the rest of the block still comes. reply then ran
 * (from the reading thread) and replied is set: the caller sends nothing
 * more, and must not use the handle again (it may have been released). */
struct bfs_read_early {
    void (*reply)(void *ctx, const char *buf, size_t n);
    void *ctx;
    int replied;
};
/* bfs_fs_read, except that when the bytes lie in one cached block it may
 * fill *ref instead of buf (and return 0): the caller sends ref->len bytes
 * from ref->fd at ref->off, then calls bfs_fs_read_ref_done; and with
 * early (may be NULL) it may answer early (above). */
ssize_t bfs_fs_read_zc(struct bfs_fs *fs, struct bfs_file *f, char *buf, size_t size, off_t off,
                       struct bfs_read_ref *ref, struct bfs_read_early *early);
void bfs_fs_read_ref_done(struct bfs_file *f, struct bfs_read_ref *ref);
void bfs_fs_release(struct bfs_fs *fs, struct bfs_file *f);

/* ---- writing (fs/write.c, fs/upload.c) ----
 * Writes go to a staging copy; flush (the last close of a writer) commits
 * it to the upload journal and returns; the upload runs in the background.
 * With the sync_upload option flush also waits for the upload. */

ssize_t bfs_fs_write(struct bfs_fs *fs, struct bfs_file *f, const char *buf, size_t size,
                     off_t off);
int bfs_fs_flush(struct bfs_fs *fs, struct bfs_file *f);
/* Commits and waits until the file is in S3; the upload's error if not. */
int bfs_fs_fsync(struct bfs_fs *fs, struct bfs_file *f);
/* Waits until every committed upload is in S3 or has failed for good,
 * logging progress. Called at unmount. */
void bfs_fs_drain(struct bfs_fs *fs);

/* ---- namespace (fs/namespace.c) ---- */

int bfs_fs_create(struct bfs_fs *fs, uint64_t parent, const char *name, mode_t mode,
                  uid_t uid, gid_t gid, struct stat *ret, struct bfs_file **ret_f);
int bfs_fs_mkdir(struct bfs_fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid,
                 gid_t gid, struct stat *ret);
int bfs_fs_mknod(struct bfs_fs *fs, uint64_t parent, const char *name, mode_t mode, uid_t uid,
                 gid_t gid, struct stat *ret);
int bfs_fs_symlink(struct bfs_fs *fs, const char *target, uint64_t parent, const char *name,
                   uid_t uid, gid_t gid, struct stat *ret);
int bfs_fs_unlink(struct bfs_fs *fs, uint64_t parent, const char *name);
int bfs_fs_rmdir(struct bfs_fs *fs, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE (RENAME_EXCHANGE is refused). */
int bfs_fs_rename(struct bfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
                  const char *newname, unsigned int flags);

#define BFS_SET_MODE 1
#define BFS_SET_UID 2
#define BFS_SET_GID 4
#define BFS_SET_SIZE 8
#define BFS_SET_MTIME 16
#define BFS_SET_MTIME_NOW 32
#define BFS_SET_ATIME 64
#define BFS_SET_ATIME_NOW 128
int bfs_fs_setattr(struct bfs_fs *fs, uint64_t ino, const struct stat *attr, int set,
                   struct stat *ret);

/* ---- xattrs and status (fs/xattr.c) ---- */

/* user.s3.* describe an object; on the root, user.bucketfs.stats holds the
 * mount's counters as JSON. Returns the value length (copied when size is
 * large enough, -ERANGE when not; size 0 asks for the length). */
ssize_t bfs_fs_getxattr(struct bfs_fs *fs, uint64_t ino, const char *name, char *buf,
                        size_t size);
ssize_t bfs_fs_listxattr(struct bfs_fs *fs, uint64_t ino, char *buf, size_t size);
/* user.* only (S3 metadata holds 2 KB in all: -ENOSPC beyond). flags:
 * XATTR_CREATE, XATTR_REPLACE. */
int bfs_fs_setxattr(struct bfs_fs *fs, uint64_t ino, const char *name, const char *value,
                    size_t size, int flags);
int bfs_fs_removexattr(struct bfs_fs *fs, uint64_t ino, const char *name);

struct statvfs;
void bfs_fs_statfs(struct bfs_fs *fs, struct statvfs *ret);

#endif
