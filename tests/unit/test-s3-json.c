/* SPDX-License-Identifier: MIT */
/*
 * test-s3-json.c: the flat JSON reader of the credential services (ECS,
 * EC2 instance metadata): their real reply shapes parse to the right
 * strings, and malformed, nested, truncated or oversized replies are
 * refused with an error (never a crash, never half a result).
 */
#include <errno.h>
#include <stdlib.h>

#include "src/s3/s3-int.h"
#include "test.h"

static int parse(const char *s, struct s3_json *j)
{
    return s3_json_parse(s, strlen(s), j);
}

static void imds_reply(void)
{
    const char *s = "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2024-05-01T10:00:00Z\",\n"
                    "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAEXAMPLE\",\n"
                    "  \"SecretAccessKey\" : \"wJalr/XUtnFEMI+K7MDENG\",\n"
                    "  \"Token\" : \"IQoJb3JpZ2luX2VjE==\",\n"
                    "  \"Expiration\" : \"2024-05-01T16:00:00Z\"\n}\n";
    struct s3_json j;

    CHECK(parse(s, &j) == 0);
    CHECK(j.n == 7);
    CHECK_STR(s3_json_str(&j, "Code"), "Success");
    CHECK_STR(s3_json_str(&j, "AccessKeyId"), "ASIAEXAMPLE");
    CHECK_STR(s3_json_str(&j, "SecretAccessKey"), "wJalr/XUtnFEMI+K7MDENG");
    CHECK_STR(s3_json_str(&j, "Token"), "IQoJb3JpZ2luX2VjE==");
    CHECK_STR(s3_json_str(&j, "Expiration"), "2024-05-01T16:00:00Z");
    CHECK(s3_json_str(&j, "Missing") == NULL);
    CHECK(s3_json_str(&j, "accesskeyid") == NULL); /* names are case-sensitive */
    s3_json_done(&j);
    CHECK(j.n == 0);
}

static void ecs_reply(void)
{
    const char *s = "{\"RoleArn\":\"arn:aws:iam::123456789012:role\\/app\",\"AccessKeyId\":"
                    "\"AKID\",\"SecretAccessKey\":\"SK\",\"Token\":\"T\",\"Expiration\":"
                    "\"2017-12-29T19:26:16Z\"}";
    struct s3_json j;

    CHECK(parse(s, &j) == 0);
    CHECK_STR(s3_json_str(&j, "RoleArn"), "arn:aws:iam::123456789012:role/app");
    CHECK_STR(s3_json_str(&j, "Token"), "T");
    s3_json_done(&j);
}

static void values_and_escapes(void)
{
    const char *s = "{\"a\":\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\","
                    "\"u\":\"\\u00e9\\u20ac\\ud83d\\ude00\","
                    "\"raw\":\"caf\xc3\xa9\",\"n\":-12.5e+3,\"z\":0,\"t\":true,\"f\":false,"
                    "\"nil\":null,\"e\":\"\"}";
    struct s3_json j;

    CHECK(parse(s, &j) == 0);
    CHECK_STR(s3_json_str(&j, "a"), "q\"b\\s/\b\f\n\r\t");
    CHECK_STR(s3_json_str(&j, "u"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_STR(s3_json_str(&j, "raw"), "caf\xc3\xa9");
    CHECK_STR(s3_json_str(&j, "e"), "");
    /* not strings: no string value, but the text is kept */
    CHECK(s3_json_str(&j, "n") == NULL && s3_json_str(&j, "t") == NULL);
    CHECK(s3_json_str(&j, "nil") == NULL);
    CHECK(j.n == 9 && !j.is_string[3] && strcmp(j.values[3], "-12.5e+3") == 0);
    CHECK(strcmp(j.values[4], "0") == 0 && strcmp(j.values[6], "false") == 0);
    s3_json_done(&j);

    CHECK(parse(" {} ", &j) == 0 && j.n == 0);
    s3_json_done(&j);
}

static void malformed(void)
{
    static const char *bad[] = {
        "", " ", "[]", "\"x\"", "null", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\" \"b\"}",
        "{\"a\":\"b\",}", "{,}", "{\"a\":\"b\"", "{\"a\":\"b\"} x", "{\"a\":\"b\"}{}",
        "{a:\"b\"}", "{'a':'b'}", "{\"a\":\"b\" \"c\":\"d\"}",
        /* nested values are not what these services send */
        "{\"a\":{}}", "{\"a\":[1]}", "{\"a\":[]}",
        /* numbers and literals */
        "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":+1}",
        "{\"a\":tru}", "{\"a\":True}", "{\"a\":nul}", "{\"a\":NaN}",
        /* strings */
        "{\"a\":\"b}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}", "{\"a\":\"\\ud83d\\u0041\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\\",
        /* the same name twice */
        "{\"Token\":\"a\",\"Token\":\"b\"}",
    };
    struct s3_json j = {0};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(bad[i], &j);

        if (r != -EPROTO)
            fprintf(stderr, "accepted or wrong error (%d) for case %zu: %s\n", r, i, bad[i]);
        CHECK(r == -EPROTO);
        CHECK(j.n == 0); /* ret untouched on failure */
    }
    CHECK(s3_json_parse(NULL, 0, &j) == -EPROTO);
    /* an embedded NUL byte ends nothing early: it is garbage after the object */
    CHECK(s3_json_parse("{}\0{}", 5, &j) == -EPROTO);
}

static void limits(void)
{
    struct bfs_buf b;
    struct s3_json j;

    bfs_buf_init(&b, 2 * S3_JSON_MAX);
    CHECK(bfs_buf_adds(&b, "{") == 0);
    for (int i = 0; i < S3_JSON_FIELDS + 1; i++)
        CHECK(bfs_buf_addf(&b, "%s\"k%d\":%d", i ? "," : "", i, i) == 0);
    CHECK(bfs_buf_adds(&b, "}") == 0);
    CHECK(s3_json_parse(b.data, b.len, &j) == -E2BIG);
    bfs_buf_reset(&b);
    CHECK(bfs_buf_adds(&b, "{\"a\":\"") == 0);
    while (b.len < S3_JSON_MAX + 10)
        CHECK(bfs_buf_adds(&b, "xxxxxxxxxxxxxxxx") == 0);
    CHECK(bfs_buf_adds(&b, "\"}") == 0);
    CHECK(s3_json_parse(b.data, b.len, &j) == -E2BIG);
    bfs_buf_done(&b);
}

/* Every prefix of a good reply is refused, and none reads past its end
 * (ASan watches the copies made here). */
static void truncations(void)
{
    const char *s = "{\"AccessKeyId\":\"AK\\u00e9\",\"n\":-1.5e3,\"t\":true,\"x\":null}";
    size_t n = strlen(s);
    struct s3_json j;

    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i ? i : 1);

        memcpy(copy, s, i);
        CHECK(s3_json_parse(copy, i, &j) == -EPROTO);
        free(copy);
    }
    CHECK(s3_json_parse(s, n, &j) == 0);
    s3_json_done(&j);
}

int main(void)
{
    imds_reply();
    ecs_reply();
    values_and_escapes();
    malformed();
    limits();
    truncations();
    TEST_DONE();
}
