/* Soft-prompt vectors: initialisation from text (DESIGN.md section 3), the prompt file
 * ("prompt" [P, C] in safetensors, as checkpoints store prompt.safetensors), and the nearest
 * vocabulary tokens of each vector by cosine similarity with the word embedding. */
#ifndef PK_NEIGHBOURS_H
#define PK_NEIGHBOURS_H

#include <stddef.h>

#include "tokenizer.h"

/* prompt [P, C] = rows of wte [V, C] for the token ids of text (encoded without special tokens),
 * repeated cyclically when the text has fewer than P tokens, cut when it has more.
 * ids [P] (may be NULL) receives the id used at each position. Fails on text with no tokens. */
int prompt_init_from_text(const Tokenizer *tok, const float *wte, int V, int C, const char *text, int P,
                          float *prompt, int *ids, char *err);

/* Reads tensor "prompt" [P, C] (any float dtype; stored as F32 by prompt_save) from a safetensors
 * file. expect_C > 0 requires C == expect_C (the model's n_embd). *prompt is malloc'ed. */
int prompt_load(const char *path, int expect_C, float **prompt, int *P, int *C, char *err);
/* Writes "prompt" [P, C] as F32, atomically. */
int prompt_save(const char *path, const float *prompt, int P, int C, char *err);

/* For each of the P prompt vectors [P, C]: the k rows of wte [V, C] with the largest cosine
 * similarity, best first (lower id first on equal similarity): ids [P, k] and sims [P, k]
 * (sims may be NULL). Dot products and norms in double, exact over the whole vocabulary,
 * parallel over V. A zero vector has similarity 0 with everything. 1 <= k <= V. */
int prompt_neighbours(const float *prompt, int P, const float *wte, int V, int C, int k, int *ids, float *sims,
                      char *err);

#endif
