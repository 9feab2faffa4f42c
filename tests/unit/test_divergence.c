/* Divergences: values against direct formulas, gradients w.r.t. both sides against
 * central finite differences, row alignment, extreme logits, thread-count independence. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "divergence.h"
#include "parallel.h"
#include "test.h"

static const DivKind all_kinds[] = {DIV_FKL, DIV_RKL, DIV_JSD, DIV_SKEW_FKL, DIV_SKEW_RKL, DIV_TVD};
#define N_KINDS 6

static void fill_logits(float *x, int n, PkRng *r, float scale) {
    for (int i = 0; i < n; i++) x[i] = (float)(pk_rng_normal(r) * scale);
}

static void softmax_d(const float *x, double *p, int V) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    for (int v = 0; v < V; v++) s += (p[v] = exp(x[v] - mx));
    for (int v = 0; v < V; v++) p[v] /= s;
}

static double kl_d(const double *a, const double *b, int V) {
    double s = 0;
    for (int v = 0; v < V; v++)
        if (a[v] > 0) s += a[v] * log(a[v] / b[v]);
    return s;
}

/* The definitions of divergence.h, on probabilities, for moderate logits. */
static double reference(DivKind k, double a, const float *pl, const float *ql, int V) {
    double P[64], Q[64], M[64];
    softmax_d(pl, P, V);
    softmax_d(ql, Q, V);
    switch (k) {
    case DIV_FKL: return kl_d(P, Q, V);
    case DIV_RKL: return kl_d(Q, P, V);
    case DIV_JSD:
        for (int v = 0; v < V; v++) M[v] = a * P[v] + (1 - a) * Q[v];
        return a * kl_d(P, M, V) + (1 - a) * kl_d(Q, M, V);
    case DIV_SKEW_FKL:
        for (int v = 0; v < V; v++) M[v] = a * P[v] + (1 - a) * Q[v];
        return kl_d(P, M, V);
    case DIV_SKEW_RKL:
        for (int v = 0; v < V; v++) M[v] = a * Q[v] + (1 - a) * P[v];
        return kl_d(Q, M, V);
    case DIV_TVD: {
        double s = 0;
        for (int v = 0; v < V; v++) s += 0.5 * fabs(P[v] - Q[v]);
        return s;
    }
    }
    return NAN;
}

static void test_names_roundtrip(void) {
    for (int i = 0; i < N_KINDS; i++) {
        DivKind k;
        CHECK(div_parse(div_name(all_kinds[i]), &k) == PK_OK);
        CHECK(k == all_kinds[i]);
    }
    DivKind k;
    CHECK(div_parse("kl", &k) == PK_FAIL);
    CHECK(div_parse(NULL, &k) == PK_FAIL);
}

static void test_values_match_definitions(void) {
    PkRng r;
    pk_rng_seed(&r, 1);
    enum { V = 11 };
    float p[V], q[V];
    for (int trial = 0; trial < 5; trial++) {
        fill_logits(p, V, &r, 2.0f);
        fill_logits(q, V, &r, 2.0f);
        for (int i = 0; i < N_KINDS; i++) {
            double a = 0.1 + 0.2 * trial;
            double got = div_row(all_kinds[i], (float)a, p, q, V);
            double want = reference(all_kinds[i], (double)(float)a, p, q, V);
            CHECK_MSG(fabs(got - want) < 1e-12 + 1e-10 * fabs(want), "%s trial %d: %.15g vs %.15g",
                      div_name(all_kinds[i]), trial, got, want);
            CHECK(got >= -1e-15);
        }
    }
    /* identical distributions: every divergence is 0 */
    for (int i = 0; i < N_KINDS; i++) CHECK_NEAR(div_row(all_kinds[i], 0.3f, p, p, V), 0.0, 1e-14);
    /* JSD with beta = 0.5 is symmetric; TVD is bounded by 1 */
    CHECK_NEAR(div_row(DIV_JSD, 0.5f, p, q, V), div_row(DIV_JSD, 0.5f, q, p, V), 1e-14);
    CHECK(div_row(DIV_TVD, 0, p, q, V) <= 1.0);
    /* skew with alpha = 0 is the plain KL */
    CHECK_NEAR(div_row(DIV_SKEW_FKL, 0.0f, p, q, V), div_row(DIV_FKL, 0, p, q, V), 1e-14);
    CHECK_NEAR(div_row(DIV_SKEW_RKL, 0.0f, p, q, V), div_row(DIV_RKL, 0, p, q, V), 1e-14);
}

/* Central differences of the summed value w.r.t. each logit of both sides, two rows
 * laid out at different offsets on each side, with scale applied to the analytic side. */
