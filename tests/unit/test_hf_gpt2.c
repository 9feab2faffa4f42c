/* Hugging Face GPT-2 folders: the tiny fixture against its raw bytes, save/load
 * bit-exact round trips (tied and untied), names without the prefix, sharded
 * folders, F16/BF16 storage, causal-mask buffers, and every bad config.json or
 * tensor set refused with a message naming the file and the problem. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "gpt2.h"
#include "safetensors.h"
#include "test.h"

#define FIXTURE_DIR "tests/fixtures/hf-gpt2-tiny"

static char tmp_dir[64];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text)) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void sub(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmp_dir, name); }

static int configs_equal(const GPT2Config *a, const GPT2Config *b) {
    return a->max_seq_len == b->max_seq_len && a->vocab_size == b->vocab_size && a->num_layers == b->num_layers &&
           a->num_heads == b->num_heads && a->channels == b->channels && a->n_inner == b->n_inner &&
           a->layer_norm_eps == b->layer_norm_eps && a->tied_lm_head == b->tied_lm_head &&
           a->eos_token_id == b->eos_token_id;
}

static int params_equal(const GPT2 *a, const GPT2 *b) {
    return a->num_parameters == b->num_parameters &&
           memcmp(a->params_memory, b->params_memory, a->num_parameters * sizeof(float)) == 0;
}

/* A small random model: V=11, maxT=6, C=8, L=2, H=2, F=12. */
static GPT2Config small_config(int tied) {
    GPT2Config c = {.max_seq_len = 6, .vocab_size = 11, .num_layers = 2, .num_heads = 2, .channels = 8,
                    .n_inner = 12, .layer_norm_eps = 1e-5f, .tied_lm_head = tied, .eos_token_id = 10,
                    .embd_pdrop = 0.1f, .attn_pdrop = 0.1f, .resid_pdrop = 0.1f};
    return c;
}

static int build_small(GPT2 *m, int tied, unsigned long long seed) {
    char err[PK_ERR_LEN];
    GPT2Config c = small_config(tied);
    if (gpt2_build(m, &c, err) != PK_OK) {
        printf("    gpt2_build: %s\n", err);
        return PK_FAIL;
    }
    gpt2_init_random(m, seed);
    return PK_OK;
}

/* Every tensor of m as write entries: name_fmt gets the HF name without the prefix. */
typedef struct {
    StWriteEntry e[64];
    char names[64][128];
    int n;
} Entries;

static void model_entries(const GPT2 *m, Entries *out, const char *prefix) {
    out->n = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        GPT2ParamInfo info;
        gpt2_param_info(&m->config, i, &info);
        if (info.numel == 0) continue;
        int slices = info.per_layer ? m->config.num_layers : 1;
        for (int l = 0; l < slices; l++) {
            char base[100];
            if (info.per_layer) snprintf(base, sizeof base, info.name, l);
            else snprintf(base, sizeof base, "%s", info.name);
            int k = out->n++;
            snprintf(out->names[k], sizeof out->names[k], "%s%s", i == 16 ? "" : prefix, base);
            out->e[k] = (StWriteEntry){.name = out->names[k], .dtype = ST_F32, .ndim = info.ndim,
                                       .shape = {(int64_t)info.shape[0], (int64_t)info.shape[1]},
                                       .data = m->params[i] + (size_t)l * (info.numel / (size_t)slices)};
        }
    }
}

static int find_entry(const Entries *en, const char *name) {
    for (int i = 0; i < en->n; i++)
        if (strcmp(en->names[i], name) == 0) return i;
    return -1;
}

