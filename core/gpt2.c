/* GPT-2 forward, backward, input-only backward and KV-cache decoding on the
 * kernels of core/kernels.c. Checkpoint I/O lives in core/hf_gpt2.c. */
#include "gpt2.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "parallel.h"

/* ------------------------------------------------------------------ parameters */

static const char *const param_names[GPT2_NUM_PARAM_TENSORS] = {
    "wte.weight",           "wpe.weight",         "h.%d.ln_1.weight",          "h.%d.ln_1.bias",
    "h.%d.attn.c_attn.weight", "h.%d.attn.c_attn.bias", "h.%d.attn.c_proj.weight", "h.%d.attn.c_proj.bias",
    "h.%d.ln_2.weight",     "h.%d.ln_2.bias",     "h.%d.mlp.c_fc.weight",      "h.%d.mlp.c_fc.bias",
    "h.%d.mlp.c_proj.weight", "h.%d.mlp.c_proj.bias", "ln_f.weight",            "ln_f.bias",
    "lm_head.weight"};

void gpt2_param_info(const GPT2Config *cfg, int i, GPT2ParamInfo *out) {
    size_t V = (size_t)cfg->vocab_size, C = (size_t)cfg->channels, maxT = (size_t)cfg->max_seq_len;
    size_t L = (size_t)cfg->num_layers, F = (size_t)cfg->n_inner;
    memset(out, 0, sizeof *out);
    out->name = (i >= 0 && i < GPT2_NUM_PARAM_TENSORS) ? param_names[i] : "";
    out->per_layer = i >= 2 && i <= 13;
    size_t s0 = 0, s1 = 0;
    switch (i) {
    case 0: s0 = V, s1 = C; break;
    case 1: s0 = maxT, s1 = C; break;
    case 2: case 3: case 7: case 8: case 9: case 13: case 14: case 15: s0 = C; break;
    case 4: s0 = C, s1 = 3 * C; break;
    case 5: s0 = 3 * C; break;
    case 6: s0 = C, s1 = C; break;
    case 10: s0 = C, s1 = F; break;
    case 11: s0 = F; break;
    case 12: s0 = F, s1 = C; break;
    case 16: s0 = cfg->tied_lm_head ? 0 : V, s1 = C; break;
    default: break;
    }
    out->ndim = s1 ? 2 : 1;
    out->shape[0] = s0;
    out->shape[1] = s1;
    out->numel = (s1 ? s0 * s1 : s0) * (out->per_layer ? L : 1);
    out->decay = out->ndim == 2; /* matrices decay; biases and LayerNorm parameters do not */
}

static int check_config(const GPT2Config *c, char *err) {
    if (c->vocab_size < 1) return pk_errf(err, "model config: vocab_size must be >= 1, got %d", c->vocab_size);
    if (c->max_seq_len < 1) return pk_errf(err, "model config: n_positions must be >= 1, got %d", c->max_seq_len);
    if (c->num_layers < 1) return pk_errf(err, "model config: n_layer must be >= 1, got %d", c->num_layers);
    if (c->num_heads < 1) return pk_errf(err, "model config: n_head must be >= 1, got %d", c->num_heads);
    if (c->channels < 1 || c->channels % c->num_heads)
        return pk_errf(err, "model config: n_embd (%d) must be a positive multiple of n_head (%d)", c->channels,
                       c->num_heads);
    if (c->n_inner < 1) return pk_errf(err, "model config: n_inner must be >= 1, got %d", c->n_inner);
    if (!(c->layer_norm_eps > 0.0f)) return pk_errf(err, "model config: layer_norm_epsilon must be > 0");
    const char *names[3] = {"embd_pdrop", "attn_pdrop", "resid_pdrop"};
    const float probs[3] = {c->embd_pdrop, c->attn_pdrop, c->resid_pdrop};
    for (int i = 0; i < 3; i++)
        if (!(probs[i] >= 0.0f && probs[i] < 1.0f))
            return pk_errf(err, "model config: %s must be in [0, 1), got %g", names[i], (double)probs[i]);
    return PK_OK;
}

int gpt2_build(GPT2 *m, const GPT2Config *cfg, char *err) {
    memset(m, 0, sizeof *m);
    if (check_config(cfg, err)) return PK_FAIL;
    m->config = *cfg;
    size_t total = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        GPT2ParamInfo info;
        gpt2_param_info(cfg, i, &info);
        m->param_sizes[i] = info.numel;
        total += info.numel;
    }
    m->num_parameters = total;
    m->params_memory = pk_calloc(total, sizeof(float), err);
    if (!m->params_memory) return PK_FAIL;
    float *p = m->params_memory;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        m->params[i] = p;
        p += m->param_sizes[i];
    }
    gpt2_set_dropout(m, cfg->embd_pdrop, cfg->attn_pdrop, cfg->resid_pdrop);
    pk_num_threads(); /* starts the pool, which also pins OpenBLAS to one thread */
    return PK_OK;
}

void gpt2_set_dropout(GPT2 *m, float embd, float attn, float resid) {
    m->drop_embd = embd;
    m->drop_attn = attn;
    m->drop_resid = resid;
}

