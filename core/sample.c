#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

void sample_options_eval(SampleOptions *o, int eos_id) {
    o->temperature = 1.0f;
    o->top_k = 0;
    o->top_p = 1.0f;
    o->no_repeat_ngram_size = 6;
    o->max_new_tokens = 256;
    o->eos_id = eos_id;
    o->greedy = 0;
}

void sample_options_plain(SampleOptions *o, int eos_id, int max_new_tokens) {
    o->temperature = 1.0f;
    o->top_k = 0;
    o->top_p = 1.0f;
    o->no_repeat_ngram_size = 0;
    o->max_new_tokens = max_new_tokens;
    o->eos_id = eos_id;
    o->greedy = 0;
}

int sample_options_check(const SampleOptions *o, int vocab_size, char *err) {
    if (!o->greedy && !(o->temperature > 0.0f && isfinite(o->temperature)))
        return pk_errf(err, "sampling: temperature must be a finite number > 0 (got %g); use greedy decoding instead of 0",
                       (double)o->temperature);
    if (o->top_k < 0) return pk_errf(err, "sampling: top_k must be >= 0 (0 turns it off), got %d", o->top_k);
    if (!(o->top_p <= 1.0f) || isnan(o->top_p))
        return pk_errf(err, "sampling: top_p must be at most 1.0 (1.0 turns it off), got %g", (double)o->top_p);
    if (o->no_repeat_ngram_size < 0)
        return pk_errf(err, "sampling: no_repeat_ngram_size must be >= 0 (0 turns it off), got %d",
                       o->no_repeat_ngram_size);
    if (o->max_new_tokens < 0) return pk_errf(err, "sampling: max_new_tokens must be >= 0, got %d", o->max_new_tokens);
    if (o->eos_id < -1 || o->eos_id >= vocab_size)
        return pk_errf(err, "sampling: eos_id %d is outside the vocabulary of %d tokens", o->eos_id, vocab_size);
    return PK_OK;
}

void sample_row_rng(PkRng *r, unsigned long long seed, long example_index) {
    /* two rounds of mixing so that nearby (seed, index) pairs give unrelated streams */
    pk_rng_seed(r, pk_mix64(pk_mix64((uint64_t)seed) ^ (uint64_t)example_index));
}

int sample_scratch_init(SampleScratch *s, int V, char *err) {
    memset(s, 0, sizeof *s);
    s->scores = pk_malloc((size_t)V * sizeof(float), err);
    s->ids = pk_malloc((size_t)V * sizeof(int), err);
    if (!s->scores || !s->ids) {
        sample_scratch_free(s);
        return PK_FAIL;
    }
    s->V = V;
    return PK_OK;
}

void sample_scratch_free(SampleScratch *s) {
    free(s->scores);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/* Token a ranks before token b: higher score first, lower id first on equal scores. */
static int ranks_before(const float *scores, int a, int b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
}

/* Min-heap (by rank: the root is the worst-ranked token) sift-down over ids[0..n). */
static void heap_sift_worst(int *ids, int n, int i, const float *scores) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ranks_before(scores, ids[w], ids[l])) w = l;
        if (r < n && ranks_before(scores, ids[w], ids[r])) w = r;
        if (w == i) return;
        int t = ids[i];
        ids[i] = ids[w];
        ids[w] = t;
        i = w;
    }
}

/* Sorts ids[0..n) best-ranked first (heapsort: deterministic, no allocation). */
static void sort_by_rank(int *ids, int n, const float *scores) {
    for (int i = n / 2 - 1; i >= 0; i--) heap_sift_worst(ids, n, i, scores);
    for (int end = n - 1; end > 0; end--) {
        int t = ids[0];
        ids[0] = ids[end];
        ids[end] = t; /* the worst of ids[0..end] goes to the back */
        heap_sift_worst(ids, end, 0, scores);
    }
}

/* HF NoRepeatNGramLogitsProcessor: with n = size and the history h[0..len), every n-gram of h
 * whose first n-1 tokens equal the last n-1 tokens of h bans its last token. */
