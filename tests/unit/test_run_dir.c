/* The run folder: the series table, metrics.jsonl written and read back through it (the same
 * values, a malformed line named by its number, a torn last line dropped), checkpoint rotation,
 * the fixed keys a resume keeps, run-folder naming and the removal of a run that recorded
 * nothing, and pk_remove_tree. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "run_dir.h"
#include "test.h"

static char root[256];

static void test_setup(void) {
    snprintf(root, sizeof root, "/tmp/pk_run_dir_XXXXXX");
    CHECK(mkdtemp(root) != NULL);
}

static void test_series_table(void) {
    int n = 0;
    const RunSeriesInfo *t = run_series_info(&n);
    CHECK(t && n >= 20);
    const char *charts[] = {"loss", "rouge", "lr", "grad_norm", "throughput", "exaccerr", "neighbours", "policy"};
    for (int i = 0; i < n; i++) {
        CHECK_MSG(run_series_find(t[i].key) == &t[i], "%s", t[i].key);
        CHECK(t[i].label && *t[i].label);
        int known = 0;
        for (size_t c = 0; c < sizeof charts / sizeof *charts; c++) known |= !strcmp(t[i].chart, charts[c]);
        CHECK_MSG(known, "%s: chart %s", t[i].key, t[i].chart);
        /* a chart's defaults are the chart's, the same for each of its series */
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].chart, t[j].chart))
                CHECK_MSG(t[i].log_y == t[j].log_y, "%s vs %s", t[i].key, t[j].key);
    }
    const char *need[] = {"student_loss", "prompt_loss", "kl_tprime_t", "lr", "prompt_lr", "grad_norm",
                          "prompt_grad_norm", "tokens_per_s", "dev_rougeL", "dev_rougeL_tprime", "exaccerr",
                          "neighbour_sim_p0", "neighbour_sim_p7", "reward", "on_policy"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) CHECK_MSG(run_series_find(need[i]), "%s", need[i]);
    CHECK(run_series_find("nope") == NULL && run_series_find(NULL) == NULL);
    CHECK(!strcmp(run_series_find("dev_rougeL")->event, "eval") && run_series_find("lr")->event == NULL);
    CHECK(!strcmp(run_series_find("student_loss")->chart, "loss") && run_series_find("student_loss")->smooth);
    /* a 0/1 flag and a reward that may be negative have no place on a log axis */
    CHECK(!run_series_find("on_policy")->log_y && !run_series_find("reward")->log_y);
    CHECK(strcmp(run_series_find("on_policy")->chart, "loss") != 0);
}

