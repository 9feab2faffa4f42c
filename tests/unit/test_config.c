/* RunConfig: defaults, JSON loading, every refusal names the key and the expected
 * form, set/get round trips, saved JSON reloads to the same config, live keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "test.h"

static char tmpdir[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Loads `json` from a temp file over the defaults; returns the status, err filled. */
static int load_text(RunConfig *c, const char *json, char *err, char *path_out) {
    char path[512];
    snprintf(path, sizeof path, "%s/cfg.json", tmpdir);
    write_text(path, json);
    if (path_out) snprintf(path_out, 512, "%s", path);
    config_defaults(c);
    return config_load_json(c, path, err);
}

static void test_defaults_are_the_papers(void) {
    RunConfig c;
    config_defaults(&c);
    CHECK(!strcmp(c.method, "promptkd"));
    CHECK(c.prompt_len == 7);
    CHECK(!strcmp(c.prompt_init_text, "Suppose you are a student."));
    CHECK(c.base_coef == 1.0f);
    CHECK(c.temperature == 1.0f && c.top_p == 1.0f && c.top_k == 0);
    CHECK(c.max_new_tokens == 256 && c.max_prompt_len == 256);
    CHECK(c.lr == 5e-5f && c.prompt_lr == 5e-5f);
    CHECK(c.warmup_steps == 100);
    CHECK(c.weight_decay == 0.01f && c.clip_norm == 1.0f);
    CHECK(c.gkd_beta == 0.5f && c.gkd_student_frac == 0.5f && c.skew_alpha == 0.1f);
    CHECK(c.neighbours_k == 5 && c.eval_interval == 0);
    size_t n = strlen(c.run_dir);
    CHECK(n >= 5 && !strcmp(c.run_dir + n - 5, "/runs") && c.run_dir[0] == '/');
}

static void test_load_json_sets_values_and_resolves_paths(void) {
    RunConfig c;
    char err[PK_ERR_LEN] = "";
    int rc = load_text(&c,
                       "{\"method\": \"kd\", \"lr\": 1e-4, \"steps\": 12, \"seed\": 7, "
                       "\"teacher\": \"models/t\", \"test_data\": \"\", \"top_p\": 0.9}",
                       err, NULL);
    CHECK_MSG(rc == PK_OK, "%s", err);
    CHECK(!strcmp(c.method, "kd"));
    CHECK(c.lr == 1e-4f);
    CHECK(c.steps == 12 && c.seed == 7);
    CHECK(c.top_p == 0.9f);
    char cwd[1024], want[1100];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(want, sizeof want, "%s/models/t", cwd);
    CHECK_MSG(!strcmp(c.teacher, want), "%s", c.teacher);
    CHECK(c.test_data[0] == 0);
    CHECK(c.prompt_len == 7); /* untouched keys keep their defaults */
}

