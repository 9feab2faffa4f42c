#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* ------------------------------------------------------------------ GEMM */

/* One single-threaded product; a row vector (M == 1) goes to sgemv, which reads
 * the matrix once instead of packing it (KV-cache decoding is all M == 1). */
static void gemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    if (M == 1) {
        if (beta == 0.0f) memset(C, 0, (size_t)N * sizeof(float)); /* sgemv's beta=0 may keep NaNs */
        int incx = ta ? lda : 1;
        if (tb) /* B stored [N, K]: y = B . a */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, incx, beta == 0.0f ? 1.0f : beta, C, 1);
        else /* B stored [K, N]: y = B^T . a */
            cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, incx, beta == 0.0f ? 1.0f : beta, C, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

/* A guided split of [0, len) over nt threads: chunk c < nt is `big` long, every later
 * one `small`; threads take chunks in order until none is left. Each thread's first
 * chunk is 3/4 of its share and the last quarter goes in nt small chunks to whichever
 * thread is free: with equal cores that is an even split; when the host steals one
 * core for a while, the other takes up the small chunks instead of waiting at the
 * barrier (alternated step by step on GPT-2 small: the median step 5-17% faster in
 * 4 of 5 runs, the fastest step unchanged). Equal chunks, one per thread, waited;
 * three equal chunks per thread packed the shared operand too often. Boundaries are
 * fixed (multiples of align where the length allows), only who takes which chunk
 * depends on timing. */
typedef struct {
    long len, big, small;
    int nt;
    long next; /* next chunk to take (atomic) */
} GuidedSplit;

static void guided_split_init(GuidedSplit *g, long len, int nt, long align) {
    long chunk = ((len + nt - 1) / nt + align - 1) / align * align;
    if (chunk >= len) chunk = (len + nt - 1) / nt; /* too small to align: one chunk per thread */
    *g = (GuidedSplit){len, chunk < 1 ? 1 : chunk, chunk < 1 ? 1 : chunk, nt, 0};
    long big = (len * 3 / (4L * nt) + align - 1) / align * align, rest = len - big * nt;
    if (big > 0 && rest > 0) {
        g->big = big;
        g->small = ((rest + nt - 1) / nt + align - 1) / align * align;
    }
}

/* [*b, *e) of chunk c; 0 when c is past the end */
static int guided_split_chunk(const GuidedSplit *g, long c, long *b, long *e) {
    *b = c < g->nt ? c * g->big : g->nt * g->big + (c - g->nt) * g->small;
    if (*b >= g->len) return 0;
    *e = *b + (c < g->nt ? g->big : g->small);
    if (*e > g->len) *e = g->len;
    return 1;
}

/* Takes the next chunk: its index, or -1 when none is left. */
static long guided_split_take(GuidedSplit *g, long *b, long *e) {
    long c = __atomic_fetch_add(&g->next, 1, __ATOMIC_RELAXED);
    return guided_split_chunk(g, c, b, e) ? c : -1;
}

static long guided_split_count(const GuidedSplit *g) {
    long c = 0, b, e;
    while (guided_split_chunk(g, c, &b, &e)) c++;
    return c;
}

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int split_n;  /* 1: chunks are columns of N, 0: rows of M */
    GuidedSplit split;
} GemmJob;

static void gemm_chunk(const GemmJob *g, long b, long e) {
    if (g->split_n) {
        const float *Bp = g->tb ? g->B + b * (long)g->ldb : g->B + b;
        gemm_serial(g->ta, g->tb, g->M, (int)(e - b), g->K, g->alpha, g->A, g->lda, Bp, g->ldb, g->beta, g->C + b,
                    g->ldc);
    } else {
        const float *Ap = g->ta ? g->A + b : g->A + b * (long)g->lda;
        gemm_serial(g->ta, g->tb, (int)(e - b), g->N, g->K, g->alpha, Ap, g->lda, g->B, g->ldb, g->beta,
                    g->C + b * (long)g->ldc, g->ldc);
    }
}

/* Each pool thread takes chunks until none is left. */
static void gemm_worker(void *ctx, long b, long e) {
    (void)b, (void)e;
    GemmJob *g = ctx;
    long c0, c1;
    while (guided_split_take(&g->split, &c0, &c1) >= 0) gemm_chunk(g, c0, c1);
}

/* A product whose inner dimension is at least as long as the side a row or column
 * split would cut is split over K (the LM head's d(lnf) = dlogits[BT, V] . wte[V, C];
 * at GPT-2 small's B x T = 256 rows also the MLP and attention projections and the
 * d(input) products of c_fc, c_attn and the attention projection: K = 3072, 2304 or
 * 768 against N = 768). Cutting M or N would make every chunk pack the whole of the
 * other operand again, while K parts pack disjoint slices of both and only add
 * M x N partial sums. The parts are a guided split of K (GuidedSplit); part 0
 * accumulates into C with beta, part p > 0 into its own scratch, and the scratches
 * are added in part order, so the result does not depend on timing. */
typedef struct {
    int ta, tb, M, N, K, parts;
    float alpha, beta;
    const float *A, *B;
    float *C, *scratch;
    int lda, ldb, ldc;
    GuidedSplit split;
} GemmKJob;

static void gemm_k_part(const GemmKJob *g, long p, long k0, long k1) {
    const float *Ap = g->ta ? g->A + k0 * (long)g->lda : g->A + k0;
    const float *Bp = g->tb ? g->B + k0 : g->B + k0 * (long)g->ldb;
    if (p == 0)
        gemm_serial(g->ta, g->tb, g->M, g->N, (int)(k1 - k0), g->alpha, Ap, g->lda, Bp, g->ldb, g->beta, g->C, g->ldc);
    else
        gemm_serial(g->ta, g->tb, g->M, g->N, (int)(k1 - k0), g->alpha, Ap, g->lda, Bp, g->ldb, 0.0f,
                    g->scratch + (size_t)(p - 1) * g->M * g->N, g->N);
}