static void ban_repeated_ngrams(int n, const int *h, int len, float *scores, int V) {
    if (n <= 0 || len + 1 < n) return;
    const int *tail = h + len - (n - 1);
    for (int i = 0; i + n <= len; i++) {
        if (n > 1 && memcmp(h + i, tail, (size_t)(n - 1) * sizeof(int)) != 0) continue;
        int banned = h[i + n - 1];
        if (banned >= 0 && banned < V) scores[banned] = -INFINITY;
    }
}

void sample_process_logits(const SampleOptions *o, const float *logits, int V, const int *history, int n_history,
                           float *scores, int *ids) {
    for (int v = 0; v < V; v++) scores[v] = isnan(logits[v]) ? -INFINITY : logits[v];
    ban_repeated_ngrams(o->no_repeat_ngram_size, history, n_history, scores, V);
    if (o->greedy) return;

    if (o->temperature != 1.0f)
        for (int v = 0; v < V; v++) scores[v] /= o->temperature;

    int n_alive = 0;
    for (int v = 0; v < V; v++)
        if (scores[v] > -INFINITY) ids[n_alive++] = v;
    if (n_alive == 0) return;

    if (o->top_k > 0 && o->top_k < n_alive) {
        /* k-th largest score: keep the k best in a heap whose root is the worst of them */
        int k = o->top_k;
        for (int i = k / 2 - 1; i >= 0; i--) heap_sift_worst(ids, k, i, scores);
        for (int i = k; i < n_alive; i++)
            if (ranks_before(scores, ids[i], ids[0])) {
                ids[0] = ids[i];
                heap_sift_worst(ids, k, 0, scores);
            }
        float kth = scores[ids[0]];
        n_alive = 0;
        for (int v = 0; v < V; v++) {
            if (scores[v] < kth) scores[v] = -INFINITY; /* ties with the k-th value survive, as in HF */
            else if (scores[v] > -INFINITY) ids[n_alive++] = v;
        }
    }

    if (o->top_p < 1.0f) {
        sort_by_rank(ids, n_alive, scores);
        double mx = scores[ids[0]], z = 0.0;
        for (int i = 0; i < n_alive; i++) z += exp((double)scores[ids[i]] - mx);
        /* keep token i while the probability of the tokens ranked above it is < top_p */
        double above = 0.0;
        int keep = 0;
        while (keep < n_alive && (keep == 0 || above < (double)o->top_p)) {
            above += exp((double)scores[ids[keep]] - mx) / z;
            keep++;
        }
        for (int i = keep; i < n_alive; i++) scores[ids[i]] = -INFINITY;
    }
}

int sample_next_token(const SampleOptions *o, const float *logits, int V, const int *history, int n_history,
                      PkRng *rng, SampleScratch *scratch) {
    float *s = scratch->scores;
    sample_process_logits(o, logits, V, history, n_history, s, scratch->ids);
    int best = -1;
    for (int v = 0; v < V; v++)
        if (s[v] > -INFINITY && (best < 0 || s[v] > s[best])) best = v;
    if (best < 0) {
        /* everything removed: fall back to the raw argmax (lowest id on ties) */
        best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return best;
    }
    if (o->greedy) return best;

    /* unnormalised probabilities in place (one exp per token), then one draw against their sum */
    float mx = s[best];
    double z = 0.0;
    for (int v = 0; v < V; v++) {
        s[v] = s[v] > -INFINITY ? expf(s[v] - mx) : 0.0f;
        z += s[v];
    }
    double u = pk_rng_double(rng) * z, acc = 0.0;
    int last = best;
    for (int v = 0; v < V; v++) {
        if (s[v] == 0.0f) continue;
        acc += s[v];
        last = v;
        if (u < acc) return v;
    }
    return last; /* u landed beyond the rounded total */
}

/* ---- batched generation ---- */

typedef struct {
    const SampleOptions *o;
    const float *logits; /* [B, V] */
    int V;
    int *active;         /* [B] */
    int **history;       /* [B] prompt + generated so far */
    int *hist_len;       /* [B] */
    PkRng *rngs;         /* [B] */
    SampleScratch *scratch; /* [B] */
    int *chosen;         /* [B] */
} ChooseCtx;

