/* SPDX-License-Identifier: MIT */
/*
 * timeutil.c: clocks, the time formats S3 speaks, and the duration, size
 * and number syntax of the config file and command line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bucketfs/util.h"

int64_t bfs_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bfs_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bfs_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void bfs_sleep_us(int64_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void bfs_time_amz(time_t t, char out[17])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* "+HH:MM" or "-HH:MM" (tools that write credential files use local time)
 * to seconds east of UTC. */
static int utc_offset(const char *p, int64_t *ret)
{
    int sign = *p == '-' ? -1 : 1;

    if ((*p != '+' && *p != '-') || strlen(p) != 6 || !isdigit((unsigned char)p[1]) ||
        !isdigit((unsigned char)p[2]) || p[3] != ':' || !isdigit((unsigned char)p[4]) ||
        !isdigit((unsigned char)p[5]))
        return -EINVAL;
    *ret = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
                   ((p[4] - '0') * 10 + (p[5] - '0')) * 60);
    return 0;
}

int bfs_time_parse_iso8601(const char *s, int64_t *ret_ns)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    int64_t frac = 0, scale = 100000000, off = 0;
    time_t t;

    if (!p)
        return -EINVAL;
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p != 'Z' && *p != '\0' && utc_offset(p, &off) < 0)
        return -EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ret_ns = ((int64_t)t - off) * 1000000000 + frac;
    return 0;
}

int bfs_parse_time_spec(const char *s, int64_t now_ns, int64_t *ret_ns)
{
    int64_t secs;

    if (s[0] == '-') { /* relative: how long before now */
        if (bfs_parse_duration(s + 1, &secs) < 0 || secs > 100LL * 366 * 86400)
            return -EINVAL;
        *ret_ns = now_ns - secs * 1000000000;
        return 0;
    }
    return bfs_time_parse_iso8601(s, ret_ns);
}

int bfs_time_parse_http(const char *s, int64_t *ret_ns)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm);
    time_t t;

    if (!p)
        return -EINVAL;
    while (*p == ' ')
        p++;
    if (*p && strcasecmp(p, "GMT") != 0 && strcasecmp(p, "UTC") != 0)
        return -EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ret_ns = (int64_t)t * 1000000000;
    return 0;
}

/* A number followed by an optional unit from table; scales by the unit. */
static int parse_scaled(const char *s, const char *units, const int64_t *mult, int64_t *ret)
{
    char *end;
    long long v;
    int64_t m = 1;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno)
        return -ERANGE;
    if (*end) {
        const char *u = strchr(units, toupper((unsigned char)*end));

        if (!u || end[1] != '\0')
            return -EINVAL;
        m = mult[u - units];
    }
    if (v > INT64_MAX / m)
        return -ERANGE;
    *ret = v * m;
    return 0;
}

int bfs_parse_duration(const char *s, int64_t *ret_seconds)
{
    static const int64_t mult[] = {1, 60, 3600, 86400};

    return parse_scaled(s, "SMHD", mult, ret_seconds);
}

int bfs_parse_duration_ms(const char *s, int64_t *ret_ms)
{
    size_t n = s ? strlen(s) : 0;
    int64_t v;
    int r;

    if (n > 2 && strcasecmp(s + n - 2, "ms") == 0) {
        char num[32];

        if (n - 2 >= sizeof(num))
            return -ERANGE;
        memcpy(num, s, n - 2);
        num[n - 2] = '\0';
        return parse_scaled(num, "", NULL, ret_ms);
    }
    r = bfs_parse_duration(s, &v);
    if (r == 0 && v > INT64_MAX / 1000)
        r = -ERANGE;
    if (r == 0)
        *ret_ms = v * 1000;
    return r;
}

int bfs_parse_size(const char *s, uint64_t *ret_bytes)
{
    static const int64_t mult[] = {1, 1024, 1024 * 1024, 1024LL * 1024 * 1024,
                                   1024LL * 1024 * 1024 * 1024};
    int64_t v;
    int r = parse_scaled(s, "BKMGT", mult, &v);

    if (r == 0)
        *ret_bytes = (uint64_t)v;
    return r;
}

int bfs_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
    char *end;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end)
        return -EINVAL;
    if (errno || v < min || v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

int bfs_parse_bool(const char *s, int *ret)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *ret = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *ret = 0;
            return 0;
        }
    }
    return -EINVAL;
}
