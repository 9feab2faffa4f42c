/* promptkd tokenize --tokenizer DIR [--decode]: JSONL on stdin -> JSONL on stdout.
 *   encode: {"text": ...}  -> {"text": ..., "ids": [...]}   (<|endoftext|> becomes its id)
 *   decode: {"ids": [...]} -> {"ids": [...], "text": ...}
 * Output is written only when every line succeeded, so a bad line leaves no partial output. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "tokenizer.h"

/* Appends bytes as the contents of a JSON string: valid UTF-8 passes through, each maximal
 * ill-formed subsequence becomes U+FFFD (as Python's errors="replace"), control characters and
 * NUL are escaped. Written by hand because cJSON strings stop at the first NUL byte. */
static int append_json_string(PkBuf *out, const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    if (pk_buf_append(out, "\"", 1) != PK_OK) return PK_FAIL;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            char esc[8];
            const char *e = NULL;
            switch (c) {
            case '"': e = "\\\""; break;
            case '\\': e = "\\\\"; break;
            case '\n': e = "\\n"; break;
            case '\r': e = "\\r"; break;
            case '\t': e = "\\t"; break;
            case '\b': e = "\\b"; break;
            case '\f': e = "\\f"; break;
            default:
                if (c < 0x20) {
                    snprintf(esc, sizeof esc, "\\u%04x", c);
                    e = esc;
                }
            }
            if (e ? pk_buf_append(out, e, strlen(e)) : pk_buf_append(out, s + i, 1)) return PK_FAIL;
            i++;
            continue;
        }
        uint32_t cp;
        int n = pk_utf8_decode(text + i, len - i, &cp);
        if (n > 0 ? pk_buf_append(out, s + i, (size_t)n) : pk_buf_append(out, "\xEF\xBF\xBD", 3)) return PK_FAIL;
        i += (size_t)(n > 0 ? n : -n);
    }
    return pk_buf_append(out, "\"", 1);
}

static int append_ids(PkBuf *out, const int *ids, int n) {
    if (pk_buf_append(out, "[", 1) != PK_OK) return PK_FAIL;
    for (int i = 0; i < n; i++)
        if (pk_buf_printf(out, i ? ",%d" : "%d", ids[i]) != PK_OK) return PK_FAIL;
    return pk_buf_append(out, "]", 1);
}