static void choose_rows(void *vctx, long begin, long end) {
    ChooseCtx *c = vctx;
    for (long b = begin; b < end; b++) {
        if (!c->active[b]) continue;
        c->chosen[b] = sample_next_token(c->o, c->logits + (size_t)b * c->V, c->V, c->history[b], c->hist_len[b],
                                         &c->rngs[b], &c->scratch[b]);
    }
}

typedef struct {
    GPT2 *m;
    SampleRows rows;
    const float *soft_prompt;
    int P;
    const SampleOptions *o;
} GenerateCtx;

int sample_row_begin(const SampleRows *r, int b, int P, int T_pad, int pad_id, int budget, int *tokens,
                     int *row_start, PkRng *rng) {
    int n = r->prompt_lens[b];
    *row_start = T_pad - n;
    for (int t = 0; t < P + T_pad; t++) tokens[t] = pad_id;
    memcpy(tokens + *row_start + P, r->prompts[b], (size_t)n * sizeof(int));
    sample_row_rng(rng, r->seed, r->row_index ? r->row_index[b] : b);
    r->out_lens[b] = 0;
    return budget > 0;
}

/* One KV-cache run over a group of rows that fits the cache: rows[g] indexes the caller's rows. */
static int generate_group(void *vctx, const int *rows, int G, int T_pad, int max_budget, const int *budget,
                          char *err) {
    const GenerateCtx *c = vctx;
    GPT2 *m = c->m;
    const SampleRows *r = &c->rows;
    const float *soft_prompt = c->soft_prompt;
    int P = c->P;
    const SampleOptions *o = c->o;
    int V = m->config.vocab_size;
    int T0 = P + T_pad;
    int pad_id = o->eos_id >= 0 ? o->eos_id : 0;
    int rc = PK_FAIL;
    GPT2KVCache *cache = NULL;
    int *tokens = pk_calloc((size_t)G * T0, sizeof(int), err);
    int *row_start = pk_calloc((size_t)G, sizeof(int), err);
    int *active = pk_calloc((size_t)G, sizeof(int), err);
    int **history = pk_calloc((size_t)G, sizeof(int *), err);
    int *hist_len = pk_calloc((size_t)G, sizeof(int), err);
    PkRng *rngs = pk_calloc((size_t)G, sizeof(PkRng), err);
    SampleScratch *scratch = pk_calloc((size_t)G, sizeof(SampleScratch), err);
    int *chosen = pk_calloc((size_t)G, sizeof(int), err);
    int *next = pk_calloc((size_t)G, sizeof(int), err);
    if (!tokens || !row_start || !active || !history || !hist_len || !rngs || !scratch || !chosen || !next) goto done;

    int n_active = 0;
    for (int g = 0; g < G; g++) {
        int b = rows[g], n = r->prompt_lens[b];
        /* row layout: left padding, P soft-prompt slots, the prompt tokens */
        active[g] =
            sample_row_begin(r, b, P, T_pad, pad_id, budget[b], tokens + (size_t)g * T0, &row_start[g], &rngs[g]);
        history[g] = pk_malloc((size_t)(n + budget[b] + 1) * sizeof(int), err);
        if (!history[g]) goto done;
        memcpy(history[g], r->prompts[b], (size_t)n * sizeof(int));
        hist_len[g] = n;
        if (sample_scratch_init(&scratch[g], V, err)) goto done;
        n_active += active[g];
    }
    if (n_active == 0) {
        rc = PK_OK;
        goto done;
    }
    if (gpt2_kv_create(m, G, T0 + max_budget, &cache, err)) goto done;
    const float *logits = NULL;
    if (gpt2_kv_prefill(cache, tokens, soft_prompt, P, row_start, T0, &logits, err)) goto done;

    ChooseCtx ctx = {o, NULL, V, active, history, hist_len, rngs, scratch, chosen};
    for (;;) {
        ctx.logits = logits;
        pk_parallel_for(G, choose_rows, &ctx);
        n_active = 0;
        for (int g = 0; g < G; g++) {
            int b = rows[g];
            next[g] = pad_id;
            if (!active[g]) continue;
            int tok = chosen[g];
            r->out_tokens[(size_t)b * o->max_new_tokens + r->out_lens[b]] = tok;
            r->out_lens[b]++;
            history[g][hist_len[g]++] = tok;
            next[g] = tok;
            if (tok == o->eos_id || r->out_lens[b] >= budget[b]) active[g] = 0;
            n_active += active[g];
        }
        if (n_active == 0) break;
        if (gpt2_kv_step(cache, next, &logits, err)) goto done;
    }
    rc = PK_OK;
done:
    gpt2_kv_free(cache);
    if (history)
        for (int g = 0; g < G; g++) free(history[g]);
    if (scratch)
        for (int g = 0; g < G; g++) sample_scratch_free(&scratch[g]);
    free(tokens);
    free(row_start);
    free(active);
    free(history);
    free(hist_len);
    free(rngs);
    free(scratch);
    free(chosen);
    free(next);
    return rc;
}

