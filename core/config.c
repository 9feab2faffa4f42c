/* RunConfig: one table describes every key (type, field, range, live flag, help),
 * and every entry point (JSON, --set, REPL set, TUI editor) goes through it, so a
 * key is validated the same way wherever it comes from. */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* KEY_DROPOUT: a float that is -1 (keep the checkpoints' probabilities) or in [0, 1) */
typedef enum { KEY_STR, KEY_PATH, KEY_METHOD, KEY_NAME, KEY_INT, KEY_U64, KEY_FLOAT, KEY_DROPOUT } KeyKind;

typedef struct {
    const char *name;
    KeyKind kind;
    size_t offset;
    size_t size;     /* for strings: buffer size */
    double min, max; /* inclusive unless min_open / max_open */
    int min_open, max_open;
    int can_be_empty; /* strings and paths */
    int live;
    const char *help;
} KeyInfo;

#define OFF(f) offsetof(RunConfig, f)
#define SZ(f) sizeof(((RunConfig *)0)->f)
#define BIG 1e300 /* unbounded: above every float */

/* clang-format off */
static const KeyInfo KEYS[] = {
    {"method", KEY_METHOD, OFF(method), SZ(method), 0, 0, 0, 0, 0, 0,
     "distillation method: one of "}, /* the names follow, from the method table (config_key_help) */
    {"name", KEY_NAME, OFF(name), SZ(name), 0, 0, 0, 0, 0, 0,
     "run name (letters, digits, '.', '_', '-'); the run folder is run_dir/name"},
    {"run_dir", KEY_PATH, OFF(run_dir), SZ(run_dir), 0, 0, 0, 0, 0, 0, "folder holding run folders"},
    {"teacher", KEY_PATH, OFF(teacher), SZ(teacher), 0, 0, 0, 0, 1, 0, "Hugging Face GPT-2 folder of the teacher"},
    {"student", KEY_PATH, OFF(student), SZ(student), 0, 0, 0, 0, 1, 0,
     "Hugging Face GPT-2 folder of the student (the model trained)"},
    {"tokenizer", KEY_PATH, OFF(tokenizer), SZ(tokenizer), 0, 0, 0, 0, 1, 0,
     "folder with vocab.json and merges.txt"},
    {"train_data", KEY_PATH, OFF(train_data), SZ(train_data), 0, 0, 0, 0, 1, 0, "training dataset (JSONL)"},
    {"valid_data", KEY_PATH, OFF(valid_data), SZ(valid_data), 0, 0, 0, 0, 1, 0, "dev dataset (JSONL) for ROUGE-L"},
    {"test_data", KEY_PATH, OFF(test_data), SZ(test_data), 0, 0, 0, 0, 1, 0,
     "test dataset (JSONL); may be empty"},
    {"seed", KEY_U64, OFF(seed), SZ(seed), 0, 0, 0, 0, 0, 0, "random seed (a non-negative integer)"},
    {"steps", KEY_INT, OFF(steps), SZ(steps), 1, INT_MAX, 0, 0, 0, 1, "total optimizer steps N"},
    {"stop_after", KEY_INT, OFF(stop_after), SZ(stop_after), 0, INT_MAX, 0, 0, 0, 1,
     "stop cleanly with a checkpoint after this many steps (0 = off)"},
    {"batch_size", KEY_INT, OFF(batch_size), SZ(batch_size), 1, 4096, 0, 0, 0, 0,
     "prompts per micro-batch (an optimizer step takes grad_accum of them)"},
    {"grad_accum", KEY_INT, OFF(grad_accum), SZ(grad_accum), 1, 4096, 0, 0, 0, 0,
     "micro-batches of batch_size accumulated into one optimizer step; losses average over all their response tokens"},
    {"max_prompt_len", KEY_INT, OFF(max_prompt_len), SZ(max_prompt_len), 1, 1 << 20, 0, 0, 0, 0,
     "prompts longer than this many tokens are dropped"},
    {"threads", KEY_INT, OFF(threads), SZ(threads), 0, 1024, 0, 0, 0, 0,
     "worker threads (0 = PROMPTKD_THREADS or all cores)"},
    {"lr", KEY_FLOAT, OFF(lr), SZ(lr), 0, BIG, 1, 0, 0, 1, "student learning rate"},
    {"prompt_lr", KEY_FLOAT, OFF(prompt_lr), SZ(prompt_lr), 0, BIG, 1, 0, 0, 1, "soft-prompt learning rate"},
    {"warmup_steps", KEY_INT, OFF(warmup_steps), SZ(warmup_steps), 0, INT_MAX, 0, 0, 0, 0,
     "linear warm-up steps, then constant"},
    {"weight_decay", KEY_FLOAT, OFF(weight_decay), SZ(weight_decay), 0, BIG, 0, 0, 0, 0, "AdamW weight decay"},
    {"clip_norm", KEY_FLOAT, OFF(clip_norm), SZ(clip_norm), 0, BIG, 0, 0, 0, 0,
     "global-norm gradient clipping (0 = off)"},
    {"dropout", KEY_DROPOUT, OFF(dropout), SZ(dropout), -1, 1, 0, 1, 0, 0,
     "dropout of the training forwards (T' in the prompt update, S in its own): -1 = the checkpoints' config.json, "
     "0 = off, else embd/attn/resid probability for both models"},
    {"prompt_len", KEY_INT, OFF(prompt_len), SZ(prompt_len), 1, 1024, 0, 0, 0, 0, "soft-prompt vectors"},
    {"prompt_init_text", KEY_STR, OFF(prompt_init_text), SZ(prompt_init_text), 0, 0, 0, 0, 0, 0,
     "text whose token embeddings initialise the soft prompt"},
    {"base_coef", KEY_FLOAT, OFF(base_coef), SZ(base_coef), 0, BIG, 0, 0, 0, 1,
     "weight of the (1 - t/N) KL(T'||T) prompt regulariser"},
    {"temperature", KEY_FLOAT, OFF(temperature), SZ(temperature), 0, BIG, 1, 0, 0, 1,
     "sampling temperature of student samples"},
    {"top_p", KEY_FLOAT, OFF(top_p), SZ(top_p), 0, 1, 1, 0, 0, 1, "nucleus sampling mass (1 = off)"},
    {"top_k", KEY_INT, OFF(top_k), SZ(top_k), 0, INT_MAX, 0, 0, 0, 1, "top-k sampling (0 = off)"},
    {"max_new_tokens", KEY_INT, OFF(max_new_tokens), SZ(max_new_tokens), 1, 1 << 20, 0, 0, 0, 1,
     "longest sampled response during training"},
    {"gkd_beta", KEY_FLOAT, OFF(gkd_beta), SZ(gkd_beta), 0, 1, 0, 0, 0, 0, "generalized JSD beta (gkd)"},
    {"gkd_student_frac", KEY_FLOAT, OFF(gkd_student_frac), SZ(gkd_student_frac), 0, 1, 0, 0, 0, 0,
     "fraction of gkd batches on student samples"},
    {"skew_alpha", KEY_FLOAT, OFF(skew_alpha), SZ(skew_alpha), 0, 1, 0, 0, 0, 0, "DistiLLM skew alpha"},
    {"minillm_teacher_mix", KEY_FLOAT, OFF(minillm_teacher_mix), SZ(minillm_teacher_mix), 0, 1, 0, 0, 0, 0,
     "minillm: responses are sampled from a p_teacher + (1 - a) q_student (0 = the student alone)"},
    {"minillm_clip_range", KEY_FLOAT, OFF(minillm_clip_range), SZ(minillm_clip_range), 0, 1, 0, 0, 0, 0,
     "minillm: the importance-weighted ratio is clipped to [1 - c, 1 + c]"},
    {"minillm_gamma", KEY_FLOAT, OFF(minillm_gamma), SZ(minillm_gamma), 0, 1, 0, 0, 0, 0,
     "minillm: discount of the long-term reward"},
    {"minillm_reward_scaling", KEY_FLOAT, OFF(minillm_reward_scaling), SZ(minillm_reward_scaling), 0, BIG, 1, 0, 0, 0,
     "minillm: per-token rewards are divided by this"},
    {"minillm_reward_clip", KEY_FLOAT, OFF(minillm_reward_clip), SZ(minillm_reward_clip), 0, BIG, 0, 0, 0, 0,
     "minillm: per-token rewards are clipped to [-x, x] (0 = off)"},
    {"minillm_ppo_epochs", KEY_INT, OFF(minillm_ppo_epochs), SZ(minillm_ppo_epochs), 1, 64, 0, 0, 0, 0,
     "minillm: AdamW updates on each step's samples (one step = one sampling round)"},
    {"minillm_kd_ratio", KEY_FLOAT, OFF(minillm_kd_ratio), SZ(minillm_kd_ratio), 0, 1, 0, 0, 0, 0,
     "minillm: pretraining loss = (1 - r) CE + r soft CE against the teacher"},
    {"lm_coef", KEY_FLOAT, OFF(lm_coef), SZ(lm_coef), 0, BIG, 0, 0, 0, 0,
     "minillm: weight of the loss on pretraining text (0 = off; > 0 needs pretrain_data)"},
    {"pretrain_data", KEY_PATH, OFF(pretrain_data), SZ(pretrain_data), 0, 0, 0, 0, 1, 0,
     "minillm: pretraining text, JSONL with a \"text\" field per line (needed when lm_coef > 0)"},
    {"eval_interval", KEY_INT, OFF(eval_interval), SZ(eval_interval), 0, INT_MAX, 0, 0, 0, 1,
     "steps between dev ROUGE-L evaluations (0 = once per epoch)"},
    {"eval_samples", KEY_INT, OFF(eval_samples), SZ(eval_samples), 0, INT_MAX, 0, 0, 0, 1,
     "dev records scored per evaluation (0 = all)"},
    {"eval_max_new_tokens", KEY_INT, OFF(eval_max_new_tokens), SZ(eval_max_new_tokens), 1, 1 << 20, 0, 0, 0, 1,
     "longest generation during evaluation"},
    {"gen_interval", KEY_INT, OFF(gen_interval), SZ(gen_interval), 0, INT_MAX, 0, 0, 0, 1,
     "steps between T'/T/S generations and prompt neighbours (0 = on pause only)"},
    {"exposure_interval", KEY_INT, OFF(exposure_interval), SZ(exposure_interval), 0, INT_MAX, 0, 0, 0, 1,
     "steps between ExAccErr measurements (0 = on demand only)"},
    {"exposure_samples", KEY_INT, OFF(exposure_samples), SZ(exposure_samples), 1, 1 << 16, 0, 0, 0, 1,
     "ExAccErr samples per prompt"},
    {"exposure_prompts", KEY_INT, OFF(exposure_prompts), SZ(exposure_prompts), 1, 1 << 20, 0, 0, 0, 1,
     "dev prompts used for ExAccErr"},
    {"exposure_len", KEY_INT, OFF(exposure_len), SZ(exposure_len), 1, 1 << 16, 0, 0, 0, 1,
     "ExAccErr generation length l"},
    {"neighbours_k", KEY_INT, OFF(neighbours_k), SZ(neighbours_k), 1, 64, 0, 0, 0, 1,
     "nearest vocabulary tokens shown per prompt vector"},
};
/* clang-format on */
#define N_KEYS ((int)(sizeof KEYS / sizeof *KEYS))

/* The one list of methods; MethodId (config.h) follows its order. */
static const MethodInfo METHODS[N_METHODS] = {
    [METHOD_SFT] = {"sft", 0, 0},           [METHOD_KD] = {"kd", 1, 0},
    [METHOD_SEQKD] = {"seqkd", 1, 0},       [METHOD_RKL] = {"rkl", 1, 0},
    [METHOD_GKD] = {"gkd", 1, 0},           [METHOD_DISTILLM] = {"distillm", 1, 0},
    [METHOD_PROMPTKD] = {"promptkd", 1, 1}, [METHOD_MINILLM] = {"minillm", 1, 0},
};

const MethodInfo *method_info(MethodId id) { return &METHODS[id]; }

int method_find(const char *name) {
    for (int i = 0; i < N_METHODS; i++)
        if (name && !strcmp(name, METHODS[i].name)) return i;
    return -1;
}

void method_names_joined(char *out, size_t len, const char *sep, const char *last_sep) {
    size_t o = 0;
    if (len == 0) return;
    out[0] = 0;
    for (int i = 0; i < N_METHODS && o < len; i++) {
        const char *before = i == 0 ? "" : i == N_METHODS - 1 ? last_sep : sep;
        int n = snprintf(out + o, len - o, "%s%s", before, METHODS[i].name);
        if (n < 0) break;
        o += (size_t)n;
    }
}

static int resolve_path(const char *in, char *out, size_t outlen);
static int unknown_key(const char *where, const char *key, char *err);

static const KeyInfo *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].name, name)) return &KEYS[i];
    return NULL;
}

