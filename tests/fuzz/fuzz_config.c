/* libFuzzer target: config.json parsing (gpt2_config_load) on arbitrary bytes.
 * An accepted config must validate, save, and load back to the same config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "gpt2.h"

static char in_path[256], out_path[256];

static void remove_files(void) {
    unlink(in_path);
    unlink(out_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(in_path, sizeof in_path, "%s/pk_fuzz_config_%ld.json", tmp, (long)getpid());
    snprintf(out_path, sizeof out_path, "%s/pk_fuzz_config_%ld.out.json", tmp, (long)getpid());
    atexit(remove_files);
    return 0;
}

static int same(const GPT2Config *a, const GPT2Config *b) {
    return a->max_seq_len == b->max_seq_len && a->vocab_size == b->vocab_size && a->num_layers == b->num_layers &&
           a->num_heads == b->num_heads && a->channels == b->channels && a->n_inner == b->n_inner &&
           a->layer_norm_eps == b->layer_norm_eps && a->tied_lm_head == b->tied_lm_head &&
           a->eos_token_id == b->eos_token_id;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(in_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    GPT2Config cfg, back;
    char err[PK_ERR_LEN] = "";
    if (gpt2_config_load(&cfg, in_path, err) != PK_OK) {
        if (!strstr(err, in_path)) abort(); /* every refusal names the file */
        return 0;
    }
    if (gpt2_config_validate(&cfg, "fuzz", err) != PK_OK) abort();
    if (gpt2_config_save(&cfg, out_path, err) != PK_OK) abort();
    if (gpt2_config_load(&back, out_path, err) != PK_OK) abort();
    if (!same(&cfg, &back)) abort();
    return 0;
}
