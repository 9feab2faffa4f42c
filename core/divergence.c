/* Token-level divergences over the full vocabulary with exact gradients (see divergence.h).
 *
 * Every kind is written as F(X, Y) of two softmax distributions X = softmax(x), Y = softmax(y).
 * For the gradient through the softmax we use, per side, w_v = X_v dF/dX_v:
 *   dF/dx_j = w_j - X_j sum_v w_v
 * (constant terms of dF/dX cancel, so they are dropped). Writing w directly in terms of
 * log-probabilities keeps every term finite even where a probability underflows
 * (e.g. FKL's d/dq = Q - P, never P / Q). All arithmetic is in double on log-softmax
 * values computed with the row maximum subtracted.
 *
 * The skew family covers FKL and RKL: skew(X, Y, a) = KL(X || a X + (1 - a) Y), so
 * FKL = skew(P, Q, 0), RKL = skew(Q, P, 0), SKEW_FKL = skew(P, Q, a), SKEW_RKL = skew(Q, P, a).
 *   value = sum_v X_v (log X_v - log M_v)
 *   w^X_v = X_v (log X_v - log M_v - a r_v),   r_v = X_v / M_v = exp(log X_v - log M_v)
 *   w^Y_v = -(1 - a) Y_v r_v = -(1 - a) exp(log Y_v + log X_v - log M_v)
 * JSD(beta) with M = beta P + (1 - beta) Q:
 *   value = beta sum P (log P - log M) + (1 - beta) sum Q (log Q - log M)
 *   w^P_v = beta P_v (log P_v - log M_v),   w^Q_v = (1 - beta) Q_v (log Q_v - log M_v)
 * TVD: value = 1/2 sum |P - Q|, w^P_v = P_v sign(P_v - Q_v) / 2, w^Q_v = -Q_v sign(P_v - Q_v) / 2. */
#include "divergence.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "parallel.h"

static const char *const div_names[] = {"fkl", "rkl", "jsd", "skew_fkl", "skew_rkl", "tvd"};

const char *div_name(DivKind k) {
    if ((int)k < 0 || (int)k >= (int)(sizeof div_names / sizeof div_names[0])) return "unknown";
    return div_names[k];
}

int div_parse(const char *name, DivKind *out) {
    for (int i = 0; i < (int)(sizeof div_names / sizeof div_names[0]); i++) {
        if (name && strcmp(name, div_names[i]) == 0) {
            *out = (DivKind)i;
            return PK_OK;
        }
    }
    return PK_FAIL;
}