const char *const *config_keys(void) {
    static const char *names[N_KEYS + 1];
    if (!names[0]) {
        /* filled once; the values are string literals so a racing fill writes the same pointers */
        for (int i = 0; i < N_KEYS; i++) names[i] = KEYS[i].name;
        names[N_KEYS] = NULL;
    }
    return names;
}

/* ---- when a key may change: the one place these rules are written ---- */

int config_key_is_live(const char *key) { return config_key_set_when(key) != CONFIG_SET_NEVER; }

ConfigSetWhen config_key_set_when(const char *key) {
    const KeyInfo *k = find_key(key);
    return k && k->live ? CONFIG_SET_ANYTIME : CONFIG_SET_NEVER;
}

int config_check_set(const char *key, int running, char *err) {
    const KeyInfo *k = find_key(key);
    if (!k) return unknown_key("", key, err);
    ConfigSetWhen when = config_key_set_when(key);
    if (when == CONFIG_SET_ANYTIME || (when == CONFIG_SET_PAUSED && !running)) return PK_OK;
    if (when == CONFIG_SET_PAUSED) return pk_errf(err, "key '%s' changes only while the run is paused", key);
    char live[600];
    size_t used = 0;
    live[0] = 0;
    for (int i = 0; i < N_KEYS; i++)
        if (KEYS[i].live && used + strlen(KEYS[i].name) + 3 < sizeof live)
            used += (size_t)snprintf(live + used, sizeof live - used, "%s%s", used ? ", " : "", KEYS[i].name);
    return pk_errf(err, "key '%s' is fixed for the run (live keys: %s)", key, live);
}

