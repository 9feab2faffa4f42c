/* Distillation methods on a tiny world: a BPE trained on a few dozen records, a teacher SFT'd
 * for some steps by the sft method itself, a random student. Each method's step runs and lowers
 * its own loss; PromptKD's prompt init, its prompt gradient against finite differences, its
 * mechanism (KL(T'||S) falls below KL(T||S)); exact resume from a checkpoint; eval, generate,
 * neighbours, live config changes and non-finite handling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "distill.h"
#include "gpt2.h"
#include "optim.h"
#include "parallel.h"
#include "test.h"
#include "tiny_world.h"
#include "tokenizer.h"

static TinyWorld world;
static int setup_ok;

static void base_config(RunConfig *c, const char *method) {
    config_defaults(c);
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->teacher, sizeof c->teacher, "%s", world.teacher_dir);
    snprintf(c->student, sizeof c->student, "%s", world.student_dir);
    snprintf(c->tokenizer, sizeof c->tokenizer, "%s", world.tok_dir);
    snprintf(c->train_data, sizeof c->train_data, "%s", world.train_path);
    snprintf(c->valid_data, sizeof c->valid_data, "%s", world.valid_path);
    c->seed = 3;
    c->steps = 20;
    c->batch_size = 4;
    c->lr = 5e-3f;
    c->prompt_lr = 5e-3f;
    c->warmup_steps = 0;
    c->prompt_len = 3;
    c->max_new_tokens = 10;
    c->dropout = 0; /* the tiny models' config.json asks for GPT-2's 0.1; tests that want it set it */
}

static double mean_loss(const double *x, int a, int b) {
    double s = 0;
    for (int i = a; i < b; i++) s += x[i];
    return s / (b - a);
}

/* Builds the world; the teacher is trained with the sft method (and that training must lower its loss). */
static void test_setup_and_sft(void) {
    char err[PK_ERR_LEN];
    int V = tiny_world_create(&world, "distill", 24, 6, err);
    CHECK_MSG(V > 0, "%s", err);

    RunConfig c;
    base_config(&c, "sft");
    c.lr = 1e-2f;
    c.batch_size = 8;
    GPT2Config ta = tiny_arch(2, 32, 2, V);
    DistillState *s = NULL;
    if (distill_create_init(&s, &c, &ta, err) != PK_OK) {
        printf("    %s\n", err);
        CHECK(0);
        return;
    }
    double losses[60];
    for (int i = 0; i < 60; i++) {
        DistillStepStats stats;
        CHECK(distill_step(s, &stats, err) == PK_OK);
        CHECK(strcmp(stats.loss_names[0], "student_loss") == 0);
        CHECK(stats.step == i + 1 && !stats.nonfinite && stats.tokens > 0 && stats.flops > 0);
        losses[i] = stats.losses[0];
    }
    CHECK_MSG(mean_loss(losses, 55, 60) < 0.5 * mean_loss(losses, 0, 5), "sft loss %g -> %g", mean_loss(losses, 0, 5),
              mean_loss(losses, 55, 60));
    double dev = 0;
    CHECK(distill_eval_loss(s, "valid", 0, &dev, err) == PK_OK);
    CHECK(isfinite(dev) && dev > 0);
    CHECK(gpt2_save(distill_student(s), world.teacher_dir, err) == PK_OK);
    distill_free(s);
    setup_ok = pk_test_failures_in_current == 0;
}

static DistillState *make_state(const RunConfig *c) {
    char err[PK_ERR_LEN];
    DistillState *s = NULL;
    if (distill_create(&s, c, err) != PK_OK) {
        printf("    distill_create(%s): %s\n", c->method, err);
        return NULL;
    }
    return s;
}

