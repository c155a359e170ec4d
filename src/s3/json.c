/* SPDX-License-Identifier: MIT */
/*
 * json.c: a strict reader for the flat JSON objects the credential services
 * answer with (ECS container credentials, EC2 instance metadata):
 *
 *     {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "...",
 *      "Expiration": "2024-01-01T00:00:00Z", "Code": "Success"}
 *
 * Only one object whose values are strings, numbers, true, false or null
 * is accepted; nested objects and arrays, duplicate names, trailing
 * garbage, raw control characters, bad escapes, lone surrogates, \u0000
 * and invalid UTF-8 are -EPROTO. The reply comes from the network, so
 * every path is bounded (S3_JSON_MAX bytes, S3_JSON_FIELDS members) and
 * nothing is half-returned. Values are kept as text (numbers as written);
 * s3_json_done wipes them, since they hold secrets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "s3-int.h"

struct jp {
    const char *p, *end;
};

static void skip_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
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
            return -EPROTO;
    }
    *ret = v;
    return 0;
}

static int put_utf8(struct bfs_buf *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return bfs_buf_add(b, u, n);
}

/* \uXXXX, with a following \uXXXX when it is a high surrogate. j->p is
 * just past the 'u'. */
static int unicode_escape(struct jp *j, struct bfs_buf *b)
{
    unsigned cp, lo;

    if (j->end - j->p < 4 || hex4(j->p, &cp) < 0)
        return -EPROTO;
    j->p += 4;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return -EPROTO; /* a low surrogate alone */
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) < 0 ||
            lo < 0xdc00 || lo > 0xdfff)
            return -EPROTO;
        j->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (cp == 0)
        return -EPROTO; /* would cut the C string short */
    return put_utf8(b, cp);
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

static const char *simple_escape(char c)
{
    switch (c) {
    case '"': return "\"";
    case '\\': return "\\";
    case '/': return "/";
    case 'b': return "\b";
    case 'f': return "\f";
    case 'n': return "\n";
    case 'r': return "\r";
    case 't': return "\t";
    default: return NULL;
    }
}

/* A string token; j->p is at the opening quote. Caller frees *ret. */
static int string(struct jp *j, char **ret)
{
    struct bfs_buf b;
    int r = 0;

    bfs_buf_init(&b, S3_JSON_MAX);
    j->p++;
    while (r == 0) {
        unsigned char c;

        if (j->p >= j->end) {
            r = -EPROTO;
            break;
        }
        c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20) {
            r = -EPROTO;
        } else if (c == '\\') {
            const char *s = j->p + 1 < j->end ? simple_escape(j->p[1]) : NULL;

            if (s) {
                r = bfs_buf_add(&b, s, 1);
                j->p += 2;
            } else if (j->p + 1 < j->end && j->p[1] == 'u') {
                j->p += 2;
                r = unicode_escape(j, &b);
            } else {
                r = -EPROTO;
            }
        } else if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);

            r = n ? bfs_buf_add(&b, j->p, n) : -EPROTO;
            j->p += n;
        } else {
            r = bfs_buf_add(&b, j->p, 1);
            j->p++;
        }
    }
    if (r == 0) {
        *ret = bfs_buf_steal(&b);
        r = *ret ? 0 : -ENOMEM;
    }
    if (b.data)
        explicit_bzero(b.data, b.len);
    bfs_buf_done(&b);
    return r;
}

static int digits(struct jp *j)
{
    const char *s = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s ? 0 : -EPROTO;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? as RFC 8259 has it. */
static int number(struct jp *j, char **ret)
{
    const char *s = j->p;

    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (digits(j) < 0)
        return -EPROTO;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (digits(j) < 0)
            return -EPROTO;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (digits(j) < 0)
            return -EPROTO;
    }
    *ret = strndup(s, (size_t)(j->p - s));
    return *ret ? 0 : -ENOMEM;
}

static int literal(struct jp *j, const char *word, char **ret)
{
    size_t n = strlen(word);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return -EPROTO;
    j->p += n;
    *ret = strdup(word);
    return *ret ? 0 : -ENOMEM;
}

static int value(struct jp *j, char **ret, int *ret_is_string)
{
    if (j->p >= j->end)
        return -EPROTO;
    *ret_is_string = *j->p == '"';
    switch (*j->p) {
    case '"': return string(j, ret);
    case 't': return literal(j, "true", ret);
    case 'f': return literal(j, "false", ret);
    case 'n': return literal(j, "null", ret);
    default: return *j->p == '-' || (*j->p >= '0' && *j->p <= '9') ? number(j, ret) : -EPROTO;
    }
}

static int add_field(struct s3_json *o, char *name, char *val, int is_string)
{
    if (o->n == S3_JSON_FIELDS)
        return -E2BIG;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->names[i], name) == 0)
            return -EPROTO; /* which of the two would be meant? */
    o->names[o->n] = name;
    o->values[o->n] = val;
    o->is_string[o->n] = is_string;
    o->n++;
    return 0;
}

static int members(struct jp *j, struct s3_json *o)
{
    int r = 0;

    skip_ws(j);
    if (j->p < j->end && *j->p == '}')
        return 0;
    for (;;) {
        char *name = NULL, *val = NULL;
        int is_string;

        if (j->p >= j->end || *j->p != '"')
            return -EPROTO;
        r = string(j, &name);
        skip_ws(j);
        if (r == 0 && (j->p >= j->end || *j->p++ != ':'))
            r = -EPROTO;
        skip_ws(j);
        if (r == 0)
            r = value(j, &val, &is_string);
        if (r == 0)
            r = add_field(o, name, val, is_string);
        if (r < 0) {
            free(name);
            if (val)
                explicit_bzero(val, strlen(val));
            free(val);
            return r;
        }
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            skip_ws(j);
            continue;
        }
        return 0;
    }
}

int s3_json_parse(const char *text, size_t len, struct s3_json *ret)
{
    struct s3_json o = {0};
    struct jp j = {text, text + len};
    int r;

    if (!text || len == 0)
        return -EPROTO;
    if (len > S3_JSON_MAX)
        return -E2BIG;
    skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '{')
        return -EPROTO;
    r = members(&j, &o);
    if (r == 0 && (j.p >= j.end || *j.p++ != '}'))
        r = -EPROTO;
    skip_ws(&j);
    if (r == 0 && j.p != j.end)
        r = -EPROTO;
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
