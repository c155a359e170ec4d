/* SPDX-License-Identifier: MIT */
/*
 * json.c: the strict JSON reader of include/bucketfs/json.h, one for the
 * whole program: the subcommands read the daemon's answers with it, the S3
 * client the credential services' replies (src/s3/json.c narrows it to one
 * flat object of secrets).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/json.h"
#include "bucketfs/util.h"

struct parser {
    const char *p, *end;
    int flags, depth, max_depth;
};

static int value(struct parser *ps, struct bfs_json **ret);

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *p, unsigned *ret)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *ret = v;
    return 0;
}

static int put_utf8(struct bfs_buf *b, unsigned cp)
{
    unsigned char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (unsigned char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return bfs_buf_add(b, u, n);
}

/* \uXXXX (ps->p after the 'u'), with a surrogate pair as one code point. */
static int unicode_escape(struct parser *ps, struct bfs_buf *b)
{
    unsigned cp, lo;

    if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0)
        return -EINVAL;
    ps->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
            hex4(ps->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
            return -EINVAL;
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
        return -EINVAL; /* a low surrogate alone; \u0000 would cut the string */
    }
    return put_utf8(b, cp);
}

static int escape(struct parser *ps, struct bfs_buf *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *e;

    if (ps->p >= ps->end)
        return -EINVAL;
    if (*ps->p == 'u') {
        ps->p++;
        return unicode_escape(ps, b);
    }
    e = strchr(from, *ps->p);
    if (!e || !*ps->p)
        return -EINVAL;
    ps->p++;
    return bfs_buf_add(b, &to[e - from], 1);
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t n;
    unsigned cp;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* The bytes from ps->p up to a quote, backslash or control character,
 * checked as UTF-8 when asked. */
static int run(struct parser *ps, struct bfs_buf *b)
{
    const char *s = ps->p;

    while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && (unsigned char)*ps->p >= 0x20) {
        size_t n = 1;

        if ((unsigned char)*ps->p >= 0x80 && (ps->flags & BFS_JSON_UTF8) &&
            !(n = utf8_len((const unsigned char *)ps->p, (const unsigned char *)ps->end)))
            return -EINVAL;
        ps->p += n;
    }
    return bfs_buf_add(b, s, (size_t)(ps->p - s));
}

/* A string (ps->p at the opening quote) into a new C string. */
static int string(struct parser *ps, char **ret)
{
    struct bfs_buf b;
    int r = 0;

    bfs_buf_init(&b, (size_t)(ps->end - ps->p) + 1); /* never longer than the input */
    ps->p++;
    while (r == 0) {
        r = run(ps, &b);
        if (r < 0)
            break;
        if (ps->p >= ps->end || (unsigned char)*ps->p < 0x20) {
            r = -EINVAL;
        } else if (*ps->p == '"') {
            ps->p++;
            break;
        } else {
            ps->p++;
            r = escape(ps, &b);
        }
    }
    if (r == 0 && !(*ret = bfs_buf_steal(&b)))
        r = -ENOMEM;
    if (b.data && (ps->flags & BFS_JSON_SECRET))
        explicit_bzero(b.data, b.len);
    bfs_buf_done(&b);
    return r;
}

static size_t digits(struct parser *ps)
{
    const char *s = ps->p;

    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
        ps->p++;
    return (size_t)(ps->p - s);
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? as RFC 8259 has it. */
static int number(struct parser *ps, struct bfs_json *j)
{
    const char *s = ps->p;
    int integer = 1;
    size_t n;

    if (ps->p < ps->end && *ps->p == '-')
        ps->p++, integer = 0;
    n = digits(ps);
    if (n == 0 || (n > 1 && ps->p[-(long)n] == '0'))
        return -EINVAL; /* no digits, or a leading zero */
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++, integer = 0;
        if (digits(ps) == 0)
            return -EINVAL;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++, integer = 0;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (digits(ps) == 0)
            return -EINVAL;
    }
    if (!(j->str = strndup(s, (size_t)(ps->p - s))))
        return -ENOMEM;
    j->type = BFS_JSON_NUMBER;
    j->num = strtod(j->str, NULL);
    if (integer) {
        errno = 0;
        j->u64 = strtoull(j->str, NULL, 10);
        if (errno)
            j->u64 = 0;
    }
    return 0;
}

