/* The distillation methods over one DistillState (see distill.h and DESIGN.md section 3).
 *
 * Layout of a training step (B rows, right padding):
 *   ground-truth methods  data_batch_teacher_forcing: tokens/targets [B, T], targets -1 off the response
 *   sampled methods       sample_generate (KV cache) then sample_scoring_batch: the same layout
 *                         for S and T (P = 0) and, for T', [B, P + T] with P placeholder slots
 * The masked rows are the slots with a target; row r = b*T + t of S/T is row b*(P+T) + P + t of T'.
 * Every divergence is summed over those rows by div_rows and divided by their count.
 *
 * Accumulation: an optimizer step takes grad_accum micro-batches of batch_size rows (one Seqs
 * each). Gradients of all micro-batches add up before one clipping and one AdamW step, and every
 * loss is scaled by 1 / (response tokens of the whole accumulated batch), so the layout into
 * micro-batches does not change the update.
 *
 * Randomness: the data order is a shuffle drawn from s->rng, reshuffled from it at each epoch;
 * every optimizer step that samples draws one seed from s->rng, and row r of the accumulated
 * batch samples from sample_row_rng(seed, r); the GKD coin is one draw of s->rng per step.
 * Dropout masks derive from (run seed, step, micro-batch, pass) by mask_seed. A checkpoint saves
 * s->rng, the order and the cursor, which is all the hidden state there is.
 *
 * Train and eval mode, as the official code (gmkim-ai/PromptKD, train_promptkd.py, finetune())
 * sets them: sampling runs after model.eval(); the prompt update calls teacher_model.train()
 * before T''s forward, and get_distil_loss() calls .eval() on the model it takes targets from
 * (teacher_model itself for T through base_model, the student for S) inside torch.no_grad()
 * after that forward, so only T' runs with dropout; the student update calls model.train()
 * and teacher_model.eval(), so S runs with dropout and T' without. finetune.py trains the
 * baselines' student after model.train() with the teacher in eval mode. Here: T' in the prompt
 * update and S in every student update are train-mode forwards; everything else (targets,
 * sampling, evaluation, probes, exposure) runs without dropout. */
#include "distill.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"
#include "divergence.h"
#include "exposure.h"
#include "minillm.h"
#include "neighbours.h"
#include "optim.h"
#include "rouge.h"
#include "safetensors.h"
#include "sample.h"


enum { SPLIT_TRAIN, SPLIT_VALID, SPLIT_TEST, N_SPLITS };
static const char *const split_names[N_SPLITS] = {"train", "valid", "test"};

struct DistillState {
    RunConfig cfg;
    MethodId method;
    Tokenizer *tok;
    int eos;
    Dataset data[N_SPLITS];
    int has_data[N_SPLITS];
    TokExample *ex; /* tokenised training examples */
    int n_ex, n_dropped;
    int max_prompt_tokens; /* prompts longer than this were dropped: they leave no room in the models */
    GPT2 student, teacher;
    int has_teacher;
    /* the soft prompt [P, C] of the teacher (promptkd) and its AdamW state */
    int P, C;
    float *prompt, *prompt_init, *prompt_grad, *prompt_m, *prompt_v;
    PkRng rng;
    int *order; /* [n_ex] permutation, consumed from cursor */
    int cursor;
    int step;   /* optimizer steps done */
    /* data-parallel runs (core/dist.h): this process's rank of size ranks; each takes a contiguous
     * share of every micro-batch's rows, and step_positions is the masked positions of the whole
     * accumulated batch over all ranks (every loss divides by it) */
    int rank, size;
    int step_positions;
    MinillmPretrain *pretrain; /* minillm with lm_coef > 0: the packed pretraining text */
};

/* ------------------------------------------------------------------ small helpers */

