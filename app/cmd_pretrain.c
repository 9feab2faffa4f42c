/* promptkd pretrain: trains a GPT-2 as a language model on packed text, as GPT-2 itself was made:
 * the documents of a {"text"} JSONL corpus are concatenated with EOS after each, and every step
 * trains on B windows of the model's full context that start at offsets drawn uniformly from the
 * whole stream, so no position is special (a document, or the prompt template, can begin anywhere
 * in a window). The last --valid-tokens tokens of the stream are held out and measured as
 * non-overlapping windows. Learning rate: linear warm-up, then a half cosine down to 0. The best
 * held-out loss is kept, written atomically as a Hugging Face folder. */
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
#include "optim.h"
#include "parallel.h"
#include "tokenizer.h"

/* Mean next-token loss over the held-out tail [start, n) in non-overlapping windows of T + 1. */
static int heldout_loss(GPT2 *m, const int *ids, size_t start, size_t n, int B, int T, int *tokens, int *targets,
                        double *loss, char *err) {
    double sum = 0;
    long windows = 0;
    size_t pos = start;
    while (pos + (size_t)T + 1 <= n) {
        int b = 0;
        for (; b < B && pos + (size_t)T + 1 <= n; b++, pos += (size_t)T) {
            memcpy(tokens + (size_t)b * T, ids + pos, (size_t)T * sizeof *ids);
            memcpy(targets + (size_t)b * T, ids + pos + 1, (size_t)T * sizeof *ids);
        }
        if (gpt2_forward(m, tokens, NULL, 0, NULL, b, T, err) != PK_OK) return PK_FAIL;
        sum += (double)gpt2_cross_entropy(m, targets, NULL) * b;
        windows += b;
    }
    *loss = windows ? sum / windows : NAN;
    return PK_OK;
}

