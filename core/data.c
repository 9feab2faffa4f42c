/* Instruction datasets: parse, validate, template, tokenise, shuffle, split, batch. */
#include "data.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char TEMPLATE_HEAD_INPUT[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n";
static const char TEMPLATE_HEAD_NO_INPUT[] =
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n";

char *data_format_prompt(const char *instruction, const char *input) {
    int has_input = input && input[0];
    PkBuf b = {0};
    int rc = pk_buf_printf(&b, "%s%s\n\n", has_input ? TEMPLATE_HEAD_INPUT : TEMPLATE_HEAD_NO_INPUT, instruction);
    if (rc == 0 && has_input) rc = pk_buf_printf(&b, "### Input:\n%s\n\n", input);
    if (rc == 0) rc = pk_buf_printf(&b, "### Response:\n");
    if (rc != 0) {
        pk_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ---------------------------------------------------------------------------------------------
 * Records */

static void record_free(DataRecord *r) {
    free(r->category);
    free(r->instruction);
    free(r->input);
    free(r->prompt);
    for (int i = 0; i < r->n_refs; i++) free(r->refs[i]);
    free(r->refs);
    memset(r, 0, sizeof *r);
}

void data_free(Dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) record_free(&d->recs[i]);
    free(d->recs);
    memset(d, 0, sizeof *d);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

/* Where a record comes from, for error sentences: "path:line". */
typedef struct {
    const char *path;
    int line;
    const char *format;
} Where;

/* Reads obj[name] as a string. required: must be present and not blank; otherwise an absent field
 * reads as "". A present field must be a string either way. */
static int get_field(const cJSON *obj, const char *name, int required, const char **out, const Where *w,
                     const char *prefix, char *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item)) {
        if (required)
            return pk_errf(err, "%s:%d: missing field \"%s%s\" (required in the %s format)", w->path, w->line,
                           prefix, name, w->format);
        *out = "";
        return PK_OK;
    }
    if (!cJSON_IsString(item) || !item->valuestring)
        return pk_errf(err, "%s:%d: field \"%s%s\" must be a string", w->path, w->line, prefix, name);
    if (required && is_blank(item->valuestring))
        return pk_errf(err, "%s:%d: field \"%s%s\" is empty (the %s format requires text there)", w->path, w->line,
                       prefix, name, w->format);
    *out = item->valuestring;
    return PK_OK;
}

static const char *detect_format(const cJSON *obj) {
    if (cJSON_GetObjectItemCaseSensitive(obj, "instances")) return "selfinst";
    if (cJSON_GetObjectItemCaseSensitive(obj, "prompt")) return "plain";
    if (cJSON_GetObjectItemCaseSensitive(obj, "output")) return "alpaca";
    if (cJSON_GetObjectItemCaseSensitive(obj, "response")) return "dolly";
    return NULL;
}

