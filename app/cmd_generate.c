/* promptkd generate: continue a raw text prompt (no template) with a model, optionally with a
 * soft prompt prepended (the prompted teacher T'). Prints the continuation up to EOS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "gpt2.h"
#include "model_io.h"
#include "neighbours.h"
#include "sample.h"
#include "tokenizer.h"

#define GENERATE_USAGE                                                                                       \
    "promptkd generate --model DIR --tokenizer DIR --prompt TEXT [--max-new-tokens N] [--temperature X] " \
    "[--top-k K] [--top-p P] [--no-repeat-ngram N] [--seed S] [--greedy] [--soft-prompt FILE]"

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *tok_dir = NULL, *text = NULL, *soft_path = NULL;
    int max_new = 64, top_k = 0, greedy = 0, no_repeat = 0;
    float temperature = 1.0f, top_p = 1.0f;
    unsigned long long seed = 0;
    Opt opts[] = {
        {"model", OPT_STR, &model_dir, "Hugging Face GPT-2 folder (config.json + model.safetensors)", 1},
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json and merges.txt", 1},
        {"prompt", OPT_STR, &text, "the text to continue, used verbatim (<|endoftext|> is the special token)", 1},
        {"max-new-tokens", OPT_INT, &max_new, "at most this many new tokens (64; clipped to the model's positions)", 0},
        {"temperature", OPT_FLOAT, &temperature, "sampling temperature > 0 (1.0)", 0},
        {"top-k", OPT_INT, &top_k, "keep the k most probable tokens (0: off)", 0},
        {"top-p", OPT_FLOAT, &top_p, "nucleus sampling mass (1.0: off)", 0},
        {"no-repeat-ngram", OPT_INT, &no_repeat, "never repeat an n-gram of this size (0: off)", 0},
        {"seed", OPT_U64, &seed, "sampling seed (0)", 0},
        {"greedy", OPT_FLAG, &greedy, "argmax decoding instead of sampling", 0},
        {"soft-prompt", OPT_STR, &soft_path, "safetensors file with \"prompt\" [P, C] prepended to the input (T')", 0},
    };
    int rc = cli_parse(GENERATE_USAGE, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return 2;

    char err[PK_ERR_LEN];
    GPT2 m;
    memset(&m, 0, sizeof m);
    Tokenizer *tok = NULL;
    float *soft = NULL;
    int *ids = NULL, *out = NULL, n = 0, P = 0, status = 1, out_len = 0;
    char *textout = NULL;
    if (max_new < 0) {
        cli_fail("generate", "--max-new-tokens must be >= 0");
        return 2;
    }
    if (model_load_with_tokenizer("generate", model_dir, &m, tok_dir, &tok, soft_path, &soft, &P)) goto done;
    const GPT2Config *cfg = &m.config;
    if (tok_encode(tok, text, strlen(text), 1, &ids, &n, err)) {
        cli_fail("generate", err);
        goto done;
    }
    if (n == 0 && P == 0) {
        cli_fail("generate", "--prompt has no tokens; give some text to continue");
        goto done;
    }
    if (P + n >= cfg->max_seq_len) {
        snprintf(err, sizeof err, "the prompt has %d tokens%s, which leaves no room in the model's %d positions", n,
                 P ? " after the soft prompt" : "", cfg->max_seq_len);
        cli_fail("generate", err);
        goto done;
    }
    if (P + n + max_new > cfg->max_seq_len) {
        fprintf(stderr, "promptkd generate: note: %d new tokens at most (the model has %d positions)\n",
                cfg->max_seq_len - P - n, cfg->max_seq_len);
        max_new = cfg->max_seq_len - P - n; /* the output buffer below is sized by it */
    }
    int eos = tok_eos_id(tok) >= 0 ? tok_eos_id(tok) : cfg->eos_token_id;
    SampleOptions so = {temperature, top_k, top_p, no_repeat, max_new, eos, greedy};
    if (sample_options_check(&so, cfg->vocab_size, err)) {
        cli_fail("generate", err);
        goto done;
    }
    out = malloc(((size_t)max_new + 1) * sizeof(int));
    if (!out) {
        cli_fail("generate", "out of memory");
        goto done;
    }
    const int *rows[1] = {ids};
    long index = 0;
    if (sample_generate(&m, rows, &n, 1, soft, P, &so, seed, &index, out, &out_len, err) ||
        sample_decode_text(tok, out, out_len, eos, 0, &textout, err)) {
        cli_fail("generate", err);
        goto done;
    }
    printf("%s\n", textout);
    status = 0;
done:
    free(textout);
    free(out);
    free(ids);
    free(soft);
    tok_free(tok);
    gpt2_free(&m);
    return status;
}
