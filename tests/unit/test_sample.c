/* Sampling filters on hand-built logits, sampling frequencies, per-row RNG streams, batched
 * KV-cache generation against full forwards, batch-size independence, the scoring layout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gpt2.h"
#include "safetensors.h"
#include "sample.h"
#include "test.h"

static SampleOptions opts_sampling(void) {
    SampleOptions o;
    sample_options_plain(&o, -1, 16);
    return o;
}

/* survivors of sample_process_logits as a bit mask over V <= 32 */
static unsigned kept_mask(const SampleOptions *o, const float *logits, int V, const int *hist, int nh) {
    float s[32];
    int ids[32];
    sample_process_logits(o, logits, V, hist, nh, s, ids);
    unsigned m = 0;
    for (int v = 0; v < V; v++)
        if (s[v] > -INFINITY) m |= 1u << v;
    return m;
}

static void test_greedy_lowest_id_on_ties_no_draw(void) {
    float logits[5] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
    SampleOptions o = opts_sampling();
    o.greedy = 1;
    o.temperature = 0.0f; /* ignored when greedy */
    char err[PK_ERR_LEN];
    CHECK(sample_options_check(&o, 5, err) == PK_OK);
    SampleScratch sc;
    CHECK(sample_scratch_init(&sc, 5, err) == PK_OK);
    PkRng r, r0;
    pk_rng_seed(&r, 7);
    r0 = r;
    CHECK(sample_next_token(&o, logits, 5, NULL, 0, &r, &sc) == 1);
    CHECK(memcmp(&r, &r0, sizeof r) == 0); /* greedy draws nothing */
    /* a banned argmax gives way to the next best */
    o.no_repeat_ngram_size = 1;
    int hist[1] = {1};
    CHECK(sample_next_token(&o, logits, 5, hist, 1, &r, &sc) == 3);
    sample_scratch_free(&sc);
}

static void test_temperature_scales_scores(void) {
    float logits[4] = {1.0f, -2.0f, 0.5f, 4.0f}, s[4];
    int ids[4];
    SampleOptions o = opts_sampling();
    o.temperature = 0.5f;
    sample_process_logits(&o, logits, 4, NULL, 0, s, ids);
    for (int v = 0; v < 4; v++) CHECK_NEAR(s[v], logits[v] / 0.5f, 1e-6);
    char err[PK_ERR_LEN];
    o.temperature = 0.0f;
    CHECK(sample_options_check(&o, 4, err) == PK_FAIL && strstr(err, "temperature"));
    o.temperature = 1.0f;
    o.top_p = 1.5f;
    CHECK(sample_options_check(&o, 4, err) == PK_FAIL && strstr(err, "top_p"));
    o.top_p = 1.0f;
    o.eos_id = 4;
    CHECK(sample_options_check(&o, 4, err) == PK_FAIL && strstr(err, "eos_id"));
}

static void test_top_k(void) {
    SampleOptions o = opts_sampling();
    float a[5] = {1.0f, 5.0f, 3.0f, 5.0f, 2.0f};
    o.top_k = 2;
    CHECK(kept_mask(&o, a, 5, NULL, 0) == ((1u << 1) | (1u << 3)));
    o.top_k = 3;
    CHECK(kept_mask(&o, a, 5, NULL, 0) == ((1u << 1) | (1u << 2) | (1u << 3)));
    o.top_k = 1;
    CHECK(kept_mask(&o, a, 5, NULL, 0) == ((1u << 1) | (1u << 3))); /* tie at the k-th value: both kept (HF) */
    float b[4] = {4.0f, 4.0f, 4.0f, 1.0f};
    o.top_k = 2;
    CHECK(kept_mask(&o, b, 4, NULL, 0) == 0x7u);
    o.top_k = 10; /* k >= V: everything */
    CHECK(kept_mask(&o, a, 5, NULL, 0) == 0x1Fu);
    o.top_k = 0;
    CHECK(kept_mask(&o, a, 5, NULL, 0) == 0x1Fu);
    /* top-k applies after temperature (order does not matter for k) and after bans */
    o.top_k = 1;
    o.no_repeat_ngram_size = 1;
    int hist[2] = {1, 3};
    CHECK(kept_mask(&o, a, 5, hist, 2) == (1u << 2));
}

