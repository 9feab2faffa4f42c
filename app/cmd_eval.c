/* promptkd eval: evaluation decoding of DESIGN.md section 4 on an instruction dataset, ROUGE-L
 * per seed, mean and population std over seeds.
 *
 * Decoding: sampling at temperature 1, top-k off, top-p 1, no_repeat_ngram_size 6, KV cache,
 * batched with left padding. Prompts (the Alpaca template) are truncated to their FIRST
 * --max-prompt-tokens tokens (256), as MiniLLM/PromptKD's evaluation does (prompt =
 * ids[:max_prompt_length]). When the model's n_positions cannot hold soft prompt + prompt limit
 * + new tokens (e.g. 128 positions), both are clipped: new tokens to min(N, (n_positions - P) / 2),
 * the prompt limit to what is left; the command says so. Generations are cut at EOS, decoded
 * (invalid UTF-8 bytes become U+FFFD) and stripped, then scored with ROUGE-L (max over the
 * references, x 100). Each row samples from its own RNG stream derived from (seed, record
 * index), so results do not depend on --batch. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "data.h"
#include "gpt2.h"
#include "model_io.h"
#include "neighbours.h"
#include "rouge.h"
#include "sample.h"
#include "tokenizer.h"

#define EVAL_USAGE                                                                                       \
    "promptkd eval --model DIR --tokenizer DIR --data FILE [--prompt PROMPT.safetensors | --prompt-init TEXT] " \
    "[--seeds 10,20,30,40,50] [--max-new-tokens 256] [--max-prompt-tokens 256] [--batch 8] [--limit N] " \
    "[--out FILE]"

#define EVAL_MAX_SEEDS 64

static int parse_seeds(const char *s, unsigned long long *seeds, int *n, char *err) {
    *n = 0;
    const char *p = s;
    for (;;) {
        if (*p < '0' || *p > '9') break;
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p) break;
        if (*n >= EVAL_MAX_SEEDS) return pk_errf(err, "--seeds: at most %d seeds", EVAL_MAX_SEEDS);
        seeds[(*n)++] = v;
        if (*end == 0) return PK_OK;
        if (*end != ',') break;
        p = end + 1;
    }
    return pk_errf(err, "--seeds expects comma-separated non-negative integers such as 10,20,30,40,50, got '%s'", s);
}

typedef struct {
    int rec;     /* index into the dataset */
    int *ids;    /* truncated prompt */
    int n;
    int truncated;
} EvalPrompt;

