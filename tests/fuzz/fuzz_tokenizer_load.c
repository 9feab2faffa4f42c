/* libFuzzer target: tok_load on arbitrary vocab.json + merges.txt. The input is
 * split at its first NUL byte: vocab.json before it, merges.txt after it (no NUL:
 * everything is vocab.json and merges.txt is empty). A tokenizer that loads must
 * encode and decode a short text without failing on its own ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "tokenizer.h"

static char dir[256], vocab_path[300], merges_path[300];

static void remove_files(void) {
    unlink(vocab_path);
    unlink(merges_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/pk_fuzz_tok_XXXXXX", tmp);
    if (!mkdtemp(dir)) abort();
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", dir);
    snprintf(merges_path, sizeof merges_path, "%s/merges.txt", dir);
    atexit(remove_files);
    return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t vocab_len = nul ? (size_t)(nul - data) : size;
    write_file(vocab_path, data, vocab_len);
    write_file(merges_path, nul ? nul + 1 : data, nul ? size - vocab_len - 1 : 0);
    Tokenizer *t = NULL;
    char err[PK_ERR_LEN] = "";
    if (tok_load(&t, dir, err) != PK_OK) {
        if (!err[0]) abort(); /* a refusal says why */
        return 0;
    }
    int V = tok_vocab_size(t);
    for (int id = 0; id < V; id++) {
        size_t len;
        if (!tok_token_bytes(t, id, &len)) abort();
    }
    static const char text[] = "Hello world, it's 2024!\n\xc3\xa9t\xc3\xa9 <|endoftext|> \xff";
    int *ids = NULL, n = 0;
    if (tok_encode(t, text, sizeof text - 1, 1, &ids, &n, err) == PK_OK) {
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= V) abort();
        char *out = NULL;
        size_t out_len = 0;
        if (tok_decode(t, ids, n, &out, &out_len, err) != PK_OK) abort();
        free(out);
    }
    free(ids);
    tok_free(t);
    return 0;
}
