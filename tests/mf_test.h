/* mf_test.h: the one assertion helper of the ctest programs. EXPECT(cond, fmt, ...) prints the
 * line and a message when cond is false and counts the failure; a test returns failures != 0. */
#ifndef MF_TEST_H
#define MF_TEST_H

#include <stdio.h>

static int failures = 0;

#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) {                          \
            printf("FAIL line %d: ", __LINE__); \
            printf(__VA_ARGS__);                \
            printf("\n");                       \
            failures++;                         \
        }                                       \
    } while (0)

#endif /* MF_TEST_H */
