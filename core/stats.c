#include "stats.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

int stats_mean_std(const double *x, int n, double *mean, double *std, char *err) {
    if (n < 1) return pk_errf(err, "mean and std need at least one value, got %d", n);
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double m = s / n, q = 0;
    for (int i = 0; i < n; i++) q += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(q / (n - 1)) : 0.0;
    return PK_OK;
}

double stats_quantile_sorted(const double *sorted, int n, double q) {
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    if (lo < 0) lo = 0;
    if (lo >= n - 1) return sorted[n - 1];
    double frac = pos - lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stats_median(double *values, int n) {
    qsort(values, (size_t)n, sizeof *values, cmp_double);
    return stats_quantile_sorted(values, n, 0.5);
}

int stats_percentile_interval(double *values, int n, double level, double *low, double *high, char *err) {
    if (n < 1) return pk_errf(err, "a percentile interval needs at least one value, got %d", n);
    if (!(level > 0 && level < 1)) return pk_errf(err, "interval level must be between 0 and 1, got %g", level);
    for (int i = 0; i < n; i++)
        if (!isfinite(values[i])) return pk_errf(err, "a percentile interval needs finite values (value %d is not)", i);
    qsort(values, (size_t)n, sizeof *values, cmp_double);
    *low = stats_quantile_sorted(values, n, (1 - level) / 2);
    *high = stats_quantile_sorted(values, n, (1 + level) / 2);
    return PK_OK;
}

static int check_bootstrap_args(int n, int B, double level, char *err) {
    if (n < 1) return pk_errf(err, "the bootstrap needs at least one item, got %d", n);
    if (B < 1) return pk_errf(err, "the bootstrap needs at least one resample, got %d", B);
    if (!(level > 0 && level < 1)) return pk_errf(err, "interval level must be between 0 and 1, got %g", level);
    return PK_OK;
}

int stats_bootstrap_mean_ci(const double *x, int n, int B, uint64_t seed, double level, StatsInterval *out,
                            char *err) {
    if (check_bootstrap_args(n, B, level, err) != PK_OK) return PK_FAIL;
    double *means = pk_malloc((size_t)B * sizeof *means, err);
    if (!means) return PK_FAIL;
    double total = 0;
    for (int i = 0; i < n; i++) total += x[i];
    PkRng rng;
    pk_rng_seed(&rng, seed);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += x[pk_rng_below(&rng, (uint64_t)n)];
        means[b] = s / n;
    }
    out->estimate = total / n;
    int rc = stats_percentile_interval(means, B, level, &out->low, &out->high, err);
    free(means);
    return rc;
}

int stats_paired_bootstrap_ci(const double *a, const double *b, int n, int B, uint64_t seed, double level,
                              StatsInterval *out, char *err) {
    if (check_bootstrap_args(n, B, level, err) != PK_OK) return PK_FAIL;
    double *diff = pk_malloc((size_t)n * sizeof *diff, err);
    if (!diff) return PK_FAIL;
    for (int i = 0; i < n; i++) diff[i] = a[i] - b[i];
    int rc = stats_bootstrap_mean_ci(diff, n, B, seed, level, out, err);
    free(diff);
    return rc;
}

double stats_exaccerr(const double *student, const double *oracle, int n) {
    double s = 0, o = 0;
    for (int i = 0; i < n; i++) s += student[i], o += oracle[i];
    if (n < 1 || o == 0) return NAN;
    return (s - o) / o * 100.0; /* the 1/n of both means cancels */
}

int stats_exaccerr_bootstrap_ci(const double *student, const double *oracle, int n, int B, uint64_t seed,
                                double level, StatsInterval *out, char *err) {
    if (check_bootstrap_args(n, B, level, err) != PK_OK) return PK_FAIL;
    out->estimate = stats_exaccerr(student, oracle, n);
    if (!isfinite(out->estimate)) return pk_errf(err, "ExAccErr is undefined: the oracle's own error is 0");
    double *vals = pk_malloc((size_t)B * sizeof *vals, err);
    if (!vals) return PK_FAIL;
    PkRng rng;
    pk_rng_seed(&rng, seed);
    int rc = PK_OK;
    for (int b = 0; b < B && rc == PK_OK; b++) {
        double s = 0, o = 0;
        for (int i = 0; i < n; i++) {
            uint64_t k = pk_rng_below(&rng, (uint64_t)n);
            s += student[k];
            o += oracle[k];
        }
        if (o == 0) rc = pk_errf(err, "ExAccErr bootstrap: a resample of prompts has an oracle error of 0");
        vals[b] = (s - o) / o * 100.0;
    }
    if (rc == PK_OK) rc = stats_percentile_interval(vals, B, level, &out->low, &out->high, err);
    free(vals);
    return rc;
}
