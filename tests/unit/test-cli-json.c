/* SPDX-License-Identifier: MIT */
/*
 * test-cli-json.c: the JSON reader (src/util/json.c) as the subcommands
 * use it: what the daemon writes parses to the right values, and malformed
 * input is refused (never half-read).
 */
#include <errno.h>
#include <stdlib.h>

#include "src/cli/cli-int.h"
#include "test.h"

static struct bfs_json *parse(const char *s)
{
    struct bfs_json *j = NULL;

    return bfs_json_parse(s, strlen(s), 0, CLI_JSON_DEPTH, &j) == 0 ? j : NULL;
}

static void daemon_answer(void)
{
    const char *s = "{\"pending\":2,\"pending_bytes\":40000006,\"big\":18446744073709551615,"
                    "\"items\":[{\"path\":\"t/a \\\"q\\\" \\\\ \\u00e9\\ud83d\\ude00\\n\","
                    "\"state\":\"uploading\",\"size\":6},{\"path\":\"t/b\",\"ok\":true,"
                    "\"no\":false,\"nil\":null}],\"f\":-1.5e3,\"e\":{}, \"a\" : [ ] }";
    struct bfs_json *j = parse(s);
    const struct bfs_json *items, *first;

    CHECK(j != NULL);
    CHECK(bfs_json_u64(j, "pending") == 2);
    CHECK(bfs_json_u64(j, "pending_bytes") == 40000006);
    CHECK(bfs_json_u64(j, "big") == UINT64_MAX);
    CHECK(bfs_json_u64(j, "missing") == 0);
    CHECK(bfs_json_get(j, "f") && bfs_json_get(j, "f")->num == -1500.0);
    CHECK(bfs_json_u64(j, "f") == 0); /* not a non-negative integer */
    items = bfs_json_get(j, "items");
    CHECK(items && items->type == BFS_JSON_ARRAY);
    first = items ? items->child : NULL;
    CHECK_STR(bfs_json_str(first, "path"), "t/a \"q\" \\ \xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK_STR(bfs_json_str(first, "state"), "uploading");
    CHECK_STR(bfs_json_str(first, "nope"), "");
    CHECK(first && first->next && bfs_json_get(first->next, "ok")->boolean == 1);
    CHECK(first && first->next && bfs_json_get(first->next, "nil")->type == BFS_JSON_NULL);
    CHECK(first && first->next && !first->next->next);
    CHECK(bfs_json_get(j, "e") && bfs_json_get(j, "e")->type == BFS_JSON_OBJECT);
    CHECK(bfs_json_get(j, "a") && !bfs_json_get(j, "a")->child);
    bfs_json_free(j);
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
    struct bfs_json *j;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = (struct bfs_json *)1;
        CHECK(bfs_json_parse(bad[i], strlen(bad[i]), 0, CLI_JSON_DEPTH, &j) == -EINVAL);
        if (j != (struct bfs_json *)1) /* written on success only */
            fprintf(stderr, "  input %zu: %s\n", i, bad[i]);
        CHECK(j == (struct bfs_json *)1);
    }
    memset(deep, '[', sizeof(deep));
    CHECK(bfs_json_parse(deep, sizeof(deep), 0, CLI_JSON_DEPTH, &j) == -EINVAL);
    /* a NUL inside the given length is not the end of the input */
    CHECK(bfs_json_parse("{}\0{}", 5, 0, CLI_JSON_DEPTH, &j) == -EINVAL);
}

static void depth_limit(void)
{
    char s[2 * CLI_JSON_DEPTH + 1];
    struct bfs_json *j = NULL;

    memset(s, '[', CLI_JSON_DEPTH);
    memset(s + CLI_JSON_DEPTH, ']', CLI_JSON_DEPTH);
    s[2 * CLI_JSON_DEPTH] = '\0';
    CHECK(bfs_json_parse(s, strlen(s), 0, CLI_JSON_DEPTH, &j) == 0);
    bfs_json_free(j);
}

int main(void)
{
    daemon_answer();
    refused();
    depth_limit();
    TEST_DONE();
}
