/* SPDX-License-Identifier: MIT */
/*
 * cli.h: the bucketfs subcommands that talk to a running mount:
 *
 *   bucketfs status MOUNTPOINT [--json]      counters, cache, uploads
 *   bucketfs sync [--quiet] MOUNTPOINT [PATH] wait until written data is in S3
 *   bucketfs presign [--expires DURATION] PATH   a presigned GET URL
 *   bucketfs prefetch PATH...                    fill the block cache
 *   bucketfs versions [--json] PATH              a file's versions
 *   bucketfs restore [--version ID | --at TIME] PATH   an old version current
 *
 * Contract
 * - They ask the daemon through virtual extended attributes of the mount
 *   (user.bucketfs.stats, user.bucketfs.uploads, user.bucketfs.presign.SECS,
 *   user.bucketfs.versions/NAME, user.bucketfs.restore/SPEC/NAME, answered
 *   by src/fs), so they need no config, no credentials and no S3
 *   connection of their own, and can print no secret.
 * - Each returns the process exit status and prints its own messages on
 *   stderr, prefixed "bucketfs SUBCOMMAND: ". 2 means a usage error (and,
 *   for status and sync, that the request could not be made).
 * - Not thread-safe (getopt); meant to be called once from main().
 */
#ifndef BUCKETFS_CLI_H
#define BUCKETFS_CLI_H

/* Runs the subcommand argv[0] ("status", "sync", "presign") with the rest
 * of argv as its arguments and returns its exit status, or -1 when argv[0]
 * names no subcommand (then nothing was done). */
int bfs_cli_subcommand(int argc, char **argv);

#endif
