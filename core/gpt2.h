/* GPT-2 in the manner of llm.c: one buffer per kind of tensor, sizes from one table.
 *
 * Parameter layout follows Hugging Face exactly (Conv1D weights stored [in, out]),
 * so checkpoints load and save without transposes. Parameter tensors, in the order
 * of the one table (L = num_layers, C = channels, F = n_inner, V = vocab, maxT = max_seq_len):
 *   0 wte [V, C]            1 wpe [maxT, C]
 *   2 ln_1.weight [L, C]    3 ln_1.bias [L, C]
 *   4 attn.c_attn.weight [L, C, 3C]   5 attn.c_attn.bias [L, 3C]
 *   6 attn.c_proj.weight [L, C, C]    7 attn.c_proj.bias [L, C]
 *   8 ln_2.weight [L, C]    9 ln_2.bias [L, C]
 *  10 mlp.c_fc.weight [L, C, F]      11 mlp.c_fc.bias [L, F]
 *  12 mlp.c_proj.weight [L, F, C]    13 mlp.c_proj.bias [L, C]
 *  14 ln_f.weight [C]     15 ln_f.bias [C]
 *  16 lm_head.weight [V, C]  (0 elements when tied to wte)
 *
 * Sequences: a batch is B rows of T slots. An optional soft prompt of P vectors
 * [P, C] replaces the token embeddings of slots row_start[b] .. row_start[b]+P-1
 * of each row (the token ids there are ignored). Slots before row_start[b] are
 * left padding: they are masked out of attention for that row and positions
 * count from row_start[b] (as Hugging Face's generate does from an attention mask).
 * row_start == NULL means no left padding. Training uses right padding only. */
#ifndef PK_GPT2_H
#define PK_GPT2_H

#include <stddef.h>

#define GPT2_NUM_PARAM_TENSORS 17

typedef struct {
    int max_seq_len; /* n_positions */
    int vocab_size;  /* padded vocab is not used: logits cover exactly vocab_size */
    int num_layers;
    int num_heads;
    int channels;    /* n_embd */
    int n_inner;     /* MLP width, 4 * channels unless the config says otherwise */
    float layer_norm_eps;
    int tied_lm_head; /* 1: logits = x . wte^T; 0: separate lm_head.weight */
    int eos_token_id; /* from config.json when present, else 50256 clipped to vocab-1 */
    /* Dropout probabilities of config.json (Hugging Face's default 0.1 when absent); used only
     * in train mode (gpt2_train_mode), where gpt2_set_dropout may override them. */
    float embd_pdrop, attn_pdrop, resid_pdrop;
} GPT2Config;

/* Reads and validates a Hugging Face GPT-2 config.json (core/safetensors.c). */
int gpt2_config_load(GPT2Config *cfg, const char *path, char *err);
/* Writes config.json in Hugging Face's form, atomically (core/safetensors.c). */
int gpt2_config_save(const GPT2Config *cfg, const char *path, char *err);
/* Checks sizes are sensible; the message names the field. */
int gpt2_config_validate(const GPT2Config *cfg, const char *where, char *err);

/* Static description of parameter tensor i for a config. */
typedef struct {
    const char *name;  /* HF name without the "transformer." prefix, per-layer ones as "h.%d.ln_1.weight" */
    int per_layer;     /* 1: the buffer holds L slices, one per layer */
    int ndim;          /* of one slice */
    size_t shape[2];   /* of one slice */
    size_t numel;      /* of the whole buffer (all layers) */
    int decay;         /* AdamW weight decay applies (matrices yes; biases, LayerNorm no) */
} GPT2ParamInfo;
void gpt2_param_info(const GPT2Config *cfg, int i, GPT2ParamInfo *out);

typedef struct GPT2Acts GPT2Acts; /* private: activations and their gradients */

typedef struct {
    GPT2Config config;
    size_t param_sizes[GPT2_NUM_PARAM_TENSORS];
    size_t num_parameters;
    float *params_memory;            /* one buffer, tensors back to back in table order */
    float *params[GPT2_NUM_PARAM_TENSORS];
    float *grads_memory;             /* NULL until the first full backward */
    float *grads[GPT2_NUM_PARAM_TENSORS];
    int grads_zero;                  /* grads_memory is known to hold zeros (see gpt2_zero_grad) */
    float *m_memory, *v_memory;      /* AdamW state, NULL until the first update */
    GPT2Acts *acts;                  /* sized for the largest B x T seen so far */
    int B, T, P;                     /* shape of the last forward */
    int training;                    /* 1: forwards apply dropout (gpt2_train_mode) */
    unsigned long long dropout_seed; /* masks of the next train-mode forward derive from this */
    long dropout_row_base;           /* global batch index of row 0 of the next train-mode forward */
    float drop_embd, drop_attn, drop_resid; /* probabilities in use in train mode */
    float *logits;                   /* [B, T, V] of the last forward (points into acts) */
} GPT2;