/* Orders row ids by prompt length (ascending, then id); insertion sort keeps it reentrant. */
static void order_by_length(int *order, int B, const int *lens) {
    for (int i = 0; i < B; i++) order[i] = i;
    for (int i = 1; i < B; i++) {
        int x = order[i], j = i - 1;
        while (j >= 0 && (lens[order[j]] > lens[x] || (lens[order[j]] == lens[x] && order[j] > x))) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = x;
    }
}

int sample_generate(GPT2 *m, const int *const *prompts, const int *prompt_lens, int B, const float *soft_prompt,
                    int P, const SampleOptions *o, unsigned long long seed, const long *row_index, int *out_tokens,
                    int *out_lens, char *err) {
    const GPT2Config *cfg = &m->config;
    if (B <= 0) return pk_errf(err, "generate: the batch has %d rows, expected at least 1", B);
    if (P < 0 || (P > 0 && !soft_prompt)) return pk_errf(err, "generate: soft prompt of %d vectors without data", P);
    if (sample_options_check(o, cfg->vocab_size, err)) return PK_FAIL;
    int maxT = cfg->max_seq_len;
    for (int b = 0; b < B; b++) {
        int n = prompt_lens[b];
        if (n < 0 || (n == 0 && P == 0))
            return pk_errf(err, "generate: row %d has an empty prompt (a row needs at least one token or a soft prompt)", b);
        if (P + n > maxT)
            return pk_errf(err, "generate: row %d has %d prompt tokens and %d soft-prompt vectors, more than the model's %d positions",
                           b, n, P, maxT);
        for (int t = 0; t < n; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= cfg->vocab_size)
                return pk_errf(err, "generate: row %d, prompt token %d is id %d, outside the vocabulary of %d", b, t,
                               prompts[b][t], cfg->vocab_size);
    }
    for (size_t i = 0; i < (size_t)B * o->max_new_tokens; i++) out_tokens[i] = -1;

    GenerateCtx c = {m, {prompts, prompt_lens, seed, row_index, o->max_new_tokens, out_tokens, out_lens}, soft_prompt, P, o};
    return sample_in_groups(prompt_lens, B, P, maxT, o->max_new_tokens, out_lens, generate_group, &c, err);
}

int sample_in_groups(const int *prompt_lens, int B, int P, int max_positions, int max_new_tokens, int *out_lens,
                     SampleGroupFn run_group, void *ctx, char *err) {
    int *budget = pk_malloc((size_t)B * sizeof(int), err);
    int *order = budget ? pk_malloc((size_t)B * sizeof(int), err) : NULL;
    if (!order) {
        free(budget);
        return PK_FAIL;
    }
    for (int b = 0; b < B; b++) {
        int room = max_positions - P - prompt_lens[b];
        budget[b] = max_new_tokens < room ? max_new_tokens : room;
        out_lens[b] = 0;
    }
    order_by_length(order, B, prompt_lens);
    int rc = PK_OK;
    for (int g0 = 0; g0 < B && rc == PK_OK;) {
        int g1 = g0 + 1, max_budget = budget[order[g0]];
        while (g1 < B) {
            int cand = order[g1];
            int mb = budget[cand] > max_budget ? budget[cand] : max_budget;
            if (prompt_lens[cand] + P + mb > max_positions) break; /* longest prompt so far is cand's */
            max_budget = mb;
            g1++;
        }
        /* sorted by length: the group's last row has its longest prompt */
        rc = run_group(ctx, order + g0, g1 - g0, prompt_lens[order[g1 - 1]], max_budget, budget, err);
        g0 = g1;
    }
    free(budget);
    free(order);
    return rc;
}

