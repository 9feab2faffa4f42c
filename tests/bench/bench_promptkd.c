/* One PromptKD training step through the shipped code path (distill_create + distill_step,
 * method promptkd), timed, for tests/bench/promptkd_step.sh to compare with the same step in
 * PyTorch (tests/bench/torch_promptkd.py).
 *
 *   bench_promptkd --tokenizer DIR --vocab V --positions N
 *                  --t-layers L --t-embd C --t-heads H --s-layers L --s-embd C --s-heads H
 *                  --batch B --new-tokens K --prompt-len P
 *                  (--prompt-tokens T0 | --prompt-tokens-from FILE.jsonl)
 *                  [--steps S] [--warmup W] [--threads N] [--seed X] [--paced 1]
 *   bench_promptkd --tokenizer DIR --prompt-tokens-from FILE.jsonl --print-prompt-tokens 1 ...
 *
 * --paced 1: tests/bench/paired.py takes turns with the PyTorch side; every step (warm-up
 * included) starts when a line arrives on stdin and ends with a JSON line {"step", "ms"}, and the
 * sampling phase with the final line waits for one more. --print-prompt-tokens 1 prints T0 and
 * stops (the PyTorch side needs it before either starts).
 *
 * Teacher and student are random GPT-2s (seeded, see init_weights) saved to a temp folder
 * (/dev/shm when writable, else /tmp; removed at exit);
 * the training set is a temp JSONL of plain prompts that encode to exactly T0 tokens each
 * (--prompt-tokens-from: T0 = the median prompt length of that dataset under the tokenizer).
 *
 * Fixed response length: the step samples until EOS or K tokens. So that every row makes
 * exactly K tokens (the same work as the PyTorch side), the student's EOS logit is pinned at
 * about -50 everywhere: ln_f channel 0 is the constant 1 (weight 0, bias 1) and the tied
 * wte row of EOS is -50 on channel 0 and 0 elsewhere. Nothing else changes; the PyTorch side
 * does the same. Each step checks response_tokens == B * K.
 *
 * Prints one JSON line: median ms per step (after the warm-up steps), each step's ms, the median
 * CPU ms per step (user + system, all threads: less sensitive to a shared machine), and the
 * median ms of the sampling phase alone (sample_generate on the same prompts, same options). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "distill.h"
#include "gpt2.h"
#include "parallel.h"
#include "sample.h"
#include "tokenizer.h"

#define MAX_STEPS 64

typedef struct {
    const char *tokenizer, *prompt_tokens_from;
    int vocab, positions;
    int t_layers, t_embd, t_heads, s_layers, s_embd, s_heads;
    int batch, new_tokens, prompt_len, prompt_tokens;
    int steps, warmup, threads, paced, print_prompt_tokens;
    long seed;
} Args;

/* --paced: wait for the next turn (a line on stdin) */
static int paced_turn(const Args *a, const char *what, char *err) {
    char line[64];
    if (a->paced && !fgets(line, sizeof line, stdin))
        return pk_errf(err, "--paced: standard input ended before %s (the pacing program stopped)", what);
    return PK_OK;
}

