/* The synthetic benchmark: determinism, sizes, categories, Dolly JSONL, train/test disjointness
 * (pairs, facts, operands, words), answer phrasings, lengths, writing, and the shipped assets. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "data.h"
#include "synth.h"
#include "test.h"
#include "tokenizer.h"

#define ASSET_SEED 1234
#define ASSET_SIZE 6000

static int make(SynthSplits *s, uint64_t seed, int n_train) {
    SynthOptions opt;
    char err[PK_ERR_LEN];
    synth_options_default(&opt, seed, n_train);
    int rc = synth_generate(&opt, s, err);
    if (rc) printf("    synth_generate: %s\n", err);
    return rc;
}

static char *jsonl(const SynthRecord *r, int n) {
    PkBuf b = {0};
    char err[PK_ERR_LEN];
    if (synth_to_jsonl(r, n, &b, err)) {
        printf("    synth_to_jsonl: %s\n", err);
        pk_buf_free(&b);
        return NULL;
    }
    if (!b.data) pk_buf_append(&b, "", 0);
    return b.data;
}

static int same_pair(const SynthRecord *a, const SynthRecord *b) {
    return !strcmp(a->instruction, b->instruction) && !strcmp(a->context, b->context);
}

static void test_same_seed_same_bytes_other_seed_other_bytes(void) {
    SynthSplits a, b, c;
    CHECK(make(&a, 7, 600) == PK_OK);
    CHECK(make(&b, 7, 600) == PK_OK);
    CHECK(make(&c, 8, 600) == PK_OK);
    const SynthRecord *ra[3] = {a.train, a.valid, a.test}, *rb[3] = {b.train, b.valid, b.test},
                      *rc[3] = {c.train, c.valid, c.test};
    int na[3] = {a.n_train, a.n_valid, a.n_test};
    for (int k = 0; k < 3; k++) {
        char *x = jsonl(ra[k], na[k]), *y = jsonl(rb[k], na[k]), *z = jsonl(rc[k], na[k]);
        CHECK(x && y && z);
        if (x && y && z) {
            CHECK_MSG(!strcmp(x, y), "split %d differs between two runs with seed 7", k);
            CHECK_MSG(strcmp(x, z) != 0, "split %d is the same for seeds 7 and 8", k);
        }
        free(x);
        free(y);
        free(z);
    }
    synth_free(&a);
    synth_free(&b);
    synth_free(&c);
}

static void test_sizes_as_requested(void) {
    SynthSplits s;
    CHECK(make(&s, 1, 600) == PK_OK);
    CHECK(s.n_train == 600 && s.n_valid == 50 && s.n_test == 50);
    char *t = jsonl(s.train, s.n_train);
    int lines = 0;
    for (char *p = t; p && *p; p++) lines += *p == '\n';
    CHECK(lines == 600);
    free(t);
    synth_free(&s);
    CHECK(make(&s, 1, 13) == PK_OK); /* ceil(13 / 12) = 2 */
    CHECK(s.n_train == 13 && s.n_valid == 2 && s.n_test == 2);
    synth_free(&s);
    SynthOptions opt = {.seed = 3, .n_train = 40, .n_valid = 0, .n_test = 17};
    char err[PK_ERR_LEN];
    CHECK(synth_generate(&opt, &s, err) == PK_OK);
    CHECK(s.n_train == 40 && s.n_valid == 0 && s.n_test == 17);
    synth_free(&s);
}

static void test_bad_sizes_are_refused_by_name(void) {
    SynthSplits s;
    char err[PK_ERR_LEN];
    const int bad[] = {0, -5, SYNTH_MAX_RECORDS + 1};
    for (int i = 0; i < 3; i++) {
        SynthOptions opt;
        synth_options_default(&opt, 1, 10);
        opt.n_train = bad[i];
        err[0] = 0;
        CHECK(synth_generate(&opt, &s, err) == PK_FAIL);
        CHECK_MSG(strstr(err, "training records") != NULL, "%s", err);
        CHECK(s.train == NULL && s.n_train == 0);
    }
    SynthOptions opt = {.seed = 1, .n_train = 10, .n_valid = -1, .n_test = 1};
    CHECK(synth_generate(&opt, &s, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "valid records") != NULL, "%s", err);
}

static int n_categories_in(const SynthRecord *r, int n) {
    int seen[64] = {0}, k = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < synth_n_categories(); c++)
            if (!strcmp(r[i].category, synth_category_name(c)) && !seen[c]) seen[c] = 1, k++;
    return k;
}

