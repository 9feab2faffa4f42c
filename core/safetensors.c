/* Hugging Face safetensors: strict reader and atomic writer.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON (an object
 * mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]} plus an
 * optional "__metadata__" object of strings), then the data block. Offsets are
 * relative to the data block, which the tensors must cover exactly: no overlaps,
 * no gaps, no trailing bytes. Multi-byte values are little-endian (this code
 * assumes a little-endian host, as every platform we build on is). */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER 100000000ULL
/* Offsets and dims are JSON numbers (doubles); above 2^53 they are no longer exact. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* Tensor names in messages are cut so one sentence stays readable. */
#define NAME_FMT "\"%.120s\""

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define ST_NUM_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

size_t st_dtype_size(StDtype d) { return (int)d >= 0 && (int)d < ST_NUM_DTYPES ? st_dtypes[d].size : 0; }

const char *st_dtype_name(StDtype d) { return (int)d >= 0 && (int)d < ST_NUM_DTYPES ? st_dtypes[d].name : "?"; }

static int st_dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < ST_NUM_DTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *out = (StDtype)i;
            return 1;
        }
    return 0;
}

/* ---------------------------------------------------------------- ownership */

/* StFile is the caller's plain struct, so how `map` is owned (mmap or malloc) is
 * recorded in the byte after the NUL of our own copy of the path. */
enum { ST_OWN_HEAP = 'h', ST_OWN_MMAP = 'm' };

static int st_set_path(StFile *f, const char *path, char owner, char *err) {
    size_t n = strlen(path);
    f->path = pk_malloc(n + 2, err);
    if (!f->path) return PK_FAIL;
    memcpy(f->path, path, n + 1);
    f->path[n + 1] = owner;
    return PK_OK;
}

void st_close(StFile *f) {
    if (!f) return;
    if (f->map && f->path) {
        char owner = f->path[strlen(f->path) + 1];
        if (owner == ST_OWN_MMAP)
            munmap(f->map, f->size);
        else
            free(f->map);
    }
    if (f->tensors)
        for (int i = 0; i < f->num_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* ---------------------------------------------------------------- parsing */

/* A JSON number that is an exact non-negative integer no larger than 2^53. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static void shape_str(char *out, size_t cap, const int64_t *shape, int ndim) {
    size_t n = 0;
    n += (size_t)snprintf(out + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

static int parse_entry(const StFile *f, const cJSON *e, StTensor *t, size_t data_size, char *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return pk_errf(err, "%s: header entry " NAME_FMT " is not an object; expected {\"dtype\", \"shape\", "
                            "\"data_offsets\"}", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return pk_errf(err, "%s: tensor " NAME_FMT " has no \"dtype\" string", f->path, name);
    if (!st_dtype_parse(dt->valuestring, &t->dtype))
        return pk_errf(err, "%s: tensor " NAME_FMT " has unknown dtype \"%.40s\"; expected one of F32, F16, BF16, "
                            "F64, I64, I32, I16, I8, U8, BOOL", f->path, name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return pk_errf(err, "%s: tensor " NAME_FMT " has no \"shape\" array", f->path, name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > ST_MAX_DIMS)
        return pk_errf(err, "%s: tensor " NAME_FMT " has %d dimensions; at most %d are supported", f->path, name,
                       ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    /* numel saturates once it passes the data block; the byte check below catches it */
    size_t numel = 1;
    int overflow = 0, i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!json_uint(d, &v))
            return pk_errf(err, "%s: tensor " NAME_FMT " has a bad shape: dimension %d is not a non-negative "
                                "integer", f->path, name, i);
        t->shape[i++] = (int64_t)v;
    }
    for (i = 0; i < ndim; i++) {
        size_t v = (size_t)t->shape[i];
        if (v == 0) {
            numel = 0;
            overflow = 0;
            break;
        }
        if (numel > SIZE_MAX / v) overflow = 1;
        else numel *= v;
    }
    size_t esize = st_dtypes[t->dtype].size;
    if (overflow || numel > SIZE_MAX / esize) {
        char s[256];
        shape_str(s, sizeof s, t->shape, ndim);
        return pk_errf(err, "%s: tensor " NAME_FMT " has shape %s whose size overflows", f->path, name, s);
    }
    t->numel = numel;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return pk_errf(err, "%s: tensor " NAME_FMT " has bad \"data_offsets\"; expected two integers [begin, end]",
                       f->path, name);
    uint64_t b, en;
    if (!json_uint(cJSON_GetArrayItem(off, 0), &b) || !json_uint(cJSON_GetArrayItem(off, 1), &en) || en < b)
        return pk_errf(err, "%s: tensor " NAME_FMT " has bad \"data_offsets\"; expected two ascending "
                            "non-negative integers [begin, end]", f->path, name);
    if (en > data_size)
        return pk_errf(err, "%s: tensor " NAME_FMT " has data_offsets [%llu, %llu] outside the data block of %zu "
                            "bytes", f->path, name, (unsigned long long)b, (unsigned long long)en, data_size);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    if (t->end - t->begin != numel * esize) {
        char s[256];
        shape_str(s, sizeof s, t->shape, ndim);
        return pk_errf(err, "%s: tensor " NAME_FMT " spans %zu bytes (data_offsets [%zu, %zu]) but shape %s of %s "
                            "needs %zu", f->path, name, t->end - t->begin, t->begin, t->end, s,
                       st_dtypes[t->dtype].name, numel * esize);
    }
    return PK_OK;
}