void sample_end_with_eos(int *responses, int stride, const int *lens, int B, int eos_id) {
    for (int b = 0; b < B; b++)
        if (lens[b] > 0) responses[(size_t)b * stride + lens[b] - 1] = eos_id;
}

int sample_scoring_batch(const int *const *prompts, const int *prompt_lens, const int *responses, int resp_stride,
                         const int *resp_lens, int B, int P, int max_T, int pad_id, int *tokens, int *targets,
                         int *lengths, int *T_out, char *err) {
    int T = 1;
    for (int b = 0; b < B; b++) {
        int n = prompt_lens[b], r = resp_lens[b];
        if (n < 1) return pk_errf(err, "scoring batch: row %d has an empty prompt", b);
        if (r < 0 || r > resp_stride)
            return pk_errf(err, "scoring batch: row %d has a response of %d tokens, expected 0..%d", b, r, resp_stride);
        int len = P + n + r - 1;
        if (len > max_T)
            return pk_errf(err, "scoring batch: row %d needs %d slots (soft prompt %d + prompt %d + response %d - 1), more than %d",
                           b, len, P, n, r, max_T);
        if (len > T) T = len;
    }
    for (int b = 0; b < B; b++) {
        int n = prompt_lens[b], r = resp_lens[b], L = n + r;
        const int *resp = responses + (size_t)b * resp_stride;
        int *tok = tokens + (size_t)b * T, *tgt = targets + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            tok[t] = pad_id;
            tgt[t] = -1;
        }
        for (int t = 0; t + 1 < L; t++) {
            tok[P + t] = t < n ? prompts[b][t] : resp[t - n];
            if (t + 1 >= n) tgt[P + t] = resp[t + 1 - n];
        }
        if (lengths) lengths[b] = P + L - 1;
    }
    *T_out = T;
    return PK_OK;
}

static int is_strip_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

int sample_decode_text(const Tokenizer *tok, const int *ids, int n, int eos_id, int strip, char **out, char *err) {
    *out = NULL;
    int m = 0;
    while (m < n && ids[m] != eos_id) m++;
    char *raw = NULL;
    size_t len = 0;
    if (tok_decode(tok, ids, m, &raw, &len, err)) return PK_FAIL;
    PkBuf b = {0};
    size_t i = 0;
    int ok = 1;
    while (i < len && ok) {
        long bad = pk_utf8_invalid_at(raw + i, len - i);
        size_t good = bad < 0 ? len - i : (size_t)bad;
        ok = pk_buf_append(&b, raw + i, good) == PK_OK;
        i += good;
        if (bad >= 0 && ok) {
            ok = pk_buf_append(&b, "\xEF\xBF\xBD", 3) == PK_OK; /* U+FFFD for the offending byte */
            i++;
        }
    }
    free(raw);
    if (!ok || pk_buf_append(&b, "", 1) != PK_OK) {
        pk_buf_free(&b);
        return pk_errf(err, "decode: out of memory");
    }
    char *s = b.data;
    size_t sl = b.len - 1;
    if (strip) {
        size_t a = 0;
        while (a < sl && is_strip_space((unsigned char)s[a])) a++;
        while (sl > a && is_strip_space((unsigned char)s[sl - 1])) sl--;
        memmove(s, s + a, sl - a);
        s[sl - a] = 0;
    }
    *out = s;
    return PK_OK;
}