static int split_index(const char *split) {
    for (int i = 0; i < N_SPLITS; i++)
        if (split && strcmp(split, split_names[i]) == 0) return i;
    return -1;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static void add_loss(DistillStepStats *st, const char *name, double v) {
    if (st->n_losses >= DISTILL_MAX_LOSSES) return;
    snprintf(st->loss_names[st->n_losses], sizeof st->loss_names[0], "%s", name);
    st->losses[st->n_losses++] = v;
}

static AdamWParams adamw_params(float lr, float weight_decay) {
    AdamWParams hp = {lr, 0.9f, 0.999f, 1e-8f, weight_decay};
    return hp;
}

/* The rate of a step with t steps done before it: optim's schedule (1-based), warm-up then constant. */
static float lr_at(const RunConfig *cfg, float base, int t) {
    return lr_schedule(t + 1, cfg->warmup_steps, base, cfg->steps, 0);
}

/* Forward-only work counted as a third of a training pass (no backward). */
static double forward_flops(const GPT2Config *c, int B, int T) { return gpt2_train_flops(c, B, T) / 3.0; }

/* ------------------------------------------------------------------ creation */

static int min_int(int a, int b) { return a < b ? a : b; }

/* The prompt: teacher wte rows of prompt_init_text's tokens, repeated cyclically or cut to P. */
static int init_prompt(DistillState *s, char *err) {
    const RunConfig *c = &s->cfg;
    if (c->prompt_len < 1) return pk_errf(err, "key 'prompt_len': expected at least 1 for promptkd, got %d", c->prompt_len);
    s->P = c->prompt_len;
    s->C = s->teacher.config.channels;
    size_t PC = (size_t)s->P * s->C;
    s->prompt = pk_calloc(PC, sizeof(float), err);
    s->prompt_init = s->prompt ? pk_calloc(PC, sizeof(float), err) : NULL;
    s->prompt_grad = s->prompt_init ? pk_calloc(PC, sizeof(float), err) : NULL;
    s->prompt_m = s->prompt_grad ? pk_calloc(PC, sizeof(float), err) : NULL;
    s->prompt_v = s->prompt_m ? pk_calloc(PC, sizeof(float), err) : NULL;
    if (!s->prompt_v) return PK_FAIL;
    char e2[PK_ERR_LEN];
    if (prompt_init_from_text(s->tok, s->teacher.params[0], s->teacher.config.vocab_size, s->C, c->prompt_init_text,
                              s->P, s->prompt, NULL, e2) != PK_OK)
        return pk_errf(err, "key 'prompt_init_text': %s", e2);
    memcpy(s->prompt_init, s->prompt, PC * sizeof(float));
    return PK_OK;
}

static int load_split(DistillState *s, int i, const char *path, char *err) {
    if (!path || !*path) return PK_OK;
    if (data_load(&s->data[i], path, 0, err) != PK_OK) return PK_FAIL;
    s->has_data[i] = 1;
    return PK_OK;
}

static int create_common(DistillState **out, const RunConfig *cfg, const GPT2Config *init_cfg, char *err) {
    *out = NULL;
    DistillState *s = pk_calloc(1, sizeof *s, err);
    if (!s) return PK_FAIL;
    s->cfg = *cfg;
    const RunConfig *c = &s->cfg;
    int method = method_find(c->method);
    if (method < 0) {
        char names[160];
        method_names_joined(names, sizeof names, ", ", " or ");
        pk_errf(err, "key 'method': expected %s, got '%s'", names, c->method);
        goto fail;
    }
    s->method = (MethodId)method;
    if (c->batch_size < 1) {
        pk_errf(err, "key 'batch_size': expected at least 1, got %d", c->batch_size);
        goto fail;
    }
    if (c->grad_accum < 1) {
        pk_errf(err, "key 'grad_accum': expected at least 1, got %d", c->grad_accum);
        goto fail;
    }
    s->rank = pk_dist_rank();
    s->size = pk_dist_size();
    if (s->size > 1 && c->batch_size < s->size) {
        pk_errf(err, "key 'batch_size': %d rows cannot be shared by the %d ranks of this job (each rank takes at "
                     "least one row of every micro-batch); set batch_size to %d or more, or start at most %d ranks",
                c->batch_size, s->size, s->size, c->batch_size);
        goto fail;
    }
    if (!(c->dropout == -1.0f || (c->dropout >= 0 && c->dropout < 1))) {
        pk_errf(err, "key 'dropout': expected -1 (the checkpoints' config.json) or a number in [0, 1), got %g",
                (double)c->dropout);
        goto fail;
    }
    if (tok_load(&s->tok, c->tokenizer, err) != PK_OK) goto fail;
    s->eos = tok_eos_id(s->tok);
    if (s->eos < 0) {
        pk_errf(err, "tokenizer %s: expected an <|endoftext|> token to end responses", c->tokenizer);
        goto fail;
    }
    /* models */
    if (init_cfg) {
        char where[64];
        snprintf(where, sizeof where, "--init");
        if (gpt2_config_validate(init_cfg, where, err) != PK_OK) goto fail;
        if (gpt2_build(&s->student, init_cfg, err) != PK_OK) goto fail;
        gpt2_init_random(&s->student, c->seed);
    } else {
        if (!*c->student) {
            pk_errf(err, "key 'student': expected a Hugging Face GPT-2 folder");
            goto fail;
        }
        if (gpt2_load(&s->student, c->student, err) != PK_OK) goto fail;
    }
    int V = s->student.config.vocab_size;
    if (tok_vocab_size(s->tok) > V) {
        pk_errf(err, "student %s: vocab_size %d is smaller than the tokenizer's %d tokens",
                init_cfg ? "--init" : c->student, V, tok_vocab_size(s->tok));
        goto fail;
    }
    int positions = s->student.config.max_seq_len;
    if (method_info(s->method)->has_teacher) {
        if (!*c->teacher) {
            pk_errf(err, "key 'teacher': expected a Hugging Face GPT-2 folder for method %s", c->method);
            goto fail;
        }
        if (gpt2_load(&s->teacher, c->teacher, err) != PK_OK) goto fail;
        s->has_teacher = 1;
        if (s->teacher.config.vocab_size != V) {
            pk_errf(err, "teacher %s: vocab_size %d differs from the student's %d; distillation needs one vocabulary",
                    c->teacher, s->teacher.config.vocab_size, V);
            goto fail;
        }
        if (method_info(s->method)->has_prompt && init_prompt(s, err) != PK_OK) goto fail;
        positions = min_int(positions, s->teacher.config.max_seq_len - s->P);
    }
    /* dropout >= 0 replaces the probabilities the checkpoints' config.json gave both models */
    if (c->dropout >= 0) {
        gpt2_set_dropout(&s->student, c->dropout, c->dropout, c->dropout);
        if (s->has_teacher) gpt2_set_dropout(&s->teacher, c->dropout, c->dropout, c->dropout);
    }
    if (s->method == METHOD_MINILLM && c->lm_coef > 0) {
        if (!*c->pretrain_data) {
            pk_errf(err, "key 'pretrain_data' is not set: minillm with lm_coef %g > 0 needs pretraining text "
                         "(JSONL, a \"text\" field per line); name a file or set lm_coef=0", (double)c->lm_coef);
            goto fail;
        }
        /* chunks as long as a prompt and its response (the official max_length), within the models' positions */
        long want = (long)c->max_prompt_len + c->max_new_tokens;
        int chunk = want < positions + 1 ? (int)want : positions + 1;
        if (minillm_pretrain_load(&s->pretrain, c->pretrain_data, s->tok, s->eos, chunk,
                                  c->seed ^ 0x7072657472616eULL, err) != PK_OK)
            goto fail;
    }
    /* a prompt must leave room for at least one response token in every model that reads it */
    s->max_prompt_tokens = positions;
    if (c->max_prompt_len > 0 && c->max_prompt_len < s->max_prompt_tokens) s->max_prompt_tokens = c->max_prompt_len;
    if (s->max_prompt_tokens < 1) {
        pk_errf(err, "key 'prompt_len': %d prompt vectors leave no positions in the teacher's n_positions %d", s->P,
                s->teacher.config.max_seq_len);
        goto fail;
    }
    /* data */
    if (load_split(s, SPLIT_TRAIN, c->train_data, err) != PK_OK) goto fail;
    if (!s->has_data[SPLIT_TRAIN]) {
        pk_errf(err, "key 'train_data': expected a dataset file");
        goto fail;
    }
    if (load_split(s, SPLIT_VALID, c->valid_data, err) != PK_OK) goto fail;
    if (load_split(s, SPLIT_TEST, c->test_data, err) != PK_OK) goto fail;
    if (data_tokenize(&s->data[SPLIT_TRAIN], s->tok, s->max_prompt_tokens, 0, &s->ex, &s->n_ex, &s->n_dropped, err) !=
        PK_OK)
        goto fail;
    s->order = pk_malloc((size_t)s->n_ex * sizeof(int), err);
    if (!s->order) goto fail;
    for (int i = 0; i < s->n_ex; i++) s->order[i] = i;
    pk_rng_seed(&s->rng, c->seed);
    pk_rng_shuffle_int(&s->rng, s->order, s->n_ex);
    *out = s;
    return PK_OK;
fail:
    distill_free(s);
    return PK_FAIL;
}

int distill_create(DistillState **out, const RunConfig *cfg, char *err) { return create_common(out, cfg, NULL, err); }

int distill_create_init(DistillState **out, const RunConfig *cfg, const GPT2Config *init_cfg, char *err) {
    return create_common(out, cfg, init_cfg, err);
}

void distill_free(DistillState *s) {
    if (!s) return;
    tok_free(s->tok);
    for (int i = 0; i < N_SPLITS; i++)
        if (s->has_data[i]) data_free(&s->data[i]);
    if (s->ex) data_free_tokenized(s->ex, s->n_ex);
    gpt2_free(&s->student);
    if (s->has_teacher) gpt2_free(&s->teacher);
    free(s->prompt);
    free(s->prompt_init);
    free(s->prompt_grad);
    free(s->prompt_m);
    free(s->prompt_v);
    free(s->order);
    minillm_pretrain_free(s->pretrain);
    free(s);
}

/* ------------------------------------------------------------------ accessors */

const RunConfig *distill_config(const DistillState *s) { return &s->cfg; }
int distill_step_index(const DistillState *s) { return s->step; }
int distill_steps_per_epoch(const DistillState *s) {
    int rows = s->cfg.batch_size * s->cfg.grad_accum;
    return (s->n_ex + rows - 1) / rows;
}
int distill_has_prompt(const DistillState *s) { return s->prompt != NULL; }
int distill_has_teacher(const DistillState *s) { return s->has_teacher; }
GPT2 *distill_teacher(DistillState *s) { return s->has_teacher ? &s->teacher : NULL; }
GPT2 *distill_student(DistillState *s) { return &s->student; }
const Tokenizer *distill_tokenizer(const DistillState *s) { return s->tok; }

const Dataset *distill_dataset(const DistillState *s, const char *split) {
    int i = split_index(split);
    return (i >= 0 && s->has_data[i]) ? &s->data[i] : NULL;
}

const float *distill_prompt(const DistillState *s, int *P, int *C) {
    if (P) *P = s->prompt ? s->P : 0;
    if (C) *C = s->prompt ? s->C : 0;
    return s->prompt;
}

const float *distill_prompt_init(const DistillState *s) { return s->prompt_init; }

int distill_apply_config(DistillState *s, const RunConfig *cfg, char *err) {
    const char *const *keys = config_keys();
    for (int i = 0; keys[i]; i++) {
        if (config_key_is_live(keys[i])) continue;
        char a[CONFIG_PATH_LEN + 64], b[CONFIG_PATH_LEN + 64];
        if (config_get(&s->cfg, keys[i], a, sizeof a, err) != PK_OK) return PK_FAIL;
        if (config_get(cfg, keys[i], b, sizeof b, err) != PK_OK) return PK_FAIL;
        if (strcmp(a, b) != 0)
            return pk_errf(err, "key '%s' is fixed for the run (it is '%s'); start a new run to change it", keys[i], a);
    }
    if (cfg->steps < 1) return pk_errf(err, "key 'steps': expected at least 1, got %d", cfg->steps);
    if (cfg->max_new_tokens < 1)
        return pk_errf(err, "key 'max_new_tokens': expected at least 1, got %d", cfg->max_new_tokens);
    s->cfg = *cfg;
    return PK_OK;
}

/* ------------------------------------------------------------------ batches */

/* Training examples for the next batch: order[cursor ...], reshuffled at each epoch's end. */
static void next_examples(DistillState *s, int *which, int B) {
    for (int b = 0; b < B; b++) {
        if (s->cursor >= s->n_ex) {
            pk_rng_shuffle_int(&s->rng, s->order, s->n_ex);
            s->cursor = 0;
        }
        which[b] = s->order[s->cursor++];
    }
}

/* A batch of sequences in the teacher-forcing layout, with the slots to score. */
typedef struct {
    int B, T;             /* S/T layout [B, T] */
    int P;                /* placeholder slots of the T' layout [B, P + T] (0: none) */
    int *tokens, *targets;  /* [B, T] */
    int *tokens_p;        /* [B, P + T] when P > 0 */
    size_t *rows, *rows_p; /* [n] masked rows in each layout */
    int n;                /* masked positions */
    long first_row;       /* index of row 0 in the accumulated batch (dropout masks follow it) */
    double gen_tokens;    /* tokens sampled to make this batch */
    double gen_flops;
} Seqs;

static void seqs_free(Seqs *q) {
    free(q->tokens);
    free(q->targets);
    free(q->tokens_p);
    free(q->rows);
    free(q->rows_p);
    memset(q, 0, sizeof *q);
}

/* Fills rows / rows_p / tokens_p from tokens and targets. */
static int seqs_finish(Seqs *q, int P, char *err) {
    q->P = P;
    size_t BT = (size_t)q->B * q->T;
    q->rows = pk_malloc(BT * sizeof(size_t), err);
    q->rows_p = q->rows ? pk_malloc(BT * sizeof(size_t), err) : NULL;
    if (!q->rows_p) return PK_FAIL;
    q->n = 0;
    for (int b = 0; b < q->B; b++)
        for (int t = 0; t < q->T; t++)
            if (q->targets[(size_t)b * q->T + t] >= 0) {
                q->rows[q->n] = (size_t)b * q->T + t;
                q->rows_p[q->n] = (size_t)b * (P + q->T) + P + t;
                q->n++;
            }
    if (q->n == 0) return pk_errf(err, "distill: a batch has no response position to train on");
    if (P > 0) {
        q->tokens_p = pk_malloc((size_t)q->B * (P + q->T) * sizeof(int), err);
        if (!q->tokens_p) return PK_FAIL;
        for (int b = 0; b < q->B; b++) {
            int *row = q->tokens_p + (size_t)b * (P + q->T);
            for (int i = 0; i < P; i++) row[i] = q->tokens[(size_t)b * q->T]; /* placeholders: replaced by the prompt */
            memcpy(row + P, q->tokens + (size_t)b * q->T, q->T * sizeof(int));
        }
    }
    return PK_OK;
}

/* Longest sequence (prompt + response - 1 slots) the models of this run can score. */
static int score_positions(const DistillState *s) {
    int m = s->student.config.max_seq_len;
    if (s->has_teacher) m = min_int(m, s->teacher.config.max_seq_len - s->P);
    return m;
}

/* Ground-truth batch of the given training examples. */
static int seqs_ground_truth(DistillState *s, const int *which, int B, int P, Seqs *q, char *err) {
    memset(q, 0, sizeof q[0]);
    int max_T = score_positions(s);
    q->B = B;
    q->tokens = pk_malloc((size_t)B * max_T * sizeof(int), err);
    q->targets = q->tokens ? pk_malloc((size_t)B * max_T * sizeof(int), err) : NULL;
    if (!q->targets) return PK_FAIL;
    if (data_batch_teacher_forcing(s->ex, which, B, max_T, s->eos, q->tokens, q->targets, NULL, &q->T, err) != PK_OK)
        return PK_FAIL;
    return seqs_finish(q, P, err);
}

/* Sampled batch: model m (with prompt [P_gen, C] when P_gen > 0) samples a response to each
 * prompt with the run's sampling settings (row b's RNG from (seed, row_index[b])); the
 * sequences are laid out for scoring with P placeholder slots for T'. Responses are cut so
 * every model of the run can score them. */
static int seqs_sampled_prompts(DistillState *s, GPT2 *m, const float *gen_prompt, int P_gen, const int *const *prompts,
                                const int *plens, const long *row_index, int B, int P, unsigned long long seed, Seqs *q,
                                char *err) {
    memset(q, 0, sizeof q[0]);
    const RunConfig *c = &s->cfg;
    SampleOptions o;
    sample_options_plain(&o, s->eos, c->max_new_tokens);
    o.temperature = c->temperature;
    o.top_k = c->top_k;
    o.top_p = c->top_p;
    if (sample_options_check(&o, m->config.vocab_size, err) != PK_OK) return PK_FAIL;
    int *out = pk_malloc((size_t)B * c->max_new_tokens * sizeof(int), err);
    int *olens = out ? pk_malloc((size_t)B * sizeof(int), err) : NULL;
    int rc = PK_FAIL;
    if (!olens) goto done;
    if (sample_generate(m, prompts, plens, B, gen_prompt, P_gen, &o, seed, row_index, out, olens, err) != PK_OK)
        goto done;
    int max_T = score_positions(s);
    int longest = 0;
    for (int b = 0; b < B; b++) {
        q->gen_tokens += olens[b];
        /* plens[b] + olens[b] - 1 slots must fit max_T (the prompt always does: see max_prompt_tokens) */
        if (plens[b] + olens[b] - 1 > max_T) olens[b] = max_T - plens[b] + 1;
        if (olens[b] < 1) {
            rc = pk_errf(err, "distill: a prompt of %d tokens leaves no room for a response in the models' positions",
                         plens[b]);
            goto done;
        }
        if (plens[b] + olens[b] > longest) longest = plens[b] + olens[b];
    }
    /* a response cut by a length limit gets EOS in its last slot, replacing the sampled token, as
     * the official code does (train_promptkd.py: response_ids[:, -1] = pad_token_id, pad = EOS for
     * GPT-2, and the response is kept up to its first EOS) */
    sample_end_with_eos(out, c->max_new_tokens, olens, B, s->eos);
    q->gen_flops = forward_flops(&m->config, B, longest + P_gen);
    q->B = B;
    q->tokens = pk_malloc((size_t)B * max_T * sizeof(int), err);
    q->targets = q->tokens ? pk_malloc((size_t)B * max_T * sizeof(int), err) : NULL;
    if (!q->targets) goto done;
    if (sample_scoring_batch(prompts, plens, out, c->max_new_tokens, olens, B, 0, max_T, s->eos, q->tokens, q->targets,
                             NULL, &q->T, err) != PK_OK)
        goto done;
    rc = seqs_finish(q, P, err);
done:
    free(out);
    free(olens);
    return rc;
}

/* Sampled micro-batch of training examples: row b samples from sample_row_rng(seed, first_row + b),
 * first_row being its index in the accumulated batch, so the samples do not depend on how the
 * step's rows are split into micro-batches. */
static int seqs_sampled(DistillState *s, GPT2 *m, const float *gen_prompt, int P_gen, const int *which, int B, int P,
                        unsigned long long seed, long first_row, Seqs *q, char *err) {
    const int **prompts = pk_malloc((size_t)B * sizeof(int *), err);
    int *plens = prompts ? pk_malloc((size_t)B * sizeof(int), err) : NULL;
    long *rows = plens ? pk_malloc((size_t)B * sizeof(long), err) : NULL;
    int rc = PK_FAIL;
    if (rows) {
        for (int b = 0; b < B; b++) {
            prompts[b] = s->ex[which[b]].prompt;
            plens[b] = s->ex[which[b]].prompt_len;
            rows[b] = first_row + b;
        }
        rc = seqs_sampled_prompts(s, m, gen_prompt, P_gen, prompts, plens, rows, B, P, seed, q, err);
    }
    free(prompts);
    free(plens);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------------ updates */

/* Which training forward a dropout mask belongs to. */
enum { PASS_PROMPT = 1, PASS_STUDENT = 2 };

/* Seed of the dropout masks of one train-mode forward: a function of (run seed, the optimizer step
 * being made, micro-batch, pass) only, so a resumed run draws the masks the uninterrupted one did. */
static unsigned long long mask_seed(const DistillState *s, int micro, int pass) {
    uint64_t h = pk_mix64(s->cfg.seed);
    h = pk_mix64(h ^ (uint64_t)(s->step + 1));
    h = pk_mix64(h ^ (uint64_t)micro);
    return pk_mix64(h ^ (uint64_t)pass);
}

/* The (1 - t/N) base_coef weight of KL(T'||T) for the step being made: t counts from 1, as the
 * official code's global_step does (train_promptkd.py: step, global_step = 1, 1), so the first
 * step weighs (1 - 1/N) and the last one 0. */
static double prompt_reg_coef(const DistillState *s) {
    double N = s->cfg.steps > 0 ? s->cfg.steps : 1;
    double decay = 1.0 - (s->step + 1) / N;
    return (decay > 0 ? decay : 0.0) * s->cfg.base_coef;
}

/* Response tokens of this rank's share of the accumulated batch (distill_step sums them over the
 * ranks into s->step_positions, which every loss divides by). */
static int total_positions(const Seqs *q, int G) {
    int n = 0;
    for (int g = 0; g < G; g++) n += q[g].n;
    return n;
}

/* Sums over the ranks (in one process, nothing), their time added to the step's communication. */
static int ranks_sum_f64(DistillStepStats *st, double *x, size_t n, char *err) {
    double c0 = pk_dist_comm_seconds();
    int rc = pk_dist_allreduce_f64(x, n, err);
    st->comm_seconds += pk_dist_comm_seconds() - c0;
    return rc;
}

static int ranks_sum_f32(DistillStepStats *st, float *x, size_t n, char *err) {
    double c0 = pk_dist_comm_seconds();
    int rc = pk_dist_allreduce_f32(x, n, err);
    st->comm_seconds += pk_dist_comm_seconds() - c0;
    return rc;
}

/* A data-parallel step: the student's gradient and the loss sum *sum, summed over the ranks, so
 * every rank clips and steps on the same numbers. */
static int reduce_student(DistillState *s, double *sum, DistillStepStats *st, char *err) {
    if (s->size == 1) return PK_OK;
    GPT2 *m = &s->student;
    /* no backward ran here yet (this rank's first loss was non-finite, so the sum will be too):
     * zeros take its part in the sum */
    float *g = m->grads_memory ? m->grads_memory : pk_calloc(m->num_parameters, sizeof(float), err);
    if (!g) return PK_FAIL;
    int rc = ranks_sum_f32(st, g, m->num_parameters, err) == PK_OK && ranks_sum_f64(st, sum, 1, err) == PK_OK;
    if (g != m->grads_memory) free(g);
    return rc ? PK_OK : PK_FAIL;
}

/* Clipping and AdamW of the student's accumulated gradient. *applied = 0 when the gradient
 * was non-finite (nothing changed). */
static int student_apply(DistillState *s, DistillStepStats *st, int *applied, char *err) {
    *applied = 0;
    GPT2 *m = &s->student;
    float norm = grad_clip_global_norm(m->grads_memory, m->num_parameters, s->cfg.clip_norm);
    st->grad_norm = norm;
    if (!isfinite(norm)) return PK_OK;
    float lr = lr_at(&s->cfg, s->cfg.lr, s->step);
    st->lr = lr;
    AdamWParams hp = adamw_params(lr, s->cfg.weight_decay);
    if (gpt2_adamw_step(m, &hp, s->step + 1, err) != PK_OK) return PK_FAIL;
    *applied = 1;
    return PK_OK;
}

/* Copies the masked rows of logits [.., V] (rows idx) into a packed [n, V] buffer, so the
 * model's logits buffer can be reused by its next forward. */
static float *pack_rows(const float *logits, const size_t *rows, int n, int V, char *err) {
    float *out = pk_malloc((size_t)n * V * sizeof(float), err);
    if (!out) return NULL;
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * V, logits + rows[i] * V, V * sizeof(float));
    return out;
}

static size_t *iota_rows(int n, char *err) {
    size_t *r = pk_malloc((size_t)(n > 0 ? n : 1) * sizeof(size_t), err);
    if (r)
        for (int i = 0; i < n; i++) r[i] = (size_t)i;
    return r;
}

/* sft / seqkd: cross-entropy on the targets of G micro-batches, the student in train mode. */
static int step_cross_entropy(DistillState *s, const Seqs *q, int G, DistillStepStats *st, int *applied,
                              char *err) {
    GPT2 *m = &s->student;
    int n_all = s->step_positions, rc = PK_OK;
    double sum = 0;
    gpt2_zero_grad(m);
    for (int g = 0; g < G && rc == PK_OK; g++) {
        const Seqs *mq = &q[g];
        gpt2_train_mode(m, 1, mask_seed(s, g, PASS_STUDENT));
        gpt2_dropout_rows(m, mq->first_row);
        rc = gpt2_forward(m, mq->tokens, NULL, 0, NULL, mq->B, mq->T, err);
        float *dl = rc == PK_OK ? pk_malloc((size_t)mq->B * mq->T * m->config.vocab_size * sizeof(float), err) : NULL;
        if (rc == PK_OK && !dl) rc = PK_FAIL;
        if (rc == PK_OK) {
            /* the micro-batch's mean, reweighted to a share of the whole batch's mean */
            float loss = gpt2_cross_entropy(m, mq->targets, dl);
            sum += (double)loss * mq->n;
            float share = (float)mq->n / (float)n_all;
            if (share != 1.0f)
                for (size_t i = 0, nl = (size_t)mq->B * mq->T * m->config.vocab_size; i < nl; i++) dl[i] *= share;
            if (isfinite(loss)) rc = gpt2_backward(m, dl, NULL, err);
        }
        gpt2_train_mode(m, 0, 0);
        free(dl);
        st->tokens += (double)mq->B * mq->T;
        st->flops += gpt2_train_flops(&m->config, mq->B, mq->T);
    }
    if (rc != PK_OK || reduce_student(s, &sum, st, err) != PK_OK) return PK_FAIL;
    double loss = sum / n_all;
    add_loss(st, "student_loss", loss);
    if (isfinite(loss)) rc = student_apply(s, st, applied, err);
    return rc;
}

/* kd / rkl / gkd / distillm: per micro-batch the teacher forward (no grad, eval), the student's
 * train-mode forward, the divergence and its backward; then one update. */
static int step_divergence(DistillState *s, const Seqs *q, int G, DivKind kind, float param, DistillStepStats *st,
                           int *applied, char *err) {
    GPT2 *t = &s->teacher, *m = &s->student;
    int V = m->config.vocab_size, n_all = s->step_positions, rc = PK_OK;
    double sum = 0;
    gpt2_zero_grad(m);
    for (int g = 0; g < G && rc == PK_OK; g++) {
        const Seqs *mq = &q[g];
        float *dl = NULL;
        rc = gpt2_forward(t, mq->tokens, NULL, 0, NULL, mq->B, mq->T, err);
        gpt2_train_mode(m, 1, mask_seed(s, g, PASS_STUDENT));
        gpt2_dropout_rows(m, mq->first_row);
        if (rc == PK_OK) rc = gpt2_forward(m, mq->tokens, NULL, 0, NULL, mq->B, mq->T, err);
        if (rc == PK_OK && !(dl = pk_calloc((size_t)mq->B * mq->T * V, sizeof(float), err))) rc = PK_FAIL;
        if (rc == PK_OK) {
            double part = div_rows(kind, param, t->logits, mq->rows, m->logits, mq->rows, mq->n, V, 1.0f / n_all, NULL, dl);
            sum += part;
            if (isfinite(part)) rc = gpt2_backward(m, dl, NULL, err);
        }
        gpt2_train_mode(m, 0, 0);
        free(dl);
        st->tokens += 2.0 * mq->B * mq->T;
        st->flops += forward_flops(&t->config, mq->B, mq->T) + gpt2_train_flops(&m->config, mq->B, mq->T);
    }
    if (rc != PK_OK || reduce_student(s, &sum, st, err) != PK_OK) return PK_FAIL;
    double loss = sum / n_all;
    add_loss(st, "student_loss", loss);
    if (isfinite(loss)) rc = student_apply(s, st, applied, err);
    return rc;
}

/* PromptKD's prompt loss on one micro-batch q at the current prompt:
 *   L = coef * KL(T' || T) + KL(T' || S), each token's terms divided by n_norm.
 * Needs t_packed = T's masked logits [q->n, V] and s_logits = S's logits [B, T, V]. Runs the
 * T' forward (in whatever mode the caller set); with dprompt != NULL, also the input-only
 * backward into dprompt (+=). Returns the sums over q's tokens: *kl_tp_t of KL(T'||T) (without
 * coef) and *kl_tp_s of KL(T'||S). */
static int prompt_loss(DistillState *s, const Seqs *q, const float *t_packed, const float *s_logits, double coef,
                       int n_norm, float *dprompt, double *kl_tp_t, double *kl_tp_s, char *err) {
    GPT2 *t = &s->teacher;
    int V = t->config.vocab_size, Tp = s->P + q->T;
    if (gpt2_forward(t, q->tokens_p, s->prompt, s->P, NULL, q->B, Tp, err) != PK_OK) return PK_FAIL;
    size_t *packed = iota_rows(q->n, err);
    if (!packed) return PK_FAIL;
    float *dl = NULL;
    if (dprompt) {
        dl = pk_calloc((size_t)q->B * Tp * V, sizeof(float), err);
        if (!dl) {
            free(packed);
            return PK_FAIL;
        }
    }
    float inv = 1.0f / n_norm;
    /* p side = T' (its rows shifted by P), q side = T or S */
    *kl_tp_t = div_rows(DIV_FKL, 0, t->logits, q->rows_p, t_packed, packed, q->n, V, (float)(coef * inv), dl, NULL);
    *kl_tp_s = div_rows(DIV_FKL, 0, t->logits, q->rows_p, s_logits, q->rows, q->n, V, inv, dl, NULL);
    free(packed);
    int rc = PK_OK;
    if (dprompt) rc = gpt2_backward_inputs_only(t, dl, dprompt, NULL, err);
    free(dl);
    return rc;
}

/* One PromptKD optimizer step over G sampled micro-batches, in the official order: the prompt
 * update accumulated over all micro-batches (T and S give targets in eval mode, T' runs in train
 * mode), then the student update accumulated over all micro-batches against T' with the updated
 * prompt (T' in eval mode, S in train mode). */
static int step_promptkd(DistillState *s, const Seqs *q, int G, DistillStepStats *st, int *applied, char *err) {
    GPT2 *t = &s->teacher, *m = &s->student;
    int V = t->config.vocab_size, n_all = s->step_positions;
    size_t PC = (size_t)s->P * s->C;
    int rc = PK_FAIL;
    float *t_packed = NULL, *dl = NULL, *saved = NULL;
    double coef = prompt_reg_coef(s);
    /* (2) prompt update */
    memset(s->prompt_grad, 0, PC * sizeof(float));
    double kl_tp_t = 0, kl_tp_s = 0;
    for (int g = 0; g < G; g++) {
        const Seqs *mq = &q[g];
        double a = 0, b = 0;
        if (gpt2_forward(t, mq->tokens, NULL, 0, NULL, mq->B, mq->T, err) != PK_OK) goto done;
        if (!(t_packed = pack_rows(t->logits, mq->rows, mq->n, V, err))) goto done;
        if (gpt2_forward(m, mq->tokens, NULL, 0, NULL, mq->B, mq->T, err) != PK_OK) goto done;
        gpt2_train_mode(t, 1, mask_seed(s, g, PASS_PROMPT));
        gpt2_dropout_rows(t, mq->first_row);
        int prc = prompt_loss(s, mq, t_packed, m->logits, coef, n_all, s->prompt_grad, &a, &b, err);
        gpt2_train_mode(t, 0, 0);
        if (prc != PK_OK) goto done;
        free(t_packed);
        t_packed = NULL;
        kl_tp_t += a;
        kl_tp_s += b;
        st->tokens += 2.0 * mq->B * mq->T + (double)mq->B * (s->P + mq->T);
        st->flops += forward_flops(&t->config, mq->B, mq->T) + forward_flops(&m->config, mq->B, mq->T) +
                     gpt2_train_flops(&t->config, mq->B, s->P + mq->T) * (2.0 / 3.0); /* no weight-gradient GEMMs */
    }
    if (s->size > 1) { /* the prompt's gradient and both sums over the ranks */
        double sums[2] = {kl_tp_t, kl_tp_s};
        if (ranks_sum_f32(st, s->prompt_grad, PC, err) != PK_OK || ranks_sum_f64(st, sums, 2, err) != PK_OK) goto done;
        kl_tp_t = sums[0], kl_tp_s = sums[1];
    }
    double reg = coef * kl_tp_t / n_all, guide = kl_tp_s / n_all;
    add_loss(st, "student_loss", NAN); /* filled below */
    add_loss(st, "prompt_loss", reg + guide);
    add_loss(st, "prompt_reg_loss", reg);
    add_loss(st, "prompt_guide_loss", guide);
    add_loss(st, "kl_tprime_t", kl_tp_t / n_all);
    if (!isfinite(reg + guide)) {
        rc = PK_OK;
        goto done;
    }
    float pnorm = grad_clip_global_norm(s->prompt_grad, PC, s->cfg.clip_norm);
    st->prompt_grad_norm = pnorm;
    if (!isfinite(pnorm) || !all_finite(s->prompt_grad, PC)) {
        rc = PK_OK;
        goto done;
    }
    /* keep the prompt and its moments so a non-finite student step can undo the prompt step */
    if (!(saved = pk_malloc(3 * PC * sizeof(float), err))) goto done;
    memcpy(saved, s->prompt, PC * sizeof(float));
    memcpy(saved + PC, s->prompt_m, PC * sizeof(float));
    memcpy(saved + 2 * PC, s->prompt_v, PC * sizeof(float));
    float plr = lr_at(&s->cfg, s->cfg.prompt_lr, s->step);
    st->prompt_lr = plr;
    AdamWParams hp = adamw_params(plr, s->cfg.weight_decay);
    adamw_step(s->prompt, s->prompt_grad, s->prompt_m, s->prompt_v, PC, &hp, s->step + 1, 1);

    /* (3) student update: KL(S || T') on the same samples, with T' from the UPDATED prompt (a
     * fresh forward after the prompt step; T' takes no gradient). */
    gpt2_zero_grad(m);
    double sum = 0;
    for (int g = 0; g < G; g++) {
        const Seqs *mq = &q[g];
        if (gpt2_forward(t, mq->tokens_p, s->prompt, s->P, NULL, mq->B, s->P + mq->T, err) != PK_OK) goto done;
        gpt2_train_mode(m, 1, mask_seed(s, g, PASS_STUDENT));
        gpt2_dropout_rows(m, mq->first_row);
        int frc = gpt2_forward(m, mq->tokens, NULL, 0, NULL, mq->B, mq->T, err);
        if (frc == PK_OK && !(dl = pk_calloc((size_t)mq->B * mq->T * V, sizeof(float), err))) frc = PK_FAIL;
        if (frc == PK_OK) {
            double part = div_rows(DIV_RKL, 0, t->logits, mq->rows_p, m->logits, mq->rows, mq->n, V, 1.0f / n_all, NULL, dl);
            sum += part;
            if (isfinite(part)) frc = gpt2_backward(m, dl, NULL, err);
        }
        gpt2_train_mode(m, 0, 0);
        free(dl);
        dl = NULL;
        if (frc != PK_OK) goto done;
        st->tokens += (double)mq->B * (s->P + mq->T) + (double)mq->B * mq->T;
        st->flops += forward_flops(&t->config, mq->B, s->P + mq->T) + gpt2_train_flops(&m->config, mq->B, mq->T);
    }
    if (reduce_student(s, &sum, st, err) != PK_OK) goto done;
    st->losses[0] = sum / n_all;
    if (isfinite(st->losses[0]) && student_apply(s, st, applied, err) != PK_OK) goto done;
    if (!*applied) {
        memcpy(s->prompt, saved, PC * sizeof(float));
        memcpy(s->prompt_m, saved + PC, PC * sizeof(float));
        memcpy(s->prompt_v, saved + 2 * PC, PC * sizeof(float));
    }
    rc = PK_OK;
done:
    free(t_packed);
    free(dl);
    free(saved);
    return rc;
}

/* The G micro-batches of one optimizer step, rows which [G * B]. Sampled methods draw one seed
 * for the whole step; *sampled = 1 when the rows are samples (gkd's coin), 0 ground truth. */
static int build_seqs(DistillState *s, const int *which, int G, int B, Seqs *q, int *sampled_out, char *err) {
    const RunConfig *c = &s->cfg;
    unsigned long long seed = 0;
    int sampled = 0;
    GPT2 *sampler = &s->student;
    int P = method_info(s->method)->has_prompt ? s->P : 0;
    switch (s->method) {
    case METHOD_SFT:
    case METHOD_KD: sampled = 0; break;
    case METHOD_SEQKD: sampled = 1, sampler = &s->teacher; break;
    case METHOD_GKD:
        /* one coin per step from the run's RNG: student samples or ground truth */
        sampled = pk_rng_double(&s->rng) < (double)c->gkd_student_frac;
        break;
    case METHOD_RKL:
    case METHOD_DISTILLM:
    case METHOD_PROMPTKD: sampled = 1; break; /* (1) on-policy student samples, no grad */
    case METHOD_MINILLM: return PK_OK;        /* step_minillm samples its own batch */
    }
    if (sampled) seed = pk_rng_u64(&s->rng); /* one draw per optimizer step */
    /* this rank's contiguous share [lo, hi) of each micro-batch's rows (all of them in one process);
     * a row samples from its index in the whole accumulated batch, whichever rank holds it */
    long lo, hi;
    pk_dist_share(B, s->rank, s->size, &lo, &hi);
    int nb = (int)(hi - lo);
    for (int g = 0; g < G; g++) {
        const int *rows = which + (size_t)g * B + lo;
        int rc = sampled ? seqs_sampled(s, sampler, NULL, 0, rows, nb, P, seed, (long)g * B + lo, &q[g], err)
                         : seqs_ground_truth(s, rows, nb, P, &q[g], err);
        if (rc != PK_OK) return PK_FAIL;
        q[g].first_row = (long)g * B + lo;
    }
    *sampled_out = sampled;
    return PK_OK;
}

/* MiniLLM (core/minillm.h). One step = one sampling round and its inner updates: the B prompts
 * get responses from the teacher-mixed distribution, whose importance weights, rewards and
 * advantages are fixed at sampling time (sampler.py run_sample); then minillm_ppo_epochs AdamW
 * updates on those samples (trainer.py: ppo_epochs passes over the rollout store, here a store of
 * this one batch), each on pg_loss + reg_loss + lm_coef * pt_loss with a fresh pretraining batch
 * (trainer.py takes the next lm batch at every update). Update k of step t is AdamW step
 * t * minillm_ppo_epochs + k + 1. A non-finite update restores the weights and moments of the
 * step's start, so nothing changes. The whole step is one batch (no micro-batches): q gets it.
 * Randomness: the responses from one seed drawn from s->rng; the pretraining chunks from the
 * update count (MinillmPretrain).
 * Data-parallel: each rank samples, scores and back-propagates its contiguous share [lo, hi) of
 * the B rows (row b samples from its index b, whichever rank holds it) and of the B pretraining
 * chunks; what the official code takes over the whole batch is taken over the ranks: the token
 * count every mean divides by, the advantages' whitening (two summed passes), the reported
 * reward, and before each update the losses and then the student's gradient, so every rank
 * clips, decides finiteness and steps on the same numbers. */
static int step_minillm(DistillState *s, const int *which, int B, Seqs *q, DistillStepStats *st, int *applied,
                        char *err) {
    const RunConfig *c = &s->cfg;
    GPT2 *t = &s->teacher, *m = &s->student;
    int V = m->config.vocab_size, R = c->max_new_tokens, K = c->minillm_ppo_epochs, rc = PK_FAIL;
    if (c->lm_coef > 0 && !s->pretrain) return pk_errf(err, "minillm: lm_coef > 0 but no pretraining text loaded");
    int use_pt = c->lm_coef > 0, pt_L = use_pt ? s->pretrain->chunk_len - 1 : 0, n = 0;
    size_t np = m->num_parameters;
    int had_moments = m->m_memory != NULL;
    long lo, hi;
    pk_dist_share(B, s->rank, s->size, &lo, &hi);
    int nb = (int)(hi - lo); /* this rank's rows */
    const int **prompts = pk_malloc((size_t)nb * sizeof(int *), err);
    int *plens = prompts ? pk_malloc((size_t)nb * sizeof(int), err) : NULL;
    int *out = plens ? pk_malloc((size_t)nb * R * sizeof(int), err) : NULL;
    int *olens = out ? pk_malloc((size_t)nb * sizeof(int), err) : NULL;
    long *row_index = olens ? pk_malloc((size_t)nb * sizeof(long), err) : NULL;
    int *ys = NULL, *pt_tok = NULL, *pt_tgt = NULL;
    float *t_packed = NULL, *per_tok = NULL, *grid = NULL, *dl = NULL, *dl_pt = NULL, *saved = NULL;
    size_t *packed = NULL;
    memset(q, 0, sizeof *q);
    if (!row_index) goto done;
    /* (1) teacher-mixed samples, no grad */
    for (int b = 0; b < nb; b++) {
        prompts[b] = s->ex[which[lo + b]].prompt;
        plens[b] = s->ex[which[lo + b]].prompt_len;
        row_index[b] = lo + b;
    }
    unsigned long long seed = pk_rng_u64(&s->rng); /* one draw per sampled batch */
    if (minillm_sample_mixed(m, t, prompts, plens, nb, c->minillm_teacher_mix, R, s->eos, seed, row_index, out,
                             olens, err) != PK_OK)
        goto done;
    int max_T = score_positions(s), longest = 0;
    for (int b = 0; b < nb; b++) {
        q->gen_tokens += olens[b];
        if (plens[b] + olens[b] - 1 > max_T) olens[b] = max_T - plens[b] + 1;
        if (olens[b] < 1) {
            pk_errf(err, "minillm: a prompt of %d tokens leaves no room for a response in the models' positions",
                    plens[b]);
            goto done;
        }
        if (plens[b] + olens[b] > longest) longest = plens[b] + olens[b];
    }
    q->gen_flops = forward_flops(&m->config, nb, longest) + forward_flops(&t->config, nb, longest);
    q->B = nb;
    q->first_row = lo;
    if (!(q->tokens = pk_malloc((size_t)nb * max_T * sizeof(int), err))) goto done;
    if (!(q->targets = pk_malloc((size_t)nb * max_T * sizeof(int), err))) goto done;
    if (sample_scoring_batch(prompts, plens, out, R, olens, nb, 0, max_T, s->eos, q->tokens, q->targets, NULL, &q->T,
                             err) != PK_OK)
        goto done;
    if (seqs_finish(q, 0, err) != PK_OK) goto done;
    n = q->n; /* row b's olens[b] response tokens, rows in order */
    /* the whole batch's response tokens, which every per-token mean divides by */
    double all_n = n;
    if (ranks_sum_f64(st, &all_n, 1, err) != PK_OK) goto done;
    long gn = (long)all_n;
    s->step_positions = (int)gn;
    /* per-token arrays [n]: teacher and old student log-probs, weights, rewards, advantages, and the
     * current log-probs and their gradient; grid [2, nb, R] for the rewards and advantages */
    if (!(per_tok = pk_malloc((size_t)n * 7 * sizeof(float), err))) goto done;
    float *t_logp = per_tok, *old_logp = per_tok + n, *w = per_tok + 2 * (size_t)n, *rew = per_tok + 3 * (size_t)n;
    float *adv = per_tok + 4 * (size_t)n, *logp = per_tok + 5 * (size_t)n, *dlogp = per_tok + 6 * (size_t)n;
    if (!(grid = pk_calloc((size_t)nb * R * 2, sizeof(float), err))) goto done;
    if (!(ys = pk_malloc((size_t)n * sizeof(int), err)) || !(packed = iota_rows(n, err))) goto done;
    for (int i = 0; i < n; i++) ys[i] = q->targets[q->rows[i]];
    if (gpt2_forward(t, q->tokens, NULL, 0, NULL, nb, q->T, err) != PK_OK) goto done;
    if (!(t_packed = pack_rows(t->logits, q->rows, n, V, err))) goto done;
    if (gpt2_forward(m, q->tokens, NULL, 0, NULL, nb, q->T, err) != PK_OK) goto done;
    for (int i = 0; i < n; i++) {
        t_logp[i] = (float)minillm_token_logprob(t_packed + (size_t)i * V, V, ys[i]);
        old_logp[i] = (float)minillm_token_logprob(m->logits + q->rows[i] * V, V, ys[i]);
    }
    minillm_weights_rewards(n, t_logp, old_logp, c->minillm_teacher_mix, c->minillm_reward_scaling,
                            c->minillm_reward_clip, w, rew);
    /* rewards onto the [nb, R] response grid, advantages back off it; the reported reward is the
     * official statistic: sum_t gamma^t r_t / response length, averaged over the B rows */
    double reward = 0;
    for (int b = 0, i = 0; b < nb; b++) {
        double disc = 0, g = 1;
        for (int j = 0; j < olens[b]; j++, i++) {
            grid[(size_t)b * R + j] = rew[i];
            disc += g * rew[i];
            g *= c->minillm_gamma;
        }
        reward += disc / olens[b] / B;
    }
    /* advantages whitened over the whole [B, R] grid: its sum, then its squared deviations,
     * each summed over the ranks */
    size_t cells = (size_t)nb * R, all_cells = (size_t)B * R;
    float *adv_grid = grid + cells;
    if (all_cells < 2) {
        pk_errf(err, "minillm: whitening needs at least 2 advantages, got %zu", all_cells);
        goto done;
    }
    if (minillm_advantages(grid, olens, nb, R, c->minillm_gamma, 0, adv_grid, err) != PK_OK) goto done;
    double moments[2] = {minillm_sum(adv_grid, cells), reward};
    if (ranks_sum_f64(st, moments, 2, err) != PK_OK) goto done;
    double mean = moments[0] / (double)all_cells, squared_deviations = minillm_squared_deviations(adv_grid, cells, mean);
    reward = moments[1];
    if (ranks_sum_f64(st, &squared_deviations, 1, err) != PK_OK) goto done;
    minillm_whiten(adv_grid, cells, mean, squared_deviations, all_cells);
    for (int b = 0, i = 0; b < nb; b++)
        for (int j = 0; j < olens[b]; j++, i++) adv[i] = adv_grid[(size_t)b * R + j];
    st->tokens += 2.0 * nb * q->T;
    st->flops += forward_flops(&t->config, nb, q->T) + forward_flops(&m->config, nb, q->T);

    /* (2) the inner updates */
    if (K > 1) { /* the step's start, to undo the earlier updates if a later one is non-finite */
        if (!(saved = pk_malloc(np * (had_moments ? 3 : 1) * sizeof(float), err))) goto done;
        memcpy(saved, m->params_memory, np * sizeof(float));
        if (had_moments) {
            memcpy(saved + np, m->m_memory, np * sizeof(float));
            memcpy(saved + 2 * np, m->v_memory, np * sizeof(float));
        }
    }
    if (!(dl = pk_malloc((size_t)nb * q->T * V * sizeof(float), err))) goto done;
    if (use_pt && (!(pt_tok = pk_malloc((size_t)B * pt_L * sizeof(int), err)) ||
                   !(pt_tgt = pk_malloc((size_t)B * pt_L * sizeof(int), err)) ||
                   !(dl_pt = pk_malloc((size_t)nb * pt_L * V * sizeof(float), err))))
        goto done;
    float kd = c->minillm_kd_ratio, lr = lr_at(c, c->lr, s->step);
    /* this rank's pretraining rows as a share of the batch's: its mean cross-entropy counts that much */
    float pt_share = (float)nb / (float)B;
    int pt_rows = nb * pt_L, all_pt_rows = B * pt_L;
    double sum_total = 0, sum_pg = 0, sum_reg = 0, sum_pt = 0;
    int finite = all_finite(t_logp, (size_t)n * 5); /* log-probs, weights, rewards, advantages */
    double flag = finite ? 0.0 : NAN; /* every rank stops if one has a non-finite sample */
    if (ranks_sum_f64(st, &flag, 1, err) != PK_OK) goto done;
    finite = isfinite(flag);
    for (int k = 0; k < K && finite; k++) {
        gpt2_zero_grad(m);
        /* the first update reads the sampling-time forward, still in m->logits */
        if (k > 0 && gpt2_forward(m, q->tokens, NULL, 0, NULL, nb, q->T, err) != PK_OK) goto done;
        memset(dl, 0, (size_t)nb * q->T * V * sizeof(float));
        for (int i = 0; i < n; i++) logp[i] = (float)minillm_token_logprob(m->logits + q->rows[i] * V, V, ys[i]);
        /* losses: this rank's share of each batch mean; [pg, reg, ce, soft ce] summed over the ranks */
        double part[4] = {minillm_pg_loss(n, logp, old_logp, w, adv, c->minillm_clip_range, gn, dlogp), 0, 0, 0};
        for (int i = 0; i < n; i++)
            minillm_logprob_backward(m->logits + q->rows[i] * V, V, ys[i], dlogp[i], dl + q->rows[i] * V);
        /* the single-step part: the exact reverse KL of every response position */
        part[1] = div_rows(DIV_RKL, 0, t_packed, packed, m->logits, q->rows, n, V, 1.0f / gn, NULL, dl) / gn;
        int here = isfinite(part[0] + part[1]); /* this rank's part; the sums below decide for all */
        if (here && gpt2_backward(m, dl, NULL, err) != PK_OK) goto done;
        st->tokens += (double)nb * q->T;
        st->flops += gpt2_train_flops(&m->config, nb, q->T) - (k == 0 ? forward_flops(&m->config, nb, q->T) : 0);
        if (here && use_pt) {
            /* the update's B chunks; this rank takes rows [lo, hi) of them */
            if (minillm_pretrain_batch(s->pretrain, (long)s->step * K + k, B, pt_tok, pt_tgt, err) != PK_OK) goto done;
            const int *my_tok = pt_tok + (size_t)lo * pt_L, *my_tgt = pt_tgt + (size_t)lo * pt_L;
            if (kd > 0 && gpt2_forward(t, my_tok, NULL, 0, NULL, nb, pt_L, err) != PK_OK) goto done;
            if (gpt2_forward(m, my_tok, NULL, 0, NULL, nb, pt_L, err) != PK_OK) goto done;
            double ce = gpt2_cross_entropy(m, my_tgt, dl_pt); /* mean over this rank's rows, gradient overwritten */
            float ce_scale = c->lm_coef * (1.0f - kd) * pt_share;
            for (size_t i = 0; i < (size_t)pt_rows * V; i++) dl_pt[i] *= ce_scale;
            part[2] = ce * pt_share;
            part[3] = kd > 0 ? minillm_soft_cross_entropy(t->logits, m->logits, pt_rows, V,
                                                          c->lm_coef * kd / all_pt_rows, dl_pt) / all_pt_rows
                             : 0.0;
            here = isfinite(part[2] + part[3]);
            if (here && gpt2_backward(m, dl_pt, NULL, err) != PK_OK) goto done;
            st->tokens += (double)pt_rows * (kd > 0 ? 2 : 1);
            st->flops += gpt2_train_flops(&m->config, nb, pt_L) + (kd > 0 ? forward_flops(&t->config, nb, pt_L) : 0);
        }
        if (!here) part[0] = NAN; /* a part not computed here still makes the sum non-finite */
        if (ranks_sum_f64(st, part, 4, err) != PK_OK) goto done;
        double pg = part[0], reg = part[1], pt = use_pt ? (1.0 - kd) * part[2] + kd * part[3] : 0.0;
        double total = pg + reg + (use_pt ? c->lm_coef * pt : 0.0);
        finite = isfinite(total);
        /* every rank ran its backward: the batch's gradient is their sum */
        if (finite && ranks_sum_f32(st, m->grads_memory, np, err) != PK_OK) goto done;
        float norm = finite ? grad_clip_global_norm(m->grads_memory, np, c->clip_norm) : NAN;
        if (k == 0) st->grad_norm = norm;
        finite = finite && isfinite(norm);
        if (!finite) break;
        AdamWParams hp = adamw_params(lr, c->weight_decay);
        if (gpt2_adamw_step(m, &hp, s->step * K + k + 1, err) != PK_OK) goto done;
        sum_total += total;
        sum_pg += pg;
        sum_reg += reg;
        sum_pt += pt;
    }
    add_loss(st, "student_loss", finite ? sum_total / K : NAN);
    add_loss(st, "pg_loss", sum_pg / K);
    add_loss(st, "reg_loss", sum_reg / K);
    add_loss(st, "pt_loss", sum_pt / K);
    add_loss(st, "reward", reward);
    st->lr = lr;
    if (finite) {
        *applied = 1;
    } else if (saved) {
        memcpy(m->params_memory, saved, np * sizeof(float));
        if (had_moments) {
            memcpy(m->m_memory, saved + np, np * sizeof(float));
            memcpy(m->v_memory, saved + 2 * np, np * sizeof(float));
        } else { /* the moments did not exist before this step: back to none */
            free(m->m_memory);
            free(m->v_memory);
            m->m_memory = m->v_memory = NULL;
        }
    }
    rc = PK_OK;
done:
    free(prompts);
    free(plens);
    free(out);
    free(olens);
    free(row_index);
    free(ys);
    free(pt_tok);
    free(pt_tgt);
    free(t_packed);
    free(per_tok);
    free(grid);
    free(dl);
    free(dl_pt);
    free(saved);
    free(packed);
    return rc;
}

int distill_step(DistillState *s, DistillStepStats *st, char *err) {
    memset(st, 0, sizeof *st);
    double t0 = pk_now();
    const RunConfig *c = &s->cfg;
    int B = c->batch_size, G = c->grad_accum;
    int *which = pk_malloc((size_t)G * B * sizeof(int), err);
    Seqs *q = which ? pk_calloc((size_t)G, sizeof(Seqs), err) : NULL;
    if (!q) {
        free(which);
        return PK_FAIL;
    }
    next_examples(s, which, G * B);
    int applied = 0, rc = PK_FAIL, sampled = 0;
    int built = build_seqs(s, which, G, B, q, &sampled, err) == PK_OK;
    s->step_positions = total_positions(q, G);
    if (built && s->size > 1 && s->method != METHOD_MINILLM) { /* every loss divides by the whole batch's positions */
        double n = s->step_positions;
        if (ranks_sum_f64(st, &n, 1, err) != PK_OK) built = 0;
        s->step_positions = (int)n;
    }
    if (built) {
        switch (s->method) {
        case METHOD_SFT:
        case METHOD_SEQKD: rc = step_cross_entropy(s, q, G, st, &applied, err); break;
        case METHOD_KD: rc = step_divergence(s, q, G, DIV_FKL, 0, st, &applied, err); break;
        case METHOD_RKL: rc = step_divergence(s, q, G, DIV_RKL, 0, st, &applied, err); break;
        case METHOD_GKD:
            rc = step_divergence(s, q, G, DIV_JSD, c->gkd_beta, st, &applied, err);
            add_loss(st, "on_policy", sampled);
            break;
        case METHOD_DISTILLM:
            /* DistiLLM's skew KL, kept simple: skew FKL KL(T || a T + (1 - a) S) on student samples
             * (no adaptive mixing with ground truth) */
            rc = step_divergence(s, q, G, DIV_SKEW_FKL, c->skew_alpha, st, &applied, err);
            break;
        case METHOD_PROMPTKD: rc = step_promptkd(s, q, G, st, &applied, err); break;
        case METHOD_MINILLM: rc = step_minillm(s, which, G * B, q, st, &applied, err); break; /* one batch of G * B */
        }
    }
    if (rc == PK_OK) {
        for (int g = 0; g < G; g++) {
            st->tokens += q[g].gen_tokens;
            st->flops += q[g].gen_flops;
        }
        st->response_tokens = s->step_positions;
        if (s->size > 1) { /* what every rank processed, summed */
            double sums[2] = {st->tokens, st->flops};
            if (ranks_sum_f64(st, sums, 2, err) != PK_OK) rc = PK_FAIL;
            st->tokens = sums[0], st->flops = sums[1];
        }
        if (applied) {
            s->step++;
        } else {
            st->nonfinite = 1;
        }
        st->step = s->step;
        if (st->lr == 0) st->lr = lr_at(c, c->lr, s->step);
    }
    for (int g = 0; g < G; g++) seqs_free(&q[g]);
    free(q);
    free(which);
    st->seconds = pk_now() - t0;
    return rc;
}

/* ------------------------------------------------------------------ generation and evaluation */

static int pick_model(DistillState *s, int which, GPT2 **m, const float **prompt, int *P, char *err) {
    *m = &s->student;
    *prompt = NULL;
    *P = 0;
    switch (which) {
    case DISTILL_STUDENT: *m = &s->student; return PK_OK;
    case DISTILL_TEACHER:
        if (!s->has_teacher) return pk_errf(err, "method %s has no teacher", s->cfg.method);
        *m = &s->teacher;
        return PK_OK;
    case DISTILL_PROMPTED_TEACHER:
        if (!s->prompt) return pk_errf(err, "method %s has no soft prompt, so no prompted teacher T'", s->cfg.method);
        *m = &s->teacher;
        *prompt = s->prompt;
        *P = s->P;
        return PK_OK;
    }
    return pk_errf(err, "distill: model %d is not one of T' (0), T (1), S (2)", which);
}

/* Generated ids [n] -> text: cut at EOS, decoded, cut before any incomplete UTF-8 character,
 * stripped of surrounding whitespace. */
static int ids_to_text(const DistillState *s, const int *ids, int n, char **out, char *err) {
    int len = 0;
    while (len < n && ids[len] != s->eos) len++;
    char *text = NULL;
    size_t tl = 0;
    if (tok_decode(s->tok, ids, len, &text, &tl, err) != PK_OK) return PK_FAIL;
    long bad = pk_utf8_invalid_at(text, tl);
    if (bad >= 0) tl = (size_t)bad;
    size_t a = 0;
    while (a < tl && (text[a] == ' ' || text[a] == '\n' || text[a] == '\t' || text[a] == '\r')) a++;
    while (tl > a && (text[tl - 1] == ' ' || text[tl - 1] == '\n' || text[tl - 1] == '\t' || text[tl - 1] == '\r')) tl--;
    memmove(text, text + a, tl - a);
    text[tl - a] = '\0';
    *out = text;
    return PK_OK;
}

/* Encodes a prompt text cut to what the model can read: max_prompt_len tokens and at least one
 * free position after P prompt slots. */
static int encode_prompt(const DistillState *s, const GPT2 *m, int P, const char *text, int **ids, int *n, char *err) {
    if (tok_encode(s->tok, text, strlen(text), 0, ids, n, err) != PK_OK) return PK_FAIL;
    int cap = m->config.max_seq_len - P - 1;
    if (s->cfg.max_prompt_len > 0 && s->cfg.max_prompt_len < cap) cap = s->cfg.max_prompt_len;
    if (cap < 1) {
        free(*ids);
        return pk_errf(err, "distill: the model's n_positions %d leaves no room for a prompt", m->config.max_seq_len);
    }
    if (*n > cap) *n = cap;
    if (*n == 0 && P == 0) {
        free(*ids);
        return pk_errf(err, "distill: the prompt text has no tokens");
    }
    return PK_OK;
}

/* Evaluation decoding of n prompt texts with model `which`; texts[i] gets a malloc'ed answer.
 * Row i's randomness depends on (seed, first_index + i) only. */
static int generate_texts(DistillState *s, int which, const char *const *prompt_texts, int n, long first_index,
                          int max_new_tokens, unsigned long long seed, char **texts, char *err) {
    GPT2 *m;
    const float *prompt;
    int P;
    if (pick_model(s, which, &m, &prompt, &P, err) != PK_OK) return PK_FAIL;
    if (max_new_tokens < 1) return pk_errf(err, "distill: max_new_tokens must be at least 1, got %d", max_new_tokens);
    SampleOptions o;
    sample_options_eval(&o, s->eos);
    o.max_new_tokens = max_new_tokens;
    enum { GEN_BATCH = 16 };
    int *ids[GEN_BATCH], lens[GEN_BATCH], olens[GEN_BATCH];
    long rows[GEN_BATCH];
    int *out = pk_malloc((size_t)GEN_BATCH * max_new_tokens * sizeof(int), err);
    if (!out) return PK_FAIL;
    int rc = PK_OK;
    for (int i0 = 0; i0 < n && rc == PK_OK; i0 += GEN_BATCH) {
        int B = n - i0 < GEN_BATCH ? n - i0 : GEN_BATCH, got = 0;
        for (; got < B; got++) {
            if (encode_prompt(s, m, P, prompt_texts[i0 + got], &ids[got], &lens[got], err) != PK_OK) break;
            rows[got] = first_index + i0 + got;
        }
        if (got < B) rc = PK_FAIL;
        if (rc == PK_OK)
            rc = sample_generate(m, (const int *const *)ids, lens, B, prompt, P, &o, seed, rows, out, olens, err);
        for (int b = 0; b < B && rc == PK_OK; b++) {
            if (ids_to_text(s, out + (size_t)b * max_new_tokens, olens[b], &texts[i0 + b], err) != PK_OK) rc = PK_FAIL;
        }
        for (int b = 0; b < got; b++) free(ids[b]);
        if (rc != PK_OK)
            for (int b = 0; b < i0 + B; b++) {
                free(texts[b]);
                texts[b] = NULL;
            }
    }
    free(out);
    return rc;
}

int distill_generate(DistillState *s, int which, const char *prompt_text, int max_new_tokens, unsigned long long seed,
                     char **out, char *err) {
    *out = NULL;
    return generate_texts(s, which, &prompt_text, 1, 0, max_new_tokens, seed, out, err);
}

/* generate_texts over the ranks of a data-parallel run: each rank decodes a contiguous share of
 * the n prompts (rows keep their index, so their randomness is one process's), and rank 0
 * gathers every text in record order into texts (the other ranks' texts stay NULL). Every rank
 * fails when one does. */
static int generate_shared(DistillState *s, int which, const char *const *prompt_texts, int n, int max_new_tokens,
                           unsigned long long seed, char **texts, char *err) {
    long a, b;
    pk_dist_share(n, s->rank, s->size, &a, &b);
    char local_err[PK_ERR_LEN] = "";
    int failed = b > a && generate_texts(s, which, prompt_texts + a, (int)(b - a), a, max_new_tokens, seed, texts + a,
                                         local_err) != PK_OK;
    int any = failed;
    if (pk_dist_allreduce_max_int(&any, 1, err) != PK_OK) return PK_FAIL;
    if (any) {
        for (long i = a; i < b && !failed; i++) free(texts[i]), texts[i] = NULL;
        if (failed) return pk_errf(err, "%s", local_err);
        return pk_errf(err, "distill: another rank failed generating its share of the records");
    }
    /* this rank's texts, each with its terminating NUL, back to back */
    PkBuf mine = {0};
    int rc = PK_OK;
    for (long i = a; i < b && rc == PK_OK; i++)
        if (pk_buf_append(&mine, texts[i], strlen(texts[i]) + 1) != PK_OK) rc = pk_errf(err, "distill: out of memory");
    for (long i = a; i < b; i++) free(texts[i]), texts[i] = NULL;
    void *all = NULL;
    if (rc == PK_OK) rc = pk_dist_gather_bytes(mine.data, mine.len, &all, NULL, err);
    pk_buf_free(&mine);
    if (rc == PK_OK && s->rank == 0) {
        const char *p = all;
        for (int i = 0; i < n && rc == PK_OK; i++) {
            size_t len = strlen(p);
            if (!(texts[i] = pk_malloc(len + 1, err))) rc = PK_FAIL;
            else memcpy(texts[i], p, len + 1);
            p += len + 1;
        }
    }
    free(all);
    return rc;
}

static const Dataset *need_split(const DistillState *s, const char *split, char *err) {
    int i = split_index(split);
    if (i < 0) {
        pk_errf(err, "distill: split '%s': expected train, valid or test", split ? split : "(null)");
        return NULL;
    }
    if (!s->has_data[i]) {
        pk_errf(err, "distill: no %s data in this run (key '%s_data' is empty)", split_names[i], split_names[i]);
        return NULL;
    }
    return &s->data[i];
}

int distill_eval_rouge(DistillState *s, int which, const char *split, int n_records, int max_new_tokens,
                       unsigned long long seed, double *rouge, char **preds, int *n_scored, char *err) {
    const Dataset *d = need_split(s, split, err);
    if (!d) return PK_FAIL;
    int n = (n_records > 0 && n_records < d->n) ? n_records : d->n;
    const char **prompts = pk_malloc((size_t)n * sizeof(char *), err);
    char **texts = prompts ? pk_calloc((size_t)n, sizeof(char *), err) : NULL;
    if (!texts) {
        free(prompts);
        return PK_FAIL;
    }
    for (int i = 0; i < n; i++) prompts[i] = d->recs[i].prompt;
    int rc = s->size > 1 ? generate_shared(s, which, prompts, n, max_new_tokens, seed, texts, err)
                         : generate_texts(s, which, prompts, n, 0, max_new_tokens, seed, texts, err);
    if (rc == PK_OK && s->size > 1 && s->rank != 0) { /* rank 0 scored the texts it gathered */
        double v = 0;
        rc = pk_dist_bcast(&v, sizeof v, 0, err);
        *rouge = v;
        if (n_scored) *n_scored = n;
    } else if (rc == PK_OK) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += rouge_l_max_x100(texts[i], (const char *const *)d->recs[i].refs, d->recs[i].n_refs);
        *rouge = sum / n;
        if (n_scored) *n_scored = n;
        if (s->size > 1) rc = pk_dist_bcast(rouge, sizeof *rouge, 0, err);
    }
    for (int i = 0; i < n; i++) {
        if (rc == PK_OK && preds)
            preds[i] = texts[i];
        else
            free(texts[i]);
    }
    free(texts);
    free(prompts);
    return rc;
}