static int cmp_name(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_offsets(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Checks names are unique and the tensors tile the data block exactly. */
static int check_layout(const StFile *f, size_t data_size, char *err) {
    int n = f->num_tensors;
    if (n == 0) {
        if (data_size != 0)
            return pk_errf(err, "%s: %zu data bytes follow a header that lists no tensors", f->path, data_size);
        return PK_OK;
    }
    const StTensor **order = pk_malloc((size_t)n * sizeof *order, err);
    if (!order) return PK_FAIL;
    for (int i = 0; i < n; i++) order[i] = &f->tensors[i];
    int rc = PK_OK;
    qsort(order, (size_t)n, sizeof *order, cmp_name);
    for (int i = 1; i < n && rc == PK_OK; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            rc = pk_errf(err, "%s: tensor name " NAME_FMT " appears twice in the header", f->path, order[i]->name);
    if (rc == PK_OK) {
        qsort(order, (size_t)n, sizeof *order, cmp_offsets);
        size_t at = 0;
        for (int i = 0; i < n && rc == PK_OK; i++) {
            const StTensor *t = order[i];
            if (t->begin < at)
                rc = pk_errf(err, "%s: tensor " NAME_FMT " (bytes %zu..%zu) overlaps tensor " NAME_FMT
                                  " (bytes %zu..%zu)", f->path, t->name, t->begin, t->end, order[i - 1]->name,
                             order[i - 1]->begin, order[i - 1]->end);
            else if (t->begin > at)
                rc = pk_errf(err, "%s: the data block has a gap of %zu unused bytes at offset %zu before tensor "
                                  NAME_FMT "; tensors must cover it exactly", f->path, t->begin - at, at, t->name);
            else
                at = t->end;
        }
        if (rc == PK_OK && at != data_size)
            rc = pk_errf(err, "%s: %zu unused bytes at the end of the data block (tensors end at %zu of %zu)",
                         f->path, data_size - at, at, data_size);
    }
    free(order);
    return rc;
}

/* Parses and validates the header of f->map (f->size bytes); fills tensors. */
static int st_parse(StFile *f, char *err) {
    if (f->size < 8)
        return pk_errf(err, "%s: file of %zu bytes is too short for a safetensors file (needs an 8-byte header "
                            "length)", f->path, f->size);
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n > ST_MAX_HEADER)
        return pk_errf(err, "%s: header length %llu is absurd (limit %llu bytes); not a safetensors file?",
                       f->path, (unsigned long long)n, ST_MAX_HEADER);
    if (n > f->size - 8)
        return pk_errf(err, "%s: header length %llu runs past the end of the file (%zu bytes)", f->path,
                       (unsigned long long)n, f->size);
    if (n < 2)
        return pk_errf(err, "%s: header of %llu bytes cannot hold a JSON object", f->path, (unsigned long long)n);
    const char *hdr = (const char *)f->map + 8;
    if (memchr(hdr, 0, n))
        return pk_errf(err, "%s: header contains a NUL byte; expected UTF-8 JSON", f->path);
    long bad = pk_utf8_invalid_at(hdr, n);
    if (bad >= 0) return pk_errf(err, "%s: header is not valid UTF-8 at byte %ld", f->path, 8 + bad);
    f->data_start = 8 + (size_t)n;
    size_t data_size = f->size - f->data_start;

    /* cJSON wants a NUL-terminated buffer */
    char *text = pk_malloc(n + 1, err);
    if (!text) return PK_FAIL;
    memcpy(text, hdr, n);
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    if (!root) {
        long at = end ? (long)(end - text) : 0;
        free(text);
        return pk_errf(err, "%s: header is not valid JSON (error near byte %ld of the header)", f->path, at);
    }
    for (const char *p = end; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            long at = (long)(p - text);
            free(text);
            cJSON_Delete(root);
            return pk_errf(err, "%s: header has trailing bytes after its JSON object (at byte %ld)", f->path, at);
        }
    free(text);
    int rc = PK_OK;
    if (!cJSON_IsObject(root)) {
        rc = pk_errf(err, "%s: header is JSON but not an object; expected {name: {dtype, shape, data_offsets}}",
                     f->path);
        goto done;
    }
    int count = 0, metas = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) metas++;
        else count++;
    }
    if (metas > 1) {
        rc = pk_errf(err, "%s: \"__metadata__\" appears twice in the header", f->path);
        goto done;
    }
    f->tensors = pk_calloc((size_t)count, sizeof *f->tensors, err);
    if (!f->tensors) {
        rc = PK_FAIL;
        goto done;
    }
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                rc = pk_errf(err, "%s: \"__metadata__\" is not an object of strings", f->path);
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) if (!cJSON_IsString(m)) {
                rc = pk_errf(err, "%s: \"__metadata__\" value " NAME_FMT " is not a string", f->path, m->string);
                goto done;
            }
            continue;
        }
        StTensor *t = &f->tensors[f->num_tensors];
        t->name = strdup(e->string);
        if (!t->name) {
            rc = pk_errf(err, "%s: out of memory", f->path);
            goto done;
        }
        f->num_tensors++;
        if ((rc = parse_entry(f, e, t, data_size, err)) != PK_OK) goto done;
    }
    rc = check_layout(f, data_size, err);