void gpt2_train_mode(GPT2 *m, int on, unsigned long long seed) {
    m->training = on;
    m->dropout_seed = seed;
    m->dropout_row_base = 0;
}

void gpt2_dropout_rows(GPT2 *m, long first_row) { m->dropout_row_base = first_row; }

/* Initialisation in blocks, each from its own seeded stream, so it runs in
 * parallel and gives the same weights for any thread count. */
#define INIT_BLOCK 65536L
typedef struct {
    float *p;
    long n;
    float std;
    unsigned long long seed;
} InitJob;

static void init_range(void *ctx, long b, long e) {
    const InitJob *a = ctx;
    for (long blk = b; blk < e; blk++) {
        PkRng r;
        pk_rng_seed(&r, a->seed * 0x9E3779B97F4A7C15ULL + (unsigned long long)blk);
        long i0 = blk * INIT_BLOCK, i1 = i0 + INIT_BLOCK < a->n ? i0 + INIT_BLOCK : a->n;
        for (long i = i0; i < i1; i++) a->p[i] = (float)(pk_rng_normal(&r) * a->std);
    }
}

void gpt2_init_random(GPT2 *m, unsigned long long seed) {
    int L = m->config.num_layers;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        long n = (long)m->param_sizes[i];
        float *p = m->params[i];
        if (!n) continue;
        if (i == 2 || i == 8 || i == 14) { /* LayerNorm weights */
            for (long j = 0; j < n; j++) p[j] = 1.0f;
        } else if (i == 3 || i == 5 || i == 7 || i == 9 || i == 11 || i == 13 || i == 15) {
            memset(p, 0, (size_t)n * sizeof(float));
        } else {
            float std = (i == 6 || i == 12) ? 0.02f / sqrtf(2.0f * L) : 0.02f;
            InitJob a = {p, n, std, seed * 31ULL + (unsigned long long)i};
            pk_parallel_for((n + INIT_BLOCK - 1) / INIT_BLOCK, init_range, &a);
        }
    }
}

/* ------------------------------------------------------------------ activations */

enum {
    A_ENCODED, A_LN1, A_LN1_MEAN, A_LN1_RSTD, A_QKV, A_ATTY, A_ATT, A_RESIDUAL2, A_LN2, A_LN2_MEAN, A_LN2_RSTD,
    A_FCH, A_FCH_GELU, A_RESIDUAL3, A_LNF, A_LNF_MEAN, A_LNF_RSTD, A_LOGITS, NUM_ACTS
};
/* gradients of one layer at a time, reused layer after layer */
enum { G_DRESIDUAL, G_DLN, G_DATTY, G_DQKV, G_DFCH, NUM_GRAD_ACTS };

struct GPT2Acts {
    float *memory;
    size_t capacity; /* floats */
    float *a[NUM_ACTS];
    float *grad_memory;
    size_t grad_capacity;
    float *g[NUM_GRAD_ACTS];
    int *tokens;     /* [B, T] of the last forward */
    int *row_start;  /* [B] */
    int has_row_start;
    size_t int_capacity;
    /* Dropout of the last forward (all 0 when it ran in eval mode). The backward
     * recomputes its masks from drop_seed through the counter-based hash instead of
     * keeping them: bytes would cost B*NH*T*T per layer for the attention alone (25 MB
     * for the default teacher at B=16, T=256, L=4) plus B*T*C per residual site, while
     * rehashing costs one splitmix64 per element in a pass that is already there. */
    float drop_embd, drop_attn, drop_resid;
    unsigned long long drop_seed;
    long drop_row_base;
};

/* Dropout over [B, T*C] rows, each row with its own stream (dropout_row_stream of its global
 * index row_base + b), element t*C + c: a sequence's mask does not depend on the batch. */
static void drop_rows(float *out, const float *inp, int B, long row_len, float p, unsigned long long stream,
                      long row_base) {
    for (int b = 0; b < B; b++)
        dropout_forward(out + (size_t)b * row_len, inp + (size_t)b * row_len, row_len, p,
                        dropout_row_stream(stream, row_base + b));
}

/* The dropout sites of Hugging Face's GPT-2, each with its own mask stream per layer. */
enum { DROP_EMBD, DROP_ATTN, DROP_ATTN_RESID, DROP_MLP_RESID };

static void act_sizes(const GPT2Config *c, int B, int T, size_t s[NUM_ACTS]) {
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, F = c->n_inner, V = c->vocab_size;
    size_t BT = (size_t)B * T;
    s[A_ENCODED] = BT * C;
    s[A_LN1] = L * BT * C;
    s[A_LN1_MEAN] = L * BT;
    s[A_LN1_RSTD] = L * BT;
    s[A_QKV] = L * BT * 3 * C;
    s[A_ATTY] = L * BT * C;
    s[A_ATT] = L * B * NH * (size_t)T * T;
    s[A_RESIDUAL2] = L * BT * C;
    s[A_LN2] = L * BT * C;
    s[A_LN2_MEAN] = L * BT;
    s[A_LN2_RSTD] = L * BT;
    s[A_FCH] = L * BT * F;
    s[A_FCH_GELU] = L * BT * F;
    s[A_RESIDUAL3] = L * BT * C;
    s[A_LNF] = BT * C;
    s[A_LNF_MEAN] = BT;
    s[A_LNF_RSTD] = BT;
    s[A_LOGITS] = BT * V;
}

