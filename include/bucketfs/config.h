/* SPDX-License-Identifier: MIT */
/*
 * config.h: the mount's settings: the INI config file of SPEC.md, -o
 * key=value options (the same keys), and --map NAME=s3://bucket/prefix.
 *
 * Contract
 * - Every setter validates its value; a bad key or value is -EINVAL with a
 *   message naming where it came from ("FILE:LINE: ..." or "-o key: ...").
 * - struct bfs_config owns every string in it; bfs_config_done frees them.
 * - Secrets (secret_key) are never part of a message.
 * - Not thread-safe; the config is read-only once the mount starts.
 */
#ifndef BUCKETFS_CONFIG_H
#define BUCKETFS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Settings a mapping may override; unset strings are NULL, unset ints -1. */
struct bfs_conn_settings {
    char *region;
    char *endpoint;
    int path_style;        /* -1 auto, 0 virtual-hosted, 1 path */
    char *profile;
};

/* What an upload does when another writer changed the object first. */
enum bfs_conflicts {
    BFS_CONFLICTS_KEEP_BOTH = 0, /* the default: theirs at the name, ours beside it */
    BFS_CONFLICTS_OVERWRITE,     /* unconditional uploads: the last one wins */
};

struct bfs_mapping {
    char *name;            /* directory name under the mount root */
    char *bucket;
    char *prefix;          /* "" or ending in '/' */
    struct bfs_conn_settings conn;
    int read_only;
    int conflicts;         /* enum bfs_conflicts (-1 while parsing: the global one) */
    char *sse;             /* NULL, "AES256" or "aws:kms" */
    char *sse_kms_key_id;
    char *sse_c_key_file;
    char *storage_class;
    int64_t as_of_ns;      /* 0: the bucket as it is; else a read-only view of the
                            * versions as they were then (ns since the epoch;
                            * a relative as_of is fixed when it is parsed) */
    int line;              /* where it was defined (0: --map) */
};

/* What a directory listing asks beyond LIST (which carries no metadata);
 * fs/meta.c says how. */
enum bfs_list_meta {
    BFS_LIST_META_NONE = 0, /* nothing: defaults, one LIST per 1,000 entries (inexact) */
    BFS_LIST_META_SMALL,    /* auto, and every object under 4 KiB */
    BFS_LIST_META_ALL,      /* every object and marker (like s3fs) */
    BFS_LIST_META_AUTO,     /* the default: a sample of each page; every entry of a
                             * directory where one carries metadata */
};

struct bfs_config {
    struct bfs_conn_settings conn;
    char *access_key, *secret_key, *session_token;
    char *passwd_file;
    int anonymous;
    char *ca_file;
    int insecure;

    char *cache_dir;       /* default: $XDG_CACHE_HOME or ~/.cache /bucketfs/<mount> */
    uint64_t cache_size;   /* bytes; default 10 GiB */
    int64_t metadata_ttl;  /* seconds; default 60 */
    int64_t request_timeout_ms; /* the longest an S3 call of a syscall takes; 30 s */
    int64_t revalidate_ms; /* an open, or a lookup of a name found missing, asks S3
                            * when what the mount knows is older; 1 s (other
                            * machines' closes are seen within it) */
    int64_t upload_retry_max; /* seconds between retries of a failing upload, at most;
                               * default 300 (permanent failures wait this long) */
    int64_t upload_delay_ms; /* a closed file waits this long before its upload
                              * starts, so that a rename or utimes right after
                              * close (rsync, editors) rides on the one upload;
                              * default 200; fsync and sync skip it */
    uint32_t block_size;   /* bytes; default 1 MiB */
    int read_ahead;        /* blocks in flight ahead of a sequential reader */
    int random_fetch;      /* 1 (auto, the default): once random reads covered a
                            * good share of an object, fetch the rest in the
                            * background; 0 (off): only what reads touch */
    int list_meta;         /* BFS_LIST_META_*: HEADs while listing */
    int conflicts;         /* enum bfs_conflicts, the mappings' default */
    int max_connections;   /* S3 requests in flight */

    uid_t uid;
    gid_t gid;
    mode_t file_mode, dir_mode, umask;
    int read_only;
    int allow_other;
    int default_permissions; /* -1: on with allow_other */
    int sync_upload;

    int foreground, debug;
    char *fuse_opts;       /* options passed on to libfuse, comma-separated */

    struct bfs_mapping *maps;
    size_t nmaps;
};

/* Fills the defaults (uid/gid of the caller, 0644/0755, ...). */
void bfs_config_init(struct bfs_config *c);
void bfs_config_done(struct bfs_config *c);

/* Reads an INI file: [global] and one section per mapping. A file that
 * sets secret_key or session_token while group or others may access it is
 * refused (-EACCES), like an s3fs passwd file. */
int bfs_config_load(struct bfs_config *c, const char *path, char *err, size_t errlen);
/* One "-o" item: a config key=value, a bucketfs flag, or a FUSE option
 * (kept in fuse_opts). */
int bfs_config_option(struct bfs_config *c, const char *item, char *err, size_t errlen);
/* "NAME=s3://bucket[/prefix]". */
int bfs_config_add_map(struct bfs_config *c, const char *spec, char *err, size_t errlen);
/* Checks the whole (names unique, buckets set) and fills derived values;
 * mountpoint picks the default cache directory. */
int bfs_config_finish(struct bfs_config *c, const char *mountpoint, char *err, size_t errlen);

#endif