int config_key_fixed_on_resume(const char *key) {
    /* name and run_dir follow the folder, the thread count is the machine's, and the model,
     * tokenizer and data paths may move (distill_load_checkpoint checks the shapes) */
    static const char *const may_move[] = {"name",      "run_dir",    "threads",    "teacher",   "student",
                                           "tokenizer", "train_data", "valid_data", "test_data", "pretrain_data"};
    if (!find_key(key) || config_key_set_when(key) != CONFIG_SET_NEVER) return 0;
    for (size_t i = 0; i < sizeof may_move / sizeof *may_move; i++)
        if (!strcmp(key, may_move[i])) return 0;
    return 1;
}

static char method_help[160];

static void fill_method_help(void) {
    size_t n = (size_t)snprintf(method_help, sizeof method_help, "%s", find_key("method")->help);
    method_names_joined(method_help + n, sizeof method_help - n, ", ", ", ");
}

const char *config_key_help(const char *key) {
    const KeyInfo *k = find_key(key);
    if (k && k->kind == KEY_METHOD) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, fill_method_help);
        return method_help;
    }
    return k ? k->help : NULL;
}

void config_defaults(RunConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->method, sizeof c->method, "%s", METHODS[METHOD_PROMPTKD].name);
    snprintf(c->name, sizeof c->name, "run");
    /* absolute like every path set later; "runs" if the current folder cannot be named */
    if (resolve_path("runs", c->run_dir, sizeof c->run_dir) != PK_OK) snprintf(c->run_dir, sizeof c->run_dir, "runs");
    c->seed = 10;
    c->steps = 1000;
    c->stop_after = 0;
    c->batch_size = 8;
    c->grad_accum = 1;
    c->max_prompt_len = 256;
    c->threads = 0;
    c->lr = 5e-5f;
    c->prompt_lr = 5e-5f;
    c->warmup_steps = 100;
    c->weight_decay = 0.01f;
    c->clip_norm = 1.0f;
    c->dropout = -1.0f;
    c->prompt_len = 7;
    snprintf(c->prompt_init_text, sizeof c->prompt_init_text, "Suppose you are a student.");
    c->base_coef = 1.0f;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
    c->top_k = 0;
    c->max_new_tokens = 256;
    c->gkd_beta = 0.5f;
    c->gkd_student_frac = 0.5f;
    c->skew_alpha = 0.1f;
    /* MiniLLM: the official GPT-2 settings (scripts/gpt2/minillm/train_base_xl.sh; gamma, cliprange and
     * lm_coef are arguments.py defaults the script keeps) */
    c->minillm_teacher_mix = 0.2f;
    c->minillm_clip_range = 0.2f;
    c->minillm_gamma = 0.95f;
    c->minillm_reward_scaling = 0.5f;
    c->minillm_reward_clip = 100.0f;
    c->minillm_ppo_epochs = 4;
    c->minillm_kd_ratio = 0.5f;
    c->lm_coef = 1.0f;
    c->eval_interval = 0;
    c->eval_samples = 0;
    c->eval_max_new_tokens = 256;
    c->gen_interval = 50;
    c->exposure_interval = 0;
    c->exposure_samples = 4;
    c->exposure_prompts = 8;
    c->exposure_len = 64;
    c->neighbours_k = 5;
}

