/* Hugging Face GPT-2 folders: config.json and the safetensors weights.
 *
 * Reading takes what transformers writes and what the hub holds: names with or
 * without the "transformer." prefix, F32/F16/BF16 storage, a single file or shards
 * with an index, the old causal-mask buffers h.N.attn.bias / h.N.attn.masked_bias
 * (ignored), lm_head.weight stored or not. Anything else is refused by name, and so is
 * a weight that is NaN or infinite.
 * Writing produces what transformers 5 writes: prefixed F32 tensors, metadata
 * format=pt, a config.json it loads. */
#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gpt2.h"
#include "safetensors.h"

/* Upper bounds: far above any GPT-2 (XL is 1600 x 48 layers, vocab 50257, 1024
 * positions) yet small enough that sizes stay well inside int and memory math. */
#define MAX_CHANNELS 65536
#define MAX_LAYERS 1024
#define MAX_HEADS 65536
#define MAX_VOCAB (1 << 22)
#define MAX_POSITIONS (1 << 20)
#define MAX_INNER (1 << 20)
#define MAX_PARAMS (1ULL << 34) /* 16G parameters, 64 GB of fp32: more than any machine we run on */

#define PREFIX "transformer."

static double gpt2_param_count(const GPT2Config *c) {
    double C = c->channels, L = c->num_layers, F = c->n_inner, V = c->vocab_size, T = c->max_seq_len;
    double per_layer = 2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * F + F + F * C + C;
    return V * C + T * C + L * per_layer + 2 * C + (c->tied_lm_head ? 0 : V * C);
}

int gpt2_config_validate(const GPT2Config *c, const char *where, char *err) {
    if (c->channels < 1 || c->channels > MAX_CHANNELS)
        return pk_errf(err, "%s: n_embd is %d; expected an integer in 1..%d", where, c->channels, MAX_CHANNELS);
    if (c->num_layers < 1 || c->num_layers > MAX_LAYERS)
        return pk_errf(err, "%s: n_layer is %d; expected an integer in 1..%d", where, c->num_layers, MAX_LAYERS);
    if (c->num_heads < 1 || c->num_heads > MAX_HEADS)
        return pk_errf(err, "%s: n_head is %d; expected an integer in 1..%d", where, c->num_heads, MAX_HEADS);
    if (c->channels % c->num_heads != 0)
        return pk_errf(err, "%s: n_embd %d is not divisible by n_head %d; expected n_embd a multiple of n_head",
                       where, c->channels, c->num_heads);
    if (c->vocab_size < 1 || c->vocab_size > MAX_VOCAB)
        return pk_errf(err, "%s: vocab_size is %d; expected an integer in 1..%d", where, c->vocab_size, MAX_VOCAB);
    if (c->max_seq_len < 1 || c->max_seq_len > MAX_POSITIONS)
        return pk_errf(err, "%s: n_positions is %d; expected an integer in 1..%d", where, c->max_seq_len,
                       MAX_POSITIONS);
    if (c->n_inner < 1 || c->n_inner > MAX_INNER)
        return pk_errf(err, "%s: n_inner is %d; expected null or an integer in 1..%d", where, c->n_inner, MAX_INNER);
    if (!isfinite(c->layer_norm_eps) || c->layer_norm_eps <= 0.0f || c->layer_norm_eps >= 1.0f)
        return pk_errf(err, "%s: layer_norm_epsilon is %g; expected a small positive number such as 1e-05", where,
                       (double)c->layer_norm_eps);
    if (c->tied_lm_head != 0 && c->tied_lm_head != 1)
        return pk_errf(err, "%s: tie_word_embeddings must be true or false", where);
    if (c->eos_token_id < 0 || c->eos_token_id >= c->vocab_size)
        return pk_errf(err, "%s: eos_token_id is %d; expected an id below vocab_size %d", where, c->eos_token_id,
                       c->vocab_size);
    const struct {
        const char *key;
        float p;
    } pdrops[] = {{"embd_pdrop", c->embd_pdrop}, {"attn_pdrop", c->attn_pdrop}, {"resid_pdrop", c->resid_pdrop}};
    for (size_t i = 0; i < sizeof pdrops / sizeof pdrops[0]; i++)
        if (!(pdrops[i].p >= 0.0f && pdrops[i].p < 1.0f))
            return pk_errf(err, "%s: %s is %g; expected a dropout probability in [0, 1) such as 0.1", where,
                           pdrops[i].key, (double)pdrops[i].p);
    double n = gpt2_param_count(c);
    if (n > (double)MAX_PARAMS)
        return pk_errf(err, "%s: these sizes make %.3g parameters; at most %.3g fit", where, n, (double)MAX_PARAMS);
    return PK_OK;
}