static void gemm_k_worker(void *ctx, long b, long e) {
    (void)b, (void)e;
    GemmKJob *g = ctx;
    long p, k0, k1;
    while ((p = guided_split_take(&g->split, &k0, &k1)) >= 0) gemm_k_part(g, p, k0, k1);
}

static void gemm_k_reduce(void *ctx, long b, long e) {
    const GemmKJob *g = ctx;
    for (long i = b; i < e; i++) {
        float *c = g->C + i * (long)g->ldc;
        for (int p = 1; p < g->parts; p++) {
            const float *s = g->scratch + ((size_t)(p - 1) * g->M + i) * g->N;
            for (int j = 0; j < g->N; j++) c[j] += s[j];
        }
    }
}

static int gemm_split_k(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc, int nt) {
    GemmKJob g = {ta, tb, M, N, K, 0, alpha, beta, A, B, C, NULL, lda, ldb, ldc, {0}};
    guided_split_init(&g.split, K, nt, 64); /* whole cache lines of each row slice */
    g.parts = (int)guided_split_count(&g.split);
    g.scratch = malloc((size_t)(g.parts - 1) * M * N * sizeof(float));
    if (!g.scratch) return 0;
    pk_parallel_for(nt, gemm_k_worker, &g);
    pk_parallel_for_grain(M, 16, gemm_k_reduce, &g);
    free(g.scratch);
    return 1;
}

/* ------------------------------------------------------------------ small-M products */

/* Decoding multiplies B <= 8 rows by a weight matrix: sgemm would pack the whole
 * matrix every call for a handful of rows. These kernels stream each weight row
 * once for all M rows instead. M is a compile-time constant in each specialisation
 * (small_m_dispatch), so the M x 16-lane accumulators stay in registers. */
#define SMALL_M_TILE 64 /* columns of B [K, N] per tile: M x 64 sums stay in L1 */

typedef struct {
    int tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} SmallMJob;

static inline void small_m_store(const SmallMJob *g, int m, long n, float acc) {
    float *c = g->C + (long)m * g->ldc + n;
    *c = g->alpha * acc + (g->beta == 0.0f ? 0.0f : g->beta * *c);
}

/* B stored [N, K]: C[m, n] = A[m] . B[n], each B row read once for the M dots. */
static inline __attribute__((always_inline)) void small_m_bt(const SmallMJob *g, const int M, long n0, long n1) {
    int K = g->K, lda = g->lda;
    const float *restrict A = g->A;
    for (long n = n0; n < n1; n++) {
        const float *restrict b = g->B + n * (long)g->ldb;
        float acc[PK_SMALL_M][16];
        for (int m = 0; m < M; m++)
            for (int j = 0; j < 16; j++) acc[m][j] = 0.0f;
        int k = 0;
        for (; k + 16 <= K; k += 16)
            for (int m = 0; m < M; m++)
                for (int j = 0; j < 16; j++) acc[m][j] += A[(long)m * lda + k + j] * b[k + j];
        for (int m = 0; m < M; m++) {
            float s = 0.0f;
            for (int kk = k; kk < K; kk++) s += A[(long)m * lda + kk] * b[kk];
            for (int j = 0; j < 16; j++) s += acc[m][j];
            small_m_store(g, m, n, s);
        }
    }
}

/* B stored [K, N]: C[m, tile] = sum_k A[m, k] B[k, tile], B's rows streamed tile by tile. */
static inline __attribute__((always_inline)) void small_m_bn(const SmallMJob *g, const int M, long n0, long n1) {
    int K = g->K, lda = g->lda;
    const float *restrict A = g->A;
    for (long j0 = n0; j0 < n1; j0 += SMALL_M_TILE) {
        float acc[PK_SMALL_M][SMALL_M_TILE];
        for (int m = 0; m < M; m++)
            for (int j = 0; j < SMALL_M_TILE; j++) acc[m][j] = 0.0f;
        if (j0 + SMALL_M_TILE <= n1) {
            for (int k = 0; k < K; k++) {
                const float *restrict b = g->B + (long)k * g->ldb + j0;
                for (int m = 0; m < M; m++) {
                    float a = A[(long)m * lda + k];
                    for (int j = 0; j < SMALL_M_TILE; j++) acc[m][j] += a * b[j];
                }
            }
        } else {
            int w = (int)(n1 - j0);
            for (int k = 0; k < K; k++) {
                const float *restrict b = g->B + (long)k * g->ldb + j0;
                for (int m = 0; m < M; m++) {
                    float a = A[(long)m * lda + k];
                    for (int j = 0; j < w; j++) acc[m][j] += a * b[j];
                }
            }
        }
        int w = n1 - j0 < SMALL_M_TILE ? (int)(n1 - j0) : SMALL_M_TILE;
        for (int m = 0; m < M; m++)
            for (int j = 0; j < w; j++) small_m_store(g, m, j0 + j, acc[m][j]);
    }
}

#define SMALL_M_CASE(mm)                                                                                               \
    case mm:                                                                                                           \
        if (g->tb)                                                                                                     \
            small_m_bt(g, mm, b, e);                                                                                   \
        else                                                                                                           \
            small_m_bn(g, mm, b, e);                                                                                   \
        break;