int distill_eval_loss(DistillState *s, const char *split, int n_records, double *loss, char *err) {
    const Dataset *d = need_split(s, split, err);
    if (!d) return PK_FAIL;
    GPT2 *m = &s->student;
    TokExample *ex = NULL;
    int n_ex = 0, dropped = 0;
    int max_T = m->config.max_seq_len;
    int max_prompt = s->cfg.max_prompt_len > 0 && s->cfg.max_prompt_len < max_T ? s->cfg.max_prompt_len : max_T;
    if (data_tokenize(d, s->tok, max_prompt, 0, &ex, &n_ex, &dropped, err) != PK_OK) return PK_FAIL;
    int n_all = n_ex;
    if (n_records > 0 && n_records < n_ex) n_ex = n_records;
    int B = s->cfg.batch_size;
    int *tokens = pk_malloc((size_t)B * max_T * sizeof(int), err);
    int *targets = tokens ? pk_malloc((size_t)B * max_T * sizeof(int), err) : NULL;
    int *which = targets ? pk_malloc((size_t)B * sizeof(int), err) : NULL;
    int rc = which ? PK_OK : PK_FAIL;
    double sum = 0, count = 0;
    for (int i0 = 0; i0 < n_ex && rc == PK_OK; i0 += B) {
        int nb = n_ex - i0 < B ? n_ex - i0 : B, T = 0;
        for (int b = 0; b < nb; b++) which[b] = i0 + b;
        if (data_batch_teacher_forcing(ex, which, nb, max_T, s->eos, tokens, targets, NULL, &T, err) != PK_OK ||
            gpt2_forward(m, tokens, NULL, 0, NULL, nb, T, err) != PK_OK) {
            rc = PK_FAIL;
            break;
        }
        int cnt = 0;
        for (int i = 0; i < nb * T; i++) cnt += targets[i] >= 0;
        sum += (double)gpt2_cross_entropy(m, targets, NULL) * cnt;
        count += cnt;
    }
    if (rc == PK_OK) *loss = count > 0 ? sum / count : 0.0;
    free(tokens);
    free(targets);
    free(which);
    data_free_tokenized(ex, n_all);
    return rc;
}

