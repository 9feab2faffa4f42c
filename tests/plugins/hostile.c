/* Test plugin: calls every host function with hostile arguments (a wrong host pointer,
 * NULLs, negative, zero and huge counts, short buffers, token ids outside the
 * vocabulary, bad names) and checks that each fails with -1 / NULL and a sentence in
 * err and in last_error, and that good calls still work afterwards. It publishes a
 * table "checks" (call, verdict, sentence) and fails naming the first check that did
 * not hold.
 *   plugin run hostile          the argument checks
 *   plugin run hostile limits   the session's limits: tables, series, points, output */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promptkd_plugin.h"

#define MAX_CHECKS 256

typedef struct {
    char call[64], verdict[8], sentence[200];
} Check;

static Check checks[MAX_CHECKS];
static int n_checks, n_bad;
static char first_bad[PK_PLUGIN_ERR_LEN];

/* failed: the call reported failure; errbuf: its err buffer (NULL when it has none) */
static void record(const PkHostApi *api, const char *call, int failed, const char *errbuf) {
    const char *le = api->last_error(api->host);
    int good = failed && le && le[0] && (!errbuf || errbuf[0]);
    if (n_checks < MAX_CHECKS) {
        Check *c = &checks[n_checks++];
        snprintf(c->call, sizeof c->call, "%s", call);
        snprintf(c->verdict, sizeof c->verdict, "%s", good ? "ok" : "BAD");
        snprintf(c->sentence, sizeof c->sentence, "%s", le ? le : "(null)");
    }
    if (!good && !n_bad++)
        snprintf(first_bad, sizeof first_bad, "%s did not fail cleanly (returned %s, last_error '%s')", call,
                 failed ? "an error" : "success", le ? le : "(null)");
}

static char e[PK_PLUGIN_ERR_LEN];
#define INT_FAILS(call_text, expr)                                                                                   \
    do {                                                                                                             \
        e[0] = 0;                                                                                                    \
        int rc_ = (expr);                                                                                            \
        record(api, call_text, rc_ == -1, NULL);                                                                     \
    } while (0)
#define INT_FAILS_ERR(call_text, expr)                                                                               \
    do {                                                                                                             \
        e[0] = 0;                                                                                                    \
        int rc_ = (expr);                                                                                            \
        record(api, call_text, rc_ == -1, e);                                                                        \
    } while (0)
#define PTR_FAILS(call_text, expr)                                                                                   \
    do {                                                                                                             \
        const void *p_ = (expr);                                                                                     \
        record(api, call_text, p_ == NULL, NULL);                                                                    \
    } while (0)

