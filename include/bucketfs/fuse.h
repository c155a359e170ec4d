/* SPDX-License-Identifier: MIT */
/*
 * fuse.h: the libfuse low-level glue: it turns kernel requests into
 * calls to the fs layer and the results into replies, exactly one reply
 * per request on every path. Nothing else includes fuse_lowlevel.h.
 *
 * Life: bfs_fuse_new, bfs_fuse_mount (before daemonizing, so that mount
 * errors reach the user), bfs_fuse_run (after, with the fs made in the
 * daemon), bfs_fuse_free (unmounts). SIGINT, SIGTERM and SIGHUP end the
 * loop; the caller then tears down and the mount goes away cleanly.
 */
#ifndef BUCKETFS_FUSE_H
#define BUCKETFS_FUSE_H

#include <stddef.h>

struct bfs_fs;
struct bfs_fuse;

/* opts: a comma-separated -o string for libfuse (may be NULL). */
int bfs_fuse_new(const char *opts, struct bfs_fuse **ret, char *err, size_t errlen);
int bfs_fuse_mount(struct bfs_fuse *f, const char *mountpoint, char *err, size_t errlen);
/* Serves requests with several threads until unmounted or signalled. */
int bfs_fuse_run(struct bfs_fuse *f, struct bfs_fs *fs, int single_thread);
void bfs_fuse_free(struct bfs_fuse *f);

#endif