/* A folder holding config.json for c and model.safetensors with the given entries. */
static void write_folder(const char *dir, const GPT2Config *c, const StWriteEntry *e, int n) {
    char err[PK_ERR_LEN], path[256];
    CHECK(pk_mkdirs(dir, err) == PK_OK);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_MSG(gpt2_config_save(c, path, err) == PK_OK, "%s", err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_MSG(st_write(path, e, n, NULL, err) == PK_OK, "%s", err);
}

static void test_load_fixture(void) {
    char err[PK_ERR_LEN] = "";
    GPT2 m;
    int rc = gpt2_load(&m, FIXTURE_DIR, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc != PK_OK) return;
    const GPT2Config *c = &m.config;
    CHECK(c->vocab_size == 50257 && c->max_seq_len == 128 && c->channels == 64 && c->num_layers == 2 &&
          c->num_heads == 4 && c->n_inner == 256 && c->tied_lm_head == 1 && c->eos_token_id == 50256);
    CHECK(c->layer_norm_eps == 1e-5f);
    CHECK(m.param_sizes[0] == 50257 * 64 && m.param_sizes[4] == 2 * 64 * 192 && m.param_sizes[16] == 0);
    /* values against the file's raw bytes, at offsets taken from the header */
    StFile f;
    CHECK(st_open(&f, FIXTURE_DIR "/model.safetensors", err) == PK_OK);
    FILE *raw = fopen(FIXTURE_DIR "/model.safetensors", "rb");
    struct {
        const char *name;
        int param;
        size_t param_offset; /* where the tensor starts inside m.params[param] */
    } probes[] = {
        {"transformer.wte.weight", 0, 0},
        {"transformer.h.1.attn.c_attn.weight", 4, 64 * 192},
        {"transformer.h.1.mlp.c_proj.bias", 13, 64},
        {"transformer.ln_f.weight", 14, 0},
    };
    for (int p = 0; p < 4 && raw; p++) {
        const StTensor *t = st_find(&f, probes[p].name);
        CHECK(t != NULL);
        if (!t) continue;
        size_t idx[3] = {0, t->numel / 2 + 3, t->numel - 1};
        for (int j = 0; j < 3; j++) {
            float want;
            fseek(raw, (long)(f.data_start + t->begin + 4 * idx[j]), SEEK_SET);
            CHECK(fread(&want, 4, 1, raw) == 1);
            float got = m.params[probes[p].param][probes[p].param_offset + idx[j]];
            CHECK_MSG(memcmp(&got, &want, 4) == 0, "%s[%zu]: %g vs %g", probes[p].name, idx[j], got, want);
        }
    }
    if (raw) fclose(raw);
    st_close(&f);
    gpt2_free(&m);
}

static void test_save_load_round_trip(void) {
    char err[PK_ERR_LEN] = "", dir[128], path[256];
    GPT2 a, b;
    CHECK(gpt2_load(&a, FIXTURE_DIR, err) == PK_OK);
    sub(dir, sizeof dir, "saved/nested");
    int rc = gpt2_save(&a, dir, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    rc = gpt2_load(&b, dir, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc == PK_OK) {
        CHECK(configs_equal(&a.config, &b.config));
        CHECK(params_equal(&a, &b));
        gpt2_free(&b);
    }
    /* the file is what transformers writes: prefixed F32 names, no lm_head when tied, format=pt */
    StFile f;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(st_open(&f, path, err) == PK_OK);
    CHECK(f.num_tensors == 28);
    const StTensor *t = st_find(&f, "transformer.h.1.mlp.c_fc.weight");
    CHECK(t && t->dtype == ST_F32 && t->shape[0] == 64 && t->shape[1] == 256);
    CHECK(st_find(&f, "lm_head.weight") == NULL);
    CHECK(f.data_start % 8 == 0);
    CHECK(memmem(f.map, f.data_start, "\"__metadata__\":{\"format\":\"pt\"}", 30) != NULL);
    st_close(&f);
    /* config.json carries what transformers needs */
    char *text = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(pk_read_file(path, &text, NULL, err) == PK_OK);
    if (text) {
        const char *want[] = {"\"model_type\":\t\"gpt2\"", "\"GPT2LMHeadModel\"", "\"activation_function\":\t\"gelu_new\"",
                              "\"layer_norm_epsilon\":\t1e-05", "\"n_inner\":\tnull", "\"tie_word_embeddings\":\ttrue",
                              "\"bos_token_id\":\t50256", "\"eos_token_id\":\t50256", "\"resid_pdrop\":\t0,", /* the fixture's 0.0 */
                              "\"n_positions\":\t128", "\"vocab_size\":\t50257"};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            CHECK_MSG(strstr(text, want[i]) != NULL, "config.json lacks %s", want[i]);
        free(text);
    }
    /* saving over an existing folder replaces it, no temp files stay behind */
    CHECK(gpt2_save(&a, dir, err) == PK_OK);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", dir);
    CHECK(system(cmd) == 0);
    gpt2_free(&a);
}

static void test_untied_round_trip(void) {
    char err[PK_ERR_LEN] = "", dir[128], path[256];
    GPT2 a, b;
    if (build_small(&a, 0, 7) != PK_OK) {
        CHECK(0);
        return;
    }
    sub(dir, sizeof dir, "untied");
    CHECK_MSG(gpt2_save(&a, dir, err) == PK_OK, "%s", err);
    StFile f;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(st_open(&f, path, err) == PK_OK);
    const StTensor *t = st_find(&f, "lm_head.weight");
    CHECK(t && t->shape[0] == 11 && t->shape[1] == 8);
    CHECK(st_find(&f, "transformer.lm_head.weight") == NULL);
    st_close(&f);
    int rc = gpt2_load(&b, dir, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc == PK_OK) {
        CHECK(configs_equal(&a.config, &b.config) && b.config.tied_lm_head == 0 && b.config.n_inner == 12);
        CHECK(params_equal(&a, &b));
        gpt2_free(&b);
    }
    /* untied without lm_head.weight: refused */
    Entries en;
    model_entries(&a, &en, "transformer.");
    int k = find_entry(&en, "lm_head.weight");
    CHECK(k >= 0);
    en.e[k] = en.e[--en.n];
    sub(dir, sizeof dir, "untied_missing");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "lm_head.weight") && strstr(err, "tie_word_embeddings"));
    CHECK(b.params_memory == NULL);
    gpt2_free(&a);
}