static void hostile_arguments(const PkHostApi *api) {
    void *H = api->host, *BAD = (void *)(size_t)1;
    int V = api->vocab_size(H);
    int tok[4] = {0, 1, 2, 3}, *ids = NULL, n = 0;
    float *logits = malloc(sizeof(float) * (size_t)(V > 0 ? V : 1) * 4);
    double mass[64];
    const float *pp, *pi;
    int P, Cw;
    static char long_name[300], long_cell[2000];
    memset(long_name, 'a', sizeof long_name - 1);
    memset(long_cell, 'c', sizeof long_cell - 1);

    /* models */
    INT_FAILS("has_model(NULL host)", api->has_model(NULL, 0));
    INT_FAILS("has_model(bad host)", api->has_model(BAD, 0));
    INT_FAILS("has_model(which 99)", api->has_model(H, 99));
    INT_FAILS("has_model(which -1)", api->has_model(H, -1));
    INT_FAILS("vocab_size(NULL host)", api->vocab_size(NULL));
    INT_FAILS("num_layers(which 7)", api->num_layers(H, 7));
    INT_FAILS("num_layers(which INT_MIN)", api->num_layers(H, INT_MIN));
    INT_FAILS("num_layers(bad host)", api->num_layers(BAD, 0));

    /* forward */
    INT_FAILS_ERR("forward(bad host)", api->forward(BAD, PK_MODEL_STUDENT, tok, 4, logits, (size_t)V * 4, e));
    INT_FAILS_ERR("forward(which 5)", api->forward(H, 5, tok, 4, logits, (size_t)V * 4, e));
    INT_FAILS_ERR("forward(tokens NULL)", api->forward(H, PK_MODEL_STUDENT, NULL, 4, logits, (size_t)V * 4, e));
    INT_FAILS_ERR("forward(logits NULL)", api->forward(H, PK_MODEL_STUDENT, tok, 4, NULL, (size_t)V * 4, e));
    INT_FAILS_ERR("forward(n -3)", api->forward(H, PK_MODEL_STUDENT, tok, -3, logits, (size_t)V * 4, e));
    INT_FAILS_ERR("forward(n 0)", api->forward(H, PK_MODEL_STUDENT, tok, 0, logits, (size_t)V * 4, e));
    INT_FAILS_ERR("forward(n INT_MAX)", api->forward(H, PK_MODEL_STUDENT, tok, INT_MAX, logits, (size_t)-1, e));
    INT_FAILS_ERR("forward(n 2^30)", api->forward(H, PK_MODEL_STUDENT, tok, 1 << 30, logits, (size_t)-1, e));
    INT_FAILS_ERR("forward(logits_len 1)", api->forward(H, PK_MODEL_STUDENT, tok, 4, logits, 1, e));
    INT_FAILS_ERR("forward(logits_len n*V-1)", api->forward(H, PK_MODEL_STUDENT, tok, 4, logits, (size_t)V * 4 - 1, e));
    int bad_tok[4] = {0, -1, 2, 3};
    INT_FAILS_ERR("forward(token -1)", api->forward(H, PK_MODEL_STUDENT, bad_tok, 4, logits, (size_t)V * 4, e));
    bad_tok[1] = V;
    INT_FAILS_ERR("forward(token V)", api->forward(H, PK_MODEL_STUDENT, bad_tok, 4, logits, (size_t)V * 4, e));
    bad_tok[1] = INT_MAX;
    INT_FAILS_ERR("forward(token INT_MAX)", api->forward(H, PK_MODEL_TEACHER, bad_tok, 4, logits, (size_t)V * 4, e));
    INT_FAILS("forward(n -3, err NULL)", api->forward(H, PK_MODEL_STUDENT, tok, -3, logits, (size_t)V * 4, NULL));

    /* prompt_attention */
    INT_FAILS_ERR("prompt_attention(bad host)", api->prompt_attention(BAD, tok, 4, mass, 64, e));
    INT_FAILS_ERR("prompt_attention(n -3)", api->prompt_attention(H, tok, -3, mass, 64, e));
    INT_FAILS_ERR("prompt_attention(n 0)", api->prompt_attention(H, tok, 0, mass, 64, e));
    INT_FAILS_ERR("prompt_attention(n 2^30)", api->prompt_attention(H, tok, 1 << 30, mass, 64, e));
    INT_FAILS_ERR("prompt_attention(tokens NULL)", api->prompt_attention(H, NULL, 4, mass, 64, e));
    INT_FAILS_ERR("prompt_attention(mass NULL)", api->prompt_attention(H, tok, 4, NULL, 64, e));
    INT_FAILS_ERR("prompt_attention(mass_len 0)", api->prompt_attention(H, tok, 4, mass, 0, e));
    INT_FAILS_ERR("prompt_attention(mass_len -5)", api->prompt_attention(H, tok, 4, mass, -5, e));
    bad_tok[1] = -7;
    INT_FAILS_ERR("prompt_attention(token -7)", api->prompt_attention(H, bad_tok, 4, mass, 64, e));
    INT_FAILS("prompt_attention(n -3, err NULL)", api->prompt_attention(H, tok, -3, mass, 64, NULL));

    /* prompt */
    INT_FAILS("prompt(NULL outputs)", api->prompt(H, NULL, NULL, NULL, NULL));
    INT_FAILS("prompt(P NULL)", api->prompt(H, &pp, &pi, NULL, &Cw));
    INT_FAILS("prompt(bad host)", api->prompt(BAD, &pp, &pi, &P, &Cw));

    /* tokenizer */
    INT_FAILS_ERR("encode(text NULL)", api->encode(H, NULL, &ids, &n, e));
    INT_FAILS_ERR("encode(ids NULL)", api->encode(H, "hello", NULL, &n, e));
    INT_FAILS_ERR("encode(n NULL)", api->encode(H, "hello", &ids, NULL, e));
    INT_FAILS_ERR("encode(bad host)", api->encode(BAD, "hello", &ids, &n, e));
    INT_FAILS("encode(text NULL, err NULL)", api->encode(H, NULL, &ids, &n, NULL));
    PTR_FAILS("decode(ids NULL, n 3)", api->decode(H, NULL, 3));
    PTR_FAILS("decode(n -3)", api->decode(H, tok, -3));
    PTR_FAILS("decode(n INT_MAX)", api->decode(H, tok, INT_MAX));
    bad_tok[1] = -1;
    PTR_FAILS("decode(id -1)", api->decode(H, bad_tok, 4));
    bad_tok[1] = V + 5;
    PTR_FAILS("decode(id V+5)", api->decode(H, bad_tok, 4));
    PTR_FAILS("decode(bad host)", api->decode(BAD, tok, 4));
    INT_FAILS("eos_id(NULL host)", api->eos_id(NULL));
    api->free_ids(NULL);
    api->free_text(NULL);

    /* data */
    INT_FAILS("dataset_size(NULL)", api->dataset_size(H, NULL));
    INT_FAILS("dataset_size(\"bogus\")", api->dataset_size(H, "bogus"));
    INT_FAILS("dataset_size(\"trainingXX\")", api->dataset_size(H, "trainingXX"));
    INT_FAILS("dataset_size(bad host)", api->dataset_size(BAD, "train"));
    PTR_FAILS("dataset_prompt(split NULL)", api->dataset_prompt(H, NULL, 0));
    PTR_FAILS("dataset_prompt(i -1)", api->dataset_prompt(H, "train", -1));
    PTR_FAILS("dataset_prompt(i INT_MAX)", api->dataset_prompt(H, "train", INT_MAX));
    PTR_FAILS("dataset_prompt(\"nope\")", api->dataset_prompt(H, "nope", 0));
    PTR_FAILS("dataset_response(i -1)", api->dataset_response(H, "valid", -1));
    PTR_FAILS("dataset_response(split NULL)", api->dataset_response(H, NULL, 0));
    PTR_FAILS("dataset_response(bad host)", api->dataset_response(BAD, "train", 0));

    /* sampling */
    INT_FAILS_ERR("sample(which 9)", api->sample(H, 9, "Q: hi\nA:", 4, 1, &ids, &n, e));
    INT_FAILS_ERR("sample(prompt NULL)", api->sample(H, PK_MODEL_STUDENT, NULL, 4, 1, &ids, &n, e));
    INT_FAILS_ERR("sample(max_new_tokens 0)", api->sample(H, PK_MODEL_STUDENT, "Q:", 0, 1, &ids, &n, e));
    INT_FAILS_ERR("sample(max_new_tokens -1)", api->sample(H, PK_MODEL_STUDENT, "Q:", -1, 1, &ids, &n, e));
    INT_FAILS_ERR("sample(max_new_tokens 2^30)", api->sample(H, PK_MODEL_STUDENT, "Q:", 1 << 30, 1, &ids, &n, e));
    INT_FAILS_ERR("sample(ids NULL)", api->sample(H, PK_MODEL_STUDENT, "Q:", 4, 1, NULL, &n, e));
    INT_FAILS_ERR("sample(n NULL)", api->sample(H, PK_MODEL_STUDENT, "Q:", 4, 1, &ids, NULL, e));
    INT_FAILS_ERR("sample(bad host)", api->sample(BAD, PK_MODEL_STUDENT, "Q:", 4, 1, &ids, &n, e));

    /* publishing */
    const char *hdr[2] = {"a", "b"}, *cells[2] = {"1", "2"}, *long_cells[2] = {"1", long_cell};
    double x[3] = {1, 2, 3}, y[3] = {4, 5, 6};
    INT_FAILS("publish_table(name NULL)", api->publish_table(H, NULL, 2, hdr, 1, cells));
    INT_FAILS("publish_table(name \"\")", api->publish_table(H, "", 2, hdr, 1, cells));
    INT_FAILS("publish_table(name \"a/b\")", api->publish_table(H, "a/b", 2, hdr, 1, cells));
    INT_FAILS("publish_table(name \"x\\033[2J\")", api->publish_table(H, "x\033[2J", 2, hdr, 1, cells));
    INT_FAILS("publish_table(name 299 bytes)", api->publish_table(H, long_name, 2, hdr, 1, cells));
    INT_FAILS("publish_table(n_cols 0)", api->publish_table(H, "t", 0, hdr, 1, cells));
    INT_FAILS("publish_table(n_cols -1)", api->publish_table(H, "t", -1, hdr, 1, cells));
    INT_FAILS("publish_table(n_cols 65)", api->publish_table(H, "t", 65, hdr, 1, cells));
    INT_FAILS("publish_table(n_cols 2^30)", api->publish_table(H, "t", 1 << 30, hdr, 1, cells));
    INT_FAILS("publish_table(n_rows -3)", api->publish_table(H, "t", 2, hdr, -3, cells));
    INT_FAILS("publish_table(n_rows 2^30)", api->publish_table(H, "t", 2, hdr, 1 << 30, cells));
    INT_FAILS("publish_table(n_rows INT_MAX)", api->publish_table(H, "t", 64, hdr, INT_MAX, cells));
    INT_FAILS("publish_table(headers NULL)", api->publish_table(H, "t", 2, NULL, 1, cells));
    INT_FAILS("publish_table(cells NULL)", api->publish_table(H, "t", 2, hdr, 1, NULL));
    INT_FAILS("publish_table(cell 1999 bytes)", api->publish_table(H, "t", 2, hdr, 1, long_cells));
    INT_FAILS("publish_table(bad host)", api->publish_table(BAD, "t", 2, hdr, 1, cells));
    INT_FAILS("publish_series(chart NULL)", api->publish_series(H, NULL, "s", x, y, 3));
    INT_FAILS("publish_series(chart \"a/b\")", api->publish_series(H, "a/b", "s", x, y, 3));
    INT_FAILS("publish_series(chart 299 bytes)", api->publish_series(H, long_name, "s", x, y, 3));
    INT_FAILS("publish_series(series NULL)", api->publish_series(H, "c", NULL, x, y, 3));
    INT_FAILS("publish_series(series \"\")", api->publish_series(H, "c", "", x, y, 3));
    INT_FAILS("publish_series(series \"a\\nb\")", api->publish_series(H, "c", "a\nb", x, y, 3));
    INT_FAILS("publish_series(series 299 bytes)", api->publish_series(H, "c", long_name, x, y, 3));
    INT_FAILS("publish_series(n -3)", api->publish_series(H, "c", "s", x, y, -3));
    INT_FAILS("publish_series(n 2^30+1)", api->publish_series(H, "c", "s", x, y, (1 << 30) + 1));
    INT_FAILS("publish_series(n INT_MAX)", api->publish_series(H, "c", "s", x, y, INT_MAX));
    INT_FAILS("publish_series(x NULL)", api->publish_series(H, "c", "s", NULL, y, 3));
    INT_FAILS("publish_series(y NULL)", api->publish_series(H, "c", "s", x, NULL, 3));
    INT_FAILS("publish_series(bad host)", api->publish_series(BAD, "c", "s", x, y, 3));
    INT_FAILS("append_point(chart NULL)", api->append_point(H, NULL, "s", 1, 2));
    INT_FAILS("append_point(series NULL)", api->append_point(H, "c", NULL, 1, 2));
    INT_FAILS("append_point(chart \"../x\")", api->append_point(H, "../x", "s", 1, 2));
    INT_FAILS("append_point(bad host)", api->append_point(BAD, "c", "s", 1, 2));
    api->log(H, NULL);
    record(api, "log(NULL)", 1, NULL);
    const char *le = api->last_error(BAD);
    record(api, "last_error(bad host)", le && le[0], NULL);

    /* good calls still work, and clear last_error */
    int good = api->publish_series(H, "c", "s", x, y, 3) == 0 && api->last_error(H)[0] == 0 &&
               api->publish_series(H, "c", "empty", NULL, NULL, 0) == 0 &&
               api->append_point(H, "c", "s", 4, 7) == 0 && api->dataset_size(H, "train") > 0 &&
               api->forward(H, PK_MODEL_STUDENT, tok, 4, logits, (size_t)V * 4, e) == 0;
    if (!good && !n_bad++)
        snprintf(first_bad, sizeof first_bad, "a good call failed after the hostile ones: %s", api->last_error(H));
    free(logits);
}

