/* promptkd neighbours: for each soft-prompt vector, the k vocabulary tokens whose word
 * embeddings (the model's wte) are closest in cosine similarity. The prompt comes from a file
 * ("prompt" [P, C]) or is built from --init-text as PromptKD initialises it (and can be saved). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "gpt2.h"
#include "model_io.h"
#include "neighbours.h"
#include "tokenizer.h"

#define NEIGHBOURS_USAGE                                                                                   \
    "promptkd neighbours --model DIR --tokenizer DIR (--prompt FILE | --init-text TEXT [--prompt-len P] " \
    "[--save FILE]) [--k 5] [--json]"

int cmd_neighbours(int argc, char **argv) {
    const char *model_dir = NULL, *tok_dir = NULL, *prompt_path = NULL, *init_text = NULL, *save_path = NULL;
    int k = 5, as_json = 0, prompt_len = 7;
    Opt opts[] = {
        {"model", OPT_STR, &model_dir, "the (teacher) model whose word embedding is searched", 1},
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json and merges.txt", 1},
        {"prompt", OPT_STR, &prompt_path, "safetensors file with \"prompt\" [P, C]", 0},
        {"init-text", OPT_STR, &init_text, "build the prompt from this text's embedding rows instead", 0},
        {"prompt-len", OPT_INT, &prompt_len, "vectors built from --init-text (7), repeated or cut", 0},
        {"save", OPT_STR, &save_path, "write the prompt built from --init-text to this file", 0},
        {"k", OPT_INT, &k, "neighbours per vector (5)", 0},
        {"json", OPT_FLAG, &as_json, "print JSON instead of a table", 0},
    };
    int rc = cli_parse(NEIGHBOURS_USAGE, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return 2;
    if (!prompt_path == !init_text) {
        cli_fail("neighbours", "give exactly one of --prompt FILE and --init-text TEXT");
        return 2;
    }
    if (save_path && !init_text) {
        cli_fail("neighbours", "--save writes a prompt built from --init-text; it needs --init-text");
        return 2;
    }
    if (save_path && cli_check_output("neighbours", "save", save_path)) return 2;
    if (prompt_len < 1 || prompt_len > 4096) {
        cli_fail("neighbours", "--prompt-len must be in 1..4096");
        return 2;
    }

    char err[PK_ERR_LEN];
    GPT2 m;
    memset(&m, 0, sizeof m);
    Tokenizer *tok = NULL;
    float *prompt = NULL, *sims = NULL;
    int *ids = NULL, P = 0, status = 1;
    if (model_load_with_tokenizer("neighbours", model_dir, &m, tok_dir, &tok, NULL, NULL, NULL)) goto done;
    int V = m.config.vocab_size, C = m.config.channels;
    if (k < 1 || k > V) {
        snprintf(err, sizeof err, "--k must be in 1..%d (the vocabulary size), got %d", V, k);
        cli_fail("neighbours", err);
        status = 2;
        goto done;
    }
    if (prompt_path) {
        if (prompt_load(prompt_path, C, &prompt, &P, NULL, err)) {
            cli_fail("neighbours", err);
            goto done;
        }
    } else {
        P = prompt_len;
        prompt = malloc((size_t)P * C * sizeof(float));
        if (!prompt) {
            cli_fail("neighbours", "out of memory");
            goto done;
        }
        if (prompt_init_from_text(tok, m.params[0], V, C, init_text, P, prompt, NULL, err) ||
            (save_path && prompt_save(save_path, prompt, P, C, err))) {
            cli_fail("neighbours", err);
            goto done;
        }
    }
    ids = malloc((size_t)P * k * sizeof(int));
    sims = malloc((size_t)P * k * sizeof(float));
    if (!ids || !sims) {
        cli_fail("neighbours", "out of memory");
        goto done;
    }
    if (prompt_neighbours(prompt, P, m.params[0], V, C, k, ids, sims, err)) {
        cli_fail("neighbours", err);
        goto done;
    }
    char text[256];
    if (as_json) {
        cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "positions");
        cJSON_AddNumberToObject(root, "k", k);
        for (int p = 0; p < P; p++) {
            cJSON *pos = cJSON_CreateObject(), *nb = cJSON_AddArrayToObject(pos, "neighbours");
            cJSON_AddNumberToObject(pos, "position", p);
            for (int j = 0; j < k; j++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "id", ids[p * k + j]);
                tok_token_printable(tok, ids[p * k + j], text, sizeof text);
                cJSON_AddStringToObject(e, "token", text);
                cJSON_AddNumberToObject(e, "similarity", sims[p * k + j]);
                cJSON_AddItemToArray(nb, e);
            }
            cJSON_AddItemToArray(arr, pos);
        }
        char *s = cJSON_Print(root);
        cJSON_Delete(root);
        if (!s) {
            cli_fail("neighbours", "out of memory");
            goto done;
        }
        printf("%s\n", s);
        free(s);
    } else {
        printf("nearest tokens of %d prompt vectors (cosine similarity with %s's word embedding)\n", P, model_dir);
        for (int p = 0; p < P; p++) {
            printf("%3d ", p);
            for (int j = 0; j < k; j++) {
                tok_token_printable(tok, ids[p * k + j], text, sizeof text);
                printf(" \"%s\" %.4f (%d)", text, sims[p * k + j], ids[p * k + j]);
            }
            printf("\n");
        }
    }
    if (save_path) fprintf(stderr, "wrote %s (prompt [%d, %d])\n", save_path, P, C);
    status = 0;
done:
    free(ids);
    free(sims);
    free(prompt);
    tok_free(tok);
    gpt2_free(&m);
    return status;
}