static void small_m_range(void *ctx, long b, long e) {
    const SmallMJob *g = ctx;
    switch (g->M) {
        SMALL_M_CASE(1)
        SMALL_M_CASE(2)
        SMALL_M_CASE(3)
        SMALL_M_CASE(4)
        SMALL_M_CASE(5)
        SMALL_M_CASE(6)
        SMALL_M_CASE(7)
        SMALL_M_CASE(8)
    default: break;
    }
}

void pk_sgemm_small_m(int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (M > PK_SMALL_M) { /* not what this kernel is for; stay correct */
        gemm_serial(0, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    SmallMJob g = {trans_b, M, N, K < 0 ? 0 : K, alpha, beta, A, B, C, lda, ldb, ldc};
    double flops = 2.0 * M * N * K;
    if (flops < 2e6 || pk_num_threads() == 1)
        small_m_range(&g, 0, N);
    else /* parts of whole tiles, one per thread */
        pk_parallel_for_grain(N, SMALL_M_TILE, small_m_range, &g);
}

void pk_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    PkGemmMode gemm_mode = pk_gemm_mode();
    double flops = 2.0 * M * N * K;
    int nt = pk_num_threads();
    /* Few rows times a long matrix stored [N, K] (the LM head in KV-cache decoding):
     * streaming it beat packing it, measured at C=768 V=50257 for M = 2..7 (M = 1
     * is sgemv's; at K <= 192 and M = 8 sgemm was as fast or faster). */
    if (gemm_mode == PK_GEMM_POOL && !trans_a && trans_b && M >= 2 && M <= 7 && K >= 512 && N >= 4096) {
        pk_sgemm_small_m(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (gemm_mode == PK_GEMM_BLAS || nt == 1 || flops < 4e6 || (M < 2 && N < 128)) {
        gemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* over K when K is at least the side a split would cut and the product's M x N
     * is small: N-chunks would pack the M x K operand once each, K-parts add M x N
     * partial sums instead (measured at 256 rows: faster from K = N up, slower at
     * K = N / 3; for a 2048^3 product the partial sums cost more than they save) */
    if (M > 1 && K >= (M > N ? M : N) && K >= 512 && (long)M * N <= (1L << 20) &&
        gemm_split_k(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nt))
        return;
    /* Split the longer side, guided (GuidedSplit). Column chunks stay multiples of
     * 64 and row chunks of 16 so OpenBLAS's micro-kernel stays full. */
    GemmJob g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, N >= M || M == 1, {0}};
    guided_split_init(&g.split, g.split_n ? N : M, nt, g.split_n ? 64 : 16);
    pk_parallel_for(nt, gemm_worker, &g);
}

/* ------------------------------------------------------------------ matmul */

typedef struct {
    float *out;
    const float *bias;
    int OC;
} BiasFill;

static void bias_fill_range(void *ctx, long b, long e) {
    const BiasFill *f = ctx;
    for (long n = b; n < e; n++) memcpy(f->out + n * f->OC, f->bias, (size_t)f->OC * sizeof(float));
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    /* out[N, OC] = bias (broadcast) then += inp . weight */
    float beta = 0.0f;
    if (bias) {
        BiasFill f = {out, bias, OC};
        pk_parallel_for_grain(N, 64, bias_fill_range, &f);
        beta = 1.0f;
    }
    pk_sgemm(0, 0, N, OC, C, 1.0f, inp, C, weight, OC, beta, out, OC);
}

typedef struct {
    float *dbias;
    const float *dout;
    int N, OC;
} BiasGrad;

static void bias_grad_range(void *ctx, long b, long e) {
    const BiasGrad *g = ctx;
    for (int n = 0; n < g->N; n++) {
        const float *row = g->dout + (long)n * g->OC;
        for (long o = b; o < e; o++) g->dbias[o] += row[o];
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    /* dinp[N, C] += dout[N, OC] . weight[C, OC]^T */
    if (dinp) pk_sgemm(0, 1, N, C, OC, 1.0f, dout, OC, weight, OC, 1.0f, dinp, C);
    /* dweight[C, OC] += inp[N, C]^T . dout[N, OC] */
    if (dweight) pk_sgemm(1, 0, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, OC);
    if (dbias) {
        BiasGrad g = {dbias, dout, N, OC};
        pk_parallel_for_grain(OC, 256, bias_grad_range, &g);
    }
}

/* ------------------------------------------------------------------ reductions */

/* Sums in 16 independent lanes: without -ffast-math the compiler keeps a plain
 * float reduction sequential, this form it vectorises. */
static inline float dot_f(const float *restrict a, const float *restrict b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

static inline float sum_f(const float *restrict a, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += a[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* sum of (a - mu)^2 */
static inline float sqdev_f(const float *restrict a, float mu, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += (a[i + j] - mu) * (a[i + j] - mu);
    float s = 0.0f;
    for (; i < n; i++) s += (a[i] - mu) * (a[i] - mu);
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* ------------------------------------------------------------------ layernorm */

typedef struct {
    float *out, *mean, *rstd;
    const float *inp, *weight, *bias;
    int C;
    float eps;
} LnFwd;

static void layernorm_fwd_range(void *ctx, long b, long e) {
    const LnFwd *a = ctx;
    int C = a->C;
    for (long n = b; n < e; n++) {
        const float *x = a->inp + n * C;
        float *y = a->out + n * C;
        float mu = sum_f(x, C) / C;
        float var = sqdev_f(x, mu, C);
        float rs = 1.0f / sqrtf(var / C + a->eps);
        for (int i = 0; i < C; i++) y[i] = (x[i] - mu) * rs * a->weight[i] + a->bias[i];
        if (a->mean) a->mean[n] = mu;
        if (a->rstd) a->rstd[n] = rs;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps) {
    LnFwd a = {out, mean, rstd, inp, weight, bias, C, eps};
    pk_parallel_for_grain(N, 16, layernorm_fwd_range, &a);
}

typedef struct {
    float *dinp, *dweight, *dbias;
    const float *dout, *inp, *weight, *mean, *rstd;
    int N, C;
} LnBwd;

static void layernorm_bwd_rows(void *ctx, long b, long e) {
    const LnBwd *a = ctx;
    int C = a->C;
    const float *restrict w = a->weight;
    for (long n = b; n < e; n++) {
        const float *restrict dy = a->dout + n * C, *restrict x = a->inp + n * C;
        float *restrict dx = a->dinp + n * C;
        float mu = a->mean[n], rs = a->rstd[n];
        /* dnorm = dy * w; dx = rs * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)),
         * the two means summed in 16 lanes so the loop vectorises */
        float acc_d[16] = {0}, acc_dn[16] = {0};
        int i = 0;
        for (; i + 16 <= C; i += 16)
            for (int j = 0; j < 16; j++) {
                float norm = (x[i + j] - mu) * rs;
                float dnorm = w[i + j] * dy[i + j];
                acc_d[j] += dnorm;
                acc_dn[j] += dnorm * norm;
            }
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (; i < C; i++) {
            float norm = (x[i] - mu) * rs;
            float dnorm = w[i] * dy[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        for (int j = 0; j < 16; j++) dnorm_mean += acc_d[j], dnorm_norm_mean += acc_dn[j];
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (i = 0; i < C; i++) {
            float norm = (x[i] - mu) * rs;
            float dnorm = w[i] * dy[i];
            dx[i] += rs * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
        }
    }
}

static void layernorm_bwd_params(void *ctx, long b, long e) {
    const LnBwd *a = ctx;
    int C = a->C;
    float *restrict dbias = a->dbias, *restrict dweight = a->dweight;
    for (int n = 0; n < a->N; n++) {
        const float *restrict dy = a->dout + (long)n * C, *restrict x = a->inp + (long)n * C;
        float mu = a->mean[n], rs = a->rstd[n];
        if (dbias)
            for (long i = b; i < e; i++) dbias[i] += dy[i];
        if (dweight)
            for (long i = b; i < e; i++) dweight[i] += (x[i] - mu) * rs * dy[i];
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    LnBwd a = {dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C};
    if (dinp) pk_parallel_for_grain(N, 16, layernorm_bwd_rows, &a);
    if (dweight || dbias) pk_parallel_for_grain(C, 64, layernorm_bwd_params, &a);
}

/* ------------------------------------------------------------------ GELU */

/* exp(x) for float, written so the compiler vectorises the loops that call it
 * (Cephes' expf polynomial, ~1 ulp). Rounding x/ln2 to an integer by adding
 * 1.5 * 2^23 leaves that integer in the low mantissa bits, which then become the
 * exponent of the 2^n scale: no floorf, no float-to-int conversion. */
static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        float f;
        uint32_t u;
    } tu = {t}, scale;
    scale.u = (tu.u + 127u) << 23;
    return p * scale.f;
}

/* max of x[n], in 16 independent lanes so it vectorises */
static float row_max(const float *restrict x, int n) {
    float acc[16];
    for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++) m = acc[j] > m ? acc[j] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* out[i] = exp(x[i] - shift) (out may be NULL); returns the sum, in 16 lanes of
 * fp32 partial sums gathered in double; out == x is allowed (in place) */
static double exp_sum(float *out, const float *x, int n, float shift) {
    float acc[16] = {0};
    int i = 0;
    if (out) {
        for (; i + 16 <= n; i += 16)
            for (int j = 0; j < 16; j++) {
                float e = fast_expf(x[i + j] - shift);
                out[i + j] = e;
                acc[j] += e;
            }
    } else {
        for (; i + 16 <= n; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += fast_expf(x[i + j] - shift);
    }
    double s = 0.0;
    for (; i < n; i++) {
        float e = fast_expf(x[i] - shift);
        if (out) out[i] = e;
        s += e;
    }
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1): vectorisable and exact to a few ulp of 1. */
static inline float fast_tanhf(float u) { return 1.0f - 2.0f / (fast_expf(2.0f * u) + 1.0f); }

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

typedef struct {
    float *out;
    const float *inp, *dout;
} Elementwise;

static void gelu_fwd_range(void *ctx, long b, long e) {
    const Elementwise *a = ctx;
    float *restrict out = a->out;
    const float *restrict inp = a->inp;
    for (long i = b; i < e; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + fast_tanhf(u));
    }
}

void gelu_forward(float *out, const float *inp, long n) {
    Elementwise a = {out, inp, NULL};
    pk_parallel_for_grain(n, 8192, gelu_fwd_range, &a);
}

/* d gelu(x) / dx for the tanh form */
static inline float gelu_grad(float x) {
    float th = fast_tanhf(GELU_SCALE * (x + 0.044715f * x * x * x));
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

static void gelu_bwd_range(void *ctx, long b, long e) {
    const Elementwise *a = ctx;
    float *restrict dinp = a->out;
    const float *restrict inp = a->inp, *restrict dout = a->dout;
    for (long i = b; i < e; i++) {
        dinp[i] += gelu_grad(inp[i]) * dout[i];
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, long n) {
    Elementwise a = {dinp, inp, dout};
    pk_parallel_for_grain(n, 8192, gelu_bwd_range, &a);
}

static void gelu_bwd_inplace_range(void *ctx, long b, long e) {
    const Elementwise *a = ctx;
    float *restrict d = a->out;
    const float *restrict inp = a->inp;
    for (long i = b; i < e; i++) {
        d[i] *= gelu_grad(inp[i]);
    }
}

void gelu_backward_inplace(float *d, const float *inp, long n) {
    Elementwise a = {d, inp, NULL};
    pk_parallel_for_grain(n, 8192, gelu_bwd_inplace_range, &a);
}

/* ------------------------------------------------------------------ residual */

typedef struct {
    float *out, *out2;
    const float *a, *b;
} Residual;

static void residual_fwd_range(void *ctx, long b, long e) {
    const Residual *r = ctx;
    for (long i = b; i < e; i++) r->out[i] = r->a[i] + r->b[i];
}

void residual_forward(float *out, const float *a, const float *b, long n) {
    Residual r = {out, NULL, a, b};
    pk_parallel_for_grain(n, 16384, residual_fwd_range, &r);
}

static void residual_bwd_range(void *ctx, long b, long e) {
    const Residual *r = ctx;
    for (long i = b; i < e; i++) {
        if (r->out) r->out[i] += r->a[i];
        if (r->out2) r->out2[i] += r->a[i];
    }
}

void residual_backward(float *da, float *db, const float *dout, long n) {
    Residual r = {da, db, dout, NULL};
    pk_parallel_for_grain(n, 16384, residual_bwd_range, &r);
}

/* ------------------------------------------------------------------ dropout */

#define SPLITMIX_GOLDEN 0x9E3779B97F4A7C15ULL

/* splitmix64's output function (Steele, Lea, Flood 2014) */
static inline uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

unsigned long long dropout_stream(unsigned long long seed, int site, int layer) {
    uint64_t id = ((uint64_t)(uint32_t)site << 32 | (uint32_t)layer) + 1;
    return splitmix64_mix(splitmix64_mix(seed) + id * SPLITMIX_GOLDEN);
}

unsigned long long dropout_row_stream(unsigned long long stream, long row) {
    return splitmix64_mix(stream ^ splitmix64_mix((uint64_t)row * SPLITMIX_GOLDEN + SPLITMIX_GOLDEN));
}

/* p * 2^32: an element is dropped when the high half of its hash is below this */
static inline uint32_t dropout_threshold(float p) {
    double t = (double)p * 4294967296.0;
    return t <= 0.0 ? 0u : t >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)t;
}

static inline int dropout_keep(uint64_t stream, uint64_t i, uint32_t threshold) {
    return (uint32_t)(splitmix64_mix(stream + (i + 1) * SPLITMIX_GOLDEN) >> 32) >= threshold;
}

/* k[j] = scale when element i0 + j is kept, else 0, for 16 elements: without branches,
 * so the hash vectorises */
static inline void dropout_scales16(float *restrict k, uint64_t stream, uint64_t i0, uint32_t threshold,
                                    float scale) {
    for (int j = 0; j < 16; j++) k[j] = dropout_keep(stream, i0 + (uint64_t)j, threshold) ? scale : 0.0f;
}

typedef struct {
    float *out;
    const float *inp;
    float scale;
    uint32_t threshold;
    uint64_t stream;
} DropoutJob;

/* out = inp * mask (out may alias inp), or with accumulate out += inp * mask; inlined into the two
 * range functions below with accumulate a constant, so each loop is compiled on its own. */
static inline void dropout_apply(const DropoutJob *a, long b, long e, int accumulate) {
    float *out = a->out;
    const float *inp = a->inp;
    float scale = a->scale;
    uint32_t threshold = a->threshold;
    uint64_t stream = a->stream;
    long i = b;
    for (; i + 16 <= e; i += 16) {
        float k[16];
        dropout_scales16(k, stream, (uint64_t)i, threshold, scale);
        for (int j = 0; j < 16; j++) out[i + j] = accumulate ? out[i + j] + inp[i + j] * k[j] : inp[i + j] * k[j];
    }
    for (; i < e; i++) {
        float m = dropout_keep(stream, (uint64_t)i, threshold) ? scale : 0.0f;
        out[i] = accumulate ? out[i] + inp[i] * m : inp[i] * m;
    }
}

static void dropout_fwd_range(void *ctx, long b, long e) { dropout_apply(ctx, b, e, 0); }

void dropout_forward(float *out, const float *inp, long n, float p, unsigned long long stream) {
    DropoutJob a = {out, inp, 1.0f / (1.0f - p), dropout_threshold(p), stream};
    pk_parallel_for_grain(n, 16384, dropout_fwd_range, &a);
}

static void dropout_bwd_range(void *ctx, long b, long e) { dropout_apply(ctx, b, e, 1); }

void dropout_backward(float *dinp, const float *dout, long n, float p, unsigned long long stream) {
    DropoutJob a = {dinp, dout, 1.0f / (1.0f - p), dropout_threshold(p), stream};
    pk_parallel_for_grain(n, 16384, dropout_bwd_range, &a);
}

/* ------------------------------------------------------------------ attention */

typedef struct {
    float *out, *att;
    const float *q, *k, *v;
    long q_bstride, q_tstride, kv_bstride, kv_tstride;
    const int *row_start;
    int B, t0, Tq, C, NH;
    float drop_p;         /* dropout on the probabilities (training path only), 0: none */
    uint64_t drop_stream;
    float *scratch;       /* n_slots x T x T: one dropped-probabilities slice per range */
    int n_slots, next_slot;
    long drop_row_base;   /* global index of batch row 0 (its mask stream) */
} AttnFwd;

static inline int attn_lo(const int *row_start, int b, int t) {
    int lo = row_start ? row_start[b] : 0;
    return t < lo ? t : lo; /* a padding query sees itself only */
}

/* Pd[T, T] of (batch row b, head h): the probabilities P[T, T] inside each row's window [lo, t]
 * with the dropout mask of elements (h << 42) | (t << 21) | s of the row's stream applied (kept
 * ones scaled by 1 / (1 - p)), zero outside the window. The mask of a sequence depends on its
 * global row index only, not on the batch's padded length or on the other rows. */
static void attention_drop_probs(float *Pd, const float *P, int h, const int *row_start, int b, int T, float p,
                                 uint64_t stream) {
    float scale = 1.0f / (1.0f - p);
    uint32_t threshold = dropout_threshold(p);
    for (int t = 0; t < T; t++) {
        const float *row = P + (long)t * T;
        float *d = Pd + (long)t * T;
        uint64_t base = ((uint64_t)h << 42) | ((uint64_t)t << 21);
        int lo = attn_lo(row_start, b, t);
        for (int s = 0; s < lo; s++) d[s] = 0.0f;
        for (int s = lo; s <= t; s++) d[s] = dropout_keep(stream, base + s, threshold) ? row[s] * scale : 0.0f;
        for (int s = t + 1; s < T; s++) d[s] = 0.0f;
    }
}

/* The training path (probabilities kept, t0 = 0): per (batch, head), the scores
 * S[T, T] = scale * Q[T, hs] . K[T, hs]^T and the output Y[T, hs] = P[T, T] . V[T, hs]
 * are two serial sgemms on the strided q, k, v rows. Masked scores are computed
 * and then overwritten: the full T x T product on the sgemm micro-kernel is far
 * faster than a triangular loop of dot products. With dropout, Y = Pd[T, T] . V with
 * Pd the dropped probabilities in `drop` (a T x T scratch); att keeps P. */
static void attention_fwd_gemm(const AttnFwd *a, long bh, float *drop) {
    int NH = a->NH, hs = a->C / NH, T = a->Tq;
    int b = (int)(bh / NH), h = (int)(bh % NH);
    float scale = 1.0f / sqrtf((float)hs);
    const float *q = a->q + b * a->q_bstride + h * hs;
    const float *k = a->k + b * a->kv_bstride + h * hs;
    const float *v = a->v + b * a->kv_bstride + h * hs;
    float *P = a->att + bh * (long)T * T;
    /* P[T, T] = scale * q[T, hs] . k[T, hs]^T */
    gemm_serial(0, 1, T, T, hs, scale, q, (int)a->q_tstride, k, (int)a->kv_tstride, 0.0f, P, T);
    for (int t = 0; t < T; t++) {
        float *row = P + (long)t * T;
        int lo = attn_lo(a->row_start, b, t);
        float maxv = -INFINITY;
        for (int s = lo; s <= t; s++)
            if (row[s] > maxv) maxv = row[s];
        float inv = (float)(1.0 / exp_sum(row + lo, row + lo, t - lo + 1, maxv));
        for (int s = 0; s < lo; s++) row[s] = 0.0f;
        for (int s = lo; s <= t; s++) row[s] *= inv;
        for (int s = t + 1; s < T; s++) row[s] = 0.0f;
    }
    if (drop) {
        attention_drop_probs(drop, P, h, a->row_start, b, T, a->drop_p,
                             dropout_row_stream(a->drop_stream, a->drop_row_base + b));
        P = drop;
    }
    /* out[T, hs] = P[T, T] . v[T, hs] */
    float *o = a->out + (long)b * T * a->C + h * hs;
    gemm_serial(0, 0, T, hs, T, 1.0f, P, T, v, (int)a->kv_tstride, 0.0f, o, a->C);
}

static void attention_fwd_range(void *ctx, long begin, long end) {
    const AttnFwd *a = ctx;
    if (a->att && a->t0 == 0) {
        float *drop = NULL;
        if (a->drop_p > 0.0f) { /* pk_parallel_for runs at most one range per pool thread */
            int slot = __atomic_fetch_add(&((AttnFwd *)ctx)->next_slot, 1, __ATOMIC_RELAXED);
            drop = a->scratch + (size_t)(slot % a->n_slots) * a->Tq * a->Tq;
        }
        for (long bh = begin; bh < end; bh++) attention_fwd_gemm(a, bh, drop);
        return;
    }
    int NH = a->NH, hs = a->C / NH, Tk = a->t0 + a->Tq;
    float scale = 1.0f / sqrtf((float)hs);
    float *scratch = a->att ? NULL : malloc((size_t)Tk * sizeof(float));
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / NH), h = (int)(bh % NH);
        for (int tq = 0; tq < a->Tq; tq++) {
            int t = a->t0 + tq;
            const float *q = a->q + b * a->q_bstride + tq * a->q_tstride + h * hs;
            float *row = a->att ? a->att + ((bh * a->Tq) + tq) * (long)Tk : scratch;
            int lo = attn_lo(a->row_start, b, t);
            float maxv = -INFINITY;
            for (int s = lo; s <= t; s++) {
                const float *k = a->k + b * a->kv_bstride + s * a->kv_tstride + h * hs;
                float dot = dot_f(q, k, hs) * scale;
                row[s] = dot;
                if (dot > maxv) maxv = dot;
            }
            float inv = (float)(1.0 / exp_sum(row + lo, row + lo, t - lo + 1, maxv));
            if (a->att) {
                for (int s = 0; s < lo; s++) row[s] = 0.0f;
                for (int s = t + 1; s < Tk; s++) row[s] = 0.0f;
            }
            float *o = a->out + ((long)b * a->Tq + tq) * a->C + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.0f;
            for (int s = lo; s <= t; s++) {
                float p = row[s] * inv;
                row[s] = p;
                const float *v = a->v + b * a->kv_bstride + s * a->kv_tstride + h * hs;
                for (int i = 0; i < hs; i++) o[i] += p * v[i];
            }
        }
    }
    free(scratch);
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, long q_bstride,
                       long q_tstride, long kv_bstride, long kv_tstride, const int *row_start, int B, int t0, int Tq,
                       int C, int NH) {
    AttnFwd a = {out, att, q, k, v, q_bstride, q_tstride, kv_bstride, kv_tstride, row_start, B, t0, Tq, C, NH,
                 0.0f, 0, NULL, 0, 0, 0};
    pk_parallel_for(B * NH, attention_fwd_range, &a);
}

int attention_forward_dropout(float *out, float *att, const float *qkv, const int *row_start, int B, int T, int C,
                              int NH, float p, unsigned long long stream, long row_base) {
    long ts = 3L * C, bs = (long)T * ts;
    if (!(p > 0.0f)) {
        attention_forward(out, att, qkv, qkv + C, qkv + 2 * C, bs, ts, bs, ts, row_start, B, 0, T, C, NH);
        return 0;
    }
    int n_slots = pk_num_threads();
    float *scratch = malloc((size_t)n_slots * T * T * sizeof(float));
    if (!scratch) return -1;
    AttnFwd a = {out, att, qkv, qkv + C, qkv + 2 * C, bs, ts, bs, ts, row_start, B, 0, T, C, NH,
                 p, stream, scratch, n_slots, 0, row_base};
    pk_parallel_for(B * NH, attention_fwd_range, &a);
    free(scratch);
    return 0;
}

typedef struct {
    float *dqkv;
    const float *dout, *qkv, *att;
    const int *row_start;
    int B, T, C, NH;
    float *scratch;  /* n_slots x T x T: one d(scores) slice per range (2 T x T with dropout) */
    int n_slots, next_slot;
    float drop_p;    /* dropout of attention_forward_dropout, 0: none */
    uint64_t drop_stream;
    long drop_row_base;
} AttnBwd;

/* Backward of one (batch, head) with dropout on the probabilities, Pd = dropped P
 * (recomputed from the hash into the first T x T of `scratch`), dY = dout's head slice:
 *   dV += Pd^T . dY;  dPd = dY . V^T;  dP = mask * dPd / (1 - p);
 *   dS = P * (dP - rowsum(P * dP)) * scale = (Pd * dPd - P * rowsum(Pd * dPd)) * scale
 * (P * mask / (1 - p) is Pd, so the mask itself is not needed again);
 *   dQ += dS . K;  dK += dS^T . Q */
static void attention_bwd_dropout_one(const AttnBwd *a, long bh, float *scratch) {
    int NH = a->NH, T = a->T, C = a->C, C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int b = (int)(bh / NH), h = (int)(bh % NH);
    float *Pd = scratch, *dS = scratch + (size_t)T * T;
    const float *P = a->att + bh * (long)T * T;
    const float *dy = a->dout + (long)b * T * C + h * hs;
    const float *q = a->qkv + (long)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
    float *dq = a->dqkv + (long)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
    attention_drop_probs(Pd, P, h, a->row_start, b, T, a->drop_p, dropout_row_stream(a->drop_stream, a->drop_row_base + b));
    /* dv[T, hs] += Pd[T, T]^T . dy[T, hs] */
    gemm_serial(1, 0, T, hs, T, 1.0f, Pd, T, dy, C, 1.0f, dv, C3);
    /* dS[T, T] = dy[T, hs] . v[T, hs]^T (d Pd), then the dropout, softmax and scale backward in place */
    gemm_serial(0, 1, T, T, hs, 1.0f, dy, C, v, C3, 0.0f, dS, T);
    for (int t = 0; t < T; t++) {
        const float *p = P + (long)t * T, *pd = Pd + (long)t * T;
        float *d = dS + (long)t * T;
        int lo = attn_lo(a->row_start, b, t);
        float sum = 0.0f;
        for (int s = lo; s <= t; s++) sum += pd[s] * d[s];
        for (int s = 0; s < lo; s++) d[s] = 0.0f;
        for (int s = lo; s <= t; s++) d[s] = (pd[s] * d[s] - p[s] * sum) * scale;
        for (int s = t + 1; s < T; s++) d[s] = 0.0f;
    }
    /* dq[T, hs] += dS[T, T] . k[T, hs];  dk[T, hs] += dS[T, T]^T . q[T, hs] */
    gemm_serial(0, 0, T, hs, T, 1.0f, dS, T, k, C3, 1.0f, dq, C3);
    gemm_serial(1, 0, T, hs, T, 1.0f, dS, T, q, C3, 1.0f, dk, C3);
}

/* Per (batch, head), with P the kept probabilities, dY = dout's head slice and
 * dS = d(scores):
 *   dV += P^T . dY;  dP = dY . V^T;  dS = P * (dP - rowsum(P * dP)) * scale;
 *   dQ += dS . K;    dK += dS^T . Q
 * four serial sgemms; P and dS are zero outside each row's [lo, t] window. */
static void attention_bwd_range(void *ctx, long begin, long end) {
    const AttnBwd *a = ctx;
    int NH = a->NH, T = a->T, C = a->C, C3 = 3 * C, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    /* pk_parallel_for runs at most one range per pool thread, so slots never run out. */
    int slot = __atomic_fetch_add(&((AttnBwd *)ctx)->next_slot, 1, __ATOMIC_RELAXED);
    if (a->drop_p > 0.0f) {
        float *two = a->scratch + (size_t)(slot % a->n_slots) * 2 * T * T;
        for (long bh = begin; bh < end; bh++) attention_bwd_dropout_one(a, bh, two);
        return;
    }
    float *dS = a->scratch + (size_t)(slot % a->n_slots) * T * T;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / NH), h = (int)(bh % NH);
        const float *P = a->att + bh * (long)T * T;
        const float *dy = a->dout + (long)b * T * C + h * hs;
        const float *q = a->qkv + (long)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        float *dq = a->dqkv + (long)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
        /* dv[T, hs] += P[T, T]^T . dy[T, hs] */
        gemm_serial(1, 0, T, hs, T, 1.0f, P, T, dy, C, 1.0f, dv, C3);
        /* dS[T, T] = dy[T, hs] . v[T, hs]^T, then the softmax and scale backward in place */
        gemm_serial(0, 1, T, T, hs, 1.0f, dy, C, v, C3, 0.0f, dS, T);
        for (int t = 0; t < T; t++) {
            const float *p = P + (long)t * T;
            float *d = dS + (long)t * T;
            int lo = attn_lo(a->row_start, b, t);
            float sum = 0.0f;
            for (int s = lo; s <= t; s++) sum += p[s] * d[s];
            for (int s = 0; s < lo; s++) d[s] = 0.0f;
            for (int s = lo; s <= t; s++) d[s] = p[s] * (d[s] - sum) * scale;
            for (int s = t + 1; s < T; s++) d[s] = 0.0f;
        }
        /* dq[T, hs] += dS[T, T] . k[T, hs];  dk[T, hs] += dS[T, T]^T . q[T, hs] */
        gemm_serial(0, 0, T, hs, T, 1.0f, dS, T, k, C3, 1.0f, dq, C3);
        gemm_serial(1, 0, T, hs, T, 1.0f, dS, T, q, C3, 1.0f, dk, C3);
    }
}

int attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, const int *row_start,
                       int B, int T, int C, int NH) {
    int n_slots = pk_num_threads();
    float *scratch = malloc((size_t)n_slots * T * T * sizeof(float));
    if (!scratch) return -1;
    AttnBwd a = {dqkv, dout, qkv, att, row_start, B, T, C, NH, scratch, n_slots, 0, 0.0f, 0, 0};
    pk_parallel_for(B * NH, attention_bwd_range, &a);
    free(scratch);
    return 0;
}

int attention_backward_dropout(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const int *row_start, int B, int T, int C, int NH, float p, unsigned long long stream,
                               long row_base) {
    if (!(p > 0.0f)) return attention_backward(dqkv, dout, qkv, att, row_start, B, T, C, NH);
    int n_slots = pk_num_threads();
    float *scratch = malloc((size_t)n_slots * 2 * T * T * sizeof(float));
    if (!scratch) return -1;
    AttnBwd a = {dqkv, dout, qkv, att, row_start, B, T, C, NH, scratch, n_slots, 0, p, stream, row_base};
    pk_parallel_for(B * NH, attention_bwd_range, &a);
    free(scratch);
    return 0;
}

/* ------------------------------------------------------------------ softmax, cross-entropy */

typedef struct {
    float *probs;
    const float *logits;
    const int *targets;
    float *losses;
    float scale; /* 1 / number of targets */
    int V;
} SoftmaxJob;

static void softmax_range(void *ctx, long b, long e) {
    const SoftmaxJob *a = ctx;
    int V = a->V;
    for (long n = b; n < e; n++) {
        const float *x = a->logits + n * V;
        float *p = a->probs + n * V;
        float maxv = row_max(x, V);
        float inv = (float)(1.0 / exp_sum(p, x, V, maxv));
        for (int i = 0; i < V; i++) p[i] *= inv;
    }
}

void softmax_forward(float *probs, const float *logits, int N, int V) {
    SoftmaxJob a = {probs, logits, NULL, NULL, 0.0f, V};
    pk_parallel_for_grain(N, 1, softmax_range, &a);
}

static void crossentropy_range(void *ctx, long b, long e) {
    const SoftmaxJob *a = ctx;
    int V = a->V;
    for (long n = b; n < e; n++) {
        const float *x = a->logits + n * V;
        int target = a->targets[n];
        float *d = a->probs ? a->probs + n * V : NULL;
        if (target < 0) {
            if (d) memset(d, 0, (size_t)V * sizeof(float));
            a->losses[n] = 0.0f;
            continue;
        }
        float maxv = row_max(x, V);
        double sum = exp_sum(d, x, V, maxv);
        float logsum = (float)log(sum);
        a->losses[n] = logsum - (x[target] - maxv);
        if (d) {
            float k = (float)(a->scale / sum);
            for (int i = 0; i < V; i++) d[i] *= k;
            d[target] -= a->scale;
        }
    }
}

float crossentropy_softmax(const float *logits, const int *targets, float *losses, float *dlogits, int N, int V) {
    int count = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < -1 || targets[n] >= V) { /* not a token: no loss to report */
            if (dlogits) memset(dlogits, 0, (size_t)N * V * sizeof(float));
            if (losses) memset(losses, 0, (size_t)N * sizeof(float));
            return NAN;
        }
        count += targets[n] >= 0;
    }
    float *own = losses ? NULL : malloc((size_t)(N > 0 ? N : 1) * sizeof(float));
    float *l = losses ? losses : own;
    if (!l) return NAN;
    SoftmaxJob a = {dlogits, logits, targets, l, count ? 1.0f / count : 0.0f, V};
    pk_parallel_for_grain(N, 1, crossentropy_range, &a);
    double total = 0.0;
    for (int n = 0; n < N; n++) total += l[n];
    free(own);
    return count ? (float)(total / count) : 0.0f;
}
