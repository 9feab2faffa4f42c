/* The distillation methods (DESIGN.md section 3): SFT, KD, SeqKD, on-policy RKL,
 * GKD, DistiLLM-style skew KL and PromptKD, over one state that holds everything a
 * run needs: teacher, student, soft prompt, both optimizers, tokenizer, data, RNG,
 * data order and cursor, step.
 *
 * Determinism: every random draw of a step (data order, sampling, the GKD coin)
 * comes from the state's PkRng and data cursor, which checkpoints save, and the
 * dropout masks of a training forward derive from (seed, step, micro-batch, pass);
 * so the losses at step k+1 after distill_load_checkpoint of step k equal the losses
 * of the uninterrupted run at step k+1, bit for bit (same thread count).
 *
 * An optimizer step takes grad_accum micro-batches of batch_size rows. Sampled rows
 * draw from RNGs of (the step's seed, the row's index in the whole accumulated batch),
 * and every loss is a sum over the response tokens of all micro-batches divided by
 * their total, so batch_size 8 x grad_accum 1 and 4 x 2 make the same update (dropout
 * off; up to rounding).
 *
 * Models: which = DISTILL_PROMPTED_TEACHER (T': the teacher with the soft prompt
 * prepended), DISTILL_TEACHER (T) or DISTILL_STUDENT (S). T' exists only for methods
 * with a prompt (promptkd); T only for methods with a teacher (all but sft).
 *
 * Threading: a DistillState is used by one thread at a time (the engine's worker). */
#ifndef PK_DISTILL_H
#define PK_DISTILL_H

#include <stddef.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "gpt2.h"
#include "tokenizer.h"

typedef struct DistillState DistillState;

enum { DISTILL_PROMPTED_TEACHER = 0, DISTILL_TEACHER = 1, DISTILL_STUDENT = 2 };

#define DISTILL_MAX_LOSSES 8

/* What one optimizer step did. Losses are means over the masked positions of the whole
 * accumulated batch (all grad_accum micro-batches). Names, in this order:
 *   every method:  "student_loss" (the loss the student was updated on)
 *   promptkd also: "prompt_loss", "prompt_reg_loss" ((1 - t/N) base_coef KL(T'||T), t counted
 *                  from 1: the step being made), "prompt_guide_loss" (KL(T'||S)),
 *                  "kl_tprime_t" (KL(T'||T) alone, whatever base_coef and t are)
 *   gkd also:      "on_policy" (1 when the batch was student samples, 0 ground truth)
 *   minillm also:  "pg_loss", "reg_loss" (the single-step reverse KL), "pt_loss" (on pretraining
 *                  text, before lm_coef), "reward" (sampling-time, length-normalised); every loss is
 *                  the mean over the step's minillm_ppo_epochs updates */
typedef struct {
    int step;                  /* optimizer steps done, counting this one (1 after the first) */
    int n_losses;
    char loss_names[DISTILL_MAX_LOSSES][32];
    double losses[DISTILL_MAX_LOSSES];
    double tokens;             /* tokens processed by forward passes (sampling included) */
    double flops;              /* model FLOPs of the step (training passes as DESIGN.md section 8 counts;
                                  forward-only passes and sampling as a third of a training pass) */
    double seconds;            /* wall time of the step */
    double lr, prompt_lr;      /* learning rates used by this step (after warm-up scaling) */
    double grad_norm;          /* student's global gradient norm before clipping */
    double prompt_grad_norm;   /* prompt's, 0 without a prompt */
    int response_tokens;       /* masked positions the loss averaged over (all micro-batches) */
    int nonfinite;             /* 1: a loss or gradient was NaN/Inf; no parameter was changed */
    double comm_seconds;       /* of seconds, the time spent summing over the ranks (0 in one process) */
} DistillStepStats;

/* Loads the tokenizer, train data (and valid/test when the config names them),
 * the student (cfg->student) and, unless method is sft, the teacher (frozen); makes
 * and initialises the prompt (promptkd); seeds the RNG from cfg->seed and shuffles
 * the training order. The config is copied. */
int distill_create(DistillState **out, const RunConfig *cfg, char *err);
/* Same, but the student starts from a random GPT-2 initialisation of init_cfg
 * (seeded with cfg->seed) instead of loading cfg->student (which may be empty).
 * init_cfg->vocab_size must equal the tokenizer's. Used by `promptkd sft --init`. */
int distill_create_init(DistillState **out, const RunConfig *cfg, const GPT2Config *init_cfg, char *err);
void distill_free(DistillState *s);

/* One optimizer step of cfg->method: grad_accum micro-batches, then one clipping and one
 * AdamW step of the student (and of the prompt). On a non-finite loss or gradient the step is
 * not applied (parameters, optimizer state and the step count unchanged, though the
 * data cursor and RNG have advanced), st->nonfinite = 1 and PK_OK is returned:
 * the caller decides to pause. PK_FAIL only for real errors (memory, shapes). */
int distill_step(DistillState *s, DistillStepStats *st, char *err);