/* ---- the expected form of a key, as a phrase ---- */

static void fmt_bound(char *out, size_t len, double v) {
    if (v == INT_MAX || v >= BIG)
        snprintf(out, len, "inf");
    else
        snprintf(out, len, "%.15g", v); /* integers print whole: 1048576, not 1.04858e+06 */
}

static void expected_form(const KeyInfo *k, char *out, size_t len) {
    char lo[32], hi[32];
    fmt_bound(lo, sizeof lo, k->min);
    fmt_bound(hi, sizeof hi, k->max);
    int unbounded = k->max == INT_MAX || k->max >= BIG;
    const char *what = k->kind == KEY_FLOAT ? "a number" : "an integer";
    switch (k->kind) {
    case KEY_METHOD: {
        int n = snprintf(out, len, "one of ");
        if (n > 0 && (size_t)n < len) method_names_joined(out + n, len - (size_t)n, ", ", ", ");
        return;
    }
    case KEY_NAME: snprintf(out, len, "a non-empty name of letters, digits, '.', '_' or '-'"); return;
    case KEY_STR: snprintf(out, len, "a non-empty string of at most %zu bytes", k->size - 1); return;
    case KEY_PATH:
        snprintf(out, len, "%s of at most %zu bytes", k->can_be_empty ? "a path" : "a non-empty path", k->size - 1);
        return;
    case KEY_U64: snprintf(out, len, "a non-negative integer"); return;
    case KEY_DROPOUT: snprintf(out, len, "-1 (the checkpoints' config.json) or a number in [0, 1)"); return;
    case KEY_INT:
    case KEY_FLOAT:
        if (unbounded)
            snprintf(out, len, "%s %s %s", what, k->min_open ? ">" : ">=", lo);
        else if (k->min_open)
            snprintf(out, len, "%s with %s < x %s %s", what, lo, k->max_open ? "<" : "<=", hi);
        else
            snprintf(out, len, "%s in [%s, %s%c", what, lo, hi, k->max_open ? ')' : ']');
        return;
    }
}

