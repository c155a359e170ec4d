/* SPDX-License-Identifier: MIT */
/*
 * cli-int.h: what the subcommand files of src/cli share: finding and
 * asking a mount (cli.c), whose JSON answers bucketfs/json.h reads.
 */
#ifndef BUCKETFS_CLI_INT_H
#define BUCKETFS_CLI_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bucketfs/json.h"

/* The daemon's answers are read with bucketfs/json.h, nested up to this. */
#define CLI_JSON_DEPTH 32

/* ---- cli.c ---- */

/* Checks that mountpoint is the root of a live bucketfs mount (its
 * user.bucketfs.stats answers). On failure prints why, prefixed with
 * "bucketfs CMD: ", and returns -1; else 0, with the mount's device. */
int cli_mount_check(const char *cmd, const char *mountpoint, dev_t *ret_dev);
/* Reads the JSON attribute name of path (user.bucketfs.stats or .uploads)
 * and parses it; -errno from getxattr, -EINVAL for a malformed answer.
 * Caller frees with bfs_json_free. */
int cli_read_json(const char *path, const char *name, struct bfs_json **ret);
/* Reads an attribute of path into a new NUL-terminated string; returns its
 * length or -errno. Caller frees. */
ssize_t cli_getxattr(const char *path, const char *name, char **ret);
/* Explains an errno from asking a mount about path on stderr. */
void cli_report_errno(const char *cmd, const char *path, int err);
/* The root of the bucketfs mount that holds path (a new string), or NULL
 * when path is on no bucketfs mount. */
char *cli_bucketfs_root(const char *path);
/* Draws "LABEL [###---]  40%  DONE of TOTAL, N files left" over the
 * current line of stderr, which the caller knows is a terminal;
 * cli_bar_clear erases it before a message or at the end. */
void cli_bar_draw(const char *label, uint64_t done, uint64_t total, uint64_t files_left);
void cli_bar_clear(void);
/* Parses the argument of --timeout (30s, 5m, 1h; more than 0); prints
 * why and returns -1 when it is not one. */
int cli_parse_timeout(const char *cmd, const char *arg, int64_t *ret_s);
/* "512 B", "1.5 KiB", "20.0 GiB". */
void cli_fmt_bytes(uint64_t n, char out[32]);
/* "45s", "3m20s", "2h13m", "3d4h". */
void cli_fmt_secs(uint64_t s, char out[32]);
/* Writes s to f with control characters shown as '?' (keys and S3
 * messages come from outside and must not drive the terminal). */
void cli_put_safe(FILE *f, const char *s);

/* One conflict of the daemon's conflict_items (kind, path, copy) as a
 * line: what the other writer left and where this mount's version went. */
void cli_put_conflict(FILE *f, const struct bfs_json *it);

/* ---- sync.c ----
 * Waits as `bucketfs sync` does until every file closed under target (a
 * path of a live mount) is in S3, with sync's progress bar on stderr when
 * bar is set; messages start "bucketfs CMD: ". until_ms is a bfs_mono_ms()
 * deadline (0: none). Returns sync's exit status: 0 all uploaded, 1 failed,
 * conflicted or not done at the deadline (what is left is named), 2 the
 * mount could not be asked. */
int cli_sync_wait(const char *cmd, const char *target, int bar, int64_t until_ms);

int cli_status(int argc, char **argv);
int cli_sync(int argc, char **argv);
int cli_presign(int argc, char **argv);
int cli_prefetch(int argc, char **argv);
int cli_versions(int argc, char **argv);
int cli_restore(int argc, char **argv);

#endif
