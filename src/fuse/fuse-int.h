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

/* ThreadSanitizer cannot see that the kernel orders requests: a RELEASE
 * comes only after the replies to the READs of that file, through
 * /dev/fuse. So, in a -fsanitize=thread build, every reply releases and
 * every request acquires one sync object (kernel_order, ops.c): a request
 * that starts after another was answered is ordered after it, and two
 * requests running at once stay unordered, as they are. */
#ifdef __SANITIZE_THREAD__
#include <sanitizer/tsan_interface.h>
extern char bfs_kernel_order;
#define KERNEL_ORDERED(reply) (__tsan_release(&bfs_kernel_order), (reply))
#define fuse_reply_err(...) KERNEL_ORDERED(fuse_reply_err(__VA_ARGS__))
#define fuse_reply_none(...) KERNEL_ORDERED(fuse_reply_none(__VA_ARGS__))
#define fuse_reply_entry(...) KERNEL_ORDERED(fuse_reply_entry(__VA_ARGS__))
#define fuse_reply_create(...) KERNEL_ORDERED(fuse_reply_create(__VA_ARGS__))
#define fuse_reply_attr(...) KERNEL_ORDERED(fuse_reply_attr(__VA_ARGS__))
#define fuse_reply_readlink(...) KERNEL_ORDERED(fuse_reply_readlink(__VA_ARGS__))
#define fuse_reply_open(...) KERNEL_ORDERED(fuse_reply_open(__VA_ARGS__))
#define fuse_reply_write(...) KERNEL_ORDERED(fuse_reply_write(__VA_ARGS__))
#define fuse_reply_buf(...) KERNEL_ORDERED(fuse_reply_buf(__VA_ARGS__))
#define fuse_reply_data(...) KERNEL_ORDERED(fuse_reply_data(__VA_ARGS__))
#define fuse_reply_statfs(...) KERNEL_ORDERED(fuse_reply_statfs(__VA_ARGS__))
#define fuse_reply_xattr(...) KERNEL_ORDERED(fuse_reply_xattr(__VA_ARGS__))
#define fuse_reply_lseek(...) KERNEL_ORDERED(fuse_reply_lseek(__VA_ARGS__))
#define KERNEL_REQUEST() __tsan_acquire(&bfs_kernel_order)
#else
#define KERNEL_REQUEST() ((void)0)
#endif

#endif
