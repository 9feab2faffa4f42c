/* AdamW against hand-computed updates (PyTorch's formula), clipping, the LR
 * schedule, and the model-wide step's decay rules. */
#include <string.h>

#include "common.h"
#include "gpt2.h"
#include "optim.h"
#include "parallel.h"
#include "test.h"

/* torch.optim.AdamW for one scalar, in double */
static void ref_adamw(double *p, double *m, double *v, double g, const AdamWParams *hp, int t, int decay) {
    if (decay) *p *= 1.0 - hp->lr * hp->weight_decay;
    *m = hp->beta1 * *m + (1 - hp->beta1) * g;
    *v = hp->beta2 * *v + (1 - hp->beta2) * g * g;
    double mhat = *m / (1 - pow(hp->beta1, t)), vhat = *v / (1 - pow(hp->beta2, t));
    *p -= hp->lr * mhat / (sqrt(vhat) + hp->eps);
}

static void adamw_case(int decay) {
    AdamWParams hp = {0.01f, 0.9f, 0.95f, 1e-8f, 0.1f};
    enum { N = 5 };
    float p[N] = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f}, m[N] = {0}, v[N] = {0};
    double rp[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++) rp[i] = p[i];
    float grads[3][N] = {{0.1f, -0.2f, 0.3f, 0.0f, 1.0f}, {0.5f, 0.5f, -0.1f, 0.2f, -1.0f}, {-0.3f, 0.1f, 0.0f, 0.4f, 2.0f}};
    for (int t = 1; t <= 3; t++) {
        adamw_step(p, grads[t - 1], m, v, N, &hp, t, decay);
        for (int i = 0; i < N; i++) ref_adamw(&rp[i], &rm[i], &rv[i], grads[t - 1][i], &hp, t, decay);
    }
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(p[i], rp[i], 1e-6);
        CHECK_NEAR(m[i], rm[i], 1e-7);
        CHECK_NEAR(v[i], rv[i], 1e-7);
    }
    /* first step with bias correction moves every parameter with a gradient by ~lr */
    float q[1] = {1.0f}, g[1] = {0.25f}, qm[1] = {0}, qv[1] = {0};
    adamw_step(q, g, qm, qv, 1, &hp, 1, decay);
    CHECK_NEAR(q[0], (decay ? 1.0 - hp.lr * hp.weight_decay : 1.0) - hp.lr, 1e-6);
}

static void test_adamw_no_decay(void) { adamw_case(0); }
static void test_adamw_decay(void) { adamw_case(1); }

static void test_adamw_large_parallel_matches_serial_formula(void) {
    AdamWParams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    size_t n = 300000;
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(i % 13) * 0.1f, g[i] = (float)((int)(i % 7) - 3) * 0.01f;
    adamw_step(p, g, m, v, n, &hp, 1, 1);
    int bad = 0;
    for (size_t i = 0; i < n; i += 997) {
        double rp = (float)(i % 13) * 0.1f, rm = 0, rv = 0;
        ref_adamw(&rp, &rm, &rv, g[i], &hp, 1, 1);
        bad += fabs(rp - p[i]) > 1e-6;
    }
    CHECK(bad == 0);
    free(p), free(g), free(m), free(v);
}

static void test_grad_clip(void) {
    float g[4] = {3.0f, 4.0f, 0.0f, 0.0f};
    CHECK_NEAR(grad_clip_global_norm(g, 4, 10.0f), 5.0, 1e-6);
    CHECK(g[0] == 3.0f && g[1] == 4.0f); /* below max: untouched */
    CHECK_NEAR(grad_clip_global_norm(g, 4, 1.0f), 5.0, 1e-6);
    CHECK_NEAR(g[0], 0.6, 1e-6);
    CHECK_NEAR(g[1], 0.8, 1e-6);
    CHECK_NEAR(grad_clip_global_norm(g, 4, 0.0f), 1.0, 1e-5); /* max_norm <= 0: measure only */
    CHECK_NEAR(g[0], 0.6, 1e-6);
    /* a long vector, split into blocks over the pool */
    size_t n = 1000003;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (i % 2) ? 1.0f : -1.0f;
    CHECK_NEAR(grad_clip_global_norm(x, n, 0.5f), sqrt((double)n), 1e-3 * sqrt((double)n) * 1e-3);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    CHECK_NEAR(sqrt(s), 0.5, 1e-4);
    free(x);
}

static void test_lr_schedule(void) {
    CHECK_NEAR(lr_schedule(1, 100, 5e-5f, 1000, 0), 5e-7, 1e-12);
    CHECK_NEAR(lr_schedule(50, 100, 5e-5f, 1000, 0), 2.5e-5, 1e-11);
    CHECK_NEAR(lr_schedule(100, 100, 5e-5f, 1000, 0), 5e-5, 1e-11);
    CHECK_NEAR(lr_schedule(700, 100, 5e-5f, 1000, 0), 5e-5, 1e-11);
    CHECK_NEAR(lr_schedule(3, 0, 1.0f, 10, 0), 1.0, 1e-7);
    /* cosine: full at the end of warm-up, half way down at the middle, 0 at the end */
    CHECK_NEAR(lr_schedule(10, 10, 1.0f, 110, 1), 1.0, 1e-6);
    CHECK_NEAR(lr_schedule(60, 10, 1.0f, 110, 1), 0.5, 1e-6);
    CHECK_NEAR(lr_schedule(110, 10, 1.0f, 110, 1), 0.0, 1e-6);
    CHECK_NEAR(lr_schedule(200, 10, 1.0f, 110, 1), 0.0, 1e-6);
}

