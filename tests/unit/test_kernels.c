/* Kernels against finite differences (central, loss accumulated in double) and
 * the pool-split GEMM against a naive product. Shapes are small: this runs in well
 * under a second. */
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "parallel.h"
#include "test.h"

static PkRng rng;

static float *rand_vec(size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(pk_rng_normal(&rng) * scale);
    return x;
}

static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* loss = sum(out * w) in double */
static double dot_loss(const float *out, const float *w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
    return s;
}

typedef double (*LossFn)(void *ctx);

/* Relative L2 error between the analytic gradient of x and central differences
 * of f over every entry of x (x[n] is perturbed in place and restored). */
static double fd_rel_error(float *x, size_t n, const float *analytic, LossFn f, void *ctx, float h) {
    double diff2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double d = num - analytic[i];
        diff2 += d * d;
        ref2 += num * num;
    }
    return sqrt(diff2 / (ref2 > 0 ? ref2 : 1e-30));
}

#define FD_TOL 3e-3

/* ---------------------------------------------------------------- layernorm */
typedef struct {
    float *out, *inp, *w, *b, *dw;
    int N, C;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *c = p;
    layernorm_forward(c->out, NULL, NULL, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
    return dot_loss(c->out, c->dw, (size_t)c->N * c->C);
}

static void test_layernorm_gradients(void) {
    int N = 5, C = 12;
    LnCtx c = {zeros(N * C), rand_vec(N * C, 1.0f), rand_vec(C, 1.0f), rand_vec(C, 1.0f), rand_vec(N * C, 1.0f), N, C};
    float *mean = zeros(N), *rstd = zeros(N), *dinp = rand_vec(N * C, 1.0f), *dw = zeros(C), *db = zeros(C);
    float *dinp0 = malloc(N * C * sizeof(float));
    memcpy(dinp0, dinp, N * C * sizeof(float));
    layernorm_forward(c.out, mean, rstd, c.inp, c.w, c.b, N, C, 1e-5f);
    /* forward: every row normalised to mean b, and the kept statistics are right */
    double m0 = 0;
    for (int i = 0; i < C; i++) m0 += c.inp[i];
    CHECK_NEAR(mean[0], m0 / C, 1e-5);
    layernorm_backward(dinp, dw, db, c.dw, c.inp, c.w, mean, rstd, N, C);
    for (int i = 0; i < N * C; i++) dinp[i] -= dinp0[i]; /* backward accumulates */
    CHECK(fd_rel_error(c.inp, N * C, dinp, ln_loss, &c, 1e-2f) < FD_TOL);
    CHECK(fd_rel_error(c.w, C, dw, ln_loss, &c, 1e-2f) < FD_TOL);
    CHECK(fd_rel_error(c.b, C, db, ln_loss, &c, 1e-2f) < FD_TOL);
    /* frozen: NULL parameter gradients are skipped */
    layernorm_backward(dinp, NULL, NULL, c.dw, c.inp, c.w, mean, rstd, N, C);
    free(c.out), free(c.inp), free(c.w), free(c.b), free(c.dw), free(mean), free(rstd), free(dinp), free(dw), free(db);
    free(dinp0);
}

/* ---------------------------------------------------------------- matmul */
typedef struct {
    float *out, *inp, *w, *b, *dout;
    int N, C, OC;
} MmCtx;

static double mm_loss(void *p) {
    MmCtx *c = p;
    matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot_loss(c->out, c->dout, (size_t)c->N * c->OC);
}

static void test_matmul_gradients(void) {
    int N = 6, C = 7, OC = 5;
    MmCtx c = {zeros(N * OC), rand_vec(N * C, 1.0f), rand_vec(C * OC, 1.0f), rand_vec(OC, 1.0f),
               rand_vec(N * OC, 1.0f), N, C, OC};
    float *dinp = zeros(N * C), *dw = zeros(C * OC), *db = zeros(OC);
    matmul_backward(dinp, dw, db, c.dout, c.inp, c.w, N, C, OC);
    CHECK(fd_rel_error(c.inp, N * C, dinp, mm_loss, &c, 1e-2f) < FD_TOL);
    CHECK(fd_rel_error(c.w, C * OC, dw, mm_loss, &c, 1e-2f) < FD_TOL);
    CHECK(fd_rel_error(c.b, OC, db, mm_loss, &c, 1e-2f) < FD_TOL);
    /* accumulation: a second backward doubles every gradient */
    float w0 = dw[3];
    matmul_backward(dinp, dw, db, c.dout, c.inp, c.w, N, C, OC);
    CHECK_NEAR(dw[3], 2 * w0, 1e-5);
    free(c.out), free(c.inp), free(c.w), free(c.b), free(c.dout), free(dinp), free(dw), free(db);
}

/* Every transpose combination, split over the pool or not, and the sgemv path. */
static void test_sgemm_against_naive(void) {
    int shapes[][3] = {{1, 300, 40}, {1, 5000, 40}, {300, 1, 40}, {130, 260, 70}, {257, 1000, 33}, {3, 2000, 129},
                      {40, 24, 9000} /* split over K */, {50, 100, 1300} /* over K, a short last part */,
                      {200, 150, 600} /* over K, K just above M */,
                      {3, 4100, 520} /* few rows: pk_sgemm_small_m */};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                float *A = rand_vec((size_t)M * K, 1.0f), *B = rand_vec((size_t)K * N, 1.0f);
                float *C = rand_vec((size_t)M * N, 1.0f), *ref = malloc((size_t)M * N * sizeof(float));
                float beta = (ta + tb) % 2 ? 1.0f : 0.0f;
                int lda = ta ? M : K, ldb = tb ? K : N;
                double maxerr = 0.0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double acc = beta * C[(size_t)i * N + j];
                        for (int k = 0; k < K; k++) {
                            float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                            float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                            acc += 0.5 * a * b;
                        }
                        ref[(size_t)i * N + j] = (float)acc;
                    }
                pk_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, beta, C, N);
                for (size_t i = 0; i < (size_t)M * N; i++) {
                    double e = fabs(C[i] - ref[i]);
                    if (e > maxerr) maxerr = e;
                }
                CHECK_MSG(maxerr < 1e-3, "M=%d N=%d K=%d ta=%d tb=%d err %g", M, N, K, ta, tb, maxerr);
                free(A), free(B), free(C), free(ref);
            }
    }
}

