/* The training details the official PromptKD code settles (gmkim-ai/PromptKD, train_promptkd.py),
 * on a tiny world: gradient accumulation that does not depend on the micro-batch layout, the
 * (1 - t/N) weight with t counted from 1, EOS in the last slot of a cut sample, KL(T'||T) logged on
 * its own, dropout only in the training forwards (and resume staying bitwise with it), the
 * grad_accum and dropout keys, and T''s dev ROUGE-L in metrics.jsonl and the engine's snapshot. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "distill.h"
#include "engine.h"
#include "gpt2.h"
#include "parallel.h"
#include "sample.h"
#include "test.h"
#include "tiny_world.h"

static TinyWorld world;
static char runs_dir[320];
static int setup_ok;

static void base_config(RunConfig *c, const char *method) {
    config_defaults(c);
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->teacher, sizeof c->teacher, "%s", world.teacher_dir);
    snprintf(c->student, sizeof c->student, "%s", world.student_dir);
    snprintf(c->tokenizer, sizeof c->tokenizer, "%s", world.tok_dir);
    snprintf(c->train_data, sizeof c->train_data, "%s", world.train_path);
    snprintf(c->valid_data, sizeof c->valid_data, "%s", world.valid_path);
    snprintf(c->run_dir, sizeof c->run_dir, "%s", runs_dir);
    c->seed = 7;
    c->steps = 20;
    c->batch_size = 8;
    c->grad_accum = 1;
    c->dropout = 0;
    c->lr = 5e-3f;
    c->prompt_lr = 5e-3f;
    c->warmup_steps = 0;
    c->prompt_len = 3;
    c->max_new_tokens = 8;
    c->threads = 1;
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

static double loss_named(const DistillStepStats *st, const char *name) {
    for (int i = 0; i < st->n_losses; i++)
        if (!strcmp(st->loss_names[i], name)) return st->losses[i];
    return NAN;
}

/* Models with GPT-2's dropout probabilities in their config.json (0.1), so dropout = -1 means 0.1. */
static void test_setup(void) {
    char err[PK_ERR_LEN];
    int V = tiny_world_create(&world, "official", 24, 4, err);
    CHECK_MSG(V > 0, "%s", err);
    if (V <= 0) return;
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", world.root);
    GPT2Config ta = tiny_arch(2, 32, 2, V), sa = tiny_arch(1, 16, 2, V);
    ta.embd_pdrop = ta.attn_pdrop = ta.resid_pdrop = 0.1f;
    sa.embd_pdrop = sa.attn_pdrop = sa.resid_pdrop = 0.1f;
    CHECK_MSG(tiny_save_random(&ta, 12, world.teacher_dir, err) == PK_OK, "%s", err);
    CHECK_MSG(tiny_save_random(&sa, 11, world.student_dir, err) == PK_OK, "%s", err);
    setup_ok = pk_test_failures_in_current == 0;
}

static void test_config_keys(void) {
    char err[PK_ERR_LEN], v[64];
    RunConfig c;
    config_defaults(&c);
    CHECK(c.grad_accum == 1 && c.dropout == -1.0f);
    CHECK(config_set(&c, "grad_accum", "4", err) == PK_OK && c.grad_accum == 4);
    CHECK(config_set(&c, "grad_accum", "0", err) == PK_FAIL && strstr(err, "grad_accum"));
    CHECK(config_set(&c, "dropout", "0", err) == PK_OK && c.dropout == 0);
    CHECK(config_set(&c, "dropout", "0.25", err) == PK_OK && c.dropout == 0.25f);
    CHECK(config_set(&c, "dropout", "-1", err) == PK_OK && c.dropout == -1.0f);
    CHECK(config_get(&c, "dropout", v, sizeof v, err) == PK_OK && !strcmp(v, "-1"));
    CHECK(config_set(&c, "dropout", "-0.5", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "dropout") && strstr(err, "-1") && strstr(err, "[0, 1)"), "%s", err);
    CHECK(config_set(&c, "dropout", "1", err) == PK_FAIL);
    CHECK(!config_key_is_live("grad_accum") && !config_key_is_live("dropout"));
    CHECK(config_key_help("grad_accum") && config_key_help("dropout"));
}

/* batch_size 8 x grad_accum 1 and 4 x 2 (dropout off): the same losses and weights after a step. */
static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

