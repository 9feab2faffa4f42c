/* promptkd bench train|decode: timing of training steps (forward, backward,
 * AdamW) and of KV-cache decoding on a seeded random GPT-2, one JSON line out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "gpt2.h"
#include "kernels.h"
#include "optim.h"
#include "parallel.h"
#include "stats.h"

/* Median, leaving out the first run (it pays for first-touch allocation) when there are enough;
 * sorts v in place. */
static double median_of(double *v, int n) {
    if (n > 2) v++, n--;
    return stats_median(v, n);
}

static double median_ms(double *v, int n) { return 1e3 * median_of(v, n); }

/* GFLOP/s of a square n x n x n sgemm through the same threading path the model
 * uses. The training benchmark runs one right after every step, so each step's MFU
 * compares it with the machine of that moment: on a shared host the speed of both
 * moves by up to 2x within a minute. */
typedef struct {
    int n;
    float *a, *b, *c;
} SgemmProbe;

static int sgemm_probe_init(SgemmProbe *p, int n, char *err) {
    p->n = n;
    p->a = pk_malloc((size_t)n * n * sizeof(float), err);
    p->b = p->a ? pk_malloc((size_t)n * n * sizeof(float), err) : NULL;
    p->c = p->b ? pk_calloc((size_t)n * n, sizeof(float), err) : NULL;
    if (!p->c) {
        free(p->a), free(p->b);
        return PK_FAIL;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) p->a[i] = (float)(i % 7) * 0.01f, p->b[i] = (float)(i % 5) * 0.01f;
    return PK_OK;
}

static double sgemm_probe_gflops(SgemmProbe *p) {
    int n = p->n;
    double t0 = pk_now();
    pk_sgemm(0, 0, n, n, n, 1.0f, p->a, n, p->b, n, 0.0f, p->c, n);
    return 2.0 * n * n * (double)n / (pk_now() - t0) / 1e9;
}

static void sgemm_probe_free(SgemmProbe *p) { free(p->a), free(p->b), free(p->c); }

typedef struct {
    int layers, embd, heads, vocab, batch, seq, steps, threads, prompt_len, new_tokens;
    const char *gemm;
    int paced;
} BenchArgs;

/* --paced: another program (tests/bench/paired.py) takes turns with this one, so
 * that both run their steps in the same minutes of a machine whose speed drifts.
 * Each turn starts when a line arrives on stdin; each step ends with a JSON line
 * on stdout. Returns PK_FAIL when stdin ends first. */
static int paced_turn(const char *what, int index, char *err) {
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return pk_errf(err, "--paced: standard input ended before %s %d (the pacing program stopped)", what, index);
    return PK_OK;
}

static int make_model(GPT2 *m, const BenchArgs *a, int T, char *err) {
    GPT2Config cfg = {.max_seq_len = T > 1024 ? T : 1024,
                      .vocab_size = a->vocab,
                      .num_layers = a->layers,
                      .num_heads = a->heads,
                      .channels = a->embd,
                      .n_inner = 4 * a->embd,
                      .layer_norm_eps = 1e-5f,
                      .tied_lm_head = 1,
                      .eos_token_id = a->vocab - 1,
                      .embd_pdrop = 0.1f,
                      .attn_pdrop = 0.1f,
                      .resid_pdrop = 0.1f};
    if (gpt2_build(m, &cfg, err)) return PK_FAIL;
    gpt2_init_random(m, 1);
    return PK_OK;
}

