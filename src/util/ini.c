/* SPDX-License-Identifier: MIT */
/*
 * ini.c: a small INI reader for bucketfs.conf and the ~/.aws files.
 *
 * Grammar: "[section]" headers, "key = value" (or "key: value") lines,
 * comments starting with ';' or '#' at the beginning of a line or after
 * white space in a value. Errors name the file and line so a user can find
 * the bad line; what a key means is the caller's business.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"

#define INI_MAX_FILE (4u * 1024 * 1024)
#define INI_MAX_SECTION 256

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Cuts an inline comment: ';' or '#' preceded by white space. */
static void cut_comment(char *v)
{
    for (char *p = v; *p; p++) {
        if ((*p == ';' || *p == '#') && p > v && isspace((unsigned char)p[-1])) {
            *p = '\0';
            return;
        }
    }
}

static int parse_line(char *line, int lineno, char *section, const char *name, bfs_ini_fn fn,
                      void *ctx, char *err, size_t errlen)
{
    char *s = trim(line), *eq, *key, *val;

    if (*s == '\0' || *s == ';' || *s == '#')
        return 0;
    if (*s == '[') {
        char *end = strchr(s, ']');

        if (!end || *trim(end + 1) != '\0') {
            snprintf(err, errlen, "%s:%d: malformed section header", name, lineno);
            return -EINVAL;
        }
        *end = '\0';
        s = trim(s + 1);
        if (*s == '\0' || strlen(s) >= INI_MAX_SECTION) {
            snprintf(err, errlen, "%s:%d: bad section name", name, lineno);
            return -EINVAL;
        }
        memcpy(section, s, strlen(s) + 1);
        return fn(ctx, section, NULL, NULL, lineno);
    }
    eq = strpbrk(s, "=:");
    if (!eq) {
        snprintf(err, errlen, "%s:%d: expected 'key = value'", name, lineno);
        return -EINVAL;
    }
    *eq = '\0';
    key = trim(s);
    val = eq + 1;
    cut_comment(val);
    val = trim(val);
    if (*key == '\0') {
        snprintf(err, errlen, "%s:%d: empty key", name, lineno);
        return -EINVAL;
    }
    return fn(ctx, section, key, val, lineno);
}

int bfs_ini_parse_string(const char *text, const char *name, bfs_ini_fn fn, void *ctx,
                         char *err, size_t errlen)
{
    char section[INI_MAX_SECTION] = "";
    char *copy = strdup(text), *line, *next;
    int lineno = 0, r = 0;

    if (!copy)
        return -ENOMEM;
    for (line = copy; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if (lineno == 1 && (unsigned char)line[0] == 0xef && (unsigned char)line[1] == 0xbb &&
            (unsigned char)line[2] == 0xbf)
            line += 3; /* UTF-8 byte order mark */
        r = parse_line(line, lineno, section, name, fn, ctx, err, errlen);
        if (r)
            break;
    }
    free(copy);
    return r;
}

int bfs_ini_parse_file(const char *path, bfs_ini_fn fn, void *ctx, char *err, size_t errlen)
{
    struct bfs_buf b;
    char chunk[8192];
    size_t n;
    FILE *f = fopen(path, "re");
    int r = 0, saved;

    if (!f) {
        saved = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        return -saved;
    }
    bfs_buf_init(&b, INI_MAX_FILE);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        r = bfs_buf_add(&b, chunk, n);
        if (r < 0) {
            snprintf(err, errlen, "%s: file too large", path);
            goto out;
        }
    }
    if (ferror(f)) {
        r = -EIO;
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    if (memchr(bfs_buf_str(&b), '\0', b.len)) {
        r = -EINVAL;
        snprintf(err, errlen, "%s: binary data in an INI file", path);
        goto out;
    }
    r = bfs_ini_parse_string(bfs_buf_str(&b), path, fn, ctx, err, errlen);
out:
    bfs_buf_done(&b);
    fclose(f);
    return r;
}