static void check_accum_equivalence(const char *method) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c1, c2;
    base_config(&c1, method);
    base_config(&c2, method);
    c2.batch_size = 4;
    c2.grad_accum = 2;
    DistillState *a = make_state(&c1), *b = make_state(&c2);
    CHECK(a && b);
    if (!a || !b) {
        distill_free(a);
        distill_free(b);
        return;
    }
    GPT2 *sa = distill_student(a), *sb = distill_student(b);
    size_t np = sa->num_parameters;
    float *before = malloc(np * sizeof(float));
    memcpy(before, sa->params_memory, np * sizeof(float));
    for (int step = 0; step < 2; step++) {
        DistillStepStats x, y;
        CHECK_MSG(distill_step(a, &x, err) == PK_OK, "%s", err);
        CHECK_MSG(distill_step(b, &y, err) == PK_OK, "%s", err);
        CHECK(x.n_losses == y.n_losses && !x.nonfinite && !y.nonfinite);
        CHECK_MSG(x.response_tokens == y.response_tokens, "%s: %d vs %d response tokens (the samples differ)", method,
                  x.response_tokens, y.response_tokens);
        for (int i = 0; i < x.n_losses; i++)
            CHECK_MSG(fabs(x.losses[i] - y.losses[i]) <= 1e-5 * fabs(x.losses[i]) + 1e-9, "%s step %d %s: %.9g vs %.9g",
                      method, step + 1, x.loss_names[i], x.losses[i], y.losses[i]);
        CHECK_MSG(fabs(x.grad_norm - y.grad_norm) <= 1e-5 * x.grad_norm, "%s grad norm %.9g vs %.9g", method,
                  x.grad_norm, y.grad_norm);
    }
    double w = rel_l2(sa->params_memory, sb->params_memory, np);
    CHECK_MSG(w <= 1e-5, "%s: weights differ by %g (relative L2)", method, w);
    /* the updates themselves, not only weights dominated by their initial values */
    float *ua = malloc(np * sizeof(float)), *ub = malloc(np * sizeof(float));
    for (size_t i = 0; i < np; i++) {
        ua[i] = sa->params_memory[i] - before[i];
        ub[i] = sb->params_memory[i] - before[i];
    }
    double u = rel_l2(ua, ub, np);
    CHECK_MSG(u <= 1e-3, "%s: updates differ by %g (relative L2)", method, u);
    int P = 0, C = 0;
    const float *pa = distill_prompt(a, &P, &C), *pb = distill_prompt(b, NULL, NULL);
    if (pa) {
        double pw = rel_l2(pa, pb, (size_t)P * C);
        CHECK_MSG(pw <= 1e-5, "%s: prompts differ by %g (relative L2)", method, pw);
    }
    free(before);
    free(ua);
    free(ub);
    distill_free(a);
    distill_free(b);
}

static void test_grad_accum_equivalence_sft(void) { check_accum_equivalence("sft"); }
static void test_grad_accum_equivalence_rkl(void) { check_accum_equivalence("rkl"); }
static void test_grad_accum_equivalence_promptkd(void) { check_accum_equivalence("promptkd"); }

/* prompt_reg_loss = (1 - t/N) base_coef KL(T'||T) with t = 1 at the first step and t = N at the last. */
static void test_reg_weight_counts_t_from_1(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    c.steps = 3;
    c.base_coef = 1.5f;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    for (int t = 1; t <= 3; t++) {
        DistillStepStats st;
        CHECK_MSG(distill_step(s, &st, err) == PK_OK, "%s", err);
        double kl = loss_named(&st, "kl_tprime_t"), reg = loss_named(&st, "prompt_reg_loss");
        CHECK(isfinite(kl) && kl > 0 && st.step == t);
        CHECK_NEAR(reg, (1.0 - t / 3.0) * 1.5 * kl, 1e-9 * kl);
        if (t == 1) CHECK_NEAR(reg, (2.0 / 3.0) * 1.5 * kl, 1e-9 * kl); /* not 1.5 * kl: t starts at 1 */
        if (t == 3) CHECK(reg == 0);
    }
    distill_free(s);
}

/* kl_tprime_t is logged whatever base_coef is, and is exactly distill_probe's kl_tp_t on a case
 * where the samples are known: with max_new_tokens = 1 every response is a single slot, which the
 * cut turns into EOS, so a step over all 12 training prompts (6 x 2) scores the same positions as
 * a probe of the whole train split. */