static int bench_train(const BenchArgs *a, char *err) {
    GPT2 m;
    if (make_model(&m, a, a->seq, err)) return PK_FAIL;
    int B = a->batch, T = a->seq, V = a->vocab, N = a->steps;
    int *tokens = malloc(((size_t)B * T + 1) * sizeof(int)), *targets = malloc((size_t)B * T * sizeof(int));
    float *dlogits = malloc((size_t)B * T * V * sizeof(float));
    float *dembed = malloc((size_t)B * T * a->embd * sizeof(float));
    double *step = malloc((size_t)(N + 2) * 9 * sizeof(double));
    SgemmProbe probe = {0};
    if (!tokens || !targets || !dlogits || !dembed || !step || sgemm_probe_init(&probe, 2048, err)) {
        free(tokens), free(targets), free(dlogits), free(dembed), free(step);
        gpt2_free(&m);
        return pk_errf(err, "out of memory for a batch of %d x %d over %d tokens", B, T, V);
    }
    double *fwd = step + (N + 2), *bwd = step + 2 * (N + 2), *opt = step + 3 * (N + 2), *inp = step + 4 * (N + 2);
    double *cpu = step + 5 * (N + 2); /* CPU seconds of the step's three phases, all threads */
    double *peak = step + 6 * (N + 2), *mfu = step + 7 * (N + 2); /* each step's probe and MFU */
    double *inp_ratio = step + 8 * (N + 2); /* input-only over full backward, the same step's two */
    double flops = gpt2_train_flops(&m.config, B, T);
    sgemm_probe_gflops(&probe); /* warm-up */
    PkRng rng;
    pk_rng_seed(&rng, 1);
    for (int i = 0; i < B * T + 1; i++) tokens[i] = (int)pk_rng_below(&rng, (uint64_t)V);
    for (int i = 0; i < B * T; i++) targets[i] = tokens[i + 1];
    AdamWParams hp = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f};
    float loss = 0.0f;
    int rc = PK_OK;
    /* Each step also times the frozen-model path (only d(input embeddings)) on the
     * same forward, right before the full backward, so both medians come from the
     * same stretch of time on a machine whose load changes. */
    for (int s = 0; s < N && rc == PK_OK; s++) {
        if (a->paced && (rc = paced_turn("step", s + 1, err))) break;
        double t0 = pk_now(), c0 = pk_cpu_seconds();
        rc = gpt2_forward(&m, tokens, NULL, 0, NULL, B, T, err);
        if (rc) break;
        loss = gpt2_cross_entropy(&m, targets, dlogits);
        double t1 = pk_now(), c1 = pk_cpu_seconds();
        memset(dembed, 0, (size_t)B * T * a->embd * sizeof(float));
        double ti = pk_now();
        rc = gpt2_backward_inputs_only(&m, dlogits, NULL, dembed, err);
        inp[s] = pk_now() - ti;
        if (rc) break;
        double t2 = pk_now(), c2 = pk_cpu_seconds();
        gpt2_zero_grad(&m);
        rc = gpt2_backward(&m, dlogits, NULL, err);
        double t3 = pk_now();
        if (!rc) rc = gpt2_adamw_step(&m, &hp, s + 1, err);
        double t4 = pk_now(), c4 = pk_cpu_seconds();
        fwd[s] = t1 - t0, bwd[s] = t3 - t2, opt[s] = t4 - t3;
        cpu[s] = (c1 - c0) + (c4 - c2);
        step[s] = fwd[s] + bwd[s] + opt[s];
        inp_ratio[s] = inp[s] / bwd[s];
        peak[s] = sgemm_probe_gflops(&probe);
        mfu[s] = flops / step[s] / 1e9 / peak[s];
        if (a->paced && rc == PK_OK) {
            printf("{\"step\": %d, \"ms\": %.4f, \"cpu_ms\": %.4f, \"sgemm_gflops\": %.2f, \"mfu\": %.6f}\n", s + 1,
                   step[s] * 1e3, cpu[s] * 1e3, peak[s], mfu[s]);
            fflush(stdout);
        }
    }
    if (rc == PK_OK && a->paced) rc = paced_turn("the final turn after step", N, err);
    if (rc == PK_OK) {
        double ms = median_ms(step, N);
        double gflops = flops / (ms * 1e-3) / 1e9;
        printf("{\"impl\": \"promptkd\", \"mode\": \"train\", \"layers\": %d, \"embd\": %d, \"heads\": %d, "
               "\"vocab\": %d, \"batch\": %d, \"seq\": %d, \"steps\": %d, \"threads\": %d, \"gemm\": \"%s\", "
               "\"params\": %zu, \"ms_per_step\": %.2f, \"tokens_per_s\": %.1f, \"gflops\": %.2f, "
               "\"sgemm_peak_gflops\": %.2f, \"mfu\": %.4f, \"ms_forward\": %.2f, \"ms_backward\": %.2f, "
               "\"ms_backward_inputs_only\": %.2f, \"backward_inputs_only_ratio\": %.4f, \"ms_adamw\": %.2f, "
               "\"cpu_ms_per_step\": %.2f, \"loss\": %.5f}\n",
               a->layers, a->embd, a->heads, a->vocab, B, T, N, pk_num_threads(),
               pk_gemm_mode() == PK_GEMM_BLAS ? "blas" : "pool", m.num_parameters, ms, B * T / (ms * 1e-3), gflops,
               median_of(peak, N), median_of(mfu, N), median_ms(fwd, N), median_ms(bwd, N),
               median_ms(inp, N), median_of(inp_ratio, N), median_ms(opt, N), median_ms(cpu, N), loss);
    }
    sgemm_probe_free(&probe);
    free(tokens), free(targets), free(dlogits), free(dembed), free(step);
    gpt2_free(&m);
    return rc;
}