/* Allocates parameters (zeroed) for a validated config. */
int gpt2_build(GPT2 *m, const GPT2Config *cfg, char *err);
/* GPT-2 initialisation as Hugging Face does (normal 0.02, residual projections
 * 0.02/sqrt(2L), LayerNorm 1/0, biases 0), deterministic by seed. */
void gpt2_init_random(GPT2 *m, unsigned long long seed);
void gpt2_free(GPT2 *m);

/* Loads a Hugging Face GPT-2 folder: config.json + model.safetensors, or sharded
 * with model.safetensors.index.json (core/safetensors.c). */
int gpt2_load(GPT2 *m, const char *dir, char *err);
/* Writes config.json + model.safetensors (F32, metadata format=pt) atomically. */
int gpt2_save(const GPT2 *m, const char *dir, char *err);

/* Dropout as Hugging Face's GPT-2 applies it in train mode: on the input embeddings (token +
 * position, soft-prompt slots included), on the attention probabilities, and on the output of
 * every attention and MLP projection before its residual add; kept values are scaled by 1/(1-p).
 * gpt2_build sets the probabilities from the config; gpt2_set_dropout overrides them (0 turns
 * one off). */
void gpt2_set_dropout(GPT2 *m, float embd, float attn, float resid);
/* Train mode on (1) or off (0) for the following forwards. In train mode a forward draws its
 * masks as a pure function of (seed, site, element), so a forward is reproducible from its seed
 * alone (bitwise resume, any thread count); gpt2_backward applies the last forward's masks.
 * KV-cache decoding never applies dropout. */
void gpt2_train_mode(GPT2 *m, int on, unsigned long long seed);
/* The masks follow sequences: row b of the next train-mode forwards draws from the stream of
 * global row first_row + b (gpt2_train_mode resets it to 0). A data-parallel rank that holds
 * rows first_row.. of a batch so drops what one process holding the whole batch drops. */
void gpt2_dropout_rows(GPT2 *m, long first_row);

/* Forward over a batch. tokens [B, T] (ids < vocab), soft_prompt [P, C] or NULL
 * with P = 0, row_start [B] or NULL. Fills m->logits [B, T, V]. T <= max_seq_len.
 * Keeps what backward needs. */
int gpt2_forward(GPT2 *m, const int *tokens, const float *soft_prompt, int P, const int *row_start, int B, int T,
                 char *err);

/* Mean next-token cross-entropy of the last forward: targets [B, T] with -1 meaning
 * "no target here". Returns the loss and, if dlogits != NULL, writes d(loss)/d(logits)
 * [B, T, V] (overwritten, not accumulated). */
float gpt2_cross_entropy(GPT2 *m, const int *targets, float *dlogits);

/* Full backward from d(loss)/d(logits) [B, T, V] of the last forward:
 * accumulates (+=) every parameter gradient into grads_memory (allocated on first use)
 * and, when the forward had a soft prompt and dprompt != NULL, accumulates
 * d(loss)/d(prompt) [P, C] into dprompt. */
int gpt2_backward(GPT2 *m, const float *dlogits, float *dprompt, char *err);

/* Backward for a frozen model: only d(loss)/d(input embeddings). Skips every
 * weight-gradient GEMM and never touches grads_memory. Accumulates the gradient
 * of the soft-prompt slots into dprompt [P, C] and, if dembed != NULL, the
 * gradient of every slot's input embedding into dembed [B, T, C]. */
int gpt2_backward_inputs_only(GPT2 *m, const float *dlogits, float *dprompt, float *dembed, char *err);

/* Sets every parameter gradient to zero; nothing to do when they are known to be
 * zero already (after gpt2_adamw_step, which zeroes them as it reads them). */
void gpt2_zero_grad(GPT2 *m);

/* KV-cache incremental decoding. A cache is tied to one model and holds up to
 * B rows x max_T slots. prefill runs the prompt slots [B, T] (same conventions as
 * gpt2_forward) and returns the logits of the last slot of every row [B, V];
 * step appends one token per row and returns its logits [B, V]. Logits equal the
 * full forward's at the same positions. */
typedef struct GPT2KVCache GPT2KVCache;
int gpt2_kv_create(GPT2 *m, int B, int max_T, GPT2KVCache **out, char *err);
void gpt2_kv_free(GPT2KVCache *c);
int gpt2_kv_prefill(GPT2KVCache *c, const int *tokens, const float *soft_prompt, int P, const int *row_start, int T,
                    const float **logits_out, char *err);
int gpt2_kv_step(GPT2KVCache *c, const int *next_tokens, const float **logits_out, char *err);
int gpt2_kv_len(const GPT2KVCache *c); /* slots filled so far */

/* Attention probabilities of layer l from the last full forward: [B, NH, T, T]
 * (row q over keys k <= q; masked entries 0). Valid until the next forward. */
const float *gpt2_attention_probs(const GPT2 *m, int layer);

/* FLOPs of one training step (forward + backward) as DESIGN.md section 8 counts them. */
double gpt2_train_flops(const GPT2Config *cfg, int B, int T);

#endif