static void test_kl_tprime_t(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    c.base_coef = 0;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    DistillStepStats st;
    CHECK_MSG(distill_step(s, &st, err) == PK_OK, "%s", err);
    CHECK(st.n_losses == 5 && !strcmp(st.loss_names[4], "kl_tprime_t"));
    CHECK(st.losses[4] > 0 && loss_named(&st, "prompt_reg_loss") == 0);
    distill_free(s);

    /* the records without context: their prompts fit the models whole, so the step keeps all of
     * them and the probe cuts none */
    char path[400], *text = NULL;
    size_t len = 0;
    PkBuf short_recs = {0};
    snprintf(path, sizeof path, "%s/short.jsonl", world.root);
    CHECK(pk_read_file(world.train_path, &text, &len, err) == PK_OK);
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, "\"context\":\"\"")) pk_buf_printf(&short_recs, "%s\n", line);
    free(text);
    CHECK(short_recs.data && pk_write_file_atomic(path, short_recs.data, short_recs.len, err) == PK_OK);
    pk_buf_free(&short_recs);
    base_config(&c, "promptkd");
    snprintf(c.train_data, sizeof c.train_data, "%s", path);
    c.batch_size = 6;
    c.grad_accum = 2;
    c.max_new_tokens = 1;
    s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    DistillProbe pr;
    CHECK_MSG(distill_probe(s, "train", 0, 99, &pr, NULL, err) == PK_OK, "%s", err);
    CHECK_MSG(distill_step(s, &st, err) == PK_OK, "%s", err);
    CHECK(pr.positions == 12 && st.response_tokens == 12);
    CHECK_NEAR(loss_named(&st, "kl_tprime_t"), pr.kl_tp_t, 1e-6 * pr.kl_tp_t);
    CHECK_NEAR(loss_named(&st, "prompt_guide_loss"), pr.kl_tp_s, 1e-6 * pr.kl_tp_s);
    CHECK_NEAR(loss_named(&st, "prompt_reg_loss"), (1.0 - 1.0 / c.steps) * pr.kl_tp_t, 1e-6 * pr.kl_tp_t);
    distill_free(s);
}

/* A cut sample ends with EOS in its last slot; one that stopped at EOS is unchanged. */
static void test_cut_sample_ends_with_eos(void) {
    int resp[3 * 4] = {5, 6, 7, 8, /* cut at 4 */ 9, 3, -1, -1, /* stopped at EOS (3) */ 4, 4, 4, -1 /* cut at 3 */};
    int lens[3] = {4, 2, 3};
    sample_end_with_eos(resp, 4, lens, 3, 3);
    CHECK(resp[3] == 3 && resp[0] == 5 && resp[2] == 7);
    CHECK(resp[4] == 9 && resp[5] == 3 && resp[6] == -1);
    CHECK(resp[10] == 3 && resp[9] == 4 && resp[11] == -1);
    if (!setup_ok) return;
    /* in training: with one new token every response is [EOS], so what was sampled no longer
     * matters and two sampling seeds give the same divergences */
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    c.max_new_tokens = 1;
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    DistillProbe a, b;
    CHECK_MSG(distill_probe(s, "valid", 0, 1, &a, NULL, err) == PK_OK, "%s", err);
    CHECK_MSG(distill_probe(s, "valid", 0, 2, &b, NULL, err) == PK_OK, "%s", err);
    CHECK(a.positions == 4 && b.positions == 4);
    CHECK(a.kl_s_tp == b.kl_s_tp && a.kl_tp_s == b.kl_tp_s && a.kl_s_t == b.kl_s_t);
    /* and with room for more tokens the seeds do sample different responses */
    distill_free(s);
    base_config(&c, "promptkd");
    c.max_new_tokens = 4;
    s = make_state(&c);
    if (!s) return;
    CHECK(distill_probe(s, "valid", 0, 1, &a, NULL, err) == PK_OK && distill_probe(s, "valid", 0, 2, &b, NULL, err) == PK_OK);
    CHECK(a.kl_s_tp != b.kl_s_tp);
    distill_free(s);
}

/* Dropout changes the trained forwards (student loss, prompt loss) but not the samples, which come
 * from eval-mode decoding; dropout = -1 takes config.json's 0.1. */
