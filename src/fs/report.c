/* SPDX-License-Identifier: MIT */
/*
 * report.c: what the mount tells the bucketfs subcommands, through virtual
 * extended attributes that no user can set (xattr.c refuses user.bucketfs.*):
 *
 *   user.bucketfs.uploads         on any file or directory: the uploads of
 *                                 that subtree (the whole mount on the root)
 *                                 as one JSON object; `bucketfs status` and
 *                                 `bucketfs sync` poll it.
 *   user.bucketfs.sync            the same, after starting every upload that
 *                                 waits out upload_delay: `bucketfs sync`
 *                                 reads it (not listed by listxattr).
 *   user.bucketfs.presign.SECS    on a file that is in S3: a presigned GET
 *                                 URL valid for SECS seconds (1 s .. 7 days).
 *
 * The daemon holds the credentials, so the subcommand process never sees a
 * secret; the presigned URL is handed to the caller and never logged.
 *
 * The kernel caps an xattr value at 64 KiB (XATTR_SIZE_MAX), so the list of
 * uploads is cut at REPORT_MAX bytes: the totals always count every row,
 * "listed" says how many rows the list holds. Rows are listed by state:
 * uploading, failed, retrying, queued, then files still open with unsaved
 * writes (not journaled yet, so not counted as pending).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucketfs/util.h"
#include "fs-int.h"

#define REPORT_MAX (60u * 1024)       /* under the kernel's 64 KiB xattr limit */
#define ITEM_MAX (8u * 1024)          /* one row: a 1 KiB key, an error message */
#define ITEMS_MAX (REPORT_MAX - 2048) /* leaves room for the totals */

enum item_state { IT_UPLOADING, IT_FAILED, IT_RETRYING, IT_QUEUED, IT_OPEN, IT_COUNT };

static const char *const state_names[IT_COUNT] = {"uploading", "failed", "retrying", "queued",
                                                  "open"};

/* Which rows a report covers: everything, or one mapping's key or prefix. */
struct scope {
    const char *map; /* NULL: the whole mount; else borrowed from the mapping */
    char *key;       /* owned: an object key, or a prefix ending in '/' */
    int dir;
};

struct item {
    char *path;  /* owned: NAME/relative key, as under the mount root */
    char *error; /* owned, may be NULL */
    uint64_t size, sent;
    int state, attempts;
    int64_t retry_in_s;
};

struct report {
    struct bfs_fs *fs;
    struct scope sc;
    struct item *v; /* owned */
    size_t n, cap;
    int64_t now_ns;
};

static int scope_of(struct bfs_fs *fs, uint64_t ino, struct scope *sc)
{
    struct mapping *m;
    int kind = 0, r;

    memset(sc, 0, sizeof(*sc));
    if (ino == BFS_ROOT_INO)
        return 0;
    r = fs_inode_target(fs, ino, &m, &sc->key, &kind);
    if (r < 0)
        return r;
    sc->map = m->name; /* mappings live as long as fs */
    sc->dir = kind == BFS_KIND_DIR;
    return 0;
}

static int in_scope(const struct scope *sc, const char *map, const char *key)
{
    if (!sc->map)
        return 1;
    if (strcmp(map, sc->map) != 0)
        return 0;
    return sc->dir ? strncmp(key, sc->key, strlen(sc->key)) == 0 : strcmp(key, sc->key) == 0;
}

/* "NAME/relative/key" for a row of mapping map. Caller frees. */
static char *mount_path(struct bfs_fs *fs, const char *map, const char *key)
{
    struct mapping *m;
    const char *prefix = "";
    struct bfs_buf b;
    size_t plen;

    pthread_mutex_lock(&fs->lock);
    m = fs_mapping_by_name(fs, map);
    if (m)
        prefix = m->prefix; /* immutable */
    pthread_mutex_unlock(&fs->lock);
    plen = strlen(prefix);
    if (strncmp(key, prefix, plen) != 0)
        plen = 0;
    bfs_buf_init(&b, BFS_BUF_CAP_SMALL);
    if (bfs_buf_addf(&b, "%s/%s", map, key + plen) < 0)
        return NULL;
    return bfs_buf_steal(&b);
}