/* Split over K, the parts go to whichever thread is free, but each has its own
 * partial sum, added in a fixed order: the same bits every time. */
static void test_sgemm_split_k_is_deterministic(void) {
    int M = 64, N = 96, K = 2000;
    float *A = rand_vec((size_t)M * K, 1.0f), *B = rand_vec((size_t)K * N, 1.0f);
    float *first = malloc((size_t)M * N * sizeof(float)), *C = malloc((size_t)M * N * sizeof(float));
    pk_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, first, N);
    int differ = 0;
    for (int r = 0; r < 30; r++) {
        pk_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        differ += memcmp(first, C, (size_t)M * N * sizeof(float)) != 0;
    }
    CHECK(differ == 0);
    free(A), free(B), free(first), free(C);
}

/* ---------------------------------------------------------------- gelu, residual */
typedef struct {
    float *out, *inp, *inp2, *dout;
    long n;
} EwCtx;

static double gelu_loss(void *p) {
    EwCtx *c = p;
    gelu_forward(c->out, c->inp, c->n);
    return dot_loss(c->out, c->dout, (size_t)c->n);
}

/* The few-rows kernel against a naive product: every M up to PK_SMALL_M (and one
 * beyond, which falls back), both layouts of B, odd sizes, row strides wider than
 * K, beta 0 over NaN garbage and beta 1, one column and a split over the pool. */
