/* SPDX-License-Identifier: MIT */
/*
 * buf.c: the growable byte buffer every string in bucketfs is built in.
 *
 * A buffer has a cap set by its user (see the BFS_BUF_CAP_* sizes); growing
 * past it, or running out of memory, frees the contents and returns an error,
 * so callers never keep working on a truncated string.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"

void bfs_buf_init(struct bfs_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->size = 0;
    b->cap = cap;
}

void bfs_buf_done(struct bfs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->size = 0;
}

void bfs_buf_reset(struct bfs_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the NUL. */
static int grow(struct bfs_buf *b, size_t n)
{
    size_t need, nsize;
    char *p;

    if (n > b->cap || b->len > b->cap - n) {
        bfs_buf_done(b);
        return -E2BIG;
    }
    need = b->len + n + 1;
    if (need <= b->size)
        return 0;
    nsize = b->size ? b->size : 64;
    while (nsize < need)
        nsize *= 2;
    if (nsize > b->cap + 1)
        nsize = b->cap + 1;
    p = realloc(b->data, nsize);
    if (!p) {
        bfs_buf_done(b);
        return -ENOMEM;
    }
    b->data = p;
    b->size = nsize;
    return 0;
}

int bfs_buf_add(struct bfs_buf *b, const void *p, size_t n)
{
    int r = grow(b, n);

    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int bfs_buf_adds(struct bfs_buf *b, const char *s)
{
    return bfs_buf_add(b, s, strlen(s));
}

int bfs_buf_vaddf(struct bfs_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, r;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    r = grow(b, (size_t)n);
    if (r < 0)
        return r;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int bfs_buf_addf(struct bfs_buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = bfs_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return r;
}

char *bfs_buf_steal(struct bfs_buf *b)
{
    char *p = b->data;

    if (!p)
        return strdup("");
    b->data = NULL;
    b->len = 0;
    b->size = 0;
    return p;
}

const char *bfs_buf_str(const struct bfs_buf *b)
{
    return b->data ? b->data : "";
}