static void one_step(const char *method, float dropout, int grad_accum, DistillStepStats *st) {
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, method);
    c.dropout = dropout;
    c.grad_accum = grad_accum;
    c.batch_size = 8 / grad_accum;
    memset(st, 0, sizeof *st);
    DistillState *s = make_state(&c);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_MSG(distill_step(s, st, err) == PK_OK, "%s", err);
    distill_free(s);
}

static void test_dropout_only_in_training_forwards(void) {
    if (!setup_ok) return;
    DistillStepStats off, on, dflt, expl;
    one_step("promptkd", 0, 1, &off);
    one_step("promptkd", 0.3f, 1, &on);
    CHECK(off.response_tokens == on.response_tokens); /* same samples */
    CHECK_MSG(off.losses[0] != on.losses[0], "student loss %.9g with and without dropout", off.losses[0]);
    CHECK(loss_named(&off, "kl_tprime_t") != loss_named(&on, "kl_tprime_t"));
    CHECK(isfinite(on.losses[0]) && isfinite(loss_named(&on, "prompt_loss")));
    one_step("promptkd", -1, 1, &dflt);
    one_step("promptkd", 0.1f, 1, &expl);
    CHECK(memcmp(dflt.losses, expl.losses, sizeof dflt.losses) == 0);
    CHECK(dflt.losses[0] != off.losses[0]);
    DistillStepStats sft_off, sft_on;
    one_step("sft", 0, 1, &sft_off);
    one_step("sft", 0.3f, 1, &sft_on);
    CHECK(sft_off.losses[0] != sft_on.losses[0]);
    /* dropout off in every probe: the state's dropout key does not change what a probe measures */
    char err[PK_ERR_LEN];
    RunConfig c;
    base_config(&c, "promptkd");
    DistillState *a = make_state(&c);
    c.dropout = 0.3f;
    DistillState *b = make_state(&c);
    if (a && b) {
        DistillProbe pa, pb;
        CHECK(distill_probe(a, "valid", 0, 5, &pa, NULL, err) == PK_OK);
        CHECK(distill_probe(b, "valid", 0, 5, &pb, NULL, err) == PK_OK);
        CHECK(memcmp(&pa, &pb, sizeof pa) == 0);
    }
    distill_free(a);
    distill_free(b);
}

/* Save at step k, load into a fresh state: steps k+1.. give bit-identical losses, weights and prompt,
 * with dropout on and two micro-batches per step. */
static void check_resume(const char *method) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN], ck[400];
    snprintf(ck, sizeof ck, "%s/ck-%s", world.root, method);
    RunConfig c;
    base_config(&c, method);
    c.batch_size = 5; /* 10 rows a step over 24 examples: epochs end mid-step */
    c.grad_accum = 2;
    c.dropout = 0.2f;
    DistillState *a = make_state(&c), *b = make_state(&c);
    CHECK(a && b);
    if (!a || !b) {
        distill_free(a);
        distill_free(b);
        return;
    }
    DistillStepStats st;
    for (int i = 0; i < 3; i++) CHECK(distill_step(a, &st, err) == PK_OK);
    CHECK_MSG(distill_save_checkpoint(a, ck, err) == PK_OK, "%s", err);
    double la[4][DISTILL_MAX_LOSSES];
    for (int i = 0; i < 4; i++) {
        CHECK(distill_step(a, &st, err) == PK_OK);
        memcpy(la[i], st.losses, sizeof la[i]);
    }
    CHECK_MSG(distill_load_checkpoint(b, ck, err) == PK_OK, "%s", err);
    for (int i = 0; i < 4; i++) {
        CHECK(distill_step(b, &st, err) == PK_OK);
        CHECK_MSG(memcmp(la[i], st.losses, sizeof la[i]) == 0, "%s step %d: %.17g vs %.17g", method, 4 + i, la[i][0],
                  st.losses[0]);
    }
    GPT2 *sa = distill_student(a), *sb = distill_student(b);
    CHECK(memcmp(sa->params_memory, sb->params_memory, sa->num_parameters * sizeof(float)) == 0);
    int P, C;
    const float *pa = distill_prompt(a, &P, &C), *pb = distill_prompt(b, NULL, NULL);
    if (pa) CHECK(memcmp(pa, pb, (size_t)P * C * sizeof(float)) == 0);
    distill_free(a);
    distill_free(b);
}