static void test_sgemm_small_m_against_naive(void) {
    int shapes[][2] = {{1, 1}, {7, 3}, {37, 19}, {130, 64}, {3000, 77}, {4100, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int M = 1; M <= PK_SMALL_M + 1; M++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta_one = 0; beta_one < 2; beta_one++) {
                    int N = shapes[s][0], K = shapes[s][1];
                    int lda = K + 3, ldb = tb ? K + 5 : N + 2, ldc = N + 1;
                    float *A = rand_vec((size_t)M * lda, 1.0f), *B = rand_vec((size_t)(tb ? N : K) * ldb, 1.0f);
                    float *C = rand_vec((size_t)M * ldc, 1.0f), *ref = malloc((size_t)M * ldc * sizeof(float));
                    float beta = beta_one ? 1.0f : 0.0f;
                    if (!beta_one) C[0] = NAN; /* beta 0 must not read C */
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double acc = 0.0;
                            for (int k = 0; k < K; k++) {
                                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                                acc += (double)A[(size_t)i * lda + k] * b;
                            }
                            ref[(size_t)i * ldc + j] = (float)(0.5 * acc + (beta_one ? C[(size_t)i * ldc + j] : 0.0));
                        }
                    pk_sgemm_small_m(tb, M, N, K, 0.5f, A, lda, B, ldb, beta, C, ldc);
                    double maxerr = 0.0;
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double e = fabs(C[(size_t)i * ldc + j] - ref[(size_t)i * ldc + j]);
                            if (isnan(e) || e > maxerr) maxerr = isnan(e) ? INFINITY : e;
                        }
                    CHECK_MSG(maxerr < 1e-4, "M=%d N=%d K=%d tb=%d beta=%g err %g", M, N, K, tb, beta, maxerr);
                    free(A), free(B), free(C), free(ref);
                }
}

static void test_gelu_gradients(void) {
    long n = 64;
    EwCtx c = {zeros(n), rand_vec(n, 2.5f), NULL, rand_vec(n, 1.0f), n};
    c.inp[0] = 0.0f, c.inp[1] = 12.0f, c.inp[2] = -12.0f;
    float *dinp = zeros(n);
    gelu_forward(c.out, c.inp, n);
    /* the tanh form against libm */
    double maxerr = 0.0;
    for (long i = 0; i < n; i++) {
        double x = c.inp[i], ref = 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        double e = fabs(c.out[i] - ref) / (1.0 + fabs(ref));
        if (e > maxerr) maxerr = e;
    }
    CHECK_MSG(maxerr < 1e-6, "gelu error %g", maxerr);
    CHECK_NEAR(c.out[1], 12.0, 1e-5);
    CHECK_NEAR(c.out[2], 0.0, 1e-6);
    gelu_backward(dinp, c.inp, c.dout, n);
    CHECK(fd_rel_error(c.inp, n, dinp, gelu_loss, &c, 1e-2f) < FD_TOL);
    /* the in-place form gives the same gradient, overwriting its input */
    float *inplace = malloc((size_t)n * sizeof(float));
    memcpy(inplace, c.dout, (size_t)n * sizeof(float));
    gelu_backward_inplace(inplace, c.inp, n);
    double maxdiff = 0.0;
    for (long i = 0; i < n; i++) maxdiff = fmax(maxdiff, fabs(inplace[i] - dinp[i]));
    CHECK_MSG(maxdiff < 1e-6, "in-place gelu backward differs by %g", maxdiff);
    free(inplace);
    free(c.out), free(c.inp), free(c.dout), free(dinp);
}

static double residual_loss(void *p) {
    EwCtx *c = p;
    residual_forward(c->out, c->inp, c->inp2, c->n);
    return dot_loss(c->out, c->dout, (size_t)c->n);
}

static void test_residual_gradients(void) {
    long n = 40;
    EwCtx c = {zeros(n), rand_vec(n, 1.0f), rand_vec(n, 1.0f), rand_vec(n, 1.0f), n};
    float *da = zeros(n), *db = zeros(n);
    residual_backward(da, db, c.dout, n);
    CHECK(fd_rel_error(c.inp, n, da, residual_loss, &c, 1e-2f) < FD_TOL);
    CHECK(fd_rel_error(c.inp2, n, db, residual_loss, &c, 1e-2f) < FD_TOL);
    free(c.out), free(c.inp), free(c.inp2), free(c.dout), free(da), free(db);
}

