/* MiniLLM's objective and its teacher-mixed sampler (see minillm.h). Which official lines each
 * part follows (microsoft/LMOps, minillm/minillm/):
 *   minillm_sample_mixed      trainer.py generate(mix_in_model, mix_in_alpha) via the authors'
 *                             transformers fork: the next token is drawn from the mixture
 *   minillm_weights_rewards   sampler.py run_sample: mix_probs, log_w, w; rewards = t_rewards +
 *                             ent_rewards (-log q), / reward_scaling, clipped by cliprange_reward;
 *                             reward.py reward_fn gives t_rewards = log p_T(y_t)
 *   minillm_advantages        losses.py _get_advantages_and_returns (with its default whitening,
 *                             utils.py whiten)
 *   minillm_pg_loss           losses.py _pg_loss
 *   minillm_soft_cross_entropy losses.py pt_loss (the kd_ratio part on pretraining text)
 *   MinillmPretrain           tools/process_data_pretrain.py (EOS after each document, packed into
 *                             fixed-length chunks) and pipelines.py LMPipeline (inputs chunk[:-1],
 *                             labels chunk[1:]) */
#include "minillm.h"

#include "data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "sample.h"

/* ------------------------------------------------------------------ one vocabulary row */

static double row_max(const float *x, int V) {
    double m = -INFINITY;
    for (int v = 0; v < V; v++)
        if (x[v] > m) m = x[v];
    return m;
}

/* log sum exp of a row, in double */
static double row_logsumexp(const float *x, int V) {
    double m = row_max(x, V), z = 0;
    for (int v = 0; v < V; v++) z += exp((double)x[v] - m);
    return m + log(z);
}

double minillm_token_logprob(const float *logits, int V, int y) { return (double)logits[y] - row_logsumexp(logits, V); }

void minillm_mix_probs(const float *t_logits, const float *s_logits, int V, float alpha, float *mix) {
    double lt = row_logsumexp(t_logits, V), ls = row_logsumexp(s_logits, V);
    double a = alpha;
    for (int v = 0; v < V; v++)
        mix[v] = (float)(a * exp((double)t_logits[v] - lt) + (1.0 - a) * exp((double)s_logits[v] - ls));
}

int minillm_draw(const float *probs, int V, double u) {
    double total = 0;
    for (int v = 0; v < V; v++) total += probs[v];
    double target = u * total, acc = 0;
    int last = 0;
    for (int v = 0; v < V; v++) {
        if (probs[v] <= 0) continue;
        acc += probs[v];
        last = v;
        if (acc > target) return v;
    }
    return last; /* rounding left the target beyond the sum: the last possible token */
}

void minillm_logprob_backward(const float *logits, int V, int y, float g, float *dlogits) {
    double lse = row_logsumexp(logits, V);
    for (int v = 0; v < V; v++) dlogits[v] -= (float)(g * exp((double)logits[v] - lse));
    dlogits[y] += g;
}

/* ------------------------------------------------------------------ per response token */

void minillm_weights_rewards(int n, const float *t_logp, const float *s_logp, float alpha, float reward_scaling,
                             float reward_clip, float *w, float *rewards) {
    for (int i = 0; i < n; i++) {
        double lt = t_logp[i], ls = s_logp[i];
        /* the mixture's probability of the sampled token, then w = q / p_mix in log space */
        double mix = (1.0 - alpha) * exp(ls) + (double)alpha * exp(lt);
        w[i] = alpha == 0.0f ? 1.0f : (float)exp(ls - log(mix));
        double r = (lt - ls) / reward_scaling;
        if (reward_clip > 0) r = r < -reward_clip ? -reward_clip : r > reward_clip ? reward_clip : r;
        rewards[i] = (float)r;
    }
}