static int add_item(struct report *rp, const struct item *it)
{
    if (rp->n == rp->cap) {
        size_t cap = rp->cap ? rp->cap * 2 : 32;
        struct item *v = realloc(rp->v, cap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        rp->v = v;
        rp->cap = cap;
    }
    rp->v[rp->n++] = *it;
    return 0;
}

static void report_done(struct report *rp)
{
    for (size_t i = 0; i < rp->n; i++) {
        free(rp->v[i].path);
        free(rp->v[i].error);
    }
    free(rp->v);
    free(rp->sc.key);
}

/* One journal row: its state comes from the row and from the wfile (which
 * knows whether an upload of it runs now and how far it got). */
static int add_row(void *ctx, const struct bfs_upload *u)
{
    struct report *rp = ctx;
    struct item it = {.size = u->size, .attempts = u->attempts};
    struct wfile *w;
    int uploading = 0;

    if (!in_scope(&rp->sc, u->map, u->key))
        return 0;
    w = fs_wfile_find(rp->fs, u->ino);
    if (w) {
        pthread_mutex_lock(&w->lock);
        uploading = w->uploading;
        it.sent = uploading ? w->sent : 0;
        pthread_mutex_unlock(&w->lock);
        fs_wfile_put(rp->fs, w);
    }
    if (uploading)
        it.state = IT_UPLOADING;
    else if (u->state == BFS_UPLOAD_FAILED)
        it.state = IT_FAILED;
    else if (u->error && u->error[0])
        it.state = IT_RETRYING;
    else
        it.state = IT_QUEUED;
    if (u->error && u->error[0] && !(it.error = strdup(u->error)))
        return -ENOMEM;
    if (u->next_ns > rp->now_ns && u->next_ns != INT64_MAX)
        it.retry_in_s = (u->next_ns - rp->now_ns + 999999999) / 1000000000;
    it.path = mount_path(rp->fs, u->map, u->key);
    if (!it.path || add_item(rp, &it) < 0) {
        free(it.path);
        free(it.error);
        return -ENOMEM;
    }
    return 0;
}

/* Files written and still open: their data is not journaled until close. */
static int add_open_files(struct report *rp)
{
    struct bfs_fs *fs = rp->fs;
    struct wfile **all = NULL;
    size_t n = 0, cap = 0;
    int r = 0;

    pthread_mutex_lock(&fs->lock); /* w->lock may not be taken under it: collect first */
    for (size_t i = 0; i < WFILE_BUCKETS && r == 0; i++) {
        for (struct wfile *w = fs->wfiles[i]; w && r == 0; w = w->next) {
            if (n == cap) {
                struct wfile **na = realloc(all, (cap ? cap * 2 : 16) * sizeof(*na));

                if (!na) {
                    r = -ENOMEM;
                    break;
                }
                all = na;
                cap = cap ? cap * 2 : 16;
            }
            w->refs++;
            all[n++] = w;
        }
    }
    pthread_mutex_unlock(&fs->lock);
    for (size_t i = 0; i < n; i++) {
        struct item it = {.state = IT_OPEN};
        struct mapping *m;
        char *key = NULL;
        int dirty;

        pthread_mutex_lock(&all[i]->lock);
        dirty = all[i]->dirty && !all[i]->deleted;
        it.size = all[i]->size;
        pthread_mutex_unlock(&all[i]->lock);
        if (r == 0 && dirty && fs_inode_target(fs, all[i]->ino, &m, &key, NULL) == 0 &&
            in_scope(&rp->sc, m->name, key)) {
            it.path = mount_path(fs, m->name, key);
            r = it.path ? add_item(rp, &it) : -ENOMEM;
            if (r < 0)
                free(it.path);
        }
        free(key);
        fs_wfile_put(fs, all[i]);
    }
    free(all);
    return r;
}

int fs_json_str(struct bfs_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int r = bfs_buf_add(b, "\"", 1);

    for (const unsigned char *p = (const unsigned char *)s; *p && r == 0; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            r = bfs_buf_add(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            r = bfs_buf_add(b, esc, 6);
        } else {
            r = bfs_buf_add(b, p, 1);
        }
    }
    return r == 0 ? bfs_buf_add(b, "\"", 1) : r;
}

static int item_json(const struct item *it, struct bfs_buf *b)
{
    int r = bfs_buf_adds(b, "{\"path\":");

    if (r == 0)
        r = fs_json_str(b, it->path);
    if (r == 0)
        r = bfs_buf_addf(b,
                         ",\"state\":\"%s\",\"size\":%llu,\"sent\":%llu,\"attempts\":%d,"
                         "\"retry_in_s\":%lld,\"error\":",
                         state_names[it->state], (unsigned long long)it->size,
                         (unsigned long long)it->sent, it->attempts, (long long)it->retry_in_s);
    if (r == 0)
        r = fs_json_str(b, it->error ? it->error : "");
    return r == 0 ? bfs_buf_add(b, "}", 1) : r;
}

/* The items, by state, as many as fit in ITEMS_MAX bytes. */
static int items_json(const struct report *rp, struct bfs_buf *out, size_t *ret_listed)
{
    struct bfs_buf one;
    size_t listed = 0;
    int r = 0, full = 0;

    bfs_buf_init(&one, ITEM_MAX);
    for (int s = 0; s < IT_COUNT && r == 0 && !full; s++) {
        for (size_t i = 0; i < rp->n && r == 0 && !full; i++) {
            if (rp->v[i].state != s)
                continue;
            bfs_buf_reset(&one);
            if (item_json(&rp->v[i], &one) < 0)
                continue; /* a row too big to show: counted, not listed */
            if (out->len + one.len + 1 > ITEMS_MAX) {
                full = 1;
                break;
            }
            r = bfs_buf_addf(out, "%s%s", listed ? "," : "", bfs_buf_str(&one));
            listed++;
        }
    }
    bfs_buf_done(&one);
    *ret_listed = listed;
    return r;
}

static int uploads_json(struct report *rp, struct bfs_buf *b)
{
    uint64_t count[IT_COUNT] = {0}, bytes[IT_COUNT] = {0}, sent = 0;
    struct bfs_buf items;
    size_t listed = 0;
    int r;

    for (size_t i = 0; i < rp->n; i++) {
        count[rp->v[i].state]++;
        bytes[rp->v[i].state] += rp->v[i].size;
        sent += rp->v[i].sent;
    }
    bfs_buf_init(&items, ITEMS_MAX);
    r = items_json(rp, &items, &listed);
    if (r == 0)
        r = bfs_buf_addf(
            b,
            "{\"pending\":%llu,\"pending_bytes\":%llu,\"uploading\":%llu,\"sent_bytes\":%llu,"
            "\"queued\":%llu,\"retrying\":%llu,\"failed\":%llu,\"failed_bytes\":%llu,"
            "\"stuck\":%llu,\"open\":%llu,\"open_bytes\":%llu,\"listed\":%zu,\"items\":[%s]}",
            (unsigned long long)(count[IT_UPLOADING] + count[IT_RETRYING] + count[IT_QUEUED]),
            (unsigned long long)(bytes[IT_UPLOADING] + bytes[IT_RETRYING] + bytes[IT_QUEUED]),
            (unsigned long long)count[IT_UPLOADING], (unsigned long long)sent,
            (unsigned long long)count[IT_QUEUED], (unsigned long long)count[IT_RETRYING],
            (unsigned long long)count[IT_FAILED], (unsigned long long)bytes[IT_FAILED],
            (unsigned long long)(count[IT_FAILED] + count[IT_RETRYING]),
            (unsigned long long)count[IT_OPEN], (unsigned long long)bytes[IT_OPEN], listed,
            bfs_buf_str(&items));
    bfs_buf_done(&items);
    return r;
}

/* ,"conflicts":TOTAL,"conflict_items":[{"kind","path","copy","age_s"}...]:
 * the conflicts in scope that no sync has reported yet; take marks them
 * reported (bucketfs sync). copy is "" for a delete. */
static int conflicts_json(struct report *rp, struct bfs_buf *b, int take)
{
    static const char *const kind_names[] = {
        [CONFLICT_UPLOAD] = "upload", [CONFLICT_DELETE] = "delete", [CONFLICT_RENAME] = "rename"};
    struct conflict_log *cl = &rp->fs->conflicts;
    size_t listed = 0;
    int r;

    pthread_mutex_lock(&cl->lock);
    r = bfs_buf_addf(b, ",\"conflicts\":%llu,\"conflict_items\":[",
                     (unsigned long long)cl->total);
    for (size_t i = 0; i < cl->n && r == 0 && b->len < REPORT_MAX - 4096; i++) {
        struct conflict *c = &cl->items[(cl->head + i) % CONFLICTS_MAX];
        char *path, *copy;

        if (c->taken || !in_scope(&rp->sc, c->map, c->key))
            continue;
        path = mount_path(rp->fs, c->map, c->key);
        copy = c->copy[0] ? mount_path(rp->fs, c->map, c->copy) : strdup("");
        r = path && copy ? bfs_buf_addf(b, "%s{\"kind\":\"%s\",\"path\":", listed++ ? "," : "",
                                        kind_names[c->kind])
                         : -ENOMEM;
        if (r == 0)
            r = fs_json_str(b, path);
        if (r == 0)
            r = bfs_buf_adds(b, ",\"copy\":");
        if (r == 0)
            r = fs_json_str(b, copy);
        if (r == 0)
            r = bfs_buf_addf(b, ",\"age_s\":%lld}",
                             (long long)((bfs_now_ns() - c->at_ns) / 1000000000));
        if (r == 0 && take)
            c->taken = 1;
        free(path);
        free(copy);
    }
    pthread_mutex_unlock(&cl->lock);
    return r == 0 ? bfs_buf_add(b, "]", 1) : r;
}

/* ,"unprotected":["NAME",...]: mappings whose server ignores conditions. */
static int unprotected_json(struct bfs_fs *fs, struct bfs_buf *b)
{
    size_t listed = 0;
    int r = bfs_buf_adds(b, ",\"unprotected\":[");

    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < fs->nmaps && r == 0; i++) {
        if (atomic_load(&fs->maps[i]->conditions) != COND_IGNORED ||
            fs->maps[i]->conflicts != BFS_CONFLICTS_KEEP_BOTH)
            continue;
        r = bfs_buf_adds(b, listed++ ? "," : "");
        if (r == 0)
            r = fs_json_str(b, fs->maps[i]->name);
    }
    pthread_mutex_unlock(&fs->lock);
    return r == 0 ? bfs_buf_add(b, "]", 1) : r;
}

