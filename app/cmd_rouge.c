/* promptkd rouge: JSONL {"prediction", "references"} in, the same lines with "rougeL" (F1 x 100, max over
 * the references, rouge_score-compatible) out. Nothing is written unless every line is valid. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "rouge.h"

#define ROUGE_USAGE "promptkd rouge [FILE] [--output FILE] [--summary]"

static int read_stream(FILE *f, PkBuf *b) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (pk_buf_append(b, chunk, n)) return -1;
    if (ferror(f)) return -1;
    return pk_buf_append(b, "", 1) ? -1 : 0; /* NUL-terminate (not counted below) */
}

/* Scores one line; appends the output line to out. Returns PK_OK or fills err. */
static int score_line(const char *name, int line_no, const char *line, size_t len, PkBuf *out, double *score,
                      char *err) {
    long bad = pk_utf8_invalid_at(line, len);
    if (bad >= 0) return pk_errf(err, "%s:%d: invalid UTF-8 at byte %ld of the line", name, line_no, bad);
    const char *nul = memchr(line, 0, len);
    if (nul) return pk_errf(err, "%s:%d: a NUL byte at byte %ld of the line (expected JSON text)", name, line_no, (long)(nul - line));
    if ((bad = pk_json_escaped_nul_at(line, len)) >= 0)
        return pk_errf(err, "%s:%d: the string at byte %ld of the line holds \\u0000 (NUL), which ROUGE-L text cannot hold",
                       name, line_no, bad);
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!obj) return pk_errf(err, "%s:%d: malformed JSON (expected one JSON object per line)", name, line_no);
    int rc = PK_FAIL;
    const char **refs = NULL;
    for (const char *p = end; p < line + len; p++)
        if (*p != ' ' && *p != '\t') {
            pk_errf(err, "%s:%d: unexpected text after the JSON object", name, line_no);
            goto done;
        }
    if (!cJSON_IsObject(obj)) {
        pk_errf(err, "%s:%d: expected a JSON object with \"prediction\" and \"references\"", name, line_no);
        goto done;
    }
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(obj, "prediction");
    const cJSON *ref_arr = cJSON_GetObjectItemCaseSensitive(obj, "references");
    if (!pred) {
        pk_errf(err, "%s:%d: missing field \"prediction\" (a string)", name, line_no);
        goto done;
    }
    if (!cJSON_IsString(pred)) {
        pk_errf(err, "%s:%d: field \"prediction\" must be a string", name, line_no);
        goto done;
    }
    if (!ref_arr) {
        pk_errf(err, "%s:%d: missing field \"references\" (an array of strings)", name, line_no);
        goto done;
    }
    if (!cJSON_IsArray(ref_arr)) {
        pk_errf(err, "%s:%d: field \"references\" must be an array of strings", name, line_no);
        goto done;
    }
    int n_refs = cJSON_GetArraySize(ref_arr);
    if (n_refs == 0) {
        pk_errf(err, "%s:%d: field \"references\" is empty (at least one reference is needed)", name, line_no);
        goto done;
    }
    refs = malloc((size_t)n_refs * sizeof *refs);
    if (!refs) {
        pk_errf(err, "%s:%d: out of memory", name, line_no);
        goto done;
    }
    int k = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, ref_arr) {
        if (!cJSON_IsString(r)) {
            pk_errf(err, "%s:%d: references[%d] must be a string", name, line_no, k);
            goto done;
        }
        refs[k++] = r->valuestring;
    }
    *score = rouge_l_max_x100(pred->valuestring, refs, n_refs);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "rougeL");
    if (!cJSON_AddNumberToObject(obj, "rougeL", *score)) {
        pk_errf(err, "%s:%d: out of memory", name, line_no);
        goto done;
    }
    char *text = cJSON_PrintUnformatted(obj);
    if (!text || pk_buf_printf(out, "%s\n", text)) {
        free(text);
        pk_errf(err, "%s:%d: out of memory", name, line_no);
        goto done;
    }
    free(text);
    rc = PK_OK;
done:
    free(refs);
    cJSON_Delete(obj);
    return rc;
}

int cmd_rouge(int argc, char **argv) {
    const char *output = NULL;
    int summary = 0;
    Opt opts[] = {
        {"output", OPT_STR, &output, "write the scored lines to this file (atomically) instead of stdout", 0},
        {"summary", OPT_FLAG, &summary, "also print the line count and mean ROUGE-L to stderr", 0},
    };
    char *pos[1];
    int npos = 0;
    int prc = cli_parse(ROUGE_USAGE "\n  reads JSONL {\"prediction\": str, \"references\": [str, ...]} from FILE "
                                    "or stdin,\n  writes each line with \"rougeL\" (ROUGE-L F1 x 100, max over the "
                                    "references) added",
                        argc, argv, opts, (int)(sizeof opts / sizeof *opts), pos, 1, &npos);
    if (prc == 1) return 0;
    if (prc) return 2;

    if (output && cli_check_output("rouge", "output", output)) return 1;
    char err[PK_ERR_LEN];
    const char *name = npos ? pos[0] : "<stdin>";
    PkBuf in = {0};
    if (npos) {
        char *text = NULL;
        size_t len = 0;
        if (pk_read_file(pos[0], &text, &len, err)) return cli_fail("rouge", err);
        in.data = text;
        in.len = len;
        in.cap = len + 1;
    } else if (read_stream(stdin, &in)) {
        pk_buf_free(&in);
        return cli_fail("rouge", "could not read standard input");
    } else {
        in.len--; /* the terminator appended by read_stream */
    }

    PkBuf out = {0};
    int line_no = 0, n_scored = 0;
    double total = 0;
    size_t pos_in = 0, start, len;
    int rc = 0;
    while (pk_next_line(in.data, in.len, &pos_in, &start, &len)) {
        line_no++;
        const char *s = in.data + start;
        size_t k = 0;
        while (k < len && (s[k] == ' ' || s[k] == '\t')) k++;
        if (k == len) continue; /* blank line */
        double score = 0;
        if (score_line(name, line_no, s, len, &out, &score, err)) {
            rc = cli_fail("rouge", err);
            break;
        }
        total += score;
        n_scored++;
    }
    if (rc == 0 && n_scored == 0) rc = cli_fail("rouge", "no input lines (expected JSONL with \"prediction\" and \"references\")");
    if (rc == 0) {
        if (output) {
            if (pk_write_file_atomic(output, out.data, out.len, err)) rc = cli_fail("rouge", err);
        } else if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout)) {
            rc = cli_fail("rouge", "could not write to standard output");
        }
    }
    if (rc == 0 && summary) fprintf(stderr, "%d lines, mean ROUGE-L %.4f\n", n_scored, total / n_scored);
    pk_buf_free(&in);
    pk_buf_free(&out);
    return rc;
}