static void test_at_least_eight_categories_in_train_and_test(void) {
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, 1200) == PK_OK);
    CHECK(synth_n_categories() >= 8);
    CHECK_MSG(n_categories_in(s.train, s.n_train) == synth_n_categories(), "train has %d",
              n_categories_in(s.train, s.n_train));
    CHECK_MSG(n_categories_in(s.test, s.n_test) == synth_n_categories(), "test has %d", n_categories_in(s.test, s.n_test));
    CHECK(n_categories_in(s.valid, s.n_valid) == synth_n_categories());
    synth_free(&s);
}

/* Every line parses as one object with exactly the four Dolly fields, all strings, the required
 * ones non-empty, the category one of ours, and the text valid UTF-8. */
static void test_every_line_is_dolly_json(void) {
    SynthSplits s;
    CHECK(make(&s, 99, 1200) == PK_OK);
    char *text = jsonl(s.train, s.n_train);
    CHECK(text != NULL);
    int lines = 0, bad = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        if (!nl) break;
        *nl = 0;
        lines++;
        cJSON *o = cJSON_Parse(line);
        int ok = o && cJSON_IsObject(o) && cJSON_GetArraySize(o) == 4;
        const char *fields[4] = {"instruction", "context", "response", "category"};
        for (int f = 0; ok && f < 4; f++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[f]);
            ok = cJSON_IsString(v) && (f == 1 || v->valuestring[0]);
            if (ok && f == 3) {
                int known = 0;
                for (int c = 0; c < synth_n_categories(); c++) known |= !strcmp(v->valuestring, synth_category_name(c));
                ok = known;
            }
        }
        ok = ok && pk_utf8_invalid_at(line, strlen(line)) < 0;
        if (!ok && bad++ < 3) printf("    bad line %d: %s\n", lines, line);
        cJSON_Delete(o);
        line = nl + 1;
    }
    CHECK(lines == s.n_train);
    CHECK(bad == 0);
    free(text);
    synth_free(&s);
}

/* No (instruction, context) pair and no hold-out key of valid or test occurs in train. */
static void test_valid_and_test_pairs_and_keys_not_in_train(void) {
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, ASSET_SIZE) == PK_OK);
    const SynthRecord *held[2] = {s.valid, s.test};
    int nh[2] = {s.n_valid, s.n_test}, pair_hits = 0, key_hits = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nh[k]; i++)
            for (int j = 0; j < s.n_train; j++) {
                if (same_pair(&held[k][i], &s.train[j]) && pair_hits++ < 3)
                    printf("    in train: %s | %s\n", held[k][i].instruction, held[k][i].context);
                if (!strcmp(held[k][i].key, s.train[j].key) && key_hits++ < 3) printf("    key in train: %s\n", s.train[j].key);
            }
    CHECK(pair_hits == 0);
    CHECK(key_hits == 0);
    synth_free(&s);
}

/* Parsed independently of the keys: the unordered pair of numbers of a test arithmetic question
 * never appears in a training arithmetic question. */
static int two_numbers(const char *text, int *lo, int *hi) {
    int v[3], n = 0;
    for (const char *p = text; *p;) {
        if (isdigit((unsigned char)*p)) {
            if (n == 3) return 0;
            v[n++] = (int)strtol(p, (char **)&p, 10);
        } else {
            p++;
        }
    }
    if (n != 2) return 0;
    *lo = v[0] < v[1] ? v[0] : v[1];
    *hi = v[0] < v[1] ? v[1] : v[0];
    return 1;
}

static void test_arithmetic_operands_held_out(void) {
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, ASSET_SIZE) == PK_OK);
    static unsigned char in_train[1000][1000];
    memset(in_train, 0, sizeof in_train);
    int n_train_arith = 0, n_test_arith = 0, hits = 0;
    for (int i = 0; i < s.n_train; i++) {
        if (strcmp(s.train[i].category, "arithmetic")) continue;
        int lo, hi;
        CHECK_MSG(two_numbers(s.train[i].instruction, &lo, &hi) && hi < 1000, "%s", s.train[i].instruction);
        if (two_numbers(s.train[i].instruction, &lo, &hi) && hi < 1000) in_train[lo][hi] = 1;
        n_train_arith++;
    }
    for (int i = 0; i < s.n_test; i++) {
        if (strcmp(s.test[i].category, "arithmetic")) continue;
        int lo, hi;
        CHECK(two_numbers(s.test[i].instruction, &lo, &hi) && hi < 1000);
        if (two_numbers(s.test[i].instruction, &lo, &hi) && hi < 1000 && in_train[lo][hi] && hits++ < 3)
            printf("    operands of '%s' are in train\n", s.test[i].instruction);
        n_test_arith++;
    }
    CHECK(n_train_arith > 100 && n_test_arith > 10);
    CHECK(hits == 0);
    synth_free(&s);
}

/* Every test string task names a word that no training string task names. */
static int word_in(const char *word, const char *text) {
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word))
        if ((p == text || !isalpha((unsigned char)p[-1])) && !isalpha((unsigned char)p[n])) return 1;
    return 0;
}

