/* ExAccErr: the arithmetic on hand-built per-step errors, the errors against manual
 * teacher-forced forwards (with and without a soft prompt), and the "no exposure bias" cases. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "divergence.h"
#include "exposure.h"
#include "gpt2.h"
#include "sample.h"
#include "test.h"

static void test_curve_hand_built(void) {
    /* student means per step [2, 2, 2] -> R = [2, 4, 6]; oracle [1, 1, 2] -> l eps = [1, 2, 4] */
    double es[2 * 3] = {1, 2, 3, 3, 2, 1}, eo[1 * 3] = {1, 1, 2};
    double R[3], le[3], ex[3];
    char err[PK_ERR_LEN];
    CHECK(exposure_curve(es, 2, eo, 1, 3, R, le, ex, err) == PK_OK);
    double eR[3] = {2, 4, 6}, ele[3] = {1, 2, 4}, eex[3] = {100, 100, 50};
    for (int t = 0; t < 3; t++) {
        CHECK(R[t] == eR[t]);
        CHECK(le[t] == ele[t]);
        CHECK_NEAR(ex[t], eex[t], 1e-12);
    }
    /* a student that does better on its own samples than the oracle's: negative */
    double s2[2] = {0.5, 0.5}, o2[2] = {1.0, 1.0};
    double R2[2], le2[2], ex2[2];
    CHECK(exposure_curve(s2, 1, o2, 1, 2, R2, le2, ex2, err) == PK_OK);
    CHECK_NEAR(ex2[0], -50.0, 1e-12);
    CHECK_NEAR(ex2[1], -50.0, 1e-12);
    /* zero oracle error: 0 when R is 0 too, undefined (NaN) otherwise */
    double z[2] = {0, 0}, nz[2] = {0, 1};
    CHECK(exposure_curve(z, 1, z, 1, 2, R2, le2, ex2, err) == PK_OK);
    CHECK(ex2[0] == 0.0 && ex2[1] == 0.0);
    CHECK(exposure_curve(nz, 1, z, 1, 2, R2, le2, ex2, err) == PK_OK);
    CHECK(ex2[0] == 0.0 && isnan(ex2[1]));
    /* bad inputs */
    double bad[2] = {0, NAN};
    CHECK(exposure_curve(bad, 1, z, 1, 2, R2, le2, ex2, err) == PK_FAIL && strstr(err, "student sequence 1"));
    CHECK(exposure_curve(z, 0, z, 1, 2, R2, le2, ex2, err) == PK_FAIL);
    CHECK(exposure_curve(z, 1, z, 1, 0, R2, le2, ex2, err) == PK_FAIL);
}

static int tiny_model(GPT2 *m, unsigned long long seed, float sharpen) {
    GPT2Config cfg = {.max_seq_len = 48, .vocab_size = 48, .num_layers = 2, .num_heads = 2, .channels = 32,
                      .n_inner = 128, .layer_norm_eps = 1e-5f, .tied_lm_head = 1, .eos_token_id = 47,
                      .embd_pdrop = 0.1f, .attn_pdrop = 0.1f, .resid_pdrop = 0.1f};
    char err[PK_ERR_LEN];
    if (gpt2_build(m, &cfg, err)) {
        printf("    %s\n", err);
        return PK_FAIL;
    }
    gpt2_init_random(m, seed);
    for (size_t i = 0; i < m->param_sizes[0]; i++) m->params[0][i] *= sharpen;
    int scaled[2] = {4, 6};
    for (int j = 0; j < 2; j++)
        for (size_t i = 0; i < m->param_sizes[scaled[j]]; i++) m->params[scaled[j]][i] *= 10.0f;
    return PK_OK;
}