static void grad_act_sizes(const GPT2Config *c, int B, int T, size_t s[NUM_GRAD_ACTS]) {
    size_t C = c->channels, F = c->n_inner, BT = (size_t)B * T;
    s[G_DRESIDUAL] = BT * C;
    s[G_DLN] = BT * C;
    s[G_DATTY] = BT * C;
    s[G_DQKV] = BT * 3 * C;
    s[G_DFCH] = BT * F;
}

/* Points every tensor into one buffer laid out from the size table, growing the
 * buffer when this B x T needs more than it holds. */
static float *layout(float **memory, size_t *capacity, float **ptrs, const size_t *sizes, int n, char *err) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    if (total > *capacity) {
        free(*memory);
        *memory = NULL;
        *capacity = 0;
        *memory = pk_malloc(total * sizeof(float), err);
        if (!*memory) return NULL;
        *capacity = total;
    }
    float *p = *memory;
    for (int i = 0; i < n; i++) {
        ptrs[i] = p;
        p += sizes[i];
    }
    return *memory;
}

static int ensure_acts(GPT2 *m, int B, int T, char *err) {
    if (!m->acts) {
        m->acts = pk_calloc(1, sizeof(GPT2Acts), err);
        if (!m->acts) return PK_FAIL;
    }
    GPT2Acts *A = m->acts;
    size_t sizes[NUM_ACTS];
    act_sizes(&m->config, B, T, sizes);
    if (!layout(&A->memory, &A->capacity, A->a, sizes, NUM_ACTS, err)) return PK_FAIL;
    size_t ints = (size_t)B * T + B;
    if (ints > A->int_capacity) {
        free(A->tokens);
        A->tokens = pk_malloc(ints * sizeof(int), err);
        A->int_capacity = A->tokens ? ints : 0;
        if (!A->tokens) return PK_FAIL;
    }
    A->row_start = A->tokens + (size_t)B * T;
    return PK_OK;
}

static int ensure_grad_acts(GPT2 *m, char *err) {
    GPT2Acts *A = m->acts;
    size_t sizes[NUM_GRAD_ACTS];
    grad_act_sizes(&m->config, m->B, m->T, sizes);
    return layout(&A->grad_memory, &A->grad_capacity, A->g, sizes, NUM_GRAD_ACTS, err) ? PK_OK : PK_FAIL;
}

/* ------------------------------------------------------------------ embeddings */

/* Slot kinds of one row: left padding, soft prompt p, or a real token. */
static inline int slot_prompt_index(int t, int rs, int P) { return (t >= rs && t < rs + P) ? t - rs : -1; }

/* out[B, Tn, C]: embeddings of slots t0 .. t0+Tn-1 (token ids tokens[B, Tn]). */
static void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, const float *prompt,
                            int P, const int *row_start, int B, int t0, int Tn, int C) {
    for (int b = 0; b < B; b++) {
        int rs = row_start ? row_start[b] : 0;
        for (int j = 0; j < Tn; j++) {
            int t = t0 + j;
            float *o = out + ((size_t)b * Tn + j) * C;
            if (t < rs) { /* left padding: masked out for everyone else, any finite value works */
                memset(o, 0, (size_t)C * sizeof(float));
                continue;
            }
            int p = slot_prompt_index(t, rs, P);
            const float *e = p >= 0 ? prompt + (size_t)p * C : wte + (size_t)tokens[(size_t)b * Tn + j] * C;
            const float *pos = wpe + (size_t)(t - rs) * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + pos[i];
        }
    }
}

static void encoder_backward(float *dwte, float *dwpe, float *dprompt, float *dembed, const float *dout,
                             const int *tokens, int P, const int *row_start, int B, int T, int C) {
    if (dembed)
        for (size_t i = 0; i < (size_t)B * T * C; i++) dembed[i] += dout[i];
    for (int b = 0; b < B; b++) {
        int rs = row_start ? row_start[b] : 0;
        for (int t = rs; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            int p = slot_prompt_index(t, rs, P);
            float *de = p >= 0 ? (dprompt ? dprompt + (size_t)p * C : NULL)
                               : (dwte ? dwte + (size_t)tokens[(size_t)b * T + t] * C : NULL);
            if (de)
                for (int i = 0; i < C; i++) de[i] += d[i];
            if (dwpe) {
                float *dp = dwpe + (size_t)(t - rs) * C;
                for (int i = 0; i < C; i++) dp[i] += d[i];
            }
        }
    }
}