done:
    cJSON_Delete(root);
    return rc;
}

int st_open_memory(StFile *f, const char *path, const void *data, size_t size, char *err) {
    memset(f, 0, sizeof *f);
    if (st_set_path(f, path, ST_OWN_HEAP, err) != PK_OK) return PK_FAIL;
    f->map = pk_malloc(size, err);
    if (!f->map) {
        st_close(f);
        return PK_FAIL;
    }
    if (size) memcpy(f->map, data, size);
    f->size = size;
    if (st_parse(f, err) != PK_OK) {
        st_close(f);
        return PK_FAIL;
    }
    return PK_OK;
}

int st_open(StFile *f, const char *path, char *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pk_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pk_errf(err, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return pk_errf(err, "%s: file of %lld bytes is too short for a safetensors file (needs an 8-byte header "
                            "length)", path, (long long)st.st_size);
    }
    /* mmap: a multi-GB checkpoint is paged in as it is converted, not copied whole */
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return pk_errf(err, "%s: cannot map: %s", path, strerror(errno));
    if (st_set_path(f, path, ST_OWN_MMAP, err) != PK_OK) {
        munmap(map, (size_t)st.st_size);
        return PK_FAIL;
    }
    f->map = map;
    f->size = (size_t)st.st_size;
    if (st_parse(f, err) != PK_OK) {
        st_close(f);
        return PK_FAIL;
    }
    return PK_OK;
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->num_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- conversion */

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in f32 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

void st_read_f32(const StFile *f, const StTensor *t, float *out) {
    const unsigned char *p = f->map + f->data_start + t->begin;
    size_t n = t->numel;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, n * 4); break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = bf16_to_f32(h);
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            out[i] = (float)v;
        }
        break;
    default: {
        int64_t *tmp = malloc(n ? n * sizeof *tmp : 1);
        if (tmp) {
            st_read_i64(f, t, tmp);
            for (size_t i = 0; i < n; i++) out[i] = (float)tmp[i];
            free(tmp);
        } else {
            for (size_t i = 0; i < n; i++) out[i] = NAN;
        }
    }
    }
}

