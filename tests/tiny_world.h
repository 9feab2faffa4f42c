/* A tiny world for unit tests of the distillation and the engine: a Dolly-format
 * dataset about animals' colours, a BPE trained on it, and tiny random GPT-2s.
 * Header-only: each test program includes it once. */
#ifndef PK_TINY_WORLD_H
#define PK_TINY_WORLD_H

#include <string.h>

#include "common.h"
#include "data.h"
#include "gpt2.h"
#include "tokenizer.h"

static const char *tiny_animals[] = {"cat", "dog", "owl", "fox", "bee", "cow", "eel", "yak"};
static const char *tiny_colours[] = {"red", "blue", "green", "gold", "grey", "pink"};

/* Records first .. first+n-1, alternating a question without context and one with. */
static int tiny_write_data(const char *path, int first, int n, char *err) {
    PkBuf b = {0};
    for (int i = first; i < first + n; i++) {
        const char *a = tiny_animals[i % 8], *c = tiny_colours[(i * 5 + i / 8) % 6];
        if (i % 2)
            pk_buf_printf(&b, "{\"instruction\":\"What colour is the %s?\",\"context\":\"\",\"response\":\"The %s is %s.\"}\n",
                          a, a, c);
        else
            pk_buf_printf(&b,
                          "{\"instruction\":\"Name the colour.\",\"context\":\"A %s that is %s.\",\"response\":\"It is %s.\"}\n",
                          a, c, c);
    }
    int rc = b.data ? pk_write_file_atomic(path, b.data, b.len, err) : pk_errf(err, "%s: out of memory", path);
    pk_buf_free(&b);
    return rc;
}

static GPT2Config tiny_arch(int L, int C, int H, int V) {
    GPT2Config g;
    memset(&g, 0, sizeof g);
    g.max_seq_len = 96;
    g.vocab_size = V;
    g.num_layers = L;
    g.num_heads = H;
    g.channels = C;
    g.n_inner = 4 * C;
    g.layer_norm_eps = 1e-5f;
    g.tied_lm_head = 1;
    g.eos_token_id = V - 1;
    return g;
}

/* Trains a BPE of vocab_size on the prompts and responses of a dataset file;
 * returns the vocabulary size it got, or -1 with err. */
static int tiny_train_tokenizer(const char *data_path, int vocab_size, const char *tok_dir, char *err) {
    Dataset d;
    if (data_load(&d, data_path, 0, err) != PK_OK) return -1;
    const char **texts = malloc(sizeof(char *) * 2 * d.n);
    size_t *lens = malloc(sizeof(size_t) * 2 * d.n);
    int rc = texts && lens ? PK_OK : pk_errf(err, "out of memory");
    for (int i = 0; rc == PK_OK && i < d.n; i++) {
        texts[2 * i] = d.recs[i].prompt;
        texts[2 * i + 1] = d.recs[i].refs[0];
        lens[2 * i] = strlen(texts[2 * i]);
        lens[2 * i + 1] = strlen(texts[2 * i + 1]);
    }
    if (rc == PK_OK) rc = tok_train_bpe(texts, lens, 2 * d.n, vocab_size, tok_dir, err);
    free(texts);
    free(lens);
    data_free(&d);
    if (rc != PK_OK) return -1;
    Tokenizer *tok;
    if (tok_load(&tok, tok_dir, err) != PK_OK) return -1;
    int V = tok_vocab_size(tok);
    tok_free(tok);
    return V;
}

/* Writes a seeded random model of an architecture as an HF folder. */
static int tiny_save_random(const GPT2Config *arch, unsigned long long seed, const char *dir, char *err) {
    GPT2 m;
    if (gpt2_build(&m, arch, err) != PK_OK) return PK_FAIL;
    gpt2_init_random(&m, seed);
    int rc = gpt2_save(&m, dir, err);
    gpt2_free(&m);
    return rc;
}

#endif
