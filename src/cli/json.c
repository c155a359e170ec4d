/* SPDX-License-Identifier: MIT */
/*
 * json.c: a small, strict JSON reader (RFC 8259) for the answers of the
 * daemon (user.bucketfs.stats, user.bucketfs.uploads). It builds a tree of
 * struct cli_json nodes; lookups are linear, which suits objects of a few
 * dozen members. Malformed input, nesting beyond CLI_JSON_DEPTH and \u0000
 * (which a C string cannot hold) are refused with -EINVAL.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"
#include "cli-int.h"

#define STRING_CAP (1u << 20) /* one decoded string */

struct parser {
    const char *p, *end;
    int depth;
};

static int value(struct parser *ps, struct cli_json **ret);

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
        return -EINVAL;
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

/* A string (ps->p at the opening quote) into a new C string. */
static int string(struct parser *ps, char **ret)
{
    struct bfs_buf b;
    int r = 0;

    bfs_buf_init(&b, STRING_CAP);
    ps->p++;
    while (r == 0) {
        const char *run = ps->p;

        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && (unsigned char)*ps->p >= 0x20)
            ps->p++;
        r = bfs_buf_add(&b, run, (size_t)(ps->p - run));
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

static int number(struct parser *ps, struct cli_json *j)
{
    const char *s = ps->p;
    char tmp[64];
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
    if ((size_t)(ps->p - s) >= sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, s, (size_t)(ps->p - s));
    tmp[ps->p - s] = '\0';
    j->type = CJ_NUMBER;
    j->num = strtod(tmp, NULL);
    if (integer) {
        errno = 0;
        j->u64 = strtoull(tmp, NULL, 10);
        if (errno)
            j->u64 = 0;
    }
    return 0;
}

static int literal(struct parser *ps, struct cli_json *j)
{
    static const struct {
        const char *word;
        enum cli_json_type type;
        int b;
    } w[] = {{"true", CJ_BOOL, 1}, {"false", CJ_BOOL, 0}, {"null", CJ_NULL, 0}};

    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(w[i].word);

        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w[i].word, n) == 0) {
            ps->p += n;
            j->type = w[i].type;
            j->boolean = w[i].b;
            return 0;
        }
    }
    return -EINVAL;
}

/* Elements of an array or members of an object (ps->p after the opener). */
static int container(struct parser *ps, struct cli_json *j, char close)
{
    struct cli_json **tail = &j->child;
    int r = 0;

    if (++ps->depth > CLI_JSON_DEPTH)
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
        if (close == '}') {
            if (ps->p >= ps->end || *ps->p != '"')
                return -EINVAL;
            r = string(ps, &name);
            skip_ws(ps);
            if (r == 0 && (ps->p >= ps->end || *ps->p++ != ':'))
                r = -EINVAL;
        }
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

static int value(struct parser *ps, struct cli_json **ret)
{
    struct cli_json *j = calloc(1, sizeof(*j));
    int r;

    if (!j)
        return -ENOMEM;
    *ret = j; /* linked at once, so that the caller frees it on any error */
    skip_ws(ps);
    if (ps->p >= ps->end)
        return -EINVAL;
    switch (*ps->p) {
    case '{':
        ps->p++;
        j->type = CJ_OBJECT;
        r = container(ps, j, '}');
        break;
    case '[':
        ps->p++;
        j->type = CJ_ARRAY;
        r = container(ps, j, ']');
        break;
    case '"':
        j->type = CJ_STRING;
        r = string(ps, &j->str);
        break;
    case 't':
    case 'f':
    case 'n':
        r = literal(ps, j);
        break;
    default:
        r = number(ps, j);
    }
    return r;
}

int cli_json_parse(const char *text, size_t len, struct cli_json **ret)
{
    struct parser ps = {.p = text, .end = text + len};
    struct cli_json *j = NULL;
    int r = value(&ps, &j);

    skip_ws(&ps);
    if (r == 0 && ps.p != ps.end)
        r = -EINVAL; /* trailing garbage */
    if (r < 0) {
        cli_json_free(j);
        return r;
    }
    *ret = j;
    return 0;
}

void cli_json_free(struct cli_json *j)
{
    while (j) {
        struct cli_json *next = j->next;

        cli_json_free(j->child);
        free(j->name);
        free(j->str);
        free(j);
        j = next;
    }
}

const struct cli_json *cli_json_get(const struct cli_json *o, const char *name)
{
    if (!o || o->type != CJ_OBJECT)
        return NULL;
    for (const struct cli_json *m = o->child; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

uint64_t cli_json_u64(const struct cli_json *o, const char *name)
{
    const struct cli_json *m = cli_json_get(o, name);

    return m && m->type == CJ_NUMBER ? m->u64 : 0;
}

const char *cli_json_str(const struct cli_json *o, const char *name)
{
    const struct cli_json *m = cli_json_get(o, name);

    return m && m->type == CJ_STRING ? m->str : "";
}
