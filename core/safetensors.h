/* Hugging Face safetensors: strict reader (F32/F16/BF16/I64/I32 and friends) and
 * an atomic F32/I64 writer. Format: u64 little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {...}},
 * then the data block; offsets are relative to the data block. */
#ifndef PK_SAFETENSORS_H
#define PK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* byte offsets into the data block */
} StTensor;

typedef struct {
    char *path;
    unsigned char *map; /* the whole file (read or mmapped) */
    size_t size;
    size_t data_start;  /* 8 + header length */
    StTensor *tensors;
    int num_tensors;
} StFile;

/* Opens and validates a file: header length within the file, header is a JSON
 * object, known dtypes, shapes non-negative, every end - begin == numel * dtype
 * size, offsets inside the data block, no overlaps and no gaps. */
int st_open(StFile *f, const char *path, char *err);
/* Same, on bytes in memory (copied); path is only used in messages. */
int st_open_memory(StFile *f, const char *path, const void *data, size_t size, char *err);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);
size_t st_dtype_size(StDtype d);
const char *st_dtype_name(StDtype d);
/* Converts a tensor to F32 (from F32, F16, BF16, F64, or integer types). out holds t->numel. */
void st_read_f32(const StFile *f, const StTensor *t, float *out);
/* st_read_f32, then refuses a NaN or an infinity (also a finite F64 too large for F32):
 * "PATH: tensor "NAME" holds NaN at element I ([i, j]); expected finite values". */
int st_read_f32_finite(const StFile *f, const StTensor *t, float *out, char *err);
/* Converts an integer tensor to int64. out holds t->numel. */
void st_read_i64(const StFile *f, const StTensor *t, int64_t *out);

/* A set of files: a single model.safetensors or shards listed by
 * model.safetensors.index.json ("weight_map": name -> file) in a folder. */
typedef struct {
    StFile *files;
    int num_files;
} StSet;
int st_set_open_dir(StSet *s, const char *dir, char *err);
void st_set_close(StSet *s);
/* Finds a tensor by name in any file of the set; *file_out gets its file. */
const StTensor *st_set_find(const StSet *s, const char *name, const StFile **file_out);

/* Writing: entries in the given order, data back to back, header padded with
 * spaces to a multiple of 8; written atomically (temp + fsync + rename). */
typedef struct {
    const char *name;
    StDtype dtype; /* ST_F32 or ST_I64 (or any, the bytes are copied as they are) */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteEntry;
/* metadata: NULL or pairs {key0, value0, key1, value1, ..., NULL} of strings */
int st_write(const char *path, const StWriteEntry *entries, int n, const char *const *metadata, char *err);

#endif
