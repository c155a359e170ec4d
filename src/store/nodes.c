/* SPDX-License-Identifier: MIT */
/*
 * nodes.c: the inode table and directory listings.
 *
 * A listing replaces all children of a directory in one transaction, so a
 * reader sees the old listing or the new one, never half of each.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store-int.h"

static void row_to_node(sqlite3_stmt *st, struct bfs_node *n)
{
    const unsigned char *name = sqlite3_column_text(st, 2);
    const unsigned char *etag = sqlite3_column_text(st, 5);

    memset(n, 0, sizeof(*n));
    n->ino = (uint64_t)sqlite3_column_int64(st, 0);
    n->parent = (uint64_t)sqlite3_column_int64(st, 1);
    snprintf(n->name, sizeof(n->name), "%s", name ? (const char *)name : "");
    n->kind = sqlite3_column_int(st, 3);
    n->size = (uint64_t)sqlite3_column_int64(st, 4);
    snprintf(n->etag, sizeof(n->etag), "%s", etag ? (const char *)etag : "");
    n->mtime_ns = sqlite3_column_int64(st, 6);
    n->mode = (uint32_t)sqlite3_column_int64(st, 7);
    n->uid = (uint32_t)sqlite3_column_int64(st, 8);
    n->gid = (uint32_t)sqlite3_column_int64(st, 9);
    n->meta = sqlite3_column_int(st, 10);
    n->fetched_ns = sqlite3_column_int64(st, 11);
    n->local = sqlite3_column_int(st, 12);
    n->ctime_ns = sqlite3_column_int64(st, 13);
    n->atime_ns = sqlite3_column_int64(st, 14);
    n->present = sqlite3_column_int(st, 15);
}

/* Steps a one-row query into ret. */
static int one_row(sqlite3_stmt *st, struct bfs_node *ret)
{
    int rc = sqlite3_step(st), r;

    if (rc == SQLITE_ROW) {
        row_to_node(st, ret);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : store_errno(rc);
    }
    sqlite3_reset(st);
    return r;
}

int bfs_store_node_get(struct bfs_store *s, uint64_t ino, struct bfs_node *ret)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_NODE_GET);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    return one_row(st, ret);
}

int bfs_store_node_lookup(struct bfs_store *s, uint64_t parent, const char *name,
                          struct bfs_node *ret)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_NODE_LOOKUP);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)parent);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return one_row(st, ret);
}

static int put(struct store_conn *c, struct bfs_node *n)
{
    sqlite3_stmt *st = store_stmt(c, ST_NODE_PUT);
    int rc, r;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)n->parent);
    sqlite3_bind_text(st, 2, n->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, n->kind);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)n->size);
    sqlite3_bind_text(st, 5, n->etag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, n->mtime_ns);
    sqlite3_bind_int64(st, 7, n->mode);
    sqlite3_bind_int64(st, 8, n->uid);
    sqlite3_bind_int64(st, 9, n->gid);
    sqlite3_bind_int(st, 10, n->meta);
    sqlite3_bind_int64(st, 11, n->fetched_ns);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        /* the row is local (written here): S3's older view does not replace it */
        sqlite3_reset(st);
        st = store_stmt(c, ST_NODE_LOOKUP);
        if (!st)
            return -EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)n->parent);
        sqlite3_bind_text(st, 2, n->name, -1, SQLITE_STATIC);
        return one_row(st, n);
    }
    if (rc == SQLITE_ROW) {
        /* what the row holds now, kept metadata included */
        n->ino = (uint64_t)sqlite3_column_int64(st, 0);
        n->mtime_ns = sqlite3_column_int64(st, 1);
        n->mode = (uint32_t)sqlite3_column_int64(st, 2);
        n->uid = (uint32_t)sqlite3_column_int64(st, 3);
        n->gid = (uint32_t)sqlite3_column_int64(st, 4);
        n->meta = sqlite3_column_int(st, 5);
        n->kind = sqlite3_column_int(st, 6);
        n->ctime_ns = sqlite3_column_int64(st, 7);
        n->atime_ns = sqlite3_column_int64(st, 8);
        n->present = 1;
        r = 0;
    } else {
        r = store_errno(rc) ? store_errno(rc) : -EIO;
    }
    sqlite3_reset(st);
    return r;
}