static void test_string_task_words_held_out(void) {
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, ASSET_SIZE) == PK_OK);
    int n_test_str = 0;
    for (int i = 0; i < s.n_test; i++) {
        if (strcmp(s.test[i].category, "string_manipulation")) continue;
        n_test_str++;
        /* the words of the test instruction that no training string instruction contains */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", s.test[i].instruction);
        int unseen = 0;
        for (char *tok = strtok(buf, " '.?"); tok; tok = strtok(NULL, " '.?")) {
            int seen = 0;
            for (int j = 0; j < s.n_train && !seen; j++)
                if (!strcmp(s.train[j].category, "string_manipulation") && word_in(tok, s.train[j].instruction)) seen = 1;
            unseen |= !seen;
        }
        CHECK_MSG(unseen, "every word of '%s' is in a training string task", s.test[i].instruction);
    }
    CHECK(n_test_str > 10);
    synth_free(&s);
}

/* A test fact question asks, in another form, about a fact that training asks about. */
static void test_test_facts_are_taught_in_train(void) {
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, ASSET_SIZE) == PK_OK);
    int n_fact = 0, untaught = 0;
    for (int i = 0; i < s.n_test; i++) {
        int f, form;
        if (sscanf(s.test[i].key, "fact:%d:%d", &f, &form) != 2) continue;
        n_fact++;
        int taught = 0;
        for (int j = 0; j < s.n_train && !taught; j++) {
            int g, gform;
            taught = sscanf(s.train[j].key, "fact:%d:%d", &g, &gform) == 2 && g == f && gform != form;
        }
        if (!taught && untaught++ < 3) printf("    fact %d (%s) never asked in train\n", f, s.test[i].instruction);
    }
    CHECK(n_fact >= 50);
    CHECK(untaught == 0);
    synth_free(&s);
}

/* The same question gets different answers across the training set: the phrasings give real
 * entropy, also for the memorised facts. */
static void test_same_question_has_several_phrasings(void) {
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, ASSET_SIZE) == PK_OK);
    int multi = 0, multi_open = 0, max_distinct = 0;
    char *done = calloc((size_t)s.n_train, 1);
    for (int i = 0; i < s.n_train; i++) {
        if (done[i]) continue;
        const char *resp[16];
        int nr = 0;
        for (int j = i; j < s.n_train; j++) {
            if (done[j] || !same_pair(&s.train[i], &s.train[j])) continue;
            done[j] = 1;
            int dup = 0;
            for (int k = 0; k < nr; k++) dup |= !strcmp(resp[k], s.train[j].response);
            if (!dup && nr < 16) resp[nr++] = s.train[j].response;
        }
        if (nr > 1) {
            multi++;
            multi_open += !strcmp(s.train[i].category, "open_qa");
        }
        if (nr > max_distinct) max_distinct = nr;
    }
    free(done);
    printf("    %d questions with several answers, %d of them open_qa, at most %d answers\n", multi, multi_open,
           max_distinct);
    CHECK(multi >= 200);
    CHECK(multi_open >= 50);
    CHECK(max_distinct >= 3);
    synth_free(&s);
}

