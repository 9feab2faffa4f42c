/* The whole model on tiny random configs: gradients against finite differences,
 * KV-cache logits against the full forward, left padding, the input-only
 * backward, tied vs untied heads, activation growth and bad input. */
#include <string.h>

#include "common.h"
#include "gpt2.h"
#include "parallel.h"
#include "test.h"

static GPT2Config tiny_config(int tied) {
    GPT2Config c = {.max_seq_len = 16,
                    .vocab_size = 37,
                    .num_layers = 2,
                    .num_heads = 2,
                    .channels = 8,
                    .n_inner = 12, /* not 4C on purpose */
                    .layer_norm_eps = 1e-5f,
                    .tied_lm_head = tied,
                    .eos_token_id = 36,
                    .embd_pdrop = 0.1f,
                    .attn_pdrop = 0.1f,
                    .resid_pdrop = 0.1f};
    return c;
}

/* Random init at std 0.3 so gradients are large enough for fp32 central differences. */
static void build_tiny(GPT2 *m, int tied, unsigned long long seed) {
    char err[PK_ERR_LEN];
    GPT2Config c = tiny_config(tied);
    if (gpt2_build(m, &c, err)) {
        printf("    build failed: %s\n", err);
        exit(1);
    }
    gpt2_init_random(m, seed);
    PkRng r;
    pk_rng_seed(&r, seed + 7);
    for (size_t i = 0; i < m->num_parameters; i++) m->params_memory[i] += (float)(pk_rng_normal(&r) * 0.3);
}

static void fill_tokens(int *t, int n, int V, unsigned long long seed) {
    PkRng r;
    pk_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) t[i] = (int)pk_rng_below(&r, (uint64_t)V);
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* ---------------------------------------------------------------- full-model gradient check */
typedef struct {
    GPT2 *m;
    const int *tokens, *targets, *row_start;
    float *prompt;
    int P, B, T;
} ModelCtx;

static double model_loss(ModelCtx *c) {
    char err[PK_ERR_LEN];
    if (gpt2_forward(c->m, c->tokens, c->prompt, c->P, c->row_start, c->B, c->T, err)) return NAN;
    return gpt2_cross_entropy(c->m, c->targets, NULL);
}

static double fd_entry(ModelCtx *c, float *x, float h) {
    float keep = *x;
    *x = keep + h;
    double lp = model_loss(c);
    *x = keep - h;
    double lm = model_loss(c);
    *x = keep;
    return (lp - lm) / (2.0 * h);
}

static void model_gradient_check(int tied) {
    GPT2 m;
    build_tiny(&m, tied, 3);
    char err[PK_ERR_LEN];
    int B = 2, T = 7, P = 2, V = m.config.vocab_size, C = m.config.channels;
    int tokens[14], targets[14], row_start[2] = {0, 2};
    fill_tokens(tokens, B * T, V, 11);
    for (int i = 0; i < B * T; i++) targets[i] = (i % T == T - 1 || i % 5 == 1) ? -1 : tokens[(i + 1) % (B * T)];
    targets[T + 0] = targets[T + 1] = -1; /* row 1's padding slots have no target */
    PkRng r;
    pk_rng_seed(&r, 5);
    float prompt[16], dprompt[16] = {0};
    for (int i = 0; i < P * C; i++) prompt[i] = (float)pk_rng_normal(&r);
    ModelCtx c = {&m, tokens, targets, row_start, prompt, P, B, T};

    CHECK(gpt2_forward(&m, tokens, prompt, P, row_start, B, T, err) == PK_OK);
    float *dlogits = malloc((size_t)B * T * V * sizeof(float));
    gpt2_cross_entropy(&m, targets, dlogits);
    gpt2_zero_grad(&m);
    CHECK(gpt2_backward(&m, dlogits, dprompt, err) == PK_OK);
    CHECK(m.grads_memory != NULL);

    /* a few entries of every tensor, and every prompt entry */
    double diff2 = 0, ref2 = 0;
    int checked = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        size_t n = m.param_sizes[i];
        for (int k = 0; k < 4 && n; k++) {
            size_t j = (size_t)pk_rng_below(&r, n);
            if (i == 0 || i == 16) j = (size_t)tokens[k] * C + (size_t)k % C; /* rows that get gradient */
            if (i == 1) j = (size_t)k * C + 1;
            double num = fd_entry(&c, m.params[i] + j, 1e-2f);
            double d = num - m.grads[i][j];
            diff2 += d * d, ref2 += num * num, checked++;
        }
    }
    for (int j = 0; j < P * C; j++) {
        double num = fd_entry(&c, prompt + j, 1e-2f);
        double d = num - dprompt[j];
        diff2 += d * d, ref2 += num * num, checked++;
    }
    double rel = sqrt(diff2 / ref2);
    CHECK_MSG(rel < 5e-3, "model gradient relative error %g over %d entries", rel, checked);
    CHECK(ref2 > 1e-6); /* the check compared real gradients */
    free(dlogits);
    gpt2_free(&m);
}