static void test_errors_match_manual_forward(void) {
    GPT2 a, b;
    if (tiny_model(&a, 1, 10.0f) || tiny_model(&b, 2, 10.0f)) {
        CHECK(0);
        return;
    }
    char err[PK_ERR_LEN];
    int p0[4] = {1, 2, 3, 4};
    const int *prompts[1] = {p0};
    int lens[1] = {4};
    int K = 2, L = 3, P = 2, V = 48, C = 32;
    float soft[2 * 32];
    PkRng r;
    pk_rng_seed(&r, 3);
    for (int i = 0; i < P * C; i++) soft[i] = (float)pk_rng_normal(&r);
    /* oracle T' = a with the soft prompt; student = b; samples from b */
    double e[2 * 3];
    CHECK(exposure_errors(&b, NULL, 0, &a, soft, P, &b, prompts, lens, 1, K, L, 77, 10, e, err) == PK_OK);
    /* regenerate the same samples: rows 10 and 11 of seed 77 */
    SampleOptions o;
    sample_options_plain(&o, -1, L);
    const int *rp[2] = {p0, p0};
    int rl[2] = {4, 4}, gen[2 * 3], gl[2];
    long idx[2] = {10, 11};
    CHECK(sample_generate(&b, rp, rl, 2, NULL, 0, &o, 77, idx, gen, gl, err) == PK_OK);
    float *pa = malloc((size_t)L * V * sizeof(float));
    for (int k = 0; k < K; k++) {
        int seq[2 + 4 + 3] = {0, 0, 1, 2, 3, 4, gen[k * 3], gen[k * 3 + 1], gen[k * 3 + 2]};
        CHECK(gpt2_forward(&a, seq, soft, P, NULL, 1, P + 4 + L - 1, err) == PK_OK);
        memcpy(pa, a.logits + (size_t)(P + 3) * V, (size_t)L * V * sizeof(float));
        CHECK(gpt2_forward(&b, seq + P, NULL, 0, NULL, 1, 4 + L - 1, err) == PK_OK);
        for (int t = 0; t < L; t++) {
            double want = div_row(DIV_FKL, 0.0f, pa + (size_t)t * V, b.logits + (size_t)(3 + t) * V, V);
            CHECK_NEAR(e[k * L + t], want, 1e-9 + 1e-6 * want);
            CHECK(want > 0.0);
        }
    }
    /* one network in both roles: T' (a + prompt) against T (a) is not zero; a against a is */
    double e2[2 * 3];
    CHECK(exposure_errors(&a, NULL, 0, &a, soft, P, &a, prompts, lens, 1, K, L, 5, 0, e2, err) == PK_OK);
    for (int i = 0; i < K * L; i++) CHECK(e2[i] > 0.0);
    CHECK(exposure_errors(&a, NULL, 0, &a, NULL, 0, &a, prompts, lens, 1, K, L, 5, 0, e2, err) == PK_OK);
    for (int i = 0; i < K * L; i++) CHECK(e2[i] == 0.0);
    /* a prompt that does not fit */
    int longp[46] = {0};
    const int *lp[1] = {longp};
    int ll[1] = {46};
    CHECK(exposure_errors(&b, NULL, 0, &a, NULL, 0, &b, lp, ll, 1, K, L, 5, 0, e2, err) == PK_FAIL &&
          strstr(err, "positions"));
    free(pa);
    gpt2_free(&a);
    gpt2_free(&b);
}

/* ExAccErr(L) and its standard error from per-sequence sums of e_t. */
static void exaccerr_with_se(const double *es, const double *eo, int n, int L, double *ex, double *se) {
    double ms = 0, mo = 0, vs = 0, vo = 0;
    for (int i = 0; i < n; i++) {
        double s = 0, o = 0;
        for (int t = 0; t < L; t++) {
            s += es[(size_t)i * L + t];
            o += eo[(size_t)i * L + t];
        }
        ms += s;
        mo += o;
        vs += s * s;
        vo += o * o;
    }
    ms /= n;
    mo /= n;
    vs = vs / n - ms * ms;
    vo = vo / n - mo * mo;
    *ex = (ms - mo) / mo * 100.0;
    *se = sqrt(vs / n + vo / n) / mo * 100.0;
}