/* ---------------------------------------------------------------- config.json */

/* Reads an integer field: 1 found, 0 absent (or null when null_ok), -1 error. */
static int cfg_int(const cJSON *root, const char *key, long long *out, int null_ok, const char *path, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || (null_ok && cJSON_IsNull(v))) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) {
        pk_errf(err, "%s: field %s must be an integer%s", path, key, null_ok ? " or null" : "");
        return -1;
    }
    /* huge values are clamped (still out of every range) so the caller's message shows them */
    double d = v->valuedouble;
    *out = d > 1e15 ? (long long)1e15 : d < -1e15 ? (long long)-1e15 : (long long)d;
    return 1;
}

/* Reads a boolean field into *out (left alone when absent); -1 on a wrong type. */
static int cfg_bool(const cJSON *root, const char *key, int *out, const char *path, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) {
        pk_errf(err, "%s: field %s must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

/* A required size: an integer in 1..max. */
static int cfg_size(const cJSON *root, const char *key, int max, int *out, const char *path, char *err) {
    long long v;
    int r = cfg_int(root, key, &v, 0, path, err);
    if (r < 0) return PK_FAIL;
    if (r == 0) return pk_errf(err, "%s: required field %s is missing; expected an integer in 1..%d", path, key, max);
    if (v < 1 || v > max) /* the JSON number itself: v is clamped to +-1e15 */
        return pk_errf(err, "%s: field %s is %.15g; expected an integer in 1..%d", path, key,
                       cJSON_GetObjectItemCaseSensitive(root, key)->valuedouble, max);
    *out = (int)v;
    return PK_OK;
}

static int config_from_json(GPT2Config *c, const cJSON *root, const char *path, char *err) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(root)) return pk_errf(err, "%s: not a JSON object; expected a GPT-2 config", path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "gpt2") != 0))
        return pk_errf(err, "%s: model_type is %s%.60s%s; expected \"gpt2\"", path, cJSON_IsString(mt) ? "\"" : "",
                       cJSON_IsString(mt) ? mt->valuestring : "not a string", cJSON_IsString(mt) ? "\"" : "");
    if (cfg_size(root, "n_embd", MAX_CHANNELS, &c->channels, path, err) != PK_OK) return PK_FAIL;
    if (cfg_size(root, "n_layer", MAX_LAYERS, &c->num_layers, path, err) != PK_OK) return PK_FAIL;
    if (cfg_size(root, "n_head", MAX_HEADS, &c->num_heads, path, err) != PK_OK) return PK_FAIL;
    if (cfg_size(root, "vocab_size", MAX_VOCAB, &c->vocab_size, path, err) != PK_OK) return PK_FAIL;
    const char *pos_key = cJSON_GetObjectItemCaseSensitive(root, "n_positions") ? "n_positions" : "n_ctx";
    if (!cJSON_GetObjectItemCaseSensitive(root, pos_key))
        return pk_errf(err, "%s: required field n_positions (or n_ctx) is missing; expected an integer in 1..%d",
                       path, MAX_POSITIONS);
    if (cfg_size(root, pos_key, MAX_POSITIONS, &c->max_seq_len, path, err) != PK_OK) return PK_FAIL;

    long long v;
    int r = cfg_int(root, "n_inner", &v, 1, path, err);
    if (r < 0) return PK_FAIL;
    if (r == 0) c->n_inner = 4 * c->channels;
    else if (v < 1 || v > MAX_INNER)
        return pk_errf(err, "%s: field n_inner is %.15g; expected null or an integer in 1..%d", path,
                       cJSON_GetObjectItemCaseSensitive(root, "n_inner")->valuedouble, MAX_INNER);
    else c->n_inner = (int)v;

    c->layer_norm_eps = 1e-5f;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0.0) || !(eps->valuedouble < 1.0))
            return pk_errf(err, "%s: field layer_norm_epsilon must be a small positive number such as 1e-05", path);
        c->layer_norm_eps = (float)eps->valuedouble;
        if (!(c->layer_norm_eps > 0.0f))
            return pk_errf(err, "%s: field layer_norm_epsilon %g underflows float; expected e.g. 1e-05", path,
                           eps->valuedouble);
    }

    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act) {
        if (!cJSON_IsString(act))
            return pk_errf(err, "%s: field activation_function must be a string such as \"gelu_new\"", path);
        if (strcmp(act->valuestring, "gelu_new") != 0 && strcmp(act->valuestring, "gelu_pytorch_tanh") != 0)
            return pk_errf(err, "%s: activation_function \"%.60s\" is not supported; expected \"gelu_new\" or "
                                "\"gelu_pytorch_tanh\" (the tanh GELU)", path, act->valuestring);
    }

    c->tied_lm_head = 1;
    if (cfg_bool(root, "tie_word_embeddings", &c->tied_lm_head, path, err) < 0) return PK_FAIL;

    r = cfg_int(root, "eos_token_id", &v, 1, path, err);
    if (r < 0) return PK_FAIL;
    if (r == 0) {
        c->eos_token_id = 50256 < c->vocab_size ? 50256 : c->vocab_size - 1;
    } else {
        if (v < 0 || v >= c->vocab_size)
            return pk_errf(err, "%s: field eos_token_id is %lld; expected an id in 0..%d (below vocab_size)", path, v,
                           c->vocab_size - 1);
        c->eos_token_id = (int)v;
    }

    /* dropout probabilities: Hugging Face's GPT2Config defaults to 0.1 for each */
    const struct {
        const char *key;
        float *p;
    } pdrops[] = {{"embd_pdrop", &c->embd_pdrop}, {"attn_pdrop", &c->attn_pdrop}, {"resid_pdrop", &c->resid_pdrop}};
    for (size_t i = 0; i < sizeof pdrops / sizeof pdrops[0]; i++) {
        *pdrops[i].p = 0.1f;
        const cJSON *pd = cJSON_GetObjectItemCaseSensitive(root, pdrops[i].key);
        if (!pd) continue;
        if (!cJSON_IsNumber(pd))
            return pk_errf(err, "%s: field %s must be a number in [0, 1) (a dropout probability such as 0.1)", path,
                           pdrops[i].key);
        /* the float is what dropout uses: a double just below 1 may round to 1.0f */
        float v = (float)pd->valuedouble;
        if (!(pd->valuedouble >= 0.0 && pd->valuedouble < 1.0) || !(v < 1.0f))
            return pk_errf(err, "%s: field %s is %.15g; expected a dropout probability in [0, 1) such as 0.1", path,
                           pdrops[i].key, pd->valuedouble);
        *pdrops[i].p = v;
    }

    /* variants whose math this implementation does not do */
    static const struct {
        const char *key;
        int refused_value;
        const char *why;
    } variants[] = {
        {"scale_attn_by_inverse_layer_idx", 1, "per-layer attention scaling is not implemented"},
        {"reorder_and_upcast_attn", 1, "the reordered attention variant is not implemented"},
        {"scale_attn_weights", 0, "attention without 1/sqrt(head size) scaling is not implemented"},
        {"add_cross_attention", 1, "cross-attention layers are not implemented"},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        int b = !variants[i].refused_value;
        if (cfg_bool(root, variants[i].key, &b, path, err) < 0) return PK_FAIL;
        if (b == variants[i].refused_value)
            return pk_errf(err, "%s: %s is %s: %s; expected %s", path, variants[i].key, b ? "true" : "false",
                           variants[i].why, b ? "false" : "true");
    }
    return gpt2_config_validate(c, path, err);
}