int bfs_store_node_put(struct bfs_store *s, struct bfs_node *n)
{
    struct store_conn *c = store_conn(s);

    return c ? put(c, n) : -EIO;
}

static void bind_attrs(sqlite3_stmt *st, const struct bfs_node *n, int first)
{
    sqlite3_bind_int(st, first, n->kind);
    sqlite3_bind_int64(st, first + 1, (sqlite3_int64)n->size);
    sqlite3_bind_text(st, first + 2, n->etag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, first + 3, n->mtime_ns);
    sqlite3_bind_int64(st, first + 4, n->mode);
    sqlite3_bind_int64(st, first + 5, n->uid);
    sqlite3_bind_int64(st, first + 6, n->gid);
    sqlite3_bind_int(st, first + 7, n->meta);
    sqlite3_bind_int64(st, first + 8, n->fetched_ns);
    sqlite3_bind_int(st, first + 9, n->local);
    sqlite3_bind_int64(st, first + 10, n->ctime_ns);
    sqlite3_bind_int64(st, first + 11, n->atime_ns);
}

int bfs_store_node_create(struct bfs_store *s, struct bfs_node *n)
{
    struct store_conn *c = store_conn(s);
    sqlite3_stmt *st;
    int rc, r = store_begin(c);

    if (r < 0)
        return r;
    /* the old row of the name is detached (db.c DETACH), for handles still
     * open on it; its inode number is never handed out again
     * (AUTOINCREMENT, db.c) */
    r = store_exec_args(c, ST_NODE_DROP_NAME, "it", (int64_t)n->parent, n->name);
    st = r == 0 ? store_stmt(c, ST_NODE_INSERT) : NULL;
    if (r == 0 && !st)
        r = -EIO;
    if (r == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)n->parent);
        sqlite3_bind_text(st, 2, n->name, -1, SQLITE_STATIC);
        bind_attrs(st, n, 3);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            n->ino = (uint64_t)sqlite3_column_int64(st, 0);
        else
            r = store_errno(rc) ? store_errno(rc) : -EIO;
        sqlite3_reset(st);
    }
    return store_end(c, r);
}

int bfs_store_node_update(struct bfs_store *s, const struct bfs_node *n)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_NODE_UPDATE);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)n->ino);
    bind_attrs(st, n, 2);
    return store_exec(st);
}

int bfs_store_node_move(struct bfs_store *s, uint64_t ino, uint64_t parent, const char *name)
{
    struct store_conn *c = store_conn(s);
    int r = store_begin(c);

    if (r < 0)
        return r;
    r = store_exec_args(c, ST_NODE_DROP_AT, "iti", (int64_t)parent, name, (int64_t)ino);
    if (r == 0)
        r = store_exec_args(c, ST_NODE_MOVE, "iit", (int64_t)ino, (int64_t)parent, name);
    return store_end(c, r);
}

int bfs_store_node_remove(struct bfs_store *s, uint64_t ino)
{
    return store_exec_args(store_conn(s), ST_NODE_REMOVE, "i", (int64_t)ino);
}

int bfs_store_node_gone(struct bfs_store *s, uint64_t parent, const char *name)
{
    return store_exec_args(store_conn(s), ST_NODE_GONE, "it", (int64_t)parent, name);
}

int bfs_store_listing_replace(struct bfs_store *s, uint64_t parent, struct bfs_node *nodes,
                              size_t n, int64_t now_ns)
{
    struct store_conn *c = store_conn(s);
    int r = store_begin(c);

    if (r < 0)
        return r;
    r = store_exec_args(c, ST_CHILDREN_ABSENT, "ii", (int64_t)parent, now_ns);
    for (size_t i = 0; i < n && r == 0; i++) {
        nodes[i].parent = parent;
        nodes[i].fetched_ns = now_ns;
        r = put(c, &nodes[i]);
        if (r == -ENOENT)
            r = 0; /* removed here since the listing began */
    }
    if (r == 0)
        r = store_exec_args(c, ST_LISTING_SET, "ii", (int64_t)parent, now_ns);
    return store_end(c, r);
}

