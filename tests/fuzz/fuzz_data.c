/* libFuzzer target: dataset loading (data_load: JSONL or one JSON array, Dolly / Alpaca /
 * Self-Instruct / plain records) on arbitrary bytes, strict and with skip_bad.
 * A refusal names the file; every accepted record has valid UTF-8 text, at least one
 * reference, and a line inside the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "data.h"

static char in_path[256];

static void remove_file(void) { unlink(in_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(in_path, sizeof in_path, "%s/pk_fuzz_data_%ld.jsonl", tmp, (long)getpid());
    atexit(remove_file);
    return 0;
}

static int valid_text(const char *s) { return s && pk_utf8_invalid_at(s, strlen(s)) < 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(in_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    int lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    for (int skip_bad = 0; skip_bad <= 1; skip_bad++) {
        Dataset d;
        char err[PK_ERR_LEN] = "";
        if (data_load(&d, in_path, skip_bad, err) != PK_OK) {
            if (!strstr(err, in_path)) abort(); /* every refusal names the file */
            continue;
        }
        if (d.n < 1) abort();
        for (int i = 0; i < d.n; i++) {
            const DataRecord *r = &d.recs[i];
            if (r->n_refs < 1 || r->line < 1 || r->line > lines) abort();
            if (!valid_text(r->prompt) || !valid_text(r->instruction) || !valid_text(r->input) ||
                !valid_text(r->category))
                abort();
            for (int k = 0; k < r->n_refs; k++)
                if (!valid_text(r->refs[k])) abort();
        }
        data_free(&d);
    }
    return 0;
}