/* Validates a batch's token ids and row starts for T slots starting at slot t0. */
static int check_inputs(const GPT2 *m, const int *tokens, const float *soft_prompt, int P, const int *row_start,
                        int B, int t0, int Tn, const char *fn, char *err) {
    const GPT2Config *c = &m->config;
    if (B < 1 || Tn < 1) return pk_errf(err, "%s: batch must have B >= 1 and T >= 1 (got B=%d, T=%d)", fn, B, Tn);
    if (t0 + Tn > c->max_seq_len)
        return pk_errf(err, "%s: %d slots exceed the model's n_positions %d", fn, t0 + Tn, c->max_seq_len);
    if (P < 0 || (P > 0 && !soft_prompt))
        return pk_errf(err, "%s: soft prompt of %d vectors given without data", fn, P);
    for (int b = 0; b < B; b++) {
        int rs = row_start ? row_start[b] : 0;
        if (rs < 0 || rs + P > t0 + Tn || (rs >= t0 + Tn && t0 == 0))
            return pk_errf(err, "%s: row %d starts at slot %d, expected 0 <= start and start + %d prompt slots < %d",
                           fn, b, rs, P, t0 + Tn);
        for (int j = 0; j < Tn; j++) {
            int t = t0 + j;
            if (t < rs || slot_prompt_index(t, rs, P) >= 0) continue;
            int id = tokens[(size_t)b * Tn + j];
            if (id < 0 || id >= c->vocab_size)
                return pk_errf(err, "%s: token id %d at row %d slot %d is outside the vocabulary [0, %d)", fn, id, b,
                               t, c->vocab_size);
        }
    }
    return PK_OK;
}

static const float *lm_head_weight(const GPT2 *m) { return m->config.tied_lm_head ? m->params[0] : m->params[16]; }

/* ------------------------------------------------------------------ forward */

int gpt2_forward(GPT2 *m, const int *tokens, const float *soft_prompt, int P, const int *row_start, int B, int T,
                 char *err) {
    if (check_inputs(m, tokens, soft_prompt, P, row_start, B, 0, T, "gpt2_forward", err)) return PK_FAIL;
    if (ensure_acts(m, B, T, err)) {
        m->logits = NULL; /* the old activations may be gone */
        return PK_FAIL;
    }
    const GPT2Config *c = &m->config;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, F = c->n_inner, V = c->vocab_size;
    int BT = B * T;
    GPT2Acts *A = m->acts;
    if (m->training) {
        const char *names[3] = {"embd", "attn", "resid"};
        const float probs[3] = {m->drop_embd, m->drop_attn, m->drop_resid};
        for (int i = 0; i < 3; i++)
            if (!(probs[i] >= 0.0f && probs[i] < 1.0f)) {
                m->logits = NULL;
                return pk_errf(err, "gpt2_forward: %s dropout probability %g is outside [0, 1)", names[i],
                               (double)probs[i]);
            }
    }
    A->drop_embd = m->training ? m->drop_embd : 0.0f;
    A->drop_attn = m->training ? m->drop_attn : 0.0f;
    A->drop_resid = m->training ? m->drop_resid : 0.0f;
    A->drop_seed = m->dropout_seed;
    A->drop_row_base = m->dropout_row_base;
    const long rb = A->drop_row_base;
    const float p_embd = A->drop_embd, p_attn = A->drop_attn, p_resid = A->drop_resid;
    const unsigned long long seed = A->drop_seed;
    memcpy(A->tokens, tokens, (size_t)BT * sizeof(int));
    A->has_row_start = row_start != NULL;
    for (int b = 0; b < B; b++) A->row_start[b] = row_start ? row_start[b] : 0;
    const int *rs = A->has_row_start ? A->row_start : NULL;
    m->B = B, m->T = T, m->P = P;

    encoder_forward(A->a[A_ENCODED], tokens, m->params[0], m->params[1], soft_prompt, P, rs, B, 0, T, C);
    if (p_embd > 0.0f) /* on token (or soft-prompt) + position embeddings, as HF's drop(inputs_embeds + position_embeds) */
        drop_rows(A->a[A_ENCODED], A->a[A_ENCODED], B, (long)T * C, p_embd, dropout_stream(seed, DROP_EMBD, 0), rb);
    for (int l = 0; l < L; l++) {
        const float *residual = l == 0 ? A->a[A_ENCODED] : A->a[A_RESIDUAL3] + (size_t)(l - 1) * BT * C;
        float *ln1 = A->a[A_LN1] + (size_t)l * BT * C;
        float *qkv = A->a[A_QKV] + (size_t)l * BT * 3 * C;
        float *atty = A->a[A_ATTY] + (size_t)l * BT * C;
        float *att = A->a[A_ATT] + (size_t)l * B * NH * T * T;
        float *residual2 = A->a[A_RESIDUAL2] + (size_t)l * BT * C;
        float *ln2 = A->a[A_LN2] + (size_t)l * BT * C;
        float *fch = A->a[A_FCH] + (size_t)l * BT * F;
        float *fch_gelu = A->a[A_FCH_GELU] + (size_t)l * BT * F;
        float *residual3 = A->a[A_RESIDUAL3] + (size_t)l * BT * C;

        layernorm_forward(ln1, A->a[A_LN1_MEAN] + (size_t)l * BT, A->a[A_LN1_RSTD] + (size_t)l * BT, residual,
                          m->params[2] + (size_t)l * C, m->params[3] + (size_t)l * C, BT, C, c->layer_norm_eps);
        matmul_forward(qkv, ln1, m->params[4] + (size_t)l * C * 3 * C, m->params[5] + (size_t)l * 3 * C, BT, C,
                       3 * C);
        if (p_attn > 0.0f) {
            if (attention_forward_dropout(atty, att, qkv, rs, B, T, C, NH, p_attn, dropout_stream(seed, DROP_ATTN, l), rb)) {
                m->logits = NULL;
                return pk_errf(err, "gpt2_forward: out of memory for attention dropout scratch (T=%d)", T);
            }
        } else {
            attention_forward(atty, att, qkv, qkv + C, qkv + 2 * C, (long)T * 3 * C, 3 * C, (long)T * 3 * C, 3 * C, rs,
                              B, 0, T, C, NH);
        }
        matmul_forward(residual2, atty, m->params[6] + (size_t)l * C * C, m->params[7] + (size_t)l * C, BT, C, C);
        if (p_resid > 0.0f) /* attn.resid_dropout on attn.c_proj's output */
            drop_rows(residual2, residual2, B, (long)T * C, p_resid, dropout_stream(seed, DROP_ATTN_RESID, l), rb);
        residual_forward(residual2, residual2, residual, (long)BT * C);
        layernorm_forward(ln2, A->a[A_LN2_MEAN] + (size_t)l * BT, A->a[A_LN2_RSTD] + (size_t)l * BT, residual2,
                          m->params[8] + (size_t)l * C, m->params[9] + (size_t)l * C, BT, C, c->layer_norm_eps);
        matmul_forward(fch, ln2, m->params[10] + (size_t)l * C * F, m->params[11] + (size_t)l * F, BT, C, F);
        gelu_forward(fch_gelu, fch, (long)BT * F);
        matmul_forward(residual3, fch_gelu, m->params[12] + (size_t)l * F * C, m->params[13] + (size_t)l * C, BT, F,
                       C);
        if (p_resid > 0.0f) /* mlp.dropout on mlp.c_proj's output */
            drop_rows(residual3, residual3, B, (long)T * C, p_resid, dropout_stream(seed, DROP_MLP_RESID, l), rb);
        residual_forward(residual3, residual3, residual2, (long)BT * C);
    }
    layernorm_forward(A->a[A_LNF], A->a[A_LNF_MEAN], A->a[A_LNF_RSTD], A->a[A_RESIDUAL3] + (size_t)(L - 1) * BT * C,
                      m->params[14], m->params[15], BT, C, c->layer_norm_eps);
    /* logits[BT, V] = lnf[BT, C] . W[V, C]^T */
    pk_sgemm(0, 1, BT, V, C, 1.0f, A->a[A_LNF], C, lm_head_weight(m), C, 0.0f, A->a[A_LOGITS], V);
    m->logits = A->a[A_LOGITS];
    return PK_OK;
}

