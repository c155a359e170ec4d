/* SPDX-License-Identifier: MIT */
/*
 * encode.c: hex, base64 and percent-encoding.
 *
 * The percent-encoding is the one S3's Signature Version 4 wants (encode
 * once, upper-case hex, unreserved set A-Za-z0-9-._~), so the same bytes go
 * into the URL we send and the canonical request we sign.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bucketfs/util.h"

static const char hexlower[] = "0123456789abcdef";
static const char hexupper[] = "0123456789ABCDEF";
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void bfs_hex_encode(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexlower[p[i] >> 4];
        out[2 * i + 1] = hexlower[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int bfs_hex_decode(const char *hex, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo;

        if (hi < 0)
            return -EINVAL;
        lo = hexval(hex[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

void bfs_base64_encode(const unsigned char *p, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int bfs_base64_decode(const char *s, size_t len, unsigned char *out, size_t outsize)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0, i;

    while (len && (s[len - 1] == '=' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    for (i = 0; i < len; i++) {
        int v = b64val(s[i]);

        if (v < 0)
            return -EINVAL;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outsize)
                return -E2BIG;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o > (size_t)INT32_MAX ? -E2BIG : (int)o;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int bfs_uri_encode(struct bfs_buf *b, const char *s, size_t n, int keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[3];
        int r;

        if (unreserved(c) || (keep_slash && c == '/')) {
            r = bfs_buf_add(b, &s[i], 1);
        } else {
            esc[0] = '%';
            esc[1] = hexupper[c >> 4];
            esc[2] = hexupper[c & 15];
            r = bfs_buf_add(b, esc, 3);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int bfs_uri_decode(const char *s, char **ret)
{
    size_t n = strlen(s), o = 0;
    char *out = malloc(n + 1);

    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            /* hexval('\0') < 0, so a short escape at the end stops here */
            if (hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                free(out);
                return -EINVAL;
            }
            out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *ret = out;
    return 0;
}