/* Fills rec from one JSON object of the given format. On failure rec holds nothing to free. */
static int parse_record(const cJSON *obj, const Where *w, DataRecord *rec, char *err) {
    memset(rec, 0, sizeof *rec);
    rec->line = w->line;
    const char *fmt = w->format;
    const char *category = NULL, *instruction = "", *input = "", *prompt_verbatim = NULL;
    const char **refs = NULL;
    int n_refs = 0;
    const char *single_ref = NULL;

    if (!strcmp(fmt, "plain")) {
        if (get_field(obj, "prompt", 1, &prompt_verbatim, w, "", err) ||
            get_field(obj, "response", 1, &single_ref, w, "", err))
            return PK_FAIL;
        instruction = prompt_verbatim;
        category = "plain";
    } else if (!strcmp(fmt, "alpaca")) {
        if (get_field(obj, "instruction", 1, &instruction, w, "", err) ||
            get_field(obj, "input", 0, &input, w, "", err) || get_field(obj, "output", 1, &single_ref, w, "", err))
            return PK_FAIL;
        category = "alpaca";
    } else if (!strcmp(fmt, "dolly")) {
        if (get_field(obj, "instruction", 1, &instruction, w, "", err) ||
            get_field(obj, "context", 0, &input, w, "", err) || get_field(obj, "response", 1, &single_ref, w, "", err) ||
            get_field(obj, "category", 0, &category, w, "", err))
            return PK_FAIL;
        if (!category[0]) category = "dolly";
    } else { /* selfinst */
        if (get_field(obj, "instruction", 1, &instruction, w, "", err)) return PK_FAIL;
        const cJSON *inst = cJSON_GetObjectItemCaseSensitive(obj, "instances");
        if (!cJSON_IsArray(inst))
            return pk_errf(err, "%s:%d: field \"instances\" must be an array of {\"input\", \"output\"} objects",
                           w->path, w->line);
        int n_inst = cJSON_GetArraySize(inst);
        if (n_inst == 0)
            return pk_errf(err, "%s:%d: field \"instances\" is empty (at least one {\"input\", \"output\"} is required)",
                           w->path, w->line);
        refs = malloc((size_t)n_inst * sizeof *refs);
        if (!refs) return pk_errf(err, "%s:%d: out of memory", w->path, w->line);
        const cJSON *it;
        cJSON_ArrayForEach(it, inst) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "instances[%d].", n_refs);
            const char *in_text = "", *out_text = NULL;
            if (!cJSON_IsObject(it)) {
                free(refs);
                return pk_errf(err, "%s:%d: instances[%d] must be an object with \"input\" and \"output\"", w->path,
                               w->line, n_refs);
            }
            if (get_field(it, "input", 0, &in_text, w, prefix, err) ||
                get_field(it, "output", 1, &out_text, w, prefix, err)) {
                free(refs);
                return PK_FAIL;
            }
            if (n_refs == 0) input = in_text;
            refs[n_refs++] = out_text;
        }
        category = "selfinst";
    }
    if (!refs) {
        refs = &single_ref;
        n_refs = 1;
    }

    rec->category = dup_str(category);
    rec->instruction = dup_str(instruction);
    rec->input = dup_str(input);
    rec->prompt = prompt_verbatim ? dup_str(prompt_verbatim) : data_format_prompt(instruction, input);
    rec->refs = calloc((size_t)n_refs, sizeof *rec->refs);
    int ok = rec->category && rec->instruction && rec->input && rec->prompt && rec->refs;
    if (rec->refs) {
        rec->n_refs = n_refs;
        for (int i = 0; i < n_refs; i++) {
            rec->refs[i] = dup_str(refs[i]);
            if (!rec->refs[i]) ok = 0;
        }
    }
    if (refs != &single_ref) free(refs);
    if (!ok) {
        record_free(rec);
        return pk_errf(err, "%s:%d: out of memory", w->path, w->line);
    }
    return PK_OK;
}

static int push_record(Dataset *d, int *cap, const DataRecord *rec, char *err) {
    if (d->n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        DataRecord *nr = realloc(d->recs, (size_t)nc * sizeof *nr);
        if (!nr) return pk_errf(err, "out of memory while loading records");
        d->recs = nr;
        *cap = nc;
    }
    d->recs[d->n++] = *rec;
    return PK_OK;
}

/* Validates one parsed JSON value as a record (detecting the file's format on the first one) and
 * appends it. Returns PK_OK, or PK_FAIL with err set for a bad record. */
static int take_value(Dataset *d, int *cap, const cJSON *obj, const char *path, int line, char *err) {
    if (!cJSON_IsObject(obj)) return pk_errf(err, "%s:%d: expected a JSON object (one record)", path, line);
    const char *fmt = d->format[0] ? d->format : detect_format(obj);
    if (!fmt)
        return pk_errf(err,
                       "%s:%d: unknown record format: expected the fields of Dolly (instruction, context, response, "
                       "category), Alpaca (instruction, input, output), Self-Instruct (instruction, instances) or "
                       "plain (prompt, response)",
                       path, line);
    Where w = {path, line, fmt};
    DataRecord rec;
    if (parse_record(obj, &w, &rec, err)) return PK_FAIL;
    if (push_record(d, cap, &rec, err)) {
        record_free(&rec);
        return PK_FAIL;
    }
    if (!d->format[0]) snprintf(d->format, sizeof d->format, "%s", fmt);
    return PK_OK;
}