/* A 2-layer GPT-2 over 11 tokens with seeded random weights. */
static int build_tiny_model(GPT2 *m, unsigned long long seed, char *err) {
    GPT2Config c = {16, 11, 2, 2, 8, 32, 1e-5f, 1, 10, 0.1f, 0.1f, 0.1f};
    if (gpt2_build(m, &c, err) != PK_OK) return PK_FAIL;
    gpt2_init_random(m, seed);
    return PK_OK;
}

/* Forward of tokens 1..4, cross-entropy against targets[4] (d: 4 x 11 scratch), full backward. */
static int tiny_backward(GPT2 *m, const int *targets, float *d, char *err) {
    static const int tokens[4] = {1, 2, 3, 4};
    if (gpt2_forward(m, tokens, NULL, 0, NULL, 1, 4, err) != PK_OK) return PK_FAIL;
    gpt2_cross_entropy(m, targets, d);
    return gpt2_backward(m, d, NULL, err);
}

static void test_model_step_decays_matrices_only(void) {
    GPT2 m;
    char err[PK_ERR_LEN];
    CHECK(build_tiny_model(&m, 1, err) == PK_OK);
    AdamWParams hp = {0.1f, 0.9f, 0.999f, 1e-8f, 0.5f};
    CHECK(gpt2_adamw_step(&m, &hp, 1, err) == PK_FAIL); /* no gradients yet */
    int targets[4] = {2, 3, 4, -1};
    float *d = malloc(4 * 11 * sizeof(float));
    CHECK(tiny_backward(&m, targets, d, err) == PK_OK);
    gpt2_zero_grad(&m); /* zero gradients: only the decay moves parameters */
    float w = m.params[4][3], ln = m.params[2][0], wte = m.params[0][5];
    CHECK(gpt2_adamw_step(&m, &hp, 1, err) == PK_OK);
    CHECK(m.m_memory != NULL && m.v_memory != NULL);
    CHECK_NEAR(m.params[4][3], w * (1 - 0.05), 1e-7);
    CHECK_NEAR(m.params[0][5], wte * (1 - 0.05), 1e-7);
    CHECK(m.params[2][0] == ln); /* LayerNorm weight: no decay */
    free(d);
    gpt2_free(&m);
}

/* gpt2_adamw_step leaves the gradients zero, so the next zero_grad can skip its
 * pass: the backward after it must accumulate from zero, exactly as after a real
 * zero_grad. */
static void test_model_step_consumes_gradients(void) {
    GPT2 m;
    char err[PK_ERR_LEN];
    CHECK(build_tiny_model(&m, 3, err) == PK_OK);
    AdamWParams hp = {0.01f, 0.9f, 0.999f, 1e-8f, 0.1f};
    int targets[4] = {2, 3, 4, 5};
    float *d = malloc(4 * 11 * sizeof(float));
    gpt2_zero_grad(&m);
    CHECK(tiny_backward(&m, targets, d, err) == PK_OK);
    CHECK(!m.grads_zero && gpt2_grad_norm(&m) > 0.0f);
    CHECK(gpt2_adamw_step(&m, &hp, 1, err) == PK_OK);
    CHECK(m.grads_zero);
    size_t nonzero = 0;
    for (size_t i = 0; i < m.num_parameters; i++) nonzero += m.grads_memory[i] != 0.0f;
    CHECK(nonzero == 0);
    /* step 2: zero_grad skips its pass; the gradient must be the step's own */
    gpt2_zero_grad(&m);
    CHECK(tiny_backward(&m, targets, d, err) == PK_OK);
    float *first = malloc(m.num_parameters * sizeof(float));
    memcpy(first, m.grads_memory, m.num_parameters * sizeof(float));
    gpt2_zero_grad(&m); /* after a backward: a real pass */
    CHECK(gpt2_backward(&m, d, NULL, err) == PK_OK);
    CHECK(memcmp(first, m.grads_memory, m.num_parameters * sizeof(float)) == 0);
    /* without a zero_grad, a second backward accumulates: twice the gradient */
    double norm = grad_clip_global_norm(first, m.num_parameters, 0.0f);
    CHECK(gpt2_backward(&m, d, NULL, err) == PK_OK);
    CHECK_NEAR(gpt2_grad_norm(&m), 2.0 * norm, 1e-5 * norm);
    free(first);
    free(d);
    gpt2_free(&m);
}

int main(void) {
    pk_threads_init(2);
    RUN(test_adamw_no_decay);
    RUN(test_adamw_decay);
    RUN(test_adamw_large_parallel_matches_serial_formula);
    RUN(test_grad_clip);
    RUN(test_lr_schedule);
    RUN(test_model_step_decays_matrices_only);
    RUN(test_model_step_consumes_gradients);
    TEST_EXIT();
}