static void test_model_gradients_tied(void) { model_gradient_check(1); }
static void test_model_gradients_untied(void) { model_gradient_check(0); }

/* ---------------------------------------------------------------- KV cache */
static void kv_case(int use_prompt, int use_padding) {
    GPT2 m;
    build_tiny(&m, 1, 4);
    char err[PK_ERR_LEN];
    int B = 3, T0 = 6, N = 5, T = T0 + N, V = m.config.vocab_size, C = m.config.channels;
    int P = use_prompt ? 2 : 0;
    int row_start[3] = {0, use_padding ? 3 : 0, use_padding ? 1 : 0};
    float prompt[16];
    for (int i = 0; i < P * C; i++) prompt[i] = 0.1f * (float)(i % 7) - 0.3f;
    int full[3 * 11];
    fill_tokens(full, B * T, V, 21);
    int prefix[3 * 6];
    for (int b = 0; b < B; b++) memcpy(prefix + b * T0, full + b * T, T0 * sizeof(int));

    GPT2KVCache *cache = NULL;
    CHECK(gpt2_kv_create(&m, B, T, &cache, err) == PK_OK);
    const float *logits;
    CHECK(gpt2_kv_prefill(cache, prefix, use_prompt ? prompt : NULL, P, use_padding ? row_start : NULL, T0, &logits,
                          err) == PK_OK);
    float *cached = malloc((size_t)N * B * V * sizeof(float));
    memcpy(cached, logits, (size_t)B * V * sizeof(float));
    for (int j = 1; j < N; j++) {
        int next[3];
        for (int b = 0; b < B; b++) next[b] = full[b * T + T0 + j - 1];
        CHECK(gpt2_kv_step(cache, next, &logits, err) == PK_OK);
        memcpy(cached + (size_t)j * B * V, logits, (size_t)B * V * sizeof(float));
    }
    CHECK(gpt2_kv_len(cache) == T0 + N - 1);
    /* the full forward over the same slots */
    int TF = T0 + N - 1, compact[3 * 10];
    for (int b = 0; b < B; b++) memcpy(compact + b * TF, full + b * T, TF * sizeof(int));
    CHECK(gpt2_forward(&m, compact, use_prompt ? prompt : NULL, P, use_padding ? row_start : NULL, B, T0 + N - 1, err) ==
          PK_OK);
    float worst = 0.0f;
    for (int j = 0; j < N; j++)
        for (int b = 0; b < B; b++)
            worst = fmaxf(worst, max_abs_diff(cached + ((size_t)j * B + b) * V,
                                              m.logits + ((size_t)b * (T0 + N - 1) + T0 - 1 + j) * V, (size_t)V));
    CHECK_MSG(worst < 1e-4f, "KV-cache logits differ from the full forward by %g", worst);
    gpt2_kv_free(cache);
    free(cached);
    gpt2_free(&m);
}

static void test_kv_cache_matches_forward(void) { kv_case(0, 0); }
static void test_kv_cache_matches_forward_soft_prompt(void) { kv_case(1, 0); }
static void test_kv_cache_matches_forward_left_padding(void) { kv_case(0, 1); }
static void test_kv_cache_matches_forward_prompt_and_padding(void) { kv_case(1, 1); }

/* ---------------------------------------------------------------- left padding */
static void test_left_padded_row_equals_unpadded(void) {
    GPT2 m;
    build_tiny(&m, 1, 5);
    char err[PK_ERR_LEN];
    int V = m.config.vocab_size, C = m.config.channels, T = 9, pad = 3, P = 2;
    float prompt[16];
    for (int i = 0; i < P * C; i++) prompt[i] = 0.05f * (float)i;
    int row[9];
    fill_tokens(row, T, V, 8);
    /* alone, unpadded */
    CHECK(gpt2_forward(&m, row, prompt, P, NULL, 1, T - pad, err) == PK_OK);
    float *alone = malloc((size_t)(T - pad) * V * sizeof(float));
    memcpy(alone, m.logits, (size_t)(T - pad) * V * sizeof(float));
    /* batched: row 0 left-padded by `pad` slots (ids there are junk), row 1 full length */
    int batch[18], rs[2] = {pad, 0};
    for (int t = 0; t < pad; t++) batch[t] = 12345; /* ignored: padding */
    memcpy(batch + pad, row, (T - pad) * sizeof(int));
    fill_tokens(batch + T, T, V, 9);
    CHECK(gpt2_forward(&m, batch, prompt, P, rs, 2, T, err) == PK_OK);
    CHECK(max_abs_diff(alone, m.logits + (size_t)pad * V, (size_t)(T - pad) * V) < 1e-5f);
    free(alone);
    gpt2_free(&m);
}