float gpt2_cross_entropy(GPT2 *m, const int *targets, float *dlogits) {
    if (!m->logits) return NAN;
    return crossentropy_softmax(m->logits, targets, NULL, dlogits, m->B * m->T, m->config.vocab_size);
}

/* ------------------------------------------------------------------ backward */

/* The shared backward: with full = 0 every weight-gradient pointer is NULL, so no
 * weight-gradient GEMM runs and grads_memory is never read or written. */
static int backward_impl(GPT2 *m, const float *dlogits, float *dprompt, float *dembed, int full, char *err) {
    if (!m->acts || !m->logits) return pk_errf(err, "gpt2 backward: no forward pass to differentiate");
    if (full && !m->grads_memory) {
        m->grads_memory = pk_calloc(m->num_parameters, sizeof(float), err);
        if (!m->grads_memory) return PK_FAIL;
        float *g = m->grads_memory;
        for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
            m->grads[i] = g;
            g += m->param_sizes[i];
        }
    }
    if (full) m->grads_zero = 0;
    if (ensure_grad_acts(m, err)) return PK_FAIL;
    const GPT2Config *c = &m->config;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, F = c->n_inner, V = c->vocab_size;
    int B = m->B, T = m->T, BT = B * T;
    GPT2Acts *A = m->acts;
    const int *rs = A->has_row_start ? A->row_start : NULL;
    float *const *G = full ? m->grads : NULL;
