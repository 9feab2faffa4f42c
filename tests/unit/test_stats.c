/* core/stats.c: mean/std, percentiles, the bootstrap intervals, on cases checked by hand or
 * by an independent enumeration of every resample. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "stats.h"
#include "test.h"

static void test_mean_std_known_case(void) {
    char err[PK_ERR_LEN];
    double x[] = {2, 4, 4, 4, 5, 5, 7, 9}, m = 0, s = 0;
    CHECK(stats_mean_std(x, 8, &m, &s, err) == PK_OK);
    CHECK_NEAR(m, 5.0, 1e-12);
    CHECK_NEAR(s, sqrt(32.0 / 7.0), 1e-12); /* sum of squares 32, sample divisor 7 */
    double one = 3.5;
    CHECK(stats_mean_std(&one, 1, &m, &s, err) == PK_OK);
    CHECK_NEAR(m, 3.5, 0);
    CHECK_NEAR(s, 0.0, 0);
    CHECK(stats_mean_std(x, 0, &m, &s, err) == PK_FAIL);
}

static void test_quantile_is_numpy_linear(void) {
    /* numpy.percentile(range(1, 102), [2.5, 97.5]) == [3.5, 98.5] */
    double v[101];
    for (int i = 0; i < 101; i++) v[100 - i] = i + 1; /* unsorted on purpose */
    double lo = 0, hi = 0;
    char err[PK_ERR_LEN];
    CHECK(stats_percentile_interval(v, 101, 0.95, &lo, &hi, err) == PK_OK);
    CHECK_NEAR(lo, 3.5, 1e-12);
    CHECK_NEAR(hi, 98.5, 1e-12);
    double s[] = {1, 2, 4};
    CHECK_NEAR(stats_quantile_sorted(s, 3, 0.0), 1, 0);
    CHECK_NEAR(stats_quantile_sorted(s, 3, 0.75), 3, 1e-12);
    CHECK_NEAR(stats_quantile_sorted(s, 3, 1.0), 4, 0);
}

static void test_equal_differences_give_a_zero_width_interval(void) {
    char err[PK_ERR_LEN];
    double a[50], b[50];
    for (int i = 0; i < 50; i++) a[i] = 10 + i, b[i] = 10 + i - 1.25;
    StatsInterval ci;
    CHECK(stats_paired_bootstrap_ci(a, b, 50, 1000, 7, 0.95, &ci, err) == PK_OK);
    CHECK_NEAR(ci.estimate, 1.25, 1e-12);
    CHECK_NEAR(ci.low, 1.25, 1e-12);
    CHECK_NEAR(ci.high, 1.25, 1e-12);
}

/* The documented resampling redone here from pk_rng_below, with a sort and numpy's
 * "linear" quantile written out again: the interval must be identical. */
static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}
static void test_fixed_seed_reference(void) {
    char err[PK_ERR_LEN];
    double x[] = {3.0, -1.0, 4.0, 1.5, -5.0, 9.0, 2.6, -0.5};
    int n = 8, B = 999;
    uint64_t seed = 12345;
    double *means = malloc((size_t)B * sizeof *means);
    PkRng r;
    pk_rng_seed(&r, seed);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += x[pk_rng_below(&r, (uint64_t)n)];
        means[b] = s / n;
    }
    qsort(means, (size_t)B, sizeof *means, cmp_d);
    /* positions 0.025 * 998 = 24.95 and 0.975 * 998 = 973.05 */
    double lo = means[24] + 0.95 * (means[25] - means[24]);
    double hi = means[973] + 0.05 * (means[974] - means[973]);
    StatsInterval ci;
    CHECK(stats_bootstrap_mean_ci(x, n, B, seed, 0.95, &ci, err) == PK_OK);
    CHECK_NEAR(ci.estimate, 13.6 / 8, 1e-12);
    CHECK_NEAR(ci.low, lo, 1e-12);
    CHECK_NEAR(ci.high, hi, 1e-12);
    free(means);
}

/* Against the exact bootstrap distribution: with n = 5 items every one of the 5^5 resamples
 * is equally likely, so enumerating them gives the distribution the random resamples
 * estimate. The bootstrap's low end must sit at the exact 2.5% point: at most ~2.5% of the
 * exact distribution below it, at least ~2.5% at or below it (1% slack for B = 20000). */