int minillm_advantages(const float *rewards, const int *lens, int B, int R, float gamma, int whiten, float *adv,
                       char *err) {
    size_t N = (size_t)B * R;
    if (whiten && N < 2) return pk_errf(err, "minillm: whitening needs at least 2 advantages, got %zu", N);
    for (int b = 0; b < B; b++) {
        if (lens[b] < 0 || lens[b] > R)
            return pk_errf(err, "minillm: row %d has %d response tokens, expected 0..%d", b, lens[b], R);
        double ret = 0;
        for (int t = R - 1; t >= 0; t--) {
            ret = rewards[(size_t)b * R + t] + (double)gamma * ret;
            int left = lens[b] - t; /* response tokens from t on; 0 past the end counts as 1 */
            adv[(size_t)b * R + t] = (float)(ret / (left > 0 ? left : 1));
        }
    }
    if (!whiten) return PK_OK;
    double mean = minillm_sum(adv, N) / (double)N;
    minillm_whiten(adv, N, mean, minillm_squared_deviations(adv, N, mean), N);
    return PK_OK;
}

double minillm_sum(const float *x, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    return sum;
}

double minillm_squared_deviations(const float *x, size_t n, double mean) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    return ss;
}

void minillm_whiten(float *x, size_t n, double mean, double squared_deviations, size_t total) {
    double inv = 1.0 / sqrt(squared_deviations / (double)(total - 1) + 1e-8);
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - mean) * inv);
}

double minillm_pg_loss(int n, const float *logp, const float *old_logp, const float *w, const float *adv, float clip,
                       long count, float *dlogp) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double rho = exp((double)logp[i] - old_logp[i]) * w[i];
        double lo = 1.0 - clip, hi = 1.0 + clip;
        double clamped = rho < lo ? lo : rho > hi ? hi : rho;
        double a = adv[i];
        double plain = -a * rho, pess = -a * clamped;
        sum += plain > pess ? plain : pess;
        if (dlogp) {
            /* d rho / d logp = rho; the clamped branch is constant outside the range */
            int plain_counts = (rho >= lo && rho <= hi) || plain > pess;
            dlogp[i] = plain_counts ? (float)(-a * rho / count) : 0.0f;
        }
    }
    return count > 0 ? sum / count : 0.0;
}

typedef struct {
    const float *t, *s;
    int V;
    float scale;
    float *d;
    double *row_sums;
} SoftCeCtx;

static void soft_ce_rows(void *vctx, long begin, long end) {
    SoftCeCtx *c = vctx;
    int V = c->V;
    for (long i = begin; i < end; i++) {
        const float *t = c->t + (size_t)i * V, *s = c->s + (size_t)i * V;
        double lt = row_logsumexp(t, V), ls = row_logsumexp(s, V), ce = 0;
        float *d = c->d ? c->d + (size_t)i * V : NULL;
        for (int v = 0; v < V; v++) {
            double p = exp((double)t[v] - lt), logq = (double)s[v] - ls;
            ce -= p * logq;
            if (d) d[v] += (float)(c->scale * (exp(logq) - p));
        }
        c->row_sums[i] = ce;
    }
}

double minillm_soft_cross_entropy(const float *t_logits, const float *s_logits, int n, int V, float scale,
                                  float *dlogits) {
    double one = 0, total = 0;
    double *sums = n > 1 ? malloc((size_t)n * sizeof(double)) : NULL;
    SoftCeCtx c = {t_logits, s_logits, V, scale, dlogits, sums ? sums : &one};
    if (sums) {
        pk_parallel_for(n, soft_ce_rows, &c);
        for (int i = 0; i < n; i++) total += sums[i]; /* in row order: the same sum on any thread count */
        free(sums);
        return total;
    }
    for (int i = 0; i < n; i++) { /* one row, or no memory for the per-row sums: serially */
        SoftCeCtx r = c;
        r.t = t_logits + (size_t)i * V;
        r.s = s_logits + (size_t)i * V;
        r.d = dlogits ? dlogits + (size_t)i * V : NULL;
        r.row_sums = &one;
        soft_ce_rows(&r, 0, 1);
        total += one;
    }
    return total;
}

/* ------------------------------------------------------------------ teacher-mixed sampling */

/* One group of rows that fit the models' positions together (left padding to the group's
 * longest prompt, then each row's budget). */
typedef struct {
    GPT2 *student, *teacher;
    SampleRows rows;
    float alpha;
    int eos_id;
} MixedCtx;