static int in_range(const KeyInfo *k, double v) {
    if (k->min_open ? !(v > k->min) : !(v >= k->min)) return 0;
    if (k->max_open ? !(v < k->max) : !(v <= k->max)) return 0;
    return 1;
}

static int valid_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Relative paths become absolute against the current folder, so a resolved config
 * (and the run folder's config.json) means the same thing from anywhere. */
static int resolve_path(const char *in, char *out, size_t outlen) {
    if (!*in || in[0] == '/') {
        if (strlen(in) >= outlen) return PK_FAIL;
        snprintf(out, outlen, "%s", in);
        return PK_OK;
    }
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return PK_FAIL;
    const char *rel = in;
    while (rel[0] == '.' && rel[1] == '/') rel += 2;
    if (!strcmp(rel, ".")) rel = "";
    int n = *rel ? snprintf(out, outlen, "%s/%s", cwd, rel) : snprintf(out, outlen, "%s", cwd);
    if (n < 0 || (size_t)n >= outlen) return PK_FAIL;
    return PK_OK;
}

/* Stores a text value into the field after validation. `shown` is how the value
 * is quoted in messages ('abc' for typed text, "abc" for JSON). `where` prefixes
 * the message ("FILE: " or ""). */
static int set_from_text(RunConfig *c, const KeyInfo *k, const char *value, const char *shown, const char *where,
                         char *err) {
    char form[160];
    expected_form(k, form, sizeof form);
    char *field = (char *)c + k->offset;
    switch (k->kind) {
    case KEY_METHOD:
        if (method_find(value) >= 0) {
            snprintf(field, k->size, "%s", value);
            return PK_OK;
        }
        break;
    case KEY_NAME:
        if (valid_name(value) && strlen(value) < k->size) {
            snprintf(field, k->size, "%s", value);
            return PK_OK;
        }
        break;
    case KEY_STR:
        if (*value && strlen(value) < k->size) {
            snprintf(field, k->size, "%s", value);
            return PK_OK;
        }
        break;
    case KEY_PATH: {
        if (!*value && !k->can_be_empty) break;
        char resolved[CONFIG_PATH_LEN];
        if (resolve_path(value, resolved, sizeof resolved) != PK_OK) break;
        snprintf(field, k->size, "%s", resolved);
        return PK_OK;
    }
    case KEY_U64: {
        char *end = NULL;
        errno = 0;
        if (value[0] == '-' || value[0] == '+' || value[0] == ' ' || !*value) break;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || *end) break;
        *(unsigned long long *)field = v;
        return PK_OK;
    }
    case KEY_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || !in_range(k, (double)v)) break;
        *(int *)field = (int)v;
        return PK_OK;
    }
    case KEY_FLOAT:
    case KEY_DROPOUT: {
        char *end = NULL;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || !isfinite((float)v) || !in_range(k, (double)(float)v))
            break;
        if (k->kind == KEY_DROPOUT && (float)v < 0 && (float)v != -1.0f) break;
        *(float *)field = (float)v;
        return PK_OK;
    }
    }
    return pk_errf(err, "%skey '%s': expected %s, got %s", where, k->name, form, shown);
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* Copies text into out, cut to at most `max` bytes (no split UTF-8 sequence) with "..." after
 * a cut; keep_end keeps the end instead (for paths, whose file name is at the end). */