/* out of range or NaN floats land on 0 or the int64 limits instead of being undefined */
static int64_t f64_to_i64(double v) {
    if (!(v == v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

int st_read_f32_finite(const StFile *f, const StTensor *t, float *out, char *err) {
    st_read_f32(f, t, out);
    for (size_t i = 0; i < t->numel; i++) {
        if (isfinite(out[i])) continue;
        /* the element's index in every dimension, last fastest */
        char where[160] = "";
        size_t rest = i, w = 0;
        int64_t idx[ST_MAX_DIMS] = {0};
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] > 0) idx[d] = (int64_t)(rest % (size_t)t->shape[d]), rest /= (size_t)t->shape[d];
        }
        for (int d = 0; t->ndim > 1 && d < t->ndim && w + 24 < sizeof where; d++)
            w += (size_t)snprintf(where + w, sizeof where - w, "%s%lld", d ? ", " : " [", (long long)idx[d]);
        if (t->ndim > 1) snprintf(where + w, sizeof where - w, "]");
        const char *what = isnan(out[i]) ? "NaN" : out[i] > 0 ? "+infinity" : "-infinity";
        if (t->dtype == ST_F64 && !isnan(out[i])) {
            double v;
            memcpy(&v, f->map + f->data_start + t->begin + 8 * i, 8);
            if (isfinite(v)) what = "a value beyond float32's range";
        }
        return pk_errf(err, "%s: tensor \"%.120s\" holds %s at element %zu%s (of %zu); expected finite numbers",
                       f->path, t->name, what, i, where, t->numel);
    }
    return PK_OK;
}

void st_read_i64(const StFile *f, const StTensor *t, int64_t *out) {
    const unsigned char *p = f->map + f->data_start + t->begin;
    size_t n = t->numel;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ST_I64: memcpy(&out[i], p + 8 * i, 8); break;
        case ST_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = v; } break;
        case ST_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); out[i] = v; } break;
        case ST_I8: out[i] = (int8_t)p[i]; break;
        case ST_U8: out[i] = p[i]; break;
        case ST_BOOL: out[i] = p[i] != 0; break;
        case ST_F32: { float v; memcpy(&v, p + 4 * i, 4); out[i] = f64_to_i64(v); } break;
        case ST_F64: { double v; memcpy(&v, p + 8 * i, 8); out[i] = f64_to_i64(v); } break;
        case ST_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = f64_to_i64(f16_to_f32(h)); } break;
        case ST_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = f64_to_i64(bf16_to_f32(h)); } break;
        }
    }
}

/* ---------------------------------------------------------------- sets of files */

void st_set_close(StSet *s) {
    if (!s) return;
    for (int i = 0; i < s->num_files; i++) st_close(&s->files[i]);
    free(s->files);
    s->files = NULL;
    s->num_files = 0;
}

const StTensor *st_set_find(const StSet *s, const char *name, const StFile **file_out) {
    for (int i = 0; i < s->num_files; i++) {
        const StTensor *t = st_find(&s->files[i], name);
        if (t) {
            if (file_out) *file_out = &s->files[i];
            return t;
        }
    }
    if (file_out) *file_out = NULL;
    return NULL;
}

