/* SPDX-License-Identifier: MIT */
/*
 * util.h: stand-alone helpers every layer of bucketfs may use.
 *
 * Contract
 * - Nothing here knows of S3, SQLite or FUSE; it depends on libc only.
 * - Functions that can fail return 0 (or a count) on success and a negative
 *   errno on failure; output parameters named ret_* are written on success only.
 * - struct bfs_buf is a growable, always NUL-terminated byte buffer with a
 *   size cap chosen by its user: growing past the cap fails with -E2BIG and
 *   frees the contents, so a buffer in error state is empty, never half-built.
 * - Logging is thread-safe; library layers log at BFS_LOG_DEBUG only and
 *   never pass secrets to it.
 */
#ifndef BUCKETFS_UTIL_H
#define BUCKETFS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- growable buffer (util/buf.c) ---- */

struct bfs_buf {
    char *data;  /* NUL-terminated, NULL while empty */
    size_t len;  /* bytes used, excluding the NUL */
    size_t size; /* bytes allocated */
    size_t cap;  /* largest len allowed */
};

/* Size caps, one per kind of use. */
#define BFS_BUF_CAP_SMALL (64u * 1024)        /* headers, names, error bodies */
#define BFS_BUF_CAP_XML (32u * 1024 * 1024)   /* one S3 XML reply */
#define BFS_BUF_CAP_URL (16u * 1024)          /* one URL or canonical request */

void bfs_buf_init(struct bfs_buf *b, size_t cap);
void bfs_buf_done(struct bfs_buf *b);            /* frees; the buffer stays usable */
void bfs_buf_reset(struct bfs_buf *b);           /* len = 0, keeps the memory */
int bfs_buf_add(struct bfs_buf *b, const void *p, size_t n);
int bfs_buf_adds(struct bfs_buf *b, const char *s);
int bfs_buf_addf(struct bfs_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int bfs_buf_vaddf(struct bfs_buf *b, const char *fmt, va_list ap);
/* Takes the contents out (caller frees with free()); the buffer becomes empty.
 * Returns "" duplicated when empty; NULL only for out of memory. */
char *bfs_buf_steal(struct bfs_buf *b);
const char *bfs_buf_str(const struct bfs_buf *b); /* never NULL */

/* ---- encodings (util/encode.c) ---- */

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void bfs_hex_encode(const unsigned char *p, size_t n, char *out);
/* Decodes 2n hex characters into n bytes; -EINVAL on a bad digit. */
int bfs_hex_decode(const char *hex, size_t n, unsigned char *out);
/* Standard base64 with padding into out (4*ceil(n/3)+1 bytes). */
void bfs_base64_encode(const unsigned char *p, size_t n, char *out);
/* Decodes base64; returns the byte count or -EINVAL; out holds 3*len/4. */
int bfs_base64_decode(const char *s, size_t len, unsigned char *out, size_t outsize);
/* RFC 3986 percent-encoding as S3 SigV4 wants it: every byte outside
 * A-Za-z0-9-._~ becomes %XX (upper case); '/' is kept when keep_slash. */
int bfs_uri_encode(struct bfs_buf *b, const char *s, size_t n, int keep_slash);
/* Decodes %XX (and nothing else); -EINVAL on a malformed escape. Caller frees. */
int bfs_uri_decode(const char *s, char **ret);

/* ---- INI files (util/ini.c) ---- */

/* Called for each "[section]" header (key == NULL) and each "key = value"
 * line. Values are trimmed; a trailing "; comment" or " # comment" is cut.
 * Returning non-zero stops the parse with that value. */
typedef int (*bfs_ini_fn)(void *ctx, const char *section, const char *key,
                          const char *value, int line);

/* Parses a whole file. A syntax error returns -EINVAL with
 * "FILE:LINE: message" in err; a missing file -ENOENT. */
int bfs_ini_parse_file(const char *path, bfs_ini_fn fn, void *ctx, char *err, size_t errlen);
int bfs_ini_parse_string(const char *text, const char *name, bfs_ini_fn fn, void *ctx,
                         char *err, size_t errlen);

/* ---- logging (util/log.c) ---- */

enum bfs_log_level { BFS_LOG_ERROR = 0, BFS_LOG_WARN, BFS_LOG_INFO, BFS_LOG_DEBUG };

void bfs_log_setup(enum bfs_log_level max, int use_syslog);
int bfs_log_enabled(enum bfs_log_level level);
void bfs_log(enum bfs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define bfs_err(...) bfs_log(BFS_LOG_ERROR, __VA_ARGS__)
#define bfs_warn(...) bfs_log(BFS_LOG_WARN, __VA_ARGS__)
#define bfs_info(...) bfs_log(BFS_LOG_INFO, __VA_ARGS__)
#define bfs_debug(...)                                                                     \
    do {                                                                                   \
        if (bfs_log_enabled(BFS_LOG_DEBUG))                                                \
            bfs_log(BFS_LOG_DEBUG, __VA_ARGS__);                                           \
    } while (0)

/* ---- time (util/timeutil.c) ---- */

int64_t bfs_now_ns(void);      /* CLOCK_REALTIME */
int64_t bfs_mono_ms(void);     /* CLOCK_MONOTONIC */
void bfs_sleep_ms(int64_t ms);
void bfs_sleep_us(int64_t us);
/* "20130524T000000Z" (16 chars + NUL) for a UTC time. */
void bfs_time_amz(time_t t, char out[17]);
/* ISO 8601 as S3 writes it ("2009-10-12T17:50:30.000Z"; also "+02:00"
 * offsets) to ns since the epoch. */
int bfs_time_parse_iso8601(const char *s, int64_t *ret_ns);
/* A point in time as a user gives it: ISO 8601 ("2026-11-11T12:00:00Z";
 * UTC without an offset) or a duration before now_ns ("-24h", "-90m"). */
int bfs_parse_time_spec(const char *s, int64_t now_ns, int64_t *ret_ns);
/* RFC 7231 HTTP date ("Wed, 12 Oct 2009 17:50:00 GMT") to ns since the epoch. */
int bfs_time_parse_http(const char *s, int64_t *ret_ns);
/* "90", "90s", "15m", "2h", "7d" to seconds; -EINVAL otherwise. */
int bfs_parse_duration(const char *s, int64_t *ret_seconds);
/* The same, in milliseconds, also taking "NNNms". */
int bfs_parse_duration_ms(const char *s, int64_t *ret_ms);
/* "1048576", "512K", "20M", "2G", "1T" (powers of 1024) to bytes. */
int bfs_parse_size(const char *s, uint64_t *ret_bytes);
/* Strict decimal integer in [min, max]; -EINVAL / -ERANGE otherwise. */
int bfs_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret);
/* "true/false/yes/no/on/off/1/0" to 1/0; -EINVAL otherwise. */
int bfs_parse_bool(const char *s, int *ret);

#endif
