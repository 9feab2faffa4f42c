/* RunConfig: every setting of a run, addressable by key name. The same names are
 * used by JSON configs, `promptkd train --set key=value`, the REPL's `set`, and
 * the TUI's editor. Unknown keys and bad values are refused with the key's name
 * and the expected form. */
#ifndef PK_CONFIG_H
#define PK_CONFIG_H

#include <stddef.h>

#define CONFIG_PATH_LEN 512

typedef struct {
    /* what to run */
    char method[16];        /* a name of the method table (MethodInfo) */
    char name[64];          /* run name; the run folder is run_dir/name */
    char run_dir[CONFIG_PATH_LEN];
    char teacher[CONFIG_PATH_LEN];   /* HF GPT-2 folder (unused by sft) */
    char student[CONFIG_PATH_LEN];   /* HF GPT-2 folder: the model trained */
    char tokenizer[CONFIG_PATH_LEN]; /* folder with vocab.json + merges.txt */
    char train_data[CONFIG_PATH_LEN];
    char valid_data[CONFIG_PATH_LEN];
    char test_data[CONFIG_PATH_LEN];
    unsigned long long seed;
    int steps;              /* total optimizer steps N */
    int stop_after;         /* 0: off; else stop cleanly with a checkpoint after this many steps */
    int batch_size;         /* prompts per micro-batch */
    int grad_accum;         /* micro-batches per optimizer step (gradient accumulation) */
    int max_prompt_len;     /* longer prompts dropped (256) */
    int threads;            /* 0: PROMPTKD_THREADS or all cores */

    /* optimisation */
    float lr;               /* student */
    float prompt_lr;
    int warmup_steps;       /* linear warm-up, then constant */
    float weight_decay;
    float clip_norm;        /* global-norm clipping; 0 = off */
    float dropout;          /* -1: the checkpoints' config.json probabilities; 0: off; in (0, 1): embd, attn
                               and resid dropout of both models in their training forwards */

    /* the soft prompt (promptkd) */
    int prompt_len;
    char prompt_init_text[256];
    float base_coef;        /* weight of the (1 - t/N) KL(T'||T) regulariser */

    /* student sampling during training */
    float temperature;
    float top_p;
    int top_k;              /* 0 = off */
    int max_new_tokens;

    /* baselines */
    float gkd_beta;         /* generalized JSD beta */
    float gkd_student_frac; /* fraction of batches on student samples (rest ground truth) */
    float skew_alpha;       /* DistiLLM skew */
    /* MiniLLM (core/minillm.h); defaults from the official scripts/gpt2/minillm/train_base_xl.sh
     * and arguments.py of microsoft/LMOps minillm/ */
    float minillm_teacher_mix;    /* alpha of teacher-mixed sampling (--teacher-mixed-alpha 0.2) */
    float minillm_clip_range;     /* clip of the importance-weighted ratio (--cliprange 0.2) */
    float minillm_gamma;          /* discount of the long-term reward (--gamma 0.95) */
    float minillm_reward_scaling; /* rewards divided by it (--reward-scaling 0.5) */
    float minillm_reward_clip;    /* rewards clipped to +-this; 0 = off (--cliprange-reward 100) */
    int minillm_ppo_epochs;       /* updates per sampling round (--ppo-epochs 4) */
    float minillm_kd_ratio;       /* pretraining loss = (1 - r) CE + r CE(teacher, student) (--kd-ratio 0.5) */
    float lm_coef;                /* weight of the pretraining loss (--lm-coef 1) */
    char pretrain_data[CONFIG_PATH_LEN]; /* JSONL of {"text": ...} documents for the lm_coef term */

    /* evaluation and monitoring */
    int eval_interval;      /* steps between dev ROUGE-L evaluations; 0 = once per epoch */
    int eval_samples;       /* dev records scored per evaluation (0 = all) */
    int eval_max_new_tokens;
    int gen_interval;       /* steps between T'/T/S generations on the dev prompt */
    int exposure_interval;  /* steps between ExAccErr measurements; 0 = off */
    int exposure_samples;   /* samples per prompt */
    int exposure_prompts;   /* dev prompts used */
    int exposure_len;       /* max generation length l */
    int neighbours_k;
} RunConfig;

/* The distillation methods: the one table of them is in config.c, in this order; distill.c
 * dispatches on the ids, every other place reads names and needs from the table. A checkpoint's
 * state.safetensors records the id, so a new method goes at the end. */
typedef enum {
    METHOD_SFT,
    METHOD_KD,
    METHOD_SEQKD,
    METHOD_RKL,
    METHOD_GKD,
    METHOD_DISTILLM,
    METHOD_PROMPTKD,
    METHOD_MINILLM
} MethodId;
#define N_METHODS (METHOD_MINILLM + 1)

typedef struct {
    const char *name; /* the value of the key `method` */
    int has_teacher;  /* loads the teacher T (every method but sft) */
    int has_prompt;   /* trains a soft prompt on the teacher, giving T' (promptkd) */
} MethodInfo;

/* The table row of a method id in [0, N_METHODS). */
const MethodInfo *method_info(MethodId id);
/* The id of a method name, or -1 when no method has that name. */
int method_find(const char *name);
/* The names in table order, "sft, kd, ..., promptkd or minillm" (sep between them, last_sep
 * before the last), NUL-terminated in out and cut at len. */
void method_names_joined(char *out, size_t len, const char *sep, const char *last_sep);

/* Built-in defaults (the paper's settings where they apply). */
void config_defaults(RunConfig *c);
/* Loads a JSON object of key: value over the current values (call config_defaults
 * first). Relative paths in the file are resolved against the current folder. */
int config_load_json(RunConfig *c, const char *path, char *err);
/* Sets one key from its text form, validating it ("lr: expected a number > 0, got 'abc'"). */
int config_set(RunConfig *c, const char *key, const char *value, char *err);
/* Text form of one key's value. */
int config_get(const RunConfig *c, const char *key, char *out, size_t len, char *err);
/* Checks the whole config is coherent (files named, sizes positive, ...). */
int config_validate(const RunConfig *c, char *err);
/* Writes the resolved config as a JSON object (every key), atomically. */
int config_save_json(const RunConfig *c, const char *path, char *err);

/* All key names, NULL-terminated, in a stable order (for completion and display). */
const char *const *config_keys(void);
/* When `set` may change a key of a live run (the engine applies a change at the next
 * step boundary): every step boundary, running or paused (learning rates, base_coef,
 * sampling settings, eval interval, ...); only while paused; or never (fixed for the run).
 * These rules are written here only: the engine, the session and the views ask. */
typedef enum { CONFIG_SET_NEVER = 0, CONFIG_SET_ANYTIME, CONFIG_SET_PAUSED } ConfigSetWhen;
ConfigSetWhen config_key_set_when(const char *key);
/* 1 when set may change the key in a live run at all (CONFIG_SET_NEVER: 0). */
int config_key_is_live(const char *key);
/* PK_OK when `set KEY` may apply now (running: the run is stepping); else the sentence
 * (unknown key with the known ones, or fixed for the run with the live keys). */
int config_check_set(const char *key, int running, char *err);
/* 1 when a resumed run must keep the key's value: the keys fixed for the run, except name,
 * run_dir (they follow the folder), threads, and the model, tokenizer and data paths. */
int config_key_fixed_on_resume(const char *key);
/* One-line description of a key and its expected form, or NULL for an unknown key. */
const char *config_key_help(const char *key);

#endif