/* Each method's steps lower its own loss (first steps against the last ones). */
static void check_method_learns(const char *method, int steps) {
    if (!setup_ok) return;
    RunConfig c;
    base_config(&c, method);
    c.steps = steps;
    c.batch_size = 8;
    c.lr = 1e-2f;
    c.gkd_student_frac = 0.5f;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    char err[PK_ERR_LEN];
    double losses[64];
    int on_policy = 0;
    for (int i = 0; i < steps; i++) {
        DistillStepStats st;
        int rc = distill_step(s, &st, err);
        CHECK_MSG(rc == PK_OK, "%s step %d: %s", method, i, err);
        if (rc != PK_OK) break;
        CHECK(!st.nonfinite && st.step == i + 1 && st.response_tokens > 0);
        CHECK(isfinite(st.losses[0]) && st.losses[0] >= 0);
        losses[i] = st.losses[0];
        if (!strcmp(method, "gkd")) {
            CHECK(st.n_losses == 2 && !strcmp(st.loss_names[1], "on_policy"));
            on_policy += st.losses[1] > 0.5;
        }
        if (!strcmp(method, "promptkd")) {
            CHECK(st.n_losses == 5 && !strcmp(st.loss_names[3], "prompt_guide_loss") &&
                  !strcmp(st.loss_names[4], "kl_tprime_t"));
            CHECK_NEAR(st.losses[1], st.losses[2] + st.losses[3], 1e-9);
            /* prompt_reg_loss = (1 - t/N) base_coef KL(T'||T), t = this step, counted from 1 */
            CHECK_NEAR(st.losses[2], (1.0 - (double)(i + 1) / steps) * c.base_coef * st.losses[4], 1e-9);
            CHECK(st.prompt_lr > 0 && st.prompt_grad_norm > 0);
        }
    }
    double first = mean_loss(losses, 0, 4), last = mean_loss(losses, steps - 4, steps);
    CHECK_MSG(last < 0.9 * first, "%s: loss %g over the first 4 steps, %g over the last 4", method, first, last);
    if (!strcmp(method, "gkd")) CHECK(on_policy > 0 && on_policy < steps);
    distill_free(s);
}

/* The rates of the first steps follow optim's lr_schedule (warm-up, then constant), rounded
 * once to float from the fraction in double: the numbers training has always used. */
static void test_warmup_rates(void) {
    if (!setup_ok) return;
    RunConfig c;
    base_config(&c, "promptkd");
    c.warmup_steps = 3;
    c.steps = 5;
    c.lr = 7e-3f;
    c.prompt_lr = 3e-2f;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    char err[PK_ERR_LEN];
    for (int i = 0; i < 5; i++) {
        DistillStepStats st;
        CHECK_MSG(distill_step(s, &st, err) == PK_OK, "%s", err);
        double frac = i < 3 ? (double)(i + 1) / 3 : 1.0;
        CHECK(st.lr == (double)(float)(c.lr * frac) && st.lr == lr_schedule(i + 1, 3, c.lr, 5, 0));
        CHECK(st.prompt_lr == (double)(float)(c.prompt_lr * frac));
    }
    distill_free(s);
}

static void test_kd_learns(void) { check_method_learns("kd", 24); }
static void test_seqkd_learns(void) { check_method_learns("seqkd", 24); }
static void test_rkl_learns(void) { check_method_learns("rkl", 24); }
static void test_gkd_learns(void) { check_method_learns("gkd", 24); }
static void test_distillm_learns(void) { check_method_learns("distillm", 24); }
static void test_promptkd_learns(void) { check_method_learns("promptkd", 24); }

/* The prompt starts as the teacher's wte rows of the init text's tokens, repeated cyclically. */
static void test_prompt_init_is_teacher_wte(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    const char *text = "It is red.";
    Tokenizer *tok;
    CHECK(tok_load(&tok, world.tok_dir, err) == PK_OK);
    int *ids = NULL, n = 0;
    CHECK(tok_encode(tok, text, strlen(text), 0, &ids, &n, err) == PK_OK);
    tok_free(tok);
    CHECK(n >= 2);
    int lens[2] = {n - 1, n + 3}; /* cut, and repeated cyclically */
    for (int li = 0; li < 2; li++) {
        int plen = lens[li];
        RunConfig c;
        base_config(&c, "promptkd");
        c.prompt_len = plen;
        snprintf(c.prompt_init_text, sizeof c.prompt_init_text, "%s", text);
        DistillState *s = make_state(&c);
        CHECK(s != NULL);
        if (!s) break;
        int P = 0, C = 0;
        const float *p = distill_prompt(s, &P, &C);
        GPT2 *t = distill_teacher(s);
        CHECK(P == plen && C == t->config.channels);
        for (int i = 0; i < P; i++)
            CHECK(memcmp(p + (size_t)i * C, t->params[0] + (size_t)ids[i % n] * C, C * sizeof(float)) == 0);
        CHECK(memcmp(p, distill_prompt_init(s), (size_t)P * C * sizeof(float)) == 0);
        /* neighbours of the untouched prompt: each vector's own token, similarity 1, no drift */
        int k = 3;
        int *nid = malloc(sizeof(int) * P * k);
        float *sims = malloc(sizeof(float) * P * k), *drift = malloc(sizeof(float) * P);
        CHECK(distill_prompt_neighbours(s, k, nid, sims, drift, err) == PK_OK);
        for (int i = 0; i < P; i++) {
            CHECK(nid[i * k] == ids[i % n]);
            CHECK_NEAR(sims[i * k], 1.0, 1e-5);
            CHECK(sims[i * k + 1] <= sims[i * k]);
            CHECK(drift[i] == 0.0f);
        }
        free(nid);
        free(sims);
        free(drift);
        distill_free(s);
    }
    free(ids);
}