static void test_names_without_prefix_and_mask_buffers(void) {
    char err[PK_ERR_LEN] = "", dir[128];
    GPT2 a, b;
    if (build_small(&a, 1, 3) != PK_OK) {
        CHECK(0);
        return;
    }
    Entries en;
    model_entries(&a, &en, "");
    /* hub-style causal-mask buffers and a stored (tied) lm_head: all ignored */
    static float mask[36], masked_bias = -1e4f;
    for (int i = 0; i < 36; i++) mask[i] = (i % 6) >= (i / 6) ? 0.0f : 1.0f;
    static float lm_head[11 * 8];
    en.e[en.n++] = (StWriteEntry){.name = "h.0.attn.bias", .dtype = ST_F32, .ndim = 4, .shape = {1, 1, 6, 6}, .data = mask};
    en.e[en.n++] = (StWriteEntry){.name = "h.1.attn.bias", .dtype = ST_F32, .ndim = 4, .shape = {1, 1, 6, 6}, .data = mask};
    en.e[en.n++] = (StWriteEntry){.name = "h.0.attn.masked_bias", .dtype = ST_F32, .ndim = 0, .data = &masked_bias};
    en.e[en.n++] = (StWriteEntry){.name = "lm_head.weight", .dtype = ST_F32, .ndim = 2, .shape = {11, 8}, .data = lm_head};
    sub(dir, sizeof dir, "noprefix");
    write_folder(dir, &a.config, en.e, en.n);
    int rc = gpt2_load(&b, dir, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc == PK_OK) {
        CHECK(params_equal(&a, &b));
        /* the real c_attn.bias went to its place, not a mask */
        CHECK(memcmp(b.params[5], a.params[5], b.param_sizes[5] * sizeof(float)) == 0);
        gpt2_free(&b);
    }
    /* an unknown tensor is refused by name */
    static float extra[3];
    en.e[en.n++] = (StWriteEntry){.name = "h.0.attn.rotary", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = extra};
    sub(dir, sizeof dir, "extra");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "h.0.attn.rotary") && strstr(err, "model.safetensors"));
    /* a layer the config does not have is refused too */
    en.n--;
    en.e[en.n++] = (StWriteEntry){.name = "h.2.ln_1.bias", .dtype = ST_F32, .ndim = 1, .shape = {8}, .data = a.params[3]};
    sub(dir, sizeof dir, "extra_layer");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "h.2.ln_1.bias"));
    gpt2_free(&a);
}