/* ---------------------------------------------------------------- input-only backward */
static void test_inputs_only_backward(void) {
    GPT2 m;
    build_tiny(&m, 1, 6);
    char err[PK_ERR_LEN];
    int B = 2, T = 8, P = 3, V = m.config.vocab_size, C = m.config.channels;
    int tokens[16], targets[16], rs[2] = {1, 0};
    fill_tokens(tokens, B * T, V, 3);
    for (int i = 0; i < B * T; i++) targets[i] = i % T >= P ? tokens[(i + 1) % 16] : -1;
    float prompt[24], dp_only[24] = {0}, dp_full[24] = {0};
    for (int i = 0; i < P * C; i++) prompt[i] = 0.02f * (float)(i % 11);
    float *dlogits = malloc((size_t)B * T * V * sizeof(float)), *dembed = calloc((size_t)B * T * C, sizeof(float));

    CHECK(gpt2_forward(&m, tokens, prompt, P, rs, B, T, err) == PK_OK);
    gpt2_cross_entropy(&m, targets, dlogits);
    CHECK(gpt2_backward_inputs_only(&m, dlogits, dp_only, dembed, err) == PK_OK);
    CHECK(m.grads_memory == NULL); /* never allocated by the frozen path */
    CHECK(gpt2_backward(&m, dlogits, dp_full, err) == PK_OK);
    CHECK(max_abs_diff(dp_only, dp_full, (size_t)P * C) < 1e-6f);
    float norm = 0;
    for (int i = 0; i < P * C; i++) norm += dp_full[i] * dp_full[i];
    CHECK(norm > 0);
    /* the prompt gradient is dembed of the prompt slots summed over rows */
    for (int p = 0; p < P; p++)
        for (int i = 0; i < C; i++)
            CHECK_NEAR(dembed[((size_t)0 * T + rs[0] + p) * C + i] + dembed[((size_t)1 * T + rs[1] + p) * C + i],
                       dp_only[p * C + i], 1e-6);
    /* and it leaves the weight gradients alone: a second input-only pass keeps them */
    float g0 = m.grads_memory[5];
    CHECK(gpt2_backward_inputs_only(&m, dlogits, dp_only, NULL, err) == PK_OK);
    CHECK(m.grads_memory[5] == g0);
    free(dlogits), free(dembed);
    gpt2_free(&m);
}

/* ---------------------------------------------------------------- tied vs untied */
static void test_tied_equals_untied_copy(void) {
    GPT2 tied, untied;
    build_tiny(&tied, 1, 8);
    char err[PK_ERR_LEN];
    GPT2Config c = tiny_config(0);
    CHECK(gpt2_build(&untied, &c, err) == PK_OK);
    CHECK(untied.param_sizes[16] == untied.param_sizes[0] && tied.param_sizes[16] == 0);
    /* same weights, the head a copy of wte */
    size_t off = 0;
    for (int i = 0; i < 16; i++) {
        memcpy(untied.params[i], tied.params_memory + off, tied.param_sizes[i] * sizeof(float));
        off += tied.param_sizes[i];
    }
    memcpy(untied.params[16], tied.params[0], tied.param_sizes[0] * sizeof(float));
    int B = 2, T = 6, V = c.vocab_size, tokens[12], targets[12];
    fill_tokens(tokens, B * T, V, 2);
    for (int i = 0; i < B * T; i++) targets[i] = tokens[(i + 1) % 12];
    float *d1 = malloc((size_t)B * T * V * sizeof(float)), *d2 = malloc((size_t)B * T * V * sizeof(float));
    CHECK(gpt2_forward(&tied, tokens, NULL, 0, NULL, B, T, err) == PK_OK);
    CHECK(gpt2_forward(&untied, tokens, NULL, 0, NULL, B, T, err) == PK_OK);
    CHECK(max_abs_diff(tied.logits, untied.logits, (size_t)B * T * V) < 1e-6f);
    float l1 = gpt2_cross_entropy(&tied, targets, d1), l2 = gpt2_cross_entropy(&untied, targets, d2);
    CHECK_NEAR(l1, l2, 1e-6);
    CHECK(gpt2_backward(&tied, d1, NULL, err) == PK_OK);
    CHECK(gpt2_backward(&untied, d2, NULL, err) == PK_OK);
    /* tied wte gradient = untied embedding gradient + untied head gradient */
    float worst = 0;
    for (size_t i = 0; i < tied.param_sizes[0]; i++)
        worst = fmaxf(worst, fabsf(tied.grads[0][i] - (untied.grads[0][i] + untied.grads[16][i])));
    CHECK(worst < 1e-6f);
    CHECK(max_abs_diff(tied.grads[4], untied.grads[4], tied.param_sizes[4]) < 1e-6f);
    free(d1), free(d2);
    gpt2_free(&tied);
    gpt2_free(&untied);
}