static int literal(struct parser *ps, struct bfs_json *j)
{
    static const struct {
        const char *word;
        enum bfs_json_type type;
        int b;
    } w[] = {{"true", BFS_JSON_BOOL, 1}, {"false", BFS_JSON_BOOL, 0}, {"null", BFS_JSON_NULL, 0}};

    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(w[i].word);

        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w[i].word, n) == 0) {
            ps->p += n;
            j->type = w[i].type;
            j->boolean = w[i].b;
            j->str = strdup(w[i].word);
            return j->str ? 0 : -ENOMEM;
        }
    }
    return -EINVAL;
}

/* "name": of an object's member (ps->p at the quote), refused when the
 * object has it already and names must be unique. */
static int member_name(struct parser *ps, const struct bfs_json *obj, char **ret)
{
    int r;

    if (ps->p >= ps->end || *ps->p != '"')
        return -EINVAL;
    r = string(ps, ret);
    skip_ws(ps);
    if (r == 0 && (ps->p >= ps->end || *ps->p++ != ':'))
        r = -EINVAL;
    if (r == 0 && (ps->flags & BFS_JSON_UNIQUE) && bfs_json_get(obj, *ret))
        r = -EINVAL; /* which of the two would be meant? */
    if (r < 0) {
        free(*ret);
        *ret = NULL;
    }
    return r;
}

/* Elements of an array or members of an object (ps->p after the opener). */
static int container(struct parser *ps, struct bfs_json *j, char close)
{
    struct bfs_json **tail = &j->child;
    int r = 0;

    if (++ps->depth > ps->max_depth)
        return -EINVAL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    while (r == 0) {
        char *name = NULL;

        skip_ws(ps);
        if (close == '}')
            r = member_name(ps, j, &name);
        if (r == 0)
            r = value(ps, tail);
        if (r < 0) {
            free(name);
            return r;
        }
        (*tail)->name = name;
        tail = &(*tail)->next;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',')
            ps->p++;
        else if (ps->p < ps->end && *ps->p == close)
            break;
        else
            r = -EINVAL;
    }
    ps->p++;
    ps->depth--;
    return r;
}

static int value(struct parser *ps, struct bfs_json **ret)
{
    struct bfs_json *j = calloc(1, sizeof(*j));

    if (!j)
        return -ENOMEM;
    *ret = j; /* linked at once, so that the caller frees it on any error */
    skip_ws(ps);
    if (ps->p >= ps->end)
        return -EINVAL;
    switch (*ps->p) {
    case '{':
        ps->p++;
        j->type = BFS_JSON_OBJECT;
        return container(ps, j, '}');
    case '[':
        ps->p++;
        j->type = BFS_JSON_ARRAY;
        return container(ps, j, ']');
    case '"':
        j->type = BFS_JSON_STRING;
        return string(ps, &j->str);
    case 't':
    case 'f':
    case 'n':
        return literal(ps, j);
    default:
        return number(ps, j);
    }
}

int bfs_json_parse(const char *text, size_t len, int flags, int max_depth,
                   struct bfs_json **ret)
{
    struct parser ps = {.p = text, .end = text + len, .flags = flags, .max_depth = max_depth};
    struct bfs_json *j = NULL;
    int r = text ? value(&ps, &j) : -EINVAL;

    skip_ws(&ps);
    if (r == 0 && ps.p != ps.end)
        r = -EINVAL; /* trailing garbage */
    if (r < 0) {
        if (flags & BFS_JSON_SECRET)
            bfs_json_free_wiped(j);
        else
            bfs_json_free(j);
        return r;
    }
    *ret = j;
    return 0;
}

static void free_tree(struct bfs_json *j, int wipe)
{
    while (j) {
        struct bfs_json *next = j->next;

        free_tree(j->child, wipe);
        if (wipe && j->str)
            explicit_bzero(j->str, strlen(j->str));
        if (wipe && j->name)
            explicit_bzero(j->name, strlen(j->name));
        free(j->name);
        free(j->str);
        free(j);
        j = next;
    }
}

void bfs_json_free(struct bfs_json *j)
{
    free_tree(j, 0);
}

void bfs_json_free_wiped(struct bfs_json *j)
{
    free_tree(j, 1);
}

const struct bfs_json *bfs_json_get(const struct bfs_json *o, const char *name)
{
    if (!o || o->type != BFS_JSON_OBJECT)
        return NULL;
    for (const struct bfs_json *m = o->child; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

uint64_t bfs_json_u64(const struct bfs_json *o, const char *name)
{
    const struct bfs_json *m = bfs_json_get(o, name);

    return m && m->type == BFS_JSON_NUMBER ? m->u64 : 0;
}

const char *bfs_json_str(const struct bfs_json *o, const char *name)
{
    const struct bfs_json *m = bfs_json_get(o, name);

    return m && m->type == BFS_JSON_STRING ? m->str : "";
}