#define GRAD(i) (G ? G[i] : NULL)
#define GRAD_L(i, stride) (G ? G[i] + (size_t)l * (stride) : NULL)
    float *dres = A->g[G_DRESIDUAL], *dln = A->g[G_DLN], *datty = A->g[G_DATTY], *dqkv = A->g[G_DQKV];
    float *dfch = A->g[G_DFCH]; /* d(fch_gelu), then d(fch) in place */
    /* the last forward's dropout; the masks come back from the same streams */
    const float p_embd = A->drop_embd, p_attn = A->drop_attn, p_resid = A->drop_resid;
    const unsigned long long seed = A->drop_seed;
    const long rb = A->drop_row_base;

    /* LM head: logits = lnf . W^T; dlnf = dlogits . W; dW += dlogits^T . lnf */
    pk_sgemm(0, 0, BT, C, V, 1.0f, dlogits, V, lm_head_weight(m), C, 0.0f, dln, C);
    if (full) {
        float *dW = c->tied_lm_head ? m->grads[0] : m->grads[16];
        pk_sgemm(1, 0, V, C, BT, 1.0f, dlogits, V, A->a[A_LNF], C, 1.0f, dW, C);
    }
    memset(dres, 0, (size_t)BT * C * sizeof(float));
    layernorm_backward(dres, GRAD(14), GRAD(15), dln, A->a[A_RESIDUAL3] + (size_t)(L - 1) * BT * C, m->params[14],
                       A->a[A_LNF_MEAN], A->a[A_LNF_RSTD], BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? A->a[A_ENCODED] : A->a[A_RESIDUAL3] + (size_t)(l - 1) * BT * C;
        const float *ln1 = A->a[A_LN1] + (size_t)l * BT * C;
        const float *qkv = A->a[A_QKV] + (size_t)l * BT * 3 * C;
        const float *atty = A->a[A_ATTY] + (size_t)l * BT * C;
        const float *att = A->a[A_ATT] + (size_t)l * B * NH * T * T;
        const float *residual2 = A->a[A_RESIDUAL2] + (size_t)l * BT * C;
        const float *ln2 = A->a[A_LN2] + (size_t)l * BT * C;
        const float *fch = A->a[A_FCH] + (size_t)l * BT * F;
        const float *fch_gelu = A->a[A_FCH_GELU] + (size_t)l * BT * F;

        /* MLP: residual3 = residual2 + gelu(ln2 . Wfc + bfc) . Wp + bp; dres is d residual3.
         * Each d(input) GEMM overwrites its buffer (beta 0) rather than adding to a
         * zeroed one, and GELU's backward runs in place. */
        const float *Wp = m->params[12] + (size_t)l * F * C, *Wfc = m->params[10] + (size_t)l * C * F;
        const float *dproj = dres; /* d(mlp.c_proj output): dres, or dres through the dropout mask into dln */
        if (p_resid > 0.0f) {
            drop_rows(dln, dres, B, (long)T * C, p_resid, dropout_stream(seed, DROP_MLP_RESID, l), rb);
            dproj = dln;
        }
        pk_sgemm(0, 1, BT, F, C, 1.0f, dproj, C, Wp, C, 0.0f, dfch, F);
        if (full) matmul_backward(NULL, GRAD_L(12, (size_t)F * C), GRAD_L(13, C), dproj, fch_gelu, Wp, BT, F, C);
        gelu_backward_inplace(dfch, fch, (long)BT * F);
        pk_sgemm(0, 1, BT, C, F, 1.0f, dfch, F, Wfc, F, 0.0f, dln, C);
        if (full) matmul_backward(NULL, GRAD_L(10, (size_t)C * F), GRAD_L(11, F), dfch, ln2, Wfc, BT, C, F);
        layernorm_backward(dres, GRAD_L(8, C), GRAD_L(9, C), dln, residual2, m->params[8] + (size_t)l * C,
                           A->a[A_LN2_MEAN] + (size_t)l * BT, A->a[A_LN2_RSTD] + (size_t)l * BT, BT, C);
        /* attention: residual2 = residual + attn(ln1) . Wap + bap; dres is now d residual2 */
        const float *Wap = m->params[6] + (size_t)l * C * C, *Wqkv = m->params[4] + (size_t)l * C * 3 * C;
        dproj = dres; /* d(attn.c_proj output), through the dropout mask when there was one */
        if (p_resid > 0.0f) {
            drop_rows(dln, dres, B, (long)T * C, p_resid, dropout_stream(seed, DROP_ATTN_RESID, l), rb);
            dproj = dln;
        }
        pk_sgemm(0, 1, BT, C, C, 1.0f, dproj, C, Wap, C, 0.0f, datty, C);
        if (full) matmul_backward(NULL, GRAD_L(6, (size_t)C * C), GRAD_L(7, C), dproj, atty, Wap, BT, C, C);
        memset(dqkv, 0, (size_t)BT * 3 * C * sizeof(float)); /* keys and values gather from every later query */
        int attn_rc = p_attn > 0.0f ? attention_backward_dropout(dqkv, datty, qkv, att, rs, B, T, C, NH, p_attn,
                                                                 dropout_stream(seed, DROP_ATTN, l), rb)
                                    : attention_backward(dqkv, datty, qkv, att, rs, B, T, C, NH);
        if (attn_rc != 0)
            return pk_errf(err, "backward: out of memory for attention scratch (B=%d, T=%d)", B, T);
        pk_sgemm(0, 1, BT, C, 3 * C, 1.0f, dqkv, 3 * C, Wqkv, 3 * C, 0.0f, dln, C);
        if (full) matmul_backward(NULL, GRAD_L(4, (size_t)C * 3 * C), GRAD_L(5, 3 * C), dqkv, ln1, Wqkv, BT, C, 3 * C);
        layernorm_backward(dres, GRAD_L(2, C), GRAD_L(3, C), dln, residual, m->params[2] + (size_t)l * C,
                           A->a[A_LN1_MEAN] + (size_t)l * BT, A->a[A_LN1_RSTD] + (size_t)l * BT, BT, C);
    }
    /* dres is now d(embeddings after dropout); through the mask it becomes d(input embeddings) */
    if (p_embd > 0.0f) drop_rows(dres, dres, B, (long)T * C, p_embd, dropout_stream(seed, DROP_EMBD, 0), rb);
    encoder_backward(GRAD(0), GRAD(1), m->P > 0 ? dprompt : NULL, dembed, dres, A->tokens, m->P, rs, B, T, C);