/* d L_prompt / d prompt through the frozen teacher's input-only backward, against central
 * differences of L_prompt on the same student samples. */
static void test_prompt_gradient_matches_finite_differences(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    c.steps = 4;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    /* one step first, so the probe's coefficient (1 - t/N) for the next step t = 2 is 0.5 */
    DistillStepStats st;
    CHECK(distill_step(s, &st, err) == PK_OK);
    int P = 0, C = 0;
    float *prompt = (float *)distill_prompt(s, &P, &C);
    float *g = calloc((size_t)P * C, sizeof(float));
    DistillProbe pr;
    CHECK(distill_probe(s, "train", 4, 77, &pr, g, err) == PK_OK);
    CHECK(pr.positions > 0 && isfinite(pr.prompt_loss));
    CHECK_NEAR(pr.prompt_loss, 0.5 * pr.kl_tp_t + pr.kl_tp_s, 1e-12);
    double gmax = 0;
    for (int i = 0; i < P * C; i++) gmax = fmax(gmax, fabs(g[i]));
    CHECK(gmax > 1e-6);
    PkRng r;
    pk_rng_seed(&r, 5);
    int worst = 0;
    for (int trial = 0; trial < 16; trial++) {
        int i = (int)pk_rng_below(&r, (uint64_t)P * C);
        if (trial < 4) { /* include the largest components */
            int best = 0;
            for (int j = 0; j < P * C; j++)
                if (fabs(g[j]) > fabs(g[best]) && (trial == 0 || fabs(g[j]) < gmax * (1.0 - 0.1 * trial))) best = j;
            i = best;
        }
        float keep = prompt[i], h = 1e-2f;
        DistillProbe up, dn;
        prompt[i] = keep + h;
        float hu = prompt[i] - keep;
        CHECK(distill_probe(s, "train", 4, 77, &up, NULL, err) == PK_OK);
        prompt[i] = keep - h;
        float hd = keep - prompt[i];
        CHECK(distill_probe(s, "train", 4, 77, &dn, NULL, err) == PK_OK);
        prompt[i] = keep;
        double fd = (up.prompt_loss - dn.prompt_loss) / ((double)hu + hd);
        double e = fabs(fd - g[i]);
        if (!(e < 2e-3 * gmax + 0.05 * fabs(fd))) {
            worst++;
            printf("    prompt[%d]: analytic %.6g, finite difference %.6g\n", i, g[i], fd);
        }
    }
    CHECK(worst == 0);
    free(g);
    distill_free(s);
}

/* The mechanism: prompt updates make T' closer to the student than T is, on held-out prompts. */
static void test_prompt_updates_bring_teacher_to_student(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    c.steps = 30;
    c.lr = 1e-9f; /* the student stays put: only the prompt learns */
    c.prompt_lr = 3e-2f;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    DistillProbe before, after;
    CHECK(distill_probe(s, "valid", 6, 123, &before, NULL, err) == PK_OK);
    for (int i = 0; i < 30; i++) {
        DistillStepStats st;
        CHECK(distill_step(s, &st, err) == PK_OK);
    }
    CHECK(distill_probe(s, "valid", 6, 123, &after, NULL, err) == PK_OK);
    CHECK_MSG(after.kl_tp_s < after.kl_t_s, "KL(T'||S) %g vs KL(T||S) %g", after.kl_tp_s, after.kl_t_s);
    CHECK_MSG(after.kl_tp_s < before.kl_tp_s, "KL(T'||S) %g before, %g after", before.kl_tp_s, after.kl_tp_s);
    CHECK_NEAR(after.kl_t_s, before.kl_t_s, 1e-3 * before.kl_t_s); /* the student did not move */
    float drift[16];
    CHECK(distill_prompt_neighbours(s, 1, NULL, NULL, drift, err) == PK_OK);
    CHECK(drift[0] > 0);
    distill_free(s);
}

