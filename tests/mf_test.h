/* mf_test.h: the one assertion helper of the ctest programs. EXPECT(cond, fmt, ...) counts the
 * check, and prints the line and a message when cond is false and counts the failure.
 * mf_test_exit(name) prints both counts and returns the exit status: 1 on a failure, and 1 when
 * no check ran at all (a test that asserts nothing is a defect, not a pass). */
#ifndef MF_TEST_H
#define MF_TEST_H

#include <stdio.h>

static int failures = 0;
static long expect_checks = 0;

#define EXPECT(cond, ...)                       \
    do {                                        \
        expect_checks++;                        \
        if (!(cond)) {                          \
            printf("FAIL line %d: ", __LINE__); \
            printf(__VA_ARGS__);                \
            printf("\n");                       \
            failures++;                         \
        }                                       \
    } while (0)

static inline int mf_test_exit(const char *name) {
    printf("%s: %ld checks, %d failures\n", name, expect_checks, failures);
    if (expect_checks == 0) printf("FAIL: no check ran\n");
    return failures || expect_checks == 0 ? 1 : 0;
}

#endif /* MF_TEST_H */