int gpt2_config_load(GPT2Config *cfg, const char *path, char *err) {
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return PK_FAIL;
    const char *nul = memchr(text, 0, len); /* cJSON would skip it as white space */
    if (nul) {
        pk_errf(err, "%s: a NUL byte at byte %ld; expected JSON text", path, (long)(nul - text));
        free(text);
        return PK_FAIL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return pk_errf(err, "%s: not valid JSON; expected a GPT-2 config object", path);
    int rc = config_from_json(cfg, root, path, err);
    cJSON_Delete(root);
    return rc;
}

/* The shortest decimal that reads back as the same float, as a double:
 * 1e-5f is written "1e-05", not "9.9999997473787516e-06". */
static double float_shortest(float x) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x) return strtod(buf, NULL);
    }
    return (double)x;
}

int gpt2_config_save(const GPT2Config *c, const char *path, char *err) {
    if (gpt2_config_validate(c, path, err) != PK_OK) return PK_FAIL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return pk_errf(err, "%s: out of memory", path);
    /* keys in the sorted order transformers writes them */
    const char *arch[] = {"GPT2LMHeadModel"};
    int ok = cJSON_AddStringToObject(o, "activation_function", "gelu_new") &&
             cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(arch, 1)) &&
             cJSON_AddNumberToObject(o, "attn_pdrop", float_shortest(c->attn_pdrop)) &&
             cJSON_AddNumberToObject(o, "bos_token_id", c->eos_token_id) &&
             cJSON_AddStringToObject(o, "dtype", "float32") &&
             cJSON_AddNumberToObject(o, "embd_pdrop", float_shortest(c->embd_pdrop)) &&
             cJSON_AddNumberToObject(o, "eos_token_id", c->eos_token_id) &&
             cJSON_AddNumberToObject(o, "initializer_range", 0.02) &&
             cJSON_AddNumberToObject(o, "layer_norm_epsilon", float_shortest(c->layer_norm_eps)) &&
             cJSON_AddStringToObject(o, "model_type", "gpt2") &&
             cJSON_AddNumberToObject(o, "n_embd", c->channels) && cJSON_AddNumberToObject(o, "n_head", c->num_heads) &&
             (c->n_inner == 4 * c->channels ? cJSON_AddNullToObject(o, "n_inner") != NULL
                                            : cJSON_AddNumberToObject(o, "n_inner", c->n_inner) != NULL) &&
             cJSON_AddNumberToObject(o, "n_layer", c->num_layers) &&
             cJSON_AddNumberToObject(o, "n_positions", c->max_seq_len) &&
             cJSON_AddBoolToObject(o, "reorder_and_upcast_attn", 0) &&
             cJSON_AddNumberToObject(o, "resid_pdrop", float_shortest(c->resid_pdrop)) &&
             cJSON_AddBoolToObject(o, "scale_attn_by_inverse_layer_idx", 0) &&
             cJSON_AddBoolToObject(o, "scale_attn_weights", 1) &&
             cJSON_AddNullToObject(o, "summary_activation") &&
             cJSON_AddNumberToObject(o, "summary_first_dropout", 0.1) &&
             cJSON_AddBoolToObject(o, "summary_proj_to_labels", 1) &&
             cJSON_AddStringToObject(o, "summary_type", "cls_index") &&
             cJSON_AddBoolToObject(o, "summary_use_proj", 1) &&
             cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied_lm_head) &&
             cJSON_AddBoolToObject(o, "use_cache", 1) &&
             cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    int rc = ok ? pk_write_json_atomic(path, o, err) : pk_errf(err, "%s: out of memory", path);
    cJSON_Delete(o);
    return rc;
}