static int dir_has(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return pk_file_exists(p);
}

/* Save at step k, load into a fresh state: steps k+1.. give bit-identical losses and weights. */
static void check_resume(const char *method) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN], ck[400];
    snprintf(ck, sizeof ck, "%s/ck-%s", world.root, method);
    RunConfig c;
    base_config(&c, method);
    c.batch_size = 5; /* 24 examples: epochs end mid-run, so reshuffles are covered */
    DistillState *a = make_state(&c), *b = make_state(&c);
    CHECK(a && b);
    if (!a || !b) return;
    DistillStepStats st;
    for (int i = 0; i < 4; i++) CHECK(distill_step(a, &st, err) == PK_OK);
    CHECK(distill_save_checkpoint(a, ck, err) == PK_OK);
    CHECK(distill_save_checkpoint(a, ck, err) == PK_OK); /* replacing an existing checkpoint works */
    CHECK(dir_has(ck, "model.safetensors") && dir_has(ck, "config.json") && dir_has(ck, "state.safetensors"));
    CHECK(dir_has(ck, "prompt.safetensors") == !strcmp(method, "promptkd"));
    char tmp[450];
    snprintf(tmp, sizeof tmp, "%s.tmp", ck);
    CHECK(!pk_file_exists(tmp));
    double la[8][DISTILL_MAX_LOSSES], lb[8][DISTILL_MAX_LOSSES];
    for (int i = 0; i < 4; i++) {
        CHECK(distill_step(a, &st, err) == PK_OK);
        memcpy(la[i], st.losses, sizeof la[i]);
    }
    int rc = distill_load_checkpoint(b, ck, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    CHECK(distill_step_index(b) == 4);
    for (int i = 0; i < 4; i++) {
        CHECK(distill_step(b, &st, err) == PK_OK);
        memcpy(lb[i], st.losses, sizeof lb[i]);
        CHECK_MSG(memcmp(la[i], lb[i], sizeof la[i]) == 0, "%s step %d: %.17g vs %.17g", method, 5 + i, la[i][0],
                  lb[i][0]);
    }
    GPT2 *sa = distill_student(a), *sb = distill_student(b);
    CHECK(memcmp(sa->params_memory, sb->params_memory, sa->num_parameters * sizeof(float)) == 0);
    int P, C;
    const float *pa = distill_prompt(a, &P, &C), *pb = distill_prompt(b, NULL, NULL);
    if (pa) CHECK(memcmp(pa, pb, (size_t)P * C * sizeof(float)) == 0);
    distill_free(a);
    distill_free(b);
    /* a checkpoint of another method is refused, naming both */
    RunConfig o;
    base_config(&o, strcmp(method, "rkl") ? "rkl" : "kd");
    DistillState *x = make_state(&o);
    if (x) {
        CHECK(distill_load_checkpoint(x, ck, err) == PK_FAIL);
        CHECK(strstr(err, method) != NULL);
        distill_free(x);
    }
}

static void test_resume_promptkd_bit_exact(void) { check_resume("promptkd"); }
static void test_resume_gkd_bit_exact(void) { check_resume("gkd"); }