int distill_prompt_neighbours(DistillState *s, int k, int *ids, float *sims, float *drift, char *err) {
    if (!s->prompt) return pk_errf(err, "method %s has no soft prompt", s->cfg.method);
    int V = s->teacher.config.vocab_size;
    if (k < 1 || k > V) return pk_errf(err, "neighbours: k must be between 1 and %d, got %d", V, k);
    if (ids || sims) {
        int *tmp_ids = ids ? ids : pk_malloc((size_t)s->P * k * sizeof(int), err);
        if (!tmp_ids) return PK_FAIL;
        int rc = prompt_neighbours(s->prompt, s->P, s->teacher.params[0], V, s->C, k, tmp_ids, sims, err);
        if (!ids) free(tmp_ids);
        if (rc != PK_OK) return PK_FAIL;
    }
    if (drift)
        for (int i = 0; i < s->P; i++) {
            double d2 = 0;
            for (int c = 0; c < s->C; c++) {
                double d = (double)s->prompt[(size_t)i * s->C + c] - s->prompt_init[(size_t)i * s->C + c];
                d2 += d * d;
            }
            drift[i] = (float)sqrt(d2);
        }
    return PK_OK;
}

int distill_exposure(DistillState *s, int which, const char *split, int n_prompts, int n_samples, int max_len,
                     unsigned long long seed, double *exaccerr, char *err) {
    if (!s->has_teacher) return pk_errf(err, "method %s has no teacher to serve as the oracle", s->cfg.method);
    if (which != DISTILL_TEACHER && which != DISTILL_PROMPTED_TEACHER)
        return pk_errf(err, "exposure: the oracle must be T or T', got model %d", which);
    if (which == DISTILL_PROMPTED_TEACHER && !s->prompt)
        return pk_errf(err, "method %s has no soft prompt, so no prompted teacher T'", s->cfg.method);
    if (n_prompts < 1 || n_samples < 1 || max_len < 1)
        return pk_errf(err, "exposure: prompts, samples and length must be at least 1, got %d, %d, %d", n_prompts,
                       n_samples, max_len);
    const Dataset *d = need_split(s, split, err);
    if (!d) return PK_FAIL;
    if (n_prompts > d->n) n_prompts = d->n;
    int P = which == DISTILL_PROMPTED_TEACHER ? s->P : 0;
    /* every prompt is cut so that P + prompt + L fits both models */
    int room = min_int(s->student.config.max_seq_len, s->teacher.config.max_seq_len - P) - max_len;
    if (s->cfg.max_prompt_len > 0 && s->cfg.max_prompt_len < room) room = s->cfg.max_prompt_len;
    if (room < 1) return pk_errf(err, "exposure: length %d leaves no room for a prompt in the models' positions", max_len);
    int **ids = pk_calloc((size_t)n_prompts, sizeof(int *), err);
    int *lens = ids ? pk_calloc((size_t)n_prompts, sizeof(int), err) : NULL;
    double *R = lens ? pk_malloc((size_t)max_len * sizeof(double), err) : NULL;
    double *leps = R ? pk_malloc((size_t)max_len * sizeof(double), err) : NULL;
    char what[48];
    snprintf(what, sizeof what, "exposure: %s", split);
    int rc = leps ? data_encode_prompts(d, s->tok, n_prompts, room, what, ids, lens, err) : PK_FAIL;
    if (rc == PK_OK)
        rc = exposure_measure(&s->teacher, P ? s->prompt : NULL, P, &s->student, (const int *const *)ids, lens,
                              n_prompts, n_samples, max_len, seed, R, leps, exaccerr, err);
    data_free_rows(ids, n_prompts);
    free(lens);
    free(R);
    free(leps);
    return rc;
}

