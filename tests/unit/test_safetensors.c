/* safetensors reader and writer: the fixture against its raw bytes, dtype
 * conversions (F16 subnormals, inf, NaN; BF16), write-then-read, sharded sets,
 * and every kind of malformed file refused with a sentence naming it. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "safetensors.h"
#include "test.h"

#define FIXTURE "tests/fixtures/hf-gpt2-tiny/model.safetensors"

static char tmp_dir[64];

static void make_tmp_dir(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/pk_test_st_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void remove_tmp_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
}

/* Bytes of a safetensors file: the u64 length, the header text as given, then data_len bytes of data. */
static unsigned char *craft(const char *header, const void *data, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    unsigned char *b = calloc(1, *size);
    uint64_t n = hl;
    memcpy(b, &n, 8);
    memcpy(b + 8, header, hl);
    if (data) memcpy(b + 8 + hl, data, data_len);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static int bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (int)u;
}

static void test_fixture_against_raw_bytes(void) {
    char err[PK_ERR_LEN] = "";
    StFile f;
    int rc = st_open(&f, FIXTURE, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc != PK_OK) return;
    /* 2 layers x 12 tensors + wte, wpe, ln_f.weight, ln_f.bias */
    CHECK(f.num_tensors == 28);
    const StTensor *wte = st_find(&f, "transformer.wte.weight");
    const StTensor *qkv = st_find(&f, "transformer.h.1.attn.c_attn.weight");
    CHECK(wte && wte->dtype == ST_F32 && wte->ndim == 2 && wte->shape[0] == 50257 && wte->shape[1] == 64);
    CHECK(qkv && qkv->ndim == 2 && qkv->shape[0] == 64 && qkv->shape[1] == 192 && qkv->numel == 64 * 192);
    CHECK(st_find(&f, "lm_head.weight") == NULL);
    CHECK(st_find(&f, "transformer.h.2.ln_1.weight") == NULL);
    if (!wte || !qkv) {
        st_close(&f);
        return;
    }
    /* the raw file, read independently: u64 header length, then the data block */
    FILE *raw = fopen(FIXTURE, "rb");
    uint64_t hl = 0;
    CHECK(raw && fread(&hl, 8, 1, raw) == 1);
    CHECK(f.data_start == 8 + hl);
    const StTensor *probe[2] = {wte, qkv};
    for (int k = 0; k < 2; k++) {
        float *conv = malloc(probe[k]->numel * sizeof(float));
        st_read_f32(&f, probe[k], conv);
        size_t idx[3] = {0, 777, probe[k]->numel - 1};
        for (int j = 0; j < 3; j++) {
            float want;
            fseek(raw, (long)(8 + hl + probe[k]->begin + 4 * idx[j]), SEEK_SET);
            CHECK(fread(&want, 4, 1, raw) == 1);
            CHECK(bits_of(conv[idx[j]]) == bits_of(want));
        }
        free(conv);
    }
    fclose(raw);
    st_close(&f);
    CHECK(f.map == NULL && f.tensors == NULL);
}

static uint16_t u16s_f16[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff,
                              0x7c00, 0xfc00, 0x3555, 0x8001, 0x7e00};
