/* The live engine on a tiny world (a BPE trained on a few records, a random 2-layer
 * teacher and 1-layer student): pause/step/resume/set through the API, snapshot
 * contents and versions, events in metrics.jsonl, checkpoint + resume giving the
 * uninterrupted run's losses bit for bit, stop_after, and the non-finite pause that
 * keeps the last good checkpoint. */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "distill.h"
#include "engine.h"
#include "gpt2.h"
#include "test.h"
#include "tiny_world.h"
#include "tokenizer.h"

static TinyWorld world;
static char runs_dir[300];
static int setup_ok;

static void base_config(RunConfig *c, const char *name) {
    char err[PK_ERR_LEN];
    config_defaults(c);
    config_set(c, "teacher", world.teacher_dir, err);
    config_set(c, "student", world.student_dir, err);
    config_set(c, "tokenizer", world.tok_dir, err);
    config_set(c, "train_data", world.train_path, err);
    config_set(c, "valid_data", world.valid_path, err);
    config_set(c, "test_data", world.valid_path, err);
    config_set(c, "run_dir", runs_dir, err);
    config_set(c, "name", name, err);
    c->seed = 5;
    c->steps = 8;
    c->batch_size = 4;
    c->lr = 5e-3f;
    c->prompt_lr = 5e-3f;
    c->warmup_steps = 2;
    c->prompt_len = 3;
    c->max_new_tokens = 6;
    c->eval_interval = 4;
    c->eval_samples = 2;
    c->eval_max_new_tokens = 6;
    c->gen_interval = 0;
    c->exposure_len = 4;
    c->exposure_prompts = 2;
    c->exposure_samples = 2;
    c->threads = 1;
}

static void test_setup(void) {
    char err[PK_ERR_LEN];
    int V = tiny_world_create(&world, "engine", 16, 4, err);
    CHECK_MSG(V > 0, "%s", err);
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", world.root);
    GPT2Config ta = tiny_arch(2, 32, 2, V);
    CHECK_MSG(tiny_save_random(&ta, 12, world.teacher_dir, err) == PK_OK, "%s", err);
    setup_ok = pk_test_failures_in_current == 0;
}

/* ---- helpers over the run folder ---- */

static char *read_text(const char *path) {
    char *t = NULL, err[PK_ERR_LEN];
    size_t n;
    if (pk_read_file(path, &t, &n, err) != PK_OK) return NULL;
    return t;
}

/* The JSON objects of metrics.jsonl, one per line (a cJSON array). */
static cJSON *read_metrics(const char *run_path) {
    char path[700];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_path);
    char *t = read_text(path);
    if (!t) return NULL;
    cJSON *all = cJSON_CreateArray();
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (!o) {
            printf("    bad metrics line: %s\n", line);
            cJSON_AddItemToArray(all, cJSON_CreateNull());
        } else {
            cJSON_AddItemToArray(all, o);
        }
    }
    free(t);
    return all;
}

/* "student_loss=...;prompt_loss=...;" for the step line of `step`, exact text of the numbers. */
static int loss_text(const cJSON *metrics, int step, char *out, size_t len) {
    const cJSON *o;
    out[0] = 0;
    cJSON_ArrayForEach(o, metrics) {
        if (cJSON_GetObjectItem(o, "event")) continue;
        const cJSON *s = cJSON_GetObjectItem(o, "step");
        if (!cJSON_IsNumber(s) || (int)s->valuedouble != step) continue;
        size_t used = 0;
        for (const cJSON *it = o->child; it; it = it->next)
            if (strstr(it->string, "loss")) {
                char *v = cJSON_PrintUnformatted(it);
                used += (size_t)snprintf(out + used, len - used, "%s=%.17g;", it->string, it->valuedouble);
                cJSON_free(v);
            }
        return 1;
    }
    return 0;
}

static int count_events(const cJSON *metrics, const char *event) {
    int n = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, metrics) {
        const cJSON *ev = cJSON_GetObjectItem(o, "event");
        if (cJSON_IsString(ev) && !strcmp(ev->valuestring, event)) n++;
    }
    return n;
}

static const EngineSeries *find_series(const EngineSnapshot *s, const char *name) {
    for (int i = 0; i < s->n_series; i++)
        if (!strcmp(s->series[i].name, name)) return &s->series[i];
    return NULL;
}

static int latest_step(const char *run_path) {
    char path[700];
    snprintf(path, sizeof path, "%s/checkpoints/latest", run_path);
    char *t = read_text(path);
    int step = -1;
    if (t && sscanf(t, "step-%d", &step) != 1) step = -1;
    free(t);
    return step;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL, err[PK_ERR_LEN];
    size_t nx = 0, ny = 0;
    int ok = pk_read_file(a, &x, &nx, err) == PK_OK && pk_read_file(b, &y, &ny, err) == PK_OK && nx == ny &&
             !memcmp(x, y, nx);
    free(x), free(y);
    return ok;
}

