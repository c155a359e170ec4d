/* SPDX-License-Identifier: MIT */
/*
 * ops.c: the FUSE low-level operations of bucketfs: thin wrappers that
 * call src/fs and reply. Each handler replies exactly once, with a reply
 * the operation's documentation lists as valid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "bucketfs/fs.h"
#include "bucketfs/fuse.h"
#include "bucketfs/util.h"
#include "fuse-int.h"

struct bfs_fuse {
    struct fuse_session *se;
    struct bfs_fs *fs; /* set by bfs_fuse_run, before the first request */
    int mounted;
};

/* Reads from this size up are answered from the block file by splice. */
#define SPLICE_MIN (64 * 1024)

/* The errno a caller sees for a negative result: S3 not answering is EIO
 * (or ETIMEDOUT when it timed out), not a socket error of the daemon's. */
static int uerr(int r)
{
    if (r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ECONNRESET || r == -ENETUNREACH)
        return EIO;
    return -r;
}

#ifdef __SANITIZE_THREAD__
char bfs_kernel_order; /* fuse-int.h */
#endif

/* Every request handler asks this first (KERNEL_REQUEST: fuse-int.h). */
static struct bfs_fs *fs_of(fuse_req_t req)
{
    KERNEL_REQUEST();
    return ((struct bfs_fuse *)fuse_req_userdata(req))->fs;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* ls -l gets attributes in one go */
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    /* cached blocks go from the page cache into read replies by splice */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    conn->max_write = 1024 * 1024; /* fewer, larger writes into staging files */
    conn->max_readahead = 1024 * 1024;
}

