/* SPDX-License-Identifier: MIT */
/*
 * test-cli-json.c: the JSON reader of the subcommands: what the daemon
 * writes parses to the right values, and malformed input is refused (never
 * half-read).
 */
#include <errno.h>
#include <stdlib.h>

#include "src/cli/cli-int.h"
#include "test.h"

static struct cli_json *parse(const char *s)
{
    struct cli_json *j = NULL;

    return cli_json_parse(s, strlen(s), &j) == 0 ? j : NULL;
}

static void daemon_answer(void)
{
    const char *s = "{\"pending\":2,\"pending_bytes\":40000006,\"big\":18446744073709551615,"
                    "\"items\":[{\"path\":\"t/a \\\"q\\\" \\\\ \\u00e9\\ud83d\\ude00\\n\","
                    "\"state\":\"uploading\",\"size\":6},{\"path\":\"t/b\",\"ok\":true,"
                    "\"no\":false,\"nil\":null}],\"f\":-1.5e3,\"e\":{}, \"a\" : [ ] }";
    struct cli_json *j = parse(s);
    const struct cli_json *items, *first;

    CHECK(j != NULL);
    CHECK(cli_json_u64(j, "pending") == 2);
    CHECK(cli_json_u64(j, "pending_bytes") == 40000006);
    CHECK(cli_json_u64(j, "big") == UINT64_MAX);
    CHECK(cli_json_u64(j, "missing") == 0);
    CHECK(cli_json_get(j, "f") && cli_json_get(j, "f")->num == -1500.0);
    CHECK(cli_json_u64(j, "f") == 0); /* not a non-negative integer */
    items = cli_json_get(j, "items");
    CHECK(items && items->type == CJ_ARRAY);
    first = items ? items->child : NULL;
    CHECK_STR(cli_json_str(first, "path"), "t/a \"q\" \\ \xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK_STR(cli_json_str(first, "state"), "uploading");
    CHECK_STR(cli_json_str(first, "nope"), "");
    CHECK(first && first->next && cli_json_get(first->next, "ok")->boolean == 1);
    CHECK(first && first->next && cli_json_get(first->next, "nil")->type == CJ_NULL);
    CHECK(first && first->next && !first->next->next);
    CHECK(cli_json_get(j, "e") && cli_json_get(j, "e")->type == CJ_OBJECT);
    CHECK(cli_json_get(j, "a") && !cli_json_get(j, "a")->child);
    cli_json_free(j);
}

static void refused(void)
{
    static const char *const bad[] = {
        "",
        "{",
        "}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "{a:1}",
        "\"unterminated",
        "\"bad \\x escape\"",
        "\"\\u12\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"ctl \x01\"",
        "01",
        "1.",
        "-",
        "1e",
        "+1",
        "tru",
        "nul",
        "{} {}",
        "[1] x",
        "{\"a\":1}}",
    };
    char deep[200];
    struct cli_json *j;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = (struct cli_json *)1;
        CHECK(cli_json_parse(bad[i], strlen(bad[i]), &j) == -EINVAL);
        if (j != (struct cli_json *)1) /* written on success only */
            fprintf(stderr, "  input %zu: %s\n", i, bad[i]);
        CHECK(j == (struct cli_json *)1);
    }
    memset(deep, '[', sizeof(deep));
    CHECK(cli_json_parse(deep, sizeof(deep), &j) == -EINVAL);
    /* a NUL inside the given length is not the end of the input */
    CHECK(cli_json_parse("{}\0{}", 5, &j) == -EINVAL);
}

static void depth_limit(void)
{
    char s[2 * CLI_JSON_DEPTH + 1];
    struct cli_json *j = NULL;

    memset(s, '[', CLI_JSON_DEPTH);
    memset(s + CLI_JSON_DEPTH, ']', CLI_JSON_DEPTH);
    s[2 * CLI_JSON_DEPTH] = '\0';
    CHECK(cli_json_parse(s, strlen(s), &j) == 0);
    cli_json_free(j);
}

int main(void)
{
    daemon_answer();
    refused();
    depth_limit();
    TEST_DONE();
}