static int uploads(struct bfs_fs *fs, uint64_t ino, struct bfs_buf *b, int take)
{
    struct report rp = {.fs = fs, .now_ns = bfs_now_ns()};
    int r = scope_of(fs, ino, &rp.sc);

    if (r == 0)
        r = bfs_store_uploads(fs->store, add_row, &rp);
    if (r == 0)
        r = add_open_files(&rp);
    if (r == 0)
        r = uploads_json(&rp, b);
    if (r == 0) { /* reopen the object: the totals' braces close last */
        b->len--;
        r = conflicts_json(&rp, b, take);
    }
    if (r == 0)
        r = unprotected_json(fs, b);
    if (r == 0)
        r = bfs_buf_add(b, "}", 1);
    report_done(&rp);
    return r;
}

int fs_not_uploaded(struct bfs_fs *fs, uint64_t ino)
{
    struct wfile *w = fs_wfile_find(fs, ino);
    struct bfs_node n;
    int pending = 0;

    if (w) {
        pthread_mutex_lock(&w->lock);
        pending = w->dirty || w->uploading || w->queued || w->done_gen < w->gen;
        pthread_mutex_unlock(&w->lock);
        fs_wfile_put(fs, w);
    }
    if (!pending && bfs_store_node_get(fs->store, ino, &n) == 0)
        pending = n.local || !n.etag[0];
    return pending;
}