/* ---------------------------------------------------------------- attention */
typedef struct {
    float *out, *att, *qkv, *dout;
    const int *row_start;
    int B, T, C, NH;
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    long s = 3L * c->C;
    attention_forward(c->out, c->att, c->qkv, c->qkv + c->C, c->qkv + 2 * c->C, c->T * s, s, c->T * s, s, c->row_start,
                      c->B, 0, c->T, c->C, c->NH);
    /* padding queries carry no loss, as their outputs are never used */
    double l = 0.0;
    for (int b = 0; b < c->B; b++)
        for (int t = c->row_start ? c->row_start[b] : 0; t < c->T; t++)
            l += dot_loss(c->out + ((size_t)b * c->T + t) * c->C, c->dout + ((size_t)b * c->T + t) * c->C,
                          (size_t)c->C);
    return l;
}

static void attention_case_T(const int *row_start, int T) {
    int B = 2, C = 8, NH = 2;
    AttCtx c = {zeros(B * T * C), zeros(B * NH * T * T), rand_vec(B * T * 3 * C, 1.0f), rand_vec(B * T * C, 1.0f),
                row_start, B, T, C, NH};
    if (row_start) /* padding queries get no gradient from the loss */
        for (int b = 0; b < B; b++)
            for (int t = 0; t < row_start[b]; t++) memset(c.dout + ((size_t)b * T + t) * C, 0, C * sizeof(float));
    att_loss(&c);
    /* causal: each probability row sums to 1 and is zero in the future and the padding */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *row = c.att + ((size_t)(b * NH + 1) * T + t) * T;
            double sum = 0;
            for (int s = 0; s < T; s++) sum += row[s];
            CHECK_NEAR(sum, 1.0, 1e-5);
            if (t + 1 < T) CHECK(row[t + 1] == 0.0f);
            int rs = row_start ? row_start[b] : 0;
            if (t >= rs && rs > 0) CHECK(row[rs - 1] == 0.0f);
        }
    float *dqkv = zeros(B * T * 3 * C);
    attention_backward(dqkv, c.dout, c.qkv, c.att, row_start, B, T, C, NH);
    double e = fd_rel_error(c.qkv, B * T * 3 * C, dqkv, att_loss, &c, 1e-2f);
    CHECK_MSG(e < FD_TOL, "attention gradient error %g", e);
    free(c.out), free(c.att), free(c.qkv), free(c.dout), free(dqkv);
}

static void attention_case(const int *row_start) { attention_case_T(row_start, 5); }

static void test_attention_gradients(void) { attention_case(NULL); }

/* one position per row: every product in the sgemm path degenerates to M = 1 */
static void test_attention_gradients_single_position(void) { attention_case_T(NULL, 1); }

/* The training path (probabilities kept: per-head sgemms) and the decoding path
 * (no probabilities: a loop over visible keys) compute the same outputs, with and
 * without left padding, at a length that is no multiple of any micro-kernel tile. */
static void test_attention_sgemm_path_matches_loop(void) {
    int B = 3, T = 37, C = 24, NH = 3;
    long s = 3L * C;
    int rs[3] = {0, 5, 36};
    for (int pad = 0; pad < 2; pad++) {
        float *qkv = rand_vec(B * T * 3 * C, 1.0f), *with_att = zeros(B * T * C), *loop = zeros(B * T * C);
        float *att = zeros(B * NH * T * T);
        const int *row_start = pad ? rs : NULL;
        attention_forward(with_att, att, qkv, qkv + C, qkv + 2 * C, T * s, s, T * s, s, row_start, B, 0, T, C, NH);
        attention_forward(loop, NULL, qkv, qkv + C, qkv + 2 * C, T * s, s, T * s, s, row_start, B, 0, T, C, NH);
        double maxerr = 0;
        for (int i = 0; i < B * T * C; i++) {
            double e = fabs(with_att[i] - loop[i]);
            if (e > maxerr) maxerr = e;
        }
        CHECK_MSG(maxerr < 1e-5, "sgemm path vs loop path (padding %d): max error %g", pad, maxerr);
        free(qkv), free(with_att), free(loop), free(att);
    }
}

static void test_attention_gradients_left_padding(void) {
    int rs[2] = {2, 0};
    attention_case(rs);
}

