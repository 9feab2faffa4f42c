/* MiniLLM: the objective's pieces against hand-computed values and finite differences, the
 * teacher-mixed distribution and sampler, the pretraining text, and the method's training step on
 * a tiny world (it runs, moves the student, is deterministic, resumes bit for bit, and refuses
 * lm_coef > 0 without pretraining text). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "distill.h"
#include "divergence.h"
#include "gpt2.h"
#include "minillm.h"
#include "parallel.h"
#include "test.h"
#include "tiny_world.h"
#include "tokenizer.h"

static TinyWorld world;
static char pretrain_path[400];
static int setup_ok;

/* ------------------------------------------------------------------ the pieces, by hand */

static void test_weights_and_rewards_by_hand(void) {
    /* token 0: q = 0.5, p = 0.25; token 1: q = 0.1, p = 0.6; token 2: a reward beyond the clip */
    float s_logp[3] = {logf(0.5f), logf(0.1f), -80.0f}, t_logp[3] = {logf(0.25f), logf(0.6f), -1.0f};
    float w[3], r[3];
    minillm_weights_rewards(3, t_logp, s_logp, 0.2f, 0.5f, 100.0f, w, r);
    CHECK_NEAR(w[0], 0.5 / (0.8 * 0.5 + 0.2 * 0.25), 1e-6); /* q / p_mix = 0.5 / 0.45 */
    CHECK_NEAR(w[1], 0.1 / (0.8 * 0.1 + 0.2 * 0.6), 1e-6);  /* = 0.5 */
    CHECK_NEAR(w[2] / (5.0 * exp(-79.0)), 1.0, 1e-4);       /* e^-80 / (0.2 e^-1), the mixture dominated by T */
    CHECK_NEAR(r[0], -2.0 * log(2.0), 1e-6);                /* (log 0.25 - log 0.5) / 0.5 */
    CHECK_NEAR(r[1], 2.0 * log(6.0), 1e-5);
    CHECK(r[2] == 100.0f); /* 79 / 0.5 = 158, clipped */
    /* alpha 0: plain on-policy weights; clip 0: no clipping */
    minillm_weights_rewards(3, t_logp, s_logp, 0.0f, 1.0f, 0.0f, w, r);
    CHECK(w[0] == 1.0f && w[1] == 1.0f && w[2] == 1.0f);
    CHECK_NEAR(r[2], 79.0, 1e-4);
}

static void test_advantages_by_hand(void) {
    /* row 0 has 2 tokens, row 1 has 3; gamma 0.5 */
    float rew[6] = {1, 2, 0, 1, -1, 4}, adv[6];
    int lens[2] = {2, 3};
    char err[PK_ERR_LEN];
    CHECK(minillm_advantages(rew, lens, 2, 3, 0.5f, 0, adv, err) == PK_OK);
    /* returns: row 0 (2, 2, 0) / tokens left (2, 1, 1); row 1 (1.5, 1, 4) / (3, 2, 1) */
    double want[6] = {1.0, 2.0, 0.0, 0.5, 0.5, 4.0};
    for (int i = 0; i < 6; i++) CHECK_NEAR(adv[i], want[i], 1e-6);
    CHECK(minillm_advantages(rew, lens, 2, 3, 0.5f, 1, adv, err) == PK_OK);
    double mean = 8.0 / 6.0, ss = 0;
    for (int i = 0; i < 6; i++) ss += (want[i] - mean) * (want[i] - mean);
    double sd = sqrt(ss / 5.0 + 1e-8); /* Bessel's correction, as torch.var_mean */
    for (int i = 0; i < 6; i++) CHECK_NEAR(adv[i], (want[i] - mean) / sd, 1e-6);
    lens[0] = 4;
    CHECK(minillm_advantages(rew, lens, 2, 3, 0.5f, 0, adv, err) == PK_FAIL && strstr(err, "row 0"));
}

