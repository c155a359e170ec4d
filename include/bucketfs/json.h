/* SPDX-License-Identifier: MIT */
/*
 * json.h: a small, strict JSON reader (RFC 8259) shared by the layers that
 * read JSON: the subcommands (the daemon's user.bucketfs.* answers) and the
 * S3 client (ECS and EC2 instance-metadata credential replies).
 *
 * bfs_json_parse builds a tree of struct bfs_json nodes, or nothing: on any
 * error no part of the input is returned. Refused, always: malformed input,
 * trailing garbage, nesting deeper than max_depth (1: one object or array
 * of plain values), bad escapes, lone surrogates, raw control characters
 * and \u0000 (a C string cannot hold it). Lookups are linear, which suits
 * objects of a few dozen members. Input length is bounded by the caller.
 */
#ifndef BUCKETFS_JSON_H
#define BUCKETFS_JSON_H

#include <stddef.h>
#include <stdint.h>

enum bfs_json_type {
    BFS_JSON_NULL, BFS_JSON_BOOL, BFS_JSON_NUMBER, BFS_JSON_STRING, BFS_JSON_ARRAY,
    BFS_JSON_OBJECT
};

struct bfs_json {
    enum bfs_json_type type;
    char *name;             /* member name inside an object, else NULL */
    char *str;              /* STRING: decoded UTF-8; NUMBER, BOOL, NULL: the
                             * text as written ("1.5e3", "true") */
    double num;             /* NUMBER */
    uint64_t u64;           /* NUMBER: the value when it is an integer >= 0, else 0 */
    int boolean;            /* BOOL */
    struct bfs_json *child; /* ARRAY, OBJECT: first element or member */
    struct bfs_json *next;  /* next sibling */
};

enum {
    BFS_JSON_UTF8 = 1,      /* strings must be valid UTF-8 */
    BFS_JSON_UNIQUE = 2,    /* an object may not name a member twice */
    BFS_JSON_SECRET = 4,    /* values are secrets: scratch memory is wiped */
};

/* Parses len bytes (one value, whitespace around it allowed) with flags
 * (BFS_JSON_*); -EINVAL when malformed or refused, -ENOMEM. Caller frees
 * with bfs_json_free. */
int bfs_json_parse(const char *text, size_t len, int flags, int max_depth,
                   struct bfs_json **ret);
void bfs_json_free(struct bfs_json *j);
/* The same, wiping every name and value first (they held secrets). */
void bfs_json_free_wiped(struct bfs_json *j);
/* Member name of an object, or NULL (also when o is not an object). */
const struct bfs_json *bfs_json_get(const struct bfs_json *o, const char *name);
/* The member as a number (0 when absent or not a number) or a string
 * ("" when absent or not a string); borrowed from o. */
uint64_t bfs_json_u64(const struct bfs_json *o, const char *name);
const char *bfs_json_str(const struct bfs_json *o, const char *name);

#endif