static void shorten(const char *text, size_t max, int keep_end, char *out, size_t outlen) {
    size_t n = strlen(text);
    if (n <= max || max < 8) {
        snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), text);
        return;
    }
    size_t keep = max - 3;
    if (keep_end) {
        const char *p = text + n - keep;
        while (*p && ((unsigned char)*p & 0xC0) == 0x80) p++;
        snprintf(out, outlen, "...%s", p);
    } else {
        while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--;
        snprintf(out, outlen, "%.*s...", (int)keep, text);
    }
}

static int unknown_key(const char *where, const char *key, char *err) {
    /* the key and the place are cut to a size that leaves room for the list of known keys:
     * the whole list when it fits in the message, else as much as fits and "..." */
    char shown_key[72], shown_where[200];
    shorten(key, 60, 0, shown_key, sizeof shown_key);
    shorten(where, 160, 1, shown_where, sizeof shown_where);
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < N_KEYS; i++) {
        int dd = edit_distance(key, KEYS[i].name);
        if (dd < best_d) best_d = dd, best = KEYS[i].name;
    }
    char list[PK_ERR_LEN];
    size_t fixed = strlen(shown_where) + strlen(shown_key) + (best ? strlen(best) : 0) + 64;
    size_t room = fixed < sizeof list ? sizeof list - fixed : 0;
    size_t used = 0;
    list[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        size_t need = strlen(KEYS[i].name) + 2;
        if (used + need + 5 > room) {
            snprintf(list + used, sizeof list - used, "%s...", used ? ", " : "");
            break;
        }
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", KEYS[i].name);
    }
    if (best)
        return pk_errf(err, "%sunknown key '%s' (did you mean '%s'? known keys: %s)", shown_where, shown_key, best,
                       list);
    return pk_errf(err, "%sunknown key '%s' (known keys: %s)", shown_where, shown_key, list);
}

int config_set(RunConfig *c, const char *key, const char *value, char *err) {
    const KeyInfo *k = find_key(key);
    if (!k) return unknown_key("", key, err);
    char shown[200];
    snprintf(shown, sizeof shown, "'%s'", value);
    RunConfig tmp = *c;
    if (set_from_text(&tmp, k, value, shown, "", err) != PK_OK) return PK_FAIL;
    *c = tmp;
    return PK_OK;
}

/* Shortest decimal text that reads back as exactly the same float. */
static void format_float(float v, char *out, size_t len) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(out, len, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) return;
    }
}

int config_get(const RunConfig *c, const char *key, char *out, size_t len, char *err) {
    const KeyInfo *k = find_key(key);
    if (!k) return unknown_key("", key, err);
    const char *field = (const char *)c + k->offset;
    int n = 0;
    switch (k->kind) {
    case KEY_METHOD:
    case KEY_NAME:
    case KEY_STR:
    case KEY_PATH: n = snprintf(out, len, "%s", field); break;
    case KEY_U64: n = snprintf(out, len, "%llu", *(const unsigned long long *)field); break;
    case KEY_INT: n = snprintf(out, len, "%d", *(const int *)field); break;
    case KEY_FLOAT:
    case KEY_DROPOUT: {
        char tmp[48];
        format_float(*(const float *)field, tmp, sizeof tmp);
        n = snprintf(out, len, "%s", tmp);
        break;
    }
    }
    if (n < 0 || (size_t)n >= len) return pk_errf(err, "key '%s': value does not fit in %zu bytes", key, len);
    return PK_OK;
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "the string";
    if (cJSON_IsNumber(v)) return "the number";
    if (cJSON_IsBool(v)) return "the boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "a value";
}

