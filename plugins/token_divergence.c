/* token_divergence: which response tokens the student and the (prompted) teacher
 * disagree on most. On student samples from dev prompts, both models are
 * teacher-forced on the same sequence and, at every response position,
 * KL(T'||S) and KL(S||T') are computed over the full vocabulary.
 * Publishes the top tokens of each direction as a table and the mean of both
 * over response positions as a chart.
 *   plugin run token_divergence [SAMPLES] [MAX_NEW_TOKENS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promptkd_plugin.h"

#define TOP_N 10

typedef struct {
    double fkl, rkl; /* KL(T'||S), KL(S||T') */
    int token, sample, position;
} TokenScore;

/* log-softmax of one row into out (double) */
static void log_softmax(const float *logits, int V, double *out) {
    double mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    double z = 0;
    for (int v = 0; v < V; v++) z += exp(logits[v] - mx);
    double lz = mx + log(z);
    for (int v = 0; v < V; v++) out[v] = logits[v] - lz;
}

static double kl(const double *lp, const double *lq, int V) {
    double s = 0;
    for (int v = 0; v < V; v++) s += exp(lp[v]) * (lp[v] - lq[v]);
    return s;
}

static int by_fkl(const void *a, const void *b) {
    double x = ((const TokenScore *)a)->fkl, y = ((const TokenScore *)b)->fkl;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int by_rkl(const void *a, const void *b) {
    double x = ((const TokenScore *)a)->rkl, y = ((const TokenScore *)b)->rkl;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int parse_positive(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > 100000) return -1;
    *out = (int)v;
    return 0;
}

/* printable form of a token for a table cell */
static void token_text(const PkHostApi *api, int id, char *out, size_t len) {
    char *t = api->decode(api->host, &id, 1);
    size_t o = 0;
    if (o + 1 < len) out[o++] = '\'';
    for (const char *p = t ? t : "?"; *p && o + 3 < len; p++) {
        if (*p == '\n') out[o++] = '\\', out[o++] = 'n';
        else if ((unsigned char)*p < 32) out[o++] = '?';
        else out[o++] = *p;
    }
    if (o + 1 < len) out[o++] = '\'';
    out[o] = 0;
    api->free_text(t);
}

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)state;
    int samples = 8, max_new = 32;
    if (argc > 2 || (argc >= 1 && parse_positive(argv[0], &samples)) || (argc == 2 && parse_positive(argv[1], &max_new))) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "usage: plugin run token_divergence [SAMPLES] [MAX_NEW_TOKENS] (positive integers)");
        return -1;
    }
    int oracle = api->has_model(api->host, PK_MODEL_PROMPTED_TEACHER) ? PK_MODEL_PROMPTED_TEACHER : PK_MODEL_TEACHER;
    if (!api->has_model(api->host, oracle)) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "this run has no teacher to compare the student with");
        return -1;
    }
    const char *split = api->dataset_size(api->host, "valid") > 0 ? "valid" : "train";
    int n_records = api->dataset_size(api->host, split);
    if (n_records < 1) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "no dev prompts to sample from");
        return -1;
    }
    int V = api->vocab_size(api->host);
    if (V < 1) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "%s", api->last_error(api->host));
        return -1;
    }
    TokenScore *scores = NULL;
    int n_scores = 0, cap = 0;
    double pos_fkl[512] = {0}, pos_rkl[512] = {0};
    int pos_n[512] = {0};
    double *lp = malloc(sizeof(double) * V), *lq = malloc(sizeof(double) * V);
    int rc = 0;
    if (!lp || !lq) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "out of memory");
        rc = -1;
    }
    for (int s = 0; s < samples && rc == 0; s++) {
        const char *prompt = api->dataset_prompt(api->host, split, s % n_records);
        int *pids = NULL, np = 0, *rids = NULL, nr = 0;
        if (api->encode(api->host, prompt, &pids, &np, err) ||
            api->sample(api->host, PK_MODEL_STUDENT, prompt, max_new, 1000 + s, &rids, &nr, err)) {
            api->free_ids(pids);
            rc = -1;
            break;
        }
        int n = np + nr;
        int *seq = malloc(sizeof(int) * (n ? n : 1));
        float *lt = malloc(sizeof(float) * (size_t)V * (n ? n : 1)), *ls = malloc(sizeof(float) * (size_t)V * (n ? n : 1));
        if (!seq || !lt || !ls) {
            snprintf(err, PK_PLUGIN_ERR_LEN, "out of memory");
            rc = -1;
        } else if (nr > 0) {
            memcpy(seq, pids, sizeof(int) * np);
            memcpy(seq + np, rids, sizeof(int) * nr);
            size_t len = (size_t)V * n;
            if (api->forward(api->host, oracle, seq, n, lt, len, err) ||
                api->forward(api->host, PK_MODEL_STUDENT, seq, n, ls, len, err)) {
                rc = -1;
            } else {
                /* position np - 1 + j predicts response token j */
                for (int j = 0; j < nr; j++) {
                    size_t row = (size_t)(np - 1 + j) * V;
                    log_softmax(lt + row, V, lp);
                    log_softmax(ls + row, V, lq);
                    TokenScore t = {kl(lp, lq, V), kl(lq, lp, V), rids[j], s, j};
                    if (n_scores == cap) {
                        cap = cap ? cap * 2 : 256;
                        TokenScore *ns = realloc(scores, sizeof *scores * cap);
                        if (!ns) {
                            snprintf(err, PK_PLUGIN_ERR_LEN, "out of memory");
                            rc = -1;
                            break;
                        }
                        scores = ns;
                    }
                    scores[n_scores++] = t;
                    if (j < 512) pos_fkl[j] += t.fkl, pos_rkl[j] += t.rkl, pos_n[j]++;
                }
            }
        }
        free(seq);
        free(lt);
        free(ls);
        api->free_ids(pids);
        api->free_ids(rids);
    }
    if (rc == 0 && n_scores == 0) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "the student produced no response tokens to score");
        rc = -1;
    }
    if (rc == 0) {
        const char *headers[] = {"rank", "KL(T'||S) token", "KL(T'||S)", "KL(S||T') token", "KL(S||T')"};
        int rows = n_scores < TOP_N ? n_scores : TOP_N;
        char *cells[TOP_N * 5];
        TokenScore *by_r = malloc(sizeof *by_r * n_scores);
        if (!by_r) {
            snprintf(err, PK_PLUGIN_ERR_LEN, "out of memory");
            rc = -1;
        } else {
            memcpy(by_r, scores, sizeof *by_r * n_scores);
            qsort(scores, n_scores, sizeof *scores, by_fkl);
            qsort(by_r, n_scores, sizeof *by_r, by_rkl);
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < 5; c++) cells[r * 5 + c] = malloc(64);
                snprintf(cells[r * 5 + 0], 64, "%d", r + 1);
                token_text(api, scores[r].token, cells[r * 5 + 1], 64);
                snprintf(cells[r * 5 + 2], 64, "%.4f", scores[r].fkl);
                token_text(api, by_r[r].token, cells[r * 5 + 3], 64);
                snprintf(cells[r * 5 + 4], 64, "%.4f", by_r[r].rkl);
            }
            api->publish_table(api->host, "top_tokens", 5, headers, rows, (const char *const *)cells);
            for (int i = 0; i < rows * 5; i++) free(cells[i]);
            free(by_r);
            double x[512], yf[512], yr[512];
            int np = 0;
            for (int j = 0; j < 512; j++)
                if (pos_n[j] > 0) x[np] = j + 1, yf[np] = pos_fkl[j] / pos_n[j], yr[np] = pos_rkl[j] / pos_n[j], np++;
            api->publish_series(api->host, "kl_per_position", "KL(T'||S)", x, yf, np);
            api->publish_series(api->host, "kl_per_position", "KL(S||T')", x, yr, np);
        }
    }
    free(scores);
    free(lp);
    free(lq);
    return rc;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "token_divergence",
    .description = "response tokens with the largest KL(T'||S) and KL(S||T') on dev samples",
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
