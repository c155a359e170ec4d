/* SPDX-License-Identifier: MIT */
/*
 * fuse-int.h: what the files of src/fuse share.
 */
#ifndef BUCKETFS_FUSE_INT_H
#define BUCKETFS_FUSE_INT_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdint.h>

/* notify.c: tells the kernel what the fs layer found changed
 * (fuse_lowlevel_notify_inval_*), from a thread of its own, so that no
 * request handler writes to /dev/fuse while the kernel may be waiting on
 * it. Callers that wait are answered once the kernel has it, or after a
 * second (a kernel lock held by the request being answered would
 * otherwise deadlock). */
struct notifier;
struct notifier *notifier_start(struct fuse_session *se);
void notifier_stop(struct notifier *n);
/* The shapes of struct bfs_fs_kernel's callbacks; ctx is the notifier. */
void notifier_inval_inode(void *ctx, uint64_t ino, int data, int wait);
void notifier_inval_entry(void *ctx, uint64_t parent, const char *name, int wait);

#endif