/* A batch split over ranks: whitening from the parts' summed passes, and pg-loss parts divided by
 * the whole batch's token count, give the whole batch's numbers (up to float rounding). */
static void test_split_batch_equals_whole(void) {
    float rew[8] = {1, 2, 0, 0, 1, -1, 4, 0.5f}, whole[8], part[8];
    int lens[2] = {2, 4};
    char err[PK_ERR_LEN];
    CHECK(minillm_advantages(rew, lens, 2, 4, 0.9f, 1, whole, err) == PK_OK);
    /* two "ranks", one row each */
    CHECK(minillm_advantages(rew, lens, 1, 4, 0.9f, 0, part, err) == PK_OK);
    CHECK(minillm_advantages(rew + 4, lens + 1, 1, 4, 0.9f, 0, part + 4, err) == PK_OK);
    double mean = (minillm_sum(part, 4) + minillm_sum(part + 4, 4)) / 8.0;
    double ss = minillm_squared_deviations(part, 4, mean) + minillm_squared_deviations(part + 4, 4, mean);
    minillm_whiten(part, 4, mean, ss, 8);
    minillm_whiten(part + 4, 4, mean, ss, 8);
    double worst = 0;
    for (int i = 0; i < 8; i++) worst = fmax(worst, fabs((double)part[i] - whole[i]));
    CHECK(worst < 1e-6);
    /* whitening only one part against its own moments would differ: the test can tell */
    CHECK(minillm_advantages(rew, lens, 1, 4, 0.9f, 1, part, err) == PK_OK);
    CHECK(fabs((double)part[0] - whole[0]) > 1e-2);

    float logp[5] = {-1.0f, -2.0f, -0.5f, -0.7f, -3.0f}, old[5] = {-1.1f, -1.9f, -0.5f, -0.9f, -2.5f};
    float w[5] = {1.0f, 1.2f, 0.9f, 1.0f, 1.1f}, adv[5] = {0.5f, -1.0f, 2.0f, -0.3f, 1.0f};
    float d_whole[5], d_part[5];
    double l_whole = minillm_pg_loss(5, logp, old, w, adv, 0.2f, 5, d_whole);
    double l_split = minillm_pg_loss(2, logp, old, w, adv, 0.2f, 5, d_part) +
                     minillm_pg_loss(3, logp + 2, old + 2, w + 2, adv + 2, 0.2f, 5, d_part + 2);
    CHECK_NEAR(l_split, l_whole, 1e-12);
    for (int i = 0; i < 5; i++) CHECK(d_part[i] == d_whole[i]);
}

static void test_pg_loss_by_hand_and_finite_differences(void) {
    /* (a) ratio inside the clip range; (b) above it with A > 0: the clamped branch, no gradient;
     * (c) above it with A < 0: the unclipped branch is the larger */
    float old[3] = {-1.0f, -2.0f, -0.5f}, logp[3] = {-1.0f, -2.0f, -0.5f};
    float w[3] = {1.1f, 1.5f, 1.5f}, adv[3] = {1.0f, 2.0f, -1.0f}, d[3];
    double loss = minillm_pg_loss(3, logp, old, w, adv, 0.2f, 3, d);
    CHECK_NEAR(loss, (-1.1 - 2.0 * 1.2 + 1.5) / 3.0, 1e-6);
    CHECK_NEAR(d[0], -1.1 / 3.0, 1e-6);
    CHECK(d[1] == 0.0f);
    CHECK_NEAR(d[2], 1.5 / 3.0, 1e-6);
    /* moved off the sampling-time log-probs: ratios exp(logp - old) w, checked by differences */
    float lp[3] = {-0.95f, -2.3f, -0.4f};
    minillm_pg_loss(3, lp, old, w, adv, 0.2f, 3, d);
    for (int i = 0; i < 3; i++) {
        float keep = lp[i], h = 1e-3f;
        lp[i] = keep + h;
        double up = minillm_pg_loss(3, lp, old, w, adv, 0.2f, 3, NULL);
        lp[i] = keep - h;
        double dn = minillm_pg_loss(3, lp, old, w, adv, 0.2f, 3, NULL);
        lp[i] = keep;
        CHECK_NEAR(d[i], (up - dn) / (2.0 * h), 1e-3);
    }
}