static void test_top_p(void) {
    SampleOptions o = opts_sampling();
    float pr[4] = {0.5f, 0.3f, 0.15f, 0.05f}, a[4];
    for (int v = 0; v < 4; v++) a[v] = logf(pr[v]);
    o.top_p = 0.45f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x1u);
    o.top_p = 0.75f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x3u);
    o.top_p = 0.85f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x7u);
    o.top_p = 0.99f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0xFu);
    o.top_p = 1.0f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0xFu);
    o.top_p = 0.0f; /* always at least one token */
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x1u);
    o.top_p = -3.0f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x1u);
    /* ties: equal scores rank lower id first */
    float z[4] = {0, 0, 0, 0};
    o.top_p = 0.6f;
    CHECK(kept_mask(&o, z, 4, NULL, 0) == 0x7u);
    float t[4] = {0, 1, 0, 1};
    o.top_p = 0.3f;
    CHECK(kept_mask(&o, t, 4, NULL, 0) == (1u << 1));
    o.top_p = 0.5f;
    CHECK(kept_mask(&o, t, 4, NULL, 0) == ((1u << 1) | (1u << 3)));
    o.top_p = 0.8f; /* probabilities .366 .366 .134 .134: the third (id 0) is still needed */
    CHECK(kept_mask(&o, t, 4, NULL, 0) == ((1u << 1) | (1u << 3) | 1u));
    /* top-p after top-k renormalises over the k survivors: {0.5, 0.3} -> {0.625, 0.375} */
    o.top_k = 2;
    o.top_p = 0.6f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x1u);
    o.top_p = 0.65f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x3u);
    /* temperature changes the probabilities top-p sees: T = 100 flattens to ~uniform */
    o.top_k = 0;
    o.temperature = 100.0f;
    o.top_p = 0.6f;
    CHECK(kept_mask(&o, a, 4, NULL, 0) == 0x7u);
}

/* The case of Hugging Face's test_no_repeat_ngram_dist_processor. */
static void test_no_repeat_ngram_hf_case(void) {
    SampleOptions o = opts_sampling();
    float u[3] = {0, 0, 0};
    int r1[4] = {1, 1, 2, 1}, r2[4] = {0, 1, 0, 1};
    o.no_repeat_ngram_size = 2;
    CHECK(kept_mask(&o, u, 3, r1, 4) == 0x1u); /* bans 1 and 2 */
    CHECK(kept_mask(&o, u, 3, r2, 4) == 0x6u); /* bans 0 */
    o.no_repeat_ngram_size = 3;
    CHECK(kept_mask(&o, u, 3, r1, 4) == 0x7u); /* bans nothing */
    CHECK(kept_mask(&o, u, 3, r2, 4) == 0x6u); /* bans 0 */
    /* too short a history for the n-gram: nothing banned */
    o.no_repeat_ngram_size = 6;
    CHECK(kept_mask(&o, u, 3, r1, 4) == 0x7u);
    /* size 6 over a longer history: "3 4 5 6 7 | 8 ... 3 4 5 6 7" bans 8 only */
    float w[16] = {0};
    int h[13] = {3, 4, 5, 6, 7, 8, 9, 3, 4, 5, 6, 7, 3};
    CHECK(kept_mask(&o, w, 16, h, 12) == (0xFFFFu & ~(1u << 8)));
    CHECK(kept_mask(&o, w, 16, h, 13) == 0xFFFFu);
    /* everything banned: the raw argmax is the fallback */
    o.no_repeat_ngram_size = 1;
    int all[3] = {0, 1, 2};
    float l3[3] = {0.1f, 0.7f, 0.2f};
    char err[PK_ERR_LEN];
    SampleScratch sc;
    CHECK(sample_scratch_init(&sc, 3, err) == PK_OK);
    PkRng r;
    pk_rng_seed(&r, 1);
    CHECK(sample_next_token(&o, l3, 3, all, 3, &r, &sc) == 1);
    sample_scratch_free(&sc);
}