/* A block of queries against cached keys equals the same queries in one pass. */
static void test_attention_query_block_matches_full(void) {
    int B = 2, T = 6, C = 8, NH = 2, t0 = 4;
    float *qkv = rand_vec(B * T * 3 * C, 1.0f), *full = zeros(B * T * C), *part = zeros(B * (T - t0) * C);
    int rs[2] = {0, 1};
    long s = 3L * C;
    attention_forward(full, NULL, qkv, qkv + C, qkv + 2 * C, T * s, s, T * s, s, rs, B, 0, T, C, NH);
    attention_forward(part, NULL, qkv + t0 * s, qkv + C, qkv + 2 * C, T * s, s, T * s, s, rs, B, t0, T - t0, C, NH);
    double maxerr = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T - t0; j++)
            for (int i = 0; i < C; i++) {
                double e = fabs(full[((size_t)b * T + t0 + j) * C + i] - part[((size_t)b * (T - t0) + j) * C + i]);
                if (e > maxerr) maxerr = e;
            }
    CHECK(maxerr < 1e-6);
    free(qkv), free(full), free(part);
}

/* ---------------------------------------------------------------- softmax, cross-entropy */
typedef struct {
    float *logits;
    const int *targets;
    int N, V;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    return crossentropy_softmax(c->logits, c->targets, NULL, NULL, c->N, c->V);
}

static void test_crossentropy_gradients(void) {
    int N = 4, V = 11;
    int targets[4] = {3, -1, 0, 10};
    CeCtx c = {rand_vec(N * V, 2.0f), targets, N, V};
    float *d = rand_vec(N * V, 1.0f), losses[4];
    float loss = crossentropy_softmax(c.logits, targets, losses, d, N, V);
    /* against a double-precision log-sum-exp */
    double ref = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        double mx = -1e30, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, c.logits[n * V + v]);
        for (int v = 0; v < V; v++) s += exp(c.logits[n * V + v] - mx);
        ref += log(s) + mx - c.logits[n * V + targets[n]];
    }
    CHECK_NEAR(loss, ref / 3, 1e-5);
    CHECK(losses[1] == 0.0f);
    for (int v = 0; v < V; v++) CHECK(d[V + v] == 0.0f); /* no target: no gradient, overwritten */
    CHECK(fd_rel_error(c.logits, N * V, d, ce_loss, &c, 1e-2f) < FD_TOL);
    int bad[4] = {3, 11, 0, 1}; /* 11 == V */
    CHECK(isnan(crossentropy_softmax(c.logits, bad, NULL, d, N, V)));
    CHECK(d[0] == 0.0f && d[N * V - 1] == 0.0f);
    int none[4] = {-1, -1, -1, -1};
    CHECK(crossentropy_softmax(c.logits, none, NULL, d, N, V) == 0.0f);
    free(c.logits), free(d);
}

static void test_softmax_forward(void) {
    int N = 3, V = 50257;
    float *x = rand_vec((size_t)N * V, 3.0f), *p = zeros((size_t)N * V);
    x[5] = 80.0f; /* large logits stay finite */
    softmax_forward(p, x, N, V);
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int v = 0; v < V; v++) s += p[(size_t)n * V + v];
        CHECK_NEAR(s, 1.0, 1e-4);
    }
    CHECK(p[5] > 0.99f);
    double r = exp((double)x[V + 7] - x[V + 8]);
    CHECK_NEAR(p[V + 7] / p[V + 8], r, 1e-5 * r);
    free(x), free(p);
}

int main(void) {
    pk_threads_init(2);
    pk_rng_seed(&rng, 42);
    RUN(test_layernorm_gradients);
    RUN(test_matmul_gradients);
    RUN(test_sgemm_against_naive);
    RUN(test_sgemm_split_k_is_deterministic);
    RUN(test_sgemm_small_m_against_naive);
    RUN(test_gelu_gradients);
    RUN(test_residual_gradients);
    RUN(test_attention_gradients);
    RUN(test_attention_gradients_left_padding);
    RUN(test_attention_gradients_single_position);
    RUN(test_attention_sgemm_path_matches_loop);
    RUN(test_attention_query_block_matches_full);
    RUN(test_crossentropy_gradients);
    RUN(test_softmax_forward);
    TEST_EXIT();
}