static int parse_args(Args *a, int argc, char **argv, char *err) {
    struct {
        const char *name;
        int *i;
        long *l;
        const char **s;
    } opts[] = {
        {"tokenizer", NULL, NULL, &a->tokenizer},   {"prompt-tokens-from", NULL, NULL, &a->prompt_tokens_from},
        {"vocab", &a->vocab, NULL, NULL},           {"positions", &a->positions, NULL, NULL},
        {"t-layers", &a->t_layers, NULL, NULL},     {"t-embd", &a->t_embd, NULL, NULL},
        {"t-heads", &a->t_heads, NULL, NULL},       {"s-layers", &a->s_layers, NULL, NULL},
        {"s-embd", &a->s_embd, NULL, NULL},         {"s-heads", &a->s_heads, NULL, NULL},
        {"batch", &a->batch, NULL, NULL},           {"new-tokens", &a->new_tokens, NULL, NULL},
        {"prompt-len", &a->prompt_len, NULL, NULL}, {"prompt-tokens", &a->prompt_tokens, NULL, NULL},
        {"steps", &a->steps, NULL, NULL},           {"warmup", &a->warmup, NULL, NULL},
        {"threads", &a->threads, NULL, NULL},       {"seed", NULL, &a->seed, NULL},
        {"paced", &a->paced, NULL, NULL},           {"print-prompt-tokens", &a->print_prompt_tokens, NULL, NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    for (int k = 1; k < argc; k += 2) {
        if (strncmp(argv[k], "--", 2) != 0 || k + 1 >= argc)
            return pk_errf(err, "argument '%s': expected --name value pairs", argv[k]);
        int found = 0;
        for (int o = 0; o < n_opts && !found; o++) {
            if (strcmp(argv[k] + 2, opts[o].name) != 0) continue;
            found = 1;
            if (opts[o].s) {
                *opts[o].s = argv[k + 1];
                continue;
            }
            char *end;
            long v = strtol(argv[k + 1], &end, 10);
            if (*end || end == argv[k + 1]) return pk_errf(err, "--%s: expected an integer, got '%s'", opts[o].name, argv[k + 1]);
            if (opts[o].i) *opts[o].i = (int)v;
            else *opts[o].l = v;
        }
        if (!found) return pk_errf(err, "unknown option '%s'", argv[k]);
    }
    if (!a->tokenizer) return pk_errf(err, "--tokenizer: expected a folder with vocab.json and merges.txt");
    if (a->vocab < 2 || a->positions < 2 || a->t_layers < 1 || a->s_layers < 1 || a->t_heads < 1 || a->s_heads < 1 ||
        a->t_embd % a->t_heads || a->s_embd % a->s_heads || a->batch < 1 || a->new_tokens < 1 || a->prompt_len < 1 ||
        a->steps < 1 || a->steps > MAX_STEPS || a->warmup < 0)
        return pk_errf(err, "sizes must be positive, each embd a multiple of its heads, and --steps at most %d", MAX_STEPS);
    if (a->prompt_tokens < 1 && !a->prompt_tokens_from)
        return pk_errf(err, "expected --prompt-tokens T0 or --prompt-tokens-from FILE");
    return PK_OK;
}

/* Median prompt length (tokens) of a dataset's records, prompts over 256 tokens dropped as training does. */
static int median_prompt_tokens(const char *path, const Tokenizer *tok, int *out, char *err) {
    Dataset d;
    TokExample *ex = NULL;
    int n = 0, dropped = 0;
    if (data_load(&d, path, 0, err) != PK_OK) return PK_FAIL;
    int rc = data_tokenize(&d, tok, 256, 0, &ex, &n, &dropped, err);
    if (rc == PK_OK) {
        int *lens = pk_malloc((size_t)n * sizeof(int), err);
        if (!lens) {
            rc = PK_FAIL;
        } else {
            for (int i = 0; i < n; i++) lens[i] = ex[i].prompt_len;
            for (int i = 1; i < n; i++) /* insertion sort: a few thousand records */
                for (int j = i; j > 0 && lens[j - 1] > lens[j]; j--) {
                    int t = lens[j];
                    lens[j] = lens[j - 1];
                    lens[j - 1] = t;
                }
            *out = lens[n / 2];
            free(lens);
        }
        data_free_tokenized(ex, n);
    }
    data_free(&d);
    return rc;
}

/* Prompt text of exactly T0 tokens: words of a sentence (rotated by `shift` so records
 * differ), the last few tokens made of " a" (one token each in a byte-level GPT-2 BPE). */
static int make_prompt(const Tokenizer *tok, int T0, int shift, PkBuf *text, int **ids, int *n_ids, char *err) {
    static const char *const words[] = {"Write", " a", " short", " answer", " to", " the", " question", " about",
                                        " the", " colour", " of", " the", " sky", " and", " the", " sea", " in",
                                        " summer", ",", " then", " list", " three", " reasons", "."};
    const int n_words = (int)(sizeof words / sizeof words[0]);
    for (int w = 0;; w++) {
        size_t keep = text->len;
        const char *word = words[(w + shift) % n_words];
        if (w == 0 && word[0] == ' ') word++;
        if (pk_buf_append(text, word, strlen(word)) != PK_OK) return pk_errf(err, "out of memory building a prompt");
        free(*ids);
        *ids = NULL;
        if (tok_encode(tok, text->data, text->len, 0, ids, n_ids, err) != PK_OK) return PK_FAIL;
        if (*n_ids == T0) return PK_OK;
        if (*n_ids > T0) {
            text->len = keep; /* drop the word and pad with single-token words */
            text->data[keep] = '\0';
            break;
        }
    }
    for (int guard = 0; guard < 4 * T0; guard++) {
        const char *pad = text->len ? " a" : "a";
        if (pk_buf_append(text, pad, strlen(pad)) != PK_OK) return pk_errf(err, "out of memory building a prompt");
        free(*ids);
        *ids = NULL;
        if (tok_encode(tok, text->data, text->len, 0, ids, n_ids, err) != PK_OK) return PK_FAIL;
        if (*n_ids == T0) return PK_OK;
        if (*n_ids > T0) break;
    }
    return pk_errf(err, "cannot make a prompt of exactly %d tokens with this tokenizer", T0);
}

/* The JSONL training set: n_records plain prompts of T0 tokens; ids of the first B kept for the sampling timing. */
static int write_dataset(const Tokenizer *tok, const char *path, int T0, int n_records, int B, int **prompt_ids,
                         char *err) {
    PkBuf file = {0};
    int rc = PK_OK;
    for (int r = 0; r < n_records && rc == PK_OK; r++) {
        PkBuf text = {0};
        int *ids = NULL, n = 0;
        rc = make_prompt(tok, T0, r, &text, &ids, &n, err);
        if (rc == PK_OK) {
            /* the prompt holds letters, spaces and punctuation only: no JSON escaping needed */
            if (pk_buf_printf(&file, "{\"prompt\": \"%s\", \"response\": \"ok\"}\n", text.data) != PK_OK)
                rc = pk_errf(err, "out of memory writing the dataset");
        }
        if (rc == PK_OK && r < B) prompt_ids[r] = ids;
        else free(ids);
        pk_buf_free(&text);
    }
    if (rc == PK_OK) rc = pk_write_file_atomic(path, file.data, file.len, err);
    pk_buf_free(&file);
    return rc;
}

/* Seeded random weights, cheaply: matrices uniform with std 0.02 (the step's cost does not depend
 * on the values, and gpt2_init_random's normal draws take longer than the steps at 355M),
 * LayerNorm weights 1, biases 0. */
static void init_weights(GPT2 *m, unsigned long long seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    const float half_width = 0.02f * sqrtf(3.0f);
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        GPT2ParamInfo info;
        gpt2_param_info(&m->config, i, &info);
        float *p = m->params[i];
        size_t n = m->param_sizes[i];
        if (info.ndim == 1) {
            float v = strstr(info.name, "ln_") && strstr(info.name, "weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < n; j++) p[j] = v;
            continue;
        }
        for (size_t j = 0; j < n; j++) { /* xorshift64 */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p[j] = half_width * (2.0f * (float)(x >> 40) * (1.0f / 16777216.0f) - 1.0f);
        }
    }
}

static int make_model(const char *dir, int L, int C, int H, const Args *a, int eos, int pin_eos, unsigned long long seed,
                      char *err) {
    GPT2Config c = {.max_seq_len = a->positions, .vocab_size = a->vocab, .num_layers = L, .num_heads = H, .channels = C,
                    .n_inner = 4 * C, .layer_norm_eps = 1e-5f, .tied_lm_head = 1, .eos_token_id = eos,
                    .embd_pdrop = 0.1f, .attn_pdrop = 0.1f, .resid_pdrop = 0.1f};
    GPT2 m;
    memset(&m, 0, sizeof m);
    if (gpt2_config_validate(&c, dir, err) != PK_OK || gpt2_build(&m, &c, err) != PK_OK) return PK_FAIL;
    init_weights(&m, seed);
    if (pin_eos) { /* EOS logit = -50 at every position (see the top of this file) */
        m.params[14][0] = 0.0f;
        m.params[15][0] = 1.0f;
        float *row = m.params[0] + (size_t)eos * C;
        memset(row, 0, (size_t)C * sizeof(float));
        row[0] = -50.0f;
    }
    int rc = pk_mkdirs(dir, err) == PK_OK ? gpt2_save(&m, dir, err) : PK_FAIL;
    gpt2_free(&m);
    return rc;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(const double *v, int n) {
    double s[MAX_STEPS];
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static int run(const Args *a, const char *tmp, char *err) {
    Tokenizer *tok = NULL;
    DistillState *s = NULL;
    int *prompt_ids[MAX_STEPS] = {0};
    int *out_tokens = NULL, *out_lens = NULL;
    int rc = PK_FAIL;
    if (a->batch > MAX_STEPS) return pk_errf(err, "--batch: at most %d", MAX_STEPS);
    if (tok_load(&tok, a->tokenizer, err) != PK_OK) return PK_FAIL;
    int eos = tok_eos_id(tok);
    if (eos < 0 || eos >= a->vocab || tok_vocab_size(tok) > a->vocab) {
        pk_errf(err, "tokenizer %s: needs an <|endoftext|> token and at most --vocab %d tokens", a->tokenizer, a->vocab);
        goto done;
    }
    int T0 = a->prompt_tokens;
    if (a->prompt_tokens_from && median_prompt_tokens(a->prompt_tokens_from, tok, &T0, err) != PK_OK) goto done;
    if (a->print_prompt_tokens) {
        printf("%d\n", T0);
        rc = PK_OK;
        goto done;
    }
    if (T0 + a->prompt_len + a->new_tokens > a->positions) {
        pk_errf(err, "prompt %d + soft prompt %d + %d new tokens exceed %d positions", T0, a->prompt_len, a->new_tokens,
                a->positions);
        goto done;
    }
    RunConfig cfg;
    config_defaults(&cfg);
    char tok_dir[4096];
    if (!realpath(a->tokenizer, tok_dir) || strlen(tok_dir) >= sizeof cfg.tokenizer) {
        pk_errf(err, "%s: cannot resolve the tokenizer folder to a path under %d bytes", a->tokenizer, CONFIG_PATH_LEN);
        goto done;
    }
    memcpy(cfg.tokenizer, tok_dir, strlen(tok_dir) + 1);
    /* tmp is a short /tmp name: these fit */
    char *teacher = cfg.teacher, *student = cfg.student, *train = cfg.train_data;
    snprintf(teacher, CONFIG_PATH_LEN, "%s/teacher", tmp);
    snprintf(student, CONFIG_PATH_LEN, "%s/student", tmp);
    snprintf(train, CONFIG_PATH_LEN, "%s/train.jsonl", tmp);
    if (make_model(teacher, a->t_layers, a->t_embd, a->t_heads, a, eos, 0, (unsigned long long)a->seed + 1, err) ||
        make_model(student, a->s_layers, a->s_embd, a->s_heads, a, eos, 1, (unsigned long long)a->seed + 2, err))
        goto done;
    if (write_dataset(tok, train, T0, 4 * a->batch, a->batch, prompt_ids, err) != PK_OK) goto done;

    snprintf(cfg.method, sizeof cfg.method, "promptkd");
    cfg.seed = (unsigned long long)a->seed;
    cfg.batch_size = a->batch;
    cfg.max_new_tokens = a->new_tokens;
    cfg.prompt_len = a->prompt_len;
    cfg.threads = a->threads;
    if (distill_create(&s, &cfg, err) != PK_OK) goto done;

    double ms[MAX_STEPS], cpu_ms[MAX_STEPS], ms_sample[MAX_STEPS], gflop = 0;
    for (int i = 0; i < a->warmup + a->steps; i++) {
        DistillStepStats st;
        char what[32];
        snprintf(what, sizeof what, "step %d", i + 1);
        if (paced_turn(a, what, err) != PK_OK) goto done;
        double t0 = pk_now(), c0 = pk_cpu_seconds();
        if (distill_step(s, &st, err) != PK_OK) goto done;
        double dt = pk_now() - t0, dc = pk_cpu_seconds() - c0;
        if (st.response_tokens != a->batch * a->new_tokens) {
            pk_errf(err, "step %d trained on %d response positions, expected B x K = %d (fixed-length sampling)", i + 1,
                    st.response_tokens, a->batch * a->new_tokens);
            goto done;
        }
        if (st.nonfinite) {
            pk_errf(err, "step %d had a non-finite loss or gradient", i + 1);
            goto done;
        }
        if (i >= a->warmup) {
            ms[i - a->warmup] = dt * 1e3;
            cpu_ms[i - a->warmup] = dc * 1e3;
        }
        gflop = st.flops / 1e9;
        if (a->paced) {
            printf("{\"step\": %d, \"ms\": %.3f, \"cpu_ms\": %.3f}\n", i + 1, dt * 1e3, dc * 1e3);
            fflush(stdout);
        }
    }
    if (paced_turn(a, "the final turn", err) != PK_OK) goto done;
    /* the sampling phase alone: the same call the step makes, on the same prompts */
    SampleOptions o;
    sample_options_plain(&o, eos, a->new_tokens);
    int plens[MAX_STEPS];
    for (int b = 0; b < a->batch; b++) plens[b] = T0;
    if (!(out_tokens = pk_malloc((size_t)a->batch * a->new_tokens * sizeof(int), err))) goto done;
    if (!(out_lens = pk_malloc((size_t)a->batch * sizeof(int), err))) goto done;
    for (int i = 0; i < a->steps; i++) {
        double t0 = pk_now();
        if (sample_generate(distill_student(s), (const int *const *)prompt_ids, plens, a->batch, NULL, 0, &o,
                            (unsigned long long)a->seed + 100 + i, NULL, out_tokens, out_lens, err) != PK_OK)
            goto done;
        ms_sample[i] = (pk_now() - t0) * 1e3;
    }
    double med = median(ms, a->steps);
    printf("{\"impl\": \"promptkd\", \"ms_per_step\": %.3f, \"cpu_ms_per_step\": %.3f, \"ms_sampling\": %.3f, "
           "\"steps_ms\": [",
           med, median(cpu_ms, a->steps), median(ms_sample, a->steps));
    for (int i = 0; i < a->steps; i++) printf("%s%.1f", i ? ", " : "", ms[i]);
    printf("], \"prompt_tokens\": %d, \"response_tokens\": %d, \"threads\": %d, \"gflop_per_step\": %.2f, "
           "\"gflops\": %.1f}\n",
           T0, a->batch * a->new_tokens, pk_num_threads(), gflop, gflop / (med / 1e3));
    rc = PK_OK;
done:
    distill_free(s);
    tok_free(tok);
    for (int b = 0; b < MAX_STEPS; b++) free(prompt_ids[b]);
    free(out_tokens);
    free(out_lens);
    return rc;
}

int main(int argc, char **argv) {
    Args a = {.steps = 3, .warmup = 1, .seed = 1234};
    char err[PK_ERR_LEN];
    if (parse_args(&a, argc, argv, err) != PK_OK) {
        fprintf(stderr, "bench_promptkd: %s\n", err);
        return 2;
    }
    /* as promptkd's main does: the environment is read by the program, core takes it as settings */
    const char *env_threads = getenv("PROMPTKD_THREADS"), *env_gemm = getenv("PROMPTKD_GEMM");
    pk_threads_defaults(env_threads ? atoi(env_threads) : 0,
                        env_gemm && !strcmp(env_gemm, "blas") ? PK_GEMM_BLAS : PK_GEMM_POOL);
    pk_threads_init(a.threads);
    /* models go through a RAM-backed folder when there is one: the 355M teacher is 1.4 GB */
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s/bench_promptkd.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "bench_promptkd: cannot make a temp folder like %s\n", tmp);
        return 1;
    }
    err[0] = '\0';
    int rc = run(&a, tmp, err);
    pk_remove_tree(tmp);
    if (rc != PK_OK) {
        fprintf(stderr, "bench_promptkd: %s\n", err);
        return 1;
    }
    return 0;
}