static void test_against_exhaustive_enumeration(void) {
    char err[PK_ERR_LEN];
    double x[] = {0.0, 1.0, 2.0, 3.5, 10.0};
    enum { N = 5, ALL = 5 * 5 * 5 * 5 * 5 };
    static double exact[ALL];
    for (int c = 0; c < ALL; c++) {
        double s = 0;
        for (int i = 0, k = c; i < N; i++, k /= N) s += x[k % N];
        exact[c] = s / N;
    }
    StatsInterval ci;
    CHECK(stats_bootstrap_mean_ci(x, N, 20000, 99, 0.95, &ci, err) == PK_OK);
    int below_lo = 0, upto_lo = 0, above_hi = 0, from_hi = 0;
    for (int c = 0; c < ALL; c++) {
        below_lo += exact[c] < ci.low - 1e-12;
        upto_lo += exact[c] <= ci.low + 1e-12;
        above_hi += exact[c] > ci.high + 1e-12;
        from_hi += exact[c] >= ci.high - 1e-12;
    }
    CHECK_MSG(below_lo <= 0.035 * ALL && upto_lo >= 0.015 * ALL, "low %g: %d below, %d at or below of %d", ci.low,
              below_lo, upto_lo, ALL);
    CHECK_MSG(above_hi <= 0.035 * ALL && from_hi >= 0.015 * ALL, "high %g: %d above, %d at or above of %d", ci.high,
              above_hi, from_hi, ALL);
    /* and the exhaustive percentile interval itself is close */
    double lo = 0, hi = 0;
    CHECK(stats_percentile_interval(exact, ALL, 0.95, &lo, &hi, err) == PK_OK);
    CHECK_NEAR(ci.low, lo, 0.41);  /* one step of the resample means is 0.2 here */
    CHECK_NEAR(ci.high, hi, 0.41);
}

static void test_symmetric_data_contains_zero(void) {
    char err[PK_ERR_LEN];
    double d[40];
    for (int i = 0; i < 20; i++) d[i] = i + 0.5, d[20 + i] = -(i + 0.5);
    StatsInterval ci;
    CHECK(stats_bootstrap_mean_ci(d, 40, 10000, 3, 0.95, &ci, err) == PK_OK);
    CHECK_NEAR(ci.estimate, 0.0, 1e-12);
    CHECK(ci.low < 0 && ci.high > 0);
    CHECK(ci.low > -5 && ci.high < 5); /* sd 11.5 / sqrt(40) = 1.8, so about +-3.6 */
}

static void test_deterministic_by_seed(void) {
    char err[PK_ERR_LEN];
    double a[30], b[30];
    for (int i = 0; i < 30; i++) a[i] = sin(i * 1.7) * 10, b[i] = cos(i * 0.3) * 5;
    StatsInterval c1, c2, c3;
    CHECK(stats_paired_bootstrap_ci(a, b, 30, 2000, 42, 0.95, &c1, err) == PK_OK);
    CHECK(stats_paired_bootstrap_ci(a, b, 30, 2000, 42, 0.95, &c2, err) == PK_OK);
    CHECK(stats_paired_bootstrap_ci(a, b, 30, 2000, 43, 0.95, &c3, err) == PK_OK);
    CHECK(c1.low == c2.low && c1.high == c2.high && c1.estimate == c2.estimate);
    CHECK(c1.low != c3.low || c1.high != c3.high);
    CHECK(c1.low <= c1.estimate && c1.estimate <= c1.high);
}

static void test_exaccerr_ratio_and_interval(void) {
    char err[PK_ERR_LEN];
    /* student errors twice the oracle's on every prompt: exactly 100% on every resample */
    double s[6] = {2, 4, 6, 8, 10, 12}, o[6] = {1, 2, 3, 4, 5, 6};
    CHECK_NEAR(stats_exaccerr(s, o, 6), 100.0, 1e-12);
    StatsInterval ci;
    CHECK(stats_exaccerr_bootstrap_ci(s, o, 6, 500, 1, 0.95, &ci, err) == PK_OK);
    CHECK_NEAR(ci.low, 100.0, 1e-9);
    CHECK_NEAR(ci.high, 100.0, 1e-9);
    /* ratio of means, not mean of ratios: (3 + 1) / (1 + 3) - 1 = 0 */
    double s2[2] = {3, 1}, o2[2] = {1, 3};
    CHECK_NEAR(stats_exaccerr(s2, o2, 2), 0.0, 1e-12);
    CHECK(stats_exaccerr_bootstrap_ci(s2, o2, 2, 1000, 1, 0.95, &ci, err) == PK_OK);
    CHECK(ci.low < 0 && ci.high > 0);
    double z[2] = {0, 0};
    CHECK(stats_exaccerr_bootstrap_ci(s2, z, 2, 10, 1, 0.95, &ci, err) == PK_FAIL);
    CHECK(strstr(err, "oracle") != NULL);
}

static void test_bad_arguments(void) {
    char err[PK_ERR_LEN];
    double x[2] = {1, 2};
    StatsInterval ci;
    CHECK(stats_bootstrap_mean_ci(x, 0, 10, 1, 0.95, &ci, err) == PK_FAIL);
    CHECK(stats_bootstrap_mean_ci(x, 2, 0, 1, 0.95, &ci, err) == PK_FAIL);
    CHECK(stats_bootstrap_mean_ci(x, 2, 10, 1, 1.0, &ci, err) == PK_FAIL);
    CHECK(strstr(err, "level") != NULL);
}

int main(void) {
    RUN(test_mean_std_known_case);
    RUN(test_quantile_is_numpy_linear);
    RUN(test_equal_differences_give_a_zero_width_interval);
    RUN(test_fixed_seed_reference);
    RUN(test_against_exhaustive_enumeration);
    RUN(test_symmetric_data_contains_zero);
    RUN(test_deterministic_by_seed);
    RUN(test_exaccerr_ratio_and_interval);
    RUN(test_bad_arguments);
    TEST_EXIT();
}