#undef GRAD
#undef GRAD_L
    return PK_OK;
}

int gpt2_backward(GPT2 *m, const float *dlogits, float *dprompt, char *err) {
    return backward_impl(m, dlogits, dprompt, NULL, 1, err);
}

int gpt2_backward_inputs_only(GPT2 *m, const float *dlogits, float *dprompt, float *dembed, char *err) {
    return backward_impl(m, dlogits, dprompt, dembed, 0, err);
}

static void zero_range(void *ctx, long b, long e) { memset((float *)ctx + b, 0, (size_t)(e - b) * sizeof(float)); }

void gpt2_zero_grad(GPT2 *m) {
    /* half a gigabyte at GPT-2 small: both cores' memory bandwidth helps */
    if (m->grads_memory && !m->grads_zero)
        pk_parallel_for_grain((long)m->num_parameters, 1L << 16, zero_range, m->grads_memory);
    m->grads_zero = 1;
}

void gpt2_free(GPT2 *m) {
    if (!m) return;
    free(m->params_memory);
    free(m->grads_memory);
    free(m->m_memory);
    free(m->v_memory);
    if (m->acts) {
        free(m->acts->memory);
        free(m->acts->grad_memory);
        free(m->acts->tokens);
        free(m->acts);
    }
    memset(m, 0, sizeof *m);
}

double gpt2_train_flops(const GPT2Config *c, int B, int T) {
    double L = c->num_layers, C = c->channels, F = c->n_inner, V = c->vocab_size;
    double n_mm = L * (4.0 * C * C + 2.0 * C * F) + C * V; /* = 12 L C^2 + C V when F = 4C */
    return 6.0 * n_mm * B * T + 6.0 * B * L * C * (double)T * (T + 1);
}

/* ------------------------------------------------------------------ KV cache */

struct GPT2KVCache {
    GPT2 *m;
    int B, max_T, len;
    int *row_start;   /* [B] */
    int has_row_start;
    float *k, *v;     /* [L, B, max_T, C] */
    float *scratch;   /* x, ln, qkv, atty, fch, fch_gelu, proj for B x chunk slots, then lnf [B, C], logits [B, V] */
    int chunk_capacity;
    float *x, *ln, *qkv, *atty, *fch, *fch_gelu, *proj, *lnf, *logits;
};

int gpt2_kv_create(GPT2 *m, int B, int max_T, GPT2KVCache **out, char *err) {
    *out = NULL;
    if (B < 1 || max_T < 1 || max_T > m->config.max_seq_len)
        return pk_errf(err, "gpt2_kv_create: need B >= 1 and 1 <= max_T <= n_positions %d (got B=%d, max_T=%d)",
                       m->config.max_seq_len, B, max_T);
    GPT2KVCache *c = pk_calloc(1, sizeof *c, err);
    if (!c) return PK_FAIL;
    size_t n = (size_t)m->config.num_layers * B * max_T * m->config.channels;
    c->m = m;
    c->B = B;
    c->max_T = max_T;
    c->row_start = pk_calloc((size_t)B, sizeof(int), err);
    c->k = c->row_start ? pk_malloc(n * sizeof(float), err) : NULL;
    c->v = c->k ? pk_malloc(n * sizeof(float), err) : NULL;
    if (!c->v) {
        gpt2_kv_free(c);
        return PK_FAIL;
    }
    *out = c;
    return PK_OK;
}

void gpt2_kv_free(GPT2KVCache *c) {
    if (!c) return;
    free(c->row_start);
    free(c->k);
    free(c->v);
    free(c->scratch);
    free(c);
}

int gpt2_kv_len(const GPT2KVCache *c) { return c->len; }

static int kv_ensure_scratch(GPT2KVCache *c, int Tn, char *err) {
    if (Tn <= c->chunk_capacity) return PK_OK;
    const GPT2Config *cf = &c->m->config;
    size_t C = cf->channels, F = cf->n_inner, V = cf->vocab_size, BT = (size_t)c->B * Tn;
    size_t total = BT * (C * 5 + 3 * C + 2 * F) + c->B * C + c->B * V;
    free(c->scratch);
    c->chunk_capacity = 0;
    c->scratch = pk_malloc(total * sizeof(float), err);
    if (!c->scratch) return PK_FAIL;
    c->chunk_capacity = Tn;
    float *p = c->scratch;
    c->x = p, p += BT * C;
    c->ln = p, p += BT * C;
    c->qkv = p, p += BT * 3 * C;
    c->atty = p, p += BT * C;
    c->fch = p, p += BT * F;
    c->fch_gelu = p, p += BT * F;
    c->proj = p, p += BT * C;
    c->lnf = p, p += c->B * C;
    c->logits = p;
    return PK_OK;
}

/* Runs slots len .. len+Tn-1 of every row through the model, appending their keys
 * and values to the cache, and leaves the logits of the last slot in c->logits. */
