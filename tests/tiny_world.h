/* A tiny world for unit tests of the distillation and the engine: a Dolly-format
 * dataset about animals' colours, a BPE trained on it, and tiny random GPT-2s.
 * Header-only: each test program includes it once. */
#ifndef PK_TINY_WORLD_H
#define PK_TINY_WORLD_H

#include <stdio.h>
#include <stdlib.h>
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
    g.embd_pdrop = g.attn_pdrop = g.resid_pdrop = 0.1f; /* GPT-2's */
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

/* The files and folders of a tiny world under one temporary root. */
typedef struct {
    char root[256], tok_dir[300], train_path[300], valid_path[300], teacher_dir[300], student_dir[300];
} TinyWorld;

/* Makes a fresh root /tmp/pk_test_TAG_XXXXXX, writes n_train training and n_valid
 * validation records, trains a BPE on the training ones and saves a random 1-layer
 * student (seed 11). The teacher folder is named but left to the caller. Returns
 * the vocabulary size, or -1 with err. */
static int tiny_world_create(TinyWorld *w, const char *tag, int n_train, int n_valid, char *err) {
    memset(w, 0, sizeof *w);
    snprintf(w->root, sizeof w->root, "/tmp/pk_test_%s_XXXXXX", tag);
    if (!mkdtemp(w->root)) {
        w->root[0] = 0;
        pk_errf(err, "cannot create a temporary folder for the %s test world", tag);
        return -1;
    }
    snprintf(w->tok_dir, sizeof w->tok_dir, "%s/tok", w->root);
    snprintf(w->train_path, sizeof w->train_path, "%s/train.jsonl", w->root);
    snprintf(w->valid_path, sizeof w->valid_path, "%s/valid.jsonl", w->root);
    snprintf(w->teacher_dir, sizeof w->teacher_dir, "%s/teacher", w->root);
    snprintf(w->student_dir, sizeof w->student_dir, "%s/student", w->root);
    if (tiny_write_data(w->train_path, 0, n_train, err) != PK_OK) return -1;
    if (tiny_write_data(w->valid_path, 100, n_valid, err) != PK_OK) return -1;
    int V = tiny_train_tokenizer(w->train_path, 320, w->tok_dir, err);
    if (V <= 0) return -1;
    GPT2Config sa = tiny_arch(1, 16, 2, V);
    return tiny_save_random(&sa, 11, w->student_dir, err) == PK_OK ? V : -1;
}

#endif