/* One input line; returns 0 or fills msg. */
static int process_line(const Tokenizer *tok, int decode, const char *line, size_t len, PkBuf *out, char *msg) {
    char err[PK_ERR_LEN];
    if (memchr(line, 0, len)) return pk_errf(msg, "contains a NUL byte (not JSON)");
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithOpts(line, &end, 1);
    if (!obj) return pk_errf(msg, "not valid JSON (error near byte %ld)", end ? (long)(end - line) + 1 : 1L);
    int rc = PK_FAIL;
    if (!cJSON_IsObject(obj)) {
        pk_errf(msg, "expected a JSON object, got another JSON value");
        goto done;
    }
    if (!decode) {
        cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        if (!text) {
            pk_errf(msg, "missing the \"text\" field");
            goto done;
        }
        if (!cJSON_IsString(text)) {
            pk_errf(msg, "\"text\" must be a string");
            goto done;
        }
        if (pk_json_escaped_nul_at(line, len) >= 0) {
            pk_errf(msg, "the line contains \\u0000, which cannot be tokenized through this command");
            goto done;
        }
        size_t tl = strlen(text->valuestring);
        int *ids = NULL, n = 0;
        if (tok_encode(tok, text->valuestring, tl, 1, &ids, &n, err) != PK_OK) {
            pk_errf(msg, "%s", err);
            goto done;
        }
        int ok = pk_buf_append(out, "{\"text\":", 8) == PK_OK && append_json_string(out, text->valuestring, tl) == PK_OK &&
                 pk_buf_append(out, ",\"ids\":", 7) == PK_OK && append_ids(out, ids, n) == PK_OK &&
                 pk_buf_append(out, "}\n", 2) == PK_OK;
        free(ids);
        if (!ok) {
            pk_errf(msg, "out of memory");
            goto done;
        }
    } else {
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "ids");
        if (!arr) {
            pk_errf(msg, "missing the \"ids\" field");
            goto done;
        }
        if (!cJSON_IsArray(arr)) {
            pk_errf(msg, "\"ids\" must be an array of integers");
            goto done;
        }
        int n = cJSON_GetArraySize(arr), k = 0;
        int *ids = malloc(sizeof(int) * (size_t)(n + 1));
        if (!ids) {
            pk_errf(msg, "out of memory");
            goto done;
        }
        for (cJSON *e = arr->child; e; e = e->next, k++) {
            double v = e->valuedouble;
            if (cJSON_IsNumber(e) && !(v >= -2147483648.0 && v <= 2147483647.0)) {
                free(ids);
                pk_errf(msg, "ids[%d] = %g is out of range: the vocabulary has ids 0..%d", k, v, tok_vocab_size(tok) - 1);
                goto done;
            }
            if (!cJSON_IsNumber(e) || v != (double)(int)v) {
                free(ids);
                pk_errf(msg, "ids[%d] is not an integer token id", k);
                goto done;
            }
            ids[k] = (int)v;
        }
        char *text = NULL;
        size_t tl = 0;
        if (tok_decode(tok, ids, n, &text, &tl, err) != PK_OK) {
            free(ids);
            pk_errf(msg, "%s", err);
            goto done;
        }
        int ok = pk_buf_append(out, "{\"ids\":", 7) == PK_OK && append_ids(out, ids, n) == PK_OK &&
                 pk_buf_append(out, ",\"text\":", 8) == PK_OK && append_json_string(out, text, tl) == PK_OK &&
                 pk_buf_append(out, "}\n", 2) == PK_OK;
        free(ids);
        free(text);
        if (!ok) {
            pk_errf(msg, "out of memory");
            goto done;
        }
    }
    rc = PK_OK;
done:
    cJSON_Delete(obj);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    int decode = 0;
    const Opt opts[] = {
        {"tokenizer", OPT_STR, &dir, "folder with vocab.json and merges.txt (GPT-2 format)", 1},
        {"decode", OPT_FLAG, &decode,
         "read {\"ids\": [...]} lines and add \"text\"; bytes that are not valid UTF-8 become U+FFFD", 0},
    };
    int rc = cli_parse("promptkd tokenize --tokenizer DIR [--decode]", argc, argv, opts,
                       (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (rc == 1) {
        printf("\nJSONL on stdin, one object per line, JSONL on stdout.\n"
               "  encode:   {\"text\": ...} -> {\"text\": ..., \"ids\": [...]}; <|endoftext|> in the text becomes\n"
               "            the special token; raw bytes that are not valid UTF-8 are encoded byte by byte\n"
               "            (the echoed \"text\" shows them as U+FFFD).\n"
               "  --decode: {\"ids\": [...]} -> {\"ids\": [...], \"text\": ...}; decoded bytes that are not valid\n"
               "            UTF-8 are written as U+FFFD, as tiktoken's decode with errors=\"replace\".\n"
               "Blank lines are skipped. On a bad line (not JSON, missing field, wrong type, id out of range)\n"
               "nothing is written and the command fails naming the line.\n");
        return 0;
    }
    if (rc) return 2;
    char err[PK_ERR_LEN];
    Tokenizer *tok = NULL;
    if (tok_load(&tok, dir, err) != PK_OK) return cli_fail("tokenize", err);
    PkBuf out = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    int status = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        line[len] = 0;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue;
        char msg[PK_ERR_LEN];
        if (process_line(tok, decode, line, len, &out, msg) != PK_OK) {
            char full[PK_ERR_LEN + 64];
            snprintf(full, sizeof full, "stdin line %ld: %s", lineno, msg);
            status = cli_fail("tokenize", full);
            break;
        }
    }
    if (status == 0 && ferror(stdin)) status = cli_fail("tokenize", "could not read stdin");
    if (status == 0 && out.len && (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0))
        status = cli_fail("tokenize", "could not write stdout");
    free(line);
    pk_buf_free(&out);
    tok_free(tok);
    return status;
}
