/* promptkd bpe-train --data FILE... --vocab-size N --out DIR: trains a GPT-2-style byte-level BPE
 * and writes DIR/vocab.json + DIR/merges.txt.
 * Inputs: JSONL (every string value of each object, recursively, is training text), a JSON array
 * of objects (same), or a .txt file (each line, with its newline, is text). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "tokenizer.h"

typedef struct {
    char **texts;
    size_t *lens;
    int n, cap;
    size_t bytes;
} TextList;

static int add_text(TextList *l, const char *s, size_t len, char *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 1024;
        char **t = realloc(l->texts, (size_t)cap * sizeof(char *));
        if (t) l->texts = t;
        size_t *ln = realloc(l->lens, (size_t)cap * sizeof(size_t));
        if (ln) l->lens = ln;
        if (!t || !ln) return pk_errf(err, "out of memory after %d texts", l->n);
        l->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return pk_errf(err, "out of memory after %d texts", l->n);
    memcpy(copy, s, len);
    copy[len] = 0;
    l->texts[l->n] = copy;
    l->lens[l->n++] = len;
    l->bytes += len;
    return PK_OK;
}

static void free_texts(TextList *l) {
    for (int i = 0; i < l->n; i++) free(l->texts[i]);
    free(l->texts);
    free(l->lens);
}

/* Every string value under item (object keys are not text). */
static int collect_strings(const cJSON *item, TextList *l, char *err) {
    if (cJSON_IsString(item)) return add_text(l, item->valuestring, strlen(item->valuestring), err);
    if (cJSON_IsArray(item) || cJSON_IsObject(item))
        for (const cJSON *c = item->child; c; c = c->next)
            if (collect_strings(c, l, err) != PK_OK) return PK_FAIL;
    return PK_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int read_training_file(const char *path, TextList *l, char *err) {
    char *data = NULL;
    size_t len = 0;
    if (pk_read_file(path, &data, &len, err) != PK_OK) return PK_FAIL;
    int rc = PK_OK;
    if (ends_with(path, ".txt")) {
        for (size_t pos = 0; pos < len && rc == PK_OK;) {
            const char *nl = memchr(data + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - data) + 1 : len;
            rc = add_text(l, data + pos, end - pos, err);
            pos = end;
        }
        free(data);
        return rc;
    }
    size_t first = 0;
    while (first < len && (data[first] == ' ' || data[first] == '\t' || data[first] == '\n' || data[first] == '\r'))
        first++;
    if (first < len && data[first] == '[') { /* one JSON array of objects */
        const char *end = NULL;
        long nul = pk_json_escaped_nul_at(data, len);
        cJSON *root = nul >= 0 ? NULL : cJSON_ParseWithLengthOpts(data, len, &end, 0);
        if (nul >= 0) {
            rc = pk_errf(err, "%s:%d: a string holds \\u0000 (NUL), which training text cannot hold", path,
                         pk_line_of(data, (size_t)nul));
        } else if (!root) {
            size_t pos = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
            rc = pk_errf(err, "%s:%d: not valid JSON (a file starting with '[' must be one JSON array of objects)",
                         path, pk_line_of(data, pos));
        } else {
            int k = 0;
            for (const cJSON *e = root->child; e && rc == PK_OK; e = e->next, k++) {
                if (!cJSON_IsObject(e)) rc = pk_errf(err, "%s: array element %d is not a JSON object", path, k);
                else rc = collect_strings(e, l, err);
            }
        }
        cJSON_Delete(root);
        free(data);
        return rc;
    }
    /* JSON lines */
    int lineno = 0;
    size_t pos = 0, start, n;
    while (rc == PK_OK && pk_next_line(data, len, &pos, &start, &n)) {
        lineno++;
        char *line = data + start;
        line[n] = 0; /* the file buffer is NUL-terminated at len, so this is in bounds */
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k < n) {
            int has_nul = memchr(line, 0, n) != NULL;
            long escaped_nul = pk_json_escaped_nul_at(line, n);
            cJSON *obj = has_nul || escaped_nul >= 0 ? NULL : cJSON_ParseWithOpts(line, NULL, 1);
            if (has_nul)
                rc = pk_errf(err, "%s:%d: a NUL byte in the line (expected JSON text)", path, lineno);
            else if (escaped_nul >= 0)
                rc = pk_errf(err, "%s:%d: a string holds \\u0000 (NUL), which training text cannot hold", path, lineno);
            else if (!cJSON_IsObject(obj))
                rc = pk_errf(err, "%s:%d: %s (expected one JSON object per line; name plain text files *.txt)", path,
                             lineno, obj ? "not a JSON object" : "not valid JSON");
            else rc = collect_strings(obj, l, err);
            cJSON_Delete(obj);
        }
    }
    free(data);
    return rc;
}

