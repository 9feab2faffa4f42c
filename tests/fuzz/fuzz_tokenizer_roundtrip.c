/* libFuzzer target: encode then decode with GPT-2's tokenizer (the fixture) must
 * give back the input byte for byte, with and without the special token allowed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tokenizer.h"

static Tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("PK_FUZZ_TOKENIZER") ? getenv("PK_FUZZ_TOKENIZER") : "tests/fixtures/gpt2-tokenizer";
    char err[PK_ERR_LEN];
    if (tok_load(&tok, dir, err) != PK_OK) {
        fprintf(stderr, "fuzz_tokenizer_roundtrip: %s\n", err);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int V = tok_vocab_size(tok);
    for (int allow_special = 0; allow_special <= 1; allow_special++) {
        int *ids = NULL, n = 0;
        char err[PK_ERR_LEN] = "";
        if (tok_encode(tok, (const char *)data, size, allow_special, &ids, &n, err) != PK_OK) {
            fprintf(stderr, "encode failed: %s\n", err);
            abort();
        }
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= V) abort();
        char *out = NULL;
        size_t len = 0;
        if (tok_decode(tok, ids, n, &out, &len, err) != PK_OK) {
            fprintf(stderr, "decode failed: %s\n", err);
            abort();
        }
        if (len != size || (size && memcmp(out, data, size) != 0)) {
            fprintf(stderr, "round trip differs (allow_special=%d): %zu bytes in, %zu out\n", allow_special, size,
                    len);
            abort();
        }
        free(out);
        free(ids);
    }
    return 0;
}