static void test_no_exposure_bias_cases(void) {
    GPT2 t, s, x;
    if (tiny_model(&t, 11, 6.0f) || tiny_model(&s, 11, 6.0f) || tiny_model(&x, 12, 6.0f)) {
        CHECK(0);
        return;
    }
    char err[PK_ERR_LEN];
    int n_prompts = 4, K = 24, L = 10, n = n_prompts * K;
    int p[4][5] = {{1, 2, 3, 4, 5}, {9, 8, 7}, {20, 21, 22, 23}, {30, 5}};
    const int *prompts[4] = {p[0], p[1], p[2], p[3]};
    int lens[4] = {5, 3, 4, 2};
    double R[10], le[10], ex[10];
    /* 1. the student is the teacher: every e_t is exactly 0 and so is ExAccErr */
    CHECK(exposure_measure(&t, NULL, 0, &t, prompts, lens, n_prompts, K, L, 1, R, le, ex, err) == PK_OK);
    CHECK(R[L - 1] == 0.0 && le[L - 1] == 0.0 && ex[L - 1] == 0.0);

    /* 2. a student identical to the teacher up to a small perturbation: both expectations estimate
     *    nearly the same quantity, ExAccErr ~ 0 within sampling noise */
    PkRng r;
    pk_rng_seed(&r, 5);
    for (size_t i = 0; i < s.num_parameters; i++) s.params_memory[i] += 0.02f * (float)pk_rng_normal(&r);
    double *es = malloc((size_t)n * L * sizeof(double)), *eo = malloc((size_t)n * L * sizeof(double));
    CHECK(exposure_errors(&s, NULL, 0, &t, NULL, 0, &s, prompts, lens, n_prompts, K, L, 3, 0, es, err) == PK_OK);
    CHECK(exposure_errors(&t, NULL, 0, &t, NULL, 0, &s, prompts, lens, n_prompts, K, L, 3, n, eo, err) == PK_OK);
    double v, se;
    exaccerr_with_se(es, eo, n, L, &v, &se);
    printf("    perturbed student: ExAccErr(%d) = %.2f%% +- %.2f\n", L, v, se);
    CHECK(se > 0.0 && se < 25.0);
    CHECK_MSG(fabs(v) < 4.0 * se, "ExAccErr %.2f vs standard error %.2f", v, se);
    /* exposure_measure does exactly this */
    CHECK(exposure_measure(&t, NULL, 0, &s, prompts, lens, n_prompts, K, L, 3, R, le, ex, err) == PK_OK);
    CHECK_NEAR(ex[L - 1], v, 1e-9 * (1 + fabs(v)));

    /* 3. student and oracle samples from one distribution, errors against another model: R(l) and
     *    l eps(l) estimate the same expectation */
    CHECK(exposure_errors(&t, NULL, 0, &t, NULL, 0, &x, prompts, lens, n_prompts, K, L, 8, 0, es, err) == PK_OK);
    CHECK(exposure_errors(&t, NULL, 0, &t, NULL, 0, &x, prompts, lens, n_prompts, K, L, 8, n, eo, err) == PK_OK);
    exaccerr_with_se(es, eo, n, L, &v, &se);
    printf("    same sampler: ExAccErr(%d) = %.2f%% +- %.2f\n", L, v, se);
    CHECK(v != 0.0); /* independent samples, not the same ones */
    CHECK(se > 0.0 && se < 25.0);
    CHECK_MSG(fabs(v) < 4.0 * se, "ExAccErr %.2f vs standard error %.2f", v, se);
    free(es);
    free(eo);
    gpt2_free(&t);
    gpt2_free(&s);
    gpt2_free(&x);
}

int main(void) {
    RUN(test_curve_hand_built);
    RUN(test_errors_match_manual_forward);
    RUN(test_no_exposure_bias_cases);
    TEST_EXIT();
}
