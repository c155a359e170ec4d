/* SPDX-License-Identifier: MIT */
/*
 * asof.c: mappings that show a versioned bucket as it was at a time
 * (as_of). Such a mapping is read-only (config.c sets read_only, so every
 * change answers EROFS); what this file owns is which version each name
 * shows and how the mount reads that version.
 *
 * DESIGN
 *   1. A listing is ListObjectVersions of the directory's prefix with the
 *      delimiter, every page (KeyMarker / VersionIdMarker). S3 sends each
 *      key's versions newest first; the key shows the first one whose
 *      LastModified is at or before as_of. When that one is a delete
 *      marker, or every version is newer, the key is absent. Common
 *      prefixes are directories: one whose keys were all made after as_of
 *      shows as an empty directory (finding out would take a listing of
 *      the whole subtree).
 *   2. The version a file shows travels in its ETag: a node of an as_of
 *      mapping holds "ETAG"@VERSIONID (fs_asof_etag). Everything keyed by
 *      ETag (the block cache, the metadata learnt, an open file's one
 *      version) is then keyed by version too, so blocks of an old version
 *      never mix with the current one's, whatever two versions' ETags are
 *      (a rewrite of the same bytes keeps the ETag). A real ETag never
 *      holds '"@', so a live node is never taken for a version.
 *   3. Reads GET with versionId (and If-Match of the real ETag); HEADs
 *      ask for the version too. A version never changes, so an as_of
 *      node, once its metadata is known, is never asked about again.
 *   4. The mount checks at start that the bucket keeps versions
 *      (GetBucketVersioning says Enabled or Suspended); otherwise the
 *      view would silently be today's, and the mount fails naming the
 *      mapping.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define VERSIONS_PAGE 1000

int fs_asof_etag(const char *etag, const char *version_id, char out[BFS_S3_ETAG_MAX])
{
    char e[BFS_S3_ETAG_MAX];
    int n;

    bfs_s3_etag_normalize(etag, e);
    n = snprintf(out, BFS_S3_ETAG_MAX, "%s@%s", e, version_id);
    return n < 0 || n >= BFS_S3_ETAG_MAX ? -ENAMETOOLONG : 0;
}

int fs_etag_version(const char *etag, char real[BFS_S3_ETAG_MAX],
                    char vid[BFS_S3_VERSION_ID_MAX])
{
    const char *at = strstr(etag, "\"@");

    if (!at || at == etag || strlen(at + 2) >= BFS_S3_VERSION_ID_MAX)
        return 0;
    memcpy(real, etag, (size_t)(at - etag + 1));
    real[at - etag + 1] = '\0';
    snprintf(vid, BFS_S3_VERSION_ID_MAX, "%s", at + 2);
    return 1;
}

void fs_get_version(const char *etag, struct bfs_s3_get_params *p, char real[BFS_S3_ETAG_MAX],
                    char vid[BFS_S3_VERSION_ID_MAX])
{
    if (fs_etag_version(etag, real, vid)) {
        p->version_id = vid;
        p->if_match = real;
    } else {
        p->if_match = etag[0] ? etag : NULL;
    }
}

int fs_object_head(struct mapping *m, const char *key, const char *etag,
                   struct bfs_s3_object *o)
{
    char real[BFS_S3_ETAG_MAX], vid[BFS_S3_VERSION_ID_MAX];
    int r;

    if (!etag || !fs_etag_version(etag, real, vid))
        return bfs_s3_head_object(m->client, m->bucket, key, o, NULL);
    r = bfs_s3_head_version(m->client, m->bucket, key, vid, o, NULL);
    if (r == 0) /* the name shows this version: its ETag is the node's */
        snprintf(o->etag, sizeof(o->etag), "%s", etag);
    return r;
}

/* What a listing as of a time is building: a page as ListObjectsV2 would
 * have sent it, and where the key being read is. */
struct pick {
    int64_t as_of_ns;
    struct bfs_s3_list_page pg;
    size_t cap_obj, cap_pre;
    char *key;   /* the key whose versions are being read (owned) */
    int decided; /* its version has been picked (or it is absent) */
};