static void check_frequencies(const SampleOptions *o, const float *logits, const double *expect, int V, int N,
                              double tol) {
    char err[PK_ERR_LEN];
    SampleScratch sc;
    CHECK(sample_scratch_init(&sc, V, err) == PK_OK);
    PkRng r;
    pk_rng_seed(&r, 12345);
    int count[16] = {0};
    for (int i = 0; i < N; i++) count[sample_next_token(o, logits, V, NULL, 0, &r, &sc)]++;
    for (int v = 0; v < V; v++) CHECK_NEAR((double)count[v] / N, expect[v], tol);
    sample_scratch_free(&sc);
}

static void test_sampling_frequencies_match_softmax(void) {
    float logits[5] = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
    double p[5], z = 0;
    for (int v = 0; v < 5; v++) z += exp(logits[v]);
    for (int v = 0; v < 5; v++) p[v] = exp(logits[v]) / z;
    SampleOptions o = opts_sampling();
    int N = 200000; /* std of a frequency <= 0.0012 */
    check_frequencies(&o, logits, p, 5, N, 0.005);
    /* temperature 2 and top-k 3: softmax(logits / 2) over ids 2, 1, 4 */
    o.temperature = 2.0f;
    o.top_k = 3;
    double q[5] = {0}, zq = 0;
    int keep[3] = {2, 1, 4};
    for (int i = 0; i < 3; i++) zq += exp(logits[keep[i]] / 2.0);
    for (int i = 0; i < 3; i++) q[keep[i]] = exp(logits[keep[i]] / 2.0) / zq;
    check_frequencies(&o, logits, q, 5, N, 0.005);
}

static void test_row_rng_streams(void) {
    PkRng a, b, c, d;
    sample_row_rng(&a, 10, 3);
    sample_row_rng(&b, 10, 3);
    sample_row_rng(&c, 10, 4);
    sample_row_rng(&d, 11, 3);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    uint64_t x = pk_rng_u64(&a);
    CHECK(x != pk_rng_u64(&c));
    CHECK(x != pk_rng_u64(&d));
}

/* A tiny random GPT-2 with sharpened output distributions (scaled embeddings) and attention and
 * MLP weights scaled up so that the context matters, so that greedy decoding has clear winners. */
static int tiny_model(GPT2 *m, int maxT, unsigned long long seed) {
    GPT2Config cfg = {.max_seq_len = maxT, .vocab_size = 64, .num_layers = 2, .num_heads = 2, .channels = 32,
                      .n_inner = 128, .layer_norm_eps = 1e-5f, .tied_lm_head = 1, .eos_token_id = 63,
                      .embd_pdrop = 0.1f, .attn_pdrop = 0.1f, .resid_pdrop = 0.1f};
    char err[PK_ERR_LEN];
    if (gpt2_build(m, &cfg, err)) {
        printf("    %s\n", err);
        return PK_FAIL;
    }
    gpt2_init_random(m, seed);
    for (size_t i = 0; i < m->param_sizes[0]; i++) m->params[0][i] *= 40.0f;
    int scaled[4] = {4, 6, 10, 12};
    for (int j = 0; j < 4; j++)
        for (size_t i = 0; i < m->param_sizes[scaled[j]]; i++) m->params[scaled[j]][i] *= 20.0f;
    return PK_OK;
}