/* The whole objective of a few positions with respect to the student's logits: pg loss through the
 * sampled tokens' log-probs plus the exact reverse KL, against central differences. */
static double objective(const float *s_logits, const float *t_logits, const int *y, const float *old, const float *w,
                        const float *adv, int n, int V, float *dlogits) {
    float logp[3], dlogp[3];
    for (int i = 0; i < n; i++) logp[i] = (float)minillm_token_logprob(s_logits + i * V, V, y[i]);
    double pg = minillm_pg_loss(n, logp, old, w, adv, 0.2f, n, dlogits ? dlogp : NULL);
    if (dlogits)
        for (int i = 0; i < n; i++) minillm_logprob_backward(s_logits + i * V, V, y[i], dlogp[i], dlogits + i * V);
    size_t rows[3] = {0, 1, 2};
    double reg = div_rows(DIV_RKL, 0, t_logits, rows, s_logits, rows, n, V, 1.0f / n, NULL, dlogits) / n;
    return pg + reg;
}

static void test_objective_gradient_finite_differences(void) {
    enum { N = 3, V = 5 };
    float s[N * V] = {0.3f, -1.2f, 0.8f, 0.1f, -0.4f, 1.0f, 0.2f, -0.7f, 0.5f, 0.0f, -0.3f, 0.6f, 0.9f, -1.1f, 0.4f};
    float t[N * V] = {0.5f, -0.2f, 0.1f, 0.9f, -1.0f, -0.6f, 0.8f, 0.3f, 0.2f, -0.1f, 0.7f, -0.5f, 0.4f, 0.0f, 1.2f};
    int y[N] = {2, 0, 4};
    float old[N], w[N] = {0.9f, 1.3f, 0.7f}, adv[N] = {0.8f, -1.4f, 0.6f}, d[N * V];
    for (int i = 0; i < N; i++) old[i] = (float)minillm_token_logprob(s + i * V, V, y[i]) + 0.05f * (i - 1);
    memset(d, 0, sizeof d);
    double base = objective(s, t, y, old, w, adv, N, V, d);
    CHECK(isfinite(base));
    double worst = 0;
    for (int j = 0; j < N * V; j++) {
        float keep = s[j], h = 1e-3f;
        s[j] = keep + h;
        double up = objective(s, t, y, old, w, adv, N, V, NULL);
        s[j] = keep - h;
        double dn = objective(s, t, y, old, w, adv, N, V, NULL);
        s[j] = keep;
        double fd = (up - dn) / (2.0 * h), e = fabs(fd - d[j]);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst < 2e-3, "largest gradient error %g", worst);
}

static void test_mixed_distribution(void) {
    enum { V = 7 };
    float t[V] = {0.1f, 2.0f, -1.0f, 0.5f, 0.0f, -3.0f, 1.5f}, s[V] = {1.0f, -0.5f, 0.3f, 0.3f, 2.2f, 0.0f, -1.0f};
    float mix[V];
    minillm_mix_probs(t, s, V, 0.2f, mix);
    double zt = 0, zs = 0, sum = 0;
    for (int v = 0; v < V; v++) zt += exp(t[v]), zs += exp(s[v]);
    for (int v = 0; v < V; v++) {
        CHECK_NEAR(mix[v], 0.2 * exp(t[v]) / zt + 0.8 * exp(s[v]) / zs, 1e-7);
        sum += mix[v];
    }
    CHECK_NEAR(sum, 1.0, 1e-6);
    /* the draw walks the cumulative sum; zero-probability tokens are never chosen */
    float p[4] = {0.0f, 0.25f, 0.0f, 0.75f};
    CHECK(minillm_draw(p, 4, 0.0) == 1);
    CHECK(minillm_draw(p, 4, 0.2499) == 1);
    CHECK(minillm_draw(p, 4, 0.2501) == 3);
    CHECK(minillm_draw(p, 4, 0.999999) == 3);
}