/* ------------------------------------------------------------------ checkpoints */

#define STATE_FORMAT 1

static int write_state(DistillState *s, const char *path, char *err) {
    int64_t header[6] = {STATE_FORMAT, (int64_t)s->method, s->step, s->cursor, s->n_ex, s->P};
    int64_t rng[4];
    for (int i = 0; i < 4; i++) rng[i] = (int64_t)s->rng.s[i];
    int64_t *order = pk_malloc((size_t)s->n_ex * sizeof(int64_t), err);
    if (!order) return PK_FAIL;
    for (int i = 0; i < s->n_ex; i++) order[i] = s->order[i];
    StWriteEntry e[8];
    int n = 0;
    e[n++] = (StWriteEntry){"header", ST_I64, 1, {6}, header};
    e[n++] = (StWriteEntry){"rng", ST_I64, 1, {4}, rng};
    e[n++] = (StWriteEntry){"order", ST_I64, 1, {s->n_ex}, order};
    if (s->student.m_memory) {
        e[n++] = (StWriteEntry){"student_m", ST_F32, 1, {(int64_t)s->student.num_parameters}, s->student.m_memory};
        e[n++] = (StWriteEntry){"student_v", ST_F32, 1, {(int64_t)s->student.num_parameters}, s->student.v_memory};
    }
    if (s->prompt) {
        e[n++] = (StWriteEntry){"prompt_m", ST_F32, 2, {s->P, s->C}, s->prompt_m};
        e[n++] = (StWriteEntry){"prompt_v", ST_F32, 2, {s->P, s->C}, s->prompt_v};
        e[n++] = (StWriteEntry){"prompt_init", ST_F32, 2, {s->P, s->C}, s->prompt_init};
    }
    const char *meta[] = {"format", "promptkd-state", "method", method_info(s->method)->name, NULL};
    int rc = st_write(path, e, n, meta, err);
    free(order);
    return rc;
}