static int words(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        int sp = isspace((unsigned char)*s);
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

static void test_prompts_and_responses_are_short(void) {
    SynthSplits s;
    CHECK(make(&s, 5, 3000) == PK_OK);
    int worst_prompt = 0, worst_resp = 0;
    for (int i = 0; i < s.n_train; i++) {
        int p = words(s.train[i].instruction) + words(s.train[i].context), r = words(s.train[i].response);
        if (p > worst_prompt) worst_prompt = p;
        if (r > worst_resp) worst_resp = r;
    }
    CHECK_MSG(worst_prompt <= 60, "%d words", worst_prompt);
    CHECK_MSG(worst_resp <= 30, "%d words", worst_resp);
    synth_free(&s);
}

static void test_world_depends_on_seed_only(void) {
    /* The same seed with another size asks about the same towns: the fact tables do not move. */
    SynthSplits a, b;
    CHECK(make(&a, 11, 600) == PK_OK);
    CHECK(make(&b, 11, 3000) == PK_OK);
    int shared = 0, checked = 0;
    for (int i = 0; i < a.n_train; i++) {
        if (strncmp(a.train[i].key, "fact:", 5)) continue;
        for (int j = 0; j < b.n_train; j++)
            if (!strcmp(a.train[i].key, b.train[j].key)) {
                checked++;
                shared += !strcmp(a.train[i].instruction, b.train[j].instruction);
                break;
            }
    }
    CHECK(checked > 10);
    CHECK(shared == checked);
    synth_free(&a);
    synth_free(&b);
}

static void test_write_dir_writes_three_files_or_nothing(void) {
    char dir[] = "/tmp/pk-synth-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    SynthSplits s;
    CHECK(make(&s, 2, 120) == PK_OK);
    char err[PK_ERR_LEN], out[512], path[600];
    snprintf(out, sizeof out, "%s/a/b", dir);
    CHECK(synth_write_dir(&s, 0, out, err) == PK_OK);
    const char *names[3] = {"train.jsonl", "valid.jsonl", "test.jsonl"};
    const SynthRecord *recs[3] = {s.train, s.valid, s.test};
    int counts[3] = {s.n_train, s.n_valid, s.n_test};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", out, names[k]);
        char *got = NULL, *want = jsonl(recs[k], counts[k]);
        size_t len = 0;
        CHECK(pk_read_file(path, &got, &len, err) == PK_OK);
        CHECK(got && want && !strcmp(got, want));
        free(got);
        free(want);
        unlink(path);
    }
    /* a folder below a regular file cannot be created: an error naming it, and no file anywhere */
    snprintf(path, sizeof path, "%s/file", dir);
    CHECK(pk_write_file_atomic(path, "x", 1, err) == PK_OK);
    snprintf(out, sizeof out, "%s/file/sub", dir);
    err[0] = 0;
    CHECK(synth_write_dir(&s, 0, out, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "file/sub") != NULL || strstr(err, "/file") != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/file/sub/train.jsonl", dir);
    CHECK(!pk_file_exists(path));
    snprintf(path, sizeof path, "%s/file", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/a", dir);
    rmdir(path);
    CHECK(rmdir(dir) == 0); /* nothing else was left behind (no temp files) */
    synth_free(&s);
}

/* The shipped assets/data is exactly `promptkd synth --seed 1234 --size 6000`, and with the shipped
 * tokenizer every templated record (prompt + response + EOS) fits in 128 tokens. */
static void test_shipped_assets_reproduce_and_fit(void) {
    if (!pk_file_exists("assets/data/train.jsonl") || !pk_file_exists("assets/tokenizer/vocab.json")) {
        printf("    assets/data or assets/tokenizer missing\n");
        CHECK(0);
        return;
    }
    SynthSplits s;
    CHECK(make(&s, ASSET_SEED, ASSET_SIZE) == PK_OK);
    const char *names[3] = {"assets/data/train.jsonl", "assets/data/valid.jsonl", "assets/data/test.jsonl"};
    const SynthRecord *recs[3] = {s.train, s.valid, s.test};
    int counts[3] = {s.n_train, s.n_valid, s.n_test};
    char err[PK_ERR_LEN];
    Tokenizer *tok = NULL;
    CHECK(tok_load(&tok, "assets/tokenizer", err) == PK_OK);
    for (int k = 0; k < 3; k++) {
        char *got = NULL, *want = jsonl(recs[k], counts[k]);
        CHECK(pk_read_file(names[k], &got, NULL, err) == PK_OK);
        CHECK_MSG(got && want && !strcmp(got, want), "%s differs from synth --seed 1234 --size 6000", names[k]);
        free(got);
        free(want);
        if (!tok) continue;
        Dataset d;
        TokExample *ex = NULL;
        int n_ex = 0, dropped = 0, longest = 0;
        CHECK(data_load(&d, names[k], 0, err) == PK_OK);
        CHECK(data_tokenize(&d, tok, 0, 0, &ex, &n_ex, &dropped, err) == PK_OK);
        for (int i = 0; i < n_ex; i++)
            if (ex[i].prompt_len + ex[i].response_len > longest) longest = ex[i].prompt_len + ex[i].response_len;
        CHECK_MSG(longest <= 128, "%s: longest record has %d tokens", names[k], longest);
        CHECK(n_ex == counts[k]);
        data_free_tokenized(ex, n_ex);
        data_free(&d);
    }
    tok_free(tok);
    synth_free(&s);
}

int main(void) {
    RUN(test_same_seed_same_bytes_other_seed_other_bytes);
    RUN(test_sizes_as_requested);
    RUN(test_bad_sizes_are_refused_by_name);
    RUN(test_at_least_eight_categories_in_train_and_test);
    RUN(test_every_line_is_dolly_json);
    RUN(test_valid_and_test_pairs_and_keys_not_in_train);
    RUN(test_arithmetic_operands_held_out);
    RUN(test_string_task_words_held_out);
    RUN(test_test_facts_are_taught_in_train);
    RUN(test_same_question_has_several_phrasings);
    RUN(test_prompts_and_responses_are_short);
    RUN(test_world_depends_on_seed_only);
    RUN(test_write_dir_writes_three_files_or_nothing);
    RUN(test_shipped_assets_reproduce_and_fit);
    TEST_EXIT();
}