/* ------------------------------------------------------------------ the tiny world */

static void test_setup(void) {
    char err[PK_ERR_LEN];
    int V = tiny_world_create(&world, "minillm", 24, 6, err);
    CHECK_MSG(V > 0, "%s", err);
    if (V <= 0) return;
    /* the teacher: supervised fine-tuning of a random 2-layer model (the sft method itself) */
    RunConfig c;
    config_defaults(&c);
    snprintf(c.method, sizeof c.method, "sft");
    snprintf(c.tokenizer, sizeof c.tokenizer, "%s", world.tok_dir);
    snprintf(c.train_data, sizeof c.train_data, "%s", world.train_path);
    c.seed = 3;
    c.batch_size = 8;
    c.lr = 1e-2f;
    c.warmup_steps = 0;
    GPT2Config ta = tiny_arch(2, 32, 2, V);
    DistillState *s = NULL;
    CHECK_MSG(distill_create_init(&s, &c, &ta, err) == PK_OK, "%s", err);
    for (int i = 0; s && i < 60; i++) {
        DistillStepStats st;
        CHECK(distill_step(s, &st, err) == PK_OK);
    }
    CHECK(s && gpt2_save(distill_student(s), world.teacher_dir, err) == PK_OK);
    distill_free(s);
    /* pretraining text: the training records as plain documents */
    snprintf(pretrain_path, sizeof pretrain_path, "%s/pretrain.jsonl", world.root);
    PkBuf b = {0};
    for (int i = 0; i < 40; i++)
        pk_buf_printf(&b, "{\"text\": \"The %s is %s. A %s that is %s.\"}\n", tiny_animals[i % 8],
                      tiny_colours[i % 6], tiny_animals[(i + 3) % 8], tiny_colours[(i * 5) % 6]);
    CHECK(pk_write_file_atomic(pretrain_path, b.data, b.len, err) == PK_OK);
    pk_buf_free(&b);
    setup_ok = pk_test_failures_in_current == 0;
}

static void base_config(RunConfig *c) {
    config_defaults(c);
    snprintf(c->method, sizeof c->method, "minillm");
    snprintf(c->teacher, sizeof c->teacher, "%s", world.teacher_dir);
    snprintf(c->student, sizeof c->student, "%s", world.student_dir);
    snprintf(c->tokenizer, sizeof c->tokenizer, "%s", world.tok_dir);
    snprintf(c->train_data, sizeof c->train_data, "%s", world.train_path);
    snprintf(c->valid_data, sizeof c->valid_data, "%s", world.valid_path);
    snprintf(c->pretrain_data, sizeof c->pretrain_data, "%s", pretrain_path);
    c->seed = 3;
    c->steps = 20;
    c->batch_size = 5; /* 24 examples: epochs end mid-run, so reshuffles are covered */
    c->lr = 5e-3f;
    c->warmup_steps = 0;
    c->max_new_tokens = 10;
}

static DistillState *make_state(const RunConfig *c) {
    char err[PK_ERR_LEN];
    DistillState *s = NULL;
    if (distill_create(&s, c, err) != PK_OK) {
        printf("    distill_create: %s\n", err);
        return NULL;
    }
    return s;
}

