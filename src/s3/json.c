/* SPDX-License-Identifier: MIT */
/*
 * json.c: the flat JSON objects the credential services answer with (ECS
 * container credentials, EC2 instance metadata):
 *
 *     {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "...",
 *      "Expiration": "2024-01-01T00:00:00Z", "Code": "Success"}
 *
 * Read with the program's JSON reader (src/util/json.c) and narrowed to
 * what such a reply may be: one object whose values are strings, numbers,
 * true, false or null; nested objects and arrays, duplicate names and
 * invalid UTF-8 are -EPROTO like anything malformed. The reply comes from
 * the network, so every path is bounded (S3_JSON_MAX bytes, S3_JSON_FIELDS
 * members) and nothing is half-returned. Values are kept as text (numbers
 * as written); they hold secrets, so every copy is wiped when freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/json.h"
#include "s3-int.h"

/* Moves the members of the parsed object into o (the tree keeps none). */
static int take_members(struct bfs_json *obj, struct s3_json *o)
{
    for (struct bfs_json *m = obj->child; m; m = m->next) {
        if (m->type == BFS_JSON_OBJECT || m->type == BFS_JSON_ARRAY)
            return -EPROTO;
        if (o->n == S3_JSON_FIELDS)
            return -E2BIG;
        o->names[o->n] = m->name;
        o->values[o->n] = m->str;
        o->is_string[o->n] = m->type == BFS_JSON_STRING;
        m->name = m->str = NULL;
        o->n++;
    }
    return 0;
}

int s3_json_parse(const char *text, size_t len, struct s3_json *ret)
{
    struct s3_json o = {0};
    struct bfs_json *j = NULL;
    int r;

    if (!text || len == 0)
        return -EPROTO;
    if (len > S3_JSON_MAX)
        return -E2BIG;
    /* depth 2: the object's values are refused below, with the right errno */
    r = bfs_json_parse(text, len, BFS_JSON_UTF8 | BFS_JSON_UNIQUE | BFS_JSON_SECRET, 2, &j);
    if (r == -EINVAL || (r == 0 && j->type != BFS_JSON_OBJECT))
        r = -EPROTO;
    if (r == 0)
        r = take_members(j, &o);
    bfs_json_free_wiped(j);
    if (r < 0) {
        s3_json_done(&o);
        return r;
    }
    *ret = o;
    return 0;
}

void s3_json_done(struct s3_json *o)
{
    for (size_t i = 0; i < o->n; i++) {
        explicit_bzero(o->values[i], strlen(o->values[i]));
        free(o->names[i]);
        free(o->values[i]);
    }
    memset(o, 0, sizeof(*o));
}

const char *s3_json_str(const struct s3_json *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->names[i], name) == 0)
            return o->is_string[i] ? o->values[i] : NULL;
    return NULL;
}
