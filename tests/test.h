/* A tiny test harness: each tests/unit/test_*.c is one program whose main()
 * calls RUN(fn) for each test; every test prints one "PASS name" or "FAIL name"
 * line, which tests/run.sh counts. Tests run from the repository root. */
#ifndef PK_TEST_H
#define PK_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int pk_test_failures_in_current;
static int pk_test_total_failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            printf("    check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
            pk_test_failures_in_current++;                                              \
        }                                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            printf("    check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            printf(__VA_ARGS__);                                                        \
            printf("\n");                                                               \
            pk_test_failures_in_current++;                                              \
        }                                                                               \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                           \
    do {                                                                                \
        double pk_a_ = (double)(a), pk_b_ = (double)(b);                                \
        if (!(fabs(pk_a_ - pk_b_) <= (tol))) {                                          \
            printf("    check failed at %s:%d: %s = %.9g vs %s = %.9g (tol %g)\n",       \
                   __FILE__, __LINE__, #a, pk_a_, #b, pk_b_, (double)(tol));            \
            pk_test_failures_in_current++;                                              \
        }                                                                               \
    } while (0)

#define RUN(fn)                                                                         \
    do {                                                                                \
        pk_test_failures_in_current = 0;                                                \
        fflush(stdout);                                                                 \
        fn();                                                                           \
        printf("%s %s\n", pk_test_failures_in_current ? "FAIL" : "PASS", #fn);         \
        if (pk_test_failures_in_current) pk_test_total_failed++;                        \
        fflush(stdout);                                                                 \
    } while (0)

#define TEST_EXIT() return pk_test_total_failed ? 1 : 0

#endif