static void test_pretrain_packing(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    Tokenizer *tok = NULL;
    CHECK(tok_load(&tok, world.tok_dir, err) == PK_OK);
    if (!tok) return;
    char path[420];
    snprintf(path, sizeof path, "%s/two.jsonl", world.root);
    const char *text = "{\"text\": \"The cat is red.\"}\n\n{\"text\": \"It is blue.\"}\n";
    CHECK(pk_write_file_atomic(path, text, strlen(text), err) == PK_OK);
    int *a = NULL, *b = NULL, na = 0, nb = 0, eos = tok_eos_id(tok);
    CHECK(tok_encode(tok, "The cat is red.", 15, 0, &a, &na, err) == PK_OK);
    CHECK(tok_encode(tok, "It is blue.", 11, 0, &b, &nb, err) == PK_OK);
    int all[64], n = 0;
    for (int i = 0; i < na; i++) all[n++] = a[i];
    all[n++] = eos;
    for (int i = 0; i < nb; i++) all[n++] = b[i];
    all[n++] = eos;
    MinillmPretrain *p = NULL;
    CHECK(minillm_pretrain_load(&p, path, tok, eos, 3, 99, err) == PK_OK);
    if (p) {
        CHECK(p->n_chunks == n / 3 && p->chunk_len == 3);
        /* one pass of B = n_chunks rows: every chunk once, inputs and next-token targets */
        int B = p->n_chunks, seen[64] = {0};
        int *tk = malloc(sizeof(int) * B * 2), *tg = malloc(sizeof(int) * B * 2);
        CHECK(minillm_pretrain_batch(p, 0, B, tk, tg, err) == PK_OK);
        for (int r = 0; r < B; r++) {
            int c = -1;
            for (int k = 0; k < p->n_chunks; k++)
                if (all[3 * k] == tk[2 * r] && all[3 * k + 1] == tk[2 * r + 1] && all[3 * k + 2] == tg[2 * r + 1]) c = k;
            CHECK(c >= 0 && tg[2 * r] == tk[2 * r + 1]);
            if (c >= 0) seen[c]++;
        }
        for (int k = 0; k < p->n_chunks; k++) CHECK(seen[k] == 1);
        /* the same update gives the same chunks after other passes were drawn */
        int *tk2 = malloc(sizeof(int) * B * 2), *tg2 = malloc(sizeof(int) * B * 2);
        CHECK(minillm_pretrain_batch(p, 7, B, tk2, tg2, err) == PK_OK);
        CHECK(minillm_pretrain_batch(p, 0, B, tk2, tg2, err) == PK_OK);
        CHECK(memcmp(tk, tk2, sizeof(int) * B * 2) == 0 && memcmp(tg, tg2, sizeof(int) * B * 2) == 0);
        free(tk);
        free(tg);
        free(tk2);
        free(tg2);
        minillm_pretrain_free(p);
    }
    /* a line without a "text" string is refused with its line number */
    const char *bad = "{\"text\": \"ok\"}\n{\"body\": \"no\"}\n";
    CHECK(pk_write_file_atomic(path, bad, strlen(bad), err) == PK_OK);
    p = NULL;
    CHECK(minillm_pretrain_load(&p, path, tok, eos, 3, 99, err) == PK_FAIL && p == NULL);
    CHECK(strstr(err, ":2: ") && strstr(err, "\"text\""));
    free(a);
    free(b);
    tok_free(tok);
}

/* A row's mixed sample depends on its prompt, index and seed only (not on the batch around it),
 * and alpha = 1 samples the teacher while both models decode in step. */
static void test_mixed_sampler_rows_independent(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    GPT2 s, t;
    CHECK(gpt2_load(&s, world.student_dir, err) == PK_OK);
    CHECK(gpt2_load(&t, world.teacher_dir, err) == PK_OK);
    int p0[] = {5, 9, 12, 3, 7, 8}, p1[] = {4, 4}, p2[] = {10, 11, 2};
    const int *prompts[3] = {p0, p1, p2};
    int lens[3] = {6, 2, 3}, out[3 * 8], olens[3], one[8], olen1;
    long rows[3] = {5, 6, 7};
    int eos = s.config.eos_token_id;
    CHECK(minillm_sample_mixed(&s, &t, prompts, lens, 3, 0.2f, 8, eos, 42, rows, out, olens, err) == PK_OK);
    const int *only[1] = {p1};
    CHECK(minillm_sample_mixed(&s, &t, only, &lens[1], 1, 0.2f, 8, eos, 42, &rows[1], one, &olen1, err) == PK_OK);
    CHECK(olen1 == olens[1] && olen1 >= 1);
    CHECK(memcmp(one, out + 8, sizeof(int) * olen1) == 0);
    for (int b = 0; b < 3; b++) {
        CHECK(olens[b] >= 1 && olens[b] <= 8);
        for (int j = 0; j < olens[b]; j++) CHECK(out[b * 8 + j] >= 0 && out[b * 8 + j] < s.config.vocab_size);
        for (int j = olens[b]; j < 8; j++) CHECK(out[b * 8 + j] == -1);
    }
    gpt2_free(&s);
    gpt2_free(&t);
}