static void test_resume_grad_accum_dropout_promptkd(void) { check_resume("promptkd"); }
static void test_resume_grad_accum_dropout_rkl(void) { check_resume("rkl"); }

/* ---- the engine: T''s dev ROUGE-L in metrics.jsonl, the snapshot, and after a resume ---- */

static const EngineSeries *find_series(const EngineSnapshot *s, const char *name) {
    for (int i = 0; s && i < s->n_series; i++)
        if (!strcmp(s->series[i].name, name)) return &s->series[i];
    return NULL;
}

static void test_engine_scores_tprime(void) {
    if (!setup_ok) return;
    char err[PK_ERR_LEN] = "", reply[512], run_path[700];
    RunConfig c;
    base_config(&c, "promptkd");
    snprintf(c.name, sizeof c.name, "tprime");
    c.steps = 6;
    c.eval_interval = 100;
    c.eval_samples = 2;
    c.eval_max_new_tokens = 5;
    c.gen_interval = 0;
    Engine *e = NULL;
    CHECK_MSG(engine_create(&e, &c, NULL, 0, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 60) == ENGINE_PAUSED);
    CHECK_MSG(engine_step(e, 1, err) == PK_OK, "%s", err);
    CHECK_MSG(engine_eval(e, "valid", reply, sizeof reply, err) == PK_OK, "%s", err);
    CHECK_MSG(strstr(reply, "T'"), "%s", reply);
    CHECK_MSG(engine_save(e, NULL, reply, sizeof reply, err) == PK_OK, "%s", err);
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    const EngineSeries *tp = find_series(s, "dev_rougeL_tprime"), *kl = find_series(s, "kl_tprime_t");
    CHECK(tp && tp->n == 1 && tp->x[0] == 1 && tp->y[0] >= 0 && tp->y[0] <= 100);
    CHECK(kl && kl->n == 1 && kl->y[0] > 0);
    double tp_value = tp ? tp->y[0] : -1;
    engine_snapshot_release(e, s);
    snprintf(run_path, sizeof run_path, "%s", engine_run_path(e));
    engine_destroy(e);

    /* metrics.jsonl: the eval event carries both scores; the step line carries kl_tprime_t */
    char path[760], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_path);
    CHECK(pk_read_file(path, &text, &len, err) == PK_OK);
    int eval_lines = 0, kl_lines = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *ev = cJSON_GetObjectItem(o, "event");
        if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "eval")) {
            eval_lines++;
            CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "dev_rougeL")));
            const cJSON *r = cJSON_GetObjectItem(o, "dev_rougeL_tprime");
            CHECK(cJSON_IsNumber(r) && r->valuedouble == tp_value);
        }
        if (!ev && cJSON_IsNumber(cJSON_GetObjectItem(o, "kl_tprime_t"))) kl_lines++;
        cJSON_Delete(o);
    }
    free(text);
    CHECK(eval_lines == 1 && kl_lines == 1);

    /* a resumed run rebuilds both series from metrics.jsonl */
    e = NULL;
    CHECK_MSG(engine_create(&e, &c, run_path, 0, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 60) == ENGINE_PAUSED);
    s = engine_snapshot_acquire(e);
    tp = find_series(s, "dev_rougeL_tprime");
    kl = find_series(s, "kl_tprime_t");
    CHECK(tp && tp->n == 1 && tp->y[0] == tp_value);
    CHECK(kl && kl->n == 1);
    engine_snapshot_release(e, s);
    engine_destroy(e);
}

static void test_cleanup(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", world.root);
    CHECK(world.root[0] && system(cmd) == 0);
}

int main(void) {
    pk_threads_init(1);
    RUN(test_setup);
    RUN(test_config_keys);
    RUN(test_grad_accum_equivalence_sft);
    RUN(test_grad_accum_equivalence_rkl);
    RUN(test_grad_accum_equivalence_promptkd);
    RUN(test_reg_weight_counts_t_from_1);
    RUN(test_kl_tprime_t);
    RUN(test_cut_sample_ends_with_eos);
    RUN(test_dropout_only_in_training_forwards);
    RUN(test_resume_grad_accum_dropout_promptkd);
    RUN(test_resume_grad_accum_dropout_rkl);
    RUN(test_engine_scores_tprime);
    RUN(test_cleanup);
    TEST_EXIT();
}