static int bench_decode(const BenchArgs *a, char *err) {
    GPT2 m;
    int B = a->batch, T0 = a->prompt_len, N = a->new_tokens, V = a->vocab;
    if (make_model(&m, a, T0 + N, err)) return PK_FAIL;
    GPT2KVCache *cache = NULL;
    int *tokens = malloc((size_t)B * T0 * sizeof(int)), *next = malloc((size_t)B * sizeof(int));
    if (!tokens || !next || gpt2_kv_create(&m, B, T0 + N, &cache, err)) {
        free(tokens), free(next);
        gpt2_free(&m);
        return err[0] ? PK_FAIL : pk_errf(err, "out of memory");
    }
    PkRng rng;
    pk_rng_seed(&rng, 1);
    for (int i = 0; i < B * T0; i++) tokens[i] = (int)pk_rng_below(&rng, (uint64_t)V);
    double best_tps = 0.0, best_prefill = 0.0;
    int rc = PK_OK;
    for (int r = 0; r < 2 && rc == PK_OK; r++) {
        const float *logits;
        double t0 = pk_now();
        rc = gpt2_kv_prefill(cache, tokens, NULL, 0, NULL, T0, &logits, err);
        double t1 = pk_now();
        for (int i = 0; i + 1 < N && rc == PK_OK; i++) {
            for (int b = 0; b < B; b++) { /* greedy */
                const float *l = logits + (size_t)b * V;
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (l[v] > l[best]) best = v;
                next[b] = best;
            }
            rc = gpt2_kv_step(cache, next, &logits, err);
        }
        double t2 = pk_now();
        double tps = N > 1 ? B * (N - 1) / (t2 - t1) : 0.0;
        if (tps > best_tps) best_tps = tps, best_prefill = (t1 - t0) * 1e3;
    }
    if (rc == PK_OK)
        printf("{\"impl\": \"promptkd\", \"mode\": \"decode\", \"layers\": %d, \"embd\": %d, \"heads\": %d, "
               "\"vocab\": %d, \"batch\": %d, \"prompt_len\": %d, \"new_tokens\": %d, \"threads\": %d, "
               "\"gemm\": \"%s\", \"ms_prefill\": %.2f, \"tokens_per_s\": %.2f}\n",
               a->layers, a->embd, a->heads, V, B, T0, N, pk_num_threads(),
               pk_gemm_mode() == PK_GEMM_BLAS ? "blas" : "pool", best_prefill, best_tps);
    gpt2_kv_free(cache);
    free(tokens), free(next);
    gpt2_free(&m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    BenchArgs a = {12, 768, 12, 50257, 4, 64, 5, 0, 64, 64, NULL, 0};
    Opt opts[] = {
        {"layers", OPT_INT, &a.layers, "transformer blocks", 0},
        {"embd", OPT_INT, &a.embd, "channels", 0},
        {"heads", OPT_INT, &a.heads, "attention heads", 0},
        {"vocab", OPT_INT, &a.vocab, "vocabulary size", 0},
        {"batch", OPT_INT, &a.batch, "rows per batch", 0},
        {"seq", OPT_INT, &a.seq, "train: tokens per row", 0},
        {"steps", OPT_INT, &a.steps, "train: timed steps", 0},
        {"prompt-len", OPT_INT, &a.prompt_len, "decode: prompt tokens per row", 0},
        {"new-tokens", OPT_INT, &a.new_tokens, "decode: generated tokens per row", 0},
        {"threads", OPT_INT, &a.threads, "threads (default: PROMPTKD_THREADS or all cores)", 0},
        {"gemm", OPT_STR, &a.gemm, "pool (split GEMMs over the pool) or blas (OpenBLAS threads)", 0},
        {"paced", OPT_FLAG, &a.paced, "train: wait for a line on stdin before each step, print one after", 0},
    };
    const char *usage = "promptkd bench train|decode [--layers L --embd C --heads H --vocab V --batch B --seq T "
                        "--steps N [--paced] | --prompt-len T0 --new-tokens N] [--threads K]";
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(usage, argc, argv, opts, (int)(sizeof opts / sizeof *opts), pos, 1, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    if (npos != 1 || (strcmp(pos[0], "train") && strcmp(pos[0], "decode"))) {
        fprintf(stderr, "promptkd bench: expected 'train' or 'decode' (usage: %s)\n", usage);
        return 2;
    }
    int is_train = !strcmp(pos[0], "train");
    char err[PK_ERR_LEN];
    if (a.layers < 1 || a.embd < 1 || a.heads < 1 || a.embd % a.heads || a.vocab < 2 || a.batch < 1 || a.seq < 1 ||
        a.steps < 1 || a.prompt_len < 1 || a.new_tokens < 1 || a.threads < 0) {
        snprintf(err, sizeof err,
                 "every size must be positive and --embd (%d) a multiple of --heads (%d)", a.embd, a.heads);
        return cli_fail("bench", err);
    }
    if (a.paced && !is_train) return cli_fail("bench", "--paced applies to 'bench train' only");
    if (a.gemm && strcmp(a.gemm, "pool") && strcmp(a.gemm, "blas"))
        return cli_fail("bench", "--gemm expects 'pool' or 'blas'");
    pk_threads_init(a.threads);
    if (a.gemm) pk_gemm_set_mode(!strcmp(a.gemm, "blas") ? PK_GEMM_BLAS : PK_GEMM_POOL);
    err[0] = 0;
    rc = is_train ? bench_train(&a, err) : bench_decode(&a, err);
    if (rc) return cli_fail("bench", err);
    return 0;
}