static void test_eval_generate_and_config(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    double r1 = -1, r2 = -2;
    char *preds[6] = {0};
    int n = 0;
    CHECK(distill_eval_rouge(s, DISTILL_TEACHER, "valid", 0, 12, 10, &r1, preds, &n, err) == PK_OK);
    CHECK(n == 6 && r1 >= 0 && r1 <= 100 && preds[5] != NULL);
    CHECK(r1 > 10); /* the SFT'd teacher answers the colour questions at least partly */
    for (int i = 0; i < n; i++) free(preds[i]);
    CHECK(distill_eval_rouge(s, DISTILL_TEACHER, "valid", 0, 12, 10, &r2, NULL, NULL, err) == PK_OK);
    CHECK(r1 == r2);
    CHECK(distill_eval_rouge(s, DISTILL_PROMPTED_TEACHER, "valid", 3, 12, 10, &r2, NULL, NULL, err) == PK_OK);
    CHECK(distill_eval_rouge(s, DISTILL_STUDENT, "test", 3, 12, 10, &r2, NULL, NULL, err) == PK_FAIL);
    CHECK(strstr(err, "test") != NULL);
    char *out = NULL;
    const Dataset *v = distill_dataset(s, "valid");
    CHECK(v && v->n == 6);
    CHECK(distill_generate(s, DISTILL_STUDENT, v->recs[0].prompt, 8, 1, &out, err) == PK_OK && out);
    free(out);
    /* live keys change; fixed ones are refused by name */
    RunConfig c2 = c;
    c2.lr = 1e-3f;
    c2.base_coef = 0.5f;
    CHECK(distill_apply_config(s, &c2, err) == PK_OK);
    CHECK(distill_config(s)->lr == 1e-3f);
    c2.prompt_len = 5;
    CHECK(distill_apply_config(s, &c2, err) == PK_FAIL);
    CHECK(strstr(err, "prompt_len") != NULL);
    distill_free(s);
    /* sft has no teacher: T and T' are refused */
    base_config(&c, "kd");
    s = make_state(&c);
    if (s) {
        CHECK(distill_generate(s, DISTILL_PROMPTED_TEACHER, "x", 4, 1, &out, err) == PK_FAIL);
        CHECK(strstr(err, "prompt") != NULL);
        double curve[4];
        CHECK(distill_exposure(s, DISTILL_TEACHER, "valid", 2, 2, 4, 9, curve, err) == PK_OK);
        CHECK(isfinite(curve[3]));
        distill_free(s);
    }
}

/* A NaN in the student: the step reports it and changes nothing. */
static void test_nonfinite_step_changes_nothing(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    DistillState *s = make_state(&c);
    if (!s) return;
    GPT2 *m = distill_student(s);
    m->params[14][0] = NAN; /* ln_f.weight */
    int P, C;
    const float *p = distill_prompt(s, &P, &C);
    float *keep = malloc((size_t)P * C * sizeof(float));
    memcpy(keep, p, (size_t)P * C * sizeof(float));
    DistillStepStats st;
    CHECK(distill_step(s, &st, err) == PK_OK);
    CHECK(st.nonfinite == 1);
    CHECK(distill_step_index(s) == 0);
    CHECK(memcmp(keep, p, (size_t)P * C * sizeof(float)) == 0);
    free(keep);
    distill_free(s);
}

static void test_bad_configs_refused(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    DistillState *s = NULL;
    base_config(&c, "magic");
    CHECK(distill_create(&s, &c, err) == PK_FAIL && strstr(err, "method"));
    base_config(&c, "kd");
    snprintf(c.teacher, sizeof c.teacher, "%s/none", world.root);
    CHECK(distill_create(&s, &c, err) == PK_FAIL && strstr(err, "none"));
    base_config(&c, "promptkd");
    snprintf(c.prompt_init_text, sizeof c.prompt_init_text, "%s", "");
    CHECK(distill_create(&s, &c, err) == PK_FAIL && strstr(err, "prompt_init_text"));
    CHECK(s == NULL);
}

static void test_cleanup(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", world.root);
    CHECK(world.root[0] && system(cmd) == 0);
}

int main(void) {
    pk_threads_init(0);
    RUN(test_setup_and_sft);
    RUN(test_prompt_init_is_teacher_wte);
    RUN(test_prompt_gradient_matches_finite_differences);
    RUN(test_prompt_updates_bring_teacher_to_student);
    RUN(test_warmup_rates);
    RUN(test_kd_learns);
    RUN(test_seqkd_learns);
    RUN(test_rkl_learns);
    RUN(test_gkd_learns);
    RUN(test_distillm_learns);
    RUN(test_promptkd_learns);
    RUN(test_resume_promptkd_bit_exact);
    RUN(test_resume_gkd_bit_exact);
    RUN(test_eval_generate_and_config);
    RUN(test_nonfinite_step_changes_nothing);
    RUN(test_bad_configs_refused);
    RUN(test_cleanup);
    TEST_EXIT();
}