static void append_line(PkBuf *b, cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    pk_buf_printf(b, "%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
}

static int write_text(const char *path, const char *text) {
    char err[PK_ERR_LEN];
    return pk_write_file_atomic(path, text, strlen(text), err);
}

/* Lines built from the table read back as the same values, at the same elapsed times. */
static void test_lines_round_trip(void) {
    PkBuf b = {0};
    const double loss1 = 2.0 / 3.0, loss2 = 1e-300 * 7.1, lr = 5e-5 / 3;
    RunStepLine s1 = {.step = 1, .n = 4, .keys = {"student_loss", "lr", "tokens_per_s", "brand_new"},
                      .values = {loss1, lr, 1234.5, 9}, .response_tokens = 7, .tokens = 40,
                      .gflops = 0.25, .step_s = 0.1, .elapsed_s = 0.125};
    append_line(&b, run_line_step(&s1));
    const float sims[6] = {0.1f, 0.05f, 1.0f / 3.0f, 0.2f, -0.5f, 0.25f}, drift[3] = {0.01f, 0.02f, 2.0f / 7.0f};
    const char *toks[6] = {"a", "\xff\"b", "c\n", "d", "e", "f"};
    RunNeighbours nb = {1, 3, 2, (char **)toks, (float *)sims, (float *)drift};
    append_line(&b, run_line_neighbours(&nb));
    append_line(&b, run_line_eval(2, "valid", 21.5, 1.0 / 7.0, 4, 1, 0.5));
    append_line(&b, run_line_eval(2, "test", 99, NAN, 4, 0, 0.5)); /* not the dev split: no series */
    const double curve[3] = {1.5, NAN, 100.0 / 3.0};
    append_line(&b, run_line_exposure(2, "teacher", curve, 3));
    RunGeneration g = {.step = 2, .dev_index = 1, .prompt_display = "Q", .instruction = "what?", .context = "ctx",
                       .reference = "the ref", .prompted_teacher = "pt", .teacher = "t\xc3", .student = "s",
                       .rougeL_prompted_teacher = 50, .rougeL_teacher = -1, .rougeL_student = 1.0 / 3.0};
    append_line(&b, run_line_generation(&g));
    RunStepLine s2 = {.step = 2, .n = 2, .keys = {"student_loss", "grad_norm"}, .values = {loss2, NAN},
                      .elapsed_s = 0.375};
    append_line(&b, run_line_step(&s2));
    append_line(&b, run_line_set(2, "lr", "0.002", "abc"));
    append_line(&b, run_line_checkpoint(2, "/x/checkpoints/step-2"));
    append_line(&b, run_line_event("finished", 2));

    char path[400], err[PK_ERR_LEN];
    snprintf(path, sizeof path, "%s/metrics.jsonl", root);
    CHECK(pk_write_file_atomic(path, b.data, b.len, err) == PK_OK);
    /* each line is a JSON object of valid UTF-8, the step line's keys in table order */
    CHECK(pk_utf8_invalid_at(b.data, b.len) < 0);
    CHECK_MSG(!strncmp(b.data, "{\"step\":1,\"student_loss\":", 25), "%.80s", b.data);
    CHECK(strstr(b.data, "\"lr\":") < strstr(b.data, "\"tokens_per_s\":"));
    CHECK(strstr(b.data, "\"brand_new\":9"));
    CHECK(strstr(b.data, "\"grad_norm\":null"));
    CHECK(strstr(b.data, "{\"event\":\"set\",\"step\":2,\"key\":\"lr\",\"old\":0.002,\"new\":\"abc\"}"));
    pk_buf_free(&b);

    RunHistory h;
    run_history_init(&h);
    CHECK_MSG(run_history_read(&h, path, -1, NULL, err) == PK_OK, "%s", err);
    const RunCurve *c = run_history_find(&h, "student_loss");
    CHECK(c && c->n == 2 && c->y[0] == loss1 && c->y[1] == loss2 && c->x[1] == 2);
    CHECK(c && c->t[0] == 0.125 && c->t[1] == 0.375);
    c = run_history_find(&h, "lr");
    CHECK(c && c->n == 1 && c->y[0] == lr);
    c = run_history_find(&h, "tokens_per_s");
    CHECK_MSG(c && c->n == 1 && c->y[0] == 1234.5, "%d %g", c ? c->n : -1, c && c->n ? c->y[0] : 0);
    CHECK(run_history_find(&h, "brand_new") == NULL); /* logged, but not a series of the table */
    c = run_history_find(&h, "grad_norm");
    CHECK(c && c->n == 1 && isnan(c->y[0]));
    c = run_history_find(&h, "dev_rougeL");
    CHECK(c && c->n == 1 && c->y[0] == 21.5 && c->t[0] == 0.125); /* an event: the last step line's time */
    c = run_history_find(&h, "dev_rougeL_tprime");
    CHECK(c && c->n == 1 && c->y[0] == 1.0 / 7.0);
    c = run_history_find(&h, "exaccerr");
    CHECK(c && c->n == 1 && c->y[0] == 100.0 / 3.0);
    CHECK(h.n_exposure == 1 && h.exposure[0].n == 3 && h.exposure[0].exaccerr[0] == 1.5 &&
          isnan(h.exposure[0].exaccerr[1]) && h.exposure[0].step == 2);
    c = run_history_find(&h, "neighbour_sim_p2");
    CHECK(c && c->n == 1 && c->y[0] == (double)sims[4]);
    CHECK(h.neighbours.P == 3 && h.neighbours.k == 2 && h.neighbours.step == 1);
    for (int i = 0; i < 6; i++) CHECK(h.neighbours.sims[i] == sims[i]);
    for (int p = 0; p < 3; p++) CHECK(h.neighbours.drift[p] == drift[p]);
    CHECK(!strcmp(h.neighbours.tokens[0], "a") && !strcmp(h.neighbours.tokens[1], "\xef\xbf\xbd\"b") &&
          !strcmp(h.neighbours.tokens[2], "c\n"));
    const RunGeneration *r = &h.generation;
    CHECK(r->step == 2 && r->dev_index == 1 && !strcmp(r->instruction, "what?") && !strcmp(r->context, "ctx"));
    CHECK(!strcmp(r->reference, "the ref") && !strcmp(r->teacher, "t\xef\xbf\xbd") && !strcmp(r->student, "s"));
    CHECK(r->rougeL_prompted_teacher == 50 && r->rougeL_teacher == -1 && r->rougeL_student == 1.0 / 3.0);
    CHECK(h.last_step == 2 && h.elapsed_s == 0.375 && h.last_eval_step == 2 && h.finished_step == 2);
    run_history_free(&h);

    /* up to a step: only its lines are kept, text as read */
    PkBuf kept = {0};
    run_history_init(&h);
    CHECK(run_history_read(&h, path, 1, &kept, err) == PK_OK);
    CHECK(h.last_step == 1 && !run_history_find(&h, "dev_rougeL") && h.n_exposure == 0 && h.neighbours.P == 3);
    CHECK(kept.data && strstr(kept.data, "\"event\":\"neighbours\"") && !strstr(kept.data, "\"step\":2"));
    int lines = 0;
    for (size_t i = 0; i < kept.len; i++) lines += kept.data[i] == '\n';
    CHECK(lines == 2);
    pk_buf_free(&kept);
    run_history_free(&h);
}

/* A malformed line fails with PATH:LINE; a last line without its newline (a write cut short) is
 * dropped; a blank line is skipped. */
static void test_malformed_lines(void) {
    char path[400], err[PK_ERR_LEN];
    snprintf(path, sizeof path, "%s/bad.jsonl", root);
    RunHistory h;
    CHECK(write_text(path, "{\"step\":1,\"student_loss\":2}\n\n{\"step\":2,\"student_loss\":1}\n{\"step\":3,\"stu") ==
          PK_OK);
    run_history_init(&h);
    CHECK_MSG(run_history_read(&h, path, -1, NULL, err) == PK_OK, "%s", err);
    CHECK(h.last_step == 2 && run_history_find(&h, "student_loss")->n == 2);
    run_history_free(&h);

    CHECK(write_text(path, "{\"step\":1,\"student_loss\":2}\n{\"step\":2,\"student_loss\":1}\nnot json\n"
                           "{\"step\":4}\n") == PK_OK);
    run_history_init(&h);
    CHECK(run_history_read(&h, path, -1, NULL, err) == PK_FAIL);
    char want[500];
    snprintf(want, sizeof want, "%s:3: malformed line", path);
    CHECK_MSG(strstr(err, want), "%s", err);
    run_history_free(&h);

    CHECK(write_text(path, "{\"step\":1}\n{\"student_loss\":1}\n") == PK_OK);
    run_history_init(&h);
    CHECK(run_history_read(&h, path, -1, NULL, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "bad.jsonl:2: ") && strstr(err, "\"step\""), "%s", err);
    run_history_free(&h);

    CHECK(write_text(path, "{\"step\":1}\n{\"event\":\"exposure\",\"step\":2,\"exaccerr\":3}\n") == PK_OK);
    run_history_init(&h);
    CHECK(run_history_read(&h, path, -1, NULL, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "bad.jsonl:2: ") && strstr(err, "exaccerr"), "%s", err);
    run_history_free(&h);
}

/* rotation keeps the newest 3 step-N folders, and the one asked for */
static void test_rotation(void) {
    RunDir rd;
    run_dir_init(&rd);
    snprintf(rd.path, sizeof rd.path, "%s/rot", root);
    char path[600], err[PK_ERR_LEN];
    for (int s = 1; s <= 6; s++) {
        snprintf(path, sizeof path, "%s/checkpoints/step-%d", rd.path, s);
        CHECK(pk_mkdirs(path, err) == PK_OK);
    }
    snprintf(path, sizeof path, "%s/checkpoints/step-x", rd.path);
    CHECK(pk_mkdirs(path, err) == PK_OK);
    run_dir_prune_checkpoints(&rd, 2);
    int steps[16], n = run_dir_checkpoint_steps(rd.path, steps, 16);
    CHECK_MSG(n == 4 && steps[0] == 6 && steps[1] == 5 && steps[2] == 4 && steps[3] == 2, "%d: %d %d %d", n, steps[0],
              steps[1], steps[2]);
    run_dir_prune_checkpoints(&rd, 6);
    n = run_dir_checkpoint_steps(rd.path, steps, 16);
    CHECK(n == 3 && steps[2] == 4);
    CHECK(pk_is_dir(path)); /* not a step-N folder: not ours to remove */
    CHECK(run_dir_set_latest(&rd, 5, err) == PK_OK);
    int latest = -1;
    CHECK(run_dir_read_latest(rd.path, &latest, err) == PK_OK && latest == 5);
    CHECK(run_dir_set_latest(&rd, 3, err) == PK_OK);
    CHECK(run_dir_read_latest(rd.path, &latest, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "names step-3") && strstr(err, "checkpoints there: step-6, step-5, step-4"), "%s", err);
}

/* a resume keeps every key config.c fixes on resume; live keys and moved paths may change */
static void test_fixed_keys(void) {
    char run[400], path[600], err[PK_ERR_LEN];
    snprintf(run, sizeof run, "%s/fixed", root);
    snprintf(path, sizeof path, "%s/checkpoints/step-3", run);
    CHECK(pk_mkdirs(path, err) == PK_OK);
    RunConfig saved, cfg;
    config_defaults(&saved);
    saved.batch_size = 4;
    snprintf(path, sizeof path, "%s/config.json", run);
    CHECK(config_save_json(&saved, path, err) == PK_OK);
    CHECK(run_dir_write_run_config((snprintf(path, sizeof path, "%s/checkpoints/step-3", run), path), &saved, err) ==
          PK_OK);
    cfg = saved;
    CHECK_MSG(run_dir_check_fixed_keys(&cfg, run, 3, err) == PK_OK, "%s", err);
    cfg.lr = saved.lr * 2; /* live */
    snprintf(cfg.train_data, sizeof cfg.train_data, "/moved/train.jsonl");
    cfg.threads = 7;
    CHECK_MSG(run_dir_check_fixed_keys(&cfg, run, 3, err) == PK_OK, "%s", err);
    cfg.batch_size = 2;
    CHECK(run_dir_check_fixed_keys(&cfg, run, 3, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'batch_size' is '4' in the run but '2' here"), "%s", err);
    /* edited by hand in config.json: the checkpoint's run_config.json still says otherwise */
    saved.batch_size = 2;
    snprintf(path, sizeof path, "%s/config.json", run);
    CHECK(config_save_json(&saved, path, err) == PK_OK);
    CHECK(run_dir_check_fixed_keys(&cfg, run, 3, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "checkpoint step-3 was made with '4'") && strstr(err, "run_config.json"), "%s", err);
    for (const char *const *k = config_keys(); *k; k++)
        if (config_key_fixed_on_resume(*k)) CHECK_MSG(!config_key_is_live(*k), "%s", *k);
    CHECK(config_key_fixed_on_resume("batch_size") && !config_key_fixed_on_resume("lr") &&
          !config_key_fixed_on_resume("name"));
}

/* run_dir/name, then name-2; a run that recorded nothing is removed again, one that did is not */
static void test_naming_and_removal(void) {
    RunConfig cfg;
    config_defaults(&cfg);
    char err[PK_ERR_LEN], path[600];
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/runs", root);
    snprintf(cfg.name, sizeof cfg.name, "r");
    RunDir a, b;
    int step;
    CHECK_MSG(run_dir_prepare(&a, &cfg, NULL, &step, err) == PK_OK, "%s", err);
    CHECK(step == -1 && a.created && !strcmp(cfg.name, "r"));
    snprintf(path, sizeof path, "%s/metrics.jsonl", a.path);
    CHECK(pk_file_exists(path));
    snprintf(cfg.name, sizeof cfg.name, "r");
    CHECK_MSG(run_dir_prepare(&b, &cfg, NULL, &step, err) == PK_OK, "%s", err);
    CHECK_MSG(!strcmp(cfg.name, "r-2") && strstr(b.path, "/runs/r-2"), "%s", b.path);
    CHECK(!run_dir_holds_records(&a));
    CHECK(run_dir_remove_created(&a) == 1 && !pk_is_dir(a.path));
    /* a record (something in eval/) keeps the folder; a file of someone else's stays */
    snprintf(path, sizeof path, "%s/eval/valid-step-1.jsonl", b.path);
    CHECK(write_text(path, "{}\n") == PK_OK);
    CHECK(run_dir_holds_records(&b));
    unlink(path);
    snprintf(path, sizeof path, "%s/notes.txt", b.path);
    CHECK(write_text(path, "mine\n") == PK_OK);
    CHECK(!run_dir_holds_records(&b));
    CHECK(run_dir_remove_created(&b) == 0 && pk_file_exists(path));
    /* the name is free again */
    snprintf(cfg.name, sizeof cfg.name, "r");
    CHECK(run_dir_prepare(&a, &cfg, NULL, &step, err) == PK_OK && !strcmp(cfg.name, "r"));
    run_dir_free(&a);
    run_dir_free(&b);
    /* a resume needs checkpoints/latest */
    snprintf(path, sizeof path, "%s/runs/r", root);
    CHECK(run_dir_prepare(&a, &cfg, path, &step, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "checkpoints/latest is missing"), "%s", err);
    CHECK(pk_is_dir(path)); /* a resume that fails removes nothing */
}

static void test_remove_tree(void) {
    char dir[400], path[600], err[PK_ERR_LEN], outside[400];
    snprintf(dir, sizeof dir, "%s/tree", root);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    CHECK(pk_mkdirs(path, err) == PK_OK);
    snprintf(path, sizeof path, "%s/a/b/c/f.txt", dir);
    CHECK(write_text(path, "x") == PK_OK);
    snprintf(outside, sizeof outside, "%s/outside.txt", root);
    CHECK(write_text(outside, "keep") == PK_OK);
    snprintf(path, sizeof path, "%s/a/link", dir);
    CHECK(symlink(outside, path) == 0);
    snprintf(path, sizeof path, "%s/a/dirlink", dir);
    CHECK(symlink(root, path) == 0); /* a link to a folder is removed, not followed */
    CHECK(pk_remove_tree(dir) == 0);
    CHECK(!pk_is_dir(dir) && !pk_file_exists(dir));
    CHECK(pk_file_exists(outside));
    CHECK(pk_remove_tree(dir) == 0); /* already gone */
    CHECK(pk_remove_tree(outside) == 0 && !pk_file_exists(outside));
}

int main(void) {
    RUN(test_setup);
    RUN(test_series_table);
    RUN(test_lines_round_trip);
    RUN(test_malformed_lines);
    RUN(test_rotation);
    RUN(test_fixed_keys);
    RUN(test_naming_and_removal);
    RUN(test_remove_tree);
    if (root[0]) pk_remove_tree(root);
    TEST_EXIT();
}