/* Live changes: applies the keys config_key_is_live() allows (learning rates,
 * base_coef, sampling settings, eval/generation settings, total steps, ...);
 * refuses, naming the key, a change of one that is fixed for the run. */
int distill_apply_config(DistillState *s, const RunConfig *cfg, char *err);
const RunConfig *distill_config(const DistillState *s);

int distill_step_index(const DistillState *s);   /* optimizer steps done */
int distill_steps_per_epoch(const DistillState *s); /* ceil(train examples / (batch_size x grad_accum)) */
int distill_has_prompt(const DistillState *s);
int distill_has_teacher(const DistillState *s);

/* Accessors, read-only by convention (the state owns them). NULL when absent. */
GPT2 *distill_teacher(DistillState *s);
GPT2 *distill_student(DistillState *s);
const Tokenizer *distill_tokenizer(const DistillState *s);
/* split: "train", "valid" or "test"; NULL when that split was not configured. */
const Dataset *distill_dataset(const DistillState *s, const char *split);
/* The soft prompt [P, C] (C = teacher's n_embd) and its initial value; NULL without prompt. */
const float *distill_prompt(const DistillState *s, int *P, int *C);
const float *distill_prompt_init(const DistillState *s);

/* Generation with model `which` on prompt_text used verbatim (callers that have an
 * instruction format it with data_format_prompt first). Decoding as DESIGN.md
 * section 4 evaluates (temperature 1, top-k off, top-p 1, no_repeat_ngram_size 6,
 * prompt cut to max_prompt_len tokens, stop at EOS), seeded. *out is malloc'ed
 * UTF-8-safe text without the prompt, cut at EOS and stripped. */
int distill_generate(DistillState *s, int which, const char *prompt_text, int max_new_tokens,
                     unsigned long long seed, char **out, char *err);

/* ROUGE-L (x 100, mean over records of the max over references) of model `which`
 * on the first n_records of split (0: all), evaluation decoding, one seed.
 * preds: NULL, or an array of at least *n_scored entries that receives malloc'ed
 * generations (caller frees each); *n_scored = records scored (n_scored may be
 * NULL when preds is). */
int distill_eval_rouge(DistillState *s, int which, const char *split, int n_records, int max_new_tokens,
                       unsigned long long seed, double *rouge, char **preds, int *n_scored, char *err);

/* Mean teacher-forced cross-entropy of the student on the ground-truth responses
 * of the first n_records of split (0: all). */
int distill_eval_loss(DistillState *s, const char *split, int n_records, double *loss, char *err);

/* The divergences PromptKD works with, measured without changing anything (monitoring, tests):
 * the student samples one response to each of the first n_records prompts of split (the run's
 * sampling settings; row i's RNG from (seed, i)), and on those samples, averaged over the
 * response positions (T' fields are NaN without a prompt): */
typedef struct {
    double kl_tp_t;     /* KL(T' || T) */
    double kl_tp_s;     /* KL(T' || S): the prompt's guide term */
    double kl_t_s;      /* KL(T || S): the same without the prompt */
    double kl_s_tp;     /* KL(S || T'): the student's PromptKD loss */
    double kl_s_t;      /* KL(S || T): the on-policy RKL loss */
    double prompt_loss; /* (1 - t/N) base_coef kl_tp_t + kl_tp_s with t = the next step (steps done + 1) */
    int positions;      /* response positions averaged over */
} DistillProbe;
/* With dprompt [P, C] != NULL, also accumulates d(prompt_loss)/d(prompt) into it (through the
 * frozen teacher's input-only backward, as the prompt update computes it). */
int distill_probe(DistillState *s, const char *split, int n_records, unsigned long long seed, DistillProbe *out,
                  float *dprompt, char *err);

/* For each prompt vector: the k vocabulary tokens whose teacher word embeddings are
 * closest in cosine similarity, best first: ids [P*k], sims [P*k]; drift [P] = L2
 * distance of each vector from its initial value (any output may be NULL). */
int distill_prompt_neighbours(DistillState *s, int k, int *ids, float *sims, float *drift, char *err);

/* Exposure bias ExAccErr(l), l = 1..max_len, into exaccerr [max_len] (percent), of the
 * student against the oracle `which` (DISTILL_TEACHER or DISTILL_PROMPTED_TEACHER),
 * on the first n_prompts prompts of split with n_samples samples each, seeded. */
int distill_exposure(DistillState *s, int which, const char *split, int n_prompts, int n_samples, int max_len,
                     unsigned long long seed, double *exaccerr, char *err);

/* Checkpoint folder, written atomically as a whole (built in a temp folder next to
 * dir, then renamed over it): model.safetensors + config.json (the student, HF form),
 * prompt.safetensors ("prompt" [P, C], with the prompt), state.safetensors (AdamW m/v
 * of the student and the prompt, step, RNG state, data order and cursor, and the
 * student's init/arch check values). Loading checks the checkpoint matches the run
 * (method, shapes) and restores everything, so the next step equals the uninterrupted run's. */
int distill_save_checkpoint(DistillState *s, const char *dir, char *err);
int distill_load_checkpoint(DistillState *s, const char *dir, char *err);

#endif
