/* SPDX-License-Identifier: MIT */
/* test.h: the few macros the unit tests share; each failure names its line. */
#ifndef BUCKETFS_TEST_H
#define BUCKETFS_TEST_H

#include <stdio.h>
#include <string.h>

static int test_failures, test_checks;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        test_checks++;                                                                     \
        if (!(cond)) {                                                                     \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                  \
    } while (0)

#define CHECK_STR(got, want)                                                               \
    do {                                                                                   \
        const char *g_ = (got), *w_ = (want);                                              \
        test_checks++;                                                                     \
        if (!g_ || strcmp(g_, w_) != 0) {                                                  \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: got  '%s'\n%*s want '%s'\n", __FILE__, __LINE__,        \
                    g_ ? g_ : "(null)", (int)strlen(__FILE__) + 6, "", w_);                \
        }                                                                                  \
    } while (0)

#define TEST_DONE()                                                                        \
    do {                                                                                   \
        printf("%d passed, %d failed\n", test_checks - test_failures, test_failures);      \
        return test_failures ? 1 : 0;                                                      \
    } while (0)

#endif
