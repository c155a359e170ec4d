/* SPDX-License-Identifier: MIT */
/* test-util.c: buffer caps, encodings, INI parsing, time and size syntax. */
#include <errno.h>
#include <stdlib.h>

#include "bucketfs/util.h"
#include "test.h"

static void buffers(void)
{
    struct bfs_buf b;

    bfs_buf_init(&b, 8);
    CHECK_STR(bfs_buf_str(&b), "");
    CHECK(bfs_buf_adds(&b, "abcd") == 0);
    CHECK(bfs_buf_addf(&b, "%d", 123) == 0);
    CHECK_STR(bfs_buf_str(&b), "abcd123");
    CHECK(bfs_buf_adds(&b, "xy") == -E2BIG); /* past the cap: emptied */
    CHECK(b.len == 0 && b.data == NULL);
    CHECK(bfs_buf_adds(&b, "ok") == 0);
    char *s = bfs_buf_steal(&b);
    CHECK_STR(s, "ok");
    free(s);
    bfs_buf_done(&b);
}

static void encodings(void)
{
    unsigned char raw[5] = {0, 1, 0xfe, 'a', 0x7f}, back[8];
    char hex[11], b64[12];

    bfs_hex_encode(raw, 5, hex);
    CHECK_STR(hex, "0001fe617f");
    CHECK(bfs_hex_decode(hex, 5, back) == 0 && memcmp(back, raw, 5) == 0);
    CHECK(bfs_hex_decode("zz", 1, back) == -EINVAL);
    bfs_base64_encode((const unsigned char *)"hello", 5, b64);
    CHECK_STR(b64, "aGVsbG8=");
    CHECK(bfs_base64_decode(b64, strlen(b64), back, sizeof(back)) == 5);
    CHECK(memcmp(back, "hello", 5) == 0);
    CHECK(bfs_base64_decode("a$", 2, back, sizeof(back)) == -EINVAL);
    char *d = NULL;
    CHECK(bfs_uri_decode("%4", &d) == -EINVAL);
    CHECK(bfs_uri_decode("%zz", &d) == -EINVAL);
}

struct seen {
    char log[512];
};

static int ini_cb(void *ctx, const char *section, const char *key, const char *value,
                  int line)
{
    struct seen *s = ctx;
    size_t n = strlen(s->log);

    snprintf(s->log + n, sizeof(s->log) - n, "%d[%s]%s=%s;", line, section, key ? key : "",
             value ? value : "");
    return key && strcmp(key, "stop") == 0 ? 7 : 0;
}

static void ini(void)
{
    struct seen s = {""};
    char err[256] = "";

    CHECK(bfs_ini_parse_string("; c\n[global]\nregion = us-east-1 ; comment\n\n"
                               "# x\n[raw]\nbucket=a#b\nprefix = raw/ # cut\n",
                               "t.conf", ini_cb, &s, err, sizeof(err)) == 0);
    CHECK_STR(s.log, "2[global]=;3[global]region=us-east-1;6[raw]=;7[raw]bucket=a#b;"
                     "8[raw]prefix=raw/;");
    CHECK(bfs_ini_parse_string("[a]\nnot a pair\n", "t.conf", ini_cb, &s, err,
                               sizeof(err)) == -EINVAL);
    CHECK_STR(err, "t.conf:2: expected 'key = value'");
    CHECK(bfs_ini_parse_string("[a\n", "x.ini", ini_cb, &s, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "x.ini:1: malformed section header");
    CHECK(bfs_ini_parse_string("[a]\nstop=1\nq=2\n", "x", ini_cb, &s, err, sizeof(err)) == 7);
    CHECK(bfs_ini_parse_file("/nonexistent/file.conf", ini_cb, &s, err, sizeof(err)) ==
          -ENOENT);
}

static void times_and_sizes(void)
{
    int64_t ns, v;
    uint64_t sz;
    int b;

    CHECK(bfs_time_parse_iso8601("2009-10-12T17:50:30.250Z", &ns) == 0);
    CHECK(ns == 1255369830250000000LL);
    CHECK(bfs_time_parse_http("Mon, 12 Oct 2009 17:50:30 GMT", &ns) == 0);
    CHECK(ns == 1255369830000000000LL);
    CHECK(bfs_time_parse_iso8601("yesterday", &ns) == -EINVAL);
    /* offsets, as tools that write credential files use them */
    CHECK(bfs_time_parse_iso8601("2009-10-12T19:50:30+02:00", &ns) == 0);
    CHECK(ns == 1255369830000000000LL);
    CHECK(bfs_time_parse_iso8601("2009-10-12T12:20:30-05:30", &ns) == 0);
    CHECK(ns == 1255369830000000000LL);
    CHECK(bfs_time_parse_iso8601("2009-10-12T17:50:30+00:00", &ns) == 0);
    CHECK(ns == 1255369830000000000LL);
    CHECK(bfs_time_parse_iso8601("2009-10-12T17:50:30+0200", &ns) == -EINVAL);
    CHECK(bfs_time_parse_iso8601("2009-10-12T17:50:30+02:00x", &ns) == -EINVAL);
    char amz[17];
    bfs_time_amz(1369353600, amz);
    CHECK_STR(amz, "20130524T000000Z");
    CHECK(bfs_parse_duration("60s", &v) == 0 && v == 60);
    CHECK(bfs_parse_duration("2h", &v) == 0 && v == 7200);
    CHECK(bfs_parse_duration("7d", &v) == 0 && v == 604800);
    CHECK(bfs_parse_duration("90", &v) == 0 && v == 90);
    CHECK(bfs_parse_duration("5x", &v) == -EINVAL);
    CHECK(bfs_parse_duration("-5", &v) == -EINVAL);
    CHECK(bfs_parse_duration_ms("250ms", &v) == 0 && v == 250);
    CHECK(bfs_parse_duration_ms("2s", &v) == 0 && v == 2000);
    CHECK(bfs_parse_duration_ms("0", &v) == 0 && v == 0);
    CHECK(bfs_parse_duration_ms("ms", &v) == -EINVAL);
    CHECK(bfs_parse_duration_ms("1.5ms", &v) == -EINVAL);
    CHECK(bfs_parse_duration_ms("5xms", &v) == -EINVAL);
    CHECK(bfs_parse_size("20G", &sz) == 0 && sz == 20ull << 30);
    CHECK(bfs_parse_size("512k", &sz) == 0 && sz == 512 << 10);
    CHECK(bfs_parse_size("99999999999999T", &sz) == -ERANGE);
    CHECK(bfs_parse_int("12", 0, 10, &v) == -ERANGE);
    CHECK(bfs_parse_int("1x", 0, 10, &v) == -EINVAL);
    CHECK(bfs_parse_bool("Yes", &b) == 0 && b == 1);
    CHECK(bfs_parse_bool("off", &b) == 0 && b == 0);
    CHECK(bfs_parse_bool("maybe", &b) == -EINVAL);
}

int main(void)
{
    buffers();
    encodings();
    ini();
    times_and_sizes();
    TEST_DONE();
}