int cmd_bpe_train(int argc, char **argv) {
    const char *data = NULL, *out = NULL;
    int vocab_size = 0;
    const Opt opts[] = {
        {"data", OPT_STR, &data,
         "training file: JSONL objects or a JSON array of objects (every string value is text), or *.txt "
         "(each line is text); more files may follow, or repeat --data", 1},
        {"vocab-size", OPT_INT, &vocab_size, "vocabulary size: 256 bytes + merges + <|endoftext|> (>= 257)", 1},
        {"out", OPT_STR, &out, "output folder for vocab.json and merges.txt", 1},
    };
    char *pos[256];
    int npos = 0;
    int rc = cli_parse("promptkd bpe-train --data FILE [FILE...] --vocab-size N --out DIR", argc, argv, opts,
                       (int)(sizeof opts / sizeof *opts), pos, 256, &npos);
    if (rc == 1) {
        printf("\nTrains a byte-level BPE the way GPT-2's was: GPT-2's pre-tokenisation, then the most frequent\n"
               "adjacent pair is merged until the vocabulary is full (ties go to the smaller byte strings).\n"
               "Deterministic: the same files give identical output. The vocabulary ends smaller than N when\n"
               "the text runs out of pairs. The output loads with --tokenizer DIR.\n");
        return 0;
    }
    if (rc) return 2;
    /* every --data value, in order, then the extra file arguments */
    const char *files[512];
    int n_files = 0;
    for (int i = 1; i < argc && n_files < 256; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) files[n_files++] = argv[++i];
        else if (!strncmp(argv[i], "--data=", 7)) files[n_files++] = argv[i] + 7;
    }
    for (int i = 0; i < npos; i++) files[n_files++] = pos[i];
    if (vocab_size < 257) {
        char msg[128];
        snprintf(msg, sizeof msg, "--vocab-size %d is too small: it needs at least 257 (256 bytes + <|endoftext|>)",
                 vocab_size);
        return cli_fail("bpe-train", msg);
    }
    char err[PK_ERR_LEN];
    TextList texts = {0};
    for (int i = 0; i < n_files; i++)
        if (read_training_file(files[i], &texts, err) != PK_OK) {
            free_texts(&texts);
            return cli_fail("bpe-train", err);
        }
    if (texts.bytes == 0) {
        free_texts(&texts);
        return cli_fail("bpe-train", "the data files hold no training text");
    }
    double t0 = pk_now();
    rc = tok_train_bpe((const char *const *)texts.texts, texts.lens, texts.n, vocab_size, out, err);
    double secs = pk_now() - t0;
    if (rc != PK_OK) {
        free_texts(&texts);
        return cli_fail("bpe-train", err);
    }
    Tokenizer *tok = NULL;
    if (tok_load(&tok, out, err) != PK_OK) { /* the written files must load as they are */
        free_texts(&texts);
        return cli_fail("bpe-train", err);
    }
    printf("wrote %s/vocab.json and %s/merges.txt: %d tokens from %d texts (%zu bytes) in %.2f s\n", out, out,
           tok_vocab_size(tok), texts.n, texts.bytes, secs);
    tok_free(tok);
    free_texts(&texts);
    return 0;
}