/* ---------------------------------------------------------------- weights */

/* The causal-mask buffers older checkpoints carry: h.N.attn.bias, h.N.attn.masked_bias
 * (not h.N.attn.c_attn.bias, a real parameter). */
static int is_mask_buffer(const char *name) {
    if (strncmp(name, PREFIX, strlen(PREFIX)) == 0) name += strlen(PREFIX);
    if (strncmp(name, "h.", 2) != 0) return 0;
    const char *p = name + 2;
    if (!isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p)) p++;
    return strcmp(p, ".attn.bias") == 0 || strcmp(p, ".attn.masked_bias") == 0;
}

/* The HF name of slice `layer` of parameter tensor i, without the prefix. */
static void param_name(char *out, size_t cap, const GPT2ParamInfo *info, int i, int layer) {
    if (i == GPT2_NUM_PARAM_TENSORS - 1) snprintf(out, cap, "lm_head.weight");
    else if (info->per_layer) {
        /* info->name is a printf pattern with one %d for the layer */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(out, cap, info->name, layer);
#pragma GCC diagnostic pop
    } else snprintf(out, cap, "%s", info->name);
}

typedef struct {
    StSet set;
    char **used; /* used[file][tensor]: consumed by a parameter or knowingly ignored */
} Loaded;

static void shape_text(char *out, size_t cap, const int64_t *shape, int ndim) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