/* ---- tests ---- */

static void test_commands_and_snapshots(void) {
    if (!setup_ok) return;
    RunConfig c;
    base_config(&c, "api");
    char err[PK_ERR_LEN] = "", reply[2048];
    Engine *e = NULL;
    CHECK_MSG(engine_create(&e, &c, NULL, 0, err) == PK_OK, "%s", err);
    if (!e) return;
    const EngineSnapshot *first = engine_snapshot_acquire(e); /* there from the start */
    CHECK(first != NULL && first->version >= 1);
    engine_snapshot_release(e, first);
    CHECK(engine_wait_idle(e, 60) == ENGINE_PAUSED);
    const EngineSnapshot *s0 = engine_snapshot_acquire(e);
    CHECK(s0 && s0->step == 0 && s0->total_steps == 8 && s0->state == ENGINE_PAUSED);
    CHECK(s0 && !strcmp(s0->method, "promptkd"));
    /* neighbours are there on pause: prompt_len x k printable tokens */
    CHECK(s0 && s0->prompt_len == 3 && s0->neighbours_k == 5 && s0->neighbour_tokens && s0->neighbour_sims);
    CHECK(s0 && s0->dev_count == 4 && s0->dev_prompt && *s0->dev_prompt);
    unsigned long v0 = s0 ? s0->version : 0;

    CHECK_MSG(engine_step(e, 3, err) == PK_OK, "%s", err);
    const EngineSnapshot *s1 = engine_snapshot_acquire(e);
    CHECK(s1 && s1->step == 3 && s1->version > v0 && s1->state == ENGINE_PAUSED);
    const EngineSeries *sl = s1 ? find_series(s1, "student_loss") : NULL;
    CHECK(sl && sl->n == 3 && sl->x[0] == 1 && sl->x[2] == 3);
    CHECK(s1 && find_series(s1, "prompt_loss") && find_series(s1, "prompt_reg_loss") &&
          find_series(s1, "prompt_guide_loss"));
    CHECK(s1 && s1->tokens_per_s > 0 && s1->gflops > 0 && s1->elapsed_s > 0 && s1->eta_s > 0);
    /* the older snapshot is immutable: still step 0 */
    CHECK(s0 && s0->step == 0 && !find_series(s0, "student_loss"));
    engine_snapshot_release(e, s0);

    /* set: live keys only, validated, logged as an event */
    CHECK_MSG(engine_set(e, "lr", "0.002", err) == PK_OK, "%s", err);
    char v[64];
    CHECK(engine_get(e, "lr", v, sizeof v, err) == PK_OK && !strcmp(v, "0.002"));
    CHECK(engine_set(e, "batch_size", "2", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "batch_size") && strstr(err, "fixed"), "%s", err);
    CHECK(engine_set(e, "lr", "abc", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'lr'") && strstr(err, "> 0"), "%s", err);
    CHECK(engine_set(e, "lrr", "1", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "unknown key 'lrr'"), "%s", err);
    const EngineSnapshot *s2 = engine_snapshot_acquire(e);
    int found = 0;
    for (int i = 0; s2 && i < s2->n_hparams; i++)
        if (!strcmp(s2->hparam_keys[i], "lr")) found = !strcmp(s2->hparam_values[i], "0.002");
    CHECK(found);
    CHECK(s2 && s2->n_log > 0);
    engine_snapshot_release(e, s2);

    /* on-demand analyses */
    CHECK_MSG(engine_eval(e, "valid", reply, sizeof reply, err) == PK_OK, "%s", err);
    CHECK_MSG(strstr(reply, "ROUGE-L"), "%s", reply);
    CHECK(engine_eval(e, "nope", reply, sizeof reply, err) == PK_FAIL && strstr(err, "nope"));
    CHECK_MSG(engine_generate(e, "What colour is the cat?", reply, sizeof reply, err) == PK_OK, "%s", err);
    CHECK_MSG(strstr(reply, "T':") && strstr(reply, "S:"), "%s", reply);
    CHECK_MSG(engine_exposure(e, reply, sizeof reply, err) == PK_OK, "%s", err);
    CHECK_MSG(strstr(reply, "ExAccErr"), "%s", reply);
    CHECK_MSG(engine_select_dev(e, 1, err) == PK_OK, "%s", err);
    CHECK_MSG(engine_select_dev(e, -2, err) == PK_OK, "%s", err);
    const EngineSnapshot *s3 = engine_snapshot_acquire(e);
    CHECK(s3 && s3->n_exposure == 1 && s3->exposure[0].n == 4 && s3->exposure[0].step == 3);
    CHECK(s3 && s3->dev_index == 3 && s3->gen_step == 3 && s3->gen_student && s3->gen_prompted_teacher);
    CHECK(s3 && find_series(s3, "dev_rougeL") && find_series(s3, "dev_rougeL")->n == 1);
    engine_snapshot_release(e, s3);

    /* run_steps returns at once; the run pauses by itself after them */
    CHECK(engine_run_steps(e, 2, err) == PK_OK);
    CHECK(engine_wait_idle(e, 60) == ENGINE_PAUSED);
    const EngineSnapshot *s4 = engine_snapshot_acquire(e);
    CHECK(s4 && s4->step == 5);
    engine_snapshot_release(e, s4);
    CHECK(engine_step(e, 0, err) == PK_FAIL);

    /* resume runs to the end: eval, checkpoint, FINISHED */
    CHECK(engine_resume(e, err) == PK_OK);
    CHECK(engine_wait_idle(e, 60) == ENGINE_FINISHED);
    CHECK(engine_resume(e, err) == PK_FAIL && strstr(err, "finished"));
    CHECK_MSG(engine_save(e, NULL, reply, sizeof reply, err) == PK_OK, "%s", err);
    const char *run = engine_run_path(e);
    CHECK(latest_step(run) == 8);
    char path[800];
    snprintf(path, sizeof path, "%s/checkpoints/step-8/model.safetensors", run);
    CHECK(pk_file_exists(path));
    snprintf(path, sizeof path, "%s/checkpoints/step-8/prompt.safetensors", run);
    CHECK(pk_file_exists(path));
    snprintf(path, sizeof path, "%s/best/model.safetensors", run);
    CHECK(pk_file_exists(path));
    snprintf(path, sizeof path, "%s/config.json", run);
    CHECK(pk_file_exists(path));
    cJSON *m = read_metrics(run);
    CHECK(m != NULL);
    int steps_seen = 0, complete = 1;
    const cJSON *o;
    cJSON_ArrayForEach(o, m) {
        if (cJSON_GetObjectItem(o, "event")) continue;
        steps_seen++;
        const char *need[] = {"step", "student_loss", "prompt_loss", "lr", "prompt_lr", "tokens_per_s", "elapsed_s"};
        for (int i = 0; i < 7; i++)
            if (!cJSON_IsNumber(cJSON_GetObjectItem(o, need[i]))) complete = 0;
    }
    CHECK(steps_seen == 8 && complete);
    CHECK(count_events(m, "set") == 1);
    cJSON_ArrayForEach(o, m) {
        const cJSON *ev = cJSON_GetObjectItem(o, "event");
        if (!cJSON_IsString(ev) || strcmp(ev->valuestring, "set")) continue;
        CHECK(cJSON_GetObjectItem(o, "step")->valuedouble == 3);
        CHECK(!strcmp(cJSON_GetObjectItem(o, "key")->valuestring, "lr"));
        CHECK(cJSON_GetObjectItem(o, "old")->valuedouble == 0.005);
        CHECK(cJSON_GetObjectItem(o, "new")->valuedouble == 0.002);
    }
    CHECK(count_events(m, "eval") >= 3); /* steps 4 and 8 and the on-demand one */
    CHECK(count_events(m, "exposure") == 1);
    cJSON_Delete(m);
    engine_snapshot_release(e, s1);
    CHECK(engine_stop(e, err) == PK_OK);
    CHECK(engine_pause(e, err) == PK_FAIL && strstr(err, "stopped"));
    engine_destroy(e);

    /* the same name again gets its own folder */
    CHECK_MSG(engine_create(&e, &c, NULL, 0, err) == PK_OK, "%s", err);
    if (e) {
        const char *p = engine_run_path(e);
        CHECK_MSG(strlen(p) > 6 && !strcmp(p + strlen(p) - 6, "/api-2"), "%s", p);
        engine_destroy(e);
    }
}

/* 8 steps straight vs 4 steps (stop_after) + resume + 4 steps: identical losses. */
static void test_resume_is_bit_identical(void) {
    if (!setup_ok) return;
    RunConfig c;
    char err[PK_ERR_LEN] = "";
    base_config(&c, "straight");
    Engine *e = NULL;
    CHECK_MSG(engine_create(&e, &c, NULL, 1, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 120) == ENGINE_FINISHED);
    char straight[600];
    snprintf(straight, sizeof straight, "%s", engine_run_path(e));
    engine_destroy(e);

    base_config(&c, "split");
    c.stop_after = 4;
    CHECK_MSG(engine_create(&e, &c, NULL, 1, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 120) == ENGINE_PAUSED);
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    CHECK(s && s->step == 4);
    CHECK_MSG(s && strstr(s->message, "stop_after") && strstr(s->message, "step-4"), "%s", s ? s->message : "");
    engine_snapshot_release(e, s);
    char split[600];
    snprintf(split, sizeof split, "%s", engine_run_path(e));
    CHECK(latest_step(split) == 4);
    engine_destroy(e);

    /* a fixed key differing from the run's is refused */
    RunConfig bad = c;
    bad.batch_size = 2;
    CHECK(engine_create(&e, &bad, split, 1, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "batch_size") && strstr(err, "live keys"), "%s", err);

    CHECK_MSG(engine_create(&e, &c, split, 1, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 120) == ENGINE_FINISHED);
    s = engine_snapshot_acquire(e);
    CHECK(s && s->step == 8);
    /* the curves cover the whole run, rebuilt from metrics.jsonl */
    CHECK(s && find_series(s, "student_loss") && find_series(s, "student_loss")->n == 8);
    engine_snapshot_release(e, s);
    engine_destroy(e);

    cJSON *a = read_metrics(straight), *b = read_metrics(split);
    CHECK(a && b);
    for (int step = 1; step <= 8 && a && b; step++) {
        char la[1024], lb[1024];
        CHECK(loss_text(a, step, la, sizeof la));
        CHECK(loss_text(b, step, lb, sizeof lb));
        CHECK_MSG(!strcmp(la, lb) && strstr(la, "prompt_loss"), "step %d: %s vs %s", step, la, lb);
    }
    CHECK(b && count_events(b, "resume_from") == 1);
    cJSON_Delete(a);
    cJSON_Delete(b);
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/checkpoints/step-8/model.safetensors", straight);
    snprintf(pb, sizeof pb, "%s/checkpoints/step-8/model.safetensors", split);
    CHECK(same_file(pa, pb));
}

static void test_nonfinite_pauses_and_keeps_checkpoint(void) {
    if (!setup_ok) return;
    RunConfig c;
    char err[PK_ERR_LEN] = "", reply[512];
    base_config(&c, "nan");
    c.eval_interval = 100; /* no automatic checkpoints in the way */
    Engine *e = NULL;
    CHECK_MSG(engine_create(&e, &c, NULL, 0, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 60) == ENGINE_PAUSED);
    CHECK(engine_step(e, 2, err) == PK_OK);
    CHECK_MSG(engine_save(e, NULL, reply, sizeof reply, err) == PK_OK, "%s", err);
    const char *run = engine_run_path(e);
    char ckpt[800], copy[800];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/step-2/state.safetensors", run);
    snprintf(copy, sizeof copy, "%s/state-copy.safetensors", world.root);
    char *t = NULL;
    size_t n = 0;
    CHECK(pk_read_file(ckpt, &t, &n, err) == PK_OK);
    CHECK(t && pk_write_file_atomic(copy, t, n, err) == PK_OK);
    free(t);

    engine_debug_inject_nonfinite(e, 3);
    CHECK(engine_step(e, 3, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "non-finite loss at step 3; paused, last good checkpoint step-2 kept"), "%s", err);
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    CHECK(s && s->state == ENGINE_PAUSED && strstr(s->message, "non-finite loss at step 3"));
    engine_snapshot_release(e, s);
    /* no checkpoint goes into the run until a good step follows */
    CHECK(engine_save(e, NULL, reply, sizeof reply, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "step-2 kept"), "%s", err);
    CHECK(latest_step(run) == 2);
    CHECK(same_file(ckpt, copy));
    cJSON *m = read_metrics(run);
    CHECK(m && count_events(m, "nonfinite") == 1);
    cJSON_Delete(m);

    /* a learning rate far too large blows the student up: the run pauses by itself */
    engine_debug_inject_nonfinite(e, 0);
    CHECK(engine_set(e, "lr", "1e30", err) == PK_OK);
    CHECK(engine_set(e, "prompt_lr", "1e30", err) == PK_OK);
    int rc = engine_step(e, 4, err);
    CHECK_MSG(rc == PK_FAIL && strstr(err, "non-finite loss"), "rc %d: %s", rc, err);
    CHECK(latest_step(run) == 2);
    CHECK(same_file(ckpt, copy));
    engine_destroy(e);
}

static int never_called(void *ctx, struct DistillState *ds, PkBuf *out, char *err) {
    (void)ctx, (void)ds, (void)out;
    return pk_errf(err, "work ran on a read-only engine");
}

/* Same series (name, points, times) in two snapshots. */
static int same_series(const EngineSnapshot *a, const EngineSnapshot *b, char *why, size_t len) {
    if (a->n_series != b->n_series) return snprintf(why, len, "%d vs %d series", a->n_series, b->n_series), 0;
    for (int i = 0; i < a->n_series; i++) {
        const EngineSeries *x = &a->series[i], *y = find_series(b, a->series[i].name);
        if (!y || x->n != y->n) return snprintf(why, len, "series %s: %d vs %d points", x->name, x->n, y ? y->n : -1), 0;
        for (int j = 0; j < x->n; j++)
            if (x->x[j] != y->x[j] || x->y[j] != y->y[j] || x->t[j] != y->t[j])
                return snprintf(why, len, "series %s point %d: (%g, %.17g, %g) vs (%g, %.17g, %g)", x->name, j,
                                x->x[j], x->y[j], x->t[j], y->x[j], y->y[j], y->t[j]),
                       0;
    }
    return 1;
}

/* A finished run opened read-only: every part of the snapshot comes back from the folder, equal
 * to what the live engine showed; commands are refused; a run stopped early opens PAUSED; a
 * resume restores the neighbours and generations too; folders that are not runs say why. */
static void test_open_read_only(void) {
    if (!setup_ok) return;
    RunConfig c;
    char err[PK_ERR_LEN] = "", reply[512];
    base_config(&c, "open");
    c.gen_interval = 2;
    c.exposure_interval = 4;
    Engine *e = NULL;
    CHECK_MSG(engine_create(&e, &c, NULL, 1, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 120) == ENGINE_FINISHED);
    char run[600];
    snprintf(run, sizeof run, "%s", engine_run_path(e));
    const EngineSnapshot *live = engine_snapshot_acquire(e);
    CHECK(engine_stop(e, err) == PK_OK);

    Engine *ro = NULL;
    double t0 = pk_now();
    CHECK_MSG(engine_open(&ro, run, err) == PK_OK, "%s", err);
    double open_s = pk_now() - t0;
    CHECK_MSG(open_s < 0.5, "opening took %.3f s", open_s);
    if (!ro) {
        engine_snapshot_release(e, live);
        engine_destroy(e);
        return;
    }
    CHECK(engine_wait_idle(ro, 1) == ENGINE_FINISHED);
    const EngineSnapshot *s = engine_snapshot_acquire(ro);
    CHECK(s && s->read_only == 1 && live->read_only == 0);
    CHECK(s && s->state == ENGINE_FINISHED && s->step == 8 && s->total_steps == 8 && !strcmp(s->method, "promptkd"));
    CHECK_MSG(s && strstr(s->message, "read-only"), "%s", s ? s->message : "");
    char why[300] = "";
    CHECK_MSG(s && same_series(live, s, why, sizeof why), "%s", why);
    const char *need[] = {"student_loss", "prompt_loss", "kl_tprime_t", "lr", "prompt_lr", "grad_norm",
                          "prompt_grad_norm", "tokens_per_s", "dev_rougeL", "dev_rougeL_tprime", "exaccerr",
                          "neighbour_sim_p0", "neighbour_sim_p2"};
    for (size_t i = 0; s && i < sizeof need / sizeof *need; i++) CHECK_MSG(find_series(s, need[i]), "%s", need[i]);
    const EngineSeries *sl = s ? find_series(s, "student_loss") : NULL;
    CHECK(sl && sl->n == 8 && sl->t && sl->t[0] > 0 && sl->t[7] >= sl->t[0]);
    CHECK(sl && sl->t[7] == s->elapsed_s);
    const EngineSeries *nb = s ? find_series(s, "neighbour_sim_p0") : NULL;
    CHECK_MSG(nb && nb->n > 1, "neighbour history of %d points", nb ? nb->n : -1);
    /* ExAccErr at steps 4 and 8 */
    CHECK(s && s->n_exposure == 2 && s->n_exposure == live->n_exposure);
    for (int i = 0; s && i < s->n_exposure && i < live->n_exposure; i++) {
        CHECK(s->exposure[i].step == live->exposure[i].step && s->exposure[i].n == live->exposure[i].n);
        for (int l = 0; l < s->exposure[i].n; l++) CHECK(s->exposure[i].exaccerr[l] == live->exposure[i].exaccerr[l]);
    }
    /* the last neighbours table */
    CHECK(s && s->prompt_len == 3 && s->neighbours_k == live->neighbours_k && s->neighbour_tokens && s->prompt_drift);
    for (int i = 0; s && s->neighbour_tokens && i < s->prompt_len * s->neighbours_k; i++) {
        CHECK(!strcmp(s->neighbour_tokens[i], live->neighbour_tokens[i]));
        CHECK(s->neighbour_sims[i] == live->neighbour_sims[i]);
    }
    for (int p = 0; s && s->prompt_drift && p < s->prompt_len; p++) CHECK(s->prompt_drift[p] == live->prompt_drift[p]);
    /* the last generations, with the record's parts and each answer's ROUGE-L */
    CHECK(s && s->gen_step == 8 && live->gen_step == 8);
    CHECK(s && !strcmp(s->dev_prompt, live->dev_prompt) && *s->dev_instruction && *s->dev_reference);
    CHECK(s && !strcmp(s->dev_instruction, live->dev_instruction) && !strcmp(s->dev_reference, live->dev_reference));
    CHECK(s && !strcmp(s->dev_context, live->dev_context));
    CHECK(s && !strcmp(s->gen_student, live->gen_student) && !strcmp(s->gen_teacher, live->gen_teacher) &&
          !strcmp(s->gen_prompted_teacher, live->gen_prompted_teacher));
    CHECK(s && s->gen_rougeL_student >= 0 && s->gen_rougeL_teacher >= 0 && s->gen_rougeL_prompted_teacher >= 0);
    CHECK(s && s->gen_rougeL_student == live->gen_rougeL_student && s->gen_rougeL_teacher == live->gen_rougeL_teacher);
    /* hparams from config.json */
    int found = 0;
    for (int i = 0; s && i < s->n_hparams; i++)
        if (!strcmp(s->hparam_keys[i], "gen_interval")) found = !strcmp(s->hparam_values[i], "2");
    CHECK(found);
    CHECK(s && s->last_checkpoint_step == 8);
    engine_snapshot_release(ro, s);
    engine_snapshot_release(e, live);
    engine_destroy(e);

    /* every command is refused, saying why */
    char want[700];
    snprintf(want, sizeof want, "%s is open read-only", run);
    CHECK(engine_pause(ro, err) == PK_FAIL);
    CHECK_MSG(!strcmp(err, want), "%s", err);
    CHECK(engine_set(ro, "lr", "0.1", err) == PK_FAIL && strstr(err, "read-only"));
    CHECK(engine_eval(ro, "valid", reply, sizeof reply, err) == PK_FAIL && strstr(err, "read-only"));
    CHECK(engine_resume(ro, err) == PK_FAIL && strstr(err, "read-only"));
    CHECK(engine_save(ro, NULL, reply, sizeof reply, err) == PK_FAIL && strstr(err, "read-only"));
    PkBuf said = {0};
    CHECK(engine_work(ro, never_called, NULL, &said, err) == PK_FAIL && strstr(err, "read-only"));
    pk_buf_free(&said);
    engine_destroy(ro);

    /* a run stopped early opens PAUSED at its step; resumed, it has its neighbours and generations back */
    base_config(&c, "open-half");
    c.gen_interval = 2;
    c.exposure_interval = 4;
    c.stop_after = 4;
    CHECK_MSG(engine_create(&e, &c, NULL, 1, err) == PK_OK, "%s", err);
    if (!e) return;
    CHECK(engine_wait_idle(e, 120) == ENGINE_PAUSED);
    snprintf(run, sizeof run, "%s", engine_run_path(e));
    live = engine_snapshot_acquire(e);
    CHECK(engine_stop(e, err) == PK_OK);
    CHECK_MSG(engine_open(&ro, run, err) == PK_OK, "%s", err);
    if (ro) {
        s = engine_snapshot_acquire(ro);
        CHECK(s && s->state == ENGINE_PAUSED && s->step == 4 && s->read_only);
        CHECK_MSG(s && same_series(live, s, why, sizeof why), "%s", why);
        engine_snapshot_release(ro, s);
        engine_destroy(ro);
    }
    CHECK_MSG(engine_create(&ro, &c, run, 0, err) == PK_OK, "%s", err);
    if (ro) {
        CHECK(engine_wait_idle(ro, 120) == ENGINE_PAUSED);
        s = engine_snapshot_acquire(ro);
        CHECK(s && s->read_only == 0 && s->step == 4);
        CHECK_MSG(s && same_series(live, s, why, sizeof why), "%s", why);
        nb = s ? find_series(s, "neighbour_sim_p0") : NULL;
        CHECK(nb && nb->n > 1);
        CHECK(s && s->n_exposure == 1 && s->gen_step == 4 && !strcmp(s->gen_student, live->gen_student));
        CHECK(s && s->prompt_len == 3 && s->neighbour_tokens && !strcmp(s->neighbour_tokens[0], live->neighbour_tokens[0]));
        engine_snapshot_release(ro, s);
        engine_destroy(ro);
    }
    engine_snapshot_release(e, live);
    engine_destroy(e);
    cJSON *m = read_metrics(run);
    CHECK(m && count_events(m, "neighbours") >= 3 && count_events(m, "generation") >= 2);
    cJSON_Delete(m);

    /* folders that are not runs: one sentence naming what is missing or malformed */
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/not-a-run", world.root);
    CHECK(pk_mkdirs(dir, err) == PK_OK);
    CHECK(engine_open(&ro, dir, err) == PK_FAIL && !ro);
    CHECK_MSG(strstr(err, dir) && strstr(err, "config.json is missing"), "%s", err);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(pk_write_file_atomic(path, "{\"steps\": 8}\n", 13, err) == PK_OK);
    CHECK(engine_open(&ro, dir, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "metrics.jsonl is missing"), "%s", err);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    const char *bad = "{\"step\":1,\"student_loss\":2}\n{\"step\":2,\"student_loss\":1.5}\n{\"step\":3,\"student_lo\n"
                      "{\"step\":4,\"student_loss\":1}\n";
    CHECK(pk_write_file_atomic(path, bad, strlen(bad), err) == PK_OK);
    CHECK(engine_open(&ro, dir, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "metrics.jsonl:3: ") && strstr(err, "JSON"), "%s", err);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(pk_write_file_atomic(path, "{\"steps\": 8,\n \"lr\": }\n", 22, err) == PK_OK);
    CHECK(engine_open(&ro, dir, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "config.json") && strstr(err, "line 2"), "%s", err);
    snprintf(path, sizeof path, "%s/nope", world.root);
    CHECK(engine_open(&ro, path, err) == PK_FAIL && strstr(err, "nope"));
}

/* ---- the one door: posted commands, replies and events ---- */

/* Takes events until one of `kind` (and, for a reply, with id `id`) comes; the events taken
 * on the way are appended to seen (kinds, for order checks). 0 after timeout_s. */
static int next_event_of(Engine *e, EngineEventKind kind, unsigned long id, EngineEvent *out, double timeout_s,
                         EngineEventKind *seen, int *n_seen, int *seen_steps) {
    double t0 = pk_now();
    while (pk_now() - t0 < timeout_s) {
        EngineEvent ev;
        if (!engine_wait_event(e, &ev, 0.5)) continue;
        if (seen && *n_seen < 64) seen_steps[*n_seen] = ev.step, seen[(*n_seen)++] = ev.kind;
        if (ev.kind == kind && (kind != ENGINE_EVENT_REPLY || ev.id == id)) {
            *out = ev;
            return 1;
        }
        engine_event_clear(&ev);
    }
    return 0;
}

typedef struct {
    pthread_t thread;
    int step;
    int had_state;
} WorkSeen;

static int work_notes(void *ctx, struct DistillState *ds, PkBuf *out, char *err) {
    (void)err;
    WorkSeen *w = ctx;
    w->thread = pthread_self();
    w->had_state = ds != NULL;
    w->step = ds ? distill_step_index(ds) : -1;
    pk_buf_printf(out, "worked at step %d", w->step);
    return PK_OK;
}

static void test_post_replies_and_events(void) {
    if (!setup_ok) return;
    RunConfig c;
    base_config(&c, "door");
    c.steps = 400;
    c.eval_interval = 4;
    char err[PK_ERR_LEN] = "";
    Engine *e = NULL;
    CHECK_MSG(engine_create(&e, &c, NULL, 0, err) == PK_OK, "%s", err);
    if (!e) return;
    EngineEvent ev;
    /* the first thing said: loading ended */
    CHECK(next_event_of(e, ENGINE_EVENT_LOADED, 0, &ev, 60, NULL, NULL, NULL) && ev.state == ENGINE_PAUSED &&
          strstr(ev.text, "loaded promptkd run at step 0"));
    engine_event_clear(&ev);

    /* posting returns at once with increasing ids; each reply carries its command's id, in order */
    unsigned long a = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_SET, .key = "lr", .value = "0.004"}, err);
    unsigned long b = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_SET, .key = "batch_size", .value = "2"}, err);
    unsigned long d = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_STEP, .n = 2}, err);
    CHECK(a > 0 && b > a && d > b);
    EngineEvent r[3];
    int got = 0;
    while (got < 3 && engine_wait_event(e, &r[got], 60))
        if (r[got].kind == ENGINE_EVENT_REPLY) got++;
        else engine_event_clear(&r[got]);
    CHECK(got == 3);
    if (got == 3) {
        CHECK(r[0].id == a && r[0].status == PK_OK && !strcmp(r[0].text, "lr: 0.005 -> 0.004") && r[0].logged);
        CHECK(r[1].id == b && r[1].status == PK_FAIL && strstr(r[1].text, "key 'batch_size' is fixed for the run"));
        CHECK(r[2].id == d && r[2].status == PK_OK && r[2].step == 2 && r[2].state == ENGINE_PAUSED);
    }
    for (int i = 0; i < got; i++) engine_event_clear(&r[i]);
    /* refused before queueing: nothing posted, the sentence at once */
    CHECK(engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_EVAL, .text = "nope"}, err) == 0 && strstr(err, "nope"));
    /* the snapshot publishes the one RunConfig */
    const EngineSnapshot *snap = engine_snapshot_acquire(e);
    CHECK(snap && fabsf(snap->config.lr - 0.004f) < 1e-9f && snap->config.steps == 400);
    engine_snapshot_release(e, snap);

    /* a set while running applies at a step boundary and the run goes on; so does queued work,
     * which runs on the worker with the run's state */
    unsigned long go = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_RESUME}, err);
    CHECK(next_event_of(e, ENGINE_EVENT_REPLY, go, &ev, 60, NULL, NULL, NULL) && ev.status == PK_OK);
    engine_event_clear(&ev);
    EngineEventKind seen[64];
    int seen_steps[64], n_seen = 0;
    unsigned long s1 = 0;
    for (int i = 0; i < 600 && !s1; i++) { /* once the evaluation at step 4 is behind */
        snap = engine_snapshot_acquire(e);
        if (snap->step >= 5) s1 = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_SET, .key = "lr", .value = "0.003"}, err);
        engine_snapshot_release(e, snap);
        if (!s1) usleep(10000);
    }
    CHECK(s1 > 0);
    CHECK(next_event_of(e, ENGINE_EVENT_REPLY, s1, &ev, 60, seen, &n_seen, seen_steps) && ev.status == PK_OK &&
          ev.state == ENGINE_RUNNING);
    int set_step = ev.step;
    engine_event_clear(&ev);
    WorkSeen w = {0};
    unsigned long wk = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_WORK, .work = work_notes, .ctx = &w}, err);
    CHECK(next_event_of(e, ENGINE_EVENT_REPLY, wk, &ev, 60, seen, &n_seen, seen_steps) && ev.status == PK_OK &&
          ev.state == ENGINE_RUNNING && strstr(ev.text, "worked at step"));
    engine_event_clear(&ev);
    CHECK(w.had_state && w.step >= set_step && !pthread_equal(w.thread, pthread_self()));
    unsigned long ps = engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_PAUSE}, err);
    CHECK(next_event_of(e, ENGINE_EVENT_REPLY, ps, &ev, 60, seen, &n_seen, seen_steps) && ev.status == PK_OK &&
          ev.state == ENGINE_PAUSED);
    engine_event_clear(&ev);
    /* what the run said by itself came in the order it happened: step 4's evaluation, then its
     * checkpoint, before the set's reply at step >= 5 */
    int eval4 = -1, ckpt4 = -1, set_at = -1;
    for (int i = 0; i < n_seen; i++) {
        if (seen[i] == ENGINE_EVENT_EVAL && seen_steps[i] == 4 && eval4 < 0) eval4 = i;
        if (seen[i] == ENGINE_EVENT_CHECKPOINT && seen_steps[i] == 4 && ckpt4 < 0) ckpt4 = i;
        if (seen[i] == ENGINE_EVENT_REPLY && set_at < 0) set_at = i;
        if (i > 0) CHECK_MSG(seen_steps[i] >= seen_steps[i - 1], "event %d at step %d after step %d", i, seen_steps[i],
                             seen_steps[i - 1]);
    }
    CHECK_MSG(eval4 >= 0 && ckpt4 > eval4 && set_at > ckpt4, "eval %d checkpoint %d set %d", eval4, ckpt4, set_at);
    /* metrics.jsonl: the set sits after the step it followed, before any later step */
    cJSON *m = read_metrics(engine_run_path(e));
    int before = -1, at = -1, after = -1, i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, m) {
        const cJSON *st = cJSON_GetObjectItem(o, "step"), *evn = cJSON_GetObjectItem(o, "event");
        int sn = cJSON_IsNumber(st) ? (int)st->valuedouble : -1;
        if (!evn && sn == set_step) before = i;
        if (!evn && sn == set_step + 1) after = i;
        if (cJSON_IsString(evn) && !strcmp(evn->valuestring, "set") && sn == set_step &&
            cJSON_GetObjectItem(o, "new") && fabs(cJSON_GetObjectItem(o, "new")->valuedouble - 0.003) < 1e-12)
            at = i;
        i++;
    }
    cJSON_Delete(m);
    CHECK_MSG(before >= 0 && at > before && (after < 0 || after > at), "step %d line %d, set line %d, next step line %d",
              set_step, before, at, after);

    /* once the worker has stopped, work runs on the calling thread; posting is refused */
    CHECK(engine_stop(e, err) == PK_OK);
    CHECK(engine_post(e, &(EngineCommand){.kind = ENGINE_CMD_PAUSE}, err) == 0 && strstr(err, "stopped"));
    PkBuf out = {0};
    CHECK(engine_work(e, work_notes, &w, &out, err) == PK_OK && pthread_equal(w.thread, pthread_self()) &&
          out.data && strstr(out.data, "worked at step"));
    pk_buf_free(&out);
    engine_destroy(e);
}

int main(void) {
    RUN(test_setup);
    RUN(test_commands_and_snapshots);
    RUN(test_resume_is_bit_identical);
    RUN(test_nonfinite_pauses_and_keeps_checkpoint);
    RUN(test_open_read_only);
    RUN(test_post_replies_and_events);
    if (world.root[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", world.root);
        if (system(cmd) != 0) printf("could not remove %s\n", world.root);
    }
    TEST_EXIT();
}