/* Opens the shards named by an index's weight_map; every mapping must hold. */
static int st_set_open_index(StSet *s, const char *dir, const char *index_path, char *err) {
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(index_path, &text, &len, err) != PK_OK) return PK_FAIL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = PK_OK;
    char **shards = NULL;
    int num_shards = 0;
    if (!root || !cJSON_IsObject(root)) {
        rc = pk_errf(err, "%s: not a JSON object; expected {\"weight_map\": {tensor: shard file}}", index_path);
        goto done;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        rc = pk_errf(err, "%s: \"weight_map\" is missing or empty; expected an object mapping tensor names to "
                          "shard files", index_path);
        goto done;
    }
    int count = cJSON_GetArraySize(wm);
    shards = pk_calloc((size_t)count, sizeof *shards, err);
    if (!shards) {
        rc = PK_FAIL;
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            rc = pk_errf(err, "%s: weight_map entry " NAME_FMT " is not a shard file name", index_path, e->string);
            goto done;
        }
        const char *shard = e->valuestring;
        if (strchr(shard, '/') || strcmp(shard, "..") == 0 || strcmp(shard, ".") == 0) {
            rc = pk_errf(err, "%s: weight_map entry " NAME_FMT " names shard \"%.120s\"; expected a file name in "
                              "the same folder", index_path, e->string, shard);
            goto done;
        }
        int known = 0;
        for (int i = 0; i < num_shards && !known; i++) known = strcmp(shards[i], shard) == 0;
        if (!known) shards[num_shards++] = (char *)shard;
    }
    s->files = pk_calloc((size_t)num_shards, sizeof *s->files, err);
    if (!s->files) {
        rc = PK_FAIL;
        goto done;
    }
    for (int i = 0; i < num_shards; i++) {
        char path[4096];
        if (pk_path_join(path, sizeof path, dir, shards[i], err) != PK_OK) {
            rc = PK_FAIL;
            goto done;
        }
        if (!pk_file_exists(path)) {
            rc = pk_errf(err, "%s: shard %s listed in the weight_map does not exist", index_path, path);
            goto done;
        }
        if ((rc = st_open(&s->files[i], path, err)) != PK_OK) goto done;
        s->num_files++;
    }
    cJSON_ArrayForEach(e, wm) {
        int i = 0;
        while (strcmp(shards[i], e->valuestring) != 0) i++;
        if (!st_find(&s->files[i], e->string)) {
            rc = pk_errf(err, "%s: weight_map puts tensor " NAME_FMT " in %s, which does not hold it", index_path,
                         e->string, s->files[i].path);
            goto done;
        }
    }
    /* a name in two shards would make lookups ambiguous */
    for (int i = 0; i < s->num_files; i++)
        for (int k = 0; k < s->files[i].num_tensors; k++)
            for (int j = i + 1; j < s->num_files; j++)
                if (st_find(&s->files[j], s->files[i].tensors[k].name)) {
                    rc = pk_errf(err, "%s: tensor " NAME_FMT " is stored in both %s and %s", index_path,
                                 s->files[i].tensors[k].name, s->files[i].path, s->files[j].path);
                    goto done;
                }
done:
    free(shards);
    cJSON_Delete(root);
    if (rc != PK_OK) st_set_close(s);
    return rc;
}

int st_set_open_dir(StSet *s, const char *dir, char *err) {
    s->files = NULL;
    s->num_files = 0;
    char path[4096];
    if (pk_path_join(path, sizeof path, dir, "model.safetensors", err) != PK_OK) return PK_FAIL;
    if (pk_file_exists(path)) {
        s->files = pk_calloc(1, sizeof *s->files, err);
        if (!s->files) return PK_FAIL;
        if (st_open(&s->files[0], path, err) != PK_OK) {
            free(s->files);
            s->files = NULL;
            return PK_FAIL;
        }
        s->num_files = 1;
        return PK_OK;
    }
    char index[4096];
    if (pk_path_join(index, sizeof index, dir, "model.safetensors.index.json", err) != PK_OK) return PK_FAIL;
    if (pk_file_exists(index)) return st_set_open_index(s, dir, index, err);
    if (!pk_is_dir(dir)) return pk_errf(err, "%s: no such folder", dir);
    return pk_errf(err, "%s: holds neither model.safetensors nor model.safetensors.index.json", dir);
}

/* ---------------------------------------------------------------- writing */

/* The header JSON (entries in order, "__metadata__" first as Hugging Face writes
 * it), padded with spaces to a multiple of 8 so the data block stays aligned. */