/* The offset of the first raw NUL byte or \u0000 escape (see pk_json_escaped_nul_at),
 * so it is refused; -1 when there is none. *raw tells which one it was. */
static long nul_at(const char *s, size_t len, int *raw) {
    const char *z = memchr(s, 0, len);
    long escaped = pk_json_escaped_nul_at(s, len);
    *raw = z && (escaped < 0 || z - s < escaped);
    return *raw ? (long)(z - s) : escaped;
}

static int nul_error(char *err, const char *path, int line, long col, int raw) {
    if (raw) return pk_errf(err, "%s:%d: a NUL byte at byte %ld of the line (expected JSON text)", path, line, col);
    return pk_errf(err, "%s:%d: the string at byte %ld of the line holds \\u0000 (NUL), which text fields cannot hold",
                   path, line, col);
}

static size_t skip_ws(const char *s, size_t i, size_t len) {
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* A file holding one JSON array of records. Elements are parsed one at a time so each error can
 * name the line where its element starts. */
static int load_array(Dataset *d, const char *path, const char *text, size_t len, size_t start, int skip_bad,
                      char *err) {
    int cap = 0;
    size_t i = skip_ws(text, start + 1, len);
    if (i < len && text[i] == ']') return PK_OK; /* empty array: reported by the caller */
    for (;;) {
        int line = pk_line_of(text, i);
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
        if (!obj)
            return pk_errf(err, "%s:%d: malformed JSON in the array element starting on this line", path, line);
        char item_err[PK_ERR_LEN];
        int rc = take_value(d, &cap, obj, path, line, item_err);
        cJSON_Delete(obj);
        if (rc != PK_OK) {
            if (!skip_bad) return pk_errf(err, "%s", item_err);
            d->n_skipped++;
        }
        i = skip_ws(text, (size_t)(end - text), len);
        if (i < len && text[i] == ',') {
            i = skip_ws(text, i + 1, len);
            continue;
        }
        if (i < len && text[i] == ']') break;
        return pk_errf(err, "%s:%d: malformed JSON array: expected ',' or ']' after an element", path,
                       pk_line_of(text, i));
    }
    i = skip_ws(text, i + 1, len);
    if (i < len) return pk_errf(err, "%s:%d: unexpected text after the JSON array", path, pk_line_of(text, i));
    return PK_OK;
}

static int load_jsonl(Dataset *d, const char *path, char *text, size_t len, int skip_bad, char *err) {
    int cap = 0;
    int line = 0;
    size_t pos = 0, start, line_len;
    while (pk_next_line(text, len, &pos, &start, &line_len)) {
        line++;
        char *s = text + start;
        s[line_len] = 0;
        if (is_blank(s)) continue;

        char line_err[PK_ERR_LEN];
        int bad = 0;
        long at = pk_utf8_invalid_at(s, line_len);
        int raw = 0;
        long nul = nul_at(s, line_len, &raw);
        if (at >= 0) {
            pk_errf(line_err, "%s:%d: invalid UTF-8 at byte %ld of the line", path, line, at);
            bad = 1;
        } else if (nul >= 0) {
            nul_error(line_err, path, line, nul, raw);
            bad = 1;
        } else {
            const char *end = NULL;
            cJSON *obj = cJSON_ParseWithLengthOpts(s, line_len, &end, 0);
            if (!obj) {
                const char *ep = cJSON_GetErrorPtr();
                long col = (ep && ep >= s && ep <= s + line_len) ? (long)(ep - s) : 0;
                pk_errf(line_err, "%s:%d: malformed JSON near byte %ld of the line (expected one JSON object per line)",
                        path, line, col);
                bad = 1;
            } else if (!is_blank(end)) {
                pk_errf(line_err, "%s:%d: unexpected text after the JSON object at byte %ld of the line", path, line,
                        (long)(end - s));
                bad = 1;
            } else {
                bad = take_value(d, &cap, obj, path, line, line_err) != PK_OK;
            }
            cJSON_Delete(obj);
        }
        if (bad) {
            if (!skip_bad) return pk_errf(err, "%s", line_err);
            d->n_skipped++;
        }
    }
    return PK_OK;
}

int data_load(Dataset *d, const char *path, int skip_bad, char *err) {
    memset(d, 0, sizeof *d);
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err)) return PK_FAIL;
    size_t start = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) start = 3; /* UTF-8 byte order mark */
    size_t first = skip_ws(text, start, len);
    int rc;
    if (first < len && text[first] == '[') {
        long at = pk_utf8_invalid_at(text, len);
        int raw = 0;
        long nul = at >= 0 ? -1 : nul_at(text, len, &raw);
        long where = at >= 0 ? at : nul;
        size_t line_start = where >= 0 ? (size_t)where : 0;
        while (line_start > 0 && text[line_start - 1] != '\n') line_start--;
        if (at >= 0) {
            rc = pk_errf(err, "%s:%d: invalid UTF-8 at byte %ld of the line", path, pk_line_of(text, (size_t)at),
                         (long)((size_t)at - line_start));
        } else if (nul >= 0) {
            rc = nul_error(err, path, pk_line_of(text, (size_t)nul), (long)((size_t)nul - line_start), raw);
        } else {
            rc = load_array(d, path, text, len, first, skip_bad, err);
        }
    } else {
        rc = load_jsonl(d, path, text + start, len - start, skip_bad, err);
    }
    free(text);
    if (rc == PK_OK && d->n == 0) {
        if (d->n_skipped)
            rc = pk_errf(err, "%s: no records left after skipping %d bad line%s", path, d->n_skipped,
                         d->n_skipped == 1 ? "" : "s");
        else
            rc = pk_errf(err, "%s: the dataset is empty (expected JSONL records or a JSON array of records)", path);
    }
    if (rc != PK_OK) data_free(d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Language-modelling corpus */

/* Appends ids [n] to the stream, growing it geometrically. */
static int stream_append(int **ids, size_t *n, size_t *cap, const int *src, size_t k) {
    if (*n + k > *cap) {
        size_t nc = *cap ? *cap : 65536;
        while (nc < *n + k) nc *= 2;
        int *p = realloc(*ids, nc * sizeof *p);
        if (!p) return PK_FAIL;
        *ids = p;
        *cap = nc;
    }
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return PK_OK;
}

int data_load_corpus(const char *path, const Tokenizer *tok, int **ids, size_t *n_ids, int *n_docs, char *err) {
    *ids = NULL;
    *n_ids = 0;
    if (n_docs) *n_docs = 0;
    int eos = tok_eos_id(tok);
    if (eos < 0) return pk_errf(err, "%s: the tokenizer has no <|endoftext|> token to end documents with", path);
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err)) return PK_FAIL;
    size_t pos = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0, cap = 0, start, line_len;
    int line = 0, docs = 0, rc = PK_OK;
    while (rc == PK_OK && pk_next_line(text, len, &pos, &start, &line_len)) {
        line++;
        char *s = text + start;
        s[line_len] = 0;
        if (is_blank(s)) continue;
        long at = pk_utf8_invalid_at(s, line_len);
        int raw = 0;
        long nul = at >= 0 ? -1 : nul_at(s, line_len, &raw);
        if (at >= 0) {
            rc = pk_errf(err, "%s:%d: invalid UTF-8 at byte %ld of the line", path, line, at);
            break;
        }
        if (nul >= 0) {
            rc = nul_error(err, path, line, nul, raw);
            break;
        }
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(s, line_len, &end, 0);
        const cJSON *field = obj ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
        if (!obj) {
            rc = pk_errf(err, "%s:%d: malformed JSON (expected one object {\"text\": ...} per line)", path, line);
        } else if (!is_blank(end)) {
            rc = pk_errf(err, "%s:%d: unexpected text after the JSON object at byte %ld of the line", path, line,
                         (long)(end - s));
        } else if (!cJSON_IsObject(obj) || !cJSON_IsString(field)) {
            rc = pk_errf(err, "%s:%d: expected an object with a string field \"text\"", path, line);
        } else {
            int *doc = NULL, nd = 0;
            char tok_err[PK_ERR_LEN];
            const char *t = field->valuestring;
            if (tok_encode(tok, t, strlen(t), 0, &doc, &nd, tok_err)) {
                rc = pk_errf(err, "%s:%d: %s", path, line, tok_err);
            } else if (stream_append(ids, n_ids, &cap, doc, (size_t)nd) || stream_append(ids, n_ids, &cap, &eos, 1)) {
                rc = pk_errf(err, "%s: out of memory after %zu tokens", path, *n_ids);
            } else {
                docs++;
            }
            free(doc);
        }
        cJSON_Delete(obj);
    }
    free(text);
    if (rc == PK_OK && *n_ids == 0)
        rc = pk_errf(err, "%s: the corpus holds no document (expected JSONL lines {\"text\": ...})", path);
    if (rc != PK_OK) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
        return PK_FAIL;
    }
    if (n_docs) *n_docs = docs;
    return PK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Tokenised view */

