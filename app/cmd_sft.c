/* promptkd sft: supervised fine-tuning (cross-entropy on ground-truth responses, prompt
 * positions masked) of a GPT-2 model, from a Hugging Face folder or from a random
 * initialisation of a given architecture. This is how the default experiment's teacher and
 * student are made. Progress goes to stderr; the best dev checkpoint (dev loss, or dev
 * ROUGE-L with --select rouge) is written as an HF folder, atomically. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "distill.h"
#include "gpt2.h"
#include "model_io.h"
#include "parallel.h"
#include "tokenizer.h"

int cmd_sft(int argc, char **argv) {
    const char *model = NULL, *init = NULL, *init_config = NULL, *tok_dir = NULL, *data = NULL, *valid = NULL,
               *out = NULL, *select = "loss";
    int steps = 1000, batch = 8, warmup = -1, eval_interval = 0, eval_samples = 64, max_new = 64, threads = 0,
        max_prompt = 256;
    float lr = 1e-3f, wd = 0.01f, clip = 1.0f;
    unsigned long long seed = 1;
    const Opt opts[] = {
        {"model", OPT_STR, &model, "Hugging Face GPT-2 folder to start from", 0},
        {"init", OPT_STR, &init, "random init instead: layers=L,embd=C,heads=H[,positions=N][,inner=F]", 0},
        {"init-config", OPT_STR, &init_config, "random init of the architecture in this HF config.json", 0},
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json + merges.txt", 1},
        {"data", OPT_STR, &data, "training dataset (Dolly/Alpaca/Self-Instruct/plain JSONL)", 1},
        {"valid", OPT_STR, &valid, "dev dataset: keeps the best checkpoint (else the last)", 0},
        {"out", OPT_STR, &out,
         "output HF folder, written atomically; an existing folder is replaced only when it holds nothing but "
         PK_MODEL_FOLDER_FILES, 1},
        {"steps", OPT_INT, &steps, "optimizer steps (default 1000)", 0},
        {"batch", OPT_INT, &batch, "batch size (default 8)", 0},
        {"lr", OPT_FLOAT, &lr, "peak learning rate (default 1e-3)", 0},
        {"warmup", OPT_INT, &warmup, "warm-up steps (default min(100, steps/10))", 0},
        {"weight-decay", OPT_FLOAT, &wd, "AdamW weight decay (default 0.01)", 0},
        {"clip", OPT_FLOAT, &clip, "global gradient-norm clip (default 1.0)", 0},
        {"seed", OPT_U64, &seed, "seed of the init and the data order (default 1)", 0},
        {"eval-interval", OPT_INT, &eval_interval, "steps between dev evaluations (default steps/10)", 0},
        {"select", OPT_STR, &select, "best checkpoint by dev 'loss' (default) or 'rouge' (ROUGE-L)", 0},
        {"eval-samples", OPT_INT, &eval_samples, "dev records per ROUGE-L evaluation (default 64)", 0},
        {"max-new-tokens", OPT_INT, &max_new, "generation length for dev ROUGE-L (default 64)", 0},
        {"max-prompt-len", OPT_INT, &max_prompt, "drop training prompts longer than this (default 256)", 0},
        {"threads", OPT_INT, &threads, "threads (default: PROMPTKD_THREADS or all cores)", 0},
    };
    int rc = cli_parse("promptkd sft (--model DIR | --init SPEC | --init-config FILE) --tokenizer DIR --data FILE "
                       "--out DIR [--valid FILE] [--steps N] [--batch B] [--lr X] [--seed S] [--eval-interval N]",
                       argc, argv, opts, (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return rc;
    char err[PK_ERR_LEN], msg[PK_ERR_LEN + 128];
    if ((model != NULL) + (init != NULL) + (init_config != NULL) != 1)
        return cli_fail("sft", "give exactly one of --model DIR, --init SPEC or --init-config FILE");
    if (steps < 1) return cli_fail("sft", "--steps must be at least 1");
    if (batch < 1) return cli_fail("sft", "--batch must be at least 1");
    if (!(lr > 0)) return cli_fail("sft", "--lr must be a number > 0");
    if (strcmp(select, "loss") && strcmp(select, "rouge"))
        return cli_fail("sft", "--select expects 'loss' or 'rouge'");
    if (eval_samples < 0 || max_new < 1) return cli_fail("sft", "--eval-samples must be >= 0 and --max-new-tokens >= 1");
    if (!out[0]) return cli_fail("sft", "--out must name a folder, got an empty string");
    /* refused now, not after the training: a folder of other files, or a run folder's own parts */
    if (model_folder_check_target(out, err) != PK_OK) return cli_fail("sft", err);
    if (warmup < 0) warmup = steps / 10 < 100 ? steps / 10 : 100;
    if (eval_interval <= 0) eval_interval = steps / 10 > 0 ? steps / 10 : 1;
    pk_threads_init(threads);

    RunConfig c;
    config_defaults(&c);
    snprintf(c.method, sizeof c.method, "%s", method_info(METHOD_SFT)->name);
    snprintf(c.student, sizeof c.student, "%s", model ? model : "");
    snprintf(c.tokenizer, sizeof c.tokenizer, "%s", tok_dir);
    snprintf(c.train_data, sizeof c.train_data, "%s", data);
    snprintf(c.valid_data, sizeof c.valid_data, "%s", valid ? valid : "");
    c.seed = seed;
    c.steps = steps;
    c.batch_size = batch;
    c.lr = lr;
    c.warmup_steps = warmup;
    c.weight_decay = wd;
    c.clip_norm = clip;
    c.max_prompt_len = max_prompt;
    c.threads = threads;

    DistillState *s = NULL;
    if (model) {
        if (distill_create(&s, &c, err) != PK_OK) return cli_fail("sft", err);
    } else {
        Tokenizer *tok = NULL;
        if (tok_load(&tok, tok_dir, err) != PK_OK) return cli_fail("sft", err);
        int V = tok_vocab_size(tok), eos = tok_eos_id(tok);
        tok_free(tok);
        GPT2Config g;
        if (init) {
            if (model_parse_init(init, V, eos < 0 ? V - 1 : eos, &g, err) != PK_OK) return cli_fail("sft", err);
        } else {
            if (gpt2_config_load(&g, init_config, err) != PK_OK) return cli_fail("sft", err);
            if (g.vocab_size != V) {
                snprintf(msg, sizeof msg, "%s: vocab_size %d differs from the tokenizer's %d", init_config,
                         g.vocab_size, V);
                return cli_fail("sft", msg);
            }
        }
        if (distill_create_init(&s, &c, &g, err) != PK_OK) return cli_fail("sft", err);
    }
    GPT2 *m = distill_student(s);
    const GPT2Config *g = &m->config;
    fprintf(stderr, "sft: L=%d C=%d H=%d V=%d positions=%d, %zu parameters; %d training examples, %d steps of %d\n",
            g->num_layers, g->channels, g->num_heads, g->vocab_size, g->max_seq_len, m->num_parameters,
            distill_steps_per_epoch(s) * batch, steps, batch);

    int use_rouge = !strcmp(select, "rouge");
    double best = use_rouge ? -1.0 : INFINITY;
    int best_step = -1, status = 0;
    double t0 = pk_now(), tokens = 0, loss_ema = NAN;
    for (int step = 1; step <= steps; step++) {
        DistillStepStats st;
        if (distill_step(s, &st, err) != PK_OK) {
            status = cli_fail("sft", err);
            break;
        }
        if (st.nonfinite) {
            snprintf(msg, sizeof msg, "step %d: the loss or gradient is not finite (loss %g); try a lower --lr", step,
                     st.losses[0]);
            status = cli_fail("sft", msg);
            break;
        }
        tokens += st.tokens;
        loss_ema = isnan(loss_ema) ? st.losses[0] : 0.95 * loss_ema + 0.05 * st.losses[0];
        int eval_now = step % eval_interval == 0 || step == steps;
        if (step % 10 == 0 || eval_now) {
            double el = pk_now() - t0;
            fprintf(stderr, "step %d/%d  loss %.4f (avg %.4f)  lr %.2e  %.0f tok/s  %.0fs\n", step, steps, st.losses[0],
                    loss_ema, st.lr, tokens / (el > 0 ? el : 1), el);
        }
        if (!eval_now) continue;
        if (!valid) {
            if (step == steps) {
                if (model_save_folder_atomic(m, out, err) != PK_OK) status = cli_fail("sft", err);
                best_step = step;
            }
            continue;
        }
        double score = 0;
        if (use_rouge) {
            if (distill_eval_rouge(s, DISTILL_STUDENT, "valid", eval_samples, max_new, seed, &score, NULL, NULL, err) !=
                PK_OK) {
                status = cli_fail("sft", err);
                break;
            }
        } else if (distill_eval_loss(s, "valid", 0, &score, err) != PK_OK) {
            status = cli_fail("sft", err);
            break;
        }
        int better = use_rouge ? score > best : score < best;
        fprintf(stderr, "  dev %s %.4f%s\n", use_rouge ? "ROUGE-L" : "loss", score, better ? "  (best so far, saved)" : "");
        if (better) {
            best = score;
            best_step = step;
            if (model_save_folder_atomic(m, out, err) != PK_OK) {
                status = cli_fail("sft", err);
                break;
            }
        }
    }
    if (status == 0) {
        if (valid)
            printf("wrote %s: best dev %s %.4f at step %d of %d (%.0f s)\n", out, use_rouge ? "ROUGE-L" : "loss", best,
                   best_step, steps, pk_now() - t0);
        else
            printf("wrote %s: step %d (%.0f s)\n", out, steps, pk_now() - t0);
    }
    distill_free(s);
    return status;
}