static int fill_checkpoint(void *ctx, const char *tmp, char *err) {
    DistillState *s = ctx;
    char path[4400];
    if (gpt2_save(&s->student, tmp, err) != PK_OK) return PK_FAIL;
    if (s->prompt) {
        snprintf(path, sizeof path, "%s/prompt.safetensors", tmp);
        if (prompt_save(path, s->prompt, s->P, s->C, err) != PK_OK) return PK_FAIL;
    }
    snprintf(path, sizeof path, "%s/state.safetensors", tmp);
    return write_state(s, path, err);
}

/* The folder is written whole (temp folder, then swapped in); an existing folder is replaced only
 * when it is a promptkd model folder (pk_model_folder_check): nothing else is ever deleted. */
int distill_save_checkpoint(DistillState *s, const char *dir, char *err) {
    return pk_model_folder_write(dir, fill_checkpoint, s, err);
}

static int read_f32(const StFile *f, const char *name, float *out, size_t numel, const char *path, char *err) {
    const StTensor *t = st_find(f, name);
    if (!t) return pk_errf(err, "%s: tensor '%s' is missing", path, name);
    if (t->numel != numel)
        return pk_errf(err, "%s: tensor '%s' has %zu values, expected %zu for this run", path, name, t->numel, numel);
    return st_read_f32_finite(f, t, out, err);
}