static void test_f16_conversion(void) {
    const float want[] = {0.0f, -0.0f, 5.9604644775390625e-08f, 6.0975551605224609e-05f, 6.103515625e-05f, 1.0f,
                          -2.0f, 65504.0f, INFINITY, -INFINITY, 0.333251953125f, -5.9604644775390625e-08f, NAN};
    int n = (int)(sizeof u16s_f16 / 2);
    char header[256];
    snprintf(header, sizeof header, "{\"x\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[0,%d]}}", n, 2 * n);
    size_t size;
    unsigned char *bytes = craft(header, u16s_f16, sizeof u16s_f16, &size);
    char err[PK_ERR_LEN] = "";
    StFile f;
    int rc = st_open_memory(&f, "f16.safetensors", bytes, size, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    free(bytes);
    if (rc != PK_OK) return;
    float out[16];
    st_read_f32(&f, st_find(&f, "x"), out);
    for (int i = 0; i < n - 1; i++) CHECK_MSG(bits_of(out[i]) == bits_of(want[i]), "F16 %04x -> %g", u16s_f16[i], out[i]);
    CHECK(isnan(out[n - 1]));
    CHECK(signbit(out[1]) && !signbit(out[0]));
    st_close(&f);
}

static void test_bf16_conversion(void) {
    const uint16_t in[] = {0x3f80, 0xc040, 0x4049, 0x7f80, 0xff80, 0x0001, 0x8000, 0x7fc0};
    const float want[] = {1.0f, -3.0f, 3.140625f, INFINITY, -INFINITY, 9.18354961579912115e-41f, -0.0f};
    char header[256];
    snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"},\"y\":{\"dtype\":\"BF16\",\"shape\":[2,4],"
                                    "\"data_offsets\":[0,16]}}");
    size_t size;
    unsigned char *bytes = craft(header, in, sizeof in, &size);
    char err[PK_ERR_LEN] = "";
    StFile f;
    int rc = st_open_memory(&f, "bf16.safetensors", bytes, size, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    free(bytes);
    if (rc != PK_OK) return;
    float out[8];
    st_read_f32(&f, st_find(&f, "y"), out);
    for (int i = 0; i < 7; i++) CHECK_MSG(bits_of(out[i]) == bits_of(want[i]), "BF16 %04x -> %g", in[i], out[i]);
    CHECK(isnan(out[7]));
    st_close(&f);
}

static void test_integer_and_f64_dtypes(void) {
    /* data block: F64 [2] | I64 [2] | I32 [2] | I16 [2] | I8 [2] | U8 [2] | BOOL [2] */
    unsigned char data[16 + 16 + 8 + 4 + 2 + 2 + 2];
    double d[2] = {0.1, -1e300};
    int64_t l[2] = {-5, 1LL << 40};
    int32_t i32[2] = {-7, 2147483647};
    int16_t i16[2] = {-300, 300};
    int8_t i8[2] = {-128, 127};
    uint8_t u8[2] = {0, 255};
    uint8_t bl[2] = {1, 0};
    size_t o = 0;
    memcpy(data + o, d, 16), o += 16;
    memcpy(data + o, l, 16), o += 16;
    memcpy(data + o, i32, 8), o += 8;
    memcpy(data + o, i16, 4), o += 4;
    memcpy(data + o, i8, 2), o += 2;
    memcpy(data + o, u8, 2), o += 2;
    memcpy(data + o, bl, 2), o += 2;
    const char *header =
        "{\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
        "\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[16,32]},"
        "\"i\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[32,40]},"
        "\"s\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[40,44]},"
        "\"c\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[44,46]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[46,48]},"
        "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[48,50]}}  ";
    size_t size;
    unsigned char *bytes = craft(header, data, sizeof data, &size);
    char err[PK_ERR_LEN] = "";
    StFile f;
    int rc = st_open_memory(&f, "ints.safetensors", bytes, size, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    free(bytes);
    if (rc != PK_OK) return;
    float fo[2];
    int64_t io[2];
    st_read_f32(&f, st_find(&f, "d"), fo);
    CHECK(fo[0] == 0.1f && isinf(fo[1]) && fo[1] < 0);
    st_read_i64(&f, st_find(&f, "l"), io);
    CHECK(io[0] == -5 && io[1] == (1LL << 40));
    st_read_i64(&f, st_find(&f, "i"), io);
    CHECK(io[0] == -7 && io[1] == 2147483647);
    st_read_f32(&f, st_find(&f, "i"), fo);
    CHECK(fo[0] == -7.0f);
    st_read_i64(&f, st_find(&f, "s"), io);
    CHECK(io[0] == -300 && io[1] == 300);
    st_read_i64(&f, st_find(&f, "c"), io);
    CHECK(io[0] == -128 && io[1] == 127);
    st_read_i64(&f, st_find(&f, "u"), io);
    CHECK(io[0] == 0 && io[1] == 255);
    st_read_i64(&f, st_find(&f, "b"), io);
    CHECK(io[0] == 1 && io[1] == 0);
    CHECK(st_find(&f, "i")->ndim == 2 && st_find(&f, "i")->shape[0] == 1);
    CHECK(strcmp(st_dtype_name(ST_BF16), "BF16") == 0 && st_dtype_size(ST_F64) == 8);
    st_close(&f);
}

static void test_write_then_read(void) {
    char path[128], err[PK_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/w.safetensors", tmp_dir);
    float a[6] = {1.5f, -0.0f, NAN, INFINITY, 1e-40f, 3.0f};
    int64_t ids[3] = {50256, -1, 7};
    float scalar = 42.0f;
    StWriteEntry e[4] = {
        {.name = "zeta.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "alpha \"quoted\"", .dtype = ST_I64, .ndim = 1, .shape = {3}, .data = ids},
        {.name = "empty", .dtype = ST_F32, .ndim = 2, .shape = {0, 5}, .data = NULL},
        {.name = "scalar", .dtype = ST_F32, .ndim = 0, .data = &scalar},
    };
    const char *meta[] = {"format", "pt", "note", "x", NULL};
    int rc = st_write(path, e, 4, meta, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    char *raw = NULL;
    size_t len = 0;
    CHECK(pk_read_file(path, &raw, &len, err) == PK_OK);
    if (!raw) return;
    uint64_t hl;
    memcpy(&hl, raw, 8);
    CHECK(hl % 8 == 0 && 8 + hl + 24 + 24 + 4 == len);
    /* metadata first, then the entries in the given order, spaces as padding */
    char *hdr = strndup(raw + 8, hl);
    char *pm = strstr(hdr, "\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"}");
    char *pz = strstr(hdr, "\"zeta.weight\""), *pa = strstr(hdr, "\"alpha \\\"quoted\\\"\"");
    char *pe = strstr(hdr, "\"empty\""), *ps = strstr(hdr, "\"scalar\"");
    CHECK(pm && pz && pa && pe && ps && pm < pz && pz < pa && pa < pe && pe < ps);
    CHECK(strstr(hdr, "\"data_offsets\":[0,24]") != NULL);
    size_t jl = strlen(hdr);
    while (jl > 0 && hdr[jl - 1] == ' ') jl--;
    CHECK(hdr[jl - 1] == '}');
    free(hdr);
    free(raw);

    StFile f;
    rc = st_open(&f, path, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc != PK_OK) return;
    CHECK(f.num_tensors == 4);
    float back[6];
    st_read_f32(&f, st_find(&f, "zeta.weight"), back);
    for (int i = 0; i < 6; i++) CHECK(bits_of(back[i]) == bits_of(a[i]));
    int64_t ib[3];
    const StTensor *t = st_find(&f, "alpha \"quoted\"");
    CHECK(t && t->dtype == ST_I64);
    if (t) {
        st_read_i64(&f, t, ib);
        CHECK(ib[0] == 50256 && ib[1] == -1 && ib[2] == 7);
    }
    t = st_find(&f, "empty");
    CHECK(t && t->numel == 0 && t->ndim == 2 && t->shape[1] == 5);
    t = st_find(&f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1);
    if (t) {
        st_read_f32(&f, t, back);
        CHECK(back[0] == 42.0f);
    }
    st_close(&f);

    /* bad entries are refused and nothing is left behind */
    char path2[128];
    snprintf(path2, sizeof path2, "%s/dup.safetensors", tmp_dir);
    StWriteEntry dup[2] = {e[0], e[0]};
    CHECK(st_write(path2, dup, 2, NULL, err) == PK_FAIL && strstr(err, "twice") && strstr(err, "zeta.weight"));
    CHECK(!pk_file_exists(path2));
    StWriteEntry neg = e[0];
    neg.shape[0] = -1;
    CHECK(st_write(path2, &neg, 1, NULL, err) == PK_FAIL && strstr(err, "shape"));
    snprintf(path2, sizeof path2, "%s/no/such/dir/x.safetensors", tmp_dir);
    CHECK(st_write(path2, e, 1, NULL, err) == PK_FAIL && strstr(err, "no/such/dir"));
}

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    const char *expect; /* substring of the message */
} BadCase;

static void test_malformed_files_refused(void) {
    static const BadCase cases[] = {
        {"not JSON", "{\"a\": ", 0, "not valid JSON"},
        {"JSON array", "[1, 2, 3]", 0, "not an object"},
        {"JSON string", "\"hello\"", 0, "not an object"},
        {"trailing garbage", "{} x", 0, "trailing bytes"},
        {"unknown dtype", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unknown dtype"},
        {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"entry not an object", "{\"w\":[1,2]}", 0, "not an object"},
        {"no shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape"},
        {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "bad shape"},
        {"fractional dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "bad shape"},
        {"string dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "bad shape"},
        {"too many dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "9 dimensions"},
        {"size overflow",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],\"data_offsets\":[0,4]}}", 4,
         "overflows"},
        {"offsets: one number", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "data_offsets"},
        {"offsets: descending", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "ascending"},
        {"offsets: negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "ascending"},
        {"offsets: fractional", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4, "data_offsets"},
        {"size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8"},
        {"outside the data block", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside"},
        {"overlap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps"},
        {"gap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "gap of 4"},
        {"gap at the start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap"},
        {"trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, "unused bytes"},
        {"data after an empty header", "{}", 4, "no tensors"},
        {"duplicate name",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
        {"metadata not strings", "{\"__metadata__\":{\"format\":1}}", 0, "__metadata__"},
        {"metadata not an object", "{\"__metadata__\":[]}", 0, "__metadata__"},
        {"invalid UTF-8", "{\"\xff\":{}}", 0, "UTF-8"},
        {"header too short", " ", 0, "cannot hold"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const BadCase *c = &cases[i];
        size_t size;
        unsigned char *zeros = calloc(1, c->data_len + 1);
        unsigned char *bytes = craft(c->header, zeros, c->data_len, &size);
        free(zeros);
        char err[PK_ERR_LEN] = "";
        StFile f;
        int rc = st_open_memory(&f, "crafted.safetensors", bytes, size, err);
        CHECK_MSG(rc == PK_FAIL, "%s: accepted", c->what);
        CHECK_MSG(strstr(err, c->expect) != NULL, "%s: message \"%s\" lacks \"%s\"", c->what, err, c->expect);
        CHECK_MSG(strstr(err, "crafted.safetensors") != NULL, "%s: message \"%s\" lacks the file", c->what, err);
        CHECK(f.map == NULL && f.tensors == NULL && f.num_tensors == 0);
        /* the same through a real file */
        char path[128];
        snprintf(path, sizeof path, "%s/bad%zu.safetensors", tmp_dir, i);
        write_bytes(path, bytes, size);
        err[0] = 0;
        rc = st_open(&f, path, err);
        CHECK_MSG(rc == PK_FAIL && strstr(err, c->expect) && strstr(err, path), "%s (file): \"%s\"", c->what, err);
        free(bytes);
    }
    /* messages name the tensor */
    {
        size_t size;
        unsigned char *bytes = craft("{\"h.3.mlp.c_fc.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,4]}}",
                                     "abcd", 4, &size);
        char err[PK_ERR_LEN] = "";
        StFile f;
        CHECK(st_open_memory(&f, "m.safetensors", bytes, size, err) == PK_FAIL);
        CHECK_MSG(strstr(err, "h.3.mlp.c_fc.weight") && strstr(err, "[3]"), "%s", err);
        free(bytes);
    }
    /* header lengths: NUL inside, absurd, past the end, file too short */
    {
        char err[PK_ERR_LEN] = "";
        StFile f;
        unsigned char b[32] = {0};
        uint64_t n = 4;
        memcpy(b, &n, 8);
        memcpy(b + 8, "{}\0 ", 4);
        CHECK(st_open_memory(&f, "nul.safetensors", b, 12, err) == PK_FAIL && strstr(err, "NUL"));
        n = 1ULL << 40;
        memcpy(b, &n, 8);
        CHECK(st_open_memory(&f, "huge.safetensors", b, 32, err) == PK_FAIL && strstr(err, "absurd"));
        n = 25;
        memcpy(b, &n, 8);
        CHECK(st_open_memory(&f, "past.safetensors", b, 32, err) == PK_FAIL && strstr(err, "runs past"));
        CHECK(st_open_memory(&f, "short.safetensors", b, 5, err) == PK_FAIL && strstr(err, "too short"));
        char path[128];
        snprintf(path, sizeof path, "%s/short.safetensors", tmp_dir);
        write_bytes(path, b, 3);
        CHECK(st_open(&f, path, err) == PK_FAIL && strstr(err, "too short") && strstr(err, path));
        snprintf(path, sizeof path, "%s/missing.safetensors", tmp_dir);
        CHECK(st_open(&f, path, err) == PK_FAIL && strstr(err, "cannot open") && strstr(err, path));
        CHECK(st_open(&f, tmp_dir, err) == PK_FAIL && strstr(err, "not a regular file"));
    }
    /* an empty header with no data is a valid empty file */
    {
        size_t size;
        unsigned char *bytes = craft("{}      ", NULL, 0, &size);
        char err[PK_ERR_LEN] = "";
        StFile f;
        CHECK_MSG(st_open_memory(&f, "empty.safetensors", bytes, size, err) == PK_OK, "%s", err);
        CHECK(f.num_tensors == 0);
        st_close(&f);
        free(bytes);
    }
}

/* Writes a two-shard folder: shard 1 holds a, b; shard 2 holds c. */
static void write_shards(const char *dir, const char *index_json) {
    char err[PK_ERR_LEN], path[256];
    float va[2] = {1, 2}, vb[3] = {3, 4, 5}, vc[1] = {6};
    StWriteEntry s1[2] = {{.name = "a", .dtype = ST_F32, .ndim = 1, .shape = {2}, .data = va},
                          {.name = "b", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = vb}};
    StWriteEntry s2[1] = {{.name = "c", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = vc}};
    pk_mkdirs(dir, err);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(st_write(path, s1, 2, NULL, err) == PK_OK);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(st_write(path, s2, 1, NULL, err) == PK_OK);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_bytes(path, index_json, strlen(index_json));
}

static void test_sharded_set(void) {
    char dir[128], err[PK_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "%s/sharded", tmp_dir);
    write_shards(dir, "{\"metadata\":{\"total_size\":24},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                      "\"b\":\"model-00001-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}");
    StSet s;
    int rc = st_set_open_dir(&s, dir, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc == PK_OK) {
        CHECK(s.num_files == 2);
        const StFile *fa, *fc;
        const StTensor *a = st_set_find(&s, "a", &fa), *c = st_set_find(&s, "c", &fc);
        CHECK(a && c && fa != fc && strstr(fc->path, "00002"));
        float v;
        if (c) {
            st_read_f32(fc, c, &v);
            CHECK(v == 6.0f);
        }
        CHECK(st_set_find(&s, "zzz", &fa) == NULL && fa == NULL);
        st_set_close(&s);
    }

    struct {
        const char *index, *expect;
    } bad[] = {
        {"{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"c\":\"model-00003-of-00002.safetensors\"}}",
         "does not exist"},
        {"{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\"}}", "does not hold"},
        {"{\"weight_map\":{\"a\":\"../model-00001-of-00002.safetensors\"}}", "same folder"},
        {"{\"weight_map\":{}}", "weight_map"},
        {"{\"weight_map\":{\"a\":3}}", "not a shard file name"},
        {"{\"weight\":{}}", "weight_map"},
        {"[", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(dir, sizeof dir, "%s/badshard%zu", tmp_dir, i);
        write_shards(dir, bad[i].index);
        err[0] = 0;
        CHECK_MSG(st_set_open_dir(&s, dir, err) == PK_FAIL && strstr(err, bad[i].expect) &&
                      strstr(err, "model.safetensors.index.json"),
                  "index %zu: \"%s\"", i, err);
        CHECK(s.files == NULL && s.num_files == 0);
    }
    /* a tensor stored in two shards is ambiguous */
    {
        char path[256];
        snprintf(dir, sizeof dir, "%s/twice", tmp_dir);
        write_shards(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                          "\"c\":\"model-00002-of-00002.safetensors\"}}");
        float v = 1;
        StWriteEntry e[2] = {{.name = "c", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = &v},
                             {.name = "a", .dtype = ST_F32, .ndim = 0, .data = &v}};
        snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
        CHECK(st_write(path, e, 2, NULL, err) == PK_OK);
        CHECK_MSG(st_set_open_dir(&s, dir, err) == PK_FAIL && strstr(err, "both"), "%s", err);
    }
    /* a bad shard is named */
    {
        char path[256];
        snprintf(dir, sizeof dir, "%s/corrupt", tmp_dir);
        write_shards(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                          "\"c\":\"model-00002-of-00002.safetensors\"}}");
        snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
        write_bytes(path, "garbage", 7);
        CHECK_MSG(st_set_open_dir(&s, dir, err) == PK_FAIL && strstr(err, path), "%s", err);
    }
    /* neither file */
    snprintf(dir, sizeof dir, "%s/none", tmp_dir);
    pk_mkdirs(dir, err);
    CHECK(st_set_open_dir(&s, dir, err) == PK_FAIL && strstr(err, "neither") && strstr(err, dir));
    snprintf(dir, sizeof dir, "%s/nonexistent", tmp_dir);
    CHECK(st_set_open_dir(&s, dir, err) == PK_FAIL && strstr(err, "no such folder"));
    /* a single file wins over an index */
    CHECK(st_set_open_dir(&s, "tests/fixtures/hf-gpt2-tiny", err) == PK_OK && s.num_files == 1);
    st_set_close(&s);
}

int main(void) {
    make_tmp_dir();
    RUN(test_fixture_against_raw_bytes);
    RUN(test_f16_conversion);
    RUN(test_bf16_conversion);
    RUN(test_integer_and_f64_dtypes);
    RUN(test_write_then_read);
    RUN(test_malformed_files_refused);
    RUN(test_sharded_set);
    remove_tmp_dir();
    TEST_EXIT();
}