int cmd_pretrain(int argc, char **argv) {
    const char *model = NULL, *init = NULL, *init_config = NULL, *tok_dir = NULL, *data = NULL, *out = NULL;
    int steps = 1000, batch = 16, seq = 0, warmup = -1, eval_interval = 0, valid_tokens = -1, threads = 0;
    float lr = 1e-3f, wd = 0.01f, clip = 1.0f, dropout = 0.0f;
    unsigned long long seed = 1;
    const Opt opts[] = {
        {"model", OPT_STR, &model, "Hugging Face GPT-2 folder to continue from", 0},
        {"init", OPT_STR, &init, "random init instead: layers=L,embd=C,heads=H[,positions=N][,inner=F]", 0},
        {"init-config", OPT_STR, &init_config, "random init of the architecture in this HF config.json", 0},
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json + merges.txt", 1},
        {"data", OPT_STR, &data, "corpus: JSONL, one {\"text\": document} per line", 1},
        {"out", OPT_STR, &out,
         "output HF folder, written atomically; an existing folder is replaced only when it holds nothing but "
         PK_MODEL_FOLDER_FILES, 1},
        {"steps", OPT_INT, &steps, "optimizer steps (default 1000)", 0},
        {"batch", OPT_INT, &batch, "windows per step (default 16)", 0},
        {"seq", OPT_INT, &seq, "tokens per window (default: the model's n_positions)", 0},
        {"lr", OPT_FLOAT, &lr, "peak learning rate (default 1e-3)", 0},
        {"warmup", OPT_INT, &warmup, "warm-up steps, then a half cosine to 0 (default min(200, steps/10))", 0},
        {"weight-decay", OPT_FLOAT, &wd, "AdamW weight decay (default 0.01)", 0},
        {"clip", OPT_FLOAT, &clip, "global gradient-norm clip (default 1.0)", 0},
        {"dropout", OPT_FLOAT, &dropout, "dropout on embeddings, attention and residuals while training (default 0)",
         0},
        {"seed", OPT_U64, &seed, "seed of the init, the window offsets and the dropout masks (default 1)", 0},
        {"valid-tokens", OPT_INT, &valid_tokens, "tokens at the end of the stream held out (default 1%, at most 200000)",
         0},
        {"eval-interval", OPT_INT, &eval_interval, "steps between held-out evaluations (default steps/10)", 0},
        {"threads", OPT_INT, &threads, "threads (default: PROMPTKD_THREADS or all cores)", 0},
    };
    int rc = cli_parse("promptkd pretrain (--model DIR | --init SPEC | --init-config FILE) --tokenizer DIR --data FILE "
                       "--out DIR [--steps N] [--batch B] [--seq T] [--lr X] [--seed S]",
                       argc, argv, opts, (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return rc;
    char err[PK_ERR_LEN], msg[PK_ERR_LEN + 160];
    if ((model != NULL) + (init != NULL) + (init_config != NULL) != 1)
        return cli_fail("pretrain", "give exactly one of --model DIR, --init SPEC or --init-config FILE");
    if (steps < 1) return cli_fail("pretrain", "--steps must be at least 1");
    if (batch < 1) return cli_fail("pretrain", "--batch must be at least 1");
    if (seq < 0) return cli_fail("pretrain", "--seq must be at least 2 (or 0 for the model's n_positions)");
    if (!(lr > 0) || !isfinite(lr)) return cli_fail("pretrain", "--lr must be a number > 0");
    if (!(dropout >= 0 && dropout < 1)) return cli_fail("pretrain", "--dropout must be in [0, 1)");
    if (!out[0]) return cli_fail("pretrain", "--out must name a folder, got an empty string");
    /* refused now, not after the training: a folder of other files, or a run folder's own parts */
    if (model_folder_check_target(out, err) != PK_OK) return cli_fail("pretrain", err);
    if (warmup < 0) warmup = steps / 10 < 200 ? steps / 10 : 200;
    if (eval_interval <= 0) eval_interval = steps / 10 > 0 ? steps / 10 : 1;
    pk_threads_init(threads);

    Tokenizer *tok = NULL;
    if (tok_load(&tok, tok_dir, err) != PK_OK) return cli_fail("pretrain", err);
    int V = tok_vocab_size(tok), eos = tok_eos_id(tok);
    GPT2 m;
    memset(&m, 0, sizeof m);
    int status = 0, *ids = NULL, *tokens = NULL, *targets = NULL, n_docs = 0;
    float *dlogits = NULL;
    size_t n_ids = 0;
    if (model) {
        if (gpt2_load(&m, model, err) != PK_OK) {
            status = cli_fail("pretrain", err);
            goto done;
        }
    } else {
        GPT2Config g;
        if (init ? model_parse_init(init, V, eos < 0 ? V - 1 : eos, &g, err)
                 : gpt2_config_load(&g, init_config, err)) {
            status = cli_fail("pretrain", err);
            goto done;
        }
        if (gpt2_build(&m, &g, err) != PK_OK) {
            status = cli_fail("pretrain", err);
            goto done;
        }
        gpt2_init_random(&m, seed);
    }
    const GPT2Config *g = &m.config;
    if (cli_check_vocab("pretrain", model ? model : init ? "--init" : init_config, g->vocab_size, tok_dir, V)) {
        status = 1;
        goto done;
    }
    if (seq == 0) seq = g->max_seq_len;
    if (seq < 2 || seq > g->max_seq_len) {
        snprintf(msg, sizeof msg, "--seq must be between 2 and the model's n_positions %d, got %d", g->max_seq_len, seq);
        status = cli_fail("pretrain", msg);
        goto done;
    }
    if (data_load_corpus(data, tok, &ids, &n_ids, &n_docs, err) != PK_OK) {
        status = cli_fail("pretrain", err);
        goto done;
    }
    size_t held = valid_tokens >= 0 ? (size_t)valid_tokens : (n_ids / 100 < 200000 ? n_ids / 100 : 200000);
    if (held > 0 && held < (size_t)seq + 1) held = (size_t)seq + 1;
    if (n_ids < held + (size_t)seq + 1) {
        snprintf(msg, sizeof msg,
                 "%s: %zu tokens are too few for windows of %d tokens plus %zu held-out tokens; give a larger corpus, "
                 "a smaller --seq or --valid-tokens",
                 data, n_ids, seq, held);
        status = cli_fail("pretrain", msg);
        goto done;
    }
    size_t train_end = n_ids - held, n_offsets = train_end - (size_t)seq; /* a window needs T + 1 tokens */
    tokens = pk_malloc((size_t)batch * seq * sizeof *tokens, err);
    targets = tokens ? pk_malloc((size_t)batch * seq * sizeof *targets, err) : NULL;
    dlogits = targets ? pk_malloc((size_t)batch * seq * V * sizeof *dlogits, err) : NULL;
    if (!dlogits) {
        status = cli_fail("pretrain", err);
        goto done;
    }
    gpt2_set_dropout(&m, dropout, dropout, dropout);
    fprintf(stderr,
            "pretrain: L=%d C=%d H=%d V=%d positions=%d, %zu parameters; %s: %d documents, %zu tokens (%zu held out); "
            "%d steps of %d x %d tokens = %.2f passes\n",
            g->num_layers, g->channels, g->num_heads, g->vocab_size, g->max_seq_len, m.num_parameters, data, n_docs,
            n_ids, held, steps, batch, seq, (double)steps * batch * seq / (double)train_end);

    PkRng rng;
    pk_rng_seed(&rng, seed ^ 0x70726574726169ULL);
    double best = INFINITY, t0 = pk_now(), loss_ema = NAN;
    int best_step = 0;
    for (int step = 1; step <= steps; step++) {
        for (int b = 0; b < batch; b++) {
            size_t off = (size_t)pk_rng_below(&rng, (uint64_t)n_offsets + 1);
            memcpy(tokens + (size_t)b * seq, ids + off, (size_t)seq * sizeof *ids);
            memcpy(targets + (size_t)b * seq, ids + off + 1, (size_t)seq * sizeof *ids);
        }
        gpt2_train_mode(&m, dropout > 0, pk_rng_u64(&rng));
        int fail = gpt2_forward(&m, tokens, NULL, 0, NULL, batch, seq, err) != PK_OK;
        float loss = fail ? NAN : gpt2_cross_entropy(&m, targets, dlogits);
        gpt2_train_mode(&m, 0, 0);
        if (!fail) fail = gpt2_backward(&m, dlogits, NULL, err) != PK_OK;
        if (fail) {
            status = cli_fail("pretrain", err);
            goto done;
        }
        float norm = grad_clip_global_norm(m.grads_memory, m.num_parameters, clip);
        if (!isfinite(loss) || !isfinite(norm)) {
            snprintf(msg, sizeof msg, "step %d: the loss or gradient is not finite (loss %g); try a lower --lr", step,
                     loss);
            status = cli_fail("pretrain", msg);
            goto done;
        }
        AdamWParams hp = {lr_schedule(step, warmup, lr, steps, 1), 0.9f, 0.999f, 1e-8f, wd};
        if (gpt2_adamw_step(&m, &hp, step, err) != PK_OK) {
            status = cli_fail("pretrain", err);
            goto done;
        }
        loss_ema = isnan(loss_ema) ? loss : 0.95 * loss_ema + 0.05 * loss;
        int eval_now = step % eval_interval == 0 || step == steps;
        if (step % 10 == 0 || eval_now) {
            double el = pk_now() - t0;
            fprintf(stderr, "step %d/%d  loss %.4f (avg %.4f)  lr %.2e  %.0f tok/s  %.0fs\n", step, steps, loss,
                    loss_ema, hp.lr, (double)step * batch * seq / (el > 0 ? el : 1), el);
        }
        if (!eval_now) continue;
        double vloss = NAN;
        if (held > 0 &&
            heldout_loss(&m, ids, train_end, n_ids, batch, seq, tokens, targets, &vloss, err) != PK_OK) {
            status = cli_fail("pretrain", err);
            goto done;
        }
        int better = held == 0 ? step == steps : vloss < best;
        if (held > 0) fprintf(stderr, "  held-out loss %.4f%s\n", vloss, better ? "  (best so far, saved)" : "");
        if (better) {
            best = vloss;
            best_step = step;
            if (model_save_folder_atomic(&m, out, err) != PK_OK) {
                status = cli_fail("pretrain", err);
                goto done;
            }
        }
    }
    if (held > 0)
        printf("wrote %s: best held-out loss %.4f at step %d of %d (%.0f s)\n", out, best, best_step, steps,
               pk_now() - t0);
    else
        printf("wrote %s: step %d (%.0f s)\n", out, steps, pk_now() - t0);
done:
    free(dlogits);
    free(targets);
    free(tokens);
    free(ids);
    gpt2_free(&m);
    tok_free(tok);
    return status;
}