static void fill_entry(struct fuse_entry_param *e, struct bfs_fs *fs, const struct stat *st)
{
    memset(e, 0, sizeof(*e));
    e->ino = st->st_ino;
    e->attr = *st;
    e->attr_timeout = bfs_fs_ttl(fs);
    e->entry_timeout = bfs_fs_ttl(fs);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct bfs_fs *fs = fs_of(req);
    struct fuse_entry_param e;
    struct stat st;
    int r = bfs_fs_lookup(fs, parent, name, &st);

    if (r == -ENOENT) { /* a negative entry the kernel may cache a while */
        memset(&e, 0, sizeof(e));
        e.entry_timeout = bfs_fs_negative_ttl(fs);
        fuse_reply_entry(req, &e);
        return;
    }
    if (r < 0) {
        fuse_reply_err(req, uerr(r));
        return;
    }
    fill_entry(&e, fs, &st);
    fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    bfs_fs_forget(fs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        bfs_fs_forget(fs_of(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    /* the kernel passes a handle for a regular file only (fstat) */
    int r = bfs_fs_fgetattr(fs_of(req), ino, fi ? (struct bfs_file *)(uintptr_t)fi->fh : NULL,
                            &st);

    if (r < 0)
        fuse_reply_err(req, uerr(r));
    else
        fuse_reply_attr(req, &st, bfs_fs_ttl(fs_of(req)));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char buf[4097];
    int r = bfs_fs_readlink(fs_of(req), ino, buf, sizeof(buf));

    if (r < 0)
        fuse_reply_err(req, uerr(r));
    else
        fuse_reply_readlink(req, buf);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct bfs_dir *d;
    int r = bfs_fs_opendir(fs_of(req), ino, &d);

    if (r < 0) {
        fuse_reply_err(req, uerr(r));
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(req, fi) == -ENOENT)
        bfs_fs_closedir(d); /* the opener was interrupted: no release will come */
}

static void do_readdir(fuse_req_t req, struct fuse_file_info *fi, size_t size, off_t off,
                       int plus)
{
    struct bfs_fs *fs = fs_of(req);
    struct bfs_dir *d = (struct bfs_dir *)(uintptr_t)fi->fh;
    char *buf = malloc(size);
    size_t used = 0;
    const char *name;
    struct stat st;

    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = (size_t)off; bfs_fs_dir_entry(d, i, &name, &st) == 0; i++) {
        size_t need;

        if (plus) {
            struct fuse_entry_param e;

            fill_entry(&e, fs, &st);
            if (i < 2)
                e.ino = 0; /* "." and "..": no lookup count */
            need = fuse_add_direntry_plus(req, NULL, 0, name, &e, 0);
            if (used + need > size)
                break;
            /* count only entries that fit (STYLE.md 3) */
            if (bfs_fs_dir_ref(fs, d, i) < 0)
                e.ino = 0, e.entry_timeout = 0;
            fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1);
        } else {
            need = fuse_add_direntry(req, NULL, 0, name, &st, 0);
            if (used + need > size)
                break;
            fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
        }
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, fi, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, fi, size, off, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    KERNEL_REQUEST();
    bfs_fs_closedir((struct bfs_dir *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct bfs_file *f;
    int r = bfs_fs_open(fs_of(req), ino, fi->flags, &f);

    if (r < 0) {
        fuse_reply_err(req, uerr(r));
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)f;
    fi->direct_io = bfs_fs_file_direct(f);
    if (fuse_reply_open(req, fi) == -ENOENT)
        bfs_fs_release(fs_of(req), f);
}

/* Sends bytes of a block file: spliced from the page cache into the
 * reply when the kernel takes splice, else read into a buffer by libfuse.
 * fuse_reply_data replies exactly once, with an error if the file fails. */
static void reply_ref(fuse_req_t req, const struct bfs_read_ref *ref)
{
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(ref->len);

    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    bv.buf[0].fd = ref->fd;
    bv.buf[0].pos = ref->off;
    /* copy flags 0: pages are copied from the pipe, never moved, since
     * they belong to the block file's page cache */
    (void)fuse_reply_data(req, &bv, 0);
}

static void reply_early(void *ctx, const char *buf, size_t n)
{
    fuse_reply_buf(ctx, buf, n);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct bfs_file *f = (struct bfs_file *)(uintptr_t)fi->fh;
    struct bfs_read_early early = {.reply = reply_early, .ctx = req};
    struct bfs_read_ref ref;
    char *buf = malloc(size ? size : 1);
    ssize_t n;

    (void)ino;
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    /* small reads copy: splice's extra system calls (vmsplice, two
     * splices) cost more than copying a few KiB */
    n = bfs_fs_read_zc(fs_of(req), f, buf, size, off, size >= SPLICE_MIN ? &ref : NULL, &early);
    if (early.replied) {
        free(buf); /* answered from inside the GET; f may be gone */
        return;
    }
    if (n == 0 && size >= SPLICE_MIN && ref.hold) {
        reply_ref(req, &ref);
        bfs_fs_read_ref_done(f, &ref);
    } else if (n < 0) {
        fuse_reply_err(req, uerr((int)n));
    } else {
        fuse_reply_buf(req, buf, (size_t)n);
    }
    free(buf);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    bfs_fs_release(fs_of(req), (struct bfs_file *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs st;

    (void)ino;
    bfs_fs_statfs(fs_of(req), &st);
    fuse_reply_statfs(req, &st);
}

static void reply_xattr(fuse_req_t req, ssize_t n, char *buf, size_t size)
{
    if (n < 0)
        fuse_reply_err(req, uerr((int)n));
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char *buf = size ? malloc(size) : NULL;

    if (size && !buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    reply_xattr(req, bfs_fs_getxattr(fs_of(req), ino, name, buf, size), buf, size);
    free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char *buf = size ? malloc(size) : NULL;

    if (size && !buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    reply_xattr(req, bfs_fs_listxattr(fs_of(req), ino, buf, size), buf, size);
    free(buf);
}

/* ---- changes ---- */

static void reply_entry_or_err(fuse_req_t req, int r, const struct stat *st)
{
    struct fuse_entry_param e;

    if (r < 0) {
        fuse_reply_err(req, uerr(r));
        return;
    }
    fill_entry(&e, fs_of(req), st);
    fuse_reply_entry(req, &e);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    ssize_t n = bfs_fs_write(fs_of(req), (struct bfs_file *)(uintptr_t)fi->fh, buf, size, off);

    (void)ino;
    if (n < 0)
        fuse_reply_err(req, uerr((int)n));
    else
        fuse_reply_write(req, (size_t)n);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len, int flags)
{
    ssize_t n = bfs_fs_copy_range(fs_of(req), (struct bfs_file *)(uintptr_t)fi_in->fh, off_in,
                                  (struct bfs_file *)(uintptr_t)fi_out->fh, off_out, len);

    (void)ino_in, (void)ino_out, (void)flags;
    /* EOPNOTSUPP, never ENOSYS: the kernel then copies the bytes itself, and
     * asks again next time (ENOSYS would stop it asking for good) */
    if (n < 0)
        fuse_reply_err(req, uerr((int)n));
    else
        fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fuse_reply_err(req, uerr(bfs_fs_flush(fs_of(req), (struct bfs_file *)(uintptr_t)fi->fh)));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino, (void)datasync;
    fuse_reply_err(req, uerr(bfs_fs_fsync(fs_of(req), (struct bfs_file *)(uintptr_t)fi->fh)));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct stat st;
    int set = 0, r;

    (void)fi;
    if (to_set & FUSE_SET_ATTR_MODE) set |= BFS_SET_MODE;
    if (to_set & FUSE_SET_ATTR_UID) set |= BFS_SET_UID;
    if (to_set & FUSE_SET_ATTR_GID) set |= BFS_SET_GID;
    if (to_set & FUSE_SET_ATTR_SIZE) set |= BFS_SET_SIZE;
    if (to_set & FUSE_SET_ATTR_MTIME) set |= BFS_SET_MTIME;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) set |= BFS_SET_MTIME_NOW;
    if (to_set & FUSE_SET_ATTR_ATIME) set |= BFS_SET_ATIME;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) set |= BFS_SET_ATIME_NOW;
    r = bfs_fs_setattr(fs_of(req), ino, attr, set, &st);
    if (r < 0)
        fuse_reply_err(req, uerr(r));
    else
        fuse_reply_attr(req, &st, bfs_fs_ttl(fs_of(req)));
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    struct stat st;

    (void)rdev;
    reply_entry_or_err(req, bfs_fs_mknod(fs_of(req), parent, name, mode, c->uid, c->gid, &st),
                       &st);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    struct stat st;

    reply_entry_or_err(req, bfs_fs_mkdir(fs_of(req), parent, name, mode, c->uid, c->gid, &st),
                       &st);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    struct stat st;

    reply_entry_or_err(req, bfs_fs_symlink(fs_of(req), link, parent, name, c->uid, c->gid, &st),
                       &st);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, uerr(bfs_fs_unlink(fs_of(req), parent, name)));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, uerr(bfs_fs_rmdir(fs_of(req), parent, name)));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    fuse_reply_err(req, uerr(bfs_fs_rename(fs_of(req), parent, name, newparent, newname, flags)));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn)
{
    (void)ino, (void)np, (void)nn;
    fuse_reply_err(req, EPERM); /* S3 has no hard links */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    struct fuse_entry_param e;
    struct bfs_file *f;
    struct stat st;
    int r = bfs_fs_create(fs_of(req), parent, name, mode, c->uid, c->gid, &st, &f);

    if (r < 0) {
        fuse_reply_err(req, uerr(r));
        return;
    }
    fill_entry(&e, fs_of(req), &st);
    fi->fh = (uint64_t)(uintptr_t)f;
    if (fuse_reply_create(req, &e, fi) == -ENOENT) /* interrupted: no release will come */
        bfs_fs_release(fs_of(req), f);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    fuse_reply_err(req, uerr(bfs_fs_setxattr(fs_of(req), ino, name, value, size, flags)));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fuse_reply_err(req, uerr(bfs_fs_removexattr(fs_of(req), ino, name)));
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .copy_file_range = op_copy_file_range,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .create = op_create,
};

int bfs_fuse_new(const char *opts, struct bfs_fuse **ret, char *err, size_t errlen)
{
    struct bfs_fuse *f = calloc(1, sizeof(*f));
    char *argv[4] = {"bucketfs", NULL, NULL, NULL};
    struct fuse_args args;
    int argc = 1;

    if (!f)
        return -ENOMEM;
    if (opts && *opts) {
        argv[argc++] = "-o";
        argv[argc++] = (char *)opts;
    }
    if (getenv("BFS_FUSE_DEBUG"))
        argv[argc++] = "-d";
    args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
    f->se = fuse_session_new(&args, &ops, sizeof(ops), f);
    fuse_opt_free_args(&args); /* the session copied what it needs */
    if (!f->se) {
        snprintf(err, errlen, "cannot start a FUSE session (options: %s)", opts ? opts : "");
        free(f);
        return -EINVAL;
    }
    *ret = f;
    return 0;
}

int bfs_fuse_mount(struct bfs_fuse *f, const char *mountpoint, char *err, size_t errlen)
{
    if (fuse_session_mount(f->se, mountpoint) != 0) {
        snprintf(err, errlen, "cannot mount on %s (is it an existing, empty directory, "
                 "and is /dev/fuse usable?)", mountpoint);
        return -EIO;
    }
    f->mounted = 1;
    return 0;
}

int bfs_fuse_run(struct bfs_fuse *f, struct bfs_fs *fs, int single_thread)
{
    struct fuse_loop_config *lc;
    struct notifier *nt = notifier_start(f->se);
    struct bfs_fs_kernel k = {notifier_inval_inode, notifier_inval_entry, nt};
    int r;

    if (!nt)
        return -ENOMEM;
    f->fs = fs;
    bfs_fs_set_kernel(fs, &k);
    r = fuse_set_signal_handlers(f->se) != 0 ? -EIO : 0;
    if (r < 0)
        goto out;
    if (single_thread) {
        r = fuse_session_loop(f->se);
    } else {
        lc = fuse_loop_cfg_create();
        if (!lc) {
            fuse_remove_signal_handlers(f->se);
            r = -ENOMEM;
            goto out;
        }
        fuse_loop_cfg_set_max_threads(lc, 32);
        fuse_loop_cfg_set_idle_threads(lc, 8);
        r = fuse_session_loop_mt(f->se, lc);
        fuse_loop_cfg_destroy(lc);
    }
    fuse_remove_signal_handlers(f->se);
out:
    /* no request runs any more: nothing notifies after this */
    bfs_fs_set_kernel(fs, &(struct bfs_fs_kernel){0});
    notifier_stop(nt);
    return r < 0 ? r : 0;
}

void bfs_fuse_free(struct bfs_fuse *f)
{
    if (!f)
        return;
    if (f->mounted)
        fuse_session_unmount(f->se);
    fuse_session_destroy(f->se);
    free(f);
}