/* ---------------------------------------------------------------- activations, errors, params */
static void test_activation_growth(void) {
    GPT2 m;
    build_tiny(&m, 1, 9);
    char err[PK_ERR_LEN];
    int V = m.config.vocab_size, small[4], big[3 * 12];
    fill_tokens(small, 4, V, 1);
    fill_tokens(big, 36, V, 2);
    CHECK(gpt2_forward(&m, small, NULL, 0, NULL, 1, 4, err) == PK_OK);
    float *first = malloc(4 * (size_t)V * sizeof(float));
    memcpy(first, m.logits, 4 * (size_t)V * sizeof(float));
    CHECK(gpt2_forward(&m, big, NULL, 0, NULL, 3, 12, err) == PK_OK); /* grows */
    CHECK(m.B == 3 && m.T == 12);
    CHECK(gpt2_forward(&m, small, NULL, 0, NULL, 1, 4, err) == PK_OK); /* reuses */
    CHECK(max_abs_diff(first, m.logits, 4 * (size_t)V) == 0.0f);
    free(first);
    gpt2_free(&m);
}

static void test_bad_inputs_are_refused(void) {
    GPT2 m;
    build_tiny(&m, 1, 10);
    char err[PK_ERR_LEN];
    int tokens[20] = {0};
    tokens[3] = 37; /* == vocab */
    CHECK(gpt2_forward(&m, tokens, NULL, 0, NULL, 1, 5, err) == PK_FAIL);
    CHECK(strstr(err, "slot 3") != NULL);
    tokens[3] = 1;
    CHECK(gpt2_forward(&m, tokens, NULL, 0, NULL, 1, 17, err) == PK_FAIL); /* > n_positions */
    CHECK(strstr(err, "n_positions") != NULL);
    int rs[1] = {5};
    CHECK(gpt2_forward(&m, tokens, NULL, 0, rs, 1, 5, err) == PK_FAIL);
    GPT2 fresh;
    build_tiny(&fresh, 1, 10);
    float d[1] = {0};
    CHECK(gpt2_backward(&fresh, d, NULL, err) == PK_FAIL); /* no forward yet */
    GPT2KVCache *c;
    CHECK(gpt2_kv_create(&m, 1, 17, &c, err) == PK_FAIL);
    GPT2Config bad = tiny_config(1);
    bad.num_heads = 3;
    GPT2 b;
    CHECK(gpt2_build(&b, &bad, err) == PK_FAIL && strstr(err, "n_head") != NULL);
    gpt2_free(&fresh);
    gpt2_free(&m);
}

static void test_param_table(void) {
    GPT2Config c = tiny_config(1);
    GPT2ParamInfo info;
    gpt2_param_info(&c, 4, &info);
    CHECK(!strcmp(info.name, "h.%d.attn.c_attn.weight") && info.per_layer && info.ndim == 2);
    CHECK(info.shape[0] == 8 && info.shape[1] == 24 && info.numel == 2 * 8 * 24 && info.decay);
    gpt2_param_info(&c, 12, &info);
    CHECK(info.shape[0] == 12 && info.shape[1] == 8); /* mlp.c_proj [F, C] */
    gpt2_param_info(&c, 2, &info);
    CHECK(!info.decay && info.ndim == 1);
    gpt2_param_info(&c, 16, &info);
    CHECK(info.numel == 0);
    GPT2Config full = {1024, 50257, 12, 12, 768, 3072, 1e-5f, 1, 50256, 0.1f, 0.1f, 0.1f};
    double f = gpt2_train_flops(&full, 4, 64);
    double n_mm = 12.0 * 12 * 768 * 768 + 768.0 * 50257;
    CHECK_NEAR(f, 6 * n_mm * 256 + 6.0 * 4 * 12 * 768 * 64 * 65, 1.0);
    GPT2 m;
    char err[PK_ERR_LEN];
    CHECK(gpt2_build(&m, &full, err) == PK_OK);
    CHECK(m.num_parameters == 124439808); /* GPT-2 small */
    gpt2_free(&m);
}

int main(void) {
    pk_threads_init(2);
    RUN(test_model_gradients_tied);
    RUN(test_model_gradients_untied);
    RUN(test_kv_cache_matches_forward);
    RUN(test_kv_cache_matches_forward_soft_prompt);
    RUN(test_kv_cache_matches_forward_left_padding);
    RUN(test_kv_cache_matches_forward_prompt_and_padding);
    RUN(test_left_padded_row_equals_unpadded);
    RUN(test_inputs_only_backward);
    RUN(test_tied_equals_untied_copy);
    RUN(test_activation_growth);
    RUN(test_bad_inputs_are_refused);
    RUN(test_param_table);
    TEST_EXIT();
}