/* The value as JSON text, shortened for messages. */
static void json_shown(const cJSON *v, char *out, size_t len) {
    if (cJSON_IsArray(v) || cJSON_IsObject(v) || cJSON_IsNull(v)) {
        out[0] = 0;
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(out, len, "?");
        return;
    }
    if (strlen(s) > 120) snprintf(s + 100, strlen(s) - 99, "...");
    snprintf(out, len, " %s", s);
    cJSON_free(s);
}

static int set_from_json(RunConfig *c, const KeyInfo *k, const cJSON *v, const char *where, char *err) {
    char form[160], shown[160];
    expected_form(k, form, sizeof form);
    json_shown(v, shown, sizeof shown);
    int text_kind = k->kind == KEY_METHOD || k->kind == KEY_NAME || k->kind == KEY_STR || k->kind == KEY_PATH;
    if (text_kind) {
        if (!cJSON_IsString(v))
            return pk_errf(err, "%skey '%s': expected %s (a JSON string), got %s%s", where, k->name, form,
                           json_type_name(v), shown);
        return set_from_text(c, k, v->valuestring, shown + 1, where, err);
    }
    /* seed may also be written as a string of digits, for values beyond 2^53 */
    if (k->kind == KEY_U64 && cJSON_IsString(v)) return set_from_text(c, k, v->valuestring, shown + 1, where, err);
    if (!cJSON_IsNumber(v))
        return pk_errf(err, "%skey '%s': expected %s (a JSON number), got %s%s", where, k->name, form,
                       json_type_name(v), shown);
    double d = v->valuedouble;
    if (k->kind == KEY_INT || k->kind == KEY_U64) {
        if (!isfinite(d) || d != floor(d) || (k->kind == KEY_U64 && (d < 0 || d > 9007199254740992.0)) ||
            (k->kind == KEY_INT && (d < INT_MIN || d > INT_MAX || !in_range(k, d))))
            return pk_errf(err, "%skey '%s': expected %s, got%s", where, k->name, form, shown);
        char text[48];
        snprintf(text, sizeof text, "%.0f", d);
        return set_from_text(c, k, text, shown + 1, where, err);
    }
    /* floats: use the JSON text itself so 5e-5 reads as strtof("5e-5") */
    char *text = cJSON_PrintUnformatted(v);
    if (!text) return pk_errf(err, "%skey '%s': out of memory", where, k->name);
    int rc = set_from_text(c, k, text, shown + 1, where, err);
    cJSON_free(text);
    return rc;
}