static void test_refuses_lm_coef_without_pretraining_text(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c);
    c.pretrain_data[0] = 0;
    DistillState *s = NULL;
    CHECK(distill_create(&s, &c, err) == PK_FAIL && s == NULL);
    CHECK_MSG(strstr(err, "pretrain_data") && strstr(err, "lm_coef"), "%s", err);
    CHECK(config_validate(&c, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "pretrain_data") && strstr(err, "lm_coef"), "%s", err);
    c.lm_coef = 0; /* without the language-modelling term no file is needed */
    CHECK(config_validate(&c, err) == PK_OK);
    s = make_state(&c);
    CHECK(s != NULL);
    distill_free(s);
    CHECK(config_set(&c, "method", "minillm", err) == PK_OK);
    CHECK(config_set(&c, "minillm_teacher_mix", "1.5", err) == PK_FAIL && strstr(err, "minillm_teacher_mix"));
}

/* Runs k steps; losses [k][DISTILL_MAX_LOSSES]. */
static int run_steps(DistillState *s, int k, double losses[][DISTILL_MAX_LOSSES]) {
    char err[PK_ERR_LEN];
    for (int i = 0; i < k; i++) {
        DistillStepStats st;
        if (distill_step(s, &st, err) != PK_OK) {
            printf("    step %d: %s\n", i, err);
            return 0;
        }
        if (st.nonfinite || st.n_losses != 5 || strcmp(st.loss_names[4], "reward") != 0) {
            printf("    step %d: nonfinite %d, %d losses\n", i, st.nonfinite, st.n_losses);
            return 0;
        }
        memcpy(losses[i], st.losses, sizeof losses[i]);
    }
    return 1;
}

