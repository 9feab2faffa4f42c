/* libFuzzer target: the safetensors header parser and converters on arbitrary bytes.
 * Every accepted file must have tensors inside the data block; reading each one in
 * every conversion must stay in bounds (ASan checks), and a refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    StFile f;
    char err[PK_ERR_LEN] = "";
    if (st_open_memory(&f, "fuzz.safetensors", data, size, err) != PK_OK) {
        if (!strstr(err, "fuzz.safetensors")) abort(); /* every refusal names the file */
        return 0;
    }
    size_t covered = 0;
    for (int i = 0; i < f.num_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        if (t->end < t->begin || t->end > f.size - f.data_start) abort();
        if (t->end - t->begin != t->numel * st_dtype_size(t->dtype)) abort();
        if (st_find(&f, t->name) != t) abort(); /* names are unique */
        covered += t->end - t->begin;
        float *fo = malloc(t->numel * sizeof(float) + 1);
        int64_t *io = malloc(t->numel * sizeof(int64_t) + 1);
        if (fo && io) {
            st_read_f32(&f, t, fo);
            st_read_i64(&f, t, io);
        }
        free(fo);
        free(io);
    }
    if (covered != f.size - f.data_start) abort(); /* no gaps, no overlaps */
    st_close(&f);
    return 0;
}