static void test_sharded_folder(void) {
    char err[PK_ERR_LEN] = "", dir[128], path[256];
    GPT2 a, b;
    if (build_small(&a, 0, 11) != PK_OK) {
        CHECK(0);
        return;
    }
    Entries en;
    model_entries(&a, &en, "transformer.");
    sub(dir, sizeof dir, "sharded");
    CHECK(pk_mkdirs(dir, err) == PK_OK);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(gpt2_config_save(&a.config, path, err) == PK_OK);
    int half = en.n / 2;
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(st_write(path, en.e, half, NULL, err) == PK_OK);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(st_write(path, en.e + half, en.n - half, NULL, err) == PK_OK);
    PkBuf idx = {0};
    pk_buf_printf(&idx, "{\"metadata\": {\"total_size\": %zu}, \"weight_map\": {", a.num_parameters * 4);
    for (int i = 0; i < en.n; i++)
        pk_buf_printf(&idx, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", en.names[i],
                      i < half ? 1 : 2);
    pk_buf_printf(&idx, "}}");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, idx.data);
    int rc = gpt2_load(&b, dir, err);
    CHECK_MSG(rc == PK_OK, "%s", err);
    if (rc == PK_OK) {
        CHECK(params_equal(&a, &b));
        gpt2_free(&b);
    }
    /* a missing shard is named */
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    unlink(path);
    CHECK(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "model-00002-of-00002.safetensors") &&
          strstr(err, "does not exist"));
    pk_buf_free(&idx);
    gpt2_free(&a);
}

/* Round to nearest even, as torch's .half() does. */
static uint16_t f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    uint32_t mant = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static float f16_value(uint16_t h) { /* independent of the loader: the formula */
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)(s ? -v : v);
}

static void test_f16_and_bf16_storage(void) {
    char err[PK_ERR_LEN] = "", dir[128];
    GPT2 a, b;
    if (build_small(&a, 1, 5) != PK_OK) {
        CHECK(0);
        return;
    }
    /* a few values that exercise subnormals and rounding in F16 */
    a.params[1][0] = 3e-6f;   /* F16 subnormal */
    a.params[1][1] = -4e-8f;  /* rounds to the smallest F16 subnormal, 2^-24 */
    a.params[1][2] = 65504.0f;
    a.params[1][3] = 1e-9f;   /* underflows to zero */
    for (int kind = 0; kind < 2; kind++) {
        Entries en;
        model_entries(&a, &en, "transformer.");
        uint16_t *half = malloc(a.num_parameters * 2);
        uint16_t *p = half;
        for (int i = 0; i < en.n; i++) {
            size_t n = 1;
            for (int d = 0; d < en.e[i].ndim; d++) n *= (size_t)en.e[i].shape[d];
            const float *src = en.e[i].data;
            for (size_t j = 0; j < n; j++) {
                uint32_t u;
                memcpy(&u, &src[j], 4);
                p[j] = kind == 0 ? f32_to_f16(src[j]) : (uint16_t)(u >> 16); /* BF16 by truncation */
            }
            en.e[i].dtype = kind == 0 ? ST_F16 : ST_BF16;
            en.e[i].data = p;
            p += n;
        }
        sub(dir, sizeof dir, kind == 0 ? "f16" : "bf16");
        write_folder(dir, &a.config, en.e, en.n);
        int rc = gpt2_load(&b, dir, err);
        CHECK_MSG(rc == PK_OK, "%s", err);
        if (rc == PK_OK) {
            int bad = 0;
            for (size_t i = 0; i < a.num_parameters; i++) {
                float want;
                if (kind == 0) want = f16_value(f32_to_f16(a.params_memory[i]));
                else {
                    uint32_t u;
                    memcpy(&u, &a.params_memory[i], 4);
                    u &= 0xffff0000u;
                    memcpy(&want, &u, 4);
                }
                if (memcmp(&want, &b.params_memory[i], 4) != 0) bad++;
                if (fabsf(b.params_memory[i] - a.params_memory[i]) > 1e-2f * fabsf(a.params_memory[i]) + 1e-7f) bad++;
            }
            CHECK_MSG(bad == 0, "%s: %d values differ", kind == 0 ? "F16" : "BF16", bad);
            if (kind == 0) {
                CHECK(b.params[1][0] == ldexpf(50, -24)); /* 3e-6 = 50.33 * 2^-24 */
                CHECK(b.params[1][1] == -ldexpf(1, -24) && b.params[1][2] == 65504.0f && b.params[1][3] == 0.0f);
            }
            gpt2_free(&b);
        }
        free(half);
    }
    gpt2_free(&a);
}