/* AdamW's second moments are squares: a negative one would make its update NaN. */
static int check_nonnegative(const float *v, size_t n, const char *name, const char *path, char *err) {
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0)
            return pk_errf(err, "%s: tensor \"%s\" holds %g at element %zu; expected AdamW second moments >= 0", path,
                           name, (double)v[i], i);
    return PK_OK;
}

int distill_load_checkpoint(DistillState *s, const char *dir, char *err) {
    char path[4096];
    StFile f;
    memset(&f, 0, sizeof f);
    GPT2 tmp;
    memset(&tmp, 0, sizeof tmp);
    float *prompt = NULL;
    int64_t *order = NULL;
    float *m = NULL, *v = NULL;
    int rc = PK_FAIL;
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    if (st_open(&f, path, err) != PK_OK) return PK_FAIL;
    const StTensor *th = st_find(&f, "header"), *tr = st_find(&f, "rng"), *to = st_find(&f, "order");
    if (!th || th->numel != 6 || !tr || tr->numel != 4 || !to) {
        pk_errf(err, "%s: expected tensors header [6], rng [4] and order of a promptkd state file", path);
        goto done;
    }
    int64_t header[6], rng[4];
    st_read_i64(&f, th, header);
    st_read_i64(&f, tr, rng);
    if (header[0] != STATE_FORMAT) {
        pk_errf(err, "%s: state format %lld, expected %d", path, (long long)header[0], STATE_FORMAT);
        goto done;
    }
    if (header[1] != (int64_t)s->method) {
        pk_errf(err, "%s: saved by method %s, but this run's method is %s", path,
                header[1] >= 0 && header[1] < N_METHODS ? method_info((MethodId)header[1])->name : "?",
                method_info(s->method)->name);
        goto done;
    }
    if (header[4] != s->n_ex || (int64_t)to->numel != s->n_ex || header[5] != s->P) {
        pk_errf(err, "%s: saved for %lld training examples and %lld prompt vectors, this run has %d and %d", path,
                (long long)header[4], (long long)header[5], s->n_ex, s->P);
        goto done;
    }
    if (header[2] < 0 || header[3] < 0 || header[3] > s->n_ex) {
        pk_errf(err, "%s: step %lld or data cursor %lld out of range", path, (long long)header[2], (long long)header[3]);
        goto done;
    }
    if (!(order = pk_malloc((size_t)s->n_ex * sizeof(int64_t), err))) goto done;
    st_read_i64(&f, to, order);
    for (int i = 0; i < s->n_ex; i++)
        if (order[i] < 0 || order[i] >= s->n_ex) {
            pk_errf(err, "%s: data order entry %d is %lld, outside 0..%d", path, i, (long long)order[i], s->n_ex - 1);
            goto done;
        }
    /* the student's weights */
    if (gpt2_load(&tmp, dir, err) != PK_OK) goto done;
    const GPT2Config *a = &tmp.config, *b = &s->student.config;
    if (a->num_layers != b->num_layers || a->channels != b->channels || a->num_heads != b->num_heads ||
        a->vocab_size != b->vocab_size || a->max_seq_len != b->max_seq_len || a->n_inner != b->n_inner ||
        a->tied_lm_head != b->tied_lm_head) {
        pk_errf(err, "%s: the checkpoint's student (L=%d C=%d H=%d V=%d) differs from the run's (L=%d C=%d H=%d V=%d)",
                dir, a->num_layers, a->channels, a->num_heads, a->vocab_size, b->num_layers, b->channels, b->num_heads,
                b->vocab_size);
        goto done;
    }
    size_t np = s->student.num_parameters;
    if (st_find(&f, "student_m")) {
        if (!(m = pk_malloc(np * sizeof(float), err)) || !(v = pk_malloc(np * sizeof(float), err))) goto done;
        if (read_f32(&f, "student_m", m, np, path, err) != PK_OK) goto done;
        if (read_f32(&f, "student_v", v, np, path, err) != PK_OK) goto done;
        if (check_nonnegative(v, np, "student_v", path, err) != PK_OK) goto done;
    } else if (header[2] > 0) {
        pk_errf(err, "%s: step %lld but no student optimizer state (student_m)", path, (long long)header[2]);
        goto done;
    }
    size_t PC = (size_t)s->P * s->C;
    if (s->prompt) {
        int P = 0, C = 0;
        snprintf(path, sizeof path, "%s/prompt.safetensors", dir);
        if (prompt_load(path, s->C, &prompt, &P, &C, err) != PK_OK) goto done;
        if (P != s->P) {
            pk_errf(err, "%s: %d prompt vectors, this run has %d", path, P, s->P);
            goto done;
        }
        snprintf(path, sizeof path, "%s/state.safetensors", dir);
        /* read into the scratch gradient first so a failure changes nothing */
        float *pm = pk_malloc(3 * PC * sizeof(float), err);
        if (!pm) goto done;
        if (read_f32(&f, "prompt_m", pm, PC, path, err) != PK_OK || read_f32(&f, "prompt_v", pm + PC, PC, path, err) ||
            read_f32(&f, "prompt_init", pm + 2 * PC, PC, path, err) ||
            check_nonnegative(pm + PC, PC, "prompt_v", path, err)) {
            free(pm);
            goto done;
        }
        memcpy(s->prompt, prompt, PC * sizeof(float));
        memcpy(s->prompt_m, pm, PC * sizeof(float));
        memcpy(s->prompt_v, pm + PC, PC * sizeof(float));
        memcpy(s->prompt_init, pm + 2 * PC, PC * sizeof(float));
        free(pm);
    }
    /* everything validated: commit */
    memcpy(s->student.params_memory, tmp.params_memory, np * sizeof(float));
    free(s->student.m_memory);
    free(s->student.v_memory);
    s->student.m_memory = m;
    s->student.v_memory = v;
    m = v = NULL;
    for (int i = 0; i < s->n_ex; i++) s->order[i] = (int)order[i];
    for (int i = 0; i < 4; i++) s->rng.s[i] = (uint64_t)rng[i];
    s->step = (int)header[2];
    s->cursor = (int)header[3];
    rc = PK_OK;
done:
    st_close(&f);
    gpt2_free(&tmp);
    free(prompt);
    free(order);
    free(m);
    free(v);
    return rc;
}