static int mixed_group(void *vctx, const int *rows, int G, int T_pad, int max_budget, const int *budget,
                       char *err) {
    const MixedCtx *c = vctx;
    GPT2 *student = c->student, *teacher = c->teacher;
    const SampleRows *r = &c->rows;
    float alpha = c->alpha;
    int eos_id = c->eos_id;
    int V = student->config.vocab_size;
    int pad_id = eos_id >= 0 ? eos_id : 0;
    int rc = PK_FAIL;
    GPT2KVCache *sc = NULL, *tc = NULL;
    int *tokens = pk_malloc((size_t)G * T_pad * sizeof(int), err);
    int *row_start = tokens ? pk_malloc((size_t)G * sizeof(int), err) : NULL;
    int *active = row_start ? pk_calloc((size_t)G, sizeof(int), err) : NULL;
    int *next = active ? pk_malloc((size_t)G * sizeof(int), err) : NULL;
    PkRng *rngs = next ? pk_malloc((size_t)G * sizeof(PkRng), err) : NULL;
    float *mix = rngs ? pk_malloc((size_t)V * sizeof(float), err) : NULL;
    if (!mix) goto done;
    int n_active = 0;
    for (int g = 0; g < G; g++) {
        int b = rows[g];
        active[g] = sample_row_begin(r, b, 0, T_pad, pad_id, budget[b], tokens + (size_t)g * T_pad, &row_start[g],
                                     &rngs[g]);
        n_active += active[g];
    }
    if (n_active == 0) {
        rc = PK_OK;
        goto done;
    }
    const float *s_logits = NULL, *t_logits = NULL;
    if (gpt2_kv_create(student, G, T_pad + max_budget, &sc, err) != PK_OK) goto done;
    if (gpt2_kv_create(teacher, G, T_pad + max_budget, &tc, err) != PK_OK) goto done;
    if (gpt2_kv_prefill(sc, tokens, NULL, 0, row_start, T_pad, &s_logits, err) != PK_OK) goto done;
    if (gpt2_kv_prefill(tc, tokens, NULL, 0, row_start, T_pad, &t_logits, err) != PK_OK) goto done;
    for (;;) {
        n_active = 0;
        for (int g = 0; g < G; g++) {
            int b = rows[g];
            next[g] = pad_id;
            if (!active[g]) continue;
            minillm_mix_probs(t_logits + (size_t)g * V, s_logits + (size_t)g * V, V, alpha, mix);
            int tok = minillm_draw(mix, V, pk_rng_double(&rngs[g]));
            r->out_tokens[(size_t)b * r->max_new_tokens + r->out_lens[b]++] = tok;
            next[g] = tok;
            if (tok == eos_id || r->out_lens[b] >= budget[b]) active[g] = 0;
            n_active += active[g];
        }
        if (n_active == 0) break;
        if (gpt2_kv_step(sc, next, &s_logits, err) != PK_OK) goto done;
        if (gpt2_kv_step(tc, next, &t_logits, err) != PK_OK) goto done;
    }
    rc = PK_OK;
done:
    gpt2_kv_free(sc);
    gpt2_kv_free(tc);
    free(tokens);
    free(row_start);
    free(active);
    free(next);
    free(rngs);
    free(mix);
    return rc;
}

int minillm_sample_mixed(GPT2 *student, GPT2 *teacher, const int *const *prompts, const int *prompt_lens, int B,
                         float alpha, int max_new_tokens, int eos_id, unsigned long long seed, const long *row_index,
                         int *out_tokens, int *out_lens, char *err) {
    int V = student->config.vocab_size;
    if (teacher->config.vocab_size != V)
        return pk_errf(err, "minillm: the teacher's vocabulary (%d) differs from the student's (%d)",
                       teacher->config.vocab_size, V);
    if (B < 1) return pk_errf(err, "minillm: the batch has %d rows, expected at least 1", B);
    if (!(alpha >= 0.0f && alpha <= 1.0f)) return pk_errf(err, "minillm: teacher mix %g is outside [0, 1]", alpha);
    if (max_new_tokens < 0) return pk_errf(err, "minillm: max_new_tokens %d is negative", max_new_tokens);
    int maxT = student->config.max_seq_len < teacher->config.max_seq_len ? student->config.max_seq_len
                                                                         : teacher->config.max_seq_len;
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] < 1 || prompt_lens[b] >= maxT)
            return pk_errf(err, "minillm: row %d has %d prompt tokens, expected 1..%d to leave room for a response", b,
                           prompt_lens[b], maxT - 1);
        for (int t = 0; t < prompt_lens[b]; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= V)
                return pk_errf(err, "minillm: row %d, prompt token %d is id %d, outside the vocabulary of %d", b, t,
                               prompts[b][t], V);
    }
    for (size_t i = 0; i < (size_t)B * max_new_tokens; i++) out_tokens[i] = -1;
    MixedCtx c = {student, teacher, {prompts, prompt_lens, seed, row_index, max_new_tokens, out_tokens, out_lens}, alpha,
                  eos_id};
    return sample_in_groups(prompt_lens, B, 0, maxT, max_new_tokens, out_lens, mixed_group, &c, err);
}