static int kv_forward_chunk(GPT2KVCache *c, const int *tokens, const float *soft_prompt, int P, int Tn, char *err) {
    GPT2 *m = c->m;
    const GPT2Config *cf = &m->config;
    int L = cf->num_layers, C = cf->channels, NH = cf->num_heads, F = cf->n_inner, V = cf->vocab_size;
    int B = c->B, t0 = c->len, BT = B * Tn;
    if (kv_ensure_scratch(c, Tn, err)) return PK_FAIL;
    const int *rs = c->has_row_start ? c->row_start : NULL;
    encoder_forward(c->x, tokens, m->params[0], m->params[1], soft_prompt, P, rs, B, t0, Tn, C);
    for (int l = 0; l < L; l++) {
        layernorm_forward(c->ln, NULL, NULL, c->x, m->params[2] + (size_t)l * C, m->params[3] + (size_t)l * C, BT, C,
                          cf->layer_norm_eps);
        matmul_forward(c->qkv, c->ln, m->params[4] + (size_t)l * C * 3 * C, m->params[5] + (size_t)l * 3 * C, BT, C,
                       3 * C);
        float *kl = c->k + (size_t)l * B * c->max_T * C, *vl = c->v + (size_t)l * B * c->max_T * C;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Tn; j++) {
                const float *src = c->qkv + ((size_t)b * Tn + j) * 3 * C;
                size_t dst = ((size_t)b * c->max_T + t0 + j) * C;
                memcpy(kl + dst, src + C, (size_t)C * sizeof(float));
                memcpy(vl + dst, src + 2 * C, (size_t)C * sizeof(float));
            }
        attention_forward(c->atty, NULL, c->qkv, kl, vl, (long)Tn * 3 * C, 3 * C, (long)c->max_T * C, C, rs, B, t0,
                          Tn, C, NH);
        matmul_forward(c->proj, c->atty, m->params[6] + (size_t)l * C * C, m->params[7] + (size_t)l * C, BT, C, C);
        residual_forward(c->x, c->x, c->proj, (long)BT * C);
        layernorm_forward(c->ln, NULL, NULL, c->x, m->params[8] + (size_t)l * C, m->params[9] + (size_t)l * C, BT, C,
                          cf->layer_norm_eps);
        matmul_forward(c->fch, c->ln, m->params[10] + (size_t)l * C * F, m->params[11] + (size_t)l * F, BT, C, F);
        gelu_forward(c->fch_gelu, c->fch, (long)BT * F);
        matmul_forward(c->proj, c->fch_gelu, m->params[12] + (size_t)l * F * C, m->params[13] + (size_t)l * C, BT, F,
                       C);
        residual_forward(c->x, c->x, c->proj, (long)BT * C);
    }
    /* only the last slot of each row needs logits */
    for (int b = 0; b < B; b++)
        memcpy(c->ln + (size_t)b * C, c->x + ((size_t)b * Tn + Tn - 1) * C, (size_t)C * sizeof(float));
    layernorm_forward(c->lnf, NULL, NULL, c->ln, m->params[14], m->params[15], B, C, cf->layer_norm_eps);
    pk_sgemm(0, 1, B, V, C, 1.0f, c->lnf, C, lm_head_weight(m), C, 0.0f, c->logits, V);
    c->len += Tn;
    return PK_OK;
}

int gpt2_kv_prefill(GPT2KVCache *c, const int *tokens, const float *soft_prompt, int P, const int *row_start, int T,
                    const float **logits_out, char *err) {
    if (T > c->max_T)
        return pk_errf(err, "gpt2_kv_prefill: %d slots exceed the cache's %d", T, c->max_T);
    if (check_inputs(c->m, tokens, soft_prompt, P, row_start, c->B, 0, T, "gpt2_kv_prefill", err)) return PK_FAIL;
    c->len = 0;
    c->has_row_start = row_start != NULL;
    for (int b = 0; b < c->B; b++) c->row_start[b] = row_start ? row_start[b] : 0;
    if (kv_forward_chunk(c, tokens, soft_prompt, P, T, err)) {
        c->len = 0;
        return PK_FAIL;
    }
    *logits_out = c->logits;
    return PK_OK;
}

int gpt2_kv_step(GPT2KVCache *c, const int *next_tokens, const float **logits_out, char *err) {
    if (c->len < 1) return pk_errf(err, "gpt2_kv_step: the cache is empty (prefill first)");
    if (c->len >= c->max_T) return pk_errf(err, "gpt2_kv_step: the cache is full (%d slots)", c->max_T);
    if (check_inputs(c->m, next_tokens, NULL, 0, c->has_row_start ? c->row_start : NULL, c->B, c->len, 1,
                     "gpt2_kv_step", err))
        return PK_FAIL;
    if (kv_forward_chunk(c, next_tokens, NULL, 0, 1, err)) return PK_FAIL;
    *logits_out = c->logits;
    return PK_OK;
}

const float *gpt2_attention_probs(const GPT2 *m, int layer) {
    if (!m->acts || layer < 0 || layer >= m->config.num_layers) return NULL;
    size_t per_layer = (size_t)m->B * m->config.num_heads * m->T * m->T;
    return m->acts->a[A_ATT] + (size_t)layer * per_layer;
}
