/* promptkd model_io: the model folders commands make from scratch or write (sft, pretrain). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "model_io.h"
#include "neighbours.h"

int model_parse_init(const char *spec, int vocab, int eos, GPT2Config *g, char *err) {
    memset(g, 0, sizeof *g);
    g->max_seq_len = 256;
    g->vocab_size = vocab;
    g->layer_norm_eps = 1e-5f;
    g->tied_lm_head = 1;
    g->eos_token_id = eos;
    g->embd_pdrop = g->attn_pdrop = g->resid_pdrop = 0.1f; /* GPT-2's */
    char buf[256];
    if (strlen(spec) >= sizeof buf) return pk_errf(err, "--init: the description is too long");
    strcpy(buf, spec);
    int have_l = 0, have_c = 0, have_h = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return pk_errf(err, "--init: expected key=value pairs like layers=2,embd=64,heads=2, got '%s'", tok);
        *eq = '\0';
        char *end = NULL;
        errno = 0;
        long v = strtol(eq + 1, &end, 10);
        if (errno || end == eq + 1 || *end || v < 1 || v > 100000)
            return pk_errf(err, "--init: %s expects a positive integer, got '%s'", tok, eq + 1);
        if (!strcmp(tok, "layers")) g->num_layers = (int)v, have_l = 1;
        else if (!strcmp(tok, "embd")) g->channels = (int)v, have_c = 1;
        else if (!strcmp(tok, "heads")) g->num_heads = (int)v, have_h = 1;
        else if (!strcmp(tok, "positions")) g->max_seq_len = (int)v;
        else if (!strcmp(tok, "inner")) g->n_inner = (int)v;
        else return pk_errf(err, "--init: unknown key '%s' (expected layers, embd, heads, positions, inner)", tok);
    }
    if (!have_l || !have_c || !have_h) return pk_errf(err, "--init: layers, embd and heads are all required");
    if (g->channels % g->num_heads)
        return pk_errf(err, "--init: embd %d is not a multiple of heads %d", g->channels, g->num_heads);
    if (!g->n_inner) g->n_inner = 4 * g->channels;
    return gpt2_config_validate(g, "--init", err);
}

int model_load_with_tokenizer(const char *cmd, const char *model_dir, GPT2 *m, const char *tok_dir, Tokenizer **tok,
                              const char *prompt_path, float **prompt, int *P) {
    char err[PK_ERR_LEN];
    if (gpt2_load(m, model_dir, err) != PK_OK || tok_load(tok, tok_dir, err) != PK_OK) return cli_fail(cmd, err);
    if (cli_check_vocab(cmd, model_dir, m->config.vocab_size, tok_dir, tok_vocab_size(*tok))) return 1;
    if (prompt_path && prompt_load(prompt_path, m->config.channels, prompt, P, NULL, err) != PK_OK)
        return cli_fail(cmd, err);
    return 0;
}

int model_folder_check_target(const char *out, char *err) {
    if (pk_run_folder_conflict(out, NULL, err) != PK_OK) return PK_FAIL;
    return pk_model_folder_check(out, err);
}

static int fill_model(void *ctx, const char *tmp_dir, char *err) { return gpt2_save(ctx, tmp_dir, err); }

int model_save_folder_atomic(const GPT2 *m, const char *out, char *err) {
    if (pk_run_folder_conflict(out, NULL, err) != PK_OK) return PK_FAIL;
    return pk_model_folder_write(out, fill_model, (void *)m, err);
}