static void check_gradients(DivKind kind, float param) {
    enum { V = 9, NP = 4, NQ = 3 };
    PkRng r;
    pk_rng_seed(&r, 7 + (uint64_t)kind);
    float p[NP * V], q[NQ * V];
    fill_logits(p, NP * V, &r, 1.5f);
    fill_logits(q, NQ * V, &r, 1.5f);
    size_t prow[2] = {3, 1}, qrow[2] = {0, 2};
    const float scale = 0.5f;
    float dp[NP * V], dq[NQ * V];
    /* the gradient accumulates: start from a known non-zero value */
    for (int i = 0; i < NP * V; i++) dp[i] = 1.0f;
    for (int i = 0; i < NQ * V; i++) dq[i] = -2.0f;
    div_rows(kind, param, p, prow, q, qrow, 2, V, scale, dp, dq);
    double max_err = 0;
    for (int side = 0; side < 2; side++) {
        float *x = side == 0 ? p : q;
        float *dx = side == 0 ? dp : dq;
        int nx = side == 0 ? NP * V : NQ * V;
        float base = side == 0 ? 1.0f : -2.0f;
        for (int i = 0; i < nx; i++) {
            float keep = x[i];
            float h = 1e-2f;
            x[i] = keep + h;
            double up = div_rows(kind, param, p, prow, q, qrow, 2, V, 0, NULL, NULL);
            float hu = x[i] - keep;
            x[i] = keep - h;
            double dn = div_rows(kind, param, p, prow, q, qrow, 2, V, 0, NULL, NULL);
            float hd = keep - x[i];
            x[i] = keep;
            double fd = (up - dn) / ((double)hu + (double)hd);
            double an = ((double)dx[i] - base) / scale;
            double e = fabs(fd - an);
            if (e > max_err) max_err = e;
            CHECK_MSG(e < 2e-4, "%s side %d index %d: analytic %.8g, finite difference %.8g", div_name(kind), side, i,
                      an, fd);
        }
    }
    (void)max_err;
}

static void test_gradients_fkl(void) { check_gradients(DIV_FKL, 0); }
static void test_gradients_rkl(void) { check_gradients(DIV_RKL, 0); }
static void test_gradients_jsd(void) {
    check_gradients(DIV_JSD, 0.5f);
    check_gradients(DIV_JSD, 0.1f);
    check_gradients(DIV_JSD, 0.9f);
}
static void test_gradients_skew_fkl(void) {
    check_gradients(DIV_SKEW_FKL, 0.1f);
    check_gradients(DIV_SKEW_FKL, 0.6f);
}
static void test_gradients_skew_rkl(void) {
    check_gradients(DIV_SKEW_RKL, 0.1f);
    check_gradients(DIV_SKEW_RKL, 0.6f);
}
static void test_gradients_tvd(void) { check_gradients(DIV_TVD, 0); }

/* Logits hundreds apart: probabilities underflow to exactly 0 in float and double,
 * yet values and gradients stay finite and the gradient rows still sum to 0. */
static void test_extreme_logits_finite(void) {
    enum { V = 6 };
    float p[V] = {0, -900, -5, 300, -1e4f, 2};
    float q[V] = {-800, 0, 700, -3, 1e4f, -1e4f};
    for (int i = 0; i < N_KINDS; i++) {
        for (int swap = 0; swap < 2; swap++) {
            float dp[V] = {0}, dq[V] = {0};
            size_t z = 0;
            const float *a = swap ? q : p, *b = swap ? p : q;
            double v = div_rows(all_kinds[i], 0.2f, a, &z, b, &z, 1, V, 1.0f, dp, dq);
            CHECK_MSG(isfinite(v) && v >= -1e-12, "%s: value %g", div_name(all_kinds[i]), v);
            double sp = 0, sq = 0;
            int finite = 1;
            for (int j = 0; j < V; j++) {
                finite &= isfinite(dp[j]) && isfinite(dq[j]);
                sp += dp[j];
                sq += dq[j];
            }
            CHECK_MSG(finite, "%s: non-finite gradient", div_name(all_kinds[i]));
            CHECK_NEAR(sp, 0.0, 1e-5);
            CHECK_NEAR(sq, 0.0, 1e-5);
        }
    }
    /* FKL where the student puts ~0 mass on the teacher's token: large but finite */
    float pt[3] = {10, 0, 0}, qt[3] = {-80, 0, 0};
    double v = div_row(DIV_FKL, 0, pt, qt, 3);
    CHECK(isfinite(v) && v > 80);
}

/* The summed result and the gradients do not depend on the number of threads. */
static void test_thread_count_independent(void) {
    enum { V = 257, N = 37 };
    PkRng r;
    pk_rng_seed(&r, 3);
    float *p = malloc(sizeof(float) * N * V), *q = malloc(sizeof(float) * N * V);
    float *g1 = calloc(N * V, sizeof(float)), *g2 = calloc(N * V, sizeof(float));
    size_t rows[N];
    for (int i = 0; i < N; i++) rows[i] = (size_t)(N - 1 - i);
    fill_logits(p, N * V, &r, 3.0f);
    fill_logits(q, N * V, &r, 3.0f);
    pk_threads_init(1);
    double a = div_rows(DIV_JSD, 0.3f, p, rows, q, rows, N, V, 0.1f, NULL, g1);
    pk_threads_init(2);
    double b = div_rows(DIV_JSD, 0.3f, p, rows, q, rows, N, V, 0.1f, NULL, g2);
    CHECK(a == b);
    CHECK(memcmp(g1, g2, sizeof(float) * N * V) == 0);
    double direct = 0;
    for (int i = 0; i < N; i++) direct += div_row(DIV_JSD, 0.3f, p + rows[i] * V, q + rows[i] * V, V);
    CHECK_NEAR(a, direct, 1e-12);
    CHECK(div_rows(DIV_FKL, 0, p, rows, q, rows, 0, V, 1, NULL, NULL) == 0.0);
    free(p);
    free(q);
    free(g1);
    free(g2);
}

int main(void) {
    pk_threads_init(2);
    RUN(test_names_roundtrip);
    RUN(test_values_match_definitions);
    RUN(test_gradients_fkl);
    RUN(test_gradients_rkl);
    RUN(test_gradients_jsd);
    RUN(test_gradients_skew_fkl);
    RUN(test_gradients_skew_rkl);
    RUN(test_gradients_tvd);
    RUN(test_extreme_logits_finite);
    RUN(test_thread_count_independent);
    TEST_EXIT();
}