/* ------------------------------------------------------------------ pretraining text */

void minillm_pretrain_free(MinillmPretrain *p) {
    if (!p) return;
    free(p->tokens);
    free(p->order);
    free(p);
}

int minillm_pretrain_load(MinillmPretrain **out, const char *path, const Tokenizer *tok, int eos_id, int chunk_len,
                          unsigned long long seed, char *err) {
    *out = NULL;
    if (!path || !*path) return pk_errf(err, "minillm: no pretraining text file named");
    if (chunk_len < 2) return pk_errf(err, "minillm: pretraining chunks of %d tokens, expected at least 2", chunk_len);
    if (eos_id < 0) return pk_errf(err, "minillm: the tokenizer has no <|endoftext|> to separate documents");
    int *all = NULL, docs = 0;
    size_t n_all = 0;
    int rc = data_load_corpus(path, tok, &all, &n_all, &docs, err); /* EOS after every document, as the official packing */
    if (rc == PK_OK && tok_eos_id(tok) != eos_id)
        rc = pk_errf(err, "%s: the tokenizer's <|endoftext|> is %d, the model's eos_token_id %d", path, tok_eos_id(tok),
                     eos_id);
    MinillmPretrain *pt = NULL;
    if (rc == PK_OK && n_all / (size_t)chunk_len < 1)
        rc = pk_errf(err, "%s: %d documents give %zu tokens, fewer than one chunk of %d", path, docs, n_all, chunk_len);
    if (rc == PK_OK && n_all / (size_t)chunk_len > (size_t)(1 << 30))
        rc = pk_errf(err, "%s: too much pretraining text (%zu tokens)", path, n_all);
    if (rc == PK_OK && (pt = pk_calloc(1, sizeof *pt, err)) == NULL) rc = PK_FAIL;
    if (rc == PK_OK) {
        pt->n_chunks = (int)(n_all / (size_t)chunk_len);
        pt->chunk_len = chunk_len;
        pt->seed = seed;
        pt->order_pass = -1;
        pt->tokens = all; /* the first n_chunks * chunk_len tokens; the rest is never read */
        all = NULL;
        pt->order = pk_malloc((size_t)pt->n_chunks * sizeof(int), err);
        if (!pt->order) rc = PK_FAIL;
    }
    free(all);
    if (rc != PK_OK) {
        minillm_pretrain_free(pt);
        return PK_FAIL;
    }
    *out = pt;
    return PK_OK;
}

int minillm_pretrain_batch(MinillmPretrain *p, long update, int B, int *tokens, int *targets, char *err) {
    if (update < 0 || B < 1) return pk_errf(err, "minillm: pretraining batch %ld of %d rows", update, B);
    int L = p->chunk_len - 1;
    for (int b = 0; b < B; b++) {
        long idx = update * (long)B + b;
        long pass = idx / p->n_chunks;
        if (pass != p->order_pass) {
            /* the shuffle of this pass: a function of (seed, pass) only */
            PkRng r;
            sample_row_rng(&r, p->seed, pass);
            for (int i = 0; i < p->n_chunks; i++) p->order[i] = i;
            pk_rng_shuffle_int(&r, p->order, p->n_chunks);
            p->order_pass = pass;
        }
        const int *chunk = p->tokens + (size_t)p->order[idx % p->n_chunks] * p->chunk_len;
        memcpy(tokens + (size_t)b * L, chunk, (size_t)L * sizeof(int));
        memcpy(targets + (size_t)b * L, chunk + 1, (size_t)L * sizeof(int));
    }
    return PK_OK;
}