/* Finds `name` with or without the prefix; marks it used. NULL when absent (err untouched),
 * NULL with *failed set when both spellings are present. */
static const StTensor *find_param(Loaded *ld, const char *dir, const char *name, const StFile **file, int *failed,
                                  char *err) {
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, PREFIX "%s", name);
    const StFile *f1, *f2;
    const StTensor *t1 = st_set_find(&ld->set, prefixed, &f1);
    const StTensor *t2 = st_set_find(&ld->set, name, &f2);
    if (t1 && t2) {
        *failed = 1;
        pk_errf(err, "%s: the checkpoint holds both %s and %s; expected one of them", dir, prefixed, name);
        return NULL;
    }
    const StTensor *t = t1 ? t1 : t2;
    const StFile *f = t1 ? f1 : f2;
    if (t) ld->used[f - ld->set.files][t - f->tensors] = 1;
    *file = f;
    return t;
}

static void loaded_free(Loaded *ld) {
    if (ld->used)
        for (int i = 0; i < ld->set.num_files; i++) free(ld->used[i]);
    free(ld->used);
    st_set_close(&ld->set);
}

int gpt2_load(GPT2 *m, const char *dir, char *err) {
    memset(m, 0, sizeof *m);
    if (!pk_is_dir(dir)) return pk_errf(err, "%s: no such model folder", dir);
    char cfg_path[4096];
    if (pk_path_join(cfg_path, sizeof cfg_path, dir, "config.json", err) != PK_OK) return PK_FAIL;
    if (pk_is_dir(cfg_path)) return pk_errf(err, "%s: is a folder; expected the model's JSON config file", cfg_path);
    if (!pk_file_exists(cfg_path))
        return pk_errf(err, "%s: missing; a Hugging Face GPT-2 folder holds config.json and model.safetensors",
                       cfg_path);
    GPT2Config cfg;
    if (gpt2_config_load(&cfg, cfg_path, err) != PK_OK) return PK_FAIL;

    Loaded ld = {0};
    if (st_set_open_dir(&ld.set, dir, err) != PK_OK) return PK_FAIL;
    int rc = PK_FAIL;
    ld.used = pk_calloc((size_t)ld.set.num_files, sizeof *ld.used, err);
    if (!ld.used) goto done;
    for (int i = 0; i < ld.set.num_files; i++)
        if (!(ld.used[i] = pk_calloc((size_t)ld.set.files[i].num_tensors, 1, err))) goto done;
    if (gpt2_build(m, &cfg, err) != PK_OK) goto done;

    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        GPT2ParamInfo info;
        gpt2_param_info(&cfg, i, &info);
        int is_lm_head = i == GPT2_NUM_PARAM_TENSORS - 1;
        if (is_lm_head && cfg.tied_lm_head) continue;
        int slices = info.per_layer ? cfg.num_layers : 1;
        size_t slice_numel = info.numel / (size_t)slices;
        for (int l = 0; l < slices; l++) {
            char name[200];
            param_name(name, sizeof name, &info, i, l);
            const StFile *f = NULL;
            int failed = 0;
            const StTensor *t = find_param(&ld, dir, name, &f, &failed, err);
            if (failed) goto done;
            if (!t) {
                if (is_lm_head)
                    pk_errf(err, "%s: lm_head.weight is missing, and config.json sets tie_word_embeddings false so "
                                 "the checkpoint must hold it", dir);
                else pk_errf(err, "%s: tensor %s%s is missing from the checkpoint", dir, PREFIX, name);
                goto done;
            }
            if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
                pk_errf(err, "%s: tensor \"%s\" has dtype %s; expected F32, F16 or BF16", f->path, t->name,
                        st_dtype_name(t->dtype));
                goto done;
            }
            int64_t want[2] = {(int64_t)info.shape[0], (int64_t)info.shape[1]};
            int same = t->ndim == info.ndim;
            for (int d = 0; same && d < info.ndim; d++) same = t->shape[d] == want[d];
            if (!same) {
                char got_s[128], want_s[64];
                shape_text(got_s, sizeof got_s, t->shape, t->ndim);
                shape_text(want_s, sizeof want_s, want, info.ndim);
                pk_errf(err, "%s: tensor \"%s\" has shape %s; config.json implies %s", f->path, t->name, got_s,
                        want_s);
                goto done;
            }
            /* a NaN or an infinity would poison every forward pass: refused by name */
            if (st_read_f32_finite(f, t, m->params[i] + (size_t)l * slice_numel, err) != PK_OK) goto done;
        }
    }
    /* With tied embeddings transformers discards a stored lm_head.weight; so do we. */
    if (cfg.tied_lm_head) {
        const StFile *f = NULL;
        const StTensor *t = st_set_find(&ld.set, "lm_head.weight", &f);
        if (t) ld.used[f - ld.set.files][t - f->tensors] = 1;
    }
    for (int i = 0; i < ld.set.num_files; i++)
        for (int k = 0; k < ld.set.files[i].num_tensors; k++) {
            const char *name = ld.set.files[i].tensors[k].name;
            if (!ld.used[i][k] && !is_mask_buffer(name)) {
                pk_errf(err, "%s: tensor \"%.120s\" is not a GPT-2 parameter of this config (expected names such as "
                             "transformer.h.0.attn.c_attn.weight)", ld.set.files[i].path, name);
                goto done;
            }
        }
    rc = PK_OK;
