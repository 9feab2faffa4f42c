/* Soft-prompt neighbours: cosine top-k on hand-built embeddings, the prompt initialised from
 * "Suppose you are a student." on the tiny HF checkpoint, prompt files, printable tokens. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "gpt2.h"
#include "neighbours.h"
#include "safetensors.h"
#include "test.h"
#include "tokenizer.h"

static void test_cosine_topk_hand_built(void) {
    float wte[5 * 2] = {1, 0, 0, 1, 1, 1, -1, 0, 3, 3};
    float prompt[3 * 2] = {2, 0, 1, 1, 0, 0};
    int ids[3 * 4];
    float sims[3 * 4];
    char err[PK_ERR_LEN];
    CHECK(prompt_neighbours(prompt, 3, wte, 5, 2, 4, ids, sims, err) == PK_OK);
    /* [2, 0]: 1 (id 0), 0.7071 (ids 2 and 4, lower id first), 0 (id 1) */
    int e0[4] = {0, 2, 4, 1};
    CHECK(memcmp(ids, e0, sizeof e0) == 0);
    CHECK_NEAR(sims[0], 1.0, 1e-7);
    CHECK_NEAR(sims[1], sqrt(0.5), 1e-7);
    CHECK_NEAR(sims[2], sqrt(0.5), 1e-7);
    CHECK_NEAR(sims[3], 0.0, 1e-7);
    /* [1, 1]: ids 2 and 4 exactly 1, then 0 and 1 */
    int e1[4] = {2, 4, 0, 1};
    CHECK(memcmp(ids + 4, e1, sizeof e1) == 0);
    CHECK_NEAR(sims[4], 1.0, 1e-7);
    CHECK_NEAR(sims[5], 1.0, 1e-7);
    /* a zero vector: similarity 0 with everything, ids in order */
    int e2[4] = {0, 1, 2, 3};
    CHECK(memcmp(ids + 8, e2, sizeof e2) == 0);
    CHECK(sims[8] == 0.0f);
    /* k = V sorts everything; the last is the opposite vector */
    int all[5];
    float asim[5];
    CHECK(prompt_neighbours(prompt, 1, wte, 5, 2, 5, all, asim, err) == PK_OK);
    CHECK(all[4] == 3);
    CHECK_NEAR(asim[4], -1.0, 1e-7);
    CHECK(prompt_neighbours(prompt, 1, wte, 5, 2, 6, all, asim, err) == PK_FAIL && strstr(err, "k must"));
    CHECK(prompt_neighbours(prompt, 1, wte, 5, 2, 0, all, asim, err) == PK_FAIL);
}

static void test_fixture_prompt_init_is_its_own_neighbour(void) {
    char err[PK_ERR_LEN];
    Tokenizer *tok = NULL;
    GPT2 m;
    if (tok_load(&tok, "tests/fixtures/gpt2-tokenizer", err) || gpt2_load(&m, "tests/fixtures/hf-gpt2-tiny", err)) {
        printf("    %s\n", err);
        CHECK(0);
        tok_free(tok);
        return;
    }
    int V = m.config.vocab_size, C = m.config.channels, P = 7, k = 5;
    float *prompt = malloc((size_t)P * C * sizeof(float));
    int used[7], ids[7 * 5];
    float sims[7 * 5];
    const int expect[7] = {15979, 577, 345, 389, 257, 3710, 13};
    CHECK(prompt_init_from_text(tok, m.params[0], V, C, "Suppose you are a student.", P, prompt, used, err) == PK_OK);
    CHECK(memcmp(used, expect, sizeof expect) == 0);
    CHECK(prompt_neighbours(prompt, P, m.params[0], V, C, k, ids, sims, err) == PK_OK);
    for (int p = 0; p < P; p++) {
        CHECK_MSG(ids[p * k] == expect[p], "position %d: nearest %d, expected %d", p, ids[p * k], expect[p]);
        CHECK_NEAR(sims[p * k], 1.0, 1e-6);
        for (int j = 1; j < k; j++) {
            CHECK(sims[p * k + j] <= sims[p * k + j - 1]);
            CHECK(sims[p * k + j] < 0.999f); /* random rows are not parallel */
        }
    }
    /* cyclic repetition when the text is shorter than P, cut when longer */
    float *p10 = malloc((size_t)10 * C * sizeof(float));
    int u10[10];
    CHECK(prompt_init_from_text(tok, m.params[0], V, C, "Suppose you are a student.", 10, p10, u10, err) == PK_OK);
    for (int p = 0; p < 10; p++) {
        CHECK(u10[p] == expect[p % 7]);
        CHECK(memcmp(p10 + (size_t)p * C, m.params[0] + (size_t)expect[p % 7] * C, (size_t)C * sizeof(float)) == 0);
    }
    int u3[3];
    CHECK(prompt_init_from_text(tok, m.params[0], V, C, "Suppose you are a student.", 3, p10, u3, err) == PK_OK);
    CHECK(u3[0] == 15979 && u3[1] == 577 && u3[2] == 345);
    CHECK(prompt_init_from_text(tok, m.params[0], V, C, "", 3, p10, u3, err) == PK_FAIL && strstr(err, "no tokens"));
    free(p10);
    free(prompt);
    gpt2_free(&m);
    tok_free(tok);
}

static void test_prompt_file(void) {
    char err[PK_ERR_LEN], dir[] = "/tmp/pk_nb_XXXXXX", path[256], bad[256];
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    snprintf(path, sizeof path, "%s/prompt.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    float pr[3 * 4];
    for (int i = 0; i < 12; i++) pr[i] = 0.25f * i - 1.0f;
    CHECK(prompt_save(path, pr, 3, 4, err) == PK_OK);
    float *back = NULL;
    int P = 0, C = 0;
    CHECK(prompt_load(path, 4, &back, &P, &C, err) == PK_OK);
    CHECK(P == 3 && C == 4 && back && memcmp(back, pr, sizeof pr) == 0);
    free(back);
    back = NULL;
    CHECK(prompt_load(path, 8, &back, &P, &C, err) == PK_FAIL && strstr(err, "n_embd is 8") && !back);
    /* a 1-D "prompt" and a file without one */
    StWriteEntry e = {.name = "prompt", .dtype = ST_F32, .ndim = 1, .shape = {12}, .data = pr};
    CHECK(st_write(bad, &e, 1, NULL, err) == PK_OK);
    CHECK(prompt_load(bad, 0, &back, &P, &C, err) == PK_FAIL && strstr(err, "[P, C]"));
    StWriteEntry f = {.name = "other", .dtype = ST_F32, .ndim = 2, .shape = {3, 4}, .data = pr};
    CHECK(st_write(bad, &f, 1, NULL, err) == PK_OK);
    CHECK(prompt_load(bad, 0, &back, &P, &C, err) == PK_FAIL && strstr(err, "no tensor named"));
    CHECK(prompt_load("/nonexistent/prompt.safetensors", 0, &back, &P, &C, err) == PK_FAIL);
    remove(path);
    remove(bad);
    rmdir(dir);
}

int main(void) {
    RUN(test_cosine_topk_hand_built);
    RUN(test_fixture_prompt_init_is_its_own_neighbour);
    RUN(test_prompt_file);
    TEST_EXIT();
}