static int by_length(const void *a, const void *b) {
    const EvalPrompt *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static int append_line(PkBuf *out, unsigned long long seed, int index, const DataRecord *r, const char *pred,
                       double score) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return PK_FAIL;
    cJSON_AddNumberToObject(o, "seed", (double)seed);
    cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddNumberToObject(o, "line", r->line);
    cJSON_AddStringToObject(o, "instruction", r->instruction);
    cJSON_AddStringToObject(o, "input", r->input);
    cJSON_AddStringToObject(o, "prediction", pred);
    cJSON *refs = cJSON_AddArrayToObject(o, "references");
    for (int i = 0; refs && i < r->n_refs; i++) cJSON_AddItemToArray(refs, cJSON_CreateString(r->refs[i]));
    cJSON_AddNumberToObject(o, "rougeL", score);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return PK_FAIL;
    int rc = pk_buf_append(out, s, strlen(s)) || pk_buf_append(out, "\n", 1) ? PK_FAIL : PK_OK;
    free(s);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *tok_dir = NULL, *data_path = NULL, *prompt_path = NULL, *out_path = NULL;
    const char *seeds_arg = "10,20,30,40,50", *prompt_init = NULL;
    int max_new = 256, max_prompt = 256, batch = 8, limit = 0, prompt_len = 7;
    Opt opts[] = {
        {"model", OPT_STR, &model_dir, "Hugging Face GPT-2 folder", 1},
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json and merges.txt", 1},
        {"data", OPT_STR, &data_path, "Dolly / Alpaca / Self-Instruct / plain JSONL", 1},
        {"prompt", OPT_STR, &prompt_path, "soft prompt \"prompt\" [P, C]: evaluate the prompted teacher T'", 0},
        {"prompt-init", OPT_STR, &prompt_init,
         "evaluate T' with the untrained soft prompt PromptKD starts from: the model's word embeddings of this text's "
         "tokens, cycled or cut to --prompt-len vectors",
         0},
        {"prompt-len", OPT_INT, &prompt_len, "soft-prompt vectors for --prompt-init (7)", 0},
        {"seeds", OPT_STR, &seeds_arg, "comma-separated sampling seeds (10,20,30,40,50)", 0},
        {"max-new-tokens", OPT_INT, &max_new, "new tokens per answer (256)", 0},
        {"max-prompt-tokens", OPT_INT, &max_prompt, "prompts keep their first N tokens (256)", 0},
        {"batch", OPT_INT, &batch, "rows decoded together (8); results do not depend on it", 0},
        {"limit", OPT_INT, &limit, "only the first N records (0: all)", 0},
        {"out", OPT_STR, &out_path, "write every generation with its score as JSONL (atomically)", 0},
    };
    int rc = cli_parse(EVAL_USAGE, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return 2;

    char err[PK_ERR_LEN];
    unsigned long long seeds[EVAL_MAX_SEEDS];
    int n_seeds = 0;
    if (parse_seeds(seeds_arg, seeds, &n_seeds, err)) {
        cli_fail("eval", err);
        return 2;
    }
    if (max_new < 1 || max_prompt < 1 || batch < 1 || limit < 0) {
        cli_fail("eval", "--max-new-tokens, --max-prompt-tokens and --batch must be >= 1, --limit >= 0");
        return 2;
    }
    if (prompt_path && prompt_init) {
        cli_fail("eval", "give either --prompt FILE or --prompt-init TEXT, not both");
        return 2;
    }
    if (prompt_len < 1 || prompt_len > 4096) {
        cli_fail("eval", "--prompt-len must be between 1 and 4096");
        return 2;
    }
    if (out_path && cli_check_output("eval", "out", out_path)) return 2;

    GPT2 m;
    memset(&m, 0, sizeof m);
    Tokenizer *tok = NULL;
    Dataset d;
    memset(&d, 0, sizeof d);
    float *soft = NULL;
    EvalPrompt *ep = NULL;
    int n_ex = 0, P = 0, status = 1;
    PkBuf lines = {0};
    int *out_tokens = NULL, *out_lens = NULL;
    const int **rows = NULL;
    int *row_lens = NULL;
    long *row_index = NULL;
    double *seed_scores = NULL;

    if (model_load_with_tokenizer("eval", model_dir, &m, tok_dir, &tok, prompt_path, &soft, &P)) goto done;
    if (data_load(&d, data_path, 0, err)) {
        cli_fail("eval", err);
        goto done;
    }
    const GPT2Config *cfg = &m.config;
    if (prompt_init) {
        char e2[PK_ERR_LEN];
        P = prompt_len;
        if (!(soft = malloc((size_t)P * cfg->channels * sizeof *soft))) {
            cli_fail("eval", "out of memory");
            goto done;
        }
        if (prompt_init_from_text(tok, m.params[0], cfg->vocab_size, cfg->channels, prompt_init, P, soft, NULL, e2)) {
            char msg[PK_ERR_LEN + 32];
            snprintf(msg, sizeof msg, "--prompt-init: %s", e2);
            cli_fail("eval", msg);
            goto done;
        }
    }
    int avail = cfg->max_seq_len - P;
    if (avail < 2) {
        snprintf(err, sizeof err, "the soft prompt of %d vectors leaves no room in the model's %d positions", P,
                 cfg->max_seq_len);
        cli_fail("eval", err);
        goto done;
    }
    if ((long)max_prompt + max_new > avail) {
        int nn = max_new < avail / 2 ? max_new : avail / 2;
        int np = max_prompt < avail - nn ? max_prompt : avail - nn;
        fprintf(stderr,
                "promptkd eval: note: the model has %d positions%s; prompts keep their first %d tokens and answers "
                "get at most %d new tokens (asked: %d and %d)\n",
                cfg->max_seq_len, P ? " including the soft prompt" : "", np, nn, max_prompt, max_new);
        max_new = nn;
        max_prompt = np;
    }
    int eos = tok_eos_id(tok) >= 0 ? tok_eos_id(tok) : cfg->eos_token_id;

    n_ex = limit > 0 && limit < d.n ? limit : d.n;
    if (batch > n_ex) batch = n_ex; /* the buffers below are sized by it */
    ep = calloc((size_t)n_ex, sizeof *ep);
    out_tokens = malloc((size_t)batch * max_new * sizeof(int));
    out_lens = malloc((size_t)batch * sizeof(int));
    rows = malloc((size_t)batch * sizeof(int *));
    row_lens = malloc((size_t)batch * sizeof(int));
    row_index = malloc((size_t)batch * sizeof(long));
    seed_scores = calloc((size_t)n_seeds, sizeof(double));
    if (!ep || !out_tokens || !out_lens || !rows || !row_lens || !row_index || !seed_scores) {
        cli_fail("eval", "out of memory");
        goto done;
    }
    int n_truncated = 0;
    for (int i = 0; i < n_ex; i++) {
        const char *pt = d.recs[i].prompt;
        ep[i].rec = i;
        if (tok_encode(tok, pt, strlen(pt), 0, &ep[i].ids, &ep[i].n, err)) {
            char msg[PK_ERR_LEN + 64];
            snprintf(msg, sizeof msg, "%s:%d: %s", data_path, d.recs[i].line, err);
            cli_fail("eval", msg);
            goto done;
        }
        if (ep[i].n > max_prompt) {
            ep[i].n = max_prompt;
            ep[i].truncated = 1;
            n_truncated++;
        }
    }
    /* similar lengths together: less left padding; outputs do not depend on the grouping */
    qsort(ep, (size_t)n_ex, sizeof *ep, by_length);
    printf("eval: %d records of %s, %d prompts truncated to %d tokens, up to %d new tokens, %s\n", n_ex, data_path,
           n_truncated, max_prompt, max_new, P ? "prompted teacher (soft prompt)" : "model");
    fflush(stdout);

    SampleOptions so;
    sample_options_eval(&so, eos);
    so.max_new_tokens = max_new;
    for (int s = 0; s < n_seeds; s++) {
        double t0 = pk_now(), sum = 0.0;
        for (int b0 = 0; b0 < n_ex; b0 += batch) {
            int B = n_ex - b0 < batch ? n_ex - b0 : batch;
            for (int b = 0; b < B; b++) {
                rows[b] = ep[b0 + b].ids;
                row_lens[b] = ep[b0 + b].n;
                row_index[b] = ep[b0 + b].rec;
            }
            if (sample_generate(&m, rows, row_lens, B, soft, P, &so, seeds[s], row_index, out_tokens, out_lens, err)) {
                cli_fail("eval", err);
                goto done;
            }
            for (int b = 0; b < B; b++) {
                const DataRecord *r = &d.recs[ep[b0 + b].rec];
                char *pred = NULL;
                if (sample_decode_text(tok, out_tokens + (size_t)b * max_new, out_lens[b], eos, 1, &pred, err)) {
                    cli_fail("eval", err);
                    goto done;
                }
                double score = rouge_l_max_x100(pred, (const char *const *)r->refs, r->n_refs);
                sum += score;
                int bad = out_path && append_line(&lines, seeds[s], ep[b0 + b].rec, r, pred, score);
                free(pred);
                if (bad) {
                    cli_fail("eval", "out of memory while building the output lines");
                    goto done;
                }
            }
        }
        seed_scores[s] = sum / n_ex;
        printf("seed %llu: ROUGE-L %.4f over %d records (%.1f s)\n", seeds[s], seed_scores[s], n_ex, pk_now() - t0);
        fflush(stdout);
    }
    double mean = 0.0, var = 0.0;
    for (int s = 0; s < n_seeds; s++) mean += seed_scores[s];
    mean /= n_seeds;
    for (int s = 0; s < n_seeds; s++) var += (seed_scores[s] - mean) * (seed_scores[s] - mean);
    var /= n_seeds;
    if (out_path && pk_write_file_atomic(out_path, lines.data ? lines.data : "", lines.len, err)) {
        cli_fail("eval", err);
        goto done;
    }
    printf("ROUGE-L: %.4f +- %.4f (mean and population std over %d seed%s)\n", mean, sqrt(var), n_seeds,
           n_seeds == 1 ? "" : "s");
    if (out_path) printf("wrote %s\n", out_path);
    status = 0;
done:
    if (ep)
        for (int i = 0; i < n_ex; i++) free(ep[i].ids);
    free(ep);
    free(out_tokens);
    free(out_lens);
    free(rows);
    free(row_lens);
    free(row_index);
    free(seed_scores);
    pk_buf_free(&lines);
    free(soft);
    data_free(&d);
    tok_free(tok);
    gpt2_free(&m);
    return status;
}