done:
    loaded_free(&ld);
    if (rc != PK_OK) {
        gpt2_free(m);
        memset(m, 0, sizeof *m);
    }
    return rc;
}

int gpt2_save(const GPT2 *m, const char *dir, char *err) {
    const GPT2Config *cfg = &m->config;
    if (gpt2_config_validate(cfg, dir, err) != PK_OK) return PK_FAIL;
    if (pk_mkdirs(dir, err) != PK_OK) return PK_FAIL;
    int n = 0;
    GPT2ParamInfo infos[GPT2_NUM_PARAM_TENSORS];
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        gpt2_param_info(cfg, i, &infos[i]);
        if (i == GPT2_NUM_PARAM_TENSORS - 1 && cfg->tied_lm_head) continue;
        n += infos[i].per_layer ? cfg->num_layers : 1;
    }
    enum { NAME_CAP = 200 };
    StWriteEntry *entries = pk_calloc((size_t)n, sizeof *entries, err);
    char *names = pk_malloc((size_t)n * NAME_CAP, err);
    int rc = PK_FAIL;
    if (!entries || !names) goto done;
    int k = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        const GPT2ParamInfo *info = &infos[i];
        int is_lm_head = i == GPT2_NUM_PARAM_TENSORS - 1;
        if (is_lm_head && cfg->tied_lm_head) continue;
        int slices = info->per_layer ? cfg->num_layers : 1;
        size_t slice_numel = info->numel / (size_t)slices;
        for (int l = 0; l < slices; l++, k++) {
            char base[NAME_CAP - 16];
            param_name(base, sizeof base, info, i, l);
            char *name = names + (size_t)k * NAME_CAP;
            /* lm_head sits beside the transformer, not inside it */
            snprintf(name, NAME_CAP, "%s%s", is_lm_head ? "" : PREFIX, base);
            entries[k].name = name;
            entries[k].dtype = ST_F32;
            entries[k].ndim = info->ndim;
            for (int d = 0; d < info->ndim; d++) entries[k].shape[d] = (int64_t)info->shape[d];
            entries[k].data = m->params[i] + (size_t)l * slice_numel;
        }
    }
    char path[4096];
    static const char *const metadata[] = {"format", "pt", NULL};
    if (pk_path_join(path, sizeof path, dir, "model.safetensors", err) != PK_OK) goto done;
    if (st_write(path, entries, n, metadata, err) != PK_OK) goto done;
    if (pk_path_join(path, sizeof path, dir, "config.json", err) != PK_OK) goto done;
    rc = gpt2_config_save(cfg, path, err);
done:
    free(entries);
    free(names);
    return rc;
}
