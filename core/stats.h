/* Statistics for comparing methods (promptkd compare): mean and sample std over training
 * seeds, percentile bootstrap intervals over test records (paired differences of ROUGE-L)
 * and over prompts (ExAccErr, a ratio of means). Pure functions: no printing, no globals.
 *
 * The bootstrap, exactly (so a reader can redo it): one PkRng seeded with `seed`
 * (pk_rng_seed); for b = 0 .. B-1, for i = 0 .. n-1, index_i = pk_rng_below(rng, n); the
 * statistic of resample b is computed on x[index_0 .. index_{n-1}]. The B statistics are
 * sorted and the interval is their percentile interval: low = the (1 - level)/2 quantile,
 * high = the (1 + level)/2 quantile, each with linear interpolation between order
 * statistics at position q (B - 1) (numpy.percentile's default, "linear"). */
#ifndef PK_STATS_H
#define PK_STATS_H

#include <stdint.h>

#define STATS_BOOTSTRAP_DEFAULT 10000

typedef struct {
    double estimate; /* the statistic on the data as given */
    double low, high; /* percentile interval of the bootstrap statistics */
} StatsInterval;

/* Mean and sample standard deviation (divisor n - 1; 0 when n == 1). n >= 1. */
int stats_mean_std(const double *x, int n, double *mean, double *std, char *err);

/* The q-quantile (0 <= q <= 1) of n >= 1 sorted values: linear interpolation at position
 * q (n - 1), as numpy.percentile(x, 100 q) computes it. */
double stats_quantile_sorted(const double *sorted, int n, double q);

/* Sorts values (n >= 1, in place) and returns their median (the 0.5 quantile above). */
double stats_median(double *values, int n);

/* Sorts values (n >= 1, in place) and returns their central `level` percentile interval
 * (0 < level < 1) in *low, *high. */
int stats_percentile_interval(double *values, int n, double level, double *low, double *high, char *err);

/* Bootstrap interval of the mean of x [n]: estimate = mean(x). B >= 1 resamples. */
int stats_bootstrap_mean_ci(const double *x, int n, int B, uint64_t seed, double level, StatsInterval *out,
                            char *err);

/* Paired bootstrap interval of mean(a - b) over n paired items (records scored by both
 * sides): the items, not the two sides separately, are resampled. */
int stats_paired_bootstrap_ci(const double *a, const double *b, int n, int B, uint64_t seed, double level,
                              StatsInterval *out, char *err);

/* ExAccErr at one length l from per-prompt figures: student[p] = the mean over that
 * prompt's student samples of sum_{t<=l} e_t, oracle[p] the same over oracle samples;
 *     ExAccErr = (mean(student) - mean(oracle)) / mean(oracle) x 100
 * (R(l) and l eps(l) of core/exposure.h are those two means). NaN when mean(oracle) is 0. */
double stats_exaccerr(const double *student, const double *oracle, int n);

/* Bootstrap interval of stats_exaccerr over prompts: prompt p's pair (student[p],
 * oracle[p]) is resampled as one item. Fails when a resample's oracle mean is 0. */
int stats_exaccerr_bootstrap_ci(const double *student, const double *oracle, int n, int B, uint64_t seed,
                                double level, StatsInterval *out, char *err);

#endif
