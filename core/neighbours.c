#include "neighbours.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "parallel.h"
#include "safetensors.h"

int prompt_init_from_text(const Tokenizer *tok, const float *wte, int V, int C, const char *text, int P,
                          float *prompt, int *ids, char *err) {
    if (P <= 0) return pk_errf(err, "prompt init: prompt length must be >= 1, got %d", P);
    int *tids = NULL, n = 0;
    if (tok_encode(tok, text, strlen(text), 0, &tids, &n, err)) return PK_FAIL;
    if (n == 0) {
        free(tids);
        return pk_errf(err, "prompt init: the init text \"%.60s\" has no tokens", text);
    }
    for (int p = 0; p < P; p++) {
        int id = tids[p % n];
        if (id < 0 || id >= V) {
            free(tids);
            return pk_errf(err, "prompt init: token id %d of the init text is outside the embedding's %d rows", id, V);
        }
        memcpy(prompt + (size_t)p * C, wte + (size_t)id * C, (size_t)C * sizeof(float));
        if (ids) ids[p] = id;
    }
    free(tids);
    return PK_OK;
}

int prompt_load(const char *path, int expect_C, float **prompt, int *P, int *C, char *err) {
    StFile f;
    *prompt = NULL;
    if (st_open(&f, path, err)) return PK_FAIL;
    const StTensor *t = st_find(&f, "prompt");
    int rc = PK_FAIL;
    if (!t) {
        pk_errf(err, "%s: no tensor named \"prompt\" (expected \"prompt\" [P, C])", path);
        goto done;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
        pk_errf(err, "%s: tensor \"prompt\" has dtype %s, expected a float type", path, st_dtype_name(t->dtype));
        goto done;
    }
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > (1 << 20) || t->shape[1] > (1 << 20)) {
        char got[160];
        int gl = snprintf(got, sizeof got, "[");
        for (int i = 0; i < t->ndim && gl < (int)sizeof got - 24; i++)
            gl += snprintf(got + gl, sizeof got - gl, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        snprintf(got + gl, sizeof got - gl, "]");
        pk_errf(err, "%s: tensor \"prompt\" must have shape [P, C] with P, C in 1..%d (got %s)", path, 1 << 20, got);
        goto done;
    }
    if (expect_C > 0 && t->shape[1] != expect_C) {
        pk_errf(err, "%s: tensor \"prompt\" has shape [%lld, %lld], but the model's n_embd is %d", path,
                (long long)t->shape[0], (long long)t->shape[1], expect_C);
        goto done;
    }
    *prompt = pk_malloc(t->numel * sizeof(float), err);
    if (!*prompt) goto done;
    st_read_f32(&f, t, *prompt);
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite((*prompt)[i])) {
            pk_errf(err, "%s: tensor \"prompt\" has a non-finite value at element %zu", path, i);
            free(*prompt);
            *prompt = NULL;
            goto done;
        }
    *P = (int)t->shape[0];
    if (C) *C = (int)t->shape[1];
    rc = PK_OK;
done:
    st_close(&f);
    return rc;
}

int prompt_save(const char *path, const float *prompt, int P, int C, char *err) {
    StWriteEntry e = {.name = "prompt", .dtype = ST_F32, .ndim = 2, .shape = {P, C}, .data = prompt};
    const char *meta[] = {"format", "pt", NULL};
    return st_write(path, &e, 1, meta, err);
}

typedef struct {
    const float *prompt;
    int P;
    const float *wte;
    int C;
    const double *prompt_norm; /* [P] */
    float *sims;               /* [P, V] */
    int V;
} SimCtx;

static void sims_range(void *vctx, long begin, long end) {
    SimCtx *c = vctx;
    for (long v = begin; v < end; v++) {
        const float *w = c->wte + (size_t)v * c->C;
        double ww = 0.0;
        for (int i = 0; i < c->C; i++) ww += (double)w[i] * w[i];
        double wn = sqrt(ww);
        for (int p = 0; p < c->P; p++) {
            const float *x = c->prompt + (size_t)p * c->C;
            double dot = 0.0;
            for (int i = 0; i < c->C; i++) dot += (double)x[i] * w[i];
            double den = wn * c->prompt_norm[p];
            c->sims[(size_t)p * c->V + v] = den > 0.0 ? (float)(dot / den) : 0.0f;
        }
    }
}

/* a ranks before b: higher similarity, then lower id */
static int sim_before(const float *s, int a, int b) {
    return s[a] > s[b] || (s[a] == s[b] && a < b);
}

int prompt_neighbours(const float *prompt, int P, const float *wte, int V, int C, int k, int *ids, float *sims,
                      char *err) {
    if (P < 1 || V < 1 || C < 1) return pk_errf(err, "neighbours: empty prompt [%d, %d] or vocabulary of %d", P, C, V);
    if (k < 1 || k > V) return pk_errf(err, "neighbours: k must be in 1..%d (the vocabulary size), got %d", V, k);
    double *pn = pk_malloc((size_t)P * sizeof(double), err);
    float *all = pk_malloc((size_t)P * V * sizeof(float), err);
    if (!pn || !all) {
        free(pn);
        free(all);
        return PK_FAIL;
    }
    for (int p = 0; p < P; p++) {
        double s = 0.0;
        for (int i = 0; i < C; i++) s += (double)prompt[(size_t)p * C + i] * prompt[(size_t)p * C + i];
        pn[p] = sqrt(s);
    }
    SimCtx ctx = {prompt, P, wte, C, pn, all, V};
    pk_parallel_for_grain(V, 256, sims_range, &ctx);
    for (int p = 0; p < P; p++) {
        const float *s = all + (size_t)p * V;
        int *best = ids + (size_t)p * k;
        int n = 0;
        /* insertion into a sorted list of the k best: k is small */
        for (int v = 0; v < V; v++) {
            if (n == k && !sim_before(s, v, best[k - 1])) continue;
            int j = n < k ? n++ : k - 1;
            while (j > 0 && sim_before(s, v, best[j - 1])) {
                best[j] = best[j - 1];
                j--;
            }
            best[j] = v;
        }
        if (sims)
            for (int j = 0; j < k; j++) sims[(size_t)p * k + j] = s[best[j]];
    }
    free(pn);
    free(all);
    return PK_OK;
}