int bfs_store_nodes_learnt(struct bfs_store *s, const struct bfs_node *nodes, size_t n)
{
    struct store_conn *c = store_conn(s);
    int r = c ? store_begin(c) : -EIO;

    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r == 0; i++) {
        const struct bfs_node *x = &nodes[i];
        sqlite3_stmt *st = store_stmt(c, ST_NODE_LEARNT);

        if (!st) {
            r = -EIO;
            break;
        }
        sqlite3_bind_int64(st, 1, (sqlite3_int64)x->ino);
        sqlite3_bind_int(st, 2, x->kind);
        sqlite3_bind_int64(st, 3, x->mtime_ns);
        sqlite3_bind_int64(st, 4, x->mode);
        sqlite3_bind_int64(st, 5, x->uid);
        sqlite3_bind_int64(st, 6, x->gid);
        sqlite3_bind_int(st, 7, x->meta);
        sqlite3_bind_text(st, 8, x->etag, -1, SQLITE_STATIC);
        r = store_exec(st);
    }
    return store_end(c, r);
}

int64_t bfs_store_listing_time(struct bfs_store *s, uint64_t parent)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_LISTING_GET);
    int64_t t = 0;

    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)parent);
    if (sqlite3_step(st) == SQLITE_ROW)
        t = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return t;
}

int bfs_store_listing_invalidate(struct bfs_store *s, uint64_t parent)
{
    return store_exec_args(store_conn(s), ST_LISTING_DEL, "i", (int64_t)parent);
}

int bfs_store_children(struct bfs_store *s, uint64_t parent,
                       int (*fn)(void *ctx, const struct bfs_node *n), void *ctx)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_CHILDREN);
    struct bfs_node n;
    int rc, r = 0;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)parent);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_node(st, &n);
        r = fn(ctx, &n);
        if (r)
            break;
    }
    if (!r && rc != SQLITE_DONE)
        r = store_errno(rc);
    sqlite3_reset(st);
    return r;
}

ssize_t bfs_store_xattr_get(struct bfs_store *s, uint64_t ino, const char *name, void *buf,
                            size_t size)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_XATTR_GET);
    ssize_t r;
    int rc;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r = sqlite3_column_bytes(st, 0);
        if (size && (size_t)r > size)
            r = -ERANGE;
        else if (size && r > 0)
            memcpy(buf, sqlite3_column_blob(st, 0), (size_t)r);
    } else {
        r = rc == SQLITE_DONE ? -ENODATA : store_errno(rc);
    }
    sqlite3_reset(st);
    return r;
}

int bfs_store_xattr_set(struct bfs_store *s, uint64_t ino, const char *name, const void *value,
                        size_t len)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_XATTR_SET);

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, len ? value : "", (int)len, SQLITE_STATIC);
    return store_exec(st);
}

int bfs_store_xattr_remove(struct bfs_store *s, uint64_t ino, const char *name)
{
    return store_exec_args(store_conn(s), ST_XATTR_DEL, "it", (int64_t)ino, name);
}

int bfs_store_xattr_clear(struct bfs_store *s, uint64_t ino)
{
    return store_exec_args(store_conn(s), ST_XATTR_CLEAR, "i", (int64_t)ino);
}

int bfs_store_xattrs(struct bfs_store *s, uint64_t ino,
                     int (*fn)(void *ctx, const char *name, const void *value, size_t len),
                     void *ctx)
{
    sqlite3_stmt *st = store_stmt(store_conn(s), ST_XATTR_LIST);
    int rc, r = 0;

    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_blob(st, 1),
               (size_t)sqlite3_column_bytes(st, 1));
        if (r)
            break;
    }
    sqlite3_reset(st);
    return r;
}