static int presign(struct bfs_fs *fs, uint64_t ino, const char *secs, struct bfs_buf *b)
{
    struct mapping *m;
    char *key = NULL, *url = NULL;
    int64_t expires;
    int kind = 0, r;

    if (bfs_parse_int(secs, 1, BFS_S3_PRESIGN_MAX, &expires) < 0)
        return -EINVAL;
    if (ino == BFS_ROOT_INO)
        return -EISDIR;
    r = fs_inode_target(fs, ino, &m, &key, &kind);
    if (r < 0)
        return r;
    if (kind == BFS_KIND_DIR)
        r = -EISDIR;
    else if (fs_not_uploaded(fs, ino))
        r = -EAGAIN;
    else /* -ENOKEY when anonymous, -ENOTSUP with SSE-C */
        r = bfs_s3_presign_get(m->client, m->bucket, key, expires, time(NULL), &url);
    if (r == 0)
        r = bfs_buf_adds(b, url);
    free(url);
    free(key);
    return r;
}

int fs_report_xattr(struct bfs_fs *fs, uint64_t ino, const char *what, struct bfs_buf *b)
{
    if (strcmp(what, "uploads") == 0)
        return uploads(fs, ino, b, 0);
    if (strcmp(what, "sync") == 0) { /* someone waits: upload_delay is moot */
        fs_upload_expedite(fs);
        return uploads(fs, ino, b, 1);
    }
    if (strncmp(what, "presign.", 8) == 0)
        return presign(fs, ino, what + 8, b);
    if (strncmp(what, "versions/", 9) == 0 || strncmp(what, "restore/", 8) == 0)
        return fs_versions_xattr(fs, ino, what, b);
    return -ENODATA;
}