static int keep_version(struct pick *k, struct bfs_s3_version *v)
{
    struct bfs_s3_object *o;

    if (k->pg.nobjects == k->cap_obj) {
        size_t cap = k->cap_obj ? k->cap_obj * 2 : 256;

        o = realloc(k->pg.objects, cap * sizeof(*o));
        if (!o)
            return -ENOMEM;
        k->pg.objects = o;
        k->cap_obj = cap;
    }
    o = &k->pg.objects[k->pg.nobjects];
    if (fs_asof_etag(v->o.etag, v->version_id, o->etag) < 0)
        return 0; /* cannot be carried: the key is skipped, as a bad name is */
    o->key = v->o.key;
    v->o.key = NULL;
    o->size = v->o.size;
    o->mtime_ns = v->o.mtime_ns;
    o->content_type = NULL;
    memset(&o->meta, 0, sizeof(o->meta));
    k->pg.nobjects++;
    return 0;
}

/* DESIGN 1: the first version at or before as_of decides the key. */
static int pick_version(struct pick *k, struct bfs_s3_version *v)
{
    if (!k->key || strcmp(k->key, v->o.key) != 0) {
        free(k->key);
        k->key = strdup(v->o.key);
        k->decided = 0;
        if (!k->key)
            return -ENOMEM;
    }
    if (k->decided || v->o.mtime_ns > k->as_of_ns)
        return 0;
    k->decided = 1;
    return v->delete_marker ? 0 : keep_version(k, v);
}

static int keep_prefixes(struct pick *k, struct bfs_s3_version_page *vp)
{
    for (size_t i = 0; i < vp->nprefixes; i++) {
        if (k->pg.nprefixes == k->cap_pre) {
            size_t cap = k->cap_pre ? k->cap_pre * 2 : 64;
            char **p = realloc(k->pg.prefixes, cap * sizeof(*p));

            if (!p)
                return -ENOMEM;
            k->pg.prefixes = p;
            k->cap_pre = cap;
        }
        k->pg.prefixes[k->pg.nprefixes++] = vp->prefixes[i];
        vp->prefixes[i] = NULL;
    }
    return 0;
}

static int pick_page(void *ctx, struct bfs_s3_version_page *vp)
{
    struct pick *k = ctx;
    int r = 0;

    for (size_t i = 0; i < vp->nversions && r == 0; i++)
        r = pick_version(k, &vp->versions[i]);
    return r == 0 ? keep_prefixes(k, vp) : r;
}

int fs_asof_list(struct mapping *m, const char *prefix, struct bfs_s3_list_page *ret)
{
    struct bfs_s3_version_params p = {.prefix = prefix, .delimiter = "/",
                                      .max_keys = VERSIONS_PAGE};
    struct pick k = {.as_of_ns = m->as_of_ns};
    int r = bfs_s3_list_versions_each(m->client, m->bucket, &p, pick_page, &k, NULL);

    free(k.key);
    if (r < 0) {
        bfs_s3_list_page_done(&k.pg);
        return r;
    }
    *ret = k.pg;
    return 0;
}

int fs_asof_check(struct mapping *m, char *err, size_t errlen)
{
    struct bfs_s3_error e = {0};
    char status[16] = "";
    int r = bfs_s3_bucket_versioning(m->client, m->bucket, status, &e);

    if (r == 0 && (!strcmp(status, "Enabled") || !strcmp(status, "Suspended")))
        return 0;
    if (r == 0)
        snprintf(err, errlen,
                 "mapping %s: as_of needs a versioned bucket, and s3://%s at %s has "
                 "versioning %s: the view would not be of the past",
                 m->name, m->bucket, bfs_s3_client_endpoint(m->client),
                 status[0] ? status : "never enabled");
    else
        snprintf(err, errlen,
                 "mapping %s: as_of needs a versioned bucket, and the server at %s does not "
                 "say whether s3://%s keeps versions (GetBucketVersioning: %s%s%s)",
                 m->name, bfs_s3_client_endpoint(m->client), m->bucket,
                 e.code[0] ? e.code : "", e.code[0] ? ": " : "",
                 e.message[0] ? e.message : strerror(-r));
    return r < 0 ? r : -ENOTSUP;
}