static void test_step_runs_deterministic_and_resumes(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN], ck[400];
    snprintf(ck, sizeof ck, "%s/ck-minillm", world.root);
    RunConfig c;
    base_config(&c);
    DistillState *a = make_state(&c), *b = make_state(&c);
    CHECK(a && b);
    if (!a || !b) {
        distill_free(a);
        distill_free(b);
        return;
    }
    GPT2 *sa = distill_student(a), *sb = distill_student(b);
    size_t np = sa->num_parameters;
    float *init = malloc(np * sizeof(float));
    memcpy(init, sa->params_memory, np * sizeof(float));
    double la[8][DISTILL_MAX_LOSSES], lb[8][DISTILL_MAX_LOSSES];
    CHECK(run_steps(a, 2, la));
    CHECK(memcmp(init, sa->params_memory, np * sizeof(float)) != 0); /* the student moved */
    for (int i = 0; i < 2; i++) {
        CHECK(isfinite(la[i][0]) && isfinite(la[i][1]) && la[i][2] >= 0 && la[i][3] > 0 && isfinite(la[i][4]));
        /* student_loss = pg + reg + lm_coef * pt */
        CHECK_NEAR(la[i][0], la[i][1] + la[i][2] + la[i][3], 1e-9 * (1 + fabs(la[i][0])));
    }
    CHECK(distill_save_checkpoint(a, ck, err) == PK_OK);
    CHECK(run_steps(a, 3, la + 2));
    /* b: the same run from the start, bit for bit */
    CHECK(run_steps(b, 5, lb));
    CHECK(memcmp(la, lb, sizeof(double) * 5 * DISTILL_MAX_LOSSES) == 0);
    CHECK(memcmp(sa->params_memory, sb->params_memory, np * sizeof(float)) == 0);
    distill_free(b);
    /* b again: resumed from step 2 */
    b = make_state(&c);
    CHECK(b != NULL);
    if (b) {
        CHECK(distill_load_checkpoint(b, ck, err) == PK_OK);
        CHECK(distill_step_index(b) == 2);
        CHECK(run_steps(b, 3, lb + 2));
        for (int i = 2; i < 5; i++)
            CHECK_MSG(memcmp(la[i], lb[i], sizeof la[i]) == 0, "step %d: %.17g vs %.17g", i + 1, la[i][0], lb[i][0]);
        sb = distill_student(b);
        CHECK(memcmp(sa->params_memory, sb->params_memory, np * sizeof(float)) == 0);
        distill_free(b);
    }
    /* a checkpoint of another method is refused, naming both */
    RunConfig o = c;
    snprintf(o.method, sizeof o.method, "rkl");
    DistillState *x = make_state(&o);
    if (x) {
        CHECK(distill_load_checkpoint(x, ck, err) == PK_FAIL && strstr(err, "minillm"));
        distill_free(x);
    }
    free(init);
    distill_free(a);
}

/* Without the pretraining term the student's reverse KL to the teacher (reg_loss, measured on the
 * step's own samples) falls; a NaN in the student is reported and changes nothing. */
static void test_step_learns_and_nonfinite(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c);
    c.lm_coef = 0;
    c.minillm_ppo_epochs = 2;
    c.batch_size = 8;
    c.lr = 1e-2f;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    double l[16][DISTILL_MAX_LOSSES];
    CHECK(run_steps(s, 16, l));
    double first = (l[0][2] + l[1][2] + l[2][2]) / 3, last = (l[13][2] + l[14][2] + l[15][2]) / 3;
    CHECK_MSG(last < 0.9 * first, "reverse KL %g over the first 3 steps, %g over the last 3", first, last);
    for (int i = 0; i < 16; i++) CHECK(l[i][3] == 0.0);
    GPT2 *m = distill_student(s);
    m->params[14][0] = NAN; /* ln_f.weight */
    size_t np = m->num_parameters;
    float *keep = malloc(np * sizeof(float)), *mk = malloc(np * sizeof(float));
    memcpy(keep, m->params_memory, np * sizeof(float));
    memcpy(mk, m->m_memory, np * sizeof(float));
    DistillStepStats st;
    CHECK(distill_step(s, &st, err) == PK_OK);
    CHECK(st.nonfinite == 1 && distill_step_index(s) == 16);
    CHECK(memcmp(keep, m->params_memory, np * sizeof(float)) == 0);
    CHECK(memcmp(mk, m->m_memory, np * sizeof(float)) == 0);
    free(keep);
    free(mk);
    distill_free(s);
}

static void test_cleanup(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", world.root);
    CHECK(world.root[0] && system(cmd) == 0);
}

int main(void) {
    pk_threads_init(0);
    RUN(test_weights_and_rewards_by_hand);
    RUN(test_advantages_by_hand);
    RUN(test_pg_loss_by_hand_and_finite_differences);
    RUN(test_split_batch_equals_whole);
    RUN(test_objective_gradient_finite_differences);
    RUN(test_mixed_distribution);
    RUN(test_setup);
    RUN(test_pretrain_packing);
    RUN(test_mixed_sampler_rows_independent);
    RUN(test_refuses_lm_coef_without_pretraining_text);
    RUN(test_step_runs_deterministic_and_resumes);
    RUN(test_step_learns_and_nonfinite);
    RUN(test_cleanup);
    TEST_EXIT();
}