/* The session's limits: tables, series and points it keeps, bytes one call may send. */
static void limits(const PkHostApi *api) {
    void *H = api->host;
    const char *hdr[1] = {"v"}, *cells[1] = {"1"};
    int rc = 0;
    char name[32];
    for (int i = 0; i < PK_PLUGIN_MAX_TABLES && rc == 0; i++) {
        snprintf(name, sizeof name, "t%d", i);
        rc = api->publish_table(H, name, 1, hdr, 1, cells);
    }
    INT_FAILS("publish_table(one table too many)", rc ? -1 : api->publish_table(H, "one_more", 1, hdr, 1, cells));
    double x[2] = {0, 1};
    rc = 0;
    for (int i = 0; i < PK_PLUGIN_MAX_SERIES && rc == 0; i++) {
        snprintf(name, sizeof name, "s%d", i);
        rc = api->publish_series(H, "many", name, x, x, 2);
    }
    INT_FAILS("publish_series(one series too many)", rc ? -1 : api->publish_series(H, "many", "one_more", x, x, 2));
    INT_FAILS("append_point(one series too many)", api->append_point(H, "many", "one_more", 1, 1));
    /* a full series (replacing s0): one more point is refused */
    double *big = calloc(PK_PLUGIN_MAX_POINTS, sizeof(double));
    if (big) {
        int full = api->publish_series(H, "many", "s0", big, big, PK_PLUGIN_MAX_POINTS);
        INT_FAILS("append_point(full series)", full ? 0 : api->append_point(H, "many", "s0", 1, 1));
        /* 16 MB per full series: the 64 MiB a call may send run out */
        rc = 0;
        for (int i = 1; i < 8 && rc == 0; i++) {
            snprintf(name, sizeof name, "s%d", i);
            rc = api->publish_series(H, "many", name, big, big, PK_PLUGIN_MAX_POINTS);
        }
        record(api, "publish_series(past the output limit)", rc == -1, NULL);
        /* replace what was sent with small series, so the session keeps little */
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof name, "s%d", i);
            api->publish_series(H, "many", name, x, x, 2);
        }
        free(big);
    }
}

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)state;
    n_checks = n_bad = 0;
    if (argc == 1 && !strcmp(argv[0], "limits"))
        limits(api);
    else
        hostile_arguments(api);
    const char *headers[3] = {"call", "verdict", "last_error"};
    const char **cells = malloc(sizeof(char *) * 3 * (size_t)n_checks);
    if (cells) {
        for (int i = 0; i < n_checks; i++) {
            cells[3 * i] = checks[i].call;
            cells[3 * i + 1] = checks[i].verdict;
            cells[3 * i + 2] = checks[i].sentence;
        }
        if (!(argc == 1 && !strcmp(argv[0], "limits"))) api->publish_table(api->host, "checks", 3, headers, n_checks, cells);
        free(cells);
    }
    char line[96];
    snprintf(line, sizeof line, "%d checks, %d did not fail cleanly", n_checks, n_bad);
    api->log(api->host, line);
    if (n_bad) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "%s", first_bad);
        return -1;
    }
    return 0;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "hostile",
    .description = "test: every host function with hostile arguments must fail with a sentence",
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