void data_free_tokenized(TokExample *ex, int n) {
    if (!ex) return;
    for (int i = 0; i < n; i++) {
        free(ex[i].prompt);
        free(ex[i].response);
    }
    free(ex);
}

int data_encode_prompts(const Dataset *d, const Tokenizer *tok, int n, int max_tokens, const char *what, int **ids,
                        int *lens, char *err) {
    for (int i = 0; i < n; i++) {
        const DataRecord *r = &d->recs[i];
        if (tok_encode(tok, r->prompt, strlen(r->prompt), 0, &ids[i], &lens[i], err) != PK_OK) return PK_FAIL;
        if (lens[i] > max_tokens) lens[i] = max_tokens;
        if (lens[i] < 1) return pk_errf(err, "%s record %d (line %d): the prompt has no tokens", what, i, r->line);
    }
    return PK_OK;
}

void data_free_rows(int **rows, int n) {
    if (rows)
        for (int i = 0; i < n; i++) free(rows[i]);
    free(rows);
}

int data_tokenize(const Dataset *d, const Tokenizer *tok, int max_prompt_len, int max_response_len,
                  TokExample **out, int *n_out, int *n_dropped, char *err) {
    *out = NULL;
    *n_out = 0;
    if (n_dropped) *n_dropped = 0;
    int eos = tok_eos_id(tok);
    if (eos < 0) return pk_errf(err, "the tokenizer has no <|endoftext|> token to end responses with");
    TokExample *ex = calloc((size_t)(d->n > 0 ? d->n : 1), sizeof *ex);
    if (!ex) return pk_errf(err, "out of memory for %d tokenised records", d->n);
    int n = 0, dropped = 0;
    for (int r = 0; r < d->n; r++) {
        const DataRecord *rec = &d->recs[r];
        char tok_err[PK_ERR_LEN];
        int *p = NULL, np = 0, *resp = NULL, nr = 0;
        if (tok_encode(tok, rec->prompt, strlen(rec->prompt), 0, &p, &np, tok_err)) {
            data_free_tokenized(ex, n);
            return pk_errf(err, "record at line %d: prompt: %s", rec->line, tok_err);
        }
        if (max_prompt_len > 0 && np > max_prompt_len) {
            free(p);
            dropped++;
            continue;
        }
        if (tok_encode(tok, rec->refs[0], strlen(rec->refs[0]), 0, &resp, &nr, tok_err)) {
            free(p);
            data_free_tokenized(ex, n);
            return pk_errf(err, "record at line %d: response: %s", rec->line, tok_err);
        }
        int *full = realloc(resp, (size_t)(nr + 1) * sizeof(int));
        if (!full) {
            free(p);
            free(resp);
            data_free_tokenized(ex, n);
            return pk_errf(err, "out of memory tokenising the record at line %d", rec->line);
        }
        full[nr++] = eos;
        if (max_response_len > 0 && nr > max_response_len) nr = max_response_len;
        ex[n].prompt = p;
        ex[n].prompt_len = np;
        ex[n].response = full;
        ex[n].response_len = nr;
        ex[n].rec = r;
        n++;
    }
    if (n_dropped) *n_dropped = dropped;
    if (n == 0) {
        data_free_tokenized(ex, 0);
        return pk_errf(err, "every one of the %d records has a prompt longer than %d tokens", d->n, max_prompt_len);
    }
    *out = ex;
    *n_out = n;
    return PK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Shuffles, splits */

void data_shuffle_indices(int *idx, int n, unsigned long long seed) {
    for (int i = 0; i < n; i++) idx[i] = i;
    PkRng rng;
    pk_rng_seed(&rng, (uint64_t)seed);
    pk_rng_shuffle_int(&rng, idx, n);
}

void data_split_free(DataSplit *s) {
    if (!s) return;
    free(s->train);
    free(s->valid);
    free(s->test);
    memset(s, 0, sizeof *s);
}

static int *copy_ints(const int *src, int n) {
    if (n == 0) return NULL;
    int *p = malloc((size_t)n * sizeof(int));
    if (p) memcpy(p, src, (size_t)n * sizeof(int));
    return p;
}

int data_split(int n, double valid_frac, double test_frac, unsigned long long seed, DataSplit *out, char *err) {
    memset(out, 0, sizeof *out);
    if (!(valid_frac >= 0 && valid_frac < 1) || !(test_frac >= 0 && test_frac < 1))
        return pk_errf(err, "split fractions must be in [0, 1), got valid %g and test %g", valid_frac, test_frac);
    int n_valid = (int)floor(n * valid_frac + 0.5);
    int n_test = (int)floor(n * test_frac + 0.5);
    int n_train = n - n_valid - n_test;
    if (n_train < 1)
        return pk_errf(err, "a split of %d records with valid fraction %g and test fraction %g leaves no training record",
                       n, valid_frac, test_frac);
    int *perm = malloc((size_t)n * sizeof(int));
    if (!perm) return pk_errf(err, "out of memory splitting %d records", n);
    data_shuffle_indices(perm, n, seed);
    out->train = copy_ints(perm, n_train);
    out->valid = copy_ints(perm + n_train, n_valid);
    out->test = copy_ints(perm + n_train + n_valid, n_test);
    free(perm);
    if (!out->train || (n_valid && !out->valid) || (n_test && !out->test)) {
        data_split_free(out);
        return pk_errf(err, "out of memory splitting %d records", n);
    }
    out->n_train = n_train;
    out->n_valid = n_valid;
    out->n_test = n_test;
    return PK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Teacher-forcing batches */

int data_batch_teacher_forcing(const TokExample *ex, const int *which, int B, int max_T, int pad_id,
                               int *tokens, int *targets, int *lengths, int *T_out, char *err) {
    if (B <= 0 || max_T <= 0) return pk_errf(err, "batch size (%d) and max_T (%d) must be positive", B, max_T);
    int T = 0;
    for (int b = 0; b < B; b++) {
        const TokExample *e = &ex[which ? which[b] : b];
        if (e->response_len < 1)
            return pk_errf(err, "example %d (record %d) has no response token", which ? which[b] : b, e->rec);
        if (e->prompt_len < 1)
            return pk_errf(err, "example %d (record %d) has an empty prompt", which ? which[b] : b, e->rec);
        if (e->prompt_len > max_T)
            return pk_errf(err, "example %d (record %d): its prompt of %d tokens leaves no target within max_T = %d",
                           which ? which[b] : b, e->rec, e->prompt_len, max_T);
        int len = e->prompt_len + e->response_len - 1;
        if (len > max_T) len = max_T;
        if (len > T) T = len;
    }
    /* tokens, targets: [B, T] */
    for (int b = 0; b < B; b++) {
        const TokExample *e = &ex[which ? which[b] : b];
        int P = e->prompt_len, L = e->prompt_len + e->response_len;
        int len = L - 1 < max_T ? L - 1 : max_T;
        int *tok_row = tokens + (size_t)b * T, *tgt_row = targets + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            if (t < len) {
                tok_row[t] = t < P ? e->prompt[t] : e->response[t - P];
                int next = t + 1; /* position of the predicted token in the sequence */
                tgt_row[t] = next >= P ? e->response[next - P] : -1;
            } else {
                tok_row[t] = pad_id;
                tgt_row[t] = -1;
            }
        }
        if (lengths) lengths[b] = len;
    }
    *T_out = T;
    return PK_OK;
}