/* greedy continuation by re-running the full forward for every new token */
static int greedy_full_forward(GPT2 *m, const int *prompt, int n, const float *soft, int P, int steps, int *out) {
    char err[PK_ERR_LEN];
    int V = m->config.vocab_size;
    int *seq = calloc((size_t)(P + n + steps), sizeof(int));
    memcpy(seq + P, prompt, (size_t)n * sizeof(int));
    int len = P + n;
    for (int s = 0; s < steps; s++) {
        if (gpt2_forward(m, seq, soft, P, NULL, 1, len, err)) {
            printf("    %s\n", err);
            free(seq);
            return PK_FAIL;
        }
        const float *row = m->logits + (size_t)(len - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        out[s] = best;
        seq[len++] = best;
    }
    free(seq);
    return PK_OK;
}

static void test_kv_generation_equals_full_forward(void) {
    GPT2 m;
    if (tiny_model(&m, 40, 1)) {
        CHECK(0);
        return;
    }
    char err[PK_ERR_LEN];
    int p0[3] = {5, 9, 2}, p1[7] = {1, 2, 3, 4, 5, 6, 7}, p2[1] = {30};
    const int *prompts[3] = {p0, p1, p2};
    int lens[3] = {3, 7, 1};
    SampleOptions o = opts_sampling();
    o.greedy = 1;
    o.max_new_tokens = 12;
    int out[3 * 12], olen[3], ref[12];
    CHECK(sample_generate(&m, prompts, lens, 3, NULL, 0, &o, 0, NULL, out, olen, err) == PK_OK);
    for (int b = 0; b < 3; b++) {
        CHECK(olen[b] == 12);
        CHECK(greedy_full_forward(&m, prompts[b], lens[b], NULL, 0, 12, ref) == PK_OK);
        CHECK(memcmp(out + b * 12, ref, sizeof ref) == 0);
    }
    /* with a soft prompt (T'): P vectors before each row's tokens */
    int P = 3, C = m.config.channels;
    float *soft = malloc((size_t)P * C * sizeof(float));
    PkRng r;
    pk_rng_seed(&r, 99);
    for (int i = 0; i < P * C; i++) soft[i] = (float)pk_rng_normal(&r);
    CHECK(sample_generate(&m, prompts, lens, 3, soft, P, &o, 0, NULL, out, olen, err) == PK_OK);
    int differs = 0;
    for (int b = 0; b < 3; b++) {
        CHECK(olen[b] == 12);
        CHECK(greedy_full_forward(&m, prompts[b], lens[b], soft, P, 12, ref) == PK_OK);
        CHECK(memcmp(out + b * 12, ref, sizeof ref) == 0);
        int plain[12];
        greedy_full_forward(&m, prompts[b], lens[b], NULL, 0, 12, plain);
        differs += memcmp(plain, ref, sizeof ref) != 0;
    }
    CHECK(differs > 0); /* the soft prompt does change the continuation */
    free(soft);
    gpt2_free(&m);
}

/* Hugging Face's generate(input_ids[:1, :5], max_new_tokens=16, do_sample=False) on the tiny
 * checkpoint (reference.safetensors greedy_ids), decoded alone and left-padded next to a longer row. */
static void test_greedy_matches_hf_reference(void) {
    char err[PK_ERR_LEN];
    GPT2 m;
    StFile f;
    if (gpt2_load(&m, "tests/fixtures/hf-gpt2-tiny", err)) {
        printf("    %s\n", err);
        CHECK(0);
        return;
    }
    if (st_open(&f, "tests/fixtures/hf-gpt2-tiny/reference.safetensors", err)) {
        printf("    %s\n", err);
        CHECK(0);
        gpt2_free(&m);
        return;
    }
    const StTensor *ti = st_find(&f, "input_ids"), *tg = st_find(&f, "greedy_ids");
    CHECK(ti && tg && ti->numel == 24 && tg->numel == 21);
    if (ti && tg && ti->numel == 24 && tg->numel == 21) {
        int64_t in64[24], g64[21];
        st_read_i64(&f, ti, in64);
        st_read_i64(&f, tg, g64);
        int row0[5], row1[12], want[16];
        for (int i = 0; i < 5; i++) row0[i] = (int)in64[i];
        for (int i = 0; i < 12; i++) row1[i] = (int)in64[12 + i];
        for (int i = 0; i < 16; i++) want[i] = (int)g64[5 + i];
        SampleOptions o;
        sample_options_plain(&o, m.config.eos_token_id, 16);
        o.greedy = 1;
        const int *alone[1] = {row0};
        int n0 = 5, out[2 * 16], olen[2];
        CHECK(sample_generate(&m, alone, &n0, 1, NULL, 0, &o, 0, NULL, out, olen, err) == PK_OK);
        CHECK(olen[0] == 16 && memcmp(out, want, sizeof want) == 0);
        const int *pair[2] = {row1, row0};
        int lens[2] = {12, 5};
        CHECK(sample_generate(&m, pair, lens, 2, NULL, 0, &o, 0, NULL, out, olen, err) == PK_OK);
        CHECK(olen[1] == 16 && memcmp(out + 16, want, sizeof want) == 0);
    }
    st_close(&f);
    gpt2_free(&m);
}

static void test_batch_size_independence_and_eos(void) {
    GPT2 m;
    if (tiny_model(&m, 32, 2)) {
        CHECK(0);
        return;
    }
    char err[PK_ERR_LEN];
    /* lengths 3, 10, 25 with 20 new tokens cannot share 32 slots: rows run in groups */
    int p0[3] = {4, 8, 15}, p1[10], p2[25];
    for (int i = 0; i < 10; i++) p1[i] = (i * 7) % 60;
    for (int i = 0; i < 25; i++) p2[i] = (i * 11 + 3) % 60;
    const int *prompts[3] = {p0, p1, p2};
    int lens[3] = {3, 10, 25};
    long idx[3] = {100, 101, 102};
    SampleOptions o;
    sample_options_eval(&o, 63);
    o.max_new_tokens = 20;
    int all[3 * 20], alen[3];
    CHECK(sample_generate(&m, prompts, lens, 3, NULL, 0, &o, 42, idx, all, alen, err) == PK_OK);
    CHECK(alen[2] <= 32 - 25); /* clipped to the model's positions */
    for (int b = 0; b < 3; b++) {
        int one[20], olen;
        CHECK(sample_generate(&m, &prompts[b], &lens[b], 1, NULL, 0, &o, 42, &idx[b], one, &olen, err) == PK_OK);
        CHECK(olen == alen[b]);
        CHECK(memcmp(one, all + b * 20, (size_t)olen * sizeof(int)) == 0);
        /* a row ends at EOS (kept) or at its budget, and EOS never appears before the end */
        int budget = 20 < 32 - lens[b] ? 20 : 32 - lens[b];
        for (int t = 0; t + 1 < alen[b]; t++) CHECK(all[b * 20 + t] != 63);
        CHECK(alen[b] == budget || (alen[b] > 0 && all[b * 20 + alen[b] - 1] == 63));
        for (int t = alen[b]; t < 20; t++) CHECK(all[b * 20 + t] == -1);
    }
    /* reversed batch order, same indices: same rows */
    const int *rp[3] = {p2, p1, p0};
    int rl[3] = {25, 10, 3};
    long ri[3] = {102, 101, 100};
    int rev[3 * 20], rlen[3];
    CHECK(sample_generate(&m, rp, rl, 3, NULL, 0, &o, 42, ri, rev, rlen, err) == PK_OK);
    for (int b = 0; b < 3; b++) {
        CHECK(rlen[b] == alen[2 - b]);
        CHECK(memcmp(rev + b * 20, all + (2 - b) * 20, (size_t)rlen[b] * sizeof(int)) == 0);
    }
    /* another seed gives another sample */
    int other[3 * 20], olens[3];
    CHECK(sample_generate(&m, prompts, lens, 3, NULL, 0, &o, 43, idx, other, olens, err) == PK_OK);
    CHECK(memcmp(other, all, sizeof all) != 0);
    /* EOS: take the token row 1 produced at step 6 without EOS as the EOS id; with it, row 1 must
     * stop at that token's first occurrence (kept), identical up to there */
    SampleOptions no_eos = o;
    no_eos.eos_id = -1;
    int free_run[3 * 20], flen[3];
    CHECK(sample_generate(&m, prompts, lens, 3, NULL, 0, &no_eos, 42, idx, free_run, flen, err) == PK_OK);
    CHECK(flen[1] == 20);
    SampleOptions with_eos = o;
    with_eos.eos_id = free_run[20 + 5];
    int first = 0;
    while (free_run[20 + first] != with_eos.eos_id) first++;
    int stop[3 * 20], slen[3];
    CHECK(sample_generate(&m, prompts, lens, 3, NULL, 0, &with_eos, 42, idx, stop, slen, err) == PK_OK);
    CHECK(slen[1] == first + 1);
    CHECK(memcmp(stop + 20, free_run + 20, (size_t)(first + 1) * sizeof(int)) == 0);
    /* bad inputs */
    int too_long[40] = {0};
    const int *tp[1] = {too_long};
    int tl[1] = {33};
    CHECK(sample_generate(&m, tp, tl, 1, NULL, 0, &o, 1, NULL, all, alen, err) == PK_FAIL && strstr(err, "positions"));
    int bad_id[2] = {3, 64};
    const int *bp[1] = {bad_id};
    int bl[1] = {2};
    CHECK(sample_generate(&m, bp, bl, 1, NULL, 0, &o, 1, NULL, all, alen, err) == PK_FAIL && strstr(err, "vocabulary"));
    gpt2_free(&m);
}

static void test_scoring_batch_layout(void) {
    int pa[3] = {10, 11, 12}, pb[1] = {20};
    const int *prompts[2] = {pa, pb};
    int lens[2] = {3, 1};
    int resp[2 * 4] = {30, 31, 63, -1, 40, 41, 42, 43};
    int rlen[2] = {3, 4};
    int tokens[2 * 16], targets[2 * 16], lengths[2], T;
    char err[PK_ERR_LEN];
    CHECK(sample_scoring_batch(prompts, lens, resp, 4, rlen, 2, 2, 16, 0, tokens, targets, lengths, &T, err) == PK_OK);
    CHECK(T == 7);
    int et0[7] = {0, 0, 10, 11, 12, 30, 31}, eg0[7] = {-1, -1, -1, -1, 30, 31, 63};
    int et1[7] = {0, 0, 20, 40, 41, 42, 0}, eg1[7] = {-1, -1, 40, 41, 42, 43, -1};
    CHECK(memcmp(tokens, et0, sizeof et0) == 0 && memcmp(targets, eg0, sizeof eg0) == 0);
    CHECK(memcmp(tokens + 7, et1, sizeof et1) == 0 && memcmp(targets + 7, eg1, sizeof eg1) == 0);
    CHECK(lengths[0] == 7 && lengths[1] == 6);
    CHECK(sample_scoring_batch(prompts, lens, resp, 4, rlen, 2, 2, 6, 0, tokens, targets, lengths, &T, err) == PK_FAIL &&
          strstr(err, "row 0"));
}

int main(void) {
    RUN(test_greedy_lowest_id_on_ties_no_draw);
    RUN(test_temperature_scales_scores);
    RUN(test_top_k);
    RUN(test_top_p);
    RUN(test_no_repeat_ngram_hf_case);
    RUN(test_sampling_frequencies_match_softmax);
    RUN(test_row_rng_streams);
    RUN(test_kv_generation_equals_full_forward);
    RUN(test_greedy_matches_hf_reference);
    RUN(test_batch_size_independence_and_eos);
    RUN(test_scoring_batch_layout);
    TEST_EXIT();
}