static void test_bad_values_name_key_and_form(void) {
    RunConfig c;
    char err[PK_ERR_LEN] = "", path[512];
    CHECK(load_text(&c, "{\"lr\": \"abc\"}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, path) && strstr(err, "key 'lr'") && strstr(err, "a number > 0") &&
                  strstr(err, "\"abc\""),
              "%s", err);
    CHECK(load_text(&c, "{\"lr\": -1}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'lr': expected a number > 0, got -1"), "%s", err);
    CHECK(load_text(&c, "{\"top_p\": 1.5}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'top_p'") && strstr(err, "0 < x <= 1") && strstr(err, "1.5"), "%s", err);
    CHECK(load_text(&c, "{\"steps\": 2.5}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'steps': expected an integer >= 1, got 2.5"), "%s", err);
    CHECK(load_text(&c, "{\"method\": \"tinykd\"}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'method'") && strstr(err, "promptkd") && strstr(err, "\"tinykd\""), "%s", err);
    CHECK(load_text(&c, "{\"temperature\": 0}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'temperature'") && strstr(err, "> 0"), "%s", err);
    CHECK(load_text(&c, "{\"name\": \"a/b\"}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'name'"), "%s", err);
    /* a failed load leaves the config as it was */
    CHECK(c.lr == 5e-5f && !strcmp(c.name, "run"));
}

static void test_wrong_json_type_is_named(void) {
    RunConfig c;
    char err[PK_ERR_LEN] = "";
    CHECK(load_text(&c, "{\"steps\": \"12\"}", err, NULL) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'steps'") && strstr(err, "JSON number") && strstr(err, "the string \"12\""), "%s",
              err);
    CHECK(load_text(&c, "{\"method\": 3}", err, NULL) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'method'") && strstr(err, "JSON string") && strstr(err, "the number 3"), "%s", err);
    CHECK(load_text(&c, "{\"lr\": [1]}", err, NULL) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'lr'") && strstr(err, "an array"), "%s", err);
    CHECK(load_text(&c, "[1, 2]", err, NULL) == PK_FAIL);
    CHECK_MSG(strstr(err, "JSON object"), "%s", err);
    CHECK(load_text(&c, "{\"lr\": 1e-4,\n \"steps\": }", err, NULL) == PK_FAIL);
    CHECK_MSG(strstr(err, "line 2") && strstr(err, "malformed JSON"), "%s", err);
    CHECK(load_text(&c, "{\"lr\": 1e-4, \"lr\": 2e-4}", err, NULL) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'lr' appears twice"), "%s", err);
}

static void test_unknown_key_lists_known_keys(void) {
    RunConfig c;
    char err[PK_ERR_LEN] = "", path[512];
    CHECK(load_text(&c, "{\"lrr\": 1}", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, path) && strstr(err, "unknown key 'lrr'") && strstr(err, "did you mean 'lr'") &&
                  strstr(err, "known keys: method, name"),
              "%s", err);
    CHECK(config_set(&c, "nope", "1", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "unknown key 'nope'"), "%s", err);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.json", tmpdir);
    CHECK(config_load_json(&c, missing, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "missing.json"), "%s", err);
}

/* A config file is one JSON object and nothing after it but white space; the messages name the
 * file, then ": line N:". */
static void test_trailing_text_refused(void) {
    RunConfig c;
    char err[PK_ERR_LEN] = "", path[512], want[600];
    CHECK(load_text(&c, "{\"lr\": 1e-4}\n{\"steps\": 2}\n", err, path) == PK_FAIL);
    snprintf(want, sizeof want, "%s: line 2: trailing text after the JSON object ('{\"steps\": 2}')", path);
    CHECK_MSG(strstr(err, want), "%s", err);
    CHECK(c.lr == 5e-5f); /* a refused file changes nothing */
    CHECK(load_text(&c, "{\"lr\": 1e-4} and some words that go on for quite a while", err, path) == PK_FAIL);
    snprintf(want, sizeof want, "%s: line 1: trailing text after the JSON object ('and some words that go o...')",
             path);
    CHECK_MSG(strstr(err, want), "%s", err);
    CHECK(load_text(&c, "{\"lr\": 1e-4}]", err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, "trailing text") && strstr(err, "(']')"), "%s", err);
    /* a NUL byte after the object is trailing text too (cJSON would skip it as white space) */
    snprintf(path, sizeof path, "%s/nul.json", tmpdir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite("{\"lr\": 1e-4}\n\0x", 1, 15, f);
        fclose(f);
    }
    config_defaults(&c);
    CHECK(config_load_json(&c, path, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "line 2: trailing text"), "%s", err);
    /* white space after the object is fine */
    CHECK_MSG(load_text(&c, "{\"lr\": 1e-4}\n\n \t\r\n", err, path) == PK_OK, "%s", err);
    CHECK(c.lr == 1e-4f);
    /* a malformed file: "PATH: line N:", not "PATHline N:" */
    CHECK(load_text(&c, "{\"lr\": 1e-4,\n \"steps\": }", err, path) == PK_FAIL);
    snprintf(want, sizeof want, "%s: line 2: malformed JSON", path);
    CHECK_MSG(strstr(err, want), "%s", err);
}

/* A key or a path too long for the message is cut, so the known keys still show. */
static void test_unknown_huge_key_keeps_the_list(void) {
    RunConfig c;
    char err[PK_ERR_LEN] = "", path[512];
    size_t n = 5000;
    char *json = malloc(n + 32), *key = malloc(n + 1);
    if (!json || !key) {
        free(json), free(key);
        CHECK(0);
        return;
    }
    memset(key, 'k', n);
    key[n] = 0;
    snprintf(json, n + 32, "{\"%s\": 1}", key);
    CHECK(load_text(&c, json, err, path) == PK_FAIL);
    CHECK_MSG(strstr(err, path) && strstr(err, "unknown key 'kkkkkkkkkk") && strstr(err, "kkk...'") &&
                  strstr(err, "known keys: method, name, ") && !strstr(err, "known keys: ,"),
              "%s", err);
    CHECK(config_set(&c, key, "1", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "...' (known keys: method, name, "), "%s", err);
    /* a deep path: its end (the file name) is kept */
    char deep[700];
    int w = snprintf(deep, sizeof deep, "%s", tmpdir);
    while (w < 400) w += snprintf(deep + w, sizeof deep - (size_t)w, "/deeper-and-deeper");
    char cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", deep);
    CHECK(system(cmd) == 0);
    snprintf(deep + w, sizeof deep - (size_t)w, "/deep.json");
    write_text(deep, "{\"temprature\": 1}");
    config_defaults(&c);
    CHECK(config_load_json(&c, deep, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "...") && strstr(err, "deeper/deep.json: unknown key 'temprature' (did you mean "
                                                  "'temperature'? known keys: method, name, "),
              "%s", err);
    free(json);
    free(key);
}

static void test_set_get_round_trip(void) {
    RunConfig c;
    config_defaults(&c);
    char err[PK_ERR_LEN] = "", out[600];
    const char *const *keys = config_keys();
    int n = 0;
    /* every key's text form sets back to the same value */
    for (; keys[n]; n++) {
        CHECK_MSG(config_get(&c, keys[n], out, sizeof out, err) == PK_OK, "%s", err);
        if (out[0] == 0) continue; /* empty paths are not settable for required keys */
        RunConfig d = c;
        CHECK_MSG(config_set(&d, keys[n], out, err) == PK_OK, "%s: %s", keys[n], err);
        CHECK_MSG(!memcmp(&d, &c, sizeof c), "%s changed on round trip", keys[n]);
        CHECK(config_key_help(keys[n]) != NULL);
    }
    CHECK(n >= 39);
    CHECK(config_set(&c, "lr", "3e-4", err) == PK_OK && c.lr == 3e-4f);
    CHECK(config_get(&c, "lr", out, sizeof out, err) == PK_OK && !strcmp(out, "0.0003"));
    CHECK(config_set(&c, "seed", "18446744073709551615", err) == PK_OK && c.seed == 18446744073709551615ULL);
    CHECK(config_set(&c, "seed", "-1", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'seed': expected a non-negative integer, got '-1'"), "%s", err);
    CHECK(config_set(&c, "lr", "abc", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'lr': expected a number > 0, got 'abc'"), "%s", err);
    CHECK(config_set(&c, "top_k", "-2", err) == PK_FAIL);
    CHECK(config_set(&c, "lr", "nan", err) == PK_FAIL);
    CHECK(config_set(&c, "lr", "1e60", err) == PK_FAIL); /* beyond float */
    CHECK(config_set(&c, "steps", "5x", err) == PK_FAIL);
    CHECK(c.lr == 3e-4f);
}

static void test_save_reload_is_identical(void) {
    RunConfig c, d;
    config_defaults(&c);
    char err[PK_ERR_LEN] = "", path[512];
    CHECK(config_set(&c, "lr", "1.234567e-5", err) == PK_OK);
    CHECK(config_set(&c, "prompt_init_text", "quote \" and \\ backslash", err) == PK_OK);
    CHECK(config_set(&c, "teacher", "/abs/teacher", err) == PK_OK);
    CHECK(config_set(&c, "seed", "12345678901234567890", err) == PK_OK); /* beyond 2^53: saved as a string */
    snprintf(path, sizeof path, "%s/saved.json", tmpdir);
    CHECK_MSG(config_save_json(&c, path, err) == PK_OK, "%s", err);
    config_defaults(&d);
    CHECK_MSG(config_load_json(&d, path, err) == PK_OK, "%s", err);
    CHECK(!memcmp(&c, &d, sizeof c));
}

static void test_live_keys(void) {
    const char *live[] = {"lr", "prompt_lr", "base_coef", "temperature", "top_p", "top_k", "max_new_tokens",
                          "eval_interval", "gen_interval", "exposure_interval", "stop_after", "steps"};
    for (size_t i = 0; i < sizeof live / sizeof *live; i++) CHECK_MSG(config_key_is_live(live[i]), "%s", live[i]);
    CHECK(!config_key_is_live("method"));
    CHECK(!config_key_is_live("teacher"));
    CHECK(!config_key_is_live("prompt_len"));
    CHECK(!config_key_is_live("batch_size"));
    CHECK(!config_key_is_live("seed"));
    CHECK(!config_key_is_live("no_such_key"));
}

static void test_validate(void) {
    RunConfig c;
    config_defaults(&c);
    char err[PK_ERR_LEN] = "";
    CHECK(config_validate(&c, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "teacher"), "%s", err);
    CHECK(config_set(&c, "teacher", "tests/fixtures/hf-gpt2-tiny", err) == PK_OK);
    CHECK(config_set(&c, "student", "tests/fixtures/hf-gpt2-tiny", err) == PK_OK);
    CHECK(config_set(&c, "tokenizer", "tests/fixtures/gpt2-tokenizer", err) == PK_OK);
    CHECK(config_set(&c, "train_data", "tests/fixtures/eval/selfinst-user-oriented.jsonl", err) == PK_OK);
    CHECK(config_validate(&c, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "valid_data"), "%s", err);
    CHECK(config_set(&c, "valid_data", "tests/fixtures/eval/nope.jsonl", err) == PK_OK);
    CHECK(config_validate(&c, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "valid_data") && strstr(err, "does not exist"), "%s", err);
    CHECK(config_set(&c, "valid_data", "tests/fixtures/eval/selfinst-user-oriented.jsonl", err) == PK_OK);
    CHECK_MSG(config_validate(&c, err) == PK_OK, "%s", err);
    c.lr = -1.0f; /* written directly, bypassing config_set */
    CHECK(config_validate(&c, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "key 'lr'"), "%s", err);
    c.lr = 1e-4f;
    c.stop_after = c.steps + 1;
    CHECK(config_validate(&c, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "stop_after"), "%s", err);
}

/* The method table is the one list: config validation, the key's help and its expected form
 * all read it, and each method's needs come from it. */
static void test_method_table(void) {
    char names[160], err[PK_ERR_LEN];
    method_names_joined(names, sizeof names, ", ", " or ");
    CHECK_MSG(!strcmp(names, "sft, kd, seqkd, rkl, gkd, distillm, promptkd or minillm"), "%s", names);
    for (int i = 0; i < N_METHODS; i++) {
        const MethodInfo *m = method_info((MethodId)i);
        CHECK(method_find(m->name) == i);
        CHECK(m->has_teacher == (i != METHOD_SFT));
        CHECK(m->has_prompt == (i == METHOD_PROMPTKD));
        CHECK_MSG(strstr(config_key_help("method"), m->name), "%s", config_key_help("method"));
        RunConfig c;
        config_defaults(&c);
        CHECK(config_set(&c, "method", m->name, err) == PK_OK && !strcmp(c.method, m->name));
    }
    CHECK(method_find("tinykd") == -1 && method_find("") == -1 && method_find(NULL) == -1);
    char tiny[12];
    method_names_joined(tiny, sizeof tiny, ", ", " or ");
    CHECK_MSG(!strcmp(tiny, "sft, kd, se"), "%s", tiny);
    RunConfig c;
    config_defaults(&c);
    CHECK(config_set(&c, "method", "tinykd", err) == PK_FAIL);
    CHECK_MSG(strstr(err, "one of sft, kd, seqkd, rkl, gkd, distillm, promptkd, minillm"), "%s", err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pk_test_config_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_defaults_are_the_papers);
    RUN(test_load_json_sets_values_and_resolves_paths);
    RUN(test_bad_values_name_key_and_form);
    RUN(test_wrong_json_type_is_named);
    RUN(test_unknown_key_lists_known_keys);
    RUN(test_trailing_text_refused);
    RUN(test_unknown_huge_key_keeps_the_list);
    RUN(test_set_get_round_trip);
    RUN(test_save_reload_is_identical);
    RUN(test_live_keys);
    RUN(test_validate);
    RUN(test_method_table);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    TEST_EXIT();
}