typedef struct {
    const char *what;
    const char *json;
    const char *expect; /* in the message, besides the path */
} ConfigCase;

#define BASE "\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6"

static void test_config_fields(void) {
    char err[PK_ERR_LEN] = "", path[256];
    sub(path, sizeof path, "config.json");
    GPT2Config c;
    /* defaults */
    write_text(path, "{" BASE "}");
    CHECK_MSG(gpt2_config_load(&c, path, err) == PK_OK, "%s", err);
    CHECK(c.n_inner == 32 && c.layer_norm_eps == 1e-5f && c.tied_lm_head == 1 && c.eos_token_id == 10 &&
          c.max_seq_len == 6 && c.vocab_size == 11);
    /* n_ctx fallback, explicit values, gelu_pytorch_tanh */
    write_text(path, "{\"n_embd\": 8, \"n_layer\": 1, \"n_head\": 4, \"vocab_size\": 60000, \"n_ctx\": 16, "
                     "\"n_inner\": 20, \"layer_norm_epsilon\": 1e-6, \"tie_word_embeddings\": false, "
                     "\"eos_token_id\": 3, \"activation_function\": \"gelu_pytorch_tanh\", \"model_type\": \"gpt2\", "
                     "\"scale_attn_by_inverse_layer_idx\": false, \"reorder_and_upcast_attn\": false}");
    CHECK_MSG(gpt2_config_load(&c, path, err) == PK_OK, "%s", err);
    CHECK(c.max_seq_len == 16 && c.n_inner == 20 && c.layer_norm_eps == 1e-6f && c.tied_lm_head == 0 &&
          c.eos_token_id == 3 && c.num_heads == 4 && c.vocab_size == 60000);
    /* eos defaults to 50256 when the vocabulary has it */
    write_text(path, "{\"n_embd\": 8, \"n_layer\": 1, \"n_head\": 4, \"vocab_size\": 60000, \"n_positions\": 16}");
    CHECK(gpt2_config_load(&c, path, err) == PK_OK && c.eos_token_id == 50256);
    /* save then load gives the same config */
    GPT2Config d = small_config(0), e;
    d.layer_norm_eps = 3e-7f;
    CHECK_MSG(gpt2_config_save(&d, path, err) == PK_OK, "%s", err);
    CHECK(gpt2_config_load(&e, path, err) == PK_OK && configs_equal(&d, &e));
    char *text = NULL;
    CHECK(pk_read_file(path, &text, NULL, err) == PK_OK && strstr(text, "3e-07") && strstr(text, "\"n_inner\":\t12"));
    free(text);
}