/* ------------------------------------------------------------------ probe */

int distill_probe(DistillState *s, const char *split, int n_records, unsigned long long seed, DistillProbe *out,
                  float *dprompt, char *err) {
    memset(out, 0, sizeof *out);
    if (!s->has_teacher) return pk_errf(err, "method %s has no teacher to probe against", s->cfg.method);
    if (dprompt && !s->prompt) return pk_errf(err, "method %s has no soft prompt to differentiate", s->cfg.method);
    const Dataset *d = need_split(s, split, err);
    if (!d) return PK_FAIL;
    int n = (n_records > 0 && n_records < d->n) ? n_records : d->n;
    int **ids = pk_calloc((size_t)n, sizeof(int *), err);
    int *lens = ids ? pk_calloc((size_t)n, sizeof(int), err) : NULL;
    long *rows = lens ? pk_malloc((size_t)n * sizeof(long), err) : NULL;
    float *t_packed = NULL, *s_packed = NULL;
    size_t *packed = NULL;
    Seqs q;
    memset(&q, 0, sizeof q);
    char what[48];
    snprintf(what, sizeof what, "probe: %s", split);
    int rc = rows ? data_encode_prompts(d, s->tok, n, s->max_prompt_tokens, what, ids, lens, err) : PK_FAIL;
    if (rc != PK_OK) goto done;
    for (int i = 0; i < n; i++) rows[i] = i;
    rc = PK_FAIL;
    if (seqs_sampled_prompts(s, &s->student, NULL, 0, (const int *const *)ids, lens, rows, n, s->P, seed, &q, err) !=
        PK_OK)
        goto done;
    GPT2 *t = &s->teacher, *m = &s->student;
    int V = t->config.vocab_size;
    if (!(packed = iota_rows(q.n, err))) goto done;
    if (gpt2_forward(t, q.tokens, NULL, 0, NULL, q.B, q.T, err) != PK_OK) goto done;
    if (!(t_packed = pack_rows(t->logits, q.rows, q.n, V, err))) goto done;
    if (gpt2_forward(m, q.tokens, NULL, 0, NULL, q.B, q.T, err) != PK_OK) goto done;
    if (!(s_packed = pack_rows(m->logits, q.rows, q.n, V, err))) goto done;
    out->positions = q.n;
    out->kl_t_s = div_rows(DIV_FKL, 0, t_packed, packed, s_packed, packed, q.n, V, 0, NULL, NULL) / q.n;
    out->kl_s_t = div_rows(DIV_RKL, 0, t_packed, packed, s_packed, packed, q.n, V, 0, NULL, NULL) / q.n;
    double coef = prompt_reg_coef(s); /* the weight the next step will use */
    if (s->prompt) {
        if (gpt2_forward(t, q.tokens_p, s->prompt, s->P, NULL, q.B, s->P + q.T, err) != PK_OK) goto done;
        out->kl_tp_t = div_rows(DIV_FKL, 0, t->logits, q.rows_p, t_packed, packed, q.n, V, 0, NULL, NULL) / q.n;
        out->kl_tp_s = div_rows(DIV_FKL, 0, t->logits, q.rows_p, s_packed, packed, q.n, V, 0, NULL, NULL) / q.n;
        out->kl_s_tp = div_rows(DIV_RKL, 0, t->logits, q.rows_p, s_packed, packed, q.n, V, 0, NULL, NULL) / q.n;
        out->prompt_loss = coef * out->kl_tp_t + out->kl_tp_s;
        if (dprompt) {
            double kl_t, kl_s;
            /* the student's logits are packed in S order: prompt_loss reads them through q.rows,
             * so run it on the student's own buffer, which still holds this batch */
            if (prompt_loss(s, &q, t_packed, m->logits, coef, q.n, dprompt, &kl_t, &kl_s, err) != PK_OK) goto done;
        }
    } else {
        out->kl_tp_t = out->kl_tp_s = out->kl_s_tp = out->prompt_loss = NAN;
    }
    rc = PK_OK;
done:
    data_free_rows(ids, n);
    free(lens);
    free(rows);
    free(t_packed);
    free(s_packed);
    free(packed);
    seqs_free(&q);
    return rc;
}
