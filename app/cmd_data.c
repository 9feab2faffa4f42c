/* promptkd data stats FILE --tokenizer DIR: what a dataset holds and how long its prompts and responses are
 * in tokens, and how many prompts the length limit would drop. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "data.h"
#include "tokenizer.h"

#define DATA_USAGE "promptkd data stats FILE --tokenizer DIR [--max-prompt-len 256] [--skip-bad] [--json]"

typedef struct {
    int min, p50, p90, p99, max;
    double mean;
} LengthStats;

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentiles: the p-th is the smallest value with at least p% of the values <= it. */
static LengthStats length_stats(int *v, int n) {
    LengthStats s = {0};
    if (n == 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_int);
    long long sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    int ranks[3] = {50, 90, 99}, *dst[3] = {&s.p50, &s.p90, &s.p99};
    for (int k = 0; k < 3; k++) {
        long long r = ((long long)ranks[k] * n + 99) / 100; /* ceil(p n / 100), 1-based */
        *dst[k] = v[r < 1 ? 0 : r - 1];
    }
    s.min = v[0];
    s.max = v[n - 1];
    s.mean = (double)sum / n;
    return s;
}

typedef struct {
    const char *name;
    int count;
} CategoryCount;

static int cmp_category(const void *a, const void *b) {
    const CategoryCount *x = a, *y = b;
    if (x->count != y->count) return y->count - x->count;
    return strcmp(x->name, y->name);
}

static cJSON *stats_json(const LengthStats *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "min", s->min);
    cJSON_AddNumberToObject(o, "p50", s->p50);
    cJSON_AddNumberToObject(o, "p90", s->p90);
    cJSON_AddNumberToObject(o, "p99", s->p99);
    cJSON_AddNumberToObject(o, "max", s->max);
    cJSON_AddNumberToObject(o, "mean", s->mean);
    return o;
}

static int data_stats(int argc, char **argv) {
    const char *tok_dir = NULL;
    int max_prompt_len = 256, skip_bad = 0, as_json = 0;
    Opt opts[] = {
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json and merges.txt", 1},
        {"max-prompt-len", OPT_INT, &max_prompt_len, "prompts longer than this many tokens are dropped (256)", 0},
        {"skip-bad", OPT_FLAG, &skip_bad, "skip and count bad lines instead of failing", 0},
        {"json", OPT_FLAG, &as_json, "print one JSON object", 0},
    };
    char *pos[1];
    int npos = 0;
    int prc = cli_parse(DATA_USAGE, argc, argv, opts, (int)(sizeof opts / sizeof *opts), pos, 1, &npos);
    if (prc == 1) return 0;
    if (prc) return 2;
    if (npos != 1) {
        fprintf(stderr, "%s: the dataset FILE is required\n", DATA_USAGE);
        return 2;
    }
    if (max_prompt_len < 1) return cli_fail("data", "--max-prompt-len must be at least 1");

    char err[PK_ERR_LEN];
    Dataset d;
    if (data_load(&d, pos[0], skip_bad, err)) return cli_fail("data", err);
    Tokenizer *tok = NULL;
    if (tok_load(&tok, tok_dir, err)) {
        data_free(&d);
        return cli_fail("data", err);
    }
    TokExample *ex = NULL;
    int n_ex = 0, rc = 0;
    int *prompt_lens = NULL, *response_lens = NULL;
    CategoryCount *cats = NULL;
    /* no limit here: every record is measured, the limit only counts what would be dropped */
    if (data_tokenize(&d, tok, 0, 0, &ex, &n_ex, NULL, err)) {
        rc = cli_fail("data", err);
        goto done;
    }
    prompt_lens = malloc((size_t)n_ex * sizeof(int));
    response_lens = malloc((size_t)n_ex * sizeof(int));
    cats = calloc((size_t)d.n, sizeof *cats);
    if (!prompt_lens || !response_lens || !cats) {
        rc = cli_fail("data", "out of memory");
        goto done;
    }
    int dropped = 0, n_refs = 0;
    for (int i = 0; i < n_ex; i++) {
        prompt_lens[i] = ex[i].prompt_len;
        response_lens[i] = ex[i].response_len;
        if (ex[i].prompt_len > max_prompt_len) dropped++;
    }
    int n_cats = 0;
    for (int r = 0; r < d.n; r++) {
        n_refs += d.recs[r].n_refs;
        int k = 0;
        while (k < n_cats && strcmp(cats[k].name, d.recs[r].category)) k++;
        if (k == n_cats) cats[n_cats++].name = d.recs[r].category;
        cats[k].count++;
    }
    qsort(cats, (size_t)n_cats, sizeof *cats, cmp_category);
    LengthStats ps = length_stats(prompt_lens, n_ex);
    LengthStats rs = length_stats(response_lens, n_ex);

    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", pos[0]);
        cJSON_AddStringToObject(o, "format", d.format);
        cJSON_AddNumberToObject(o, "records", d.n);
        cJSON_AddNumberToObject(o, "skipped", d.n_skipped);
        cJSON_AddNumberToObject(o, "references", n_refs);
        cJSON *c = cJSON_AddObjectToObject(o, "categories");
        for (int k = 0; k < n_cats; k++) cJSON_AddNumberToObject(c, cats[k].name, cats[k].count);
        cJSON_AddItemToObject(o, "prompt_tokens", stats_json(&ps));
        cJSON_AddItemToObject(o, "response_tokens", stats_json(&rs));
        cJSON_AddNumberToObject(o, "max_prompt_len", max_prompt_len);
        cJSON_AddNumberToObject(o, "dropped", dropped);
        char *text = cJSON_PrintUnformatted(o);
        if (text) printf("%s\n", text);
        else rc = cli_fail("data", "out of memory");
        free(text);
        cJSON_Delete(o);
    } else {
        printf("file         %s\n", pos[0]);
        printf("format       %s\n", d.format);
        printf("records      %d", d.n);
        if (skip_bad || d.n_skipped) printf(" (%d bad line%s skipped)", d.n_skipped, d.n_skipped == 1 ? "" : "s");
        printf("\nreferences   %d (%.2f per record)\n", n_refs, (double)n_refs / d.n);
        printf("categories   %d\n", n_cats);
        for (int k = 0; k < n_cats; k++) printf("  %-24s %6d  %5.1f%%\n", cats[k].name, cats[k].count, 100.0 * cats[k].count / d.n);
        printf("tokens                   min    p50    p90    p99    max    mean\n");
        printf("  prompt              %6d %6d %6d %6d %6d %7.1f\n", ps.min, ps.p50, ps.p90, ps.p99, ps.max, ps.mean);
        printf("  response (+EOS)     %6d %6d %6d %6d %6d %7.1f\n", rs.min, rs.p50, rs.p90, rs.p99, rs.max, rs.mean);
        printf("prompts longer than %d tokens (dropped): %d of %d\n", max_prompt_len, dropped, d.n);
    }
done:
    free(prompt_lens);
    free(response_lens);
    free(cats);
    data_free_tokenized(ex, n_ex);
    tok_free(tok);
    data_free(&d);
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "stats")) return data_stats(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s\n", DATA_USAGE);
        return 0;
    }
    fprintf(stderr, "usage: %s\n", DATA_USAGE);
    if (argc >= 2) fprintf(stderr, "promptkd data: unknown subcommand '%s'\n", argv[1]);
    return 2;
}