static void test_bad_configs_refused(void) {
    static const ConfigCase cases[] = {
        {"not JSON", "{\"n_embd\": ", "not valid JSON"},
        {"not an object", "[1]", "not a JSON object"},
        {"n_embd missing", "{\"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}", "n_embd is missing"},
        {"n_embd a string", "{\"n_embd\": \"8\", \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_embd must be an integer"},
        {"n_embd fractional", "{\"n_embd\": 8.5, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_embd must be an integer"},
        {"n_embd zero", "{\"n_embd\": 0, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_embd is 0"},
        {"n_embd absurd", "{\"n_embd\": 1e9, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_embd is 1000000000"},
        {"n_embd enormous", "{\"n_embd\": 1e300, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_embd is 1e+300; expected an integer in 1..65536"},
        {"n_layer negative", "{\"n_embd\": 8, \"n_layer\": -2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_layer is -2"},
        {"n_layer absurd", "{\"n_embd\": 8, \"n_layer\": 5000, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 6}",
         "n_layer"},
        {"n_head missing", "{\"n_embd\": 8, \"n_layer\": 2, \"vocab_size\": 11, \"n_positions\": 6}", "n_head"},
        {"n_head does not divide", "{\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 3, \"vocab_size\": 11, \"n_positions\": 6}",
         "not divisible by n_head"},
        {"vocab absurd", "{\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 8388608, \"n_positions\": 6}",
         "vocab_size"},
        {"vocab null", "{\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": null, \"n_positions\": 6}",
         "vocab_size must be an integer"},
        {"positions missing", "{\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11}", "n_positions (or n_ctx)"},
        {"positions absurd", "{\"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 11, \"n_positions\": 2000000}",
         "n_positions"},
        {"n_inner zero", "{" BASE ", \"n_inner\": 0}", "n_inner"},
        {"n_inner a string", "{" BASE ", \"n_inner\": \"32\"}", "n_inner must be an integer or null"},
        {"epsilon a string", "{" BASE ", \"layer_norm_epsilon\": \"1e-5\"}", "layer_norm_epsilon"},
        {"epsilon negative", "{" BASE ", \"layer_norm_epsilon\": -1e-5}", "layer_norm_epsilon"},
        {"epsilon underflows", "{" BASE ", \"layer_norm_epsilon\": 1e-60}", "layer_norm_epsilon"},
        {"relu", "{" BASE ", \"activation_function\": \"relu\"}", "activation_function \"relu\""},
        {"erf gelu", "{" BASE ", \"activation_function\": \"gelu\"}", "\"gelu\" is not supported"},
        {"activation a number", "{" BASE ", \"activation_function\": 1}", "activation_function"},
        {"tie a string", "{" BASE ", \"tie_word_embeddings\": \"yes\"}", "tie_word_embeddings must be true or false"},
        {"eos past vocab", "{" BASE ", \"eos_token_id\": 11}", "eos_token_id is 11"},
        {"eos negative", "{" BASE ", \"eos_token_id\": -1}", "eos_token_id"},
        {"eos a list", "{" BASE ", \"eos_token_id\": [1]}", "eos_token_id must be an integer"},
        {"inverse layer idx", "{" BASE ", \"scale_attn_by_inverse_layer_idx\": true}", "scale_attn_by_inverse_layer_idx"},
        {"reorder and upcast", "{" BASE ", \"reorder_and_upcast_attn\": true}", "reorder_and_upcast_attn"},
        {"reorder a number", "{" BASE ", \"reorder_and_upcast_attn\": 1}", "reorder_and_upcast_attn must be true or false"},
        {"no attention scaling", "{" BASE ", \"scale_attn_weights\": false}", "scale_attn_weights"},
        {"cross attention", "{" BASE ", \"add_cross_attention\": true}", "add_cross_attention"},
        {"another model type", "{" BASE ", \"model_type\": \"gpt_neo\"}", "model_type is \"gpt_neo\""},
        {"too many parameters",
         "{\"n_embd\": 65536, \"n_layer\": 1024, \"n_head\": 64, \"vocab_size\": 50257, \"n_positions\": 1024}",
         "parameters"},
    };
    char err[PK_ERR_LEN], path[256];
    sub(path, sizeof path, "bad_config.json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(path, cases[i].json);
        err[0] = 0;
        GPT2Config c;
        int rc = gpt2_config_load(&c, path, err);
        CHECK_MSG(rc == PK_FAIL, "%s: accepted", cases[i].what);
        CHECK_MSG(strstr(err, cases[i].expect) && strstr(err, path), "%s: \"%s\" lacks \"%s\"", cases[i].what, err,
                  cases[i].expect);
    }
    GPT2Config c;
    sub(path, sizeof path, "no_such_config.json");
    CHECK(gpt2_config_load(&c, path, err) == PK_FAIL && strstr(err, path));
    /* validate names the field for configs built in code */
    c = small_config(1);
    c.num_heads = 3;
    CHECK(gpt2_config_validate(&c, "where", err) == PK_FAIL && strstr(err, "where") && strstr(err, "n_head"));
    c = small_config(1);
    c.eos_token_id = 11;
    CHECK(gpt2_config_validate(&c, "w", err) == PK_FAIL && strstr(err, "eos_token_id"));
    c = small_config(1);
    CHECK(gpt2_config_validate(&c, "w", err) == PK_OK);
}