int config_load_json(RunConfig *c, const char *path, char *err) {
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return PK_FAIL;
    char where[CONFIG_PATH_LEN + 8];
    snprintf(where, sizeof where, "%s: ", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        int line = 1;
        const char *stop = end ? end : text;
        for (const char *p = text; p < stop && p < text + len; p++)
            if (*p == '\n') line++;
        free(text);
        return pk_errf(err, "%sline %d: malformed JSON (expected a JSON object of key: value)", where, line);
    }
    /* one object and nothing after it but white space, as the dataset reader demands of a line */
    const char *after = end ? end : text + len;
    while (after < text + len && (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r')) after++;
    if (after < text + len) {
        int line = 1;
        for (const char *p = text; p < after; p++)
            if (*p == '\n') line++;
        char shown[48];
        size_t n = 0;
        for (const char *p = after; p < text + len && n < 24 && *p != '\n' && *p != '\r'; p++)
            shown[n++] = (unsigned char)*p >= 0x20 && *p != 0x7f ? *p : '?';
        shown[n] = 0;
        cJSON_Delete(root);
        free(text);
        return pk_errf(err, "%sline %d: trailing text after the JSON object ('%s%s'); expected one object and nothing "
                            "after it",
                       where, line, shown, n == 24 ? "..." : "");
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pk_errf(err, "%sexpected a JSON object of key: value at the top level", where);
    }
    RunConfig tmp = *c;
    int rc = PK_OK;
    for (const cJSON *item = root->child; item && rc == PK_OK; item = item->next) {
        const KeyInfo *k = find_key(item->string ? item->string : "");
        if (!k) {
            rc = unknown_key(where, item->string ? item->string : "", err);
            break;
        }
        for (const cJSON *prev = root->child; prev != item; prev = prev->next)
            if (!strcmp(prev->string, item->string)) {
                rc = pk_errf(err, "%skey '%s' appears twice", where, item->string);
                break;
            }
        if (rc == PK_OK) rc = set_from_json(&tmp, k, item, where, err);
    }
    cJSON_Delete(root);
    if (rc == PK_OK) *c = tmp;
    return rc;
}

static int need_path(const char *key, const char *path, int want_dir, char *err) {
    if (!*path) return pk_errf(err, "key '%s' is not set: expected %s", key, want_dir ? "a folder" : "a file");
    if (want_dir ? !pk_is_dir(path) : !pk_file_exists(path) || pk_is_dir(path))
        return pk_errf(err, "key '%s': %s '%s' does not exist", key, want_dir ? "folder" : "file", path);
    return PK_OK;
}

int config_validate(const RunConfig *c, char *err) {
    /* every key on its own: catches values written into the struct directly */
    char value[CONFIG_PATH_LEN + 64];
    for (int i = 0; i < N_KEYS; i++) {
        RunConfig probe = *c;
        if (config_get(c, KEYS[i].name, value, sizeof value, err) != PK_OK) return PK_FAIL;
        if (KEYS[i].kind == KEY_PATH) continue; /* resolved already; existence checked below */
        char shown[CONFIG_PATH_LEN + 80];
        snprintf(shown, sizeof shown, "'%s'", value);
        if (set_from_text(&probe, &KEYS[i], value, shown, "", err) != PK_OK) return PK_FAIL;
    }
    if (!*c->run_dir) return pk_errf(err, "key 'run_dir' is not set: expected a folder for run folders");
    int m = method_find(c->method); /* known: checked with every key above */
    if (m >= 0 && METHODS[m].has_teacher && need_path("teacher", c->teacher, 1, err) != PK_OK) return PK_FAIL;
    if (need_path("student", c->student, 1, err) != PK_OK) return PK_FAIL;
    if (need_path("tokenizer", c->tokenizer, 1, err) != PK_OK) return PK_FAIL;
    if (need_path("train_data", c->train_data, 0, err) != PK_OK) return PK_FAIL;
    if (need_path("valid_data", c->valid_data, 0, err) != PK_OK) return PK_FAIL;
    if (m == METHOD_MINILLM && c->lm_coef > 0) {
        if (!*c->pretrain_data)
            return pk_errf(err, "key 'pretrain_data' is not set: minillm with lm_coef %g > 0 needs pretraining text "
                                "(JSONL, a \"text\" field per line); name a file or set lm_coef=0",
                           (double)c->lm_coef);
        if (need_path("pretrain_data", c->pretrain_data, 0, err) != PK_OK) return PK_FAIL;
    }
    if (*c->test_data && need_path("test_data", c->test_data, 0, err) != PK_OK) return PK_FAIL;
    if (c->stop_after > c->steps)
        return pk_errf(err, "key 'stop_after': expected at most steps (%d), got %d", c->steps, c->stop_after);
    return PK_OK;
}

int config_save_json(const RunConfig *c, const char *path, char *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return pk_errf(err, "%s: out of memory", path);
    char value[CONFIG_PATH_LEN + 64];
    for (int i = 0; i < N_KEYS; i++) {
        const KeyInfo *k = &KEYS[i];
        if (config_get(c, k->name, value, sizeof value, err) != PK_OK) {
            cJSON_Delete(root);
            return PK_FAIL;
        }
        cJSON *item;
        if (k->kind == KEY_INT || k->kind == KEY_FLOAT || k->kind == KEY_DROPOUT ||
            (k->kind == KEY_U64 && c->seed <= 9007199254740992ULL))
            item = cJSON_AddRawToObject(root, k->name, value);
        else
            item = cJSON_AddStringToObject(root, k->name, value);
        if (!item) {
            cJSON_Delete(root);
            return pk_errf(err, "%s: out of memory", path);
        }
    }
    int rc = pk_write_json_atomic(path, root, err);
    cJSON_Delete(root);
    return rc;
}