static char *build_header(const char *path, const StWriteEntry *entries, int n, const char *const *metadata,
                          size_t *header_len, size_t *data_len, char *err) {
    cJSON *root = cJSON_CreateObject();
    char *json = NULL, *out = NULL;
    if (!root) goto oom;
    if (metadata && metadata[0]) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        if (!meta) goto oom;
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                pk_errf(err, "%s: metadata key \"%s\" has no value", path, metadata[i]);
                goto fail;
            }
            if (!cJSON_AddStringToObject(meta, metadata[i], metadata[i + 1])) goto oom;
        }
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StWriteEntry *w = &entries[i];
        if (!w->name || !w->name[0] || strcmp(w->name, "__metadata__") == 0) {
            pk_errf(err, "%s: entry %d has no usable tensor name", path, i);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(entries[j].name, w->name) == 0) {
                pk_errf(err, "%s: tensor " NAME_FMT " is listed twice", path, w->name);
                goto fail;
            }
        if (st_dtype_size(w->dtype) == 0 || w->ndim < 0 || w->ndim > ST_MAX_DIMS) {
            pk_errf(err, "%s: tensor " NAME_FMT " has a bad dtype or %d dimensions", path, w->name, w->ndim);
            goto fail;
        }
        size_t numel = 1;
        double dims[ST_MAX_DIMS];
        for (int d = 0; d < w->ndim; d++) {
            if (w->shape[d] < 0 || (w->shape[d] > 0 && numel > SIZE_MAX / (size_t)w->shape[d])) {
                pk_errf(err, "%s: tensor " NAME_FMT " has a bad shape", path, w->name);
                goto fail;
            }
            numel *= (size_t)w->shape[d];
            dims[d] = (double)w->shape[d];
        }
        size_t bytes = numel * st_dtype_size(w->dtype);
        if (numel > 0 && !w->data) {
            pk_errf(err, "%s: tensor " NAME_FMT " has no data", path, w->name);
            goto fail;
        }
        cJSON *e = cJSON_AddObjectToObject(root, w->name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(w->dtype))) goto oom;
        cJSON *shape = w->ndim > 0 ? cJSON_CreateDoubleArray(dims, w->ndim) : cJSON_CreateArray();
        if (!shape) goto oom;
        cJSON_AddItemToObject(e, "shape", shape);
        double offs[2] = {(double)offset, (double)(offset + bytes)};
        cJSON *o = cJSON_CreateDoubleArray(offs, 2);
        if (!o) goto oom;
        cJSON_AddItemToObject(e, "data_offsets", o);
        offset += bytes;
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) goto oom;
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    out = malloc(8 + padded);
    if (!out) goto oom;
    uint64_t hl = padded;
    memcpy(out, &hl, 8);
    memcpy(out + 8, json, jl);
    memset(out + 8 + jl, ' ', padded - jl);
    *header_len = 8 + padded;
    *data_len = offset;
    free(json);
    cJSON_Delete(root);
    return out;
oom:
    pk_errf(err, "%s: out of memory building the header", path);
fail:
    free(json);
    cJSON_Delete(root);
    return NULL;
}

typedef struct {
    const char *header;
    size_t header_len;
    const StWriteEntry *entries;
    int n;
} StFileParts;

static int fill_safetensors(void *ctx, int fd) {
    const StFileParts *f = ctx;
    if (pk_write_all(fd, f->header, f->header_len) != 0) return -1;
    for (int i = 0; i < f->n; i++) {
        size_t numel = 1;
        for (int d = 0; d < f->entries[i].ndim; d++) numel *= (size_t)f->entries[i].shape[d];
        size_t bytes = numel * st_dtype_size(f->entries[i].dtype);
        if (bytes && pk_write_all(fd, f->entries[i].data, bytes) != 0) return -1;
    }
    return 0;
}

int st_write(const char *path, const StWriteEntry *entries, int n, const char *const *metadata, char *err) {
    size_t header_len = 0, data_len = 0;
    char *header = build_header(path, entries, n, metadata, &header_len, &data_len, err);
    if (!header) return PK_FAIL;
    /* written beside the target, then renamed over it: readers never see half a file */
    StFileParts parts = {header, header_len, entries, n};
    int rc = pk_write_atomic(path, fill_safetensors, &parts, err);
    free(header);
    (void)data_len;
    return rc;
}