/* logp[V] = log_softmax(logits[V]) in double, max subtracted. */
static void log_softmax_row(double *logp, const float *logits, int V) {
    double mx = -INFINITY;
    for (int v = 0; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    double lse = mx + log(sum);
    for (int v = 0; v < V; v++) logp[v] = (double)logits[v] - lse;
}

/* log(a e^la + (1 - a) e^lb) for a in [0, 1], exact at the ends. */
static double log_mix(double a, double la, double lb) {
    if (a <= 0.0) return lb;
    if (a >= 1.0) return la;
    double x = log(a) + la, y = log1p(-a) + lb;
    double mx = x > y ? x : y;
    if (mx == -INFINITY) return -INFINITY;
    return mx + log(exp(x - mx) + exp(y - mx));
}

/* dx[j] += scale * (w[j] - X[j] * sum_v w[v]), with X = exp(logx). */
static void softmax_chain(float *dx, const double *w, const double *logx, int V, float scale) {
    double sw = 0.0;
    for (int v = 0; v < V; v++) sw += w[v];
    for (int v = 0; v < V; v++) dx[v] += (float)((double)scale * (w[v] - exp(logx[v]) * sw));
}

/* Scratch: logp, logq, wp, wq, each [V]. Returns the row value; adds gradients when dp / dq given. */
static double div_row_work(DivKind kind, double param, const float *p, const float *q, int V, float scale, float *dp,
                           float *dq, double *scratch) {
    double *logp = scratch, *logq = scratch + V, *wp = scratch + 2 * (size_t)V, *wq = scratch + 3 * (size_t)V;
    log_softmax_row(logp, p, V);
    log_softmax_row(logq, q, V);
    int want = dp != NULL || dq != NULL;
    double value = 0.0;
    switch (kind) {
    case DIV_FKL:
    case DIV_RKL:
    case DIV_SKEW_FKL:
    case DIV_SKEW_RKL: {
        int x_is_p = kind == DIV_FKL || kind == DIV_SKEW_FKL;
        double a = (kind == DIV_FKL || kind == DIV_RKL) ? 0.0 : param;
        const double *lx = x_is_p ? logp : logq, *ly = x_is_p ? logq : logp;
        double *wx = x_is_p ? wp : wq, *wy = x_is_p ? wq : wp;
        for (int v = 0; v < V; v++) {
            double xv = exp(lx[v]);
            double lm = log_mix(a, lx[v], ly[v]);
            double d = lx[v] - lm; /* finite: lx is finite, and lm >= log(a) + lx or lm = ly */
            value += xv * d;
            if (want) {
                /* r = X/M <= 1/a is bounded only for a > 0; for a = 0 the product Y r = X is
                 * formed in the log domain so an underflowed Y never meets an overflowed r */
                wx[v] = a > 0.0 ? xv * (d - a * exp(d)) : xv * d;
                wy[v] = -(1.0 - a) * exp(ly[v] + d);
            }
        }
        break;
    }
    case DIV_JSD: {
        double beta = param;
        for (int v = 0; v < V; v++) {
            double pv = exp(logp[v]), qv = exp(logq[v]);
            double lm = log_mix(beta, logp[v], logq[v]);
            double tp = beta > 0.0 ? beta * pv * (logp[v] - lm) : 0.0;
            double tq = beta < 1.0 ? (1.0 - beta) * qv * (logq[v] - lm) : 0.0;
            value += tp + tq;
            if (want) {
                wp[v] = tp;
                wq[v] = tq;
            }
        }
        break;
    }
    case DIV_TVD: {
        for (int v = 0; v < V; v++) {
            double pv = exp(logp[v]), qv = exp(logq[v]);
            double diff = pv - qv;
            value += 0.5 * fabs(diff);
            if (want) {
                double sg = diff > 0 ? 0.5 : diff < 0 ? -0.5 : 0.0;
                wp[v] = pv * sg;
                wq[v] = -qv * sg;
            }
        }
        break;
    }
    }
    if (dp) softmax_chain(dp, wp, logp, V, scale);
    if (dq) softmax_chain(dq, wq, logq, V, scale);
    return value;
}

typedef struct {
    DivKind kind;
    double param;
    const float *p, *q;
    const size_t *p_rows, *q_rows;
    int V;
    float scale;
    float *dp, *dq;
    double *values; /* [n] */
    int oom;
} DivJob;

static void div_range(void *ctx, long begin, long end) {
    DivJob *j = ctx;
    double *scratch = malloc(4 * (size_t)j->V * sizeof(double));
    if (!scratch) {
        __atomic_store_n(&j->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    for (long i = begin; i < end; i++) {
        size_t po = j->p_rows[i] * (size_t)j->V, qo = j->q_rows[i] * (size_t)j->V;
        j->values[i] = div_row_work(j->kind, j->param, j->p + po, j->q + qo, j->V, j->scale, j->dp ? j->dp + po : NULL,
                                    j->dq ? j->dq + qo : NULL, scratch);
    }
    free(scratch);
}

double div_rows(DivKind kind, float param, const float *p_logits, const size_t *p_rows, const float *q_logits,
                const size_t *q_rows, int n, int V, float scale, float *dp_logits, float *dq_logits) {
    if (n <= 0) return 0.0;
    double *values = malloc((size_t)n * sizeof(double));
    if (!values) return NAN;
    DivJob j = {kind, (double)param, p_logits, q_logits, p_rows, q_rows, V, scale, dp_logits, dq_logits, values, 0};
    /* rows are independent and each writes its own gradient rows (rows must be distinct
     * when gradients are requested); the sum is taken in row order so the result does not
     * depend on the thread count */
    pk_parallel_for_grain(n, 1, div_range, &j);
    double total = 0.0;
    if (j.oom) {
        total = NAN; /* a worker had no scratch memory: reported as a non-finite loss */
    } else {
        for (int i = 0; i < n; i++) total += values[i];
    }
    free(values);
    return total;
}

double div_row(DivKind kind, float param, const float *p_logits, const float *q_logits, int V) {
    double *scratch = malloc(4 * (size_t)V * sizeof(double));
    if (!scratch) return NAN;
    double v = div_row_work(kind, (double)param, p_logits, q_logits, V, 0.0f, NULL, NULL, scratch);
    free(scratch);
    return v;
}