static void test_bad_tensor_sets_refused(void) {
    char err[PK_ERR_LEN] = "", dir[128], path[256];
    GPT2 a, b;
    if (build_small(&a, 1, 9) != PK_OK) {
        CHECK(0);
        return;
    }
    Entries en;
    /* wrong shape: names the tensor, its shape and the expected one */
    model_entries(&a, &en, "transformer.");
    int k = find_entry(&en, "transformer.h.1.attn.c_attn.weight");
    CHECK(k >= 0);
    en.e[k].shape[0] = 24;
    en.e[k].shape[1] = 8;
    sub(dir, sizeof dir, "bad_shape");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "transformer.h.1.attn.c_attn.weight") &&
                  strstr(err, "[24, 8]") && strstr(err, "[8, 24]"),
              "%s", err);
    CHECK(b.params_memory == NULL);
    /* a 1-D bias stored as 2-D */
    model_entries(&a, &en, "transformer.");
    k = find_entry(&en, "transformer.ln_f.bias");
    en.e[k].ndim = 2;
    en.e[k].shape[0] = 1;
    en.e[k].shape[1] = 8;
    sub(dir, sizeof dir, "bad_rank");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "ln_f.bias") && strstr(err, "[1, 8]"), "%s", err);
    /* missing tensor */
    model_entries(&a, &en, "transformer.");
    k = find_entry(&en, "transformer.h.0.mlp.c_proj.bias");
    en.e[k] = en.e[--en.n];
    sub(dir, sizeof dir, "missing");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "h.0.mlp.c_proj.bias") && strstr(err, "missing"),
              "%s", err);
    /* integer storage */
    model_entries(&a, &en, "transformer.");
    k = find_entry(&en, "transformer.wpe.weight");
    en.e[k].dtype = ST_I32;
    sub(dir, sizeof dir, "int_dtype");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "wpe.weight") && strstr(err, "I32"), "%s", err);
    /* both spellings of one name */
    model_entries(&a, &en, "transformer.");
    en.e[en.n] = en.e[0];
    en.e[en.n++].name = "wte.weight";
    sub(dir, sizeof dir, "both");
    write_folder(dir, &a.config, en.e, en.n);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "both"), "%s", err);
    /* weights for a different config */
    model_entries(&a, &en, "transformer.");
    GPT2Config other = a.config;
    other.max_seq_len = 7;
    sub(dir, sizeof dir, "other_config");
    write_folder(dir, &other, en.e, en.n);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "wpe.weight") && strstr(err, "[7, 8]"), "%s", err);
    /* folder problems */
    sub(dir, sizeof dir, "no_such_model");
    CHECK(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, dir));
    sub(dir, sizeof dir, "only_weights");
    write_folder(dir, &a.config, en.e, en.n);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "config.json"), "%s", err);
    sub(dir, sizeof dir, "only_config");
    write_folder(dir, &a.config, en.e, en.n);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, "model.safetensors"), "%s", err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_text(path, "not a safetensors file at all");
    CHECK_MSG(gpt2_load(&b, dir, err) == PK_FAIL && strstr(err, path), "%s", err);
    /* saving into a path that cannot be a folder */
    sub(path, sizeof path, "a_file");
    write_text(path, "x");
    CHECK(gpt2_save(&a, path, err) == PK_FAIL && strstr(err, "a_file"));
    gpt2_free(&a);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/pk_test_hf_XXXXXX");
    if (!mkdtemp(tmp_dir)) return 1;
    RUN(test_load_fixture);
    RUN(test_save_load_round_trip);
    RUN(test_untied_round_trip);
    RUN(test_names_without_prefix_and_mask_buffers);
    RUN(test_sharded_folder);
    RUN(test_f16_and_bf16_storage);
    RUN(test_config_fields);
    RUN(test_bad_configs_refused);
    RUN(test_bad_tensor_sets_refused);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) return 1;
    TEST_EXIT();
}
